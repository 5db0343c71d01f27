//! The reqwest scope check after a redirect: reqwest follows it inside the middleware and drops
//! `Authorization` when it leaves the origin, so a `401` or `403` from there says nothing
//! about the credential or its scopes and comes back as the server sent it.

use infobip_auth::{BoxError, Error, InfobipAuthLayer};
use reqwest_middleware::ClientBuilder;

const SMS: &str = r#"{"messages":[{"destinations":[{"to":"41793026727"}],"text":"Hi"}]}"#;
const REFUSAL: &str =
    r#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;

/// Serves `app` on loopback; answers its base URL.
async fn serve(app: axum::Router) -> Result<String, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base_url)
}

/// A server that answers `/sms/2/text/advanced` with a `307` to `location`, and anything else
/// with `status` and Infobip's refusal; its base URL.
async fn server(location: Option<String>, status: u16) -> Result<String, BoxError> {
    let status = http::StatusCode::from_u16(status)?;
    let refuse = move || async move { (status, REFUSAL) };
    let mut app = axum::Router::new().fallback(refuse);
    if let Some(location) = location {
        let redirect = move || async move {
            (
                http::StatusCode::TEMPORARY_REDIRECT,
                [(http::header::LOCATION, location)],
            )
        };
        app = app.route("/sms/2/text/advanced", axum::routing::post(redirect));
    }
    serve(app).await
}

/// Sends an SMS to `front` through the auth middleware and a scope check (plain, then one that
/// rejects a `403`); answers whether each response carried an [`Error`], with its status and
/// body.
async fn send(front: &str) -> Result<Vec<(u16, bool, String)>, BoxError> {
    let auth = InfobipAuthLayer::api_key("reader")?.allow_origin(front)?;
    let mut seen = Vec::new();
    for check in [auth.scope_check(), auth.scope_check().reject_forbidden()] {
        let client = ClientBuilder::new(reqwest::Client::new())
            .with(auth.reqwest_middleware())
            .with(check.reqwest_middleware())
            .build();
        let response = client
            .post(format!("{front}/sms/2/text/advanced"))
            .body(SMS)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(err) => return Err(format!("failed: {err}").into()),
        };
        let status = response.status().as_u16();
        let explained = response.extensions().get::<Error>().is_some();
        seen.push((status, explained, response.text().await?));
    }
    Ok(seen)
}

#[tokio::test]
async fn a_refusal_from_the_host_a_redirect_went_to_is_not_explained() -> Result<(), BoxError> {
    for status in [401, 403] {
        let elsewhere = server(None, status).await?;
        let front = server(Some(format!("{elsewhere}/upload")), status).await?;
        for (seen, explained, body) in send(&front).await? {
            assert_eq!(seen, status);
            assert!(!explained, "{status} from another origin explained");
            assert_eq!(body, REFUSAL);
        }
    }
    Ok(())
}

/// The same refusal from the origin the request was sent to is explained (a `403` with
/// `reject_forbidden` is the error itself).
#[tokio::test]
async fn a_refusal_after_a_redirect_within_the_origin_is_explained() -> Result<(), BoxError> {
    let front = server(Some("/upload".to_owned()), 401).await?;
    for (seen, explained, body) in send(&front).await? {
        assert_eq!((seen, explained), (401, true));
        assert_eq!(body, REFUSAL);
    }
    let front = server(Some("/upload".to_owned()), 403).await?;
    let auth = InfobipAuthLayer::api_key("reader")?.allow_origin(&front)?;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(auth.reqwest_middleware())
        .with(auth.scope_check().reject_forbidden().reqwest_middleware())
        .build();
    let refused = client
        .post(format!("{front}/sms/2/text/advanced"))
        .body(SMS)
        .send()
        .await;
    let error = refused
        .as_ref()
        .err()
        .and_then(infobip_auth::reqwest::find_error);
    assert!(
        error.is_some_and(|e| e.forbidden().is_some()),
        "{refused:?}"
    );
    Ok(())
}
