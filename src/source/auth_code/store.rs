//! [`TokenStore`]: where an [`AuthCode`](super::AuthCode) source keeps its current token, so
//! an app restarted within the token's lifetime resumes instead of asking the user again.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::Deserializer;
use serde::ser::{SerializeStruct as _, Serializer};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::credential::REDACTED;
use crate::transport::token_credential;
use crate::{Account, BoxError, Credential, Error, ErrorKind};

/// Keeps the current Exchange token of one connected account.
///
/// An [`AuthCode`](super::AuthCode) source saves every token it gets (the first one and each
/// refresh), and [`AuthCodeFlow::resume`](super::AuthCodeFlow::resume) loads it after a
/// restart. A refused refresh saves the token as expired, so `resume` then asks for a new
/// authorization. Exchange tokens live one minute, so a store only helps a restart that is quicker
/// than that (or a process that shares the connection with another one). Use one store per
/// connected account. A stored token's expiry is wall-clock time (`SystemTime`), which outlives
/// the process, so a paused tokio clock does not move it.
///
/// A store that cannot save or load returns its error; the source reports it as
/// [`ErrorKind::Store`] with that error as the source:
/// - [`AuthCode::save_to`](super::AuthCode::save_to) (the first token) returns it, and keeps
///   the store: the source still works from memory, and each refresh saves again;
/// - a failed save after a refresh does not fail the refresh: the new token is served from
///   memory, [`AuthCode::store_error`](super::AuthCode::store_error) holds the error until a
///   save succeeds, and (with the `tracing` feature) a `warn` event reports it;
/// - [`AuthCodeFlow::resume`](super::AuthCodeFlow::resume) returns it, instead of asking for
///   a new authorization as it does when the store holds no usable token.
///
/// ```
/// use infobip_auth::BoxError;
/// use infobip_auth::source::{StoredToken, TokenStore};
/// use std::sync::Mutex;
///
/// /// Keeps the token as JSON, as a database row would.
/// #[derive(Debug, Default)]
/// struct JsonRow(Mutex<Option<String>>);
///
/// impl TokenStore for JsonRow {
///     async fn save(&self, token: &StoredToken) -> Result<(), BoxError> {
///         let json = serde_json::to_string(token)?;
///         *self.0.lock().map_err(|_| "poisoned")? = Some(json);
///         Ok(())
///     }
///     async fn load(&self) -> Result<Option<StoredToken>, BoxError> {
///         let row = self.0.lock().map_err(|_| "poisoned")?.clone();
///         Ok(row.as_deref().map(serde_json::from_str).transpose()?)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), BoxError> {
/// let row = JsonRow::default();
/// let token = StoredToken::new("IBSSO", "a1b2c3", std::time::SystemTime::now(), Default::default());
/// row.save(&token).await?;
/// let loaded = row.load().await?.ok_or("not saved")?;
/// assert_eq!(loaded.expose_token(), "a1b2c3");
/// # Ok(()) }
/// ```
pub trait TokenStore: fmt::Debug + Send + Sync + 'static {
    /// Persists `token`, replacing the previous one.
    ///
    /// # Errors
    /// Whatever kept the store from saving (a database error): the source reports it as
    /// [`ErrorKind::Store`] and keeps serving the token from memory.
    ///
    /// ```
    /// use infobip_auth::Account;
    /// use infobip_auth::source::{MemoryStore, StoredToken, TokenStore};
    /// use std::time::{Duration, SystemTime};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let store = MemoryStore::new();
    /// let expires = SystemTime::now() + Duration::from_secs(60);
    /// store.save(&StoredToken::new("IBSSO", "first", expires, Account::default())).await?;
    /// // Each refresh saves again: a store keeps only the newest token.
    /// store.save(&StoredToken::new("IBSSO", "second", expires, Account::default())).await?;
    /// assert_eq!(store.get().map(|t| t.expose_token().to_owned()).as_deref(), Some("second"));
    /// # Ok(()) }
    /// ```
    fn save(&self, token: &StoredToken) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// The token saved last, if any.
    ///
    /// # Errors
    /// Whatever kept the store from reading: [`AuthCodeFlow::resume`](super::AuthCodeFlow::resume)
    /// reports it as [`ErrorKind::Store`]. A store that holds nothing returns `Ok(None)`.
    ///
    /// ```
    /// use infobip_auth::Account;
    /// use infobip_auth::source::{MemoryStore, StoredToken, TokenStore};
    /// use std::time::{Duration, SystemTime};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let store = MemoryStore::new();
    /// assert!(store.load().await?.is_none()); // nothing to resume: the user must authorize
    /// let expires = SystemTime::now() + Duration::from_secs(60);
    /// store.save(&StoredToken::new("IBSSO", "3d7908aa", expires, Account::default())).await?;
    /// assert_eq!(store.load().await?.map(|t| t.expose_token().to_owned()).as_deref(), Some("3d7908aa"));
    /// # Ok(()) }
    /// ```
    fn load(&self) -> impl Future<Output = Result<Option<StoredToken>, BoxError>> + Send;
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe twin of [`TokenStore`].
trait DynTokenStore: fmt::Debug + Send + Sync + 'static {
    fn save<'a>(&'a self, token: &'a StoredToken) -> BoxFuture<'a, Result<(), BoxError>>;
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>>;
}

