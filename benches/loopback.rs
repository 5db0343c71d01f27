//! What the layer costs in a whole request: a hyper-util client sends a JSON POST over a kept-alive
//! HTTP/1.1 connection to a server on loopback that answers `200` at once. The per-request cost
//! of `header_injection` set against everything else a real request does (encoding, a socket
//! write and read, parsing the response), with the same tower-http reference.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench --bench loopback
//! ```
//!
//! Client and server share one current-thread runtime, so a request's time is the CPU time of
//! both ends. Criterion gives each variant's median; then a paired phase sends alternating
//! batches through tower-http and the variant and prints the median of the per-round ratios.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use infobip_auth::source::TokenSource;
use infobip_auth::{BoxError, Credential, Error, InfobipAuthLayer, ReplayPolicy};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tower::util::BoxCloneService;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::auth::AddAuthorizationLayer;

const KEY: &str = "003026bbc133714df1834b8638bb496e-8f4b3d9a-e931-478d-a994-28a725159ab9";
const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.bench-token-of-a-realistic-length.c2lnbmF0dXJl";
const BODY: &[u8] = br#"{"messages":[{"destinations":[{"to":"41793026727"}],"text":"Hi"}]}"#;
/// Rounds of the paired phase, and requests per batch.
const ROUNDS: usize = 60;
const BATCH: u64 = 200;

type Sender = BoxCloneService<Request<Full<Bytes>>, Response<Incoming>, BoxError>;

/// A renewing source whose credential lives an hour: served from the cache once fetched.
#[derive(Debug)]
struct HourToken;

impl TokenSource for HourToken {
    async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
        Ok(Credential::new("Bearer", TOKEN)?.expires_in(Duration::from_secs(3600)))
    }
}

/// A server on loopback that answers every request `200` with an empty body, or `400` if it
/// carries no `Authorization` (so a variant that sent none would show).
async fn serve() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let answer = hyper::service::service_fn(|request: Request<Incoming>| async move {
                let status = if request.headers().contains_key(AUTHORIZATION) {
                    200
                } else {
                    400
                };
                let mut response = Response::new(Empty::<Bytes>::new());
                *response.status_mut() = status.try_into().expect("a status");
                Ok::<_, Infallible>(response)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), answer),
            );
        }
    });
    addr
}

/// The clients compared, by name, each over its own connection pool.
fn clients(runtime: &Runtime, origin: &str) -> Vec<(&'static str, Sender)> {
    let http = || Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let infobip = |layer: InfobipAuthLayer| {
        let layer = layer.allow_origin(origin).expect("a loopback origin");
        runtime
            .block_on(layer.credential())
            .expect("the credential is fetched");
        BoxCloneService::new(ServiceBuilder::new().layer(layer).service(http()))
    };
    vec![
        (
            "tower_http_add_authorization",
            BoxCloneService::new(
                ServiceBuilder::new()
                    .map_err(BoxError::from)
                    .layer(AddAuthorizationLayer::bearer(TOKEN).as_sensitive(true))
                    .service(http()),
            ),
        ),
        (
            "infobip_api_key",
            infobip(InfobipAuthLayer::api_key(KEY).expect("a valid key")),
        ),
        (
            "infobip_cached_no_replay",
            infobip(InfobipAuthLayer::new(HourToken).replay(ReplayPolicy::never())),
        ),
        (
            "infobip_cached_default_replay",
            infobip(InfobipAuthLayer::new(HourToken)),
        ),
    ]
}

/// Sends `count` requests one after the other and reads each response to its end.
async fn send(client: &mut Sender, url: &str, count: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..count {
        let request = Request::post(url)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(BODY)))
            .expect("a valid request");
        let response = client
            .ready()
            .await
            .expect("ready")
            .call(request)
            .await
            .expect("answered");
        assert_eq!(response.status(), 200, "the server saw an Authorization");
        response.into_body().collect().await.expect("a body");
    }
    start.elapsed()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    // `cargo test --benches` and `--list` only check that the target runs.
    let checking = std::env::args().any(|a| a == "--test" || a == "--list");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let addr = runtime.block_on(serve());
    let origin = format!("http://{addr}");
    let url = format!("{origin}/sms/2/text/advanced");
    let mut clients = clients(&runtime, &origin);
    // Every client opens its connection and sends once before anything is measured.
    for (_, client) in &mut clients {
        runtime.block_on(send(client, &url, 1));
    }

    let mut group = criterion.benchmark_group("loopback");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    for (name, client) in &clients {
        group.bench_function(*name, |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                // A clone shares the client's connection pool.
                let (mut client, url) = (client.clone(), &url);
                async move { send(&mut client, url, iters).await }
            });
        });
    }
    group.finish();
    if checking {
        return;
    }

    println!("\nloopback: paired rounds of {BATCH} requests, tower-http and the variant in turn");
    let (reference, variants) = clients.split_first_mut().expect("the reference client");
    let mut reference = reference.1.clone();
    for (name, client) in variants {
        let (mut ratios, mut tower, mut ours) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let (t, o) = runtime.block_on(async {
                if round % 2 == 0 {
                    let t = send(&mut reference, &url, BATCH).await;
                    (t, send(client, &url, BATCH).await)
                } else {
                    let o = send(client, &url, BATCH).await;
                    (send(&mut reference, &url, BATCH).await, o)
                }
            });
            ratios.push(o.as_secs_f64() / t.as_secs_f64());
            tower.push(t.as_secs_f64() * 1e6 / BATCH as f64);
            ours.push(o.as_secs_f64() * 1e6 / BATCH as f64);
        }
        println!(
            "  {name:<30} {:>7.2} µs/request vs tower-http {:>7.2}   ratio {:.3}",
            median(&mut ours),
            median(&mut tower),
            median(&mut ratios)
        );
    }
}
