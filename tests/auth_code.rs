//! The Exchange authorization-code flow over real sockets, against the embedded server: an
//! axum app receives the callback, a hyper-util client follows Infobip's `302` like a browser,
//! and another one is the flow's transport.
//!
//! Time-driven behaviour (five minutes of refreshes, a lapse, one refresh under load) runs on
//! tokio's paused clock in the unit tests (`src/source/auth_code/tests.rs`): a paused clock
//! jumps to the next timer whenever the runtime waits for a socket, so it does not mix with
//! real connections.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode as AxumStatus;
use axum::routing::get;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{self, ExchangeApp, Fault, MockConfig, MockServer};
use infobip_auth::source::{AuthCode, AuthCodeFlow, MemoryStore, PendingAuthorization, Transport};
use infobip_auth::{BoxError, Error, ErrorKind, InfobipAuthLayer};
use tokio::net::TcpListener;
use tower::{Service as _, ServiceBuilder, ServiceExt as _};
use tower_http::follow_redirect::FollowRedirectLayer;

type TestResult = Result<(), BoxError>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;

const CLIENT_ID: &str = "0123456789abcdef0123456789abcdef";
const SECRET: &str = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5PQ==";
const SMS: &str =
    r#"{"messages":[{"destinations":[{"to":"41793026727"}],"from":"InfoSMS","text":"Hi"}]}"#;

/// The embedded server, an Exchange app registered with it, and the app's callback endpoint
/// on loopback, which checks the callback and exchanges the code.
struct Harness {
    server: MockServer,
    client: HttpClient,
    redirect_uri: String,
    callback: Arc<Callback>,
}

/// What the callback endpoint shares with the test.
struct Callback {
    flow: Mutex<Option<AuthCodeFlow>>,
    pending: Mutex<Option<PendingAuthorization>>,
    connected: Mutex<Option<AuthCode>>,
}

