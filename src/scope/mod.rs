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

mod catalog;
mod classify;
mod routes;
mod scheme;
mod set;

pub use catalog::{Catalog, Operation};
pub use classify::{classify, preflight};
pub use scheme::AuthScheme;
pub use set::{Scope, Scopes};
