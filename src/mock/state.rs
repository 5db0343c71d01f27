//! The server's memory: configured users, keys, clients and apps (fixed at start), and the
//! sessions, tokens, codes, faults and counters that change while it runs.
//!
//! Time is `tokio::time::Instant`, so tests on a paused clock can expire things by advancing it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::{Method, StatusCode};
use rand::Rng;
use tokio::time::Instant;

use super::config::{ExchangeApp, MockConfig};
use super::counters::{Counters, ReceivedRequest, SessionEvent};
use super::faults::Fault;
use super::operations::{Operations, Scheme};
use super::throttle::{Throttle, Throttled};

/// Scope names a credential holds.
pub(crate) type ScopeSet = Arc<BTreeSet<String>>;

fn scope_set(list: &str) -> ScopeSet {
    Arc::new(
        list.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect(),
    )
}

/// A configured user.
pub(crate) struct User {
    pub(crate) password: String,
    pub(crate) scopes: ScopeSet,
}

/// A configured OAuth client.
pub(crate) struct Client {
    pub(crate) secret: String,
    pub(crate) scopes: ScopeSet,
}

/// What the configuration fixed at start.
pub(crate) struct Settings {
    pub(crate) users: HashMap<String, User>,
    pub(crate) clients: HashMap<String, Client>,
    pub(crate) apps: HashMap<String, ExchangeApp>,
    pub(crate) session_idle_timeout: Duration,
    pub(crate) session_max_lifetime: Option<Duration>,
    pub(crate) oauth_token_lifetime: Duration,
    pub(crate) expires_in_as_string: bool,
    pub(crate) exchange_token_lifetime: Duration,
    pub(crate) code_lifetime: Duration,
    pub(crate) operations: Operations,
}

/// An API key as it stands now.
struct ApiKey {
    scopes: ScopeSet,
    expires_at: Option<Instant>,
    revoked: bool,
}

/// An IBSSO session from `POST /auth/1/session`.
struct Session {
    username: String,
    number: u64,
    expires_at: Instant,
    /// The end of its fixed lifetime, if sessions have one, whatever their use.
    ends_at: Option<Instant>,
}

impl Session {
    /// Used now: it lives `idle` longer, up to its fixed end.
    fn extend(&mut self, now: Instant, idle: Duration) {
        let idle_end = deadline(now, idle);
        self.expires_at = self.ends_at.map_or(idle_end, |end| idle_end.min(end));
    }
}

/// An access token (OAuth client credentials) or an Exchange token.
pub(crate) struct Token {
    pub(crate) scopes: ScopeSet,
    /// The Exchange app that obtained it; `None` for OAuth access tokens.
    pub(crate) client_id: Option<String>,
    pub(crate) expires_at: Instant,
}

/// An authorization code from `GET /exchange/1/oauth/authorize`.
pub(crate) struct Code {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) challenge: Option<String>,
    pub(crate) expires_at: Instant,
    pub(crate) used: bool,
}

/// How long an expired token or code is still recognised as expired (and refused as such)
/// before it may be forgotten.
const EXPIRED_KEPT: Duration = Duration::from_secs(10 * 60);

/// Inserts `value` under `key`. When the map is full, what expired more than
/// [`EXPIRED_KEPT`] ago (by `expires_at`) is forgotten first, so a server that runs for days
/// grows only with what can still be used. Pruning only when the next insert would grow the
/// map keeps the cost per insert constant on average.
pub(crate) fn insert_live<T>(
    map: &mut HashMap<String, T>,
    key: String,
    value: T,
    expires_at: impl Fn(&T) -> Instant,
) {
    if map.len() >= map.capacity() {
        let now = Instant::now();
        map.retain(|_, held| {
            let forgettable = expires_at(held).checked_add(EXPIRED_KEPT);
            forgettable.is_none_or(|at| at > now)
        });
    }
    map.insert(key, value);
}

/// How many answered resource requests [`Live::received`] keeps: the most recent ones.
pub(crate) const RECEIVED_KEPT: usize = 100_000;

/// How many session events [`Live::session_events`] keeps: the most recent ones.
pub(crate) const SESSION_EVENTS_KEPT: usize = 10_000;

/// Appends `item` to `log`, which keeps the most recent `kept`; whether the oldest was dropped.
fn push_kept<T>(log: &mut VecDeque<T>, item: T, kept: usize) -> bool {
    let dropped = log.len() >= kept && log.pop_front().is_some();
    log.push_back(item);
    dropped
}

