//! The slow path: what a request finds when its private copy is stale, and the fetch it
//! starts when nothing fresh is held. Keeps two of the module's invariants: in the
//! refresh-ahead window a request comes here only until a renewal is under way, and during a
//! backoff it gets the failure at once, or the old credential while that is still valid.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::time::Instant;

use super::fetch::finish;
use super::policy::Phase;
use super::wait::{CredentialWait, Fallback};
use super::{CredentialCache, Local, adopt};
use crate::{Credential, Error, ErrorKind};

/// What the slow path found.
pub(crate) enum Lookup {
    /// A credential to send now.
    Ready(Credential, u64),
    /// Wait for a fetch.
    Wait(CredentialWait),
    /// A fetch failed recently and nothing valid is held.
    Failed(Error),
    /// Polled to completion.
    Taken,
}

/// A lookup is also the future of its credential.
impl Future for Lookup {
    type Output = Result<(Credential, u64), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Lookup::Wait(wait) = &mut *self {
            let result = std::task::ready!(Pin::new(wait).poll(cx));
            *self = Lookup::Taken;
            return Poll::Ready(result);
        }
        Poll::Ready(match std::mem::replace(&mut *self, Lookup::Taken) {
            Lookup::Ready(credential, id) => Ok((credential, id)),
            Lookup::Failed(error) => Err(error),
            Lookup::Wait(_) | Lookup::Taken => Err(Error::new(ErrorKind::Transport)
                .with_source("credential lookup polled after completion")),
        })
    }
}

impl CredentialCache {
    /// The slow path: reads the slot, renews `local` (a service clone's private copy, if any),
    /// and starts a fetch when needed.
    pub(crate) fn lookup(&self, mut local: Option<&mut Local>) -> Lookup {
        loop {
            let generation = self.shared.generation.0.load(Ordering::Acquire);
            let slot = self.shared.slot.load_full();
            let now = Instant::now();
            let mut fallback = None;
            if let Some(credential) = &slot.credential {
                match slot.deadlines.phase(now) {
                    Phase::Fresh => {
                        if let Some(local) = local.as_deref_mut() {
                            adopt(local, &slot, generation);
                        }
                        self.shared.used.store(true, Ordering::Relaxed);
                        return Lookup::Ready(credential.clone(), slot.id);
                    }
                    // A renewal would end it while requests still carry it: they wait for
                    // the renewal instead.
                    Phase::Ahead if self.shared.source.ends_previous() => {
                        fallback = Some(Fallback {
                            credential: credential.clone(),
                            id: slot.id,
                            expires: slot.deadlines.expires,
                        });
                    }
                    Phase::Ahead => {
                        self.shared.used.store(true, Ordering::Relaxed);
                        // While the renewal is under way, whose end bumps the generation, the
                        // private copy serves again: requests stay off this path and its lock.
                        if self.refresh_in_background(slot.id)
                            && let Some(local) = local.as_deref_mut()
                        {
                            adopt(local, &slot, generation);
                        }
                        return Lookup::Ready(credential.clone(), slot.id);
                    }
                    Phase::Wait => {
                        fallback = Some(Fallback {
                            credential: credential.clone(),
                            id: slot.id,
                            expires: slot.deadlines.expires,
                        });
                    }
                    Phase::Expired => {}
                }
            }
            let mut state = self.lock();
            // Published, invalidated or revoked while we looked (the last two keep the id):
            // look again.
            if !Arc::ptr_eq(&self.shared.slot.load(), &slot) {
                continue;
            }
            if let Some(flight) = state.current_flight() {
                return Lookup::Wait(CredentialWait::new(self, flight, fallback));
            }
            if let Some(failure) = state.failure.as_ref().filter(|f| now < f.retry_at) {
                return match fallback {
                    Some(Fallback { credential, id, .. }) => {
                        self.shared.used.store(true, Ordering::Relaxed);
                        Lookup::Ready(credential, id)
                    }
                    // Served again: it says when the next try is.
                    None => Lookup::Failed(
                        failure
                            .error
                            .clone()
                            .with_retry_after(failure.retry_at - now),
                    ),
                };
            }
            // A fixed credential is published here and now: no task, no runtime needed.
            if let Some(credential) = self.shared.source.fixed() {
                state.flight_no += 1;
                let flight_no = state.flight_no;
                drop(state);
                return match finish(&self.shared, flight_no, Ok(credential)) {
                    Ok((credential, id)) => Lookup::Ready(credential, id),
                    Err(err) => Lookup::Failed(err),
                };
            }
            return match self.start_fetch(&mut state) {
                Ok(flight) => Lookup::Wait(CredentialWait::new(self, flight, fallback)),
                Err(err) => Lookup::Failed(err),
            };
        }
    }

    /// A credential to send, waiting for a fetch if nothing valid is held.
    pub(crate) async fn get(&self) -> Result<(Credential, u64), Error> {
        self.lookup(None).await
    }
}
