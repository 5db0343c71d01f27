//! What the server's refusal of a credential (a `401`, a gRPC `UNAUTHENTICATED`) does to the
//! cache: the credential is forgotten, or, when it had itself answered a refusal less than a
//! minute before, kept while the cache backs off, so a server that refuses everything gets one
//! token request per backoff.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;

use super::backoff::back_off;
use super::{CredentialCache, Shared, State, forget};
use crate::trace::event;

/// How soon a credential that answered a refusal must be refused too to count as refused for
/// the same reason (a locked account, a session bound to another address): a server that
/// refuses every credential does so at the next request. One that served for longer and was
/// then refused (a session ended at a fixed age) is renewed as any other.
pub(super) const REFUSED_AGAIN: Duration = Duration::from_secs(60);

/// What the server's refusal of a credential did to the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not the current credential (replaced already): nothing.
    Stale,
    /// Forgotten: the next lookup renews it.
    Forgotten,
    /// It had itself replaced a refused credential: kept, and the cache backs off before
    /// renewing again, so a server that refuses every credential gets one token request per
    /// backoff, whether or not requests can be replayed.
    BackedOff,
}

impl CredentialCache {
    /// Forgets credential `id` after the server refused it, or backs off if it had itself
    /// replaced a refused one (see [`Refusal`]). A later credential is kept: a late `401` for an
    /// old credential changes nothing.
    pub(crate) fn invalidate(&self, id: u64) -> Refusal {
        let refusal = self.forget_refused(id);
        if refusal == Refusal::Forgotten {
            event!(
                info,
                source = self.shared.source.name(),
                "credential refused (401): invalidated"
            );
        }
        refusal
    }

    /// Forgets the current credential if it is the one a request carried (`sent`, its
    /// `Authorization`) and a gRPC server refused that request (`UNAUTHENTICATED`, which comes
    /// with HTTP 200), and starts its renewal, so the next request gets the new one. A newer
    /// credential, or a header the caller set, is left alone. Returns whether it was forgotten.
    pub(crate) fn renew_if_sent(&self, sent: &HeaderValue) -> bool {
        let id = {
            let slot = self.shared.slot.load();
            match &slot.credential {
                Some(current) if current.was_sent_as(sent) => slot.id,
                _ => return false,
            }
        };
        if self.forget_refused(id) != Refusal::Forgotten {
            return false;
        }
        event!(
            info,
            source = self.shared.source.name(),
            "credential refused (gRPC UNAUTHENTICATED): invalidated"
        );
        drop(self.lookup(None));
        true
    }

    /// Forgets credential `id`, if it is still the current one, after the server refused it;
    /// if it answered a refusal itself, keeps it and backs off instead.
    fn forget_refused(&self, id: u64) -> Refusal {
        let mut state = self.lock();
        let slot = self.shared.slot.load();
        if slot.id != id || slot.credential.is_none() {
            return Refusal::Stale;
        }
        if state
            .answers_refusal
            .is_some_and(|(answer, at)| answer == id && at.elapsed() < REFUSED_AGAIN)
        {
            refused_again(&self.shared, &mut state);
            return Refusal::BackedOff;
        }
        forget(&self.shared, &mut state);
        state.refused = true;
        Refusal::Forgotten
    }

    /// The server refused credential `id` too, fetched to replace one it had refused: renewing
    /// again at once would likely be refused as well (an account locked, a session bound to
    /// another address), so this counts as a failed renewal and backs off. The credential is
    /// kept: a refusal that was only a moment early (a token not yet known to every server)
    /// costs nothing more.
    pub(crate) fn refused_after_renewal(&self, id: u64) {
        let mut state = self.lock();
        if self.shared.slot.load().id != id {
            return; // already replaced
        }
        refused_again(&self.shared, &mut state);
    }
}

/// A credential that answered a refusal was refused too: a failed renewal, which backs off. The
/// credential is kept (a refusal only a moment early costs nothing more); its next refusal
/// forgets it, and the renewal waits for the backoff.
fn refused_again(shared: &Arc<Shared>, state: &mut State) {
    state.answers_refusal = None;
    // Its successor, even one renewed ahead of time while idle, answers this refusal.
    state.refused = true;
    let error = crate::future::invalid_credentials(true);
    back_off(shared, state, &error, Instant::now());
}
