//! Infobip Exchange's OAuth 2.0 authorization-code flow, for apps used by many Infobip
//! accounts: each account's user approves the app once, and the app then acts on the
//! account's behalf with a token that lives one minute and is refreshed before it dies.
//!
//! 1. [`AuthCodeFlow::authorize_url`] makes the URL to send the user to, and a
//!    [`PendingAuthorization`] (the `state`, and the PKCE verifier of a public app) to keep.
//! 2. Infobip sends the user back to the redirect URI with `?code=…&state=…`;
//!    [`AuthCodeFlow::callback`] checks it, before any network call, into an
//!    [`AuthorizationGrant`].
//! 3. [`AuthCodeFlow::exchange`] trades the code (single use, valid one minute) for an
//!    [`AuthCode`] token source, which knows the [`Account`] and user that approved.
//! 4. [`InfobipAuthLayer::new(source)`](crate::InfobipAuthLayer::new) sends
//!    `Authorization: IBSSO <token>` and refreshes the token (`grant_type=refresh_token`) about
//!    every 45 seconds while requests flow;
//!    [`RefreshPolicy::keep_alive`](crate::RefreshPolicy::keep_alive) refreshes while idle
//!    too, so the connection lasts. Once a token has expired, only a new authorization helps:
//!    requests fail with [`ErrorKind::ReauthorizationRequired`].
//!
//! A [`TokenStore`] (for example a database row per account) keeps the current token, so
//! [`AuthCodeFlow::resume`] picks the connection up after a restart within its lifetime. A
//! store that fails is reported, never hidden: [`AuthCode::save_to`] returns the error, and
//! [`AuthCode::store_error`] tells whether the last save (after a refresh) failed.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use infobip_auth::source::{AuthCodeFlow, Transport};
//! use infobip_auth::{InfobipAuthLayer, RefreshPolicy};
//! use tower::{ServiceBuilder, ServiceExt as _, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
//! // Stands in for Infobip's token endpoint (use a hyper-util client with TLS).
//! let http_client = service_fn(|_: Request<Full<Bytes>>| async {
//!     let body = r#"{"token":"3d7908aa-7b8c-4c5a-94bf-5cdeef18947b","tokenType":"IBSSO",
//!         "accountKey":"8F0792F86035A9F4290821F1EE6BC06A","userKey":"F443BCAEB8517F7159F44D0E8CFE725D",
//!         "username":"developeruser","email":"developer@infobip.com","locale":"en-US"}"#;
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
//! });
//! let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
//!     .client_secret("YED8Q0KHeYgQxtjdUkR376Uxu0/zdvwAVZb3ZQ3GGZU=")
//!     .redirect_uri("https://www.my-app.com/callback")
//!     .scope("api_read")
//!     .transport(Transport::new(http_client))
//!     .build()?;
//!
//! // GET /connect: send the user to Infobip, keep `pending` in their session.
//! let (url, pending) = flow.authorize_url()?;
//! assert!(url.to_string().starts_with("https://oneapi.infobip.com/exchange/1/oauth/authorize?response_type=code"));
//!
//! // GET /callback?code=…&state=…: Infobip sent the user back.
//! let callback = format!("/callback?code=822762fa24e04975&state={}", pending.state());
//! let grant = flow.callback(pending, &callback)?; // single use: `pending` is consumed
//! let source = flow.exchange(grant).await?;
//! assert_eq!(source.account().account_key, "8F0792F86035A9F4290821F1EE6BC06A");
//!
//! // Act on the account's behalf.
//! let api = service_fn(|req: Request<Full<Bytes>>| async move {
//!     Ok::<_, std::convert::Infallible>(Response::new(req.headers()["authorization"].clone()))
//! });
//! let layer = InfobipAuthLayer::new(source).refresh_policy(RefreshPolicy::default().keep_alive(true));
//! let sms = Request::post("https://xyz12.api.infobip.com/sms/2/text/advanced").body(Full::default())?;
//! let seen = ServiceBuilder::new().layer(layer).service(api).oneshot(sms).await?;
//! assert_eq!(seen.body(), "IBSSO 3d7908aa-7b8c-4c5a-94bf-5cdeef18947b");
//! # Ok(()) }
//! ```

mod callback;
mod flow;
mod store;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

