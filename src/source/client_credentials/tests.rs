use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use tokio::time::Instant;
use tower::{Layer as _, Service, ServiceExt as _};

use super::*;
use crate::test_helpers::{FakeEndpoint, FakeReply, Seen, infobip_error, reply};
use crate::{BoxError, ErrorKind, InfobipAuthLayer};

const BASE: &str = "https://xyz12.api.infobip.com";
const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the fake authorization server below knows.
#[derive(Default)]
struct Tokens {
    issued: u32,
    /// Live tokens and when each dies.
    live: HashMap<String, Instant>,
    /// Answers given instead of a token, in order.
    failures: VecDeque<FakeReply>,
    /// When each token request came.
    requests: Vec<Instant>,
    /// Resource requests refused with `401`.
    unauthorized: u32,
}

/// A fake Infobip that grants `token-1`, `token-2`, … living one hour to the client `client` /
/// `s3cret`, and lets live tokens through resource endpoints (answering with the token).
#[derive(Clone)]
struct Infobip {
    fake: FakeEndpoint,
    state: Arc<Mutex<Tokens>>,
}

impl Infobip {
    fn new() -> Self {
        let state = Arc::new(Mutex::new(Tokens::default()));
        let shared = Arc::clone(&state);
        let fake = FakeEndpoint::new(move |seen: &Seen| {
            let mut tokens = lock(&shared);
            let now = Instant::now();
            if seen.path == "/auth/1/oauth2/token" {
                tokens.requests.push(now);
                if let Some(failure) = tokens.failures.pop_front() {
                    return failure;
                }
                let form = seen.form();
                let field = |name: &str| {
                    form.iter()
                        .find(|(key, _)| key == name)
                        .map(|(_, value)| value.as_str())
                };
                if field("client_id") != Some("client") || field("client_secret") != Some("s3cret")
                {
                    return infobip_error(401, "UNAUTHORIZED", "Invalid login details");
                }
                tokens.issued += 1;
                let token = format!("token-{}", tokens.issued);
                tokens.live.insert(token.clone(), now + 60 * MINUTE);
                let body = serde_json::json!({
                    "access_token": token, "expires_in": 3600, "token_type": "Bearer"
                });
                return reply(200, body.to_string());
            }
            let token = seen
                .header("authorization")
                .strip_prefix("Bearer ")
                .unwrap_or_default()
                .to_owned();
            match tokens.live.get(&token) {
                Some(dies) if now < *dies => reply(200, token),
                _ => {
                    tokens.unauthorized += 1;
                    infobip_error(401, "UNAUTHORIZED", "Invalid login details")
                }
            }
        });
        Self { fake, state }
    }

    fn source(&self, secret: &str) -> Result<ClientCredentials, ConfigError> {
        ClientCredentials::builder(BASE, "client", secret)
            .transport(self.fake.transport())
            .build()
    }

    fn fail_next(&self, answers: impl IntoIterator<Item = FakeReply>) {
        lock(&self.state).failures.extend(answers);
    }

    fn revoke_all(&self) {
        lock(&self.state).live.clear();
    }

    fn token_requests(&self) -> Vec<Instant> {
        lock(&self.state).requests.clone()
    }

    fn unauthorized(&self) -> u32 {
        lock(&self.state).unauthorized
    }
}

fn resource() -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::default());
    *request.uri_mut() =
        http::Uri::from_static("https://xyz12.api.infobip.com/sms/1/inbox/reports");
    request
}

/// Sends one request through `service`; answers `(status, body)`.
async fn send<S>(service: &mut S) -> Result<(StatusCode, String), BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = http::Response<Full<Bytes>>, Error = BoxError>,
{
    let response = service.ready().await?.call(resource()).await?;
    read(response).await
}

