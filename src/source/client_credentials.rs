//! [`ClientCredentials`]: OAuth 2.0 access tokens, sent as `Authorization: Bearer <token>`.
//!
//! The client-credentials grant ([RFC 6749 §4.4](https://www.rfc-editor.org/rfc/rfc6749#section-4.4)):
//! `POST /auth/1/oauth2/token` with the form `client_id`, `client_secret`,
//! `grant_type=client_credentials` answers `{"access_token","expires_in","token_type"}`. The
//! token is renewed ahead of `expires_in`, and after a `401`.
//!
//! Infobip's examples disagree on `expires_in`: its OpenAPI schema says an integer, its Java
//! example reads a string. Both are accepted. A value that cannot be right is not trusted:
//!
//! | `expires_in` | lifetime used |
//! |---|---|
//! | missing, `null`, zero, negative, or not a number | 5 minutes (short, so a token that lives longer is merely renewed early) |
//! | under 10 seconds | 10 seconds (a `401` renews the token if it dies sooner) |
//! | over 24 hours | 24 hours |
//! | anything else, as a number or a string (`3600`, `"3600"`) | that many seconds |
//!
//! ```
//! use bytes::Bytes;
//! use http::{Method, Request, Response};
//! use http_body_util::{BodyExt as _, Full};
//! use infobip_auth::InfobipAuthLayer;
//! use infobip_auth::source::{ClientCredentials, Transport};
//! use tower::{ServiceBuilder, ServiceExt as _, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
//! // Stands in for Infobip (use a hyper-util client in production): grants a token, and
//! // answers any other request with the Authorization header it carried.
//! let infobip = service_fn(|request: Request<Full<Bytes>>| async move {
//!     let body = match (request.method(), request.uri().path()) {
//!         (&Method::POST, "/auth/1/oauth2/token") => Bytes::from_static(
//!             br#"{"access_token":"eyJraWQ","expires_in":"3600","token_type":"Bearer"}"#,
//!         ),
//!         _ => request.headers().get("authorization").map_or_else(Bytes::new, |v| Bytes::copy_from_slice(v.as_bytes())),
//!     };
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(body)))
//! });
//!
//! let oauth = ClientCredentials::builder("https://xyz12.api.infobip.com", "client-id", "client-secret")
//!     .transport(Transport::new(infobip))
//!     .build()?;
//! let service = ServiceBuilder::new().layer(InfobipAuthLayer::new(oauth)).service(infobip);
//!
//! let request = Request::get("https://xyz12.api.infobip.com/sms/1/inbox/reports").body(Full::default())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "Bearer eyJraWQ");
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::credential::REDACTED;
use crate::error::ConfigError;
use crate::scope::Scopes;
use crate::source::{TokenSource, Transport, token_endpoint};
use crate::transport::{self, token_credential};
use crate::{BaseUrl, Credential, Error};

/// Infobip's path for the client-credentials grant.
const TOKEN_PATH: &str = "/auth/1/oauth2/token";

/// The lifetime assumed when `expires_in` is missing or cannot be right: short enough that a
/// token living longer is only renewed early, long enough not to hammer the endpoint.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// The shortest lifetime believed: a shorter one would renew on nearly every request, and a
/// token that dies sooner is renewed after its `401` anyway.
const MIN_LIFETIME: Duration = Duration::from_secs(10);

/// The longest lifetime believed: no Infobip token lives a day.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// An OAuth 2.0 client id and secret, exchanged for short-lived `Bearer` access tokens.
///
/// Infobip is both the authorization and the resource server; the client id and secret are the
/// ones created when signing up with Infobip. The secret lives in zeroizing memory and never
/// appears in `Debug` or in errors.
///
/// ```
/// # use infobip_auth::source::{ClientCredentials, Transport};
/// # let client = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
/// # });
/// let oauth = ClientCredentials::builder("https://xyz12.api.infobip.com", "client-id", "s3cret")
///     .transport(Transport::new(client))
///     .build()?;
/// assert!(!format!("{oauth:?}").contains("s3cret"));
/// # Ok::<(), infobip_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ClientCredentials {
    base: BaseUrl,
    endpoint: Uri,
    client_id: String,
    client_secret: Zeroizing<String>,
    scopes: Option<Scopes>,
    transport: Transport,
}

