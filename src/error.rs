//! The crate's errors: [`Error`] at request time, [`ConfigError`] at construction.
//!
//! Our own failures reach callers as `Err(BoxError)` wrapping an [`Error`]; find it with
//! [`Error::find`] and `match` on [`Error::kind`]. A `401` the server sent to the layer's
//! credential (and, under the scope check, any `401`, and any `403` unless it rejects them) is
//! passed through as the response, with the [`Error`] in its extensions.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};

use crate::scope::{AuthScheme, Scopes};
pub(crate) use context::{Context, Ended};
use echoes::Echoes;

mod context;
mod echoes;

/// A boxed error, as Tower middleware returns.
///
/// ```
/// use infobip_auth::{BoxError, Error, ErrorKind};
/// // The layers' error type: the crate's own errors and the inner client's both box into it.
/// let ours: BoxError = Error::new(ErrorKind::Timeout).into();
/// assert!(Error::find(&*ours).is_some_and(Error::is_transient));
/// let inner: BoxError = std::io::Error::other("connection reset").into();
/// assert!(Error::find(&*inner).is_none());
/// ```
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a request could not be authenticated or authorized.
///
/// `Clone`, because one failed token request is handed to every caller that waited for it.
/// Never contains a secret: neither its `Display`, nor its `Debug`, nor its source.
///
/// ```
/// use infobip_auth::{Error, ErrorKind};
/// let err = Error::new(ErrorKind::ReauthorizationRequired);
/// assert!(!err.is_transient());
/// assert_eq!(
///     err.to_string(),
///     "the Exchange token has expired or was revoked: the user must authorize the app again"
/// );
/// ```
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    /// A thin pointer (to a box), which keeps `Error` small enough to return.
    source: Option<Arc<crate::BoxError>>,
    retry_after: Option<Duration>,
    previous_ended: bool,
    /// The failed fetch may have ended the previous credential: see
    /// [`Error::with_previous_in_doubt`].
    previous_in_doubt: bool,
    /// A credential still valid that the failed fetch hands back, for the cache to serve while
    /// it backs off (see [`Error::with_fallback`]). Never shown.
    fallback: Option<crate::Credential>,
    /// What the kind leaves unsaid, for the message (see [`Context`]).
    context: Option<Context>,
}

/// What went wrong, for callers to `match` on.
///
/// ```
/// use infobip_auth::{Error, ErrorKind};
/// // `#[non_exhaustive]`: a `match` needs an arm for kinds added later, and a pattern on a
/// // kind marked so itself (`SchemeNotAccepted`, ...) needs `..` for fields added later.
/// fn advice(err: &Error) -> &'static str {
///     match err.kind() {
///         ErrorKind::ReauthorizationRequired => "ask the user to connect the app again",
///         ErrorKind::InvalidCredentials(_) => "check the credentials",
///         ErrorKind::HostNotAllowed { .. } => "allow the origin, or send it elsewhere",
///         _ if err.is_transient() => "try again later",
///         _ => "report it",
///     }
/// }
/// assert_eq!(advice(&Error::new(ErrorKind::Timeout)), "try again later");
/// assert_eq!(advice(&Error::new(ErrorKind::ReauthorizationRequired)), "ask the user to connect the app again");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `401`: the credential is missing, wrong, revoked or expired (Infobip's `UNAUTHORIZED`);
    /// also a token endpoint's `400` with OAuth's `invalid_client`, `unauthorized_client` or
    /// `invalid_grant`, which for an Exchange code means it was used already, expired or is
    /// not this app's: start the authorization again.
    ///
    /// Its message says which side refused: a token endpoint the source's own credentials (a
    /// client secret, a password, a code; the layer returns it as an `Err`), or an API the
    /// credential a request carried (in a `401` response's extensions), and then whether that
    /// credential renews.
    InvalidCredentials(ApiError),
    /// `403`, or refused before sending: the credential holds none of the endpoint's scopes.
    Forbidden(Box<Forbidden>),
    /// Refused before sending: the endpoint does not accept this authentication scheme.
    #[non_exhaustive]
    SchemeNotAccepted {
        /// The request's method.
        method: Method,
        /// The operation's path template from the catalogue, e.g. `/settings/2/api-keys`.
        endpoint: String,
        /// The scheme of the credential, e.g. [`AuthScheme::ApiKey`] (`App`).
        scheme: AuthScheme,
        /// The schemes the endpoint accepts.
        accepted: Vec<AuthScheme>,
    },
    /// A token endpoint answered with an error status.
    TokenEndpoint(ApiError),
    /// The token endpoint could not be reached, or the connection broke. Also a fetch that
    /// ended without a result (its token source panicked, its runtime shut down, or a
    /// `revoke()` ended the credential as it arrived), which its message names.
    Transport,
    /// A token request took longer than its timeout.
    Timeout,
    /// A token endpoint's answer could not be understood. Open to construction: a
    /// [`TokenSource`](crate::source::TokenSource) of your own may report it.
    MalformedResponse {
        /// What was wrong with it (never the body itself, which may hold a token).
        reason: String,
    },
    /// A token endpoint's answer was larger than the limit.
    #[non_exhaustive]
    ResponseTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The authorization-code token has expired: the user must authorize the app again.
    ReauthorizationRequired,
    /// The callback reported an `error` (OAuth 2.0's way to say the authorization was refused).
    #[non_exhaustive]
    AuthorizationDenied {
        /// The `error` parameter of the callback.
        error: String,
        /// The `error_description` parameter, if any.
        description: Option<String>,
    },
    /// The authorization request the callback answers is older than the flow allows
    /// ([`Builder::pending_lifetime`](crate::source::auth_code::Builder::pending_lifetime)):
    /// send the user through the flow again.
    AuthorizationExpired,
    /// A credential store failed: a [`TokenStore`](crate::source::TokenStore) saving or loading
    /// an Exchange token, or the store a [`TokenSource`](crate::source::TokenSource) of your own
    /// reads. The store's own error is the [source](std::error::Error::source); transient, as a
    /// store is usually back after a while.
    Store,
    /// The authorization callback is not the one this flow expects.
    #[non_exhaustive]
    InvalidCallback {
        /// What did not match.
        reason: String,
    },
    /// The request goes to a host the credential was not made for.
    #[non_exhaustive]
    HostNotAllowed {
        /// The scheme and authority of the refused request, e.g. `https://example.com`;
        /// `(no host)` for a URI that names neither (a path, as a tonic channel sends), and
        /// `host (no scheme)` for one with a host alone.
        origin: String,
    },
    /// The token source is configured wrongly.
    Config(ConfigError),
}

