//! An Infobip-compatible HTTP server on loopback, for tests, examples and your own test suites.
//!
//! Infobip offers no sandbox and its client libraries ship no fake, so code that talks to
//! Infobip is hard to test offline. [`MockServer`] answers the authentication endpoints and a
//! configurable set of protected endpoints with the field names, encodings, status codes and
//! error bodies of Infobip's documentation, strictly enough that a client which gets a detail
//! wrong is refused, and it lets tests inject faults and count what happened.
//!
//! # Using it in your tests
//!
//! Start it inside your tokio runtime, point your client at [`MockServer::base_url`], and
//! assert on the answers and on [`MockServer::counters`]. Sources built with that base URL
//! send their credentials there; an API key or Basic credentials are sent only to
//! `infobip.com` unless the layer allows the server's origin:
//! `InfobipAuthLayer::api_key(DEMO_API_KEY)?.allow_origin(server.base_url())?`.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Method, Request, StatusCode, header};
//! use http_body_util::{BodyExt, Full};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use infobip_auth::mock::{MockServer, SessionEvent, DEMO_PASSWORD, DEMO_USERNAME};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = MockServer::start().await?; // knows the DEMO_* credentials
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//!
//! // Log in: POST /auth/1/session → {"token": "…"}
//! let login = format!(r#"{{"username":"{DEMO_USERNAME}","password":"{DEMO_PASSWORD}"}}"#);
//! let request = Request::post(server.url("/auth/1/session"))
//!     .header(header::CONTENT_TYPE, "application/json")
//!     .body(Full::from(login))?;
//! let answer = client.request(request).await?;
//! assert_eq!(answer.status(), StatusCode::OK);
//! let body = answer.into_body().collect().await?.to_bytes();
//! let token = serde_json::from_slice::<serde_json::Value>(&body)?["token"]
//!     .as_str()
//!     .ok_or("no token")?
//!     .to_owned();
//!
//! // Send an SMS with the session token.
//! let sms = r#"{"messages":[{"destinations":[{"to":"41793026727"}],"from":"InfoSMS","text":"Hi"}]}"#;
//! let request = Request::builder()
//!     .method(Method::POST)
//!     .uri(server.url("/sms/2/text/advanced"))
//!     .header(header::AUTHORIZATION, format!("IBSSO {token}"))
//!     .header(header::CONTENT_TYPE, "application/json")
//!     .body(Full::from(sms))?;
//! assert_eq!(client.request(request).await?.status(), StatusCode::OK);
//!
//! // Without a credential: 401 with Infobip's body.
//! let request = Request::get(server.url("/sms/1/inbox/reports")).body(Full::default())?;
//! assert_eq!(client.request(request).await?.status(), StatusCode::UNAUTHORIZED);
//!
//! let counters = server.counters();
//! assert_eq!(counters.session_creates, 1);
//! assert_eq!(counters.resource_requests("IBSSO"), 1);
//! assert_eq!(counters.unauthorized, 1);
//! assert_eq!(counters.session_events, [SessionEvent::Created { session: 1 }]);
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Configure who the server knows with [`MockConfig`] and start it with
//! [`MockServer::start_with`]. Time is read from [`tokio::time::Instant`], so tests on a paused
//! clock (`#[tokio::test(start_paused = true)]`) can make sessions, tokens and codes expire
//! without waiting. Let time pass with `tokio::time::sleep`, not `tokio::time::advance`: a
//! paused clock moves on a `sleep` only once every task waits, so a token request already sent
//! reaches the server first, while `advance` jumps at once, and a token refreshed across the
//! jump reaches the server already expired.
//!
//! # Endpoints
//!
//! Error answers carry Infobip's body `{"requestError":{"serviceException":{"messageId","text"}}}`
//! (with OAuth's `error` beside it where noted); `400` texts say what was wrong.
//!
//! `POST` and `DELETE /auth/1/session` and `POST /auth/1/oauth2/token` are throttled as Infobip
//! documents them: each answers at most 10 requests in any second, and the next gets `429` with
//! `messageId` `TOO_MANY_REQUESTS` and text `Too many requests`, and no `Retry-After` (Infobip
//! documents none). [`MockConfig::throttle`] changes the rate, [`MockConfig::unthrottled`]
//! lifts it.
//!
//! | endpoint | accepts | answers |
//! |---|---|---|
//! | `POST /auth/1/session` | `application/json` `{"username","password"}` (+ optional `"unsafe": bool`) | `200 {"token"}`; a user's live session is returned again (and extended) until it is destroyed or expires; `401` `UNAUTHORIZED` for wrong credentials; `400` for another content type, a missing or unexpected field; `429` over the rate |
//! | `DELETE /auth/1/session` | `Authorization: IBSSO <token>` | `200` with no body; `401` for an unknown or expired token; `429` over the rate |
//! | `POST /auth/1/oauth2/token` | form `client_id`, `client_secret`, `grant_type=client_credentials` | `200 {"access_token","expires_in","token_type":"Bearer"}` (`expires_in` a number, or a string with [`MockConfig::expires_in_as_string`]); `401` for an unknown client or a wrong secret, its body Infobip's `OAuthApiException`: `{"error":"invalid_client","requestError":{…}}`; `400` for another content type, grant type, a missing or unexpected field; `429` over the rate |
//! | `GET /exchange/1/oauth/authorize` | query `response_type=code`, `client_id`, `state`, `redirect_uri`, `scope`, optional `code_challenge` (+ `code_challenge_method=S256`) | `302`, `Location: <redirect_uri>?code=<16 hex>&state=<state>`, approved for the app's user; `400` for an unknown client or another redirect URI; `HEAD` as `GET` |
//! | `POST /exchange/1/oauth/token` | form `grant_type=authorization_code`, `client_id`, `code`, `redirect_uri` and `client_secret` or (PKCE) `code_verifier`; or `grant_type=refresh_token`, `code=<token>` | `200 {"token","tokenType":"IBSSO","accountKey","userKey","username","email","locale","roles","groups"}`; codes are single use and live one minute, tokens live one minute; `400` for a reused, expired or unknown code, a wrong verifier (of any length: Infobip's guide only recommends 43 to 128 characters, and its example sends `123`), another `redirect_uri` or `client_id`; `401` for a wrong secret or refreshing an expired token |
//!
//! The authorize endpoint plays a user who approves. Infobip's guide says a user who cancels
//! is sent back to the page they came from, not to the redirect URI: the app never hears of
//! the denial, and its pending authorization just expires. A test plays that by not following
//! the `302`; the server never sends `error=access_denied` to the redirect URI, as Infobip
//! documents no such callback.
//!
//! # Protected operations
//!
//! Every other request is checked against a table of operations: the `Authorization` header
//! (`App <key>`, `Basic <base64>`, `IBSSO <session or Exchange token>`, `Bearer <OAuth token>`)
//! must be sent once, use a scheme the operation accepts and be valid, else `401` with `messageId`
//! `UNAUTHORIZED` and text `Invalid login details`; it must hold one of the operation's scopes,
//! else `403` with `messageId` `FORBIDDEN` and text `Forbidden`. Every authenticated use of a
//! session extends it. Unknown paths get `404`, known ones asked with another method `405`,
//! whose `Allow` header lists the path's methods (`HEAD` where `GET` is). A path is read as
//! the crate's scope catalogue reads it: its percent-encoded unreserved characters decoded, a
//! trailing slash ignored when the path means nothing with it, and as written otherwise
//! (case, doubled slashes); a path parameter is never empty. `HEAD` is answered as `GET`
//! would be, checks included, without the content (RFC 9110 §9.3.2).
//!
//! Which status Infobip gives a valid credential of a scheme the operation does not accept (an
//! API key on `/settings/2/api-keys`) is not documented: this server answers `401`, as for a
//! missing credential, which is its own choice. A client should not rely on it being `401`
//! rather than `403`.
//!
//! | operation | scopes (any one) | schemes | answer |
//! |---|---|---|---|
//! | `POST /sms/2/text/advanced` | `message:send`, `sms:message:send`, `sms:manage` | all four | `200 {"bulkId","messages":[{"messageId","status":{…PENDING_ACCEPTED…},"destination"}]}`, one message per `messages[].destinations[].to` (`400` when there is none) |
//! | `GET /sms/1/inbox/reports` | `inbound-message:read`, `sms:inbound-message:read`, `sms:manage` | all four | `200 {"results":[],"messageCount":0,"pendingMessageCount":0}` |
//! | `GET`, `POST /settings/2/api-keys` | `account-management:manage` | `IBSSO`, `Basic`, `Bearer` (no API key) | `200 {}` |
//!
//! [`MockConfig::all_operations`] adds all 943 operations of Infobip's OpenAPI specification,
//! each with its own scopes and schemes (one that lists scopes but no scheme takes any), and
//! [`MockConfig::operation`] adds your own; they answer `200 {}`.
//!
//! # Faults and counters
//!
//! [`MockServer::inject`] queues a [`Fault`] for the next token-endpoint request (an error
//! status with `Retry-After`, an exact body, a dropped connection, a delay, or an answer cut
//! or lost after the server acted);
//! [`MockServer::set_latency`] slows every token endpoint; [`MockServer::inject_delete`] and
//! [`MockServer::set_delete_latency`] do the same for session `DELETE`s, and
//! [`MockServer::inject_operation`] and [`MockServer::set_operation_latency`] for protected
//! operations, so your client's retries, timeouts and error handling can be tried on its API
//! calls (an error status, body or dropped connection answers there before the credential is
//! checked, as a gateway's would); [`MockServer::revoke_api_key`],
//! [`MockServer::revoke_token`], [`MockServer::revoke_all_tokens`] and
//! [`MockServer::expire_all`] invalidate credentials behind the client's back.
//! [`MockServer::counters`] and [`MockServer::received`] report what the server saw, without
//! a secret, keeping the most recent entries of their logs so a server that runs for days does
//! not grow without end.

