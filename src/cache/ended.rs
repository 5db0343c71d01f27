//! How a fetch or a revocation ended without a result of its source's, and when its waiters
//! look again. A fetch cut off by its runtime's shutdown is no failure: nothing backs off, and
//! its waiters look again, a bounded number of times.

use std::fmt;

use crate::{Error, ErrorKind};

/// The error of a fetch that ended without a credential or an error of its source's.
pub(super) fn ended(how: Ended) -> Error {
    Error::new(ErrorKind::Transport).with_source(how)
}

/// How the fetch behind `result` ended without a result of its source's, if it did.
pub(super) fn how_ended<T>(result: &Result<T, Error>) -> Option<&Ended> {
    let error = result.as_ref().err()?;
    std::error::Error::source(error)?.downcast_ref::<Ended>()
}

/// Whether a waiter for `result` looks again: its fetch was cut off half-way, or its credential
/// revoked as it arrived.
pub(super) fn looks_again<T>(result: &Result<T, Error>) -> bool {
    matches!(how_ended(result), Some(Ended::Cancelled | Ended::Revoked))
}

/// How a fetch ended without a result of its source's.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// Its task was dropped half-way: its runtime shut down.
    Cancelled,
    /// The token source panicked.
    Panicked,
    /// A `revoke()` ended the credential as it arrived.
    Revoked,
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cancelled => "the token request ended without a result (its runtime shut down)",
            Self::Panicked => "the token source panicked",
            Self::Revoked => "the credential was revoked as it arrived",
        })
    }
}

impl std::error::Error for Ended {}

/// How many times a wait, `refresh()` or `revoke()` looks again after what it waited for ended
/// without a result of its own (cut off by its runtime's end, or revoked as it arrived): each
/// look starts work that could end so too, so the number is bounded.
pub(super) const LOOKS: u8 = 3;
