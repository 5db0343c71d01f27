//! The credential cache: lock-free reads, single-flight refresh, refresh ahead, backoff.
//!
//! Invariants:
//! - A request with a fresh credential reads one atomic (the generation) and clones its service
//!   clone's private copy of the header: no lock, no allocation. A credential that expires also
//!   costs one read of the coarse clock, so the copy is never served past its next deadline,
//!   even when nothing bumps the generation (its watcher's runtime is gone, not driven, or has
//!   no timers).
//! - Every change that could make a private copy stale (a new credential, an invalidation, a
//!   refresh or expiry deadline passing, the end of a backoff) bumps the generation after the
//!   change is visible.
//! - In the refresh-ahead window a request takes the slow path until a renewal is under way (a
//!   fetch runs, or a backoff will end); then private copies serve again until it ends.
//! - At most one fetch per cache is in flight; it runs in a task of its own and every waiter
//!   receives its result. A dropped waiter cancels nothing.
//! - A failed fetch starts a backoff (exponential, jittered, at least `Retry-After`); until it
//!   ends, callers get the failure at once, or the old credential while it is still valid. A
//!   failed fetch that hands back a credential still valid (`Error::with_fallback`: an Exchange
//!   token whose refresh failed) publishes it first, so it serves through the backoff as an old
//!   credential would, and the next fetch is asked to replace it.
//! - A revocation runs in a task of its own too: a caller that gives up cancels nothing, and a
//!   credential it could not end is kept to be ended first. For a source that ends the
//!   previous credential (`ends_previous`: sessions), a credential fetched while a revocation
//!   waits for it is ended as it arrives, never published, and its waiters wait for a fresh one.

mod backoff;
mod ended;
mod fetch;
mod lookup;
mod policy;
mod refusal;
mod registry;
mod revocation;
mod wait;
mod watcher;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::Credential;
use crate::credential::sensitive_header;
use crate::source::SharedTokenSource;

pub(crate) use lookup::Lookup;
pub use policy::RefreshPolicy;
pub(crate) use refusal::Refusal;
pub(crate) use registry::CacheKey;

use backoff::Failure;
use fetch::Flight;
use policy::{CENTURY, Deadlines};
use revocation::Revocation;

/// The published state: what requests read without a lock.
#[derive(Default)]
struct Slot {
    /// Identifies the credential (0: none yet). Invalidation names it.
    id: u64,
    credential: Option<Credential>,
    deadlines: Deadlines,
}

/// Bookkeeping behind the lock; touched only on the slow path.
#[derive(Default)]
struct State {
    /// The fetch in flight, and its task, whose end shows even when nobody polls the flight.
    flight: Option<(Flight, AbortHandle)>,
    /// Numbers fetches, so a finished fetch only clears its own flight.
    flight_no: u64,
    failure: Option<Failure>,
    /// The last credential published, handed to the next fetch as `previous`.
    previous: Option<Credential>,
    /// A revocation ending `previous` at the server, which it took and gives back if that
    /// fails (or its task is dropped half-way): a fetch waits for it before it creates a
    /// successor (and ends the given-back one first), and so does another revocation.
    revoking: Option<Revocation>,
    /// Numbers revocations, so a finished one only clears its own.
    revocation_no: u64,
    /// The fetch (by number) whose credential a `revoke()` waits to end: it is revoked as it
    /// arrives instead of being published, so no request is sent with it.
    revoke_on_arrival: Option<u64>,
    /// The revocation that fetch's end started (by fetch number), whose result is that of
    /// every `revoke()` that waited for the fetch, even one that looks only after it ended.
    revoked_on_arrival: Option<(u64, Revocation)>,
    /// The watcher of the published credential: ends when it is replaced, forgotten or the
    /// cache drops, instead of sleeping on until the credential's next deadline.
    watcher: Option<AbortOnDrop>,
    /// The server refused the credential (forgotten, or kept while the cache backs off): the
    /// next one published answers that refusal, however it is fetched.
    refused: bool,
    /// The credential published to answer a refusal (its id, and when): refused in turn soon
    /// after ([`REFUSED_AGAIN`](refusal::REFUSED_AGAIN)), it backs off instead of renewing at once.
    answers_refusal: Option<(u64, Instant)>,
}