pub use callback::{AuthorizationGrant, DEFAULT_PENDING_LIFETIME, PendingAuthorization};
pub use flow::{AuthCodeFlow, Builder};
pub use store::{MemoryStore, StoredToken, TokenStore};

use crate::error::Context;
use crate::origin::AllowedHosts;
use crate::source::TokenSource;
use crate::sync::lock;
use crate::trace::event;
use crate::transport::{Answer, check_status, token_credential};
use crate::{Account, BaseUrl, Credential, Error, ErrorKind, Named};
use store::SharedStore;

/// Where codes and tokens are exchanged and refreshed (Infobip's Exchange guide, "Get Token
/// endpoint").
pub(crate) const TOKEN_PATH: &str = "/exchange/1/oauth/token";

/// How long an Exchange token lives when the answer does not say: one minute (Infobip's
/// Exchange guide).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);

/// The token of one account that approved an Exchange app, as a [`TokenSource`]: sends
/// `Authorization: {tokenType} {token}` and refreshes the token with
/// `code=<token>&grant_type=refresh_token` (plus the client id, and the client secret if the
/// app has one) before it expires.
///
/// Made by [`AuthCodeFlow::exchange`] or [`AuthCodeFlow::resume`]. Clones share the token, so
/// keep one to read [`account`](Self::account) after handing another to the layer.
///
/// Once the token has expired (no refresh came in time, or Infobip refused one), every fetch
/// fails with [`ErrorKind::ReauthorizationRequired`] without a network call: send the user
/// through the flow again. A fetch of a token with less than half its life left refreshes it
/// first; if that refresh fails for a while (`5xx`, `429`), the fetch returns the failure (the
/// token is still [`credential`](Self::credential)), and a layer keeps sending the token while
/// it backs off before trying again.
///
/// See the [module docs](self) for the whole flow.
///
/// ```
/// # use infobip_auth::source::{AuthCodeFlow, MemoryStore, StoredToken, TokenSource, TokenStore, Transport};
/// # use infobip_auth::{Account, ErrorKind};
/// # use std::time::{Duration, SystemTime};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), infobip_auth::BoxError> {
/// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
/// # }));
/// # let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
/// #     .client_secret("secret").redirect_uri("https://www.my-app.com").scope("api_read")
/// #     .transport(transport).build()?;
/// # let store = MemoryStore::new();
/// # store.save(&StoredToken::new("IBSSO", "3d7908aa", SystemTime::now() + Duration::from_secs(50), Account::default())).await?;
/// let source = flow.resume(store).await?;
/// assert_eq!(source.fetch(None).await?.header(), "IBSSO 3d7908aa");
///
/// // No refresh came within the token's minute: only a new authorization helps now.
/// tokio::time::advance(Duration::from_secs(60)).await;
/// let err = source.fetch(None).await.err().ok_or("still fetched")?;
/// assert!(matches!(err.kind(), ErrorKind::ReauthorizationRequired));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthCode(Arc<Inner>);

struct Inner {
    flow: AuthCodeFlow,
    /// The newest token, handed out by fetches that are not asked to replace it.
    current: Mutex<Credential>,
    /// One refresh at a time, even across layers sharing this source; a save of a refused
    /// token, which outlives its refresh, holds it too, so no save overtakes it.
    refreshing: Arc<tokio::sync::Mutex<()>>,
    store: Mutex<Option<SharedStore>>,
    /// Why the last save failed; `None` once a save succeeds.
    store_error: Mutex<Option<Error>>,
    /// `None` when the flow's base URL is an Infobip host: the token then goes to any of them.
    base_url: Option<BaseUrl>,
}

impl AuthCode {
    fn new(flow: AuthCodeFlow, credential: Credential, store: Option<SharedStore>) -> Self {
        let base = flow.base_url();
        let base_url = (!AllowedHosts::Infobip.allows(&base.endpoint("/"))).then(|| base.clone());
        Self(Arc::new(Inner {
            flow,
            current: Mutex::new(credential),
            refreshing: Arc::new(tokio::sync::Mutex::new(())),
            store: Mutex::new(store),
            store_error: Mutex::new(None),
            base_url,
        }))
    }

