//! One fetch at a time: started in a task of its own, and its end recorded (a credential
//! published, or a backoff started). Keeps the module's single-flight invariant (one fetch in
//! flight, which a dropped waiter does not cancel) and bumps the generation only once what
//! changed is visible; a fixed credential is published without a task.

use std::sync::Arc;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared as SharedFuture};
use tokio::time::Instant;

use super::backoff::back_off;
use super::ended::{Ended, LOOKS, ended, how_ended};
use super::policy::{Deadlines, Phase};
use super::revocation::revoke_on_arrival;
use super::watcher::watch;
use super::{AbortOnDrop, CredentialCache, Shared, Slot, State, forget, lock};
use crate::trace::event;
use crate::{Credential, Error, ErrorKind};

/// The result of one fetch, shared by every waiter.
pub(super) type Flight = SharedFuture<BoxFuture<'static, Result<(Credential, u64), Error>>>;

impl CredentialCache {
    /// Fetches a new credential now, even if the current one is fresh. One that a `revoke()`
    /// ends as it arrives is fetched again, after the revocation.
    pub(crate) async fn refresh(&self) -> Result<(Credential, u64), Error> {
        let mut looks = LOOKS;
        loop {
            let flight = {
                let mut state = self.lock();
                match state.current_flight() {
                    Some(flight) => flight,
                    None => self.start_fetch(&mut state)?,
                }
            };
            let result = flight.await;
            if how_ended(&result) != Some(Ended::Revoked) || looks == 0 {
                return self.renewed(result);
            }
            looks -= 1;
        }
    }

    /// `result` of a fetch `refresh()` waited for, or the failure behind it: a credential a
    /// failed renewal handed back is published and serves, but it is no new one.
    fn renewed(
        &self,
        result: Result<(Credential, u64), Error>,
    ) -> Result<(Credential, u64), Error> {
        let Ok((_, id)) = &result else {
            return result;
        };
        let state = self.lock();
        match &state.failure {
            Some(failure) if self.shared.slot.load().id == *id => Err(failure.error.clone()),
            _ => result,
        }
    }

    /// Starts a fetch of the successor of credential `id` unless one is running or a backoff
    /// is in force. Returns whether its renewal is under way: a fetch runs, or a backoff will
    /// end — either way the generation is bumped when it does.
    pub(super) fn refresh_in_background(&self, id: u64) -> bool {
        let mut state = self.lock();
        if self.shared.slot.load().id != id {
            return false; // already replaced
        }
        if state.current_flight().is_some() {
            return true;
        }
        if state
            .failure
            .as_ref()
            .is_some_and(|f| Instant::now() < f.retry_at)
        {
            return true;
        }
        event!(
            debug,
            source = self.shared.source.name(),
            "refreshing ahead of expiry"
        );
        // Without a runtime the request still goes out with the current credential.
        self.start_fetch(&mut state).is_ok()
    }

    pub(super) fn start_fetch(&self, state: &mut State) -> Result<Flight, Error> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::no_runtime("fetching a credential needs a tokio runtime"))?;
        state.flight_no += 1;
        let (shared, flight_no) = (Arc::clone(&self.shared), state.flight_no);
        let previous = state.previous.clone();
        let revocation = state.current_revocation();
        if self.shared.source.ends_previous() {
            stop_serving(&self.shared);
        }
        // The guard is made inside the task: a runtime that is shutting down drops a new task
        // at once, inside `spawn`, while this thread still holds the state lock.
        let task = runtime.spawn(async move {
            let mut guard = FetchGuard {
                shared,
                flight_no,
                done: false,
            };
            #[cfg(feature = "tracing")]
            let started = Instant::now();
            event!(
                debug,
                source = guard.shared.source.name(),
                "fetching a credential"
            );
            // A successor is created only once the revocation under way has ended its
            // credential at the server, or given it back to be ended first.
            let previous = match revocation {
                Some(revocation) => {
                    let _ = revocation.await;
                    lock(&guard.shared).previous.clone()
                }
                None => previous,
            };
            // A source that panics fails like any other (and backs off); only a task dropped
            // half-way (its runtime shutting down) ends without a result.
            let fetch = guard.shared.source.fetch(previous.as_ref());
            let result = std::panic::AssertUnwindSafe(fetch)
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(ended(Ended::Panicked)));
            guard.done = true;
            #[cfg(feature = "tracing")]
            trace_outcome(guard.shared.source.name(), started, &result);
            finish(&guard.shared, guard.flight_no, result)
        });
        let handle = task.abort_handle();
        let flight = async move { task.await.unwrap_or_else(|_| Err(ended(Ended::Cancelled))) }
            .boxed()
            .shared();
        state.flight = Some((flight.clone(), handle));
        Ok(flight)
    }
}

