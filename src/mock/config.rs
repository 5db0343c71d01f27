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
    /// use infobip_auth::mock::MockConfig;
    /// let config = MockConfig::new().api_key("k", "sms:manage");
    /// # let _ = config;
    /// ```
    pub fn new() -> Self {
        Self {
            users: Vec::new(),
            api_keys: Vec::new(),
            oauth_clients: Vec::new(),
            exchange_apps: Vec::new(),
            session_idle_timeout: Duration::from_secs(60 * 60),
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
    /// use infobip_auth::mock::MockConfig;
    /// let config = MockConfig::new().user("alice", "s3cret", "sms:manage");
    /// # let _ = config;
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
    /// use infobip_auth::mock::MockConfig;
    /// let config = MockConfig::new().api_key("my-key", "message:send");
    /// # let _ = config;
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
    /// use infobip_auth::mock::MockConfig;
    /// let config = MockConfig::new().api_key_expiring("k", "sms:manage", Duration::from_secs(30));
    /// # let _ = config;
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
    /// use infobip_auth::mock::MockConfig;
    /// let config = MockConfig::new().oauth_client("id", "secret", "sms:manage");
    /// # let _ = config;
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
    /// use infobip_auth::mock::{ExchangeApp, MockConfig};
    /// let app = ExchangeApp::new("0123456789abcdef0123456789abcdef", "secret", "https://app.example/cb", "alice");
    /// let config = MockConfig::new().user("alice", "pw", "sms:manage").exchange_app(app);
    /// # let _ = config;
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
    /// use infobip_auth::mock::MockConfig;
    /// let config = MockConfig::new().session_idle_timeout(Duration::from_secs(5 * 60));
    /// # let _ = config;
    /// ```
    pub fn session_idle_timeout(mut self, idle: Duration) -> Self {
        self.session_idle_timeout = idle;
        self
    }

    /// How long client-credentials access tokens live, announced as `expires_in` (3600 s by
    /// default; whole seconds, rounded up).
    ///
    /// ```
    /// use std::time::Duration;
    /// use infobip_auth::mock::MockConfig;
    /// let config = MockConfig::new().oauth_token_lifetime(Duration::from_secs(120));
    /// # let _ = config;
    /// ```
    pub fn oauth_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.oauth_token_lifetime = lifetime;
        self
    }

    /// Serves `expires_in` as a JSON string (`"3600"`) instead of a number, since Infobip's own
    /// examples read it both ways.
    ///
    /// ```
    /// use infobip_auth::mock::MockConfig;
    /// let config = MockConfig::new().expires_in_as_string(true);
    /// # let _ = config;
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
    /// let config = MockConfig::new().exchange_token_lifetime(Duration::from_secs(600));
    /// # let _ = config;
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
    /// let config = MockConfig::new().code_lifetime(Duration::from_secs(10));
    /// # let _ = config;
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
    /// use infobip_auth::mock::MockConfig;
    /// // One session, token or logout per second: easy to exceed in a test.
    /// let config = MockConfig::demo().throttle(1, Duration::from_secs(1));
    /// # let _ = config;
    /// ```
    pub fn throttle(mut self, requests: u32, per: Duration) -> Self {
        self.throttle = Some(Rate { requests, per });
        self
    }

    /// Answers the session and OAuth endpoints however fast requests come (see
    /// [`MockConfig::throttle`]).
    ///
    /// ```
    /// use infobip_auth::mock::MockConfig;
    /// let config = MockConfig::demo().unthrottled();
    /// # let _ = config;
    /// ```
    pub fn unthrottled(mut self) -> Self {
        self.throttle = None;
        self
    }

    /// Adds (or replaces) a protected operation: `path_template` as the OpenAPI specification
    /// writes it (`/sms/1/reports/{id}`), the scopes that grant it (any one suffices; none
    /// means any valid credential) and the accepted schemes, named as the specification does
    /// (`Basic`, `APIKeyHeader`, `IBSSOTokenHeader`, `OAuth2`) or by their header word (`App`,
    /// `Basic`, `IBSSO`, `Bearer`). An operation with neither scopes nor schemes is public.
    ///
    /// A template the router cannot hold, or an unknown scheme, makes
    /// [`MockServer::start_with`](super::MockServer::start_with) fail.
    ///
    /// ```
    /// use http::Method;
    /// use infobip_auth::mock::MockConfig;
    /// let config = MockConfig::new().operation(Method::GET, "/sms/1/reports", "sms:manage", "App,Bearer");
    /// # let _ = config;
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
    /// use infobip_auth::mock::MockConfig;
    /// let config = MockConfig::demo().all_operations();
    /// # let _ = config;
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
/// use infobip_auth::mock::ExchangeApp;
/// let app = ExchangeApp::new("0123456789abcdef0123456789abcdef", "s3cr3t-value", "https://app.example/cb", "alice")
///     .email("alice@example.com")
///     .locale("hr-HR");
/// assert!(!format!("{app:?}").contains("s3cr3t-value"));
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
