//! [`InfobipAuthLayer`] and [`InfobipAuth`]: the middleware itself.

use std::fmt;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, Entry};
use http::{HeaderValue, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::cache::{CredentialCache, Local, Lookup};
use crate::error::ConfigError;
use crate::future::{On401, Replay, ResponseFuture};
use crate::grpc::GrpcRenewalLayer;
use crate::origin::{AllowedHosts, LastAllowed, is_relative, origin_of, redacted};
use crate::scope::ScopeCheckLayer;
use crate::source::{ApiKey, Basic, SharedTokenSource};
use crate::{BaseUrl, BoxError, Credential, Error, ErrorKind, RefreshPolicy, ReplayPolicy};

/// Layer that applies [`InfobipAuth`], which authenticates every request with a credential
/// from one [`TokenSource`](crate::source::TokenSource) and keeps that credential valid.
///
/// Cloning the layer shares its credential cache: every service it makes, and every clone of
/// them, uses one credential and one token request at a time.
///
/// Credentials go only to the source's base URL, to origins added with
/// [`allow_origin`](Self::allow_origin), or — for sources without a base URL, like API keys —
/// to any HTTPS host under `infobip.com`. A request whose URI names no host (a path, as a tonic
/// `Channel` is given it) gets no credential unless
/// [`relative_uris_go_to`](Self::relative_uris_go_to) says where such requests go. A request
/// that already has an `Authorization` header is sent as it is: the caller's own credential
/// wins, and the layer does not retry it.
///
/// ```
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use bytes::Bytes;
/// use infobip_auth::InfobipAuthLayer;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// // Stands in for an HTTP client: answers with the Authorization header it received.
/// let client = service_fn(|req: Request<Full<Bytes>>| async move {
///     let seen = req.headers()["authorization"].clone();
///     Ok::<_, std::convert::Infallible>(Response::new(seen))
/// });
/// let service = ServiceBuilder::new()
///     .layer(InfobipAuthLayer::api_key("003026bbc133714df1834b8638bb496e")?)
///     .service(client);
///
/// let request = Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced")
///     .body(Full::new(Bytes::from_static(b"{}")))?;
/// let response = service.oneshot(request).await?;
/// assert_eq!(response.body(), "App 003026bbc133714df1834b8638bb496e");
/// assert!(response.body().is_sensitive());
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct InfobipAuthLayer {
    pub(crate) cache: CredentialCache,
    pub(crate) hosts: AllowedHosts,
    /// Where requests whose URI names no host go; allowed by `hosts` when set.
    relative: Option<BaseUrl>,
    pub(crate) replay: ReplayPolicy,
}

impl InfobipAuthLayer {
    /// A layer that authenticates with `source`.
    ///
    /// ```
    /// use infobip_auth::{InfobipAuthLayer, source::Basic};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let layer = InfobipAuthLayer::new(Basic::new("Aladdin", "openSesame")?);
    /// assert_eq!(layer.credential().await?.header(), "Basic QWxhZGRpbjpvcGVuU2VzYW1l");
    /// # Ok(()) }
    /// ```
    pub fn new(source: impl Into<SharedTokenSource>) -> Self {
        let source = source.into();
        let hosts = match source.base_url() {
            Some(base) => AllowedHosts::Infobip.with(base.clone()),
            None => AllowedHosts::Infobip,
        };
        Self {
            cache: CredentialCache::new(source, RefreshPolicy::default()),
            hosts,
            relative: None,
            replay: ReplayPolicy::default(),
        }
    }

    /// A layer that sends an API key: `Authorization: App <key>`. A key is sent only to HTTPS
    /// hosts under `infobip.com`; add any other origin (the `mock` server, a gateway) with
    /// [`allow_origin`](Self::allow_origin).
    ///
    /// # Errors
    /// See [`ApiKey::new`].
    ///
    /// ```
    /// # use infobip_auth::InfobipAuthLayer;
    /// assert!(InfobipAuthLayer::api_key("key\r\n").is_err());
    /// ```
    pub fn api_key(key: &str) -> Result<Self, ConfigError> {
        Ok(Self::new(ApiKey::new(key)?))
    }

    /// A layer that sends Basic credentials: `Authorization: Basic <base64(username:password)>`,
    /// to the same hosts as [`api_key`](Self::api_key).
    ///
    /// # Errors
    /// See [`Basic::new`].
    ///
    /// ```
    /// # use infobip_auth::InfobipAuthLayer;
    /// assert!(InfobipAuthLayer::basic("Aladdin", "openSesame").is_ok());
    /// ```
    pub fn basic(username: &str, password: &str) -> Result<Self, ConfigError> {
        Ok(Self::new(Basic::new(username, password)?))
    }

    /// Also sends credentials to `base_url`'s origin. For a source with a base URL (a session,
    /// [`ClientCredentials`](crate::source::ClientCredentials)), that URL's origin stays
    /// allowed and this one is added: the way to reach an API that is not on its
    /// authorization server's origin. Otherwise the first origin added replaces the default
    /// "any HTTPS host under `infobip.com`". A request to an origin not allowed fails
    /// with [`ErrorKind::HostNotAllowed`] before it is sent ("credentials are not sent to
    /// http://127.0.0.1:8080"): the cure is this method, with that origin.
    ///
    /// # Errors
    /// See [`BaseUrl::new`]: plain HTTP is allowed for loopback hosts only.
    ///
    /// ```
    /// # use infobip_auth::InfobipAuthLayer;
    /// let layer = InfobipAuthLayer::api_key("key")?.allow_origin("https://xyz12.api.infobip.com")?;
    /// assert!(InfobipAuthLayer::api_key("key")?.allow_origin("http://example.com").is_err());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    ///
    /// A test server on loopback (the `mock` server) is refused until its origin is allowed:
    ///
    /// ```
    /// use http::{Request, Response};
    /// use infobip_auth::{Error, ErrorKind, InfobipAuthLayer};
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let client = service_fn(|_: Request<String>| async { Ok::<_, std::convert::Infallible>(Response::new(String::new())) });
    /// let request = || Request::get("http://127.0.0.1:8080/sms/1/inbox/reports").body(String::new());
    ///
    /// let refused = InfobipAuthLayer::api_key("key")?.layer(client).oneshot(request()?).await;
    /// let error = refused.err().ok_or("sent")?;
    /// let kind = Error::find(&*error).map(Error::kind);
    /// assert!(matches!(kind, Some(ErrorKind::HostNotAllowed { origin, .. }) if origin == "http://127.0.0.1:8080"));
    ///
    /// let allowed = InfobipAuthLayer::api_key("key")?.allow_origin("http://127.0.0.1:8080")?;
    /// assert!(allowed.layer(client).oneshot(request()?).await.is_ok());
    /// # Ok(()) }
    /// ```
    ///
    /// The first origin added ends the default, so an origin given to
    /// [`relative_uris_go_to`](Self::relative_uris_go_to) before it that only the default
    /// allowed is refused here: call that method after this one.
    pub fn allow_origin(self, base_url: &str) -> Result<Self, ConfigError> {
        let base = BaseUrl::new(base_url)?;
        let hosts = self.hosts.with(base);
        if let Some(relative) = &self.relative
            && !hosts.allows_origin(relative)
        {
            return Err(ConfigError::InvalidUrl {
                url: relative.to_string(),
                reason: "relative URIs go here, but allow_origin ended the default Infobip \
                         hosts: call relative_uris_go_to after allow_origin",
            });
        }
        Ok(Self { hosts, ..self })
    }

    /// Sends credentials with requests whose URI names no scheme and host, taking them to go
    /// to `url`'s origin. A tonic `Channel` is given such URIs (`/grpc.health.v1.Health/Check`)
    /// and adds the origin it was built for below this layer; without this method those
    /// requests fail with [`ErrorKind::HostNotAllowed`], and nothing is sent. Give the
    /// channel's own origin: the layer cannot see where the channel connects.
    ///
    /// `url`'s origin must be one the layer sends credentials to (the source's base URL, an
    /// origin from [`allow_origin`](Self::allow_origin), or by default HTTPS under
    /// `infobip.com`), so call it after `allow_origin`. A URI with a host but no scheme
    /// (`api.infobip.com:443`) still gets no credential. Only the origin counts: a path in `url`
    /// is not added to the requests.
    ///
    /// # Errors
    /// See [`BaseUrl::new`] (plain HTTP is for loopback hosts only);
    /// [`ConfigError::InvalidUrl`] for an origin the layer does not send credentials to.
    ///
    /// ```
    /// use http::{Request, Response};
    /// use infobip_auth::{ConfigError, InfobipAuthLayer};
    /// use tower::{Layer, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // Stands in for a tonic `Channel` built for `https://grpc.api.infobip.com`.
    /// let channel = service_fn(|request: Request<String>| async move {
    ///     assert!(request.headers().contains_key("authorization"));
    ///     Ok::<_, std::convert::Infallible>(Response::new(String::new()))
    /// });
    /// let auth = InfobipAuthLayer::api_key("key")?.relative_uris_go_to("https://grpc.api.infobip.com")?;
    /// let request = Request::post("/grpc.health.v1.Health/Check").body(String::new())?;
    /// auth.layer(channel).oneshot(request).await?;
    ///
    /// // An API key goes to Infobip only, and never in clear text.
    /// let remote = InfobipAuthLayer::api_key("key")?.relative_uris_go_to("http://remote.example");
    /// assert!(matches!(remote, Err(ConfigError::InsecureUrl { .. })));
    /// let other = InfobipAuthLayer::api_key("key")?.relative_uris_go_to("https://remote.example");
    /// assert!(matches!(other, Err(ConfigError::InvalidUrl { .. })));
    /// # Ok(()) }
    /// ```
    pub fn relative_uris_go_to(self, url: &str) -> Result<Self, ConfigError> {
        let origin = BaseUrl::new(url)?;
        if !self.hosts.allows_origin(&origin) {
            return Err(ConfigError::InvalidUrl {
                url: redacted(url),
                reason: "the layer sends no credentials to this origin: allow it first with \
                         allow_origin",
            });
        }
        Ok(Self {
            relative: Some(origin),
            ..self
        })
    }

    /// Which request bodies may be replayed after a `401` (see [`ReplayPolicy`]).
    ///
    /// ```
    /// # use std::{convert::Infallible, sync::atomic::{AtomicUsize, Ordering}};
    /// # use http::{Request, Response, StatusCode};
    /// # use infobip_auth::{Credential, Error, source::TokenSource};
    /// # use tower::{Layer, ServiceExt, service_fn};
    /// # #[derive(Debug, Default)] struct Numbered(AtomicUsize);
    /// # impl TokenSource for Numbered {
    /// #     async fn fetch(&self, _: Option<&Credential>) -> Result<Credential, Error> {
    /// #         Ok(Credential::new("Bearer", &format!("token-{}", self.0.fetch_add(1, Ordering::SeqCst) + 1))?)
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let server = service_fn(|request: Request<String>| async move {
    /// #     let mut response = Response::new(());
    /// #     if request.headers()["authorization"] != "Bearer token-2" {
    /// #         *response.status_mut() = StatusCode::UNAUTHORIZED;
    /// #     }
    /// #     Ok::<_, Infallible>(response)
    /// # });
    /// use infobip_auth::{InfobipAuthLayer, ReplayPolicy};
    /// // The server refuses `token-1` and takes `token-2`.
    /// let layer = InfobipAuthLayer::new(Numbered::default()).replay(ReplayPolicy::never());
    /// let request = Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced").body("{}".into())?;
    /// let response = layer.layer(server).oneshot(request).await?;
    /// // Not sent again: the `401` comes back, with the error in its extensions.
    /// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    /// assert!(response.extensions().get::<Error>().is_some());
    /// # Ok(()) }
    /// ```
    pub fn replay(self, policy: ReplayPolicy) -> Self {
        Self {
            replay: policy,
            ..self
        }
    }

    /// When credentials are renewed and how failures back off (see [`RefreshPolicy`]). Set it
    /// before the layer is used: it starts a new cache.
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicUsize, Ordering};
    /// # use std::time::Duration;
    /// # use infobip_auth::{Credential, Error, source::TokenSource};
    /// # #[derive(Debug, Default)] struct Numbered(AtomicUsize);
    /// # impl TokenSource for Numbered {
    /// #     async fn fetch(&self, _: Option<&Credential>) -> Result<Credential, Error> {
    /// #         let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
    /// #         Ok(Credential::new("Bearer", &format!("token-{n}"))?.expires_in(Duration::from_secs(100)))
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), infobip_auth::BoxError> {
    /// use infobip_auth::{InfobipAuthLayer, RefreshPolicy};
    /// // `Numbered` makes `token-1`, `token-2`, ..., each valid for 100 seconds.
    /// let policy = RefreshPolicy::default().keep_alive(true);
    /// let layer = InfobipAuthLayer::new(Numbered::default()).refresh_policy(policy);
    /// assert_eq!(layer.credential().await?.header(), "Bearer token-1");
    /// // Renewed in the background three times, with no request asking.
    /// tokio::time::sleep(Duration::from_secs(250)).await;
    /// assert_eq!(layer.credential().await?.header(), "Bearer token-4");
    /// # Ok(()) }
    /// ```
    pub fn refresh_policy(self, policy: RefreshPolicy) -> Self {
        Self {
            cache: CredentialCache::new(self.cache.source().clone(), policy),
            ..self
        }
    }

    /// A [`ScopeCheckLayer`] that knows the scopes of the credential this layer sends: those
    /// declared on an API key ([`ApiKey::with_scopes`]) or reported by the token source. Put it
    /// inside this layer (after it in a `ServiceBuilder`), so it sees the `Authorization` header.
    ///
    /// It judges requests to every origin this layer sends credentials to, by Infobip's
    /// catalogue unless given another: for an API that is not Infobip's, give it that API's
    /// operations, `auth.scope_check().catalog(Catalog::empty().with_operation(..)?)`
    /// ([`Catalog::empty`](crate::Catalog::empty)).
    ///
    /// Make it once this layer is configured: [`refresh_policy`](Self::refresh_policy) starts a
    /// new cache, which a scope check made before would not see.
    ///
    /// ```
    /// use http::{Request, Response};
    /// use infobip_auth::{ErrorKind, InfobipAuthLayer, source::ApiKey};
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let auth = InfobipAuthLayer::new(ApiKey::new("key")?.with_scopes("inbound-message:read".parse()?));
    /// let client = service_fn(|_: Request<String>| async { Ok::<_, std::convert::Infallible>(Response::new(String::new())) });
    /// let service = ServiceBuilder::new().layer(auth.clone()).layer(auth.scope_check()).service(client);
    ///
    /// // The key holds none of the scopes of sending SMS: refused before sending.
    /// let request = Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced").body(String::new())?;
    /// let err = service.oneshot(request).await.err().ok_or("not refused")?;
    /// let err = infobip_auth::Error::find(&*err).ok_or("not ours")?;
    /// assert!(matches!(err.kind(), ErrorKind::Forbidden(_)));
    /// # Ok(()) }
    /// ```
    pub fn scope_check(&self) -> ScopeCheckLayer {
        ScopeCheckLayer::with_cache(self.cache.clone(), self.hosts.clone())
    }

    /// A [`GrpcRenewalLayer`] that renews this layer's credential when a gRPC server refuses
    /// it: `grpc-status: 16` (`UNAUTHENTICATED`), which comes with HTTP 200 and so is not a
    /// `401` to this layer. Put it inside this layer (after it in a `ServiceBuilder`), so it
    /// sees the `Authorization` header; the refused call is handed back, and the next one
    /// carries the new credential. Make it once this layer is configured, as
    /// [`scope_check`](Self::scope_check).
    ///
    /// ```
    /// use http::{Request, Response};
    /// use infobip_auth::InfobipAuthLayer;
    /// use infobip_auth::mock::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, MockServer};
    /// use infobip_auth::source::{ClientCredentials, Transport};
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let server = MockServer::start().await?;
    /// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let source = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    ///     .transport(Transport::new(client))
    ///     .build()?;
    /// // A tonic `Channel` is given paths only: say where they go.
    /// let auth = InfobipAuthLayer::new(source).relative_uris_go_to(server.base_url())?;
    /// // Stands in for a tonic `Channel` to a server that refuses every token.
    /// let channel = service_fn(|_: Request<String>| async {
    ///     Response::builder().header("grpc-status", "16").body(String::new())
    /// });
    /// let service = ServiceBuilder::new().layer(auth.clone()).layer(auth.grpc_renewal()).service(channel);
    ///
    /// let request = Request::post("/grpc.health.v1.Health/Check").body(String::new())?;
    /// service.oneshot(request).await?;
    /// auth.credential().await?; // the renewal started by the refusal
    /// assert_eq!(server.counters().oauth_token_requests, 2);
    /// # Ok(()) }
    /// ```
    pub fn grpc_renewal(&self) -> GrpcRenewalLayer {
        GrpcRenewalLayer::with_cache(self.cache.clone())
    }

    /// The credential requests are sent with now, fetching one if none is held.
    ///
    /// # Errors
    /// The typed [`Error`] of the failed token request.
    ///
    /// ```
    /// # use infobip_auth::InfobipAuthLayer;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let layer = InfobipAuthLayer::api_key("key")?;
    /// assert_eq!(layer.credential().await?.scheme(), "App");
    /// # Ok(()) }
    /// ```
    pub async fn credential(&self) -> Result<Credential, Error> {
        Ok(self.cache.get().await?.0)
    }

    /// Fetches a new credential now, even if the current one is still fresh, and without
    /// waiting for the backoff after a failed renewal: call it once the cause is fixed.
    ///
    /// # Errors
    /// The typed [`Error`] of the failed token request.
    ///
    /// ```
    /// # use infobip_auth::InfobipAuthLayer;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let layer = InfobipAuthLayer::api_key("key")?;
    /// assert_eq!(layer.refresh().await?.header(), "App key");
    /// # Ok(()) }
    /// ```
    pub async fn refresh(&self) -> Result<Credential, Error> {
        Ok(self.cache.refresh().await?.0)
    }

    /// Ends the current credential at the server (an IBSSO session is deleted) and forgets
    /// it; the next request asks the source again, which makes a new session or token. A
    /// credential Infobip offers no way to end (an API key, Basic, an Exchange token) is only
    /// forgotten, and the source hands the same one back. Call it on shutdown.
    ///
    /// # Errors
    /// The typed [`Error`] of the failed request.
    ///
    /// ```
    /// use infobip_auth::InfobipAuthLayer;
    /// use infobip_auth::mock::{MockServer, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::{Session, Transport};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let server = MockServer::start().await?; // Infobip-compatible, on loopback
    /// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    ///     .transport(Transport::new(client))
    ///     .build()?;
    /// let layer = InfobipAuthLayer::new(session);
    /// layer.credential().await?;
    /// // The IBSSO session is deleted at the server.
    /// layer.revoke().await?;
    /// assert_eq!(server.counters().session_deletes, 1);
    /// # Ok(()) }
    /// ```
    pub async fn revoke(&self) -> Result<(), Error> {
        self.cache.revoke().await
    }
}

impl<S> Layer<S> for InfobipAuthLayer {
    type Service = InfobipAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InfobipAuth {
            inner,
            cache: self.cache.clone(),
            local: Local::default(),
            hosts: self.hosts.clone(),
            last_allowed: LastAllowed::default(),
            // Allowed: `relative_uris_go_to` and `allow_origin` refuse to leave it otherwise.
            relative_uris: self.relative.is_some(),
            replay: self.replay.clone(),
            renews: self.cache.source().renews(),
        }
    }
}

impl fmt::Debug for InfobipAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfobipAuthLayer")
            .field("cache", &self.cache)
            .field("hosts", &self.hosts)
            .field("relative", &self.relative)
            .field("replay", &self.replay)
            .finish()
    }
}

