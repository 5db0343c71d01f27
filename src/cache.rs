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

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared as SharedFuture};
use http::HeaderValue;
use rand::Rng as _;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::credential::sensitive_header;
use crate::source::SharedTokenSource;
use crate::trace::event;
use crate::{Credential, Error, ErrorKind};

/// When credentials are renewed, and how failures are spaced.
///
/// A credential with a lifetime `L` is renewed in the background once about three quarters of
/// `L` have passed (minus up to 5 % of jitter, so many processes do not refresh in step), while
/// requests keep using it; in its last tenth (at most one minute) requests wait for the new one.
/// A one-minute Exchange token is thus renewed every ~45 s, a one-hour OAuth token after ~45
/// minutes, and neither on every request nor at the last second.
///
/// ```
/// use infobip_auth::InfobipAuthLayer;
/// use std::time::Duration;
/// use tokio::time::sleep;
/// # use std::sync::atomic::{AtomicUsize, Ordering};
/// # use infobip_auth::{Credential, Error, source::TokenSource};
/// # #[derive(Debug, Default)] struct Numbered(AtomicUsize);
/// # impl TokenSource for Numbered {
/// #     async fn fetch(&self, _: Option<&Credential>) -> Result<Credential, Error> {
/// #         let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
/// #         Ok(Credential::new("Bearer", &format!("token-{n}"))?.expires_in(Duration::from_secs(100)))
/// #     }
/// # }
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), infobip_auth::BoxError> {
/// // `Numbered` makes `token-1`, `token-2`, ..., each valid for 100 seconds.
/// let layer = InfobipAuthLayer::new(Numbered::default());
/// assert_eq!(layer.credential().await?.header(), "Bearer token-1");
/// // Past three quarters of its lifetime the token is still served, and its renewal starts.
/// sleep(Duration::from_secs(80)).await;
/// assert_eq!(layer.credential().await?.header(), "Bearer token-1");
/// sleep(Duration::from_secs(1)).await;
/// assert_eq!(layer.credential().await?.header(), "Bearer token-2");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RefreshPolicy {
    ahead: f64,
    max_wait_margin: Duration,
    keep_alive: bool,
    backoff_base: Duration,
    backoff_max: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            ahead: 0.75,
            max_wait_margin: Duration::from_secs(60),
            keep_alive: false,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

impl RefreshPolicy {
    /// The fraction of a credential's lifetime after which a background refresh starts
    /// (clamped to 0.1..=0.9; default 0.75).
    ///
    /// ```
    /// # use infobip_auth::{InfobipAuthLayer, RefreshPolicy};
    /// # use std::time::Duration;
    /// # use tokio::time::sleep;
    /// # use std::sync::atomic::{AtomicUsize, Ordering};
    /// # use infobip_auth::{Credential, Error, source::TokenSource};
    /// # #[derive(Debug, Default)] struct Numbered(AtomicUsize);
    /// # impl TokenSource for Numbered {
    /// #     async fn fetch(&self, _: Option<&Credential>) -> Result<Credential, Error> {
    /// #         let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
    /// #         Ok(Credential::new("Bearer", &format!("token-{n}"))?.expires_in(Duration::from_secs(100)))
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // `Numbered` makes `token-1`, `token-2`, ..., each valid for 100 seconds.
    /// let eager = RefreshPolicy::default().refresh_ahead(0.5);
    /// let layer = InfobipAuthLayer::new(Numbered::default()).refresh_policy(eager);
    /// assert_eq!(layer.credential().await?.header(), "Bearer token-1");
    /// // Half-way through its lifetime, the renewal starts.
    /// sleep(Duration::from_secs(55)).await;
    /// layer.credential().await?;
    /// sleep(Duration::from_secs(1)).await;
    /// assert_eq!(layer.credential().await?.header(), "Bearer token-2");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn refresh_ahead(mut self, fraction: f64) -> Self {
        self.ahead = if fraction.is_nan() {
            0.75
        } else {
            fraction.clamp(0.1, 0.9)
        };
        self
    }

    /// Renew credentials that live a fixed time (OAuth and Exchange tokens) in the background
    /// even when no request comes, so an idle connection to an account (an Exchange token that
    /// lives one minute) stays alive. An idle IBSSO session is left to end: the next request
    /// makes a new one. Off by default. It starts with the layer's first credential, fetched
    /// by the first request or by [`InfobipAuthLayer::credential`](crate::InfobipAuthLayer::credential):
    /// call that once the account is connected if it may then stay idle.
    ///
    /// ```
    /// # use infobip_auth::{InfobipAuthLayer, RefreshPolicy};
    /// # use std::time::Duration;
    /// # use tokio::time::sleep;
    /// # use std::sync::atomic::{AtomicUsize, Ordering};
    /// # use infobip_auth::{Credential, Error, source::TokenSource};
    /// # #[derive(Debug, Default)] struct Numbered(AtomicUsize);
    /// # impl TokenSource for Numbered {
    /// #     async fn fetch(&self, _: Option<&Credential>) -> Result<Credential, Error> {
    /// #         let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
    /// #         Ok(Credential::new("Bearer", &format!("token-{n}"))?.expires_in(Duration::from_secs(100)))
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // `Numbered` makes `token-1`, `token-2`, ..., each valid for 100 seconds.
    /// let policy = RefreshPolicy::default().keep_alive(true);
    /// let layer = InfobipAuthLayer::new(Numbered::default()).refresh_policy(policy);
    /// assert_eq!(layer.credential().await?.header(), "Bearer token-1");
    /// // With no request for 250 seconds, the token was renewed three times.
    /// sleep(Duration::from_secs(250)).await;
    /// assert_eq!(layer.credential().await?.header(), "Bearer token-4");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.keep_alive = on;
        self
    }

    /// The delay after the first failed fetch, doubled per further failure up to `max`
    /// (defaults: 1 s and 60 s). Each delay is jittered between half and all of itself.
    /// Until it ends, a request gets the credential if it is still valid, else the failure at
    /// once; [`InfobipAuthLayer::refresh`](crate::InfobipAuthLayer::refresh) does not wait.
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicBool, Ordering};
    /// # use infobip_auth::{Credential, Error, ErrorKind, InfobipAuthLayer, RefreshPolicy, source::TokenSource};
    /// # use std::time::Duration;
    /// # use tokio::time::sleep;
    /// # #[derive(Debug, Default)] struct FailsOnce(AtomicBool);
    /// # impl TokenSource for FailsOnce {
    /// #     async fn fetch(&self, _: Option<&Credential>) -> Result<Credential, Error> {
    /// #         if !self.0.swap(true, Ordering::SeqCst) { return Err(Error::new(ErrorKind::Timeout)); }
    /// #         Ok(Credential::new("Bearer", "token")?)
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // `FailsOnce` times out the first time it is asked, and answers after that.
    /// let policy = RefreshPolicy::default().backoff(Duration::from_secs(10), Duration::from_secs(120));
    /// let layer = InfobipAuthLayer::new(FailsOnce::default()).refresh_policy(policy);
    /// assert!(layer.credential().await.is_err());
    /// // For 5 to 10 seconds the failure is repeated without asking again; then the token comes.
    /// sleep(Duration::from_secs(4)).await;
    /// assert_eq!(layer.credential().await.err().map(|e| e.is_transient()), Some(true));
    /// sleep(Duration::from_secs(7)).await;
    /// assert_eq!(layer.credential().await?.header(), "Bearer token");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max.max(base);
        self
    }

    /// The delay before the next try after `failures` failures in a row.
    fn backoff_delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let doubled = self
            .backoff_base
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)));
        let full = doubled.min(self.backoff_max);
        let jittered = full / 2 + full.mul_f64(rand::rng().random_range(0.0..=0.5));
        jittered.max(retry_after.unwrap_or_default())
    }

    /// The deadlines of a credential last known to be used (or made) at `last_use`.
    fn deadlines(&self, credential: &Credential, last_use: Instant) -> Deadlines {
        let mut deadlines = Deadlines::default();
        if let (Some(expires), Some(lifetime)) = (credential.expiry(), credential.lifetime()) {
            let margin = (lifetime / 10).min(self.max_wait_margin);
            let wait = expires.checked_sub(margin).unwrap_or(expires);
            let jitter = lifetime.mul_f64(rand::rng().random_range(0.0..=0.05));
            let ahead = credential.issued_at() + lifetime.mul_f64(self.ahead);
            deadlines = Deadlines {
                refresh: Some(ahead.checked_sub(jitter).unwrap_or(ahead).min(wait)),
                wait: Some(wait),
                expires: Some(expires),
            };
        }
        if let Some(idle) = credential.idle_limit() {
            let dies = later(last_use, idle.saturating_sub(idle_tick(idle)));
            deadlines.wait = Some(deadlines.wait.map_or(dies, |wait| wait.min(dies)));
            deadlines.expires = Some(deadlines.expires.map_or(dies, |at| at.min(dies)));
        }
        deadlines
    }
}

