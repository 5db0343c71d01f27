//! Shared by the integration tests: a hyper-util client (the sources' transport and the layer's
//! inner service at once), request builders and assertions on the crate's errors.

#![allow(dead_code)] // each test file uses its own part

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{self, Fault, MockServer};
use infobip_auth::source::{ClientCredentials, Transport};
use infobip_auth::{BoxError, Error, ErrorKind, InfobipAuth, InfobipAuthLayer};
use tokio::time::Instant;
use tower::{Service, ServiceExt as _};

/// A plain-HTTP client: the embedded server listens on loopback.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The layer over the client, as the tests use it.
pub type Authenticated = InfobipAuth<HttpClient>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The same client as a token-endpoint transport.
pub fn transport(client: &HttpClient) -> Transport {
    Transport::new(client.clone())
}

/// The layer over the embedded server's demo OAuth client, its token requests sent through a
/// client of its own.
pub fn oauth(server: &MockServer) -> Result<InfobipAuthLayer, BoxError> {
    let source = ClientCredentials::builder(
        server.base_url(),
        mock::DEMO_CLIENT_ID,
        mock::DEMO_CLIENT_SECRET,
    )
    .transport(transport(&client()))
    .build()?;
    Ok(InfobipAuthLayer::new(source))
}

/// `GET /sms/1/inbox/reports` on `server`: a protected read.
pub fn reports(server: &MockServer) -> Request<Full<Bytes>> {
    Request::get(server.url("/sms/1/inbox/reports"))
        .header("accept", "application/json")
        .body(Full::default())
        .unwrap_or_default()
}

/// `POST /sms/2/text/advanced` on `server`: a protected write with a body to replay.
pub fn sms(server: &MockServer) -> Request<Full<Bytes>> {
    const SMS: &str =
        r#"{"messages":[{"destinations":[{"to":"41793026727"}],"from":"InfoSMS","text":"Hi"}]}"#;
    Request::post(server.url("/sms/2/text/advanced"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(SMS.as_bytes())))
        .unwrap_or_default()
}

/// Sends `request` through `service`; answers the status, the body read whole.
pub async fn send(
    service: &mut Authenticated,
    request: Request<Full<Bytes>>,
) -> Result<StatusCode, BoxError> {
    let response = service.ready().await?.call(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}

/// Sends `n` requests at once, each from its own task and service clone; answers their
/// statuses (or errors), in order.
pub async fn send_concurrently(
    service: &Authenticated,
    server: &MockServer,
    n: usize,
) -> Vec<Result<StatusCode, BoxError>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let mut service = service.clone();
            let request = reports(server);
            tokio::spawn(async move { send(&mut service, request).await })
        })
        .collect();
    let mut statuses = Vec::with_capacity(n);
    for task in tasks {
        statuses.push(task.await.unwrap_or_else(|err| Err(err.into())));
    }
    statuses
}

/// The crate's error inside a boxed service error.
pub fn ours(err: &BoxError) -> Result<&Error, BoxError> {
    Error::find(&**err).ok_or_else(|| format!("not an infobip_auth::Error: {err}").into())
}

/// Every outcome before the first success is a transient `500` from the token endpoint, every
/// one after it a success, and there is one: the service came back without a restart.
pub fn assert_transient_500s_then_recovery(
    outcomes: &[Result<StatusCode, BoxError>],
) -> Result<(), BoxError> {
    let mut recovered = false;
    for outcome in outcomes {
        match outcome {
            Ok(status) => {
                assert_eq!(*status, StatusCode::OK);
                recovered = true;
            }
            Err(err) => {
                assert!(!recovered, "failed after recovery: {err}");
                let err = ours(err)?;
                assert!(err.is_transient(), "{err:?}");
                assert!(
                    matches!(err.kind(), ErrorKind::TokenEndpoint(api) if api.status() == 500),
                    "{err:?}"
                );
            }
        }
    }
    assert!(recovered, "service came back without a restart");
    Ok(())
}

/// Every outcome is Infobip's `UNAUTHORIZED` "Invalid login details", with `secret` in neither
/// its `Display` nor its `Debug`; a minute of requests tried the token endpoint only as often
/// as the backoff allows (1, 2, 4, 8, 16, 32 s, each at least half), never in a loop.
pub fn assert_refused_without_a_loop(
    outcomes: &[Result<StatusCode, BoxError>],
    attempts: &[Instant],
    secret: &str,
) -> Result<(), BoxError> {
    for outcome in outcomes {
        let err = outcome
            .as_ref()
            .err()
            .ok_or("served with a wrong credential")?;
        let err = ours(err)?;
        let ErrorKind::InvalidCredentials(api) = err.kind() else {
            return Err(format!("{err:?}").into());
        };
        assert_eq!(api.code(), Some("UNAUTHORIZED"));
        assert_eq!(api.text(), Some("Invalid login details"));
        assert!(!format!("{err} {err:?}").contains(secret));
    }
    assert!(
        (2..=8).contains(&attempts.len()),
        "{} attempts",
        attempts.len()
    );
    Ok(())
}