/// What changes while the server runs.
#[derive(Default)]
pub(crate) struct Live {
    api_keys: HashMap<String, ApiKey>,
    sessions: HashMap<String, Session>,
    sessions_created: u64,
    pub(crate) oauth_tokens: HashMap<String, Token>,
    pub(crate) exchange_tokens: HashMap<String, Token>,
    pub(crate) codes: HashMap<String, Code>,
    faults: VecDeque<Fault>,
    latency: Duration,
    /// Faults and latency for `DELETE /auth/1/session`, apart from the token endpoints': a
    /// renewal sends a `DELETE` before its create, and a test aims at one or the other.
    delete_faults: VecDeque<Fault>,
    delete_latency: Duration,
    /// Faults and latency for protected operations (every request the operations table
    /// answers), apart again: a test of a client's retries aims at its API calls, not its
    /// logins.
    operation_faults: VecDeque<Fault>,
    operation_latency: Duration,
    in_flight: u64,
    throttle: Throttle,
    /// Everything but the session events, which are kept apart, bounded.
    pub(crate) counters: Counters,
    session_events: VecDeque<SessionEvent>,
    received: VecDeque<ReceivedRequest>,
}

impl Live {
    /// Records a session event, forgetting (and counting) the oldest beyond
    /// [`SESSION_EVENTS_KEPT`].
    fn session_event(&mut self, event: SessionEvent) {
        if push_kept(&mut self.session_events, event, SESSION_EVENTS_KEPT) {
            self.counters.session_events_dropped += 1;
        }
    }

    /// Whether a request to `endpoint` is within the configured rate; counts it if not.
    pub(crate) fn admit(&mut self, endpoint: Throttled) -> bool {
        let admitted = self.throttle.admit(endpoint, Instant::now());
        if !admitted {
            self.counters.throttled += 1;
        }
        admitted
    }
}

/// Which token endpoint a request went to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TokenEndpoint {
    Session,
    OAuth,
    Exchange,
}

/// Whether a credential may call an operation.
pub(crate) enum Access {
    Granted,
    Unauthorized,
    Forbidden,
}

/// The whole state, shared by every connection.
pub(crate) struct State {
    pub(crate) settings: Settings,
    live: Mutex<Live>,
}