    /// Saves the current token to `store` now, and every new one after it, so that
    /// [`AuthCodeFlow::resume`] can pick the connection up after a restart. Replaces the store
    /// the source had; waits for a refresh under way, so the store never ends behind it, and
    /// for the save of a token Infobip refused to refresh (the refusal is reported at once, and
    /// that save ends after it). (So do not call it from a [`TokenStore::save`]: a refresh
    /// waits for its store.)
    ///
    /// # Errors
    /// [`ErrorKind::Store`] when `store` fails to save, with its error as the source. The
    /// source is unharmed: it serves the token from memory, keeps `store`, and saves again at
    /// the next refresh (about every 45 seconds while in use); call `save_to` again to retry
    /// at once. [`store_error`](Self::store_error) holds the failure until a save succeeds.
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, MemoryStore, StoredToken, TokenStore, Transport};
    /// # use infobip_auth::Account;
    /// # use std::time::{Duration, SystemTime};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// # let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    /// #     .client_secret("secret").redirect_uri("https://www.my-app.com").scope("api_read")
    /// #     .transport(transport).build()?;
    /// # let old = MemoryStore::new();
    /// # old.save(&StoredToken::new("IBSSO", "tok", SystemTime::now() + Duration::from_secs(50), Account::default())).await?;
    /// # let source = flow.resume(old).await?;
    /// let store = MemoryStore::new();
    /// source.save_to(store.clone()).await?;
    /// assert_eq!(store.get().map(|t| t.expose_token().to_owned()).as_deref(), Some("tok"));
    /// # Ok(()) }
    /// ```
    pub async fn save_to(&self, store: impl TokenStore) -> Result<(), Error> {
        // Not while a refresh saves: the token read here would land after its newer one.
        let _one_at_a_time = self.0.refreshing.lock().await;
        *lock(&self.0.store) = Some(SharedStore::new(store));
        self.save(&self.credential()).await
    }

    /// Why the last save to the store failed, if it did: `None` when there is no store, no
    /// save yet, or the last save succeeded. A refresh whose save fails still serves its new
    /// token from memory; this is how a program learns that the store is behind (and, with the
    /// `tracing` feature, from a `warn` event).
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, MemoryStore, StoredToken, TokenStore, Transport};
    /// # use infobip_auth::Account;
    /// # use std::time::{Duration, SystemTime};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// # let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    /// #     .client_secret("secret").redirect_uri("https://www.my-app.com").scope("api_read")
    /// #     .transport(transport).build()?;
    /// # let store = MemoryStore::new();
    /// # store.save(&StoredToken::new("IBSSO", "tok", SystemTime::now() + Duration::from_secs(50), Account::default())).await?;
    /// let source = flow.resume(store).await?;
    /// assert!(source.store_error().is_none());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn store_error(&self) -> Option<Error> {
        lock(&self.0.store_error).clone()
    }

    /// Saves `credential` to the store, if there is one, and records the outcome for
    /// [`store_error`](Self::store_error).
    async fn save(&self, credential: &Credential) -> Result<(), Error> {
        let store = lock(&self.0.store).clone();
        let (Some(store), Some(token)) = (store, StoredToken::from_credential(credential)) else {
            return Ok(());
        };
        let saved = store.save(&token).await;
        *lock(&self.0.store_error) = match &saved {
            Ok(()) => None,
            Err(err) => {
                event!(
                    warn,
                    error = crate::trace::with_causes(err),
                    "saving the Exchange token failed: it is served from memory, and saved again at the next refresh"
                );
                Some(err.clone())
            }
        };
        saved
    }

    /// The account and user that approved the app, as the last token answer reported them.
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, MemoryStore, StoredToken, TokenStore, Transport};
    /// # use infobip_auth::Account;
    /// # use std::time::{Duration, SystemTime};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// # let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    /// #     .client_secret("secret").redirect_uri("https://www.my-app.com").scope("api_read")
    /// #     .transport(transport).build()?;
    /// # let store = MemoryStore::new();
    /// # let account: Account = serde_json::from_str(r#"{"username":"developeruser"}"#)?;
    /// # store.save(&StoredToken::new("IBSSO", "tok", SystemTime::now() + Duration::from_secs(50), account)).await?;
    /// let source = flow.resume(store).await?;
    /// assert_eq!(source.account().username, "developeruser");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn account(&self) -> Account {
        self.credential().account().cloned().unwrap_or_default()
    }

    /// The newest token (possibly expired: check [`Credential::expiry`]).
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, MemoryStore, StoredToken, TokenStore, Transport};
    /// # use infobip_auth::Account;
    /// # use std::time::{Duration, SystemTime};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// # let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    /// #     .client_secret("secret").redirect_uri("https://www.my-app.com").scope("api_read")
    /// #     .transport(transport).build()?;
    /// # let store = MemoryStore::new();
    /// # store.save(&StoredToken::new("IBSSO", "tok", SystemTime::now() + Duration::from_secs(50), Account::default())).await?;
    /// let source = flow.resume(store).await?;
    /// assert_eq!(source.credential().scheme(), "IBSSO");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn credential(&self) -> Credential {
        lock(&self.0.current).clone()
    }

    /// Trades `current` for a new token at the token endpoint, and records the new one;
    /// `one_at_a_time` is the refresh lock, held until the new token is saved.
    async fn refresh(
        &self,
        current: &Credential,
        one_at_a_time: OwnedMutexGuard<()>,
    ) -> Result<Credential, Error> {
        let flow = &self.0.flow;
        let mut form = vec![
            ("code", current.expose_token()),
            ("grant_type", "refresh_token"),
        ];
        form.extend(flow.client_fields());
        let answer = flow
            .transport()
            .post_form(flow.token_endpoint(), &form)
            .await?;
        if let Err(err) = check_status(&answer) {
            // Infobip refuses to refresh a token that has expired or was revoked: only a new
            // authorization helps then. Anything else (5xx, 429) may pass.
            let status = answer.status();
            if status == 400 || status == 401 {
                // At `debug`: the cache's backoff says it at `warn`, with the error.
                event!(
                    debug,
                    status = status.as_u16(),
                    "Exchange token refresh refused: the user must authorize the app again"
                );
                // Remember it: later fetches fail at once instead of asking again.
                let dead = current.clone().expires_at(Instant::now());
                let replaced = {
                    let mut newest = lock(&self.0.current);
                    let replaced = newest.expose_token() == current.expose_token();
                    if replaced {
                        *newest = dead.clone();
                    }
                    replaced
                };
                // The store learns it too, so a restart's `resume` asks for a new
                // authorization instead of serving the refused token. A failed save is
                // recorded for `store_error`; the refusal is what this fetch reports, at once:
                // until the cache has it, requests still carry the refused token.
                if replaced {
                    self.save_in_background(dead, one_at_a_time).await;
                }
                // The cache stops sending it too, rather than serving it out its believed life.
                return Err(reauthorization_required(err).with_previous_ended());
            }
            return Err(err);
        }
        let fresh = parse_token(&answer, current.account())?;
        *lock(&self.0.current) = fresh.clone();
        // A failed save does not fail the refresh: the new token is served from memory, and
        // the failure is kept for `store_error`, as is a save cut off half-way.
        let mut unsaved = UnsavedGuard::new(self, one_at_a_time);
        let _recorded = self.save(&fresh).await;
        unsaved.done();
        Ok(fresh)
    }

    /// Saves `credential` in a task of its own, which holds the refresh lock until the save
    /// ends: `save_to` and later fetches wait for it, so no save lands before it and its
    /// outcome reaches `store_error` in order. Saves here, and waits, outside a tokio runtime.
    /// A save its runtime drops (ending before the task ran, or half-way) is recorded there as
    /// failed: the store may still hold the token as live.
    async fn save_in_background(&self, credential: Credential, one_at_a_time: OwnedMutexGuard<()>) {
        // Made here, not in the task: a task dropped before it runs never made what it holds.
        let mut unsaved = UnsavedGuard::new(self, one_at_a_time);
        let save = async move {
            let _recorded = unsaved.source.save(&credential).await;
            unsaved.done();
            drop(unsaved);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(save)),
            Err(_) => save.await,
        }
    }
}