impl Harness {
    async fn start(config: impl FnOnce(MockConfig) -> MockConfig) -> Result<Self, BoxError> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let redirect_uri = format!("http://{}/callback", listener.local_addr()?);
        let app = ExchangeApp::new(CLIENT_ID, SECRET, &redirect_uri, mock::DEMO_USERNAME)
            .email("demo@example.com")
            .role(1393, "Designer");
        let server = MockServer::start_with(config(MockConfig::demo().exchange_app(app))).await?;
        let callback = Arc::new(Callback {
            flow: Mutex::new(None),
            pending: Mutex::new(None),
            connected: Mutex::new(None),
        });
        let router = Router::new()
            .route("/callback", get(receive))
            .with_state(Arc::clone(&callback));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(Self {
            server,
            client: Client::builder(TokioExecutor::new()).build_http(),
            redirect_uri,
            callback,
        })
    }

    /// The app's flow: with its client secret, or with PKCE and no secret.
    fn flow(&self, pkce: bool) -> Result<AuthCodeFlow, BoxError> {
        self.flow_to(pkce, &self.redirect_uri, SECRET)
    }

    fn flow_to(&self, pkce: bool, redirect: &str, secret: &str) -> Result<AuthCodeFlow, BoxError> {
        let builder = AuthCodeFlow::builder(self.server.base_url(), CLIENT_ID)
            .redirect_uri(redirect)
            .scope("sms:message:send")
            .transport(Transport::new(self.client.clone()));
        let builder = if pkce {
            builder.pkce()
        } else {
            builder.client_secret(secret)
        };
        Ok(builder.build()?)
    }

    /// Sends the "browser" to the authorization URL and lets it follow the `302` to the app's
    /// callback endpoint, which connects the account. Returns the endpoint's answer.
    async fn connect_through_browser(
        &self,
        flow: &AuthCodeFlow,
    ) -> Result<(StatusCode, String), BoxError> {
        let (url, pending) = flow.authorize_url()?;
        *lock(&self.callback.flow) = Some(flow.clone());
        *lock(&self.callback.pending) = Some(pending);
        let browser = ServiceBuilder::new()
            .layer(FollowRedirectLayer::new())
            .service(self.client.clone());
        let response = browser
            .oneshot(Request::get(url).body(Full::default())?)
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// The account connected by the last callback.
    fn connected(&self) -> Result<AuthCode, BoxError> {
        lock(&self.callback.connected)
            .clone()
            .ok_or_else(|| "no account connected".into())
    }

    /// Asks the authorization endpoint for a code without following the redirect; returns
    /// the callback URL Infobip would send the user to.
    async fn callback_url(
        &self,
        flow: &AuthCodeFlow,
    ) -> Result<(String, PendingAuthorization), BoxError> {
        let (url, pending) = flow.authorize_url()?;
        let response = self
            .client
            .request(Request::get(url).body(Full::default())?)
            .await?;
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = response
            .headers()
            .get(header::LOCATION)
            .ok_or("no Location")?
            .to_str()?
            .to_owned();
        Ok((location, pending))
    }

    /// Sends an SMS through the layer; returns the status.
    async fn send_sms(&self, layer: &InfobipAuthLayer) -> Result<StatusCode, BoxError> {
        let mut service = ServiceBuilder::new()
            .layer(layer.clone())
            .service(self.client.clone());
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.server.url("/sms/2/text/advanced"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(SMS.as_bytes())))?;
        Ok(service.ready().await?.call(request).await?.status())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `GET /callback?code=…&state=…`: the app's side, as an integrator writes it.
async fn receive(
    State(callback): State<Arc<Callback>>,
    OriginalUri(uri): OriginalUri,
) -> (AxumStatus, String) {
    let (Some(flow), Some(pending)) =
        (lock(&callback.flow).clone(), lock(&callback.pending).take())
    else {
        return (AxumStatus::BAD_REQUEST, "no authorization pending".into());
    };
    let result = async {
        let grant = flow.callback(pending, &uri.to_string())?;
        flow.exchange(grant).await
    }
    .await;
    match result {
        Ok(source) => {
            let answer = format!("connected {}", source.account().username);
            *lock(&callback.connected) = Some(source);
            (AxumStatus::OK, answer)
        }
        Err(err) => (AxumStatus::BAD_REQUEST, err.to_string()),
    }
}

fn kind(result: &Result<AuthCode, Error>) -> Option<&ErrorKind> {
    result.as_ref().err().map(Error::kind)
}

/// A `400` from the token endpoint whose text says `words`.
fn refused_for(result: &Result<AuthCode, Error>, words: &str) -> bool {
    matches!(kind(result), Some(ErrorKind::TokenEndpoint(api))
        if api.status() == StatusCode::BAD_REQUEST && api.text().is_some_and(|t| t.contains(words)))
}

async fn whole_flow(pkce: bool) -> TestResult {
    let harness = Harness::start(|config| config).await?;
    let flow = harness.flow(pkce)?;
    let (status, body) = harness.connect_through_browser(&flow).await?;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "connected demo-user")
    );
    let source = harness.connected()?;
    let account = source.account();
    assert_eq!(account.email, "demo@example.com");
    assert_eq!(account.roles.len(), 1);
    assert_eq!(source.credential().scheme(), "IBSSO");

    let layer = InfobipAuthLayer::new(source);
    assert_eq!(harness.send_sms(&layer).await?, StatusCode::OK);
    // The token works for the account, and a refresh trades it for another that works too.
    let before = layer.credential().await?;
    let after = layer.refresh().await?;
    assert_ne!(before.expose_token(), after.expose_token());
    assert_eq!(harness.send_sms(&layer).await?, StatusCode::OK);

    let counters = harness.server.counters();
    assert_eq!(counters.exchange_token_requests, 2, "exchange + refresh");
    assert_eq!(counters.resource_requests("IBSSO"), 2);
    Ok(())
}

#[tokio::test]
async fn the_whole_flow_with_a_client_secret() -> TestResult {
    whole_flow(false).await
}

#[tokio::test]
async fn the_whole_flow_with_pkce() -> TestResult {
    whole_flow(true).await
}

