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
//! assert on the answers and on [`MockServer::counters`]:
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
//! clock (`#[tokio::test(start_paused = true)]` and `tokio::time::advance`) can make sessions,
//! tokens and codes expire without waiting.
//!
//! # Endpoints
//!
//! Error answers carry Infobip's body `{"requestError":{"serviceException":{"messageId","text"}}}`;
//! `400` texts say what was wrong.
//!
//! | endpoint | accepts | answers |
//! |---|---|---|
//! | `POST /auth/1/session` | `application/json` `{"username","password"}` (+ optional `"unsafe": bool`) | `200 {"token"}`; a user's live session is returned again (and extended) until it is destroyed or expires; `401` `UNAUTHORIZED` for wrong credentials; `400` for another content type, a missing or unexpected field |
//! | `DELETE /auth/1/session` | `Authorization: IBSSO <token>` | `200` with no body; `401` for an unknown or expired token |
//! | `POST /auth/1/oauth2/token` | form `client_id`, `client_secret`, `grant_type=client_credentials` | `200 {"access_token","expires_in","token_type":"Bearer"}` (`expires_in` a number, or a string with [`MockConfig::expires_in_as_string`]); `401` for a wrong client; `400` for another content type, grant type, a missing or unexpected field |
//! | `GET /exchange/1/oauth/authorize` | query `response_type=code`, `client_id`, `state`, `redirect_uri`, `scope`, optional `code_challenge` (+ `code_challenge_method=S256`) | `302`, `Location: <redirect_uri>?code=<16 hex>&state=<state>`, approved for the app's user; `400` for an unknown client or another redirect URI |
//! | `POST /exchange/1/oauth/token` | form `grant_type=authorization_code`, `client_id`, `code`, `redirect_uri` and `client_secret` or (PKCE) `code_verifier`; or `grant_type=refresh_token`, `code=<token>` | `200 {"token","tokenType":"IBSSO","accountKey","userKey","username","email","locale","roles","groups"}`; codes are single use and live one minute, tokens live one minute; `400` for a reused, expired or unknown code, a wrong verifier, another `redirect_uri` or `client_id`; `401` for a wrong secret or refreshing an expired token |
//!
//! # Protected operations
//!
//! Every other request is checked against a table of operations: the `Authorization` header
//! (`App <key>`, `Basic <base64>`, `IBSSO <session or Exchange token>`, `Bearer <OAuth token>`)
//! must use a scheme the operation accepts and be valid, else `401` with `messageId`
//! `UNAUTHORIZED` and text `Invalid login details`; it must hold one of the operation's scopes,
//! else `403` with `messageId` `FORBIDDEN` and text `Forbidden`. Every authenticated use of a
//! session extends it. Unknown paths get `404`.
//!
//! | operation | scopes (any one) | schemes | answer |
//! |---|---|---|---|
//! | `POST /sms/2/text/advanced` | `message:send`, `sms:message:send`, `sms:manage` | all four | `200 {"bulkId","messages":[{"messageId","status":{…PENDING_ACCEPTED…},"destination"}]}`, one message per `messages[].destinations[].to` (`400` when there is none) |
//! | `GET /sms/1/inbox/reports` | `inbound-message:read`, `sms:inbound-message:read`, `sms:manage` | all four | `200 {"results":[],"messageCount":0,"pendingMessageCount":0}` |
//! | `GET`, `POST /settings/2/api-keys` | `account-management:manage` | `IBSSO`, `Basic`, `Bearer` (no API key) | `200 {}` |
//!
//! [`MockConfig::all_operations`] adds all 943 operations of Infobip's OpenAPI specification,
//! each with its own scopes and schemes, and [`MockConfig::operation`] adds your own; they
//! answer `200 {}`.
//!
//! # Faults and counters
//!
//! [`MockServer::inject`] queues a [`Fault`] for the next token-endpoint request (an error
//! status with `Retry-After`, an exact body, a truncated body, a dropped connection, a delay);
//! [`MockServer::set_latency`] slows every token endpoint; [`MockServer::revoke_api_key`],
//! [`MockServer::revoke_token`], [`MockServer::revoke_all_tokens`] and
//! [`MockServer::expire_all`] invalidate credentials behind the client's back.
//! [`MockServer::counters`] and [`MockServer::received`] report what the server saw, without
//! a secret.

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

pub use config::{ExchangeApp, MockConfig};
pub use counters::{Counters, ReceivedRequest, SessionEvent};
pub use faults::Fault;
pub use server::MockServer;

/// The API key [`MockConfig::demo`] accepts, shaped like Infobip's.
pub const DEMO_API_KEY: &str =
    "0d3f1e2a9c8b7a6f5e4d3c2b1a098765-1b2c3d4e-5f60-4718-9a2b-3c4d5e6f7a8b";

/// The username of [`MockConfig::demo`]'s user (for `Basic`, sessions, and its Exchange app).
pub const DEMO_USERNAME: &str = "demo-user";

/// The password of [`MockConfig::demo`]'s user.
pub const DEMO_PASSWORD: &str = "demo-password";

/// The OAuth client id [`MockConfig::demo`] accepts for client credentials.
pub const DEMO_CLIENT_ID: &str = "demo-client";

/// The OAuth client secret of [`DEMO_CLIENT_ID`].
pub const DEMO_CLIENT_SECRET: &str = "demo-client-secret";

/// The client id (32 hex digits, as Exchange's) of [`MockConfig::demo`]'s Exchange app.
pub const DEMO_APP_CLIENT_ID: &str = "5e3b2c1d0f9e8d7c6b5a49382716f0e1";

/// The client secret of the demo Exchange app (base64 of a 256-bit key, as Exchange's).
pub const DEMO_APP_CLIENT_SECRET: &str = "kQ3vZ8wN1pL5sR7tY2uX4aB6cD9eF0gH1iJ2kL3mN4o=";

/// The redirect URI registered for the demo Exchange app.
pub const DEMO_REDIRECT_URI: &str = "https://app.example.com/infobip/callback";

/// The scopes every demo credential holds: all scopes of the two SMS endpoints, none of the
/// API-key management ones (so `/settings/2/api-keys` answers `403`).
pub const DEMO_SCOPES: &str =
    "message:send,sms:message:send,sms:manage,inbound-message:read,sms:inbound-message:read";
