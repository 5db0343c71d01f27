//! The layer over a tonic `Channel`: `cargo run --example tonic_channel`.
//!
//! tonic's request body is not `Clone`, so a `401` is handed back rather than replayed; the
//! credential is still set on every call and renewed before it expires. A server that refuses
//! it answers gRPC `UNAUTHENTICATED` with HTTP status 200, which the layer does not read as a
//! `401`: on that status, call `layer.refresh()`. The example starts a gRPC health server on
//! loopback that checks the `authorization` metadata.

use infobip_auth::{BoxError, InfobipAuthLayer};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;

const KEY: &str = "003026bbc133714df1834b8638bb496e";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let require_key = |request: Request<()>| match request.metadata().get("authorization") {
        Some(value) if value == format!("App {KEY}").as_str() => Ok(request),
        _ => Err(Status::unauthenticated("no valid credential")),
    };
    tokio::spawn(
        Server::builder()
            .layer(tonic::service::InterceptorLayer::new(require_key))
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );

    let channel = Channel::from_shared(url)?.connect().await?;
    let channel = ServiceBuilder::new()
        .layer(InfobipAuthLayer::api_key(KEY)?)
        .service(channel);
    let mut client = HealthClient::new(channel);
    let reply = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    println!("health: {:?}", reply.into_inner().status());
    Ok(())
}
