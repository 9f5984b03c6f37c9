//! Recorded logins: the input of `claimsmith run` — a [`Login`] plus the
//! canned HTTP exchanges its plugins' `fetch` calls receive — and the
//! interceptor that answers from them.
//!
//! Owns the input format and the matching of requests to exchanges. Nothing
//! here reaches the network: a request that matches no exchange fails, it is
//! never sent.

use std::path::Path;
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::capabilities::http::{
    HttpError, InterceptOutcome, OutboundHttpInterceptor, OutboundRequest, OutboundResponse,
    redacted_url,
};
use crate::pipeline::Login;

/// A login to replay, as written in an input file (YAML, or JSON, which is
/// YAML too): the fields of a [`Login`], plus `http` and `now`.
#[derive(Debug, Clone)]
pub struct RecordedLogin {
    pub login: Login,
    /// When present, plugins' HTTP is answered from these and never sent.
    pub http: Option<Vec<Exchange>>,
    /// Pins the clock (unix seconds) for reproducible tokens.
    pub now: Option<u64>,
}

impl<'de> Deserialize<'de> for RecordedLogin {
    // Not `#[serde(flatten)]`: flattening loses the path of a mistake inside
    // the login, and authors need "upstream: unknown field `acess_token`".
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut fields = Map::<String, Value>::deserialize(deserializer)?;
        let http = fields.remove("http");
        let now = fields.remove("now");
        Ok(RecordedLogin {
            login: from_value_with_path(Value::Object(fields), None)?,
            http: http
                .map(|h| from_value_with_path(h, Some("http")))
                .transpose()?,
            now: now
                .map(|n| from_value_with_path(n, Some("now")))
                .transpose()?,
        })
    }
}

/// Deserializes `value`, saying where inside it a mistake is.
fn from_value_with_path<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    value: Value,
    field: Option<&str>,
) -> Result<T, E> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let inner = error.path().to_string();
        let path = match (field, inner.as_str()) {
            (None, ".") => String::new(),
            (None, inner) => format!("{inner}: "),
            (Some(field), ".") => format!("{field}: "),
            (Some(field), inner) if inner.starts_with('[') => format!("{field}{inner}: "),
            (Some(field), inner) => format!("{field}.{inner}: "),
        };
        E::custom(format!("{path}{}", error.into_inner()))
    })
}

impl RecordedLogin {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        parse_yaml(path, &text)
    }
}

/// Parses `text` (from `path`), naming the file, the path inside the document
/// and the line of whatever is wrong.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, String> {
    // Two steps: YAML syntax errors carry their line; shape errors (unknown
    // key, missing field, wrong type) carry their path inside the document.
    // Through YAML's own value first: it refuses a duplicate key, which
    // would otherwise silently replace the first.
    let yaml: serde_norway::Value =
        serde_norway::from_str(text).map_err(|error| format!("{}: {error}", path.display()))?;
    let document: Value =
        serde_json::to_value(yaml).map_err(|error| format!("{}: {error}", path.display()))?;
    from_value_with_path::<T, serde_json::Error>(document, None)
        .map_err(|error| format!("{}: {error}", path.display()))
}

/// One canned request and its answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    pub request: CannedRequest,
    pub response: CannedResponse,
    /// An optional exchange may go unrequested; others must be requested.
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CannedRequest {
    #[serde(default = "get")]
    pub method: String,
    pub url: String,
    /// Headers the request must carry (names case-insensitive, values exact).
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// The body the request must carry, as text.
    pub body: Option<String>,
    /// The body the request must carry, as JSON (compared as values, so key
    /// order and spacing do not matter).
    pub json: Option<Value>,
}

impl CannedRequest {
    fn matches(&self, request: &OutboundRequest) -> bool {
        let body = request.body.as_deref().unwrap_or_default();
        self.method.eq_ignore_ascii_case(request.method.as_str())
            && reqwest::Url::parse(&self.url).is_ok_and(|url| url == request.url)
            && self.headers.iter().all(|(name, expected)| {
                request.headers.iter().any(|(actual_name, actual_value)| {
                    actual_name.eq_ignore_ascii_case(name)
                        && expected.as_str() == Some(actual_value.as_str())
                })
            })
            && self
                .body
                .as_ref()
                .is_none_or(|text| text.as_bytes() == body)
            && self.json.as_ref().is_none_or(|json| {
                serde_json::from_slice::<Value>(body).is_ok_and(|actual| actual == *json)
            })
    }
}

