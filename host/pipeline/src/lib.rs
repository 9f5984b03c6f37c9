//! The login pipeline: one login, from the upstream's tokens to ours.
//!
//! profile fetch (the connection's plugin, or the id token's claims merged
//! with the userinfo response) → post-login actions in configured order, each
//! seeing the changes of the ones before → claim validation → minting.
//!
//! Owns the order of the steps and what each outcome means: a deny stops the
//! chain, a failing step fails the login unless configured to be skipped.
//! It must not store users or speak HTTP to apps (the service does), and it
//! never sees how a plugin runs (the engine does): it depends on nothing
//! above the key ring.

mod exchange;
mod resume;

pub use exchange::{ExchangeFailure, ExchangeReport, TokenRequest};
use resume::Resumed;
pub use resume::{ContinueRequest, Redirected, SuspendedLogin};

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use claimsmith_capabilities::api::{ActionEffects, ApiError, validate_custom_claims};
use claimsmith_capabilities::http::{
    HttpCapability, HttpPolicy, Interceptor, Origin, OutboundHttp, OutboundRequest,
};
use claimsmith_config::{
    ApiConfig, ClientConfig, Config, ConnectionConfig, OnError, UpstreamProtocol,
};
use claimsmith_core::{Clock, SystemClock, is_reserved_claim, rfc3339, user_id};
use claimsmith_engine::{
    CallOptions, Engine, Event, EventAuthorization, EventClient, EventConnection, EventRequest,
    EventUser, FetchContext, Invocation, Limit, LoadError, Plugin, PluginError, World,
};
use claimsmith_keys::KeyRing;
use claimsmith_tokens::{
    MintRequest, MintedTokens, SigningKey, TokenError, UpstreamAuthentication, mint,
};

// The pipeline's input and its step reports are core's shapes: the store and
// the service hand them around too.
pub use claimsmith_core::{
    Login, RequestInfo, StepKind, StepReport, StepStatus, StoredUser, Transaction, UpstreamLogin,
    UserRecord,
};

/// Per-run choices of the caller.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Answers plugins' HTTP instead of the network (local runs, tests).
    pub interceptor: Option<Interceptor>,
    /// The clock, in unix seconds; the system clock when absent.
    pub now: Option<u64>,
    /// Collects the plugins' log lines.
    pub log_sink: Option<claimsmith_capabilities::log::LogSink>,
    /// Shown the user once their profile is fetched, before the actions run.
    pub signing_in: Option<Arc<dyn SigningIn>>,
    /// Where the user is read once the profile fetch has named them; without
    /// it the login's `user` is the stored user (refreshes, golden cases).
    pub users: Option<Arc<dyn StoredUsers>>,
    /// The `state` a sign-in's page must bring back to `/continue` should
    /// an action send the user there (`api.redirect`). Without it (a
    /// refresh; a caller with no browser to send) `api.redirect` refuses.
    pub redirect_state: Option<String>,
    /// Shown the post-login actions' calls it wants (a shadow run's input).
    pub action_tap: Option<Arc<dyn ActionTap>>,
    /// Runs another build of an action for some users (a canary's).
    pub action_choice: Option<Arc<dyn ActionChoice>>,
}

/// Which build of a post-login action a user's login runs: the chain's, or
/// (for a canary's share of users) another version of the same plugin.
pub trait ActionChoice: Send + Sync {
    /// The build to run instead of `plugin`'s for `user_id`, if any.
    fn instead(&self, plugin: &str, user_id: &str) -> Option<Arc<Plugin>>;
}

/// Shown a post-login action's call as it ran: the event it saw, the
/// effects before it, and what it did. A shadow run replays these for a
/// candidate version; only the plugins it `wants` cost anything.
pub trait ActionTap: Send + Sync {
    fn wants(&self, plugin: &str) -> bool;
    fn ran(
        &self,
        plugin: &str,
        event: &Event,
        before: &ActionEffects,
        output: &Result<ActionEffects, PluginError>,
    );
}

/// A boxed future of a trait object's method.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Where a sign-in reads the user the upstream names. The chain asks after
/// the profile fetch, not before: a plain OAuth 2.0 upstream names the user
/// only in the profile its fetcher shapes.
pub trait StoredUsers: Send + Sync {
    /// The user as stored (the default for someone never stored), with
    /// their roles as this sign-in leaves them; an error fails the login.
    fn load<'a>(&'a self, lookup: UserLookup<'a>) -> BoxFuture<'a, Result<StoredUser, String>>;
}

/// Which user a sign-in reads, and what of their roles.
#[derive(Debug, Clone, Copy)]
pub struct UserLookup<'a> {
    pub user_id: &'a str,
    /// The role names the connection's `roles_from` found in the profile:
    /// with them, the roles are those the Management API gave and the
    /// existing roles of these names. None when the connection maps none.
    pub upstream_roles: Option<&'a [String]>,
    /// The API whose permissions the access token carries, if it adds them.
    pub permissions_for: Option<&'a str>,
}

/// The most role names a sign-in's profile may give through `roles_from`:
/// each is a bound parameter of the store's query.
pub const MAX_UPSTREAM_ROLES: usize = 500;
/// The longest role name (as the Management API allows): a longer upstream
/// string cannot name a role.
pub const MAX_ROLE_NAME_CHARS: usize = 50;