/// Middleware that sets `Authorization` on every request from a cached, self-renewing
/// credential, and after a `401` renews it and replays the request once.
///
/// Its error type is [`BoxError`]: the inner service's errors pass through, and the layer's own
/// failures are an [`Error`]. A `401` that is not replayed, or refused again, is returned as the
/// response, with an [`Error`] of kind [`InvalidCredentials`](ErrorKind::InvalidCredentials) in
/// its extensions; if the renewal before a replay fails, that failure is the error. This layer
/// does not read response bodies: with [`InfobipAuthLayer::scope_check`] inside it, that
/// error also carries Infobip's `messageId` and text from the `401`'s body.
///
/// A response future does not keep the credential cache alive (that would cost every request a
/// shared reference count): a `401` is renewed and replayed while the layer or a service made
/// from it lives. Keep your client for as long as its requests run; a one-off
/// `ServiceBuilder::new().layer(layer).service(client).oneshot(request)` drops both once the
/// request is sent, and its `401` comes back marked, not replayed.
///
/// A request that must wait for its credential gives back the readiness it reserved (a
/// concurrency limit's slot) until the credential is there, so a token request through the same
/// limited client is never starved. A `LoadShed` above this layer therefore admits the requests
/// that come while a token is fetched: they queue at the limit instead of being shed.
///
/// [`InfobipAuthLayer`] shows the usual set-up; this shows a `401` that cannot be cured.
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use infobip_auth::{Error, ErrorKind, InfobipAuth, InfobipAuthLayer};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// // Stands in for Infobip refusing the key. An API key does not renew, so the 401 is final.
/// let refusing = service_fn(|_: Request<String>| async {
///     let mut response = Response::new(String::new());
///     *response.status_mut() = StatusCode::UNAUTHORIZED;
///     Ok::<_, std::convert::Infallible>(response)
/// });
/// let service: InfobipAuth<_> = InfobipAuthLayer::api_key("003026bbc133714df1834b8638bb496e")?.layer(refusing);
///
/// let request = Request::get("https://xyz12.api.infobip.com/sms/1/inbox/reports").body(String::new())?;
/// let response = service.oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// let meaning = response.extensions().get::<Error>().ok_or("no error attached")?;
/// assert!(matches!(meaning.kind(), ErrorKind::InvalidCredentials(_)));
/// # Ok(()) }
/// ```
pub struct InfobipAuth<S> {
    inner: S,
    cache: CredentialCache,
    local: Local,
    hosts: AllowedHosts,
    /// Per service clone: the origin last allowed, so a repeat skips the host parsing.
    last_allowed: LastAllowed,
    /// Whether requests whose URI names no host get the credential, decided when the layer
    /// made this service (see [`InfobipAuthLayer::relative_uris_go_to`]).
    relative_uris: bool,
    replay: ReplayPolicy,
    renews: bool,
}

