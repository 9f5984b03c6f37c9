//! The in-process figures of `cargo xtask bench`:
//! - one login through the seed chain (okta-userinfo + geo-claims +
//!   roles-claim, Rust) and minting, beside minting the same two tokens
//!   alone, so the plugins' cost reads as a ratio of the two;
//! - the same login with 1, 5 and 20 actions (20 is Auth0's per-trigger
//!   maximum), for the cost per action;
//! - each plugin alone in every language it is built in (fresh instance +
//!   call + teardown), with size, compile time, median and p99;
//! - the reference write-up's Action as Auth0 runs it (`require('auth0')`,
//!   bundled by the build) beside the same action ported to `fetch` by hand,
//!   both JavaScript, each answered by its golden case's canned exchanges.
//!
//! Criterion prints its own estimates; the summary after it measures medians
//! and 99th percentiles of the same calls in this one run and writes them to
//! `target/bench/in-process.json`, from which `cargo xtask bench` writes the
//! README's table. The userinfo call is answered by the canned exchange of
//! the example input, so no network time is measured: only instantiation,
//! the plugins and signing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use claimsmith::capabilities::api::ActionEffects;
use claimsmith::capabilities::http::{HttpPolicy, OutboundHttp};
use claimsmith::capabilities::secrets::SecretValue;
use claimsmith::config::Config;
use claimsmith::engine::{
    CallOptions, Engine, EngineSettings, EventAuthorization, EventClient, EventConnection,
    EventRequest, EventUser, FetchContext, Limits, Plugin, PluginSpec, World,
};
use claimsmith::golden::Case;
use claimsmith::pipeline::{Pipeline, RunOptions, standard_profile_claims};
use claimsmith::replay::{CannedHttp, Exchange, RecordedLogin, parse_yaml};
use claimsmith::tokens::{MintRequest, SigningKey, mint};
use criterion::{Criterion, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use serde_json::Map;

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/okta")
        .join(file)
}

/// The example's canned exchanges, each answering any number of requests
/// (as written, each answers one), so every iteration gets its answer.
fn answering_every_time(exchanges: Option<Vec<Exchange>>) -> Vec<Exchange> {
    let mut exchanges = exchanges.unwrap_or_default();
    for exchange in &mut exchanges {
        exchange.optional = true;
        exchange.times = None;
    }
    exchanges
}

/// Action counts measured: one, a typical chain, and Auth0's maximum.
const CHAIN_LENGTHS: [usize; 3] = [1, 5, 20];

/// The example config, with its data in `data` and, when given, `actions`
/// actions alternating geo-claims and roles-claim.
fn pipeline(data: &Path, actions: Option<usize>) -> Pipeline {
    let mut config = Config::load(&example("claimsmith.toml")).expect("the example config");
    config.data_dir = data.to_owned();
    if let Some(count) = actions {
        let seed = config.actions.clone();
        config.actions = seed.iter().cycle().take(count).cloned().collect();
    }
    Pipeline::new(config, OutboundHttp::new().expect("an HTTP client"))
        .expect("the example pipeline (build the plugins with `cargo xtask plugins`)")
}

/// The example config with the demo's polyglot chain: its plugins built in
/// the demo's languages (JavaScript fetcher, Rust geo-claims, Python
/// roles-claim) with the demo's limits, answered by the example's canned
/// userinfo exchange as the seed chain is.
fn polyglot_pipeline(data: &Path) -> Pipeline {
    let mut config = Config::load(&example("claimsmith.toml")).expect("the example config");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/claimsmith.toml");
    let demo = Config::load(&demo).expect("the demo config");
    config.data_dir = data.to_owned();
    for (name, spec) in &mut config.plugins {
        if let Some(demo_spec) = demo.plugins.get(name) {
            spec.path = demo_spec.path.clone();
            spec.limits = demo_spec.limits;
        }
    }
    Pipeline::new(config, OutboundHttp::new().expect("an HTTP client"))
        .expect("the polyglot pipeline (build the plugins with `cargo xtask plugins`)")
}

fn mint_request<'a>(
    scopes: &'a [String],
    profile_claims: &'a Map<String, serde_json::Value>,
    access_claims: &'a Map<String, serde_json::Value>,
    id_claims: &'a Map<String, serde_json::Value>,
) -> MintRequest<'a> {
    MintRequest {
        issuer: "https://login.example.com",
        subject: "okta|00u1ada",
        client_id: "demo-app",
        audience: Some("https://api.example.com"),
        scopes,
        nonce: Some("n-0S6_WzA2Mj"),
        auth_time: 1_795_000_000,
        now: 1_795_000_000,
        access_token_ttl: 3600,
        id_token_ttl: 3600,
        profile_claims,
        access_token_claims: access_claims,
        id_token_claims: id_claims,
        permissions: None,
        authentication: &NO_UPSTREAM_AUTHENTICATION,
    }
}

