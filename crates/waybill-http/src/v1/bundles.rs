//! Release bundles v1 under `/distribution/api/v1/release_bundle`, as seed
//! 003 documents them and as the JFrog CLI (`jf ds rbc/rbu/rbs/rbdel`) sends
//! them (wire contract §2): create, update, sign, get (json, jws, jose,
//! LATEST), list with `X-RangeLimit-*` paging, delete, and the scan hook.
//!
//! Signing also references every artifact into the storing repository
//! (default `release-bundles`) under `{name}/{version}/{target path}`: a
//! reference by checksum, so deleting the source file cannot break a
//! signed bundle, and the storing repository refuses ordinary deploys.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use waybill_app::bundles::{NotesRequest, VersionRequest};
use waybill_core::auth::Secret;
use waybill_core::bundle::{AddedProp, PathMapping, ReleaseBundleVersion, Spec, SpecQuery};
use waybill_core::name::{BundleName, BundleVersion};
use waybill_core::scan::ScanPolicy;
use waybill_core::signing::BundleSignature;
use waybill_core::store::Page;
use waybill_core::time::format_iso;

use crate::Caller;
use crate::{ApiError, HubState, Json, Principal};

/// Versions per page in listings, as the seed documents.
const PAGE_SIZE: u64 = 10;

// ---- wire types --------------------------------------------------------

