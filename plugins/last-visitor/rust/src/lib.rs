//! Puts the previous visitor (kept in `api.cache` by the previous login) in
//! the access token, then keeps this user for the next one; a key over 64
//! bytes is refused. The claims' names start with the `prefix` secret. The
//! same action is in `../js` and `../python`.

use claimsmith_sdk::Error;
use claimsmith_sdk::action::{Api, CacheError, Event};
use serde_json::Value;

fn on_execute_post_login(event: &Event, api: &mut Api) -> Result<(), Error> {
    let prefix = claimsmith_sdk::secret("prefix").unwrap_or_else(|| "https://example.com/".into());
    let cache = api.cache();
    let previous = cache
        .get("last_visitor")
        .map(|entry| Value::from(entry.value));
    let stored = cache.set("last_visitor", &event.user.user_id, Some(60_000), None);
    let too_long = cache.set(&"k".repeat(65), "v", None, None);
    let token = api.access_token();
    token.set_custom_claim(
        &format!("{prefix}previous_visitor"),
        &previous.unwrap_or(Value::Null),
    )?;
    token.set_custom_claim(
        &format!("{prefix}cache_write"),
        &if stored.is_ok() { "success" } else { "error" },
    )?;
    let code = match too_long {
        Err(CacheError::InvalidKey) => "invalid-key",
        Err(_) => "other",
        Ok(_) => "stored",
    };
    token.set_custom_claim(&format!("{prefix}long_key"), &code)?;
    Ok(())
}

claimsmith_sdk::post_login_action!(on_execute_post_login);
