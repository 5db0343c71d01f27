//! The layer over a tonic `Channel`: `cargo run --example tonic_channel`.
//!
//! tonic's request body is not `Clone`, so a refused call is handed back rather than replayed;
//! the credential is still set on every call and renewed before it expires. A gRPC server
//! refuses a credential with `UNAUTHENTICATED` and HTTP status 200, which the auth layer alone
//! does not read as a `401`: the `grpc_renewal()` layer inside it does, and renews the refused
//! credential, so the caller's retry carries the new one. The example starts a gRPC health
//! server on loopback whose interceptor takes the embedded server's OAuth tokens, revokes the
//! first one, and retries the refused call once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, MockServer};
use infobip_auth::source::{ClientCredentials, Transport};
use infobip_auth::{BoxError, InfobipAuthLayer};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // Issues the OAuth tokens.
    let server = MockServer::start().await?;

    // A gRPC health server that takes bearer tokens, except those it was told are revoked.
    let revoked = Arc::new(Mutex::new(HashSet::<String>::new()));
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let taken = revoked.clone();
    let require_token = move |request: Request<()>| {
        let value = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let revoked = taken.lock().unwrap_or_else(|p| p.into_inner());
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

    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let source = ClientCredentials::builder(server.base_url(), DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        .transport(Transport::new(http))
        .build()?;
    let auth = InfobipAuthLayer::new(source);
    let channel = Channel::from_shared(url)?.connect().await?;
    // The renewal after `UNAUTHENTICATED` goes inside the auth layer.
    let channel = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.grpc_renewal())
        .service(channel);
    let mut client = HealthClient::new(channel);
    let check = || HealthCheckRequest {
        service: String::new(),
    };
    let reply = client.check(check()).await?;
    println!("health: {:?}", reply.into_inner().status());

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
        .ok_or("a revoked token was taken")?;
    println!("refused: {:?}", refused.code());

    // The retry carries the new token.
    let reply = client.check(check()).await?;
    println!(
        "health after the renewal: {:?} ({} token requests)",
        reply.into_inner().status(),
        server.counters().oauth_token_requests
    );
    Ok(())
}
