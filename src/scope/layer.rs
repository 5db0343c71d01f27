//! [`ScopeCheckLayer`] and [`ScopeCheck`]: the scope check as Tower middleware.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::body::ResponseBody;
use super::future::{ResponseFuture, Sent};
use super::{AuthScheme, Catalog, Scopes, preflight};
use crate::cache::CredentialCache;
use crate::origin::{AllowedHosts, BaseUrl, LastAllowed};
use crate::{BoxError, ConfigError, Credential};

/// How much of a `401` or `403` body is read to classify it, unless told otherwise: Infobip's
/// error bodies are a few hundred bytes; an answer far larger is no error body of theirs.
const DEFAULT_READ_LIMIT: usize = 64 * 1024;

/// How long the rest of a `401` or `403` body is waited for, unless told otherwise: an error
/// body of a few hundred bytes comes at once, and a server that stalls after the head must not
/// hold the caller's response for longer than the caller's own timeout would.
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Layer that applies [`ScopeCheck`], which explains `401` and `403` answers by the scopes
/// involved and refuses, before sending, requests Infobip is certain to refuse.
///
/// Place it **inside** [`InfobipAuthLayer`](crate::InfobipAuthLayer) (after it in a
/// `ServiceBuilder`), so it sees the `Authorization` header the auth layer set; make it with
/// [`InfobipAuthLayer::scope_check`](crate::InfobipAuthLayer::scope_check) so it also knows the
/// scopes the current credential holds. See the [module docs](super) for the defaults and an
/// example.
///
/// Cloning the layer is cheap; every service it makes shares its catalogue.
///
/// ```
/// use infobip_auth::scope::ScopeCheckLayer;
/// use infobip_auth::Error;
/// # use http::{Request, Response, StatusCode};
/// # use tower::{Layer, ServiceExt, service_fn};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// # let infobip = service_fn(|_: Request<String>| async {
/// #     let body = r#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;
/// #     let mut response = Response::new(body.to_owned());
/// #     *response.status_mut() = StatusCode::FORBIDDEN;
/// #     Ok::<_, std::convert::Infallible>(response)
/// # });
/// # let sms = || Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced")
/// #     .header("authorization", "App 003026bbc133714df1834b8638bb496e")
/// #     .body(String::new());
/// // `infobip` answers every request with Infobip's `403`; `sms()` sends an SMS with an API key.
/// let layer = ScopeCheckLayer::new().held("sms:manage".parse()?).reject_forbidden();
/// // `sms:manage` grants the endpoint, so the request is sent; the server's `403` is an error.
/// let err = layer.layer(infobip).oneshot(sms()?).await.err().ok_or("not refused")?;
/// let forbidden = Error::find(&*err).and_then(Error::forbidden).ok_or("not a 403")?;
/// assert_eq!(forbidden.held, Some("sms:manage".parse()?));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ScopeCheckLayer {
    pub(super) config: Config,
}

/// Everything a [`ScopeCheck`] and its futures need.
#[derive(Clone, Debug)]
pub(super) struct Config {
    pub(super) catalog: Catalog,
    /// Declared with [`ScopeCheckLayer::held`]: wins over what the credential reports. Shared,
    /// so that cloning a service (as a replay does per request) copies no set.
    held: Option<Arc<Scopes>>,
    /// The auth layer's cache, for the scopes of the credential it sends.
    cache: Option<CredentialCache>,
    /// The hosts whose requests are judged: the auth layer's, or any HTTPS host under
    /// `infobip.com`. The catalogue describes Infobip's API and no other.
    pub(super) hosts: AllowedHosts,
    pub(super) preflight: bool,
    pub(super) reject_forbidden: bool,
    pub(super) read_limit: usize,
    pub(super) read_timeout: Duration,
}

impl Config {
    /// The pre-flight check of a request for `method` and `path` sent with `authorization`.
    pub(super) fn preflight(
        &self,
        method: &http::Method,
        path: &str,
        authorization: Option<&HeaderValue>,
    ) -> Result<(), crate::Error> {
        let scheme = AuthScheme::of_header(authorization);
        self.with_held(authorization, |held| {
            preflight(method, path, scheme, held, &self.catalog)
        })
    }

