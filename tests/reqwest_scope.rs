//! The scope check for reqwest clients against the embedded server: a `403` explained, its
//! body untouched, another host's answers left alone, a pre-flight refusal that sends nothing
//! and names the endpoint, and a stalled body still a reqwest timeout.

use std::time::Duration;

use infobip_auth::mock::{Fault, MockConfig, MockServer};
use infobip_auth::reqwest::find_error;
use infobip_auth::scope::ScopeCheckLayer;
use infobip_auth::source::ApiKey;
use infobip_auth::{BoxError, Error, ErrorKind, InfobipAuthLayer, Scopes};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

const SMS: &str = r#"{"messages":[{"destinations":[{"to":"41793026727"}],"text":"Hi"}]}"#;

/// A server knowing the key `reader`, which reads inbound messages and does not send them.
async fn server() -> Result<MockServer, BoxError> {
    Ok(MockServer::start_with(MockConfig::new().api_key("reader", "inbound-message:read")).await?)
}

/// The auth middleware with its scope check inside it, as the docs advise.
fn checked_client(auth: &InfobipAuthLayer) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(auth.reqwest_middleware())
        .with(auth.scope_check().reqwest_middleware())
        .build()
}

/// Status, headers but `date`, and body bytes of a response.
async fn whole(response: reqwest::Response) -> Result<(u16, Vec<String>, Vec<u8>), BoxError> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| format!("{name}: {value:?}"))
        .collect();
    Ok((status, headers, response.bytes().await?.to_vec()))
}

#[tokio::test]
async fn a_403_names_the_missing_scope_and_keeps_its_status_headers_and_body()
-> Result<(), BoxError> {
    let server = server().await?;
    let auth = InfobipAuthLayer::api_key("reader")?.allow_origin(server.base_url())?;
    let response = checked_client(&auth)
        .post(server.url("/sms/2/text/advanced"))
        .body(SMS)
        .send()
        .await?;
    assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
    assert_eq!(response.url().as_str(), server.url("/sms/2/text/advanced"));
    let error = response
        .extensions()
        .get::<Error>()
        .ok_or("not explained")?;
    let forbidden = error.forbidden().ok_or("not a 403")?;
    let send: Scopes = "message:send,sms:message:send,sms:manage".parse()?;
    assert_eq!(forbidden.required, Some(send));
    assert_eq!(forbidden.endpoint, "/sms/2/text/advanced");
    let api = forbidden
        .api
        .as_ref()
        .ok_or("the server's words are missing")?;
    assert_eq!(api.code(), Some("FORBIDDEN"));
    let checked = whole(response).await?;

    // The same request without the scope check: the same answer, byte for byte.
    let plain = ClientBuilder::new(reqwest::Client::new())
        .with(auth.reqwest_middleware())
        .build();
    let unchecked = plain
        .post(server.url("/sms/2/text/advanced"))
        .body(SMS)
        .send()
        .await?;
    assert!(unchecked.extensions().get::<Error>().is_none());
    assert_eq!(checked, whole(unchecked).await?);
    assert!(String::from_utf8_lossy(&checked.2).contains("FORBIDDEN"));

    // Read in part (the first 10 bytes, then the rest streamed): the same bytes still.
    let partly = ClientBuilder::new(reqwest::Client::new())
        .with(auth.reqwest_middleware())
        .with(auth.scope_check().read_limit(10).reqwest_middleware())
        .build();
    let response = partly
        .post(server.url("/sms/2/text/advanced"))
        .body(SMS)
        .send()
        .await?;
    assert!(response.extensions().get::<Error>().is_some());
    assert_eq!(checked, whole(response).await?);
    Ok(())
}

#[tokio::test]
async fn a_request_to_another_host_is_untouched() -> Result<(), BoxError> {
    let infobip = server().await?;
    let elsewhere = server().await?;
    // Held scopes that would refuse sending an SMS before it is sent, were it Infobip's.
    let check = ScopeCheckLayer::new()
        .held("inbound-message:read".parse()?)
        .allow_origin(infobip.base_url())?;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(check.reqwest_middleware())
        .build();
    let send = |server: &MockServer| {
        client
            .post(server.url("/sms/2/text/advanced"))
            .header("authorization", "App reader")
            .body(SMS)
            .send()
    };

    let refused = send(&infobip)
        .await
        .err()
        .ok_or("sent to the judged host")?;
    let error = find_error(&refused).ok_or("untyped")?;
    assert!(matches!(error.kind(), ErrorKind::Forbidden(_)), "{error}");
    assert_eq!(infobip.counters().resource_requests("App"), 0);

    let response = send(&elsewhere).await?;
    assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
    assert!(response.extensions().get::<Error>().is_none());
    assert!(response.text().await?.contains("FORBIDDEN"));
    assert_eq!(elsewhere.counters().resource_requests("App"), 1);
    Ok(())
}

