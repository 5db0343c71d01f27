//! [`ReplayPolicy`]: which request bodies can be sent a second time after a `401`.
//!
//! After a `401` the layer renews the credential and sends the request once more, which needs a
//! copy of the request taken before the first send. Bodies are opaque streams, so the policy
//! decides per body *type*, at run time, without any bound on the body type: the layer keeps
//! working over bodies that cannot be copied (tonic's), and simply hands their `401` back.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};
use http_body_util::{Empty, Full};

/// Copies `src` (a `&B`) into `dst` (an `&mut Option<B>`) when `B` is the cloner's type.
type CloneFn = dyn Fn(&dyn Any, &mut dyn Any) + Send + Sync;

/// Which request bodies the layer may copy to replay a request after a `401`.
///
/// The default copies `Full<Bytes>`, `Empty<Bytes>`, `String`, `Bytes`, `Vec<u8>` and `()`:
/// ordinary JSON calls to Infobip are replayed with no configuration. Add your own body types
/// with [`ReplayPolicy::with`] or [`ReplayPolicy::with_fn`], or turn replay off with
/// [`ReplayPolicy::never`].
///
/// ```
/// use http::{Request, Response, StatusCode};
/// use infobip_auth::{InfobipAuthLayer, ReplayPolicy};
/// use tower::{Layer, ServiceExt, service_fn};
/// # use std::{convert::Infallible, sync::atomic::{AtomicUsize, Ordering}};
/// # use infobip_auth::{Credential, Error, source::TokenSource};
/// # #[derive(Debug, Default)] struct Numbered(AtomicUsize);
/// # impl TokenSource for Numbered {
/// #     async fn fetch(&self, _: Option<&Credential>) -> Result<Credential, Error> {
/// #         Ok(Credential::new("Bearer", &format!("token-{}", self.0.fetch_add(1, Ordering::SeqCst) + 1))?)
/// #     }
/// # }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// // `Numbered` makes `token-1`, `token-2`, ...; the server takes only `token-2`.
/// let server = service_fn(|request: Request<String>| async move {
///     let mut response = Response::new(());
///     if request.headers()["authorization"] != "Bearer token-2" {
///         *response.status_mut() = StatusCode::UNAUTHORIZED;
///     }
///     Ok::<_, Infallible>(response)
/// });
/// let send = || Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced").body("{}".to_owned());
///
/// // A `String` body is copied by default: the refused request is sent again with `token-2`.
/// let layer = InfobipAuthLayer::new(Numbered::default());
/// assert_eq!(layer.layer(server).oneshot(send()?).await?.status(), StatusCode::OK);
///
/// // With replay off, the `401` comes back (and the next request gets `token-2`).
/// let layer = InfobipAuthLayer::new(Numbered::default()).replay(ReplayPolicy::never());
/// assert_eq!(layer.layer(server).oneshot(send()?).await?.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(layer.layer(server).oneshot(send()?).await?.status(), StatusCode::OK);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReplayPolicy {
    cloners: Arc<[(TypeId, &'static str, Arc<CloneFn>)]>,
}

impl Default for ReplayPolicy {
    fn default() -> Self {
        Self::never()
            .with::<Full<Bytes>>()
            .with::<Empty<Bytes>>()
            .with::<String>()
            .with::<Bytes>()
            .with::<Vec<u8>>()
            .with::<()>()
    }
}

impl ReplayPolicy {
    /// Replays nothing: a `401` is handed back after the credential is invalidated.
    ///
    /// ```
    /// # use infobip_auth::ReplayPolicy;
    /// // No body type is copied, not even the default ones.
    /// assert_eq!(format!("{:?}", ReplayPolicy::never()), "{}");
    /// ```
    #[must_use]
    pub fn never() -> Self {
        Self {
            cloners: Arc::from([]),
        }
    }

    /// Whether this is [`ReplayPolicy::never`]: no body type is copied.
    #[cfg(feature = "reqwest")]
    pub(crate) fn is_never(&self) -> bool {
        self.cloners.is_empty()
    }

    /// Also replays bodies of type `B` by cloning them.
    ///
    /// ```
    /// # use http::{Request, Response, StatusCode};
    /// # use tower::{Layer, ServiceExt, service_fn};
    /// use infobip_auth::{InfobipAuthLayer, ReplayPolicy};
    /// # use std::{convert::Infallible, sync::atomic::{AtomicUsize, Ordering}};
    /// # use infobip_auth::{Credential, Error, source::TokenSource};
    /// # #[derive(Debug, Default)] struct Numbered(AtomicUsize);
    /// # impl TokenSource for Numbered {
    /// #     async fn fetch(&self, _: Option<&Credential>) -> Result<Credential, Error> {
    /// #         Ok(Credential::new("Bearer", &format!("token-{}", self.0.fetch_add(1, Ordering::SeqCst) + 1))?)
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// #[derive(Clone)]
    /// struct Json(String);
    ///
    /// # let server = service_fn(|request: Request<Json>| async move {
    /// #     let mut response = Response::new(());
    /// #     if request.headers()["authorization"] != "Bearer token-2" {
    /// #         *response.status_mut() = StatusCode::UNAUTHORIZED;
    /// #     }
    /// #     Ok::<_, Infallible>(response)
    /// # });
    /// // The server refuses `token-1` and takes `token-2`: a `Json` body can now be sent again.
    /// let layer = InfobipAuthLayer::new(Numbered::default()).replay(ReplayPolicy::default().with::<Json>());
    /// let request = Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced").body(Json("{}".into()))?;
    /// assert_eq!(layer.layer(server).oneshot(request).await?.status(), StatusCode::OK);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with<B: Clone + 'static>(self) -> Self {
        self.with_fn(|body: &B| Some(body.clone()))
    }

    /// Also replays bodies of type `B` with `copy`, which may decline (`None`), for instance
    /// for a streaming body that has no buffered copy.
    ///
    /// ```
    /// # use http::{Request, Response, StatusCode};
    /// # use tower::{Layer, ServiceExt, service_fn};
    /// use bytes::Bytes;
    /// use http_body::Body as _;
    /// use http_body_util::Full;
    /// use infobip_auth::{InfobipAuthLayer, ReplayPolicy};
    /// # use std::{convert::Infallible, sync::atomic::{AtomicUsize, Ordering}};
    /// # use infobip_auth::{Credential, Error, source::TokenSource};
    /// # #[derive(Debug, Default)] struct Numbered(AtomicUsize);
    /// # impl TokenSource for Numbered {
    /// #     async fn fetch(&self, _: Option<&Credential>) -> Result<Credential, Error> {
    /// #         Ok(Credential::new("Bearer", &format!("token-{}", self.0.fetch_add(1, Ordering::SeqCst) + 1))?)
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let server = service_fn(|request: Request<Full<Bytes>>| async move {
    /// #     let mut response = Response::new(());
    /// #     if request.headers()["authorization"] != "Bearer token-2" {
    /// #         *response.status_mut() = StatusCode::UNAUTHORIZED;
    /// #     }
    /// #     Ok::<_, Infallible>(response)
    /// # });
    /// // Replay only bodies up to 64 KiB.
    /// let policy = ReplayPolicy::never().with_fn(|body: &Full<Bytes>| {
    ///     (body.size_hint().exact()? <= 64 * 1024).then(|| body.clone())
    /// });
    /// let send = |size| {
    ///     Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced")
    ///         .body(Full::new(Bytes::from(vec![b' '; size])))
    /// };
    /// // The server refuses `token-1` and takes `token-2`: only the small body is sent again.
    /// let layer = InfobipAuthLayer::new(Numbered::default()).replay(policy.clone());
    /// assert_eq!(layer.layer(server).oneshot(send(100)?).await?.status(), StatusCode::OK);
    /// let layer = InfobipAuthLayer::new(Numbered::default()).replay(policy);
    /// assert_eq!(layer.layer(server).oneshot(send(100_000)?).await?.status(), StatusCode::UNAUTHORIZED);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_fn<B, F>(self, copy: F) -> Self
    where
        B: 'static,
        F: Fn(&B) -> Option<B> + Send + Sync + 'static,
    {
        let cloner = move |src: &dyn Any, dst: &mut dyn Any| {
            if let (Some(src), Some(dst)) =
                (src.downcast_ref::<B>(), dst.downcast_mut::<Option<B>>())
            {
                *dst = copy(src);
            }
        };
        let mut cloners: Vec<_> = self
            .cloners
            .iter()
            .filter(|(id, _, _)| *id != TypeId::of::<B>())
            .cloned()
            .collect();
        cloners.push((
            TypeId::of::<B>(),
            std::any::type_name::<B>(),
            Arc::new(cloner),
        ));
        Self {
            cloners: cloners.into(),
        }
    }

    /// A copy of `request`, if its body type can be replayed.
    #[inline]
    pub(crate) fn snapshot<B: 'static>(&self, request: &Request<B>) -> Option<Snapshot<B>> {
        if self.cloners.is_empty() {
            return None; // `never()`: nothing to look up on the hot path
        }
        self.copy(request)
    }

    /// Inlined with [`snapshot`](Self::snapshot), so the copy is built where the replay's box
    /// is filled from, not returned and moved there (measured by `benches/callgrind.rs`).
    #[inline]
    fn copy<B: 'static>(&self, request: &Request<B>) -> Option<Snapshot<B>> {
        let (_, _, cloner) = self
            .cloners
            .iter()
            .find(|(id, _, _)| *id == TypeId::of::<B>())?;
        let mut body: Option<B> = None;
        cloner(request.body(), &mut body);
        Some(Snapshot {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: copy_headers(request.headers()),
            extensions: request.extensions().clone(),
            body: body?,
        })
    }
}

