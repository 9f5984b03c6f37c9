//! Test plugin: a post-login action that GETs the URL in its client's
//! metadata (`fetch_url`) through the host's `http::fetch`, with the headers
//! of `fetch_headers` (an object of names and values) when given.
//!
//! Exists to prove the host's outbound HTTP rules: granted origins work (the
//! answer lands in the access token claims `fetched_status` and
//! `fetched_body`), and refused origins, timeouts and oversized bodies come
//! back as an `http-error`, which fails the step as `fetch failed: <error>`.

wit_bindgen::generate!({
    world: "post-login-action",
    path: "../../../../wit",
});

use claimsmith::plugin::api::{self, Token};
use claimsmith::plugin::http::{self, Request};
use serde_json::Value;

struct Fetcher;

impl Guest for Fetcher {
    fn on_execute_post_login(event: Event) -> Result<(), String> {
        let metadata: Value = serde_json::from_str(&event.client.metadata)
            .map_err(|e| format!("client metadata is not valid JSON: {e}"))?;
        let url = metadata
            .get("fetch_url")
            .and_then(Value::as_str)
            .ok_or("client metadata `fetch_url` is missing or not a string")?;

        let headers = metadata
            .get("fetch_headers")
            .and_then(Value::as_object)
            .map(|headers| {
                headers
                    .iter()
                    .map(|(name, value)| (name.clone(), value.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let request = Request {
            method: "GET".to_owned(),
            url: url.to_owned(),
            headers,
            body: None,
        };
        let response = http::fetch(&request).map_err(|e| format!("fetch failed: {e:?}"))?;

        let status = serde_json::to_string(&response.status).map_err(|e| e.to_string())?;
        let body = serde_json::to_string(&String::from_utf8_lossy(&response.body))
            .map_err(|e| e.to_string())?;
        set_claim("fetched_status", &status)?;
        set_claim("fetched_body", &body)
    }
}

export!(Fetcher);

fn set_claim(name: &str, value: &str) -> Result<(), String> {
    api::set_custom_claim(Token::AccessToken, name, value)
        .map_err(|e| format!("cannot set the claim `{name}`: {e:?}"))
}
