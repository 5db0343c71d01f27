//! An Exchange app on axum, connecting Infobip accounts through OAuth:
//! `cargo run --example exchange_app [TOKEN_DIR]`.
//!
//! - `GET /connect` sends the user to Infobip's authorization page
//!   (`/exchange/1/oauth/authorize`), keeping the `state` to check the callback against for
//!   ten minutes. A cookie names the browser, and each authorization is bound to the browser
//!   that started it, so several tabs can connect at once (at most
//!   `MAX_PENDING_PER_BROWSER` per browser and `MAX_PENDING` in all are kept, the one
//!   expiring first making room for a new one; expired ones are forgotten);
//! - `GET /callback?code=…&state=…` takes the authorization its `state` names, if this
//!   browser started it (once: a replay is refused; a link started in another browser is
//!   refused), checks the callback against it, exchanges the code for a token (and the
//!   account's details), then sends an SMS on the account's behalf through
//!   `InfobipAuthLayer`, which refreshes the one-minute token for as long as the connection
//!   is kept. A cancelled or forged callback is a `400`, a refused exchange a `502`;
//! - `POST /accounts/{account_key}/sms` sends another SMS on a connected account's behalf
//!   (`404` when it is not connected);
//! - `POST /accounts/{account_key}/disconnect` forgets the account: its token is no longer
//!   refreshed (so it dies within its minute) and its saved copy is deleted.
//!
//! With a token directory (the first argument, or `TOKEN_DIR`), each account's token is kept
//! in `<dir>/<account_key>.json`, readable by its owner alone, and a restart within the token's
//! minute picks the connections up again. Without one, connections live in memory only.
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
//!    `https://oneapi.infobip.com`), `APP_ADDR` (default `127.0.0.1:3000`) and `TOKEN_DIR`.
//! 3. `cargo run --example exchange_app`, open `http://127.0.0.1:3000/connect` in a browser
//!    and approve. The app keeps serving until Ctrl-C.
//!
//! This example has no users of its own: a real app lets only its signed-in user send for,
//! or disconnect, the accounts that user connected.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::ErrorKind as IoErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::{OriginalUri, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{Method, Request, Response as HttpResponse};
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{self, ExchangeApp, MockConfig, MockServer};
use infobip_auth::source::{
    AuthCode, AuthCodeFlow, AuthorizationGrant, MemoryStore, PendingAuthorization, StoredToken,
    TokenStore, Transport,
};
use infobip_auth::{BoxError, ErrorKind, InfobipAuthLayer, RefreshPolicy};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::{Service as _, ServiceBuilder, ServiceExt as _};
use zeroize::Zeroizing;

/// One client for everything: HTTPS for Infobip, plain HTTP for the loopback server.
type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The embedded server's Exchange app (32 hex digits, as Exchange's client ids).
const EXAMPLE_CLIENT_ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const EXAMPLE_CLIENT_SECRET: &str = "c2VjcmV0LW9mLXRoZS1leGFtcGxlLWFwcC0yNTYtYml0cz0=";

/// An authorization under way, and the browser that started it (its `BROWSER_COOKIE`).
pub struct Started {
    browser: String,
    authorization: PendingAuthorization,
}

/// Authorizations under way, by `state`. A real app keeps them in the user's session.
pub type Pending = HashMap<String, Started>;

/// The most authorizations kept under way at once, so a flood of `/connect` requests cannot
/// grow the map without bound.
pub const MAX_PENDING: usize = 10_000;

/// The most authorizations one browser keeps under way: a few tabs connecting at once.
pub const MAX_PENDING_PER_BROWSER: usize = 5;

/// The cookie that names the browser, so that only the browser that went to `/connect` can
/// complete the authorization it started.
const BROWSER_COOKIE: &str = "infobip_browser";

