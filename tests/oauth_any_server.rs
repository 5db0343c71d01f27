//! `ClientCredentials` against an OAuth 2.0 authorization server that is not Infobip's: HTTP
//! Basic client authentication, a requested scope, extra form parameters, and the token types
//! and error answers such servers send. Two loopback servers: the authorization server (the
//! source's base URL) and the API the layer is allowed to send tokens to.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use infobip_auth::source::client_credentials::ClientAuthentication;
use infobip_auth::source::{ClientCredentials, Transport};
use infobip_auth::{BoxError, ConfigError, Error, ErrorKind, InfobipAuthLayer};
use tower::{Layer as _, Service as _, ServiceExt as _};

/// A client id and secret holding `:`, `+`, a space and non-ASCII.
const CLIENT_ID: &str = "my:app+1 ü";
const CLIENT_SECRET: &str = "s3:cr+t é";

/// Each form-urlencoded (RFC 6749 §2.3.1), by hand: `:` → `%3A`, `+` → `%2B`, space → `+`,
/// `ü` (C3 BC) → `%C3%BC`, `é` (C3 A9) → `%C3%A9`; then joined with `:` (RFC 7617).
const JOINED: &str = "my%3Aapp%2B1+%C3%BC:s3%3Acr%2Bt+%C3%A9";

/// `JOINED` in base64, worked out apart from the crate (`printf %s "$JOINED" | base64`).
const BASIC: &str = "Basic bXklM0FhcHAlMkIxKyVDMyVCQzpzMyUzQWNyJTJCdCslQzMlQTk=";

/// What the authorization server saw of one token request.
#[derive(Clone, Debug)]
struct TokenRequest {
    authorization: Option<String>,
    content_type: Option<String>,
    form: Vec<(String, String)>,
}

#[derive(Default)]
struct Seen {
    token_requests: Vec<TokenRequest>,
    /// The `Authorization` of every request the API received.
    api_requests: Vec<String>,
    issued: u32,
    live: HashSet<String>,
}

