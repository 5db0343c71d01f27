//! [`MockConfig`] and [`ExchangeApp`]: who the mock server knows and how long things live.

use std::fmt;
use std::time::Duration;

use http::Method;

use super::throttle::Rate;
use super::{
    DEMO_API_KEY, DEMO_APP_CLIENT_ID, DEMO_APP_CLIENT_SECRET, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET,
    DEMO_PASSWORD, DEMO_REDIRECT_URI, DEMO_SCOPES, DEMO_USERNAME,
};

/// Printed instead of a secret.
pub(crate) const REDACTED: &str = "[redacted]";

/// What a [`MockServer`](super::MockServer) accepts: users, API keys, OAuth clients, Exchange
/// apps, lifetimes and the table of protected operations.
///
/// [`MockConfig::new`] knows nobody; [`MockConfig::demo`] (also `MockConfig::default()`, which
/// [`MockServer::start`](super::MockServer::start) uses) knows one credential of each kind, built
/// from the `DEMO_*` constants. Scopes are written as Infobip writes them, separated by commas
/// or spaces: `"sms:manage, inbound-message:read"`.
///
/// ```
/// use std::time::Duration;
/// use infobip_auth::mock::MockConfig;
///
/// let config = MockConfig::new()
///     .api_key("my-key", "sms:manage")
///     .user("alice", "s3cret", "message:send")
///     .session_idle_timeout(Duration::from_secs(300));
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
#[must_use]
pub struct MockConfig {
    pub(crate) users: Vec<UserConfig>,
    pub(crate) api_keys: Vec<ApiKeyConfig>,
    pub(crate) oauth_clients: Vec<ClientConfig>,
    pub(crate) exchange_apps: Vec<ExchangeApp>,
    pub(crate) session_idle_timeout: Duration,
    pub(crate) session_max_lifetime: Option<Duration>,
    pub(crate) oauth_token_lifetime: Duration,
    pub(crate) expires_in_as_string: bool,
    pub(crate) exchange_token_lifetime: Duration,
    pub(crate) code_lifetime: Duration,
    pub(crate) throttle: Option<Rate>,
    pub(crate) operations: Vec<OperationConfig>,
    pub(crate) all_operations: bool,
}

/// A user, for Basic credentials and sessions.
#[derive(Clone)]
pub(crate) struct UserConfig {
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) scopes: String,
}

/// An API key, optionally with an expiry counted from the server's start.
#[derive(Clone)]
pub(crate) struct ApiKeyConfig {
    pub(crate) key: String,
    pub(crate) scopes: String,
    pub(crate) valid_for: Option<Duration>,
}

/// An OAuth 2.0 client for the client-credentials grant.
#[derive(Clone)]
pub(crate) struct ClientConfig {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) scopes: String,
}

/// A protected operation added by [`MockConfig::operation`].
#[derive(Clone, Debug)]
pub(crate) struct OperationConfig {
    pub(crate) method: Method,
    pub(crate) path_template: String,
    pub(crate) scopes: String,
    pub(crate) schemes: String,
}

impl MockConfig {
    /// A configuration that knows no user, key, client or app, with Infobip's default
    /// lifetimes, its documented request rate for the session and OAuth endpoints (see
    /// [`MockConfig::throttle`]) and the default table of protected operations (see the
    /// [module docs](super#protected-operations)).
    ///
    /// ```
    /// use infobip_auth::mock::{MockConfig, MockServer, DEMO_API_KEY};
    /// use http::StatusCode;
    /// # async fn get(url: String, authorization: &str) -> Result<StatusCode, infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let request = http::Request::get(url).header("authorization", authorization).body(Default::default())?;
    /// #     Ok(client.request(request).await?.status())
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // `get(url, authorization)`: the status of a GET sent with that `Authorization` header.
    /// let server = MockServer::start_with(MockConfig::new().api_key("my-key", "sms:manage")).await?;
    /// assert_eq!(get(server.url("/sms/1/inbox/reports"), "App my-key").await?, StatusCode::OK);
    /// // Only what was added is known: not the demo key.
    /// let demo = format!("App {DEMO_API_KEY}");
    /// assert_eq!(get(server.url("/sms/1/inbox/reports"), &demo).await?, StatusCode::UNAUTHORIZED);
    /// # Ok(()) }
    /// ```
    pub fn new() -> Self {
        Self {
            users: Vec::new(),
            api_keys: Vec::new(),
            oauth_clients: Vec::new(),
            exchange_apps: Vec::new(),
            session_idle_timeout: Duration::from_secs(60 * 60),
            session_max_lifetime: None,
            oauth_token_lifetime: Duration::from_secs(3600),
            expires_in_as_string: false,
            exchange_token_lifetime: Duration::from_secs(60),
            code_lifetime: Duration::from_secs(60),
            throttle: Some(Rate::DOCUMENTED),
            operations: Vec::new(),
            all_operations: false,
        }
    }

