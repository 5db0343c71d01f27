//! [`ScopeClassifier`]: tower-http's response classification, by the scopes involved.
//!
//! A `403` means something different for each endpoint (which scopes would grant it), so the
//! classifier is made per request from its method and path: a [`MakeClassifier`]. Plug it into
//! `TraceLayer::new(ScopeClassifier::new())`, or build a retry policy on it. As the scope
//! check, it judges by Infobip's catalogue only the requests that go to Infobip.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, Uri};
use tower_http::classify::{
    ClassifiedResponse, ClassifyResponse, MakeClassifier, NeverClassifyEos,
};

use super::{Catalog, Scopes, classify};
use crate::origin::{AllowedHosts, BaseUrl, is_relative};
use crate::{BoxError, ConfigError, Error, ErrorKind, Forbidden, InfobipAuthLayer};

/// Makes a [`ScopeResponseClassifier`] per request, for tower-http's `TraceLayer` and for retry
/// policies: `401`, `403`, `429` and `5xx` answers are failures, and a `403` (or a pre-flight
/// refusal) is named by the scopes that would grant the endpoint.
///
/// Put the `TraceLayer` outside [`ScopeCheckLayer`](super::ScopeCheckLayer), and the classes
/// carry what the scope check found (the server's `messageId`, the held scopes); on its own, the
/// classifier knows the endpoint's scopes from the catalogue and the held scopes if
/// [`held`](Self::held) declares them.
///
/// The catalogue describes Infobip's API and no other, so a `403` is named by its scopes only
/// for a request to Infobip: to an HTTPS host under `infobip.com` by default, to the origins
/// [`allow_origin`](Self::allow_origin) names, or to an auth layer's hosts
/// ([`for_auth_layer`](Self::for_auth_layer)); a relative URI (a tonic channel's) is taken for
/// Infobip's. A `403` from any other host is [`ScopeFailureClass::Status`], unless a scope
/// check inside judged it and attached what it found.
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use infobip_auth::scope::{ScopeCheckLayer, ScopeClassifier, ScopeFailureClass};
/// use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
/// use tower_http::classify::{ClassifiedResponse, ClassifyResponse, MakeClassifier};
/// use tower_http::trace::TraceLayer;
///
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
/// let traced = ServiceBuilder::new()
///     .layer(TraceLayer::new(ScopeClassifier::new()))
///     .layer(ScopeCheckLayer::new())
///     .service(infobip);
/// assert_eq!(traced.oneshot(sms()?).await?.status(), StatusCode::FORBIDDEN);
///
/// // What the trace layer learns of that answer: the scopes, and the server's `messageId`
/// // the scope check read.
/// let classifier = ScopeClassifier::new().make_classifier(&sms()?);
/// let response = ScopeCheckLayer::new().layer(infobip).oneshot(sms()?).await?;
/// let ClassifiedResponse::Ready(Err(ScopeFailureClass::Forbidden(forbidden))) =
///     classifier.classify_response(&response)
/// else {
///     return Err("not classified as forbidden".into());
/// };
/// assert_eq!(forbidden.api.as_ref().and_then(|api| api.code()), Some("FORBIDDEN"));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ScopeClassifier {
    shared: Arc<Shared>,
}

#[derive(Clone, Debug)]
struct Shared {
    catalog: Catalog,
    held: Option<Scopes>,
    /// The hosts whose `403`s are read by the catalogue.
    hosts: AllowedHosts,
}

