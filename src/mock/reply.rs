//! Building answers and reading requests: Infobip-shaped error bodies, JSON answers, body size
//! limits, content-type and form checks. Every refusal here is a `4xx` with a body saying why.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};

use crate::BoxError;

/// The body of every answer.
pub(crate) type Body = BoxBody<Bytes, BoxError>;

/// An answer.
pub(crate) type Reply = Response<Body>;

/// The largest request body the server reads, in bytes.
const MAX_BODY: usize = 64 * 1024;

/// The service error that makes hyper drop the connection without answering.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fault injected: connection dropped")
    }
}

impl std::error::Error for DropConnection {}

/// A body holding exactly `bytes`.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An answer with `content_type` and exactly `body`.
pub(crate) fn raw(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut reply = Response::new(full(body));
    *reply.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(content_type) {
        reply.headers_mut().insert(CONTENT_TYPE, value);
    }
    reply
}

/// A JSON answer.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    raw(status, "application/json", value.to_string())
}

/// An answer with no body.
pub(crate) fn empty(status: StatusCode) -> Reply {
    let mut reply = Response::new(full(Bytes::new()));
    *reply.status_mut() = status;
    reply
}

/// Infobip's error body: `{"requestError":{"serviceException":{"messageId","text"}}}`.
pub(crate) fn error(status: StatusCode, message_id: &str, text: &str) -> Reply {
    json(status, &error_body(message_id, text))
}

fn error_body(message_id: &str, text: &str) -> serde_json::Value {
    serde_json::json!({
        "requestError": {"serviceException": {"messageId": message_id, "text": text}}
    })
}

/// Infobip's error body for `status`, with the `messageId` and `text` of its OpenAPI examples
/// (e.g. `TOO_MANY_REQUESTS`, "Too many requests" for `429`), or the status's reason in
/// capitals for the statuses it documents none for.
pub(crate) fn documented_error(status: StatusCode) -> Reply {
    let documented = match status {
        StatusCode::BAD_REQUEST => Some(("BAD_REQUEST", "Bad request")),
        StatusCode::UNAUTHORIZED => Some(("UNAUTHORIZED", "Unauthorized")),
        StatusCode::FORBIDDEN => Some(("FORBIDDEN", "Forbidden")),
        StatusCode::NOT_FOUND => Some(("NOT_FOUND", "Not found")),
        StatusCode::TOO_MANY_REQUESTS => Some(("TOO_MANY_REQUESTS", "Too many requests")),
        StatusCode::INTERNAL_SERVER_ERROR => Some((
            "GENERAL_ERROR",
            "Something went wrong. Please contact support.",
        )),
        _ => None,
    };
    if let Some((message_id, text)) = documented {
        return error(status, message_id, text);
    }
    let reason = status.canonical_reason().unwrap_or("Error");
    error(
        status,
        &reason.to_ascii_uppercase().replace([' ', '-'], "_"),
        reason,
    )
}

/// A refused request: the status and the Infobip error body saying why.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    message_id: &'static str,
    text: Cow<'static, str>,
    /// OAuth's `error` code, which Infobip's token endpoint sends beside `requestError`.
    oauth_error: Option<&'static str>,
}

impl Refusal {
    /// `400` with a text saying why.
    pub(crate) fn bad_request(text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message_id: "BAD_REQUEST",
            text: text.into(),
            oauth_error: None,
        }
    }

    /// `401`, as Infobip answers missing, wrong, revoked or expired credentials.
    pub(crate) fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message_id: "UNAUTHORIZED",
            text: Cow::Borrowed("Invalid login details"),
            oauth_error: None,
        }
    }

    /// `401` from the OAuth token endpoint for an unknown client or a wrong secret: Infobip's
    /// `OAuthApiException`, with OAuth's `invalid_client` (RFC 6749, section 5.2) beside the
    /// usual `requestError`.
    pub(crate) fn invalid_client() -> Self {
        Self {
            oauth_error: Some("invalid_client"),
            ..Self::unauthorized()
        }
    }

    /// `403`, as Infobip answers a credential that holds none of the endpoint's scopes.
    pub(crate) fn forbidden() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message_id: "FORBIDDEN",
            text: Cow::Borrowed("Forbidden"),
            oauth_error: None,
        }
    }

    /// `404` for a path no operation has.
    pub(crate) fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message_id: "NOT_FOUND",
            text: Cow::Borrowed("Not found"),
            oauth_error: None,
        }
    }

    /// `405` for a known path asked with another method: see [`method_not_allowed`].
    fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message_id: "METHOD_NOT_ALLOWED",
            text: Cow::Borrowed("Method not allowed"),
            oauth_error: None,
        }
    }

    /// The answer.
    pub(crate) fn into_reply(self) -> Reply {
        let mut body = error_body(self.message_id, &self.text);
        if let Some(code) = self.oauth_error {
            body["error"] = code.into();
        }
        json(self.status, &body)
    }
}

