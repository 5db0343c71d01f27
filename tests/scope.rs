//! The scope check over real sockets, against the embedded server: what is refused before
//! sending never reaches it, and its `401`s and `403`s come back explained, bytes intact.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{DEMO_PASSWORD, DEMO_USERNAME, Fault, MockConfig, MockServer};
use infobip_auth::scope::{ScopeCheck, ScopeCheckLayer};
use infobip_auth::source::ApiKey;
use infobip_auth::{BoxError, Error, ErrorKind, InfobipAuth, InfobipAuthLayer, Scopes};
use tower::{ServiceBuilder, ServiceExt as _};

const SMS: &str =
    r#"{"messages":[{"destinations":[{"to":"41793026727"}],"from":"InfoSMS","text":"Hi"}]}"#;

fn http_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `auth` over its scope check, over a plain HTTP client.
fn checked(auth: &InfobipAuthLayer) -> InfobipAuth<ScopeCheck<Client<HttpConnector, Full<Bytes>>>> {
    ServiceBuilder::new()
        .layer(auth.clone())
        .layer(auth.scope_check())
        .service(http_client())
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
    let client = checked(&auth);

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
    let client = checked(&auth);

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
    let client = checked(&auth);
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
    let client = checked(&auth);
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

#[tokio::test]
async fn a_path_with_dot_segments_is_the_same_endpoint_to_the_check_and_the_server()
-> Result<(), BoxError> {
    let server = server().await?;
    let auth = InfobipAuthLayer::api_key("reader")?.allow_origin(server.base_url())?;
    let client = checked(&auth);
    // hyper sends the path as written; both read it as `/sms/2/text/advanced`.
    let sms = request(&server, Method::POST, "/sms/2/text/../text/advanced", SMS);
    let response = client.clone().oneshot(sms).await?;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let error = response.extensions().get::<Error>().cloned();
    let explained = error
        .as_ref()
        .and_then(Error::forbidden)
        .ok_or("not forbidden")?;
    let required: Scopes = "message:send,sms:message:send,sms:manage".parse()?;
    assert_eq!(explained.required.as_ref(), Some(&required));
    assert_eq!(server.counters().forbidden, 1);

    // What the key may do, reached through dot segments, is answered.
    let inbox = request(&server, Method::GET, "/sms/1/./logs/../inbox/reports", "");
    assert_eq!(client.oneshot(inbox).await?.status(), StatusCode::OK);
    server.shutdown().await;
    Ok(())
}

/// An API key that no server here knows; a gateway's `403` below quotes it.
const QUOTED_KEY: &str = "7d1e0c94b2a6f3580e1d";

/// A `403` whose words quote the `Authorization` it refused.
fn a_403_quoting_the_key() -> Fault {
    let body = format!(
        r#"{{"requestError":{{"serviceException":{{"messageId":"FORBIDDEN","text":"App {QUOTED_KEY} may not send SMS"}}}}}}"#
    );
    Fault::Body {
        status: StatusCode::FORBIDDEN,
        content_type: "application/json",
        body: Bytes::from(body),
    }
}

#[tokio::test]
async fn a_standalone_check_keeps_a_quoted_key_out_of_its_error() -> Result<(), BoxError> {
    let server = server().await?;
    server.inject_operation(a_403_quoting_the_key());
    // No auth layer: the caller sets the header itself.
    let client = ServiceBuilder::new()
        .layer(ScopeCheckLayer::new().allow_origin(server.base_url())?)
        .service(http_client());
    let mut sms = request(&server, Method::POST, "/sms/2/text/advanced", SMS);
    let sent = HeaderValue::from_str(&format!("App {QUOTED_KEY}"))?;
    sms.headers_mut().insert(header::AUTHORIZATION, sent);

    let response = client.oneshot(sms).await?;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
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
    // The body is the server's, quote and all: the caller's own to handle.
    let body = response.into_body().collect().await?.to_bytes();
    assert!(String::from_utf8_lossy(&body).contains(QUOTED_KEY));
    server.shutdown().await;
    Ok(())
}

/// One row of `data/x_scopes_by_operation.tsv`, read here independently of the crate.
struct Row {
    method: Method,
    template: String,
    scopes: Vec<String>,
    schemes: Vec<String>,
}

fn rows() -> Vec<Row> {
    include_str!("../data/x_scopes_by_operation.tsv")
        .lines()
        .skip(1)
        .filter(|line| !line.is_empty())
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let list = |field: &str| -> Vec<String> {
                field
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            Some(Row {
                method: Method::from_bytes(fields.get(1)?.as_bytes()).ok()?,
                template: (*fields.get(2)?).to_owned(),
                scopes: list(fields.get(4)?),
                schemes: list(fields.get(5)?),
            })
        })
        .collect()
}

