//! The flow against a fake Exchange token endpoint (a `service_fn`), on tokio's paused clock
//! where time matters. The same flow over real sockets against the embedded server is in
//! `tests/auth_code.rs`.

use std::collections::HashMap;
use std::sync::MutexGuard;
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use tower::{Service as _, ServiceBuilder, ServiceExt as _, service_fn};

use super::*;
use crate::source::{SharedTokenSource, Transport, pkce};
use crate::{BoxError, InfobipAuthLayer, RefreshPolicy};

type TestResult = Result<(), BoxError>;

const CLIENT_ID: &str = "d5e47f02d627e390d615c2e93f168eb6";
const SECRET: &str = "YED8Q0KHeYgQxtjdUkR376Uxu0/zdvwAVZb3ZQ3GGZU=";
const REDIRECT: &str = "https://www.my-app.com/callback";
const API: &str = "https://xyz12.api.infobip.com/sms/2/text/advanced";
const MINUTE: Duration = Duration::from_secs(60);

/// A fake `POST /exchange/1/oauth/token` with Infobip's rules: codes single use and one minute
/// long, S256 challenges checked, tokens one minute long, refresh with `code=<token>`.
#[derive(Clone, Default)]
struct FakeExchange(Arc<Mutex<Fake>>);

#[derive(Default)]
struct Fake {
    requests: u32,
    refreshes: u32,
    forms: Vec<HashMap<String, String>>,
    /// code → (expiry, used, S256 challenge)
    codes: HashMap<String, (Instant, bool, Option<String>)>,
    /// token → expiry
    tokens: HashMap<String, Instant>,
    issued: u32,
    delay: Duration,
    /// The next answers, before any rule.
    canned: Vec<(StatusCode, String)>,
    /// The `Retry-After` (seconds) of every `429` answer.
    retry_after: Option<u64>,
}

impl FakeExchange {
    fn state(&self) -> MutexGuard<'_, Fake> {
        lock(&self.0)
    }

    fn transport(&self) -> Transport {
        let fake = self.clone();
        Transport::new(service_fn(move |req: Request<Full<Bytes>>| {
            let fake = fake.clone();
            async move {
                let delay = fake.state().delay;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let (status, body) = fake.answer(req).await;
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = status;
                if let Some(seconds) = fake.state().retry_after
                    && status == StatusCode::TOO_MANY_REQUESTS
                {
                    response
                        .headers_mut()
                        .insert(http::header::RETRY_AFTER, seconds.into());
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        }))
    }

    /// A code as the authorize endpoint would issue it.
    fn issue_code(&self, challenge: Option<String>) -> String {
        let mut state = self.state();
        state.issued += 1;
        let code = format!(
            "{:016x}",
            0x8227_62fa_24e0_4900_u64 + u64::from(state.issued)
        );
        state
            .codes
            .insert(code.clone(), (Instant::now() + MINUTE, false, challenge));
        code
    }

    async fn answer(&self, req: Request<Full<Bytes>>) -> (StatusCode, String) {
        let form_type = req.headers().get(http::header::CONTENT_TYPE).cloned();
        let path = req.uri().path().to_owned();
        let body = req.into_body().collect().await.map(|b| b.to_bytes());
        let fields: HashMap<String, String> = body
            .ok()
            .and_then(|b| serde_urlencoded::from_bytes(&b).ok())
            .unwrap_or_default();
        let mut state = self.state();
        state.requests += 1;
        state.forms.push(fields.clone());
        if !state.canned.is_empty() {
            return state.canned.remove(0);
        }
        let field = |name: &str| fields.get(name).map(String::as_str);
        let bad = |text: &str| (StatusCode::BAD_REQUEST, infobip_error("BAD_REQUEST", text));
        if path != TOKEN_PATH
            || form_type.as_ref().and_then(|v| v.to_str().ok())
                != Some("application/x-www-form-urlencoded")
        {
            return bad("wrong endpoint or content type");
        }
        let now = Instant::now();
        match field("grant_type") {
            Some("authorization_code") => {
                if field("client_id") != Some(CLIENT_ID) || field("redirect_uri") != Some(REDIRECT)
                {
                    return bad("client_id or redirect_uri does not match");
                }
                let code = field("code").unwrap_or_default().to_owned();
                let Some((expires, used, challenge)) = state.codes.get_mut(&code) else {
                    return bad("unknown code");
                };
                if *used || *expires <= now {
                    return bad("the code has been used or has expired");
                }
                match (challenge.as_deref(), field("code_verifier")) {
                    (Some(challenge), Some(verifier)) if pkce::challenge(verifier) == challenge => {
                    }
                    (None, None) if field("client_secret") == Some(SECRET) => {}
                    (None, None) => {
                        return (
                            StatusCode::UNAUTHORIZED,
                            infobip_error("UNAUTHORIZED", "Invalid login details"),
                        );
                    }
                    _ => return bad("code_verifier does not match"),
                }
                *used = true;
                issue(&mut state, now)
            }
            Some("refresh_token") => {
                let token = field("code").unwrap_or_default();
                if state.tokens.get(token).is_none_or(|at| *at <= now) {
                    return (
                        StatusCode::UNAUTHORIZED,
                        infobip_error("UNAUTHORIZED", "Invalid login details"),
                    );
                }
                state.refreshes += 1;
                issue(&mut state, now)
            }
            _ => bad("unsupported grant_type"),
        }
    }

    fn requests(&self) -> u32 {
        self.state().requests
    }

    fn refreshes(&self) -> u32 {
        self.state().refreshes
    }

    fn last_form(&self) -> HashMap<String, String> {
        self.state().forms.last().cloned().unwrap_or_default()
    }
}

fn issue(state: &mut Fake, now: Instant) -> (StatusCode, String) {
    state.issued += 1;
    let token = format!("3d7908aa-7b8c-4c5a-94bf-{:012}", state.issued);
    state.tokens.insert(token.clone(), now + MINUTE);
    let body = serde_json::json!({
        "token": token, "tokenType": "IBSSO",
        "accountKey": "8F0792F86035A9F4290821F1EE6BC06A", "userKey": "F443BCAEB8517F7159F44D0E8CFE725D",
        "username": "developeruser", "email": "developer@infobip.com", "locale": "en-US",
        "roles": [{"id": 1393, "name": "Designer"}], "groups": [{"id": 54004, "name": "Group1"}],
    });
    (StatusCode::OK, body.to_string())
}

fn infobip_error(id: &str, text: &str) -> String {
    serde_json::json!({"requestError": {"serviceException": {"messageId": id, "text": text}}})
        .to_string()
}

fn builder(fake: &FakeExchange) -> Builder {
    AuthCodeFlow::builder("https://oneapi.infobip.com", CLIENT_ID)
        .redirect_uri(REDIRECT)
        .scope("api_read")
        .transport(fake.transport())
}

fn confidential(fake: &FakeExchange) -> Result<AuthCodeFlow, ConfigError> {
    builder(fake).client_secret(SECRET).build()
}

fn public(fake: &FakeExchange) -> Result<AuthCodeFlow, ConfigError> {
    builder(fake).pkce().build()
}

use crate::ConfigError;

/// Runs the flow up to the token: authorize, callback, exchange.
async fn connect(flow: &AuthCodeFlow, fake: &FakeExchange) -> Result<AuthCode, Error> {
    let (_, pending) = flow.authorize_url()?;
    let challenge = pending.expose_verifier().map(pkce::challenge);
    let code = fake.issue_code(challenge);
    let callback = format!("{REDIRECT}?code={code}&state={}", pending.state());
    let grant = flow.callback(pending, &callback)?;
    flow.exchange(grant).await
}

/// The authorize URL's query, decoded.
fn query(url: &Uri) -> HashMap<String, String> {
    serde_urlencoded::from_str(url.query().unwrap_or_default()).unwrap_or_default()
}

/// Sends one request through `layer` to a service that answers with the header it got.
async fn send(layer: &InfobipAuthLayer) -> Result<String, BoxError> {
    let mut service = ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|req: Request<Full<Bytes>>| async move {
            let seen = req.headers().get("authorization").cloned();
            Ok::<_, std::convert::Infallible>(Response::new(seen))
        }));
    let request = Request::post(API).body(Full::default())?;
    let response = service.ready().await?.call(request).await?;
    let header = response.into_body().ok_or("no authorization header")?;
    Ok(header.to_str()?.to_owned())
}

