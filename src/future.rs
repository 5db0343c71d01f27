//! [`ResponseFuture`]: the `401` state machine of [`InfobipAuth`](crate::InfobipAuth).
//!
//! ```text
//! Waiting ──credential──▶ Sent ──401, renewable, replayable──▶ Refreshing ──▶ Readying ──▶ Sent (no more replays)
//!    │                      └── anything else: done (a 401 carries an Error in its extensions)
//!    └── fetch failed: Err
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::cache::{Lookup, PrivateCache};
use crate::replay::Snapshot;
use crate::{ApiError, BoxError, Error, ErrorKind};

pin_project! {
    /// Response future of [`InfobipAuth`](crate::InfobipAuth).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, S, B>,
    }
}

pin_project! {
    // Only `Sent` is inline: on the hot path the future is the inner future and a small
    // `Check`, so moving it copies little. The other states are rare and boxed.
    #[project = StateProj]
    enum State<F, S, B> {
        Failed { error: Option<Box<Error>> },
        Waiting { waiting: Box<Waiting<S, B>> },
        Sent { #[pin] future: F, check: Option<Check<S, B>> },
        Refreshing { refreshing: Box<Refreshing<S, B>> },
        Readying { readying: Box<Readying<S, B>> },
    }
}

/// Waiting for a credential before the first send.
struct Waiting<S, B> {
    lookup: Lookup,
    service: Option<S>,
    request: Option<Request<B>>,
    check: Option<Check<S, B>>,
}

/// Waiting for a new credential after a `401`.
struct Refreshing<S, B> {
    lookup: Lookup,
    check: Option<Check<S, B>>,
}

/// Driving a service clone to readiness for the replay.
struct Readying<S, B> {
    service: S,
    request: Option<Request<B>>,
    check: Option<Check<S, B>>,
}

/// What a `401` to a request sent with credential `id` needs.
pub(crate) struct Check<S, B> {
    id: u64,
    /// `None` for fixed credentials: their `401` is final.
    cache: Option<PrivateCache>,
    /// Boxed: only requests whose body can be replayed carry one, and they copy the request
    /// anyway.
    retry: Option<Box<Retry<S, B>>>,
}

/// A service clone and a copy of the request, for the one replay.
pub(crate) struct Retry<S, B> {
    pub(crate) service: S,
    pub(crate) snapshot: Snapshot<B>,
}

impl<S, B> Check<S, B> {
    pub(crate) fn fixed(id: u64) -> Self {
        Self {
            id,
            cache: None,
            retry: None,
        }
    }

    pub(crate) fn renewing(id: u64, cache: PrivateCache, retry: Option<Box<Retry<S, B>>>) -> Self {
        Self {
            id,
            cache: Some(cache),
            retry,
        }
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn sent(future: S::Future, check: Option<Check<S, B>>) -> Self {
        Self {
            state: State::Sent { future, check },
        }
    }

    pub(crate) fn failed(error: Error) -> Self {
        Self {
            state: State::Failed {
                error: Some(Box::new(error)),
            },
        }
    }

    pub(crate) fn waiting(
        lookup: Lookup,
        service: S,
        request: Request<B>,
        check: Check<S, B>,
    ) -> Self {
        Self {
            state: State::Waiting {
                waiting: Box::new(Waiting {
                    lookup,
                    service: Some(service),
                    request: Some(request),
                    check: Some(check),
                }),
            },
        }
    }
}

/// The value a `401` the layer could not cure carries in its extensions.
pub(crate) fn invalid_credentials() -> Error {
    Error::new(ErrorKind::InvalidCredentials(ApiError::from_body(
        StatusCode::UNAUTHORIZED,
        b"",
    )))
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<ResB>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            // The hot path, small enough to inline: the answer to a request sent once.
            let next = if let StateProj::Sent { future, check } = state.as_mut().project() {
                let response = ready!(future.poll(cx)).map_err(Into::into)?;
                if response.status() != StatusCode::UNAUTHORIZED {
                    return Poll::Ready(Ok(response));
                }
                match unauthorized(check.take(), response) {
                    Ok(next) => next,
                    Err(response) => return Poll::Ready(Ok(response)),
                }
            } else {
                ready!(step(state.as_mut(), cx))?
            };
            state.set(next);
        }
    }
}

