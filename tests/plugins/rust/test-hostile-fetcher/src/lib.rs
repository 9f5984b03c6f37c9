//! Test plugin: a profile fetcher that misbehaves in the way its
//! connection's options `mode` names, and returns the id token's claims as
//! the profile for a connection without a mode.
//!
//! Exists to prove, through the real service (`tests/all/hostile.rs`), that
//! a hostile profile fails its own login with a typed error naming the
//! fetcher. Modes:
//!
//! - `huge-profile`: a 100 MB profile (`{"blob": "xxx…"}`).
//! - `not-object`: a profile that is valid JSON but not an object.

// wit-bindgen 0.61.1 emits the world-level export shim without a clippy allow,
// and `fetch-context` (five strings) flattens to ten ABI parameters.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({
        world: "profile-fetcher",
        path: "../../../../wit",
    });
}

use bindings::{FetchContext, Guest, Json};
use serde_json::Value;

struct HostileFetcher;

impl Guest for HostileFetcher {
    fn fetch_profile(ctx: FetchContext) -> Result<Json, String> {
        let options: Value = serde_json::from_str(&ctx.options)
            .map_err(|e| format!("connection options are not valid JSON: {e}"))?;
        match options.get("mode").and_then(Value::as_str) {
            None => Ok(ctx.id_token_claims),
            Some("huge-profile") => {
                let blob = "x".repeat(100_000_000);
                Ok(format!("{{\"blob\":\"{blob}\"}}"))
            }
            Some("not-object") => Ok("[\"not\", \"an\", \"object\"]".to_owned()),
            Some(other) => Err(format!("unknown mode `{other}`")),
        }
    }
}

bindings::export!(HostileFetcher with_types_in bindings);
