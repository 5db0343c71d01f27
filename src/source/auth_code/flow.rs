//! [`AuthCodeFlow`]: one Exchange app's side of the authorization-code flow, and its
//! [`Builder`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use http::uri::Scheme;
use zeroize::Zeroizing;

use super::callback::{
    AuthorizationGrant, DEFAULT_PENDING_LIFETIME, PendingAuthorization, checked_state,
};
use super::store::{SharedStore, TokenStore};
use super::{AuthCode, TOKEN_PATH, parse_token};
use crate::credential::REDACTED;
use crate::origin::{is_loopback, redacted};
use crate::source::{Transport, pkce};
use crate::trace::event;
use crate::{BaseUrl, ConfigError, Error, ErrorKind};

/// Where the user approves the app (Infobip's Exchange guide, "Authorize endpoint").
const AUTHORIZE_PATH: &str = "/exchange/1/oauth/authorize";

/// An Exchange app's side of Infobip's OAuth 2.0 authorization-code flow ([RFC 6749 §4.1]):
/// builds the authorization URL, checks the callback, exchanges the code for an [`AuthCode`]
/// token source. One per app, shared by every account that connects; clones share it.
///
/// A server-side app authenticates with its client secret; a native or single-page app, which
/// cannot keep a secret, uses PKCE ([RFC 7636]) instead. See the
/// [module docs](super) for the whole flow.
///
/// [RFC 6749 §4.1]: https://www.rfc-editor.org/rfc/rfc6749#section-4.1
/// [RFC 7636]: https://www.rfc-editor.org/rfc/rfc7636
///
/// ```
/// use infobip_auth::source::{AuthCodeFlow, Transport};
/// # let http_client = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
/// # });
/// // A native app: PKCE instead of a secret it could not keep.
/// let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
///     .pkce()
///     .redirect_uri("https://www.my-app.com/callback")
///     .scope("api_read")
///     .transport(Transport::new(http_client))
///     .build()?;
///
/// // One flow for every account that connects: each authorization gets its own state.
/// let (_, first) = flow.authorize_url()?;
/// let (_, second) = flow.clone().authorize_url()?;
/// assert_ne!(first.state(), second.state());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AuthCodeFlow(Arc<Inner>);

struct Inner {
    base: BaseUrl,
    client_id: String,
    client_secret: Option<Zeroizing<String>>,
    pkce: bool,
    redirect_uri: String,
    scope: String,
    pending_lifetime: Duration,
    transport: Transport,
}

