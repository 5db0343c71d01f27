//! The two halves of a redirect: [`PendingAuthorization`], kept by the app while the user is
//! at Infobip, and [`AuthorizationGrant`], what a checked callback yields.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::de::Deserializer;
use serde::ser::{SerializeStruct as _, Serializer};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::store::{from_unix_seconds, unix_seconds};
use crate::credential::REDACTED;
use crate::source::pkce;
use crate::{ConfigError, Error, ErrorKind};

/// What an app keeps between sending the user to Infobip and the callback: the `state` it sent,
/// for a public client the PKCE verifier whose challenge it sent, and when it expires.
///
/// Single use: [`AuthCodeFlow::callback`](super::AuthCodeFlow::callback) takes it by value,
/// whatever the outcome, so one authorization cannot be exchanged twice; a failed callback
/// means sending the user through the flow again. It expires
/// [`DEFAULT_PENDING_LIFETIME`] after it was made unless the flow says otherwise
/// ([`Builder::pending_lifetime`](super::Builder::pending_lifetime)); a callback for an
/// expired one is [`ErrorKind::AuthorizationExpired`]. [`is_expired`](Self::is_expired) tells
/// an app which ones to forget.
///
/// Keep it where only this user's callback finds it (a server-side session, an encrypted
/// cookie): it serializes with `serde`, verifier and expiry included. A serialized copy is a
/// second copy: delete it when the callback arrives. `Debug` prints neither the state nor the
/// verifier.
///
/// ```
/// use infobip_auth::source::PendingAuthorization;
/// let pending = PendingAuthorization::new("xyz", None)?;
/// assert_eq!(pending.state(), "xyz");
/// assert!(!pending.is_expired());
/// let json = serde_json::to_string(&pending)?;
/// let back: PendingAuthorization = serde_json::from_str(&json)?;
/// assert_eq!(back.state(), "xyz");
/// assert!(!format!("{pending:?}").contains("xyz"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// It cannot be copied, nor used for a second callback:
///
/// ```compile_fail,E0599
/// # use infobip_auth::source::PendingAuthorization;
/// let pending = PendingAuthorization::new("xyz", None)?;
/// let copy = pending.clone(); // no `Clone`
/// # Ok::<(), infobip_auth::ConfigError>(())
/// ```
///
/// ```compile_fail,E0382
/// # use infobip_auth::source::{AuthCodeFlow, PendingAuthorization};
/// # fn twice(flow: &AuthCodeFlow, pending: PendingAuthorization) {
/// let first = flow.callback(pending, "?code=822762fa24e04975&state=xyz");
/// let second = flow.callback(pending, "?code=822762fa24e04975&state=xyz"); // moved
/// # }
/// ```
pub struct PendingAuthorization {
    state: Zeroizing<String>,
    verifier: Option<Zeroizing<String>>,
    expires_at: SystemTime,
}

/// How long a [`PendingAuthorization`] waits for its callback by default: ten minutes, for the
/// user to log in to Infobip and review the scopes. The code Infobip then sends back expires one
/// minute after it is created and can be exchanged once (Infobip's Exchange OAuth guide, "Set up
/// your redirect uri"), which is why the callback exchanges it at once.
///
/// ```
/// use infobip_auth::source::auth_code::DEFAULT_PENDING_LIFETIME;
/// assert_eq!(DEFAULT_PENDING_LIFETIME.as_secs(), 600);
/// ```
pub const DEFAULT_PENDING_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// The longest `state` accepted, in bytes; Infobip's own are a few dozen characters.
const MAX_STATE_LEN: usize = 512;

