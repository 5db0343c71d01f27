//! [`ResponseBody`]: the body of a response that went through
//! [`GrpcRenewal`](super::GrpcRenewal), watched for an `UNAUTHENTICATED` in its trailers.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::{Watch, unauthenticated};

pin_project! {
    /// Response body of [`GrpcRenewal`](super::GrpcRenewal): the inner service's body, frame
    /// for frame. When its trailers carry `grpc-status: 16` (a call refused after it started),
    /// the credential the call was sent with is renewed if it is still the current one.
    ///
    /// Its data and error types are the inner body's; nothing is copied or buffered.
    ///
    /// ```
    /// use http::{Request, Response};
    /// use http_body_util::{BodyExt, Full};
    /// use infobip_auth::InfobipAuthLayer;
    /// use infobip_auth::grpc::ResponseBody;
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let channel = service_fn(|_: Request<String>| async {
    ///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::from_static(b"message"))))
    /// });
    /// let service = InfobipAuthLayer::api_key("key")?.grpc_renewal().layer(channel);
    /// let request = Request::post("/grpc.health.v1.Health/Check").body(String::new())?;
    /// let body: ResponseBody<Full<bytes::Bytes>> = service.oneshot(request).await?.into_body();
    /// assert_eq!(body.collect().await?.to_bytes(), "message");
    /// # Ok(()) }
    /// ```
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        // Taken at the first trailers: a body has one set.
        watch: Option<Watch>,
    }
}

impl<B> ResponseBody<B> {
    pub(super) fn new(inner: B, watch: Option<Watch>) -> Self {
        Self { inner, watch }
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(trailers) = frame.trailers_ref()
            && let Some(watch) = this.watch.take()
            && unauthenticated(trailers)
        {
            watch.refused();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}
