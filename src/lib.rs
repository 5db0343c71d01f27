//! Tower middleware that authenticates outgoing requests to the Infobip API.
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
mod layer;
mod origin;
mod replay;
pub mod scope;
pub mod source;
// Used by the token sources that call token endpoints, merged separately.
#[allow(dead_code)]
mod transport;

#[cfg(test)]
mod test_helpers;

pub use cache::RefreshPolicy;
pub use credential::{Account, Credential, Named};
pub use error::{ApiError, BoxError, ConfigError, Error, ErrorKind, Forbidden};
pub use layer::{InfobipAuth, InfobipAuthLayer};
pub use origin::BaseUrl;
pub use replay::ReplayPolicy;
pub use scope::{AuthScheme, Catalog, Scope, Scopes};
