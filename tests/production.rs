//! A production user's review: the layer in the stacks services run (tower's `Buffer`,
//! `ConcurrencyLimit`, `Timeout`, `Retry`, `LoadShed` over hyper-util's client), cloned into
//! many tasks, against the embedded server revoking tokens mid-load, slowing its token
//! endpoint, and callers giving up at any point. Every assertion is a count, never a duration.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{self, MockServer};
use infobip_auth::source::{Session, TokenSource, Transport};
use infobip_auth::{BoxError, Credential, Error, ErrorKind, InfobipAuthLayer};
use tokio::task::JoinHandle;
use tower::{Service, ServiceBuilder, ServiceExt as _};

use support::{oauth, reports, sms};

/// Sends `request` through any stack; answers the status, the body read whole.
async fn status_of<S, B>(service: S, request: Request<Full<Bytes>>) -> Result<StatusCode, BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    Ok(outcome(service, request).await?.0)
}

/// Sends `request` through any stack; answers the status and whether the layer marked it as a
/// refusal it could not cure. A request stuck for an hour (on the paused clock: one that
/// nothing will ever wake, such as one waiting for a concurrency-limit slot that leaked) fails.
async fn outcome<S, B, ReqB>(
    service: S,
    request: Request<ReqB>,
) -> Result<(StatusCode, bool), BoxError>
where
    S: Service<Request<ReqB>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let sent = tokio::time::timeout(STUCK, service.oneshot(request));
    let response = sent.await.map_err(|_| "stuck")?.map_err(Into::into)?;
    let marked = response
        .extensions()
        .get::<Error>()
        .is_some_and(|err| matches!(err.kind(), ErrorKind::InvalidCredentials(_)));
    let status = response.status();
    response.into_body().collect().await.map_err(Into::into)?;
    Ok((status, marked))
}

/// Longer than anything a test waits for.
const STUCK: Duration = Duration::from_secs(24 * 3600);

/// The embedded server's demo user, signing in with IBSSO sessions.
fn sessions(server: &MockServer) -> Result<InfobipAuthLayer, BoxError> {
    let source = Session::builder(server.base_url(), mock::DEMO_USERNAME, mock::DEMO_PASSWORD)
        .transport(support::transport(&support::client()))
        .build()?;
    Ok(InfobipAuthLayer::new(source))
}

/// A retry policy as services write one: a shed request or a transient failure of the layer's
/// own is tried again after a pause, up to `.0` times.
#[derive(Clone)]
struct Patient(usize);

impl<B: Clone, Res> tower::retry::Policy<Request<B>, Res, BoxError> for Patient {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _: &mut Request<B>,
        result: &mut Result<Res, BoxError>,
    ) -> Option<Self::Future> {
        let error = result.as_ref().err()?;
        let shed = error.is::<tower::load_shed::error::Overloaded>();
        let transient = Error::find(&**error).is_some_and(Error::is_transient);
        ((shed || transient) && self.0 > 0).then(|| {
            self.0 -= 1;
            tokio::time::sleep(Duration::from_millis(50))
        })
    }

    fn clone_request(&mut self, request: &Request<B>) -> Option<Request<B>> {
        let mut clone = Request::new(request.body().clone());
        *clone.method_mut() = request.method().clone();
        *clone.uri_mut() = request.uri().clone();
        *clone.headers_mut() = request.headers().clone();
        Some(clone)
    }
}

/// Spawns `n` tasks, the `i`th running `make(i)`.
fn spawn_each<F>(n: usize, make: impl FnMut(usize) -> F) -> Vec<JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    (0..n).map(make).map(tokio::spawn).collect()
}

/// Every task was served `200`.
async fn all_ok(tasks: Vec<JoinHandle<Result<StatusCode, BoxError>>>) -> Result<(), BoxError> {
    for task in tasks {
        assert_eq!(task.await??, StatusCode::OK);
    }
    Ok(())
}

/// Lets every task that can make progress make it, without moving the paused clock.
async fn settle() {
    for _ in 0..64 {
        tokio::task::yield_now().await;
    }
}

