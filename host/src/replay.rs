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
};
use crate::pipeline::Login;

/// A login to replay, as written in an input file (JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedLogin {
    #[serde(flatten)]
    pub login: Login,
    /// When present, plugins' HTTP is answered from these and never sent.
    pub http: Option<Vec<Exchange>>,
    /// Pins the clock (unix seconds) for reproducible tokens.
    pub now: Option<u64>,
}

impl RecordedLogin {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))
    }
}

/// One canned request and its answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    pub request: CannedRequest,
    pub response: CannedResponse,
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

/// Answers requests from recorded exchanges, and remembers the requests that
/// matched none.
pub struct CannedHttp {
    exchanges: Vec<Exchange>,
    unmatched: Mutex<Vec<String>>,
}

impl CannedHttp {
    pub fn new(exchanges: Vec<Exchange>) -> Self {
        CannedHttp {
            exchanges,
            unmatched: Mutex::new(Vec::new()),
        }
    }

    /// The requests no exchange matched, as `METHOD url`.
    pub fn unmatched(&self) -> Vec<String> {
        self.unmatched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn find(&self, request: &OutboundRequest) -> Option<&Exchange> {
        self.exchanges.iter().find(|exchange| {
            let canned = &exchange.request;
            canned.method.eq_ignore_ascii_case(request.method.as_str())
                && reqwest::Url::parse(&canned.url).is_ok_and(|url| url == request.url)
                && canned.headers.iter().all(|(name, expected)| {
                    request.headers.iter().any(|(actual_name, actual_value)| {
                        actual_name.eq_ignore_ascii_case(name)
                            && expected.as_str() == Some(actual_value.as_str())
                    })
                })
        })
    }
}

impl OutboundHttpInterceptor for CannedHttp {
    fn intercept(&self, plugin: &str, request: &OutboundRequest) -> InterceptOutcome {
        let Some(exchange) = self.find(request) else {
            let described = format!("{} {}", request.method, request.url);
            tracing::warn!(plugin, request = %described, "no canned response matches");
            self.unmatched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(described.clone());
            return InterceptOutcome::Complete(Err(HttpError::Transport(format!(
                "no canned response for {described}"
            ))));
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
