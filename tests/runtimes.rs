//! The layer used where tokio is missing or incomplete: outside any runtime, on a runtime built
//! without its time driver, and on one that ends before a background save runs. Each must end
//! in a clear typed error (or a recorded one), never a misleading one, a hang or a lost save.

mod support;

use std::convert::Infallible;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use http::{Response, StatusCode};
use http_body_util::Full;
use infobip_auth::mock::{MockConfig, MockServer, SessionEvent};
use infobip_auth::source::{AuthCodeFlow, MemoryStore, Session, StoredToken, TokenSource as _};
use infobip_auth::source::{TokenStore, Transport};
use infobip_auth::{Account, BoxError, ConfigError, Error, ErrorKind, InfobipAuthLayer};
use tower::{Layer as _, Service as _};

use support::{client, ours, reports, transport};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-password";

/// The embedded server on a runtime of its own, which serves it while the test's runtimes come
/// and go (or none runs).
fn server_runtime() -> Result<(tokio::runtime::Runtime, MockServer), BoxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let config = MockConfig::new().user(USER, PASSWORD, "sms:manage");
    let server = runtime.block_on(MockServer::start_with(config))?;
    Ok((runtime, server))
}

fn session_layer(server: &MockServer) -> Result<InfobipAuthLayer, BoxError> {
    let session = Session::builder(server.base_url(), USER, PASSWORD)
        .transport(transport(&client()))
        .build()?;
    Ok(InfobipAuthLayer::new(session))
}

/// Polls `future` once, outside any runtime.
fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    pin!(future).poll(&mut Context::from_waker(Waker::noop()))
}

/// Whether `error` says that tokio (or its timers) is missing.
fn needs_runtime(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Config(ConfigError::Invalid {
            what: "runtime",
            ..
        })
    )
}

/// `revoke()` outside a runtime runs as its caller polls it, and ending an IBSSO session
/// needs tokio (the token request's timeout, the client's sockets). It used to report that
/// the token source panicked; it says a runtime is needed, and keeps the session, which a
/// `revoke()` on a runtime then ends.
#[test]
fn a_session_revoked_outside_a_runtime_asks_for_one_and_is_kept() -> Result<(), BoxError> {
    let (_serving, server) = server_runtime()?;
    let layer = session_layer(&server)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(layer.credential())?;

    let Poll::Ready(revoked) = poll_once(layer.revoke()) else {
        return Err("a revocation outside a runtime waited".into());
    };
    let error = revoked.err().ok_or("ended without a runtime")?;
    assert!(needs_runtime(&error), "{error:?}");
    assert!(error.to_string().contains("tokio runtime"), "{error}");

    runtime.block_on(layer.revoke())?;
    let events = server.counters().session_events;
    assert_eq!(
        events,
        [
            SessionEvent::Created { session: 1 },
            SessionEvent::Destroyed { session: 1 }
        ]
    );
    Ok(())
}

/// A runtime built without its time driver cannot time a token request out. The fetch used to
/// panic inside (reported as "the token source panicked"); it is a typed error naming the
/// missing timers, repeated at once during the backoff, and nothing waits for a timer that
/// never fires.
#[test]
fn a_runtime_without_timers_gets_a_typed_error() -> Result<(), BoxError> {
    let (_serving, server) = server_runtime()?;
    let layer = session_layer(&server)?;
    let mut service = layer.layer(client());
    let timeless = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;

    let error = timeless
        .block_on(layer.credential())
        .err()
        .ok_or("fetched without timers")?;
    assert!(needs_runtime(&error), "{error:?}");
    assert!(error.to_string().contains("enable_time"), "{error}");

    let sent = timeless.block_on(service.call(reports(&server)));
    let error = sent.err().ok_or("sent without timers")?;
    assert!(needs_runtime(ours(&error)?), "{error:?}");
    assert_eq!(server.counters().session_creates, 0);
    Ok(())
}

