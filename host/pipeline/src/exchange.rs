//! The credentials-exchange chain: `[[credentials_exchange]]` actions, in
//! order, before a machine client's access token for an `[[apis]]` audience
//! is minted. Each sees the claims the ones before set; a denial stops the
//! chain and answers the token request with its OAuth error. The service
//! mints the token (and never runs this chain for the Management API).

use serde_json::{Map, Value};

use claimsmith_capabilities::api::{ActionEffects, ApiError, DenialCode, validate_custom_claims};
use claimsmith_config::ClientConfig;
use claimsmith_engine::{
    CallOptions, EventClient, ExchangeAccessToken, ExchangeEvent, ExchangeRequest,
    ExchangeTransaction, PluginError, ResourceServer,
};

use crate::{ActionOutcome, Pipeline, RequestInfo, RunOptions, StepReport, json_text};

/// A machine client's token request, as the chain sees it.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    pub client: &'a ClientConfig,
    /// An `[[apis]]` identifier.
    pub audience: &'a str,
    /// The `scope` parameter's scopes, as sent (none when it was absent).
    pub requested_scopes: &'a [String],
    /// The scopes the token will carry.
    pub scopes: &'a [String],
    pub request: &'a RequestInfo,
    /// The request's form fields (the actions get them without the
    /// client's credentials).
    pub body: &'a Map<String, Value>,
}

/// Form fields a credentials-exchange action never sees.
const CREDENTIAL_FIELDS: [&str; 2] = ["client_secret", "client_assertion"];

/// One run of the chain: its outcome and what each action did.
#[derive(Debug)]
pub struct ExchangeReport {
    /// The custom claims for the access token.
    pub outcome: Result<Map<String, Value>, ExchangeFailure>,
    pub steps: Vec<StepReport>,
}

/// Why no token is minted.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeFailure {
    #[error("token request denied by `{plugin}` ({}): {reason}", code.as_str())]
    Denied {
        plugin: String,
        code: DenialCode,
        reason: String,
    },
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("custom claims of the access token refused: {0}")]
    InvalidClaims(ApiError),
}

impl Pipeline {
    /// Runs the credentials-exchange chain for `request`.
    pub async fn exchange_credentials(
        &self,
        request: &TokenRequest<'_>,
        options: &RunOptions,
    ) -> ExchangeReport {
        let call = CallOptions {
            interceptor: options.interceptor.clone(),
            pinned_clock: options.now,
            log_sink: options.log_sink.clone(),
            // A machine client has no browser to send.
            redirect: None,
        };
        let mut steps = Vec::new();
        let outcome = self.run_exchange(request, &call, &mut steps).await;
        ExchangeReport { outcome, steps }
    }

    async fn run_exchange(
        &self,
        request: &TokenRequest<'_>,
        call: &CallOptions,
        steps: &mut Vec<StepReport>,
    ) -> Result<Map<String, Value>, ExchangeFailure> {
        let mut event = exchange_event(request);
        let mut effects = ActionEffects::default();
        for step in &self.exchange_actions {
            event.access_token.custom_claims = json_text(&effects.access_token_claims);
            let invocation = step
                .plugin
                .on_execute_credentials_exchange(&event, effects.clone(), call)
                .await;
            match step.outcome(&step.plugin, invocation, steps) {
                ActionOutcome::Changed(changed) => effects = changed,
                ActionOutcome::Skipped => {}
                ActionOutcome::Denied(denied) => {
                    let plugin = step.plugin.name().to_owned();
                    let reason = denied.denial.unwrap_or_default();
                    tracing::info!(plugin, reason, "machine-to-machine token denied");
                    return Err(ExchangeFailure::Denied {
                        plugin,
                        // The world's `deny` always names one.
                        code: denied.denial_code.unwrap_or(DenialCode::ServerError),
                        reason,
                    });
                }
                ActionOutcome::Failed(error) => return Err(error.into()),
            }
        }
        validate_custom_claims(&effects.access_token_claims)
            .map_err(ExchangeFailure::InvalidClaims)?;
        Ok(effects.access_token_claims)
    }
}

fn exchange_event(request: &TokenRequest<'_>) -> ExchangeEvent {
    let client = request.client;
    ExchangeEvent {
        client: EventClient {
            client_id: client.client_id.clone(),
            name: client.name.clone(),
            metadata: json_text(&client.metadata),
        },
        resource_server: ResourceServer {
            identifier: request.audience.to_owned(),
        },
        transaction: ExchangeTransaction {
            requested_scopes: request.requested_scopes.to_vec(),
        },
        request: ExchangeRequest {
            ip: request.request.ip.clone(),
            hostname: request.request.hostname.clone(),
            user_agent: request.request.user_agent.clone(),
            language: request.request.language.clone(),
            method: "POST".to_owned(),
            body: json_text(&without_credentials(request.body)),
        },
        access_token: ExchangeAccessToken {
            scopes: request.scopes.to_vec(),
            custom_claims: "{}".to_owned(),
        },
    }
}

/// The form, less the client's secret: an action has no use for it and
/// must not be able to log or send it.
fn without_credentials(body: &Map<String, Value>) -> Map<String, Value> {
    body.iter()
        .filter(|(name, _)| !CREDENTIAL_FIELDS.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    #[test]
    fn the_actions_never_see_the_clients_credentials() {
        let Value::Object(form) = json!({
            "grant_type": "client_credentials",
            "client_id": "svc",
            "client_secret": "s3cret",
            "client_assertion": "eyJ...",
            "audience": "https://api.example.com",
        }) else {
            unreachable!()
        };
        let body: Map<String, Value> = super::without_credentials(&form);
        let names: Vec<&str> = body.keys().map(String::as_str).collect();
        assert_eq!(names, ["audience", "client_id", "grant_type"]);
    }
}
