use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt as _, StreamBody};
use tower::{Layer as _, Service, ServiceExt as _, service_fn};

use crate::test_helpers::TestSource;
use crate::{BoxError, Error, ErrorKind, GrpcRenewal, InfobipAuth, InfobipAuthLayer};

const CALL: &str = "/grpc.health.v1.Health/Check";
/// Where the channel's calls go: the paths it is given name no host.
const CHANNEL: &str = "https://grpc.api.infobip.com";

fn call() -> Request<String> {
    Request::post(CALL).body(String::new()).unwrap_or_default()
}

fn renewing() -> (TestSource, InfobipAuthLayer) {
    let source = TestSource::expiring(Duration::from_secs(3600));
    let layer = InfobipAuthLayer::new(source.clone()).relative_uris_go_to(CHANNEL);
    (
        source,
        layer.unwrap_or_else(|_| unreachable!("an Infobip origin")),
    )
}

/// A Trailers-Only answer: HTTP 200 with `grpc-status` among the headers.
fn trailers_only(status: &'static str) -> Response<String> {
    let mut response = Response::new(String::new());
    response
        .headers_mut()
        .insert("grpc-status", http::HeaderValue::from_static(status));
    response
}

/// Stands in for a channel whose server answers every call with `grpc-status`.
fn answering(
    status: &'static str,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone {
    service_fn(move |_: Request<String>| async move { Ok(trailers_only(status)) })
}

/// The auth layer over the renewal over `channel`, as users stack them.
fn stacked<S>(auth: &InfobipAuthLayer, channel: S) -> InfobipAuth<GrpcRenewal<S>> {
    auth.layer(auth.grpc_renewal().layer(channel))
}

async fn token(layer: &InfobipAuthLayer) -> Result<String, BoxError> {
    Ok(layer.credential().await?.expose_token().to_owned())
}

#[tokio::test]
async fn unauthenticated_in_the_headers_renews_the_credential_sent() -> Result<(), BoxError> {
    let (source, auth) = renewing();
    let service = stacked(&auth, answering("16"));
    let response = service.oneshot(call()).await?;
    // Handed back as it came: the caller sees the refusal and retries.
    assert_eq!(response.headers()["grpc-status"], "16");
    assert_eq!(token(&auth).await?, "token-2");
    assert_eq!(source.fetches(), 2);
    Ok(())
}

#[tokio::test]
async fn other_grpc_statuses_keep_the_credential() -> Result<(), BoxError> {
    let (source, auth) = renewing();
    for status in ["0", "7", "14", "160", "1"] {
        let service = stacked(&auth, answering(status));
        service.oneshot(call()).await?;
    }
    assert_eq!(token(&auth).await?, "token-1");
    assert_eq!(source.fetches(), 1);
    Ok(())
}

/// `grpc-status` is decimal digits without leading zeros, and HTTP keeps whitespace out of a
/// field value: a conforming server sends `UNAUTHENTICATED` as `16` and nothing else, and tonic
/// reads every other form as `UNKNOWN`.
#[tokio::test]
async fn unauthenticated_counts_only_as_the_protocol_writes_it() -> Result<(), BoxError> {
    let (source, auth) = renewing();
    for status in ["016", "+16", " 16", "16 ", "\t16", "16.0", "0x10"] {
        let response = stacked(&auth, answering(status)).oneshot(call()).await?;
        assert!(response.extensions().get::<Error>().is_none(), "{status:?}");
        assert_eq!(token(&auth).await?, "token-1", "renewed after {status:?}");
    }
    assert_eq!(source.fetches(), 1);
    Ok(())
}

