//! The hub's only way out to its edges: the [`EdgeTransport`] port, and the
//! protocol types both ends share.
//!
//! A delivery is **prepare** (the edge verifies the signed bundle and lists
//! the blobs it lacks), **send** (only those blobs; the edge verifies each
//! as it arrives), **commit** (the edge makes everything visible at once and
//! answers with a receipt only the holder of the pairing token can make),
//! and, for deletions, **remove**. The wire crate implements the port over
//! HTTP; tests implement it in process, with faults.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use waybill_core::auth::Secret;
use waybill_core::digest::Sha256;
use waybill_core::site::{EdgeSite, ServiceId};

/// A signed version as an edge receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedBundle {
    /// Bundle name.
    pub name: String,
    /// Version.
    pub version: String,
    /// The signed canonical payload.
    pub payload: String,
    /// Its detached OpenPGP signature (ASCII armour).
    pub pgp_signature: String,
    /// Whether the edge may create target repositories it lacks.
    pub auto_create_missing_repositories: bool,
}

/// One blob on its way to an edge.
pub struct OutgoingBlob {
    /// Its SHA-256.
    pub digest: Sha256,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-1 and MD5 as the hub knows them, so the edge need compute
    /// only the SHA-256 (which it checks).
    pub sha1_md5: Option<(String, String)>,
    /// The content.
    pub content: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

impl std::fmt::Debug for OutgoingBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingBlob")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// What an edge answers to a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The SHA-256 of the payload it committed, hex.
    pub manifest_sha256: String,
    /// HMAC of the commit under the pairing token (see
    /// [`waybill_core::site::receipt`]).
    pub receipt: String,
}

/// Why a step on an edge did not finish.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying: the edge was unreachable or failed internally.
    #[error("{0}")]
    Transient(String),
    /// The edge refused; retrying would not help.
    #[error("{0}")]
    Refused(String),
    /// The edge found a blob's content corrupt on arrival; sending it again
    /// may help.
    #[error("{0}")]
    Corrupt(String),
}

impl DeliveryError {
    /// The message, whatever the kind.
    pub fn message(&self) -> &str {
        match self {
            DeliveryError::Transient(m) | DeliveryError::Refused(m) | DeliveryError::Corrupt(m) => {
                m
            }
        }
    }
}

/// Why an address did not prove to be a given edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unproven {
    /// No answer, or not an answer from a Waybill edge; why.
    Unreachable(String),
    /// It answered, but refused the pairing token.
    Refused,
}

/// How the hub reaches edges.
#[async_trait::async_trait]
pub trait EdgeTransport: Send + Sync + std::fmt::Debug {
    /// Who answers at `url` to `token`, waiting at most `timeout`.
    async fn identify(
        &self,
        url: &str,
        token: &Secret,
        timeout: Duration,
    ) -> Result<ServiceId, Unproven>;

    /// Installs the hub's public signing key on an edge; why not, if not.
    async fn install_key(&self, site: &EdgeSite, public_key: &str) -> Result<(), String>;

    /// Hands the edge a signed bundle to verify; the blobs it lacks.
    async fn prepare(
        &self,
        site: &EdgeSite,
        bundle: &SignedBundle,
    ) -> Result<Vec<Sha256>, DeliveryError>;

    /// Sends one blob.
    async fn send_blob(&self, site: &EdgeSite, blob: OutgoingBlob) -> Result<(), DeliveryError>;

    /// Makes the bundle visible on the edge at once.
    async fn commit(
        &self,
        site: &EdgeSite,
        bundle: &SignedBundle,
    ) -> Result<Committed, DeliveryError>;

    /// Removes a version from the edge, with content nothing else there uses.
    async fn remove(&self, site: &EdgeSite, name: &str, version: &str)
    -> Result<(), DeliveryError>;
}
