//! [`Transport`]: how token sources reach token endpoints.
//!
//! Any `tower` service from `Request<Full<Bytes>>` to `Response<impl Body>` will do: a
//! hyper-util client, the embedded [`mock`](crate::mock) server's client, a test `service_fn`.
//! Answers are read up to a size limit, and each exchange has a timeout.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;
use tower_service::Service;
use zeroize::Zeroizing;

use crate::sync::lock;
#[cfg(feature = "tracing")]
use crate::trace::event;
use crate::{ApiError, BoxError, ConfigError, Credential, Error, ErrorKind};

/// A token endpoint's answer, read whole.
pub(crate) type Answer = Response<Bytes>;

/// Any client's answer body, boxed.
type AnyBody = UnsyncBoxBody<Bytes, BoxError>;

/// The HTTP client token sources use, with a response size limit and a timeout.
///
/// The timeout is tokio's: a token request outside a tokio runtime, or on one built without
/// timers, fails at once with [`ErrorKind::Config`] saying so.
///
/// A refused connection (and, through reqwest, any failure to connect) is told from a request
/// sent and left unanswered: ending an IBSSO [`Session`](crate::source::Session) relies on it.
/// A layer that wraps the client's error should keep it as the source; any other failure is
/// taken as possibly sent. So the client must not retry a request that may have been sent (a
/// retry layer, a reqwest retry policy beyond its default, which retries only what the server
/// refused unread): a retry that meets a refused connection would pass a `DELETE` that
/// arrived for one that never left, and the session it ended would be sent until its `401`.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use infobip_auth::source::{ClientCredentials, TokenSource, Transport};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// // Any tower HTTP service carries the token requests; this one answers them itself.
/// let client = tower::service_fn(|_: Request<Full<Bytes>>| async {
///     let token = r#"{"access_token":"a1b2c3","token_type":"Bearer","expires_in":3600}"#;
///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(token))))
/// });
/// let transport = Transport::new(client)
///     .timeout(Duration::from_secs(5))
///     .max_response_bytes(16 * 1024);
/// let oauth = ClientCredentials::builder("https://xyz12.api.infobip.com", "client-id", "client-secret")
///     .transport(transport)
///     .build()?;
/// assert_eq!(oauth.fetch(None).await?.header(), "Bearer a1b2c3");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Transport {
    service: BoxCloneSyncService<Request<Full<Bytes>>, Response<AnyBody>, BoxError>,
    timeout: Duration,
    limit: usize,
}

/// A client that is `Send` but maybe not `Sync`, made shareable by the tasks that fetch tokens:
/// a clone is taken under the lock, once per token request, and calls need no lock.
struct Shareable<S>(Mutex<S>);

impl<S: Clone> Clone for Shareable<S> {
    fn clone(&self) -> Self {
        Self(Mutex::new(lock(&self.0).clone()))
    }
}

impl<S: Service<R>, R> Service<R> for Shareable<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .call(request)
    }
}

