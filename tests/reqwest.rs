//! The reqwest-middleware adapter against the embedded server: the same sources, cache and
//! host binding as the tower layer.

mod support;

use std::sync::Arc;

use infobip_auth::mock::{self, MockConfig, MockServer};
use infobip_auth::{BoxError, Error, ErrorKind, InfobipAuthLayer};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

const SMS: &str = r#"{"messages":[{"destinations":[{"to":"41793026727"}],"text":"Hi"}]}"#;

fn reqwest_client(auth: &InfobipAuthLayer) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(auth.reqwest_middleware())
        .build()
}

/// A client built as the docs advise, with `redirect_policy()`.
fn policed_client(auth: &InfobipAuthLayer) -> Result<ClientWithMiddleware, BoxError> {
    let reqwest = reqwest::Client::builder()
        .redirect(infobip_auth::reqwest::redirect_policy())
        .build()?;
    Ok(ClientBuilder::new(reqwest)
        .with(auth.reqwest_middleware())
        .build())
}

#[tokio::test]
async fn sends_the_api_key_and_refuses_other_hosts() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let auth = InfobipAuthLayer::api_key(mock::DEMO_API_KEY)?.allow_origin(server.base_url())?;
    let client = reqwest_client(&auth);
    let response = client
        .post(server.url("/sms/2/text/advanced"))
        .body(SMS)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(server.counters().resource_requests("App"), 1);

    let error = client
        .get("http://127.0.0.2:9/sms/1/inbox/reports")
        .send()
        .await
        .err()
        .ok_or("another host must be refused")?;
    let ours =
        infobip_auth::reqwest::find_error(&error).ok_or(format!("untyped error: {error}"))?;
    assert!(
        matches!(ours.kind(), ErrorKind::HostNotAllowed { .. }),
        "{ours}"
    );
    Ok(())
}

#[tokio::test]
async fn a_hundred_cold_requests_fetch_one_token() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let client = Arc::new(reqwest_client(&support::oauth(&server)?));
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let client = client.clone();
            let url = server.url("/sms/1/inbox/reports");
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await??, 200);
    }
    assert_eq!(server.counters().oauth_token_requests, 1);
    Ok(())
}

#[tokio::test]
async fn a_revoked_token_is_renewed_and_the_request_replayed() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let auth = support::oauth(&server)?;
    let client = reqwest_client(&auth);
    assert_eq!(
        client
            .post(server.url("/sms/2/text/advanced"))
            .body(SMS)
            .send()
            .await?
            .status(),
        200
    );
    server.revoke_all_tokens();
    let response = client
        .post(server.url("/sms/2/text/advanced"))
        .body(SMS)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let counters = server.counters();
    assert_eq!(
        (counters.oauth_token_requests, counters.unauthorized),
        (2, 1)
    );
    Ok(())
}

#[tokio::test]
async fn a_tower_layer_and_a_reqwest_client_share_one_token() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let auth = support::oauth(&server)?;
    let mut tower_client = tower::ServiceBuilder::new()
        .layer(auth.clone())
        .service(support::client());
    assert_eq!(
        support::send(&mut tower_client, support::reports(&server)).await?,
        200
    );
    let reqwest_client = reqwest_client(&auth);
    assert_eq!(
        reqwest_client
            .get(server.url("/sms/1/inbox/reports"))
            .send()
            .await?
            .status(),
        200
    );
    assert_eq!(server.counters().oauth_token_requests, 1);
    Ok(())
}

#[tokio::test]
async fn a_revoked_api_key_comes_back_as_a_typed_401() -> Result<(), BoxError> {
    let server = MockServer::start_with(MockConfig::demo()).await?;
    server.revoke_api_key(mock::DEMO_API_KEY);
    let auth = InfobipAuthLayer::api_key(mock::DEMO_API_KEY)?.allow_origin(server.base_url())?;
    let response = reqwest_client(&auth)
        .get(server.url("/sms/1/inbox/reports"))
        .send()
        .await?;
    assert_eq!(response.status(), 401);
    let error = response.extensions().get::<Error>().ok_or("typed 401")?;
    assert!(matches!(error.kind(), ErrorKind::InvalidCredentials(_)));
    assert_eq!(
        server.counters().unauthorized,
        1,
        "a fixed key is not retried"
    );
    Ok(())
}

#[tokio::test]
async fn the_layers_replay_policy_holds_for_reqwest_too() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let auth = support::oauth(&server)?.replay(infobip_auth::ReplayPolicy::never());
    let client = reqwest_client(&auth);
    let sms = || client.post(server.url("/sms/2/text/advanced")).body(SMS);
    assert_eq!(sms().send().await?.status(), 200);
    server.revoke_all_tokens();
    // The tower layer built from `auth` hands this 401 back without sending the SMS again.
    let response = sms().send().await?;
    assert_eq!(
        response.status(),
        401,
        "replayed despite ReplayPolicy::never()"
    );
    assert_eq!(server.counters().resource_requests("Bearer"), 2);
    Ok(())
}

