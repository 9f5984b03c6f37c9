//! The admin console over HTTP: who may sign in, what the pages show, and
//! what a forged form gets. The browser tests are in `console_browser.rs`.

use crate::support::service_harness::{Harness, VERIFIER, console_harness, console_harness_with};
use reqwest::{Method, StatusCode, Url};

/// Follows the console's sign-in as a browser would; the last answer.
async fn sign_in(h: &Harness) -> reqwest::Response {
    let mut url = Url::parse(&format!("{}/admin", h.issuer)).unwrap();
    for _ in 0..10 {
        let response = h.http.get(url.clone()).send().await.unwrap();
        let Some(location) = response.headers().get("location") else {
            return response;
        };
        url = url.join(location.to_str().unwrap()).unwrap();
    }
    panic!("too many redirects");
}

/// As [`sign_in`], and the session cookie (`name=value`) the console set on
/// the way, as someone who copied it would have it.
async fn sign_in_keeping_the_cookie(h: &Harness) -> (reqwest::Response, String) {
    let mut url = Url::parse(&format!("{}/admin", h.issuer)).unwrap();
    let mut session = None;
    for _ in 0..10 {
        let response = h.http.get(url.clone()).send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            if pair.starts_with("claimsmith_admin=") {
                session = Some(pair.to_owned());
            }
        }
        let Some(location) = response.headers().get("location") else {
            return (response, session.expect("a session cookie"));
        };
        url = url.join(location.to_str().unwrap()).unwrap();
    }
    panic!("too many redirects");
}

async fn page(h: &Harness, path: &str) -> (StatusCode, String) {
    let response = h
        .http
        .get(format!("{}{path}", h.issuer))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The CSRF token the console put in its forms.
fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_owned()
}

/// The Try it form of `plugin`: its CSRF token and its sample input.
async fn try_form(h: &Harness, plugin: &str) -> (String, String) {
    let (_, form) = page(h, &format!("/admin/plugins/{plugin}/try")).await;
    let input = form
        .split("id=\"try-input\" rows=\"18\">")
        .nth(1)
        .and_then(|rest| rest.split("</textarea>").next())
        .unwrap()
        .replace("&quot;", "\"");
    (csrf_of(&form), input)
}

/// Runs Try it of `plugin` alone on `input`, with the form's `csrf`.
async fn try_plugin(h: &Harness, plugin: &str, csrf: &str, input: &str) -> reqwest::Response {
    h.http
        .post(format!("{}/admin/plugins/{plugin}/try", h.issuer))
        .form(&[("csrf", csrf), ("input", input), ("scope", "plugin")])
        .send()
        .await
        .unwrap()
}

/// A Try it answer's page, and the outcome part of it.
async fn page_and_outcome(tried: reqwest::Response) -> (String, String) {
    assert_eq!(tried.status(), StatusCode::OK);
    let page = tried.text().await.unwrap();
    let outcome = page
        .split("id=\"try-outcome\"")
        .nth(1)
        .and_then(|rest| rest.split("<h2>").next())
        .unwrap_or_default()
        .to_owned();
    (page, outcome)
}

/// A value no page may show: the machine client's secret, which
/// management-geo holds and sends to the token endpoint.
const MACHINE_SECRET: &str = "machine-secret-shown-nowhere-0123";

#[tokio::test]
async fn try_it_shows_no_secret_the_plugin_sent() {
    let h = console_harness_with("engineers", |issuer| {
        format!(
            r#"
[plugins.management-geo]
path = {path:?}
world = "post-login-action"
allowed_origins = ["{issuer}"]
secrets = {{ domain = {{ value = "{issuer}" }}, clientId = {{ value = "ops" }}, clientSecret = {{ value = "{MACHINE_SECRET}" }} }}
"#,
            path = crate::support::plugin_wasm("management-geo"),
        )
    })
    .await;
    let redirect = h.web_login().await;
    h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
    assert_eq!(sign_in(&h).await.status(), StatusCode::OK);
    let (csrf, input) = try_form(&h, "management-geo").await;
    let tried = try_plugin(&h, "management-geo", &csrf, &input)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        tried.contains("request matched no exchange") && tried.contains("/oauth/token"),
        "the plugin's token request is noted: {tried}"
    );
    assert!(!tried.contains(MACHINE_SECRET), "{tried}");
    assert!(tried.contains("[redacted]"), "{tried}");
}

