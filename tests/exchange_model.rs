//! A model-based property test of the Exchange authorization-code flow, through the public API,
//! against the embedded server on loopback.
//!
//! Proptest generates sequences of operations: requests through the layered client (one or a
//! few at once), idle gaps shorter and longer than a token's minute, token-endpoint faults
//! (5xx, `429` with `Retry-After`, dropped connections, cut answers, answers lost after a token
//! was issued, delays), the user disconnecting the app at Infobip, `save_to` a store that may
//! fail or write slowly (alone, or racing a `refresh()`), restarts (`resume` from the store),
//! `refresh()`, `revoke()`, and new authorizations (some after a forged callback). Spies on
//! the token endpoint and on the API see every token on the wire and check, as each event
//! happens:
//!
//! - no request carries a token past its minute, or one the token endpoint refused; the server
//!   never refuses a token the model holds alive and not revoked;
//! - at most one token request at a time; a refresh sends the newest token, never a refused one;
//! - `ReauthorizationRequired` only once the newest token is dead (past its minute, refused or
//!   revoked); a request made while it was alive fails only once it has died;
//! - with keep-alive, every refresh starts by ¾ of the token's life or by the end of the backoff
//!   after a failure, so a token dies only when faults outlast its life; without keep-alive, a
//!   request in the refresh window of a token whose refreshes all answered keeps it alive;
//! - after a failed refresh, no refresh but `refresh()`'s starts before the backoff ends (half a
//!   second at least, and never before the server's `Retry-After`);
//! - once the store holds a token, it holds the newest, or `store_error` says why not;
//! - `resume` succeeds with a stored token alive at the server, and refuses a dead one;
//! - a forged `state` is refused before any request; a source left behind by a restart makes
//!   no more token requests; errors are typed; nothing hangs.
//!
//! The clock is tokio's, paused; time passes only by `sleep`, so a request already on the
//! loopback wire reaches the server before the clock moves. `PendingAuthorization` and stored
//! expiries use the wall clock, which a paused clock does not move: the test's store moves a
//! stored expiry back by the tokio time spent in the store, as a restart would find it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{self, ExchangeApp, Fault, MockConfig, MockServer};
use infobip_auth::source::{AuthCode, AuthCodeFlow, StoredToken, TokenStore, Transport};
use infobip_auth::{BoxError, Error, ErrorKind, InfobipAuthLayer, RefreshPolicy};
use proptest::prelude::*;
use tokio::time::Instant;
use tower::{Service as _, ServiceBuilder, ServiceExt as _, service_fn};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

const CLIENT_ID: &str = "0123456789abcdef0123456789abcdef";
const SECRET: &str = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5PQ==";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const SMS: &str =
    r#"{"messages":[{"destinations":[{"to":"41793026727"}],"from":"InfoSMS","text":"Hi"}]}"#;
/// An Exchange token's life.
const MINUTE: Duration = Duration::from_secs(60);
/// How often a restart looks whether the token request under way has ended.
const TICK: Duration = Duration::from_millis(200);
/// Room for the wall clock's own progress, and for a token handed out at the very edge of a
/// refresh window.
const SLACK: Duration = Duration::from_secs(1);
/// The default policy's backoff: 1 s, doubled per failure up to 60 s (jittered down).
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Longer than anything a sequence waits for: past it, an operation has hung.
const HANG: Duration = Duration::from_secs(600);

/// A token the token endpoint issued.
struct Issued {
    /// When its token request was sent: the client counts its minute from there.
    sent: Instant,
    /// When the answer came back: the server counts its minute from before that.
    received: Instant,
    /// The token endpoint refused to refresh it: the client knows it is dead.
    refused: bool,
    /// When the token endpoint refused to refresh it, as an [`event`] number.
    refused_at: Option<u64>,
    /// The server revoked it (the user disconnected the app): the client learns it from a `401`.
    revoked: bool,
}

impl Issued {
    fn dead(&self) -> bool {
        self.refused || self.revoked
    }
}

/// A failed token request.
struct Attempt {
    start: Instant,
    end: Instant,
    retry_after: Option<Duration>,
}

/// What the model knows of one running app instance (one `AuthCode` and its layer).
struct Instance {
    number: u64,
    keep_alive: bool,
    /// The newest token this instance holds, when it got it (client clock) and when it dies.
    newest: String,
    got: Instant,
    expires: Instant,
    /// Failed token requests since `newest` came.
    failures: Vec<Attempt>,
    /// How many of `failures` no longer back off: a `refresh()` that came back `Ok` ends the
    /// cache's backoff, even when the source answered with the token it held, making no token
    /// request (the layer had forgotten it at `revoke()`).
    waived: usize,
    /// When requests were made since `newest` came.
    requests: Vec<Instant>,
    /// Since when the layer has held a credential: keep-alive needs it, and the layer takes one
    /// at its first use (a request, `refresh()`) and forgets it at `revoke()`.
    used_since: Option<Instant>,
    /// `revoke()` made the layer forget `newest`: until a new one comes, a request may meet
    /// the backoff of an earlier failure instead of the source.
    revoked: bool,
    /// Whether the death of `newest` has been judged.
    judged: bool,
    store_attached: bool,
}

