//! Every source that calls a token endpoint, against a hostile or broken one: a raw TCP server
//! on loopback that answers whatever bytes a test scripts (redirects, lying lengths, slow
//! drips, resets, silence). Each case checks the typed error, that no secret shows in it or in
//! tracing, and that nothing reached the host a redirect points to.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::source::{
    AuthCode, AuthCodeFlow, ClientCredentials, PendingAuthorization, Session, TokenSource,
    Transport,
};
use crate::{Credential, Error, ErrorKind};

type TestResult = Result<(), crate::BoxError>;

const PASSWORD: &str = "pw-hunter2-secret";
const CLIENT_SECRET: &str = "cs-YED8Q0KHeYgQxtjd";
const CODE: &str = "822762fa24e04975";
const VERIFIER: &str = "verifier-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH";
const PREVIOUS_SESSION: &str = "session-previous-2f9b4d31";
const SESSION_TOKEN: &str = "session-new-3d7908aa";
const ACCESS_TOKEN: &str = "access-eyJraWQ1234";
const EXCHANGE_TOKEN: &str = "exchange-7b8c4c5a94bf";
const SECRETS: [&str; 8] = [
    PASSWORD,
    CLIENT_SECRET,
    CODE,
    VERIFIER,
    PREVIOUS_SESSION,
    SESSION_TOKEN,
    ACCESS_TOKEN,
    EXCHANGE_TOKEN,
];

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the server does on a connection once it has read a request.
#[derive(Clone, Debug)]
enum Act {
    /// Writes these pieces, waiting `gap` before each one after the first, then closes.
    Write { pieces: Vec<Vec<u8>>, gap: Duration },
    /// Writes this, then keeps the connection open and says nothing more.
    WriteAndHold(Vec<u8>),
    /// Closes the connection with a TCP reset, answering nothing.
    Reset,
    /// Answers `status` with the request it refused quoted whole in an error body of this
    /// shape, as a gateway that echoes what it refused does.
    Echo(&'static str, Echo),
}

/// Where an echoing server quotes the request.
#[derive(Clone, Copy, Debug)]
enum Echo {
    /// Infobip's legacy `requestError.serviceException.text`.
    Legacy,
    /// The newer `description`.
    Description,
    /// OAuth's `error_description`.
    OAuth,
    /// JSON in no known shape (kept as the raw body).
    Unknown,
    /// Plain text.
    Text,
}

const ECHOES: [Echo; 5] = [
    Echo::Legacy,
    Echo::Description,
    Echo::OAuth,
    Echo::Unknown,
    Echo::Text,
];

/// One answer, written at once, then the connection is closed.
fn raw(text: impl Into<Vec<u8>>) -> Act {
    Act::Write {
        pieces: vec![text.into()],
        gap: Duration::ZERO,
    }
}

/// A complete HTTP/1.1 answer with `Content-Length`, `Connection: close` and `extra` headers.
fn answer(status: &str, extra: &str, body: &str) -> Act {
    raw(format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
        body.len()
    ))
}

fn json(status: &str, extra: &str, body: &str) -> Act {
    answer(
        status,
        &format!("content-type: application/json\r\n{extra}"),
        body,
    )
}

/// A scripted server: the next hostile [`Act`] goes to the next request; every other request
/// gets the right answer for its endpoint.
#[derive(Clone)]
struct Server {
    addr: SocketAddr,
    hostile: Arc<Mutex<VecDeque<Act>>>,
    /// Every request read, as text (head and body).
    seen: Arc<Mutex<Vec<String>>>,
    /// Connections accepted, whether or not a request was read.
    connections: Arc<Mutex<usize>>,
}

