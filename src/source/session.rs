//! [`Session`]: IBSSO session tokens, sent as `Authorization: IBSSO <token>`.
//!
//! A session is created with `POST /auth/1/session` (JSON `{"username","password"}`, answer
//! `{"token"}`) and ended with `DELETE /auth/1/session`, as Infobip's
//! [API authentication](https://www.infobip.com/docs/essentials/api-authentication#ibsso-token-header)
//! page describes. Infobip ends a session after 60 minutes without use (an account may shorten
//! that); every use extends it. The layer's cache follows this: it counts the idle time, and a
//! request after a longer gap gets a new session *before* it is sent, so no request learns of
//! the old session's death from a `401`. Infobip's pages also say a session expires "after 60
//! minutes"; if your account's sessions end at a fixed age, set
//! [`max_lifetime`](Builder::max_lifetime) and the session is renewed ahead of that age too.
//!
//! Infobip wants a live session ended before a new one is created, so every renewal first
//! deletes the session it replaces (a `401` there means the session had already ended, which
//! is fine). The session endpoints are throttled at 10 requests per second: the cache makes
//! one renewal at a time, whatever the number of waiting requests, and backs off on failure.
//!
//! Infobip hands a user's live session to every login, so processes that sign in as the same
//! user share one session: when one renews it, the others see one `401` each, renew (their
//! `DELETE` names the already-ended token, which is harmless) and replay the request.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Method, Request, Response};
//! use http_body_util::{BodyExt as _, Full};
//! use infobip_auth::InfobipAuthLayer;
//! use infobip_auth::source::{Session, Transport};
//! use tower::{ServiceBuilder, ServiceExt as _, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
//! // Stands in for Infobip (use a hyper-util client in production): creates a session, and
//! // answers any other request with the Authorization header it carried.
//! let infobip = service_fn(|request: Request<Full<Bytes>>| async move {
//!     let body = match (request.method(), request.uri().path()) {
//!         (&Method::POST, "/auth/1/session") => Bytes::from_static(br#"{"token":"2f9b4d31"}"#),
//!         _ => request.headers().get("authorization").map_or_else(Bytes::new, |v| Bytes::copy_from_slice(v.as_bytes())),
//!     };
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(body)))
//! });
//!
//! let session = Session::builder("https://xyz12.api.infobip.com", "username", "password")
//!     .transport(Transport::new(infobip))
//!     .build()?;
//! let layer = InfobipAuthLayer::new(session);
//! let service = ServiceBuilder::new().layer(layer.clone()).service(infobip);
//!
//! let request = Request::get("https://xyz12.api.infobip.com/sms/1/inbox/reports").body(Full::default())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "IBSSO 2f9b4d31");
//!
//! layer.revoke().await?; // on shutdown: DELETE /auth/1/session
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use http::{Method, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::credential::REDACTED;
use crate::error::ConfigError;
use crate::source::{TokenSource, Transport, token_endpoint};
use crate::transport::{self, check_status, token_credential};
use crate::{BaseUrl, Credential, Error, ErrorKind};

/// Infobip's path for creating (`POST`) and ending (`DELETE`) a session.
const SESSION_PATH: &str = "/auth/1/session";

/// Infobip's default: a session ends after 60 minutes without use.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Whether an idle timeout or maximum lifetime is accepted: from one second (below it every
/// request would renew the session) to one day (Infobip's sessions last 60 minutes unless
/// shortened).
fn accepted(duration: Duration) -> bool {
    (Duration::from_secs(1)..=Duration::from_secs(24 * 60 * 60)).contains(&duration)
}

/// An Infobip user's username and password, exchanged for an IBSSO session token.
///
/// Sessions suit apps whose users sign in with their own Infobip credentials, so the app never
/// stores an API key. Each renewal deletes the previous session before creating the next
/// (see the [module docs](self)); [`InfobipAuthLayer::revoke`](crate::InfobipAuthLayer::revoke)
/// ends the current one on shutdown. The password lives in zeroizing memory and never appears
/// in `Debug` or in errors.
///
/// ```
/// # use infobip_auth::source::{Session, Transport};
/// # let client = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
/// # });
/// let session = Session::builder("https://xyz12.api.infobip.com", "username", "s3cret")
///     .transport(Transport::new(client))
///     .build()?;
/// assert!(!format!("{session:?}").contains("s3cret"));
/// # Ok::<(), infobip_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Session {
    base: BaseUrl,
    endpoint: Uri,
    username: String,
    password: Zeroizing<String>,
    unsafe_session: bool,
    idle_timeout: Duration,
    max_lifetime: Option<Duration>,
    transport: Transport,
}

