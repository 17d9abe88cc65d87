//! Authorization: loading permissions and groups, their admin APIs under
//! `/api/v1/security/{permissions,groups}`, and the checks handlers call.
//!
//! Permissions and groups are stored as JSON documents in the settings store
//! (`security.permission.<name>`, `security.group.<name>`): few, small, and
//! read whole on every check, which keeps every backend's schema unchanged.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use waybill_core::permissions::{self, Action, Group, Permission, Resource};
use waybill_core::rules::DistributionRule;
use waybill_core::site::EdgeSite;

use crate::Caller;
use crate::{ApiError, AppState, Json, Principal};

const PERMISSION: &str = "security.permission.";
const GROUP: &str = "security.group.";

/// Every stored permission, remembered until the next security write.
pub(crate) async fn load(state: &AppState) -> Result<std::sync::Arc<Vec<Permission>>, ApiError> {
    state.auth.permissions().await
}

/// Every stored permission, read from `store`.
pub(crate) async fn load_from(
    store: &dyn waybill_core::store::Store,
) -> Result<Vec<Permission>, ApiError> {
    let mut out = Vec::new();
    for (key, raw) in store.list_settings(PERMISSION).await? {
        match serde_json::from_str(&raw) {
            Ok(p) => out.push(p),
            Err(e) => {
                tracing::error!(%key, error = %e, "stored permission does not parse; ignored")
            }
        }
    }
    Ok(out)
}

/// 403 unless the caller may `action` on bundle `name`.
pub(crate) async fn require_bundle(
    state: &AppState,
    who: &Principal,
    name: &str,
    action: Action,
) -> Result<(), ApiError> {
    if who.admin || permissions::may_bundle(&load(state).await?, &who.caller(), name, action) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "user '{}' needs {action} permission on release bundle '{name}'",
        who.name
    )))
}

/// A predicate for "the caller may read this name", loading permissions once.
async fn readable(
    state: &AppState,
    who: &Principal,
    may: fn(&[Permission], &permissions::Caller<'_>, &str, Action) -> bool,
) -> Result<impl Fn(&str) -> bool + use<>, ApiError> {
    let perms = if who.admin {
        std::sync::Arc::default()
    } else {
        load(state).await?
    };
    let (name, groups, admin) = (who.name.clone(), who.groups.clone(), who.admin);
    Ok(move |target: &str| {
        let caller = permissions::Caller {
            name: &name,
            groups: &groups,
            admin,
        };
        may(&perms, &caller, target, Action::Read)
    })
}

/// Which release bundles the caller may read (all, for administrators).
pub(crate) async fn readable_bundles(
    state: &AppState,
    who: &Principal,
) -> Result<impl Fn(&str) -> bool + use<>, ApiError> {
    readable(state, who, permissions::may_bundle).await
}

/// 403 unless the caller may `action` on repository `key`.
pub(crate) async fn require_repository(
    state: &AppState,
    who: &Principal,
    key: &str,
    action: Action,
) -> Result<(), ApiError> {
    if who.admin || permissions::may_repository(&load(state).await?, &who.caller(), key, action) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "user '{}' needs {action} permission on repository '{key}'",
        who.name
    )))
}

/// Which repositories the caller may read.
pub(crate) async fn readable_repositories(
    state: &AppState,
    who: &Principal,
) -> Result<impl Fn(&str) -> bool + use<>, ApiError> {
    readable(state, who, permissions::may_repository).await
}

/// Narrows `selected` sites to those the caller's destination permissions
/// allow for `action`; a 403 naming the reason when none remains.
pub(crate) async fn allowed_sites(
    state: &AppState,
    who: &Principal,
    action: Action,
    selected: Vec<EdgeSite>,
) -> Result<Vec<EdgeSite>, ApiError> {
    if who.admin {
        return Ok(selected);
    }
    let perms = load(state).await?;
    let allowed: Vec<EdgeSite> =
        permissions::allowed_sites(&perms, &who.caller(), action, &selected)
            .into_iter()
            .cloned()
            .collect();
    if allowed.is_empty() {
        let names: Vec<&str> = selected.iter().map(|s| s.name.as_str()).collect();
        return Err(ApiError::forbidden(format!(
            "user '{}' needs {action} on a destination permission covering one of the selected sites ({})",
            who.name,
            names.join(", ")
        )));
    }
    Ok(allowed)
}

