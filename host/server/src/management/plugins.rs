//! Plugin versions and deploys in the Management API, for plugins with
//! `source = "store"`: `/plugins/{name}/versions` (push, list),
//! `/plugins/{name}/deploy` and `/plugins/{name}/deployments`.
//!
//! Owns the shapes and the checks of a request (the plugin is a store
//! plugin of the chain, the body a component of its world under the size
//! cap); storing is the [`Store`](claimsmith_store::Store)'s, checking and
//! following a deploy is [`crate::store_plugins`]'. Every change is in the
//! admin trail.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{ApiError, caller, payload};
use crate::Service;
use crate::store_plugins::{PushError, store_version, verified_component};
use claimsmith_config::{PluginSource, PluginSpec};
use claimsmith_store::{Deployment, PluginVersion};

/// The largest component a push may carry. A JavaScript or Python plugin,
/// with its engine, is 12 to 40 MiB.
pub const MAX_COMPONENT_BYTES: usize = 64 * 1024 * 1024;

/// A stored version of a plugin.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    /// From 1, per plugin.
    version: u64,
    /// Of the component (lowercase hex): the same bytes are one version.
    sha256: String,
    /// In bytes.
    size: u64,
    world: String,
    /// The source language its producers name (`JavaScript`, `Python`,
    /// `Rust`), or empty.
    language: String,
    /// RFC 3339.
    created_at: String,
    /// The machine client that pushed it, or `config seed`.
    created_by: String,
}

impl From<PluginVersion> for VersionView {
    fn from(version: PluginVersion) -> Self {
        VersionView {
            version: version.version,
            sha256: version.sha256,
            size: version.size,
            world: version.world,
            language: version.language,
            created_at: version.created_at,
            created_by: version.created_by,
        }
    }
}

/// One deploy of a plugin.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentView {
    version: u64,
    sha256: String,
    /// RFC 3339.
    deployed_at: String,
    deployed_by: String,
}

impl From<Deployment> for DeploymentView {
    fn from(deployment: Deployment) -> Self {
        DeploymentView {
            version: deployment.version,
            sha256: deployment.sha256,
            deployed_at: deployment.deployed_at,
            deployed_by: deployment.deployed_by,
        }
    }
}

/// What `POST /plugins/{name}/deploy` takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    version: u64,
}

/// A deploy's answer: the deploy, and whether the host that took it serves
/// it now (the others follow within `[server] plugin_poll_secs`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Deployed {
    #[serde(flatten)]
    deployment: DeploymentView,
    serving: bool,
}

/// The caller, when its token grants `scope`, and the config of `name`,
/// when that is a store plugin: what every route here checks first.
fn store_plugin_caller(
    service: &Service,
    headers: &HeaderMap,
    scope: &str,
    name: &str,
) -> Result<(String, PluginSpec), ApiError> {
    let actor = caller(service, headers, scope)?;
    Ok((actor, store_plugin(service, name)?))
}

/// The config of `name` in the chain serving now, when it is a store
/// plugin.
fn store_plugin(service: &Service, name: &str) -> Result<PluginSpec, ApiError> {
    let pipeline = service.pipeline();
    let spec = pipeline
        .config()
        .plugins
        .get(name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "The plugin does not exist."))?;
    if spec.source != PluginSource::Store {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "plugin `{name}` runs the file its config names: versions are for plugins with \
                 source = \"store\""
            ),
        ));
    }
    Ok(spec.clone())
}

/// Whether `request` is a push, whose handler reads the body itself (the
/// server reads every other body whole, at most 64 KiB, before routing).
pub fn reads_its_own_body<B>(request: &axum::http::Request<B>) -> bool {
    let path = request.uri().path();
    request.method() == axum::http::Method::POST
        && path
            .strip_prefix("/api/v2/plugins/")
            .and_then(|rest| rest.strip_suffix("/versions"))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("a component may be at most {MAX_COMPONENT_BYTES} bytes"),
    )
}

