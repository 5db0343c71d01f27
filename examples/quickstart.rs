//! The main job, end to end: `cargo run --example quickstart`.
//!
//! Starts the embedded Infobip-compatible server on loopback and sends an SMS with every
//! authentication method through `ServiceBuilder::new().layer(InfobipAuthLayer::new(source))`
//! over a hyper-util client. No network is used.
//!
//! With `INFOBIP_BASE_URL` (e.g. `https://xyz12.api.infobip.com`) and `INFOBIP_API_KEY` set, it
//! instead sends one real request to that account that changes nothing there: the latest SMS
//! log entry (`GET /sms/1/logs`; reading inbound reports would take messages off the inbox).

use std::fmt::Write as _;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{self, MockConfig, MockServer};
use infobip_auth::source::{ApiKey, AuthCodeFlow, ClientCredentials, Session, Transport};
use infobip_auth::{BoxError, Error, InfobipAuthLayer};
use tower::{Service, ServiceBuilder, ServiceExt as _};

/// The HTTP client every method uses: HTTPS for Infobip, plain HTTP for the loopback server.
type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One line of the closing table.
#[derive(Debug)]
pub struct Row {
    pub method: &'static str,
    pub scheme: String,
    pub token_requests: u64,
    pub outcome: String,
}

const SMS: &str = r#"{"messages":[{"destinations":[{"to":"41793026727"}],"from":"InfoSMS","text":"Hello from infobip-auth"}]}"#;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let client = http_client();
    if let (Ok(base_url), Ok(key)) = (
        std::env::var("INFOBIP_BASE_URL"),
        std::env::var("INFOBIP_API_KEY"),
    ) {
        return real_account(client, &base_url, &key).await;
    }
    let mut log = String::new();
    let rows = tour(client, &mut log).await?;
    print!("{log}");
    println!(
        "\n{:<20} {:<8} {:>14}  outcome",
        "method", "header", "token requests"
    );
    for row in &rows {
        println!(
            "{:<20} {:<8} {:>14}  {}",
            row.method, row.scheme, row.token_requests, row.outcome
        );
    }
    Ok(())
}

pub fn http_client() -> HttpClient {
    let https = HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}

/// Every method against the embedded server; returns the closing table.
pub async fn tour(client: HttpClient, log: &mut String) -> Result<Vec<Row>, BoxError> {
    let config = MockConfig::demo()
        .api_key(NARROW_KEY, "inbound-message:read")
        .session_idle_timeout(SESSION_LENGTH);
    let server = MockServer::start_with(config).await?;
    writeln!(
        log,
        "embedded Infobip-compatible server at {}",
        server.base_url()
    )?;
    let mut rows = Vec::new();

    // API key: `App <key>`. A key names no host, so the loopback origin is allowed explicitly.
    let layer = InfobipAuthLayer::api_key(mock::DEMO_API_KEY)?.allow_origin(server.base_url())?;
    rows.push(send_sms("API key", layer, &client, &server, log).await?);

    // Basic: `Basic base64(username:password)`.
    let layer = InfobipAuthLayer::basic(mock::DEMO_USERNAME, mock::DEMO_PASSWORD)?
        .allow_origin(server.base_url())?;
    rows.push(send_sms("Basic", layer, &client, &server, log).await?);

    // IBSSO session: `POST /auth/1/session` → `IBSSO <token>`, renewed before an idle gap
    // outlives it; `revoke` ends it (`DELETE /auth/1/session`) on shutdown.
    let session = Session::builder(server.base_url(), mock::DEMO_USERNAME, mock::DEMO_PASSWORD)
        .transport(Transport::new(client.clone()))
        .idle_timeout(SESSION_LENGTH)
        .build()?;
    let layer = InfobipAuthLayer::new(session);
    rows.push(send_sms("IBSSO session", layer.clone(), &client, &server, log).await?);
    // Idle longer than the session lives: a new session is made before the next request.
    tokio::time::sleep(SESSION_LENGTH + SESSION_LENGTH / 4).await;
    rows.push(renewed("IBSSO, idle gap", layer.clone(), &client, &server, log).await?);
    layer.revoke().await?;
    let counters = server.counters();
    writeln!(
        log,
        "{:<20} → ended on shutdown: {} session(s) made, {} ended",
        "IBSSO session", counters.session_creates, counters.session_deletes
    )?;

    // OAuth 2.0 client credentials: `POST /auth/1/oauth2/token` → `Bearer <access_token>`,
    // renewed ahead of `expires_in`.
    let oauth = ClientCredentials::builder(
        server.base_url(),
        mock::DEMO_CLIENT_ID,
        mock::DEMO_CLIENT_SECRET,
    )
    .transport(Transport::new(client.clone()))
    .build()?;
    let layer = InfobipAuthLayer::new(oauth);
    rows.push(send_sms("OAuth 2.0", layer.clone(), &client, &server, log).await?);
    // The server revokes the token: the next request's 401 renews it and replays the request.
    server.revoke_all_tokens();
    rows.push(renewed("OAuth 2.0, revoked", layer, &client, &server, log).await?);

    // Exchange authorization code: the user approves the app at Infobip, the callback's code
    // becomes a one-minute `IBSSO` token, renewed ahead of expiry with the refresh grant.
    rows.push(exchange(&client, &server, log).await?);

    // A 403 explained: the key lacks every scope that grants sending SMS.
    rows.push(forbidden(&client, &server, log).await?);

    server.shutdown().await;
    Ok(rows)
}