#[derive(Default)]
struct Model {
    tokens: HashMap<String, Issued>,
    live: Option<Instance>,
    instances: u64,
    token_requests_in_flight: u32,
    token_requests: u64,
    /// Faults injected and not yet met by a token request.
    faults_queued: usize,
    /// Whether the last token request met a fault.
    last_request_faulted: bool,
    violations: Vec<String>,
    /// `refresh()` calls under way: they renew at once, backoff or not.
    explicit_refreshes: u32,
}

impl Model {
    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    fn token_no(&self, token: &str) -> String {
        let mut known: Vec<(&String, &Issued)> = self.tokens.iter().collect();
        known.sort_by_key(|(_, issued)| issued.sent);
        known
            .iter()
            .position(|(t, _)| *t == token)
            .map_or_else(|| "an unknown token".into(), |n| format!("tok-{}", n + 1))
    }

    /// A token request from instance `from` starts now, refreshing `code` if it is a refresh.
    fn token_request_starts(&mut self, from: u64, code: Option<&str>, now: Instant) {
        self.token_requests += 1;
        if self.token_requests_in_flight > 0 {
            self.violation(format!(
                "a token request started at {now:?} while another ran"
            ));
        }
        self.token_requests_in_flight += 1;
        let Some(live) = self.live.as_ref().filter(|live| live.number == from) else {
            if code.is_some() {
                self.violation(format!(
                    "instance {from}, left behind, refreshed a token at {now:?}"
                ));
            }
            return;
        };
        let Some(code) = code else { return };
        let (newest, expires) = (live.newest.clone(), live.expires);
        // A failed refresh backs off (at least half the base delay: the cache counts failures
        // since its last fetch that succeeded, which may have made no token request), and never
        // ends before the server's `Retry-After`, unless `refresh()` asks.
        let backoff_ends = (live.failures[live.waived..].iter())
            .map(|failure| {
                failure.end + (BACKOFF_BASE / 2).max(failure.retry_after.unwrap_or_default())
            })
            .max();
        let early = backoff_ends
            .filter(|ends| now < *ends && self.explicit_refreshes == 0)
            .map(|ends| {
                let tries: Vec<_> = (live.failures.iter())
                    .map(|f| (f.start - live.got, f.end - live.got, f.retry_after))
                    .collect();
                format!(
                    "a refresh started at {:?}, before its backoff ended at {:?}; failed tries since the token came: {tries:?}",
                    now - live.got,
                    ends - live.got
                )
            });
        if let Some(early) = early {
            self.violation(early);
        }
        if self.tokens.get(code).is_some_and(|i| i.refused) {
            let sent = self.token_no(code);
            self.violation(format!(
                "a refresh sent {sent}, which the endpoint had refused"
            ));
        }
        if code != newest {
            let (sent, newest) = (self.token_no(code), self.token_no(&newest));
            self.violation(format!("a refresh sent {sent}, not the newest {newest}"));
        }
        if now >= expires {
            let sent = self.token_no(code);
            self.violation(format!(
                "a refresh sent {sent} at {now:?}, dead since {expires:?}"
            ));
        }
    }

    /// The token request that started at `start` ended now: with a new token, or failed.
    fn token_request_ends(
        &mut self,
        from: u64,
        code: Option<&str>,
        start: Instant,
        outcome: Result<String, (Option<StatusCode>, Option<Duration>)>,
        now: Instant,
    ) {
        self.token_requests_in_flight = self.token_requests_in_flight.saturating_sub(1);
        match outcome {
            Ok(token) => {
                self.tokens.insert(
                    token.clone(),
                    Issued {
                        sent: start,
                        received: now,
                        refused: false,
                        refused_at: None,
                        revoked: false,
                    },
                );
                if let Some(live) = self.live.as_mut().filter(|live| live.number == from)
                    && code.is_some()
                {
                    // Its minute counts from the request; its life, which sets when it is
                    // refreshed ahead, from the answer.
                    live.newest = token;
                    live.got = now;
                    live.expires = start + MINUTE;
                    live.failures.clear();
                    live.waived = 0;
                    live.requests.clear();
                    live.revoked = false;
                    live.judged = false;
                }
            }
            Err((status, retry_after)) => {
                if let (Some(code), Some(400 | 401)) = (code, status.map(|s| s.as_u16()))
                    && let Some(issued) = self.tokens.get_mut(code)
                {
                    issued.refused = true;
                    issued.refused_at = Some(event());
                }
                if let Some(live) = self.live.as_mut().filter(|live| live.number == from) {
                    live.failures.push(Attempt {
                        start,
                        end: now,
                        retry_after,
                    });
                }
            }
        }
    }

    /// An API request goes out now with `token`.
    fn api_request_sent(&mut self, token: Option<&str>, now: Instant) {
        let Some(token) = token else {
            self.violation(format!(
                "an API request went out at {now:?} without a token"
            ));
            return;
        };
        let name = self.token_no(token);
        match self.tokens.get(token) {
            None => self.violation(format!("an API request carried {name}")),
            Some(issued) if issued.refused => {
                self.violation(format!("an API request carried {name}, refused"));
            }
            Some(issued) if now >= issued.sent + MINUTE => self.violation(format!(
                "an API request carried {name} at {now:?}, dead since {:?}",
                issued.sent + MINUTE
            )),
            Some(_) => {}
        }
    }

