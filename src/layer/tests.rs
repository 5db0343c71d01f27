use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::{Full, StreamBody};
use tokio_test_shim::*;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_test::mock;

use super::*;
use crate::test_helpers::TestSource;

/// Minimal stand-ins for `tokio-test`'s assertion macros.
mod tokio_test_shim {
    pub(super) use std::task::Poll;

    pub(super) fn poll_once<F: std::future::Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        std::pin::Pin::new(future).poll(&mut cx)
    }
}

const URL: &str = "https://xyz12.api.infobip.com/sms/2/text/advanced";

fn post(body: &'static str) -> Request<Full<Bytes>> {
    Request::post(URL)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_default()
}

fn authorization<B>(request: &Request<B>) -> String {
    request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("<none>")
        .to_owned()
}

fn renewing() -> (TestSource, InfobipAuthLayer) {
    let source = TestSource::expiring(Duration::from_secs(3600));
    let layer = InfobipAuthLayer::new(source.clone());
    (source, layer)
}

fn status(code: StatusCode) -> Response<&'static str> {
    let mut response = Response::new("");
    *response.status_mut() = code;
    response
}

/// An inner service that answers every request `401`, and counts them.
fn refusing() -> (
    Arc<AtomicUsize>,
    impl Service<Request<Full<Bytes>>, Response = Response<&'static str>, Error = Infallible> + Clone,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let service = service_fn(move |_: Request<Full<Bytes>>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(status(StatusCode::UNAUTHORIZED)) }
    });
    (calls, service)
}

#[tokio::test]
async fn sets_the_seed_headers_marked_sensitive() -> Result<(), BoxError> {
    let cases = [
        (
            InfobipAuthLayer::basic("Aladdin", "openSesame")?,
            "Basic QWxhZGRpbjpvcGVuU2VzYW1l",
        ),
        (
            InfobipAuthLayer::basic("test", "123£")?,
            "Basic dGVzdDoxMjPCow==",
        ),
        (
            InfobipAuthLayer::api_key(
                "003026bbc133714df1834b8638bb496e-8f4b3d9a-e931-478d-a994-28a725159ab9",
            )?,
            "App 003026bbc133714df1834b8638bb496e-8f4b3d9a-e931-478d-a994-28a725159ab9",
        ),
    ];
    for (layer, expected) in cases {
        let service = ServiceBuilder::new().layer(layer).service(service_fn(
            |req: Request<Full<Bytes>>| async move {
                let header = req.headers().get(AUTHORIZATION).cloned();
                Ok::<_, Infallible>(Response::new(header))
            },
        ));
        let response = service.oneshot(post("{}")).await?;
        let header = response.into_body().ok_or("no Authorization header")?;
        assert_eq!(header, expected);
        assert!(header.is_sensitive(), "{expected} must be marked sensitive");
    }
    Ok(())
}

#[tokio::test]
async fn forwards_poll_ready_backpressure() {
    let (mut service, mut handle) = mock::spawn_layer::<Request<Full<Bytes>>, Response<&str>, _>(
        InfobipAuthLayer::api_key("key").unwrap_or_else(|_| unreachable!()),
    );
    handle.allow(0);
    assert!(service.poll_ready().is_pending());
    handle.allow(1);
    assert!(service.poll_ready().is_ready());
}

#[tokio::test]
async fn replays_once_after_401_with_a_renewed_credential() -> Result<(), BoxError> {
    let (source, layer) = renewing();
    let (mut service, mut handle) =
        mock::spawn_layer::<Request<Full<Bytes>>, Response<&str>, _>(layer);
    handle.allow(2);
    std::future::poll_fn(|_| service.poll_ready()).await?;
    let response = tokio::spawn(service.call(post("{\"messages\":[]}")));

    let (first, reply) = handle.next_request().await.ok_or("first request")?;
    assert_eq!(authorization(&first), "Bearer token-1");
    reply.send_response(status(StatusCode::UNAUTHORIZED));

    let (second, reply) = handle.next_request().await.ok_or("replayed request")?;
    assert_eq!(authorization(&second), "Bearer token-2");
    let body = http_body_util::BodyExt::collect(second.into_body())
        .await?
        .to_bytes();
    assert_eq!(body, Bytes::from_static(b"{\"messages\":[]}"));
    reply.send_response(status(StatusCode::OK));

    let response = response.await??;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(source.fetches(), 2);
    Ok(())
}

