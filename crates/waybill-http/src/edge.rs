//! The edge node: the read-only source API for everyone, plus an internal
//! distribution API under `/waybill/api/v1/edge` that only its paired hub
//! may call (`Authorization: Bearer <pairing token>`, compared in constant time).
//!
//! A delivery is three calls:
//! 1. `prepare`: verify the bundle's OpenPGP signature with the hub's
//!    public key and answer which blobs are missing;
//! 2. `PUT blobs/{sha256}`: receive a missing blob, verified as it arrives;
//! 3. `commit`: verify the signature and every blob again, make all the
//!    artifacts visible in one store transaction, record the bundle, and
//!    answer with a receipt: an HMAC of the committed manifest's digest
//!    under the pairing token, which the hub checks before it reports
//!    the site Completed.
//!
//! Only the signed payload is trusted: artifact paths, sizes, checksums and
//! properties are read from it, never from the rest of the request.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use waybill_core::artifact::{Item, ItemKind, ItemPath, RepoKey, Repository};
use waybill_core::auth::{Secret, constant_time_eq};
use waybill_core::bundle::{BundleArtifact, Props, ReleaseBundleVersion};
use waybill_core::digest::{Checksums, Ingest, Md5, Sha1, Sha256};
use waybill_core::gather::check_target;
use waybill_core::name::{BundleName, BundleVersion};
use waybill_core::signing::{BundleSignature, JwsAlg};
use waybill_core::state::VersionState;
use waybill_core::store::Expected;

use crate::{ApiError, AppState, Json};

/// Where the hub's public signing key is kept on an edge.
const HUB_KEY: &str = "edge.hub_public_key";
/// Prefix of the settings that remember a received blob's SHA-1 and MD5.
const SUMS: &str = "edge.checksums.";

/// What an edge is.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    /// Site name, matched by `site_name` rules.
    pub site_name: String,
    /// City, matched by `city_name` rules.
    pub city: String,
    /// ISO country code, matched by `country_codes` rules.
    pub country: String,
    /// The secret the hub must present.
    pub pairing_token: Secret,
}

#[derive(Clone)]
struct EdgeCtx {
    app: AppState,
    cfg: Arc<EdgeConfig>,
}

/// The internal routes, already bound to their state.
pub fn routes(app: AppState, cfg: EdgeConfig) -> Router {
    let ctx = EdgeCtx {
        app,
        cfg: Arc::new(cfg),
    };
    Router::new()
        .route("/waybill/api/v1/edge/info", get(info))
        .route("/waybill/api/v1/edge/key", put(install_key))
        .route("/waybill/api/v1/edge/prepare", post(prepare))
        .route("/waybill/api/v1/edge/blobs/{sha256}", put(receive_blob))
        .route("/waybill/api/v1/edge/commit", post(commit))
        .route("/waybill/api/v1/edge/delete", post(remove))
        // Signed payloads of large bundles exceed axum's 2 MiB default.
        .layer(axum::extract::DefaultBodyLimit::max(256 << 20))
        .layer(middleware::from_fn_with_state(ctx.clone(), require_hub))
        .with_state(ctx)
}

async fn require_hub(
    State(ctx): State<EdgeCtx>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if presented.is_empty()
        || !constant_time_eq(
            presented.as_bytes(),
            ctx.cfg.pairing_token.expose().as_bytes(),
        )
    {
        return Err(ApiError::unauthorized(
            "only this edge's paired hub may call its distribution API",
        ));
    }
    Ok(next.run(req).await)
}

async fn info(State(ctx): State<EdgeCtx>) -> Response {
    axum::Json(json!({
        "service_id": ctx.app.service_id.as_str(),
        "site_name": ctx.cfg.site_name,
        "city_name": ctx.cfg.city,
        "country_code": ctx.cfg.country,
        "type": "edge",
    }))
    .into_response()
}

#[derive(Deserialize)]
struct KeyBody {
    public_key: String,
}

async fn install_key(
    State(ctx): State<EdgeCtx>,
    Json(body): Json<KeyBody>,
) -> Result<Response, ApiError> {
    let key = body.public_key.clone();
    let info = tokio::task::spawn_blocking(move || waybill_pgp::parse_public(&key).map(|(_, i)| i))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "key check failed"))?
        .map_err(waybill_app::Error::from)?;
    ctx.app.store.put_setting(HUB_KEY, &body.public_key).await?;
    tracing::info!(key_id = %info.key_id, "hub signing key installed");
    Ok(axum::Json(json!({"key_id": info.key_id})).into_response())
}

/// A signed bundle as the hub sends it.
#[derive(Deserialize)]
struct SignedBundle {
    name: String,
    version: String,
    payload: String,
    pgp_signature: String,
    #[serde(default)]
    auto_create_missing_repositories: bool,
}