impl AuthCodeFlow {
    /// Starts configuring the flow of the app `client_id` against `base_url` (Infobip's is
    /// `https://oneapi.infobip.com`). Set a client secret or PKCE, the redirect URI, the scope
    /// and the transport, then [`build`](Builder::build).
    ///
    /// ```
    /// use infobip_auth::source::{AuthCodeFlow, Transport};
    /// # let http_client = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # });
    /// let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    ///     .client_secret("YED8Q0KHeYgQxtjdUkR376Uxu0/zdvwAVZb3ZQ3GGZU=")
    ///     .redirect_uri("https://www.my-app.com/callback")
    ///     .scope("api_read")
    ///     .transport(Transport::new(http_client))
    ///     .build()?;
    /// assert!(!format!("{flow:?}").contains("YED8Q0"));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    pub fn builder(base_url: &str, client_id: &str) -> Builder {
        Builder {
            base_url: base_url.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: None,
            pkce: false,
            redirect_uri: None,
            scopes: Vec::new(),
            pending_lifetime: DEFAULT_PENDING_LIFETIME,
            transport: None,
        }
    }

    /// The URL to send the user to, and what to keep until the callback: a
    /// [`PendingAuthorization`] that expires after the flow's
    /// [`pending_lifetime`](Builder::pending_lifetime) (ten minutes by default).
    ///
    /// The URL is `GET /exchange/1/oauth/authorize` with `response_type=code`, `client_id`,
    /// `state`, `redirect_uri`, `scope` and, with PKCE, `code_challenge` and
    /// `code_challenge_method=S256`. The `state` holds 256 bits from the operating system's
    /// random source; the PKCE verifier is 64 characters of `A–Z a–z 0–9 - . ~` from it.
    ///
    /// # Errors
    /// Only if the operating system's random source fails.
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, Transport};
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    ///     .pkce()
    ///     .redirect_uri("https://www.my-app.com/callback")
    ///     .scope("api_read")
    ///     .transport(transport)
    ///     .build()?;
    /// let (url, pending) = flow.authorize_url()?;
    /// assert_eq!(url.path(), "/exchange/1/oauth/authorize");
    /// assert!(url.query().unwrap_or_default().contains("code_challenge="));
    /// assert!(pending.expose_verifier().is_some()); // keep `pending` for the callback
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn authorize_url(&self) -> Result<(Uri, PendingAuthorization), Error> {
        self.authorize(pkce::state()?)
    }

    /// Like [`authorize_url`](Self::authorize_url), with a `state` the caller chose: the one
    /// Infobip passes to a page it embeds (`?state=…`), which must be sent back.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an empty state, one longer than 512 bytes or one with control
    /// characters; or if the operating system's random source fails (PKCE).
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, Transport};
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// # let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    /// #     .client_secret("secret").redirect_uri("https://www.my-app.com").scope("api_read")
    /// #     .transport(transport).build()?;
    /// let (url, pending) = flow.authorize_url_with_state("WeHH_yy2irpl8UY")?;
    /// assert!(url.query().unwrap_or_default().contains("state=WeHH_yy2irpl8UY"));
    /// assert_eq!(pending.state(), "WeHH_yy2irpl8UY");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn authorize_url_with_state(
        &self,
        state: &str,
    ) -> Result<(Uri, PendingAuthorization), Error> {
        self.authorize(checked_state(state)?)
    }

    fn authorize(&self, state: Zeroizing<String>) -> Result<(Uri, PendingAuthorization), Error> {
        let inner = &self.0;
        let verifier = if inner.pkce {
            Some(pkce::verifier(pkce::VERIFIER_LEN)?)
        } else {
            None
        };
        let challenge = verifier.as_deref().map(|v| pkce::challenge(v));
        let mut query: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &inner.client_id),
            ("state", &state),
            ("redirect_uri", &inner.redirect_uri),
            ("scope", &inner.scope),
        ];
        if let Some(challenge) = &challenge {
            query.push(("code_challenge", challenge));
            query.push(("code_challenge_method", "S256"));
        }
        let query = serde_urlencoded::to_string(&query).map_err(|_| {
            Error::from(ConfigError::Invalid {
                what: "authorization URL",
                reason: "a parameter cannot be encoded",
            })
        })?;
        let endpoint = inner.base.endpoint(AUTHORIZE_PATH);
        let url = Uri::try_from(format!("{endpoint}?{query}")).map_err(|_| {
            Error::from(ConfigError::Invalid {
                what: "authorization URL",
                reason: "the parameters do not make a URL",
            })
        })?;
        let pending = PendingAuthorization::from_parts(state, verifier, inner.pending_lifetime);
        Ok((url, pending))
    }

    /// Checks the callback Infobip redirected the user to (`redirect_uri?code=…&state=…`),
    /// before any network call. `callback` is the whole URL, its path and query, or the query
    /// alone.
    ///
    /// `pending` is used up whatever the outcome, so one authorization yields at most one
    /// grant: after an error, send the user through [`authorize_url`](Self::authorize_url)
    /// again.
    ///
    /// # Errors
    /// - [`ErrorKind::InvalidCallback`] when the `state` differs from `pending`'s (compared in
    ///   constant time) or is missing, the code is missing or not 16 hexadecimal characters, a
    ///   parameter appears twice, or `pending` lacks the PKCE verifier this flow needs;
    /// - [`ErrorKind::AuthorizationExpired`] when the state matches but `pending` has expired;
    /// - [`ErrorKind::AuthorizationDenied`] when the callback carries `error=…` (OAuth 2.0's
    ///   way to report a refusal) with this flow's `state`. Infobip's guide sends a user who
    ///   cancels back to the referring page instead, so a cancelled authorization may simply
    ///   never reach the callback: let pending ones expire.
    ///
    /// ```
    /// # use infobip_auth::{ErrorKind, source::{AuthCodeFlow, PendingAuthorization, Transport}};
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// # let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    /// #     .client_secret("secret").redirect_uri("https://www.my-app.com").scope("api_read")
    /// #     .transport(transport).build()?;
    /// let pending = PendingAuthorization::new("xyz", None)?;
    /// assert!(flow.callback(pending, "/?code=822762fa24e04975&state=xyz").is_ok());
    /// // `pending` has moved: a second exchange of the same authorization does not compile.
    ///
    /// let pending = PendingAuthorization::new("xyz", None)?;
    /// let forged = flow.callback(pending, "/?code=822762fa24e04975&state=abc").unwrap_err();
    /// assert!(matches!(forged.kind(), ErrorKind::InvalidCallback { .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn callback(
        &self,
        pending: PendingAuthorization,
        callback: &str,
    ) -> Result<AuthorizationGrant, Error> {
        let checked = pending.check(callback).and_then(|grant| {
            if self.0.pkce && grant.verifier().is_none() {
                return Err(Error::new(ErrorKind::InvalidCallback {
                    reason: "the pending authorization has no PKCE verifier, which this flow needs"
                        .into(),
                }));
            }
            Ok(grant)
        });
        #[cfg(feature = "tracing")]
        if let Err(error) = &checked {
            event!(
                debug,
                error = crate::trace::with_causes(error),
                "authorization callback refused before any request"
            );
        }
        checked
    }

    /// Exchanges the code for a token: `POST /exchange/1/oauth/token` with the form
    /// `client_id`, `client_secret` or `code_verifier`, `code`, `redirect_uri` and
    /// `grant_type=authorization_code`. The token source it returns carries the account and
    /// user details ([`AuthCode::account`]).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidCredentials`] for a wrong client secret (`401`), and for a `400`
    /// whose OAuth error is `invalid_grant` (a reused, expired or unknown code, a wrong
    /// verifier or another redirect URI), `invalid_client` or `unauthorized_client`;
    /// [`ErrorKind::TokenEndpoint`] with Infobip's reason for any other refusal;
    /// [`ErrorKind::MalformedResponse`] for an answer without a usable token; transport
    /// failures and timeouts.
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, PendingAuthorization, Transport};
    /// # use http::{Request, Response};
    /// # use http_body_util::Full;
    /// # use bytes::Bytes;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // Stands in for Infobip's token endpoint.
    /// let http_client = tower::service_fn(|_: Request<Full<Bytes>>| async {
    ///     let body = r#"{"token":"3d7908aa-7b8c-4c5a-94bf-5cdeef18947b","tokenType":"IBSSO",
    ///         "accountKey":"8F0792F86035A9F4290821F1EE6BC06A","username":"developeruser"}"#;
    ///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
    /// });
    /// let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    ///     .client_secret("secret").redirect_uri("https://www.my-app.com").scope("api_read")
    ///     .transport(Transport::new(http_client)).build()?;
    /// let pending = PendingAuthorization::new("xyz", None)?;
    /// let grant = flow.callback(pending, "/?code=822762fa24e04975&state=xyz")?;
    /// let source = flow.exchange(grant).await?;
    /// assert_eq!(source.account().username, "developeruser");
    /// # Ok(()) }
    /// ```
    pub async fn exchange(&self, grant: AuthorizationGrant) -> Result<AuthCode, Error> {
        let inner = &self.0;
        let mut form = self.client_fields();
        if let Some(verifier) = grant.verifier() {
            form.push(("code_verifier", verifier));
        }
        form.extend([
            ("code", grant.expose_code()),
            ("redirect_uri", &inner.redirect_uri),
            ("grant_type", "authorization_code"),
        ]);
        let answer = inner
            .transport
            .post_form(self.token_endpoint(), &form)
            .await?;
        let credential = parse_token(&answer, None)?;
        event!(
            debug,
            account_key = credential.account().map(|a| a.account_key.as_str()),
            "authorization code exchanged for an Exchange token"
        );
        Ok(AuthCode::new(self.clone(), credential, None))
    }

    /// Resumes the connection whose token `store` holds, after a restart within the token's
    /// lifetime. The source keeps saving to `store`.
    ///
    /// # Errors
    /// [`ErrorKind::ReauthorizationRequired`] when the store holds no token or an expired one;
    /// [`ErrorKind::Store`] when the store fails to load (its error is the source).
    ///
    /// ```
    /// # use infobip_auth::{Account, ErrorKind, source::{AuthCodeFlow, MemoryStore, StoredToken, TokenStore, Transport}};
    /// # use std::time::{Duration, SystemTime};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// # let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    /// #     .client_secret("secret").redirect_uri("https://www.my-app.com").scope("api_read")
    /// #     .transport(transport).build()?;
    /// let store = MemoryStore::new();
    /// let err = flow.resume(store.clone()).await.unwrap_err();
    /// assert!(matches!(err.kind(), ErrorKind::ReauthorizationRequired)); // nothing saved yet
    ///
    /// let expires = SystemTime::now() + Duration::from_secs(50);
    /// store.save(&StoredToken::new("IBSSO", "3d7908aa", expires, Account::default())).await?;
    /// let source = flow.resume(store).await?;
    /// assert_eq!(source.credential().header(), "IBSSO 3d7908aa");
    /// # Ok(()) }
    /// ```
    pub async fn resume(&self, store: impl TokenStore) -> Result<AuthCode, Error> {
        let store = SharedStore::new(store);
        let stored = store
            .load()
            .await?
            .ok_or_else(|| Error::new(ErrorKind::ReauthorizationRequired))?;
        let credential = stored.to_credential()?;
        Ok(AuthCode::new(self.clone(), credential, Some(store)))
    }

    /// The app's client id.
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, Transport};
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// # let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    /// #     .client_secret("secret").redirect_uri("https://www.my-app.com").scope("api_read")
    /// #     .transport(transport).build()?;
    /// assert_eq!(flow.client_id(), "d5e47f02d627e390d615c2e93f168eb6");
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// The redirect URI sent with the authorization request and the code exchange.
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, Transport};
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// # let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    /// #     .client_secret("secret").redirect_uri("https://www.my-app.com").scope("api_read")
    /// #     .transport(transport).build()?;
    /// assert_eq!(flow.redirect_uri(), "https://www.my-app.com");
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn redirect_uri(&self) -> &str {
        &self.0.redirect_uri
    }

    /// The base URL the flow talks to.
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, Transport};
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// # let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    /// #     .client_secret("secret").redirect_uri("https://www.my-app.com").scope("api_read")
    /// #     .transport(transport).build()?;
    /// assert_eq!(flow.base_url().to_string(), "https://oneapi.infobip.com");
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn base_url(&self) -> &BaseUrl {
        &self.0.base
    }

    pub(crate) fn token_endpoint(&self) -> Uri {
        self.0.base.endpoint(TOKEN_PATH)
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.0.transport
    }

    /// The client authentication an exchange or a refresh carries: the client id, and the
    /// secret if any.
    pub(crate) fn client_fields(&self) -> Vec<(&str, &str)> {
        let mut fields = vec![("client_id", self.0.client_id.as_str())];
        if let Some(secret) = &self.0.client_secret {
            fields.push(("client_secret", secret.as_str()));
        }
        fields
    }
}