impl Error {
    /// An error of `kind` with no source.
    ///
    /// ```
    /// # use infobip_auth::{Error, ErrorKind};
    /// let err = Error::new(ErrorKind::Timeout);
    /// assert!(err.is_transient());
    /// ```
    #[must_use]
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            source: None,
            retry_after: None,
            previous_ended: false,
            previous_in_doubt: false,
            fallback: None,
            context: None,
        }
    }

    /// Attaches the underlying cause, kept in [`std::error::Error::source`].
    ///
    /// ```
    /// # use infobip_auth::{Error, ErrorKind};
    /// use std::error::Error as _;
    /// let io = std::io::Error::other("connection reset");
    /// let err = Error::new(ErrorKind::Transport).with_source(io);
    /// assert!(err.source().is_some());
    /// ```
    #[must_use]
    pub fn with_source(mut self, source: impl Into<crate::BoxError>) -> Self {
        self.source = Some(Arc::new(source.into()));
        self
    }

    /// Records how long the server asked us to wait (`Retry-After`).
    ///
    /// ```
    /// # use infobip_auth::{Error, ErrorKind};
    /// # use std::time::Duration;
    /// let err = Error::new(ErrorKind::Transport).with_retry_after(Duration::from_secs(5));
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
    /// ```
    #[must_use]
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// Marks the failure of a [`TokenSource::fetch`](crate::source::TokenSource::fetch) that had
    /// already ended the `previous` credential it was given (an IBSSO session deleted, then the
    /// new one refused): the cache stops sending that credential at once, instead of serving it
    /// for the rest of its lifetime while the renewal backs off.
    ///
    /// ```
    /// # use infobip_auth::{Error, ErrorKind};
    /// let err = Error::new(ErrorKind::Timeout).with_previous_ended();
    /// assert!(err.is_previous_ended());
    /// ```
    #[must_use]
    pub fn with_previous_ended(mut self) -> Self {
        self.previous_ended = true;
        self
    }

    /// Whether the fetch that failed had already ended the previous credential (see
    /// [`with_previous_ended`](Self::with_previous_ended)).
    ///
    /// ```
    /// # use infobip_auth::{Error, ErrorKind};
    /// assert!(!Error::new(ErrorKind::Transport).is_previous_ended());
    /// ```
    #[must_use]
    pub fn is_previous_ended(&self) -> bool {
        self.previous_ended
    }

    /// Marks the failure of a [`TokenSource::fetch`](crate::source::TokenSource::fetch) whose
    /// request to end the `previous` credential went unanswered (the connection broke, or the
    /// time ran out, after it was sent), so the server may have ended it: the cache stops
    /// sending it, as after [`with_previous_ended`](Self::with_previous_ended), but keeps it
    /// for the next fetch to end first.
    ///
    /// ```
    /// # use infobip_auth::{Error, ErrorKind};
    /// let err = Error::new(ErrorKind::Timeout).with_previous_in_doubt();
    /// assert!(err.is_previous_in_doubt() && !err.is_previous_ended());
    /// ```
    #[must_use]
    pub fn with_previous_in_doubt(mut self) -> Self {
        self.previous_in_doubt = true;
        self
    }

    /// Whether the fetch that failed may have ended the previous credential (see
    /// [`with_previous_in_doubt`](Self::with_previous_in_doubt)).
    ///
    /// ```
    /// # use infobip_auth::{Error, ErrorKind};
    /// assert!(!Error::new(ErrorKind::Transport).is_previous_in_doubt());
    /// ```
    #[must_use]
    pub fn is_previous_in_doubt(&self) -> bool {
        self.previous_in_doubt
    }

    /// Whether the previous credential must not be sent again: the failed fetch ended it, or
    /// may have.
    pub(crate) fn previous_unusable(&self) -> bool {
        self.previous_ended || self.previous_in_doubt
    }

    /// Marks a failed renewal whose source still holds `credential`, valid for a while: the
    /// cache serves it and backs off as after any other failed renewal, instead of taking it
    /// as fresh and trying again only at its next deadline.
    pub(crate) fn with_fallback(mut self, credential: crate::Credential) -> Self {
        self.fallback = Some(credential);
        self
    }

    /// Takes out the credential set by [`with_fallback`](Self::with_fallback), if any.
    pub(crate) fn take_fallback(&mut self) -> Option<crate::Credential> {
        self.fallback.take()
    }

    /// Says where the error arose, in its message (see [`Context`]).
    pub(crate) fn with_context(mut self, context: Context) -> Self {
        self.context = Some(context);
        self
    }

    /// How the fetch behind this error ended without a result, if it did.
    pub(crate) fn ended(&self) -> Option<Ended> {
        match self.context {
            Some(Context::Ended(how)) => Some(how),
            _ => None,
        }
    }

    /// Gives a refusal not yet explained the context of `by`, the layer's own reading of it: a
    /// scope check inside the auth layer made this error from the answer's body, without
    /// knowing whether the source renews the credential.
    pub(crate) fn explain_refusal(&mut self, by: &Error) {
        if matches!(self.kind, ErrorKind::InvalidCredentials(_)) && self.context.is_none() {
            self.context = by.context;
        }
    }

    /// What went wrong.
    ///
    /// ```
    /// # use infobip_auth::{Error, ErrorKind};
    /// let err = Error::new(ErrorKind::ReauthorizationRequired);
    /// assert!(matches!(err.kind(), ErrorKind::ReauthorizationRequired));
    /// ```
    #[must_use]
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The missing scopes and the endpoint, when this is a `403` (or a pre-flight refusal).
    ///
    /// ```
    /// # use infobip_auth::{Error, ErrorKind, Forbidden};
    /// let refused = Error::new(ErrorKind::Forbidden(Box::new(Forbidden::new(
    ///     http::Method::POST,
    ///     "/sms/2/text/advanced",
    /// ))));
    /// assert_eq!(refused.forbidden().map(|f| f.endpoint.as_str()), Some("/sms/2/text/advanced"));
    /// assert!(Error::new(ErrorKind::Timeout).forbidden().is_none());
    /// ```
    #[must_use]
    pub fn forbidden(&self) -> Option<&Forbidden> {
        match &self.kind {
            ErrorKind::Forbidden(forbidden) => Some(forbidden),
            _ => None,
        }
    }

    /// How long to wait before the next try: what the server asked (`Retry-After`), or, for a
    /// failure the layer hands out again while it backs off, the time until its next try.
    ///
    /// ```
    /// # use infobip_auth::{Error, ErrorKind};
    /// assert_eq!(Error::new(ErrorKind::Timeout).retry_after(), None);
    /// ```
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Whether trying again later may succeed without changing anything: transport failures,
    /// timeouts, a failed credential store, `408`, `429` and `5xx` answers.
    ///
    /// ```
    /// # use infobip_auth::{ApiError, Error, ErrorKind};
    /// use http::StatusCode;
    /// let busy = ApiError::from_body(StatusCode::SERVICE_UNAVAILABLE, b"");
    /// assert!(Error::new(ErrorKind::TokenEndpoint(busy)).is_transient());
    /// let refused = ApiError::from_body(StatusCode::UNAUTHORIZED, b"");
    /// assert!(!Error::new(ErrorKind::InvalidCredentials(refused)).is_transient());
    /// assert!(Error::new(ErrorKind::Store).is_transient()); // a store is usually back soon
    /// ```
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match &self.kind {
            ErrorKind::Transport | ErrorKind::Timeout | ErrorKind::Store => true,
            ErrorKind::TokenEndpoint(api) => {
                let status = api.status();
                status.is_server_error()
                    || status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::REQUEST_TIMEOUT
            }
            _ => false,
        }
    }

    /// The error inside a boxed middleware error, if it is one of ours: the error itself or
    /// any of its sources, also inside an `io::Error` (whose `source` skips what it wraps).
    ///
    /// ```
    /// # use infobip_auth::{BoxError, Error, ErrorKind};
    /// let boxed: BoxError = Error::new(ErrorKind::Timeout).into();
    /// assert!(Error::find(&*boxed).is_some());
    /// let io = std::io::Error::other(boxed);
    /// assert!(Error::find(&io).is_some());
    /// ```
    #[must_use]
    pub fn find<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Error> {
        causes(err).find_map(|err| err.downcast_ref::<Error>())
    }
}

