//! A model-based property test of the credential cache, through the public API only.
//!
//! Proptest generates sequences of operations on a layered service — requests (some dropped
//! before they finish, some answered slowly), bursts, time passing on tokio's paused clock,
//! `refresh()`, `revoke()`, the server refusing the current token or every token, and the
//! outcome of the next token fetch (a lifetime, a delay, a failure with or without
//! `Retry-After`). The token source and the inner service keep a model of what the cache may do
//! and check it at the moment each event happens:
//!
//! - no request carries a token that has expired, or that was never handed out (one that had
//!   expired when its fetch ended);
//! - no request carries a token older than the newest one handed out before it was made, nor,
//!   once `revoke()` has ended a token, that token or an older one;
//! - at most one fetch runs at a time, and every fetch ends (a dropped request cancels none);
//! - no fetch starts while the current token is surely fresh (before ~¾ of its lifetime, and
//!   before its last tenth), unless `refresh()` was called or the server refused that very token:
//!   a late `401` for an older token changes nothing;
//! - no fetch starts within the shortest backoff after a failed fetch, unless `refresh()` was
//!   called since;
//! - while the server refuses everything, no three fetches start without a backoff between;
//! - a burst at an empty cache makes exactly one fetch, and its requests share its token;
//! - a request made while a valid token is held, that the server has not refused, succeeds
//!   (a failed renewal keeps the valid token serving), and goes out at once unless the token
//!   is in its last tenth (a refresh ahead runs in the background); a failed request fails with
//!   the crate's typed error; no request hangs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use infobip_auth::future::ResponseFuture;
use infobip_auth::source::TokenSource;
use infobip_auth::{
    BoxError, Credential, Error, ErrorKind, InfobipAuth, InfobipAuthLayer, ReplayPolicy,
};
use proptest::prelude::*;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::{Layer as _, Service as _, ServiceExt as _, service_fn};

/// The default policy's backoff: 1 s, doubled per failure up to 60 s, jittered down to half.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Requests wait for a renewal only in a token's last tenth, and at most its last minute.
const MAX_WAIT_MARGIN: Duration = Duration::from_secs(60);
/// How long the server takes to answer a slow request.
const SLOW_ANSWER: Duration = Duration::from_secs(5);
/// More fetches than any sequence justifies: the source stops answering and reports a spin.
const SPIN_LIMIT: usize = 400;
/// Service clones, each with its own private copy of the header.
const CLONES: usize = 3;
const CLONES_LAST: usize = CLONES - 1;

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Token { lifetime: Duration },
    Fail { retry_after: Option<Duration> },
}

/// What the next fetch does.
#[derive(Clone, Copy, Debug)]
struct Plan {
    delay: Duration,
    outcome: Outcome,
}

#[derive(Clone, Debug)]
enum Op {
    /// A request through service clone `clone` (the last one never replays after a `401`);
    /// answered after `SLOW_ANSWER` if `slow`; its future dropped before it ends if `drop`.
    Send {
        clone: usize,
        slow: bool,
        drop: bool,
    },
    /// `size` requests at once, spread over the clones.
    Burst {
        size: usize,
    },
    /// Time passes (timers fire in order).
    Advance(Duration),
    /// Time passes until this fraction of the newest token's lifetime (into its refresh-ahead
    /// window, its last tenth, its expiry), if that is still ahead.
    AdvanceInto(f64),
    /// The next fetch's outcome.
    NextFetch(Plan),
    /// The server refuses the newest token from now on.
    RefuseCurrent,
    /// The server refuses every token, or stops doing so.
    RefuseAll(bool),
    Refresh,
    Revoke,
}

struct Token {
    issued: Instant,
    lifetime: Duration,
    /// When the cache got it; `None` if it had expired by then (never handed out).
    published: Option<Instant>,
}

impl Token {
    fn expiry(&self) -> Instant {
        self.issued + self.lifetime
    }

    /// Before the earliest instant its refresh ahead may start (¾ of the lifetime less up to
    /// 5 % of jitter) and before its last tenth (at most a minute).
    fn surely_fresh(&self, now: Instant) -> bool {
        let ahead = self.issued + self.lifetime.mul_f64(0.69);
        let wait = self.expiry() - (self.lifetime / 10).min(MAX_WAIT_MARGIN);
        now < ahead && now < wait
    }
}

