//! The admin listener (`[admin] listen`): `/healthz`, `/readyz` and
//! Prometheus `/metrics`, on an address of their own so that they are not
//! exposed where apps and browsers reach the service.
//!
//! Owns only these answers; what is measured lives in `crate::metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::Service;

pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(service)
}

/// Alive: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready for logins: the chain is loaded and every upstream discovered
/// (a `Service` exists only once both are done) and the database answers.
async fn readyz(State(service): State<Arc<Service>>) -> Response {
    let database = service.store.ping().await;
    if let Err(error) = &database {
        tracing::warn!(%error, "not ready: the database does not answer");
    }
    let status = if database.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "chain": "loaded",
        "upstreams": "discovered",
        "database": if database.is_ok() { "reachable" } else { "unreachable" },
    });
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(service): State<Arc<Service>>) -> Response {
    let text = service
        .metrics
        .render(service.pipeline().instance_slots_in_use());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
