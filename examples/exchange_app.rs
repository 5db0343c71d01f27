//! An Exchange app on axum, connecting Infobip accounts through OAuth:
//! `cargo run --example exchange_app`.
//!
//! - `GET /connect` sends the user to Infobip's authorization page
//!   (`/exchange/1/oauth/authorize`), keeping the `state` to check the callback against for
//!   ten minutes (expired ones are forgotten, and at most `MAX_PENDING` are kept);
//! - `GET /callback?code=…&state=…` checks the callback, exchanges the code for a token (and
//!   the account's details), then sends an SMS on the account's behalf through
//!   `InfobipAuthLayer`, which refreshes the one-minute token for as long as the connection
//!   is kept.
//!
//! Run as it is, it starts the embedded Infobip-compatible server on loopback, plays the
//! user's browser once (following each `302` with a real HTTP client), prints what the app
//! answered and what the server saw, and exits. No network is used.
//!
//! # Pointing it at Infobip
//!
//! 1. Create the app shell in Infobip Exchange: note its client id and secret, register the
//!    redirect URI (`http://127.0.0.1:3000/callback` for a local try, or your HTTPS address
//!    forwarded to this app) and assign the scopes it needs (`sms:message:send` here).
//! 2. Set `INFOBIP_CLIENT_ID`, `INFOBIP_CLIENT_SECRET`, `INFOBIP_REDIRECT_URI`,
//!    `INFOBIP_API_BASE_URL` (your account's base URL, e.g. `https://xyz12.api.infobip.com`)
//!    and `SMS_TO` (a number that may receive a test message); optionally `INFOBIP_SCOPE`
//!    (default `sms:message:send`), `INFOBIP_OAUTH_BASE_URL` (default
//!    `https://oneapi.infobip.com`) and `APP_ADDR` (default `127.0.0.1:3000`).
//! 3. `cargo run --example exchange_app`, open `http://127.0.0.1:3000/connect` in a browser
//!    and approve. The app keeps serving until Ctrl-C.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{self, ExchangeApp, MockConfig, MockServer};
use infobip_auth::source::{AuthCodeFlow, PendingAuthorization, Transport};
use infobip_auth::{BoxError, InfobipAuthLayer, RefreshPolicy};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::{Service as _, ServiceBuilder, ServiceExt as _};
use tower_http::follow_redirect::FollowRedirectLayer;

/// One client for everything: HTTPS for Infobip, plain HTTP for the loopback server.
type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The embedded server's Exchange app (32 hex digits, as Exchange's client ids).
const EXAMPLE_CLIENT_ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const EXAMPLE_CLIENT_SECRET: &str = "c2VjcmV0LW9mLXRoZS1leGFtcGxlLWFwcC0yNTYtYml0cz0=";

/// Authorizations under way, by `state`.
pub type Pending = HashMap<String, PendingAuthorization>;

/// The most authorizations kept under way at once, so a flood of `/connect` requests cannot
/// grow the map without bound.
pub const MAX_PENDING: usize = 10_000;

/// Keeps `pending` until its callback, after forgetting the expired ones (their callbacks
/// would be refused anyway).
///
/// # Errors
/// When `MAX_PENDING` authorizations are still under way.
pub fn remember(map: &mut Pending, pending: PendingAuthorization) -> Result<(), &'static str> {
    map.retain(|_, kept| !kept.is_expired());
    if map.len() >= MAX_PENDING {
        return Err("too many authorizations under way: try again in a few minutes");
    }
    map.insert(pending.state().to_owned(), pending);
    Ok(())
}

/// What the handlers share.
struct App {
    flow: AuthCodeFlow,
    client: HttpClient,
    api_base_url: String,
    sms_to: String,
    /// Authorizations under way, by `state`. A real app keeps them in the user's session.
    pending: Mutex<Pending>,
    /// Connected accounts, by account key: each layer keeps its account's token alive.
    connected: Mutex<HashMap<String, InfobipAuthLayer>>,
    /// Tells `main` what each callback page said.
    rounds: mpsc::UnboundedSender<String>,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    if let Ok(client_id) = std::env::var("INFOBIP_CLIENT_ID") {
        return against_infobip(&client_id).await;
    }
    println!("{}", round().await?);
    Ok(())
}

/// One full round against the embedded server: the browser goes to `/connect`, follows the
/// redirects through Infobip's authorization page back to `/callback`, and reads the answer.
pub async fn round() -> Result<String, BoxError> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let app_url = format!("http://{}", listener.local_addr()?);
    let redirect_uri = format!("{app_url}/callback");
    let exchange_app = ExchangeApp::new(
        EXAMPLE_CLIENT_ID,
        EXAMPLE_CLIENT_SECRET,
        &redirect_uri,
        mock::DEMO_USERNAME,
    );
    let server = MockServer::start_with(MockConfig::demo().exchange_app(exchange_app)).await?;
    let mut log = format!(
        "embedded Infobip-compatible server at {}\n",
        server.base_url()
    );

    let client = http_client();
    let flow = AuthCodeFlow::builder(server.base_url(), EXAMPLE_CLIENT_ID)
        .client_secret(EXAMPLE_CLIENT_SECRET)
        .redirect_uri(&redirect_uri)
        .scope("sms:message:send")
        .transport(Transport::new(client.clone()))
        .build()?;
    let (app, mut rounds) = app(flow, client.clone(), server.base_url(), "41793026727");
    let serving = tokio::spawn(async move { axum::serve(listener, router(app)).await });

    // The user's browser: follows Infobip's 302 to the callback, as a browser would.
    let browser = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .service(client);
    let page = browser
        .oneshot(Request::get(format!("{app_url}/connect")).body(Full::default())?)
        .await?;
    let status = page.status();
    let text = page.into_body().collect().await?.to_bytes();
    writeln!(
        log,
        "GET /connect → Infobip → /callback: {status}\n  {}",
        String::from_utf8_lossy(&text)
    )?;
    rounds.recv().await.ok_or("the callback never ran")?;

    let counters = server.counters();
    writeln!(
        log,
        "the server saw {} Exchange token request(s) and {} SMS request(s) with an IBSSO token",
        counters.exchange_token_requests,
        counters.resource_requests("IBSSO"),
    )?;
    serving.abort();
    server.shutdown().await;
    Ok(log)
}

