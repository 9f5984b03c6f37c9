//! The login service: an OpenID Connect provider to the apps in config, and
//! an OpenID Connect client to the upstream providers, running the plugin
//! pipeline on every login.
//!
//! Owns the HTTP endpoints and the OAuth rules around them: registered
//! clients only, exact redirect URIs, PKCE, single-use codes bound to client,
//! redirect URI and challenge, rotating refresh tokens, OAuth error answers.
//! Handlers stay thin: each parses its request and calls one method of
//! [`Service`]. Pending logins live in the browser, sealed in a cookie
//! ([`pending`]); codes, users, the audit trail, refresh tokens and signing
//! keys live in the [`Store`], so that with a shared database any host serves
//! any step of any login. The plugin chain can be swapped while serving
//! ([`reload`]). [`metrics`] are the Prometheus metrics the admin listener
//! serves.
//!
//! This is the only crate that speaks HTTP to browsers and apps; it must not
//! start the development provider (only the `claimsmith` binary's `demo`
//! feature links that).

pub mod admin;
mod authorize;
mod canary;
mod capture;
mod console;
mod cors;
pub mod forwarded;
pub mod management;
pub mod metrics;
mod pending;
mod refresh_grant;
mod shadow;
mod store_plugins;
mod suspended;
pub use claimsmith_oauth as protocol;
use protocol::ErrorCode;
pub use suspended::SUSPENDED_LOGIN_SECS;
pub mod reload;
mod throttle;
mod token;
pub mod upstream;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::capture::LoginCapture;
use crate::metrics::Grant;
use claimsmith_capabilities::http::{Interceptor, OutboundHttp, Tee};
use claimsmith_config::{ClientConfig, Config};
use claimsmith_core::{Clock, SystemClock};
use claimsmith_core::{StoredUser, UserRecord};
use claimsmith_engine::Engine;
use claimsmith_keys::{KeyRing, KeyRingError, KeyVault};
use claimsmith_pipeline::{
    BoxFuture, ContinueRequest, Login, LoginEnd, LoginFailure, Pipeline, RunOptions, SigningIn,
    StartError, StoredUsers, SuspendedLogin, UserLookup,
};
use claimsmith_store::{
    AuditEntry, AuditOutcome, Authorization, AuthorizationQuery, NewCode, Retention, SavedUser,
    Store, StoredUserRow,
};
use upstream::{UpstreamClient, UpstreamError};

