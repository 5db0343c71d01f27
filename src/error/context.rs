//! What an error's kind leaves unsaid: which side refused a credential, or how a fetch ended
//! without a result. It changes the words of the message only, so callers' `match`es on the
//! kind keep working.

use std::fmt;

/// Where an [`Error`](crate::Error) arose, when its kind alone does not tell a reader what to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Context {
    /// A token endpoint refused what the source asks a token with (a client secret, a
    /// password, an authorization code): the source has no credential.
    TokenRequest,
    /// A token endpoint refused to refresh an Exchange token: only a new authorization helps.
    RefreshRefused,
    /// An API answered `401` to the credential a request carried; `renews` says whether the
    /// source can replace it.
    Refused { renews: bool },
    /// A fetch or revocation ended without a result of its source's.
    Ended(Ended),
}

/// How a fetch (or revocation) ended without a result of its source's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
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
            Self::Cancelled => {
                "no result: the token source's task was cut off as its runtime shut down"
            }
            Self::Panicked => "no result: the token source panicked",
            Self::Revoked => "no credential: `revoke()` ended the new credential as it arrived",
        })
    }
}