/// Records a save dropped before it ended (its runtime shut down, or its caller gave up) for
/// [`AuthCode::store_error`], which would otherwise report nothing wrong while the store holds
/// an older token. Holds the refresh lock, released only after that: no later save's outcome
/// is overwritten.
struct UnsavedGuard {
    source: AuthCode,
    saved: bool,
    _one_at_a_time: OwnedMutexGuard<()>,
}

impl UnsavedGuard {
    fn new(source: &AuthCode, one_at_a_time: OwnedMutexGuard<()>) -> Self {
        Self {
            source: source.clone(),
            saved: false,
            _one_at_a_time: one_at_a_time,
        }
    }

    fn done(&mut self) {
        self.saved = true;
    }
}

impl Drop for UnsavedGuard {
    fn drop(&mut self) {
        // Without a store there was nothing to save, so nothing fell behind.
        if !self.saved && lock(&self.source.0.store).is_some() {
            let cut_off =
                Error::new(ErrorKind::Store).with_source("the save was dropped before it ended");
            event!(
                warn,
                error = crate::trace::with_causes(&cut_off),
                "saving the Exchange token failed"
            );
            *lock(&self.source.0.store_error) = Some(cut_off);
        }
    }
}

/// The server refused a refresh: `cause` says how. (A plain function: inside the `async fn`,
/// the generic `with_source` trips rustc's higher-ranked `Send` check, rust-lang/rust#102211.)
/// A refused token request is here a refused refresh: its message says to authorize again, not
/// to check the client's secret.
fn reauthorization_required(cause: Error) -> Error {
    let cause = cause.with_context(Context::RefreshRefused);
    Error::new(ErrorKind::ReauthorizationRequired).with_source(cause)
}

