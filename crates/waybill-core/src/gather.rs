//! Gathering a version's artifacts from the source repository: run each
//! spec query's AQL, map source paths to target paths, merge added
//! properties, and refuse anything that would put a file outside a
//! repository or two files on one path.

use std::collections::BTreeMap;

use regex::Regex;

use crate::Error;
use crate::aql::{self, Query};
use crate::artifact::{ItemKind, ItemPath, RepoKey};
use crate::bundle::{BundleArtifact, Props, Spec, SpecQuery};
use crate::store::ItemRepo;

fn invalid(reason: String) -> Error {
    Error::Invalid {
        field: "spec",
        reason,
    }
}

/// What one version may hold. A spec is work the hub does on every create
/// and update, and added properties are copied into every artifact, so each
/// is bounded; the figures are documented in `ARCHITECTURE.md`.
pub mod limits {
    /// Queries per spec.
    pub const QUERIES: usize = 32;
    /// Bytes of one query's AQL.
    pub const AQL_BYTES: usize = 64 << 10;
    /// Path mappings per query.
    pub const MAPPINGS: usize = 32;
    /// Bytes of one mapping's input or output.
    pub const MAPPING_BYTES: usize = 4 << 10;
    /// Added properties (keys) per query.
    pub const ADDED_PROPS: usize = 64;
    /// Values per added property.
    pub const PROP_VALUES: usize = 64;
    /// Bytes of one property value.
    pub const PROP_VALUE_BYTES: usize = 4 << 10;
    /// Bytes of every artifact's properties together (keys and values),
    /// after added properties are merged in.
    pub const VERSION_PROPS_BYTES: usize = 32 << 20;
    /// Bytes of a version's description.
    pub const DESCRIPTION_BYTES: usize = 16 << 10;
    /// Bytes of a version's release notes.
    pub const RELEASE_NOTES_BYTES: usize = 256 << 10;
}

/// Checks a spec against [`limits`], and added properties against the
/// rules deploys follow (keys of 1–255 characters, no control characters,
/// so no empty or NUL keys); a 400 naming the query and what is over.
pub fn check_spec(spec: &Spec) -> Result<(), Error> {
    if spec.queries.len() > limits::QUERIES {
        return Err(invalid(format!(
            "{} queries; a spec holds at most {}",
            spec.queries.len(),
            limits::QUERIES
        )));
    }
    for q in &spec.queries {
        let name = &q.query_name;
        let over = |what: &str, n: usize, max: usize| {
            invalid(format!("query '{name}': {what} is {n}; at most {max}"))
        };
        if q.aql.len() > limits::AQL_BYTES {
            return Err(over(
                "the AQL length in bytes",
                q.aql.len(),
                limits::AQL_BYTES,
            ));
        }
        if q.mappings.len() > limits::MAPPINGS {
            return Err(over(
                "the number of mappings",
                q.mappings.len(),
                limits::MAPPINGS,
            ));
        }
        if let Some(m) = q
            .mappings
            .iter()
            .find(|m| m.input.len().max(m.output.len()) > limits::MAPPING_BYTES)
        {
            let n = m.input.len().max(m.output.len());
            return Err(over(
                "a mapping's length in bytes",
                n,
                limits::MAPPING_BYTES,
            ));
        }
        if q.added_props.len() > limits::ADDED_PROPS {
            return Err(over(
                "the number of added_props",
                q.added_props.len(),
                limits::ADDED_PROPS,
            ));
        }
        let mut props = Props::new();
        for p in &q.added_props {
            if p.values.len() > limits::PROP_VALUES {
                return Err(over(
                    &format!("the number of values of added property '{}'", p.key),
                    p.values.len(),
                    limits::PROP_VALUES,
                ));
            }
            if let Some(v) = p.values.iter().find(|v| v.len() > limits::PROP_VALUE_BYTES) {
                return Err(over(
                    &format!("a value's length in bytes of added property '{}'", p.key),
                    v.len(),
                    limits::PROP_VALUE_BYTES,
                ));
            }
            props.insert(p.key.clone(), p.values.clone());
        }
        crate::artifact::validate_props(&props).map_err(|e| match e {
            Error::Invalid { reason, .. } => {
                invalid(format!("query '{name}': added_props: {reason}"))
            }
            other => other,
        })?;
    }
    Ok(())
}

/// Fills in defaults: a query without a name is `query-{index}`.
pub fn normalise_spec(mut spec: Spec) -> Spec {
    for (i, q) in spec.queries.iter_mut().enumerate() {
        if q.query_name.trim().is_empty() {
            q.query_name = SpecQuery::default_name(i);
        }
    }
    spec
}

/// Applies the first mapping whose regex matches `source`; `$1`… in the
/// output are capture groups. Without a matching mapping the path is kept.
pub fn map_path(mappings: &[(Regex, String)], source: &str) -> String {
    for (re, output) in mappings {
        if re.is_match(source) {
            // `$1` followed by text must not read as a group named `1text`.
            let braced = braced_groups(output);
            return re.replace(source, braced.as_str()).into_owned();
        }
    }
    source.to_string()
}