impl Session {
    /// Starts configuring a session source for `username` at `base_url` (your Infobip base URL,
    /// e.g. `https://xyz12.api.infobip.com`). A [`transport`](Builder::transport) is required.
    ///
    /// ```
    /// use infobip_auth::mock::{MockServer, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::{Session, TokenSource};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start().await?; // Infobip-compatible, on loopback
    /// let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    ///     .transport(transport())
    ///     .build()?;
    /// assert_eq!(session.fetch(None).await?.scheme(), "IBSSO");
    /// # Ok(()) }
    /// ```
    pub fn builder(base_url: &str, username: &str, password: &str) -> Builder {
        Builder {
            base_url: base_url.to_owned(),
            username: username.to_owned(),
            password: Zeroizing::new(password.to_owned()),
            transport: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_lifetime: None,
            unsafe_session: false,
            token_path: None,
        }
    }

    /// Ends `session` with `DELETE /auth/1/session`. A `401` means it had ended already.
    async fn end(&self, session: &Credential) -> Result<(), Error> {
        let answer = self
            .transport
            .send_authorized(Method::DELETE, self.endpoint.clone(), session.header())
            .await?;
        if answer.status() == StatusCode::UNAUTHORIZED {
            return Ok(());
        }
        check_status(&answer)
    }

    /// Creates a session: `POST /auth/1/session`.
    async fn create(&self) -> Result<Credential, Error> {
        let body = CreateSession {
            username: &self.username,
            password: &self.password,
            unsafe_session: self.unsafe_session,
        };
        let answer = self
            .transport
            .post_json(self.endpoint.clone(), &body, &[&self.password])
            .await?;
        let created: Created = transport::json(&answer)?;
        let token = Zeroizing::new(created.token);
        let session = token_credential("IBSSO", &token)?.idle_timeout(self.idle_timeout);
        Ok(match self.max_lifetime {
            Some(lifetime) => transport::expires_after_sent(session, &answer, lifetime),
            None => session,
        })
    }

    /// Creates a session after the `DELETE` of `previous` went unanswered (`lost`), which may
    /// or may not have ended it: see [`fetch`](TokenSource::fetch).
    async fn create_after_lost_end(
        &self,
        previous: &Credential,
        lost: Error,
    ) -> Result<Credential, Error> {
        match self.create().await {
            Ok(created) if created.was_sent_as(previous.header()) => Err(lost),
            Ok(created) => Ok(created),
            Err(err) => Err(err.with_previous_in_doubt()),
        }
    }
}

/// Whether a request failed without an answer from the server, which may have acted on it. A
/// request the client could not send at all (it could not connect) is not one.
fn unanswered(err: &Error) -> bool {
    matches!(err.kind(), ErrorKind::Transport | ErrorKind::Timeout) && !transport::never_sent(err)
}

/// The body of `POST /auth/1/session`, borrowing the password so no copy outlives the request.
#[derive(Serialize)]
struct CreateSession<'a> {
    username: &'a str,
    password: &'a str,
    /// Infobip's `"unsafe": true`: a session not bound to the caller's IP address.
    #[serde(rename = "unsafe", skip_serializing_if = "std::ops::Not::not")]
    unsafe_session: bool,
}

/// The answer of `POST /auth/1/session`.
#[derive(Deserialize)]
struct Created {
    token: String,
}

impl TokenSource for Session {
    /// Ends `previous` (if any), then creates a session.
    ///
    /// A `5xx` or `429` to ending the previous session fails the renewal, to be retried after
    /// a backoff while the old session keeps serving if it is still valid; so does a `DELETE`
    /// that never left, which cannot have ended it (a refused connection, or any failure to
    /// connect that reqwest reports). A `DELETE` left unanswered (a broken
    /// connection, a timeout) may or may not have ended it, and the create tells which:
    /// Infobip hands a login the session still alive, so the same token back means the
    /// `DELETE` did nothing (the renewal fails as after a `5xx`), and another token is the new
    /// session. If the create fails too, the old session is not sent again, only ended first
    /// by the next renewal (where a `401` says it had ended). Any other answer
    /// (`2xx`, `401` for an ended session, another `4xx`, or a redirect, which is never
    /// followed) lets the new session be created. If that fails after the previous session was
    /// ended, the error says so ([`Error::is_previous_ended`]): the cache stops sending the
    /// ended session.
    async fn fetch(&self, previous: Option<&Credential>) -> Result<Credential, Error> {
        let mut ended = false;
        if let Some(previous) = previous {
            match self.end(previous).await {
                Err(err) if unanswered(&err) => {
                    return self.create_after_lost_end(previous, err).await;
                }
                Err(err) if err.is_transient() => return Err(err),
                Ok(()) => ended = true,
                Err(_) => {}
            }
        }
        self.create().await.map_err(|err| {
            if ended {
                err.with_previous_ended()
            } else {
                err
            }
        })
    }

