//! OAuth 2.0 client credentials against the embedded server, over real loopback sockets, on
//! tokio's paused clock (the server reads the same clock, so tokens expire without waiting).

mod support;

use std::time::Duration;

use http::StatusCode;
use infobip_auth::mock::{Fault, MockConfig, MockServer};
use infobip_auth::source::ClientCredentials;
use infobip_auth::{BoxError, ErrorKind, InfobipAuthLayer};
use tower::Layer as _;

use support::{
    Authenticated, assert_backoff, assert_malformed_answer_typed, assert_refused_without_a_loop,
    assert_retry_after_waited_out, assert_transient_500s_then_recovery, client,
    drop_a_request_mid_fetch, malformed_answers, ours, reports, requests_over_time, send,
    send_concurrently, sms, transport,
};

const CLIENT_ID: &str = "my-client";
const SECRET: &str = "s3cret-client-secret";
const SCOPES: &str = "sms:manage";
const MINUTE: Duration = Duration::from_secs(60);

fn config() -> MockConfig {
    MockConfig::new().oauth_client(CLIENT_ID, SECRET, SCOPES)
}

async fn server() -> Result<MockServer, BoxError> {
    Ok(MockServer::start_with(config()).await?)
}

/// A layer with client credentials for `secret` at `server`, and the service it makes.
fn oauth_layer(
    server: &MockServer,
    secret: &str,
) -> Result<(InfobipAuthLayer, Authenticated), BoxError> {
    let client = client();
    let source = ClientCredentials::builder(server.base_url(), CLIENT_ID, secret)
        .transport(transport(&client))
        .build()?;
    let layer = InfobipAuthLayer::new(source);
    let service = layer.layer(client);
    Ok((layer, service))
}

fn token_requests(server: &MockServer) -> u64 {
    server.counters().oauth_token_requests
}

