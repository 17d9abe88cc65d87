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
use waybill_core::Error;
use waybill_core::artifact::{Item, ItemKind, ItemPath, RepoKey, Repository};
use waybill_core::bundle::{
    AddedProp, BundleArtifact, NotesSyntax, PathMapping, ReleaseBundleVersion, ReleaseNotes,
    ScanInfo, Spec, SpecQuery,
};
use waybill_core::gather::{check_target, gather, normalise_spec};
use waybill_core::name::{BundleName, BundleVersion, LATEST};
use waybill_core::permissions::Action;
use waybill_core::signing::{BundleSignature, Signer};
use waybill_core::state::{After, VersionEvent, VersionState};
use waybill_core::store::Page;
use waybill_core::time::format_iso;

use crate::Caller;
use crate::now_millis;
use crate::{ApiError, AppState, Json, Principal, keys};

/// Versions per page in listings, as the seed documents.
const PAGE_SIZE: u64 = 10;
/// The setting holding the scan policy (JSON).
pub(crate) const SCAN_POLICY: &str = "scan.policy";

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

fn spec_from(dto: Option<SpecDto>) -> Result<Spec, ApiError> {
    let queries = dto.and_then(|s| s.queries).unwrap_or_default();
    if queries.is_empty() {
        return Err(ApiError::bad_request(
            "spec.queries must hold at least one query",
        ));
    }
    Ok(normalise_spec(Spec {
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
    }))
}

fn notes_from(dto: Option<NotesDto>) -> Result<Option<ReleaseNotes>, ApiError> {
    use waybill_core::gather::limits::RELEASE_NOTES_BYTES;
    if let Some(n) = &dto
        && n.content.len() > RELEASE_NOTES_BYTES
    {
        return Err(ApiError::bad_request(format!(
            "release_notes.content is {} bytes; at most {RELEASE_NOTES_BYTES}",
            n.content.len()
        )));
    }
    match dto {
        Some(n) if !n.content.is_empty() => Ok(Some(ReleaseNotes {
            syntax: NotesSyntax::parse(n.syntax.as_deref().unwrap_or("plain_text"))?,
            content: n.content,
        })),
        _ => Ok(None),
    }
}

/// The storing repository a request names, checked: only release-bundle
/// repositories (the default, or ones created for that purpose) may hold
/// bundles, never an ordinary or system repository.
fn description(raw: Option<String>) -> Result<String, ApiError> {
    use waybill_core::gather::limits::DESCRIPTION_BYTES;
    let d = raw.unwrap_or_default();
    if d.len() > DESCRIPTION_BYTES {
        return Err(ApiError::bad_request(format!(
            "description is {} bytes; at most {DESCRIPTION_BYTES}",
            d.len()
        )));
    }
    Ok(d)
}

async fn storing_key(state: &AppState, raw: Option<String>) -> Result<Option<RepoKey>, ApiError> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let key = RepoKey::parse(raw)
        .map_err(|e| ApiError::bad_request(format!("storing_repository: {e}")))?;
    check_storing(state, &key).await?;
    Ok(Some(key))
}

/// 400 unless `key` is absent (it will be created as a release-bundles
/// repository) or already is one.
pub(crate) async fn check_storing(state: &AppState, key: &RepoKey) -> Result<(), ApiError> {
    let system = waybill_app::source::RESERVED_REPOS
        .iter()
        .filter(|r| **r != ReleaseBundleVersion::DEFAULT_STORING_REPOSITORY)
        .any(|r| r.eq_ignore_ascii_case(key.as_str()));
    let usable = match state.store.get_repository(key).await? {
        _ if system => false,
        Some(repo) => repo.read_only && repo.package_type == RELEASE_BUNDLES_TYPE,
        None => true,
    };
    if usable {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "storing_repository '{key}' is not a release-bundles repository; name '{}' or a repository that does not exist yet (it is created for release bundles)",
            ReleaseBundleVersion::DEFAULT_STORING_REPOSITORY
        )))
    }
}

/// The package type of repositories Waybill creates to store bundles.
const RELEASE_BUNDLES_TYPE: &str = "releaseBundles";

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

// ---- signing and the storing repository -----------------------------------