#[derive(Deserialize)]
pub(crate) struct NotesDto {
    syntax: Option<String>,
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
pub(crate) struct MappingDto {
    input: String,
    output: String,
}

#[derive(Deserialize)]
pub(crate) struct AddedPropDto {
    key: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
pub(crate) struct QueryDto {
    aql: String,
    #[serde(default)]
    query_name: Option<String>,
    #[serde(default)]
    mappings: Option<Vec<MappingDto>>,
    #[serde(default)]
    added_props: Option<Vec<AddedPropDto>>,
}

#[derive(Deserialize, Default)]
pub(crate) struct SpecDto {
    // The JFrog client sends `null` when it has no file specs.
    #[serde(default)]
    queries: Option<Vec<QueryDto>>,
}

/// Create (`name` and `version` set) or update (both absent) body.
#[derive(Deserialize)]
pub(crate) struct BundleBody {
    name: Option<String>,
    version: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    sign_immediately: Option<bool>,
    storing_repository: Option<String>,
    description: Option<String>,
    release_notes: Option<NotesDto>,
    #[serde(default)]
    spec: Option<SpecDto>,
}

#[derive(Deserialize, Default)]
pub(crate) struct SignBody {
    storing_repository: Option<String>,
}

fn spec_from(dto: Option<SpecDto>) -> Spec {
    let queries = dto.and_then(|s| s.queries).unwrap_or_default();
    Spec {
        queries: queries
            .into_iter()
            .map(|q| SpecQuery {
                aql: q.aql,
                query_name: q.query_name.unwrap_or_default(),
                mappings: q
                    .mappings
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| PathMapping {
                        input: m.input,
                        output: m.output,
                    })
                    .collect(),
                added_props: q
                    .added_props
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| AddedProp {
                        key: p.key,
                        values: p.values,
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn version_request(body: BundleBody) -> VersionRequest {
    VersionRequest {
        body_name: body.name,
        body_version: body.version,
        description: body.description,
        release_notes: body.release_notes.map(|n| NotesRequest {
            syntax: n.syntax,
            content: n.content,
        }),
        storing_repository: body.storing_repository,
        spec: spec_from(body.spec),
        sign_immediately: body.sign_immediately.unwrap_or(false),
        dry_run: body.dry_run,
    }
}

/// The signing key's passphrase, from `X-GPG-PASSPHRASE` (empty when absent).
fn passphrase(headers: &HeaderMap) -> Result<Secret, ApiError> {
    let text = headers
        .get("x-gpg-passphrase")
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| ApiError::bad_request("X-GPG-PASSPHRASE is not text"))?;
    Ok(Secret::new(text.unwrap_or_default()))
}

/// The JSON shape of a version (seed 003 "Get Release Bundle Version").
pub(crate) fn version_json(v: &ReleaseBundleVersion) -> Value {
    let artifacts: Vec<Value> = v
        .artifacts
        .iter()
        .map(|a| {
            let mut j = json!({
                "checksum": a.checksum.to_hex(),
                "source_repo_path": a.source_repo_path,
                "target_repo_path": a.target_repo_path,
                "size": a.size,
                "props": a.props.iter().map(|(k, vs)| json!({"key": k, "values": vs})).collect::<Vec<_>>(),
            });
            if let Some(scan) = &a.scan {
                j["xray_scan_info"] = json!({"blocked": scan.blocked, "blocked_reason": scan.blocked_reason});
            }
            j
        })
        .collect();
    // The summary, with the artifacts and the spec.
    let mut j = summary_json(v);
    j["artifacts"] = json!(artifacts);
    j["spec"] = json!({"queries": v.spec.queries.iter().map(|q| json!({
        "aql": q.aql,
        "query_name": q.query_name,
        "mappings": q.mappings.iter().map(|m| json!({"input": m.input, "output": m.output})).collect::<Vec<_>>(),
        "added_props": q.added_props.iter().map(|p| json!({"key": p.key, "values": p.values})).collect::<Vec<_>>(),
        "query_type": "AQL",
    })).collect::<Vec<_>>()});
    j
}

fn with_checksum(mut res: Response, sig: Option<&BundleSignature>) -> Response {
    if let Some(sig) = sig
        && let Ok(v) = HeaderValue::from_str(&sig.sha256().to_hex())
    {
        res.headers_mut().insert("X-Checksum-Sha256", v);
    }
    res
}

fn parse_name(raw: &str) -> Result<BundleName, ApiError> {
    Ok(BundleName::parse(raw)?)
}

fn parse_version(raw: &str) -> Result<BundleVersion, ApiError> {
    Ok(BundleVersion::parse(raw)?)
}

/// A version with the checksum of its signed payload, if any.
fn answer(status: StatusCode, v: &ReleaseBundleVersion) -> Response {
    with_checksum(
        (status, axum::Json(version_json(v))).into_response(),
        v.signature.as_ref(),
    )
}

/// `POST /api/v1/release_bundle`.
pub(crate) async fn create(
    State(state): State<HubState>,
    Caller(who): Caller,
    headers: HeaderMap,
    Json(body): Json<BundleBody>,
) -> Result<Response, ApiError> {
    let name = parse_name(
        body.name
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("name is required"))?,
    )?;
    let version = parse_version(
        body.version
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("version is required"))?,
    )?;
    let signing = body.sign_immediately.unwrap_or(false);
    let passphrase = if signing {
        passphrase(&headers)?
    } else {
        Secret::new("")
    };
    let d = state
        .bundles
        .create(&who, &name, &version, version_request(body), &passphrase)
        .await?;
    // A dry run stores nothing, and says so with 200.
    let status = if d.stored {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(answer(status, &d.version))
}

/// `PUT /api/v1/release_bundle/{name}/{version}`: only while OPEN.
pub(crate) async fn update(
    State(state): State<HubState>,
    Caller(who): Caller,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    Json(body): Json<BundleBody>,
) -> Result<Response, ApiError> {
    let (name, version) = (parse_name(&name)?, parse_version(&version)?);
    let passphrase = if body.sign_immediately.unwrap_or(false) {
        passphrase(&headers)?
    } else {
        Secret::new("")
    };
    let d = state
        .bundles
        .update(&who, &name, &version, version_request(body), &passphrase)
        .await?;
    Ok(answer(StatusCode::OK, &d.version))
}

/// `POST /api/v1/release_bundle/{name}/{version}/sign`.
pub(crate) async fn sign(
    State(state): State<HubState>,
    Caller(who): Caller,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (name, version) = (parse_name(&name)?, parse_version(&version)?);
    // The JFrog client sends `{}`; curl users often send nothing.
    let storing = || {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice::<SignBody>(&body)
            .map(|b| b.storing_repository)
            .map_err(|e| waybill_app::Error::invalid(format!("invalid JSON body: {e}")))
    };
    let stored = state
        .bundles
        .sign(&who, &name, &version, storing, &passphrase(&headers)?)
        .await?;
    Ok(answer(StatusCode::OK, &stored))
}

#[derive(Deserialize)]
pub(crate) struct GetQuery {
    format: Option<String>,
}

/// `GET /api/v1/release_bundle/{name}/{version|LATEST}?format=json|jws|jose`.
pub(crate) async fn get_version(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path((name, version)): Path<(String, String)>,
    Query(q): Query<GetQuery>,
) -> Result<Response, ApiError> {
    let name = parse_name(&name)?;
    state.bundles.authorize_read(&who, &name).await?;
    let format = q.format.unwrap_or_else(|| "json".into());
    let key = format!("version\0{name}\0{version}\0{format}");
    let renders = state.renders().clone();
    let render = async move {
        render_version(&state, &who, &name, &version, &format)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    };
    Ok(renders.get_or_render(key, render).await)
}

async fn render_version(
    state: &HubState,
    who: &Principal,
    name: &BundleName,
    version: &str,
    format: &str,
) -> Result<Response, ApiError> {
    let v = state.bundles.get(who, name, version).await?;
    let signed = || {
        v.signature.as_ref().ok_or_else(|| {
            ApiError::bad_request(format!(
                "release bundle {} is {}; only signed versions have a JWS",
                v.label(),
                v.state
            ))
        })
    };
    match format {
        "json" => Ok(axum::Json(version_json(&v)).into_response()),
        "jws" => {
            let s = signed()?;
            let body = json!({"header": s.jws_header, "payload": s.payload_b64(), "signature": s.jws_signature});
            Ok((
                [(header::CONTENT_TYPE, "application/jose+json")],
                body.to_string(),
            )
                .into_response())
        }
        "jose" => Ok((
            [(header::CONTENT_TYPE, "application/jose")],
            signed()?.compact(),
        )
            .into_response()),
        other => Err(ApiError::bad_request(format!(
            "format '{other}' is not one of json, jws, jose"
        ))),
    }
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    start_pos: Option<String>,
}

/// A version as listings show it: a summary, not the whole version. One
/// version may hold thousands of artifacts and their properties; a listing
/// of ten must stay small for everyone (`GET …/{name}/{version}` has it all).
fn summary_json(v: &ReleaseBundleVersion) -> Value {
    let mut j = json!({
        "name": v.name.as_str(),
        "version": v.version.as_str(),
        "state": v.state.as_str(),
        "description": v.description,
        "created": format_iso(v.created),
        "created_by": v.created_by,
        "storing_repository": v.storing_repository,
        "artifacts_count": v.artifacts.len(),
        "artifacts_size": v.total_size(),
        "archived": v.archived,
    });
    if let Some(notes) = &v.release_notes {
        j["release_notes"] = json!({"syntax": notes.syntax.as_str(), "content": notes.content});
    }
    j
}

fn paged_response(items: Vec<ReleaseBundleVersion>, start: u64, total: u64) -> Response {
    let end = start + items.len() as u64;
    let body: Vec<Value> = items.iter().map(summary_json).collect();
    let mut res = axum::Json(body).into_response();
    for (k, v) in [
        ("X-RangeLimit-StartPos", start),
        ("X-RangeLimit-EndPos", end),
        ("X-RangeLimit-Total", total),
    ] {
        res.headers_mut().insert(k, HeaderValue::from(v));
    }
    res
}

fn start_pos(q: &ListQuery) -> Result<u64, ApiError> {
    q.start_pos
        .as_deref()
        .map(|s| {
            s.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("start_pos must be a whole number, not '{s}'"))
            })
        })
        .transpose()
        .map(|p| p.unwrap_or(0))
}

/// `GET /api/v1/release_bundle`: every version, newest first, 10 per page.
pub(crate) async fn list_all(
    State(state): State<HubState>,
    Caller(who): Caller,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let start = start_pos(&q)?;
    // A non-admin's page depends on their permissions, hence on the
    // security epoch too: a permission change renders a fresh page.
    let key = if who.admin {
        format!("list\0\0{start}")
    } else {
        format!(
            "list\0\0{start}\0{}\0{}",
            who.name,
            state.security.security_epoch()
        )
    };
    let renders = state.renders().clone();
    let render = async move {
        list_page(&state, &who, None, start)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    };
    Ok(renders.get_or_render(key, render).await)
}

async fn list_page(
    state: &HubState,
    who: &Principal,
    name: Option<&BundleName>,
    start: u64,
) -> Result<Response, ApiError> {
    let page = state
        .bundles
        .list(
            who,
            name,
            Page {
                offset: start,
                limit: PAGE_SIZE,
            },
        )
        .await?;
    Ok(paged_response(page.items, start, page.total))
}

/// `GET /api/v1/release_bundle/{name}`: 404 for an unknown bundle.
pub(crate) async fn list_bundle(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let name = parse_name(&name)?;
    state.bundles.authorize_read(&who, &name).await?;
    let start = start_pos(&q)?;
    let key = format!("list\0{name}\0{start}");
    let renders = state.renders().clone();
    let render = async move {
        list_page(&state, &who, Some(&name), start)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    };
    Ok(renders.get_or_render(key, render).await)
}

/// `DELETE /api/v1/release_bundle/{name}/{version}`: 204, or 404.
pub(crate) async fn delete_version(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (name, version) = (parse_name(&name)?, parse_version(&version)?);
    state.bundles.delete_version(&who, &name, &version).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /api/v1/release_bundle/{name}`: every version; 204, or 404.
pub(crate) async fn delete_bundle(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let name = parse_name(&name)?;
    state.bundles.delete_bundle(&who, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/scan_policy` (a Waybill extension; admin only).
pub(crate) async fn get_policy(
    State(state): State<HubState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    Ok(axum::Json(state.bundles.scan_policy(&who).await?).into_response())
}

/// `PUT /api/v1/scan_policy` (a Waybill extension; admin only).
pub(crate) async fn put_policy(
    State(state): State<HubState>,
    Caller(who): Caller,
    Json(policy): Json<ScanPolicy>,
) -> Result<Response, ApiError> {
    let policy = state.bundles.set_scan_policy(&who, policy).await?;
    Ok(axum::Json(policy).into_response())
}

/// `POST /api/v1/release_bundle/{name}/{version}/trigger_xray_scan`.
pub(crate) async fn trigger_scan(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (name, version) = (parse_name(&name)?, parse_version(&version)?);
    let stored = state.bundles.scan(&who, &name, &version).await?;
    Ok(axum::Json(version_json(&stored)).into_response())
}