impl Default for ScopeClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ScopeClassifier {
    /// A classifier over [`Catalog::infobip`], knowing no held scopes.
    ///
    /// ```
    /// use http::{Request, Response, StatusCode};
    /// use infobip_auth::scope::ScopeClassifier;
    /// use tower_http::classify::{ClassifiedResponse, ClassifyResponse, MakeClassifier};
    ///
    /// let request = Request::get("https://xyz12.api.infobip.com/sms/1/logs").body(())?;
    /// let mut busy = Response::new(());
    /// *busy.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    /// // A `503` is a failure worth retrying.
    /// let classifier = ScopeClassifier::new().make_classifier(&request);
    /// let ClassifiedResponse::Ready(Err(class)) = classifier.classify_response(&busy) else {
    ///     return Err("not a failure".into());
    /// };
    /// assert!(class.is_retryable());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                catalog: Catalog::infobip(),
                held: None,
                hosts: AllowedHosts::Infobip,
            }),
        }
    }

    /// This classifier with `change` made to its settings; the classifiers it made keep theirs.
    fn with(self, change: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        change(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// A classifier that judges the requests `auth` sends its credential to: its source's base
    /// URL, its [`allow_origin`](InfobipAuthLayer::allow_origin) list, or by default any HTTPS
    /// host under `infobip.com`. Relative URIs are judged too.
    ///
    /// ```
    /// use http::{Request, Response, StatusCode};
    /// use infobip_auth::InfobipAuthLayer;
    /// use infobip_auth::scope::{ScopeClassifier, ScopeFailureClass};
    /// use tower_http::classify::{ClassifiedResponse, ClassifyResponse, MakeClassifier};
    ///
    /// let auth = InfobipAuthLayer::api_key("003026bbc133714df1834b8638bb496e")?
    ///     .allow_origin("http://127.0.0.1:8080")?;
    /// let classifier = ScopeClassifier::for_auth_layer(&auth);
    /// let mut forbidden = Response::new(());
    /// *forbidden.status_mut() = StatusCode::FORBIDDEN;
    /// let class = |uri: &str| -> Result<_, http::Error> {
    ///     let request = Request::post(uri).body(())?;
    ///     Ok(match classifier.make_classifier(&request).classify_response(&forbidden) {
    ///         ClassifiedResponse::Ready(Err(class)) => Some(class),
    ///         _ => None,
    ///     })
    /// };
    /// // The auth layer's host: named by the scopes that grant the endpoint.
    /// let sms = class("http://127.0.0.1:8080/sms/2/text/advanced")?;
    /// assert!(matches!(sms, Some(ScopeFailureClass::Forbidden(_))));
    /// // The layer sends its key nowhere else: a 403 from elsewhere is only a status.
    /// let elsewhere = class("https://xyz12.api.infobip.com/sms/2/text/advanced")?;
    /// assert!(matches!(elsewhere, Some(ScopeFailureClass::Status(StatusCode::FORBIDDEN))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn for_auth_layer(auth: &InfobipAuthLayer) -> Self {
        let hosts = auth.hosts.clone();
        Self::new().with(|shared| shared.hosts = hosts)
    }

    /// Also judges requests to `base_url`'s origin. The first origin added replaces the default
    /// "any HTTPS host under `infobip.com`", as
    /// [`ScopeCheckLayer::allow_origin`](super::ScopeCheckLayer::allow_origin) does. A `403`
    /// from any other host is a [`ScopeFailureClass::Status`]: the catalogue describes
    /// Infobip's API, and another service's `403` means something else.
    ///
    /// # Errors
    /// See [`BaseUrl::new`]: plain HTTP is allowed for loopback hosts only.
    ///
    /// ```
    /// use http::{Request, Response, StatusCode};
    /// use infobip_auth::scope::{ScopeClassifier, ScopeFailureClass};
    /// use tower_http::classify::{ClassifiedResponse, ClassifyResponse, MakeClassifier};
    ///
    /// let request = Request::post("http://127.0.0.1:8080/sms/2/text/advanced").body(())?;
    /// let mut forbidden = Response::new(());
    /// *forbidden.status_mut() = StatusCode::FORBIDDEN;
    /// let class = |classifier: &ScopeClassifier| match classifier
    ///     .make_classifier(&request)
    ///     .classify_response(&forbidden)
    /// {
    ///     ClassifiedResponse::Ready(Err(class)) => Some(class),
    ///     _ => None,
    /// };
    ///
    /// // Not an Infobip host: the 403 is a status, not named by scopes.
    /// let infobip_only = ScopeClassifier::new();
    /// assert!(matches!(class(&infobip_only), Some(ScopeFailureClass::Status(StatusCode::FORBIDDEN))));
    ///
    /// let local = ScopeClassifier::new().allow_origin("http://127.0.0.1:8080")?;
    /// assert!(matches!(class(&local), Some(ScopeFailureClass::Forbidden(_))));
    /// assert!(ScopeClassifier::new().allow_origin("http://example.com").is_err()); // clear text
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allow_origin(self, base_url: &str) -> Result<Self, ConfigError> {
        let base = BaseUrl::new(base_url)?;
        Ok(self.with(|shared| {
            let hosts = std::mem::replace(&mut shared.hosts, AllowedHosts::Infobip);
            shared.hosts = hosts.with(base);
        }))
    }

    /// Looks endpoints up in `catalog` instead of [`Catalog::infobip`].
    ///
    /// ```
    /// use http::{Method, Request, Response, StatusCode};
    /// use infobip_auth::scope::{AuthScheme, Catalog, ScopeClassifier, ScopeFailureClass};
    /// use tower_http::classify::{ClassifiedResponse, ClassifyResponse, MakeClassifier};
    ///
    /// let catalog = Catalog::infobip()
    ///     .with_operation(Method::GET, "/beta/1/things", "beta:read".parse()?, &[AuthScheme::ApiKey])?;
    /// let request = Request::get("https://xyz12.api.infobip.com/beta/1/things").body(())?;
    /// let mut forbidden = Response::new(());
    /// *forbidden.status_mut() = StatusCode::FORBIDDEN;
    /// // A `403` from the new endpoint is named by the scope the entry gives.
    /// let classifier = ScopeClassifier::new().catalog(catalog).make_classifier(&request);
    /// let ClassifiedResponse::Ready(Err(ScopeFailureClass::Forbidden(class))) =
    ///     classifier.classify_response(&forbidden)
    /// else {
    ///     return Err("not classified as forbidden".into());
    /// };
    /// assert_eq!(class.required, Some("beta:read".parse()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn catalog(self, catalog: Catalog) -> Self {
        self.with(|shared| shared.catalog = catalog)
    }

    /// Declares the scopes the credential holds, so a `403` class names them.
    ///
    /// ```
    /// use http::{Request, Response, StatusCode};
    /// use infobip_auth::scope::{ScopeClassifier, ScopeFailureClass};
    /// use tower_http::classify::{ClassifiedResponse, ClassifyResponse, MakeClassifier};
    ///
    /// let request = Request::post("https://xyz12.api.infobip.com/email/3/send").body(())?;
    /// let mut forbidden = Response::new(());
    /// *forbidden.status_mut() = StatusCode::FORBIDDEN;
    /// let classifier = ScopeClassifier::new().held("sms:manage".parse()?).make_classifier(&request);
    /// let ClassifiedResponse::Ready(Err(ScopeFailureClass::Forbidden(class))) =
    ///     classifier.classify_response(&forbidden)
    /// else {
    ///     return Err("not classified as forbidden".into());
    /// };
    /// assert_eq!(class.held, Some("sms:manage".parse()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn held(self, scopes: Scopes) -> Self {
        self.with(|shared| shared.held = Some(scopes))
    }
}