/// Has requests wait for the fetch starting now, which ends the published credential: it is
/// kept only to fall back on if the fetch fails without ending it.
fn stop_serving(shared: &Shared) {
    let slot = shared.slot.load_full();
    if slot.credential.is_none() {
        return;
    }
    let now = Instant::now();
    let deadlines = Deadlines {
        refresh: None,
        wait: Some(slot.deadlines.wait.map_or(now, |at| at.min(now))),
        expires: slot.deadlines.expires,
    };
    shared.slot.store(Arc::new(Slot {
        id: slot.id,
        credential: slot.credential.clone(),
        deadlines,
    }));
    shared.bump();
}

/// Records a fetch's result (publishing a credential, or starting a backoff) and clears its
/// flight. A result from a flight that is no longer current is passed on but not recorded.
pub(super) fn finish(
    shared: &Arc<Shared>,
    flight_no: u64,
    result: Result<Credential, Error>,
) -> Result<(Credential, u64), Error> {
    let mut state = lock(shared);
    let current = state.flight_no == flight_no;
    if current {
        state.flight = None;
    }
    let now = Instant::now();
    // A failed renewal whose source still holds a valid credential: that one is published, and
    // the failure backs off as any other (the credential serves meanwhile).
    let mut renewal_failed = None;
    let result = result.or_else(|mut error| match error.take_fallback() {
        Some(fallback) => {
            renewal_failed = Some(error);
            Ok(fallback)
        }
        None => Err(error),
    });
    // One that has expired already is as good as none: backing off spares the source a fetch
    // per request.
    let result = result.and_then(|credential| {
        let deadlines = shared.policy.deadlines(&credential, now);
        match deadlines.phase(now) {
            Phase::Expired => Err(renewal_failed.take().unwrap_or_else(|| {
                Error::new(ErrorKind::MalformedResponse {
                    reason: "the credential had expired when its source returned it".into(),
                })
            })),
            _ => Ok((credential, deadlines)),
        }
    });
    if current && state.revoke_on_arrival.take() == Some(flight_no) {
        let result = match renewal_failed {
            Some(error) => Err(error),
            None => result.map(|(credential, _)| credential),
        };
        return revoke_on_arrival(shared, &mut state, flight_no, result);
    }
    match result {
        Ok((credential, deadlines)) => {
            if !current {
                return Ok((credential, 0));
            }
            // Ids only change here, under the lock: the next one follows the slot's.
            let id = shared.slot.load().id + 1;
            state.previous = Some(credential.clone());
            if renewal_failed.is_none() {
                state.failure = None;
            }
            state.answers_refusal = std::mem::take(&mut state.refused).then_some((id, now));
            shared.slot.store(Arc::new(Slot {
                id,
                credential: Some(credential.clone()),
                deadlines,
            }));
            shared.bump();
            state.watcher = None;
            if deadlines.all().next().is_some()
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                let watcher = runtime.spawn(watch(Arc::downgrade(shared), id, now));
                state.watcher = Some(AbortOnDrop(watcher.abort_handle()));
            }
            if let Some(error) = &renewal_failed {
                back_off(shared, &mut state, error, now);
            }
            Ok((credential, id))
        }
        Err(error) => {
            if current {
                // The fetch ended its `previous`, the credential published (fetches publish one
                // at a time, under the lock): nothing may send it, or end it, again.
                if error.is_previous_ended() {
                    state.previous = None;
                }
                // One it may have ended is not sent again either, but kept to be ended first.
                if error.previous_unusable() {
                    forget(shared, &mut state);
                }
                back_off(shared, &mut state, &error, now);
            }
            Err(error)
        }
    }
}

#[cfg(feature = "tracing")]
fn trace_outcome(source: &'static str, started: Instant, result: &Result<Credential, Error>) {
    let elapsed = started.elapsed();
    match result {
        Ok(credential) => {
            let lifetime = credential.lifetime();
            event!(info, source, ?elapsed, ?lifetime, "fetched a credential");
        }
        // At `debug`: the backoff that follows says it at `warn`, with its delay.
        Err(error) => event!(
            debug,
            source,
            ?elapsed,
            error = crate::trace::with_causes(error),
            "credential fetch failed"
        ),
    }
}

/// Clears the flight if its task ends without a result (cancelled by a runtime shutdown), so
/// the next caller starts afresh instead of waiting forever. Nothing failed: no backoff.
struct FetchGuard {
    shared: Arc<Shared>,
    flight_no: u64,
    done: bool,
}

impl Drop for FetchGuard {
    fn drop(&mut self) {
        if !self.done {
            let mut state = lock(&self.shared);
            if state.flight_no == self.flight_no {
                state.flight = None;
            }
        }
    }
}
