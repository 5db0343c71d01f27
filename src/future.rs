//! [`ResponseFuture`]: the `401` state machine of [`InfobipAuth`](crate::InfobipAuth).
//!
//! ```text
//! Waiting ──credential──▶ Readying ──▶ Sent ──401, renewable, replayable──▶ Refreshing ──▶ Readying ──▶ Sent (no more replays)
//!    │                                  └── anything else: done (a 401 carries an Error in its extensions)
//!    └── fetch failed: Err
//! ```
//!
//! On the hot path the future is the inner future, a plain-data `On401` and a box pointer,
//! empty unless the request can be replayed: polling checks one status code, and dropping it
//! frees at most that box.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::cache::{CacheKey, Lookup, Refusal};
use crate::layer::no_room_for_the_credential;
use crate::replay::Snapshot;
use crate::{ApiError, BoxError, Credential, Error, ErrorKind};

pin_project! {
    /// Response future of [`InfobipAuth`](crate::InfobipAuth).
    ///
    /// ```
    /// use http::{Request, Response};
    /// use infobip_auth::future::ResponseFuture;
    /// use infobip_auth::{Error, ErrorKind, InfobipAuthLayer};
    /// use tower::{Layer, Service, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let client = service_fn(|_: Request<String>| async {
    ///     Ok::<_, std::convert::Infallible>(Response::new(String::new()))
    /// });
    /// let mut service = InfobipAuthLayer::api_key("003026bbc133714df1834b8638bb496e")?.layer(client);
    ///
    /// // `call` never fails: the layer's own refusals (here, a host the key is not for) come
    /// // out of the future.
    /// let request = Request::get("https://example.com/sms/1/inbox/reports").body(String::new())?;
    /// let future: ResponseFuture<_, String> = service.ready().await?.call(request);
    /// let err = future.await.err().ok_or("sent")?;
    /// assert!(matches!(Error::find(&*err).map(Error::kind), Some(ErrorKind::HostNotAllowed { .. })));
    /// # Ok(()) }
    /// ```
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        // The inner service's future, once the request is sent.
        #[pin]
        sent: Option<S::Future>,
        on_401: On401,
        // Everything the hot path does without: waiting, failing, replaying.
        rare: Option<Box<Rare<S, B>>>,
    }
}

/// What a `401` to the request means. Plain data: nothing to drop.
#[derive(Clone, Copy)]
pub(crate) enum On401 {
    /// The caller's own `Authorization`: the `401` is theirs, handed back untouched.
    Pass,
    /// A credential that does not renew: the `401` is final.
    Final,
    /// Credential `id` from cache `cache`: invalidate it and renew.
    Renew { cache: CacheKey, id: u64 },
    /// The replay, with credential `id` fresh from cache `cache`: a refusal of that one too is
    /// a failed renewal, which backs off.
    Replayed { cache: CacheKey, id: u64 },
}

impl On401 {
    /// The same meaning for credential `id`, once it is known.
    fn for_credential(self, id: u64) -> Self {
        match self {
            Self::Renew { cache, .. } => Self::Renew { cache, id },
            other => other,
        }
    }

    /// The meaning of a `401` to the replay, sent with credential `id`.
    fn for_replay(self, id: u64) -> Self {
        match self {
            Self::Renew { cache, .. } | Self::Replayed { cache, .. } => {
                Self::Replayed { cache, id }
            }
            other => other,
        }
    }
}

/// A service clone and a copy of the request, for the one replay.
struct Retry<S, B> {
    service: S,
    snapshot: Snapshot<B>,
}

/// What a request needs for its one replay after a `401`, boxed before the request is sent:
/// only requests whose body can be copied carry one, and they copy the request anyway.
pub(crate) struct Replay<S, B>(Box<Rare<S, B>>);

impl<S, B> Replay<S, B> {
    /// A replay through `service` (a clone not yet driven to readiness) of `snapshot`.
    pub(crate) fn new(service: S, snapshot: Snapshot<B>) -> Self {
        Self(Box::new(Rare {
            step: Step::Idle,
            retry: Some(Retry { service, snapshot }),
        }))
    }
}

/// The boxed part of a response future.
struct Rare<S, B> {
    step: Step<S, B>,
    /// Taken by the replay, so there is never a second one.
    retry: Option<Retry<S, B>>,
}