    /// What the classification of a `401` or `403` to this request needs to know of it.
    pub(super) fn sent(
        self: &Arc<Self>,
        method: &http::Method,
        uri: http::Uri,
        authorization: Option<&HeaderValue>,
    ) -> Sent {
        Sent {
            config: Arc::clone(self),
            method: method.clone(),
            uri,
            // Kept to take out of the server's words, and to compare with an auth layer's
            // credential. A clone of the auth layer's header is a count; a caller's own header
            // parsed at run time is copied to shared memory by its first clone.
            authorization: authorization.cloned(),
        }
    }

    /// Whether a request for `uri` is Infobip's to judge: one to an allowed host, or a relative
    /// one (a tonic channel's), whose host only the inner service knows; the catalogue is all
    /// the check has to go by, so it takes the request for Infobip's. `last` remembers the
    /// origin last judged, as the auth layer does.
    #[inline]
    pub(super) fn judges(&self, uri: &http::Uri, last: &mut LastAllowed) -> bool {
        crate::origin::is_relative(uri) || self.hosts.allows_repeat(uri, last)
    }

    /// Runs `f` with the scopes held by the credential of a request sent with `authorization`:
    /// the declared ones, else the auth layer's current credential's when that is the one the
    /// request carries (not a caller's own header), else `None`.
    pub(super) fn with_held<R>(
        &self,
        authorization: Option<&HeaderValue>,
        f: impl FnOnce(Option<&Scopes>) -> R,
    ) -> R {
        if let Some(held) = &self.held {
            return f(Some(&**held));
        }
        match (&self.cache, authorization) {
            (Some(cache), Some(sent)) => cache.with_current(|current| {
                // Scopes first: most credentials report none, and then nothing is compared.
                let held = current.and_then(|c| Some((c, c.scopes()?)));
                let same = |(c, _): &(&Credential, _)| c.was_sent_as(sent);
                f(held.filter(same).map(|(_, scopes)| scopes))
            }),
            _ => f(None),
        }
    }
}

impl Default for ScopeCheckLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ScopeCheckLayer {
    /// A scope check over [`Catalog::infobip`] that knows the scheme from each request's
    /// `Authorization` header, and no held scopes until [`held`](Self::held) declares them.
    /// Pre-flight checks are on; a `403` is returned as the response. It judges requests to
    /// HTTPS hosts under `infobip.com` and relative URIs; [`allow_origin`](Self::allow_origin)
    /// names other origins, and requests to any other host pass through untouched.
    ///
    /// ```
    /// use infobip_auth::scope::ScopeCheckLayer;
    /// use infobip_auth::Error;
    /// # use http::{Request, Response, StatusCode};
    /// # use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let infobip = service_fn(|_: Request<String>| async {
    /// #     let body = r#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;
    /// #     let mut response = Response::new(body.to_owned());
    /// #     *response.status_mut() = StatusCode::FORBIDDEN;
    /// #     Ok::<_, std::convert::Infallible>(response)
    /// # });
    /// # let sms = || Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced")
    /// #     .header("authorization", "App 003026bbc133714df1834b8638bb496e")
    /// #     .body(String::new());
    /// // `infobip` answers every request with Infobip's `403`; `sms()` sends an SMS with an API key.
    /// let response = ScopeCheckLayer::new().layer(infobip).oneshot(sms()?).await?;
    /// // The `403` is the response, explained by the error in its extensions.
    /// assert_eq!(response.status(), StatusCode::FORBIDDEN);
    /// let meaning = response.extensions().get::<Error>().ok_or("not classified")?;
    /// assert!(meaning.to_string().starts_with("forbidden: POST /sms/2/text/advanced needs any of message:send"));
    /// # Ok(()) }
    /// ```
    pub fn new() -> Self {
        Self {
            config: Config {
                catalog: Catalog::infobip(),
                held: None,
                cache: None,
                hosts: AllowedHosts::Infobip,
                preflight: true,
                reject_forbidden: false,
                read_limit: DEFAULT_READ_LIMIT,
                read_timeout: DEFAULT_READ_TIMEOUT,
            },
        }
    }

    /// The scope check of an auth layer: it reads the scopes of the credential the auth layer
    /// sends, and judges the requests to the hosts it sends that credential to.
    pub(crate) fn with_cache(cache: CredentialCache, hosts: AllowedHosts) -> Self {
        let mut layer = Self::new();
        layer.config.cache = Some(cache);
        layer.config.hosts = hosts;
        layer
    }

