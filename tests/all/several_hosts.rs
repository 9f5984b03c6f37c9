//! Several `claimsmith` hosts on one PostgreSQL database behind one issuer,
//! as behind a load balancer without sticky sessions: any host serves any
//! step of any login, a code is redeemed at most once across hosts, and a
//! key rotation never leaves a token that a verifier's JWKS cannot check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::service_harness::{
    APP_REDIRECT, Harness, VERIFIER, refresh_token_of, service_config, start_edited_harness, verify,
};
use claimsmith::config::Config;
use claimsmith::oidc::Service;
use claimsmith_testkit::ScratchPostgres;
use jsonwebtoken::jwk::JwkSet;
use reqwest::{StatusCode, Url};
use serde_json::{Map, Value};

const KEY_ENCRYPTION_KEY: &str = "several-hosts-test-key-encryption-key-0123456789";
const WEB_APP: (&str, &str) = ("web-app", "web-app-secret-0123");

/// Host A (the harness, whose address is the issuer) and host B, both on
/// `database`.
pub(crate) struct TwoHosts {
    pub a: Harness,
    pub b_base: String,
    pub b: Arc<Service>,
    _b_dir: tempfile::TempDir,
    pub database: ScratchPostgres,
}

async fn two_hosts(keys_toml: &str) -> TwoHosts {
    two_hosts_edited(keys_toml, "", |config| config).await
}

