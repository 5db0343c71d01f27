//! Infobip Exchange's OAuth 2.0 authorization-code flow (RFC 6749 §4.1, PKCE RFC 7636):
//! `GET /exchange/1/oauth/authorize` and `POST /exchange/1/oauth/token`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{HeaderValue, LOCATION};
use http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::mock::config::ExchangeApp;
use crate::mock::reply::{self, Fields, Refusal, Reply};
use crate::mock::state::{Code, State, Token, deadline, insert_live, random_hex, uuid_like};

const FORM: &str = "application/x-www-form-urlencoded";

/// Auto-approves for the app's user: `302` to `redirect_uri?code=<16 hex>&state=<state>`. No
/// denial is played: Infobip sends a user who cancels back to the referring page, so the
/// redirect URI never hears of it.
pub(super) fn authorize(state: &State, query: Option<&str>) -> Reply {
    authorize_inner(state, query.unwrap_or_default()).unwrap_or_else(Refusal::into_reply)
}

fn authorize_inner(state: &State, query: &str) -> Result<Reply, Refusal> {
    let fields = Fields::parse(
        query.as_bytes(),
        &[
            "response_type",
            "client_id",
            "state",
            "redirect_uri",
            "scope",
            "code_challenge",
            "code_challenge_method",
        ],
    )?;
    let response_type = fields.required("response_type")?;
    if response_type != "code" {
        return Err(Refusal::bad_request(format!(
            "unsupported response_type `{response_type}`: use code"
        )));
    }
    let client_id = fields.required("client_id")?;
    let app = app(state, client_id)?;
    let flow_state = fields.required("state")?;
    let redirect_uri = fields.required("redirect_uri")?;
    if redirect_uri != app.redirect_uri {
        return Err(Refusal::bad_request(
            "redirect_uri does not match the app's registered redirect URI",
        ));
    }
    fields.required("scope")?;
    let challenge = fields.optional("code_challenge");
    match (challenge, fields.optional("code_challenge_method")) {
        (None, Some(_)) => {
            return Err(Refusal::bad_request(
                "code_challenge_method was sent without code_challenge",
            ));
        }
        (Some(_), Some(method)) if method != "S256" => {
            return Err(Refusal::bad_request(format!(
                "unsupported code_challenge_method `{method}`: use S256"
            )));
        }
        (Some(challenge), _) if !is_s256_challenge(challenge) => {
            return Err(Refusal::bad_request(
                "code_challenge must be BASE64URL(SHA-256(code_verifier)) without padding",
            ));
        }
        _ => {}
    }

    let code = random_hex(8);
    let query = serde_urlencoded::to_string([("code", code.as_str()), ("state", flow_state)])
        .map_err(|_| Refusal::bad_request("state cannot be encoded"))?;
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = HeaderValue::try_from(format!("{redirect_uri}{separator}{query}"))
        .map_err(|_| Refusal::bad_request("redirect_uri cannot be sent in a header"))?;
    insert_live(
        &mut state.live().codes,
        code,
        Code {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            challenge: challenge.map(str::to_owned),
            expires_at: deadline(Instant::now(), state.settings.code_lifetime),
            used: false,
        },
        |held| held.expires_at,
    );
    let mut found = reply::empty(StatusCode::FOUND);
    found.headers_mut().insert(LOCATION, location);
    Ok(found)
}

/// Form `grant_type=authorization_code` (with `client_secret` or a PKCE `code_verifier`) or
/// `grant_type=refresh_token` with `code=<token>` → `200 {"token","tokenType":"IBSSO",…}`.
pub(super) fn token(state: &State, headers: &HeaderMap, body: &[u8]) -> Result<Reply, Refusal> {
    reply::require_content_type(headers, FORM)?;
    let fields = Fields::parse(
        body,
        &[
            "grant_type",
            "client_id",
            "client_secret",
            "code",
            "redirect_uri",
            "code_verifier",
        ],
    )?;
    match fields.required("grant_type")? {
        "authorization_code" => exchange_code(state, &fields),
        "refresh_token" => refresh(state, &fields),
        other => Err(Refusal::bad_request(format!(
            "unsupported grant_type `{other}`: use authorization_code or refresh_token"
        ))),
    }
}