impl fmt::Debug for ReplayPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.cloners.iter().map(|(_, name, _)| name))
            .finish()
    }
}

/// A header name and one of its values.
type Pair = (HeaderName, HeaderValue);

/// The headers of a request, in order, one pair per value. A JSON call often has one
/// (`Content-Type`): it stays in the replay's box, and the copy allocates nothing more. Room for
/// a second made the box, which each replayable request fills from the stack, slow to move
/// (measured by `benches/callgrind.rs` and side by side: fewer instructions, more time). More
/// values are copied to one list, where a copy of the `HeaderMap` takes two allocations (its
/// entries and its index). The map is rebuilt only for a replay.
enum Headers {
    Inline(Option<Pair>),
    Listed(Vec<Pair>),
}

fn copy_headers(headers: &HeaderMap) -> Headers {
    let mut pairs = headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()));
    // `len` counts every value; the iterator's size hint counts only names.
    if headers.len() <= 1 {
        return Headers::Inline(pairs.next());
    }
    let mut copy = Vec::with_capacity(headers.len());
    copy.extend(pairs);
    Headers::Listed(copy)
}

/// A request as it was before the layer added its credential.
pub(crate) struct Snapshot<B> {
    method: Method,
    uri: Uri,
    version: Version,
    headers: Headers,
    extensions: Extensions,
    body: B,
}

