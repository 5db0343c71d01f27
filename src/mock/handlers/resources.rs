//! Protected resources: every request that is not to a token endpoint is checked against the
//! operations table, then answered like Infobip.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};

use crate::BoxError;
use crate::mock::faults;
use crate::mock::operations::{Lookup, Operation, Scheme};
use crate::mock::reply::{self, DropConnection, Refusal, Reply};
use crate::mock::state::{Access, State, random_hex, uuid_like};

/// Waits the latency set for operations and takes the next fault set for them, then checks
/// the credential against the operation, answers, and records the request; `Err` drops the
/// connection. A fault that answers instead comes before any check, as a gateway's `429` or
/// `503` comes whatever the credential and the path.
pub(super) async fn handle<B>(state: &State, req: Request<B>) -> Result<Reply, DropConnection>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (fault, latency) = state.operation_request();
    let (parts, body) = req.into_parts();
    let credential = Scheme::from_headers(&parts.headers);
    let scheme = credential.map_or("none", |(scheme, _)| scheme.as_str());
    let path = parts.uri.path();
    let aftermath = match faults::before_acting(fault, latency).await {
        Ok(aftermath) => aftermath,
        Err(instead) => {
            let status = instead.as_ref().ok().map(Response::status);
            state.record_resource(parts.method.clone(), path, scheme, status);
            return instead;
        }
    };
    let answer = match state.settings.operations.lookup(&parts.method, path) {
        Lookup::NotFound => Refusal::not_found().into_reply(),
        Lookup::MethodNotAllowed => {
            reply::method_not_allowed(&state.settings.operations.allowed(path))
        }
        Lookup::Found(operation) => {
            let access = if operation.is_public() {
                Access::Granted
            } else {
                state.access(credential, &operation.schemes, &operation.scopes)
            };
            match access {
                Access::Unauthorized => Refusal::unauthorized().into_reply(),
                Access::Forbidden => Refusal::forbidden().into_reply(),
                Access::Granted => match reply::read_body(body).await {
                    Ok(body) => respond(answered_as(&parts.method), operation, &body),
                    Err(refusal) => refusal.into_reply(),
                },
            }
        }
    };
    state.record_resource(parts.method.clone(), path, scheme, Some(answer.status()));
    aftermath.apply(answer).await
}

/// The method whose answer a request gets: `HEAD` gets `GET`'s (RFC 9110 §9.3.2), without the
/// content, which [`handle`](super::handle) leaves out.
fn answered_as(method: &Method) -> &Method {
    if method == Method::HEAD {
        &Method::GET
    } else {
        method
    }
}

/// What an authorized request gets.
fn respond(method: &Method, operation: &Operation, body: &[u8]) -> Reply {
    match (method, operation.template.as_str()) {
        (&Method::POST, "/sms/2/text/advanced") => send_sms(body),
        (&Method::GET, "/sms/1/inbox/reports") => reply::json(
            StatusCode::OK,
            &serde_json::json!({"results": [], "messageCount": 0, "pendingMessageCount": 0}),
        ),
        _ => reply::json(StatusCode::OK, &serde_json::json!({})),
    }
}

/// Send SMS: one `PENDING_ACCEPTED` message per `messages[].destinations[].to`.
fn send_sms(body: &[u8]) -> Reply {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Refusal::bad_request("the request body is not JSON").into_reply();
    };
    let destinations: Vec<&str> = request
        .get("messages")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|message| message.get("destinations")?.as_array())
        .flatten()
        .filter_map(|destination| destination.get("to")?.as_str())
        .collect();
    if destinations.is_empty() {
        return Refusal::bad_request("messages[].destinations[].to is required").into_reply();
    }
    let messages: Vec<serde_json::Value> = destinations
        .into_iter()
        .map(|to| {
            serde_json::json!({
                "messageId": random_hex(10),
                "status": {
                    "groupId": 1,
                    "groupName": "PENDING",
                    "id": 26,
                    "name": "PENDING_ACCEPTED",
                    "description": "Message sent to next instance"
                },
                "destination": to,
            })
        })
        .collect();
    reply::json(
        StatusCode::OK,
        &serde_json::json!({ "bulkId": uuid_like(), "messages": messages }),
    )
}
