//! Roles in logins, through the real service: the roles the Management API
//! assigns and those the connection's `roles_from` takes from the
//! upstream reach `event.authorization.roles` on sign-ins and refreshes,
//! where Auth0's documented Action copies them into the tokens unchanged.

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::management::{OPS, USER, api, machine_clients, machine_token};
use crate::support::service_harness::{Harness, refresh_token_of, start_edited_harness, verify};

/// The claim Auth0's example Action (examples/auth0/auth0-roles) sets.
const ROLES: &str = "https://my-app.example.com/roles";

/// The harness with the machine clients and Auth0's roles Action in
/// place of geo-claims, its config then passed through `edit`.
async fn roles_harness(edit: impl FnOnce(String) -> String) -> Harness {
    let action = crate::support::language_plugin_wasm("js", "auth0-roles");
    start_edited_harness(&machine_clients(), "", false, |config, _| {
        let edited = config.replace(
            "[[actions]]\nplugin = \"geo-claims\"\n",
            &format!(
                "[plugins.auth0-roles]\npath = {action:?}\nworld = \"post-login-action\"\n\
                 [[actions]]\nplugin = \"auth0-roles\"\n"
            ),
        );
        assert!(edited.contains("plugin = \"auth0-roles\""), "{edited}");
        edit(edited)
    })
    .await
}