struct Fetch {
    start: Instant,
    delay: Duration,
    ended: bool,
}

/// A request as the model knows it.
struct Sent {
    /// The oldest token it may carry.
    floor: u64,
    /// The token held valid when it was made (its expiry), and the refusal epoch then: if
    /// neither moved before it ended, it must succeed.
    must_succeed: Option<(Instant, u64)>,
    /// Made while a valid, unrefused token was held before its last tenth: it goes out at
    /// once with that token (or a newer one), waiting for no fetch.
    goes_out_at: Option<Instant>,
    first_token: Option<u64>,
}

struct Model {
    default_plan: Plan,
    plans: VecDeque<Plan>,
    fetches: Vec<Fetch>,
    /// By fetch number: `tok-<n>`.
    tokens: HashMap<u64, Token>,
    in_flight: u32,
    /// The newest token handed out, unless revoked since.
    current: Option<u64>,
    /// The server answered `401` to `current`: the cache may have forgotten it.
    current_refused: bool,
    /// Any `401` since the last token was handed out.
    refusal_since_publish: bool,
    newest: u64,
    revoked_floor: u64,
    failures: u32,
    last_failure: Option<Instant>,
    no_fetch_before: Option<Instant>,
    last_refresh_call: Option<Instant>,
    refused: HashSet<u64>,
    refuse_all: bool,
    refusal_epoch: u64,
    /// Fetch starts since the server began refusing everything (and no refresh or revoke).
    refuse_all_fetches: Option<Vec<Instant>>,
    requests: HashMap<u64, Sent>,
    violations: Vec<String>,
}

impl Model {
    fn new(default_plan: Plan) -> Self {
        Self {
            default_plan,
            plans: VecDeque::new(),
            fetches: Vec::new(),
            tokens: HashMap::new(),
            in_flight: 0,
            current: None,
            current_refused: false,
            refusal_since_publish: false,
            newest: 0,
            revoked_floor: 0,
            failures: 0,
            last_failure: None,
            no_fetch_before: None,
            last_refresh_call: None,
            refused: HashSet::new(),
            refuse_all: false,
            refusal_epoch: 0,
            refuse_all_fetches: None,
            requests: HashMap::new(),
            violations: Vec::new(),
        }
    }

    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    /// Checks a fetch starting now; returns its number and plan.
    fn fetch_starts(&mut self, now: Instant) -> (u64, Plan) {
        let mut found = Vec::new();
        if self.in_flight > 0 {
            found.push(format!("a fetch started while {} ran", self.in_flight));
        }
        let refreshed_since = |at: Option<Instant>| {
            self.last_refresh_call
                .is_some_and(|call| at.is_none_or(|at| call >= at))
        };
        if let Some(n) = self.current.filter(|_| !self.current_refused)
            && let Some(token) = self.tokens.get(&n)
            && token.surely_fresh(now)
            && !refreshed_since(token.published)
        {
            found.push(format!(
                "a fetch started at {:?} while tok-{n} (issued {:?}, lifetime {:?}) was fresh",
                now, token.issued, token.lifetime
            ));
        }
        if let Some(until) = self.no_fetch_before
            && now < until
            && !refreshed_since(self.last_failure)
        {
            found.push(format!(
                "a fetch started at {now:?}, during the backoff until {until:?} after {} failures",
                self.failures
            ));
        }
        if let Some(starts) = self.refuse_all_fetches.as_mut() {
            // Two in a row may come at once: a renewal (expiry, refresh ahead) whose token is
            // refused, and the token answering that refusal. A third waits for a backoff.
            if let Some(before_last) = starts.len().checked_sub(2).map(|i| starts[i])
                && now.duration_since(before_last) < BACKOFF_BASE / 2
            {
                found.push(format!(
                    "while every token was refused, fetches #{}..=#{} started within {:?}",
                    starts.len() - 1,
                    starts.len() + 1,
                    now.duration_since(before_last)
                ));
            }
            starts.push(now);
        }
        self.violations.extend(found);
        self.in_flight += 1;
        let plan = self.plans.pop_front().unwrap_or(self.default_plan);
        self.fetches.push(Fetch {
            start: now,
            delay: plan.delay,
            ended: false,
        });
        (self.fetches.len() as u64, plan)
    }

