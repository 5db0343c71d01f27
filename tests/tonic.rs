//! The layer over a real `tonic::transport::Channel` (whose body type is not `Clone`), talking
//! to a real gRPC health server on loopback.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use infobip_auth::mock::MockServer;
use infobip_auth::{BoxError, Error, ErrorKind, InfobipAuthLayer};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;

/// Every `authorization` value the server saw, in order (the tests' own tokens).
type Seen = Arc<Mutex<Vec<String>>>;

fn all_seen(seen: &Seen) -> Vec<String> {
    seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Starts a gRPC health server whose interceptor refuses, with `UNAUTHENTICATED`, calls whose
/// `authorization` metadata `accept` does not take, and records every value it saw.
async fn health_server(
    accept: impl Fn(&str) -> bool + Clone + Send + Sync + 'static,
    seen: Seen,
) -> Result<String, BoxError> {
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
        if accept(&value) {
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

/// A health server that takes any token the embedded server's OAuth endpoint issued until it
/// is revoked, and the layer over that OAuth client.
struct OAuthHealth {
    server: MockServer,
    url: String,
    auth: InfobipAuthLayer,
    revoked: Arc<Mutex<HashSet<String>>>,
    seen: Seen,
}

impl OAuthHealth {
    async fn start() -> Result<Self, BoxError> {
        let server = MockServer::start().await?;
        let revoked = Arc::new(Mutex::new(HashSet::<String>::new()));
        let taken = revoked.clone();
        let accept = move |value: &str| {
            let revoked = taken.lock().unwrap_or_else(|p| p.into_inner());
            value.starts_with("Bearer ") && !revoked.contains(value)
        };
        let seen = Seen::default();
        let url = health_server(accept, seen.clone()).await?;
        // The tokens come from the embedded server; the calls go to the health server.
        let auth = support::oauth(&server)?
            .allow_origin(&url)?
            .relative_uris_go_to(&url)?;
        Ok(Self {
            server,
            url,
            auth,
            revoked,
            seen,
        })
    }

    /// The server stops taking the first token it saw; answers that token.
    fn revoke_first(&self) -> String {
        let first = all_seen(&self.seen)[0].clone();
        self.revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(first.clone());
        first
    }
}

/// The call was refused for its credential.
fn assert_unauthenticated<T>(outcome: Result<T, Status>) -> Result<(), BoxError> {
    let status = outcome.err().ok_or("a revoked token was taken")?;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    Ok(())
}

const CHECK: HealthCheckRequest = HealthCheckRequest {
    service: String::new(),
};

#[tokio::test]
async fn a_tonic_channel_carries_the_credential_in_authorization_metadata() -> Result<(), BoxError>
{
    let seen = Seen::default();
    let url = health_server(|value| value == "App secret-key", seen.clone()).await?;
    let channel = Channel::from_shared(url.clone())?.connect().await?;
    // tonic hands the channel path-only URIs; the channel itself is bound to the server, and
    // the layer is told which one.
    let auth = InfobipAuthLayer::api_key("secret-key")?
        .allow_origin(&url)?
        .relative_uris_go_to(&url)?;
    let authenticated = ServiceBuilder::new().layer(auth).service(channel);
    let mut client = HealthClient::new(authenticated);
    for _ in 0..3 {
        let reply = client.check(CHECK).await?;
        assert_eq!(reply.into_inner().status(), ServingStatus::Serving);
    }
    assert_eq!(all_seen(&seen), ["App secret-key"; 3]);
    Ok(())
}

#[tokio::test]
async fn a_tonic_channel_the_layer_was_not_told_of_gets_no_credential() -> Result<(), BoxError> {
    let seen = Seen::default();
    let url = health_server(|_| true, seen.clone()).await?;
    let channel = Channel::from_shared(url)?.connect().await?;
    // The channel's paths name no host the layer could check: nothing is sent.
    let authenticated = ServiceBuilder::new()
        .layer(InfobipAuthLayer::api_key("secret-key")?)
        .service(channel);
    let status = HealthClient::new(authenticated)
        .check(CHECK)
        .await
        .err()
        .ok_or("the call went through")?;
    let kind = Error::find(&status).map(Error::kind);
    assert!(
        matches!(kind, Some(ErrorKind::HostNotAllowed { .. })),
        "{status:?}"
    );
    assert_eq!(all_seen(&seen), Vec::<String>::new());
    Ok(())
}

#[tokio::test]
async fn a_grpc_unauthenticated_renews_the_credential_for_the_next_call() -> Result<(), BoxError> {
    let grpc = OAuthHealth::start().await?;
    let channel = Channel::from_shared(grpc.url.clone())?.connect().await?;
    let channel = ServiceBuilder::new()
        .layer(grpc.auth.clone())
        .layer(grpc.auth.grpc_renewal())
        .service(channel);
    let mut client = HealthClient::new(channel);
    let reply = client.check(CHECK).await?;
    assert_eq!(reply.into_inner().status(), ServingStatus::Serving);

    // The server stops taking the first token: that call is refused, and handed back.
    let first = grpc.revoke_first();
    assert_unauthenticated(client.check(CHECK).await)?;

    // The next call carries a new token, fetched once.
    let reply = client.check(CHECK).await?;
    assert_eq!(reply.into_inner().status(), ServingStatus::Serving);
    let seen = all_seen(&grpc.seen);
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1], first);
    assert_ne!(seen[2], first);
    assert_eq!(grpc.server.counters().oauth_token_requests, 2);
    Ok(())
}

#[tokio::test]
async fn without_the_grpc_renewal_layer_an_unauthenticated_call_renews_nothing()
-> Result<(), BoxError> {
    let grpc = OAuthHealth::start().await?;
    let channel = Channel::from_shared(grpc.url.clone())?.connect().await?;
    let channel = ServiceBuilder::new()
        .layer(grpc.auth.clone())
        .service(channel);
    let mut client = HealthClient::new(channel);
    client.check(CHECK).await?;
    let first = grpc.revoke_first();
    // HTTP 200 with `grpc-status: 16` is no `401` to the auth layer: the token stays.
    assert_unauthenticated(client.check(CHECK).await)?;
    assert_unauthenticated(client.check(CHECK).await)?;
    assert_eq!(all_seen(&grpc.seen), [first.clone(), first.clone(), first]);
    assert_eq!(grpc.server.counters().oauth_token_requests, 1);
    Ok(())
}

#[tokio::test]
async fn a_refused_call_carries_an_error_to_the_layers_around_the_channel() -> Result<(), BoxError>
{
    let grpc = OAuthHealth::start().await?;
    let channel = Channel::from_shared(grpc.url.clone())?.connect().await?;
    // tonic's client makes a `Status` of the refusal; a layer around the channel sees the
    // HTTP response, and the `Error` in it.
    let found = Arc::new(Mutex::new(Vec::new()));
    let record = found.clone();
    let channel = ServiceBuilder::new()
        .map_response(move |response: http::Response<_>| {
            let kind = response
                .extensions()
                .get::<Error>()
                .map(|e| e.kind().clone());
            record.lock().unwrap_or_else(|p| p.into_inner()).push(kind);
            response
        })
        .layer(grpc.auth.clone())
        .layer(grpc.auth.grpc_renewal())
        .service(channel);
    let mut client = HealthClient::new(channel);
    client.check(CHECK).await?;
    grpc.revoke_first();
    assert_unauthenticated(client.check(CHECK).await)?;

    let found = found.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0], None, "a served call carries no error");
    let Some(ErrorKind::InvalidCredentials(said)) = &found[1] else {
        return Err(format!("the refusal came without its error: {:?}", found[1]).into());
    };
    assert_eq!(said.code(), Some("UNAUTHENTICATED"));
    Ok(())
}