mod config;
mod counters;
mod faults;
mod handlers;
mod operations;
mod reply;
mod server;
mod state;
#[cfg(test)]
mod tests;
mod throttle;

pub use config::{ExchangeApp, MockConfig};
pub use counters::{Counters, ReceivedRequest, SessionEvent};
pub use faults::Fault;
pub use server::MockServer;

/// The API key [`MockConfig::demo`] accepts, shaped like Infobip's.
///
/// ```
/// use http::{Request, StatusCode};
/// use http_body_util::Full;
/// use infobip_auth::mock::{MockServer, DEMO_API_KEY};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// let server = MockServer::start().await?;
/// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// // Sent as Infobip takes an API key: `Authorization: App <key>`.
/// let request = Request::get(server.url("/sms/1/inbox/reports"))
///     .header("authorization", format!("App {DEMO_API_KEY}"))
///     .body(Full::default())?;
/// assert_eq!(client.request(request).await?.status(), StatusCode::OK);
/// # Ok(()) }
/// ```
pub const DEMO_API_KEY: &str =
    "0d3f1e2a9c8b7a6f5e4d3c2b1a098765-1b2c3d4e-5f60-4718-9a2b-3c4d5e6f7a8b";

/// The username of [`MockConfig::demo`]'s user (for `Basic`, sessions, and its Exchange app).
///
/// ```
/// use infobip_auth::mock::{MockServer, DEMO_PASSWORD, DEMO_USERNAME};
/// use infobip_auth::source::{Session, TokenSource, Transport};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// let server = MockServer::start().await?;
/// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// // The demo user can open an IBSSO session.
/// let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
///     .transport(Transport::new(client))
///     .build()?;
/// assert_eq!(session.fetch(None).await?.scheme(), "IBSSO");
/// assert_eq!(server.counters().session_creates, 1);
/// # Ok(()) }
/// ```
pub const DEMO_USERNAME: &str = "demo-user";

