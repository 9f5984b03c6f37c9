//! The Management API through the real service: machine-to-machine tokens
//! from the client credentials grant, the users a login created, metadata
//! updates, roles, the login trail, the plugins, each route's scope, and the
//! OpenAPI document that lists exactly the routes there are.

use crate::support::service_harness::{Harness, VERIFIER, assert_oauth_error, harness};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

pub(crate) const OPS: (&str, &str) = ("ops", "ops-secret-0123456789");
pub(crate) const READER: (&str, &str) = ("reader", "reader-secret-0123456789");
pub(crate) const USER: &str = "dev|dev-user-1";

pub(crate) fn machine_clients() -> String {
    format!(
        r#"
[[clients]]
client_id = "{}"
name = "Operations"
client_secret = {{ value = "{}" }}
grant_types = ["client_credentials"]

[[clients]]
client_id = "{}"
client_secret = {{ value = "{}" }}
grant_types = ["client_credentials"]
allowed_scopes = ["read:logs"]
"#,
        OPS.0, OPS.1, READER.0, READER.1
    )
}

pub(crate) async fn machine_token(
    h: &Harness,
    client: (&str, &str),
    extra: &[(&str, &str)],
) -> String {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    let (status, body) = h.token(&form, Some(client)).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    body["access_token"].as_str().unwrap().to_owned()
}

