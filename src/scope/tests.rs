//! Tests of the scope-check layer, over `service_fn` fakes and tower-test mocks.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt as _, Full};
use tower::{Layer, Service, ServiceBuilder, ServiceExt as _, service_fn};
use tower_test::mock;

use super::*;
use crate::source::ApiKey;
use crate::{ApiError, BoxError, Error, ErrorKind, Forbidden, InfobipAuthLayer};

const HOST: &str = "https://xyz12.api.infobip.com";
const SEED_403: &[u8] =
    br#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;

fn request(method: http::Method, path: &str, authorization: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("{HOST}{path}"));
    if let Some(value) = authorization {
        builder = builder.header(AUTHORIZATION, value);
    }
    builder.body(Full::new(Bytes::new())).unwrap_or_default()
}

fn send_sms(authorization: Option<&str>) -> Request<Full<Bytes>> {
    request(http::Method::POST, "/sms/2/text/advanced", authorization)
}

/// An inner service that answers every request with `status` and `body`, counting calls.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn answering<B>(
        &self,
        status: StatusCode,
        body: &'static [u8],
    ) -> impl Service<
        Request<B>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static
    where
        B: Send + 'static,
    {
        let calls = Arc::clone(&self.0);
        service_fn(move |_: Request<B>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut response = Response::new(Full::new(Bytes::from_static(body)));
                *response.status_mut() = status;
                Ok(response)
            }
        })
    }
}

fn error_of<B>(response: &Response<B>) -> Option<&Error> {
    response.extensions().get::<Error>()
}

/// The explanation of a `403` attached to `response`.
fn forbidden_in<B>(response: &Response<B>) -> Result<&Forbidden, &'static str> {
    error_of(response)
        .and_then(Error::forbidden)
        .ok_or("not forbidden")
}

fn ours(err: &BoxError) -> Option<&Error> {
    Error::find(&**err)
}

async fn bytes_of<B>(response: Response<B>) -> Result<Bytes, BoxError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    Ok(response
        .into_body()
        .collect()
        .await
        .map_err(Into::into)?
        .to_bytes())
}

fn sms_scopes() -> Result<Scopes, BoxError> {
    Ok("message:send,sms:message:send,sms:manage".parse()?)
}

#[tokio::test]
async fn seed_403_names_the_endpoint_scopes_and_that_none_of_them_is_held() -> Result<(), BoxError>
{
    let held: Scopes = "inbound-message:read".parse()?;
    let auth = InfobipAuthLayer::new(ApiKey::new("key")?.with_scopes(held.clone()));
    let calls = Calls::default();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check().preflight(false))
        .service(calls.answering(StatusCode::FORBIDDEN, SEED_403));

    let response = service.oneshot(send_sms(None)).await?;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let error = error_of(&response).cloned().ok_or("no error attached")?;
    let forbidden = error.forbidden().ok_or("not forbidden")?;
    assert_eq!(forbidden.endpoint, "/sms/2/text/advanced");
    assert_eq!(forbidden.required.as_ref(), Some(&sms_scopes()?));
    assert_eq!(forbidden.held.as_ref(), Some(&held));
    for scope in &sms_scopes()? {
        assert!(!held.contains(scope), "{scope}");
    }
    let api = forbidden.api.as_ref().ok_or("no server answer")?;
    assert_eq!(
        (api.code(), api.text()),
        (Some("FORBIDDEN"), Some("Forbidden"))
    );
    assert_eq!(
        error.to_string(),
        "forbidden: POST /sms/2/text/advanced needs any of message:send, sms:manage, \
         sms:message:send; the credential holds inbound-message:read \
         (403 Forbidden FORBIDDEN: Forbidden)"
    );
    assert_eq!(bytes_of(response).await?, SEED_403);
    assert_eq!(calls.count(), 1);
    Ok(())
}

#[tokio::test]
async fn without_declared_scopes_the_403_names_what_is_needed_and_holds_nothing_known()
-> Result<(), BoxError> {
    let auth = InfobipAuthLayer::api_key("key")?;
    let calls = Calls::default();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(calls.answering(StatusCode::FORBIDDEN, SEED_403));
    let response = service.oneshot(send_sms(None)).await?;
    let forbidden = forbidden_in(&response)?;
    assert_eq!(forbidden.required.as_ref(), Some(&sms_scopes()?));
    assert_eq!(forbidden.held, None);
    assert_eq!(calls.count(), 1, "scopes unknown: sent");
    Ok(())
}

#[tokio::test]
async fn a_403_to_an_equivalent_path_is_explained_by_the_operations_scopes() -> Result<(), BoxError>
{
    let auth = InfobipAuthLayer::api_key("key")?;
    let calls = Calls::default();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(calls.answering(StatusCode::FORBIDDEN, SEED_403));
    let sms = |path| request(http::Method::POST, path, None);
    for path in ["/sms/2/text/advanced/", "/sm%73/2/text/%61dvanced?x=1"] {
        let response = service.clone().oneshot(sms(path)).await?;
        let forbidden = forbidden_in(&response)?;
        assert_eq!(forbidden.endpoint, "/sms/2/text/advanced", "{path}");
        assert_eq!(forbidden.required.as_ref(), Some(&sms_scopes()?), "{path}");
    }
    // Paths are case-sensitive: another path, which the catalogue does not know.
    let response = service.oneshot(sms("/SMS/2/text/advanced")).await?;
    assert_eq!(forbidden_in(&response)?.required, None);
    assert_eq!(calls.count(), 3);
    Ok(())
}

