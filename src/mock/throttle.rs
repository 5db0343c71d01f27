//! The request rate Infobip allows its authentication endpoints, and the sliding windows that
//! hold the server to it.
//!
//! Infobip's OpenAPI specification gives `POST /auth/1/session`, `DELETE /auth/1/session` and
//! `POST /auth/1/oauth2/token` each an `x-throttling-info` of 10 requests per second, and
//! documents `429` with `TOO_MANY_REQUESTS` for them, with no `Retry-After` or other header.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// At most `requests` requests in any span of `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rate {
    pub(crate) requests: u32,
    pub(crate) per: Duration,
}

impl Rate {
    /// Infobip's documented rate for the three endpoints: 10 requests per second.
    pub(crate) const DOCUMENTED: Rate = Rate {
        requests: 10,
        per: Duration::from_secs(1),
    };
}

/// An endpoint Infobip documents a rate for; each has its own window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Throttled {
    /// `POST /auth/1/session`.
    CreateSession,
    /// `DELETE /auth/1/session`.
    DestroySession,
    /// `POST /auth/1/oauth2/token`.
    OAuthToken,
}

/// The requests each throttled endpoint admitted within the last span of the rate, oldest
/// first: at most `rate.requests` instants per endpoint.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    rate: Option<Rate>,
    admitted: [VecDeque<Instant>; 3],
}

impl Throttle {
    /// Windows for `rate`; `None` admits everything.
    pub(crate) fn new(rate: Option<Rate>) -> Self {
        Self {
            rate,
            admitted: Default::default(),
        }
    }

    /// Whether a request to `endpoint` arriving at `now` is within the rate. An admitted
    /// request counts against the rate; a refused one does not.
    pub(crate) fn admit(&mut self, endpoint: Throttled, now: Instant) -> bool {
        let Some(rate) = self.rate else {
            return true;
        };
        let admitted = &mut self.admitted[endpoint as usize];
        while admitted
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= rate.per)
        {
            admitted.pop_front();
        }
        let limit = usize::try_from(rate.requests).unwrap_or(usize::MAX);
        if admitted.len() >= limit {
            return false;
        }
        admitted.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sliding_window_per_endpoint() {
        let mut throttle = Throttle::new(Some(Rate::DOCUMENTED));
        let start = Instant::now();
        for _ in 0..10 {
            assert!(throttle.admit(Throttled::CreateSession, start));
        }
        assert!(!throttle.admit(Throttled::CreateSession, start));
        assert!(
            throttle.admit(Throttled::OAuthToken, start),
            "each endpoint has its own window"
        );
        let almost = start + Duration::from_millis(999);
        assert!(!throttle.admit(Throttled::CreateSession, almost));
        let second = start + Duration::from_secs(1);
        assert!(throttle.admit(Throttled::CreateSession, second));
    }

    #[test]
    fn refused_requests_do_not_count_and_none_admits_all() {
        let mut throttle = Throttle::new(Some(Rate {
            requests: 1,
            per: Duration::from_secs(1),
        }));
        let start = Instant::now();
        assert!(throttle.admit(Throttled::DestroySession, start));
        for ms in [100, 500, 900] {
            let at = start + Duration::from_millis(ms);
            assert!(!throttle.admit(Throttled::DestroySession, at));
        }
        assert!(throttle.admit(Throttled::DestroySession, start + Duration::from_secs(1)));

        let mut open = Throttle::new(None);
        assert!((0..1000).all(|_| open.admit(Throttled::CreateSession, start)));
    }
}