pub(crate) async fn api(
    h: &Harness,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = h.http.request(method, format!("{}/api/v2{path}", h.issuer));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn signed_in_once(h: &Harness) {
    let redirect = h.web_login().await;
    let (status, body) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
}

#[tokio::test]
async fn a_machine_client_gets_a_management_token_and_nothing_else() {
    let h = harness(&machine_clients()).await;
    let audience = format!("{}/api/v2/", h.issuer);
    let (status, body) = h
        .token(
            &[
                ("grant_type", "client_credentials"),
                ("audience", audience.as_str()),
            ],
            Some(OPS),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert!(
        body.get("refresh_token").is_none() && body.get("id_token").is_none(),
        "{body:?}"
    );
    assert_eq!(
        body["scope"],
        "read:users update:users read:logs read:plugins create:plugins update:plugins \
         read:roles create:roles update:roles delete:roles"
    );
    let claims = crate::support::service_harness::verify(
        &body["access_token"],
        &h.jwks().await,
        &audience,
        &h.issuer,
    );
    assert_eq!(claims["sub"], "ops");
    assert_eq!(claims["gty"], "client-credentials");

    // What must not get one: a sign-in client, another audience, a scope
    // beyond the client's, a wrong secret.
    let (status, body) = h
        .token(
            &[("grant_type", "client_credentials")],
            Some(("web-app", "web-app-secret-0123")),
        )
        .await;
    assert_oauth_error(
        &status,
        &body,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
    );
    let (status, body) = h
        .token(
            &[
                ("grant_type", "client_credentials"),
                ("audience", "https://api.example.com"),
            ],
            Some(OPS),
        )
        .await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (status, body) = h
        .token(
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read:users"),
            ],
            Some(READER),
        )
        .await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_scope");
    let (status, body) = h
        .token(
            &[("grant_type", "client_credentials")],
            Some((OPS.0, "not-the-secret-of-ops")),
        )
        .await;
    assert_oauth_error(&status, &body, StatusCode::UNAUTHORIZED, "invalid_client");
    // A sign-in client cannot be given Management API scopes either.
    assert!(h.stored_user().await.is_none(), "no login ran");
}

#[tokio::test]
async fn the_user_a_login_created_is_read_found_and_updated() {
    let h = harness(&machine_clients()).await;
    signed_in_once(&h).await;
    let token = machine_token(&h, OPS, &[]).await;
    let encoded = USER.replace('|', "%7C");

    let (status, user) = api(
        &h,
        Method::GET,
        &format!("/users/{encoded}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    // Auth0's shape: the profile snapshot at the top level.
    assert_eq!(user["user_id"], USER);
    assert_eq!(user["geo_ip_country"], "NZ");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["logins_count"], 1);
    assert!(
        user["created_at"].is_string() && user["last_login"].is_string(),
        "{user}"
    );
    assert!(
        user.get("user_type").is_none(),
        "okta-userinfo deletes it: {user}"
    );
    let (status, _) = api(&h, Method::GET, "/users/dev%7Cnobody", Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for q in [
        "ADA@example.com",
        "email:\"ada@example.com\"",
        "ada@",
        "dev|",
        USER,
    ] {
        let path = format!("/users?q={}&include_totals=true", urlencode(q));
        let (status, page) = api(&h, Method::GET, &path, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "{q}: {page}");
        assert_eq!(page["total"], 1, "{q}: {page}");
        assert_eq!(page["users"][0]["user_id"], USER, "{q}");
    }
    // Auth0's users-by-email: the exact address, without case.
    for (email, found) in [("ADA@example.com", 1), ("ada@", 0), ("bob@example.com", 0)] {
        let path = format!("/users-by-email?email={}", urlencode(email));
        let (status, users) = api(&h, Method::GET, &path, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "{email}: {users}");
        assert_eq!(
            users.as_array().map(Vec::len),
            Some(found),
            "{email}: {users}"
        );
    }
    for q in ["bob@example.com", "%", "_"] {
        let (_, found) = api(
            &h,
            Method::GET,
            &format!("/users?q={}", urlencode(q)),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(found, json!([]), "{q} finds no one");
    }

    let (status, updated) = api(
        &h,
        Method::PATCH,
        &format!("/users/{encoded}"),
        Some(&token),
        Some(json!({"app_metadata": {"plan": "gold", "echo_count": null}, "user_metadata": {"theme": "dark"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["app_metadata"], json!({"plan": "gold"}));
    assert_eq!(updated["user_metadata"]["theme"], "dark");
    let stored = h.stored_user().await.unwrap();
    assert_eq!(stored.user.app_metadata["plan"], "gold");
    let actions = h.store().admin_actions(10).await.unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(
        (actions[0].actor.as_str(), actions[0].action.as_str()),
        ("ops", "update_user")
    );
    assert_eq!(actions[0].target, USER);
    let (status, refused) = api(
        &h,
        Method::PATCH,
        &format!("/users/{encoded}"),
        Some(&token),
        Some(json!({"logins_count": 99})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "only metadata changes: {refused}"
    );

    // Metadata grows by at most what fits a body each time; the sum is
    // capped as an action's is, and a refused update changes nothing.
    let chunk = "x".repeat(40 * 1024);
    let mut statuses = Vec::new();
    for key in ["a", "b", "c"] {
        let (status, _) = api(
            &h,
            Method::PATCH,
            &format!("/users/{encoded}"),
            Some(&token),
            Some(json!({ "user_metadata": { key: chunk } })),
        )
        .await;
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::OK, StatusCode::BAD_REQUEST],
        "the third passes 100 KiB"
    );
    let stored = h.stored_user().await.unwrap();
    assert!(stored.user.user_metadata.get("c").is_none());
}

fn urlencode(text: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", [("q", text)])
        .unwrap()
        .query()
        .unwrap()
        .trim_start_matches("q=")
        .to_owned()
}

#[tokio::test]
async fn the_login_trail_and_the_plugins_are_listed() {
    let h = harness(&machine_clients()).await;
    signed_in_once(&h).await;
    let token = machine_token(&h, OPS, &[]).await;

    let (status, logs) = api(
        &h,
        Method::GET,
        "/logs?include_totals=true",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    assert_eq!(logs["total"], 1, "{logs}");
    let log = &logs["logs"][0];
    assert_eq!(
        (log["outcome"].as_str(), log["client_id"].as_str()),
        (Some("minted"), Some("web-app"))
    );
    let steps: Vec<&str> = log["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["name"].as_str().unwrap())
        .collect();
    assert!(
        steps.contains(&"okta-userinfo") && steps.contains(&"geo-claims"),
        "{steps:?}"
    );
    let id = log["log_id"].as_str().unwrap();
    let (status, one) = api(&h, Method::GET, &format!("/logs/{id}"), Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&one, log);
    let (_, denied) = api(&h, Method::GET, "/logs?outcome=denied", Some(&token), None).await;
    assert_eq!(denied, json!([]));
    let (_, mine) = api(
        &h,
        Method::GET,
        "/users/dev%7Cdev-user-1/logs",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");
    let (_, paged) = api(
        &h,
        Method::GET,
        "/logs?page=1&per_page=1",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(paged, json!([]), "one login, one page");

    let (status, plugins) = api(&h, Method::GET, "/plugins", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "{plugins}");
    let by_name: Map<String, Value> = plugins
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p.clone()))
        .collect();
    assert_eq!(
        by_name["okta-userinfo"]["used_by"],
        json!(["connection dev"])
    );
    assert_eq!(by_name["okta-userinfo"]["world"], "profile-fetcher");
    assert_eq!(by_name["geo-claims"]["used_by"], json!(["action 1"]));
    assert_eq!(
        by_name["geo-claims"]["sha256"].as_str().map(str::len),
        Some(64)
    );
    assert!(by_name["geo-claims"]["size"].as_u64().unwrap() > 0);
    assert!(!plugins.to_string().contains("secret"), "{plugins}");
}

/// Auth0's role calls, in its shapes: a role is made, given a permission,
/// assigned to the user a login created, seen from both sides, then taken
/// away and deleted; each change in the admin trail.
#[tokio::test]
async fn roles_are_made_given_permissions_and_assigned_in_auth0s_shapes() {
    let h = harness(&machine_clients()).await;
    signed_in_once(&h).await;
    let token = machine_token(&h, OPS, &[]).await;
    let call = |method: Method, path: String, body: Option<Value>| {
        let (h, token) = (&h, &token);
        async move { api(h, method, &path, Some(token), body).await }
    };
    let user = USER.replace('|', "%7C");

    let (status, role) = call(
        Method::POST,
        "/roles".into(),
        Some(json!({"name": "admin", "description": "Administrators"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{role}");
    let id = role["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("rol_") && id.len() == 20, "{role}");
    assert_eq!(role["name"], "admin");
    let (status, twin) = call(
        Method::POST,
        "/roles".into(),
        Some(json!({"name": "admin"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{twin}");
    assert_eq!(
        (twin["statusCode"].as_u64(), twin["error"].as_str()),
        (Some(409), Some("Conflict"))
    );
    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(51)}),
        json!({"name": "a", "extra": 1}),
    ] {
        let (status, body) = call(Method::POST, "/roles".into(), Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, page) = call(
        Method::GET,
        "/roles?include_totals=true&name_filter=ADM".into(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        (page["total"].as_u64(), page["roles"][0]["id"].as_str()),
        (Some(1), Some(id.as_str()))
    );

    let permission = json!({"resource_server_identifier": "https://api.example.com", "permission_name": "read:docs"});
    let permissions = json!({"permissions": [permission]});
    let (status, body) = call(
        Method::POST,
        format!("/roles/{id}/permissions"),
        Some(permissions.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(
        Method::POST,
        format!("/roles/{id}/permissions"),
        Some(json!({"permissions": []})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, listed) = call(Method::GET, format!("/roles/{id}/permissions"), None).await;
    assert_eq!(listed[0]["permission_name"], "read:docs", "{listed}");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    let roles = json!({"roles": [id]});
    let (status, body) = call(
        Method::POST,
        format!("/users/{user}/roles"),
        Some(roles.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = call(
        Method::POST,
        "/users/dev%7Cnobody/roles".into(),
        Some(roles.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = call(
        Method::POST,
        format!("/users/{user}/roles"),
        Some(json!({"roles": ["rol_missing"]})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, held) = call(Method::GET, format!("/users/{user}/roles"), None).await;
    assert_eq!(
        held,
        json!([{"id": id, "name": "admin", "description": "Administrators"}])
    );
    let (_, members) = call(Method::GET, format!("/roles/{id}/users"), None).await;
    assert_eq!(members, json!([{"user_id": USER}]));
    let (_, theirs) = call(Method::GET, format!("/users/{user}/permissions"), None).await;
    assert_eq!(
        theirs,
        json!([{
            "resource_server_identifier": "https://api.example.com",
            "permission_name": "read:docs",
            "resource_server_name": "https://api.example.com",
            "description": "",
            "sources": [{"source_id": id, "source_name": "admin", "source_type": "ROLE"}],
        }])
    );

    let (status, renamed) = call(
        Method::PATCH,
        format!("/roles/{id}"),
        Some(json!({"name": "admins"})),
    )
    .await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (StatusCode::OK, Some("admins")),
        "{renamed}"
    );
    let (status, _) = call(Method::DELETE, format!("/users/{user}/roles"), Some(roles)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, held) = call(Method::GET, format!("/users/{user}/roles"), None).await;
    assert_eq!(held, json!([]));
    let (status, _) = call(Method::DELETE, format!("/roles/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, gone) = call(Method::GET, format!("/roles/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");

    let trail: Vec<String> = h
        .store()
        .admin_actions(20)
        .await
        .unwrap()
        .into_iter()
        .map(|action| action.action)
        .collect();
    for action in [
        "create_role",
        "add_role_permissions",
        "assign_roles",
        "update_role",
        "unassign_roles",
        "delete_role",
    ] {
        assert!(
            trail.iter().any(|done| done == action),
            "{action} not in {trail:?}"
        );
    }
}

/// Reading roles takes `read:roles`, changing them their own scopes: a
/// machine client allowed fewer is refused the rest.
/// A machine client that lists an `[[apis]]` identifier gets tokens for
/// that API (its scopes, its lifetime), each audience with only its own
/// scopes; an audience it does not list gets it none.
#[tokio::test]
async fn a_machine_client_gets_tokens_for_the_apis_it_lists_and_no_other() {
    const SERVICE: (&str, &str) = ("svc", "svc-secret-0123456789");
    const DOCS: &str = "https://docs.example.com";
    let clients = format!(
        "{}\n[[apis]]\nidentifier = \"{DOCS}\"\nscopes = [\"read:docs\", \"write:docs\"]\n\
         token_ttl_secs = 600\n\n[[clients]]\nclient_id = \"{}\"\n\
         client_secret = {{ value = \"{}\" }}\ngrant_types = [\"client_credentials\"]\n\
         allowed_audiences = [\"{DOCS}\", \"ISSUER/api/v2/\"]\n\
         allowed_scopes = [\"read:docs\", \"read:roles\"]\n",
        machine_clients(),
        SERVICE.0,
        SERVICE.1
    );
    let h = crate::support::service_harness::start_edited_harness(
        &clients,
        "",
        false,
        |config, issuer| config.replace("ISSUER", issuer),
    )
    .await;
    let machine_token = |form: &[(&'static str, &'static str)]| {
        let mut fields = vec![("grant_type", "client_credentials")];
        fields.extend_from_slice(form);
        let h = &h;
        async move { h.token(&fields, Some(SERVICE)).await }
    };
    let (status, body) = machine_token(&[("audience", DOCS)]).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(
        (&body["scope"], &body["expires_in"]),
        (&json!("read:docs"), &json!(600))
    );
    let jwks = h.jwks().await;
    let claims =
        crate::support::service_harness::verify(&body["access_token"], &jwks, DOCS, &h.issuer);
    assert_eq!(
        (claims["sub"].as_str(), claims["gty"].as_str()),
        (Some("svc"), Some("client-credentials"))
    );
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 600);
    // The API's token is no Management API token; the Management API's,
    // with its scopes only, is.
    let reads_roles = |body: &Map<String, Value>| {
        let token = body["access_token"].as_str().map(str::to_owned);
        let h = &h;
        async move {
            api(h, Method::GET, "/roles", token.as_deref(), None)
                .await
                .0
        }
    };
    assert_eq!(reads_roles(&body).await, StatusCode::UNAUTHORIZED);
    let (status, body) = machine_token(&[]).await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (StatusCode::OK, Some("read:roles")),
        "{body:?}"
    );
    assert_eq!(reads_roles(&body).await, StatusCode::OK);

    let management = format!("{}/api/v2/", h.issuer);
    for (form, code) in [
        (
            vec![("audience", "https://other.example.com")],
            "invalid_request",
        ),
        (
            vec![("audience", DOCS), ("scope", "write:docs")],
            "invalid_scope",
        ),
        (
            vec![("audience", DOCS), ("scope", "read:roles")],
            "invalid_scope",
        ),
        (
            vec![("audience", management.as_str()), ("scope", "read:docs")],
            "invalid_scope",
        ),
    ] {
        let mut fields = vec![("grant_type", "client_credentials")];
        fields.extend(form.iter().copied());
        let (status, body) = h.token(&fields, Some(SERVICE)).await;
        assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, code);
    }
    let (status, body) = h
        .token(
            &[("grant_type", "client_credentials"), ("audience", DOCS)],
            Some(OPS),
        )
        .await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn each_role_route_wants_its_scope() {
    let h = harness(&machine_clients()).await;
    let read_only = machine_token(&h, OPS, &[("scope", "read:roles")]).await;
    let (status, body) = api(&h, Method::GET, "/roles", Some(&read_only), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (method, path, scope) in [
        (Method::POST, "/roles", "create:roles"),
        (Method::PATCH, "/roles/rol_x", "update:roles"),
        (Method::DELETE, "/roles/rol_x", "delete:roles"),
        (Method::POST, "/roles/rol_x/permissions", "update:roles"),
        (
            Method::POST,
            "/users/dev%7Cdev-user-1/roles",
            "update:users",
        ),
        (Method::GET, "/users/dev%7Cdev-user-1/roles", "read:users"),
        (Method::GET, "/roles/rol_x/users", "read:users"),
    ] {
        let (status, body) = api(&h, method.clone(), path, Some(&read_only), Some(json!({}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(scope),
            "{method} {path}: {body}"
        );
    }
    let reader = machine_token(&h, READER, &[]).await;
    let (status, _) = api(&h, Method::GET, "/roles", Some(&reader), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn each_route_wants_its_scope_and_a_management_token() {
    let h = harness(&machine_clients()).await;
    signed_in_once(&h).await;
    let reader = machine_token(&h, READER, &[]).await;
    let (status, body) = api(&h, Method::GET, "/logs", Some(&reader), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for path in [
        "/users?q=ada",
        "/users-by-email?email=ada%40example.com",
        "/users/dev%7Cdev-user-1",
        "/plugins",
    ] {
        let (status, body) = api(&h, Method::GET, path, Some(&reader), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("Insufficient scope"),
            "{body}"
        );
    }
    // A token that may read users may not change them.
    let read_users = machine_token(&h, OPS, &[("scope", "read:users")]).await;
    let (status, body) = api(
        &h,
        Method::PATCH,
        "/users/dev%7Cdev-user-1",
        Some(&read_users),
        Some(json!({"app_metadata": {"plan": "gold"}})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("update:users"),
        "{body}"
    );
    // A user's access token is for the app's API, not this one.
    let redirect = h.web_login().await;
    let (_, tokens) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
    let users_token = tokens["access_token"].as_str().unwrap();
    let (status, _) = api(&h, Method::GET, "/logs", Some(users_token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api(&h, Method::GET, "/logs", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_openapi_document_is_valid_3_1_and_lists_exactly_the_routes() {
    let h = harness("").await;
    let (status, document) = api(&h, Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let spec = oas3::from_json(document.to_string()).expect("a valid OpenAPI 3.1 document");
    let mut listed: Vec<(String, String)> = Vec::new();
    for (path, item) in spec.paths.iter().flatten() {
        for (method, operation) in item.methods() {
            assert!(
                !operation.responses(&spec).is_empty(),
                "{method} {path}: no responses"
            );
            assert!(
                operation
                    .security
                    .iter()
                    .any(|s| s.0.contains_key("bearer")),
                "{method} {path}"
            );
            listed.push((method.to_string(), path.clone()));
        }
    }
    listed.sort();
    let expected = [
        ("DELETE", "/plugins/{name}/canary"),
        ("DELETE", "/plugins/{name}/shadow"),
        ("DELETE", "/roles/{id}"),
        ("DELETE", "/roles/{id}/permissions"),
        ("DELETE", "/users/{id}/roles"),
        ("GET", "/logs"),
        ("GET", "/logs/{id}"),
        ("GET", "/plugins"),
        ("GET", "/plugins/{name}/canary"),
        ("GET", "/plugins/{name}/deployments"),
        ("GET", "/plugins/{name}/shadow"),
        ("GET", "/plugins/{name}/versions"),
        ("GET", "/plugins/{name}/versions/{version}"),
        ("GET", "/roles"),
        ("GET", "/roles/{id}"),
        ("GET", "/roles/{id}/permissions"),
        ("GET", "/roles/{id}/users"),
        ("GET", "/users"),
        ("GET", "/users-by-email"),
        ("GET", "/users/{id}"),
        ("GET", "/users/{id}/logs"),
        ("GET", "/users/{id}/permissions"),
        ("GET", "/users/{id}/roles"),
        ("PATCH", "/roles/{id}"),
        ("PATCH", "/users/{id}"),
        ("POST", "/plugins/{name}/canary"),
        ("POST", "/plugins/{name}/deploy"),
        ("POST", "/plugins/{name}/shadow"),
        ("POST", "/plugins/{name}/versions"),
        ("POST", "/roles"),
        ("POST", "/roles/{id}/permissions"),
        ("POST", "/users/{id}/roles"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(listed, expected);
    // Every route listed is served (and guarded): a 401, not a 404 or 405.
    for (method, path) in &listed {
        let concrete = path
            .replace("{id}", "dev%7Cdev-user-1")
            .replace("{name}", "geo-claims")
            .replace("{version}", "1");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, body) = api(&h, method.clone(), &concrete, None, None).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {concrete}: {body}"
        );
    }
}

/// The reference scenario's Action, through the service, against this very
/// Management API: the ports (plugins/management-geo, Rust and JavaScript)
/// and the write-up's original (plugins/auth0-management-geo: CommonJS,
/// `require('auth0')`). The claim comes from the user it reads, on the first
/// sign-in too: during the chain the API answers for the user being signed
/// in, as Auth0's does.
#[tokio::test]
async fn the_reference_action_reads_the_user_through_the_real_management_api() {
    for (language, name) in [
        ("rust", "management-geo"),
        ("js", "management-geo"),
        ("js", "auth0-management-geo"),
    ] {
        let plugin = |issuer: &str| {
            format!(
                r#"
[plugins.{name}]
path = {path:?}
world = "post-login-action"
allowed_origins = ["{issuer}"]
secrets = {{ domain = {{ value = "{issuer}" }}, clientId = {{ value = "{id}" }}, clientSecret = {{ value = "{secret}" }} }}

[[actions]]
plugin = "{name}"
"#,
                path = crate::support::language_plugin_wasm(language, name),
                id = OPS.0,
                secret = OPS.1,
            )
        };
        // geo-claims is taken out of the chain: the claim can only come
        // from the plugin under test.
        let h = crate::support::service_harness::start_edited_harness(
            &machine_clients(),
            "",
            false,
            |config, issuer| {
                config.replace("[[actions]]\nplugin = \"geo-claims\"\n", &plugin(issuer))
            },
        )
        .await;
        let sign_in = || async {
            let redirect = h.web_login().await;
            let (status, tokens) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
            assert_eq!(status, StatusCode::OK, "{name} ({language}): {tokens:?}");
            h.access_claims(&tokens).await
        };
        let first = sign_in().await;
        assert_eq!(
            first["geo_ip_country"], "NZ",
            "{name} ({language}): first sign-in: {first:?}"
        );
        let second = sign_in().await;
        assert_eq!(
            second["geo_ip_country"], "NZ",
            "{name} ({language}): {second:?}"
        );
        let logins = h.store().recent_logins(1).await.unwrap();
        let steps = logins[0].steps.to_string();
        assert!(steps.contains(name), "{name} ({language}): {steps}");
    }
}

/// The reference write-up's two pieces as written, through `claimsmith
/// serve` with a real upstream on loopback: its connection script
/// (plugins/auth0-okta-userinfo) shapes the profile, and its Action
/// (plugins/auth0-management-geo) reads the country back through the
/// Management API, on the first sign-in and on later ones. The script's
/// userinfo URL, the one line the write-up leaves to its reader, is this
/// upstream's, in a copy of the script built here.
#[tokio::test]
async fn the_write_ups_script_and_action_sign_a_user_in_as_written() {
    let upstream = crate::support::service_harness::dev_provider().await;
    for claims in sign_in_twice_with_the_write_ups_pieces(upstream, |config| config).await {
        assert_eq!(claims["sub"], USER, "{claims:?}");
    }
}

/// As the write-up has it: Auth0's social connector, which "runs OAuth2
/// behind the scenes", at an upstream that is no OpenID Connect provider
/// (no discovery, no JWKS; an id token for `openid` that nothing can
/// verify, which the script decodes for its country). The user is who the
/// script's profile names: the upstream's numeric `id`.
#[tokio::test]
async fn the_write_ups_pieces_sign_a_user_in_through_a_plain_oauth2_upstream() {
    let upstream = crate::support::service_harness::dev_provider_speaking(
        claimsmith_devprovider::Protocol::OAuth2,
    )
    .await;
    let endpoints = crate::support::service_harness::oauth2_endpoints(
        upstream.issuer(),
        "[\"openid\", \"profile\"]",
    );
    for claims in sign_in_twice_with_the_write_ups_pieces(upstream, endpoints).await {
        let user = format!("dev|{}", claimsmith_devprovider::OAUTH2_USER_ID);
        assert_eq!(claims["sub"], user.as_str(), "{claims:?}");
    }
}

/// Signs the test user in twice through the write-up's script and Action at
/// `upstream` (its connection edited by `connection`), and answers the
/// access tokens' claims; each has the country the Action read back.
async fn sign_in_twice_with_the_write_ups_pieces(
    upstream: claimsmith_devprovider::DevProvider,
    connection: impl FnOnce(String) -> String,
) -> Vec<Map<String, Value>> {
    let dir = tempfile::tempdir().unwrap();
    let build_script = |userinfo: &str| {
        let project = dir.path().join("auth0-okta-userinfo");
        std::fs::create_dir_all(&project).unwrap();
        let shipped = crate::support::root().join("plugins/auth0-okta-userinfo/js");
        let script = std::fs::read_to_string(shipped.join("fetch-user-profile.js")).unwrap();
        let pointed = script.replace(
            "https://example.okta.com/oauth2/aus1custom/v1/userinfo",
            userinfo,
        );
        assert_ne!(script, pointed, "the script names its userinfo URL");
        std::fs::write(project.join("fetch-user-profile.js"), pointed).unwrap();
        std::fs::copy(shipped.join("package.json"), project.join("package.json")).unwrap();
        crate::support::build_project(&project, &dir.path().join("out"))
            .unwrap()
            .component
    };
    let action = crate::support::language_plugin_wasm("js", "auth0-management-geo");
    let h = crate::support::service_harness::start_harness_at(
        upstream,
        &machine_clients(),
        "",
        true,
        |config, issuer| {
            let userinfo = config
                .split("userinfo_url = \"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("the connection names its userinfo URL")
                .to_owned();
            let upstream = userinfo.trim_end_matches("/userinfo");
            let plugins = format!(
                r#"
[plugins.auth0-okta-userinfo]
path = {script:?}
world = "profile-fetcher"
allowed_origins = ["{upstream}"]

[plugins.auth0-management-geo]
path = {action:?}
world = "post-login-action"
allowed_origins = ["{issuer}"]
secrets = {{ domain = {{ value = "{issuer}" }}, clientId = {{ value = "{id}" }}, clientSecret = {{ value = "{secret}" }} }}

[[actions]]
plugin = "auth0-management-geo"
"#,
                script = build_script(&userinfo),
                id = OPS.0,
                secret = OPS.1,
            );
            let edited = config
                .replace(
                    "profile_fetcher = \"okta-userinfo\"",
                    "profile_fetcher = \"auth0-okta-userinfo\"",
                )
                .replace("[[actions]]\nplugin = \"geo-claims\"\n", &plugins);
            // Neither the ported fetcher nor geo-claims is left to set the claim.
            assert!(edited.contains("profile_fetcher = \"auth0-okta-userinfo\""));
            assert!(!edited.contains("plugin = \"geo-claims\""));
            connection(edited)
        },
    )
    .await;
    let mut signed_in = Vec::new();
    for sign_in in ["first", "second"] {
        let redirect = h.web_login().await;
        let (status, tokens) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{sign_in}: {tokens:?}");
        let claims = h.access_claims(&tokens).await;
        assert_eq!(claims["geo_ip_country"], "NZ", "{sign_in}: {claims:?}");
        signed_in.push(claims);
    }
    signed_in
}