#[tokio::test]
async fn a_refusal_in_the_headers_carries_an_error_like_a_401() -> Result<(), BoxError> {
    let (_, auth) = renewing();
    let refused = stacked(&auth, answering("16")).oneshot(call()).await?;
    let error = refused
        .extensions()
        .get::<Error>()
        .ok_or("untyped refusal")?;
    let ErrorKind::InvalidCredentials(said) = error.kind() else {
        return Err(format!("not a refused credential: {error}").into());
    };
    assert_eq!(
        (said.status(), said.code()),
        (StatusCode::OK, Some("UNAUTHENTICATED"))
    );

    let served = stacked(&auth, answering("0")).oneshot(call()).await?;
    assert!(served.extensions().get::<Error>().is_none());

    // A source that does not renew: the layer does not look at the call.
    let api_key = InfobipAuthLayer::api_key("key")?.relative_uris_go_to(CHANNEL)?;
    let refused = stacked(&api_key, answering("16")).oneshot(call()).await?;
    assert!(refused.extensions().get::<Error>().is_none());

    // One a layer inside attached is kept.
    let inner = service_fn(|_: Request<String>| async {
        let mut response = trailers_only("16");
        response
            .extensions_mut()
            .insert(Error::new(ErrorKind::Timeout));
        Ok::<_, Infallible>(response)
    });
    let refused = stacked(&auth, inner).oneshot(call()).await?;
    let kind = refused.extensions().get::<Error>().map(Error::kind);
    assert_eq!(kind, Some(&ErrorKind::Timeout));
    Ok(())
}

#[tokio::test]
async fn a_late_unauthenticated_keeps_the_newer_credential() -> Result<(), BoxError> {
    let (source, auth) = renewing();
    let mut service = stacked(&auth, answering("16"));
    assert_eq!(token(&auth).await?, "token-1");
    // Sent with token-1; the server's answer comes after token-2 replaced it.
    let late = service.ready().await?.call(call());
    assert_eq!(auth.refresh().await?.expose_token(), "token-2");
    late.await?;
    assert_eq!(token(&auth).await?, "token-2");
    assert_eq!(source.fetches(), 2);
    Ok(())
}

#[tokio::test]
async fn a_callers_own_authorization_is_left_alone() -> Result<(), BoxError> {
    let (source, auth) = renewing();
    assert_eq!(token(&auth).await?, "token-1");
    let service = stacked(&auth, answering("16"));
    let mut own = call();
    own.headers_mut().insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_static("Bearer the-callers-own"),
    );
    service.oneshot(own).await?;
    assert_eq!(token(&auth).await?, "token-1");
    assert_eq!(source.fetches(), 1);
    Ok(())
}

/// A body of frames sent one after another.
type Streamed =
    StreamBody<tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// Stands in for a channel whose server starts answering, then ends the call with
/// `grpc-status: <status>` in the trailers.
fn ending_with(
    status: &'static str,
) -> impl Service<Request<String>, Response = Response<Streamed>, Error = Infallible> + Clone {
    service_fn(move |_: Request<String>| async move {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static(status));
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 2, 8, 1]))),
            Ok(Frame::trailers(trailers)),
        ];
        Ok(Response::new(StreamBody::new(tokio_stream::iter(frames))))
    })
}

#[tokio::test]
async fn unauthenticated_in_the_trailers_renews_once_the_body_is_read() -> Result<(), BoxError> {
    let (source, auth) = renewing();
    let service = stacked(&auth, ending_with("16"));
    let response = service.clone().oneshot(call()).await?;
    assert_eq!(source.fetches(), 1, "renewed before the trailers came");
    let read = response.into_body().collect().await?;
    assert_eq!(
        read.trailers().map(|t| &t["grpc-status"]),
        Some(&"16".parse()?)
    );
    assert_eq!(token(&auth).await?, "token-2");
    assert_eq!(source.fetches(), 2);

    // A call that ends well changes nothing.
    let service = stacked(&auth, ending_with("0"));
    service.oneshot(call()).await?.into_body().collect().await?;
    assert_eq!(token(&auth).await?, "token-2");
    Ok(())
}

/// A server that refuses every credential, called in a loop: the credential that answered a
/// refusal, refused too, backs off instead of renewing at once, so there is one token request
/// per backoff, not one per call.
#[tokio::test(start_paused = true)]
async fn a_server_that_refuses_every_credential_gets_one_renewal_per_backoff()
-> Result<(), BoxError> {
    let (source, auth) = renewing();
    let mut service = stacked(&auth, answering("16"));
    for _ in 0..20 {
        // The calls the backoff leaves without a credential fail before being sent.
        let _ = service.ready().await?.call(call()).await;
    }
    assert_eq!(source.fetches(), 2);
    tokio::time::advance(Duration::from_secs(1)).await;
    for _ in 0..20 {
        let _ = service.ready().await?.call(call()).await;
    }
    assert_eq!(source.fetches(), 3, "one more per backoff");
    Ok(())
}