fn exchange_code(state: &State, fields: &Fields) -> Result<Reply, Refusal> {
    let client_id = fields.required("client_id")?;
    let app = app(state, client_id)?;
    let code = fields.required("code")?;
    let redirect_uri = fields.required("redirect_uri")?;
    let verifier = fields.optional("code_verifier");
    let secret = fields.optional("client_secret");

    let now = Instant::now();
    let mut live = state.live();
    let Some(issued) = live.codes.get_mut(code) else {
        return Err(Refusal::bad_request("unknown code"));
    };
    if issued.used {
        return Err(Refusal::bad_request("the code has already been used"));
    }
    if issued.expires_at <= now {
        return Err(Refusal::bad_request("the code has expired"));
    }
    if issued.client_id != client_id {
        return Err(Refusal::bad_request(
            "client_id does not match the client the code was issued to",
        ));
    }
    if issued.redirect_uri != redirect_uri {
        return Err(Refusal::bad_request(
            "redirect_uri does not match the authorization request",
        ));
    }
    // Infobip's guide lists `client_secret` as required for the exchange of a code obtained
    // without a challenge, and lists `client_id`, `code_verifier`, `code`, `redirect_uri` and
    // `grant_type` (no secret) for the PKCE flow, which is for apps that cannot keep a secret.
    // So a secret is required exactly when the code has no challenge; one sent anyway is checked.
    // A verifier of any length is checked against the challenge: the guide calls 43 to 128
    // characters "recommended", and its own example sends `code_verifier=123`.
    match (&issued.challenge, verifier) {
        (Some(challenge), Some(verifier)) => {
            if s256(verifier) != *challenge {
                return Err(Refusal::bad_request(
                    "code_verifier does not match the code_challenge",
                ));
            }
        }
        (Some(_), None) => {
            return Err(Refusal::bad_request(
                "missing field `code_verifier`: the authorization request sent a code_challenge",
            ));
        }
        (None, Some(_)) => {
            return Err(Refusal::bad_request(
                "code_verifier was sent, but the authorization request had no code_challenge",
            ));
        }
        (None, None) if secret.is_none() => {
            return Err(Refusal::bad_request("missing field `client_secret`"));
        }
        (None, None) => {}
    }
    if secret.is_some_and(|secret| secret != app.client_secret) {
        return Err(Refusal::unauthorized());
    }
    issued.used = true;
    drop(live);
    Ok(issue(state, app))
}

fn refresh(state: &State, fields: &Fields) -> Result<Reply, Refusal> {
    for unexpected in ["redirect_uri", "code_verifier"] {
        if fields.optional(unexpected).is_some() {
            return Err(Refusal::bad_request(format!(
                "unexpected field `{unexpected}` for grant_type refresh_token"
            )));
        }
    }
    let token = fields.required("code")?;
    let client_id = {
        let live = state.live();
        let Some(current) = live.exchange_tokens.get(token) else {
            return Err(Refusal::unauthorized());
        };
        if current.expires_at <= Instant::now() {
            return Err(Refusal::unauthorized());
        }
        current.client_id.clone().unwrap_or_default()
    };
    if fields
        .optional("client_id")
        .is_some_and(|id| id != client_id)
    {
        return Err(Refusal::bad_request(
            "client_id does not match the client the token was issued to",
        ));
    }
    let app = app(state, &client_id)?;
    if fields
        .optional("client_secret")
        .is_some_and(|secret| secret != app.client_secret)
    {
        return Err(Refusal::unauthorized());
    }
    Ok(issue(state, app))
}

/// A new Exchange token for the app's user, with the user's account details.
fn issue(state: &State, app: &ExchangeApp) -> Reply {
    let token = uuid_like();
    insert_live(
        &mut state.live().exchange_tokens,
        token.clone(),
        Token {
            scopes: state.app_scopes(app),
            client_id: Some(app.client_id.clone()),
            expires_at: deadline(Instant::now(), state.settings.exchange_token_lifetime),
        },
        |held| held.expires_at,
    );
    let pairs = |list: &[(u64, String)]| -> Vec<serde_json::Value> {
        list.iter()
            .map(|(id, name)| serde_json::json!({ "id": id, "name": name }))
            .collect()
    };
    reply::json(
        StatusCode::OK,
        &serde_json::json!({
            "token": token,
            "tokenType": "IBSSO",
            "accountKey": app.account_key,
            "userKey": app.user_key,
            "username": app.user,
            "email": app.email,
            "locale": app.locale,
            "roles": pairs(&app.roles),
            "groups": pairs(&app.groups),
        }),
    )
}

fn app<'a>(state: &'a State, client_id: &str) -> Result<&'a ExchangeApp, Refusal> {
    state
        .settings
        .apps
        .get(client_id)
        .ok_or_else(|| Refusal::bad_request("unknown client_id"))
}

/// `BASE64URL(SHA-256(verifier))` without padding (RFC 7636 §4.2).
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `challenge` can be an S256 challenge: 43 characters of unpadded base64url.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        let challenge = s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(is_s256_challenge(&challenge));
        assert!(!is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM="
        ));
    }
}