    /// One credential of each kind, from the `DEMO_*` constants, each holding
    /// [`DEMO_SCOPES`]: every scope of the two SMS endpoints and none of
    /// the API-key management ones, so a `403` is easy to provoke.
    ///
    /// ```
    /// use infobip_auth::mock::{MockConfig, MockServer, DEMO_API_KEY};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = MockServer::start_with(MockConfig::demo()).await?;
    /// assert!(server.base_url().starts_with("http://127.0.0.1:"));
    /// # let _ = DEMO_API_KEY;
    /// # Ok(())
    /// # }
    /// ```
    pub fn demo() -> Self {
        Self::new()
            .user(DEMO_USERNAME, DEMO_PASSWORD, DEMO_SCOPES)
            .api_key(DEMO_API_KEY, DEMO_SCOPES)
            .oauth_client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_SCOPES)
            .exchange_app(
                ExchangeApp::new(
                    DEMO_APP_CLIENT_ID,
                    DEMO_APP_CLIENT_SECRET,
                    DEMO_REDIRECT_URI,
                    DEMO_USERNAME,
                )
                .role(1393, "Designer")
                .group(54004, "Developers"),
            )
    }

    /// Adds a user who can authenticate with `Basic` credentials and create IBSSO sessions;
    /// Exchange apps approve on behalf of a user.
    ///
    /// ```
    /// use infobip_auth::mock::{MockConfig, MockServer};
    /// use http::StatusCode;
    /// # async fn get(url: String, authorization: &str) -> Result<StatusCode, infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let request = http::Request::get(url).header("authorization", authorization).body(Default::default())?;
    /// #     Ok(client.request(request).await?.status())
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // `get(url, authorization)`: the status of a GET sent with that `Authorization` header.
    /// let server = MockServer::start_with(MockConfig::new().user("alice", "s3cret", "sms:manage")).await?;
    /// let alice = "Basic YWxpY2U6czNjcmV0"; // alice:s3cret
    /// assert_eq!(get(server.url("/sms/1/inbox/reports"), alice).await?, StatusCode::OK);
    /// // `sms:manage` does not manage API keys.
    /// assert_eq!(get(server.url("/settings/2/api-keys"), alice).await?, StatusCode::FORBIDDEN);
    /// # Ok(()) }
    /// ```
    pub fn user(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
        scopes: &str,
    ) -> Self {
        self.users.push(UserConfig {
            username: username.into(),
            password: password.into(),
            scopes: scopes.to_owned(),
        });
        self
    }

    /// Adds an API key that never expires (until revoked with
    /// [`MockServer::revoke_api_key`](super::MockServer::revoke_api_key)).
    ///
    /// ```
    /// use infobip_auth::mock::{MockConfig, MockServer};
    /// use http::StatusCode;
    /// # async fn get(url: String, authorization: &str) -> Result<StatusCode, infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let request = http::Request::get(url).header("authorization", authorization).body(Default::default())?;
    /// #     Ok(client.request(request).await?.status())
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // `get(url, authorization)`: the status of a GET sent with that `Authorization` header.
    /// let config = MockConfig::new()
    ///     .api_key("reader", "inbound-message:read")
    ///     .api_key("sender", "message:send");
    /// let server = MockServer::start_with(config).await?;
    /// assert_eq!(get(server.url("/sms/1/inbox/reports"), "App reader").await?, StatusCode::OK);
    /// assert_eq!(get(server.url("/sms/1/inbox/reports"), "App sender").await?, StatusCode::FORBIDDEN);
    /// # Ok(()) }
    /// ```
    pub fn api_key(mut self, key: impl Into<String>, scopes: &str) -> Self {
        self.api_keys.push(ApiKeyConfig {
            key: key.into(),
            scopes: scopes.to_owned(),
            valid_for: None,
        });
        self
    }

    /// Adds an API key that expires `valid_for` after the server starts, as Infobip keys
    /// expire at their `validTo` date.
    ///
    /// ```
    /// use std::time::Duration;
    /// use infobip_auth::mock::{MockConfig, MockServer};
    /// use http::StatusCode;
    /// # async fn get(url: String, authorization: &str) -> Result<StatusCode, infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let request = http::Request::get(url).header("authorization", authorization).body(Default::default())?;
    /// #     Ok(client.request(request).await?.status())
    /// # }
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // `get(url, authorization)`: the status of a GET sent with that `Authorization` header.
    /// let config = MockConfig::new().api_key_expiring("k", "sms:manage", Duration::from_secs(30));
    /// let server = MockServer::start_with(config).await?;
    /// assert_eq!(get(server.url("/sms/1/inbox/reports"), "App k").await?, StatusCode::OK);
    /// tokio::time::sleep(Duration::from_secs(31)).await;
    /// assert_eq!(get(server.url("/sms/1/inbox/reports"), "App k").await?, StatusCode::UNAUTHORIZED);
    /// # Ok(()) }
    /// ```
    pub fn api_key_expiring(
        mut self,
        key: impl Into<String>,
        scopes: &str,
        valid_for: Duration,
    ) -> Self {
        self.api_keys.push(ApiKeyConfig {
            key: key.into(),
            scopes: scopes.to_owned(),
            valid_for: Some(valid_for),
        });
        self
    }

    /// Adds an OAuth 2.0 client for `POST /auth/1/oauth2/token` (client-credentials grant);
    /// its access tokens carry `scopes`.
    ///
    /// ```
    /// use infobip_auth::mock::{MockConfig, MockServer};
    /// use infobip_auth::source::{ClientCredentials, TokenSource};
    /// use http::StatusCode;
    /// # async fn get(url: String, authorization: &str) -> Result<StatusCode, infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let request = http::Request::get(url).header("authorization", authorization).body(Default::default())?;
    /// #     Ok(client.request(request).await?.status())
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// // `get(url, authorization)`: the status of a GET sent with that `Authorization` header.
    /// let server = MockServer::start_with(MockConfig::new().oauth_client("id", "secret", "sms:manage")).await?;
    /// let oauth = ClientCredentials::builder(server.base_url(), "id", "secret")
    ///     .transport(transport())
    ///     .build()?;
    /// let token = oauth.fetch(None).await?;
    /// assert_eq!(get(server.url("/sms/1/inbox/reports"), token.header().to_str()?).await?, StatusCode::OK);
    /// # Ok(()) }
    /// ```
    pub fn oauth_client(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        scopes: &str,
    ) -> Self {
        self.oauth_clients.push(ClientConfig {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scopes: scopes.to_owned(),
        });
        self
    }

    /// Adds an Exchange app for the authorization-code flow. Its tokens carry the scopes of the
    /// app's user, who must also be added with [`MockConfig::user`].
    ///
    /// ```
    /// use infobip_auth::mock::{ExchangeApp, MockConfig, MockServer};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// let app = || ExchangeApp::new("0123456789abcdef0123456789abcdef", "secret", "https://app.example/cb", "alice");
    /// // The user who approves for the app must be there too.
    /// assert!(MockServer::start_with(MockConfig::new().exchange_app(app())).await.is_err());
    /// let config = MockConfig::new().user("alice", "pw", "sms:manage").exchange_app(app());
    /// assert!(MockServer::start_with(config).await.is_ok());
    /// # Ok(()) }
    /// ```
    pub fn exchange_app(mut self, app: ExchangeApp) -> Self {
        self.exchange_apps.push(app);
        self
    }

    /// How long an IBSSO session lives without being used (60 minutes by default); every
    /// authenticated use extends it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use infobip_auth::mock::{MockConfig, MockServer, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::{Session, TokenSource};
    /// use tokio::time::sleep;
    /// use http::StatusCode;
    /// # async fn get(url: String, authorization: &str) -> Result<StatusCode, infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let request = http::Request::get(url).header("authorization", authorization).body(Default::default())?;
    /// #     Ok(client.request(request).await?.status())
    /// # }
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// // `get(url, authorization)`: the status of a GET sent with that `Authorization` header.
    /// let config = MockConfig::demo().session_idle_timeout(Duration::from_secs(5 * 60));
    /// let server = MockServer::start_with(config).await?;
    /// let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    ///     .transport(transport())
    ///     .build()?;
    /// let token = session.fetch(None).await?;
    /// let token = token.header().to_str()?;
    /// let inbox = || server.url("/sms/1/inbox/reports");
    /// sleep(Duration::from_secs(299)).await;
    /// assert_eq!(get(inbox(), token).await?, StatusCode::OK); // and extended
    /// sleep(Duration::from_secs(301)).await;
    /// assert_eq!(get(inbox(), token).await?, StatusCode::UNAUTHORIZED);
    /// # Ok(()) }
    /// ```
    pub fn session_idle_timeout(mut self, idle: Duration) -> Self {
        self.session_idle_timeout = idle;
        self
    }

    /// Ends every IBSSO session this long after it was created, however busy (none by
    /// default: sessions end only when idle). Infobip's pages say both that sessions "expire
    /// after 60 minutes" and that they end after a period of inactivity; this plays the first,
    /// which `Session`'s `max_lifetime` renews ahead of.
    ///
    /// ```
    /// use std::time::Duration;
    /// use infobip_auth::mock::{MockConfig, MockServer, DEMO_PASSWORD, DEMO_USERNAME};
    /// use infobip_auth::source::{Session, TokenSource};
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let config = MockConfig::demo().session_max_lifetime(Duration::from_secs(60 * 60));
    /// let server = MockServer::start_with(config).await?;
    /// let session = Session::builder(server.base_url(), DEMO_USERNAME, DEMO_PASSWORD)
    ///     .transport(transport())
    ///     .build()?;
    /// let first = session.fetch(None).await?;
    /// // A login within the hour gets the live session; after it, a new one.
    /// assert_eq!(session.fetch(None).await?.header(), first.header());
    /// tokio::time::sleep(Duration::from_secs(60 * 60)).await;
    /// assert_ne!(session.fetch(None).await?.header(), first.header());
    /// # Ok(()) }
    /// ```
    pub fn session_max_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_max_lifetime = Some(lifetime);
        self
    }

    /// How long client-credentials access tokens live, announced as `expires_in` (3600 s by
    /// default; whole seconds, rounded up).
    ///
    /// ```
    /// use std::time::Duration;
    /// use infobip_auth::mock::{MockConfig, MockServer, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
    /// use infobip_auth::source::{ClientCredentials, TokenSource};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start_with(MockConfig::demo().oauth_token_lifetime(Duration::from_secs(300))).await?;
    /// let oauth = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    ///     .transport(transport())
    ///     .build()?;
    /// // Counted from when the token request was sent, so a little under 300 seconds.
    /// let lifetime = oauth.fetch(None).await?.lifetime().ok_or("no expiry")?;
    /// assert!((200..=300).contains(&lifetime.as_secs()), "{lifetime:?}");
    /// # Ok(()) }
    /// ```
    pub fn oauth_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.oauth_token_lifetime = lifetime;
        self
    }

    /// Serves `expires_in` as a JSON string (`"3600"`) instead of a number, since Infobip's own
    /// examples read it both ways.
    ///
    /// ```
    /// use http::{Request, header::CONTENT_TYPE};
    /// use http_body_util::{BodyExt, Full};
    /// use infobip_auth::mock::{MockConfig, MockServer, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #     .build_http::<Full<bytes::Bytes>>();
    /// let server = MockServer::start_with(MockConfig::demo().expires_in_as_string(true)).await?;
    /// let form = format!("grant_type=client_credentials&client_id={DEMO_CLIENT_ID}&client_secret={DEMO_CLIENT_SECRET}");
    /// let request = Request::post(server.url("/auth/1/oauth2/token"))
    ///     .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
    ///     .body(Full::from(form))?;
    /// let body = client.request(request).await?.into_body().collect().await?.to_bytes();
    /// assert!(String::from_utf8_lossy(&body).contains(r#""expires_in":"3600""#));
    /// # Ok(()) }
    /// ```
    pub fn expires_in_as_string(mut self, yes: bool) -> Self {
        self.expires_in_as_string = yes;
        self
    }

    /// How long Exchange tokens live (one minute by default, as Infobip's).
    ///
    /// ```
    /// use std::time::Duration;
    /// use infobip_auth::mock::MockConfig;
    /// use http::StatusCode;
    /// # async fn get(url: String, authorization: &str) -> Result<StatusCode, infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let request = http::Request::get(url).header("authorization", authorization).body(Default::default())?;
    /// #     Ok(client.request(request).await?.status())
    /// # }
    /// # use infobip_auth::mock::{MockServer, DEMO_APP_CLIENT_ID, DEMO_APP_CLIENT_SECRET, DEMO_REDIRECT_URI};
    /// # use infobip_auth::source::{AuthCodeFlow, PendingAuthorization, Transport};
    /// # /// Has the demo user approve the demo app: the flow, what it keeps, the callback URL.
    /// # async fn authorize(server: &MockServer) -> Result<(AuthCodeFlow, PendingAuthorization, String), infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let flow = AuthCodeFlow::builder(server.base_url(), DEMO_APP_CLIENT_ID)
    /// #         .client_secret(DEMO_APP_CLIENT_SECRET)
    /// #         .redirect_uri(DEMO_REDIRECT_URI)
    /// #         .scope("sms:message:send")
    /// #         .transport(Transport::new(client.clone()))
    /// #         .build()?;
    /// #     let (url, pending) = flow.authorize_url()?;
    /// #     let page = client.request(http::Request::get(url).body(Default::default())?).await?;
    /// #     let callback = page.headers().get(http::header::LOCATION).ok_or("no redirect")?.to_str()?.to_owned();
    /// #     Ok((flow, pending, callback))
    /// # }
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // `get(url, authorization)`: the status of a GET sent with that `Authorization` header.
    /// // `authorize(&server)` has the demo user approve the demo app, as a browser would.
    /// let server = MockServer::start_with(MockConfig::demo().exchange_token_lifetime(Duration::from_secs(600))).await?;
    /// let (flow, pending, callback) = authorize(&server).await?;
    /// let source = flow.exchange(flow.callback(pending, &callback)?).await?;
    /// let token = source.credential();
    /// // Still valid after two minutes, where Infobip's would have expired.
    /// tokio::time::sleep(Duration::from_secs(120)).await;
    /// assert_eq!(get(server.url("/sms/1/inbox/reports"), token.header().to_str()?).await?, StatusCode::OK);
    /// # Ok(()) }
    /// ```
    pub fn exchange_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.exchange_token_lifetime = lifetime;
        self
    }

    /// How long authorization codes live (one minute by default, as Infobip's).
    ///
    /// ```
    /// use std::time::Duration;
    /// use infobip_auth::mock::MockConfig;
    /// # use infobip_auth::mock::{MockServer, DEMO_APP_CLIENT_ID, DEMO_APP_CLIENT_SECRET, DEMO_REDIRECT_URI};
    /// # use infobip_auth::source::{AuthCodeFlow, PendingAuthorization, Transport};
    /// # /// Has the demo user approve the demo app: the flow, what it keeps, the callback URL.
    /// # async fn authorize(server: &MockServer) -> Result<(AuthCodeFlow, PendingAuthorization, String), infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let flow = AuthCodeFlow::builder(server.base_url(), DEMO_APP_CLIENT_ID)
    /// #         .client_secret(DEMO_APP_CLIENT_SECRET)
    /// #         .redirect_uri(DEMO_REDIRECT_URI)
    /// #         .scope("sms:message:send")
    /// #         .transport(Transport::new(client.clone()))
    /// #         .build()?;
    /// #     let (url, pending) = flow.authorize_url()?;
    /// #     let page = client.request(http::Request::get(url).body(Default::default())?).await?;
    /// #     let callback = page.headers().get(http::header::LOCATION).ok_or("no redirect")?.to_str()?.to_owned();
    /// #     Ok((flow, pending, callback))
    /// # }
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // `authorize(&server)` has the demo user approve the demo app, as a browser would.
    /// let server = MockServer::start_with(MockConfig::demo().code_lifetime(Duration::from_secs(10))).await?;
    /// let (flow, pending, callback) = authorize(&server).await?;
    /// tokio::time::sleep(Duration::from_secs(11)).await;
    /// let err = flow.exchange(flow.callback(pending, &callback)?).await.err().ok_or("exchanged")?;
    /// assert!(err.to_string().ends_with("the code has expired)"), "{err}");
    /// # Ok(()) }
    /// ```
    pub fn code_lifetime(mut self, lifetime: Duration) -> Self {
        self.code_lifetime = lifetime;
        self
    }

    /// Limits `POST /auth/1/session`, `DELETE /auth/1/session` and `POST /auth/1/oauth2/token`
    /// each to `requests` in any span of `per`, as Infobip throttles them (10 per second, the
    /// default). The limit is per endpoint, whoever calls, and counts only the requests it
    /// lets through; a request over it is answered `429` with Infobip's body
    /// `{"requestError":{"serviceException":{"messageId":"TOO_MANY_REQUESTS","text":"Too many requests"}}}`
    /// and no `Retry-After` (Infobip documents none), before any fault or latency, and is
    /// counted in [`Counters::throttled`](super::Counters::throttled).
    ///
    /// ```
    /// use std::time::Duration;
    /// use infobip_auth::mock::{MockConfig, MockServer, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
    /// use infobip_auth::source::{ClientCredentials, TokenSource};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// // One session, token or logout per second: easy to exceed in a test.
    /// let server = MockServer::start_with(MockConfig::demo().throttle(1, Duration::from_secs(1))).await?;
    /// let oauth = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    ///     .transport(transport())
    ///     .build()?;
    /// assert!(oauth.fetch(None).await.is_ok());
    /// let err = oauth.fetch(None).await.err().ok_or("not throttled")?;
    /// assert!(err.to_string().contains("429 Too Many Requests TOO_MANY_REQUESTS"), "{err}");
    /// assert_eq!(server.counters().throttled, 1);
    /// # Ok(()) }
    /// ```
    pub fn throttle(mut self, requests: u32, per: Duration) -> Self {
        self.throttle = Some(Rate { requests, per });
        self
    }

    /// Answers the session and OAuth endpoints however fast requests come (see
    /// [`MockConfig::throttle`]).
    ///
    /// ```
    /// use infobip_auth::mock::{MockConfig, MockServer, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
    /// use infobip_auth::source::{ClientCredentials, TokenSource};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start_with(MockConfig::demo().unthrottled()).await?;
    /// let oauth = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    ///     .transport(transport())
    ///     .build()?;
    /// // More than Infobip's 10 a second, all answered.
    /// for _ in 0..20 {
    ///     oauth.fetch(None).await?;
    /// }
    /// assert_eq!(server.counters().throttled, 0);
    /// # Ok(()) }
    /// ```
    pub fn unthrottled(mut self) -> Self {
        self.throttle = None;
        self
    }

    /// Adds (or replaces) a protected operation: `path_template` as the OpenAPI specification
    /// writes it (`/sms/1/reports/{id}`), the scopes that grant it (any one suffices; none
    /// means any valid credential) and the accepted schemes, named as the specification does
    /// (`Basic`, `APIKeyHeader`, `IBSSOTokenHeader`, `OAuth2`) or by their header word (`App`,
    /// `Basic`, `IBSSO`, `Bearer`; none means any). An operation with neither scopes nor
    /// schemes is public.
    ///
    /// A template the router cannot hold, or an unknown scheme, makes
    /// [`MockServer::start_with`](super::MockServer::start_with) fail.
    ///
    /// ```
    /// use http::Method;
    /// use infobip_auth::mock::{MockConfig, MockServer};
    /// use http::StatusCode;
    /// # async fn get(url: String, authorization: &str) -> Result<StatusCode, infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let request = http::Request::get(url).header("authorization", authorization).body(Default::default())?;
    /// #     Ok(client.request(request).await?.status())
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // `get(url, authorization)`: the status of a GET sent with that `Authorization` header.
    /// let config = MockConfig::new()
    ///     .api_key("k", "sms:manage")
    ///     .user("alice", "s3cret", "sms:manage")
    ///     .operation(Method::GET, "/sms/1/reports", "sms:manage", "App,Bearer");
    /// let server = MockServer::start_with(config).await?;
    /// assert_eq!(get(server.url("/sms/1/reports"), "App k").await?, StatusCode::OK);
    /// // Basic is not among the operation's schemes.
    /// assert_eq!(get(server.url("/sms/1/reports"), "Basic YWxpY2U6czNjcmV0").await?, StatusCode::UNAUTHORIZED);
    /// # Ok(()) }
    /// ```
    pub fn operation(
        mut self,
        method: Method,
        path_template: &str,
        scopes: &str,
        schemes: &str,
    ) -> Self {
        self.operations.push(OperationConfig {
            method,
            path_template: path_template.to_owned(),
            scopes: scopes.to_owned(),
            schemes: schemes.to_owned(),
        });
        self
    }

    /// Protects every one of the 943 operations of Infobip's OpenAPI specification (3.210.0)
    /// with its own scopes and schemes, on top of the default table; operations added with
    /// [`MockConfig::operation`] still take precedence.
    ///
    /// ```
    /// use infobip_auth::mock::{MockConfig, MockServer, DEMO_API_KEY};
    /// use http::StatusCode;
    /// # async fn get(url: String, authorization: &str) -> Result<StatusCode, infobip_auth::BoxError> {
    /// #     let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>();
    /// #     let request = http::Request::get(url).header("authorization", authorization).body(Default::default())?;
    /// #     Ok(client.request(request).await?.status())
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// // `get(url, authorization)`: the status of a GET sent with that `Authorization` header.
    /// let key = format!("App {DEMO_API_KEY}");
    /// // The SMS logs are not in the default table...
    /// let server = MockServer::start().await?;
    /// assert_eq!(get(server.url("/sms/1/logs"), &key).await?, StatusCode::NOT_FOUND);
    /// // ...but in the specification.
    /// let server = MockServer::start_with(MockConfig::demo().all_operations()).await?;
    /// assert_eq!(get(server.url("/sms/1/logs"), &key).await?, StatusCode::OK);
    /// # Ok(()) }
    /// ```
    pub fn all_operations(mut self) -> Self {
        self.all_operations = true;
        self
    }
}

