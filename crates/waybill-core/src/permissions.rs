//! Who may do what: destination, release-bundle and repository permissions,
//! and their evaluation.
//!
//! A permission grants actions to users and groups on one kind of resource:
//! - `destination`: edge sites chosen by distribution rules; actions `x`
//!   (distribute) and `d` (delete from edges);
//! - `release_bundle`: bundle names by include/exclude wildcards; actions
//!   `r` (read), `w` (create, update, sign), `d` (delete), `x` (distribute);
//! - `repository`: repository keys by include/exclude wildcards; actions
//!   `r` (read), `w` (deploy), `d` (delete).
//!
//! Grants only add up: there is no deny. Administrators may do everything.
//! Bundle and repository patterns match case-sensitively; an empty include
//! list includes everything.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::rules::{DistributionRule, Pattern, RuleSet};
use crate::site::EdgeSite;

/// An action a permission grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Action {
    /// `r`
    Read,
    /// `w`
    Write,
    /// `d`
    Delete,
    /// `x`
    Distribute,
}

impl Action {
    /// Parses the one-letter wire form.
    pub fn parse(raw: &str) -> Result<Action, Error> {
        Ok(match raw {
            "r" | "read" => Action::Read,
            "w" | "write" => Action::Write,
            "d" | "delete" => Action::Delete,
            "x" | "distribute" => Action::Distribute,
            other => {
                return Err(Error::invalid(
                    "principals",
                    format!("'{other}' is not an action; use r, w, d or x"),
                ));
            }
        })
    }

    /// The one-letter wire form.
    pub fn letter(self) -> &'static str {
        match self {
            Action::Read => "r",
            Action::Write => "w",
            Action::Delete => "d",
            Action::Distribute => "x",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Delete => "delete",
            Action::Distribute => "distribute",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' ({})", self.letter(), self.word())
    }
}

/// What a permission is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Resource {
    /// Edge sites chosen by rules.
    Destination(Vec<DistributionRule>),
    /// Release bundles by name.
    ReleaseBundle {
        /// Names included (wildcards); empty means all.
        include: Vec<String>,
        /// Names excluded (wildcards).
        exclude: Vec<String>,
    },
    /// Repositories by key.
    Repository {
        /// Keys included (wildcards); empty means all.
        include: Vec<String>,
        /// Keys excluded (wildcards).
        exclude: Vec<String>,
    },
}

impl Resource {
    /// The wire name of the resource type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Resource::Destination(_) => "destination",
            Resource::ReleaseBundle { .. } => "release_bundle",
            Resource::Repository { .. } => "repository",
        }
    }

    fn allowed_actions(&self) -> &'static [Action] {
        match self {
            Resource::Destination(_) => &[Action::Distribute, Action::Delete],
            Resource::ReleaseBundle { .. } => &[
                Action::Read,
                Action::Write,
                Action::Delete,
                Action::Distribute,
            ],
            Resource::Repository { .. } => &[Action::Read, Action::Write, Action::Delete],
        }
    }
}

/// A named permission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    /// Unique name.
    pub name: String,
    /// What it is about.
    pub resource: Resource,
    /// Actions per user name.
    pub users: BTreeMap<String, Vec<Action>>,
    /// Actions per group name.
    pub groups: BTreeMap<String, Vec<Action>>,
}

