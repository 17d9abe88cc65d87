//! The source repository's model: repositories, validated item paths, items
//! (files and folders with checksums and properties) and build records.
//!
//! Item addresses follow Artifactory: an item is `(repo, path, name)` where
//! `path` is its folder (`.` at the repository root), so `libs/a/b.jar` is
//! repo `libs`, path `a`, name `b.jar`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::bundle::{Millis, Props};
use crate::digest::{Checksums, Md5, Sha1, Sha256};

/// A repository key, such as `libs-release-local`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoKey(String);

impl RepoKey {
    /// Keys that would collide with API routes under `/artifactory/`.
    const RESERVED: [&'static str; 2] = ["api", "ui"];

    /// Parses a key: 1–64 characters of `A-Z a-z 0-9 . _ -`, not starting with
    /// `.` or `-`, and not a reserved word.
    pub fn parse(raw: impl Into<String>) -> Result<RepoKey, Error> {
        let raw = raw.into();
        if raw.is_empty() || raw.len() > 64 {
            return Err(Error::invalid(
                "repository key",
                "must be 1 to 64 characters",
            ));
        }
        if let Some(c) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(Error::invalid(
                "repository key",
                format!(
                    "'{raw}' contains {c:?}; only letters, digits, '.', '_' and '-' are allowed"
                ),
            ));
        }
        if raw.starts_with(['.', '-']) {
            return Err(Error::invalid(
                "repository key",
                format!("'{raw}' must start with a letter, digit or '_'"),
            ));
        }
        if Self::RESERVED.iter().any(|r| r.eq_ignore_ascii_case(&raw)) {
            return Err(Error::invalid(
                "repository key",
                format!("'{raw}' is reserved"),
            ));
        }
        Ok(RepoKey(raw))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RepoKey {
    type Error = Error;
    fn try_from(raw: String) -> Result<Self, Error> {
        RepoKey::parse(raw)
    }
}

impl From<RepoKey> for String {
    fn from(k: RepoKey) -> String {
        k.0
    }
}

/// A normalised path inside a repository: segments joined by `/`, no empty,
/// `.` or `..` segments, no leading or trailing `/`. The empty path is the root.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ItemPath(String);

impl ItemPath {
    /// The repository root.
    pub fn root() -> ItemPath {
        ItemPath(String::new())
    }

    /// Parses and normalises a path: `a//b/./c/` becomes `a/b/c`.
    ///
    /// Refused: a leading `/` (absolute), `..` segments, NUL and other control
    /// characters, bidirectional and line-separator characters
    /// ([`crate::name::unsafe_char`]), and `\` (a separator on Windows edges).
    pub fn parse(raw: &str) -> Result<ItemPath, Error> {
        if raw.starts_with('/') {
            return Err(Error::invalid(
                "path",
                format!("'{raw}' is absolute; paths are relative to the repository"),
            ));
        }
        if let Some(c) = raw
            .chars()
            .find(|c| crate::name::unsafe_char(*c) || *c == '\\')
        {
            return Err(Error::invalid(
                "path",
                format!("must not contain {}", crate::name::describe_char(c)),
            ));
        }
        let mut segments = Vec::new();
        for seg in raw.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    return Err(Error::invalid(
                        "path",
                        format!("'{raw}' contains a '..' segment"),
                    ));
                }
                s => segments.push(s),
            }
        }
        if raw.len() > 1024 {
            return Err(Error::invalid("path", "is longer than 1024 bytes"));
        }
        Ok(ItemPath(segments.join("/")))
    }

    /// The path as text (`""` for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the repository root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The last segment (`""` for the root).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The folder holding this item, in AQL's notation: `.` at the root.
    pub fn folder(&self) -> &str {
        match self.0.rfind('/') {
            Some(i) => &self.0[..i],
            None => ".",
        }
    }

    /// The parent path, or `None` for the root.
    pub fn parent(&self) -> Option<ItemPath> {
        if self.is_root() {
            return None;
        }
        Some(ItemPath(match self.0.rfind('/') {
            Some(i) => self.0[..i].to_string(),
            None => String::new(),
        }))
    }

    /// Every ancestor folder, outermost first, excluding the root and self.
    pub fn ancestors(&self) -> Vec<ItemPath> {
        let mut out = Vec::new();
        let mut cur = self.parent();
        while let Some(p) = cur {
            if p.is_root() {
                break;
            }
            cur = p.parent();
            out.push(p);
        }
        out.reverse();
        out
    }

    /// The child `name` of this folder.
    pub fn join(&self, name: &str) -> Result<ItemPath, Error> {
        if self.is_root() {
            ItemPath::parse(name)
        } else {
            ItemPath::parse(&format!("{}/{name}", self.0))
        }
    }

    /// Number of segments (Artifactory's `depth`).
    pub fn depth(&self) -> u64 {
        if self.is_root() {
            0
        } else {
            self.0.split('/').count() as u64
        }
    }

    /// Whether `other` is this path or lies below it.
    pub fn contains(&self, other: &ItemPath) -> bool {
        self.is_root()
            || other.0 == self.0
            || (other.0.starts_with(&self.0) && other.0.as_bytes().get(self.0.len()) == Some(&b'/'))
    }
}