/// The body, once it is a component's bytes under the cap, sent within
/// `[server] body_read_timeout_secs`.
async fn component_bytes(
    headers: &HeaderMap,
    body: axum::body::Body,
    deadline: std::time::Duration,
) -> Result<axum::body::Bytes, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if content_type != "application/wasm" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a version is pushed as its component's bytes, Content-Type: application/wasm",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_COMPONENT_BYTES) {
        return Err(too_large());
    }
    // Read only now, after the caller's token was checked: an anonymous
    // caller cannot make the host hold 64 MiB.
    tokio::time::timeout(deadline, axum::body::to_bytes(body, MAX_COMPONENT_BYTES))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "the component took too long to send",
            )
        })?
        .map_err(|_| too_large())
}

#[utoipa::path(
    post,
    path = "/plugins/{name}/versions",
    tag = "plugins",
    params(("name" = String, Path, description = "A plugin with `source = \"store\"`")),
    request_body(content = Vec<u8>, content_type = "application/wasm",
                 description = "The component"),
    responses(
        (status = 201, description = "Stored as a new version", body = VersionView),
        (status = 200, description = "These bytes are stored already, as this version",
         body = VersionView),
        (status = 400, description = "Not a component of the plugin's world, or importing \
                                      what is not granted", body = ApiError),
        (status = 401, body = ApiError),
        (status = 403, description = "Without create:plugins", body = ApiError),
        (status = 404, description = "No such plugin", body = ApiError),
        (status = 409, description = "A plugin that runs a file", body = ApiError),
        (status = 413, description = "Over the size cap", body = ApiError),
        (status = 415, description = "Not application/wasm", body = ApiError)
    ),
    security(("bearer" = ["create:plugins"]))
)]
pub(super) async fn push_version(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let (actor, spec) = store_plugin_caller(&service, &headers, "create:plugins", &name)?;
    let deadline = std::time::Duration::from_secs(service.config.server.body_read_timeout_secs);
    let bytes = component_bytes(&headers, body, deadline).await?;
    let data_dir = &service.config.data_dir;
    let (version, created) =
        store_version(&service.store_access(), data_dir, &spec, &bytes, &actor)
            .await
            .map_err(|error| match error {
                PushError::Refused(why) => ApiError::new(StatusCode::BAD_REQUEST, why.to_string()),
                other => ApiError::server(other),
            })?;
    if created {
        let detail =
            json!({"version": version.version, "sha256": version.sha256, "size": version.size});
        service
            .record_admin_action(&actor, "push_plugin_version", &name, detail)
            .await;
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(VersionView::from(version))).into_response())
}

#[utoipa::path(
    get,
    path = "/plugins/{name}/versions",
    tag = "plugins",
    params(("name" = String, Path, description = "A plugin with `source = \"store\"`")),
    responses(
        (status = 200, description = "Its versions, newest first", body = [VersionView]),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:plugins", body = ApiError),
        (status = 404, description = "No such plugin", body = ApiError),
        (status = 409, description = "A plugin that runs a file", body = ApiError)
    ),
    security(("bearer" = ["read:plugins"]))
)]
pub(super) async fn list_versions(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<VersionView>>, ApiError> {
    store_plugin_caller(&service, &headers, "read:plugins", &name)?;
    let versions = service
        .store
        .plugin_versions(&name)
        .await
        .map_err(ApiError::server)?;
    Ok(Json(versions.into_iter().map(VersionView::from).collect()))
}

#[utoipa::path(
    get,
    path = "/plugins/{name}/versions/{version}",
    tag = "plugins",
    params(
        ("name" = String, Path, description = "A plugin with `source = \"store\"`"),
        ("version" = u64, Path, description = "One of its versions")
    ),
    responses(
        (status = 200, description = "The version's component, once its bytes hash to its \
                                      row's SHA-256", content_type = "application/wasm",
         body = Vec<u8>),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:plugins", body = ApiError),
        (status = 404, description = "No such plugin or version", body = ApiError),
        (status = 409, description = "A plugin that runs a file", body = ApiError),
        (status = 500, description = "The stored bytes do not hash to their row's SHA-256: \
                                      they are never handed out", body = ApiError)
    ),
    security(("bearer" = ["read:plugins"]))
)]
pub(super) async fn version_component(
    State(service): State<Arc<Service>>,
    Path((name, version)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    store_plugin_caller(&service, &headers, "read:plugins", &name)?;
    let (_, bytes) = verified_component(&service.store, &name, version)
        .await
        .map_err(ApiError::server)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("plugin `{name}` has no version {version}"),
            )
        })?;
    Ok(([(header::CONTENT_TYPE, "application/wasm")], bytes).into_response())
}

