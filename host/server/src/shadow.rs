//! Shadow runs: a candidate version of a `source = "store"` plugin run
//! beside the deployed one on a share of live logins.
//!
//! A sampled login is recorded ([`LoginRecording`]): each call of a
//! shadowed action (the event it saw, the effects before it, what it did)
//! and the answers its `fetch` requests got. Once the login has ended the
//! calls go into a bounded queue, and a worker runs the candidate on each:
//! its `fetch` is answered from the recording only (the same method and
//! URL, the same answer; anything else is refused before the network), its
//! effects are compared with the live call's and then discarded. A full
//! queue drops the run and counts it: a login never waits for a shadow.
//!
//! Owns the recording, the queue and its worker, the comparison, and this
//! host's tallies until [`Shadows::take_tallies`] hands them to the store.
//! Which candidate shadows which plugin, and on what share, is the
//! store's ([`crate::store_plugins`] loads the candidates).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use reqwest::{Method, Url};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::lock;
use crate::metrics::Metrics;
use claimsmith_capabilities::api::ActionEffects;
use claimsmith_capabilities::http::{
    HttpError, InterceptOutcome, OutboundHttpInterceptor, OutboundRequest, OutboundResponse,
};
use claimsmith_engine::{CallOptions, Event, Plugin, PluginError};
use claimsmith_pipeline::{ActionTap, Pipeline};
use claimsmith_store::{MAX_SHADOW_DIFFERENCES, ShadowTally};

/// What a value holding one of the plugin's secrets is shown as.
const REDACTED: &str = "[redacted]";

/// A candidate version, loaded, and the share of logins it runs on.
pub(crate) struct Candidate {
    pub plugin: Arc<Plugin>,
    pub version: u64,
    pub sample_ppm: u64,
    /// The plugin's secret values: never shown in a difference.
    pub secrets: Vec<String>,
}

/// This host's shadows and what their runs came to since the last flush.
pub(crate) struct Shadows {
    candidates: RwLock<HashMap<String, Arc<Candidate>>>,
    queue: mpsc::Sender<ShadowRun>,
    pending: Mutex<HashMap<(String, u64), Pending>>,
    metrics: Arc<Metrics>,
}

/// A tally not yet added to the store's, with its newest differences.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub tally: ShadowTally,
    pub differences: Vec<Value>,
}

/// One recorded call of a shadowed action, and the answers its requests got.
pub(crate) struct ShadowRun {
    candidate: Arc<Candidate>,
    event: Event,
    before: ActionEffects,
    live: Result<ActionEffects, String>,
    exchanges: Vec<Exchange>,
    now: u64,
    user_id: Option<String>,
}

#[derive(Clone)]
struct Exchange {
    plugin: String,
    method: Method,
    url: Url,
    answer: Result<OutboundResponse, HttpError>,
}

impl Shadows {
    /// The shadows, and the queue's other end for [`spawn_worker`].
    /// `capacity` runs may wait (`[server] shadow_queue`); more are dropped.
    pub(crate) fn new(metrics: Arc<Metrics>, capacity: usize) -> (Self, mpsc::Receiver<ShadowRun>) {
        let (queue, runs) = mpsc::channel(capacity.max(1));
        let shadows = Shadows {
            candidates: RwLock::default(),
            queue,
            pending: Mutex::default(),
            metrics,
        };
        (shadows, runs)
    }

    /// Replaces the candidates (by plugin name).
    pub(crate) fn set_candidates(&self, candidates: HashMap<String, Arc<Candidate>>) {
        *self
            .candidates
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = candidates;
    }

    /// The candidate shadowing `plugin` now.
    pub(crate) fn candidate(&self, plugin: &str) -> Option<Arc<Candidate>> {
        self.candidates
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(plugin)
            .cloned()
    }

    /// A recording for a login on `pipeline`, when it is sampled for one
    /// of the shadowed actions of that chain.
    pub(crate) fn recording(&self, pipeline: &Pipeline) -> Option<Arc<LoginRecording>> {
        let candidates = self
            .candidates
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let sampled: HashMap<String, Arc<Candidate>> = candidates
            .iter()
            .filter(|(plugin, _)| pipeline.plugins().contains_key(*plugin))
            .filter(|(_, candidate)| sampled(candidate.sample_ppm))
            .map(|(plugin, candidate)| (plugin.clone(), candidate.clone()))
            .collect();
        (!sampled.is_empty()).then(|| {
            Arc::new(LoginRecording {
                candidates: sampled,
                calls: Mutex::default(),
                exchanges: Mutex::default(),
            })
        })
    }

