//! The Artifactory-compatible source repository under `/artifactory`:
//! repositories, deploy and download, storage info and properties, builds,
//! AQL, and system version/ping.
//!
//! It is one module for hub and edges: [`routes`] mounts everything, and an
//! edge (later) mounts the same router with [`Mode::ReadOnly`], which leaves
//! out every writing route.
//!
//! Content lifetime: a blob may be deleted only when no file references it.
//! Deploys hold `content_lock` for reading from blob commit to item write,
//! and garbage collection holds it for writing while it counts references,
//! so a blob can never vanish between "it is stored" and "a file points at it".

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use waybill_core::StoreErrorKind;
use waybill_core::aql::{self, Domain, Field, FieldValue, Query as AqlQuery};
use waybill_core::artifact::{
    Build, BuildFile, BuildModule, Item, ItemKind, ItemPath, RepoKey, Repository, validate_props,
};
use waybill_core::bundle::Props;
use waybill_core::digest::{Checksums, Sha256};
use waybill_core::permissions::Action;
use waybill_core::store::{BlobInfo, Expected};
use waybill_core::time::{format_http_date, format_iso};

use crate::Caller;
use crate::now_millis;
use crate::{ApiError, AppState, Json, Principal};

/// Which routes to mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The hub: reads and writes.
    ReadWrite,
    /// An edge: reads only.
    ReadOnly,
}

/// The version reported to clients; the JFrog CLI needs ≥ 7.136.0 for every
/// lifecycle feature, including drafts.
pub const ARTIFACTORY_VERSION: &str = "7.136.0";

/// The repository name build permissions are granted on, as in Artifactory.
const BUILD_INFO: &str = "artifactory-build-info";

/// Names Waybill manages itself: no one may create an ordinary repository
/// under them, and bundles may never store into the system ones.
pub(crate) const RESERVED_REPOS: [&str; 3] = [
    BUILD_INFO,
    crate::support_bundle::REPO,
    waybill_core::bundle::ReleaseBundleVersion::DEFAULT_STORING_REPOSITORY,
];

/// Bytes gathered from the request body before each blob write.
const WRITE_CHUNK: usize = 256 << 10;
/// Bytes read from a blob per response chunk.
const READ_CHUNK: u64 = 1 << 20;
/// Bodies up to this size are read before answering, not streamed.
const WHOLE_BODY_MAX: u64 = 256 << 10;

/// Routes that need authentication.
pub fn routes(mode: Mode) -> Router<AppState> {
    let read = Router::new()
        .route("/artifactory/api/system/version", get(version))
        .route("/artifactory/api/repositories", get(list_repositories))
        .route("/artifactory/api/storage/{repo}", get(storage_root))
        .route("/artifactory/api/search/aql", post(search_aql))
        .route("/artifactory/api/build/{name}", get(build_runs))
        .route("/artifactory/api/build/{name}/{number}", get(get_build));
    let builds = get(list_builds);
    let (repository, storage, content) = (
        get(get_repository),
        get(storage_get),
        get(download).head(download),
    );
    match mode {
        Mode::ReadOnly => read
            .route("/artifactory/api/build", builds)
            .route("/artifactory/api/repositories/{key}", repository)
            .route("/artifactory/api/storage/{repo}/{*path}", storage)
            .route("/artifactory/{repo}/{*path}", content),
        Mode::ReadWrite => read
            .route(
                "/artifactory/api/repositories/{key}",
                repository.put(create_repository).delete(delete_repository),
            )
            .route(
                "/artifactory/api/storage/{repo}/{*path}",
                storage.put(storage_put).delete(storage_delete),
            )
            .route("/artifactory/api/build", builds.put(put_build))
            .route(
                "/artifactory/api/metadata/{repo}/{*path}",
                axum::routing::patch(patch_metadata),
            )
            .route(
                "/artifactory/{repo}/{*path}",
                content.put(deploy).delete(delete_path),
            ),
    }
}

/// Routes anyone may call.
pub fn anonymous_routes() -> Router<AppState> {
    Router::new().route("/artifactory/api/system/ping", get(|| async { "OK" }))
}

/// The URL prefix of returned `uri`/`downloadUri` fields. The `Host`
/// header is used only when it is a plain `host[:port]` (letters, digits,
/// `.`, `-`, or a bracketed IPv6 address): anything else could inject a
/// path, a user-info part or markup into links other clients follow.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| plain_host(h))
        .unwrap_or("localhost");
    format!("http://{host}/artifactory")
}

fn plain_host(h: &str) -> bool {
    let (name, port) = match h.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(':') && !p.contains(']') => (n, Some(p)),
        _ => (h, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    port_ok && name_ok
}

fn mime_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "jar" | "war" | "ear" => "application/java-archive",
        "pom" | "xml" => "application/xml",
        "json" => "application/json",
        "txt" | "md" | "log" => "text/plain",
        "html" | "htm" => "text/html",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/x-gzip",
        "tar" => "application/x-tar",
        "deb" => "application/x-debian-package",
        "rpm" => "application/x-rpm",
        _ => "application/octet-stream",
    }
}

