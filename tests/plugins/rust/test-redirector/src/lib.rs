//! Test plugin: a post-login action written against the raw WIT world
//! `resumable-post-login-action`, that sends every sign-in to the page its
//! secret `PAGE` names and, back at `/continue`, puts the claims of the
//! page's `session_token` (checked with the secret `TOKEN_SECRET`) in the id
//! token.
//!
//! Exists to prove what the contract promises without an SDK in between: a
//! refusal reaches the action as a value it can see (a refresh's, recorded
//! in the access token's `redirect_refused` claim), a continue runs the
//! export `on-continue-post-login` with the continue request's parameters,
//! and a token that does not validate fails the login.

wit_bindgen::generate!({
    world: "resumable-post-login-action",
    path: "../../../../wit",
});

use claimsmith::plugin::{api, redirect, secrets};

struct Redirector;

fn secret(name: &str) -> Result<String, String> {
    secrets::secret(name).ok_or_else(|| format!("the secret `{name}` is not set"))
}

impl Guest for Redirector {
    fn on_execute_post_login(_event: Event) -> Result<(), String> {
        let page = secret("PAGE")?;
        if let Err(refused) = redirect::send_user_to(&page, &[("from".into(), "test".into())]) {
            let refused = serde_json::Value::String(format!("{refused:?}")).to_string();
            api::set_custom_claim(api::Token::AccessToken, "redirect_refused", &refused)
                .map_err(|e| format!("{e:?}"))?;
        }
        Ok(())
    }

    fn on_continue_post_login(event: Event) -> Result<(), String> {
        let claims = redirect::validate_token(&secret("TOKEN_SECRET")?, "session_token")
            .map_err(|e| format!("the page's token: {e:?}"))?;
        api::set_custom_claim(api::Token::IdToken, "continued", &claims)
            .map_err(|e| format!("{e:?}"))?;
        api::set_custom_claim(api::Token::IdToken, "continue_query", &event.request.query)
            .map_err(|e| format!("{e:?}"))
    }
}

export!(Redirector);