impl State {
    /// Checks the configuration and sets up the state, starting API key lifetimes now.
    ///
    /// # Errors
    /// `InvalidInput` when an Exchange app names an unknown user, or an operation cannot be
    /// routed.
    pub(crate) fn new(config: MockConfig) -> io::Result<Self> {
        let now = Instant::now();
        let users: HashMap<String, User> = config
            .users
            .into_iter()
            .map(|u| {
                let user = User {
                    password: u.password,
                    scopes: scope_set(&u.scopes),
                };
                (u.username, user)
            })
            .collect();
        let mut apps = HashMap::new();
        for app in config.exchange_apps {
            if !users.contains_key(&app.user) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "the Exchange app {:?} is approved by {:?}, who is not a configured user",
                        app.client_id, app.user
                    ),
                ));
            }
            apps.insert(app.client_id.clone(), app);
        }
        let settings = Settings {
            users,
            clients: config
                .oauth_clients
                .into_iter()
                .map(|c| {
                    let client = Client {
                        secret: c.client_secret,
                        scopes: scope_set(&c.scopes),
                    };
                    (c.client_id, client)
                })
                .collect(),
            apps,
            session_idle_timeout: config.session_idle_timeout,
            session_max_lifetime: config.session_max_lifetime,
            oauth_token_lifetime: config.oauth_token_lifetime,
            expires_in_as_string: config.expires_in_as_string,
            exchange_token_lifetime: config.exchange_token_lifetime,
            code_lifetime: config.code_lifetime,
            operations: Operations::build(config.all_operations, &config.operations)?,
        };
        let live = Live {
            api_keys: config
                .api_keys
                .into_iter()
                .map(|k| {
                    let key = ApiKey {
                        scopes: scope_set(&k.scopes),
                        expires_at: k.valid_for.map(|d| deadline(now, d)),
                        revoked: false,
                    };
                    (k.key, key)
                })
                .collect(),
            throttle: Throttle::new(config.throttle),
            ..Live::default()
        };
        Ok(Self {
            settings,
            live: Mutex::new(live),
        })
    }

    /// The changing state. A panic elsewhere while it was held does not make it unusable.
    pub(crate) fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The scopes of a user whose password matches.
    pub(crate) fn check_user(&self, username: &str, password: &str) -> Option<ScopeSet> {
        self.settings
            .users
            .get(username)
            .filter(|user| user.password == password)
            .map(|user| user.scopes.clone())
    }

    /// The scopes of the app's user (checked to exist at start).
    pub(crate) fn app_scopes(&self, app: &ExchangeApp) -> ScopeSet {
        self.settings
            .users
            .get(&app.user)
            .map(|user| user.scopes.clone())
            .unwrap_or_default()
    }

    /// Starts a session for a user whose credentials were checked, or returns the user's live
    /// session (extended): Infobip hands out a new token only once the old one is destroyed or
    /// has expired.
    pub(crate) fn create_session(&self, username: &str) -> String {
        let now = Instant::now();
        let idle = self.settings.session_idle_timeout;
        let mut live = self.live();
        live.sessions.retain(|_, s| s.expires_at > now);
        if let Some((token, session)) = live
            .sessions
            .iter_mut()
            .find(|(_, s)| s.username == username)
        {
            session.extend(now, idle);
            return token.clone();
        }
        live.sessions_created += 1;
        let number = live.sessions_created;
        let token = uuid_like();
        let mut session = Session {
            username: username.to_owned(),
            number,
            expires_at: now,
            ends_at: self
                .settings
                .session_max_lifetime
                .map(|lifetime| deadline(now, lifetime)),
        };
        session.extend(now, idle);
        live.sessions.insert(token.clone(), session);
        live.session_event(SessionEvent::Created { session: number });
        token
    }

    /// Ends a live session or Exchange token; `false` when there is none.
    pub(crate) fn destroy_session(&self, token: &str) -> bool {
        let now = Instant::now();
        let mut live = self.live();
        match live.sessions.remove(token) {
            Some(session) if session.expires_at > now => {
                live.session_event(SessionEvent::Destroyed {
                    session: session.number,
                });
                true
            }
            Some(_) => false,
            None => live
                .exchange_tokens
                .remove(token)
                .is_some_and(|t| t.expires_at > now),
        }
    }

    /// The scopes of a valid credential of `scheme`, extending a session it uses.
    fn authenticate(&self, scheme: Scheme, credentials: &str) -> Option<ScopeSet> {
        let now = Instant::now();
        match scheme {
            Scheme::App => {
                let live = self.live();
                let key = live.api_keys.get(credentials)?;
                let valid = !key.revoked && key.expires_at.is_none_or(|at| at > now);
                valid.then(|| key.scopes.clone())
            }
            Scheme::Basic => {
                use base64::Engine as _;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(credentials)
                    .ok()?;
                let decoded = String::from_utf8(decoded).ok()?;
                let (username, password) = decoded.split_once(':')?;
                self.check_user(username, password)
            }
            Scheme::Ibsso => {
                let idle = self.settings.session_idle_timeout;
                let mut live = self.live();
                if let Some(session) = live.sessions.get_mut(credentials) {
                    if session.expires_at <= now {
                        return None;
                    }
                    session.extend(now, idle);
                    let username = session.username.clone();
                    return self.settings.users.get(&username).map(|u| u.scopes.clone());
                }
                let token = live.exchange_tokens.get(credentials)?;
                (token.expires_at > now).then(|| token.scopes.clone())
            }
            Scheme::Bearer => {
                let live = self.live();
                let token = live.oauth_tokens.get(credentials)?;
                (token.expires_at > now).then(|| token.scopes.clone())
            }
        }
    }

    /// Whether a credential may call an operation that accepts `schemes` (any scheme when
    /// empty) and is granted by any one of `scopes` (by any valid credential when empty).
    pub(crate) fn access(
        &self,
        credential: Option<(Scheme, &str)>,
        schemes: &BTreeSet<Scheme>,
        scopes: &BTreeSet<String>,
    ) -> Access {
        let Some((scheme, credentials)) = credential else {
            return Access::Unauthorized;
        };
        if !schemes.is_empty() && !schemes.contains(&scheme) {
            return Access::Unauthorized;
        }
        match self.authenticate(scheme, credentials) {
            None => Access::Unauthorized,
            Some(held) if scopes.is_empty() || scopes.iter().any(|s| held.contains(s)) => {
                Access::Granted
            }
            Some(_) => Access::Forbidden,
        }
    }

    /// Counts a token-endpoint request and takes the fault and latency it gets; `None` when the
    /// request is over the configured rate, to be refused at once with neither. The returned
    /// guard counts the request as in flight until it is dropped.
    pub(crate) fn token_request(
        self: &Arc<Self>,
        endpoint: TokenEndpoint,
    ) -> Option<(InFlight, Option<Fault>, Duration)> {
        let mut live = self.live();
        let counters = &mut live.counters;
        let throttled = match endpoint {
            TokenEndpoint::Session => {
                counters.session_creates += 1;
                Some(Throttled::CreateSession)
            }
            TokenEndpoint::OAuth => {
                counters.oauth_token_requests += 1;
                Some(Throttled::OAuthToken)
            }
            TokenEndpoint::Exchange => {
                counters.exchange_token_requests += 1;
                None
            }
        };
        if throttled.is_some_and(|endpoint| !live.admit(endpoint)) {
            return None;
        }
        live.in_flight += 1;
        live.counters.max_token_requests_in_flight = live
            .counters
            .max_token_requests_in_flight
            .max(live.in_flight);
        let fault = live.faults.pop_front();
        Some((InFlight(Arc::clone(self)), fault, live.latency))
    }

    /// Counts a session `DELETE` and takes the fault and latency it gets; `None` when it is over
    /// the configured rate, to be refused at once with neither.
    pub(crate) fn session_delete(&self) -> Option<(Option<Fault>, Duration)> {
        let mut live = self.live();
        live.counters.session_deletes += 1;
        if !live.admit(Throttled::DestroySession) {
            return None;
        }
        let fault = live.delete_faults.pop_front();
        Some((fault, live.delete_latency))
    }

    /// Takes the fault and latency the next resource request gets.
    pub(crate) fn operation_request(&self) -> (Option<Fault>, Duration) {
        let mut live = self.live();
        let fault = live.operation_faults.pop_front();
        (fault, live.operation_latency)
    }

    /// Records a resource request with the status it was answered, or `None` when its
    /// connection was closed without an answer: counted, but not in the log of answers.
    pub(crate) fn record_resource(
        &self,
        method: Method,
        path: &str,
        scheme: &str,
        status: Option<StatusCode>,
    ) {
        let mut live = self.live();
        let counters = &mut live.counters;
        *counters
            .resource_requests_by_scheme
            .entry(scheme.to_owned())
            .or_default() += 1;
        let Some(status) = status else {
            return;
        };
        if status == StatusCode::UNAUTHORIZED {
            counters.unauthorized += 1;
        } else if status == StatusCode::FORBIDDEN {
            counters.forbidden += 1;
        }
        let request = ReceivedRequest {
            method,
            path: path.to_owned(),
            scheme: scheme.to_owned(),
            status,
        };
        push_kept(&mut live.received, request, RECEIVED_KEPT);
    }

    pub(crate) fn counters(&self) -> Counters {
        let live = self.live();
        Counters {
            session_events: live.session_events.iter().copied().collect(),
            ..live.counters.clone()
        }
    }

    pub(crate) fn received(&self) -> Vec<ReceivedRequest> {
        self.live().received.iter().cloned().collect()
    }

    pub(crate) fn inject(&self, fault: Fault) {
        self.live().faults.push_back(fault);
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        self.live().latency = latency;
    }

    pub(crate) fn inject_delete(&self, fault: Fault) {
        self.live().delete_faults.push_back(fault);
    }

    pub(crate) fn set_delete_latency(&self, latency: Duration) {
        self.live().delete_latency = latency;
    }

    pub(crate) fn inject_operation(&self, fault: Fault) {
        self.live().operation_faults.push_back(fault);
    }

    pub(crate) fn set_operation_latency(&self, latency: Duration) {
        self.live().operation_latency = latency;
    }

    pub(crate) fn revoke_api_key(&self, key: &str) {
        if let Some(key) = self.live().api_keys.get_mut(key) {
            key.revoked = true;
        }
    }

    pub(crate) fn revoke_token(&self, token: &str) {
        let mut live = self.live();
        live.sessions.remove(token);
        live.oauth_tokens.remove(token);
        live.exchange_tokens.remove(token);
    }

    pub(crate) fn revoke_all_tokens(&self) {
        let mut live = self.live();
        live.sessions.clear();
        live.oauth_tokens.clear();
        live.exchange_tokens.clear();
    }

    pub(crate) fn expire_all(&self) {
        let now = Instant::now();
        let mut live = self.live();
        for session in live.sessions.values_mut() {
            session.expires_at = now;
        }
        for token in live.oauth_tokens.values_mut() {
            token.expires_at = now;
        }
        for token in live.exchange_tokens.values_mut() {
            token.expires_at = now;
        }
        for code in live.codes.values_mut() {
            code.expires_at = now;
        }
    }
}

