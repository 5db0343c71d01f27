//! Tests over HTTP.
