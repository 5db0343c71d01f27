//! Injected faults, latency, and the in-flight counter.

use std::time::Duration;

use tokio::time::Instant;

use super::*;

fn login_request(http: &Http) -> Result<Request<Full<Bytes>>, BoxError> {
    let body = json!({"username": DEMO_USERNAME, "password": DEMO_PASSWORD}).to_string();
    Ok(Request::post(format!("{}/auth/1/session", http.base))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::from(body))?)
}

#[tokio::test]
async fn status_faults_are_used_in_order_then_answers_are_normal() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    server.inject(Fault::Status {
        status: StatusCode::TOO_MANY_REQUESTS,
        retry_after: Some(Duration::from_millis(1500)),
    });
    server.inject(Fault::Status {
        status: StatusCode::SERVICE_UNAVAILABLE,
        retry_after: None,
    });

    let first = http.login(DEMO_USERNAME, DEMO_PASSWORD).await?;
    first.assert_refused(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_REQUESTS",
        "Too many requests",
    );
    assert_eq!(
        first.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"2"[..])
    );
    let second = http.login(DEMO_USERNAME, DEMO_PASSWORD).await?;
    second.assert_refused(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", "");
    assert!(second.headers.get("retry-after").is_none());
    assert_eq!(
        http.login(DEMO_USERNAME, DEMO_PASSWORD).await?.status,
        StatusCode::OK
    );

    let counters = server.counters();
    assert_eq!(counters.session_creates, 3);
    assert_eq!(counters.session_events.len(), 1);
    Ok(())
}

#[tokio::test]
async fn faults_reach_every_token_endpoint_but_not_resources() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let teapot = || Fault::Status {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        retry_after: None,
    };
    server.inject(teapot());
    let auth = format!("App {DEMO_API_KEY}");
    assert_eq!(http.send_sms(Some(&auth)).await?.status, StatusCode::OK);
    let form = [
        ("client_id", DEMO_CLIENT_ID),
        ("client_secret", DEMO_CLIENT_SECRET),
        ("grant_type", "client_credentials"),
    ];
    let answer = http.post_form("/auth/1/oauth2/token", &form).await?;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);

    server.inject(teapot());
    let refresh = [("grant_type", "refresh_token"), ("code", "whatever")];
    let answer = http.post_form("/exchange/1/oauth/token", &refresh).await?;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(server.counters().token_requests(), 2);
    Ok(())
}

#[tokio::test]
async fn body_faults_answer_exactly_the_given_bytes() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    server.inject(Fault::Body {
        status: StatusCode::OK,
        content_type: "text/html",
        body: Bytes::from_static(b"<html>maintenance</html>"),
    });
    let answer = http.login(DEMO_USERNAME, DEMO_PASSWORD).await?;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.headers.get(CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"text/html"[..])
    );
    assert_eq!(&answer.body[..], b"<html>maintenance</html>");
    Ok(())
}

#[tokio::test]
async fn truncated_bodies_fail_to_read() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    server.inject(Fault::Truncated);
    let response = http.client.request(login_request(&http)?).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let promised: usize = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .ok_or("no Content-Length")?
        .to_str()?
        .parse()?;
    assert!(promised > 0);
    assert!(response.into_body().collect().await.is_err());
    // The server acted before the answer was cut: the session was created, and the next
    // login, on a new connection, is handed it again.
    assert_eq!(
        server.counters().session_events,
        [SessionEvent::Created { session: 1 }]
    );
    assert_eq!(
        http.login(DEMO_USERNAME, DEMO_PASSWORD).await?.status,
        StatusCode::OK
    );
    assert_eq!(server.counters().session_events.len(), 1);
    Ok(())
}

/// A cut `200` to a `DELETE` is a `200` for a session that has ended: a client that believes
/// the status is right.
#[tokio::test]
async fn a_truncated_delete_ends_the_session_then_cuts_the_answer() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let auth = format!("IBSSO {}", http.session_token().await?);
    server.inject_delete(Fault::Truncated);
    let request = Request::delete(format!("{}/auth/1/session", http.base))
        .header(AUTHORIZATION, &auth)
        .body(Full::default())?;
    let response = http.client.request(request).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.into_body().collect().await.is_err());
    assert_eq!(
        server.counters().session_events,
        [
            SessionEvent::Created { session: 1 },
            SessionEvent::Destroyed { session: 1 },
        ]
    );
    http.send_sms(Some(&auth)).await?.assert_unauthorized();

    // Cut or not, an answer keeps its status: a DELETE of an ended session is still a 401.
    server.inject_delete(Fault::Truncated);
    let request = Request::delete(format!("{}/auth/1/session", http.base))
        .header(AUTHORIZATION, &auth)
        .body(Full::default())?;
    let response = http.client.request(request).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.into_body().collect().await.is_err());
    Ok(())
}