/// `repo/path;k=v;k2=v1,v2` into its key, path and matrix properties.
fn parse_target(repo: &str, raw_path: &str) -> Result<(RepoKey, ItemPath, Props), ApiError> {
    let key = RepoKey::parse(repo)?;
    let mut parts = raw_path.split(';');
    let path = ItemPath::parse(parts.next().unwrap_or(""))?;
    let mut props = Props::new();
    for param in parts.filter(|p| !p.is_empty()) {
        let (k, v) = param.split_once('=').unwrap_or((param, ""));
        props
            .entry(k.to_string())
            .or_default()
            .extend(v.split(',').filter(|v| !v.is_empty()).map(str::to_string));
    }
    validate_props(&props)?;
    Ok((key, path, props))
}

/// The checks every content-changing request makes: a valid target below the
/// root of an existing, writable repository, and a caller allowed to deploy.
async fn writable_target(
    state: &AppState,
    who: &Principal,
    (repo, raw_path): (&str, &str),
    action: Action,
    root_refusal: &str,
) -> Result<(RepoKey, ItemPath, Props), ApiError> {
    let (key, path, props) = parse_target(repo, raw_path)?;
    state
        .security
        .require_repository(who, key.as_str(), action)
        .await?;
    if existing_repo(state, &key).await?.read_only {
        return Err(ApiError::forbidden(format!(
            "repository '{key}' is read-only"
        )));
    }
    if path.is_root() {
        return Err(ApiError::bad_request(root_refusal.to_string()));
    }
    Ok((key, path, props))
}

/// Repositories read before. A repository never changes once created; it
/// only goes away, and deleting one takes [`Repositories::change`], so no
/// entry outlives it. Downloads, storage reads and deploys all start here.
#[derive(Clone, Debug, Default)]
pub struct Repositories {
    epoch: waybill_app::epoch::Epoch,
    known: std::sync::Arc<std::sync::Mutex<HashMap<RepoKey, (u64, Repository)>>>,
}

impl Repositories {
    /// Take before deleting a repository.
    pub fn change(&self) -> waybill_app::epoch::Change {
        self.epoch.change()
    }

    async fn get(
        &self,
        store: &dyn waybill_core::store::Store,
        key: &RepoKey,
    ) -> Result<Option<Repository>, ApiError> {
        let epoch = self.epoch.now();
        if let Some((at, repo)) = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            && *at == epoch
        {
            return Ok(Some(repo.clone()));
        }
        let Some(repo) = store.get_repository(key).await? else {
            return Ok(None);
        };
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= 4096 {
            known.clear();
        }
        known.insert(key.clone(), (epoch, repo.clone()));
        Ok(Some(repo))
    }
}

async fn existing_repo(state: &AppState, key: &RepoKey) -> Result<Repository, ApiError> {
    state
        .repos
        .get(state.store.as_ref(), key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("repository '{key}' does not exist")))
}

fn header_digest<const N: usize>(
    headers: &HeaderMap,
    name: &str,
) -> Result<Option<waybill_core::digest::HexDigest<N>>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| ApiError::bad_request(format!("{name} is not text")))?
                .trim();
            if text.is_empty() {
                return Ok(None);
            }
            waybill_core::digest::HexDigest::<N>::parse_hex(text)
                .map(Some)
                .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
        }
    }
}

fn checksums_json(c: &Checksums) -> Value {
    json!({"sha1": c.sha1.to_hex(), "md5": c.md5.to_hex(), "sha256": c.sha256.to_hex()})
}

fn file_info(base: &str, item: &Item, original: Option<&Expected>) -> Value {
    let rp = format!("{}/{}", item.repo, item.path);
    let mut v = json!({
        "repo": item.repo.as_str(),
        "path": format!("/{}", item.path),
        "created": format_iso(item.created),
        "createdBy": item.created_by,
        "lastModified": format_iso(item.modified),
        "modifiedBy": item.modified_by,
        "lastUpdated": format_iso(item.modified),
        "downloadUri": format!("{base}/{rp}"),
        "mimeType": mime_type(item.path.name()),
        "size": item.size.to_string(),
        "uri": format!("{base}/api/storage/{rp}"),
    });
    if let Some(c) = &item.checksums {
        v["checksums"] = checksums_json(c);
        v["originalChecksums"] = match original {
            Some(o) => {
                let mut m = Map::new();
                if let Some(d) = o.sha1 {
                    m.insert("sha1".into(), d.to_hex().into());
                }
                if let Some(d) = o.md5 {
                    m.insert("md5".into(), d.to_hex().into());
                }
                if let Some(d) = o.sha256 {
                    m.insert("sha256".into(), d.to_hex().into());
                }
                Value::Object(m)
            }
            None => checksums_json(c),
        };
    }
    v
}

/// Deletes blobs whose last referencing file is gone.
pub(crate) async fn collect_garbage(
    state: &AppState,
    digests: impl IntoIterator<Item = Sha256>,
) -> Result<(), ApiError> {
    let _exclusive = state.content_lock.write().await;
    for d in digests {
        if state.store.count_content_refs(&d).await? == 0 {
            state.blobs.delete(&d).await?;
        }
    }
    Ok(())
}

// ---- repositories ----------------------------------------------------------

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RepoConfig {
    key: Option<String>,
    rclass: Option<String>,
    package_type: Option<String>,
    description: Option<String>,
}

