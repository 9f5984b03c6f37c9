//! CORS for the endpoints an app's scripts call (discovery, JWKS, token,
//! revocation, userinfo): a public single-page app cannot sign in without
//! it. Only the `web_origins` of the configured clients are let in, and only
//! for reading answers: no cookies are involved (credentials stay off).
//!
//! It does not touch `/authorize` or `/callback`, which browsers navigate to.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Service;
use claimsmith_capabilities::http::Origin;

/// How long a browser may keep a preflight answer.
const PREFLIGHT_MAX_AGE_SECS: &str = "600";

pub(crate) async fn allow_web_origins(
    State(service): State<Arc<Service>>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = request
        .headers()
        .get(header::ORIGIN)
        .filter(|origin| service.is_web_origin(origin))
        .cloned();
    let is_preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if is_preflight {
        let mut response = StatusCode::NO_CONTENT.into_response();
        if allowed.is_some() {
            let headers = response.headers_mut();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST"),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(PREFLIGHT_MAX_AGE_SECS),
            );
        }
        response
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

impl Service {
    /// Whether `origin` (an `Origin` header) is a configured client's web origin.
    fn is_web_origin(&self, origin: &HeaderValue) -> bool {
        let Some(origin) = origin
            .to_str()
            .ok()
            .and_then(|text| text.parse::<Origin>().ok())
        else {
            return false;
        };
        self.config()
            .clients
            .iter()
            .any(|client| client.web_origins.contains(&origin))
    }
}