// ---- permissions API (admin only) --------------------------------------

#[derive(Serialize, Deserialize, Default)]
pub(crate) struct PrincipalsDto {
    #[serde(default)]
    users: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct PatternsDto {
    #[serde(default)]
    include_patterns: Vec<String>,
    #[serde(default)]
    exclude_patterns: Vec<String>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct DestinationDto {
    site_name: Option<String>,
    city_name: Option<String>,
    country_codes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PermissionDto {
    name: Option<String>,
    resource_type: String,
    #[serde(default)]
    distribution_destinations: Option<Vec<DestinationDto>>,
    #[serde(default)]
    release_bundles: Option<PatternsDto>,
    #[serde(default)]
    repositories: Option<PatternsDto>,
    #[serde(default)]
    principals: PrincipalsDto,
}

fn actions(map: BTreeMap<String, Vec<String>>) -> Result<BTreeMap<String, Vec<Action>>, ApiError> {
    map.into_iter()
        .map(|(k, v)| {
            Ok((
                k,
                v.iter()
                    .map(|a| Action::parse(a))
                    .collect::<Result<Vec<_>, _>>()?,
            ))
        })
        .collect()
}

fn to_json(p: &Permission) -> Value {
    let letters = |m: &BTreeMap<String, Vec<Action>>| -> BTreeMap<String, Vec<&str>> {
        m.iter()
            .map(|(k, v)| (k.clone(), v.iter().map(|a| a.letter()).collect()))
            .collect()
    };
    let mut j = json!({
        "name": p.name,
        "resource_type": p.resource.type_name(),
        "principals": {"users": letters(&p.users), "groups": letters(&p.groups)},
    });
    match &p.resource {
        Resource::Destination(rules) => {
            j["distribution_destinations"] = rules
                .iter()
                .map(|r| json!({
                    "site_name": r.site_name.clone().unwrap_or_else(|| "*".into()),
                    "city_name": r.city_name.clone().unwrap_or_else(|| "*".into()),
                    "country_codes": if r.country_codes.is_empty() { vec!["*".to_string()] } else { r.country_codes.clone() },
                }))
                .collect();
        }
        Resource::ReleaseBundle { include, exclude } => {
            j["release_bundles"] =
                json!({"include_patterns": include, "exclude_patterns": exclude});
        }
        Resource::Repository { include, exclude } => {
            j["repositories"] = json!({"include_patterns": include, "exclude_patterns": exclude});
        }
    }
    j
}

/// `PUT /api/v1/security/permissions/{name}`: create or replace; 200 with the permission.
pub(crate) async fn put_permission(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Json(dto): Json<PermissionDto>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let _changed = state.auth.change();
    if dto.name.as_deref().is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(
            "the body's name differs from the URL's",
        ));
    }
    let resource = match dto.resource_type.as_str() {
        "destination" => Resource::Destination(
            dto.distribution_destinations
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "a destination permission needs distribution_destinations",
                    )
                })?
                .into_iter()
                .map(|d| DistributionRule {
                    site_name: d.site_name,
                    city_name: d.city_name,
                    country_codes: d.country_codes.unwrap_or_default(),
                })
                .collect(),
        ),
        "release_bundle" => {
            let p = dto.release_bundles.unwrap_or(PatternsDto {
                include_patterns: vec![],
                exclude_patterns: vec![],
            });
            Resource::ReleaseBundle {
                include: p.include_patterns,
                exclude: p.exclude_patterns,
            }
        }
        "repository" => {
            let p = dto.repositories.unwrap_or(PatternsDto {
                include_patterns: vec![],
                exclude_patterns: vec![],
            });
            Resource::Repository {
                include: p.include_patterns,
                exclude: p.exclude_patterns,
            }
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "resource_type '{other}' is not destination, release_bundle or repository"
            )));
        }
    };
    let permission = Permission {
        name: name.clone(),
        resource,
        users: actions(dto.principals.users)?,
        groups: actions(dto.principals.groups)?,
    };
    permission.validate()?;
    let raw =
        serde_json::to_string(&permission).map_err(|e| ApiError::bad_request(e.to_string()))?;
    state
        .store
        .put_setting(&format!("{PERMISSION}{name}"), &raw)
        .await?;
    Ok(axum::Json(to_json(&permission)).into_response())
}