/// Sends a request every `every` until `until` has passed, and answers when each token
/// request came, as `count()` saw them after each request, with every outcome.
pub async fn requests_over_time(
    service: &mut Authenticated,
    server: &MockServer,
    count: impl Fn(&MockServer) -> u64,
    every: Duration,
    until: Duration,
) -> (Vec<Instant>, Vec<Result<StatusCode, BoxError>>) {
    let start = Instant::now();
    let mut attempts = Vec::new();
    let mut outcomes = Vec::new();
    let mut seen = count(server);
    while start.elapsed() < until {
        outcomes.push(send(service, reports(server)).await);
        let now = count(server);
        for _ in seen..now {
            attempts.push(Instant::now());
        }
        seen = now;
        tokio::time::sleep(every).await;
    }
    (attempts, outcomes)
}

/// Asserts the gaps between `attempts` follow a backoff of `first`, doubling, each jittered
/// down to half at most.
pub fn assert_backoff(attempts: &[Instant], first: Duration) {
    for (i, pair) in attempts.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let least = first * 2u32.saturating_pow(u32::try_from(i).unwrap_or(u32::MAX)) / 2;
        assert!(
            gap >= least,
            "attempt {} came {gap:?} after the previous, before the backoff's {least:?}",
            i + 2
        );
    }
}

/// Sends a request and drops it while its credential is being fetched (the server answers
/// after 2 s), lets the fetch finish on its own, then sends another, which must succeed.
pub async fn drop_a_request_mid_fetch(
    server: &MockServer,
    service: &mut Authenticated,
) -> Result<(), BoxError> {
    server.set_latency(Duration::from_secs(2));
    let dropped = tokio::time::timeout(Duration::from_millis(100), send(service, reports(server)));
    assert!(
        dropped.await.is_err(),
        "dropped while its credential was being fetched"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    server.set_latency(Duration::ZERO);
    assert_eq!(send(service, reports(server)).await?, StatusCode::OK);
    Ok(())
}

/// Two token requests 30 s or more apart: the first refused with `Retry-After: 30`, whose
/// error is returned, and requests succeeding in the end.
pub fn assert_retry_after_waited_out<'a>(
    attempts: &[Instant],
    outcomes: &'a [Result<StatusCode, BoxError>],
) -> Result<&'a Error, BoxError> {
    assert_eq!(attempts.len(), 2);
    assert!(attempts[1] - attempts[0] >= Duration::from_secs(30));
    assert!(matches!(outcomes.last(), Some(Ok(StatusCode::OK))));
    let first = outcomes.first().ok_or("no request")?;
    let first = ours(first.as_ref().err().ok_or("no 429")?)?;
    assert_eq!(first.retry_after(), Some(Duration::from_secs(30)));
    Ok(first)
}

/// Answers a token endpoint may give that every source must turn into a typed error: a body
/// that is `not_json`, one `missing` the token, one whose token holds `crlf`, a 10 MB body, a
/// truncated body and a closed connection.
pub fn malformed_answers(
    not_json: &'static str,
    missing: &'static str,
    crlf: &'static str,
) -> Vec<(&'static str, Fault)> {
    let body = |body: Bytes| Fault::Body {
        status: StatusCode::OK,
        content_type: "application/json",
        body,
    };
    vec![
        ("not JSON", body(Bytes::from_static(not_json.as_bytes()))),
        (
            "missing the token",
            body(Bytes::from_static(missing.as_bytes())),
        ),
        (
            "CR/LF in the token",
            body(Bytes::from_static(crlf.as_bytes())),
        ),
        (
            "10 MB body",
            body(Bytes::from(vec![b' '; 10 * 1024 * 1024])),
        ),
        ("truncated body", Fault::Truncated),
        ("closed connection", Fault::CloseConnection),
    ]
}

/// `err`, for case `case` of [`malformed_answers`], is the typed error that case calls for, and
/// shows none of `secrets`.
pub fn assert_malformed_answer_typed(case: &str, err: &Error, secrets: &[&str]) {
    let typed = match case {
        "10 MB body" => matches!(err.kind(), ErrorKind::ResponseTooLarge { .. }),
        "truncated body" | "closed connection" => {
            matches!(err.kind(), ErrorKind::Transport) && err.is_transient()
        }
        _ => matches!(err.kind(), ErrorKind::MalformedResponse { .. }),
    };
    assert!(typed, "{case}: {err:?}");
    let shown = format!("{err} {err:?}");
    assert!(
        secrets.iter().all(|secret| !shown.contains(secret)),
        "{case}: {shown}"
    );
}

/// What the hyper and axum examples promise: the SMS to 41793026727 was accepted, and the
/// server saw exactly one request, sent with the API key.
pub fn assert_one_sms_sent_with_the_api_key(server: &MockServer, answer: &serde_json::Value) {
    assert_eq!(
        answer["messages"][0]["destination"], "41793026727",
        "{answer}"
    );
    assert_eq!(
        answer["messages"][0]["status"]["name"], "PENDING_ACCEPTED",
        "{answer}"
    );
    let sent = mock::ReceivedRequest {
        method: http::Method::POST,
        path: "/sms/2/text/advanced".to_owned(),
        scheme: "App".to_owned(),
        status: StatusCode::OK,
    };
    assert_eq!(server.received(), [sent]);
}
