//! The edge node's internal distribution API under `/waybill/api/v1/edge`,
//! which only its paired hub may call (`Authorization: Bearer <pairing
//! token>`, compared in constant time): wire shapes around
//! [`waybill_edge::Edge`].

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use waybill_app::delivery::SignedBundle;
use waybill_core::digest::{Md5, Sha1, Sha256};
use waybill_edge::Edge;

use crate::{ApiError, Json};

/// The internal routes, already bound to their edge.
pub(crate) fn routes(edge: Edge) -> Router {
    Router::new()
        .route("/waybill/api/v1/edge/info", get(info))
        .route("/waybill/api/v1/edge/key", put(install_key))
        .route("/waybill/api/v1/edge/prepare", post(prepare))
        .route("/waybill/api/v1/edge/blobs/{sha256}", put(receive_blob))
        .route("/waybill/api/v1/edge/commit", post(commit))
        .route("/waybill/api/v1/edge/delete", post(remove))
        // Signed payloads of large bundles exceed axum's 2 MiB default.
        .layer(axum::extract::DefaultBodyLimit::max(256 << 20))
        .layer(middleware::from_fn_with_state(edge.clone(), require_hub))
        .with_state(edge)
}

async fn require_hub(
    State(edge): State<Edge>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    edge.authorize(presented)?;
    Ok(next.run(req).await)
}

async fn info(State(edge): State<Edge>) -> Response {
    let i = edge.info();
    axum::Json(json!({
        "service_id": i.service_id.as_str(),
        "site_name": i.site_name,
        "city_name": i.city,
        "country_code": i.country,
        "type": "edge",
    }))
    .into_response()
}

#[derive(Deserialize)]
struct KeyBody {
    public_key: String,
}

async fn install_key(
    State(edge): State<Edge>,
    Json(body): Json<KeyBody>,
) -> Result<Response, ApiError> {
    let key_id = edge.install_key(&body.public_key).await?;
    Ok(axum::Json(json!({"key_id": key_id})).into_response())
}

/// A signed bundle as the hub sends it.
#[derive(Deserialize)]
struct BundleBody {
    name: String,
    version: String,
    payload: String,
    pgp_signature: String,
    #[serde(default)]
    auto_create_missing_repositories: bool,
}

impl From<BundleBody> for SignedBundle {
    fn from(b: BundleBody) -> SignedBundle {
        SignedBundle {
            name: b.name,
            version: b.version,
            payload: b.payload,
            pgp_signature: b.pgp_signature,
            auto_create_missing_repositories: b.auto_create_missing_repositories,
        }
    }
}

async fn prepare(
    State(edge): State<Edge>,
    Json(b): Json<BundleBody>,
) -> Result<Response, ApiError> {
    let p = edge.prepare(&b.into()).await?;
    let missing: Vec<String> = p.missing.iter().map(Sha256::to_hex).collect();
    Ok(axum::Json(json!({"missing": missing, "files": p.files})).into_response())
}

async fn receive_blob(
    State(edge): State<Edge>,
    Path(sha256): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let expected = Sha256::parse_hex(&sha256)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let vouched = match (header("x-checksum-sha1"), header("x-checksum-md5")) {
        (Some(sha1), Some(md5)) => Some((Sha1::parse_hex(sha1)?, Md5::parse_hex(md5)?)),
        _ => None,
    };
    let body = body.into_data_stream().map(|chunk| {
        chunk.map_err(|e| waybill_app::Error::invalid(format!("reading the blob failed: {e}")))
    });
    let (digest, size) = edge.receive_blob(expected, vouched, body).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"sha256": digest.to_hex(), "size": size})),
    )
        .into_response())
}

async fn commit(State(edge): State<Edge>, Json(b): Json<BundleBody>) -> Result<Response, ApiError> {
    let c = edge.commit(&b.into()).await?;
    Ok(axum::Json(json!({
        "manifest_sha256": c.committed.manifest_sha256,
        "files": c.files,
        "receipt": c.committed.receipt,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct RemoveBody {
    name: String,
    version: String,
}

/// Removes a received version from this edge.
async fn remove(State(edge): State<Edge>, Json(b): Json<RemoveBody>) -> Result<Response, ApiError> {
    let r = edge.remove(&b.name, &b.version).await?;
    Ok(axum::Json(json!({"removed_files": r.removed_files, "held": r.held})).into_response())
}
