//! [`Credential`]: what a token source produces and the layer sends.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::cache::CachePadded;
use crate::error::ConfigError;
use crate::scope::Scopes;

/// What `Debug` prints in place of a secret, everywhere in the crate.
pub(crate) const REDACTED: &str = "[redacted]";

/// A ready-to-send `Authorization` value with what is known about it: when it expires, how long
/// it may stay idle, the scopes it holds and the account it belongs to.
///
/// The header is built once, marked sensitive (so HTTP/2 never indexes it) and zeroized when
/// the last copy is dropped. Cloning is a reference-count increment.
///
/// Expiry uses [`tokio::time::Instant`]: it is local to this process and follows tokio's paused
/// clock in tests.
///
/// ```
/// use infobip_auth::Credential;
/// use std::time::Duration;
/// let credential = Credential::new("Bearer", "eyJraWQ")?.expires_in(Duration::from_secs(3600));
/// assert_eq!(credential.scheme(), "Bearer");
/// assert!(credential.header().is_sensitive());
/// assert!(!format!("{credential:?}").contains("eyJraWQ"));
/// # Ok::<(), infobip_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Credential(Arc<Inner>);

#[derive(Clone)]
struct Inner {
    header: HeaderValue,
    scheme_len: usize,
    issued_at: Instant,
    expires_at: Option<Instant>,
    idle_timeout: Option<Duration>,
    scopes: Option<Scopes>,
    account: Option<Account>,
}

