"""The profile-fetcher world in the shape of Auth0's Fetch User Profile
script: ``fetch_user_profile(access_token, ctx)`` returns the profile.

``claimsmith build`` writes the entry module that hands the plugin's
function to :func:`profile_fetcher`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

import wit_world
from componentize_py_types import Err

from . import FetchContext, dumps, error_text, parse_object


def profile_fetcher(handler: Callable[[str, FetchContext], Dict[str, Any]]) -> type:
    """The WIT world class around the plugin's ``fetch_user_profile``."""

    class ProfileFetcher(wit_world.WitWorld):
        def fetch_profile(self, ctx: Any) -> str:
            context = FetchContext(
                connection=ctx.connection,
                id_token=ctx.id_token,
                id_token_claims=parse_object(ctx.id_token_claims),
                options=parse_object(ctx.options),
            )
            try:
                profile = handler(ctx.access_token, context)
                if not isinstance(profile, dict):
                    raise TypeError(f"fetch_user_profile must return a dict, not {type(profile).__name__}")
                return dumps(profile)
            except Exception as error:  # the contract's error is a string
                raise Err(error_text(error)) from None

    return ProfileFetcher