impl<S> InfobipAuth<S> {
    /// The inner service.
    ///
    /// ```
    /// # use infobip_auth::InfobipAuthLayer;
    /// use tower::Layer;
    /// let service = InfobipAuthLayer::api_key("key")?.layer(42);
    /// assert_eq!(*service.get_ref(), 42);
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    ///
    /// ```
    /// # use infobip_auth::InfobipAuthLayer;
    /// use tower::Layer;
    /// let mut service = InfobipAuthLayer::api_key("key")?.layer(41);
    /// *service.get_mut() += 1;
    /// assert_eq!(service.into_inner(), 42);
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    ///
    /// ```
    /// # use infobip_auth::InfobipAuthLayer;
    /// use tower::Layer;
    /// assert_eq!(InfobipAuthLayer::api_key("key")?.layer(42).into_inner(), 42);
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// What a `401` to a request sent with credential `id` means, and the copy of the request
    /// a replay needs.
    #[inline(always)]
    fn check<B: 'static>(&self, id: u64, request: &Request<B>) -> (On401, Option<Replay<S, B>>)
    where
        S: Clone,
    {
        (self.on_401(id), self.replay_of(request))
    }

    /// The copy of `request` a replay after a `401` needs, if its credential renews and its
    /// body can be copied.
    #[inline(always)]
    fn replay_of<B: 'static>(&self, request: &Request<B>) -> Option<Replay<S, B>>
    where
        S: Clone,
    {
        if !self.renews {
            return None;
        }
        // A clone not driven to readiness: the replay drives it before calling.
        let snapshot = self.replay.snapshot(request)?;
        Some(Replay::new(self.inner.clone(), snapshot))
    }