impl MakeClassifier for ScopeClassifier {
    type Classifier = ScopeResponseClassifier;
    type FailureClass = ScopeFailureClass;
    type ClassifyEos = NeverClassifyEos<ScopeFailureClass>;

    fn make_classifier<B>(&self, req: &Request<B>) -> Self::Classifier {
        // The catalogue is consulted only when a 403 comes, so a request costs two clones
        // and a look at its host.
        let uri = req.uri();
        ScopeResponseClassifier {
            judged: is_relative(uri) || self.shared.hosts.allows(uri),
            shared: Arc::clone(&self.shared),
            method: req.method().clone(),
            uri: uri.clone(),
        }
    }
}

/// The classifier of one request, made by [`ScopeClassifier`].
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use infobip_auth::scope::{ScopeClassifier, ScopeFailureClass};
/// use tower_http::classify::{ClassifiedResponse, ClassifyResponse, MakeClassifier};
///
/// // Made per request: it keeps the endpoint, so a 403 can be named by the scopes that grant it.
/// let request = Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced").body(())?;
/// let classifier = ScopeClassifier::new().make_classifier(&request);
///
/// let mut response = Response::new(());
/// *response.status_mut() = StatusCode::FORBIDDEN;
/// let ClassifiedResponse::Ready(Err(ScopeFailureClass::Forbidden(forbidden))) =
///     classifier.classify_response(&response)
/// else {
///     return Err("not classified as forbidden".into());
/// };
/// let required = forbidden.required.as_ref().map(ToString::to_string);
/// assert_eq!(required.as_deref(), Some("message:send, sms:manage, sms:message:send"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ScopeResponseClassifier {
    shared: Arc<Shared>,
    method: Method,
    uri: Uri,
    /// Whether the request goes to a host the catalogue describes.
    judged: bool,
}