    /// Queues the recorded calls of a login that has ended; a full queue
    /// drops them, counted.
    pub(crate) fn submit(&self, recording: &LoginRecording, now: u64, user_id: Option<&str>) {
        let exchanges = std::mem::take(&mut *lock(&recording.exchanges));
        for call in std::mem::take(&mut *lock(&recording.calls)) {
            let plugin = call.candidate.plugin.name().to_owned();
            let run = ShadowRun {
                exchanges: (exchanges.iter())
                    .filter(|exchange| exchange.plugin == plugin)
                    .cloned()
                    .collect(),
                candidate: call.candidate,
                event: call.event,
                before: call.before,
                live: call.live,
                now,
                user_id: user_id.map(str::to_owned),
            };
            if let Err(full) = self.queue.try_send(run) {
                let run = full.into_inner();
                self.count(&run, Verdict::Dropped);
            }
        }
    }

    fn count(&self, run: &ShadowRun, verdict: Verdict) {
        let plugin = run.candidate.plugin.name().to_owned();
        let version = run.candidate.version;
        self.metrics.shadow_run(&plugin, version, verdict.outcome());
        let mut pending = lock(&self.pending);
        let pending = pending.entry((plugin, version)).or_default();
        let tally = &mut pending.tally;
        match &verdict {
            Verdict::Dropped => tally.dropped += 1,
            Verdict::Identical => tally.identical += 1,
            Verdict::Different(_) => tally.different += 1,
            Verdict::Failed(_) => tally.failed += 1,
        }
        tally.runs += u64::from(!matches!(verdict, Verdict::Dropped));
        if let Verdict::Different(detail) | Verdict::Failed(detail) = verdict {
            let shown = json!({"at": claimsmith_core::rfc3339(run.now), "user_id": run.user_id, "changes": detail});
            pending.differences.insert(0, shown);
            pending.differences.truncate(MAX_SHADOW_DIFFERENCES);
        }
    }

    /// What the runs came to since the last call, by plugin and version.
    pub(crate) fn take_tallies(&self) -> HashMap<(String, u64), Pending> {
        std::mem::take(&mut *lock(&self.pending))
    }
}

/// Whether this login is one of `sample_ppm` in a million (aws-lc's
/// generator, which the service links already for its tokens).
fn sampled(sample_ppm: u64) -> bool {
    let mut bytes = [0u8; 8];
    let drawn = aws_lc_rs::rand::fill(&mut bytes).is_ok();
    sample_ppm >= 1_000_000 || (drawn && u64::from_le_bytes(bytes) % 1_000_000 < sample_ppm)
}

/// A sampled login's shadowed calls and its plugins' HTTP answers.
pub(crate) struct LoginRecording {
    candidates: HashMap<String, Arc<Candidate>>,
    calls: Mutex<Vec<RecordedCall>>,
    exchanges: Mutex<Vec<Exchange>>,
}

struct RecordedCall {
    candidate: Arc<Candidate>,
    event: Event,
    before: ActionEffects,
    live: Result<ActionEffects, String>,
}

impl ActionTap for LoginRecording {
    fn wants(&self, plugin: &str) -> bool {
        self.candidates.contains_key(plugin)
    }

    fn ran(
        &self,
        plugin: &str,
        event: &Event,
        before: &ActionEffects,
        output: &Result<ActionEffects, PluginError>,
    ) {
        let Some(candidate) = self.candidates.get(plugin) else {
            return;
        };
        lock(&self.calls).push(RecordedCall {
            candidate: candidate.clone(),
            event: event.clone(),
            before: before.clone(),
            live: output.as_ref().cloned().map_err(ToString::to_string),
        });
    }
}

impl OutboundHttpInterceptor for LoginRecording {
    fn intercept(&self, _plugin: &str, _request: &OutboundRequest) -> InterceptOutcome {
        InterceptOutcome::Continue
    }