/// Token answers are a few hundred bytes; 64 KiB leaves room for an account with many roles.
const DEFAULT_LIMIT: usize = 64 * 1024;
/// Long enough for a slow token endpoint, short enough that waiting requests are not stuck.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl Transport {
    /// Wraps an HTTP client service. It need not be `Sync` (a `BoxCloneService` will do): each
    /// token request takes its own clone.
    ///
    /// ```
    /// # use bytes::Bytes;
    /// # use http_body_util::Full;
    /// use hyper_util::client::legacy::Client;
    /// use hyper_util::rt::TokioExecutor;
    /// use infobip_auth::mock::{MockServer, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
    /// use infobip_auth::source::{ClientCredentials, TokenSource, Transport};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let server = MockServer::start().await?; // Infobip-compatible, on loopback
    /// let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    /// let oauth = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    ///     .transport(Transport::new(client))
    ///     .build()?;
    /// assert_eq!(oauth.fetch(None).await?.scheme(), "Bearer");
    /// assert_eq!(server.counters().oauth_token_requests, 1);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn new<S, B>(service: S) -> Self
    where
        S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let service = service
            .map_err(Into::into)
            .map_response(|response: Response<B>| {
                response.map(|body| body.map_err(Into::into).boxed_unsync())
            });
        Self {
            service: BoxCloneSyncService::new(Shareable(Mutex::new(service))),
            timeout: DEFAULT_TIMEOUT,
            limit: DEFAULT_LIMIT,
        }
    }

    /// The longest a token exchange may take, answer included (default 30 s).
    ///
    /// ```
    /// # use infobip_auth::source::{ClientCredentials, TokenSource, Transport};
    /// # use infobip_auth::ErrorKind;
    /// # use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // A token endpoint that never answers.
    /// let silent = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| {
    ///     std::future::pending::<Result<http::Response<String>, std::convert::Infallible>>()
    /// });
    /// let transport = Transport::new(silent).timeout(Duration::from_secs(10));
    /// # let oauth = ClientCredentials::builder("https://xyz12.api.infobip.com", "client-id", "client-secret")
    /// #     .transport(transport)
    /// #     .build()?;
    /// // On tokio's paused clock: the fetch gives up after 10 seconds, not the default 30.
    /// let start = tokio::time::Instant::now();
    /// let err = oauth.fetch(None).await.err().ok_or("answered")?;
    /// assert!(matches!(err.kind(), ErrorKind::Timeout));
    /// assert_eq!(start.elapsed(), Duration::from_secs(10));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest answer read, in bytes (default 64 KiB); a larger one is
    /// [`ErrorKind::ResponseTooLarge`]. An error answer keeps its status, its body cut at the
    /// limit.
    ///
    /// ```
    /// # use infobip_auth::source::{ClientCredentials, TokenSource, Transport};
    /// # use infobip_auth::ErrorKind;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // A token endpoint that answers with 10 KiB.
    /// let verbose = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(" ".repeat(10 * 1024)))
    /// });
    /// let transport = Transport::new(verbose).max_response_bytes(8 * 1024);
    /// # let oauth = ClientCredentials::builder("https://xyz12.api.infobip.com", "client-id", "client-secret")
    /// #     .transport(transport)
    /// #     .build()?;
    /// let err = oauth.fetch(None).await.err().ok_or("read whole")?;
    /// assert!(matches!(err.kind(), ErrorKind::ResponseTooLarge { limit: 8192, .. }));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Sends `request`, reads the answer whole (up to the limit) within the timeout.
    pub(crate) async fn send(&self, request: Request<Full<Bytes>>) -> Result<Answer, Error> {
        let limit = self.limit;
        let sent = SentAt(tokio::time::Instant::now());
        #[cfg(feature = "tracing")]
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        let exchange = async {
            let response = self
                .service
                .clone()
                .oneshot(request)
                .await
                .map_err(transport)?;
            let (parts, body) = response.into_parts();
            let body = read_capped(body, limit, !parts.status.is_success()).await?;
            let mut answer = Response::from_parts(parts, body);
            answer.extensions_mut().insert(sent);
            Ok(answer)
        };
        // Not `?`: a timeout is traced like any other failure below.
        let timed = crate::timer::start(
            "a token request needs a tokio runtime, and none runs here",
            || tokio::time::timeout(self.timeout, exchange),
        );
        let answer = match timed {
            Ok(timed) => timed
                .await
                .unwrap_or_else(|_| Err(Error::new(ErrorKind::Timeout))),
            Err(error) => Err(error),
        };
        #[cfg(feature = "tracing")]
        match &answer {
            Ok(answer) => {
                event!(debug, %method, path, status = answer.status().as_u16(), "token endpoint answered")
            }
            Err(error) => event!(
                debug,
                %method,
                path,
                error = crate::trace::with_causes(error),
                "token endpoint unreachable"
            ),
        }
        answer
    }

    /// POSTs a form (`application/x-www-form-urlencoded`) whose values may be secrets.
    pub(crate) async fn post_form(
        &self,
        uri: Uri,
        fields: &[(&str, &str)],
    ) -> Result<Answer, Error> {
        self.post_form_authorized(uri, fields, None).await
    }

    /// POSTs a form with an `Authorization` header when one is given (an OAuth client's HTTP
    /// Basic authentication, RFC 6749 §2.3.1), with the secrets that header carries: they are
    /// kept out of an error answer as the form's secret fields are.
    pub(crate) async fn post_form_authorized(
        &self,
        uri: Uri,
        fields: &[(&str, &str)],
        authorization: Option<(&HeaderValue, &[&str])>,
    ) -> Result<Answer, Error> {
        let body = form_body(fields);
        let (authorization, header_secrets) = authorization.unzip();
        let secrets: Vec<&str> = fields
            .iter()
            .filter(|(name, _)| SECRET_FIELDS.contains(name))
            .map(|(_, value)| *value)
            .chain(header_secrets.into_iter().flatten().copied())
            .collect();
        self.post(
            uri,
            "application/x-www-form-urlencoded",
            body.as_bytes(),
            authorization,
            &secrets,
        )
        .await
    }

    /// POSTs a JSON document whose values may be secrets. Any `Serialize` value will do (a
    /// `serde_json::Value`, or a struct borrowing the secret, so that no copy of it is left
    /// behind un-zeroized); the encoded body is zeroized once sent. `secrets` are the values
    /// an error answer must not show (see [`check_status`]).
    pub(crate) async fn post_json<T: Serialize + ?Sized>(
        &self,
        uri: Uri,
        json: &T,
        secrets: &[&str],
    ) -> Result<Answer, Error> {
        let unencodable = |_| {
            Error::from(ConfigError::Invalid {
                what: "request body",
                reason: "it could not be encoded as JSON",
            })
        };
        // Measured, then written into memory of that size: a buffer that grew would leave
        // copies of the secret in the memory it freed.
        let mut measured = Measured(0);
        serde_json::to_writer(&mut measured, json).map_err(unencodable)?;
        let mut body = Zeroizing::new(Vec::with_capacity(measured.0));
        serde_json::to_writer(&mut *body, json).map_err(unencodable)?;
        self.post(uri, "application/json", &body, None, secrets)
            .await
    }

    async fn post(
        &self,
        uri: Uri,
        content_type: &'static str,
        body: &[u8],
        authorization: Option<&HeaderValue>,
        secrets: &[&str],
    ) -> Result<Answer, Error> {
        let body = Bytes::from_owner(Zeroizing::new(body.to_vec()));
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, content_type)
            .header(ACCEPT, "application/json");
        if let Some(authorization) = authorization {
            request = request.header(http::header::AUTHORIZATION, authorization.clone());
        }
        let request = request.body(Full::new(body)).map_err(unbuildable)?;
        Ok(keep_secrets(self.send(request).await?, secrets))
    }

    /// Sends a request with only an `Authorization` header (ending an IBSSO session).
    pub(crate) async fn send_authorized(
        &self,
        method: Method,
        uri: Uri,
        authorization: &HeaderValue,
    ) -> Result<Answer, Error> {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::AUTHORIZATION, authorization.clone())
            .header(ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(unbuildable)?;
        let token = authorization.to_str().ok().and_then(|v| v.split_once(' '));
        let secrets: Vec<&str> = token.map(|(_, token)| token).into_iter().collect();
        Ok(keep_secrets(self.send(request).await?, &secrets))
    }
}