    /// Also judges requests to `base_url`'s origin. The first origin added replaces the default
    /// "any HTTPS host under `infobip.com`", as
    /// [`InfobipAuthLayer::allow_origin`](crate::InfobipAuthLayer::allow_origin) does. Requests
    /// to any other host pass through untouched: the catalogue describes Infobip's API, and a
    /// `403` from another service means something else. A relative URI (a tonic channel's)
    /// names no host and is judged. A check made by
    /// [`InfobipAuthLayer::scope_check`](crate::InfobipAuthLayer::scope_check) judges the
    /// auth layer's hosts already.
    ///
    /// # Errors
    /// See [`BaseUrl::new`]: plain HTTP is allowed for loopback hosts only.
    ///
    /// ```
    /// use http::{Request, Response, StatusCode};
    /// use infobip_auth::scope::ScopeCheckLayer;
    /// use infobip_auth::Error;
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // Stands in for a test server on loopback that answers every request with a `403`.
    /// let server = service_fn(|_: Request<String>| async {
    ///     let mut response = Response::new(String::new());
    ///     *response.status_mut() = StatusCode::FORBIDDEN;
    ///     Ok::<_, std::convert::Infallible>(response)
    /// });
    /// let request = || Request::post("http://127.0.0.1:8080/sms/2/text/advanced")
    ///     .header("authorization", "App 003026bbc133714df1834b8638bb496e")
    ///     .body(String::new());
    ///
    /// // Not an Infobip host: the 403 passes through unexplained.
    /// let response = ScopeCheckLayer::new().layer(server).oneshot(request()?).await?;
    /// assert!(response.extensions().get::<Error>().is_none());
    ///
    /// let layer = ScopeCheckLayer::new().allow_origin("http://127.0.0.1:8080")?;
    /// let response = layer.layer(server).oneshot(request()?).await?;
    /// assert!(response.extensions().get::<Error>().and_then(Error::forbidden).is_some());
    /// assert!(ScopeCheckLayer::new().allow_origin("http://example.com").is_err()); // clear text
    /// # Ok(()) }
    /// ```
    pub fn allow_origin(mut self, base_url: &str) -> Result<Self, ConfigError> {
        let base = BaseUrl::new(base_url)?;
        self.config.hosts = self.config.hosts.with(base);
        Ok(self)
    }

    /// Looks operations up in `catalog` instead of [`Catalog::infobip`], for instance one with
    /// entries of your own added.
    ///
    /// ```
    /// use http::{Method, Request};
    /// use infobip_auth::scope::{AuthScheme, Catalog, ScopeCheckLayer};
    /// use infobip_auth::{Error, ErrorKind};
    /// # use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let client = service_fn(|_: Request<String>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// # });
    /// let catalog = Catalog::infobip()
    ///     .with_operation(Method::GET, "/beta/1/things", "beta:read".parse()?, &[AuthScheme::ApiKey])?;
    /// let layer = ScopeCheckLayer::new().catalog(catalog);
    /// // The new entry takes API keys only: a Basic request is refused before it is sent.
    /// let request = Request::get("https://xyz12.api.infobip.com/beta/1/things")
    ///     .header("authorization", "Basic QWxhZGRpbjpvcGVuU2VzYW1l")
    ///     .body(String::new())?;
    /// let err = layer.layer(client).oneshot(request).await.err().ok_or("sent")?;
    /// assert!(matches!(Error::find(&*err).map(Error::kind), Some(ErrorKind::SchemeNotAccepted { .. })));
    /// # Ok(()) }
    /// ```
    pub fn catalog(mut self, catalog: Catalog) -> Self {
        self.config.catalog = catalog;
        self
    }

