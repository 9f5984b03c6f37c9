//! The configuration file (TOML): what the host serves, which plugins it runs
//! and what each plugin is granted.
//!
//! Owns reading and checking the file. Every mistake is reported with the file
//! and line it is on, before anything starts; nothing downstream re-checks
//! what this crate accepted. It loads no plugin and opens no socket.
//!
//! It is plain data below the engine and the capabilities: what it makes of
//! a plugin's entry ([`plugin::PluginSpec`], its [`plugin::Limits`] and
//! [`plugin::HttpPolicy`]) is read by them, and it links no runtime of
//! theirs.
//!
//! ```toml
//! issuer = "https://login.example.com"
//! data_dir = "data"                      # keys and compile cache; relative to this file
//!
//! [tokens]
//! algorithm = "ES256"                    # or RS256, EdDSA
//!
//! [plugins.okta-userinfo]
//! path = "plugins/okta_userinfo.wasm"
//! world = "profile-fetcher"
//! allowed_origins = ["https://example.okta.com"]
//!
//! [[connections]]
//! name = "okta"
//! profile_fetcher = "okta-userinfo"
//! options = { userinfo_url = "https://example.okta.com/oauth2/default/v1/userinfo" }
//! issuer = "https://example.okta.com/oauth2/default"   # an OpenID Connect upstream
//! client_id = "0oa..."
//! client_secret = { env = "OKTA_CLIENT_SECRET" }
//! roles_from = "groups"                  # the profile's groups name the user's roles
//!
//! [[connections]]                         # a plain OAuth 2.0 upstream: endpoints, no issuer;
//! name = "github"                         # its profile fetcher names the user
//! profile_fetcher = "github-profile"
//! authorization_endpoint = "https://github.com/login/oauth/authorize"
//! token_endpoint = "https://github.com/login/oauth/access_token"
//! scopes = ["read:user"]
//! client_id = "Iv1..."
//! client_secret = { env = "GITHUB_CLIENT_SECRET" }
//!
//! [[clients]]
//! client_id = "demo-app"
//! name = "Demo App"
//!
//! [[actions]]
//! plugin = "geo-claims"
//! ```

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use claimsmith_core::{SecretValue, World};
use claimsmith_tokens::SigningAlgorithm;

pub mod apis;
pub mod plugin;

pub use apis::ApiConfig;
pub use plugin::{EngineSettings, HttpPolicy, Limits, Origin, PluginSource, PluginSpec};

/// Whose secrets a caller replaces, so the config's are not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsReplaced {
    None,
    All,
    Of(String),
}

/// A configuration mistake, located in its file.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from; relative paths in it are relative to its folder.
    pub file: PathBuf,
    pub issuer: String,
    pub data_dir: PathBuf,
    pub tokens: TokenSettings,
    pub engine: EngineSettings,
    pub server: ServerSettings,
    /// The admin listener, when configured.
    pub admin: Option<AdminSettings>,
    pub storage: StorageSettings,
    pub keys: KeySettings,
    pub telemetry: TelemetrySettings,
    /// The admin console, when configured.
    pub console: Option<ConsoleSettings>,
    pub plugins: BTreeMap<String, PluginSpec>,
    pub connections: Vec<ConnectionConfig>,
    pub clients: Vec<ClientConfig>,
    pub actions: Vec<ActionConfig>,
    /// `[[credentials_exchange]]`: the chain run before a machine client's
    /// token for an `[[apis]]` audience is minted.
    pub credentials_exchange: Vec<ActionConfig>,
    /// `[[apis]]`: the APIs access tokens are minted for.
    pub apis: Vec<ApiConfig>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    #[serde(default)]
    pub algorithm: SigningAlgorithm,
    #[serde(default = "default_token_ttl")]
    pub access_token_ttl_secs: u64,
    #[serde(default = "default_token_ttl")]
    pub id_token_ttl_secs: u64,
}

fn default_token_ttl() -> u64 {
    3600
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            algorithm: SigningAlgorithm::default(),
            access_token_ttl_secs: default_token_ttl(),
            id_token_ttl_secs: default_token_ttl(),
        }
    }
}

/// An upstream identity provider.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub name: String,
    /// The plugin that shapes the profile; without one the profile is the id
    /// token's claims merged with the userinfo response.
    pub profile_fetcher: Option<String>,
    /// Given to the profile fetcher as `options` (the userinfo URL, say).
    pub options: Map<String, Value>,
    /// The upstream's OIDC client registration; `serve` needs it, `run` not.
    pub upstream: Option<UpstreamRegistration>,
    /// The profile claim (`groups`, say) whose strings name the user's
    /// roles at each sign-in.
    pub roles_from: Option<String>,
}

/// How Claimsmith signs users in at an upstream provider, as its client.
#[derive(Debug, Clone)]
pub struct UpstreamRegistration {
    pub protocol: UpstreamProtocol,
    pub client_id: String,
    pub client_secret: SecretValue,
    pub scopes: Vec<String>,
}

/// What an upstream speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// OpenID Connect: discovered at
    /// `<issuer>/.well-known/openid-configuration`, its id token verified,
    /// the user named by the id token's `sub`.
    OpenIdConnect { issuer: String },
    /// Plain OAuth 2.0 (what Auth0's custom social connections speak): the
    /// endpoints named, no discovery and no verified id token; the profile
    /// fetcher names the user (`user_id`, else `sub`, else `id`).
    OAuth2 {
        authorization_endpoint: String,
        token_endpoint: String,
    },
}

impl ConnectionConfig {
    /// The `userinfo_url` option, when the connection has one.
    pub fn userinfo_url(&self) -> Option<&str> {
        self.options.get("userinfo_url").and_then(Value::as_str)
    }
}

/// An application allowed to receive tokens.
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    pub client_id: String,
    pub name: String,
    /// Confidential clients authenticate with it; public ones (none) must
    /// use PKCE.
    pub client_secret: Option<SecretValue>,
    /// Redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// The access token's audience when the login does not ask for one.
    pub audience: Option<String>,
    /// Audiences the app may ask for, besides its default.
    pub allowed_audiences: Vec<String>,
    /// Scopes the app may ask for.
    pub allowed_scopes: Vec<String>,
    /// Given to actions as `event.client.metadata`.
    pub metadata: Map<String, Value>,
    /// Origins whose scripts may call the token, revocation and userinfo
    /// endpoints, discovery and the JWKS (CORS): a single-page app's own.
    pub web_origins: Vec<Origin>,
    /// How it gets tokens: users' sign-ins (`authorization_code`, with
    /// `refresh_token`), or as itself for the Management API
    /// (`client_credentials`), never both.
    pub grant_types: Vec<GrantType>,
}

impl ClientConfig {
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether this machine client may get tokens for `audience`: the
    /// Management API's (`management`) when its `allowed_audiences` are
    /// empty or list it, or an API they list.
    pub fn machine_may_ask_for(&self, audience: &str, management: &str) -> bool {
        self.allows(GrantType::ClientCredentials)
            && ((audience == management && self.allowed_audiences.is_empty())
                || self.allowed_audiences.iter().any(|a| a == audience))
    }
}

/// An OAuth grant a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    /// As `grant_type` names it (RFC 6749).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

/// The scopes an app may ask for when its config does not say.
pub const DEFAULT_ALLOWED_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// The Management API's scopes: what a `client_credentials` client may be
/// allowed, and all it is allowed when its config does not say.
pub use claimsmith_core::MANAGEMENT_SCOPES;

/// Where `serve` listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    #[serde(default = "default_listen")]
    pub listen: std::net::SocketAddr,
    /// How long an authorization code stays valid (single use).
    #[serde(default = "default_code_ttl")]
    pub code_ttl_secs: u64,
    /// How long a refresh token family lives from sign-in, however often it
    /// rotates; then the user signs in at the upstream again.
    #[serde(default = "default_refresh_token_lifetime")]
    pub refresh_token_lifetime_secs: u64,
    /// How long after its use a refresh token may be presented again by a
    /// client that lost the answer, without that counting as a theft.
    #[serde(default = "default_refresh_token_reuse_grace")]
    pub refresh_token_reuse_grace_secs: u64,
    /// The most connections served at once; more wait to be accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: u64,
    /// How long a client may take to send a request's headers (slow-loris
    /// defence); an idle kept-alive connection is closed after this too.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_secs: u64,
    /// How long a client may take to send a request's body, from the end
    /// of its headers (a body trickled a byte at a time is cut off).
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout_secs: u64,
    /// Reverse proxies (addresses or CIDR networks) whose
    /// `forwarded_header` gives the client's address.
    #[serde(default)]
    pub trusted_proxies: Vec<claimsmith_core::ProxyRange>,
    /// The one header the trusted proxies write the client's address in;
    /// the other is ignored, since a client may send it.
    #[serde(default)]
    pub forwarded_header: claimsmith_core::ForwardedHeader,
    /// How long the login trail (`logins`) keeps a row.
    #[serde(default = "default_audit_retention_days")]
    pub audit_retention_days: u64,
    /// How often the store is asked which version of each `source =
    /// "store"` plugin is deployed: the longest a host serves a version
    /// after another was deployed.
    #[serde(default = "default_plugin_poll")]
    pub plugin_poll_secs: u64,
    /// How many shadow runs may wait for the shadow worker; a login's run
    /// beyond that is dropped (and counted), never waited for.
    #[serde(default = "default_shadow_queue")]
    pub shadow_queue: usize,
}

fn default_shadow_queue() -> usize {
    64
}

fn default_plugin_poll() -> u64 {
    10
}

fn default_audit_retention_days() -> u64 {
    90
}

fn default_max_connections() -> u64 {
    1024
}