impl<T: TokenStore> DynTokenStore for T {
    fn save<'a>(&'a self, token: &'a StoredToken) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(TokenStore::save(self, token))
    }

    fn load(&self) -> BoxFuture<'_, Result<Option<StoredToken>, BoxError>> {
        Box::pin(TokenStore::load(self))
    }
}

/// Any [`TokenStore`], type-erased.
#[derive(Clone, Debug)]
pub(crate) struct SharedStore(Arc<dyn DynTokenStore>);

impl SharedStore {
    pub(crate) fn new(store: impl TokenStore) -> Self {
        Self(Arc::new(store))
    }

    /// Saves `token`; the store's failure becomes [`ErrorKind::Store`].
    pub(crate) async fn save(&self, token: &StoredToken) -> Result<(), Error> {
        self.0.save(token).await.map_err(store_failed)
    }

    /// Loads the saved token; the store's failure becomes [`ErrorKind::Store`].
    pub(crate) async fn load(&self) -> Result<Option<StoredToken>, Error> {
        self.0.load().await.map_err(store_failed)
    }
}

/// A store's own error as the crate's: what the store says is kept as the source, unread.
fn store_failed(cause: BoxError) -> Error {
    Error::new(ErrorKind::Store).with_source(cause)
}

/// A [`TokenStore`] in this process's memory: the default, and a handle for tests. Clones
/// share one slot.
///
/// ```
/// use infobip_auth::source::MemoryStore;
/// let store = MemoryStore::new();
/// assert!(store.get().is_none());
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore(Arc<Mutex<Option<StoredToken>>>);

impl MemoryStore {
    /// An empty store.
    ///
    /// ```
    /// # use infobip_auth::source::MemoryStore;
    /// assert!(MemoryStore::new().get().is_none());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The token saved last, if any.
    ///
    /// ```
    /// # use infobip_auth::source::MemoryStore;
    /// assert!(MemoryStore::new().get().is_none());
    /// ```
    #[must_use]
    pub fn get(&self) -> Option<StoredToken> {
        self.slot().clone()
    }

    fn slot(&self) -> MutexGuard<'_, Option<StoredToken>> {
        crate::sync::lock(&self.0)
    }
}

/// A shared store: keep one handle to a store that is not `Clone` (to read it, or to give it to
/// [`AuthCodeFlow::resume`](super::AuthCodeFlow::resume) after a restart) and give the source
/// another.
///
/// ```
/// use std::sync::Arc;
/// use infobip_auth::Account;
/// use infobip_auth::source::{MemoryStore, StoredToken, TokenStore};
/// use std::time::{Duration, SystemTime};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// let store = Arc::new(MemoryStore::new());
/// let expires = SystemTime::now() + Duration::from_secs(60);
/// Arc::clone(&store).save(&StoredToken::new("IBSSO", "3d7908aa", expires, Account::default())).await?;
/// assert!(store.load().await?.is_some());
/// # Ok(()) }
/// ```
impl<T: TokenStore> TokenStore for std::sync::Arc<T> {
    fn save(&self, token: &StoredToken) -> impl Future<Output = Result<(), BoxError>> + Send {
        T::save(self, token)
    }

    fn load(&self) -> impl Future<Output = Result<Option<StoredToken>, BoxError>> + Send {
        T::load(self)
    }
}

impl TokenStore for MemoryStore {
    async fn save(&self, token: &StoredToken) -> Result<(), BoxError> {
        *self.slot() = Some(token.clone());
        Ok(())
    }

    async fn load(&self) -> Result<Option<StoredToken>, BoxError> {
        Ok(self.get())
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MemoryStore").field(&*self.slot()).finish()
    }
}

/// An Exchange token as a [`TokenStore`] keeps it: its type, the token, when it expires
/// (wall-clock time, so it survives a restart) and the account it acts for.
///
/// It serializes with `serde` as `{"tokenType","token","expiresAt","account"}`, `expiresAt` in
/// seconds since the Unix epoch. The token is a secret: `Debug` does not print it, but the
/// serialized form holds it, so store it as you would a password.
///
/// ```
/// use infobip_auth::Account;
/// use infobip_auth::source::StoredToken;
/// use std::time::{Duration, SystemTime};
/// let expires = SystemTime::now() + Duration::from_secs(60);
/// let token = StoredToken::new("IBSSO", "3d7908aa-7b8c-4c5a-94bf-5cdeef18947b", expires, Account::default());
/// assert_eq!(token.token_type(), "IBSSO");
/// assert!(!format!("{token:?}").contains("3d7908aa"));
/// ```
#[derive(Clone)]
pub struct StoredToken {
    token_type: String,
    token: Zeroizing<String>,
    expires_at: SystemTime,
    account: Account,
}