#[utoipa::path(
    post,
    path = "/plugins/{name}/deploy",
    tag = "plugins",
    params(("name" = String, Path, description = "A plugin with `source = \"store\"`")),
    request_body = DeployRequest,
    responses(
        (status = 200, description = "Deployed: every host serves it within `[server] \
                                      plugin_poll_secs`", body = Deployed),
        (status = 400, description = "A body that is not `{version}`", body = ApiError),
        (status = 401, body = ApiError),
        (status = 403, description = "Without update:plugins", body = ApiError),
        (status = 404, description = "No such plugin or version", body = ApiError),
        (status = 409, description = "A plugin that runs a file", body = ApiError)
    ),
    security(("bearer" = ["update:plugins"]))
)]
pub(super) async fn deploy(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Deployed>, ApiError> {
    let (actor, _) = store_plugin_caller(&service, &headers, "update:plugins", &name)?;
    let DeployRequest { version } = payload(&body)?;
    let now = claimsmith_core::rfc3339(service.clock.now());
    let from = service
        .store
        .deployed_plugin(&name)
        .await
        .map_err(ApiError::server)?
        .map(|deployment| deployment.version);
    let known = service
        .store
        .deploy_plugin(&name, version, &now, &actor)
        .await
        .map_err(ApiError::server)?;
    if !known {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("plugin `{name}` has no version {version}"),
        ));
    }
    service
        .record_admin_action(
            &actor,
            "deploy_plugin",
            &name,
            json!({"version": version, "from": from}),
        )
        .await;
    // Deploying the canary's version promotes it: every user runs it now.
    if service
        .store
        .stop_canary(&name, Some(version))
        .await
        .map_err(ApiError::server)?
    {
        service
            .record_admin_action(&actor, "stop_canary", &name, json!({"promoted": version}))
            .await;
        service.refresh_canaries().await;
    }
    // This host swaps now; the others when they next ask the store.
    let _swapped = service
        .reload_and_log("a deploy through the Management API")
        .await;
    let serving = service
        .pipeline()
        .config()
        .plugins
        .get(&name)
        .and_then(|s| s.version);
    let deployment = service
        .store
        .deployed_plugin(&name)
        .await
        .map_err(ApiError::server)?
        .ok_or_else(|| ApiError::server("the deploy just made is not in the store"))?;
    Ok(Json(Deployed {
        serving: serving == Some(deployment.version),
        deployment: deployment.into(),
    }))
}

#[utoipa::path(
    get,
    path = "/plugins/{name}/deployments",
    tag = "plugins",
    params(("name" = String, Path, description = "A plugin with `source = \"store\"`")),
    responses(
        (status = 200, description = "Its deploys, newest (the live one) first",
         body = [DeploymentView]),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:plugins", body = ApiError),
        (status = 404, description = "No such plugin", body = ApiError),
        (status = 409, description = "A plugin that runs a file", body = ApiError)
    ),
    security(("bearer" = ["read:plugins"]))
)]
pub(super) async fn list_deployments(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<DeploymentView>>, ApiError> {
    store_plugin_caller(&service, &headers, "read:plugins", &name)?;
    let deployments = service
        .store
        .plugin_deployments(&name)
        .await
        .map_err(ApiError::server)?;
    Ok(Json(
        deployments.into_iter().map(DeploymentView::from).collect(),
    ))
}

/// What `POST /plugins/{name}/shadow` takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowRequest {
    /// The candidate: a stored version of the plugin.
    version: u64,
    /// The share of logins it runs on, above 0 and at most 1.
    sample: f64,
}

