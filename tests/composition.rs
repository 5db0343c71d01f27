//! The layer as applications stack it: under and over tower's and tower-http's layers, boxed,
//! buffered, behind a concurrency limit, in an axum app's state and over a tonic channel.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use infobip_auth::future::ResponseFuture;
use infobip_auth::mock::{self, MockServer};
use infobip_auth::scope::ScopeCheck;
use infobip_auth::source::{ClientCredentials, TokenSource, Transport};
use infobip_auth::{
    BoxError, Credential, Error, ErrorKind, GrpcRenewal, InfobipAuth, InfobipAuthLayer,
};
use tower::buffer::Buffer;
use tower::limit::ConcurrencyLimit;
use tower::util::{BoxCloneService, BoxCloneSyncService};
use tower::{Layer as _, Service, ServiceBuilder, ServiceExt as _};

use support::{HttpClient, reports, sms};

/// A source that numbers its tokens (`Bearer token-1`, `token-2`, …), each fetch taking
/// `delay_ms`; good for any HTTPS host under `infobip.com`.
#[derive(Debug, Default)]
struct Numbered {
    fetches: AtomicUsize,
    delay_ms: AtomicU64,
}

impl TokenSource for Numbered {
    async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))).await;
        Ok(Credential::new("Bearer", &format!("token-{n}"))?.expires_in(Duration::from_secs(3600)))
    }
}

/// A shared [`Numbered`] source and the layer over it.
fn numbered() -> (Arc<Numbered>, InfobipAuthLayer) {
    #[derive(Debug)]
    struct Shared(Arc<Numbered>);
    impl TokenSource for Shared {
        async fn fetch(&self, previous: Option<&Credential>) -> Result<Credential, Error> {
            self.0.fetch(previous).await
        }
    }
    let source = Arc::new(Numbered::default());
    (source.clone(), InfobipAuthLayer::new(Shared(source)))
}

const INFOBIP: &str = "https://xyz12.api.infobip.com/sms/2/text/advanced";

fn post() -> Request<Full<Bytes>> {
    Request::post(INFOBIP)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap_or_default()
}

fn answer(status: StatusCode) -> Response<&'static str> {
    let mut response = Response::new("");
    *response.status_mut() = status;
    response
}

fn authorization<B>(request: &Request<B>) -> &str {
    request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("<none>")
}

/// The OAuth layer of the embedded server, its token requests sent through `transport`.
fn oauth(server: &MockServer, transport: Transport) -> Result<InfobipAuthLayer, BoxError> {
    let source = ClientCredentials::builder(
        server.base_url(),
        mock::DEMO_CLIENT_ID,
        mock::DEMO_CLIENT_SECRET,
    )
    .transport(transport)
    .build()?;
    Ok(InfobipAuthLayer::new(source))
}

/// Sends `request` through any layered client; answers the status, the body read whole.
async fn status_of<S, B>(service: S, request: Request<Full<Bytes>>) -> Result<StatusCode, BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let response = service.oneshot(request).await.map_err(Into::into)?;
    let status = response.status();
    response.into_body().collect().await.map_err(Into::into)?;
    Ok(status)
}

// ---- Types users name and the bounds of the layers they stack ----

fn send<T: Send>() {}
fn send_sync_static<T: Send + Sync + 'static>() {}
fn send_static<T: Send + 'static>() {}
fn clone_send_static<T: Clone + Send + 'static>() {}
/// What a tonic client (`HealthClient::new`) takes.
fn grpc_service<T: tonic::client::GrpcService<tonic::body::Body>>() {}

type Boxed = BoxCloneService<Request<Full<Bytes>>, Response<Incoming>, BoxError>;

