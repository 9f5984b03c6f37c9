//! Every bound of an invocation trips with a typed error naming the plugin and
//! the limit, and the host serves the next login as if nothing happened.

use std::time::{Duration, Instant};

use crate::support::{Setup, login, outcome, plugin_wasm, report, test_compile_cache};
use claimsmith::capabilities::api::ActionEffects;
use claimsmith::capabilities::http::{HttpPolicy, OutboundHttp};
use claimsmith::engine::{
    CallOptions, Engine, EngineSettings, Event, EventAuthorization, EventClient, EventConnection,
    EventRequest, EventUser, Limit, Limits, Plugin, PluginError, PluginSpec, World,
};
use claimsmith::pipeline::{LoginFailure, StepStatus};

fn plugin_error(failure: LoginFailure) -> PluginError {
    match failure {
        LoginFailure::Plugin(error) => error,
        other => panic!("expected a plugin error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_looping_plugin_runs_out_of_fuel() {
    let pipeline = Setup::new()
        .actions(&[(
            "looper",
            "test-looper",
            "fail",
            "limits = { fuel = 2_000_000 }",
        )])
        .start()
        .unwrap();
    let failure = outcome(&pipeline, &login("okta")).await.unwrap_err();
    let error = plugin_error(failure);
    assert!(
        matches!(&error, PluginError::LimitExceeded { plugin, limit: Limit::Fuel(2_000_000) } if plugin == "looper"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "plugin `looper` exceeded its fuel budget of 2000000 units"
    );
}

#[tokio::test]
async fn a_looping_plugin_with_fuel_to_spare_hits_the_wall_clock() {
    let pipeline = Setup::new()
        .actions(&[(
            "looper",
            "test-looper",
            "fail",
            "limits = { fuel = 1_000_000_000_000, timeout_ms = 200 }",
        )])
        .start()
        .unwrap();
    // Bounded here too: a broken timeout must fail this test, not hang it.
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        report(&pipeline, &login("okta")),
    )
    .await
    .expect("the plugin's wall-clock timeout fired");
    let error = plugin_error(report.outcome.unwrap_err());
    assert!(
        matches!(error, PluginError::LimitExceeded { limit: Limit::WallClock(d), .. } if d.as_millis() == 200),
        "{error:?}"
    );
    // The timeout fired because the loop yielded; it did not run to its fuel.
    assert!(report.steps[0].duration.as_secs() < 30);
}

#[tokio::test]
async fn a_plugin_allocating_without_end_hits_its_memory_cap() {
    let pipeline = Setup::new()
        .actions(&[("hog", "test-hog", "fail", "limits = { memory_mib = 8 }")])
        .start()
        .unwrap();
    let error = plugin_error(outcome(&pipeline, &login("okta")).await.unwrap_err());
    assert!(
        matches!(&error, PluginError::LimitExceeded { plugin, limit: Limit::Memory(bytes) } if plugin == "hog" && *bytes == 8 * 1024 * 1024),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "plugin `hog` exceeded its memory cap of 8 MiB"
    );
}

#[tokio::test]
async fn a_trapping_plugin_fails_the_login_with_its_name() {
    let pipeline = Setup::new()
        .actions(&[("trapper", "test-trapper", "fail", "")])
        .start()
        .unwrap();
    let report = report(&pipeline, &login("okta")).await;
    let error = plugin_error(report.outcome.unwrap_err());
    assert!(
        matches!(&error, PluginError::Trapped { plugin, .. } if plugin == "trapper"),
        "{error:?}"
    );
    assert!(
        matches!(&report.steps[0].status, StepStatus::Failed { error } if error.contains("trapper"))
    );
}

#[tokio::test]
async fn a_profile_that_is_not_json_is_refused_naming_the_plugin() {
    let pipeline = Setup::new()
        .plugin("bad-json", "test-bad-json", "profile-fetcher", "")
        .connection("okta", Some("bad-json"), "{}")
        .start()
        .unwrap();
    let error = plugin_error(outcome(&pipeline, &login("okta")).await.unwrap_err());
    assert!(
        matches!(&error, PluginError::InvalidJson { plugin, what: "the profile", .. } if plugin == "bad-json"),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("plugin `bad-json` returned invalid JSON as the profile")
    );
}

#[tokio::test]
async fn the_host_keeps_serving_after_every_kind_of_failure() {
    let pipeline = Setup::new()
        .actions(&[
            (
                "looper",
                "test-looper",
                "continue",
                "limits = { fuel = 1_000_000 }",
            ),
            ("hog", "test-hog", "continue", "limits = { memory_mib = 4 }"),
            ("trapper", "test-trapper", "continue", ""),
            ("counter", "test-counter", "fail", ""),
        ])
        .start()
        .unwrap();
    for _ in 0..3 {
        let report = report(&pipeline, &login("okta")).await;
        let statuses: Vec<_> = report.steps.iter().map(|s| &s.status).collect();
        assert!(
            matches!(
                statuses[..3],
                [
                    StepStatus::Skipped { .. },
                    StepStatus::Skipped { .. },
                    StepStatus::Skipped { .. }
                ]
            ),
            "{statuses:?}"
        );
        assert!(report.outcome.is_ok(), "{:?}", report.outcome);
    }
}

/// An engine with an instance pool of `slots`, and `test-looper` loaded on
/// it once per `(name, timeout)`: the plugins share the pool.
fn loopers_sharing_a_pool<const N: usize>(
    slots: u32,
    loopers: [(&str, Duration); N],
) -> [Plugin; N] {
    let engine = Engine::new(
        &EngineSettings {
            max_concurrent_instances: slots,
            cache_dir: Some(test_compile_cache()),
            ..EngineSettings::default()
        },
        OutboundHttp::new().unwrap(),
    )
    .unwrap();
    loopers.map(|(name, timeout)| {
        engine
            .load(PluginSpec {
                name: name.to_owned(),
                path: plugin_wasm("test-looper"),
                sha256: None,
                source: claimsmith_config::PluginSource::File,
                version: None,
                world: World::PostLoginAction,
                capture: false,
                limits: Limits {
                    fuel: 1_000_000_000_000,
                    timeout,
                    ..Limits::default()
                },
                secrets: Default::default(),
                redirect_origins: Vec::new(),
                http: HttpPolicy::default(),
            })
            .unwrap()
    })
}

/// `plugin` keeps the pool's slots busy until its timeout.
fn occupy(plugin: Plugin) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let invocation = plugin
            .on_execute_post_login(&event(), ActionEffects::default(), &CallOptions::default())
            .await;
        assert!(invocation.output.is_err());
    })
}

