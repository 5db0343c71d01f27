//! Waiting for a fetch in flight. Keeps the module's invariants that every waiter receives
//! the fetch's result, and that a still-valid credential serves while its renewal fails,
//! unless the failed fetch ended it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt as _;
use tokio::time::Instant;

use super::ended::{Ended, LOOKS, how_ended, looks_again};
use super::fetch::Flight;
use super::{CredentialCache, Lookup};
use crate::{Credential, Error};

/// Waits for a fetch in flight. If it fails while the previous credential is still valid, the
/// previous credential is served instead. If it ends without a result (its runtime shut down:
/// a `#[tokio::test]` that started it ended), the wait looks again, which fetches on the
/// waiter's own runtime; so it does if a `revoke()` ended the credential as it arrived (the
/// fetch it starts waits for that revocation).
pub(crate) struct CredentialWait {
    cache: CredentialCache,
    flight: Flight,
    fallback: Option<Fallback>,
    /// Looks left (see [`LOOKS`]).
    looks: u8,
}

/// The credential a waiter falls back on if the fetch fails: still valid until `expires`.
pub(super) struct Fallback {
    pub(super) credential: Credential,
    pub(super) id: u64,
    pub(super) expires: Option<Instant>,
}

impl CredentialWait {
    pub(super) fn new(cache: &CredentialCache, flight: Flight, fallback: Option<Fallback>) -> Self {
        Self {
            cache: cache.clone(),
            flight,
            fallback,
            looks: LOOKS,
        }
    }
}

impl Future for CredentialWait {
    type Output = Result<(Credential, u64), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut result = std::task::ready!(self.flight.poll_unpin(cx));
        while looks_again(&result) && self.looks > 0 {
            if how_ended(&result) == Some(Ended::Revoked) {
                // Revoked: what came before it is no fallback.
                self.fallback = None;
            }
            self.looks -= 1;
            match self.cache.lookup(None) {
                Lookup::Wait(wait) => {
                    self.flight = wait.flight;
                    self.fallback = wait.fallback.or_else(|| self.fallback.take());
                    result = std::task::ready!(self.flight.poll_unpin(cx));
                }
                Lookup::Ready(credential, id) => return Poll::Ready(Ok((credential, id))),
                Lookup::Failed(error) => result = Err(error),
                Lookup::Taken => break,
            }
        }
        Poll::Ready(match (result, self.fallback.take()) {
            (Err(error), Some(fallback))
                if !error.previous_unusable()
                    && fallback.expires.is_none_or(|at| Instant::now() < at) =>
            {
                Ok((fallback.credential, fallback.id))
            }
            (result, _) => result,
        })
    }
}

impl fmt::Debug for CredentialWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialWait").finish_non_exhaustive()
    }
}
