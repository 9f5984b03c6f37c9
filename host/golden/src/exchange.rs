//! Golden cases of the credentials-exchange world: a recorded machine token
//! request instead of a login, run through the configured
//! `[[credentials_exchange]]` chain (or the one plugin the case names).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::replay::Exchange;
use claimsmith_config::ClientConfig;
use claimsmith_pipeline::{ExchangeFailure, ExchangeReport, RequestInfo, TokenRequest};

/// A machine client's token request, as a case's `input` gives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedTokenRequest {
    pub client: RecordedClient,
    /// The API the token is for (an `[[apis]]` identifier in a deployment).
    pub audience: String,
    /// The `scope` parameter's scopes, as sent.
    #[serde(default)]
    pub requested_scopes: Vec<String>,
    /// The scopes the token will carry; the requested ones when absent.
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub request: RequestInfo,
    /// The form fields, as `event.request.body` shows them.
    #[serde(default)]
    pub body: Map<String, Value>,
    /// When present, plugins' HTTP is answered from these and never sent.
    pub http: Option<Vec<Exchange>>,
    /// Pins the clock (unix seconds).
    pub now: Option<u64>,
}

/// The client asking, as `event.client` shows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedClient {
    pub client_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

impl RecordedTokenRequest {
    /// The client as config would hold it.
    pub(crate) fn client_config(&self) -> ClientConfig {
        ClientConfig {
            client_id: self.client.client_id.clone(),
            name: self.client.name.clone(),
            metadata: self.client.metadata.clone(),
            ..ClientConfig::default()
        }
    }

    /// The request as the pipeline takes it, for `client`.
    pub(crate) fn token_request<'a>(&'a self, client: &'a ClientConfig) -> TokenRequest<'a> {
        TokenRequest {
            client,
            audience: &self.audience,
            requested_scopes: &self.requested_scopes,
            scopes: self.scopes.as_deref().unwrap_or(&self.requested_scopes),
            request: &self.request,
            body: &self.body,
        }
    }
}

/// The outcome of a credentials-exchange run, in the shape of `expect`:
/// `claims.access_token` and `scopes`, `denied` (with its `code`) or `error`.
pub(crate) fn exchange_outcome(report: &ExchangeReport, scopes: &[String]) -> Map<String, Value> {
    let mut actual = Map::new();
    actual.insert("skipped".into(), crate::skipped_steps(&report.steps));
    match &report.outcome {
        Ok(claims) => {
            actual.insert("claims".into(), json!({ "access_token": claims }));
            actual.insert("scopes".into(), json!(scopes));
        }
        Err(ExchangeFailure::Denied {
            plugin,
            code,
            reason,
        }) => {
            actual.insert(
                "denied".into(),
                json!({ "plugin": plugin, "reason": reason, "code": code.as_str() }),
            );
        }
        Err(failure) => {
            let kind = match failure {
                ExchangeFailure::Plugin(error) => crate::plugin_error_kind(error),
                ExchangeFailure::InvalidClaims(_) => "invalid-claims",
                ExchangeFailure::Denied { .. } => "denied",
            };
            actual.insert(
                "error".into(),
                json!({ "kind": kind, "message": failure.to_string() }),
            );
        }
    }
    actual
}