fn default_header_read_timeout() -> u64 {
    10
}

fn default_body_read_timeout() -> u64 {
    10
}

fn default_code_ttl() -> u64 {
    60
}

fn default_refresh_token_lifetime() -> u64 {
    30 * 24 * 3600
}

fn default_refresh_token_reuse_grace() -> u64 {
    10
}

fn default_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: default_listen(),
            code_ttl_secs: default_code_ttl(),
            refresh_token_lifetime_secs: default_refresh_token_lifetime(),
            refresh_token_reuse_grace_secs: default_refresh_token_reuse_grace(),
            max_connections: default_max_connections(),
            header_read_timeout_secs: default_header_read_timeout(),
            body_read_timeout_secs: default_body_read_timeout(),
            trusted_proxies: Vec::new(),
            forwarded_header: claimsmith_core::ForwardedHeader::default(),
            audit_retention_days: default_audit_retention_days(),
            plugin_poll_secs: default_plugin_poll(),
            shadow_queue: default_shadow_queue(),
        }
    }
}

/// Where `serve` answers `/healthz`, `/readyz` and `/metrics`: an address of
/// its own, for the operators' network rather than the apps'.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    pub listen: std::net::SocketAddr,
}

/// Which database, and how it keeps what it is given.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    pub database: Database,
    pub synchronous: Synchronous,
}

/// The database of `[storage] database_url`.
#[derive(Debug, Clone)]
pub enum Database {
    /// One host: a file, `<data_dir>/claimsmith.db` by default.
    Sqlite(PathBuf),
    /// Several hosts share it. The URL may carry a password.
    Postgres(SecretValue),
}

impl Default for StorageSettings {
    /// A `claimsmith.db` in the working directory (for configs built in
    /// code, which the golden runner makes without a database).
    fn default() -> Self {
        StorageSettings {
            database: Database::Sqlite(PathBuf::from("claimsmith.db")),
            synchronous: Synchronous::default(),
        }
    }
}

/// The admin console at `/admin` (see `oidc::console`): who may sign in.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// A `[[clients]]` entry the console signs in through, with
    /// `<issuer>/admin/callback` among its redirect URIs.
    pub client_id: String,
    /// The id token claim an administrator has: equal to `value`, or a list
    /// holding it (a role from an action, say).
    pub required_claim: RequiredClaim,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequiredClaim {
    pub name: String,
    pub value: Value,
}

impl RequiredClaim {
    /// Whether `claims` carry it.
    pub fn is_met_by(&self, claims: &Map<String, Value>) -> bool {
        match claims.get(&self.name) {
            Some(Value::Array(values)) => values.contains(&self.value),
            Some(value) => *value == self.value,
            None => false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    client_id: String,
    required_claim: RequiredClaim,
}

/// Where the logs and traces go (see [`crate::telemetry`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    #[serde(default)]
    pub log_format: LogFormat,
    /// An OTLP/HTTP collector's base URL (`http://collector:4318`): spans
    /// go to `<it>/v1/traces` as JSON.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, for a log pipeline.
    Json,
}

impl TelemetrySettings {
    /// The `[telemetry]` table of `file`, read before logging exists; any
    /// mistake gives the defaults here and is reported by [`Config::load`].
    pub fn peek(file: &Path) -> Self {
        #[derive(Deserialize)]
        struct JustTelemetry {
            #[serde(default)]
            telemetry: TelemetrySettings,
        }
        std::fs::read_to_string(file)
            .ok()
            .and_then(|text| toml::from_str::<JustTelemetry>(&text).ok())
            .map(|just| just.telemetry)
            .unwrap_or_default()
    }
}

/// The signing keys all hosts share, and the key they are sealed under.
#[derive(Debug, Clone)]
pub struct KeySettings {
    /// The key-encryption key (see [`claimsmith_tokens::sealing`]). None: a file in
    /// `<data_dir>/keys/`, made on first start (one host only).
    pub encryption_key: Option<SecretValue>,
    /// How long a new key is published before it signs: the JWKS's cache
    /// lifetime, one reload of every host and 5 s of margin, by default.
    pub rotation_overlap_secs: u64,
    /// How often each host reads the keys again.
    pub reload_secs: u64,
    /// The JWKS's `Cache-Control: max-age`.
    pub jwks_max_age_secs: u64,
}

impl Default for KeySettings {
    fn default() -> Self {
        KeySettings {
            encryption_key: None,
            rotation_overlap_secs: 315,
            reload_secs: 10,
            jwks_max_age_secs: 300,
        }
    }
}

/// When SQLite waits for the disk (its `synchronous` pragma, in WAL mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// At checkpoints only: a process crash loses nothing, a power cut or
    /// an OS crash can lose the last transactions before the last
    /// checkpoint (never corrupts the file).
    #[default]
    Normal,
    /// At every commit: nothing committed is ever lost, at a disk flush
    /// per login.
    Full,
}

/// What an action (post-login or credentials-exchange) does when its plugin
/// fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The login fails.
    #[default]
    Fail,
    /// The action is skipped with a warning; the chain goes on.
    Continue,
}

/// One step of an action chain.
#[derive(Debug, Clone)]
pub struct ActionConfig {
    pub plugin: String,
    pub on_error: OnError,
}

// ---- the file as written -------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    issuer: Spanned<String>,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    tokens: TokenSettings,
    #[serde(default)]
    engine: RawEngine,
    #[serde(default)]
    server: ServerSettings,
    #[serde(default)]
    admin: Option<AdminSettings>,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    keys: RawKeys,
    #[serde(default)]
    telemetry: Option<Spanned<TelemetrySettings>>,
    #[serde(default)]
    console: Option<Spanned<RawConsole>>,
    #[serde(default)]
    plugins: BTreeMap<String, Spanned<RawPlugin>>,
    #[serde(default)]
    connections: Vec<Spanned<RawConnection>>,
    #[serde(default)]
    clients: Vec<Spanned<RawClient>>,
    #[serde(default)]
    actions: Vec<RawAction>,
    #[serde(default)]
    credentials_exchange: Vec<RawAction>,
    #[serde(default)]
    apis: Vec<Spanned<apis::RawApi>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    name: String,
    profile_fetcher: Option<String>,
    #[serde(default)]
    options: Map<String, Value>,
    issuer: Option<String>,
    /// With `token_endpoint` instead of `issuer`: a plain OAuth 2.0 upstream.
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    client_id: Option<RawText>,
    client_secret: Option<RawSecret>,
    /// OpenID Connect's `openid profile email` when absent; none for a
    /// plain OAuth 2.0 upstream, whose scopes are its own.
    scopes: Option<Vec<String>>,
    roles_from: Option<String>,
}

fn default_upstream_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(str::to_owned).to_vec()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    client_id: String,
    #[serde(default)]
    name: String,
    client_secret: Option<RawSecret>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    audience: Option<String>,
    #[serde(default)]
    allowed_audiences: Vec<String>,
    allowed_scopes: Option<Vec<String>>,
    #[serde(default)]
    metadata: Map<String, Value>,
    #[serde(default)]
    web_origins: Vec<Spanned<String>>,
    grant_types: Option<Vec<GrantType>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    plugin: Spanned<String>,
    #[serde(default)]
    on_error: OnError,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    max_concurrent_instances: Option<u32>,
    #[serde(default = "yes")]
    compile_cache: bool,
    /// Where compiled plugins are cached; `<data_dir>/compile-cache` by default.
    compile_cache_dir: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

