//! The load driver of `cargo xtask bench`: complete OpenID Connect logins
//! over HTTP, as a browser and an app do them, at a given concurrency for a
//! given time.
//!
//! Each login is the whole authorization code flow with PKCE: `GET` the
//! authorization endpoint, follow every redirect with one cookie jar per
//! login (through the upstream provider and back, or through the provider's
//! interaction), read the code from the redirect to the app, and redeem it
//! at the token endpoint with HTTP Basic client authentication. A login only
//! counts when the access token carries the claims the plugins (or the
//! peer's claims hook) add, so a broken chain cannot post a fast figure.
//!
//! It drives any provider that signs its user in without a form (Claimsmith
//! with its development upstream, or the node-oidc-provider peer of
//! `bench/peer/`), and it is written in Rust on one thread because a
//! JavaScript driver spends as much CPU as the server on a 2-core machine,
//! capping what can be measured. It only ever talks to the addresses it is
//! given; `cargo xtask bench` gives it loopback ones.

pub mod report;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use claimsmith_oauth::{pkce_challenge, random_token};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(clap::Parser, Debug)]
#[command(name = "claimsmith-load drive")]
pub struct DriveArgs {
    /// The provider's issuer; its discovery document gives the endpoints.
    #[arg(long)]
    pub issuer: Url,
    #[arg(long)]
    pub client_id: String,
    #[arg(long)]
    pub client_secret: String,
    /// Registered for the client; the driver reads the code from the
    /// redirect to it and never follows it.
    #[arg(long)]
    pub redirect_uri: String,
    #[arg(long, default_value = "openid profile email")]
    pub scope: String,
    /// Logins in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds of logins run first and not counted.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// A claim every access token must carry for the login to count.
    #[arg(long = "expect-claim")]
    pub expected_claims: Vec<String>,
    /// The server's process, for its CPU time per login and its memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Names the run in the report.
    #[arg(long, default_value = "provider")]
    pub label: String,
    /// When the server process was started (Unix milliseconds): the driver
    /// waits for its discovery document and reports how long it took.
    #[arg(long)]
    pub server_started_unix_ms: Option<u128>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What one run measured.
#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub label: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub logins: usize,
    pub errors: usize,
    /// The first error of each kind, with how often it happened.
    pub error_kinds: BTreeMap<String, usize>,
    pub logins_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Server CPU (user + system) over the measured window, per login.
    pub server_cpu_ms_per_login: Option<f64>,
    /// The server's resident memory at the end, and its peak.
    pub server_rss_mib: Option<f64>,
    pub server_peak_rss_mib: Option<f64>,
    /// From the server's start to its first answer.
    pub ready_after_ms: Option<f64>,
}

#[derive(Clone)]
struct Endpoints {
    authorization: Url,
    token: Url,
}

/// How long one login took, and the error it ended in, if any.
type LoginOutcome = (Duration, Result<(), String>);

/// Drives logins as `args` say, for their warm-up and duration.
pub async fn drive(args: &DriveArgs) -> Result<Report> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(args.concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let ready_after_ms = match args.server_started_unix_ms {
        Some(started) => Some(wait_until_ready(&http, &args.issuer, started).await?),
        None => None,
    };
    let endpoints = discover(&http, &args.issuer).await?;

    let started = Instant::now();
    let window_start = started + Duration::from_secs(args.warmup);
    let window_end = window_start + Duration::from_secs(args.duration);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        workers.spawn(run_logins(
            LoginParams::from(args),
            http.clone(),
            endpoints.clone(),
            window_start..window_end,
        ));
    }

    tokio::time::sleep_until(window_start.into()).await;
    let cpu_before = args.server_pid.map(process_cpu).transpose()?;
    tokio::time::sleep_until(window_end.into()).await;
    let cpu_after = args.server_pid.map(process_cpu).transpose()?;
    let memory = args.server_pid.map(process_memory).transpose()?;

    let (mut latencies, error_kinds) = collect_outcomes(workers).await?;
    latencies.sort();
    let seconds = args.duration as f64;
    let logins = latencies.len();
    let percentile = |p: usize| {
        latencies
            .get((logins * p / 100).min(logins.saturating_sub(1)))
            .map_or(0.0, |latency| latency.as_secs_f64() * 1e3)
    };
    Ok(Report {
        label: args.label.clone(),
        concurrency: args.concurrency,
        seconds,
        logins,
        errors: error_kinds.values().sum(),
        error_kinds,
        logins_per_sec: logins as f64 / seconds,
        p50_ms: percentile(50),
        p99_ms: percentile(99),
        server_cpu_ms_per_login: cpu_before
            .zip(cpu_after)
            .filter(|_| logins > 0)
            .map(|(before, after)| (after - before).as_secs_f64() * 1e3 / logins as f64),
        server_rss_mib: memory.map(|(rss, _)| rss),
        server_peak_rss_mib: memory.map(|(_, peak)| peak),
        ready_after_ms,
    })
}