/// The form fields of the token requests made here that carry secrets (RFC 6749's
/// `client_secret` and `code` (which carries the token in an Exchange refresh), RFC 7636's
/// `code_verifier`).
const SECRET_FIELDS: [&str; 3] = ["client_secret", "code", "code_verifier"];

/// The secrets a token request carried, kept with its error answer: a gateway that echoes the
/// request it refused would otherwise put them in the error [`check_status`] builds, and from
/// there in logs.
#[derive(Clone)]
struct SentSecrets(Vec<Zeroizing<String>>);

fn keep_secrets(mut answer: Answer, secrets: &[&str]) -> Answer {
    if !answer.status().is_success() && !secrets.is_empty() {
        let kept = secrets.iter().map(|s| Zeroizing::new((*s).to_owned()));
        answer.extensions_mut().insert(SentSecrets(kept.collect()));
    }
    answer
}

/// Reads `body` whole, refusing it as soon as it is known to exceed `limit` bytes (from its
/// announced length, or while reading). A body error (a truncated answer, a dropped
/// connection) is a transport error.
///
/// An error answer's body is `cut` at the limit instead: its status and `Retry-After` tell the
/// caller what to do (a gateway's `503` with a large page is still a transient `503`), and
/// only the first bytes of its page are ever shown.
///
/// Written with `frame()` rather than `http_body_util::Limited`: `Limited` requires
/// `B::Error: Into<BoxError>`, which for a `BoxError` body makes rustc's `Send` check of the
/// callers' futures fail ("implementation of `From` is not general enough").
async fn read_capped(mut body: AnyBody, limit: usize, cut: bool) -> Result<Bytes, Error> {
    let too_large = || Error::new(ErrorKind::ResponseTooLarge { limit });
    if !cut && body.size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(too_large());
    }
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| transport(Box::new(BrokenAnswer(err))))?;
        if let Ok(data) = frame.into_data() {
            let room = limit.saturating_sub(read.len());
            if data.len() > room {
                if cut {
                    read.extend_from_slice(&data[..room]);
                    break;
                }
                return Err(too_large());
            }
            read.extend_from_slice(&data);
        }
    }
    Ok(read.freeze())
}