/// `405` for a known path asked with another method, with the `Allow` header RFC 9110
/// §15.5.6 requires: `allowed`, the path's methods (`"GET, HEAD"`).
pub(crate) fn method_not_allowed(allowed: &str) -> Reply {
    let mut reply = Refusal::method_not_allowed().into_reply();
    if let Ok(allowed) = HeaderValue::from_str(allowed) {
        reply.headers_mut().insert(ALLOW, allowed);
    }
    reply
}

/// Reads a whole request body, refusing more than [`MAX_BODY`] bytes.
pub(crate) async fn read_body<B>(body: B) -> Result<Bytes, Refusal>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(Refusal {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message_id: "PAYLOAD_TOO_LARGE",
            text: Cow::Owned(format!("the request body is larger than {MAX_BODY} bytes")),
            oauth_error: None,
        }),
        Err(_) => Err(Refusal::bad_request("the request body could not be read")),
    }
}

/// Refuses a request whose `Content-Type` media type is not `expected` (parameters such as
/// `charset` are allowed).
pub(crate) fn require_content_type(headers: &HeaderMap, expected: &str) -> Result<(), Refusal> {
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    match media_type {
        Some(media_type) if media_type.eq_ignore_ascii_case(expected) => Ok(()),
        Some(other) => Err(Refusal::bad_request(format!(
            "Content-Type must be {expected}, not {other}"
        ))),
        None => Err(Refusal::bad_request(format!(
            "Content-Type must be {expected}"
        ))),
    }
}

/// Fields of a form or query string, each at most once and each among `allowed`.
pub(crate) struct Fields(HashMap<String, String>);

impl Fields {
    /// Parses `application/x-www-form-urlencoded` text, refusing unexpected and repeated
    /// fields.
    pub(crate) fn parse(encoded: &[u8], allowed: &[&str]) -> Result<Self, Refusal> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(encoded)
            .map_err(|_| Refusal::bad_request("the form could not be decoded"))?;
        let mut fields = HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                return Err(Refusal::bad_request(format!("unexpected field `{name}`")));
            }
            if fields.contains_key(&name) {
                return Err(Refusal::bad_request(format!("duplicate field `{name}`")));
            }
            fields.insert(name, value);
        }
        Ok(Self(fields))
    }

    /// A field that may be absent.
    pub(crate) fn optional(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A field that must be present and not empty.
    pub(crate) fn required(&self, name: &str) -> Result<&str, Refusal> {
        match self.optional(name) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(Refusal::bad_request(format!("missing field `{name}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_refuse_unexpected_repeated_and_missing() {
        let allowed = ["a", "b"];
        assert!(Fields::parse(b"a=1&c=2", &allowed).is_err());
        assert!(Fields::parse(b"a=1&a=2", &allowed).is_err());
        let Ok(fields) = Fields::parse(b"a=x%20y&b=", &allowed) else {
            panic!("refused a valid form");
        };
        assert_eq!(fields.optional("a"), Some("x y"));
        assert!(fields.required("b").is_err());
        assert!(fields.required("c").is_err());
    }

    #[test]
    fn content_type_allows_parameters_only() {
        let mut headers = HeaderMap::new();
        assert!(require_content_type(&headers, "application/json").is_err());
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert!(require_content_type(&headers, "application/json").is_ok());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(require_content_type(&headers, "application/json").is_err());
    }
}