fn kind_of(err: &BoxError) -> Option<&ErrorKind> {
    Error::find(&**err).map(Error::kind)
}

#[test]
fn authorize_url_carries_the_seed_parameters() -> TestResult {
    let fake = FakeExchange::default();
    let (url, pending) = confidential(&fake)?.authorize_url()?;
    assert_eq!(
        (url.scheme_str(), url.host(), url.path()),
        (
            Some("https"),
            Some("oneapi.infobip.com"),
            "/exchange/1/oauth/authorize"
        )
    );
    let query = query(&url);
    let expected = [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("scope", "api_read"),
    ];
    for (name, value) in expected {
        assert_eq!(query.get(name).map(String::as_str), Some(value), "{name}");
    }
    assert_eq!(
        query.get("state").map(String::as_str),
        Some(pending.state())
    );
    assert!(!query.contains_key("code_challenge"), "{url}");
    assert!(pending.expose_verifier().is_none());
    assert!(!url.to_string().contains(SECRET));

    let (_, again) = confidential(&fake)?.authorize_url()?;
    assert_ne!(again.state(), pending.state());
    assert_eq!(fake.requests(), 0);
    Ok(())
}

#[test]
fn pkce_sends_the_s256_challenge_of_a_fresh_verifier() -> TestResult {
    let fake = FakeExchange::default();
    let flow = public(&fake)?;
    let (url, pending) = flow.authorize_url()?;
    let verifier = pending.expose_verifier().ok_or("no verifier")?;
    assert!(pkce::is_verifier(verifier), "{}", verifier.len());
    let query = query(&url);
    assert_eq!(
        query.get("code_challenge"),
        Some(&pkce::challenge(verifier))
    );
    assert_eq!(
        query.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    assert!(!url.to_string().contains(verifier));
    let (_, other) = flow.authorize_url()?;
    assert_ne!(other.expose_verifier(), Some(verifier));
    Ok(())
}

#[test]
fn a_callers_state_is_sent_and_checked() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let (url, pending) = flow.authorize_url_with_state("WeHH_yy2irpl8UY")?;
    assert_eq!(
        query(&url).get("state").map(String::as_str),
        Some("WeHH_yy2irpl8UY")
    );
    assert!(
        flow.callback(pending, "?code=822762fa24e04975&state=WeHH_yy2irpl8UY")
            .is_ok()
    );
    for bad in ["", "a\nb"] {
        let err = flow.authorize_url_with_state(bad).err();
        assert!(
            matches!(err.as_ref().map(Error::kind), Some(ErrorKind::Config(_))),
            "{err:?}"
        );
    }
    Ok(())
}

#[test]
fn a_client_id_that_cannot_be_right_is_refused_for_what_it_holds() {
    // The id travels percent-encoded in a query and a form, never in a header: the refusal
    // says what is wrong with it, not what a header cannot carry.
    for id in ["id with space", "d5e47f02\n", "d5e4\u{7f}", "d5é47f02"] {
        let err = AuthCodeFlow::builder("https://oneapi.infobip.com", id)
            .pkce()
            .build()
            .err();
        let shown = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            shown.starts_with("invalid client id: it holds a space, a control character or")
                && !shown.contains("header"),
            "{id:?}: {shown}"
        );
    }
}

#[test]
fn the_builder_refuses_what_cannot_work() {
    let fake = FakeExchange::default();
    let cases: Vec<(Builder, &str)> = vec![
        (builder(&fake), "client authentication"),
        (builder(&fake).client_secret(""), "client secret"),
        (
            AuthCodeFlow::builder("http://oneapi.infobip.com", CLIENT_ID).pkce(),
            "plain HTTP",
        ),
        (
            AuthCodeFlow::builder("https://oneapi.infobip.com", "").pkce(),
            "client id",
        ),
        (
            AuthCodeFlow::builder("https://oneapi.infobip.com", "id with space").pkce(),
            "client id",
        ),
        (builder(&fake).pkce().redirect_uri(""), "redirect URI"),
        (
            builder(&fake).pkce().pending_lifetime(Duration::ZERO),
            "pending lifetime",
        ),
        (
            builder(&fake)
                .pkce()
                .pending_lifetime(Duration::from_secs(24 * 3600 + 1)),
            "pending lifetime",
        ),
        (builder(&fake).pkce().redirect_uri("/callback"), "absolute"),
        (
            builder(&fake)
                .pkce()
                .redirect_uri("https://app.example/cb#x"),
            "fragment",
        ),
        (
            builder(&fake).pkce().redirect_uri("http://app.example/cb"),
            "plain HTTP",
        ),
        (
            AuthCodeFlow::builder("https://oneapi.infobip.com", CLIENT_ID)
                .pkce()
                .redirect_uri(REDIRECT)
                .transport(fake.transport()),
            "scope",
        ),
        (
            AuthCodeFlow::builder("https://oneapi.infobip.com", CLIENT_ID)
                .pkce()
                .redirect_uri(REDIRECT)
                .scope("api_read"),
            "transport",
        ),
    ];
    for (builder, expected) in cases {
        let debug = format!("{builder:?}");
        let got = builder.build().err().map(|e| e.to_string());
        let got = got.unwrap_or_else(|| "built".into());
        assert!(got.contains(expected), "{debug}: {got}");
    }
    assert!(
        builder(&fake)
            .pkce()
            .redirect_uri("http://127.0.0.1:8080/cb")
            .build()
            .is_ok()
    );
    // A query may carry a secret: neither the builder's Debug nor its error repeats it.
    let leaky = builder(&fake)
        .pkce()
        .redirect_uri("https://app.example/cb?key=hunter2#x");
    let debug = format!("{leaky:?}");
    let shown = format!("{debug} {:?}", leaky.build().err());
    assert!(
        shown.contains("fragment") && !shown.contains("hunter2"),
        "{shown}"
    );
    assert!(
        builder(&fake)
            .pkce()
            .redirect_uri("com.example.app://callback")
            .build()
            .is_ok()
    );
}

