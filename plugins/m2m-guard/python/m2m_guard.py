"""A credentials-exchange action: tags a machine client's access token with
the client's name, the scopes it asked for and how many tokens it got from
this host (counted in `api.cache`), or denies the token with the
OAuth error the client's metadata names in `deny_code` (a suspended client,
say). Same action in ../rust and ../js."""

from claimsmith.credentials import Api, Event

CLIENT_CLAIM = "https://claimsmith.dev/client"
ASKED_CLAIM = "https://claimsmith.dev/requested_scopes"
ISSUED_CLAIM = "https://claimsmith.dev/tokens_issued"


def on_execute_credentials_exchange(event: Event, api: Api) -> None:
    code = event.client.metadata.get("deny_code")
    if code is not None:
        api.access.deny(code, f"client {event.client.client_id} is suspended")
        return
    api.access_token.set_custom_claim(CLIENT_CLAIM, event.client.name)
    api.access_token.set_custom_claim(ASKED_CLAIM, event.transaction.requested_scopes)
    key = f"tokens:{event.client.client_id}"
    entry = api.cache.get(key)
    issued = int(entry["value"]) + 1 if entry else 1
    api.cache.set(key, str(issued))
    api.access_token.set_custom_claim(ISSUED_CLAIM, issued)