    /// The server answered an API request sent at `sent` with `token`.
    fn api_answer(&mut self, token: Option<&str>, sent: Instant, status: StatusCode) {
        if status != StatusCode::UNAUTHORIZED {
            return;
        }
        let Some(issued) = token
            .and_then(|t| self.tokens.get(t))
            .filter(|i| !i.revoked)
        else {
            return;
        };
        if sent + SLACK < issued.sent + MINUTE {
            let name = self.token_no(token.unwrap_or_default());
            self.violation(format!(
                "the server refused {name} sent at {sent:?}, alive until {:?}",
                issued.sent + MINUTE
            ));
        }
    }

    /// `ReauthorizationRequired` at `now`: the live instance's newest token must be dead.
    fn reauthorization_required(&mut self, what: &str, now: Instant) {
        let Some(live) = self.live.as_ref() else {
            return;
        };
        let dead = self.tokens.get(&live.newest).is_some_and(Issued::dead);
        if !dead && now + SLACK < live.expires {
            let name = self.token_no(&live.newest);
            self.violation(format!(
                "{what} at {now:?}: ReauthorizationRequired while {name} lived until {:?}",
                live.expires
            ));
        }
    }

    /// Judges the live instance's newest token once its life is over: it may die only when no
    /// promised refresh could save it.
    fn judge_death(&mut self, now: Instant, slow_saves: &[(Instant, Instant)]) {
        let running = self.token_requests_in_flight > 0;
        let Some(live) = self.live.as_mut() else {
            return;
        };
        // A refresh under way is judged by its outcome, once it has one.
        if live.judged || now < live.expires || running {
            return;
        }
        live.judged = true;
        let refused = self.tokens.get(&live.newest).is_some_and(Issued::dead);
        let life = live.expires.saturating_duration_since(live.got);
        let ahead = live.got + life.mul_f64(0.75);
        let name = format!("the token of instance {}", live.number);
        let mut found = Vec::new();
        // Keep-alive starts with the layer's first credential: its refresh is due by ¾ of the
        // life, or at once if the layer took the token later (its first fetch refreshes a token
        // past half its life).
        let first_due = (live.used_since)
            .filter(|at| *at < live.expires)
            .map(|at| at.max(ahead));
        // A token revoked at the server dies whatever the client does: after its `401` the
        // layer forgets it, and keep-alive has nothing to refresh.
        let revoked = self.tokens.get(&live.newest).is_some_and(|i| i.revoked);
        if let Some(first_due) = first_due.filter(|_| live.keep_alive && !revoked) {
            // Each try starts by the promised time: ¾ of the life (or the first use, if later),
            // then the end of each backoff.
            // A try due while a slow save holds the refresh lock starts when the save ends.
            let after_saves = |mut at: Instant| {
                while let Some((_, end)) = slow_saves
                    .iter()
                    .find(|(start, end)| *start <= at && at < *end)
                {
                    at = *end;
                }
                at
            };
            let mut due = after_saves(first_due);
            let mut retry_at = first_due;
            for (n, failure) in live.failures.iter().enumerate() {
                if failure.start > due + SLACK && failure.start < live.expires {
                    let tries: Vec<_> = (live.failures.iter())
                        .map(|f| (f.start - live.got, f.end - live.got))
                        .collect();
                    found.push(format!(
                        "{name} (life {life:?}): a refresh due at {:?} started at {:?}; failed tries since it came: {tries:?}",
                        due - live.got,
                        failure.start - live.got
                    ));
                }
                let full = BACKOFF_BASE
                    .saturating_mul(2u32.saturating_pow(n as u32))
                    .min(BACKOFF_MAX);
                retry_at =
                    retry_at.max(failure.end + full.max(failure.retry_after.unwrap_or_default()));
                due = after_saves(retry_at);
            }
            if !refused && due + SLACK < live.expires {
                found.push(format!(
                    "with keep-alive, {name} died at {:?} though a refresh was due at {due:?} ({} failed)",
                    live.expires,
                    live.failures.len()
                ));
            }
        } else if !refused && live.failures.is_empty() {
            // A request in the refresh window starts a refresh, which the server answers.
            if let Some(at) = live
                .requests
                .iter()
                .find(|at| **at >= ahead + SLACK && **at + SLACK * 2 < live.expires)
            {
                found.push(format!(
                    "{name} died at {:?} though a request came at {at:?}, in its refresh window",
                    live.expires
                ));
            }
        }
        self.violations.extend(found);
    }
}

type Shared = Arc<Mutex<Model>>;