async fn sign_version(
    signer: PgpSignerBox,
    v: ReleaseBundleVersion,
) -> Result<BundleSignature, ApiError> {
    tokio::task::spawn_blocking(move || {
        waybill_core::signing::sign(&v, signer.as_ref(), now_millis())
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "signing task failed"))?
    .map_err(ApiError::from)
}

type PgpSignerBox = Box<dyn Signer>;

/// Makes sure the storing repository exists and is a read-only
/// release-bundles repository.
async fn storing_repository(state: &AppState, key: &RepoKey) -> Result<(), ApiError> {
    check_storing(state, key).await?;
    if state.store.get_repository(key).await?.is_some() {
        return Ok(());
    }
    let repo = Repository {
        key: key.clone(),
        package_type: RELEASE_BUNDLES_TYPE.into(),
        description: "Signed release bundles (managed by Waybill)".into(),
        created: now_millis(),
        read_only: true,
    };
    match state.store.create_repository(repo).await {
        Ok(()) => Ok(()),
        // Created concurrently: it must still be a release-bundles repository.
        Err(e) if e.kind() == waybill_core::StoreErrorKind::Conflict => {
            check_storing(state, key).await
        }
        Err(e) => Err(e.into()),
    }
}

fn storing_path(v: &ReleaseBundleVersion) -> Result<ItemPath, ApiError> {
    ItemPath::parse(&format!("{}/{}", v.name, v.version)).map_err(ApiError::from)
}

/// Stores `data` as a blob and returns its checksums.
async fn put_blob(
    state: &AppState,
    data: &[u8],
) -> Result<waybill_core::digest::Checksums, ApiError> {
    let mut w = state.blobs.writer().await?;
    w.write(data).await?;
    Ok(w.commit(waybill_core::store::Expected::default())
        .await?
        .checksums)
}

/// References every artifact into the storing repository by checksum, and
/// stores the signed payload with its detached signature beside them
/// (`release-bundle.json` and `release-bundle.json.asc`), where anyone can
/// fetch and verify them. Idempotent, so a retry after a crash completes the set.
pub(crate) async fn reference_artifacts(
    state: &AppState,
    v: &ReleaseBundleVersion,
    who: &str,
) -> Result<(), ApiError> {
    let key = RepoKey::parse(v.storing_repository.clone())?;
    storing_repository(state, &key).await?;
    let base = storing_path(v)?;
    // Held shared: no blob can be collected while its reference is written.
    let _content = state.source.content_lock().read().await;
    let now = now_millis();
    let item = |path: &str,
                size: u64,
                sums: waybill_core::digest::Checksums,
                props: waybill_core::bundle::Props|
     -> Result<Item, ApiError> {
        Ok(Item {
            repo: key.clone(),
            path: base.join(path)?,
            kind: ItemKind::File,
            size,
            checksums: Some(sums),
            created: now,
            modified: now,
            created_by: who.to_string(),
            modified_by: who.to_string(),
            props,
        })
    };
    let mut items = Vec::with_capacity(v.artifacts.len() + 2);
    if let Some(sig) = &v.signature {
        for (name, data) in [
            ("release-bundle.json", sig.payload.as_bytes()),
            ("release-bundle.json.asc", sig.pgp_signature.as_bytes()),
        ] {
            let sums = put_blob(state, data).await?;
            items.push(item(name, data.len() as u64, sums, Default::default())?);
        }
    }
    for a in &v.artifacts {
        let known = state
            .store
            .find_items(&waybill_core::aql::ItemHint {
                sha256: Some(a.checksum),
                ..Default::default()
            })
            .await?;
        let sums = known.iter().find_map(|i| i.checksums).ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "artifact '{}' is no longer in the source repository",
                    a.source_repo_path
                ),
            )
        })?;
        items.push(item(&a.target_repo_path, a.size, sums, a.props.clone())?);
    }
    // One transaction: every reference or none, and one commit instead of
    // one per artifact (this runs on each distribution).
    state.store.commit_files(items).await?;
    Ok(())
}