impl fmt::Display for ItemPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ItemPath {
    type Error = Error;
    fn try_from(raw: String) -> Result<Self, Error> {
        let parsed = ItemPath::parse(&raw)?;
        if parsed.0 != raw {
            return Err(Error::invalid("path", format!("'{raw}' is not normalised")));
        }
        Ok(parsed)
    }
}

impl From<ItemPath> for String {
    fn from(p: ItemPath) -> String {
        p.0
    }
}

/// A local repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    /// Its key.
    pub key: RepoKey,
    /// Package type as given (`generic`, `maven`, `docker`, …).
    pub package_type: String,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created: Millis,
    /// Whether ordinary deploys are refused (storing repositories of signed bundles).
    pub read_only: bool,
}

/// File or folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ItemKind {
    /// A file with content.
    File,
    /// A folder.
    Folder,
}

impl ItemKind {
    /// AQL's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::File => "file",
            ItemKind::Folder => "folder",
        }
    }
}

/// A file or folder in a repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The repository.
    pub repo: RepoKey,
    /// Where in the repository.
    pub path: ItemPath,
    /// File or folder.
    pub kind: ItemKind,
    /// Size in bytes (0 for folders).
    pub size: u64,
    /// Content checksums (files only).
    pub checksums: Option<Checksums>,
    /// Creation time.
    pub created: Millis,
    /// Last change of content or properties.
    pub modified: Millis,
    /// Who created it.
    pub created_by: String,
    /// Who changed it last.
    pub modified_by: String,
    /// Multi-valued properties.
    pub props: Props,
}

impl Item {
    /// A folder created at `now` by `who`.
    pub fn folder(repo: RepoKey, path: ItemPath, now: Millis, who: &str) -> Item {
        Item {
            repo,
            path,
            kind: ItemKind::Folder,
            size: 0,
            checksums: None,
            created: now,
            modified: now,
            created_by: who.into(),
            modified_by: who.into(),
            props: Props::new(),
        }
    }

    /// The content address, for files.
    pub fn sha256(&self) -> Option<Sha256> {
        self.checksums.map(|c| c.sha256)
    }

    /// `repo/path`, for messages and source paths.
    pub fn repo_path(&self) -> String {
        if self.path.is_root() {
            self.repo.to_string()
        } else {
            format!("{}/{}", self.repo, self.path)
        }
    }
}

/// A build-info artifact or dependency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildFile {
    /// File name.
    pub name: String,
    /// Type (`jar`, `tgz`, …).
    pub file_type: String,
    /// SHA-256, when the build reported it.
    pub sha256: Option<Sha256>,
    /// SHA-1, when reported.
    pub sha1: Option<Sha1>,
    /// MD5, when reported.
    pub md5: Option<Md5>,
    /// `repo/path` where it was deployed, when reported.
    pub path: Option<String>,
}

/// One module of a build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildModule {
    /// Module id.
    pub id: String,
    /// What the module produced.
    pub artifacts: Vec<BuildFile>,
    /// What it consumed.
    pub dependencies: Vec<BuildFile>,
}

/// A build-info record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    /// Build name.
    pub name: String,
    /// Build number.
    pub number: String,
    /// Start time as the build tool reported it.
    pub started: String,
    /// Modules.
    pub modules: Vec<BuildModule>,
    /// When it was recorded.
    pub created: Millis,
    /// Who recorded it.
    pub created_by: String,
}

/// What storing an item takes, as decided by [`plan_put`].
#[derive(Debug)]
pub struct PutPlan {
    /// Missing ancestor folders to create, outermost first.
    pub new_folders: Vec<Item>,
    /// What is at the path now, if anything.
    pub existing: Option<Item>,
}