/// Whether `credential` has less than half its life left: too little to hand to a cache as
/// fresh, since a cache whose refresh point (¾ of the life by default, less jitter) has passed
/// when it takes a credential waits for a later deadline or request to refresh it.
fn aging(credential: &Credential) -> bool {
    match (credential.expiry(), credential.lifetime()) {
        (Some(at), Some(lifetime)) => at.saturating_duration_since(Instant::now()) < lifetime / 2,
        _ => false,
    }
}

/// Whether `credential` is dead by our clock.
fn expired(credential: &Credential) -> bool {
    credential.expiry().is_none_or(|at| at <= Instant::now())
}

impl TokenSource for AuthCode {
    async fn fetch(&self, previous: Option<&Credential>) -> Result<Credential, Error> {
        let replaces = |current: &Credential| {
            previous.is_some_and(|previous| previous.expose_token() == current.expose_token())
        };
        let current = self.credential();
        if !replaces(&current) && !expired(&current) && !aging(&current) {
            // The first fetch, or another cache refreshed already: nothing to trade.
            return Ok(current);
        }
        let one_at_a_time = Arc::clone(&self.0.refreshing).lock_owned().await;
        let current = self.credential();
        if !replaces(&current) && !expired(&current) && !aging(&current) {
            return Ok(current);
        }
        if expired(&current) {
            event!(
                debug,
                "the Exchange token has expired: the user must authorize the app again"
            );
            let err = Error::new(ErrorKind::ReauthorizationRequired);
            // Asked to replace a token that is dead (refused, maybe at another layer's
            // refresh): that cache stops sending it too.
            return Err(if replaces(&current) {
                err.with_previous_ended()
            } else {
                err
            });
        }
        if replaces(&current) {
            return self.refresh(&current, one_at_a_time).await;
        }
        // A cache's first fetch of a token past half its life: refresh it now, or it may die
        // before the cache's next deadline or request. If the refresh fails for a while, the
        // token still serves: the cache publishes it and backs off as after any failed renewal.
        match self.refresh(&current, one_at_a_time).await {
            Err(err) if !matches!(err.kind(), ErrorKind::ReauthorizationRequired) => {
                Err(err.with_fallback(current))
            }
            refreshed => refreshed,
        }
    }

    fn base_url(&self) -> Option<&BaseUrl> {
        self.0.base_url.as_ref()
    }

    fn name(&self) -> &'static str {
        "auth_code"
    }
}

impl fmt::Debug for AuthCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCode")
            .field("flow", &self.0.flow)
            .field("credential", &*lock(&self.0.current))
            .field("store", &*lock(&self.0.store))
            .field("store_error", &*lock(&self.0.store_error))
            .finish()
    }
}

