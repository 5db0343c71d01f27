//! IBSSO sessions against the embedded server, over real loopback sockets, on tokio's paused
//! clock (the server reads the same clock, so sessions expire without waiting).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use infobip_auth::mock::{Fault, MockConfig, MockServer, SessionEvent};
use infobip_auth::source::{Session, TokenSource as _, Transport};
use infobip_auth::{BoxError, Credential, ErrorKind, InfobipAuthLayer, ReplayPolicy};
use tokio::net::TcpSocket;
use tower::{Layer as _, Service};

use support::{
    Authenticated, HttpClient, assert_backoff, assert_malformed_answer_typed,
    assert_refused_without_a_loop, assert_retry_after_waited_out,
    assert_transient_500s_then_recovery, client, drop_a_request_mid_fetch, malformed_answers, ours,
    reports, requests_over_time, send, send_concurrently, sms, transport,
};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-password";
const SCOPES: &str = "sms:manage";
const MINUTE: Duration = Duration::from_secs(60);

async fn server(idle: Duration) -> Result<MockServer, BoxError> {
    let config = MockConfig::new()
        .user(USER, PASSWORD, SCOPES)
        .session_idle_timeout(idle);
    Ok(MockServer::start_with(config).await?)
}

/// A layer with a session for `password` at `server`, and the service it makes.
fn session_layer(
    server: &MockServer,
    password: &str,
    idle: Duration,
) -> Result<(InfobipAuthLayer, Authenticated), BoxError> {
    let client = client();
    let session = Session::builder(server.base_url(), USER, password)
        .transport(transport(&client))
        .idle_timeout(idle)
        .build()?;
    let layer = InfobipAuthLayer::new(session);
    let service = layer.layer(client);
    Ok((layer, service))
}

fn created(session: u64) -> SessionEvent {
    SessionEvent::Created { session }
}

fn destroyed(session: u64) -> SessionEvent {
    SessionEvent::Destroyed { session }
}