/// One worker: logins back to back until `window` ends, keeping those that
/// began and finished inside it.
async fn run_logins(
    login: LoginParams,
    http: reqwest::Client,
    endpoints: Endpoints,
    window: Range<Instant>,
) -> Vec<LoginOutcome> {
    let mut outcomes = Vec::new();
    while Instant::now() < window.end {
        let begun = Instant::now();
        let outcome = login
            .run(&http, &endpoints)
            .await
            .map_err(|e| format!("{e:#}"));
        let finished = Instant::now();
        if begun >= window.start && finished <= window.end {
            outcomes.push((finished - begun, outcome));
        }
    }
    outcomes
}

/// Waits for every worker; returns the latencies of the logins that
/// succeeded and how often each error happened.
async fn collect_outcomes(
    mut workers: tokio::task::JoinSet<Vec<LoginOutcome>>,
) -> Result<(Vec<Duration>, BTreeMap<String, usize>)> {
    let mut latencies = Vec::new();
    let mut error_kinds = BTreeMap::new();
    while let Some(outcomes) = workers.join_next().await {
        for (latency, outcome) in outcomes.context("a driver task panicked")? {
            match outcome {
                Ok(()) => latencies.push(latency),
                Err(error) => *error_kinds.entry(error).or_insert(0) += 1,
            }
        }
    }
    Ok((latencies, error_kinds))
}

/// Polls the discovery document until it answers; returns the milliseconds
/// since `started` (Unix milliseconds) at that moment.
async fn wait_until_ready(http: &reqwest::Client, issuer: &Url, started: u128) -> Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = discovery_url(issuer);
    loop {
        let answered = http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if answered {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("the clock is before 1970")?
                .as_micros();
            return Ok((now.saturating_sub(started * 1000)) as f64 / 1e3);
        }
        ensure!(
            Instant::now() < deadline,
            "{url} did not answer within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn discovery_url(issuer: &Url) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.as_str().trim_end_matches('/')
    )
}

async fn discover(http: &reqwest::Client, issuer: &Url) -> Result<Endpoints> {
    let url = discovery_url(issuer);
    let document: Value = http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("cannot read {url}"))?
        .json()
        .await
        .with_context(|| format!("{url} is not JSON"))?;
    let endpoint = |name: &str| -> Result<Url> {
        let value = document[name]
            .as_str()
            .with_context(|| format!("{url} has no {name}"))?;
        Url::parse(value).with_context(|| format!("{name} {value:?} is not a URL"))
    };
    Ok(Endpoints {
        authorization: endpoint("authorization_endpoint")?,
        token: endpoint("token_endpoint")?,
    })
}

/// What every login of a run shares.
#[derive(Clone)]
struct LoginParams {
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    scope: String,
    expected_claims: Vec<String>,
}

impl From<&DriveArgs> for LoginParams {
    fn from(args: &DriveArgs) -> Self {
        LoginParams {
            client_id: args.client_id.clone(),
            client_secret: args.client_secret.clone(),
            redirect_uri: args.redirect_uri.clone(),
            scope: args.scope.clone(),
            expected_claims: args.expected_claims.clone(),
        }
    }
}

/// Redirects a login may take before it reaches the app; a loop is an error.
const MAX_REDIRECTS: usize = 10;

impl LoginParams {
    async fn run(&self, http: &reqwest::Client, endpoints: &Endpoints) -> Result<()> {
        let verifier = random_token();
        let challenge = pkce_challenge(&verifier);
        let state = random_token();
        let url = self.authorization_url(&endpoints.authorization, &challenge, &state);
        let code = self.follow_redirects_to_code(http, url, &state).await?;
        self.redeem_code(http, &endpoints.token, &code, &verifier)
            .await
    }

