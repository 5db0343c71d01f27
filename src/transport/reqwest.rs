//! [`Transport::reqwest`]: token requests through reqwest, for apps whose only HTTP client it is.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use tower_service::Service;

use super::Transport;
use crate::ConfigError;

impl Transport {
    /// Token requests through a reqwest client built from `builder` (with your TLS, proxy and
    /// connection settings), so an app that uses reqwest needs no other HTTP client. Redirects
    /// are turned off whatever `builder` says: a token request carries a password or client
    /// secret in its body, which reqwest would send again to wherever a `307` points.
    ///
    /// This crate enables no reqwest feature: HTTPS needs one of reqwest's TLS features in your
    /// own `Cargo.toml` (reqwest 0.13). Leave `Authorization` out of the builder's
    /// `default_headers`: it would go to the token endpoint too.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when reqwest cannot build the client (its TLS backend or proxy
    /// settings). reqwest's own message is left out: a proxy's URL may hold a password.
    ///
    /// ```
    /// use infobip_auth::mock::{MockServer, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
    /// use infobip_auth::source::{ClientCredentials, TokenSource, Transport};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let server = MockServer::start().await?; // Infobip-compatible, on loopback
    /// let transport = Transport::reqwest(reqwest::Client::builder())?;
    /// let source = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    ///     .transport(transport)
    ///     .build()?;
    /// assert_eq!(source.fetch(None).await?.scheme(), "Bearer");
    /// assert_eq!(server.counters().oauth_token_requests, 1);
    /// # Ok(()) }
    /// ```
    pub fn reqwest(builder: reqwest::ClientBuilder) -> Result<Self, ConfigError> {
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| ConfigError::Invalid {
                what: "reqwest client",
                reason: "reqwest could not build it; check its TLS and proxy settings",
            })?;
        Ok(Self::new(Reqwest(client)))
    }
}

/// A reqwest client as a tower service of `http` types.
#[derive(Clone)]
struct Reqwest(reqwest::Client);

impl Service<Request<Full<Bytes>>> for Reqwest {
    type Response = Response<reqwest::Body>;
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let request = reqwest::Request::try_from(Request::from_parts(parts, body))?;
            Ok(Response::from(client.execute(request).await?))
        })
    }
}
