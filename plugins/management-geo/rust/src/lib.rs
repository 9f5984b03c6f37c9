//! The reference scenario's post-login Action, ported: it reads the user's
//! attributes through the Management API, as the original did with Auth0's
//! `ManagementClient.getUser`, and sets `geo_ip_country` on the access token
//! from what it read. The same action is in `../js` (which reads like the
//! original) and `../python`.
//!
//! Claimsmith stores a user when the chain has minted, so on a user's first
//! sign-in `getUser` answers 404 and no claim is set; Auth0 stores the user
//! before its Actions run.
//!
//! Secrets, as the original's: `domain` (the Claimsmith issuer, a URL or a
//! bare host meaning https), `clientId` and `clientSecret` (a
//! machine-to-machine client with `read:users`).

use claimsmith_sdk::action::{Api, Event};
use claimsmith_sdk::{Error, http, secret};
use serde_json::{Map, Value};

fn on_execute_post_login(event: &Event, api: &mut Api) -> Result<(), Error> {
    let required =
        |name: &str| secret(name).ok_or_else(|| Error::msg(format!("secret `{name}` is missing")));
    let domain = required("domain")?;
    let base = if domain.starts_with("https://") || domain.starts_with("http://") {
        domain.trim_end_matches('/').to_owned()
    } else {
        format!("https://{domain}")
    };

    // new ManagementClient({ domain, clientId, clientSecret }): a token for
    // the Management API, by the client credentials grant.
    let form = [
        ("grant_type", "client_credentials".to_owned()),
        ("client_id", required("clientId")?),
        ("client_secret", required("clientSecret")?),
        ("audience", format!("{base}/api/v2/")),
    ]
    .iter()
    .map(|(name, value)| format!("{name}={}", percent_encode(value)))
    .collect::<Vec<_>>()
    .join("&");
    let answer = http::request("POST", &format!("{base}/oauth/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()?;
    if answer.status() != 200 {
        return Err(Error::msg(format!(
            "the token request answered {}",
            answer.status()
        )));
    }
    let token: Map<String, Value> = answer
        .json()
        .map_err(|e| Error::msg(format!("token answer: {e}")))?;
    let access_token = token
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::msg("the token answer has no access_token"))?;

    // management.getUser({ id: event.user.user_id })
    let answer = http::get(&format!(
        "{base}/api/v2/users/{}",
        percent_encode(&event.user.user_id)
    ))
    .header("Authorization", &format!("Bearer {access_token}"))
    .header("Accept", "application/json")
    .send()?;
    // A user the Management API does not know (deleted meanwhile, say) has
    // no country to read. (The user being signed in it knows, first sign-in
    // included.)
    if answer.status() == 404 {
        return Ok(());
    }
    if answer.status() != 200 {
        return Err(Error::msg(format!("getUser answered {}", answer.status())));
    }
    let user_attributes: Map<String, Value> = answer
        .json()
        .map_err(|e| Error::msg(format!("getUser answer: {e}")))?;

    if let Some(country) = user_attributes.get("geo_ip_country") {
        api.access_token()
            .set_custom_claim("geo_ip_country", country)?;
    }
    Ok(())
}

/// Every byte but RFC 3986's unreserved characters as `%XX`: right for a
/// form field and for a path segment alike.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

claimsmith_sdk::post_login_action!(on_execute_post_login);