/// Shows the request without its query, which may carry a secret, and without the user
/// information of its authority.
impl fmt::Debug for ScopeResponseClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeResponseClassifier")
            .field("shared", &self.shared)
            .field("method", &self.method)
            .field("uri", &format_args!("{}", WithoutQuery(&self.uri)))
            .field("judged", &self.judged)
            .finish()
    }
}

/// A URI's scheme, host, port and path.
struct WithoutQuery<'a>(&'a Uri);

impl fmt::Display for WithoutQuery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = self.0.scheme_str() {
            write!(f, "{scheme}://")?;
        }
        if let Some(authority) = self.0.authority() {
            // What follows the last `@` is the host and port.
            let host_port = authority.as_str().rsplit('@').next().unwrap_or_default();
            f.write_str(host_port)?;
        }
        f.write_str(self.0.path())
    }
}

impl ClassifyResponse for ScopeResponseClassifier {
    type FailureClass = ScopeFailureClass;
    type ClassifyEos = NeverClassifyEos<ScopeFailureClass>;

    fn classify_response<B>(
        self,
        res: &Response<B>,
    ) -> ClassifiedResponse<Self::FailureClass, Self::ClassifyEos> {
        let status = res.status();
        let class = match status {
            StatusCode::UNAUTHORIZED => ScopeFailureClass::Unauthorized,
            StatusCode::FORBIDDEN => {
                // What the scope check found, if it ran inside; else what the catalogue says.
                let attached = res
                    .extensions()
                    .get::<Error>()
                    .and_then(Error::forbidden)
                    .cloned();
                let judged = self.judged;
                let forbidden = attached.or_else(|| {
                    if !judged {
                        return None;
                    }
                    let error = classify(
                        &self.method,
                        self.uri.path(),
                        status,
                        b"",
                        &self.shared.catalog,
                        self.shared.held.as_ref(),
                    );
                    error.as_ref().and_then(Error::forbidden).cloned()
                });
                match forbidden {
                    Some(forbidden) => ScopeFailureClass::Forbidden(Box::new(forbidden)),
                    None => ScopeFailureClass::Status(status),
                }
            }
            _ if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() => {
                ScopeFailureClass::Status(status)
            }
            _ => return ClassifiedResponse::Ready(Ok(())),
        };
        ClassifiedResponse::Ready(Err(class))
    }

    fn classify_error<E>(self, error: &E) -> Self::FailureClass
    where
        E: fmt::Display + 'static,
    {
        ScopeFailureClass::from_error(error)
    }
}

/// Why [`ScopeClassifier`] judged a request failed.
///
/// ```
/// use http::StatusCode;
/// use infobip_auth::scope::ScopeFailureClass;
/// let busy = ScopeFailureClass::Status(StatusCode::SERVICE_UNAVAILABLE);
/// assert!(busy.is_retryable());
/// assert_eq!(busy.to_string(), "status 503 Service Unavailable");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ScopeFailureClass {
    /// A `403`, or a request refused before sending for its scopes: what grants the endpoint
    /// and what the credential holds, as far as known.
    Forbidden(Box<Forbidden>),
    /// A `401`: the credential is invalid, revoked or expired.
    Unauthorized,
    /// Another failure status: `429` or `5xx`.
    Status(StatusCode),
    /// The request failed without a response.
    Error {
        /// The error's message.
        message: String,
        /// The crate's typed error, when it is one (a pre-flight refusal, a failed token
        /// request).
        error: Option<Error>,
    },
}