#[test]
fn layered_services_and_their_futures_are_send_and_static_where_the_inner_ones_are() {
    // hyper-util's client: the layered service is Send + Sync, its future Send.
    send_sync_static::<InfobipAuth<HttpClient>>();
    send_static::<ResponseFuture<HttpClient, Full<Bytes>>>();
    // With the scope check inside.
    send_sync_static::<InfobipAuth<ScopeCheck<HttpClient>>>();
    send_static::<ResponseFuture<ScopeCheck<HttpClient>, Full<Bytes>>>();
    // A tonic channel and its body, which is not `Clone`.
    send_sync_static::<InfobipAuth<tonic::transport::Channel>>();
    send_static::<ResponseFuture<tonic::transport::Channel, tonic::body::Body>>();
    // With the renewal after a gRPC `UNAUTHENTICATED` inside.
    send_sync_static::<InfobipAuth<GrpcRenewal<tonic::transport::Channel>>>();
    send_static::<ResponseFuture<GrpcRenewal<tonic::transport::Channel>, tonic::body::Body>>();
    clone_send_static::<InfobipAuth<GrpcRenewal<tonic::transport::Channel>>>();
    grpc_service::<InfobipAuth<GrpcRenewal<tonic::transport::Channel>>>();
    // A boxed client is `!Sync`: the layer over it is still Send, and so is its future.
    send::<InfobipAuth<Boxed>>();
    send_static::<ResponseFuture<Boxed, Full<Bytes>>>();
    // Bodies that cannot be copied: a proxy's incoming body, an axum app's.
    type Forwarding = hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Incoming,
    >;
    send_sync_static::<InfobipAuth<Forwarding>>();
    send_static::<ResponseFuture<Forwarding, Incoming>>();
    type AxumClient = hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        axum::body::Body,
    >;
    send_static::<ResponseFuture<ScopeCheck<AxumClient>, axum::body::Body>>();
    // A concurrency limit underneath.
    send_sync_static::<InfobipAuth<ConcurrencyLimit<HttpClient>>>();
    send_static::<ResponseFuture<ConcurrencyLimit<HttpClient>, Full<Bytes>>>();
}

/// The stacks users write compile: boxed, buffered, limited, timed, traced, retried.
#[allow(dead_code)]
fn stacks_compile(layer: InfobipAuthLayer, client: HttpClient) {
    let _boxed: Boxed = BoxCloneService::new(layer.layer(client.clone()));
    let _sync: BoxCloneSyncService<Request<Full<Bytes>>, Response<Incoming>, BoxError> =
        BoxCloneSyncService::new(layer.layer(client.clone()));
    let _buffered = Buffer::new(layer.layer(client.clone()), 64);
    let _over_boxed = layer.layer(BoxCloneService::new(client.clone().map_err(BoxError::from)));
    let _full = ServiceBuilder::new()
        .buffer(64)
        .concurrency_limit(16)
        .timeout(Duration::from_secs(10))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(layer.clone())
        .layer(layer.scope_check())
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .concurrency_limit(4)
        .service(client);
}

// ---- Backpressure: a concurrency limit and a buffer underneath ----