/// How many tasks the runtime holds now, once aborted ones are gone.
async fn alive_tasks() -> usize {
    settle().await;
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

// ---- A whole stack, many tasks, the server revoking tokens under load ----

#[tokio::test(start_paused = true)]
async fn a_full_stack_under_load_renews_once_per_revocation() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let auth = oauth(&server)?;
    let client = ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(Patient(100)))
        .load_shed()
        .buffer(8)
        .timeout(Duration::from_secs(30))
        .layer(auth.clone())
        .concurrency_limit(3)
        .service(support::client());

    const ROUNDS: u64 = 3;
    const TASKS: usize = 60;
    for _ in 0..ROUNDS {
        // Reads and writes; revoked while they are queued or in flight.
        let request = |i: usize| {
            if i.is_multiple_of(2) {
                sms(&server)
            } else {
                reports(&server)
            }
        };
        let tasks = spawn_each(TASKS, |i| status_of(client.clone(), request(i)));
        settle().await;
        server.revoke_all_tokens();
        all_ok(tasks).await?;
        // A minute on: a refusal right after a renewal would count as a failed renewal.
        tokio::time::sleep(Duration::from_secs(61)).await;
    }
    let counters = server.counters();
    assert_eq!(
        counters.oauth_token_requests,
        1 + ROUNDS,
        "one per revocation"
    );
    assert_eq!(counters.max_token_requests_in_flight, 1);
    let sent = ROUNDS * TASKS as u64;
    assert_eq!(
        counters.resource_requests("Bearer"),
        sent + counters.unauthorized
    );
    assert!(counters.unauthorized <= ROUNDS * TASKS as u64);
    Ok(())
}

// ---- Callers that give up ----