    /// Ends `credential` with `DELETE /auth/1/session`; a session that had ended already
    /// (`401`) is not an error.
    async fn revoke(&self, credential: &Credential) -> Result<(), Error> {
        self.end(credential).await
    }

    /// `true`: each renewal deletes the session it replaces, so the cache stops sending that
    /// session once the renewal starts.
    fn ends_previous(&self) -> bool {
        true
    }

    fn base_url(&self) -> Option<&BaseUrl> {
        Some(&self.base)
    }

    fn name(&self) -> &'static str {
        "session"
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("endpoint", &self.endpoint)
            .field("username", &self.username)
            .field("password", &REDACTED)
            .field("unsafe_session", &self.unsafe_session)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("transport", &self.transport)
            .finish()
    }
}

/// Configures a [`Session`]; made by [`Session::builder`].
///
/// ```
/// use infobip_auth::{ConfigError, source::Session};
/// use std::time::Duration;
/// // Checked when built, not at the first request: an idle timeout is from one second to one day.
/// let built = Session::builder("https://xyz12.api.infobip.com", "username", "password")
///     .idle_timeout(Duration::ZERO)
///     .build();
/// assert!(matches!(built, Err(ConfigError::Invalid { what: "idle timeout", .. })));
/// ```
#[must_use]
pub struct Builder {
    base_url: String,
    username: String,
    password: Zeroizing<String>,
    transport: Option<Transport>,
    idle_timeout: Duration,
    max_lifetime: Option<Duration>,
    unsafe_session: bool,
    token_path: Option<String>,
}

impl Builder {
    /// The HTTP client that reaches the session endpoint (required: there is no hidden default
    /// client). It may be the same client the layer wraps.
    ///
    /// ```
    /// use hyper_util::client::legacy::Client;
    /// use hyper_util::rt::TokioExecutor;
    /// use infobip_auth::ConfigError;
    /// use infobip_auth::source::{Session, Transport};
    /// let builder = || Session::builder("https://xyz12.api.infobip.com", "username", "password");
    /// let client = Client::builder(TokioExecutor::new()).build_http();
    /// assert!(builder().transport(Transport::new(client)).build().is_ok());
    /// let err = builder().build().err();
    /// assert!(matches!(err, Some(ConfigError::Invalid { what: "transport", .. })));
    /// ```
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// How long Infobip keeps an unused session (default 60 minutes, Infobip's default).
    /// Set it to your account's session length if you shortened it. From one second to one day.
    ///
    /// ```
    /// use std::time::Duration;
    /// use infobip_auth::mock::{MockServer, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::{Session, TokenSource};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start().await?; // Infobip-compatible, on loopback
    /// let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    ///     .transport(transport())
    ///     .idle_timeout(Duration::from_secs(15 * 60))
    ///     .build()?;
    /// // The cache renews a session before an idle gap this long.
    /// assert_eq!(session.fetch(None).await?.idle_limit(), Some(Duration::from_secs(15 * 60)));
    /// # Ok(()) }
    /// ```
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Also renews the session before it is `lifetime` old, however busy it is. Infobip's pages
    /// say both that a session expires "after 60 minutes" and that it expires "after a
    /// predefined period of inactivity"; by default this source follows the second. If your
    /// account's sessions end at a fixed age, set it (to that age): they are then replaced
    /// ahead of time instead of failing every request in flight with a `401`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use infobip_auth::mock::{MockServer, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::{Session, TokenSource};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start().await?; // Infobip-compatible, on loopback
    /// let builder = || Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD).transport(transport());
    /// // By default a session has no fixed end; with a maximum, it expires at that age.
    /// assert_eq!(builder().build()?.fetch(None).await?.lifetime(), None);
    /// let hour = Duration::from_secs(60 * 60);
    /// let session = builder().max_lifetime(hour).build()?;
    /// assert!(session.fetch(None).await?.lifetime().is_some_and(|lifetime| lifetime <= hour));
    /// # Ok(()) }
    /// ```
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// Asks for a session that is not bound to the caller's IP address (Infobip's
    /// `"unsafe": true`), for apps whose outgoing address changes. Off by default: a session
    /// bound to one address is worth less to whoever steals its token.
    ///
    /// ```
    /// use infobip_auth::source::{Session, TokenSource, Transport};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # use bytes::Bytes;
    /// # use http_body_util::{BodyExt, Full};
    /// # // Answers with a token only when `body.contains(r#""unsafe":true"#)`, else `404`.
    /// # let client = tower::service_fn(|request: http::Request<Full<Bytes>>| async move {
    /// #     let path = request.uri().path().to_owned();
    /// #     let body = request.into_body().collect().await?.to_bytes();
    /// #     let body = String::from_utf8_lossy(&body);
    /// #     let mut response = http::Response::new(Full::new(Bytes::from(r#"{"token":"a1b2c3"}"#)));
    /// #     if !(body.contains(r#""unsafe":true"#)) {
    /// #         *response.status_mut() = http::StatusCode::NOT_FOUND;
    /// #     }
    /// #     Ok::<_, infobip_auth::BoxError>(response)
    /// # });
    /// // `client` stands in for Infobip, and answers only requests for an unbound session.
    /// let session = Session::builder("https://xyz12.api.infobip.com", "username", "password")
    ///     .transport(Transport::new(client))
    ///     .unsafe_session(true)
    ///     .build()?;
    /// assert_eq!(session.fetch(None).await?.header(), "IBSSO a1b2c3");
    /// # Ok(()) }
    /// ```
    pub fn unsafe_session(mut self, unsafe_session: bool) -> Self {
        self.unsafe_session = unsafe_session;
        self
    }