    /// The authorization request that starts a login.
    fn authorization_url(&self, authorization_endpoint: &Url, challenge: &str, state: &str) -> Url {
        let mut url = authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scope)
            .append_pair("state", state)
            .append_pair("nonce", &random_token())
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        url
    }

    /// Follows the login's redirects, as its browser, from `url` to the app;
    /// returns the code the app got.
    async fn follow_redirects_to_code(
        &self,
        http: &reqwest::Client,
        mut url: Url,
        state: &str,
    ) -> Result<String> {
        let mut jar = CookieJar::default();
        let mut redirects = 0;
        loop {
            let mut request = http.get(url.clone());
            if let Some(cookies) = jar.header() {
                request = request.header(COOKIE, cookies);
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("GET {}", without_query(&url)))?;
            jar.store(&response);
            let status = response.status();
            ensure!(
                status.is_redirection(),
                "GET {} answered {status} where a redirect was due",
                without_query(&url)
            );
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .context("a redirect without a Location")?;
            url = url
                .join(location)
                .with_context(|| format!("bad Location {location:?}"))?;
            if url.as_str().starts_with(&self.redirect_uri) {
                let parameter = |name: &str| {
                    url.query_pairs()
                        .find(|(key, _)| key == name)
                        .map(|(_, value)| value.into_owned())
                };
                if let Some(error) = parameter("error") {
                    bail!("the app got error {error}");
                }
                ensure!(
                    parameter("state").as_deref() == Some(state),
                    "the app got another state"
                );
                return parameter("code").context("the app got no code");
            }
            redirects += 1;
            ensure!(
                redirects <= MAX_REDIRECTS,
                "more than {MAX_REDIRECTS} redirects"
            );
        }
    }

    /// Redeems `code` as the app does, and checks the access token carries
    /// the expected claims.
    async fn redeem_code(
        &self,
        http: &reqwest::Client,
        token_endpoint: &Url,
        code: &str,
        verifier: &str,
    ) -> Result<()> {
        let response = http
            .post(token_endpoint.clone())
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .context("POST token")?;
        let status = response.status();
        ensure!(
            status == StatusCode::OK,
            "the token endpoint answered {status}"
        );
        let tokens: Value = response.json().await.context("a token response not JSON")?;
        let access_token = tokens["access_token"].as_str().context("no access_token")?;
        ensure!(tokens["id_token"].is_string(), "no id_token");
        let claims = jwt_payload(access_token).context("the access token is not a JWT")?;
        for claim in &self.expected_claims {
            ensure!(
                claims.get(claim).is_some(),
                "the access token lacks {claim}"
            );
        }
        Ok(())
    }
}

/// A browser's cookies for one login. Every address is loopback and every
/// path is the provider's, so each cookie goes with every request, as one
/// browser on one host would send them across ports.
#[derive(Default)]
struct CookieJar(BTreeMap<String, String>);

impl CookieJar {
    fn store(&mut self, response: &reqwest::Response) {
        for header in response.headers().get_all(SET_COOKIE) {
            if let Ok(header) = header.to_str() {
                self.store_header(header);
            }
        }
    }

    fn store_header(&mut self, header: &str) {
        let pair = header.split(';').next().unwrap_or_default();
        let Some((name, value)) = pair.split_once('=') else {
            return;
        };
        let expired = header
            .split(';')
            .any(|attribute| attribute.trim().eq_ignore_ascii_case("max-age=0"));
        if value.is_empty() || expired {
            self.0.remove(name.trim());
        } else {
            self.0.insert(name.trim().to_owned(), value.to_owned());
        }
    }

    fn header(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

fn jwt_payload(token: &str) -> Option<serde_json::Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

fn without_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// The value of `key` (`VmRSS:`, `MemTotal:`) in a /proc file that gives
/// sizes as `<number> kB`.
fn kib_field(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User plus system CPU time the process has used so far.
fn process_cpu(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // Fields after the command name, which ends at the last ')': state is the
    // first, utime the 12th and stime the 13th (proc(5) numbers them 14, 15).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| -> Result<u64> {
        fields
            .get(index)
            .and_then(|field| field.parse().ok())
            .with_context(|| format!("{path} has no field {}", index + 3))
    };
    // SAFETY: sysconf only reads a constant of the running system.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ensure!(ticks_per_second > 0, "sysconf(_SC_CLK_TCK) failed");
    Ok(Duration::from_secs_f64(
        (ticks(11)? + ticks(12)?) as f64 / ticks_per_second as f64,
    ))
}

/// The process's resident memory now and at its peak, in MiB.
fn process_memory(pid: u32) -> Result<(f64, f64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let kib = |key: &str| -> Result<f64> {
        kib_field(&status, key).with_context(|| format!("{path} has no {key}"))
    };
    Ok((kib("VmRSS:")? / 1024.0, kib("VmHWM:")? / 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_jar_keeps_the_latest_value_and_forgets_cleared_cookies() {
        let mut jar = CookieJar::default();
        jar.store_header("a=1; Path=/; HttpOnly");
        jar.store_header("b=2");
        jar.store_header("a=3");
        assert_eq!(jar.header().as_deref(), Some("a=3; b=2"));
        jar.store_header("a=; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
        jar.store_header("b=2; Max-Age=0");
        assert_eq!(jar.header(), None);
    }

    #[test]
    fn only_a_jwt_has_a_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"geo_ip_country":"NZ"}"#);
        let claims = jwt_payload(&format!("e30.{payload}.c2ln")).expect("a JWT");
        assert_eq!(claims["geo_ip_country"], "NZ");
        assert!(jwt_payload("opaque-token").is_none());
        assert!(jwt_payload("a.bm90IGpzb24.c").is_none());
    }
}