fn braced_groups(output: &str) -> String {
    let mut out = String::with_capacity(output.len() + 8);
    let mut chars = output.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            let mut n = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                n.push(*d);
                chars.next();
            }
            out.push_str(&format!("${{{n}}}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks that a mapped target names a file inside a repository.
pub fn check_target(target: &str) -> Result<(RepoKey, ItemPath), String> {
    if target.trim().is_empty() {
        return Err("an empty path".into());
    }
    if target.starts_with('/') {
        return Err(format!("the absolute path '{target}'"));
    }
    let (repo, rest) = target.split_once('/').unwrap_or((target, ""));
    let repo = RepoKey::parse(repo)
        .map_err(|e| format!("'{target}', which is outside any repository ({e})"))?;
    let path = ItemPath::parse(rest).map_err(|e| format!("'{target}' ({e})"))?;
    if path.is_root() {
        return Err(format!("'{target}', a repository root rather than a file"));
    }
    Ok((repo, path))
}

fn merge_props(into: &mut Props, added: &[crate::bundle::AddedProp]) {
    for p in added {
        let values = into.entry(p.key.clone()).or_default();
        for v in &p.values {
            if !values.contains(v) {
                values.push(v.clone());
            }
        }
    }
}

/// Runs every query of `spec` and returns the version's artifacts, in query
/// order and, within a query, in path order. Relative times in the queries
/// (`$last`, `$before`) count back from `now`.
///
/// `may_read` says whether the caller may read a repository: a matched file
/// in one they may not read refuses the whole spec with `Error::Forbidden`
/// naming the repository (never the file), rather than dropping it silently.
pub async fn gather(
    store: &dyn ItemRepo,
    spec: &Spec,
    now: crate::bundle::Millis,
    may_read: &(dyn Fn(&str) -> bool + Send + Sync),
) -> Result<Vec<BundleArtifact>, Error> {
    check_spec(spec)?;
    let mut artifacts: Vec<BundleArtifact> = Vec::new();
    // target path -> index in `artifacts`
    let mut targets: BTreeMap<String, usize> = BTreeMap::new();
    // Added properties multiply by artifacts: bound what is built.
    let mut props_total = 0usize;
    for q in &spec.queries {
        let name = &q.query_name;
        let query = Query::parse_at(&q.aql, now).map_err(|e| match e {
            Error::Invalid { reason, .. } => invalid(format!("query '{name}': {reason}")),
            other => other,
        })?;
        let mappings = q
            .mappings
            .iter()
            .enumerate()
            .map(|(j, m)| {
                Regex::new(&m.input)
                    .map(|re| (re, m.output.clone()))
                    .map_err(|e| {
                        invalid(format!(
                            "query '{name}': mapping {j} input '{}' is not a regex: {e}",
                            m.input
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for item in aql::run(store, &query)
            .await?
            .into_iter()
            .filter(|i| i.kind == ItemKind::File)
        {
            if !may_read(item.repo.as_str()) {
                return Err(Error::Forbidden(format!(
                    "query '{name}' matches files in repository '{}', which you may not read; \
                     narrow the query or ask for read permission on it",
                    item.repo
                )));
            }
            let Some(sums) = item.checksums else { continue };
            let source = item.repo_path();
            let target = map_path(&mappings, &source);
            check_target(&target).map_err(|why| {
                invalid(format!("query '{name}': artifact '{source}' maps to {why}"))
            })?;
            let mut props = item.props.clone();
            merge_props(&mut props, &q.added_props);
            if let Some(&at) = targets.get(&target) {
                let existing = &mut artifacts[at];
                if existing.source_repo_path != source {
                    return Err(invalid(format!(
                        "query '{name}': artifacts '{}' and '{source}' both map to '{target}'",
                        existing.source_repo_path
                    )));
                }
                // The same file gathered twice: one artifact, properties merged.
                for (k, vs) in props {
                    let values = existing.props.entry(k).or_default();
                    for v in vs {
                        if !values.contains(&v) {
                            values.push(v);
                        }
                    }
                }
                continue;
            }
            targets.insert(target.clone(), artifacts.len());
            props_total += props
                .iter()
                .map(|(k, vs)| k.len() + vs.iter().map(String::len).sum::<usize>())
                .sum::<usize>();
            if props_total > limits::VERSION_PROPS_BYTES {
                return Err(invalid(format!(
                    "the artifacts' properties exceed {} MiB in all; add fewer or shorter properties, or split the bundle",
                    limits::VERSION_PROPS_BYTES >> 20
                )));
            }
            artifacts.push(BundleArtifact {
                checksum: sums.sha256,
                source_repo_path: source,
                target_repo_path: target,
                size: item.size,
                props,
                scan: None,
            });
        }
    }
    Ok(artifacts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_use_capture_groups_and_first_match_wins() {
        let m = vec![
            (
                Regex::new("^libs/(.*)/(.*)$").unwrap(),
                "prod/$1/mapped/$2".to_string(),
            ),
            (Regex::new("^libs/(.*)$").unwrap(), "never/$1".to_string()),
        ];
        assert_eq!(map_path(&m, "libs/org/app.jar"), "prod/org/mapped/app.jar");
        assert_eq!(map_path(&m, "other/x"), "other/x");
        let glued = vec![(Regex::new("^a/(.*)$").unwrap(), "b/$1x".to_string())];
        assert_eq!(
            map_path(&glued, "a/file"),
            "b/filex",
            "$1x is group 1 then 'x'"
        );
    }

    #[test]
    fn targets_must_be_files_inside_repositories() {
        assert!(check_target("prod/app/a.jar").is_ok());
        for (bad, why) in [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("prod/../etc/passwd", "'..'"),
            ("prod", "repository root"),
            ("bad key/a", "outside any repository"),
        ] {
            let err = check_target(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn default_query_names() {
        let q = |n: &str| SpecQuery {
            aql: String::new(),
            query_name: n.into(),
            mappings: vec![],
            added_props: vec![],
        };
        let spec = normalise_spec(Spec {
            queries: vec![q(""), q("mine"), q(" ")],
        });
        let names: Vec<&str> = spec.queries.iter().map(|q| q.query_name.as_str()).collect();
        assert_eq!(names, ["query-0", "mine", "query-2"]);
    }
}
