//! [`ClientCredentials`]: OAuth 2.0 access tokens, sent as `Authorization: Bearer <token>`.
//!
//! The client-credentials grant ([RFC 6749 §4.4](https://www.rfc-editor.org/rfc/rfc6749#section-4.4)):
//! `POST /auth/1/oauth2/token` with the form `client_id`, `client_secret`,
//! `grant_type=client_credentials` answers `{"access_token","expires_in","token_type"}`. The
//! token is renewed ahead of `expires_in`, and after a `401`.
//!
//! The same source serves any OAuth 2.0 authorization server: a
//! [`token_path`](Builder::token_path) of its own, HTTP Basic
//! [client authentication](Builder::client_authentication) (RFC 6749 §2.3.1), a
//! [requested scope](Builder::request_scope) (§3.3) and [extra form
//! parameters](Builder::form_param) such as `audience` or `resource` (RFC 8707). `token_type`
//! is read without regard to case; a missing one counts as `Bearer`, and a type that cannot be
//! sent as `Bearer` (`DPoP`, `mac`) is refused as a
//! [`MalformedResponse`](crate::ErrorKind::MalformedResponse) rather than sent wrongly.
//!
//! The base URL names the authorization server, and the layer sends the token to that origin
//! alone. Infobip serves its API there too; another API usually lives elsewhere
//! (`auth.example.com` issues, `api.example.com` takes), so allow the API's origin on the
//! layer, or every request to it fails with
//! [`HostNotAllowed`](crate::ErrorKind::HostNotAllowed) before it is sent. Each token holds
//! the scopes its answer's `scope` grants, or those declared with [`scopes`](Builder::scopes)
//! (an answer without `scope` leaves them unknown), for a scope check; give that check the API's own operations
//! ([`ScopeCheckLayer::catalog`](crate::scope::ScopeCheckLayer::catalog)), since its default
//! catalogue is Infobip's. `cargo run --example any_oauth_api` shows all of it on loopback.
//!
//! ```
//! use http::Request;
//! use infobip_auth::source::client_credentials::ClientAuthentication;
//! use infobip_auth::source::{ClientCredentials, Transport};
//! use infobip_auth::{Error, ErrorKind, InfobipAuthLayer};
//! use tower::{Layer as _, ServiceExt as _, service_fn};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
//! # let client = service_fn(|request: Request<http_body_util::Full<bytes::Bytes>>| async move {
//! #     let body = match request.uri().path() {
//! #         "/oauth2/token" => r#"{"access_token":"eyJraWQ","expires_in":3600,"token_type":"bearer"}"#.to_owned(),
//! #         _ => String::from_utf8_lossy(request.headers()["authorization"].as_bytes()).into_owned(),
//! #     };
//! #     Ok::<_, std::convert::Infallible>(http::Response::new(body))
//! # });
//! // `client` stands in for a hyper-util client; the token comes from auth.example.com.
//! let oauth = || {
//!     ClientCredentials::builder("https://auth.example.com", "client-id", "client-secret")
//!         .transport(Transport::new(client))
//!         .token_path("/oauth2/token")
//!         .client_authentication(ClientAuthentication::Basic)
//!         .request_scope("messages:send")
//!         .build()
//! };
//! let send = || Request::post("https://api.example.com/v1/messages").body(Default::default());
//!
//! // Bound to the authorization server's origin alone: the API's is refused, nothing sent.
//! let refused = InfobipAuthLayer::new(oauth()?).layer(client).oneshot(send()?).await;
//! let error = refused.err().ok_or("sent")?;
//! let kind = Error::find(&*error).map(Error::kind);
//! assert!(matches!(kind, Some(ErrorKind::HostNotAllowed { .. })));
//!
//! let layer = InfobipAuthLayer::new(oauth()?).allow_origin("https://api.example.com")?;
//! let response = layer.layer(client).oneshot(send()?).await?;
//! assert_eq!(response.body(), "Bearer eyJraWQ");
//! # Ok(()) }
//! ```
//!
//! Infobip's examples disagree on `expires_in`: its OpenAPI schema says an integer, its Java
//! example reads a string. Both are accepted. A value that cannot be right is not trusted:
//!
//! | `expires_in` | lifetime used |
//! |---|---|
//! | missing, `null`, zero, negative, or not a number | 5 minutes (short, so a token that lives longer is merely renewed early) |
//! | under 10 seconds | 10 seconds (a `401` renews the token if it dies sooner) |
//! | over 24 hours | 24 hours |
//! | anything else, as a number or a string (`3600`, `"3600"`) | that many seconds |
//!
//! ```
//! use bytes::Bytes;
//! use http::{Method, Request, Response};
//! use http_body_util::{BodyExt as _, Full};
//! use infobip_auth::InfobipAuthLayer;
//! use infobip_auth::source::{ClientCredentials, Transport};
//! use tower::{ServiceBuilder, ServiceExt as _, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
//! // Stands in for Infobip (use a hyper-util client in production): grants a token, and
//! // answers any other request with the Authorization header it carried.
//! let infobip = service_fn(|request: Request<Full<Bytes>>| async move {
//!     let body = match (request.method(), request.uri().path()) {
//!         (&Method::POST, "/auth/1/oauth2/token") => Bytes::from_static(
//!             br#"{"access_token":"eyJraWQ","expires_in":"3600","token_type":"Bearer"}"#,
//!         ),
//!         _ => request.headers().get("authorization").map_or_else(Bytes::new, |v| Bytes::copy_from_slice(v.as_bytes())),
//!     };
//!     Ok::<_, std::convert::Infallible>(Response::new(Full::new(body)))
//! });
//!
//! let oauth = ClientCredentials::builder("https://xyz12.api.infobip.com", "client-id", "client-secret")
//!     .transport(Transport::new(infobip))
//!     .build()?;
//! let service = ServiceBuilder::new().layer(InfobipAuthLayer::new(oauth)).service(infobip);
//!
//! let request = Request::get("https://xyz12.api.infobip.com/sms/1/inbox/reports").body(Full::default())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "Bearer eyJraWQ");
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderValue, Uri};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::credential::{REDACTED, sensitive_header};
use crate::error::ConfigError;
use crate::scope::set::is_oauth_scope_token;
use crate::scope::{Scope, Scopes};
use crate::source::{TokenSource, Transport, token_endpoint};
use crate::transport::{self, form_encoded, token_credential};
use crate::{BaseUrl, Credential, Error, ErrorKind};

