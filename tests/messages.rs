//! What the crate says to its users, as they read it in a log: the errors of every credential
//! kind against the embedded server, and the tracing events (feature `tracing`) of whole flows.

mod support;

use std::error::Error as StdError;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use infobip_auth::mock::{self, Fault, MockServer};
use infobip_auth::source::{AuthCodeFlow, ClientCredentials};
use infobip_auth::{BoxError, Error, InfobipAuthLayer};
use support::{client, reports, transport};
use tower::{ServiceBuilder, ServiceExt as _};

type TestResult = Result<(), BoxError>;

/// An error and its causes on one line, as `anyhow`'s `{:#}` and log formatters show it.
fn report(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cause = err.source();
    while let Some(err) = cause {
        parts.push(err.to_string());
        cause = err.source();
    }
    parts.join(": ")
}

/// Checks what `err` shows (its report and `Debug`) for `secrets`, and that no cause repeats
/// the words of the error it explains.
fn assert_says_no_secret(err: &(dyn StdError + 'static), secrets: &[String]) {
    let shown = format!("{} {err:?}", report(err));
    for secret in secrets {
        assert!(!shown.contains(secret.as_str()), "{secret} in {shown}");
    }
    let mut outer = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        let said = err.to_string();
        assert!(!outer.contains(&said), "{said:?} said twice: {shown}");
        outer = said;
        cause = err.source();
    }
}

/// `GET /sms/1/inbox/reports` through the auth layer (and its scope check) over the embedded
/// server: the status, and the crate's error for a refusal it passed through.
async fn read(
    layer: &InfobipAuthLayer,
    server: &MockServer,
) -> Result<(StatusCode, Option<Error>), BoxError> {
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(layer.scope_check())
        .service(client());
    let response = service.oneshot(reports(server)).await?;
    let said = response.extensions().get::<Error>().cloned();
    let status = response.status();
    response.into_body().collect().await?;
    Ok((status, said))
}

/// An Infobip error answer whose text quotes the request's `Authorization` header, as a
/// gateway that explains its refusal may.
fn echoing(authorization: &str) -> Fault {
    let text = format!("Invalid login details for {authorization}");
    let body = serde_json::json!({ "requestError": { "serviceException": {
        "messageId": "UNAUTHORIZED", "text": text } } });
    Fault::Body {
        status: StatusCode::UNAUTHORIZED,
        content_type: "application/json",
        body: Bytes::from(body.to_string()),
    }
}