impl fmt::Debug for AuthCodeFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.0;
        f.debug_struct("AuthCodeFlow")
            .field("base_url", &inner.base)
            .field("client_id", &inner.client_id)
            .field(
                "client_secret",
                &inner.client_secret.as_ref().map(|_| REDACTED),
            )
            .field("pkce", &inner.pkce)
            .field("redirect_uri", &redacted(&inner.redirect_uri))
            .field("scope", &inner.scope)
            .field("pending_lifetime", &inner.pending_lifetime)
            .field("transport", &inner.transport)
            .finish()
    }
}

/// Configures an [`AuthCodeFlow`]; made by [`AuthCodeFlow::builder`].
///
/// ```
/// use infobip_auth::{ConfigError, source::AuthCodeFlow};
/// let built = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
///     .pkce()
///     .redirect_uri("http://www.my-app.com/callback")
///     .scope("api_read")
///     .build();
/// // The code travels in the redirect: plain HTTP is refused unless the host is loopback.
/// assert!(matches!(built, Err(ConfigError::InsecureUrl { .. })));
/// ```
#[must_use]
pub struct Builder {
    base_url: String,
    client_id: String,
    client_secret: Option<Zeroizing<String>>,
    pkce: bool,
    redirect_uri: Option<String>,
    scopes: Vec<String>,
    pending_lifetime: Duration,
    transport: Option<Transport>,
}