    /// Records the end of fetch `n`: a token the cache takes, or a failure it backs off from.
    fn fetch_ends(&mut self, n: u64, retry_after: Option<Duration>, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(fetch) = self.fetches.get_mut(n as usize - 1) {
            fetch.ended = true;
        }
        let token = self.tokens.get_mut(&n).filter(|t| now < t.expiry());
        if let Some(token) = token {
            token.published = Some(now);
            self.current = Some(n);
            self.newest = n;
            self.current_refused = false;
            self.refusal_since_publish = false;
            self.failures = 0;
            self.no_fetch_before = None;
            return;
        }
        self.failures += 1;
        self.last_failure = Some(now);
        let full = BACKOFF_BASE
            .saturating_mul(2u32.saturating_pow(self.failures - 1))
            .min(BACKOFF_MAX);
        self.no_fetch_before = Some(now + (full / 2).max(retry_after.unwrap_or_default()));
    }

    /// Checks request `id` reaching the server with `token` now.
    fn request_sent(&mut self, id: u64, token: Option<u64>, now: Instant) {
        let Some(n) = token else {
            self.violation(format!("request {id} went out without a token of ours"));
            return;
        };
        match self.tokens.get(&n) {
            None => self.violation(format!("request {id} carried unknown tok-{n}")),
            Some(Token {
                published: None, ..
            }) => self.violation(format!(
                "request {id} carried tok-{n}, which had expired when its fetch ended"
            )),
            Some(token) if now >= token.expiry() => self.violation(format!(
                "request {id} carried tok-{n} at {now:?}, expired at {:?}",
                token.expiry()
            )),
            Some(_) => {}
        }
        let Some(sent) = self.requests.get_mut(&id) else {
            return;
        };
        let first = sent.first_token.is_none();
        sent.first_token.get_or_insert(n);
        if first && sent.goes_out_at.is_some_and(|at| at != now) {
            self.violation(format!(
                "request {id}, made while a fresh token was held, waited until {now:?}"
            ));
            return;
        }
        let Some(sent) = self.requests.get(&id) else {
            return;
        };
        if n < sent.floor {
            let floor = sent.floor;
            self.violation(format!(
                "request {id} carried tok-{n}, older than tok-{floor} it was made after"
            ));
        }
    }

    /// The server answers a request sent with `token`: `401` if it refuses it.
    fn answer(&mut self, token: Option<u64>) -> StatusCode {
        let refused = self.refuse_all || token.is_none_or(|n| self.refused.contains(&n));
        if !refused {
            return StatusCode::OK;
        }
        self.refusal_since_publish = true;
        if token.is_some() && token == self.current {
            self.current_refused = true;
        }
        StatusCode::UNAUTHORIZED
    }

    /// A request made now: what it may carry, and whether it must succeed.
    fn request_made(&mut self, id: u64, now: Instant) {
        let held = self
            .current
            .filter(|n| !self.current_refused && !self.refuse_all && !self.refused.contains(n))
            .and_then(|n| self.tokens.get(&n))
            .filter(|token| now < token.expiry());
        let must_succeed = held.map(|token| (token.expiry(), self.refusal_epoch));
        let goes_out_at = held
            .filter(|token| now < token.expiry() - (token.lifetime / 10).min(MAX_WAIT_MARGIN))
            .map(|_| now);
        self.requests.insert(
            id,
            Sent {
                floor: self.newest.max(self.revoked_floor),
                must_succeed,
                goes_out_at,
                first_token: None,
            },
        );
    }

    /// Checks the end of request `id`.
    fn request_ended(&mut self, id: u64, result: &Result<Response<()>, BoxError>, at: Instant) {
        let Some(must_succeed) = self.requests.get(&id).map(|sent| sent.must_succeed) else {
            return;
        };
        if let Err(err) = result {
            if Error::find(&**err).is_none() {
                self.violation(format!("request {id} failed with an untyped error: {err}"));
            }
            if let Some((expiry, epoch)) = must_succeed
                && at < expiry
                && epoch == self.refusal_epoch
            {
                self.violation(format!(
                    "request {id} failed ({err}) while a valid, unrefused token was held"
                ));
            }
        }
    }
}

type Shared = Arc<Mutex<Model>>;

fn lock(model: &Shared) -> MutexGuard<'_, Model> {
    model
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Hands out `tok-<n>` as the model's plans say, checking each fetch as it starts and ends.
#[derive(Debug, Clone)]
struct ModelSource(Shared);

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Model")
    }
}