/// Infobip's path for the client-credentials grant.
const TOKEN_PATH: &str = "/auth/1/oauth2/token";

/// The lifetime assumed when `expires_in` is missing or cannot be right: short enough that a
/// token living longer is only renewed early, long enough not to hammer the endpoint.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// The shortest lifetime believed: a shorter one would renew on nearly every request, and a
/// token that dies sooner is renewed after its `401` anyway.
const MIN_LIFETIME: Duration = Duration::from_secs(10);

/// The longest lifetime believed: no Infobip token lives a day.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The form fields the grant sets itself, which [`Builder::form_param`] refuses.
const GRANT_FIELDS: [&str; 4] = ["grant_type", "client_id", "client_secret", "scope"];

/// How the client proves who it is to the token endpoint (RFC 6749 §2.3.1).
///
/// Infobip reads the client id and secret from the form body; many other authorization
/// servers want them in an HTTP Basic `Authorization` header, which RFC 6749 requires every
/// server to support. OpenID Connect calls the two `client_secret_post` and
/// `client_secret_basic`.
///
/// ```
/// use infobip_auth::source::ClientCredentials;
/// use infobip_auth::source::client_credentials::ClientAuthentication;
/// # let client = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
/// # });
/// // Infobip's way unless told otherwise.
/// assert_eq!(ClientAuthentication::default(), ClientAuthentication::RequestBody);
/// let oauth = ClientCredentials::builder("https://auth.example.com", "client-id", "client-secret")
///     .transport(infobip_auth::source::Transport::new(client))
///     .token_path("/oauth2/token")
///     .client_authentication(ClientAuthentication::Basic)
///     .build()?;
/// assert!(format!("{oauth:?}").contains("client_authentication: Basic"));
/// # Ok::<(), infobip_auth::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientAuthentication {
    /// `client_id` and `client_secret` as form fields of the token request: what Infobip's
    /// token endpoint reads.
    #[default]
    RequestBody,
    /// `Authorization: Basic <base64(id:secret)>`, the id and secret each form-urlencoded
    /// first (RFC 6749 §2.3.1, RFC 7617), and neither in the form.
    Basic,
}