/// Where a login shows the user it is signing in, between the profile fetch
/// and the actions: Auth0 stores the user before its Actions run, and
/// Actions read them back (through the Management API), first sign-in
/// included. The caller keeps the view until the login is stored or
/// dropped, so that a failed login still stores nothing.
pub trait SigningIn: Send + Sync {
    /// Shows `user` (its `logins_count` counting this login), stored first
    /// at `created_at` (None on a first sign-in). An error is logged and the
    /// login goes on: the view is for the actions' reads.
    fn show<'a>(
        &'a self,
        user: &'a UserRecord,
        created_at: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// What happened to one login, step by step.
#[derive(Debug)]
pub struct LoginReport {
    pub steps: Vec<StepReport>,
    /// The user, once the upstream or the profile named them.
    pub user_id: Option<String>,
    pub outcome: Result<LoginEnd, LoginFailure>,
}

/// How a login that did not fail ended.
#[derive(Debug)]
pub enum LoginEnd {
    /// In tokens.
    Minted(Box<MintedLogin>),
    /// An action sent the user to a page: the rest waits for `/continue`.
    Redirected(Box<Redirected>),
}

impl LoginEnd {
    /// The tokens, unless an action sent the user away first.
    pub fn minted(self) -> Option<MintedLogin> {
        match self {
            LoginEnd::Minted(minted) => Some(*minted),
            LoginEnd::Redirected(_) => None,
        }
    }
}

/// What a run has recorded so far, for its report.
#[derive(Default)]
struct Progress {
    steps: Vec<StepReport>,
    user_id: Option<String>,
}

/// A login that ended in tokens.
#[derive(Clone, Serialize, Deserialize)]
pub struct MintedLogin {
    pub tokens: MintedTokens,
    /// The upstream's id for the user (`user.user_id` is
    /// `connection|upstream_subject`).
    pub upstream_subject: String,
    /// The `auth_time` the tokens carry.
    pub auth_time: u64,
    /// The upstream's `acr` and `amr` the id token carries, which the
    /// login's refreshes keep.
    #[serde(default)]
    pub authentication: UpstreamAuthentication,
    pub user: UserRecord,
    pub scopes: Vec<String>,
    /// The custom claims the actions set on each token.
    pub access_token_claims: Map<String, Value>,
    pub id_token_claims: Map<String, Value>,
    /// What the connection's `roles_from` found, for the store to keep; not
    /// part of what the authorization code stands for.
    #[serde(skip)]
    pub upstream_roles: Option<Vec<String>>,
}

impl std::fmt::Debug for MintedLogin {
    // Bearer tokens stay out of debug output, which ends up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedLogin")
            .field("tokens", &"<redacted>")
            .field("user", &self.user)
            .field("scopes", &self.scopes)
            .field("access_token_claims", &self.access_token_claims)
            .field("id_token_claims", &self.id_token_claims)
            .finish()
    }
}

/// Why no token was minted.
#[derive(Debug, thiserror::Error)]
pub enum LoginFailure {
    #[error("unknown connection `{0}`")]
    UnknownConnection(String),
    #[error("unknown client `{0}`")]
    UnknownClient(String),
    #[error(
        "nothing names the user: the upstream id token has no `sub`, and the profile no \
         `user_id`, `sub` or `id`"
    )]
    MissingSubject,
    /// The detail is in the host's log, not in what apps see.
    #[error("the user could not be read")]
    UserUnavailable,
    #[error("login denied by `{plugin}`: {reason}")]
    Denied { plugin: String, reason: String },
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("userinfo request failed: {0}")]
    Userinfo(String),
    #[error("the profile's `{claim}` (the connection's roles_from) {problem}")]
    UpstreamRoles { claim: String, problem: String },
    #[error("custom claims of the {token} refused: {error}")]
    InvalidClaims {
        token: &'static str,
        error: ApiError,
    },
    #[error("minting failed: {0}")]
    Mint(#[from] TokenError),
    /// A login came back to `/continue` after the chain it left changed.
    #[error("the actions changed while the user was away (`{plugin}` sent them): sign in again")]
    ChainChanged { plugin: String },
    /// The detail is in the host's log, not in what apps see.
    #[error("the user could not be stored")]
    Storage,
}

/// Why the pipeline could not be built; the host does not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Plugin(#[from] LoadError),
    #[error("signing key: {0}")]
    Key(#[from] TokenError),
}

struct ActionStep {
    plugin: Arc<Plugin>,
    on_error: OnError,
}

/// The configured chain, with its plugins loaded and its key ready.
pub struct Pipeline {
    config: Config,
    keys: KeyRing,
    /// Names the plugins' builds: see [`Pipeline::chain_version`].
    chain_version: String,
    http: OutboundHttp,
    fetchers: HashMap<String, Arc<Plugin>>,
    actions: Vec<ActionStep>,
    /// `[[credentials_exchange]]`, run by [`Pipeline::exchange_credentials`].
    exchange_actions: Vec<ActionStep>,
    plugins: BTreeMap<String, Arc<Plugin>>,
}

impl Pipeline {
    /// Loads every configured plugin, and signs with a throwaway key of the
    /// configured algorithm, held in memory only: for `claimsmith check` and
    /// `run`, benchmarks and tests, whose tokens must not pass for a
    /// deployment's (those come from the key ring, [`Pipeline::assemble`]).
    /// Writes nothing. Compiling is CPU work: call it before serving, or
    /// from a blocking task.
    pub fn new(config: Config, http: OutboundHttp) -> Result<Self, StartError> {
        let key = SigningKey::generate(config.tokens.algorithm)?;
        let engine = Engine::new(&config.engine, http.clone())?;
        Self::assemble(config, &engine, KeyRing::single(key), http)
    }