impl PendingAuthorization {
    /// Rebuilds a pending authorization from its parts, for apps that keep them separately;
    /// it expires [`DEFAULT_PENDING_LIFETIME`] from now (set the kept expiry with
    /// [`with_expiry`](Self::with_expiry)).
    /// [`AuthCodeFlow::authorize_url`](super::AuthCodeFlow::authorize_url) makes new ones.
    ///
    /// # Errors
    /// [`ConfigError::Empty`] for an empty state; [`ConfigError::Invalid`] for a state longer
    /// than 512 bytes or holding control characters, or a verifier outside RFC 7636's 43–128
    /// characters of `A–Z a–z 0–9 - . _ ~`.
    ///
    /// ```
    /// use infobip_auth::source::PendingAuthorization;
    /// let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    /// let pending = PendingAuthorization::new("xyz", Some(verifier))?;
    /// assert_eq!(pending.expose_verifier(), Some(verifier));
    /// assert!(PendingAuthorization::new("xyz", Some("too-short")).is_err());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    pub fn new(state: &str, verifier: Option<&str>) -> Result<Self, ConfigError> {
        check_state(state)?;
        if let Some(verifier) = verifier
            && !pkce::is_verifier(verifier)
        {
            return Err(ConfigError::Invalid {
                what: "PKCE code verifier",
                reason: "it must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636)",
            });
        }
        Ok(Self::from_parts(
            Zeroizing::new(state.to_owned()),
            verifier.map(|v| Zeroizing::new(v.to_owned())),
            DEFAULT_PENDING_LIFETIME,
        ))
    }

    /// A pending authorization that expires `lifetime` from now (never later than the clock can
    /// say: a lifetime past it is cut to the latest time it can).
    pub(crate) fn from_parts(
        state: Zeroizing<String>,
        verifier: Option<Zeroizing<String>>,
        lifetime: Duration,
    ) -> Self {
        let now = SystemTime::now();
        let expires_at = now
            .checked_add(lifetime)
            .or_else(|| now.checked_add(DEFAULT_PENDING_LIFETIME))
            .unwrap_or(now);
        Self {
            state,
            verifier,
            expires_at,
        }
    }

    /// The same authorization, expiring at `at`: for one rebuilt from parts kept elsewhere.
    ///
    /// ```
    /// use infobip_auth::source::PendingAuthorization;
    /// use std::time::{Duration, SystemTime};
    /// let made = SystemTime::now() - Duration::from_secs(3600);
    /// let pending = PendingAuthorization::new("xyz", None)?.with_expiry(made + Duration::from_secs(600));
    /// assert!(pending.is_expired());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn with_expiry(mut self, at: SystemTime) -> Self {
        self.expires_at = at;
        self
    }

    /// When the authorization stops accepting its callback.
    ///
    /// ```
    /// # use infobip_auth::source::PendingAuthorization;
    /// let pending = PendingAuthorization::new("xyz", None)?;
    /// assert!(pending.expires_at() > std::time::SystemTime::now());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// Whether the authorization has expired: its callback would be refused, so an app may
    /// forget it.
    ///
    /// ```
    /// # use infobip_auth::source::PendingAuthorization;
    /// let pending = PendingAuthorization::new("xyz", None)?;
    /// assert!(!pending.is_expired());
    /// assert!(pending.with_expiry(std::time::SystemTime::UNIX_EPOCH).is_expired());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn is_expired(&self) -> bool {
        self.expires_at <= SystemTime::now()
    }

    /// The `state` sent with the authorization request (and expected back in the callback).
    ///
    /// ```
    /// # use infobip_auth::source::PendingAuthorization;
    /// assert_eq!(PendingAuthorization::new("xyz", None)?.state(), "xyz");
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The PKCE code verifier, for public clients. A secret until the code is exchanged.
    ///
    /// ```
    /// # use infobip_auth::source::PendingAuthorization;
    /// assert_eq!(PendingAuthorization::new("xyz", None)?.expose_verifier(), None);
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn expose_verifier(&self) -> Option<&str> {
        self.verifier.as_deref().map(String::as_str)
    }

    /// Checks a callback against this authorization, before any network call: the `state` in
    /// constant time, the expiry, `error=…` from Infobip, and the code's form (16 hexadecimal
    /// characters). Uses the authorization up, whatever the outcome.
    pub(crate) fn check(self, callback: &str) -> Result<AuthorizationGrant, Error> {
        let params = CallbackParams::parse(callback)?;
        // First the state, for an error as for a code: a callback that cannot show it answers
        // this authorization request is nobody's answer (RFC 6749, sections 4.1.2 and 10.12).
        let Some(state) = &params.state else {
            return Err(invalid("the callback has no state"));
        };
        if !bool::from(state.as_bytes().ct_eq(self.state.as_bytes())) {
            return Err(invalid(
                "the state does not match the authorization request",
            ));
        }
        // Only once the state matched: this is the user's own callback, come too late.
        if self.is_expired() {
            return Err(Error::new(ErrorKind::AuthorizationExpired));
        }
        if let Some(error) = params.error {
            return Err(Error::new(ErrorKind::AuthorizationDenied {
                error: printable(&error),
                description: params.error_description.as_deref().map(printable),
            }));
        }
        let code = params
            .code
            .ok_or_else(|| invalid("the callback has neither a code nor an error"))?;
        if code.len() != 16 || !code.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("the code is not 16 hexadecimal characters"));
        }
        Ok(AuthorizationGrant {
            code,
            verifier: self.verifier,
        })
    }
}