/// When a token request was sent, kept in its answer's extensions: the server made the token
/// when the request reached it, so a lifetime it states counts from then, not from the answer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SentAt(tokio::time::Instant);

/// A credential made from `answer` that expires `lifetime` after its request was sent.
pub(crate) fn expires_after_sent(
    credential: Credential,
    answer: &Answer,
    lifetime: Duration,
) -> Credential {
    let sent = answer.extensions().get::<SentAt>().map(|sent| sent.0);
    match sent.and_then(|sent| sent.checked_add(lifetime)) {
        Some(at) => credential.expires_at(at),
        None => credential.expires_in(lifetime),
    }
}

/// OAuth's `error` code, read on its own: Infobip's token endpoint sends it beside a
/// `requestError`, whose `messageId` is the code [`ApiError`] shows.
fn oauth_error(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
    }
    serde_json::from_slice::<OAuthError>(body)
        .ok()
        .map(|e| e.error)
}

/// A broken exchange. Takes `BoxError` itself, not `impl Into<BoxError>`: the identity
/// conversion inside the async fns above trips rustc's `Send` check of their futures
/// ("implementation of `From` is not general enough").
fn transport(err: BoxError) -> Error {
    Error::new(ErrorKind::Transport).with_source(err)
}

/// A body that failed once the answer's status had come: the request was sent, whatever the
/// error that broke the body says (a client may relay a refused connection there).
#[derive(Debug)]
struct BrokenAnswer(BoxError);

impl fmt::Display for BrokenAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the answer broke off after its status")
    }
}

impl std::error::Error for BrokenAnswer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Whether `err` is a token request that never left this machine: the client could not
/// connect, so the server knows nothing of it. A refused connection says so whatever the
/// client (TCP refuses only a connection being made, never one that carried a request), and
/// reqwest also tells a host it could not resolve or a TLS handshake that failed. Any other
/// failure, a timeout among them, may have come after the request was sent; so may anything
/// that broke an answer's body, whose status proves the request arrived.
pub(crate) fn never_sent(err: &Error) -> bool {
    matches!(err.kind(), ErrorKind::Transport)
        && crate::error::causes(err)
            .take_while(|cause| !cause.is::<BrokenAnswer>())
            .any(|cause| {
                #[cfg(feature = "reqwest")]
                if cause
                    .downcast_ref::<::reqwest::Error>()
                    .is_some_and(::reqwest::Error::is_connect)
                {
                    return true;
                }
                cause
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
            })
}

/// A writer that only counts the bytes written to it.
struct Measured(usize);

impl std::io::Write for Measured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `fields` as an `application/x-www-form-urlencoded` body, written into memory sized for the
/// longest encoding up front: a buffer that grew would leave copies of a secret in the memory
/// it freed, which nothing wipes.
pub(crate) fn form_body(fields: &[(&str, &str)]) -> Zeroizing<String> {
    let mut body = Zeroizing::new(String::with_capacity(longest_form(fields)));
    form_urlencoded::Serializer::new(&mut *body)
        .extend_pairs(fields)
        .finish();
    body
}

/// The longest `fields` can be as a form: three characters at most per byte, and a `=` and a
/// `&` per field.
fn longest_form(fields: &[(&str, &str)]) -> usize {
    fields
        .iter()
        .map(|(name, value)| 3 * (name.len() + value.len()) + 2)
        .sum()
}

/// `value` encoded as a form value (space as `+`), in memory sized for it up front, as
/// [`form_body`] is.
pub(crate) fn form_encoded(value: &str) -> Zeroizing<String> {
    let mut encoded = Zeroizing::new(String::with_capacity(3 * value.len()));
    encoded.extend(form_urlencoded::byte_serialize(value.as_bytes()));
    encoded
}

/// A request that could not be built.
fn unbuildable(err: http::Error) -> Error {
    Error::new(ErrorKind::Transport).with_source(err)
}

