//! What the benches share: the services under test, built with `ServiceBuilder` as users build
//! them, and drivers that send requests through them.
//!
//! The inner service answers at once with an empty response and leaves the request it received
//! in a thread-local slot, where the driver takes it back: one request goes round and round, the
//! loop allocates nothing of its own, and what is measured is the layer — its checks, the
//! header clone and insert, its response future — plus the drop of the header the layer set (a
//! real client drops it with the request). Futures complete at once, so they are polled with a
//! no-op waker instead of a runtime.

#![allow(dead_code)] // each bench target uses part of this module

use std::cell::RefCell;
use std::convert::Infallible;
use std::fmt;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use infobip_auth::source::TokenSource;
use infobip_auth::{Credential, Error, InfobipAuthLayer, ReplayPolicy};
use tokio::runtime::Runtime;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_http::auth::AddAuthorizationLayer;
use tower_http::set_header::SetRequestHeaderLayer;

pub const URL: &str = "https://xyz12.api.infobip.com/sms/2/text/advanced";
pub const KEY: &str = "003026bbc133714df1834b8638bb496e-8f4b3d9a-e931-478d-a994-28a725159ab9";
pub const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.bench-token-of-a-realistic-length.c2lnbmF0dXJl";
const BODY: &[u8] = br#"{"messages":[{"destinations":[{"to":"41793026727"}],"text":"Hi"}]}"#;

pub type Body = Full<Bytes>;

/// A service under test: takes a request, answers with the request its inner service saw.
pub trait Layered:
    Service<Request<Body>, Response = Response<Body>, Error: fmt::Debug> + Clone + Send + 'static
{
}

impl<S> Layered for S where
    S: Service<Request<Body>, Response = Response<Body>, Error: fmt::Debug>
        + Clone
        + Send
        + 'static
{
}

/// A fresh request as an application builds it: parsed URL, JSON content type, buffered body.
pub fn request() -> Request<Body> {
    Request::post(URL)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(BODY)))
        .expect("a valid request")
}

thread_local! {
    /// The last request the inner service received on this thread.
    static RECEIVED: RefCell<Option<Request<Body>>> = const { RefCell::new(None) };
}

/// The inner service: keeps the request it received and answers at once with an empty body.
pub fn echo() -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = Ready<Result<Response<Body>, Infallible>>,
> + Clone
+ Send
+ 'static {
    service_fn(|request: Request<Body>| {
        RECEIVED.with(|received| *received.borrow_mut() = Some(request));
        ready(Ok(Response::new(Full::new(Bytes::new()))))
    })
}

/// The request the inner service received last on this thread.
fn received() -> Request<Body> {
    RECEIVED
        .with(|received| received.borrow_mut().take())
        .expect("the inner service received the request")
}

/// A renewing source whose credential lives an hour: once fetched, it is served from the cache.
#[derive(Debug)]
pub struct HourToken;

impl TokenSource for HourToken {
    async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
        Ok(Credential::new("Bearer", TOKEN)?.expires_in(Duration::from_secs(3600)))
    }
}

/// The variants compared, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The inner service alone.
    Bare,
    /// tower-http's `AddAuthorizationLayer::bearer`: one static header value shared by every clone.
    TowerHttp,
    /// tower-http's `SetRequestHeaderLayer::overriding` with a static `App <key>`.
    TowerHttpSetHeader,
    /// `InfobipAuthLayer::api_key`.
    ApiKey,
    /// A renewing source with a cached credential, `ReplayPolicy::never()`.
    Cached,
    /// A renewing source with a cached credential and the default replay policy: a
    /// `Full<Bytes>` request is copied before it is sent, for one replay after a 401.
    CachedReplay,
}