impl ClientCredentials {
    /// Starts configuring a client-credentials source for `client_id` at `base_url` (your
    /// Infobip base URL, e.g. `https://xyz12.api.infobip.com`). A
    /// [`transport`](Builder::transport) is required.
    ///
    /// ```
    /// use infobip_auth::mock::{MockServer, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
    /// use infobip_auth::source::{ClientCredentials, TokenSource};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start().await?; // Infobip-compatible, on loopback
    /// let oauth = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    ///     .transport(transport())
    ///     .build()?;
    /// assert_eq!(oauth.fetch(None).await?.scheme(), "Bearer");
    /// # Ok(()) }
    /// ```
    pub fn builder(base_url: &str, client_id: &str, client_secret: &str) -> Builder {
        Builder {
            base_url: base_url.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: Zeroizing::new(client_secret.to_owned()),
            transport: None,
            token_path: None,
            scopes: None,
        }
    }
}

/// The answer of the token endpoint. `token_type` is not read: Infobip's resource endpoints
/// take `Bearer`, whatever the answer calls it (`Bearer`, `bearer`, or nothing).
#[derive(Deserialize)]
struct Granted {
    access_token: String,
    #[serde(default, deserialize_with = "transport::any_number")]
    expires_in: Option<serde_json::Value>,
}

/// The lifetime to believe for `expires_in` (see the table in the [module docs](self)).
fn lifetime(expires_in: Option<&serde_json::Value>) -> Duration {
    match expires_in.and_then(transport::seconds) {
        Some(s) if s > 0.0 => {
            Duration::from_secs_f64(s.min(MAX_LIFETIME.as_secs_f64())).max(MIN_LIFETIME)
        }
        _ => DEFAULT_LIFETIME,
    }
}

impl TokenSource for ClientCredentials {
    async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
        let form = [
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
            ("grant_type", "client_credentials"),
        ];
        let answer = self
            .transport
            .post_form(self.endpoint.clone(), &form)
            .await?;
        let granted: Granted = transport::json(&answer)?;
        let token = Zeroizing::new(granted.access_token);
        let credential = transport::expires_after_sent(
            token_credential("Bearer", &token)?,
            &answer,
            lifetime(granted.expires_in.as_ref()),
        );
        Ok(match &self.scopes {
            Some(scopes) => credential.with_scopes(scopes.clone()),
            None => credential,
        })
    }

    fn base_url(&self) -> Option<&BaseUrl> {
        Some(&self.base)
    }

    fn name(&self) -> &'static str {
        "client_credentials"
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &REDACTED)
            .field("scopes", &self.scopes)
            .field("transport", &self.transport)
            .finish()
    }
}

/// Configures a [`ClientCredentials`]; made by [`ClientCredentials::builder`].
///
/// ```
/// use infobip_auth::{ConfigError, source::ClientCredentials};
/// // Checked when built, not at the first request: no secret over plain HTTP to a remote host.
/// let built = ClientCredentials::builder("http://xyz12.api.infobip.com", "client-id", "client-secret").build();
/// assert!(matches!(built, Err(ConfigError::InsecureUrl { .. })));
/// ```
#[must_use]
pub struct Builder {
    base_url: String,
    client_id: String,
    client_secret: Zeroizing<String>,
    transport: Option<Transport>,
    token_path: Option<String>,
    scopes: Option<Scopes>,
}

