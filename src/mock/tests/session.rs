//! `POST` and `DELETE /auth/1/session`, and session lifetimes.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn creates_a_session_whose_token_authenticates() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let token = http.session_token().await?;
    assert_eq!(token.len(), 36, "{token}");
    assert_eq!(token.matches('-').count(), 4, "{token}");

    let sent = http.send_sms(Some(&format!("IBSSO {token}"))).await?;
    assert_eq!(sent.status, StatusCode::OK);
    let counters = server.counters();
    assert_eq!(counters.session_creates, 1);
    assert_eq!(counters.resource_requests("IBSSO"), 1);
    assert_eq!(
        counters.session_events,
        [SessionEvent::Created { session: 1 }]
    );
    Ok(())
}

#[tokio::test]
async fn accepts_the_unsafe_flag() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let body = json!({"username": DEMO_USERNAME, "password": DEMO_PASSWORD, "unsafe": true});
    let answer = http.post_json("/auth/1/session", &body).await?;
    assert_eq!(answer.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn refuses_wrong_credentials() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    http.login(DEMO_USERNAME, "wrong")
        .await?
        .assert_unauthorized();
    http.login("nobody", DEMO_PASSWORD)
        .await?
        .assert_unauthorized();
    assert_eq!(server.counters().session_creates, 2);
    assert!(server.counters().session_events.is_empty());
    Ok(())
}

#[tokio::test]
async fn refuses_other_content_types() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let body = json!({"username": DEMO_USERNAME, "password": DEMO_PASSWORD}).to_string();
    let path = "/auth/1/session";
    http.call(Method::POST, path, None, Some(FORM), body.clone())
        .await?
        .assert_refused(StatusCode::BAD_REQUEST, "BAD_REQUEST", "Content-Type");
    http.call(Method::POST, path, None, None, body)
        .await?
        .assert_refused(StatusCode::BAD_REQUEST, "BAD_REQUEST", "application/json");
    Ok(())
}

#[tokio::test]
async fn refuses_missing_unexpected_and_malformed_fields() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let path = "/auth/1/session";
    let cases = [
        (json!({"username": DEMO_USERNAME}), "password"),
        (json!({"password": DEMO_PASSWORD}), "username"),
        (
            json!({"username": DEMO_USERNAME, "password": DEMO_PASSWORD, "remember": true}),
            "remember",
        ),
        (
            json!({"username": DEMO_USERNAME, "password": DEMO_PASSWORD, "unsafe": "yes"}),
            "boolean",
        ),
        (json!([DEMO_USERNAME, DEMO_PASSWORD]), "JSON object"),
    ];
    for (body, why) in cases {
        http.post_json(path, &body).await?.assert_refused(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            why,
        );
    }
    let json = Some("application/json");
    http.call(Method::POST, path, None, json, "{\"username\": ")
        .await?
        .assert_refused(StatusCode::BAD_REQUEST, "BAD_REQUEST", "EOF");
    Ok(())
}

#[tokio::test]
async fn delete_ends_the_session() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let token = http.session_token().await?;
    let auth = format!("IBSSO {token}");

    let ended = http
        .call(Method::DELETE, "/auth/1/session", Some(&auth), None, "")
        .await?;
    assert_eq!(ended.status, StatusCode::OK);
    assert!(ended.body.is_empty());
    http.send_sms(Some(&auth)).await?.assert_unauthorized();
    http.call(Method::DELETE, "/auth/1/session", Some(&auth), None, "")
        .await?
        .assert_unauthorized();

    let next = http.session_token().await?;
    assert_ne!(next, token);
    let counters = server.counters();
    assert_eq!(counters.session_deletes, 2);
    assert_eq!(
        counters.session_events,
        [
            SessionEvent::Created { session: 1 },
            SessionEvent::Destroyed { session: 1 },
            SessionEvent::Created { session: 2 },
        ]
    );
    Ok(())
}

#[tokio::test]
async fn delete_refuses_unknown_tokens_and_other_schemes() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    for auth in [
        None,
        Some("IBSSO 00000000-0000-4000-8000-000000000000"),
        Some(&*format!("App {DEMO_API_KEY}")),
        Some("IBSSO"),
    ] {
        http.call(Method::DELETE, "/auth/1/session", auth, None, "")
            .await?
            .assert_unauthorized();
    }
    Ok(())
}

#[tokio::test]
async fn a_live_session_is_returned_again_until_destroyed() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let first = http.session_token().await?;
    let again = http.session_token().await?;
    assert_eq!(first, again);
    let counters = server.counters();
    assert_eq!(counters.session_creates, 2);
    assert_eq!(counters.session_events.len(), 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn sessions_expire_after_the_idle_timeout_and_use_extends_them() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let auth = format!("IBSSO {}", http.session_token().await?);
    let minute = Duration::from_secs(60);

    tokio::time::advance(59 * minute).await;
    assert_eq!(http.send_sms(Some(&auth)).await?.status, StatusCode::OK);
    tokio::time::advance(59 * minute).await;
    assert_eq!(http.send_sms(Some(&auth)).await?.status, StatusCode::OK);
    tokio::time::advance(60 * minute).await;
    http.send_sms(Some(&auth)).await?.assert_unauthorized();

    // An expired session is gone: logging in again starts a new one.
    let next = format!("IBSSO {}", http.session_token().await?);
    assert_ne!(next, auth);
    assert_eq!(server.counters().session_events.len(), 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_idle_timeout_is_configurable() -> TestResult {
    let config = MockConfig::demo().session_idle_timeout(Duration::from_secs(300));
    let server = MockServer::start_with(config).await?;
    let http = Http::new(&server);
    let auth = format!("IBSSO {}", http.session_token().await?);
    tokio::time::advance(Duration::from_secs(299)).await;
    assert_eq!(http.send_sms(Some(&auth)).await?.status, StatusCode::OK);
    tokio::time::advance(Duration::from_secs(300)).await;
    http.send_sms(Some(&auth)).await?.assert_unauthorized();
    Ok(())
}
