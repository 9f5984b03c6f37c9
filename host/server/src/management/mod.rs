//! The Management API under `<issuer>/api/v2/`, in the shape of Auth0's:
//! users (read, search, metadata updates), roles and their permissions
//! ([`roles`]), the login trail, the plugins.
//!
//! Every route takes a Bearer access token of a machine-to-machine client
//! (the client credentials grant, audience [`audience`]) and checks the
//! scope it needs. The OpenAPI 3.1 document at `/api/v2/openapi.json` is
//! generated from the handlers' annotations, so it lists every route.
//!
//! Owns the API's shapes and its checks; the data is the [`Store`]'s, the
//! plugins are the current chain's. It never returns a secret, an upstream
//! token or a refresh token.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod plugins;
mod roles;

pub use plugins::{MAX_COMPONENT_BYTES, reads_its_own_body};

use super::Service;
use claimsmith_config::{ClientConfig, GrantType};
use claimsmith_store::{AdminAction, LoginFilter, LoginListing, Page, StoredUserRow, UserListing};

/// The most items one page holds.
const MAX_PER_PAGE: u64 = 100;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Claimsmith Management API",
        description = "Users, roles, the login trail and the plugins of a Claimsmith deployment, in the \
                       shape of Auth0's Management API v2. Tokens come from the token endpoint \
                       with the client credentials grant, for the audience `<issuer>/api/v2/`."
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The API's routes (relative to `/api/v2`) and the OpenAPI document
/// describing exactly them.
pub fn routes() -> (axum::Router<Arc<Service>>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(get_user, patch_user))
        .routes(routes!(list_users))
        .routes(routes!(users_by_email))
        .routes(routes!(user_logs))
        .routes(routes!(list_logs))
        .routes(routes!(get_log))
        .routes(routes!(list_plugins))
        .routes(routes!(plugins::list_versions, plugins::push_version))
        .routes(routes!(plugins::version_component))
        .routes(routes!(plugins::deploy))
        .routes(routes!(plugins::list_deployments))
        .routes(routes!(
            plugins::get_canary,
            plugins::start_canary,
            plugins::stop_canary
        ))
        .routes(routes!(
            plugins::get_shadow,
            plugins::start_shadow,
            plugins::stop_shadow
        ))
        .routes(routes!(roles::list_roles, roles::create_role))
        .routes(routes!(
            roles::get_role,
            roles::update_role,
            roles::delete_role
        ))
        .routes(routes!(
            roles::role_permissions,
            roles::add_role_permissions,
            roles::remove_role_permissions
        ))
        .routes(routes!(roles::role_users))
        .routes(routes!(
            roles::user_roles,
            roles::assign_roles,
            roles::unassign_roles
        ))
        .routes(routes!(roles::user_permissions))
        .split_for_parts()
}

/// An error answer, in Auth0's shape.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    status_code: u16,
    error: String,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status_code: status.as_u16(),
            error: status.canonical_reason().unwrap_or("Error").to_owned(),
            message: message.into(),
        }
    }

    fn server(error: impl std::fmt::Display) -> Self {
        let reference = super::correlation_id();
        tracing::error!(%error, reference, "Management API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request failed (reference {reference})"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status_code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        response
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// `body` as a `T`, or Auth0's payload validation error.
fn payload<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| bad_request(format!("Payload validation error: {error}")))
}

/// Who is calling: the machine client of a verified token that has `scope`.
fn caller(service: &Service, headers: &HeaderMap, scope: &str) -> Result<String, ApiError> {
    let claims = service
        .verify_bearer(
            headers,
            Some(&claimsmith_core::management_audience(service.issuer())),
        )
        .map_err(|why| ApiError::new(StatusCode::UNAUTHORIZED, why))?;
    machine_caller(&claims, scope, |client_id| service.client(client_id))
}

/// The client `claims` name, when they are a client-credentials token of a
/// configured machine client and grant `scope`. A user's access token is
/// refused whatever its audience and scopes: the config keeps the
/// Management API's audience and scopes off login clients and the `api`
/// capability keeps its scopes from actions, and this check holds should
/// either ever fail.
fn machine_caller<'c>(
    claims: &Map<String, Value>,
    scope: &str,
    client: impl Fn(&str) -> Option<&'c ClientConfig>,
) -> Result<String, ApiError> {
    let client_id = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let from_a_machine = claims.get("gty").and_then(Value::as_str)
        == Some(claimsmith_tokens::CLIENT_CREDENTIALS_GTY)
        && client(client_id).is_some_and(|client| client.allows(GrantType::ClientCredentials));
    if !from_a_machine {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the Management API takes only client-credentials tokens of machine clients",
        ));
    }
    let granted = claims.get("scope").and_then(Value::as_str).unwrap_or("");
    if !granted.split_ascii_whitespace().any(|s| s == scope) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("Insufficient scope, expected: {scope}"),
        ));
    }
    Ok(client_id.to_owned())
}

