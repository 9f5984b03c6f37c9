//! One login through the seed chain (okta-userinfo + geo-claims + minting),
//! beside minting alone, so the plugins' cost reads as a ratio of the two.
//!
//! Run with `cargo xtask bench` (it builds the plugins first). The userinfo
//! call is answered by the canned exchange of the example input, so no
//! network time is measured: only instantiation, the plugins and signing.

use std::path::Path;
use std::sync::Arc;

use claimsmith::capabilities::http::OutboundHttp;
use claimsmith::config::Config;
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

criterion_group!(benches, login_benchmarks);
criterion_main!(benches);