/// Twenty distinct rows, drawn with a fixed seed so that a failure names the same ones again.
fn twenty_drawn(count: usize) -> Vec<usize> {
    let mut state: u64 = 0x5eed_2026_0b1f_u64;
    let mut drawn = Vec::new();
    while drawn.len() < 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let index = usize::try_from(state % count as u64).unwrap_or_default();
        if !drawn.contains(&index) {
            drawn.push(index);
        }
    }
    drawn
}

/// `template` with its parameters filled in as a caller would: an id, a phone number, a value
/// needing percent-encoding; and a query string.
fn filled(template: &str) -> String {
    let values = ["4F2A-91c", "41793026727", "a%20b%2Fc"];
    let mut out = String::new();
    let mut rest = template;
    let mut n = 0;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        out.push_str(values[n % values.len()]);
        n += 1;
        rest = rest[start..]
            .find('}')
            .map_or("", |end| &rest[start + end + 1..]);
    }
    out.push_str(rest);
    out + "?limit=5&from=2026-01-01T00%3A00%3A00"
}

fn header_word(openapi: &str) -> &'static str {
    match openapi {
        "APIKeyHeader" => "App",
        "Basic" => "Basic",
        "IBSSOTokenHeader" => "IBSSO",
        _ => "Bearer",
    }
}