    fn answered(
        &self,
        plugin: &str,
        request: &OutboundRequest,
        answer: &Result<OutboundResponse, HttpError>,
    ) {
        if self.candidates.contains_key(plugin) {
            lock(&self.exchanges).push(Exchange {
                plugin: plugin.to_owned(),
                method: request.method.clone(),
                url: request.url.clone(),
                answer: answer.clone(),
            });
        }
    }
}

/// A candidate's `fetch`: each request the live call made is answered as
/// it was, once; any other is refused and never sent.
struct Replay(Mutex<Vec<Option<Exchange>>>);

impl OutboundHttpInterceptor for Replay {
    fn intercept(&self, _plugin: &str, request: &OutboundRequest) -> InterceptOutcome {
        let mut recorded = lock(&self.0);
        let same = recorded.iter_mut().find(|exchange| {
            exchange
                .as_ref()
                .is_some_and(|e| e.method == request.method && e.url == request.url)
        });
        InterceptOutcome::Complete(match same.and_then(Option::take) {
            Some(exchange) => exchange.answer,
            None => Err(HttpError::NotAllowed(format!(
                "a shadow run sends no request the live call did not: {} {} was not one",
                request.method, request.url
            ))),
        })
    }
}

/// How a shadow run compared with the live call.
#[derive(Debug, PartialEq)]
enum Verdict {
    Identical,
    /// What differs: a list of `{what, name?, live, candidate}`.
    Different(Value),
    /// The candidate failed: its error.
    Failed(Value),
    Dropped,
}

impl Verdict {
    fn outcome(&self) -> &'static str {
        match self {
            Verdict::Identical => "identical",
            Verdict::Different(_) => "different",
            Verdict::Failed(_) => "failed",
            Verdict::Dropped => "dropped",
        }
    }
}

/// Runs each queued shadow run, one at a time, for as long as the
/// service lives: one core's worth at most, whatever the login rate.
pub(crate) fn spawn_worker(shadows: std::sync::Weak<Shadows>, mut runs: mpsc::Receiver<ShadowRun>) {
    tokio::spawn(async move {
        while let Some(run) = runs.recv().await {
            let verdict = run_candidate(&run).await;
            let Some(shadows) = shadows.upgrade() else {
                return;
            };
            shadows.count(&run, verdict);
        }
    });
}

async fn run_candidate(run: &ShadowRun) -> Verdict {
    let replay = Replay(Mutex::new(
        run.exchanges.iter().cloned().map(Some).collect(),
    ));
    let options = CallOptions {
        interceptor: Some(Arc::new(replay)),
        pinned_clock: Some(run.now),
        log_sink: None,
        redirect: None,
    };
    let invocation = run
        .candidate
        .plugin
        .on_execute_post_login(&run.event, run.before.clone(), &options)
        .await;
    compare(&run.live, &invocation.output, &run.candidate.secrets)
}

/// What differs between the live call's outcome and the candidate's, each
/// value holding a secret shown as `[redacted]`.
fn compare(
    live: &Result<ActionEffects, String>,
    candidate: &Result<ActionEffects, PluginError>,
    secrets: &[String],
) -> Verdict {
    let shown = |value: Value| redacted(value, secrets);
    let candidate = match candidate {
        Ok(effects) => effects,
        Err(error) => {
            let error = shown(Value::String(error.to_string()));
            let live = shown(live.as_ref().err().map_or(Value::Null, |e| json!(e)));
            return Verdict::Failed(json!([{"what": "error", "live": live, "candidate": error}]));
        }
    };
    let live = match live {
        Ok(effects) => effects,
        Err(error) => {
            let live = shown(json!(error));
            return Verdict::Different(json!([{"what": "error", "live": live, "candidate": null}]));
        }
    };
    let mut changes = Vec::new();
    for (what, live, candidate) in [
        (
            "access_token claim",
            &live.access_token_claims,
            &candidate.access_token_claims,
        ),
        (
            "id_token claim",
            &live.id_token_claims,
            &candidate.id_token_claims,
        ),
        (
            "user_metadata",
            &live.user_metadata,
            &candidate.user_metadata,
        ),
        ("app_metadata", &live.app_metadata, &candidate.app_metadata),
    ] {
        changes.extend(map_changes(what, live, candidate, &shown));
    }
    if live.scopes != candidate.scopes {
        changes.push(json!({"what": "scopes", "live": live.scopes, "candidate": candidate.scopes}));
    }
    if live.denial != candidate.denial {
        let (live, candidate) = (json!(live.denial), json!(candidate.denial));
        changes.push(json!({"what": "denial", "live": shown(live), "candidate": shown(candidate)}));
    }
    if changes.is_empty() {
        Verdict::Identical
    } else {
        Verdict::Different(Value::Array(changes))
    }
}