/// Creates a role named `name` through the Management API; answers its id.
pub(crate) async fn create_role(h: &Harness, token: &str, name: &str) -> String {
    let body = json!({ "name": name, "description": format!("The {name}s") });
    let (status, role) = api(h, Method::POST, "/roles", Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{role}");
    role["id"].as_str().unwrap().to_owned()
}

/// Gives (POST) or takes (DELETE) the test user's `roles`.
async fn change_roles(h: &Harness, token: &str, method: Method, roles: &[&str]) {
    let path = format!("/users/{}/roles", USER.replace('|', "%7C"));
    let body = json!({ "roles": roles });
    let (status, answer) = api(h, method, &path, Some(token), Some(body)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
}

/// The roles claim of both tokens in `tokens` (a refresh answers an id
/// token too).
async fn roles_in(h: &Harness, tokens: &Map<String, Value>) -> (Value, Value) {
    let access = h.access_claims(tokens).await;
    let id = verify(&tokens["id_token"], &h.jwks().await, "web-app", &h.issuer);
    (access[ROLES].clone(), id[ROLES].clone())
}

#[tokio::test]
async fn auth0s_roles_action_puts_the_roles_the_management_api_gave_in_the_tokens() {
    let h = roles_harness(|config| config).await;
    let first = h.signed_in().await;
    assert_eq!(roles_in(&h, &first).await, (json!([]), json!([])));

    let token = machine_token(&h, OPS, &[]).await;
    let viewer = create_role(&h, &token, "viewer").await;
    let admin = create_role(&h, &token, "admin").await;
    change_roles(&h, &token, Method::POST, &[&viewer, &admin]).await;
    let second = h.signed_in().await;
    let both = json!(["admin", "viewer"]);
    assert_eq!(roles_in(&h, &second).await, (both.clone(), both));

    // A refresh reads the roles the user holds then.
    change_roles(&h, &token, Method::DELETE, &[&viewer]).await;
    let (status, refreshed) = h.refresh(&refresh_token_of(&second)).await;
    assert_eq!(status, StatusCode::OK, "{refreshed:?}");
    let admin_only = json!(["admin"]);
    assert_eq!(
        roles_in(&h, &refreshed).await,
        (admin_only.clone(), admin_only)
    );
}

#[tokio::test]
async fn roles_from_makes_the_upstreams_groups_roles_from_the_first_sign_in() {
    // The development user is in the group `engineers`.
    let h = roles_harness(|config| {
        config.replace(
            "profile_fetcher = \"okta-userinfo\"\n",
            "profile_fetcher = \"okta-userinfo\"\nroles_from = \"groups\"\n",
        )
    })
    .await;
    let token = machine_token(&h, OPS, &[]).await;
    create_role(&h, &token, "engineers").await;
    let auditor = create_role(&h, &token, "auditors").await;
    create_role(&h, &token, "admins").await;

    let first = h.signed_in().await;
    assert_eq!(roles_in(&h, &first).await.0, json!(["engineers"]));
    let path = format!("/users/{}/roles", USER.replace('|', "%7C"));
    let (status, held) = api(&h, Method::GET, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{held}");
    let names: Vec<&str> = held
        .as_array()
        .unwrap()
        .iter()
        .map(|role| role["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["engineers"], "{held}");

    // A role the API gives stands beside the upstream's.
    change_roles(&h, &token, Method::POST, &[&auditor]).await;
    let second = h.signed_in().await;
    assert_eq!(
        roles_in(&h, &second).await.0,
        json!(["auditors", "engineers"])
    );
}

/// Auth0's RBAC for an API: the access token carries the permissions the
/// user's roles give for it, of the scopes asked for only those the user
/// holds are granted, and the API's lifetime applies; re-read on a refresh.
#[tokio::test]
async fn an_api_that_adds_permissions_puts_the_users_in_its_tokens() {
    let h = roles_harness(|config| {
        config.replace(
            "audience = \"https://api.example.com\"\n",
            "audience = \"https://api.example.com\"\n\
             allowed_scopes = [\"openid\", \"offline_access\", \"read:docs\", \"write:docs\"]\n",
        ) + "[[apis]]\nidentifier = \"https://api.example.com\"\n\
             scopes = [\"read:docs\", \"write:docs\"]\ntoken_ttl_secs = 600\nadd_permissions = true\n"
    })
    .await;
    let token = machine_token(&h, OPS, &[]).await;
    let reader = create_role(&h, &token, "reader").await;
    let writer = create_role(&h, &token, "writer").await;
    for (role, name) in [(&reader, "read:docs"), (&writer, "write:docs")] {
        let body = json!({"permissions": [
            {"resource_server_identifier": "https://api.example.com", "permission_name": name},
            {"resource_server_identifier": "https://other.example.com", "permission_name": "all"},
        ]});
        let path = format!("/roles/{role}/permissions");
        let (status, answer) = api(&h, Method::POST, &path, Some(&token), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let sign_in = || async {
        let scope = [("scope", "openid offline_access read:docs write:docs")];
        let url = h.pkce_authorize_url("web-app", &scope);
        let redirect = h
            .browse(url, crate::support::service_harness::APP_REDIRECT)
            .await;
        let (status, tokens) = h
            .exchange(
                redirect.get("code").unwrap(),
                crate::support::service_harness::VERIFIER,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{tokens:?}");
        tokens
    };
    // The first sign-in stores the user, who holds no role yet.
    let first = h.access_claims(&sign_in().await).await;
    assert_eq!(first["permissions"], json!([]), "{first:?}");
    assert_eq!(first["scope"], "openid offline_access", "{first:?}");

    change_roles(&h, &token, Method::POST, &[&reader]).await;
    let tokens = sign_in().await;
    let claims = h.access_claims(&tokens).await;
    assert_eq!(claims["permissions"], json!(["read:docs"]), "{claims:?}");
    assert_eq!(
        claims["scope"], "openid offline_access read:docs",
        "{claims:?}"
    );
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 600, "{claims:?}");

    change_roles(&h, &token, Method::POST, &[&writer]).await;
    let (status, refreshed) = h.refresh(&refresh_token_of(&tokens)).await;
    assert_eq!(status, StatusCode::OK, "{refreshed:?}");
    let claims = h.access_claims(&refreshed).await;
    assert_eq!(
        claims["permissions"],
        json!(["read:docs", "write:docs"]),
        "{claims:?}"
    );
}
