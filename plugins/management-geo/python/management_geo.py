"""The reference scenario's post-login Action in Python (same action in
../rust and ../js): it reads the user's attributes through the Management
API, as the original did with ``ManagementClient.getUser``, and sets
``geo_ip_country`` on the access token."""

from urllib.parse import quote, urlencode

from claimsmith import Event, fetch
from claimsmith.action import Api


def get_user(domain: str, client_id: str, client_secret: str, user_id: str) -> dict:
    base = domain.rstrip("/") if domain.startswith(("https://", "http://")) else f"https://{domain}"
    token = fetch(
        f"{base}/oauth/token",
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
                "audience": f"{base}/api/v2/",
            }
        ),
    )
    if token.status != 200:
        raise RuntimeError(f"the token request answered {token.status}")
    user = fetch(
        f"{base}/api/v2/users/{quote(user_id, safe='')}",
        headers={"Authorization": f"Bearer {token.json()['access_token']}", "Accept": "application/json"},
    )
    # A user the Management API does not know (deleted meanwhile, say) has
    # no country to read. (The user being signed in it knows, first sign-in
    # included.)
    if user.status == 404:
        return {}
    if user.status != 200:
        raise RuntimeError(f"getUser answered {user.status}")
    return user.json()


def on_execute_post_login(event: Event, api: Api) -> None:
    user_attributes = get_user(
        event.secrets["domain"], event.secrets["clientId"], event.secrets["clientSecret"], event.user.user_id
    )
    if "geo_ip_country" in user_attributes:
        api.access_token.set_custom_claim("geo_ip_country", user_attributes["geo_ip_country"])