/// The next number of a clock that orders events the paused tokio clock shows as simultaneous.
fn event() -> u64 {
    static EVENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    EVENTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The store of the test's app: in memory, failing to save when told to. A load moves the
/// stored expiry back by the tokio time since the save, as the wall clock would have moved.
#[derive(Clone, Debug, Default)]
struct ModelStore(Arc<Mutex<StoreState>>);

#[derive(Debug, Default)]
struct StoreState {
    /// The token saved last, when its save began, and that as an [`event`] number.
    saved: Option<(StoredToken, Instant, u64)>,
    failing: bool,
    /// How long the next saves take.
    delays: std::collections::VecDeque<Duration>,
    /// Saves under way.
    saving: u32,
    /// When each slow save ran: a refresh waits for a save under way (`save_to` holds the
    /// refresh lock while it saves, and a refresh saves before it returns).
    slow_saves: Vec<(Instant, Instant)>,
}

impl ModelStore {
    /// The stored token, as a load would read it.
    fn current(&self) -> Option<StoredToken> {
        let state = lock(&self.0);
        let (token, saved_at, _) = state.saved.as_ref()?;
        let passed = Instant::now().saturating_duration_since(*saved_at);
        let expires = token
            .expires_at()
            .checked_sub(passed)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Some(StoredToken::new(
            token.token_type(),
            token.expose_token(),
            expires,
            token.account().clone(),
        ))
    }
}

impl TokenStore for ModelStore {
    async fn save(&self, token: &StoredToken) -> Result<(), BoxError> {
        // The stored expiry is wall-clock time as of now, when the token was read.
        let read_at = Instant::now();
        let read_event = event();
        let delay = {
            let mut state = lock(&self.0);
            state.saving += 1;
            state.delays.pop_front().unwrap_or_default()
        };
        tokio::time::sleep(delay).await;
        let mut state = lock(&self.0);
        state.saving -= 1;
        if !delay.is_zero() {
            state.slow_saves.push((read_at, Instant::now()));
        }
        if state.failing {
            return Err("the database is down".into());
        }
        state.saved = Some((token.clone(), read_at, read_event));
        Ok(())
    }

    async fn load(&self) -> Result<Option<StoredToken>, BoxError> {
        Ok(self.current())
    }
}

/// The form fields of a token request.
fn form(body: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

/// The flow's transport: the real client, with every token request reported to the model.
/// Requests from instance `number` once it is left behind fail without reaching the server.
fn spied_transport(client: HttpClient, model: Shared, number: u64) -> Transport {
    Transport::new(service_fn(move |request: Request<Full<Bytes>>| {
        let (client, model) = (client.clone(), model.clone());
        let start = Instant::now();
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            let fields = form(&body);
            let code = (fields.get("grant_type").map(String::as_str) == Some("refresh_token"))
                .then(|| fields.get("code").cloned())
                .flatten();
            let gone = {
                let mut model = lock(&model);
                model.token_request_starts(number, code.as_deref(), start);
                // An exchange comes before its instance runs.
                let gone = code.is_some() && model.live.as_ref().is_none_or(|l| l.number != number);
                if !gone {
                    model.last_request_faulted = model.faults_queued > 0;
                    model.faults_queued = model.faults_queued.saturating_sub(1);
                }
                gone
            };
            let mut running = Running {
                model: model.clone(),
                number,
                code: code.clone(),
                start,
                ended: false,
            };
            let answer = if gone {
                Err::<_, BoxError>("the process is gone".into())
            } else {
                let request = Request::from_parts(parts, Full::new(body));
                async {
                    let response = client.request(request).await?;
                    let (parts, body) = response.into_parts();
                    let body = body.collect().await?.to_bytes();
                    Ok::<_, BoxError>((parts, body))
                }
                .await
            };
            let now = Instant::now();
            let outcome = match &answer {
                Ok((parts, body)) if parts.status == StatusCode::OK => {
                    serde_json::from_slice::<serde_json::Value>(body)
                        .ok()
                        .and_then(|v| v["token"].as_str().map(str::to_owned))
                        .ok_or((Some(parts.status), None))
                }
                Ok((parts, _)) => {
                    let retry_after = parts
                        .headers
                        .get(header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok()?.parse().ok())
                        .map(Duration::from_secs);
                    Err((Some(parts.status), retry_after))
                }
                Err(_) => Err((None, None)),
            };
            running.ended = true;
            lock(&model).token_request_ends(number, code.as_deref(), start, outcome, now);
            let (parts, body) = answer?;
            Ok::<_, BoxError>(Response::from_parts(parts, Full::new(body)))
        }
    }))
}

/// A token request under way: cut off (the transport's timeout), it ends as a failure.
struct Running {
    model: Shared,
    number: u64,
    code: Option<String>,
    start: Instant,
    ended: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.ended {
            let now = Instant::now();
            lock(&self.model).token_request_ends(
                self.number,
                self.code.as_deref(),
                self.start,
                Err((None, None)),
                now,
            );
        }
    }
}

/// One app instance: its source and its layered API client.
struct App {
    source: AuthCode,
    layer: InfobipAuthLayer,
}

struct Harness {
    server: MockServer,
    client: HttpClient,
    model: Shared,
    store: ModelStore,
    keep_alive: bool,
    app: Option<App>,
}

impl Harness {
    fn flow(&self, number: u64) -> Result<AuthCodeFlow, BoxError> {
        Ok(AuthCodeFlow::builder(self.server.base_url(), CLIENT_ID)
            .client_secret(SECRET)
            .redirect_uri(REDIRECT)
            .scope("sms:message:send")
            .transport(spied_transport(
                self.client.clone(),
                self.model.clone(),
                number,
            ))
            .build()?)
    }

