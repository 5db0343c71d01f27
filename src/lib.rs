//! Tower middleware that authenticates outgoing requests to the Infobip API.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
#[cfg(feature = "mock")]
#[cfg_attr(docsrs, doc(cfg(feature = "mock")))]
pub mod mock;
pub mod scope;

pub use error::{ApiError, BoxError, ConfigError, Error, ErrorKind, Forbidden};
pub use scope::{Scope, Scopes};