/// The two servers' shared state and how the authorization server answers.
#[derive(Clone)]
struct Servers {
    seen: Arc<Mutex<Seen>>,
    /// The `token_type` of its answers.
    token_type: &'static str,
    /// An error answer given instead of a token: status and body, the request echoed after.
    refusal: Option<(StatusCode, &'static str)>,
    auth_url: String,
    api_url: String,
}

impl Servers {
    async fn start(
        token_type: &'static str,
        refusal: Option<(StatusCode, &'static str)>,
    ) -> Result<Self, BoxError> {
        let auth = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let servers = Self {
            seen: Arc::default(),
            token_type,
            refusal,
            auth_url: format!("http://{}", auth.local_addr()?),
            api_url: format!("http://{}", api.local_addr()?),
        };
        let auth_app = axum::Router::new()
            .route("/oauth2/token", axum::routing::post(token))
            .with_state(servers.clone());
        let api_app = axum::Router::new()
            .route("/v1/messages", axum::routing::get(messages))
            .with_state(servers.clone());
        tokio::spawn(async move { axum::serve(auth, auth_app).await });
        tokio::spawn(async move { axum::serve(api, api_app).await });
        Ok(servers)
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn builder(&self) -> infobip_auth::source::client_credentials::Builder {
        ClientCredentials::builder(&self.auth_url, CLIENT_ID, CLIENT_SECRET)
            .transport(Transport::new(support::client()))
            .token_path("/oauth2/token")
    }

    /// The layer over `source`, allowed to send its tokens to the API's host.
    fn layer(&self, source: ClientCredentials) -> Result<InfobipAuthLayer, BoxError> {
        Ok(InfobipAuthLayer::new(source).allow_origin(&self.api_url)?)
    }

    fn messages_request(&self) -> Result<Request<Full<Bytes>>, BoxError> {
        Ok(Request::get(format!("{}/v1/messages", self.api_url)).body(Full::default())?)
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The token endpoint: records the request, then grants `token-N` or gives the refusal (with
/// the request's `Authorization` and body echoed, as some gateways do).
async fn token(State(servers): State<Servers>, headers: HeaderMap, body: Bytes) -> Response {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let authorization = header(&headers, "authorization");
    let mut seen = servers.seen();
    seen.token_requests.push(TokenRequest {
        authorization: authorization.clone(),
        content_type: header(&headers, "content-type"),
        form,
    });
    if let Some((status, error)) = servers.refusal {
        let echo = format!(
            "{{\"error\":\"{error}\",\"error_description\":\"refused {} with {}\"}}",
            authorization.unwrap_or_default(),
            String::from_utf8_lossy(&body).replace('"', "'"),
        );
        return (status, echo).into_response();
    }
    seen.issued += 1;
    let token = format!("token-{}", seen.issued);
    seen.live.insert(token.clone());
    let answer = serde_json::json!({
        "access_token": token, "token_type": servers.token_type, "expires_in": 3600
    });
    (StatusCode::OK, answer.to_string()).into_response()
}

/// The API: answers a live token with the header it came in, anything else with `401`.
async fn messages(State(servers): State<Servers>, headers: HeaderMap) -> Response {
    let authorization = header(&headers, "authorization").unwrap_or_default();
    let mut seen = servers.seen();
    seen.api_requests.push(authorization.clone());
    let token = authorization.strip_prefix("Bearer ").unwrap_or_default();
    if seen.live.contains(token) {
        (StatusCode::OK, authorization).into_response()
    } else {
        (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_token"}"#).into_response()
    }
}

async fn body_of(response: http::Response<hyper::body::Incoming>) -> Result<String, BoxError> {
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn basic_client_authentication_sends_the_rfc_header_and_bearer_to_the_api()
-> Result<(), BoxError> {
    // The hand-computed header is the base64 of the hand-encoded pair.
    let decoded = STANDARD.decode(BASIC.trim_start_matches("Basic "))?;
    assert_eq!(decoded, JOINED.as_bytes());

    let servers = Servers::start("bearer", None).await?;
    let source = servers
        .builder()
        .client_authentication(ClientAuthentication::Basic)
        .request_scope("messages:read messages:write")
        .form_param("audience", "https://api.example.com")
        .form_param("resource", "https://api.example.com/v1")
        .form_param("resource", "https://api.example.com/v2")
        .build()?;
    let mut service = servers.layer(source)?.layer(support::client());

    let response = service
        .ready()
        .await?
        .call(servers.messages_request()?)
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_of(response).await?, "Bearer token-1");

    let seen = servers.seen();
    let [request] = &seen.token_requests[..] else {
        panic!("one token request expected: {:?}", seen.token_requests);
    };
    assert_eq!(request.authorization.as_deref(), Some(BASIC));
    assert_eq!(
        request.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    // No client id or secret in the form: the header carries them.
    let expected = pairs(&[
        ("grant_type", "client_credentials"),
        ("scope", "messages:read messages:write"),
        ("audience", "https://api.example.com"),
        ("resource", "https://api.example.com/v1"),
        ("resource", "https://api.example.com/v2"),
    ]);
    assert_eq!(request.form, expected);
    assert_eq!(seen.api_requests, ["Bearer token-1"]);
    Ok(())
}

#[tokio::test]
async fn the_form_default_keeps_infobips_fields_and_adds_scope_and_parameters()
-> Result<(), BoxError> {
    let servers = Servers::start("Bearer", None).await?;
    let source = servers
        .builder()
        .request_scope("read")
        .form_param("audience", "api")
        .build()?;
    let service = servers.layer(source)?.layer(support::client());
    let response = service.oneshot(servers.messages_request()?).await?;
    assert_eq!(body_of(response).await?, "Bearer token-1");

    let seen = servers.seen();
    assert_eq!(seen.token_requests.len(), 1);
    assert_eq!(seen.token_requests[0].authorization, None);
    let expected = pairs(&[
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("grant_type", "client_credentials"),
        ("scope", "read"),
        ("audience", "api"),
    ]);
    assert_eq!(seen.token_requests[0].form, expected);
    Ok(())
}

#[tokio::test]
async fn a_401_from_the_api_renews_the_token_with_basic_and_replays() -> Result<(), BoxError> {
    let servers = Servers::start("BEARER", None).await?;
    let source = servers
        .builder()
        .client_authentication(ClientAuthentication::Basic)
        .build()?;
    let service = servers.layer(source)?.layer(support::client());

    let first = service.clone().oneshot(servers.messages_request()?).await?;
    assert_eq!(body_of(first).await?, "Bearer token-1");
    servers.seen().live.clear(); // the server revokes every token

    let second = service.clone().oneshot(servers.messages_request()?).await?;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(body_of(second).await?, "Bearer token-2");

    let seen = servers.seen();
    let headers: Vec<_> = seen
        .token_requests
        .iter()
        .map(|r| r.authorization.as_deref())
        .collect();
    assert_eq!(headers, [Some(BASIC), Some(BASIC)]);
    assert_eq!(
        seen.api_requests,
        ["Bearer token-1", "Bearer token-1", "Bearer token-2"]
    );
    Ok(())
}

#[test]
fn a_bad_scope_or_a_grant_field_is_refused_when_built() {
    let builder = || {
        ClientCredentials::builder("https://auth.example.com", CLIENT_ID, CLIENT_SECRET)
            .transport(Transport::new(support::client()))
    };
    let scope_refused = |scope: &str| {
        matches!(
            builder().request_scope(scope).build(),
            Err(ConfigError::Invalid {
                what: "requested scope",
                ..
            })
        )
    };
    for bad in [
        "read  write",
        " read",
        "read ",
        "read\twrite",
        "say\"hi\"",
        "back\\slash",
        "ünicode",
        "new\nline",
    ] {
        assert!(scope_refused(bad), "{bad:?} was not refused");
    }
    assert_eq!(
        builder().request_scope("").build().err(),
        Some(ConfigError::Empty {
            what: "requested scope"
        })
    );
    // Every character RFC 6749 §3.3 allows, in tokens separated by single spaces.
    let allowed: String = (0x21u8..=0x7e)
        .filter(|b| *b != b'"' && *b != b'\\')
        .map(char::from)
        .collect();
    assert!(
        builder()
            .request_scope(&format!("{allowed} read"))
            .build()
            .is_ok()
    );

    for reserved in ["grant_type", "client_id", "client_secret", "scope"] {
        let built = builder().form_param(reserved, "x").build();
        let Err(err) = built else {
            panic!("{reserved} was not refused");
        };
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    what: "form parameter",
                    ..
                }
            ),
            "{reserved}: {err:?}"
        );
        assert!(err.to_string().contains("request_scope"), "{err}");
    }
    assert_eq!(
        builder().form_param("", "x").build().err(),
        Some(ConfigError::Empty {
            what: "form parameter name"
        })
    );
}

#[tokio::test]
async fn a_token_type_other_than_bearer_is_refused_and_never_sent() -> Result<(), BoxError> {
    for token_type in ["DPoP", "mac", "N_A"] {
        let servers = Servers::start(token_type, None).await?;
        let source = servers.builder().build()?;
        let service = servers.layer(source)?.layer(support::client());
        let err = service
            .oneshot(servers.messages_request()?)
            .await
            .err()
            .ok_or("a token of another type was sent as Bearer")?;
        let ours = Error::find(&*err).ok_or("not an infobip_auth::Error")?;
        assert!(
            matches!(ours.kind(), ErrorKind::MalformedResponse { .. }),
            "{token_type}: {ours:?}"
        );
        let message = ours.to_string();
        assert!(
            message.contains(&format!("{token_type:?}")) && message.contains("Bearer"),
            "{message}"
        );
        assert!(!message.contains("token-1"), "{message}");
        assert!(servers.seen().api_requests.is_empty(), "{token_type}");
    }
    Ok(())
}

#[tokio::test]
async fn oauth_error_answers_are_typed_and_never_show_the_basic_secret() -> Result<(), BoxError> {
    let cases = [
        (StatusCode::UNAUTHORIZED, "invalid_client", true),
        (StatusCode::BAD_REQUEST, "invalid_client", true),
        (StatusCode::BAD_REQUEST, "invalid_scope", false),
    ];
    for (status, error, refused_client) in cases {
        let servers = Servers::start("Bearer", Some((status, error))).await?;
        let source = servers
            .builder()
            .client_authentication(ClientAuthentication::Basic)
            .request_scope("messages:admin")
            .build()?;
        let service = servers.layer(source)?.layer(support::client());
        let err = service
            .oneshot(servers.messages_request()?)
            .await
            .err()
            .ok_or("no error")?;
        let ours = Error::find(&*err).ok_or("not an infobip_auth::Error")?;
        let api = match ours.kind() {
            ErrorKind::InvalidCredentials(api) if refused_client => api,
            ErrorKind::TokenEndpoint(api) if !refused_client => api,
            other => panic!("{status} {error}: {other:?}"),
        };
        assert_eq!(api.status(), status);
        assert_eq!(api.code(), Some(error));
        // The server echoed the Basic header: neither the secret nor the header shows.
        let message = format!("{ours} {ours:?}");
        for hidden in [
            CLIENT_SECRET,
            "s3%3Acr%2Bt+%C3%A9",
            BASIC.trim_start_matches("Basic "),
        ] {
            assert!(!message.contains(hidden), "{hidden:?} in {message}");
        }
        assert!(message.contains("refused Basic"), "{message}");
    }
    Ok(())
}

#[test]
fn debug_shows_the_choices_but_no_secret() -> Result<(), BoxError> {
    let builder = || {
        ClientCredentials::builder("https://auth.example.com", CLIENT_ID, CLIENT_SECRET)
            .transport(Transport::new(support::client()))
            .client_authentication(ClientAuthentication::Basic)
            .request_scope("read")
            .form_param("audience", "aud-value-7")
    };
    let shown_builder = format!("{:?}", builder());
    let source = builder().build()?;
    let shown_source = format!("{source:?}");
    let shown_layer = format!("{:?}", InfobipAuthLayer::new(source));
    for shown in [shown_builder, shown_source, shown_layer] {
        for hidden in [
            CLIENT_SECRET,
            "s3%3Acr%2Bt+%C3%A9",
            BASIC.trim_start_matches("Basic "),
            "aud-value-7",
        ] {
            assert!(!shown.contains(hidden), "{hidden:?} in {shown}");
        }
        assert!(
            shown.contains("Basic") && shown.contains("audience"),
            "{shown}"
        );
    }
    Ok(())
}