    /// Builds a pipeline on an engine shared with others (the golden runner
    /// runs many configs on one engine, the service one per chain version)
    /// and keys the caller chose.
    pub fn assemble(
        config: Config,
        engine: &Engine,
        keys: KeyRing,
        http: OutboundHttp,
    ) -> Result<Self, StartError> {
        let mut plugins = BTreeMap::new();
        for spec in config.plugins.values() {
            plugins.insert(spec.name.clone(), Arc::new(engine.load(spec.clone())?));
        }
        let chain_version = chain_version(&plugins);
        // Config checked that every reference names a plugin of the right world.
        let fetchers = config
            .connections
            .iter()
            .filter_map(|c| {
                Some((
                    c.name.clone(),
                    plugins.get(c.profile_fetcher.as_ref()?)?.clone(),
                ))
            })
            .collect();
        let actions = action_steps(&config.actions, &plugins);
        let exchange_actions = action_steps(&config.credentials_exchange, &plugins);
        Ok(Pipeline {
            config,
            keys,
            chain_version,
            http,
            fetchers,
            actions,
            exchange_actions,
            plugins,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Instances of the plugins' pool in use now.
    pub fn instance_slots_in_use(&self) -> u32 {
        self.plugins
            .values()
            .next()
            .map_or(0, |plugin| plugin.instance_slots_in_use())
    }

    /// Every plugin of the config, loaded, by name.
    pub fn plugins(&self) -> &BTreeMap<String, Arc<Plugin>> {
        &self.plugins
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The plugins this pipeline runs, by their builds: the first 16 hex
    /// digits of the SHA-256 of every plugin's name and SHA-256. Two hosts
    /// with the same files have the same version; the audit row records it.
    pub fn chain_version(&self) -> &str {
        &self.chain_version
    }

    /// Runs one login through the chain.
    pub async fn run(&self, login: &Login, options: &RunOptions) -> LoginReport {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "login",
            connection = %login.connection,
            client = %login.client_id,
            refresh = login.refresh,
        );
        let mut progress = Progress::default();
        let outcome = self
            .run_steps(login, options, None, &mut progress)
            .instrument(span)
            .await;
        LoginReport {
            steps: progress.steps,
            user_id: progress.user_id,
            outcome,
        }
    }

    async fn run_steps(
        &self,
        login: &Login,
        options: &RunOptions,
        resumed: Option<Resumed<'_>>,
        progress: &mut Progress,
    ) -> Result<LoginEnd, LoginFailure> {
        let steps = &mut progress.steps;
        let connection = self
            .config
            .connection(&login.connection)
            .ok_or_else(|| LoginFailure::UnknownConnection(login.connection.clone()))?;
        let client = self
            .config
            .client(&login.client_id)
            .ok_or_else(|| LoginFailure::UnknownClient(login.client_id.clone()))?;
        let now = options.now.unwrap_or_else(|| SystemClock.now());
        let mut call = CallOptions {
            interceptor: options.interceptor.clone(),
            pinned_clock: options.now,
            log_sink: options.log_sink.clone(),
            redirect: None,
        };

        // A verified id token names the user before the fetch, so a fetch
        // that fails is still in that user's trail.
        if let Some(Value::String(sub)) = login.upstream.id_token_claims.get("sub") {
            progress.user_id = Some(user_id(&connection.name, sub));
        }
        let profile = match &login.profile {
            Some(profile) => profile.clone(),
            None => self.fetch_profile(connection, login, &call, steps).await?,
        };
        let subject = upstream_subject(login, &profile)?;
        let user_id = user_id(&connection.name, &subject);
        progress.user_id = Some(user_id.clone());
        let upstream_roles = upstream_roles(connection, &profile)?;
        let audience = login.audience.clone().or_else(|| client.audience.clone());
        let api = audience
            .as_deref()
            .and_then(|audience| self.config.api(audience));
        let stored = match &options.users {
            Some(users) => {
                let lookup = UserLookup {
                    user_id: &user_id,
                    upstream_roles: upstream_roles.as_deref(),
                    permissions_for: self.config.permissions_for(audience.as_deref()),
                };
                Cow::Owned(users.load(lookup).await.map_err(|error| {
                    tracing::error!(%error, user = %user_id, "cannot read the user");
                    LoginFailure::UserUnavailable
                })?)
            }
            None => with_upstream_roles(&login.user, upstream_roles.as_deref()),
        };
        let stored = stored.as_ref();
        let steps = &mut progress.steps;
        let effects = match &resumed {
            Some(resumed) => resumed.suspended.effects.clone(),
            None => ActionEffects {
                scopes: granted_scopes(&login.scopes, api, &stored.permissions),
                user_metadata: stored.user_metadata.clone(),
                app_metadata: stored.app_metadata.clone(),
                ..ActionEffects::default()
            },
        };
        let mut event = action_event(
            login, stored, client, connection, &user_id, &profile, &audience, now,
        );
        if let Some(resumed) = &resumed {
            resumed.continued.show_in(&mut event);
        }
        call.redirect = self.redirect_context(login, options, &resumed, &user_id, now);
        if let Some(signing_in) = &options.signing_in {
            let user = UserRecord {
                user_id: user_id.clone(),
                profile: profile.clone(),
                user_metadata: stored.user_metadata.clone(),
                app_metadata: stored.app_metadata.clone(),
                logins_count: event.user.logins_count,
                last_login: rfc3339(now),
            };
            if let Err(error) = signing_in.show(&user, stored.created_at.as_deref()).await {
                tracing::warn!(%error, user = %user_id, "cannot show the user signing in to the Management API");
            }
        }
        let start = resumed.as_ref().map(|resumed| resumed.suspended.action);
        let effects = match self
            .run_actions(&mut event, effects, start, &call, options, steps)
            .await?
        {
            ChainEnd::Finished(effects) => effects,
            ChainEnd::Redirected { effects, action } => {
                let state = options.redirect_state.clone().unwrap_or_default();
                let redirected = Redirected::of(self, login, profile, effects, action, now, state);
                return Ok(LoginEnd::Redirected(Box::new(redirected)));
            }
        };

        for (token, claims) in [
            ("access token", &effects.access_token_claims),
            ("id token", &effects.id_token_claims),
        ] {
            validate_custom_claims(claims)
                .map_err(|error| LoginFailure::InvalidClaims { token, error })?;
        }

        let auth_time = login.auth_time.unwrap_or(now);
        let profile_claims = standard_profile_claims(&profile, &effects.scopes);
        let authentication = UpstreamAuthentication::of_claims(&login.upstream.id_token_claims);
        let minted = self.mint_step(
            &MintRequest {
                issuer: &self.config.issuer,
                subject: &user_id,
                client_id: &client.client_id,
                audience: audience.as_deref(),
                scopes: &effects.scopes,
                nonce: login.nonce.as_deref(),
                auth_time,
                now,
                access_token_ttl: api
                    .and_then(|api| api.token_ttl_secs)
                    .unwrap_or(self.config.tokens.access_token_ttl_secs),
                permissions: api
                    .filter(|api| api.add_permissions)
                    .map(|_| stored.permissions.as_slice()),
                id_token_ttl: self.config.tokens.id_token_ttl_secs,
                profile_claims: &profile_claims,
                access_token_claims: &effects.access_token_claims,
                id_token_claims: &effects.id_token_claims,
                authentication: &authentication,
            },
            steps,
        );
        Ok(LoginEnd::Minted(Box::new(MintedLogin {
            tokens: minted?,
            upstream_subject: subject,
            auth_time,
            authentication,
            user: UserRecord {
                user_id,
                profile,
                user_metadata: effects.user_metadata,
                app_metadata: effects.app_metadata,
                logins_count: event.user.logins_count,
                last_login: match (&stored.last_login, login.refresh) {
                    (Some(previous), true) => previous.clone(),
                    _ => rfc3339(now),
                },
            },
            scopes: effects.scopes,
            access_token_claims: effects.access_token_claims,
            id_token_claims: effects.id_token_claims,
            upstream_roles,
        })))
    }

    /// The minting step: the tokens, and the step's report.
    fn mint_step(
        &self,
        request: &MintRequest<'_>,
        steps: &mut Vec<StepReport>,
    ) -> Result<MintedTokens, TokenError> {
        let started = Instant::now();
        let minted = mint(&self.keys.signing_key_at(request.now), request);
        steps.push(StepReport {
            name: "mint".to_owned(),
            version: None,
            kind: StepKind::Mint,
            duration: started.elapsed(),
            fuel_consumed: None,
            limit_tripped: None,
            status: match &minted {
                Ok(_) => StepStatus::Succeeded,
                Err(e) => StepStatus::Failed {
                    error: e.to_string(),
                },
            },
        });
        minted
    }

    async fn fetch_profile(
        &self,
        connection: &ConnectionConfig,
        login: &Login,
        options: &CallOptions,
        steps: &mut Vec<StepReport>,
    ) -> Result<Map<String, Value>, LoginFailure> {
        let Some(fetcher) = self.fetchers.get(&connection.name) else {
            return self
                .default_profile(connection, login, options, steps)
                .await;
        };
        let context = FetchContext {
            connection: connection.name.clone(),
            access_token: login.upstream.access_token.clone(),
            id_token: login.upstream.id_token.clone(),
            id_token_claims: json_text(&login.upstream.id_token_claims),
            options: json_text(&connection.options),
        };
        let invocation = fetcher.fetch_profile(&context, options).await;
        let status = match &invocation.output {
            Ok(_) => StepStatus::Succeeded,
            Err(error) => StepStatus::Failed {
                error: error.to_string(),
            },
        };
        steps.push(plugin_step(fetcher, &invocation, status));
        Ok(invocation.output?)
    }

    /// Without a profile fetcher: the id token's claims (less the token's own
    /// bookkeeping) merged with the userinfo response, which wins where both
    /// say something.
    async fn default_profile(
        &self,
        connection: &ConnectionConfig,
        login: &Login,
        options: &CallOptions,
        steps: &mut Vec<StepReport>,
    ) -> Result<Map<String, Value>, LoginFailure> {
        let mut profile: Map<String, Value> = login
            .upstream
            .id_token_claims
            .iter()
            .filter(|(name, _)| *name == "sub" || !is_reserved_claim(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let Some(url) = connection.userinfo_url() else {
            return Ok(profile);
        };
        let started = Instant::now();
        let result = self
            .fetch_userinfo(url, &login.upstream.access_token, options)
            .await
            .and_then(|userinfo| {
                // OIDC Core §5.3.2: a userinfo about someone else is refused.
                match (
                    userinfo.get("sub"),
                    login.upstream.id_token_claims.get("sub"),
                ) {
                    (Some(theirs), Some(ours)) if theirs != ours => Err(LoginFailure::Userinfo(
                        "its `sub` differs from the id token's".to_owned(),
                    )),
                    _ => Ok(userinfo),
                }
            });
        steps.push(StepReport {
            name: "userinfo".to_owned(),
            version: None,
            kind: StepKind::Userinfo,
            duration: started.elapsed(),
            fuel_consumed: None,
            limit_tripped: None,
            status: match &result {
                Ok(_) => StepStatus::Succeeded,
                Err(e) => StepStatus::Failed {
                    error: e.to_string(),
                },
            },
        });
        profile.extend(result?);
        Ok(profile)
    }

    async fn fetch_userinfo(
        &self,
        url: &str,
        access_token: &str,
        options: &CallOptions,
    ) -> Result<Map<String, Value>, LoginFailure> {
        let failure = |why: String| LoginFailure::Userinfo(why);
        let url = reqwest::Url::parse(url).map_err(|e| failure(e.to_string()))?;
        let origin: Origin = url
            .origin()
            .ascii_serialization()
            .parse()
            .map_err(failure)?;
        let http = HttpCapability::new(
            Arc::from("userinfo"),
            Arc::new(HttpPolicy {
                allowed_origins: vec![origin],
                ..HttpPolicy::default()
            }),
            self.http.clone(),
            options.interceptor.clone(),
            None,
        );
        let response = http
            .send(OutboundRequest {
                method: reqwest::Method::GET,
                url,
                headers: vec![
                    ("authorization".to_owned(), format!("Bearer {access_token}")),
                    ("accept".to_owned(), "application/json".to_owned()),
                ],
                body: None,
            })
            .await
            .map_err(|e| failure(e.to_string()))?;
        if response.status != 200 {
            return Err(failure(format!("status {}", response.status)));
        }
        match serde_json::from_slice(&response.body) {
            Ok(Value::Object(userinfo)) => Ok(userinfo),
            Ok(_) => Err(failure("the response is not a JSON object".to_owned())),
            Err(e) => Err(failure(format!("the response is not JSON: {e}"))),
        }
    }

    /// Runs the chain from its start, or, resuming (`start`), the
    /// continue of the action that sent the user away and those after it.
    async fn run_actions(
        &self,
        event: &mut Event,
        mut effects: ActionEffects,
        start: Option<usize>,
        options: &CallOptions,
        run: &RunOptions,
        steps: &mut Vec<StepReport>,
    ) -> Result<ChainEnd, LoginFailure> {
        let tap = run.action_tap.as_deref();
        let first = start.unwrap_or(0);
        for (index, step) in self.actions.iter().enumerate().skip(first) {
            let chosen = (run.action_choice.as_deref())
                .and_then(|choice| choice.instead(step.plugin.name(), &event.user.user_id));
            let plugin = chosen.as_ref().unwrap_or(&step.plugin);
            // Each action sees the user and the claims as the ones before left them.
            event.user.user_metadata = json_text(&effects.user_metadata);
            event.user.app_metadata = json_text(&effects.app_metadata);
            event.access_token_claims = json_text(&effects.access_token_claims);
            event.id_token_claims = json_text(&effects.id_token_claims);
            event.scopes.clone_from(&effects.scopes);

            let invocation = match start {
                Some(resumed) if resumed == index => {
                    // Without `onContinuePostLogin` the chain simply goes on.
                    if !plugin.continues_post_login() {
                        continue;
                    }
                    plugin
                        .on_continue_post_login(event, effects.clone(), options)
                        .await
                }
                _ => {
                    let invocation = plugin
                        .on_execute_post_login(event, effects.clone(), options)
                        .await;
                    if let Some(tap) = tap.filter(|tap| tap.wants(plugin.name())) {
                        tap.ran(plugin.name(), event, &effects, &invocation.output);
                    }
                    invocation
                }
            };
            match step.outcome(plugin, invocation, steps) {
                ActionOutcome::Changed(changed) if changed.redirect.is_some() => {
                    tracing::info!(plugin = plugin.name(), "the user is sent to a page");
                    return Ok(ChainEnd::Redirected {
                        effects: changed,
                        action: index,
                    });
                }
                ActionOutcome::Changed(changed) => effects = changed,
                ActionOutcome::Skipped => {}
                ActionOutcome::Denied(ActionEffects { denial, .. }) => {
                    let reason = denial.unwrap_or_default();
                    tracing::info!(plugin = plugin.name(), reason, "login denied");
                    return Err(LoginFailure::Denied {
                        plugin: plugin.name().to_owned(),
                        reason,
                    });
                }
                ActionOutcome::Failed(error) => return Err(error.into()),
            }
        }
        Ok(ChainEnd::Finished(effects))
    }
}

/// Where the post-login chain stopped.
enum ChainEnd {
    /// Every action ran: these are their effects.
    Finished(ActionEffects),
    /// The action at `action` sent the user to a page (`effects.redirect`).
    Redirected {
        effects: ActionEffects,
        action: usize,
    },
}

/// The configured chain's steps, their plugins loaded.
fn action_steps(
    chain: &[claimsmith_config::ActionConfig],
    plugins: &BTreeMap<String, Arc<Plugin>>,
) -> Vec<ActionStep> {
    // Config checked that every reference names a plugin of the right world.
    chain
        .iter()
        .filter_map(|a| {
            Some(ActionStep {
                plugin: plugins.get(&a.plugin)?.clone(),
                on_error: a.on_error,
            })
        })
        .collect()
}

/// What one action's call means for its chain.
enum ActionOutcome {
    /// It succeeded: the chain goes on from these effects.
    Changed(ActionEffects),
    /// It failed and is configured to be skipped: its changes are dropped.
    Skipped,
    /// It denied (these effects hold the denial): the chain stops.
    Denied(ActionEffects),
    Failed(PluginError),
}

impl ActionStep {
    /// Reports the call of `plugin` (this step's, or the build a canary
    /// chose) in `steps` and says what it means for the chain.
    fn outcome(
        &self,
        plugin: &Plugin,
        invocation: Invocation<ActionEffects>,
        steps: &mut Vec<StepReport>,
    ) -> ActionOutcome {
        let skip = self.on_error == OnError::Continue;
        let status = match &invocation.output {
            Ok(changed) => match &changed.denial {
                Some(reason) => StepStatus::Denied {
                    reason: reason.clone(),
                },
                None => StepStatus::Succeeded,
            },
            Err(error) if skip && error.is_plugin_fault() => StepStatus::Skipped {
                error: error.to_string(),
            },
            Err(error) => StepStatus::Failed {
                error: error.to_string(),
            },
        };
        steps.push(plugin_step(plugin, &invocation, status));
        match invocation.output {
            Ok(changed) if changed.denial.is_some() => ActionOutcome::Denied(changed),
            Ok(changed) => ActionOutcome::Changed(changed),
            Err(error) if skip && error.is_plugin_fault() => {
                tracing::warn!(%error, "action failed; skipped as configured (on_error = \"continue\")");
                ActionOutcome::Skipped
            }
            Err(error) => ActionOutcome::Failed(error),
        }
    }
}

/// A JSON object as the text the WIT event carries, serialised in place
/// rather than cloned into a `Value` first.
fn json_text(object: &Map<String, Value>) -> String {
    serde_json::to_string(object).unwrap_or_else(|_| "{}".to_owned())
}

fn plugin_step<T>(plugin: &Plugin, invocation: &Invocation<T>, status: StepStatus) -> StepReport {
    StepReport {
        name: plugin.name().to_owned(),
        version: plugin.version(),
        kind: match plugin.world() {
            World::ProfileFetcher => StepKind::ProfileFetcher,
            World::PostLoginAction => StepKind::PostLoginAction,
            World::CredentialsExchange => StepKind::CredentialsExchange,
        },
        duration: invocation.duration,
        fuel_consumed: Some(invocation.fuel_consumed),
        status,
        limit_tripped: match &invocation.output {
            Err(PluginError::LimitExceeded { limit, .. }) => Some(match limit {
                Limit::Fuel(_) => "fuel",
                Limit::Memory(_) => "memory",
                Limit::WallClock(_) => "wall_clock",
            }),
            Err(PluginError::Capacity { .. }) => Some("instance_pool"),
            _ => None,
        },
    }
}

/// The OpenID Connect standard claims (Core §5.4) the granted scopes release
/// from the profile into the id token.
pub fn standard_profile_claims(
    profile: &Map<String, Value>,
    scopes: &[String],
) -> Map<String, Value> {
    const BY_SCOPE: &[(&str, &[&str])] = &[
        (
            "profile",
            &[
                "name",
                "family_name",
                "given_name",
                "middle_name",
                "nickname",
                "preferred_username",
                "profile",
                "picture",
                "website",
                "gender",
                "birthdate",
                "zoneinfo",
                "locale",
                "updated_at",
            ],
        ),
        ("email", &["email", "email_verified"]),
        ("address", &["address"]),
        ("phone", &["phone_number", "phone_number_verified"]),
    ];
    let mut claims = Map::new();
    for (scope, names) in BY_SCOPE {
        if scopes.iter().any(|s| s == scope) {
            for name in *names {
                if let Some(value) = profile.get(*name) {
                    claims.insert((*name).to_owned(), value.clone());
                }
            }
        }
    }
    claims
}

/// The event the actions see: the user as stored and this login's profile,
/// the client, the connection and the request. The metadata and claims are
/// filled in before each action from the effects so far.
#[allow(clippy::too_many_arguments)] // each is one part of the event
fn action_event(
    login: &Login,
    stored: &StoredUser,
    client: &ClientConfig,
    connection: &ConnectionConfig,
    user_id: &str,
    profile: &Map<String, Value>,
    audience: &Option<String>,
    now: u64,
) -> Event {
    Event {
        user: EventUser {
            user_id: user_id.to_owned(),
            profile: json_text(profile),
            user_metadata: String::new(),
            app_metadata: String::new(),
            logins_count: if login.refresh {
                stored.logins_count
            } else {
                stored.logins_count.saturating_add(1)
            },
            last_login: stored.last_login.clone(),
            created_at: stored.created_at.clone().unwrap_or_else(|| rfc3339(now)),
        },
        client: EventClient {
            client_id: client.client_id.clone(),
            name: client.name.clone(),
            metadata: json_text(&client.metadata),
        },
        connection: EventConnection {
            name: connection.name.clone(),
            strategy: strategy(connection).to_owned(),
        },
        request: EventRequest {
            ip: login.request.ip.clone(),
            user_agent: login.request.user_agent.clone(),
            hostname: login.request.hostname.clone(),
            language: login.request.language.clone(),
            query: json_text(&login.transaction.query),
        },
        scopes: Vec::new(),
        audience: audience.clone(),
        access_token_claims: String::new(),
        id_token_claims: String::new(),
        transaction: transaction_json(login).to_string(),
        authentication: authentication_json(login, now).to_string(),
        authorization: EventAuthorization {
            roles: stored.roles.clone(),
        },
    }
}

/// The role names the connection's `roles_from` claim holds in `profile`
/// (a list of strings, or one string; none when absent), sorted and
/// without repeats. Strings longer than a role name may be are left out:
/// an upstream's groups are often more than its roles.
fn upstream_roles(
    connection: &ConnectionConfig,
    profile: &Map<String, Value>,
) -> Result<Option<Vec<String>>, LoginFailure> {
    let Some(claim) = &connection.roles_from else {
        return Ok(None);
    };
    let refused = |problem: String| LoginFailure::UpstreamRoles {
        claim: claim.clone(),
        problem,
    };
    let strings: Vec<&str> = match profile.get(claim) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(name)) => vec![name.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| refused(format!("holds {item}, not a string")))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(refused(format!("is {other}, not a list of strings"))),
    };
    let mut names: Vec<String> = strings
        .into_iter()
        .filter(|name| !name.is_empty() && name.chars().count() <= MAX_ROLE_NAME_CHARS)
        .map(str::to_owned)
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.len() > MAX_UPSTREAM_ROLES {
        return Err(refused(format!(
            "names {} roles, more than the {MAX_UPSTREAM_ROLES} a sign-in may",
            names.len()
        )));
    }
    Ok(Some(names))
}

/// The scopes a login starts its chain with: those the app asked for, but
/// of an API that adds permissions (Auth0's RBAC), only the scopes it
/// defines that the user holds as permissions.
fn granted_scopes(
    asked: &[String],
    api: Option<&ApiConfig>,
    permissions: &[String],
) -> Vec<String> {
    match api {
        Some(api) if api.add_permissions => asked
            .iter()
            .filter(|scope| !api.scopes.contains(scope) || permissions.contains(scope))
            .cloned()
            .collect(),
        _ => asked.to_vec(),
    }
}

/// `user` with the roles `upstream_roles` names, for a run without a store
/// (golden cases, `claimsmith run`): every name counts as a role.
fn with_upstream_roles<'a>(
    user: &'a StoredUser,
    upstream_roles: Option<&[String]>,
) -> Cow<'a, StoredUser> {
    let Some(names) = upstream_roles else {
        return Cow::Borrowed(user);
    };
    let mut user = user.clone();
    user.roles.extend(names.iter().cloned());
    user.roles.sort_unstable();
    user.roles.dedup();
    Cow::Owned(user)
}

/// Auth0's `event.connection.strategy` (and the identity's `provider`).
fn strategy(connection: &ConnectionConfig) -> &'static str {
    match connection
        .upstream
        .as_ref()
        .map(|upstream| &upstream.protocol)
    {
        Some(UpstreamProtocol::OAuth2 { .. }) => "oauth2",
        _ => "oidc",
    }
}

