//! Runs the hyper client example, so `cargo run --example hyper_client` cannot silently break.

#[allow(dead_code)]
#[path = "../examples/hyper_client.rs"]
mod hyper_client;

use http::{Method, StatusCode};
use infobip_auth::BoxError;
use infobip_auth::mock::{MockServer, ReceivedRequest};

#[tokio::test]
async fn the_example_sends_an_sms_with_the_api_key() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let (status, body) = hyper_client::send_sms(server.base_url()).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(
        answer["messages"][0]["destination"], "41793026727",
        "{body}"
    );
    assert_eq!(
        answer["messages"][0]["status"]["name"], "PENDING_ACCEPTED",
        "{body}"
    );
    let sent = ReceivedRequest {
        method: Method::POST,
        path: "/sms/2/text/advanced".to_owned(),
        scheme: "App".to_owned(),
        status: StatusCode::OK,
    };
    assert_eq!(server.received(), [sent]);
    Ok(())
}