/// An OAuth 2.0 client id and secret, exchanged for short-lived `Bearer` access tokens.
///
/// Infobip is both the authorization and the resource server; the client id and secret are the
/// ones created when signing up with Infobip. With another authorization server, allow the
/// API's origin on the layer (see the [module docs](self)). The secret lives in zeroizing memory and never
/// appears in `Debug` or in errors.
///
/// ```
/// # use infobip_auth::source::{ClientCredentials, Transport};
/// # let client = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
/// # });
/// let oauth = ClientCredentials::builder("https://xyz12.api.infobip.com", "client-id", "s3cret")
///     .transport(Transport::new(client))
///     .build()?;
/// assert!(!format!("{oauth:?}").contains("s3cret"));
/// # Ok::<(), infobip_auth::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct ClientCredentials {
    base: BaseUrl,
    endpoint: Uri,
    client_id: String,
    client_secret: Zeroizing<String>,
    /// The `Authorization` header of every token request, over zeroizing memory, when the
    /// client authenticates with HTTP Basic.
    basic_header: Option<HeaderValue>,
    requested_scope: Option<String>,
    form_params: Vec<(String, String)>,
    scopes: Option<Scopes>,
    transport: Transport,
}

impl ClientCredentials {
    /// Starts configuring a client-credentials source for `client_id` at `base_url`: your
    /// Infobip base URL (`https://xyz12.api.infobip.com`), or another authorization server's
    /// (its token endpoint's path then goes to [`token_path`](Builder::token_path)). The layer
    /// sends the token to `base_url`'s origin alone: allow an API elsewhere with
    /// [`InfobipAuthLayer::allow_origin`](crate::InfobipAuthLayer::allow_origin). A
    /// [`transport`](Builder::transport) is required.
    ///
    /// ```
    /// use infobip_auth::mock::{MockServer, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
    /// use infobip_auth::source::{ClientCredentials, TokenSource};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start().await?; // Infobip-compatible, on loopback
    /// let oauth = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    ///     .transport(transport())
    ///     .build()?;
    /// assert_eq!(oauth.fetch(None).await?.scheme(), "Bearer");
    /// # Ok(()) }
    /// ```
    pub fn builder(base_url: &str, client_id: &str, client_secret: &str) -> Builder {
        Builder {
            base_url: base_url.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: Zeroizing::new(client_secret.to_owned()),
            transport: None,
            token_path: None,
            client_authentication: ClientAuthentication::default(),
            requested_scope: None,
            form_params: Vec::new(),
            scopes: None,
        }
    }
}

/// The answer of the token endpoint.
#[derive(Deserialize)]
struct Granted {
    access_token: String,
    #[serde(default, deserialize_with = "transport::any_number")]
    expires_in: Option<serde_json::Value>,
    /// `Bearer` in any case (RFC 6749 §5.1 calls it case-insensitive), or missing.
    #[serde(default)]
    token_type: Option<String>,
    /// The scopes granted, space-delimited (RFC 6749 §5.1); Infobip's answers have none. Read
    /// as any JSON: it only informs the scope check, so one that is not a string leaves the
    /// held scopes unknown rather than failing the token.
    #[serde(default)]
    scope: Option<serde_json::Value>,
}

