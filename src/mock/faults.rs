//! [`Fault`]: what an endpoint does instead of answering normally, and the one path that
//! applies it for token endpoints, session `DELETE`s and protected operations alike.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::header::{CONTENT_LENGTH, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

use super::reply::{self, DropConnection, Reply};
use super::state::whole_seconds;
use crate::BoxError;

/// A failure injected into the next token-endpoint request (`POST /auth/1/session`,
/// `POST /auth/1/oauth2/token`, `POST /exchange/1/oauth/token`) with
/// [`MockServer::inject`](super::MockServer::inject), or into the next session
/// `DELETE /auth/1/session` with [`MockServer::inject_delete`](super::MockServer::inject_delete),
/// or into the next request to a protected operation with
/// [`MockServer::inject_operation`](super::MockServer::inject_operation). Faults are used one
/// per request, in the order they were injected.
///
/// ```
/// use std::time::Duration;
/// use http::StatusCode;
/// use infobip_auth::mock::{Fault, MockServer, DEMO_PASSWORD, DEMO_USERNAME};
/// use infobip_auth::source::{Session, TokenSource};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// # let transport = || infobip_auth::source::Transport::new(
/// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
/// # );
/// let server = MockServer::start().await?;
/// # let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
/// #     .transport(transport())
/// #     .build()?;
/// // `session` logs the demo user in.
/// let busy = Fault::Status { status: StatusCode::TOO_MANY_REQUESTS, retry_after: Some(Duration::from_secs(2)) };
/// server.inject(busy);
/// let err = session.fetch(None).await.err().ok_or("logged in")?;
/// assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer `status` with an Infobip-shaped error body (the `messageId` and `text` of
    /// Infobip's examples, e.g. `GENERAL_ERROR` for `500`; otherwise the status's reason in
    /// capitals) and, if given, `Retry-After` in whole seconds.
    Status {
        /// The status to answer.
        status: StatusCode,
        /// The `Retry-After` header to send, rounded up to whole seconds.
        retry_after: Option<Duration>,
    },
    /// Answer exactly this: for malformed, unexpected or oversized bodies.
    Body {
        /// The status to answer.
        status: StatusCode,
        /// The `Content-Type` to send.
        content_type: &'static str,
        /// The body to send.
        body: Bytes,
    },
    /// Act on the request as usual, then send the answer's status and headers with a
    /// `Content-Length` that promises more than is sent (the whole body, or one byte when it
    /// has none, as a session `DELETE`'s `200`), send the first half of the body, and close
    /// the connection. As with [`Fault::AnswerLost`], the server's state changed (the session
    /// created or ended, the token issued, the code used, the operation answered and
    /// recorded); the client sees the status, then a body it cannot read whole. A `200` is
    /// never sent for an act not done.
    ///
    /// ```
    /// use infobip_auth::mock::{Fault, MockServer, SessionEvent};
    /// # use infobip_auth::mock::{DEMO_PASSWORD, DEMO_USERNAME};
    /// # use infobip_auth::source::{Session, TokenSource};
    /// use infobip_auth::InfobipAuthLayer;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start().await?;
    /// # let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    /// #     .transport(transport())
    /// #     .build()?;
    /// // `session` logs the demo user in.
    /// let layer = InfobipAuthLayer::new(session);
    /// layer.credential().await?;
    /// server.inject_delete(Fault::Truncated);
    /// let _ = layer.revoke().await;
    /// // Whatever the client made of the cut answer, the session has ended.
    /// assert_eq!(server.counters().session_events.last(), Some(&SessionEvent::Destroyed { session: 1 }));
    /// # Ok(()) }
    /// ```
    Truncated,
    /// Close the connection without answering.
    CloseConnection,
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Act on the request as usual (create the session, issue the token, end the session,
    /// answer and record the operation), then close the connection without answering: the
    /// server's state changed, the client sees a broken connection.
    ///
    /// ```
    /// use infobip_auth::mock::{Fault, MockServer, SessionEvent, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::{Session, TokenSource};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start().await?;
    /// # let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    /// #     .transport(transport())
    /// #     .build()?;
    /// // `session` logs the demo user in.
    /// server.inject(Fault::AnswerLost);
    /// let err = session.fetch(None).await.err().ok_or("logged in")?;
    /// assert!(err.is_transient());
    /// // The session was created all the same, and the next login is handed it.
    /// assert_eq!(server.counters().session_events, [SessionEvent::Created { session: 1 }]);
    /// let again = session.fetch(None).await?;
    /// assert_eq!(server.counters().session_events.len(), 1);
    /// # drop(again);
    /// # Ok(()) }
    /// ```
    AnswerLost,
}

/// What becomes of an answer once the server has acted on a request.
pub(crate) enum Aftermath {
    /// Send it.
    Send,
    /// Send it cut short ([`Fault::Truncated`]).
    Cut,
    /// Drop the connection instead ([`Fault::AnswerLost`]).
    Lose,
}

impl Aftermath {
    /// The answer as the client gets it; `Err` drops the connection.
    pub(crate) async fn apply(self, answer: Reply) -> Result<Reply, DropConnection> {
        match self {
            Aftermath::Send => Ok(answer),
            Aftermath::Cut => Ok(cut(answer).await),
            Aftermath::Lose => Err(DropConnection),
        }
    }
}

/// Waits out the endpoint's `latency`, then applies a request's fault, if any, before the
/// server acts: `Ok` to act on the request (after a [`Fault::Delay`]) and then apply the
/// [`Aftermath`] to the answer, `Err` with the answer to give instead, where an inner `Err`
/// drops the connection. Every endpoint that takes faults goes through here, so a fault and a
/// latency mean the same everywhere.
pub(crate) async fn before_acting(
    fault: Option<Fault>,
    latency: Duration,
) -> Result<Aftermath, Result<Reply, DropConnection>> {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let Some(fault) = fault else {
        return Ok(Aftermath::Send);
    };
    match fault {
        Fault::Status {
            status,
            retry_after,
        } => {
            let mut reply = reply::documented_error(status);
            if let Some(delay) = retry_after {
                let seconds = whole_seconds(delay);
                reply
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(seconds));
            }
            Err(Ok(reply))
        }
        Fault::Body {
            status,
            content_type,
            body,
        } => Err(Ok(reply::raw(status, content_type, body))),
        Fault::CloseConnection => Err(Err(DropConnection)),
        Fault::Delay(delay) => {
            tokio::time::sleep(delay).await;
            Ok(Aftermath::Send)
        }
        Fault::Truncated => Ok(Aftermath::Cut),
        Fault::AnswerLost => Ok(Aftermath::Lose),
    }
}

/// `answer` with a `Content-Length` of its whole body (one byte when it has none), of which
/// only the first half is sent before the body fails and hyper closes the connection. The body
/// yields once between the two so that hyper flushes the head and the first half.
async fn cut(answer: Reply) -> Reply {
    let (mut parts, body) = answer.into_parts();
    let whole = body
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    let half = whole.slice(..whole.len() / 2);
    let first = stream::iter([Ok::<_, BoxError>(Frame::data(half))]);
    let then_fail = stream::once(async {
        tokio::task::yield_now().await;
        Err::<Frame<Bytes>, BoxError>(Box::new(DropConnection))
    });
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(whole.len().max(1)));
    Response::from_parts(
        parts,
        BodyExt::boxed(StreamBody::new(first.chain(then_fail))),
    )
}
