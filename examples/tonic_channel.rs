//! The layer over a tonic `Channel`: `cargo run --example tonic_channel`.
//!
//! tonic's request body is not `Clone`, so a refused call is handed back rather than replayed;
//! the credential is still set on every call and renewed before it expires. A gRPC server
//! refuses a credential with `UNAUTHENTICATED` and HTTP status 200, which the auth layer alone
//! does not read as a `401`: the `grpc_renewal()` layer inside it does, and renews the refused
//! credential, so the caller's retry carries the new one. The example starts a gRPC health
//! server on loopback whose interceptor takes the embedded server's OAuth tokens, revokes the
//! first one, and retries the refused call once. tonic gives the channel paths without a host,
//! so the layer is told where they go (`relative_uris_go_to`); it refuses them otherwise.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, MockServer};
use infobip_auth::source::{ClientCredentials, Transport};
use infobip_auth::{BoxError, InfobipAuthLayer};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // Issues the OAuth tokens.
    let server = MockServer::start().await?;
    let calls = check_health_across_a_renewal(server.base_url()).await?;
    println!("health: {:?}", calls.first);
    println!("refused: {:?}", calls.refused);
    println!(
        "health after the renewal: {:?} ({} token requests)",
        calls.after_renewal,
        server.counters().oauth_token_requests
    );
    Ok(())
}

/// What the three health checks got back.
#[derive(Debug)]
pub struct Calls {
    pub first: ServingStatus,
    pub refused: Code,
    pub after_renewal: ServingStatus,
}

/// Checks a gRPC server's health with OAuth tokens from `oauth_base_url`, before and after the
/// server stops taking the first token.
pub async fn check_health_across_a_renewal(oauth_base_url: &str) -> Result<Calls, BoxError> {
    let revoked = Revoked::default();
    let url = health_server(revoked.clone()).await?;

    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let source = ClientCredentials::builder(oauth_base_url, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        .transport(Transport::new(http))
        .build()?;
    // tonic hands the channel paths only (`/grpc.health.v1.Health/Check`) and the channel adds
    // its origin: the layer is told which origin that is, and allows it.
    let auth = InfobipAuthLayer::new(source)
        .allow_origin(&url)?
        .relative_uris_go_to(&url)?;
    // A limit on each call, as copied code should have.
    let channel = Channel::from_shared(url)?
        .timeout(Duration::from_secs(30))
        .connect()
        .await?;
    // The renewal after `UNAUTHENTICATED` goes inside the auth layer.
    let channel = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.grpc_renewal())
        .service(channel);
    let mut client = HealthClient::new(channel);
    let check = || HealthCheckRequest {
        service: String::new(),
    };
    let first = client.check(check()).await?.into_inner().status();

    // The server stops taking the token: the call is refused and the token renewed.
    let sent = auth.credential().await?.header().to_str()?.to_owned();
    revoked
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(sent);
    let refused = client
        .check(check())
        .await
        .err()
        .ok_or("a revoked token was taken")?
        .code();

    // The retry carries the new token.
    let after_renewal = client.check(check()).await?.into_inner().status();
    Ok(Calls {
        first,
        refused,
        after_renewal,
    })
}

/// The `authorization` values the health server no longer takes.
type Revoked = Arc<Mutex<HashSet<String>>>;

/// Starts a gRPC health server on loopback that takes bearer tokens, except those in
/// `revoked`; returns its URL.
async fn health_server(revoked: Revoked) -> Result<String, BoxError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let require_token = move |request: Request<()>| {
        let value = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let revoked = revoked.lock().unwrap_or_else(|p| p.into_inner());
        match value {
            Some(token) if token.starts_with("Bearer ") && !revoked.contains(token) => Ok(request),
            _ => Err(Status::unauthenticated("no valid credential")),
        }
    };
    tokio::spawn(
        Server::builder()
            .layer(tonic::service::InterceptorLayer::new(require_token))
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Ok(url)
}
