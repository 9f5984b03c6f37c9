//! The login service under test: `claimsmith` with the seed chain (the
//! okta-userinfo fetcher, the geo-claims action) and any extra actions, in
//! this process or as a `claimsmith serve` process, signed into at a fresh
//! development provider, driven by a browser that keeps cookies. Shared by
//! the end-to-end tests of the service.

use std::sync::Arc;

use claimsmith::config::Config;
use claimsmith::oidc::Service;
use claimsmith_devprovider::{DevProvider, DevProviderConfig, DevUser, Protocol};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use reqwest::{StatusCode, Url};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::support::plugin_wasm;

pub const APP_REDIRECT: &str = "http://127.0.0.1:1/app/callback";
pub const SPA_REDIRECT: &str = "http://127.0.0.1:1/spa/callback";
pub const SPA_ORIGIN: &str = "http://127.0.0.1:1";
/// Characters that HTTP Basic needs form-encoded (RFC 6749 §2.3.1).
pub const UPSTREAM_SECRET: &str = "upstream:secret%2B+é";

pub struct Harness {
    pub issuer: String,
    pub upstream: DevProvider,
    pub host: Host,
    /// A browser: keeps cookies, follows no redirect by itself.
    pub http: reqwest::Client,
    /// The config and the data directory live here.
    pub dir: tempfile::TempDir,
    pub config: std::path::PathBuf,
}

/// The service under test: in this process, or `claimsmith serve` as a
/// process of its own (to measure its memory, or to kill it).
pub enum Host {
    InProcess(Arc<Service>),
    Process(ServeProcess),
}

