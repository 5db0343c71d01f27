//! [`ResponseBody`]: the body of a response that went through [`ScopeCheck`](super::ScopeCheck).
//!
//! Most responses pass their body through untouched. A `401` or `403` had the start of its body
//! read (up to the read limit) to classify it; those frames are handed out again first, then
//! the rest of the body streams as it would have, so the caller receives exactly the bytes the
//! server sent, and never more than the limit is held in memory.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// Response body of [`ScopeCheck`](super::ScopeCheck): the inner service's body, with the
    /// frames read to classify a `401` or `403` put back in front of it.
    ///
    /// Its data and error types are the inner body's; nothing is copied.
    ///
    /// ```
    /// use http::{Request, Response, StatusCode};
    /// use http_body_util::BodyExt;
    /// use infobip_auth::Error;
    /// use infobip_auth::scope::{ResponseBody, ScopeCheck};
    /// use tower::{ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// const INFOBIP_403: &str = r#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;
    /// // Stands in for Infobip answering 403 with its error body.
    /// let client = service_fn(|_: Request<String>| async {
    ///     let mut response = Response::new(INFOBIP_403.to_owned());
    ///     *response.status_mut() = StatusCode::FORBIDDEN;
    ///     Ok::<_, std::convert::Infallible>(response)
    /// });
    /// let request = Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced")
    ///     .header("authorization", "App 003026bbc133714df1834b8638bb496e")
    ///     .body(String::new())?;
    /// let response = ScopeCheck::new(client).oneshot(request).await?;
    /// assert!(response.extensions().get::<Error>().is_some());
    ///
    /// // The body was read to classify the 403, yet the caller still gets every byte of it.
    /// let body: ResponseBody<String> = response.into_body();
    /// assert_eq!(body.collect().await?.to_bytes(), INFOBIP_403);
    /// # Ok(()) }
    /// ```
    pub struct ResponseBody<B>
    where
        B: Body,
    {
        buffered: VecDeque<Frame<B::Data>>,
        #[pin]
        tail: Tail<B>,
    }
}

pin_project! {
    #[project = TailProj]
    enum Tail<B>
    where
        B: Body,
    {
        // Never read: passed through as it is.
        Body { #[pin] body: B },
        // Partly read; boxed when the read started, so it could be moved here unpinned.
        Boxed { body: Pin<Box<B>> },
        // Failed while being read: the error comes after the buffered frames.
        Failed { error: Option<B::Error> },
        // Read to its end.
        Ended,
    }
}

impl<B: Body> ResponseBody<B> {
    /// The untouched body of a response that was not classified.
    pub(super) fn new(body: B) -> Self {
        Self {
            buffered: VecDeque::new(),
            tail: Tail::Body { body },
        }
    }

    /// `buffered` first, then what `rest` says comes after them.
    pub(super) fn replay(buffered: VecDeque<Frame<B::Data>>, rest: Rest<B>) -> Self {
        let tail = match rest {
            Rest::More(body) => Tail::Boxed { body },
            Rest::Failed(error) => Tail::Failed { error: Some(error) },
            Rest::Ended => Tail::Ended,
        };
        Self { buffered, tail }
    }
}

/// What follows the frames read to classify a response.
pub(super) enum Rest<B: Body> {
    /// The unread remainder.
    More(Pin<Box<B>>),
    /// The body failed while it was read.
    Failed(B::Error),
    /// The body was read to its end.
    Ended,
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if let Some(frame) = this.buffered.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        match this.tail.project() {
            TailProj::Body { body } => body.poll_frame(cx),
            TailProj::Boxed { body } => body.as_mut().poll_frame(cx),
            TailProj::Failed { error } => Poll::Ready(error.take().map(Err)),
            TailProj::Ended => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.buffered.is_empty()
            && match &self.tail {
                Tail::Body { body } => body.is_end_stream(),
                Tail::Boxed { body } => body.is_end_stream(),
                Tail::Failed { error } => error.is_none(),
                Tail::Ended => true,
            }
    }

    fn size_hint(&self) -> SizeHint {
        let tail = match &self.tail {
            Tail::Body { body } => body.size_hint(),
            Tail::Boxed { body } => body.size_hint(),
            Tail::Failed { .. } | Tail::Ended => SizeHint::with_exact(0),
        };
        if self.buffered.is_empty() {
            return tail;
        }
        let buffered = self
            .buffered
            .iter()
            .filter_map(Frame::data_ref)
            .map(|data| u64::try_from(data.remaining()).unwrap_or(u64::MAX))
            .fold(0u64, u64::saturating_add);
        let mut hint = SizeHint::new();
        // Both bounds grow by the same amount (saturating), so `upper >= lower` still holds.
        if let Some(upper) = tail.upper() {
            hint.set_upper(upper.saturating_add(buffered));
        }
        hint.set_lower(tail.lower().saturating_add(buffered));
        hint
    }
}

impl<B: Body> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = match &self.tail {
            Tail::Body { .. } => "untouched",
            Tail::Boxed { .. } => "partly read",
            Tail::Failed { .. } => "failed",
            Tail::Ended => "read to its end",
        };
        f.debug_struct("ResponseBody")
            .field("buffered_frames", &self.buffered.len())
            .field("rest", &tail)
            .finish()
    }
}

