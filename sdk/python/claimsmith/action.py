"""The post-login-action world in Auth0's shape: ``on_execute_post_login(event, api)``,
and ``on_continue_post_login(event, api)`` when the user comes back from a
redirect.

``claimsmith build`` compiles every post-login action for the
``resumable-post-login-action`` world and writes the entry module that hands
the plugin's functions to :func:`post_login_action`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional

import wit_world
from wit_world.imports import api as _api
from wit_world.imports import cache as _cache
from wit_world.imports import redirect as _redirect
from componentize_py_types import Err

from . import (
    Authentication,
    AuthenticationMethod,
    Authorization,
    CacheApi,
    Connection,
    Event,
    Json,
    Request,
    ResourceServer,
    Stats,
    Transaction,
    User,
    client_of,
    error_text,
    host_call,
    json_text,
    parse_object,
)


class TokenApi:
    def __init__(self, token: Any, label: str) -> None:
        self._token = token
        self._label = label

    def set_custom_claim(self, name: str, value: Any) -> None:
        """Sets a custom claim; reserved claims such as ``sub`` raise ``HostError``."""
        text = json_text(value, f"claim `{name}`")
        host_call(f"cannot set the {self._label} claim `{name}`", lambda: _api.set_custom_claim(self._token, name, text))

    def remove_custom_claim(self, name: str) -> None:
        host_call(f"cannot remove the {self._label} claim `{name}`", lambda: _api.remove_custom_claim(self._token, name))


class AccessTokenApi(TokenApi):
    def add_scope(self, scope: str) -> None:
        host_call(f"cannot add the scope `{scope}`", lambda: _api.add_scope(scope))

    def remove_scope(self, scope: str) -> None:
        _api.remove_scope(scope)


class AccessApi:
    def deny(self, reason: str) -> None:
        """Denies the login; no token is minted."""
        _api.deny(str(reason))


class UserApi:
    def set_user_metadata(self, key: str, value: Any) -> None:
        text = json_text(value, f"user metadata `{key}`")
        host_call(f"cannot set user metadata `{key}`", lambda: _api.set_user_metadata(key, text))

    def set_app_metadata(self, key: str, value: Any) -> None:
        text = json_text(value, f"app metadata `{key}`")
        host_call(f"cannot set app metadata `{key}`", lambda: _api.set_app_metadata(key, text))


def _secret(secret: Any, what: str) -> str:
    """``secret`` when it is a non-empty string, else a ``TypeError`` naming ``what``."""
    if not isinstance(secret, str) or not secret:
        raise TypeError(f"{what}: `secret` must be a non-empty string")
    return secret


class RedirectApi:
    """Auth0's ``api.redirect``. The host sends the user once the action
    returns, signs and checks the tokens, and refuses every call on a refresh
    (``HostError``)."""

    def send_user_to(self, url: str, query: Optional[Mapping[str, str]] = None) -> None:
        """Sends the user to ``url`` with the ``query`` parameters once this
        action returns; the chain resumes when they come back to
        ``<issuer>/continue``, with this action's ``on_continue_post_login``."""
        what = "api.redirect.send_user_to"
        parameters = list((query or {}).items())
        for name, value in parameters:
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"{what}: the query parameter `{name}` must be a string")
        host_call(what, lambda: _redirect.send_user_to(str(url), parameters))

    def encode_token(self, secret: str, payload: Dict[str, Json], expires_in_seconds: int = 900) -> str:
        """A token (an HS256 JWT) carrying ``payload`` for the page the user is
        sent to, expiring after ``expires_in_seconds``."""
        what = "api.redirect.encode_token"
        key = _secret(secret, what)
        if not isinstance(payload, dict):
            raise TypeError(f"{what}: `payload` must be a dict")
        text = json_text(payload, f"{what}: `payload`")
        if isinstance(expires_in_seconds, bool) or not isinstance(expires_in_seconds, int) or expires_in_seconds <= 0:
            raise TypeError(f"{what}: `expires_in_seconds` must be a positive integer")
        return host_call(what, lambda: _redirect.encode_token(key, text, expires_in_seconds))

    def validate_token(self, secret: str, token_parameter_name: str = "session_token") -> Dict[str, Json]:
        """The payload of the token the user brought back in the continue
        request's ``token_parameter_name``, once its signature, expiry and
        login check out; only in ``on_continue_post_login``."""
        what = "api.redirect.validate_token"
        key = _secret(secret, what)
        return parse_object(host_call(what, lambda: _redirect.validate_token(key, str(token_parameter_name))))


class Api:
    """What a post-login action may change, in Auth0's shape (snake_case)."""

    def __init__(self) -> None:
        self.access_token = AccessTokenApi(_api.Token.ACCESS_TOKEN, "access token")
        self.id_token = TokenApi(_api.Token.ID_TOKEN, "id token")
        self.access = AccessApi()
        self.user = UserApi()
        self.cache = CacheApi(_cache)
        self.redirect = RedirectApi()


def _transaction(fields: Dict[str, Any]) -> Transaction:
    return Transaction(
        protocol=fields.get("protocol", ""),
        requested_scopes=list(fields.get("requested_scopes", [])),
        redirect_uri=fields.get("redirect_uri"),
        response_type=list(fields.get("response_type", [])),
        ui_locales=list(fields.get("ui_locales", [])),
        acr_values=list(fields.get("acr_values", [])),
        login_hint=fields.get("login_hint"),
    )


def _event(event: Any) -> Event:
    return Event(
        user=User(
            user_id=event.user.user_id,
            profile=parse_object(event.user.profile),
            user_metadata=parse_object(event.user.user_metadata),
            app_metadata=parse_object(event.user.app_metadata),
            last_login=event.user.last_login,
            created_at=event.user.created_at,
        ),
        stats=Stats(logins_count=event.user.logins_count),
        client=client_of(event.client),
        connection=Connection(name=event.connection.name, strategy=event.connection.strategy),
        request=Request(
            ip=event.request.ip,
            user_agent=event.request.user_agent,
            hostname=event.request.hostname,
            language=event.request.language,
            query=parse_object(event.request.query),
        ),
        transaction=_transaction(parse_object(event.transaction)),
        authentication=Authentication(
            methods=[
                AuthenticationMethod(name=m.get("name", ""), timestamp=m.get("timestamp", ""))
                for m in parse_object(event.authentication).get("methods", [])
            ]
        ),
        authorization=Authorization(roles=list(event.authorization.roles)),
        resource_server=None if event.audience is None else ResourceServer(identifier=event.audience),
        access_token_claims=parse_object(event.access_token_claims),
        id_token_claims=parse_object(event.id_token_claims),
    )


_Handler = Callable[[Event, Api], None]


def _run(handler: _Handler, event: Any) -> None:
    try:
        handler(_event(event), Api())
    except Exception as error:  # the contract's error is a string
        raise Err(error_text(error)) from None


def post_login_action(handler: _Handler, on_continue: Optional[_Handler] = None) -> type:
    """The WIT world class around the plugin's ``on_execute_post_login`` and
    its ``on_continue_post_login``; without the latter, the user's coming
    back changes nothing and the chain resumes, as in Auth0."""

    class PostLoginAction(wit_world.WitWorld):
        def on_execute_post_login(self, event: Any) -> None:
            _run(handler, event)

        def on_continue_post_login(self, event: Any) -> None:
            if on_continue is not None:
                _run(on_continue, event)

    return PostLoginAction