#[tokio::test(start_paused = true)]
async fn a_token_request_through_the_same_limited_client_is_not_starved() -> Result<(), BoxError> {
    // One client, limited to one request at a time, carries both the token requests and the
    // API requests. A request waiting for its credential must not hold the client's only slot,
    // which the token request needs.
    let server = MockServer::start().await?;
    let limited = ConcurrencyLimit::new(support::client(), 1);
    let layer = oauth(&server, Transport::new(limited.clone()))?;
    let service = layer.layer(limited);
    assert_eq!(status_of(service.clone(), reports(&server)).await?, 200);

    server.revoke_all_tokens();
    assert_eq!(status_of(service.clone(), sms(&server)).await?, 200);
    let counters = server.counters();
    assert_eq!(
        (counters.oauth_token_requests, counters.unauthorized),
        (2, 1)
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn under_a_limit_of_one_many_callers_and_their_replays_all_get_through()
-> Result<(), BoxError> {
    // The replay after a 401 needs the limit's slot again: the first response's slot must be
    // free by then, with many callers queued for it.
    let server = MockServer::start().await?;
    let layer = oauth(&server, Transport::new(support::client()))?;
    let service = layer.layer(ConcurrencyLimit::new(support::client(), 1));
    for round in 0..2 {
        let tasks: Vec<_> = (0..20)
            .map(|_| tokio::spawn(status_of(service.clone(), sms(&server))))
            .collect();
        for task in tasks {
            assert_eq!(task.await??, 200, "round {round}");
        }
        server.revoke_all_tokens();
    }
    let counters = server.counters();
    assert_eq!(counters.oauth_token_requests, 2, "one per round");
    assert_eq!(
        counters.resource_requests("Bearer"),
        40 + counters.unauthorized
    );
    assert!(counters.unauthorized >= 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_buffer_over_the_layer_serves_many_tasks_with_one_token() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let layer = oauth(&server, Transport::new(support::client()))?;
    let client = ServiceBuilder::new()
        .buffer(8)
        .layer(layer)
        .concurrency_limit(2)
        .service(support::client());
    for _ in 0..2 {
        let tasks: Vec<_> = (0..30)
            .map(|_| tokio::spawn(status_of(client.clone(), sms(&server))))
            .collect();
        for task in tasks {
            assert_eq!(task.await??, 200);
        }
        server.revoke_all_tokens();
    }
    assert_eq!(server.counters().oauth_token_requests, 2);
    Ok(())
}

// ---- Dropped requests ----

#[tokio::test(start_paused = true)]
async fn a_request_dropped_in_any_state_leaves_the_cache_and_the_inner_service_sound()
-> Result<(), BoxError> {
    let (source, layer) = numbered();
    let (inner, mut handle) = tower_test::mock::pair::<Request<Full<Bytes>>, Response<&str>>();
    // A limit of one underneath: a slot kept by a dropped request would stop everything.
    let service = layer.layer(ConcurrencyLimit::new(inner, 1));
    let abandon = |service: InfobipAuth<_>| async move {
        let sent = tokio::time::timeout(Duration::from_millis(10), service.oneshot(post()));
        assert!(sent.await.is_err(), "answered");
    };

    // Waiting for the first credential.
    source.delay_ms.store(100, Ordering::SeqCst);
    abandon(service.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answered = tokio::spawn(service.clone().oneshot(post()));
    let (request, reply) = handle.next_request().await.ok_or("not sent")?;
    assert_eq!(authorization(&request), "Bearer token-1");
    reply.send_response(answer(StatusCode::OK));
    assert_eq!(answered.await??.status(), StatusCode::OK);
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);

    // Waiting for the renewal after a 401.
    let refused = tokio::spawn(abandon(service.clone()));
    let (_, reply) = handle.next_request().await.ok_or("not sent")?;
    reply.send_response(answer(StatusCode::UNAUTHORIZED));
    refused.await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);

    // Waiting for the inner service to be ready for the replay. (A minute on: a refusal right
    // after the last one would back off instead of renewing.)
    tokio::time::sleep(Duration::from_secs(61)).await;
    source.delay_ms.store(0, Ordering::SeqCst);
    let refused = tokio::spawn(service.clone().oneshot(post()));
    let (request, reply) = handle.next_request().await.ok_or("not sent")?;
    assert_eq!(authorization(&request), "Bearer token-2");
    handle.allow(0);
    reply.send_response(answer(StatusCode::UNAUTHORIZED));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(
        !refused.is_finished(),
        "the replay went out without readiness"
    );
    refused.abort();
    assert!(refused.await.is_err_and(|err| err.is_cancelled()));
    handle.allow(1);

    // The service and the cache go on: one request with the token renewed after the last 401.
    let answered = tokio::spawn(service.clone().oneshot(post()));
    let (request, reply) = handle.next_request().await.ok_or("not sent")?;
    assert_eq!(authorization(&request), "Bearer token-3");
    reply.send_response(answer(StatusCode::OK));
    assert_eq!(answered.await??.status(), StatusCode::OK);
    assert_eq!(source.fetches.load(Ordering::SeqCst), 3);
    Ok(())
}

// ---- Errors through other layers ----

/// An application's own error type, wrapping the client's.
#[derive(Debug)]
struct AppError(BoxError);

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sending to Infobip failed: {}", self.0)
    }
}

impl std::error::Error for AppError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

fn is_host_not_allowed(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        Error::find(error).map(Error::kind),
        Some(ErrorKind::HostNotAllowed { .. })
    )
}