/// `GET /api/v1/security/permissions`.
pub(crate) async fn list_permissions(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    Ok(axum::Json(load(&state).await?.iter().map(to_json).collect::<Vec<_>>()).into_response())
}

/// `GET /api/v1/security/permissions/{name}`.
pub(crate) async fn get_permission(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let p = load(&state)
        .await?
        .iter()
        .find(|p| p.name == name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("permission '{name}' does not exist")))?;
    Ok(axum::Json(to_json(&p)).into_response())
}

/// `DELETE /api/v1/security/permissions/{name}`.
pub(crate) async fn delete_permission(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let _changed = state.auth.change();
    if !state
        .store
        .delete_setting(&format!("{PERMISSION}{name}"))
        .await?
    {
        return Err(ApiError::not_found(format!(
            "permission '{name}' does not exist"
        )));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- groups API (admin only) -----------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupDto {
    name: Option<String>,
    #[serde(default)]
    description: String,
    /// When given, exactly these users are the group's members.
    users: Option<Vec<String>>,
}

async fn group_json(state: &AppState, g: &Group) -> Result<Value, ApiError> {
    let members: Vec<String> = state
        .store
        .list_users()
        .await?
        .into_iter()
        .filter(|u| u.groups.contains(&g.name))
        .map(|u| u.name)
        .collect();
    Ok(json!({"name": g.name, "description": g.description, "users": members}))
}

async fn load_group(state: &AppState, name: &str) -> Result<Option<Group>, ApiError> {
    match state.store.get_setting(&format!("{GROUP}{name}")).await? {
        None => Ok(None),
        Some(raw) => Ok(serde_json::from_str(&raw).ok()),
    }
}

/// `PUT /api/v1/security/groups/{name}`: 201 creates, 200 replaces.
pub(crate) async fn put_group(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Json(dto): Json<GroupDto>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let _changed = state.auth.change();
    if name.is_empty()
        || name.chars().count() > 64
        || name.chars().any(|c| c.is_control() || c == '/')
    {
        return Err(ApiError::bad_request(
            "group name must be 1 to 64 characters, without '/' or control characters",
        ));
    }
    if dto.name.as_deref().is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(
            "the body's name differs from the URL's",
        ));
    }
    let created = load_group(&state, &name).await?.is_none();
    if let Some(members) = &dto.users {
        for m in members {
            if state.store.get_user(m).await?.is_none() {
                return Err(ApiError::bad_request(format!("user '{m}' does not exist")));
            }
        }
    }
    let group = Group {
        name: name.clone(),
        description: dto.description,
    };
    let raw = serde_json::to_string(&group).map_err(|e| ApiError::bad_request(e.to_string()))?;
    state
        .store
        .put_setting(&format!("{GROUP}{name}"), &raw)
        .await?;
    if let Some(members) = dto.users {
        for mut u in state.store.list_users().await? {
            let member = members.contains(&u.name);
            let listed = u.groups.contains(&name);
            if member != listed {
                if member {
                    u.groups.push(name.clone());
                } else {
                    u.groups.retain(|g| g != &name);
                }
                state.store.put_user(u).await?;
            }
        }
    }
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, axum::Json(group_json(&state, &group).await?)).into_response())
}

/// `GET /api/v1/security/groups`.
pub(crate) async fn list_groups(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let mut out = Vec::new();
    for (_, raw) in state.store.list_settings(GROUP).await? {
        if let Ok(g) = serde_json::from_str::<Group>(&raw) {
            out.push(group_json(&state, &g).await?);
        }
    }
    Ok(axum::Json(out).into_response())
}

/// `GET /api/v1/security/groups/{name}`.
pub(crate) async fn get_group(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let g = load_group(&state, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("group '{name}' does not exist")))?;
    Ok(axum::Json(group_json(&state, &g).await?).into_response())
}

/// `DELETE /api/v1/security/groups/{name}`: also removes the membership.
pub(crate) async fn delete_group(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let _changed = state.auth.change();
    if !state
        .store
        .delete_setting(&format!("{GROUP}{name}"))
        .await?
    {
        return Err(ApiError::not_found(format!(
            "group '{name}' does not exist"
        )));
    }
    for mut u in state
        .store
        .list_users()
        .await?
        .into_iter()
        .filter(|u| u.groups.contains(&name))
    {
        u.groups.retain(|g| g != &name);
        state.store.put_user(u).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
