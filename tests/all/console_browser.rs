//! The admin console as a person uses it, in Debian's Chromium driven over
//! WebDriver (ChromeDriver on loopback): sign in, find the user a login
//! created and see `geo_ip_country`, open that login and see both plugin
//! steps with their times, run Try it on `geo-claims` and see the claim.
//! Each page is kept as a screenshot under `target/console-screenshots/`.

use std::time::{Duration, Instant};

use crate::support::chromium::{browser, chromedriver, click, keep_screenshot, text_of};
use crate::support::service_harness::{VERIFIER, console_harness, console_harness_with};
use fantoccini::{Client, Locator};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_administrator_uses_the_console_in_chromium() {
    let h = console_harness("engineers").await;
    let redirect = h.web_login().await;
    let (status, _) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "a test login creates the user");

    let driver = chromedriver().await;
    let client = browser(&driver).await;

    // Sign in: /admin sends the browser through Claimsmith's own sign-in
    // (and the development upstream) and back.
    client.goto(&format!("{}/admin", h.issuer)).await.unwrap();
    text_of(&client, "table#users").await;
    let who = text_of(&client, "header .who").await;
    assert!(who.contains("dev|dev-user-1"), "{who}");

    // Find the user, open their page.
    let search = client.find(Locator::Css("input[name=q]")).await.unwrap();
    search.send_keys("ada@example.com").await.unwrap();
    click(&client, Locator::Css("#user-search button")).await;
    let found = text_of(&client, "table#users").await;
    assert!(found.contains("ada@example.com"), "{found}");
    keep_screenshot(&client, "users").await;
    click(&client, Locator::LinkText("dev|dev-user-1")).await;
    let profile = text_of(&client, "table.fields:nth-of-type(2)").await;
    assert!(
        profile.contains("geo_ip_country") && profile.contains("NZ"),
        "{profile}"
    );
    keep_screenshot(&client, "user").await;

    // Open the login from the user's page: both plugin steps, with times.
    click(&client, Locator::Css("table#recent-logins a")).await;
    text_of(&client, "#steps").await;
    for plugin in ["okta-userinfo", "geo-claims"] {
        let step = text_of(&client, &format!("[data-step=\"{plugin}\"]")).await;
        let duration = text_of(&client, &format!("[data-step=\"{plugin}\"] .duration")).await;
        assert!(duration.ends_with(" ms"), "{plugin}: {step}");
        let ms: f64 = duration.trim_end_matches(" ms").parse().unwrap();
        assert!(ms > 0.0, "{plugin}: {step}");
    }
    keep_screenshot(&client, "login").await;

    // The plugins, and Try it on geo-claims with its sample login.
    client
        .goto(&format!("{}/admin/plugins", h.issuer))
        .await
        .unwrap();
    let plugins = text_of(&client, "table#plugins").await;
    assert!(
        plugins.contains("geo-claims") && plugins.contains("post-login-action"),
        "{plugins}"
    );
    keep_screenshot(&client, "plugins").await;
    click(
        &client,
        Locator::Css("a[href=\"/admin/plugins/geo-claims/try\"]"),
    )
    .await;
    client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Id("run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let outcome = text_of(&client, "#try-outcome").await;
    assert!(
        outcome.contains("geo_ip_country") && outcome.contains("NZ"),
        "{outcome}"
    );
    let case = text_of(&client, "#golden-case").await;
    assert!(
        case.contains("plugin: geo-claims") && case.contains("expect:"),
        "{case}"
    );
    keep_screenshot(&client, "try-it").await;

    client
        .goto(&format!("{}/admin/logins", h.issuer))
        .await
        .unwrap();
    text_of(&client, "table#logins").await;
    keep_screenshot(&client, "logins").await;
    client.close().await.unwrap();
}

