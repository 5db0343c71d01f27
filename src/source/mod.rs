//! Where credentials come from: the [`TokenSource`] trait, one source per Infobip method, and
//! [`FixedToken`] for another API's token ([`ClientCredentials`] serves any OAuth 2.0 server).
//!
//! | source | header | renewed |
//! |---|---|---|
//! | [`ApiKey`] | `App <key>` | never: a `401` means the key was revoked or expired |
//! | [`Basic`] | `Basic <base64(username:password)>` | never |
//! | [`Session`] | `IBSSO <token>` from `POST /auth/1/session` | before an idle gap outlives the session (60 min by default); the old session is deleted first |
//! | [`ClientCredentials`] | `Bearer <access_token>` from `POST /auth/1/oauth2/token` | ahead of `expires_in` |
//! | [`FixedToken`] (another API's token) | `<scheme> <token>`, e.g. `Bearer <token>` | never |
//! | [`AuthCode`] (Exchange OAuth, [module docs](auth_code)) | `{tokenType} {token}` (`IBSSO <token>`) from `POST /exchange/1/oauth/token` | about every 45 s of its one-minute life (`grant_type=refresh_token`); while idle too with [`RefreshPolicy::keep_alive`](crate::RefreshPolicy::keep_alive); once expired, [`ReauthorizationRequired`](crate::ErrorKind::ReauthorizationRequired) |
//!
//! The three sources that call token endpoints reach them through a [`Transport`]: any `tower`
//! service from `http::Request<Full<Bytes>>` to a response (a hyper-util client, a test fake).
//!
//! Sources are held type-erased as a [`SharedTokenSource`], so the layer has no source type
//! parameter. Implement [`TokenSource`] for your own credential store; its credentials go only
//! to HTTPS hosts under `infobip.com`, unless it names its [`base_url`](TokenSource::base_url)
//! or the layer [allows](crate::InfobipAuthLayer::allow_origin) another origin:
//!
//! ```
//! use infobip_auth::{Credential, Error, ErrorKind, source::TokenSource};
//! use std::time::Duration;
//!
//! /// Reads a token that another process keeps fresh.
//! #[derive(Debug)]
//! struct FromVault;
//!
//! impl TokenSource for FromVault {
//!     async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
//!         // A store that cannot be reached: retried after a backoff, like a token endpoint.
//!         let token = read_vault()
//!             .map_err(|cause| Error::new(ErrorKind::Store).with_source(cause))?;
//!         Ok(Credential::new("Bearer", &token)?.expires_in(Duration::from_secs(300)))
//!     }
//! }
//! # fn read_vault() -> std::io::Result<String> { Ok("token-from-vault".into()) }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
//! let layer = infobip_auth::InfobipAuthLayer::new(FromVault);
//! assert_eq!(layer.credential().await?.header(), "Bearer token-from-vault");
//! # Ok(()) }
//! ```
//!
//! A fixed token of another API is a [`FixedToken`]. A source of your own that holds one
//! returns it from [`fixed`](TokenSource::fixed) as well as [`fetch`](TokenSource::fetch):
//! held fixed, it needs no runtime and a `401` to it is final; with `fetch` alone, a `401`
//! would fetch the same token again and replay the request with it.
//!
//! An API key that a vault rotates is an `App` credential that expires with the rotation, so
//! the cache reads the vault again before the old key is retired. A key retired early is
//! refused once: the cache reads the vault again and replays the request with the new key.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::{Request, StatusCode};
//! use http_body_util::Full;
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use infobip_auth::mock::{DEMO_SCOPES, MockConfig, MockServer};
//! use infobip_auth::{Credential, Error, ErrorKind, InfobipAuthLayer, source::TokenSource};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! /// The API key a vault holds now; the vault replaces it every hour.
//! #[derive(Debug)]
//! struct VaultKey(Arc<Mutex<String>>);
//!
//! impl TokenSource for VaultKey {
//!     async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
//!         let key = self.0.lock().map_err(|_| Error::new(ErrorKind::Store))?.clone();
//!         Ok(Credential::new("App", &key)?.expires_in(Duration::from_secs(3600)))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
//! let config = MockConfig::new().api_key("key-1", DEMO_SCOPES).api_key("key-2", DEMO_SCOPES);
//! let infobip = MockServer::start_with(config).await?; // Infobip-compatible, on loopback
//! let vault = Arc::new(Mutex::new("key-1".to_owned()));
//!
//! // The source names no base URL: the layer allows the test server's origin.
//! let auth = InfobipAuthLayer::new(VaultKey(vault.clone())).allow_origin(infobip.base_url())?;
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let client = ServiceBuilder::new().layer(auth).service(client);
//! let sms = || {
//!     Request::post(infobip.url("/sms/2/text/advanced"))
//!         .header("content-type", "application/json")
//!         .body(Full::new(Bytes::from_static(br#"{"messages":[{"destinations":[{"to":"41793026727"}],"text":"Hi"}]}"#)))
//! };
//! assert_eq!(client.clone().oneshot(sms()?).await?.status(), StatusCode::OK);
//!
//! // Rotated early: the vault holds key-2 and Infobip no longer takes key-1.
//! *vault.lock().map_err(|_| "vault poisoned")? = "key-2".to_owned();
//! infobip.revoke_api_key("key-1");
//! assert_eq!(client.clone().oneshot(sms()?).await?.status(), StatusCode::OK);
//! assert_eq!(infobip.counters().unauthorized, 1); // key-1 refused once, then replayed
//! # Ok(()) }
//! ```

