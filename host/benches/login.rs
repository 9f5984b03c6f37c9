//! One login through the seed chain (okta-userinfo + geo-claims +
//! roles-claim + minting), beside minting alone, so the plugins' cost reads
//! as a ratio of the two; then each plugin alone in every language it is
//! built in (fresh instance + call + teardown), with a table of size,
//! compile time, median and p99 per language.
//!
//! Run with `cargo xtask bench` (it builds the plugins first). The userinfo
//! call is answered by the canned exchange of the example input, so no
//! network time is measured: only instantiation, the plugins and signing.

use std::path::Path;
use std::sync::Arc;

use std::time::{Duration, Instant};

use claimsmith::capabilities::api::ActionEffects;
use claimsmith::capabilities::http::OutboundHttp;
use claimsmith::config::Config;
use claimsmith::engine::{
    CallOptions, Engine, EngineSettings, EventClient, EventConnection, EventRequest, EventUser,
    FetchContext, Plugin,
};
use claimsmith::pipeline::{Pipeline, RunOptions, standard_profile_claims};
use claimsmith::replay::{CannedHttp, RecordedLogin};
use claimsmith::tokens::{MintRequest, SigningKey, mint};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Map;

fn example(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/okta")
        .join(file)
}

fn login_benchmarks(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let data = tempfile::tempdir().expect("a temporary data directory");
    let config = Config::load(&example("claimsmith.toml")).expect("the example config");
    let config = Config {
        data_dir: data.path().to_owned(),
        ..config
    };
    let pipeline = Pipeline::new(config, OutboundHttp::new().expect("an HTTP client"))
        .expect("the example pipeline (build the plugins with `cargo xtask plugins`)");
    let recorded = RecordedLogin::load(&example("login.json")).expect("the example input");
    let options = RunOptions {
        interceptor: Some(Arc::new(CannedHttp::new(
            recorded.http.clone().unwrap_or_default(),
        ))),
        now: None,
    };

    let mut group = c.benchmark_group("login");
    group.bench_function("seed chain + mint", |b| {
        b.to_async(&runtime).iter(|| async {
            let report = pipeline.run(&recorded.login, &options).await;
            assert!(report.outcome.is_ok(), "{:?}", report.outcome);
        })
    });

    let key = SigningKey::generate(pipeline.config().tokens.algorithm).expect("a signing key");
    let profile = serde_json::from_value::<Map<_, _>>(serde_json::json!({
        "name": "Ada Lovelace", "email": "ada@example.com", "email_verified": true
    }))
    .expect("a profile");
    let scopes = recorded.login.scopes.clone();
    let profile_claims = standard_profile_claims(&profile, &scopes);
    let mut access_claims = Map::new();
    access_claims.insert("geo_ip_country".into(), "NZ".into());
    let empty = Map::new();
    group.bench_function("mint only", |b| {
        b.iter(|| {
            mint(
                &key,
                &MintRequest {
                    issuer: "https://login.example.com",
                    subject: "okta|00u1ada",
                    client_id: "demo-app",
                    audience: Some("https://api.example.com"),
                    scopes: &scopes,
                    nonce: Some("n-0S6_WzA2Mj"),
                    auth_time: 1_795_000_000,
                    now: 1_795_000_000,
                    access_token_ttl: 3600,
                    id_token_ttl: 3600,
                    profile_claims: &profile_claims,
                    access_token_claims: &access_claims,
                    id_token_claims: &empty,
                },
            )
            .expect("minted")
        })
    });
    group.finish();
}

const LANGUAGES: [&str; 3] = ["rust", "js", "python"];
const PLUGINS: [&str; 2] = ["geo-claims", "okta-userinfo"];

/// Each plugin of the example config, loaded from `target/plugins/<language>/`.
struct LanguageBuilds {
    runtime: tokio::runtime::Runtime,
    /// `(plugin name, language, the loaded plugin, size in bytes, compile time)`
    loaded: Vec<(&'static str, &'static str, Plugin, u64, Duration)>,
    options: CallOptions,
    _cache: tempfile::TempDir,
}

fn language_builds() -> LanguageBuilds {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let cache = tempfile::tempdir().expect("a compile cache");
    let engine = Engine::new(
        &EngineSettings {
            cache_dir: Some(cache.path().to_owned()),
            ..EngineSettings::default()
        },
        OutboundHttp::new().expect("an HTTP client"),
    )
    .expect("an engine");
    let config = Config::load(&example("claimsmith.toml")).expect("the example config");
    let builds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins");
    let mut loaded = Vec::new();
    for plugin in PLUGINS {
        for language in LANGUAGES {
            let mut spec = config.plugins[plugin].clone();
            spec.path = builds.join(language).join(format!("{plugin}.wasm"));
            let Ok(bytes) = std::fs::read(&spec.path) else {
                eprintln!(
                    "skipping {plugin} ({language}): {} is not built",
                    spec.path.display()
                );
                continue;
            };
            let compile_time = engine.describe(&bytes).expect("a plugin").compile_time;
            let size = bytes.len() as u64;
            loaded.push((
                plugin,
                language,
                engine.load(spec).expect("a plugin"),
                size,
                compile_time,
            ));
        }
    }
    let recorded = RecordedLogin::load(&example("login.json")).expect("the example input");
    let options = CallOptions {
        interceptor: Some(Arc::new(CannedHttp::new(recorded.http.unwrap_or_default()))),
        pinned_clock: None,
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
        },
        scopes: vec!["openid".into()],
        audience: None,
        access_token_claims: "{}".into(),
        id_token_claims: "{}".into(),
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

    // Criterion reports means; a login's tail is what users feel: the same
    // calls again, one at a time, for the median and the 99th percentile.
    println!("\n| plugin | language | size | compile | median | p99 |");
    println!("|---|---|---:|---:|---:|---:|");
    for (plugin, language, loaded, size, compile_time) in &builds.loaded {
        let mut samples: Vec<Duration> = (0..1000)
            .map(|_| {
                let started = Instant::now();
                builds
                    .runtime
                    .block_on(call(loaded, &context, &event, &builds.options));
                started.elapsed()
            })
            .collect();
        samples.sort();
        println!(
            "| {plugin} | {language} | {:.1} MiB | {:.2} s | {:.0} µs | {:.0} µs |",
            *size as f64 / (1024.0 * 1024.0),
            compile_time.as_secs_f64(),
            samples[samples.len() / 2].as_secs_f64() * 1e6,
            samples[samples.len() * 99 / 100].as_secs_f64() * 1e6,
        );
    }
}

criterion_group!(benches, login_benchmarks, plugin_benchmarks);
criterion_main!(benches);
