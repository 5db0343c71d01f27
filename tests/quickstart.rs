//! Runs the quickstart's tour, so the README's main command cannot silently break.

#[allow(dead_code)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

use infobip_auth::BoxError;

#[tokio::test]
async fn every_method_sends_its_sms() -> Result<(), BoxError> {
    let mut log = String::new();
    let rows = quickstart::tour(quickstart::http_client(), &mut log).await?;
    let table: Vec<(&str, &str, String)> = rows
        .iter()
        .map(|row| (row.method, row.scheme.as_str(), row.outcome.clone()))
        .collect();
    let expected_schemes = [
        ("API key", "App"),
        ("Basic", "Basic"),
        ("IBSSO session", "IBSSO"),
        ("OAuth 2.0", "Bearer"),
    ];
    for (method, scheme) in expected_schemes {
        let row = table
            .iter()
            .find(|row| row.0 == method)
            .ok_or(format!("no row for {method}: {log}"))?;
        assert_eq!(row.1, scheme, "{log}");
        assert_eq!(row.2, "200 OK", "{log}");
    }
    let renewals = [
        (
            "IBSSO, idle gap",
            "200 OK; 1 renewal(s), 0 × 401 at the server",
        ),
        (
            "OAuth 2.0, revoked",
            "200 OK; 1 renewal(s), 1 × 401 at the server",
        ),
    ];
    for (method, outcome) in renewals {
        let row = table
            .iter()
            .find(|row| row.0 == method)
            .ok_or(format!("no row for {method}: {log}"))?;
        assert!(row.2.starts_with(outcome), "{log}");
    }
    // The code exchanged for a token, then the token refreshed: two token requests.
    let exchange = rows
        .iter()
        .find(|row| row.method == "Exchange auth code")
        .ok_or(format!("no Exchange row: {log}"))?;
    assert_eq!(
        (exchange.scheme.as_str(), exchange.token_requests),
        ("IBSSO", 2),
        "{log}"
    );
    assert!(exchange.outcome.starts_with("200 OK"), "{log}");
    // `revoke` ended the session in use (the one before it was ended by its renewal).
    assert!(
        log.contains("ended on shutdown: 2 session(s) made, 2 ended"),
        "{log}"
    );
    let forbidden = table
        .iter()
        .find(|row| row.0 == "API key, no scope")
        .ok_or("no 403 row")?;
    for scope in ["message:send", "sms:message:send", "sms:manage"] {
        assert!(
            forbidden.2.starts_with("403") && forbidden.2.contains(scope),
            "{log}"
        );
    }
    assert!(log.contains("refused before sending (0 sent)"), "{log}");
    assert!(!log.contains(infobip_auth::mock::DEMO_PASSWORD), "{log}");
    assert!(
        !log.contains(infobip_auth::mock::DEMO_CLIENT_SECRET),
        "{log}"
    );
    Ok(())
}
