"""Okta userinfo profile fetcher: the reference scenario's Auth0 Fetch User
Profile script in Python (same plugin in ../rust and ../js)."""

from claimsmith import FetchContext, fetch


def fetch_user_profile(access_token: str, ctx: FetchContext) -> dict:
    url = ctx.options.get("userinfo_url")
    if url is None:
        raise ValueError("connection option `userinfo_url` is missing")
    if not isinstance(url, str):
        raise ValueError("connection option `userinfo_url` is not a string")

    r = fetch(url, headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"})
    if r.status != 200:
        raise RuntimeError(f"StatusCode: {r.status}")
    try:
        profile = r.json()
    except ValueError as error:
        raise ValueError(f"userinfo response is not a JSON object: {error}") from None
    if not isinstance(profile, dict):
        raise ValueError("userinfo response is not a JSON object")

    country = ctx.id_token_claims.get("geoipcountry")
    profile["geo_ip_country"] = "Unknown" if country is None else country
    profile.pop("user_type", None)
    return profile