#[derive(Deserialize)]
struct PayloadArtifact {
    checksum: String,
    size: u64,
    source_repo_path: String,
    target_repo_path: String,
    #[serde(default)]
    props: Vec<PayloadProp>,
}

#[derive(Deserialize)]
struct PayloadProp {
    key: String,
    values: Vec<String>,
}

#[derive(Deserialize)]
struct Payload {
    name: String,
    version: String,
    artifacts: Vec<PayloadArtifact>,
}

/// An artifact as the signed payload describes it.
struct Wanted {
    sha256: Sha256,
    size: u64,
    source: String,
    repo: RepoKey,
    path: ItemPath,
    props: Props,
}

/// Verifies the signature with the hub's key and reads the signed payload.
async fn verified(ctx: &EdgeCtx, b: &SignedBundle) -> Result<Vec<Wanted>, ApiError> {
    let key = ctx.app.store.get_setting(HUB_KEY).await?.ok_or_else(|| {
        ApiError::bad_request(
            "this edge holds no signing key from its hub; propagate the key to it",
        )
    })?;
    let (payload, sig) = (b.payload.clone(), b.pgp_signature.clone());
    tokio::task::spawn_blocking(move || {
        waybill_pgp::verify_detached(&key, payload.as_bytes(), &sig)
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "verification failed"))?
    .map_err(|e| {
        ApiError::bad_request(format!(
            "the bundle's signature does not verify with the hub's key: {e}"
        ))
    })?;
    let p: Payload = serde_json::from_str(&b.payload)
        .map_err(|e| ApiError::bad_request(format!("signed payload: {e}")))?;
    if p.name != b.name || p.version != b.version {
        return Err(ApiError::bad_request(
            "the signed payload names another bundle version",
        ));
    }
    p.artifacts
        .into_iter()
        .map(|a| {
            let (repo, path) = check_target(&a.target_repo_path).map_err(|why| {
                ApiError::bad_request(format!("artifact '{}' maps to {why}", a.source_repo_path))
            })?;
            Ok(Wanted {
                sha256: Sha256::parse_hex(&a.checksum)?,
                size: a.size,
                source: a.source_repo_path,
                repo,
                path,
                props: a.props.into_iter().map(|p| (p.key, p.values)).collect(),
            })
        })
        .collect()
}

async fn prepare(
    State(ctx): State<EdgeCtx>,
    Json(b): Json<SignedBundle>,
) -> Result<Response, ApiError> {
    let wanted = verified(&ctx, &b).await?;
    let held = held_blobs(&ctx, &wanted).await?;
    let mut missing: Vec<String> = Vec::new();
    for w in &wanted {
        let hex = w.sha256.to_hex();
        if !held.contains_key(&w.sha256) && !missing.contains(&hex) {
            missing.push(hex);
        }
    }
    Ok(axum::Json(json!({"missing": missing, "files": wanted.len()})).into_response())
}

async fn receive_blob(
    State(ctx): State<EdgeCtx>,
    Path(sha256): Path<String>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let expected = Sha256::parse_hex(&sha256)?;
    // The hub's SHA-1 and MD5 for this content, when it sends them: the
    // SHA-256 check below proves these are its bytes, so only SHA-256 is
    // computed here (see `Ingest::vouched`).
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let ingest = match (header("x-checksum-sha1"), header("x-checksum-md5")) {
        (Some(sha1), Some(md5)) => Ingest::vouched(Sha1::parse_hex(sha1)?, Md5::parse_hex(md5)?),
        _ => Ingest::new(),
    };
    let mut writer = ctx.app.blobs.writer_with(ingest).await?;
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the blob failed: {e}")))?;
        buf.extend_from_slice(&chunk);
        if buf.len() >= 1 << 20 {
            writer.write(&buf).await?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        writer.write(&buf).await?;
    }
    let info = writer
        .commit(Expected::sha256(expected))
        .await
        .map_err(|e| match e.kind() {
            waybill_core::StoreErrorKind::Corrupt => {
                ApiError::new(StatusCode::CONFLICT, e.detail().to_string())
            }
            _ => e.into(),
        })?;
    let sums = format!("{} {}", info.checksums.sha1, info.checksums.md5);
    ctx.app
        .store
        .put_setting(&format!("{SUMS}{}", info.digest), &sums)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"sha256": info.digest.to_hex(), "size": info.size})),
    )
        .into_response())
}