/// The first `limit` bytes of the data in `frames`, copied into one slice to classify.
///
/// Data is read through `chunks_vectored`, without consuming it; should a frame's data be
/// spread over more chunks than that shows, the prefix stops there, so it is always a true
/// prefix of the body (for `Bytes`, hyper's data type, every frame is one chunk).
pub(super) fn prefix<D: Buf>(frames: &VecDeque<Frame<D>>, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for data in frames.iter().filter_map(Frame::data_ref) {
        let mut slices = [std::io::IoSlice::new(&[]); 16];
        let filled = data.chunks_vectored(&mut slices);
        let mut seen = 0;
        for slice in slices.iter().take(filled) {
            let room = limit.saturating_sub(out.len());
            let take = slice.len().min(room);
            out.extend_from_slice(slice.get(..take).unwrap_or_default());
            seen += slice.len();
            if out.len() >= limit {
                return out;
            }
        }
        if seen < data.remaining() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    fn frames(parts: &[&'static [u8]]) -> VecDeque<Frame<Bytes>> {
        parts
            .iter()
            .map(|p| Frame::data(Bytes::from_static(p)))
            .collect()
    }

    #[test]
    fn prefix_joins_frames_up_to_the_limit() {
        let f = frames(&[b"abc", b"def", b"ghi"]);
        assert_eq!(prefix(&f, 100), b"abcdefghi");
        assert_eq!(prefix(&f, 5), b"abcde");
        assert_eq!(prefix(&f, 0), b"");
        let mut with_trailers = frames(&[b"ab"]);
        with_trailers.push_back(Frame::trailers(http::HeaderMap::new()));
        assert_eq!(prefix(&with_trailers, 10), b"ab");
    }

    #[test]
    fn prefix_stops_at_data_it_cannot_see_whole() {
        // A chain of 20 one-byte chunks shows only 16 through `chunks_vectored`.
        let chain = (0..20u8).fold(
            Box::new(Bytes::new()) as Box<dyn Buf>,
            |acc, b| -> Box<dyn Buf> { Box::new(acc.chain(Bytes::from(vec![b'a' + b]))) },
        );
        let mut f: VecDeque<Frame<Box<dyn Buf>>> = VecDeque::new();
        f.push_back(Frame::data(chain));
        f.push_back(Frame::data(Box::new(Bytes::from_static(b"zz"))));
        let got = prefix(&f, 100);
        assert!(b"abcdefghijklmnopqrst".starts_with(&got), "{got:?}");
        assert!(!got.ends_with(b"zz"));
    }

    #[tokio::test]
    async fn replays_buffered_frames_then_the_rest() -> Result<(), Box<dyn std::error::Error>> {
        let rest = Box::pin(Full::new(Bytes::from_static(b" world")));
        let body = ResponseBody::replay(frames(&[b"hel", b"lo"]), Rest::More(rest));
        assert_eq!(body.size_hint().exact(), Some(11));
        assert!(!body.is_end_stream());
        let bytes = body.collect().await?.to_bytes();
        assert_eq!(bytes, "hello world");
        Ok(())
    }

    #[tokio::test]
    async fn a_passed_through_body_keeps_its_size_hint() -> Result<(), Box<dyn std::error::Error>> {
        let body = ResponseBody::new(Full::new(Bytes::from_static(b"abc")));
        assert_eq!(body.size_hint().exact(), Some(3));
        assert_eq!(body.collect().await?.to_bytes(), "abc");
        let ended: ResponseBody<Full<Bytes>> = ResponseBody::replay(VecDeque::new(), Rest::Ended);
        assert!(ended.is_end_stream());
        assert_eq!(ended.size_hint().exact(), Some(0));
        Ok(())
    }
}