    fn start(&mut self, source: AuthCode, number: u64, store_attached: bool) {
        let credential = source.credential();
        let now = Instant::now();
        let expires = credential.expiry().unwrap_or(now);
        lock(&self.model).live = Some(Instance {
            number,
            keep_alive: self.keep_alive,
            newest: credential.expose_token().to_owned(),
            got: now.min(expires),
            expires,
            failures: Vec::new(),
            waived: 0,
            requests: Vec::new(),
            used_since: None,
            revoked: false,
            judged: false,
            store_attached,
        });
        let layer = InfobipAuthLayer::new(source.clone())
            .refresh_policy(RefreshPolicy::default().keep_alive(self.keep_alive));
        self.app = Some(App { source, layer });
    }

    /// The running instance ends, as its process would: after its token request and its save,
    /// if any (a process gone does not save later).
    async fn stop(&mut self) {
        while lock(&self.model).token_requests_in_flight > 0 || lock(&self.store.0).saving > 0 {
            tokio::time::sleep(TICK).await;
        }
        settle().await;
        self.app = None;
        lock(&self.model).live = None;
    }

    fn next_number(&self) -> u64 {
        let mut model = lock(&self.model);
        model.instances += 1;
        model.instances
    }

    /// The user approves the app (after a forged callback, if `forged`): a new instance.
    async fn authorize(&mut self, forged: bool) -> Result<(), BoxError> {
        self.stop().await;
        let number = self.next_number();
        let flow = self.flow(number)?;
        let (url, pending) = flow.authorize_url()?;
        let answer = self
            .client
            .request(Request::get(url).body(Full::default())?)
            .await?;
        let location = answer
            .headers()
            .get(header::LOCATION)
            .ok_or("no Location")?
            .to_str()?
            .to_owned();
        if forged {
            let before = lock(&self.model).token_requests;
            let (_, other) = flow.authorize_url()?;
            let refused = flow.callback(other, &location);
            let kind = refused.as_ref().err().map(Error::kind);
            let mut model = lock(&self.model);
            if !matches!(kind, Some(ErrorKind::InvalidCallback { .. })) {
                model.violation(format!("a forged state was not refused: {kind:?}"));
            }
            if model.token_requests != before {
                model.violation("a forged callback made a token request".into());
            }
        }
        let grant = flow.callback(pending, &location)?;
        // The exchange answers before any instance runs: the model takes its token as issued.
        match flow.exchange(grant).await {
            Ok(source) => self.start(source, number, false),
            Err(err) => {
                let mut model = lock(&self.model);
                if !model.last_request_faulted {
                    model.violation(format!("the exchange failed with no fault: {err}"));
                }
            }
        }
        Ok(())
    }

    /// `size` requests at once through the live instance's layer.
    async fn send(&mut self, size: usize) -> Result<(), BoxError> {
        let Some(app) = self.app.as_ref() else {
            return Ok(());
        };
        let now = Instant::now();
        let held = {
            let mut model = lock(&self.model);
            let held = model.live.as_mut().and_then(|live| {
                live.requests.push(now);
                (!live.revoked).then(|| (live.newest.clone(), live.expires))
            });
            held.filter(|(token, _)| !model.tokens.get(token).is_some_and(Issued::dead))
        };
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..size {
            let mut service = ServiceBuilder::new()
                .layer(app.layer.clone())
                .service(spied_api(self.client.clone(), self.model.clone()));
            let request = Request::post(self.server.url("/sms/2/text/advanced"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from_static(SMS.as_bytes())))?;
            tasks.spawn(async move {
                let result = match service.ready().await {
                    Ok(ready) => ready.call(request).await,
                    Err(err) => Err(err),
                };
                (result.map(|response| response.status()), Instant::now())
            });
        }
        let ended = tokio::time::timeout(HANG, tasks.join_all()).await;
        let mut model = lock(&self.model);
        let Ok(results) = ended else {
            model.violation(format!("a request made at {now:?} never ended"));
            return Ok(());
        };
        for (result, at) in results {
            match result {
                Ok(StatusCode::OK) => {
                    // The layer holds the credential now (a request failed in a backoff does
                    // not give it one).
                    if let Some(live) = model.live.as_mut() {
                        live.used_since.get_or_insert(now);
                    }
                }
                // Revoked at the server: the layer renews once, is refused, and says so.
                Ok(StatusCode::UNAUTHORIZED) if model.tokens.values().any(|i| i.revoked) => {}
                Ok(status) => model.violation(format!("a request made at {now:?} got {status}")),
                Err(err) => match Error::find(&*err).map(Error::kind) {
                    None => model.violation(format!("an untyped error: {err}")),
                    Some(ErrorKind::ReauthorizationRequired) => {
                        model.reauthorization_required("a request", at);
                    }
                    Some(_) => {
                        if let Some((token, expires)) = &held
                            && at + SLACK < *expires
                            && !model.tokens.get(token).is_some_and(Issued::dead)
                        {
                            model.violation(format!(
                                "a request made at {now:?} while a token lived until {expires:?} failed at {at:?}: {err}"
                            ));
                        }
                    }
                },
            }
        }
        Ok(())
    }

    async fn refresh(&self) {
        let Some(app) = self.app.as_ref() else { return };
        lock(&self.model).explicit_refreshes += 1;
        let result = tokio::time::timeout(HANG, app.layer.refresh()).await;
        let now = Instant::now();
        let mut model = lock(&self.model);
        model.explicit_refreshes -= 1;
        match result {
            Err(_) => model.violation("refresh() never ended".into()),
            Ok(Ok(_)) => {
                if let Some(live) = model.live.as_mut() {
                    live.used_since.get_or_insert(now);
                    live.waived = live.failures.len();
                }
            }
            Ok(Err(err)) if matches!(err.kind(), ErrorKind::ReauthorizationRequired) => {
                model.reauthorization_required("refresh()", now);
            }
            Ok(Err(_)) => {}
        }
    }