#[tokio::test]
async fn a_second_401_is_returned_not_retried() -> Result<(), BoxError> {
    let (source, layer) = renewing();
    let (mut service, mut handle) =
        mock::spawn_layer::<Request<Full<Bytes>>, Response<&str>, _>(layer);
    handle.allow(5);
    std::future::poll_fn(|_| service.poll_ready()).await?;
    let response = tokio::spawn(service.call(post("{}")));
    for _ in 0..2 {
        let (_, reply) = handle.next_request().await.ok_or("request")?;
        reply.send_response(status(StatusCode::UNAUTHORIZED));
    }
    let response = response.await??;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let error = response
        .extensions()
        .get::<Error>()
        .ok_or("typed error in extensions")?;
    assert!(matches!(error.kind(), ErrorKind::InvalidCredentials(_)));
    assert!(
        poll_once(&mut Box::pin(handle.next_request())).is_pending(),
        "no third request"
    );
    // One renewal per refused request: the replay's refusal renews nothing more.
    tokio::task::yield_now().await;
    assert_eq!(source.fetches(), 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_server_that_refuses_every_credential_gets_one_renewal_per_backoff()
-> Result<(), BoxError> {
    let (source, layer) = renewing();
    let (calls, refuse) = refusing();
    let mut service = ServiceBuilder::new().layer(layer).service(refuse);
    let refused = |result: Result<Response<&str>, BoxError>| match result {
        Ok(response) => response.status() == StatusCode::UNAUTHORIZED,
        Err(err) => {
            Error::find(&*err).is_some_and(|e| matches!(e.kind(), ErrorKind::InvalidCredentials(_)))
        }
    };
    // First round: the first request is refused, renewed and refused again; that refusal of
    // the renewed credential starts a backoff. The next request, sent with it, is refused: it
    // is forgotten, and the rest find no credential to send until the backoff ends.
    // Each later round: the one new credential is refused, and that alone backs off.
    for (round, fetches, calls_so_far) in [(1, 2, 3), (2, 3, 5), (3, 4, 7)] {
        for _ in 0..5 {
            let result = service.ready().await?.call(post("{}")).await;
            assert!(refused(result));
        }
        assert_eq!(source.fetches(), fetches, "round {round}");
        assert_eq!(calls.load(Ordering::SeqCst), calls_so_far, "round {round}");
        // The backoff over (at most a second: each success resets it), the next request
        // renews again.
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    Ok(())
}

/// A streaming body: not `Clone`, so never replayed.
type NoReplayBody =
    StreamBody<futures_util::stream::Empty<Result<http_body::Frame<Bytes>, Infallible>>>;

#[tokio::test]
async fn a_body_that_cannot_be_replayed_gets_its_401_back_and_the_next_request_a_new_credential()
-> Result<(), BoxError> {
    let (source, layer) = renewing();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let inner = service_fn({
        let seen = seen.clone();
        move |req: Request<NoReplayBody>| {
            let seen = seen.clone();
            async move {
                let header = authorization(&req);
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                seen.push(header);
                let code = if seen.len() == 1 {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::OK
                };
                Ok::<_, Infallible>(status(code))
            }
        }
    });
    let mut service = ServiceBuilder::new().layer(layer).service(inner);
    let body = || StreamBody::new(futures_util::stream::empty());
    let first = service
        .ready()
        .await?
        .call(Request::post(URL).body(body())?)
        .await?;
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    assert!(first.extensions().get::<Error>().is_some());
    let second = service
        .ready()
        .await?
        .call(Request::post(URL).body(body())?)
        .await?;
    assert_eq!(second.status(), StatusCode::OK);
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(seen, ["Bearer token-1", "Bearer token-2"]);
    assert_eq!(source.fetches(), 2);
    Ok(())
}

/// Bodies that cannot be replayed, to a server that refuses every credential: each refusal
/// renewed at once would cost one token request per request. The credential that answered a
/// refusal, refused too, backs off instead, as a refused replay does.
#[tokio::test(start_paused = true)]
async fn a_server_that_refuses_every_credential_gets_one_renewal_per_backoff_without_replays()
-> Result<(), BoxError> {
    let (source, layer) = renewing();
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = service_fn({
        let calls = calls.clone();
        move |_: Request<NoReplayBody>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(status(StatusCode::UNAUTHORIZED)) }
        }
    });
    let mut service = ServiceBuilder::new().layer(layer).service(inner);
    let mut send = async || {
        let body = StreamBody::new(futures_util::stream::empty());
        let request = Request::post(URL).body(body)?;
        match service.ready().await?.call(request).await {
            Ok(response) => Ok::<_, BoxError>(response.status() == StatusCode::UNAUTHORIZED),
            Err(err) => Ok(Error::find(&*err)
                .is_some_and(|e| matches!(e.kind(), ErrorKind::InvalidCredentials(_)))),
        }
    };
    for _ in 0..20 {
        assert!(send().await?, "refused");
    }
    // token-1 refused and renewed; token-2 refused at once: kept, backing off; refused again:
    // forgotten; the rest find no credential until the backoff ends.
    assert_eq!(source.fetches(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    tokio::time::advance(Duration::from_secs(1)).await;
    for _ in 0..20 {
        assert!(send().await?, "refused");
    }
    assert_eq!(source.fetches(), 3, "one more per backoff");
    Ok(())
}

/// A credential kept after a refusal (it answered an earlier one) and renewed ahead of time
/// while idle: its successor replaces a refused credential too, so its own refusal backs off
/// instead of renewing at once — one token request per backoff on this path as on the others.
#[tokio::test(start_paused = true)]
async fn a_credential_renewed_ahead_after_a_kept_refusal_backs_off_when_refused()
-> Result<(), BoxError> {
    let source = TestSource::expiring(Duration::from_secs(60));
    let layer = InfobipAuthLayer::new(source.clone());
    let (calls, inner) = refusing();
    let mut service = ServiceBuilder::new().layer(layer.clone()).service(inner);
    // token-1 refused and renewed; the replay with token-2 refused: kept, backing off.
    let response = service.ready().await?.call(post("{}")).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!((source.fetches(), calls.load(Ordering::SeqCst)), (2, 2));
    // Idle past the backoff and into token-2's refresh-ahead window: renewed ahead, token-3.
    tokio::time::sleep(Duration::from_secs(50)).await;
    layer.credential().await?;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(source.fetches(), 3);
    // token-3 refused: it replaced a refused credential, so the cache backs off — no token-4.
    let response = service.ready().await?.call(post("{}")).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        source.fetches(),
        3,
        "renewed at once instead of backing off"
    );
    Ok(())
}

#[tokio::test]
async fn a_401_after_the_layer_is_gone_is_handed_back_marked() -> Result<(), BoxError> {
    let (source, layer) = renewing();
    layer.credential().await?; // cached, so the request goes out at once
    let (inner, mut handle) = mock::pair::<Request<Full<Bytes>>, Response<&'static str>>();
    let mut service = ServiceBuilder::new().layer(layer).service(inner);
    handle.allow(1);
    let future = service.ready().await?.call(post("{}"));
    // The request is in flight; the service, its layer and so the cache go away.
    drop(service);
    let (request, respond) = handle.next_request().await.ok_or("no request")?;
    assert_eq!(authorization(&request), "Bearer token-1");
    respond.send_response(status(StatusCode::UNAUTHORIZED));
    // A future that still reached the cache would renew and wait to replay: a hang, not this.
    let response = tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .map_err(|_| "the 401 was not handed back")??;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(matches!(
        response.extensions().get::<Error>().map(Error::kind),
        Some(ErrorKind::InvalidCredentials(_))
    ));
    assert_eq!(source.fetches(), 1);
    Ok(())
}

#[tokio::test]
async fn a_fixed_key_401_is_final() -> Result<(), BoxError> {
    let (calls, inner) = refusing();
    let service = ServiceBuilder::new()
        .layer(InfobipAuthLayer::api_key("revoked")?)
        .service(inner);
    let response = service.oneshot(post("{}")).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(matches!(
        response.extensions().get::<Error>().map(Error::kind),
        Some(ErrorKind::InvalidCredentials(_))
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    Ok(())
}

/// A request whose header map is full has no room for the credential: it fails (`append`
/// would panic) and is not sent, while one with the caller's own `Authorization` goes as it is.
#[tokio::test]
async fn a_request_with_a_full_header_map_fails_without_a_panic() -> Result<(), BoxError> {
    let full = |own: Option<&'static str>| -> Result<Request<Full<Bytes>>, BoxError> {
        let mut request = post("{}");
        let headers = request.headers_mut();
        if let Some(own) = own {
            headers.insert(AUTHORIZATION, http::HeaderValue::from_static(own));
        }
        for n in 0.. {
            let name = http::HeaderName::from_bytes(format!("x-{n}").as_bytes())?;
            if headers
                .try_insert(name, http::HeaderValue::from_static("v"))
                .is_err()
            {
                break;
            }
        }
        Ok(request)
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = service_fn({
        let calls = calls.clone();
        move |req: Request<Full<Bytes>>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, Infallible>(Response::new(authorization(&req))) }
        }
    });
    // A key on the slow path, then on the hot path; a token waited for.
    let (_, renewing) = renewing();
    for (case, layer, sent_before) in [
        ("slow path", InfobipAuthLayer::api_key("key")?, 0),
        ("hot path", InfobipAuthLayer::api_key("key")?, 1),
        ("waiting", renewing, 0),
    ] {
        let mut service = layer.layer(inner.clone());
        for _ in 0..sent_before {
            service.ready().await?.call(post("{}")).await?;
        }
        let before = calls.load(Ordering::SeqCst);
        let error = service
            .ready()
            .await?
            .call(full(None)?)
            .await
            .err()
            .ok_or(case)?;
        assert!(
            matches!(
                Error::find(&*error).map(Error::kind),
                Some(ErrorKind::Config(_))
            ),
            "{case}: {error}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), before, "{case}: not sent");
        let own = service.ready().await?.call(full(Some("App mine"))?).await?;
        assert_eq!(own.body(), "App mine", "{case}");
    }
    Ok(())
}

/// A response future polled again once it has answered says so with an error: it never polls
/// the inner future again, which (an `async` block's) would panic.
#[tokio::test]
async fn a_future_polled_after_its_answer_answers_an_error() -> Result<(), BoxError> {
    // Answers 401 to `token-1` and to the key "refused", fails "broken", and takes the rest.
    let inner = service_fn(|req: Request<Full<Bytes>>| async move {
        match authorization(&req).as_str() {
            "App broken" => Err(BoxError::from("broken")),
            "Bearer token-1" | "App refused" => Ok(status(StatusCode::UNAUTHORIZED)),
            _ => Ok(status(StatusCode::OK)),
        }
    });
    let (_, renewing) = renewing();
    // Each sent after `warm_up` requests through the same service (the first fills its copy
    // of the header: the next one takes the hot path).
    let cases = [
        (
            "answered",
            InfobipAuthLayer::api_key("key")?,
            1,
            StatusCode::OK,
        ),
        (
            "401 handed back",
            InfobipAuthLayer::api_key("refused")?,
            0,
            StatusCode::UNAUTHORIZED,
        ),
        ("replayed", renewing.clone(), 0, StatusCode::OK),
        ("hot path", renewing, 1, StatusCode::OK),
        (
            "failed",
            InfobipAuthLayer::api_key("broken")?,
            0,
            StatusCode::OK,
        ),
    ];
    for (case, layer, warm_up, expected) in cases {
        let mut service = layer.layer(inner);
        for _ in 0..warm_up {
            service.ready().await?.call(post("{}")).await?;
        }
        let mut future = Box::pin(service.ready().await?.call(post("{}")));
        match (&mut future).await {
            Ok(response) => assert_eq!(response.status(), expected, "{case}"),
            Err(error) => assert_eq!(error.to_string(), "broken", "{case}"),
        }
        assert!(
            matches!(poll_once(&mut future), Poll::Ready(Err(_))),
            "{case}: polled again"
        );
    }
    Ok(())
}

/// An API key or Basic credentials need no fetch, so no tokio runtime: a client driven by
/// another executor (here, one poll by hand) gets the header.
#[test]
fn fixed_credentials_need_no_runtime() -> Result<(), BoxError> {
    let echo = service_fn(|req: Request<Full<Bytes>>| async move {
        Ok::<_, Infallible>(Response::new(authorization(&req)))
    });
    for layer in [
        InfobipAuthLayer::api_key("003026bbc133714df1834b8638bb496e")?,
        InfobipAuthLayer::basic("Aladdin", "openSesame")?,
    ] {
        let mut service = layer.layer(echo);
        let mut future = Box::pin(service.call(post("{}")));
        let Poll::Ready(response) = poll_once(&mut future) else {
            return Err("pending without a runtime".into());
        };
        let seen = response?.into_body();
        assert!(
            seen.starts_with("App ") || seen.starts_with("Basic "),
            "{seen}"
        );
        assert!(tokio::runtime::Handle::try_current().is_err());
    }
    Ok(())
}

#[tokio::test]
async fn the_callers_own_authorization_is_left_alone() -> Result<(), BoxError> {
    let (source, layer) = renewing();
    let inner = service_fn(|req: Request<Full<Bytes>>| async move {
        Ok::<_, Infallible>(Response::new(authorization(&req)))
    });
    let service = ServiceBuilder::new().layer(layer).service(inner);
    let mut request = post("{}");
    request
        .headers_mut()
        .insert(AUTHORIZATION, http::HeaderValue::from_static("App mine"));
    let response = service.oneshot(request).await?;
    assert_eq!(response.body(), "App mine");
    assert_eq!(source.fetches(), 0);
    Ok(())
}

#[tokio::test]
async fn every_value_of_the_callers_own_authorization_is_kept() -> Result<(), BoxError> {
    // Answers with the Authorization values it saw, and the header names in order.
    let inner = service_fn(|req: Request<Full<Bytes>>| async move {
        let seen: Vec<_> = req
            .headers()
            .get_all(AUTHORIZATION)
            .iter()
            .cloned()
            .collect();
        let names: Vec<_> = req.headers().keys().map(|name| name.to_string()).collect();
        Ok::<_, Infallible>(Response::new((seen, names.join(","))))
    });
    let mut service = ServiceBuilder::new()
        .layer(InfobipAuthLayer::api_key("key")?)
        .service(inner);
    // On the slow path, then on the hot path: the first request of ours waits for the key,
    // the second puts it in this service's private copy, and the third finds it there.
    for ours_before in [0, 2] {
        for _ in 0..ours_before {
            let ours = service.ready().await?.call(post("{}")).await?;
            assert_eq!(ours.body().0, ["App key"]);
        }
        let mut request = Request::post(URL).body(Full::new(Bytes::new()))?;
        let headers = request.headers_mut();
        for own in ["App one", "App two"] {
            headers.append(AUTHORIZATION, http::HeaderValue::from_static(own));
        }
        headers.insert("x-a", http::HeaderValue::from_static("a"));
        headers.insert("x-b", http::HeaderValue::from_static("b"));
        let (seen, names) = service.ready().await?.call(request).await?.into_body();
        assert_eq!(seen, ["App one", "App two"]);
        assert_eq!(
            names, "authorization,x-a,x-b",
            "the headers keep their order"
        );
        let ours = service.ready().await?.call(post("{}")).await?;
        assert_eq!(ours.body().0, ["App key"]);
    }
    Ok(())
}

#[tokio::test]
async fn the_callers_own_authorization_is_left_alone_once_a_credential_is_cached()
-> Result<(), BoxError> {
    // Both ways through the hot path: with a replay policy (look, then copy) and without (one
    // probe that finds the caller's header), and for a fixed key. The inner service answers
    // 401 to the caller's header: that 401 is the caller's, so nothing is renewed or replayed.
    for replay in [ReplayPolicy::default(), ReplayPolicy::never()] {
        let source = TestSource::expiring(Duration::from_secs(3600));
        let layers = [
            InfobipAuthLayer::new(source.clone()).replay(replay.clone()),
            InfobipAuthLayer::api_key("key")?.replay(replay.clone()),
        ];
        for layer in layers {
            let calls = Arc::new(AtomicUsize::new(0));
            let inner = service_fn({
                let calls = calls.clone();
                move |req: Request<Full<Bytes>>| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let seen = authorization(&req);
                    let code = if seen == "App mine" {
                        StatusCode::UNAUTHORIZED
                    } else {
                        StatusCode::OK
                    };
                    async move {
                        let mut response = Response::new(seen);
                        *response.status_mut() = code;
                        Ok::<_, Infallible>(response)
                    }
                }
            });
            let mut service = ServiceBuilder::new().layer(layer).service(inner);
            // The first request caches the credential in this service clone.
            let first = service.ready().await?.call(post("{}")).await?;
            assert_ne!(first.body(), "<none>");
            let fetches = source.fetches();
            for url in [URL, "https://attacker.example/sms/2/text/advanced"] {
                let mut request = Request::post(url).body(Full::new(Bytes::new()))?;
                request
                    .headers_mut()
                    .insert(AUTHORIZATION, http::HeaderValue::from_static("App mine"));
                let response = service.ready().await?.call(request).await?;
                assert_eq!(response.body(), "App mine");
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
                assert!(response.extensions().get::<Error>().is_none());
            }
            assert_eq!(calls.load(Ordering::SeqCst), 3, "no replay");
            assert_eq!(source.fetches(), fetches, "no renewal");
            let next = service.ready().await?.call(post("{}")).await?;
            assert_eq!(
                next.body(),
                first.body(),
                "the cached credential is still used"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn other_hosts_get_no_credential() -> Result<(), BoxError> {
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = service_fn({
        let calls = calls.clone();
        move |_: Request<Full<Bytes>>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new("")) }
        }
    });
    let mut service = ServiceBuilder::new()
        .layer(InfobipAuthLayer::api_key("key")?)
        .service(inner);
    for url in [
        "https://attacker.example/sms/2/text/advanced",
        "http://xyz12.api.infobip.com/sms",
    ] {
        let request = Request::post(url).body(Full::new(Bytes::new()))?;
        let error = service
            .ready()
            .await?
            .call(request)
            .await
            .err()
            .ok_or("must be refused")?;
        let error = Error::find(&*error).ok_or("typed error")?;
        assert!(
            matches!(error.kind(), ErrorKind::HostNotAllowed { .. }),
            "{error}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    Ok(())
}

#[tokio::test]
async fn waiting_for_a_credential_calls_a_service_driven_to_readiness() -> Result<(), BoxError> {
    // tower-test's mock panics when called without readiness: the future drives its clone to
    // readiness once the credential has come.
    let (source, layer) = renewing();
    source.delay(Duration::from_millis(20));
    let (mut service, mut handle) =
        mock::spawn_layer::<Request<Full<Bytes>>, Response<&str>, _>(layer);
    handle.allow(3);
    let mut futures = Vec::new();
    for _ in 0..3 {
        std::future::poll_fn(|_| service.poll_ready()).await?;
        futures.push(tokio::spawn(service.call(post("{}"))));
    }
    for _ in 0..3 {
        let (request, reply) = handle.next_request().await.ok_or("request")?;
        assert_eq!(authorization(&request), "Bearer token-1");
        reply.send_response(status(StatusCode::OK));
    }
    for future in futures {
        assert_eq!(future.await??.status(), StatusCode::OK);
    }
    assert_eq!(source.fetches(), 1);
    Ok(())
}

#[test]
fn debug_shows_no_secret() -> Result<(), BoxError> {
    let layer = InfobipAuthLayer::basic("Aladdin", "openSesame")?;
    let service = layer.layer(());
    for text in [format!("{layer:?}"), format!("{service:?}")] {
        assert!(
            !text.contains("openSesame") && !text.contains("QWxh"),
            "{text}"
        );
    }
    let layer = InfobipAuthLayer::api_key("very-secret-key")?;
    assert!(!format!("{layer:?}").contains("very-secret"));
    Ok(())
}

#[test]
fn layer_service_and_future_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<InfobipAuthLayer>();
    send_sync::<
        InfobipAuth<
            tower::util::BoxCloneSyncService<Request<Full<Bytes>>, Response<()>, Infallible>,
        >,
    >();
    send::<
        crate::future::ResponseFuture<
            tower::util::BoxCloneSyncService<Request<Full<Bytes>>, Response<()>, Infallible>,
            Full<Bytes>,
        >,
    >();
}

#[test]
fn the_response_future_is_little_more_than_the_inner_one() {
    // The hot path moves the future around: the rare states are boxed so that it stays the
    // inner future plus a small check.
    type Inner = tower::util::BoxCloneSyncService<Request<Full<Bytes>>, Response<()>, Infallible>;
    type InnerFuture = <Inner as Service<Request<Full<Bytes>>>>::Future;
    let ours = std::mem::size_of::<crate::future::ResponseFuture<Inner, Full<Bytes>>>();
    let inner = std::mem::size_of::<InnerFuture>();
    assert!(
        ours <= inner + 48,
        "{ours} bytes around an inner future of {inner}"
    );
}