fn check_state(state: &str) -> Result<(), ConfigError> {
    if state.is_empty() {
        return Err(ConfigError::Empty { what: "state" });
    }
    if state.len() > MAX_STATE_LEN || state.chars().any(char::is_control) {
        return Err(ConfigError::Invalid {
            what: "state",
            reason: "it must be at most 512 bytes without control characters",
        });
    }
    Ok(())
}

pub(crate) fn checked_state(state: &str) -> Result<Zeroizing<String>, ConfigError> {
    check_state(state)?;
    Ok(Zeroizing::new(state.to_owned()))
}

fn invalid(reason: &str) -> Error {
    Error::new(ErrorKind::InvalidCallback {
        reason: reason.to_owned(),
    })
}

/// The longest `error` or `error_description` kept, in characters.
const MAX_ERROR_LEN: usize = 200;

/// Infobip's words, bounded and without control characters, fit for an error message.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ERROR_LEN)
        .collect()
}

/// The query of a callback, each parameter at most once.
#[derive(Default)]
struct CallbackParams {
    code: Option<Zeroizing<String>>,
    state: Option<Zeroizing<String>>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The longest callback read, in bytes: a code, a state and an error description fit easily.
const MAX_CALLBACK_LEN: usize = 8 * 1024;

impl CallbackParams {
    /// Reads the query of `callback`: a whole URL, a path with a query, or the bare query.
    fn parse(callback: &str) -> Result<Self, Error> {
        if callback.len() > MAX_CALLBACK_LEN {
            return Err(invalid("the callback is longer than 8 KiB"));
        }
        let without_fragment = callback.split('#').next().unwrap_or_default();
        let query = match without_fragment.split_once('?') {
            Some((_, query)) => query,
            None if without_fragment.contains('=') => without_fragment,
            None => return Err(invalid("the callback has no query")),
        };
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| invalid("the callback's query cannot be read"))?;
        let mut params = Self::default();
        for (name, value) in pairs {
            let value = Zeroizing::new(value);
            let duplicate = match name.as_str() {
                "code" => params.code.replace(value).is_some(),
                "state" => params.state.replace(value).is_some(),
                "error" => params.error.replace(value.to_string()).is_some(),
                "error_description" => params
                    .error_description
                    .replace(value.to_string())
                    .is_some(),
                _ => false, // RFC 6749 §4.1.2: unknown parameters are ignored
            };
            if duplicate {
                return Err(Error::new(ErrorKind::InvalidCallback {
                    reason: format!("the parameter `{}` appears twice", printable(&name)),
                }));
            }
        }
        Ok(params)
    }
}

impl fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("state", &REDACTED)
            .field("verifier", &self.verifier.as_ref().map(|_| REDACTED))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Serialize for PendingAuthorization {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("PendingAuthorization", 3)?;
        out.serialize_field("state", self.state.as_str())?;
        out.serialize_field("verifier", &self.expose_verifier())?;
        out.serialize_field("expiresAt", &unix_seconds(self.expires_at))?;
        out.end()
    }
}

impl<'de> Deserialize<'de> for PendingAuthorization {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            state: String,
            #[serde(default)]
            verifier: Option<String>,
            /// Seconds since the Unix epoch; required, or a kept authorization would never
            /// expire.
            expires_at: u64,
        }
        let wire = Wire::deserialize(deserializer)?;
        let (state, verifier) = (
            Zeroizing::new(wire.state),
            wire.verifier.map(Zeroizing::new),
        );
        Ok(Self::new(&state, verifier.as_deref().map(String::as_str))
            .map_err(serde::de::Error::custom)?
            .with_expiry(from_unix_seconds(wire.expires_at)?))
    }
}

