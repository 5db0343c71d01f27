//! Runs the any-OAuth-API example, so `cargo run --example any_oauth_api` cannot silently
//! break: the token endpoint, renewal after a revocation, host binding, the scope check with
//! the API's own catalogue, and no secret in what it prints.

#[allow(dead_code)]
#[path = "../examples/any_oauth_api.rs"]
mod any_oauth_api;

use any_oauth_api::{CLIENT_ID, CLIENT_SECRET, REPORTS_TOKEN};
use base64::Engine as _;
use infobip_auth::BoxError;

#[tokio::test]
async fn each_api_gets_its_own_credential_and_nothing_secret_is_printed() -> Result<(), BoxError> {
    let outcome = any_oauth_api::run().await?;
    let printed = outcome.lines.join("\n");

    // First, since the messages below quote the output: no secret in it. A failure names
    // which secret, never the secret.
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let mut secrets = vec![CLIENT_SECRET.to_owned(), REPORTS_TOKEN.to_owned(), basic];
    assert_eq!(outcome.issued_tokens.len(), 2);
    secrets.extend(outcome.issued_tokens.iter().cloned());
    for (which, secret) in secrets.iter().enumerate() {
        assert!(
            !printed.contains(secret.as_str()),
            "secret #{which} was printed"
        );
    }

    // One token, kept for the second request; one more after the revocation's single `401`.
    assert_eq!(outcome.tokens_granted, 2, "{printed}");
    assert_eq!(outcome.messages_refusals, 1, "{printed}");
    // Two messages, the refused one and its replay: the `DELETE` (pre-flight) and the
    // requests of the sources the token endpoint refused were never sent.
    assert_eq!(outcome.messages_requests, 4, "{printed}");
    // The wrong secret and the missing scope.
    assert_eq!(outcome.token_refusals, 2, "{printed}");
    // The reports API saw its own token once, and never the OAuth token.
    let reports_token = format!("Bearer {REPORTS_TOKEN}");
    assert_eq!(outcome.reports_authorizations.len(), 1, "{printed}");
    assert!(
        outcome.reports_authorizations[0] == reports_token,
        "the reports API got another credential than its own"
    );

    for expected in [
        "POST /v1/messages (first): 200 OK",
        "POST /v1/messages (second): 200 OK \"queued\"; tokens granted so far: 1",
        "after the server revoked the token: 200 OK \"queued\"; 401s from the API: 1, tokens granted: 2",
        "GET /v2/reports with the fixed token: 200 OK, 1 report(s)",
        "DELETE /v1/messages/msg-1: refused: forbidden: DELETE /v1/messages/{id} needs any of \
         messages:delete; the credential holds messages:send",
        "GET /v2/reports through the OAuth layer: refused: credentials are not sent to",
        "with a wrong client secret: refused: invalid credentials: the token endpoint refused \
         the source's own credentials",
        "with no requested scope: refused: token request failed (400 Bad Request invalid_scope)",
    ] {
        assert!(
            printed.contains(expected),
            "{expected:?} not in:\n{printed}"
        );
    }
    Ok(())
}
