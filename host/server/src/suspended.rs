//! A sign-in an action sent to a page (`api.redirect.sendUserTo`), and
//! `/continue`, where the user comes back to finish it.
//!
//! The suspended sign-in (the app's pending login and the chain's
//! [`SuspendedLogin`]) is sealed under the deployment's key-encryption key,
//! bound to its `state` and to a random secret held only in a cookie of the
//! browser that began it, and kept in the database, so that any host takes
//! the return. `/continue` opens it only with that cookie (a link alone
//! finishes nobody's login), takes it once (a replay finds nothing) and
//! before it expires; a refused `/continue` changes nothing.
//!
//! Owns the sealing, the cookie and the route; what the chain does once it
//! resumes is the pipeline's, what the app gets is [`super::authorize`]'s.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use claimsmith_capabilities::redirect::Continued;
use claimsmith_pipeline::{ContinueRequest, Redirected, RequestInfo, SuspendedLogin};
use claimsmith_tokens::sealing::{KeyEncryptionKey, Sealer};

use super::authorize::{cookie, request_info, state_cookie_name};
use super::pending::PendingLogin;
use super::protocol::random_token;
use super::{ChainRun, Service, error_page};

/// How long a sign-in waits for the user to come back from the page.
pub const SUSPENDED_LOGIN_SECS: u64 = 15 * 60;
/// The most parameters a `/continue` request may carry.
const MAX_CONTINUE_PARAMETERS: usize = 64;

/// What a suspended sign-in keeps: the app's request and the chain's place.
#[derive(Serialize, Deserialize)]
struct SuspendedSignIn {
    pending: PendingLogin,
    chain: SuspendedLogin,
    /// Unix seconds after which `/continue` refuses it.
    expires_at: u64,
}

/// Seals suspended sign-ins for every host of the deployment.
pub(crate) struct SuspendedSealer {
    sealer: Sealer,
}

impl SuspendedSealer {
    pub(crate) fn new(key_encryption_key: &KeyEncryptionKey) -> Self {
        SuspendedSealer {
            sealer: key_encryption_key.sealer("suspended-login v1"),
        }
    }

    /// `sign_in`, bound to its state and to the browser's secret.
    fn seal(
        &self,
        state: &str,
        browser: &str,
        sign_in: &SuspendedSignIn,
    ) -> serde_json::Result<String> {
        let plaintext = serde_json::to_vec(sign_in)?;
        Ok(self.sealer.seal(&bound_to(state, browser), &plaintext))
    }

    /// The sign-in sealed for `state` and `browser`, if it is theirs and has
    /// not expired at `now`.
    fn open(&self, state: &str, browser: &str, sealed: &str, now: u64) -> Option<SuspendedSignIn> {
        let plaintext = self.sealer.open(&bound_to(state, browser), sealed)?;
        let sign_in: SuspendedSignIn = serde_json::from_slice(&plaintext).ok()?;
        (sign_in.expires_at > now).then_some(sign_in)
    }
}

/// What a sealed sign-in is bound to: its state and its browser's secret,
/// each length-prefixed so that no two pairs run together alike.
fn bound_to(state: &str, browser: &str) -> Vec<u8> {
    let mut bound = Vec::with_capacity(state.len() + browser.len() + 16);
    for part in [state, browser] {
        bound.extend_from_slice(&(part.len() as u64).to_be_bytes());
        bound.extend_from_slice(part.as_bytes());
    }
    bound
}

/// The cookie holding the browser's secret of one suspended sign-in, named
/// by a hash of its state (no caller input goes into a cookie name).
fn browser_cookie_name(state: &str) -> String {
    state_cookie_name("claimsmith_continue", state)
}

/// The page may send the user back with a POST from its own site, which a
/// `SameSite=Lax` cookie would not go with: over HTTPS the cookie is
/// `SameSite=None; Secure`. Over plain HTTP (local runs) browsers refuse
/// that pair, so it is `Lax`.
fn browser_cookie(issuer: &str, state: &str, value: &str, max_age_secs: u64) -> String {
    let same_site = if issuer.starts_with("https://") {
        "SameSite=None; Secure"
    } else {
        "SameSite=Lax"
    };
    format!(
        "{}={value}; Path=/continue; Max-Age={max_age_secs}; HttpOnly; {same_site}",
        browser_cookie_name(state)
    )
}