impl Permission {
    /// Checks the name and that every action suits the resource type.
    pub fn validate(&self) -> Result<(), Error> {
        if self.name.is_empty()
            || self.name.chars().count() > 128
            || self.name.chars().any(|c| c.is_control() || c == '/')
        {
            return Err(Error::invalid(
                "name",
                "must be 1 to 128 characters, without '/' or control characters",
            ));
        }
        let allowed = self.resource.allowed_actions();
        for (who, actions) in self.users.iter().chain(&self.groups) {
            if let Some(a) = actions.iter().find(|a| !allowed.contains(a)) {
                return Err(Error::invalid(
                    "principals",
                    format!(
                        "{a} does not apply to a {} permission (given to '{who}')",
                        self.resource.type_name()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn grants(&self, caller: &Caller<'_>, action: Action) -> bool {
        let has = |actions: &Vec<Action>| actions.contains(&action);
        self.users.get(caller.name).is_some_and(has)
            || caller
                .groups
                .iter()
                .any(|g| self.groups.get(g).is_some_and(has))
    }
}

/// A group of users.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
}

/// The caller, as permissions see it.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// User name.
    pub name: &'a str,
    /// Groups the user belongs to.
    pub groups: &'a [String],
    /// Administrators may do everything.
    pub admin: bool,
}

fn names_match(include: &[String], exclude: &[String], name: &str) -> bool {
    let any = |patterns: &[String]| {
        patterns
            .iter()
            .any(|p| Pattern::case_sensitive(p).matches(name))
    };
    (include.is_empty() || any(include)) && !any(exclude)
}

/// Whether the caller may do `action` on release bundle `name`.
pub fn may_bundle(perms: &[Permission], caller: &Caller<'_>, name: &str, action: Action) -> bool {
    caller.admin
        || perms.iter().any(|p| match &p.resource {
            Resource::ReleaseBundle { include, exclude } => {
                names_match(include, exclude, name) && p.grants(caller, action)
            }
            _ => false,
        })
}

/// Whether the caller may do `action` on repository `key`.
pub fn may_repository(
    perms: &[Permission],
    caller: &Caller<'_>,
    key: &str,
    action: Action,
) -> bool {
    caller.admin
        || perms.iter().any(|p| match &p.resource {
            Resource::Repository { include, exclude } => {
                names_match(include, exclude, key) && p.grants(caller, action)
            }
            _ => false,
        })
}

/// The sites among `sites` the caller may `action` (distribute or delete) to.
pub fn allowed_sites<'s>(
    perms: &[Permission],
    caller: &Caller<'_>,
    action: Action,
    sites: &'s [EdgeSite],
) -> Vec<&'s EdgeSite> {
    if caller.admin {
        return sites.iter().collect();
    }
    let grants: Vec<RuleSet> = perms
        .iter()
        .filter(|p| p.grants(caller, action))
        .filter_map(|p| match &p.resource {
            Resource::Destination(rules) => Some(RuleSet::new(rules)),
            _ => None,
        })
        .collect();
    sites
        .iter()
        .filter(|s| grants.iter().any(|g| g.matches(s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(
        name: &str,
        resource: Resource,
        users: &[(&str, &[Action])],
        groups: &[(&str, &[Action])],
    ) -> Permission {
        let map =
            |v: &[(&str, &[Action])]| v.iter().map(|(k, a)| (k.to_string(), a.to_vec())).collect();
        Permission {
            name: name.into(),
            resource,
            users: map(users),
            groups: map(groups),
        }
    }

    fn rb(include: &[&str], exclude: &[&str]) -> Resource {
        Resource::ReleaseBundle {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn bundle_permission_truth_table() {
        use Action::*;
        let perms = vec![
            perm(
                "apps",
                rb(&["app*"], &["app-secret"]),
                &[("dev", &[Read, Write])],
                &[("ops", &[Read, Distribute, Delete])],
            ),
            perm("all-read", rb(&[], &[]), &[], &[("auditors", &[Read])]),
        ];
        let groups_ops = vec!["ops".to_string()];
        let groups_aud = vec!["auditors".to_string()];
        let dev = Caller {
            name: "dev",
            groups: &[],
            admin: false,
        };
        let op = Caller {
            name: "op",
            groups: &groups_ops,
            admin: false,
        };
        let aud = Caller {
            name: "aud",
            groups: &groups_aud,
            admin: false,
        };
        let root = Caller {
            name: "root",
            groups: &[],
            admin: true,
        };
        let mut table = String::new();
        for (who, c) in [("dev", &dev), ("op", &op), ("aud", &aud), ("root", &root)] {
            for bundle in ["app", "app-secret", "other"] {
                let letters: String = [Read, Write, Delete, Distribute]
                    .into_iter()
                    .map(|a| {
                        if may_bundle(&perms, c, bundle, a) {
                            a.letter()
                        } else {
                            "-"
                        }
                    })
                    .collect();
                table.push_str(&format!("{who} {bundle}: {letters}\n"));
            }
        }
        assert_eq!(
            table,
            "dev app: rw--\ndev app-secret: ----\ndev other: ----\n\
             op app: r-dx\nop app-secret: ----\nop other: ----\n\
             aud app: r---\naud app-secret: r---\naud other: r---\n\
             root app: rwdx\nroot app-secret: rwdx\nroot other: rwdx\n"
        );
    }

    #[test]
    fn destinations_filter_sites() {
        let sites = vec![
            EdgeSite::for_matching("de-fra-1", "Frankfurt", "DE"),
            EdgeSite::for_matching("us-nyc-1", "New York", "US"),
        ];
        let de_only = DistributionRule {
            site_name: None,
            city_name: None,
            country_codes: vec!["DE".into()],
        };
        let perms = vec![perm(
            "de",
            Resource::Destination(vec![de_only]),
            &[("dev", &[Action::Distribute])],
            &[],
        )];
        let dev = Caller {
            name: "dev",
            groups: &[],
            admin: false,
        };
        let names = |a: Action| -> Vec<String> {
            allowed_sites(&perms, &dev, a, &sites)
                .into_iter()
                .map(|s| s.name.clone())
                .collect()
        };
        assert_eq!(names(Action::Distribute), ["de-fra-1"]);
        assert!(names(Action::Delete).is_empty(), "x does not imply d");
        let nobody = Caller {
            name: "x",
            groups: &[],
            admin: false,
        };
        assert!(allowed_sites(&perms, &nobody, Action::Distribute, &sites).is_empty());
    }

    #[test]
    fn validation_refuses_actions_that_do_not_apply() {
        let bad = perm(
            "d",
            Resource::Destination(vec![]),
            &[("u", &[Action::Read])],
            &[],
        );
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("'r' (read) does not apply to a destination permission"),
            "{err}"
        );
        assert!(
            perm("ok", rb(&[], &[]), &[("u", &[Action::Read])], &[])
                .validate()
                .is_ok()
        );
        assert!(perm("a/b", rb(&[], &[]), &[], &[]).validate().is_err());
        assert!(Action::parse("q").is_err());
    }
}
