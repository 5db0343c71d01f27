//! Arbitrary requests against a running server: each one is answered (a panic in a handler
//! shows as a connection closed without an answer), every refusal carries Infobip's error body,
//! and the counters move exactly as the request says they should.

use http::HeaderValue;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::*;

/// A user whose password holds colons: Basic splits at the first one only (RFC 7617).
const COLON_USER: &str = "colon-user";
const COLON_PASSWORD: &str = "pa:ss:word";

/// What a generated `Authorization` value holds besides its scheme word.
#[derive(Clone, Debug)]
enum Secret {
    ApiKey,
    DemoBasic,
    ColonBasic,
    Session,
    AccessToken,
    Text(String),
}

#[derive(Clone, Debug)]
struct Call {
    method: Method,
    path: String,
    query: Option<String>,
    authorization: Vec<Header>,
    content_type: Option<String>,
    body: Vec<u8>,
    http2: bool,
}

/// The secrets a case's server handed out, to put into headers.
struct Secrets {
    session: String,
    access_token: String,
}

impl Secrets {
    fn text(&self, secret: &Secret) -> String {
        match secret {
            Secret::ApiKey => DEMO_API_KEY.to_owned(),
            Secret::DemoBasic => basic(DEMO_USERNAME, DEMO_PASSWORD)["Basic ".len()..].to_owned(),
            Secret::ColonBasic => basic(COLON_USER, COLON_PASSWORD)["Basic ".len()..].to_owned(),
            Secret::Session => self.session.clone(),
            Secret::AccessToken => self.access_token.clone(),
            Secret::Text(text) => text.clone(),
        }
    }
}

/// A generated `Authorization` value.
#[derive(Clone, Debug)]
enum Header {
    /// A scheme word, spaces, and a secret.
    Credential {
        word: String,
        spaces: usize,
        secret: Secret,
    },
    /// Any bytes a header value may hold.
    Raw(Vec<u8>),
}

fn method() -> impl Strategy<Value = Method> {
    let named = prop::sample::select(vec![
        Method::GET,
        Method::POST,
        Method::DELETE,
        Method::PUT,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
    ]);
    let extension = "[A-Z]{3,9}"
        .prop_filter("a client sends CONNECT to an authority", |m| m != "CONNECT")
        .prop_filter_map("a method token", |m| Method::from_bytes(m.as_bytes()).ok());
    prop_oneof![4 => named, 1 => extension]
}

fn path() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec![
        "/auth/1/session",
        "/auth/1/session/",
        "/auth/1/oauth2/token",
        "/exchange/1/oauth/authorize",
        "/exchange/1/oauth/token",
        "/sms/2/text/advanced",
        "/sms/1/inbox/reports",
        "/settings/2/api-keys",
        "/2fa/2/applications/ABC123",
        "/2fa/2/applications/",
        "/sms/1/text/query",
        "/vocalize/2/campaigns/me",
        "/platform/1/openapi",
        "/",
        "//",
    ])
    .prop_map(str::to_owned);
    let segments = prop::collection::vec("[a-zA-Z0-9._~%:@!$&'()*+,;=-]{0,12}", 1..6)
        .prop_map(|segments| format!("/{}", segments.join("/")));
    prop_oneof![3 => known, 2 => segments]
}

/// Bytes a header value may hold: tab, visible ASCII, space, and the obs-text bytes.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        8 => 0x20u8..0x7f,
        1 => Just(b'\t'),
        1 => 0x80u8..=0xff,
    ];
    prop::collection::vec(byte, 0..40)
}

