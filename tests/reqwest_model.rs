//! A model-based property test of the reqwest-middleware adapter, through the public API,
//! against the embedded server on tokio's paused clock.
//!
//! Proptest generates sequences of requests (JSON bodies of chosen bytes, `GET`s without a
//! body, streaming bodies reqwest cannot copy, requests with their own `Authorization`, requests
//! to another host, requests the allowed host redirects there), bursts, the server revoking
//! every token, token-endpoint faults, time passing, `refresh()` and `revoke()`, through a
//! client that replays by default and one with `ReplayPolicy::never()`, sharing one cache. Resource requests go through a recording relay
//! on loopback, so the model sees every attempt as it went over the wire, and the other host is
//! a second recording listener. After each step the model checks:
//!
//! - a request is sent at most twice, the second time only after a `401`, only if its body
//!   can be copied and replay is on, with a credential other than the refused one, and with
//!   exactly the first attempt's method, target, headers (but `Authorization`) and body bytes,
//!   which are those the caller built;
//! - a `401` the middleware hands back carries the crate's error;
//! - a request with its own `Authorization` is sent once, with that header untouched;
//! - a request to another host fails with `HostNotAllowed`, and the other host never receives
//!   an `Authorization` the test did not set itself, not even by a redirect;
//! - a burst at an empty cache makes one token request; a request or burst after the server
//!   revoked the token makes one, and the replays succeed; a held token makes none; no token
//!   request starts within the shortest backoff after a failed one;
//! - every failure is the crate's typed error, and no step hangs.

mod support;

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION, TRANSFER_ENCODING,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use infobip_auth::mock::{Fault, MockConfig, MockServer};
use infobip_auth::reqwest::find_error;
use infobip_auth::{BoxError, Error, InfobipAuthLayer, ReplayPolicy};
use proptest::prelude::*;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Long enough that no token reaches its refresh-ahead window within a sequence.
const TOKEN_LIFETIME: Duration = Duration::from_secs(4 * 3600);
/// The shortest backoff after a failed token request: 1 s jittered down to half.
const SHORTEST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest backoff the default policy takes (before a `Retry-After`), and a margin.
const LONGEST_BACKOFF: Duration = Duration::from_secs(61);
/// A token published to answer a refusal and refused again this soon backs off instead.
const REFUSED_AGAIN: Duration = Duration::from_secs(60);
/// A step that takes longer than this (on the paused clock) hangs.
const HANG: Duration = Duration::from_secs(600);
/// What the test sets as its own `Authorization`: never a credential of the middleware's.
const OWN_AUTHORIZATION: &str = "App caller-own-key";

/// A request as it went over the wire.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    target: String,
    headers: HeaderMap,
    body: Bytes,
    status: StatusCode,
}

/// A loopback listener that records what it receives and relays it to `upstream` (or answers
/// `200` itself); with an upstream, it redirects `/redirect/...` to `redirect_to`.
struct Recorder {
    base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Recorder {
    async fn start(upstream: Option<(String, String)>) -> io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let client = support::client();
        let recorded = seen.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, client, upstream) = (recorded.clone(), client.clone(), upstream.clone());
                let service = hyper::service::service_fn(move |request| {
                    relay(request, seen.clone(), client.clone(), upstream.clone())
                });
                connections.spawn(async move {
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            base_url,
            seen,
            task,
        })
    }

    fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }
}

async fn relay(
    request: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    client: support::HttpClient,
    upstream: Option<(String, String)>,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let response = match &upstream {
        None => Response::new(Full::default()),
        Some((_, redirect_to)) if target.starts_with("/redirect/") => {
            let mut response = Response::new(Full::default());
            *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            let location = format!("{redirect_to}{}", &target["/redirect".len()..]);
            response.headers_mut().insert(LOCATION, location.parse()?);
            response
        }
        Some((base, _)) => {
            let mut forward = Request::builder()
                .method(parts.method.clone())
                .uri(format!("{base}{target}"));
            for (name, value) in &parts.headers {
                if ![HOST, TRANSFER_ENCODING, CONTENT_LENGTH].contains(name) {
                    forward = forward.header(name, value);
                }
            }
            let answer = client
                .request(forward.body(Full::new(body.clone()))?)
                .await?;
            let (mut answer, answer_body) = answer.into_parts();
            let bytes = answer_body.collect().await?.to_bytes();
            answer.headers.remove(TRANSFER_ENCODING);
            Response::from_parts(answer, Full::new(bytes))
        }
    };
    lock(&seen).push(Seen {
        method: parts.method.clone(),
        target: target.to_owned(),
        headers: parts.headers.clone(),
        body,
        status: response.status(),
    });
    Ok(response)
}

