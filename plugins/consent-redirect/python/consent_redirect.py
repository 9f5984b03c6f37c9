"""Sends a user who has not consented to the page in the ``PAGE`` secret,
with a session token (HS256 with the ``SECRET`` secret) naming the purpose;
back at /continue, keeps the page's answer in app metadata and the id token.
The same action is in ../js and ../rust."""

from claimsmith import Event
from claimsmith.action import Api


def on_execute_post_login(event: Event, api: Api) -> None:
    if event.user.app_metadata.get("consent") == "given":
        return
    token = api.redirect.encode_token(
        event.secrets["SECRET"], {"purpose": "newsletter"}, expires_in_seconds=300
    )
    api.redirect.send_user_to(event.secrets["PAGE"], {"session_token": token, "lang": "en"})


def on_continue_post_login(event: Event, api: Api) -> None:
    answer = api.redirect.validate_token(event.secrets["SECRET"])
    api.user.set_app_metadata("consent", answer["consent"])
    api.id_token.set_custom_claim("https://example.com/consent", answer["consent"])
