//! The scope check over real sockets, against the embedded server: what is refused before
//! sending never reaches it, and its `401`s and `403`s come back explained, bytes intact.

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{DEMO_PASSWORD, DEMO_USERNAME, MockConfig, MockServer};
use infobip_auth::source::ApiKey;
use infobip_auth::{BoxError, Error, ErrorKind, InfobipAuthLayer, Scopes};
use tower::{ServiceBuilder, ServiceExt as _};

const SMS: &str =
    r#"{"messages":[{"destinations":[{"to":"41793026727"}],"from":"InfoSMS","text":"Hi"}]}"#;

fn http_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn request(
    server: &MockServer,
    method: Method,
    path: &str,
    body: &'static str,
) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(server.url(path))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_default()
}

/// A server knowing one key, `reader`, that may read inbound messages and nothing else.
async fn server() -> Result<MockServer, BoxError> {
    let config = MockConfig::demo().api_key("reader", "inbound-message:read");
    Ok(MockServer::start_with(config).await?)
}

#[tokio::test]
async fn preflight_refusal_sends_nothing() -> Result<(), BoxError> {
    let server = server().await?;
    let key = ApiKey::new("reader")?.with_scopes("inbound-message:read".parse()?);
    let auth = InfobipAuthLayer::new(key).allow_origin(server.base_url())?;
    let client = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(http_client());

    let sms = request(&server, Method::POST, "/sms/2/text/advanced", SMS);
    let err = client.clone().oneshot(sms).await.err().ok_or("sent")?;
    let refused = Error::find(&*err)
        .and_then(Error::forbidden)
        .ok_or("not forbidden")?;
    let required: Scopes = "message:send,sms:message:send,sms:manage".parse()?;
    assert_eq!(refused.required.as_ref(), Some(&required));
    assert_eq!(refused.api, None);

    // An API key to API-key management: the specification says no.
    let keys = request(&server, Method::POST, "/settings/2/api-keys", "{}");
    let err = client.clone().oneshot(keys).await.err().ok_or("sent")?;
    assert!(matches!(
        Error::find(&*err).map(Error::kind),
        Some(ErrorKind::SchemeNotAccepted { .. })
    ));

    let counters = server.counters();
    assert_eq!(counters.resource_requests("App"), 0);
    assert_eq!(counters.forbidden, 0);

    // What the key may do goes through.
    let inbox = request(&server, Method::GET, "/sms/1/inbox/reports", "");
    assert_eq!(client.oneshot(inbox).await?.status(), StatusCode::OK);
    assert_eq!(server.counters().resource_requests("App"), 1);
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_servers_403_comes_back_explained_with_its_body() -> Result<(), BoxError> {
    let server = server().await?;
    // Scopes not declared: the check cannot know, so the request is sent.
    let auth = InfobipAuthLayer::api_key("reader")?.allow_origin(server.base_url())?;
    let client = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(http_client());

    let sms = request(&server, Method::POST, "/sms/2/text/advanced", SMS);
    let response = client.oneshot(sms).await?;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let error = response.extensions().get::<Error>().cloned();
    let explained = error
        .as_ref()
        .and_then(Error::forbidden)
        .ok_or("not forbidden")?;
    assert_eq!(explained.endpoint, "/sms/2/text/advanced");
    assert_eq!(explained.held, None);
    let api = explained.api.as_ref().ok_or("no answer")?;
    assert_eq!(
        (api.code(), api.text()),
        (Some("FORBIDDEN"), Some("Forbidden"))
    );
    let body = response.into_body().collect().await?.to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    assert_eq!(
        json["requestError"]["serviceException"]["messageId"],
        "FORBIDDEN"
    );
    assert_eq!(server.counters().forbidden, 1);
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn basic_credentials_without_the_scope_get_an_explained_403() -> Result<(), BoxError> {
    let server = server().await?;
    let auth =
        InfobipAuthLayer::basic(DEMO_USERNAME, DEMO_PASSWORD)?.allow_origin(server.base_url())?;
    let client = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(http_client());
    let keys = request(&server, Method::GET, "/settings/2/api-keys", "");
    let response = client.oneshot(keys).await?;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let error = response.extensions().get::<Error>().cloned();
    let explained = error
        .as_ref()
        .and_then(Error::forbidden)
        .ok_or("not forbidden")?;
    assert_eq!(
        explained.required.as_ref(),
        Some(&"account-management:manage".parse()?)
    );
    assert_eq!(server.counters().resource_requests("Basic"), 1);
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_revoked_key_gets_its_401_explained_in_the_servers_words() -> Result<(), BoxError> {
    let server = server().await?;
    server.revoke_api_key("reader");
    let auth = InfobipAuthLayer::api_key("reader")?.allow_origin(server.base_url())?;
    let client = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(http_client());
    let inbox = request(&server, Method::GET, "/sms/1/inbox/reports", "");
    let response = client.oneshot(inbox).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let Some(ErrorKind::InvalidCredentials(api)) =
        response.extensions().get::<Error>().map(Error::kind)
    else {
        return Err("no InvalidCredentials attached".into());
    };
    assert_eq!(
        (api.code(), api.text()),
        (Some("UNAUTHORIZED"), Some("Invalid login details"))
    );
    server.shutdown().await;
    Ok(())
}
