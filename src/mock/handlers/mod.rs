//! Routing a request to its handler, and what every token endpoint shares: counting, latency
//! and faults. Session `DELETE`s and protected operations apply their faults through the same
//! [`faults::before_acting`].

mod exchange;
mod oauth2;
mod resources;
mod session;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode};

use super::faults;
use super::reply::{self, DropConnection, Refusal, Reply};
use super::state::{State, TokenEndpoint};
use crate::BoxError;
use crate::scope::routes::read_path;

const SESSION: &str = "/auth/1/session";
const OAUTH_TOKEN: &str = "/auth/1/oauth2/token";
const AUTHORIZE: &str = "/exchange/1/oauth/authorize";
const EXCHANGE_TOKEN: &str = "/exchange/1/oauth/token";

/// Answers one request; `Err` drops the connection (an injected fault). An answer to `HEAD`
/// keeps its status and headers, and the length its content would have, but not the content
/// (RFC 9110 §9.3.2), which hyper drops itself over HTTP/1.1 but would send over HTTP/2.
pub(crate) async fn handle<B>(state: Arc<State>, req: Request<B>) -> Result<Reply, DropConnection>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if req.method() == Method::HEAD {
        let mut reply = route(state, req).await?;
        if let Some(length) = http_body::Body::size_hint(reply.body()).exact() {
            reply
                .headers_mut()
                .entry(CONTENT_LENGTH)
                .or_insert_with(|| HeaderValue::from(length));
        }
        return Ok(reply.map(|_| reply::full(Bytes::new())));
    }
    route(state, req).await
}

async fn route<B>(state: Arc<State>, req: Request<B>) -> Result<Reply, DropConnection>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let method = req.method().clone();
    // A path with dot segments that cannot be resolved is no endpoint here, as for the scope
    // catalogue.
    let path = read_path(req.uri().path()).unwrap_or_default().into_owned();
    // No endpoint here ends with a slash: matching without one ignores a trailing slash, as
    // the scope catalogue does.
    let endpoint = path.strip_suffix('/').unwrap_or(&path);
    match (method, endpoint) {
        (Method::POST, SESSION) => token_endpoint(&state, TokenEndpoint::Session, req).await,
        (Method::DELETE, SESSION) => session::destroy(&state, req.headers()).await,
        (Method::POST, OAUTH_TOKEN) => token_endpoint(&state, TokenEndpoint::OAuth, req).await,
        (Method::GET | Method::HEAD, AUTHORIZE) => {
            Ok(exchange::authorize(&state, req.uri().query()))
        }
        (Method::POST, EXCHANGE_TOKEN) => {
            token_endpoint(&state, TokenEndpoint::Exchange, req).await
        }
        (_, SESSION) => Ok(reply::method_not_allowed("DELETE, POST")),
        (_, OAUTH_TOKEN | EXCHANGE_TOKEN) => Ok(reply::method_not_allowed("POST")),
        (_, AUTHORIZE) => Ok(reply::method_not_allowed("GET, HEAD")),
        _ => resources::handle(&state, req).await,
    }
}

/// Counts the request, refuses it at once if it is over the configured rate, waits the
/// configured latency, applies the next fault if any, and otherwise answers normally.
async fn token_endpoint<B>(
    state: &Arc<State>,
    endpoint: TokenEndpoint,
    req: Request<B>,
) -> Result<Reply, DropConnection>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let Some((_in_flight, fault, latency)) = state.token_request(endpoint) else {
        return Ok(reply::documented_error(StatusCode::TOO_MANY_REQUESTS));
    };
    let aftermath = match faults::before_acting(fault, latency).await {
        Ok(aftermath) => aftermath,
        Err(instead) => return instead,
    };
    let (parts, body) = req.into_parts();
    let answered = match reply::read_body(body).await {
        Ok(body) => answer(state, endpoint, &parts.headers, &body),
        Err(refusal) => refusal.into_reply(),
    };
    aftermath.apply(answered).await
}

fn answer(state: &State, endpoint: TokenEndpoint, headers: &HeaderMap, body: &[u8]) -> Reply {
    let answered = match endpoint {
        TokenEndpoint::Session => session::create(state, headers, body),
        TokenEndpoint::OAuth => oauth2::token(state, headers, body),
        TokenEndpoint::Exchange => exchange::token(state, headers, body),
    };
    answered.unwrap_or_else(Refusal::into_reply)
}