/// Refuses a token the layer cannot send as `Bearer` (a `DPoP` or `mac` token needs a proof
/// made for each request): sending it as `Bearer` would only earn `401`s. A missing type is
/// taken for `Bearer`, as Infobip's tokens are.
fn check_bearer(token_type: Option<&str>) -> Result<(), Error> {
    match token_type {
        None => Ok(()),
        Some(kind) if kind.eq_ignore_ascii_case("bearer") => Ok(()),
        Some(kind) => {
            let shown: String = kind.chars().take(32).collect();
            Err(Error::new(ErrorKind::MalformedResponse {
                reason: format!(
                    "the token endpoint granted a token of type {shown:?}, which cannot be sent \
                     as `Bearer`: only Bearer tokens (RFC 6750) are supported"
                ),
            }))
        }
    }
}

/// The `Authorization` header of HTTP Basic client authentication: RFC 6749 §2.3.1
/// form-encodes the id and secret before they are joined. Every buffer is sized up front, so
/// none grows and leaves a copy of the secret in the memory it freed.
fn basic_header(client_id: &str, client_secret: &str) -> Result<HeaderValue, ConfigError> {
    let (id, secret) = (form_encoded(client_id), form_encoded(client_secret));
    let mut joined = Zeroizing::new(String::with_capacity(id.len() + 1 + secret.len()));
    joined.push_str(&id);
    joined.push(':');
    joined.push_str(&secret);
    // `encode` writes into a buffer of the exact size (`encode_string` would pass the bytes
    // through a stack buffer nothing wipes).
    let encoded = Zeroizing::new(STANDARD.encode(joined.as_bytes()));
    let mut header = Zeroizing::new(String::with_capacity(6 + encoded.len()));
    header.push_str("Basic ");
    header.push_str(&encoded);
    // Base64 is always a valid header value; kept fallible so no input can panic.
    sensitive_header(header.as_bytes()).ok_or(ConfigError::InvalidHeaderValue {
        what: "client id or secret",
    })
}

/// Checks a requested scope against RFC 6749 §3.3: scope tokens of visible ASCII but `"` and
/// `\`, each followed by one space but the last.
fn check_request_scope(scope: &str) -> Result<(), ConfigError> {
    let invalid = |reason| ConfigError::Invalid {
        what: "requested scope",
        reason,
    };
    if scope.is_empty() {
        return Err(ConfigError::Empty {
            what: "requested scope",
        });
    }
    for token in scope.split(' ') {
        if token.is_empty() {
            return Err(invalid(
                "scope tokens are separated by single spaces, with none before or after \
                 (RFC 6749 §3.3)",
            ));
        }
        if !is_oauth_scope_token(token) {
            return Err(invalid(
                "a scope token holds visible ASCII characters other than `\"` and `\\` \
                 (RFC 6749 §3.3)",
            ));
        }
    }
    Ok(())
}

/// Checks an extra form parameter's name: not empty, and none the grant sets itself, in any
/// case.
fn check_form_param(name: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::Empty {
            what: "form parameter name",
        });
    }
    // In any case: some servers read form names without regard to it.
    if GRANT_FIELDS
        .iter()
        .any(|field| field.eq_ignore_ascii_case(name))
    {
        return Err(ConfigError::Invalid {
            what: "form parameter",
            reason: "`grant_type`, `client_id`, `client_secret` and `scope` are set by the grant \
                     itself (for `scope`, call `.request_scope(..)`)",
        });
    }
    Ok(())
}