#[derive(Clone, Debug)]
enum Kind {
    /// `POST` with a JSON content type and these bytes (reqwest can copy them).
    Json(Vec<u8>),
    /// `GET` without a body.
    Get,
    /// `POST` of these chunks as a stream: reqwest cannot copy it.
    Stream(Vec<Vec<u8>>),
    /// `GET` with the caller's own `Authorization`.
    OwnAuthorization,
    /// `GET` to the other host, without or with the caller's own `Authorization`.
    OtherHost { own_authorization: bool },
    /// `GET` that the allowed host redirects to the other host (reqwest follows it).
    Redirected,
}

#[derive(Clone, Debug)]
struct Call {
    kind: Kind,
    /// Through the client whose layer has `ReplayPolicy::never()`.
    never: bool,
    /// `x-tag` header values, in order.
    tags: Vec<String>,
}

impl Call {
    fn copyable(&self) -> bool {
        matches!(self.kind, Kind::Json(_) | Kind::Get)
    }

    fn authenticated(&self) -> bool {
        matches!(self.kind, Kind::Json(_) | Kind::Get | Kind::Stream(_))
    }

    fn replays(&self) -> bool {
        self.copyable() && !self.never
    }
}

#[derive(Clone, Copy, Debug)]
enum FaultChoice {
    Status500,
    Busy { retry_after_s: u64 },
    Close,
    Truncated,
    Slow,
}

impl FaultChoice {
    fn fault(self) -> Fault {
        match self {
            Self::Status500 => Fault::Status {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                retry_after: None,
            },
            Self::Busy { retry_after_s } => Fault::Status {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after: Some(Duration::from_secs(retry_after_s)),
            },
            Self::Close => Fault::CloseConnection,
            Self::Truncated => Fault::Truncated,
            Self::Slow => Fault::Delay(Duration::from_secs(2)),
        }
    }

    /// How long no token request may follow the failure it causes; `None` if it succeeds.
    fn backoff(self) -> Option<Duration> {
        match self {
            Self::Slow => None,
            Self::Busy { retry_after_s } => {
                Some(SHORTEST_BACKOFF.max(Duration::from_secs(retry_after_s)))
            }
            _ => Some(SHORTEST_BACKOFF),
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Send(Call),
    /// Requests at once, each copyable, through one client.
    Burst {
        calls: Vec<Call>,
    },
    /// The server revokes every token.
    RevokeAll,
    /// The next token request fails (or is slow) like this.
    Inject(FaultChoice),
    Sleep(Duration),
    Refresh,
    Revoke,
}

/// What the model knows of the shared cache.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cache {
    /// No credential: at the start, and after `revoke()`.
    Empty,
    /// A credential the server accepts; `answered_refusal`: when it was published to replace
    /// a refused one, if it may have been.
    Valid {
        answered_refusal: Option<Instant>,
    },
    /// The credential held was revoked by the server, which the cache does not know yet.
    Revoked {
        answered_refusal: Option<Instant>,
    },
    Unknown,
}

struct Model {
    cache: Cache,
    faults: VecDeque<FaultChoice>,
    /// No token request may start before this (after a failed one, barring `refresh()`).
    no_token_request_before: Option<Instant>,
    /// Any backoff the cache may be in ends before this.
    backoff_over_by: Option<Instant>,
    violations: Vec<String>,
}

impl Model {
    /// The cache is surely backing off at `at`.
    fn in_backoff(&self, at: Instant) -> bool {
        self.no_token_request_before.is_some_and(|until| at < until)
    }

    /// The cache may be backing off at `at`.
    fn may_back_off(&self, at: Instant) -> bool {
        self.backoff_over_by.is_some_and(|until| at < until)
    }

