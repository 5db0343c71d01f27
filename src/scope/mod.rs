//! Infobip API scopes, the catalogue of what each operation requires, and the classification
//! of `401` and `403` answers.
//!
//! Every authenticated Infobip endpoint requires at least one of its scopes; a credential that
//! holds none of them is answered `403 Forbidden`, with a body that does not say which scope is
//! missing. This module supplies what the body leaves out:
//!
//! * [`Scope`] and [`Scopes`]: scope names and sets with any-of semantics.
//! * [`Catalog`]: every operation of Infobip's OpenAPI specification (943), looked up by method
//!   and path, with the scopes that grant it and the [`AuthScheme`]s it accepts; callers add or
//!   override entries.
//! * [`classify`]: turns a `401` or `403` answer into an [`Error`](crate::Error) naming the
//!   endpoint, the scopes that would grant it and the scopes held.
//! * [`preflight`]: refuses a request before sending when the endpoint does not accept the
//!   credential's scheme, or when the credential's scopes are known and grant none of the
//!   endpoint's.
//! * [`ScopeCheckLayer`] / [`ScopeCheck`]: both of the above as Tower middleware.
//! * `ScopeClassifier` (feature `tower-http`): a tower-http `MakeClassifier` naming the scopes
//!   behind a `403`, for `TraceLayer::new(ScopeClassifier::new())` and retry policies.
//!
//! # The scope-check layer
//!
//! Put it **inside** [`InfobipAuthLayer`](crate::InfobipAuthLayer), made by
//! [`InfobipAuthLayer::scope_check`](crate::InfobipAuthLayer::scope_check): it then sees the
//! `Authorization` header the auth layer set (hence the scheme), and reads the scopes of the
//! credential the auth layer sends (declared with
//! [`ApiKey::with_scopes`](crate::source::ApiKey::with_scopes), or reported by the token
//! source). Standalone, [`ScopeCheckLayer::new`] knows the scheme from the header and the held
//! scopes only if [`held`](ScopeCheckLayer::held) declares them.
//!
//! The catalogue describes Infobip's API and no other, so only requests to Infobip are judged:
//! those to the hosts the auth layer sends its credential to (its source's base URL, its
//! [`allow_origin`](crate::InfobipAuthLayer::allow_origin) list, or by default any HTTPS host
//! under `infobip.com`), or for a standalone layer its own
//! [`allow_origin`](ScopeCheckLayer::allow_origin) list or the same default. A request to any
//! other host (a caller's own CRM, with its own `Authorization`) passes through untouched: not
//! refused, and its `403` not read. A relative URI (a tonic channel's) names no host; the
//! catalogue is all the check can go by, so it is judged as Infobip's.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use infobip_auth::{Error, ErrorKind, InfobipAuthLayer, source::ApiKey};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
//! const INFOBIP_403: &str = r#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;
//! // Stands in for an HTTP client: Infobip refuses everything with its documented 403 body.
//! let http_client = service_fn(|_: Request<Full<Bytes>>| async {
//!     let mut response = Response::new(Full::new(Bytes::from_static(INFOBIP_403.as_bytes())));
//!     *response.status_mut() = StatusCode::FORBIDDEN;
//!     Ok::<_, std::convert::Infallible>(response)
//! });
//! let sms = || Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced")
//!     .body(Full::new(Bytes::from_static(b"{}")));
//!
//! // A key whose scopes are not declared: the request is sent, and the 403 explained.
//! let auth = InfobipAuthLayer::new(ApiKey::new("003026bbc133714df1834b8638bb496e")?);
//! let client = ServiceBuilder::new()
//!     .layer(auth.clone())
//!     .layer(auth.scope_check())
//!     .service(http_client.clone());
//! let response = client.oneshot(sms()?).await?;
//! let meaning = response.extensions().get::<Error>().cloned().ok_or("not classified")?;
//! assert!(matches!(meaning.kind(), ErrorKind::Forbidden(_)));
//! assert_eq!(
//!     meaning.to_string(),
//!     "forbidden: POST /sms/2/text/advanced needs any of message:send, sms:manage, \
//!      sms:message:send (403 Forbidden FORBIDDEN: Forbidden)",
//! );
//! // The response is the server's, body and all.
//! assert_eq!(response.into_body().collect().await?.to_bytes(), INFOBIP_403);
//!
//! // A key declared to hold `inbound-message:read` only: refused before sending.
//! let key = ApiKey::new("003026bbc133714df1834b8638bb496e")?
//!     .with_scopes("inbound-message:read".parse()?);
//! let auth = InfobipAuthLayer::new(key);
//! let client = ServiceBuilder::new()
//!     .layer(auth.clone())
//!     .layer(auth.scope_check())
//!     .service(http_client);
//! let refused = client.oneshot(sms()?).await.err().ok_or("sent")?;
//! let refused = Error::find(&*refused).ok_or("not ours")?;
//! assert!(refused.to_string().ends_with("; the credential holds inbound-message:read"));
//! # Ok(()) }
//! ```
//!
//! ## How a `403` reaches the caller: the response, with its meaning attached
//!
//! By default a `401` or `403` is returned **as the response**, with an [`Error`](crate::Error)
//! (kind [`Forbidden`](crate::ErrorKind::Forbidden) or
//! [`InvalidCredentials`](crate::ErrorKind::InvalidCredentials)) in its extensions, found with
//! `response.extensions().get::<infobip_auth::Error>()`. Why not `Err`: a Tower client that
//! gets `Err` has lost the response, so its headers (request ids for Infobip support) and body
//! are gone; layers around this one that judge answers by status (`TraceLayer`, retries,
//! metrics) would count a refusal as a transport failure; and the auth layer around this one
//! must see a `401` as a response to renew the credential and replay.
//! [`ScopeCheckLayer::reject_forbidden`] turns a `403` into
//! `Err(Error)`, the same value, for callers who prefer `?`; a `401` stays a response.
//!
//! To classify, the layer reads the start of a `401` or `403` body, at most 64 KiB or 1,024
//! frames ([`read_limit`](ScopeCheckLayer::read_limit)), waiting for it at most 5 s
//! ([`read_timeout`](ScopeCheckLayer::read_timeout)), and never reads the body of any
//! other status. The bytes read are handed out again, then the rest of the body streams from the
//! server: the caller receives exactly what was sent, trailers and body errors included, and
//! an answer larger than the limit is classified from its start (a body in no known shape
//! keeps its first bytes in [`ApiError::raw`](crate::ApiError::raw)) without being held in
//! memory. The response's body type is therefore [`ResponseBody`], which wraps the inner one.
//!
//! ## Pre-flight checks: on by default, refusing only the certain
//!
//! Before sending, the layer refuses, with `Err(Error)` and without calling the inner service:
//!
//! * a request whose endpoint does not accept its authentication scheme
//!   ([`SchemeNotAccepted`](crate::ErrorKind::SchemeNotAccepted)), e.g. an API key sent to the
//!   API-key management endpoints. The specification says so, and Infobip would refuse it.
//! * a request whose credential's scopes are **known** and grant none of the endpoint's
//!   ([`Forbidden`](crate::ErrorKind::Forbidden), with no server answer). Scopes are known only
//!   when you declared them, or the token source reported them: the check then spares a round
//!   trip and puts the refusal where the mistake is. With unknown scopes the request is sent.
//!
//! Endpoints absent from the catalogue, and requests whose scheme is unknown, always pass. The
//! endpoint is found as a server routes the request ([`Catalog::lookup`]): a trailing slash, a
//! percent-encoded unreserved character (`%73` for `s`) or a dot segment (`x/..`) makes no
//! difference, case does.
//! Turn the checks off with [`preflight(false)`](ScopeCheckLayer::preflight) if your catalogue
//! may be older than Infobip's (a scope added to an endpoint since would be refused here), or
//! correct the entry with [`Catalog::with_operation`]. Refusing locally returns an error, not a
//! made-up `403` response: no server answered.
//!
//! # The functions underneath
//!
//! ```
//! use http::{Method, StatusCode};
//! use infobip_auth::scope::{classify, preflight, AuthScheme, Catalog, Scopes};
//! use infobip_auth::ErrorKind;
//!
//! let catalog = Catalog::infobip();
//! let held: Scopes = "inbound-message:read".parse()?;
//!
//! // Known to fail: refused before sending.
//! let refused = preflight(&Method::POST, "/sms/2/text/advanced", Some(AuthScheme::ApiKey),
//!                         Some(&held), &catalog);
//! assert!(matches!(refused.map_err(|e| e.kind().clone()), Err(ErrorKind::Forbidden(_))));
//!
//! // Scopes unknown: sent, and the 403 that comes back is explained.
//! let body = br#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;
//! let err = classify(&Method::POST, "/sms/2/text/advanced", StatusCode::FORBIDDEN, body,
//!                    &catalog, None).ok_or("not classified")?;
//! assert_eq!(
//!     err.to_string(),
//!     "forbidden: POST /sms/2/text/advanced needs any of message:send, sms:manage, \
//!      sms:message:send (403 Forbidden FORBIDDEN: Forbidden)",
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod body;
mod catalog;
mod classify;
#[cfg(feature = "tower-http")]
mod classify_tower_http;
mod future;
mod layer;
#[cfg(feature = "reqwest")]
mod reqwest_check;
pub(crate) mod routes;
mod scheme;
pub(crate) mod set;

pub use body::ResponseBody;
pub use catalog::{Catalog, Operation};
pub use classify::{classify, preflight};
#[cfg(feature = "tower-http")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower-http")))]
pub use classify_tower_http::{ScopeClassifier, ScopeFailureClass, ScopeResponseClassifier};
pub use future::ResponseFuture;
pub use layer::{ScopeCheck, ScopeCheckLayer};
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use reqwest_check::ScopeCheckMiddleware;
pub use scheme::AuthScheme;
pub use set::{Scope, Scopes};

#[cfg(test)]
mod tests;