    /// Declares the scopes the credential holds. They win over the scopes the auth layer's
    /// credential reports, and make pre-flight scope checks possible for a standalone layer.
    ///
    /// ```
    /// use infobip_auth::scope::ScopeCheckLayer;
    /// use infobip_auth::Error;
    /// # use http::{Request, Response, StatusCode};
    /// # use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let infobip = service_fn(|_: Request<String>| async {
    /// #     let body = r#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;
    /// #     let mut response = Response::new(body.to_owned());
    /// #     *response.status_mut() = StatusCode::FORBIDDEN;
    /// #     Ok::<_, std::convert::Infallible>(response)
    /// # });
    /// # let sms = || Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced")
    /// #     .header("authorization", "App 003026bbc133714df1834b8638bb496e")
    /// #     .body(String::new());
    /// // `infobip` answers every request with Infobip's `403`; `sms()` sends an SMS with an API key.
    /// let layer = ScopeCheckLayer::new().held("inbound-message:read".parse()?);
    /// // No held scope grants sending an SMS: refused before it is sent.
    /// let err = layer.layer(infobip).oneshot(sms()?).await.err().ok_or("sent")?;
    /// let refused = Error::find(&*err).ok_or("not ours")?;
    /// assert!(refused.to_string().ends_with("; the credential holds inbound-message:read"));
    /// # Ok(()) }
    /// ```
    pub fn held(mut self, scopes: Scopes) -> Self {
        self.config.held = Some(Arc::new(scopes));
        self
    }

    /// Turns the pre-flight checks on (the default) or off. When on, a request is refused
    /// with `Err(`[`Error`](crate::Error)`)` and not sent when the endpoint does not accept the
    /// request's authentication scheme, or when the held scopes are known and grant none of
    /// the endpoint's scopes.
    ///
    /// ```
    /// use infobip_auth::scope::ScopeCheckLayer;
    /// # use http::{Request, Response, StatusCode};
    /// # use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let infobip = service_fn(|_: Request<String>| async {
    /// #     let body = r#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;
    /// #     let mut response = Response::new(body.to_owned());
    /// #     *response.status_mut() = StatusCode::FORBIDDEN;
    /// #     Ok::<_, std::convert::Infallible>(response)
    /// # });
    /// # let sms = || Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced")
    /// #     .header("authorization", "App 003026bbc133714df1834b8638bb496e")
    /// #     .body(String::new());
    /// // `infobip` answers every request with Infobip's `403`; `sms()` sends an SMS with an API key.
    /// let layer = ScopeCheckLayer::new().held("inbound-message:read".parse()?).preflight(false);
    /// // Sent although no held scope grants it, and the server's `403` comes back.
    /// let response = layer.layer(infobip).oneshot(sms()?).await?;
    /// assert_eq!(response.status(), StatusCode::FORBIDDEN);
    /// # Ok(()) }
    /// ```
    pub fn preflight(mut self, on: bool) -> Self {
        self.config.preflight = on;
        self
    }

    /// Turns a `403` answer into `Err(`[`Error`](crate::Error)`)` (kind
    /// [`Forbidden`](crate::ErrorKind::Forbidden)) instead of returning the response with the
    /// error in its extensions. A `401` stays a response either way, so that the auth layer
    /// around this one can renew the credential and replay the request.
    ///
    /// The `403` response itself is dropped: its headers, and the parts of its body the error
    /// does not keep (the newer shape's `violations` and `resources`), are lost to the caller.
    ///
    /// ```
    /// use infobip_auth::scope::ScopeCheckLayer;
    /// use infobip_auth::{Error, ErrorKind};
    /// # use http::{Request, Response, StatusCode};
    /// # use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let infobip = service_fn(|_: Request<String>| async {
    /// #     let body = r#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;
    /// #     let mut response = Response::new(body.to_owned());
    /// #     *response.status_mut() = StatusCode::FORBIDDEN;
    /// #     Ok::<_, std::convert::Infallible>(response)
    /// # });
    /// # let sms = || Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced")
    /// #     .header("authorization", "App 003026bbc133714df1834b8638bb496e")
    /// #     .body(String::new());
    /// // `infobip` answers every request with Infobip's `403`; `sms()` sends an SMS with an API key.
    /// let layer = ScopeCheckLayer::new().reject_forbidden();
    /// let err = layer.layer(infobip).oneshot(sms()?).await.err().ok_or("not refused")?;
    /// assert!(matches!(Error::find(&*err).map(Error::kind), Some(ErrorKind::Forbidden(_))));
    /// # Ok(()) }
    /// ```
    pub fn reject_forbidden(mut self) -> Self {
        self.config.reject_forbidden = true;
        self
    }