/// The password of [`MockConfig::demo`]'s user.
///
/// ```
/// use infobip_auth::ErrorKind;
/// use infobip_auth::mock::{MockServer, DEMO_PASSWORD, DEMO_USERNAME};
/// use infobip_auth::source::{Session, TokenSource, Transport};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// let server = MockServer::start().await?;
/// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let login = |password: &str| {
///     Session::builder(server.base_url(), DEMO_USERNAME, password)
///         .transport(Transport::new(client.clone()))
///         .build()
/// };
/// assert!(login(DEMO_PASSWORD)?.fetch(None).await.is_ok());
/// // Any other password is refused with a 401, as Infobip refuses wrong login details.
/// let err = login("not-the-demo-password")?.fetch(None).await.err().ok_or("logged in")?;
/// assert!(matches!(err.kind(), ErrorKind::InvalidCredentials(_)));
/// # Ok(()) }
/// ```
pub const DEMO_PASSWORD: &str = "demo-password";

/// The OAuth client id [`MockConfig::demo`] accepts for client credentials.
///
/// ```
/// use infobip_auth::mock::{MockServer, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
/// use infobip_auth::source::{ClientCredentials, TokenSource, Transport};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// let server = MockServer::start().await?;
/// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// // The demo client is granted `Bearer` access tokens.
/// let oauth = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
///     .transport(Transport::new(client))
///     .build()?;
/// assert_eq!(oauth.fetch(None).await?.scheme(), "Bearer");
/// assert_eq!(server.counters().oauth_token_requests, 1);
/// # Ok(()) }
/// ```
pub const DEMO_CLIENT_ID: &str = "demo-client";