#[tokio::test]
async fn a_url_too_long_for_http_uri_is_judged_by_its_origin() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let auth = InfobipAuthLayer::api_key(mock::DEMO_API_KEY)?.allow_origin(server.base_url())?;
    let client = reqwest_client(&auth);
    // Past `http::Uri`'s 64 KiB: reqwest refuses to send it, and says so itself.
    let query = "a".repeat(70 * 1024);
    let error = client
        .get(server.url(&format!("/sms/1/inbox/reports?q={query}")))
        .send()
        .await
        .err()
        .ok_or("reqwest sends no URL `http` cannot hold")?;
    assert!(
        matches!(&error, reqwest_middleware::Error::Reqwest(e) if e.is_builder()),
        "reqwest's own error, not a refused host: {:?}",
        infobip_auth::reqwest::find_error(&error).map(Error::kind)
    );

    let other = format!("http://127.0.0.2:9/x?q={query}");
    let error = client
        .get(other)
        .send()
        .await
        .err()
        .ok_or("another host must be refused, however long its URL")?;
    let ours = infobip_auth::reqwest::find_error(&error).ok_or("untyped error")?;
    assert!(
        matches!(ours.kind(), ErrorKind::HostNotAllowed { .. }),
        "{ours}"
    );
    Ok(())
}

/// A middleware inside the adapter that refuses every request itself and says why, as a
/// middleware reading `401` bodies would.
#[derive(Default)]
struct RefusingGateway {
    refused: std::sync::atomic::AtomicUsize,
}

const GATEWAY_SAYS: &[u8] = br#"{"errorCode":"E401","description":"Refused by the gateway."}"#;

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for RefusingGateway {
    async fn handle(
        &self,
        _request: reqwest::Request,
        _extensions: &mut http::Extensions,
        _next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        self.refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut response = reqwest::Response::from(
            http::Response::builder()
                .status(401)
                .body(GATEWAY_SAYS.to_vec())
                .map_err(reqwest_middleware::Error::middleware)?,
        );
        let said = infobip_auth::ApiError::from_body(http::StatusCode::UNAUTHORIZED, GATEWAY_SAYS);
        response
            .extensions_mut()
            .insert(Error::new(ErrorKind::InvalidCredentials(said)));
        Ok(response)
    }
}

#[tokio::test]
async fn an_error_set_by_an_inner_middleware_is_kept() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let api_key = InfobipAuthLayer::api_key(mock::DEMO_API_KEY)?.allow_origin(server.base_url())?;
    let never = support::oauth(&server)?.replay(infobip_auth::ReplayPolicy::never());
    // A fixed key is not renewed; `never` renews without a replay; the last one replays.
    let replays = support::oauth(&server)?;
    for (case, auth, sent) in [
        ("api key", api_key, 1),
        ("never", never, 1),
        ("replay", replays, 2),
    ] {
        let gateway = Arc::new(RefusingGateway::default());
        let client = ClientBuilder::new(reqwest::Client::new())
            .with(auth.reqwest_middleware())
            .with_arc(gateway.clone())
            .build();
        let response = client
            .post(server.url("/sms/2/text/advanced"))
            .body(SMS)
            .send()
            .await?;
        assert_eq!(response.status(), 401);
        assert_eq!(
            gateway.refused.load(std::sync::atomic::Ordering::Relaxed),
            sent,
            "{case}"
        );
        let error = response.extensions().get::<Error>().ok_or("typed 401")?;
        let ErrorKind::InvalidCredentials(said) = error.kind() else {
            return Err(format!("not a 401's error: {error}").into());
        };
        assert_eq!(
            said.code(),
            Some("E401"),
            "{case}: the inner middleware's error was replaced"
        );
    }
    Ok(())
}

/// Serves `app` on loopback; answers its base URL.
async fn serve(app: axum::Router) -> Result<String, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base_url)
}

/// A loopback server that answers every request with a `307` to `location`; its base URL.
async fn redirecting_to(location: String) -> Result<String, BoxError> {
    serve(axum::Router::new().fallback(move || async move {
        (
            http::StatusCode::TEMPORARY_REDIRECT,
            [(http::header::LOCATION, location)],
        )
    }))
    .await
}