/// The longest a [`PendingAuthorization`] may wait for its callback.
const MAX_PENDING_LIFETIME: Duration = Duration::from_secs(24 * 3600);

impl Builder {
    /// The app's client secret, for a server-side (confidential) app: sent with the code
    /// exchange and with each refresh.
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, Transport};
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    ///     .client_secret("YED8Q0KHeYgQxtjdUkR376Uxu0/zdvwAVZb3ZQ3GGZU=")
    /// #   .redirect_uri("https://www.my-app.com/callback").scope("api_read").transport(transport)
    ///     .build()?;
    /// // The secret goes to the token endpoint only, never into the URL the user's browser opens.
    /// let (url, _pending) = flow.authorize_url()?;
    /// assert!(!url.to_string().contains("YED8Q0KH"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn client_secret(mut self, secret: &str) -> Self {
        self.client_secret = Some(Zeroizing::new(secret.to_owned()));
        self
    }

    /// Uses PKCE with S256 ([RFC 7636]), for a public app (native or single-page) that cannot
    /// keep a secret: each authorization gets a fresh verifier, and its challenge goes with the
    /// authorization request. May be combined with a client secret.
    ///
    /// [RFC 7636]: https://www.rfc-editor.org/rfc/rfc7636
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, Transport};
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    ///     .pkce()
    /// #   .redirect_uri("https://www.my-app.com/callback").scope("api_read").transport(transport)
    ///     .build()?;
    /// let (url, pending) = flow.authorize_url()?;
    /// assert!(url.query().unwrap_or_default().contains("&code_challenge_method=S256"));
    /// assert!(pending.expose_verifier().is_some()); // sent with the code exchange
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pkce(mut self) -> Self {
        self.pkce = true;
        self
    }

    /// The redirect URI registered for the app, where Infobip sends the user back with the
    /// code. HTTPS, plain HTTP on a loopback host, or a native app's own scheme written
    /// `scheme://…` (the `scheme:/path` form is refused: it does not parse as a URI here).
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, Transport};
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    ///     .redirect_uri("https://www.my-app.com/callback")
    /// #   .pkce().scope("api_read").transport(transport)
    ///     .build()?;
    /// let (url, _pending) = flow.authorize_url()?;
    /// let query = url.query().unwrap_or_default();
    /// assert!(query.contains("&redirect_uri=https%3A%2F%2Fwww.my-app.com%2Fcallback"));
    /// // A plain-HTTP redirect URI is refused unless its host is loopback.
    /// let insecure = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    ///     .redirect_uri("http://www.my-app.com/callback")
    /// #   .pkce().scope("api_read")
    ///     .build();
    /// assert!(insecure.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn redirect_uri(mut self, uri: &str) -> Self {
        self.redirect_uri = Some(uri.to_owned());
        self
    }

    /// Adds a scope to request; several are sent separated by spaces.
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, Transport};
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    ///     .scope("api_read")
    ///     .scope("api_write")
    /// #   .pkce().redirect_uri("https://www.my-app.com/callback").transport(transport)
    ///     .build()?;
    /// let (url, _pending) = flow.authorize_url()?;
    /// assert!(url.query().unwrap_or_default().contains("&scope=api_read+api_write"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scope(mut self, scope: &str) -> Self {
        self.scopes.push(scope.to_owned());
        self
    }

    /// How long an authorization made by [`AuthCodeFlow::authorize_url`] waits for its
    /// callback: the time the user may take to log in to Infobip and approve. Ten minutes by
    /// default ([`DEFAULT_PENDING_LIFETIME`]); at most 24 hours. A later callback is
    /// [`ErrorKind::AuthorizationExpired`]. Counted in wall-clock time (`SystemTime`), as the
    /// authorization may be kept outside the process, so a paused tokio clock does not move
    /// it: to test a late callback, use [`PendingAuthorization::with_expiry`].
    ///
    /// ```
    /// # use infobip_auth::source::{AuthCodeFlow, Transport};
    /// # use std::time::{Duration, SystemTime};
    /// # let transport = Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// let flow = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    ///     .client_secret("secret").redirect_uri("https://www.my-app.com").scope("api_read")
    ///     .pending_lifetime(Duration::from_secs(120))
    ///     .transport(transport)
    ///     .build()?;
    /// let (_, pending) = flow.authorize_url()?;
    /// assert!(pending.expires_at() <= SystemTime::now() + Duration::from_secs(120));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pending_lifetime(mut self, lifetime: Duration) -> Self {
        self.pending_lifetime = lifetime;
        self
    }

    /// The HTTP client that reaches the token endpoint.
    ///
    /// ```
    /// # use infobip_auth::{ConfigError, source::{AuthCodeFlow, Transport}};
    /// use hyper_util::client::legacy::Client;
    /// use hyper_util::rt::TokioExecutor;
    /// let builder = || {
    ///     AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    /// #       .pkce().redirect_uri("https://www.my-app.com/callback").scope("api_read")
    /// };
    /// let client = Client::builder(TokioExecutor::new()).build_http::<http_body_util::Full<bytes::Bytes>>();
    /// assert!(builder().transport(Transport::new(client)).build().is_ok());
    /// // Without one, the flow could not reach the token endpoint.
    /// let err = builder().build().err();
    /// assert!(matches!(err, Some(ConfigError::Invalid { what: "transport", .. })));
    /// ```
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Checks the configuration and makes the flow.
    ///
    /// # Errors
    /// - [`ConfigError::InvalidUrl`] / [`ConfigError::InsecureUrl`] for the base URL (see
    ///   [`BaseUrl::new`]) or a redirect URI that is not absolute, has a fragment, or is plain
    ///   HTTP to a host that is not loopback;
    /// - [`ConfigError::Empty`] for a missing client id, redirect URI, scope or an empty
    ///   secret;
    /// - [`ConfigError::Invalid`] for a client id with a space, a control character or
    ///   non-ASCII text, and when neither a client secret nor PKCE is set, no transport is, or
    ///   the pending lifetime is zero or longer than 24 hours.
    ///
    /// ```
    /// # use infobip_auth::{ConfigError, source::AuthCodeFlow};
    /// let err = AuthCodeFlow::builder("https://oneapi.infobip.com", "d5e47f02d627e390d615c2e93f168eb6")
    ///     .redirect_uri("https://www.my-app.com")
    ///     .scope("api_read")
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(err, ConfigError::Invalid { what: "client authentication", .. }));
    /// ```
    pub fn build(self) -> Result<AuthCodeFlow, ConfigError> {
        let base = BaseUrl::new(&self.base_url)?;
        if self.client_id.is_empty() {
            return Err(ConfigError::Empty { what: "client id" });
        }
        // Sent percent-encoded, so any text would travel; this catches a pasted id's stray
        // space or line break before Infobip refuses it.
        if !self.client_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::Invalid {
                what: "client id",
                reason: "it holds a space, a control character or non-ASCII text (Exchange client ids are 32 hexadecimal digits)",
            });
        }
        if self.client_secret.as_ref().is_some_and(|s| s.is_empty()) {
            return Err(ConfigError::Empty {
                what: "client secret",
            });
        }
        if self.client_secret.is_none() && !self.pkce {
            return Err(ConfigError::Invalid {
                what: "client authentication",
                reason: "set a client secret (server-side app) or PKCE (native or single-page app)",
            });
        }
        let redirect_uri =
            self.redirect_uri
                .filter(|uri| !uri.is_empty())
                .ok_or(ConfigError::Empty {
                    what: "redirect URI",
                })?;
        check_redirect_uri(&redirect_uri)?;
        let scopes: Vec<&str> = self
            .scopes
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if scopes.is_empty() {
            return Err(ConfigError::Empty { what: "scope" });
        }
        let scope = scopes.join(" ");
        if self.pending_lifetime.is_zero() || self.pending_lifetime > MAX_PENDING_LIFETIME {
            return Err(ConfigError::Invalid {
                what: "pending lifetime",
                reason: "it must be more than zero and at most 24 hours",
            });
        }
        let transport = crate::source::required(self.transport)?;
        Ok(AuthCodeFlow(Arc::new(Inner {
            base,
            client_id: self.client_id,
            client_secret: self.client_secret,
            pkce: self.pkce,
            redirect_uri,
            scope,
            pending_lifetime: self.pending_lifetime,
            transport,
        })))
    }
}

