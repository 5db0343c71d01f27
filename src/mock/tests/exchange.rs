//! Exchange's authorization-code flow: `GET /exchange/1/oauth/authorize` and
//! `POST /exchange/1/oauth/token`, with client secret or PKCE, and refresh.

use std::collections::HashMap;
use std::time::Duration;

use super::*;

const AUTHORIZE: &str = "/exchange/1/oauth/authorize";
const TOKEN: &str = "/exchange/1/oauth/token";
/// RFC 7636, Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn authorize_query<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", DEMO_APP_CLIENT_ID),
        ("state", "xyz"),
        ("redirect_uri", DEMO_REDIRECT_URI),
        ("scope", "api_read"),
    ];
    query.extend_from_slice(extra);
    query
}

async fn authorize(http: &Http, query: &[(&str, &str)]) -> Result<Answer, BoxError> {
    let query = serde_urlencoded::to_string(query)?;
    http.get(&format!("{AUTHORIZE}?{query}"), None).await
}

/// The query parameters of the redirect.
fn redirect_params(answer: &Answer) -> Result<HashMap<String, String>, BoxError> {
    let (_, query) = answer
        .location()
        .split_once('?')
        .ok_or("no query in Location")?;
    Ok(serde_urlencoded::from_str(query)?)
}

/// Authorizes the demo app (adding `extra` to the query) and returns the code.
async fn code(http: &Http, extra: &[(&str, &str)]) -> Result<String, BoxError> {
    let answer = authorize(http, &authorize_query(extra)).await?;
    assert_eq!(answer.status, StatusCode::FOUND);
    redirect_params(&answer)?
        .remove("code")
        .ok_or_else(|| "no code".into())
}

fn with_secret(code: &str) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "authorization_code".to_owned()),
        ("client_id", DEMO_APP_CLIENT_ID.to_owned()),
        ("client_secret", DEMO_APP_CLIENT_SECRET.to_owned()),
        ("code", code.to_owned()),
        ("redirect_uri", DEMO_REDIRECT_URI.to_owned()),
    ]
}

async fn exchange(http: &Http, form: &[(&str, String)]) -> Result<Answer, BoxError> {
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    http.post_form(TOKEN, &form).await
}

fn replace(form: &mut [(&str, String)], name: &str, value: &str) {
    for field in form.iter_mut().filter(|(k, _)| *k == name) {
        field.1 = value.to_owned();
    }
}

#[tokio::test]
async fn authorizes_then_exchanges_the_code_with_the_client_secret() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let answer = authorize(&http, &authorize_query(&[])).await?;
    assert_eq!(answer.status, StatusCode::FOUND);
    let location = answer.location();
    assert!(
        location.starts_with(&format!("{DEMO_REDIRECT_URI}?code=")),
        "{location}"
    );
    let params = redirect_params(&answer)?;
    let code = params.get("code").ok_or("no code")?;
    assert_eq!(code.len(), 16);
    assert!(
        code.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{code}"
    );
    assert_eq!(params.get("state").map(String::as_str), Some("xyz"));

    let answer = exchange(&http, &with_secret(code)).await?;
    assert_eq!(answer.status, StatusCode::OK);
    let json = answer.json()?;
    assert_eq!(json["tokenType"], json!("IBSSO"));
    assert_eq!(json["username"], json!(DEMO_USERNAME));
    for field in ["token", "accountKey", "userKey", "email", "locale"] {
        assert!(json[field].is_string(), "{field} in {json}");
    }
    assert_eq!(json["roles"][0]["id"], json!(1393));
    assert!(json["groups"][0]["name"].is_string(), "{json}");

    let token = string_field(&answer, "token")?;
    let sent = http.send_sms(Some(&format!("IBSSO {token}"))).await?;
    assert_eq!(sent.status, StatusCode::OK);
    assert_eq!(server.counters().exchange_token_requests, 1);
    Ok(())
}

#[tokio::test]
async fn the_state_travels_encoded() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let mut query = authorize_query(&[]);
    query[2] = ("state", "a b&c=d/é");
    let answer = authorize(&http, &query).await?;
    let params = redirect_params(&answer)?;
    assert_eq!(params.get("state").map(String::as_str), Some("a b&c=d/é"));
    Ok(())
}

