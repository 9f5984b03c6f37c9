"""Copies the profile's `geo_ip_country` into the access token (same action
in ../rust and ../js). A profile without it leaves the token unchanged."""

from claimsmith import Event
from claimsmith.action import Api


def on_execute_post_login(event: Event, api: Api) -> None:
    if "geo_ip_country" in event.user.profile:
        api.access_token.set_custom_claim("geo_ip_country", event.user.profile["geo_ip_country"])