    async fn revoke(&mut self) {
        let Some(app) = self.app.as_ref() else { return };
        let result = tokio::time::timeout(HANG, app.layer.revoke()).await;
        let mut model = lock(&self.model);
        if !matches!(result, Ok(Ok(()))) {
            model.violation(format!("revoke() failed: {result:?}"));
        }
        if let Some(live) = model.live.as_mut() {
            live.used_since = None;
            live.revoked = true;
        }
    }

    async fn save_to(&self) {
        let Some(app) = self.app.as_ref() else { return };
        let failing = lock(&self.store.0).failing;
        let result = tokio::time::timeout(HANG, app.source.save_to(self.store.clone())).await;
        let mut model = lock(&self.model);
        match result {
            Err(_) => model.violation("save_to never ended".into()),
            Ok(Ok(())) if failing => model.violation("save_to to a failing store succeeded".into()),
            Ok(Err(err)) if !failing || !matches!(err.kind(), ErrorKind::Store) => {
                model.violation(format!("save_to failed: {err}"));
            }
            Ok(_) => {}
        }
        if let Some(live) = model.live.as_mut() {
            live.store_attached = true;
        }
    }

    async fn restart(&mut self) {
        self.stop().await;
        let number = self.next_number();
        let Ok(flow) = self.flow(number) else { return };
        let stored = self.store.current();
        // The refusal of the stored token reached the store if a save read it after the
        // refusal: the save of a refused token ends after the refusal is reported (so the
        // layer learns it at once), and a store failing by then misses it, as `store_error`
        // says (`check_store`).
        let saved_at = lock(&self.store.0).saved.as_ref().map(|(_, _, at)| *at);
        let refusal_stored =
            |issued: &Issued| issued.refused_at.is_some_and(|at| saved_at >= Some(at));
        let now = Instant::now();
        let result = tokio::time::timeout(HANG, flow.resume(self.store.clone())).await;
        let Ok(result) = result else {
            lock(&self.model).violation("resume never ended".into());
            return;
        };
        let mut model = lock(&self.model);
        let truth = stored.as_ref().map(|stored| {
            let left = stored
                .expires_at()
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            let issued = model.tokens.get(stored.expose_token());
            let alive_at_server =
                issued.is_some_and(|i| !i.dead() && now + SLACK < i.sent + MINUTE);
            // Dead as the client could know: refused, or past its minute (not a revocation
            // it has not met).
            let dead_at_server = issued
                .is_none_or(|i| (i.refused && refusal_stored(i)) || now >= i.received + MINUTE);
            (left, alive_at_server, dead_at_server)
        });
        match (&result, truth) {
            (Ok(_), None) => model.violation("resume succeeded from an empty store".into()),
            (Ok(_), Some((_, _, true))) => {
                model.violation(format!("resume at {now:?} gave back a dead token"));
            }
            (Err(err), Some((left, true, _)))
                if left > SLACK || !matches!(err.kind(), ErrorKind::ReauthorizationRequired) =>
            {
                model.violation(format!(
                    "resume at {now:?} refused a token alive for {left:?} more: {err}"
                ));
            }
            (Err(err), _) if !matches!(err.kind(), ErrorKind::ReauthorizationRequired) => {
                model.violation(format!("resume failed: {err}"));
            }
            _ => {}
        }
        // A refusal the store missed is news to the new instance: the token is dead at the
        // server, and the instance learns it as it would a revocation.
        let resumed = result
            .as_ref()
            .ok()
            .map(|s| s.credential().expose_token().to_owned());
        if let Some(issued) = resumed.and_then(|token| model.tokens.get_mut(&token))
            && issued.refused
            && !refusal_stored(issued)
        {
            issued.refused = false;
            issued.revoked = true;
        }
        drop(model);
        if let Ok(source) = result {
            self.start(source, number, true);
        }
    }

    /// Once no token request runs: a store holding a token holds the newest, or says why not.
    fn check_store(&self) {
        let Some(app) = self.app.as_ref() else { return };
        let mut model = lock(&self.model);
        if model.token_requests_in_flight > 0
            || lock(&self.store.0).saving > 0
            || !model.live.as_ref().is_some_and(|live| live.store_attached)
        {
            return;
        }
        let credential = app.source.credential();
        let stored = self.store.current();
        let behind = match &stored {
            None => true,
            Some(stored) => {
                stored.expose_token() != credential.expose_token()
                    || (credential.expiry().is_some_and(|at| at <= Instant::now())
                        && stored.expires_at() > SystemTime::now() + SLACK)
            }
        };
        if behind && app.source.store_error().is_none() {
            model.violation("the store is behind the source, and store_error says nothing".into());
        }
    }
}