/// The upstream's id for the user: the verified id token's `sub`; without
/// one (a plain OAuth 2.0 upstream), what the profile fetcher names, as
/// Auth0 asks of `fetchUserProfile`: `user_id`, else `sub`, else `id` (a
/// number, as GitHub's, counts).
fn upstream_subject(login: &Login, profile: &Map<String, Value>) -> Result<String, LoginFailure> {
    if let Some(sub) = login.upstream.id_token_claims.get("sub") {
        return sub
            .as_str()
            .map(str::to_owned)
            .ok_or(LoginFailure::MissingSubject);
    }
    ["user_id", "sub", "id"]
        .iter()
        .find_map(|name| match profile.get(*name) {
            Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
            Some(Value::Number(id)) => Some(id.to_string()),
            _ => None,
        })
        .ok_or(LoginFailure::MissingSubject)
}

/// Auth0's `event.transaction` for `login`.
fn transaction_json(login: &Login) -> Value {
    let transaction = &login.transaction;
    fn list(value: &Option<String>) -> Vec<&str> {
        value
            .as_deref()
            .map(|v| v.split_ascii_whitespace().collect())
            .unwrap_or_default()
    }
    serde_json::json!({
        "protocol": if login.refresh { "oauth2-refresh-token" } else { "oidc-basic-profile" },
        "requested_scopes": login.scopes,
        "redirect_uri": transaction.redirect_uri,
        "response_type": list(&transaction.response_type),
        "ui_locales": list(&transaction.ui_locales),
        "acr_values": list(&transaction.acr_values),
        "login_hint": transaction.login_hint,
    })
}