/// Serves the app against a real Infobip account until Ctrl-C.
async fn against_infobip(client_id: &str) -> Result<(), BoxError> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("set {name}"));
    let var_or = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let client = http_client();
    let flow = AuthCodeFlow::builder(
        &var_or("INFOBIP_OAUTH_BASE_URL", "https://oneapi.infobip.com"),
        client_id,
    )
    .client_secret(&var("INFOBIP_CLIENT_SECRET")?)
    .redirect_uri(&var("INFOBIP_REDIRECT_URI")?)
    .scope(&var_or("INFOBIP_SCOPE", "sms:message:send"))
    .transport(Transport::new(client.clone()))
    .build()?;
    let (app, mut rounds) = app(flow, client, &var("INFOBIP_API_BASE_URL")?, &var("SMS_TO")?);
    let addr = var_or("APP_ADDR", "127.0.0.1:3000");
    let listener = TcpListener::bind(&addr).await?;
    println!("open http://{addr}/connect to connect an Infobip account (Ctrl-C stops)");
    tokio::spawn(async move {
        while let Some(page) = rounds.recv().await {
            println!("{page}");
        }
    });
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn app(
    flow: AuthCodeFlow,
    client: HttpClient,
    api_base_url: &str,
    sms_to: &str,
) -> (Arc<App>, mpsc::UnboundedReceiver<String>) {
    let (rounds, received) = mpsc::unbounded_channel();
    let app = App {
        flow,
        client,
        api_base_url: api_base_url.trim_end_matches('/').to_owned(),
        sms_to: sms_to.to_owned(),
        pending: Mutex::new(Pending::new()),
        connected: Mutex::new(HashMap::new()),
        rounds,
    };
    (Arc::new(app), received)
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/connect", get(connect))
        .route("/callback", get(callback))
        .with_state(app)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `GET /connect`: to Infobip's authorization page, with a fresh `state`.
async fn connect(State(app): State<Arc<App>>) -> Response {
    let (url, pending) = match app.flow.authorize_url() {
        Ok(made) => made,
        Err(err) => return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    };
    if let Err(full) = remember(&mut lock(&app.pending), pending) {
        return (StatusCode::SERVICE_UNAVAILABLE, full).into_response();
    }
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

/// `GET /callback?code=…&state=…`: connect the account, then send an SMS on its behalf.
async fn callback(
    State(app): State<Arc<App>>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let pending = query
        .get("state")
        .and_then(|state| lock(&app.pending).remove(state));
    let Some(pending) = pending else {
        return (StatusCode::BAD_REQUEST, "unknown or missing state").into_response();
    };
    let page = match connect_and_send(&app, pending, &uri.to_string()).await {
        Ok(page) => page,
        // Typed errors: a cancelled or expired authorization, a forged callback, a refused
        // code.
        Err(err) => format!("could not connect the account: {err}"),
    };
    let _ = app.rounds.send(page.clone());
    page.into_response()
}

async fn connect_and_send(
    app: &App,
    pending: PendingAuthorization,
    callback: &str,
) -> Result<String, BoxError> {
    // Checked before any network call; `pending` is used up, so it yields one grant at most.
    let grant = app.flow.callback(pending, callback)?;
    let source = app.flow.exchange(grant).await?;
    let account = source.account();
    // Keep-alive refreshes the one-minute token while the account sends nothing.
    let layer =
        InfobipAuthLayer::new(source).refresh_policy(RefreshPolicy::default().keep_alive(true));
    lock(&app.connected).insert(account.account_key.clone(), layer.clone());

    let sms = format!(
        r#"{{"messages":[{{"destinations":[{{"to":"{}"}}],"from":"InfoSMS","text":"Connected to {}"}}]}}"#,
        app.sms_to, account.username
    );
    let mut api = ServiceBuilder::new()
        .layer(layer)
        .service(app.client.clone());
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/sms/2/text/advanced", app.api_base_url))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(sms)))?;
    let answer = api.ready().await?.call(request).await?;
    Ok(format!(
        "connected {} <{}> of account {}; POST /sms/2/text/advanced on its behalf → {}",
        account.username,
        account.email,
        account.account_key,
        answer.status()
    ))
}

fn http_client() -> HttpClient {
    let https = HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    Client::builder(TokioExecutor::new()).build(https)
}