// The lifetime counts from the request: a paused clock keeps it whole.
#[tokio::test(start_paused = true)]
async fn the_exchange_sends_the_seed_form_and_yields_the_account() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = connect(&flow, &fake).await?;
    let form = fake.last_form();
    let mut names: Vec<&str> = form.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "client_id",
            "client_secret",
            "code",
            "grant_type",
            "redirect_uri"
        ]
    );
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["client_secret"], SECRET);

    let account = source.account();
    assert_eq!(account.account_key, "8F0792F86035A9F4290821F1EE6BC06A");
    assert_eq!(account.user_key, "F443BCAEB8517F7159F44D0E8CFE725D");
    assert_eq!(
        (
            account.username.as_str(),
            account.email.as_str(),
            account.locale.as_str()
        ),
        ("developeruser", "developer@infobip.com", "en-US")
    );
    assert_eq!((account.roles.len(), account.groups.len()), (1, 1));
    let credential = source.credential();
    assert_eq!(
        credential.header(),
        "IBSSO 3d7908aa-7b8c-4c5a-94bf-000000000002"
    );
    assert_eq!(credential.lifetime(), Some(MINUTE));
    // Sent from the layer's first fetch without another request.
    let layer = InfobipAuthLayer::new(source);
    assert_eq!(
        send(&layer).await?,
        "IBSSO 3d7908aa-7b8c-4c5a-94bf-000000000002"
    );
    assert_eq!(fake.requests(), 1);
    Ok(())
}

