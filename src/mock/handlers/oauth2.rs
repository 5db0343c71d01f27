//! `POST /auth/1/oauth2/token`: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4).

use http::{HeaderMap, StatusCode};
use tokio::time::Instant;

use crate::mock::reply::{self, Fields, Refusal, Reply};
use crate::mock::state::{State, Token, deadline, insert_live, random_hex, whole_seconds};

const FORM: &str = "application/x-www-form-urlencoded";

/// Form `client_id`, `client_secret`, `grant_type=client_credentials` →
/// `200 {"access_token","expires_in","token_type":"Bearer"}`.
pub(super) fn token(state: &State, headers: &HeaderMap, body: &[u8]) -> Result<Reply, Refusal> {
    reply::require_content_type(headers, FORM)?;
    // Infobip's `TokenRequest` also lists `code` (for another grant): accepted and ignored.
    let fields = Fields::parse(body, &["client_id", "client_secret", "grant_type", "code"])?;
    let client_id = fields.required("client_id")?;
    let client_secret = fields.required("client_secret")?;
    let grant_type = fields.required("grant_type")?;
    if grant_type != "client_credentials" {
        return Err(Refusal::bad_request(format!(
            "unsupported grant_type `{grant_type}`: use client_credentials"
        )));
    }
    let client = state
        .settings
        .clients
        .get(client_id)
        .filter(|client| client.secret == client_secret)
        .ok_or_else(Refusal::invalid_client)?;

    let lifetime = state.settings.oauth_token_lifetime;
    let access_token = random_hex(32);
    insert_live(
        &mut state.live().oauth_tokens,
        access_token.clone(),
        Token {
            scopes: client.scopes.clone(),
            client_id: None,
            expires_at: deadline(Instant::now(), lifetime),
        },
        |held| held.expires_at,
    );
    let seconds = whole_seconds(lifetime);
    let expires_in = if state.settings.expires_in_as_string {
        serde_json::Value::from(seconds.to_string())
    } else {
        serde_json::Value::from(seconds)
    };
    Ok(reply::json(
        StatusCode::OK,
        &serde_json::json!({
            "access_token": access_token,
            "expires_in": expires_in,
            "token_type": "Bearer",
        }),
    ))
}