/// The blobs of `wanted` this edge holds whole, with their full checksums.
///
/// A blob counts as held only with its checksums recorded: a receipt cut
/// short between the two (the hub died mid-request) is sent again. Blobs
/// are stated a few at a time and their checksums read in one batch
/// (`get_settings`), so the cost follows the bundle, not everything the edge
/// holds: a re-distribution of unchanged content is exactly this work.
async fn held_blobs(
    ctx: &EdgeCtx,
    wanted: &[Wanted],
) -> Result<HashMap<Sha256, Checksums>, ApiError> {
    let mut unique: Vec<(Sha256, u64)> = wanted.iter().map(|w| (w.sha256, w.size)).collect();
    unique.sort_unstable_by_key(|u| u.0);
    unique.dedup();
    let stats = unique.into_iter().map(|(digest, size)| async move {
        Ok::<_, ApiError>((ctx.app.blobs.stat(&digest).await? == Some(size)).then_some(digest))
    });
    let whole: Vec<Sha256> = futures_util::stream::iter(stats)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .filter_map(Result::transpose)
        .collect::<Result<_, _>>()?;
    let keys: Vec<String> = whole.iter().map(|d| format!("{SUMS}{d}")).collect();
    let recorded = ctx.app.store.get_settings(&keys).await?;
    let mut held = HashMap::new();
    for (digest, raw) in whole.into_iter().zip(recorded) {
        let sums = match raw.as_deref().and_then(|raw| raw.split_once(' ')) {
            Some((sha1, md5)) => Some(Checksums {
                sha256: digest,
                sha1: Sha1::parse_hex(sha1)?,
                md5: Md5::parse_hex(md5)?,
            }),
            None => checksums_of(ctx, digest).await?,
        };
        if let Some(sums) = sums {
            held.insert(digest, sums);
        }
    }
    Ok(held)
}

/// The full checksums of a stored blob: remembered on receipt, or taken from
/// a file that already holds the content.
async fn checksums_of(ctx: &EdgeCtx, sha256: Sha256) -> Result<Option<Checksums>, ApiError> {
    if let Some(raw) = ctx
        .app
        .store
        .get_setting(&format!("{SUMS}{sha256}"))
        .await?
        && let Some((sha1, md5)) = raw.split_once(' ')
    {
        return Ok(Some(Checksums {
            sha256,
            sha1: waybill_core::digest::Sha1::parse_hex(sha1)?,
            md5: waybill_core::digest::Md5::parse_hex(md5)?,
        }));
    }
    let known = ctx
        .app
        .store
        .find_items(&waybill_core::aql::ItemHint {
            sha256: Some(sha256),
            ..Default::default()
        })
        .await?;
    Ok(known.into_iter().find_map(|i| i.checksums))
}

