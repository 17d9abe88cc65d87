//! Support bundles (seed SUPPORT, admin only) under
//! `/distribution/api/v1/system/support/…`: wire shapes around
//! [`waybill_app::support::Support`].

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use waybill_app::support::{Created, SupportRequest};
use waybill_core::time::format_iso;

use crate::Caller;
use crate::{ApiError, HubState};

/// The request body; every field is optional, and so is the body itself
/// (`curl -X POST` with none asks for the defaults).
fn parse_body(raw: &[u8]) -> Result<SupportRequest, waybill_app::Error> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(SupportRequest::default());
    }
    serde_json::from_slice(raw)
        .map_err(|e| waybill_app::Error::invalid(format!("invalid JSON body: {e}")))
}

fn created(state: &HubState, c: Created) -> Response {
    axum::Json(json!({
        "id": c.id,
        "artifactory": {"service_id": state.service_id.as_str(), "bundle_url": c.bundle_url},
    }))
    .into_response()
}

/// `POST /api/v1/system/support/bundle`.
pub(crate) async fn create(
    State(state): State<HubState>,
    Caller(who): Caller,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let c = state.support.create(&who, || parse_body(&body)).await?;
    Ok(created(&state, c))
}

/// `PUT /api/v1/system/support/bundle/{id}`.
pub(crate) async fn create_with_id(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let c = state
        .support
        .create_with_id(&who, &id, || parse_body(&body))
        .await?;
    Ok(created(&state, c))
}

/// `GET /api/v1/system/support/bundle/{id}`.
pub(crate) async fn info(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(state.support.info(&who, &id).await?).into_response())
}

/// `GET /api/v1/system/support/bundle/{id}/archive`.
pub(crate) async fn archive(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let data = state.support.archive(&who, &id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"support-bundle-{id}.zip\""),
            ),
        ],
        data,
    )
        .into_response())
}

/// `DELETE /api/v1/system/support/bundle/{id}`.
pub(crate) async fn delete(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.support.delete(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/system/support/bundles`.
pub(crate) async fn list(
    State(state): State<HubState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    let bundles: Vec<serde_json::Value> = state
        .support
        .list(&who)
        .await?
        .into_iter()
        .map(|m| {
            json!({"id": m.id, "name": m.name, "description": m.description,
                   "created": format_iso(m.created)[..10]})
        })
        .collect();
    Ok(axum::Json(json!({"count": bundles.len(), "bundles": bundles})).into_response())
}