/// What a server said about a request it refused, without the credential the request carried.
impl Error {
    /// This error with `sent` (the refused request's `Authorization`) taken out of the server's
    /// words, in any form [`Echoes`] knows: a gateway that explains a refusal may quote the
    /// header, and the error ends up in logs. A Basic credential's password goes too, decoded.
    pub(crate) fn without_credential(mut self, sent: &http::HeaderValue) -> Self {
        let api = match &mut self.kind {
            ErrorKind::InvalidCredentials(api) => api,
            ErrorKind::Forbidden(forbidden) => match &mut forbidden.api {
                Some(api) => api,
                None => return self,
            },
            _ => return self,
        };
        let Ok(sent) = sent.to_str() else {
            return self;
        };
        let mut secrets = vec![zeroize::Zeroizing::new(sent.to_owned())];
        if let Some((scheme, token)) = sent.split_once(' ') {
            secrets.push(zeroize::Zeroizing::new(token.trim().to_owned()));
            if scheme.eq_ignore_ascii_case("Basic") {
                use base64::Engine as _;
                let decoded = base64::engine::general_purpose::STANDARD.decode(token.trim());
                let decoded = zeroize::Zeroizing::new(decoded.unwrap_or_default());
                if let Some((_, password)) = std::str::from_utf8(&decoded)
                    .ok()
                    .and_then(|pair| pair.split_once(':'))
                {
                    secrets.push(zeroize::Zeroizing::new(password.to_owned()));
                }
            }
        }
        api.redact(&Echoes::of(&secrets));
        self
    }
}

/// `err`, then each error that caused it, in turn.
pub(crate) fn causes<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&err| cause_of(err))
}

/// The error that caused `err`: its `source`, or for an `io::Error` the error it wraps, which
/// its `source` skips.
fn cause_of<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    match err.downcast_ref::<std::io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
        None => err.source(),
    }
}

/// Where tokio is missing or incomplete: the crate reports it instead of meeting tokio's panic.
impl Error {
    /// Work that needs a tokio runtime was asked where none runs; `needs` says which work.
    pub(crate) fn no_runtime(needs: &'static str) -> Self {
        ConfigError::Invalid {
            what: "runtime",
            reason: needs,
        }
        .into()
    }

    /// The tokio runtime has no time driver, which a token request's timeout needs.
    pub(crate) fn no_timers() -> Self {
        ConfigError::Invalid {
            what: "runtime",
            reason: "the tokio runtime has no timers (build it with `enable_time` or `enable_all`)",
        }
        .into()
    }

    /// Whether this is [`no_timers`](Self::no_timers): nothing on this runtime can wait for a
    /// timer either.
    pub(crate) fn is_no_timers(&self) -> bool {
        self.kind == Self::no_timers().kind
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Self {
        Self::new(ErrorKind::Config(err))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Error");
        out.field("kind", &self.kind);
        if let Some(source) = &self.source {
            out.field("source", source);
        }
        if let Some(delay) = self.retry_after {
            out.field("retry_after", &delay);
        }
        if self.previous_ended {
            out.field("previous_ended", &true);
        }
        if self.previous_in_doubt {
            out.field("previous_in_doubt", &true);
        }
        if let Some(context) = &self.context {
            out.field("context", context);
        }
        out.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::InvalidCredentials(api) => match self.context {
                Some(Context::TokenRequest) => write!(
                    f,
                    "invalid credentials: the token endpoint refused the source's own \
                     credentials, so it has no token ({api}): check the client ID and secret or \
                     the username and password, or start the authorization again"
                ),
                Some(Context::RefreshRefused) => write!(
                    f,
                    "invalid credentials: the token endpoint refused to refresh the Exchange \
                     token ({api}): the refresh token has expired or was revoked, so the user \
                     must authorize the app again"
                ),
                Some(Context::Refused { renews: true }) => write!(
                    f,
                    "invalid credentials: the API refused the credential the request carried \
                     ({api}): it was revoked or has expired; a new one is fetched, so a refusal \
                     that persists is the account's"
                ),
                Some(Context::Refused { renews: false }) => write!(
                    f,
                    "invalid credentials: the API refused the credential the request carried \
                     ({api}): a fixed credential (an API key, a Basic login, a fixed token) \
                     does not renew: replace it"
                ),
                _ => write!(f, "invalid credentials ({api})"),
            },
            ErrorKind::Forbidden(forbidden) => fmt::Display::fmt(forbidden, f),
            ErrorKind::SchemeNotAccepted {
                method,
                endpoint,
                scheme,
                accepted,
            } => write!(
                f,
                "{method} {endpoint} does not accept `{}` credentials (it accepts {})",
                scheme.header_scheme(),
                SchemeWords(accepted)
            ),
            ErrorKind::TokenEndpoint(api) => write!(f, "token request failed ({api})"),
            ErrorKind::Transport => match self.ended() {
                Some(how) => fmt::Display::fmt(&how, f),
                None => f.write_str("token request failed: transport error"),
            },
            ErrorKind::Timeout => f.write_str("token request timed out"),
            ErrorKind::MalformedResponse { reason } => {
                write!(f, "malformed token response: {reason}")
            }
            ErrorKind::ResponseTooLarge { limit } => {
                write!(f, "token response larger than {limit} bytes")
            }
            ErrorKind::ReauthorizationRequired => f.write_str(
                "the Exchange token has expired or was revoked: \
                     the user must authorize the app again",
            ),
            ErrorKind::AuthorizationDenied { error, description } => {
                write!(f, "authorization denied: {error}")?;
                if let Some(description) = description {
                    write!(f, " ({description})")?;
                }
                Ok(())
            }
            ErrorKind::AuthorizationExpired => f.write_str(
                "the authorization request has expired: send the user through the flow again",
            ),
            ErrorKind::Store => f.write_str("the credential store failed"),
            ErrorKind::InvalidCallback { reason } => {
                write!(f, "invalid authorization callback: {reason}")
            }
            ErrorKind::HostNotAllowed { origin } if origin == crate::origin::NO_HOST => f
                .write_str(
                    "credentials are not sent with a request whose URI names no host \
                     (name where such requests go with `InfobipAuthLayer::relative_uris_go_to`)",
                ),
            ErrorKind::HostNotAllowed { origin } => {
                write!(
                    f,
                    "credentials are not sent to {origin}: it is not an allowed origin \
                     (add it with `InfobipAuthLayer::allow_origin` if it should be)"
                )
            }
            ErrorKind::Config(err) => fmt::Display::fmt(err, f),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| &**source as &(dyn StdError + 'static))
    }
}

/// An error answer from Infobip, read from whichever of its body shapes came: the legacy
/// `{"requestError":{"serviceException":{"messageId","text"}}}`, the newer
/// `{"errorCode","description"}`, CAMARA's `{"status","code","message"}`, or OAuth's
/// `{"error","error_description"}`.
///
/// ```
/// use http::StatusCode;
/// use infobip_auth::ApiError;
/// let body = br#"{"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Invalid login details"}}}"#;
/// let err = ApiError::from_body(StatusCode::UNAUTHORIZED, body);
/// assert_eq!(err.code(), Some("UNAUTHORIZED"));
/// assert_eq!(err.text(), Some("Invalid login details"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: Option<String>,
    text: Option<String>,
    /// Boxed (no spare capacity) to keep [`Error`] small enough to return.
    raw: Option<Box<str>>,
}

/// Shows the unreadable body's length, not its bytes: a gateway that echoes the request it
/// refused may echo more than a token request's own secrets, which are taken out. [`ApiError::raw`]
/// gives the bytes on purpose.
impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("ApiError");
        out.field("status", &self.status)
            .field("code", &self.code)
            .field("text", &self.text);
        if let Some(raw) = &self.raw {
            out.field("raw_bytes", &raw.len());
        }
        out.finish()
    }
}