/// The lifetime to believe for `expires_in` (see the table in the [module docs](self)).
fn lifetime(expires_in: Option<&serde_json::Value>) -> Duration {
    match expires_in.and_then(transport::seconds) {
        Some(s) if s > 0.0 => {
            Duration::from_secs_f64(s.min(MAX_LIFETIME.as_secs_f64())).max(MIN_LIFETIME)
        }
        _ => DEFAULT_LIFETIME,
    }
}

impl TokenSource for ClientCredentials {
    async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
        let mut form = Vec::with_capacity(4 + self.form_params.len());
        // With Basic, the header carries the secret: an error answer that echoes it (as is,
        // encoded, or inside the header's base64) loses it. The header's base64 is kept
        // whole too: a secret too short to fill two base64 groups of its own has no base64
        // form of its own, yet shows whole in an echoed header.
        let mut header_secrets = [self.client_secret.as_str(), ""];
        let authorization = match &self.basic_header {
            Some(header) => {
                header_secrets[1] = header
                    .to_str()
                    .unwrap_or_default()
                    .trim_start_matches("Basic ")
                    .trim_end_matches('=');
                Some((header, &header_secrets[..]))
            }
            None => {
                form.push(("client_id", self.client_id.as_str()));
                form.push(("client_secret", self.client_secret.as_str()));
                None
            }
        };
        form.push(("grant_type", "client_credentials"));
        if let Some(scope) = &self.requested_scope {
            form.push(("scope", scope.as_str()));
        }
        form.extend(
            self.form_params
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );
        let answer = self
            .transport
            .post_form_authorized(self.endpoint.clone(), &form, authorization)
            .await?;
        let granted: Granted = transport::json(&answer)?;
        let token = Zeroizing::new(granted.access_token);
        check_bearer(granted.token_type.as_deref())?;
        let credential = transport::expires_after_sent(
            token_credential("Bearer", &token)?,
            &answer,
            lifetime(granted.expires_in.as_ref()),
        );
        let granted_scope = granted.scope.as_ref().and_then(serde_json::Value::as_str);
        Ok(match self.held_scopes(granted_scope) {
            Some(scopes) => credential.with_scopes(scopes),
            None => credential,
        })
    }

    fn base_url(&self) -> Option<&BaseUrl> {
        Some(&self.base)
    }

    fn name(&self) -> &'static str {
        "client_credentials"
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &REDACTED)
            .field("client_authentication", &self.client_authentication())
            .field("requested_scope", &self.requested_scope)
            .field("form_params", &FormParamNames(&self.form_params))
            .field("scopes", &self.scopes)
            .field("transport", &self.transport)
            .finish()
    }
}

impl ClientCredentials {
    /// The scopes a token holds: those declared; else those the answer's `scope` grants.
    /// Unknown when neither is given, or a granted name is not one a
    /// [`Scope`](crate::Scope) can be (then no scope check judges by a partial list). An
    /// answer without `scope` is not taken to grant the scope requested, although RFC 6749
    /// §5.1 allows that reading: servers omit it who grant what the client is configured for,
    /// or who read a requested meta-scope (`.default`) as all of it, and the scope check would
    /// refuse requests they serve.
    fn held_scopes(&self, granted: Option<&str>) -> Option<Scopes> {
        if let Some(declared) = &self.scopes {
            return Some(declared.clone());
        }
        // Space-delimited (RFC 6749 §3.3): a `,` is part of a name, which no `Scope` holds, so
        // `a,b` leaves the set unknown rather than read as the two scopes `a` and `b`.
        granted?
            .split(' ')
            .filter(|name| !name.is_empty())
            .map(Scope::new)
            .collect::<Result<Scopes, _>>()
            .ok()
            .filter(|scopes| !scopes.is_empty())
    }

    fn client_authentication(&self) -> ClientAuthentication {
        if self.basic_header.is_some() {
            ClientAuthentication::Basic
        } else {
            ClientAuthentication::RequestBody
        }
    }
}

/// Shows the names of extra form parameters, not their values: one may be sensitive.
struct FormParamNames<'a>(&'a [(String, String)]);

