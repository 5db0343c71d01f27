//! Runs the Exchange app example's round, so `cargo run --example exchange_app` cannot
//! silently break, and drives its routes as browsers would.

#[allow(dead_code)]
#[path = "../examples/exchange_app.rs"]
mod exchange_app;
mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::response::IntoResponse as _;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Full};
use infobip_auth::mock::MockServer;
use infobip_auth::source::{PendingAuthorization, StoredToken, TokenStore as _};
use infobip_auth::{Account, BoxError};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::ServiceExt as _;

/// Where the app calls back: an address no test listens on (the tests hand the callback to the
/// routes themselves).
const REDIRECT_URI: &str = "http://127.0.0.1:3000/callback";

#[tokio::test]
async fn the_example_connects_an_account_and_sends_an_sms() -> Result<(), BoxError> {
    let log = exchange_app::round(None).await?;
    assert!(
        log.contains("connected demo-user <demo-user@example.com> of account"),
        "{log}"
    );
    assert!(log.contains("→ 200 OK"), "{log}");
    assert!(
        log.contains("1 Exchange token request(s) and 1 SMS request(s)"),
        "{log}"
    );
    assert!(!log.contains("c2VjcmV0"), "{log}");
    Ok(())
}

#[test]
fn the_app_forgets_expired_authorizations() -> Result<(), BoxError> {
    let mut pending = exchange_app::Pending::new();
    let past = SystemTime::now() - Duration::from_secs(1);
    let lapsed = PendingAuthorization::new("lapsed", None)?.with_expiry(past);
    exchange_app::remember(&mut pending, "browser", lapsed);
    let live = PendingAuthorization::new("live", None)?;
    exchange_app::remember(&mut pending, "browser", live);
    assert!(!pending.contains_key("lapsed") && pending.contains_key("live"));
    Ok(())
}

#[test]
fn a_full_table_of_authorizations_makes_room_by_forgetting_the_one_expiring_first()
-> Result<(), BoxError> {
    let mut pending = exchange_app::Pending::new();
    let soon = SystemTime::now() + Duration::from_secs(60);
    let first = PendingAuthorization::new("first", None)?.with_expiry(soon);
    exchange_app::remember(&mut pending, "b0", first);
    for n in 1..exchange_app::MAX_PENDING {
        let later = soon + Duration::from_secs(1);
        let authorization = PendingAuthorization::new(&format!("s{n}"), None)?.with_expiry(later);
        exchange_app::remember(&mut pending, &format!("b{n}"), authorization);
    }
    let one_more = PendingAuthorization::new("one-more", None)?;
    exchange_app::remember(&mut pending, "another", one_more);
    assert!(pending.contains_key("one-more") && !pending.contains_key("first"));
    assert_eq!(pending.len(), exchange_app::MAX_PENDING);
    Ok(())
}

#[test]
fn one_browser_keeps_a_few_authorizations_and_makes_room_among_its_own() -> Result<(), BoxError> {
    let mut pending = exchange_app::Pending::new();
    let soon = SystemTime::now() + Duration::from_secs(60);
    let others = PendingAuthorization::new("others", None)?.with_expiry(soon);
    exchange_app::remember(&mut pending, "other-browser", others);
    for n in 0..=exchange_app::MAX_PENDING_PER_BROWSER {
        let at = soon + Duration::from_secs(1 + n as u64);
        let authorization = PendingAuthorization::new(&format!("tab{n}"), None)?.with_expiry(at);
        exchange_app::remember(&mut pending, "browser", authorization);
    }
    // The browser's oldest tab made room; the other browser's authorization, expiring sooner
    // still, stays.
    assert!(!pending.contains_key("tab0") && pending.contains_key("others"));
    assert_eq!(pending.len(), 1 + exchange_app::MAX_PENDING_PER_BROWSER);
    Ok(())
}

/// The embedded server and the app's routes, the app keeping tokens in `token_dir` if given.
async fn app(token_dir: Option<&Path>) -> Result<(MockServer, Router), BoxError> {
    let server = exchange_app::demo_server(REDIRECT_URI).await?;
    let router = restart(&server, token_dir).await?;
    Ok((server, router))
}

/// A new app against `server`, as after a restart.
async fn restart(server: &MockServer, token_dir: Option<&Path>) -> Result<Router, BoxError> {
    let token_dir = token_dir.map(Path::to_path_buf);
    exchange_app::demo_router(server.base_url(), REDIRECT_URI, token_dir).await
}

/// A browser's cookie jar: the app's one cookie, as the app last set it.
#[derive(Default)]
struct Browser {
    cookie: Option<String>,
}