impl Variant {
    pub const ALL: [Variant; 6] = [
        Variant::Bare,
        Variant::TowerHttp,
        Variant::TowerHttpSetHeader,
        Variant::ApiKey,
        Variant::Cached,
        Variant::CachedReplay,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Bare => "bare",
            Variant::TowerHttp => "tower_http_add_authorization",
            Variant::TowerHttpSetHeader => "tower_http_set_header_app",
            Variant::ApiKey => "infobip_api_key",
            Variant::Cached => "infobip_cached_no_replay",
            Variant::CachedReplay => "infobip_cached_default_replay",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The `Authorization` the inner service must see.
    pub fn expected(self) -> Option<String> {
        match self {
            Variant::Bare => None,
            Variant::TowerHttp | Variant::Cached | Variant::CachedReplay => {
                Some(format!("Bearer {TOKEN}"))
            }
            Variant::TowerHttpSetHeader | Variant::ApiKey => Some(format!("App {KEY}")),
        }
    }
}

/// Calls `f` with the service of `variant`, built with `ServiceBuilder`, its credential already
/// cached (fetched on `runtime`, which must outlive the service), and checked: one request went
/// through and carried the expected `Authorization`.
pub fn with_service<R>(variant: Variant, runtime: &Runtime, f: impl ServiceFn<R>) -> R {
    match variant {
        Variant::Bare => f.call(checked(variant, ServiceBuilder::new().service(echo()))),
        Variant::TowerHttp => f.call(checked(
            variant,
            ServiceBuilder::new()
                .layer(AddAuthorizationLayer::bearer(TOKEN).as_sensitive(true))
                .service(echo()),
        )),
        Variant::TowerHttpSetHeader => {
            let mut app = HeaderValue::try_from(format!("App {KEY}")).expect("a header value");
            app.set_sensitive(true);
            f.call(checked(
                variant,
                ServiceBuilder::new()
                    .layer(SetRequestHeaderLayer::overriding(AUTHORIZATION, app))
                    .service(echo()),
            ))
        }
        Variant::ApiKey => {
            let layer = InfobipAuthLayer::api_key(KEY).expect("a valid key");
            f.call(checked(variant, infobip(runtime, layer)))
        }
        Variant::Cached => {
            let layer = InfobipAuthLayer::new(HourToken).replay(ReplayPolicy::never());
            f.call(checked(variant, infobip(runtime, layer)))
        }
        Variant::CachedReplay => {
            let layer = InfobipAuthLayer::new(HourToken);
            f.call(checked(variant, infobip(runtime, layer)))
        }
    }
}

/// A function generic over the service type (closures cannot be).
pub trait ServiceFn<R> {
    fn call<S: Layered>(self, service: S) -> R;
}

fn infobip(runtime: &Runtime, layer: InfobipAuthLayer) -> impl Layered {
    // The first fetch runs in a task on the runtime; afterwards the credential is cached.
    runtime
        .block_on(layer.credential())
        .expect("the credential is fetched");
    ServiceBuilder::new().layer(layer).service(echo())
}

fn checked<S: Layered>(variant: Variant, mut service: S) -> S {
    let seen = send(&mut service, request());
    let header = seen.headers().get(AUTHORIZATION);
    assert_eq!(
        header.and_then(|v| v.to_str().ok()).map(str::to_owned),
        variant.expected(),
        "{variant:?} sets the expected header"
    );
    assert!(header.is_none_or(HeaderValue::is_sensitive));
    service
}

/// Sends `request` through `service` (readiness, call, one poll with a no-op waker) and returns
/// the request as the inner service saw it.
#[inline]
pub fn send<S: Layered>(service: &mut S, request: Request<Body>) -> Request<Body> {
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        other => panic!("service not ready: {other:?}"),
    }
    let mut future = pin!(service.call(request));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(response)) => {
            drop(response);
            received()
        }
        Poll::Ready(Err(error)) => panic!("request failed: {error:?}"),
        Poll::Pending => panic!("the response future did not complete at once"),
    }
}

/// One round: send the request, then drop the `Authorization` the layer set so the same request
/// can go again (the layer leaves a request that already has one alone).
#[inline]
pub fn round_trip<S: Layered>(service: &mut S, request: Request<Body>) -> Request<Body> {
    let mut seen = send(service, request);
    seen.headers_mut().remove(AUTHORIZATION);
    seen
}

/// How many stack placements the timing loops take in turn.
pub const PLACEMENTS: usize = 64;

static NEXT_PLACEMENT: AtomicUsize = AtomicUsize::new(0);

/// The next stack placement, in turn.
pub fn next_placement() -> usize {
    NEXT_PLACEMENT.fetch_add(1, Ordering::Relaxed) % PLACEMENTS
}

