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
use axum::body::Body;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use waybill_app::source::{DeployRequest, Found, NewRepository, PropsEdit, Source, StorageTarget};
use waybill_core::aql::{Field, FieldValue, Query as AqlQuery};
use waybill_core::artifact::{
    Build, BuildFile, BuildModule, Item, ItemKind, ItemPath, RepoKey, validate_props,
};
use waybill_core::bundle::Props;
use waybill_core::digest::Checksums;
use waybill_core::store::Expected;
use waybill_core::time::{format_http_date, format_iso};

use crate::Caller;
use crate::{ApiError, Json};

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

/// Bodies up to this size are read before answering, not streamed.
const WHOLE_BODY_MAX: u64 = 256 << 10;

/// Routes that need authentication.
pub fn routes<S>(mode: Mode) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Source: FromRef<S>,
{
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
pub fn anonymous_routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
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
    State(source): State<Source>,
    Caller(who): Caller,
    Path(key): Path<String>,
    Json(cfg): Json<RepoConfig>,
) -> Result<Response, ApiError> {
    let req = NewRepository {
        body_key: cfg.key,
        rclass: cfg.rclass,
        package_type: cfg.package_type,
        description: cfg.description,
    };
    let key = source.create_repository(&who, &key, req).await?;
    Ok((
        StatusCode::OK,
        format!("Successfully created repository '{key}'"),
    )
        .into_response())
}

async fn get_repository(
    State(source): State<Source>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let repo = source.repository(&who, &key).await?;
    Ok(axum::Json(json!({
        "key": repo.key.as_str(),
        "rclass": "local",
        "packageType": repo.package_type,
        "description": repo.description,
    }))
    .into_response())
}

async fn list_repositories(
    State(source): State<Source>,
    Caller(who): Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let base = base_url(&headers);
    let list: Vec<Value> = source
        .list_repositories(&who)
        .await?
        .into_iter()
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
    State(source): State<Source>,
    Caller(who): Caller,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let key = source.delete_repository(&who, &key).await?;
    Ok((
        StatusCode::OK,
        format!("Repository '{key}' and all its content have been removed successfully."),
    )
        .into_response())
}

// ---- deploy, download, delete ------------------------------------------