/// Removes a version's references from its storing repository and frees
/// blobs nothing else references.
pub(crate) async fn unreference(
    state: &AppState,
    v: &ReleaseBundleVersion,
) -> Result<(), ApiError> {
    let Ok(key) = RepoKey::parse(v.storing_repository.clone()) else {
        return Ok(());
    };
    // Never delete from a repository that does not hold bundles (a version
    // stored before storing repositories were checked may name one).
    if check_storing(state, &key).await.is_err() {
        tracing::warn!(bundle = %v.label(), repo = %key, "storing repository is not a release-bundles repository; references left in place");
        return Ok(());
    }
    let removed = state.store.delete_item(&key, &storing_path(v)?).await?;
    Ok(state
        .source
        .collect_garbage(removed.iter().filter_map(Item::sha256))
        .await?)
}

// ---- handlers ----------------------------------------------------------

/// The version, or a 404 naming it.
pub(crate) async fn existing_version(
    state: &AppState,
    name: &BundleName,
    version: &BundleVersion,
) -> Result<ReleaseBundleVersion, ApiError> {
    state
        .store
        .get_version(name, version)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("release bundle {name}/{version} does not exist"))
        })
}

fn parse_name(raw: &str) -> Result<BundleName, ApiError> {
    Ok(BundleName::parse(raw)?)
}

fn parse_version(raw: &str) -> Result<BundleVersion, ApiError> {
    Ok(BundleVersion::parse(raw)?)
}

/// The spec's artifacts, as far as the caller may read them: a file in a
/// repository they cannot read refuses the spec (403 naming the repository),
/// as `/api/search/aql` would have hidden it.
async fn gather_for(
    state: &AppState,
    who: &Principal,
    spec: &Spec,
) -> Result<Vec<waybill_core::bundle::BundleArtifact>, ApiError> {
    let may_read = state.security.readable_repositories(who).await?;
    Ok(gather(state.store.as_ref(), spec, now_millis(), &may_read).await?)
}

/// `POST /api/v1/release_bundle`.
pub(crate) async fn create(
    State(state): State<AppState>,
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
    state
        .security
        .require_bundle(&who, name.as_str(), Action::Write)
        .await?;
    if state.store.get_version(&name, &version).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("release bundle {name}/{version} already exists"),
        ));
    }
    let spec = spec_from(body.spec)?;
    let mut v = ReleaseBundleVersion::new(name, version, now_millis(), who.name.clone());
    v.description = description(body.description)?;
    v.release_notes = notes_from(body.release_notes)?;
    if let Some(key) = storing_key(&state, body.storing_repository).await? {
        v.storing_repository = key.to_string();
    }
    v.artifacts = gather_for(&state, &who, &spec).await?;
    v.spec = spec;
    if body.sign_immediately.unwrap_or(false) {
        let signer = Box::new(keys::unlock_default(&state, &headers).await?);
        v.signature = Some(sign_version(signer, v.clone()).await?);
        v.state = match v.state.apply(VersionEvent::Sign)? {
            After::State(s) => s,
            After::Deleted => VersionState::Open,
        };
    }
    if body.dry_run {
        return Ok(with_checksum(
            (StatusCode::OK, axum::Json(version_json(&v))).into_response(),
            v.signature.as_ref(),
        ));
    }
    let _changed = state.renders.change();
    match state.store.create_version(v.clone()).await {
        Ok(()) => {}
        Err(e) if e.kind() == waybill_core::StoreErrorKind::Conflict => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("release bundle {} already exists", v.label()),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    if v.state == VersionState::Signed {
        reference_artifacts(&state, &v, &who.name).await?;
    }
    tracing::info!(bundle = %v.label(), artifacts = v.artifacts.len(), state = %v.state, "release bundle version created");
    Ok(with_checksum(
        (StatusCode::CREATED, axum::Json(version_json(&v))).into_response(),
        v.signature.as_ref(),
    ))
}

