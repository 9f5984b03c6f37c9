//! A credentials-exchange action: tags a machine client's access token with
//! the client's name and the scopes it asked for, or denies the token with
//! the OAuth error the client's metadata names in `deny_code` (a suspended
//! client, say). The same action is in `../js` and `../python`.

use claimsmith_sdk::Error;
use claimsmith_sdk::credentials::{Api, DenialCode, Event};

const CLIENT_CLAIM: &str = "https://claimsmith.dev/client";
const ASKED_CLAIM: &str = "https://claimsmith.dev/requested_scopes";

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
    Ok(())
}

claimsmith_sdk::credentials_exchange!(on_execute_credentials_exchange);
