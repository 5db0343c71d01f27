//! Requests whose URI names no host get the credential only when the layer was told where they
//! go, and only when they truly name no host: a path that starts with `//` is a reference to
//! another host for anything that resolves it against a base URL.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use infobip_auth::{BoxError, Error, ErrorKind, InfobipAuthLayer};
use tower::{Layer, ServiceExt, service_fn};

/// Sends a request for `uri` through a layer whose relative URIs go to Infobip; answers the
/// error kind it failed with, or whether the inner service saw a credential.
async fn send(uri: &str) -> Result<Result<bool, ErrorKind>, BoxError> {
    let saw = Arc::new(Mutex::new(None));
    let seen = saw.clone();
    let channel = service_fn(move |request: Request<String>| {
        let seen = seen.clone();
        async move {
            let credential = request.headers().contains_key("authorization");
            if let Ok(mut seen) = seen.lock() {
                *seen = Some(credential);
            }
            Ok::<_, Infallible>(Response::new(String::new()))
        }
    });
    let auth =
        InfobipAuthLayer::api_key("key")?.relative_uris_go_to("https://grpc.api.infobip.com")?;
    let request = Request::post(uri).body(String::new())?;
    match auth.layer(channel).oneshot(request).await {
        Ok(_) => Ok(Ok(saw.lock().map_err(|_| "poisoned")?.unwrap_or(false))),
        Err(err) => Ok(Err(Error::find(&*err).ok_or("untyped")?.kind().clone())),
    }
}

#[tokio::test]
async fn a_path_gets_the_credential_and_a_network_path_does_not() -> Result<(), BoxError> {
    for path in ["/grpc.health.v1.Health/Check", "*", "/"] {
        assert_eq!(send(path).await?, Ok(true), "{path}");
    }
    for elsewhere in [
        "//evil.example/grpc.health.v1.Health/Check",
        "///evil.example/x",
        "/\\evil.example/x",
        "api.infobip.com:443",
        "https://:443/x",
    ] {
        let sent = send(elsewhere).await?;
        assert!(
            matches!(sent, Err(ErrorKind::HostNotAllowed { .. })),
            "{elsewhere}: {sent:?}"
        );
    }
    Ok(())
}
