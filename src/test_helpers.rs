//! Fixtures shared by the unit tests.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::source::TokenSource;
use crate::{Credential, Error, ErrorKind};

/// A token source that counts its fetches and can be slowed down or made to fail.
#[derive(Clone, Debug, Default)]
pub(crate) struct TestSource {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    fetches: AtomicU32,
    lifetime: Mutex<Option<Duration>>,
    idle: Mutex<Option<Duration>>,
    delay: Mutex<Duration>,
    failures: Mutex<Vec<Error>>,
    previous: Mutex<Vec<Option<String>>>,
}

impl TestSource {
    /// Tokens `token-1`, `token-2`, … living `lifetime`.
    pub(crate) fn expiring(lifetime: Duration) -> Self {
        let source = Self::default();
        *lock(&source.inner.lifetime) = Some(lifetime);
        source
    }

    /// Tokens that die after `idle` without use.
    pub(crate) fn sliding(idle: Duration) -> Self {
        let source = Self::default();
        *lock(&source.inner.idle) = Some(idle);
        source
    }

    pub(crate) fn fetches(&self) -> u32 {
        self.inner.fetches.load(Ordering::SeqCst)
    }

    /// Each fetch takes `delay` (on tokio's clock).
    pub(crate) fn delay(&self, delay: Duration) {
        *lock(&self.inner.delay) = delay;
    }

    /// The next fetches fail with these errors, in order.
    pub(crate) fn fail_next(&self, errors: impl IntoIterator<Item = Error>) {
        lock(&self.inner.failures).extend(errors);
    }

    /// The token each fetch was told it replaces.
    pub(crate) fn previous_tokens(&self) -> Vec<Option<String>> {
        lock(&self.inner.previous).clone()
    }
}

pub(crate) fn transient() -> Error {
    Error::new(ErrorKind::Timeout)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl TokenSource for TestSource {
    async fn fetch(&self, previous: Option<&Credential>) -> Result<Credential, Error> {
        let n = self.inner.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        lock(&self.inner.previous).push(previous.map(|c| c.expose_token().to_owned()));
        let delay = *lock(&self.inner.delay);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let failure = {
            let mut failures = lock(&self.inner.failures);
            (!failures.is_empty()).then(|| failures.remove(0))
        };
        if let Some(error) = failure {
            return Err(error);
        }
        let mut credential = Credential::new("Bearer", &format!("token-{n}"))?;
        if let Some(lifetime) = *lock(&self.inner.lifetime) {
            credential = credential.expires_in(lifetime);
        }
        if let Some(idle) = *lock(&self.inner.idle) {
            credential = credential.idle_timeout(idle);
        }
        Ok(credential)
    }
}