/// How much of an unreadable error body is kept, in bytes.
const RAW_KEPT: usize = 512;

/// `bytes` without the start of a character they end in: lossy decoding would turn it into
/// `U+FFFD`, behind which the start of a secret cut there would no longer end the text.
fn whole_chars(bytes: &[u8]) -> &[u8] {
    // A character is at most four bytes, so a cut one starts within the last three.
    let lead = (1..=bytes.len().min(3))
        .map(|back| bytes.len() - back)
        .find(|&at| bytes.get(at).is_some_and(|&b| b & 0xC0 != 0x80));
    match lead.map(|at| (at, std::str::from_utf8(&bytes[at..]))) {
        Some((at, Err(err))) if err.error_len().is_none() => &bytes[..at],
        _ => bytes,
    }
}

/// At most [`RAW_KEPT`] bytes of redacted `raw`, cut at a character and not through a marker:
/// `[reda` would read as the server's words.
fn kept(mut raw: String) -> Box<str> {
    let mut end = raw.len().min(RAW_KEPT);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    let redacted = crate::credential::REDACTED;
    let marker = (end.saturating_sub(redacted.len() - 1)..end)
        .find(|&at| raw.get(at..).is_some_and(|rest| rest.starts_with(redacted)));
    raw.truncate(marker.unwrap_or(end));
    raw.into_boxed_str()
}

impl ApiError {
    /// Reads an error body. A body in none of the known shapes keeps its first bytes as
    /// [`ApiError::raw`]; nothing here fails.
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use infobip_auth::ApiError;
    /// let err = ApiError::from_body(StatusCode::FORBIDDEN, br#"{"errorCode":"E403","description":"Forbidden."}"#);
    /// assert_eq!((err.code(), err.text()), (Some("E403"), Some("Forbidden.")));
    /// ```
    #[must_use]
    pub fn from_body(status: StatusCode, body: &[u8]) -> Self {
        Self::from_body_redacting(status, body, &[""; 0])
    }

    /// Reads an error body with `secrets` taken out of what the server said, in any form a
    /// server may quote them in: a gateway may echo the token request it refused.
    pub(crate) fn from_body_redacting(
        status: StatusCode,
        body: &[u8],
        secrets: &[impl AsRef<str>],
    ) -> Self {
        let echoes = Echoes::of(secrets);
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let pick = |keys: &[&str]| -> Option<String> {
            let json = json.as_ref()?;
            keys.iter().find_map(|path| {
                let value = json.pointer(path)?;
                match value {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }
            })
        };
        let code = pick(&[
            "/requestError/serviceException/messageId",
            "/errorCode",
            "/code",
            "/error",
        ]);
        let text = pick(&[
            "/requestError/serviceException/text",
            "/description",
            "/message",
            "/error_description",
        ]);
        let raw = (code.is_none() && text.is_none() && !body.is_empty()).then(|| {
            // Redacted before it is cut, so a secret across the cut goes whole.
            let window = &body[..body.len().min(RAW_KEPT + echoes.longest())];
            let mut raw = String::from_utf8_lossy(whole_chars(window)).into_owned();
            // Cut here or by the transport's size limit: a start of a secret at the end goes too.
            echoes.redact(&mut raw, true);
            kept(raw)
        });
        let (mut code, mut text) = (code, text);
        for said in [&mut code, &mut text].into_iter().flatten() {
            echoes.redact(said, false);
        }
        Self {
            status,
            code,
            text,
            raw,
        }
    }

    /// Takes whole `echoes` out of what the server said. The kept start of an unreadable body
    /// stays the body's first bytes otherwise (it shows in no message): where it was cut is
    /// not known here, and a character that merely begins an echo is no echo.
    fn redact(&mut self, echoes: &Echoes) {
        for said in [&mut self.code, &mut self.text].into_iter().flatten() {
            echoes.redact(said, false);
        }
        if let Some(raw) = self.raw.take() {
            let mut raw = String::from(raw);
            echoes.redact(&mut raw, false);
            self.raw = Some(kept(raw));
        }
    }

