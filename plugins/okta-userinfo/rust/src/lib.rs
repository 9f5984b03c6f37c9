//! Okta userinfo profile fetcher, ported from an Auth0 *Fetch User Profile*
//! script (the same plugin is in `../js` and `../python`).
//!
//! 1. Reads the connection option `userinfo_url`.
//! 2. GETs it with the user's upstream access token as a bearer token.
//! 3. Takes the JSON object it answers as the profile, adds `geo_ip_country`
//!    (the id token's `geoipcountry` claim, or `"Unknown"`), removes
//!    `user_type` and returns the profile.

use claimsmith_sdk::fetcher::{FetchContext, Profile};
use claimsmith_sdk::{Error, http, log};
use serde_json::Value;

fn fetch_user_profile(access_token: &str, ctx: &FetchContext) -> Result<Profile, Error> {
    let url = match ctx.options.get("userinfo_url") {
        Some(Value::String(url)) => url,
        Some(_) => return Err("connection option `userinfo_url` is not a string".into()),
        None => return Err("connection option `userinfo_url` is missing".into()),
    };
    // The access token is a secret: it goes in the request, never in a log line.
    log::debug(&format!(
        "connection `{}`: fetching userinfo from {url}",
        ctx.connection
    ));
    let response = http::get(url)
        .header("Authorization", &format!("Bearer {access_token}"))
        .header("Accept", "application/json")
        .send()?;
    if response.status() != 200 {
        return Err(Error::msg(format!("StatusCode: {}", response.status())));
    }
    let mut profile: Profile = response
        .json()
        .map_err(|e| Error::msg(format!("userinfo response is not a JSON object: {e}")))?;

    let country = match ctx.id_token_claims.get("geoipcountry") {
        Some(country) if !country.is_null() => country.clone(),
        _ => Value::from("Unknown"),
    };
    profile.insert("geo_ip_country".to_owned(), country);
    profile.remove("user_type");
    Ok(profile)
}

claimsmith_sdk::profile_fetcher!(fetch_user_profile);
