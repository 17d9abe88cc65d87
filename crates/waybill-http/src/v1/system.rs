//! `system/*`: ping, info and settings.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::Caller;
use crate::dto::{StatusMessage, SystemInfo, SystemSettings};
use waybill_app::system::System;

use crate::{ApiError, Json, VERSION};

/// The seed's wording, kept so existing monitors keep matching it.
const UNAVAILABLE: &str =
    "One or more of the following services are unavailable: distributor, database and/or redis";

/// `GET /api/v1/system/ping`: 200 only when storage answers.
pub(crate) async fn ping(State(system): State<System>) -> impl IntoResponse {
    match system.health().await {
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
pub(crate) async fn info(State(system): State<System>) -> Json<SystemInfo> {
    let (status, message) = match system.health().await {
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
        service_id: system.service_id().to_string(),
    })
}

/// `GET /api/v1/system/settings` (admin only).
pub(crate) async fn get_settings(
    State(system): State<System>,
    Caller(who): Caller,
) -> Result<Json<SystemSettings>, ApiError> {
    Ok(Json(SystemSettings {
        call_home_enabled: system.call_home(&who).await?,
    }))
}

/// `POST /api/v1/system/settings` (admin only).
pub(crate) async fn update_settings(
    State(system): State<System>,
    Caller(who): Caller,
    Json(body): Json<SystemSettings>,
) -> Result<Json<SystemSettings>, ApiError> {
    system.set_call_home(&who, body.call_home_enabled).await?;
    Ok(Json(body))
}
