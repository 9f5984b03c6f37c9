//! Okta userinfo profile fetcher, ported from an Auth0 *Fetch User Profile*
//! script.
//!
//! 1. Reads the connection option `userinfo_url`.
//! 2. GETs it with the user's upstream access token as a bearer token.
//! 3. Takes the JSON object it answers as the profile, adds `geo_ip_country`
//!    (the id token's `geoipcountry` claim, or `"Unknown"`), removes
//!    `user_type` and returns the profile.

/// The bindings for the `profile-fetcher` world.
// wit-bindgen 0.61.1 emits the world-level export shim without a clippy allow,
// and `fetch-context` (five strings) flattens to ten ABI parameters.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({
        world: "profile-fetcher",
        path: "../../wit",
    });
}

use bindings::claimsmith::plugin::http::{self, HttpError, Request};
use bindings::claimsmith::plugin::log::{self, Level};
use bindings::{FetchContext, Guest, Json};
use serde_json::{Map, Value};

/// The connection option naming the userinfo endpoint.
const USERINFO_URL: &str = "userinfo_url";

struct OktaUserinfo;

impl Guest for OktaUserinfo {
    fn fetch_profile(ctx: FetchContext) -> Result<Json, String> {
        let url = userinfo_url(&ctx.options)?;
        // The access token is a secret: it goes in the request, never in a log line.
        debug(&format!(
            "connection `{}`: fetching userinfo from {url}",
            ctx.connection
        ));

        let request = Request {
            method: "GET".to_owned(),
            url,
            headers: vec![
                (
                    "Authorization".to_owned(),
                    format!("Bearer {}", ctx.access_token),
                ),
                ("Accept".to_owned(), "application/json".to_owned()),
            ],
            body: None,
        };
        let response = http::fetch(&request)
            .map_err(|e| format!("userinfo request failed: {}", describe(&e)))?;
        debug(&format!(
            "userinfo answered {} with {} bytes",
            response.status,
            response.body.len()
        ));
        if response.status != 200 {
            return Err(format!(
                "userinfo request failed: StatusCode: {}",
                response.status
            ));
        }

        let mut profile: Map<String, Value> = serde_json::from_slice(&response.body)
            .map_err(|e| format!("userinfo response is not a JSON object: {e}"))?;

        let country = geo_ip_country(&ctx.id_token_claims)?;
        debug(&format!("geo_ip_country = {country}"));
        profile.insert("geo_ip_country".to_owned(), country);

        if profile.remove("user_type").is_some() {
            debug("removed `user_type` from the profile");
        }

        let keys: Vec<&str> = profile.keys().map(String::as_str).collect();
        debug(&format!("returning a profile with keys {keys:?}"));
        serde_json::to_string(&profile).map_err(|e| format!("cannot serialize the profile: {e}"))
    }
}

bindings::export!(OktaUserinfo with_types_in bindings);

fn debug(message: &str) {
    log::log(Level::Debug, message);
}

/// The `userinfo_url` string from the connection options (a JSON object text).
fn userinfo_url(options: &str) -> Result<String, String> {
    let options: Map<String, Value> = serde_json::from_str(options)
        .map_err(|e| format!("connection options are not a JSON object: {e}"))?;
    match options.get(USERINFO_URL) {
        None => Err(format!("connection option `{USERINFO_URL}` is missing")),
        Some(Value::String(url)) => Ok(url.clone()),
        Some(other) => Err(format!(
            "connection option `{USERINFO_URL}` is not a string: {other}"
        )),
    }
}

/// The id token's `geoipcountry` claim, or `"Unknown"` when it has none.
fn geo_ip_country(id_token_claims: &str) -> Result<Value, String> {
    let claims: Map<String, Value> = serde_json::from_str(id_token_claims)
        .map_err(|e| format!("id token claims are not a JSON object: {e}"))?;
    Ok(match claims.get("geoipcountry") {
        Some(country) if !country.is_null() => country.clone(),
        _ => Value::String("Unknown".to_owned()),
    })
}

/// Why a request failed, in words.
fn describe(error: &HttpError) -> String {
    match error {
        HttpError::NotAllowed(why) => format!("not allowed: {why}"),
        HttpError::InvalidRequest(why) => format!("invalid request: {why}"),
        HttpError::Timeout => "timed out".to_owned(),
        HttpError::ResponseTooLarge(cap) => {
            format!("response body larger than the {cap}-byte cap")
        }
        HttpError::Transport(why) => format!("transport error: {why}"),
    }
}