#[tokio::test]
async fn error_find_sees_the_layers_error_through_the_layers_users_stack() -> Result<(), BoxError> {
    let layer = InfobipAuthLayer::api_key("003026bbc133714df1834b8638bb496e")?;
    let client = || layer.layer(support::client());
    let elsewhere = || {
        Request::get("https://example.com/sms/1/inbox/reports")
            .body(Full::default())
            .unwrap_or_default()
    };

    let err = Buffer::new(client(), 4).oneshot(elsewhere()).await.err();
    assert!(err.is_some_and(|err| is_host_not_allowed(&*err)), "buffer");
    let err = ServiceBuilder::new()
        .timeout(Duration::from_secs(5))
        .concurrency_limit(2)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .service(client())
        .oneshot(elsewhere())
        .await
        .err();
    assert!(err.is_some_and(|err| is_host_not_allowed(&*err)), "timeout");
    let err = BoxCloneService::new(client())
        .oneshot(elsewhere())
        .await
        .err();
    assert!(err.is_some_and(|err| is_host_not_allowed(&*err)), "boxed");
    let err = client().map_err(AppError).oneshot(elsewhere()).await.err();
    assert!(
        err.is_some_and(|err| is_host_not_allowed(&err)),
        "app error"
    );
    let err = client()
        .map_err(std::io::Error::other)
        .oneshot(elsewhere())
        .await
        .err();
    assert!(
        err.is_some_and(|err| is_host_not_allowed(&err)),
        "io::Error"
    );
    // tonic turns a channel's error into a `Status`, keeping it as the source.
    let status = client()
        .oneshot(elsewhere())
        .await
        .err()
        .map(tonic::Status::from_error);
    assert!(
        status.is_some_and(|status| is_host_not_allowed(&status)),
        "tonic"
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_timeout_over_the_layer_cuts_a_slow_token_request_not_the_next_request()
-> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let layer = oauth(&server, Transport::new(support::client()))?;
    let client = ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .layer(layer)
        .service(support::client());
    server.set_latency(Duration::from_secs(2));
    let err = status_of(client.clone(), reports(&server)).await.err();
    assert!(
        err.is_some_and(|err| err.is::<tower::timeout::error::Elapsed>()),
        "not cut"
    );
    // The token request went on in its own task; the next request finds its token.
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.set_latency(Duration::ZERO);
    assert_eq!(status_of(client, reports(&server)).await?, 200);
    assert_eq!(server.counters().oauth_token_requests, 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_retry_over_the_layer_retries_what_the_layer_calls_transient() -> Result<(), BoxError> {
    /// Retries a transient failure of the layer's own, after a pause, up to three times.
    #[derive(Clone)]
    struct Transient(usize);
    impl<B: Clone, Res> tower::retry::Policy<Request<B>, Res, BoxError> for Transient {
        type Future = tokio::time::Sleep;
        fn retry(
            &mut self,
            _: &mut Request<B>,
            result: &mut Result<Res, BoxError>,
        ) -> Option<Self::Future> {
            let error = result.as_ref().err()?;
            let transient = Error::find(&**error).is_some_and(Error::is_transient);
            (transient && self.0 > 0).then(|| {
                self.0 -= 1;
                tokio::time::sleep(Duration::from_secs(5))
            })
        }
        fn clone_request(&mut self, request: &Request<B>) -> Option<Request<B>> {
            let mut clone = Request::new(request.body().clone());
            *clone.method_mut() = request.method().clone();
            *clone.uri_mut() = request.uri().clone();
            *clone.headers_mut() = request.headers().clone();
            Some(clone)
        }
    }
    let server = MockServer::start().await?;
    let layer = oauth(&server, Transport::new(support::client()))?;
    let client = ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(Transient(3)))
        .layer(layer)
        .service(support::client());
    server.inject(mock::Fault::Status {
        status: StatusCode::SERVICE_UNAVAILABLE,
        retry_after: None,
    });
    assert_eq!(status_of(client, sms(&server)).await?, 200);
    let counters = server.counters();
    assert_eq!(counters.oauth_token_requests, 2, "one refused, one served");
    assert_eq!(counters.resource_requests("Bearer"), 1);
    Ok(())
}

#[tokio::test]
async fn trace_layers_over_and_under_the_layer() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let layer = InfobipAuthLayer::api_key(mock::DEMO_API_KEY)?.allow_origin(server.base_url())?;
    let client = ServiceBuilder::new()
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(layer)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .service(support::client());
    assert_eq!(status_of(client, sms(&server)).await?, 200);
    assert_eq!(server.counters().resource_requests("App"), 1);
    Ok(())
}

// ---- An axum app: one layered client in state, handlers running at once ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_app_shares_one_token_among_concurrent_handlers() -> Result<(), BoxError> {
    use axum::extract::State;

    #[derive(Clone)]
    struct App {
        infobip: InfobipAuth<HttpClient>,
        sms: Request<Full<Bytes>>,
    }

    async fn notify(State(app): State<App>) -> StatusCode {
        let mut request = Request::new(app.sms.body().clone());
        *request.method_mut() = app.sms.method().clone();
        *request.uri_mut() = app.sms.uri().clone();
        *request.headers_mut() = app.sms.headers().clone();
        match status_of(app.infobip, request).await {
            Ok(status) => StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
            Err(_) => StatusCode::BAD_GATEWAY,
        }
    }

    let server = MockServer::start().await?;
    let client = support::client();
    let app = App {
        infobip: oauth(&server, Transport::new(client.clone()))?.layer(client.clone()),
        sms: sms(&server),
    };
    let router = axum::Router::new()
        .route("/notify", axum::routing::post(notify))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/notify", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });

    for round in 0..2 {
        let calls: Vec<_> = (0..40)
            .map(|_| {
                let request = Request::post(&url).body(Full::default());
                tokio::spawn(status_of(client.clone(), request.unwrap_or_default()))
            })
            .collect();
        for call in calls {
            assert_eq!(call.await??, 200, "round {round}");
        }
        server.revoke_all_tokens();
    }
    assert_eq!(server.counters().oauth_token_requests, 2, "one per round");
    Ok(())
}

