//! When credentials are renewed: `RefreshPolicy`, a credential's `Deadlines` and the `Phase`
//! they put it in. It sets the numbers the module's invariants run on: where the refresh-ahead
//! window opens and where requests start to wait (about ¾ of a lifetime; its last tenth, at
//! most a minute), and how backoffs grow (exponential, jittered, at least `Retry-After`). A
//! caller's huge durations mean "never", not a panic.

use std::time::Duration;

use rand::Rng as _;
use tokio::time::Instant;

use crate::Credential;

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
    pub(super) keep_alive: bool,
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
    pub(super) fn backoff_delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let doubled = self
            .backoff_base
            .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)));
        let full = doubled.min(self.backoff_max);
        let jittered = full / 2 + full.mul_f64(rand::rng().random_range(0.0..=0.5));
        jittered.max(retry_after.unwrap_or_default())
    }

    /// The deadlines of a credential last known to be used (or made) at `last_use`.
    pub(super) fn deadlines(&self, credential: &Credential, last_use: Instant) -> Deadlines {
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
pub(super) const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `at + delay`, or a far-off instant when that is beyond what the clock can hold: huge
/// durations (a caller's `Duration::MAX`) mean "never", not a panic.
pub(super) fn later(at: Instant, delay: Duration) -> Instant {
    at.checked_add(delay)
        .or_else(|| at.checked_add(CENTURY))
        .unwrap_or(at)
}

/// How often use of a sliding (idle-timeout) credential is sampled. The credential is deemed
/// dead one tick before its server-side deadline, so sampling can never make us late.
pub(super) fn idle_tick(idle: Duration) -> Duration {
    idle / 8
}

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Deadlines {
    /// Past it, a background refresh starts while the credential is still served.
    pub(super) refresh: Option<Instant>,
    /// Past it, requests wait for the new credential (the old one serves if the fetch fails).
    pub(super) wait: Option<Instant>,
    /// Past it, the credential is never sent.
    pub(super) expires: Option<Instant>,
}

impl Deadlines {
    pub(super) fn phase(&self, now: Instant) -> Phase {
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

    pub(super) fn all(&self) -> impl Iterator<Item = Instant> {
        [self.refresh, self.wait, self.expires]
            .into_iter()
            .flatten()
    }

    /// The first deadline after `at`.
    pub(super) fn next_after(&self, at: Instant) -> Option<Instant> {
        self.all().filter(|deadline| *deadline > at).min()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Fresh,
    Ahead,
    Wait,
    Expired,
}
