//! The permissions and groups APIs under `/api/v1/security/{permissions,groups}`
//! (admin only): wire shapes around [`Security`]'s use-cases.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use waybill_app::security::{GroupView, Patterns, PermissionRequest};
use waybill_core::permissions::{Action, Permission, Resource};
use waybill_core::rules::DistributionRule;

use crate::Caller;
use crate::{ApiError, HubState, Json};

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

impl From<PatternsDto> for Patterns {
    fn from(p: PatternsDto) -> Patterns {
        Patterns {
            include: p.include_patterns,
            exclude: p.exclude_patterns,
        }
    }
}

/// `PUT /api/v1/security/permissions/{name}`: create or replace; 200 with the permission.
pub(crate) async fn put_permission(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Json(dto): Json<PermissionDto>,
) -> Result<Response, ApiError> {
    let req = PermissionRequest {
        body_name: dto.name,
        resource_type: dto.resource_type,
        destinations: dto.distribution_destinations.map(|ds| {
            ds.into_iter()
                .map(|d| DistributionRule {
                    site_name: d.site_name,
                    city_name: d.city_name,
                    country_codes: d.country_codes.unwrap_or_default(),
                })
                .collect()
        }),
        release_bundles: dto.release_bundles.map(Patterns::from),
        repositories: dto.repositories.map(Patterns::from),
        users: dto.principals.users,
        groups: dto.principals.groups,
    };
    let permission = state.security.put_permission(&who, &name, req).await?;
    Ok(axum::Json(to_json(&permission)).into_response())
}

/// `GET /api/v1/security/permissions`.
pub(crate) async fn list_permissions(
    State(state): State<HubState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    let all = state.security.list_permissions(&who).await?;
    Ok(axum::Json(all.iter().map(to_json).collect::<Vec<_>>()).into_response())
}

/// `GET /api/v1/security/permissions/{name}`.
pub(crate) async fn get_permission(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let p = state.security.get_permission(&who, &name).await?;
    Ok(axum::Json(to_json(&p)).into_response())
}

/// `DELETE /api/v1/security/permissions/{name}`.
pub(crate) async fn delete_permission(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    state.security.delete_permission(&who, &name).await?;
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

fn group_json(g: &GroupView) -> Value {
    json!({"name": g.group.name, "description": g.group.description, "users": g.members})
}

/// `PUT /api/v1/security/groups/{name}`: 201 creates, 200 replaces.
pub(crate) async fn put_group(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    Json(dto): Json<GroupDto>,
) -> Result<Response, ApiError> {
    let (group, created) = state
        .security
        .put_group(&who, &name, dto.name.as_deref(), dto.description, dto.users)
        .await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, axum::Json(group_json(&group))).into_response())
}

/// `GET /api/v1/security/groups`.
pub(crate) async fn list_groups(
    State(state): State<HubState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    let groups = state.security.list_groups(&who).await?;
    Ok(axum::Json(groups.iter().map(group_json).collect::<Vec<_>>()).into_response())
}

/// `GET /api/v1/security/groups/{name}`.
pub(crate) async fn get_group(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let g = state.security.get_group(&who, &name).await?;
    Ok(axum::Json(group_json(&g)).into_response())
}

/// `DELETE /api/v1/security/groups/{name}`: also removes the membership.
pub(crate) async fn delete_group(
    State(state): State<HubState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    state.security.delete_group(&who, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