impl Service {
    /// Keeps `redirected` until the user comes back, and sends the browser
    /// to the action's page with the cookie that binds the login to it.
    pub(crate) async fn suspend(&self, pending: &PendingLogin, redirected: Redirected) -> Response {
        let Redirected {
            to,
            state,
            plugin,
            suspended,
        } = redirected;
        let expires_at = self.clock.now() + SUSPENDED_LOGIN_SECS;
        let sign_in = SuspendedSignIn {
            pending: pending.clone(),
            chain: suspended,
            expires_at,
        };
        let browser = random_token();
        let kept = match self.suspended_sealer.seal(&state, &browser, &sign_in) {
            Ok(sealed) => self.store.suspend_login(&state, &sealed, expires_at).await,
            Err(error) => {
                tracing::error!(%error, plugin, "cannot seal a suspended sign-in");
                return unavailable();
            }
        };
        if let Err(error) = kept {
            tracing::error!(%error, plugin, "cannot keep a suspended sign-in");
            return unavailable();
        }
        tracing::info!(
            plugin,
            client = pending.client_id,
            "sign-in sent to the action's page"
        );
        let cookie = browser_cookie(self.issuer(), &state, &browser, SUSPENDED_LOGIN_SECS);
        (
            [
                (header::SET_COOKIE, cookie),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
            Redirect::to(&to),
        )
            .into_response()
    }

    /// `/continue`: finishes the suspended sign-in `parameters` name, when
    /// this browser began it.
    async fn continue_sign_in(
        &self,
        parameters: BTreeMap<String, String>,
        headers: &HeaderMap,
        request: RequestInfo,
    ) -> Response {
        let Some(state) = parameters.get("state").cloned() else {
            return error_page(
                StatusCode::BAD_REQUEST,
                "This request came back without its state.",
            );
        };
        let sign_in = match self.take_suspended(&state, headers).await {
            Ok(sign_in) => sign_in,
            Err(refused) => return refused,
        };
        let continued = ContinueRequest {
            continued: Continued { state, parameters },
            request,
        };
        let correlation_id = super::correlation_id();
        let run = ChainRun::Continue(&sign_in.chain, &continued);
        self.sign_in(&sign_in.pending, run, &correlation_id).await
    }

    /// The sign-in suspended under `state`, taken for good: when it is
    /// waiting, this browser began it, and no other request took it first.
    async fn take_suspended(
        &self,
        state: &str,
        headers: &HeaderMap,
    ) -> Result<SuspendedSignIn, Response> {
        let now = self.clock.now();
        let sealed = match self.store.suspended_login(state, now).await {
            Ok(Some(sealed)) => sealed,
            Ok(None) => {
                tracing::info!("a /continue of no waiting sign-in; refused");
                return Err(error_page(
                    StatusCode::BAD_REQUEST,
                    "This sign-in is unknown, has expired, or was already finished. \
                     Start again from the application.",
                ));
            }
            Err(error) => {
                tracing::error!(%error, "cannot read a suspended sign-in");
                return Err(unavailable());
            }
        };
        let opened = cookie(headers, &browser_cookie_name(state))
            .and_then(|browser| self.suspended_sealer.open(state, browser, &sealed, now));
        let Some(sign_in) = opened else {
            tracing::info!("a /continue from a browser that did not begin the sign-in; refused");
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in did not start in this browser. Start again from the application.",
            ));
        };
        match self.store.take_suspended_login(state).await {
            Ok(true) => Ok(sign_in),
            Ok(false) => {
                tracing::info!("a /continue of a sign-in already finished; refused");
                Err(error_page(
                    StatusCode::BAD_REQUEST,
                    "This sign-in was already finished. Start again from the application.",
                ))
            }
            Err(error) => {
                tracing::error!(%error, "cannot take a suspended sign-in");
                Err(unavailable())
            }
        }
    }
}

fn unavailable() -> Response {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The sign-in cannot be completed now. Start again from the application.",
    )
}

/// The first value of each name, or None past [`MAX_CONTINUE_PARAMETERS`].
fn first_values(pairs: Vec<(String, String)>) -> Option<BTreeMap<String, String>> {
    if pairs.len() > MAX_CONTINUE_PARAMETERS {
        return None;
    }
    let mut parameters = BTreeMap::new();
    for (name, value) in pairs {
        parameters.entry(name).or_insert(value);
    }
    Some(parameters)
}

/// Both forms of `/continue` end here; the cookie that held the browser's
/// secret is spent either way.
async fn answer_continue(
    service: Arc<Service>,
    peer: SocketAddr,
    headers: HeaderMap,
    pairs: Vec<(String, String)>,
) -> Response {
    let Some(parameters) = first_values(pairs) else {
        return error_page(StatusCode::BAD_REQUEST, "Too many parameters.");
    };
    let state = parameters.get("state").cloned();
    let client = service.caller_address(peer.ip(), &headers);
    let request = request_info(client, &headers);
    let response = service
        .continue_sign_in(parameters, &headers, request)
        .await;
    match state {
        // Appended: a login sent to a page again sets a cookie of its own.
        Some(state) => {
            let expire = browser_cookie(service.issuer(), &state, "", 0);
            (AppendHeaders([(header::SET_COOKIE, expire)]), response).into_response()
        }
        None => response,
    }
}

/// `GET /continue?state=...`: the page sends the user back with a link.
pub(crate) async fn continue_get(
    State(service): State<Arc<Service>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    answer_continue(service, peer, headers, pairs).await
}

/// `POST /continue` with a form (Auth0's advice for a token, which a query
/// would leave in the browser's history): the form's fields and the URL's
/// query both count, the form's first.
pub(crate) async fn continue_post(
    State(service): State<Arc<Service>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let pairs = form.into_iter().chain(query).collect();
    answer_continue(service, peer, headers, pairs).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_keep_their_first_value_and_are_bounded() {
        let pairs = vec![
            ("state".to_owned(), "s1".to_owned()),
            ("state".to_owned(), "s2".to_owned()),
            ("session_token".to_owned(), "t".to_owned()),
        ];
        let parameters = first_values(pairs).unwrap();
        assert_eq!(parameters["state"], "s1");
        assert_eq!(parameters.len(), 2);
        let many = (0..=MAX_CONTINUE_PARAMETERS)
            .map(|n| (format!("p{n}"), String::new()))
            .collect();
        assert!(first_values(many).is_none());
    }

    #[test]
    fn the_binding_keeps_state_and_secret_apart() {
        assert_ne!(bound_to("ab", "c"), bound_to("a", "bc"));
    }

    #[test]
    fn the_cookie_goes_with_a_cross_site_post_only_over_https() {
        let https = browser_cookie("https://login.example.com", "s", "v", 60);
        assert!(https.contains("SameSite=None; Secure"), "{https}");
        assert!(
            https.contains("Path=/continue") && https.contains("HttpOnly"),
            "{https}"
        );
        let http = browser_cookie("http://127.0.0.1:8080", "s", "v", 60);
        assert!(
            http.contains("SameSite=Lax") && !http.contains("Secure"),
            "{http}"
        );
    }
}
