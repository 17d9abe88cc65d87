//! Signing keys: `/api/v1/keys/{pgp|gpg}` in its current (nested, with
//! propagation) and deprecated (flat) forms, including the JFrog client's
//! double-slash `PUT //api/v1/keys/pgp`, served directly because a redirect
//! would turn the PUT into a GET.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use waybill_core::keys::SigningKey;

use crate::Caller;
use crate::{ApiError, AppState, Json};

use waybill_app::keys::NO_KEY;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyPair {
    public_key: Option<String>,
    private_key: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct UploadBody {
    key: KeyPair,
    #[serde(default)]
    propagate_to_edge_nodes: bool,
    #[serde(default)]
    fail_on_propagation_failure: bool,
}

fn protocol(p: &str) -> Result<(), ApiError> {
    match p {
        "pgp" | "gpg" => Ok(()),
        other => Err(ApiError::not_found(format!(
            "unknown key protocol '{other}'; use pgp or gpg"
        ))),
    }
}

/// Pushes `key` to every registered edge and reports per edge, in the seed's shape.
async fn propagate_to_edges(
    state: &AppState,
    key: Option<&SigningKey>,
) -> Result<(serde_json::Value, bool), ApiError> {
    let Some(key) = key else {
        return Ok((
            json!({"report": {"message": NO_KEY, "status": "NO_GPG_KEY_TO_PROPAGATE", "details": []}}),
            false,
        ));
    };
    let sites = state.store.list_sites().await?;
    let mut details = Vec::new();
    let mut failures = Vec::new();
    for site in &sites {
        let result = crate::sites::push_key_material(state, site, &key.public_key).await;
        let (status, message) = match &result {
            Ok(()) => ("SUCCESS", String::new()),
            Err(why) => {
                failures.push(format!("{}: {why}", site.name));
                ("FAILURE", why.clone())
            }
        };
        details.push(json!({"jpd_id": site.service_id.as_str(), "name": site.name, "key_alias": key.id, "status": status, "message": message}));
    }
    let status = match (failures.len(), sites.len()) {
        (0, _) => "SUCCESS",
        (f, n) if f == n => "FAILURE",
        _ => "PARTIAL_SUCCESS",
    };
    let message = if sites.is_empty() {
        "no edge nodes are registered".to_string()
    } else {
        failures.join("; ")
    };
    Ok((
        json!({"report": {"message": message, "status": status, "details": details}}),
        failures.is_empty(),
    ))
}

/// `POST /api/v1/keys/{pgp|gpg}` (admin only).
pub(crate) async fn upload(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(proto): Path<String>,
    Json(body): Json<UploadBody>,
) -> Result<Response, ApiError> {
    protocol(&proto)?;
    let key = state
        .keys
        .store_pair(&who, body.key.public_key, body.key.private_key)
        .await?;
    if !body.propagate_to_edge_nodes {
        let report = json!({"report": {"message": "", "status": "PROPAGATION_NOT_REQUESTED", "details": []}});
        return Ok(axum::Json(report).into_response());
    }
    let (report, all_ok) = propagate_to_edges(&state, Some(&key)).await?;
    // The key is stored either way; the caller asked to hear about failures as one.
    let status = if !all_ok && body.fail_on_propagation_failure {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(report)).into_response())
}

/// `POST /api/v1/keys/{pgp|gpg}/propagate` (admin only).
pub(crate) async fn propagate(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(proto): Path<String>,
) -> Result<Response, ApiError> {
    protocol(&proto)?;
    who.require_admin()?;
    let key = state.store.default_key().await?;
    let (report, _) = propagate_to_edges(&state, key.as_ref()).await?;
    Ok(axum::Json(report).into_response())
}

/// `PUT /api/v1/keys/{pgp|gpg}`: the flat body (admin only).
pub(crate) async fn put_flat(
    state: State<AppState>,
    Caller(who): Caller,
    Path(proto): Path<String>,
    body: Json<KeyPair>,
) -> Result<Response, ApiError> {
    protocol(&proto)?;
    put_flat_pgp(state, Caller(who), body).await
}

/// `PUT //api/v1/keys/pgp`, the JFrog client's double-slash path (admin only).
pub(crate) async fn put_flat_pgp(
    State(state): State<AppState>,
    Caller(who): Caller,
    Json(pair): Json<KeyPair>,
) -> Result<Response, ApiError> {
    state
        .keys
        .store_pair(&who, pair.public_key, pair.private_key)
        .await?;
    // The seed documents HTTP 200 with this body, including its 201.
    Ok((
        StatusCode::OK,
        axum::Json(json!({"status_code": 201, "message": "Set GPG public & private key"})),
    )
        .into_response())
}

/// `GET /api/v1/keys/{pgp|gpg}`: the public key, and `****` when a private key is held.
pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(proto): Path<String>,
) -> Result<Response, ApiError> {
    protocol(&proto)?;
    let key = state
        .keys
        .default_key(&who)
        .await?
        .ok_or_else(|| ApiError::not_found(NO_KEY))?;
    let mut body = json!({"public_key": key.public_key});
    if key.private_key.is_some() {
        body["private_key"] = "****".into();
    }
    Ok(axum::Json(body).into_response())
}