impl fmt::Debug for FormParamNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Configures a [`ClientCredentials`]; made by [`ClientCredentials::builder`].
///
/// ```
/// use infobip_auth::{ConfigError, source::ClientCredentials};
/// // Checked when built, not at the first request: no secret over plain HTTP to a remote host.
/// let built = ClientCredentials::builder("http://xyz12.api.infobip.com", "client-id", "client-secret").build();
/// assert!(matches!(built, Err(ConfigError::InsecureUrl { .. })));
/// ```
#[must_use]
pub struct Builder {
    base_url: String,
    client_id: String,
    client_secret: Zeroizing<String>,
    transport: Option<Transport>,
    token_path: Option<String>,
    client_authentication: ClientAuthentication,
    requested_scope: Option<String>,
    form_params: Vec<(String, String)>,
    scopes: Option<Scopes>,
}

impl Builder {
    /// The HTTP client that reaches the token endpoint (required: there is no hidden default
    /// client). It may be the same client the layer wraps.
    ///
    /// ```
    /// use hyper_util::client::legacy::Client;
    /// use hyper_util::rt::TokioExecutor;
    /// use infobip_auth::ConfigError;
    /// use infobip_auth::source::{ClientCredentials, Transport};
    /// let builder = || ClientCredentials::builder("https://xyz12.api.infobip.com", "client-id", "client-secret");
    /// let client = Client::builder(TokioExecutor::new()).build_http();
    /// assert!(builder().transport(Transport::new(client)).build().is_ok());
    /// let err = builder().build().err();
    /// assert!(matches!(err, Some(ConfigError::Invalid { what: "transport", .. })));
    /// ```
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The token endpoint's path under the base URL, for a gateway that moves it (default
    /// `/auth/1/oauth2/token`).
    ///
    /// ```
    /// use infobip_auth::source::{ClientCredentials, TokenSource, Transport};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # use bytes::Bytes;
    /// # use http_body_util::{BodyExt, Full};
    /// # // Answers with a token only when `path == "/infobip/oauth/token"`, else `404`.
    /// # let client = tower::service_fn(|request: http::Request<Full<Bytes>>| async move {
    /// #     let path = request.uri().path().to_owned();
    /// #     let body = request.into_body().collect().await?.to_bytes();
    /// #     let body = String::from_utf8_lossy(&body);
    /// #     let mut response = http::Response::new(Full::new(Bytes::from(r#"{"access_token":"a1b2c3","token_type":"Bearer","expires_in":3600}"#)));
    /// #     if !(path == "/infobip/oauth/token") {
    /// #         *response.status_mut() = http::StatusCode::NOT_FOUND;
    /// #     }
    /// #     Ok::<_, infobip_auth::BoxError>(response)
    /// # });
    /// // `client` stands in for a gateway that serves the token endpoint at its own path.
    /// let oauth = ClientCredentials::builder("https://gateway.example.com", "client-id", "client-secret")
    ///     .transport(Transport::new(client))
    ///     .token_path("/infobip/oauth/token")
    ///     .build()?;
    /// assert_eq!(oauth.fetch(None).await?.header(), "Bearer a1b2c3");
    /// # Ok(()) }
    /// ```
    pub fn token_path(mut self, path: &str) -> Self {
        self.token_path = Some(path.to_owned());
        self
    }