#[tokio::test]
async fn codes_are_single_use() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let code = code(&http, &[]).await?;
    assert_eq!(
        exchange(&http, &with_secret(&code)).await?.status,
        StatusCode::OK
    );
    exchange(&http, &with_secret(&code)).await?.assert_refused(
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        "already been used",
    );
    exchange(&http, &with_secret("0123456789abcdef"))
        .await?
        .assert_refused(StatusCode::BAD_REQUEST, "BAD_REQUEST", "unknown code");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn codes_expire_after_one_minute() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let early = code(&http, &[]).await?;
    let late = code(&http, &[]).await?;
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(
        exchange(&http, &with_secret(&early)).await?.status,
        StatusCode::OK
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    exchange(&http, &with_secret(&late)).await?.assert_refused(
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        "expired",
    );
    Ok(())
}

#[tokio::test]
async fn pkce_s256_checks_the_verifier() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let pkce = [
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let form = |code: &str, verifier: Option<&str>| {
        let mut form = with_secret(code);
        form.retain(|(k, _)| *k != "client_secret");
        if let Some(verifier) = verifier {
            form.push(("code_verifier", verifier.to_owned()));
        }
        form
    };

    let code1 = code(&http, &pkce).await?;
    let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK";
    exchange(&http, &form(&code1, Some(wrong)))
        .await?
        .assert_refused(StatusCode::BAD_REQUEST, "BAD_REQUEST", "code_verifier");
    exchange(&http, &form(&code1, None)).await?.assert_refused(
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        "code_verifier",
    );
    // A refused attempt does not use the code up.
    let answer = exchange(&http, &form(&code1, Some(VERIFIER))).await?;
    assert_eq!(answer.status, StatusCode::OK);

    // The method defaults to S256 when only the challenge is sent.
    let code2 = code(&http, &pkce[..1]).await?;
    let answer = exchange(&http, &form(&code2, Some(VERIFIER))).await?;
    assert_eq!(answer.status, StatusCode::OK);

    // A verifier for a code obtained without a challenge is refused.
    let code3 = code(&http, &[]).await?;
    exchange(&http, &form(&code3, Some(VERIFIER)))
        .await?
        .assert_refused(StatusCode::BAD_REQUEST, "BAD_REQUEST", "code_challenge");
    exchange(&http, &form(&code3, None)).await?.assert_refused(
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        "client_secret",
    );
    Ok(())
}