/// Twenty operations drawn from the catalogue, and three chosen, end to end over loopback against the embedded server
/// protecting all of them: the `403` names exactly the operation's template and scopes and
/// hands back the server's bytes; a credential whose scopes are not declared is never said to
/// lack one; declared scopes that grant none are refused before sending, and one that grants
/// is sent and served; a scheme the operation does not take is refused before sending.
#[tokio::test]
async fn twenty_operations_drawn_from_the_catalogue_end_to_end() -> Result<(), BoxError> {
    let rows = rows();
    assert_eq!(rows.len(), 943);
    let mut drawn = twenty_drawn(rows.len());
    // And, on purpose, operations the draw is unlikely to bring: ones that refuse API keys or
    // take nothing else, and one listing no scope.
    for (method, template) in [
        (Method::GET, "/settings/2/api-keys/{apiKeyId}"),
        (Method::POST, "/forms/1/forms/{id}/data"),
        (Method::GET, "/vocalize/2/campaigns/{campaignId}"),
    ] {
        let index = rows
            .iter()
            .position(|row| row.method == method && row.template == template)
            .ok_or(template)?;
        drawn.push(index);
    }
    // Scopes no drawn operation lists: a credential holding only one of them holds nothing
    // these operations need.
    let unrelated = ["billing:usage:view", "ai:read", "metrics:manage"];
    let mut config = MockConfig::new().all_operations();
    for &index in &drawn {
        let row = &rows[index];
        let other = unrelated
            .iter()
            .find(|s| !row.scopes.iter().any(|held| held == *s))
            .ok_or("no unrelated scope")?;
        let granting = row.scopes.last().map_or(*other, String::as_str);
        config = config
            .api_key(format!("key-without-{index}"), other)
            .api_key(format!("key-with-{index}"), granting)
            .user(format!("user-without-{index}"), "pw", other);
    }
    let server = MockServer::start_with(config).await?;
    let raw = http_client();

    for &index in &drawn {
        let row = &rows[index];
        let what = format!("{} {}", row.method, row.template);
        let path = filled(&row.template);
        let body = if row.method == Method::POST { SMS } else { "" };
        let other = unrelated
            .iter()
            .find(|s| !row.scopes.iter().any(|held| held == *s))
            .ok_or("no unrelated scope")?;
        // A scheme the operation takes, and whose credential carries no scope of its own.
        let takes_app = row.schemes.is_empty() || row.schemes.iter().any(|s| s == "APIKeyHeader");
        let undeclared = if takes_app {
            InfobipAuthLayer::api_key(&format!("key-without-{index}"))?
        } else {
            InfobipAuthLayer::basic(&format!("user-without-{index}"), "pw")?
        }
        .allow_origin(server.base_url())?;
        let client = ServiceBuilder::new()
            .layer(undeclared.clone())
            .layer(undeclared.scope_check())
            .service(http_client());
        let response = client
            .oneshot(request(&server, row.method.clone(), &path, body))
            .await?;
        let status = response.status();
        let meaning = response.extensions().get::<Error>().cloned();
        let returned = response.into_body().collect().await?.to_bytes();
        if row.scopes.is_empty() {
            assert_ne!(status, StatusCode::FORBIDDEN, "{what}");
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
            let forbidden = meaning
                .as_ref()
                .and_then(Error::forbidden)
                .ok_or(format!("{what}: not explained"))?;
            assert_eq!(forbidden.method, row.method, "{what}");
            assert_eq!(forbidden.endpoint, row.template, "{what}");
            let required: Scopes = row.scopes.join(",").parse()?;
            assert_eq!(forbidden.required.as_ref(), Some(&required), "{what}");
            assert_eq!(forbidden.held, None, "{what}: scopes were never declared");
            let text = meaning.map(|e| e.to_string()).unwrap_or_default();
            assert!(!text.contains("holds"), "{what}: {text}");
            // The server's own bytes, as a client without the check receives them.
            let word = if takes_app { "App" } else { "Basic" };
            let mut direct = request(&server, row.method.clone(), &path, body);
            let value = if takes_app {
                format!("App key-without-{index}")
            } else {
                use base64::Engine as _;
                let pair = format!("user-without-{index}:pw");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            };
            direct
                .headers_mut()
                .insert(header::AUTHORIZATION, value.parse()?);
            let expected = raw.request(direct).await?;
            assert_eq!(expected.status(), StatusCode::FORBIDDEN, "{what} ({word})");
            let expected = expected.into_body().collect().await?.to_bytes();
            assert_eq!(returned, expected, "{what}");
        }

        if takes_app && !row.scopes.is_empty() {
            // Declared scopes that grant none of the operation's: refused, nothing sent.
            let before = server.counters().resource_requests("App");
            let key = ApiKey::new(&format!("key-without-{index}"))?.with_scopes(other.parse()?);
            let auth = InfobipAuthLayer::new(key).allow_origin(server.base_url())?;
            let client = checked(&auth);
            let err = client
                .oneshot(request(&server, row.method.clone(), &path, body))
                .await
                .err()
                .ok_or(format!("{what}: sent"))?;
            let refused = Error::find(&*err)
                .and_then(Error::forbidden)
                .ok_or(format!("{what}: not forbidden"))?;
            assert_eq!(refused.endpoint, row.template, "{what}");
            assert_eq!(refused.held, Some(other.parse()?), "{what}");
            assert_eq!(server.counters().resource_requests("App"), before, "{what}");

            // Declared to hold one of them: sent, and served.
            let granting = row.scopes.last().ok_or("no scope")?;
            let key = ApiKey::new(&format!("key-with-{index}"))?.with_scopes(granting.parse()?);
            let auth = InfobipAuthLayer::new(key).allow_origin(server.base_url())?;
            let client = checked(&auth);
            let response = client
                .oneshot(request(&server, row.method.clone(), &path, body))
                .await?;
            assert_eq!(response.status(), StatusCode::OK, "{what}");
            assert!(response.extensions().get::<Error>().is_none(), "{what}");
        }

        // A scheme the operation does not take: refused before sending, naming those it takes.
        let refused_scheme = ["APIKeyHeader", "Basic"]
            .into_iter()
            .find(|name| !row.schemes.is_empty() && !row.schemes.iter().any(|s| s == name));
        if let Some(name) = refused_scheme {
            let auth = if name == "Basic" {
                InfobipAuthLayer::basic(&format!("user-without-{index}"), "pw")?
            } else {
                InfobipAuthLayer::api_key("any")?
            }
            .allow_origin(server.base_url())?;
            let client = checked(&auth);
            let err = client
                .oneshot(request(&server, row.method.clone(), &path, body))
                .await
                .err()
                .ok_or(format!("{what}: sent"))?;
            let Some(ErrorKind::SchemeNotAccepted { accepted, .. }) =
                Error::find(&*err).map(Error::kind)
            else {
                return Err(format!("{what}: not refused for its scheme").into());
            };
            let words: Vec<&str> = accepted.iter().map(|s| s.header_scheme()).collect();
            let expected: Vec<&str> = row.schemes.iter().map(|s| header_word(s)).collect();
            assert_eq!(words, expected, "{what}");
        }
    }
    server.shutdown().await;
    Ok(())
}