async fn create_repository(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
    Json(cfg): Json<RepoConfig>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let key = RepoKey::parse(key)?;
    if RESERVED_REPOS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(key.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "repository key '{key}' is reserved for Waybill's own use"
        )));
    }
    if let Some(body_key) = &cfg.key
        && body_key != key.as_str()
    {
        return Err(ApiError::bad_request(format!(
            "body key '{body_key}' differs from the URL key '{key}'"
        )));
    }
    match cfg.rclass.as_deref().unwrap_or("local") {
        "local" => {}
        other => {
            return Err(ApiError::bad_request(format!(
                "rclass '{other}' is not supported; only local repositories are"
            )));
        }
    }
    let repo = Repository {
        key: key.clone(),
        package_type: cfg.package_type.unwrap_or_else(|| "generic".into()),
        description: cfg.description.unwrap_or_default(),
        created: now_millis(),
        read_only: false,
    };
    match state.store.create_repository(repo).await {
        Ok(()) => Ok((
            StatusCode::OK,
            format!("Successfully created repository '{key}'"),
        )
            .into_response()),
        Err(e) if e.kind() == StoreErrorKind::Conflict => Err(ApiError::bad_request(format!(
            "repository '{key}' already exists"
        ))),
        Err(e) => Err(e.into()),
    }
}

async fn get_repository(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let key = RepoKey::parse(key)?;
    state
        .security
        .require_repository(&who, key.as_str(), Action::Read)
        .await?;
    let repo = existing_repo(&state, &key).await?;
    Ok(axum::Json(json!({
        "key": repo.key.as_str(),
        "rclass": "local",
        "packageType": repo.package_type,
        "description": repo.description,
    }))
    .into_response())
}

async fn list_repositories(
    State(state): State<AppState>,
    Caller(who): Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let base = base_url(&headers);
    let readable = state.security.readable_repositories(&who).await?;
    let list: Vec<Value> = state
        .store
        .list_repositories()
        .await?
        .into_iter()
        .filter(|r| readable(r.key.as_str()))
        .map(|r| {
            json!({
                "key": r.key.as_str(),
                "type": "LOCAL",
                "description": r.description,
                "url": format!("{base}/{}", r.key),
                "packageType": r.package_type,
            })
        })
        .collect();
    Ok(axum::Json(list).into_response())
}

async fn delete_repository(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let key = RepoKey::parse(key)?;
    let _changed = state.repos.change();
    let removed = state
        .store
        .delete_repository(&key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("repository '{key}' does not exist")))?;
    collect_garbage(&state, removed.iter().filter_map(Item::sha256)).await?;
    Ok((
        StatusCode::OK,
        format!("Repository '{key}' and all its content have been removed successfully."),
    )
        .into_response())
}

// ---- deploy, download, delete ------------------------------------------

async fn deploy(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((repo, raw_path)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (key, path, props) = writable_target(
        &state,
        &who,
        (&repo, &raw_path),
        Action::Write,
        "a deploy needs a path below the repository",
    )
    .await?;
    let expected = Expected {
        sha256: header_digest(&headers, "x-checksum-sha256")?,
        sha1: header_digest::<20>(&headers, "x-checksum-sha1")?,
        md5: header_digest::<16>(&headers, "x-checksum-md5")?,
    };
    let checksum_deploy = headers
        .get("x-checksum-deploy")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let now = now_millis();
    // Folders: a trailing slash and no body creates a folder.
    if raw_path.split(';').next().unwrap_or("").ends_with('/') && !checksum_deploy {
        let folder = Item::folder(key.clone(), path.clone(), now, &who.name);
        state
            .store
            .create_folder(folder)
            .await
            .map_err(conflict_to_400)?;
        let item = state
            .store
            .get_item(&key, &path)
            .await?
            .ok_or_else(|| ApiError::not_found("folder vanished"))?;
        return Ok((
            StatusCode::CREATED,
            axum::Json(file_info(&base_url(&headers), &item, None)),
        )
            .into_response());
    }

    let shared = state.content_lock.clone();
    let (info, _guard) = if checksum_deploy {
        let sha = expected.sha256.ok_or_else(|| {
            ApiError::bad_request("X-Checksum-Deploy needs an X-Checksum-Sha256 header")
        })?;
        let guard = shared.read_owned().await;
        let known = state
            .store
            .find_items(&aql::ItemHint {
                sha256: Some(sha),
                ..Default::default()
            })
            .await?;
        let checksums = known
            .iter()
            .find_map(|i| i.checksums)
            .filter(|c| c.sha256 == sha);
        let size = state.blobs.stat(&sha).await?;
        match (checksums, size) {
            (Some(c), Some(size)) => {
                expected.check(&c).map_err(|e| {
                    ApiError::new(
                        StatusCode::CONFLICT,
                        format!("nothing was stored: {}", e.detail()),
                    )
                })?;
                (
                    BlobInfo {
                        digest: sha,
                        checksums: c,
                        size,
                    },
                    guard,
                )
            }
            _ => {
                return Err(ApiError::not_found(format!(
                    "checksum deploy: no content with sha256 {sha} is stored"
                )));
            }
        }
    } else {
        let mut writer = state.blobs.writer().await?;
        let mut stream = body.into_data_stream();
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(crate::server::body_error)?;
            buf.extend_from_slice(&chunk);
            if buf.len() >= WRITE_CHUNK {
                writer.write(&buf).await?;
                buf.clear();
            }
        }
        if !buf.is_empty() {
            writer.write(&buf).await?;
        }
        let guard = shared.read_owned().await;
        let info = writer.commit(expected).await.map_err(|e| match e.kind() {
            StoreErrorKind::Corrupt => ApiError::new(
                StatusCode::CONFLICT,
                format!("nothing was stored: {}", e.detail()),
            ),
            _ => e.into(),
        })?;
        (info, guard)
    };

    let item = Item {
        repo: key.clone(),
        path: path.clone(),
        kind: ItemKind::File,
        size: info.size,
        checksums: Some(info.checksums),
        created: now,
        modified: now,
        created_by: who.name.clone(),
        modified_by: who.name.clone(),
        props,
    };
    let replaced = match state.store.put_file(item.clone()).await {
        Ok(r) => r,
        Err(e) => {
            drop(_guard);
            collect_garbage(&state, [info.digest]).await?;
            return Err(conflict_to_400(e));
        }
    };
    drop(_guard);
    if let Some(old) = replaced
        .and_then(|r| r.sha256())
        .filter(|d| *d != info.digest)
    {
        collect_garbage(&state, [old]).await?;
    }
    let original = (expected != Expected::default()).then_some(&expected);
    Ok((
        StatusCode::CREATED,
        axum::Json(file_info(&base_url(&headers), &item, original)),
    )
        .into_response())
}