impl Default for RawEngine {
    fn default() -> Self {
        RawEngine {
            max_concurrent_instances: None,
            compile_cache: yes(),
            compile_cache_dir: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugin {
    path: PathBuf,
    world: World,
    #[serde(default)]
    source: Option<Spanned<PluginSource>>,
    #[serde(default)]
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    allowed_origins: Vec<Spanned<String>>,
    #[serde(default)]
    redirect_origins: Vec<Spanned<String>>,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<RawSecret>>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    capture: Option<Spanned<bool>>,
}

/// A value written in the file, or read from the environment or a file like
/// a secret (an upstream client id, say).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawText {
    Plain(String),
    From(RawSecret),
}

/// Where a secret's value comes from. Values written in the file are for
/// local runs; deployments take them from the environment or a file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum RawSecret {
    Env(String),
    File(PathBuf),
    Value(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    database_url: Option<Spanned<RawText>>,
    #[serde(default)]
    synchronous: Synchronous,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    encryption_key: Option<Spanned<RawSecret>>,
    rotation_overlap_secs: Option<u64>,
    reload_secs: Option<u64>,
    jwks_max_age_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    fuel: Option<u64>,
    memory_mib: Option<u64>,
    timeout_ms: Option<u64>,
    http_timeout_ms: Option<u64>,
    max_response_bytes: Option<u64>,
}

impl Config {
    /// Reads and checks `file`.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        Config::load_replacing_secrets(file, &SecretsReplaced::None)
    }

    /// Loads `file` without reading the `env` or `file` secrets of the
    /// plugins whose secrets the caller replaces (a golden case with
    /// `secrets:`): those plugins get none, and CI needs no production
    /// secrets to load the config.
    pub fn load_replacing_secrets(
        file: &Path,
        replaced: &SecretsReplaced,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            message: format!("cannot read the config: {e}"),
        })?;
        Config::parse_replacing_secrets(file, &text, replaced)
    }

    /// Checks `text`, the contents of `file`, one section at a time.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::parse_replacing_secrets(file, text, &SecretsReplaced::None)
    }

    fn parse_replacing_secrets(
        file: &Path,
        text: &str,
        replaced: &SecretsReplaced,
    ) -> Result<Config, ConfigError> {
        let at = |(span, message): Located| {
            let (line, column) = span.map_or((0, 0), |span| line_and_column(text, span.start));
            ConfigError {
                file: file.to_owned(),
                line,
                column,
                message,
            }
        };
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| at((e.span(), e.message().to_owned())))?;
        let base = file.parent().unwrap_or(Path::new("."));

        let issuer = check_issuer(raw.issuer).map_err(at)?;
        let (plugins, max_memory_bytes) =
            plugins_section(base, raw.plugins, replaced).map_err(at)?;
        let chains = [
            (&raw.actions[..], World::PostLoginAction),
            (&raw.credentials_exchange[..], World::CredentialsExchange),
        ];
        check_references(&plugins, &raw.connections, &raw.clients, chains).map_err(at)?;
        let connections = connections_section(base, raw.connections).map_err(at)?;
        let apis = apis::apis_section(&claimsmith_core::management_audience(&issuer), raw.apis)
            .map_err(at)?;
        let clients = clients_section(base, &issuer, &apis, raw.clients).map_err(at)?;
        let warnings = ungranted_userinfo_warnings(&plugins, &connections)
            .into_iter()
            .chain(plain_http_warnings(&issuer, &clients));
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        check_server(&raw.server).map_err(at)?;
        let data_dir = base.join(raw.data_dir.unwrap_or_else(|| PathBuf::from("data")));
        let (storage, keys) =
            storage_and_keys(base, &data_dir, raw.storage, raw.keys).map_err(at)?;
        let telemetry = check_telemetry(raw.telemetry).map_err(at)?;
        let console = check_console(raw.console, &issuer, &clients).map_err(at)?;
        Ok(Config {
            file: file.to_owned(),
            issuer,
            engine: engine_section(base, raw.engine, max_memory_bytes, &data_dir),
            data_dir,
            tokens: raw.tokens,
            server: raw.server,
            admin: raw.admin,
            storage,
            keys,
            telemetry,
            console,
            plugins,
            connections,
            clients,
            actions: chain(raw.actions),
            credentials_exchange: chain(raw.credentials_exchange),
            apis,
        })
    }

    /// The `[[apis]]` entry of `identifier`.
    pub fn api(&self, identifier: &str) -> Option<&ApiConfig> {
        self.apis.iter().find(|api| api.identifier == identifier)
    }

    /// `audience`, when it is an API that puts users' permissions in its
    /// tokens.
    pub fn permissions_for<'a>(&self, audience: Option<&'a str>) -> Option<&'a str> {
        audience.filter(|audience| self.api(audience).is_some_and(|api| api.add_permissions))
    }

    pub fn connection(&self, name: &str) -> Option<&ConnectionConfig> {
        self.connections.iter().find(|c| c.name == name)
    }

    pub fn client(&self, client_id: &str) -> Option<&ClientConfig> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }
}

/// A mistake and where it is in the file, if it is anywhere in particular.
type Located = (Option<Range<usize>>, String);

/// The issuer, without a trailing slash: endpoints are `{issuer}/...`.
fn check_issuer(issuer: Spanned<String>) -> Result<String, Located> {
    let text = issuer.get_ref();
    if !text.starts_with("https://") && !text.starts_with("http://") {
        return Err((
            Some(issuer.span()),
            format!("issuer `{text}` must be an http(s) URL"),
        ));
    }
    Ok(issuer.into_inner().trim_end_matches('/').to_owned())
}

/// `[server]`: every time and count within its bounds.
fn check_server(server: &ServerSettings) -> Result<(), Located> {
    for (name, value, range) in [
        ("code_ttl_secs", server.code_ttl_secs, 1..=600),
        (
            "refresh_token_lifetime_secs",
            server.refresh_token_lifetime_secs,
            1..=366 * 24 * 3600,
        ),
        (
            "refresh_token_reuse_grace_secs",
            server.refresh_token_reuse_grace_secs,
            0..=60,
        ),
        ("max_connections", server.max_connections, 1..=65_536),
        (
            "header_read_timeout_secs",
            server.header_read_timeout_secs,
            1..=300,
        ),
        (
            "body_read_timeout_secs",
            server.body_read_timeout_secs,
            1..=300,
        ),
        (
            "audit_retention_days",
            server.audit_retention_days,
            1..=3650,
        ),
    ] {
        if !range.contains(&value) {
            return Err((
                None,
                format!(
                    "server.{name} must be between {} and {}",
                    range.start(),
                    range.end()
                ),
            ));
        }
    }
    Ok(())
}

/// `[plugins.*]`, and the largest memory cap among them (the pool's slot size).
fn plugins_section(
    base: &Path,
    raw: BTreeMap<String, Spanned<RawPlugin>>,
    replaced: &SecretsReplaced,
) -> Result<(BTreeMap<String, PluginSpec>, u64), Located> {
    let mut plugins = BTreeMap::new();
    let mut max_memory_bytes = EngineSettings::default().max_memory_bytes;
    for (name, raw_plugin) in raw {
        let span = raw_plugin.span();
        let resolve_secrets = match replaced {
            SecretsReplaced::None => true,
            SecretsReplaced::All => false,
            SecretsReplaced::Of(plugin) => *plugin != name,
        };
        let spec = plugin_spec(base, &name, raw_plugin.into_inner(), resolve_secrets)
            .map_err(|(span, message)| (Some(span), message))?;
        if spec.limits.memory_bytes == 0 || spec.limits.fuel == 0 || spec.limits.timeout.is_zero() {
            return Err((
                Some(span),
                format!("plugin `{name}`: limits must be above zero"),
            ));
        }
        max_memory_bytes = max_memory_bytes.max(spec.limits.memory_bytes);
        plugins.insert(name, spec);
    }
    Ok((plugins, max_memory_bytes))
}

/// Names defined once, and every plugin reference naming a plugin of the
/// right world.
fn check_references(
    plugins: &BTreeMap<String, PluginSpec>,
    connections: &[Spanned<RawConnection>],
    clients: &[Spanned<RawClient>],
    chains: [(&[RawAction], World); 2],
) -> Result<(), Located> {
    let expect_plugin = |name: &str, world: World, span: Range<usize>| match plugins.get(name) {
        None => Err((Some(span), format!("no plugin named `{name}` in [plugins]"))),
        Some(spec) if spec.world != world => Err((
            Some(span),
            format!(
                "plugin `{name}` is a {}, but is used here as a {world}",
                spec.world
            ),
        )),
        Some(_) => Ok(()),
    };
    let mut names = HashSet::new();
    for connection in connections {
        let raw = connection.get_ref();
        if !names.insert(raw.name.clone()) {
            return Err((
                Some(connection.span()),
                format!("connection `{}` is defined twice", raw.name),
            ));
        }
        if let Some(fetcher) = &raw.profile_fetcher {
            expect_plugin(fetcher, World::ProfileFetcher, connection.span())?;
        }
        if let Some(url) = raw.options.get("userinfo_url").and_then(Value::as_str)
            && reqwest::Url::parse(url).is_err()
        {
            return Err((
                Some(connection.span()),
                format!("userinfo_url `{url}` is not a URL"),
            ));
        }
    }
    let mut client_ids = HashSet::new();
    for client in clients {
        if !client_ids.insert(client.get_ref().client_id.clone()) {
            return Err((
                Some(client.span()),
                format!("client `{}` is defined twice", client.get_ref().client_id),
            ));
        }
    }
    for (actions, world) in chains {
        for action in actions {
            expect_plugin(action.plugin.get_ref(), world, action.plugin.span())?;
        }
    }
    Ok(())
}

/// An action chain as configured, in order.
fn chain(raw: Vec<RawAction>) -> Vec<ActionConfig> {
    raw.into_iter()
        .map(|action| ActionConfig {
            plugin: action.plugin.into_inner(),
            on_error: action.on_error,
        })
        .collect()
}

/// `[[connections]]`, their upstream registrations resolved.
fn connections_section(
    base: &Path,
    raw: Vec<Spanned<RawConnection>>,
) -> Result<Vec<ConnectionConfig>, Located> {
    let mut connections = Vec::new();
    for connection in raw {
        let span = connection.span();
        let mut connection = connection.into_inner();
        // User ids are `<connection>|<upstream sub>`: a `|` in the name would
        // let two connections' users collide.
        if connection.name.is_empty() || connection.name.contains('|') {
            return Err((
                Some(span),
                format!(
                    "connection name `{}` must be non-empty and must not contain `|`",
                    connection.name
                ),
            ));
        }
        let upstream = upstream_registration(base, &span, &mut connection)?;
        if matches!(
            upstream,
            Some(UpstreamRegistration {
                protocol: UpstreamProtocol::OAuth2 { .. },
                ..
            })
        ) && connection.profile_fetcher.is_none()
        {
            return Err((
                Some(span),
                format!(
                    "connection `{}` is a plain OAuth 2.0 upstream: it needs a profile_fetcher, \
                     which names the user (`user_id`, `sub` or `id`)",
                    connection.name
                ),
            ));
        }
        if connection.roles_from.as_deref() == Some("") {
            return Err((
                Some(span),
                format!(
                    "connection `{}`: roles_from names a profile claim (`groups`, say); it is empty",
                    connection.name
                ),
            ));
        }
        connections.push(ConnectionConfig {
            name: connection.name,
            profile_fetcher: connection.profile_fetcher,
            options: connection.options,
            upstream,
            roles_from: connection.roles_from,
        });
    }
    Ok(connections)
}

