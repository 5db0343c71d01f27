//! Fixtures shared by the unit tests.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
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
    ends_previous: AtomicBool,
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

    /// Its fetches end the previous credential, as a session's do.
    pub(crate) fn ending_previous(self) -> Self {
        self.inner.ends_previous.store(true, Ordering::SeqCst);
        self
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

use crate::sync::lock;

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

    fn ends_previous(&self) -> bool {
        self.inner.ends_previous.load(Ordering::SeqCst)
    }
}

/// One request a [`FakeEndpoint`] received.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) method: http::Method,
    pub(crate) path: String,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: bytes::Bytes,
}

impl Seen {
    /// A header as text, empty when absent.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// The body as form fields, in order.
    pub(crate) fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_bytes(&self.body).unwrap_or_default()
    }
}

/// What a [`FakeEndpoint`] answers: a response, or a transport failure.
pub(crate) type FakeReply =
    Result<http::Response<http_body_util::Full<bytes::Bytes>>, crate::BoxError>;

type Handler = dyn Fn(&Seen) -> FakeReply + Send + Sync;

/// A stand-in for Infobip over `tower::service_fn`: records every request and answers with a
/// handler. Usable as a source's [`Transport`](crate::source::Transport) and as the layer's
/// inner service at once.
#[derive(Clone)]
pub(crate) struct FakeEndpoint {
    seen: Arc<Mutex<Vec<Seen>>>,
    handler: Arc<Handler>,
    /// Requests to these paths are answered after this long (on tokio's clock).
    delays: Arc<Mutex<Vec<(String, Duration)>>>,
}

impl FakeEndpoint {
    pub(crate) fn new(handler: impl Fn(&Seen) -> FakeReply + Send + Sync + 'static) -> Self {
        Self {
            seen: Arc::default(),
            handler: Arc::new(handler),
            delays: Arc::default(),
        }
    }

    /// Answers requests to `path` after `delay` (on tokio's clock).
    pub(crate) fn slow(&self, path: &str, delay: Duration) {
        lock(&self.delays).push((path.to_owned(), delay));
    }

    /// Every request received, in order.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    /// `(method, path)` of every request received, in order.
    pub(crate) fn calls(&self) -> Vec<(String, String)> {
        lock(&self.seen)
            .iter()
            .map(|s| (s.method.to_string(), s.path.clone()))
            .collect()
    }

    /// Requests whose method and path are these.
    pub(crate) fn count(&self, method: &str, path: &str) -> usize {
        self.calls()
            .iter()
            .filter(|(m, p)| m == method && p == path)
            .count()
    }

    /// The fake as a `tower` service over `Full<Bytes>` bodies.
    pub(crate) fn service(
        &self,
    ) -> tower::util::BoxCloneSyncService<
        http::Request<http_body_util::Full<bytes::Bytes>>,
        http::Response<http_body_util::Full<bytes::Bytes>>,
        crate::BoxError,
    > {
        let fake = self.clone();
        tower::util::BoxCloneSyncService::new(tower::service_fn(
            move |request: http::Request<http_body_util::Full<bytes::Bytes>>| {
                let fake = fake.clone();
                async move {
                    use http_body_util::BodyExt as _;
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await?.to_bytes();
                    let seen = Seen {
                        method: parts.method,
                        path: parts.uri.path().to_owned(),
                        headers: parts.headers,
                        body,
                    };
                    lock(&fake.seen).push(seen.clone());
                    let delay = lock(&fake.delays)
                        .iter()
                        .find(|(path, _)| *path == seen.path)
                        .map(|(_, delay)| *delay);
                    if let Some(delay) = delay {
                        tokio::time::sleep(delay).await;
                    }
                    (fake.handler)(&seen)
                }
            },
        ))
    }

    /// The fake as a token-endpoint transport.
    pub(crate) fn transport(&self) -> crate::source::Transport {
        crate::source::Transport::new(self.service())
    }
}

/// A response with `status` and `body`.
pub(crate) fn reply(status: u16, body: impl Into<bytes::Bytes>) -> FakeReply {
    let mut response = http::Response::new(http_body_util::Full::new(body.into()));
    *response.status_mut() = http::StatusCode::from_u16(status)?;
    Ok(response)
}

/// Infobip's legacy error body.
pub(crate) fn infobip_error(status: u16, message_id: &str, text: &str) -> FakeReply {
    let body = serde_json::json!({
        "requestError": {"serviceException": {"messageId": message_id, "text": text}}
    });
    reply(status, body.to_string())
}

/// Captures, as text, every event and span field that this thread emits while it lives: to
/// check that no secret reaches tracing output.
///
/// One subscriber, set once as the global default, writes to the capturing thread's buffer. A
/// scoped subscriber per test would race: `tracing` caches whether a call site is wanted, and a
/// site first reached on another thread just as a test installs its subscriber may stay cached
/// as unwanted, so that test misses its events. A global subscriber that wants everything
/// leaves nothing to miss.
#[cfg(feature = "tracing")]
pub(crate) struct CaptureTracing {
    /// Tied to the capturing thread.
    _thread: std::marker::PhantomData<*const ()>,
}

#[cfg(feature = "tracing")]
thread_local! {
    static CAPTURED: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

#[cfg(feature = "tracing")]
impl CaptureTracing {
    /// Starts capturing this thread's events (run tasks on a current-thread runtime).
    pub(crate) fn start() -> Self {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            tracing::subscriber::set_global_default(ToThreadCapture)
                .expect("no other global subscriber in the crate's tests");
        });
        CAPTURED.with(|captured| *captured.borrow_mut() = Some(String::new()));
        Self {
            _thread: std::marker::PhantomData,
        }
    }

    /// Everything recorded so far.
    pub(crate) fn text(&self) -> String {
        CAPTURED.with(|captured| captured.borrow().clone().unwrap_or_default())
    }
}

#[cfg(feature = "tracing")]
impl Drop for CaptureTracing {
    fn drop(&mut self) {
        CAPTURED.with(|captured| *captured.borrow_mut() = None);
    }
}

/// Appends to the capture of the current thread, if it has one.
#[cfg(feature = "tracing")]
fn capture(record: impl FnOnce(&mut String)) {
    CAPTURED.with(|captured| {
        if let Ok(mut captured) = captured.try_borrow_mut()
            && let Some(text) = captured.as_mut()
        {
            record(text);
        }
    });
}

#[cfg(feature = "tracing")]
struct TextVisitor<'a>(&'a mut String);

#[cfg(feature = "tracing")]
impl tracing::field::Visit for TextVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

#[cfg(feature = "tracing")]
struct ToThreadCapture;

#[cfg(feature = "tracing")]
impl tracing::Subscriber for ToThreadCapture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        capture(|text| span.record(&mut TextVisitor(text)));
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        capture(|text| values.record(&mut TextVisitor(text)));
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        capture(|text| {
            event.record(&mut TextVisitor(text));
            text.push('\n');
        });
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