    /// The HTTP status of the answer.
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use infobip_auth::ApiError;
    /// assert_eq!(ApiError::from_body(StatusCode::FORBIDDEN, b"").status(), StatusCode::FORBIDDEN);
    /// ```
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Infobip's code: `messageId` (`UNAUTHORIZED`, `FORBIDDEN`), `errorCode` (`E403`), CAMARA's
    /// `code` or OAuth's `error`.
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use infobip_auth::ApiError;
    /// let err = ApiError::from_body(StatusCode::FORBIDDEN, br#"{"status":403,"code":"PERMISSION_DENIED","message":"No."}"#);
    /// assert_eq!(err.code(), Some("PERMISSION_DENIED"));
    /// ```
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// Infobip's human-readable text: `text`, `description`, `message` or `error_description`.
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use infobip_auth::ApiError;
    /// let err = ApiError::from_body(StatusCode::UNAUTHORIZED, br#"{"error":"invalid_client","error_description":"Bad client"}"#);
    /// assert_eq!(err.text(), Some("Bad client"));
    /// ```
    #[must_use]
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The first bytes of a body in none of the known shapes (lossy UTF-8), kept for diagnosis.
    /// For a token endpoint's answer, the request's secrets are taken out before the body is
    /// cut, and no start of one is left at its end.
    ///
    /// ```
    /// # use http::StatusCode;
    /// # use infobip_auth::ApiError;
    /// let err = ApiError::from_body(StatusCode::FORBIDDEN, b"<html>Forbidden</html>");
    /// assert_eq!(err.raw(), Some("<html>Forbidden</html>"));
    /// ```
    #[must_use]
    pub fn raw(&self) -> Option<&str> {
        self.raw.as_deref()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        match (&self.code, &self.text) {
            (Some(code), Some(text)) => write!(f, " {}: {}", Shown(code), Shown(text)),
            (Some(one), None) | (None, Some(one)) => write!(f, " {}", Shown(one)),
            (None, None) => Ok(()),
        }
    }
}

/// Text from a server, shown on one line and at most [`SHOWN_CHARS`] characters long: an
/// error message ends up in logs, where a forged line or a 64 KiB paragraph does harm. The
/// whole text stays in [`ApiError::text`].
struct Shown<'a>(&'a str);

/// How many characters of a server's text an error message shows.
const SHOWN_CHARS: usize = 300;

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shown, c) in self.0.chars().enumerate() {
            if shown == SHOWN_CHARS {
                return f.write_str("…");
            }
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// A `403`, or a request refused before sending, explained by the scopes involved.
///
/// ```
/// use http::Method;
/// use infobip_auth::Forbidden;
/// let forbidden = Forbidden::new(Method::POST, "/sms/2/text/advanced")
///     .with_required("message:send,sms:message:send,sms:manage".parse()?)
///     .with_held("inbound-message:read".parse()?);
/// assert!(forbidden.to_string().contains("needs any of message:send, sms:manage, sms:message:send"));
/// # Ok::<(), infobip_auth::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Forbidden {
    /// The request's method.
    pub method: Method,
    /// The request's path, or the operation's path template when it is known.
    pub endpoint: String,
    /// The scopes that grant the endpoint (any one suffices); `None` when the endpoint is not in
    /// the catalogue or lists no scopes.
    pub required: Option<Scopes>,
    /// The scopes the credential holds, when known.
    pub held: Option<Scopes>,
    /// The server's answer; `None` when the request was refused before sending.
    pub api: Option<ApiError>,
    /// The credential's scheme, when known, and the schemes the endpoint accepts (empty when
    /// not known): a scheme the endpoint does not take explains a refusal before any scope.
    pub scheme: Option<(AuthScheme, Vec<AuthScheme>)>,
}

impl Forbidden {
    /// A forbidden value for `method endpoint` with nothing else known.
    ///
    /// ```
    /// # use infobip_auth::Forbidden;
    /// let f = Forbidden::new(http::Method::GET, "/sms/1/inbox/reports");
    /// assert!(f.required.is_none());
    /// ```
    #[must_use]
    pub fn new(method: Method, endpoint: impl Into<String>) -> Self {
        Self {
            method,
            endpoint: endpoint.into(),
            required: None,
            held: None,
            api: None,
            scheme: None,
        }
    }

    /// Sets the scopes that would grant the endpoint.
    ///
    /// ```
    /// # use infobip_auth::Forbidden;
    /// let f = Forbidden::new(http::Method::GET, "/x").with_required("sms:manage".parse()?);
    /// assert_eq!(f.required.map(|s| s.len()), Some(1));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn with_required(mut self, required: Scopes) -> Self {
        self.required = Some(required);
        self
    }

    /// Sets the scopes the credential holds.
    ///
    /// ```
    /// # use infobip_auth::Forbidden;
    /// let f = Forbidden::new(http::Method::GET, "/x").with_held("web:sdk".parse()?);
    /// assert!(f.held.is_some());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn with_held(mut self, held: Scopes) -> Self {
        self.held = Some(held);
        self
    }

    /// Sets the credential's scheme and the schemes the endpoint accepts.
    ///
    /// ```
    /// # use infobip_auth::{AuthScheme, Forbidden};
    /// let f = Forbidden::new(http::Method::POST, "/settings/2/api-keys")
    ///     .with_scheme(AuthScheme::ApiKey, vec![AuthScheme::Ibsso, AuthScheme::Basic]);
    /// assert!(f.to_string().contains("does not accept `App` credentials (it accepts IBSSO, Basic)"));
    /// ```
    #[must_use]
    pub fn with_scheme(mut self, scheme: AuthScheme, accepted: Vec<AuthScheme>) -> Self {
        self.scheme = Some((scheme, accepted));
        self
    }

    /// The scheme the endpoint does not accept, with those it does, if the credential's is one.
    fn scheme_refused(&self) -> Option<(AuthScheme, &[AuthScheme])> {
        let (scheme, accepted) = self.scheme.as_ref()?;
        (!accepted.is_empty() && !accepted.contains(scheme)).then_some((*scheme, &accepted[..]))
    }

    /// Sets the server's answer.
    ///
    /// ```
    /// # use infobip_auth::{ApiError, Forbidden};
    /// let api = ApiError::from_body(http::StatusCode::FORBIDDEN, b"");
    /// let f = Forbidden::new(http::Method::GET, "/x").with_api(api);
    /// assert!(f.api.is_some());
    /// ```
    #[must_use]
    pub fn with_api(mut self, api: ApiError) -> Self {
        self.api = Some(api);
        self
    }
}