mod api_key;
pub mod auth_code;
mod basic;
pub mod client_credentials;
mod fixed_token;
mod pkce;
pub mod session;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use crate::transport::Transport;
pub use api_key::ApiKey;
pub use auth_code::{
    AuthCode, AuthCodeFlow, AuthorizationGrant, MemoryStore, PendingAuthorization, StoredToken,
    TokenStore,
};
pub use basic::Basic;
pub use client_credentials::ClientCredentials;
pub use fixed_token::FixedToken;
pub use session::Session;

use crate::error::ConfigError;
use crate::{BaseUrl, Credential, Error};

/// The transport a builder was given; sources that call token endpoints cannot do without one.
fn required(transport: Option<Transport>) -> Result<Transport, ConfigError> {
    transport.ok_or(ConfigError::Invalid {
        what: "transport",
        reason: "a token source needs a transport to reach Infobip: call `.transport(..)`",
    })
}

/// The URL of a token endpoint: `path` under `base`. The path is Infobip's by default; a
/// gateway in front of Infobip may move it, so it is checked here rather than trusted.
fn token_endpoint(base: &BaseUrl, path: &str) -> Result<http::Uri, ConfigError> {
    // A query or fragment is not shown: it may hold a secret put there by mistake.
    let shown = match path.find(['?', '#']) {
        Some(at) => format!("{}…", &path[..at]),
        None => path.to_owned(),
    };
    let invalid = |reason| ConfigError::InvalidUrl {
        url: shown.clone(),
        reason,
    };
    if !path.starts_with('/') {
        return Err(invalid("a token path starts with `/`"));
    }
    let parsed: http::uri::PathAndQuery = path.parse().map_err(|_| invalid("not a URL path"))?;
    if parsed.query().is_some() || path.contains('#') {
        return Err(invalid("a token path has no query or fragment"));
    }
    Ok(base.endpoint(path))
}

