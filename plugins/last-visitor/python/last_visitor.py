"""Puts the previous visitor (kept in ``api.cache`` by the previous login) in
the access token, then keeps this user for the next one; a key over 64
bytes is refused. The claims' names start with the ``prefix`` secret. The
same action is in ../js and ../rust."""

from claimsmith import Event
from claimsmith.action import Api


def on_execute_post_login(event: Event, api: Api) -> None:
    prefix = event.secrets.get("prefix") or "https://example.com/"
    previous = api.cache.get("last_visitor")
    stored = api.cache.set("last_visitor", event.user.user_id, ttl=60000)
    too_long = api.cache.set("k" * 65, "v")
    api.access_token.set_custom_claim(
        prefix + "previous_visitor", None if previous is None else previous["value"]
    )
    api.access_token.set_custom_claim(prefix + "cache_write", stored["type"])
    api.access_token.set_custom_claim(prefix + "long_key", too_long.get("code"))