/// An upstream that sent no `acr` or `amr`, as the example's.
static NO_UPSTREAM_AUTHENTICATION: claimsmith::tokens::UpstreamAuthentication =
    claimsmith::tokens::UpstreamAuthentication {
        acr: None,
        amr: Vec::new(),
    };

fn login_benchmarks(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let data = tempfile::tempdir().expect("a temporary data directory");
    let seed = pipeline(data.path(), None);
    let recorded = RecordedLogin::load(&example("login.json")).expect("the example input");
    let options = RunOptions {
        interceptor: Some(Arc::new(CannedHttp::new(answering_every_time(
            recorded.http.clone(),
        )))),
        ..RunOptions::default()
    };
    let run = |pipeline: &Pipeline| {
        let report = runtime.block_on(pipeline.run(&recorded.login, &options));
        assert!(report.outcome.is_ok(), "{:?}", report.outcome);
    };

    // What the seed chain mints, so that minting alone signs the same claims.
    let key = SigningKey::generate(seed.config().tokens.algorithm).expect("a signing key");
    let profile = serde_json::from_value::<Map<_, _>>(serde_json::json!({
        "name": "Ada Lovelace", "email": "ada@example.com", "email_verified": true
    }))
    .expect("a profile");
    let scopes = recorded.login.scopes.clone();
    let profile_claims = standard_profile_claims(&profile, &scopes);
    let mut access_claims = Map::new();
    access_claims.insert("geo_ip_country".into(), "NZ".into());
    access_claims.insert(
        "https://claimsmith.dev/roles".into(),
        serde_json::json!(["engineering"]),
    );
    let mut id_claims = Map::new();
    id_claims.insert(
        "https://claimsmith.dev/roles".into(),
        serde_json::json!(["engineering"]),
    );
    let mint_only = || {
        mint(
            &key,
            &mint_request(&scopes, &profile_claims, &access_claims, &id_claims),
        )
        .expect("minted")
    };

    let polyglot = polyglot_pipeline(data.path());
    let mut group = c.benchmark_group("login");
    group.bench_function("seed chain + mint", |b| b.iter(|| run(&seed)));
    group.bench_function("mint only", |b| b.iter(mint_only));
    group.bench_function("demo polyglot chain + mint", |b| b.iter(|| run(&polyglot)));
    group.finish();

    let chains: Vec<(usize, Pipeline)> = CHAIN_LENGTHS
        .iter()
        .map(|&length| (length, pipeline(data.path(), Some(length))))
        .collect();
    let mut group = c.benchmark_group("chain");
    for (length, chain) in &chains {
        group.bench_function(format!("{length} actions"), |b| b.iter(|| run(chain)));
    }
    group.finish();

    let mut summary = Summary::load();
    summary.seed_chain = Some(Sampled::of(|| run(&seed)));
    summary.mint_only = Some(Sampled::of(|| {
        mint_only();
    }));
    summary.polyglot_chain = Some(Sampled::of(|| run(&polyglot)));
    summary.chains = chains
        .iter()
        .map(|(length, chain)| (*length, Sampled::of(|| run(chain))))
        .collect();
    summary.save();
}

/// Median and 99th percentile of 2,000 calls after 200 unmeasured ones, in
/// microseconds. Criterion reports means; a login's tail is what users feel.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Sampled {
    median_us: f64,
    p99_us: f64,
}

impl Sampled {
    fn of(mut call: impl FnMut()) -> Sampled {
        for _ in 0..200 {
            call();
        }
        let mut samples: Vec<Duration> = (0..2000)
            .map(|_| {
                let started = Instant::now();
                call();
                started.elapsed()
            })
            .collect();
        samples.sort();
        let micros = |duration: Duration| duration.as_secs_f64() * 1e6;
        Sampled {
            median_us: micros(samples[samples.len() / 2]),
            p99_us: micros(samples[samples.len() * 99 / 100]),
        }
    }
}

/// What `cargo xtask bench` turns into the README's in-process table.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Summary {
    seed_chain: Option<Sampled>,
    mint_only: Option<Sampled>,
    /// The demo's chain: JavaScript fetcher, Rust and Python actions.
    polyglot_chain: Option<Sampled>,
    /// `(actions, figures)`
    chains: Vec<(usize, Sampled)>,
    plugins: Vec<PluginRow>,
    /// The write-up's Action: `auth0-management-geo` and `management-geo`.
    write_up_action: Vec<PluginRow>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PluginRow {
    plugin: String,
    language: String,
    size_bytes: u64,
    compile_ms: f64,
    sampled: Sampled,
}

