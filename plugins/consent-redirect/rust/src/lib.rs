//! Sends a user who has not consented to the page in the `PAGE` secret,
//! with a session token (HS256 with the `SECRET` secret) naming the purpose;
//! back at /continue, keeps the page's answer in app metadata and the id
//! token. The same action is in `../js` and `../python`.

use claimsmith_sdk::Error;
use claimsmith_sdk::action::{Api, Event};
use serde_json::json;

fn secret(name: &str) -> Result<String, Error> {
    claimsmith_sdk::secret(name)
        .ok_or_else(|| Error::msg(format!("the secret `{name}` is not set")))
}

fn on_execute_post_login(event: &Event, api: &mut Api) -> Result<(), Error> {
    if event.user.app_metadata.get("consent") == Some(&json!("given")) {
        return Ok(());
    }
    let redirect = api.redirect();
    let token =
        redirect.encode_token(&secret("SECRET")?, &json!({"purpose": "newsletter"}), 300)?;
    redirect.send_user_to(
        &secret("PAGE")?,
        &[("session_token", &token), ("lang", "en")],
    )
}

fn on_continue_post_login(_event: &Event, api: &mut Api) -> Result<(), Error> {
    let answer = api
        .redirect()
        .validate_token(&secret("SECRET")?, "session_token")?;
    let consent = answer.get("consent").cloned().unwrap_or_default();
    api.user().set_app_metadata("consent", &consent)?;
    api.id_token()
        .set_custom_claim("https://example.com/consent", &consent)
}

claimsmith_sdk::post_login_action!(on_execute_post_login, on_continue_post_login);
