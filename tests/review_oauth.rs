//! The OAuth wire against the embedded server: reserved characters in every value a client
//! sends (client id, secret, redirect URI, state), and the error bodies the server answers
//! with, as Infobip's OpenAPI document shapes them.

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use infobip_auth::mock::{self, ExchangeApp, MockConfig, MockServer};
use infobip_auth::source::{AuthCodeFlow, ClientCredentials, TokenSource, Transport};
use infobip_auth::{BoxError, ErrorKind};

type TestResult = Result<(), BoxError>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Every character a form or a query gives a meaning to, and a space and a non-ASCII letter.
const RESERVED: &str = "a+b c&d=e%f/g?h#i;é";

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

#[tokio::test]
async fn client_credentials_with_reserved_characters_reach_the_server_intact() -> TestResult {
    let id = format!("id {RESERVED}");
    let secret = format!("secret {RESERVED}");
    let server =
        MockServer::start_with(MockConfig::new().oauth_client(&id, &secret, "sms:manage")).await?;
    let oauth = |secret: &str| {
        ClientCredentials::builder(server.base_url(), &id, secret)
            .transport(Transport::new(client()))
            .build()
    };
    assert_eq!(oauth(&secret)?.fetch(None).await?.scheme(), "Bearer");
    // The same secret with one character decoded differently is another secret.
    let err = oauth(&secret.replace('+', " "))?.fetch(None).await.err();
    assert!(
        matches!(
            err.as_ref().map(|e| e.kind()),
            Some(ErrorKind::InvalidCredentials(_))
        ),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_exchange_flow_with_reserved_characters_authorizes_exchanges_and_refreshes()
-> TestResult {
    // Infobip's client ids are hexadecimal, but nothing on the wire may depend on it.
    let client_id = "d5e47f02+d627&e390=d615%c2e93/f1";
    let secret = format!("YED8Q0KH/{RESERVED}=");
    let redirect_uri = "http://127.0.0.1:9/callback?tenant=a%2Bb&next=c+d";
    let app = ExchangeApp::new(client_id, &secret, redirect_uri, mock::DEMO_USERNAME);
    let server = MockServer::start_with(MockConfig::demo().exchange_app(app)).await?;
    let flow = AuthCodeFlow::builder(server.base_url(), client_id)
        .client_secret(&secret)
        .redirect_uri(redirect_uri)
        .scope("api_read")
        .transport(Transport::new(client()))
        .build()?;

    // A state Infobip hands to an embedded page, as the caller received it.
    let (url, pending) = flow.authorize_url_with_state(RESERVED)?;
    let request = Request::get(url.to_string()).body(Full::default())?;
    let answer = client().request(request).await?;
    assert_eq!(answer.status(), StatusCode::FOUND);
    let location = answer
        .headers()
        .get(header::LOCATION)
        .ok_or("no Location")?
        .to_str()?
        .to_owned();
    assert!(location.starts_with(redirect_uri), "{location}");

    let grant = flow.callback(pending, &location)?;
    let source = flow.exchange(grant).await?;
    let first = source.credential();
    assert_eq!(first.scheme(), "IBSSO");

    // Asked to replace the token: a refresh with `code=<token>` and the same client.
    let refreshed = source.fetch(Some(&first)).await?;
    assert_eq!(refreshed.scheme(), "IBSSO");
    assert_ne!(refreshed.expose_token(), first.expose_token());
    Ok(())
}

// Infobip's OpenAPI document, `POST /auth/1/oauth2/token`: `400` is `ApiException400`
// (`requestError` only), while the other `4XX` are `OAuthApiException`, which carries the
// deprecated OAuth `error` beside `requestError`. A server that leaves `error` out agrees with a
// client that only reads `requestError`.
#[tokio::test]
async fn a_wrong_client_is_refused_with_infobips_oauth_error_body() -> TestResult {
    let server = MockServer::start().await?;
    let form = serde_urlencoded::to_string([
        ("client_id", mock::DEMO_CLIENT_ID),
        ("client_secret", "not-the-secret"),
        ("grant_type", "client_credentials"),
    ])?;
    let request = Request::post(server.url("/auth/1/oauth2/token"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))?;
    let answer = client().request(request).await?;
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let body = answer.into_body().collect().await?.to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    assert!(
        json["requestError"]["serviceException"]["messageId"].is_string(),
        "{json}"
    );
    assert!(json["error"].is_string(), "{json}");
    Ok(())
}

/// A token endpoint answering every request with `status` and `body`.
fn answering(status: StatusCode, body: String) -> Transport {
    let body = Bytes::from(body);
    Transport::new(tower::service_fn(move |_: Request<Full<Bytes>>| {
        let mut answer = http::Response::new(Full::new(body.clone()));
        *answer.status_mut() = status;
        std::future::ready(Ok::<_, std::convert::Infallible>(answer))
    }))
}

// An `OAuthApiException` body: the client reads OAuth's `error` beside `requestError`. A `400`
// whose `error` refuses the client is a wrong credential, not a failing endpoint (an
// `invalid_request` is); the code shown is Infobip's `messageId`. The embedded server's `401`
// for a wrong secret is read the same way.
#[tokio::test]
async fn oauths_error_beside_request_error_classifies_the_refusal() -> TestResult {
    let exception = |error: &str| {
        format!(
            r#"{{"error":"{error}","requestError":{{"serviceException":{{"messageId":"BAD_REQUEST","text":"Bad request"}}}}}}"#
        )
    };
    for (error, refuses_the_client) in [
        ("invalid_client", true),
        ("unauthorized_client", true),
        ("invalid_grant", true),
        ("invalid_request", false),
    ] {
        let source = ClientCredentials::builder("https://xyz12.api.infobip.com", "id", "secret")
            .transport(answering(StatusCode::BAD_REQUEST, exception(error)))
            .build()?;
        let err = source.fetch(None).await.err().ok_or(error)?;
        let api = match err.kind() {
            ErrorKind::InvalidCredentials(api) if refuses_the_client => api,
            ErrorKind::TokenEndpoint(api) if !refuses_the_client => api,
            _ => return Err(format!("{error}: {err:?}").into()),
        };
        assert_eq!(api.code(), Some("BAD_REQUEST"), "{error}");
    }

    let server = MockServer::start().await?;
    let source = ClientCredentials::builder(server.base_url(), mock::DEMO_CLIENT_ID, "wrong")
        .transport(Transport::new(client()))
        .build()?;
    let err = source
        .fetch(None)
        .await
        .err()
        .ok_or("a wrong secret got a token")?;
    let ErrorKind::InvalidCredentials(api) = err.kind() else {
        return Err(format!("{err:?}").into());
    };
    assert_eq!(
        (api.code(), api.text()),
        (Some("UNAUTHORIZED"), Some("Invalid login details"))
    );
    Ok(())
}
