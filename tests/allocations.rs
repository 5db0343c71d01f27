//! Heap allocations per request, counted by a global allocator (DESIGN invariant 1: a request
//! with a valid cached credential allocates nothing), and per catalogue lookup (none, whatever
//! form the path takes).
//!
//! Counting is per thread: only allocations made on the thread that calls the service and
//! polls its future are counted, so the test harness and other tests running in parallel do not
//! disturb the counts. Work the layer hands to another thread would still be seen: spawning a
//! task allocates it on the spawning thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use infobip_auth::source::TokenSource;
use infobip_auth::{Catalog, Credential, Error, InfobipAuthLayer, ReplayPolicy};
use tower::{Service, ServiceBuilder, service_fn};

/// Forwards to the system allocator and counts, on threads that asked for it, the calls that
/// hand out memory.
struct Counting;

thread_local! {
    // `const` thread-locals of `Cell`s need no allocation and no destructor, so the allocator
    // may touch them from inside an allocation.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: while a thread is torn down its thread-locals may be gone; nothing to count.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counting around it neither allocates nor touches the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`, returning what it returned and how many allocations it made on this thread.
fn allocations_in<R>(f: impl FnOnce() -> R) -> (R, u64) {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    let result = f();
    COUNTING.with(|on| on.set(false));
    (result, ALLOCATIONS.with(Cell::get))
}

const URL: &str = "https://xyz12.api.infobip.com/sms/2/text/advanced";
const REQUESTS: usize = 1_000;

/// A renewing source whose credential lives an hour: cached once fetched.
#[derive(Debug)]
struct HourToken;

impl TokenSource for HourToken {
    async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
        Ok(Credential::new("Bearer", "token")?.expires_in(Duration::from_secs(3600)))
    }
}

/// A body the default replay policy does not copy (it is not one of the ordinary types).
struct Streaming;

/// The inner service: answers at once, `200` if the layer set `Authorization`, else `500`.
fn inner<B>() -> impl Service<
    Request<B>,
    Response = Response<()>,
    Error = Infallible,
    Future = Ready<Result<Response<()>, Infallible>>,
> + Clone {
    service_fn(|request: Request<B>| {
        let mut response = Response::new(());
        if !request.headers().contains_key(AUTHORIZATION) {
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        ready(Ok(response))
    })
}

/// A request whose header map has room, so inserting `Authorization` does not grow it.
fn request<B>(body: B) -> Request<B> {
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut request = Request::new(body);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = URL.parse().expect("a valid URL");
    *request.headers_mut() = headers;
    request
}

/// Readiness, call and polling to completion, with a no-op waker: the futures finish at once.
fn send<S, B>(service: &mut S, request: Request<B>) -> StatusCode
where
    S: Service<Request<B>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    let mut future = pin!(service.call(request));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(response)) => response.status(),
        other => panic!("the request did not complete at once: {other:?}"),
    }
}

/// Allocations per request through `layer` (its credential fetched and cached first) for
/// requests made by `make`.
fn allocations_per_request<B: 'static>(
    layer: InfobipAuthLayer,
    make: impl Fn() -> Request<B>,
) -> f64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime
        .block_on(layer.credential())
        .expect("the credential is fetched");
    let mut service = ServiceBuilder::new().layer(layer).service(inner::<B>());
    // The first request fills this service clone's private copy of the header.
    assert_eq!(send(&mut service, make()), StatusCode::OK);

    let requests: Vec<Request<B>> = (0..REQUESTS).map(|_| make()).collect();
    let mut statuses = Vec::with_capacity(REQUESTS);
    let ((), allocations) = allocations_in(|| {
        for request in requests {
            statuses.push(send(&mut service, request));
        }
    });
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "every request reached the inner service with Authorization set"
    );
    allocations as f64 / REQUESTS as f64
}