/// Attaches the `401`'s meaning, unless a layer inside (the scope check) already did, reading
/// the body this layer does not read.
fn mark_invalid<B>(response: &mut Response<B>) {
    if response.extensions().get::<Error>().is_none() {
        response.extensions_mut().insert(invalid_credentials());
    }
}

/// What follows a `401`: the state that renews and replays, or the response to hand back.
#[cold]
#[inline(never)]
fn unauthorized<F, S, B, ResB>(
    check: Option<Check<S, B>>,
    mut response: Response<ResB>,
) -> Result<State<F, S, B>, Response<ResB>> {
    // `None`: the caller's own credential, left alone.
    let Some(check) = check else {
        return Err(response);
    };
    match &check.cache {
        Some(cache) if check.retry.is_some() => {
            cache.invalidate(check.id);
            Ok(State::Refreshing {
                refreshing: Box::new(Refreshing {
                    lookup: cache.lookup(None),
                    check: Some(check),
                }),
            })
        }
        Some(cache) => {
            cache.invalidate(check.id);
            // No replay: start the renewal now, so the next request finds it.
            drop(cache.lookup(None));
            mark_invalid(&mut response);
            Err(response)
        }
        None => {
            mark_invalid(&mut response);
            Err(response)
        }
    }
}

type NextState<S, B> = State<<S as Service<Request<B>>>::Future, S, B>;

/// Every state but `Sent`: one step towards the next state.
#[inline(never)]
fn step<S, B, ResB>(
    state: Pin<&mut State<S::Future, S, B>>,
    cx: &mut Context<'_>,
) -> Poll<Result<NextState<S, B>, BoxError>>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    Poll::Ready(Ok(match state.project() {
        StateProj::Failed { error } => {
            return Poll::Ready(Err(error
                .take()
                .map_or_else(invalid_credentials, |e| *e)
                .into()));
        }
        StateProj::Waiting { waiting } => {
            let Waiting {
                lookup,
                service,
                request,
                check,
            } = &mut **waiting;
            let (credential, id) = ready!(Pin::new(lookup).poll(cx))?;
            let (Some(mut service), Some(mut request), Some(mut check)) =
                (service.take(), request.take(), check.take())
            else {
                return Poll::Ready(Err(polled_after_completion()));
            };
            check.id = id;
            request
                .headers_mut()
                .insert(AUTHORIZATION, credential.header().clone());
            State::Sent {
                future: service.call(request),
                check: Some(check),
            }
        }
        StateProj::Refreshing { refreshing } => {
            let Refreshing { lookup, check } = &mut **refreshing;
            let (credential, id) = ready!(Pin::new(lookup).poll(cx))?;
            let Some(Check {
                cache,
                retry: Some(retry),
                ..
            }) = check.take()
            else {
                return Poll::Ready(Err(polled_after_completion()));
            };
            let Retry { service, snapshot } = *retry;
            let mut request = snapshot.into_request();
            request
                .headers_mut()
                .insert(AUTHORIZATION, credential.header().clone());
            State::Readying {
                readying: Box::new(Readying {
                    service,
                    request: Some(request),
                    check: Some(Check {
                        id,
                        cache,
                        retry: None,
                    }),
                }),
            }
        }
        StateProj::Readying { readying } => {
            let Readying {
                service,
                request,
                check,
            } = &mut **readying;
            ready!(service.poll_ready(cx)).map_err(Into::into)?;
            let Some(request) = request.take() else {
                return Poll::Ready(Err(polled_after_completion()));
            };
            State::Sent {
                future: service.call(request),
                check: check.take(),
            }
        }
        StateProj::Sent { .. } => return Poll::Ready(Err(polled_after_completion())),
    }))
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