/// Produces credentials for the layer to send.
///
/// The layer's cache calls [`fetch`](TokenSource::fetch) at most once at a time per source, in
/// a task of its own (so a dropped request never cancels a token request half-way), shares the
/// result with every waiting request, and decides when to renew from the credential's expiry.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::time::Duration;
/// use infobip_auth::{Credential, Error, InfobipAuthLayer, source::TokenSource};
///
/// /// Numbers the tokens it makes.
/// #[derive(Debug, Default)]
/// struct Numbered(AtomicUsize);
///
/// impl TokenSource for Numbered {
///     async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
///         let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
///         Ok(Credential::new("Bearer", &format!("token-{n}"))?.expires_in(Duration::from_secs(300)))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
/// // The layer asks once, and keeps the credential until it nears its expiry.
/// let layer = InfobipAuthLayer::new(Numbered::default());
/// assert_eq!(layer.credential().await?.header(), "Bearer token-1");
/// assert_eq!(layer.credential().await?.header(), "Bearer token-1");
/// # Ok(()) }
/// ```
pub trait TokenSource: fmt::Debug + Send + Sync + 'static {
    /// Makes a new credential. `previous` is the credential it replaces, if any: a source whose
    /// server allows one live credential at a time (an IBSSO session) ends it first.
    ///
    /// # Errors
    /// The typed [`Error`] of the failed token request. The cache tries again after a backoff
    /// (at least the server's `Retry-After`), and meanwhile serves a credential still valid.
    /// A store of your own that cannot be reached fits
    /// [`ErrorKind::Store`](crate::ErrorKind::Store), with the cause as
    /// [`with_source`](Error::with_source).
    ///
    /// ```
    /// use infobip_auth::source::{ApiKey, TokenSource};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let key = ApiKey::new("003026bbc133714df1834b8638bb496e")?;
    /// let first = key.fetch(None).await?;
    /// // A fixed key has nothing to replace: asked again, it gives the same credential.
    /// assert_eq!(key.fetch(Some(&first)).await?.header(), first.header());
    /// assert_eq!(first.header(), "App 003026bbc133714df1834b8638bb496e");
    /// # Ok(()) }
    /// ```
    fn fetch(
        &self,
        previous: Option<&Credential>,
    ) -> impl Future<Output = Result<Credential, Error>> + Send;

    /// Ends `credential` at the server (an IBSSO session's `DELETE /auth/1/session`). Fixed
    /// credentials have nothing to end.
    ///
    /// # Errors
    /// The typed [`Error`] of the failed request.
    ///
    /// ```
    /// use infobip_auth::mock::{MockServer, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::{Session, TokenSource, Transport};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let server = MockServer::start().await?; // Infobip-compatible, on loopback
    /// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    ///     .transport(Transport::new(client))
    ///     .build()?;
    /// let credential = session.fetch(None).await?;
    ///
    /// // A session is ended at the server rather than left to idle out.
    /// session.revoke(&credential).await?;
    /// assert_eq!(server.counters().session_deletes, 1);
    /// # Ok(()) }
    /// ```
    fn revoke(&self, credential: &Credential) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = credential;
        std::future::ready(Ok(()))
    }

    /// Whether a new [`fetch`](TokenSource::fetch) can yield a different credential: by
    /// default, unless the source is [`fixed`](TokenSource::fixed) (keys and passwords). A
    /// `401` to a credential that does not renew is final and is not retried.
    ///
    /// ```
    /// use infobip_auth::source::{ApiKey, Basic, TokenSource};
    /// // Asking again would give the same refused credential, so a 401 is not retried.
    /// assert!(!ApiKey::new("003026bbc133714df1834b8638bb496e")?.renews());
    /// assert!(!Basic::new("Aladdin", "openSesame")?.renews());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    fn renews(&self) -> bool {
        self.fixed().is_none()
    }

    /// The credential, if this source holds one fixed (an API key, Basic credentials): the
    /// cache takes it as it is, with no fetch, so no tokio runtime is needed. `None`, the
    /// default, has the cache call [`fetch`](TokenSource::fetch) in a task of its own.
    ///
    /// ```
    /// use infobip_auth::source::{ApiKey, TokenSource};
    /// let key = ApiKey::new("003026bbc133714df1834b8638bb496e")?;
    /// assert!(key.fixed().is_some_and(|c| c.header() == "App 003026bbc133714df1834b8638bb496e"));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    fn fixed(&self) -> Option<Credential> {
        None
    }

    /// Whether [`fetch`](TokenSource::fetch) ends `previous` at the server before the new
    /// credential exists (an IBSSO session): once a renewal starts, the cache then sends the
    /// old credential no more, and requests wait for the new one, or get the old one back if
    /// the renewal fails without ending it (a failure says it did with
    /// [`Error::with_previous_ended`], or may have with [`Error::with_previous_in_doubt`]).
    /// `false` by default: the old credential serves while its successor is fetched.
    ///
    /// ```
    /// use infobip_auth::source::{ApiKey, TokenSource};
    /// assert!(!ApiKey::new("003026bbc133714df1834b8638bb496e")?.ends_previous());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    fn ends_previous(&self) -> bool {
        false
    }

    /// The base URL the credentials are made for: Infobip's, or for [`ClientCredentials`]
    /// the authorization server's. The layer sends them to that origin only, and to those
    /// [`allow_origin`](crate::InfobipAuthLayer::allow_origin) adds; `None` means any HTTPS
    /// host under `infobip.com` until an origin is allowed.
    ///
    /// ```
    /// use infobip_auth::source::{ApiKey, ClientCredentials, TokenSource, Transport};
    /// # let client = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # });
    /// // An API key is good on any Infobip host; a token, only where it was issued.
    /// assert!(ApiKey::new("003026bbc133714df1834b8638bb496e")?.base_url().is_none());
    /// let oauth = ClientCredentials::builder("https://xyz12.api.infobip.com", "client-id", "client-secret")
    ///     .transport(Transport::new(client))
    ///     .build()?;
    /// assert_eq!(oauth.base_url().map(ToString::to_string).as_deref(), Some("https://xyz12.api.infobip.com"));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    fn base_url(&self) -> Option<&BaseUrl> {
        None
    }

    /// A short name for logs and tracing: the source's type name by default.
    ///
    /// ```
    /// use infobip_auth::{Credential, Error, source::{ApiKey, TokenSource}};
    ///
    /// #[derive(Debug)]
    /// struct Vault;
    ///
    /// impl TokenSource for Vault {
    ///     async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
    ///         Ok(Credential::new("Bearer", "token-from-vault")?)
    ///     }
    /// }
    ///
    /// // The `source` of tracing events: the crate's sources are named briefly, others by type.
    /// assert_eq!(ApiKey::new("003026bbc133714df1834b8638bb496e")?.name(), "api_key");
    /// assert!(Vault.name().ends_with("Vault"));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    fn name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe twin of [`TokenSource`], implemented for every source.