// ---- A tonic channel: HTTP/2, bodies that cannot be copied ----

/// An HTTP/2 server standing in for a gRPC service behind a gateway that answers a stale
/// credential with HTTP `401`: it accepts `Bearer token-<accepted>` only, answers a health
/// check `SERVING` to it, and counts the requests that reached it.
async fn grpc_behind_a_gateway(
    accepted: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
) -> Result<String, BoxError> {
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let answer = move |request: Request<Incoming>| {
        let valid = format!("Bearer token-{}", accepted.load(Ordering::SeqCst));
        let authorized = authorization(&request) == valid;
        requests.fetch_add(1, Ordering::SeqCst);
        async move {
            // The whole request body is read, as a server would before answering.
            request.into_body().collect().await?;
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            // A `HealthCheckResponse { status: SERVING }` in gRPC's length-prefixed framing.
            let frames = [
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 2, 8, 1]))),
                Ok(Frame::trailers(trailers)),
            ];
            let mut response = Response::new(StreamBody::new(tokio_stream::iter(frames)));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/grpc"),
            );
            if !authorized {
                *response.status_mut() = StatusCode::UNAUTHORIZED;
            }
            Ok::<_, hyper::Error>(response)
        }
    };
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(answer.clone());
            let connection =
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::spawn(connection);
        }
    });
    Ok(url)
}

#[tokio::test]
async fn a_tonic_channel_renews_after_a_401_without_replaying_a_streaming_body()
-> Result<(), BoxError> {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

    let accepted = Arc::new(AtomicUsize::new(1));
    let requests = Arc::new(AtomicUsize::new(0));
    let url = grpc_behind_a_gateway(accepted.clone(), requests.clone()).await?;
    let channel = tonic::transport::Channel::from_shared(url.clone())?
        .connect()
        .await?;
    let (source, layer) = numbered();
    let channel = layer
        .allow_origin(&url)?
        .relative_uris_go_to(&url)?
        .layer(channel);
    let check = HealthCheckRequest {
        service: String::new(),
    };

    let mut health = HealthClient::new(channel.clone());
    let reply = health.check(check.clone()).await?;
    assert_eq!(reply.into_inner().status(), ServingStatus::Serving);

    // The gateway stops accepting token-1. A request whose body is a stream is not replayed:
    // its 401 comes back, and the credential it was refused with is renewed.
    accepted.store(2, Ordering::SeqCst);
    let chunks =
        [0u8, 1, 2].map(|n| Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from(vec![n]))));
    let streaming =
        tonic::body::Body::new(http_body_util::StreamBody::new(tokio_stream::iter(chunks)));
    let request = Request::post("/grpc.health.v1.Health/Check")
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(streaming)?;
    let response = channel.clone().oneshot(request).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.extensions().get::<Error>().is_some(),
        "401 not marked"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 2, "a stream was replayed");

    let reply = health.check(check).await?;
    assert_eq!(reply.into_inner().status(), ServingStatus::Serving);
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    Ok(())
}

#[tokio::test]
async fn a_boxed_client_that_is_not_sync_carries_token_requests_too() -> Result<(), BoxError> {
    // Applications erase their client's type with `BoxCloneService`, which is `!Sync`; the same
    // client then serves the layer and the token requests.
    let server = MockServer::start().await?;
    let client: Boxed = BoxCloneService::new(support::client().map_err(BoxError::from));
    let service = oauth(&server, Transport::new(client.clone()))?.layer(client);
    assert_eq!(status_of(service, sms(&server)).await?, 200);
    assert_eq!(server.counters().oauth_token_requests, 1);
    Ok(())
}
