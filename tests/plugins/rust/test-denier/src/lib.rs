//! Test plugin: a post-login action that denies every login.
//!
//! Exists to prove `api::deny` stops the chain once the action returns, that
//! no token is minted, and that the reason (which names the user) reaches
//! the caller.

wit_bindgen::generate!({
    world: "post-login-action",
    path: "../../../../wit",
});

use claimsmith::plugin::api;

struct Denier;

impl Guest for Denier {
    fn on_execute_post_login(event: Event) -> Result<(), String> {
        api::deny(&format!("account locked: {}", event.user.user_id));
        Ok(())
    }
}

export!(Denier);