    /// How many bytes of a `401` or `403` body are read to classify it (default 64 KiB; never
    /// more than 1,024 frames, so empty frames cannot be held without bound).
    /// Those bytes are handed to the caller again, followed by the rest of the body; no other
    /// status has its body read.
    ///
    /// ```
    /// use http_body_util::BodyExt;
    /// use infobip_auth::scope::ScopeCheckLayer;
    /// use infobip_auth::Error;
    /// # use http::{Request, Response, StatusCode};
    /// # use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let infobip = service_fn(|_: Request<String>| async {
    /// #     let body = r#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;
    /// #     let mut response = Response::new(body.to_owned());
    /// #     *response.status_mut() = StatusCode::FORBIDDEN;
    /// #     Ok::<_, std::convert::Infallible>(response)
    /// # });
    /// # let sms = || Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced")
    /// #     .header("authorization", "App 003026bbc133714df1834b8638bb496e")
    /// #     .body(String::new());
    /// // `infobip` answers every request with Infobip's `403`; `sms()` sends an SMS with an API key.
    /// let response = ScopeCheckLayer::new().read_limit(16).layer(infobip).oneshot(sms()?).await?;
    /// // 16 bytes of the body were read: too few to find Infobip's `messageId`.
    /// let forbidden = response.extensions().get::<Error>().and_then(Error::forbidden).ok_or("not a 403")?;
    /// let api = forbidden.api.as_ref().ok_or("no body")?;
    /// assert_eq!((api.code(), api.raw()), (None, Some(r#"{"requestError":"#)));
    /// // The caller still gets the whole body.
    /// let body = response.into_body().collect().await?.to_bytes();
    /// assert!(body.ends_with(br#""text":"Forbidden"}}}"#));
    /// # Ok(()) }
    /// ```
    pub fn read_limit(mut self, bytes: usize) -> Self {
        self.config.read_limit = bytes;
        self
    }

    /// How long the body of a `401` or `403` is waited for, once it makes the check wait
    /// (default 5 s). When it passes, the response is classified from what had come (a
    /// partial error body is kept as [`ApiError::raw`](crate::ApiError::raw)) and handed back
    /// with its status and headers; what had been read comes first in its body, and the rest,
    /// should it still come, follows. The timer is Tokio's, so a runtime with its time driver
    /// (`enable_all`, `#[tokio::main]`) is needed; outside a Tokio runtime, the read waits for
    /// the body with no bound of its own.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bytes::Bytes;
    /// use futures_util::{StreamExt, stream};
    /// use http::{Request, Response, StatusCode};
    /// use http_body::Frame;
    /// use http_body_util::StreamBody;
    /// use infobip_auth::Error;
    /// use infobip_auth::scope::ScopeCheckLayer;
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // A `403` whose body stops after its first bytes.
    /// let stalling = service_fn(|_: Request<String>| async {
    ///     let start = Frame::data(Bytes::from_static(br#"{"requestError":"#));
    ///     let frames = stream::iter([Ok::<_, std::convert::Infallible>(start)]).chain(stream::pending());
    ///     let mut response = Response::new(StreamBody::new(frames));
    ///     *response.status_mut() = StatusCode::FORBIDDEN;
    ///     Ok::<_, std::convert::Infallible>(response)
    /// });
    /// # let sms = Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced")
    /// #     .header("authorization", "App 003026bbc133714df1834b8638bb496e")
    /// #     .body(String::new())?;
    /// let layer = ScopeCheckLayer::new().read_timeout(Duration::from_secs(2));
    /// // On tokio's paused clock: after two seconds the response comes back, classified from
    /// // what had come.
    /// let start = tokio::time::Instant::now();
    /// let response = layer.layer(stalling).oneshot(sms).await?;
    /// assert_eq!(start.elapsed(), Duration::from_secs(2));
    /// let forbidden = response.extensions().get::<Error>().and_then(Error::forbidden).ok_or("not a 403")?;
    /// assert_eq!(forbidden.api.as_ref().and_then(|api| api.raw()), Some(r#"{"requestError":"#));
    /// # Ok(()) }
    /// ```
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.config.read_timeout = timeout;
        self
    }
}

impl<S> Layer<S> for ScopeCheckLayer {
    type Service = ScopeCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ScopeCheck {
            inner,
            config: Arc::new(self.config.clone()),
            last_judged: LastAllowed::default(),
        }
    }
}