/// Small: what it holds but a service is boxed. Every replayable request builds a `Rare` on the
/// stack and moves it into its box, with the step `Idle`; a step as large as a request, an
/// error or a lookup made that move cost as much again (measured by `benches/callgrind.rs`).
/// The other steps are rare enough to allocate.
enum Step<S, B> {
    /// Nothing to do but wait for `sent`.
    Idle,
    /// The layer failed before sending.
    Failed(Box<Error>),
    /// Waiting for a credential before the first send, with a service clone not yet ready.
    Waiting {
        lookup: Box<Lookup>,
        service: S,
        request: Box<Request<B>>,
    },
    /// Waiting for a new credential after a `401`.
    Refreshing(Box<Lookup>),
    /// Driving a service clone to readiness for the first send after a wait, or the replay.
    Readying {
        service: S,
        request: Box<Request<B>>,
    },
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    #[inline]
    pub(crate) fn sent(future: S::Future, on_401: On401, replay: Option<Replay<S, B>>) -> Self {
        Self {
            sent: Some(future),
            on_401,
            rare: replay.map(|replay| replay.0),
        }
    }

    fn rare(on_401: On401, step: Step<S, B>, replay: Option<Replay<S, B>>) -> Self {
        let rare = match replay {
            Some(Replay(mut rare)) => {
                rare.step = step;
                rare
            }
            None => Box::new(Rare { step, retry: None }),
        };
        Self {
            sent: None,
            on_401,
            rare: Some(rare),
        }
    }

    pub(crate) fn failed(error: Error) -> Self {
        Self::rare(On401::Pass, Step::Failed(Box::new(error)), None)
    }

    pub(crate) fn waiting(
        lookup: Lookup,
        service: S,
        request: Request<B>,
        on_401: On401,
        replay: Option<Replay<S, B>>,
    ) -> Self {
        let step = Step::Waiting {
            lookup: Box::new(lookup),
            service,
            request: Box::new(request),
        };
        Self::rare(on_401, step, replay)
    }
}

/// The value a `401` the layer could not cure carries in its extensions, to a credential whose
/// source `renews` it or not.
pub(crate) fn invalid_credentials(renews: bool) -> Error {
    let api = ApiError::from_body(StatusCode::UNAUTHORIZED, b"");
    Error::new(ErrorKind::InvalidCredentials(api))
        .with_context(crate::error::Context::Refused { renews })
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<ResB>, BoxError>;

    /// The hot path, small enough to inline: the answer to a request sent. Every other way
    /// out is a call, so only this one moves a response into the output here (a response
    /// that several paths hand back is copied once more, measured by `benches/callgrind.rs`).
    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut sent = self.as_mut().project().sent;
        let result = match sent.as_mut().as_pin_mut() {
            Some(future) => ready!(future.poll(cx)),
            None => return self.poll_rare(cx),
        };
        // Done with: polled again, the future answers an error instead of polling it again.
        sent.set(None);
        match result {
            Ok(response) if response.status() != StatusCode::UNAUTHORIZED => {
                Poll::Ready(Ok(response))
            }
            Ok(response) => self.refused(response, cx),
            Err(error) => Poll::Ready(Err(error.into())),
        }
    }
}