impl StoredToken {
    /// A stored token from its parts.
    ///
    /// ```
    /// # use infobip_auth::{Account, source::StoredToken};
    /// let token = StoredToken::new("IBSSO", "t", std::time::SystemTime::now(), Account::default());
    /// assert_eq!(token.expose_token(), "t");
    /// ```
    #[must_use]
    pub fn new(token_type: &str, token: &str, expires_at: SystemTime, account: Account) -> Self {
        Self {
            token_type: token_type.to_owned(),
            token: Zeroizing::new(token.to_owned()),
            expires_at,
            account,
        }
    }

    /// Saves what a credential holds; `None` for a credential without an expiry (never made
    /// by an [`AuthCode`](super::AuthCode) source).
    pub(crate) fn from_credential(credential: &Credential) -> Option<Self> {
        let left = credential
            .expiry()?
            .saturating_duration_since(Instant::now());
        Some(Self::new(
            credential.scheme(),
            credential.expose_token(),
            SystemTime::now() + left,
            credential.account().cloned().unwrap_or_default(),
        ))
    }

    /// The credential to send, or [`ErrorKind::ReauthorizationRequired`] once it has expired.
    pub(crate) fn to_credential(&self) -> Result<Credential, Error> {
        let left = self
            .expires_at
            .duration_since(SystemTime::now())
            .ok()
            .filter(|left| !left.is_zero())
            .ok_or_else(|| Error::new(ErrorKind::ReauthorizationRequired))?;
        // Never more than the documented minute, as for a token answer (see `seconds`): a
        // store written with a longer belief, or by a clock set back, would let it die unrefreshed.
        Ok(token_credential(&self.token_type, &self.token)?
            .expires_in(left.min(super::DEFAULT_LIFETIME))
            .with_account(self.account.clone()))
    }

    /// The authorization scheme, `IBSSO` for Exchange tokens.
    ///
    /// ```
    /// # use infobip_auth::{Account, source::StoredToken};
    /// let token = StoredToken::new("IBSSO", "t", std::time::SystemTime::now(), Account::default());
    /// assert_eq!(token.token_type(), "IBSSO");
    /// ```
    #[must_use]
    pub fn token_type(&self) -> &str {
        &self.token_type
    }

    /// The token itself: a secret.
    ///
    /// ```
    /// # use infobip_auth::{Account, source::StoredToken};
    /// let token = StoredToken::new("IBSSO", "t", std::time::SystemTime::now(), Account::default());
    /// assert_eq!(token.expose_token(), "t");
    /// ```
    #[must_use]
    pub fn expose_token(&self) -> &str {
        &self.token
    }

    /// When the token stops working.
    ///
    /// ```
    /// # use infobip_auth::{Account, source::StoredToken};
    /// let at = std::time::SystemTime::UNIX_EPOCH;
    /// assert_eq!(StoredToken::new("IBSSO", "t", at, Account::default()).expires_at(), at);
    /// ```
    #[must_use]
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The account and user the token acts for.
    ///
    /// ```
    /// # use infobip_auth::{Account, source::StoredToken};
    /// let token = StoredToken::new("IBSSO", "t", std::time::SystemTime::now(), Account::default());
    /// assert_eq!(token.account(), &Account::default());
    /// ```
    #[must_use]
    pub fn account(&self) -> &Account {
        &self.account
    }
}

impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("token_type", &self.token_type)
            .field("token", &REDACTED)
            .field("expires_at", &self.expires_at)
            .field("account", &self.account)
            .finish()
    }
}

impl Serialize for StoredToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("StoredToken", 4)?;
        out.serialize_field("tokenType", &self.token_type)?;
        out.serialize_field("token", self.token.as_str())?;
        out.serialize_field("expiresAt", &unix_seconds(self.expires_at))?;
        out.serialize_field("account", &self.account)?;
        out.end()
    }
}

impl<'de> Deserialize<'de> for StoredToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            token_type: String,
            token: String,
            expires_at: u64,
            #[serde(default)]
            account: Account,
        }
        let wire = Wire::deserialize(deserializer)?;
        Ok(Self {
            token_type: wire.token_type,
            token: Zeroizing::new(wire.token),
            expires_at: from_unix_seconds(wire.expires_at)?,
            account: wire.account,
        })
    }
}