impl Summary {
    fn path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench/in-process.json")
    }

    /// The summary so far: each benchmark group fills in its part, and a
    /// filtered run (`cargo xtask bench -- plugin`) keeps the others'.
    fn load() -> Summary {
        std::fs::read(Self::path())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn save(&self) {
        let path = Self::path();
        std::fs::create_dir_all(path.parent().expect("target/bench")).expect("target/bench");
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(self).expect("a summary serialises"),
        )
        .expect("the summary is written");
    }
}

const LANGUAGES: [&str; 3] = ["rust", "js", "python"];
const PLUGINS: [&str; 3] = ["okta-userinfo", "geo-claims", "roles-claim"];

/// Each plugin of the example config, loaded from `target/plugins/<language>/`.
struct LanguageBuilds {
    runtime: tokio::runtime::Runtime,
    /// `(plugin name, language, the loaded plugin, size in bytes, compile time)`
    loaded: Vec<(&'static str, &'static str, Plugin, u64, Duration)>,
    options: CallOptions,
    _cache: tempfile::TempDir,
}

/// An engine with its compile cache in a temporary folder, kept alive beside it.
fn bench_engine() -> (Engine, tempfile::TempDir) {
    let cache = tempfile::tempdir().expect("a compile cache");
    let engine = Engine::new(
        &EngineSettings {
            cache_dir: Some(cache.path().to_owned()),
            ..EngineSettings::default()
        },
        OutboundHttp::new().expect("an HTTP client"),
    )
    .expect("an engine");
    (engine, cache)
}

/// Where `cargo xtask plugins` writes its builds, a folder per language.
fn built_plugins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/plugins")
}

/// `spec`'s plugin with its size and compile time. A plugin that is not
/// built stops the run: a table missing a language would read as complete.
fn load_built(engine: &Engine, spec: PluginSpec) -> (Plugin, u64, Duration) {
    let bytes = std::fs::read(&spec.path).unwrap_or_else(|error| {
        panic!(
            "{} is not built ({error}): `cargo xtask plugins` builds every plugin the benchmark measures",
            spec.path.display()
        )
    });
    let compile_time = engine.describe(&bytes).expect("a plugin").compile_time;
    let plugin = engine.load(spec).expect("a plugin");
    (plugin, bytes.len() as u64, compile_time)
}

fn language_builds() -> LanguageBuilds {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let (engine, cache) = bench_engine();
    let config = Config::load(&example("claimsmith.toml")).expect("the example config");
    let mut loaded = Vec::new();
    for plugin in PLUGINS {
        for language in LANGUAGES {
            let mut spec = config.plugins[plugin].clone();
            spec.path = built_plugins()
                .join(language)
                .join(format!("{plugin}.wasm"));
            let (built, size, compile_time) = load_built(&engine, spec);
            loaded.push((plugin, language, built, size, compile_time));
        }
    }
    let recorded = RecordedLogin::load(&example("login.json")).expect("the example input");
    let options = CallOptions {
        interceptor: Some(Arc::new(CannedHttp::new(answering_every_time(
            recorded.http,
        )))),
        ..CallOptions::default()
    };
    LanguageBuilds {
        runtime,
        loaded,
        options,
        _cache: cache,
    }
}

fn fetch_context() -> FetchContext {
    FetchContext {
        connection: "okta".into(),
        access_token: "upstream-access-token-for-ada".into(),
        id_token: String::new(),
        id_token_claims: r#"{"sub":"00u1ada","geoipcountry":"NZ"}"#.into(),
        options: r#"{"userinfo_url":"https://example.okta.com/oauth2/aus1custom/v1/userinfo"}"#
            .into(),
    }
}

fn event() -> claimsmith::engine::Event {
    claimsmith::engine::Event {
        user: EventUser {
            user_id: "okta|00u1ada".into(),
            profile: r#"{"sub":"00u1ada","name":"Ada Lovelace","geo_ip_country":"NZ"}"#.into(),
            user_metadata: "{}".into(),
            app_metadata: "{}".into(),
            logins_count: 1,
            last_login: None,
            created_at: "2026-01-01T00:00:00Z".into(),
        },
        client: EventClient {
            client_id: "demo-app".into(),
            name: "Demo App".into(),
            metadata: "{}".into(),
        },
        connection: EventConnection {
            name: "okta".into(),
            strategy: "oidc".into(),
        },
        request: EventRequest {
            ip: Some("203.0.113.7".into()),
            user_agent: None,
            hostname: None,
            language: None,
            query: "{}".into(),
        },
        scopes: vec!["openid".into()],
        audience: None,
        access_token_claims: "{}".into(),
        id_token_claims: "{}".into(),
        transaction: "{}".into(),
        authentication: r#"{"methods":[]}"#.into(),
        authorization: EventAuthorization { roles: Vec::new() },
    }
}

