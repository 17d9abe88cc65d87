//! Authorization: the checks every use-case makes, and the permissions and
//! groups that feed them.
//!
//! Permissions and groups are stored as JSON documents in the settings store
//! (`security.permission.<name>`, `security.group.<name>`): few, small, and
//! read whole on every check, which keeps every backend's schema unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;

use waybill_core::permissions::{self, Action, Group, Permission, Resource};
use waybill_core::rules::DistributionRule;
use waybill_core::site::EdgeSite;
use waybill_core::store::Store;

use super::Security;
use crate::{Error, Principal};

const PERMISSION: &str = "security.permission.";
const GROUP: &str = "security.group.";

/// Every stored permission, read from `store`.
pub(crate) async fn load_from(store: &dyn Store) -> Result<Vec<Permission>, Error> {
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

/// Include and exclude name patterns.
#[derive(Clone, Debug, Default)]
pub struct Patterns {
    /// Names matching one of these are in...
    pub include: Vec<String>,
    /// ...unless they match one of these.
    pub exclude: Vec<String>,
}

/// A permission as a request states it, checked by [`Security::put_permission`].
#[derive(Clone, Debug, Default)]
pub struct PermissionRequest {
    /// The name the body states, if any; it must equal the addressed one.
    pub body_name: Option<String>,
    /// `destination`, `release_bundle` or `repository`.
    pub resource_type: String,
    /// For `destination`: the sites it covers.
    pub destinations: Option<Vec<DistributionRule>>,
    /// For `release_bundle`.
    pub release_bundles: Option<Patterns>,
    /// For `repository`.
    pub repositories: Option<Patterns>,
    /// User → action letters.
    pub users: BTreeMap<String, Vec<String>>,
    /// Group → action letters.
    pub groups: BTreeMap<String, Vec<String>>,
}

fn actions(map: BTreeMap<String, Vec<String>>) -> Result<BTreeMap<String, Vec<Action>>, Error> {
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

/// A group and its members.
#[derive(Clone, Debug)]
pub struct GroupView {
    /// The group.
    pub group: Group,
    /// Names of the users in it.
    pub members: Vec<String>,
}

/// Checks a group name: 1 to 64 characters, no `/`, no control characters.
fn validate_group_name(name: &str) -> Result<(), Error> {
    if name.is_empty()
        || name.chars().count() > 64
        || name.chars().any(|c| c.is_control() || c == '/')
    {
        return Err(Error::invalid(
            "group name must be 1 to 64 characters, without '/' or control characters",
        ));
    }
    Ok(())
}

impl Security {
    /// Forbidden unless the caller may `action` on bundle `name`.
    pub async fn require_bundle(
        &self,
        who: &Principal,
        name: &str,
        action: Action,
    ) -> Result<(), Error> {
        if who.admin
            || permissions::may_bundle(&self.permissions().await?, &who.caller(), name, action)
        {
            return Ok(());
        }
        Err(Error::forbidden(format!(
            "user '{}' needs {action} permission on release bundle '{name}'",
            who.name
        )))
    }

    /// A predicate for "the caller may read this name", loading permissions once.
    async fn readable(
        &self,
        who: &Principal,
        may: fn(&[Permission], &permissions::Caller<'_>, &str, Action) -> bool,
    ) -> Result<impl Fn(&str) -> bool + Send + Sync + use<>, Error> {
        let perms = if who.admin {
            Arc::default()
        } else {
            self.permissions().await?
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
    pub async fn readable_bundles(
        &self,
        who: &Principal,
    ) -> Result<impl Fn(&str) -> bool + Send + Sync + use<>, Error> {
        self.readable(who, permissions::may_bundle).await
    }

    /// Forbidden unless the caller may `action` on repository `key`.
    pub async fn require_repository(
        &self,
        who: &Principal,
        key: &str,
        action: Action,
    ) -> Result<(), Error> {
        if who.admin
            || permissions::may_repository(&self.permissions().await?, &who.caller(), key, action)
        {
            return Ok(());
        }
        Err(Error::forbidden(format!(
            "user '{}' needs {action} permission on repository '{key}'",
            who.name
        )))
    }

    /// Which repositories the caller may read.
    pub async fn readable_repositories(
        &self,
        who: &Principal,
    ) -> Result<impl Fn(&str) -> bool + Send + Sync + use<>, Error> {
        self.readable(who, permissions::may_repository).await
    }

    /// Narrows `selected` sites to those the caller's destination
    /// permissions allow for `action`; forbidden, naming the sites, when
    /// none remains.
    pub async fn allowed_sites(
        &self,
        who: &Principal,
        action: Action,
        selected: Vec<EdgeSite>,
    ) -> Result<Vec<EdgeSite>, Error> {
        if who.admin {
            return Ok(selected);
        }
        let perms = self.permissions().await?;
        let allowed: Vec<EdgeSite> =
            permissions::allowed_sites(&perms, &who.caller(), action, &selected)
                .into_iter()
                .cloned()
                .collect();
        if allowed.is_empty() {
            let names: Vec<&str> = selected.iter().map(|s| s.name.as_str()).collect();
            return Err(Error::forbidden(format!(
                "user '{}' needs {action} on a destination permission covering one of the selected sites ({})",
                who.name,
                names.join(", ")
            )));
        }
        Ok(allowed)
    }

    /// Creates or replaces permission `name` (admin only).
    pub async fn put_permission(
        &self,
        who: &Principal,
        name: &str,
        req: PermissionRequest,
    ) -> Result<Permission, Error> {
        who.require_admin()?;
        let _changed = self.change();
        if req.body_name.as_deref().is_some_and(|n| n != name) {
            return Err(Error::invalid("the body's name differs from the URL's"));
        }
        let resource = match req.resource_type.as_str() {
            "destination" => Resource::Destination(req.destinations.ok_or_else(|| {
                Error::invalid("a destination permission needs distribution_destinations")
            })?),
            "release_bundle" => {
                let p = req.release_bundles.unwrap_or_default();
                Resource::ReleaseBundle {
                    include: p.include,
                    exclude: p.exclude,
                }
            }
            "repository" => {
                let p = req.repositories.unwrap_or_default();
                Resource::Repository {
                    include: p.include,
                    exclude: p.exclude,
                }
            }
            other => {
                return Err(Error::invalid(format!(
                    "resource_type '{other}' is not destination, release_bundle or repository"
                )));
            }
        };
        let permission = Permission {
            name: name.to_string(),
            resource,
            users: actions(req.users)?,
            groups: actions(req.groups)?,
        };
        permission.validate()?;
        let raw = serde_json::to_string(&permission).map_err(|e| Error::invalid(e.to_string()))?;
        self.store
            .put_setting(&format!("{PERMISSION}{name}"), &raw)
            .await?;
        Ok(permission)
    }

    /// Every permission (admin only).
    pub async fn list_permissions(&self, who: &Principal) -> Result<Arc<Vec<Permission>>, Error> {
        who.require_admin()?;
        self.permissions().await
    }

    /// Permission `name` (admin only).
    pub async fn get_permission(&self, who: &Principal, name: &str) -> Result<Permission, Error> {
        who.require_admin()?;
        self.permissions()
            .await?
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("permission '{name}' does not exist")))
    }

    /// Deletes permission `name` (admin only).
    pub async fn delete_permission(&self, who: &Principal, name: &str) -> Result<(), Error> {
        who.require_admin()?;
        let _changed = self.change();
        if !self
            .store
            .delete_setting(&format!("{PERMISSION}{name}"))
            .await?
        {
            return Err(Error::not_found(format!(
                "permission '{name}' does not exist"
            )));
        }
        Ok(())
    }

    async fn group_view(&self, group: Group) -> Result<GroupView, Error> {
        let members = self
            .store
            .list_users()
            .await?
            .into_iter()
            .filter(|u| u.groups.contains(&group.name))
            .map(|u| u.name)
            .collect();
        Ok(GroupView { group, members })
    }

    async fn load_group(&self, name: &str) -> Result<Option<Group>, Error> {
        match self.store.get_setting(&format!("{GROUP}{name}")).await? {
            None => Ok(None),
            Some(raw) => Ok(serde_json::from_str(&raw).ok()),
        }
    }

    /// Creates or replaces group `name` (admin only); `members`, when
    /// given, become exactly its users. True when it was created.
    pub async fn put_group(
        &self,
        who: &Principal,
        name: &str,
        body_name: Option<&str>,
        description: String,
        members: Option<Vec<String>>,
    ) -> Result<(GroupView, bool), Error> {
        who.require_admin()?;
        let _changed = self.change();
        validate_group_name(name)?;
        if body_name.is_some_and(|n| n != name) {
            return Err(Error::invalid("the body's name differs from the URL's"));
        }
        let created = self.load_group(name).await?.is_none();
        if let Some(members) = &members {
            for m in members {
                if self.store.get_user(m).await?.is_none() {
                    return Err(Error::invalid(format!("user '{m}' does not exist")));
                }
            }
        }
        let group = Group {
            name: name.to_string(),
            description,
        };
        let raw = serde_json::to_string(&group).map_err(|e| Error::invalid(e.to_string()))?;
        self.store
            .put_setting(&format!("{GROUP}{name}"), &raw)
            .await?;
        if let Some(members) = members {
            for mut u in self.store.list_users().await? {
                let member = members.contains(&u.name);
                let listed = u.groups.iter().any(|g| g == name);
                if member != listed {
                    if member {
                        u.groups.push(name.to_string());
                    } else {
                        u.groups.retain(|g| g != name);
                    }
                    self.store.put_user(u).await?;
                }
            }
        }
        Ok((self.group_view(group).await?, created))
    }

    /// Every group with its members (admin only).
    pub async fn list_groups(&self, who: &Principal) -> Result<Vec<GroupView>, Error> {
        who.require_admin()?;
        let mut out = Vec::new();
        for (_, raw) in self.store.list_settings(GROUP).await? {
            if let Ok(g) = serde_json::from_str::<Group>(&raw) {
                out.push(self.group_view(g).await?);
            }
        }
        Ok(out)
    }

    /// Group `name` with its members (admin only).
    pub async fn get_group(&self, who: &Principal, name: &str) -> Result<GroupView, Error> {
        who.require_admin()?;
        let g = self
            .load_group(name)
            .await?
            .ok_or_else(|| Error::not_found(format!("group '{name}' does not exist")))?;
        self.group_view(g).await
    }

    /// Deletes group `name` and every membership in it (admin only).
    pub async fn delete_group(&self, who: &Principal, name: &str) -> Result<(), Error> {
        who.require_admin()?;
        let _changed = self.change();
        if !self.store.delete_setting(&format!("{GROUP}{name}")).await? {
            return Err(Error::not_found(format!("group '{name}' does not exist")));
        }
        for mut u in self
            .store
            .list_users()
            .await?
            .into_iter()
            .filter(|u| u.groups.iter().any(|g| g == name))
        {
            u.groups.retain(|g| g != name);
            self.store.put_user(u).await?;
        }
        Ok(())
    }
}
