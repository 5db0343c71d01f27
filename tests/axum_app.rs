//! Runs the axum app example, so `cargo run --example axum_app` cannot silently break.

#[allow(dead_code)]
#[path = "../examples/axum_app.rs"]
mod axum_app;
mod support;

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use infobip_auth::BoxError;
use infobip_auth::mock::{DEMO_API_KEY, MockServer};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

#[tokio::test]
async fn the_handler_sends_the_sms_with_the_api_key() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let app = axum_app::app(server.base_url())?;
    let response = app
        .oneshot(Request::post("/notify/41793026727").body(Body::empty())?)
        .await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&body)?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    support::assert_one_sms_sent_with_the_api_key(&server, &answer);
    Ok(())
}

#[tokio::test]
async fn infobip_refusing_the_apps_key_is_a_502_not_the_callers_401() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    server.revoke_api_key(DEMO_API_KEY);
    let app = axum_app::app(server.base_url())?;
    let response = app
        .oneshot(Request::post("/notify/41793026727").body(Body::empty())?)
        .await?;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(server.counters().unauthorized, 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_infobip_that_never_answers_is_a_504() -> Result<(), BoxError> {
    let hung = TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", hung.local_addr()?);
    // Takes connections, reads nothing and never answers.
    let _holding = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            open.push(socket);
        }
    });
    let app = axum_app::app(&base_url)?;
    let request = Request::post("/notify/41793026727").body(Body::empty())?;
    let response = tokio::time::timeout(Duration::from_secs(3600), app.oneshot(request))
        .await
        .map_err(|_| "the handler was still waiting for Infobip after an hour")??;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    Ok(())
}
