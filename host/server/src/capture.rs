//! Captured logins: a login that a plugin configured with `capture = true`
//! runs in is recorded as it runs (the stored user the chain read, the
//! answers its requests got) and kept beside its audit row, for `claimsmith
//! capture LOG_ID` to write as a golden case.
//!
//! Owns the recording only. What is kept, and how secrets are replaced, is
//! golden's ([`claimsmith_golden::capture`]); the store keeps it in the same
//! transaction as the audit row.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::lock;
use claimsmith_capabilities::http::{
    HttpError, InterceptOutcome, OutboundHttpInterceptor, OutboundRequest, OutboundResponse,
};
use claimsmith_core::StoredUser;
use claimsmith_golden::capture::{Answered, LiveLogin};
use claimsmith_pipeline::{BoxFuture, Login, LoginReport, Pipeline, StoredUsers, UserLookup};

/// One login's recording, while its chain runs.
pub(crate) struct LoginCapture {
    /// Where the chain reads the stored user (none on a refresh, whose
    /// login holds the user already).
    users: Option<Arc<dyn StoredUsers>>,
    read: Mutex<Option<StoredUser>>,
    answered: Mutex<Vec<Answered>>,
    now: u64,
}

impl LoginCapture {
    /// A recording for a login on `pipeline` starting at `now`, when one of
    /// its plugins captures; the chain reads its user from `users`.
    pub(crate) fn for_login(
        pipeline: &Pipeline,
        users: Option<Arc<dyn StoredUsers>>,
        now: u64,
    ) -> Option<Arc<Self>> {
        let captures = pipeline.config().plugins.values().any(|spec| spec.capture);
        captures.then(|| {
            Arc::new(LoginCapture {
                users,
                read: Mutex::default(),
                answered: Mutex::default(),
                now,
            })
        })
    }

    /// Where the chain reads the user through this recording.
    pub(crate) fn users(self: &Arc<Self>) -> Option<Arc<dyn StoredUsers>> {
        self.users
            .is_some()
            .then(|| self.clone() as Arc<dyn StoredUsers>)
    }

    /// What to keep of `login` once the chain has run, if a capturing
    /// plugin was among the steps of `report`.
    pub(crate) fn kept(
        &self,
        pipeline: &Pipeline,
        login: &Login,
        report: &LoginReport,
    ) -> Option<Value> {
        let config = pipeline.config();
        let captured = report.steps.iter().any(|step| {
            config
                .plugins
                .get(&step.name)
                .is_some_and(|spec| spec.capture)
        });
        if !captured {
            return None;
        }
        let mut login = login.clone();
        if let Some(user) = lock(&self.read).take() {
            login.user = user;
        }
        let answered = std::mem::take(&mut *lock(&self.answered));
        let live = LiveLogin {
            login: &login,
            now: self.now,
            answered: &answered,
            report,
        };
        Some(claimsmith_golden::capture::keep(&live, config))
    }
}

impl StoredUsers for LoginCapture {
    fn load<'a>(&'a self, lookup: UserLookup<'a>) -> BoxFuture<'a, Result<StoredUser, String>> {
        Box::pin(async move {
            let users = (self.users.as_ref()).ok_or("no user directory for this login")?;
            let user = users.load(lookup).await?;
            *lock(&self.read) = Some(user.clone());
            Ok(user)
        })
    }
}

impl OutboundHttpInterceptor for LoginCapture {
    fn intercept(&self, _plugin: &str, _request: &OutboundRequest) -> InterceptOutcome {
        InterceptOutcome::Continue
    }

    /// Keeps what the network answered. A request that failed (timed out,
    /// refused) is not kept: the case's run finds no exchange for it and
    /// sees it fail too.
    fn answered(
        &self,
        _plugin: &str,
        request: &OutboundRequest,
        answer: &Result<OutboundResponse, HttpError>,
    ) {
        if let Ok(response) = answer {
            lock(&self.answered).push(Answered {
                method: request.method.clone(),
                url: request.url.clone(),
                response: response.clone(),
            });
        }
    }
}