/// Counts a token-endpoint request as in flight while it lives.
pub(crate) struct InFlight(Arc<State>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut live = self.0.live();
        live.in_flight = live.in_flight.saturating_sub(1);
    }
}

/// When something that lives `lifetime` from `now` dies. A lifetime too long to represent
/// (`Duration::MAX` meaning "never") becomes a hundred years.
pub(crate) fn deadline(now: Instant, lifetime: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    now.checked_add(lifetime)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

/// A duration in whole seconds, rounded up.
pub(crate) fn whole_seconds(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// A random token shaped like a version-4 UUID, as Infobip's session tokens are.
pub(crate) fn uuid_like() -> String {
    let hex = random_hex(16);
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(expires_at: Instant) -> Code {
        Code {
            client_id: String::new(),
            redirect_uri: String::new(),
            challenge: None,
            expires_at,
            used: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_map_forgets_what_expired_long_ago_before_it_grows() {
        let expires_at = |code: &Code| code.expires_at;
        let now = Instant::now();
        let mut codes = HashMap::new();
        insert_live(
            &mut codes,
            "live".to_owned(),
            code(now + EXPIRED_KEPT * 2),
            expires_at,
        );
        while codes.len() < codes.capacity() {
            let key = format!("expired {}", codes.len());
            insert_live(&mut codes, key, code(now), expires_at);
        }
        let capacity = codes.capacity();
        tokio::time::advance(EXPIRED_KEPT / 2).await;
        insert_live(
            &mut codes,
            "new".to_owned(),
            code(now + EXPIRED_KEPT * 2),
            expires_at,
        );
        assert_eq!(
            codes.len(),
            capacity + 1,
            "recently expired: still refused as expired"
        );
        while codes.len() < codes.capacity() {
            let key = format!("filler {}", codes.len());
            insert_live(&mut codes, key, code(now), expires_at);
        }
        tokio::time::advance(EXPIRED_KEPT).await;
        insert_live(
            &mut codes,
            "last".to_owned(),
            code(now + EXPIRED_KEPT * 2),
            expires_at,
        );
        let mut kept: Vec<_> = codes.keys().map(String::as_str).collect();
        kept.sort_unstable();
        assert_eq!(
            kept,
            ["last", "live", "new"],
            "only what can still be used is kept"
        );
    }

    #[test]
    fn session_events_keep_the_most_recent_and_count_the_dropped() -> io::Result<()> {
        let state = State::new(MockConfig::demo())?;
        let sessions = u64::try_from(SESSION_EVENTS_KEPT / 2 + 1).unwrap_or(u64::MAX);
        for _ in 0..sessions {
            let token = state.create_session(crate::mock::DEMO_USERNAME);
            assert!(state.destroy_session(&token));
        }
        let counters = state.counters();
        assert_eq!(counters.session_events.len(), SESSION_EVENTS_KEPT);
        assert_eq!(counters.session_events_dropped, 2);
        assert_eq!(
            counters.session_events.first(),
            Some(&SessionEvent::Created { session: 2 })
        );
        assert_eq!(
            counters.session_events.last(),
            Some(&SessionEvent::Destroyed { session: sessions })
        );
        Ok(())
    }

    #[test]
    fn the_log_of_received_requests_keeps_the_most_recent() -> io::Result<()> {
        let state = State::new(MockConfig::demo())?;
        for n in 0..=RECEIVED_KEPT {
            state.record_resource(Method::GET, &n.to_string(), "App", Some(StatusCode::OK));
        }
        let received = state.received();
        assert_eq!(received.len(), RECEIVED_KEPT);
        assert_eq!(received.first().map(|r| r.path.as_str()), Some("1"));
        let last = RECEIVED_KEPT.to_string();
        assert_eq!(
            received.last().map(|r| r.path.as_str()),
            Some(last.as_str())
        );
        Ok(())
    }
}