/// `PUT /api/v1/release_bundle/{name}/{version}`: only while OPEN.
pub(crate) async fn update(
    State(state): State<AppState>,
    Caller(who): Caller,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    Json(body): Json<BundleBody>,
) -> Result<Response, ApiError> {
    let (name, version) = (parse_name(&name)?, parse_version(&version)?);
    state
        .security
        .require_bundle(&who, name.as_str(), Action::Write)
        .await?;
    if body.name.as_deref().is_some_and(|n| n != name.as_str())
        || body
            .version
            .as_deref()
            .is_some_and(|n| n != version.as_str())
    {
        return Err(ApiError::bad_request(
            "name and version come from the URL and cannot be changed",
        ));
    }
    let current = crate::bundles::existing_version(&state, &name, &version).await?;
    current.state.apply(VersionEvent::Update)?;
    let spec = spec_from(body.spec)?;
    let mut next = current.clone();
    next.description = description(body.description)?;
    next.release_notes = notes_from(body.release_notes)?;
    if let Some(key) = storing_key(&state, body.storing_repository).await? {
        next.storing_repository = key.to_string();
    }
    next.artifacts = gather_for(&state, &who, &spec).await?;
    next.spec = spec;
    if body.sign_immediately.unwrap_or(false) {
        let signer = Box::new(keys::unlock_default(&state, &headers).await?);
        next.signature = Some(sign_version(signer, next.clone()).await?);
    }
    if body.dry_run {
        return Ok(with_checksum(
            (StatusCode::OK, axum::Json(version_json(&next))).into_response(),
            next.signature.as_ref(),
        ));
    }
    let sign_now = next.signature.is_some();
    let _changed = state.renders.change();
    let stored = state
        .store
        .update_version(
            &name,
            &version,
            Box::new(move |v| {
                // Refuses if the version was signed in the meantime.
                v.state.apply(VersionEvent::Update)?;
                if v != &current {
                    return Err(Error::Conflict(
                        "the version changed during the update; retry it".into(),
                    ));
                }
                let mut n = next;
                if sign_now && let After::State(s) = n.state.apply(VersionEvent::Sign)? {
                    n.state = s;
                }
                *v = n;
                Ok(())
            }),
        )
        .await?;
    if stored.state == VersionState::Signed {
        reference_artifacts(&state, &stored, &who.name).await?;
    }
    Ok(with_checksum(
        (StatusCode::OK, axum::Json(version_json(&stored))).into_response(),
        stored.signature.as_ref(),
    ))
}

