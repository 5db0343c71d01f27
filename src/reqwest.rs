//! [`InfobipAuthMiddleware`]: the same sources and cache for `reqwest` clients, through
//! [`reqwest-middleware`](https://docs.rs/reqwest-middleware).
//!
//! reqwest takes no tower layers; this middleware gives a `reqwest_middleware` client what
//! [`InfobipAuthLayer`] gives a tower client: host binding, a cached credential renewed ahead
//! of expiry by one token request at a time, and after a `401` one renewal and one replay (when
//! `reqwest` can clone the request, i.e. its body is not a stream, and the layer's policy is not
//! [`ReplayPolicy::never`](crate::ReplayPolicy::never); its other settings choose by tower body
//! type and do not apply here).
//!
//! ```no_run
//! use infobip_auth::InfobipAuthLayer;
//! use reqwest_middleware::ClientBuilder;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = InfobipAuthLayer::api_key("003026bbc133714df1834b8638bb496e")?;
//! let reqwest = reqwest::Client::builder()
//!     .redirect(infobip_auth::reqwest::redirect_policy()) // see below
//!     .build()?;
//! let client = ClientBuilder::new(reqwest)
//!     .with(auth.reqwest_middleware())
//!     .build();
//! let response = client
//!     .post("https://xyz12.api.infobip.com/sms/2/text/advanced")
//!     .body(r#"{"messages":[]}"#)
//!     .send()
//!     .await?;
//! # let _ = response; Ok(()) }
//! ```
//!
//! The middleware's own failures (no credential could be had, a host the credential is not for)
//! are a [`reqwest_middleware::Error::Middleware`] holding an [`Error`]: [`find_error`] gets it.
//! A `401` it hands back carries an [`Error`] of kind
//! [`InvalidCredentials`](ErrorKind::InvalidCredentials) in its extensions, unless a middleware
//! inside it put one there first, which is kept.
//!
//! A `403` says nothing of the scope it lacked. Add the scope check after this middleware,
//! `.with(auth.scope_check().reqwest_middleware())` (see
//! [`ScopeCheckMiddleware`](crate::scope::ScopeCheckMiddleware)): requests to the layer's
//! hosts that Infobip is certain to refuse fail before sending (an [`Error`], which
//! [`find_error`] gets), and a `401` or `403` comes back with an [`Error`] naming the scopes
//! in its extensions, status, headers and body as the server sent them.
//!
//! reqwest follows redirects inside the middleware, and drops `Authorization` when one leads to
//! another origin (scheme, host or port): a `401` from there is handed back as it came, with
//! no renewal, no replay and no [`Error`], since that origin never saw the credential. But
//! reqwest 0.13 sends the credential again on a further redirect within that other origin:
//! build the client with [`redirect_policy`], which stops at the first redirect that leaves
//! the request's origin.

use http::header::AUTHORIZATION;
use http::{Extensions, StatusCode, Uri};
use reqwest_middleware::{Middleware, Next};

use crate::cache::Refusal;
use crate::future::{invalid_credentials, mark_refused, set_credential};
use crate::{Error, ErrorKind, InfobipAuthLayer};

/// The redirect policy for a reqwest client that carries Infobip credentials: redirects within
/// the request's origin are followed as reqwest's default policy follows them (at most ten),
/// and the first that leads to another origin is not: its `3xx` is handed back.
///
/// reqwest drops `Authorization` on a redirect to another origin, but 0.13 sends it again on a
/// further redirect within that origin (each hop is rebuilt from the first request's headers,
/// and only a change of origin from the hop before strips them), so the credential would reach
/// a host it was never meant for. Stopping at the origin's edge keeps it home.
///
/// ```
/// use infobip_auth::InfobipAuthLayer;
/// use reqwest_middleware::ClientBuilder;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = InfobipAuthLayer::api_key("003026bbc133714df1834b8638bb496e")?;
/// let reqwest = reqwest::Client::builder()
///     .redirect(infobip_auth::reqwest::redirect_policy())
///     .build()?;
/// let client = ClientBuilder::new(reqwest).with(auth.reqwest_middleware()).build();
/// # let _ = client; Ok(()) }
/// ```
#[must_use]
pub fn redirect_policy() -> reqwest::redirect::Policy {
    let within_origin = reqwest::redirect::Policy::default();
    reqwest::redirect::Policy::custom(move |attempt| {
        let first = attempt.previous().first().map(reqwest::Url::origin);
        if first.is_some_and(|first| first != attempt.url().origin()) {
            attempt.stop()
        } else {
            within_origin.redirect(attempt)
        }
    })
}

/// Authenticates `reqwest` requests with an [`InfobipAuthLayer`]'s source and cache.
///
/// Made by [`InfobipAuthLayer::reqwest_middleware`]; it shares that layer's cache, so tower and
/// reqwest clients of one application send one credential and renew it once.
///
/// ```
/// use infobip_auth::InfobipAuthLayer;
/// use infobip_auth::mock::{MockServer, DEMO_API_KEY};
/// use reqwest_middleware::ClientBuilder;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// let server = MockServer::start().await?; // Infobip-compatible, on loopback
/// let auth = InfobipAuthLayer::api_key(DEMO_API_KEY)?.allow_origin(server.base_url())?;
/// let client = ClientBuilder::new(reqwest::Client::new())
///     .with(auth.reqwest_middleware())
///     .build();
///
/// // The request is built without a credential; the middleware adds it.
/// let response = client.get(server.url("/sms/1/inbox/reports")).send().await?;
/// assert_eq!(response.status(), reqwest::StatusCode::OK);
/// assert_eq!(server.counters().resource_requests("App"), 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct InfobipAuthMiddleware {
    layer: InfobipAuthLayer,
}

