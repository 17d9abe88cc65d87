//! `/api/v1/security`: access tokens (create, refresh, revoke, list) and the
//! users admin API, as wire shapes around [`waybill_app::security::Security`].

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use waybill_app::security::{TokenRef, UserChange};
use waybill_core::auth::User;

use crate::Caller;
use crate::{ApiError, HubState, Json, Principal};

fn flag(
    form: &HashMap<String, String>,
    key: &str,
    default: bool,
) -> Result<bool, waybill_app::Error> {
    match form.get(key).map(String::as_str) {
        None | Some("") => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(waybill_app::Error::invalid(format!(
            "{key} must be true or false, not '{other}'"
        ))),
    }
}

fn expires_in(form: &HashMap<String, String>) -> Result<u64, waybill_app::Error> {
    match form.get("expires_in").map(String::as_str) {
        None | Some("") => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            waybill_app::Error::invalid(format!(
                "expires_in must be a whole number of seconds, not '{v}'"
            ))
        }),
    }
}

fn token_response(access: String, refresh: Option<String>, expires_in: u64, scope: &str) -> Value {
    let mut body = json!({"access_token": access, "expires_in": expires_in, "scope": scope, "token_type": "Bearer"});
    if let Some(r) = refresh {
        body["refresh_token"] = r.into();
    }
    body
}

/// `POST /api/v1/security/token` (form), also served at Artifactory's
/// `POST /artifactory/api/security/token`: create (201) or refresh (200).
pub(crate) async fn create_token(
    State(state): State<HubState>,
    Caller(who): Caller,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (status, body, _) = mint(&state, &who, &form).await?;
    Ok((status, axum::Json(body)).into_response())
}

/// `POST /access/api/v1/tokens` (JSON, also under `/artifactory/access/`):
/// the JFrog Access API's form of the same, answering 200 with `token_id`.
/// `subject` is accepted for `username`.
pub(crate) async fn create_access_token(
    State(state): State<HubState>,
    Caller(who): Caller,
    Json(body): Json<serde_json::Map<String, Value>>,
) -> Result<Response, ApiError> {
    let mut form = HashMap::new();
    for (k, v) in body {
        let text = match v {
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null => continue,
            other => {
                return Err(ApiError::bad_request(format!(
                    "{k} must be a string, a number or a boolean, not {other}"
                )));
            }
        };
        let key = if k == "subject" {
            "username".to_string()
        } else {
            k
        };
        form.insert(key, text);
    }
    let (_, mut body, token_id) = mint(&state, &who, &form).await?;
    if let Some(id) = token_id {
        body["token_id"] = json!(id);
    }
    Ok(axum::Json(body).into_response())
}

/// Creates or refreshes a token from form-like fields: the status the
/// Distribution API answers, the body, and the new token's id.
async fn mint(
    state: &HubState,
    who: &Principal,
    form: &HashMap<String, String>,
) -> Result<(StatusCode, Value, Option<String>), ApiError> {
    let field = |k: &str| form.get(k).map(String::as_str);
    let (status, issued) = match field("grant_type").unwrap_or("client_credentials") {
        "client_credentials" => {
            // Checked before the form's other fields, as before.
            let username = field("username").filter(|u| !u.is_empty());
            let lifetime = || Ok((expires_in(form)?, flag(form, "refreshable", false)?));
            let issued = state
                .security
                .issue_token(who, username, field("scope"), lifetime)
                .await?;
            (StatusCode::CREATED, issued)
        }
        "refresh_token" => {
            let (Some(access), Some(refresh)) = (field("access_token"), field("refresh_token"))
            else {
                return Err(ApiError::bad_request(
                    "a refresh needs access_token and refresh_token",
                ));
            };
            let lifetime = || Ok((expires_in(form)?, flag(form, "refreshable", true)?));
            let issued = state
                .security
                .refresh_token(who, access, refresh, lifetime)
                .await?;
            (StatusCode::OK, issued)
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "grant_type '{other}' is not client_credentials or refresh_token"
            )));
        }
    };
    Ok((
        status,
        token_response(
            issued.access,
            issued.refresh,
            issued.expires_in,
            &issued.scope,
        ),
        Some(issued.token_id),
    ))
}

