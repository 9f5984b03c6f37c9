//! The login service end to end, over real HTTP on loopback: an app signs a
//! user in through Claimsmith, which signs them in at the development
//! upstream provider and runs the real plugins.

use std::sync::Arc;

use crate::support::service_harness::*;
use crate::support::{measuring, plugin_wasm};
use claimsmith_devprovider::Faults;
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

#[tokio::test]
async fn the_happy_path_mints_tokens_that_verify_against_the_published_jwks() {
    let h = harness("").await;
    let discovery = h.discovery().await;
    assert_eq!(discovery["issuer"], json!(h.issuer));
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        json!(["S256"])
    );

    let redirect = h.web_login().await;
    let code = redirect.get("code").expect("a code");
    let (status, body) = h.exchange(code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let jwks = h.jwks().await;
    let id = verify(&body["id_token"], &jwks, "web-app", &h.issuer);
    assert_eq!(id["sub"], json!("dev|dev-user-1"));
    assert_eq!(id["nonce"], json!("app-nonce-1"));
    assert_eq!(id["name"], json!("Ada Lovelace"));
    assert_eq!(id["email"], json!("ada@example.com"));
    let access = verify(
        &body["access_token"],
        &jwks,
        "https://api.example.com",
        &h.issuer,
    );
    assert_eq!(access["geo_ip_country"], json!("NZ"));
    assert_eq!(body["token_type"], json!("Bearer"));
    assert!(
        body["refresh_token"].is_string(),
        "offline_access gives a refresh token"
    );

    let userinfo: Value = h
        .http
        .get(format!("{}/userinfo", h.issuer))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["sub"], json!("dev|dev-user-1"));
    assert_eq!(userinfo["email"], json!("ada@example.com"));

    let stored = h.stored_user().await.unwrap();
    assert_eq!(stored.profile["geo_ip_country"], json!("NZ"));
    assert!(
        !stored.profile.contains_key("user_type"),
        "okta-userinfo removed it"
    );
    let audit = h.store().audit_for_user("dev|dev-user-1").await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].outcome, claimsmith::store::AuditOutcome::Minted);
    let steps = audit[0].steps.as_array().unwrap();
    let names: Vec<_> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["okta-userinfo", "geo-claims", "mint"]);
}

#[tokio::test]
async fn a_second_login_counts_and_sees_the_metadata_of_the_first() {
    let h = harness(&echo_action()).await;
    for expected_count in [1, 2] {
        let redirect = h.web_login().await;
        let (status, body) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        let access = h.access_claims(&body).await;
        let seen = &access["seen_event"]["user"];
        assert_eq!(seen["logins_count"], json!(expected_count));
        // test-echo counts its runs in app metadata: the second login sees the first's.
        let previous = if expected_count == 1 {
            Value::Null
        } else {
            json!(1)
        };
        assert_eq!(seen["app_metadata"]["echo_count"], previous, "{seen}");
    }
    let stored = h.stored_user().await.unwrap();
    assert_eq!(stored.user.logins_count, 2);
    assert_eq!(stored.user.app_metadata["echo_count"], json!(2));
}