/// The OAuth client secret of [`DEMO_CLIENT_ID`].
///
/// ```
/// use infobip_auth::ErrorKind;
/// use infobip_auth::mock::{MockServer, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
/// use infobip_auth::source::{ClientCredentials, TokenSource, Transport};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// let server = MockServer::start().await?;
/// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let oauth = |secret: &str| {
///     ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, secret)
///         .transport(Transport::new(client.clone()))
///         .build()
/// };
/// assert!(oauth(DEMO_CLIENT_SECRET)?.fetch(None).await.is_ok());
/// // Any other secret is refused with a 401.
/// let err = oauth("not-the-demo-secret")?.fetch(None).await.err().ok_or("granted")?;
/// assert!(matches!(err.kind(), ErrorKind::InvalidCredentials(_)));
/// # Ok(()) }
/// ```
pub const DEMO_CLIENT_SECRET: &str = "demo-client-secret";

/// The client id (32 hex digits, as Exchange's) of [`MockConfig::demo`]'s Exchange app.
///
/// ```
/// use http::{Request, StatusCode};
/// use http_body_util::Full;
/// use infobip_auth::mock::{MockServer, DEMO_APP_CLIENT_ID, DEMO_APP_CLIENT_SECRET, DEMO_REDIRECT_URI};
/// use infobip_auth::source::{AuthCodeFlow, Transport};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// let server = MockServer::start().await?;
/// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let flow = AuthCodeFlow::builder(server.base_url(), DEMO_APP_CLIENT_ID)
///     .client_secret(DEMO_APP_CLIENT_SECRET)
///     .redirect_uri(DEMO_REDIRECT_URI)
///     .scope("sms:message:send")
///     .transport(Transport::new(client.clone()))
///     .build()?;
/// // The server knows the demo app: its authorization page approves at once, with a 302.
/// let (url, _pending) = flow.authorize_url()?;
/// let page = client.request(Request::get(url).body(Full::default())?).await?;
/// assert_eq!(page.status(), StatusCode::FOUND);
/// # Ok(()) }
/// ```
pub const DEMO_APP_CLIENT_ID: &str = "5e3b2c1d0f9e8d7c6b5a49382716f0e1";