/// A user in Auth0's shape: the profile snapshot of the last login at the
/// top level, then what Claimsmith keeps about the user.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    user_id: String,
    /// The profile snapshot of the last login, as the profile fetcher shaped
    /// it (email, name, geo_ip_country, ...).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    profile: Map<String, Value>,
    #[schema(value_type = Object)]
    user_metadata: Map<String, Value>,
    #[schema(value_type = Object)]
    app_metadata: Map<String, Value>,
    logins_count: u32,
    /// RFC 3339.
    last_login: Option<String>,
    /// RFC 3339.
    created_at: String,
}

impl User {
    fn new(user_id: String, row: StoredUserRow) -> Self {
        let mut profile = row.profile;
        // What Claimsmith keeps wins over a profile field of the same name.
        for kept in [
            "user_id",
            "user_metadata",
            "app_metadata",
            "logins_count",
            "last_login",
            "created_at",
        ] {
            profile.remove(kept);
        }
        User {
            user_id,
            profile,
            user_metadata: row.user.user_metadata,
            app_metadata: row.user.app_metadata,
            logins_count: row.user.logins_count,
            last_login: row.user.last_login,
            created_at: row.created_at,
        }
    }
}

/// A page of a listing, with its place in the whole (`include_totals`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// The page, from 0.
    #[serde(default)]
    page: u64,
    /// Items per page, 1 to 100 (default 50).
    per_page: Option<u64>,
    /// Answer `{start, limit, length, total, <items>}` instead of the bare
    /// list.
    #[serde(default)]
    include_totals: bool,
}

impl Paging {
    fn limit(&self) -> u64 {
        self.per_page.unwrap_or(50).clamp(1, MAX_PER_PAGE)
    }

    fn offset(&self) -> u64 {
        self.page.saturating_mul(self.limit())
    }

    /// `items` as the answer: the list, or with totals under `key`.
    fn answer<T: Serialize>(&self, key: &str, items: Vec<T>, total: u64) -> Response {
        if !self.include_totals {
            return Json(items).into_response();
        }
        Json(json!({
            "start": self.offset(),
            "limit": self.limit(),
            "length": items.len(),
            "total": total,
            key: items,
        }))
        .into_response()
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    /// A user id or an email, or the start of one (emails compared without
    /// case). Auth0's `email:"..."` and `user_id:"..."` forms are read too.
    q: Option<String>,
}

/// Auth0's `field:"value"` query, or the bare value.
fn search_term(q: &str) -> &str {
    let q = q.trim();
    let value = q
        .strip_prefix("email:")
        .or_else(|| q.strip_prefix("user_id:"))
        .unwrap_or(q);
    value.trim_matches('"')
}

#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    params(UserSearch, Paging),
    responses(
        (status = 200, description = "The users found, by user id", body = [User]),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:users", body = ApiError)
    ),
    security(("bearer" = ["read:users"]))
)]
async fn list_users(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Query(search): Query<UserSearch>,
    Query(paging): Query<Paging>,
) -> Result<Response, ApiError> {
    caller(&service, &headers, "read:users")?;
    let Page { items, total } = service
        .store
        .search_users(
            search_term(search.q.as_deref().unwrap_or("")),
            paging.offset(),
            paging.limit(),
        )
        .await
        .map_err(ApiError::server)?;
    let users: Vec<User> = items
        .into_iter()
        .map(|UserListing { user_id, row }| User::new(user_id, row))
        .collect();
    Ok(paging.answer("users", users, total))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EmailQuery {
    /// The email address, compared without case (required).
    email: Option<String>,
}

#[utoipa::path(
    get,
    path = "/users-by-email",
    tag = "users",
    params(EmailQuery),
    responses(
        (status = 200, description = "The users with this email, by user id", body = [User]),
        (status = 400, description = "Without `email`", body = ApiError),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:users", body = ApiError)
    ),
    security(("bearer" = ["read:users"]))
)]
async fn users_by_email(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Query(query): Query<EmailQuery>,
) -> Result<Json<Vec<User>>, ApiError> {
    caller(&service, &headers, "read:users")?;
    let Some(email) = query.email else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Query validation error: 'email' is required",
        ));
    };
    let users = service
        .store
        .users_with_email(email.trim(), MAX_PER_PAGE)
        .await
        .map_err(ApiError::server)?
        .into_iter()
        .map(|UserListing { user_id, row }| User::new(user_id, row))
        .collect();
    Ok(Json(users))
}