#[tokio::test(start_paused = true)]
async fn five_hundred_cold_requests_make_one_token_request() -> Result<(), BoxError> {
    let server = server().await?;
    server.set_latency(Duration::from_millis(50)); // every request arrives while it is fetched
    let (_, service) = oauth_layer(&server, SECRET)?;
    for status in send_concurrently(&service, &server, 500).await {
        assert_eq!(status?, StatusCode::OK);
    }
    let counters = server.counters();
    assert_eq!(counters.oauth_token_requests, 1);
    assert_eq!(counters.max_token_requests_in_flight, 1);
    assert_eq!(counters.resource_requests("Bearer"), 500);
    assert_eq!(counters.unauthorized, 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn expiry_causes_one_renewal_and_no_401_with_expires_in_as_number_or_string()
-> Result<(), BoxError> {
    for as_string in [false, true] {
        let config = config()
            .oauth_token_lifetime(60 * MINUTE)
            .expires_in_as_string(as_string);
        let server = MockServer::start_with(config).await?;
        let (layer, mut service) = oauth_layer(&server, SECRET)?;
        assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
        assert_eq!(
            layer.credential().await?.lifetime(),
            Some(60 * MINUTE),
            "expires_in as a string: {as_string}"
        );
        for _ in 0..70 {
            tokio::time::sleep(MINUTE).await;
            assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
        }
        let counters = server.counters();
        assert_eq!(
            counters.oauth_token_requests, 2,
            "one renewal in 70 minutes"
        );
        assert_eq!(counters.unauthorized, 0, "renewed before the token died");
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_revoked_token_is_renewed_once_and_the_request_replayed() -> Result<(), BoxError> {
    let server = server().await?;
    let (layer, mut service) = oauth_layer(&server, SECRET)?;
    assert_eq!(send(&mut service, sms(&server)).await?, StatusCode::OK);

    server.revoke_token(layer.credential().await?.expose_token());
    assert_eq!(
        send(&mut service, sms(&server)).await?,
        StatusCode::OK,
        "replayed"
    );
    let counters = server.counters();
    assert_eq!(counters.unauthorized, 1);
    assert_eq!(counters.oauth_token_requests, 2);
    assert_eq!(counters.resource_requests("Bearer"), 3);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_hundred_requests_on_a_revoked_token_renew_it_once() -> Result<(), BoxError> {
    let server = server().await?;
    let (_, mut service) = oauth_layer(&server, SECRET)?;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);

    server.revoke_all_tokens();
    for status in send_concurrently(&service, &server, 100).await {
        assert_eq!(status?, StatusCode::OK);
    }
    let counters = server.counters();
    assert_eq!(counters.oauth_token_requests, 2, "one renewal");
    assert_eq!(counters.max_token_requests_in_flight, 1);
    assert!((1..=100).contains(&counters.unauthorized));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_failing_token_endpoint_is_retried_with_backoff_and_recovers() -> Result<(), BoxError> {
    let server = server().await?;
    for _ in 0..3 {
        server.inject(Fault::Status {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            retry_after: None,
        });
    }
    let (_, mut service) = oauth_layer(&server, SECRET)?;
    let (attempts, outcomes) = requests_over_time(
        &mut service,
        &server,
        token_requests,
        Duration::from_millis(100),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        attempts.len(),
        4,
        "three failures, one success, nothing in between"
    );
    assert_backoff(&attempts, Duration::from_secs(1));
    assert_transient_500s_then_recovery(&outcomes)?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn retry_after_from_the_token_endpoint_is_honoured() -> Result<(), BoxError> {
    let server = server().await?;
    server.inject(Fault::Status {
        status: StatusCode::TOO_MANY_REQUESTS,
        retry_after: Some(Duration::from_secs(30)),
    });
    let (_, mut service) = oauth_layer(&server, SECRET)?;
    let (attempts, outcomes) = requests_over_time(
        &mut service,
        &server,
        token_requests,
        Duration::from_secs(1),
        Duration::from_secs(45),
    )
    .await;
    let first = assert_retry_after_waited_out(&attempts, &outcomes)?;
    assert!(
        matches!(first.kind(), ErrorKind::TokenEndpoint(api) if api.code() == Some("TOO_MANY_REQUESTS"))
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_wrong_secret_is_reported_and_never_retried_in_a_loop() -> Result<(), BoxError> {
    let server = server().await?;
    let (_, mut service) = oauth_layer(&server, "wrong-secret")?;
    let (attempts, outcomes) = requests_over_time(
        &mut service,
        &server,
        token_requests,
        Duration::from_millis(100),
        Duration::from_secs(60),
    )
    .await;
    assert_refused_without_a_loop(&outcomes, &attempts, "wrong-secret")?;
    assert_eq!(server.counters().resource_requests("Bearer"), 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn malformed_token_answers_are_typed_errors() -> Result<(), BoxError> {
    let cases = malformed_answers(
        "access_token=eyJraWQ&expires_in=3600",
        r#"{"expires_in":3600}"#,
        r#"{"access_token":"eyJraWQ\r\nX-Evil: 1","expires_in":3600}"#,
    );
    let server = server().await?;
    for (case, fault) in cases {
        server.inject(fault);
        let (layer, _) = oauth_layer(&server, SECRET)?;
        let err = match layer.credential().await {
            Ok(credential) => return Err(format!("{case}: accepted as {credential:?}").into()),
            Err(err) => err,
        };
        assert_malformed_answer_typed(case, &err, &["eyJraWQ", SECRET]);
    }
    assert_eq!(token_requests(&server), 6);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_dropped_request_leaves_its_token_to_the_cache() -> Result<(), BoxError> {
    let server = server().await?;
    let (_, mut service) = oauth_layer(&server, SECRET)?;
    drop_a_request_mid_fetch(&server, &mut service).await?;
    let counters = server.counters();
    assert_eq!(
        counters.oauth_token_requests, 1,
        "the token request finished on its own"
    );
    assert_eq!(counters.resource_requests("Bearer"), 1);
    Ok(())
}

#[tokio::test]
async fn secrets_never_appear_in_debug_or_errors() -> Result<(), BoxError> {
    let server = server().await?;
    let (layer, mut service) = oauth_layer(&server, SECRET)?;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    let token = layer.credential().await?.expose_token().to_owned();
    let shown = format!("{layer:?} {service:?} {:?}", layer.credential().await?);
    assert!(
        !shown.contains(SECRET) && !shown.contains(&token),
        "{shown}"
    );

    let (wrong, _) = oauth_layer(&server, "wrong-secret")?;
    let err = wrong
        .credential()
        .await
        .err()
        .ok_or("a wrong secret got a token")?;
    let shown = format!("{err} {err:?} {wrong:?}");
    assert!(!shown.contains("wrong-secret"), "{shown}");
    Ok(())
}

/// A token issued but whose answer was lost is harmless: the failure is a typed transient
/// error, backed off from like any other, and a held token keeps serving meanwhile (a new
/// one does not end it).
#[tokio::test(start_paused = true)]
async fn a_token_whose_answer_is_lost_is_backed_off_from_and_harmless() -> Result<(), BoxError> {
    let server = server().await?;
    for _ in 0..3 {
        server.inject(Fault::AnswerLost);
    }
    let (layer, mut service) = oauth_layer(&server, SECRET)?;
    let (attempts, outcomes) = requests_over_time(
        &mut service,
        &server,
        token_requests,
        Duration::from_millis(100),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(attempts.len(), 4, "three lost, one answered");
    assert_backoff(&attempts, Duration::from_secs(1));
    let first_ok = outcomes
        .iter()
        .position(Result::is_ok)
        .ok_or("never recovered")?;
    for lost in &outcomes[..first_ok] {
        let err = ours(lost.as_ref().err().ok_or("succeeded")?)?;
        assert!(matches!(err.kind(), ErrorKind::Transport), "{err}");
        assert!(err.is_transient());
    }
    assert!(
        outcomes[first_ok..]
            .iter()
            .all(|o| matches!(o, Ok(StatusCode::OK)))
    );

    server.inject(Fault::AnswerLost);
    assert!(layer.refresh().await.is_err(), "the answer was lost");
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    assert_eq!(token_requests(&server), 5, "the held token served");
    assert_eq!(server.counters().unauthorized, 0);
    Ok(())
}

/// A hyper-util client whose connections never open: the connector neither connects nor fails,
/// as a TCP connect to a host that drops SYNs does.
fn client_that_never_connects() -> hyper_util::client::legacy::Client<
    impl hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
    http_body_util::Full<bytes::Bytes>,
> {
    type Io = hyper_util::rt::TokioIo<tokio::net::TcpStream>;
    let never = tower::service_fn(|_: http::Uri| std::future::pending::<std::io::Result<Io>>());
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(never)
}

/// The transport's timeout covers the whole exchange, the connection included: a connect that
/// hangs inside a hyper-util client ends in `Timeout` when the timeout says, for a token
/// request and for a session's `DELETE` and create.
#[tokio::test(start_paused = true)]
async fn a_connect_that_hangs_meets_the_transport_timeout() -> Result<(), BoxError> {
    use infobip_auth::Credential;
    use infobip_auth::source::{Session, TokenSource, Transport};
    let timeout = Duration::from_secs(7);
    let transport = || Transport::new(client_that_never_connects()).timeout(timeout);
    // Far past the transport's timeout: reached only if the transport's never fires.
    let bound = Duration::from_secs(3600);

    let oauth = ClientCredentials::builder("https://xyz12.api.infobip.com", CLIENT_ID, SECRET)
        .transport(transport())
        .build()?;
    let start = tokio::time::Instant::now();
    let err = tokio::time::timeout(bound, oauth.fetch(None))
        .await?
        .err()
        .ok_or("a token")?;
    assert!(matches!(err.kind(), ErrorKind::Timeout), "{err:?}");
    assert_eq!(start.elapsed(), timeout);

    let session = Session::builder("https://xyz12.api.infobip.com", "username", "password")
        .transport(transport())
        .build()?;
    let start = tokio::time::Instant::now();
    let err = tokio::time::timeout(bound, session.fetch(None))
        .await?
        .err()
        .ok_or("a session")?;
    assert!(matches!(err.kind(), ErrorKind::Timeout), "{err:?}");
    assert_eq!(start.elapsed(), timeout);
    // A renewal: the `DELETE` and then the create (which settles whether it ended the
    // session) each meet the timeout.
    let previous = Credential::new("IBSSO", "2f9b4d31-2d0d-49a8-85f0-9b862bdca394")?;
    let start = tokio::time::Instant::now();
    let err = tokio::time::timeout(bound, session.fetch(Some(&previous)))
        .await?
        .err()
        .ok_or("a session")?;
    assert!(matches!(err.kind(), ErrorKind::Timeout), "{err:?}");
    assert_eq!(start.elapsed(), 2 * timeout);
    Ok(())
}