/// Turns an error status into its typed [`Error`]: `401`, and a `400` whose OAuth error code
/// refuses the client or its grant (RFC 6749, section 5.2), are
/// [`InvalidCredentials`](ErrorKind::InvalidCredentials); anything else not `2xx` is
/// [`TokenEndpoint`](ErrorKind::TokenEndpoint). `Retry-After` is kept. Whatever the request
/// carried as a secret is taken out of the server's words.
pub(crate) fn check_status(answer: &Answer) -> Result<(), Error> {
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let secrets = answer
        .extensions()
        .get()
        .map(|SentSecrets(secrets)| &secrets[..]);
    let api = ApiError::from_body_redacting(status, answer.body(), secrets.unwrap_or_default());
    let refused_client = status == StatusCode::BAD_REQUEST
        && matches!(
            oauth_error(answer.body()).as_deref(),
            Some("invalid_client" | "unauthorized_client" | "invalid_grant")
        );
    let error = if status == StatusCode::UNAUTHORIZED || refused_client {
        Error::new(ErrorKind::InvalidCredentials(api))
            .with_context(crate::error::Context::TokenRequest)
    } else {
        Error::new(ErrorKind::TokenEndpoint(api))
    };
    Err(match retry_after(answer) {
        Some(delay) => error.with_retry_after(delay),
        None => error,
    })
}

/// Reads a successful JSON answer into `T`. The reason given for a malformed answer never
/// quotes the body, which may hold a token.
pub(crate) fn json<T: DeserializeOwned>(answer: &Answer) -> Result<T, Error> {
    check_status(answer)?;
    serde_json::from_slice(answer.body()).map_err(|err| {
        let what = match err.classify() {
            serde_json::error::Category::Io | serde_json::error::Category::Syntax => "not JSON",
            serde_json::error::Category::Eof => "truncated JSON",
            serde_json::error::Category::Data => "JSON of an unexpected shape",
        };
        Error::new(ErrorKind::MalformedResponse {
            reason: format!("{what} (line {}, column {})", err.line(), err.column()),
        })
    })
}

/// The credential `scheme token` for a token read from an answer. A token a header cannot
/// carry (empty, or holding a space, CR, LF or other invisible byte) is a malformed answer,
/// never a header injection.
pub(crate) fn token_credential(scheme: &str, token: &str) -> Result<Credential, Error> {
    Credential::new(scheme, token).map_err(|_| {
        Error::new(ErrorKind::MalformedResponse {
            reason: "the token is empty or holds characters a header cannot carry".into(),
        })
    })
}

/// A count of seconds sent as a JSON number or a numeric string (`expires_in`: Infobip's
/// examples disagree on which); `None` for anything else. A string past `f64` (`"1e400"`) is
/// the largest `f64` of its sign, as the same number unquoted is ([`any_number`]); words that
/// Rust would read as numbers (`"inf"`, `"NaN"`) are no count.
pub(crate) fn seconds(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => {
            let s = s.trim();
            let numeric = s
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
            let seconds: f64 = s.parse().ok().filter(|_| numeric)?;
            Some(seconds.clamp(f64::MIN, f64::MAX))
        }
        _ => None,
    }
}

/// Reads a field such as `expires_in` as any JSON value, keeping a number JSON allows but
/// `f64` cannot hold (`1e400`; serde_json refuses the whole answer for it): such a number
/// becomes the largest `f64` of its sign, which every reader of a lifetime bounds anyway.
pub(crate) fn any_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
    let text = raw.get();
    Ok(Some(serde_json::from_str(text).unwrap_or_else(
        |_| match text.as_bytes().first() {
            Some(b'-') => serde_json::Value::from(f64::MIN),
            Some(b'0'..=b'9') => serde_json::Value::from(f64::MAX),
            _ => serde_json::Value::Null,
        },
    )))
}

/// The longest `Retry-After` honoured: a server asking for more is asked again after this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` as delay-seconds (the form Infobip uses) or as an HTTP date (RFC 9110,
/// section 10.2.3); a date already past means now, and more seconds than a `u64` holds the
/// longest wait. Anything else is ignored.
fn retry_after(answer: &Answer) -> Option<Duration> {
    let value = answer.headers().get(RETRY_AFTER)?.to_str().ok()?.trim();
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let delay = if digits {
        value
            .parse::<u64>()
            .map_or(MAX_RETRY_AFTER, Duration::from_secs)
    } else {
        httpdate::parse_http_date(value)
            .ok()?
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.limit)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "reqwest")]
mod reqwest;

