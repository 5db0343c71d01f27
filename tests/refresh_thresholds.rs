//! The mandatory threshold of the refresh policy, through the public API: in a credential's
//! last tenth a request waits for the new credential instead of going out with the old one.
//! (The advisory threshold, where requests go out at once, is pinned by the cache's unit tests.)

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response};
use http_body_util::Full;
use infobip_auth::source::TokenSource;
use infobip_auth::{BoxError, Credential, Error, InfobipAuthLayer};
use tower::{Layer as _, Service as _, ServiceExt as _, service_fn};

const URL: &str = "https://xyz12.api.infobip.com/sms/1/inbox/reports";
const LIFETIME: Duration = Duration::from_secs(60);
/// How long every fetch but the first takes, on tokio's clock.
const RENEWAL_TAKES: Duration = Duration::from_secs(2);

/// Tokens `token-1`, `token-2`, … living a minute; every fetch after the first is slow.
#[derive(Clone, Debug, Default)]
struct SlowRenewals {
    fetches: Arc<AtomicU32>,
}

impl TokenSource for SlowRenewals {
    async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        if n > 1 {
            tokio::time::sleep(RENEWAL_TAKES).await;
        }
        Ok(Credential::new("Bearer", &format!("token-{n}"))?.expires_in(LIFETIME))
    }
}

#[tokio::test(start_paused = true)]
async fn in_the_last_tenth_a_request_waits_for_the_new_credential() -> Result<(), BoxError> {
    let source = SlowRenewals::default();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let inner = service_fn({
        let seen = seen.clone();
        move |request: Request<Full<Bytes>>| {
            let header = request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("<none>")
                .to_owned();
            seen.lock().unwrap_or_else(|p| p.into_inner()).push(header);
            async { Ok::<_, Infallible>(Response::new(())) }
        }
    });
    let mut service = InfobipAuthLayer::new(source.clone()).layer(inner);
    let request = || Request::get(URL).body(Full::new(Bytes::new()));
    service.ready().await?.call(request()?).await?;
    // No request since: no renewal has started. 56 s is past the mandatory threshold (the last
    // tenth: 54 s) and before the expiry (60 s), so token-1 is still valid but must not be sent.
    tokio::time::advance(Duration::from_secs(56)).await;
    service.ready().await?.call(request()?).await?;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(
        seen,
        ["Bearer token-1", "Bearer token-2"],
        "the request in the last tenth went out with the old credential"
    );
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    Ok(())
}
