//! `ApiError`: the one way a handler fails, rendered as JFrog's error body
//! `{"status_code": N, "message": "..."}`.
//!
//! Validation problems map to 4xx, never 5xx or 429: the JFrog client
//! silently re-sends POSTs on those. Internal failures are logged here, once,
//! and the client gets a generic message that leaks nothing.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use waybill_app::ErrorKind;
use waybill_core::{Error, StoreError};

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    challenge: bool,
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status_code: u16,
    message: &'a str,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            challenge: false,
            retry_after: None,
        }
    }

    /// 429 with `Retry-After`: only for throttled logins, never for bad input.
    pub fn throttled(message: impl Into<String>, seconds: u64) -> ApiError {
        ApiError {
            retry_after: Some(seconds),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }

    /// 400: the request is wrong; `message` says how.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401 with a `WWW-Authenticate` challenge.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError {
            challenge: true,
            ..ApiError::new(StatusCode::UNAUTHORIZED, message)
        }
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message clients see.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        waybill_app::Error::from(e).into()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        waybill_app::Error::from(e).into()
    }
}

/// The one table from error kind to status. Validation is 4xx and never
/// 5xx or 429; faults of ours are logged here, once, and clients get a
/// message that leaks nothing.
impl From<waybill_app::Error> for ApiError {
    fn from(e: waybill_app::Error) -> ApiError {
        let status = match e.kind() {
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => return ApiError::unauthorized(e.message()),
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Stalled => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::Throttled => {
                return ApiError::throttled(e.message(), e.retry_after().unwrap_or(1));
            }
            // Retrying may help here, and 503 tells clients so.
            ErrorKind::Unavailable => {
                tracing::error!(error = %e, "storage unavailable");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "internal storage error; see the server log",
                );
            }
            _ => {
                tracing::error!(error = %e, "internal error");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; see the server log",
                );
            }
        };
        ApiError::new(status, e.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status_code: self.status.as_u16(),
            message: &self.message,
        };
        let mut res = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.challenge {
            let headers = res.headers_mut();
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="waybill""#),
            );
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="waybill""#),
            );
        }
        res
    }
}

/// Gives every error answer the body of its wire: Artifactory's
/// `{"errors":[{"status","message"}]}` under `/artifactory/` (client
/// libraries such as dohq-artifactory parse it), and `{"status_code",
/// "message"}` everywhere else. Error answers that are not JSON (axum's
/// extractor rejections: a path that is not UTF-8, a form without its
/// content type, a body over the limit) are rewritten the same way, keeping
/// their status and their text as the message.
pub(crate) async fn wire_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let artifactory = req.uri().path().starts_with("/artifactory/");
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json && !artifactory {
        return res;
    }
    let (parts, body) = res.into_parts();
    // Error bodies are short; anything longer is cut, never buffered whole.
    let text = match axum::body::to_bytes(body, 64 << 10).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let ours = is_json
        .then(|| serde_json::from_str::<serde_json::Value>(&text).ok())
        .flatten()
        .and_then(|v| v["message"].as_str().map(str::to_string));
    let message = match ours {
        Some(m) => m,
        None if text.is_empty() => status.canonical_reason().unwrap_or("error").to_string(),
        None => text,
    };
    let mut out = if artifactory {
        let body = serde_json::json!({"errors": [{"status": status.as_u16(), "message": message}]});
        (status, Json(body)).into_response()
    } else {
        ApiError::new(status, message).into_response()
    };
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}
