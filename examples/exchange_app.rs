//! An Exchange app on axum, connecting Infobip accounts through OAuth:
//! `cargo run --example exchange_app`.
//!
//! - `GET /connect` sends the user to Infobip's authorization page
//!   (`/exchange/1/oauth/authorize`), keeping the `state` to check the callback against for
//!   ten minutes, and setting it in a cookie that binds the authorization to this browser
//!   (expired ones are forgotten; at most `MAX_PENDING` are kept, the one expiring first
//!   making room for a new one);
//! - `GET /callback?code=…&state=…` takes the authorization named by the browser's cookie
//!   (once: a replay is refused), checks the callback against it (a link started in another
//!   browser is refused), exchanges the code for a token (and the account's details), then
//!   sends an SMS on the account's behalf through `InfobipAuthLayer`, which refreshes the
//!   one-minute token for as long as the connection is kept. A cancelled or forged callback
//!   is a `400`, a refused exchange a `502`.
//!
//! Run as it is, it starts the embedded Infobip-compatible server on loopback, plays the
//! user's browser once (following each `302` with a real HTTP client, the app's cookie
//! included), prints what the app answered and what the server saw, and exits. No network is
//! used.
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
use std::time::SystemTime;

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{Method, Request, Response as HttpResponse};
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{self, ExchangeApp, MockConfig, MockServer};
use infobip_auth::source::{AuthCodeFlow, AuthorizationGrant, PendingAuthorization, Transport};
use infobip_auth::{BoxError, InfobipAuthLayer, RefreshPolicy};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::{Service as _, ServiceBuilder, ServiceExt as _};

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

/// The cookie that names, in the browser that went to `/connect`, the authorization it started.
const STATE_COOKIE: &str = "infobip_state";