#[tokio::test]
async fn a_refusal_quoting_the_credential_is_shown_without_it() -> TestResult {
    let server = MockServer::start().await?;
    let layer = InfobipAuthLayer::api_key(mock::DEMO_API_KEY)?.allow_origin(server.base_url())?;
    server.inject_operation(echoing(&format!("App {}", mock::DEMO_API_KEY)));
    let (status, said) = read(&layer, &server).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let said = said.ok_or("no error with the 401")?;
    assert!(report(&said).starts_with("invalid credentials"), "{said}");
    assert_says_no_secret(&said, &[mock::DEMO_API_KEY.to_owned()]);
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_request_to_another_host_says_how_to_allow_it() -> TestResult {
    let layer = InfobipAuthLayer::api_key(mock::DEMO_API_KEY)?;
    let elsewhere = Request::get("https://user:pa55@example.com/sms/1/inbox/reports?token=t0k")
        .body(Full::<Bytes>::default())?;
    let err = ServiceBuilder::new()
        .layer(layer)
        .service(client())
        .oneshot(elsewhere)
        .await
        .err()
        .ok_or("sent")?;
    let said = report(&*err);
    assert!(said.contains("https://example.com"), "{said}");
    assert!(said.contains("allow_origin"), "no advice: {said}");
    assert_says_no_secret(&*err, &["pa55".to_owned(), "t0k".to_owned()]);
    Ok(())
}

/// Any URL on loopback where nothing listens.
async fn closed_port() -> Result<String, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    drop(listener);
    Ok(base)
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_reported_with_its_cause() -> TestResult {
    let base = closed_port().await?;
    let source = ClientCredentials::builder(&base, "client-id", "client-s3cret")
        .transport(transport(&client()))
        .build()?;
    let err = InfobipAuthLayer::new(source)
        .credential()
        .await
        .err()
        .ok_or("fetched")?;
    let said = report(&err);
    assert!(said.starts_with("token request failed"), "{said}");
    assert!(
        said.to_lowercase().contains("refused"),
        "the cause is missing: {said}"
    );
    assert_says_no_secret(&err, &["client-s3cret".to_owned()]);
    Ok(())
}

/// A `401` from the API and a token endpoint's refusal read differently, each with what to do:
/// a key that does not renew is to be replaced, a token is renewed, a wrong secret is fixed.
#[tokio::test]
async fn a_refused_credential_says_which_side_refused_it_and_what_to_do() -> TestResult {
    let server = MockServer::start().await?;
    let base = server.base_url().to_owned();
    let refused = |status: StatusCode| Fault::Status {
        status,
        retry_after: None,
    };

    // An API key the API refuses: it does not renew.
    let api_key = InfobipAuthLayer::api_key(mock::DEMO_API_KEY)?.allow_origin(&base)?;
    server.revoke_api_key(mock::DEMO_API_KEY);
    let (status, said) = read(&api_key, &server).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let said = report(&said.ok_or("no error with the 401")?);
    assert!(said.contains("the API refused the credential"), "{said}");
    assert!(said.contains("does not renew: replace it"), "{said}");

    // A token the API refuses, and its renewal too: the layer renews, so this is the account's.
    let oauth = support::oauth(&server)?;
    assert_eq!(read(&oauth, &server).await?.0, StatusCode::OK);
    server.inject_operation(refused(StatusCode::UNAUTHORIZED));
    server.inject_operation(refused(StatusCode::UNAUTHORIZED));
    let (status, said) = read(&oauth, &server).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let said = report(&said.ok_or("no error with the 401")?);
    assert!(said.contains("the API refused the credential"), "{said}");
    assert!(said.contains("a new one is fetched"), "{said}");

    // A token endpoint refusing the client's secret: there is no credential to send.
    let wrong = ClientCredentials::builder(&base, mock::DEMO_CLIENT_ID, "wrong-s3cret")
        .transport(transport(&client()))
        .build()?;
    let err = InfobipAuthLayer::new(wrong)
        .credential()
        .await
        .err()
        .ok_or("fetched")?;
    let said = report(&err);
    assert!(said.contains("token endpoint refused"), "{said}");
    assert!(said.contains("check the client ID and secret"), "{said}");
    assert!(!said.contains("the API refused"), "{said}");
    assert_says_no_secret(&err, &["wrong-s3cret".to_owned()]);
    server.shutdown().await;
    Ok(())
}

/// The embedded server's demo app, authorized, and its code exchanged with `secret`: what the
/// token endpoint made of the exchange.
async fn exchanged(
    server: &MockServer,
    secret: &str,
) -> Result<Result<infobip_auth::source::AuthCode, Error>, BoxError> {
    let flow = AuthCodeFlow::builder(server.base_url(), mock::DEMO_APP_CLIENT_ID)
        .client_secret(secret)
        .redirect_uri(mock::DEMO_REDIRECT_URI)
        .scope("sms:message:send")
        .transport(transport(&client()))
        .build()?;
    let (url, pending) = flow.authorize_url()?;
    let callback = authorized_callback(url).await?;
    Ok(flow.exchange(flow.callback(pending, &callback)?).await)
}

/// The callback URL the embedded server's consent page sends the browser to for `url`.
async fn authorized_callback(url: http::Uri) -> Result<String, BoxError> {
    let authorized = client()
        .oneshot(Request::get(url).body(Full::<Bytes>::default())?)
        .await?;
    Ok(authorized
        .headers()
        .get(http::header::LOCATION)
        .ok_or("no redirect")?
        .to_str()?
        .to_owned())
}

#[tokio::test]
async fn a_refused_exchange_refresh_says_to_authorize_again() -> TestResult {
    let server = MockServer::start().await?;
    let exchange = InfobipAuthLayer::new(exchanged(&server, mock::DEMO_APP_CLIENT_SECRET).await??);
    exchange.credential().await?;
    server.revoke_all_tokens();
    let err = exchange.refresh().await.err().ok_or("refreshed")?;
    let said = report(&err);
    assert!(
        said.contains("the token endpoint refused to refresh the Exchange token"),
        "{said}"
    );
    assert!(
        said.ends_with(
            "the refresh token has expired or was revoked, so the user must authorize the app again"
        ),
        "{said}"
    );
    // Advice for a client secret or a password reads wrong for a refresh token.
    for wrong in ["client ID and secret", "username and password"] {
        assert!(!said.contains(wrong), "{said}");
    }
    assert_says_no_secret(&err, &[mock::DEMO_APP_CLIENT_SECRET.to_owned()]);

    // The app's secret refused when its code is exchanged: that advice stays.
    let err = exchanged(&server, "wrong-s3cret")
        .await?
        .err()
        .ok_or("exchanged")?;
    let said = report(&err);
    assert!(said.contains("check the client ID and secret"), "{said}");
    assert!(!said.contains("refresh"), "{said}");
    assert_says_no_secret(&err, &["wrong-s3cret".to_owned()]);
    server.shutdown().await;
    Ok(())
}

/// A token source that panics.
#[derive(Debug)]
struct Panics;

impl infobip_auth::source::TokenSource for Panics {
    async fn fetch(
        &self,
        _previous: Option<&infobip_auth::Credential>,
    ) -> Result<infobip_auth::Credential, Error> {
        panic!("a bug in the source")
    }
}

#[tokio::test]
async fn a_source_that_panicked_is_no_transport_error() -> TestResult {
    let err = InfobipAuthLayer::new(Panics)
        .credential()
        .await
        .err()
        .ok_or("fetched")?;
    let said = report(&err);
    assert!(said.contains("the token source panicked"), "{said}");
    assert!(!said.contains("transport"), "{said}");
    assert!(err.is_transient(), "its kind is kept: {err:?}");
    assert_says_no_secret(&err, &[]);
    Ok(())
}

#[cfg(feature = "tracing")]
mod traced {
    //! Every event of the flows goes to a subscriber of this thread's, which writes each field
    //! as a log formatter would: an error with its causes.

    use std::fmt::{self, Write as _};
    use std::sync::{Arc, Mutex};

    use http::Method;
    use infobip_auth::source::Session;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata};

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<String>>);

    impl Capture {
        fn text(&self) -> String {
            self.0.lock().map(|text| text.clone()).unwrap_or_default()
        }

        fn write(&self, record: impl FnOnce(&mut String)) {
            if let Ok(mut text) = self.0.lock() {
                record(&mut text);
            }
        }
    }

    struct Fields<'a>(&'a mut String);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }

        fn record_error(&mut self, field: &Field, value: &(dyn StdError + 'static)) {
            let _ = write!(self.0, "{}={} ", field.name(), report(value));
        }
    }

    impl tracing::Subscriber for Capture {
        fn enabled(&self, meta: &Metadata<'_>) -> bool {
            meta.target().starts_with("infobip_auth")
        }

        fn new_span(&self, span: &Attributes<'_>) -> Id {
            self.write(|text| span.record(&mut Fields(text)));
            Id::from_u64(1)
        }

        fn record(&self, _: &Id, values: &Record<'_>) {
            self.write(|text| values.record(&mut Fields(text)));
        }

        fn record_follows_from(&self, _: &Id, _: &Id) {}

        fn event(&self, event: &Event<'_>) {
            self.write(|text| {
                let meta = event.metadata();
                let _ = write!(text, "{} {}: ", meta.level(), meta.target());
                event.record(&mut Fields(text));
                text.push('\n');
            });
        }

        fn enter(&self, _: &Id) {}

        fn exit(&self, _: &Id) {}
    }

    /// Captures the events of this thread (the tests run on a current-thread runtime, the
    /// embedded server's and the caches' tasks with them) until the guard drops.
    fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
        let capture = Capture::default();
        let guard = tracing::subscriber::set_default(capture.clone());
        (capture, guard)
    }

    /// The `warn` lines of `text`: one per failure, with all an operator needs.
    fn warnings(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|line| line.starts_with("WARN"))
            .collect()
    }

    #[tokio::test]
    async fn a_failed_fetch_is_traced_once_at_warn_with_its_cause_and_backoff() -> TestResult {
        let (capture, _guard) = capture();
        let base = closed_port().await?;
        let source = ClientCredentials::builder(&base, "client-id", "client-s3cret")
            .transport(transport(&client()))
            .build()?;
        let _ = InfobipAuthLayer::new(source).credential().await;
        let text = capture.text();
        let [failed] = warnings(&text)[..] else {
            return Err(format!("not one warning: {text}").into());
        };
        assert!(failed.contains("credential renewal failed"), "{failed}");
        assert!(
            failed.to_lowercase().contains("refused"),
            "the cause is missing: {failed}"
        );
        assert!(failed.contains("delay="), "no backoff: {failed}");
        assert!(
            text.contains("credential fetch failed"),
            "no debug line: {text}"
        );
        assert!(!text.contains("client-s3cret"), "{text}");
        Ok(())
    }

    #[tokio::test]
    async fn a_refused_exchange_refresh_is_one_warning() -> TestResult {
        let (capture, _guard) = capture();
        let server = MockServer::start().await?;
        let exchange =
            InfobipAuthLayer::new(exchanged(&server, mock::DEMO_APP_CLIENT_SECRET).await??);
        exchange.credential().await?;
        server.revoke_all_tokens();
        let err = exchange.refresh().await.err().ok_or("refreshed")?;
        let text = capture.text();
        let [failed] = warnings(&text)[..] else {
            return Err(format!("not one warning: {text}").into());
        };
        assert!(failed.contains("authorize the app again"), "{failed}");
        assert!(failed.contains(&report(&err)), "{failed} without {err}");
        server.shutdown().await;
        Ok(())
    }

    /// Sends a request per credential kind through its whole life against the embedded server
    /// (made, used, refused, renewed, ended, and wrong), and finds none of the secrets involved
    /// in any event or error.
    #[tokio::test]
    async fn no_secret_of_any_flow_reaches_tracing_or_errors() -> TestResult {
        let (capture, _guard) = capture();
        let server = MockServer::start().await?;
        let base = server.base_url().to_owned();
        let mut secrets: Vec<String> = [
            mock::DEMO_API_KEY,
            mock::DEMO_CLIENT_SECRET,
            mock::DEMO_PASSWORD,
            mock::DEMO_APP_CLIENT_SECRET,
            "wrong-s3cret",
        ]
        .map(str::to_owned)
        .into();
        let mut errors: Vec<Error> = Vec::new();
        let mut keep = |said: Option<Error>| errors.extend(said);

        // API key: used, revoked (a 401 the layer cannot cure), and quoted by the server.
        let api_key = InfobipAuthLayer::api_key(mock::DEMO_API_KEY)?.allow_origin(&base)?;
        assert_eq!(read(&api_key, &server).await?.0, StatusCode::OK);
        server.inject_operation(echoing(&format!("App {}", mock::DEMO_API_KEY)));
        keep(read(&api_key, &server).await?.1);
        server.revoke_api_key(mock::DEMO_API_KEY);
        keep(read(&api_key, &server).await?.1);

        // Client credentials: a token, revoked and renewed; a wrong secret.
        let oauth = support::oauth(&server)?;
        assert_eq!(read(&oauth, &server).await?.0, StatusCode::OK);
        secrets.push(oauth.credential().await?.expose_token().to_owned());
        server.revoke_all_tokens();
        assert_eq!(read(&oauth, &server).await?.0, StatusCode::OK);
        secrets.push(oauth.credential().await?.expose_token().to_owned());
        let wrong = ClientCredentials::builder(&base, mock::DEMO_CLIENT_ID, "wrong-s3cret")
            .transport(transport(&client()))
            .build()?;
        keep(InfobipAuthLayer::new(wrong).credential().await.err());

        // Session: made, refused and made again, ended; a wrong password.
        let session = Session::builder(&base, mock::DEMO_USERNAME, mock::DEMO_PASSWORD)
            .transport(transport(&client()))
            .build()?;
        let session = InfobipAuthLayer::new(session);
        assert_eq!(read(&session, &server).await?.0, StatusCode::OK);
        secrets.push(session.credential().await?.expose_token().to_owned());
        server.revoke_all_tokens();
        assert_eq!(read(&session, &server).await?.0, StatusCode::OK);
        secrets.push(session.credential().await?.expose_token().to_owned());
        session.revoke().await?;
        let wrong = Session::builder(&base, mock::DEMO_USERNAME, "wrong-s3cret")
            .transport(transport(&client()))
            .build()?;
        keep(InfobipAuthLayer::new(wrong).credential().await.err());

        // Exchange: authorized, a forged callback, the code exchanged, used, refreshed after a
        // refusal, then refused for good; the code used twice.
        let flow = AuthCodeFlow::builder(&base, mock::DEMO_APP_CLIENT_ID)
            .client_secret(mock::DEMO_APP_CLIENT_SECRET)
            .redirect_uri(mock::DEMO_REDIRECT_URI)
            .scope("sms:message:send")
            .transport(transport(&client()))
            .build()?;
        let (url, pending) = flow.authorize_url()?;
        secrets.push(pending.state().to_owned());
        let callback = authorized_callback(url).await?;
        let (forged_url, forged) = flow.authorize_url()?;
        drop(forged_url);
        keep(flow.callback(forged, &callback).err());
        let grant = flow.callback(pending, &callback)?;
        secrets.push(grant.expose_code().to_owned());
        let again = flow.callback(
            infobip_auth::source::PendingAuthorization::new(&secrets[secrets.len() - 2], None)?,
            &callback,
        )?;
        let source = flow.exchange(grant).await?;
        keep(flow.exchange(again).await.err());
        secrets.push(source.credential().expose_token().to_owned());
        let exchange = InfobipAuthLayer::new(source.clone());
        let sms = Request::builder()
            .method(Method::POST)
            .uri(server.url("/sms/2/text/advanced"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(br#"{"messages":[]}"#)))?;
        let response = ServiceBuilder::new()
            .layer(exchange.clone())
            .service(client())
            .oneshot(sms)
            .await?;
        keep(response.extensions().get::<Error>().cloned());
        server.revoke_all_tokens();
        keep(exchange.refresh().await.err());
        secrets.push(source.credential().expose_token().to_owned());
        keep(exchange.credential().await.err());

        let text = capture.text();
        for expected in ["client_credentials", "session", "auth_code", "fetch"] {
            assert!(text.contains(expected), "no {expected} event: {text}");
        }
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{secret} in {text}");
        }
        assert!(errors.len() >= 5, "{errors:?}");
        for err in &errors {
            assert_says_no_secret(err, &secrets);
        }
        server.shutdown().await;
        Ok(())
    }
}