    /// What a `401` to a request sent with credential `id` means.
    #[inline(always)]
    fn on_401(&self, id: u64) -> On401 {
        if self.renews {
            On401::Renew {
                cache: self.cache.key(),
                id,
            }
        } else {
            On401::Final
        }
    }
}

impl<S: Clone> Clone for InfobipAuth<S> {
    /// A clone shares the cache but keeps its own copy of the header.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            cache: self.cache.clone(),
            local: Local::default(),
            hosts: self.hosts.clone(),
            last_allowed: LastAllowed::default(),
            relative_uris: self.relative_uris,
            replay: self.replay.clone(),
            renews: self.renews,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for InfobipAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InfobipAuth")
            .field("inner", &self.inner)
            .field("cache", &self.cache)
            .field("hosts", &self.hosts)
            .field("relative_uris", &self.relative_uris)
            .field("replay", &self.replay)
            .finish()
    }
}

impl<S, B, ResB> Service<Request<B>> for InfobipAuth<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: 'static,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    // Inlined into the caller: the hot path is small, and a call frame of its own costs more
    // than what it does (measured by `benches/callgrind.rs`).
    #[inline(always)]
    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // One call site of the inner service on the hot path, so the request is moved once.
        match self.authorize_cached(&mut request) {
            Some((on_401, replay)) => {
                ResponseFuture::sent(self.inner.call(request), on_401, replay)
            }
            None => self.call_slow(request),
        }
    }
}

