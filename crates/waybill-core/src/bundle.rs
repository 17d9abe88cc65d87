//! Release bundle versions: what a bundle holds and how it was gathered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::digest::Sha256;
use crate::name::{BundleName, BundleVersion};
use crate::state::VersionState;

/// Milliseconds since the Unix epoch. The core never reads the clock; callers pass it.
pub type Millis = u64;

/// The markup of release notes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotesSyntax {
    /// `markdown`
    Markdown,
    /// `asciidoc`
    Asciidoc,
    /// `plain_text`
    PlainText,
}

impl NotesSyntax {
    /// Parses the wire name.
    pub fn parse(raw: &str) -> Result<NotesSyntax, Error> {
        match raw {
            "markdown" => Ok(NotesSyntax::Markdown),
            "asciidoc" => Ok(NotesSyntax::Asciidoc),
            "plain_text" => Ok(NotesSyntax::PlainText),
            other => Err(Error::invalid(
                "release_notes.syntax",
                format!("'{other}' is not one of markdown, asciidoc, plain_text"),
            )),
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            NotesSyntax::Markdown => "markdown",
            NotesSyntax::Asciidoc => "asciidoc",
            NotesSyntax::PlainText => "plain_text",
        }
    }
}

/// Release notes of a version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseNotes {
    /// How `content` is marked up.
    pub syntax: NotesSyntax,
    /// The notes themselves.
    pub content: String,
}

/// A path mapping: a regex on the source path and a replacement using `$1…`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathMapping {
    /// Regex matched against the source `repo/path`.
    pub input: String,
    /// Replacement producing the target path; `$1`… are capture groups.
    pub output: String,
}

/// A property added to every artifact a query gathers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedProp {
    /// Property key.
    pub key: String,
    /// Property values.
    pub values: Vec<String>,
}

/// One query of a bundle spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecQuery {
    /// The AQL run against the source repository.
    pub aql: String,
    /// Display name; `query-{index}` when not given.
    pub query_name: String,
    /// Path mappings, tried in order.
    pub mappings: Vec<PathMapping>,
    /// Properties merged into each gathered artifact.
    pub added_props: Vec<AddedProp>,
}

impl SpecQuery {
    /// The name a query gets when the user gave none: `query-{index}`.
    pub fn default_name(index: usize) -> String {
        format!("query-{index}")
    }
}

/// How a version's artifacts are gathered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The queries, in order.
    pub queries: Vec<SpecQuery>,
}

/// Multi-valued properties, ordered by key for stable output and signing.
pub type Props = BTreeMap<String, Vec<String>>;

/// One artifact of a version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleArtifact {
    /// Content address of the bytes.
    pub checksum: Sha256,
    /// `repo/path` in the source repository.
    pub source_repo_path: String,
    /// `repo/path` on the edges, after mappings.
    pub target_repo_path: String,
    /// Size in bytes.
    pub size: u64,
    /// Properties, including added ones.
    pub props: Props,
    /// The scan hook's verdict, once a scan ran.
    #[serde(default)]
    pub scan: Option<ScanInfo>,
}

/// What the scan hook decided about an artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanInfo {
    /// Whether the artifact blocks distribution.
    pub blocked: bool,
    /// Why, when blocked.
    pub blocked_reason: Option<String>,
}

/// A release bundle version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseBundleVersion {
    /// Bundle name.
    pub name: BundleName,
    /// Version.
    pub version: BundleVersion,
    /// Free text.
    pub description: String,
    /// Optional release notes.
    pub release_notes: Option<ReleaseNotes>,
    /// How the artifacts were gathered.
    pub spec: Spec,
    /// The gathered artifacts.
    pub artifacts: Vec<BundleArtifact>,
    /// Creation time.
    pub created: Millis,
    /// Who created it.
    pub created_by: String,
    /// Repository the signed bundle is stored in.
    pub storing_repository: String,
    /// Whether it is archived.
    pub archived: bool,
    /// Where it is in its life; only `VersionState::apply` decides changes.
    pub state: VersionState,
    /// The signatures, once signed.
    #[serde(default)]
    pub signature: Option<crate::signing::BundleSignature>,
    /// The source repository (Artifactory instance) id it was imported
    /// from by a migration; `None` for a version made on this hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl ReleaseBundleVersion {
    /// The default storing repository for signed bundles.
    pub const DEFAULT_STORING_REPOSITORY: &'static str = "release-bundles";

    /// A new OPEN version with no artifacts.
    pub fn new(
        name: BundleName,
        version: BundleVersion,
        created: Millis,
        created_by: impl Into<String>,
    ) -> ReleaseBundleVersion {
        ReleaseBundleVersion {
            name,
            version,
            description: String::new(),
            release_notes: None,
            spec: Spec::default(),
            artifacts: Vec::new(),
            created,
            created_by: created_by.into(),
            storing_repository: Self::DEFAULT_STORING_REPOSITORY.to_string(),
            archived: false,
            state: VersionState::Open,
            signature: None,
            source: None,
        }
    }

    /// Total size of the artifacts, in bytes.
    pub fn total_size(&self) -> u64 {
        self.artifacts.iter().map(|a| a.size).sum()
    }

    /// Whether the scan hook blocked any artifact, and the first reason.
    pub fn blocked(&self) -> Option<String> {
        self.artifacts.iter().find_map(|a| match &a.scan {
            Some(ScanInfo {
                blocked: true,
                blocked_reason,
            }) => Some(format!(
                "{}: {}",
                a.source_repo_path,
                blocked_reason
                    .as_deref()
                    .unwrap_or("blocked by the scan policy")
            )),
            _ => None,
        })
    }

    /// `name/version`, for messages.
    pub fn label(&self) -> String {
        format!("{}/{}", self.name, self.version)
    }
}