#[cfg(test)]
mod endpoint_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn _is_send<T: Send>(_: &T) {}

    /// Compile-time check: token sources await these inside `fetch`, whose future must be
    /// `Send` (see the note in [`Transport::send`]).
    fn _futures_are_send(transport: &Transport, uri: Uri, value: &str) {
        let fields = [("name", value)];
        _is_send(&transport.post_form(uri.clone(), &fields));
        _is_send(&transport.post_json(uri, &serde_json::Value::Null, &[value]));
    }

    fn answering(body: &'static [u8]) -> Transport {
        Transport::new(tower::service_fn(
            move |_: Request<Full<Bytes>>| async move {
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                    body,
                ))))
            },
        ))
    }

    fn with_retry_after(value: &str) -> Answer {
        Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .header(RETRY_AFTER, value)
            .body(Bytes::new())
            .unwrap_or_default()
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        assert_eq!(
            retry_after(&with_retry_after("120")),
            Some(Duration::from_secs(120))
        );
        let in_a_minute = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
        let delay = retry_after(&with_retry_after(&in_a_minute)).unwrap_or_default();
        // Whole seconds, read a moment after being written.
        assert!(
            (Duration::from_secs(58)..=Duration::from_secs(60)).contains(&delay),
            "{delay:?}"
        );
        assert_eq!(
            retry_after(&with_retry_after("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO),
            "a date already past means now"
        );
        assert_eq!(
            retry_after(&with_retry_after("86400")),
            Some(MAX_RETRY_AFTER)
        );
        // More seconds than a u64 holds is still a long wait, not no wait at all.
        assert_eq!(
            retry_after(&with_retry_after("99999999999999999999")),
            Some(MAX_RETRY_AFTER)
        );
        for ignored in ["soon", "-5", "+5", "1.5", ""] {
            assert_eq!(retry_after(&with_retry_after(ignored)), None, "{ignored:?}");
        }
    }

    #[test]
    fn an_oauth_refusal_beside_a_request_error_is_invalid_credentials() {
        // Infobip's `OAuthApiException`: the deprecated `error` and a `requestError`.
        let answer = Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Bytes::from_static(
                br#"{"error":"invalid_client","requestError":{"serviceException":{"messageId":"BAD_REQUEST","text":"Bad client"}}}"#,
            ))
            .unwrap_or_default();
        let kind = check_status(&answer).err().map(|e| e.kind().clone());
        assert!(
            matches!(&kind, Some(ErrorKind::InvalidCredentials(api)) if api.code() == Some("BAD_REQUEST")),
            "{kind:?}"
        );
    }

    #[tokio::test]
    async fn reads_answers_up_to_the_limit_and_no_further() -> Result<(), Error> {
        let uri = Uri::from_static("http://127.0.0.1/token");
        let answer = answering(b"0123456789")
            .max_response_bytes(10)
            .post_form(uri.clone(), &[])
            .await?;
        assert_eq!(answer.body().as_ref(), b"0123456789");
        let refused = answering(b"0123456789A")
            .max_response_bytes(10)
            .post_form(uri, &[])
            .await;
        assert!(matches!(
            refused.as_ref().map_err(Error::kind),
            Err(ErrorKind::ResponseTooLarge { limit: 10 })
        ));
        Ok(())
    }

    #[tokio::test]
    async fn only_a_connection_never_made_counts_as_never_sent() -> Result<(), BoxError> {
        // Bound but not listening: every connection to it is refused.
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let uri = format!("http://{}/auth/1/session", socket.local_addr()?);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let refused = || async {
            let request = Request::delete(&uri).body(Full::default())?;
            let err = client.request(request).await.err().ok_or("connected")?;
            Ok::<_, BoxError>(Box::new(err) as BoxError)
        };
        assert!(never_sent(&transport(refused().await?)));
        // A layer of the caller's may wrap it in an `io::Error`, whose `source` skips it.
        let wrapped = std::io::Error::other(refused().await?);
        assert!(never_sent(&transport(Box::new(wrapped))));
        // Any client's refused connection, and nothing that may come after sending.
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(never_sent(&transport(Box::new(refused))));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!never_sent(&transport(Box::new(reset))));
        assert!(!never_sent(&Error::new(ErrorKind::Timeout)));
        Ok(())
    }

    /// A JSON value of any shape, with numbers at the edges of what JSON and `f64` hold.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            ".{0,12}".prop_map(serde_json::Value::from),
            "[-+ ]?[0-9]{0,400}(\\.[0-9]{0,3})?(e[-+]?[0-9]{1,4})?"
                .prop_map(serde_json::Value::from),
            prop_oneof![
                Just("inf"),
                Just("NaN"),
                Just("-0"),
                Just("1e400"),
                Just(" 5 ")
            ]
            .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            proptest::collection::vec(inner, 0..4).prop_map(serde_json::Value::from)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        // The form a token request sends is the standard encoding, and fits the memory sized
        // for it up front (so no growth copied a secret), whatever the bytes.
        #[test]
        fn a_form_body_fits_its_memory_and_encodes_as_serde_urlencoded(
            fields in proptest::collection::vec((".{0,12}", prop_oneof![".{0,24}", "[%&=+ \u{0}-\u{1f}é€😀]{0,24}"]), 0..5),
        ) {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let body = form_body(&fields);
            prop_assert!(body.len() <= longest_form(&fields), "{} > {}", body.len(), longest_form(&fields));
            prop_assert_eq!(body.as_str(), serde_urlencoded::to_string(&fields).unwrap_or_default());
            for (_, value) in &fields {
                let encoded = form_encoded(value);
                prop_assert!(encoded.len() <= 3 * value.len());
                let expected = serde_urlencoded::to_string([("", value)]).unwrap_or_default();
                prop_assert_eq!(format!("={}", *encoded), expected);
            }
        }

        #[test]
        fn retry_after_never_panics_and_stays_bounded(value in prop_oneof![
            "[0-9]{0,30}",
            "[ -~]{0,40}",
            "(Mon|Sun|Xyz), [0-9]{1,2} (Jan|Feb|Oct) [0-9]{1,5} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
        ]) {
            let Ok(header) = http::HeaderValue::from_str(&value) else {
                return Ok(());
            };
            let answer = Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .header(RETRY_AFTER, header)
                .body(Bytes::new())
                .unwrap_or_default();
            prop_assert!(retry_after(&answer).is_none_or(|delay| delay <= MAX_RETRY_AFTER));
        }

        #[test]
        fn seconds_are_finite_or_none(value in json_value()) {
            prop_assert!(seconds(&value).is_none_or(f64::is_finite));
        }

        #[test]
        fn a_token_from_an_answer_is_a_credential_or_a_malformed_answer(
            scheme in prop_oneof![Just("Bearer".to_owned()), ".{0,8}".prop_map(String::from)],
            token in prop_oneof![".{0,40}", "[!-~]{8,40}", "[!-~]{4,10}[\r\n\0 ][!-~]{4,10}"],
        ) {
            match token_credential(&scheme, &token) {
                Ok(credential) => {
                    prop_assert_eq!(credential.expose_token(), token.as_str());
                    let shown = format!("{credential:?}");
                    prop_assert!(token.len() < 8 || !shown.contains(&token), "{}", shown);
                }
                Err(err) => {
                    prop_assert!(
                        matches!(err.kind(), ErrorKind::MalformedResponse { .. }),
                        "{:?}",
                        err
                    );
                    let shown = format!("{err} {err:?}");
                    prop_assert!(token.len() < 8 || !shown.contains(&token), "{}", shown);
                }
            }
        }

        #[test]
        fn any_answer_is_read_or_refused_without_quoting_it(
            status in prop_oneof![Just(200u16), 100u16..600],
            body in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200),
                json_value().prop_map(|v| v.to_string().into_bytes()),
                "\\{\"access_token\":\"[!-~]{8,20}\",\"expires_in\":.{0,8}\\}"
                    .prop_map(String::into_bytes),
            ],
        ) {
            #[derive(Deserialize)]
            #[allow(dead_code)]
            struct Granted {
                access_token: String,
                expires_in: Option<serde_json::Value>,
            }
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let answer = Response::builder()
                .status(status)
                .body(Bytes::from(body))
                .unwrap_or_default();
            if let Err(err) = json::<Granted>(&answer)
                && let ErrorKind::MalformedResponse { reason } = err.kind()
            {
                prop_assert!(status.is_success());
                prop_assert!(reason.starts_with("not JSON")
                    || reason.starts_with("truncated JSON")
                    || reason.starts_with("JSON of an unexpected shape"), "{}", reason);
            }
        }
    }
}