async fn commit(
    State(ctx): State<EdgeCtx>,
    Json(b): Json<SignedBundle>,
) -> Result<Response, ApiError> {
    let wanted = verified(&ctx, &b).await?;
    let now = crate::now_millis();
    // Target repositories: create them when allowed, else refuse by name.
    let mut repos: Vec<RepoKey> = wanted.iter().map(|w| w.repo.clone()).collect();
    repos.sort();
    repos.dedup();
    for repo in &repos {
        if ctx.app.store.get_repository(repo).await?.is_some() {
            continue;
        }
        if !b.auto_create_missing_repositories {
            return Err(ApiError::bad_request(format!(
                "repository '{repo}' does not exist on edge '{}'; create it there or distribute with auto_create_missing_repositories",
                ctx.cfg.site_name
            )));
        }
        let r = Repository {
            key: repo.clone(),
            package_type: "generic".into(),
            description: "created by distribution".into(),
            created: now,
            read_only: false,
        };
        if let Err(e) = ctx.app.store.create_repository(r).await
            && e.kind() != waybill_core::StoreErrorKind::Conflict
        {
            return Err(e.into());
        }
    }
    // Every blob again, under the content lock so none is collected meanwhile.
    let _content = ctx.app.source.content_lock().read().await;
    let held = held_blobs(&ctx, &wanted).await?;
    let mut items = Vec::with_capacity(wanted.len());
    for w in &wanted {
        let sums = *held.get(&w.sha256).ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "content of '{}' ({}) has not arrived whole, or its checksums are unknown; send the blob again",
                    w.source, w.sha256
                ),
            )
        })?;
        items.push(Item {
            repo: w.repo.clone(),
            path: w.path.clone(),
            kind: ItemKind::File,
            size: w.size,
            checksums: Some(sums),
            created: now,
            modified: now,
            created_by: "distribution".into(),
            modified_by: "distribution".into(),
            props: w.props.clone(),
        });
    }
    let replaced = ctx
        .app
        .store
        .commit_files(items)
        .await
        .map_err(|e| match e.kind() {
            waybill_core::StoreErrorKind::Conflict => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            _ => e.into(),
        })?;
    drop(_content);
    let freed: Vec<Sha256> = replaced.iter().filter_map(Item::sha256).collect();
    ctx.app.source.collect_garbage(freed).await?;
    record_bundle(&ctx, &b, &wanted, now).await?;
    let manifest = Sha256::of(b.payload.as_bytes());
    tracing::info!(bundle = %format!("{}/{}", b.name, b.version), files = wanted.len(), "bundle committed");
    Ok(axum::Json(json!({
        "manifest_sha256": manifest.to_hex(),
        "files": wanted.len(),
        "receipt": waybill_core::site::receipt(&ctx.cfg.pairing_token, &b.name, &b.version, &manifest),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct RemoveBody {
    name: String,
    version: String,
}

/// Removes a received version: its files, unless another version received
/// here still lists the same path, and then the blobs nothing references.
async fn remove(
    State(ctx): State<EdgeCtx>,
    Json(b): Json<RemoveBody>,
) -> Result<Response, ApiError> {
    let (name, version) = (BundleName::parse(b.name)?, BundleVersion::parse(b.version)?);
    let Some(v) = ctx.app.store.get_version(&name, &version).await? else {
        return Ok(axum::Json(json!({"removed_files": 0, "held": false})).into_response());
    };
    let others = ctx
        .app
        .store
        .list_versions(None, waybill_core::store::Page::ALL)
        .await?
        .items;
    let still_needed = |target: &str| {
        others
            .iter()
            .filter(|o| !(o.name == v.name && o.version == v.version))
            .any(|o| o.artifacts.iter().any(|a| a.target_repo_path == target))
    };
    // Only what this version put there (newer content at a path stays),
    // all in one transaction: a reader sees the whole version go at once.
    let doomed: Vec<_> = v
        .artifacts
        .iter()
        .filter(|a| !still_needed(&a.target_repo_path))
        .filter_map(|a| {
            check_target(&a.target_repo_path)
                .ok()
                .map(|(repo, path)| (repo, path, a.checksum))
        })
        .collect();
    let gone = ctx.app.store.remove_files(doomed).await?;
    let removed = gone.len() as u64;
    let freed: Vec<_> = gone.iter().filter_map(Item::sha256).collect();
    let _changed = ctx.app.renders.change();
    ctx.app.store.delete_version(&name, &version).await?;
    ctx.app.source.collect_garbage(freed).await?;
    tracing::info!(bundle = %v.label(), removed, "bundle removed from this edge");
    Ok(axum::Json(json!({"removed_files": removed, "held": true})).into_response())
}

/// Remembers the received version (signed, as the hub signed it).
async fn record_bundle(
    ctx: &EdgeCtx,
    b: &SignedBundle,
    wanted: &[Wanted],
    now: u64,
) -> Result<(), ApiError> {
    let mut v = ReleaseBundleVersion::new(
        BundleName::parse(b.name.clone())?,
        BundleVersion::parse(b.version.clone())?,
        now,
        "distribution",
    );
    v.state = VersionState::Signed;
    v.artifacts = wanted
        .iter()
        .map(|w| BundleArtifact {
            checksum: w.sha256,
            source_repo_path: w.source.clone(),
            target_repo_path: format!("{}/{}", w.repo, w.path),
            size: w.size,
            props: w.props.clone(),
            scan: None,
        })
        .collect();
    v.signature = Some(BundleSignature {
        key_id: String::new(),
        alg: JwsAlg::RS256,
        payload: b.payload.clone(),
        jws_header: String::new(),
        jws_signature: String::new(),
        pgp_signature: b.pgp_signature.clone(),
        signed: now,
    });
    let _changed = ctx.app.renders.change();
    match ctx.app.store.create_version(v).await {
        Ok(()) => Ok(()),
        // Received before: the committed files above already match it.
        Err(e) if e.kind() == waybill_core::StoreErrorKind::Conflict => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Registers this edge with its hub (`waybill edge --register-with`),
/// retrying while the hub is not up yet. Registering again is harmless:
/// the hub answers 200 for an edge it already knows.
pub async fn register_with(
    hub: &str,
    user: &str,
    password: &Secret,
    public_url: &str,
    cfg: &EdgeConfig,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let body = json!({
        "name": cfg.site_name,
        "url": public_url,
        "token": cfg.pairing_token.expose(),
        "location": {"city_name": cfg.city, "country_code": cfg.country},
    });
    let url = format!("{}/mc/api/v1/jpds", hub.trim_end_matches('/'));
    let mut last = String::new();
    for attempt in 0..30u32 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
        match client
            .post(&url)
            .basic_auth(user, Some(password.expose()))
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return Ok(()),
            // The hub refused: the same request will not do better.
            Ok(r) if r.status().is_client_error() => {
                return Err(format!(
                    "the hub refused the registration: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                ));
            }
            Ok(r) => last = format!("the hub answered {}", r.status()),
            Err(e) => last = format!("the hub is unreachable: {e}"),
        }
    }
    Err(last)
}