/// The same as [`MockConfig::demo`], so that [`MockServer::start`](super::MockServer::start)
/// accepts the `DEMO_*` credentials.
impl Default for MockConfig {
    fn default() -> Self {
        Self::demo()
    }
}

impl fmt::Debug for MockConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let usernames: Vec<&str> = self.users.iter().map(|u| u.username.as_str()).collect();
        let client_ids: Vec<&str> = self
            .oauth_clients
            .iter()
            .map(|c| c.client_id.as_str())
            .collect();
        f.debug_struct("MockConfig")
            .field("users", &usernames)
            .field("api_keys", &self.api_keys.len())
            .field("oauth_clients", &client_ids)
            .field("exchange_apps", &self.exchange_apps)
            .field("session_idle_timeout", &self.session_idle_timeout)
            .field("session_max_lifetime", &self.session_max_lifetime)
            .field("oauth_token_lifetime", &self.oauth_token_lifetime)
            .field("expires_in_as_string", &self.expires_in_as_string)
            .field("exchange_token_lifetime", &self.exchange_token_lifetime)
            .field("code_lifetime", &self.code_lifetime)
            .field("throttle", &self.throttle)
            .field("operations", &self.operations)
            .field("all_operations", &self.all_operations)
            .finish()
    }
}

/// An Exchange app (Infobip's OAuth 2.0 authorization-code flow): its client id and secret, the
/// redirect URI registered for it, and the configured user who approves every authorization.
/// The token response reports that user's account details, set with the methods below.
///
/// ```
/// use infobip_auth::mock::{ExchangeApp, MockConfig, MockServer};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
/// let app = ExchangeApp::new("0123456789abcdef0123456789abcdef", "s3cr3t-value", "https://app.example/cb", "alice")
///     .account_key("00000000000000000000000000000001")
///     .email("a.smith@example.org")
///     .locale("hr-HR")
///     .role(1393, "Designer")
///     .group(54004, "Developers");
/// assert!(!format!("{app:?}").contains("s3cr3t-value"));
/// let server = MockServer::start_with(MockConfig::new().user("alice", "pw", "sms:manage").exchange_app(app)).await?;
/// # let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
/// #     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// # let flow = infobip_auth::source::AuthCodeFlow::builder(server.base_url(), "0123456789abcdef0123456789abcdef")
/// #     .client_secret("s3cr3t-value")
/// #     .redirect_uri("https://app.example/cb")
/// #     .scope("sms:manage")
/// #     .transport(infobip_auth::source::Transport::new(client.clone()))
/// #     .build()?;
/// # let (url, pending) = flow.authorize_url()?;
/// # let page = client.request(http::Request::get(url).body(Default::default())?).await?;
/// # let callback = page.headers().get(http::header::LOCATION).ok_or("no redirect")?.to_str()?;
/// // Once alice approved the app, its token response reports her account as configured...
/// let source = flow.exchange(flow.callback(pending, callback)?).await?;
/// let account = source.account();
/// assert_eq!((account.username.as_str(), account.email.as_str()), ("alice", "a.smith@example.org"));
/// assert_eq!((account.account_key.as_str(), account.locale.as_str()), ("00000000000000000000000000000001", "hr-HR"));
/// assert_eq!(account.roles.first().map(|role| role.name.as_str()), Some("Designer"));
/// assert_eq!(account.groups.first().map(|group| group.id), Some(54004));
/// // ...and what was not configured as a placeholder: 32 uppercase hex digits for the user key.
/// assert!(account.user_key.len() == 32 && account.user_key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')));
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct ExchangeApp {
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) redirect_uri: String,
    pub(crate) user: String,
    pub(crate) account_key: String,
    pub(crate) user_key: String,
    pub(crate) email: String,
    pub(crate) locale: String,
    pub(crate) roles: Vec<(u64, String)>,
    pub(crate) groups: Vec<(u64, String)>,
}

