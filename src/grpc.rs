//! [`GrpcRenewalLayer`] and [`GrpcRenewal`]: renewal after a gRPC `UNAUTHENTICATED`.
//!
//! A gRPC server refuses a credential with HTTP status `200` and `grpc-status: 16`
//! (`UNAUTHENTICATED`), not with a `401`, so [`InfobipAuth`](crate::InfobipAuth) alone keeps
//! sending a credential the server no longer takes until it expires. Put this layer inside the
//! auth layer, made with [`InfobipAuthLayer::grpc_renewal`](crate::InfobipAuthLayer::grpc_renewal):
//! when a call is refused with the credential the auth layer sent, that credential (and only
//! that one) is invalidated and its renewal started, so the next call carries the new one.
//!
//! * The refusal is read from the response's headers (a Trailers-Only response: how servers and
//!   interceptors refuse a call before any message) and from the trailers at the end of its
//!   body (a call refused after it started).
//! * The response is handed back as it came: gRPC bodies are streams and are not replayed. The
//!   caller sees `UNAUTHENTICATED` and retries; the retry carries the renewed credential.
//! * A call refused in its headers also carries an [`Error`] of kind
//!   [`InvalidCredentials`](ErrorKind::InvalidCredentials) in its extensions, as a `401` does
//!   (its [`ApiError`] has the answer's status, `200`, and the code `UNAUTHENTICATED`), unless a
//!   layer inside put one there. A call refused in its trailers has none: its response was
//!   handed back before them. tonic's client turns a refused call into a `Status` without the
//!   response's extensions, so the `Error` is for the layers and services that see the HTTP
//!   response, around the channel.
//! * A late refusal of an older credential, or of a header the caller set themselves, renews
//!   nothing (its `Error` is attached all the same). A source that does not renew (an API key,
//!   Basic, a `FixedToken`) makes this layer pass every call through untouched, with no `Error`.
//! * Users who do not add this layer pay nothing for it: the auth layer does not look for
//!   `grpc-status`.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use http::{Request, Response};
//! use infobip_auth::InfobipAuthLayer;
//! use infobip_auth::mock::{DEMO_PASSWORD, DEMO_USERNAME, MockServer};
//! use infobip_auth::source::{Session, Transport};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
//! let server = MockServer::start().await?;
//! # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
//! #     .build_http::<http_body_util::Full<bytes::Bytes>>();
//! let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
//!     .transport(Transport::new(client))
//!     .build()?;
//! // A tonic `Channel` is given paths only (it adds its own origin): say where they go.
//! let auth = InfobipAuthLayer::new(session).relative_uris_go_to(server.base_url())?;
//!
//! // Stands in for a tonic `Channel` to a server that refuses the first session it sees.
//! let refused = Arc::new(AtomicBool::new(false));
//! let channel = service_fn(move |_: Request<String>| {
//!     let status = if refused.swap(true, Ordering::SeqCst) { "0" } else { "16" };
//!     async move { Response::builder().header("grpc-status", status).body(String::new()) }
//! });
//! let service = ServiceBuilder::new()
//!     .layer(auth.clone())
//!     .layer(auth.grpc_renewal())
//!     .service(channel);
//!
//! let call = || Request::post("/grpc.health.v1.Health/Check").body(String::new());
//! let first = service.clone().oneshot(call()?).await?;
//! assert_eq!(first.headers()["grpc-status"], "16"); // handed back: the caller retries
//! let second = service.oneshot(call()?).await?;
//! assert_eq!(second.headers()["grpc-status"], "0"); // with a new session
//! assert_eq!(server.counters().session_creates, 2);
//! # Ok(()) }
//! ```

mod body;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub use body::ResponseBody;

use crate::cache::{CacheKey, CredentialCache};
use crate::future::mark_refused;
use crate::{ApiError, Error, ErrorKind};

/// Where gRPC puts a call's outcome: in the trailers, or in the headers of a Trailers-Only
/// response.
const GRPC_STATUS: &str = "grpc-status";