#[tokio::test(start_paused = true)]
async fn callers_timing_out_on_a_slow_token_request_leak_no_slot_and_fetch_once()
-> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let auth = oauth(&server)?;
    let client = ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .layer(auth)
        .concurrency_limit(2)
        .service(support::client());

    server.set_latency(Duration::from_secs(5));
    let tasks = spawn_each(40, |_| status_of(client.clone(), sms(&server)));
    for task in tasks {
        let err = task.await?.err().ok_or("answered before its token")?;
        assert!(err.is::<tower::timeout::error::Elapsed>(), "{err}");
    }
    // Nobody waits any more; the token request goes on and its token is kept.
    tokio::time::sleep(Duration::from_secs(10)).await;
    server.set_latency(Duration::ZERO);

    // Both slots of the limit are free: 40 more requests, two at a time, all get through.
    let tasks = spawn_each(40, |_| status_of(client.clone(), reports(&server)));
    all_ok(tasks).await?;
    let counters = server.counters();
    assert_eq!(
        counters.oauth_token_requests, 1,
        "the abandoned fetch served everyone"
    );
    assert_eq!(counters.resource_requests("Bearer"), 40);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn callers_giving_up_during_the_renewal_before_a_replay_leak_nothing() -> Result<(), BoxError>
{
    let server = MockServer::start().await?;
    let auth = oauth(&server)?;
    let client = ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .layer(auth.clone())
        .concurrency_limit(1)
        .service(support::client());
    assert_eq!(
        status_of(client.clone(), sms(&server)).await?,
        StatusCode::OK
    );

    // Every request is refused, and the renewal its replay waits for takes longer than the
    // caller waits.
    server.revoke_all_tokens();
    server.set_latency(Duration::from_secs(5));
    let tasks = spawn_each(20, |_| status_of(client.clone(), sms(&server)));
    for task in tasks {
        let err = task.await?.err().ok_or("answered before the renewal")?;
        assert!(err.is::<tower::timeout::error::Elapsed>(), "{err}");
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    server.set_latency(Duration::ZERO);

    let tasks = spawn_each(20, |_| status_of(client.clone(), sms(&server)));
    all_ok(tasks).await?;
    let counters = server.counters();
    assert_eq!(
        counters.oauth_token_requests, 2,
        "one renewal for every refusal"
    );
    assert!(counters.unauthorized >= 1);
    assert_eq!(
        counters.resource_requests("Bearer"),
        1 + 20 + counters.unauthorized
    );
    Ok(())
}

/// Polls `future` `polls` times, letting every other task run between polls, then drops it.
async fn poll_then_drop<F: std::future::Future>(future: F, polls: usize) {
    let mut future = std::pin::pin!(future);
    for _ in 0..polls {
        if poll_once(future.as_mut()).await {
            return;
        }
        settle().await;
    }
}

/// Polls once; answers whether the future completed.
async fn poll_once<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> bool {
    let mut future = Some(future);
    std::future::poll_fn(|cx| {
        let done = future.take().is_some_and(|f| f.poll(cx).is_ready());
        std::task::Poll::Ready(done)
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_request_dropped_at_any_poll_leaves_sessions_and_the_limit_sound() -> Result<(), BoxError>
{
    let server = MockServer::start().await?;
    let auth = sessions(&server)?;
    let client = ServiceBuilder::new()
        .timeout(Duration::from_secs(30))
        .layer(auth.clone())
        .concurrency_limit(1)
        .service(support::client());

    // Each request is dropped after one more poll than the last: before its credential, while
    // it waits for the session, with its response on the way, during the renewal a 401 starts,
    // while its replay is ready to go. Every third one follows a revocation.
    for polls in 0..60 {
        if polls % 3 == 0 {
            server.revoke_all_tokens();
        }
        poll_then_drop(status_of(client.clone(), sms(&server)), polls).await;
        // A minute on, so a refusal counts as a new one.
        tokio::time::sleep(Duration::from_secs(61)).await;
    }
    // The limit's one slot is free and the session sound.
    for _ in 0..5 {
        assert_eq!(
            status_of(client.clone(), sms(&server)).await?,
            StatusCode::OK
        );
    }
    // At most one session per revocation, one at a time, each ending the one before: none is
    // left open at the server by a request that went away.
    let counters = server.counters();
    assert!(counters.session_creates <= 1 + 20, "{counters:?}");
    assert_eq!(counters.session_deletes + 1, counters.session_creates);
    assert_eq!(counters.max_token_requests_in_flight, 1);
    Ok(())
}

/// Many threads, many tasks, one revocation in the middle: one renewal, every request served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn threads_racing_through_a_revocation_renew_once() -> Result<(), BoxError> {
    let server = Arc::new(MockServer::start().await?);
    let client = ServiceBuilder::new()
        .layer(oauth(&server)?)
        .concurrency_limit(16)
        .service(support::client());
    let served = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (client, server, served) =
                (client.clone(), Arc::clone(&server), Arc::clone(&served));
            tokio::spawn(async move {
                for _ in 0..20 {
                    assert_eq!(
                        status_of(client.clone(), sms(&server)).await?,
                        StatusCode::OK
                    );
                    served.fetch_add(1, Ordering::SeqCst);
                }
                Ok::<_, BoxError>(())
            })
        })
        .collect();
    // The clock runs here: a generous bound tells a deadlock (a leaked slot) from a slow machine.
    let run = async {
        // (A task that failed ends the wait too.)
        while served.load(Ordering::SeqCst) < 400 && !tasks.iter().any(|task| task.is_finished()) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        server.revoke_all_tokens();
        for task in tasks {
            task.await??;
        }
        Ok::<_, BoxError>(())
    };
    tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .map_err(|_| "deadlocked")??;
    let counters = server.counters();
    assert_eq!(counters.oauth_token_requests, 2);
    assert_eq!(counters.max_token_requests_in_flight, 1);
    assert_eq!(
        counters.resource_requests("Bearer"),
        64 * 20 + counters.unauthorized
    );
    Ok(())
}

// ---- 401 storms ----

/// A streaming request body, which the layer cannot copy for a replay.
type Streamed = BoxBody<Bytes, std::convert::Infallible>;

#[tokio::test(start_paused = true)]
async fn a_storm_of_401s_to_bodies_that_cannot_be_replayed_renews_once() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let client = ServiceBuilder::new()
        .layer(oauth(&server)?)
        .concurrency_limit(4)
        .service(Client::builder(TokioExecutor::new()).build_http::<Streamed>());
    let streamed = || sms(&server).map(BodyExt::boxed);
    assert_eq!(
        outcome(client.clone(), streamed()).await?,
        (StatusCode::OK, false)
    );

    server.revoke_all_tokens();
    let tasks = spawn_each(30, |_| outcome(client.clone(), streamed()));
    let mut refused = 0;
    for task in tasks {
        match task.await?? {
            (StatusCode::OK, false) => {}
            (StatusCode::UNAUTHORIZED, true) => refused += 1,
            other => return Err(format!("{other:?}").into()),
        }
    }
    // Handed back, not replayed: what the server refused is what the callers got.
    let counters = server.counters();
    assert!(refused >= 1);
    assert_eq!(counters.unauthorized, refused);
    assert_eq!(
        counters.oauth_token_requests, 2,
        "one renewal for the whole storm"
    );
    // The renewal started by the refusals serves the next wave.
    let tasks = spawn_each(30, |_| outcome(client.clone(), streamed()));
    for task in tasks {
        assert_eq!(task.await??, (StatusCode::OK, false));
    }
    assert_eq!(server.counters().oauth_token_requests, 2);
    assert_eq!(server.counters().resource_requests("Bearer"), 61);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_storm_whose_renewal_fails_once_is_cured_by_a_retry_over_the_layer()
-> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let client = ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(Patient(100)))
        .layer(oauth(&server)?)
        .concurrency_limit(4)
        .service(support::client());
    assert_eq!(
        status_of(client.clone(), sms(&server)).await?,
        StatusCode::OK
    );

    // Every token refused, and the renewal the first refusal starts fails: the replays get
    // that failure, the retry tries again after the backoff, and one more renewal serves all.
    server.revoke_all_tokens();
    server.inject(mock::Fault::Status {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        retry_after: None,
    });
    let tasks = spawn_each(30, |_| status_of(client.clone(), sms(&server)));
    all_ok(tasks).await?;
    let counters = server.counters();
    assert_eq!(
        counters.oauth_token_requests, 3,
        "first, failed renewal, renewal"
    );
    assert_eq!(counters.max_token_requests_in_flight, 1);
    assert_eq!(
        counters.resource_requests("Bearer"),
        31 + counters.unauthorized
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_api_key_revoked_under_load_is_final_and_fetches_nothing() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let auth = InfobipAuthLayer::api_key(mock::DEMO_API_KEY)?.allow_origin(server.base_url())?;
    let client = ServiceBuilder::new()
        .buffer(16)
        .layer(auth)
        .concurrency_limit(4)
        .service(support::client());
    let tasks = spawn_each(50, |_| outcome(client.clone(), sms(&server)));
    // Revoked once some requests were served.
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    server.revoke_api_key(mock::DEMO_API_KEY);
    let mut refused = 0;
    for task in tasks {
        match task.await?? {
            (StatusCode::OK, false) => {}
            (StatusCode::UNAUTHORIZED, true) => refused += 1,
            other => return Err(format!("{other:?}").into()),
        }
    }
    let counters = server.counters();
    assert!((1..50).contains(&refused), "{refused} refused");
    assert_eq!(counters.unauthorized, refused, "no replay of a key");
    assert_eq!(counters.resource_requests("App"), 50);
    assert_eq!(counters.token_requests(), 0);
    Ok(())
}

