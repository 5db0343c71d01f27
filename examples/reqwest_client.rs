//! A reqwest client with the same sources and cache:
//! `cargo run --example reqwest_client --features reqwest`.
//!
//! reqwest takes no tower layers; `InfobipAuthLayer::reqwest_middleware` adapts the layer for
//! `reqwest-middleware`. The example sends an SMS to the embedded server with OAuth 2.0 client
//! credentials, has the server revoke the token, and sends again: the middleware renews the
//! token after the `401` and replays the request.

use std::time::Duration;

use infobip_auth::mock::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, MockServer};
use infobip_auth::source::{ClientCredentials, Transport};
use infobip_auth::{BoxError, InfobipAuthLayer};
use reqwest::StatusCode;
use reqwest_middleware::ClientBuilder;

const SMS: &str = r#"{"messages":[{"destinations":[{"to":"41793026727"}],"text":"Hello"}]}"#;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let (first, second) = send_across_a_revocation(&server).await?;
    println!("first SMS → {first}");
    let counters = server.counters();
    println!(
        "after revocation → {second} ({} token requests, {} × 401 at the server)",
        counters.oauth_token_requests, counters.unauthorized
    );
    Ok(())
}

/// Sends an SMS, has `server` revoke every token, and sends another; returns both statuses.
pub async fn send_across_a_revocation(
    server: &MockServer,
) -> Result<(StatusCode, StatusCode), BoxError> {
    // Token requests go through reqwest too (redirects off): no other HTTP client needed.
    let source = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        .transport(Transport::reqwest(reqwest::Client::builder())?)
        .build()?;
    let auth = InfobipAuthLayer::new(source);
    // Redirects stop where they would leave the origin the credential is for.
    let reqwest = reqwest::Client::builder()
        .redirect(infobip_auth::reqwest::redirect_policy())
        .timeout(Duration::from_secs(30))
        .build()?;
    let client = ClientBuilder::new(reqwest)
        .with(auth.reqwest_middleware())
        .build();

    let first = client
        .post(server.url("/sms/2/text/advanced"))
        .body(SMS)
        .send()
        .await?;
    server.revoke_all_tokens();
    let second = client
        .post(server.url("/sms/2/text/advanced"))
        .body(SMS)
        .send()
        .await?;
    Ok((first.status(), second.status()))
}
