//! Infobip API scopes.
//!
//! Every authenticated Infobip endpoint requires at least one of its scopes; a credential that
//! holds none of them is answered `403 Forbidden`.

mod set;

pub use set::{Scope, Scopes};