fn conflict_to_400(e: waybill_core::StoreError) -> ApiError {
    match e.kind() {
        StoreErrorKind::Conflict => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        StoreErrorKind::NotFound => ApiError::not_found(e.to_string()),
        _ => e.into(),
    }
}

/// One `bytes=` range: `Ok(None)` for no (or an unsupported multi-) range.
fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(raw) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = raw.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (s, "") => (s.parse().map_err(|_| ())?, size.saturating_sub(1)),
        (s, e) => (
            s.parse().map_err(|_| ())?,
            e.parse::<u64>()
                .map_err(|_| ())?
                .min(size.saturating_sub(1)),
        ),
    };
    if start >= size || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn download(
    State(state): State<AppState>,
    Caller(who): Caller,
    method: Method,
    Path((repo, raw_path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (key, path, _) = parse_target(&repo, &raw_path)?;
    state
        .security
        .require_repository(&who, key.as_str(), Action::Read)
        .await?;
    let item = state
        .store
        .get_item(&key, &path)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Unable to find item: {key}/{path}")))?;
    let Some(sums) = item.checksums else {
        return Err(ApiError::bad_request(format!(
            "{key}/{path} is a folder; list it with GET /artifactory/api/storage/{key}/{path}"
        )));
    };
    let size = item.size;
    let range = match parse_range(&headers, size) {
        Ok(r) => r,
        Err(()) => {
            let mut res = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the range is outside 0-{size}"),
            )
            .into_response();
            res.headers_mut()
                .insert(header::CONTENT_RANGE, hv(&format!("bytes */{size}")));
            return Ok(res);
        }
    };
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let len = if size == 0 { 0 } else { end - start + 1 };
    let mut builder = Response::builder()
        .status(if range.is_some() {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        })
        .header(header::CONTENT_TYPE, mime_type(path.name()))
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::LAST_MODIFIED, format_http_date(item.modified))
        .header(header::ETAG, format!("\"{}\"", sums.sha1))
        .header("X-Checksum-Sha256", sums.sha256.to_hex())
        .header("X-Checksum-Sha1", sums.sha1.to_hex())
        .header("X-Checksum-Md5", sums.md5.to_hex())
        .header("X-Artifactory-Filename", path.name());
    if range.is_some() {
        builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
    }
    let body = if method == Method::HEAD || len == 0 {
        Body::empty()
    } else if size <= crate::small_blobs::MAX_FILE {
        // Small: the whole content, from memory when it was read before.
        let whole = match state.small_blobs.get(&sums.sha256) {
            Some(hit) => hit,
            None => {
                let read = read_whole(&state, &sums.sha256, 0, size).await?;
                state.small_blobs.put(sums.sha256, read.clone());
                read
            }
        };
        Body::from(whole.slice(start as usize..=end as usize))
    } else if len <= WHOLE_BODY_MAX {
        // Read at once: one blocking call, a 500 rather than a cut-off body
        // on failure, and hyper sends head and body in one write.
        Body::from(read_whole(&state, &sums.sha256, start, len).await?)
    } else {
        let blobs = state.blobs.clone();
        let digest = sums.sha256;
        let stream = futures_util::stream::unfold(start, move |at| {
            let blobs = blobs.clone();
            async move {
                if at > end {
                    return None;
                }
                let n = READ_CHUNK.min(end + 1 - at);
                match blobs.read_range(&digest, at, n).await {
                    Ok(bytes) if bytes.is_empty() => Some((
                        Err(std::io::Error::other("blob shorter than its record")),
                        end + 1,
                    )),
                    Ok(bytes) => {
                        let next = at + bytes.len() as u64;
                        Some((Ok(Bytes::from(bytes)), next))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, %digest, "reading blob");
                        Some((Err(std::io::Error::other(e.to_string())), end + 1))
                    }
                }
            }
        });
        Body::from_stream(stream)
    };
    if method == Method::GET {
        state
            .downloads
            .record(&format!("{key}/{path}"), &who.name, now_millis());
    }
    builder
        .body(body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// `len` bytes of a blob from `start`, all of them or a 500.
async fn read_whole(
    state: &AppState,
    digest: &waybill_core::digest::Sha256,
    start: u64,
    len: u64,
) -> Result<Bytes, ApiError> {
    let bytes = state
        .blobs
        .read_range(digest, start, len)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, %digest, "reading blob");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the content could not be read",
            )
        })?;
    if bytes.len() as u64 != len {
        tracing::error!(%digest, "blob shorter than its record");
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the stored content is shorter than its record",
        ));
    }
    Ok(Bytes::from(bytes))
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn delete_path(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((repo, raw_path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (key, path, _) = writable_target(
        &state,
        &who,
        (&repo, &raw_path),
        Action::Delete,
        "delete the repository itself with DELETE /artifactory/api/repositories/{key}",
    )
    .await?;
    let removed = state.store.delete_item(&key, &path).await?;
    if removed.is_empty() {
        return Err(ApiError::not_found(format!(
            "Unable to find item: {key}/{path}"
        )));
    }
    // A file deployed again at the path starts its counts afresh.
    for f in removed.iter().filter(|i| i.kind == ItemKind::File) {
        crate::stats::remove(&state, &format!("{}/{}", f.repo, f.path)).await?;
    }
    collect_garbage(&state, removed.iter().filter_map(Item::sha256)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- storage API -----------------------------------------------------------

async fn storage_root(
    state: State<AppState>,
    Caller(who): Caller,
    Path(repo): Path<String>,
    query: Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    storage_get(
        state,
        Caller(who),
        Path((repo, String::new())),
        query,
        headers,
    )
    .await
}

async fn storage_get(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((repo, raw_path)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (key, path, _) = parse_target(&repo, &raw_path)?;
    state
        .security
        .require_repository(&who, key.as_str(), Action::Read)
        .await?;
    let repository = existing_repo(&state, &key).await?;
    // Each query mode is its own document: an unknown one is refused, never
    // answered with another.
    if let Some(unknown) = query.keys().find(|k| !STORAGE_PARAMS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown storage query '{unknown}'; this server answers ?properties, ?stats, and ?list with deep, depth, listFolders, mdTimestamps and includeRootPath"
        )));
    }
    let base = base_url(&headers);
    let rp = if path.is_root() {
        key.to_string()
    } else {
        format!("{key}/{path}")
    };
    let item = if path.is_root() {
        None
    } else {
        Some(
            state
                .store
                .get_item(&key, &path)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("Unable to find item: {rp}")))?,
        )
    };
    if let Some(wanted) = query.get("properties") {
        let props = item.as_ref().map(|i| i.props.clone()).unwrap_or_default();
        let keys: Vec<&str> = wanted.split(',').filter(|k| !k.is_empty()).collect();
        let selected: BTreeMap<&String, &Vec<String>> = props
            .iter()
            .filter(|(k, _)| keys.is_empty() || keys.contains(&k.as_str()))
            .collect();
        if selected.is_empty() {
            return Err(ApiError::not_found(format!(
                "No properties could be found: {rp}"
            )));
        }
        return Ok(axum::Json(
            json!({"properties": selected, "uri": format!("{base}/api/storage/{rp}")}),
        )
        .into_response());
    }
    if query.contains_key("stats") {
        let Some(file) = item.as_ref().filter(|i| i.kind == ItemKind::File) else {
            return Err(ApiError::bad_request(format!(
                "{rp} is not a file; ?stats counts a file's downloads"
            )));
        };
        let s = crate::stats::get(&state, &format!("{}/{}", file.repo, file.path)).await?;
        return Ok(axum::Json(json!({
            "uri": format!("{base}/api/storage/{rp}"),
            "downloadCount": s.count,
            "lastDownloaded": s.last,
            "lastDownloadedBy": s.last_by,
            "remoteDownloadCount": 0,
            "remoteLastDownloaded": 0,
        }))
        .into_response());
    }
    if query.contains_key("list") {
        let created = item.as_ref().map_or(repository.created, |i| i.created);
        return file_list(
            &state,
            &base,
            &rp,
            (&key, &path),
            item.as_ref(),
            created,
            &query,
        )
        .await;
    }
    match item {
        Some(i) if i.kind == ItemKind::File => {
            Ok(axum::Json(file_info(&base, &i, None)).into_response())
        }
        _ => {
            let listed = state.store.list_children(&key, &path).await?;
            let children_modified = listed.iter().map(|c| c.modified).max();
            let children: Vec<Value> = listed
                .into_iter()
                .map(|c| json!({"uri": format!("/{}", c.path.name()), "folder": c.kind == ItemKind::Folder}))
                .collect();
            let mut v = json!({
                "repo": key.as_str(),
                "path": format!("/{path}"),
                "children": children,
                "uri": format!("{base}/api/storage/{rp}"),
            });
            if let Some(i) = item {
                v["created"] = format_iso(i.created).into();
                v["createdBy"] = i.created_by.into();
                v["lastModified"] = format_iso(i.modified).into();
                v["modifiedBy"] = i.modified_by.into();
                v["lastUpdated"] = format_iso(i.modified).into();
            } else {
                // The repository root: created with the repository, modified
                // when its last direct child was.
                let last = children_modified
                    .unwrap_or(repository.created)
                    .max(repository.created);
                v["created"] = format_iso(repository.created).into();
                v["lastModified"] = format_iso(last).into();
                v["lastUpdated"] = format_iso(last).into();
            }
            Ok(axum::Json(v).into_response())
        }
    }
}