    /// The cache may have started a backoff by `end`, honouring `retry_after`.
    fn may_have_backed_off(&mut self, end: Instant, retry_after: Duration) {
        let until = end + LONGEST_BACKOFF.max(retry_after);
        self.backoff_over_by = Some(self.backoff_over_by.map_or(until, |t| t.max(until)));
    }

    /// Nothing pending that the model cannot foresee.
    fn calm(&self, at: Instant) -> bool {
        !self.may_back_off(at) && self.faults.is_empty()
    }

    /// Takes the faults used by `count` token requests made during a step from `start` to
    /// `end`; answers whether the last of them failed.
    fn token_requests_made(&mut self, count: u64, start: Instant, end: Instant) -> bool {
        let mut failed = false;
        for _ in 0..count {
            match self.faults.pop_front().and_then(FaultChoice::backoff) {
                Some(backoff) => {
                    failed = true;
                    self.may_have_backed_off(end, backoff);
                    let until = start + backoff;
                    self.no_token_request_before =
                        Some(self.no_token_request_before.map_or(until, |t| t.max(until)));
                }
                None => {
                    failed = false;
                    self.no_token_request_before = None;
                }
            }
        }
        failed
    }
}

/// What one request came to.
struct Outcome {
    id: u64,
    call: Call,
    result: Result<(StatusCode, bool), String>,
}

struct Harness {
    server: MockServer,
    front: Recorder,
    other: Recorder,
    auth: InfobipAuthLayer,
    replaying: ClientWithMiddleware,
    never: ClientWithMiddleware,
    next_id: u64,
}

fn reqwest_client(auth: &InfobipAuthLayer) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(auth.reqwest_middleware())
        .build()
}

impl Harness {
    async fn start() -> Result<Self, BoxError> {
        let config = MockConfig::demo()
            .unthrottled()
            .oauth_token_lifetime(TOKEN_LIFETIME);
        let server = MockServer::start_with(config).await?;
        let other = Recorder::start(None).await?;
        let upstream = (server.base_url().to_owned(), other.base_url.clone());
        let front = Recorder::start(Some(upstream)).await?;
        // Token requests go to the server itself; resource requests through the relay.
        let auth = support::oauth(&server)?.allow_origin(&front.base_url)?;
        let replaying = reqwest_client(&auth);
        let never = reqwest_client(&auth.clone().replay(ReplayPolicy::never()));
        Ok(Self {
            server,
            front,
            other,
            auth,
            replaying,
            never,
            next_id: 1,
        })
    }

    fn token_requests(&self) -> u64 {
        self.server.counters().oauth_token_requests
    }

    /// The request `call` makes, tagged `id`.
    fn build(&self, id: u64, call: &Call) -> reqwest_middleware::RequestBuilder {
        let client = if call.never {
            &self.never
        } else {
            &self.replaying
        };
        let front = &self.front.base_url;
        let mut request = match &call.kind {
            Kind::Json(bytes) => client
                .post(format!("{front}/sms/2/text/advanced?id={id}"))
                .header(CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Kind::Get => client.get(format!("{front}/sms/1/inbox/reports?id={id}")),
            Kind::Redirected => client.get(format!("{front}/redirect/sms/1/inbox/reports?id={id}")),
            Kind::Stream(chunks) => {
                let frames = chunks
                    .iter()
                    .map(|chunk| Ok::<_, io::Error>(Frame::data(Bytes::from(chunk.clone()))))
                    .collect::<Vec<_>>();
                let stream = StreamBody::new(futures_util::stream::iter(frames));
                client
                    .post(format!("{front}/sms/2/text/advanced?id={id}"))
                    .header(CONTENT_TYPE, "application/json")
                    .body(reqwest::Body::wrap(stream))
            }
            Kind::OwnAuthorization => client
                .get(format!("{front}/sms/1/inbox/reports?id={id}"))
                .header(AUTHORIZATION, OWN_AUTHORIZATION),
            Kind::OtherHost { own_authorization } => {
                let request = client.get(format!(
                    "{}/sms/1/inbox/reports?id={id}",
                    self.other.base_url
                ));
                if *own_authorization {
                    request.header(AUTHORIZATION, OWN_AUTHORIZATION)
                } else {
                    request
                }
            }
        };
        request = request.header("x-request", id.to_string());
        for tag in &call.tags {
            request = request.header("x-tag", tag);
        }
        request
    }

    fn send(&mut self, call: &Call) -> impl Future<Output = Outcome> + use<> {
        let id = self.next_id;
        self.next_id += 1;
        let request = self.build(id, call);
        let call = call.clone();
        async move {
            let result = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let typed = response.extensions().get::<Error>().is_some();
                    let _ = response.bytes().await;
                    Ok((status, typed))
                }
                Err(err) => match find_error(&err) {
                    Some(ours) => Err(format!("{:?}", ours.kind())),
                    None => Err(format!("untyped error: {err}")),
                },
            };
            Outcome { id, call, result }
        }
    }
}