#[tokio::test]
async fn preflight_refuses_a_key_without_the_scopes_and_sends_nothing() -> Result<(), BoxError> {
    let held: Scopes = "inbound-message:read".parse()?;
    let auth = InfobipAuthLayer::new(ApiKey::new("key")?.with_scopes(held.clone()));
    let calls = Calls::default();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(calls.answering(StatusCode::OK, b"{}"));

    let err = service
        .oneshot(send_sms(None))
        .await
        .err()
        .ok_or("not refused")?;
    let error = ours(&err).ok_or("not our error")?;
    let forbidden = error.forbidden().ok_or("not forbidden")?;
    assert_eq!(forbidden.required.as_ref(), Some(&sms_scopes()?));
    assert_eq!(forbidden.held.as_ref(), Some(&held));
    assert_eq!(forbidden.api, None, "nothing was sent, so no answer");
    assert_eq!(calls.count(), 0);
    Ok(())
}

#[tokio::test]
async fn preflight_lets_through_a_key_holding_one_of_the_scopes() -> Result<(), BoxError> {
    let auth = InfobipAuthLayer::new(ApiKey::new("key")?.with_scopes("sms:manage".parse()?));
    let calls = Calls::default();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(calls.answering(StatusCode::OK, b"{}"));
    let response = service.oneshot(send_sms(None)).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(error_of(&response).is_none());
    assert_eq!(calls.count(), 1);
    Ok(())
}