/// A task aborted when this handle drops.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl State {
    /// The fetch in flight, if any. A flight that ended without recording itself (its task was
    /// dropped before it started, as a runtime shutting down does) is cleared, not waited on.
    fn current_flight(&mut self) -> Option<Flight> {
        // A task that recorded its result cleared its flight before it finished.
        if self
            .flight
            .as_ref()
            .is_some_and(|(_, task)| task.is_finished())
        {
            self.flight = None;
        }
        self.flight.as_ref().map(|(flight, _)| flight.clone())
    }

    /// The revocation under way, if any (a finished one is cleared).
    fn current_revocation(&mut self) -> Option<Revocation> {
        if self.revoking.as_ref().is_some_and(|r| r.peek().is_some()) {
            self.revoking = None;
        }
        self.revoking.clone()
    }
}

/// Keeps a value alone on its cache lines. A request bumps the reference count of its service
/// clone's header copy; clones made one after another allocate these side by side, and two
/// counts on one line, written by two cores, would contend just like one shared count. 128
/// bytes, not 64: x86's adjacent-line prefetcher pairs lines.
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T: AsRef<[u8]>> AsRef<[u8]> for CachePadded<T> {
    fn as_ref(&self) -> &[u8] {
        self.0.as_ref()
    }
}

/// On its own cache line: read by every request on every core, written rarely.
#[repr(align(64))]
struct Generation(AtomicU64);

struct Shared {
    key: CacheKey,
    generation: Generation,
    slot: ArcSwap<Slot>,
    /// Set by requests that use a sliding credential; sampled and cleared by its watcher.
    used: AtomicBool,
    state: Mutex<State>,
    source: SharedTokenSource,
    policy: RefreshPolicy,
}

/// A handle to one source's cache; clones share it.
#[derive(Clone)]
pub(crate) struct CredentialCache {
    shared: Arc<Shared>,
}

/// A service clone's private view of the cache: its own copy of the fresh header, valid while
/// the shared generation equals `generation` and the coarse clock is before `until`.
#[derive(Debug)]
pub(crate) struct Local {
    /// `STALE` while `header` is no credential's copy.
    generation: u64,
    id: u64,
    /// Empty until a credential is copied in (not an `Option`: the generation already says).
    header: HeaderValue,
    sliding: bool,
    /// The credential's next deadline on the coarse clock; `None` for one that never expires.
    until: Option<coarsetime::Instant>,
}

impl Default for Local {
    fn default() -> Self {
        Self {
            generation: STALE,
            id: 0,
            header: HeaderValue::from_static(""),
            sliding: false,
            until: None,
        }
    }
}

/// A generation the counter never reaches.
const STALE: u64 = u64::MAX;

impl Shared {
    /// Sends every private header copy back to the slow path; call it after the change that
    /// makes them stale is visible.
    fn bump(&self) {
        self.generation.0.fetch_add(1, Ordering::Release);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        registry::unregister(self.key);
    }
}

impl CredentialCache {
    pub(crate) fn new(source: SharedTokenSource, policy: RefreshPolicy) -> Self {
        Self {
            shared: Arc::new_cyclic(|shared| Shared {
                key: registry::register(shared),
                generation: Generation(AtomicU64::new(0)),
                slot: ArcSwap::from_pointee(Slot::default()),
                used: AtomicBool::new(false),
                state: Mutex::new(State::default()),
                source,
                policy,
            }),
        }
    }

    /// This cache's number, for a response future to find it after a `401`.
    pub(crate) fn key(&self) -> CacheKey {
        self.shared.key
    }