// ---- Long runs: no growth ----

#[tokio::test(start_paused = true)]
async fn a_long_run_of_renewals_does_not_grow_the_tasks() -> Result<(), BoxError> {
    let server = MockServer::start_with(
        mock::MockConfig::demo().oauth_token_lifetime(Duration::from_secs(600)),
    )
    .await?;
    let auth = oauth(&server)?;
    let client = ServiceBuilder::new()
        .layer(auth.clone())
        .concurrency_limit(1)
        .service(support::client());
    let (mut alive, mut revocations) = (Vec::new(), 0);
    for round in 0..40 {
        // Renewed after a revocation three rounds in six, and ahead of expiry in between.
        for _ in 0..5 {
            assert_eq!(
                status_of(client.clone(), sms(&server)).await?,
                StatusCode::OK
            );
            tokio::time::sleep(Duration::from_secs(20)).await;
        }
        if round % 6 < 3 {
            server.revoke_all_tokens();
            revocations += 1;
        }
        tokio::time::sleep(Duration::from_secs(61)).await;
        alive.push(alive_tasks().await);
    }
    let counters = server.counters();
    // Each revocation cost one refused request, replayed, and one renewal; some renewed ahead.
    assert_eq!(counters.unauthorized, revocations);
    assert_eq!(counters.resource_requests("Bearer"), 200 + revocations);
    assert!(
        counters.oauth_token_requests > 1 + revocations,
        "{counters:?}"
    );
    // From the first round on (pooled connections made), the count does not move: no watcher
    // of a credential replaced or forgotten outlives it.
    assert!(alive[1..].iter().all(|n| *n == alive[1]), "{alive:?}");
    Ok(())
}

/// A source holding a handle: while its cache lives, so do the source and the handle.
#[derive(Debug)]
struct Counted<T> {
    source: T,
    _alive: Arc<()>,
}

impl<T: TokenSource> TokenSource for Counted<T> {
    async fn fetch(&self, previous: Option<&Credential>) -> Result<Credential, Error> {
        self.source.fetch(previous).await
    }

    fn base_url(&self) -> Option<&infobip_auth::BaseUrl> {
        self.source.base_url()
    }
}

