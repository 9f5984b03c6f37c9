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

use crate::redaction::Redaction;
use claimsmith_capabilities::http::{
    HttpError, InterceptOutcome, OutboundHttpInterceptor, OutboundRequest, OutboundResponse,
    redacted_url,
};
use claimsmith_config::Config;
use claimsmith_pipeline::Login;

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
        let mut login: Login = from_value_with_path(Value::Object(fields), None)?;
        if login.upstream.id_token.is_empty() {
            login.upstream.id_token = unsigned_id_token(&login.upstream.id_token_claims);
        }
        Ok(RecordedLogin {
            login,
            http: http
                .map(|h| from_value_with_path(h, Some("http")))
                .transpose()?,
            now: now
                .map(|n| from_value_with_path(n, Some("now")))
                .transpose()?,
        })
    }
}

/// The raw id token of a recording that gives only its claims: an unsigned
/// compact JWT (`alg: none`) of those claims, so that a plugin reading the
/// raw token, as Auth0 scripts do with `jwt.decode(ctx.id_token)`, sees what
/// the recording says. Plugins only decode it: the claims stand for a token
/// the host has verified.
fn unsigned_id_token(claims: &Map<String, Value>) -> String {
    use base64::Engine as _;
    let encode =
        |value: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let header = serde_json::json!({ "alg": "none", "typ": "JWT" });
    format!(
        "{}.{}.",
        encode(&header),
        encode(&Value::Object(claims.clone()))
    )
}

/// Deserializes `value`, saying where inside it a mistake is.
pub(crate) fn from_value_with_path<T: serde::de::DeserializeOwned, E: serde::de::Error>(
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
    /// An optional exchange may go unrequested, or be requested any number
    /// of times; others must be requested exactly `times`.
    #[serde(default)]
    pub optional: bool,
    /// How many requests this exchange answers (default 1). Identical
    /// requests with different answers are written as several exchanges:
    /// the first one not used up answers.
    pub times: Option<u32>,
}

impl Exchange {
    /// The most requests this exchange answers.
    fn max_uses(&self) -> u32 {
        self.times
            .unwrap_or(if self.optional { u32::MAX } else { 1 })
    }

    /// The fewest requests the case needs of it.
    fn min_uses(&self) -> u32 {
        if self.optional { 0 } else { self.max_uses() }
    }
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
    fn matches(&self, request: &OutboundRequest, redacted_url: Option<&str>) -> bool {
        self.differences(request, redacted_url).is_empty()
    }

    /// What differs between this recorded request and `request`, in words
    /// ("header authorization: expected `Bearer a`, got `Bearer b`").
    /// `redacted_url` is the request's URL with the run's secrets replaced:
    /// a captured login's URL holds `[redacted]` where a secret was.
    fn differences(&self, request: &OutboundRequest, redacted_url: Option<&str>) -> Vec<String> {
        let mut differences = Vec::new();
        if !self.method.eq_ignore_ascii_case(request.method.as_str()) {
            differences.push(format!(
                "method: expected {}, got {}",
                self.method, request.method
            ));
        }
        let same_url = reqwest::Url::parse(&self.url).is_ok_and(|url| url == request.url)
            || redacted_url.is_some_and(|url| url == self.url);
        if !same_url {
            differences.push(format!(
                "url: expected `{}`, got `{}`",
                self.url, request.url
            ));
        }
        for (name, expected) in &self.headers {
            let actual = request
                .headers
                .iter()
                .find(|(actual_name, _)| actual_name.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str());
            let expected_text = expected
                .as_str()
                .map_or_else(|| expected.to_string(), str::to_owned);
            if actual != Some(expected_text.as_str()) {
                differences.push(match actual {
                    Some(actual) => {
                        format!("header {name}: expected `{expected_text}`, got `{actual}`")
                    }
                    None => format!("header {name}: expected `{expected_text}`, got none"),
                });
            }
        }
        let body = request.body.as_deref().unwrap_or_default();
        if let Some(text) = &self.body
            && text.as_bytes() != body
        {
            differences.push(format!(
                "body: expected `{text}`, got `{}`",
                String::from_utf8_lossy(body)
            ));
        }
        if let Some(json) = &self.json
            && !serde_json::from_slice::<Value>(body).is_ok_and(|actual| actual == *json)
        {
            differences.push(format!(
                "json body: expected `{json}`, got `{}`",
                String::from_utf8_lossy(body)
            ));
        }
        differences
    }
}