/// Infobip's guide calls 43 to 128 characters for the verifier "recommended", and its own PKCE
/// example sends `code_verifier=123` with `code_challenge=pmWkWSBC…` (which is S256 of `123`):
/// a short verifier is accepted as Infobip accepts it, and only a wrong one is refused.
#[tokio::test]
async fn pkce_accepts_the_short_verifier_of_infobips_example() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let example = [(
        "code_challenge",
        "pmWkWSBCL51Bfkhn79xPuKBKHz__H6B-mY6G9_eieuM",
    )];
    let form = |code: &str, verifier: &str| {
        let mut form = with_secret(code);
        form.retain(|(k, _)| *k != "client_secret");
        form.push(("code_verifier", verifier.to_owned()));
        form
    };
    let code1 = code(&http, &example).await?;
    exchange(&http, &form(&code1, "124")).await?.assert_refused(
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        "code_verifier",
    );
    let answer = exchange(&http, &form(&code1, "123")).await?;
    assert_eq!(answer.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn the_client_secret_is_required_exactly_without_pkce() -> TestResult {
    // Infobip's guide: `client_secret` is required to exchange a plain code; the PKCE flow's
    // exchange, for apps that cannot keep a secret, sends `code_verifier` instead.
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let pkce = [("code_challenge", CHALLENGE)];
    let without_secret = |code: &str| {
        let mut form = with_secret(code);
        form.retain(|(k, _)| *k != "client_secret");
        form
    };

    let plain = code(&http, &[]).await?;
    exchange(&http, &without_secret(&plain))
        .await?
        .assert_refused(StatusCode::BAD_REQUEST, "BAD_REQUEST", "client_secret");

    let public = code(&http, &pkce).await?;
    let mut form = without_secret(&public);
    form.push(("code_verifier", VERIFIER.to_owned()));
    assert_eq!(exchange(&http, &form).await?.status, StatusCode::OK);

    // A PKCE app that also holds the secret may send it; a wrong one is refused.
    let both = code(&http, &pkce).await?;
    let mut form = with_secret(&both);
    form.push(("code_verifier", VERIFIER.to_owned()));
    replace(&mut form, "client_secret", "wrong");
    exchange(&http, &form).await?.assert_unauthorized();
    Ok(())
}

#[tokio::test]
async fn authorize_refuses_what_does_not_match() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let bad = StatusCode::BAD_REQUEST;
    let mut unknown = authorize_query(&[]);
    unknown[1] = ("client_id", "ffffffffffffffffffffffffffffffff");
    let mut elsewhere = authorize_query(&[]);
    elsewhere[3] = ("redirect_uri", "https://evil.example.com/callback");
    let mut token = authorize_query(&[]);
    token[0] = ("response_type", "token");
    let mut stateless = authorize_query(&[]);
    stateless.remove(2);
    let cases = [
        (unknown, "client_id"),
        (elsewhere, "redirect_uri"),
        (token, "response_type"),
        (stateless, "missing field `state`"),
        (
            authorize_query(&[
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "plain"),
            ]),
            "S256",
        ),
        (
            authorize_query(&[("code_challenge_method", "S256")]),
            "without code_challenge",
        ),
        (
            authorize_query(&[("code_challenge", "short")]),
            "code_challenge",
        ),
        (
            authorize_query(&[("prompt", "none")]),
            "unexpected field `prompt`",
        ),
    ];
    for (query, why) in cases {
        authorize(&http, &query)
            .await?
            .assert_refused(bad, "BAD_REQUEST", why);
    }
    http.get(AUTHORIZE, None)
        .await?
        .assert_refused(bad, "BAD_REQUEST", "missing field");
    http.get(&format!("{AUTHORIZE}?%zz=%"), None)
        .await?
        .assert_refused(bad, "BAD_REQUEST", "");
    Ok(())
}