impl<B> Snapshot<B> {
    pub(crate) fn into_request(self) -> Request<B> {
        let mut request = Request::new(self.body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = self.version;
        let (inline, listed) = match self.headers {
            Headers::Inline(pairs) => (pairs, Vec::new()),
            Headers::Listed(pairs) => (None, pairs),
        };
        let headers = request.headers_mut();
        let _ = headers.try_reserve(listed.len());
        for (name, value) in inline.into_iter().chain(listed) {
            // A copy of a valid map's headers: never more than a map holds.
            let _ = headers.try_append(name, value);
        }
        *request.extensions_mut() = self.extensions;
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NotClone;

    #[test]
    fn default_copies_the_ordinary_bodies_only() {
        let policy = ReplayPolicy::default();
        assert!(
            policy
                .snapshot(&Request::new(Full::new(Bytes::from_static(b"{}"))))
                .is_some()
        );
        assert!(
            policy
                .snapshot(&Request::new(Empty::<Bytes>::new()))
                .is_some()
        );
        assert!(policy.snapshot(&Request::new(String::from("x"))).is_some());
        assert!(policy.snapshot(&Request::new(Bytes::new())).is_some());
        assert!(policy.snapshot(&Request::new(Vec::<u8>::new())).is_some());
        assert!(policy.snapshot(&Request::new(())).is_some());
        assert!(policy.snapshot(&Request::new(NotClone)).is_none());
        assert!(ReplayPolicy::never().snapshot(&Request::new(())).is_none());
    }

    #[test]
    fn snapshot_keeps_none_to_three_header_values_in_order() {
        let values = [
            ("accept", "application/json"),
            ("accept", "text/plain"),
            ("x-b", "2"),
        ];
        for n in 0..=values.len() {
            let mut request = Request::new(Bytes::from_static(b"{}"));
            for (name, value) in &values[..n] {
                let mut value = HeaderValue::from_static(value);
                value.set_sensitive(*name == "x-b");
                let name = HeaderName::from_static(name);
                request.headers_mut().append(name, value);
            }
            let copy = ReplayPolicy::default()
                .snapshot(&request)
                .map(Snapshot::into_request)
                .unwrap_or_default();
            assert_eq!(copy.headers(), request.headers(), "{n} values");
            let copied: Vec<_> = copy.headers().iter().collect();
            let sent: Vec<_> = request.headers().iter().collect();
            assert_eq!(copied, sent, "{n} values, in order");
            assert!(
                copy.headers()
                    .get("x-b")
                    .is_none_or(HeaderValue::is_sensitive)
            );
        }
    }

    #[test]
    fn snapshot_keeps_every_part() {
        let mut request = Request::post("https://api.infobip.com/sms/2/text/advanced")
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .header("accept", "text/plain")
            .body(String::from("{\"messages\":[]}"))
            .unwrap_or_default();
        request.extensions_mut().insert(7u8);
        let mut secret = HeaderValue::from_static("s3cr3t");
        secret.set_sensitive(true);
        request.headers_mut().insert("x-secret", secret);
        let copy = ReplayPolicy::default()
            .snapshot(&request)
            .map(Snapshot::into_request);
        let copy = copy.unwrap_or_default();
        assert_eq!(copy.method(), Method::POST);
        assert_eq!(copy.uri(), request.uri());
        assert_eq!(copy.headers(), request.headers());
        let accepted: Vec<_> = copy.headers().get_all("accept").iter().collect();
        assert_eq!(
            accepted,
            ["application/json", "text/plain"],
            "every value, in order"
        );
        assert!(copy.headers()["x-secret"].is_sensitive());
        assert_eq!(copy.extensions().get::<u8>(), Some(&7));
        assert_eq!(copy.body(), request.body());
    }

    #[test]
    fn a_declining_copy_means_no_replay() {
        let policy = ReplayPolicy::default().with_fn(|_: &String| None);
        assert!(policy.snapshot(&Request::new(String::from("x"))).is_none());
    }
}
