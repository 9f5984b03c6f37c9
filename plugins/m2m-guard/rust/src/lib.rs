//! A credentials-exchange action: tags a machine client's access token with
//! the client's name, the scopes it asked for and how many tokens it got
//! from this host (counted in `api.cache`), or denies the token with
//! the OAuth error the client's metadata names in `deny_code` (a suspended
//! client, say). The same action is in `../js` and `../python`.

use claimsmith_sdk::Error;
use claimsmith_sdk::credentials::{Api, DenialCode, Event};

const CLIENT_CLAIM: &str = "https://claimsmith.dev/client";
const ASKED_CLAIM: &str = "https://claimsmith.dev/requested_scopes";
const ISSUED_CLAIM: &str = "https://claimsmith.dev/tokens_issued";

fn on_execute_credentials_exchange(event: &Event, api: &mut Api) -> Result<(), Error> {
    if let Some(code) = event.client.metadata.get("deny_code") {
        let code: DenialCode = code
            .as_str()
            .ok_or("`deny_code` must be a string")?
            .parse()?;
        let reason = format!("client {} is suspended", event.client.client_id);
        api.access().deny(code, &reason);
        return Ok(());
    }
    api.access_token()
        .set_custom_claim(CLIENT_CLAIM, &event.client.name)?;
    api.access_token()
        .set_custom_claim(ASKED_CLAIM, &event.transaction.requested_scopes)?;
    let key = format!("tokens:{}", event.client.client_id);
    let cache = api.cache();
    let counted = cache
        .get(&key)
        .and_then(|entry| entry.value.parse::<u64>().ok());
    let issued = counted.unwrap_or(0) + 1;
    cache
        .set(&key, &issued.to_string(), None, None)
        .map_err(|error| Error::msg(format!("cannot count the token: {error:?}")))?;
    api.access_token().set_custom_claim(ISSUED_CLAIM, &issued)?;
    Ok(())
}

claimsmith_sdk::credentials_exchange!(on_execute_credentials_exchange);
