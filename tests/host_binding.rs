//! Host binding through the public API: look-alike hosts, ports, user information and
//! loopback look-alikes get no credential, and a service clone that remembers the origin it
//! last allowed tells it apart from every other authority, byte for byte. A request whose URI
//! names no host gets the credential only once `relative_uris_go_to` names an allowed origin.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use http::{Request, Response, Uri};
use infobip_auth::{BoxError, ConfigError, Error, ErrorKind, InfobipAuthLayer};
use tower::{Layer as _, Service as _, ServiceExt as _, service_fn};

const KEY: &str = "003026bbc133714df1834b8638bb496e";

/// The URIs of the requests that reached the inner service with a credential.
type Seen = Arc<Mutex<Vec<Uri>>>;

/// The inner service of the tests: records the URI of every request that reached it with a
/// credential, and answers `200`.
fn recording(
    layer: &InfobipAuthLayer,
) -> (
    impl tower::Service<Request<String>, Response = Response<String>, Error = BoxError>,
    Seen,
) {
    let seen = Seen::default();
    let inner = service_fn({
        let seen = seen.clone();
        move |request: Request<String>| {
            if request.headers().contains_key("authorization") {
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(request.uri().clone());
            }
            async { Ok::<_, Infallible>(Response::new(String::new())) }
        }
    });
    (layer.layer(inner), seen)
}

fn request(uri: &str) -> Result<Request<String>, BoxError> {
    let uri: Uri = uri.parse()?;
    let mut request = Request::new(String::new());
    *request.uri_mut() = uri;
    Ok(request)
}

/// Whether the layer refused `uri` with `HostNotAllowed`; any other outcome is an error.
async fn refused<S>(service: &mut S, uri: &str) -> Result<bool, BoxError>
where
    S: tower::Service<Request<String>, Response = Response<String>, Error = BoxError>,
{
    match service.ready().await?.call(request(uri)?).await {
        Ok(_) => Ok(false),
        Err(err) => match Error::find(&*err).map(Error::kind) {
            Some(ErrorKind::HostNotAllowed { .. }) => Ok(true),
            _ => Err(err),
        },
    }
}

#[tokio::test]
async fn hosts_that_only_look_like_infobip_get_no_credential() -> Result<(), BoxError> {
    let layer = InfobipAuthLayer::api_key(KEY)?;
    let (mut service, seen) = recording(&layer);
    for uri in [
        // The host is what follows the last `@`: these go to evil.example.
        "https://api.infobip.com@evil.example/sms/1/inbox/reports",
        "https://api.infobip.com:443@evil.example/sms/1/inbox/reports",
        "https://api.infobip.com%5c@evil.example/sms/1/inbox/reports",
        "https://a@api.infobip.com@evil.example/sms/1/inbox/reports",
        // The authority ends at `#` or `?`.
        "https://evil.example#.infobip.com/",
        "https://evil.example?.infobip.com/",
        // An IP literal followed by what looks like Infobip's domain is the IP literal.
        "https://[::1].infobip.com/",
        "https://127.0.0.1/",
        // Infobip, but in clear text or on a port its API does not serve.
        "http://api.infobip.com:443/",
        "https://api.infobip.com:8443/",
        // A host with no scheme (authority form): a client may send it in clear text.
        "api.infobip.com:443",
        "api.infobip.com:80",
    ] {
        assert!(refused(&mut service, uri).await?, "{uri} was not refused");
    }
    assert_eq!(
        *seen.lock().unwrap_or_else(PoisonError::into_inner),
        Vec::<Uri>::new()
    );

    // What a client reads as the same host and port is the same origin.
    for uri in [
        "HTTPS://API.INFOBIP.COM/sms/1/inbox/reports",
        "https://api.infobip.com:0443/sms/1/inbox/reports",
        "https://api.infobip.com:/sms/1/inbox/reports",
    ] {
        assert!(!refused(&mut service, uri).await?, "{uri} was refused");
    }
    Ok(())
}

#[tokio::test]
async fn a_loopback_look_alike_is_no_loopback_for_plain_http() {
    // Names that start like loopback but resolve wherever their domain's owner points them.
    for url in [
        "http://localhost.evil.example:8080",
        "http://127.0.0.1.nip.io:8080",
        "http://127.0.0.1.evil.example:8080",
    ] {
        let err = InfobipAuthLayer::api_key(KEY)
            .and_then(|layer| layer.allow_origin(url))
            .err();
        assert!(
            matches!(err, Some(ConfigError::InsecureUrl { .. })),
            "{url}: {err:?}"
        );
    }
    // User information is refused before the host is looked at: either way round.
    for url in [
        "http://127.0.0.1:8080@evil.example",
        "http://evil.example@127.0.0.1:8080",
        "https://evil.example@api.infobip.com",
    ] {
        let err = InfobipAuthLayer::api_key(KEY)
            .and_then(|layer| layer.allow_origin(url))
            .err();
        assert!(
            matches!(err, Some(ConfigError::InvalidUrl { .. })),
            "{url}: {err:?}"
        );
    }
}