/// Keeps `pending` until its callback, after forgetting the expired ones (their callbacks
/// would be refused anyway). When `MAX_PENDING` are still under way, the one expiring first
/// makes room: a flood of `/connect` requests shortens how long each authorization waits for
/// its callback instead of locking every other user out.
pub fn remember(map: &mut Pending, pending: PendingAuthorization) {
    map.retain(|_, kept| !kept.is_expired());
    if map.len() >= MAX_PENDING {
        let first_to_expire = map
            .iter()
            .min_by_key(|(_, kept)| kept.expires_at())
            .map(|(state, _)| state.clone());
        if let Some(state) = first_to_expire {
            map.remove(&state);
        }
    }
    map.insert(pending.state().to_owned(), pending);
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
    let server = demo_server(&redirect_uri).await?;
    let mut log = format!(
        "embedded Infobip-compatible server at {}\n",
        server.base_url()
    );

    let client = http_client();
    let (app, mut rounds) = demo_app(&server, &redirect_uri, client.clone())?;
    let serving = tokio::spawn(async move { axum::serve(listener, router(app)).await });

    // The user's browser: `/connect` redirects it to Infobip's authorization page, which
    // approves at once and redirects it to `/callback`; it sends the app's cookie back there.
    let connect = browse(&client, &format!("{app_url}/connect"), None).await?;
    let cookie = header_text(&connect, header::SET_COOKIE)?;
    let cookie = cookie.split(';').next().unwrap_or_default();
    let approval = browse(&client, header_text(&connect, header::LOCATION)?, None).await?;
    let callback = header_text(&approval, header::LOCATION)?;
    let page = browse(&client, callback, Some(cookie)).await?;
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

/// The embedded server, with the example's Exchange app registered to call back `redirect_uri`.
pub async fn demo_server(redirect_uri: &str) -> Result<MockServer, BoxError> {
    let exchange_app = ExchangeApp::new(
        EXAMPLE_CLIENT_ID,
        EXAMPLE_CLIENT_SECRET,
        redirect_uri,
        mock::DEMO_USERNAME,
    );
    Ok(MockServer::start_with(MockConfig::demo().exchange_app(exchange_app)).await?)
}

/// The app's routes against `server` (from [`demo_server`]), for tests.
pub fn demo_router(server: &MockServer, redirect_uri: &str) -> Result<Router, BoxError> {
    let (app, _) = demo_app(server, redirect_uri, http_client())?;
    Ok(router(app))
}

fn demo_app(
    server: &MockServer,
    redirect_uri: &str,
    client: HttpClient,
) -> Result<(Arc<App>, mpsc::UnboundedReceiver<String>), BoxError> {
    let flow = AuthCodeFlow::builder(server.base_url(), EXAMPLE_CLIENT_ID)
        .client_secret(EXAMPLE_CLIENT_SECRET)
        .redirect_uri(redirect_uri)
        .scope("sms:message:send")
        .transport(Transport::new(client.clone()))
        .build()?;
    Ok(app(flow, client, server.base_url(), "41793026727"))
}

/// One `GET` by the demo's browser, sending `cookie` if it has one.
async fn browse(
    client: &HttpClient,
    url: &str,
    cookie: Option<&str>,
) -> Result<HttpResponse<hyper::body::Incoming>, BoxError> {
    let mut request = Request::get(url);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    Ok(client.request(request.body(Full::default())?).await?)
}

fn header_text<B>(answer: &HttpResponse<B>, name: header::HeaderName) -> Result<&str, BoxError> {
    let value = answer.headers().get(&name).ok_or(format!("no {name}"))?;
    Ok(value.to_str()?)
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

/// `GET /connect`: to Infobip's authorization page, with a fresh `state`, also set in a cookie
/// so that only this browser can complete the authorization.
async fn connect(State(app): State<Arc<App>>) -> Response {
    let (url, pending) = match app.flow.authorize_url() {
        Ok(made) => made,
        Err(err) => return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    };
    let lifetime = pending
        .expires_at()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    // `Lax`: the browser sends it on Infobip's redirect back, a top-level navigation.
    let secure = if app.flow.redirect_uri().starts_with("https:") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{STATE_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        pending.state(),
        lifetime.as_secs()
    );
    remember(&mut lock(&app.pending), pending);
    let headers = [
        (header::LOCATION, url.to_string()),
        (header::SET_COOKIE, cookie),
    ];
    (StatusCode::FOUND, headers).into_response()
}

/// `GET /callback?code=…&state=…`: connect the account, then send an SMS on its behalf.
async fn callback(
    State(app): State<Arc<App>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    // The cookie names the authorization this browser started, used up here; `callback` then
    // refuses a `state` other than its own (a link someone sent from an authorization of theirs).
    let pending = state_cookie(&headers).and_then(|state| lock(&app.pending).remove(state));
    let (status, page) = match pending.map(|pending| app.flow.callback(pending, &uri.to_string())) {
        None => (
            StatusCode::BAD_REQUEST,
            "no authorization under way in this browser".to_owned(),
        ),
        // Checked before any network call: a cancelled or expired authorization, a forged
        // callback.
        Some(Err(err)) => (StatusCode::BAD_REQUEST, format!("not connected: {err}")),
        Some(Ok(grant)) => match connect_and_send(&app, grant).await {
            Ok(page) => (StatusCode::OK, page),
            // A refused code, or Infobip out of reach.
            Err(err) => (
                StatusCode::BAD_GATEWAY,
                format!("could not connect the account: {err}"),
            ),
        },
    };
    let _ = app.rounds.send(page.clone());
    let forget = format!("{STATE_COOKIE}=; Path=/; Max-Age=0");
    (status, [(header::SET_COOKIE, forget)], page).into_response()
}

/// The `state` in the browser's `STATE_COOKIE`.
fn state_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(STATE_COOKIE)?.strip_prefix('='))
}

async fn connect_and_send(app: &App, grant: AuthorizationGrant) -> Result<String, BoxError> {
    let source = app.flow.exchange(grant).await?;
    let account = source.account();
    // Keep-alive refreshes the one-minute token while the account sends nothing.
    let layer =
        InfobipAuthLayer::new(source).refresh_policy(RefreshPolicy::default().keep_alive(true));
    lock(&app.connected).insert(account.account_key.clone(), layer.clone());

    let sms = serde_json::json!({"messages": [{
        "destinations": [{"to": app.sms_to}],
        "from": "InfoSMS",
        "text": format!("Connected to {}", account.username),
    }]});
    let mut api = ServiceBuilder::new()
        .layer(layer)
        .service(app.client.clone());
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/sms/2/text/advanced", app.api_base_url))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Full::new(Bytes::from(sms.to_string())))?;
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