/// A plugin's shadow: its candidate, and how its runs compared with the
/// live calls (added up over every host).
#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowView {
    version: u64,
    sample: f64,
    started_at: String,
    started_by: String,
    /// Runs made (identical + different + failed).
    runs: u64,
    identical: u64,
    different: u64,
    /// The candidate failed (trapped, ran out of a limit, returned an error).
    failed: u64,
    /// Not run: a host's shadow queue was full.
    dropped: u64,
    /// The latest runs that differed or failed, newest first: `{at,
    /// user_id, changes: [{what, name, live, candidate}]}`, values holding
    /// one of the plugin's secrets shown as `[redacted]`.
    #[schema(value_type = Vec<Object>)]
    differences: Vec<serde_json::Value>,
}

const PPM: f64 = 1_000_000.0;

impl From<claimsmith_store::Shadow> for ShadowView {
    fn from(shadow: claimsmith_store::Shadow) -> Self {
        let tally = shadow.tally;
        ShadowView {
            version: shadow.version,
            sample: shadow.sample_ppm as f64 / PPM,
            started_at: shadow.started_at,
            started_by: shadow.started_by,
            runs: tally.runs,
            identical: tally.identical,
            different: tally.different,
            failed: tally.failed,
            dropped: tally.dropped,
            differences: shadow.differences,
        }
    }
}

fn no_shadow(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("plugin `{name}` is not shadowed"),
    )
}

#[utoipa::path(
    post,
    path = "/plugins/{name}/shadow",
    tag = "plugins",
    params(("name" = String, Path, description = "A plugin with `source = \"store\"`")),
    request_body = ShadowRequest,
    responses(
        (status = 200, description = "Shadowed: every host runs the candidate within `[server] \
                                      plugin_poll_secs`; its tallies start afresh", body = ShadowView),
        (status = 400, description = "A body that is not `{version, sample}`, or a sample \
                                      outside (0, 1]", body = ApiError),
        (status = 401, body = ApiError),
        (status = 403, description = "Without update:plugins", body = ApiError),
        (status = 404, description = "No such plugin or version", body = ApiError),
        (status = 409, description = "A plugin that runs a file", body = ApiError)
    ),
    security(("bearer" = ["update:plugins"]))
)]
pub(super) async fn start_shadow(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<ShadowView>, ApiError> {
    let (actor, _) = store_plugin_caller(&service, &headers, "update:plugins", &name)?;
    let ShadowRequest { version, sample } = payload(&body)?;
    if !(sample > 0.0 && sample <= 1.0) {
        return Err(super::bad_request(
            "Payload validation error: 'sample' must be above 0 and at most 1",
        ));
    }
    let sample_ppm = (sample * PPM).round().max(1.0) as u64;
    let now = claimsmith_core::rfc3339(service.clock.now());
    let started = service
        .store
        .start_shadow(&name, version, sample_ppm, &now, &actor)
        .await
        .map_err(ApiError::server)?;
    if !started {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("plugin `{name}` has no version {version}"),
        ));
    }
    service
        .record_admin_action(
            &actor,
            "shadow_plugin",
            &name,
            json!({"version": version, "sample": sample}),
        )
        .await;
    service.refresh_shadows().await;
    current_shadow(&service, &name).await.map(Json)
}

async fn current_shadow(service: &Service, name: &str) -> Result<ShadowView, ApiError> {
    service
        .store
        .plugin_shadow(name)
        .await
        .map_err(ApiError::server)?
        .map(ShadowView::from)
        .ok_or_else(|| no_shadow(name))
}

