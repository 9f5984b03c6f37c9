//! Test plugin: a post-login action that misbehaves in the way its client's
//! metadata `mode` names, and behaves well (sets the access token claim
//! `hostile_behaved`) for a client without a mode.
//!
//! Exists to prove, through the real service (`tests/all/hostile.rs`), that
//! each hostile behaviour fails its own login with a typed error (or is
//! skipped under `on_error = "continue"`) while logins of other clients,
//! through the same plugin, succeed beside it. Each mode that fails first
//! sets the claim and app metadata `set_before_failing` and the scope
//! `set:before-failing`, so that a skipped step can be seen to leave nothing.
//! Modes:
//!
//! - `loop`: spins forever (fuel, or the wall clock).
//! - `memory`: allocates and touches memory until it cannot (memory cap).
//! - `recursion`: recurses without end (stack overflow: a trap).
//! - `host-calls`: sets a 90 KiB claim again and again, for ever: little fuel,
//!   all the time in the host (the wall clock, through the epoch).
//! - `huge-claim`: sets a 10 MiB custom claim (payload cap).
//! - `claims-over-cap`: sets 4 KiB claims until they pass the payload cap.
//! - `bad-json`: hands the api a value that is not JSON.
//! - `reserved-claim`: sets `sub`.
//! - `panic`: panics (a trap).
//! - `fetch`: GETs the metadata's `url` and follows a redirect by hand, as a
//!   naive client would; on success sets `fetched_status`.
//! - `secret`: asks for the secret the metadata's `secret` names; sets it as
//!   a claim if given, fails saying so if not.
//! - `log-flood`: prints 2 MiB to stdout and 512 KiB to stderr a line at a
//!   time (27,000 lines), logs a 1 MiB message, then behaves well.
//! - `log-flood-aligned`: writes the same 10 MiB to stdout in large writes
//!   (which the WASI adapter hands over in whole 4 KiB pieces), then behaves
//!   well.
//! - `log-calls`: calls `log` 100,000 times, then behaves well.
//! - `sleep`: sleeps through WASI clocks without end (the wall clock).
//! - `resource-flood`: creates 4096 wasi:http `fields` and keeps them all
//!   (host memory outside the memory cap: the resource table's cap), then
//!   behaves.
//! - `fields-flood`: appends 64 KiB of headers to one wasi:http `fields`
//!   (the host's field size limit), then behaves.
//!
//! The two floods stop at four times the host's caps, so that with a cap
//! removed the login succeeds and the test says which cap is gone.
//!
//! Every `api` refusal is returned as the step's error (its `Debug`, which
//! names the kind of refusal); had the host accepted the change, the action
//! returns `Ok` and the login succeeds, which the tests catch.

wit_bindgen::generate!({
    world: "post-login-action",
    path: "../../../../wit",
});

use std::hint::black_box;
use std::io::Write as _;

use claimsmith::plugin::api::{self, Token};
use claimsmith::plugin::http::{self, Request};
use claimsmith::plugin::log::{self, Level};
use claimsmith::plugin::secrets;
use serde_json::Value;
use wasip2::http::types::Fields;

const MIB: usize = 1 << 20;

struct Hostile;

