"""The Claimsmith Python SDK: plugins in the shape of Auth0's scripts.

A post-login action is one function::

    def on_execute_post_login(event: Event, api: Api) -> None:
        api.access_token.set_custom_claim("geo_ip_country", event.user.profile.get("geo_ip_country"))

(and, if it sends the user away with ``api.redirect.send_user_to``, a second,
``on_continue_post_login(event, api)``, run when they come back),

a credentials-exchange action (``claimsmith.credentials``) another::

    def on_execute_credentials_exchange(event: credentials.Event, api: credentials.Api) -> None:
        api.access_token.set_custom_claim("https://example.com/client_name", event.client.name)

and a profile fetcher a third::

    def fetch_user_profile(access_token: str, ctx: FetchContext) -> dict:
        return fetch(ctx.options["userinfo_url"], headers={"Authorization": f"Bearer {access_token}"}).json()

`claimsmith build` compiles the module with componentize-py; the WIT
contract stays underneath. Raise any exception to fail the login: its
message becomes the step's error.
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, TypeVar

from wit_world.imports import http as _http
from wit_world.imports import log as _log
from wit_world.imports import secrets as _secrets
from componentize_py_types import Err as _Err

Json = Any
"""Any JSON value: dict, list, str, int, float, bool or None."""


class Secrets(Mapping[str, str]):
    """The plugin's secrets from config, read from the host on first use.

    ``event.secrets["NAME"]`` raises ``KeyError`` for an unknown name;
    ``event.secrets.get("NAME")`` returns ``None``.
    """

    def __getitem__(self, name: str) -> str:
        value = _secrets.secret(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self):
        # The host does not list secrets: a plugin asks for those it knows.
        return iter(())

    def __len__(self) -> int:
        return 0

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _secrets.secret(name) is not None


@dataclass
class User:
    user_id: str
    profile: Dict[str, Json]
    user_metadata: Dict[str, Json]
    app_metadata: Dict[str, Json]
    last_login: Optional[str]
    created_at: str


@dataclass
class Stats:
    logins_count: int


@dataclass
class Client:
    client_id: str
    name: str
    metadata: Dict[str, Json]


def client_of(record: Any) -> Client:
    """The WIT ``client`` record both action worlds share, as a ``Client``."""
    return Client(client_id=record.client_id, name=record.name, metadata=parse_object(record.metadata))


@dataclass
class Connection:
    name: str
    strategy: str


@dataclass
class Request:
    ip: Optional[str]
    user_agent: Optional[str]
    hostname: Optional[str]
    language: Optional[str]
    query: Dict[str, Json]
    """The authorization request's parameters (empty on a refresh)."""


@dataclass
class Transaction:
    """The app's request (Auth0's ``event.transaction``)."""

    protocol: str
    """``oidc-basic-profile`` for a sign-in, ``oauth2-refresh-token`` for a refresh."""
    requested_scopes: List[str]
    redirect_uri: Optional[str]
    response_type: List[str]
    ui_locales: List[str]
    acr_values: List[str]
    login_hint: Optional[str]


@dataclass
class AuthenticationMethod:
    name: str
    timestamp: str


@dataclass
class Authentication:
    """How the user authenticated upstream (Auth0's ``event.authentication``)."""

    methods: List[AuthenticationMethod]


@dataclass
class Authorization:
    """What the user holds (Auth0's ``event.authorization``)."""

    roles: List[str]
    """The names of the user's roles, sorted."""


@dataclass
class ResourceServer:
    identifier: str


@dataclass
class Event:
    """Everything a post-login action sees, in Auth0's shape (snake_case)."""

    user: User
    stats: Stats
    client: Client
    connection: Connection
    request: Request
    transaction: Transaction
    authentication: Authentication
    authorization: Authorization
    resource_server: Optional[ResourceServer]
    access_token_claims: Dict[str, Json]
    """Custom claims the actions before this one set on the access token."""
    id_token_claims: Dict[str, Json]
    secrets: Secrets = field(default_factory=Secrets)


@dataclass
class FetchContext:
    """What a profile fetcher receives besides the upstream access token."""

    connection: str
    id_token: str
    """The upstream id token, as received (a compact JWT)."""
    id_token_claims: Dict[str, Json]
    """The id token's claims, already verified by the host."""
    options: Dict[str, Json]
    """The connection's ``options`` table from config."""
    secrets: Secrets = field(default_factory=Secrets)


class HostError(Exception):
    """The host refused a call (a reserved claim, a disallowed origin, ...)."""