#[tokio::test]
async fn an_app_key_to_api_key_management_is_refused_locally() -> Result<(), BoxError> {
    let calls = Calls::default();
    let auth = InfobipAuthLayer::api_key("c0mposed-s3cret")?;
    let composed = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(calls.answering(StatusCode::OK, b"{}"));
    let standalone = ScopeCheckLayer::new().layer(calls.answering(StatusCode::OK, b"{}"));
    let results = [
        composed
            .oneshot(request(http::Method::POST, "/settings/2/api-keys", None))
            .await,
        standalone
            .oneshot(request(
                http::Method::POST,
                "/settings/2/api-keys",
                Some("App 003026bbc133714df1834b8638bb496e"),
            ))
            .await,
    ];
    for result in results {
        let err = result.err().ok_or("not refused")?;
        let error = ours(&err).ok_or("not our error")?;
        let ErrorKind::SchemeNotAccepted {
            method,
            endpoint,
            scheme,
            accepted,
        } = error.kind()
        else {
            return Err(format!("wrong kind: {error:?}").into());
        };
        assert_eq!(
            (method, &endpoint[..]),
            (&http::Method::POST, "/settings/2/api-keys")
        );
        assert_eq!(*scheme, AuthScheme::ApiKey);
        assert_eq!(
            accepted,
            &[AuthScheme::Ibsso, AuthScheme::Basic, AuthScheme::OAuth2]
        );
        let text = error.to_string();
        assert!(
            text.starts_with("POST /settings/2/api-keys does not accept `App` credentials"),
            "{text}"
        );
        for name in ["IBSSO", "Basic", "Bearer"] {
            assert!(text.contains(name), "{text}");
        }
        let shown = format!("{text} {error:?}");
        for secret in ["c0mposed-s3cret", "003026bbc133714df1834b8638bb496e"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
    assert_eq!(calls.count(), 0);
    Ok(())
}

#[tokio::test]
async fn preflight_off_sends_what_would_be_refused() -> Result<(), BoxError> {
    let calls = Calls::default();
    let service = ScopeCheckLayer::new()
        .held(Scopes::new())
        .preflight(false)
        .layer(calls.answering(StatusCode::FORBIDDEN, SEED_403));
    let response = service
        .oneshot(request(
            http::Method::POST,
            "/settings/2/api-keys",
            Some("App key"),
        ))
        .await?;
    // The 403 is explained by the scheme the endpoint does not take, not by scopes.
    let forbidden = forbidden_in(&response)?;
    assert_eq!(
        forbidden.scheme.as_ref().map(|(scheme, _)| *scheme),
        Some(AuthScheme::ApiKey)
    );
    let text = forbidden.to_string();
    assert!(
        text.contains("does not accept `App` credentials (it accepts IBSSO, Basic, Bearer)"),
        "{text}"
    );
    assert_eq!(calls.count(), 1);
    Ok(())
}

#[tokio::test]
async fn declared_scopes_drive_a_standalone_check() -> Result<(), BoxError> {
    let calls = Calls::default();
    let granted = ScopeCheckLayer::new()
        .held("sms:manage".parse()?)
        .layer(calls.answering(StatusCode::OK, b"{}"));
    assert_eq!(
        granted.oneshot(send_sms(Some("App key"))).await?.status(),
        StatusCode::OK
    );
    let lacking = ScopeCheckLayer::new()
        .held("web:sdk".parse()?)
        .layer(calls.answering(StatusCode::OK, b"{}"));
    let err = lacking
        .oneshot(send_sms(Some("App key")))
        .await
        .err()
        .ok_or("not refused")?;
    assert!(ours(&err).and_then(Error::forbidden).is_some(), "{err}");
    assert_eq!(calls.count(), 1);
    Ok(())
}

#[tokio::test]
async fn every_403_shape_is_forbidden_and_the_body_comes_back_whole() -> Result<(), BoxError> {
    let cases: [(&'static [u8], &str, &str); 4] = [
        (SEED_403, "FORBIDDEN", "Forbidden"),
        (
            br#"{"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Invalid login details"}}}"#,
            "UNAUTHORIZED",
            "Invalid login details",
        ),
        (
            br#"{"errorCode":"E403","description":"Forbidden.","action":"Check the API key scopes","violations":[],"resources":[]}"#,
            "E403",
            "Forbidden.",
        ),
        (
            br#"{"status":403,"code":"PERMISSION_DENIED","message":"Client does not have sufficient permissions to perform this action"}"#,
            "PERMISSION_DENIED",
            "Client does not have sufficient permissions to perform this action",
        ),
    ];
    for (body, code, text) in cases {
        let service =
            ScopeCheckLayer::new().layer(Calls::default().answering(StatusCode::FORBIDDEN, body));
        let response = service.oneshot(send_sms(Some("App key"))).await?;
        let forbidden = forbidden_in(&response)?;
        assert_eq!(forbidden.required.as_ref(), Some(&sms_scopes()?));
        let api = forbidden.api.as_ref().ok_or("no answer")?;
        assert_eq!((api.code(), api.text()), (Some(code), Some(text)));
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(bytes_of(response).await?, body);
    }
    Ok(())
}

#[tokio::test]
async fn a_403_with_a_malformed_or_empty_body_is_still_classified() -> Result<(), BoxError> {
    let cases: [(&'static [u8], Option<&str>); 3] = [
        (b"", None),
        (
            br#"{"requestError": {"serviceExc"#,
            Some(r#"{"requestError": {"serviceExc"#),
        ),
        (
            b"<html>403 Forbidden</html>",
            Some("<html>403 Forbidden</html>"),
        ),
    ];
    for (body, raw) in cases {
        let service =
            ScopeCheckLayer::new().layer(Calls::default().answering(StatusCode::FORBIDDEN, body));
        let response = service.oneshot(send_sms(Some("App key"))).await?;
        let forbidden = forbidden_in(&response)?;
        let api = forbidden.api.as_ref().ok_or("no answer")?;
        assert_eq!(api.status(), StatusCode::FORBIDDEN);
        assert_eq!((api.code(), api.raw()), (None, raw));
        assert_eq!(bytes_of(response).await?, body);
    }
    Ok(())
}

#[tokio::test]
async fn an_endpoint_outside_the_catalogue_passes_through_unchanged() -> Result<(), BoxError> {
    let calls = Calls::default();
    // Holding no scope at all, and a scheme the catalogue would check: nothing to check against.
    let service = ScopeCheckLayer::new()
        .held(Scopes::new())
        .layer(calls.answering(StatusCode::OK, b"hello"));
    let response = service
        .oneshot(request(
            http::Method::GET,
            "/not/in/the/catalogue?x=1",
            Some("App key"),
        ))
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(error_of(&response).is_none());
    assert_eq!(bytes_of(response).await?, "hello");

    let service = ScopeCheckLayer::new()
        .held(Scopes::new())
        .layer(calls.answering(StatusCode::FORBIDDEN, SEED_403));
    let response = service
        .oneshot(request(
            http::Method::GET,
            "/not/in/the/catalogue?x=1",
            Some("App key"),
        ))
        .await?;
    let forbidden = forbidden_in(&response)?;
    assert_eq!(forbidden.endpoint, "/not/in/the/catalogue");
    assert_eq!(forbidden.required, None);
    assert_eq!(forbidden.held, Some(Scopes::new()));
    assert_eq!(calls.count(), 2);
    Ok(())
}

#[tokio::test]
async fn an_empty_segment_is_no_parameter_of_an_operation() -> Result<(), BoxError> {
    // `GET /ccaas/1/working-hours/{id}/status` needs a conversations scope; an empty `{id}`
    // names no working hours, so the path is not that operation and is not refused.
    assert!(
        Catalog::infobip()
            .lookup(&http::Method::GET, "/ccaas/1/working-hours//status")
            .is_none()
    );
    let calls = Calls::default();
    let service = ScopeCheckLayer::new()
        .held("sms:manage".parse()?)
        .layer(calls.answering(StatusCode::FORBIDDEN, SEED_403));
    let response = service
        .oneshot(request(
            http::Method::GET,
            "/ccaas/1/working-hours//status",
            Some("App key"),
        ))
        .await?;
    assert_eq!(calls.count(), 1);
    let forbidden = forbidden_in(&response)?;
    assert_eq!(
        (forbidden.endpoint.as_str(), forbidden.required.as_ref()),
        ("/ccaas/1/working-hours//status", None)
    );
    Ok(())
}

/// A response body that counts the data bytes and frames it has handed out, and can end in an
/// error or trailers.
struct CountingBody {
    chunks: VecDeque<Bytes>,
    polled: Arc<AtomicUsize>,
    frames: Arc<AtomicUsize>,
    error: Option<&'static str>,
    trailers: Option<HeaderMap>,
}

impl CountingBody {
    fn new(chunks: impl IntoIterator<Item = Bytes>) -> (Self, Arc<AtomicUsize>) {
        let polled = Arc::new(AtomicUsize::new(0));
        let body = Self {
            chunks: chunks.into_iter().collect(),
            polled: Arc::clone(&polled),
            frames: Arc::default(),
            error: None,
            trailers: None,
        };
        (body, polled)
    }

    /// A body of `count` empty data frames (legal in HTTP/2 and for any `http_body::Body`), and
    /// the count of frames handed out.
    fn empty_frames(count: usize) -> (Self, Arc<AtomicUsize>) {
        let (body, _) = Self::new(std::iter::repeat_n(Bytes::new(), count));
        let frames = Arc::clone(&body.frames);
        (body, frames)
    }
}

impl Body for CountingBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(chunk) = self.chunks.pop_front() {
            self.polled.fetch_add(chunk.len(), Ordering::SeqCst);
            self.frames.fetch_add(1, Ordering::SeqCst);
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if let Some(error) = self.error.take() {
            return Poll::Ready(Some(Err(error.into())));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

/// A service answering once with `status` and `body`.
fn answering_once(
    status: StatusCode,
    body: CountingBody,
) -> impl Service<Request<Full<Bytes>>, Response = Response<CountingBody>, Error = Infallible> {
    let mut body = Some(body);
    service_fn(move |_: Request<Full<Bytes>>| {
        let mut response = Response::new(body.take().unwrap_or_else(|| CountingBody::new([]).0));
        *response.status_mut() = status;
        std::future::ready(Ok(response))
    })
}

#[tokio::test]
async fn statuses_are_classified_as_documented() -> Result<(), BoxError> {
    #[derive(Debug, PartialEq)]
    enum Class {
        InvalidCredentials,
        Forbidden,
        Untouched,
    }
    let body = Bytes::from_static(
        br#"{"requestError":{"serviceException":{"messageId":"X","text":"y"}}}"#,
    );
    let cases = [
        (StatusCode::OK, Class::Untouched),
        (StatusCode::UNAUTHORIZED, Class::InvalidCredentials),
        (StatusCode::FORBIDDEN, Class::Forbidden),
        (StatusCode::TOO_MANY_REQUESTS, Class::Untouched),
        (StatusCode::INTERNAL_SERVER_ERROR, Class::Untouched),
        (StatusCode::SERVICE_UNAVAILABLE, Class::Untouched),
    ];
    for (status, expected) in cases {
        let (counting, polled) = CountingBody::new([body.clone()]);
        let service = ScopeCheckLayer::new()
            .preflight(false)
            .layer(answering_once(status, counting));
        let response = service.oneshot(send_sms(Some("App key"))).await?;
        let read_before_the_caller = polled.load(Ordering::SeqCst);
        let class = match error_of(&response).map(Error::kind) {
            None => Class::Untouched,
            Some(ErrorKind::InvalidCredentials(api)) => {
                assert_eq!((api.code(), api.text()), (Some("X"), Some("y")));
                Class::InvalidCredentials
            }
            Some(ErrorKind::Forbidden(forbidden)) => {
                let api = forbidden.api.as_ref().map(ApiError::code);
                assert_eq!(api, Some(Some("X")));
                Class::Forbidden
            }
            Some(other) => return Err(format!("{status}: unexpected {other:?}").into()),
        };
        assert_eq!(class, expected, "{status}");
        let expected_read = if class == Class::Untouched {
            0
        } else {
            body.len()
        };
        assert_eq!(read_before_the_caller, expected_read, "{status}: body read");
        assert_eq!(response.status(), status);
        assert_eq!(bytes_of(response).await?, body, "{status}");
    }
    Ok(())
}

#[tokio::test]
async fn a_10_mb_403_is_read_only_up_to_the_limit_and_handed_back_whole() -> Result<(), BoxError> {
    const SIZE: usize = 10 * 1024 * 1024;
    const CHUNK: usize = 16 * 1024;
    const LIMIT: usize = 64 * 1024;
    // Printable ASCII with a period that no chunk size divides, so misplaced chunks show.
    let whole: Bytes = (0..SIZE)
        .map(|i| b' ' + (i % 95) as u8)
        .collect::<Vec<u8>>()
        .into();
    let chunks = (0..SIZE)
        .step_by(CHUNK)
        .map(|at| whole.slice(at..at + CHUNK));
    let (counting, polled) = CountingBody::new(chunks);
    let service = ScopeCheckLayer::new().layer(answering_once(StatusCode::FORBIDDEN, counting));

    let response = service.oneshot(send_sms(Some("App key"))).await?;
    let read = polled.load(Ordering::SeqCst);
    assert!(
        (LIMIT..LIMIT + CHUNK).contains(&read),
        "read {read} bytes before returning"
    );
    // Classified from the first bytes, which are no error body: unreadable, kept raw.
    let forbidden = forbidden_in(&response)?;
    let api = forbidden.api.as_ref().ok_or("no answer")?;
    assert_eq!(api.code(), None);
    assert_eq!(api.raw().map(str::len), Some(512));
    assert_eq!(forbidden.required.as_ref(), Some(&sms_scopes()?));
    // The caller still gets every byte, in order.
    assert_eq!(response.body().size_hint().lower(), read as u64);
    let got = bytes_of(response).await?;
    assert_eq!(got.len(), SIZE);
    assert!(got == whole, "the bytes differ");
    Ok(())
}

#[tokio::test]
async fn the_read_limit_is_configurable() -> Result<(), BoxError> {
    let chunks = (0..8).map(|_| Bytes::from_static(&[b'x'; 100]));
    let (counting, polled) = CountingBody::new(chunks);
    let service = ScopeCheckLayer::new()
        .read_limit(250)
        .layer(answering_once(StatusCode::FORBIDDEN, counting));
    let response = service.oneshot(send_sms(Some("App key"))).await?;
    assert_eq!(polled.load(Ordering::SeqCst), 300);
    let forbidden = forbidden_in(&response)?;
    let raw = forbidden.api.as_ref().and_then(ApiError::raw);
    assert_eq!(
        raw.map(str::len),
        Some(250),
        "classified from the first 250 bytes only"
    );
    assert_eq!(bytes_of(response).await?.len(), 800);
    Ok(())
}

#[tokio::test]
async fn a_body_failing_while_read_is_classified_and_its_error_reaches_the_caller()
-> Result<(), BoxError> {
    let (mut counting, _) = CountingBody::new([Bytes::from_static(b"<html>")]);
    counting.error = Some("connection reset");
    let service = ScopeCheckLayer::new().layer(answering_once(StatusCode::FORBIDDEN, counting));
    let response = service.oneshot(send_sms(Some("App key"))).await?;
    let forbidden = forbidden_in(&response)?;
    assert_eq!(
        forbidden.api.as_ref().and_then(ApiError::raw),
        Some("<html>")
    );
    let mut body = response.into_body();
    let first = body.frame().await.ok_or("no frame")??;
    assert_eq!(first.into_data().ok(), Some(Bytes::from_static(b"<html>")));
    let second = body.frame().await.ok_or("no error")?;
    assert_eq!(
        second.err().map(|e| e.to_string()).as_deref(),
        Some("connection reset")
    );
    assert!(body.frame().await.is_none());
    Ok(())
}

#[tokio::test]
async fn trailers_of_a_403_are_handed_back() -> Result<(), BoxError> {
    let (mut counting, _) = CountingBody::new([Bytes::from_static(SEED_403)]);
    let mut trailers = HeaderMap::new();
    trailers.insert("x-trace", http::HeaderValue::from_static("1"));
    counting.trailers = Some(trailers.clone());
    let service = ScopeCheckLayer::new().layer(answering_once(StatusCode::FORBIDDEN, counting));
    let response = service.oneshot(send_sms(Some("App key"))).await?;
    assert!(forbidden_in(&response).is_ok());
    let collected = response.into_body().collect().await?;
    assert_eq!(collected.trailers(), Some(&trailers));
    assert_eq!(collected.to_bytes(), SEED_403);
    Ok(())
}

#[tokio::test]
async fn reject_forbidden_makes_a_403_an_error_and_leaves_a_401_a_response() -> Result<(), BoxError>
{
    let service = ScopeCheckLayer::new()
        .reject_forbidden()
        .layer(Calls::default().answering(StatusCode::FORBIDDEN, SEED_403));
    let err = service
        .oneshot(send_sms(Some("App key")))
        .await
        .err()
        .ok_or("a 403 came back as a response")?;
    let forbidden = ours(&err)
        .and_then(Error::forbidden)
        .ok_or("not forbidden")?;
    assert_eq!(
        forbidden.api.as_ref().and_then(ApiError::code),
        Some("FORBIDDEN")
    );

    let service = ScopeCheckLayer::new()
        .reject_forbidden()
        .layer(Calls::default().answering(StatusCode::UNAUTHORIZED, b""));
    let response = service.oneshot(send_sms(Some("App key"))).await?;
    assert!(matches!(
        error_of(&response).map(Error::kind),
        Some(ErrorKind::InvalidCredentials(_))
    ));
    Ok(())
}

#[tokio::test]
async fn a_401_keeps_the_servers_words_through_the_auth_layer() -> Result<(), BoxError> {
    const BODY: &[u8] = br#"{"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Invalid login details"}}}"#;
    let auth = InfobipAuthLayer::api_key("revoked")?;
    let calls = Calls::default();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(calls.answering(StatusCode::UNAUTHORIZED, BODY));
    let response = service.oneshot(send_sms(None)).await?;
    let Some(ErrorKind::InvalidCredentials(api)) = error_of(&response).map(Error::kind) else {
        return Err("no InvalidCredentials attached".into());
    };
    assert_eq!(
        (api.code(), api.text()),
        (Some("UNAUTHORIZED"), Some("Invalid login details"))
    );
    assert_eq!(bytes_of(response).await?, BODY);
    assert_eq!(calls.count(), 1, "a fixed key is not replayed");
    Ok(())
}

#[tokio::test]
async fn a_callers_own_authorization_does_not_borrow_the_credentials_scopes() -> Result<(), BoxError>
{
    let auth =
        InfobipAuthLayer::new(ApiKey::new("key")?.with_scopes("inbound-message:read".parse()?));
    let calls = Calls::default();
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(calls.answering(StatusCode::FORBIDDEN, SEED_403));
    // The layer's own key is known to lack the scopes: refused, and now cached.
    let refused = service.clone().oneshot(send_sms(None)).await;
    assert!(refused.is_err());
    assert_eq!(auth.credential().await?.header(), "App key");
    // Another key, chosen by the caller: its scopes are unknown, so it is sent.
    let response = service.oneshot(send_sms(Some("App other"))).await?;
    let forbidden = forbidden_in(&response)?;
    assert_eq!(forbidden.held, None);
    assert_eq!(calls.count(), 1);
    Ok(())
}

#[tokio::test]
async fn forwards_poll_ready_backpressure_and_classifies_through_a_mock() -> Result<(), BoxError> {
    let (mut service, mut handle) =
        mock::spawn_layer::<Request<Full<Bytes>>, Response<Full<Bytes>>, _>(ScopeCheckLayer::new());
    handle.allow(0);
    assert!(service.poll_ready().is_pending());
    handle.allow(1);
    assert!(service.poll_ready().is_ready());
    let future = service.call(send_sms(Some("Bearer token")));
    let answer = async {
        let (request, respond) = handle.next_request().await.ok_or("no request")?;
        assert_eq!(request.uri().path(), "/sms/2/text/advanced");
        let mut response = Response::new(Full::new(Bytes::from_static(SEED_403)));
        *response.status_mut() = StatusCode::FORBIDDEN;
        respond.send_response(response);
        Ok::<_, BoxError>(())
    };
    let (response, answered) = tokio::join!(future, answer);
    answered?;
    let response = response?;
    assert!(forbidden_in(&response).is_ok());
    Ok(())
}

#[tokio::test]
async fn inner_errors_pass_through_boxed() -> Result<(), BoxError> {
    let service = ScopeCheckLayer::new().layer(service_fn(|_: Request<Full<Bytes>>| async {
        Err::<Response<Full<Bytes>>, _>(std::io::Error::other("refused"))
    }));
    let err = service
        .oneshot(send_sms(Some("App key")))
        .await
        .err()
        .ok_or("no error")?;
    assert!(err.downcast_ref::<std::io::Error>().is_some(), "{err}");
    Ok(())
}

#[tokio::test]
async fn request_bodies_need_no_bound() -> Result<(), BoxError> {
    /// Neither `Clone` nor a `Body`.
    struct Opaque;
    let service = ScopeCheckLayer::new().layer(service_fn(|_: Request<Opaque>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    }));
    let request = Request::post(format!("{HOST}/sms/2/text/advanced")).body(Opaque)?;
    assert_eq!(bytes_of(service.oneshot(request).await?).await?, "ok");
    Ok(())
}

#[test]
fn layer_service_and_future_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    type Inner =
        tower::util::BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, BoxError>;
    send_sync::<ScopeCheckLayer>();
    send_sync::<ScopeCheck<Inner>>();
    send::<<ScopeCheck<Inner> as Service<Request<Full<Bytes>>>>::Future>();
    send_sync::<ResponseBody<Full<Bytes>>>();
}

#[test]
fn debug_shows_no_secret() -> Result<(), BoxError> {
    let auth = InfobipAuthLayer::new(ApiKey::new("s3cr3t")?.with_scopes("sms:manage".parse()?));
    let debug = format!("{:?}", auth.scope_check().layer(()));
    assert!(!debug.contains("s3cr3t"), "{debug}");
    assert!(debug.contains("ScopeCheck"), "{debug}");
    Ok(())
}

#[tokio::test]
async fn empty_frames_of_a_403_are_not_buffered_without_bound() -> Result<(), BoxError> {
    let (body, polled) = CountingBody::empty_frames(100_000);
    let service = ScopeCheckLayer::new().layer(answering_once(StatusCode::FORBIDDEN, body));
    let response = service.oneshot(send_sms(Some("App key"))).await?;
    let held = polled.load(Ordering::SeqCst);
    // Zero bytes were read, yet every frame was pulled and held before the response came back
    // (an endless run never returns, and grows memory until the process dies).
    assert!(
        held <= 4096,
        "{held} empty frames buffered before the response was returned"
    );
    assert!(forbidden_in(&response).is_ok());
    Ok(())
}

/// One frame of a body fed through a channel.
type FedFrame = Result<Frame<Bytes>, Infallible>;

/// A body fed through a channel: it waits while the sender is silent.
type Fed = http_body_util::StreamBody<tokio_stream::wrappers::ReceiverStream<FedFrame>>;

/// A service answering one `403` whose body is fed by the returned sender.
fn stalling_403() -> (
    impl Service<Request<Full<Bytes>>, Response = Response<Fed>, Error = &'static str>,
    tokio::sync::mpsc::Sender<FedFrame>,
) {
    let (send, receive) = tokio::sync::mpsc::channel(4);
    let mut body = Some(Fed::new(receive.into()));
    let service = service_fn(move |_: Request<Full<Bytes>>| {
        let response = body.take().ok_or("called twice").map(|body| {
            let mut response = Response::new(body);
            *response.status_mut() = StatusCode::FORBIDDEN;
            response
        });
        std::future::ready(response)
    });
    (service, send)
}

/// A server that sends the head of a `403` and the start of its body, then stalls: after the
/// read timeout (5 s by default, or as configured), the response comes back classified from
/// what came, with its status and headers, and the rest of the body, when it comes at last,
/// still reaches the caller after the start. On the paused clock: no real waiting.
#[tokio::test(start_paused = true)]
async fn a_stalled_403_body_is_classified_after_the_read_timeout() -> Result<(), BoxError> {
    const START: &[u8] = br#"{"requestError":{"serviceException":"#;
    const REST: &[u8] = br#"{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;
    for (layer, timeout) in [
        (ScopeCheckLayer::new(), Duration::from_secs(5)),
        (
            ScopeCheckLayer::new().read_timeout(Duration::from_millis(300)),
            Duration::from_millis(300),
        ),
    ] {
        let (service, send) = stalling_403();
        send.send(Ok(Frame::data(Bytes::from_static(START))))
            .await?;
        let started = tokio::time::Instant::now();
        // Bounded here too, so that a check without a timeout of its own fails, not hangs.
        let called = layer.layer(service).oneshot(send_sms(Some("App key")));
        let response = tokio::time::timeout(Duration::from_secs(60), called).await??;
        assert_eq!(started.elapsed(), timeout);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let forbidden = forbidden_in(&response)?;
        assert_eq!(forbidden.required.as_ref(), Some(&sms_scopes()?));
        let raw = forbidden.api.as_ref().and_then(ApiError::raw);
        assert_eq!(
            raw.map(str::as_bytes),
            Some(START),
            "classified from what came"
        );

        send.send(Ok(Frame::data(Bytes::from_static(REST)))).await?;
        drop(send);
        let body = bytes_of(response).await?;
        assert_eq!(body, [START, REST].concat());
    }
    Ok(())
}

/// On a runtime built without timers there is no read timeout to start: a `403` whose body
/// makes the check wait is classified once the body ends, and nothing panics (tokio panics
/// when asked for a timer it has not got; asked once only).
#[test]
fn a_stalled_403_body_waits_for_its_end_on_a_runtime_without_timers() -> Result<(), BoxError> {
    const BODY: &[u8] =
        br#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(async {
        let (service, send) = stalling_403();
        let called = ScopeCheckLayer::new()
            .layer(service)
            .oneshot(send_sms(Some("App key")));
        // The body comes only after the check has waited for it.
        let feed = async move {
            tokio::task::yield_now().await;
            send.send(Ok(Frame::data(Bytes::from_static(BODY)))).await
        };
        let (response, fed) = tokio::join!(called, feed);
        fed?;
        let response = response?;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(forbidden_in(&response).is_ok());
        Ok(())
    })
}

/// The catalogue describes Infobip's API, not every server's: a request to another host whose
/// path happens to match an Infobip template must not be refused for Infobip's rules.
#[tokio::test]
async fn a_request_to_another_host_is_not_judged_by_infobips_catalogue() -> Result<(), BoxError> {
    let calls = Calls::default();
    let service = ScopeCheckLayer::new()
        .held("sms:manage".parse()?)
        .layer(calls.answering(StatusCode::OK, b"{}"));
    let elsewhere = Request::get("https://crm.example.com/people/2/persons")
        .header(AUTHORIZATION, "Bearer crm-token")
        .body(Full::new(Bytes::new()))?;
    let response = service.oneshot(elsewhere).await?;
    assert_eq!(response.status(), StatusCode::OK);

    // Through the auth layer: a caller's own `Authorization` to another host passes the auth
    // layer untouched, then meets the scheme check of Infobip's `/saas/1/...` operations.
    let auth = InfobipAuthLayer::api_key("key")?;
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(calls.answering(StatusCode::OK, b"{}"));
    let elsewhere = Request::post("https://crm.example.com/saas/1/contacts/import")
        .header(AUTHORIZATION, "Basic dXNlcjpwdw==")
        .body(Full::new(Bytes::new()))?;
    let response = service.oneshot(elsewhere).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.count(), 2);
    Ok(())
}

#[tokio::test]
async fn a_standalone_check_judges_the_origins_it_is_given() -> Result<(), BoxError> {
    const LOOPBACK: &str = "http://127.0.0.1:8080";
    let to = |origin: &str| {
        Request::post(format!("{origin}/sms/2/text/advanced"))
            .header(AUTHORIZATION, "App key")
            .body(Full::new(Bytes::new()))
    };
    let calls = Calls::default();
    let reader = ScopeCheckLayer::new().held("inbound-message:read".parse()?);

    // By default the loopback server is no Infobip host: sent, and its 403 left unexplained.
    let service = reader.layer(calls.answering(StatusCode::FORBIDDEN, SEED_403));
    let response = service.oneshot(to(LOOPBACK)?).await?;
    assert!(error_of(&response).is_none());
    assert_eq!(calls.count(), 1);

    // Allowed, it is judged (and refused before sending), and Infobip's hosts no longer are.
    let layer = reader.allow_origin(LOOPBACK)?;
    let service = layer.layer(calls.answering(StatusCode::FORBIDDEN, SEED_403));
    let refused = service.clone().oneshot(to("http://127.0.0.1:8080")?).await;
    let refused = refused.err().ok_or("sent")?;
    assert!(matches!(
        ours(&refused).map(Error::kind),
        Some(ErrorKind::Forbidden(_))
    ));
    assert_eq!(calls.count(), 1);
    let response = service.clone().oneshot(to(HOST)?).await?;
    assert!(error_of(&response).is_none());
    assert_eq!(calls.count(), 2);

    // A relative URI names no host: it is judged whatever the origins.
    let relative = Request::post("/sms/2/text/advanced")
        .header(AUTHORIZATION, "App key")
        .body(Full::new(Bytes::new()))?;
    assert!(service.oneshot(relative).await.is_err());
    assert_eq!(calls.count(), 2);

    // The scope check of an auth layer judges the auth layer's origins.
    let auth = InfobipAuthLayer::api_key("key")?.allow_origin(LOOPBACK)?;
    let service = ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(calls.answering(StatusCode::FORBIDDEN, SEED_403));
    let response = service.oneshot(to(LOOPBACK)?).await?;
    assert!(forbidden_in(&response).is_ok());
    assert_eq!(calls.count(), 3);

    assert!(matches!(
        ScopeCheckLayer::new().allow_origin("http://example.com"),
        Err(crate::ConfigError::InsecureUrl { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn another_apis_scope_names_explain_its_403_and_refuse_before_sending() -> Result<(), BoxError>
{
    const GRAPH: &str = "https://graph.example.com";
    const DENIED: &[u8] =
        br#"{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}"#;
    let catalog = Catalog::empty().with_operation(
        http::Method::POST,
        "/v1.0/me/sendMail",
        "Mail.Send https://graph.microsoft.com/.default".parse()?,
        &[AuthScheme::OAuth2],
    )?;
    let send_mail = || {
        Request::post(format!("{GRAPH}/v1.0/me/sendMail"))
            .body(Full::new(Bytes::new()))
            .unwrap_or_default()
    };
    // The auth layer of a token holding `held`, and its scope check with that catalogue.
    let layers = |held: &str| -> Result<_, BoxError> {
        let token = crate::source::FixedToken::bearer("t")?.with_scopes(held.parse()?);
        let auth = InfobipAuthLayer::new(token).allow_origin(GRAPH)?;
        let check = auth.scope_check().catalog(catalog.clone());
        Ok(ServiceBuilder::new().layer(auth).layer(check))
    };

    // Holding names that differ only in case grants nothing: refused before sending.
    let calls = Calls::default();
    let service = layers("openid mail.send MAIL.SEND")?
        .service(calls.answering(StatusCode::FORBIDDEN, DENIED));
    let err = service.oneshot(send_mail()).await.err().ok_or("sent")?;
    let refused = ours(&err)
        .and_then(Error::forbidden)
        .ok_or("not forbidden")?;
    assert_eq!(
        refused.to_string(),
        "forbidden: POST /v1.0/me/sendMail needs any of Mail.Send, \
         https://graph.microsoft.com/.default; the credential holds MAIL.SEND, mail.send, openid \
         (`MAIL.SEND` is not `Mail.Send`: scope names compare exactly, case included)"
    );
    assert_eq!(calls.count(), 0);

    // Holding one of them: sent, and the server's 403 comes back explained in those names.
    let service = layers("https://graph.microsoft.com/.default")?
        .service(calls.answering(StatusCode::FORBIDDEN, DENIED));
    let response = service.oneshot(send_mail()).await?;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let explained = forbidden_in(&response)?;
    assert_eq!(
        explained.required.as_ref(),
        Some(&"https://graph.microsoft.com/.default,Mail.Send".parse()?)
    );
    assert_eq!(
        explained.held.as_ref(),
        Some(&"https://graph.microsoft.com/.default".parse()?)
    );
    assert!(explained.api.is_some());
    assert_eq!(calls.count(), 1);
    assert_eq!(bytes_of(response).await?, DENIED);
    Ok(())
}