/// The query parameters `GET api/storage` understands.
const STORAGE_PARAMS: [&str; 8] = [
    "properties",
    "stats",
    "list",
    "deep",
    "depth",
    "listFolders",
    "mdTimestamps",
    "includeRootPath",
];

/// Artifactory's File List (`?list&deep=1&depth=N&listFolders=1`): what is
/// below a folder, with URIs relative to it.
async fn file_list(
    state: &AppState,
    base: &str,
    rp: &str,
    (key, path): (&RepoKey, &ItemPath),
    item: Option<&Item>,
    created: u64,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    if item.is_some_and(|i| i.kind == ItemKind::File) {
        return Err(ApiError::bad_request(format!(
            "{rp} is a file; ?list lists folders"
        )));
    }
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "1" || v == "true");
    let deep = flag("deep");
    let folders = flag("listFolders");
    let depth = match query.get("depth") {
        None => None,
        Some(d) => Some(d.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("depth must be a whole number, not '{d}'"))
        })?),
    };
    let below = |i: &Item| -> Option<String> {
        if path.is_root() {
            Some(i.path.to_string())
        } else {
            i.path
                .as_str()
                .strip_prefix(path.as_str())
                .and_then(|r| r.strip_prefix('/'))
                .map(str::to_string)
        }
    };
    let mut files: Vec<(String, &Item)> = Vec::new();
    let all = state
        .store
        .find_items(&waybill_core::aql::ItemHint {
            repo: Some(key.clone()),
            ..Default::default()
        })
        .await?;
    for i in &all {
        let Some(rel) = below(i) else { continue };
        let level = rel.split('/').count() as u64;
        let within = if deep {
            depth.is_none_or(|d| level <= d)
        } else {
            level == 1
        };
        if within && (folders || i.kind == ItemKind::File) {
            files.push((rel, i));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let files: Vec<Value> = files
        .into_iter()
        .map(|(rel, i)| {
            let mut f = json!({
                "uri": format!("/{rel}"),
                "size": if i.kind == ItemKind::File { i.size as i64 } else { -1 },
                "lastModified": format_iso(i.modified),
                "folder": i.kind == ItemKind::Folder,
            });
            if let Some(c) = &i.checksums {
                f["sha1"] = c.sha1.to_hex().into();
                f["sha2"] = c.sha256.to_hex().into();
            }
            f
        })
        .collect();
    Ok(axum::Json(json!({
        "uri": format!("{base}/api/storage/{rp}"),
        "created": format_iso(created),
        "files": files,
    }))
    .into_response())
}

/// `k=v1,v2;k2=v` into properties.
fn parse_props_param(raw: &str) -> Result<Props, ApiError> {
    let mut props = Props::new();
    for pair in raw.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            ApiError::bad_request(format!(
                "property '{pair}' has no '='; use key=value1,value2"
            ))
        })?;
        let values: Vec<String> = v.split(',').map(str::to_string).collect();
        props.insert(k.trim().to_string(), values);
    }
    if props.is_empty() {
        return Err(ApiError::bad_request(
            "no properties given; use ?properties=key=value1,value2;key2=value",
        ));
    }
    validate_props(&props)?;
    Ok(props)
}

