//! [`ResponseFuture`]: the response side of [`ScopeCheck`](super::ScopeCheck).
//!
//! ```text
//! Refused ──▶ Err (pre-flight; nothing was sent)
//! Untouched ──▶ the response, body untouched (a request to a host that is not judged)
//! Sent ──any status but 401/403──▶ the response, body untouched
//!   └──401/403──▶ Reading (up to the read limit, ──▶ the response + Error in its extensions
//!                  or the read timeout)             (or Err for a 403 with reject_forbidden)
//! ```

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Buf as _;
use http::{HeaderValue, Method, Response, StatusCode, Uri};
use http_body::{Body, Frame};
use pin_project_lite::pin_project;

use super::AuthScheme;
use super::body::{ResponseBody, Rest, prefix};
use super::classify::classify_sent;
use super::layer::Config;
use crate::{BoxError, Error};

pin_project! {
    /// Response future of [`ScopeCheck`](super::ScopeCheck).
    ///
    /// ```
    /// use http::{Request, Response, StatusCode};
    /// use infobip_auth::scope::{ResponseFuture, ScopeCheckLayer};
    /// use infobip_auth::{ApiError, Error};
    /// use tower::{Layer, Service, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // Stands in for Infobip answering 403 with its error body.
    /// let client = service_fn(|_: Request<String>| async {
    ///     let body = r#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;
    ///     let mut response = Response::new(body.to_owned());
    ///     *response.status_mut() = StatusCode::FORBIDDEN;
    ///     Ok::<_, std::convert::Infallible>(response)
    /// });
    /// let mut service = ScopeCheckLayer::new().layer(client);
    /// let request = Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced")
    ///     .header("authorization", "App 003026bbc133714df1834b8638bb496e")
    ///     .body(String::new())?;
    ///
    /// // The future reads the start of a 403's body before it resolves, to classify it.
    /// let future: ResponseFuture<_, String> = service.ready().await?.call(request);
    /// let response = future.await?;
    /// let forbidden = response.extensions().get::<Error>().and_then(Error::forbidden).ok_or("not classified")?;
    /// assert_eq!(forbidden.api.as_ref().and_then(ApiError::code), Some("FORBIDDEN"));
    /// # Ok(()) }
    /// ```
    pub struct ResponseFuture<F, B>
    where
        B: Body,
    {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B>
    where
        B: Body,
    {
        Refused { error: Option<Error> },
        Untouched { #[pin] future: F },
        Sent { #[pin] future: F, sent: Option<Sent> },
        Reading { reading: Option<Reading<B>> },
    }
}

/// What the classification of a `401` or `403` needs to know about the request.
pub(super) struct Sent {
    pub(super) config: Arc<Config>,
    pub(super) method: Method,
    pub(super) uri: Uri,
    /// The request's `Authorization`, if it had one: a server may quote it in its answer, and
    /// an auth layer's cache is asked whether it is the credential it sends.
    pub(super) authorization: Option<HeaderValue>,
}

/// At most this many frames of a `401` or `403` are held to classify it, whatever their size:
/// empty data frames count no bytes towards the read limit, and would otherwise be buffered
/// without bound (and, when they keep coming, without ever returning).
const MAX_FRAMES: usize = 1024;

/// A `401` or `403` whose body is being read.
struct Reading<B: Body> {
    sent: Sent,
    parts: http::response::Parts,
    /// Boxed so that it can be handed to the response body, unpinned, once read far enough.
    body: Pin<Box<B>>,
    frames: VecDeque<Frame<B::Data>>,
    read: usize,
    error: Option<B::Error>,
    ended: bool,
    /// When to stop waiting for more of the body: set the first time it makes us wait.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Set when tokio had no timer to give: the read then waits as long as the body does.
    timerless: bool,
}

impl<F, B: Body> ResponseFuture<F, B> {
    pub(super) fn refused(error: Error) -> Self {
        Self {
            state: State::Refused { error: Some(error) },
        }
    }

    pub(super) fn untouched(future: F) -> Self {
        Self {
            state: State::Untouched { future },
        }
    }

    pub(super) fn sent(future: F, sent: Sent) -> Self {
        Self {
            state: State::Sent {
                future,
                sent: Some(sent),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Body,
{
    type Output = Result<Response<ResponseBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Refused { error } => {
                    return Poll::Ready(Err(error
                        .take()
                        .map_or_else(polled_after_completion, Into::into)));
                }
                StateProj::Untouched { future } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    return Poll::Ready(Ok(response.map(ResponseBody::new)));
                }
                StateProj::Sent { future, sent } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    let status = response.status();
                    if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
                        return Poll::Ready(Ok(response.map(ResponseBody::new)));
                    }
                    let Some(sent) = sent.take() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    let (parts, body) = response.into_parts();
                    let ended = body.is_end_stream();
                    State::Reading {
                        reading: Some(Reading {
                            sent,
                            parts,
                            body: Box::pin(body),
                            frames: VecDeque::new(),
                            read: 0,
                            error: None,
                            ended,
                            deadline: None,
                            timerless: false,
                        }),
                    }
                }
                StateProj::Reading { reading } => {
                    let Some(current) = reading.as_mut() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    ready!(current.poll_read(cx));
                    let Some(done) = reading.take() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    return Poll::Ready(done.finish());
                }
            };
            state.set(next);
        }
    }
}

impl<B: Body> Reading<B> {
    /// Reads frames until the limit is reached, the body ends, it fails, or the read timeout
    /// passes.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while !self.ended
            && self.read < self.sent.config.read_limit
            && self.frames.len() < MAX_FRAMES
        {
            let Poll::Ready(frame) = self.body.as_mut().poll_frame(cx) else {
                return self.poll_deadline(cx);
            };
            match frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.read = self.read.saturating_add(data.remaining());
                    }
                    // Trailers are the last frame.
                    self.ended = frame.is_trailers();
                    self.frames.push_back(frame);
                }
                Some(Err(error)) => {
                    self.error = Some(error);
                    self.ended = true;
                }
                None => self.ended = true,
            }
        }
        Poll::Ready(())
    }

    /// Ready once the read timeout has passed, counted from the first time the body made us
    /// wait. Outside a Tokio runtime, or on one without timers, there is no timer to ask (asked
    /// once), and the read waits as long as the body does.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.deadline.is_none() && !self.timerless {
            let timeout = self.sent.config.read_timeout;
            let started =
                crate::timer::start("a 403 body's read timeout needs a tokio runtime", || {
                    Box::pin(tokio::time::sleep(timeout))
                });
            self.timerless = started.is_err();
            self.deadline = started.ok();
        }
        match &mut self.deadline {
            Some(deadline) => deadline.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }

    /// Classifies what was read, and hands the response back (or the error, for a `403` when
    /// asked to reject it).
    fn finish(self) -> Result<Response<ResponseBody<B>>, BoxError> {
        let Reading {
            sent,
            mut parts,
            body,
            frames,
            error,
            ended,
            ..
        } = self;
        let config = &sent.config;
        let bytes = prefix(&frames, config.read_limit);
        let scheme = AuthScheme::of_header(sent.authorization.as_ref());
        let classified = config.with_held(sent.authorization.as_ref(), |held| {
            classify_sent(
                &sent.method,
                sent.uri.path(),
                parts.status,
                &bytes,
                &config.catalog,
                held,
                scheme,
            )
        });
        // A server may quote the refused credential in its answer.
        let classified = classified.map(|error| match &sent.authorization {
            Some(authorization) => error.without_credential(authorization),
            None => error,
        });
        if let Some(error) = classified {
            if config.reject_forbidden && parts.status == StatusCode::FORBIDDEN {
                return Err(error.into());
            }
            parts.extensions.insert(error);
        }
        let rest = match (error, ended) {
            (Some(error), _) => Rest::Failed(error),
            (None, true) => Rest::Ended,
            (None, false) => Rest::More(body),
        };
        Ok(Response::from_parts(
            parts,
            ResponseBody::replay(frames, rest),
        ))
    }
}

fn polled_after_completion() -> BoxError {
    "infobip-auth scope check future polled after completion".into()
}

impl<F, B: Body> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
