//! The layer in front of APIs that are not Infobip's: `cargo run --example any_oauth_api`.
//!
//! Three servers on loopback stand in for
//! - `https://auth.example.test`: an OAuth 2.0 authorization server whose token endpoint,
//!   `POST /oauth2/token`, wants the client's id and secret in an HTTP Basic header and grants
//!   only a token requested with the scope `messages:send`;
//! - `https://api.example.test`: the API those tokens are for (`POST /v1/messages`), which
//!   checks the `Bearer` token and refuses one its server revoked;
//! - `https://reports.example.test`: a second API with a fixed `Bearer` token of its own.
//!
//! One hyper-util client sends through two layers: one with [`ClientCredentials`] for the
//! messages API, one with a [`FixedToken`] for the reports API. Each credential goes to its own
//! API only. What happened is printed; no token or secret is.
//!
//! In production, use an HTTPS connector (hyper-rustls) and the real URLs; nothing else changes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use infobip_auth::source::client_credentials::ClientAuthentication;
use infobip_auth::source::{ClientCredentials, FixedToken, Transport};
use infobip_auth::{AuthScheme, BoxError, Catalog, Error, InfobipAuthLayer};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt as _};

/// The OAuth client registered at the authorization server.
pub const CLIENT_ID: &str = "messaging-app";
/// Its secret (in a real app, read from the environment or a vault).
pub const CLIENT_SECRET: &str = "cs-7f3a9c41d2e8";
/// The scope the messages API requires.
pub const SCOPE: &str = "messages:send";
/// The reports API's own long-lived token.
pub const REPORTS_TOKEN: &str = "rpt-5b1e0c77a9";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let outcome = run().await?;
    for line in &outcome.lines {
        println!("{line}");
    }
    Ok(())
}

/// What the run printed, and what the servers counted.
#[derive(Debug, Default)]
pub struct Outcome {
    pub lines: Vec<String>,
    /// Token requests the authorization server answered with a token.
    pub tokens_granted: usize,
    /// Token requests it refused.
    pub token_refusals: usize,
    /// Requests that reached the messages API, and how many it refused with a `401`.
    pub messages_requests: usize,
    pub messages_refusals: usize,
    /// The `Authorization` headers the reports API received.
    pub reports_authorizations: Vec<String>,
    /// The tokens the authorization server issued (for the test to look for; never printed).
    pub issued_tokens: Vec<String>,
}

/// What the three servers share and count.
#[derive(Default)]
struct Servers {
    tokens_granted: AtomicUsize,
    token_refusals: AtomicUsize,
    /// The access tokens the messages API takes now.
    valid_tokens: Mutex<Vec<String>>,
    issued_tokens: Mutex<Vec<String>>,
    messages_requests: AtomicUsize,
    messages_refusals: AtomicUsize,
    reports_authorizations: Mutex<Vec<String>>,
}