    /// How the client authenticates to the token endpoint: its id and secret in the form
    /// body ([`RequestBody`](ClientAuthentication::RequestBody), Infobip's way and the
    /// default) or in an HTTP Basic header ([`Basic`](ClientAuthentication::Basic)), which
    /// other authorization servers often require.
    ///
    /// ```
    /// use infobip_auth::source::{ClientCredentials, TokenSource, Transport};
    /// use infobip_auth::source::client_credentials::ClientAuthentication;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # use bytes::Bytes;
    /// # use http_body_util::{BodyExt, Full};
    /// # // Grants a token only to `Basic base64("my+app:p%40ss")`, with no secret in the form.
    /// # let client = tower::service_fn(|request: http::Request<Full<Bytes>>| async move {
    /// #     let basic = request.headers().get("authorization").cloned();
    /// #     let body = request.into_body().collect().await?.to_bytes();
    /// #     let ok = basic.as_ref().is_some_and(|v| v == "Basic bXkrYXBwOnAlNDBzcw==")
    /// #         && body == "grant_type=client_credentials";
    /// #     let mut response = http::Response::new(Full::new(Bytes::from(r#"{"access_token":"a1b2c3","token_type":"bearer","expires_in":3600}"#)));
    /// #     if !ok {
    /// #         *response.status_mut() = http::StatusCode::UNAUTHORIZED;
    /// #     }
    /// #     Ok::<_, infobip_auth::BoxError>(response)
    /// # });
    /// // `client` stands in for an authorization server that takes Basic client authentication.
    /// let oauth = ClientCredentials::builder("https://auth.example.com", "my app", "p@ss")
    ///     .transport(Transport::new(client))
    ///     .token_path("/oauth2/token")
    ///     .client_authentication(ClientAuthentication::Basic)
    ///     .build()?;
    /// // The id and secret are form-urlencoded, joined with `:`, then base64'd.
    /// assert_eq!(oauth.fetch(None).await?.header(), "Bearer a1b2c3");
    /// # Ok(()) }
    /// ```
    pub fn client_authentication(mut self, authentication: ClientAuthentication) -> Self {
        self.client_authentication = authentication;
        self
    }

    /// The scope to request, sent as the `scope` form field (RFC 6749 §3.3): scope tokens
    /// separated by single spaces, as the authorization server names them. Infobip's token
    /// endpoint takes none; other servers may grant less, or nothing, without one. Checked
    /// when built. What is asked for is not taken as held: a token holds what its answer's
    /// `scope` grants, or what [`scopes`](Self::scopes) declares.
    ///
    /// ```
    /// use infobip_auth::ConfigError;
    /// use infobip_auth::source::{ClientCredentials, Transport};
    /// # let client = || Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// let builder = || ClientCredentials::builder("https://auth.example.com", "client-id", "client-secret").transport(client());
    /// assert!(builder().request_scope("messages:read messages:write").build().is_ok());
    /// // Two spaces, or a `"`, are no scope (RFC 6749 §3.3).
    /// let refused = builder().request_scope("read  write").build();
    /// assert!(matches!(refused, Err(ConfigError::Invalid { what: "requested scope", .. })));
    /// let refused = builder().request_scope("\"read\"").build();
    /// assert!(matches!(refused, Err(ConfigError::Invalid { what: "requested scope", .. })));
    /// ```
    pub fn request_scope(mut self, scope: &str) -> Self {
        self.requested_scope = Some(scope.to_owned());
        self
    }