/// `(status, body)` of a response.
async fn read(response: http::Response<Full<Bytes>>) -> Result<(StatusCode, String), BoxError> {
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A source over a fake whose token endpoint answers `body` with `200`.
fn granting(body: &'static str) -> Result<(FakeEndpoint, ClientCredentials), ConfigError> {
    let fake = FakeEndpoint::new(move |_| reply(200, body));
    let source = ClientCredentials::builder(BASE, "client", "s3cret")
        .transport(fake.transport())
        .build()?;
    Ok((fake, source))
}

/// Our error inside a boxed service error.
fn ours(err: &BoxError) -> Result<&Error, BoxError> {
    Error::find(&**err).ok_or_else(|| format!("not an infobip_auth::Error: {err}").into())
}

// The lifetime counts from the request: a paused clock keeps it whole.
#[tokio::test(start_paused = true)]
async fn posts_the_form_and_sends_bearer() -> Result<(), BoxError> {
    let (fake, source) =
        granting(r#"{"access_token":"eyJraWQ.x","expires_in":3600,"token_type":"Bearer"}"#)?;
    let credential = source.fetch(None).await?;
    assert_eq!(credential.header(), "Bearer eyJraWQ.x");
    assert!(credential.header().is_sensitive());
    assert_eq!(credential.lifetime(), Some(60 * MINUTE));
    assert_eq!(credential.idle_limit(), None);
    assert!(credential.scopes().is_none());

    let seen = fake.seen();
    assert_eq!(
        fake.calls(),
        [("POST".to_owned(), "/auth/1/oauth2/token".to_owned())]
    );
    assert_eq!(
        seen[0].header("content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(seen[0].header("accept"), "application/json");
    let form: Vec<(String, String)> = seen[0].form();
    let expected = [
        ("client_id", "client"),
        ("client_secret", "s3cret"),
        ("grant_type", "client_credentials"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    assert_eq!(form, expected);
    Ok(())
}

#[tokio::test]
async fn form_values_are_percent_encoded() -> Result<(), BoxError> {
    let fake = FakeEndpoint::new(|_| reply(200, r#"{"access_token":"t","expires_in":60}"#));
    let source = ClientCredentials::builder(BASE, "id with space", "p&ss=w+rd%")
        .transport(fake.transport())
        .build()?;
    source.fetch(None).await?;
    let body = String::from_utf8_lossy(&fake.seen()[0].body).into_owned();
    assert!(body.contains("client_secret=p%26ss%3Dw%2Brd%25"), "{body}");
    let form = fake.seen()[0].form();
    assert_eq!(form[0].1, "id with space");
    assert_eq!(form[1].1, "p&ss=w+rd%");
    Ok(())
}

// The lifetime counts from the request: a paused clock keeps it whole.
#[tokio::test(start_paused = true)]
async fn expires_in_is_read_as_a_number_or_a_string() -> Result<(), BoxError> {
    for body in [
        r#"{"access_token":"t","expires_in":3600}"#,
        r#"{"access_token":"t","expires_in":"3600"}"#,
        r#"{"access_token":"t","expires_in":" 3600 "}"#,
        r#"{"access_token":"t","expires_in":3600.0}"#,
    ] {
        let (_, source) = granting(body)?;
        let credential = source.fetch(None).await?;
        assert_eq!(credential.lifetime(), Some(60 * MINUTE), "{body}");
    }
    Ok(())
}

// JSON allows any exponent; serde_json refuses one past `f64` before `lifetime` sees it.
#[tokio::test(start_paused = true)]
async fn an_expires_in_past_any_float_still_gives_a_token() -> Result<(), BoxError> {
    for body in [
        r#"{"access_token":"t","expires_in":1e400}"#,
        r#"{"access_token":"t","expires_in":-1e400}"#,
    ] {
        let (_, source) = granting(body)?;
        let lifetime = source.fetch(None).await?.lifetime();
        assert!(
            lifetime.is_some_and(|l| (MIN_LIFETIME..=MAX_LIFETIME).contains(&l)),
            "{body}: {lifetime:?}"
        );
    }
    Ok(())
}

#[test]
fn an_expires_in_that_cannot_be_right_gets_a_safe_lifetime() {
    use serde_json::json;
    let cases = [
        (None, DEFAULT_LIFETIME),
        (Some(json!(null)), DEFAULT_LIFETIME),
        (Some(json!(0)), DEFAULT_LIFETIME),
        (Some(json!("0")), DEFAULT_LIFETIME),
        (Some(json!(-5)), DEFAULT_LIFETIME),
        (Some(json!("-5")), DEFAULT_LIFETIME),
        (Some(json!("soon")), DEFAULT_LIFETIME),
        (Some(json!("")), DEFAULT_LIFETIME),
        (Some(json!("NaN")), DEFAULT_LIFETIME),
        (Some(json!("inf")), DEFAULT_LIFETIME),
        (Some(json!(true)), DEFAULT_LIFETIME),
        (Some(json!({"seconds": 60})), DEFAULT_LIFETIME),
        (Some(json!(3)), MIN_LIFETIME),
        (Some(json!("0.5")), MIN_LIFETIME),
        (Some(json!(1e300)), MAX_LIFETIME),
        (Some(json!(u64::MAX)), MAX_LIFETIME),
        (Some(json!("999999999999")), MAX_LIFETIME),
        (Some(json!(59)), Duration::from_secs(59)),
        (Some(json!("86400")), MAX_LIFETIME),
        // Past `f64`, quoted or not: the longest lifetime, and none for a negative one.
        (Some(json!("1e400")), MAX_LIFETIME),
        (Some(json!(" 1E400 ")), MAX_LIFETIME),
        (Some(json!("-1e400")), DEFAULT_LIFETIME),
        (Some(json!("infinity")), DEFAULT_LIFETIME),
    ];
    for (value, expected) in cases {
        assert_eq!(lifetime(value.as_ref()), expected, "{value:?}");
    }
}

#[tokio::test]
async fn token_type_bearer_is_read_in_any_case_and_missing_means_bearer() -> Result<(), BoxError> {
    for body in [
        r#"{"access_token":"t","expires_in":60,"token_type":"bearer"}"#,
        r#"{"access_token":"t","expires_in":60,"token_type":"BEARER"}"#,
        r#"{"access_token":"t","expires_in":60}"#,
        r#"{"access_token":"t","expires_in":60,"token_type":null}"#,
    ] {
        let (_, source) = granting(body)?;
        assert_eq!(source.fetch(None).await?.header(), "Bearer t", "{body}");
    }
    Ok(())
}

#[tokio::test]
async fn a_token_type_that_is_not_bearer_is_a_malformed_answer() -> Result<(), BoxError> {
    for (body, shown) in [
        (r#"{"access_token":"t","token_type":"DPoP"}"#, r#""DPoP""#),
        (r#"{"access_token":"t","token_type":""}"#, r#""""#),
        (
            r#"{"access_token":"t","token_type":"Bearer\r\nX: y"}"#,
            r#""Bearer\r\nX: y""#,
        ),
    ] {
        let (_, source) = granting(body)?;
        let err = source.fetch(None).await.err().ok_or(body)?;
        assert!(
            matches!(err.kind(), ErrorKind::MalformedResponse { .. }),
            "{body}: {err:?}"
        );
        assert!(err.to_string().contains(shown), "{err}");
    }
    // A long type is cut, so a server cannot fill the message.
    let long = format!(
        r#"{{"access_token":"t","token_type":"{}"}}"#,
        "x".repeat(500)
    );
    let fake = FakeEndpoint::new(move |_| reply(200, long.clone()));
    let source = ClientCredentials::builder(BASE, "client", "s3cret")
        .transport(fake.transport())
        .build()?;
    let err = source.fetch(None).await.err().ok_or("granted")?;
    assert!(err.to_string().len() < 250, "{err}");
    Ok(())
}

#[tokio::test]
async fn basic_client_authentication_moves_the_credentials_to_the_header() -> Result<(), BoxError> {
    let fake = FakeEndpoint::new(|_| reply(200, r#"{"access_token":"t","expires_in":60}"#));
    // RFC 6749 §2.3.1's encoding, then RFC 7617's: base64("Aladdin:open+sesame%21").
    let source = ClientCredentials::builder(BASE, "Aladdin", "open sesame!")
        .transport(fake.transport())
        .client_authentication(ClientAuthentication::Basic)
        .build()?;
    source.fetch(None).await?;
    let seen = &fake.seen()[0];
    assert_eq!(
        seen.header("authorization"),
        "Basic QWxhZGRpbjpvcGVuK3Nlc2FtZSUyMQ=="
    );
    assert!(seen.headers["authorization"].is_sensitive());
    assert_eq!(
        seen.form(),
        [("grant_type".to_owned(), "client_credentials".to_owned())]
    );
    Ok(())
}

/// RFC 6749 §5.1: the answer's `scope` is what the token holds; without one, nothing known;
/// declared scopes win; a name no `Scope` can be leaves the set unknown.
#[tokio::test]
async fn a_token_holds_the_scopes_its_answer_grants() -> Result<(), BoxError> {
    // (the answer's `scope` field, requested, declared, held)
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    );
    let cases: [Case; 9] = [
        (
            r#","scope":"messages:send reports:read""#,
            None,
            None,
            Some("messages:send reports:read"),
        ),
        (
            r#","scope":"messages:send""#,
            Some("messages:send reports:read"),
            None,
            Some("messages:send"),
        ),
        ("", Some("messages:send"), None, None),
        (
            r#","scope":"messages:send""#,
            None,
            Some("sms:manage"),
            Some("sms:manage"),
        ),
        // Any server's scope names, case and all.
        (
            r#","scope":"Messages.Send https://api.example.com/.default""#,
            None,
            None,
            Some("Messages.Send https://api.example.com/.default"),
        ),
        // A granted name with a `"` (`\"` in JSON) is no scope token: the token's scopes stay
        // unknown rather than judged by a partial list.
        (r#","scope":"Messages.Send \"quoted\"""#, None, None, None),
        // Space-delimited only: `a,b` is one name, which no `Scope` holds, not `a` and `b`.
        (r#","scope":"messages:send,reports:read""#, None, None, None),
        (r#","scope":"""#, None, None, None),
        ("", None, None, None),
    ];
    for (scope, requested, declared, held) in cases {
        let body = format!(r#"{{"access_token":"t","expires_in":60{scope}}}"#);
        let fake = FakeEndpoint::new(move |_| reply(200, body.clone()));
        let mut builder =
            ClientCredentials::builder(BASE, "client", "s3cret").transport(fake.transport());
        if let Some(requested) = requested {
            builder = builder.request_scope(requested);
        }
        if let Some(declared) = declared {
            builder = builder.scopes(declared.parse()?);
        }
        let credential = builder.build()?.fetch(None).await?;
        let expected = held.map(str::parse::<Scopes>).transpose()?;
        assert_eq!(
            credential.scopes(),
            expected.as_ref(),
            "{scope} {requested:?} {declared:?}"
        );
    }
    Ok(())
}

/// Every run of base64 characters in `text`, decoded from each of its first four places.
fn base64_runs_decoded(text: &str) -> Vec<u8> {
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut decoded = Vec::new();
    let runs = text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/'));
    for run in runs {
        for skip in 0..4 {
            let rest = run.get(skip..).unwrap_or_default();
            let whole = &rest[..rest.len() / 4 * 4];
            decoded.extend(STANDARD_NO_PAD.decode(whole).unwrap_or_default());
            decoded.push(0);
        }
    }
    decoded
}

#[tokio::test]
async fn an_echoed_basic_header_shows_no_part_of_the_secret_at_any_alignment()
-> Result<(), BoxError> {
    // Ids of 1, 2 and 3 bytes put the secret at each place in the base64's groups of three;
    // short secrets fill fewer than two groups of their own.
    for id in ["i", "ii", "iii"] {
        for secret in ["666666", "7777777", "0123456789-0123456789"] {
            let fake = FakeEndpoint::new(|seen: &Seen| {
                let echo = seen.header("authorization").to_owned();
                reply(
                    401,
                    format!(r#"{{"error":"invalid_client","error_description":"{echo}"}}"#),
                )
            });
            let source = ClientCredentials::builder(BASE, id, secret)
                .transport(fake.transport())
                .client_authentication(ClientAuthentication::Basic)
                .build()?;
            let err = source.fetch(None).await.err().ok_or("granted")?;
            let shown = format!("{err} {err:?}");
            let decoded = base64_runs_decoded(&shown);
            // Two bytes at each end may share a base64 character with their neighbours;
            // three in a row never show.
            for part in secret.as_bytes().windows(3) {
                assert!(
                    !decoded.windows(3).any(|w| w == part),
                    "{id:?}/{secret:?}: {part:?} decodes from {shown}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn a_grant_field_in_another_case_is_refused_as_a_form_parameter() {
    // Servers that read form names without regard to case (ASP.NET's form collection) would
    // take these for the grant's own: a second scope that escapes the §3.3 check, or a secret
    // that is not kept out of errors.
    for name in ["Scope", "GRANT_TYPE", "Client_Secret", "client_ID"] {
        let refused = ClientCredentials::builder(BASE, "client", "s3cret")
            .transport(FakeEndpoint::new(|_| reply(200, "{}")).transport())
            .form_param(name, "value")
            .build();
        assert!(
            matches!(
                refused,
                Err(ConfigError::Invalid {
                    what: "form parameter",
                    ..
                })
            ),
            "{name}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn declared_scopes_travel_with_the_token() -> Result<(), BoxError> {
    let fake = FakeEndpoint::new(|_| reply(200, r#"{"access_token":"t","expires_in":60}"#));
    let source = ClientCredentials::builder(BASE, "client", "s3cret")
        .transport(fake.transport())
        .scopes("sms:manage,inbound-message:read".parse()?)
        .build()?;
    let credential = source.fetch(None).await?;
    assert_eq!(credential.scopes().map(Scopes::len), Some(2));
    Ok(())
}

#[tokio::test]
async fn a_wrong_secret_is_invalid_credentials_in_infobips_or_oauths_words() -> Result<(), BoxError>
{
    let cases: [(&str, FakeReply, &str, &str); 3] = [
        (
            "Infobip 401",
            infobip_error(401, "UNAUTHORIZED", "Invalid login details"),
            "UNAUTHORIZED",
            "Invalid login details",
        ),
        (
            "OAuth 400 invalid_client",
            reply(
                400,
                r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#,
            ),
            "invalid_client",
            "Client authentication failed",
        ),
        (
            "OAuth 401 invalid_client",
            reply(401, r#"{"error":"invalid_client"}"#),
            "invalid_client",
            "",
        ),
    ];
    for (case, answer, code, text) in cases {
        let answer = Arc::new(Mutex::new(Some(answer)));
        let fake =
            FakeEndpoint::new(move |_| lock(&answer).take().unwrap_or_else(|| reply(500, "")));
        let source = ClientCredentials::builder(BASE, "client", "wrong-s3cret")
            .transport(fake.transport())
            .build()?;
        let err = source.fetch(None).await.err().ok_or(case)?;
        let ErrorKind::InvalidCredentials(api) = err.kind() else {
            return Err(format!("{case}: {err:?}").into());
        };
        assert_eq!(api.code(), Some(code), "{case}");
        assert_eq!(api.text().unwrap_or_default(), text, "{case}");
        assert!(!err.is_transient(), "{case}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("wrong-s3cret"), "{case}: {shown}");
    }
    Ok(())
}

#[tokio::test]
async fn other_token_endpoint_errors_are_typed() -> Result<(), BoxError> {
    let cases: [(FakeReply, u16, bool, Option<Duration>); 5] = [
        (
            infobip_error(500, "GENERAL_ERROR", "Something went wrong."),
            500,
            true,
            None,
        ),
        (reply(503, "<html>down</html>"), 503, true, None),
        (
            reply(
                429,
                r#"{"errorCode":"E429","description":"Too many requests sent."}"#,
            )
            .map(|mut r| {
                r.headers_mut()
                    .insert("retry-after", http::HeaderValue::from_static("7"));
                r
            }),
            429,
            true,
            Some(7 * SECOND),
        ),
        (
            reply(400, r#"{"error":"invalid_request"}"#),
            400,
            false,
            None,
        ),
        (
            infobip_error(403, "FORBIDDEN", "Forbidden"),
            403,
            false,
            None,
        ),
    ];
    for (answer, status, transient, retry_after) in cases {
        let answer = Arc::new(Mutex::new(Some(answer)));
        let fake =
            FakeEndpoint::new(move |_| lock(&answer).take().unwrap_or_else(|| reply(500, "")));
        let source = ClientCredentials::builder(BASE, "client", "s3cret")
            .transport(fake.transport())
            .build()?;
        let err = source.fetch(None).await.err().ok_or("no error")?;
        assert!(
            matches!(err.kind(), ErrorKind::TokenEndpoint(api) if api.status() == status),
            "{status}: {err:?}"
        );
        assert_eq!(err.is_transient(), transient, "{status}");
        assert_eq!(err.retry_after(), retry_after, "{status}");
    }
    Ok(())
}

#[tokio::test]
async fn malformed_answers_are_typed_errors() -> Result<(), BoxError> {
    let ten_megabytes = Bytes::from(vec![b' '; 10 * 1024 * 1024]);
    let cases: Vec<(&str, FakeReply)> = vec![
        ("not JSON", reply(200, "access_token=abc&expires_in=3600")),
        (
            "missing access_token",
            reply(200, r#"{"token":"abc","expires_in":3600}"#),
        ),
        (
            "access_token not a string",
            reply(200, r#"{"access_token":["abc"]}"#),
        ),
        ("empty access_token", reply(200, r#"{"access_token":""}"#)),
        (
            "CR/LF in access_token",
            reply(200, r#"{"access_token":"abc\r\nX-Evil: 1"}"#),
        ),
        (
            "truncated JSON",
            reply(200, r#"{"access_token":"abc","expi"#),
        ),
        ("10 MB body", reply(200, ten_megabytes)),
        (
            "connection closed",
            Err("connection closed before message completed".into()),
        ),
    ];
    for (case, answer) in cases {
        let answer = Arc::new(Mutex::new(Some(answer)));
        let fake =
            FakeEndpoint::new(move |_| lock(&answer).take().unwrap_or_else(|| reply(500, "")));
        let source = ClientCredentials::builder(BASE, "client", "s3cret")
            .transport(fake.transport())
            .build()?;
        let err = match source.fetch(None).await {
            Ok(credential) => return Err(format!("{case}: accepted as {credential:?}").into()),
            Err(err) => err,
        };
        let expected = match case {
            "10 MB body" => matches!(err.kind(), ErrorKind::ResponseTooLarge { .. }),
            "connection closed" => matches!(err.kind(), ErrorKind::Transport) && err.is_transient(),
            _ => matches!(err.kind(), ErrorKind::MalformedResponse { .. }) && !err.is_transient(),
        };
        assert!(expected, "{case}: {err:?}");
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("abc") && !shown.contains("Evil"),
            "{case}: {shown}"
        );
    }
    Ok(())
}

#[test]
fn builder_refuses_what_cannot_work() {
    let transport = || FakeEndpoint::new(|_| reply(200, "")).transport();
    let build = |base: &str, id: &str, secret: &str| {
        ClientCredentials::builder(base, id, secret).transport(transport())
    };
    assert!(matches!(
        ClientCredentials::builder(BASE, "client", "s3cret").build(),
        Err(ConfigError::Invalid {
            what: "transport",
            ..
        })
    ));
    assert!(matches!(
        build("http://xyz12.api.infobip.com", "client", "s3cret").build(),
        Err(ConfigError::InsecureUrl { .. })
    ));
    assert_eq!(
        build(BASE, "", "s3cret").build().err(),
        Some(ConfigError::Empty { what: "client id" })
    );
    assert_eq!(
        build(BASE, "client", "").build().err(),
        Some(ConfigError::Empty {
            what: "client secret"
        })
    );
    assert!(matches!(
        build(BASE, "client", "s3cret").token_path("token").build(),
        Err(ConfigError::InvalidUrl { .. })
    ));
    // A query is refused without being shown: it may hold a secret.
    let err = build(BASE, "client", "s3cret")
        .token_path("/oauth/token?key=hush")
        .build()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("/oauth/token…") && !err.contains("hush"),
        "{err}"
    );
    assert!(
        build("http://[::1]:8080", "client", "s3cret")
            .build()
            .is_ok()
    );
}

#[tokio::test]
async fn token_path_moves_the_endpoint() -> Result<(), BoxError> {
    let fake = FakeEndpoint::new(|_| reply(200, r#"{"access_token":"t","expires_in":60}"#));
    let source = ClientCredentials::builder("https://gateway.example.com/ib", "client", "s3cret")
        .transport(fake.transport())
        .token_path("/oauth/token")
        .build()?;
    source.fetch(None).await?;
    assert_eq!(fake.calls()[0].1, "/ib/oauth/token");
    assert_eq!(
        source.base_url().map(ToString::to_string).as_deref(),
        Some("https://gateway.example.com/ib")
    );
    Ok(())
}

#[test]
fn debug_never_shows_the_secret() -> Result<(), ConfigError> {
    let builder = ClientCredentials::builder(BASE, "client", "s3cret-value")
        .transport(FakeEndpoint::new(|_| reply(200, "")).transport());
    let shown = format!("{builder:?}");
    assert!(
        !shown.contains("s3cret-value") && shown.contains(REDACTED),
        "{shown}"
    );
    let shown = format!("{:?}", builder.build()?);
    assert!(
        !shown.contains("s3cret-value") && shown.contains(REDACTED),
        "{shown}"
    );
    assert!(shown.contains("client"), "{shown}");
    Ok(())
}

// Through the layer, on tokio's paused clock.

#[tokio::test(start_paused = true)]
async fn expiry_causes_one_renewal_ahead_and_no_401() -> Result<(), BoxError> {
    let infobip = Infobip::new();
    let mut service =
        InfobipAuthLayer::new(infobip.source("s3cret")?).layer(infobip.fake.service());
    let mut seen = Vec::new();
    for _ in 0..70 {
        let (status, token) = send(&mut service).await?;
        assert_eq!(status, StatusCode::OK);
        if seen.last() != Some(&token) {
            seen.push(token);
        }
        tokio::time::sleep(MINUTE).await;
    }
    assert_eq!(
        seen,
        ["token-1", "token-2"],
        "the one-hour token is renewed once in 70 minutes"
    );
    assert_eq!(infobip.token_requests().len(), 2);
    assert_eq!(infobip.unauthorized(), 0, "renewed before it died");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_revoked_token_is_renewed_once_for_a_hundred_requests() -> Result<(), BoxError> {
    let infobip = Infobip::new();
    let mut service =
        InfobipAuthLayer::new(infobip.source("s3cret")?).layer(infobip.fake.service());
    assert_eq!(send(&mut service).await?.1, "token-1");

    infobip.revoke_all();
    let tasks: Vec<_> = (0..100)
        .map(|_| tokio::spawn(service.clone().oneshot(resource())))
        .collect();
    for task in tasks {
        assert_eq!(
            read(task.await??).await?,
            (StatusCode::OK, "token-2".into())
        );
    }
    assert_eq!(infobip.token_requests().len(), 2, "one renewal");
    assert!(infobip.unauthorized() >= 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_failing_endpoint_is_retried_with_backoff_and_recovers() -> Result<(), BoxError> {
    let infobip = Infobip::new();
    infobip.fail_next((0..3).map(|_| infobip_error(500, "GENERAL_ERROR", "Something went wrong.")));
    let mut service =
        InfobipAuthLayer::new(infobip.source("s3cret")?).layer(infobip.fake.service());
    let (mut failed, mut served) = (0, 0);
    for _ in 0..300 {
        match send(&mut service).await {
            Ok((StatusCode::OK, _)) => served += 1,
            Ok((status, _)) => return Err(format!("unexpected {status}").into()),
            Err(err) => {
                let err = ours(&err)?;
                assert!(err.is_transient(), "{err:?}");
                assert!(matches!(err.kind(), ErrorKind::TokenEndpoint(api) if api.status() == 500));
                assert_eq!(served, 0, "no failure after recovery");
                failed += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let attempts = infobip.token_requests();
    assert_eq!(
        attempts.len(),
        4,
        "three failures, one success, nothing in between"
    );
    assert!(
        failed >= 3 && served > 0,
        "failed {failed}, served {served}"
    );
    // Backoff: 1 s, 2 s, 4 s, each jittered down to half at most.
    for (i, pair) in attempts.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let least = SECOND * 2u32.pow(u32::try_from(i)?) / 2;
        assert!(
            gap >= least,
            "attempt {} came {gap:?} after the previous",
            i + 2
        );
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn retry_after_from_the_token_endpoint_is_honoured() -> Result<(), BoxError> {
    let infobip = Infobip::new();
    infobip.fail_next([reply(
        429,
        r#"{"errorCode":"E429","description":"Too many requests sent."}"#,
    )
    .map(|mut r| {
        r.headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("30"));
        r
    })]);
    let mut service =
        InfobipAuthLayer::new(infobip.source("s3cret")?).layer(infobip.fake.service());
    for _ in 0..40 {
        let _ = send(&mut service).await;
        tokio::time::sleep(SECOND).await;
    }
    let attempts = infobip.token_requests();
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts[1] - attempts[0] >= 30 * SECOND,
        "{:?}",
        attempts[1] - attempts[0]
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_wrong_secret_is_reported_and_never_retried_in_a_loop() -> Result<(), BoxError> {
    let infobip = Infobip::new();
    let mut service =
        InfobipAuthLayer::new(infobip.source("wrong-s3cret")?).layer(infobip.fake.service());
    for _ in 0..600 {
        let err = send(&mut service)
            .await
            .err()
            .ok_or("served with a wrong secret")?;
        let err = ours(&err)?;
        let ErrorKind::InvalidCredentials(api) = err.kind() else {
            return Err(format!("{err:?}").into());
        };
        assert_eq!(
            (api.code(), api.text()),
            (Some("UNAUTHORIZED"), Some("Invalid login details"))
        );
        assert!(!format!("{err} {err:?}").contains("wrong-s3cret"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 60 s of requests; backoff 1, 2, 4, 8, 16, 32 s (at least half each): at most 8 attempts.
    let attempts = infobip.token_requests().len();
    assert!(
        (2..=8).contains(&attempts),
        "{attempts} token requests in a minute"
    );
    Ok(())
}

#[cfg(feature = "tracing")]
#[tokio::test(start_paused = true)]
async fn secrets_never_reach_tracing() -> Result<(), BoxError> {
    let capture = crate::test_helpers::CaptureTracing::start();

    let infobip = Infobip::new();
    let mut service =
        InfobipAuthLayer::new(infobip.source("s3cret")?).layer(infobip.fake.service());
    send(&mut service).await?;
    infobip.revoke_all(); // a 401, a new token
    send(&mut service).await?;
    let mut wrong =
        InfobipAuthLayer::new(infobip.source("wrong-s3cret")?).layer(infobip.fake.service());
    let _ = send(&mut wrong).await;

    let text = capture.text();
    assert!(
        text.contains("client_credentials"),
        "events were captured: {text}"
    );
    for secret in ["s3cret", "token-1", "token-2"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    Ok(())
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_expires_in_gives_a_lifetime_within_the_bounds(value in prop_oneof![
            any::<f64>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            "[-+ ]?[0-9]{0,400}(\\.[0-9]{0,3})?(e[-+]?[0-9]{1,4})?".prop_map(serde_json::Value::from),
            ".{0,12}".prop_map(serde_json::Value::from),
        ]) {
            let lifetime = lifetime(Some(&value));
            prop_assert!((MIN_LIFETIME..=MAX_LIFETIME).contains(&lifetime), "{:?}", lifetime);
        }

        // Any string is a valid scope or refused with a typed error; never a panic.
        #[test]
        fn a_requested_scope_is_checked_without_a_panic(scope in any::<String>()) {
            let valid = !scope.is_empty()
                && scope.split(' ').all(|t| {
                    !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
                });
            prop_assert_eq!(check_request_scope(&scope).is_ok(), valid);
        }
    }
}

/// An answer without `scope` says nothing the scope check can be sure of: servers that omit it
/// grant what the client is configured for, or read a requested meta-scope (`.default`) as
/// "everything configured". Taken for the scope requested, the pre-flight would refuse
/// requests the server serves.
#[tokio::test]
async fn an_answer_without_scope_leaves_the_held_scopes_unknown() -> Result<(), BoxError> {
    use crate::{AuthScheme, Catalog};
    let fake = FakeEndpoint::new(|seen: &Seen| match seen.path.as_str() {
        "/oauth2/token" => reply(200, r#"{"access_token":"t","expires_in":3600}"#),
        _ => reply(200, "sent"),
    });
    let source = ClientCredentials::builder(BASE, "client", "s3cret")
        .transport(fake.transport())
        .token_path("/oauth2/token")
        .request_scope("messages")
        .build()?;
    let catalog = Catalog::empty().with_operation(
        http::Method::POST,
        "/v1/messages",
        "messages:send".parse()?,
        &[AuthScheme::OAuth2],
    )?;
    let auth = InfobipAuthLayer::new(source);
    let service = tower::ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check().catalog(catalog))
        .service(fake.service());
    let request = Request::post(format!("{BASE}/v1/messages")).body(Full::new(Bytes::new()))?;
    let response = service.oneshot(request).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(fake.count("POST", "/v1/messages"), 1);
    assert_eq!(auth.credential().await?.scopes(), None);
    Ok(())
}

/// The answer's `scope` only informs the scope check: one that is not a string (a JSON list,
/// a number) leaves the held scopes unknown instead of failing the token request.
#[tokio::test]
async fn a_scope_that_is_not_a_string_does_not_fail_the_token() -> Result<(), BoxError> {
    for scope in [r#"["messages:send"]"#, "42", "{}", "null"] {
        let body = format!(r#"{{"access_token":"t","expires_in":60,"scope":{scope}}}"#);
        let fake = FakeEndpoint::new(move |_| reply(200, body.clone()));
        let source = ClientCredentials::builder(BASE, "client", "s3cret")
            .transport(fake.transport())
            .build()?;
        let credential = source
            .fetch(None)
            .await
            .map_err(|err| format!("{scope}: {err}"))?;
        assert_eq!(credential.header(), "Bearer t", "{scope}");
        assert_eq!(credential.scopes(), None, "{scope}");
    }
    Ok(())
}
