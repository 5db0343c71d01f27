//! Tracing events, compiled in with the `tracing` feature and to nothing without it.
//!
//! Events name the source, the endpoint path, the outcome and durations; never a header value,
//! a token, a password or a body.

#[cfg(feature = "tracing")]
macro_rules! event {
    ($level:ident, $($arg:tt)+) => { ::tracing::$level!(target: "infobip_auth", $($arg)+) };
}

#[cfg(not(feature = "tracing"))]
macro_rules! event {
    ($level:ident, $($arg:tt)+) => {{}};
}

pub(crate) use event;

/// `err` as tracing records an error, so that a subscriber shows its causes too: the words
/// that say which transport error it was, or why the store failed.
#[cfg(feature = "tracing")]
pub(crate) fn with_causes(err: &crate::Error) -> &(dyn std::error::Error + 'static) {
    err
}