fn recursive(query: &HashMap<String, String>) -> Result<bool, ApiError> {
    match query.get("recursive").map(String::as_str) {
        None | Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "recursive must be 0 or 1, not '{other}'"
        ))),
    }
}

async fn storage_put(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((repo, raw_path)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (key, path, _) = parse_target(&repo, &raw_path)?;
    state
        .security
        .require_repository(&who, key.as_str(), Action::Write)
        .await?;
    let raw = query
        .get("properties")
        .ok_or_else(|| ApiError::bad_request("missing ?properties="))?;
    let props = parse_props_param(raw)?;
    let recursive = recursive(&query)?;
    edit_props(&state, (&key, &path), recursive, props, Vec::new()).await
}

async fn storage_delete(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((repo, raw_path)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (key, path, _) = parse_target(&repo, &raw_path)?;
    state
        .security
        .require_repository(&who, key.as_str(), Action::Write)
        .await?;
    let raw = query
        .get("properties")
        .ok_or_else(|| ApiError::bad_request("missing ?properties="))?;
    let keys: Vec<String> = raw
        .split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        return Err(ApiError::bad_request(
            "no property keys given; use ?properties=key1,key2",
        ));
    }
    let recursive = recursive(&query)?;
    edit_props(&state, (&key, &path), recursive, Props::new(), keys).await
}

/// `PATCH /artifactory/api/metadata/{repo}/{path}` with `{"props": {key:
/// "v" | ["v1", "v2"] | null}}`: sets each key to its values and removes
/// the keys given `null`, on the item alone, or on everything below it with
/// `?recursiveProperties=1`. This is how dohq-artifactory edits properties.
async fn patch_metadata(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((repo, raw_path)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<serde_json::Value>,
) -> Result<Response, ApiError> {
    let (key, path, _) = parse_target(&repo, &raw_path)?;
    state
        .security
        .require_repository(&who, key.as_str(), Action::Write)
        .await?;
    let recursive = match query.get("recursiveProperties").map(String::as_str) {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "recursiveProperties must be 0 or 1, not '{other}'"
            )));
        }
    };
    let Some(wanted) = body.get("props").and_then(|p| p.as_object()) else {
        return Err(ApiError::bad_request(
            "the body must be {\"props\": {key: value, ...}}; a null value removes the key",
        ));
    };
    let mut set = Props::new();
    let mut remove = Vec::new();
    for (k, v) in wanted {
        match v {
            serde_json::Value::Null => remove.push(k.clone()),
            serde_json::Value::String(one) => {
                set.insert(k.clone(), vec![one.clone()]);
            }
            serde_json::Value::Array(many) => {
                let values = many
                    .iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<Vec<String>>>()
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("props.{k}: values must be strings"))
                    })?;
                set.insert(k.clone(), values);
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "props.{k} must be a string, an array of strings or null, not {other}"
                )));
            }
        }
    }
    validate_props(&set)?;
    edit_props(&state, (&key, &path), recursive, set, remove).await
}