/// What "never" comes down to where a clock needs a number.
const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `at + delay`, or a far-off instant when that is beyond what the clock can hold: huge
/// durations (a caller's `Duration::MAX`) mean "never", not a panic.
fn later(at: Instant, delay: Duration) -> Instant {
    at.checked_add(delay)
        .or_else(|| at.checked_add(CENTURY))
        .unwrap_or(at)
}

/// How often use of a sliding (idle-timeout) credential is sampled. The credential is deemed
/// dead one tick before its server-side deadline, so sampling can never make us late.
fn idle_tick(idle: Duration) -> Duration {
    idle / 8
}

#[derive(Clone, Copy, Debug, Default)]
struct Deadlines {
    /// Past it, a background refresh starts while the credential is still served.
    refresh: Option<Instant>,
    /// Past it, requests wait for the new credential (the old one serves if the fetch fails).
    wait: Option<Instant>,
    /// Past it, the credential is never sent.
    expires: Option<Instant>,
}

impl Deadlines {
    fn phase(&self, now: Instant) -> Phase {
        let passed = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if passed(self.expires) {
            Phase::Expired
        } else if passed(self.wait) {
            Phase::Wait
        } else if passed(self.refresh) {
            Phase::Ahead
        } else {
            Phase::Fresh
        }
    }

