//! The server's own tests, over real HTTP on loopback with hyper-util's client.

mod exchange;
mod faults;
mod oauth2;
mod operation_faults;
mod resources;
mod robustness;
mod server;
mod session;
mod throttle;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, LOCATION};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use super::*;
use crate::BoxError;

type TestResult = Result<(), BoxError>;

const FORM: &str = "application/x-www-form-urlencoded";
const SMS: &str =
    r#"{"messages":[{"destinations":[{"to":"41793026727"}],"from":"InfoSMS","text":"Hi"}]}"#;

/// An answer, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Result<Value, BoxError> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// Infobip's `messageId` and `text`, or empty strings.
    fn infobip_error(&self) -> (String, String) {
        let json = self.json().unwrap_or_default();
        let field = |name: &str| {
            json["requestError"]["serviceException"][name]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        (field("messageId"), field("text"))
    }

    /// Asserts a refusal: the status, the `messageId`, and words the text must hold.
    #[track_caller]
    fn assert_refused(&self, status: StatusCode, message_id: &str, words: &str) {
        let (id, text) = self.infobip_error();
        assert_eq!(self.status, status, "{text}");
        assert_eq!(id, message_id, "{text}");
        assert!(text.contains(words), "{text:?} does not mention {words:?}");
    }

    #[track_caller]
    fn assert_unauthorized(&self) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            self.json().ok(),
            Some(
                json!({"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Invalid login details"}}})
            )
        );
    }

    #[track_caller]
    fn assert_forbidden(&self) {
        assert_eq!(self.status, StatusCode::FORBIDDEN);
        assert_eq!(
            self.json().ok(),
            Some(
                json!({"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}})
            )
        );
    }

    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }
}

/// A hyper-util client aimed at one server.
struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    fn new(server: &MockServer) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: server.base_url().to_owned(),
        }
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Answer, BoxError> {
        let response = self.client.request(request).await?;
        let (parts, body) = response.into_parts();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await?.to_bytes(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Bytes>,
    ) -> Result<Answer, BoxError> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(auth) = auth {
            request = request.header(AUTHORIZATION, auth);
        }
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        self.send(request.body(Full::new(body.into()))?).await
    }

    async fn get(&self, path: &str, auth: Option<&str>) -> Result<Answer, BoxError> {
        self.call(Method::GET, path, auth, None, Bytes::new()).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Result<Answer, BoxError> {
        let body = body.to_string();
        self.call(Method::POST, path, None, Some("application/json"), body)
            .await
    }

    async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Result<Answer, BoxError> {
        let body = serde_urlencoded::to_string(fields)?;
        self.call(Method::POST, path, None, Some(FORM), body).await
    }

    async fn send_sms(&self, auth: Option<&str>) -> Result<Answer, BoxError> {
        let json = Some("application/json");
        self.call(Method::POST, "/sms/2/text/advanced", auth, json, SMS)
            .await
    }

    async fn login(&self, username: &str, password: &str) -> Result<Answer, BoxError> {
        let body = json!({"username": username, "password": password});
        self.post_json("/auth/1/session", &body).await
    }

    /// A session token for the demo user.
    async fn session_token(&self) -> Result<String, BoxError> {
        let answer = self.login(DEMO_USERNAME, DEMO_PASSWORD).await?;
        assert_eq!(answer.status, StatusCode::OK);
        string_field(&answer, "token")
    }

    /// An OAuth access token for the demo client.
    async fn access_token(&self) -> Result<String, BoxError> {
        let answer = self
            .post_form(
                "/auth/1/oauth2/token",
                &[
                    ("client_id", DEMO_CLIENT_ID),
                    ("client_secret", DEMO_CLIENT_SECRET),
                    ("grant_type", "client_credentials"),
                ],
            )
            .await?;
        assert_eq!(answer.status, StatusCode::OK);
        string_field(&answer, "access_token")
    }
}

fn string_field(answer: &Answer, name: &str) -> Result<String, BoxError> {
    let json = answer.json()?;
    let value = json[name]
        .as_str()
        .ok_or_else(|| format!("no {name} in {json}"))?;
    Ok(value.to_owned())
}

fn basic(username: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}