impl TokenSource for ModelSource {
    async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
        let now = Instant::now();
        let (n, plan, spins) = {
            let mut model = lock(&self.0);
            let (n, plan) = model.fetch_starts(now);
            let spins = model.fetches.len() > SPIN_LIMIT;
            if spins {
                model.violation(format!("{SPIN_LIMIT} fetches: the cache spins"));
            }
            (n, plan, spins)
        };
        if spins {
            std::future::pending::<()>().await;
        }
        // Counted from when the request was sent, as the crate's own sources do.
        let result = match plan.outcome {
            Outcome::Token { lifetime } => {
                lock(&self.0).tokens.insert(
                    n,
                    Token {
                        issued: now,
                        lifetime,
                        published: None,
                    },
                );
                Ok(Credential::new("Bearer", &format!("tok-{n}"))?.expires_in(lifetime))
            }
            Outcome::Fail { retry_after } => {
                let error = Error::new(ErrorKind::Timeout);
                Err(match retry_after {
                    Some(delay) => error.with_retry_after(delay),
                    None => error,
                })
            }
        };
        let mut running = Running {
            model: self.0.clone(),
            fetch: n,
            ended: false,
        };
        tokio::time::sleep(plan.delay).await;
        running.ended = true;
        let retry_after = result.as_ref().err().and_then(Error::retry_after);
        lock(&self.0).fetch_ends(n, retry_after, Instant::now());
        result
    }

    async fn revoke(&self, credential: &Credential) -> Result<(), Error> {
        let mut model = lock(&self.0);
        if let Some(n) = token_number(credential.expose_token()) {
            model.revoked_floor = model.revoked_floor.max(n + 1);
        }
        model.current = None;
        // The next fetch starts afresh: it answers no refusal. (Counted from here, not from the
        // call to `revoke()`, which first lets every fetch under way end.)
        model.refuse_all_fetches = model.refuse_all.then(Vec::new);
        Ok(())
    }
}

/// A fetch under way: dropped before it ends (only the runtime's end may do that), it says so.
struct Running {
    model: Shared,
    fetch: u64,
    ended: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.ended {
            let mut model = lock(&self.model);
            model.in_flight = model.in_flight.saturating_sub(1);
            let what = format!("fetch {} was dropped before it ended", self.fetch);
            model.violation(what);
        }
    }
}

fn token_number(token: &str) -> Option<u64> {
    token.strip_prefix("tok-")?.parse().ok()
}

/// Lets every task that can run now run, without moving the paused clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

type Outcomes = Vec<(u64, JoinHandle<(Result<Response<()>, BoxError>, Instant)>)>;