fn get() -> String {
    "GET".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CannedResponse {
    #[serde(default = "ok")]
    pub status: u16,
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// A JSON body, sent with `content-type: application/json`.
    pub json: Option<Value>,
    /// A text body, sent as it is.
    pub body: Option<String>,
}

fn ok() -> u16 {
    200
}

/// Answers requests from recorded exchanges, and remembers what was asked:
/// the requests that matched none, and the exchanges never requested.
pub struct CannedHttp {
    exchanges: Vec<Exchange>,
    log: Mutex<RequestLog>,
}

#[derive(Default)]
struct RequestLog {
    unmatched: Vec<String>,
    requested: Vec<bool>,
    refused: Vec<String>,
}

impl CannedHttp {
    pub fn new(exchanges: Vec<Exchange>) -> Self {
        let requested = vec![false; exchanges.len()];
        CannedHttp {
            exchanges,
            log: Mutex::new(RequestLog {
                requested,
                ..RequestLog::default()
            }),
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, RequestLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The requests no exchange matched, as `METHOD url`.
    pub fn unmatched(&self) -> Vec<String> {
        self.log().unmatched.clone()
    }

    /// The requests the plugin's HTTP policy refused before any answer was
    /// looked for, as `METHOD url: why`.
    pub fn refusals(&self) -> Vec<String> {
        self.log().refused.clone()
    }

    /// The exchanges that are not optional and were never requested, as
    /// `METHOD url`.
    pub fn unrequested(&self) -> Vec<String> {
        let log = self.log();
        self.exchanges
            .iter()
            .zip(&log.requested)
            .filter(|(exchange, requested)| !exchange.optional && !**requested)
            .map(|(exchange, _)| format!("{} {}", exchange.request.method, exchange.request.url))
            .collect()
    }

    fn find(&self, request: &OutboundRequest) -> Option<(usize, &Exchange)> {
        self.exchanges
            .iter()
            .enumerate()
            .find(|(_, exchange)| exchange.request.matches(request))
    }
}

impl OutboundHttpInterceptor for CannedHttp {
    fn refused(&self, _plugin: &str, request: &OutboundRequest, error: &HttpError) {
        // The case file is the author's own: the URL is shown whole.
        self.log()
            .refused
            .push(format!("{} {}: {error}", request.method, request.url));
    }

    fn intercept(&self, plugin: &str, request: &OutboundRequest) -> InterceptOutcome {
        let Some((index, exchange)) = self.find(request) else {
            let described = format!("{} {}", request.method, redacted_url(&request.url));
            tracing::warn!(plugin, request = %described, "no canned response matches");
            self.log().unmatched.push(described.clone());
            return InterceptOutcome::Complete(Err(HttpError::Transport(format!(
                "no canned response for {described}"
            ))));
        };
        self.log().requested[index] = true;
        let canned = &exchange.response;
        let mut headers: Vec<(String, String)> = canned
            .headers
            .iter()
            .map(|(name, value)| {
                let value = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                (name.to_ascii_lowercase(), value)
            })
            .collect();
        let body = match (&canned.json, &canned.body) {
            (Some(json), _) => {
                if !headers.iter().any(|(name, _)| name == "content-type") {
                    headers.push(("content-type".to_owned(), "application/json".to_owned()));
                }
                json.to_string().into_bytes()
            }
            (None, Some(text)) => text.clone().into_bytes(),
            (None, None) => Vec::new(),
        };
        InterceptOutcome::Complete(Ok(OutboundResponse {
            status: canned.status,
            headers,
            body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> OutboundRequest {
        OutboundRequest {
            method: reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            url: reqwest::Url::parse(url).unwrap(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).into(), (*v).into()))
                .collect(),
            body: (!body.is_empty()).then(|| body.as_bytes().to_vec()),
        }
    }

    fn canned(yaml: &str) -> CannedRequest {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn requests_match_on_method_url_headers_and_body() {
        let post = canned(
            "method: POST\nurl: https://api.test/x\nheaders: { x-key: k }\njson: { a: 1, b: [2] }",
        );
        let url = "https://api.test/x";
        let body = r#"{"b":[2],"a":1}"#;
        let key = [("X-Key", "k")];
        assert!(post.matches(&request("POST", url, &key, body)));
        for (method, url, headers, body) in [
            ("GET", url, &key, body),
            ("POST", url, &[("x-key", "other")], body),
            ("POST", url, &key, r#"{"a":2,"b":[2]}"#),
            ("POST", "https://api.test/y", &key, body),
        ] {
            assert!(
                !post.matches(&request(method, url, headers, body)),
                "{method} {url} {headers:?} {body}"
            );
        }

        let text = canned("method: POST\nurl: https://api.test/x\nbody: grant_type=x");
        assert!(text.matches(&request("POST", url, &[], "grant_type=x")));
        assert!(!text.matches(&request("POST", url, &[], "grant_type=y")));
    }

    #[test]
    fn unknown_keys_in_a_recorded_login_name_their_path() {
        let error = parse_yaml::<RecordedLogin>(
            Path::new("in.yaml"),
            "connection: c\nclient_id: a\nupstream: { access_token: t, id_token_claims: {} }\nhttp:\n  - request: { url: 'https://x.test', mehtod: GET }\n    response: {}\n",
        )
        .unwrap_err();
        assert!(
            error.contains("http[0].request") && error.contains("mehtod"),
            "{error}"
        );
    }
}
