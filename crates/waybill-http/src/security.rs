//! `/api/v1/security`: access tokens (create, refresh, revoke, list) and the
//! users admin API. Passwords are argon2id hashes and never leave the server;
//! refresh tokens are stored only as their SHA-256.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use waybill_core::auth::{PasswordHash, User};

use crate::Caller;
use crate::now_millis;
use crate::tokens::{ADMIN_SCOPE, Tokens, USER_SCOPE};
use crate::{ApiError, AppState, Json, Principal};

fn flag(form: &HashMap<String, String>, key: &str, default: bool) -> Result<bool, ApiError> {
    match form.get(key).map(String::as_str) {
        None | Some("") => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "{key} must be true or false, not '{other}'"
        ))),
    }
}

fn expires_in(form: &HashMap<String, String>) -> Result<u64, ApiError> {
    match form.get("expires_in").map(String::as_str) {
        None | Some("") => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            ApiError::bad_request(format!(
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
    State(state): State<AppState>,
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
    State(state): State<AppState>,
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
    state: &AppState,
    who: &Principal,
    form: &HashMap<String, String>,
) -> Result<(StatusCode, Value, Option<String>), ApiError> {
    let store = state.store.as_ref();
    let tokens: &Tokens = &state.auth.tokens;
    match form
        .get("grant_type")
        .map(String::as_str)
        .unwrap_or("client_credentials")
    {
        "client_credentials" => {
            let username = form
                .get("username")
                .filter(|u| !u.is_empty())
                .ok_or_else(|| ApiError::bad_request("username is required"))?;
            if username != &who.name && !who.admin {
                return Err(ApiError::forbidden(format!(
                    "user '{}' may create tokens only for itself",
                    who.name
                )));
            }
            let user = store.get_user(username).await?.ok_or_else(|| {
                ApiError::bad_request(format!("user '{username}' does not exist"))
            })?;
            let scope = form
                .get("scope")
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or(USER_SCOPE);
            match scope {
                USER_SCOPE => {}
                ADMIN_SCOPE if who.admin && user.admin => {}
                ADMIN_SCOPE => {
                    return Err(ApiError::forbidden(format!(
                        "scope {ADMIN_SCOPE} needs an administrator, for an administrator"
                    )));
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "scope '{other}' is not one of {ADMIN_SCOPE}, {USER_SCOPE}"
                    )));
                }
            }
            let expires = expires_in(form)?;
            let refreshable = flag(form, "refreshable", false)?;
            let (access, refresh, record) = tokens
                .issue(
                    store,
                    state.service_id.as_str(),
                    &user.name,
                    scope,
                    expires,
                    refreshable,
                )
                .await?;
            tracing::info!(subject = %user.name, token_id = %record.token_id, "access token issued");
            Ok((
                StatusCode::CREATED,
                token_response(access, refresh, expires, scope),
                Some(record.token_id.clone()),
            ))
        }
        "refresh_token" => {
            let (Some(access), Some(refresh)) =
                (form.get("access_token"), form.get("refresh_token"))
            else {
                return Err(ApiError::bad_request(
                    "a refresh needs access_token and refresh_token",
                ));
            };
            let claims = tokens
                .decode(store, access)
                .await
                .map_err(|_| ApiError::bad_request("access_token is not a token of this server"))?;
            let record = store
                .get_token(&claims.jti)
                .await?
                .filter(|r| !r.revoked && Tokens::refresh_matches(r, refresh))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "the refresh token does not match a live refreshable token",
                    )
                })?;
            if record.subject != who.name && !who.admin {
                return Err(ApiError::forbidden(format!(
                    "user '{}' may refresh only its own tokens",
                    who.name
                )));
            }
            // Single use: the old token and its refresh token die here.
            let _changed = state.auth.change();
            store.delete_token(&record.token_id).await?;
            let expires = expires_in(form)?;
            let refreshable = flag(form, "refreshable", true)?;
            let (access, refresh, fresh) = tokens
                .issue(
                    store,
                    state.service_id.as_str(),
                    &record.subject,
                    &record.scope,
                    expires,
                    refreshable,
                )
                .await?;
            Ok((
                StatusCode::OK,
                token_response(access, refresh, expires, &record.scope),
                Some(fresh.token_id.clone()),
            ))
        }
        other => Err(ApiError::bad_request(format!(
            "grant_type '{other}' is not client_credentials or refresh_token"
        ))),
    }
}