/// Runs one sequence; returns the first violations found, if any.
async fn run(default_plan: Plan, ops: Vec<Op>) -> Result<(), String> {
    let model: Shared = Arc::new(Mutex::new(Model::new(default_plan)));
    let layer = InfobipAuthLayer::new(ModelSource(model.clone()));
    let server = {
        let model = model.clone();
        service_fn(move |request: Request<String>| {
            let model = model.clone();
            async move {
                let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
                let id: u64 = header("x-request")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let token = header("authorization")
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .and_then(token_number);
                lock(&model).request_sent(id, token, Instant::now());
                if header("x-slow").is_some() {
                    tokio::time::sleep(SLOW_ANSWER).await;
                }
                let mut response = Response::new(());
                *response.status_mut() = lock(&model).answer(token);
                Ok::<_, Infallible>(response)
            }
        })
    };
    // The last clone's layer shares the cache but replays nothing.
    let mut services: Vec<_> = (0..CLONES)
        .map(|i| match i {
            CLONES_LAST => layer
                .clone()
                .replay(ReplayPolicy::never())
                .layer(server.clone()),
            _ => layer.layer(server.clone()),
        })
        .collect();
    let mut outcomes: Outcomes = Vec::new();
    let mut calls: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id = 1;
    for (step, op) in ops.iter().enumerate() {
        let now = Instant::now();
        match op {
            Op::Send { clone, slow, drop } => {
                let id = next_id;
                next_id += 1;
                lock(&model).request_made(id, now);
                let future = send(&mut services[*clone % CLONES], id, *slow).await?;
                if *drop {
                    // Dropped once it has had the chance to start a fetch.
                    let task = tokio::spawn(async move {
                        let _ = future.await;
                    });
                    settle().await;
                    task.abort();
                    lock(&model).requests.remove(&id);
                } else {
                    outcomes.push((id, spawn(future)));
                }
            }
            Op::Burst { size } => {
                settle().await;
                let (empty, before) = {
                    let model = lock(&model);
                    let held = model
                        .current
                        .and_then(|n| model.tokens.get(&n))
                        .is_some_and(|t| now < t.expiry());
                    let empty = !held
                        && model.in_flight == 0
                        && model.failures == 0
                        && !model.refusal_since_publish
                        && !model.refuse_all;
                    (empty, model.fetches.len())
                };
                let mut ids = Vec::new();
                for i in 0..*size {
                    let id = next_id;
                    next_id += 1;
                    lock(&model).request_made(id, now);
                    let future = send(&mut services[i % CLONES], id, false).await?;
                    outcomes.push((id, spawn(future)));
                    ids.push(id);
                }
                settle().await;
                let mut model = lock(&model);
                if empty && model.fetches.len() != before + 1 {
                    let what = format!(
                        "a burst of {size} at an empty cache made {} fetches",
                        model.fetches.len() - before
                    );
                    model.violation(what);
                }
                let tokens: HashSet<u64> = ids
                    .iter()
                    .filter_map(|id| model.requests.get(id)?.first_token)
                    .collect();
                if empty && tokens.len() > 1 {
                    let what = format!("a burst at an empty cache went out with tokens {tokens:?}");
                    model.violation(what);
                }
            }
            Op::Advance(by) => tokio::time::sleep(*by).await,
            Op::AdvanceInto(fraction) => {
                let until = {
                    let model = lock(&model);
                    model
                        .tokens
                        .get(&model.newest)
                        .map(|token| token.issued + token.lifetime.mul_f64(*fraction))
                };
                if let Some(until) = until.filter(|until| *until > now) {
                    tokio::time::sleep_until(until).await;
                }
            }
            Op::NextFetch(plan) => lock(&model).plans.push_back(*plan),
            Op::RefuseCurrent => {
                let mut model = lock(&model);
                let newest = model.newest;
                model.refused.insert(newest);
                model.refusal_epoch += 1;
            }
            Op::RefuseAll(on) => {
                let mut model = lock(&model);
                model.refuse_all = *on;
                model.refusal_epoch += 1;
                model.refuse_all_fetches = on.then(Vec::new);
            }
            Op::Refresh => {
                {
                    let mut model = lock(&model);
                    model.last_refresh_call = Some(now);
                    model.refuse_all_fetches = model.refuse_all.then(Vec::new);
                }
                let layer = layer.clone();
                calls.push(tokio::spawn(async move {
                    let _ = layer.refresh().await;
                }));
            }
            Op::Revoke => {
                let layer = layer.clone();
                calls.push(tokio::spawn(async move {
                    let _ = layer.revoke().await;
                }));
            }
        }
        settle().await;
        collect(&model, &mut outcomes, false).await;
        check_fetches_end(&model);
        let violations = std::mem::take(&mut lock(&model).violations);
        if !violations.is_empty() {
            return Err(format!("after step {step} ({op:?}): {violations:#?}"));
        }
    }
    // Everything ends: no request, refresh or revoke is left waiting.
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    settle().await;
    collect(&model, &mut outcomes, true).await;
    for call in calls {
        if !call.is_finished() {
            return Err("a refresh or revoke never ended".into());
        }
    }
    let violations = std::mem::take(&mut lock(&model).violations);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(format!("at the end: {violations:#?}"))
    }
}

/// Makes request `id` through `service` (slow to answer if `slow`); its future, not yet polled.
async fn send<S>(
    service: &mut InfobipAuth<S>,
    id: u64,
    slow: bool,
) -> Result<ResponseFuture<S, String>, String>
where
    S: tower::Service<Request<String>, Response = Response<()>, Error = Infallible> + Clone,
{
    let mut request = Request::get("https://xyz12.api.infobip.com/sms/1/reports")
        .header("x-request", id.to_string());
    if slow {
        request = request.header("x-slow", "1");
    }
    let request = request.body(String::new()).map_err(|e| e.to_string())?;
    let ready = service.ready().await.map_err(|e| e.to_string())?;
    Ok(ready.call(request))
}