/// `POST /api/v1/security/token/revoke` (admin; form `token` or `token_id`).
pub(crate) async fn revoke_token(
    State(state): State<HubState>,
    Caller(who): Caller,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let which = || {
        let token = form.get("token").filter(|t| !t.is_empty());
        let id = form.get("token_id").filter(|t| !t.is_empty());
        match (token, id) {
            (Some(_), Some(_)) | (None, None) => Err(waybill_app::Error::invalid(
                "give exactly one of token and token_id",
            )),
            (None, Some(id)) => Ok(TokenRef::Id(id.clone())),
            (Some(t), None) => Ok(TokenRef::Token(t.clone())),
        }
    };
    state.security.revoke_token(&who, which).await?;
    Ok(axum::Json(json!({"status_code": 200, "message": "Token revoked"})).into_response())
}

/// `GET /api/v1/security/token` (admin).
pub(crate) async fn list_tokens(
    State(state): State<HubState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    let list: Vec<Value> = state
        .security
        .list_tokens(&who)
        .await?
        .into_iter()
        .map(|t| {
            let mut j = json!({
                "token_id": t.token_id,
                "issuer": state.service_id.as_str(),
                "subject": t.subject,
                "issued_at": t.issued_at / 1000,
                "refreshable": t.refresh_hash.is_some(),
            });
            if let Some(exp) = t.expiry {
                j["expiry"] = json!(exp / 1000);
            }
            j
        })
        .collect();
    Ok(axum::Json(json!({"tokens": list})).into_response())
}

fn user_json(u: &User) -> Value {
    json!({"name": u.name, "email": u.email, "admin": u.admin, "groups": u.groups})
}

/// `GET /api/v1/security/users` (admin).
pub(crate) async fn list_users(
    State(state): State<HubState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    let users = state.security.list_users(&who).await?;
    Ok(axum::Json(users.iter().map(user_json).collect::<Vec<_>>()).into_response())
}

/// `GET /api/v1/security/users/{name}` (admin).
pub(crate) async fn get_user(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let user = state.security.get_user(&who, &name).await?;
    Ok(axum::Json(user_json(&user)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserBody {
    name: Option<String>,
    email: Option<String>,
    password: Option<String>,
    admin: Option<bool>,
    groups: Option<Vec<String>>,
}

/// `PUT /api/v1/security/users/{name}` (admin): 201 creates, 200 updates.
pub(crate) async fn put_user(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Json(body): Json<UserBody>,
) -> Result<Response, ApiError> {
    let change = UserChange {
        body_name: body.name,
        email: body.email,
        password: body.password,
        admin: body.admin,
        groups: body.groups,
    };
    let (user, created) = state.security.put_user(&who, &name, change).await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, axum::Json(user_json(&user))).into_response())
}

/// `DELETE /api/v1/security/users/{name}` (admin): also ends the user's tokens.
pub(crate) async fn delete_user(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    state.security.delete_user(&who, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /artifactory/api/security/lockedUsers` (admin): the user names
/// refused now after failed logins.
pub(crate) async fn locked_users(
    State(state): State<HubState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    Ok(axum::Json(state.security.locked_users_for(&who)?).into_response())
}

/// `POST /artifactory/api/security/unlockUsers/{name}` (admin): lifts a
/// user's login lockout at once.
pub(crate) async fn unlock_user(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let was_locked = state.security.unlock_user(&who, &name).await?;
    Ok(axum::Json(json!({"status_code": 200, "message": format!("user '{name}' is unlocked"), "was_locked": was_locked})).into_response())
}
