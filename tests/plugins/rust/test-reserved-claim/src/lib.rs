//! Test plugin: a post-login action that tries to overwrite the reserved
//! access token claim `sub`.
//!
//! Exists to prove the host refuses reserved claims: the `api-error` it gets
//! back is returned as the step's error (its `Debug`, which names the claim).
//! Should the host accept the claim, the action returns `Ok` and the test
//! sees `sub` = `"attacker"` in the token.

wit_bindgen::generate!({
    world: "post-login-action",
    path: "../../../../wit",
});

use claimsmith::plugin::api::{self, Token};

struct ReservedClaim;

impl Guest for ReservedClaim {
    fn on_execute_post_login(_event: Event) -> Result<(), String> {
        api::set_custom_claim(Token::AccessToken, "sub", "\"attacker\"")
            .map_err(|e| format!("{e:?}"))
    }
}

export!(ReservedClaim);