/// Sets `set` and removes `remove` on an item (and everything below it
/// when `recursive`), in one store transaction: the one property edit
/// behind the storage API's PUT and DELETE and the metadata PATCH.
async fn edit_props(
    state: &AppState,
    (key, path): (&RepoKey, &ItemPath),
    recursive: bool,
    set: Props,
    remove: Vec<String>,
) -> Result<Response, ApiError> {
    state
        .store
        .update_props(
            key,
            path,
            recursive,
            Box::new(move |p| {
                for (k, v) in &set {
                    p.insert(k.clone(), v.clone());
                }
                for k in &remove {
                    p.remove(k);
                }
            }),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- builds ------------------------------------------------------------

#[derive(serde::Deserialize)]
struct BuildInfoDto {
    name: String,
    number: String,
    #[serde(default)]
    started: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    modules: Vec<ModuleDto>,
}

/// Build-info writers send `null` for an empty list (`"modules": null`).
fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    Ok(<Option<Vec<T>> as serde::Deserialize>::deserialize(d)?.unwrap_or_default())
}

#[derive(serde::Deserialize)]
struct ModuleDto {
    #[serde(default)]
    id: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    artifacts: Vec<BuildFileDto>,
    #[serde(default, deserialize_with = "null_as_empty")]
    dependencies: Vec<BuildFileDto>,
}

#[derive(serde::Deserialize)]
struct BuildFileDto {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "type")]
    file_type: String,
    sha256: Option<String>,
    sha1: Option<String>,
    md5: Option<String>,
    path: Option<String>,
}

fn opt_digest<const N: usize>(
    v: &Option<String>,
    what: &str,
) -> Result<Option<waybill_core::digest::HexDigest<N>>, ApiError> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            waybill_core::digest::HexDigest::<N>::parse_hex(s)
                .map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
        })
        .transpose()
}

fn build_file(f: BuildFileDto, at: &str) -> Result<BuildFile, ApiError> {
    Ok(BuildFile {
        name: f.name.or(f.id).unwrap_or_default(),
        file_type: f.file_type,
        sha256: opt_digest::<32>(&f.sha256, at)?,
        sha1: opt_digest::<20>(&f.sha1, at)?,
        md5: opt_digest::<16>(&f.md5, at)?,
        path: f.path,
    })
}

fn build_file_json(f: &BuildFile) -> Value {
    json!({
        "name": f.name,
        "type": f.file_type,
        "sha256": f.sha256.map(|d| d.to_hex()),
        "sha1": f.sha1.map(|d| d.to_hex()),
        "md5": f.md5.map(|d| d.to_hex()),
        "path": f.path,
    })
}

