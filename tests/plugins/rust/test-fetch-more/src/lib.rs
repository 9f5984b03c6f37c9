//! Test plugin: `test-fetch-claim` changed. It GETs the URL in its secret
//! `url` as that one does, sets `fetched` to the body with ` (changed)`
//! after it, and also GETs `<url>/more`, setting the claim `more` to what
//! became of that request: `answered` or the error.
//!
//! Exists as the candidate of a shadow run: its first request is answered
//! from the live call's recording, the second (which the live call never
//! made) must be refused without reaching the network.

use claimsmith_sdk::action::{Api, Event};
use claimsmith_sdk::{Error, http, secret};

fn on_execute_post_login(_event: &Event, api: &mut Api) -> Result<(), Error> {
    let url = secret("url").ok_or_else(|| Error::msg("secret `url` is missing"))?;
    let answer = http::get(&url).send()?;
    let body = String::from_utf8_lossy(answer.body()).into_owned();
    api.access_token()
        .set_custom_claim("fetched", &format!("{body} (changed)"))?;
    let more = match http::get(&format!("{url}/more")).send() {
        Ok(_) => "answered".to_owned(),
        Err(error) => error.to_string(),
    };
    api.access_token().set_custom_claim("more", &more)?;
    Ok(())
}

claimsmith_sdk::post_login_action!(on_execute_post_login);