#[tokio::test]
async fn a_reused_code_is_refused() -> TestResult {
    let harness = Harness::start(|config| config).await?;
    let flow = harness.flow(false)?;
    let (callback, pending) = harness.callback_url(&flow).await?;
    // An app that kept a copy of the pending authorization (its serialized form) can send
    // the code twice; the type system stops that with one `PendingAuthorization`.
    let copy = PendingAuthorization::new(pending.state(), None)?;
    flow.exchange(flow.callback(pending, &callback)?).await?;
    let again = flow.exchange(flow.callback(copy, &callback)?).await;
    assert!(
        refused_for(&again, "already been used"),
        "{:?}",
        kind(&again)
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_code_is_refused() -> TestResult {
    let harness = Harness::start(|config| config.code_lifetime(Duration::ZERO)).await?;
    let flow = harness.flow(false)?;
    let (callback, pending) = harness.callback_url(&flow).await?;
    let result = flow.exchange(flow.callback(pending, &callback)?).await;
    assert!(refused_for(&result, "expired"), "{:?}", kind(&result));
    Ok(())
}

#[tokio::test]
async fn a_wrong_verifier_is_refused() -> TestResult {
    let harness = Harness::start(|config| config).await?;
    let flow = harness.flow(true)?;
    let (callback, pending) = harness.callback_url(&flow).await?;
    let (_, other) = flow.authorize_url()?;
    let swapped = PendingAuthorization::new(pending.state(), other.expose_verifier())?;
    let result = flow.exchange(flow.callback(swapped, &callback)?).await;
    assert!(refused_for(&result, "code_verifier"), "{:?}", kind(&result));
    Ok(())
}

#[tokio::test]
async fn a_mismatched_redirect_uri_is_refused() -> TestResult {
    let harness = Harness::start(|config| config).await?;
    let flow = harness.flow(false)?;
    let (callback, pending) = harness.callback_url(&flow).await?;
    let elsewhere = harness.flow_to(false, "https://elsewhere.example/callback", SECRET)?;
    let result = elsewhere
        .exchange(elsewhere.callback(pending, &callback)?)
        .await;
    assert!(refused_for(&result, "redirect_uri"), "{:?}", kind(&result));
    Ok(())
}

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_credentials() -> TestResult {
    let harness = Harness::start(|config| config).await?;
    let flow = harness.flow(false)?;
    let (callback, pending) = harness.callback_url(&flow).await?;
    let wrong = harness.flow_to(false, &harness.redirect_uri, "bm90LXRoZS1zZWNyZXQ=")?;
    let result = wrong.exchange(wrong.callback(pending, &callback)?).await;
    assert!(
        matches!(kind(&result), Some(ErrorKind::InvalidCredentials(_))),
        "{:?}",
        kind(&result)
    );
    let shown = format!("{result:?}");
    assert!(!shown.contains("bm90LXRoZS1zZWNyZXQ="), "{shown}");
    Ok(())
}

#[tokio::test]
async fn a_wrong_state_is_refused_before_any_request() -> TestResult {
    let harness = Harness::start(|config| config).await?;
    let flow = harness.flow(false)?;
    let (callback, _) = harness.callback_url(&flow).await?;
    let (_, another) = flow.authorize_url()?;
    let (_, yet_another) = flow.authorize_url()?;
    let err = flow.callback(another, &callback).err();
    assert!(
        matches!(
            err.as_ref().map(Error::kind),
            Some(ErrorKind::InvalidCallback { .. })
        ),
        "{err:?}"
    );
    // Through the app's endpoint too: a callback meant for another flow is refused there.
    *lock(&harness.callback.flow) = Some(flow.clone());
    *lock(&harness.callback.pending) = Some(yet_another);
    let forged = harness
        .client
        .request(Request::get(callback).body(Full::default())?)
        .await?;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert_eq!(harness.server.counters().exchange_token_requests, 0);
    Ok(())
}

#[tokio::test]
async fn a_revoked_token_requires_reauthorization() -> TestResult {
    let harness = Harness::start(|config| config).await?;
    let flow = harness.flow(false)?;
    harness.connect_through_browser(&flow).await?;
    let source = harness.connected()?;
    let layer = InfobipAuthLayer::new(source.clone());
    assert_eq!(harness.send_sms(&layer).await?, StatusCode::OK);

    harness
        .server
        .revoke_token(source.credential().expose_token());
    let refused = harness.send_sms(&layer).await;
    // The 401 made the layer try one refresh, which Infobip refuses for a dead token.
    let refreshes = harness.server.counters().exchange_token_requests;
    assert_eq!(refreshes, 2, "{refused:?}");
    let err = match refused {
        Ok(status) => {
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            harness
                .send_sms(&layer)
                .await
                .err()
                .ok_or("sent after reauthorization was required")?
        }
        Err(err) => err,
    };
    assert!(
        matches!(
            Error::find(&*err).map(Error::kind),
            Some(ErrorKind::ReauthorizationRequired)
        ),
        "{err}"
    );
    assert!(harness.send_sms(&layer).await.is_err());
    assert_eq!(
        harness.server.counters().exchange_token_requests,
        refreshes,
        "a refused token is not tried again"
    );
    Ok(())
}

#[tokio::test]
async fn concurrent_refreshes_and_requests_share_one_token_request() -> TestResult {
    let harness = Arc::new(Harness::start(|config| config).await?);
    let flow = harness.flow(true)?;
    harness.connect_through_browser(&flow).await?;
    let layer = InfobipAuthLayer::new(harness.connected()?);
    assert_eq!(harness.send_sms(&layer).await?, StatusCode::OK);
    harness.server.set_latency(Duration::from_millis(200));

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let layer = layer.clone();
        tasks.spawn(async move { layer.refresh().await.map(|c| c.expose_token().to_owned()) });
    }
    let mut tokens = Vec::new();
    while let Some(token) = tasks.join_next().await {
        tokens.push(token??);
    }
    for _ in 0..10 {
        assert_eq!(harness.send_sms(&layer).await?, StatusCode::OK);
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "{} different tokens", tokens.len());
    let counters = harness.server.counters();
    assert_eq!(
        counters.exchange_token_requests, 2,
        "exchange + one refresh"
    );
    assert_eq!(counters.max_token_requests_in_flight, 1);
    Ok(())
}

/// A refresh whose answer was lost after the server issued a new token: the server keeps the
/// old token alive for the rest of its minute (it does not rotate it), so the old one serves
/// and a refresh after the backoff trades it again; the lost token is never used or stored.
/// Had the server ended the old token, the next refresh is refused and the user must authorize
/// again: typed, stored as dead, and never asked again.
#[tokio::test(start_paused = true)]
async fn a_refresh_whose_answer_is_lost_keeps_the_old_token_or_requires_reauthorization()
-> TestResult {
    let harness = Harness::start(|config| config).await?;
    let flow = harness.flow(false)?;
    harness.connect_through_browser(&flow).await?;
    let source = harness.connected()?;
    let store = MemoryStore::new();
    source.save_to(store.clone()).await?;
    let layer = InfobipAuthLayer::new(source.clone());
    assert_eq!(harness.send_sms(&layer).await?, StatusCode::OK);
    let stored = || store.get().map(|t| t.expose_token().to_owned());
    let old = source.credential().expose_token().to_owned();

    harness.server.inject(Fault::AnswerLost);
    let lost = layer.refresh().await;
    assert!(
        lost.as_ref()
            .is_err_and(|e| matches!(e.kind(), ErrorKind::Transport)),
        "{lost:?}"
    );
    assert_eq!(
        harness.send_sms(&layer).await?,
        StatusCode::OK,
        "the old token serves"
    );
    assert_eq!(stored().as_deref(), Some(old.as_str()));
    tokio::time::sleep(Duration::from_secs(2)).await; // past the backoff
    let fresh = layer.refresh().await?;
    assert_ne!(fresh.expose_token(), old);
    assert_eq!(stored().as_deref(), Some(fresh.expose_token()));
    assert_eq!(harness.server.counters().exchange_token_requests, 3);

    // A server that rotates: the refresh issued a token and ended the one it was sent.
    harness.server.inject(Fault::AnswerLost);
    assert!(layer.refresh().await.is_err(), "the answer was lost");
    harness.server.revoke_token(fresh.expose_token());
    let mut outcomes = Vec::new();
    for _ in 0..30 {
        outcomes.push(harness.send_sms(&layer).await);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let last = outcomes.last().ok_or("no request")?;
    let err = last.as_ref().err().ok_or("sent after the token died")?;
    assert!(
        matches!(
            Error::find(&**err).map(Error::kind),
            Some(ErrorKind::ReauthorizationRequired)
        ),
        "{err}"
    );
    let counters = harness.server.counters();
    assert_eq!(
        counters.exchange_token_requests, 5,
        "one refused refresh, no loop"
    );
    assert!(counters.unauthorized <= 2, "{}", counters.unauthorized);
    assert!(
        source
            .credential()
            .expiry()
            .is_some_and(|at| at <= tokio::time::Instant::now())
    );
    let kept = store.get().ok_or("nothing stored")?;
    assert_eq!(kept.expose_token(), fresh.expose_token());
    assert!(
        kept.expires_at() <= std::time::SystemTime::now(),
        "stored as alive"
    );
    Ok(())
}