/// A connection's upstream registration: an OIDC `issuer` or a plain OAuth
/// 2.0 `authorization_endpoint` and `token_endpoint`, with the client's
/// credentials; None without any of them (`run` and `check` need none).
fn upstream_registration(
    base: &Path,
    span: &Range<usize>,
    connection: &mut RawConnection,
) -> Result<Option<UpstreamRegistration>, Located> {
    let name = connection.name.clone();
    let located = |why: String| (Some(span.clone()), format!("connection `{name}`: {why}"));
    let endpoints = (
        connection.authorization_endpoint.take(),
        connection.token_endpoint.take(),
    );
    let protocol = match (connection.issuer.take(), endpoints) {
        (None, (None, None)) => None,
        (Some(issuer), (None, None)) => Some(UpstreamProtocol::OpenIdConnect {
            issuer: checked_url("issuer", &issuer)
                .map_err(located)?
                .trim_end_matches('/')
                .to_owned(),
        }),
        (None, (Some(authorization), Some(token))) => Some(UpstreamProtocol::OAuth2 {
            authorization_endpoint: checked_url("authorization_endpoint", &authorization)
                .map_err(located)?,
            token_endpoint: checked_url("token_endpoint", &token).map_err(located)?,
        }),
        (Some(_), _) => {
            return Err(located(
                "give an OpenID Connect issuer or a plain OAuth 2.0 authorization_endpoint \
                 and token_endpoint, not both"
                    .into(),
            ));
        }
        (None, _) => {
            return Err(located(
                "a plain OAuth 2.0 upstream needs both authorization_endpoint and token_endpoint"
                    .into(),
            ));
        }
    };
    let (protocol, client_id, secret) = match (
        protocol,
        connection.client_id.take(),
        connection.client_secret.take(),
    ) {
        (None, None, None) => return Ok(None),
        (Some(protocol), Some(client_id), Some(secret)) => (protocol, client_id, secret),
        _ => {
            return Err(located(
                "give issuer (or the OAuth 2.0 endpoints), client_id and client_secret together"
                    .into(),
            ));
        }
    };
    let client_secret = resolve_secret(base, secret)
        .and_then(|secret| {
            if secret.expose().is_empty() {
                return Err("is empty".to_owned());
            }
            Ok(secret)
        })
        .map_err(|why| located(format!("client_secret {why}")))?;
    let client_id = match client_id {
        RawText::Plain(id) => id,
        RawText::From(source) => resolve_secret(base, source)
            .map_err(|why| located(format!("client_id {why}")))?
            .expose()
            .to_owned(),
    };
    let scopes = connection.scopes.take().unwrap_or_else(|| match protocol {
        UpstreamProtocol::OpenIdConnect { .. } => default_upstream_scopes(),
        UpstreamProtocol::OAuth2 { .. } => Vec::new(),
    });
    Ok(Some(UpstreamRegistration {
        protocol,
        client_id,
        client_secret,
        scopes,
    }))
}

/// `text`, when it is an http(s) URL; else why not, naming `what`.
fn checked_url(what: &str, text: &str) -> Result<String, String> {
    match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(text.to_owned()),
        _ => Err(format!("{what} `{text}` is not an http(s) URL")),
    }
}

/// The shortest secret an app's client may have (Auth0 makes 64).
const MIN_CLIENT_SECRET_CHARS: usize = 16;

/// `[[clients]]`, their secrets resolved and redirect URIs checked.
fn clients_section(
    base: &Path,
    issuer: &str,
    apis: &[ApiConfig],
    raw: Vec<Spanned<RawClient>>,
) -> Result<Vec<ClientConfig>, Located> {
    let management = claimsmith_core::management_audience(issuer);
    let mut clients = Vec::new();
    for client in raw {
        let span = client.span();
        let client = client.into_inner();
        let client_secret =
            resolve_client_secret(base, &span, &client.client_id, client.client_secret)?;
        let web_origins = client_web_origins(&client.client_id, client.web_origins)?;
        check_redirect_uris(&span, &client.redirect_uris)?;
        let audiences = MachineAudiences {
            management: &management,
            allowed: &client.allowed_audiences,
            apis,
        };
        let (grant_types, allowed_scopes) = client_grants_and_scopes(
            client.grant_types,
            client.allowed_scopes,
            client_secret.is_some(),
            &audiences,
        )
        .map_err(|why| {
            (
                Some(span.clone()),
                format!("client `{}`: {why}", client.client_id),
            )
        })?;
        let machine = grant_types.contains(&GrantType::ClientCredentials);
        if !machine
            && client
                .audience
                .iter()
                .chain(&client.allowed_audiences)
                .any(|a| *a == management)
        {
            let why = format!(
                "client `{}`: `{management}` is the Management API's audience: \
                 only a client_credentials client gets its tokens",
                client.client_id
            );
            return Err((Some(span), why));
        }
        clients.push(ClientConfig {
            client_id: client.client_id,
            name: client.name,
            client_secret,
            redirect_uris: client.redirect_uris,
            audience: client.audience,
            allowed_audiences: client.allowed_audiences,
            allowed_scopes,
            metadata: client.metadata,
            web_origins,
            grant_types,
        });
    }
    Ok(clients)
}

/// A client's `client_secret`, resolved and checked to be long enough.
fn resolve_client_secret(
    base: &Path,
    span: &Range<usize>,
    client_id: &str,
    source: Option<RawSecret>,
) -> Result<Option<SecretValue>, Located> {
    let Some(source) = source else {
        return Ok(None);
    };
    resolve_secret(base, source)
        .and_then(|secret| {
            // An empty secret would make a public client
            // confidential, and so excuse it from PKCE.
            let length = secret.expose().chars().count();
            if length < MIN_CLIENT_SECRET_CHARS {
                return Err(format!(
                    "is {length} characters: use at least \
                     {MIN_CLIENT_SECRET_CHARS} random ones, or leave it out for a \
                     public client (which must then use PKCE)"
                ));
            }
            Ok(Some(secret))
        })
        .map_err(|why| {
            (
                Some(span.clone()),
                format!("client `{client_id}`: client_secret {why}"),
            )
        })
}

/// A client's `web_origins`, parsed.
fn client_web_origins(client_id: &str, raw: Vec<Spanned<String>>) -> Result<Vec<Origin>, Located> {
    let mut web_origins = Vec::new();
    for origin in raw {
        let parsed = origin.get_ref().parse::<Origin>().map_err(|why| {
            (
                Some(origin.span()),
                format!("client `{client_id}`: web_origins: {why}"),
            )
        })?;
        web_origins.push(parsed);
    }
    Ok(web_origins)
}

/// A client's redirect URIs: absolute and without a fragment.
fn check_redirect_uris(span: &Range<usize>, redirect_uris: &[String]) -> Result<(), Located> {
    for uri in redirect_uris {
        let problem = match reqwest::Url::parse(uri) {
            Err(_) => Some("is not an absolute URL"),
            // RFC 6749 §3.1.2: no fragment.
            Ok(url) if url.fragment().is_some() => Some("has a fragment"),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            return Err((
                Some(span.clone()),
                format!("redirect URI `{uri}` {problem}"),
            ));
        }
    }
    Ok(())
}

/// What a machine client may be given tokens for: the Management API, and
/// the `[[apis]]` its `allowed_audiences` list.
struct MachineAudiences<'a> {
    management: &'a str,
    allowed: &'a [String],
    apis: &'a [ApiConfig],
}

impl MachineAudiences<'_> {
    /// Every scope a machine client may be allowed: the Management API's
    /// when its audiences include it (no list means only it), and each
    /// listed API's. An audience that is neither is refused.
    fn grantable(&self) -> Result<Vec<&str>, String> {
        let mut scopes = Vec::new();
        if self.allowed.is_empty() || self.allowed.iter().any(|a| a == self.management) {
            scopes.extend_from_slice(MANAGEMENT_SCOPES);
        }
        for audience in self.allowed.iter().filter(|a| *a != self.management) {
            let api = self
                .apis
                .iter()
                .find(|api| api.identifier == *audience)
                .ok_or_else(|| {
                    format!(
                        "audience `{audience}` is neither the Management API's ({}) nor an \
                         [[apis]] identifier",
                        self.management
                    )
                })?;
            scopes.extend(api.scopes.iter().map(String::as_str));
        }
        Ok(scopes)
    }
}

/// A client's grant types and allowed scopes, defaulted and checked by its kind (machine or not).
fn client_grants_and_scopes(
    grant_types: Option<Vec<GrantType>>,
    allowed_scopes: Option<Vec<String>>,
    has_secret: bool,
    audiences: &MachineAudiences<'_>,
) -> Result<(Vec<GrantType>, Vec<String>), String> {
    let grant_types =
        grant_types.unwrap_or_else(|| vec![GrantType::AuthorizationCode, GrantType::RefreshToken]);
    let machine = grant_types.contains(&GrantType::ClientCredentials);
    if machine && grant_types.len() > 1 {
        return Err(
            "client_credentials is for a machine-to-machine client of its own: \
             give it no other grant type"
                .to_owned(),
        );
    }
    if machine && !has_secret {
        return Err("a client_credentials client needs a client_secret".to_owned());
    }
    if grant_types.is_empty() {
        return Err("grant_types is empty".to_owned());
    }
    let default_scopes = if machine {
        audiences.grantable()?
    } else {
        DEFAULT_ALLOWED_SCOPES.to_vec()
    };
    let allowed_scopes =
        allowed_scopes.unwrap_or_else(|| default_scopes.iter().map(|s| (*s).to_owned()).collect());
    let refused = |scope: &String| {
        if machine {
            !default_scopes.contains(&scope.as_str())
        } else {
            MANAGEMENT_SCOPES.contains(&scope.as_str())
        }
    };
    if let Some(scope) = allowed_scopes.iter().find(|scope| refused(scope)) {
        return Err(if machine {
            format!(
                "scope `{scope}` is neither a Management API scope ({}) nor a scope of its \
                 allowed_audiences' [[apis]]",
                MANAGEMENT_SCOPES.join(", ")
            )
        } else {
            format!(
                "scope `{scope}` is a Management API scope: only a client_credentials client may \
                 have it"
            )
        });
    }
    Ok((grant_types, allowed_scopes))
}

