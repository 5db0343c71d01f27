//! Runs the Exchange app example's round, so `cargo run --example exchange_app` cannot
//! silently break.

#[allow(dead_code)]
#[path = "../examples/exchange_app.rs"]
mod exchange_app;

use infobip_auth::BoxError;

#[tokio::test]
async fn the_example_connects_an_account_and_sends_an_sms() -> Result<(), BoxError> {
    let log = exchange_app::round().await?;
    assert!(
        log.contains("connected demo-user <demo-user@example.com> of account"),
        "{log}"
    );
    assert!(log.contains("→ 200 OK"), "{log}");
    assert!(
        log.contains("1 Exchange token request(s) and 1 SMS request(s)"),
        "{log}"
    );
    assert!(!log.contains("c2VjcmV0"), "{log}");
    Ok(())
}
