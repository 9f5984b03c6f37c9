//! Test plugin: a post-login action that changes things, then traps.
//!
//! Exists to prove that an action skipped after failing
//! (`on_error = "continue"`) leaves nothing behind: its claim, scope and
//! metadata changes are dropped with it.

wit_bindgen::generate!({
    world: "post-login-action",
    path: "../../../../wit",
});

use claimsmith::plugin::api::{self, Token};

struct SetThenTrap;

impl Guest for SetThenTrap {
    fn on_execute_post_login(_event: Event) -> Result<(), String> {
        let _ = api::set_custom_claim(Token::AccessToken, "leaked", "true");
        let _ = api::set_app_metadata("leaked", "true");
        let _ = api::add_scope("leaked:scope");
        panic!("trapping after changing things");
    }
}

export!(SetThenTrap);