#[tokio::test(start_paused = true)]
async fn layers_dropped_in_a_loop_leave_no_cache_and_no_task_behind() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let http = support::client();
    let sources = Arc::new(());
    let mut alive = Vec::new();
    for i in 0..60 {
        let source = infobip_auth::source::ClientCredentials::builder(
            server.base_url(),
            mock::DEMO_CLIENT_ID,
            mock::DEMO_CLIENT_SECRET,
        )
        .transport(Transport::new(http.clone()))
        .build()?;
        let auth = InfobipAuthLayer::new(Counted {
            source,
            _alive: Arc::clone(&sources),
        });
        let client = ServiceBuilder::new()
            .buffer(4)
            .layer(auth)
            .concurrency_limit(2)
            .service(http.clone());
        // Some are dropped with a request refused, a renewal under way, or a request pending.
        if i % 3 == 1 {
            assert_eq!(
                status_of(client.clone(), sms(&server)).await?,
                StatusCode::OK
            );
            server.revoke_all_tokens();
        }
        let pending = client.clone().oneshot(sms(&server));
        poll_then_drop(status_of(client, sms(&server)), i % 5).await;
        drop(pending);
        tokio::time::sleep(Duration::from_secs(61)).await;
        alive.push(alive_tasks().await);
    }
    assert_eq!(Arc::strong_count(&sources), 1, "a cache outlived its layer");
    assert!(alive[1..].iter().all(|n| *n == alive[1]), "{alive:?}");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn sessions_under_steady_load_renew_ahead_one_at_a_time() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let source = Session::builder(server.base_url(), mock::DEMO_USERNAME, mock::DEMO_PASSWORD)
        .transport(support::transport(&support::client()))
        .max_lifetime(Duration::from_secs(600))
        .build()?;
    let client = ServiceBuilder::new()
        .buffer(8)
        .layer(InfobipAuthLayer::new(source))
        .concurrency_limit(3)
        .service(support::client());
    // Renewals take a while, so requests arrive while one is under way.
    server.set_latency(Duration::from_secs(2));
    let server = Arc::new(server);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (client, server) = (client.clone(), Arc::clone(&server));
            tokio::spawn(async move {
                for _ in 0..600 {
                    assert_eq!(status_of(client.clone(), sms(&server)).await?, 200);
                    tokio::time::sleep(Duration::from_secs(6)).await;
                }
                Ok::<_, BoxError>(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    // An hour, renewed every ¾ of ten minutes: requests waited for each renewal rather than
    // carry the session it ends, so none was refused, and each session was ended in turn.
    let counters = server.counters();
    assert_eq!(counters.resource_requests("IBSSO"), 4 * 600);
    assert_eq!(counters.unauthorized, 0);
    assert!(counters.session_creates >= 6, "{counters:?}");
    assert_eq!(counters.session_deletes + 1, counters.session_creates);
    assert_eq!(counters.max_token_requests_in_flight, 1);
    Ok(())
}

/// Sends `n` requests at once through `client`; answers how many were shed.
async fn shed_of<S>(client: &S, server: &MockServer, n: usize) -> Result<usize, BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = Response<hyper::body::Incoming>>,
    S: Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let tasks = spawn_each(n, |_| status_of(client.clone(), sms(server)));
    let mut shed = 0;
    for task in tasks {
        match task.await? {
            Err(err) if err.is::<tower::load_shed::error::Overloaded>() => shed += 1,
            outcome => assert_eq!(outcome?, StatusCode::OK),
        }
    }
    Ok(shed)
}

/// A request that waits for its credential gives back the readiness it reserved, so that a token
/// request through the same limited client is not starved. So `LoadShed` over the layer admits
/// every request while a token is fetched (they queue at the limit afterwards), and sheds as
/// usual once a token is held. Documented on `InfobipAuth`.
#[tokio::test(start_paused = true)]
async fn load_shed_over_the_layer_admits_requests_while_a_token_is_fetched() -> Result<(), BoxError>
{
    let server = MockServer::start().await?;
    let client = ServiceBuilder::new()
        .load_shed()
        .layer(oauth(&server)?)
        .concurrency_limit(2)
        .service(support::client());
    server.set_latency(Duration::from_secs(5));
    assert_eq!(
        shed_of(&client, &server, 100).await?,
        0,
        "while the token is fetched"
    );
    assert!(
        shed_of(&client, &server, 100).await? > 0,
        "with a token held"
    );
    Ok(())
}
