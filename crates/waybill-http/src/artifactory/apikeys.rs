//! `/artifactory/api/security/apiKey`: the caller's own Artifactory API key.
//! `POST` creates one (409 if one exists), `PUT` replaces it, `DELETE`
//! revokes it, and `GET` says whether one exists (keys are stored hashed,
//! so a key cannot be shown again).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Caller;
use crate::{ApiError, HubState};

/// `POST /artifactory/api/security/apiKey`: a key for the caller.
pub(crate) async fn create(
    State(state): State<HubState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    let key = state.security.create_api_key(&who).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({"apiKey": key}))).into_response())
}

/// `PUT /artifactory/api/security/apiKey`: a new key replaces the caller's.
pub(crate) async fn regenerate(
    State(state): State<HubState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    let key = state.security.replace_api_key(&who).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({"apiKey": key}))).into_response())
}

/// `GET /artifactory/api/security/apiKey`: whether the caller has a key.
pub(crate) async fn get(
    State(state): State<HubState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    let exists = state.security.has_api_key(&who).await?;
    Ok(axum::Json(json!({"exists": exists})).into_response())
}

/// `DELETE /artifactory/api/security/apiKey`: revokes the caller's key.
pub(crate) async fn delete(
    State(state): State<HubState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    state.security.revoke_api_key(&who).await?;
    Ok(axum::Json(json!({"info": "API key revoked"})).into_response())
}