/// gRPC's status code for a call without valid credentials, as a server sends it: the gRPC
/// over HTTP/2 protocol writes `grpc-status` as decimal digits without leading zeros, so `16` is
/// its only form. No whitespace either: HTTP/2 forbids it around a field value, and HTTP/1.1's
/// optional whitespace is not part of the value (hyper's parser drops it, in trailers too).
/// tonic reads any other form as `UNKNOWN`; renewing on one would act on what the caller is not
/// told.
const UNAUTHENTICATED: &[u8] = b"16";

/// Layer that applies [`GrpcRenewal`], which renews the auth layer's credential after a gRPC
/// server refused it with `UNAUTHENTICATED`. Make it with
/// [`InfobipAuthLayer::grpc_renewal`](crate::InfobipAuthLayer::grpc_renewal) and put it inside
/// the auth layer (after it in a `ServiceBuilder`), so it sees the `Authorization` the auth
/// layer set. See the [module docs](self).
///
/// ```
/// use http::{Request, Response};
/// use infobip_auth::InfobipAuthLayer;
/// use infobip_auth::grpc::GrpcRenewalLayer;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// # use std::sync::atomic::{AtomicUsize, Ordering};
/// # use infobip_auth::{Credential, Error, source::TokenSource};
/// # #[derive(Debug, Default)] struct Numbered(AtomicUsize);
/// # impl TokenSource for Numbered {
/// #     async fn fetch(&self, _: Option<&Credential>) -> Result<Credential, Error> {
/// #         Ok(Credential::new("Bearer", &format!("token-{}", self.0.fetch_add(1, Ordering::SeqCst) + 1))?)
/// #     }
/// # }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// // Stands in for a tonic `Channel` to a server that refuses every call with `UNAUTHENTICATED`.
/// let channel = service_fn(|_: Request<String>| async {
///     Response::builder().header("grpc-status", "16").body(String::new())
/// });
/// // `token-1`, `token-2`, ...; the channel's paths go to its origin.
/// let auth = InfobipAuthLayer::new(Numbered::default()).relative_uris_go_to("https://grpc.api.infobip.com")?;
/// let renewal: GrpcRenewalLayer = auth.grpc_renewal();
/// let service = ServiceBuilder::new().layer(auth.clone()).layer(renewal).service(channel);
/// service.oneshot(Request::post("/grpc.health.v1.Health/Check").body(String::new())?).await?;
/// // The refused `token-1` is gone: the next call gets a new credential.
/// assert_eq!(auth.credential().await?.header(), "Bearer token-2");
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct GrpcRenewalLayer {
    cache: CredentialCache,
}

impl GrpcRenewalLayer {
    /// The renewal of an auth layer's credentials.
    pub(crate) fn with_cache(cache: CredentialCache) -> Self {
        Self { cache }
    }
}

impl<S> Layer<S> for GrpcRenewalLayer {
    type Service = GrpcRenewal<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcRenewal {
            inner,
            cache: self.cache.key(),
            renews: self.cache.source().renews(),
        }
    }
}

impl fmt::Debug for GrpcRenewalLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcRenewalLayer")
            .field("cache", &self.cache)
            .finish()
    }
}

/// Middleware that invalidates and renews the auth layer's credential when a gRPC server
/// refuses a call made with it (`grpc-status: 16`, in the headers or the trailers), and hands
/// the response back, not replayed (a refusal in the headers with an [`Error`] in its
/// extensions). See the [module docs](self) for where it goes.
///
/// Its error type is the inner service's; its response body is a [`ResponseBody`] over the
/// inner one, with the same data and error types, so a tonic client takes it as it takes a
/// `Channel`.
///
/// ```
/// use http::{Request, Response};
/// use infobip_auth::InfobipAuthLayer;
/// use infobip_auth::grpc::GrpcRenewal;
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// let auth = InfobipAuthLayer::api_key("003026bbc133714df1834b8638bb496e")?;
/// let channel = service_fn(|_: Request<String>| async {
///     Response::builder().header("grpc-status", "16").body(String::new())
/// });
/// // An API key is not renewed: its refusal passes through, and it is kept.
/// let service: GrpcRenewal<_> = auth.grpc_renewal().layer(channel);
/// let request = Request::post("/grpc.health.v1.Health/Check")
///     .header("authorization", "App 003026bbc133714df1834b8638bb496e")
///     .body(String::new())?;
/// let response = service.oneshot(request).await?;
/// assert_eq!(response.headers()["grpc-status"], "16");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct GrpcRenewal<S> {
    inner: S,
    /// Plain data: the response future finds the cache by it only after a refusal.
    cache: CacheKey,
    /// Whether the source renews at all; when not, nothing is watched.
    renews: bool,
}