/// Keeps `authorization`, started by `browser`, until its callback, after forgetting the
/// expired ones (their callbacks would be refused anyway). When the browser, or the whole
/// map, is full, the authorization expiring first makes room: a flood of `/connect` requests
/// shortens how long each authorization waits for its callback instead of locking every other
/// user out.
pub fn remember(map: &mut Pending, browser: &str, authorization: PendingAuthorization) {
    map.retain(|_, kept| !kept.authorization.is_expired());
    let browsers_own = map.values().filter(|kept| kept.browser == browser).count();
    if browsers_own >= MAX_PENDING_PER_BROWSER {
        forget_first_to_expire(map, |kept| kept.browser == browser);
    }
    if map.len() >= MAX_PENDING {
        forget_first_to_expire(map, |_| true);
    }
    let started = Started {
        browser: browser.to_owned(),
        authorization,
    };
    map.insert(started.authorization.state().to_owned(), started);
}

fn forget_first_to_expire(map: &mut Pending, among: impl Fn(&Started) -> bool) {
    let first_to_expire = map
        .iter()
        .filter(|(_, kept)| among(kept))
        .min_by_key(|(_, kept)| kept.authorization.expires_at())
        .map(|(state, _)| state.clone());
    if let Some(state) = first_to_expire {
        map.remove(&state);
    }
}

/// Takes the authorization `state` names, if `browser` started it. One started in another
/// browser stays: a forged link must not cancel its owner's authorization.
fn take(map: &mut Pending, state: &str, browser: Option<&str>) -> Option<PendingAuthorization> {
    let started = map.get(state)?;
    if browser != Some(started.browser.as_str()) {
        return None;
    }
    map.remove(state).map(|started| started.authorization)
}

/// A connected account: the layer that keeps its token alive, and its source, whose store
/// `disconnect` detaches.
#[derive(Clone)]
struct Connection {
    layer: InfobipAuthLayer,
    source: AuthCode,
}

impl Connection {
    fn new(source: AuthCode) -> Self {
        // Keep-alive refreshes the one-minute token while the account sends nothing.
        let layer = InfobipAuthLayer::new(source.clone())
            .refresh_policy(RefreshPolicy::default().keep_alive(true));
        Self { layer, source }
    }
}

/// What the handlers share.
struct App {
    flow: AuthCodeFlow,
    client: HttpClient,
    api_base_url: String,
    sms_to: String,
    /// Authorizations under way, by `state`.
    pending: Mutex<Pending>,
    /// Connected accounts, by account key.
    connected: Mutex<HashMap<String, Arc<Connection>>>,
    /// Held while a connection is replaced or forgotten, its token file included, so that one
    /// change's save or delete never lands in the middle of another's for the same account.
    /// One for all accounts keeps it simple; a change waits at most for a refresh under way.
    changing: tokio::sync::Mutex<()>,
    /// Where each account's token is saved; `None` keeps them in memory only.
    token_dir: Option<PathBuf>,
    /// Tells `main` what each callback page said.
    rounds: mpsc::UnboundedSender<String>,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let token_dir = std::env::args_os()
        .nth(1)
        .or_else(|| std::env::var_os("TOKEN_DIR"))
        .map(PathBuf::from);
    if let Ok(client_id) = std::env::var("INFOBIP_CLIENT_ID") {
        return against_infobip(&client_id, token_dir).await;
    }
    println!("{}", round(token_dir).await?);
    Ok(())
}

/// One full round against the embedded server: the browser goes to `/connect`, follows the
/// redirects through Infobip's authorization page back to `/callback`, and reads the answer.
pub async fn round(token_dir: Option<PathBuf>) -> Result<String, BoxError> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let app_url = format!("http://{}", listener.local_addr()?);
    let redirect_uri = format!("{app_url}/callback");
    let server = demo_server(&redirect_uri).await?;
    let mut log = format!(
        "embedded Infobip-compatible server at {}\n",
        server.base_url()
    );
    match &token_dir {
        Some(dir) => writeln!(log, "tokens kept in {}", dir.display())?,
        None => writeln!(log, "tokens kept in memory only")?,
    }

    let client = http_client();
    let (app, mut rounds) =
        demo_app(server.base_url(), &redirect_uri, client.clone(), token_dir).await?;
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

/// The app's routes against the server from [`demo_server`], reached at `base_url` (its own,
/// or a test's proxy), for tests: a new app, as after a restart, resuming the connections
/// saved in `token_dir`.
pub async fn demo_router(
    base_url: &str,
    redirect_uri: &str,
    token_dir: Option<PathBuf>,
) -> Result<Router, BoxError> {
    let (app, _) = demo_app(base_url, redirect_uri, http_client(), token_dir).await?;
    Ok(router(app))
}