impl Credential {
    /// A credential sent as `Authorization: {scheme} {token}`.
    ///
    /// # Errors
    /// [`ConfigError::InvalidHeaderValue`] when the scheme or token is empty or holds anything
    /// but visible ASCII (a space, CR, LF, NUL or a non-ASCII byte).
    ///
    /// ```
    /// # use infobip_auth::Credential;
    /// let credential = Credential::new("IBSSO", "2f9b4d31-2d0d-49a8-85f0-9b862bdca394")?;
    /// assert_eq!(credential.header(), "IBSSO 2f9b4d31-2d0d-49a8-85f0-9b862bdca394");
    /// assert!(Credential::new("IBSSO", "abc\r\nX-Evil: 1").is_err());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    pub fn new(scheme: &str, token: &str) -> Result<Self, ConfigError> {
        let visible = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if !visible(scheme) {
            return Err(ConfigError::InvalidHeaderValue {
                what: "authorization scheme",
            });
        }
        if !visible(token) {
            return Err(ConfigError::InvalidHeaderValue { what: "token" });
        }
        let mut value = Zeroizing::new(Vec::with_capacity(scheme.len() + 1 + token.len()));
        value.extend_from_slice(scheme.as_bytes());
        value.push(b' ');
        value.extend_from_slice(token.as_bytes());
        let header =
            sensitive_header(&value).ok_or(ConfigError::InvalidHeaderValue { what: "token" })?;
        Ok(Self(Arc::new(Inner {
            header,
            scheme_len: scheme.len(),
            issued_at: Instant::now(),
            expires_at: None,
            idle_timeout: None,
            scopes: None,
            account: None,
        })))
    }

    /// Sets the expiry `lifetime` after the credential was made.
    ///
    /// ```
    /// # use infobip_auth::Credential;
    /// # use std::time::Duration;
    /// let credential = Credential::new("Bearer", "t")?.expires_in(Duration::from_secs(60));
    /// assert_eq!(credential.lifetime(), Some(Duration::from_secs(60)));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn expires_in(self, lifetime: Duration) -> Self {
        let at = self.0.issued_at.checked_add(lifetime);
        self.update(|inner| inner.expires_at = at)
    }

    /// Sets the instant the credential stops working.
    ///
    /// ```
    /// # use infobip_auth::Credential;
    /// # use std::time::Duration;
    /// let at = tokio::time::Instant::now() + Duration::from_secs(30);
    /// assert_eq!(Credential::new("Bearer", "t")?.expires_at(at).expiry(), Some(at));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn expires_at(self, at: Instant) -> Self {
        self.update(|inner| inner.expires_at = Some(at))
    }

    /// Declares that the credential dies after `timeout` without use, and lives on while used
    /// (an IBSSO session). The cache then replaces it before sending after a longer idle gap.
    ///
    /// ```
    /// # use infobip_auth::Credential;
    /// # use std::time::Duration;
    /// let session = Credential::new("IBSSO", "t")?.idle_timeout(Duration::from_secs(3600));
    /// assert_eq!(session.idle_limit(), Some(Duration::from_secs(3600)));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn idle_timeout(self, timeout: Duration) -> Self {
        self.update(|inner| inner.idle_timeout = Some(timeout))
    }

    /// Records the scopes the credential holds, so a scope check can explain or prevent a `403`.
    ///
    /// ```
    /// # use infobip_auth::Credential;
    /// let key = Credential::new("App", "k")?.with_scopes("sms:manage".parse()?);
    /// assert_eq!(key.scopes().map(|s| s.len()), Some(1));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn with_scopes(self, scopes: Scopes) -> Self {
        self.update(|inner| inner.scopes = Some(scopes))
    }

    /// Records the Infobip account and user the credential acts for.
    ///
    /// ```
    /// # use infobip_auth::{Account, Credential};
    /// let account: Account = serde_json::from_str(r#"{"username":"developeruser"}"#)?;
    /// let token = Credential::new("IBSSO", "t")?.with_account(account);
    /// assert_eq!(token.account().map(|a| a.username.as_str()), Some("developeruser"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_account(self, account: Account) -> Self {
        self.update(|inner| inner.account = Some(account))
    }

    fn update(mut self, change: impl FnOnce(&mut Inner)) -> Self {
        change(Arc::make_mut(&mut self.0));
        self
    }

    /// The `Authorization` header value, marked sensitive.
    ///
    /// ```
    /// # use infobip_auth::Credential;
    /// assert_eq!(Credential::new("App", "k")?.header(), "App k");
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn header(&self) -> &HeaderValue {
        &self.0.header
    }

    /// Whether a request carried this credential: its `Authorization` was `sent`. Compared in
    /// constant time, as a secret should be.
    pub(crate) fn was_sent_as(&self, sent: &HeaderValue) -> bool {
        bool::from(self.0.header.as_bytes().ct_eq(sent.as_bytes()))
    }

    /// The authorization scheme: `App`, `Basic`, `IBSSO`, `Bearer`.
    ///
    /// ```
    /// # use infobip_auth::Credential;
    /// assert_eq!(Credential::new("Basic", "QQ==")?.scheme(), "Basic");
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn scheme(&self) -> &str {
        self.header_str()
            .get(..self.0.scheme_len)
            .unwrap_or_default()
    }

    /// The token itself, without the scheme. It is a secret: the name says so at every use.
    ///
    /// ```
    /// # use infobip_auth::Credential;
    /// assert_eq!(Credential::new("IBSSO", "abc")?.expose_token(), "abc");
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn expose_token(&self) -> &str {
        self.header_str()
            .get(self.0.scheme_len + 1..)
            .unwrap_or_default()
    }

    fn header_str(&self) -> &str {
        // Built from visible ASCII only, so this never falls back.
        self.0.header.to_str().unwrap_or_default()
    }

    /// When the credential was made.
    ///
    /// ```
    /// # use infobip_auth::Credential;
    /// assert!(Credential::new("App", "k")?.issued_at() <= tokio::time::Instant::now());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn issued_at(&self) -> Instant {
        self.0.issued_at
    }

    /// When the credential stops working; `None` for credentials that do not expire by time.
    ///
    /// ```
    /// # use infobip_auth::Credential;
    /// assert_eq!(Credential::new("App", "k")?.expiry(), None);
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn expiry(&self) -> Option<Instant> {
        self.0.expires_at
    }

    /// From issue to expiry.
    ///
    /// ```
    /// # use infobip_auth::Credential;
    /// assert_eq!(Credential::new("App", "k")?.lifetime(), None);
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn lifetime(&self) -> Option<Duration> {
        self.0
            .expires_at
            .map(|at| at.saturating_duration_since(self.0.issued_at))
    }

    /// How long the credential may stay unused, for sliding sessions.
    ///
    /// ```
    /// # use infobip_auth::Credential;
    /// assert_eq!(Credential::new("App", "k")?.idle_limit(), None);
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn idle_limit(&self) -> Option<Duration> {
        self.0.idle_timeout
    }

    /// The scopes the credential holds, when known.
    ///
    /// ```
    /// # use infobip_auth::Credential;
    /// assert!(Credential::new("App", "k")?.scopes().is_none());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn scopes(&self) -> Option<&Scopes> {
        self.0.scopes.as_ref()
    }

    /// The account and user the credential acts for, when known (the Exchange flow tells).
    ///
    /// ```
    /// # use infobip_auth::Credential;
    /// assert!(Credential::new("App", "k")?.account().is_none());
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn account(&self) -> Option<&Account> {
        self.0.account.as_ref()
    }
}

/// A sensitive header value over zeroizing memory: a fresh allocation, shared by nobody else.
///
/// Each service clone keeps its own copy, so threads never contend on one reference count; the
/// padding keeps that count off the cache line of any other clone's.
pub(crate) fn sensitive_header(bytes: &[u8]) -> Option<HeaderValue> {
    let owned = Bytes::from_owner(CachePadded(Zeroizing::new(bytes.to_vec())));
    let mut header = HeaderValue::from_maybe_shared(owned).ok()?;
    header.set_sensitive(true);
    Some(header)
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("scheme", &self.scheme())
            .field("token", &REDACTED)
            .field(
                "expires_in",
                &self
                    .0
                    .expires_at
                    .map(|at| at.saturating_duration_since(Instant::now())),
            )
            .field("idle_timeout", &self.0.idle_timeout)
            .field("scopes", &self.0.scopes)
            .field("account", &self.0.account)
            .finish()
    }
}