impl<S> GrpcRenewal<S> {
    /// The inner service.
    ///
    /// ```
    /// # use infobip_auth::InfobipAuthLayer;
    /// use tower::Layer;
    /// let service = InfobipAuthLayer::api_key("key")?.grpc_renewal().layer(42);
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
    /// let mut service = InfobipAuthLayer::api_key("key")?.grpc_renewal().layer(41);
    /// *service.get_mut() += 1;
    /// assert_eq!(*service.get_ref(), 42);
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
    /// assert_eq!(InfobipAuthLayer::api_key("key")?.grpc_renewal().layer(42).into_inner(), 42);
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for GrpcRenewal<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcRenewal")
            .field("inner", &self.inner)
            .field("renews", &self.renews)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for GrpcRenewal<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // A clone of the header the request carries (a reference count, no copy), to tell
        // later whether the refused credential is still the current one.
        let watch = match request.headers().get(AUTHORIZATION) {
            Some(sent) if self.renews => Some(Watch {
                cache: self.cache,
                sent: sent.clone(),
            }),
            _ => None,
        };
        ResponseFuture {
            inner: self.inner.call(request),
            watch,
        }
    }
}

/// The credential a call was sent with, and the cache it may have come from.
struct Watch {
    cache: CacheKey,
    sent: HeaderValue,
}

impl Watch {
    /// The server refused the call: renew the credential it carried if it is still current.
    #[cold]
    #[inline(never)]
    fn refused(self) {
        if let Some(cache) = self.cache.find() {
            cache.renew_if_sent(&self.sent);
        }
    }
}

/// Whether `headers` (a response's, or its trailers) say the call was `UNAUTHENTICATED`.
fn unauthenticated(headers: &HeaderMap) -> bool {
    headers
        .get(GRPC_STATUS)
        .is_some_and(|status| status.as_bytes() == UNAUTHENTICATED)
}

/// The `Error` a Trailers-Only refusal carries, as a `401` does: the answer's own status,
/// `200`, and gRPC's name for the refusal as the code, in the shape of Infobip's CAMARA errors.
#[cold]
#[inline(never)]
fn unauthenticated_error() -> Error {
    let said = ApiError::from_body(StatusCode::OK, br#"{"code":"UNAUTHENTICATED"}"#);
    // Only a source that renews is watched.
    Error::new(ErrorKind::InvalidCredentials(said))
        .with_context(crate::error::Context::Refused { renews: true })
}

pin_project! {
    /// Response future of [`GrpcRenewal`].
    ///
    /// ```
    /// use http::{Request, Response};
    /// use infobip_auth::InfobipAuthLayer;
    /// use infobip_auth::grpc::ResponseFuture;
    /// use tower::{Layer, Service, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let channel = service_fn(|_: Request<String>| async {
    ///     Ok::<_, std::convert::Infallible>(Response::new(String::new()))
    /// });
    /// let mut service = InfobipAuthLayer::api_key("key")?.grpc_renewal().layer(channel);
    /// let request = Request::post("/grpc.health.v1.Health/Check").body(String::new())?;
    /// let future: ResponseFuture<_> = service.ready().await?.call(request);
    /// assert_eq!(future.await?.status(), 200);
    /// # Ok(()) }
    /// ```
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        watch: Option<Watch>,
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<ResponseBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        // gRPC answers with HTTP 200; a `grpc-status` among the headers makes it a Trailers-Only
        // response, whose body has no trailers left to watch.
        let watch = match this.watch.take() {
            Some(watch) if response.status() == StatusCode::OK => {
                if !response.headers().contains_key(GRPC_STATUS) {
                    Some(watch)
                } else {
                    if unauthenticated(response.headers()) {
                        watch.refused();
                        mark_refused(response.extensions_mut(), unauthenticated_error);
                    }
                    None
                }
            }
            _ => None,
        };
        Poll::Ready(Ok(response.map(|body| ResponseBody::new(body, watch))))
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
