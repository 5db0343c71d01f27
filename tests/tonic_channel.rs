//! Runs the tonic channel example, so `cargo run --example tonic_channel` cannot silently break.

#[allow(dead_code)]
#[path = "../examples/tonic_channel.rs"]
mod tonic_channel;

use infobip_auth::BoxError;
use infobip_auth::mock::MockServer;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test]
async fn the_example_calls_with_a_token_and_renews_the_refused_one() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let calls = tonic_channel::check_health_across_a_renewal(server.base_url()).await?;
    // The health server answers only calls that carry a bearer token it takes.
    assert_eq!(calls.first, ServingStatus::Serving, "{calls:?}");
    assert_eq!(calls.refused, Code::Unauthenticated, "{calls:?}");
    assert_eq!(calls.after_renewal, ServingStatus::Serving, "{calls:?}");
    // One token for the first two calls, a new one after the refusal.
    assert_eq!(server.counters().oauth_token_requests, 2);
    Ok(())
}