#[tokio::test]
async fn pkce_exchanges_with_the_verifier_and_no_secret() -> TestResult {
    let fake = FakeExchange::default();
    let flow = public(&fake)?;
    let (_, pending) = flow.authorize_url()?;
    let verifier = pending.expose_verifier().ok_or("no verifier")?.to_owned();
    let code = fake.issue_code(Some(pkce::challenge(&verifier)));
    let callback = format!("?code={code}&state={}", pending.state());
    let grant = flow.callback(pending, &callback)?;
    flow.exchange(grant).await?;
    let form = fake.last_form();
    assert_eq!(
        form.get("code_verifier").map(String::as_str),
        Some(verifier.as_str())
    );
    assert!(!form.contains_key("client_secret"));

    // A verifier that is not the challenge's is refused by the server, typed.
    let (_, pending) = flow.authorize_url()?;
    let other = pkce::verifier(pkce::VERIFIER_LEN)?;
    let code = fake.issue_code(Some(pkce::challenge(&other)));
    let callback = format!("?code={code}&state={}", pending.state());
    let grant = flow.callback(pending, &callback)?;
    let err = flow.exchange(grant).await.err();
    assert!(
        matches!(
            err.as_ref().map(Error::kind),
            Some(ErrorKind::TokenEndpoint(api)) if api.status() == StatusCode::BAD_REQUEST
        ),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn a_public_flow_needs_the_verifier_in_the_pending_authorization() -> TestResult {
    let fake = FakeExchange::default();
    let pending = PendingAuthorization::new("xyz", None)?;
    let err = public(&fake)?
        .callback(pending, "?code=822762fa24e04975&state=xyz")
        .err();
    assert!(
        matches!(
            err.as_ref().map(Error::kind),
            Some(ErrorKind::InvalidCallback { .. })
        ),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_wrong_state_is_refused_before_any_request() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let (_, pending) = flow.authorize_url()?;
    let state = pending.state().to_owned();
    drop(pending);
    let code = fake.issue_code(None);
    let mut forged = state.clone();
    forged.replace_range(..1, if forged.starts_with('A') { "B" } else { "A" });
    for callback in [
        format!("{REDIRECT}?code={code}&state={forged}"),
        format!("{REDIRECT}?code={code}"),
        format!("{REDIRECT}?error=access_denied&state={forged}"),
        format!("{REDIRECT}?error=access_denied"),
    ] {
        // A callback uses its authorization up, so each forgery gets a copy of it.
        let pending = PendingAuthorization::new(&state, None)?;
        let err = flow.callback(pending, &callback).err();
        assert!(
            matches!(
                err.as_ref().map(Error::kind),
                Some(ErrorKind::InvalidCallback { .. })
            ),
            "{err:?}"
        );
    }
    assert_eq!(fake.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn an_expired_authorization_is_refused_before_any_request() -> TestResult {
    let fake = FakeExchange::default();
    let flow = builder(&fake)
        .client_secret(SECRET)
        .pending_lifetime(Duration::from_secs(120))
        .build()?;
    let (_, pending) = flow.authorize_url()?;
    let left = pending
        .expires_at()
        .duration_since(std::time::SystemTime::now())?;
    assert!(
        left > Duration::from_secs(119) && left <= Duration::from_secs(120),
        "{left:?}"
    );

    // The user came back after the authorization's time was up.
    let late = pending.with_expiry(std::time::SystemTime::now() - Duration::from_secs(1));
    let callback = format!("?code={}&state={}", fake.issue_code(None), late.state());
    let err = flow.callback(late, &callback).err();
    assert!(
        matches!(
            err.as_ref().map(Error::kind),
            Some(ErrorKind::AuthorizationExpired)
        ),
        "{err:?}"
    );
    assert_eq!(fake.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn reused_codes_and_wrong_secrets_are_typed_errors() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let (_, pending) = flow.authorize_url()?;
    let state = pending.state().to_owned();
    let callback = format!("?code={}&state={state}", fake.issue_code(None));
    flow.exchange(flow.callback(pending, &callback)?).await?;
    // The type system stops a second callback with `pending`; an app that kept a copy (its
    // serialized form) can still try, and the server refuses the used code.
    let copy = PendingAuthorization::new(&state, None)?;
    let reused = flow.exchange(flow.callback(copy, &callback)?).await.err();
    assert!(
        matches!(reused.as_ref().map(Error::kind), Some(ErrorKind::TokenEndpoint(api))
            if api.status() == StatusCode::BAD_REQUEST && api.text().is_some_and(|t| t.contains("used"))),
        "{reused:?}"
    );

    let wrong = builder(&fake).client_secret("not-the-secret").build()?;
    let callback = format!("?code={}&state={state}", fake.issue_code(None));
    let copy = PendingAuthorization::new(&state, None)?;
    let err = wrong.exchange(wrong.callback(copy, &callback)?).await.err();
    assert!(
        matches!(
            err.as_ref().map(Error::kind),
            Some(ErrorKind::InvalidCredentials(_))
        ),
        "{err:?}"
    );
    let shown = format!(
        "{err:?} {}",
        err.as_ref().map(ToString::to_string).unwrap_or_default()
    );
    assert!(!shown.contains("not-the-secret"), "{shown}");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_expired_code_is_a_typed_error() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let (_, pending) = flow.authorize_url()?;
    let callback = format!("?code={}&state={}", fake.issue_code(None), pending.state());
    let grant = flow.callback(pending, &callback)?;
    tokio::time::advance(MINUTE).await;
    let err = flow.exchange(grant).await.err();
    assert!(
        matches!(err.as_ref().map(Error::kind), Some(ErrorKind::TokenEndpoint(api))
            if api.status() == StatusCode::BAD_REQUEST && api.text().is_some_and(|t| t.contains("expired"))),
        "{err:?}"
    );
    Ok(())
}

// The lifetime counts from the request: a paused clock keeps it whole.
#[tokio::test(start_paused = true)]
async fn reads_token_type_and_expires_in_in_either_spelling() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let cases = [
        (r#"{"token":"t1","tokenType":"IBSSO"}"#, "IBSSO t1", 60),
        (
            r#"{"token":"t2","token_type":"IBSSO","expires_in":120}"#,
            "IBSSO t2",
            60, // never more than the documented minute
        ),
        (
            r#"{"token":"t5","token_type":"IBSSO","expires_in":60000}"#,
            "IBSSO t5",
            60, // milliseconds, or a proxy's guess
        ),
        (
            r#"{"token":"t3","tokenType":"IBSSO","expires_in":"30"}"#,
            "IBSSO t3",
            30,
        ),
        (
            r#"{"token":"t4","tokenType":"Bearer","expires_in":0}"#,
            "Bearer t4",
            60,
        ),
    ];
    for (body, header, seconds) in cases {
        fake.state().canned.push((StatusCode::OK, body.to_owned()));
        let pending = PendingAuthorization::new("xyz", None)?;
        let grant = flow.callback(pending, "?code=822762fa24e04975&state=xyz")?;
        let credential = flow.exchange(grant).await?.credential();
        assert_eq!(credential.header(), header);
        assert_eq!(
            credential.lifetime(),
            Some(Duration::from_secs(seconds)),
            "{body}"
        );
    }
    Ok(())
}

// An answer that spells the type both ways (the guide's `tokenType` beside OAuth's
// `token_type`) is still a token: each spelling alone is accepted, so both together must be.
#[tokio::test]
async fn an_answer_with_both_token_type_spellings_is_read() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    fake.state().canned.push((
        StatusCode::OK,
        r#"{"token":"t1","tokenType":"IBSSO","token_type":"IBSSO","accountKey":"8F07"}"#.to_owned(),
    ));
    let pending = PendingAuthorization::new("xyz", None)?;
    let grant = flow.callback(pending, "?code=822762fa24e04975&state=xyz")?;
    let source = flow.exchange(grant).await?;
    assert_eq!(source.credential().header(), "IBSSO t1");
    assert_eq!(source.account().account_key, "8F07");
    Ok(())
}

// JSON allows any exponent; serde_json refuses one past `f64` unless the field is read as text.
// The account beside it is kept, and such a number elsewhere is no reason to refuse the token.
#[tokio::test(start_paused = true)]
async fn an_expires_in_past_any_float_still_gives_a_token() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    for (body, seconds) in [
        (
            r#"{"token":"t1","tokenType":"IBSSO","expires_in":1e400,"accountKey":"8F07"}"#,
            60,
        ),
        (
            r#"{"token":"t2","tokenType":"IBSSO","expires_in":-1e400,"accountKey":"8F07"}"#,
            60,
        ),
        (
            r#"{"token":"t3","tokenType":"IBSSO","expires_in":1e-400,"accountKey":"8F07"}"#,
            60,
        ),
        (
            r#"{"token":"t4","tokenType":"IBSSO","expires_in":30.0e0,"accountKey":"8F07"}"#,
            30,
        ),
        (
            r#"{"token":"t5","tokenType":"IBSSO","accountKey":"8F07","userKey":1e400,"other":-1e999}"#,
            60,
        ),
    ] {
        fake.state().canned.push((StatusCode::OK, body.to_owned()));
        let pending = PendingAuthorization::new("xyz", None)?;
        let grant = flow.callback(pending, "?code=822762fa24e04975&state=xyz")?;
        let source = flow.exchange(grant).await?;
        assert_eq!(
            source.credential().lifetime(),
            Some(Duration::from_secs(seconds)),
            "{body}"
        );
        assert_eq!(source.account().account_key, "8F07", "{body}");
    }
    Ok(())
}

#[tokio::test]
async fn malformed_answers_are_typed_and_quote_no_token() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    for body in [
        r#"{"token":"s3cr3t-tok"}"#,
        r#"{"token":"s3cr3t tok","tokenType":"IBSSO"}"#,
        r#"{"token":"","tokenType":"IBSSO"}"#,
        r#"{"tokenType":"IBSSO"}"#,
        r#"{"token":"s3cr3t-tok","tokenType":"IBSSO""#,
        "s3cr3t-tok",
    ] {
        fake.state().canned.push((StatusCode::OK, body.to_owned()));
        let pending = PendingAuthorization::new("xyz", None)?;
        let grant = flow.callback(pending, "?code=822762fa24e04975&state=xyz")?;
        let err = flow.exchange(grant).await.err();
        assert!(
            matches!(
                err.as_ref().map(Error::kind),
                Some(ErrorKind::MalformedResponse { .. })
            ),
            "{body}: {err:?}"
        );
        let shown = format!(
            "{err:?} {}",
            err.as_ref().map(ToString::to_string).unwrap_or_default()
        );
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn five_minutes_of_use_refresh_the_token_without_a_failure() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = connect(&flow, &fake).await?;
    let layer = InfobipAuthLayer::new(source);
    let mut tokens = Vec::new();
    for _ in 0..60 {
        tokens.push(send(&layer).await?);
        tokio::time::advance(Duration::from_secs(5)).await;
    }
    let refreshes = fake.refreshes();
    assert!((5..=7).contains(&refreshes), "{refreshes} refreshes");
    tokens.dedup();
    // Each refresh replaced a token requests had used; the last one may not be used yet.
    let used = u32::try_from(tokens.len())?;
    assert!(used == refreshes || used == refreshes + 1, "{tokens:?}");
    let forms = fake.state().forms.clone();
    let refreshed: Vec<&str> = forms[1..].iter().map(|f| f["code"].as_str()).collect();
    let sent: Vec<&str> = tokens
        .iter()
        .map(|t| t.trim_start_matches("IBSSO "))
        .collect();
    assert_eq!(
        refreshed,
        sent[..refreshes as usize],
        "each refresh trades the token in use"
    );
    for form in &forms[1..] {
        let mut names: Vec<&str> = form.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["client_id", "client_secret", "code", "grant_type"]);
        assert_eq!(form["grant_type"], "refresh_token");
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn keep_alive_refreshes_while_idle() -> TestResult {
    let fake = FakeExchange::default();
    let flow = public(&fake)?;
    let source = connect(&flow, &fake).await?;
    let layer =
        InfobipAuthLayer::new(source).refresh_policy(RefreshPolicy::default().keep_alive(true));
    send(&layer).await?;
    for _ in 0..300 {
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert!(fake.refreshes() >= 5, "{}", fake.refreshes());
    let before = fake.requests();
    send(&layer).await?;
    assert_eq!(
        fake.requests(),
        before,
        "served without waiting for a refresh"
    );
    // A public client refreshes without a secret.
    assert!(!fake.last_form().contains_key("client_secret"));
    Ok(())
}

/// A layer whose first request comes late in the token's life (the first after an idle spell,
/// or a layer made per request) refreshes it then: without that, the cache takes the aging
/// token from its fetch past its refresh point, and the token dies unless another request comes.
#[tokio::test(start_paused = true)]
async fn a_first_request_late_in_the_tokens_life_refreshes_it() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = connect(&flow, &fake).await?;
    tokio::time::sleep(Duration::from_secs(50)).await;
    send(&InfobipAuthLayer::new(source.clone())).await?;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let header = send(&InfobipAuthLayer::new(source.clone())).await?;
    assert_eq!(fake.state().refreshes, 1);
    assert_eq!(
        header,
        format!("IBSSO {}", source.credential().expose_token())
    );
    Ok(())
}

/// A layer's first request late in the token's life whose refresh fails: the token serves, and
/// with keep-alive the refresh is tried again when the backoff ends (0.5 to 1 s), not at the
/// token's last tenth.
#[tokio::test(start_paused = true)]
async fn a_failed_refresh_of_an_aging_token_is_retried_after_the_backoff() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = connect(&flow, &fake).await?;
    let aging = format!("IBSSO {}", source.credential().expose_token());
    tokio::time::sleep(Duration::from_secs(46)).await;
    fake.state()
        .canned
        .push((StatusCode::SERVICE_UNAVAILABLE, String::new()));
    let layer = InfobipAuthLayer::new(source.clone())
        .refresh_policy(RefreshPolicy::default().keep_alive(true));
    assert_eq!(send(&layer).await?, aging);
    assert_eq!(fake.requests(), 2, "the exchange and the failed refresh");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.refreshes(), 1, "no retry when the backoff ended");
    assert_eq!(
        send(&layer).await?,
        format!("IBSSO {}", source.credential().expose_token())
    );
    Ok(())
}

/// The same without keep-alive, the token endpoint throttling (`429`, `Retry-After: 5`):
/// requests keep flowing with the aging token, and none asks for a token before the server
/// said; the first after that renews it.
#[tokio::test(start_paused = true)]
async fn a_throttled_refresh_of_an_aging_token_waits_for_retry_after() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = connect(&flow, &fake).await?;
    let aging = format!("IBSSO {}", source.credential().expose_token());
    tokio::time::sleep(Duration::from_secs(46)).await;
    {
        let mut fake = fake.state();
        fake.retry_after = Some(5);
        fake.canned.extend(
            std::iter::repeat_with(|| (StatusCode::TOO_MANY_REQUESTS, String::new())).take(100),
        );
    }
    let layer = InfobipAuthLayer::new(source.clone());
    assert_eq!(send(&layer).await?, aging);
    assert_eq!(fake.requests(), 2, "the exchange and the throttled refresh");
    for _ in 1..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(send(&layer).await?, aging);
    }
    assert_eq!(
        fake.requests(),
        2,
        "a token request before Retry-After ended"
    );
    fake.state().canned.clear();
    tokio::time::sleep(Duration::from_millis(100)).await;
    send(&layer).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.refreshes(), 1);
    assert_ne!(send(&layer).await?, aging);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_lapsed_token_requires_reauthorization_without_a_request() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = connect(&flow, &fake).await?;
    let layer = InfobipAuthLayer::new(source.clone());
    send(&layer).await?;
    tokio::time::advance(MINUTE + Duration::from_secs(1)).await;
    let before = fake.requests();
    for _ in 0..3 {
        let err = send(&layer).await.err().ok_or("a lapsed token was sent")?;
        assert_eq!(
            kind_of(&err),
            Some(&ErrorKind::ReauthorizationRequired),
            "{err}"
        );
        tokio::time::advance(Duration::from_secs(90)).await;
    }
    assert_eq!(fake.requests(), before);
    assert!(matches!(
        source
            .fetch(Some(&source.credential()))
            .await
            .map_err(|e| e.kind().clone()),
        Err(ErrorKind::ReauthorizationRequired)
    ));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_refused_refresh_requires_reauthorization_once() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = connect(&flow, &fake).await?;
    fake.state().tokens.clear(); // revoked behind our back
    let current = source.credential();
    let err = source.fetch(Some(&current)).await.err();
    assert_reauthorization_required(err.as_ref());
    let cause = err
        .as_ref()
        .and_then(std::error::Error::source)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(cause.contains("401"), "{cause}");
    let before = fake.requests();
    assert!(source.fetch(Some(&current)).await.is_err());
    assert!(source.fetch(None).await.is_err());
    assert_eq!(
        fake.requests(),
        before,
        "a refused token is not tried again"
    );
    Ok(())
}

