//! Runs the Exchange app example's round, so `cargo run --example exchange_app` cannot
//! silently break.

#[allow(dead_code)]
#[path = "../examples/exchange_app.rs"]
mod exchange_app;
mod support;

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode, Uri, header};
use http_body_util::Full;
use infobip_auth::BoxError;
use infobip_auth::mock::MockServer;
use infobip_auth::source::PendingAuthorization;
use tower::ServiceExt as _;

#[tokio::test]
async fn the_example_connects_an_account_and_sends_an_sms() -> Result<(), BoxError> {
    let log = exchange_app::round().await?;
    assert!(
        log.contains("connected demo-user <demo-user@example.com> of account"),
        "{log}"
    );
    assert!(log.contains("→ 200 OK"), "{log}");
    assert!(
        log.contains("1 Exchange token request(s) and 1 SMS request(s)"),
        "{log}"
    );
    assert!(!log.contains("c2VjcmV0"), "{log}");
    Ok(())
}

#[test]
fn the_app_forgets_expired_authorizations() -> Result<(), BoxError> {
    let mut pending = exchange_app::Pending::new();
    let past = SystemTime::now() - Duration::from_secs(1);
    let lapsed = PendingAuthorization::new("lapsed", None)?.with_expiry(past);
    exchange_app::remember(&mut pending, lapsed);
    exchange_app::remember(&mut pending, PendingAuthorization::new("live", None)?);
    assert!(!pending.contains_key("lapsed") && pending.contains_key("live"));
    Ok(())
}

/// The embedded server and the app's routes, the app calling back at an address no test
/// listens on (the tests hand the callback to the routes themselves).
async fn app() -> Result<(MockServer, Router), BoxError> {
    const REDIRECT_URI: &str = "http://127.0.0.1:3000/callback";
    let server = exchange_app::demo_server(REDIRECT_URI).await?;
    let router = exchange_app::demo_router(&server, REDIRECT_URI)?;
    Ok((server, router))
}

/// One browser's `/connect`: the cookie the app set (if any) and the callback (path and query)
/// Infobip's authorization page sent the browser back to.
async fn connect(router: &Router) -> Result<(Option<String>, String), BoxError> {
    let answer = router
        .clone()
        .oneshot(Request::get("/connect").body(Body::empty())?)
        .await?;
    assert_eq!(answer.status(), StatusCode::FOUND);
    let cookie = match answer.headers().get(header::SET_COOKIE) {
        Some(set) => set.to_str()?.split(';').next().map(str::to_owned),
        None => None,
    };
    let authorize = answer
        .headers()
        .get(header::LOCATION)
        .ok_or("no redirect")?
        .to_str()?;
    let approval = support::client()
        .request(Request::get(authorize).body(Full::default())?)
        .await?;
    let callback: Uri = approval
        .headers()
        .get(header::LOCATION)
        .ok_or("the authorization page did not send the browser back")?
        .to_str()?
        .parse()?;
    let callback = callback.path_and_query().ok_or("no path")?.to_string();
    Ok((cookie, callback))
}

/// The app's answer to `callback` from a browser holding `cookie`.
async fn call_back(
    router: &Router,
    callback: &str,
    cookie: Option<&str>,
) -> Result<StatusCode, BoxError> {
    let mut request = Request::get(callback);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let answer = router.clone().oneshot(request.body(Body::empty())?).await?;
    Ok(answer.status())
}

#[tokio::test]
async fn a_callback_completes_only_once_and_only_in_the_browser_that_started_it()
-> Result<(), BoxError> {
    let (server, router) = app().await?;
    // Someone starts an authorization of their own account and sends its callback link to
    // another user, whose browser did not start it.
    let (own_cookie, forged) = connect(&router).await?;
    assert_eq!(
        call_back(&router, &forged, None).await?,
        StatusCode::BAD_REQUEST
    );
    let (other_cookie, _) = connect(&router).await?;
    assert_eq!(
        call_back(&router, &forged, other_cookie.as_deref()).await?,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(server.counters().exchange_token_requests, 0);

    // In the browser that started it, the callback connects the account, once.
    assert_eq!(
        call_back(&router, &forged, own_cookie.as_deref()).await?,
        StatusCode::OK
    );
    assert_eq!(
        call_back(&router, &forged, own_cookie.as_deref()).await?,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(server.counters().exchange_token_requests, 1);
    Ok(())
}

#[tokio::test]
async fn a_cancelled_or_refused_authorization_is_an_error_status() -> Result<(), BoxError> {
    let (server, router) = app().await?;
    let (cookie, callback) = connect(&router).await?;
    let state = callback.split("state=").nth(1).ok_or("no state")?;
    let cancelled = format!("/callback?error=access_denied&state={state}");
    assert_eq!(
        call_back(&router, &cancelled, cookie.as_deref()).await?,
        StatusCode::BAD_REQUEST
    );

    let (cookie, callback) = connect(&router).await?;
    let state = callback.split("state=").nth(1).ok_or("no state")?;
    let unknown_code = format!("/callback?code=0123456789abcdef&state={state}");
    assert_eq!(
        call_back(&router, &unknown_code, cookie.as_deref()).await?,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(server.counters().exchange_token_requests, 1);
    Ok(())
}

#[test]
fn a_full_table_of_authorizations_makes_room_by_forgetting_the_one_expiring_first()
-> Result<(), BoxError> {
    let mut pending = exchange_app::Pending::new();
    let soon = SystemTime::now() + Duration::from_secs(60);
    let first = PendingAuthorization::new("first", None)?.with_expiry(soon);
    exchange_app::remember(&mut pending, first);
    for n in 1..exchange_app::MAX_PENDING {
        let later = soon + Duration::from_secs(1);
        exchange_app::remember(
            &mut pending,
            PendingAuthorization::new(&format!("s{n}"), None)?.with_expiry(later),
        );
    }
    let one_more = PendingAuthorization::new("one-more", None)?;
    exchange_app::remember(&mut pending, one_more);
    assert!(pending.contains_key("one-more") && !pending.contains_key("first"));
    assert_eq!(pending.len(), exchange_app::MAX_PENDING);
    Ok(())
}