/// Auth0's `event.authentication`: a method per value of the upstream id
/// token's `amr` (RFC 8176), at its `auth_time`; and, Claimsmith's own, the
/// upstream's `acr` when it sent one.
fn authentication_json(login: &Login, now: u64) -> Value {
    let timestamp = rfc3339(login.auth_time.unwrap_or(now));
    let UpstreamAuthentication { acr, amr } =
        UpstreamAuthentication::of_claims(&login.upstream.id_token_claims);
    let methods: Vec<Value> = amr
        .iter()
        .map(|name| serde_json::json!({ "name": name, "timestamp": timestamp }))
        .collect();
    let mut authentication = serde_json::json!({ "methods": methods });
    if let Some(acr) = acr {
        authentication["acr"] = acr.into();
    }
    authentication
}

/// See [`Pipeline::chain_version`].
fn chain_version(plugins: &BTreeMap<String, Arc<Plugin>>) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for (name, plugin) in plugins {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(plugin.sha256().as_bytes());
        hasher.update([0]);
    }
    let mut version = hex::encode(hasher.finalize());
    version.truncate(16);
    version
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a connection whose `roles_from` is `roles_from` finds in `profile`.
    fn roles_mapped(
        roles_from: Option<&str>,
        profile: Value,
    ) -> Result<Option<Vec<String>>, LoginFailure> {
        let connection = ConnectionConfig {
            name: "okta".to_owned(),
            profile_fetcher: None,
            options: Map::new(),
            upstream: None,
            roles_from: roles_from.map(str::to_owned),
        };
        let Value::Object(profile) = profile else {
            panic!("a profile is an object")
        };
        upstream_roles(&connection, &profile)
    }

    fn roles_of(profile: Value) -> Result<Option<Vec<String>>, LoginFailure> {
        roles_mapped(Some("groups"), profile)
    }

    #[test]
    fn roles_from_reads_a_list_or_a_string_sorted_once_each() {
        let names = |v: Value| roles_of(v).unwrap().unwrap();
        let groups = serde_json::json!({"groups": ["staff", "Everyone", "staff", ""]});
        assert_eq!(names(groups), ["Everyone", "staff"]);
        assert_eq!(names(serde_json::json!({"groups": "staff"})), ["staff"]);
        assert!(names(serde_json::json!({"groups": null})).is_empty());
        assert!(names(serde_json::json!({})).is_empty());
        // A string no role name can be is not one.
        let long = "x".repeat(MAX_ROLE_NAME_CHARS + 1);
        assert_eq!(names(serde_json::json!({"groups": [long, "ok"]})), ["ok"]);
    }

    #[test]
    fn roles_from_refuses_what_is_not_strings_and_too_many_names() {
        for profile in [
            serde_json::json!({"groups": [1]}),
            serde_json::json!({"groups": {"a": 1}}),
        ] {
            let failure = roles_of(profile.clone()).unwrap_err();
            assert!(
                matches!(failure, LoginFailure::UpstreamRoles { .. }),
                "{profile}"
            );
        }
        let many: Vec<String> = (0..=MAX_UPSTREAM_ROLES).map(|n| format!("g{n}")).collect();
        let failure = roles_of(serde_json::json!({ "groups": many })).unwrap_err();
        assert!(
            failure.to_string().contains("more than the 500"),
            "{failure}"
        );
        let most: Vec<String> = (0..MAX_UPSTREAM_ROLES).map(|n| format!("g{n}")).collect();
        assert_eq!(
            roles_of(serde_json::json!({ "groups": most }))
                .unwrap()
                .unwrap()
                .len(),
            500
        );
    }

    #[test]
    fn a_connection_without_roles_from_maps_no_roles() {
        let profile = serde_json::json!({"groups": ["staff"]});
        assert_eq!(roles_mapped(None, profile).unwrap(), None);
    }

    fn login_with_id_token(claims: Value) -> Login {
        serde_json::from_value(serde_json::json!({
            "connection": "c", "client_id": "a",
            "upstream": { "access_token": "t", "id_token_claims": claims },
        }))
        .unwrap()
    }

    #[test]
    fn the_verified_id_token_names_the_user_before_any_profile() {
        let profile = serde_json::json!({ "user_id": "chosen-by-the-plugin" });
        let login = login_with_id_token(serde_json::json!({ "sub": "verified" }));
        let subject = upstream_subject(&login, profile.as_object().unwrap()).unwrap();
        assert_eq!(subject, "verified");
    }

    #[test]
    fn without_an_id_token_the_profile_names_the_user_as_auth0_asks() {
        let login = login_with_id_token(serde_json::json!({}));
        let named = |profile: Value| upstream_subject(&login, profile.as_object().unwrap());
        let all = serde_json::json!({ "user_id": "u", "sub": "s", "id": 7 });
        assert_eq!(named(all).unwrap(), "u");
        assert_eq!(
            named(serde_json::json!({ "sub": "s", "id": 7 })).unwrap(),
            "s"
        );
        assert_eq!(named(serde_json::json!({ "id": 1815 })).unwrap(), "1815");
        let nobody = serde_json::json!({ "user_id": "", "id": null, "name": "Ada" });
        assert!(matches!(named(nobody), Err(LoginFailure::MissingSubject)));
    }

    #[test]
    fn scopes_release_only_their_standard_claims() {
        let profile: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "name": "Ada", "email": "ada@example.com", "geo_ip_country": "NZ", "user_type": "x"
        }))
        .unwrap();
        let claims = standard_profile_claims(&profile, &["openid".into(), "email".into()]);
        assert_eq!(
            Value::Object(claims),
            serde_json::json!({"email": "ada@example.com"})
        );
        let claims = standard_profile_claims(&profile, &["profile".into()]);
        assert_eq!(Value::Object(claims), serde_json::json!({"name": "Ada"}));
    }
}