/// A refresh ahead that Infobip refuses ends the token for the layer too: no request carries
/// it after that (each would only meet a `401`).
#[tokio::test(start_paused = true)]
async fn a_refused_refresh_ahead_stops_the_layer_sending_the_token() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let layer = InfobipAuthLayer::new(connect(&flow, &fake).await?);
    send(&layer).await?;
    fake.state().tokens.clear(); // revoked behind our back
    tokio::time::sleep(Duration::from_secs(50)).await;
    // Goes out at once while the refresh ahead runs, which Infobip refuses.
    send(&layer).await?;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(fake.refreshes(), 0);
    assert_eq!(fake.requests(), 2, "the exchange and the refused refresh");
    let err = send(&layer).await.err().ok_or("sent the refused token")?;
    assert_eq!(kind_of(&err), Some(&ErrorKind::ReauthorizationRequired));
    Ok(())
}

/// A refresh one layer had refused ends the token for another layer sharing the source too,
/// once that one asks to renew it: it stops sending the token rather than serving it out its
/// believed life, each request meeting a `401`.
#[tokio::test(start_paused = true)]
async fn a_refusal_met_by_one_layer_ends_the_token_for_another() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = SharedTokenSource::from(connect(&flow, &fake).await?);
    let (a, b) = (
        InfobipAuthLayer::new(source.clone()),
        InfobipAuthLayer::new(source),
    );
    send(&a).await?;
    send(&b).await?;
    fake.state().tokens.clear(); // revoked behind our back
    tokio::time::sleep(Duration::from_secs(50)).await;
    // Each goes out at once while its layer renews ahead: `a`'s renewal is refused, `b`'s
    // finds the token ended.
    send(&a).await?;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    send(&b).await?;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(fake.requests(), 2, "the exchange and the refused refresh");
    for layer in [&a, &b] {
        let err = send(layer).await.err().ok_or("sent the refused token")?;
        assert_eq!(kind_of(&err), Some(&ErrorKind::ReauthorizationRequired));
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_busy_token_endpoint_is_transient_and_keeps_the_token() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = connect(&flow, &fake).await?;
    fake.state()
        .canned
        .push((StatusCode::SERVICE_UNAVAILABLE, String::new()));
    let current = source.credential();
    let err = source.fetch(Some(&current)).await.err();
    assert!(err.as_ref().is_some_and(Error::is_transient), "{err:?}");
    let fresh = source.fetch(Some(&current)).await?;
    assert_ne!(fresh.expose_token(), current.expose_token());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_during_a_refresh_share_one() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = connect(&flow, &fake).await?;
    let layer = InfobipAuthLayer::new(source);
    let first = send(&layer).await?;
    fake.state().delay = Duration::from_secs(2);
    tokio::time::advance(Duration::from_secs(56)).await; // past the point where requests wait
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let layer = layer.clone();
            tokio::spawn(async move { send(&layer).await })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await??);
    }
    assert_eq!(fake.refreshes(), 1);
    seen.dedup();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_ne!(seen[0], first);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn two_layers_sharing_one_source_refresh_once() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = SharedTokenSource::from(connect(&flow, &fake).await?);
    let (a, b) = (
        InfobipAuthLayer::new(source.clone()),
        InfobipAuthLayer::new(source),
    );
    send(&a).await?;
    send(&b).await?;
    tokio::time::advance(Duration::from_secs(56)).await;
    let (first, second) = tokio::join!(send(&a), send(&b));
    assert_eq!(first?, second?);
    assert_eq!(fake.refreshes(), 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_store_keeps_each_token_and_resume_picks_it_up() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let store = MemoryStore::new();
    let source = connect(&flow, &fake).await?;
    source.save_to(store.clone()).await?;
    let saved = store.get().ok_or("nothing saved")?;
    assert_eq!(saved.expose_token(), source.credential().expose_token());
    assert_eq!(saved.account(), &source.account());

    let refreshed = source.fetch(Some(&source.credential())).await?;
    let saved = store.get().ok_or("nothing saved")?;
    assert_eq!(saved.expose_token(), refreshed.expose_token());

    // "Restart": a new source from the store serves the same token, then refreshes it.
    let resumed = flow.resume(store.clone()).await?;
    assert_eq!(resumed.account().username, "developeruser");
    let layer = InfobipAuthLayer::new(resumed.clone());
    assert_eq!(send(&layer).await?, refreshed.header().to_str()?);
    let again = resumed.fetch(Some(&refreshed)).await?;
    assert_eq!(
        store.get().map(|t| t.expose_token().to_owned()),
        Some(again.expose_token().to_owned())
    );
    Ok(())
}

