//! Runs the Exchange app example's round, so `cargo run --example exchange_app` cannot
//! silently break.

#[allow(dead_code)]
#[path = "../examples/exchange_app.rs"]
mod exchange_app;

use std::time::{Duration, SystemTime};

use infobip_auth::BoxError;
use infobip_auth::source::PendingAuthorization;

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

#[test]
fn the_app_forgets_expired_authorizations_and_keeps_a_bounded_number() -> Result<(), BoxError> {
    let mut pending = exchange_app::Pending::new();
    let past = SystemTime::now() - Duration::from_secs(1);
    let lapsed = PendingAuthorization::new("lapsed", None)?.with_expiry(past);
    exchange_app::remember(&mut pending, lapsed)?;
    exchange_app::remember(&mut pending, PendingAuthorization::new("live", None)?)?;
    assert!(!pending.contains_key("lapsed") && pending.contains_key("live"));

    for n in 1..exchange_app::MAX_PENDING {
        exchange_app::remember(
            &mut pending,
            PendingAuthorization::new(&format!("s{n}"), None)?,
        )?;
    }
    let one_too_many = PendingAuthorization::new("one-too-many", None)?;
    assert!(exchange_app::remember(&mut pending, one_too_many).is_err());
    assert_eq!(pending.len(), exchange_app::MAX_PENDING);
    Ok(())
}