    fn all(&self) -> impl Iterator<Item = Instant> {
        [self.refresh, self.wait, self.expires]
            .into_iter()
            .flatten()
    }

    /// The first deadline after `at`.
    fn next_after(&self, at: Instant) -> Option<Instant> {
        self.all().filter(|deadline| *deadline > at).min()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Fresh,
    Ahead,
    Wait,
    Expired,
}

/// The published state: what requests read without a lock.
#[derive(Default)]
struct Slot {
    /// Identifies the credential (0: none yet). Invalidation names it.
    id: u64,
    credential: Option<Credential>,
    deadlines: Deadlines,
}

/// The result of one fetch, shared by every waiter.
type Flight = SharedFuture<BoxFuture<'static, Result<(Credential, u64), Error>>>;

/// A revocation's result, shared by every caller waiting for it. Its request runs in a task
/// of its own (as a fetch does), so a caller that gives up cancels nothing.
type Revocation = SharedFuture<BoxFuture<'static, Result<(), Error>>>;

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
    /// after ([`REFUSED_AGAIN`]), it backs off instead of renewing at once.
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

struct Failure {
    error: Error,
    retry_at: Instant,
    count: u32,
    /// The task that bumps the generation when the backoff ends, so private copies of a
    /// credential still being served go back to the slow path and try again. It ends with the
    /// failure: a success, the next failure or the cache dropping aborts it.
    _wake: Option<AbortOnDrop>,
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

/// How soon a credential that answered a refusal must be refused too to count as refused for
/// the same reason (a locked account, a session bound to another address): a server that
/// refuses every credential does so at the next request. One that served for longer and was
/// then refused (a session ended at a fixed age) is renewed as any other.
const REFUSED_AGAIN: Duration = Duration::from_secs(60);

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
                    None => Lookup::Failed(failure.error.clone()),
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
            if how_ended(&result) != Some(&Ended::Revoked) || looks == 0 {
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
            if how_ended(&result) == Some(&Ended::Cancelled) && looks > 0 {
                looks -= 1;
                continue;
            }
            return result;
        }
    }