/// A stored token said to live a year (written by a build that believed a long `expires_in`,
/// or under a clock set back) is resumed with at most the documented minute, so it is refreshed
/// while it can be.
#[tokio::test]
async fn a_stored_token_is_never_believed_to_outlive_the_documented_minute() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let store = MemoryStore::new();
    let year = Duration::from_secs(366 * 24 * 3600);
    let token = StoredToken::new(
        "IBSSO",
        "3d7908aa",
        SystemTime::now() + year,
        Account::default(),
    );
    store.save(&token).await?;
    let resumed = flow.resume(store).await?;
    let lifetime = resumed.credential().lifetime().ok_or("no lifetime")?;
    assert!(lifetime <= Duration::from_secs(60), "{lifetime:?}");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_refused_refresh_reaches_the_store_so_resume_requires_reauthorization() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let store = MemoryStore::new();
    let source = connect(&flow, &fake).await?;
    source.save_to(store.clone()).await?;
    fake.state().tokens.clear(); // revoked behind our back
    assert!(source.fetch(Some(&source.credential())).await.is_err());
    // The refusal is reported before the store has it: the save ends in a task of its own,
    // which runs before the paused clock moves.
    tokio::time::sleep(Duration::from_millis(1)).await;
    // "Restart": the stored token is the refused one, so resuming asks for a new authorization.
    let err = flow.resume(store).await.err();
    assert_reauthorization_required(err.as_ref());
    Ok(())
}

#[tokio::test]
async fn resuming_an_expired_token_requires_reauthorization() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let store = MemoryStore::new();
    let past = std::time::SystemTime::now() - Duration::from_secs(1);
    store
        .save(&StoredToken::new("IBSSO", "old", past, Account::default()))
        .await?;
    let err = flow.resume(store).await.err();
    assert_reauthorization_required(err.as_ref());
    Ok(())
}

/// A [`MemoryStore`] that fails to save or load while `failing` is set, as a database that is
/// down would.
#[derive(Clone, Debug, Default)]
struct FlakyStore {
    saved: MemoryStore,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl FlakyStore {
    fn failing() -> Self {
        let store = Self::default();
        store.fail(true);
        store
    }

    fn fail(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::Relaxed);
    }

    fn check(&self) -> Result<(), BoxError> {
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("the database is down".into());
        }
        Ok(())
    }
}

impl TokenStore for FlakyStore {
    async fn save(&self, token: &StoredToken) -> Result<(), BoxError> {
        self.check()?;
        self.saved.save(token).await
    }

    async fn load(&self) -> Result<Option<StoredToken>, BoxError> {
        self.check()?;
        self.saved.load().await
    }
}

/// The error is the store's failure, with the store's own error as its source.
#[track_caller]
fn assert_store_failed(err: Option<&Error>) {
    use std::error::Error as _;
    assert!(
        matches!(err.map(Error::kind), Some(ErrorKind::Store)),
        "{err:?}"
    );
    let cause = err.and_then(|e| e.source()).map(ToString::to_string);
    assert_eq!(cause.as_deref(), Some("the database is down"));
}

#[tokio::test(start_paused = true)]
async fn a_first_save_that_fails_is_returned_and_the_token_kept() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = connect(&flow, &fake).await?;
    let store = FlakyStore::failing();
    let err = source.save_to(store.clone()).await.err();
    assert_store_failed(err.as_ref());
    assert_store_failed(source.store_error().as_ref());
    // The grant is not lost: the token still authenticates requests.
    let layer = InfobipAuthLayer::new(source.clone());
    assert_eq!(send(&layer).await?, source.credential().header().to_str()?);
    // Retried by hand once the store is back; the store also stayed attached.
    store.fail(false);
    source.save_to(store.clone()).await?;
    assert!(source.store_error().is_none());
    assert_eq!(
        store.saved.get().map(|t| t.expose_token().to_owned()),
        Some(source.credential().expose_token().to_owned())
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_refresh_whose_save_fails_serves_the_new_token_and_says_so() -> TestResult {
    #[cfg(feature = "tracing")]
    let capture = crate::test_helpers::CaptureTracing::start();
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = connect(&flow, &fake).await?;
    let store = FlakyStore::default();
    source.save_to(store.clone()).await?;
    let first = source.credential();

    store.fail(true);
    let fresh = source.fetch(Some(&first)).await?;
    assert_ne!(fresh.expose_token(), first.expose_token());
    assert_eq!(source.credential().expose_token(), fresh.expose_token());
    assert_store_failed(source.store_error().as_ref());
    assert_eq!(
        store.saved.get().map(|t| t.expose_token().to_owned()),
        Some(first.expose_token().to_owned()),
        "the store still holds the old token"
    );
    #[cfg(feature = "tracing")]
    {
        let text = capture.text();
        assert!(text.contains("saving the Exchange token failed"), "{text}");
        assert!(!text.contains(fresh.expose_token()), "{text}");
    }

    // The next refresh saves again: the store catches up and the error clears.
    store.fail(false);
    let newer = source.fetch(Some(&fresh)).await?;
    assert!(source.store_error().is_none());
    assert_eq!(
        store.saved.get().map(|t| t.expose_token().to_owned()),
        Some(newer.expose_token().to_owned())
    );
    Ok(())
}

/// A [`MemoryStore`] whose first save waits, once it has begun, until the test releases it.
#[derive(Clone, Debug, Default)]
struct GatedStore {
    saved: MemoryStore,
    held: Arc<std::sync::atomic::AtomicBool>,
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl TokenStore for GatedStore {
    async fn save(&self, token: &StoredToken) -> Result<(), BoxError> {
        if !self.held.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
        self.saved.save(token).await
    }

    async fn load(&self) -> Result<Option<StoredToken>, BoxError> {
        self.saved.load().await
    }
}

/// A refresh while `save_to` is still saving the token it started with: the store ends with
/// the newest token, not the one the slow first save carried.
#[tokio::test(start_paused = true)]
async fn a_refresh_during_save_to_leaves_the_newest_token_stored() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = connect(&flow, &fake).await?;
    let first = source.credential();
    let store = GatedStore::default();
    let saving = tokio::spawn({
        let (source, store) = (source.clone(), store.clone());
        async move { source.save_to(store).await }
    });
    store.entered.notified().await;
    let refreshing = tokio::spawn({
        let source = source.clone();
        async move { source.fetch(Some(&first)).await }
    });
    // On the paused clock, this returns once every other task waits.
    tokio::time::sleep(Duration::from_secs(1)).await;
    store.release.notify_one();
    saving.await??;
    let fresh = refreshing.await??;
    assert_eq!(
        store.saved.get().map(|t| t.expose_token().to_owned()),
        Some(fresh.expose_token().to_owned())
    );
    Ok(())
}

/// A [`FlakyStore`] whose saves take `delay` each, as a remote database would.
#[derive(Clone, Debug, Default)]
struct SlowStore {
    flaky: FlakyStore,
    delay: Arc<Mutex<Duration>>,
}

impl SlowStore {
    fn slow(&self, delay: Duration) {
        *lock(&self.delay) = delay;
    }

    fn saved_token(&self) -> Option<String> {
        self.flaky.saved.get().map(|t| t.expose_token().to_owned())
    }
}

impl TokenStore for SlowStore {
    async fn save(&self, token: &StoredToken) -> Result<(), BoxError> {
        let delay = *lock(&self.delay);
        tokio::time::sleep(delay).await;
        self.flaky.save(token).await
    }

    async fn load(&self) -> Result<Option<StoredToken>, BoxError> {
        self.flaky.load().await
    }
}

/// A refused refresh reaches the layer at once, not once a slow store has saved the refused
/// token: a request in between would carry it and only meet a `401`. The save still ends, and
/// its failure still reaches `store_error`.
#[tokio::test(start_paused = true)]
async fn a_refused_refresh_stops_the_layer_before_a_slow_store_has_saved_it() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = connect(&flow, &fake).await?;
    let store = SlowStore::default();
    source.save_to(store.clone()).await?;
    let layer = InfobipAuthLayer::new(source.clone());
    let refused = send(&layer).await?;
    store.slow(Duration::from_secs(5));
    store.flaky.fail(true);
    fake.state().tokens.clear(); // revoked behind our back
    tokio::time::sleep(Duration::from_secs(50)).await;
    // Goes out at once while the refresh ahead runs, which Infobip refuses.
    send(&layer).await?;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(fake.requests(), 2, "the exchange and the refused refresh");
    assert_eq!(
        store.saved_token(),
        Some(refused.trim_start_matches("IBSSO ").to_owned())
    );
    assert!(source.store_error().is_none(), "the save has not ended yet");

    let err = send(&layer)
        .await
        .err()
        .ok_or("sent the refused token during the save")?;
    assert_eq!(kind_of(&err), Some(&ErrorKind::ReauthorizationRequired));

    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_store_failed(source.store_error().as_ref());
    // Retried by hand, the store learns the token is dead: a restart asks for a new authorization.
    store.flaky.fail(false);
    source.save_to(store.clone()).await?;
    assert!(source.store_error().is_none());
    assert_reauthorization_required(flow.resume(store).await.err().as_ref());
    Ok(())
}