/// The names whose values differ between two maps, each with both values.
fn map_changes(
    what: &str,
    live: &Map<String, Value>,
    candidate: &Map<String, Value>,
    shown: &impl Fn(Value) -> Value,
) -> Vec<Value> {
    let mut names: Vec<&String> = live.keys().chain(candidate.keys()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter(|name| live.get(*name) != candidate.get(*name))
        .map(|name| {
            let value =
                |map: &Map<String, Value>| shown(map.get(name).cloned().unwrap_or(Value::Null));
            json!({"what": what, "name": name, "live": value(live), "candidate": value(candidate)})
        })
        .collect()
}

/// `value`, or `[redacted]` when its JSON text holds one of `secrets`.
fn redacted(value: Value, secrets: &[String]) -> Value {
    let text = value.to_string();
    if secrets
        .iter()
        .any(|secret| !secret.is_empty() && text.contains(secret.as_str()))
    {
        Value::String(REDACTED.to_owned())
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effects(claims: Value) -> ActionEffects {
        ActionEffects {
            access_token_claims: claims.as_object().cloned().unwrap_or_default(),
            ..ActionEffects::default()
        }
    }

    #[test]
    fn a_changed_claim_is_a_difference_and_a_secret_is_never_shown() {
        let secrets = ["s3cr3t".to_owned()];
        let live = Ok(effects(json!({"tier": "gold", "same": 1})));
        assert_eq!(
            compare(
                &live,
                &Ok(effects(json!({"tier": "gold", "same": 1}))),
                &secrets
            ),
            Verdict::Identical
        );
        let changed = Ok(effects(
            json!({"tier": "silver", "same": 1, "key": "s3cr3t-ish"}),
        ));
        let Verdict::Different(changes) = compare(&live, &changed, &secrets) else {
            panic!("a changed claim is a difference");
        };
        assert_eq!(
            changes,
            json!([
                {"what": "access_token claim", "name": "key", "live": null, "candidate": REDACTED},
                {"what": "access_token claim", "name": "tier", "live": "gold", "candidate": "silver"},
            ])
        );
        let denied = Ok(ActionEffects {
            denial: Some("no".to_owned()),
            ..effects(json!({"tier": "gold", "same": 1}))
        });
        assert!(matches!(
            compare(&live, &denied, &secrets),
            Verdict::Different(_)
        ));
    }

    #[test]
    fn a_sample_of_all_always_runs() {
        assert!((0..100).all(|_| sampled(1_000_000)));
        assert!((0..100).all(|_| !sampled(0)));
    }

    #[test]
    fn a_replay_answers_each_recorded_request_once_and_refuses_the_rest() {
        let url = Url::parse("http://127.0.0.1:1/tier").unwrap_or_else(|e| panic!("{e}"));
        let answer = OutboundResponse {
            status: 200,
            headers: Vec::new(),
            body: b"gold".to_vec(),
        };
        let replay = Replay(Mutex::new(vec![Some(Exchange {
            plugin: "tier".to_owned(),
            method: Method::GET,
            url: url.clone(),
            answer: Ok(answer.clone()),
        })]));
        let request = |method: Method, url: &Url| OutboundRequest {
            method,
            url: url.clone(),
            headers: Vec::new(),
            body: None,
        };
        let outcome = |request: &OutboundRequest| match replay.intercept("tier", request) {
            InterceptOutcome::Complete(outcome) => outcome,
            InterceptOutcome::Continue => panic!("a replay never lets a request through"),
        };
        assert!(matches!(
            outcome(&request(Method::POST, &url)),
            Err(HttpError::NotAllowed(_))
        ));
        assert_eq!(outcome(&request(Method::GET, &url)), Ok(answer));
        assert!(
            matches!(
                outcome(&request(Method::GET, &url)),
                Err(HttpError::NotAllowed(_))
            ),
            "answered once"
        );
    }
}