    /// Starts a fetch of the successor of credential `id` unless one is running or a backoff
    /// is in force. Returns whether its renewal is under way: a fetch runs, or a backoff will
    /// end — either way the generation is bumped when it does.
    fn refresh_in_background(&self, id: u64) -> bool {
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

    fn start_fetch(&self, state: &mut State) -> Result<Flight, Error> {
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

/// Records a fetch's result (publishing a credential, or starting a backoff) and clears its
/// flight. A result from a flight that is no longer current is passed on but not recorded.
fn finish(
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

/// Records the result of a fetch that a `revoke()` waits for: its credential becomes the one
/// the revocation ends, never published, and its waiters look again (they wait for the
/// revocation, then get a fresh credential). A failure is recorded as any other, and what it
/// left is revoked all the same.
fn revoke_on_arrival(
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

/// A credential that answered a refusal was refused too: a failed renewal, which backs off. The
/// credential is kept (a refusal only a moment early costs nothing more); its next refusal
/// forgets it, and the renewal waits for the backoff.
fn refused_again(shared: &Arc<Shared>, state: &mut State) {
    state.answers_refusal = None;
    // Its successor, even one renewed ahead of time while idle, answers this refusal.
    state.refused = true;
    let error = crate::future::invalid_credentials();
    back_off(shared, state, &error, Instant::now());
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

/// Records a failed renewal: until its backoff ends (never sooner than the one in force), a
/// lookup that finds no valid credential gets `error` instead of starting a fetch.
fn back_off(shared: &Arc<Shared>, state: &mut State, error: &Error, now: Instant) {
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
    event!(
        warn,
        source = shared.source.name(),
        failures = count,
        ?delay,
        "backing off before the next fetch"
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

#[cfg(feature = "tracing")]
fn trace_outcome(source: &'static str, started: Instant, result: &Result<Credential, Error>) {
    let elapsed = started.elapsed();
    match result {
        Ok(credential) => {
            let lifetime = credential.lifetime();
            event!(info, source, ?elapsed, ?lifetime, "fetched a credential");
        }
        Err(error) => event!(warn, source, ?elapsed, %error, "credential fetch failed"),
    }
}

/// Follows one published credential through its deadlines: bumps the generation as each one
/// passes (so private header copies are re-checked), samples use of a sliding credential to
/// extend it, and with keep-alive starts the refresh itself. Ends with the credential, or when
/// the cache is dropped.
async fn watch(shared: Weak<Shared>, id: u64, published: Instant) {
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

/// The error of a fetch that ended without a credential or an error of its source's.
fn ended(how: Ended) -> Error {
    Error::new(ErrorKind::Transport).with_source(how)
}

/// How the fetch behind `result` ended without a result of its source's, if it did.
fn how_ended<T>(result: &Result<T, Error>) -> Option<&Ended> {
    let error = result.as_ref().err()?;
    std::error::Error::source(error)?.downcast_ref::<Ended>()
}

/// Whether a waiter for `result` looks again: its fetch was cut off half-way, or its credential
/// revoked as it arrived.
fn looks_again<T>(result: &Result<T, Error>) -> bool {
    matches!(how_ended(result), Some(Ended::Cancelled | Ended::Revoked))
}

/// How a fetch ended without a result of its source's.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// Its task was dropped half-way: its runtime shut down.
    Cancelled,
    /// The token source panicked.
    Panicked,
    /// A `revoke()` ended the credential as it arrived.
    Revoked,
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cancelled => "the token request ended without a result (its runtime shut down)",
            Self::Panicked => "the token source panicked",
            Self::Revoked => "the credential was revoked as it arrived",
        })
    }
}

impl std::error::Error for Ended {}

/// How many times a wait, `refresh()` or `revoke()` looks again after what it waited for ended
/// without a result of its own (cut off by its runtime's end, or revoked as it arrived): each
/// look starts work that could end so too, so the number is bounded.
const LOOKS: u8 = 3;

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
struct Fallback {
    credential: Credential,
    id: u64,
    expires: Option<Instant>,
}

impl CredentialWait {
    fn new(cache: &CredentialCache, flight: Flight, fallback: Option<Fallback>) -> Self {
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
            if how_ended(&result) == Some(&Ended::Revoked) {
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

mod registry;
#[cfg(test)]
mod tests;

pub(crate) use registry::CacheKey;