#[tokio::test]
async fn an_unregistered_redirect_uri_or_client_gets_an_error_page_never_a_redirect() {
    let h = harness("").await;
    for url in [
        h.authorize_url("web-app", "http://127.0.0.1:1/evil", &[]),
        h.authorize_url("web-app", &format!("{APP_REDIRECT}/extra"), &[]),
        h.authorize_url("no-such-app", APP_REDIRECT, &[]),
    ] {
        let response = h.http.get(url.clone()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
        assert!(response.headers().get("location").is_none(), "{url}");
    }
    assert_eq!(h.upstream.token_requests(), 0);
}

#[tokio::test]
async fn a_public_client_must_use_pkce_and_present_the_right_verifier() {
    let h = harness("").await;
    let without = h
        .browse(h.authorize_url("spa", SPA_REDIRECT, &[]), SPA_REDIRECT)
        .await;
    assert_eq!(without.get("error"), Some("invalid_request"), "{without:?}");

    let url = h.pkce_authorize_url("spa", &[]);
    let spa = [("redirect_uri", SPA_REDIRECT), ("client_id", "spa")];
    let redirect = h.browse(url.clone(), SPA_REDIRECT).await;
    let (status, body) = h.redeem(redirect.get("code").unwrap(), &spa, None).await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

    let redirect = h.browse(url.clone(), SPA_REDIRECT).await;
    let wrong = "a-different-verifier-that-is-also-long-enough-for-the-rules-x";
    let fields = [spa[0], spa[1], ("code_verifier", wrong)];
    let (status, body) = h.redeem(redirect.get("code").unwrap(), &fields, None).await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");

    let redirect = h.browse(url, SPA_REDIRECT).await;
    let fields = [spa[0], spa[1], ("code_verifier", VERIFIER)];
    let (status, body) = h.redeem(redirect.get("code").unwrap(), &fields, None).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
}

#[tokio::test]
async fn a_code_is_single_use() {
    let h = harness("").await;
    let redirect = h.web_login().await;
    let code = redirect.get("code").unwrap();
    assert_eq!(h.exchange(code, VERIFIER).await.0, StatusCode::OK);
    let (status, body) = h.exchange(code, VERIFIER).await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let h = harness_with_server("", "code_ttl_secs = 1").await;
    let redirect = h.web_login().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (status, body) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_and_the_right_one_then_works() {
    let h = harness("").await;
    let redirect = h.web_login().await;
    let code = redirect.get("code").unwrap();
    let web = [("redirect_uri", APP_REDIRECT), ("code_verifier", VERIFIER)];
    let (status, body) = h
        .redeem(code, &web, Some(("web-app", "not-the-secret")))
        .await;
    assert_oauth_error(&status, &body, StatusCode::UNAUTHORIZED, "invalid_client");
    // client_secret_post works the same way.
    let posted = [
        web[0],
        web[1],
        ("client_id", "web-app"),
        ("client_secret", "web-app-secret-0123"),
    ];
    let (status, body) = h.redeem(code, &posted, None).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
}

#[tokio::test]
async fn an_upstream_error_reaches_the_app_as_access_denied() {
    let h = harness("").await;
    h.upstream.set_faults(Faults {
        authorize_error: Some("access_denied".into()),
        ..Faults::default()
    });
    let redirect = h.web_login().await;
    assert_eq!(redirect.get("error"), Some("access_denied"), "{redirect:?}");
    assert!(redirect.get("code").is_none());
    h.assert_failure_told_by_reference(&redirect, "the identity provider answered access_denied")
        .await;
}

#[tokio::test]
async fn an_upstream_id_token_with_a_bad_signature_nonce_audience_issuer_or_expiry_mints_nothing() {
    let h = harness("").await;
    for (faults, expected) in [
        (
            Faults {
                bad_signature: true,
                ..Faults::default()
            },
            "InvalidSignature",
        ),
        (
            Faults {
                wrong_nonce: true,
                ..Faults::default()
            },
            "nonce",
        ),
        (
            Faults {
                token_error: true,
                ..Faults::default()
            },
            "refused",
        ),
        (
            Faults {
                wrong_audience: true,
                ..Faults::default()
            },
            "InvalidAudience",
        ),
        (
            Faults {
                wrong_issuer: true,
                ..Faults::default()
            },
            "InvalidIssuer",
        ),
        (
            // An hour ago: well past the 60 s leeway.
            Faults {
                expired_secs_ago: Some(3600),
                ..Faults::default()
            },
            "ExpiredSignature",
        ),
    ] {
        h.upstream.set_faults(faults);
        let redirect = h.web_login().await;
        assert_eq!(redirect.get("error"), Some("server_error"), "{redirect:?}");
        assert!(redirect.get("code").is_none());
        h.assert_failure_told_by_reference(&redirect, expected)
            .await;
    }
    assert!(h.stored_user().await.is_none());
}

#[tokio::test]
async fn an_upstream_id_token_expired_within_the_clock_leeway_is_accepted() {
    let h = harness("").await;
    // 60 s of leeway for the upstream's clock: 20 s past is taken, 100 s
    // past is not.
    for (ago, minted) in [(20, true), (100, false)] {
        h.upstream.set_faults(Faults {
            expired_secs_ago: Some(ago),
            ..Faults::default()
        });
        let redirect = h.web_login().await;
        assert_eq!(
            redirect.get("code").is_some(),
            minted,
            "{ago} s: {redirect:?}"
        );
        if !minted {
            h.assert_failure_told_by_reference(&redirect, "ExpiredSignature")
                .await;
        }
    }
}

#[tokio::test]
async fn an_upstream_id_token_for_several_audiences_must_name_this_client_as_azp() {
    let h = harness("").await;
    for (party, minted) in [
        (None, false),
        (Some("other-app"), false),
        (Some("claimsmith"), true),
    ] {
        h.upstream.set_faults(Faults {
            second_audience: Some("other-app".to_owned()),
            authorized_party: party.map(str::to_owned),
            ..Faults::default()
        });
        let redirect = h.web_login().await;
        assert_eq!(
            redirect.get("code").is_some(),
            minted,
            "{party:?}: {redirect:?}"
        );
        if !minted {
            h.assert_failure_told_by_reference(&redirect, "`azp` is not this client")
                .await;
        }
    }
}

#[tokio::test]
async fn unknown_upstream_keys_refetch_the_jwks_at_most_once_in_five_seconds() {
    let h = harness("").await;
    h.upstream.rotate_key().unwrap();
    // A login with the new key: its fetch of the JWKS leaves the old key out.
    assert!(h.web_login().await.get("code").is_some());
    let before = h.upstream.jwks_requests();
    // From now on every id token names a key the JWKS does not publish.
    h.upstream.set_faults(Faults {
        retired_key_signs: true,
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    for _ in 0..10 {
        let redirect = h.web_login().await;
        assert!(redirect.get("code").is_none(), "{redirect:?}");
    }
    let refetches = h.upstream.jwks_requests() - before;
    // One fetch per started five seconds, however slow the machine; without
    // the throttle, one per login.
    let allowed = 1 + started.elapsed().as_secs() as usize / 5;
    assert!(
        refetches <= allowed,
        "{refetches} JWKS fetches for 10 logins in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_upstream_userinfo_failure_fails_the_login_in_the_plugin() {
    let h = harness("").await;
    h.upstream.set_faults(Faults {
        userinfo_status: Some(500),
        ..Faults::default()
    });
    let redirect = h.web_login().await;
    assert_eq!(redirect.get("error"), Some("server_error"));
    h.assert_failure_told_by_reference(&redirect, "StatusCode: 500")
        .await;
    let audit = h.store().audit_for_user("dev|dev-user-1").await.unwrap();
    assert!(
        matches!(&audit[0].outcome, claimsmith::store::AuditOutcome::Failed { error } if error.contains("okta-userinfo"))
    );
}

#[tokio::test]
async fn a_denying_plugin_fails_the_login_and_stores_nothing_it_set() {
    // The echo may reach the issuer, so the user is shown to the Management
    // API during the chain: that view must be gone too.
    let denier = format!(
        "[plugins.echo]\npath = {:?}\nworld = \"post-login-action\"\nallowed_origins = [\"ISSUER\"]\n[plugins.denier]\npath = {:?}\nworld = \"post-login-action\"\n[[actions]]\nplugin = \"echo\"\n[[actions]]\nplugin = \"denier\"\n",
        plugin_wasm("test-echo"),
        plugin_wasm("test-denier")
    );
    let h = start_edited_harness(&denier, "", false, |config, issuer| {
        config.replace("ISSUER", issuer)
    })
    .await;
    let redirect = h.web_login().await;
    assert_eq!(redirect.get("error"), Some("access_denied"));
    assert_eq!(
        redirect.get("error_description"),
        Some("account locked: dev|dev-user-1")
    );
    assert!(redirect.get("code").is_none());
    // Metadata the echo set before the denial is not stored: a denied login
    // changes nothing about the user (documented in the README), and the
    // Management API's view of the user during the chain is gone with it.
    assert!(h.stored_user().await.is_none());
    let shown = h
        .store()
        .user_signing_in("dev|dev-user-1", 0)
        .await
        .unwrap();
    assert!(shown.is_none(), "{shown:?}");
    let audit = h.store().audit_for_user("dev|dev-user-1").await.unwrap();
    assert_eq!(
        audit[0].outcome,
        claimsmith::store::AuditOutcome::Denied {
            reason: "account locked: dev|dev-user-1".into()
        }
    );
}

#[tokio::test]
async fn a_refresh_reruns_the_actions_and_rotates_the_token() {
    let h = harness(&echo_action()).await;
    let redirect = h.web_login().await;
    let (_, first) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
    let refresh_token = first["refresh_token"].as_str().unwrap().to_owned();

    let refresh = |token: String| {
        let h = &h;
        async move {
            h.token(
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
                Some(("web-app", "web-app-secret-0123")),
            )
            .await
        }
    };
    let (status, second) = refresh(refresh_token.clone()).await;
    assert_eq!(status, StatusCode::OK, "{second:?}");
    let access = h.access_claims(&second).await;
    // The actions ran again: the echo saw the count its first run stored.
    assert_eq!(
        access["seen_event"]["user"]["app_metadata"]["echo_count"],
        json!(1)
    );
    assert_eq!(access["geo_ip_country"], json!("NZ"));
    // A refresh is not a sign-in: the count stays.
    assert_eq!(access["seen_event"]["user"]["logins_count"], json!(1));
    let stored = h.stored_user().await.unwrap();
    assert_eq!(stored.user.logins_count, 1);
    assert_eq!(
        stored.user.app_metadata["echo_count"],
        json!(2),
        "the refresh's actions stored their metadata"
    );
    let rotated = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, refresh_token);

    // The actions started from the scopes granted at sign-in, not from the
    // ones the first run added; they added theirs again.
    assert_eq!(
        access["seen_event"]["scopes"],
        json!(["openid", "profile", "email", "offline_access"])
    );
    assert!(
        second["scope"].as_str().unwrap().contains("echo:read"),
        "{second:?}"
    );

    // Once the rotated token was used, reusing the old one is a theft: it is
    // refused and revokes the whole family.
    let (status, third) = refresh(rotated).await;
    assert_eq!(status, StatusCode::OK, "{third:?}");
    let (status, body) = refresh(refresh_token).await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, _) = refresh(third["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_client_that_lost_a_refresh_answer_can_retry_and_the_lost_token_dies() {
    let h = harness("").await;
    let first = refresh_token_of(&h.signed_in().await);
    let (status, lost) = h.refresh(&first).await;
    assert_eq!(status, StatusCode::OK, "{lost:?}");
    // The answer never reached the client: it retries with what it holds.
    let (status, retried) = h.refresh(&first).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a retry is not a theft: {retried:?}"
    );
    let (status, next) = h.refresh(&refresh_token_of(&retried)).await;
    assert_eq!(status, StatusCode::OK, "the family lives on: {next:?}");
    // Yet the answer said to be lost is in someone's hands: presenting it
    // is refused and ends the family.
    let (status, body) = h.refresh(&refresh_token_of(&lost)).await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, body) = h.refresh(&refresh_token_of(&next)).await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn without_a_grace_window_a_second_presentation_revokes_the_family() {
    let h = harness_with_server("", "refresh_token_reuse_grace_secs = 0").await;
    let first = refresh_token_of(&h.signed_in().await);
    let (_, rotated) = h.refresh(&first).await;
    let (status, body) = h.refresh(&first).await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, _) = h.refresh(&refresh_token_of(&rotated)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_refresh_token_family_ends_at_its_absolute_lifetime_however_often_it_rotates() {
    let clock = SteppedClock::new();
    let h = harness_on_clock("refresh_token_lifetime_secs = 3", clock.clone()).await;
    let mut token = refresh_token_of(&h.signed_in().await);
    // Two rotations inside the family's 3 s, each a second apart.
    for _ in 0..2 {
        clock.advance(1);
        let (status, body) = h.refresh(&token).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        token = refresh_token_of(&body);
    }
    // 3 s after sign-in the family has ended, though its last token is new.
    clock.advance(1);
    let (status, body) = h.refresh(&token).await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family_rfc_7009() {
    let h = harness("").await;
    let discovery = h.discovery().await;
    let endpoint = discovery["revocation_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = refresh_token_of(&h.signed_in().await);
    let (_, rotated) = h.refresh(&first).await;
    let revoke = |token: String, secret: &'static str| {
        let request = h
            .http
            .post(&endpoint)
            .basic_auth("web-app", Some(secret))
            .form(&[
                ("token", token),
                ("token_type_hint", "refresh_token".into()),
            ]);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(
        revoke(first.clone(), "wrong").await,
        StatusCode::UNAUTHORIZED,
        "the client must authenticate"
    );
    assert_eq!(
        revoke("not-a-token".into(), "web-app-secret-0123").await,
        StatusCode::OK
    );
    assert_eq!(
        h.refresh(&refresh_token_of(&rotated)).await.0,
        StatusCode::OK,
        "not revoked yet"
    );
    let (_, latest) = h.refresh(&refresh_token_of(&rotated)).await;
    // Revoking any token of the family (here the first, long used) ends it.
    assert_eq!(revoke(first, "web-app-secret-0123").await, StatusCode::OK);
    let (status, body) = h.refresh(&refresh_token_of(&latest)).await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn a_replayed_code_revokes_the_refresh_tokens_it_gave() {
    let h = harness("").await;
    let redirect = h.web_login().await;
    let code = redirect.get("code").unwrap();
    let (status, first) = h.exchange(code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h.exchange(code, VERIFIER).await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, body) = h.refresh(&refresh_token_of(&first)).await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sign_in_requests_holds_no_memory_and_a_real_login_still_succeeds() {
    let _heavy = measuring::heavy().await;
    // Its own process, so that the memory measured is the service's alone.
    let h = harness_as_process("").await;
    let Host::Process(process) = &h.host else {
        unreachable!("started as a process")
    };
    let flood = |state_len: usize, requests: usize| {
        let state = "s".repeat(state_len);
        // A nonce at its limit too: what a server keeping pending logins
        // would keep is as large as it can be.
        let nonce = "n".repeat(500);
        let h = &h;
        async move {
            let mut answers = Vec::new();
            // No cookie store: an attacker drops what it is given.
            let attacker = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            for batch in 0..requests / 50 {
                let mut sends = tokio::task::JoinSet::new();
                for i in 0..50 {
                    let url = h.pkce_authorize_url(
                        "spa",
                        &[
                            ("state", &format!("{state}{batch}-{i}")),
                            ("nonce", &format!("{nonce}{batch}-{i}")),
                        ],
                    );
                    sends.spawn(attacker.get(url).send());
                }
                while let Some(response) = sends.join_next().await {
                    let response = response.unwrap().unwrap();
                    answers.push(response.headers()["location"].to_str().unwrap().to_owned());
                }
            }
            answers
        }
    };
    // The first round grows the allocator's pools and both sides' buffers;
    // a server that held pending logins grows again on every round.
    const ACCEPTED: usize = 4000;
    let mut rounds = Vec::new();
    let mut resident = vec![process.resident_bytes()];
    for _ in 0..3 {
        rounds.push((flood(60_000, 100).await, flood(1010, ACCEPTED).await));
        resident.push(process.resident_bytes());
    }
    let grown = resident[3].saturating_sub(resident[1]);
    println!(
        "the service's resident memory after each round of {} sign-in requests: {:?} MiB",
        ACCEPTED + 100,
        resident.iter().map(|b| b >> 20).collect::<Vec<_>>()
    );
    let (huge, accepted) = &rounds[2];
    assert!(
        huge.iter().all(|l| l.starts_with(SPA_REDIRECT)
            && l.contains("error=invalid_request")
            && !l.contains("state=")),
        "an oversized state is refused and not echoed: {}",
        &huge[0][..200.min(huge[0].len())]
    );
    assert_eq!(accepted.len(), ACCEPTED);
    assert!(
        accepted.iter().all(|l| l.starts_with(h.upstream.issuer())),
        "a state and a nonce at their limits are accepted"
    );
    // Each accepted login carries over 1.5 KB of state and nonce alone (its
    // sealed cookie is about 3.5 KB): 8,000 of them kept on the server over
    // the last two rounds would be well over 12 MiB. Nothing on this path
    // touches the database, so its page cache does not grow either.
    assert!(
        grown < 12 << 20,
        "resident memory grew by {grown} bytes over the last two rounds"
    );
    assert!(h.web_login().await.get("code").is_some());
}

#[tokio::test]
async fn an_oversized_nonce_is_refused() {
    let h = harness("").await;
    let nonce = "n".repeat(513);
    let url = h.authorize_url("spa", SPA_REDIRECT, &[("nonce", &nonce)]);
    let response = h.http.get(url).send().await.unwrap();
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(SPA_REDIRECT), "{location}");
    assert!(location.contains("error=invalid_request"), "{location}");
}

#[tokio::test]
async fn a_code_is_bound_to_its_client_and_redirect_uri_and_is_spent_by_a_wrong_try() {
    let h = harness("").await;
    // Another registered client cannot redeem web-app's code.
    let redirect = h.web_login().await;
    let code = redirect.get("code").unwrap();
    let as_spa = [
        ("redirect_uri", SPA_REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", "spa"),
    ];
    let (status, body) = h.redeem(code, &as_spa, None).await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(
        h.exchange(code, VERIFIER).await.0,
        StatusCode::BAD_REQUEST,
        "spent by the wrong try"
    );

    // The redirect URI must be the authorization request's, exactly.
    let redirect = h.web_login().await;
    let other_uri = format!("{APP_REDIRECT}?x=1");
    let fields = [
        ("redirect_uri", other_uri.as_str()),
        ("code_verifier", VERIFIER),
    ];
    let (status, body) = h
        .redeem(
            redirect.get("code").unwrap(),
            &fields,
            Some(("web-app", "web-app-secret-0123")),
        )
        .await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn a_verifier_for_a_code_issued_without_a_challenge_is_refused() {
    let h = harness("").await;
    let redirect = h
        .browse(h.authorize_url("web-app", APP_REDIRECT, &[]), APP_REDIRECT)
        .await;
    let (status, body) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[tokio::test]
async fn another_client_cannot_use_or_burn_a_refresh_token() {
    let h = harness("").await;
    let redirect = h.web_login().await;
    let (_, first) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
    let refresh_token = first["refresh_token"].as_str().unwrap();
    let (status, body) = h
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", "spa"),
            ],
            None,
        )
        .await;
    assert_oauth_error(&status, &body, StatusCode::BAD_REQUEST, "invalid_grant");
    let (status, body) = h
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            Some(("web-app", "web-app-secret-0123")),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the real client still can: {body:?}"
    );
    let first_access = h.access_claims(&first).await;
    let refreshed = h.access_claims(&body).await;
    assert_eq!(
        refreshed["auth_time"], first_access["auth_time"],
        "a refresh is not a new authentication"
    );
}

#[tokio::test]
async fn userinfo_takes_only_a_valid_access_token() {
    let h = harness("").await;
    let redirect = h.web_login().await;
    let (_, tokens) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
    let userinfo = |token: String| {
        let h = &h;
        async move {
            h.http
                .get(format!("{}/userinfo", h.issuer))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        userinfo(tokens["access_token"].as_str().unwrap().to_owned()).await,
        StatusCode::OK
    );
    assert_eq!(
        userinfo(tokens["id_token"].as_str().unwrap().to_owned()).await,
        StatusCode::UNAUTHORIZED
    );
    let mut tampered = tokens["access_token"].as_str().unwrap().to_owned();
    tampered.push('x');
    assert_eq!(userinfo(tampered).await, StatusCode::UNAUTHORIZED);

    // The scheme name is case-insensitive, and the answer is never cached.
    let response = h
        .http
        .get(format!("{}/userinfo", h.issuer))
        .header(
            "authorization",
            format!("bearer {}", tokens["access_token"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn a_redirect_carrying_a_code_is_not_cacheable_and_basic_is_case_insensitive() {
    let h = harness("").await;
    let url = h.pkce_authorize_url("web-app", &[]);
    let callback_url = h.callback_url(url).await;
    let to_app = h.http.get(callback_url).send().await.unwrap();
    assert_eq!(to_app.headers()["cache-control"], "no-store");
    let location = Url::parse(to_app.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(name, _)| name == "code")
        .unwrap()
        .1
        .into_owned();
    use base64::Engine as _;
    let credentials =
        base64::engine::general_purpose::STANDARD.encode("web-app:web-app-secret-0123");
    let response = h
        .http
        .post(format!("{}/oauth/token", h.issuer))
        .header("authorization", format!("basic {credentials}"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", APP_REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_callback_from_another_browser_than_the_sign_in_is_refused() {
    let h = harness("").await;
    let url = h.pkce_authorize_url("web-app", &[]);
    // The victim's browser starts a sign-in; the attacker's ends it.
    let callback_url = h.callback_url(url).await;
    let other_browser = browser();
    let response = other_browser.get(callback_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response.headers().get("location").is_none(),
        "no code is handed out"
    );
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("did not start in this browser")
    );
    assert!(h.stored_user().await.is_none());
}

#[tokio::test]
async fn a_rotated_upstream_key_is_fetched_once_and_accepted() {
    let h = harness("").await;
    let first = h.web_login().await;
    assert!(first.get("code").is_some(), "{first:?}");
    h.upstream.rotate_key().unwrap();
    // The new kid is unknown to the cached JWKS: it is fetched again.
    let second = h.web_login().await;
    assert!(second.get("code").is_some(), "{second:?}");
    // A second rotation soon after does not wait out a long throttle.
    tokio::time::sleep(std::time::Duration::from_millis(5200)).await;
    h.upstream.rotate_key().unwrap();
    let third = h.web_login().await;
    assert!(third.get("code").is_some(), "{third:?}");
}

#[tokio::test]
async fn a_key_withdrawn_upstream_is_not_trusted_past_the_jwks_max_age() {
    let h = harness("").await;
    h.upstream.set_faults(Faults {
        jwks_max_age_secs: Some(1),
        ..Faults::default()
    });
    // A new key: fetched for its unknown kid, and cached for a second.
    h.upstream.rotate_key().unwrap();
    assert!(h.web_login().await.get("code").is_some());
    // The key is withdrawn, but whoever stole it still signs with it.
    h.upstream.rotate_key().unwrap();
    h.upstream.set_faults(Faults {
        jwks_max_age_secs: Some(1),
        retired_key_signs: true,
        ..Faults::default()
    });
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let redirect = h.web_login().await;
    assert_eq!(redirect.get("error"), Some("server_error"), "{redirect:?}");
    h.assert_failure_told_by_reference(&redirect, "unknown signing key")
        .await;
}

#[tokio::test]
async fn a_response_naming_another_upstream_is_refused_rfc_9207() {
    let second = dev_provider().await;
    let other = second.issuer().to_owned();
    let h = harness(&format!(
        "[[connections]]\nname = \"second\"\nissuer = \"{other}\"\nclient_id = \"claimsmith\"\n\
         client_secret = {{ value = \"{UPSTREAM_SECRET}\" }}\n"
    ))
    .await;
    let discovery = h.discovery().await;
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"],
        json!(true)
    );
    let login_at =
        |connection: &'static str| h.pkce_authorize_url("web-app", &[("connection", connection)]);
    // Both connections sign in, and our answer names us.
    for connection in ["dev", "second"] {
        let redirect = h.browse(login_at(connection), APP_REDIRECT).await;
        assert!(redirect.get("code").is_some(), "{connection}: {redirect:?}");
        assert_eq!(redirect.get("iss"), Some(h.issuer.as_str()));
    }
    // A response for the `dev` sign-in that names the second upstream, or
    // names none though `dev` promised to, is refused before its code is used.
    for iss in [Some(other.as_str()), None] {
        let mut callback = h.callback_url(login_at("dev")).await;
        let pairs: Vec<(String, String)> = callback
            .query_pairs()
            .filter(|(name, _)| name != "iss")
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        callback.query_pairs_mut().clear().extend_pairs(&pairs);
        if let Some(iss) = iss {
            callback.query_pairs_mut().append_pair("iss", iss);
        }
        let tokens_before = h.upstream.token_requests();
        let redirect = h.browse(callback, APP_REDIRECT).await;
        assert_eq!(redirect.get("error"), Some("server_error"), "{redirect:?}");
        assert_eq!(
            h.upstream.token_requests(),
            tokens_before,
            "the code was not sent"
        );
        h.assert_failure_told_by_reference(&redirect, "authorization response")
            .await;
    }
}

#[tokio::test]
async fn a_slow_client_is_cut_off_and_connections_beyond_the_cap_wait() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let h = harness_with_server("", "max_connections = 2\nheader_read_timeout_secs = 1").await;
    let address = h.issuer.trim_start_matches("http://").to_owned();
    let discovery = || {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(400))
            .build()
            .unwrap()
            .get(format!("{}/.well-known/openid-configuration", h.issuer))
            .send()
    };
    // Two slow-loris clients take both connections: headers never end.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"GET /.well-known/openid-configuration HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    assert!(discovery().await.is_err(), "a third connection waits");
    // The header-read timeout closes them...
    for mut stream in slow {
        let mut answer = Vec::new();
        let closed = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut answer),
        )
        .await;
        assert!(closed.is_ok(), "a slow client was not cut off");
    }
    // ...and the service serves again.
    let response = discovery().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_oversized_request_body_is_refused() {
    let h = harness("").await;
    let padding = "x".repeat(200 * 1024);
    let response = h
        .http
        .post(format!("{}/oauth/token", h.issuer))
        .form(&[("grant_type", "refresh_token"), ("padding", &padding)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_client_is_refused_for_a_while_after_too_many_wrong_secrets() {
    let h = harness("").await;
    let redirect = h.web_login().await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", redirect.get("code").unwrap()),
        ("redirect_uri", APP_REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    for _ in 0..10 {
        let (status, _) = h.token(&form, Some(("web-app", "guess"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = h
        .token(&form, Some(("web-app", "web-app-secret-0123")))
        .await;
    assert_oauth_error(
        &status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "invalid_client",
    );
    // The code was not spent by the refusals, and other clients go on.
    let spa = h
        .browse(h.pkce_authorize_url("spa", &[]), SPA_REDIRECT)
        .await;
    let fields = [
        ("redirect_uri", SPA_REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", "spa"),
    ];
    let (status, body) = h.redeem(spa.get("code").unwrap(), &fields, None).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
}

#[tokio::test]
async fn wasi_grants_a_plugin_no_file_environment_socket_or_name_lookup() {
    // componentize-py imports all of wasi:filesystem, wasi:cli and
    // wasi:sockets in every component, and Python's standard library can
    // reach them. (JavaScript under componentize-js has no file, environment
    // or socket API at all: its one door is fetch, see http.rs.)
    for wasm in [
        plugin_wasm("test-wasi-prober"),
        crate::support::language_plugin_wasm("python", "test-py-prober"),
    ] {
        let prober = format!(
            "[plugins.prober]\npath = {wasm:?}\nworld = \"post-login-action\"\n[[actions]]\nplugin = \"prober\"\n",
        );
        let h = harness(&prober).await;
        let redirect = h.web_login().await;
        let (status, tokens) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{wasm:?} handled every refusal");
        let access = h.access_claims(&tokens).await;
        let probe = access["wasi_probe"].as_object().unwrap();
        for door in [
            "read_file",
            "write_file",
            "list_dir",
            "env_var",
            "tcp_connect",
            "tcp_listen",
            "udp_bind",
            "dns",
        ] {
            let outcome = probe[door].as_str().unwrap();
            assert!(
                outcome.starts_with("denied: "),
                "{wasm:?} {door}: {outcome}"
            );
        }
        assert_eq!(probe["env_vars"], json!([]), "{wasm:?}");
        if let Some(args) = probe.get("args") {
            assert_eq!(args, &json!([]), "{wasm:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_during_a_burst_of_logins_loses_no_minted_login_and_serves_at_once() {
    let _heavy = measuring::heavy().await;
    let mut h = harness_as_process("").await;
    // A burst of sign-ins, each its own browser; the host dies in the middle,
    // once a few have their tokens.
    let minted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..48 {
        let url = h.pkce_authorize_url("web-app", &[]);
        let issuer = h.issuer.clone();
        let minted = minted.clone();
        logins.spawn(async move {
            if sign_in_and_redeem(url, &issuer).await {
                minted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while minted.load(std::sync::atomic::Ordering::SeqCst) < 4
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let Host::Process(process) = &mut h.host else {
        unreachable!("started as a process")
    };
    // SIGKILL: no shutdown code runs.
    process.0.kill().unwrap();
    process.0.wait().unwrap();
    while logins.join_next().await.is_some() {}
    let minted = minted.load(std::sync::atomic::Ordering::SeqCst);
    println!("{minted} of 48 sign-ins got tokens before the kill");
    assert!(minted >= 4, "the kill came before any login finished");

    // Every login that returned tokens has its user and its audit row.
    let database = h.dir.path().join("data/claimsmith.db");
    let store = claimsmith::store::Store::open_sqlite(
        &database,
        claimsmith::config::Synchronous::default(),
    )
    .await
    .unwrap();
    let audit = store.audit_for_user("dev|dev-user-1").await.unwrap();
    let recorded = audit
        .iter()
        .filter(|entry| entry.outcome == claimsmith::store::AuditOutcome::Minted)
        .count();
    assert!(
        recorded >= minted,
        "{recorded} minted rows for {minted} token answers"
    );
    let user = store.load_user("dev|dev-user-1").await.unwrap().unwrap();
    assert!(user.user.logins_count as usize >= minted);
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    drop(store);

    // It starts again on the same data and serves at once.
    h.host = Host::Process(
        ServeProcess::start(&h.config, &h.dir.path().join("serve.log"), &h.issuer).await,
    );
    assert!(h.web_login().await.get("code").is_some());
}

/// One sign-in in a fresh browser, code redeemed: true when tokens came back.
async fn sign_in_and_redeem(url: Url, issuer: &str) -> bool {
    let browser = browser();
    let mut url = url;
    for _ in 0..6 {
        if url.as_str().starts_with(APP_REDIRECT) {
            let Some(code) = url
                .query_pairs()
                .find(|(name, _)| name == "code")
                .map(|(_, code)| code.into_owned())
            else {
                return false;
            };
            let Ok(response) = browser
                .post(format!("{issuer}/oauth/token"))
                .basic_auth("web-app", Some("web-app-secret-0123"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", APP_REDIRECT),
                    ("code_verifier", VERIFIER),
                ])
                .send()
                .await
            else {
                return false;
            };
            return response.status().is_success()
                && response
                    .json::<Value>()
                    .await
                    .is_ok_and(|body| body["access_token"].is_string());
        }
        let Ok(response) = browser.get(url.clone()).send().await else {
            return false;
        };
        let Some(location) = response.headers().get("location") else {
            return false;
        };
        url = url.join(location.to_str().unwrap()).unwrap();
    }
    false
}

#[tokio::test]
async fn a_single_page_app_origin_may_call_the_token_endpoint_and_no_other_origin() {
    let h = harness("").await;
    let preflight = |origin: &'static str, path: &'static str| {
        h.http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", h.issuer))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight(SPA_ORIGIN, "/oauth/token").await.unwrap();
    assert_eq!(allowed.status(), StatusCode::NO_CONTENT);
    assert_eq!(allowed.headers()["access-control-allow-origin"], SPA_ORIGIN);
    assert!(
        allowed.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let refused = preflight("https://evil.example", "/oauth/token")
        .await
        .unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    // The answers themselves, errors included, carry the header for the
    // SPA's origin only; /authorize is navigated to and has none.
    for (origin, expected) in [
        (SPA_ORIGIN, Some(SPA_ORIGIN)),
        ("https://evil.example", None),
    ] {
        let token = h
            .http
            .post(format!("{}/oauth/token", h.issuer))
            .header("origin", origin)
            .form(&[("grant_type", "refresh_token"), ("client_id", "spa")])
            .send()
            .await
            .unwrap();
        let jwks = h
            .http
            .get(format!("{}/.well-known/jwks.json", h.issuer))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        for response in [token, jwks] {
            assert_eq!(
                response
                    .headers()
                    .get("access-control-allow-origin")
                    .map(|v| v.to_str().unwrap()),
                expected
            );
        }
    }
    let authorize = h
        .http
        .get(h.authorize_url("spa", SPA_REDIRECT, &[]))
        .header("origin", SPA_ORIGIN)
        .send()
        .await
        .unwrap();
    assert!(
        authorize
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

/// Property: whatever an authorization or token request holds, the service
/// answers with a client error or a redirect it may make (to the upstream,
/// or to the client's registered URI), never a server error, and keeps
/// serving.
#[test]
fn any_authorize_or_token_request_gets_a_clear_answer() {
    use proptest::prelude::*;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let h = runtime.block_on(harness(""));
    let names = prop_oneof![
        Just("response_type"),
        Just("client_id"),
        Just("redirect_uri"),
        Just("scope"),
        Just("state"),
        Just("nonce"),
        Just("code_challenge"),
        Just("code_challenge_method"),
        Just("connection"),
        Just("audience"),
        Just("grant_type"),
        Just("code"),
        Just("code_verifier"),
        Just("refresh_token"),
        Just("client_secret"),
    ];
    let values = prop_oneof![
        Just("code".to_owned()),
        Just("web-app".to_owned()),
        Just("spa".to_owned()),
        Just(APP_REDIRECT.to_owned()),
        Just("openid".to_owned()),
        Just("S256".to_owned()),
        Just("authorization_code".to_owned()),
        Just("refresh_token".to_owned()),
        any::<String>(),
    ];
    let request = proptest::collection::vec((names, values), 0..10);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(128));
    runner
        .run(&request, |fields| {
            let (authorize, token) = runtime.block_on(async {
                let mut url = Url::parse(&format!("{}/authorize", h.issuer)).unwrap();
                url.query_pairs_mut().extend_pairs(&fields);
                let authorize = h.http.get(url).send().await.unwrap();
                let token = h
                    .http
                    .post(format!("{}/oauth/token", h.issuer))
                    .form(&fields)
                    .send()
                    .await
                    .unwrap();
                (authorize, token)
            });
            let status = authorize.status();
            prop_assert!(
                status == StatusCode::BAD_REQUEST || status.is_redirection(),
                "/authorize answered {status} to {fields:?}"
            );
            if let Some(location) = authorize.headers().get("location") {
                let location = location.to_str().unwrap();
                prop_assert!(
                    location.starts_with(APP_REDIRECT)
                        || location.starts_with(SPA_REDIRECT)
                        || location.starts_with(h.upstream.issuer()),
                    "redirected to {location}"
                );
            }
            let status = token.status();
            let body: Value = runtime.block_on(token.json()).unwrap();
            prop_assert!(status.is_client_error(), "/oauth/token answered {status}");
            prop_assert!(body["error"].is_string(), "{body}");
            Ok(())
        })
        .unwrap();
    // Still serving.
    assert!(runtime.block_on(h.web_login()).get("code").is_some());
}

#[tokio::test]
async fn prompt_and_max_age_are_passed_upstream_and_enforced() {
    let h = harness("").await;
    let pkce = [
        ("code_challenge", challenge(VERIFIER)),
        ("code_challenge_method", "S256".to_owned()),
    ];
    let url = |extra: &[(&str, &str)]| {
        let mut fields: Vec<(&str, &str)> = pkce.iter().map(|(n, v)| (*n, v.as_str())).collect();
        fields.extend_from_slice(extra);
        h.authorize_url("web-app", APP_REDIRECT, &fields)
    };
    // Passed on to the upstream as asked.
    let to_upstream = h
        .http
        .get(url(&[("prompt", "login"), ("max_age", "300")]))
        .send()
        .await
        .unwrap();
    let location = to_upstream.headers()["location"].to_str().unwrap();
    assert!(
        location.contains("prompt=login") && location.contains("max_age=300"),
        "{location}"
    );
    // Malformed requests are refused.
    for bad in [
        [("prompt", "none login"), ("max_age", "1")],
        [("prompt", "sometimes"), ("max_age", "1")],
        [("prompt", "login"), ("max_age", "soon")],
    ] {
        let redirect = h.browse(url(&bad), APP_REDIRECT).await;
        assert_eq!(redirect.get("error"), Some("invalid_request"), "{bad:?}");
    }
    // A fresh authentication passes max_age and prompt=login.
    let redirect = h
        .browse(
            url(&[("prompt", "login"), ("max_age", "300")]),
            APP_REDIRECT,
        )
        .await;
    assert!(redirect.get("code").is_some(), "{redirect:?}");
    // An old session at the upstream does not.
    h.upstream.set_faults(Faults {
        stale_auth_secs: Some(3600),
        ..Faults::default()
    });
    for (asked, detail) in [
        ([("max_age", "300")], "more than max_age 300 s"),
        ([("prompt", "login")], "as prompt=login asked"),
    ] {
        let redirect = h.browse(url(&asked), APP_REDIRECT).await;
        assert_eq!(redirect.get("error"), Some("login_required"), "{asked:?}");
        h.assert_failure_told_by_reference(&redirect, detail).await;
    }
    assert!(
        h.browse(url(&[]), APP_REDIRECT).await.get("code").is_some(),
        "nothing asked"
    );
    // prompt=none: the upstream's answer that the user must interact
    // reaches the app as it is.
    h.upstream.set_faults(Faults {
        authorize_error: Some("login_required".into()),
        ..Faults::default()
    });
    let redirect = h.browse(url(&[("prompt", "none")]), APP_REDIRECT).await;
    assert_eq!(
        redirect.get("error"),
        Some("login_required"),
        "{redirect:?}"
    );
}

#[tokio::test]
async fn the_apps_acr_values_go_upstream_and_its_acr_and_amr_reach_the_actions_and_id_tokens() {
    let h = harness(&echo_action()).await;
    const MFA: &str = "urn:example:loa:mfa";
    let url = h.pkce_authorize_url(
        "web-app",
        &[("acr_values", &format!("{MFA} urn:example:loa:pwd"))],
    );
    let to_upstream = h.http.get(url.clone()).send().await.unwrap();
    let location = to_upstream.headers()["location"].to_str().unwrap();
    let upstream_query: Vec<(String, String)> = Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    assert!(
        upstream_query.contains(&("acr_values".into(), format!("{MFA} urn:example:loa:pwd"))),
        "{location}"
    );

    // The development upstream meets the first value, with a one-time code.
    let redirect = h.browse(url, APP_REDIRECT).await;
    let (status, tokens) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{tokens:?}");
    let jwks = h.jwks().await;
    let id = verify(&tokens["id_token"], &jwks, "web-app", &h.issuer);
    assert_eq!(
        (&id["acr"], &id["amr"]),
        (&json!(MFA), &json!(["pwd", "otp"]))
    );
    let seen = &h.access_claims(&tokens).await["seen_event"]["authentication"];
    assert_eq!(seen["acr"], json!(MFA), "{seen}");
    let methods: Vec<&Value> = seen["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["name"])
        .collect();
    assert_eq!(methods, [&json!("pwd"), &json!("otp")], "{seen}");

    // A refresh is no new authentication: it keeps what the sign-in got.
    let (status, refreshed) = h.refresh(&refresh_token_of(&tokens)).await;
    assert_eq!(status, StatusCode::OK, "{refreshed:?}");
    let id = verify(&refreshed["id_token"], &jwks, "web-app", &h.issuer);
    assert_eq!(
        (&id["acr"], &id["amr"]),
        (&json!(MFA), &json!(["pwd", "otp"]))
    );
    let seen = &h.access_claims(&refreshed).await["seen_event"]["authentication"];
    assert_eq!(seen["acr"], json!(MFA), "{seen}");

    // Without acr_values the upstream sends neither, nor does Claimsmith.
    let plain = h.signed_in().await;
    let id = verify(&plain["id_token"], &jwks, "web-app", &h.issuer);
    assert!(id.get("acr").is_none() && id.get("amr").is_none(), "{id:?}");
}

/// What test-echo saw as `event.request.ip` in a web login whose every
/// request carried `headers`.
async fn seen_ip(h: &Harness, headers: &[(&str, &str)]) -> Value {
    let url = h.pkce_authorize_url("web-app", &[]);
    let redirect = h.browse_with_headers(url, APP_REDIRECT, headers).await;
    let (status, body) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let access = h.access_claims(&body).await;
    access["seen_event"]["request"]["ip"].clone()
}

#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let spoofed = [
        ("x-forwarded-for", "198.51.100.7"),
        ("forwarded", "for=198.51.100.8"),
    ];
    // No trusted proxies: the headers are a client's words, ignored.
    let direct = harness(&echo_action()).await;
    assert_eq!(seen_ip(&direct, &spoofed).await, json!("127.0.0.1"));

    // Behind a trusted proxy (the test's loopback peer), the header it is
    // configured to write names the client, X-Forwarded-For by default; the
    // other is what the client sent, passed on, and is not read.
    let proxied = harness_with_server(&echo_action(), r#"trusted_proxies = ["127.0.0.0/8"]"#).await;
    assert_eq!(seen_ip(&proxied, &spoofed).await, json!("198.51.100.7"));
    let rfc_7239 = harness_with_server(
        &echo_action(),
        "trusted_proxies = [\"127.0.0.0/8\"]\nforwarded_header = \"forwarded\"",
    )
    .await;
    assert_eq!(seen_ip(&rfc_7239, &spoofed).await, json!("198.51.100.8"));
    // A client may prepend whatever it likes: the right-most address that is
    // not a trusted proxy is the one the proxy saw.
    let prepended = [("x-forwarded-for", "192.0.2.66, 198.51.100.7")];
    assert_eq!(seen_ip(&proxied, &prepended).await, json!("198.51.100.7"));
    // Without a header, the proxy's own address.
    assert_eq!(seen_ip(&proxied, &[]).await, json!("127.0.0.1"));
}

#[tokio::test]
async fn the_admin_listener_counts_logins_and_plugin_calls() {
    // An action that always runs out of fuel, skipped: a limit trip per login.
    let h = harness(&format!(
        "[plugins.looper]\npath = {:?}\nworld = \"post-login-action\"\n\
         limits = {{ fuel = 200000 }}\n[[actions]]\nplugin = \"looper\"\non_error = \"continue\"\n",
        plugin_wasm("test-looper")
    ))
    .await;
    let admin = admin_listener(&h).await;
    let minted = r#"claimsmith_logins_total{client="web-app",grant="sign_in",outcome="minted"}"#;
    let failed = r#"claimsmith_logins_total{client="web-app",grant="sign_in",outcome="failed"}"#;
    let before = scrape(&admin).await;
    assert_eq!(sample(&before, minted), None, "{before}");

    for _ in 0..2 {
        let redirect = h.web_login().await;
        let (status, body) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
    }
    h.upstream.set_faults(Faults {
        token_error: true,
        ..Faults::default()
    });
    let refused = h.web_login().await;
    assert_eq!(refused.get("error"), Some("server_error"), "{refused:?}");

    let text = scrape(&admin).await;
    assert_eq!(sample(&text, minted), Some(2.0), "{text}");
    assert_eq!(sample(&text, failed), Some(1.0), "{text}");
    for plugin in ["okta-userinfo", "geo-claims"] {
        let calls =
            format!(r#"claimsmith_plugin_calls_total{{plugin="{plugin}",status="succeeded"}}"#);
        assert_eq!(sample(&text, &calls), Some(2.0), "{text}");
        let timed =
            format!(r#"claimsmith_plugin_call_duration_seconds_count{{plugin="{plugin}"}}"#);
        assert_eq!(sample(&text, &timed), Some(2.0), "{text}");
        let fuel = format!(r#"claimsmith_plugin_fuel_consumed_total{{plugin="{plugin}"}}"#);
        assert!(
            sample(&text, &fuel).is_some_and(|fuel| fuel > 0.0),
            "{text}"
        );
    }
    assert_eq!(
        sample(&text, "claimsmith_instance_slots_in_use"),
        Some(0.0),
        "{text}"
    );
    let trips = r#"claimsmith_plugin_limit_trips_total{plugin="looper",limit="fuel"}"#;
    assert_eq!(sample(&text, trips), Some(2.0), "{text}");
    let skipped = r#"claimsmith_plugin_calls_total{plugin="looper",status="skipped"}"#;
    assert_eq!(sample(&text, skipped), Some(2.0), "{text}");
    for (series, count) in [
        (
            r#"claimsmith_upstream_code_exchange_duration_seconds_count{connection="dev",outcome="ok"}"#,
            2.0,
        ),
        (
            r#"claimsmith_upstream_code_exchange_duration_seconds_count{connection="dev",outcome="error"}"#,
            1.0,
        ),
        (
            r#"claimsmith_database_duration_seconds_count{operation="record_login"}"#,
            2.0,
        ),
        (
            r#"claimsmith_database_duration_seconds_count{operation="redeem_code"}"#,
            2.0,
        ),
        ("claimsmith_logins_started_total", 3.0),
    ] {
        assert_eq!(sample(&text, series), Some(count), "{series}: {text}");
    }
}

#[tokio::test]
async fn readyz_says_when_the_database_does_not_answer() {
    let h = harness("").await;
    let admin = admin_listener(&h).await;
    let health = reqwest::get(format!("{admin}/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = reqwest::get(format!("{admin}/readyz")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["database"], json!("reachable"), "{body}");

    h.store().close().await;
    let ready = reqwest::get(format!("{admin}/readyz")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["database"], json!("unreachable"), "{body}");
    // Alive all the same.
    let health = reqwest::get(format!("{admin}/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn serve_answers_on_its_admin_listener_and_not_on_the_apps_one() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let h = harness_as_process(&format!("\n[admin]\nlisten = \"127.0.0.1:{port}\"\n")).await;
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let on_the_apps_listener = reqwest::get(format!("{}/metrics", h.issuer)).await.unwrap();
    assert_eq!(on_the_apps_listener.status(), StatusCode::NOT_FOUND);
}

/// Auth0's `api.cache` through the service (`plugins/last-visitor`, in each
/// language): what one login keeps, the next login of the same action
/// reads; two actions of one build in one chain never see each other's
/// entries.
#[tokio::test]
async fn api_cache_entries_outlive_their_call_and_stay_with_their_action() {
    for language in ["rust", "js", "python"] {
        let wasm = crate::support::language_plugin_wasm(language, "last-visitor");
        let chain = format!(
            r#"
[plugins.first]
path = {wasm:?}
world = "post-login-action"
secrets = {{ prefix = {{ value = "a/" }} }}

[plugins.second]
path = {wasm:?}
world = "post-login-action"
secrets = {{ prefix = {{ value = "b/" }} }}

[[actions]]
plugin = "first"

[[actions]]
plugin = "second"
"#
        );
        let h = harness(&chain).await;
        let sign_in = || async {
            let redirect = h.web_login().await;
            let (status, tokens) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
            assert_eq!(status, StatusCode::OK, "{language}: {tokens:?}");
            h.access_claims(&tokens).await
        };
        let first = sign_in().await;
        assert_eq!(
            first["a/previous_visitor"],
            Value::Null,
            "{language}: {first:?}"
        );
        // `first` has just cached the user: `second` must not see it.
        assert_eq!(
            first["b/previous_visitor"],
            Value::Null,
            "{language}: {first:?}"
        );
        assert_eq!(first["a/cache_write"], "success", "{language}");
        assert_eq!(first["b/long_key"], "invalid-key", "{language}");
        let second = sign_in().await;
        assert_eq!(
            second["a/previous_visitor"], "dev|dev-user-1",
            "{language}: {second:?}"
        );
        assert_eq!(
            second["b/previous_visitor"], "dev|dev-user-1",
            "{language}: {second:?}"
        );
    }
}

/// A plain OAuth 2.0 upstream that sends no id token (a social provider
/// such as GitHub): the connection script sees no `ctx.id_token`, the user
/// is whom its profile's `user_id` names, and refreshes keep that user. A
/// profile that names nobody fails the sign-in cleanly and stores no one.
#[tokio::test]
async fn a_plain_oauth2_upstream_signs_in_whom_the_profile_names() {
    let upstream = dev_provider_speaking(claimsmith_devprovider::Protocol::OAuth2).await;
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("github-profile");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("package.json"),
        r#"{ "name": "github-profile", "main": "profile.js", "claimsmith": { "world": "profile-fetcher" } }"#,
    )
    .unwrap();
    // `options.prefix` says whether the profile names the user.
    std::fs::write(
        project.join("profile.js"),
        r#"function (accessToken, ctx, cb) {
  request.get({ url: ctx.options.userinfo_url, json: true,
                headers: { Authorization: 'Bearer ' + accessToken } },
    function (err, response, body) {
      if (err) return cb(err);
      var profile = { nickname: body.login, name: body.name, email: body.email,
                      had_id_token: ctx.id_token !== undefined };
      if (ctx.options.prefix) profile.user_id = ctx.options.prefix + body.id;
      cb(null, profile);
    });
}
"#,
    )
    .unwrap();
    let fetcher = crate::support::build_project(&project, &dir.path().join("out"))
        .unwrap()
        .component;
    let issuer = upstream.issuer().to_owned();
    let endpoints = oauth2_endpoints(&issuer, "[\"profile\"]");
    let nobody = format!(
        r#"
[[connections]]
name = "nobody"
authorization_endpoint = "{issuer}/authorize"
token_endpoint = "{issuer}/token"
client_id = "claimsmith"
client_secret = {{ value = "{UPSTREAM_SECRET}" }}
profile_fetcher = "okta-userinfo"
options = {{ userinfo_url = "{issuer}/userinfo" }}
"#
    );
    let h = start_harness_at(upstream, &nobody, "", false, |config, _| {
        endpoints(config)
            .replace(
                &format!("path = {:?}", plugin_wasm("okta-userinfo")),
                &format!("path = {fetcher:?}"),
            )
            .replace(
                &format!("options = {{ userinfo_url = \"{issuer}/userinfo\" }}\n\n[[clients]]"),
                &format!(
                    "options = {{ userinfo_url = \"{issuer}/userinfo\", prefix = \"gh-\" }}\n\n[[clients]]"
                ),
            )
    })
    .await;

    let expected = format!("dev|gh-{}", claimsmith_devprovider::OAUTH2_USER_ID);
    let url = h.pkce_authorize_url("web-app", &[("connection", "dev")]);
    let redirect = h.browse(url, APP_REDIRECT).await;
    let (status, tokens) = h.exchange(redirect.get("code").unwrap(), VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{tokens:?}");
    let jwks = h.jwks().await;
    let id = verify(&tokens["id_token"], &jwks, "web-app", &h.issuer);
    assert_eq!(id["sub"], json!(expected), "{id:?}");
    let stored = h
        .store()
        .load_user(&expected)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.profile["had_id_token"], json!(false), "{stored:?}");
    assert_eq!(
        stored.profile["nickname"],
        json!("dev-user-1"),
        "{stored:?}"
    );
    let (status, refreshed) = h.refresh(&refresh_token_of(&tokens)).await;
    assert_eq!(status, StatusCode::OK, "{refreshed:?}");
    let id = verify(&refreshed["id_token"], &jwks, "web-app", &h.issuer);
    assert_eq!(id["sub"], json!(expected), "{id:?}");

    let url = h.pkce_authorize_url("web-app", &[("connection", "nobody")]);
    let redirect = h.browse(url, APP_REDIRECT).await;
    assert_eq!(redirect.get("error"), Some("server_error"), "{redirect:?}");
    h.assert_failure_told_by_reference(&redirect, "nothing names the user")
        .await;
    let users = h.store().search_users("", 0, 10).await.unwrap();
    let ids: Vec<&str> = users.items.iter().map(|u| u.user_id.as_str()).collect();
    assert_eq!(ids, [expected.as_str()], "only the named user is stored");
}

#[tokio::test]
async fn no_refresh_token_without_offline_access_or_the_refresh_grant() {
    // `code-only` may not use the refresh_token grant, whatever it asks.
    let h = harness(&format!(
        "[[clients]]\nclient_id = \"code-only\"\nclient_secret = {{ value = \"code-only-secret-0123\" }}\n\
         redirect_uris = [\"{APP_REDIRECT}\"]\ngrant_types = [\"authorization_code\"]\n"
    ))
    .await;
    let exchange = |client: &'static str, secret: &'static str, scope: &'static str| {
        let h = &h;
        async move {
            let url = h.pkce_authorize_url(client, &[("scope", scope)]);
            let redirect = h.browse(url, APP_REDIRECT).await;
            let code = redirect
                .get("code")
                .unwrap_or_else(|| panic!("{redirect:?}"));
            let fields = [("redirect_uri", APP_REDIRECT), ("code_verifier", VERIFIER)];
            let (status, tokens) = h.redeem(code, &fields, Some((client, secret))).await;
            assert_eq!(status, StatusCode::OK, "{tokens:?}");
            tokens
        }
    };
    let asked = exchange(
        "web-app",
        "web-app-secret-0123",
        "openid profile offline_access",
    )
    .await;
    assert!(
        asked.contains_key("refresh_token"),
        "the control: {asked:?}"
    );
    let not_asked = exchange("web-app", "web-app-secret-0123", "openid profile").await;
    assert!(!not_asked.contains_key("refresh_token"), "{not_asked:?}");
    let no_grant = exchange(
        "code-only",
        "code-only-secret-0123",
        "openid offline_access",
    )
    .await;
    assert!(!no_grant.contains_key("refresh_token"), "{no_grant:?}");
}

#[tokio::test]
async fn a_restart_that_narrows_a_client_holds_for_the_codes_and_refresh_tokens_already_out() {
    let h = harness("").await;
    let tokens = h.signed_in().await;
    let url = h.pkce_authorize_url("web-app", &[("scope", "openid profile offline_access")]);
    let redirect = h.browse(url, APP_REDIRECT).await;
    let code = redirect
        .get("code")
        .unwrap_or_else(|| panic!("{redirect:?}"));
    // web-app loses the refresh grant and the `profile` scope its code and
    // refresh token were issued with.
    let restarted = h
        .restarted(|config| {
            config.replace(
                "audience = \"https://api.example.com\"\n",
                "audience = \"https://api.example.com\"\ngrant_types = [\"authorization_code\"]\n\
                 allowed_scopes = [\"openid\", \"offline_access\"]\n",
            )
        })
        .await;
    let token = |form: Vec<(&'static str, String)>| {
        let request = h
            .http
            .post(format!("{restarted}/oauth/token"))
            .basic_auth("web-app", Some("web-app-secret-0123"))
            .form(&form);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = token(vec![
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh_token_of(&tokens)),
    ])
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "unauthorized_client", "{body}");
    let (status, body) = token(vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("redirect_uri", APP_REDIRECT.to_owned()),
        ("code_verifier", VERIFIER.to_owned()),
    ])
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_scope", "{body}");
    assert_eq!(
        body["error_description"], "scope `profile` is no longer allowed to this client",
        "{body}"
    );
}

#[tokio::test]
async fn a_refresh_an_action_denies_is_an_invalid_grant() {
    let h = harness("").await;
    let tokens = h.signed_in().await;
    // The chain gains an action that denies every login, swapped in while
    // serving; the refresh runs it.
    let swaps = ChainReloads::watch(&h, "swapped").await;
    let config = std::fs::read_to_string(&h.config).unwrap()
        + &format!(
            "\n[plugins.denier]\npath = {:?}\nworld = \"post-login-action\"\n[[actions]]\nplugin = \"denier\"\n",
            plugin_wasm("test-denier")
        );
    std::fs::write(&h.config, config).unwrap();
    swaps.next("the new chain was never swapped in").await;
    let (status, body) = h.refresh(&refresh_token_of(&tokens)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
    assert_eq!(body["error"], "invalid_grant", "{body:?}");
    assert_eq!(
        body["error_description"], "account locked: dev|dev-user-1",
        "the action's reason reaches the app"
    );
}
