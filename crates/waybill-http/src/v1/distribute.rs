//! The distribution endpoints of Distribution v1: distribute, abort, delete
//! from edges, and the four tracker views, as wire shapes around
//! [`waybill_app::distribution::Distribution`], which also runs the engine.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use waybill_app::distribution::{DeleteRequest, DistributeRequest, Scheduled, TrackerView};
use waybill_core::name::{BundleName, BundleVersion};
use waybill_core::rules::DistributionRule;
use waybill_core::site::EdgeSite;
use waybill_core::time::format_iso;
use waybill_core::tracker::{Tracker, TrackerKind};

use crate::Caller;
use crate::{ApiError, HubState, Json};

#[derive(Deserialize, Default)]
pub(crate) struct RuleDto {
    site_name: Option<String>,
    city_name: Option<String>,
    country_codes: Option<Vec<String>>,
}

#[derive(Deserialize)]
pub(crate) struct DistributeBody {
    #[serde(default)]
    dry_run: bool,
    distribution_rules: Vec<RuleDto>,
    #[serde(default)]
    auto_create_missing_repositories: bool,
}

fn rules_from(dtos: Vec<RuleDto>) -> Vec<DistributionRule> {
    dtos.into_iter()
        .map(|r| DistributionRule {
            site_name: r.site_name,
            city_name: r.city_name,
            country_codes: r.country_codes.unwrap_or_default(),
        })
        .collect()
}

fn site_ref(s: &EdgeSite) -> Value {
    json!({"service_id": s.service_id.as_str(), "name": s.name, "type": EdgeSite::TYPE})
}

#[derive(Deserialize)]
pub(crate) struct DeleteBody {
    #[serde(default)]
    dry_run: bool,
    distribution_rules: Vec<RuleDto>,
    #[serde(default)]
    on_success: Option<String>,
}

fn scheduled(s: Scheduled) -> Response {
    let refs: Vec<Value> = s.sites.iter().map(site_ref).collect();
    match s.tracker {
        None => axum::Json(json!({"id": 0, "sites": refs})).into_response(),
        Some(id) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({"id": id, "sites": refs})),
        )
            .into_response(),
    }
}

fn names(name: String, version: String) -> Result<(BundleName, BundleVersion), ApiError> {
    Ok((BundleName::parse(name)?, BundleVersion::parse(version)?))
}

/// `POST /api/v1/distribution/{name}/{version}`.
pub(crate) async fn distribute(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path((name, version)): Path<(String, String)>,
    Json(body): Json<DistributeBody>,
) -> Result<Response, ApiError> {
    let (name, version) = names(name, version)?;
    let req = DistributeRequest {
        rules: rules_from(body.distribution_rules),
        dry_run: body.dry_run,
        auto_create: body.auto_create_missing_repositories,
    };
    let s = state
        .distribution
        .distribute(&who, &name, &version, req)
        .await?;
    Ok(scheduled(s))
}

/// `PUT /api/v1/distribution/{name}/{version}/abort` (seed 003): 202 with
/// the edges the stop affected, as a bare array of `{name, service_id,
/// type}`; 204 when the version exists and nothing is in progress; 404 for
/// an unknown bundle or version. Only the sites the caller's destination
/// permissions allow are stopped.
pub(crate) async fn abort(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (name, version) = names(name, version)?;
    let affected = state.distribution.abort(&who, &name, &version).await?;
    if affected.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let refs: Vec<Value> = affected.iter().map(site_ref).collect();
    Ok((StatusCode::ACCEPTED, axum::Json(refs)).into_response())
}

/// `POST /api/v1/distribution/{name}/{version}/delete`: removes the version
/// from the selected edges, tracked as `delete_release_bundle_version`.
pub(crate) async fn delete_from_edges(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path((name, version)): Path<(String, String)>,
    Json(body): Json<DeleteBody>,
) -> Result<Response, ApiError> {
    let (name, version) = names(name, version)?;
    let req = DeleteRequest {
        rules: rules_from(body.distribution_rules),
        dry_run: body.dry_run,
        on_success: body.on_success,
    };
    let s = state
        .distribution
        .delete_from_edges(&who, &name, &version, req)
        .await?;
    Ok(scheduled(s))
}

// ---- status views ----------------------------------------------------------

fn tracker_json(t: &Tracker, friendly: usize) -> Value {
    let mut j = json!({
        "distribution_id": t.id,
        "distribution_friendly_id": friendly,
        "type": match t.kind { TrackerKind::Distribute => "distribute", TrackerKind::DeleteVersion => "delete_release_bundle_version" },
        "release_bundle_name": t.name.as_str(),
        "release_bundle_version": t.version.as_str(),
        "status": t.status().as_str(),
        "distribution_rules": t.rules.iter().map(|r| json!({
            "site_name": r.site_name.clone().unwrap_or_else(|| "*".into()),
            "city_name": r.city_name.clone().unwrap_or_else(|| "*".into()),
            "country_codes": if r.country_codes.is_empty() { vec!["*".to_string()] } else { r.country_codes.clone() },
        })).collect::<Vec<_>>(),
        "created_by": t.created_by,
        "distributed_by": t.created_by,
        "start_time": format_iso(t.created),
        "sites": t.sites.iter().map(|s| json!({
            "status": s.status.as_str(),
            "general_error": s.general_error,
            "target_artifactory": {"service_id": s.service_id.as_str(), "name": s.name, "type": EdgeSite::TYPE},
            "total_files": s.total_files,
            "total_bytes": s.total_bytes,
            "distributed_files": s.distributed_files,
            "distributed_bytes": s.distributed_bytes,
            "transferred_bytes": s.transferred_bytes,
            "file_errors": s.file_errors,
            "files_in_progress": s.files_in_progress,
        })).collect::<Vec<_>>(),
    });
    if let Some(done) = t.finished {
        j["finish_time"] = format_iso(done).into();
        j["duration"] = json!(done.saturating_sub(t.created));
    }
    j
}

fn rendered(views: Vec<TrackerView>) -> Vec<Value> {
    views
        .iter()
        .map(|v| tracker_json(&v.tracker, v.friendly_id))
        .collect()
}

/// `GET /api/v1/release_bundle/distribution`.
pub(crate) async fn status_all(
    State(state): State<HubState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    let views = state.distribution.trackers(&who).await?;
    Ok(axum::Json(rendered(views)).into_response())
}

/// `GET /api/v1/release_bundle/{name}/distribution`.
pub(crate) async fn status_bundle(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let name = BundleName::parse(name)?;
    let views = state.distribution.bundle_trackers(&who, &name).await?;
    Ok(axum::Json(rendered(views)).into_response())
}

/// `GET /api/v1/release_bundle/{name}/{version}/distribution`: 404 when the
/// version has no distributions, as after a completed delete from edges
/// (the JFrog CLI's sync delete waits for exactly that).
pub(crate) async fn status_version(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (name, version) = names(name, version)?;
    let views = state
        .distribution
        .version_trackers(&who, &name, &version)
        .await?;
    Ok(axum::Json(rendered(views)).into_response())
}

/// `GET /api/v1/release_bundle/{name}/{version}/distribution/{id}`: one object.
pub(crate) async fn status_tracker(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path((name, version, id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (name, version) = names(name, version)?;
    let view = state
        .distribution
        .tracker(&who, &name, &version, &id)
        .await?;
    Ok(axum::Json(tracker_json(&view.tracker, view.friendly_id)).into_response())
}