/// The authorization-code flow, with the server approving at once in place of a browser.
async fn exchange(
    client: &HttpClient,
    server: &MockServer,
    log: &mut String,
) -> Result<Row, BoxError> {
    let flow = AuthCodeFlow::builder(server.base_url(), mock::DEMO_APP_CLIENT_ID)
        .client_secret(mock::DEMO_APP_CLIENT_SECRET)
        .redirect_uri(mock::DEMO_REDIRECT_URI)
        .scope("message:send")
        .transport(Transport::new(client.clone()))
        .build()?;
    let before = server.counters().token_requests();
    let (authorize, pending) = flow.authorize_url()?;
    // The user's browser: Infobip answers the authorize URL with a redirect to the callback.
    let approval = client
        .request(Request::get(authorize).body(Full::new(Bytes::new()))?)
        .await?;
    let callback = approval
        .headers()
        .get(http::header::LOCATION)
        .and_then(|location| location.to_str().ok())
        .ok_or("the authorize endpoint did not redirect")?;
    let grant = flow.callback(pending, callback)?;
    let source = flow.exchange(grant).await?;
    let account = source.account();
    writeln!(
        log,
        "{:<20} → connected {} of account {}",
        "Exchange", account.username, account.account_key
    )?;
    let layer = InfobipAuthLayer::new(source);
    let mut row = send_sms("Exchange auth code", layer.clone(), client, server, log).await?;
    layer.refresh().await?;
    row.token_requests = server.counters().token_requests() - before;
    row.outcome = format!("{}; code exchanged, then refreshed once", row.outcome);
    Ok(row)
}

/// How long the demo's sessions live without use (Infobip's default is 60 minutes).
const SESSION_LENGTH: std::time::Duration = std::time::Duration::from_secs(2);

/// Sends an SMS with a credential the server no longer accepts; tells how it was renewed.
async fn renewed(
    method: &'static str,
    layer: InfobipAuthLayer,
    client: &HttpClient,
    server: &MockServer,
    log: &mut String,
) -> Result<Row, BoxError> {
    let refused_before = server.counters().unauthorized;
    let mut row = send_sms(method, layer, client, server, log).await?;
    let refused = server.counters().unauthorized - refused_before;
    row.outcome = format!(
        "{}; {} renewal(s), {refused} × 401 at the server, none seen by the caller",
        row.outcome, row.token_requests
    );
    Ok(row)
}

/// A key the server grants only `inbound-message:read`: sending an SMS is forbidden.
const NARROW_KEY: &str = "0c1a8f2e7d9b4c6a5e3f1d0b9a8c7e6f-narrow";

