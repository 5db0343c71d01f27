//! Tower middleware that authenticates outgoing requests to the Infobip API.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
pub mod scope;

pub use error::{ApiError, BoxError, ConfigError, Error, ErrorKind, Forbidden};
pub use scope::{AuthScheme, Catalog, Scope, Scopes};
