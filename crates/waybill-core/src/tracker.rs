//! Distribution trackers: one per distribute or delete request, with a
//! progress record per target site.

use serde::{Deserialize, Serialize};

use crate::bundle::Millis;
use crate::name::{BundleName, BundleVersion};
use crate::rules::DistributionRule;
use crate::site::ServiceId;

/// The numeric id the JFrog client polls with.
pub type TrackerId = u64;

/// What a tracker does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrackerKind {
    /// Send a version to sites.
    Distribute,
    /// Remove a version from sites.
    DeleteVersion,
}

/// Per-site status, in JFrog's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteStatus {
    /// Nothing started yet.
    NotDistributed,
    /// Waiting for a worker.
    InQueue,
    /// Transferring.
    InProgress,
    /// Done and verified.
    Completed,
    /// Gave up; `general_error` says why.
    Failed,
}

/// Progress of one tracker on one site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteProgress {
    /// The site's id.
    pub service_id: ServiceId,
    /// The site's name when the tracker was created.
    pub name: String,
    /// Current status.
    pub status: SiteStatus,
    /// Why it failed or is waiting, if it did or is.
    pub general_error: String,
    /// Files in the version.
    pub total_files: u64,
    /// Bytes in the version.
    pub total_bytes: u64,
    /// Files verified on the site so far.
    pub distributed_files: u64,
    /// Bytes verified on the site so far.
    pub distributed_bytes: u64,
    /// Per-file errors.
    pub file_errors: Vec<String>,
    /// Files being transferred now.
    pub files_in_progress: Vec<String>,
}

/// A distribution tracker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracker {
    /// Numeric id; assigned by the store on creation.
    pub id: TrackerId,
    /// Distribute or delete.
    pub kind: TrackerKind,
    /// The bundle.
    pub name: BundleName,
    /// The version.
    pub version: BundleVersion,
    /// Rules as requested.
    pub rules: Vec<DistributionRule>,
    /// Who asked.
    pub created_by: String,
    /// When it was created.
    pub created: Millis,
    /// When it reached a terminal state.
    pub finished: Option<Millis>,
    /// One entry per target site.
    pub sites: Vec<SiteProgress>,
}