impl Browser {
    /// This browser's `/connect`: the callback (path and query) Infobip's authorization page
    /// sent it back to.
    async fn connect(&mut self, router: &Router) -> Result<String, BoxError> {
        let answer = router.clone().oneshot(self.get("/connect")?).await?;
        assert_eq!(answer.status(), StatusCode::FOUND);
        if let Some(set) = answer.headers().get(header::SET_COOKIE) {
            self.cookie = set.to_str()?.split(';').next().map(str::to_owned);
        }
        let authorize = answer
            .headers()
            .get(header::LOCATION)
            .ok_or("no redirect")?
            .to_str()?;
        let approval = support::client()
            .request(Request::get(authorize).body(Full::default())?)
            .await?;
        let callback: Uri = approval
            .headers()
            .get(header::LOCATION)
            .ok_or("the authorization page did not send the browser back")?
            .to_str()?
            .parse()?;
        Ok(callback.path_and_query().ok_or("no path")?.to_string())
    }

    /// The app's answer to `callback` in this browser, and its page.
    async fn call_back(
        &self,
        router: &Router,
        callback: &str,
    ) -> Result<(StatusCode, String), BoxError> {
        let answer = router.clone().oneshot(self.get(callback)?).await?;
        let status = answer.status();
        let page = answer.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8(page.to_vec())?))
    }

    /// Connects the demo account through `/connect` and `/callback`: its account key.
    async fn connect_account(&mut self, router: &Router) -> Result<String, BoxError> {
        let callback = self.connect(router).await?;
        let (status, page) = self.call_back(router, &callback).await?;
        assert_eq!(status, StatusCode::OK, "{page}");
        let key = page.split("of account ").nth(1).ok_or("no account")?;
        Ok(key.split(';').next().unwrap_or_default().to_owned())
    }

    fn get(&self, path: &str) -> Result<Request<Body>, http::Error> {
        let mut request = Request::get(path);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.body(Body::empty())
    }
}

/// The app's answer to `POST /accounts/{account_key}/{action}`.
async fn post(router: &Router, account_key: &str, action: &str) -> Result<StatusCode, BoxError> {
    let request = Request::post(format!("/accounts/{account_key}/{action}")).body(Body::empty())?;
    Ok(router.clone().oneshot(request).await?.status())
}