impl Servers {
    /// The authorization server revokes every token it issued.
    fn revoke_all(&self) {
        lock(&self.valid_tokens).clear();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the three servers, sends through the layered clients, and reports.
pub async fn run() -> Result<Outcome, BoxError> {
    let servers = Arc::new(Servers::default());
    let auth_url = serve(oauth_server(servers.clone())).await?;
    let api_url = serve(messages_api(servers.clone())).await?;
    let reports_url = serve(reports_api(servers.clone())).await?;
    let mut lines = vec![
        format!("authorization server (auth.example.test): {auth_url}"),
        format!("messages API (api.example.test):          {api_url}"),
        format!("reports API (reports.example.test):       {reports_url}"),
    ];

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();

    // The source's base URL is the authorization server: token requests go there, and so
    // would the token. The API is another origin, so it is allowed by name.
    let oauth = oauth_source(&auth_url, CLIENT_SECRET, Some(SCOPE), &client)?;
    let auth = InfobipAuthLayer::new(oauth).allow_origin(&api_url)?;
    // The scope check judges every origin the auth layer allows, by its catalogue, which is
    // Infobip's unless replaced: give it this API's operations instead.
    let catalog = Catalog::empty()
        .with_operation(
            Method::POST,
            "/v1/messages",
            SCOPE.parse()?,
            &[AuthScheme::OAuth2],
        )?
        .with_operation(
            Method::DELETE,
            "/v1/messages/{id}",
            "messages:delete".parse()?,
            &[AuthScheme::OAuth2],
        )?;
    let messages = ServiceBuilder::new()
        .timeout(Duration::from_secs(30))
        .layer(auth.clone())
        .layer(auth.scope_check().catalog(catalog))
        .service(client.clone());

    // A source with no base URL would go to Infobip's hosts only: name the reports API.
    let fixed = FixedToken::bearer(REPORTS_TOKEN)?.with_base_url(&reports_url)?;
    let reports = ServiceBuilder::new()
        .timeout(Duration::from_secs(30))
        .layer(InfobipAuthLayer::new(fixed))
        .service(client.clone());

    let send = |text: &str| {
        let body = json!({ "to": "+41793026727", "text": text }).to_string();
        Request::post(format!("{api_url}/v1/messages"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
    };
    let granted = || servers.tokens_granted.load(Ordering::SeqCst);
    let refused = || servers.messages_refusals.load(Ordering::SeqCst);

    for text in ["first", "second"] {
        let (status, body) = read(messages.clone().oneshot(send(text)?).await?).await?;
        lines.push(format!(
            "POST /v1/messages ({text}): {status} {}; tokens granted so far: {}",
            body["status"],
            granted()
        ));
    }

    servers.revoke_all();
    let (status, body) = read(messages.clone().oneshot(send("after revocation")?).await?).await?;
    lines.push(format!(
        "POST /v1/messages after the server revoked the token: {status} {}; \
         401s from the API: {}, tokens granted: {} (renewed, replayed once)",
        body["status"],
        refused(),
        granted()
    ));

    let request = Request::get(format!("{reports_url}/v2/reports")).body(Full::default())?;
    let (status, body) = read(reports.clone().oneshot(request).await?).await?;
    lines.push(format!(
        "GET /v2/reports with the fixed token: {status}, {} report(s)",
        body["reports"].as_array().map_or(0, Vec::len)
    ));

    // The token holds `messages:send` only: refused before it is sent.
    let request = Request::delete(format!("{api_url}/v1/messages/msg-1")).body(Full::default())?;
    let refused_here = messages.clone().oneshot(request).await.err();
    lines.push(format!(
        "DELETE /v1/messages/msg-1: {}",
        describe(refused_here.as_deref())
    ));

    // The OAuth token is not the reports API's: refused before anything is sent.
    let request = Request::get(format!("{reports_url}/v2/reports")).body(Full::default())?;
    let refused_here = messages.clone().oneshot(request).await.err();
    lines.push(format!(
        "GET /v2/reports through the OAuth layer: {}",
        describe(refused_here.as_deref())
    ));

    // A wrong secret, and a missing scope: the token endpoint's refusal, with no secret in it.
    for (what, secret, scope) in [
        ("a wrong client secret", "not-the-secret", Some(SCOPE)),
        ("no requested scope", CLIENT_SECRET, None),
    ] {
        let source = oauth_source(&auth_url, secret, scope, &client)?;
        let layered = ServiceBuilder::new()
            .layer(InfobipAuthLayer::new(source).allow_origin(&api_url)?)
            .service(client.clone());
        let failed = layered.oneshot(send("never sent")?).await.err();
        lines.push(format!("with {what}: {}", describe(failed.as_deref())));
    }

    Ok(Outcome {
        lines,
        tokens_granted: granted(),
        token_refusals: servers.token_refusals.load(Ordering::SeqCst),
        messages_requests: servers.messages_requests.load(Ordering::SeqCst),
        messages_refusals: refused(),
        reports_authorizations: lock(&servers.reports_authorizations).clone(),
        issued_tokens: lock(&servers.issued_tokens).clone(),
    })
}

/// Client credentials for the authorization server at `auth_url`.
fn oauth_source(
    auth_url: &str,
    secret: &str,
    scope: Option<&str>,
    client: &Client<HttpConnector, Full<Bytes>>,
) -> Result<ClientCredentials, BoxError> {
    let mut builder = ClientCredentials::builder(auth_url, CLIENT_ID, secret)
        .transport(Transport::new(client.clone()))
        .token_path("/oauth2/token")
        .client_authentication(ClientAuthentication::Basic);
    if let Some(scope) = scope {
        // Asked of the server; each token then holds the `scope` its answer grants, which the
        // scope check reads.
        builder = builder.request_scope(scope);
    }
    Ok(builder.build()?)
}

/// The status and JSON body of a response.
async fn read<B>(response: http::Response<B>) -> Result<(StatusCode, Value), BoxError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let status = response.status();
    let body = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return Err(error.into()),
    };
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// The crate's own error in a failed request, as its `Display` puts it.
fn describe(error: Option<&(dyn std::error::Error + Send + Sync + 'static)>) -> String {
    match error {
        None => "sent (unexpected)".to_owned(),
        Some(error) => match Error::find(error) {
            Some(error) => format!("refused: {error}"),
            None => format!("failed: {error}"),
        },
    }
}

/// Serves `app` on a free loopback port; returns its base URL.
async fn serve(app: Router) -> Result<String, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// The authorization server: `POST /oauth2/token`, client credentials grant, Basic client
/// authentication (RFC 6749 §2.3.1), scope `messages:send` required.
fn oauth_server(servers: Arc<Servers>) -> Router {
    async fn token(
        State(servers): State<Arc<Servers>>,
        headers: HeaderMap,
        Form(form): Form<HashMap<String, String>>,
    ) -> (StatusCode, Json<Value>) {
        let refuse = |status, error: &str| {
            servers.token_refusals.fetch_add(1, Ordering::SeqCst);
            (status, Json(json!({ "error": error })))
        };
        let expected = base64::engine::general_purpose::STANDARD
            .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
        let authenticated = headers
            .get("authorization")
            .is_some_and(|value| value.as_bytes() == format!("Basic {expected}").as_bytes());
        if !authenticated || form.contains_key("client_secret") {
            return refuse(StatusCode::UNAUTHORIZED, "invalid_client");
        }
        if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
            return refuse(StatusCode::BAD_REQUEST, "unsupported_grant_type");
        }
        let scopes = form.get("scope").map(String::as_str).unwrap_or_default();
        if !scopes.split(' ').any(|scope| scope == SCOPE) {
            return refuse(StatusCode::BAD_REQUEST, "invalid_scope");
        }
        let n = servers.tokens_granted.fetch_add(1, Ordering::SeqCst) + 1;
        let access_token = format!("at-{n}-{:08x}", rand_suffix(n));
        lock(&servers.valid_tokens).push(access_token.clone());
        lock(&servers.issued_tokens).push(access_token.clone());
        let granted = json!({
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": 3600,
            "scope": SCOPE,
        });
        (StatusCode::OK, Json(granted))
    }
    Router::new()
        .route("/oauth2/token", post(token))
        .with_state(servers)
}

/// Makes issued tokens differ from run to run, as real ones do.
fn rand_suffix(n: usize) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    nanos ^ (n as u32).wrapping_mul(0x9e37_79b9)
}

/// The messages API: takes a `Bearer` token the authorization server issued and has not
/// revoked; anything else is a `401` with `WWW-Authenticate` (RFC 6750).
fn messages_api(servers: Arc<Servers>) -> Router {
    async fn send(
        State(servers): State<Arc<Servers>>,
        headers: HeaderMap,
        Json(message): Json<Value>,
    ) -> (StatusCode, HeaderMap, Json<Value>) {
        let n = servers.messages_requests.fetch_add(1, Ordering::SeqCst) + 1;
        let token = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let valid =
            token.is_some_and(|token| lock(&servers.valid_tokens).iter().any(|t| t == token));
        if !valid {
            servers.messages_refusals.fetch_add(1, Ordering::SeqCst);
            let mut challenge = HeaderMap::new();
            challenge.insert(
                "www-authenticate",
                http::HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
            return (
                StatusCode::UNAUTHORIZED,
                challenge,
                Json(json!({ "error": "invalid_token" })),
            );
        }
        let accepted = json!({ "id": format!("msg-{n}"), "to": message["to"], "status": "queued" });
        (StatusCode::OK, HeaderMap::new(), Json(accepted))
    }
    Router::new()
        .route("/v1/messages", post(send))
        .with_state(servers)
}

/// The reports API: its own fixed `Bearer` token.
fn reports_api(servers: Arc<Servers>) -> Router {
    async fn reports(
        State(servers): State<Arc<Servers>>,
        headers: HeaderMap,
    ) -> (StatusCode, Json<Value>) {
        let authorization = headers
            .get("authorization")
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .unwrap_or_default();
        let valid = authorization == format!("Bearer {REPORTS_TOKEN}");
        lock(&servers.reports_authorizations).push(authorization);
        if valid {
            (
                StatusCode::OK,
                Json(json!({ "reports": [{ "id": "r-1", "delivered": 2 }] })),
            )
        } else {
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "invalid_token" })),
            )
        }
    }
    Router::new()
        .route("/v2/reports", get(reports))
        .with_state(servers)
}
