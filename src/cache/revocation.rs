//! Ending a credential at the server. Keeps the module's revocation invariant: a revocation
//! runs in a task of its own, so a caller that gives up cancels nothing, and what it could not
//! end is kept to be ended first; a fetch waits for a revocation under way, concurrent ones
//! share it, and a credential fetched while a revocation waits for it is ended as it arrives.

use std::sync::{Arc, Weak};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared as SharedFuture};
use tokio::time::Instant;

use super::backoff::back_off;
use super::ended::{Ended, LOOKS, ended, how_ended};
use super::fetch::Flight;
use super::{CredentialCache, Shared, State, forget, lock};
use crate::source::SharedTokenSource;
use crate::{Credential, Error};

/// A revocation's result, shared by every caller waiting for it. Its request runs in a task
/// of its own (as a fetch does), so a caller that gives up cancels nothing.
pub(super) type Revocation = SharedFuture<BoxFuture<'static, Result<(), Error>>>;

impl CredentialCache {
    /// Ends the current credential at the server and forgets it. A fetch in flight is let
    /// finish first, and for a source that ends the previous credential, what it makes is ended
    /// as it arrives; a revocation under way is waited for, and its result is this one's. The
    /// request runs in a task of its own, so a caller that gives up loses nothing: the
    /// credential is ended, or kept to be ended by the next revocation or fetch.
    pub(crate) async fn revoke(&self) -> Result<(), Error> {
        /// What a revocation waits for first, or the one it shares.
        enum Next {
            Flight(Flight, u64),
            Revocation(Revocation),
        }
        let mut looks = LOOKS;
        loop {
            let next = {
                let mut state = self.lock();
                match state.current_flight() {
                    Some(flight) => {
                        // Only a source whose credentials are in force one at a time (sessions)
                        // would have the fetch's waiters sent with what the revocation ends;
                        // any other's waiters are let have it.
                        if self.shared.source.ends_previous() {
                            state.revoke_on_arrival = Some(state.flight_no);
                        }
                        Next::Flight(flight, state.flight_no)
                    }
                    // No fetch can publish before the revocation takes what it ends: one
                    // started from now on waits for it.
                    None => Next::Revocation(match state.current_revocation() {
                        Some(revocation) => revocation,
                        None => start_revocation(&self.shared, &mut state),
                    }),
                }
            };
            let revocation = match next {
                Next::Revocation(revocation) => revocation,
                Next::Flight(flight, flight_no) => {
                    // Its end starts the revocation of what it made (under the lock, before any
                    // of its waiters can look again): that one is ours, though it may be over
                    // already and a waiter's fetch have made a credential since (not ours to end).
                    let _ = flight.await;
                    let arrival = lock(&self.shared)
                        .revoked_on_arrival
                        .clone()
                        .filter(|(revoked, _)| *revoked == flight_no);
                    match arrival {
                        Some((_, revocation)) => revocation,
                        None => continue,
                    }
                }
            };
            let result = revocation.await;
            // One cut off by its runtime's end (or never run) ended nothing: look again.
            if how_ended(&result) == Some(Ended::Cancelled) && looks > 0 {
                looks -= 1;
                continue;
            }
            return result;
        }
    }
}

/// Records the result of a fetch that a `revoke()` waits for: its credential becomes the one
/// the revocation ends, never published, and its waiters look again (they wait for the
/// revocation, then get a fresh credential). A failure is recorded as any other, and what it
/// left is revoked all the same.
pub(super) fn revoke_on_arrival(
    shared: &Arc<Shared>,
    state: &mut State,
    flight_no: u64,
    result: Result<Credential, Error>,
) -> Result<(Credential, u64), Error> {
    let outcome = match result {
        Ok(credential) => {
            state.previous = Some(credential);
            state.failure = None;
            // What came before it was ended by this fetch or is revoked now: no fallback.
            Err(ended(Ended::Revoked).with_previous_ended())
        }
        Err(error) => {
            if error.is_previous_ended() {
                state.previous = None;
            }
            back_off(shared, state, &error, Instant::now());
            // What it would have replaced is revoked now: no waiter falls back on it.
            Err(error.with_previous_ended())
        }
    };
    // Started here, under the lock: a waiter that looks again finds it and waits for it.
    let revocation = start_revocation(shared, state);
    state.revoked_on_arrival = Some((flight_no, revocation));
    outcome
}

/// Forgets the published credential and starts ending `previous` at the server, in a task of
/// its own when there is a runtime (else the future runs as its callers poll it). The task
/// takes `previous` when it starts and gives it back if ending it fails or the task is dropped
/// half-way, so a credential still alive at the server is never lost.
fn start_revocation(shared: &Arc<Shared>, state: &mut State) -> Revocation {
    forget(shared, state);
    state.revocation_no += 1;
    let work = revoke_previous(
        Arc::downgrade(shared),
        shared.source.clone(),
        state.revocation_no,
    );
    let revocation = match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let task = runtime.spawn(work);
            async move { task.await.unwrap_or_else(|_| Err(ended(Ended::Cancelled))) }.boxed()
        }
        Err(_) => work.boxed(),
    }
    .shared();
    state.revoking = Some(revocation.clone());
    revocation
}

/// Ends the credential in `previous` at the server (revocation number `revocation_no`).
async fn revoke_previous(
    shared: Weak<Shared>,
    source: SharedTokenSource,
    revocation_no: u64,
) -> Result<(), Error> {
    let credential = shared
        .upgrade()
        .and_then(|shared| lock(&shared).previous.take());
    let mut guard = RevocationGuard {
        shared,
        revocation_no,
        credential,
        ended: false,
    };
    let result = match &guard.credential {
        Some(credential) => {
            let revoke = source.revoke(credential);
            std::panic::AssertUnwindSafe(revoke)
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(ended(Ended::Panicked)))
        }
        None => Ok(()),
    };
    guard.ended = result.is_ok();
    result
}

/// Clears its revocation when it ends, and gives its credential back unless it was ended. Holds
/// its cache weakly: a revocation run by its callers (no runtime) lives in the cache's state.
struct RevocationGuard {
    shared: Weak<Shared>,
    revocation_no: u64,
    credential: Option<Credential>,
    ended: bool,
}

impl Drop for RevocationGuard {
    fn drop(&mut self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let mut state = lock(&shared);
        if state.revocation_no == self.revocation_no {
            state.revoking = None;
        }
        if !self.ended && state.previous.is_none() {
            // Still live at the server: kept, so that the next revocation or fetch (which ends
            // its `previous` first) ends it.
            state.previous = self.credential.take();
        }
    }
}
