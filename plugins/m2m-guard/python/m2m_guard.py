"""A credentials-exchange action: tags a machine client's access token with
the client's name and the scopes it asked for, or denies the token with the
OAuth error the client's metadata names in `deny_code` (a suspended client,
say). Same action in ../rust and ../js."""

from claimsmith.credentials import Api, Event

CLIENT_CLAIM = "https://claimsmith.dev/client"
ASKED_CLAIM = "https://claimsmith.dev/requested_scopes"


def on_execute_credentials_exchange(event: Event, api: Api) -> None:
    code = event.client.metadata.get("deny_code")
    if code is not None:
        api.access.deny(code, f"client {event.client.client_id} is suspended")
        return
    api.access_token.set_custom_claim(CLIENT_CLAIM, event.client.name)
    api.access_token.set_custom_claim(ASKED_CLAIM, event.transaction.requested_scopes)
