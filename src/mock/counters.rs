//! What the server saw, for assertions: [`Counters`], [`SessionEvent`], [`ReceivedRequest`].

use std::collections::BTreeMap;

use http::{Method, StatusCode};

/// A snapshot of what the server has counted since it started, from
/// [`MockServer::counters`](super::MockServer::counters).
///
/// Token-endpoint requests are counted whether they succeeded or not, faults included.
/// Resource requests are every request that is not to a session, OAuth or Exchange endpoint.
///
/// ```
/// use infobip_auth::mock::Counters;
/// let counters = Counters::default();
/// assert_eq!(counters.token_requests(), 0);
/// assert_eq!(counters.resource_requests("App"), 0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// `POST /auth/1/session` requests.
    pub session_creates: u64,
    /// `DELETE /auth/1/session` requests.
    pub session_deletes: u64,
    /// `POST /auth/1/oauth2/token` requests.
    pub oauth_token_requests: u64,
    /// `POST /exchange/1/oauth/token` requests (both grant types).
    pub exchange_token_requests: u64,
    /// The most token-endpoint requests (the three counted above) that were being answered at
    /// the same time: more than one means a client did not share its refresh.
    pub max_token_requests_in_flight: u64,
    /// Resource requests by the scheme of their `Authorization` header: `App`, `Basic`,
    /// `IBSSO`, `Bearer`, or `none` when the header is absent, unreadable or sent more than once.
    /// Requests that a fault injected with
    /// [`MockServer::inject_operation`](super::MockServer::inject_operation) answered are
    /// counted too, a dropped connection included.
    pub resource_requests_by_scheme: BTreeMap<String, u64>,
    /// Resource requests answered `401`.
    pub unauthorized: u64,
    /// Resource requests answered `403`.
    pub forbidden: u64,
    /// Requests to the session and OAuth endpoints answered `429` because they came faster
    /// than [`MockConfig::throttle`](super::MockConfig::throttle) allows (also counted above).
    pub throttled: u64,
    /// Sessions created and destroyed, in order: the most recent 10,000, so a server that
    /// runs for days does not grow without end.
    pub session_events: Vec<SessionEvent>,
    /// The older session events no longer in [`session_events`](Self::session_events).
    pub session_events_dropped: u64,
}

impl Counters {
    /// All token-endpoint requests: session creates, OAuth and Exchange token requests.
    ///
    /// ```
    /// use infobip_auth::mock::Counters;
    /// let counters = Counters { session_creates: 1, oauth_token_requests: 2, ..Counters::default() };
    /// assert_eq!(counters.token_requests(), 3);
    /// ```
    #[must_use]
    pub fn token_requests(&self) -> u64 {
        self.session_creates + self.oauth_token_requests + self.exchange_token_requests
    }

    /// Resource requests that came with `scheme` (`App`, `Basic`, `IBSSO`, `Bearer`, `none`),
    /// zero when none did.
    ///
    /// ```
    /// use infobip_auth::mock::Counters;
    /// assert_eq!(Counters::default().resource_requests("Bearer"), 0);
    /// ```
    #[must_use]
    pub fn resource_requests(&self, scheme: &str) -> u64 {
        self.resource_requests_by_scheme
            .get(scheme)
            .copied()
            .unwrap_or(0)
    }
}

/// A session created by `POST /auth/1/session` or destroyed by `DELETE /auth/1/session`,
/// named by its number (the first session created is `1`), never by its token.
///
/// ```
/// use infobip_auth::mock::SessionEvent;
/// let events = [SessionEvent::Created { session: 1 }, SessionEvent::Destroyed { session: 1 }];
/// assert_ne!(events[0], events[1]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionEvent {
    /// A new session started.
    Created {
        /// The session's number, counting from 1 in creation order.
        session: u64,
    },
    /// A session was ended by its owner.
    Destroyed {
        /// The session's number, counting from 1 in creation order.
        session: u64,
    },
}

/// One resource request as the server answered it, from
/// [`MockServer::received`](super::MockServer::received). Holds the scheme of the credential,
/// never the credential.
///
/// ```
/// use http::{Method, StatusCode};
/// use infobip_auth::mock::ReceivedRequest;
/// let seen = ReceivedRequest {
///     method: Method::GET,
///     path: "/sms/1/inbox/reports".to_owned(),
///     scheme: "App".to_owned(),
///     status: StatusCode::OK,
/// };
/// assert!(seen.status.is_success());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedRequest {
    /// The request's method.
    pub method: Method,
    /// The request's path, without the query.
    pub path: String,
    /// `App`, `Basic`, `IBSSO`, `Bearer`, or `none`.
    pub scheme: String,
    /// The status the server answered.
    pub status: StatusCode,
}
