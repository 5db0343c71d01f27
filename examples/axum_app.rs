//! An axum app whose handler sends messages through one shared, layered client kept in state:
//! `cargo run --example axum_app`.
//!
//! The app serves `POST /notify/{phone}`; the example starts it and the embedded Infobip server
//! on loopback, calls it once, prints the answer and exits. Every handler call clones the
//! layered client: clones share one credential cache, so one token serves them all.
//!
//! Infobip's answer passes through when the caller can act on it; Infobip refusing the app's
//! own credential (`401`, `403`) or failing, and any error on the way, is a `502` whose
//! details go to the app's log, not to the caller; no answer within `INFOBIP_TIMEOUT` is a
//! `504`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{DEMO_API_KEY, MockServer};
use infobip_auth::{BoxError, InfobipAuth, InfobipAuthLayer};
use tower::{ServiceBuilder, ServiceExt as _};

/// How long a handler waits for Infobip's whole answer, body included.
const INFOBIP_TIMEOUT: Duration = Duration::from_secs(30);

/// The layered Infobip client, cheap to clone.
type Infobip = InfobipAuth<Client<HttpConnector, Full<Bytes>>>;

#[derive(Clone)]
struct AppState {
    infobip: Infobip,
    base_url: String,
}

async fn notify(
    State(state): State<AppState>,
    Path(phone): Path<String>,
) -> (StatusCode, Json<serde_json::Value>) {
    let sms = serde_json::json!({"messages": [{"destinations": [{"to": phone}], "text": "Your order has shipped"}]});
    let request = Request::post(format!("{}/sms/2/text/advanced", state.base_url))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(sms.to_string())));
    let sent = async {
        let response = state.infobip.oneshot(request?).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, BoxError>((status, serde_json::from_slice(&body).unwrap_or_default()))
    };
    // The crate's errors carry no secret, but they are the app's business: logged, not sent.
    let failed = match tokio::time::timeout(INFOBIP_TIMEOUT, sent).await {
        Ok(Ok((status, json))) if !is_our_problem(status) => return (status, Json(json)),
        Ok(Ok((status, _))) => {
            eprintln!("Infobip answered {status}");
            StatusCode::BAD_GATEWAY
        }
        Ok(Err(error)) => {
            eprintln!("sending to Infobip failed: {error}");
            StatusCode::BAD_GATEWAY
        }
        Err(_) => {
            eprintln!("Infobip did not answer within {INFOBIP_TIMEOUT:?}");
            StatusCode::GATEWAY_TIMEOUT
        }
    };
    let error = serde_json::json!({"error": "the message could not be sent"});
    (failed, Json(error))
}

/// Whether Infobip's `status` says the app, not its caller, must act: its credential was
/// refused or lacks a scope, or Infobip failed.
fn is_our_problem(status: StatusCode) -> bool {
    matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) || status.is_server_error()
}

/// The app, sending through the Infobip API at `base_url`.
pub fn app(base_url: &str) -> Result<Router, BoxError> {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let infobip = ServiceBuilder::new()
        .layer(InfobipAuthLayer::api_key(DEMO_API_KEY)?.allow_origin(base_url)?)
        .service(client);
    let state = AppState {
        infobip,
        base_url: base_url.to_owned(),
    };
    Ok(Router::new()
        .route("/notify/{phone}", post(notify))
        .with_state(state))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let infobip_server = MockServer::start().await?;
    let app = app(infobip_server.base_url())?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(
            Request::post(format!("{app_url}/notify/41793026727")).body(Full::new(Bytes::new()))?,
        )
        .await?;
    println!("POST /notify/41793026727 → {}", response.status());
    let body = response.into_body().collect().await?.to_bytes();
    println!("{}", String::from_utf8_lossy(&body));
    Ok(())
}