/// Runs a request's future in a task of its own; it ends with the result and when it came.
fn spawn<S>(
    future: ResponseFuture<S, String>,
) -> JoinHandle<(Result<Response<()>, BoxError>, Instant)>
where
    S: tower::Service<Request<String>, Response = Response<()>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send,
{
    tokio::spawn(async move {
        let result = future.await;
        (result, Instant::now())
    })
}

/// Checks the requests that have ended; with `all`, every one must have.
async fn collect(model: &Shared, outcomes: &mut Outcomes, all: bool) {
    let mut pending = Vec::new();
    for (id, task) in outcomes.drain(..) {
        if !task.is_finished() {
            if all {
                lock(model).violation(format!("request {id} never ended"));
            }
            pending.push((id, task));
            continue;
        }
        match task.await {
            Ok((result, at)) => lock(model).request_ended(id, &result, at),
            Err(err) => lock(model).violation(format!("request {id} panicked: {err}")),
        }
    }
    *outcomes = pending;
}

/// Every fetch whose time is up has ended, whether or not its caller is still there.
fn check_fetches_end(model: &Shared) {
    let now = Instant::now();
    let mut model = lock(model);
    let late: Vec<usize> = (model.fetches.iter().enumerate())
        .filter(|(_, fetch)| !fetch.ended && now > fetch.start + fetch.delay)
        .map(|(i, _)| i + 1)
        .collect();
    if !late.is_empty() {
        model.violation(format!(
            "fetches {late:?} did not end when their time was up"
        ));
    }
}

fn duration_ms(choices: &'static [u64]) -> impl Strategy<Value = Duration> {
    proptest::sample::select(choices).prop_map(Duration::from_millis)
}

fn plan() -> impl Strategy<Value = Plan> {
    let delay = duration_ms(&[0, 0, 200, 2_000, 30_000]);
    let outcome = prop_oneof![
        3 => duration_ms(&[1_000, 3_000, 20_000, 90_000, 3_600_000])
            .prop_map(|lifetime| Outcome::Token { lifetime }),
        2 => proptest::option::weighted(0.7, duration_ms(&[500, 5_000, 90_000]))
            .prop_map(|retry_after| Outcome::Fail { retry_after }),
    ];
    (delay, outcome).prop_map(|(delay, outcome)| Plan { delay, outcome })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..CLONES, any::<bool>(), proptest::bool::weighted(0.2))
            .prop_map(|(clone, slow, drop)| Op::Send { clone, slow, drop }),
        1 => (2usize..8).prop_map(|size| Op::Burst { size }),
        4 => duration_ms(&[100, 700, 2_000, 10_000, 45_000, 200_000, 3_000_000]).prop_map(Op::Advance),
        2 => proptest::sample::select(&[0.72, 0.8, 0.93, 0.97, 1.0][..]).prop_map(Op::AdvanceInto),
        3 => plan().prop_map(Op::NextFetch),
        2 => Just(Op::RefuseCurrent),
        2 => any::<bool>().prop_map(Op::RefuseAll),
        1 => Just(Op::Refresh),
        1 => Just(Op::Revoke),
    ]
}