async fn demo_app(
    base_url: &str,
    redirect_uri: &str,
    client: HttpClient,
    token_dir: Option<PathBuf>,
) -> Result<(Arc<App>, mpsc::UnboundedReceiver<String>), BoxError> {
    let flow = AuthCodeFlow::builder(base_url, EXAMPLE_CLIENT_ID)
        .client_secret(EXAMPLE_CLIENT_SECRET)
        .redirect_uri(redirect_uri)
        .scope("sms:message:send")
        .transport(Transport::new(client.clone()))
        .build()?;
    app(flow, client, base_url, "41793026727", token_dir).await
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
async fn against_infobip(client_id: &str, token_dir: Option<PathBuf>) -> Result<(), BoxError> {
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
    let api_base_url = var("INFOBIP_API_BASE_URL")?;
    let (app, mut rounds) = app(flow, client, &api_base_url, &var("SMS_TO")?, token_dir).await?;
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

async fn app(
    flow: AuthCodeFlow,
    client: HttpClient,
    api_base_url: &str,
    sms_to: &str,
    token_dir: Option<PathBuf>,
) -> Result<(Arc<App>, mpsc::UnboundedReceiver<String>), BoxError> {
    let (rounds, received) = mpsc::unbounded_channel();
    let app = App {
        flow,
        client,
        api_base_url: api_base_url.trim_end_matches('/').to_owned(),
        sms_to: sms_to.to_owned(),
        pending: Mutex::new(Pending::new()),
        connected: Mutex::new(HashMap::new()),
        changing: tokio::sync::Mutex::new(()),
        token_dir,
        rounds,
    };
    resume_saved(&app).await?;
    Ok((Arc::new(app), received))
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/connect", get(connect))
        .route("/callback", get(callback))
        .route("/accounts/{account_key}/sms", post(send))
        .route("/accounts/{account_key}/disconnect", post(disconnect))
        .with_state(app)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `GET /connect`: to Infobip's authorization page, with a fresh `state` bound to this
/// browser, so that only this browser can complete the authorization.
async fn connect(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let (url, pending) = match app.flow.authorize_url() {
        Ok(made) => made,
        Err(err) => return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    };
    // The same browser keeps its name, so its other tabs' authorizations stay under way.
    let browser = browser_cookie(&headers).map_or_else(new_browser_name, str::to_owned);
    let lifetime = pending
        .expires_at()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    remember(&mut lock(&app.pending), &browser, pending);
    // `Lax`: the browser sends it on Infobip's redirect back, a top-level navigation.
    let secure = if app.flow.redirect_uri().starts_with("https:") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{BROWSER_COOKIE}={browser}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        lifetime.as_secs()
    );
    let headers = [
        (header::LOCATION, url.to_string()),
        (header::SET_COOKIE, cookie),
    ];
    (StatusCode::FOUND, headers).into_response()
}

/// A new browser name: 128 random bits, as unguessable as a session id must be.
fn new_browser_name() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The browser's name in its `BROWSER_COOKIE`, if it is one this app could have made (a
/// browser's own cookie of another shape, or size, is replaced).
fn browser_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(BROWSER_COOKIE)?.strip_prefix('='))
        .filter(|name| name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `GET /callback?code=…&state=…`: connect the account, then send an SMS on its behalf.
async fn callback(
    State(app): State<Arc<App>>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    // The authorization `state` names, used up here if this browser started it; `callback`
    // then checks the rest of the answer against it.
    let pending = query.get("state").and_then(|state| {
        let browser = browser_cookie(&headers);
        take(&mut lock(&app.pending), state, browser)
    });
    let (status, page) = match pending.map(|pending| app.flow.callback(pending, &uri.to_string())) {
        None => (
            StatusCode::BAD_REQUEST,
            "no such authorization under way in this browser".to_owned(),
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
    (status, page).into_response()
}

async fn connect_and_send(app: &App, grant: AuthorizationGrant) -> Result<String, BoxError> {
    let source = app.flow.exchange(grant).await?;
    let account = source.account();
    let connection = Arc::new(Connection::new(source));
    let changing = app.changing.lock().await;
    // A reconnect replaces the account's connection: the old one is forgotten first, so that
    // none of its refreshes saves over the new token.
    forget(app, &account.account_key, None, &changing).await?;
    if let Some(dir) = &app.token_dir {
        // A failed save does not lose the connection: the source keeps the token in memory
        // and saves again at its next refresh. The error names no token.
        if let Err(err) = connection
            .source
            .save_to(TokenFile::new(dir, &account.account_key)?)
            .await
        {
            eprintln!("account {}: {err}", account.account_key);
        }
    }
    let layer = connection.layer.clone();
    lock(&app.connected).insert(account.account_key.clone(), connection);
    drop(changing);

    let status = send_sms(app, layer, &format!("Connected to {}", account.username)).await?;
    Ok(format!(
        "connected {} <{}> of account {}; POST /sms/2/text/advanced on its behalf → {status}",
        account.username, account.email, account.account_key,
    ))
}

/// `POST /accounts/{account_key}/sms`: one more SMS on a connected account's behalf.
async fn send(State(app): State<Arc<App>>, UrlPath(account_key): UrlPath<String>) -> Response {
    let connection = lock(&app.connected).get(&account_key).cloned();
    let Some(connection) = connection else {
        return (StatusCode::NOT_FOUND, "not connected").into_response();
    };
    match send_sms(&app, connection.layer.clone(), "Still connected").await {
        Ok(status) => (
            StatusCode::OK,
            format!("POST /sms/2/text/advanced → {status}"),
        )
            .into_response(),
        // The token died (no refresh came in time, or Infobip refused one): only a new
        // authorization helps, so the connection is of no more use. Only this one: a reconnect
        // may have replaced it meanwhile.
        Err(err) if needs_reauthorization(&err) => {
            let changing = app.changing.lock().await;
            let _ = forget(&app, &account_key, Some(&connection), &changing).await;
            (StatusCode::CONFLICT, "authorize the app again at /connect").into_response()
        }
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

fn needs_reauthorization(err: &BoxError) -> bool {
    err.downcast_ref::<infobip_auth::Error>()
        .is_some_and(|err| matches!(err.kind(), ErrorKind::ReauthorizationRequired))
}

/// Sends a test SMS through `layer`, which sets the account's token.
async fn send_sms(app: &App, layer: InfobipAuthLayer, text: &str) -> Result<StatusCode, BoxError> {
    let sms = serde_json::json!({"messages": [{
        "destinations": [{"to": app.sms_to}],
        "from": "InfoSMS",
        "text": text,
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
    Ok(api.ready().await?.call(request).await?.status())
}

/// `POST /accounts/{account_key}/disconnect`: forgets a connected account.
async fn disconnect(
    State(app): State<Arc<App>>,
    UrlPath(account_key): UrlPath<String>,
) -> Response {
    let changing = app.changing.lock().await;
    match forget(&app, &account_key, None, &changing).await {
        Ok(true) => (StatusCode::OK, "disconnected").into_response(),
        Ok(false) => (StatusCode::NOT_FOUND, "not connected").into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// Proof that the caller holds `App::changing`.
type Changing<'a> = tokio::sync::MutexGuard<'a, ()>;

/// Forgets `account_key`'s connection and its saved token; `false` when it was not connected.
/// With `only`, forgets nothing unless that connection is still the account's: a failed one
/// must not take a newer connection, or its file, with it.
///
/// Infobip offers no way to end an Exchange token (`InfobipAuthLayer::revoke` only forgets
/// it, and the source would hand it back), so dropping the layer is what ends it: nothing
/// refreshes the token any more, and it dies within its minute.
async fn forget(
    app: &App,
    account_key: &str,
    only: Option<&Arc<Connection>>,
    _changing: &Changing<'_>,
) -> Result<bool, BoxError> {
    let connection = {
        let mut connected = lock(&app.connected);
        let held = connected.get(account_key);
        let is_the_one = |held: &Arc<Connection>| only.is_none_or(|only| Arc::ptr_eq(only, held));
        if held.is_some_and(is_the_one) {
            connected.remove(account_key)
        } else {
            None
        }
    };
    let Some(connection) = connection else {
        return Ok(false);
    };
    if let Some(dir) = &app.token_dir {
        // Detached first: `save_to` waits for a refresh under way, so no save writes the
        // token back after the file is deleted.
        connection.source.save_to(MemoryStore::new()).await?;
        TokenFile::new(dir, account_key)?.delete().await?;
    }
    Ok(true)
}

/// Picks up the connections saved in the token directory by an earlier run, within their
/// tokens' minute; a token that died meanwhile is deleted (only a new authorization helps), and
/// so is what a save cut short by a crash left beside the files.
async fn resume_saved(app: &App) -> Result<(), BoxError> {
    let Some(dir) = &app.token_dir else {
        return Ok(());
    };
    create_private_dir(dir).await?;
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "partial") {
            // A save cut short by a crash: half a token at most, of no use.
            let _ = tokio::fs::remove_file(&path).await;
            continue;
        }
        let Some(file) = TokenFile::at(path) else {
            continue;
        };
        match app.flow.resume(file.clone()).await {
            Ok(source) => {
                let account_key = source.account().account_key;
                let connection = Arc::new(Connection::new(source));
                // Keep-alive starts with the layer's first credential, which a connection made
                // in this run takes for its first SMS: without it, an idle one would die.
                if let Err(err) = connection.layer.credential().await {
                    eprintln!("account {account_key}: {err}");
                }
                lock(&app.connected).insert(account_key, connection);
            }
            Err(err) if matches!(err.kind(), ErrorKind::ReauthorizationRequired) => {
                file.delete().await?;
            }
            // An unreadable file stays for someone to look at; the error names no token.
            Err(err) => eprintln!("{}: {err}", file.path.display()),
        }
    }
    Ok(())
}

/// The example's `TokenStore`: one account's token in a JSON file of its own, readable by
/// its owner alone. A real app keeps tokens in its database instead (a row per account,
/// encrypted at rest), shared by all its instances.
#[derive(Clone, Debug)]
pub struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    /// `<dir>/<account_key>.json`. Account keys are hex digits; anything else is refused
    /// rather than let into a path.
    pub fn new(dir: &Path, account_key: &str) -> Result<Self, BoxError> {
        if account_key.is_empty() || !account_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("an account key that cannot name a file".into());
        }
        Ok(Self {
            path: dir.join(format!("{account_key}.json")),
        })
    }

    /// The store `path` is, if it is one (`*.json`).
    fn at(path: PathBuf) -> Option<Self> {
        let is_json = path.extension().is_some_and(|ext| ext == "json");
        is_json.then_some(Self { path })
    }

    async fn delete(&self) -> std::io::Result<()> {
        match tokio::fs::remove_file(&self.path).await {
            Err(err) if err.kind() != IoErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

impl TokenStore for TokenFile {
    async fn save(&self, token: &StoredToken) -> Result<(), BoxError> {
        let json = Zeroizing::new(serde_json::to_vec(token)?);
        // Written beside the file, then renamed over it: a crash mid-write never leaves half
        // a token, and a reader never sees one. Each save has a side file of its own, so two
        // saves at once (two tabs approving) never write into one another's.
        let partial = self
            .path
            .with_extension(format!("json.{:016x}.partial", rand::random::<u64>()));
        let file = create_private_file(&partial).await?;
        let written = async {
            let mut file = file;
            file.write_all(&json).await?;
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(&partial, &self.path).await
        };
        if let Err(err) = written.await {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(err.into());
        }
        Ok(())
    }

    async fn load(&self) -> Result<Option<StoredToken>, BoxError> {
        match tokio::fs::read(&self.path).await {
            Ok(json) => Ok(Some(serde_json::from_slice(&Zeroizing::new(json))?)),
            Err(err) if err.kind() == IoErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }
}

/// A new file only its owner can read or write (on Unix; elsewhere the directory's own
/// permissions must guard it).
async fn create_private_file(path: &Path) -> std::io::Result<tokio::fs::File> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path).await
}

/// The token directory, made only its owner's if it is new.
async fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir).await
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
