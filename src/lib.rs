//! Tower middleware that authenticates outgoing requests to the Infobip API.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