/// A `claimsmith serve` child process, killed when dropped.
pub struct ServeProcess(pub std::process::Child);

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl ServeProcess {
    /// Starts `claimsmith serve` (the binary `cargo xtask test` built) on
    /// `config`, logging to `log`, and waits until it answers at `issuer`.
    pub async fn start(config: &std::path::Path, log: &std::path::Path, issuer: &str) -> Self {
        let mut process = ServeProcess::spawn("serve", config, log);
        assert!(
            process.answers_as(issuer).await,
            "claimsmith serve did not come up at {issuer}: see {}",
            log.display()
        );
        process
    }

    /// Runs `claimsmith <command> --config <config>`, logging to `log`.
    pub fn spawn(command: &str, config: &std::path::Path, log: &std::path::Path) -> Self {
        let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_claimsmith"));
        assert!(
            binary.exists(),
            "{} is missing: run `cargo xtask test`, which builds it",
            binary.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = std::process::Command::new(binary)
            .args([command, "--config"])
            .arg(config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        ServeProcess(child)
    }

    /// Whether this process comes to answer discovery as `issuer`, within
    /// a minute: false as soon as it exits (it could not bind its port,
    /// say). The issuer is checked, so another process that took the port
    /// does not pass for this one.
    pub async fn answers_as(&mut self, issuer: &str) -> bool {
        let discovery = format!("{issuer}/.well-known/openid-configuration");
        for _ in 0..600 {
            if self.0.try_wait().ok().flatten().is_some() {
                return false;
            }
            if let Ok(response) = reqwest::get(&discovery).await
                && let Ok(document) = response.json::<Value>().await
            {
                return document["issuer"] == issuer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    }

    /// Resident memory of the process, in bytes.
    pub fn resident_bytes(&self) -> u64 {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.0.id())).unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }
}

/// The service with the seed chain plus the given actions (TOML `[[actions]]`
/// lines and plugin tables), against a fresh development provider.
pub async fn harness(extra_toml: &str) -> Harness {
    harness_with_server(extra_toml, "").await
}

/// As [`harness`], with extra `[server]` lines.
pub async fn harness_with_server(extra_toml: &str, server_toml: &str) -> Harness {
    start_harness(extra_toml, server_toml, false).await
}

/// As [`harness`], the service running as a `claimsmith serve` process.
pub async fn harness_as_process(extra_toml: &str) -> Harness {
    start_harness(extra_toml, "", true).await
}

/// A development provider on loopback that knows Claimsmith as a client.
pub async fn dev_provider() -> DevProvider {
    dev_provider_speaking(Protocol::OpenIdConnect).await
}

/// As [`dev_provider`], speaking `protocol`.
pub async fn dev_provider_speaking(protocol: Protocol) -> DevProvider {
    DevProvider::start(
        "127.0.0.1:0".parse().unwrap(),
        DevProviderConfig {
            client_id: "claimsmith".into(),
            client_secret: UPSTREAM_SECRET.into(),
            user: DevUser::default(),
            protocol,
        },
    )
    .await
    .unwrap()
}

pub async fn start_harness(extra_toml: &str, server_toml: &str, as_process: bool) -> Harness {
    start_edited_harness(extra_toml, server_toml, as_process, |config, _| config).await
}

/// As [`start_harness`], the config text passed through `edit`, with the
/// issuer, first (to take a part of the seed chain out, say).
pub async fn start_edited_harness(
    extra_toml: &str,
    server_toml: &str,
    as_process: bool,
    edit: impl FnOnce(String, &str) -> String,
) -> Harness {
    start_harness_at(
        dev_provider().await,
        extra_toml,
        server_toml,
        as_process,
        edit,
    )
    .await
}

/// As [`start_edited_harness`], signing in at `upstream`.
pub async fn start_harness_at(
    upstream: DevProvider,
    extra_toml: &str,
    server_toml: &str,
    as_process: bool,
    edit: impl FnOnce(String, &str) -> String,
) -> Harness {
    let run = if as_process {
        Run::Process
    } else {
        Run::InProcess(Arc::new(claimsmith_core::SystemClock))
    };
    start_harness_run(upstream, extra_toml, server_toml, run, edit).await
}

/// How the service under test runs.
pub enum Run {
    /// In this process, on this clock.
    InProcess(Arc<dyn claimsmith_core::Clock>),
    /// `claimsmith serve` as a process of its own.
    Process,
}

/// The harness's service, in process, reading the time from `clock`.
pub async fn harness_on_clock(
    server_toml: &str,
    clock: Arc<dyn claimsmith_core::Clock>,
) -> Harness {
    let run = Run::InProcess(clock);
    start_harness_run(dev_provider().await, "", server_toml, run, |config, _| {
        config
    })
    .await
}

/// As [`start_harness_at`], run as `run` says.
pub async fn start_harness_run(
    upstream: DevProvider,
    extra_toml: &str,
    server_toml: &str,
    run: Run,
    edit: impl FnOnce(String, &str) -> String,
) -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen = listener.local_addr().unwrap();
    let issuer = format!("http://{listen}");
    let dir = tempfile::tempdir().unwrap();
    let upstream_issuer = upstream.issuer().to_owned();
    let toml = edit(
        service_config(&issuer, listen, &upstream_issuer, server_toml, extra_toml),
        &issuer,
    );
    let path = dir.path().join("claimsmith.toml");
    std::fs::write(&path, toml).unwrap();
    let host = match run {
        Run::Process => {
            // The process binds the address itself.
            drop(listener);
            Host::Process(ServeProcess::start(&path, &dir.path().join("serve.log"), &issuer).await)
        }
        Run::InProcess(clock) => {
            let service = Service::start_with_clock(Config::load(&path).unwrap(), clock)
                .await
                .unwrap();
            tokio::spawn(claimsmith::oidc::serve(service.clone(), listener));
            Host::InProcess(service)
        }
    };
    Harness {
        issuer,
        upstream,
        host,
        http: browser(),
        dir,
        config: path,
    }
}

/// The edit that turns the test config's OpenID Connect connection to
/// `upstream` into a plain OAuth 2.0 one asking for `scopes`.
pub fn oauth2_endpoints(upstream: &str, scopes: &str) -> impl Fn(String) -> String + use<> {
    let oidc = format!("issuer = \"{upstream}\"\nclient_id = \"claimsmith\"");
    let oauth2 = format!(
        "authorization_endpoint = \"{upstream}/authorize\"\ntoken_endpoint = \"{upstream}/token\"\n\
         scopes = {scopes}\nclient_id = \"claimsmith\""
    );
    move |config: String| {
        assert!(config.contains(&oidc), "the connection names its issuer");
        config.replace(&oidc, &oauth2)
    }
}

/// A clock a test moves by hand: a lifetime passes when the test says so,
/// however slow the machine.
#[derive(Debug)]
pub struct SteppedClock(std::sync::atomic::AtomicU64);

impl SteppedClock {
    /// Starting at the system's time now.
    pub fn new() -> Arc<Self> {
        use claimsmith_core::Clock as _;
        Arc::new(SteppedClock(claimsmith_core::SystemClock.now().into()))
    }

    pub fn advance(&self, seconds: u64) {
        self.0
            .fetch_add(seconds, std::sync::atomic::Ordering::SeqCst);
    }
}

impl claimsmith_core::Clock for SteppedClock {
    fn now(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A browser: keeps cookies, follows redirects one by one (the tests do).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

/// The service's config in the tests: okta-userinfo and geo-claims (Rust),
/// the connection `dev` at `upstream_issuer`, the clients `web-app` and
/// `spa`; `server_toml` goes into `[server]`, `extra_toml` at the end.
pub fn service_config(
    issuer: &str,
    listen: std::net::SocketAddr,
    upstream_issuer: &str,
    server_toml: &str,
    extra_toml: &str,
) -> String {
    format!(
        r#"
issuer = "{issuer}"
data_dir = "data"
[engine]
compile_cache_dir = {cache:?}
[server]
listen = "{listen}"
{server_toml}

[plugins.okta-userinfo]
path = {okta:?}
world = "profile-fetcher"
allowed_origins = ["{upstream_issuer}"]

[plugins.geo-claims]
path = {geo:?}
world = "post-login-action"

[[connections]]
name = "dev"
issuer = "{upstream_issuer}"
client_id = "claimsmith"
client_secret = {{ value = "{UPSTREAM_SECRET}" }}
profile_fetcher = "okta-userinfo"
options = {{ userinfo_url = "{upstream_issuer}/userinfo" }}

[[clients]]
client_id = "web-app"
name = "Web App"
client_secret = {{ value = "web-app-secret-0123" }}
redirect_uris = ["{APP_REDIRECT}"]
audience = "https://api.example.com"

[[clients]]
client_id = "spa"
name = "Single-page App"
redirect_uris = ["{SPA_REDIRECT}"]
web_origins = ["{SPA_ORIGIN}"]

[[actions]]
plugin = "geo-claims"
{extra_toml}
"#,
        cache = crate::support::test_compile_cache(),
        okta = plugin_wasm("okta-userinfo"),
        geo = plugin_wasm("geo-claims"),
    )
}

pub fn echo_action() -> String {
    format!(
        "[plugins.echo]\npath = {:?}\nworld = \"post-login-action\"\n[[actions]]\nplugin = \"echo\"\n",
        plugin_wasm("test-echo")
    )
}

pub fn challenge(verifier: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub const VERIFIER: &str = "a-pkce-code-verifier-that-is-long-enough-for-rfc-7636-rules";

/// What the app's redirect URI received.
#[derive(Debug)]
pub struct AppRedirect {
    pub params: Map<String, Value>,
}

impl AppRedirect {
    /// The correlation id in `error_description`: "... (reference <id>)".
    pub fn reference(&self) -> &str {
        let description = self.get("error_description").unwrap_or_default();
        description
            .split("(reference ")
            .nth(1)
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("no reference in {description:?}"))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.get(name).and_then(Value::as_str)
    }
}

impl Harness {
    /// The in-process service's database.
    pub fn store(&self) -> &claimsmith::store::Store {
        match &self.host {
            Host::InProcess(service) => service.store(),
            Host::Process(_) => panic!("the service runs in its own process"),
        }
    }

    pub fn authorize_url(
        &self,
        client_id: &str,
        redirect_uri: &str,
        extra: &[(&str, &str)],
    ) -> Url {
        let mut url = Url::parse(&format!("{}/authorize", self.issuer)).unwrap();
        let defaults = [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", "openid profile email offline_access"),
            ("state", "app-state-1"),
            ("nonce", "app-nonce-1"),
        ];
        // `extra` replaces a default of the same name.
        let kept = defaults
            .iter()
            .filter(|(name, _)| !extra.iter().any(|(n, _)| n == name));
        for (name, value) in kept.chain(extra) {
            url.query_pairs_mut().append_pair(name, value);
        }
        url
    }

    /// The discovery document.
    pub async fn discovery(&self) -> Value {
        self.get_json("/.well-known/openid-configuration").await
    }

    /// The JSON the service answers at `path`.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.get_json_from(&self.issuer, path).await
    }

    /// The JSON `host` (this service's, or another host's base URL) answers
    /// at `path`, asked by this browser.
    pub async fn get_json_from<T: serde::de::DeserializeOwned>(&self, host: &str, path: &str) -> T {
        self.http
            .get(format!("{host}{path}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// An authorization request of `client_id` ("web-app" or "spa") to its
    /// redirect URI, with a PKCE challenge for [`VERIFIER`] and `extra`.
    pub fn pkce_authorize_url(&self, client_id: &str, extra: &[(&str, &str)]) -> Url {
        let redirect_uri = if client_id == "spa" {
            SPA_REDIRECT
        } else {
            APP_REDIRECT
        };
        let challenge = challenge(VERIFIER);
        let mut fields = vec![
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        fields.extend_from_slice(extra);
        self.authorize_url(client_id, redirect_uri, &fields)
    }

    /// Starts the sign-in at `url` in this browser and signs in at the
    /// upstream: the `/callback` URL the upstream sent the browser back to,
    /// not yet followed.
    pub async fn callback_url(&self, url: Url) -> Url {
        let mut url = url;
        for _ in 0..2 {
            let response = self.http.get(url.clone()).send().await.unwrap();
            let location = response.headers()["location"].to_str().unwrap();
            url = url.join(location).unwrap();
        }
        url
    }

    /// Follows redirects as a browser would, until the app's redirect URI.
    pub async fn browse(&self, url: Url, app_redirect: &str) -> AppRedirect {
        self.browse_with_headers(url, app_redirect, &[]).await
    }

    /// As [`Harness::browse`], every request carrying `headers` (as a
    /// reverse proxy, or a client pretending to be one, would send them).
    pub async fn browse_with_headers(
        &self,
        mut url: Url,
        app_redirect: &str,
        headers: &[(&str, &str)],
    ) -> AppRedirect {
        for _ in 0..6 {
            if url.as_str().starts_with(app_redirect) {
                let params = url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                    .collect();
                return AppRedirect { params };
            }
            let mut request = self.http.get(url.clone());
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let Some(location) = response.headers().get("location") else {
                panic!(
                    "{url} answered {status} without a redirect: {}",
                    response.text().await.unwrap()
                );
            };
            url = url.join(location.to_str().unwrap()).unwrap();
        }
        panic!("too many redirects");
    }

    /// A web-app login with PKCE; returns the redirect the app received.
    pub async fn web_login(&self) -> AppRedirect {
        let url = self.pkce_authorize_url("web-app", &[]);
        let redirect = self.browse(url, APP_REDIRECT).await;
        assert_eq!(redirect.get("state"), Some("app-state-1"), "{redirect:?}");
        redirect
    }

    pub async fn token(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (StatusCode, Map<String, Value>) {
        let mut request = self
            .http
            .post(format!("{}/oauth/token", self.issuer))
            .form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// Redeems `code` with the given fields besides grant_type and code
    /// (redirect_uri, code_verifier, client_id, ...).
    pub async fn redeem(
        &self,
        code: &str,
        fields: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (StatusCode, Map<String, Value>) {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code)];
        form.extend_from_slice(fields);
        self.token(&form, basic).await
    }

    /// Redeems `code` as web-app, with its secret.
    pub async fn exchange(&self, code: &str, verifier: &str) -> (StatusCode, Map<String, Value>) {
        self.redeem(
            code,
            &[("redirect_uri", APP_REDIRECT), ("code_verifier", verifier)],
            Some(("web-app", "web-app-secret-0123")),
        )
        .await
    }

    /// The development user as the service stored it, if it did.
    pub async fn stored_user(&self) -> Option<claimsmith::store::StoredUserRow> {
        self.store().load_user("dev|dev-user-1").await.unwrap()
    }

    /// The claims of the access token in `tokens` (for the audience of
    /// web-app), verified against the service's JWKS.
    pub async fn access_claims(&self, tokens: &Map<String, Value>) -> Map<String, Value> {
        verify(
            &tokens["access_token"],
            &self.jwks().await,
            "https://api.example.com",
            &self.issuer,
        )
    }

    pub async fn jwks(&self) -> JwkSet {
        self.get_json("/.well-known/jwks.json").await
    }
}

/// The token endpoint answered `status` with OAuth error `error`.
pub fn assert_oauth_error(
    status: &StatusCode,
    body: &Map<String, Value>,
    expected: StatusCode,
    error: &str,
) {
    assert_eq!(
        (*status, body["error"].as_str()),
        (expected, Some(error)),
        "{body:?}"
    );
}

pub fn verify(token: &Value, jwks: &JwkSet, audience: &str, issuer: &str) -> Map<String, Value> {
    let token = token.as_str().expect("a token");
    let header = decode_header(token).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("the kid is published");
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    decode::<Map<String, Value>>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims
}

impl Harness {
    /// The app was told of a failure briefly, with a reference; the audit row
    /// under that reference holds the detail, which the app never sees.
    pub async fn assert_failure_told_by_reference(&self, redirect: &AppRedirect, detail: &str) {
        let description = redirect.get("error_description").unwrap();
        let reference = redirect.reference();
        assert!(
            !description.contains(detail)
                && !description.contains("127.0.0.1")
                && !description.contains("error sending request"),
            "internal detail reached the app: {description:?}"
        );
        let audit = self.store().recent_logins(1).await.unwrap();
        assert_eq!(audit[0].correlation_id.as_deref(), Some(reference));
        assert!(
            matches!(&audit[0].outcome, claimsmith::store::AuditOutcome::Failed { error } if error.contains(detail)),
            "{:?}",
            audit[0]
        );
    }
}

impl Harness {
    /// A restart on a narrower (or wider) config: a second service on the
    /// same data, its config `edit`ed from this one's, at an address of its
    /// own (returned as its base URL); this one keeps serving.
    pub async fn restarted(&self, edit: impl FnOnce(String) -> String) -> String {
        let path = self.dir.path().join("restarted.toml");
        let config = edit(std::fs::read_to_string(&self.config).unwrap());
        std::fs::write(&path, config).unwrap();
        let service = Service::start(Config::load(&path).unwrap()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(claimsmith::oidc::serve(service, listener));
        base
    }

    /// A web-app sign-in with `offline_access`: its token response.
    pub async fn signed_in(&self) -> Map<String, Value> {
        let redirect = self.web_login().await;
        let (status, body) = self.exchange(redirect.get("code").unwrap(), VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        body
    }

    /// A refresh as web-app.
    pub async fn refresh(&self, refresh_token: &str) -> (StatusCode, Map<String, Value>) {
        self.token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            Some(("web-app", "web-app-secret-0123")),
        )
        .await
    }
}

pub fn refresh_token_of(body: &Map<String, Value>) -> String {
    body["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no refresh token: {body:?}"))
        .to_owned()
}

/// The harness's chain plus roles-claim (the dev user is in `engineers`),
/// an `admin-console` client, and `[console]` requiring `role`.
pub async fn console_harness(role: &str) -> Harness {
    console_harness_with(role, |_| String::new()).await
}

/// As [`console_harness`], with `extra(issuer)` added to the config.
pub async fn console_harness_with(role: &str, extra: impl FnOnce(&str) -> String) -> Harness {
    let role = role.to_owned();
    start_edited_harness("", "", false, move |config, issuer| {
        let extra = extra(issuer);
        format!(
            r#"{config}
{extra}
[plugins.roles-claim]
path = {roles:?}
world = "post-login-action"

[[actions]]
plugin = "roles-claim"

[[clients]]
client_id = "admin-console"
name = "Admin console"
redirect_uris = ["{issuer}/admin/callback"]

[console]
client_id = "admin-console"
required_claim = {{ name = "https://claimsmith.dev/roles", value = "{role}" }}
"#,
            roles = crate::support::plugin_wasm("roles-claim"),
        )
    })
    .await
}

/// The admin listener of the harness's service, on a port of its own.
pub async fn admin_listener(h: &Harness) -> String {
    let Host::InProcess(service) = &h.host else {
        panic!("the service runs in its own process");
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(claimsmith::oidc::serve_router(
        claimsmith::oidc::admin::router(service.clone()),
        claimsmith::config::ServerSettings::default(),
        listener,
    ));
    url
}

/// The metrics the admin listener at `admin` exposes.
pub async fn scrape(admin: &str) -> String {
    let response = reqwest::get(format!("{admin}/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        response.headers()
    );
    response.text().await.unwrap()
}

/// The value of the sample `series` (name and labels, as exposed).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

/// The service's chain reloads of one outcome (`swapped`, `refused`), as
/// its metrics count them: a test waits for the next one instead of
/// sleeping and hoping a reload was tried.
pub struct ChainReloads {
    admin: String,
    series: String,
    seen: f64,
}

impl ChainReloads {
    pub async fn watch(h: &Harness, outcome: &str) -> Self {
        let mut reloads = ChainReloads {
            admin: admin_listener(h).await,
            series: format!("claimsmith_chain_reloads_total{{outcome=\"{outcome}\"}}"),
            seen: 0.0,
        };
        reloads.seen = reloads.count().await;
        reloads
    }

    async fn count(&self) -> f64 {
        sample(&scrape(&self.admin).await, &self.series).unwrap_or(0.0)
    }

    /// Waits, 20 s at most, until one more reload of the outcome is counted;
    /// else fails saying `never`.
    pub async fn next(&self, never: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while self.count().await == self.seen {
            assert!(std::time::Instant::now() < deadline, "{never}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
