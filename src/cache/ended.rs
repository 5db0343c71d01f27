//! How a fetch or a revocation ended without a result of its source's, and when its waiters
//! look again. A fetch cut off by its runtime's shutdown is no failure: nothing backs off, and
//! its waiters look again, a bounded number of times.

use crate::error::Context;
pub(super) use crate::error::Ended;
use crate::{Error, ErrorKind};

/// The error of a fetch that ended without a credential or an error of its source's. Its kind
/// stays `Transport` (transient: trying again may succeed); its message says how it ended.
pub(super) fn ended(how: Ended) -> Error {
    Error::new(ErrorKind::Transport).with_context(Context::Ended(how))
}

/// How the fetch behind `result` ended without a result of its source's, if it did.
pub(super) fn how_ended<T>(result: &Result<T, Error>) -> Option<Ended> {
    result.as_ref().err()?.ended()
}

/// Whether a waiter for `result` looks again: its fetch was cut off half-way, or its credential
/// revoked as it arrived.
pub(super) fn looks_again<T>(result: &Result<T, Error>) -> bool {
    matches!(how_ended(result), Some(Ended::Cancelled | Ended::Revoked))
}

/// How many times a wait, `refresh()` or `revoke()` looks again after what it waited for ended
/// without a result of its own (cut off by its runtime's end, or revoked as it arrived): each
/// look starts work that could end so too, so the number is bounded.
pub(super) const LOOKS: u8 = 3;
