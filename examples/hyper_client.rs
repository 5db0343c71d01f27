//! A hyper-util client with the layer: `cargo run --example hyper_client`.
//!
//! Sends one SMS to the embedded server. For Infobip itself, use an HTTPS connector (for
//! example `hyper-rustls`) and your base URL; nothing else changes.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{DEMO_API_KEY, MockServer};
use infobip_auth::{BoxError, InfobipAuthLayer};
use tower::{ServiceBuilder, ServiceExt as _};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let (status, body) = send_sms(server.base_url()).await?;
    println!("{status}");
    println!("{body}");
    Ok(())
}

/// Sends one SMS to the Infobip API at `base_url`; returns the status and the body.
pub async fn send_sms(base_url: &str) -> Result<(StatusCode, String), BoxError> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    let infobip = ServiceBuilder::new()
        // Outside the layer: the limit covers a token request the layer waits for too.
        .timeout(Duration::from_secs(30))
        .layer(InfobipAuthLayer::api_key(DEMO_API_KEY)?.allow_origin(base_url)?)
        .service(client);

    let request = Request::post(format!("{base_url}/sms/2/text/advanced"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"messages":[{"destinations":[{"to":"41793026727"}],"text":"Hello"}]}"#,
        )))?;
    let response = infobip.oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
