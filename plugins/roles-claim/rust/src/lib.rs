//! Maps the profile's upstream `groups`, then the roles the user holds in
//! Claimsmith (`event.authorization.roles`) that are not among them, to the
//! namespaced claim `https://claimsmith.dev/roles` on both tokens. A user
//! with neither is denied when the client's metadata says
//! `require_group = true`. The same action is in `../js` and `../python`.

use claimsmith_sdk::Error;
use claimsmith_sdk::action::{Api, Event};
use serde_json::Value;

const ROLES_CLAIM: &str = "https://claimsmith.dev/roles";

fn on_execute_post_login(event: &Event, api: &mut Api) -> Result<(), Error> {
    let mut roles: Vec<&str> = match event.user.profile.get("groups") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(groups)) => groups
            .iter()
            .map(|group| group.as_str().ok_or("`groups` must hold only strings"))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("`groups` must be a list of strings".into()),
    };
    for role in &event.authorization.roles {
        if !roles.contains(&role.as_str()) {
            roles.push(role);
        }
    }
    let require_group = event.client.metadata.get("require_group") == Some(&Value::Bool(true));
    if roles.is_empty() && require_group {
        api.access()
            .deny("a group membership is required to sign in to this app");
        return Ok(());
    }
    api.access_token().set_custom_claim(ROLES_CLAIM, &roles)?;
    api.id_token().set_custom_claim(ROLES_CLAIM, &roles)?;
    Ok(())
}

claimsmith_sdk::post_login_action!(on_execute_post_login);
