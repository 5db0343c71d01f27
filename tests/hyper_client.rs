//! Runs the hyper client example, so `cargo run --example hyper_client` cannot silently break.

#[allow(dead_code)]
#[path = "../examples/hyper_client.rs"]
mod hyper_client;
mod support;

use http::StatusCode;
use infobip_auth::BoxError;
use infobip_auth::mock::MockServer;

#[tokio::test]
async fn the_example_sends_an_sms_with_the_api_key() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let (status, body) = hyper_client::send_sms(server.base_url()).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    support::assert_one_sms_sent_with_the_api_key(&server, &serde_json::from_str(&body)?);
    Ok(())
}