/// `POST /api/v1/security/token/revoke` (admin; form `token` or `token_id`).
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    Caller(who): Caller,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let token = form.get("token").filter(|t| !t.is_empty());
    let id = form.get("token_id").filter(|t| !t.is_empty());
    let token_id = match (token, id) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::bad_request(
                "give exactly one of token and token_id",
            ));
        }
        (None, Some(id)) => id.clone(),
        (Some(t), None) => {
            state
                .auth
                .tokens
                .decode(state.store.as_ref(), t)
                .await
                .map_err(|_| ApiError::not_found("token not found"))?
                .jti
        }
    };
    let mut record = state
        .store
        .get_token(&token_id)
        .await?
        .ok_or_else(|| ApiError::not_found("token not found"))?;
    record.revoked = true;
    let _changed = state.auth.change();
    state.store.put_token(record).await?;
    tracing::info!(%token_id, "access token revoked");
    Ok(axum::Json(json!({"status_code": 200, "message": "Token revoked"})).into_response())
}

/// `GET /api/v1/security/token` (admin).
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let list: Vec<Value> = state
        .store
        .list_tokens()
        .await?
        .into_iter()
        .filter(|t| !t.revoked)
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
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let users = state.store.list_users().await?;
    Ok(axum::Json(users.iter().map(user_json).collect::<Vec<_>>()).into_response())
}

/// `GET /api/v1/security/users/{name}` (admin).
pub(crate) async fn get_user(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let user = state
        .store
        .get_user(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user '{name}' does not exist")))?;
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
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Json(body): Json<UserBody>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let _changed = state.auth.change();
    User::validate_name(&name)?;
    if body.name.as_deref().is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(
            "the body's name differs from the URL's",
        ));
    }
    let existing = state.store.get_user(&name).await?;
    let hash = match body.password {
        Some(p) if p.chars().count() < 8 => {
            return Err(ApiError::bad_request(
                "password must be at least 8 characters",
            ));
        }
        Some(p) => {
            let mut salt = [0u8; 16];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt).map_err(
                |_| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the OS random source failed",
                    )
                },
            )?;
            tokio::task::spawn_blocking(move || PasswordHash::create(&p, salt))
                .await
                .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "hashing failed"))??
        }
        None => match &existing {
            Some(u) => u.password_hash.clone(),
            None => return Err(ApiError::bad_request("password is required for a new user")),
        },
    };
    let created = existing.is_none();
    let base = existing.unwrap_or(User {
        name: name.clone(),
        password_hash: hash.clone(),
        admin: false,
        email: None,
        groups: vec![],
        created: now_millis(),
    });
    let user = User {
        password_hash: hash,
        admin: body.admin.unwrap_or(base.admin),
        email: body.email.or(base.email),
        groups: body.groups.unwrap_or(base.groups),
        ..base
    };
    if !created && !user.admin && name == who.name {
        return Err(ApiError::bad_request(
            "administrators cannot remove their own admin rights",
        ));
    }
    state.store.put_user(user.clone()).await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, axum::Json(user_json(&user))).into_response())
}

/// `DELETE /api/v1/security/users/{name}` (admin): also ends the user's tokens.
pub(crate) async fn delete_user(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let _changed = state.auth.change();
    if name == who.name {
        return Err(ApiError::bad_request(
            "administrators cannot delete themselves",
        ));
    }
    if !state.store.delete_user(&name).await? {
        return Err(ApiError::not_found(format!("user '{name}' does not exist")));
    }
    for t in state
        .store
        .list_tokens()
        .await?
        .into_iter()
        .filter(|t| t.subject == name)
    {
        state.store.delete_token(&t.token_id).await?;
    }
    // A later user of the same name must not inherit the key.
    crate::apikeys::revoke_for(&state, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /artifactory/api/security/lockedUsers` (admin): the user names
/// refused now after failed logins.
pub(crate) async fn locked_users(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    Ok(axum::Json(state.auth.locked_users()).into_response())
}

/// `POST /artifactory/api/security/unlockUsers/{name}` (admin): lifts a
/// user's login lockout at once.
pub(crate) async fn unlock_user(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    User::validate_name(&name)?;
    let was_locked = state.auth.unlock(&name).await?;
    tracing::info!(user = %name, by = %who.name, was_locked, "login lockout lifted");
    Ok(axum::Json(json!({"status_code": 200, "message": format!("user '{name}' is unlocked"), "was_locked": was_locked})).into_response())
}
