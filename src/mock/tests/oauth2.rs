//! `POST /auth/1/oauth2/token` (client credentials) and its access tokens.

use std::time::Duration;

use super::*;

const TOKEN: &str = "/auth/1/oauth2/token";

fn demo_form(grant_type: &str) -> [(&'static str, &str); 3] {
    [
        ("client_id", DEMO_CLIENT_ID),
        ("client_secret", DEMO_CLIENT_SECRET),
        ("grant_type", grant_type),
    ]
}

#[tokio::test]
async fn issues_a_bearer_token_that_authenticates() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let answer = http
        .post_form(TOKEN, &demo_form("client_credentials"))
        .await?;
    assert_eq!(answer.status, StatusCode::OK);
    let json = answer.json()?;
    assert_eq!(json["expires_in"], json!(3600));
    assert_eq!(json["token_type"], json!("Bearer"));
    let token = string_field(&answer, "access_token")?;

    let sent = http.send_sms(Some(&format!("Bearer {token}"))).await?;
    assert_eq!(sent.status, StatusCode::OK);
    let counters = server.counters();
    assert_eq!(counters.oauth_token_requests, 1);
    assert_eq!(counters.resource_requests("Bearer"), 1);
    Ok(())
}

#[tokio::test]
async fn expires_in_follows_the_configuration() -> TestResult {
    let config = MockConfig::demo()
        .oauth_token_lifetime(Duration::from_secs(120))
        .expires_in_as_string(true);
    let server = MockServer::start_with(config).await?;
    let http = Http::new(&server);
    let answer = http
        .post_form(TOKEN, &demo_form("client_credentials"))
        .await?;
    assert_eq!(answer.json()?["expires_in"], json!("120"));
    Ok(())
}

#[tokio::test]
async fn refuses_a_wrong_client() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let wrong_secret = [
        ("client_id", DEMO_CLIENT_ID),
        ("client_secret", "wrong"),
        ("grant_type", "client_credentials"),
    ];
    assert_invalid_client(&http.post_form(TOKEN, &wrong_secret).await?);
    let unknown = [
        ("client_id", "nobody"),
        ("client_secret", DEMO_CLIENT_SECRET),
        ("grant_type", "client_credentials"),
    ];
    assert_invalid_client(&http.post_form(TOKEN, &unknown).await?);
    assert_eq!(server.counters().oauth_token_requests, 2);
    Ok(())
}

/// Infobip's `OAuthApiException`: OAuth's `error` beside the usual `requestError`.
#[track_caller]
fn assert_invalid_client(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.json().ok(),
        Some(json!({
            "error": "invalid_client",
            "requestError": {"serviceException": {"messageId": "UNAUTHORIZED", "text": "Invalid login details"}},
        }))
    );
}

#[tokio::test]
async fn is_strict_about_content_type_and_fields() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let bad = StatusCode::BAD_REQUEST;

    let form = serde_urlencoded::to_string(demo_form("client_credentials"))?;
    let json = Some("application/json");
    http.call(Method::POST, TOKEN, None, json, form)
        .await?
        .assert_refused(bad, "BAD_REQUEST", "Content-Type");

    http.post_form(TOKEN, &demo_form("password"))
        .await?
        .assert_refused(bad, "BAD_REQUEST", "grant_type");
    http.post_form(TOKEN, &demo_form("client_credentials")[..2])
        .await?
        .assert_refused(bad, "BAD_REQUEST", "missing field `grant_type`");
    let mut extra = demo_form("client_credentials").to_vec();
    extra.push(("scope", "sms:manage"));
    http.post_form(TOKEN, &extra).await?.assert_refused(
        bad,
        "BAD_REQUEST",
        "unexpected field `scope`",
    );
    let mut twice = demo_form("client_credentials").to_vec();
    twice.push(("client_id", DEMO_CLIENT_ID));
    http.post_form(TOKEN, &twice).await?.assert_refused(
        bad,
        "BAD_REQUEST",
        "duplicate field `client_id`",
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn access_tokens_expire_after_their_lifetime() -> TestResult {
    let config = MockConfig::demo().oauth_token_lifetime(Duration::from_secs(60));
    let server = MockServer::start_with(config).await?;
    let http = Http::new(&server);
    let auth = format!("Bearer {}", http.access_token().await?);
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(http.send_sms(Some(&auth)).await?.status, StatusCode::OK);
    tokio::time::advance(Duration::from_secs(1)).await;
    http.send_sms(Some(&auth)).await?.assert_unauthorized();
    Ok(())
}

/// Infobip's `TokenRequest` schema lists `code` beside the three client-credentials fields
/// (it matters only for `authorization_code`), so a form carrying it is not malformed.
#[tokio::test]
async fn accepts_the_code_field_the_schema_lists() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let mut form = demo_form("client_credentials").to_vec();
    form.push(("code", ""));
    let answer = http.post_form(TOKEN, &form).await?;
    assert_eq!(answer.status, StatusCode::OK);
    Ok(())
}