/// Sends one SMS through the layer and reports what happened.
async fn send_sms(
    method: &'static str,
    layer: InfobipAuthLayer,
    client: &HttpClient,
    server: &MockServer,
    log: &mut String,
) -> Result<Row, BoxError> {
    let before = server.counters().token_requests();
    let mut service = ServiceBuilder::new().layer(layer).service(client.clone());
    let (status, text) = call(
        &mut service,
        Method::POST,
        &server.url("/sms/2/text/advanced"),
        SMS,
    )
    .await?;
    let scheme = server
        .received()
        .last()
        .map(|r| r.scheme.clone())
        .unwrap_or_default();
    writeln!(log, "{method:<20} → {status} {}", first_line(&text))?;
    Ok(Row {
        method,
        scheme,
        token_requests: server.counters().token_requests() - before,
        outcome: outcome(status, None),
    })
}

/// A key without the scopes for sending SMS: the server's 403 is explained by the scope check,
/// and once the key's scopes are declared the request is refused before it is sent.
async fn forbidden(
    client: &HttpClient,
    server: &MockServer,
    log: &mut String,
) -> Result<Row, BoxError> {
    let auth = InfobipAuthLayer::api_key(NARROW_KEY)?.allow_origin(server.base_url())?;
    let mut service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(client.clone());
    let request = sms_request(&server.url("/sms/2/text/advanced"))?;
    let response = service.ready().await?.call(request).await?;
    let status = response.status();
    let explained = response.extensions().get::<Error>().cloned();
    writeln!(
        log,
        "{:<20} → {status}: {}",
        "API key, no scope",
        describe(explained.as_ref())
    )?;

    let declared = ApiKey::new(NARROW_KEY)?.with_scopes("inbound-message:read".parse()?);
    let auth = InfobipAuthLayer::new(declared).allow_origin(server.base_url())?;
    let mut service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(client.clone());
    let sent_before = server.received().len();
    let refused = service
        .ready()
        .await?
        .call(sms_request(&server.url("/sms/2/text/advanced"))?)
        .await
        .err()
        .ok_or("a request without the needed scope must be refused before sending")?;
    let sent = server.received().len() - sent_before;
    writeln!(
        log,
        "{:<20} → refused before sending ({sent} sent): {refused}",
        "API key, declared"
    )?;
    Ok(Row {
        method: "API key, no scope",
        scheme: "App".into(),
        token_requests: 0,
        outcome: outcome(status, explained.as_ref()),
    })
}

fn describe(error: Option<&Error>) -> String {
    error.map_or_else(|| "no explanation".into(), ToString::to_string)
}

fn sms_request(url: &str) -> Result<Request<Full<Bytes>>, http::Error> {
    Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(SMS.as_bytes())))
}

/// Sends one request through `service`; returns the status and the body as text.
async fn call<S, B>(
    service: &mut S,
    method: Method,
    url: &str,
    body: &str,
) -> Result<(StatusCode, String), BoxError>
where
    S: Service<Request<Full<Bytes>>, Response = http::Response<B>, Error = BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let request = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))?;
    let response = service.ready().await?.call(request).await?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(Into::<BoxError>::into)?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

fn outcome(status: StatusCode, error: Option<&Error>) -> String {
    match error {
        Some(error) => format!("{status}: {error}"),
        None => status.to_string(),
    }
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or_default();
    line.get(..100).unwrap_or(line)
}

/// One request to a real Infobip account that changes nothing there.
async fn real_account(client: HttpClient, base_url: &str, key: &str) -> Result<(), BoxError> {
    let layer = InfobipAuthLayer::api_key(key)?.allow_origin(base_url)?;
    let mut service = ServiceBuilder::new().layer(layer).service(client);
    let url = format!("{}/sms/1/logs?limit=1", base_url.trim_end_matches('/'));
    let (status, text) = call(&mut service, Method::GET, &url, "").await?;
    println!("GET /sms/1/logs → {status}\n{}", first_line(&text));
    Ok(())
}