#[utoipa::path(
    get,
    path = "/plugins/{name}/shadow",
    tag = "plugins",
    params(("name" = String, Path, description = "A plugin with `source = \"store\"`")),
    responses(
        (status = 200, description = "The shadow and its tallies, as the hosts last added them \
                                      (each adds its own every `[server] plugin_poll_secs`)",
         body = ShadowView),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:plugins", body = ApiError),
        (status = 404, description = "No such plugin, or not shadowed", body = ApiError),
        (status = 409, description = "A plugin that runs a file", body = ApiError)
    ),
    security(("bearer" = ["read:plugins"]))
)]
pub(super) async fn get_shadow(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<ShadowView>, ApiError> {
    store_plugin_caller(&service, &headers, "read:plugins", &name)?;
    current_shadow(&service, &name).await.map(Json)
}

#[utoipa::path(
    delete,
    path = "/plugins/{name}/shadow",
    tag = "plugins",
    params(("name" = String, Path, description = "A plugin with `source = \"store\"`")),
    responses(
        (status = 204, description = "No longer shadowed"),
        (status = 401, body = ApiError),
        (status = 403, description = "Without update:plugins", body = ApiError),
        (status = 404, description = "No such plugin, or not shadowed", body = ApiError),
        (status = 409, description = "A plugin that runs a file", body = ApiError)
    ),
    security(("bearer" = ["update:plugins"]))
)]
pub(super) async fn stop_shadow(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let (actor, _) = store_plugin_caller(&service, &headers, "update:plugins", &name)?;
    if !service
        .store
        .stop_shadow(&name)
        .await
        .map_err(ApiError::server)?
    {
        return Err(no_shadow(&name));
    }
    service
        .record_admin_action(&actor, "stop_shadow", &name, json!({}))
        .await;
    service.refresh_shadows().await;
    Ok(StatusCode::NO_CONTENT)
}

/// What `POST /plugins/{name}/canary` takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryRequest {
    /// A stored version of the plugin.
    version: u64,
    /// The share of users it serves, above 0 and at most 1, sticky by user
    /// id.
    share: f64,
    /// Rolled back when more than this share of its calls within the
    /// window failed (default 0.05).
    #[serde(default = "default_max_failure_rate")]
    max_failure_rate: f64,
    /// The window, in seconds (default 300).
    #[serde(default = "default_window_secs")]
    window_secs: u64,
    /// The fewest calls within the window before the rate counts (default
    /// 20).
    #[serde(default = "default_min_calls")]
    min_calls: u64,
}

fn default_max_failure_rate() -> f64 {
    0.05
}

fn default_window_secs() -> u64 {
    300
}

fn default_min_calls() -> u64 {
    20
}

/// A plugin's canary, as started.
#[derive(Debug, Serialize, ToSchema)]
pub struct CanaryView {
    version: u64,
    share: f64,
    max_failure_rate: f64,
    window_secs: u64,
    min_calls: u64,
    started_at: String,
    started_by: String,
}

impl From<claimsmith_store::Canary> for CanaryView {
    fn from(canary: claimsmith_store::Canary) -> Self {
        CanaryView {
            version: canary.version,
            share: canary.share_ppm as f64 / PPM,
            max_failure_rate: canary.max_failure_ppm as f64 / PPM,
            window_secs: canary.window_secs,
            min_calls: canary.min_calls,
            started_at: canary.started_at,
            started_by: canary.started_by,
        }
    }
}

/// `rate` per million, once it is a share: above 0 (or at least 0, when
/// `zero_ok`) and at most 1.
fn per_million(property: &str, rate: f64, zero_ok: bool) -> Result<u64, ApiError> {
    let low_ok = if zero_ok { rate >= 0.0 } else { rate > 0.0 };
    if !(low_ok && rate <= 1.0) {
        let bound = if zero_ok { "at least 0" } else { "above 0" };
        return Err(super::bad_request(format!(
            "Payload validation error: '{property}' must be {bound} and at most 1"
        )));
    }
    Ok((rate * PPM).round() as u64)
}

fn no_canary(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("plugin `{name}` has no canary"),
    )
}