/// Checks what request `outcome` did on the wire; returns its attempts.
fn check_request(harness: &Harness, outcome: &Outcome, model: &mut Model) -> Vec<Seen> {
    let id = outcome.id;
    let tag = id.to_string();
    let mine = |seen: &Seen| seen.headers.get("x-request").is_some_and(|v| v == &tag[..]);
    let attempts: Vec<Seen> = harness.front.seen().into_iter().filter(mine).collect();
    let at_other: Vec<Seen> = harness.other.seen().into_iter().filter(mine).collect();
    let mut found = Vec::new();
    let call = &outcome.call;

    if let Err(err) = &outcome.result
        && err.starts_with("untyped")
    {
        found.push(format!("request {id} ({call:?}) failed with an {err}"));
    }
    if let Ok((StatusCode::UNAUTHORIZED, typed)) = outcome.result
        && !typed
        && call.authenticated()
    {
        found.push(format!(
            "request {id} ({call:?}): a 401 without the crate's error"
        ));
    }

    if let Kind::OtherHost { own_authorization } = call.kind {
        if !attempts.is_empty() {
            found.push(format!("request {id} to the other host reached the front"));
        }
        if own_authorization {
            if at_other.len() != 1 || outcome.result.is_err() {
                found.push(format!(
                    "request {id} with its own Authorization to the other host: sent {} times, {:?}",
                    at_other.len(),
                    outcome.result
                ));
            }
        } else {
            if !at_other.is_empty() {
                found.push(format!("request {id} reached the other host"));
            }
            if !matches!(&outcome.result, Err(kind) if kind.starts_with("HostNotAllowed")) {
                found.push(format!(
                    "request {id} to the other host: {:?}, not HostNotAllowed",
                    outcome.result
                ));
            }
        }
    } else if let Kind::Redirected = call.kind {
        let followed = at_other.len() == 1 && matches!(outcome.result, Ok((StatusCode::OK, _)));
        if attempts.len() > 1 || attempts.len() == 1 && !followed {
            found.push(format!(
                "request {id}, redirected: sent {} times, followed {} times, {:?}",
                attempts.len(),
                at_other.len(),
                outcome.result
            ));
        }
    } else if !at_other.is_empty() {
        found.push(format!("request {id} reached the other host"));
    }

    // Every attempt is the request the caller built.
    let (method, path, body): (Method, &str, Vec<u8>) = match &call.kind {
        Kind::Json(bytes) => (Method::POST, "/sms/2/text/advanced", bytes.clone()),
        Kind::Stream(chunks) => (Method::POST, "/sms/2/text/advanced", chunks.concat()),
        _ => (Method::GET, "/sms/1/inbox/reports", Vec::new()),
    };
    let target = match call.kind {
        Kind::Redirected => format!("/redirect{path}?id={id}"),
        _ => format!("{path}?id={id}"),
    };
    for (n, seen) in attempts.iter().enumerate() {
        let tags: Vec<_> = (seen.headers.get_all("x-tag").iter())
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if seen.method != method
            || seen.target != target
            || seen.body != body
            || tags != call.tags
            || seen.headers.get_all(AUTHORIZATION).iter().count() != 1
        {
            found.push(format!(
                "request {id} ({call:?}), attempt {n}: sent {} {} with tags {tags:?}, {} body bytes, {} Authorization values",
                seen.method,
                seen.target,
                seen.body.len(),
                seen.headers.get_all(AUTHORIZATION).iter().count()
            ));
        }
    }

    match attempts.as_slice() {
        [] if (call.authenticated()
            || matches!(call.kind, Kind::OwnAuthorization | Kind::Redirected))
            && outcome.result.is_ok() =>
        {
            found.push(format!("request {id} ({call:?}) succeeded unsent"));
        }
        [first, replay] => {
            if !call.replays() {
                found.push(format!("request {id} ({call:?}) was replayed"));
            }
            if first.status != StatusCode::UNAUTHORIZED {
                found.push(format!(
                    "request {id} was replayed after a {}",
                    first.status
                ));
            }
            let without_credential = |headers: &HeaderMap| {
                let mut headers = headers.clone();
                headers.remove(AUTHORIZATION);
                headers
            };
            if without_credential(&first.headers) != without_credential(&replay.headers)
                || first.body != replay.body
                || first.method != replay.method
                || first.target != replay.target
            {
                found.push(format!("request {id}: the replay differs from the request"));
            }
            if first.headers.get(AUTHORIZATION) == replay.headers.get(AUTHORIZATION) {
                found.push(format!(
                    "request {id} was replayed with the refused credential"
                ));
            }
        }
        [_, _, _, ..] => found.push(format!(
            "request {id} ({call:?}) was sent {} times",
            attempts.len()
        )),
        _ => {}
    }

    if matches!(call.kind, Kind::OwnAuthorization)
        && (attempts.len() != 1
            || attempts[0].headers.get(AUTHORIZATION).map(|v| v.as_bytes())
                != Some(OWN_AUTHORIZATION.as_bytes()))
    {
        found.push(format!(
            "request {id} with its own Authorization was not sent once untouched"
        ));
    }
    model.violations.extend(found);
    attempts
}