/// A redirect URI must be absolute, without a fragment (RFC 6749 §3.1.2), and not plain HTTP
/// to a remote host: the code travels in it.
fn check_redirect_uri(uri: &str) -> Result<(), ConfigError> {
    let invalid = |reason| ConfigError::InvalidUrl {
        url: redacted(uri),
        reason,
    };
    if uri.contains('#') {
        return Err(invalid("a redirect URI has no fragment"));
    }
    let parsed: Uri = uri.parse().map_err(|_| invalid("not a URL"))?;
    let scheme = parsed
        .scheme()
        .ok_or_else(|| invalid("a redirect URI must be absolute"))?;
    if *scheme == Scheme::HTTP {
        let host = parsed.host().unwrap_or_default();
        if !is_loopback(host) {
            return Err(ConfigError::InsecureUrl {
                origin: format!("http://{host}"),
            });
        }
    } else if *scheme == Scheme::HTTPS && parsed.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    Ok(())
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("base_url", &redacted(&self.base_url))
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| REDACTED),
            )
            .field("pkce", &self.pkce)
            .field("redirect_uri", &self.redirect_uri.as_deref().map(redacted))
            .field("scopes", &self.scopes)
            .field("pending_lifetime", &self.pending_lifetime)
            .field("transport", &self.transport)
            .finish()
    }
}