/// A shadow run's page: the tallies and each difference, the secret in
/// one of them redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_administrator_sees_a_shadow_runs_differences_in_chromium() {
    let (tier, _asked) = crate::shadow::tier_service().await;
    let h = console_harness_with("engineers", |_| crate::shadow::tier_config(&tier, 1)).await;
    let token = crate::management::machine_token(&h, crate::management::OPS, &[]).await;
    crate::shadow::shadowed_by_the_changed_version(&h, &token).await;
    for _ in 0..2 {
        crate::shadow::access_claims_of_a_login(&h).await;
    }
    crate::shadow::shadow_after(&h, &token, 2).await;

    let driver = chromedriver().await;
    let client = browser(&driver).await;
    // Signed in through /admin first, as the other tests do.
    client.goto(&format!("{}/admin", h.issuer)).await.unwrap();
    text_of(&client, "table#users").await;
    client
        .goto(&format!("{}/admin/plugins", h.issuer))
        .await
        .unwrap();
    let plugins = text_of(&client, "table#plugins").await;
    assert!(plugins.contains("version 1"), "{plugins}");
    click(
        &client,
        Locator::Css("a[href=\"/admin/plugins/tier/shadow\"]"),
    )
    .await;
    let tally = text_of(&client, "table#shadow-tally").await;
    assert!(
        tally.contains("different 2") || tally.contains("different\t2"),
        "{tally}"
    );
    let differences = text_of(&client, "table#shadow-differences").await;
    for shown in ["fetched", "gold (changed)", "[redacted]", "dev|dev-user-1"] {
        assert!(differences.contains(shown), "{shown}: {differences}");
    }
    assert!(
        !differences.contains(&tier),
        "the secret URL is never shown: {differences}"
    );
    keep_screenshot(&client, "shadow").await;
    client.close().await.unwrap();
}

/// Whether `css` is on the page, looked for until it shows the answer
/// wanted or the deadline passes.
async fn shows(client: &Client, css: &str, wanted: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = !client.find_all(Locator::Css(css)).await.unwrap().is_empty();
        if found == wanted || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_administrator_sees_the_roles_and_gives_and_takes_one_in_chromium() {
    let h = console_harness_with("engineers", |_| crate::management::machine_clients()).await;
    let token = crate::management::machine_token(&h, crate::management::OPS, &[]).await;
    let auditor = crate::roles::create_role(&h, &token, "auditor").await;
    let permission = serde_json::json!({ "permissions": [
        { "resource_server_identifier": "https://reports.example.com", "permission_name": "read:reports" }
    ] });
    let path = format!("/roles/{auditor}/permissions");
    let (status, answer) = crate::management::api(
        &h,
        reqwest::Method::POST,
        &path,
        Some(&token),
        Some(permission),
    )
    .await;
    assert!(status.is_success(), "{status}: {answer}");

    let driver = chromedriver().await;
    let client = browser(&driver).await;
    client.goto(&format!("{}/admin", h.issuer)).await.unwrap();
    text_of(&client, "table#users").await;
    click(&client, Locator::LinkText("Roles")).await;
    let roles = text_of(&client, "table#roles [data-role=\"auditor\"]").await;
    assert!(
        roles.contains("read:reports") && roles.contains("https://reports.example.com"),
        "{roles}"
    );
    keep_screenshot(&client, "roles").await;

    // The user's page gives the role, and takes it back.
    let user_page = format!("{}/admin/users/dev%7Cdev-user-1", h.issuer);
    client.goto(&user_page).await.unwrap();
    let offered = text_of(&client, "#role-to-add").await;
    assert!(offered.contains("auditor"), "{offered}");
    click(&client, Locator::Css("#add-role button")).await;
    let held = text_of(&client, "#user-roles [data-role=\"auditor\"]").await;
    assert!(held.contains("auditor"), "{held}");
    keep_screenshot(&client, "user-roles").await;
    click(
        &client,
        Locator::Css("#user-roles [data-role=\"auditor\"] button"),
    )
    .await;
    assert!(
        !shows(&client, "#user-roles [data-role=\"auditor\"]", false).await,
        "the role is still shown after Remove"
    );
    text_of(&client, "#role-to-add").await;
    client.close().await.unwrap();
}