/// Decides how to store `item` given a `lookup` of what exists; every
/// backend runs it inside its write transaction, so all agree on the rules:
/// a file replaces a file, a folder at the path or a file above it is a
/// `Conflict`, and missing parents become folders owned by the item's creator.
pub fn plan_put(
    item: &Item,
    mut lookup: impl FnMut(&ItemPath) -> Result<Option<Item>, crate::StoreError>,
) -> Result<PutPlan, crate::StoreError> {
    let conflict =
        |what: String| crate::StoreError::new(crate::StoreErrorKind::Conflict, "put_item", what);
    if item.path.is_root() {
        return Err(conflict("the repository root is not an item".into()));
    }
    let mut new_folders = Vec::new();
    for folder in item.path.ancestors() {
        match lookup(&folder)? {
            Some(found) if found.kind == ItemKind::File => {
                return Err(conflict(format!(
                    "{}/{folder} is a file, not a folder",
                    item.repo
                )));
            }
            Some(_) => {}
            None => new_folders.push(Item::folder(
                item.repo.clone(),
                folder,
                item.created,
                &item.created_by,
            )),
        }
    }
    let existing = lookup(&item.path)?;
    match (&existing, item.kind) {
        (Some(e), ItemKind::File) if e.kind == ItemKind::Folder => {
            Err(conflict(format!("{} is a folder", item.repo_path())))
        }
        (Some(e), ItemKind::Folder) if e.kind == ItemKind::File => {
            Err(conflict(format!("{} is a file", item.repo_path())))
        }
        _ => Ok(PutPlan {
            new_folders,
            existing,
        }),
    }
}

/// The order build listings come in: by name, then oldest run first (ties
/// by number), the same for every backend.
pub fn sort_builds(builds: &mut [Build]) {
    builds.sort_by(|a, b| (&a.name, a.created, &a.number).cmp(&(&b.name, b.created, &b.number)));
}

/// Checks property keys and values: keys are 1–255 characters, and neither
/// may contain control characters (they end up in indexes and headers).
pub fn validate_props(props: &Props) -> Result<(), Error> {
    for (k, values) in props {
        if k.is_empty() || k.chars().count() > 255 {
            return Err(Error::invalid(
                "properties",
                format!("key '{k}' must be 1 to 255 characters"),
            ));
        }
        if k.chars().any(crate::name::unsafe_char)
            || values.iter().any(|v| v.chars().any(|c| c.is_control()))
        {
            return Err(Error::invalid(
                "properties",
                format!("'{k}' contains a control character"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_keys() {
        for ok in ["libs-release-local", "a", "x_1.2", "_private"] {
            assert!(RepoKey::parse(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "1 to 64"),
            ("a/b", "'/'"),
            (".hidden", "must start"),
            ("api", "reserved"),
            ("API", "reserved"),
            ("sp ace", "' '"),
        ] {
            let err = RepoKey::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("repository key") && err.contains(why),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn paths_normalise_and_refuse_traversal() {
        assert_eq!(ItemPath::parse("a//b/./c/").unwrap().as_str(), "a/b/c");
        assert_eq!(ItemPath::parse("").unwrap(), ItemPath::root());
        assert_eq!(ItemPath::parse("./").unwrap(), ItemPath::root());
        for (bad, why) in [
            ("/etc/passwd", "absolute"),
            ("a/../b", "'..'"),
            ("..", "'..'"),
            ("a\0b", "U+0000"),
            ("a\\b", "'\\'"),
        ] {
            let err = ItemPath::parse(bad).unwrap_err().to_string();
            assert!(err.contains("path") && err.contains(why), "{bad:?}: {err}");
        }
        // Stored paths must already be normalised.
        assert!(ItemPath::try_from("a//b".to_string()).is_err());
    }

    #[test]
    fn path_parts() {
        let p = ItemPath::parse("org/acme/app/1.0/app.jar").unwrap();
        assert_eq!(p.name(), "app.jar");
        assert_eq!(p.folder(), "org/acme/app/1.0");
        assert_eq!(p.depth(), 5);
        let ancestors: Vec<String> = p.ancestors().into_iter().map(|a| a.to_string()).collect();
        assert_eq!(
            ancestors,
            ["org", "org/acme", "org/acme/app", "org/acme/app/1.0"]
        );
        let top = ItemPath::parse("readme").unwrap();
        assert_eq!((top.folder(), top.name(), top.depth()), (".", "readme", 1));
        assert!(top.ancestors().is_empty());
        let org = ItemPath::parse("org").unwrap();
        assert!(org.contains(&p) && ItemPath::root().contains(&p) && p.contains(&p));
        assert!(
            !ItemPath::parse("or").unwrap().contains(&p),
            "prefix of a segment is not an ancestor"
        );
    }
}