impl<S, B, ResB> ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    /// After a `401` to the request sent: hands it back, or renews and replays.
    #[cold]
    #[inline(never)]
    fn refused(
        mut self: Pin<&mut Self>,
        response: Response<ResB>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<ResB>, BoxError>> {
        let this = self.as_mut().project();
        if let Err(response) = unauthorized(*this.on_401, this.rare, response) {
            return Poll::Ready(Ok(response));
        }
        self.poll_rare(cx)
    }

    /// Every step but waiting for the answer to a request sent (waiting for a credential,
    /// failing, readying the replay), then back to that wait.
    #[inline(never)]
    fn poll_rare(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<ResB>, BoxError>> {
        let mut this = self.as_mut().project();
        let Some(rare) = this.rare.as_deref_mut() else {
            return Poll::Ready(Err(polled_after_completion()));
        };
        let future = ready!(step(rare, this.on_401, cx))?;
        this.sent.set(Some(future));
        self.poll(cx)
    }
}

/// Attaches a refusal's meaning to a response's `extensions`, unless a layer inside (the scope
/// check) already did: it read the body, which the auth layer, the gRPC renewal and the reqwest
/// middleware do not. That one learns from `meaning` what it could not know: whether the
/// refused credential renews.
#[cold]
pub(crate) fn mark_refused(extensions: &mut http::Extensions, meaning: impl FnOnce() -> Error) {
    match extensions.get_mut::<Error>() {
        Some(said) => said.explain_refusal(&meaning()),
        None => {
            extensions.insert(meaning());
        }
    }
}

/// What follows a `401`: `Ok` when a renewal and replay start, else the response to hand back.
#[cold]
#[inline(never)]
fn unauthorized<S, B, ResB>(
    on_401: On401,
    rare: &mut Option<Box<Rare<S, B>>>,
    mut response: Response<ResB>,
) -> Result<(), Response<ResB>> {
    let renews = !matches!(on_401, On401::Final);
    let refused = || invalid_credentials(renews);
    let renew = match on_401 {
        On401::Pass => return Err(response),
        On401::Final => None,
        On401::Replayed { cache, id } => {
            if let Some(cache) = cache.find() {
                cache.refused_after_renewal(id);
            }
            None
        }
        On401::Renew { cache, id } => cache.find().map(|cache| (cache, id)),
    };
    let Some((cache, id)) = renew else {
        mark_refused(response.extensions_mut(), refused);
        return Err(response);
    };
    if cache.invalidate(id) == Refusal::BackedOff {
        // It had replaced a refused credential: no renewal, no replay, until the backoff ends.
        mark_refused(response.extensions_mut(), refused);
        return Err(response);
    }
    if let Some(rare) = rare.as_deref_mut().filter(|rare| rare.retry.is_some()) {
        rare.step = Step::Refreshing(Box::new(cache.lookup(None)));
        return Ok(());
    }
    // No replay: start the renewal now, so the next request finds it.
    drop(cache.lookup(None));
    mark_refused(response.extensions_mut(), refused);
    Err(response)
}

/// Every step but waiting for the response: towards the next request to send.
#[inline(never)]
fn step<S, B>(
    rare: &mut Rare<S, B>,
    on_401: &mut On401,
    cx: &mut Context<'_>,
) -> Poll<Result<S::Future, BoxError>>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    loop {
        match &mut rare.step {
            Step::Idle => return Poll::Ready(Err(polled_after_completion())),
            Step::Failed(_) => {
                if let Step::Failed(error) = std::mem::replace(&mut rare.step, Step::Idle) {
                    return Poll::Ready(Err((*error).into()));
                }
            }
            Step::Waiting { lookup, .. } => {
                let (credential, id) = ready!(Pin::new(&mut **lookup).poll(cx))?;
                if let Step::Waiting {
                    service,
                    mut request,
                    ..
                } = std::mem::replace(&mut rare.step, Step::Idle)
                {
                    *on_401 = on_401.for_credential(id);
                    set_credential(request.headers_mut(), &credential)?;
                    rare.step = Step::Readying { service, request };
                }
            }
            Step::Refreshing(lookup) => {
                let (credential, id) = ready!(Pin::new(&mut **lookup).poll(cx))?;
                let Some(Retry { service, snapshot }) = rare.retry.take() else {
                    return Poll::Ready(Err(polled_after_completion()));
                };
                let mut request = snapshot.into_request();
                set_credential(request.headers_mut(), &credential)?;
                // The renewal was the one a 401 gets: a refused replay is handed back, and the
                // cache backs off before renewing again.
                *on_401 = on_401.for_replay(id);
                rare.step = Step::Readying {
                    service,
                    request: Box::new(request),
                };
            }
            Step::Readying { service, .. } => {
                ready!(service.poll_ready(cx)).map_err(Into::into)?;
                if let Step::Readying {
                    mut service,
                    request,
                } = std::mem::replace(&mut rare.step, Step::Idle)
                {
                    return Poll::Ready(Ok(service.call(*request)));
                }
            }
        }
    }
}

/// Sets the credential on a request the caller left without `Authorization`, or fails if its
/// header map is full (`insert` would panic).
pub(crate) fn set_credential(
    headers: &mut HeaderMap,
    credential: &Credential,
) -> Result<(), Error> {
    match headers.try_insert(AUTHORIZATION, credential.header().clone()) {
        Ok(_) => Ok(()),
        Err(_) => Err(no_room_for_the_credential()),
    }
}

fn polled_after_completion() -> BoxError {
    "infobip-auth response future polled after completion".into()
}

impl<S, B> std::fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
