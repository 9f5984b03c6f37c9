//! Outbound HTTP through the host, which applies the plugin's allowed
//! origins, timeout and size cap, and never follows redirects.

use serde::de::DeserializeOwned;

use crate::Error;
use crate::fetcher::bindings::claimsmith::plugin::http::{self as host, HttpError};

/// A request under construction: `http::get(url).header(..).send()?`.
#[derive(Debug, Clone)]
pub struct Request(host::Request);

/// A `GET` request to `url`.
pub fn get(url: &str) -> Request {
    request("GET", url)
}

/// A request with any method.
pub fn request(method: &str, url: &str) -> Request {
    Request(host::Request {
        method: method.to_owned(),
        url: url.to_owned(),
        headers: Vec::new(),
        body: None,
    })
}

impl Request {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.0.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.0.body = Some(body.into());
        self
    }

    /// Sends it and waits for the whole response. A response of any status
    /// is `Ok`; `Err` means no response (not allowed, timeout, too large, ...).
    pub fn send(self) -> Result<Response, Error> {
        let url = self.0.url.split('?').next().unwrap_or_default().to_owned();
        let method = self.0.method.clone();
        host::fetch(&self.0)
            .map(Response)
            .map_err(|e| Error::msg(format!("{method} {url} failed: {}", describe(&e))))
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Response(host::Response);

impl Response {
    pub fn status(&self) -> u16 {
        self.0.status
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.0
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn body(&self) -> &[u8] {
        &self.0.body
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.0.body)
    }
}

/// The error variant as text, the way every SDK spells it (`timeout`,
/// `not-allowed: ...`).
fn describe(error: &HttpError) -> String {
    match error {
        HttpError::NotAllowed(why) => format!("not-allowed: {why}"),
        HttpError::InvalidRequest(why) => format!("invalid-request: {why}"),
        HttpError::Timeout => "timeout".to_owned(),
        HttpError::ResponseTooLarge(cap) => format!("response-too-large: {cap}"),
        HttpError::Transport(why) => format!("transport: {why}"),
    }
}