    pub(crate) fn source(&self) -> &SharedTokenSource {
        &self.shared.source
    }

    /// The hot path: the private header copy and its credential id, if still fresh.
    #[inline]
    pub(crate) fn cached<'a>(&self, local: &'a Local) -> Option<(&'a HeaderValue, u64)> {
        if self.shared.generation.0.load(Ordering::Acquire) != local.generation {
            return None;
        }
        let header = &local.header;
        if local.until.is_some_and(|until| coarse_now() >= until) {
            return None;
        }
        if local.sliding && !self.shared.used.load(Ordering::Relaxed) {
            self.shared.used.store(true, Ordering::Relaxed);
        }
        Some((header, local.id))
    }

    /// Calls `f` with the credential published now, if any, for the scope check. One lock-free
    /// load of the slot; nothing is fetched, cloned or counted, and `Local` copies and the
    /// generation are left alone, so the request path above stays as it is.
    pub(crate) fn with_current<R>(&self, f: impl FnOnce(Option<&Credential>) -> R) -> R {
        f(self.shared.slot.load().credential.as_ref())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }
}

/// Makes `local` serve `slot`'s credential from the fast path until its next deadline.
fn adopt(local: &mut Local, slot: &Slot, generation: u64) {
    let Some(credential) = &slot.credential else {
        return;
    };
    if local.id != slot.id || local.generation == STALE {
        let Some(header) = sensitive_header(credential.header().as_bytes()) else {
            // No copy: the fast path stays off, and requests take the slow one.
            local.generation = STALE;
            return;
        };
        local.header = header;
        local.id = slot.id;
        local.sliding = credential.idle_limit().is_some();
    }
    local.until = coarse_deadline(&slot.deadlines);
    local.generation = generation;
}

/// The coarse clock: a few nanoseconds a read where `Instant::now()` takes ~25. It lags by up to
/// one tick (4 ms on most Linux systems, up to 16 ms on Windows), which `COARSE_SLACK` covers.
/// It is monotonic on Linux, Android, macOS, Windows and the BSDs it names; elsewhere
/// `coarsetime` reads the wall clock, and a clock set back while no watcher runs would keep a
/// copy serving that much longer (the `wait` deadline leaves a tenth of a lifetime spare).
#[inline(always)]
fn coarse_now() -> coarsetime::Instant {
    coarsetime::Instant::now_without_cache_update()
}

/// How much earlier than its deadline a private copy stops serving: more than the coarse
/// clock's lag.
const COARSE_SLACK: Duration = Duration::from_millis(20);

/// The first of `deadlines` from now on, on the coarse clock, `COARSE_SLACK` early (`None`:
/// there is none, or it is beyond what that clock holds).
fn coarse_deadline(deadlines: &Deadlines) -> Option<coarsetime::Instant> {
    // Both clocks read together, so time spent before does not move the deadline.
    let (now, coarse) = (Instant::now(), coarse_now());
    let next = deadlines.next_after(now)?;
    // The coarse clock's durations wrap at 2^32 s (136 years): a credential that outlives a
    // century is checked again after one.
    let left = (next - now).saturating_sub(COARSE_SLACK).min(CENTURY);
    coarse.checked_add(left.into())
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    crate::sync::lock(&shared.state)
}

/// Empties the slot, keeping its id (a late `401` still names it), and ends its watcher.
fn forget(shared: &Shared, state: &mut State) {
    state.watcher = None;
    state.refused = false;
    let id = shared.slot.load().id;
    shared.slot.store(Arc::new(Slot {
        id,
        ..Slot::default()
    }));
    shared.bump();
}

impl fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = self.shared.slot.load();
        f.debug_struct("CredentialCache")
            .field("source", &self.shared.source)
            .field("credential", &slot.credential)
            .field("policy", &self.shared.policy)
            .finish()
    }
}

#[cfg(test)]
mod tests;
