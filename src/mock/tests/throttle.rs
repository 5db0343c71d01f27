//! The documented request rate of the session and OAuth endpoints: `429` over it.

use std::time::Duration;

use super::*;

const SECOND: Duration = Duration::from_secs(1);

/// Infobip's `429` body for these endpoints, with no `Retry-After`: Infobip documents none.
#[track_caller]
fn assert_throttled(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        answer.json().ok(),
        Some(
            json!({"requestError":{"serviceException":{"messageId":"TOO_MANY_REQUESTS","text":"Too many requests"}}})
        )
    );
    assert!(answer.headers.get("retry-after").is_none());
}

fn client_credentials() -> [(&'static str, &'static str); 3] {
    [
        ("client_id", DEMO_CLIENT_ID),
        ("client_secret", DEMO_CLIENT_SECRET),
        ("grant_type", "client_credentials"),
    ]
}

#[tokio::test(start_paused = true)]
async fn an_eleventh_login_within_a_second_is_answered_429_before_any_fault() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    for _ in 0..10 {
        assert_eq!(
            http.login(DEMO_USERNAME, DEMO_PASSWORD).await?.status,
            StatusCode::OK
        );
    }
    server.inject(Fault::Status {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        retry_after: None,
    });
    assert_throttled(&http.login(DEMO_USERNAME, DEMO_PASSWORD).await?);
    assert_throttled(&http.login(DEMO_USERNAME, "wrong").await?);

    tokio::time::advance(SECOND).await;
    let answer = http.login(DEMO_USERNAME, DEMO_PASSWORD).await?;
    assert_eq!(
        answer.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the fault waited for a request the rate let through"
    );
    assert_eq!(
        http.login(DEMO_USERNAME, DEMO_PASSWORD).await?.status,
        StatusCode::OK
    );
    let counters = server.counters();
    assert_eq!((counters.session_creates, counters.throttled), (14, 2));
    assert_eq!(counters.session_events.len(), 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_window_slides_and_refused_requests_do_not_fill_it() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    for _ in 0..5 {
        http.session_token().await?;
    }
    tokio::time::advance(SECOND / 2).await;
    for _ in 0..5 {
        http.session_token().await?;
    }
    assert_throttled(&http.login(DEMO_USERNAME, DEMO_PASSWORD).await?);
    tokio::time::advance(SECOND / 2).await;
    // The first five are a second old; the last five and the refused one are not counted.
    for _ in 0..5 {
        http.session_token().await?;
    }
    assert_throttled(&http.login(DEMO_USERNAME, DEMO_PASSWORD).await?);
    assert_eq!(server.counters().throttled, 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn logout_and_oauth_tokens_each_have_their_own_window() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    for _ in 0..10 {
        http.access_token().await?;
    }
    let answer = http
        .post_form("/auth/1/oauth2/token", &client_credentials())
        .await?;
    assert_throttled(&answer);

    let auth = format!("IBSSO {}", http.session_token().await?);
    let logout = || http.call(Method::DELETE, "/auth/1/session", Some(&auth), None, "");
    assert_eq!(logout().await?.status, StatusCode::OK);
    for _ in 0..9 {
        logout().await?.assert_unauthorized(); // already ended, but within the rate
    }
    assert_throttled(&logout().await?);

    let counters = server.counters();
    assert_eq!(counters.throttled, 2);
    assert_eq!(
        (counters.oauth_token_requests, counters.session_deletes),
        (11, 11)
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_rate_is_configurable_and_can_be_switched_off() -> TestResult {
    let config = MockConfig::demo().throttle(2, Duration::from_secs(60));
    let server = MockServer::start_with(config).await?;
    let http = Http::new(&server);
    http.session_token().await?;
    http.session_token().await?;
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_throttled(&http.login(DEMO_USERNAME, DEMO_PASSWORD).await?);
    tokio::time::advance(SECOND).await;
    http.session_token().await?;

    let server = MockServer::start_with(MockConfig::demo().unthrottled()).await?;
    let http = Http::new(&server);
    for _ in 0..50 {
        http.session_token().await?;
        http.access_token().await?;
    }
    assert_eq!(server.counters().throttled, 0);
    Ok(())
}
