//! Release-bundle migration between hubs (seed 003, "Import & Export"),
//! admin only: wire shapes around [`waybill_app::migration::Migration`].

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub(crate) use waybill_app::migration::IMPORT_LIMIT;

use crate::Caller;
use crate::{ApiError, HubState};

/// `POST /api/v1/system/migration/import_export/source_artifactories`:
/// every source id with its bundle and version counts; this hub's own
/// source is always listed.
pub(crate) async fn source_artifactories(
    State(state): State<HubState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    let list: Vec<_> = state
        .migration
        .sources(&who)
        .await?
        .into_iter()
        .map(|s| {
            json!({"source_id": s.source_id, "local": s.local,
                   "release_bundles": s.release_bundles, "versions": s.versions})
        })
        .collect();
    Ok(axum::Json(list).into_response())
}

/// `POST /api/v1/system/migration/export/{source_id}`: a zip of every
/// version of that source; 404 for a source that holds none.
pub(crate) async fn export(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(source_id): Path<String>,
) -> Result<Response, ApiError> {
    let zip = state.migration.export(&who, &source_id).await?;
    let disposition = format!("attachment; filename=\"export-{source_id}.zip\"");
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        zip,
    )
        .into_response())
}

/// The archive from the request: the file part of a `multipart/form-data`
/// body (as `curl -F file=@export.zip` sends it), or a raw zip body.
async fn archive_bytes(req: Request) -> Result<Bytes, waybill_app::Error> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/form-data"));
    if !multipart {
        return Bytes::from_request(req, &()).await.map_err(|e| {
            waybill_app::Error::invalid(format!("the archive could not be read: {e}"))
        });
    }
    let mut form = Multipart::from_request(req, &()).await.map_err(|e| {
        waybill_app::Error::invalid(format!("the multipart body is malformed: {e}"))
    })?;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| waybill_app::Error::invalid(format!("the multipart body is malformed: {e}")))?
    {
        if field.file_name().is_some() || field.name() == Some("file") {
            return field.bytes().await.map_err(|e| {
                waybill_app::Error::invalid(format!("the archive part could not be read: {e}"))
            });
        }
    }
    Err(waybill_app::Error::invalid(
        "the multipart body has no file part; send the export as -F file=@export.zip",
    ))
}

/// `POST /api/v1/system/migration/import`: recreates an export's versions.
pub(crate) async fn import(
    State(state): State<HubState>,
    Caller(who): Caller,
    req: Request,
) -> Result<Response, ApiError> {
    let done = state.migration.import(&who, archive_bytes(req)).await?;
    Ok(axum::Json(json!({
        "source_id": done.source_id,
        "imported": done.imported,
        "already_present": done.already_present,
        "keys_added": done.keys_added,
    }))
    .into_response())
}