/// The API behind the layer: the real client, with every request reported to the model.
fn spied_api(
    client: HttpClient,
    model: Shared,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<hyper::body::Incoming>,
    Error = BoxError,
    Future = impl Send,
> + Clone {
    service_fn(move |request: Request<Full<Bytes>>| {
        let (client, model) = (client.clone(), model.clone());
        let now = Instant::now();
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()?.strip_prefix("IBSSO "))
            .map(str::to_owned);
        lock(&model).api_request_sent(token.as_deref(), now);
        async move {
            let response = client.request(request).await?;
            lock(&model).api_answer(token.as_deref(), now, response.status());
            Ok::<_, BoxError>(response)
        }
    })
}

/// Lets every task that can run now run.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// `size` requests at once.
    Send {
        size: usize,
    },
    Idle(Duration),
    /// The next `times` token requests meet `fault`.
    Fault {
        fault: Fault,
        times: usize,
    },
    StoreFails(bool),
    /// `save_to` the store; with `racing`, a `refresh()` at the same time and the store's
    /// first write slow, so the refresh's save would end first without `save_to` waiting.
    SaveTo {
        racing: bool,
    },
    Restart,
    Refresh,
    Revoke,
    /// The user approves the app again (after a forged callback, if `forged`).
    Authorize {
        forged: bool,
    },
    /// The user disconnects the app at Infobip: every token is revoked.
    ServerRevokes,
    /// The store's next saves take these times.
    SlowSaves(Vec<Duration>),
}

async fn run(keep_alive: bool, ops: Vec<Op>) -> Result<(), String> {
    let app = ExchangeApp::new(CLIENT_ID, SECRET, REDIRECT, mock::DEMO_USERNAME);
    let server = MockServer::start_with(MockConfig::demo().exchange_app(app))
        .await
        .map_err(|e| e.to_string())?;
    let mut harness = Harness {
        server,
        client: Client::builder(TokioExecutor::new()).build_http(),
        model: Arc::new(Mutex::new(Model::default())),
        store: ModelStore::default(),
        keep_alive,
        app: None,
    };
    harness.authorize(false).await.map_err(|e| e.to_string())?;
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Send { size } => harness.send(*size).await.map_err(|e| e.to_string())?,
            Op::Idle(gap) => tokio::time::sleep(*gap).await,
            Op::Fault { fault, times } => {
                for _ in 0..*times {
                    harness.server.inject(fault.clone());
                }
                lock(&harness.model).faults_queued += times;
            }
            Op::StoreFails(on) => {
                lock(&harness.store.0).failing = *on;
            }
            Op::SaveTo { racing: false } => harness.save_to().await,
            Op::SaveTo { racing: true } => {
                lock(&harness.store.0)
                    .delays
                    .push_front(Duration::from_secs(2));
                tokio::join!(harness.save_to(), harness.refresh());
            }
            Op::Restart => harness.restart().await,
            Op::Refresh => harness.refresh().await,
            Op::Revoke => harness.revoke().await,
            Op::ServerRevokes => {
                harness.server.revoke_all_tokens();
                for issued in lock(&harness.model).tokens.values_mut() {
                    issued.revoked = true;
                }
            }
            Op::SlowSaves(delays) => lock(&harness.store.0).delays.extend(delays.iter().copied()),
            Op::Authorize { forged } => {
                harness
                    .authorize(*forged)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        settle().await;
        harness.check_store();
        let slow_saves = lock(&harness.store.0).slow_saves.clone();
        let mut model = lock(&harness.model);
        model.judge_death(Instant::now(), &slow_saves);
        let violations = std::mem::take(&mut model.violations);
        if !violations.is_empty() {
            return Err(format!("after step {step} ({op:?}): {violations:#?}"));
        }
    }
    // The last token's fate is judged too.
    tokio::time::sleep(2 * MINUTE).await;
    settle().await;
    let slow_saves = lock(&harness.store.0).slow_saves.clone();
    let mut model = lock(&harness.model);
    model.judge_death(Instant::now(), &slow_saves);
    if harness.server.counters().max_token_requests_in_flight > 1 {
        model.violation("the server saw two token requests at once".into());
    }
    let violations = std::mem::take(&mut model.violations);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(format!("at the end: {violations:#?}"))
    }
}

fn seconds(choices: &'static [u64]) -> impl Strategy<Value = Duration> {
    proptest::sample::select(choices).prop_map(Duration::from_millis)
}

fn fault() -> impl Strategy<Value = Fault> {
    let status =
        |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    prop_oneof![
        proptest::sample::select(&[500u16, 502, 503][..]).prop_map(move |code| Fault::Status {
            status: status(code),
            retry_after: None,
        }),
        seconds(&[1_000, 5_000, 20_000, 90_000]).prop_map(move |after| Fault::Status {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(after),
        }),
        Just(Fault::CloseConnection),
        Just(Fault::Truncated),
        Just(Fault::AnswerLost),
        seconds(&[500, 3_000, 20_000, 40_000]).prop_map(Fault::Delay),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..4).prop_map(|size| Op::Send { size }),
        6 => seconds(&[1_000, 10_000, 30_000, 44_000, 50_000, 58_000, 70_000, 180_000, 600_000]).prop_map(Op::Idle),
        3 => (fault(), 1usize..5).prop_map(|(fault, times)| Op::Fault { fault, times }),
        1 => any::<bool>().prop_map(Op::StoreFails),
        2 => any::<bool>().prop_map(|racing| Op::SaveTo { racing }),
        2 => Just(Op::Restart),
        1 => Just(Op::Refresh),
        1 => Just(Op::Revoke),
        1 => any::<bool>().prop_map(|forged| Op::Authorize { forged }),
        1 => Just(Op::ServerRevokes),
        1 => proptest::collection::vec(seconds(&[0, 2_000, 5_000]), 1..4).prop_map(Op::SlowSaves),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn the_exchange_flow_keeps_its_promises(keep_alive in any::<bool>(), ops in proptest::collection::vec(op(), 1..30)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        runtime.block_on(run(keep_alive, ops)).map_err(TestCaseError::fail)?;
    }
}