/// An Exchange flow whose token requests go to `transport`.
fn exchange_flow(transport: Transport) -> Result<AuthCodeFlow, BoxError> {
    Ok(
        AuthCodeFlow::builder("https://oneapi.infobip.com", "client-id")
            .client_secret("client-secret")
            .redirect_uri("https://www.my-app.com/callback")
            .scope("api_read")
            .transport(transport)
            .build()?,
    )
}

/// A refused Exchange refresh saves the dead token in a task of its own; a runtime that ends
/// before that task runs used to lose the save silently (the store still held the token as
/// live, and `store_error` said nothing). The lost save is reported there.
#[test]
fn a_save_cut_off_by_its_runtimes_end_is_reported() -> Result<(), BoxError> {
    let refusing = Transport::new(tower::service_fn(|_: http::Request<Full<bytes::Bytes>>| {
        let refused = Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .body(Full::new(bytes::Bytes::from_static(
                br#"{"error":"invalid_grant"}"#,
            )));
        async move { refused }
    }));
    let flow = exchange_flow(refusing)?;
    let store = MemoryStore::new();
    let expires = SystemTime::now() + Duration::from_secs(50);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let source = runtime.block_on(async {
        store
            .save(&StoredToken::new(
                "IBSSO",
                "3d7908aa",
                expires,
                Account::default(),
            ))
            .await?;
        Ok::<_, BoxError>(flow.resume(store.clone()).await?)
    })?;

    let current = source.credential();
    let refused = runtime.block_on(source.fetch(Some(&current)));
    assert!(
        matches!(
            refused.as_ref().map_err(Error::kind),
            Err(ErrorKind::ReauthorizationRequired)
        ),
        "{refused:?}"
    );
    // The save's task has not run: the runtime ends here.
    drop(runtime);

    let error = source
        .store_error()
        .ok_or("the lost save went unreported")?;
    assert!(matches!(error.kind(), ErrorKind::Store), "{error:?}");
    Ok(())
}

/// A store that holds one token and never finishes a save.
#[derive(Debug)]
struct StuckStore(StoredToken);

impl TokenStore for StuckStore {
    async fn save(&self, _: &StoredToken) -> Result<(), BoxError> {
        std::future::pending().await
    }

    async fn load(&self) -> Result<Option<StoredToken>, BoxError> {
        Ok(Some(self.0.clone()))
    }
}

/// A refresh whose save is cut off half-way by its runtime's end serves the new token from
/// memory, as a failed save does, and reports the store behind as a failed save does. The next
/// fetch hands out the new token without saving it, so the store was left behind unreported.
#[test]
fn a_refresh_whose_save_its_runtime_cut_off_is_reported() -> Result<(), BoxError> {
    let answering = Transport::new(tower::service_fn(|_: http::Request<Full<bytes::Bytes>>| {
        let token = br#"{"token":"5e0c11d4","tokenType":"IBSSO","expires_in":60}"#;
        async move { Ok::<_, Infallible>(Response::new(Full::new(bytes::Bytes::from_static(token)))) }
    }));
    let flow = exchange_flow(answering)?;
    let expires = SystemTime::now() + Duration::from_secs(50);
    let stored = StoredToken::new("IBSSO", "3d7908aa", expires, Account::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let source = runtime.block_on(flow.resume(StuckStore(stored)))?;

    let refreshing = source.clone();
    let current = source.credential();
    runtime.spawn(async move { refreshing.fetch(Some(&current)).await });
    runtime.block_on(async {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    });
    assert_eq!(
        source.credential().expose_token(),
        "5e0c11d4",
        "not refreshed yet"
    );
    // The save waits: the runtime ends here.
    drop(runtime);

    let error = source
        .store_error()
        .ok_or("the lost save went unreported")?;
    assert!(matches!(error.kind(), ErrorKind::Store), "{error:?}");
    Ok(())
}
