"""The post-login-action world in Auth0's shape: ``on_execute_post_login(event, api)``.

``claimsmith build`` writes the entry module that hands the plugin's
function to :func:`post_login_action`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import wit_world
from wit_world.imports import api as _api
from wit_world.imports import cache as _cache
from componentize_py_types import Err

from . import (
    Authentication,
    AuthenticationMethod,
    Authorization,
    Client,
    Connection,
    Event,
    HostError,
    Request,
    ResourceServer,
    Stats,
    Transaction,
    User,
    describe,
    dumps,
    error_text,
    parse_object,
)


def _call(what: str, operation: Callable[[], None]) -> None:
    try:
        operation()
    except Err as error:
        raise HostError(f"{what}: {describe(error.value)}") from None


def _json_text(value: Any, what: str) -> str:
    try:
        return dumps(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what}: {error}") from None


class TokenApi:
    def __init__(self, token: Any, label: str) -> None:
        self._token = token
        self._label = label

    def set_custom_claim(self, name: str, value: Any) -> None:
        """Sets a custom claim; reserved claims such as ``sub`` raise ``HostError``."""
        text = _json_text(value, f"claim `{name}`")
        _call(f"cannot set the {self._label} claim `{name}`", lambda: _api.set_custom_claim(self._token, name, text))

    def remove_custom_claim(self, name: str) -> None:
        _call(f"cannot remove the {self._label} claim `{name}`", lambda: _api.remove_custom_claim(self._token, name))


class AccessTokenApi(TokenApi):
    def add_scope(self, scope: str) -> None:
        _call(f"cannot add the scope `{scope}`", lambda: _api.add_scope(scope))

    def remove_scope(self, scope: str) -> None:
        _api.remove_scope(scope)


class AccessApi:
    def deny(self, reason: str) -> None:
        """Denies the login; no token is minted."""
        _api.deny(str(reason))


class UserApi:
    def set_user_metadata(self, key: str, value: Any) -> None:
        text = _json_text(value, f"user metadata `{key}`")
        _call(f"cannot set user metadata `{key}`", lambda: _api.set_user_metadata(key, text))

    def set_app_metadata(self, key: str, value: Any) -> None:
        text = _json_text(value, f"app metadata `{key}`")
        _call(f"cannot set app metadata `{key}`", lambda: _api.set_app_metadata(key, text))


class CacheApi:
    """Auth0's ``api.cache``: short-lived strings the host keeps for this
    action (each call is a fresh instance). Times are milliseconds since the
    epoch; writes answer ``{"type": "success", "record": ...}`` or
    ``{"type": "error", "code": ...}``, as Auth0's do."""

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        entry = _cache.get(key)
        return None if entry is None else {"value": entry.value, "expires_at": entry.expires_at}

    def set(
        self, key: str, value: str, ttl: Optional[int] = None, expires_at: Optional[int] = None
    ) -> Dict[str, Any]:
        try:
            entry = _cache.set(key, str(value), ttl, expires_at)
        except Err as error:
            return {"type": "error", "code": error.value.name.lower().replace("_", "-")}
        return {"type": "success", "record": {"value": entry.value, "expires_at": entry.expires_at}}

    def delete(self, key: str) -> Dict[str, str]:
        _cache.delete(key)
        return {"type": "success"}


class Api:
    """What a post-login action may change, in Auth0's shape (snake_case)."""

    def __init__(self) -> None:
        self.access_token = AccessTokenApi(_api.Token.ACCESS_TOKEN, "access token")
        self.id_token = TokenApi(_api.Token.ID_TOKEN, "id token")
        self.access = AccessApi()
        self.user = UserApi()
        self.cache = CacheApi()


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
        client=Client(
            client_id=event.client.client_id,
            name=event.client.name,
            metadata=parse_object(event.client.metadata),
        ),
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


def post_login_action(handler: Callable[[Event, Api], None]) -> type:
    """The WIT world class around the plugin's ``on_execute_post_login``."""

    class PostLoginAction(wit_world.WitWorld):
        def on_execute_post_login(self, event: Any) -> None:
            try:
                handler(_event(event), Api())
            except Exception as error:  # the contract's error is a string
                raise Err(error_text(error)) from None

    return PostLoginAction