impl Server {
    async fn start() -> Result<Self, crate::BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let server = Self {
            addr: listener.local_addr()?,
            hostile: Arc::default(),
            seen: Arc::default(),
            connections: Arc::default(),
        };
        let serving = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                *lock(&serving.connections) += 1;
                let serving = serving.clone();
                tokio::spawn(async move { serving.serve(stream).await });
            }
        });
        Ok(server)
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn next(&self, act: Act) {
        lock(&self.hostile).push_back(act);
    }

    fn seen(&self) -> Vec<String> {
        lock(&self.seen).clone()
    }

    fn connections(&self) -> usize {
        *lock(&self.connections)
    }

    /// Serves requests on one connection until an act closes it.
    async fn serve(&self, mut stream: TcpStream) {
        loop {
            let Some(request) = read_request(&mut stream).await else {
                return;
            };
            lock(&self.seen).push(request.clone());
            let hostile = lock(&self.hostile).pop_front();
            let act = hostile.unwrap_or_else(|| good_answer(&request));
            match act {
                Act::Write { pieces, gap } => {
                    for (i, piece) in pieces.iter().enumerate() {
                        if i > 0 {
                            tokio::time::sleep(gap).await;
                        }
                        if stream.write_all(piece).await.is_err() {
                            return;
                        }
                    }
                    let _ = stream.flush().await;
                    return;
                }
                Act::WriteAndHold(bytes) => {
                    let _ = stream.write_all(&bytes).await;
                    let _ = stream.flush().await;
                    std::future::pending::<()>().await;
                }
                Act::Reset => {
                    let _ = stream.set_zero_linger();
                    return;
                }
                Act::Echo(status, shape) => {
                    let quoted = serde_json::Value::from(request.as_str());
                    let (content_type, body) = match shape {
                        Echo::Legacy => ("application/json", serde_json::json!({"requestError": {"serviceException": {"messageId": "BAD_REQUEST", "text": quoted}}}).to_string()),
                        Echo::Description => ("application/json", serde_json::json!({"errorCode": "E400", "description": quoted, "action": "", "violations": [], "resources": []}).to_string()),
                        Echo::OAuth => ("application/json", serde_json::json!({"error": "invalid_request", "error_description": quoted}).to_string()),
                        Echo::Unknown => ("application/json", serde_json::json!({"echo": quoted}).to_string()),
                        Echo::Text => ("text/plain", request.clone()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(body.as_bytes()).await;
                    let _ = stream.flush().await;
                    return;
                }
            }
        }
    }
}

/// Reads one request (head, then a body of `Content-Length` bytes); `None` at end of stream.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// What a well-behaved Infobip answers to `request`.
fn good_answer(request: &str) -> Act {
    let line = request.lines().next().unwrap_or_default();
    if line.starts_with("DELETE /auth/1/session") {
        answer("200 OK", "", "")
    } else if line.starts_with("POST /auth/1/session") {
        json("200 OK", "", &format!(r#"{{"token":"{SESSION_TOKEN}"}}"#))
    } else if line.starts_with("POST /auth/1/oauth2/token") {
        json(
            "200 OK",
            "",
            &format!(r#"{{"access_token":"{ACCESS_TOKEN}","expires_in":3600}}"#),
        )
    } else if line.starts_with("POST /exchange/1/oauth/token") {
        json(
            "200 OK",
            "",
            &format!(r#"{{"token":"{EXCHANGE_TOKEN}","tokenType":"IBSSO"}}"#),
        )
    } else {
        answer("404 Not Found", "", "")
    }
}

fn transport() -> Transport {
    Transport::new(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>())
}

/// One way of calling a token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    /// `POST /auth/1/session`.
    CreateSession,
    /// `DELETE /auth/1/session` of the previous session, then `POST /auth/1/session`.
    RenewSession,
    /// `POST /auth/1/oauth2/token` with the client secret.
    ClientCredentials,
    /// `POST /exchange/1/oauth/token` with the code and the client secret.
    Exchange,
    /// `POST /exchange/1/oauth/token` with the code and the PKCE verifier.
    ExchangePkce,
    /// `POST /exchange/1/oauth/token` with `grant_type=refresh_token` and the current token.
    Refresh,
}

const CALLS: [Call; 6] = [
    Call::CreateSession,
    Call::RenewSession,
    Call::ClientCredentials,
    Call::Exchange,
    Call::ExchangePkce,
    Call::Refresh,
];

fn flow(server: &Server, pkce: bool) -> Result<AuthCodeFlow, crate::BoxError> {
    let builder = AuthCodeFlow::builder(&server.base(), "d5e47f02d627e390d615c2e93f168eb6")
        .redirect_uri("https://www.my-app.com/callback")
        .scope("api_read")
        .transport(transport());
    let builder = if pkce {
        builder.pkce()
    } else {
        builder.client_secret(CLIENT_SECRET)
    };
    Ok(builder.build()?)
}

async fn exchange(server: &Server, pkce: bool) -> Result<Result<AuthCode, Error>, crate::BoxError> {
    let flow = flow(server, pkce)?;
    let pending = PendingAuthorization::new("xyz", pkce.then_some(VERIFIER))?;
    let grant = flow.callback(pending, &format!("?code={CODE}&state=xyz"))?;
    Ok(flow.exchange(grant).await)
}

/// Makes `call` against `server`, whose next request gets `act` (for a session renewal that is
/// the `DELETE`; for a refresh, the refresh itself).
async fn make(
    call: Call,
    server: &Server,
    act: &Act,
) -> Result<Result<Credential, Error>, crate::BoxError> {
    let session = || {
        Session::builder(&server.base(), "username", PASSWORD)
            .transport(transport())
            .build()
    };
    Ok(match call {
        Call::CreateSession => {
            server.next(act.clone());
            session()?.fetch(None).await
        }
        Call::RenewSession => {
            let previous = Credential::new("IBSSO", PREVIOUS_SESSION)?;
            server.next(act.clone());
            session()?.fetch(Some(&previous)).await
        }
        Call::ClientCredentials => {
            let source = ClientCredentials::builder(&server.base(), "client-id", CLIENT_SECRET)
                .transport(transport())
                .build()?;
            server.next(act.clone());
            source.fetch(None).await
        }
        Call::Exchange | Call::ExchangePkce => {
            server.next(act.clone());
            exchange(server, call == Call::ExchangePkce)
                .await?
                .map(|source| source.credential())
        }
        Call::Refresh => {
            let source = exchange(server, false).await??;
            let current = source.credential();
            server.next(act.clone());
            source.fetch(Some(&current)).await
        }
    })
}

/// `err`'s `Display` and `Debug`, and those of its sources.
fn shown(err: &Error) -> String {
    let mut shown = format!("{err} {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        shown.push_str(&format!(" {cause} {cause:?}"));
        source = cause.source();
    }
    shown
}

/// The error of `call` under `act`, checked for secrets in its `Display` and `Debug` (source
/// chain included) and in what tracing recorded meanwhile.
async fn failure(call: Call, act: &Act) -> Result<Error, crate::BoxError> {
    #[cfg(feature = "tracing")]
    let capture = crate::test_helpers::CaptureTracing::start();
    let server = Server::start().await?;
    let outcome = make(call, &server, act).await?;
    let err = match outcome {
        Ok(credential) => return Err(format!("{call:?} under {act:?}: {credential:?}").into()),
        Err(err) => err,
    };
    let shown = shown(&err);
    #[cfg(feature = "tracing")]
    let shown = {
        let traced = capture.text();
        assert!(
            traced.contains("token endpoint"),
            "nothing traced: {traced}"
        );
        shown + &traced
    };
    for secret in SECRETS {
        assert!(
            !shown.contains(secret),
            "{call:?} under {act:?} shows {secret}: {shown}"
        );
    }
    Ok(err)
}

/// A redirect from every token endpoint, to another host or none: never followed, so no
/// secret reaches the other host, and the error names the status.
#[tokio::test(start_paused = true)]
async fn a_redirect_is_never_followed_and_names_its_status() -> TestResult {
    let elsewhere = Server::start().await?;
    for status in [
        "301 Moved Permanently",
        "302 Found",
        "303 See Other",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        let location = format!("location: {}/auth/1/oauth2/token\r\n", elsewhere.base());
        for extra in [location.as_str(), ""] {
            let act = answer(status, extra, "");
            for call in CALLS {
                let code: u16 = status[..3].parse()?;
                if call == Call::RenewSession {
                    // A redirect ending the previous session is a definite answer: the next
                    // session is created (at the session endpoint, not the other host).
                    let server = Server::start().await?;
                    let created = make(call, &server, &act).await??;
                    assert_eq!(created.expose_token(), SESSION_TOKEN);
                    continue;
                }
                let err = failure(call, &act).await?;
                let api = match err.kind() {
                    ErrorKind::TokenEndpoint(api) => api,
                    ErrorKind::ReauthorizationRequired if call == Call::Refresh => {
                        return Err(format!("a redirect is not a refusal: {err:?}").into());
                    }
                    _ => return Err(format!("{call:?} {status}: {err:?}").into()),
                };
                assert_eq!(api.status().as_u16(), code, "{call:?}");
                assert!(err.to_string().contains(&status[..3]), "{err}");
            }
        }
    }
    assert_eq!(elsewhere.connections(), 0, "{:?}", elsewhere.seen());
    Ok(())
}

/// A body carrying `token` in the shape `call`'s endpoint answers.
fn token_body(call: Call, token: &str) -> String {
    match call {
        Call::CreateSession | Call::RenewSession => format!(r#"{{"token":{token}}}"#),
        Call::ClientCredentials => format!(r#"{{"access_token":{token},"expires_in":3600}}"#),
        Call::Exchange | Call::ExchangePkce | Call::Refresh => {
            format!(r#"{{"token":{token},"tokenType":"IBSSO"}}"#)
        }
    }
}

/// The calls whose hostile answer is the token answer itself (a renewal's goes to the `DELETE`).
const TOKEN_CALLS: [Call; 5] = [
    Call::CreateSession,
    Call::ClientCredentials,
    Call::Exchange,
    Call::ExchangePkce,
    Call::Refresh,
];

/// Oversized answers are refused whatever their framing: an honest `Content-Length`, one that
/// promises more than the limit, chunks without a length, and HTTP/1.0 read to the close.
#[tokio::test(start_paused = true)]
async fn an_oversized_answer_is_refused_however_it_is_framed() -> TestResult {
    let big = "x".repeat(100 * 1024);
    let chunked = {
        let mut pieces =
            vec![b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()];
        for _ in 0..200 {
            pieces.push(format!("400\r\n{}\r\n", "y".repeat(1024)).into_bytes());
        }
        pieces.push(b"0\r\n\r\n".to_vec());
        Act::Write {
            pieces,
            gap: Duration::ZERO,
        }
    };
    let cases = [
        ("content-length", json("200 OK", "", &big)),
        (
            "lying content-length",
            raw("HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\n{\"token\":"),
        ),
        ("chunked", chunked),
        (
            "HTTP/1.0 to the close",
            raw(format!(
                "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{big}"
            )),
        ),
    ];
    for (case, act) in cases {
        for call in TOKEN_CALLS {
            let err = failure(call, &act).await?;
            assert!(
                matches!(err.kind(), ErrorKind::ResponseTooLarge { limit: 65536 }),
                "{case} {call:?}: {err:?}"
            );
        }
    }
    Ok(())
}

/// A `Content-Length` smaller than what follows is read as announced: the rest is not the
/// answer (here the JSON is cut short, so it is malformed).
#[tokio::test(start_paused = true)]
async fn a_short_content_length_is_read_as_announced() -> TestResult {
    for call in TOKEN_CALLS {
        let body = token_body(call, &format!("\"{SESSION_TOKEN}\""));
        let act = raw(format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\n{body}{}",
            "z".repeat(100 * 1024)
        ));
        let err = failure(call, &act).await?;
        assert!(
            matches!(err.kind(), ErrorKind::MalformedResponse { .. }),
            "{call:?}: {err:?}"
        );
    }
    Ok(())
}

/// A connection closed mid-body, or reset, is a transient transport error.
#[tokio::test(start_paused = true)]
async fn a_truncated_or_reset_answer_is_a_transient_transport_error() -> TestResult {
    let truncated = raw(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"token\":\"abc",
    );
    let truncated_chunk =
        raw("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n40\r\n{\"token\":\"abc");
    let head_only = raw("HTTP/1.1 200 O");
    for act in [truncated, truncated_chunk, head_only, Act::Reset] {
        for call in CALLS {
            if call == Call::RenewSession {
                // The `DELETE` went unanswered, which the create that follows settles: here
                // the server gives it a new session.
                let created = make(call, &Server::start().await?, &act).await??;
                assert_eq!(created.expose_token(), SESSION_TOKEN, "{act:?}");
                continue;
            }
            let err = failure(call, &act).await?;
            assert!(
                matches!(err.kind(), ErrorKind::Transport) && err.is_transient(),
                "{call:?} {act:?}: {err:?}"
            );
        }
    }
    Ok(())
}

/// A server that answers one byte a second, sends a head and then nothing, or accepts and
/// never answers, meets the transport's timeout: one deadline for the whole exchange, not one
/// per read.
#[tokio::test(start_paused = true)]
async fn a_slow_or_silent_server_meets_one_deadline() -> TestResult {
    for call in CALLS {
        let body = token_body(call, &format!("\"{SESSION_TOKEN}\""));
        let whole = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let (head, body) = whole.split_at(whole.len() - body.len());
        let mut pieces = vec![head.as_bytes().to_vec()];
        pieces.extend(body.bytes().map(|b| vec![b]));
        let drip = Act::Write {
            pieces,
            gap: Duration::from_secs(1),
        };
        let head_then_nothing = Act::WriteAndHold(head.as_bytes().to_vec());
        let silent = Act::WriteAndHold(Vec::new());
        for act in [drip, head_then_nothing, silent] {
            let started = tokio::time::Instant::now();
            if call == Call::RenewSession {
                // The `DELETE` met the deadline; the create that follows settles whether it
                // ended the session (here the server gives it a new one).
                let created = make(call, &Server::start().await?, &act).await??;
                assert_eq!(created.expose_token(), SESSION_TOKEN, "{act:?}");
                assert_eq!(started.elapsed(), Duration::from_secs(30), "{act:?}");
                continue;
            }
            let err = failure(call, &act).await?;
            assert!(
                matches!(err.kind(), ErrorKind::Timeout),
                "{call:?}: {err:?}"
            );
            assert!(err.is_transient());
            // The exchange under test took the 30 s deadline (a refresh also made the exchange
            // before it, and that answered at once).
            assert_eq!(
                started.elapsed(),
                Duration::from_secs(30),
                "{call:?} {act:?}"
            );
        }
    }
    Ok(())
}

/// Answers that are not the token JSON: an HTML page, bytes that are not UTF-8, duplicate
/// keys, an error body with `200`, and tokens a header cannot carry.
#[tokio::test(start_paused = true)]
async fn answers_that_are_not_a_usable_token_are_malformed() -> TestResult {
    for call in TOKEN_CALLS {
        let token = |value: &str| token_body(call, value);
        let duplicate = match call {
            Call::ClientCredentials => format!(
                r#"{{"access_token":"{ACCESS_TOKEN}","access_token":"other","expires_in":60}}"#
            ),
            Call::CreateSession | Call::RenewSession => {
                format!(r#"{{"token":"{SESSION_TOKEN}","token":"other"}}"#)
            }
            _ => format!(r#"{{"token":"{EXCHANGE_TOKEN}","token":"other","tokenType":"IBSSO"}}"#),
        };
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("html", b"<html>Sign in</html>".to_vec(), "text/html"),
            ("not UTF-8", {
                let body = token(r#""valXYZ""#);
                let at = body.find("valXYZ").unwrap_or_default() + 3;
                let mut body = body.into_bytes();
                body.splice(at..at, [0xff, 0xfe]);
                body
            }, "application/json"),
            ("duplicate keys", duplicate.into_bytes(), "application/json"),
            (
                "200 with an error body",
                br#"{"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Invalid login details"}}}"#.to_vec(),
                "application/json",
            ),
            ("CR/LF", token(r#""abc\r\nX-Evil: 1""#).into_bytes(), "application/json"),
            ("NUL", token(r#""abc\u0000def""#).into_bytes(), "application/json"),
            ("space", token(r#""abc def""#).into_bytes(), "application/json"),
            ("non-ASCII", token(r#""abcé""#).into_bytes(), "application/json"),
            ("empty", token(r#""""#).into_bytes(), "application/json"),
            ("number", token("12345").into_bytes(), "application/json"),
            ("null", token("null").into_bytes(), "application/json"),
        ];
        for (case, body, content_type) in cases {
            let mut bytes = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            bytes.extend_from_slice(&body);
            let err = failure(call, &raw(bytes)).await?;
            assert!(
                matches!(err.kind(), ErrorKind::MalformedResponse { .. }),
                "{case} {call:?}: {err:?}"
            );
        }
    }
    Ok(())
}

/// A token answer with a wrong `Content-Type`, none at all, after informational answers, or in
/// HTTP/1.0, is still read.
#[tokio::test(start_paused = true)]
async fn a_token_answer_is_read_whatever_its_content_type_or_http_version() -> TestResult {
    for call in TOKEN_CALLS {
        let body = token_body(call, &format!("\"{SESSION_TOKEN}\""));
        let len = body.len();
        for head in [
            format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n"),
            format!(
                "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n"
            ),
            format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {len}\r\n\r\n"),
            "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n".to_owned(),
        ] {
            let server = Server::start().await?;
            let credential = make(call, &server, &raw(format!("{head}{body}"))).await??;
            assert_eq!(credential.expose_token(), SESSION_TOKEN, "{call:?} {head}");
        }
    }
    Ok(())
}

/// Infobip's three error shapes (legacy, newer, CAMARA), as `03_error_bodies.json` and
/// `03b_camara_error_bodies.json` give them, with the code and text each carries.
const ERROR_SHAPES: [(&str, &str, &str); 3] = [
    (
        r#"{"requestError":{"serviceException":{"messageId":"GENERAL_ERROR","text":"Something went wrong. Please contact support."}}}"#,
        "GENERAL_ERROR",
        "Something went wrong. Please contact support.",
    ),
    (
        r#"{"errorCode":"E500","description":"Something went wrong.","action":"Contact support.","violations":[],"resources":[]}"#,
        "E500",
        "Something went wrong.",
    ),
    (
        r#"{"status":503,"code":"UNAVAILABLE","message":"Service unavailable"}"#,
        "UNAVAILABLE",
        "Service unavailable",
    ),
];

/// `5xx` in each of Infobip's shapes, and `429` with every kind of `Retry-After`: a transient
/// `TokenEndpoint` error with the status, Infobip's code and text, and a bounded delay.
#[tokio::test(start_paused = true)]
async fn busy_answers_are_transient_with_their_status_and_retry_after() -> TestResult {
    let in_a_minute =
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(60));
    let retry_afters = [
        ("120".to_owned(), Some(120..=120)),
        (in_a_minute, Some(58..=60)),
        ("99999999999999999999".to_owned(), Some(3600..=3600)),
        ("315360000".to_owned(), Some(3600..=3600)),
        ("-5".to_owned(), None),
    ];
    for call in CALLS {
        for (value, expected) in &retry_afters {
            let act = json(
                "429 Too Many Requests",
                &format!("retry-after: {value}\r\n"),
                r#"{"requestError":{"serviceException":{"messageId":"TOO_MANY_REQUESTS","text":"Too many requests"}}}"#,
            );
            let err = failure(call, &act).await?;
            assert!(
                matches!(err.kind(), ErrorKind::TokenEndpoint(api) if api.status() == 429 && api.code() == Some("TOO_MANY_REQUESTS")),
                "{call:?}: {err:?}"
            );
            assert!(err.is_transient());
            let delay = err.retry_after().map(|d| d.as_secs());
            match expected {
                Some(range) => assert!(
                    delay.is_some_and(|d| range.contains(&d)),
                    "{call:?} {value}: {delay:?}"
                ),
                // Neither a number of seconds nor a date: ignored.
                None => assert_eq!(delay, None, "{call:?} {value}"),
            }
        }
        for (status, (body, code, text)) in [
            "500 Internal Server Error",
            "502 Bad Gateway",
            "503 Service Unavailable",
        ]
        .into_iter()
        .zip(ERROR_SHAPES)
        {
            let err = failure(call, &json(status, "", body)).await?;
            assert!(
                matches!(err.kind(), ErrorKind::TokenEndpoint(api)
                    if api.status().as_u16().to_string() == status[..3]
                        && api.code() == Some(code)
                        && api.text() == Some(text)),
                "{call:?}: {err:?}"
            );
            assert!(err.is_transient(), "{call:?}: {err:?}");
        }
    }
    Ok(())
}

/// A gateway's `503` with a page larger than the answer limit, and one whose page never ends,
/// is still a transient `503` that keeps its `Retry-After`: the status decides what the
/// caller does, the page is only read as far as the limit.
#[tokio::test(start_paused = true)]
async fn a_large_error_page_keeps_its_status_and_retry_after() -> TestResult {
    let page = format!("<html>{}</html>", "busy ".repeat(40 * 1024));
    let with_length = answer(
        "503 Service Unavailable",
        "content-type: text/html\r\nretry-after: 7\r\n",
        &page,
    );
    let chunked = {
        let mut pieces = vec![b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 7\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()];
        for _ in 0..200 {
            pieces.push(format!("400\r\n{}\r\n", "y".repeat(1024)).into_bytes());
        }
        // No last chunk: the page would go on.
        Act::Write {
            pieces,
            gap: Duration::ZERO,
        }
    };
    for act in [with_length, chunked] {
        for call in CALLS {
            let err = failure(call, &act).await?;
            assert!(
                matches!(err.kind(), ErrorKind::TokenEndpoint(api) if api.status() == 503),
                "{call:?}: {err:?}"
            );
            assert!(err.is_transient(), "{call:?}: {err:?}");
            assert_eq!(err.retry_after(), Some(Duration::from_secs(7)), "{call:?}");
        }
    }
    Ok(())
}

/// `401` and `403` from the token endpoint itself: the credentials are refused (a refresh
/// refused means a new authorization), a `403` is final; ending a previous session that the
/// server refuses lets the next be created.
#[tokio::test(start_paused = true)]
async fn refusals_by_the_token_endpoint_are_typed() -> TestResult {
    let unauthorized = json(
        "401 Unauthorized",
        "",
        r#"{"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Invalid login details"}}}"#,
    );
    let forbidden = json(
        "403 Forbidden",
        "",
        r#"{"errorCode":"E403","description":"Insufficient permissions to access the requested resource.","action":"","violations":[],"resources":[]}"#,
    );
    for call in CALLS {
        if call == Call::RenewSession {
            for act in [&unauthorized, &forbidden] {
                let server = Server::start().await?;
                let created = make(call, &server, act).await??;
                assert_eq!(created.expose_token(), SESSION_TOKEN);
            }
            continue;
        }
        let err = failure(call, &unauthorized).await?;
        if call == Call::Refresh {
            assert!(
                matches!(err.kind(), ErrorKind::ReauthorizationRequired),
                "{err:?}"
            );
        } else {
            assert!(
                matches!(err.kind(), ErrorKind::InvalidCredentials(api) if api.code() == Some("UNAUTHORIZED")),
                "{call:?}: {err:?}"
            );
        }
        assert!(!err.is_transient());
        let err = failure(call, &forbidden).await?;
        assert!(
            matches!(err.kind(), ErrorKind::TokenEndpoint(api) if api.status() == 403 && api.code() == Some("E403")),
            "{call:?}: {err:?}"
        );
        assert!(!err.is_transient());
    }
    Ok(())
}

/// A port nobody listens on: a transient transport error.
#[tokio::test(start_paused = true)]
async fn a_refused_connection_is_a_transient_transport_error() -> TestResult {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        listener.local_addr()?
    };
    let server = Server {
        addr: closed,
        hostile: Arc::default(),
        seen: Arc::default(),
        connections: Arc::default(),
    };
    #[cfg(feature = "tracing")]
    let capture = crate::test_helpers::CaptureTracing::start();
    let previous = Credential::new("IBSSO", PREVIOUS_SESSION)?;
    let session = Session::builder(&server.base(), "username", PASSWORD)
        .transport(transport())
        .build()?;
    let oauth = ClientCredentials::builder(&server.base(), "client-id", CLIENT_SECRET)
        .transport(transport())
        .build()?;
    let errors = [
        session.fetch(None).await.err(),
        session.fetch(Some(&previous)).await.err(),
        oauth.fetch(None).await.err(),
        exchange(&server, false).await?.err(),
        exchange(&server, true).await?.err(),
    ];
    for err in errors {
        let err = err.ok_or("fetched from a closed port")?;
        assert!(
            matches!(err.kind(), ErrorKind::Transport) && err.is_transient(),
            "{err:?}"
        );
        let shown = format!("{err} {err:?}");
        assert!(SECRETS.iter().all(|s| !shown.contains(s)), "{shown}");
    }
    #[cfg(feature = "tracing")]
    {
        let text = capture.text();
        assert!(SECRETS.iter().all(|s| !text.contains(s)), "{text}");
    }
    Ok(())
}

/// One source fetching again and again from a server that closes every connection after its
/// answer (with `Connection: close`, in HTTP/1.0, or without a word): every fetch succeeds.
#[tokio::test(start_paused = true)]
async fn a_server_closing_each_connection_does_not_break_the_next_fetch() -> TestResult {
    let body = format!(r#"{{"access_token":"{ACCESS_TOKEN}","expires_in":3600}}"#);
    for head in [
        format!(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
            body.len()
        ),
        "HTTP/1.0 200 OK\r\n\r\n".to_owned(),
        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()),
    ] {
        let server = Server::start().await?;
        let oauth = ClientCredentials::builder(&server.base(), "client-id", CLIENT_SECRET)
            .transport(transport())
            .build()?;
        for _ in 0..5 {
            server.next(raw(format!("{head}{body}")));
            let credential = oauth.fetch(None).await?;
            assert_eq!(credential.expose_token(), ACCESS_TOKEN);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(())
}

/// `expires_in` out of range, of the wrong type, or absurd: the token is kept with a bounded
/// lifetime (client credentials: 10 s to 24 h, 5 min when it cannot be right; Exchange: at most
/// the documented minute).
#[tokio::test(start_paused = true)]
async fn an_expires_in_out_of_range_gives_a_bounded_lifetime() -> TestResult {
    let minute = 60.0;
    let cases: [(&str, f64, f64); 9] = [
        // (expires_in, client credentials, Exchange), in seconds.
        ("-5", 300.0, minute),
        ("0", 300.0, minute),
        ("0.5", 10.0, minute),
        ("12.5", 12.5, 12.5),
        ("1e30", 86_400.0, minute),
        (r#""3600""#, 3600.0, minute),
        (r#""soon""#, 300.0, minute),
        ("true", 300.0, minute),
        ("null", 300.0, minute),
    ];
    for (expires_in, oauth, exchange) in cases {
        let server = Server::start().await?;
        let act = json(
            "200 OK",
            "",
            &format!(r#"{{"access_token":"{ACCESS_TOKEN}","expires_in":{expires_in}}}"#),
        );
        let credential = make(Call::ClientCredentials, &server, &act).await??;
        assert_eq!(
            credential.lifetime(),
            Some(Duration::from_secs_f64(oauth)),
            "client credentials, expires_in {expires_in}"
        );
        for call in [Call::Exchange, Call::Refresh] {
            let server = Server::start().await?;
            let act = json(
                "200 OK",
                "",
                &format!(
                    r#"{{"token":"{EXCHANGE_TOKEN}","tokenType":"IBSSO","expires_in":{expires_in}}}"#
                ),
            );
            let credential = make(call, &server, &act).await??;
            assert_eq!(
                credential.lifetime(),
                Some(Duration::from_secs_f64(exchange)),
                "{call:?}, expires_in {expires_in}"
            );
        }
    }
    Ok(())
}

/// A server that refuses a token request and quotes it whole in its error (in any of Infobip's
/// shapes, OAuth's, unknown JSON or plain text): the error shows none of the request's
/// secrets, nor does tracing.
#[tokio::test(start_paused = true)]
async fn an_error_that_echoes_the_request_shows_none_of_its_secrets() -> TestResult {
    for shape in ECHOES {
        for status in [
            "400 Bad Request",
            "401 Unauthorized",
            "503 Service Unavailable",
        ] {
            for call in CALLS {
                if call == Call::RenewSession && !status.starts_with('5') {
                    continue; // a definite refusal to end the previous session is not an error
                }
                let err = failure(call, &Act::Echo(status, shape)).await?;
                // What the server said besides the secrets is still there.
                let shown = format!("{err:?}");
                assert!(
                    matches!(shape, Echo::Unknown | Echo::Text) || shown.contains("HTTP/1.1"),
                    "{shown}"
                );
            }
        }
    }
    Ok(())
}

/// A session whose creation answer is lost (reset, silence, a malformed `200`) may exist at the
/// server, but its token never arrived: there is nothing to end. The next attempt, after the
/// backoff, creates again (Infobip hands a user's live session back) and sends no `DELETE`
/// naming a token it does not have.
#[tokio::test(start_paused = true)]
async fn a_lost_session_answer_is_followed_by_a_new_creation_only() -> TestResult {
    use tower::{Layer as _, ServiceExt as _};
    let lost = [
        Act::Reset,
        Act::WriteAndHold(Vec::new()),
        json("200 OK", "", r#"{"token":"#),
    ];
    for act in lost {
        let server = Server::start().await?;
        let api = tower::service_fn(|request: http::Request<Full<Bytes>>| async move {
            let header = request.headers().get("authorization").cloned();
            let body = header.map(|h| Bytes::copy_from_slice(h.as_bytes()));
            Ok::<_, crate::BoxError>(http::Response::new(Full::new(body.unwrap_or_default())))
        });
        let session = Session::builder(&server.base(), "username", PASSWORD)
            .transport(transport())
            .build()?;
        let service = crate::InfobipAuthLayer::new(session).layer(api);
        let request = || {
            http::Request::get(format!("{}/sms/1/inbox/reports", server.base()))
                .body(Full::<Bytes>::default())
        };
        server.next(act.clone());
        let first = service.clone().oneshot(request()?).await;
        assert!(first.is_err(), "{act:?}");
        tokio::time::sleep(Duration::from_secs(60)).await;
        let second = service.clone().oneshot(request()?).await?;
        let sent = http_body_util::BodyExt::collect(second.into_body()).await?;
        assert_eq!(sent.to_bytes(), format!("IBSSO {SESSION_TOKEN}"));
        let lines: Vec<String> = server
            .seen()
            .iter()
            .map(|r| r.lines().next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            lines,
            [
                "POST /auth/1/session HTTP/1.1",
                "POST /auth/1/session HTTP/1.1"
            ],
            "{act:?}"
        );
    }
    Ok(())
}

/// A transport that follows redirects (tower-http's `FollowRedirect`, standard policy) is not
/// the default, but one may be given: a `307`/`308` to another host is then not followed with
/// the form (the policy cannot copy the body), a `301`/`302`/`303` becomes a `GET` without it,
/// and a session's `Authorization` is not sent to another origin. No secret reaches the other
/// host.
#[tokio::test(start_paused = true)]
async fn a_transport_following_redirects_sends_no_secret_elsewhere() -> TestResult {
    use tower::Layer as _;
    let elsewhere = Server::start().await?;
    let follow = || {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        Transport::new(tower_http::follow_redirect::FollowRedirectLayer::new().layer(client))
    };
    for status in [
        "301 Moved Permanently",
        "302 Found",
        "303 See Other",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        let server = Server::start().await?;
        let to = |path: &str| format!("location: {}{path}\r\n", elsewhere.base());
        let oauth = ClientCredentials::builder(&server.base(), "client-id", CLIENT_SECRET)
            .transport(follow())
            .build()?;
        server.next(answer(status, &to("/auth/1/oauth2/token"), ""));
        assert!(oauth.fetch(None).await.is_err(), "{status}");
        let session = Session::builder(&server.base(), "username", PASSWORD)
            .transport(follow())
            .build()?;
        let previous = Credential::new("IBSSO", PREVIOUS_SESSION)?;
        server.next(answer(status, &to("/auth/1/session"), ""));
        server.next(answer(status, &to("/auth/1/session"), ""));
        let _ = session.fetch(Some(&previous)).await;
    }
    let seen = elsewhere.seen().concat();
    assert!(SECRETS.iter().all(|s| !seen.contains(s)), "{seen}");
    assert!(
        !seen.to_ascii_lowercase().contains("authorization"),
        "{seen}"
    );
    Ok(())
}

/// A session password (sent in JSON) and a client secret (sent in a form) holding what JSON
/// and forms escape: quotes, a backslash, a space, `/`, `+`, `&`, `=` and non-ASCII.
const QUOTED_SECRETS: [(Call, &str); 2] = [
    (Call::CreateSession, r#"Pw "hunt\er" /ünï"#),
    (Call::ClientCredentials, r#"Cs "s3cr\et" +&=/é"#),
];

/// The error of `call` (a session creation or a client-credentials request) carrying `secret`,
/// under `act`, with a transport that reads at most `limit` bytes of an answer.
async fn refused_with(
    call: Call,
    secret: &str,
    act: Act,
    limit: usize,
) -> Result<Error, crate::BoxError> {
    let server = Server::start().await?;
    let transport = transport().max_response_bytes(limit);
    server.next(act.clone());
    let outcome = match call {
        Call::CreateSession => {
            let source = Session::builder(&server.base(), "username", secret);
            source.transport(transport).build()?.fetch(None).await
        }
        _ => {
            let source = ClientCredentials::builder(&server.base(), "client-id", secret);
            source.transport(transport).build()?.fetch(None).await
        }
    };
    outcome
        .err()
        .ok_or_else(|| format!("{call:?} under {act:?} succeeded").into())
}

/// Checks that no four characters in a row of `secret` show anywhere in `err`: its `Display`,
/// `Debug`, source chain, and its server's words (`code`, `text`, `raw`).
fn assert_no_part_shown(err: &Error, secret: &str) {
    let mut shown = shown(err);
    if let ErrorKind::InvalidCredentials(api) | ErrorKind::TokenEndpoint(api) = err.kind() {
        for said in [api.code(), api.text(), api.raw()].into_iter().flatten() {
            shown.push(' ');
            shown.push_str(said);
        }
    }
    let chars: Vec<char> = secret.chars().collect();
    for part in chars.windows(4).map(String::from_iter) {
        assert!(
            !shown.contains(&part),
            "{part:?} of {secret:?} shows: {shown}"
        );
    }
}

/// A secret holding quotes or a backslash, quoted by a server in a JSON error (escaped once, or
/// twice for a JSON request quoted in JSON), in a form or in plain text: none of it shows.
#[tokio::test(start_paused = true)]
async fn an_echoed_secret_is_redacted_in_every_escaping() -> TestResult {
    for (call, secret) in QUOTED_SECRETS {
        for shape in ECHOES {
            for status in ["400 Bad Request", "401 Unauthorized"] {
                let err = refused_with(call, secret, Act::Echo(status, shape), 64 * 1024).await?;
                assert_no_part_shown(&err, secret);
            }
        }
        let form = serde_urlencoded::to_string([("", secret)])?;
        let percent = form.replace('+', "%20");
        let json = serde_json::to_string(secret)?;
        for quoted in [
            &form[1..],
            &percent[1..],
            &json,
            &serde_json::to_string(&json)?,
        ] {
            let body = format!("refused: {quoted}");
            let err =
                refused_with(call, secret, answer("400 Bad Request", "", &body), 1024).await?;
            assert_no_part_shown(&err, secret);
            let raw = match err.kind() {
                ErrorKind::TokenEndpoint(api) => api.raw(),
                _ => None,
            };
            assert!(
                raw.is_some_and(|raw| raw.starts_with("refused: ")),
                "{err:?}"
            );
        }
    }
    Ok(())
}

/// An unreadable error body kept only in part (its first 512 bytes, or what a small size
/// limit let through) that a secret crosses the end of: no start of the secret is kept.
#[tokio::test(start_paused = true)]
async fn a_secret_across_the_end_of_a_kept_error_body_leaves_no_start() -> TestResult {
    for (call, secret) in QUOTED_SECRETS {
        let json = serde_json::to_string(secret)?;
        let form = serde_urlencoded::to_string([("", secret)])?;
        for quoted in [secret, &json, &form[1..]] {
            for before in 500..512 {
                let body = format!("{}{quoted} and more", "x".repeat(before));
                let err =
                    refused_with(call, secret, answer("400 Bad Request", "", &body), 4096).await?;
                assert_no_part_shown(&err, secret);
            }
            // The transport keeps the first 300 bytes: the secret starts 10 bytes before that.
            let body = format!("{}{quoted} and more", "x".repeat(290));
            let err = refused_with(call, secret, answer("400 Bad Request", "", &body), 300).await?;
            assert_no_part_shown(&err, secret);
        }
    }
    Ok(())
}

/// The reqwest transport against the same server: a token is read, and a redirect to another
/// host is not followed, whatever the client's builder said.
#[cfg(feature = "reqwest")]
#[tokio::test]
async fn the_reqwest_transport_reads_tokens_and_never_follows_a_redirect() -> TestResult {
    let server = Server::start().await?;
    let elsewhere = Server::start().await?;
    let transport = || {
        let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(10));
        Transport::reqwest(builder)
    };
    let source = ClientCredentials::builder(&server.base(), "client-id", CLIENT_SECRET)
        .transport(transport()?)
        .build()?;
    assert_eq!(source.fetch(None).await?.expose_token(), ACCESS_TOKEN);
    let session = Session::builder(&server.base(), "username", PASSWORD)
        .transport(transport()?)
        .build()?;
    assert_eq!(session.fetch(None).await?.expose_token(), SESSION_TOKEN);

    let location = format!("location: {}/auth/1/oauth2/token\r\n", elsewhere.base());
    for status in [
        "302 Found",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        server.next(answer(status, &location, ""));
        let err = source
            .fetch(None)
            .await
            .err()
            .ok_or("a redirect is no token")?;
        assert!(
            matches!(err.kind(), ErrorKind::TokenEndpoint(api) if api.status().as_str() == &status[..3]),
            "{status}: {err:?}"
        );
        assert!(!shown(&err).contains(CLIENT_SECRET), "{err:?}");
    }
    assert_eq!(elsewhere.connections(), 0, "{:?}", elsewhere.seen());
    Ok(())
}