async fn put_build(
    State(state): State<AppState>,
    Caller(who): Caller,
    Json(dto): Json<BuildInfoDto>,
) -> Result<Response, ApiError> {
    state
        .security
        .require_repository(&who, BUILD_INFO, Action::Write)
        .await?;
    for (field, v) in [("name", &dto.name), ("number", &dto.number)] {
        if v.is_empty() || v.chars().any(|c| c.is_control() || c == '/') {
            return Err(ApiError::bad_request(format!(
                "build {field} must be non-empty, without '/' or control characters"
            )));
        }
    }
    let mut modules = Vec::new();
    for (mi, m) in dto.modules.into_iter().enumerate() {
        let mut artifacts = Vec::new();
        for (i, f) in m.artifacts.into_iter().enumerate() {
            artifacts.push(build_file(f, &format!("modules[{mi}].artifacts[{i}]"))?);
        }
        let mut dependencies = Vec::new();
        for (i, f) in m.dependencies.into_iter().enumerate() {
            dependencies.push(build_file(f, &format!("modules[{mi}].dependencies[{i}]"))?);
        }
        modules.push(BuildModule {
            id: m.id,
            artifacts,
            dependencies,
        });
    }
    let build = Build {
        name: dto.name,
        number: dto.number,
        started: dto.started,
        modules,
        created: now_millis(),
        created_by: who.name,
    };
    state.store.put_build(build).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn build_json(b: &Build) -> Value {
    json!({
        "name": b.name,
        "number": b.number,
        "started": b.started,
        "modules": b.modules.iter().map(|m| json!({
            "id": m.id,
            "artifacts": m.artifacts.iter().map(build_file_json).collect::<Vec<_>>(),
            "dependencies": m.dependencies.iter().map(build_file_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

async fn get_build(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((name, number)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state
        .security
        .require_repository(&who, BUILD_INFO, Action::Read)
        .await?;
    let build = state
        .store
        .get_build(&name, &number)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("build {name}/{number} does not exist")))?;
    Ok(axum::Json(json!({
        "buildInfo": build_json(&build),
        "uri": format!("{}/api/build/{name}/{number}", base_url(&headers)),
    }))
    .into_response())
}

/// `GET /artifactory/api/build`: every build name, with its latest start.
async fn list_builds(
    State(state): State<AppState>,
    Caller(who): Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state
        .security
        .require_repository(&who, BUILD_INFO, Action::Read)
        .await?;
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    for b in state.store.list_builds(None).await? {
        // Oldest first per name: the last seen is the latest run.
        latest.insert(b.name, b.started);
    }
    let builds: Vec<Value> = latest
        .iter()
        .map(|(name, started)| json!({"uri": format!("/{name}"), "lastStarted": started}))
        .collect();
    Ok(axum::Json(json!({
        "uri": format!("{}/api/build", base_url(&headers)),
        "builds": builds,
    }))
    .into_response())
}

/// `GET /artifactory/api/build/{name}`: the runs of one build; 404 when
/// there are none.
async fn build_runs(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state
        .security
        .require_repository(&who, BUILD_INFO, Action::Read)
        .await?;
    let runs = state.store.list_builds(Some(&name)).await?;
    if runs.is_empty() {
        return Err(ApiError::not_found(format!(
            "No build was found for build name: {name}"
        )));
    }
    let numbers: Vec<Value> = runs
        .iter()
        .map(|b| json!({"uri": format!("/{}", b.number), "started": b.started}))
        .collect();
    Ok(axum::Json(json!({
        "uri": format!("{}/api/build/{name}", base_url(&headers)),
        "buildsNumbers": numbers,
    }))
    .into_response())
}

// ---- AQL and system ----------------------------------------------------

fn field_json(f: Field, item: &Item) -> Value {
    match f.value(item) {
        FieldValue::Str(Some(s)) => Value::String(s),
        FieldValue::Str(None) => Value::Null,
        FieldValue::Int(n) => json!(n),
        FieldValue::Date(d) => Value::String(format_iso(d)),
    }
}

fn row(query: &AqlQuery, item: &Item) -> Value {
    let mut m = Map::new();
    for f in &query.include.fields {
        m.insert(f.name().into(), field_json(*f, item));
    }
    if query.include.wants_props() {
        let props: Vec<Value> = item
            .props
            .iter()
            .filter(|(k, _)| query.include.all_props || query.include.props.contains(k))
            .flat_map(|(k, vs)| vs.iter().map(move |v| json!({"key": k, "value": v})))
            .collect();
        m.insert("properties".into(), Value::Array(props));
    }
    Value::Object(m)
}

async fn search_aql(
    State(state): State<AppState>,
    Caller(who): Caller,
    body: String,
) -> Result<Response, ApiError> {
    let query = AqlQuery::parse_at(&body, now_millis())?;
    // Results only from repositories the caller may read.
    let readable = state.security.readable_repositories(&who).await?;
    let results: Vec<Value> = match query.domain {
        Domain::Items => {
            aql::run_items_filtered(state.store.as_ref(), &query, |i| readable(i.repo.as_str()))
                .await?
                .iter()
                .map(|i| row(&query, i))
                .collect()
        }
        Domain::Builds => match aql::run_build(state.store.as_ref(), &query).await? {
            None => vec![],
            Some((build, items)) => {
                let items_query = AqlQuery::parse("items.find()")?;
                let items: Vec<Value> = items
                    .iter()
                    .filter(|i| readable(i.repo.as_str()))
                    .map(|i| row(&items_query, i))
                    .collect();
                vec![
                    json!({"build.name": build.name, "build.number": build.number, "build.started": build.started, "items": items}),
                ]
            }
        },
    };
    Ok(aql_response(results, &query))
}

fn aql_response(results: Vec<Value>, query: &AqlQuery) -> Response {
    let mut range = json!({
        "start_pos": query.offset,
        "end_pos": query.offset + results.len() as u64,
        "total": results.len(),
    });
    if let Some(limit) = query.limit {
        range["limit"] = json!(limit);
    }
    axum::Json(json!({"results": results, "range": range})).into_response()
}

async fn version(_who: Caller) -> Response {
    axum::Json(json!({
        "version": ARTIFACTORY_VERSION,
        "revision": env!("CARGO_PKG_VERSION"),
        "addons": [],
        "license": "waybill",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_hosts_reach_download_uris() {
        for ok in [
            "example.com",
            "127.0.0.1:8082",
            "[::1]:8082",
            "[::1]",
            "edge-1.local",
        ] {
            assert!(plain_host(ok), "{ok}");
        }
        for bad in [
            "evil.com/x?",
            "a@b",
            "<script>",
            "h:port",
            "h:",
            "",
            "a b",
            "[::1]x",
            "h:123456",
        ] {
            assert!(!plain_host(bad), "{bad}");
        }
    }
}
