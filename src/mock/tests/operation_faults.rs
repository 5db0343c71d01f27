//! Faults and latency injected into protected operations, over HTTP/1.1 and HTTP/2.

use std::time::Duration;

use tokio::time::Instant;

use super::*;

/// A client for `server` that speaks HTTP/2 only, or HTTP/1.1.
fn http_over(server: &MockServer, http2: bool) -> Http {
    Http {
        client: Client::builder(TokioExecutor::new())
            .http2_only(http2)
            .build_http(),
        base: server.base_url().to_owned(),
    }
}

fn api_key() -> String {
    format!("App {DEMO_API_KEY}")
}

fn statuses(server: &MockServer) -> Vec<StatusCode> {
    server.received().iter().map(|seen| seen.status).collect()
}

#[tokio::test]
async fn status_and_body_faults_answer_before_the_credential_is_checked() -> TestResult {
    for http2 in [false, true] {
        let server = MockServer::start().await?;
        let http = http_over(&server, http2);
        server.inject_operation(Fault::Status {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(Duration::from_millis(1500)),
        });
        server.inject_operation(Fault::Status {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: None,
        });
        server.inject_operation(Fault::Body {
            status: StatusCode::BAD_GATEWAY,
            content_type: "text/html",
            body: Bytes::from_static(b"<html>bad gateway</html>"),
        });

        let busy = http.send_sms(Some(&api_key())).await?;
        busy.assert_refused(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            "Too many requests",
        );
        assert_eq!(
            busy.headers.get("retry-after").map(|v| v.as_bytes()),
            Some(&b"2"[..])
        );
        // Without a credential: the gateway's 503 all the same, not a 401.
        let down = http.get("/sms/1/inbox/reports", None).await?;
        down.assert_refused(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", "");
        assert!(down.headers.get("retry-after").is_none());
        let html = http.send_sms(Some(&api_key())).await?;
        assert_eq!(html.status, StatusCode::BAD_GATEWAY, "HTTP/2: {http2}");
        assert_eq!(&html.body[..], b"<html>bad gateway</html>");
        assert_eq!(
            http.send_sms(Some(&api_key())).await?.status,
            StatusCode::OK
        );

        let counters = server.counters();
        assert_eq!(counters.resource_requests("App"), 3);
        assert_eq!(counters.resource_requests("none"), 1);
        assert_eq!(counters.unauthorized, 0);
        assert_eq!(
            statuses(&server),
            [
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::BAD_GATEWAY,
                StatusCode::OK,
            ]
        );
    }
    Ok(())
}

#[tokio::test]
async fn operation_faults_reach_operations_only() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let unavailable = || Fault::Status {
        status: StatusCode::SERVICE_UNAVAILABLE,
        retry_after: None,
    };
    server.inject_operation(unavailable());
    let token = http.session_token().await?;
    let auth = format!("IBSSO {token}");
    let delete = http
        .call(Method::DELETE, "/auth/1/session", Some(&auth), None, "")
        .await?;
    assert_eq!(delete.status, StatusCode::OK);
    http.access_token().await?;
    // Still queued for the first operation, which an unknown path is too.
    http.get("/nowhere", Some(&api_key()))
        .await?
        .assert_refused(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", "");
    assert_eq!(
        http.get("/nowhere", Some(&api_key())).await?.status,
        StatusCode::NOT_FOUND
    );
    Ok(())
}

/// An IBSSO request a fault answers does not extend the session: nothing was acted on.
#[tokio::test(start_paused = true)]
async fn a_faulted_request_does_not_extend_the_session() -> TestResult {
    let config = MockConfig::demo().session_idle_timeout(Duration::from_secs(60));
    let server = MockServer::start_with(config).await?;
    let http = Http::new(&server);
    let auth = format!("IBSSO {}", http.session_token().await?);
    tokio::time::sleep(Duration::from_secs(40)).await;
    server.inject_operation(Fault::Status {
        status: StatusCode::SERVICE_UNAVAILABLE,
        retry_after: None,
    });
    let down = http.send_sms(Some(&auth)).await?;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(Duration::from_secs(30)).await;
    http.send_sms(Some(&auth)).await?.assert_unauthorized();
    Ok(())
}

#[tokio::test]
async fn dropped_connections_and_cut_answers_are_counted() -> TestResult {
    for http2 in [false, true] {
        let server = MockServer::start().await?;
        let http = http_over(&server, http2);
        let case = format!("HTTP/2: {http2}");

        server.inject_operation(Fault::CloseConnection);
        assert!(http.send_sms(Some(&api_key())).await.is_err(), "{case}");
        // Counted, but not listed among the answers: none was sent.
        assert_eq!(server.counters().resource_requests("App"), 1, "{case}");
        assert!(server.received().is_empty(), "{case}");

        // Acted on as usual, then lost: listed with the status it would have had.
        server.inject_operation(Fault::AnswerLost);
        assert!(http.send_sms(Some(&api_key())).await.is_err(), "{case}");
        server.inject_operation(Fault::AnswerLost);
        assert!(http.send_sms(None).await.is_err(), "{case}");

        server.inject_operation(Fault::Truncated);
        let request = Request::post(server.url("/sms/2/text/advanced"))
            .header(AUTHORIZATION, api_key())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::from(SMS))?;
        let response = http.client.request(request).await?;
        assert_eq!(response.status(), StatusCode::OK, "{case}");
        assert!(response.into_body().collect().await.is_err(), "{case}");

        assert_eq!(
            http.send_sms(Some(&api_key())).await?.status,
            StatusCode::OK
        );
        let counters = server.counters();
        assert_eq!(counters.resource_requests("App"), 4, "{case}");
        assert_eq!(counters.resource_requests("none"), 1, "{case}");
        assert_eq!(counters.unauthorized, 1, "{case}");
        assert_eq!(
            statuses(&server),
            [
                StatusCode::OK,
                StatusCode::UNAUTHORIZED,
                StatusCode::OK,
                StatusCode::OK,
            ],
            "{case}"
        );
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn delays_and_latency_slow_operations_only() -> TestResult {
    for http2 in [false, true] {
        let server = MockServer::start().await?;
        let http = http_over(&server, http2);
        let case = format!("HTTP/2: {http2}");

        server.inject_operation(Fault::Delay(Duration::from_secs(30)));
        let started = Instant::now();
        assert_eq!(
            http.send_sms(Some(&api_key())).await?.status,
            StatusCode::OK
        );
        assert!(started.elapsed() >= Duration::from_secs(30), "{case}");

        server.set_operation_latency(Duration::from_secs(20));
        let given_up = tokio::time::timeout(
            Duration::from_secs(10),
            http.get("/sms/1/inbox/reports", Some(&api_key())),
        )
        .await;
        assert!(given_up.is_err(), "answered within the latency: {case}");
        let started = Instant::now();
        assert_eq!(
            http.get("/sms/1/inbox/reports", Some(&api_key()))
                .await?
                .status,
            StatusCode::OK
        );
        assert!(started.elapsed() >= Duration::from_secs(20), "{case}");

        // The token endpoints keep their own latency, and theirs does not reach operations.
        let started = Instant::now();
        http.session_token().await?;
        assert!(started.elapsed() < Duration::from_secs(20), "{case}");
        server.set_operation_latency(Duration::ZERO);
        server.set_latency(Duration::from_secs(50));
        let started = Instant::now();
        assert_eq!(
            http.send_sms(Some(&api_key())).await?.status,
            StatusCode::OK
        );
        assert!(started.elapsed() < Duration::from_secs(50), "{case}");
    }
    Ok(())
}
