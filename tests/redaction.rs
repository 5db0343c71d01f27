//! `Debug` of every public type that holds a secret, or a credential made from one, shows no
//! secret: formatted plainly and pretty, once the layer has fetched, cached and sent a live
//! token (the unit tests format most of them before any credential is held). Covers the types
//! no other test formats: `SharedTokenSource`, `GrpcRenewalLayer`, `GrpcRenewal`, the response
//! futures, the reqwest middleware and the Exchange flow's builder with a client secret.

mod support;

use std::fmt::Debug;

use http::StatusCode;
use infobip_auth::mock::{self, MockServer};
use infobip_auth::source::{AuthCodeFlow, Basic, ClientCredentials, Session, SharedTokenSource};
use infobip_auth::{BoxError, InfobipAuthLayer};
use tower::{Layer as _, Service as _, ServiceExt as _};

/// Both ways a value may be formatted with `Debug`.
fn shown(value: &impl Debug) -> String {
    format!("{value:?}\n{value:#?}\n")
}

#[tokio::test]
async fn no_secret_in_the_debug_of_any_type_that_holds_one() -> Result<(), BoxError> {
    let server = MockServer::start().await?;
    let transport = || support::transport(&support::client());
    let mut text = String::new();

    // A renewing source, shared, behind the layer, the gRPC renewal layer and the reqwest
    // middleware, after a request has put its token in the cache and a service clone's copy.
    let oauth = ClientCredentials::builder(
        server.base_url(),
        mock::DEMO_CLIENT_ID,
        mock::DEMO_CLIENT_SECRET,
    )
    .transport(transport())
    .build()?;
    let shared = SharedTokenSource::from(oauth.clone());
    let layer = InfobipAuthLayer::new(shared.clone());
    let mut service = layer.layer(support::client());
    let future = service.ready().await?.call(support::reports(&server));
    text += &shown(&future);
    assert_eq!(future.await?.status(), StatusCode::OK);
    let credential = layer.credential().await?;
    let token = credential.expose_token().to_owned();
    let grpc_layer = layer.grpc_renewal();
    let mut grpc = grpc_layer.layer(support::client());
    let grpc_future = grpc.ready().await?.call(support::reports(&server));
    text += &shown(&grpc_future);
    let grpc_response = grpc_future.await?;
    text += &shown(grpc_response.body());
    text += &shown(&oauth);
    text += &shown(&shared);
    text += &shown(&credential);
    text += &shown(&layer);
    text += &shown(&service);
    text += &shown(&grpc_layer);
    text += &shown(&grpc);
    #[cfg(feature = "reqwest")]
    {
        text += &shown(&layer.reqwest_middleware());
    }

    // Fixed credentials, once sent.
    for layer in [
        InfobipAuthLayer::api_key(mock::DEMO_API_KEY)?,
        InfobipAuthLayer::new(Basic::new(mock::DEMO_USERNAME, mock::DEMO_PASSWORD)?),
    ] {
        let layer = layer.allow_origin(server.base_url())?;
        let mut service = layer.layer(support::client());
        let response = service
            .ready()
            .await?
            .call(support::reports(&server))
            .await?;
        assert_eq!(response.status(), StatusCode::OK);
        text += &shown(&layer);
        text += &shown(&service);
        text += &shown(&layer.credential().await?);
    }

    // Builders holding a secret before it is used.
    text += &shown(
        &ClientCredentials::builder(server.base_url(), "id", mock::DEMO_CLIENT_SECRET)
            .transport(transport()),
    );
    text += &shown(
        &Session::builder(server.base_url(), mock::DEMO_USERNAME, mock::DEMO_PASSWORD)
            .transport(transport()),
    );
    text += &shown(
        &AuthCodeFlow::builder(server.base_url(), mock::DEMO_APP_CLIENT_ID)
            .client_secret(mock::DEMO_APP_CLIENT_SECRET)
            .transport(transport()),
    );

    let basic = Basic::new(mock::DEMO_USERNAME, mock::DEMO_PASSWORD)?;
    let basic_header = infobip_auth::source::TokenSource::fixed(&basic)
        .map(|credential| credential.expose_token().to_owned())
        .ok_or("no Basic credential")?;
    for secret in [
        mock::DEMO_CLIENT_SECRET,
        mock::DEMO_API_KEY,
        mock::DEMO_PASSWORD,
        mock::DEMO_APP_CLIENT_SECRET,
        token.as_str(),
        basic_header.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(text.contains(mock::DEMO_CLIENT_ID), "formatted: {text}");
    Ok(())
}