impl Builder {
    /// The HTTP client that reaches the token endpoint (required: there is no hidden default
    /// client). It may be the same client the layer wraps.
    ///
    /// ```
    /// use hyper_util::client::legacy::Client;
    /// use hyper_util::rt::TokioExecutor;
    /// use infobip_auth::ConfigError;
    /// use infobip_auth::source::{ClientCredentials, Transport};
    /// let builder = || ClientCredentials::builder("https://xyz12.api.infobip.com", "client-id", "client-secret");
    /// let client = Client::builder(TokioExecutor::new()).build_http();
    /// assert!(builder().transport(Transport::new(client)).build().is_ok());
    /// let err = builder().build().err();
    /// assert!(matches!(err, Some(ConfigError::Invalid { what: "transport", .. })));
    /// ```
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The token endpoint's path under the base URL, for a gateway that moves it (default
    /// `/auth/1/oauth2/token`).
    ///
    /// ```
    /// use infobip_auth::source::{ClientCredentials, TokenSource, Transport};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # use bytes::Bytes;
    /// # use http_body_util::{BodyExt, Full};
    /// # // Answers with a token only when `path == "/infobip/oauth/token"`, else `404`.
    /// # let client = tower::service_fn(|request: http::Request<Full<Bytes>>| async move {
    /// #     let path = request.uri().path().to_owned();
    /// #     let body = request.into_body().collect().await?.to_bytes();
    /// #     let body = String::from_utf8_lossy(&body);
    /// #     let mut response = http::Response::new(Full::new(Bytes::from(r#"{"access_token":"a1b2c3","token_type":"Bearer","expires_in":3600}"#)));
    /// #     if !(path == "/infobip/oauth/token") {
    /// #         *response.status_mut() = http::StatusCode::NOT_FOUND;
    /// #     }
    /// #     Ok::<_, infobip_auth::BoxError>(response)
    /// # });
    /// // `client` stands in for a gateway that serves the token endpoint at its own path.
    /// let oauth = ClientCredentials::builder("https://gateway.example.com", "client-id", "client-secret")
    ///     .transport(Transport::new(client))
    ///     .token_path("/infobip/oauth/token")
    ///     .build()?;
    /// assert_eq!(oauth.fetch(None).await?.header(), "Bearer a1b2c3");
    /// # Ok(()) }
    /// ```
    pub fn token_path(mut self, path: &str) -> Self {
        self.token_path = Some(path.to_owned());
        self
    }

    /// Declares the scopes the client holds. Infobip's token answer does not list them; with
    /// them declared, a scope check can explain a `403` or refuse a request before sending it.
    ///
    /// ```
    /// use infobip_auth::mock::{MockServer, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
    /// use infobip_auth::source::{ClientCredentials, TokenSource};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start().await?; // Infobip-compatible, on loopback
    /// let oauth = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    ///     .transport(transport())
    ///     .scopes("sms:manage".parse()?)
    ///     .build()?;
    /// // Each token carries them, for the scope check to read.
    /// assert_eq!(oauth.fetch(None).await?.scopes(), Some(&"sms:manage".parse()?));
    /// # Ok(()) }
    /// ```
    pub fn scopes(mut self, scopes: Scopes) -> Self {
        self.scopes = Some(scopes);
        self
    }

    /// Checks the configuration and makes the source. Nothing is sent yet: the first request
    /// through the layer fetches the token.
    ///
    /// # Errors
    /// [`ConfigError::InvalidUrl`] or [`ConfigError::InsecureUrl`] for a bad base URL or token
    /// path; [`ConfigError::Empty`] for an empty client id or secret; [`ConfigError::Invalid`]
    /// when no transport was given.
    ///
    /// ```
    /// # use infobip_auth::{ConfigError, source::ClientCredentials};
    /// let missing = ClientCredentials::builder("https://xyz12.api.infobip.com", "id", "secret").build();
    /// assert!(matches!(missing, Err(ConfigError::Invalid { what: "transport", .. })));
    /// ```
    pub fn build(self) -> Result<ClientCredentials, ConfigError> {
        let base = BaseUrl::new(&self.base_url)?;
        let endpoint = token_endpoint(&base, self.token_path.as_deref().unwrap_or(TOKEN_PATH))?;
        if self.client_id.is_empty() {
            return Err(ConfigError::Empty { what: "client id" });
        }
        if self.client_secret.is_empty() {
            return Err(ConfigError::Empty {
                what: "client secret",
            });
        }
        let transport = super::required(self.transport)?;
        Ok(ClientCredentials {
            base,
            endpoint,
            client_id: self.client_id,
            client_secret: self.client_secret,
            scopes: self.scopes,
            transport,
        })
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("base_url", &crate::origin::redacted(&self.base_url))
            .field("client_id", &self.client_id)
            .field("client_secret", &REDACTED)
            .field("transport", &self.transport)
            .field("token_path", &self.token_path)
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[cfg(test)]
mod tests;
