//! A login an action sent to a page (`api.redirect.sendUserTo`), and its
//! return to `/continue`.
//!
//! Owns what a suspended login keeps (the login with its profile, the
//! effects so far, which action sent the user) and how it resumes: that
//! action's `onContinuePostLogin`, then the rest of the chain, then
//! minting, as if the chain had never stopped. It does not keep the
//! suspended login anywhere, bind it to a browser or make it single-use:
//! the service seals and stores it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use claimsmith_capabilities::api::ActionEffects;
use claimsmith_capabilities::redirect::{Continued, RedirectContext};
use claimsmith_core::{Login, RequestInfo};
use claimsmith_engine::Event;

use crate::{LoginFailure, LoginReport, Pipeline, Progress, RunOptions, json_text};

/// A sign-in an action sent to a page: where the browser goes, and what the
/// login needs to pick up when it comes back.
#[derive(Debug)]
pub struct Redirected {
    /// The page, with the action's query and the `state` to bring back.
    pub to: String,
    /// That state ([`RunOptions::redirect_state`]).
    pub state: String,
    /// The action that sent the user.
    pub plugin: String,
    pub suspended: SuspendedLogin,
}

/// What a login waiting for `/continue` keeps. The service seals it: it
/// holds the user's profile and the upstream's id token claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuspendedLogin {
    /// The sign-in, its profile fetched (the fetch does not run again) and
    /// its `auth_time` fixed; the upstream access token left out.
    pub login: Login,
    /// The changes of the actions so far, the redirecting one's included.
    pub effects: ActionEffects,
    /// The redirecting action's place in the chain, and its name.
    pub action: usize,
    pub plugin: String,
    /// The chain it ran on ([`Pipeline::chain_version`]): another chain's
    /// place means another action.
    pub chain_version: String,
}

/// The request that brought a suspended login back to `/continue`.
#[derive(Debug, Clone, Default)]
pub struct ContinueRequest {
    /// Its `state` (the suspended login's) and parameters: what the actions
    /// see as `event.request.query`, and where `validateToken` finds its
    /// token.
    pub continued: Continued,
    /// Who sent it (Auth0's `event.request` of a continue is this request's).
    pub request: RequestInfo,
}

/// A suspended login and the request it came back with, as a run sees them.
#[derive(Clone, Copy)]
pub(crate) struct Resumed<'a> {
    pub(crate) suspended: &'a SuspendedLogin,
    pub(crate) continued: &'a ContinueRequest,
}

impl Redirected {
    /// The suspension of `login` after the action at `action` redirected.
    pub(crate) fn of(
        pipeline: &Pipeline,
        login: &Login,
        profile: Map<String, Value>,
        effects: ActionEffects,
        action: usize,
        now: u64,
        state: String,
    ) -> Redirected {
        let mut login = login.clone();
        login.profile = Some(profile);
        login.auth_time = Some(login.auth_time.unwrap_or(now));
        // The fetch is done: nothing after it reads the upstream's token.
        login.upstream.access_token.clear();
        let plugin = pipeline
            .actions
            .get(action)
            .map_or_else(String::new, |step| step.plugin.name().to_owned());
        let mut effects = effects;
        let to = effects.redirect.take().unwrap_or_default();
        Redirected {
            to,
            state,
            plugin: plugin.clone(),
            suspended: SuspendedLogin {
                login,
                effects,
                action,
                plugin,
                chain_version: pipeline.chain_version.clone(),
            },
        }
    }
}

impl ContinueRequest {
    /// Auth0's `event.request` of a continue: this request, its parameters
    /// as the query.
    pub(crate) fn show_in(&self, event: &mut Event) {
        let query: Map<String, Value> = self
            .continued
            .parameters
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        event.request.ip.clone_from(&self.request.ip);
        event
            .request
            .user_agent
            .clone_from(&self.request.user_agent);
        event.request.hostname.clone_from(&self.request.hostname);
        event.request.language.clone_from(&self.request.language);
        event.request.query = json_text(&query);
    }
}

impl Pipeline {
    /// Picks up `suspended` where its action sent the user away: runs that
    /// action's `onContinuePostLogin`, the rest of the chain and the
    /// minting. `options.redirect_state` is the state of a further
    /// redirect. A chain that changed meanwhile fails the login.
    pub async fn resume(
        &self,
        suspended: &SuspendedLogin,
        continued: &ContinueRequest,
        options: &RunOptions,
    ) -> LoginReport {
        use tracing::Instrument;
        let login = &suspended.login;
        let span = tracing::info_span!(
            "continue",
            connection = %login.connection,
            client = %login.client_id,
            plugin = %suspended.plugin,
        );
        let mut progress = Progress::default();
        let same_chain = suspended.chain_version == self.chain_version
            && self
                .actions
                .get(suspended.action)
                .is_some_and(|step| step.plugin.name() == suspended.plugin);
        let outcome = if same_chain {
            let resumed = Resumed {
                suspended,
                continued,
            };
            self.run_steps(login, options, Some(resumed), &mut progress)
                .instrument(span)
                .await
        } else {
            Err(LoginFailure::ChainChanged {
                plugin: suspended.plugin.clone(),
            })
        };
        LoginReport {
            steps: progress.steps,
            user_id: progress.user_id,
            outcome,
        }
    }

    /// What the actions of this run may do with `api.redirect`: nothing on
    /// a refresh or without a state to send.
    pub(crate) fn redirect_context(
        &self,
        login: &Login,
        options: &RunOptions,
        resumed: &Option<Resumed<'_>>,
        user_id: &str,
        now: u64,
    ) -> Option<Arc<RedirectContext>> {
        let state = options.redirect_state.clone().filter(|_| !login.refresh)?;
        Some(Arc::new(RedirectContext {
            issuer: self.config.issuer.clone(),
            user_id: user_id.to_owned(),
            state,
            continued: resumed.map(|resumed| resumed.continued.continued.clone()),
            now,
        }))
    }
}