/// A checked callback: the authorization code (and the PKCE verifier, for a public client),
/// ready for [`AuthCodeFlow::exchange`](super::AuthCodeFlow::exchange). The code can be
/// exchanged once, within a minute of the redirect. `Debug` prints neither value.
///
/// ```
/// # use infobip_auth::source::{AuthCodeFlow, PendingAuthorization, Transport};
/// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
/// # }));
/// # let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
/// #     .client_secret("secret").redirect_uri("https://www.my-app.com").scope("api_read")
/// #     .transport(transport).build()?;
/// let pending = PendingAuthorization::new("xyz", None)?;
/// let grant = flow.callback(pending, "https://www.my-app.com/?code=822762fa24e04975&state=xyz")?;
/// // Safe to log: the code is a secret until it is exchanged.
/// assert!(!format!("{grant:?}").contains("822762fa24e04975"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AuthorizationGrant {
    code: Zeroizing<String>,
    verifier: Option<Zeroizing<String>>,
}

impl AuthorizationGrant {
    /// The authorization code: 16 hexadecimal characters. A secret until it is exchanged.
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, PendingAuthorization, Transport};
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// # let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    /// #     .client_secret("secret").redirect_uri("https://www.my-app.com").scope("api_read")
    /// #     .transport(transport).build()?;
    /// let pending = PendingAuthorization::new("xyz", None)?;
    /// let grant = flow.callback(pending, "https://www.my-app.com/?code=822762fa24e04975&state=xyz")?;
    /// assert_eq!(grant.expose_code(), "822762fa24e04975");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn expose_code(&self) -> &str {
        &self.code
    }

    pub(crate) fn verifier(&self) -> Option<&str> {
        self.verifier.as_deref().map(String::as_str)
    }
}