fn run_paused(keep_alive: bool, ops: Vec<Op>) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| e.to_string())?
        .block_on(run(keep_alive, ops))
}

/// The sequence in which the model first caught a layer's first request, late in the token's
/// life, not refreshing it: the token died ten seconds later.
#[test]
fn a_first_request_late_in_the_tokens_life_keeps_it() -> Result<(), String> {
    let ops = vec![
        Op::Idle(Duration::from_secs(50)),
        Op::Send { size: 1 },
        Op::Idle(Duration::from_secs(1)),
    ];
    run_paused(false, ops)
}

/// The sequence in which the model caught the layer sending a token after Infobip had refused
/// to refresh it (the user disconnected the app): each such request only met a `401`.
#[test]
fn a_refused_refresh_ends_the_token_for_the_layer() -> Result<(), String> {
    let ops = vec![
        Op::Send { size: 1 },
        Op::ServerRevokes,
        Op::Idle(Duration::from_secs(50)),
        Op::Send { size: 1 },
    ];
    run_paused(true, ops)
}

/// A keep-alive refresh that Infobip refuses while the store is slow: the layer used to learn
/// of the refusal only once the store had saved it, and sent the refused token meanwhile.
#[test]
fn a_refused_refresh_reaches_the_layer_before_a_slow_save_ends() -> Result<(), String> {
    let ops = vec![
        Op::SaveTo { racing: false },
        Op::Send { size: 1 },
        Op::ServerRevokes,
        Op::SlowSaves(vec![Duration::from_secs(5)]),
        Op::Idle(Duration::from_secs(44)),
        Op::Idle(Duration::from_secs(1)),
        Op::Send { size: 1 },
    ];
    run_paused(true, ops)
}

/// The sequence in which the model took a refusal for stored when the store had failed by the
/// time the refused token's save ran (it ends after the refusal is reported).
#[test]
fn a_refusal_saved_after_the_store_fails_is_news_to_a_restart() -> Result<(), String> {
    let ops = vec![
        Op::SlowSaves(vec![Duration::from_secs(2)]),
        Op::SaveTo { racing: true },
        Op::ServerRevokes,
        Op::SaveTo { racing: true },
        Op::StoreFails(true),
        Op::Restart,
    ];
    run_paused(false, ops)
}

/// A 429 with `Retry-After`, as a fault of the embedded server.
fn throttled(after: Duration) -> Fault {
    Fault::Status {
        status: StatusCode::TOO_MANY_REQUESTS,
        retry_after: Some(after),
    }
}

/// A layer's first request late in the token's life, whose refresh fails: with keep-alive, the
/// cache used to take the token as fresh and try again only at its last tenth (where a `429`
/// then outlasted it), not when the backoff ended.
#[test]
fn a_failed_refresh_of_an_aging_token_is_retried_when_the_backoff_ends() -> Result<(), String> {
    let ops = vec![
        Op::Idle(Duration::from_secs(50)),
        Op::Fault {
            fault: Fault::Status {
                status: StatusCode::SERVICE_UNAVAILABLE,
                retry_after: None,
            },
            times: 1,
        },
        Op::Fault {
            fault: throttled(Duration::from_secs(20)),
            times: 1,
        },
        Op::Send { size: 1 },
        Op::Idle(Duration::from_secs(30)),
    ];
    run_paused(true, ops)
}

/// The same without keep-alive, the refresh throttled: the next request used to refresh at
/// once, long before the server's `Retry-After`.
#[test]
fn a_throttled_refresh_of_an_aging_token_is_not_retried_before_retry_after() -> Result<(), String> {
    let ops = vec![
        Op::Idle(Duration::from_secs(44)),
        Op::Fault {
            fault: throttled(Duration::from_secs(5)),
            times: 1,
        },
        Op::Send { size: 1 },
        Op::Idle(Duration::from_secs(1)),
        Op::Send { size: 1 },
        Op::Idle(Duration::from_secs(10)),
        Op::Send { size: 1 },
    ];
    run_paused(false, ops)
}

/// `revoke()` after a refresh failed, then `refresh()`: the source hands back the token it
/// holds, with no token request, and the backoff ends with it; a `401` to that token renews
/// at once. The model once took that renewal for one started within the backoff.
#[test]
fn a_refresh_that_gets_the_held_token_ends_the_backoff() -> Result<(), String> {
    let ops = vec![
        Op::ServerRevokes,
        Op::Fault {
            fault: Fault::Status {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                retry_after: None,
            },
            times: 1,
        },
        Op::Send { size: 1 },
        Op::Revoke,
        Op::Refresh,
        Op::Send { size: 1 },
    ];
    run_paused(false, ops)
}
