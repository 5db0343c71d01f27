//! Runs the axum app example, so `cargo run --example axum_app` cannot silently break.

#[allow(dead_code)]
#[path = "../examples/axum_app.rs"]
mod axum_app;
mod support;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use infobip_auth::BoxError;
use infobip_auth::mock::MockServer;
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
