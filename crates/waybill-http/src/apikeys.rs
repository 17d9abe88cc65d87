//! Artifactory API keys, which the JFrog CLI still sends: as
//! `X-JFrog-Art-Api: <key>`, or as the password of Basic `user:<key>`
//! (wire contract §1.2).
//!
//! `/artifactory/api/security/apiKey` manages the caller's own key: `POST`
//! creates one (409 if one exists), `PUT` replaces it, `DELETE` revokes it,
//! and `GET` says whether one exists. Keys look like JFrog's (`AKCp` and 73
//! characters in all, which is how the CLI recognises them) and are stored
//! only as SHA-256 hashes, like refresh tokens: unlike Artifactory, `GET`
//! cannot show a key again, so a lost key is replaced, not recovered.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ring::rand::SecureRandom;
use serde_json::json;
use waybill_core::digest::Sha256;

use crate::Caller;
use crate::{ApiError, AppState};

/// Hash of a key → its user.
const BY_HASH: &str = "security.apikey.hash.";
/// User → hash of their key.
const BY_USER: &str = "security.apikey.user.";
/// What every key starts with.
const PREFIX: &str = "AKCp";
const LENGTH: usize = 73;

/// Whether a Basic password is an API key rather than a password.
pub(crate) fn looks_like_key(secret: &str) -> bool {
    secret.len() == LENGTH && secret.starts_with(PREFIX)
}

fn hash(key: &str) -> String {
    Sha256::of(key.as_bytes()).to_hex()
}

/// The user a key belongs to, or `None` for an unknown key.
pub(crate) async fn owner(
    state_store: &dyn waybill_core::store::Store,
    key: &str,
) -> Result<Option<String>, ApiError> {
    if !looks_like_key(key) {
        return Ok(None);
    }
    Ok(state_store
        .get_setting(&format!("{BY_HASH}{}", hash(key)))
        .await?)
}

fn generate() -> Result<String, ApiError> {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let rng = ring::rand::SystemRandom::new();
    let mut key = String::from(PREFIX);
    while key.len() < LENGTH {
        let mut buf = [0u8; 64];
        rng.fill(&mut buf)
            .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no randomness"))?;
        // Bytes from 248 up are dropped: 248 = 4 × 62, so no character is likelier.
        for b in buf.into_iter().filter(|b| *b < 248) {
            if key.len() < LENGTH {
                key.push(ALPHABET[usize::from(b % 62)] as char);
            }
        }
    }
    Ok(key)
}

/// Removes `user`'s key, if any; `Ok(false)` when there was none.
pub(crate) async fn revoke_for(state: &AppState, user: &str) -> Result<bool, ApiError> {
    let Some(h) = state.store.get_setting(&format!("{BY_USER}{user}")).await? else {
        return Ok(false);
    };
    let _changed = state.auth.change();
    state.store.delete_setting(&format!("{BY_HASH}{h}")).await?;
    state
        .store
        .delete_setting(&format!("{BY_USER}{user}"))
        .await?;
    Ok(true)
}

async fn issue(state: &AppState, user: &str) -> Result<Response, ApiError> {
    let key = generate()?;
    let h = hash(&key);
    let _changed = state.auth.change();
    // The owner record first: a key is usable only once it points at its user.
    state
        .store
        .put_setting(&format!("{BY_HASH}{h}"), user)
        .await?;
    state
        .store
        .put_setting(&format!("{BY_USER}{user}"), &h)
        .await?;
    tracing::info!(user, "API key issued");
    Ok((StatusCode::CREATED, axum::Json(json!({"apiKey": key}))).into_response())
}

/// `POST /artifactory/api/security/apiKey`: a key for the caller.
pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    who.require_full_rights("creating an API key")?;
    if state
        .store
        .get_setting(&format!("{BY_USER}{}", who.name))
        .await?
        .is_some()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "you already have an API key; PUT replaces it, DELETE revokes it",
        ));
    }
    issue(&state, &who.name).await
}

/// `PUT /artifactory/api/security/apiKey`: a new key replaces the caller's.
pub(crate) async fn regenerate(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    who.require_full_rights("replacing an API key")?;
    revoke_for(&state, &who.name).await?;
    issue(&state, &who.name).await
}

/// `GET /artifactory/api/security/apiKey`: whether the caller has a key (the
/// key itself is not kept, so it cannot be shown again).
pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    let exists = state
        .store
        .get_setting(&format!("{BY_USER}{}", who.name))
        .await?
        .is_some();
    Ok(axum::Json(json!({"exists": exists})).into_response())
}

/// `DELETE /artifactory/api/security/apiKey`: revokes the caller's key.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    who.require_full_rights("revoking an API key")?;
    if revoke_for(&state, &who.name).await? {
        tracing::info!(user = %who.name, "API key revoked");
        Ok(axum::Json(json!({"info": "API key revoked"})).into_response())
    } else {
        Err(ApiError::not_found("you have no API key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_like_jfrog_keys_and_differ() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert!(looks_like_key(&a) && looks_like_key(&b), "{a}");
        assert!(a[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert!(!looks_like_key("AKCpshort"));
        assert!(!looks_like_key(&"x".repeat(73)));
    }
}