impl ScopeFailureClass {
    /// Whether sending the same request again may succeed: `429`, `5xx`, transient errors of
    /// this crate ([`Error::is_transient`]) and errors that are not this crate's (transport
    /// failures). Never a `401` (the auth layer already renews and replays once), a `403` or
    /// a pre-flight refusal.
    ///
    /// ```
    /// use infobip_auth::scope::ScopeFailureClass;
    /// assert!(!ScopeFailureClass::Unauthorized.is_retryable());
    /// ```
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Forbidden(_) | Self::Unauthorized => false,
            Self::Status(status) => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
            Self::Error { error, .. } => error.as_ref().is_none_or(Error::is_transient),
        }
    }

    fn from_error<E: fmt::Display + 'static>(error: &E) -> Self {
        let any: &dyn Any = error;
        let ours = any
            .downcast_ref::<BoxError>()
            .and_then(|boxed| Error::find(&**boxed))
            .or_else(|| any.downcast_ref::<Error>());
        match ours {
            Some(ours) => match ours.kind() {
                ErrorKind::Forbidden(forbidden) => Self::Forbidden(forbidden.clone()),
                _ => Self::Error {
                    message: ours.to_string(),
                    error: Some(ours.clone()),
                },
            },
            None => Self::Error {
                message: error.to_string(),
                error: None,
            },
        }
    }
}