fn json() -> Request<Full<Bytes>> {
    request(Full::new(Bytes::from_static(br#"{"messages":[]}"#)))
}

#[test]
fn the_counter_sees_allocations_on_this_thread() {
    let (vec, one) = allocations_in(|| black_box(Vec::<u8>::with_capacity(1)));
    assert_eq!(one, 1);
    drop(vec);
    let (_, none) = allocations_in(|| black_box(1 + 1));
    assert_eq!(none, 0);
    // Not counted: another thread's allocation.
    let ((), elsewhere) = allocations_in(|| {
        std::thread::scope(|s| {
            s.spawn(|| drop(black_box(Vec::<u8>::with_capacity(1))));
        });
    });
    let ((), spawn_only) = allocations_in(|| std::thread::scope(|s| drop(s.spawn(|| ()))));
    assert_eq!(
        elsewhere, spawn_only,
        "the other thread's allocation is not ours"
    );
}

#[test]
fn an_api_key_request_allocates_nothing() {
    let layer = InfobipAuthLayer::api_key("003026bbc133714df1834b8638bb496e").expect("a key");
    assert_eq!(allocations_per_request(layer, json), 0.0);
}

#[test]
fn a_cached_renewing_credential_allocates_nothing_without_replay() {
    let layer = InfobipAuthLayer::new(HourToken).replay(ReplayPolicy::never());
    assert_eq!(allocations_per_request(layer, json), 0.0);
}

#[test]
fn a_cached_renewing_credential_allocates_nothing_for_a_body_it_cannot_replay() {
    // The default policy, and a body type it does not copy.
    let layer = InfobipAuthLayer::new(HourToken);
    assert_eq!(allocations_per_request(layer, || request(Streaming)), 0.0);
}

/// What the default replay policy costs per request with a `Full<Bytes>` body and one header
/// value (a JSON call's `Content-Type`): the box that holds the copy of the request kept for
/// one replay after a `401`, its header in place, with a clone of the inner service (boxed so
/// that requests without a copy carry a small future).
const REPLAY_ALLOCATIONS: f64 = 1.0;

#[test]
fn the_default_replay_of_a_full_body_costs_one_allocation() {
    let per_request = allocations_per_request(InfobipAuthLayer::new(HourToken), json);
    println!("default replay policy, Full<Bytes> body: {per_request} allocations per request");
    assert_eq!(per_request, REPLAY_ALLOCATIONS);
}

/// More than one header value is copied to one list.
#[test]
fn a_second_header_value_costs_one_list_on_replay() {
    let with_two = || {
        let mut request = json();
        let accept = HeaderValue::from_static("application/json");
        request.headers_mut().insert(http::header::ACCEPT, accept);
        request
    };
    let per_request = allocations_per_request(InfobipAuthLayer::new(HourToken), with_two);
    println!("default replay policy, two header values: {per_request} allocations per request");
    assert_eq!(per_request, REPLAY_ALLOCATIONS + 1.0);
}

/// A header value parsed from a string at run time (as `Request::builder().header(name, "…")`
/// makes it) holds bytes that are copied cheaply only from their first copy on: that first copy
/// allocates a shared owner for them (a property of `bytes::Bytes`). Each such value, or name
/// outside the standard ones, therefore costs one allocation more on a replayable request.
#[test]
fn a_header_value_made_at_run_time_costs_one_allocation_more_on_replay() {
    let with_runtime_value = || {
        let mut request = json();
        let value = HeaderValue::from_str("infobip-auth-test").expect("a valid value");
        request
            .headers_mut()
            .insert(http::header::USER_AGENT, value);
        request
    };
    let with_static_value = || {
        let mut request = json();
        let value = HeaderValue::from_static("infobip-auth-test");
        request
            .headers_mut()
            .insert(http::header::USER_AGENT, value);
        request
    };
    let per_request = allocations_per_request(InfobipAuthLayer::new(HourToken), with_runtime_value);
    println!(
        "default replay policy, one run-time header value: {per_request} allocations per request"
    );
    let with_static = allocations_per_request(InfobipAuthLayer::new(HourToken), with_static_value);
    assert_eq!(per_request, with_static + 1.0);
    let without_replay = InfobipAuthLayer::new(HourToken).replay(ReplayPolicy::never());
    assert_eq!(
        allocations_per_request(without_replay, with_runtime_value),
        0.0
    );
}

/// `template` with every parameter filled in.
fn filled(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "x1"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `path` with the first character of its last segment percent-encoded.
fn encoded(path: &str) -> String {
    let at = path.rfind('/').map_or(0, |slash| slash + 1);
    match path[at..].chars().next() {
        Some(c) => format!("{}%{:02X}{}", &path[..at], u32::from(c), &path[at + 1..]),
        None => path.to_owned(),
    }
}

#[test]
fn every_operation_is_found_in_any_form_without_allocating() {
    let catalog = Catalog::infobip();
    let mut requests = Vec::new();
    for op in catalog.operations() {
        let path = filled(op.template);
        for form in [
            path.clone(),
            format!("{path}/"),
            encoded(&path),
            format!("{}/?q=%41", encoded(&path)),
        ] {
            requests.push((op.method.clone(), form, Some(op.template)));
        }
        requests.push((op.method.clone(), path.to_uppercase(), None));
    }
    // Longer than a lookup decodes on its stack: matched as written, found by nothing.
    requests.push((
        Method::GET,
        format!("/sms/1/logs/{}", "%41".repeat(2000)),
        None,
    ));

    let (found, allocations) = allocations_in(|| {
        requests
            .iter()
            .filter(|(method, path, template)| {
                catalog.lookup(method, path).map(|op| op.template) == *template
            })
            .count()
    });
    assert_eq!(allocations, 0);
    assert_eq!(found, requests.len());
}