#[tokio::test]
async fn the_token_endpoint_refuses_what_does_not_match() -> TestResult {
    let other_app = ExchangeApp::new(
        "00112233445566778899aabbccddeeff",
        "other-secret",
        DEMO_REDIRECT_URI,
        DEMO_USERNAME,
    );
    let server = MockServer::start_with(MockConfig::demo().exchange_app(other_app)).await?;
    let http = Http::new(&server);
    let bad = StatusCode::BAD_REQUEST;

    let code = code(&http, &[]).await?;
    let mut elsewhere = with_secret(&code);
    replace(
        &mut elsewhere,
        "redirect_uri",
        "https://app.example.com/other",
    );
    exchange(&http, &elsewhere)
        .await?
        .assert_refused(bad, "BAD_REQUEST", "redirect_uri");

    let mut other_client = with_secret(&code);
    replace(
        &mut other_client,
        "client_id",
        "00112233445566778899aabbccddeeff",
    );
    replace(&mut other_client, "client_secret", "other-secret");
    exchange(&http, &other_client)
        .await?
        .assert_refused(bad, "BAD_REQUEST", "client_id");

    let mut wrong_secret = with_secret(&code);
    replace(&mut wrong_secret, "client_secret", "wrong");
    exchange(&http, &wrong_secret).await?.assert_unauthorized();

    let mut no_grant = with_secret(&code);
    no_grant.remove(0);
    exchange(&http, &no_grant)
        .await?
        .assert_refused(bad, "BAD_REQUEST", "grant_type");
    let mut extra = with_secret(&code);
    extra.push(("scope", "all".to_owned()));
    exchange(&http, &extra)
        .await?
        .assert_refused(bad, "BAD_REQUEST", "unexpected field `scope`");

    let form = serde_urlencoded::to_string(with_secret(&code))?;
    http.call(Method::POST, TOKEN, None, Some("application/json"), form)
        .await?
        .assert_refused(bad, "BAD_REQUEST", "Content-Type");

    // None of these used the code up.
    assert_eq!(
        exchange(&http, &with_secret(&code)).await?.status,
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn tokens_live_one_minute_and_refresh_before_they_die() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let code = code(&http, &[]).await?;
    let first = string_field(&exchange(&http, &with_secret(&code)).await?, "token")?;

    tokio::time::advance(Duration::from_secs(50)).await;
    let refresh = |token: &str| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("code", token.to_owned()),
        ]
    };
    let answer = exchange(&http, &refresh(&first)).await?;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()?["tokenType"], json!("IBSSO"));
    let second = string_field(&answer, "token")?;
    assert_ne!(first, second);

    tokio::time::advance(Duration::from_secs(10)).await;
    http.send_sms(Some(&format!("IBSSO {first}")))
        .await?
        .assert_unauthorized();
    let sent = http.send_sms(Some(&format!("IBSSO {second}"))).await?;
    assert_eq!(sent.status, StatusCode::OK);
    exchange(&http, &refresh(&first))
        .await?
        .assert_unauthorized();

    // With the optional client credentials.
    let mut with_client = refresh(&second);
    with_client.push(("client_id", DEMO_APP_CLIENT_ID.to_owned()));
    with_client.push(("client_secret", DEMO_APP_CLIENT_SECRET.to_owned()));
    assert_eq!(exchange(&http, &with_client).await?.status, StatusCode::OK);
    replace(&mut with_client, "client_secret", "wrong");
    exchange(&http, &with_client).await?.assert_unauthorized();
    let mut with_uri = refresh(&second);
    with_uri.push(("redirect_uri", DEMO_REDIRECT_URI.to_owned()));
    exchange(&http, &with_uri).await?.assert_refused(
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        "redirect_uri",
    );

    exchange(&http, &refresh("unknown"))
        .await?
        .assert_unauthorized();
    assert_eq!(server.counters().exchange_token_requests, 7);
    Ok(())
}

#[tokio::test]
async fn exchange_tokens_carry_the_users_scopes() -> TestResult {
    let config = MockConfig::new()
        .user("reader", "pw", "inbound-message:read")
        .exchange_app(ExchangeApp::new(
            DEMO_APP_CLIENT_ID,
            DEMO_APP_CLIENT_SECRET,
            DEMO_REDIRECT_URI,
            "reader",
        ));
    let server = MockServer::start_with(config).await?;
    let http = Http::new(&server);
    let code = code(&http, &[]).await?;
    let token = string_field(&exchange(&http, &with_secret(&code)).await?, "token")?;
    let auth = format!("IBSSO {token}");
    let inbox = http.get("/sms/1/inbox/reports", Some(&auth)).await?;
    assert_eq!(inbox.status, StatusCode::OK);
    http.send_sms(Some(&auth)).await?.assert_forbidden();
    Ok(())
}

#[tokio::test]
async fn expire_all_ends_codes_and_exchange_tokens() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let first = code(&http, &[]).await?;
    let token = string_field(&exchange(&http, &with_secret(&first)).await?, "token")?;
    let pending = code(&http, &[]).await?;
    server.expire_all();
    http.send_sms(Some(&format!("IBSSO {token}")))
        .await?
        .assert_unauthorized();
    exchange(&http, &with_secret(&pending))
        .await?
        .assert_refused(StatusCode::BAD_REQUEST, "BAD_REQUEST", "expired");
    let refresh = [
        ("grant_type", "refresh_token".to_owned()),
        ("code", token.clone()),
    ];
    exchange(&http, &refresh).await?.assert_unauthorized();
    Ok(())
}

#[tokio::test]
async fn revoked_exchange_tokens_cannot_be_refreshed() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let code = code(&http, &[]).await?;
    let token = string_field(&exchange(&http, &with_secret(&code)).await?, "token")?;
    server.revoke_token(&token);
    let refresh = [("grant_type", "refresh_token".to_owned()), ("code", token)];
    exchange(&http, &refresh).await?.assert_unauthorized();
    Ok(())
}
