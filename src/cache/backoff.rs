//! A failed renewal and the backoff it starts. Keeps the module's backoff invariant
//! (exponential, jittered, at least `Retry-After`, never shortened by a later failure), and
//! its end bumps the generation so that private copies look again.

use std::sync::Arc;

use tokio::time::Instant;

use super::policy::{Phase, later};
use super::{AbortOnDrop, CredentialCache, Shared, State};
use crate::Error;
use crate::trace::event;

pub(super) struct Failure {
    pub(super) error: Error,
    pub(super) retry_at: Instant,
    count: u32,
    /// The task that bumps the generation when the backoff ends, so private copies of a
    /// credential still being served go back to the slow path and try again. It ends with the
    /// failure: a success, the next failure or the cache dropping aborts it.
    _wake: Option<AbortOnDrop>,
}

/// Records a failed renewal: until its backoff ends (never sooner than the one in force), a
/// lookup that finds no valid credential gets `error` instead of starting a fetch.
pub(super) fn back_off(shared: &Arc<Shared>, state: &mut State, error: &Error, now: Instant) {
    let count = state
        .failure
        .as_ref()
        .map_or(0, |f| f.count)
        .saturating_add(1);
    // A failure never brings the next try forward: a refusal arriving while the server's
    // `Retry-After` holds keeps it.
    let retry_at = later(now, shared.policy.backoff_delay(count, error.retry_after()))
        .max(state.failure.as_ref().map_or(now, |f| f.retry_at));
    let delay = retry_at.saturating_duration_since(now);
    // The one `warn` of a failed renewal: what failed, and when the next try is.
    event!(
        warn,
        source = shared.source.name(),
        error = crate::trace::with_causes(error),
        failures = count,
        ?delay,
        "credential renewal failed: backing off before the next fetch"
    );
    // A runtime without timers has the end of the backoff found by the next lookup: a task
    // waiting for it would only panic.
    let runtime = tokio::runtime::Handle::try_current()
        .ok()
        .filter(|_| !error.is_no_timers());
    let wake = runtime.map(|runtime| {
        let shared = Arc::downgrade(shared);
        let wake = runtime.spawn(async move {
            tokio::time::sleep_until(retry_at).await;
            if let Some(shared) = shared.upgrade() {
                shared.bump();
                // With keep-alive, an idle credential's failed renewal is tried again now: its
                // watcher sleeps until the next deadline, set before the failure was known.
                // (Not after a zero delay: that would fetch in a loop while idle.)
                if shared.policy.keep_alive && !delay.is_zero() {
                    let slot = shared.slot.load_full();
                    let due = matches!(
                        slot.deadlines.phase(Instant::now()),
                        Phase::Ahead | Phase::Wait
                    );
                    if due && slot.credential.is_some() {
                        CredentialCache { shared }.refresh_in_background(slot.id);
                    }
                }
            }
        });
        AbortOnDrop(wake.abort_handle())
    });
    state.failure = Some(Failure {
        error: error.clone(),
        retry_at,
        count,
        _wake: wake,
    });
}