/// `save_to` while a refused token is being saved in the background waits for that save, so
/// the older store's outcome never overwrites the newer one's in `store_error`.
#[tokio::test(start_paused = true)]
async fn save_to_during_a_refused_tokens_save_keeps_the_newer_outcome() -> TestResult {
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let source = connect(&flow, &fake).await?;
    let old = SlowStore::default();
    source.save_to(old.clone()).await?;
    old.slow(Duration::from_secs(5));
    fake.state().tokens.clear(); // revoked behind our back
    let err = source.fetch(Some(&source.credential())).await.err();
    assert_reauthorization_required(err.as_ref());
    // The old store saves (and succeeds) after the new one was handed over, unless it waits.
    let new = FlakyStore::failing();
    let saved = source.save_to(new).await.err();
    assert_store_failed(saved.as_ref());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_store_failed(source.store_error().as_ref());
    assert_reauthorization_required(flow.resume(old).await.err().as_ref());
    Ok(())
}

#[tokio::test]
async fn a_store_that_cannot_load_is_not_a_missing_token() -> TestResult {
    let flow = confidential(&FakeExchange::default())?;
    let err = flow.resume(FlakyStore::failing()).await.err();
    assert_store_failed(err.as_ref());
    Ok(())
}

#[tokio::test]
async fn the_token_goes_to_infobip_hosts_or_to_the_base_it_came_from() -> TestResult {
    let fake = FakeExchange::default();
    let source = connect(&confidential(&fake)?, &fake).await?;
    assert!(source.base_url().is_none());
    let local = AuthCodeFlow::builder("http://127.0.0.1:9", CLIENT_ID)
        .client_secret(SECRET)
        .redirect_uri(REDIRECT)
        .scope("api_read")
        .transport(fake.transport())
        .build()?;
    let resumed = {
        let store = MemoryStore::new();
        store
            .save(&StoredToken::from_credential(&source.credential()).ok_or("no expiry")?)
            .await?;
        local.resume(store).await?
    };
    assert_eq!(
        resumed.base_url().map(ToString::to_string).as_deref(),
        Some("http://127.0.0.1:9")
    );
    Ok(())
}

#[tokio::test]
async fn no_secret_reaches_debug_or_errors() -> TestResult {
    let fake = FakeExchange::default();
    let flow = public(&fake)?;
    let confidential = confidential(&fake)?;
    let (url, pending) = flow.authorize_url()?;
    let verifier = pending.expose_verifier().ok_or("no verifier")?.to_owned();
    let state = pending.state().to_owned();
    let pending_debug = format!("{pending:?}");
    let code = fake.issue_code(Some(pkce::challenge(&verifier)));
    let callback = format!("?code={code}&state={state}");
    let grant = flow.callback(pending, &callback)?;
    let grant_debug = format!("{grant:?}");
    let store = MemoryStore::new();
    let source = flow.exchange(grant).await?;
    source.save_to(store.clone()).await?;
    let token = source.credential().expose_token().to_owned();
    let refused = confidential
        .callback(
            PendingAuthorization::new(&state, Some(&verifier))?,
            &format!("?code={code}&state=other"),
        )
        .err()
        .map(|e| format!("{e} {e:?}"));
    let shown = format!(
        "{flow:?} {confidential:?} {pending_debug} {grant_debug} {source:?} {store:?} {:?} {refused:?} {}",
        store.get(),
        url.query()
            .map(|q| q.contains(&verifier))
            .unwrap_or_default()
    );
    for secret in [
        SECRET,
        verifier.as_str(),
        code.as_str(),
        token.as_str(),
        state.as_str(),
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("developeruser"), "{shown}");
    Ok(())
}

#[test]
fn futures_and_handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<AuthCode>();
    send_sync::<AuthCodeFlow>();
    send_sync::<PendingAuthorization>();
    send_sync::<AuthorizationGrant>();
    send_sync::<MemoryStore>();
    fn is_send<T: Send>(_: &T) {}
    let fake = FakeExchange::default();
    if let Ok(flow) = confidential(&fake) {
        if let Ok(pending) = PendingAuthorization::new("xyz", None)
            && let Ok(grant) = flow.callback(pending, "?code=822762fa24e04975&state=xyz")
        {
            is_send(&flow.exchange(grant));
        }
        is_send(&flow.resume(MemoryStore::new()));
    }
}