/// On one line: what the endpoint needs, what the credential holds, and, when that should have
/// sufficed, that the refusal has another cause.
impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "forbidden: {} {}", self.method, self.endpoint)?;
        if let Some(required) = &self.required {
            write!(f, " needs any of {required}")?;
        }
        let refused_scheme = self.scheme_refused();
        if let Some((scheme, accepted)) = refused_scheme {
            write!(
                f,
                "; it does not accept `{}` credentials (it accepts {})",
                scheme.header_scheme(),
                SchemeWords(accepted)
            )?;
        }
        match (&self.held, &self.required) {
            (Some(held), _) if held.is_empty() => f.write_str("; the credential holds no scope")?,
            // Scopes that grant the endpoint do not explain the refusal, unless the scheme does.
            (Some(held), Some(required))
                if refused_scheme.is_none() && held.grants_any(required) =>
            {
                let granting: Scopes = held
                    .iter()
                    .filter(|scope| required.contains(scope))
                    .cloned()
                    .collect();
                if granting.len() < held.len() {
                    write!(
                        f,
                        "; the credential holds {held}; this endpoint accepts {granting}"
                    )?;
                } else {
                    write!(
                        f,
                        "; the credential holds {held}, which this endpoint accepts"
                    )?;
                }
                f.write_str(
                    ", so the refusal has another cause: the account's permissions, an IP \
                     allow-list, or a scope catalogue out of date",
                )?;
            }
            (Some(held), required) => {
                write!(f, "; the credential holds {held}")?;
                // Names compare exactly: a scope written in another case is another scope.
                let case_only = required.iter().flatten().find_map(|needed| {
                    let held = held.iter().find(|held| {
                        held.as_str().eq_ignore_ascii_case(needed.as_str()) && *held != needed
                    })?;
                    Some((held, needed))
                });
                if let Some((held, needed)) = case_only {
                    write!(
                        f,
                        " (`{held}` is not `{needed}`: scope names compare exactly, case included)"
                    )?;
                }
            }
            (None, _) => {}
        }
        if let Some(api) = &self.api {
            write!(f, " ({api})")?;
        }
        Ok(())
    }
}

/// Schemes by the words users see in `Authorization`, not the OpenAPI scheme names.
struct SchemeWords<'a>(&'a [AuthScheme]);

impl fmt::Display for SchemeWords<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, scheme) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(", ")?;
            }
            f.write_str(scheme.header_scheme())?;
        }
        Ok(())
    }
}