/// The Infobip account and web-interface user an Exchange token acts for (Infobip's Exchange
/// guide, "Exchange the code for a token").
///
/// ```
/// let json = r#"{"accountKey":"8F07","userKey":"F443","username":"developeruser",
///   "email":"developer@infobip.com","locale":"en-US","roles":[{"id":79,"name":"Manager"}]}"#;
/// let account: infobip_auth::Account = serde_json::from_str(json)?;
/// assert_eq!(account.roles[0].name, "Manager");
/// assert!(account.groups.is_empty());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Account {
    /// Hexadecimal representation of the account id.
    #[serde(default, deserialize_with = "null_as_default")]
    pub account_key: String,
    /// Hexadecimal representation of the user id.
    #[serde(default, deserialize_with = "null_as_default")]
    pub user_key: String,
    /// The web-interface username.
    #[serde(default, deserialize_with = "null_as_default")]
    pub username: String,
    /// The web-interface e-mail address.
    #[serde(default, deserialize_with = "null_as_default")]
    pub email: String,
    /// The user's interface language, e.g. `en-US`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub locale: String,
    /// The user's roles.
    #[serde(default, deserialize_with = "null_as_default")]
    pub roles: Vec<Named>,
    /// The user's groups.
    #[serde(default, deserialize_with = "null_as_default")]
    pub groups: Vec<Named>,
}

/// An optional field that may also arrive as `null` (Infobip's Exchange guide marks `roles`
/// and `groups` optional): read as its default.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A role or group: Infobip's `{"id", "name"}`.
///
/// ```
/// use infobip_auth::Named;
/// // Read from the `roles` and `groups` of a token answer, as part of an `Account`.
/// let role: Named = serde_json::from_str(r#"{"id":79,"name":"Manager"}"#)?;
/// assert_eq!((role.id, role.name.as_str()), (79, "Manager"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Named {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_tokens_a_header_cannot_carry() {
        for token in ["", "a b", "a\rb", "a\nb", "a\0b", "a\tb", "ключ", "a\x7fb"] {
            assert!(Credential::new("App", token).is_err(), "{token:?}");
        }
        assert!(Credential::new("", "k").is_err());
        assert!(Credential::new("A pp", "k").is_err());
    }

    #[test]
    fn debug_redacts_the_token() -> Result<(), ConfigError> {
        let credential = Credential::new("IBSSO", "s3cr3t-token")?;
        let debug = format!("{credential:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(
            debug.contains("IBSSO") && debug.contains(REDACTED),
            "{debug}"
        );
        Ok(())
    }

    #[test]
    fn splits_scheme_and_token() -> Result<(), ConfigError> {
        let credential = Credential::new("Bearer", "abc.def")?;
        assert_eq!(
            (credential.scheme(), credential.expose_token()),
            ("Bearer", "abc.def")
        );
        Ok(())
    }

    #[test]
    fn header_copies_do_not_share_memory() -> Result<(), ConfigError> {
        let credential = Credential::new("App", "k")?;
        let copy = sensitive_header(credential.header().as_bytes())
            .ok_or(ConfigError::Empty { what: "x" })?;
        assert_eq!(&copy, credential.header());
        assert!(copy.is_sensitive());
        assert_ne!(
            copy.as_bytes().as_ptr(),
            credential.header().as_bytes().as_ptr()
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_scheme_and_token_make_a_credential_or_a_typed_error(
            scheme in prop_oneof![Just("Bearer".to_owned()), ".{0,8}".prop_map(String::from)],
            token in prop_oneof![".{0,40}", "[!-~]{8,40}", "[!-~]{4,10}[\r\n\0 \u{7f}é][!-~]{4,10}"],
        ) {
            let visible = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
            match Credential::new(&scheme, &token) {
                Ok(credential) => {
                    prop_assert!(visible(&scheme) && visible(&token));
                    let expected = format!("{scheme} {token}");
                    prop_assert_eq!(credential.header(), expected.as_str());
                    let shown = format!("{credential:?}");
                    prop_assert!(token.len() < 8 || !shown.contains(&token), "{}", shown);
                }
                Err(err) => {
                    prop_assert!(matches!(err, ConfigError::InvalidHeaderValue { .. }), "{:?}", err);
                    prop_assert!(!visible(&scheme) || !visible(&token));
                    let shown = format!("{err} {err:?}");
                    prop_assert!(token.len() < 8 || !shown.contains(&token), "{}", shown);
                }
            }
        }
    }
}