#[tokio::test]
async fn an_administrator_signs_in_and_sees_users_logins_and_plugins() {
    let h = console_harness("engineers").await;
    let redirect = h.web_login().await;
    let (status, tokens) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
    assert_eq!(status, StatusCode::OK);
    let token_values: Vec<String> = ["access_token", "id_token", "refresh_token"]
        .iter()
        .map(|name| tokens[*name].as_str().expect("a token").to_owned())
        .collect();
    let (status, before) = page(&h, "/admin/users").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "not signed in yet: {before}");

    let landed = sign_in(&h).await;
    assert_eq!(landed.status(), StatusCode::OK);
    assert!(
        landed.url().path().ends_with("/admin/users"),
        "{}",
        landed.url()
    );
    let (_, users) = page(&h, "/admin/users?q=ada%40example.com").await;
    assert!(
        users.contains("dev|dev-user-1") && users.contains("ada@example.com"),
        "{users}"
    );
    let (_, user) = page(&h, "/admin/users/dev%7Cdev-user-1").await;
    assert!(
        user.contains("geo_ip_country") && user.contains("NZ"),
        "{user}"
    );
    for token in &token_values {
        assert!(!user.contains(token.as_str()), "a token is shown: {user}");
    }
    let (_, logins) = page(&h, "/admin/logins?outcome=minted&client=web-app").await;
    let first = logins
        .split("href=\"/admin/logins/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a login link")
        .to_owned();
    let (_, login) = page(&h, &format!("/admin/logins/{first}")).await;
    for step in ["okta-userinfo", "geo-claims", "roles-claim"] {
        assert!(
            login.contains(&format!("data-step=\"{step}\"")),
            "{step}: {login}"
        );
    }
    let (_, plugins) = page(&h, "/admin/plugins").await;
    assert!(
        plugins.contains("/admin/plugins/geo-claims/try"),
        "{plugins}"
    );
    assert!(!plugins.contains("web-app-secret"), "no secret shown");

    // Try it, with the form's own CSRF token and its sample, in which the
    // country is one no other page part holds: only a run of the plugin can
    // put it in the outcome.
    let (csrf, input) = try_form(&h, "geo-claims").await;
    assert!(input.contains("\"NZ\""), "{input}");
    let input = input.replace("\"NZ\"", "\"FI\"");
    let tried = try_plugin(&h, "geo-claims", &csrf, &input).await;
    let (tried, outcome) = page_and_outcome(tried).await;
    assert!(
        outcome.contains("geo_ip_country") && outcome.contains("FI"),
        "the outcome holds the claim the run set: {tried}"
    );
    assert!(tried.contains("id=\"golden-case\""), "{tried}");

    // A form without the session's token is refused, whatever it asks.
    let forged = h
        .http
        .post(format!("{}/admin/plugins/geo-claims/try", h.issuer))
        .form(&[("csrf", "forged"), ("input", input.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let actions: Vec<String> = h
        .store()
        .admin_actions(10)
        .await
        .unwrap()
        .into_iter()
        .map(|action| action.action)
        .collect();
    assert_eq!(actions, ["try_plugin", "console_sign_in"], "newest first");
}

#[tokio::test]
async fn a_user_without_the_required_claim_is_refused_and_the_refusal_recorded() {
    let h = console_harness("admins").await;
    let refused = sign_in(&h).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let text = refused.text().await.unwrap();
    assert!(text.contains("is not an administrator"), "{text}");
    let (status, _) = page(&h, "/admin/users").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "no session");
    let actions = h.store().admin_actions(10).await.unwrap();
    assert_eq!(actions[0].action, "console_sign_in_refused");
    assert_eq!(actions[0].actor, "dev|dev-user-1");
}

#[tokio::test]
async fn without_a_console_section_there_is_no_console() {
    let h = crate::support::service_harness::harness("").await;
    let (status, _) = page(&h, "/admin/users").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn signing_out_ends_the_session_for_a_copy_of_its_cookie_too() {
    let h = console_harness("engineers").await;
    let (landed, cookie) = sign_in_keeping_the_cookie(&h).await;
    assert_eq!(landed.status(), StatusCode::OK);
    let csrf = csrf_of(&landed.text().await.unwrap());
    let copy = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let with_the_copy = || {
        copy.get(format!("{}/admin/users", h.issuer))
            .header("cookie", &cookie)
            .send()
    };
    let before = with_the_copy().await.unwrap();
    assert_eq!(
        before.status(),
        StatusCode::OK,
        "the copy works while signed in"
    );
    let signed_out = h
        .http
        .post(format!("{}/admin/logout", h.issuer))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::OK);
    let after = with_the_copy().await.unwrap();
    assert_eq!(
        after.status(),
        StatusCode::SEE_OTHER,
        "a copy of a signed-out session is sent to sign in"
    );
}

#[tokio::test]
async fn console_pages_are_uncached_unframed_and_run_only_their_own_script() {
    let h = console_harness("engineers").await;
    assert_eq!(sign_in(&h).await.status(), StatusCode::OK);
    // Try it's answer: the page with the console's one script.
    let (csrf, input) = try_form(&h, "geo-claims").await;
    let response = try_plugin(&h, "geo-claims", &csrf, &input).await;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("x-frame-options"), "DENY");
    let policy = header("content-security-policy");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.contains("default-src 'none'"), "{policy}");
    let html = response.text().await.unwrap();
    let script = html
        .split("<script>")
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .expect("Try it's script");
    use base64::Engine as _;
    use sha2::Digest as _;
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script));
    assert!(
        policy.contains(&format!("script-src 'sha256-{hash}'")),
        "the policy runs the page's script and nothing else: {policy}"
    );
}

