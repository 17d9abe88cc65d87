//! Signing keys: `/api/v1/keys/{pgp|gpg}` in its current (nested, with
//! propagation) and deprecated (flat) forms, including the JFrog client's
//! double-slash `PUT //api/v1/keys/pgp`, served directly because a redirect
//! would turn the PUT into a GET.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::Caller;
use crate::{ApiError, HubState, Json};

use waybill_app::keys::{NO_KEY, Propagation};

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

/// A propagation report in the seed's shape.
fn report(p: &Propagation) -> serde_json::Value {
    let (key_id, pushes) = match p {
        Propagation::NoKey => {
            return json!({"report": {"message": NO_KEY, "status": "NO_GPG_KEY_TO_PROPAGATE", "details": []}});
        }
        Propagation::Pushed { key_id, pushes } => (key_id, pushes),
    };
    let details: Vec<serde_json::Value> = pushes
        .iter()
        .map(|p| {
            let (status, message) = match &p.error {
                None => ("SUCCESS", String::new()),
                Some(why) => ("FAILURE", why.clone()),
            };
            json!({"jpd_id": p.site.service_id.as_str(), "name": p.site.name, "key_alias": key_id, "status": status, "message": message})
        })
        .collect();
    let failures: Vec<String> = pushes
        .iter()
        .filter_map(|p| {
            p.error
                .as_ref()
                .map(|why| format!("{}: {why}", p.site.name))
        })
        .collect();
    let status = match (failures.len(), pushes.len()) {
        (0, _) => "SUCCESS",
        (f, n) if f == n => "FAILURE",
        _ => "PARTIAL_SUCCESS",
    };
    let message = if pushes.is_empty() {
        "no edge nodes are registered".to_string()
    } else {
        failures.join("; ")
    };
    json!({"report": {"message": message, "status": status, "details": details}})
}

/// `POST /api/v1/keys/{pgp|gpg}` (admin only).
pub(crate) async fn upload(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(proto): Path<String>,
    Json(body): Json<UploadBody>,
) -> Result<Response, ApiError> {
    protocol(&proto)?;
    let (_, propagation) = state
        .keys
        .upload(
            &who,
            body.key.public_key,
            body.key.private_key,
            body.propagate_to_edge_nodes,
        )
        .await?;
    let Some(propagation) = propagation else {
        let report = json!({"report": {"message": "", "status": "PROPAGATION_NOT_REQUESTED", "details": []}});
        return Ok(axum::Json(report).into_response());
    };
    // The key is stored either way; the caller asked to hear about failures as one.
    let status = if !propagation.all_ok() && body.fail_on_propagation_failure {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(report(&propagation))).into_response())
}

/// `POST /api/v1/keys/{pgp|gpg}/propagate` (admin only).
pub(crate) async fn propagate(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(proto): Path<String>,
) -> Result<Response, ApiError> {
    protocol(&proto)?;
    let propagation = state.keys.propagate(&who).await?;
    Ok(axum::Json(report(&propagation)).into_response())
}

/// `PUT /api/v1/keys/{pgp|gpg}`: the flat body (admin only).
pub(crate) async fn put_flat(
    state: State<HubState>,
    Caller(who): Caller,
    Path(proto): Path<String>,
    body: Json<KeyPair>,
) -> Result<Response, ApiError> {
    protocol(&proto)?;
    put_flat_pgp(state, Caller(who), body).await
}

/// `PUT //api/v1/keys/pgp`, the JFrog client's double-slash path (admin only).
pub(crate) async fn put_flat_pgp(
    State(state): State<HubState>,
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
    State(state): State<HubState>,
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