/// A directory of its own for one test, removed when it ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let unique = format!("exchange-app-{name}-{}", std::process::id());
        let dir = std::env::temp_dir().join(unique);
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    fn token_file(&self, account_key: &str) -> PathBuf {
        self.0.join(format!("{account_key}.json"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_callback_completes_only_once_and_only_in_the_browser_that_started_it()
-> Result<(), BoxError> {
    let (server, router) = app(None).await?;
    // Someone starts an authorization of their own account and sends its callback link to
    // another user, whose browser did not start it.
    let mut own = Browser::default();
    let forged = own.connect(&router).await?;
    let (status, _) = Browser::default().call_back(&router, &forged).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut other = Browser::default();
    other.connect(&router).await?;
    assert_eq!(
        other.call_back(&router, &forged).await?.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(server.counters().exchange_token_requests, 0);

    // In the browser that started it, the callback connects the account, once.
    assert_eq!(own.call_back(&router, &forged).await?.0, StatusCode::OK);
    assert_eq!(
        own.call_back(&router, &forged).await?.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(server.counters().exchange_token_requests, 1);
    Ok(())
}

#[tokio::test]
async fn a_cancelled_or_refused_authorization_is_an_error_status() -> Result<(), BoxError> {
    let (server, router) = app(None).await?;
    let mut browser = Browser::default();
    let callback = browser.connect(&router).await?;
    let state = callback.split("state=").nth(1).ok_or("no state")?;
    let cancelled = format!("/callback?error=access_denied&state={state}");
    let (status, _) = browser.call_back(&router, &cancelled).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let callback = browser.connect(&router).await?;
    let state = callback.split("state=").nth(1).ok_or("no state")?;
    let unknown_code = format!("/callback?code=0123456789abcdef&state={state}");
    let (status, _) = browser.call_back(&router, &unknown_code).await?;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(server.counters().exchange_token_requests, 1);
    Ok(())
}

#[tokio::test]
async fn two_tabs_of_one_browser_both_connect() -> Result<(), BoxError> {
    let (server, router) = app(None).await?;
    let mut browser = Browser::default();
    let first_tab = browser.connect(&router).await?;
    let second_tab = browser.connect(&router).await?;
    let (status, page) = browser.call_back(&router, &first_tab).await?;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (status, page) = browser.call_back(&router, &second_tab).await?;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(server.counters().exchange_token_requests, 2);
    Ok(())
}

#[tokio::test]
async fn a_disconnected_account_sends_nothing_until_it_connects_again() -> Result<(), BoxError> {
    let dir = TempDir::new("disconnect");
    let (server, router) = app(Some(&dir.0)).await?;
    let mut browser = Browser::default();
    let account_key = browser.connect_account(&router).await?;
    assert_eq!(post(&router, &account_key, "sms").await?, StatusCode::OK);

    assert_eq!(
        post(&router, &account_key, "disconnect").await?,
        StatusCode::OK
    );
    assert_eq!(
        post(&router, &account_key, "sms").await?,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(&router, &account_key, "disconnect").await?,
        StatusCode::NOT_FOUND
    );
    // Its saved token went too: a restart does not bring it back.
    assert!(!dir.token_file(&account_key).exists());
    let restarted = restart(&server, Some(&dir.0)).await?;
    assert_eq!(
        post(&restarted, &account_key, "sms").await?,
        StatusCode::NOT_FOUND
    );

    // Connecting again works as the first time.
    assert_eq!(browser.connect_account(&restarted).await?, account_key);
    assert_eq!(post(&restarted, &account_key, "sms").await?, StatusCode::OK);
    assert_eq!(server.counters().resource_requests("IBSSO"), 4);
    Ok(())
}

#[tokio::test]
async fn a_restart_with_a_token_dir_keeps_the_connection() -> Result<(), BoxError> {
    let dir = TempDir::new("restart");
    let (server, router) = app(Some(&dir.0)).await?;
    let account_key = Browser::default().connect_account(&router).await?;
    drop(router);

    let restarted = restart(&server, Some(&dir.0)).await?;
    assert_eq!(post(&restarted, &account_key, "sms").await?, StatusCode::OK);
    assert_eq!(server.counters().exchange_token_requests, 1);
    // Without the directory, the connection lived in that process alone.
    let forgetful = restart(&server, None).await?;
    assert_eq!(
        post(&forgetful, &account_key, "sms").await?,
        StatusCode::NOT_FOUND
    );
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn only_the_owner_can_read_a_saved_token() -> Result<(), BoxError> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new("permissions");
    let (_server, router) = app(Some(&dir.0)).await?;
    let account_key = Browser::default().connect_account(&router).await?;
    let mode = |path: &Path| Ok::<_, std::io::Error>(std::fs::metadata(path)?.permissions().mode());
    assert_eq!(mode(&dir.token_file(&account_key))? & 0o777, 0o600);
    assert_eq!(mode(&dir.0)? & 0o777, 0o700);
    Ok(())
}

#[tokio::test]
async fn a_token_that_died_before_the_restart_is_deleted() -> Result<(), BoxError> {
    let dir = TempDir::new("died");
    let (server, router) = app(Some(&dir.0)).await?;
    let account_key = Browser::default().connect_account(&router).await?;
    drop(router);
    // The restart came after the token's minute.
    let file = dir.token_file(&account_key);
    let saved: StoredToken = serde_json::from_slice(&std::fs::read(&file)?)?;
    let past = SystemTime::now() - Duration::from_secs(1);
    let dead = StoredToken::new(
        saved.token_type(),
        saved.expose_token(),
        past,
        saved.account().clone(),
    );
    std::fs::write(&file, serde_json::to_vec(&dead)?)?;

    let restarted = restart(&server, Some(&dir.0)).await?;
    assert_eq!(
        post(&restarted, &account_key, "sms").await?,
        StatusCode::NOT_FOUND
    );
    assert!(!file.exists());
    Ok(())
}

/// A connection picked up after a restart is kept alive as one made in this run: idle past
/// its token's minute, it still sends.
#[tokio::test(start_paused = true)]
async fn a_connection_resumed_after_a_restart_is_kept_alive_while_idle() -> Result<(), BoxError> {
    let dir = TempDir::new("resumed-idle");
    let (server, router) = app(Some(&dir.0)).await?;
    let account_key = Browser::default().connect_account(&router).await?;
    drop(router);

    let restarted = restart(&server, Some(&dir.0)).await?;
    tokio::time::sleep(Duration::from_secs(150)).await;
    assert_eq!(post(&restarted, &account_key, "sms").await?, StatusCode::OK);
    Ok(())
}

/// The embedded server behind a loopback proxy that can hold one SMS request until the test
/// lets it go: a send caught between taking its connection and hearing back.
struct Proxy {
    base_url: String,
    hold: Arc<Mutex<Option<Hold>>>,
    serving: tokio::task::JoinHandle<()>,
}

/// The held request's signals: it arrived; it may go on.
type Hold = (oneshot::Sender<()>, oneshot::Receiver<()>);

impl Proxy {
    async fn start(server: &MockServer) -> Result<Self, BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let hold = Arc::new(Mutex::new(None::<Hold>));
        let upstream = server.base_url().to_owned();
        let held = Arc::clone(&hold);
        let forward = move |request: Request<Body>| {
            let upstream = upstream.clone();
            let held = Arc::clone(&held);
            async move {
                let (mut parts, body) = request.into_parts();
                if parts.uri.path() == "/sms/2/text/advanced" {
                    let hold = held.lock().map_or(None, |mut hold| hold.take());
                    if let Some((arrived, go_on)) = hold {
                        let _ = arrived.send(());
                        let _ = go_on.await;
                    }
                }
                let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
                parts.uri = format!("{upstream}{path}").parse()?;
                let body = Full::new(body.collect().await?.to_bytes());
                let answer = support::client()
                    .request(Request::from_parts(parts, body))
                    .await?;
                Ok::<_, BoxError>(answer.map(Body::new))
            }
        };
        let proxy = Router::new().fallback(move |request: Request<Body>| async move {
            forward(request)
                .await
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        });
        let serving = tokio::spawn(async move {
            let _ = axum::serve(listener, proxy).await;
        });
        Ok(Self {
            base_url,
            hold,
            serving,
        })
    }

    /// Holds the next SMS request: the first receiver hears when it arrives; sending on the
    /// second lets it go on.
    fn hold_next_sms(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (arrived, on_arrival) = oneshot::channel();
        let (go_on, released) = oneshot::channel();
        if let Ok(mut hold) = self.hold.lock() {
            *hold = Some((arrived, released));
        }
        (on_arrival, go_on)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// A send whose token dies while a reconnect of the same account completes forgets only its
/// own connection: the new one stays, and so does its saved token.
#[tokio::test]
async fn a_send_that_finds_its_token_dead_leaves_a_reconnect_made_meanwhile() -> Result<(), BoxError>
{
    let dir = TempDir::new("reconnected-meanwhile");
    let server = exchange_app::demo_server(REDIRECT_URI).await?;
    let proxy = Proxy::start(&server).await?;
    let router =
        exchange_app::demo_router(&proxy.base_url, REDIRECT_URI, Some(dir.0.clone())).await?;
    let mut browser = Browser::default();
    let account_key = browser.connect_account(&router).await?;

    // A send takes the connection; its SMS is held on the way.
    let (arrived, go_on) = proxy.hold_next_sms();
    let send = tokio::spawn(post_owned(router.clone(), account_key.clone()));
    arrived.await?;
    // Its token is revoked, and the user connects the account again meanwhile.
    server.revoke_all_tokens();
    assert_eq!(browser.connect_account(&router).await?, account_key);
    let _ = go_on.send(());
    // The old token is refused and cannot be refreshed: that send asks for a new
    // authorization, which the reconnect already made.
    assert_eq!(send.await??, StatusCode::CONFLICT);

    assert_eq!(post(&router, &account_key, "sms").await?, StatusCode::OK);
    let restarted =
        exchange_app::demo_router(&proxy.base_url, REDIRECT_URI, Some(dir.0.clone())).await?;
    assert_eq!(post(&restarted, &account_key, "sms").await?, StatusCode::OK);
    Ok(())
}

async fn post_owned(router: Router, account_key: String) -> Result<StatusCode, BoxError> {
    post(&router, &account_key, "sms").await
}

/// Two saves of one account at once (two tabs approving together) leave one whole token,
/// never a torn file or a failed save, and no side file behind.
#[tokio::test]
async fn two_saves_at_once_leave_one_whole_token() -> Result<(), BoxError> {
    let dir = TempDir::new("saves-at-once");
    std::fs::create_dir_all(&dir.0)?;
    let file = exchange_app::TokenFile::new(&dir.0, "8F0792F86035A9F4290821F1EE6BC06A")?;
    let expires_at = SystemTime::now() + Duration::from_secs(60);
    let long = "b".repeat(64 * 1024);
    let short_token = StoredToken::new("IBSSO", "a", expires_at, Account::default());
    let long_token = StoredToken::new("IBSSO", &long, expires_at, Account::default());
    for _ in 0..20 {
        let (first, second) = tokio::join!(file.save(&short_token), file.save(&long_token));
        first?;
        second?;
        let loaded = file.load().await?.ok_or("no token saved")?;
        assert!(loaded.expose_token() == "a" || loaded.expose_token() == long);
    }
    assert_eq!(std::fs::read_dir(&dir.0)?.count(), 1);
    Ok(())
}

/// A save that fails after writing its side file removes it.
#[tokio::test]
async fn a_failed_save_leaves_no_side_file() -> Result<(), BoxError> {
    let dir = TempDir::new("failed-save");
    let account_key = "8F0792F86035A9F4290821F1EE6BC06A";
    // A directory where the token file goes: the rename over it fails.
    std::fs::create_dir_all(dir.token_file(account_key))?;
    let file = exchange_app::TokenFile::new(&dir.0, account_key)?;
    let expires_at = SystemTime::now() + Duration::from_secs(60);
    let token = StoredToken::new("IBSSO", "a", expires_at, Account::default());
    assert!(file.save(&token).await.is_err());
    assert_eq!(std::fs::read_dir(&dir.0)?.count(), 1);
    Ok(())
}