_T = TypeVar("_T")


def host_call(what: str, operation: Callable[[], _T]) -> _T:
    """Runs a host call and returns its answer, turning the WIT error it
    raises into a ``HostError`` that says ``what`` was refused and why."""
    try:
        return operation()
    except _Err as error:
        raise HostError(f"{what}: {describe(error.value)}") from None


def json_text(value: Any, what: str) -> str:
    """``value`` as JSON text for the host; a ``TypeError`` naming ``what`` when it is not JSON."""
    try:
        return dumps(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what}: {error}") from None


class CacheApi:
    """Auth0's ``api.cache``: short-lived strings the host keeps for this
    action (each call is a fresh instance). Times are milliseconds since the
    epoch; writes answer ``{"type": "success", "record": ...}`` or
    ``{"type": "error", "code": ...}``, as Auth0's do.

    ``cache`` is the world's ``wit_world.imports.cache``, handed in by the
    action worlds: this module is imported by profile fetchers too, whose
    world has no cache to import."""

    def __init__(self, cache: Any) -> None:
        self._cache = cache

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        entry = self._cache.get(key)
        return None if entry is None else {"value": entry.value, "expires_at": entry.expires_at}

    def set(
        self, key: str, value: str, ttl: Optional[int] = None, expires_at: Optional[int] = None
    ) -> Dict[str, Any]:
        try:
            entry = self._cache.set(key, str(value), ttl, expires_at)
        except _Err as error:
            return {"type": "error", "code": error.value.name.lower().replace("_", "-")}
        return {"type": "success", "record": {"value": entry.value, "expires_at": entry.expires_at}}

    def delete(self, key: str) -> Dict[str, str]:
        self._cache.delete(key)
        return {"type": "success"}


class FetchError(HostError):
    """``fetch`` got no response: not allowed, invalid, timed out, too large or a transport error."""


@dataclass
class Response:
    status: int
    headers: Dict[str, str]
    """Header names in lower case; repeated headers joined with ``, ``."""
    content: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Json:
        return loads(self.content)


def describe(error: Any) -> str:
    """A WIT error variant (``HttpError_Timeout()``, ``ApiError_ReservedClaim("sub")``) as text."""
    value = getattr(error, "value", None)
    kind = type(error).__name__.split("_", 1)[-1]
    kebab = "".join("-" + c.lower() if c.isupper() else c for c in kind).lstrip("-")
    return kebab if value is None else f"{kebab}: {value}"


def fetch(
    url: str,
    method: str = "GET",
    headers: Optional[Mapping[str, str]] = None,
    json: Json = None,
    body: Optional[bytes | str] = None,
) -> Response:
    """Sends a request through the host, which applies the plugin's allowed
    origins, timeout and size cap, and never follows redirects.

    ``json=`` sends a JSON body with ``content-type: application/json``.
    """
    header_list = [(name, value) for name, value in (headers or {}).items()]
    if json is not None:
        body = dumps(json)
        if not any(name.lower() == "content-type" for name, _ in header_list):
            header_list.append(("content-type", "application/json"))
    if isinstance(body, str):
        body = body.encode("utf-8")
    request = _http.Request(method=method, url=url, headers=header_list, body=body)
    try:
        answer = _http.fetch(request)
    except _Err as error:
        raise FetchError(f"{method} {url.split('?', 1)[0]} failed: {describe(error.value)}") from None
    response_headers: Dict[str, str] = {}
    for name, value in answer.headers:
        name = name.lower()
        response_headers[name] = f"{response_headers[name]}, {value}" if name in response_headers else value
    return Response(status=answer.status, headers=response_headers, content=bytes(answer.body))


def log(message: str, level: str = "info") -> None:
    """Writes to the host's log, tagged with the plugin's name
    (``trace``, ``debug``, ``info``, ``warn`` or ``error``)."""
    _log.log(getattr(_log.Level, level.upper()), message)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: str | bytes) -> Json:
    """JSON as the other SDKs read it: ``NaN`` and ``Infinity`` are errors."""
    return _json.loads(text, parse_constant=_refuse_constant)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """JSON as the other SDKs write it: non-finite floats become ``null``."""
    return _json.dumps(_finite(value), allow_nan=False)


def parse_object(text: str) -> Dict[str, Json]:
    value = loads(text)
    return value if isinstance(value, dict) else {}


def error_text(error: BaseException) -> str:
    return str(error) or type(error).__name__