trait DynTokenSource: fmt::Debug + Send + Sync + 'static {
    fn fetch<'a>(
        &'a self,
        previous: Option<&'a Credential>,
    ) -> BoxFuture<'a, Result<Credential, Error>>;
    fn revoke<'a>(&'a self, credential: &'a Credential) -> BoxFuture<'a, Result<(), Error>>;
    fn renews(&self) -> bool;
    fn fixed(&self) -> Option<Credential>;
    fn ends_previous(&self) -> bool;
    fn base_url(&self) -> Option<&BaseUrl>;
    fn name(&self) -> &'static str;
}

impl<T: TokenSource> DynTokenSource for T {
    fn fetch<'a>(
        &'a self,
        previous: Option<&'a Credential>,
    ) -> BoxFuture<'a, Result<Credential, Error>> {
        Box::pin(TokenSource::fetch(self, previous))
    }

    fn revoke<'a>(&'a self, credential: &'a Credential) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(TokenSource::revoke(self, credential))
    }

    fn renews(&self) -> bool {
        TokenSource::renews(self)
    }

    fn fixed(&self) -> Option<Credential> {
        TokenSource::fixed(self)
    }

    fn ends_previous(&self) -> bool {
        TokenSource::ends_previous(self)
    }

    fn base_url(&self) -> Option<&BaseUrl> {
        TokenSource::base_url(self)
    }

    fn name(&self) -> &'static str {
        TokenSource::name(self)
    }
}

