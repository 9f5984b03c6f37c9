"""The credentials-exchange world in Auth0's shape:
``on_execute_credentials_exchange(event, api)``, run before a machine
client's access token is minted.

``claimsmith build`` writes the entry module that hands the plugin's
function to :func:`credentials_exchange`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import wit_world
from wit_world.imports import cache as _cache
from wit_world.imports import exchange_api as _api
from componentize_py_types import Err

from . import (
    CacheApi,
    Client,
    Json,
    ResourceServer,
    Secrets,
    client_of,
    error_text,
    host_call,
    json_text,
    parse_object,
)


@dataclass
class Transaction:
    """The client's request (Auth0's ``event.transaction``)."""

    requested_scopes: List[str]
    """The scopes the client asked for, as it asked."""


@dataclass
class Request:
    """The token request."""

    ip: Optional[str]
    hostname: Optional[str]
    user_agent: Optional[str]
    language: Optional[str]
    method: str
    """``POST``."""
    body: Dict[str, Json]
    """The form fields, without the client's credentials."""


@dataclass
class AccessToken:
    """The access token as it stands before this action."""

    scope: List[str]
    """The scopes it will carry: those requested and allowed."""
    custom_claims: Dict[str, Json]
    """Custom claims the actions before this one set."""


@dataclass
class Event:
    """Everything a credentials-exchange action sees, in Auth0's shape (snake_case)."""

    client: Client
    resource_server: ResourceServer
    """The API the token is for: its identifier is the token's audience."""
    transaction: Transaction
    request: Request
    access_token: AccessToken
    secrets: Secrets = field(default_factory=Secrets)


# Auth0's denial codes, by the WIT ``denial-code`` case each is. Auth0 allows
# only these three, so any other code is the plugin's mistake, not a denial.
_DENIAL_CODES = {
    "invalid_scope": _api.DenialCode.INVALID_SCOPE,
    "invalid_request": _api.DenialCode.INVALID_REQUEST,
    "server_error": _api.DenialCode.SERVER_ERROR,
}


class AccessTokenApi:
    def set_custom_claim(self, name: str, value: Any) -> None:
        """Sets a custom claim; reserved claims such as ``sub`` raise ``HostError``."""
        text = json_text(value, f"claim `{name}`")
        host_call(f"cannot set the access token claim `{name}`", lambda: _api.set_custom_claim(name, text))


class AccessApi:
    def deny(self, code: str, reason: str) -> None:
        """Denies the token request with the OAuth error ``code``
        (``invalid_scope``, ``invalid_request`` or ``server_error``); any
        other code raises ``ValueError``."""
        wit_code = _DENIAL_CODES.get(code) if isinstance(code, str) else None
        if wit_code is None:
            raise ValueError(f"api.access.deny: `{code}` is not one of {', '.join(_DENIAL_CODES)}")
        _api.deny(wit_code, str(reason))


class Api:
    """What a credentials-exchange action may change, in Auth0's shape (snake_case)."""

    def __init__(self) -> None:
        self.access_token = AccessTokenApi()
        self.access = AccessApi()
        self.cache = CacheApi(_cache)


def _event(event: Any) -> Event:
    return Event(
        client=client_of(event.client),
        resource_server=ResourceServer(identifier=event.resource_server.identifier),
        transaction=Transaction(requested_scopes=list(event.transaction.requested_scopes)),
        request=Request(
            ip=event.request.ip,
            hostname=event.request.hostname,
            user_agent=event.request.user_agent,
            language=event.request.language,
            method=event.request.method,
            body=parse_object(event.request.body),
        ),
        access_token=AccessToken(
            scope=list(event.access_token.scopes),
            custom_claims=parse_object(event.access_token.custom_claims),
        ),
    )


def credentials_exchange(handler: Callable[[Event, Api], None]) -> type:
    """The WIT world class around the plugin's ``on_execute_credentials_exchange``."""

    class CredentialsExchange(wit_world.WitWorld):
        def on_execute_credentials_exchange(self, event: Any) -> None:
            try:
                handler(_event(event), Api())
            except Exception as error:  # the contract's error is a string
                raise Err(error_text(error)) from None

    return CredentialsExchange