#[tokio::test]
async fn close_connection_drops_without_an_answer() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    server.inject(Fault::CloseConnection);
    assert!(http.client.request(login_request(&http)?).await.is_err());
    assert_eq!(
        http.login(DEMO_USERNAME, DEMO_PASSWORD).await?.status,
        StatusCode::OK
    );
    assert_eq!(server.counters().session_creates, 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn delays_then_answers_normally() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    server.inject(Fault::Delay(Duration::from_secs(30)));
    let started = Instant::now();
    assert_eq!(
        http.login(DEMO_USERNAME, DEMO_PASSWORD).await?.status,
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_secs(30));
    Ok(())
}

#[tokio::test]
async fn latency_makes_concurrent_token_requests_overlap() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    server.set_latency(Duration::from_millis(100));
    let started = std::time::Instant::now();
    let (a, b, c) = tokio::join!(
        http.login(DEMO_USERNAME, DEMO_PASSWORD),
        http.access_token(),
        http.login(DEMO_USERNAME, DEMO_PASSWORD),
    );
    assert_eq!(a?.status, StatusCode::OK);
    c?;
    b?;
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(server.counters().max_token_requests_in_flight, 3);

    server.set_latency(Duration::ZERO);
    http.session_token().await?;
    http.session_token().await?;
    assert_eq!(server.counters().max_token_requests_in_flight, 3);
    Ok(())
}

/// A `500` or `429` fault reads like Infobip's documented bodies (`GENERAL_ERROR`, "Too many
/// requests"), not like the HTTP reason phrase.
#[tokio::test]
async fn status_faults_carry_infobips_documented_message_ids() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    for status in [
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        server.inject(Fault::Status {
            status,
            retry_after: None,
        });
    }
    let failed = http.login(DEMO_USERNAME, DEMO_PASSWORD).await?;
    failed.assert_refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        "GENERAL_ERROR",
        "Something went wrong. Please contact support.",
    );
    let busy = http.login(DEMO_USERNAME, DEMO_PASSWORD).await?;
    busy.assert_refused(
        StatusCode::TOO_MANY_REQUESTS,
        "TOO_MANY_REQUESTS",
        "Too many requests",
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn delete_faults_and_latency_reach_session_deletes_only() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let token = http.session_token().await?;
    let auth = format!("IBSSO {token}");
    let delete = || http.call(Method::DELETE, "/auth/1/session", Some(&auth), None, "");
    server.inject_delete(Fault::Status {
        status: StatusCode::SERVICE_UNAVAILABLE,
        retry_after: None,
    });
    server.inject_delete(Fault::CloseConnection);

    // A create takes none of them.
    assert_eq!(http.session_token().await?, token);
    delete()
        .await?
        .assert_refused(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", "");
    assert!(delete().await.is_err(), "the connection was closed");
    http.send_sms(Some(&auth)).await?; // still alive
    assert_eq!(server.counters().session_events.len(), 1);

    server.set_delete_latency(Duration::from_secs(3));
    let start = Instant::now();
    assert_eq!(delete().await?.status, StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_secs(3));
    let counters = server.counters();
    assert_eq!(counters.session_deletes, 3);
    assert_eq!(counters.session_creates, 2);
    assert_eq!(counters.max_token_requests_in_flight, 1);
    assert_eq!(counters.session_events.len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_throttled_delete_is_refused_before_its_fault_is_used() -> TestResult {
    let config = MockConfig::demo().throttle(1, Duration::from_secs(60));
    let server = MockServer::start_with(config).await?;
    let http = Http::new(&server);
    let auth = format!("IBSSO {}", http.session_token().await?);
    let delete = || http.call(Method::DELETE, "/auth/1/session", Some(&auth), None, "");
    server.inject_delete(Fault::Status {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        retry_after: None,
    });
    delete()
        .await?
        .assert_refused(StatusCode::INTERNAL_SERVER_ERROR, "GENERAL_ERROR", "");
    server.inject_delete(Fault::Status {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        retry_after: None,
    });
    delete()
        .await?
        .assert_refused(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS", "");
    assert_eq!(server.counters().throttled, 1);
    Ok(())
}

#[tokio::test]
async fn an_answer_lost_after_acting_leaves_the_change_in_place() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);

    // A login whose answer is lost still created the session; the next login is handed it.
    server.inject(Fault::AnswerLost);
    assert!(http.send(login_request(&http)?).await.is_err(), "answered");
    assert_eq!(server.counters().session_events.len(), 1);
    let token = http.session_token().await?;
    assert_eq!(server.counters().session_events.len(), 1);

    // A DELETE whose answer is lost still ended the session: the next one is refused.
    let auth = format!("IBSSO {token}");
    let delete = || http.call(Method::DELETE, "/auth/1/session", Some(&auth), None, "");
    server.inject_delete(Fault::AnswerLost);
    assert!(delete().await.is_err(), "answered");
    assert_eq!(
        server.counters().session_events.last(),
        Some(&SessionEvent::Destroyed { session: 1 })
    );
    delete().await?.assert_unauthorized();
    http.send_sms(Some(&auth)).await?.assert_unauthorized();
    Ok(())
}