/// `POST /api/v1/release_bundle/{name}/{version}/sign`.
pub(crate) async fn sign(
    State(state): State<AppState>,
    Caller(who): Caller,
    headers: HeaderMap,
    Path((name, version)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (name, version) = (parse_name(&name)?, parse_version(&version)?);
    state
        .security
        .require_bundle(&who, name.as_str(), Action::Write)
        .await?;
    // The JFrog client sends `{}`; curl users often send nothing.
    let body: SignBody = if body.iter().all(u8::is_ascii_whitespace) {
        SignBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let storing = storing_key(&state, body.storing_repository).await?;
    let current = crate::bundles::existing_version(&state, &name, &version).await?;
    current.state.apply(VersionEvent::Sign)?;
    let mut to_sign = current.clone();
    if let Some(key) = &storing {
        to_sign.storing_repository = key.to_string();
    }
    for a in &to_sign.artifacts {
        check_target(&a.target_repo_path).map_err(ApiError::bad_request)?;
    }
    let signer = Box::new(keys::unlock_default(&state, &headers).await?);
    let signature = sign_version(signer, to_sign.clone()).await?;
    let _changed = state.renders.change();
    let stored = state
        .store
        .update_version(
            &name,
            &version,
            Box::new(move |v| {
                let After::State(next) = v.state.apply(VersionEvent::Sign)? else {
                    return Ok(());
                };
                // What was signed must be what is stored.
                if waybill_core::signing::canonical_payload(v) != signature.payload {
                    return Err(Error::Conflict(
                        "the version changed while it was being signed; sign again".into(),
                    ));
                }
                v.state = next;
                v.storing_repository = to_sign.storing_repository;
                v.signature = Some(signature);
                Ok(())
            }),
        )
        .await?;
    reference_artifacts(&state, &stored, &who.name).await?;
    tracing::info!(bundle = %stored.label(), "release bundle version signed");
    Ok(with_checksum(
        axum::Json(version_json(&stored)).into_response(),
        stored.signature.as_ref(),
    ))
}

#[derive(Deserialize)]
pub(crate) struct GetQuery {
    format: Option<String>,
}

/// `GET /api/v1/release_bundle/{name}/{version|LATEST}?format=json|jws|jose`.
pub(crate) async fn get_version(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((name, version)): Path<(String, String)>,
    Query(q): Query<GetQuery>,
) -> Result<Response, ApiError> {
    let name = parse_name(&name)?;
    state
        .security
        .require_bundle(&who, name.as_str(), Action::Read)
        .await?;
    let format = q.format.unwrap_or_else(|| "json".into());
    let key = format!("version\0{name}\0{version}\0{format}");
    let renders = state.renders.clone();
    let render = async move {
        render_version(&state, &name, &version, &format)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    };
    Ok(renders.get_or_render(key, render).await)
}

async fn render_version(
    state: &AppState,
    name: &BundleName,
    version: &str,
    format: &str,
) -> Result<Response, ApiError> {
    let v = if version == LATEST {
        state.store.latest_version(name).await?
    } else {
        state
            .store
            .get_version(name, &parse_version(version)?)
            .await?
    }
    .ok_or_else(|| {
        ApiError::not_found(format!("release bundle {name}/{version} does not exist"))
    })?;
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
    State(state): State<AppState>,
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
    let renders = state.renders.clone();
    let render = async move {
        list_all_page(&state, &who, start)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    };
    Ok(renders.get_or_render(key, render).await)
}

async fn list_all_page(
    state: &AppState,
    who: &Principal,
    start: u64,
) -> Result<Response, ApiError> {
    if who.admin {
        let page = state
            .store
            .list_versions(
                None,
                Page {
                    offset: start,
                    limit: PAGE_SIZE,
                },
            )
            .await?;
        return Ok(paged_response(page.items, start, page.total));
    }
    // Only what the caller may read, paged after filtering so pages stay full.
    let readable = state.security.readable_bundles(who).await?;
    let all: Vec<ReleaseBundleVersion> = state
        .store
        .list_versions(None, Page::ALL)
        .await?
        .items
        .into_iter()
        .filter(|v| readable(v.name.as_str()))
        .collect();
    let total = all.len() as u64;
    let skip = usize::try_from(start).unwrap_or(usize::MAX);
    let items = all
        .into_iter()
        .skip(skip)
        .take(PAGE_SIZE as usize)
        .collect();
    Ok(paged_response(items, start, total))
}

/// `GET /api/v1/release_bundle/{name}`: 404 for an unknown bundle.
pub(crate) async fn list_bundle(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let name = parse_name(&name)?;
    state
        .security
        .require_bundle(&who, name.as_str(), Action::Read)
        .await?;
    let start = start_pos(&q)?;
    let key = format!("list\0{name}\0{start}");
    let renders = state.renders.clone();
    let render = async move {
        list_bundle_page(&state, &name, start)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    };
    Ok(renders.get_or_render(key, render).await)
}

async fn list_bundle_page(
    state: &AppState,
    name: &BundleName,
    start: u64,
) -> Result<Response, ApiError> {
    let page = state
        .store
        .list_versions(
            Some(name),
            Page {
                offset: start,
                limit: PAGE_SIZE,
            },
        )
        .await?;
    if page.total == 0 {
        return Err(ApiError::not_found(format!(
            "release bundle '{name}' does not exist"
        )));
    }
    Ok(paged_response(page.items, start, page.total))
}

/// `DELETE /api/v1/release_bundle/{name}/{version}`: 204, or 404.
pub(crate) async fn delete_version(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (name, version) = (parse_name(&name)?, parse_version(&version)?);
    state
        .security
        .require_bundle(&who, name.as_str(), Action::Delete)
        .await?;
    // Held while checking and deleting: no distribution can start between.
    let _guard = state.version_guard.lock().await;
    let v = crate::bundles::existing_version(&state, &name, &version).await?;
    refuse_if_in_flight(&state, &v).await?;
    let _changed = state.renders.change();
    state.store.delete_version(&name, &version).await?;
    unreference(&state, &v).await?;
    tracing::info!(bundle = %v.label(), "release bundle version deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// 409 naming the unfinished distributions (or deletions from edges) of
/// `v`: deleting it under them would leave edges holding a version the hub
/// no longer knows, or fail them half-way.
async fn refuse_if_in_flight(state: &AppState, v: &ReleaseBundleVersion) -> Result<(), ApiError> {
    let busy: Vec<String> = state
        .store
        .list_trackers(Some(&v.name), Some(&v.version))
        .await?
        .into_iter()
        .filter(|t| t.finished.is_none())
        .map(|t| t.id.to_string())
        .collect();
    if busy.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "release bundle {} has distribution {} in progress; wait for it or abort it \
             (PUT /api/v1/distribution/{}/{}/abort), then delete",
            v.label(),
            busy.join(", "),
            v.name,
            v.version
        ),
    ))
}

/// `DELETE /api/v1/release_bundle/{name}`: every version; 204, or 404.
pub(crate) async fn delete_bundle(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let name = parse_name(&name)?;
    state
        .security
        .require_bundle(&who, name.as_str(), Action::Delete)
        .await?;
    let _guard = state.version_guard.lock().await;
    let versions = state
        .store
        .list_versions(Some(&name), Page::ALL)
        .await?
        .items;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!(
            "release bundle '{name}' does not exist"
        )));
    }
    // All or nothing: refuse before deleting any version.
    for v in &versions {
        refuse_if_in_flight(&state, v).await?;
    }
    let _changed = state.renders.change();
    for v in &versions {
        state.store.delete_version(&v.name, &v.version).await?;
        unreference(&state, v).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The scan hook's block policy.
#[derive(Deserialize, serde::Serialize, Default, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScanPolicy {
    /// Properties that block: an artifact with any listed value is blocked.
    #[serde(default)]
    blocked_properties: Vec<AddedPropDtoOut>,
    /// SHA-256 checksums that block.
    #[serde(default)]
    blocked_checksums: Vec<String>,
}