/// An expiry as it is serialized, in seconds since the Unix epoch: rounded down, so what is
/// read back is never thought to live longer than it does.
pub(super) fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// A serialized expiry read back.
pub(super) fn from_unix_seconds<E: serde::de::Error>(seconds: u64) -> Result<SystemTime, E> {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(seconds))
        .ok_or_else(|| E::custom("expiresAt is beyond any representable time"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn account() -> Account {
        Account {
            username: "developeruser".into(),
            account_key: "8F0792F86035A9F4290821F1EE6BC06A".into(),
            ..Account::default()
        }
    }

    #[test]
    fn serializes_with_unix_seconds_and_back() -> Result<(), serde_json::Error> {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_999);
        let token = StoredToken::new("IBSSO", "tok", at, account());
        let json = serde_json::to_value(&token)?;
        assert_eq!(json["expiresAt"], 1_700_000_000);
        assert_eq!(json["tokenType"], "IBSSO");
        assert_eq!(
            json["account"]["accountKey"],
            "8F0792F86035A9F4290821F1EE6BC06A"
        );
        let back: StoredToken = serde_json::from_value(json)?;
        assert_eq!(
            back.expires_at(),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        assert_eq!((back.expose_token(), back.account()), ("tok", &account()));
        Ok(())
    }

    #[tokio::test]
    async fn a_credential_survives_the_round_trip() -> Result<(), crate::BoxError> {
        let credential = Credential::new("IBSSO", "tok")?
            .expires_in(Duration::from_secs(60))
            .with_account(account());
        let stored = StoredToken::from_credential(&credential).ok_or("no expiry")?;
        let back = stored.to_credential()?;
        assert_eq!(back.header(), "IBSSO tok");
        assert_eq!(back.account(), Some(&account()));
        let left = back.lifetime().unwrap_or_default();
        assert!(
            left > Duration::from_secs(58) && left <= Duration::from_secs(60),
            "{left:?}"
        );
        Ok(())
    }

    #[test]
    fn an_expired_token_asks_for_reauthorization() {
        let past = SystemTime::now() - Duration::from_secs(1);
        let err = StoredToken::new("IBSSO", "tok", past, account()).to_credential();
        assert!(matches!(
            err.as_ref().map_err(Error::kind),
            Err(ErrorKind::ReauthorizationRequired)
        ));
    }

    #[tokio::test]
    async fn memory_store_clones_share_the_slot() -> Result<(), BoxError> {
        let store = MemoryStore::new();
        let handle = store.clone();
        let token = StoredToken::new("IBSSO", "tok", SystemTime::now(), account());
        TokenStore::save(&store, &token).await?;
        assert_eq!(
            handle.get().map(|t| t.expose_token().to_owned()).as_deref(),
            Some("tok")
        );
        assert!(TokenStore::load(&handle).await?.is_some());
        assert!(!format!("{store:?}").contains("tok\""), "{store:?}");
        Ok(())
    }

    #[test]
    fn debug_redacts_the_token() {
        let token = StoredToken::new("IBSSO", "s3cr3t-token", SystemTime::now(), account());
        let debug = format!(
            "{token:?} {:?}",
            MemoryStore(Arc::new(Mutex::new(Some(token.clone()))))
        );
        assert!(!debug.contains("s3cr3t"), "{debug}");
    }

    fn _object_safe(_: &dyn DynTokenStore) {}

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn a_kept_token_reads_back_or_is_refused(
            token_type in prop_oneof![Just("IBSSO".to_owned()), ".{0,8}".prop_map(String::from)],
            token in prop_oneof!["[!-~]{8,24}", ".{0,24}"],
            expires_at in prop_oneof![
                any::<u64>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(serde_json::Value::from),
                (0u64..=u64::MAX >> 30).prop_map(serde_json::Value::from),
                "[0-9]{0,40}".prop_map(serde_json::Value::from),
                Just(serde_json::Value::Null),
            ],
        ) {
            let json = serde_json::json!({
                "tokenType": token_type, "token": token, "expiresAt": expires_at,
            });
            let Ok(stored) = serde_json::from_value::<StoredToken>(json) else {
                return Ok(());
            };
            prop_assert!(expires_at.is_u64());
            let shown = format!("{stored:?}");
            prop_assert!(token.len() < 8 || !shown.contains(&token), "{}", shown);
            match stored.to_credential() {
                Ok(credential) => prop_assert!(credential.expiry().is_none_or(|at| at > Instant::now())),
                Err(err) => {
                    prop_assert!(matches!(
                        err.kind(),
                        ErrorKind::ReauthorizationRequired | ErrorKind::MalformedResponse { .. }
                    ), "{:?}", err);
                    let shown = format!("{err} {err:?}");
                    prop_assert!(token.len() < 8 || !shown.contains(&token), "{}", shown);
                }
            }
        }
    }
}