/// A service clone remembers the last origin it allowed, by length and first and last bytes;
/// any authority that differs from it in one byte, at any place and for any length, takes the
/// full check and is refused.
#[tokio::test]
async fn the_remembered_origin_is_told_from_any_authority_one_byte_off() -> Result<(), BoxError> {
    for len in 1..=48 {
        let host = "a".repeat(len);
        let allowed = format!("https://{host}/sms/1/inbox/reports");
        let layer = InfobipAuthLayer::api_key(KEY)?.allow_origin(&format!("https://{host}"))?;
        let (mut service, seen) = recording(&layer);
        for at in 0..len {
            let mut other = host.clone().into_bytes();
            other[at] = b'b';
            let other = format!("https://{}/sms/1/inbox/reports", String::from_utf8(other)?);
            assert!(!refused(&mut service, &allowed).await?, "{allowed}");
            assert!(
                refused(&mut service, &other).await?,
                "{other} after {allowed}"
            );
        }
        // The scheme and the port are part of what is remembered too.
        for other in [
            format!("http://{host}/sms/1/inbox/reports"),
            format!("https://{host}:8443/sms/1/inbox/reports"),
            format!("https://{host}a/sms/1/inbox/reports"),
        ] {
            assert!(!refused(&mut service, &allowed).await?, "{allowed}");
            assert!(
                refused(&mut service, &other).await?,
                "{other} after {allowed}"
            );
        }
        let seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(
            seen.iter().all(|uri| uri.host() == Some(host.as_str())),
            "{len}: {seen:?}"
        );
    }
    Ok(())
}

/// What a tonic `Channel` is given: a path, the channel adding its own origin below the layer.
const GRPC_PATH: &str = "/grpc.health.v1.Health/Check";

#[tokio::test]
async fn a_request_with_no_host_gets_no_credential_by_default() -> Result<(), BoxError> {
    let layer = InfobipAuthLayer::api_key(KEY)?;
    let (mut service, seen) = recording(&layer);
    // First on the slow path, then on the hot one, once an Infobip origin was allowed.
    assert!(refused(&mut service, GRPC_PATH).await?);
    assert!(!refused(&mut service, "https://api.infobip.com/sms/1/inbox/reports").await?);
    for uri in [GRPC_PATH, "*", "/"] {
        assert!(refused(&mut service, uri).await?, "{uri} was not refused");
    }
    assert_eq!(seen.lock().unwrap_or_else(PoisonError::into_inner).len(), 1);
    // The refusal says what to do.
    let err = service
        .ready()
        .await?
        .call(request(GRPC_PATH)?)
        .await
        .err()
        .ok_or("sent")?;
    let message = Error::find(&*err).ok_or("not ours")?.to_string();
    assert!(
        message.contains("names no host") && message.contains("relative_uris_go_to"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_request_with_no_host_goes_where_relative_uris_go_to_says() -> Result<(), BoxError> {
    let layer =
        InfobipAuthLayer::api_key(KEY)?.relative_uris_go_to("https://grpc.api.infobip.com")?;
    let (mut service, seen) = recording(&layer);
    for uri in [GRPC_PATH, GRPC_PATH, "https://api.infobip.com/x", GRPC_PATH] {
        assert!(!refused(&mut service, uri).await?, "{uri} was refused");
    }
    // A host without a scheme is still refused: a client may send it in clear text.
    assert!(refused(&mut service, "api.infobip.com:443").await?);
    assert!(refused(&mut service, "grpc.api.infobip.com:443").await?);
    assert_eq!(seen.lock().unwrap_or_else(PoisonError::into_inner).len(), 4);

    // A loopback origin the layer allows, named after it was allowed.
    let url = "http://127.0.0.1:50051";
    let layer = InfobipAuthLayer::api_key(KEY)?
        .allow_origin(url)?
        .relative_uris_go_to(url)?;
    let (mut service, _) = recording(&layer);
    assert!(!refused(&mut service, GRPC_PATH).await?);
    Ok(())
}

#[test]
fn relative_uris_go_only_to_an_origin_the_layer_sends_credentials_to() -> Result<(), BoxError> {
    // An API key never travels in clear text to a remote host, nor outside Infobip unasked.
    let clear_text = InfobipAuthLayer::api_key(KEY)?.relative_uris_go_to("http://remote.example");
    assert!(
        matches!(clear_text, Err(ConfigError::InsecureUrl { .. })),
        "{clear_text:?}"
    );
    for url in ["https://remote.example", "http://127.0.0.1:50051"] {
        let other = InfobipAuthLayer::api_key(KEY)?.relative_uris_go_to(url);
        assert!(
            matches!(other, Err(ConfigError::InvalidUrl { .. })),
            "{url}: {other:?}"
        );
    }
    // The first `allow_origin` ends the default that allowed it: told at once.
    let ended = InfobipAuthLayer::api_key(KEY)?
        .relative_uris_go_to("https://grpc.api.infobip.com")?
        .allow_origin("http://127.0.0.1:50051");
    let message = ended.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("call relative_uris_go_to after allow_origin"),
        "{message}"
    );
    // Once origins are listed, more only add to the list.
    let listed = InfobipAuthLayer::api_key(KEY)?
        .allow_origin("https://gateway.example")?
        .relative_uris_go_to("https://gateway.example:443")?
        .allow_origin("http://127.0.0.1:50051");
    assert!(listed.is_ok(), "{listed:?}");
    // A host written without its scheme is shown, and told what to write.
    let message = InfobipAuthLayer::api_key(KEY)?
        .relative_uris_go_to("grpc.api.infobip.com")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        message,
        r#"invalid URL "grpc.api.infobip.com": no scheme: write https:// before the host"#
    );
    Ok(())
}
