//! Test plugin: a post-login action that echoes what it sees and uses every
//! kind of change an action may make.
//!
//! Exists to prove what an action sees (the whole event, in the access token
//! claim `seen_event`), that it gets its own secrets and only those
//! (`has_api_key` / `has_undeclared` id token claims), that metadata changes
//! are stored (`echo_seen` in user metadata, `echo_count` in app metadata,
//! one more on every login), that scopes can be added (`echo:read`), that
//! its log, stdout and stderr lines reach the host's logs (control
//! characters escaped), and which wall clock it reads (`clock`, unix
//! seconds: pinned by golden cases' `now`).

wit_bindgen::generate!({
    world: "post-login-action",
    path: "../../../../wit",
});

use claimsmith::plugin::api::{self, Token};
use claimsmith::plugin::log::{self, Level};
use claimsmith::plugin::secrets;
use serde_json::{Value, json};

struct Echo;

impl Guest for Echo {
    fn on_execute_post_login(event: Event) -> Result<(), String> {
        log::log(Level::Info, "echo ran");
        println!("echo stdout line");
        eprintln!("echo stderr line");
        // An ANSI colour, a carriage return back over the line's prefix to
        // forge another log line, and a bell: the host must log it escaped.
        println!("echo hostile line \x1b[31mred\r2026-01-01T00:00:00Z ERROR forged\x07");

        let app_metadata = parse("user.app_metadata", &event.user.app_metadata)?;
        let seen = json!({
            "user": {
                "user_id": event.user.user_id,
                "profile": parse("user.profile", &event.user.profile)?,
                "user_metadata": parse("user.user_metadata", &event.user.user_metadata)?,
                "app_metadata": app_metadata.clone(),
                "logins_count": event.user.logins_count,
                "last_login": event.user.last_login,
            },
            "client": {
                "client_id": event.client.client_id,
                "name": event.client.name,
                "metadata": parse("client.metadata", &event.client.metadata)?,
            },
            "connection": {
                "name": event.connection.name,
                "strategy": event.connection.strategy,
            },
            "request": {
                "ip": event.request.ip,
                "user_agent": event.request.user_agent,
            },
            "scopes": event.scopes,
            "audience": event.audience,
            "authentication": parse("authentication", &event.authentication)?,
            "access_token_claims": parse("access_token_claims", &event.access_token_claims)?,
            "id_token_claims": parse("id_token_claims", &event.id_token_claims)?,
        });
        set_claim(Token::AccessToken, "seen_event", &seen)?;
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| format!("the clock is before 1970: {e}"))?
            .as_secs();
        set_claim(Token::AccessToken, "clock", &json!(clock))?;

        let has_api_key = secrets::secret("api_key").is_some();
        let has_undeclared = secrets::secret("undeclared").is_some();
        set_claim(Token::IdToken, "has_api_key", &Value::Bool(has_api_key))?;
        set_claim(
            Token::IdToken,
            "has_undeclared",
            &Value::Bool(has_undeclared),
        )?;

        api::set_user_metadata("echo_seen", &to_json(&Value::Bool(true))?)
            .map_err(|e| format!("cannot set user metadata `echo_seen`: {e:?}"))?;
        let echo_count = app_metadata
            .get("echo_count")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            + 1;
        api::set_app_metadata("echo_count", &to_json(&json!(echo_count))?)
            .map_err(|e| format!("cannot set app metadata `echo_count`: {e:?}"))?;

        api::add_scope("echo:read").map_err(|e| format!("cannot add scope `echo:read`: {e:?}"))
    }
}

export!(Echo);

/// Parses one of the event's JSON texts; `what` names it in the error.
fn parse(what: &str, text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("event {what} is not valid JSON: {e}"))
}

fn to_json(value: &Value) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| format!("cannot serialize {value}: {e}"))
}

fn set_claim(token: Token, name: &str, value: &Value) -> Result<(), String> {
    api::set_custom_claim(token, name, &to_json(value)?)
        .map_err(|e| format!("cannot set the {token:?} claim `{name}`: {e:?}"))
}