/// Runs `f` with the stack moved down by `placement` small frames (16 to 64 bytes each).
///
/// Where the timing loop's locals fall against cache lines and 4 KiB pages moves what a
/// request costs by up to ±15 % on this machine (the request is copied several times per
/// round, and split or aliased loads stall), and by different amounts for different variants:
/// one fixed placement can favour either side of a comparison. The timing loops therefore run
/// at each of [`PLACEMENTS`] placements in turn, and medians are taken over all of them.
#[inline(never)]
pub fn at_placement<R>(placement: usize, f: impl FnOnce() -> R) -> R {
    let frame = black_box([0u8; 16]);
    let result = match placement.checked_sub(1) {
        Some(rest) => at_placement(rest, f),
        None => f(),
    };
    // Used after the call, so the frame is not reused by it.
    black_box(frame);
    result
}

/// `iters` requests on this thread through `service`, at the next stack placement; the time
/// they took.
pub fn serial<S: Layered>(service: &mut S, iters: u64) -> Duration {
    at_placement(next_placement(), || {
        // Outside the timing: the first request of a service clone fills its header copy.
        let mut request = round_trip(service, request());
        let start = Instant::now();
        for _ in 0..iters {
            request = round_trip(service, black_box(request));
        }
        start.elapsed()
    })
}

/// What a threaded run took.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    /// From the first thread starting its requests to the last one finishing.
    pub wall: Duration,
    /// The time the threads spent on a CPU meanwhile, summed (Unix only). Time a thread waits
    /// for a CPU taken by another process does not count; time it stalls on a contended cache
    /// line does.
    pub cpu: Option<Duration>,
}

impl Run {
    /// How many threads ran at once on average: `cpu / wall`. With 2 free cores, 2 threads
    /// reach ~2; a busy machine shows here as less.
    pub fn concurrency(&self) -> Option<f64> {
        Some(self.cpu?.as_secs_f64() / self.wall.as_secs_f64())
    }
}

/// This thread's time on a CPU so far (`CLOCK_THREAD_CPUTIME_ID`, exact to the nanosecond).
#[cfg(unix)]
fn cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable `timespec`; the call writes it and nothing else.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    (status == 0).then(|| {
        Duration::new(
            u64::try_from(now.tv_sec).unwrap_or(0),
            u32::try_from(now.tv_nsec).unwrap_or(0),
        )
    })
}

#[cfg(not(unix))]
fn cpu_time() -> Option<Duration> {
    None
}

/// `iters` requests in all, split over `threads` OS threads, each with its own clone of
/// `service`.
pub fn threaded<S: Layered>(service: &S, threads: usize, iters: u64) -> Run {
    let barrier = Barrier::new(threads);
    let placement = next_placement();
    let threads_u64 = threads as u64;
    // All clones first, one after the other, as `(0..n).map(|_| service.clone())` makes them:
    // whatever each clone allocates then sits side by side in memory.
    let clones: Vec<S> = (0..threads).map(|_| service.clone()).collect();
    let spans: Vec<(Instant, Instant, Option<Duration>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads_u64)
            .zip(clones)
            .map(|(t, mut service)| {
                let barrier = &barrier;
                let share = iters / threads_u64 + u64::from(t < iters % threads_u64);
                scope.spawn(move || {
                    at_placement(placement, || {
                        let mut request = round_trip(&mut service, request());
                        let cpu_before = cpu_time();
                        barrier.wait();
                        let start = Instant::now();
                        for _ in 0..share {
                            request = round_trip(&mut service, black_box(request));
                        }
                        let end = Instant::now();
                        let cpu = cpu_time()
                            .zip(cpu_before)
                            .map(|(after, before)| after - before);
                        (start, end, cpu)
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a bench thread finished"))
            .collect()
    });
    let first = spans
        .iter()
        .map(|s| s.0)
        .min()
        .expect("one thread at least");
    let last = spans
        .iter()
        .map(|s| s.1)
        .max()
        .expect("one thread at least");
    Run {
        wall: last - first,
        cpu: spans.iter().map(|s| s.2).sum(),
    }
}

/// `iters` requests driven the way applications drive services: `ready().await?.call(req).await`
/// (run it on a current-thread runtime).
pub async fn serial_async<S: Layered>(mut service: S, iters: u64) -> Duration {
    let mut request = round_trip(&mut service, request());
    let start = Instant::now();
    for _ in 0..iters {
        let ready = service.ready().await.expect("ready");
        let response = ready.call(black_box(request)).await.expect("answered");
        drop(response);
        let mut seen = received();
        seen.headers_mut().remove(AUTHORIZATION);
        request = seen;
    }
    start.elapsed()
}
