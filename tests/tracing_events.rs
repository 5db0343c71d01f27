//! With the `tracing` feature, the cache reports each thing the feature promises — a token
//! fetch (source, outcome, duration), a refresh ahead, an invalidation after a `401`, a
//! backoff (with the failure's error) — and never the token. (The sources' own tests check
//! their secrets stay out.)
#![cfg(feature = "tracing")]

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use infobip_auth::source::TokenSource;
use infobip_auth::{BoxError, Credential, Error, ErrorKind, InfobipAuthLayer};
use tower::{Layer as _, Service as _, ServiceExt as _, service_fn};

const URL: &str = "https://xyz12.api.infobip.com/sms/2/text/advanced";

/// Tokens `secret-token-1`, … living a minute; the next fetch fails when told to.
#[derive(Clone, Debug, Default)]
struct Tokens {
    fetches: Arc<AtomicU32>,
    fail_next: Arc<AtomicBool>,
}

impl TokenSource for Tokens {
    async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Timeout));
        }
        let token = format!("secret-token-{n}");
        Ok(Credential::new("Bearer", &token)?.expires_in(Duration::from_secs(60)))
    }

    fn name(&self) -> &'static str {
        "counted_tokens"
    }
}

/// Every event on this thread, one line each: its fields as `name=value`.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = self.0.lock().unwrap_or_else(|p| p.into_inner());
        event.record(&mut Fields(&mut text));
        text.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Lets spawned tasks run without moving the paused clock.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn fetch_refresh_ahead_invalidation_and_backoff_are_traced() -> Result<(), BoxError> {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let source = Tokens::default();
    let layer = InfobipAuthLayer::new(source.clone());
    // Refuses token 2 only.
    let inner = service_fn(|request: Request<Full<Bytes>>| async move {
        let refused = request
            .headers()
            .get(AUTHORIZATION)
            .is_some_and(|value| value == "Bearer secret-token-2");
        let mut response = Response::new(());
        if refused {
            *response.status_mut() = StatusCode::UNAUTHORIZED;
        }
        Ok::<_, Infallible>(response)
    });
    let mut service = layer.layer(inner);
    let request = || Request::post(URL).body(Full::new(Bytes::from_static(b"{}")));
    let lines = |needle: &str| -> Vec<String> {
        let text = capture.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        text.lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect()
    };

    // A fetch: token 1.
    service.ready().await?.call(request()?).await?;
    // Into the refresh-ahead window (from 42-45 s; requests wait from 54 s): token 2 is
    // fetched in the background.
    tokio::time::advance(Duration::from_secs(50)).await;
    service.ready().await?.call(request()?).await?;
    settle().await;
    // Token 2 is refused: invalidated, token 3 fetched and the request replayed.
    let response = service.ready().await?.call(request()?).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(source.fetches.load(Ordering::SeqCst), 3);
    // A failed fetch backs off.
    source.fail_next.store(true, Ordering::SeqCst);
    assert!(layer.refresh().await.is_err());

    for (what, message) in [
        ("a fetch starting", "fetching a credential"),
        ("a fetch's outcome", "fetched a credential"),
        ("a refresh ahead", "refreshing ahead of expiry"),
        (
            "an invalidation after a 401",
            "credential refused (401): invalidated",
        ),
        ("a failed fetch", "credential fetch failed"),
        ("a backoff", "backing off before the next fetch"),
    ] {
        let found = lines(message);
        assert!(!found.is_empty(), "no event for {what}");
        assert!(
            found
                .iter()
                .all(|line| line.contains("source=\"counted_tokens\"")),
            "{what} without its source: {found:?}"
        );
    }
    let outcomes = [
        lines("fetched a credential"),
        lines("credential fetch failed"),
    ]
    .concat();
    assert!(
        outcomes.iter().all(|line| line.contains("elapsed=")),
        "an outcome without its duration: {outcomes:?}"
    );
    // The backoff's event is the failure's one at `warn`: it carries the error and the delay.
    let backoffs = lines("backing off before the next fetch");
    assert!(
        backoffs
            .iter()
            .all(|line| line.contains("error=") && line.contains("delay=")),
        "a backoff without its error or delay: {backoffs:?}"
    );
    assert_eq!(lines("fetched a credential").len(), 3, "one per token");
    let all = lines("");
    assert!(
        all.iter().all(|line| !line.contains("secret-token")),
        "a token was traced: {all:?}"
    );
    Ok(())
}
