//! Tower middleware that authenticates outgoing requests to the Infobip API and keeps the
//! credential valid, so callers never think about it.
//!
//! # Overview
//!
//! Add one layer over any tower HTTP client (hyper-util, tonic, the client an axum app keeps in
//! state; reqwest through the `reqwest` feature): [`InfobipAuthLayer`] sets `Authorization` on
//! every request from a cached credential.
//!
//! * **Renewal.** Credentials with a lifetime are renewed in the background once about three
//!   quarters of it have passed, while requests keep using the current one; only in its last
//!   tenth do requests wait. One token request is in flight at a time, whatever the load, and it
//!   runs in its own task, so a dropped request never cancels it. A failing token endpoint is
//!   retried with jittered exponential backoff (at least `Retry-After`), and a still-valid
//!   credential keeps being served meanwhile. See [`RefreshPolicy`].
//! * **`401`.** The refused credential (and only that one) is invalidated, renewed once, and the
//!   request replayed once when its body can be copied ([`ReplayPolicy`]). A `401` that is not
//!   replayed, or refused again, comes back as the response, with an [`Error`] of kind
//!   [`InvalidCredentials`](ErrorKind::InvalidCredentials) in its extensions; if the renewal
//!   itself fails, its error is returned instead. A renewed credential refused too counts as a
//!   failed renewal: the next one waits out a backoff, so a server that refuses everything is
//!   not asked for a token per request.
//! * **`403`.** [`ScopeCheckLayer`] names the scopes the endpoint needs (from a catalogue of all
//!   943 Infobip operations) and the ones the credential holds, and refuses before sending what
//!   is certain to be refused. With reqwest, its `reqwest_middleware()` (feature `reqwest`)
//!   does the same after the auth middleware.
//! * **gRPC.** A gRPC server refuses with HTTP 200 and `grpc-status: 16` (`UNAUTHENTICATED`), not
//!   a `401`: [`GrpcRenewalLayer`], from [`InfobipAuthLayer::grpc_renewal`] and put inside the
//!   auth layer, renews the refused credential so the caller's retry carries the new one.
//! * **Where credentials go.** Only to the source's base URL, origins added with
//!   [`InfobipAuthLayer::allow_origin`], or HTTPS hosts under `infobip.com`; plain HTTP only to
//!   loopback. A request that already has an `Authorization` header is sent as it is.
//! * **Secrets** never appear in `Debug`, `Display`, errors or tracing; header values are marked
//!   sensitive and zeroized when dropped.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use infobip_auth::InfobipAuthLayer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
//! // Stands in for your HTTP client (a hyper-util `Client`, a tonic `Channel`, …).
//! let client = service_fn(|request: Request<Full<Bytes>>| async move {
//!     let authorization = request.headers()["authorization"].clone();
//!     Ok::<_, std::convert::Infallible>(Response::new(authorization))
//! });
//!
//! let infobip = ServiceBuilder::new()
//!     .layer(InfobipAuthLayer::api_key("003026bbc133714df1834b8638bb496e-8f4b3d9a")?)
//!     .service(client);
//!
//! let request = Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced")
//!     .body(Full::new(Bytes::from_static(br#"{"messages":[]}"#)))?;
//! let response = infobip.oneshot(request).await?;
//! assert_eq!(response.body(), "App 003026bbc133714df1834b8638bb496e-8f4b3d9a");
//! # Ok(()) }
//! ```
//!
//! # One client, many requests
//!
//! Build the layered client once, at start-up, and clone it per request (an axum app keeps it
//! in its state): clones share one credential and one token request at a time. The cache lives
//! as long as the layer or a service made from it, and a `401` is renewed and replayed only
//! while it lives. A service built for one request that owned the only copy of its layer
//! fetches a token for that request alone, and hands its `401` back unreplayed.
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use http::{Request, Response, StatusCode};
//! use infobip_auth::{Credential, Error, InfobipAuthLayer, source::TokenSource};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! /// Makes `token-1`, `token-2`, ...
//! #[derive(Debug, Default)]
//! struct Numbered(AtomicUsize);
//!
//! impl TokenSource for Numbered {
//!     async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
//!         let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
//!         Ok(Credential::new("Bearer", &format!("token-{n}"))?)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
//! // Stands in for Infobip, which revoked `token-1` and takes any later token.
//! let infobip = service_fn(|request: Request<String>| async move {
//!     let revoked = request.headers()["authorization"] == "Bearer token-1";
//!     let status = if revoked { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
//!     Response::builder().status(status).body(String::new())
//! });
//! let sms = || Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced").body("{}".to_owned());
//!
//! // Built once; each request takes a clone. `token-1` is refused, `token-2` fetched, and the
//! // request replayed with it.
//! let client = ServiceBuilder::new().layer(InfobipAuthLayer::new(Numbered::default())).service(infobip);
//! assert_eq!(client.clone().oneshot(sms()?).await?.status(), StatusCode::OK);
//!
//! // Built for one request: nothing outlives it to renew with, so the 401 comes back.
//! let once = ServiceBuilder::new().layer(InfobipAuthLayer::new(Numbered::default())).service(infobip);
//! let response = once.oneshot(sms()?).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert!(response.extensions().get::<Error>().is_some());
//! # Ok(()) }
//! ```
//!
//! The [`mock`] module (feature `mock`) runs an Infobip-compatible server on loopback for
//! examples and your own tests; `cargo run --example quickstart` shows every method against it.
//!
//! # Sources
//!
//! | source | header | renewed |
//! |---|---|---|
//! | [`source::ApiKey`] | `App <key>` | never: a `401` means the key was revoked or expired |
//! | [`source::Basic`] | `Basic <base64(username:password)>` ([RFC 7617](https://www.rfc-editor.org/rfc/rfc7617)) | never |
//! | [`source::Session`] | `IBSSO <token>` | before an idle gap outlives the session (60 min by default); the old session is ended first |
//! | [`source::ClientCredentials`] | `Bearer <access_token>` | ahead of `expires_in` |
//! | [`source::AuthCode`] (Exchange OAuth, PKCE) | `IBSSO <token>` | about every 45 s of its one-minute life; expired → [`ReauthorizationRequired`](ErrorKind::ReauthorizationRequired) |
//!
//! Implement [`source::TokenSource`] for anything else.
//!
//! # Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `mock` | [`mock`]: an Infobip-compatible server on loopback, with fault injection and counters |
//! | `reqwest` | [`reqwest`]: a `reqwest-middleware` 0.5 adapter over the same sources and cache; [`Transport::reqwest`](source::Transport::reqwest) for token requests (reqwest 0.13) |
//! | `tracing` | events for token fetches, refresh ahead, invalidation after a `401` or a gRPC `UNAUTHENTICATED`, and backoff |
//! | `tower-http` | `scope::ScopeClassifier`, a tower-http 0.7 classifier that names the scopes behind a `403` |
//!
//! # Errors
//!
//! The services' error type is [`BoxError`]. The inner client's errors pass through; the
//! crate's own (a token request that failed, a host not allowed, a pre-flight refusal) are an
//! [`Error`], found with [`Error::find`] and matched on [`Error::kind`]. A `401` that the API
//! itself answered to the layer's credential is not an `Err` but the response, with the
//! [`Error`] in its extensions (unless renewing for its replay failed: that error is the `Err`);
//! so is any `401` under [`ScopeCheckLayer`], and any `403` unless it is told to
//! `reject_forbidden`. So [`InvalidCredentials`](ErrorKind::InvalidCredentials) as an `Err`
//! is a token endpoint refusing what the source sent it (a wrong client secret or password,
//! an authorization code already used), and in a `401` response's extensions, the API
//! refusing the credential sent (a revoked key, or a token refused again after its renewal).
//!
//! An [`Error`]'s `Display` says what failed; what caused it (your credential store's own
//! error, an I/O error) is its [`source`](std::error::Error::source): log the chain.
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use infobip_auth::{BoxError, Error, ErrorKind, InfobipAuthLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! fn explain(error: &Error) -> String {
//!     match error.kind() {
//!         ErrorKind::InvalidCredentials(api) => format!("check the credentials: {api}"),
//!         ErrorKind::Forbidden(forbidden) => format!("grant a scope: {forbidden}"),
//!         ErrorKind::ReauthorizationRequired => "ask the user to connect again".into(),
//!         _ if error.is_transient() => format!("retry later: {error}"),
//!         _ => error.to_string(),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), BoxError> {
//! // Stands in for Infobip refusing a revoked key.
//! let client = service_fn(|_: Request<String>| async {
//!     Response::builder().status(StatusCode::UNAUTHORIZED).body(String::new())
//! });
//! let service = ServiceBuilder::new().layer(InfobipAuthLayer::api_key("revoked-key")?).service(client);
//! let request = Request::get("https://xyz12.api.infobip.com/sms/1/inbox/reports").body(String::new())?;
//! let explained = match service.oneshot(request).await {
//!     // The API answered: a refusal carries its explanation.
//!     Ok(response) => response.extensions().get::<Error>().map(explain),
//!     // The crate's own failure, or (no `Error` in it) the HTTP client's.
//!     Err(error) => Some(Error::find(&*error).map_or_else(|| error.to_string(), explain)),
//! };
//! assert_eq!(explained.as_deref(), Some("check the credentials: 401 Unauthorized"));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub,
    clippy::await_holding_lock,
    clippy::dbg_macro,
    clippy::todo,
    clippy::mem_forget,
    clippy::needless_pass_by_value,
    clippy::redundant_clone,
    clippy::return_self_not_must_use,
    clippy::uninlined_format_args
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
mod credential;
mod error;
pub mod future;
pub mod grpc;
mod layer;
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub mod mock;
mod origin;
mod replay;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod reqwest;
pub mod scope;
pub mod source;
mod sync;
mod timer;
mod trace;
mod transport;

#[cfg(test)]
mod test_helpers;

pub use cache::RefreshPolicy;
pub use credential::{Account, Credential, Named};
pub use error::{ApiError, BoxError, ConfigError, Error, ErrorKind, Forbidden};
pub use grpc::{GrpcRenewal, GrpcRenewalLayer};
pub use layer::{InfobipAuth, InfobipAuthLayer};
pub use origin::BaseUrl;
pub use replay::ReplayPolicy;
pub use scope::{AuthScheme, Catalog, Scope, ScopeCheck, ScopeCheckLayer, Scopes};

/// The README's example runs as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Values whose drop is a bug are `#[must_use]`: each block below ignores one and must fail to
/// compile under `deny(unused_must_use)`. The first block is the same code with every value
/// used, so the others fail for that reason alone. (Response futures need no attribute of
/// their own: `Service::call` is `#[must_use]`.)
///
/// ```
/// #![deny(unused_must_use)]
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use infobip_auth::ScopeCheck;
/// use tower::service_fn;
/// let inner = service_fn(|_: Request<String>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(String::new()))
/// });
/// let _checked = ScopeCheck::new(inner);
/// let _transport = infobip_auth::source::Transport::new(service_fn(|_: Request<Full<Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
/// }));
/// ```
///
/// A scope check built and dropped:
/// ```compile_fail
/// #![deny(unused_must_use)]
/// use http::{Request, Response};
/// use tower::service_fn;
/// let inner = service_fn(|_: Request<String>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(String::new()))
/// });
/// infobip_auth::ScopeCheck::new(inner);
/// ```
///
/// A transport built and dropped:
/// ```compile_fail
/// #![deny(unused_must_use)]
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::service_fn;
/// infobip_auth::source::Transport::new(service_fn(|_: Request<Full<Bytes>>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
/// }));
/// ```
#[cfg(doctest)]
pub struct MustUseDoctests;

/// The `reqwest` feature's values whose drop is a bug; the first block uses them all.
///
/// ```
/// #![deny(unused_must_use)]
/// let layer = infobip_auth::InfobipAuthLayer::api_key("key").map_err(|e| e.to_string())?;
/// let _middleware = layer.reqwest_middleware();
/// let _policy = infobip_auth::reqwest::redirect_policy();
/// # Ok::<(), String>(())
/// ```
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let layer = infobip_auth::InfobipAuthLayer::api_key("key").map_err(|e| e.to_string())?;
/// layer.reqwest_middleware();
/// # Ok::<(), String>(())
/// ```
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// infobip_auth::reqwest::redirect_policy();
/// ```
#[cfg(all(doctest, feature = "reqwest"))]
pub struct ReqwestMustUseDoctests;
