//! `claimsmith serve` with `[telemetry]`: a login's spans reach an OTLP
//! collector (a stand-in on loopback that keeps what it is sent), the plugin
//! calls as children of the login, and the log lines are JSON.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::service_harness::{VERIFIER, harness_as_process};
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::Value;

/// An OTLP/HTTP collector that keeps every JSON body posted to /v1/traces.
async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let json: Value = serde_json::from_slice(&body).expect("OTLP JSON");
                kept.lock().unwrap().push(json);
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), received)
}

/// Every span received: (trace id, span id, parent span id, name, attributes).
fn spans(received: &[Value]) -> Vec<(String, String, String, String, Value)> {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    received
        .iter()
        .flat_map(|body| {
            body["resourceSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .inspect(|resource| {
            let attributes = resource["resource"]["attributes"].to_string();
            assert!(
                attributes.contains("claimsmith"),
                "service.name: {attributes}"
            );
        })
        .flat_map(|resource| {
            resource["scopeSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|scope| scope["spans"].as_array().cloned().unwrap_or_default())
        .map(|span| {
            (
                text(&span["traceId"]),
                text(&span["spanId"]),
                text(&span["parentSpanId"]),
                text(&span["name"]),
                span["attributes"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logins_spans_reach_the_collector_and_the_logs_are_json() {
    let (endpoint, received) = collector().await;
    let service = harness_as_process(&format!(
        "[telemetry]\nlog_format = \"json\"\notlp_endpoint = \"{endpoint}\"\n"
    ))
    .await;
    let code = service.web_login().await;
    let (status, tokens) = service.exchange(code.get("code").unwrap(), VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{tokens:?}");

    // The batch goes out within the SDK's 5 s schedule.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (login, plugins) = loop {
        let all = spans(&received.lock().unwrap());
        let login = all.iter().find(|span| span.3 == "login").cloned();
        if let Some(login) = login {
            let plugins: Vec<String> = all
                .iter()
                .filter(|span| span.3 == "plugin" && span.0 == login.0 && span.2 == login.1)
                .map(|span| span.4.to_string())
                .collect();
            if plugins.len() == 2 {
                break (login, plugins);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no login span with two plugin children: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(login.4.to_string().contains("web-app"), "{:?}", login.4);
    assert!(
        plugins.iter().any(|p| p.contains("okta-userinfo")),
        "{plugins:?}"
    );
    assert!(
        plugins.iter().any(|p| p.contains("geo-claims")),
        "{plugins:?}"
    );

    let log = std::fs::read_to_string(service.dir.path().join("serve.log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|line| line["fields"]["message"] == "serving" && line["level"] == "INFO"),
        "{log}"
    );
}
