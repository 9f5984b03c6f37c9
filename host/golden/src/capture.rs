//! Golden cases from real logins: what the service keeps of a login that a
//! capturing plugin (`capture = true`) ran in, and the case `claimsmith
//! capture LOG_ID` writes from it.
//!
//! Owns the kept shape: the login's input in the `claimsmith run --input`
//! shape (with `now` and the answers its requests got as exchanges), and
//! what the live run gave as a case's `expect`, its upstream tokens and the
//! config's secrets replaced. Recording the login is the service's job;
//! storing it is the store's.

use std::path::Path;

use reqwest::{Method, Url};
use serde_json::{Map, Value, json};

use crate::redaction::Redaction;
use crate::{CaseKind, case_file, outcome};
use claimsmith_capabilities::http::OutboundResponse;
use claimsmith_config::Config;
use claimsmith_pipeline::{Login, LoginReport, StepKind};

/// JSON fields of a response whose values are credentials: a token
/// endpoint's answer, say. Replaced wherever they are nested.
const CREDENTIAL_FIELDS: [&str; 5] = [
    "access_token",
    "id_token",
    "refresh_token",
    "client_secret",
    "password",
];

/// Response headers not kept: a session they set is a credential.
const DROPPED_RESPONSE_HEADERS: [&str; 1] = ["set-cookie"];

/// One request the login's plugins (or the host's userinfo step) sent,
/// and what the network answered.
#[derive(Debug, Clone)]
pub struct Answered {
    pub method: Method,
    pub url: Url,
    pub response: OutboundResponse,
}

/// A login as the live chain ran it.
pub struct LiveLogin<'a> {
    /// The login, its `user` the stored user the chain read.
    pub login: &'a Login,
    /// The clock (unix seconds) when the chain started.
    pub now: u64,
    /// The requests that were answered, in the order they were sent.
    pub answered: &'a [Answered],
    pub report: &'a LoginReport,
}

/// What is kept of `live`, run with the plugins and secrets of `config`:
/// `{at, served_by, input, expect}`, every secret of `config` and both
/// upstream tokens replaced.
pub fn keep(live: &LiveLogin<'_>, config: &Config) -> Value {
    let mut expect = outcome(live.report, CaseKind::Chain, true);
    // The minted tokens' own claims (`iat`, `jti`, ...) are the mint's, not
    // the plugins': the custom claims are in `claims`.
    expect.remove("tokens");
    let served_by: Vec<Value> = (live.report.steps.iter())
        .filter(|step| !matches!(step.kind, StepKind::Userinfo | StepKind::Mint))
        .map(|step| json!({ "plugin": step.name, "version": step.version }))
        .collect();
    let kept = json!({
        "at": claimsmith_core::rfc3339(live.now),
        "served_by": served_by,
        "input": input(live),
        "expect": expect,
    });
    let upstream = &live.login.upstream;
    Redaction::of(config, &[&upstream.access_token, &upstream.id_token]).json(kept)
}

/// The login in the `claimsmith run --input` shape. The upstream access
/// token is replaced, and the raw id token left out: a case rebuilds an
/// unsigned one from its claims.
fn input(live: &LiveLogin<'_>) -> Value {
    let mut login = live.login.clone();
    login.upstream.access_token = Redaction::MARK.to_owned();
    login.upstream.id_token = String::new();
    let mut input = serde_json::to_value(login).unwrap_or(Value::Null);
    if let Some(fields) = input.as_object_mut() {
        fields.insert("now".into(), live.now.into());
        let http: Vec<Value> = live.answered.iter().map(exchange).collect();
        fields.insert("http".into(), http.into());
    }
    input
}

/// An answered request as a case's exchange: matched by method and URL
/// only (the headers and body it sent carried the credentials), answered
/// as the network did.
fn exchange(answered: &Answered) -> Value {
    let response = &answered.response;
    let headers: Map<String, Value> = (response.headers.iter())
        .filter(|(name, _)| !DROPPED_RESPONSE_HEADERS.contains(&name.to_ascii_lowercase().as_str()))
        .map(|(name, value)| (name.clone(), Value::String(value.clone())))
        .collect();
    let mut kept = json!({ "status": response.status, "headers": headers });
    match serde_json::from_slice::<Value>(&response.body) {
        Ok(body) => kept["json"] = without_credentials(body),
        Err(_) if response.body.is_empty() => {}
        Err(_) => kept["body"] = String::from_utf8_lossy(&response.body).into(),
    }
    json!({
        "request": { "method": answered.method.as_str(), "url": answered.url.as_str() },
        "response": kept,
    })
}

/// `value` with every [`CREDENTIAL_FIELDS`] value replaced.
fn without_credentials(value: Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(name, value)| {
                    let value = if CREDENTIAL_FIELDS.contains(&name.as_str()) {
                        Value::String(Redaction::MARK.to_owned())
                    } else {
                        without_credentials(value)
                    };
                    (name, value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_credentials).collect()),
        other => other,
    }
}

/// The golden case (YAML) of audit row `log_id`'s kept login: its input,
/// run through the whole chain of the config at `config` (written as it
/// is: relative to the case file), must give what the live run gave.
pub fn case(log_id: i64, kept: &Value, config: &Path) -> Result<String, String> {
    let at = kept["at"].as_str().unwrap_or("?");
    let served_by: Vec<String> = (kept["served_by"].as_array().into_iter().flatten())
        .map(
            |step| match (step["plugin"].as_str(), step["version"].as_u64()) {
                (Some(plugin), Some(version)) => format!("{plugin} v{version}"),
                (plugin, _) => plugin.unwrap_or("?").to_owned(),
            },
        )
        .collect();
    let name = format!("login {log_id} at {at}, served by {}", served_by.join(", "));
    let expect = match &kept["expect"] {
        Value::Object(expect) => expect.clone(),
        _ => return Err(format!("the capture of login {log_id} has no `expect`")),
    };
    let config = config.display().to_string();
    case_file(&name, &config, None, kept["input"].clone(), expect)
}