impl fmt::Debug for AuthorizationGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationGrant")
            .field("code", &REDACTED)
            .field("verifier", &self.verifier.as_ref().map(|_| REDACTED))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CODE: &str = "822762fa24e04975";

    fn pending() -> Result<PendingAuthorization, ConfigError> {
        PendingAuthorization::new("xyz", None)
    }

    fn reason(result: Result<AuthorizationGrant, Error>) -> String {
        match result.map_err(|e| e.kind().clone()) {
            Err(ErrorKind::InvalidCallback { reason }) => reason,
            other => format!("not an invalid callback: {other:?}"),
        }
    }

    #[test]
    fn reads_a_url_a_path_or_a_bare_query() -> Result<(), Error> {
        for callback in [
            format!("https://www.my-app.com/?code={CODE}&state=xyz"),
            format!("/callback?state=xyz&code={CODE}#fragment"),
            format!("code={CODE}&state=xyz&extra=ignored"),
            format!(
                "https://app.example/cb?tenant=1&code={}&state=xyz",
                CODE.to_uppercase()
            ),
        ] {
            let grant = pending()?.check(&callback)?;
            assert!(grant.expose_code().eq_ignore_ascii_case(CODE), "{callback}");
        }
        Ok(())
    }

    #[test]
    fn refuses_mismatches_with_typed_reasons() -> Result<(), ConfigError> {
        let cases = [
            (format!("?code={CODE}&state=xy"), "state does not match"),
            (format!("?code={CODE}&state=xyzz"), "state does not match"),
            (format!("?code={CODE}&state="), "state does not match"),
            (format!("?code={CODE}"), "no state"),
            ("?state=xyz".to_owned(), "neither a code nor an error"),
            (
                "?code=822762fa24e0497&state=xyz".to_owned(),
                "16 hexadecimal",
            ),
            (
                "?code=822762fa24e04975a&state=xyz".to_owned(),
                "16 hexadecimal",
            ),
            (
                "?code=822762fa24e0497g&state=xyz".to_owned(),
                "16 hexadecimal",
            ),
            (
                format!("?code={CODE}&code={CODE}&state=xyz"),
                "`code` appears twice",
            ),
            (
                format!("?code={CODE}&state=xyz&state=xyz"),
                "`state` appears twice",
            ),
            ("https://www.my-app.com/".to_owned(), "no query"),
            (
                format!("?code={CODE}&state=xyz&{}", "a".repeat(9000)),
                "8 KiB",
            ),
        ];
        for (callback, expected) in cases {
            let got = reason(pending()?.check(&callback));
            assert!(got.contains(expected), "{callback:.60}: {got}");
        }
        Ok(())
    }

    #[test]
    fn an_error_from_infobip_is_authorization_denied() -> Result<(), ConfigError> {
        let err = pending()?
            .check("?error=access_denied&error_description=The+user+cancelled&state=xyz")
            .err()
            .map(|e| e.kind().clone());
        assert_eq!(
            err,
            Some(ErrorKind::AuthorizationDenied {
                error: "access_denied".into(),
                description: Some("The user cancelled".into()),
            })
        );
        // One without this flow's state may be forged: it is no answer to report.
        for unproven in ["?error=access_denied", "?error=access_denied&state=other"] {
            let err = pending()?.check(unproven).err();
            assert!(
                matches!(
                    err.as_ref().map(Error::kind),
                    Some(ErrorKind::InvalidCallback { .. })
                ),
                "{unproven}: {err:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn error_text_is_bounded_and_printable() -> Result<(), ConfigError> {
        let long = format!(
            "?error=x%0D%0AInjected:+1&error_description={}&state=xyz",
            "d".repeat(500)
        );
        let err = pending()?.check(&long).err();
        let Some(ErrorKind::AuthorizationDenied { error, description }) =
            err.as_ref().map(Error::kind)
        else {
            panic!("{err:?}");
        };
        assert_eq!(error, "x  Injected: 1");
        assert_eq!(description.as_ref().map(String::len), Some(MAX_ERROR_LEN));
        Ok(())
    }

    #[test]
    fn errors_never_quote_the_code() -> Result<(), ConfigError> {
        for callback in [
            "?code=deadbeefdeadbeefff&state=xyz",
            "?code=deadbeefdeadbeef&state=no",
        ] {
            let err = pending()?
                .check(callback)
                .err()
                .map(|e| format!("{e} {e:?}"));
            let err = err.unwrap_or_default();
            assert!(!err.is_empty() && !err.contains("deadbeef"), "{err}");
        }
        Ok(())
    }

    #[test]
    fn debug_redacts_state_verifier_and_code() -> Result<(), Error> {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let pending = PendingAuthorization::new("s3cret-state", Some(verifier))?;
        let pending_debug = format!("{pending:?}");
        let grant = pending.check(&format!("?code={CODE}&state=s3cret-state"))?;
        let debug = format!("{pending_debug} {grant:?}");
        for secret in ["s3cret-state", verifier, CODE] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert_eq!(grant.verifier(), Some(verifier));
        Ok(())
    }

    #[test]
    fn serde_round_trip_checks_what_it_reads() -> Result<(), Box<dyn std::error::Error>> {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let pending = PendingAuthorization::new("xyz", Some(verifier))?;
        let json = serde_json::to_string(&pending)?;
        let back: PendingAuthorization = serde_json::from_str(&json)?;
        assert_eq!(
            (back.state(), back.expose_verifier()),
            ("xyz", Some(verifier))
        );
        // The expiry travels too, rounded down to the second.
        let lost = pending.expires_at().duration_since(back.expires_at())?;
        assert!(lost < Duration::from_secs(1), "{lost:?}");
        let bad = serde_json::from_str::<PendingAuthorization>(
            r#"{"state":"xyz","verifier":"short","expiresAt":4102444800}"#,
        );
        assert!(bad.is_err());
        assert!(
            serde_json::from_str::<PendingAuthorization>(r#"{"state":"","expiresAt":4102444800}"#)
                .is_err()
        );
        // Without an expiry, a kept authorization would never expire.
        assert!(serde_json::from_str::<PendingAuthorization>(r#"{"state":"xyz"}"#).is_err());
        let old: PendingAuthorization =
            serde_json::from_str(r#"{"state":"xyz","expiresAt":1700000000}"#)?;
        assert!(old.is_expired());
        Ok(())
    }

    #[test]
    fn an_expired_authorization_refuses_its_callback() -> Result<(), ConfigError> {
        let past = SystemTime::now() - Duration::from_secs(1);
        let late = pending()?.with_expiry(past);
        let err = late.check(&format!("?code={CODE}&state=xyz")).err();
        assert_eq!(
            err.as_ref().map(Error::kind),
            Some(&ErrorKind::AuthorizationExpired)
        );
        // A forged callback learns nothing about the authorization: its state is checked first.
        let forged = pending()?
            .with_expiry(past)
            .check(&format!("?code={CODE}&state=abc"));
        assert!(reason(forged).contains("state does not match"));
        // A fresh one lives ten minutes.
        let left = pending()?
            .expires_at()
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        assert!(
            left > Duration::from_secs(599) && left <= DEFAULT_PENDING_LIFETIME,
            "{left:?}"
        );
        Ok(())
    }

    /// A query value: anything, percent-encoded or not.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,20}",
            "[0-9a-fA-F]{14,18}",
            Just(CODE.to_owned()),
            Just("xyz".to_owned()),
            "(%[0-9a-fA-F]{0,2}|[+&=#?]){0,6}",
        ]
    }

    fn callback() -> impl Strategy<Value = String> {
        let pair = (
            prop_oneof![
                Just("code"),
                Just("state"),
                Just("error"),
                Just("error_description"),
                Just("other"),
            ],
            value(),
        );
        prop_oneof![
            ".{0,60}",
            (
                prop_oneof![
                    Just(""),
                    Just("https://www.my-app.com/callback?"),
                    Just("/cb?"),
                    Just("?")
                ],
                proptest::collection::vec(pair, 0..5),
                proptest::option::of(".{0,10}"),
            )
                .prop_map(|(start, pairs, fragment)| {
                    let query: Vec<String> = pairs
                        .iter()
                        .map(|(name, value)| format!("{name}={value}"))
                        .collect();
                    let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
                    format!("{start}{}{fragment}", query.join("&"))
                }),
            "[ -~]{8000,8300}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_callback_is_a_grant_or_a_typed_refusal(callback in callback(), expired in any::<bool>()) {
            let mut pending = PendingAuthorization::new("xyz", None)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            if expired {
                pending = pending.with_expiry(SystemTime::UNIX_EPOCH);
            }
            match pending.check(&callback) {
                Ok(grant) => {
                    prop_assert!(grant.expose_code().len() == 16);
                    prop_assert!(!format!("{grant:?}").contains(grant.expose_code()), "{:?}", grant);
                    prop_assert!(!expired);
                }
                Err(err) => {
                    prop_assert!(
                        matches!(
                            err.kind(),
                            ErrorKind::InvalidCallback { .. }
                                | ErrorKind::AuthorizationExpired
                                | ErrorKind::AuthorizationDenied { .. }
                        ),
                        "{:?}",
                        err
                    );
                    let shown = format!("{err} {err:?}");
                    // Infobip's own words may say anything; the code is never repeated.
                    let denied = matches!(err.kind(), ErrorKind::AuthorizationDenied { .. });
                    prop_assert!(denied || !shown.contains(CODE), "{}", shown);
                    prop_assert!(!shown.chars().any(|c| c.is_control()), "{}", shown);
                }
            }
        }

        #[test]
        fn a_pending_authorization_is_built_or_refused_without_its_secrets(
            state in prop_oneof![".{0,20}", "[!-~]{8,20}", "[a-z]{500,520}"],
            verifier in proptest::option::of(prop_oneof![".{0,20}", "[A-Za-z0-9._~-]{40,130}"]),
        ) {
            match PendingAuthorization::new(&state, verifier.as_deref()) {
                Ok(pending) => {
                    prop_assert_eq!(pending.state(), state.as_str());
                    prop_assert_eq!(pending.expose_verifier(), verifier.as_deref());
                    let shown = format!("{pending:?}");
                    prop_assert!(state.len() < 8 || !shown.contains(&state), "{}", shown);
                }
                Err(err) => {
                    let shown = format!("{err} {err:?}");
                    prop_assert!(state.len() < 8 || !shown.contains(&state), "{}", shown);
                    if let Some(verifier) = &verifier {
                        prop_assert!(verifier.len() < 8 || !shown.contains(verifier.as_str()));
                    }
                }
            }
        }

        #[test]
        fn a_kept_pending_authorization_reads_back_or_is_refused(
            state in prop_oneof![Just(serde_json::json!("xyz")), ".{0,10}".prop_map(serde_json::Value::from)],
            expires_at in prop_oneof![
                any::<u64>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(serde_json::Value::from),
                "[0-9]{0,40}".prop_map(serde_json::Value::from),
                Just(serde_json::Value::Null),
            ],
        ) {
            let json = serde_json::json!({ "state": state, "expiresAt": expires_at }).to_string();
            let read = serde_json::from_str::<PendingAuthorization>(&json);
            if let Ok(pending) = read {
                prop_assert!(expires_at.is_u64());
                let _ = pending.is_expired();
            }
        }
    }
}