/// An `Authorization` value: a scheme word in any case, spaces, and a secret; or any bytes.
fn authorization() -> impl Strategy<Value = Header> {
    let word = prop::sample::select(vec!["App", "Basic", "IBSSO", "Bearer", "Digest", "IBBSO"])
        .prop_flat_map(|word| {
            prop::collection::vec(any::<bool>(), word.len()).prop_map(move |upper| {
                word.chars()
                    .zip(upper)
                    .map(|(c, up)| {
                        if up {
                            c.to_ascii_uppercase()
                        } else {
                            c.to_ascii_lowercase()
                        }
                    })
                    .collect::<String>()
            })
        });
    let secret = prop_oneof![
        Just(Secret::ApiKey),
        Just(Secret::DemoBasic),
        Just(Secret::ColonBasic),
        Just(Secret::Session),
        Just(Secret::AccessToken),
        "[ -~]{0,20}".prop_map(Secret::Text),
    ];
    let credential =
        (word, 0usize..4, secret).prop_map(|(word, spaces, secret)| Header::Credential {
            word,
            spaces,
            secret,
        });
    prop_oneof![3 => credential, 1 => header_bytes().prop_map(Header::Raw)]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let login = prop::sample::select(vec![
        json!({"username": DEMO_USERNAME, "password": DEMO_PASSWORD}),
        json!({"username": DEMO_USERNAME, "password": DEMO_PASSWORD, "unsafe": true}),
        json!({"username": DEMO_USERNAME, "password": 5}),
        json!({"username": DEMO_USERNAME}),
        json!([1, 2]),
    ])
    .prop_map(|value| value.to_string().into_bytes());
    let form = Just(
        serde_urlencoded::to_string([
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
            ("grant_type", "client_credentials"),
        ])
        .unwrap_or_default()
        .into_bytes(),
    );
    prop_oneof![
        2 => Just(Vec::new()),
        2 => login,
        1 => form,
        1 => Just(SMS.as_bytes().to_vec()),
        2 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

fn call() -> impl Strategy<Value = Call> {
    let content_type = prop::option::of(prop_oneof![
        Just("application/json".to_owned()),
        Just("Application/JSON; charset=utf-8".to_owned()),
        Just(FORM.to_owned()),
        "[ -~]{0,20}",
    ]);
    (
        method(),
        path(),
        prop::option::of("[a-zA-Z0-9=&%_.+-]{0,30}"),
        prop::collection::vec(authorization(), 0..3),
        content_type,
        body(),
        any::<bool>(),
    )
        .prop_map(
            |(method, path, query, authorization, content_type, body, http2)| Call {
                method,
                path,
                query,
                authorization,
                content_type,
                body,
                http2,
            },
        )
}

/// The header as sent, if the bytes make a header value.
fn header_value(header: &Header, secrets: &Secrets) -> Option<HeaderValue> {
    match header {
        Header::Credential {
            word,
            spaces,
            secret,
        } => {
            let text = format!("{word}{}{}", " ".repeat(*spaces), secrets.text(secret));
            HeaderValue::from_str(&text).ok()
        }
        Header::Raw(bytes) => HeaderValue::from_bytes(bytes).ok(),
    }
}

/// The scheme the counters must file a resource request under, as the module docs say: the
/// scheme word of the one readable `Authorization` header, if it names one and credentials
/// follow it, else `none`.
fn expected_scheme(values: &[HeaderValue]) -> &'static str {
    let [value] = values else {
        return "none";
    };
    let Ok(text) = value.to_str() else {
        return "none";
    };
    let Some((word, _)) = text.trim_matches([' ', '\t']).split_once(' ') else {
        return "none";
    };
    ["App", "Basic", "IBSSO", "Bearer"]
        .into_iter()
        .find(|scheme| scheme.eq_ignore_ascii_case(word))
        .unwrap_or("none")
}

fn check(condition: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if condition {
        Ok(())
    } else {
        Err(TestCaseError::fail(what()))
    }
}

async fn run(calls: Vec<Call>) -> Result<(), TestCaseError> {
    let fail = |err: BoxError| TestCaseError::fail(err.to_string());
    let config = MockConfig::demo()
        .user(COLON_USER, COLON_PASSWORD, DEMO_SCOPES)
        .all_operations();
    let server = MockServer::start_with(config)
        .await
        .map_err(|e| fail(e.into()))?;
    let http = Http::new(&server);
    let secrets = Secrets {
        session: http.session_token().await.map_err(fail)?,
        access_token: http.access_token().await.map_err(fail)?,
    };
    let colon = http
        .send_sms(Some(&basic(COLON_USER, COLON_PASSWORD)))
        .await
        .map_err(fail)?;
    check(colon.status == StatusCode::OK, || {
        format!("a password with colons: {}", colon.status)
    })?;

    for call in calls {
        let values: Vec<HeaderValue> = call
            .authorization
            .iter()
            .filter_map(|raw| header_value(raw, &secrets))
            .collect();
        let target = match &call.query {
            Some(query) => format!("{}{}?{query}", server.base_url(), call.path),
            None => format!("{}{}", server.base_url(), call.path),
        };
        let mut request = Request::builder().method(call.method.clone()).uri(target);
        for value in &values {
            request = request.header(AUTHORIZATION, value.clone());
        }
        if let Some(content_type) = &call.content_type
            && let Ok(value) = HeaderValue::from_str(content_type)
        {
            request = request.header(CONTENT_TYPE, value);
        }
        let request = request
            .body(Full::new(Bytes::from(call.body.clone())))
            .map_err(|e| fail(e.into()))?;

        // A fresh connection per request: what is checked is this request's answer.
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_max_idle_per_host(0).http2_only(call.http2);
        let client: Client<HttpConnector, Full<Bytes>> = builder.build_http();
        let before = server.counters();
        let response = client
            .request(request)
            .await
            .map_err(|err| fail(format!("no answer to {call:?}: {err}").into()))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|err| fail(format!("answer to {call:?} cut: {err}").into()))?
            .to_bytes();
        let after = server.counters();
        let context = || format!("{call:?} answered {status} {body:?}");

        if !status.is_success() && status != StatusCode::FOUND && call.method != Method::HEAD {
            let json: Value = serde_json::from_slice(&body).unwrap_or_default();
            let error = &json["requestError"]["serviceException"];
            check(
                error["messageId"].is_string() && error["text"].is_string(),
                || format!("not Infobip's error body: {}", context()),
            )?;
        }

        let mut expected = before.clone();
        // The endpoint called: a trailing slash is ignored, as the server reads paths.
        let path = call.path.strip_suffix('/').unwrap_or(&call.path);
        let token_endpoint = matches!(
            path,
            "/auth/1/session" | "/auth/1/oauth2/token" | "/exchange/1/oauth/token"
        );
        match (&call.method, path) {
            (&Method::POST, "/auth/1/session") => expected.session_creates += 1,
            (&Method::DELETE, "/auth/1/session") => expected.session_deletes += 1,
            (&Method::POST, "/auth/1/oauth2/token") => expected.oauth_token_requests += 1,
            (&Method::POST, "/exchange/1/oauth/token") => expected.exchange_token_requests += 1,
            (_, "/auth/1/session" | "/auth/1/oauth2/token" | "/exchange/1/oauth/token") => {}
            (_, "/exchange/1/oauth/authorize") => {}
            _ => {
                *expected
                    .resource_requests_by_scheme
                    .entry(expected_scheme(&values).to_owned())
                    .or_default() += 1;
                expected.unauthorized += u64::from(status == StatusCode::UNAUTHORIZED);
                expected.forbidden += u64::from(status == StatusCode::FORBIDDEN);
                let received = server.received();
                let last = received.last();
                check(
                    last.is_some_and(|seen| {
                        seen.method == call.method
                            && seen.path == call.path
                            && seen.scheme == expected_scheme(&values)
                            && seen.status == status
                    }),
                    || format!("received {last:?} for {}", context()),
                )?;
            }
        }
        if token_endpoint && status == StatusCode::TOO_MANY_REQUESTS {
            expected.throttled += 1;
        }
        // Requests go one at a time.
        expected.max_token_requests_in_flight = before.max_token_requests_in_flight.max(u64::from(
            token_endpoint && expected.token_requests() > before.token_requests(),
        ));
        let created =
            call.method == Method::POST && path == "/auth/1/session" && status.is_success();
        let destroyed =
            call.method == Method::DELETE && path == "/auth/1/session" && status.is_success();
        let new_events =
            &after.session_events[before.session_events.len().min(after.session_events.len())..];
        check(
            match new_events {
                [] => !destroyed,
                [SessionEvent::Created { .. }] => created,
                [SessionEvent::Destroyed { .. }] => destroyed,
                _ => false,
            },
            || format!("session events {new_events:?} for {}", context()),
        )?;
        expected.session_events = after.session_events.clone();
        check(after == expected, || {
            format!(
                "counters {after:?}, expected {expected:?}, for {}",
                context()
            )
        })?;
        check(
            call.method != Method::DELETE
                || path != "/auth/1/session"
                || status != StatusCode::OK
                || body.is_empty(),
            || format!("a DELETE answered with a body: {}", context()),
        )?;
    }
    server.shutdown().await;
    Ok(())
}

proptest! {
    // 256 cases, or `PROPTEST_CASES` to run it harder.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn any_request_is_answered_and_counted_truthfully(calls in prop::collection::vec(call(), 1..8)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        runtime.block_on(run(calls))?;
    }
}