async fn deploy(
    State(source): State<Source>,
    Caller(who): Caller,
    Path((repo, raw_path)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (key, path, props) = parse_target(&repo, &raw_path)?;
    let req = DeployRequest {
        expected: Expected {
            sha256: header_digest(&headers, "x-checksum-sha256")?,
            sha1: header_digest::<20>(&headers, "x-checksum-sha1")?,
            md5: header_digest::<16>(&headers, "x-checksum-md5")?,
        },
        checksum_deploy: headers
            .get("x-checksum-deploy")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        folder: raw_path.split(';').next().unwrap_or("").ends_with('/'),
        props,
    };
    let body = body
        .into_data_stream()
        .map(|chunk| chunk.map_err(crate::server::body_error));
    let deployed = source.deploy(&who, (&key, &path), req, body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(file_info(
            &base_url(&headers),
            &deployed.item,
            deployed.original.as_ref(),
        )),
    )
        .into_response())
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
    State(source): State<Source>,
    Caller(who): Caller,
    method: Method,
    Path((repo, raw_path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (key, path, _) = parse_target(&repo, &raw_path)?;
    let (item, sums) = source.file(&who, (&key, &path)).await?;
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
    } else if Source::is_small(size) {
        // Small: the whole content, from memory when it was read before.
        let whole = source.small_content(&sums.sha256, size).await?;
        Body::from(whole.slice(start as usize..=end as usize))
    } else if len <= WHOLE_BODY_MAX {
        // Read at once: one blocking call, a 500 rather than a cut-off body
        // on failure, and hyper sends head and body in one write.
        Body::from(source.read_whole(&sums.sha256, start, len).await?)
    } else {
        Body::from_stream(source.stream(sums.sha256, start, end))
    };
    if method == Method::GET {
        source.record_download(&item, &who);
    }
    builder
        .body(body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn delete_path(
    State(source): State<Source>,
    Caller(who): Caller,
    Path((repo, raw_path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (key, path, _) = parse_target(&repo, &raw_path)?;
    source.delete(&who, (&key, &path)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- storage API -----------------------------------------------------------

async fn storage_root(
    source: State<Source>,
    Caller(who): Caller,
    Path(repo): Path<String>,
    query: Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    storage_get(
        source,
        Caller(who),
        Path((repo, String::new())),
        query,
        headers,
    )
    .await
}

async fn storage_get(
    State(source): State<Source>,
    Caller(who): Caller,
    Path((repo, raw_path)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (key, path, _) = parse_target(&repo, &raw_path)?;
    // Each query mode is its own document: an unknown one is refused, never
    // answered with another.
    let known_modes = || match query.keys().find(|k| !STORAGE_PARAMS.contains(&k.as_str())) {
        Some(unknown) => Err(waybill_app::Error::invalid(format!(
            "unknown storage query '{unknown}'; this server answers ?properties, ?stats, and ?list with deep, depth, listFolders, mdTimestamps and includeRootPath"
        ))),
        None => Ok(()),
    };
    let target = source.storage(&who, (&key, &path), known_modes).await?;
    let base = base_url(&headers);
    let rp = target.repo_path();
    let uri = format!("{base}/api/storage/{rp}");
    if let Some(wanted) = query.get("properties") {
        let props = target
            .item
            .as_ref()
            .map(|i| i.props.clone())
            .unwrap_or_default();
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
        return Ok(axum::Json(json!({"properties": selected, "uri": uri})).into_response());
    }
    if query.contains_key("stats") {
        let s = source.stats(&target).await?;
        return Ok(axum::Json(json!({
            "uri": uri,
            "downloadCount": s.count,
            "lastDownloaded": s.last,
            "lastDownloadedBy": s.last_by,
            "remoteDownloadCount": 0,
            "remoteLastDownloaded": 0,
        }))
        .into_response());
    }
    if query.contains_key("list") {
        return file_list(&source, &uri, &target, &query).await;
    }
    let repository = &target.repository;
    match target.item {
        Some(ref i) if i.kind == ItemKind::File => {
            Ok(axum::Json(file_info(&base, i, None)).into_response())
        }
        _ => {
            let listed = source.children(&target).await?;
            let children_modified = listed.iter().map(|c| c.modified).max();
            let children: Vec<Value> = listed
                .into_iter()
                .map(|c| json!({"uri": format!("/{}", c.path.name()), "folder": c.kind == ItemKind::Folder}))
                .collect();
            let mut v = json!({
                "repo": repository.key.as_str(),
                "path": format!("/{}", target.path),
                "children": children,
                "uri": uri,
            });
            if let Some(i) = target.item {
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
    source: &Source,
    uri: &str,
    target: &StorageTarget,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "1" || v == "true");
    let depth = match query.get("depth") {
        None => None,
        Some(d) => Some(d.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("depth must be a whole number, not '{d}'"))
        })?),
    };
    let created = target
        .item
        .as_ref()
        .map_or(target.repository.created, |i| i.created);
    let files: Vec<Value> = source
        .below(target, flag("deep"), depth, flag("listFolders"))
        .await?
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
        "uri": uri,
        "created": format_iso(created),
        "files": files,
    }))
    .into_response())
}

/// `k=v1,v2;k2=v` into properties.
fn parse_props_param(raw: &str) -> Result<Props, waybill_app::Error> {
    let mut props = Props::new();
    for pair in raw.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            waybill_app::Error::invalid(format!(
                "property '{pair}' has no '='; use key=value1,value2"
            ))
        })?;
        let values: Vec<String> = v.split(',').map(str::to_string).collect();
        props.insert(k.trim().to_string(), values);
    }
    if props.is_empty() {
        return Err(waybill_app::Error::invalid(
            "no properties given; use ?properties=key=value1,value2;key2=value",
        ));
    }
    validate_props(&props)?;
    Ok(props)
}

/// The `?properties=` parameter that property edits require.
fn properties_param(query: &HashMap<String, String>) -> Result<&String, waybill_app::Error> {
    query
        .get("properties")
        .ok_or_else(|| waybill_app::Error::invalid("missing ?properties="))
}

fn recursive(query: &HashMap<String, String>) -> Result<bool, waybill_app::Error> {
    match query.get("recursive").map(String::as_str) {
        None | Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(other) => Err(waybill_app::Error::invalid(format!(
            "recursive must be 0 or 1, not '{other}'"
        ))),
    }
}