impl fmt::Display for ScopeFailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Forbidden(forbidden) => fmt::Display::fmt(forbidden, f),
            Self::Unauthorized => {
                f.write_str("unauthorized: invalid, revoked or expired credentials")
            }
            Self::Status(status) => write!(f, "status {status}"),
            Self::Error { message, .. } => write!(f, "error: {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::Full;
    use tower::{ServiceBuilder, ServiceExt as _, service_fn};
    use tower_http::trace::TraceLayer;

    use super::*;
    use crate::scope::ScopeCheckLayer;

    const SEED_403: &[u8] =
        br#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;
    const SMS: &str = "https://xyz12.api.infobip.com/sms/2/text/advanced";

    fn sms(authorization: &str) -> Request<Full<Bytes>> {
        Request::post(SMS)
            .header(http::header::AUTHORIZATION, authorization)
            .body(Full::new(Bytes::new()))
            .unwrap_or_default()
    }

    fn answer(status: StatusCode, body: &'static [u8]) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from_static(body)));
        *response.status_mut() = status;
        response
    }

    fn class_of(classifier: &ScopeClassifier, status: StatusCode) -> Option<ScopeFailureClass> {
        let request = sms("App key");
        match classifier
            .make_classifier(&request)
            .classify_response(&answer(status, b""))
        {
            ClassifiedResponse::Ready(result) => result.err(),
            ClassifiedResponse::RequiresEos(_) => None,
        }
    }

    #[test]
    fn statuses_are_classified_as_documented() -> Result<(), BoxError> {
        let classifier = ScopeClassifier::new().held("inbound-message:read".parse()?);
        for status in [
            StatusCode::OK,
            StatusCode::NO_CONTENT,
            StatusCode::NOT_FOUND,
        ] {
            assert!(class_of(&classifier, status).is_none(), "{status}");
        }
        assert!(matches!(
            class_of(&classifier, StatusCode::UNAUTHORIZED),
            Some(ScopeFailureClass::Unauthorized)
        ));
        for status in [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            let class = class_of(&classifier, status).ok_or("not a failure")?;
            assert!(matches!(class, ScopeFailureClass::Status(s) if s == status));
            assert!(class.is_retryable(), "{status}");
        }
        let class = class_of(&classifier, StatusCode::FORBIDDEN).ok_or("not a failure")?;
        assert!(!class.is_retryable());
        assert_eq!(
            class.to_string(),
            "forbidden: POST /sms/2/text/advanced needs any of message:send, sms:manage, \
             sms:message:send; the credential holds inbound-message:read (403 Forbidden)"
        );
        Ok(())
    }

    const BY_SCOPES: &str = "named by scopes";
    const PLAIN: &str = "a plain 403";

    /// How `classifier` classes a `403` to a request for `uri`.
    fn class_of_403(classifier: &ScopeClassifier, uri: &str) -> &'static str {
        let Ok(request) = Request::post(uri).body(()) else {
            return "no request";
        };
        let classified = classifier
            .make_classifier(&request)
            .classify_response(&answer(StatusCode::FORBIDDEN, b""));
        match classified {
            ClassifiedResponse::Ready(Err(ScopeFailureClass::Forbidden(_))) => BY_SCOPES,
            ClassifiedResponse::Ready(Err(ScopeFailureClass::Status(StatusCode::FORBIDDEN))) => {
                PLAIN
            }
            _ => "something else",
        }
    }

    #[test]
    fn only_the_403s_of_judged_hosts_are_named_by_scopes() -> Result<(), BoxError> {
        let path = "/sms/2/text/advanced";
        let default = ScopeClassifier::new();
        for infobip in [SMS, "https://api.infobip.com/sms/2/text/advanced", path] {
            assert_eq!(class_of_403(&default, infobip), BY_SCOPES, "{infobip}");
        }
        for elsewhere in [
            "https://crm.example.com/sms/2/text/advanced",
            "http://xyz12.api.infobip.com/sms/2/text/advanced",
            "https://xyz12.api.infobip.com:8443/sms/2/text/advanced",
            "https://infobip.com.example/sms/2/text/advanced",
            "http://127.0.0.1:8080/sms/2/text/advanced",
        ] {
            assert_eq!(class_of_403(&default, elsewhere), PLAIN, "{elsewhere}");
        }

        // The first origin named replaces the default; a relative URI stays judged.
        let local = ScopeClassifier::new()
            .held("inbound-message:read".parse()?)
            .allow_origin("http://127.0.0.1:8080")?;
        assert_eq!(
            class_of_403(&local, "http://127.0.0.1:8080/sms/2/text/advanced"),
            BY_SCOPES
        );
        assert_eq!(class_of_403(&local, path), BY_SCOPES);
        assert_eq!(class_of_403(&local, SMS), PLAIN);
        assert_eq!(
            class_of_403(&local, "http://127.0.0.1:8081/sms/2/text/advanced"),
            PLAIN
        );
        assert!(
            ScopeClassifier::new()
                .allow_origin("http://example.com")
                .is_err()
        );

        // An auth layer's hosts: its base URL only.
        let auth =
            crate::InfobipAuthLayer::api_key("key")?.allow_origin("http://127.0.0.1:8080")?;
        let layered = ScopeClassifier::for_auth_layer(&auth);
        assert_eq!(
            class_of_403(&layered, "http://127.0.0.1:8080/sms/2/text/advanced"),
            BY_SCOPES
        );
        assert_eq!(class_of_403(&layered, SMS), PLAIN);
        let infobip = ScopeClassifier::for_auth_layer(&crate::InfobipAuthLayer::api_key("key")?);
        assert_eq!(class_of_403(&infobip, SMS), BY_SCOPES);
        assert_eq!(
            class_of_403(&infobip, "https://crm.example.com/sms/2/text/advanced"),
            PLAIN
        );
        Ok(())
    }

    #[test]
    fn a_scope_checks_finding_is_kept_whatever_the_host() -> Result<(), BoxError> {
        let request = Request::post("https://crm.example.com/sms/2/text/advanced").body(())?;
        let mut response = answer(StatusCode::FORBIDDEN, b"");
        let found = Error::new(ErrorKind::Forbidden(Box::new(Forbidden::new(
            Method::POST,
            "/sms/2/text/advanced",
        ))));
        response.extensions_mut().insert(found);
        let classified = ScopeClassifier::new()
            .make_classifier(&request)
            .classify_response(&response);
        assert!(matches!(
            classified,
            ClassifiedResponse::Ready(Err(ScopeFailureClass::Forbidden(_)))
        ));
        Ok(())
    }

    #[test]
    fn debug_shows_no_query_and_no_user_information() -> Result<(), BoxError> {
        let request = Request::get(
            "https://user:hunter2@xyz12.api.infobip.com:443/sms/1/logs?apiKey=s3cr3t&to=1",
        )
        .body(())?;
        let shown = format!("{:?}", ScopeClassifier::new().make_classifier(&request));
        assert!(
            shown.contains("uri: https://xyz12.api.infobip.com:443/sms/1/logs,"),
            "{shown}"
        );
        for secret in ["s3cr3t", "apiKey", "hunter2", "user"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        let relative = Request::get("/sms/1/logs?apiKey=s3cr3t").body(())?;
        let shown = format!("{:?}", ScopeClassifier::new().make_classifier(&relative));
        assert!(
            shown.contains("uri: /sms/1/logs,") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        Ok(())
    }

    type Failures = Arc<Mutex<Vec<String>>>;

    /// An `on_failure` callback for `TraceLayer` that writes each failure to `failures`, as
    /// `say` puts it.
    fn record(
        failures: &Failures,
        say: fn(&ScopeFailureClass) -> String,
    ) -> impl Fn(ScopeFailureClass, std::time::Duration, &tracing::Span) + Clone {
        let failures = Arc::clone(failures);
        move |class, _, _| {
            failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(say(&class));
        }
    }

    fn said(failures: &Failures) -> Vec<String> {
        failures.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    #[tokio::test]
    async fn trace_layer_reports_what_the_scope_check_found() -> Result<(), BoxError> {
        let failures = Failures::default();
        let service = ServiceBuilder::new()
            .layer(
                TraceLayer::new(ScopeClassifier::new())
                    .on_failure(record(&failures, ScopeFailureClass::to_string)),
            )
            .layer(
                ScopeCheckLayer::new()
                    .held("inbound-message:read".parse()?)
                    .preflight(false),
            )
            .service(service_fn(|_: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(answer(StatusCode::FORBIDDEN, SEED_403))
            }));
        let response = service.clone().oneshot(sms("App key")).await?;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);

        // A pre-flight refusal is an error, classified by the same scopes.
        let preflight = ServiceBuilder::new()
            .layer(
                TraceLayer::new(ScopeClassifier::new()).on_failure(record(&failures, |class| {
                    format!("{class} / retryable: {}", class.is_retryable())
                })),
            )
            .layer(ScopeCheckLayer::new().held("web:sdk".parse()?))
            .service(service_fn(|_: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(answer(StatusCode::OK, b""))
            }));
        assert!(preflight.oneshot(sms("App key")).await.is_err());

        assert_eq!(
            said(&failures),
            [
                "forbidden: POST /sms/2/text/advanced needs any of message:send, sms:manage, \
                 sms:message:send; the credential holds inbound-message:read \
                 (403 Forbidden FORBIDDEN: Forbidden)",
                "forbidden: POST /sms/2/text/advanced needs any of message:send, sms:manage, \
                 sms:message:send; the credential holds web:sdk / retryable: false",
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_refused_scheme_is_reported_with_its_endpoint() -> Result<(), BoxError> {
        let failures = Failures::default();
        let service = ServiceBuilder::new()
            .layer(
                TraceLayer::new(ScopeClassifier::new())
                    .on_failure(record(&failures, |class| format!("{class} {class:?}"))),
            )
            .layer(ScopeCheckLayer::new())
            .service(service_fn(|_: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(answer(StatusCode::OK, b""))
            }));
        let key = "003026bbc133714df1834b8638bb496e";
        let request = Request::post("https://xyz12.api.infobip.com/settings/2/api-keys")
            .header(http::header::AUTHORIZATION, format!("App {key}"))
            .body(Full::new(Bytes::new()))?;
        assert!(service.oneshot(request).await.is_err());
        let failures = said(&failures);
        let [said] = &failures[..] else {
            return Err(format!("not one failure: {failures:?}").into());
        };
        assert!(
            said.starts_with(
                "error: POST /settings/2/api-keys does not accept `App` credentials \
                 (it accepts IBSSO, Basic, Bearer)"
            ),
            "{said}"
        );
        assert!(!said.contains(key), "{said}");
        Ok(())
    }

    #[test]
    fn errors_that_are_not_ours_are_retryable_and_ours_say_themselves() {
        let io: BoxError = Box::new(std::io::Error::other("connection reset"));
        let class = ScopeFailureClass::from_error(&io);
        assert!(class.is_retryable());
        assert_eq!(class.to_string(), "error: connection reset");
        let ours: BoxError = Error::new(ErrorKind::Timeout).into();
        assert!(ScopeFailureClass::from_error(&ours).is_retryable());
        let refused: BoxError = Error::new(ErrorKind::SchemeNotAccepted {
            method: Method::POST,
            endpoint: "/settings/2/api-keys".to_owned(),
            scheme: crate::AuthScheme::ApiKey,
            accepted: vec![crate::AuthScheme::Basic],
        })
        .into();
        assert!(!ScopeFailureClass::from_error(&refused).is_retryable());
    }

    // Proves the classifier composes with `tower::retry`: a policy built on it retries a 503
    // and not a 403.
    mod usable_for_retries {
        use tower::retry::{Policy, RetryLayer};

        use super::*;

        #[derive(Clone)]
        struct RetryRetryable {
            classifier: ScopeClassifier,
            attempts_left: usize,
        }

        impl<ResB, E> Policy<Request<Full<Bytes>>, Response<ResB>, E> for RetryRetryable
        where
            E: fmt::Display + 'static,
        {
            type Future = std::future::Ready<()>;

            fn retry(
                &mut self,
                req: &mut Request<Full<Bytes>>,
                result: &mut Result<Response<ResB>, E>,
            ) -> Option<Self::Future> {
                if self.attempts_left == 0 {
                    return None;
                }
                let classifier = self.classifier.make_classifier(req);
                let class = match result {
                    Ok(response) => match classifier.classify_response(response) {
                        ClassifiedResponse::Ready(result) => result.err(),
                        ClassifiedResponse::RequiresEos(_) => None,
                    },
                    Err(error) => Some(classifier.classify_error(error)),
                };
                class.filter(ScopeFailureClass::is_retryable).map(|_| {
                    self.attempts_left -= 1;
                    std::future::ready(())
                })
            }

            fn clone_request(
                &mut self,
                req: &Request<Full<Bytes>>,
            ) -> Option<Request<Full<Bytes>>> {
                let mut copy = Request::new(req.body().clone());
                *copy.method_mut() = req.method().clone();
                *copy.uri_mut() = req.uri().clone();
                *copy.headers_mut() = req.headers().clone();
                Some(copy)
            }
        }

        async fn calls_until_done(statuses: &'static [StatusCode]) -> Result<usize, BoxError> {
            let calls = Arc::new(AtomicUsize::new(0));
            let service = ServiceBuilder::new()
                .layer(RetryLayer::new(RetryRetryable {
                    classifier: ScopeClassifier::new(),
                    attempts_left: 3,
                }))
                .layer(ScopeCheckLayer::new())
                .service(service_fn({
                    let calls = Arc::clone(&calls);
                    move |_: Request<Full<Bytes>>| {
                        let n = calls.fetch_add(1, Ordering::SeqCst);
                        let status = statuses.get(n).copied().unwrap_or(StatusCode::OK);
                        async move { Ok::<_, Infallible>(answer(status, SEED_403)) }
                    }
                }));
            service.oneshot(sms("App key")).await?;
            Ok(calls.load(Ordering::SeqCst))
        }

        #[tokio::test]
        async fn a_503_is_retried_and_a_403_is_not() -> Result<(), BoxError> {
            assert_eq!(
                calls_until_done(&[StatusCode::SERVICE_UNAVAILABLE]).await?,
                2
            );
            assert_eq!(calls_until_done(&[StatusCode::FORBIDDEN]).await?, 1);
            assert_eq!(
                calls_until_done(&[StatusCode::TOO_MANY_REQUESTS, StatusCode::FORBIDDEN]).await?,
                2
            );
            Ok(())
        }
    }
}