impl ExchangeApp {
    /// An app approved by `user` (the username of a user added with [`MockConfig::user`]), with
    /// placeholder account details: an account and user key of 32 uppercase hex digits,
    /// `<user>@example.com`, locale `en-US`, no roles and no groups.
    ///
    /// ```
    /// use infobip_auth::mock::ExchangeApp;
    /// let app = ExchangeApp::new("0123456789abcdef0123456789abcdef", "secret", "https://app.example/cb", "alice");
    /// # let _ = app;
    /// ```
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_uri: impl Into<String>,
        user: impl Into<String>,
    ) -> Self {
        let user = user.into();
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: redirect_uri.into(),
            account_key: "8F0792F86035A9F4290821F1EE6BC06A".to_owned(),
            user_key: "F443BCAEB8517F7159F44D0E8CFE725D".to_owned(),
            email: format!("{user}@example.com"),
            locale: "en-US".to_owned(),
            user,
            roles: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// Sets the `accountKey` the token response reports.
    ///
    /// ```
    /// # use infobip_auth::mock::ExchangeApp;
    /// let app = ExchangeApp::new("id", "secret", "https://app.example/cb", "alice")
    ///     .account_key("00000000000000000000000000000001");
    /// # let _ = app;
    /// ```
    pub fn account_key(mut self, key: impl Into<String>) -> Self {
        self.account_key = key.into();
        self
    }

    /// Sets the `userKey` the token response reports.
    ///
    /// ```
    /// # use infobip_auth::mock::ExchangeApp;
    /// let app = ExchangeApp::new("id", "secret", "https://app.example/cb", "alice")
    ///     .user_key("00000000000000000000000000000002");
    /// # let _ = app;
    /// ```
    pub fn user_key(mut self, key: impl Into<String>) -> Self {
        self.user_key = key.into();
        self
    }

    /// Sets the `email` the token response reports.
    ///
    /// ```
    /// # use infobip_auth::mock::ExchangeApp;
    /// let app = ExchangeApp::new("id", "secret", "https://app.example/cb", "alice").email("a@example.com");
    /// # let _ = app;
    /// ```
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = email.into();
        self
    }

    /// Sets the `locale` the token response reports.
    ///
    /// ```
    /// # use infobip_auth::mock::ExchangeApp;
    /// let app = ExchangeApp::new("id", "secret", "https://app.example/cb", "alice").locale("de-DE");
    /// # let _ = app;
    /// ```
    pub fn locale(mut self, locale: impl Into<String>) -> Self {
        self.locale = locale.into();
        self
    }

    /// Adds a role to the token response's `roles`.
    ///
    /// ```
    /// # use infobip_auth::mock::ExchangeApp;
    /// let app = ExchangeApp::new("id", "secret", "https://app.example/cb", "alice").role(79, "Manager");
    /// # let _ = app;
    /// ```
    pub fn role(mut self, id: u64, name: impl Into<String>) -> Self {
        self.roles.push((id, name.into()));
        self
    }

    /// Adds a group to the token response's `groups`.
    ///
    /// ```
    /// # use infobip_auth::mock::ExchangeApp;
    /// let app = ExchangeApp::new("id", "secret", "https://app.example/cb", "alice").group(54004, "Group1");
    /// # let _ = app;
    /// ```
    pub fn group(mut self, id: u64, name: impl Into<String>) -> Self {
        self.groups.push((id, name.into()));
        self
    }
}

impl fmt::Debug for ExchangeApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &REDACTED)
            .field("redirect_uri", &self.redirect_uri)
            .field("user", &self.user)
            .field("account_key", &self.account_key)
            .field("user_key", &self.user_key)
            .field("email", &self.email)
            .field("locale", &self.locale)
            .field("roles", &self.roles)
            .field("groups", &self.groups)
            .finish()
    }
}
