//! A herd at the token endpoint: 10,000 concurrent requests through one layered client against
//! the embedded server, (a) on a cold cache and (b) right after the server revoked the token (a
//! storm of `401`s). Both must cause exactly one token request. A warm cache is the baseline:
//! what the herd costs with no token to wait for.
//!
//! Prints token requests and two distributions (p50/p99/max): *sent*, from the release of the
//! herd to the moment each request (for a revoked token, its replay) reaches the HTTP client
//! under the layer — cold or revoked minus warm is what waiting for the credential adds, to
//! compare with one token round trip — and *round trip*, from each call to the end of its
//! response body, which on 2 cores is mostly the time it takes to push 10,000 requests through
//! one loopback connection.
//!
//! `cargo bench --bench herd`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, MockServer};
use infobip_auth::source::{ClientCredentials, Transport};
use infobip_auth::{BoxError, InfobipAuth, InfobipAuthLayer};
use tower::{Service, ServiceBuilder, ServiceExt as _, service_fn};

const HERD: usize = 10_000;
/// Added by the server to every token answer, so the token round trip stands out.
const TOKEN_LATENCY: Duration = Duration::from_millis(20);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Outcome {
    /// From the release of the herd until each request reached the HTTP client, sorted.
    sent: Vec<Duration>,
    /// From the call to the end of the response body, sorted.
    round_trips: Vec<Duration>,
    token_requests: u64,
    failures: usize,
}

/// When a request reached the HTTP client under the layer, in its response's extensions.
#[derive(Clone, Copy)]
struct SentAt(Instant);

fn client() -> HttpClient {
    // h2c: one multiplexed connection instead of 10,000 sockets.
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// The client under the layer: stamps each response with the moment its request was sent.
fn stamped(
    client: HttpClient,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Incoming>,
    Error = hyper_util::client::legacy::Error,
    Future: Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |request: Request<Full<Bytes>>| {
        let sent = Instant::now();
        let response = client.request(request);
        async move {
            let mut response = response.await?;
            response.extensions_mut().insert(SentAt(sent));
            Ok(response)
        }
    })
}

type Layered = InfobipAuth<
    tower::util::BoxCloneSyncService<
        Request<Full<Bytes>>,
        Response<Incoming>,
        hyper_util::client::legacy::Error,
    >,
>;

async fn layered(server: &MockServer, client: &HttpClient) -> Result<Layered, BoxError> {
    let source = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        .transport(Transport::new(client.clone()))
        .build()?;
    Ok(ServiceBuilder::new()
        .layer(InfobipAuthLayer::new(source))
        .service(tower::util::BoxCloneSyncService::new(stamped(
            client.clone(),
        ))))
}

/// How the herd finds the cache.
#[derive(Clone, Copy)]
enum Start {
    /// Holding a valid token: the baseline, no token request expected.
    Warm,
    /// Empty: every request waits for the first token.
    Cold,
    /// Holding a token the server has just revoked: every request gets a `401`.
    Revoked,
}

/// Sends the herd at once.
async fn herd(start: Start) -> Result<Outcome, BoxError> {
    let server = MockServer::start().await?;
    server.set_latency(TOKEN_LATENCY);
    let client = client();
    let service = layered(&server, &client).await?;
    if matches!(start, Start::Warm | Start::Revoked) {
        send(service.clone(), &server).await?;
    }
    if matches!(start, Start::Revoked) {
        server.revoke_all_tokens();
    }
    let before = server.counters().token_requests();
    let released = Instant::now();
    let requests: Vec<_> = (0..HERD)
        .map(|_| {
            let service = service.clone();
            let url = server.url("/sms/1/inbox/reports");
            tokio::spawn(async move {
                let started = Instant::now();
                let sent = send_to(service, &url).await;
                let sent = sent.ok().map(|sent| sent - released);
                (sent, started.elapsed())
            })
        })
        .collect();
    let mut sent = Vec::with_capacity(HERD);
    let mut round_trips = Vec::with_capacity(HERD);
    let mut failures = 0;
    for request in requests {
        let (at, round_trip) = request.await?;
        match at {
            Some(at) => sent.push(at),
            None => failures += 1,
        }
        round_trips.push(round_trip);
    }
    sent.sort();
    round_trips.sort();
    let token_requests = server.counters().token_requests() - before;
    Ok(Outcome {
        sent,
        round_trips,
        token_requests,
        failures,
    })
}

async fn send(service: Layered, server: &MockServer) -> Result<Instant, BoxError> {
    send_to(service, &server.url("/sms/1/inbox/reports")).await
}

/// Sends one request; when it (or its replay) was sent, if it succeeded.
async fn send_to(service: Layered, url: &str) -> Result<Instant, BoxError> {
    let request = Request::get(url).body(Full::default())?;
    let response = service.oneshot(request).await?;
    let ok = response.status().is_success();
    let sent = response.extensions().get::<SentAt>().map(|at| at.0);
    response.into_body().collect().await?;
    match sent {
        Some(sent) if ok => Ok(sent),
        _ => Err("not 2xx".into()),
    }
}

/// One token request on its own, as the layer makes it: the yardstick for what waiting adds.
async fn token_round_trip() -> Result<Duration, BoxError> {
    let server = MockServer::start().await?;
    server.set_latency(TOKEN_LATENCY);
    let source = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        .transport(Transport::new(client()))
        .build()?;
    let layer = InfobipAuthLayer::new(source);
    let started = Instant::now();
    layer.credential().await?;
    Ok(started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("herd");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    let mut summary = Vec::new();
    let starts = [
        ("warm_cache", Start::Warm),
        ("cold_cache", Start::Cold),
        ("revoked_token", Start::Revoked),
    ];
    for (name, start) in starts {
        let last = Arc::new(Mutex::new(None));
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter_custom(|iterations| {
                let last = last.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let started = Instant::now();
                        let outcome = herd(start).await.expect("herd");
                        total += started.elapsed();
                        *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
                    }
                    total
                }
            });
        });
        if let Some(outcome) = last.lock().unwrap_or_else(|p| p.into_inner()).take() {
            summary.push((name, outcome));
        }
    }
    group.finish();
    let token = runtime.block_on(token_round_trip()).expect("a token");
    println!(
        "\nherd summary ({HERD} concurrent requests; token endpoint latency {TOKEN_LATENCY:?}, \
         one token round trip {token:.1?}):"
    );
    let show = |sorted: &[Duration]| {
        format!(
            "p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}",
            percentile(sorted, 0.50),
            percentile(sorted, 0.99),
            sorted.last().copied().unwrap_or_default(),
        )
    };
    for (name, outcome) in summary {
        println!(
            "  {name:<14} token requests {}  failures {}\n    sent        {}\n    round trip  {}",
            outcome.token_requests,
            outcome.failures,
            show(&outcome.sent),
            show(&outcome.round_trips),
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
