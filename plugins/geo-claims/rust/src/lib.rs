//! Copies the profile's `geo_ip_country` (set by the `okta-userinfo` profile
//! fetcher) into the access token as the custom claim `geo_ip_country`.
//! A profile without it leaves the token unchanged. The same action is in
//! `../js` and `../python`.

use claimsmith_sdk::Error;
use claimsmith_sdk::action::{Api, Event};

fn on_execute_post_login(event: &Event, api: &mut Api) -> Result<(), Error> {
    if let Some(country) = event.user.profile.get("geo_ip_country") {
        api.access_token()
            .set_custom_claim("geo_ip_country", country)?;
    }
    Ok(())
}

claimsmith_sdk::post_login_action!(on_execute_post_login);