#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The user id, `<connection>|<upstream sub>`")),
    responses(
        (status = 200, body = User),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:users", body = ApiError),
        (status = 404, description = "No such user", body = ApiError)
    ),
    security(("bearer" = ["read:users"]))
)]
async fn get_user(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    caller(&service, &headers, "read:users")?;
    // A user being signed in is answered as that login shows them (Auth0
    // has stored them by the time its Actions run); otherwise as stored.
    let signing_in = service
        .store
        .user_signing_in(&id, service.clock.now())
        .await
        .map_err(ApiError::server)?;
    let row = match signing_in {
        Some(row) => row,
        None => service
            .store
            .load_user(&id)
            .await
            .map_err(ApiError::server)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "The user does not exist."))?,
    };
    Ok(Json(User::new(id, row)))
}

/// What a PATCH may change.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// Merged into the user's: each top-level property replaces the old one,
    /// `null` removes it.
    #[schema(value_type = Option<Object>)]
    user_metadata: Option<Map<String, Value>>,
    /// Merged likewise.
    #[schema(value_type = Option<Object>)]
    app_metadata: Option<Map<String, Value>>,
}

/// Auth0's metadata merge: top-level properties replace, `null` deletes.
pub fn merge_metadata(into: &mut Map<String, Value>, update: Map<String, Value>) {
    for (name, value) in update {
        if value.is_null() {
            into.remove(&name);
        } else {
            into.insert(name, value);
        }
    }
}

/// The cap an action's metadata has applies to an update's too: many small
/// PATCHes must not grow a user without end.
fn check_metadata_size(kind: &str, merged: &Map<String, Value>) -> Result<(), ApiError> {
    let cap = claimsmith_capabilities::api::MAX_PAYLOAD_BYTES;
    let size = serde_json::to_vec(merged).map_or(u64::MAX, |bytes| bytes.len() as u64);
    if size > cap {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{kind} would be {size} bytes, more than the {cap} a user may have"),
        ));
    }
    Ok(())
}

#[utoipa::path(
    patch,
    path = "/users/{id}",
    tag = "users",
    params(("id" = String, Path, description = "The user id")),
    request_body = UserUpdate,
    responses(
        (status = 200, description = "The user after the update", body = User),
        (status = 400, description = "A body that is not an update", body = ApiError),
        (status = 401, body = ApiError),
        (status = 403, description = "Without update:users", body = ApiError),
        (status = 404, description = "No such user", body = ApiError)
    ),
    security(("bearer" = ["update:users"]))
)]
async fn patch_user(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<User>, ApiError> {
    let actor = caller(&service, &headers, "update:users")?;
    let update: UserUpdate = serde_json::from_slice(&body)
        .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, format!("Bad update: {error}")))?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "The user does not exist.");
    let row = service
        .store
        .load_user(&id)
        .await
        .map_err(ApiError::server)?
        .ok_or_else(not_found)?;
    let mut user_metadata = row.user.user_metadata.clone();
    let mut app_metadata = row.user.app_metadata.clone();
    let detail = serde_json::to_value(&update).unwrap_or(Value::Null);
    merge_metadata(&mut user_metadata, update.user_metadata.unwrap_or_default());
    merge_metadata(&mut app_metadata, update.app_metadata.unwrap_or_default());
    check_metadata_size("user_metadata", &user_metadata)?;
    check_metadata_size("app_metadata", &app_metadata)?;
    let updated = service
        .store
        .update_metadata(&id, &user_metadata, &app_metadata)
        .await
        .map_err(ApiError::server)?;
    if !updated {
        return Err(not_found());
    }
    service
        .record_admin_action(&actor, "update_user", &id, detail)
        .await;
    let row = service
        .store
        .load_user(&id)
        .await
        .map_err(ApiError::server)?
        .ok_or_else(not_found)?;
    Ok(Json(User::new(id, row)))
}

/// One login of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct Log {
    log_id: String,
    /// RFC 3339.
    date: String,
    /// `minted`, `denied` or `failed`.
    outcome: String,
    /// The deny reason or the error.
    description: Option<String>,
    user_id: Option<String>,
    client_id: String,
    connection: String,
    correlation_id: Option<String>,
    /// The plugins' builds that ran (see the README's Storage).
    chain_version: Option<String>,
    /// Each step: name (the plugin), kind, duration_ms, fuel_consumed,
    /// status, and error or reason.
    #[schema(value_type = Vec<Object>)]
    steps: Value,
}