/// A request as a case's author reads it: method, the whole URL (the case
/// file is the author's own), headers and body.
/// `request` as a note shows it, and why no exchange answered it; with
/// `hide_credentials`, what it authenticates with shows as its scheme only.
fn describe_unmatched(request: &OutboundRequest, why: &str, hide_credentials: bool) -> String {
    let mut text = format!("{} {}", request.method, request.url);
    let mut why = why.to_owned();
    for (name, value) in &request.headers {
        let shown = if hide_credentials && is_credential_header(name) {
            let scheme = value.split_once(' ').map_or("", |(scheme, _)| scheme);
            why = why.replace(value.as_str(), "[redacted]");
            format!("{scheme} [redacted]").trim_start().to_owned()
        } else {
            value.clone()
        };
        text += &format!("\n  {name}: {shown}");
    }
    if let Some(body) = &request.body {
        text += &format!("\n  body: {}", String::from_utf8_lossy(body));
    }
    format!("{text}\n  ({why})")
}

/// Request headers that carry credentials.
const CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
];

fn is_credential_header(name: &str) -> bool {
    CREDENTIAL_HEADERS.contains(&name.to_ascii_lowercase().as_str())
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
    /// Notes show credential headers by their scheme only (the console's
    /// Try it runs plugins with their real secrets; a case file's are the
    /// author's own and shown whole).
    hide_credentials: bool,
    /// The secrets of the run, which a recorded URL may hold replaced.
    secrets: Option<Redaction>,
}

#[derive(Default)]
struct RequestLog {
    unmatched: Vec<String>,
    /// How many requests each exchange answered.
    uses: Vec<u32>,
    refused: Vec<String>,
}

impl CannedHttp {
    pub fn new(exchanges: Vec<Exchange>) -> Self {
        let uses = vec![0; exchanges.len()];
        CannedHttp {
            exchanges,
            log: Mutex::new(RequestLog {
                uses,
                ..RequestLog::default()
            }),
            hide_credentials: false,
            secrets: None,
        }
    }

    /// As [`CannedHttp::new`], a recorded URL holding `[redacted]` where
    /// one of `config`'s secrets was matching the request that sends it
    /// there (a captured login's, whose secrets were replaced).
    pub fn matching_secrets_of(mut self, config: &Config) -> Self {
        self.secrets = Some(Redaction::of(config, &[]));
        self
    }