/// The console's user page of the harness's test user.
const USER_PAGE: &str = "/admin/users/dev%7Cdev-user-1";

/// Posts a role change of the test user from the console.
async fn change_role(h: &Harness, csrf: &str, change: &str, role: &str) -> reqwest::Response {
    h.http
        .post(format!("{}{USER_PAGE}/roles", h.issuer))
        .form(&[("csrf", csrf), ("change", change), ("role", role)])
        .send()
        .await
        .unwrap()
}

/// The names of the test user's roles, as the Management API answers them.
async fn roles_held(h: &Harness, token: &str) -> Vec<String> {
    let path = "/users/dev%7Cdev-user-1/roles";
    let (status, roles) = crate::management::api(h, Method::GET, path, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{roles}");
    let names = roles.as_array().unwrap().iter();
    names
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_administrator_gives_and_takes_a_role_and_each_change_is_in_the_trail() {
    let h = console_harness_with("engineers", |_| crate::management::machine_clients()).await;
    let landed = sign_in(&h).await;
    let csrf = csrf_of(&landed.text().await.unwrap());
    let token = crate::management::machine_token(&h, crate::management::OPS, &[]).await;
    let auditor = crate::roles::create_role(&h, &token, "auditor").await;

    let (_, before) = page(&h, USER_PAGE).await;
    assert!(before.contains("<option value=\"") && before.contains(">auditor</option>"));
    // A forged form changes nothing.
    let forged = change_role(&h, "forged", "add", &auditor).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(roles_held(&h, &token).await.is_empty());

    let added = change_role(&h, &csrf, "add", &auditor).await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        added.headers()["location"],
        USER_PAGE,
        "back to the user's page"
    );
    let (_, after) = page(&h, USER_PAGE).await;
    assert!(after.contains("data-role=\"auditor\""), "{after}");
    assert_eq!(roles_held(&h, &token).await, ["auditor"]);
    let unknown = change_role(&h, &csrf, "add", "rol_nosuch").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    let removed = change_role(&h, &csrf, "remove", &auditor).await;
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    assert!(roles_held(&h, &token).await.is_empty());

    let trail: Vec<(String, String)> = h
        .store()
        .admin_actions(10)
        .await
        .unwrap()
        .into_iter()
        .filter(|action| ["assign_role", "unassign_role"].contains(&action.action.as_str()))
        .map(|action| {
            (
                action.action,
                action.detail["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("unassign_role".to_owned(), auditor.clone()),
        ("assign_role".to_owned(), auditor),
    ];
    assert_eq!(trail, expected, "newest first, the refused ones absent");
}

#[tokio::test]
async fn try_it_runs_a_credentials_exchange_plugin_on_a_sample_token_request() {
    let h = console_harness_with("engineers", |_| {
        format!(
            "[plugins.m2m-guard]\npath = {:?}\nworld = \"credentials-exchange\"\n\
             [[credentials_exchange]]\nplugin = \"m2m-guard\"\n\
             [[apis]]\nidentifier = \"https://reports.example.com\"\nscopes = [\"read:reports\"]\n",
            crate::support::plugin_wasm("m2m-guard")
        )
    })
    .await;
    sign_in(&h).await;
    let (csrf, input) = try_form(&h, "m2m-guard").await;
    let sample: serde_json::Value = serde_json::from_str(&input).unwrap();
    assert_eq!(
        sample["audience"], "https://reports.example.com",
        "{sample}"
    );
    let tried = try_plugin(&h, "m2m-guard", &csrf, &input).await;
    let (tried, outcome) = page_and_outcome(tried).await;
    assert!(
        outcome.contains("https://claimsmith.dev/client") && outcome.contains("read:reports"),
        "the outcome holds the claims the plugin set: {tried}"
    );
    assert!(
        tried.contains("audience: https://reports.example.com"),
        "the golden case: {tried}"
    );
    // A login is not a credentials-exchange plugin's input.
    let (_, login) = try_form(&h, "roles-claim").await;
    let refused = try_plugin(&h, "m2m-guard", &csrf, &login)
        .await
        .text()
        .await
        .unwrap();
    assert!(refused.contains("gives a token request"), "{refused}");
}
