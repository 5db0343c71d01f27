//! The server itself: protocols, shutdown, configuration errors, secrets in `Debug`.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn serves_http2_without_tls() -> TestResult {
    let server = MockServer::start().await?;
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let request = Request::get(server.url("/sms/1/inbox/reports"))
        .header(AUTHORIZATION, format!("App {DEMO_API_KEY}"))
        .body(Full::default())?;
    let response = client.request(request).await?;
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    Ok(())
}

/// An answer to `HEAD` has no content (RFC 9110 §9.3.2). hyper leaves that out over HTTP/1.1
/// but sends it over HTTP/2, where the client refuses the stream.
#[tokio::test]
async fn head_is_answered_without_content_over_both_protocols() -> TestResult {
    let server = MockServer::start().await?;
    for http2 in [false, true] {
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .http2_only(http2)
            .build_http();
        for (path, status) in [
            ("/sms/1/inbox/reports", StatusCode::OK),
            ("/sms/2/text/advanced", StatusCode::METHOD_NOT_ALLOWED),
            ("/nowhere", StatusCode::NOT_FOUND),
            ("/auth/1/session", StatusCode::METHOD_NOT_ALLOWED),
        ] {
            let request = Request::head(server.url(path))
                .header(AUTHORIZATION, format!("App {DEMO_API_KEY}"))
                .body(Full::default())?;
            let response = client.request(request).await?;
            assert_eq!(response.status(), status, "{path}");
            let length = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .cloned();
            let body = response.into_body().collect().await?.to_bytes();
            let get = Request::get(server.url(path))
                .header(AUTHORIZATION, format!("App {DEMO_API_KEY}"))
                .body(Full::default())?;
            let content = client.request(get).await?.into_body().collect().await?;
            let expected = http::HeaderValue::from(content.to_bytes().len());
            assert_eq!(
                length,
                Some(expected),
                "{path}: the length of a GET's content"
            );
            assert!(body.is_empty(), "{path} over HTTP/2: {http2}");
        }
    }
    Ok(())
}

/// A `405` names the methods its path has in `Allow` (RFC 9110 §15.5.6), over both
/// protocols: for the token endpoints and for the operations, `HEAD` where `GET` is.
#[tokio::test]
async fn a_405_lists_the_methods_of_its_path_over_both_protocols() -> TestResult {
    let server = MockServer::start().await?;
    for http2 in [false, true] {
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .http2_only(http2)
            .build_http();
        for (method, path, allowed) in [
            (Method::DELETE, "/sms/2/text/advanced", "POST"),
            (Method::HEAD, "/sms/2/text/advanced/", "POST"),
            (Method::POST, "/sms/1/inbox/reports", "GET, HEAD"),
            (Method::GET, "/auth/1/session", "DELETE, POST"),
            (Method::GET, "/auth/1/oauth2/token", "POST"),
            (Method::PUT, "/exchange/1/oauth/authorize", "GET, HEAD"),
            (Method::GET, "/exchange/1/oauth/token/", "POST"),
        ] {
            let request = Request::builder()
                .method(method.clone())
                .uri(server.url(path))
                .header(AUTHORIZATION, format!("App {DEMO_API_KEY}"))
                .body(Full::default())?;
            let response = client.request(request).await?;
            let case = format!("{method} {path} over HTTP/2: {http2}");
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{case}");
            let allow = response.headers().get(http::header::ALLOW);
            assert_eq!(
                allow.map(http::HeaderValue::to_str).transpose()?,
                Some(allowed),
                "{case}"
            );
        }
    }
    Ok(())
}

async fn refuses_connections(base_url: &str) -> bool {
    let Some(address) = base_url.strip_prefix("http://") else {
        return false;
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(address).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn shutdown_and_drop_stop_the_server() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    assert_eq!(http.session_token().await?.len(), 36);
    let base = server.base_url().to_owned();
    server.shutdown().await;
    assert!(refuses_connections(&base).await);

    let server = MockServer::start().await?;
    let base = server.base_url().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert!(!base.ends_with('/'));
    assert_eq!(server.url("/x"), format!("{base}/x"));
    drop(server);
    assert!(refuses_connections(&base).await);
    Ok(())
}

#[tokio::test]
async fn refuses_configurations_that_cannot_work() {
    let orphan = ExchangeApp::new(DEMO_APP_CLIENT_ID, "s", DEMO_REDIRECT_URI, "nobody");
    let bad_configs = [
        MockConfig::new().exchange_app(orphan),
        MockConfig::new().operation(Method::GET, "/x/{id}.json", "", "App"),
        MockConfig::new().operation(Method::GET, "/x", "", "Digest"),
    ];
    for config in bad_configs {
        let refused = MockServer::start_with(config).await.err().map(|e| e.kind());
        assert_eq!(refused, Some(std::io::ErrorKind::InvalidInput));
    }
}

#[test]
fn refuses_to_start_outside_a_runtime() {
    // Polled by hand, with no tokio runtime around: an error, not a panic.
    let outcome = futures_util::FutureExt::now_or_never(MockServer::start());
    assert!(matches!(outcome, Some(Err(_))));
}

#[tokio::test]
async fn debug_never_shows_secrets() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let token = http.session_token().await?;
    let config = MockConfig::demo()
        .api_key_expiring("another-key", "", Duration::from_secs(1))
        .oauth_client("c", "client-secret-2", "");
    let printed = format!(
        "{config:?} {server:?} {:?} {:?} {:?}",
        server.counters(),
        server.received(),
        ExchangeApp::new("id", "app-secret-3", "https://x", "u"),
    );
    for secret in [
        DEMO_PASSWORD,
        DEMO_API_KEY,
        DEMO_CLIENT_SECRET,
        DEMO_APP_CLIENT_SECRET,
        "another-key",
        "client-secret-2",
        "app-secret-3",
        &token,
    ] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
    assert!(printed.contains(DEMO_USERNAME), "{printed}");
    Ok(())
}

#[tokio::test]
async fn oversized_bodies_are_refused() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let huge = vec![b'x'; 100 * 1024];
    let json = Some("application/json");
    http.call(Method::POST, "/auth/1/session", None, json, huge)
        .await?
        .assert_refused(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "bytes");
    Ok(())
}

#[tokio::test]
async fn endless_lifetimes_do_not_overflow() -> TestResult {
    let config = MockConfig::demo()
        .api_key_expiring("forever", "sms:manage", Duration::MAX)
        .session_idle_timeout(Duration::MAX)
        .oauth_token_lifetime(Duration::MAX)
        .exchange_token_lifetime(Duration::MAX)
        .code_lifetime(Duration::MAX);
    let server = MockServer::start_with(config).await?;
    let http = Http::new(&server);
    assert_eq!(
        http.send_sms(Some("App forever")).await?.status,
        StatusCode::OK
    );
    let session = format!("IBSSO {}", http.session_token().await?);
    assert_eq!(http.send_sms(Some(&session)).await?.status, StatusCode::OK);
    let bearer = format!("Bearer {}", http.access_token().await?);
    assert_eq!(http.send_sms(Some(&bearer)).await?.status, StatusCode::OK);

    server.inject(Fault::Status {
        status: StatusCode::TOO_MANY_REQUESTS,
        retry_after: Some(Duration::MAX),
    });
    let busy = http.login(DEMO_USERNAME, DEMO_PASSWORD).await?;
    let retry_after = busy
        .headers
        .get("retry-after")
        .map(|v| v.as_bytes().to_vec());
    assert_eq!(retry_after, Some(u64::MAX.to_string().into_bytes()));
    Ok(())
}