/// Any [`TokenSource`], type-erased and shared. Every source converts into it with `From`.
///
/// ```
/// use infobip_auth::source::{ApiKey, SharedTokenSource};
/// let source = SharedTokenSource::from(ApiKey::new("003026bbc133714df1834b8638bb496e")?);
/// assert!(!source.renews());
/// # Ok::<(), infobip_auth::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct SharedTokenSource(Arc<dyn DynTokenSource>);

impl SharedTokenSource {
    /// See [`TokenSource::fetch`].
    ///
    /// # Errors
    /// The source's typed [`Error`].
    ///
    /// ```
    /// # use infobip_auth::source::{ApiKey, SharedTokenSource};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let source = SharedTokenSource::from(ApiKey::new("key")?);
    /// assert_eq!(source.fetch(None).await?.header(), "App key");
    /// # Ok(()) }
    /// ```
    ///
    /// This calls the source directly, outside any layer's cache: no single flight, and a
    /// credential made here (an IBSSO session) is the caller's to [`revoke`](Self::revoke).
    pub async fn fetch(&self, previous: Option<&Credential>) -> Result<Credential, Error> {
        self.0.fetch(previous).await
    }

    /// See [`TokenSource::revoke`].
    ///
    /// # Errors
    /// The source's typed [`Error`].
    ///
    /// ```
    /// use infobip_auth::mock::{MockServer, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::{Session, SharedTokenSource};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start().await?; // Infobip-compatible, on loopback
    /// let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    ///     .transport(transport())
    ///     .build()?;
    /// let source = SharedTokenSource::from(session);
    /// let credential = source.fetch(None).await?;
    /// source.revoke(&credential).await?; // the session is deleted
    /// assert_eq!(server.counters().session_deletes, 1);
    /// # Ok(()) }
    /// ```
    pub async fn revoke(&self, credential: &Credential) -> Result<(), Error> {
        self.0.revoke(credential).await
    }

    /// See [`TokenSource::renews`].
    ///
    /// ```
    /// # use infobip_auth::source::{Basic, SharedTokenSource};
    /// assert!(!SharedTokenSource::from(Basic::new("user", "pw")?).renews());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn renews(&self) -> bool {
        self.0.renews()
    }

    /// See [`TokenSource::fixed`].
    ///
    /// ```
    /// # use infobip_auth::source::{Basic, SharedTokenSource};
    /// assert!(SharedTokenSource::from(Basic::new("user", "pw")?).fixed().is_some());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn fixed(&self) -> Option<Credential> {
        self.0.fixed()
    }

    /// See [`TokenSource::ends_previous`].
    ///
    /// ```
    /// # use infobip_auth::source::{Basic, SharedTokenSource};
    /// assert!(!SharedTokenSource::from(Basic::new("user", "pw")?).ends_previous());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn ends_previous(&self) -> bool {
        self.0.ends_previous()
    }

    /// See [`TokenSource::base_url`].
    ///
    /// ```
    /// # use infobip_auth::source::{ApiKey, SharedTokenSource};
    /// assert!(SharedTokenSource::from(ApiKey::new("key")?).base_url().is_none());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn base_url(&self) -> Option<&BaseUrl> {
        self.0.base_url()
    }

    /// See [`TokenSource::name`].
    ///
    /// ```
    /// # use infobip_auth::source::{ApiKey, SharedTokenSource};
    /// assert_eq!(SharedTokenSource::from(ApiKey::new("key")?).name(), "api_key");
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl<T: TokenSource> From<T> for SharedTokenSource {
    fn from(source: T) -> Self {
        Self(Arc::new(source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn _object_safe(_: &dyn DynTokenSource) {}

    fn _send_sync<T: Send + Sync>() {}

    #[test]
    fn shared_source_is_send_and_sync() {
        _send_sync::<SharedTokenSource>();
    }
}
