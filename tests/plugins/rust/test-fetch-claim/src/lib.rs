//! Test plugin: a post-login action that GETs the URL in its secret `url`
//! and sets the access token claim `fetched` to the answer's body.
//!
//! Exists as the live version of a shadow run: its request is recorded, and
//! the candidate (`test-fetch-more`) is answered from that recording.

use claimsmith_sdk::action::{Api, Event};
use claimsmith_sdk::{Error, http, secret};

fn on_execute_post_login(_event: &Event, api: &mut Api) -> Result<(), Error> {
    let url = secret("url").ok_or_else(|| Error::msg("secret `url` is missing"))?;
    let answer = http::get(&url).send()?;
    let body = String::from_utf8_lossy(answer.body()).into_owned();
    api.access_token().set_custom_claim("fetched", &body)?;
    Ok(())
}

claimsmith_sdk::post_login_action!(on_execute_post_login);
