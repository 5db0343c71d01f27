//! A herd at the token endpoint: 10,000 concurrent requests through one layered client against
//! the embedded server, (a) on a cold cache and (b) right after the server revoked the token (a
//! storm of `401`s). Both must cause exactly one token request. A warm cache is the baseline:
//! what the herd costs with no token to wait for. Prints token requests and the latency
//! distribution (p50/p99/max); cold or revoked minus warm is what waiting for the token adds.
//!
//! `cargo bench --bench herd`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, MockServer};
use infobip_auth::source::{ClientCredentials, Transport};
use infobip_auth::{BoxError, InfobipAuth, InfobipAuthLayer};
use tower::{ServiceBuilder, ServiceExt as _};

const HERD: usize = 10_000;
/// Added by the server to every token answer, so the token round trip stands out.
const TOKEN_LATENCY: Duration = Duration::from_millis(20);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Outcome {
    latencies: Vec<Duration>,
    token_requests: u64,
    failures: usize,
}

fn client() -> HttpClient {
    // h2c: one multiplexed connection instead of 10,000 sockets.
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

async fn layered(
    server: &MockServer,
    client: &HttpClient,
) -> Result<InfobipAuth<HttpClient>, BoxError> {
    let source = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        .transport(Transport::new(client.clone()))
        .build()?;
    Ok(ServiceBuilder::new()
        .layer(InfobipAuthLayer::new(source))
        .service(client.clone()))
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
    let requests: Vec<_> = (0..HERD)
        .map(|_| {
            let service = service.clone();
            let url = server.url("/sms/1/inbox/reports");
            tokio::spawn(async move {
                let started = Instant::now();
                let ok = send_to(service, &url).await.is_ok();
                (started.elapsed(), ok)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(HERD);
    let mut failures = 0;
    for request in requests {
        let (latency, ok) = request.await?;
        latencies.push(latency);
        failures += usize::from(!ok);
    }
    latencies.sort();
    let token_requests = server.counters().token_requests() - before;
    Ok(Outcome {
        latencies,
        token_requests,
        failures,
    })
}

async fn send(service: InfobipAuth<HttpClient>, server: &MockServer) -> Result<(), BoxError> {
    send_to(service, &server.url("/sms/1/inbox/reports")).await
}

async fn send_to(service: InfobipAuth<HttpClient>, url: &str) -> Result<(), BoxError> {
    let request = Request::get(url).body(Full::default())?;
    let response = service.oneshot(request).await?;
    let ok = response.status().is_success();
    response.into_body().collect().await?;
    if ok { Ok(()) } else { Err("not 2xx".into()) }
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
    println!(
        "\nherd summary ({HERD} concurrent requests, token endpoint latency {TOKEN_LATENCY:?}):"
    );
    for (name, outcome) in summary {
        let l = &outcome.latencies;
        println!(
            "  {name:<14} token requests {}  failures {}  p50 {:?}  p99 {:?}  max {:?}",
            outcome.token_requests,
            outcome.failures,
            percentile(l, 0.50),
            percentile(l, 0.99),
            l.last().copied().unwrap_or_default(),
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