#[tokio::test]
async fn a_standalone_check_keeps_a_quoted_key_out_of_its_error() -> Result<(), BoxError> {
    const QUOTED_KEY: &str = "7d1e0c94b2a6f3580e1d";
    let server = server().await?;
    let body = format!(
        r#"{{"requestError":{{"serviceException":{{"messageId":"FORBIDDEN","text":"App {QUOTED_KEY} may not send SMS"}}}}}}"#
    );
    server.inject_operation(Fault::Body {
        status: http::StatusCode::FORBIDDEN,
        content_type: "application/json",
        body: body.into(),
    });
    // No auth middleware: the caller sets the header itself.
    let check = ScopeCheckLayer::new().allow_origin(server.base_url())?;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(check.reqwest_middleware())
        .build();
    let response = client
        .post(server.url("/sms/2/text/advanced"))
        .header("authorization", format!("App {QUOTED_KEY}"))
        .body(SMS)
        .send()
        .await?;
    assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
    let error = response
        .extensions()
        .get::<Error>()
        .cloned()
        .ok_or("not explained")?;
    let api = error
        .forbidden()
        .and_then(|forbidden| forbidden.api.as_ref())
        .ok_or("the server's words are missing")?;
    assert_eq!(api.code(), Some("FORBIDDEN"));
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains(QUOTED_KEY), "{shown}");
        assert!(shown.contains("may not send SMS"), "{shown}");
    }
    assert!(response.text().await?.contains(QUOTED_KEY));
    Ok(())
}

#[tokio::test]
async fn declared_scopes_refuse_before_sending_and_nothing_is_sent() -> Result<(), BoxError> {
    let server = server().await?;
    let key = ApiKey::new("reader")?.with_scopes("inbound-message:read".parse()?);
    let auth = InfobipAuthLayer::new(key).allow_origin(server.base_url())?;
    let client = checked_client(&auth);

    let refused = client
        .post(server.url("/sms/2/text/advanced"))
        .body(SMS)
        .send()
        .await
        .err()
        .ok_or("sent")?;
    let error = find_error(&refused).ok_or(format!("untyped: {refused}"))?;
    let forbidden = error.forbidden().ok_or("not a scope refusal")?;
    assert_eq!(forbidden.held, Some("inbound-message:read".parse()?));
    assert!(forbidden.api.is_none(), "a server answer on a refusal");
    assert_eq!(server.counters().resource_requests("App"), 0);

    // What the key holds is sent, and answered.
    let response = client
        .get(server.url("/sms/1/inbox/reports"))
        .send()
        .await?;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(server.counters().resource_requests("App"), 1);
    Ok(())
}

#[tokio::test]
async fn a_refused_scheme_names_the_endpoint_and_not_the_key() -> Result<(), BoxError> {
    const KEY: &str = "5b0f6e2d9c81a473e5f";
    let server = server().await?;
    let auth = InfobipAuthLayer::api_key(KEY)?.allow_origin(server.base_url())?;
    let refused = checked_client(&auth)
        .post(server.url("/settings/2/api-keys"))
        .body("{}")
        .send()
        .await
        .err()
        .ok_or("sent")?;
    let error = find_error(&refused).ok_or(format!("untyped: {refused}"))?;
    let ErrorKind::SchemeNotAccepted { endpoint, .. } = error.kind() else {
        return Err(format!("not a scheme refusal: {error:?}").into());
    };
    assert_eq!(endpoint, "/settings/2/api-keys");
    let said = error.to_string();
    assert!(
        said.starts_with("POST /settings/2/api-keys does not accept `App` credentials"),
        "{said}"
    );
    for shown in [said, format!("{error:?}"), format!("{refused} {refused:?}")] {
        assert!(!shown.contains(KEY), "{shown}");
    }
    assert_eq!(server.counters().resource_requests("App"), 0);
    Ok(())
}

/// A loopback server that answers every request with a `403` whose headers promise a body it
/// starts and never finishes: the connection stays open, silent, until the test ends.
async fn stalling_403() -> Result<String, BoxError> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buffer = [0; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => request.extend_from_slice(&buffer[..read]),
                }
            }
            let head = "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\n\
                        content-length: 200\r\n\r\n{\"requestError\":";
            let _ = stream.write_all(head.as_bytes()).await;
            open.push(stream);
        }
    });
    Ok(base)
}

#[tokio::test(start_paused = true)]
async fn a_body_that_times_out_still_says_so_after_the_check() -> Result<(), BoxError> {
    let base = stalling_403().await?;
    let check = ScopeCheckLayer::new().allow_origin(&base)?;
    let second = Duration::from_secs(1);
    // Within the check's read of the 403 (5 s), or after it handed the rest of the body on.
    let clients = [
        ("timeout", reqwest::Client::builder().timeout(second)),
        (
            "read_timeout",
            reqwest::Client::builder().read_timeout(second),
        ),
        (
            "late timeout",
            reqwest::Client::builder().timeout(10 * second),
        ),
    ];
    for (what, client) in clients {
        let client = ClientBuilder::new(client.build()?)
            .with(check.reqwest_middleware())
            .build();
        let response = client
            .get(format!("{base}/sms/1/inbox/reports"))
            .header("authorization", "App reader")
            .send()
            .await?;
        assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN, "{what}");
        assert!(
            response.extensions().get::<Error>().is_some(),
            "{what}: not read"
        );
        let err = response.bytes().await.err().ok_or("the body ended")?;
        assert!(err.is_timeout(), "{what}: {err:?}");
    }
    Ok(())
}