/// A token answer: `{token, tokenType, accountKey, userKey, username, email, locale, roles,
/// groups}` (Infobip's Exchange guide), or with `token_type` and `expires_in` as Infobip's demo
/// app reads them.
///
/// The account fields only say who approved (the guide marks `roles` and `groups` optional):
/// one of another shape is dropped, as a missing one is, rather than losing the token its
/// single-use code was traded for. A number where text or an id belongs keeps its digits.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenAnswer {
    token: String,
    /// The guide's spelling. Apart from OAuth's, not an alias: an answer may carry both.
    token_type: Option<String>,
    #[serde(rename = "token_type")]
    oauth_token_type: Option<String>,
    #[serde(
        rename = "expires_in",
        default,
        deserialize_with = "crate::transport::any_number"
    )]
    expires_in: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "lenient_text")]
    account_key: String,
    #[serde(default, deserialize_with = "lenient_text")]
    user_key: String,
    #[serde(default, deserialize_with = "lenient_text")]
    username: String,
    #[serde(default, deserialize_with = "lenient_text")]
    email: String,
    #[serde(default, deserialize_with = "lenient_text")]
    locale: String,
    #[serde(default, deserialize_with = "lenient_named")]
    roles: Vec<Named>,
    #[serde(default, deserialize_with = "lenient_named")]
    groups: Vec<Named>,
}

impl TokenAnswer {
    /// The account fields, taken out.
    fn take_account(&mut self) -> Account {
        Account {
            account_key: std::mem::take(&mut self.account_key),
            user_key: std::mem::take(&mut self.user_key),
            username: std::mem::take(&mut self.username),
            email: std::mem::take(&mut self.email),
            locale: std::mem::take(&mut self.locale),
            roles: std::mem::take(&mut self.roles),
            groups: std::mem::take(&mut self.groups),
        }
    }
}

/// Any JSON value; `null` for one serde_json cannot hold (a number past `f64`).
fn any_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    let raw = Box::<RawValue>::deserialize(deserializer)?;
    Ok(serde_json::from_str(raw.get()).unwrap_or_default())
}

/// Text, or a number's digits; empty for anything else.
fn text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        Value::Number(number) => number.to_string(),
        _ => String::new(),
    }
}

fn lenient_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    any_value(deserializer).map(text)
}

/// Roles or groups: the entries with an id (a number, or digits in a string); the others are
/// dropped, and so is a value that is no list.
fn lenient_named<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Named>, D::Error> {
    let Value::Array(entries) = any_value(deserializer)? else {
        return Ok(Vec::new());
    };
    Ok(entries
        .into_iter()
        .filter_map(|mut entry| {
            let id = match entry.get("id")? {
                Value::Number(number) => number.as_i64()?,
                Value::String(digits) => digits.trim().parse().ok()?,
                _ => return None,
            };
            let name = entry.get_mut("name").map(Value::take).map(text);
            Some(Named {
                id,
                name: name.unwrap_or_default(),
            })
        })
        .collect())
}

/// Reads a successful token answer into a credential; `previous` is the account to keep when
/// a refresh answer leaves it out.
pub(crate) fn parse_token(
    answer: &Answer,
    previous: Option<&Account>,
) -> Result<Credential, Error> {
    let malformed = |reason: &str| {
        Error::new(ErrorKind::MalformedResponse {
            reason: reason.to_owned(),
        })
    };
    let mut parsed: TokenAnswer = crate::transport::json(answer)?;
    let parsed_account = parsed.take_account();
    let token = zeroize::Zeroizing::new(parsed.token);
    let token_type = parsed
        .token_type
        .or(parsed.oauth_token_type)
        .ok_or_else(|| malformed("the answer has no tokenType"))?;
    let lifetime = parsed
        .expires_in
        .as_ref()
        .and_then(seconds)
        .unwrap_or(DEFAULT_LIFETIME);
    let account = match previous {
        Some(previous) if parsed_account == Account::default() => previous.clone(),
        _ => parsed_account,
    };
    let credential = token_credential(&token_type, &token)?;
    Ok(crate::transport::expires_after_sent(credential, answer, lifetime).with_account(account))
}

/// `expires_in` as a number or a numeric string of seconds, at most the documented minute;
/// `None` for anything else or zero. A longer lifetime is not believed: the refresh sends the
/// token itself, so a token refreshed after it died is lost for good (the user must authorize
/// the app again), while one refreshed early costs one request. A server counting in
/// milliseconds, or a proxy adding its own `expires_in`, would otherwise end the connection.
fn seconds(value: &serde_json::Value) -> Option<Duration> {
    let seconds = crate::transport::seconds(value)?;
    (seconds >= 1.0).then(|| Duration::from_secs_f64(seconds.min(DEFAULT_LIFETIME.as_secs_f64())))
}

#[cfg(test)]
mod tests;