/// A token source or layer was configured with something that cannot work. Returned by
/// constructors and builders; never carries the secret it refused.
///
/// ```
/// use infobip_auth::ConfigError;
/// let err = ConfigError::ColonInUsername;
/// assert_eq!(err, ConfigError::ColonInUsername);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value that goes into a header is empty or holds a byte headers cannot carry
    /// (CR, LF, NUL and other control or non-visible characters).
    #[error("the {what} is empty or holds characters a header cannot carry")]
    InvalidHeaderValue {
        /// Which value, e.g. `API key`.
        what: &'static str,
    },
    /// RFC 7617 forbids a colon in a Basic username.
    #[error("a Basic username cannot contain `:` (RFC 7617)")]
    ColonInUsername,
    /// A required value is empty.
    #[error("the {what} is empty")]
    Empty {
        /// Which value.
        what: &'static str,
    },
    /// A name no scope can be: empty, or holding a character an RFC 6749 §3.3 scope token
    /// has not (a space, a control or non-ASCII character, `"`, `\`) or a `,`.
    #[error("invalid scope name {name:?}")]
    InvalidScope {
        /// The refused name.
        name: String,
    },
    /// A URL that cannot serve as a base URL or endpoint.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The refused URL.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// Credentials would travel in clear text to a host that is not loopback.
    #[error(
        "refusing to send credentials over plain HTTP to {origin} (only loopback may use http)"
    )]
    InsecureUrl {
        /// The refused origin.
        origin: String,
    },
    /// A setting is out of its range.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which setting.
        what: &'static str,
        /// Why.
        reason: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_three_infobip_shapes_and_oauth() {
        let cases: [(&[u8], &str, &str); 4] = [
            (
                br#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#,
                "FORBIDDEN",
                "Forbidden",
            ),
            (
                br#"{"errorCode":"E403","description":"Forbidden.","action":"Check scopes","violations":[],"resources":[]}"#,
                "E403",
                "Forbidden.",
            ),
            (
                br#"{"status":403,"code":"PERMISSION_DENIED","message":"Client does not have sufficient permissions."}"#,
                "PERMISSION_DENIED",
                "Client does not have sufficient permissions.",
            ),
            (
                br#"{"error":"invalid_client","error_description":"Bad credentials"}"#,
                "invalid_client",
                "Bad credentials",
            ),
        ];
        for (body, code, text) in cases {
            let err = ApiError::from_body(StatusCode::FORBIDDEN, body);
            assert_eq!(
                (err.code(), err.text(), err.raw()),
                (Some(code), Some(text), None)
            );
        }
    }

    #[test]
    fn keeps_a_bounded_prefix_of_unreadable_bodies() {
        let long = vec![b'x'; 10_000];
        let err = ApiError::from_body(StatusCode::FORBIDDEN, &long);
        assert_eq!(err.raw().map(str::len), Some(RAW_KEPT));
        assert!(!format!("{err:?}").contains("<html>"), "{err:?}");
        assert_eq!(ApiError::from_body(StatusCode::FORBIDDEN, b"").raw(), None);
    }

    #[test]
    fn a_secret_cut_inside_a_character_leaves_no_start() {
        // Five echoes shrink to markers, so the window's cut, inside an `é` of the sixth, falls
        // within what is kept.
        let secret = "é".repeat(100);
        let body = format!("x{}", secret.repeat(6));
        let err =
            ApiError::from_body_redacting(StatusCode::BAD_GATEWAY, body.as_bytes(), &[&secret]);
        let raw = err.raw().unwrap_or_default();
        assert!(raw.starts_with("x[redacted]"), "{raw}");
        assert!(!raw.contains("éé"), "{raw}");
        assert_eq!(whole_chars("aé".as_bytes()), "aé".as_bytes());
        assert_eq!(whole_chars(&"a😀".as_bytes()[..4]), b"a");
        assert_eq!(whole_chars(b"a\xff"), b"a\xff");
        assert_eq!(whole_chars(b""), b"");
    }

    #[test]
    fn a_cut_secret_holding_a_shorter_one_leaves_no_start() {
        // The body ends inside the password's echo, which begins with the username.
        let secrets = ["john", "john1234secret"];
        let err = ApiError::from_body_redacting(StatusCode::BAD_GATEWAY, b"x john1234se", &secrets);
        assert_eq!(err.raw(), Some("x [redacted]"));
    }

    #[test]
    fn messages_show_a_servers_text_on_one_short_line() {
        let forged = format!("bad\r\nINFO forged line\u{1b}[31m{}", "x".repeat(10_000));
        let body = serde_json::json!({ "errorCode": "E400\nX", "description": forged });
        let err = ApiError::from_body(StatusCode::BAD_REQUEST, body.to_string().as_bytes());
        let shown = err.to_string();
        assert!(
            shown.starts_with("400 Bad Request E400\\nX: bad\\r\\nINFO"),
            "{shown}"
        );
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert!(shown.chars().count() < 2 * SHOWN_CHARS, "{}", shown.len());
        assert_eq!(err.text(), Some(forged.as_str()), "kept whole");
    }

    /// A piece of an error body: the server's own words, or a secret the request carried,
    /// quoted in one of the forms a server may use.
    #[derive(Clone, Debug)]
    enum Piece {
        Words(String),
        Echo { secret: usize, form: u8 },
    }

    /// Words made of characters that appear in no secret's four-character run (see below).
    fn piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            "[<>{}:,. =]{0,40}".prop_map(Piece::Words),
            (0usize..4, 0u8..5).prop_map(|(secret, form)| Piece::Echo { secret, form }),
        ]
    }

    fn secret() -> impl Strategy<Value = String> {
        prop_oneof![".{0,12}", "[a-z0-9+/%&=\\\"é😀 ]{0,24}", "x{300,700}"]
    }

    fn quoted(secret: &str, form: u8) -> String {
        let json = serde_json::to_string(secret).unwrap_or_default();
        let json = json[1..json.len() - 1].to_owned();
        let form_encoded = serde_urlencoded::to_string([("", secret)]).unwrap_or_default();
        let form_encoded = form_encoded.trim_start_matches('=').to_owned();
        match form {
            0 => secret.to_owned(),
            1 => form_encoded,
            2 => form_encoded.replace('+', "%20"),
            3 => json,
            _ => {
                let twice = serde_json::to_string(&json).unwrap_or_default();
                twice[1..twice.len() - 1].to_owned()
            }
        }
    }

    /// Runs of four characters of `secret`.
    fn runs(secret: &str) -> Vec<String> {
        let chars: Vec<char> = secret.chars().collect();
        chars.windows(4).map(|w| w.iter().collect()).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_body_reads_without_panic_into_a_bounded_error(
            status in 400u16..600,
            body in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..2_000),
                ".{0,600}".prop_map(String::into_bytes),
                "\\{\"(error|code|errorCode|description|message|text)\":.{0,40}\\}"
                    .prop_map(String::into_bytes),
            ],
        ) {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let err = ApiError::from_body(status, &body);
            prop_assert!(err.raw().is_none_or(|raw| raw.len() <= RAW_KEPT));
            let shown = err.to_string();
            prop_assert!(!shown.chars().any(char::is_control), "{}", shown);
            let _ = format!("{err:?}");
        }

        #[test]
        fn no_run_of_a_secret_survives_in_what_the_error_keeps(
            secrets in proptest::collection::vec(secret(), 1..4),
            prefix_of_first in proptest::option::of(0usize..24),
            pieces in proptest::collection::vec(piece(), 0..12),
            cut_last in proptest::option::of(0usize..64),
            as_json in 0u8..3,
        ) {
            let mut secrets = secrets;
            if let Some(len) = prefix_of_first {
                let prefix: String = secrets[0].chars().take(len).collect();
                secrets.push(prefix);
            }
            // The server's own words, and the error's own frame (`502 Bad Gateway`, `status`,
            // `code: None`), hold no run of a secret: any run found came from an echo.
            let checked: Vec<&String> = secrets.iter().filter(|s| s.chars().count() >= 4).collect();
            let frame: String = [Some(String::new()), None]
                .into_iter()
                .map(|said| {
                    let empty = ApiError {
                        status: StatusCode::BAD_GATEWAY,
                        code: said.clone(),
                        text: said.clone(),
                        raw: said.map(String::into_boxed_str),
                    };
                    format!("{empty} {empty:?} ")
                })
                .collect();
            for secret in &checked {
                for run in runs(secret) {
                    prop_assume!(!run.chars().all(|c| "<>{}:,. =".contains(c)));
                    prop_assume!(!frame.contains(&run));
                }
            }
            let mut text = String::new();
            for piece in &pieces {
                match piece {
                    Piece::Words(words) => text.push_str(words),
                    // Inside a JSON body, an echo quoted twice would be three times over.
                    Piece::Echo { secret, form } => {
                        let form = if as_json == 0 { *form } else { (*form).min(3) };
                        text.push_str(&quoted(&secrets[secret % secrets.len()], form));
                    }
                }
            }
            // A body cut at the transport's limit may end inside an echo (a JSON body cut there
            // is no longer JSON: its text is what is kept).
            if let (Some(len), Some(Piece::Echo { secret, form }), 0) =
                (cut_last, pieces.last(), as_json)
            {
                let echo = quoted(&secrets[secret % secrets.len()], *form);
                let mut keep = text.len() - echo.len() + len.min(echo.len());
                while !text.is_char_boundary(keep) {
                    keep -= 1;
                }
                text.truncate(keep);
            }
            let body = match as_json {
                0 => text.clone(),
                1 => serde_json::json!({ "error": text, "error_description": text }).to_string(),
                _ => serde_json::json!({ "requestError": { "serviceException": {
                    "messageId": text, "text": text } } }).to_string(),
            };
            let mut body = body.into_bytes();
            if let (Some(len), 1..) = (cut_last, as_json) {
                body.truncate(len * 4);
            }
            let err = ApiError::from_body_redacting(StatusCode::BAD_GATEWAY, &body, &secrets);
            prop_assert!(err.raw().is_none_or(|raw| raw.len() <= RAW_KEPT));
            let shown = [
                err.raw().unwrap_or_default().to_owned(),
                err.code().unwrap_or_default().to_owned(),
                err.text().unwrap_or_default().to_owned(),
                err.to_string(),
                format!("{err:?}"),
            ];
            for said in &shown {
                for part in said.split(crate::credential::REDACTED) {
                    for secret in &checked {
                        for run in runs(secret) {
                            prop_assert!(!part.contains(&run), "{:?} shows in {:?}", run, said);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_refusal_quoting_the_credential_sent_shows_none_of_it() {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode("john:pa ss/w+rd");
        let cases = [
            (
                "App k3y-0123456789",
                "Invalid login details for App k3y-0123456789".to_owned(),
            ),
            (&*format!("Basic {basic}"), format!("no user for {basic}")),
            // The password, decoded, form-encoded as a gateway may quote it.
            (
                &*format!("Basic {basic}"),
                "wrong password pa+ss%2Fw%2Brd".to_owned(),
            ),
        ];
        for (sent, text) in cases {
            let body = serde_json::json!({ "errorCode": "E401", "description": text });
            let api = ApiError::from_body(StatusCode::UNAUTHORIZED, body.to_string().as_bytes());
            let sent =
                http::HeaderValue::from_str(sent).unwrap_or(http::HeaderValue::from_static("x"));
            let err = Error::new(ErrorKind::InvalidCredentials(api)).without_credential(&sent);
            let shown = format!("{err} {err:?}");
            for secret in ["k3y-0123456789", &basic, "pa ss/w+rd", "pa+ss%2Fw%2Brd"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
            assert!(shown.contains(crate::credential::REDACTED), "{shown}");
        }
        // A 403's answer, kept unreadable.
        let sent = http::HeaderValue::from_static("IBSSO 2f9b3c1a-5d6e-4f70-8a9b-0c1d2e3f4a5b");
        let api = ApiError::from_body(
            StatusCode::FORBIDDEN,
            b"<p>2f9b3c1a-5d6e-4f70-8a9b-0c1d2e3f4a5b",
        );
        let forbidden = Forbidden::new(Method::GET, "/x").with_api(api);
        let err = Error::new(ErrorKind::Forbidden(Box::new(forbidden))).without_credential(&sent);
        let raw = err
            .forbidden()
            .and_then(|f| f.api.as_ref())
            .and_then(ApiError::raw);
        assert_eq!(raw, Some("<p>[redacted]"));
    }

    #[test]
    fn a_403_the_held_scopes_do_not_explain_says_it_has_another_cause() -> Result<(), ConfigError> {
        let api = ApiError::from_body(StatusCode::FORBIDDEN, b"");
        let refused = |held: &str| -> Result<String, ConfigError> {
            let forbidden = Forbidden::new(Method::POST, "/x")
                .with_required("sms:manage,sms:message:send".parse()?)
                .with_held(held.parse()?)
                .with_api(api.clone());
            Ok(forbidden.to_string())
        };
        assert_eq!(
            refused("sms:manage")?,
            "forbidden: POST /x needs any of sms:manage, sms:message:send; the credential holds \
             sms:manage, which this endpoint accepts, so the refusal has another cause: the \
             account's permissions, an IP allow-list, or a scope catalogue out of date \
             (403 Forbidden)"
        );
        let some = refused("sms:manage,web:sdk")?;
        assert!(
            some.contains("holds sms:manage, web:sdk; this endpoint accepts sms:manage, so"),
            "{some}"
        );
        // Scopes that do not grant it explain it: nothing more is said.
        let none = refused("web:sdk")?;
        assert!(
            none.ends_with("the credential holds web:sdk (403 Forbidden)"),
            "{none}"
        );
        Ok(())
    }

    #[test]
    fn a_scope_held_in_another_case_is_named_as_the_mistake() -> Result<(), ConfigError> {
        let forbidden = Forbidden::new(Method::POST, "/sms/2/text/advanced")
            .with_required("sms:manage,sms:message:send".parse()?)
            .with_held("SMS:MANAGE web:sdk".parse()?);
        assert_eq!(
            forbidden.to_string(),
            "forbidden: POST /sms/2/text/advanced needs any of sms:manage, sms:message:send; the \
             credential holds SMS:MANAGE, web:sdk (`SMS:MANAGE` is not `sms:manage`: scope names \
             compare exactly, case included)"
        );
        // Nothing is said when no held name differs from a needed one only in case.
        let other = Forbidden::new(Method::POST, "/x")
            .with_required("sms:manage".parse()?)
            .with_held("web:sdk".parse()?);
        assert!(!other.to_string().contains("case"), "{other}");
        Ok(())
    }

    #[test]
    fn a_403_to_a_scheme_the_endpoint_does_not_take_says_so() -> Result<(), ConfigError> {
        let forbidden = Forbidden::new(Method::POST, "/settings/2/api-keys")
            .with_required("account-management:manage".parse()?)
            .with_held("account-management:manage".parse()?)
            .with_scheme(
                AuthScheme::ApiKey,
                vec![AuthScheme::Ibsso, AuthScheme::Basic],
            )
            .with_api(ApiError::from_body(StatusCode::FORBIDDEN, b""));
        let said = forbidden.to_string();
        assert_eq!(
            said,
            "forbidden: POST /settings/2/api-keys needs any of account-management:manage; it \
             does not accept `App` credentials (it accepts IBSSO, Basic); the credential holds \
             account-management:manage (403 Forbidden)"
        );
        // A scheme it accepts changes nothing.
        let accepted = forbidden.with_scheme(AuthScheme::Basic, vec![AuthScheme::Basic]);
        assert!(accepted.to_string().contains("another cause"), "{accepted}");
        Ok(())
    }

    #[test]
    fn an_invalid_credential_says_which_side_refused_it_and_what_to_do() {
        let api = ApiError::from_body(StatusCode::UNAUTHORIZED, b"");
        let said = |context: Option<Context>| {
            let err = Error::new(ErrorKind::InvalidCredentials(api.clone()));
            context
                .map_or(err.clone(), |c| err.with_context(c))
                .to_string()
        };
        let token_request = said(Some(Context::TokenRequest));
        assert!(
            token_request.contains("token endpoint refused"),
            "{token_request}"
        );
        assert!(
            token_request.contains("client ID and secret"),
            "{token_request}"
        );
        let renews = said(Some(Context::Refused { renews: true }));
        assert!(renews.contains("the API refused"), "{renews}");
        assert!(renews.contains("a new one is fetched"), "{renews}");
        let fixed = said(Some(Context::Refused { renews: false }));
        assert!(fixed.ends_with("does not renew: replace it"), "{fixed}");
        assert_eq!(said(None), "invalid credentials (401 Unauthorized)");
        let all = [token_request, renews, fixed];
        assert!(!all.iter().any(|said| said.contains('\n')), "{all:?}");
    }

    #[test]
    fn a_fetch_that_ended_without_a_result_says_how_not_transport() {
        for (how, words) in [
            (Ended::Panicked, "the token source panicked"),
            (Ended::Cancelled, "its runtime shut down"),
            (Ended::Revoked, "`revoke()` ended the new credential"),
        ] {
            let err = Error::new(ErrorKind::Transport).with_context(Context::Ended(how));
            let said = err.to_string();
            assert!(
                said.contains(words) && !said.contains("transport"),
                "{said}"
            );
            assert!(err.source().is_none(), "said once: {err:?}");
            assert!(err.is_transient());
        }
    }

    #[test]
    fn finds_our_error_behind_other_errors() {
        #[derive(Debug)]
        struct Wrapper(Error);
        impl fmt::Display for Wrapper {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl StdError for Wrapper {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let boxed: BoxError = Box::new(Wrapper(Error::new(ErrorKind::Timeout)));
        assert!(matches!(
            Error::find(&*boxed).map(Error::kind),
            Some(ErrorKind::Timeout)
        ));
    }
}