/// The client secret of the demo Exchange app (base64 of a 256-bit key, as Exchange's).
///
/// ```
/// use http::{Request, header::LOCATION};
/// use http_body_util::Full;
/// use infobip_auth::mock::{MockServer, DEMO_APP_CLIENT_ID, DEMO_APP_CLIENT_SECRET, DEMO_REDIRECT_URI, DEMO_USERNAME};
/// use infobip_auth::source::{AuthCodeFlow, Transport};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// let server = MockServer::start().await?;
/// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let flow = AuthCodeFlow::builder(server.base_url(), DEMO_APP_CLIENT_ID)
///     .client_secret(DEMO_APP_CLIENT_SECRET)
///     .redirect_uri(DEMO_REDIRECT_URI)
///     .scope("sms:message:send")
///     .transport(Transport::new(client.clone()))
///     .build()?;
/// let (url, pending) = flow.authorize_url()?;
/// let page = client.request(Request::get(url).body(Full::default())?).await?;
/// let callback = page.headers().get(LOCATION).ok_or("no redirect")?.to_str()?;
///
/// // The secret authenticates the app when it trades the code for the demo user's token.
/// let source = flow.exchange(flow.callback(pending, callback)?).await?;
/// assert_eq!(source.account().username, DEMO_USERNAME);
/// # Ok(()) }
/// ```
pub const DEMO_APP_CLIENT_SECRET: &str = "kQ3vZ8wN1pL5sR7tY2uX4aB6cD9eF0gH1iJ2kL3mN4o=";

/// The redirect URI registered for the demo Exchange app.
///
/// ```
/// use http::{Request, header::LOCATION};
/// use http_body_util::Full;
/// use infobip_auth::mock::{MockServer, DEMO_APP_CLIENT_ID, DEMO_APP_CLIENT_SECRET, DEMO_REDIRECT_URI};
/// use infobip_auth::source::{AuthCodeFlow, Transport};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// let server = MockServer::start().await?;
/// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let flow = AuthCodeFlow::builder(server.base_url(), DEMO_APP_CLIENT_ID)
///     .client_secret(DEMO_APP_CLIENT_SECRET)
///     .redirect_uri(DEMO_REDIRECT_URI)
///     .scope("sms:message:send")
///     .transport(Transport::new(client.clone()))
///     .build()?;
/// let (url, _pending) = flow.authorize_url()?;
/// let page = client.request(Request::get(url).body(Full::default())?).await?;
/// // Where the server sends the user back with the code (it is only named, never contacted).
/// let location = page.headers().get(LOCATION).ok_or("no redirect")?.to_str()?;
/// assert!(location.starts_with(&format!("{DEMO_REDIRECT_URI}?code=")));
/// # Ok(()) }
/// ```
pub const DEMO_REDIRECT_URI: &str = "https://app.example.com/infobip/callback";

/// The scopes every demo credential holds: all scopes of the two SMS endpoints, none of the
/// API-key management ones (so `/settings/2/api-keys` answers `403`).
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, StatusCode};
/// use http_body_util::Full;
/// use infobip_auth::mock::{MockServer, DEMO_PASSWORD, DEMO_SCOPES, DEMO_USERNAME};
/// use infobip_auth::{InfobipAuthLayer, Scope, Scopes};
/// use tower::{ServiceBuilder, ServiceExt};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// let held: Scopes = DEMO_SCOPES.parse()?;
/// assert!(held.contains(&Scope::new("sms:manage")?));
///
/// // None of them manages API keys: a `403` to provoke on purpose.
/// let server = MockServer::start().await?;
/// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let auth = InfobipAuthLayer::basic(DEMO_USERNAME, DEMO_PASSWORD)?.allow_origin(server.base_url())?;
/// let request = Request::get(server.url("/settings/2/api-keys")).body(Full::<Bytes>::default())?;
/// let response = ServiceBuilder::new().layer(auth).service(client).oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::FORBIDDEN);
/// # Ok(()) }
/// ```
pub const DEMO_SCOPES: &str =
    "message:send,sms:message:send,sms:manage,inbound-message:read,sms:inbound-message:read";
