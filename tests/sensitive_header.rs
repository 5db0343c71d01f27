//! The `Authorization` header the inner service sees is marked sensitive on every path a
//! request can take: the first request (slow path), the ones after it (a service clone's
//! private copy of the header), a fresh clone, and the replay after a `401`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use infobip_auth::source::TokenSource;
use infobip_auth::{BoxError, Credential, Error, InfobipAuthLayer};
use tower::{Layer as _, Service as _, ServiceExt as _, service_fn};

const URL: &str = "https://xyz12.api.infobip.com/sms/2/text/advanced";

/// Tokens `token-1`, `token-2`, … that never expire.
#[derive(Clone, Debug, Default)]
struct Tokens(Arc<AtomicU32>);

impl TokenSource for Tokens {
    async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Credential::new("Bearer", &format!("token-{n}"))?)
    }
}

#[tokio::test]
async fn the_header_is_sensitive_on_every_path() -> Result<(), BoxError> {
    for (case, layer) in [
        (
            "API key",
            InfobipAuthLayer::api_key("003026bbc133714df1834b8638bb496e")?,
        ),
        ("Basic", InfobipAuthLayer::basic("Aladdin", "openSesame")?),
        ("renewing", InfobipAuthLayer::new(Tokens::default())),
    ] {
        // Records each Authorization value as the inner service gets it; refuses the 4th request.
        let seen = Arc::new(Mutex::new(Vec::<HeaderValue>::new()));
        let inner = service_fn({
            let seen = seen.clone();
            move |request: Request<Full<Bytes>>| {
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                seen.extend(request.headers().get(AUTHORIZATION).cloned());
                let mut response = Response::new(());
                if seen.len() == 4 {
                    *response.status_mut() = StatusCode::UNAUTHORIZED;
                }
                async { Ok::<_, Infallible>(response) }
            }
        });
        let mut service = layer.layer(inner);
        let mut clone = service.clone();
        let request = || Request::post(URL).body(Full::new(Bytes::from_static(b"{}")));
        for _ in 0..3 {
            service.ready().await?.call(request()?).await?;
        }
        // The clone's first request; refused, so a renewing source replays it.
        clone.ready().await?.call(request()?).await?;
        clone.ready().await?.call(request()?).await?;
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let expected = if case == "renewing" { 6 } else { 5 };
        assert_eq!(seen.len(), expected, "{case}: {seen:?}");
        for (n, header) in seen.iter().enumerate() {
            assert!(header.is_sensitive(), "{case}: request {n} not sensitive");
        }
    }
    Ok(())
}
