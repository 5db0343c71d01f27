//! [`ScopeCheckMiddleware`]: the scope check for `reqwest` clients, through
//! `reqwest-middleware` (feature `reqwest`).
//!
//! It runs the tower [`ScopeCheck`](super::ScopeCheck)'s own code: the same pre-flight, the
//! same capped and timed read of a `401` or `403` body, the same [`Error`]. The answer is
//! turned into an `http::Response` for the read and back, so the caller gets the server's
//! status, headers and body bytes.

use std::convert::Infallible;
use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{Extensions, StatusCode, Uri};
use reqwest::ResponseBuilderExt as _;
use reqwest_middleware::{Middleware, Next};

use super::ScopeCheckLayer;
use super::future::ResponseFuture;
use super::layer::Config;
use crate::reqwest::from_origin_of;
use crate::{Error, ErrorKind};

/// The scope check as a `reqwest-middleware` middleware: what [`ScopeCheck`](super::ScopeCheck)
/// does for a tower client. Made by [`ScopeCheckLayer::reqwest_middleware`], with that layer's
/// settings and hosts.
///
/// Add it **after** [`InfobipAuthLayer::reqwest_middleware`](crate::InfobipAuthLayer::reqwest_middleware)
/// (further in), so it sees the `Authorization` header the auth middleware set. A request it
/// refuses before sending is a [`reqwest_middleware::Error::Middleware`] holding an [`Error`]
/// ([`find_error`](crate::reqwest::find_error) gets it); a `401` or `403` it read comes back as
/// the response, with the [`Error`] in its extensions.
///
/// ```
/// use infobip_auth::{Error, InfobipAuthLayer};
/// use infobip_auth::mock::{MockConfig, MockServer};
/// use reqwest_middleware::ClientBuilder;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// // A key that reads inbound messages, and does not send them.
/// let server = MockServer::start_with(MockConfig::new().api_key("reader", "inbound-message:read")).await?;
/// let auth = InfobipAuthLayer::api_key("reader")?.allow_origin(server.base_url())?;
/// let client = ClientBuilder::new(reqwest::Client::new())
///     .with(auth.reqwest_middleware())
///     .with(auth.scope_check().reqwest_middleware())
///     .build();
///
/// let response = client.post(server.url("/sms/2/text/advanced")).body("{}").send().await?;
/// assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
/// let meaning = response.extensions().get::<Error>().ok_or("not explained")?;
/// assert!(meaning.to_string().starts_with("forbidden: POST /sms/2/text/advanced needs any of message:send"));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ScopeCheckMiddleware {
    config: Arc<Config>,
}

impl ScopeCheckLayer {
    /// This scope check as a `reqwest-middleware` middleware ([`ScopeCheckMiddleware`]), with
    /// the same settings: catalogue, held scopes, pre-flight, `reject_forbidden`, read limit
    /// and timeout, and judged hosts.
    ///
    /// ```
    /// use infobip_auth::{ErrorKind, InfobipAuthLayer, reqwest::find_error, source::ApiKey};
    /// use reqwest_middleware::ClientBuilder;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let key = ApiKey::new("003026bbc133714df1834b8638bb496e")?.with_scopes("inbound-message:read".parse()?);
    /// let auth = InfobipAuthLayer::new(key);
    /// let client = ClientBuilder::new(reqwest::Client::new())
    ///     .with(auth.reqwest_middleware())
    ///     .with(auth.scope_check().reqwest_middleware())
    ///     .build();
    /// // The key holds none of the scopes of sending SMS: refused, and nothing is sent.
    /// let err = client.post("https://xyz12.api.infobip.com/sms/2/text/advanced").send().await.err().ok_or("sent")?;
    /// assert!(matches!(find_error(&err).map(|err| err.kind()), Some(ErrorKind::Forbidden(_))));
    /// # Ok(()) }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
    pub fn reqwest_middleware(&self) -> ScopeCheckMiddleware {
        ScopeCheckMiddleware {
            config: Arc::new(self.config.clone()),
        }
    }
}

impl ScopeCheckMiddleware {
    /// Whether `url` goes to a judged host. Only the scheme and authority decide, so a URL
    /// too long for `http::Uri` is judged by its origin like any other; a reqwest URL is
    /// always absolute.
    fn judged(&self, url: &reqwest::Url) -> bool {
        let origin = Uri::builder()
            .scheme(url.scheme())
            .authority(url.authority())
            .path_and_query("/")
            .build();
        origin.is_ok_and(|origin| self.config.hosts.allows(&origin))
    }
}

#[async_trait::async_trait]
impl Middleware for ScopeCheckMiddleware {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        if !self.judged(request.url()) {
            return next.run(request, extensions).await;
        }
        let config = &self.config;
        let method = request.method().clone();
        let path = request.url().path();
        let authorization = request.headers().get(AUTHORIZATION);
        if config.preflight {
            config
                .preflight(&method, path, authorization)
                .map_err(reqwest_middleware::Error::middleware)?;
        }
        // A path `http` cannot hold (over 64 KiB) is left unexplained.
        let sent = Uri::try_from(path)
            .ok()
            .map(|path| config.sent(&method, path, authorization));
        let sent_to = request.url().clone();
        let response = next.run(request, extensions).await?;
        let status = response.status();
        let Some(sent) = sent else {
            return Ok(response);
        };
        // A refusal from another origin, where a redirect took the request without its
        // `Authorization`, says nothing of the credential's scopes: left as it came.
        if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN
            || !from_origin_of(&response, &sent_to)
        {
            return Ok(response);
        }
        // reqwest's conversion to `http` drops the URL; it is put back for the way out.
        let url = response.url().clone();
        let response = http::Response::<reqwest::Body>::from(response);
        let read = ResponseFuture::sent(std::future::ready(Ok::<_, Infallible>(response)), sent);
        let (mut parts, body) = read
            .await
            .map_err(|err| {
                let error = Error::find(&*err).cloned();
                error.unwrap_or_else(|| Error::new(ErrorKind::Transport).with_source(err))
            })
            .map_err(reqwest_middleware::Error::middleware)?
            .into_parts();
        if let Ok(with_url) = http::Response::builder().url(url).body(()) {
            parts.extensions.extend(with_url.into_parts().0.extensions);
        }
        let body = reqwest::Body::wrap(body);
        Ok(http::Response::from_parts(parts, body).into())
    }
}