    /// As [`CannedHttp::new`], its notes showing no credential header's value.
    pub fn hiding_credentials(mut self) -> Self {
        self.hide_credentials = true;
        self
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

    /// The exchanges requested fewer times than they must be, as
    /// `METHOD url`, with the count when it is not simply "never".
    pub fn unrequested(&self) -> Vec<String> {
        let log = self.log();
        self.exchanges
            .iter()
            .zip(&log.uses)
            .filter(|(exchange, uses)| **uses < exchange.min_uses())
            .map(|(exchange, uses)| {
                let request = format!("{} {}", exchange.request.method, exchange.request.url);
                if *uses == 0 && exchange.min_uses() == 1 {
                    request
                } else {
                    format!(
                        "{request} (requested {uses} of {} times)",
                        exchange.min_uses()
                    )
                }
            })
            .collect()
    }

    /// The first matching exchange not used up, counting the use; or why
    /// there is none, with the nearest exchange and what differed.
    fn answer(&self, request: &OutboundRequest) -> Result<&Exchange, String> {
        let redacted_url =
            (self.secrets.as_ref()).map(|secrets| secrets.text(request.url.as_str()));
        let redacted_url = redacted_url.as_deref();
        let mut log = self.log();
        let mut used_up = None;
        for (index, exchange) in self.exchanges.iter().enumerate() {
            if exchange.request.matches(request, redacted_url) {
                if log.uses[index] < exchange.max_uses() {
                    log.uses[index] += 1;
                    return Ok(exchange);
                }
                used_up.get_or_insert(exchange);
            }
        }
        if let Some(exchange) = used_up {
            return Err(format!(
                "its exchange answers {} request(s) and was used up; add `times:` or another exchange",
                exchange.max_uses()
            ));
        }
        Err(self
            .exchanges
            .iter()
            .map(|exchange| {
                (
                    exchange,
                    exchange.request.differences(request, redacted_url),
                )
            })
            .min_by_key(|(_, differences)| differences.len())
            .map_or_else(
                || "the case has no exchanges".to_owned(),
                |(exchange, differences)| {
                    format!(
                        "nearest exchange `{} {}` differs in {}",
                        exchange.request.method,
                        exchange.request.url,
                        differences.join("; ")
                    )
                },
            ))
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
        let exchange = match self.answer(request) {
            Ok(exchange) => exchange,
            Err(why) => {
                let described = format!("{} {}", request.method, redacted_url(&request.url));
                tracing::warn!(plugin, request = %described, "no canned response matches");
                self.log()
                    .unmatched
                    .push(describe_unmatched(request, &why, self.hide_credentials));
                return InterceptOutcome::Complete(Err(HttpError::Transport(format!(
                    "no canned response for {described}"
                ))));
            }
        };
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

    #[test]
    fn a_note_hides_credential_headers_when_asked() {
        let sent = request(
            "POST",
            "https://api.example.com/token",
            &[
                ("Authorization", "Basic c2VjcmV0"),
                ("Accept", "application/json"),
            ],
            "",
        );
        let why = "differs in header authorization: expected `Basic x`, got `Basic c2VjcmV0`";
        let hidden = describe_unmatched(&sent, why, true);
        assert!(!hidden.contains("c2VjcmV0"), "{hidden}");
        assert!(
            hidden.contains("Authorization: Basic [redacted]"),
            "{hidden}"
        );
        assert!(hidden.contains("Accept: application/json"), "{hidden}");
        let shown = describe_unmatched(&sent, why, false);
        assert!(
            shown.contains("Authorization: Basic c2VjcmV0"),
            "a case's own: {shown}"
        );
    }

    fn canned(yaml: &str) -> CannedRequest {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn a_recording_without_a_raw_id_token_gets_an_unsigned_one_of_its_claims() {
        use base64::Engine as _;
        let recorded: RecordedLogin = serde_norway::from_str(
            "connection: c\nclient_id: a\nupstream: { access_token: t, id_token_claims: { sub: u, geoipcountry: SG } }\n",
        )
        .unwrap();
        let token = &recorded.login.upstream.id_token;
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{token}");
        assert_eq!(parts[2], "", "unsigned");
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap();
        let claims: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({ "sub": "u", "geoipcountry": "SG" })
        );

        let given: RecordedLogin = serde_norway::from_str(
            "connection: c\nclient_id: a\nupstream: { access_token: t, id_token: raw, id_token_claims: {} }\n",
        )
        .unwrap();
        assert_eq!(given.login.upstream.id_token, "raw");
    }

    #[test]
    fn requests_match_on_method_url_headers_and_body() {
        let post = canned(
            "method: POST\nurl: https://api.test/x\nheaders: { x-key: k }\njson: { a: 1, b: [2] }",
        );
        let url = "https://api.test/x";
        let body = r#"{"b":[2],"a":1}"#;
        let key = [("X-Key", "k")];
        assert!(post.matches(&request("POST", url, &key, body), None));
        for (method, url, headers, body) in [
            ("GET", url, &key, body),
            ("POST", url, &[("x-key", "other")], body),
            ("POST", url, &key, r#"{"a":2,"b":[2]}"#),
            ("POST", "https://api.test/y", &key, body),
        ] {
            assert!(
                !post.matches(&request(method, url, headers, body), None),
                "{method} {url} {headers:?} {body}"
            );
        }

        let text = canned("method: POST\nurl: https://api.test/x\nbody: grant_type=x");
        assert!(text.matches(&request("POST", url, &[], "grant_type=x"), None));
        assert!(!text.matches(&request("POST", url, &[], "grant_type=y"), None));
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
