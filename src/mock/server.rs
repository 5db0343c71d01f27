//! [`MockServer`]: the listener on `127.0.0.1`, its connections, and the handle tests hold.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::config::MockConfig;
use super::counters::{Counters, ReceivedRequest};
use super::faults::Fault;
use super::handlers;
use super::state::State;

/// How long [`MockServer::shutdown`] lets open requests finish.
const GRACE: Duration = Duration::from_secs(5);

/// An Infobip-compatible server running on `127.0.0.1` in the caller's tokio runtime, serving
/// HTTP/1.1 and HTTP/2 without TLS (h2c). Dropping it stops the server; [`MockServer::shutdown`]
/// also waits for open requests to finish.
///
/// See the [module docs](super) for what it serves.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, StatusCode};
/// use http_body_util::Full;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use infobip_auth::InfobipAuthLayer;
/// use infobip_auth::mock::{MockServer, DEMO_API_KEY};
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// let server = MockServer::start().await?;
/// let auth = InfobipAuthLayer::api_key(DEMO_API_KEY)?.allow_origin(server.base_url())?;
/// let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
/// let service = ServiceBuilder::new().layer(auth).service(client);
/// let inbox = || Request::get(server.url("/sms/1/inbox/reports")).body(Full::default());
/// assert_eq!(service.clone().oneshot(inbox()?).await?.status(), StatusCode::OK);
///
/// // What Infobip offers no sandbox for: revoking the key behind the client's back.
/// server.revoke_api_key(DEMO_API_KEY);
/// assert_eq!(service.oneshot(inbox()?).await?.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(server.counters().unauthorized, 1);
/// # Ok(()) }
/// ```
pub struct MockServer {
    base_url: String,
    state: Arc<State>,
    stop: watch::Sender<()>,
    task: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Starts a server with [`MockConfig::default`], which is [`MockConfig::demo`]: the
    /// `DEMO_*` credentials work.
    ///
    /// # Errors
    /// When no port can be bound on `127.0.0.1`, or when called outside a tokio runtime.
    ///
    /// ```
    /// use infobip_auth::mock::MockServer;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = MockServer::start().await?;
    /// assert_eq!(server.url("/sms/2/text/advanced"), format!("{}/sms/2/text/advanced", server.base_url()));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start() -> io::Result<Self> {
        Self::start_with(MockConfig::default()).await
    }

    /// Starts a server that knows what `config` says.
    ///
    /// # Errors
    /// `InvalidInput` when the configuration cannot work (an Exchange app approved by a user
    /// that is not configured, an operation with a template that cannot be routed or an unknown
    /// scheme); otherwise when no port can be bound, or when called outside a tokio runtime.
    ///
    /// ```
    /// use infobip_auth::mock::{MockConfig, MockServer};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = MockServer::start_with(MockConfig::new().api_key("k", "sms:manage")).await?;
    /// assert!(server.base_url().starts_with("http://127.0.0.1:"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start_with(config: MockConfig) -> io::Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(
                "MockServer must be started inside a tokio runtime",
            ));
        }
        let state = Arc::new(State::new(config)?);
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = watch::channel(());
        let task = tokio::spawn(serve(listener, Arc::clone(&state), stopped));
        Ok(Self {
            base_url,
            state,
            stop,
            task: Some(task),
        })
    }

    /// The server's address, `http://127.0.0.1:PORT`, without a trailing slash.
    ///
    /// ```
    /// # use infobip_auth::mock::MockServer;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = MockServer::start().await?;
    /// assert!(!server.base_url().ends_with('/'));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The URL of `path` on this server (`path` starts with `/`).
    ///
    /// ```
    /// # use infobip_auth::mock::MockServer;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = MockServer::start().await?;
    /// assert_eq!(server.url("/auth/1/session"), format!("{}/auth/1/session", server.base_url()));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Stops accepting connections and waits (up to five seconds) for open requests to be
    /// answered.
    ///
    /// ```
    /// use infobip_auth::mock::MockServer;
    /// use http::StatusCode;
    /// # async fn get(url: String, authorization: &str) -> Result<StatusCode, infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let request = http::Request::get(url).header("authorization", authorization).body(Default::default())?;
    /// #     Ok(client.request(request).await?.status())
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // `get(url, authorization)`: the status of a GET sent with that `Authorization` header.
    /// let server = MockServer::start().await?;
    /// let inbox = server.url("/sms/1/inbox/reports");
    /// server.shutdown().await;
    /// // Nothing answers any more.
    /// assert!(get(inbox, "App key").await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(mut self) {
        self.stop.send_replace(());
        if let Some(task) = self.task.take() {
            // The task only ends by itself; an error means it panicked or was cancelled, and
            // either way the server is gone.
            let _ = task.await;
        }
    }

    /// What the server has counted so far.
    ///
    /// ```
    /// # use infobip_auth::mock::MockServer;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = MockServer::start().await?;
    /// assert_eq!(server.counters().token_requests(), 0);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn counters(&self) -> Counters {
        self.state.counters()
    }

    /// Queues a fault for a coming token-endpoint request; faults are used one per request, in
    /// the order they were queued.
    ///
    /// ```
    /// use infobip_auth::mock::{Fault, MockServer, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::{Session, TokenSource};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start().await?;
    /// # let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    /// #     .transport(transport())
    /// #     .build()?;
    /// // `session` logs the demo user in.
    /// server.inject(Fault::CloseConnection);
    /// let err = session.fetch(None).await.err().ok_or("logged in")?;
    /// assert!(err.is_transient(), "{err}");
    /// // One fault per request: the next login works.
    /// assert!(session.fetch(None).await.is_ok());
    /// # Ok(()) }
    /// ```
    pub fn inject(&self, fault: Fault) {
        self.state.inject(fault);
    }

    /// Queues a fault for a coming `DELETE /auth/1/session`, apart from the token endpoints'
    /// faults (a renewal's `DELETE` and its create each take their own); faults are used one
    /// per `DELETE`, in the order they were queued. A faulted `DELETE` answers the fault
    /// instead and leaves the session alive; a [`Fault::Delay`] ends it after the delay,
    /// [`Fault::AnswerLost`] ends it and then drops the connection, and [`Fault::Truncated`]
    /// ends it and then cuts the `200`. Throttled deletes are
    /// answered `429` before any fault is used.
    ///
    /// ```
    /// use http::StatusCode;
    /// use infobip_auth::InfobipAuthLayer;
    /// use infobip_auth::mock::{Fault, MockServer, SessionEvent, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::Session;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start().await?;
    /// # let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    /// #     .transport(transport())
    /// #     .build()?;
    /// // `session` logs the demo user in.
    /// let layer = InfobipAuthLayer::new(session);
    /// layer.credential().await?;
    /// server.inject_delete(Fault::Status { status: StatusCode::SERVICE_UNAVAILABLE, retry_after: None });
    /// assert!(layer.revoke().await.is_err());
    /// assert_eq!(server.counters().session_events, [SessionEvent::Created { session: 1 }]);
    /// // The layer kept the session it could not end; the next revoke ends it.
    /// layer.revoke().await?;
    /// assert_eq!(server.counters().session_events.last(), Some(&SessionEvent::Destroyed { session: 1 }));
    /// # Ok(()) }
    /// ```
    pub fn inject_delete(&self, fault: Fault) {
        self.state.inject_delete(fault);
    }

    /// Revokes an API key: from now on it is answered `401`.
    ///
    /// ```
    /// use infobip_auth::mock::{MockServer, DEMO_API_KEY};
    /// use http::StatusCode;
    /// # async fn get(url: String, authorization: &str) -> Result<StatusCode, infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let request = http::Request::get(url).header("authorization", authorization).body(Default::default())?;
    /// #     Ok(client.request(request).await?.status())
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // `get(url, authorization)`: the status of a GET sent with that `Authorization` header.
    /// let server = MockServer::start().await?;
    /// let key = format!("App {DEMO_API_KEY}");
    /// assert_eq!(get(server.url("/sms/1/inbox/reports"), &key).await?, StatusCode::OK);
    /// server.revoke_api_key(DEMO_API_KEY);
    /// assert_eq!(get(server.url("/sms/1/inbox/reports"), &key).await?, StatusCode::UNAUTHORIZED);
    /// # Ok(()) }
    /// ```
    pub fn revoke_api_key(&self, key: &str) {
        self.state.revoke_api_key(key);
    }

    /// Revokes a session token, an OAuth access token or an Exchange token.
    ///
    /// ```
    /// use infobip_auth::mock::{MockServer, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::{Session, TokenSource};
    /// use http::StatusCode;
    /// # async fn get(url: String, authorization: &str) -> Result<StatusCode, infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let request = http::Request::get(url).header("authorization", authorization).body(Default::default())?;
    /// #     Ok(client.request(request).await?.status())
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// // `get(url, authorization)`: the status of a GET sent with that `Authorization` header.
    /// let server = MockServer::start().await?;
    /// # let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    /// #     .transport(transport())
    /// #     .build()?;
    /// // `session` logs the demo user in.
    /// let credential = session.fetch(None).await?;
    /// server.revoke_token(credential.expose_token());
    /// let refused = get(server.url("/sms/1/inbox/reports"), credential.header().to_str()?).await?;
    /// assert_eq!(refused, StatusCode::UNAUTHORIZED);
    /// # Ok(()) }
    /// ```
    pub fn revoke_token(&self, token: &str) {
        self.state.revoke_token(token);
    }

    /// Revokes every session, OAuth access token and Exchange token (API keys and users stay).
    ///
    /// ```
    /// use infobip_auth::mock::{MockServer, DEMO_API_KEY, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::{Session, TokenSource};
    /// use http::StatusCode;
    /// # async fn get(url: String, authorization: &str) -> Result<StatusCode, infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let request = http::Request::get(url).header("authorization", authorization).body(Default::default())?;
    /// #     Ok(client.request(request).await?.status())
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// // `get(url, authorization)`: the status of a GET sent with that `Authorization` header.
    /// let server = MockServer::start().await?;
    /// # let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    /// #     .transport(transport())
    /// #     .build()?;
    /// // `session` logs the demo user in.
    /// let credential = session.fetch(None).await?;
    /// server.revoke_all_tokens();
    /// let inbox = || server.url("/sms/1/inbox/reports");
    /// assert_eq!(get(inbox(), credential.header().to_str()?).await?, StatusCode::UNAUTHORIZED);
    /// // API keys stay valid.
    /// assert_eq!(get(inbox(), &format!("App {DEMO_API_KEY}")).await?, StatusCode::OK);
    /// # Ok(()) }
    /// ```
    pub fn revoke_all_tokens(&self) {
        self.state.revoke_all_tokens();
    }

    /// Makes every session, OAuth access token, Exchange token and authorization code expire
    /// now (API keys and users stay valid).
    ///
    /// ```
    /// use infobip_auth::mock::{MockServer, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::{Session, TokenSource};
    /// use http::StatusCode;
    /// # async fn get(url: String, authorization: &str) -> Result<StatusCode, infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let request = http::Request::get(url).header("authorization", authorization).body(Default::default())?;
    /// #     Ok(client.request(request).await?.status())
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// // `get(url, authorization)`: the status of a GET sent with that `Authorization` header.
    /// let server = MockServer::start().await?;
    /// # let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    /// #     .transport(transport())
    /// #     .build()?;
    /// // `session` logs the demo user in.
    /// let credential = session.fetch(None).await?;
    /// server.expire_all();
    /// let refused = get(server.url("/sms/1/inbox/reports"), credential.header().to_str()?).await?;
    /// assert_eq!(refused, StatusCode::UNAUTHORIZED);
    /// # Ok(()) }
    /// ```
    pub fn expire_all(&self) {
        self.state.expire_all();
    }

    /// Delays every token-endpoint answer by `latency` (zero by default), to let concurrent
    /// refreshes overlap.
    ///
    /// ```
    /// use std::time::Duration;
    /// use infobip_auth::mock::{MockServer, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::{Session, TokenSource};
    /// use tokio::time::Instant;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start().await?;
    /// # let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    /// #     .transport(transport())
    /// #     .build()?;
    /// // `session` logs the demo user in; the clock is tokio's paused one.
    /// server.set_latency(Duration::from_secs(2));
    /// let start = Instant::now();
    /// session.fetch(None).await?;
    /// assert!(start.elapsed() >= Duration::from_secs(2));
    /// # Ok(()) }
    /// ```
    pub fn set_latency(&self, latency: Duration) {
        self.state.set_latency(latency);
    }

    /// Delays every `DELETE /auth/1/session` answer by `latency` (zero by default; apart from
    /// [`set_latency`](Self::set_latency), which slows the token endpoints), so that a
    /// renewal or a `revoke()` can be caught while its `DELETE` is under way.
    ///
    /// ```
    /// use std::time::Duration;
    /// use infobip_auth::InfobipAuthLayer;
    /// use infobip_auth::mock::{MockServer, SessionEvent, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::Session;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start().await?;
    /// # let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    /// #     .transport(transport())
    /// #     .build()?;
    /// // `session` logs the demo user in; the clock is tokio's paused one.
    /// let layer = InfobipAuthLayer::new(session);
    /// layer.credential().await?;
    /// server.set_delete_latency(Duration::from_secs(2));
    /// // A revoke given up after one second: its DELETE goes on, and ends the session.
    /// let given_up = tokio::time::timeout(Duration::from_secs(1), layer.revoke()).await;
    /// assert!(given_up.is_err());
    /// tokio::time::sleep(Duration::from_secs(2)).await;
    /// assert_eq!(server.counters().session_events.last(), Some(&SessionEvent::Destroyed { session: 1 }));
    /// # Ok(()) }
    /// ```
    pub fn set_delete_latency(&self, latency: Duration) {
        self.state.set_delete_latency(latency);
    }

    /// Queues a fault for a coming request to a protected operation (any request that is not
    /// to the authentication endpoints, an unknown path included), apart from the faults of
    /// the token endpoints and of session `DELETE`s; faults are used one per request, in the
    /// order they were queued. It lets a test try a client's retries and error handling on its
    /// API calls.
    ///
    /// [`Fault::Status`], [`Fault::Body`] and [`Fault::CloseConnection`] answer before the
    /// credential is checked, as a gateway's `429` or `503` comes whatever the credential:
    /// nothing is done and no session is extended, but the request is counted under its
    /// scheme, and listed in [`received`](Self::received) with the fault's status unless no
    /// answer was sent. [`Fault::Delay`] waits, then answers as usual. [`Fault::Truncated`]
    /// and [`Fault::AnswerLost`] answer as usual (the SMS is accepted, the request counted and
    /// listed with its status), then cut or lose the answer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use http::{Request, StatusCode, header};
    /// use http_body_util::Full;
    /// use infobip_auth::mock::{Fault, MockServer, DEMO_API_KEY};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<Full<bytes::Bytes>>();
    /// let server = MockServer::start().await?;
    /// let send_sms = || {
    ///     let sms = r#"{"messages":[{"destinations":[{"to":"41793026727"}],"text":"Hi"}]}"#;
    ///     Request::post(server.url("/sms/2/text/advanced"))
    ///         .header(header::AUTHORIZATION, format!("App {DEMO_API_KEY}"))
    ///         .header(header::CONTENT_TYPE, "application/json")
    ///         .body(Full::from(sms))
    /// };
    /// server.inject_operation(Fault::Status {
    ///     status: StatusCode::TOO_MANY_REQUESTS,
    ///     retry_after: Some(Duration::from_secs(3)),
    /// });
    /// let busy = client.request(send_sms()?).await?;
    /// assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
    /// assert_eq!(busy.headers()[header::RETRY_AFTER], "3");
    /// // One fault per request: the retry is accepted.
    /// assert_eq!(client.request(send_sms()?).await?.status(), StatusCode::OK);
    /// assert_eq!(server.counters().resource_requests("App"), 2);
    /// # Ok(()) }
    /// ```
    pub fn inject_operation(&self, fault: Fault) {
        self.state.inject_operation(fault);
    }

    /// Delays every answer to a protected operation (any request that is not to the
    /// authentication endpoints) by `latency` (zero by default; apart from
    /// [`set_latency`](Self::set_latency) and [`set_delete_latency`](Self::set_delete_latency)),
    /// to try a client's timeouts. The wait comes before the credential is checked and is
    /// timed on tokio's clock, so a test on a paused clock does not wait it out.
    ///
    /// ```
    /// use std::time::Duration;
    /// use http::{Request, StatusCode, header};
    /// use http_body_util::Full;
    /// use infobip_auth::mock::{MockServer, DEMO_API_KEY};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<Full<bytes::Bytes>>();
    /// // The clock is tokio's paused one.
    /// let server = MockServer::start().await?;
    /// let inbox = || {
    ///     Request::get(server.url("/sms/1/inbox/reports"))
    ///         .header(header::AUTHORIZATION, format!("App {DEMO_API_KEY}"))
    ///         .body(Full::default())
    /// };
    /// server.set_operation_latency(Duration::from_secs(30));
    /// // A client that gives up after ten seconds gives up; one that waits a minute is answered.
    /// let given_up = tokio::time::timeout(Duration::from_secs(10), client.request(inbox()?)).await;
    /// assert!(given_up.is_err());
    /// let answer = tokio::time::timeout(Duration::from_secs(60), client.request(inbox()?)).await??;
    /// assert_eq!(answer.status(), StatusCode::OK);
    /// # Ok(()) }
    /// ```
    pub fn set_operation_latency(&self, latency: Duration) {
        self.state.set_operation_latency(latency);
    }

    /// The resource requests answered so far, in order: method, path, the scheme of the
    /// credential (never the credential) and the status. The most recent 100,000 are kept, so a
    /// server that runs for days does not grow without end; [`counters`](Self::counters) count
    /// them all.
    ///
    /// ```
    /// # use infobip_auth::mock::MockServer;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = MockServer::start().await?;
    /// assert!(server.received().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.state.received()
    }

    /// How many `method path` operations the server protects.
    pub(crate) fn operation_count(&self) -> usize {
        self.state.settings.operations.len()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.stop.send_replace(());
    }
}

impl fmt::Debug for MockServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServer")
            .field("base_url", &self.base_url)
            .field("operations", &self.operation_count())
            .finish_non_exhaustive()
    }
}

/// Accepts connections until told to stop, then lets open ones finish for [`GRACE`].
async fn serve(listener: TcpListener, state: Arc<State>, mut stop: watch::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, Arc::clone(&state), stop.clone()));
                }
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            // A value, or the handle dropped: stop either way.
            _ = stop.changed() => break,
        }
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = async { while connections.join_next().await.is_some() {} };
    // What has not finished after the grace period is cancelled when `connections` drops.
    let _ = tokio::time::timeout(GRACE, drained).await;
}

/// Serves one connection (HTTP/1.1, or HTTP/2 with prior knowledge), closing it gracefully
/// when the server stops.
async fn connection(stream: TcpStream, state: Arc<State>, mut stop: watch::Receiver<()>) {
    let service = hyper::service::service_fn(move |req| handlers::handle(Arc::clone(&state), req));
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        // Connection errors (a client that went away, an injected fault) end the connection.
        _ = conn.as_mut() => return,
        _ = stop.changed() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