#[utoipa::path(
    post,
    path = "/plugins/{name}/canary",
    tag = "plugins",
    params(("name" = String, Path, description = "A plugin with `source = \"store\"`")),
    request_body = CanaryRequest,
    responses(
        (status = 200, description = "Started: every host serves it to its share of users \
                                      within `[server] plugin_poll_secs`", body = CanaryView),
        (status = 400, description = "A body that is not a canary's terms", body = ApiError),
        (status = 401, body = ApiError),
        (status = 403, description = "Without update:plugins", body = ApiError),
        (status = 404, description = "No such plugin or version", body = ApiError),
        (status = 409, description = "A plugin that runs a file", body = ApiError)
    ),
    security(("bearer" = ["update:plugins"]))
)]
pub(super) async fn start_canary(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<CanaryView>, ApiError> {
    let (actor, _) = store_plugin_caller(&service, &headers, "update:plugins", &name)?;
    let request: CanaryRequest = payload(&body)?;
    let terms = claimsmith_store::Canary {
        plugin: name.clone(),
        version: request.version,
        share_ppm: per_million("share", request.share, false)?.max(1),
        max_failure_ppm: per_million("max_failure_rate", request.max_failure_rate, true)?,
        window_secs: request.window_secs.max(1),
        min_calls: request.min_calls.max(1),
        started_at: claimsmith_core::rfc3339(service.clock.now()),
        started_by: actor.clone(),
    };
    if !service
        .store
        .start_canary(&terms)
        .await
        .map_err(ApiError::server)?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("plugin `{name}` has no version {}", terms.version),
        ));
    }
    let detail = json!({"version": terms.version, "share": request.share,
        "max_failure_rate": request.max_failure_rate, "window_secs": terms.window_secs,
        "min_calls": terms.min_calls});
    service
        .record_admin_action(&actor, "start_canary", &name, detail)
        .await;
    service.refresh_canaries().await;
    Ok(Json(terms.into()))
}

#[utoipa::path(
    get,
    path = "/plugins/{name}/canary",
    tag = "plugins",
    params(("name" = String, Path, description = "A plugin with `source = \"store\"`")),
    responses(
        (status = 200, description = "The canary's terms", body = CanaryView),
        (status = 401, body = ApiError),
        (status = 403, description = "Without read:plugins", body = ApiError),
        (status = 404, description = "No such plugin, or no canary (never started, ended, or \
                                      rolled back)", body = ApiError),
        (status = 409, description = "A plugin that runs a file", body = ApiError)
    ),
    security(("bearer" = ["read:plugins"]))
)]
pub(super) async fn get_canary(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Json<CanaryView>, ApiError> {
    store_plugin_caller(&service, &headers, "read:plugins", &name)?;
    let canary = service
        .store
        .plugin_canary(&name)
        .await
        .map_err(ApiError::server)?;
    canary
        .map(|c| Json(c.into()))
        .ok_or_else(|| no_canary(&name))
}

#[utoipa::path(
    delete,
    path = "/plugins/{name}/canary",
    tag = "plugins",
    params(("name" = String, Path, description = "A plugin with `source = \"store\"`")),
    responses(
        (status = 204, description = "Ended: every user runs the deployed version again"),
        (status = 401, body = ApiError),
        (status = 403, description = "Without update:plugins", body = ApiError),
        (status = 404, description = "No such plugin, or no canary", body = ApiError),
        (status = 409, description = "A plugin that runs a file", body = ApiError)
    ),
    security(("bearer" = ["update:plugins"]))
)]
pub(super) async fn stop_canary(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let (actor, _) = store_plugin_caller(&service, &headers, "update:plugins", &name)?;
    if !service
        .store
        .stop_canary(&name, None)
        .await
        .map_err(ApiError::server)?
    {
        return Err(no_canary(&name));
    }
    service
        .record_admin_action(&actor, "stop_canary", &name, json!({}))
        .await;
    service.refresh_canaries().await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_push_reads_its_own_body() {
        let request = |method: &str, path: &str| {
            axum::http::Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .unwrap_or_default()
        };
        assert!(reads_its_own_body(&request(
            "POST",
            "/api/v2/plugins/geo/versions"
        )));
        for (method, path) in [
            ("GET", "/api/v2/plugins/geo/versions"),
            ("POST", "/api/v2/plugins/geo/deploy"),
            ("POST", "/api/v2/plugins//versions"),
            ("POST", "/api/v2/plugins/a/b/versions"),
            ("POST", "/api/v2/roles"),
            ("POST", "/oauth/token"),
        ] {
            assert!(
                !reads_its_own_body(&request(method, path)),
                "{method} {path}"
            );
        }
    }
}