    /// Adds a form field to every token request, for a server that requires one: an
    /// `audience`, a `resource` (RFC 8707; it may be added more than once). The fields the
    /// grant sets itself (`grant_type`, `client_id`, `client_secret`, `scope`) are refused, in any
    /// case, when built. A value shows in no `Debug`, though it is not treated as a secret.
    ///
    /// ```
    /// use infobip_auth::ConfigError;
    /// use infobip_auth::source::{ClientCredentials, Transport};
    /// # let client = || Transport::new(tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    /// # }));
    /// let builder = || ClientCredentials::builder("https://auth.example.com", "client-id", "client-secret").transport(client());
    /// let oauth = builder()
    ///     .form_param("audience", "https://api.example.com")
    ///     .form_param("resource", "https://api.example.com/messages")
    ///     .build();
    /// assert!(oauth.is_ok());
    /// // The grant's own fields cannot be overridden.
    /// let refused = builder().form_param("grant_type", "password").build();
    /// assert!(matches!(refused, Err(ConfigError::Invalid { what: "form parameter", .. })));
    /// ```
    pub fn form_param(mut self, name: &str, value: &str) -> Self {
        self.form_params.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Declares the scopes the client holds, over what a token answer's `scope` grants (RFC
    /// 6749 §5.1). Infobip's answers name none, nor do some other servers' (a
    /// [requested scope](Self::request_scope) is not taken as granted): with them declared, a
    /// scope check can explain a `403` or refuse a request before sending it.
    ///
    /// ```
    /// use infobip_auth::mock::{MockServer, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
    /// use infobip_auth::source::{ClientCredentials, TokenSource};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), infobip_auth::BoxError> {
    /// # let transport = || infobip_auth::source::Transport::new(
    /// #     hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
    /// #         .build_http::<http_body_util::Full<bytes::Bytes>>(),
    /// # );
    /// let server = MockServer::start().await?; // Infobip-compatible, on loopback
    /// let oauth = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    ///     .transport(transport())
    ///     .scopes("sms:manage".parse()?)
    ///     .build()?;
    /// // Each token carries them, for the scope check to read.
    /// assert_eq!(oauth.fetch(None).await?.scopes(), Some(&"sms:manage".parse()?));
    /// # Ok(()) }
    /// ```
    pub fn scopes(mut self, scopes: Scopes) -> Self {
        self.scopes = Some(scopes);
        self
    }

    /// Checks the configuration and makes the source. Nothing is sent yet: the first request
    /// through the layer fetches the token.
    ///
    /// # Errors
    /// [`ConfigError::InvalidUrl`] or [`ConfigError::InsecureUrl`] for a bad base URL or token
    /// path; [`ConfigError::Empty`] for an empty client id, secret, requested scope or form
    /// parameter name; [`ConfigError::Invalid`] when no transport was given, for a requested
    /// scope RFC 6749 §3.3 does not allow, or for a form parameter the grant sets itself.
    ///
    /// ```
    /// # use infobip_auth::{ConfigError, source::ClientCredentials};
    /// let missing = ClientCredentials::builder("https://xyz12.api.infobip.com", "id", "secret").build();
    /// assert!(matches!(missing, Err(ConfigError::Invalid { what: "transport", .. })));
    /// ```
    pub fn build(self) -> Result<ClientCredentials, ConfigError> {
        let base = BaseUrl::new(&self.base_url)?;
        let endpoint = token_endpoint(&base, self.token_path.as_deref().unwrap_or(TOKEN_PATH))?;
        if self.client_id.is_empty() {
            return Err(ConfigError::Empty { what: "client id" });
        }
        if self.client_secret.is_empty() {
            return Err(ConfigError::Empty {
                what: "client secret",
            });
        }
        if let Some(scope) = &self.requested_scope {
            check_request_scope(scope)?;
        }
        for (name, _) in &self.form_params {
            check_form_param(name)?;
        }
        let transport = super::required(self.transport)?;
        let basic_header = match self.client_authentication {
            ClientAuthentication::RequestBody => None,
            ClientAuthentication::Basic => {
                Some(basic_header(&self.client_id, &self.client_secret)?)
            }
        };
        Ok(ClientCredentials {
            base,
            endpoint,
            client_id: self.client_id,
            client_secret: self.client_secret,
            basic_header,
            requested_scope: self.requested_scope,
            form_params: self.form_params,
            scopes: self.scopes,
            transport,
        })
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("base_url", &crate::origin::redacted(&self.base_url))
            .field("client_id", &self.client_id)
            .field("client_secret", &REDACTED)
            .field("transport", &self.transport)
            .field("token_path", &self.token_path)
            .field("client_authentication", &self.client_authentication)
            .field("requested_scope", &self.requested_scope)
            .field("form_params", &FormParamNames(&self.form_params))
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[cfg(test)]
mod tests;