impl InfobipAuthLayer {
    /// A `reqwest-middleware` middleware sharing this layer's source, cache, allowed hosts and
    /// [`ReplayPolicy::never`](crate::ReplayPolicy::never), if set.
    /// Make it once the layer is configured: [`refresh_policy`](Self::refresh_policy) starts a
    /// new cache, which a middleware made before would not share.
    ///
    /// ```
    /// use infobip_auth::{ErrorKind, InfobipAuthLayer, reqwest::find_error};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let auth = InfobipAuthLayer::api_key("key")?;
    /// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
    ///     .with(auth.reqwest_middleware())
    ///     .build();
    /// // Like the layer, the middleware sends the key to Infobip only: nothing is sent here.
    /// let err = client.get("https://example.com/").send().await.err().ok_or("sent")?;
    /// let kind = find_error(&err).map(|err| err.kind());
    /// assert!(matches!(kind, Some(ErrorKind::HostNotAllowed { .. })), "{err}");
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
    pub fn reqwest_middleware(&self) -> InfobipAuthMiddleware {
        InfobipAuthMiddleware {
            layer: self.clone(),
        }
    }
}

/// The crate's [`Error`] inside a `reqwest-middleware` error, if the middleware failed.
///
/// `reqwest_middleware::Error` wraps middleware failures in `anyhow`, which hides them from
/// [`Error::find`]; this looks inside.
///
/// ```
/// use infobip_auth::{Error, ErrorKind, reqwest::find_error};
/// let failed = reqwest_middleware::Error::middleware(Error::new(ErrorKind::Timeout));
/// assert!(matches!(find_error(&failed).map(Error::kind), Some(ErrorKind::Timeout)));
/// ```
#[must_use]
pub fn find_error(error: &reqwest_middleware::Error) -> Option<&Error> {
    match error {
        reqwest_middleware::Error::Middleware(inner) => inner.downcast_ref::<Error>(),
        reqwest_middleware::Error::Reqwest(inner) => Error::find(inner),
    }
}

impl InfobipAuthMiddleware {
    /// Whether `url`'s origin may receive the credential. Only the scheme and authority are
    /// checked, so a URL whose path or query is too long for `http::Uri` (64 KiB) is judged by
    /// its origin like any other; an origin `http` cannot parse gets no credential.
    fn allows(&self, url: &reqwest::Url) -> bool {
        let origin = Uri::builder()
            .scheme(url.scheme())
            .authority(url.authority())
            .path_and_query("/")
            .build();
        origin.is_ok_and(|origin| self.layer.hosts.allows(&origin))
    }
}

#[async_trait::async_trait]
impl Middleware for InfobipAuthMiddleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        if request.headers().contains_key(AUTHORIZATION) {
            return next.run(request, extensions).await;
        }
        if !self.allows(request.url()) {
            let origin = request.url().origin().ascii_serialization();
            return Err(reqwest_middleware::Error::middleware(Error::new(
                ErrorKind::HostNotAllowed { origin },
            )));
        }
        let cache = &self.layer.cache;
        let (credential, id) = cache
            .get()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let renews = cache.source().renews();
        // The layer's `ReplayPolicy::never()` holds here too; otherwise reqwest decides (a
        // streaming body cannot be cloned).
        let replay = if renews && !self.layer.replay.is_never() {
            request.try_clone()
        } else {
            None
        };
        set_credential(request.headers_mut(), &credential)
            .map_err(reqwest_middleware::Error::middleware)?;
        let sent_to = request.url().clone();
        let mut response = next.clone().run(request, extensions).await?;
        if !refused_by(&response, &sent_to) {
            return Ok(response);
        }
        // A credential that had replaced a refused one backs off instead: no renewal, no replay.
        if renews && cache.invalidate(id) != Refusal::BackedOff {
            if let Some(mut replay) = replay {
                let (credential, renewed) = cache
                    .get()
                    .await
                    .map_err(reqwest_middleware::Error::middleware)?;
                set_credential(replay.headers_mut(), &credential)
                    .map_err(reqwest_middleware::Error::middleware)?;
                let mut response = next.run(replay, extensions).await?;
                if refused_by(&response, &sent_to) {
                    cache.refused_after_renewal(renewed);
                    mark_refused(response.extensions_mut(), || invalid_credentials(true));
                }
                return Ok(response);
            }
            // No replay: start the renewal now, so the next request finds it.
            drop(cache.lookup(None));
        }
        mark_refused(response.extensions_mut(), || invalid_credentials(renews));
        Ok(response)
    }
}

/// The host reqwest gives a response built from an `http::Response` without its URL, as a
/// middleware inside this one may answer: such a `401` counts as the server's.
const NO_URL_HOST: &str = "no.url.provided.local";

/// Whether `response` is a `401` to the credential sent to `sent_to`. reqwest follows redirects
/// after the middleware and drops `Authorization` when one leaves the origin, so a `401` from
/// another origin says nothing about the credential: it is handed back untouched.
fn refused_by(response: &reqwest::Response, sent_to: &reqwest::Url) -> bool {
    response.status() == StatusCode::UNAUTHORIZED && from_origin_of(response, sent_to)
}

/// Whether `response` came from `sent_to`'s origin, not from another one a redirect led to
/// (which never saw the credential); one without its URL counts as the origin's.
pub(crate) fn from_origin_of(response: &reqwest::Response, sent_to: &reqwest::Url) -> bool {
    let from = response.url();
    from.host_str() == Some(NO_URL_HOST) || from.origin() == sent_to.origin()
}