impl<S: Clone> InfobipAuth<S> {
    /// The hot path: the origin allowed last time and a fresh private header copy — one atomic
    /// load, and a coarse-clock read for a credential that expires; no lock, and no allocation
    /// but the copy of a request that a `401` would replay. Sets the header and says what a
    /// `401` to the request means, or `None` when the slow path must decide.
    #[inline(always)]
    fn authorize_cached<B: 'static>(
        &mut self,
        request: &mut Request<B>,
    ) -> Option<(On401, Option<Replay<S, B>>)> {
        if !self
            .hosts
            .allows_repeat(request.uri(), &mut self.last_allowed)
            && !self.allows_relative(request.uri())
        {
            return None;
        }
        let (header, id) = self.cache.cached(&self.local)?;
        self.authorize(request, header.clone(), id)
    }

    /// Whether `uri` names no host and such requests were given an allowed origin.
    #[inline(always)]
    fn allows_relative(&self, uri: &http::Uri) -> bool {
        self.relative_uris && is_relative(uri)
    }

    /// Sets `header`, unless the caller set an `Authorization` of their own, which wins.
    /// `None` when the request's header map is full: the slow path sends a caller's own
    /// `Authorization` as it is, and fails the rest.
    #[inline(always)]
    fn authorize<B: 'static>(
        &self,
        request: &mut Request<B>,
        header: HeaderValue,
        id: u64,
    ) -> Option<(On401, Option<Replay<S, B>>)> {
        // First: a copy for the replay is of the request as the caller made it.
        let replay = self.replay_of(request);
        // One lookup sets the credential or finds a caller's own, which wins. What a `401`
        // means is worked out after it, so it is not kept in registers across the lookup.
        match request.headers_mut().try_append(AUTHORIZATION, header) {
            Ok(false) => Some((self.on_401(id), replay)),
            Ok(true) => {
                take_back_ours(request);
                Some((On401::Pass, None))
            }
            Err(_) => None,
        }
    }

    /// Everything but the hot path: a caller's own credential, a refused origin, a credential
    /// to look up or wait for.
    #[inline(never)]
    fn call_slow<B: 'static>(&mut self, mut request: Request<B>) -> ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        if request.headers().contains_key(AUTHORIZATION) {
            return ResponseFuture::sent(self.inner.call(request), On401::Pass, None);
        }
        if !self.hosts.allows(request.uri()) && !self.allows_relative(request.uri()) {
            let origin = origin_of(request.uri());
            return ResponseFuture::failed(ErrorKind::HostNotAllowed { origin }.into());
        }
        let (header, id) = match self.cache.cached(&self.local) {
            Some((header, id)) => (header.clone(), id),
            None => match self.cache.lookup(Some(&mut self.local)) {
                Lookup::Ready(credential, id) => (credential.header().clone(), id),
                Lookup::Failed(error) => return ResponseFuture::failed(error),
                wait => {
                    let (on_401, replay) = self.check(0, &request);
                    // The readiness the caller reserved (a concurrency limit's slot, a buffer's)
                    // is given back rather than held while the credential is fetched: a token
                    // request through the same client may need it. The future drives a clone
                    // to readiness once the credential is there.
                    let waiting = self.inner.clone();
                    self.inner = waiting.clone();
                    return ResponseFuture::waiting(wait, waiting, request, on_401, replay);
                }
            },
        };
        match self.authorize(&mut request, header, id) {
            Some((on_401, replay)) => {
                ResponseFuture::sent(self.inner.call(request), on_401, replay)
            }
            None => ResponseFuture::failed(no_room_for_the_credential()),
        }
    }
}

/// A request whose header map holds as many headers as a map can: no room for the credential.
#[cold]
pub(crate) fn no_room_for_the_credential() -> Error {
    ConfigError::Invalid {
        what: "request",
        reason: "its headers fill the header map: no room for Authorization",
    }
    .into()
}

/// Removes the credential the layer appended after the caller's own `Authorization`, keeping
/// every value of the caller's (an insert would have kept only one) and the header's place.
#[cold]
#[inline(never)]
fn take_back_ours<B>(request: &mut Request<B>) {
    if let Entry::Occupied(mut entry) = request.headers_mut().entry(AUTHORIZATION) {
        let mut own: Vec<HeaderValue> = entry.iter().cloned().collect();
        own.pop();
        let mut own = own.into_iter();
        if let Some(first) = own.next() {
            entry.insert(first);
            own.for_each(|value| entry.append(value));
        }
    }
}

#[cfg(test)]
mod tests;
