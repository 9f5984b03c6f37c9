//! The `client_credentials` grant (RFC 6749 §4.4): a machine client's
//! access token for the Management API or an `[[apis]]` audience it lists.
//! For an `[[apis]]` audience the credentials-exchange chain runs first and
//! may add claims or deny; the Management API's tokens never go through it,
//! so that no plugin can shape or block the administrators' own access.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::{ClientRequest, ErrorCode, OAuthError, Service};
use claimsmith_capabilities::api::DenialCode;
use claimsmith_config::{ApiConfig, ClientConfig, GrantType};
use claimsmith_pipeline::{ExchangeFailure, RunOptions, TokenRequest};

/// The scopes of one machine token request: as asked, and as granted.
struct MachineScopes {
    /// The `scope` parameter's, as sent (none when it was absent).
    requested: Vec<String>,
    granted: Vec<String>,
}

impl Service {
    pub(super) async fn client_credentials(
        &self,
        request: &ClientRequest,
        now: u64,
    ) -> Result<Value, OAuthError> {
        let client = self.authenticate_client(request)?;
        if !client.allows(GrantType::ClientCredentials) || client.client_secret.is_none() {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnauthorizedClient,
                "this client may not use the client_credentials grant".to_owned(),
            ));
        }
        let audience = self.machine_audience(client, request)?;
        let api = self.config().api(&audience);
        let scopes = machine_scopes(client, request, api)?;
        let custom_claims = match api {
            Some(_) => {
                self.exchange_credentials(client, &audience, &scopes, request)
                    .await?
            }
            None => Map::new(),
        };
        let ttl = api
            .and_then(|api| api.token_ttl_secs)
            .unwrap_or(self.config().tokens.access_token_ttl_secs);
        let access_token = claimsmith_tokens::mint_client_access_token(
            &self.keys.signing_key_at(now),
            &claimsmith_tokens::ClientToken {
                issuer: self.issuer(),
                client_id: &client.client_id,
                audience: &audience,
                scopes: &scopes.granted,
                custom_claims: &custom_claims,
            },
            now,
            ttl,
        )
        .map_err(OAuthError::server_error)?;
        let scope = scopes.granted.join(" ");
        tracing::info!(client = %client.client_id, %audience, %scope, "issued a machine-to-machine token");
        Ok(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": scope,
        }))
    }

    /// The `audience` asked for (the Management API's when absent), once
    /// the client may ask for it.
    fn machine_audience(
        &self,
        client: &ClientConfig,
        request: &ClientRequest,
    ) -> Result<String, OAuthError> {
        let management = claimsmith_core::management_audience(self.issuer());
        let audience = request
            .form
            .get("audience")
            .cloned()
            .unwrap_or_else(|| management.clone());
        if !client.machine_may_ask_for(&audience, &management) {
            return Err(OAuthError::invalid_request(format!(
                "audience `{audience}` is not one this client may ask for: {}",
                if client.allowed_audiences.is_empty() {
                    management
                } else {
                    client.allowed_audiences.join(", ")
                }
            )));
        }
        Ok(audience)
    }

    /// Runs `[[credentials_exchange]]`: the custom claims of the token, or
    /// the error a denying or failing action answers the request with.
    async fn exchange_credentials(
        &self,
        client: &ClientConfig,
        audience: &str,
        scopes: &MachineScopes,
        request: &ClientRequest,
    ) -> Result<Map<String, Value>, OAuthError> {
        let body: Map<String, Value> = request
            .form
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        let info = crate::authorize::request_info(request.caller, &request.headers);
        let token_request = TokenRequest {
            client,
            audience,
            requested_scopes: &scopes.requested,
            scopes: &scopes.granted,
            request: &info,
            body: &body,
        };
        // The chain of this moment, for the whole run, as a login's.
        let report = self
            .pipeline()
            .exchange_credentials(&token_request, &RunOptions::default())
            .await;
        self.metrics.steps(&report.steps);
        report.outcome.map_err(|failure| match failure {
            ExchangeFailure::Denied { code, reason, .. } => denial(code, reason),
            failure => OAuthError::server_error(format!(
                "the credentials-exchange chain failed for client `{}`: {failure}",
                client.client_id
            )),
        })
    }
}

/// The token endpoint's answer to an action's `api.access.deny`.
fn denial(code: DenialCode, reason: String) -> OAuthError {
    let (status, error) = match code {
        DenialCode::InvalidScope => (StatusCode::BAD_REQUEST, ErrorCode::InvalidScope),
        DenialCode::InvalidRequest => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
        DenialCode::ServerError => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::ServerError),
    };
    OAuthError::new(status, error, reason)
}

/// The scopes asked for, or the client's scopes of the audience when none
/// were; refused unless each is the client's and the audience's (the
/// Management API's, or those the API defines).
fn machine_scopes(
    client: &ClientConfig,
    request: &ClientRequest,
    api: Option<&ApiConfig>,
) -> Result<MachineScopes, OAuthError> {
    let of_audience = |scope: &String| match api {
        Some(api) => api.scopes.contains(scope),
        None => claimsmith_core::MANAGEMENT_SCOPES.contains(&scope.as_str()),
    };
    let requested: Vec<String> = request
        .form
        .get("scope")
        .map(|asked| asked.split_ascii_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let granted: Vec<String> = match request.form.get("scope") {
        None => client
            .allowed_scopes
            .iter()
            .filter(|s| of_audience(s))
            .cloned()
            .collect(),
        Some(_) => requested.clone(),
    };
    if let Some(scope) = granted
        .iter()
        .find(|s| !client.allowed_scopes.contains(s) || !of_audience(s))
    {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidScope,
            format!("scope `{scope}` is not allowed to this client"),
        ));
    }
    Ok(MachineScopes { requested, granted })
}