impl From<LoginListing> for Log {
    fn from(LoginListing { id, entry }: LoginListing) -> Self {
        let (outcome, description) = match entry.outcome {
            claimsmith_store::AuditOutcome::Minted => ("minted", None),
            claimsmith_store::AuditOutcome::Denied { reason } => ("denied", Some(reason)),
            claimsmith_store::AuditOutcome::Failed { error } => ("failed", Some(error)),
        };
        Log {
            log_id: id.to_string(),
            date: entry.at,
            outcome: outcome.to_owned(),
            description,
            user_id: entry.user_id,
            client_id: entry.client_id,
            connection: entry.connection,
            correlation_id: entry.correlation_id,
            chain_version: entry.chain_version,
            steps: entry.steps,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogSearch {
    /// Only this outcome: minted, denied or failed.
    outcome: Option<String>,
    /// Only this client's logins.
    client_id: Option<String>,
    /// Only this user's logins.
    user_id: Option<String>,
}

async fn logs_page(
    service: &Service,
    filter: LoginFilter,
    paging: &Paging,
) -> Result<Response, ApiError> {
    let Page { items, total } = service
        .store
        .logins(&filter, paging.offset(), paging.limit())
        .await
        .map_err(ApiError::server)?;
    let logs: Vec<Log> = items.into_iter().map(Log::from).collect();
    Ok(paging.answer("logs", logs, total))
}

#[utoipa::path(
    get,
    path = "/logs",
    tag = "logs",
    params(LogSearch, Paging),
    responses(
        (status = 200, description = "Logins, newest first", body = [Log]),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:logs", body = ApiError)
    ),
    security(("bearer" = ["read:logs"]))
)]
async fn list_logs(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Query(search): Query<LogSearch>,
    Query(paging): Query<Paging>,
) -> Result<Response, ApiError> {
    caller(&service, &headers, "read:logs")?;
    let filter = LoginFilter {
        user_id: search.user_id,
        client_id: search.client_id,
        outcome: search.outcome,
    };
    logs_page(&service, filter, &paging).await
}

#[utoipa::path(
    get,
    path = "/logs/{id}",
    tag = "logs",
    params(("id" = String, Path, description = "The log id")),
    responses(
        (status = 200, body = Log),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:logs", body = ApiError),
        (status = 404, description = "No such log", body = ApiError)
    ),
    security(("bearer" = ["read:logs"]))
)]
async fn get_log(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Log>, ApiError> {
    caller(&service, &headers, "read:logs")?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "The log does not exist.");
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let listing = service
        .store
        .login(id)
        .await
        .map_err(ApiError::server)?
        .ok_or_else(not_found)?;
    Ok(Json(Log::from(listing)))
}

#[utoipa::path(
    get,
    path = "/users/{id}/logs",
    tag = "users",
    params(("id" = String, Path, description = "The user id"), Paging),
    responses(
        (status = 200, description = "The user's logins, newest first", body = [Log]),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:logs", body = ApiError)
    ),
    security(("bearer" = ["read:logs"]))
)]
async fn user_logs(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Response, ApiError> {
    caller(&service, &headers, "read:logs")?;
    let filter = LoginFilter {
        user_id: Some(id),
        ..LoginFilter::default()
    };
    logs_page(&service, filter, &paging).await
}

/// A plugin of the chain serving now.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginInfo {
    name: String,
    /// `profile-fetcher` or `post-login-action`.
    world: String,
    /// The store's version serving, for a `source = "store"` plugin.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    sha256: String,
    /// Of the .wasm file, in bytes.
    size: u64,
    /// fuel, memory_mib, timeout_ms, http_timeout_ms, max_response_bytes.
    #[schema(value_type = Object)]
    limits: Value,
    allowed_origins: Vec<String>,
    /// Where it runs: `connection <name>` (profile fetcher) or `action <n>`
    /// (its place in the chain, from 1).
    used_by: Vec<String>,
}