#[cfg(feature = "tracing")]
#[tokio::test(start_paused = true)]
async fn no_secret_reaches_tracing() -> TestResult {
    let capture = crate::test_helpers::CaptureTracing::start();
    let fake = FakeExchange::default();
    let flow = public(&fake)?;
    let (_, pending) = flow.authorize_url()?;
    let verifier = pending.expose_verifier().ok_or("no verifier")?.to_owned();
    let code = fake.issue_code(Some(pkce::challenge(&verifier)));
    let state = pending.state().to_owned();
    let forged = PendingAuthorization::new(&state, Some(&verifier))?;
    let _ = flow.callback(forged, &format!("?code={code}&state=forged"));
    let grant = flow.callback(pending, &format!("?code={code}&state={state}"))?;
    let source = flow.exchange(grant).await?;
    let mut tokens = vec![source.credential().expose_token().to_owned()];
    let layer = InfobipAuthLayer::new(source.clone());
    for _ in 0..20 {
        send(&layer).await?;
        tokio::time::advance(Duration::from_secs(5)).await;
    }
    tokens.push(source.credential().expose_token().to_owned());
    fake.state().tokens.clear();
    let _ = source.fetch(Some(&source.credential())).await;
    let text = capture.text();
    assert!(text.contains("exchanged"), "events were captured: {text}");
    assert!(text.contains("refused"), "{text}");
    assert!(text.contains("source=\"auth_code\""), "{text}");
    for secret in [SECRET, &verifier, &code, &state]
        .into_iter()
        .chain(tokens.iter().map(String::as_str))
    {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    Ok(())
}

#[tokio::test]
async fn optional_roles_and_groups_may_be_null() -> TestResult {
    // Seed 002 lines 70-71: `roles` and `groups` are [Optional]; a JSON answer may carry them
    // as `null`. The (single-use) code was consumed: refusing the answer loses the connection.
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let body = serde_json::json!({
        "token": "3d7908aa-7b8c-4c5a-94bf-5cdeef18947b", "tokenType": "IBSSO",
        "accountKey": "8F0792F86035A9F4290821F1EE6BC06A", "userKey": "F443BCAEB8517F7159F44D0E8CFE725D",
        "username": "developeruser", "email": "developer@infobip.com", "locale": "en-US",
        "roles": null, "groups": null,
    });
    fake.state().canned.push((StatusCode::OK, body.to_string()));
    let source = connect(&flow, &fake).await?;
    assert_eq!(source.account().username, "developeruser");
    assert!(source.account().roles.is_empty());
    Ok(())
}

#[tokio::test]
async fn an_account_field_of_another_shape_is_dropped_not_fatal() -> TestResult {
    // Seed 002: `roles` and `groups` are [Optional], and the rest only say who approved. The
    // (single-use) code was consumed: refusing the answer for them loses the connection. A
    // number where text or an id belongs is kept as its digits; anything else is dropped.
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    let body = serde_json::json!({
        "token": "3d7908aa-7b8c-4c5a-94bf-5cdeef18947b", "tokenType": "IBSSO",
        "accountKey": 8079, "userKey": {"hex": "F443"}, "username": "developeruser",
        "email": false, "locale": ["en-US"],
        "roles": [{"id": "79", "name": "Manager"}, {"id": "x", "name": "Broken"}, {"id": 81}, 7],
        "groups": {"id": 54004, "name": "Group1"},
    });
    fake.state().canned.push((StatusCode::OK, body.to_string()));
    let source = connect(&flow, &fake).await?;
    let account = source.account();
    assert_eq!(account.account_key, "8079");
    assert_eq!(account.username, "developeruser");
    assert_eq!(
        (
            account.user_key.as_str(),
            account.email.as_str(),
            account.locale.as_str()
        ),
        ("", "", "")
    );
    let roles: Vec<_> = account
        .roles
        .iter()
        .map(|r| (r.id, r.name.as_str()))
        .collect();
    assert_eq!(roles, [(79, "Manager"), (81, "")]);
    assert!(account.groups.is_empty());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn expiry_counts_from_the_request_not_the_answer() -> TestResult {
    // Seed 002 line 74: "Tokens expire one minute after creation". The server creates the
    // token when it gets the request; an answer that arrives 20 s later leaves 40 s.
    let fake = FakeExchange::default();
    let flow = confidential(&fake)?;
    fake.state().delay = Duration::from_secs(20);
    let sent = Instant::now();
    let source = connect(&flow, &fake).await?;
    let expiry = source.credential().expiry().ok_or("no expiry")?;
    assert!(
        expiry <= sent + MINUTE,
        "believed alive {:?} past its death",
        expiry - (sent + MINUTE)
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_slow_token_endpoint_does_not_lose_the_connection() -> TestResult {
    // The server creates each token when the request arrives; its answer takes 20 s to come
    // back (well inside the transport's 30 s timeout).
    let fake = FakeExchange::default();
    let slow = {
        let fake = fake.clone();
        Transport::new(service_fn(move |req: Request<Full<Bytes>>| {
            let fake = fake.clone();
            async move {
                let (status, body) = fake.answer(req).await;
                tokio::time::sleep(Duration::from_secs(20)).await;
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = status;
                Ok::<_, std::convert::Infallible>(response)
            }
        }))
    };
    let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", CLIENT_ID)
        .redirect_uri(REDIRECT)
        .scope("api_read")
        .client_secret(SECRET)
        .transport(slow)
        .build()?;
    let source = connect(&flow, &fake).await?;
    let layer = InfobipAuthLayer::new(source);
    for second in (0..180).step_by(5) {
        if let Err(err) = send(&layer).await {
            panic!("at {second} s: {:?}", kind_of(&err));
        }
        tokio::time::advance(Duration::from_secs(5)).await;
    }
    Ok(())
}

/// The error, if any, asks the user to authorize the app again.
#[track_caller]
fn assert_reauthorization_required(err: Option<&Error>) {
    assert!(
        matches!(
            err.map(Error::kind),
            Some(ErrorKind::ReauthorizationRequired)
        ),
        "{err:?}"
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_token_answer_is_a_credential_or_a_typed_error(
            status in prop_oneof![Just(200u16), Just(400), Just(401), Just(503)],
            token in prop_oneof!["[!-~]{8,24}", ".{0,24}"],
            token_type in prop_oneof![Just(None), Just(Some("IBSSO".to_owned())), ".{0,8}".prop_map(Some)],
            expires_in in prop_oneof![
                Just(serde_json::Value::Null),
                any::<f64>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<u64>().prop_map(serde_json::Value::from),
                "[-+ ]?[0-9]{0,30}(\\.[0-9]{0,3})?(e[-+]?[0-9]{1,4})?".prop_map(serde_json::Value::from),
            ],
            account in prop_oneof![Just(serde_json::Value::Null), ".{0,8}".prop_map(serde_json::Value::from)],
            garbage in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        ) {
            let body = match garbage {
                Some(bytes) => bytes,
                None => serde_json::json!({
                    "token": token, "tokenType": token_type, "expires_in": expires_in,
                    "username": account, "accountKey": account,
                })
                .to_string()
                .into_bytes(),
            };
            let answer = Response::builder()
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
                .body(Bytes::from(body))
                .unwrap_or_default();
            match parse_token(&answer, None) {
                Ok(credential) => {
                    prop_assert!(credential.lifetime().is_some_and(|l| l >= Duration::from_secs(1)
                        && l <= Duration::from_secs(366 * 24 * 3600)));
                    // A token of a few characters may occur in the redacted text by chance.
                    let token = credential.expose_token();
                    prop_assert!(token.len() < 8 || !format!("{credential:?}").contains(token), "{:?}", credential);
                }
                Err(err) => {
                    let shown = format!("{err} {err:?}");
                    prop_assert!(token.len() < 8 || !shown.contains(&token), "{}", shown);
                }
            }
        }
    }
}

/// Without a store nothing is saved, so nothing can fall behind: a refused refresh whose
/// runtime ends before the (empty) save of the dead token runs leaves `store_error` empty, as
/// its docs say for a source with no store.
#[test]
fn without_a_store_a_save_cut_off_reports_nothing() -> TestResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let source = runtime.block_on(async {
        let fake = FakeExchange::default();
        let flow = confidential(&fake)?;
        let source = connect(&flow, &fake).await?;
        fake.state().tokens.clear(); // revoked behind our back
        let current = source.credential();
        assert_reauthorization_required(source.fetch(Some(&current)).await.err().as_ref());
        Ok::<_, BoxError>(source)
    })?;
    // The save's task has not run: the runtime ends here.
    drop(runtime);
    assert!(source.store_error().is_none(), "{:?}", source.store_error());
    Ok(())
}