#[tokio::test]
async fn a_401_from_the_host_a_redirect_went_to_keeps_the_credential() -> Result<(), BoxError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = MockServer::start().await?;
    // Another origin, which refuses everything; reqwest follows the redirect there without
    // the credential.
    let storage_hits = Arc::new(AtomicUsize::new(0));
    let storage_saw_authorization = Arc::new(AtomicUsize::new(0));
    let (hits, saw) = (storage_hits.clone(), storage_saw_authorization.clone());
    let storage = serve(
        axum::Router::new().fallback(move |headers: http::HeaderMap| {
            hits.fetch_add(1, Ordering::SeqCst);
            if headers.contains_key(http::header::AUTHORIZATION) {
                saw.fetch_add(1, Ordering::SeqCst);
            }
            async { http::StatusCode::UNAUTHORIZED }
        }),
    )
    .await?;
    // The allowed origin, which sends the upload on to the other one.
    let location = format!("{storage}/upload");
    let front = redirecting_to(location).await?;
    let auth = support::oauth(&server)?.allow_origin(&front)?;
    let before = auth.credential().await?.expose_token().to_owned();

    let response = reqwest_client(&auth)
        .post(format!("{front}/upload"))
        .body(SMS)
        .send()
        .await?;
    assert_eq!(response.status(), 401);
    assert_eq!(response.url().as_str(), format!("{storage}/upload"));
    assert!(
        response.extensions().get::<Error>().is_none(),
        "another host's 401 is not a refusal of the credential"
    );
    assert_eq!(storage_saw_authorization.load(Ordering::SeqCst), 0);
    assert_eq!(
        storage_hits.load(Ordering::SeqCst),
        1,
        "the upload was sent again"
    );
    // Compared, not printed: a failure must not show a token.
    assert!(
        auth.credential().await?.expose_token() == before,
        "the credential was dropped"
    );
    assert_eq!(server.counters().oauth_token_requests, 1);
    Ok(())
}

/// reqwest drops the credential on a redirect to another origin, but 0.13 sends it again on a
/// second redirect within that origin (each hop is rebuilt from the first request's headers).
/// With `redirect_policy()` the client stops at the first redirect that leaves the origin:
/// the other origin is sent nothing, and the caller gets the `3xx`.
#[tokio::test]
async fn a_second_redirect_within_another_origin_carries_no_credential() -> Result<(), BoxError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = MockServer::start().await?;
    let saw_authorization = Arc::new(AtomicUsize::new(0));
    let saw = saw_authorization.clone();
    // Another origin: `/first` sends the request on to `/second`, on the same origin.
    let other = serve(
        axum::Router::new()
            .route(
                "/first",
                axum::routing::post(|| async {
                    (
                        http::StatusCode::TEMPORARY_REDIRECT,
                        [(http::header::LOCATION, "/second")],
                    )
                }),
            )
            .route(
                "/second",
                axum::routing::post(move |headers: http::HeaderMap| {
                    if headers.contains_key(http::header::AUTHORIZATION) {
                        saw.fetch_add(1, Ordering::SeqCst);
                    }
                    async { http::StatusCode::OK }
                }),
            ),
    )
    .await?;
    let location = format!("{other}/first");
    let front = redirecting_to(location).await?;
    let auth = support::oauth(&server)?.allow_origin(&front)?;
    let response = policed_client(&auth)?
        .post(format!("{front}/upload"))
        .body(SMS)
        .send()
        .await?;
    assert_eq!(response.status(), 307, "stopped at the origin's edge");
    assert_eq!(
        saw_authorization.load(Ordering::SeqCst),
        0,
        "the other origin was sent the credential"
    );
    Ok(())
}

/// With `redirect_policy()`, redirects within the origin are still followed, with the
/// credential.
#[tokio::test]
async fn the_redirect_policy_follows_redirects_within_the_origin() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let front = serve(
        axum::Router::new()
            .route(
                "/moved",
                axum::routing::post(|| async {
                    (
                        http::StatusCode::PERMANENT_REDIRECT,
                        [(http::header::LOCATION, "/here")],
                    )
                }),
            )
            .route(
                "/here",
                axum::routing::post(|headers: http::HeaderMap| async move {
                    match headers.get(http::header::AUTHORIZATION) {
                        Some(_) => http::StatusCode::OK,
                        None => http::StatusCode::UNAUTHORIZED,
                    }
                }),
            ),
    )
    .await?;
    let auth = support::oauth(&server)?.allow_origin(&front)?;
    let response = policed_client(&auth)?
        .post(format!("{front}/moved"))
        .body(SMS)
        .send()
        .await?;
    assert_eq!(response.status(), 200, "followed, with the credential");
    Ok(())
}

/// A request whose header map is full has no room for the credential: it fails with a typed
/// error and is not sent (`insert` would panic).
#[tokio::test]
async fn a_request_with_a_full_header_map_fails_without_a_panic() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let auth = InfobipAuthLayer::api_key(mock::DEMO_API_KEY)?.allow_origin(server.base_url())?;
    let mut headers = http::HeaderMap::new();
    for n in 0.. {
        let name = http::HeaderName::from_bytes(format!("x-{n}").as_bytes())?;
        if headers
            .try_insert(name, http::HeaderValue::from_static("v"))
            .is_err()
        {
            break;
        }
    }
    let sent = reqwest_client(&auth)
        .post(server.url("/sms/2/text/advanced"))
        .headers(headers)
        .body(SMS)
        .send()
        .await;
    let error = sent.err().ok_or("sent")?;
    let ours = infobip_auth::reqwest::find_error(&error).ok_or("not the layer's error")?;
    assert!(matches!(ours.kind(), ErrorKind::Config(_)), "{ours:?}");
    assert_eq!(server.counters().resource_requests("App"), 0);
    Ok(())
}