/// Lets background work (a renewal, a relay) finish; moves the paused clock a few ms.
async fn settle() {
    for _ in 0..3 {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn run(ops: Vec<Op>) -> Result<(), String> {
    let mut harness = Harness::start().await.map_err(|e| e.to_string())?;
    let mut model = Model {
        cache: Cache::Empty,
        faults: VecDeque::new(),
        no_token_request_before: None,
        backoff_over_by: None,
        violations: Vec::new(),
    };
    for (step, op) in ops.iter().enumerate() {
        let start = Instant::now();
        let before = harness.token_requests();
        let cache = model.cache;
        let calm = model.calm(start);
        let backed_off = model.may_back_off(start);
        let mut outcomes = Vec::new();
        let mut refresh = None;
        let stepped = tokio::time::timeout(HANG, async {
            match op {
                Op::Send(call) => outcomes.push(harness.send(call).await),
                Op::Burst { calls } => {
                    let tasks: Vec<_> = calls
                        .iter()
                        .map(|call| tokio::spawn(harness.send(call)))
                        .collect();
                    for task in tasks {
                        match task.await {
                            Ok(outcome) => outcomes.push(outcome),
                            Err(err) => model.violations.push(format!("a request panicked: {err}")),
                        }
                    }
                }
                Op::RevokeAll => harness.server.revoke_all_tokens(),
                Op::Inject(fault) => {
                    harness.server.inject(fault.fault());
                    model.faults.push_back(*fault);
                }
                Op::Sleep(by) => tokio::time::sleep(*by).await,
                Op::Refresh => refresh = Some(harness.auth.refresh().await.map(|_| ())),
                Op::Revoke => {
                    if let Err(err) = harness.auth.revoke().await {
                        model.violations.push(format!("revoke() failed: {err}"));
                    }
                }
            }
            settle().await;
        })
        .await;
        if stepped.is_err() {
            return Err(format!("step {step} ({op:?}) hung"));
        }
        let end = Instant::now();
        let made = harness.token_requests() - before;
        let in_backoff = model.in_backoff(end) && !matches!(op, Op::Refresh);
        if in_backoff && made > 0 {
            model.violations.push(format!(
                "{made} token requests during the backoff until {:?} (now {end:?})",
                model.no_token_request_before
            ));
        }
        let failed = model.token_requests_made(made, start, end);
        for seen in harness.other.seen() {
            let authorization: Vec<_> = seen.headers.get_all(AUTHORIZATION).iter().collect();
            if !(authorization.is_empty() || authorization == [OWN_AUTHORIZATION]) {
                model.violations.push(format!(
                    "the other host received {} Authorization values not the caller's",
                    authorization.len()
                ));
            }
        }
        let mut attempts = Vec::new();
        for outcome in &outcomes {
            attempts.push(check_request(&harness, outcome, &mut model));
        }
        let authenticated: Vec<(&Outcome, &Vec<Seen>)> = outcomes
            .iter()
            .zip(&attempts)
            .filter(|(outcome, _)| outcome.call.authenticated())
            .collect();
        let served = |outcome: &Outcome| matches!(outcome.result, Ok((status, _)) if status != StatusCode::UNAUTHORIZED);
        let all_served = authenticated.iter().all(|(outcome, _)| served(outcome));
        let mut found = Vec::new();
        let mut expect = |what: bool, message: String| {
            if !what {
                found.push(message);
            }
        };

        // What the step did to the cache, and the token requests it may make for that.
        model.cache = match op {
            // The server never sees it: only the token request it may need.
            Op::Send(Call {
                kind: Kind::Redirected,
                ..
            }) => match cache {
                Cache::Empty if !backed_off => {
                    expect(
                        made == 1,
                        format!("{made} token requests at an empty cache"),
                    );
                    if failed {
                        Cache::Empty
                    } else {
                        Cache::Valid {
                            answered_refusal: None,
                        }
                    }
                }
                // Perhaps backed off: a token request that succeeded filled the cache anyway.
                Cache::Empty if made > 0 && !failed => Cache::Valid {
                    answered_refusal: None,
                },
                Cache::Empty => Cache::Unknown,
                other => other,
            },
            Op::Send(_) | Op::Burst { .. } if authenticated.is_empty() => cache,
            Op::Send(_) | Op::Burst { .. } => match cache {
                Cache::Empty if !backed_off => {
                    expect(
                        made == 1,
                        format!("{made} token requests for requests at an empty cache"),
                    );
                    if failed {
                        Cache::Empty
                    } else {
                        expect(all_served, "a fresh token was refused".into());
                        Cache::Valid {
                            answered_refusal: None,
                        }
                    }
                }
                Cache::Valid { answered_refusal } => {
                    expect(
                        made == 0,
                        format!("{made} token requests with a token held"),
                    );
                    expect(
                        all_served,
                        "a request with a valid token held failed".into(),
                    );
                    for (outcome, seen) in &authenticated {
                        expect(
                            seen.len() == 1,
                            format!("request {} was sent {} times", outcome.id, seen.len()),
                        );
                    }
                    Cache::Valid { answered_refusal }
                }
                Cache::Revoked { answered_refusal }
                    if calm && answered_refusal.is_none_or(|at| start - at >= REFUSED_AGAIN) =>
                {
                    let replayable = authenticated.iter().all(|(o, _)| o.call.replays());
                    if replayable {
                        expect(
                            made == 1,
                            format!("{made} token requests to renew a revoked token"),
                        );
                        expect(all_served, "a replay after a revocation failed".into());
                        Cache::Valid {
                            answered_refusal: Some(start),
                        }
                    } else {
                        // A first refusal without a replay: handed back, renewal started.
                        if let [(outcome, seen)] = authenticated.as_slice() {
                            expect(
                                matches!(outcome.result, Ok((StatusCode::UNAUTHORIZED, _)))
                                    && seen.len() == 1,
                                format!(
                                    "request {} on a revoked token without replay: {:?}, sent {} times",
                                    outcome.id,
                                    outcome.result,
                                    seen.len()
                                ),
                            );
                        }
                        Cache::Unknown
                    }
                }
                _ if all_served && !authenticated.is_empty() => Cache::Valid {
                    answered_refusal: Some(start),
                },
                _ => Cache::Unknown,
            },
            Op::RevokeAll => match cache {
                Cache::Valid { answered_refusal } | Cache::Revoked { answered_refusal } => {
                    Cache::Revoked { answered_refusal }
                }
                other => other,
            },
            Op::Refresh => {
                expect(made <= 1, format!("refresh() made {made} token requests"));
                match refresh {
                    Some(Ok(())) if cache != Cache::Unknown => Cache::Valid {
                        answered_refusal: None,
                    },
                    Some(Ok(())) => Cache::Valid {
                        answered_refusal: Some(start),
                    },
                    _ => Cache::Unknown,
                }
            }
            Op::Revoke => {
                expect(made == 0, format!("revoke() made {made} token requests"));
                Cache::Empty
            }
            Op::Inject(_) | Op::Sleep(_) => cache,
        };
        model.violations.extend(found);
        // A refusal the model did not foresee may have made the cache back off.
        if model.cache == Cache::Unknown
            || matches!(op, Op::Send(_) | Op::Burst { .. }) && !calm && cache != Cache::Empty
        {
            model.may_have_backed_off(end, Duration::ZERO);
        }
        if let Some(Err(err)) = &refresh
            && !failed
        {
            model
                .violations
                .push(format!("refresh() failed without a fault: {err}"));
        }
        let violations = std::mem::take(&mut model.violations);
        if !violations.is_empty() {
            return Err(format!(
                "after step {step} ({op:?}), the cache {cache:?}: {violations:#?}"
            ));
        }
    }
    Ok(())
}

fn tags() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec("[a-z0-9]{0,6}", 0..3)
}

fn call() -> impl Strategy<Value = Call> {
    let kind = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Kind::Json),
        3 => Just(Kind::Get),
        2 => proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 0..3)
            .prop_map(Kind::Stream),
        1 => Just(Kind::OwnAuthorization),
        1 => any::<bool>().prop_map(|own_authorization| Kind::OtherHost { own_authorization }),
        1 => Just(Kind::Redirected),
    ];
    (kind, proptest::bool::weighted(0.3), tags()).prop_map(|(kind, never, tags)| Call {
        kind,
        never,
        tags,
    })
}

