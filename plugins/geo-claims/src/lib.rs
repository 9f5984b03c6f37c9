//! Copies the profile's `geo_ip_country` (set by the `okta-userinfo` profile
//! fetcher) into the access token as the custom claim `geo_ip_country`.
//!
//! A profile without `geo_ip_country` leaves the token unchanged.

wit_bindgen::generate!({
    world: "post-login-action",
    path: "../../wit",
});

use claimsmith::plugin::api::{self, Token};
use serde_json::Value;

const CLAIM: &str = "geo_ip_country";

struct GeoClaims;

impl Guest for GeoClaims {
    fn on_execute_post_login(event: Event) -> Result<(), String> {
        let profile: Value = serde_json::from_str(&event.user.profile)
            .map_err(|e| format!("the user profile is not valid JSON: {e}"))?;
        let Some(country) = profile.get(CLAIM) else {
            return Ok(());
        };
        let value = serde_json::to_string(country)
            .map_err(|e| format!("cannot serialize `{CLAIM}`: {e}"))?;
        api::set_custom_claim(Token::AccessToken, CLAIM, &value)
            .map_err(|e| format!("cannot set the access token claim `{CLAIM}`: {e:?}"))
    }
}

export!(GeoClaims);
