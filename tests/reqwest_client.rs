//! Runs the reqwest client example, so `cargo run --example reqwest_client --features reqwest`
//! cannot silently break.

#[allow(dead_code)]
#[path = "../examples/reqwest_client.rs"]
mod reqwest_client;

use infobip_auth::BoxError;
use infobip_auth::mock::MockServer;
use reqwest::StatusCode;

#[tokio::test]
async fn the_middleware_sends_the_token_and_renews_it_after_a_401() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let (first, second) = reqwest_client::send_across_a_revocation(&server).await?;
    assert_eq!((first, second), (StatusCode::OK, StatusCode::OK));
    let counters = server.counters();
    // The first token, then a new one after the revoked token's 401, whose request was replayed.
    assert_eq!(counters.oauth_token_requests, 2, "{counters:?}");
    assert_eq!(counters.unauthorized, 1, "{counters:?}");
    assert_eq!(counters.resource_requests("Bearer"), 3, "{counters:?}");
    assert_eq!(
        counters.resource_requests_by_scheme.len(),
        1,
        "{counters:?}"
    );
    Ok(())
}