    /// The session endpoint's path under the base URL, for a gateway that moves it (default
    /// `/auth/1/session`). Used for both creating and ending sessions.
    ///
    /// ```
    /// use infobip_auth::source::{Session, TokenSource, Transport};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # use bytes::Bytes;
    /// # use http_body_util::{BodyExt, Full};
    /// # // Answers with a token only when `path == "/infobip/auth/1/session"`, else `404`.
    /// # let client = tower::service_fn(|request: http::Request<Full<Bytes>>| async move {
    /// #     let path = request.uri().path().to_owned();
    /// #     let body = request.into_body().collect().await?.to_bytes();
    /// #     let body = String::from_utf8_lossy(&body);
    /// #     let mut response = http::Response::new(Full::new(Bytes::from(r#"{"token":"a1b2c3"}"#)));
    /// #     if !(path == "/infobip/auth/1/session") {
    /// #         *response.status_mut() = http::StatusCode::NOT_FOUND;
    /// #     }
    /// #     Ok::<_, infobip_auth::BoxError>(response)
    /// # });
    /// // `client` stands in for a gateway that serves the session endpoint at its own path.
    /// let session = Session::builder("https://gateway.example.com", "username", "password")
    ///     .transport(Transport::new(client))
    ///     .token_path("/infobip/auth/1/session")
    ///     .build()?;
    /// assert_eq!(session.fetch(None).await?.header(), "IBSSO a1b2c3");
    /// # Ok(()) }
    /// ```
    pub fn token_path(mut self, path: &str) -> Self {
        self.token_path = Some(path.to_owned());
        self
    }

    /// Checks the configuration and makes the source. Nothing is sent yet: the first request
    /// through the layer creates the session.
    ///
    /// # Errors
    /// [`ConfigError::InvalidUrl`] or [`ConfigError::InsecureUrl`] for a bad base URL or token
    /// path; [`ConfigError::Empty`] for an empty username or password;
    /// [`ConfigError::Invalid`] when no transport was given, or the idle timeout or the maximum
    /// lifetime is outside one second to one day.
    ///
    /// ```
    /// # use infobip_auth::{ConfigError, source::Session};
    /// let missing = Session::builder("https://xyz12.api.infobip.com", "username", "password").build();
    /// assert!(matches!(missing, Err(ConfigError::Invalid { what: "transport", .. })));
    /// ```
    pub fn build(self) -> Result<Session, ConfigError> {
        let base = BaseUrl::new(&self.base_url)?;
        let endpoint = token_endpoint(&base, self.token_path.as_deref().unwrap_or(SESSION_PATH))?;
        if self.username.is_empty() {
            return Err(ConfigError::Empty { what: "username" });
        }
        if self.password.is_empty() {
            return Err(ConfigError::Empty { what: "password" });
        }
        if !accepted(self.idle_timeout) {
            return Err(ConfigError::Invalid {
                what: "idle timeout",
                reason: "it must be from one second to one day",
            });
        }
        if !self.max_lifetime.is_none_or(accepted) {
            return Err(ConfigError::Invalid {
                what: "maximum lifetime",
                reason: "it must be from one second to one day",
            });
        }
        let transport = super::required(self.transport)?;
        Ok(Session {
            base,
            endpoint,
            username: self.username,
            password: self.password,
            unsafe_session: self.unsafe_session,
            idle_timeout: self.idle_timeout,
            max_lifetime: self.max_lifetime,
            transport,
        })
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("base_url", &crate::origin::redacted(&self.base_url))
            .field("username", &self.username)
            .field("password", &REDACTED)
            .field("transport", &self.transport)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("unsafe_session", &self.unsafe_session)
            .field("token_path", &self.token_path)
            .finish()
    }
}

#[cfg(test)]
mod tests;