#[tokio::test(start_paused = true)]
async fn five_hundred_cold_requests_create_one_session() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    server.set_latency(Duration::from_millis(50)); // every request arrives while it is created
    let (_, service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    for status in send_concurrently(&service, &server, 500).await {
        assert_eq!(status?, StatusCode::OK);
    }
    let counters = server.counters();
    assert_eq!(counters.session_creates, 1);
    assert_eq!(counters.max_token_requests_in_flight, 1);
    assert_eq!(counters.resource_requests("IBSSO"), 500);
    assert_eq!(counters.unauthorized, 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn use_extends_the_session_and_an_idle_gap_gets_a_new_one_before_sending()
-> Result<(), BoxError> {
    let server = server(10 * MINUTE).await?;
    let (_, mut service) = session_layer(&server, PASSWORD, 10 * MINUTE)?;
    for _ in 0..6 {
        assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
        tokio::time::sleep(5 * MINUTE).await; // within the session's 10 minutes
    }
    assert_eq!(
        server.counters().session_creates,
        1,
        "use extends the session"
    );

    tokio::time::sleep(6 * MINUTE).await; // 11 minutes without use: the server ended it
    assert_eq!(send(&mut service, sms(&server)).await?, StatusCode::OK);
    let counters = server.counters();
    assert_eq!(counters.session_creates, 2, "exactly one renewal");
    assert_eq!(
        counters.unauthorized, 0,
        "no request went out with the dead session"
    );
    assert_eq!(counters.session_events, [created(1), created(2)]);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_old_session_is_ended_before_the_new_one_is_created() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (layer, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    layer.refresh().await?; // a renewal while the session lives
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    let counters = server.counters();
    assert_eq!(
        counters.session_events,
        [created(1), destroyed(1), created(2)],
        "the server's order"
    );
    assert_eq!((counters.session_creates, counters.session_deletes), (2, 1));
    Ok(())
}

/// A renewal whose old session was ended but whose new one was refused leaves no session to
/// send: requests get the renewal's error, instead of going out with the ended session and
/// coming back `401`; once the backoff ends, a new session is made without ending one again.
#[tokio::test(start_paused = true)]
async fn a_renewal_that_ended_the_session_but_failed_sends_nothing_with_it() -> Result<(), BoxError>
{
    let server = server(60 * MINUTE).await?;
    let (layer, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    server.inject(Fault::Status {
        status: StatusCode::SERVICE_UNAVAILABLE,
        retry_after: None,
    });
    assert!(
        layer.refresh().await.is_err(),
        "the new session was refused"
    );
    let refused = send(&mut service, reports(&server)).await;
    let kind = refused
        .as_ref()
        .err()
        .and_then(|e| infobip_auth::Error::find(&**e))
        .map(infobip_auth::Error::kind);
    assert!(
        matches!(kind, Some(infobip_auth::ErrorKind::TokenEndpoint(_))),
        "sent with the ended session: {refused:?}"
    );
    assert_eq!(server.counters().unauthorized, 0);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    let counters = server.counters();
    assert_eq!(
        counters.session_events,
        [created(1), destroyed(1), created(2)],
        "the server's order"
    );
    assert_eq!((counters.session_deletes, counters.unauthorized), (1, 0));
    Ok(())
}

/// Against a server whose sessions end an hour after they were made however busy (as
/// Infobip's pages say they may), `max_lifetime` renews each ahead of its end, so no request
/// meets a `401`. Without it, the busy session dies at the server and requests meet `401`s
/// (each cured by a renewal and a replay, at the cost of a round trip).
#[tokio::test(start_paused = true)]
async fn max_lifetime_renews_ahead_of_a_server_that_ends_sessions_at_an_age() -> Result<(), BoxError>
{
    let mut unauthorized = Vec::new();
    for max_lifetime in [Some(60 * MINUTE), None] {
        let config = MockConfig::new()
            .user(USER, PASSWORD, SCOPES)
            .session_max_lifetime(60 * MINUTE);
        let server = MockServer::start_with(config).await?;
        let client = client();
        let mut session =
            Session::builder(server.base_url(), USER, PASSWORD).transport(transport(&client));
        if let Some(lifetime) = max_lifetime {
            session = session.max_lifetime(lifetime);
        }
        let mut service = InfobipAuthLayer::new(session.build()?).layer(client);
        // Busy for three hours: a request every minute.
        for _ in 0..180 {
            assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
            tokio::time::sleep(MINUTE).await;
        }
        let counters = server.counters();
        assert!(counters.session_creates >= 3, "{counters:?}");
        unauthorized.push(counters.unauthorized);
    }
    assert_eq!(unauthorized[0], 0, "renewed ahead");
    assert!(
        unauthorized[1] >= 2,
        "the server does end busy sessions: {unauthorized:?}"
    );
    Ok(())
}

/// A renewal ends the old session before it creates the next, as Infobip wants: from then on
/// no request is sent with the old one. Requests wait for the new session instead of coming
/// back `401` (found by the model test: here through a layer that never replays, like a
/// request whose body cannot be copied), whether the renewal is ahead of a maximum lifetime or
/// asked for with `refresh()`.
#[tokio::test(start_paused = true)]
async fn no_request_goes_out_with_a_session_its_renewal_has_ended() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let client = client();
    let session = Session::builder(server.base_url(), USER, PASSWORD)
        .transport(transport(&client))
        .max_lifetime(10 * MINUTE)
        .build()?;
    let layer = InfobipAuthLayer::new(session).replay(ReplayPolicy::never());
    let service = layer.layer(client);
    assert_eq!(
        send(&mut service.clone(), reports(&server)).await?,
        StatusCode::OK
    );

    // Requests every 100 ms for two seconds, during a renewal whose create takes one.
    let busy_during_a_slow_renewal = async || {
        server.inject(Fault::Delay(Duration::from_secs(1)));
        let mut requests = Vec::new();
        for _ in 0..20 {
            let (mut service, request) = (service.clone(), reports(&server));
            requests.push(tokio::spawn(
                async move { send(&mut service, request).await },
            ));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for request in requests {
            assert_eq!(request.await??, StatusCode::OK);
        }
        Ok::<_, BoxError>(())
    };
    tokio::time::sleep(8 * MINUTE).await; // past ~3/4 of the maximum lifetime: renewed ahead
    busy_during_a_slow_renewal().await?;
    let refresh = tokio::spawn({
        let layer = layer.clone();
        async move { layer.refresh().await }
    });
    busy_during_a_slow_renewal().await?;
    refresh.await??;

    let counters = server.counters();
    assert_eq!(counters.unauthorized, 0, "sent with an ended session");
    assert_eq!(
        counters.session_events,
        [
            created(1),
            destroyed(1),
            created(2),
            destroyed(2),
            created(3)
        ]
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_revoked_session_is_renewed_once_and_the_request_replayed() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (layer, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    assert_eq!(send(&mut service, sms(&server)).await?, StatusCode::OK);

    server.revoke_token(layer.credential().await?.expose_token());
    assert_eq!(
        send(&mut service, sms(&server)).await?,
        StatusCode::OK,
        "replayed"
    );
    let counters = server.counters();
    assert_eq!(counters.unauthorized, 1);
    assert_eq!(counters.session_creates, 2);
    assert_eq!(
        counters.session_deletes, 1,
        "the dead session is deleted once"
    );
    assert_eq!(counters.resource_requests("IBSSO"), 3);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_hundred_requests_on_a_revoked_session_renew_it_once() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (_, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);

    server.revoke_all_tokens();
    for status in send_concurrently(&service, &server, 100).await {
        assert_eq!(status?, StatusCode::OK);
    }
    let counters = server.counters();
    assert_eq!(counters.session_creates, 2, "one renewal");
    assert_eq!(counters.session_deletes, 1, "no storm of deletes");
    assert_eq!(counters.max_token_requests_in_flight, 1);
    assert!((1..=100).contains(&counters.unauthorized));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_failing_session_endpoint_is_retried_with_backoff_and_recovers() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    for _ in 0..3 {
        server.inject(Fault::Status {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            retry_after: None,
        });
    }
    let (_, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    let (attempts, outcomes) = requests_over_time(
        &mut service,
        &server,
        |s| s.counters().session_creates,
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
async fn retry_after_from_the_session_endpoint_is_honoured() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    server.inject(Fault::Status {
        status: StatusCode::TOO_MANY_REQUESTS,
        retry_after: Some(Duration::from_secs(30)),
    });
    let (_, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    let (attempts, outcomes) = requests_over_time(
        &mut service,
        &server,
        |s| s.counters().session_creates,
        Duration::from_secs(1),
        Duration::from_secs(45),
    )
    .await;
    assert_retry_after_waited_out(&attempts, &outcomes)?;
    Ok(())
}

/// Sessions created faster than Infobip allows (10 a second) are refused `429` with no
/// `Retry-After`: the layer reports it as a transient token-endpoint error, backs off instead
/// of asking again at once, and gets its session once the second has passed.
#[tokio::test(start_paused = true)]
async fn a_throttled_session_endpoint_is_backed_off_from_and_recovers() -> Result<(), BoxError> {
    let config =
        MockConfig::new()
            .user(USER, PASSWORD, SCOPES)
            .user("bob", "bobs-password", SCOPES);
    let server = MockServer::start_with(config).await?;
    let other = client();
    let login = r#"{"username":"bob","password":"bobs-password"}"#;
    for _ in 0..10 {
        let request = http::Request::post(server.url("/auth/1/session"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::from(login))?;
        assert_eq!(other.request(request).await?.status(), StatusCode::OK);
    }

    let (_, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    let (attempts, outcomes) = requests_over_time(
        &mut service,
        &server,
        |s| s.counters().session_creates - 10,
        Duration::from_millis(100),
        Duration::from_secs(10),
    )
    .await;
    let refused = outcomes.iter().take_while(|outcome| outcome.is_err());
    for outcome in refused.clone() {
        let err = support::ours(outcome.as_ref().err().ok_or("no error")?)?;
        assert!(err.is_transient(), "{err:?}");
        assert!(
            matches!(err.kind(), infobip_auth::ErrorKind::TokenEndpoint(api) if api.status() == 429),
            "{err:?}"
        );
        // Infobip sends no `Retry-After` here: an error says at most when the backoff ends.
        assert!(
            err.retry_after()
                .is_none_or(|left| left <= Duration::from_secs(2)),
            "{err:?}"
        );
    }
    assert!(refused.count() >= 1, "the first session was throttled");
    assert!(
        outcomes
            .iter()
            .skip_while(|outcome| outcome.is_err())
            .all(|outcome| matches!(outcome, Ok(StatusCode::OK))),
        "recovered, and stayed so"
    );
    assert!(matches!(outcomes.last(), Some(Ok(StatusCode::OK))));
    // A second of throttling costs two or three attempts (backoff 1 s, then 2 s, each at
    // least half), not one per request.
    assert!((2..=3).contains(&attempts.len()), "{attempts:?}");
    assert_backoff(&attempts, Duration::from_secs(1));
    let counters = server.counters();
    assert_eq!(
        counters.throttled,
        u64::try_from(attempts.len())? - 1,
        "every attempt but the last was refused"
    );
    assert_eq!(counters.session_events, [created(1), created(2)]);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_wrong_password_is_reported_and_never_retried_in_a_loop() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (_, mut service) = session_layer(&server, "wrong-password", 60 * MINUTE)?;
    let (attempts, outcomes) = requests_over_time(
        &mut service,
        &server,
        |s| s.counters().session_creates,
        Duration::from_millis(100),
        Duration::from_secs(60),
    )
    .await;
    assert_refused_without_a_loop(&outcomes, &attempts, "wrong-password")?;
    assert_eq!(server.counters().resource_requests("IBSSO"), 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn malformed_session_answers_are_typed_errors() -> Result<(), BoxError> {
    let cases = malformed_answers(
        "<html>hello</html>",
        r#"{"session":"2f9b4d31"}"#,
        r#"{"token":"2f9b\r\nX-Evil: 1"}"#,
    );
    let server = server(60 * MINUTE).await?;
    for (case, fault) in cases {
        server.inject(fault);
        let (layer, _) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
        let err = match layer.credential().await {
            Ok(credential) => return Err(format!("{case}: accepted as {credential:?}").into()),
            Err(err) => err,
        };
        assert_malformed_answer_typed(case, &err, &["2f9b", PASSWORD]);
    }
    assert_eq!(server.counters().session_creates, 6);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_dropped_request_leaves_its_session_to_the_cache() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (layer, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    drop_a_request_mid_fetch(&server, &mut service).await?;
    let counters = server.counters();
    assert_eq!(
        counters.session_creates, 1,
        "the token request finished on its own"
    );
    assert_eq!(counters.session_events, [created(1)], "no orphaned session");
    assert_eq!(counters.resource_requests("IBSSO"), 1);

    layer.revoke().await?;
    assert_eq!(server.counters().session_events, [created(1), destroyed(1)]);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn revoke_ends_the_session_on_shutdown() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (layer, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    let token = layer.credential().await?.expose_token().to_owned();
    layer.revoke().await?;
    let counters = server.counters();
    assert_eq!(counters.session_events, [created(1), destroyed(1)]);

    // The ended token is refused; the layer makes a new session for the next request.
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    assert_eq!(server.counters().session_events.last(), Some(&created(2)));
    assert!(!format!("{layer:?} {service:?}").contains(&token));
    Ok(())
}

/// Two `revoke()` calls at once (two parts of an app shutting down): the second waits for the
/// first, so neither reports the session ended while it is alive. Here the first's `DELETE` is
/// throttled and fails, and so does the second's; the next one ends it (found by the model
/// test: the second used to return `Ok` at once, with the session kept alive).
#[tokio::test(start_paused = true)]
async fn concurrent_revokes_report_the_session_ended_only_once_it_is() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (layer, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    // Another client uses up this second's deletes.
    let other = client();
    for _ in 0..10 {
        let request = http::Request::delete(server.url("/auth/1/session"))
            .header("authorization", "IBSSO not-a-session")
            .body(http_body_util::Full::default())?;
        assert_eq!(
            other.request(request).await?.status(),
            StatusCode::UNAUTHORIZED
        );
    }

    let (first, second) = tokio::join!(layer.revoke(), layer.revoke());
    let ended = server.counters().session_events.contains(&destroyed(1));
    assert!(!ended, "the deletes were throttled");
    assert!(first.is_err(), "{first:?}");
    assert!(second.is_err(), "reported ended while alive: {second:?}");

    tokio::time::sleep(Duration::from_secs(1)).await;
    layer.revoke().await?;
    assert_eq!(server.counters().session_events, [created(1), destroyed(1)]);
    Ok(())
}

/// A request made while `revoke()` ends the session waits for that `DELETE` to be answered
/// before a new session is created: Infobip wants the live session ended first, and hands it
/// to a login that comes before its end (so the request went out with it, and the next one
/// with it ended, found by the model test). Here the `DELETE` takes a second.
#[tokio::test(start_paused = true)]
async fn a_request_during_revoke_creates_its_session_once_the_old_one_is_ended()
-> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let client = client();
    let slow_deletes = {
        let client = client.clone();
        tower::service_fn(
            move |request: http::Request<http_body_util::Full<bytes::Bytes>>| {
                let client = client.clone();
                async move {
                    if request.method() == http::Method::DELETE {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    client.request(request).await
                }
            },
        )
    };
    let session = Session::builder(server.base_url(), USER, PASSWORD)
        .transport(infobip_auth::source::Transport::new(slow_deletes))
        .build()?;
    let layer = InfobipAuthLayer::new(session);
    let mut service = layer.layer(client);
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);

    let (revoked, status) = tokio::join!(layer.revoke(), send(&mut service, reports(&server)));
    revoked?;
    assert_eq!(status?, StatusCode::OK);
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    let counters = server.counters();
    assert_eq!(
        counters.session_events,
        [created(1), destroyed(1), created(2)]
    );
    assert_eq!(counters.unauthorized, 0, "sent with the revoked session");
    Ok(())
}

#[tokio::test]
async fn secrets_never_appear_in_debug_or_errors() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (layer, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    let token = layer.credential().await?.expose_token().to_owned();
    let shown = format!("{layer:?} {service:?} {:?}", layer.credential().await?);
    assert!(
        !shown.contains(PASSWORD) && !shown.contains(&token),
        "{shown}"
    );

    let (wrong, _) = session_layer(&server, "wrong-password", 60 * MINUTE)?;
    let err = wrong
        .credential()
        .await
        .err()
        .ok_or("a wrong password made a session")?;
    let shown = format!("{err} {err:?} {wrong:?}");
    assert!(!shown.contains("wrong-password"), "{shown}");
    Ok(())
}

/// A `revoke()` given up while its `DELETE` is under way (a shutdown that times out) still
/// ends the session, or keeps it to end later: here the `DELETE` is slow and then fails, and
/// the next `revoke()` ends the session the first could not (it used to be forgotten, alive at
/// the server).
#[tokio::test(start_paused = true)]
async fn a_revoke_given_up_mid_delete_keeps_the_session_to_end_later() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (layer, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    server.set_delete_latency(Duration::from_secs(2));
    server.inject_delete(Fault::Status {
        status: StatusCode::SERVICE_UNAVAILABLE,
        retry_after: None,
    });
    let given_up = tokio::time::timeout(Duration::from_secs(1), layer.revoke()).await;
    assert!(given_up.is_err(), "the DELETE takes two seconds");
    tokio::time::sleep(Duration::from_secs(2)).await; // the DELETE is answered 503
    assert_eq!(server.counters().session_events, [created(1)]);

    server.set_delete_latency(Duration::ZERO);
    layer.revoke().await?;
    let counters = server.counters();
    assert_eq!(counters.session_events, [created(1), destroyed(1)]);
    assert_eq!(counters.session_deletes, 2);
    Ok(())
}

/// The same, with a `DELETE` that succeeds after its caller gave up: the session is ended,
/// and the next request makes a new one without ending anything again.
#[tokio::test(start_paused = true)]
async fn a_revoke_given_up_mid_delete_still_ends_the_session() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (layer, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    server.set_delete_latency(Duration::from_secs(2));
    let given_up = tokio::time::timeout(Duration::from_secs(1), layer.revoke()).await;
    assert!(given_up.is_err(), "the DELETE takes two seconds");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server.counters().session_events, [created(1), destroyed(1)]);

    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    let counters = server.counters();
    assert_eq!(
        counters.session_events,
        [created(1), destroyed(1), created(2)]
    );
    assert_eq!(counters.session_deletes, 1);
    Ok(())
}

/// A request waiting for a renewal when `revoke()` is called is not sent with the session
/// the renewal makes, which the revocation ends: it waits for that end and a fresh session.
/// (It used to get the renewed session and a `401`; here its call of the inner service takes a
/// second, so the `DELETE` comes first.)
#[tokio::test(start_paused = true)]
async fn a_request_waiting_for_a_renewal_being_revoked_gets_a_fresh_session() -> Result<(), BoxError>
{
    let server = server(60 * MINUTE).await?;
    let (layer, service) = slow_to_send(&server, Duration::from_secs(1))?;
    layer.credential().await?;

    server.inject(Fault::Delay(Duration::from_secs(1))); // the renewal's create
    let renewal = tokio::spawn({
        let layer = layer.clone();
        async move { layer.refresh().await.map(drop) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await; // the old session is ended
    let request = tokio::spawn(tower::ServiceExt::oneshot(service, reports(&server)));
    tokio::time::sleep(Duration::from_millis(100)).await; // the request waits for the renewal
    layer.revoke().await?;
    let response = request.await??;
    assert_eq!(response.status(), StatusCode::OK);
    let _ = renewal.await?;
    let counters = server.counters();
    assert_eq!(counters.unauthorized, 0, "sent with the revoked session");
    assert_eq!(
        counters.session_events,
        [
            created(1),
            destroyed(1),
            created(2),
            destroyed(2),
            created(3)
        ]
    );
    Ok(())
}

/// A layer with a session at `server`, and a service (that never replays) whose calls of the
/// inner client take `delay` before the request goes out.
fn slow_to_send(
    server: &MockServer,
    delay: Duration,
) -> Result<(InfobipAuthLayer, SlowToSend), BoxError> {
    let client = client();
    let session = Session::builder(server.base_url(), USER, PASSWORD)
        .transport(transport(&client))
        .build()?;
    let layer = InfobipAuthLayer::new(session);
    let slow = tower::service_fn(
        move |request: http::Request<http_body_util::Full<bytes::Bytes>>| {
            let client = client.clone();
            async move {
                tokio::time::sleep(delay).await;
                client.request(request).await
            }
        },
    );
    let service = layer
        .clone()
        .replay(ReplayPolicy::never())
        .layer(tower::util::BoxCloneService::new(slow));
    Ok((layer, service))
}

type SlowToSend = infobip_auth::InfobipAuth<
    tower::util::BoxCloneService<
        http::Request<http_body_util::Full<bytes::Bytes>>,
        http::Response<hyper::body::Incoming>,
        hyper_util::client::legacy::Error,
    >,
>;

/// The same when the renewal fails (its `DELETE` of the old session answers `503`): the
/// request does not fall back on the old session, which the revocation ends, but gets the
/// renewal's error. (It used to be sent with the old session and get a `401`.)
#[tokio::test(start_paused = true)]
async fn a_request_waiting_for_a_failed_renewal_being_revoked_gets_its_error()
-> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (layer, service) = slow_to_send(&server, Duration::from_secs(2))?;
    layer.credential().await?;

    server.set_delete_latency(Duration::from_secs(1));
    server.inject_delete(Fault::Status {
        status: StatusCode::SERVICE_UNAVAILABLE,
        retry_after: None,
    });
    let renewal = tokio::spawn({
        let layer = layer.clone();
        async move { layer.refresh().await.map(drop) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await; // the old session is being ended
    let request = tokio::spawn(tower::ServiceExt::oneshot(service, reports(&server)));
    tokio::time::sleep(Duration::from_millis(100)).await; // the request waits for the renewal
    layer.revoke().await?;
    let failed = match request.await? {
        Ok(response) => return Err(format!("answered {}", response.status()).into()),
        Err(err) => err,
    };
    assert!(ours(&failed)?.is_transient(), "{failed}");
    assert!(renewal.await?.is_err());
    let counters = server.counters();
    assert_eq!(counters.unauthorized, 0, "sent with the revoked session");
    assert_eq!(counters.session_events, [created(1), destroyed(1)]);
    Ok(())
}

/// A create whose answer is lost made a session all the same: after the backoff the next
/// create is handed that same session (Infobip gives a repeated login the live one), so no
/// session is left alive unknown to the client.
#[tokio::test(start_paused = true)]
async fn a_create_whose_answer_is_lost_is_handed_the_same_session_next() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (layer, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    server.inject(Fault::AnswerLost);
    let lost = send(&mut service, reports(&server)).await;
    let err = lost.as_ref().err().map(ours).transpose()?;
    assert!(
        err.is_some_and(infobip_auth::Error::is_transient),
        "{lost:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await; // past the backoff
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    assert_eq!(server.counters().session_events, [created(1)]);

    // The same within a renewal: the old session was ended, the new one's answer lost.
    server.inject(Fault::AnswerLost);
    assert!(layer.refresh().await.is_err(), "the answer was lost");
    let during_backoff = send(&mut service, reports(&server)).await;
    let err = during_backoff.as_ref().err().map(ours).transpose()?;
    assert!(
        err.is_some_and(infobip_auth::Error::is_transient),
        "{during_backoff:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    layer.revoke().await?;
    let counters = server.counters();
    assert_eq!(
        counters.session_events,
        [created(1), destroyed(1), created(2), destroyed(2)]
    );
    assert_eq!(counters.unauthorized, 0);
    Ok(())
}

/// A renewal's `DELETE` that ended the session but whose answer was lost: the create that
/// follows gets a new session (the old one is gone), so the renewal succeeds and nothing is
/// sent with the ended session.
#[tokio::test(start_paused = true)]
async fn a_renewal_whose_delete_answer_is_lost_goes_on_to_a_new_session() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (layer, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    server.inject_delete(Fault::AnswerLost);
    layer.refresh().await?;
    assert_eq!(
        server.counters().session_events,
        [created(1), destroyed(1), created(2)]
    );
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    layer.revoke().await?;
    let counters = server.counters();
    assert_eq!(
        counters.session_events,
        [created(1), destroyed(1), created(2), destroyed(2)]
    );
    assert_eq!(counters.session_deletes, 2, "the lost one, revoke()");
    assert_eq!(counters.unauthorized, 0, "sent with the ended session");
    Ok(())
}

/// A renewal's `DELETE` that never reached the server: the create hands back the session
/// still alive, so the renewal fails as after a `5xx` and that session keeps serving; the
/// next renewal, after the backoff, ends it and makes a new one.
#[tokio::test(start_paused = true)]
async fn a_renewal_whose_delete_never_arrived_keeps_serving_the_live_session()
-> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (layer, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    server.inject_delete(Fault::CloseConnection);
    let failed = layer.refresh().await;
    assert!(
        failed
            .as_ref()
            .is_err_and(infobip_auth::Error::is_transient),
        "{failed:?}"
    );
    assert_eq!(server.counters().session_events, [created(1)]);
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    renews_after_the_backoff(&layer, &mut service, &server).await
}

/// A renewal's `DELETE` whose answer was lost, and a create that fails too: nothing tells
/// whether the session was ended, so it is not sent again (the renewal's error instead), and
/// the next renewal's `DELETE` of it (`401`) counts as ended, so a new session is made.
#[tokio::test(start_paused = true)]
async fn a_renewal_in_doubt_about_its_delete_sends_nothing_with_that_session()
-> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (layer, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    server.inject_delete(Fault::AnswerLost);
    server.inject(Fault::CloseConnection);
    assert!(layer.refresh().await.is_err(), "no answer to either");
    assert_eq!(server.counters().session_events, [created(1), destroyed(1)]);
    // Not sent with the session the `DELETE` may have ended: the renewal's error instead.
    let during_backoff = send(&mut service, reports(&server)).await;
    let err = during_backoff.as_ref().err().map(ours).transpose()?;
    assert!(
        err.is_some_and(infobip_auth::Error::is_transient),
        "{during_backoff:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await; // past the backoff
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    layer.revoke().await?;
    let counters = server.counters();
    assert_eq!(
        counters.session_events,
        [created(1), destroyed(1), created(2), destroyed(2)]
    );
    assert_eq!(
        counters.session_deletes, 3,
        "the lost one, its repeat, revoke()"
    );
    assert_eq!(counters.unauthorized, 0, "sent with the ended session");
    Ok(())
}

/// A `revoke()` whose `DELETE` ended the session but whose answer was lost reports the
/// failure; the session is kept to be ended, and the next `revoke()` finds it ended (`401`)
/// and succeeds. Nothing is sent with it, and a later request gets a new session.
#[tokio::test(start_paused = true)]
async fn a_revoke_whose_answer_is_lost_is_finished_by_the_next() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (layer, mut service) = session_layer(&server, PASSWORD, 60 * MINUTE)?;
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    server.inject_delete(Fault::AnswerLost);
    let lost = layer.revoke().await;
    assert!(
        lost.as_ref().is_err_and(infobip_auth::Error::is_transient),
        "{lost:?}"
    );
    layer.revoke().await?;
    assert_eq!(server.counters().session_deletes, 2);
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    layer.revoke().await?;
    let counters = server.counters();
    assert_eq!(
        counters.session_events,
        [created(1), destroyed(1), created(2), destroyed(2)]
    );
    assert_eq!(counters.unauthorized, 0, "sent with the ended session");
    Ok(())
}

/// A loopback address where nothing listens: a socket bound to it (so no other test takes the
/// port) but not listening, which refuses every connection.
fn nothing_listening() -> Result<(TcpSocket, SocketAddr), BoxError> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let address = socket.local_addr()?;
    Ok((socket, address))
}

/// `client`, sending every request to `refusing` instead while `cut_off` is set: the session
/// endpoint cannot be reached, and the requests never leave.
fn cut_off_while(
    client: HttpClient,
    cut_off: Arc<AtomicBool>,
    refusing: SocketAddr,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = http::Response<Incoming>,
    Error = hyper_util::client::legacy::Error,
    Future: Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |mut request: Request<Full<Bytes>>| {
        if cut_off.load(Ordering::SeqCst) {
            let path = request.uri().path().to_owned();
            if let Ok(uri) = format!("http://{refusing}{path}").parse() {
                *request.uri_mut() = uri;
            }
        }
        client.request(request)
    })
}

/// A renewal whose `DELETE` could not be sent at all (the session endpoint refuses the
/// connection) knows the session is alive: the renewal fails as after a `5xx`, the session
/// keeps serving through the backoff, and the next renewal ends it and makes a new one.
#[tokio::test(start_paused = true)]
async fn a_renewal_that_cannot_connect_keeps_serving_the_live_session() -> Result<(), BoxError> {
    let server = server(60 * MINUTE).await?;
    let (_socket, refusing) = nothing_listening()?;
    let cut_off = Arc::new(AtomicBool::new(false));
    let session = Session::builder(server.base_url(), USER, PASSWORD)
        .transport(Transport::new(cut_off_while(
            client(),
            Arc::clone(&cut_off),
            refusing,
        )))
        .build()?;
    let layer = InfobipAuthLayer::new(session);
    let mut service = layer.layer(client());
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);

    cut_off.store(true, Ordering::SeqCst);
    let failed = layer.refresh().await;
    let err = failed.as_ref().err().ok_or("renewed while cut off")?;
    assert!(
        err.is_transient() && !err.is_previous_in_doubt() && !err.is_previous_ended(),
        "{err:?}"
    );
    assert!(matches!(err.kind(), ErrorKind::Transport), "{err:?}");
    // The live session serves through the backoff.
    assert_eq!(send(&mut service, reports(&server)).await?, StatusCode::OK);
    let counters = server.counters();
    assert_eq!(counters.session_events, [created(1)]);
    assert_eq!(counters.session_deletes, 0, "none reached the server");

    cut_off.store(false, Ordering::SeqCst);
    renews_after_the_backoff(&layer, &mut service, &server).await
}

/// The source alone, through each client that tells a connection it could not make: ending a
/// session at an address that refuses the connection fails the renewal with no create tried
/// (it would be refused too, and leave the live session in doubt).
#[tokio::test]
async fn a_delete_that_cannot_connect_leaves_the_session_alive_not_in_doubt() -> Result<(), BoxError>
{
    let (_socket, refusing) = nothing_listening()?;
    let base = format!("http://{refusing}");
    let transports = [
        ("hyper-util", transport(&client())),
        #[cfg(feature = "reqwest")]
        ("reqwest", Transport::reqwest(reqwest::Client::builder())?),
    ];
    let previous = Credential::new("IBSSO", "live-session")?;
    for (name, transport) in transports {
        let session = Session::builder(&base, USER, PASSWORD)
            .transport(transport)
            .build()?;
        let err = session
            .fetch(Some(&previous))
            .await
            .err()
            .ok_or("connected to nothing")?;
        assert!(
            matches!(err.kind(), ErrorKind::Transport),
            "{name}: {err:?}"
        );
        assert!(
            err.is_transient() && !err.is_previous_in_doubt() && !err.is_previous_ended(),
            "{name}: {err:?}"
        );
    }
    Ok(())
}

/// A failure that does not say whether the request left (here, a connection reset by a client
/// of the test's own) keeps the cautious reading: the `DELETE` may have ended the session, so
/// when the create fails too the session is in doubt.
#[tokio::test]
async fn a_client_that_cannot_tell_leaves_the_session_in_doubt() -> Result<(), BoxError> {
    let silent = tower::service_fn(|_: Request<Full<Bytes>>| async {
        Err::<http::Response<Full<Bytes>>, _>(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        ))
    });
    let session = Session::builder("https://xyz12.api.infobip.com", USER, PASSWORD)
        .transport(Transport::new(silent))
        .build()?;
    let previous = Credential::new("IBSSO", "live-session")?;
    let err = session
        .fetch(Some(&previous))
        .await
        .err()
        .ok_or("no server, yet a session")?;
    assert!(matches!(err.kind(), ErrorKind::Transport), "{err:?}");
    assert!(err.is_previous_in_doubt(), "{err:?}");
    Ok(())
}

/// Past the backoff, a renewal ends the first session and makes a second, which serves: three
/// requests in all, none refused.
async fn renews_after_the_backoff(
    layer: &InfobipAuthLayer,
    service: &mut Authenticated,
    server: &MockServer,
) -> Result<(), BoxError> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    layer.refresh().await?;
    assert_eq!(send(service, reports(server)).await?, StatusCode::OK);
    let counters = server.counters();
    assert_eq!(
        counters.session_events,
        [created(1), destroyed(1), created(2)]
    );
    assert_eq!(counters.resource_requests("IBSSO"), 3);
    assert_eq!(counters.unauthorized, 0);
    Ok(())
}
