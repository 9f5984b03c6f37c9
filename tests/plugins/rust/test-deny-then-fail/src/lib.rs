//! Test plugin: a post-login action that denies the login, then fails.
//!
//! Exists to prove a denial stands even when the action then returns an
//! error: with `on_error = "continue"`, failing must not turn a "no" into a
//! skipped step.

wit_bindgen::generate!({
    world: "post-login-action",
    path: "../../../../wit",
});

use claimsmith::plugin::api;

struct DenyThenFail;

impl Guest for DenyThenFail {
    fn on_execute_post_login(_event: Event) -> Result<(), String> {
        api::deny("denied before failing");
        Err("and then failed".to_owned())
    }
}

export!(DenyThenFail);