/// `[engine]`: the pool and the compile cache (in the data dir by default).
fn engine_section(
    base: &Path,
    raw: RawEngine,
    max_memory_bytes: u64,
    data_dir: &Path,
) -> EngineSettings {
    EngineSettings {
        max_concurrent_instances: raw
            .max_concurrent_instances
            .unwrap_or(EngineSettings::default().max_concurrent_instances),
        max_memory_bytes,
        cache_dir: match (raw.compile_cache, raw.compile_cache_dir) {
            (false, _) => None,
            (true, Some(dir)) => Some(base.join(dir)),
            (true, None) => Some(data_dir.join("compile-cache")),
        },
    }
}

/// Whether the logins a plugin runs in are kept for `claimsmith capture`.
/// A credentials-exchange plugin runs on token requests, not logins: the
/// flag would keep nothing, so it is refused rather than ignored.
fn plugin_capture(
    name: &str,
    world: World,
    capture: Option<Spanned<bool>>,
) -> Result<bool, (Range<usize>, String)> {
    match capture {
        Some(flag) if *flag.get_ref() && world == World::CredentialsExchange => Err((
            flag.span(),
            format!(
                "plugin `{name}`: `capture` keeps logins, and a credentials-exchange plugin \
                 runs on machine clients' token requests: drop it"
            ),
        )),
        capture => Ok(capture.is_some_and(|flag| *flag.get_ref())),
    }
}

fn plugin_spec(
    base: &Path,
    name: &str,
    raw: RawPlugin,
    resolve_secrets: bool,
) -> Result<PluginSpec, (Range<usize>, String)> {
    let allowed_origins = plugin_allowed_origins(name, raw.allowed_origins)?;
    let redirect_origins = plugin_redirect_origins(name, raw.world, raw.redirect_origins)?;
    let mut secrets = BTreeMap::new();
    for (secret_name, source) in raw.secrets.into_iter().filter(|_| resolve_secrets) {
        let span = source.span();
        let value = resolve_secret(base, source.into_inner()).map_err(|why| {
            (
                span,
                format!("plugin `{name}`: secret `{secret_name}` {why}"),
            )
        })?;
        secrets.insert(secret_name, value);
    }
    let sha256 = pinned_sha256(name, raw.sha256)?;
    let source = raw
        .source
        .as_ref()
        .map(|s| *s.get_ref())
        .unwrap_or_default();
    if let Some(store) = raw
        .source
        .filter(|_| source == PluginSource::Store && sha256.is_some())
    {
        return Err((
            store.span(),
            format!(
                "plugin `{name}`: `sha256` pins a file, and a store plugin runs the version \
                 deployed in the store (each checked against its own digest): drop one"
            ),
        ));
    }
    let capture = plugin_capture(name, raw.world, raw.capture)?;
    let defaults = Limits::default();
    let http_defaults = HttpPolicy::default();
    Ok(PluginSpec {
        name: name.to_owned(),
        path: base.join(raw.path),
        sha256,
        source,
        version: None,
        world: raw.world,
        capture,
        limits: Limits {
            fuel: raw.limits.fuel.unwrap_or(defaults.fuel),
            memory_bytes: raw
                .limits
                .memory_mib
                .map_or(defaults.memory_bytes, |mib| mib.saturating_mul(1024 * 1024)),
            timeout: raw
                .limits
                .timeout_ms
                .map_or(defaults.timeout, Duration::from_millis),
        },
        secrets,
        redirect_origins,
        http: HttpPolicy {
            allowed_origins,
            timeout: raw
                .limits
                .http_timeout_ms
                .map_or(http_defaults.timeout, Duration::from_millis),
            max_response_bytes: raw
                .limits
                .max_response_bytes
                .unwrap_or(http_defaults.max_response_bytes),
        },
    })
}

/// A plugin's `allowed_origins`, parsed; a cloud metadata address is refused.
fn plugin_allowed_origins(
    name: &str,
    raw: Vec<Spanned<String>>,
) -> Result<Vec<Origin>, (Range<usize>, String)> {
    let mut allowed_origins = Vec::new();
    for origin in raw {
        let parsed = origin
            .get_ref()
            .parse::<Origin>()
            .map_err(|why| (origin.span(), format!("plugin `{name}`: {why}")))?;
        if parsed.is_metadata_literal() {
            return Err((
                origin.span(),
                format!(
                    "plugin `{name}`: `{}` is a link-local address, where cloud metadata \
                     services answer; it cannot be granted",
                    origin.get_ref()
                ),
            ));
        }
        allowed_origins.push(parsed);
    }
    Ok(allowed_origins)
}

/// A post-login action's `redirect_origins`: where `api.redirect.sendUserTo`
/// may send the user. Only a post-login action has a browser to send.
fn plugin_redirect_origins(
    name: &str,
    world: World,
    raw: Vec<Spanned<String>>,
) -> Result<Vec<Origin>, (Range<usize>, String)> {
    if let (Some(first), false) = (raw.first(), world == World::PostLoginAction) {
        return Err((
            first.span(),
            format!(
                "plugin `{name}`: redirect_origins is for post-login actions, which can send \
                 the user to a page; this plugin is a {world}"
            ),
        ));
    }
    raw.into_iter()
        .map(|origin| {
            origin.get_ref().parse::<Origin>().map_err(|why| {
                (
                    origin.span(),
                    format!("plugin `{name}`: redirect_origins: {why}"),
                )
            })
        })
        .collect()
}

