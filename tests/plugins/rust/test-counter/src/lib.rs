//! Test plugin: a post-login action that counts its calls in a static and
//! sets the access token claim `calls` to the count.
//!
//! Exists to prove every invocation gets a fresh instance: the static starts
//! at 0 each time, so `calls` must be 1 on every login. Anything larger means
//! the host reused an instance (and state leaked between logins).

wit_bindgen::generate!({
    world: "post-login-action",
    path: "../../../../wit",
});

use claimsmith::plugin::api::{self, Token};
use std::sync::atomic::{AtomicU32, Ordering};

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Counter;

impl Guest for Counter {
    fn on_execute_post_login(_event: Event) -> Result<(), String> {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        let value = serde_json::to_string(&calls).map_err(|e| e.to_string())?;
        api::set_custom_claim(Token::AccessToken, "calls", &value)
            .map_err(|e| format!("cannot set the claim `calls`: {e:?}"))
    }
}

export!(Counter);
