//! `POST /auth/1/session` (create an IBSSO session) and `DELETE /auth/1/session` (end it).

use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::mock::faults;
use crate::mock::operations::Scheme;
use crate::mock::reply::{self, DropConnection, Refusal, Reply};
use crate::mock::state::State;

/// The request body; `unsafe` (a session not bound to the caller's IP) is accepted and ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSession {
    username: String,
    password: String,
    #[serde(rename = "unsafe")]
    _unsafe: Option<bool>,
}

/// `POST /auth/1/session`: JSON `{"username","password"}` → `200 {"token"}`.
pub(super) fn create(state: &State, headers: &HeaderMap, body: &[u8]) -> Result<Reply, Refusal> {
    reply::require_content_type(headers, "application/json")?;
    let invalid =
        |err: serde_json::Error| Refusal::bad_request(format!("invalid request body: {err}"));
    let request: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
    if !request.is_object() {
        return Err(Refusal::bad_request(
            "invalid request body: expected a JSON object",
        ));
    }
    let request: CreateSession = serde_json::from_value(request).map_err(invalid)?;
    if state
        .check_user(&request.username, &request.password)
        .is_none()
    {
        return Err(Refusal::unauthorized());
    }
    let token = state.create_session(&request.username);
    Ok(reply::json(
        StatusCode::OK,
        &serde_json::json!({ "token": token }),
    ))
}

/// `DELETE /auth/1/session` with `Authorization: IBSSO <token>` → `200` with no body; `429`
/// before anything else when over the configured rate. The latency and the next fault set for
/// deletes come first; a fault answers instead, and the session stays alive, except
/// `Fault::AnswerLost`, which ends it and then drops the connection, and `Fault::Truncated`,
/// which ends it and then cuts the answer.
pub(super) async fn destroy(state: &State, headers: &HeaderMap) -> Result<Reply, DropConnection> {
    let Some((fault, latency)) = state.session_delete() else {
        return Ok(reply::documented_error(StatusCode::TOO_MANY_REQUESTS));
    };
    let aftermath = match faults::before_acting(fault, latency).await {
        Ok(aftermath) => aftermath,
        Err(instead) => return instead,
    };
    let answered = match Scheme::from_headers(headers) {
        Some((Scheme::Ibsso, token)) if state.destroy_session(token) => {
            reply::empty(StatusCode::OK)
        }
        _ => Refusal::unauthorized().into_reply(),
    };
    aftermath.apply(answered).await
}