async fn storage_put(
    State(source): State<Source>,
    Caller(who): Caller,
    Path((repo, raw_path)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (key, path, _) = parse_target(&repo, &raw_path)?;
    let edit = || {
        let raw = properties_param(&query)?;
        Ok(PropsEdit {
            set: parse_props_param(raw)?,
            recursive: recursive(&query)?,
            remove: Vec::new(),
        })
    };
    source.edit_props(&who, (&key, &path), edit).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn storage_delete(
    State(source): State<Source>,
    Caller(who): Caller,
    Path((repo, raw_path)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (key, path, _) = parse_target(&repo, &raw_path)?;
    let edit = || {
        let raw = properties_param(&query)?;
        let keys: Vec<String> = raw
            .split(',')
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
        if keys.is_empty() {
            return Err(waybill_app::Error::invalid(
                "no property keys given; use ?properties=key1,key2",
            ));
        }
        Ok(PropsEdit {
            recursive: recursive(&query)?,
            set: Props::new(),
            remove: keys,
        })
    };
    source.edit_props(&who, (&key, &path), edit).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PATCH /artifactory/api/metadata/{repo}/{path}` with `{"props": {key:
/// "v" | ["v1", "v2"] | null}}`: sets each key to its values and removes
/// the keys given `null`, on the item alone, or on everything below it with
/// `?recursiveProperties=1`. This is how dohq-artifactory edits properties.
async fn patch_metadata(
    State(source): State<Source>,
    Caller(who): Caller,
    Path((repo, raw_path)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<serde_json::Value>,
) -> Result<Response, ApiError> {
    let (key, path, _) = parse_target(&repo, &raw_path)?;
    let edit = || {
        let recursive = match query.get("recursiveProperties").map(String::as_str) {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => {
                return Err(waybill_app::Error::invalid(format!(
                    "recursiveProperties must be 0 or 1, not '{other}'"
                )));
            }
        };
        let Some(wanted) = body.get("props").and_then(|p| p.as_object()) else {
            return Err(waybill_app::Error::invalid(
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
                            waybill_app::Error::invalid(format!(
                                "props.{k}: values must be strings"
                            ))
                        })?;
                    set.insert(k.clone(), values);
                }
                other => {
                    return Err(waybill_app::Error::invalid(format!(
                        "props.{k} must be a string, an array of strings or null, not {other}"
                    )));
                }
            }
        }
        Ok(PropsEdit {
            recursive,
            set,
            remove,
        })
    };
    source.edit_props(&who, (&key, &path), edit).await?;
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
) -> Result<Option<waybill_core::digest::HexDigest<N>>, waybill_app::Error> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            waybill_core::digest::HexDigest::<N>::parse_hex(s)
                .map_err(|e| waybill_app::Error::invalid(format!("{what}: {e}")))
        })
        .transpose()
}

fn build_file(f: BuildFileDto, at: &str) -> Result<BuildFile, waybill_app::Error> {
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
    State(source): State<Source>,
    Caller(who): Caller,
    Json(dto): Json<BuildInfoDto>,
) -> Result<Response, ApiError> {
    let parse = || {
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
        Ok(Build {
            name: dto.name,
            number: dto.number,
            started: dto.started,
            modules,
            created: 0,
            created_by: String::new(),
        })
    };
    source.put_build(&who, parse).await?;
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
    State(source): State<Source>,
    Caller(who): Caller,
    Path((name, number)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let build = source.build(&who, &name, &number).await?;
    Ok(axum::Json(json!({
        "buildInfo": build_json(&build),
        "uri": format!("{}/api/build/{name}/{number}", base_url(&headers)),
    }))
    .into_response())
}

/// `GET /artifactory/api/build`: every build name, with its latest start.
async fn list_builds(
    State(source): State<Source>,
    Caller(who): Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let builds: Vec<Value> = source
        .builds(&who)
        .await?
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
    State(source): State<Source>,
    Caller(who): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let numbers: Vec<Value> = source
        .build_runs(&who, &name)
        .await?
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
    State(source): State<Source>,
    Caller(who): Caller,
    body: String,
) -> Result<Response, ApiError> {
    let (query, found) = source.search(&who, &body).await?;
    let results: Vec<Value> = match found {
        Found::Items(items) => items.iter().map(|i| row(&query, i)).collect(),
        Found::Build(None) => vec![],
        Found::Build(Some((build, items))) => {
            let items_query = AqlQuery::parse("items.find()")?;
            let items: Vec<Value> = items.iter().map(|i| row(&items_query, i)).collect();
            vec![
                json!({"build.name": build.name, "build.number": build.number, "build.started": build.started, "items": items}),
            ]
        }
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