fn default_plan() -> impl Strategy<Value = Plan> {
    let delay = duration_ms(&[0, 100, 2_000]);
    let lifetime = duration_ms(&[3_000, 20_000, 90_000, 3_600_000]);
    (delay, lifetime).prop_map(|(delay, lifetime)| Plan {
        delay,
        outcome: Outcome::Token { lifetime },
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn the_cache_keeps_its_promises(default in default_plan(), ops in proptest::collection::vec(op(), 1..80)) {
        run_paused(default, ops).map_err(TestCaseError::fail)?;
    }
}

/// The sequence in which the model first caught the cache fetching within a `Retry-After`: the
/// replay of a slow request, refused, backed off anew and cut the server's 90 s to about 2 s.
#[test]
fn a_late_refusal_keeps_the_retry_after_in_force() -> Result<(), String> {
    let lifetime = Duration::from_secs(3);
    let default = Plan {
        delay: Duration::from_millis(100),
        outcome: Outcome::Token { lifetime },
    };
    let throttled = Plan {
        delay: Duration::ZERO,
        outcome: Outcome::Fail {
            retry_after: Some(Duration::from_secs(90)),
        },
    };
    let send = Op::Send {
        clone: 0,
        slow: false,
        drop: false,
    };
    let ops = vec![
        Op::Send {
            clone: 0,
            slow: true,
            drop: false,
        },
        Op::RefuseAll(true),
        Op::Advance(Duration::from_secs(10)),
        Op::NextFetch(throttled),
        send.clone(),
        Op::Advance(Duration::from_secs(10)),
        send,
    ];
    run_paused(default, ops)
}

/// A `revoke()` during a renewal that fails: the requests waiting for the renewal fall back on
/// the credential still valid, as with no revocation. Only a source whose credentials are in
/// force one at a time (a session) has its waiters wait for a fresh one instead.
#[test]
fn a_revoke_during_a_failing_renewal_leaves_its_waiters_the_valid_credential() -> Result<(), String>
{
    let lifetime = Duration::from_secs(3);
    let default = Plan {
        delay: Duration::from_millis(100),
        outcome: Outcome::Token { lifetime },
    };
    let send = Op::Send {
        clone: 0,
        slow: false,
        drop: false,
    };
    let ops = vec![
        Op::NextFetch(Plan {
            delay: Duration::ZERO,
            outcome: Outcome::Token { lifetime },
        }),
        send.clone(),
        Op::AdvanceInto(0.93),
        send.clone(),
        Op::NextFetch(Plan {
            delay: Duration::ZERO,
            outcome: Outcome::Fail { retry_after: None },
        }),
        Op::Revoke,
        send,
    ];
    run_paused(default, ops)
}

/// A `revoke()` that waited for one fetch waits for the next too (a renewal after a `401`
/// started meanwhile): revoking while it runs let a request after its credential carry the
/// one before.
#[test]
fn a_revoke_waits_for_every_fetch_under_way_before_it_ends_the_credential() -> Result<(), String> {
    let token = |delay_ms, lifetime_s| Plan {
        delay: Duration::from_millis(delay_ms),
        outcome: Outcome::Token {
            lifetime: Duration::from_secs(lifetime_s),
        },
    };
    let send = Op::Send {
        clone: 0,
        slow: false,
        drop: false,
    };
    let ops = vec![
        Op::NextFetch(token(0, 3600)),
        send.clone(),
        Op::NextFetch(token(200, 1)),
        send.clone(),
        send.clone(),
        Op::NextFetch(token(0, 1)),
        Op::NextFetch(token(200, 1)),
        send.clone(),
        Op::Refresh,
        Op::Advance(Duration::from_millis(700)),
        Op::Refresh,
        Op::Advance(Duration::from_secs(2)),
        send.clone(),
        Op::RefuseAll(true),
        Op::Revoke,
        Op::Advance(Duration::from_millis(700)),
        send,
    ];
    run_paused(token(0, 3), ops)
}

/// Every token refused, and a `revoke()` between: the fetch after the revocation starts afresh
/// (it answers no refusal), so with the renewal answering the refusal before it and the one
/// answering its own, three fetches come at once, all legitimate.
#[test]
fn a_fetch_after_a_revocation_starts_afresh_while_every_token_is_refused() -> Result<(), String> {
    let plan = |delay_ms, outcome| Plan {
        delay: Duration::from_millis(delay_ms),
        outcome,
    };
    let token = |lifetime_s| Outcome::Token {
        lifetime: Duration::from_secs(lifetime_s),
    };
    let send = |clone| Op::Send {
        clone,
        slow: false,
        drop: false,
    };
    let ops = vec![
        Op::RefuseAll(true),
        send(0),
        Op::NextFetch(plan(0, token(1))),
        Op::Revoke,
        Op::NextFetch(plan(0, Outcome::Fail { retry_after: None })),
        Op::NextFetch(plan(2_000, token(3))),
        Op::Advance(Duration::from_secs(2)),
        send(0),
        Op::Advance(Duration::from_secs(2)),
        Op::NextFetch(plan(0, token(1))),
        send(2),
        Op::Revoke,
        Op::Advance(Duration::from_secs(2)),
        send(0),
        send(0),
    ];
    run_paused(plan(100, token(3)), ops)
}

/// Runs `ops` on a paused clock, as the property does.
fn run_paused(default_plan: Plan, ops: Vec<Op>) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| e.to_string())?
        .block_on(run(default_plan, ops))
}