impl Guest for Hostile {
    fn on_execute_post_login(event: Event) -> Result<(), String> {
        let metadata: Value = serde_json::from_str(&event.client.metadata)
            .map_err(|e| format!("client metadata is not valid JSON: {e}"))?;
        let text = |key: &str| {
            metadata
                .get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("client metadata `{key}` is missing"))
        };
        let Ok(mode) = text("mode") else {
            return behave();
        };
        if FAILING_MODES.contains(&mode) {
            // What `on_error = "continue"` must drop with the failed step.
            set_claim("set_before_failing", "true")?;
            api::set_app_metadata("set_before_failing", "true").map_err(|e| format!("{e:?}"))?;
            api::add_scope("set:before-failing").map_err(|e| format!("{e:?}"))?;
        }
        match mode {
            "loop" => spin(),
            "memory" => hog(),
            "recursion" => {
                black_box(recurse(0));
                behave()
            }
            "huge-claim" => set_claim("huge", &quoted(&"x".repeat(10 * MIB))),
            "host-calls" => {
                // Each call makes the host parse and measure 90 KiB of JSON
                // for a few instructions here: the time is the host's.
                let value = quoted(&"h".repeat(90 * 1024));
                loop {
                    set_claim("heavy", &value)?;
                }
            }
            "claims-over-cap" => {
                let value = quoted(&"y".repeat(4096));
                for i in 0..64 {
                    set_claim(&format!("claim_{i}"), &value)?;
                }
                Ok(())
            }
            "bad-json" => set_claim("bad", "{not json"),
            "reserved-claim" => set_claim("sub", "\"attacker\""),
            "panic" => panic!("the hostile plugin panics"),
            "fetch" => fetch(text("url")?),
            "secret" => steal(text("secret")?),
            "log-flood" => {
                // The message first: output after the budget is dropped,
                // `log` calls included.
                log::log(Level::Warn, &"m".repeat(MIB));
                let line = flood_line();
                for _ in 0..2 * MIB / (line.len() + 1) {
                    println!("{line}");
                }
                for _ in 0..MIB / 2 / (line.len() + 1) {
                    eprintln!("{line}");
                }
                behave()
            }
            "log-flood-aligned" => {
                let block = format!("{}\n", flood_line()).repeat(10 * MIB / 97);
                let _ = std::io::stdout().write_all(block.as_bytes());
                let _ = std::io::stdout().flush();
                behave()
            }
            "log-calls" => {
                for i in 0..100_000 {
                    log::log(Level::Warn, &format!("log call {i}"));
                }
                behave()
            }
            "sleep" => loop {
                std::thread::sleep(std::time::Duration::from_millis(20));
            },
            "resource-flood" => {
                let kept: Vec<Fields> = (0..4096).map(|_| Fields::new()).collect();
                black_box(kept);
                behave()
            }
            "fields-flood" => {
                let fields = Fields::new();
                let value = vec![b'v'; 1024];
                for i in 0..64 {
                    fields
                        .append(&format!("x-flood-{i}"), &value)
                        .map_err(|e| format!("append refused: {e:?}"))?;
                }
                behave()
            }
            other => Err(format!("unknown mode `{other}`")),
        }
    }
}

export!(Hostile);

/// The modes that fail their step: each first sets a claim, app metadata
/// and a scope, which a skipped step must not leave behind.
const FAILING_MODES: [&str; 12] = [
    "loop",
    "host-calls",
    "memory",
    "recursion",
    "huge-claim",
    "bad-json",
    "reserved-claim",
    "panic",
    "fetch",
    "sleep",
    "resource-flood",
    "fields-flood",
];

/// What a well-behaved action does: one claim, and `Ok`.
fn behave() -> Result<(), String> {
    set_claim("hostile_behaved", "true")
}

fn set_claim(name: &str, value_json: &str) -> Result<(), String> {
    api::set_custom_claim(Token::AccessToken, name, value_json).map_err(|e| format!("{e:?}"))
}

fn json_string(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// `text` as a JSON string, for text with nothing to escape: cheaper in fuel
/// than serializing 10 MiB character by character.
fn quoted(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    quoted.push_str(text);
    quoted.push('"');
    quoted
}

fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn hog() -> ! {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut buffer = vec![0u8; MIB];
        // Every 4 KiB page written, so the memory is really used.
        for page in buffer.chunks_mut(4096) {
            page[0] = 0xA5;
        }
        kept.push(black_box(buffer));
    }
}

/// Never returns: each frame waits on the next. `black_box` keeps the call
/// out of tail position, so it cannot become a loop.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return depth;
    }
    black_box(recurse(depth + 1)).wrapping_mul(3)
}

fn get(url: &str) -> Result<http::Response, String> {
    let request = Request {
        method: "GET".to_owned(),
        url: url.to_owned(),
        headers: Vec::new(),
        body: None,
    };
    http::fetch(&request).map_err(|e| format!("fetch failed: {e:?}"))
}

fn fetch(url: &str) -> Result<(), String> {
    let mut response = get(url)?;
    let location = response
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("location"))
        .map(|(_, value)| value.clone());
    if let (300..=399, Some(location)) = (response.status, location) {
        response = get(&location)?;
    }
    set_claim("fetched_status", &response.status.to_string())
}

fn steal(name: &str) -> Result<(), String> {
    let own = secrets::secret("own_key").is_some();
    match secrets::secret(name) {
        Some(value) => set_claim("stolen", &json_string(&value)),
        None => Err(format!(
            "secret `{name}` was not given (own secret given: {own})"
        )),
    }
}

/// A 96-byte line of output.
fn flood_line() -> String {
    format!("flood {}", "f".repeat(90))
}
