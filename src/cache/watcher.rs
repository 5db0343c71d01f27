//! The task that follows a published credential through its deadlines. Keeps the module's
//! rule that a refresh or expiry deadline passing bumps the generation; it also extends a
//! sliding credential that was used, and with keep-alive starts the renewal itself. One per
//! credential: the cache aborts it when the credential is replaced or forgotten, or drops.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use tokio::time::Instant;

use super::policy::{Phase, idle_tick, later};
use super::{CredentialCache, Shared, Slot, lock};

/// Follows one published credential through its deadlines: bumps the generation as each one
/// passes (so private header copies are re-checked), samples use of a sliding credential to
/// extend it, and with keep-alive starts the refresh itself. Ends with the credential, or when
/// the cache is dropped.
pub(super) async fn watch(shared: Weak<Shared>, id: u64, published: Instant) {
    let mut announced = published;
    loop {
        let wake = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let slot = shared.slot.load();
            let Some(credential) = slot.credential.as_ref().filter(|_| slot.id == id) else {
                return;
            };
            let next = slot.deadlines.next_after(announced);
            let tick = credential
                .idle_limit()
                .map(|idle| later(announced, idle_tick(idle)));
            // With keep-alive, a failed refresh is tried again when its backoff ends.
            let retry = shared
                .policy
                .keep_alive
                .then(|| lock(&shared).failure.as_ref().map(|f| f.retry_at))
                .flatten()
                .filter(|at| *at > announced);
            match next.into_iter().chain(tick).chain(retry).min() {
                Some(wake) => wake,
                None => return,
            }
        };
        tokio::time::sleep_until(wake).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now = Instant::now();
        let slot = shared.slot.load_full();
        let Some(credential) = slot.credential.as_ref().filter(|_| slot.id == id) else {
            return;
        };
        if credential.idle_limit().is_some() && shared.used.swap(false, Ordering::Relaxed) {
            // Used since the previous sample, which is all we know: count from that sample.
            // Read again under the lock: an invalidation or revocation since keeps the id but
            // not the credential, and must not be undone.
            let state = lock(&shared);
            // A renewal that ends the credential has stopped it serving: not undone here.
            let renewing = state.flight.is_some() && shared.source.ends_previous();
            let current = shared.slot.load();
            if !renewing
                && current.id == id
                && let Some(credential) = current.credential.clone()
            {
                let deadlines = shared.policy.deadlines(&credential, announced);
                shared.slot.store(Arc::new(Slot {
                    id,
                    credential: Some(credential),
                    deadlines,
                }));
            }
        }
        let slot = shared.slot.load_full();
        if slot.deadlines.all().any(|at| at > announced && at <= now) {
            shared.bump();
        }
        let phase = slot.deadlines.phase(now);
        if shared.policy.keep_alive && matches!(phase, Phase::Ahead | Phase::Wait) {
            // A no-op while a fetch runs or a backoff is in force.
            CredentialCache {
                shared: Arc::clone(&shared),
            }
            .refresh_in_background(id);
        }
        announced = now;
        if phase == Phase::Expired {
            return;
        }
    }
}