/// A plugin's `sha256` pin, lowercased once checked to be a digest.
fn pinned_sha256(
    name: &str,
    raw: Option<Spanned<String>>,
) -> Result<Option<String>, (Range<usize>, String)> {
    match raw {
        None => Ok(None),
        Some(pinned) if is_sha256_hex(pinned.get_ref()) => {
            Ok(Some(pinned.get_ref().to_ascii_lowercase()))
        }
        Some(pinned) => Err((
            pinned.span(),
            format!(
                "plugin `{name}`: sha256 must be 64 hexadecimal digits, as \
                 `claimsmith check` or `sha256sum` prints them"
            ),
        )),
    }
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// A profile fetcher not granted its connection's userinfo origin fails every
/// login with `not-allowed`: likely a mistake, though a plugin may fetch
/// elsewhere, so a warning rather than an error.
fn ungranted_userinfo_warnings(
    plugins: &BTreeMap<String, PluginSpec>,
    connections: &[ConnectionConfig],
) -> Vec<String> {
    let mut warnings = Vec::new();
    for connection in connections {
        let (Some(fetcher), Some(url)) = (&connection.profile_fetcher, connection.userinfo_url())
        else {
            continue;
        };
        let origin = reqwest::Url::parse(url)
            .ok()
            .and_then(|url| url.origin().ascii_serialization().parse::<Origin>().ok());
        if let (Some(origin), Some(spec)) = (origin, plugins.get(fetcher))
            && !spec.http.allowed_origins.contains(&origin)
        {
            warnings.push(format!(
                "connection `{}`: its userinfo_url ({origin}) is not in its profile fetcher \
                 `{fetcher}`'s allowed_origins, so every login will fail with not-allowed",
                connection.name
            ));
        }
    }
    warnings
}

/// What travels over plain HTTP that should not: an issuer (its cookies,
/// codes and tokens) or a redirect URI (codes) that is `http://` and not on
/// loopback. Allowed, for development and for TLS ended at a proxy in front,
/// but said at start.
fn plain_http_warnings(issuer: &str, clients: &[ClientConfig]) -> Vec<String> {
    let on_loopback = |host: &str| {
        host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    let off_loopback = |url: &str| {
        reqwest::Url::parse(url)
            .is_ok_and(|url| url.scheme() == "http" && !url.host_str().is_some_and(on_loopback))
    };
    let mut warnings = Vec::new();
    if off_loopback(issuer) {
        warnings.push(format!(
            "issuer `{issuer}` is plain http and not on loopback: browsers' cookies, codes and \
             tokens cross the network unencrypted unless a proxy in front ends TLS"
        ));
    }
    for client in clients {
        for uri in client.redirect_uris.iter().filter(|uri| off_loopback(uri)) {
            warnings.push(format!(
                "client `{}`: redirect URI `{uri}` is plain http and not on loopback: its codes \
                 cross the network unencrypted",
                client.client_id
            ));
        }
    }
    warnings
}

/// `[console]`: its client must exist and be able to come back to it.
fn check_console(
    console: Option<Spanned<RawConsole>>,
    issuer: &str,
    clients: &[ClientConfig],
) -> Result<Option<ConsoleSettings>, Located> {
    let Some(console) = console else {
        return Ok(None);
    };
    let span = console.span();
    let console = console.into_inner();
    let callback = format!("{issuer}/admin/callback");
    match clients.iter().find(|c| c.client_id == console.client_id) {
        None => Err((
            Some(span),
            format!(
                "console.client_id `{}` is not a [[clients]] entry",
                console.client_id
            ),
        )),
        Some(client) if !client.redirect_uris.contains(&callback) => Err((
            Some(span),
            format!(
                "console client `{}` must have `{callback}` among its redirect_uris",
                client.client_id
            ),
        )),
        Some(_) => Ok(Some(ConsoleSettings {
            client_id: console.client_id,
            required_claim: console.required_claim,
        })),
    }
}

/// `[telemetry]`: the collector must be an http(s) base URL.
fn check_telemetry(
    telemetry: Option<Spanned<TelemetrySettings>>,
) -> Result<TelemetrySettings, Located> {
    let Some(telemetry) = telemetry else {
        return Ok(TelemetrySettings::default());
    };
    let span = telemetry.span();
    let telemetry = telemetry.into_inner();
    match &telemetry.otlp_endpoint {
        Some(endpoint)
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) =>
        {
            Err((
                Some(span),
                format!(
                    "telemetry.otlp_endpoint `{endpoint}` must be an http(s) URL (OTLP over HTTP)"
                ),
            ))
        }
        _ => Ok(telemetry),
    }
}

/// `[storage]` and `[keys]`: a shared database needs a shared key.
fn storage_and_keys(
    base: &Path,
    data_dir: &Path,
    storage: RawStorage,
    keys: RawKeys,
) -> Result<(StorageSettings, KeySettings), Located> {
    let database = match storage.database_url {
        None => Database::Sqlite(data_dir.join("claimsmith.db")),
        Some(url) => {
            let span = url.span();
            let text = match url.into_inner() {
                RawText::Plain(text) => text,
                RawText::From(source) => resolve_secret(base, source)
                    .map_err(|e| (Some(span.clone()), format!("storage.database_url {e}")))?
                    .expose()
                    .to_owned(),
            };
            if let Some(path) = text.strip_prefix("sqlite://") {
                Database::Sqlite(base.join(path))
            } else if text.starts_with("postgres://") || text.starts_with("postgresql://") {
                if keys.encryption_key.is_none() {
                    return Err((
                        Some(span),
                        "a PostgreSQL database is shared by several hosts: set [keys] \
                         encryption_key (the same on every host) so that each can open \
                         the signing keys and the others' pending logins"
                            .to_owned(),
                    ));
                }
                Database::Postgres(SecretValue::new(text))
            } else {
                return Err((
                    Some(span),
                    "storage.database_url must start with sqlite:// or postgres://".to_owned(),
                ));
            }
        }
    };
    let encryption_key = match keys.encryption_key {
        None => None,
        Some(source) => {
            let span = source.span();
            let key = resolve_secret(base, source.into_inner())
                .map_err(|e| (Some(span.clone()), format!("keys.encryption_key {e}")))?;
            if let Some(why) = claimsmith_tokens::sealing::key_encryption_key_weakness(key.expose())
            {
                return Err((Some(span), format!("keys.encryption_key {why}")));
            }
            Some(key)
        }
    };
    let defaults = KeySettings::default();
    let jwks_max_age_secs = keys.jwks_max_age_secs.unwrap_or(defaults.jwks_max_age_secs);
    let reload_secs = keys.reload_secs.unwrap_or(defaults.reload_secs).max(1);
    Ok((
        StorageSettings {
            database,
            synchronous: storage.synchronous,
        },
        KeySettings {
            encryption_key,
            // Keys are stamped in whole seconds and hosts' clocks differ a
            // little: a margin on top.
            rotation_overlap_secs: keys
                .rotation_overlap_secs
                .unwrap_or(jwks_max_age_secs + reload_secs + 5),
            reload_secs,
            jwks_max_age_secs,
        },
    ))
}

/// Reads a secret from where the config says it is.
fn resolve_secret(base: &Path, source: RawSecret) -> Result<SecretValue, String> {
    let value = match source {
        RawSecret::Value(value) => value,
        RawSecret::Env(var) => {
            std::env::var(&var).map_err(|_| format!("reads ${var}, which is not set"))?
        }
        RawSecret::File(path) => {
            let path = base.join(path);
            std::fs::read_to_string(&path)
                .map(|text| text.trim_end().to_owned())
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
    };
    Ok(SecretValue::new(value))
}

/// 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/claimsmith/claimsmith.toml"), text)
    }

    const MINIMAL: &str = r#"
issuer = "https://login.example.com"

[plugins.geo]
path = "geo.wasm"
world = "post-login-action"
allowed_origins = ["https://api.example.com"]
secrets = { api_key = { value = "k" } }
limits = { fuel = 5000, memory_mib = 8, timeout_ms = 250 }

[[connections]]
name = "okta"

[[clients]]
client_id = "app"

[[actions]]
plugin = "geo"
on_error = "continue"
"#;

    #[test]
    fn a_good_file_is_read_with_paths_relative_to_it() {
        let config = parse(MINIMAL).unwrap();
        let geo = &config.plugins["geo"];
        assert_eq!(geo.path, Path::new("/etc/claimsmith/geo.wasm"));
        assert_eq!(geo.limits.fuel, 5000);
        assert_eq!(geo.limits.memory_bytes, 8 * 1024 * 1024);
        assert_eq!(geo.limits.timeout, Duration::from_millis(250));
        assert_eq!(config.data_dir, Path::new("/etc/claimsmith/data"));
        assert_eq!(config.actions[0].on_error, OnError::Continue);
        assert_eq!(
            config.engine.cache_dir.as_deref(),
            Some(Path::new("/etc/claimsmith/data/compile-cache"))
        );
    }

    #[test]
    fn a_store_plugin_is_seeded_from_its_path_and_not_pinned_by_config() {
        let store = MINIMAL.replace(
            "world = \"post-login-action\"\n",
            "world = \"post-login-action\"\nsource = \"store\"\n",
        );
        let geo = parse(&store).unwrap().plugins["geo"].clone();
        assert_eq!((geo.source, geo.version), (PluginSource::Store, None));
        assert_eq!(geo.path, Path::new("/etc/claimsmith/geo.wasm"));
        assert_eq!(
            parse(MINIMAL).unwrap().plugins["geo"].source,
            PluginSource::File
        );
        let pinned = store.replace(
            "source = \"store\"\n",
            &format!("source = \"store\"\nsha256 = \"{}\"\n", "ab".repeat(32)),
        );
        let error = parse(&pinned).unwrap_err();
        assert_eq!(error.line, 7, "{error}");
        assert!(error.to_string().contains("drop one"), "{error}");
    }

    #[test]
    fn the_database_is_sqlite_in_the_data_dir_unless_a_url_says_otherwise() {
        let config = parse(MINIMAL).unwrap();
        assert!(matches!(
            &config.storage.database,
            Database::Sqlite(path) if path == Path::new("/etc/claimsmith/data/claimsmith.db")
        ));
        assert_eq!(config.keys.rotation_overlap_secs, 300 + 10 + 5);

        let text = format!(
            "{MINIMAL}\n[storage]\ndatabase_url = \"postgres://db.internal/auth\"\n\
             [keys]\nencryption_key = {{ value = \"{}\" }}\njwks_max_age_secs = 60\n",
            "hV3t9Qm2Zr8LxWc5Jn0Pd7Ys4Gb6Kf1T"
        );
        let config = parse(&text).unwrap();
        assert!(matches!(
            &config.storage.database,
            Database::Postgres(url) if url.expose() == "postgres://db.internal/auth"
        ));
        assert_eq!(config.keys.jwks_max_age_secs, 60);
        assert_eq!(config.keys.rotation_overlap_secs, 60 + 10 + 5);
    }

    #[test]
    fn the_deploy_example_is_a_valid_config_for_several_hosts() {
        let file =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/deploy/claimsmith.toml");
        // Its secrets come from the environment, which a test does not set.
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace(
                r#"{ env = "CLAIMSMITH_DATABASE_URL" }"#,
                r#""postgres://claimsmith@db.internal/claimsmith""#,
            )
            .replace(
                r#"{ env = "CLAIMSMITH_KEY_ENCRYPTION_KEY" }"#,
                r#"{ value = "0123456789abcdef0123456789abcdef" }"#,
            )
            .replace(r#"{ env = "#, r#"{ value = "#);
        let config = Config::parse(&file, &text).unwrap();
        assert!(matches!(config.storage.database, Database::Postgres(_)));
        assert!(config.keys.encryption_key.is_some());
        assert_eq!(config.telemetry.log_format, LogFormat::Json);
        assert!(config.admin.is_some());
        assert!(!config.server.trusted_proxies.is_empty());
    }

    #[test]
    fn an_otlp_endpoint_must_be_http_and_a_log_format_known() {
        let grpc = format!("{MINIMAL}\n[telemetry]\notlp_endpoint = \"grpc://collector:4317\"\n");
        let error = parse(&grpc).unwrap_err();
        assert_eq!(error.line, 21, "{error}");
        assert!(error.message.contains("OTLP over HTTP"), "{error}");
        let xml = format!("{MINIMAL}\n[telemetry]\nlog_format = \"xml\"\n");
        let error = parse(&xml).unwrap_err();
        assert_eq!(error.line, 22, "{error}");
    }

    #[test]
    fn a_shared_database_without_a_shared_key_or_a_bad_one_names_its_line() {
        let postgres = format!("{MINIMAL}\n[storage]\ndatabase_url = \"postgres://db/auth\"\n");
        let error = parse(&postgres).unwrap_err();
        assert_eq!(error.line, 22, "{error}");
        assert!(error.message.contains("encryption_key"), "{error}");

        let short = format!("{postgres}[keys]\nencryption_key = {{ value = \"short\" }}\n");
        let error = parse(&short).unwrap_err();
        assert_eq!(error.line, 24, "{error}");
        assert!(error.message.contains("at least 32"), "{error}");

        let regular = format!(
            "{postgres}[keys]\nencryption_key = {{ value = \"{}\" }}\n",
            "password".repeat(5)
        );
        let error = parse(&regular).unwrap_err();
        assert_eq!(error.line, 24, "{error}");
        assert!(error.message.contains("too regular"), "{error}");

        let scheme = format!("{MINIMAL}\n[storage]\ndatabase_url = \"mysql://db/auth\"\n");
        let error = parse(&scheme).unwrap_err();
        assert_eq!(error.line, 22, "{error}");
        assert!(
            error.message.contains("sqlite:// or postgres://"),
            "{error}"
        );
    }

    #[test]
    fn plain_http_off_loopback_is_warned_about() {
        let client = |uri: &str| ClientConfig {
            client_id: "app".into(),
            redirect_uris: vec![uri.into()],
            ..ClientConfig::default()
        };
        let quiet = [
            client("https://app.example/cb"),
            client("http://127.0.0.1:3000/cb"),
            client("http://[::1]/cb"),
            client("http://localhost/cb"),
        ];
        assert_eq!(
            plain_http_warnings("https://login.example.com", &quiet),
            Vec::<String>::new()
        );
        assert_eq!(
            plain_http_warnings("http://127.0.0.1:8080", &quiet),
            Vec::<String>::new()
        );
        let warned = plain_http_warnings(
            "http://login.example.com",
            &[client("http://app.example/cb")],
        );
        assert_eq!(warned.len(), 2, "{warned:?}");
        assert!(
            warned[0].contains("issuer `http://login.example.com`"),
            "{warned:?}"
        );
        assert!(
            warned[1].contains("redirect URI `http://app.example/cb`"),
            "{warned:?}"
        );
    }

    #[test]
    fn a_machine_client_is_its_own_kind_with_a_secret_and_management_scopes() {
        let machine = |body: &str| format!("{MINIMAL}\n[[clients]]\nclient_id = \"ops\"\n{body}");
        let config = parse(&machine(
            "client_secret = { value = \"ops-secret-0123456789\" }\ngrant_types = [\"client_credentials\"]\n",
        ))
        .unwrap();
        let ops = config.client("ops").unwrap();
        assert!(ops.allows(GrantType::ClientCredentials));
        assert_eq!(ops.allowed_scopes, MANAGEMENT_SCOPES);
        assert!(
            config
                .client("app")
                .unwrap()
                .allows(GrantType::AuthorizationCode)
        );

        for (body, says) in [
            (
                "client_secret = { value = \"ops-secret-0123456789\" }\n\
                 grant_types = [\"client_credentials\", \"authorization_code\"]\n",
                "no other grant type",
            ),
            (
                "grant_types = [\"client_credentials\"]\n",
                "needs a client_secret",
            ),
            (
                "client_secret = { value = \"ops-secret-0123456789\" }\n\
                 grant_types = [\"client_credentials\"]\nallowed_scopes = [\"openid\"]\n",
                "neither a Management API scope",
            ),
            (
                "allowed_scopes = [\"read:users\"]\n",
                "only a client_credentials client",
            ),
            (
                "audience = \"https://login.example.com/api/v2/\"\n",
                "the Management API's audience",
            ),
            (
                "allowed_audiences = [\"https://login.example.com/api/v2/\"]\n",
                "the Management API's audience",
            ),
        ] {
            let error = parse(&machine(body)).unwrap_err();
            assert_eq!(error.line, 21, "{error}");
            assert!(error.message.contains(says), "{error}");
        }
    }

    #[test]
    fn an_unknown_key_names_its_line() {
        let text = MINIMAL.replace("on_error = \"continue\"", "on_eror = \"continue\"");
        let error = parse(&text).unwrap_err();
        assert_eq!(error.line, 19, "{error}");
        assert!(error.to_string().contains("on_eror"), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("/etc/claimsmith/claimsmith.toml:19:")
        );
    }

    #[test]
    fn a_wrong_type_names_its_line() {
        let text = MINIMAL.replace("fuel = 5000", "fuel = \"lots\"");
        let error = parse(&text).unwrap_err();
        assert_eq!(error.line, 9, "{error}");
    }

    #[test]
    fn an_unknown_plugin_reference_names_the_action() {
        let text = MINIMAL.replace("plugin = \"geo\"", "plugin = \"nope\"");
        let error = parse(&text).unwrap_err();
        assert_eq!(error.line, 18, "{error}");
        assert!(error.message.contains("no plugin named `nope`"), "{error}");
    }

    #[test]
    fn a_plugin_used_as_the_wrong_world_is_refused() {
        let text = MINIMAL.replace(
            "name = \"okta\"",
            "name = \"okta\"\nprofile_fetcher = \"geo\"",
        );
        let error = parse(&text).unwrap_err();
        assert!(
            error
                .message
                .contains("is a post-login-action, but is used here as a profile-fetcher"),
            "{error}"
        );
        assert_eq!(error.line, 11, "{error}");
    }

    #[test]
    fn the_credentials_exchange_chain_takes_only_its_world_in_order() {
        let exchange =
            "\n[plugins.guard]\npath = \"guard.wasm\"\nworld = \"credentials-exchange\"\n";
        let chain = "\n[[credentials_exchange]]\nplugin = \"guard\"\non_error = \"continue\"\n";
        let config = parse(&format!("{MINIMAL}{exchange}{chain}")).unwrap();
        assert_eq!(config.credentials_exchange.len(), 1);
        assert_eq!(config.credentials_exchange[0].plugin, "guard");
        assert_eq!(config.credentials_exchange[0].on_error, OnError::Continue);
        assert_eq!(config.actions.len(), 1, "the post-login chain is its own");

        let wrong = format!("{MINIMAL}{exchange}{}", chain.replace("guard", "geo"));
        let error = parse(&wrong).unwrap_err();
        assert!(
            error
                .message
                .contains("is a post-login-action, but is used here as a credentials-exchange"),
            "{error}"
        );
        assert_eq!(error.line, wrong.lines().count() - 1, "{error}");
        let as_action = MINIMAL.replace("plugin = \"geo\"", "plugin = \"guard\"") + exchange;
        let error = parse(&as_action).unwrap_err();
        assert!(
            error
                .message
                .contains("is a credentials-exchange, but is used here as a post-login-action"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_origin_and_a_missing_env_secret_are_located() {
        let text = MINIMAL.replace(
            "https://api.example.com\"",
            "https://api.example.com/path\"",
        );
        let error = parse(&text).unwrap_err();
        assert_eq!(error.line, 7, "{error}");
        let text = MINIMAL.replace(
            "{ value = \"k\" }",
            "{ env = \"CLAIMSMITH_TEST_SURELY_UNSET_VAR\" }",
        );
        let error = parse(&text).unwrap_err();
        assert!(
            error.message.contains("CLAIMSMITH_TEST_SURELY_UNSET_VAR"),
            "{error}"
        );
        assert_eq!(error.line, 8, "{error}");
    }

    #[test]
    fn upstream_credentials_come_from_files_or_the_file_itself() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("okta-id"), "0oa-client\n").unwrap();
        std::fs::write(dir.path().join("okta-secret"), "s3cr3t\n").unwrap();
        let text = "issuer = \"https://login.example.com\"\n[[connections]]\nname = \"okta\"\nissuer = \"https://example.okta.com/oauth2/default/\"\nclient_id = { file = \"okta-id\" }\nclient_secret = { file = \"okta-secret\" }\n"
            .to_owned();
        let config = Config::parse(&dir.path().join("claimsmith.toml"), &text).unwrap();
        let upstream = config.connections[0].upstream.as_ref().unwrap();
        assert_eq!(upstream.client_id, "0oa-client");
        assert_eq!(upstream.client_secret.expose(), "s3cr3t");
        assert_eq!(
            upstream.protocol,
            UpstreamProtocol::OpenIdConnect {
                issuer: "https://example.okta.com/oauth2/default".into()
            }
        );
        assert_eq!(upstream.scopes, ["openid", "profile", "email"]);

        let partial = text.replace("client_secret = { file = \"okta-secret\" }\n", "");
        let error = Config::parse(&dir.path().join("claimsmith.toml"), &partial).unwrap_err();
        assert!(
            error.message.contains(
                "give issuer (or the OAuth 2.0 endpoints), client_id and client_secret together"
            ),
            "{error}"
        );
    }

    #[test]
    fn a_plain_oauth2_upstream_names_its_endpoints_and_needs_a_profile_fetcher() {
        let dir = tempfile::tempdir().unwrap();
        let text = "issuer = \"https://login.example.com\"\n[plugins.github]\npath = \"g.wasm\"\nworld = \"profile-fetcher\"\n[[connections]]\nname = \"github\"\nprofile_fetcher = \"github\"\nauthorization_endpoint = \"https://github.com/login/oauth/authorize\"\ntoken_endpoint = \"https://github.com/login/oauth/access_token\"\nclient_id = \"id\"\nclient_secret = { value = \"s3cr3t\" }\n";
        let path = dir.path().join("claimsmith.toml");
        let config = Config::parse(&path, text).unwrap();
        let upstream = config.connections[0].upstream.as_ref().unwrap();
        assert_eq!(
            upstream.protocol,
            UpstreamProtocol::OAuth2 {
                authorization_endpoint: "https://github.com/login/oauth/authorize".into(),
                token_endpoint: "https://github.com/login/oauth/access_token".into(),
            }
        );
        assert!(upstream.scopes.is_empty(), "{:?}", upstream.scopes);

        let no_fetcher = text.replace("profile_fetcher = \"github\"\n", "");
        let error = Config::parse(&path, &no_fetcher).unwrap_err();
        assert!(error.message.contains("needs a profile_fetcher"), "{error}");
        assert_eq!(error.line, 5, "{error}");

        let half = text.replace(
            "token_endpoint = \"https://github.com/login/oauth/access_token\"\n",
            "",
        );
        let error = Config::parse(&path, &half).unwrap_err();
        assert!(
            error
                .message
                .contains("needs both authorization_endpoint and token_endpoint"),
            "{error}"
        );

        let both = text.replace(
            "client_id = \"id\"",
            "issuer = \"https://github.com\"\nclient_id = \"id\"",
        );
        let error = Config::parse(&path, &both).unwrap_err();
        assert!(error.message.contains("not both"), "{error}");
    }

    #[test]
    fn redirect_origins_are_origins_of_post_login_actions_only() {
        let granted = MINIMAL.replace(
            "allowed_origins = [\"https://api.example.com\"]",
            "allowed_origins = [\"https://api.example.com\"]\nredirect_origins = [\"https://terms.example.com\"]",
        );
        let config = parse(&granted).unwrap();
        assert_eq!(
            config.plugins["geo"].redirect_origins,
            vec!["https://terms.example.com".parse::<Origin>().unwrap()]
        );
        let with_path = granted.replace("terms.example.com\"", "terms.example.com/accept\"");
        let error = parse(&with_path).unwrap_err();
        assert_eq!(error.line, 8, "{error}");
        assert!(error.message.contains("redirect_origins"), "{error}");
        let fetcher = granted.replace(
            "world = \"post-login-action\"",
            "world = \"profile-fetcher\"",
        );
        let error = parse(&fetcher).unwrap_err();
        assert_eq!(error.line, 8, "{error}");
        assert!(error.message.contains("for post-login actions"), "{error}");
    }

    #[test]
    fn a_metadata_address_cannot_be_granted() {
        let text = MINIMAL.replace("https://api.example.com", "http://169.254.169.254");
        let error = parse(&text).unwrap_err();
        assert_eq!(error.line, 7, "{error}");
        assert!(error.message.contains("link-local"), "{error}");
    }

    #[test]
    fn an_empty_or_short_client_secret_is_refused_with_its_line() {
        for secret in ["", "short-secret"] {
            let text = MINIMAL.replace(
                "client_id = \"app\"",
                &format!("client_id = \"app\"\nclient_secret = {{ value = \"{secret}\" }}"),
            );
            let error = parse(&text).unwrap_err();
            assert_eq!(error.line, 14, "{error}");
            assert!(
                error.message.contains("use at least 16 random ones"),
                "{error}"
            );
        }
        let text = MINIMAL.replace(
            "client_id = \"app\"",
            "client_id = \"app\"\nclient_secret = { value = \"a-long-enough-secret\" }",
        );
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn an_empty_upstream_secret_or_a_bar_in_a_connection_name_is_refused() {
        let upstream = "name = \"okta\"\nissuer = \"https://example.okta.com\"\nclient_id = { value = \"id\" }\nclient_secret = { value = \"\" }";
        let error = parse(&MINIMAL.replace("name = \"okta\"", upstream)).unwrap_err();
        assert!(error.message.contains("client_secret is empty"), "{error}");
        let error = parse(&MINIMAL.replace("name = \"okta\"", "name = \"ok|ta\"")).unwrap_err();
        assert!(error.message.contains("must not contain `|`"), "{error}");
        assert_eq!(error.line, 11, "{error}");
    }

    #[test]
    fn a_machine_client_may_be_given_the_apis_it_lists_and_their_scopes() {
        let management = "https://login.example.com/api/v2/";
        let docs = "https://api.example.com";
        let with = |audiences: &str, scopes: &str| {
            parse(&format!(
                "{MINIMAL}\n[[apis]]\nidentifier = \"{docs}\"\nscopes = [\"read:docs\"]\n\
                 [[clients]]\nclient_id = \"m2m\"\nclient_secret = {{ value = \"m2m-secret-0123456789\" }}\n\
                 grant_types = [\"client_credentials\"]\nallowed_audiences = {audiences}\n{scopes}"
            ))
        };
        let config = with(&format!("[\"{docs}\"]"), "").unwrap();
        let m2m = config.client("m2m").unwrap();
        assert_eq!(m2m.allowed_scopes, ["read:docs"]);
        assert!(m2m.machine_may_ask_for(docs, management));
        assert!(!m2m.machine_may_ask_for(management, management));
        let both = with(&format!("[\"{management}\", \"{docs}\"]"), "").unwrap();
        let m2m = both.client("m2m").unwrap();
        assert!(m2m.machine_may_ask_for(management, management));
        assert_eq!(m2m.allowed_scopes.len(), MANAGEMENT_SCOPES.len() + 1);
        let only_management = with("[]", "").unwrap();
        let m2m = only_management.client("m2m").unwrap();
        assert!(m2m.machine_may_ask_for(management, management));
        assert!(!m2m.machine_may_ask_for(docs, management));
        assert!(
            !config
                .client("app")
                .unwrap()
                .machine_may_ask_for(docs, management)
        );

        for (audiences, scopes, says) in [
            (
                "[\"https://unknown.example.com\"]",
                "",
                "nor an [[apis]] identifier",
            ),
            (
                &*format!("[\"{docs}\"]"),
                "allowed_scopes = [\"read:users\"]",
                "neither a Management API scope",
            ),
        ] {
            let error = with(audiences, scopes).unwrap_err();
            assert!(
                error.message.contains(says),
                "{audiences} {scopes}: {error}"
            );
        }
    }

    #[test]
    fn apis_are_checked_and_found_by_identifier() {
        let api = "[[apis]]\nidentifier = \"https://api.example.com\"\n";
        let with = |body: &str| parse(&format!("{MINIMAL}\n{api}{body}\n"));
        let config =
            with("scopes = [\"read:docs\"]\ntoken_ttl_secs = 600\nadd_permissions = true").unwrap();
        let docs = config.api("https://api.example.com").unwrap();
        assert_eq!(
            (docs.scopes.as_slice(), docs.token_ttl_secs),
            (&["read:docs".to_owned()][..], Some(600))
        );
        let id = Some("https://api.example.com");
        assert_eq!(config.permissions_for(id), id);
        assert_eq!(
            config.permissions_for(Some("https://other.example.com")),
            None
        );
        let plain = with("").unwrap();
        assert_eq!(
            plain.permissions_for(id),
            None,
            "add_permissions is off unless set"
        );

        for (body, says) in [
            (api, "listed twice"),
            (
                "scopes = [\"openid\"]",
                "OpenID Connect's or the Management API's",
            ),
            (
                "scopes = [\"read:users\"]",
                "OpenID Connect's or the Management API's",
            ),
            ("scopes = [\"read docs\"]", "has a space"),
            ("scopes = [\"a\", \"a\"]", "listed twice"),
            ("token_ttl_secs = 0", "token_ttl_secs must be"),
            ("audience = \"x\"", "unknown field"),
        ] {
            let error = with(body).unwrap_err();
            assert!(error.message.contains(says), "{body}: {error}");
            assert!(error.line > 19, "{body}: {error}");
        }
        let management =
            MINIMAL.to_owned() + "[[apis]]\nidentifier = \"https://login.example.com/api/v2/\"\n";
        let error = parse(&management).unwrap_err();
        assert!(
            error.message.contains("the Management API's audience"),
            "{error}"
        );
    }

    #[test]
    fn roles_from_names_a_claim_or_is_refused_with_its_line() {
        let with = |roles_from: &str| {
            parse(&MINIMAL.replace(
                "name = \"okta\"",
                &format!("name = \"okta\"\nroles_from = \"{roles_from}\""),
            ))
        };
        let config = with("groups").unwrap();
        assert_eq!(config.connections[0].roles_from.as_deref(), Some("groups"));
        assert_eq!(parse(MINIMAL).unwrap().connections[0].roles_from, None);
        let error = with("").unwrap_err();
        assert!(
            error.message.contains("roles_from names a profile claim"),
            "{error}"
        );
        assert_eq!(error.line, 11, "{error}");
    }

    #[test]
    fn redirect_uris_must_be_absolute_and_fragment_free() {
        for (uri, problem) in [
            ("/callback", "is not an absolute URL"),
            ("https://app.test/cb#x", "has a fragment"),
        ] {
            let text = format!(
                "issuer = \"https://login.example.com\"\n[[clients]]\nclient_id = \"a\"\nredirect_uris = [\"{uri}\"]\n"
            );
            let error = parse(&text).unwrap_err();
            assert!(error.message.contains(problem), "{error}");
            assert_eq!(error.line, 2, "{error}");
        }
    }

    #[test]
    fn an_ungranted_userinfo_origin_is_warned_about() {
        let text = "issuer = \"https://login.example.com\"\n[plugins.okta]\npath = \"o.wasm\"\nworld = \"profile-fetcher\"\nallowed_origins = [\"https://other.example.com\"]\n[[connections]]\nname = \"okta\"\nprofile_fetcher = \"okta\"\noptions = { userinfo_url = \"https://example.okta.com/v1/userinfo\" }\n";
        let warnings = |text: &str| {
            let config = parse(text).unwrap();
            ungranted_userinfo_warnings(&config.plugins, &config.connections)
        };
        let warned = warnings(text);
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(
            warned[0].contains("not in its profile fetcher `okta`'s allowed_origins")
                && warned[0].contains("https://example.okta.com:443"),
            "{warned:?}"
        );
        let granted = text.replace("https://other.example.com", "https://example.okta.com");
        assert_eq!(warnings(&granted), Vec::<String>::new());
    }

    #[test]
    fn duplicate_clients_are_refused() {
        let text = format!("{MINIMAL}\n[[clients]]\nclient_id = \"app\"\n");
        let error = parse(&text).unwrap_err();
        assert!(
            error.message.contains("client `app` is defined twice"),
            "{error}"
        );
    }
}