#[derive(Deserialize, serde::Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddedPropDtoOut {
    key: String,
    values: Vec<String>,
}

async fn load_policy(state: &AppState) -> Result<ScanPolicy, ApiError> {
    match state.store.get_setting(SCAN_POLICY).await? {
        None => Ok(ScanPolicy::default()),
        Some(raw) => serde_json::from_str(&raw).map_err(|e| {
            tracing::error!(error = %e, "stored scan policy does not parse");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the stored scan policy is unreadable; set it again",
            )
        }),
    }
}

/// `GET /api/v1/scan_policy` (a Waybill extension; admin only).
pub(crate) async fn get_policy(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    Ok(axum::Json(load_policy(&state).await?).into_response())
}

/// `PUT /api/v1/scan_policy` (a Waybill extension; admin only).
pub(crate) async fn put_policy(
    State(state): State<AppState>,
    Caller(who): Caller,
    Json(policy): Json<ScanPolicy>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    for c in &policy.blocked_checksums {
        waybill_core::digest::Sha256::parse_hex(c)?;
    }
    let raw = serde_json::to_string(&policy).map_err(|e| ApiError::bad_request(e.to_string()))?;
    state.store.put_setting(SCAN_POLICY, &raw).await?;
    Ok(axum::Json(policy).into_response())
}

fn verdict(policy: &ScanPolicy, a: &BundleArtifact) -> ScanInfo {
    if policy
        .blocked_checksums
        .iter()
        .any(|c| c.eq_ignore_ascii_case(&a.checksum.to_hex()))
    {
        return ScanInfo {
            blocked: true,
            blocked_reason: Some(format!("checksum {} is on the deny-list", a.checksum)),
        };
    }
    for rule in &policy.blocked_properties {
        if let Some(v) = a
            .props
            .get(&rule.key)
            .and_then(|vs| vs.iter().find(|v| rule.values.contains(v)))
        {
            return ScanInfo {
                blocked: true,
                blocked_reason: Some(format!("property {}={v} is blocked", rule.key)),
            };
        }
    }
    ScanInfo {
        blocked: false,
        blocked_reason: None,
    }
}

/// `POST /api/v1/release_bundle/{name}/{version}/trigger_xray_scan`.
pub(crate) async fn trigger_scan(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (name, version) = (parse_name(&name)?, parse_version(&version)?);
    state
        .security
        .require_bundle(&who, name.as_str(), Action::Write)
        .await?;
    let policy = load_policy(&state).await?;
    let _changed = state.renders.change();
    let stored = state
        .store
        .update_version(
            &name,
            &version,
            Box::new(move |v| {
                v.state.apply(VersionEvent::Scan)?;
                for a in &mut v.artifacts {
                    a.scan = Some(verdict(&policy, a));
                }
                Ok(())
            }),
        )
        .await?;
    if let Some(reason) = stored.blocked() {
        tracing::warn!(bundle = %stored.label(), %reason, "scan blocked the release bundle version");
    }
    Ok(axum::Json(version_json(&stored)).into_response())
}