/// Two hosts whose shared config has `extra_toml` at its end and
/// `server_toml` in `[server]`, each host's config passed through `edit`.
pub(crate) async fn two_hosts_edited(
    extra_toml: &str,
    server_toml: &str,
    edit: impl Fn(String) -> String,
) -> TwoHosts {
    let database = ScratchPostgres::create().await;
    let shared = format!(
        "[storage]\ndatabase_url = {:?}\n[keys]\nencryption_key = {{ value = {:?} }}\n{extra_toml}\n",
        database.url, KEY_ENCRYPTION_KEY
    );
    let a = start_edited_harness(&shared, server_toml, false, |config, _| edit(config)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen = listener.local_addr().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let config = b_dir.path().join("claimsmith.toml");
    let b_toml = service_config(&a.issuer, listen, a.upstream.issuer(), server_toml, &shared);
    std::fs::write(&config, edit(b_toml)).unwrap();
    let b = Service::start(Config::load(&config).unwrap())
        .await
        .unwrap();
    tokio::spawn(claimsmith::oidc::serve(b.clone(), listener));
    TwoHosts {
        a,
        b_base: format!("http://{listen}"),
        b,
        _b_dir: b_dir,
        database,
    }
}

impl TwoHosts {
    pub(crate) fn a_base(&self) -> &str {
        &self.a.issuer
    }

    /// Begins a web-app login at host A; the upstream sends the browser back
    /// to `callback_host`, which finishes it. Returns the code.
    pub(crate) async fn login_finished_at(&self, callback_host: &str) -> String {
        let url = self.a.pkce_authorize_url("web-app", &[]);
        let callback = self.a.callback_url(url).await;
        assert!(callback.as_str().starts_with(self.a_base()), "{callback}");
        let moved = Url::parse(&format!(
            "{callback_host}{}?{}",
            callback.path(),
            callback.query().unwrap_or_default()
        ))
        .unwrap();
        let redirect = self.a.browse(moved, APP_REDIRECT).await;
        redirect
            .get("code")
            .unwrap_or_else(|| panic!("no code: {redirect:?}"))
            .to_owned()
    }

    async fn token_at(
        &self,
        host: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Map<String, Value>) {
        let response = self
            .a
            .http
            .post(format!("{host}/oauth/token"))
            .form(form)
            .basic_auth(WEB_APP.0, Some(WEB_APP.1))
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    pub(crate) async fn redeem_at(
        &self,
        host: &str,
        code: &str,
    ) -> (StatusCode, Map<String, Value>) {
        self.token_at(
            host,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", APP_REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await
    }

    async fn refresh_at(
        &self,
        host: &str,
        refresh_token: &str,
    ) -> (StatusCode, Map<String, Value>) {
        self.token_at(
            host,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    async fn jwks_at(&self, host: &str) -> JwkSet {
        self.a.get_json_from(host, "/.well-known/jwks.json").await
    }

    /// Both tokens of `tokens` verify against `jwks`.
    fn assert_verifies(&self, tokens: &Map<String, Value>, jwks: &JwkSet) {
        let access = verify(
            &tokens["access_token"],
            jwks,
            "https://api.example.com",
            self.a_base(),
        );
        assert_eq!(access["geo_ip_country"], "NZ", "{access:?}");
        verify(&tokens["id_token"], jwks, "web-app", self.a_base());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_host_serves_any_step_of_a_login() {
    let hosts = two_hosts("").await;
    let (a, b) = (hosts.a_base().to_owned(), hosts.b_base.clone());

    // Begun at A, the callback at B (its pending login sealed by A), the
    // code redeemed at A, the refresh at B.
    let code = hosts.login_finished_at(&b).await;
    let (status, exchanged) = hosts.redeem_at(&a, &code).await;
    assert_eq!(status, StatusCode::OK, "{exchanged:?}");
    let (status, refreshed) = hosts.refresh_at(&b, &refresh_token_of(&exchanged)).await;
    assert_eq!(status, StatusCode::OK, "{refreshed:?}");

    // Both hosts publish the same keys, and they verify every token.
    let (jwks_a, jwks_b) = (hosts.jwks_at(&a).await, hosts.jwks_at(&b).await);
    assert_eq!(
        serde_json::to_value(&jwks_a).unwrap(),
        serde_json::to_value(&jwks_b).unwrap()
    );
    for tokens in [&exchanged, &refreshed] {
        hosts.assert_verifies(tokens, &jwks_a);
        hosts.assert_verifies(tokens, &jwks_b);
    }

    // The code replayed at the other host is refused, and revokes what it
    // gave: the refreshed token no longer refreshes, at either host.
    let (status, replayed) = hosts.redeem_at(&b, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{replayed:?}");
    assert_eq!(replayed["error"], "invalid_grant");
    let (status, after_replay) = hosts.refresh_at(&a, &refresh_token_of(&refreshed)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{after_replay:?}");

    // Each host wrote the audit rows of its own steps into the one database.
    let logins = hosts.a.store().recent_logins(10).await.unwrap();
    assert_eq!(logins.len(), 2, "the sign-in (at B) and the refresh (at B)");
    assert!(logins.iter().all(|login| login.chain_version.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_sent_to_a_page_by_one_host_comes_back_to_the_other() {
    let page = "http://127.0.0.1:1/page";
    let redirector = crate::redirect::redirector_config(page, "\"http://127.0.0.1:1\"");
    let hosts = two_hosts(&redirector).await;
    let url = hosts.a.pkce_authorize_url("web-app", &[]);
    let callback = hosts.a.callback_url(url).await;
    let response = hosts.a.http.get(callback).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let sent = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(sent.as_str().starts_with(page), "{sent}");

    // The suspended login is in the database, not in A's memory: B takes
    // the return (the browser's cookie, for 127.0.0.1, goes to both).
    let (back, _) = crate::redirect::continue_from_page(&hosts.b_base, &sent);
    let redirect = hosts.a.browse(back, APP_REDIRECT).await;
    let code = redirect
        .get("code")
        .unwrap_or_else(|| panic!("{redirect:?}"));
    let (status, tokens) = hosts.redeem_at(hosts.a_base(), code).await;
    assert_eq!(status, StatusCode::OK, "{tokens:?}");
    let id = verify(
        &tokens["id_token"],
        &hosts.jwks_at(hosts.a_base()).await,
        "web-app",
        hosts.a_base(),
    );
    assert_eq!(id["continued"]["accepted"], true, "{id:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_code_raced_at_both_hosts_is_redeemed_once() {
    let hosts = two_hosts("").await;
    let (a, b) = (hosts.a_base().to_owned(), hosts.b_base.clone());
    for round in 0..15 {
        let code = hosts.login_finished_at(&a).await;
        let (at_a, at_b) = tokio::join!(hosts.redeem_at(&a, &code), hosts.redeem_at(&b, &code));
        let statuses = [at_a.0, at_b.0];
        let winners = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(winners, 1, "round {round}: {statuses:?} {at_a:?} {at_b:?}");
        let loser = if at_a.0 == StatusCode::OK {
            &at_b
        } else {
            &at_a
        };
        assert_eq!(loser.0, StatusCode::BAD_REQUEST, "round {round}: {loser:?}");
        assert_eq!(loser.1["error"], "invalid_grant", "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_rotation_under_load_fails_no_verification() {
    const MAX_AGE: Duration = Duration::from_secs(1);
    let hosts = two_hosts("jwks_max_age_secs = 1\nreload_secs = 1\n").await;
    let (a, b) = (hosts.a_base().to_owned(), hosts.b_base.clone());
    let cache_control = hosts
        .a
        .http
        .get(format!("{a}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(cache_control, "public, max-age=1");

    // Logins at both hosts and JWKS fetches at both, all along; the
    // rotation, through the CLI, a second in.
    let started = Instant::now();
    let mut snapshots: Vec<(Instant, JwkSet)> = Vec::new();
    let mut tokens: Vec<(Instant, Map<String, Value>)> = Vec::new();
    let mut rotated = false;
    while started.elapsed() < Duration::from_secs(9) {
        if !rotated && started.elapsed() > Duration::from_secs(1) {
            let output = std::process::Command::new(std::path::PathBuf::from(env!(
                "CARGO_BIN_EXE_claimsmith"
            )))
            .args(["keys", "rotate", "--overlap-secs", "3", "--config"])
            .arg(&hosts.a.config)
            .output()
            .unwrap();
            assert!(output.status.success(), "{output:?}");
            rotated = true;
        }
        for host in [&a, &b] {
            snapshots.push((Instant::now(), hosts.jwks_at(host).await));
            let code = hosts.login_finished_at(host).await;
            let (status, exchanged) = hosts.redeem_at(host, &code).await;
            assert_eq!(status, StatusCode::OK, "{exchanged:?}");
            tokens.push((Instant::now(), exchanged));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Two keys signed: the test saw the rotation happen, not around it.
    let kids: std::collections::BTreeSet<String> = tokens
        .iter()
        .map(|(_, tokens)| {
            let token = tokens["access_token"].as_str().unwrap();
            jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
        })
        .collect();
    assert_eq!(kids.len(), 2, "{kids:?}");

    // A verifier whose cached JWKS was still fresh when the token arrived,
    // or that fetched it any time later, verifies it.
    let mut checked = 0;
    for (arrived, tokens) in &tokens {
        for (fetched, jwks) in &snapshots {
            if *fetched + MAX_AGE >= *arrived {
                hosts.assert_verifies(tokens, jwks);
                checked += 1;
            }
        }
    }
    assert!(checked > tokens.len(), "{checked} checks");

    let listed =
        std::process::Command::new(std::path::PathBuf::from(env!("CARGO_BIN_EXE_claimsmith")))
            .args(["keys", "list", "--config"])
            .arg(&hosts.a.config)
            .output()
            .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(" previous "), "{listed}");
    assert!(listed.contains(" current "), "{listed}");
}