/// Middleware that classifies `401` and `403` answers and refuses requests Infobip is certain
/// to refuse.
///
/// * Before sending (when pre-flight checks are on): the endpoint's accepted schemes and, when
///   the held scopes are known, its scopes; a refusal is `Err(`[`Error`](crate::Error)`)` and
///   the inner service is not called.
/// * After: a `401` gets an [`Error`](crate::Error) of kind
///   [`InvalidCredentials`](crate::ErrorKind::InvalidCredentials), a `403` one of kind
///   [`Forbidden`](crate::ErrorKind::Forbidden), in the response's extensions; the body is
///   handed back byte for byte. Other answers pass untouched, their bodies unread.
///
/// Its error type is [`BoxError`]; the request body type is not constrained (it need not be
/// `Clone`). See the [module docs](super) for it inside the auth layer.
///
/// ```
/// use http::{Request, Response};
/// use infobip_auth::scope::ScopeCheck;
/// use infobip_auth::{Error, ErrorKind};
/// use tower::{ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// let client = service_fn(|_: Request<String>| async {
///     Ok::<_, std::convert::Infallible>(Response::new(String::new()))
/// });
/// // API keys cannot manage API keys: refused before sending, as Infobip would refuse it.
/// let request = Request::get("https://xyz12.api.infobip.com/settings/2/api-keys")
///     .header("authorization", "App 003026bbc133714df1834b8638bb496e")
///     .body(String::new())?;
/// let err = ScopeCheck::new(client).oneshot(request).await.err().ok_or("sent")?;
/// assert!(matches!(Error::find(&*err).map(Error::kind), Some(ErrorKind::SchemeNotAccepted { .. })));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ScopeCheck<S> {
    inner: S,
    /// Shared by clones: a replay clones the service per request, and this costs it one count.
    config: Arc<Config>,
    /// Per service clone: the origin last judged, so a repeat skips the host parsing.
    last_judged: LastAllowed,
}

impl<S> ScopeCheck<S> {
    /// Wraps `inner` with the defaults of [`ScopeCheckLayer::new`].
    ///
    /// ```
    /// use http::{Request, Response, StatusCode};
    /// use infobip_auth::scope::ScopeCheck;
    /// use infobip_auth::{Error, ErrorKind};
    /// use tower::{ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let refusing = service_fn(|_: Request<String>| async {
    ///     let mut response = Response::new(String::new());
    ///     *response.status_mut() = StatusCode::UNAUTHORIZED;
    ///     Ok::<_, std::convert::Infallible>(response)
    /// });
    /// let request = Request::get("https://xyz12.api.infobip.com/sms/1/logs")
    ///     .header("authorization", "App 003026bbc133714df1834b8638bb496e")
    ///     .body(String::new())?;
    /// // A `401` stays a response, marked for the auth layer around this one.
    /// let response = ScopeCheck::new(refusing).oneshot(request).await?;
    /// let meaning = response.extensions().get::<Error>().map(Error::kind);
    /// assert!(matches!(meaning, Some(ErrorKind::InvalidCredentials(_))));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn new(inner: S) -> Self {
        ScopeCheckLayer::new().layer(inner)
    }

    /// The inner service.
    ///
    /// ```
    /// use infobip_auth::scope::ScopeCheckLayer;
    /// use tower::Layer;
    /// assert_eq!(*ScopeCheckLayer::new().layer(42).get_ref(), 42);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    ///
    /// ```
    /// use infobip_auth::scope::ScopeCheckLayer;
    /// use tower::Layer;
    /// let mut service = ScopeCheckLayer::new().layer(41);
    /// *service.get_mut() += 1;
    /// assert_eq!(*service.get_ref(), 42);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    ///
    /// ```
    /// use infobip_auth::scope::ScopeCheckLayer;
    /// use tower::Layer;
    /// assert_eq!(ScopeCheckLayer::new().layer(42).into_inner(), 42);
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for ScopeCheck<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeCheck")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ScopeCheck<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: Body,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let config = &*self.config;
        if !config.judges(request.uri(), &mut self.last_judged) {
            return ResponseFuture::untouched(self.inner.call(request));
        }
        let authorization = request.headers().get(AUTHORIZATION);
        if config.preflight {
            let checked = config.preflight(request.method(), request.uri().path(), authorization);
            if let Err(error) = checked {
                // Not calling a service made ready is allowed: it keeps its readiness for the
                // next call (as `tower::filter::Filter` does on a rejected request).
                return ResponseFuture::refused(error);
            }
        }
        let sent = self
            .config
            .sent(request.method(), request.uri().clone(), authorization);
        ResponseFuture::sent(self.inner.call(request), sent)
    }
}
