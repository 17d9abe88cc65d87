//! Edge registration in JFrog Mission Control's JPD shape, under
//! `/mc/api/v1/jpds` (admin only), as wire shapes around
//! [`waybill_app::sites::Sites`]. Pairing tokens are never returned.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use waybill_app::sites::{Health, SiteRegistration};
use waybill_core::site::EdgeSite;

use crate::Caller;
use crate::{ApiError, HubState, Json};

#[derive(Deserialize)]
pub(crate) struct Location {
    city_name: String,
    country_code: String,
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

#[derive(Deserialize)]
pub(crate) struct JpdBody {
    name: String,
    url: String,
    token: String,
    location: Location,
    #[serde(default)]
    tags: Vec<String>,
}

impl From<JpdBody> for SiteRegistration {
    fn from(b: JpdBody) -> SiteRegistration {
        SiteRegistration {
            name: b.name,
            url: b.url,
            token: b.token,
            city_name: b.location.city_name,
            country_code: b.location.country_code,
            latitude: b.location.latitude,
            longitude: b.location.longitude,
            tags: b.tags,
        }
    }
}

fn jpd_json(s: &EdgeSite, status: &str) -> Value {
    json!({
        "id": s.service_id.as_str(),
        "service_id": s.service_id.as_str(),
        "name": s.name,
        "url": s.url,
        "type": "edge",
        "status": status,
        "location": match s.position {
            Some(p) => json!({"city_name": s.city_name, "country_code": s.country_code,
                              "latitude": p.latitude(), "longitude": p.longitude()}),
            None => json!({"city_name": s.city_name, "country_code": s.country_code}),
        },
        "tags": s.tags,
    })
}

/// A site as JPD JSON with its checked status, and why when not online.
fn checked_json(site: &EdgeSite, health: &Health) -> Value {
    let (status, why) = match health {
        Health::Online => ("ONLINE", None),
        Health::Unauthorized(why) => ("UNAUTHORIZED", Some(why)),
        Health::Offline(why) => ("OFFLINE", Some(why)),
    };
    let mut v = jpd_json(site, status);
    if let Some(why) = why {
        v["status_message"] = json!(why);
    }
    v
}

/// `POST /mc/api/v1/jpds`: 201 for a new edge, 200 when the same edge registers again.
pub(crate) async fn register(
    State(state): State<HubState>,
    Caller(who): Caller,
    Json(body): Json<JpdBody>,
) -> Result<Response, ApiError> {
    let r = state.sites.register(&who, body.into()).await?;
    let status = if r.key_sent {
        "ONLINE"
    } else {
        "ONLINE_WITHOUT_KEY"
    };
    let code = if r.existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((code, axum::Json(jpd_json(&r.site, status))).into_response())
}

/// `GET /mc/api/v1/jpds`.
pub(crate) async fn list(
    State(state): State<HubState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    let listed: Vec<Value> = state
        .sites
        .list(&who)
        .await?
        .iter()
        .map(|(site, health)| checked_json(site, health))
        .collect();
    Ok(axum::Json(listed).into_response())
}

/// `GET /mc/api/v1/jpds/{id}`.
pub(crate) async fn get(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (site, health) = state.sites.get(&who, &id).await?;
    Ok(axum::Json(checked_json(&site, &health)).into_response())
}

/// `PUT /mc/api/v1/jpds/{id}`: re-checks the edge, which must still be the same one.
pub(crate) async fn update(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Json(body): Json<JpdBody>,
) -> Result<Response, ApiError> {
    let site = state.sites.update(&who, &id, body.into()).await?;
    Ok(axum::Json(jpd_json(&site, "ONLINE")).into_response())
}

/// `DELETE /mc/api/v1/jpds/{id}`.
pub(crate) async fn remove(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.sites.remove(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