/// The plugins of the chain serving now, as the API and the console show
/// them.
pub fn plugin_infos(pipeline: &claimsmith_pipeline::Pipeline) -> Vec<PluginInfo> {
    let config = pipeline.config();
    pipeline
        .plugins()
        .iter()
        .map(|(name, plugin)| {
            let spec = &config.plugins[name];
            let mut used_by: Vec<String> = config
                .connections
                .iter()
                .filter(|c| c.profile_fetcher.as_deref() == Some(name))
                .map(|c| format!("connection {}", c.name))
                .collect();
            used_by.extend(
                config
                    .actions
                    .iter()
                    .enumerate()
                    .filter(|(_, action)| action.plugin == *name)
                    .map(|(index, _)| format!("action {}", index + 1)),
            );
            PluginInfo {
                name: name.clone(),
                world: spec.world.to_string(),
                version: spec.version,
                sha256: plugin.sha256().to_owned(),
                size: std::fs::metadata(&spec.path).map_or(0, |meta| meta.len()),
                limits: json!({
                    "fuel": spec.limits.fuel,
                    "memory_mib": spec.limits.memory_bytes / (1024 * 1024),
                    "timeout_ms": spec.limits.timeout.as_millis() as u64,
                    "http_timeout_ms": spec.http.timeout.as_millis() as u64,
                    "max_response_bytes": spec.http.max_response_bytes,
                }),
                allowed_origins: spec
                    .http
                    .allowed_origins
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                used_by,
            }
        })
        .collect()
}

#[utoipa::path(
    get,
    path = "/plugins",
    tag = "plugins",
    responses(
        (status = 200, description = "The plugins of the chain serving now", body = [PluginInfo]),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:plugins", body = ApiError)
    ),
    security(("bearer" = ["read:plugins"]))
)]
async fn list_plugins(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
) -> Result<Json<Vec<PluginInfo>>, ApiError> {
    caller(&service, &headers, "read:plugins")?;
    Ok(Json(plugin_infos(&service.pipeline())))
}

impl Service {
    /// Appends to the admin trail; a failure is logged, not fatal to what
    /// was done.
    pub(crate) async fn record_admin_action(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: Value,
    ) {
        let entry = AdminAction {
            at: claimsmith_core::rfc3339(self.clock.now()),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail,
        };
        if let Err(error) = self.store.record_admin_action(&entry).await {
            tracing::error!(%error, actor, action, target, "cannot record an admin action");
        }
        tracing::info!(actor, action, target, "admin action");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_machine_clients_client_credentials_token_is_a_caller() {
        let machine = ClientConfig {
            client_id: "ops".into(),
            grant_types: vec![GrantType::ClientCredentials],
            ..ClientConfig::default()
        };
        let web = ClientConfig {
            client_id: "web".into(),
            grant_types: vec![GrantType::AuthorizationCode],
            ..ClientConfig::default()
        };
        let clients = |id: &str| [&machine, &web].into_iter().find(|c| c.client_id == id);
        let token = |sub: &str, gty: Option<&str>| {
            let mut claims = json!({"sub": sub, "scope": "read:users"});
            if let Some(gty) = gty {
                claims["gty"] = gty.into();
            }
            claims.as_object().cloned().unwrap_or_default()
        };
        let machine_token = token("ops", Some("client-credentials"));
        assert_eq!(
            machine_caller(&machine_token, "read:users", clients).ok(),
            Some("ops".to_owned())
        );
        let forbidden = machine_caller(&machine_token, "update:users", clients).unwrap_err();
        assert_eq!(forbidden.status_code, 403);
        for (what, claims) in [
            ("a user's token", token("okta|someone", None)),
            (
                "a login client's, however marked",
                token("web", Some("client-credentials")),
            ),
            (
                "a removed client's",
                token("gone", Some("client-credentials")),
            ),
            (
                "a machine's of another grant",
                token("ops", Some("password")),
            ),
        ] {
            let refused = machine_caller(&claims, "read:users", clients).unwrap_err();
            assert_eq!(refused.status_code, 401, "{what}");
        }
    }

    #[test]
    fn metadata_merges_at_the_top_level_and_null_deletes() {
        let mut kept = json!({"a": 1, "b": {"x": 1}, "c": 3})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let update = json!({"b": {"y": 2}, "c": null, "d": 4})
            .as_object()
            .cloned()
            .unwrap_or_default();
        merge_metadata(&mut kept, update);
        assert_eq!(Value::Object(kept), json!({"a": 1, "b": {"y": 2}, "d": 4}));
    }

    #[test]
    fn auth0_query_forms_are_read() {
        assert_eq!(
            search_term("email:\"jane@example.com\""),
            "jane@example.com"
        );
        assert_eq!(search_term("user_id:\"okta|1\""), "okta|1");
        assert_eq!(search_term(" jane "), "jane");
    }
}