/// How long a user may take at the upstream provider.
pub(crate) const PENDING_LOGIN_TTL: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("database: {0}")]
    Store(#[from] claimsmith_store::StoreError),
    #[error("connection `{connection}`: {source}")]
    Upstream {
        connection: String,
        source: UpstreamError,
    },
    #[error("connection `{0}` has no upstream registration (issuer, client_id, client_secret)")]
    NoUpstream(String),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("loading the plugins stopped: {0}")]
    Loader(String),
    #[error("data directory {0}")]
    DataDir(String),
    #[error("key-encryption key: {0}")]
    KeyEncryptionKey(#[from] claimsmith_tokens::sealing::KeyFileError),
    #[error("signing keys: {0}")]
    Keys(#[from] KeyRingError),
    #[error("store plugin `{plugin}`: {why}")]
    StorePlugin { plugin: String, why: String },
}

/// Everything the endpoints share.
pub struct Service {
    /// As loaded at start: what the endpoints follow (issuer, clients,
    /// server settings). A reload swaps the chain, not these.
    config: Config,
    /// The chain new logins run on; a reload replaces it whole.
    chain: RwLock<Arc<Pipeline>>,
    /// Held through a whole reload, so that two (a deploy's and the poll's,
    /// say) run one after the other and the later one, which read the
    /// later deploy, is swapped in last.
    reloading: tokio::sync::Mutex<()>,
    /// Where new chains are loaded (its compile cache and pool).
    engine: Arc<Engine>,
    plugin_http: OutboundHttp,
    keys: KeyRing,
    store: Store,
    upstreams: HashMap<String, UpstreamClient>,
    login_sealer: pending::LoginSealer,
    /// Seals the sign-ins waiting for `/continue`.
    suspended_sealer: suspended::SuspendedSealer,
    /// Seals the console's session and sign-in cookies.
    console_sealer: claimsmith_tokens::sealing::Sealer,
    refresh_grants: refresh_grant::GrantSealer,
    failed_authentications: throttle::FailedAuthentications,
    /// Shared with a sign-in's [`UserDirectory`].
    metrics: Arc<crate::metrics::Metrics>,
    /// The candidate versions run beside store plugins, and their tallies.
    shadows: Arc<shadow::Shadows>,
    /// The versions served to a share of users instead of the deployed.
    canaries: Arc<canary::Canaries>,
    /// The one clock of the service: expiries, audit times, key schedules.
    clock: Arc<dyn Clock>,
}

impl Service {
    /// Loads the plugins, opens the database and its signing keys, and
    /// discovers every upstream.
    pub async fn start(config: Config) -> Result<Arc<Self>, ServiceError> {
        Self::start_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Service::start`], reading the time from `clock` (a test's, to
    /// let a lifetime pass without waiting for it).
    pub async fn start_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, ServiceError> {
        let plugin_http = OutboundHttp::new().map_err(|e| ServiceError::Http(e.to_string()))?;
        create_private_dir(&config.data_dir)?;
        let store = Store::open(&config.storage.database, config.storage.synchronous).await?;
        let key_encryption_key = claimsmith_keys::key_encryption_key(&config)?;
        let vault = KeyVault::new(
            store.clone(),
            &key_encryption_key,
            claimsmith_keys::retire_after(&config),
            clock.clone(),
        );
        let keys = vault
            .open_ring(config.tokens.algorithm, &config.data_dir.join("keys"))
            .await?;
        keys.spawn_reloading(vault, config.keys.reload_secs);
        let upstream_http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ServiceError::Http(e.to_string()))?;
        let mut upstreams = HashMap::new();
        for connection in &config.connections {
            let registration = connection
                .upstream
                .clone()
                .ok_or_else(|| ServiceError::NoUpstream(connection.name.clone()))?;
            let client = UpstreamClient::connect(registration, upstream_http.clone())
                .await
                .map_err(|source| ServiceError::Upstream {
                    connection: connection.name.clone(),
                    source,
                })?;
            upstreams.insert(connection.name.clone(), client);
        }
        let engine =
            Arc::new(Engine::new(&config.engine, plugin_http.clone()).map_err(StartError::from)?);
        let mut chain_config = config.clone();
        let access = store_plugins::StoreAccess {
            store: &store,
            engine: &engine,
            now: clock.now(),
        };
        store_plugins::point_at_deployed(access, &mut chain_config).await?;
        let pipeline = load_chain(&engine, chain_config, &keys, &plugin_http).await?;
        let retention = Retention {
            code_memory_secs: config.server.code_ttl_secs,
            audit_trail_secs: config.server.audit_retention_days.saturating_mul(86_400),
        };
        spawn_pruning(store.clone(), retention, clock.clone());
        let metrics = Arc::<crate::metrics::Metrics>::default();
        let (shadows, shadow_runs) =
            shadow::Shadows::new(metrics.clone(), config.server.shadow_queue);
        let shadows = Arc::new(shadows);
        shadow::spawn_worker(Arc::downgrade(&shadows), shadow_runs);
        let service = Arc::new(Service {
            login_sealer: pending::LoginSealer::new(&key_encryption_key),
            suspended_sealer: suspended::SuspendedSealer::new(&key_encryption_key),
            console_sealer: key_encryption_key.sealer("console v1"),
            refresh_grants: refresh_grant::GrantSealer::new(&key_encryption_key),
            chain: RwLock::new(Arc::new(pipeline)),
            reloading: tokio::sync::Mutex::default(),
            config,
            engine,
            plugin_http,
            keys,
            store,
            upstreams,
            failed_authentications: throttle::FailedAuthentications::default(),
            metrics,
            shadows,
            canaries: Arc::default(),
            clock,
        });
        reload::spawn_watching(&service);
        store_plugins::spawn_following(&service);
        Ok(service)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The chain new logins run on now.
    pub fn pipeline(&self) -> Arc<Pipeline> {
        self.chain
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn config(&self) -> &Config {
        &self.config
    }

    /// `work` (a database operation of the login path), timed into the
    /// `database_duration_seconds{operation}` histogram.
    async fn timed<T>(&self, operation: &'static str, work: impl Future<Output = T>) -> T {
        self.metrics.timed(operation, work).await
    }

    fn issuer(&self) -> &str {
        &self.config().issuer
    }

    fn client(&self, client_id: &str) -> Option<&ClientConfig> {
        self.config().client(client_id)
    }

    /// The address a request from `peer` comes from: `peer`, or behind
    /// trusted proxies the client they name ([`forwarded`]).
    fn caller_address(&self, peer: std::net::IpAddr, headers: &HeaderMap) -> std::net::IpAddr {
        let server = &self.config().server;
        forwarded::client_address(
            peer,
            headers,
            &server.trusted_proxies,
            server.forwarded_header,
        )
    }

    /// Runs the pipeline for one login and records it: the audit row, and
    /// when tokens were minted the user and the code a sign-in answers with
    /// (`code`), in one transaction. A denied or failed login changes nothing
    /// about the user: metadata its actions set is dropped. Tokens that could
    /// not be recorded are not handed out.
    ///
    /// On a sign-in the chain reads the stored user once the profile names
    /// them ([`UserDirectory`]), and the Management API answers for the
    /// user while the chain runs, as Auth0's does ([`SignInView`]). A
    /// sign-in an action sends to a page records nothing yet: it ends in
    /// [`LoginEnd::Redirected`], for the caller to keep until `/continue`.
    /// A login a capturing plugin ran in is kept with its audit row
    /// ([`capture`]).
    async fn run_login(
        &self,
        run: ChainRun<'_>,
        correlation_id: &str,
        code: Option<token::CodeToIssue<'_>>,
    ) -> Result<LoginEnd, LoginFailure> {
        let login = run.login();
        // The chain of this moment, for the whole run: a reload meanwhile
        // does not mix two versions in one login.
        let pipeline = self.pipeline();
        let view = (!login.refresh && reaches_the_management_api(&pipeline, self.issuer()))
            .then(|| Arc::new(SignInView::new(self.store.clone(), self.clock.now())));
        let users = (!login.refresh).then(|| {
            Arc::new(UserDirectory {
                store: self.store.clone(),
                metrics: self.metrics.clone(),
            }) as Arc<dyn StoredUsers>
        });
        let shadowed = self.shadows.recording(&pipeline);
        // A login resumed at `/continue` is not captured: a golden case
        // runs a login from its start.
        let capture = matches!(run, ChainRun::Start(_))
            .then(|| LoginCapture::for_login(&pipeline, users.clone(), SystemClock.now()))
            .flatten();
        let recorders: Vec<Interceptor> = [
            shadowed.clone().map(|recording| recording as Interceptor),
            capture.clone().map(|capture| capture as Interceptor),
        ]
        .into_iter()
        .flatten()
        .collect();
        let options = RunOptions {
            signing_in: view.clone().map(|view| view as Arc<dyn SigningIn>),
            users: capture.as_ref().map_or(users, LoginCapture::users),
            redirect_state: (!login.refresh).then(protocol::random_token),
            interceptor: Tee::of(recorders),
            action_tap: shadowed.clone().map(|recording| recording as _),
            action_choice: (!self.canaries.is_empty())
                .then(|| self.canaries.clone() as Arc<dyn claimsmith_pipeline::ActionChoice>),
            ..RunOptions::default()
        };
        let report = match run {
            ChainRun::Start(login) => pipeline.run(login, &options).await,
            ChainRun::Continue(suspended, continued) => {
                pipeline.resume(suspended, continued, &options).await
            }
        };
        // The live chain has run: its shadow runs go to the worker.
        if let Some(recording) = &shadowed {
            let now = self.clock.now();
            self.shadows
                .submit(recording, now, report.user_id.as_deref());
        }
        let captured = capture.and_then(|capture| capture.kept(&pipeline, login, &report));
        self.metrics.steps(&report.steps);
        for breach in self.canaries.observe(&report.steps) {
            self.roll_back_canary(breach).await;
        }
        let mut outcome = match report.outcome {
            Ok(LoginEnd::Minted(minted)) => Ok(*minted),
            Ok(LoginEnd::Redirected(redirected)) => {
                if let Some(view) = view {
                    view.end().await;
                }
                let grant = Grant::SignIn;
                self.metrics.login(&login.client_id, grant, "redirected");
                return Ok(LoginEnd::Redirected(redirected));
            }
            Err(failure) => Err(failure),
        };
        let sealed_code = match (&outcome, &code) {
            (Ok(minted), Some(code)) => Some(code.seal(minted)),
            _ => None,
        };
        let sealed_code = match sealed_code.transpose() {
            Ok(sealed) => sealed,
            Err(error) => {
                tracing::error!(%error, correlation_id, "cannot seal the authorization code");
                outcome = Err(LoginFailure::Storage);
                None
            }
        };
        let entry = AuditEntry {
            at: claimsmith_core::rfc3339(self.clock.now()),
            user_id: report.user_id,
            client_id: login.client_id.clone(),
            connection: login.connection.clone(),
            outcome: audit_outcome(&outcome),
            steps: serde_json::to_value(&report.steps).unwrap_or(Value::Null),
            correlation_id: Some(correlation_id.to_owned()),
            chain_version: Some(pipeline.chain_version().to_owned()),
        };
        let saved = outcome.as_ref().ok().map(|minted| SavedUser {
            user: &minted.user,
            counts_as_login: !login.refresh,
            upstream_roles: minted.upstream_roles.as_deref(),
        });
        let new_code = code
            .zip(sealed_code.as_deref())
            .map(|(code, sealed)| NewCode {
                code: code.code,
                sealed,
                expires_at: self.clock.now() + self.config().server.code_ttl_secs,
            });
        let recorded = self
            .timed(
                "record_login",
                self.store
                    .record_login(&entry, saved, new_code, captured.as_ref()),
            )
            .await;
        match &recorded {
            Err(error) => tracing::error!(%error, correlation_id, "cannot record the login"),
            Ok(log_id) if captured.is_some() => {
                tracing::info!(log_id, correlation_id, "login captured");
            }
            Ok(_) => {}
        }
        if let Some(view) = view {
            view.end().await;
        }
        let outcome = match outcome {
            Ok(_) if recorded.is_err() => Err(LoginFailure::Storage),
            outcome => outcome,
        };
        let grant = if login.refresh {
            Grant::Refresh
        } else {
            Grant::SignIn
        };
        let counted = match &outcome {
            Ok(_) => "minted",
            Err(LoginFailure::Denied { .. }) => "denied",
            Err(_) => "failed",
        };
        self.metrics.login(&login.client_id, grant, counted);
        outcome.map(|minted| LoginEnd::Minted(Box::new(minted)))
    }
}

/// The data behind `mutex`, even if a thread panicked holding it: what
/// the service keeps under a mutex (recordings, tallies) is whole after
/// every statement, so a panic elsewhere leaves nothing half-written.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What [`Service::run_login`] runs the chain for.
#[derive(Clone, Copy)]
enum ChainRun<'a> {
    /// A sign-in or a refresh, from the start.
    Start(&'a Login),
    /// A sign-in back at `/continue` from the page an action sent it to.
    Continue(&'a SuspendedLogin, &'a ContinueRequest),
}

impl ChainRun<'_> {
    fn login(&self) -> &Login {
        match self {
            ChainRun::Start(login) => login,
            ChainRun::Continue(suspended, _) => &suspended.login,
        }
    }
}

/// How the audit trail records a login's outcome.
fn audit_outcome(outcome: &Result<claimsmith_pipeline::MintedLogin, LoginFailure>) -> AuditOutcome {
    match outcome {
        Ok(_) => AuditOutcome::Minted,
        Err(LoginFailure::Denied { reason, .. }) => AuditOutcome::Denied {
            reason: reason.clone(),
        },
        Err(failure) => AuditOutcome::Failed {
            error: failure.to_string(),
        },
    }
}

/// Whether an action of `pipeline`'s chain can call the Management API:
/// only one granted the issuer's origin can, and only then is the user
/// being signed in shown there ([`SignInView`]), which costs a write and a
/// delete per sign-in.
fn reaches_the_management_api(pipeline: &Pipeline, issuer: &str) -> bool {
    let Some(origin) = reqwest::Url::parse(issuer)
        .ok()
        .and_then(|url| url.origin().ascii_serialization().parse().ok())
    else {
        // The config check refuses such an issuer; if one got through,
        // showing the user is the safe side.
        return true;
    };
    let config = pipeline.config();
    config
        .actions
        .iter()
        .filter_map(|action| config.plugins.get(&action.plugin))
        .any(|spec| spec.http.allowed_origins.contains(&origin))
}

/// How long a sign-in's view of its user outlives a host that stopped
/// mid-login: longer than any chain may run.
const SIGN_IN_VIEW_SECS: u64 = 300;

/// What the Management API answers for a user while a sign-in's chain runs:
/// the profile just fetched, their metadata and `logins_count` counting this
/// login. In the database, so that whichever host of a deployment an action
/// reaches answers alike; ended once the login is stored or dropped, so that
/// a denied or failed login leaves nothing of the user behind.
struct SignInView {
    store: Store,
    login_key: String,
    /// The user's `created_at` on a first sign-in.
    now: String,
    expires_at: u64,
}

impl SigningIn for SignInView {
    fn show<'a>(
        &'a self,
        user: &'a UserRecord,
        created_at: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), String>> {
        let created_at = created_at.unwrap_or(&self.now).to_owned();
        Box::pin(async move {
            let row = StoredUserRow {
                user: StoredUser {
                    user_metadata: user.user_metadata.clone(),
                    app_metadata: user.app_metadata.clone(),
                    logins_count: user.logins_count,
                    last_login: Some(user.last_login.clone()),
                    created_at: Some(created_at.clone()),
                    ..StoredUser::default()
                },
                profile: user.profile.clone(),
                created_at,
            };
            self.store
                .begin_sign_in(&self.login_key, &user.user_id, &row, self.expires_at)
                .await
                .map_err(|error| error.to_string())
        })
    }
}

/// The store as a sign-in's chain reads its user ([`StoredUsers`]), timed
/// like the service's other queries.
struct UserDirectory {
    store: Store,
    metrics: Arc<crate::metrics::Metrics>,
}

impl StoredUsers for UserDirectory {
    fn load<'a>(&'a self, lookup: UserLookup<'a>) -> BoxFuture<'a, Result<StoredUser, String>> {
        Box::pin(async move {
            let (row, authorization) = read_user(&self.store, &self.metrics, lookup)
                .await
                .map_err(|error| error.to_string())?;
            // A first sign-in may already hold roles: those of the upstream.
            let mut user = row.map(|row| row.user).unwrap_or_default();
            user.roles = authorization.roles;
            user.permissions = authorization.permissions;
            Ok(user)
        })
    }
}

/// The stored user a login starts from (None for someone never stored),
/// and the roles and permissions it counts ([`Store::authorization`]).
async fn read_user(
    store: &Store,
    metrics: &crate::metrics::Metrics,
    lookup: UserLookup<'_>,
) -> Result<(Option<StoredUserRow>, Authorization), claimsmith_store::StoreError> {
    let query = AuthorizationQuery {
        user_id: lookup.user_id,
        upstream_roles: lookup.upstream_roles,
        permissions_for: lookup.permissions_for,
    };
    let read = async {
        let row = store.load_user(lookup.user_id).await?;
        // Someone never stored holds no role but the upstream's.
        let authorization = if row.is_some() || lookup.upstream_roles.is_some() {
            store.authorization(query).await?
        } else {
            Authorization::default()
        };
        Ok((row, authorization))
    };
    metrics.timed("load_user", read).await
}

impl SignInView {
    /// The view of the user a sign-in starting `now` signs in.
    fn new(store: Store, now: u64) -> Self {
        SignInView {
            store,
            login_key: protocol::random_token(),
            now: claimsmith_core::rfc3339(now),
            expires_at: now + SIGN_IN_VIEW_SECS,
        }
    }

    async fn end(&self) {
        if let Err(error) = self.store.end_sign_in(&self.login_key).await {
            // Pruned when it expires.
            tracing::warn!(%error, "cannot end the sign-in's view of its user");
        }
    }
}

impl Service {
    /// Records a login that failed before the pipeline ran (at the upstream,
    /// say), so that the audit trail has every attempt.
    async fn record_failed_attempt(
        &self,
        client_id: &str,
        connection: &str,
        error: &str,
        correlation_id: &str,
    ) {
        let entry = AuditEntry {
            at: claimsmith_core::rfc3339(self.clock.now()),
            user_id: None,
            client_id: client_id.to_owned(),
            connection: connection.to_owned(),
            outcome: AuditOutcome::Failed {
                error: error.to_owned(),
            },
            steps: Value::Array(Vec::new()),
            correlation_id: Some(correlation_id.to_owned()),
            chain_version: None,
        };
        if let Err(error) = self.store.record_login(&entry, None, None, None).await {
            tracing::error!(%error, correlation_id, "cannot record the failed login");
        }
        // Only configured clients name a series, whatever a request claims.
        let client = if self.client(client_id).is_some() {
            client_id
        } else {
            "unknown"
        };
        self.metrics.login(client, Grant::SignIn, "failed");
    }
}

/// The id that ties an app's error answer to the log lines and the audit row.
pub(crate) fn correlation_id() -> String {
    let mut id = protocol::random_token();
    id.truncate(16);
    id
}

/// Loads a chain on `engine` with the service's keys. Compiling plugins is
/// CPU work: it runs off the async workers.
async fn load_chain(
    engine: &Arc<Engine>,
    config: Config,
    keys: &KeyRing,
    http: &OutboundHttp,
) -> Result<Pipeline, ServiceError> {
    let engine = engine.clone();
    let keys = keys.clone();
    let http = http.clone();
    tokio::task::spawn_blocking(move || Pipeline::assemble(config, &engine, keys, http))
        .await
        .map_err(|e| ServiceError::Loader(e.to_string()))?
        .map_err(ServiceError::from)
}

/// Expired refresh tokens, codes and spent pending logins, and audit rows
/// past their retention, are deleted every minute, so the tables do not
/// grow with every login ever made; with several hosts, one of them prunes
/// each time.
fn spawn_pruning(store: Store, retention: Retention, clock: Arc<dyn Clock>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            match store.prune_expired(clock.now(), retention).await {
                Ok(Some(pruned)) if pruned != claimsmith_store::Pruned::default() => {
                    tracing::info!(
                        refresh_tokens = pruned.refresh_tokens,
                        codes = pruned.codes,
                        users_signing_in = pruned.users_signing_in,
                        spent_logins = pruned.spent_logins,
                        suspended_logins = pruned.suspended_logins,
                        ended_console_sessions = pruned.ended_console_sessions,
                        audit_rows = pruned.audit_rows,
                        "pruned expired rows"
                    )
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "cannot prune expired rows"),
            }
        }
    });
}

/// The data directory holds keys, users and refresh tokens: owner only.
fn create_private_dir(dir: &std::path::Path) -> Result<(), ServiceError> {
    let failed = |e: std::io::Error| ServiceError::DataDir(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(failed)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(failed)?;
    }
    Ok(())
}

/// The HTTP endpoints: those a browser navigates to, and those an app's
/// scripts call (open to the clients' `web_origins`).
pub fn router(service: Arc<Service>) -> Router {
    let called_by_scripts = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/oauth/token", post(token::token))
        .route("/oauth/revoke", post(token::revoke))
        .route("/userinfo", get(token::userinfo).post(token::userinfo))
        .layer(axum::middleware::from_fn_with_state(
            service.clone(),
            cors::allow_web_origins,
        ));
    let (management, openapi) = management::routes();
    let openapi = Arc::new(openapi);
    let management = management.route(
        "/openapi.json",
        get(move || {
            let openapi = openapi.clone();
            async move { axum::Json(openapi) }
        }),
    );
    Router::new()
        .route("/authorize", get(authorize::authorize))
        .route("/callback", get(authorize::callback))
        .route(
            "/continue",
            get(suspended::continue_get).post(suspended::continue_post),
        )
        .merge(called_by_scripts)
        .nest("/api/v2", management)
        .nest("/admin", console::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BODY_BYTES))
        // No request path panics by design; should one ever, its request
        // gets a 500 and the connection and the process go on.
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(service)
}

/// The largest request body any endpoint reads (token and revocation forms
/// are a few hundred bytes).
const MAX_REQUEST_BODY_BYTES: usize = 64 * 1024;

/// Serves `service` on `listener` until the process ends: HTTP/1.1, at most
/// `server.max_connections` at once (more wait in the listen queue), each
/// given `server.header_read_timeout_secs` to send a request's headers and
/// `server.body_read_timeout_secs` to send its body.
pub async fn serve(
    service: Arc<Service>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    let settings = service.config().server.clone();
    serve_router(router(service), settings, listener).await
}

/// Serves `app` (the service's [`router`], with routes added as the demo
/// adds its app page) under the same edge limits as [`serve`].
pub async fn serve_router(
    app: Router,
    settings: claimsmith_config::ServerSettings,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    use tower::ServiceExt as _;

    let header_read_timeout = Duration::from_secs(settings.header_read_timeout_secs);
    let body_read_timeout = Duration::from_secs(settings.body_read_timeout_secs);
    let max_connections = usize::try_from(settings.max_connections).unwrap_or(usize::MAX);
    let connections = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let Ok(permit) = connections.clone().acquire_owned().await else {
            return Ok(());
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Answers go out at once: with Nagle's algorithm a response written
        // in two parts waits for the client's delayed ACK (40 ms on Linux).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, %peer, "cannot set TCP_NODELAY");
        }
        let app = app.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let requests = hyper::service::service_fn(
                move |request: axum::http::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    async move {
                        let mut request = match read_body(request, body_read_timeout).await {
                            Ok(request) => request,
                            Err(refused) => return Ok(refused),
                        };
                        request
                            .extensions_mut()
                            .insert(axum::extract::ConnectInfo(peer));
                        app.oneshot(request).await
                    }
                },
            );
            let served = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), requests)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
}

/// `request` with its body read whole, within `deadline` from now and at
/// most [`MAX_REQUEST_BODY_BYTES`]: a body sent a byte at a time must not
/// hold a connection (and a place among `max_connections`) for ever. Every
/// endpoint reads a small body whole anyway.
async fn read_body(
    request: axum::http::Request<hyper::body::Incoming>,
    deadline: Duration,
) -> Result<axum::http::Request<axum::body::Body>, Response> {
    use http_body_util::BodyExt as _;
    use hyper::body::Body as _;

    // Most requests (every GET) have none: nothing to wait for. A plugin
    // push is read by its handler, under the same deadline, once the
    // caller's token is checked: 64 MiB is not read for anyone who asks.
    if request.body().is_end_stream() || management::reads_its_own_body(&request) {
        return Ok(request.map(axum::body::Body::new));
    }
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_REQUEST_BODY_BYTES);
    let refuse = |status: StatusCode, why: &str| {
        // The rest of the body may still come: the connection cannot be reused.
        (status, [(header::CONNECTION, "close")], why.to_owned()).into_response()
    };
    match tokio::time::timeout(deadline, limited.collect()).await {
        Ok(Ok(body)) => Ok(axum::http::Request::from_parts(
            parts,
            axum::body::Body::from(body.to_bytes()),
        )),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large",
        )),
        Ok(Err(_)) => Err(refuse(
            StatusCode::BAD_REQUEST,
            "the request body broke off",
        )),
        Err(_) => Err(refuse(
            StatusCode::REQUEST_TIMEOUT,
            "the request body took too long",
        )),
    }
}

async fn discovery(axum::extract::State(service): axum::extract::State<Arc<Service>>) -> Response {
    let issuer = service.issuer();
    let config = service.config();
    let algorithm = service
        .keys
        .signing_key_at(service.clock.now())
        .algorithm()
        .to_string();
    let mut scopes: Vec<&str> = config
        .clients
        .iter()
        .flat_map(|c| c.allowed_scopes.iter().map(String::as_str))
        .collect();
    scopes.sort_unstable();
    scopes.dedup();
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [algorithm],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": scopes,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "name", "email", "email_verified"],
    }))
    .into_response()
}

async fn jwks(axum::extract::State(service): axum::extract::State<Arc<Service>>) -> Response {
    (
        [(
            header::CACHE_CONTROL,
            format!("public, max-age={}", service.config.keys.jwks_max_age_secs),
        )],
        axum::Json(service.keys.jwks()),
    )
        .into_response()
}

/// An OAuth error answer (RFC 6749 §5.2), as JSON.
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    pub(crate) error: ErrorCode,
    pub(crate) description: String,
}

impl OAuthError {
    pub(crate) fn new(
        status: StatusCode,
        error: ErrorCode,
        description: impl Into<String>,
    ) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }

    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            description,
        )
    }

    pub(crate) fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidGrant,
            description,
        )
    }

    /// The service itself failed (storage, say). The app gets a stable
    /// description with a reference; the detail goes to the log only.
    pub(crate) fn server_error(error: impl std::fmt::Display) -> Self {
        let correlation_id = correlation_id();
        tracing::error!(%error, correlation_id, "token endpoint failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::ServerError,
            format!("the request could not be completed (reference {correlation_id})"),
        )
    }

    pub(crate) fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidClient,
            description,
        )
    }

    /// The answer for a login that did not mint. A denial's reason is the
    /// action's message to the app; any other failure's detail (plugin
    /// errors, database errors) stays in the log and the audit row.
    pub(crate) fn from_failure(failure: &LoginFailure, correlation_id: &str) -> Self {
        match failure {
            LoginFailure::Denied { reason, .. } => Self::new(
                StatusCode::FORBIDDEN,
                ErrorCode::AccessDenied,
                reason.clone(),
            ),
            other => {
                tracing::warn!(error = %other, correlation_id, "login failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::ServerError,
                    failed_login_description(correlation_id),
                )
            }
        }
    }
}

/// What an app is told of a login that failed inside the service.
pub(crate) fn failed_login_description(correlation_id: &str) -> String {
    format!("the sign-in could not be completed (reference {correlation_id})")
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"claimsmith\""),
            );
        }
        (
            self.status,
            headers,
            axum::Json(
                json!({ "error": self.error.as_str(), "error_description": self.description }),
            ),
        )
            .into_response()
    }
}

/// An error shown to the user, never redirected: used when the client or the
/// redirect URI cannot be trusted with the answer.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    (
        status,
        Html(format!(
            "<!doctype html><title>Sign-in error</title><h1>Sign-in error</h1><p>{escaped}</p>"
        )),
    )
        .into_response()
}

/// Compares secrets in constant time, lengths included (digests are compared).
pub(crate) fn secrets_equal(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(
        &Sha256::digest(a.as_bytes()),
        &Sha256::digest(b.as_bytes()),
    )
    .is_ok()
}