fn burst() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Kind::Json),
        Just(Kind::Get),
    ];
    (
        proptest::collection::vec((kind, tags()), 2..8),
        any::<bool>(),
    )
        .prop_map(|(calls, never)| Op::Burst {
            calls: calls
                .into_iter()
                .map(|(kind, tags)| Call { kind, never, tags })
                .collect(),
        })
}

fn fault() -> impl Strategy<Value = FaultChoice> {
    prop_oneof![
        Just(FaultChoice::Status500),
        proptest::sample::select(&[1u64, 3, 20][..])
            .prop_map(|retry_after_s| FaultChoice::Busy { retry_after_s }),
        Just(FaultChoice::Close),
        Just(FaultChoice::Truncated),
        Just(FaultChoice::Slow),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => call().prop_map(Op::Send),
        2 => burst(),
        3 => Just(Op::RevokeAll),
        2 => fault().prop_map(Op::Inject),
        3 => proptest::sample::select(&[100u64, 700, 3_000, 70_000][..])
            .prop_map(|ms| Op::Sleep(Duration::from_millis(ms))),
        1 => Just(Op::Refresh),
        1 => Just(Op::Revoke),
    ]
}

fn run_on_paused_clock(ops: Vec<Op>) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| e.to_string())?
        .block_on(run(ops))
}

/// A redirected request at an empty cache while the model counted a backoff as possible (after
/// a refusal it did not foresee): its token request filled the cache, which the model once kept
/// as empty and so expected another token request after the backoff.
#[test]
fn a_redirected_request_during_a_possible_backoff_fills_the_cache() -> Result<(), String> {
    let json = || {
        Op::Send(Call {
            kind: Kind::Json(Vec::new()),
            never: false,
            tags: Vec::new(),
        })
    };
    let call = |kind| {
        Op::Send(Call {
            kind,
            never: false,
            tags: Vec::new(),
        })
    };
    run_on_paused_clock(vec![
        json(),
        json(),
        json(),
        Op::RevokeAll,
        call(Kind::Stream(Vec::new())),
        json(),
        Op::Revoke,
        call(Kind::Redirected),
        Op::Sleep(Duration::from_secs(70)),
        json(),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_middleware_keeps_its_promises(ops in proptest::collection::vec(op(), 1..40)) {
        run_on_paused_clock(ops).map_err(TestCaseError::fail)?;
    }
}
