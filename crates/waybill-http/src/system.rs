//! `system/*`: ping, info and settings.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::Caller;
use crate::dto::{StatusMessage, SystemInfo, SystemSettings};
use crate::{ApiError, AppState, Json, VERSION};

/// The seed's wording, kept so existing monitors keep matching it.
const UNAVAILABLE: &str =
    "One or more of the following services are unavailable: distributor, database and/or redis";

const CALL_HOME: &str = "system.call_home_enabled";

/// `GET /api/v1/system/ping`: 200 only when storage answers.
pub(crate) async fn ping(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(StatusMessage {
                status_code: 200,
                message: "ok".into(),
            }),
        ),
        Err(e) => {
            tracing::error!(error = %e, "ping: storage does not answer");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(StatusMessage {
                    status_code: 500,
                    message: UNAVAILABLE.into(),
                }),
            )
        }
    }
}

/// `GET /api/v1/system/info`.
pub(crate) async fn info(State(state): State<AppState>) -> Json<SystemInfo> {
    let (status, message) = match state.store.ping().await {
        Ok(()) => ("STABLE", "Waybill is running".to_string()),
        Err(e) => {
            tracing::error!(error = %e, "info: storage does not answer");
            (
                "UNSTABLE",
                format!("{UNAVAILABLE}: storage is {}", e.kind()),
            )
        }
    };
    Json(SystemInfo {
        status: status.into(),
        message,
        version: VERSION.into(),
        service_id: state.service_id.to_string(),
    })
}

/// `GET /api/v1/system/settings` (admin only).
pub(crate) async fn get_settings(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<SystemSettings>, ApiError> {
    who.require_admin()?;
    let value = state.store.get_setting(CALL_HOME).await?;
    Ok(Json(SystemSettings {
        call_home_enabled: value.as_deref() == Some("true"),
    }))
}

/// `POST /api/v1/system/settings` (admin only).
pub(crate) async fn update_settings(
    State(state): State<AppState>,
    Caller(who): Caller,
    Json(body): Json<SystemSettings>,
) -> Result<Json<SystemSettings>, ApiError> {
    who.require_admin()?;
    let value = if body.call_home_enabled {
        "true"
    } else {
        "false"
    };
    state.store.put_setting(CALL_HOME, value).await?;
    Ok(Json(body))
}