/// Returns once the pool `plugin` shares has its one slot taken (by the
/// holder), so that what follows waits for it.
async fn holding_the_only_slot(plugin: &Plugin) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while plugin.instance_slots_in_use() == 0 {
        assert!(Instant::now() < deadline, "the holder never took the slot");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Runs `plugin` once, timed from its call.
async fn timed_call(plugin: &Plugin) -> (PluginError, Duration) {
    let started = Instant::now();
    let invocation = plugin
        .on_execute_post_login(&event(), ActionEffects::default(), &CallOptions::default())
        .await;
    (invocation.output.unwrap_err(), started.elapsed())
}

#[tokio::test]
async fn a_call_waiting_for_a_slot_fails_naming_the_pool_size() {
    let [holder, waiter] = loopers_sharing_a_pool(
        1,
        [
            ("holder", Duration::from_secs(3)),
            ("waiter", Duration::from_millis(300)),
        ],
    );
    let holding = occupy(holder);
    holding_the_only_slot(&waiter).await;
    let (error, _) = timed_call(&waiter).await;
    assert!(
        matches!(&error, PluginError::Capacity { plugin, slots: 1 } if plugin == "waiter"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "plugin `waiter` could not run: every slot of the instance pool (size 1) stayed busy for its whole timeout"
    );
    holding.await.unwrap();
}

#[tokio::test]
async fn the_timeout_bounds_the_wait_for_a_slot_and_the_call_together() {
    // The holder frees the only slot 0.7 s into the waiter's 1 s: the waiter
    // runs what is left of its timeout, not a whole timeout more.
    let timeout = Duration::from_secs(1);
    let [holder, waiter] = loopers_sharing_a_pool(
        1,
        [("holder", Duration::from_millis(800)), ("waiter", timeout)],
    );
    // The waiter alone, on this machine now: a whole timeout.
    let (_, alone) = timed_call(&waiter).await;
    let holding = occupy(holder);
    holding_the_only_slot(&waiter).await;
    let (error, shared) = timed_call(&waiter).await;
    assert!(
        matches!(
            &error,
            PluginError::LimitExceeded { limit: Limit::WallClock(t), .. } if *t == timeout
        ) || matches!(&error, PluginError::Capacity { slots: 1, .. }),
        "{error:?}"
    );
    // Waiting 0.7 s and then running a whole timeout would take 1.7 times
    // as long as the call alone; sharing one deadline, about as long.
    let ratio = shared.as_secs_f64() / alone.as_secs_f64();
    assert!(
        ratio < 1.35,
        "{shared:?} beside the holder, {alone:?} alone"
    );
    holding.await.unwrap();
}

/// An event for plugins that ignore theirs.
fn event() -> Event {
    Event {
        user: EventUser {
            user_id: "okta|00u1ada".into(),
            profile: "{}".into(),
            user_metadata: "{}".into(),
            app_metadata: "{}".into(),
            logins_count: 1,
            last_login: None,
            created_at: "2026-01-01T00:00:00Z".into(),
        },
        client: EventClient {
            client_id: "app".into(),
            name: "Test App".into(),
            metadata: "{}".into(),
        },
        connection: EventConnection {
            name: "okta".into(),
            strategy: "oidc".into(),
        },
        request: EventRequest {
            ip: None,
            user_agent: None,
            hostname: None,
            language: None,
            query: "{}".into(),
        },
        scopes: Vec::new(),
        audience: None,
        access_token_claims: "{}".into(),
        id_token_claims: "{}".into(),
        transaction: "{}".into(),
        authentication: r#"{"methods":[]}"#.into(),
        authorization: EventAuthorization { roles: Vec::new() },
    }
}
