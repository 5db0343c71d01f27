//! The layer over a real `tonic::transport::Channel` (whose body type is not `Clone`), talking
//! to a real gRPC health server on loopback.

use std::sync::{Arc, Mutex};

use infobip_auth::{BoxError, InfobipAuthLayer};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;

/// Starts a gRPC health server that refuses calls without `authorization: App secret-key` and
/// records every `authorization` value it saw (the test's own key, not a real secret).
async fn health_server(seen: Arc<Mutex<Vec<String>>>) -> Result<String, BoxError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let check = move |request: Request<()>| {
        let value = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        seen.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(value.clone());
        if value == "App secret-key" {
            Ok(request)
        } else {
            Err(Status::unauthenticated("missing credential"))
        }
    };
    tokio::spawn(
        Server::builder()
            .layer(tonic::service::InterceptorLayer::new(check))
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    Ok(format!("http://{address}"))
}

#[tokio::test]
async fn a_tonic_channel_carries_the_credential_in_authorization_metadata() -> Result<(), BoxError>
{
    let seen = Arc::new(Mutex::new(Vec::new()));
    let url = health_server(seen.clone()).await?;
    let channel = Channel::from_shared(url)?.connect().await?;
    // tonic hands the channel path-only URIs; the channel itself is bound to the server.
    let authenticated = ServiceBuilder::new()
        .layer(InfobipAuthLayer::api_key("secret-key")?)
        .service(channel);
    let mut client = HealthClient::new(authenticated);
    for _ in 0..3 {
        let reply = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        assert_eq!(reply.into_inner().status(), ServingStatus::Serving);
    }
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(seen, ["App secret-key"; 3]);
    Ok(())
}