/// One call of `plugin`, in a fresh instance; panics if it did not succeed.
async fn call(
    plugin: &Plugin,
    context: &FetchContext,
    event: &claimsmith::engine::Event,
    options: &CallOptions,
) {
    if plugin.world() == claimsmith::engine::World::ProfileFetcher {
        let invocation = plugin.fetch_profile(context, options).await;
        assert!(invocation.output.is_ok(), "{:?}", invocation.output);
    } else {
        let invocation = plugin
            .on_execute_post_login(event, ActionEffects::default(), options)
            .await;
        assert!(invocation.output.is_ok(), "{:?}", invocation.output);
    }
}

fn plugin_benchmarks(c: &mut Criterion) {
    let builds = language_builds();
    let context = fetch_context();
    let event = event();
    let mut group = c.benchmark_group("plugin");
    for (plugin, language, loaded, _, _) in &builds.loaded {
        group.bench_function(format!("{plugin}/{language}"), |b| {
            b.to_async(&builds.runtime)
                .iter(|| call(loaded, &context, &event, &builds.options))
        });
    }
    group.finish();

    let mut summary = Summary::load();
    summary.plugins = builds
        .loaded
        .iter()
        .map(|(plugin, language, loaded, size, compile_time)| PluginRow {
            plugin: (*plugin).to_owned(),
            language: (*language).to_owned(),
            size_bytes: *size,
            compile_ms: compile_time.as_secs_f64() * 1e3,
            sampled: Sampled::of(|| {
                builds
                    .runtime
                    .block_on(call(loaded, &context, &event, &builds.options))
            }),
        })
        .collect();
    summary.save();
}

/// The write-up's Action as Auth0 runs it, then ported by hand.
const WRITE_UP_ACTION: [&str; 2] = ["auth0-management-geo", "management-geo"];

/// `plugin`'s JavaScript build with the grants, secrets and canned HTTP of
/// its golden case `reads-the-user.yaml`, and the options that answer it.
fn write_up_build(engine: &Engine, plugin: &str) -> (Plugin, u64, Duration, CallOptions) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins")
        .join(plugin)
        .join("goldens/reads-the-user.yaml");
    let text = std::fs::read_to_string(&file).expect("the golden case");
    let case: Case = parse_yaml(&file, &text).expect("a golden case");
    let secrets = case
        .secrets
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name, SecretValue::new(value)))
        .collect();
    let allowed_origins = case
        .allowed_origins
        .iter()
        .map(|origin| origin.parse().expect("an origin"))
        .collect();
    let spec = PluginSpec {
        name: plugin.to_owned(),
        path: built_plugins().join("js").join(format!("{plugin}.wasm")),
        sha256: None,
        source: claimsmith_config::PluginSource::File,
        version: None,
        world: World::PostLoginAction,
        capture: false,
        limits: Limits::default(),
        secrets,
        http: HttpPolicy {
            allowed_origins,
            ..HttpPolicy::default()
        },
        redirect_origins: Vec::new(),
    };
    let options = CallOptions {
        interceptor: Some(Arc::new(CannedHttp::new(answering_every_time(
            case.input.http().cloned(),
        )))),
        ..CallOptions::default()
    };
    let (built, size, compile_time) = load_built(engine, spec);
    (built, size, compile_time, options)
}

fn write_up_action_benchmarks(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let (engine, _cache) = bench_engine();
    let context = fetch_context();
    let event = event();
    let builds: Vec<_> = WRITE_UP_ACTION
        .iter()
        .map(|plugin| (*plugin, write_up_build(&engine, plugin)))
        .collect();
    let mut group = c.benchmark_group("write-up action");
    for (plugin, (built, _, _, options)) in &builds {
        group.bench_function(*plugin, |b| {
            b.to_async(&runtime)
                .iter(|| call(built, &context, &event, options))
        });
    }
    group.finish();

    let mut summary = Summary::load();
    summary.write_up_action = builds
        .iter()
        .map(|(plugin, (built, size, compile_time, options))| PluginRow {
            plugin: (*plugin).to_owned(),
            language: "js".to_owned(),
            size_bytes: *size,
            compile_ms: compile_time.as_secs_f64() * 1e3,
            sampled: Sampled::of(|| runtime.block_on(call(built, &context, &event, options))),
        })
        .collect();
    summary.save();
}

criterion_group!(
    benches,
    login_benchmarks,
    plugin_benchmarks,
    write_up_action_benchmarks
);
criterion_main!(benches);
