//! Repository traits: the only way the core reaches storage.
//!
//! Each method documents its contract under **Behavior**; every bullet there
//! is a case of the behaviour suite in `waybill-store-testkit`, which runs
//! against every backend. Backends do blocking IO inside
//! `tokio::task::spawn_blocking` (see ARCHITECTURE.md); callers simply await.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::aql::ItemHint;
use crate::artifact::{Build, Item, ItemPath, RepoKey, Repository};
use crate::auth::{TokenRecord, User};
use crate::bundle::Props;
use crate::bundle::ReleaseBundleVersion;
use crate::digest::{Checksums, HexDigest, Ingest, Md5, Sha1, Sha256};
use crate::keys::SigningKey;
use crate::name::{BundleName, BundleVersion};
use crate::site::{EdgeSite, ServiceId};
use crate::tracker::{Tracker, TrackerId};
use crate::{Error, StoreError, StoreErrorKind};

/// A window into an ordered listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// Items to skip.
    pub offset: u64,
    /// Items to return at most.
    pub limit: u64,
}

impl Page {
    /// Everything.
    pub const ALL: Page = Page {
        offset: 0,
        limit: u64::MAX,
    };
}

/// One page of a listing, with the size of the whole listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed<T> {
    /// The items of the page.
    pub items: Vec<T>,
    /// How many items the whole listing has.
    pub total: u64,
}

/// A domain step inside a version transaction; an `Err` aborts it.
pub type VersionUpdate = Box<dyn FnOnce(&mut ReleaseBundleVersion) -> Result<(), Error> + Send>;

/// A domain step inside a tracker transaction; an `Err` aborts it.
pub type TrackerUpdate = Box<dyn FnOnce(&mut Tracker) -> Result<(), Error> + Send>;

/// Runs a version transaction's domain step on a copy of `current`, and
/// refuses a step that renamed it. Every backend calls this inside its write
/// transaction, so they all apply the same rules.
pub fn apply_version_update(
    current: &ReleaseBundleVersion,
    update: VersionUpdate,
) -> Result<ReleaseBundleVersion, Error> {
    let mut next = current.clone();
    update(&mut next)?;
    if next.name != current.name || next.version != current.version {
        return Err(Error::Invalid {
            field: "version",
            reason: "an update cannot change a version's name or version".into(),
        });
    }
    Ok(next)
}

/// Runs a tracker transaction's domain step on a copy of `current`, and
/// refuses a step that changed its id.
pub fn apply_tracker_update(current: &Tracker, update: TrackerUpdate) -> Result<Tracker, Error> {
    let mut next = current.clone();
    update(&mut next)?;
    if next.id != current.id {
        return Err(Error::Invalid {
            field: "id",
            reason: "an update cannot change a tracker's id".into(),
        });
    }
    Ok(next)
}

/// Store health and small named settings.
#[async_trait]
pub trait SystemRepo: Send + Sync + Debug {
    /// **Behavior:** `Ok` only when the store can read and write now.
    async fn ping(&self) -> Result<(), StoreError>;

    /// **Behavior:** an unknown key gives `Ok(None)`.
    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Several settings at once, for callers that need many (an edge
    /// checking a bundle's blobs); backends answer in one round trip.
    ///
    /// **Behavior:** one answer per key, in order; unknown keys give `None`.
    async fn get_settings(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            out.push(self.get_setting(k).await?);
        }
        Ok(out)
    }

    /// **Behavior:** stores `value`, replacing any earlier one.
    async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// **Behavior:** every setting whose key starts with `prefix`, by key.
    async fn list_settings(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError>;

    /// **Behavior:** `Ok(false)` when there was nothing to delete.
    async fn delete_setting(&self, key: &str) -> Result<bool, StoreError>;

    /// **Behavior:** stores `value` only when `key` is unset, and returns the
    /// value in force afterwards, so racing first starts agree on one value.
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError>;
}

/// Release bundle versions.
#[async_trait]
pub trait BundleRepo: Send + Sync + Debug {
    /// **Behavior:**
    /// - an existing (name, version) gives `Conflict` and writes nothing;
    /// - otherwise the version becomes the newest of its bundle.
    async fn create_version(&self, version: ReleaseBundleVersion) -> Result<(), StoreError>;

    /// **Behavior:** an unknown version gives `Ok(None)`.
    async fn get_version(
        &self,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<Option<ReleaseBundleVersion>, StoreError>;

    /// Reads, lets `update` change, and writes back, in one transaction.
    ///
    /// **Behavior:**
    /// - an unknown version gives `Error::NotFound`;
    /// - if `update` returns `Err`, that error comes back and nothing is written;
    /// - renaming (changing name or version) is refused with `Error::Invalid`;
    /// - the version keeps its place in creation order.
    async fn update_version(
        &self,
        name: &BundleName,
        version: &BundleVersion,
        update: VersionUpdate,
    ) -> Result<ReleaseBundleVersion, Error>;

    /// **Behavior:** versions newest first (by creation order), of one bundle
    /// or of all; `total` counts the whole listing, not the page.
    async fn list_versions(
        &self,
        name: Option<&BundleName>,
        page: Page,
    ) -> Result<Listed<ReleaseBundleVersion>, StoreError>;

    /// **Behavior:** the version of `name` created last, or `Ok(None)`.
    async fn latest_version(
        &self,
        name: &BundleName,
    ) -> Result<Option<ReleaseBundleVersion>, StoreError>;

    /// **Behavior:** `Ok(false)` when there was nothing to delete.
    async fn delete_version(
        &self,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<bool, StoreError>;

    /// **Behavior:** deletes every version of `name`; returns how many.
    async fn delete_bundle(&self, name: &BundleName) -> Result<u64, StoreError>;
}

/// Edge sites.
#[async_trait]
pub trait SiteRepo: Send + Sync + Debug {
    /// **Behavior:**
    /// - inserts, or replaces the site with the same `service_id`;
    /// - a different site already using the name gives `Conflict`, writing nothing.
    async fn put_site(&self, site: EdgeSite) -> Result<(), StoreError>;

    /// **Behavior:** an unknown id gives `Ok(None)`.
    async fn get_site(&self, id: &ServiceId) -> Result<Option<EdgeSite>, StoreError>;

    /// **Behavior:** all sites, ordered by name.
    async fn list_sites(&self) -> Result<Vec<EdgeSite>, StoreError>;

    /// **Behavior:** `Ok(false)` when there was nothing to delete; frees the name.
    async fn delete_site(&self, id: &ServiceId) -> Result<bool, StoreError>;
}

/// Signing keys.
#[async_trait]
pub trait KeyRepo: Send + Sync + Debug {
    /// **Behavior:** inserts or replaces by id; a key stored as `default`
    /// clears the flag on every other key in the same transaction.
    async fn put_key(&self, key: SigningKey) -> Result<(), StoreError>;

    /// **Behavior:** an unknown id gives `Ok(None)`.
    async fn get_key(&self, id: &str) -> Result<Option<SigningKey>, StoreError>;

    /// **Behavior:** the key flagged `default`, or `Ok(None)`.
    async fn default_key(&self) -> Result<Option<SigningKey>, StoreError>;

    /// **Behavior:** all keys, ordered by id.
    async fn list_keys(&self) -> Result<Vec<SigningKey>, StoreError>;

    /// **Behavior:** `Ok(false)` when there was nothing to delete.
    async fn delete_key(&self, id: &str) -> Result<bool, StoreError>;
}

/// Distribution trackers.
#[async_trait]
pub trait TrackerRepo: Send + Sync + Debug {
    /// **Behavior:** assigns the next id (ids increase and are never reused,
    /// even after deletes), stores, and returns the stored tracker.
    async fn create_tracker(&self, tracker: Tracker) -> Result<Tracker, StoreError>;

    /// **Behavior:** an unknown id gives `Ok(None)`.
    async fn get_tracker(&self, id: TrackerId) -> Result<Option<Tracker>, StoreError>;

    /// Reads, lets `update` change, and writes back, in one transaction.
    ///
    /// **Behavior:** unknown id gives `Error::NotFound`; an `Err` from
    /// `update` writes nothing; changing the id is refused.
    async fn update_tracker(&self, id: TrackerId, update: TrackerUpdate) -> Result<Tracker, Error>;

    /// **Behavior:** trackers of one bundle, one version, or all, by id ascending.
    async fn list_trackers(
        &self,
        name: Option<&BundleName>,
        version: Option<&BundleVersion>,
    ) -> Result<Vec<Tracker>, StoreError>;

    /// **Behavior:** deletes the trackers of one version; returns how many.
    async fn delete_trackers(
        &self,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<u64, StoreError>;
}

/// Users and access-token records.
#[async_trait]
pub trait UserRepo: Send + Sync + Debug {
    /// **Behavior:** an existing name gives `Conflict` and writes nothing.
    async fn create_user(&self, user: User) -> Result<(), StoreError>;

    /// **Behavior:** inserts or replaces by name.
    async fn put_user(&self, user: User) -> Result<(), StoreError>;

    /// **Behavior:** an unknown name gives `Ok(None)`.
    async fn get_user(&self, name: &str) -> Result<Option<User>, StoreError>;

    /// **Behavior:** all users, ordered by name.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;

    /// **Behavior:** `Ok(false)` when there was nothing to delete.
    async fn delete_user(&self, name: &str) -> Result<bool, StoreError>;

    /// **Behavior:** inserts or replaces by `token_id`.
    async fn put_token(&self, token: TokenRecord) -> Result<(), StoreError>;

    /// **Behavior:** an unknown id gives `Ok(None)`.
    async fn get_token(&self, token_id: &str) -> Result<Option<TokenRecord>, StoreError>;

    /// **Behavior:** all token records, ordered by (issued_at, token_id).
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;

    /// **Behavior:** `Ok(false)` when there was nothing to delete.
    async fn delete_token(&self, token_id: &str) -> Result<bool, StoreError>;
}

/// A change to an item's properties, applied to each affected item.
pub type PropsUpdate = Box<dyn Fn(&mut Props) + Send + Sync>;

/// The source repository: repositories, items and builds.
#[async_trait]
pub trait ItemRepo: Send + Sync + Debug {
    /// **Behavior:** an existing key gives `Conflict` and writes nothing.
    async fn create_repository(&self, repo: Repository) -> Result<(), StoreError>;

    /// **Behavior:** an unknown key gives `Ok(None)`.
    async fn get_repository(&self, key: &RepoKey) -> Result<Option<Repository>, StoreError>;

    /// **Behavior:** all repositories, ordered by key.
    async fn list_repositories(&self) -> Result<Vec<Repository>, StoreError>;

    /// **Behavior:** removes the repository and every item in it, returning
    /// the removed items; `Ok(None)` when the repository did not exist.
    async fn delete_repository(&self, key: &RepoKey) -> Result<Option<Vec<Item>>, StoreError>;

    /// Stores a file.
    ///
    /// **Behavior:**
    /// - an unknown repository gives `NotFound`;
    /// - a file at the same path is replaced and returned;
    /// - missing parent folders are created (with the file's creator and time);
    /// - a folder at the path, or a file where a parent folder should be,
    ///   gives `Conflict`; nothing is written then.
    async fn put_file(&self, file: Item) -> Result<Option<Item>, StoreError>;

    /// Stores several files in one transaction: all become visible, or none.
    ///
    /// **Behavior:** each file follows `put_file`'s rules; any refusal
    /// refuses all and writes nothing; returns the files replaced.
    async fn commit_files(&self, files: Vec<Item>) -> Result<Vec<Item>, StoreError>;

    /// Removes several files in one transaction, each only if it still holds
    /// the expected content: readers see all of them go at once, or none.
    ///
    /// **Behavior:** a file whose SHA-256 differs, a folder, or nothing at
    /// a path is left as it is; returns the files removed; parent folders
    /// stay.
    async fn remove_files(
        &self,
        files: Vec<(RepoKey, ItemPath, Sha256)>,
    ) -> Result<Vec<Item>, StoreError>;

    /// **Behavior:** creates a folder and its missing parents; an existing
    /// folder is left as it is; a file in the way gives `Conflict`.
    async fn create_folder(&self, folder: Item) -> Result<(), StoreError>;

    /// **Behavior:** an unknown item gives `Ok(None)`.
    async fn get_item(&self, repo: &RepoKey, path: &ItemPath) -> Result<Option<Item>, StoreError>;

    /// **Behavior:** the direct children of a folder (the repository root for
    /// the root path), ordered by path; empty for files and unknown paths.
    async fn list_children(
        &self,
        repo: &RepoKey,
        folder: &ItemPath,
    ) -> Result<Vec<Item>, StoreError>;

    /// **Behavior:** removes the item and everything below it, returning what
    /// was removed (empty when nothing was there).
    async fn delete_item(&self, repo: &RepoKey, path: &ItemPath) -> Result<Vec<Item>, StoreError>;

    /// Applies `update` to the item's properties, and with `recursive` to
    /// everything below it, in one transaction.
    ///
    /// **Behavior:** an unknown item gives `Error::NotFound`; returns how many
    /// items were updated; property indexes follow the change.
    async fn update_props(
        &self,
        repo: &RepoKey,
        path: &ItemPath,
        recursive: bool,
        update: PropsUpdate,
    ) -> Result<u64, Error>;

    /// **Behavior:** returns at least every item that satisfies all the
    /// hint's constraints (possibly more), from an index where one applies.
    async fn find_items(&self, hint: &ItemHint) -> Result<Vec<Item>, StoreError>;

    /// **Behavior:** how many files hold content with this digest.
    async fn count_content_refs(&self, sha256: &Sha256) -> Result<u64, StoreError>;

    /// **Behavior:** inserts or replaces by (name, number).
    async fn put_build(&self, build: Build) -> Result<(), StoreError>;

    /// **Behavior:** an unknown build gives `Ok(None)`.
    async fn get_build(&self, name: &str, number: &str) -> Result<Option<Build>, StoreError>;

    /// **Behavior:** every build run (of build `name` only, when given),
    /// ordered by name, then by creation time, oldest first.
    async fn list_builds(&self, name: Option<&str>) -> Result<Vec<Build>, StoreError>;
}

/// Everything a Waybill server persists, in one object a backend provides.
pub trait Store:
    SystemRepo + BundleRepo + SiteRepo + KeyRepo + TrackerRepo + UserRepo + ItemRepo
{
}

impl<T> Store for T where
    T: SystemRepo + BundleRepo + SiteRepo + KeyRepo + TrackerRepo + UserRepo + ItemRepo
{
}

/// A blob's address, checksums and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    /// SHA-256 of the content: its address.
    pub digest: Sha256,
    /// All three checksums, computed while writing.
    pub checksums: Checksums,
    /// Size in bytes.
    pub size: u64,
}

/// A stored blob, as a listing shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    /// Its address.
    pub digest: Sha256,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written (or re-committed), in Unix millis; 0 where
    /// the store keeps no times.
    pub modified: crate::bundle::Millis,
}

/// Checksums a client claims for content it sends; each given one must match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// Claimed SHA-256.
    pub sha256: Option<Sha256>,
    /// Claimed SHA-1.
    pub sha1: Option<Sha1>,
    /// Claimed MD5.
    pub md5: Option<Md5>,
}

impl Expected {
    /// Only a SHA-256 is claimed.
    pub fn sha256(d: Sha256) -> Expected {
        Expected {
            sha256: Some(d),
            ..Expected::default()
        }
    }

    /// `Corrupt`, naming the first claimed checksum that differs from `actual`.
    pub fn check(&self, actual: &Checksums) -> Result<(), StoreError> {
        fn differs<const N: usize>(
            claimed: Option<HexDigest<N>>,
            actual: HexDigest<N>,
        ) -> Option<String> {
            claimed.filter(|c| *c != actual).map(|c| {
                format!(
                    "{} mismatch: content has {actual}, the client claimed {c}",
                    HexDigest::<N>::ALGORITHM
                )
            })
        }
        let mismatch = differs(self.sha256, actual.sha256)
            .or_else(|| differs(self.sha1, actual.sha1))
            .or_else(|| differs(self.md5, actual.md5));
        match mismatch {
            Some(msg) => Err(StoreError::new(StoreErrorKind::Corrupt, "commit", msg)),
            None => Ok(()),
        }
    }
}

/// Content-addressed blob storage, keyed by SHA-256.
#[async_trait]
pub trait BlobStore: Send + Sync + Debug {
    /// Starts writing a blob, hashed by `ingest`. Nothing is visible until
    /// `commit` succeeds; dropping the writer discards what was written.
    ///
    /// **Behavior:** `commit` reports the checksums `ingest` finishes with.
    async fn writer_with(&self, ingest: Ingest) -> Result<Box<dyn BlobWriter>, StoreError>;

    /// Starts writing a blob, computing all three checksums.
    async fn writer(&self) -> Result<Box<dyn BlobWriter>, StoreError> {
        self.writer_with(Ingest::new()).await
    }

    /// **Behavior:** the size of a committed blob, or `Ok(None)`.
    async fn stat(&self, digest: &Sha256) -> Result<Option<u64>, StoreError>;

    /// **Behavior:** up to `len` bytes from `offset` (fewer at the end, none
    /// past it); an unknown blob gives `NotFound`.
    async fn read_range(
        &self,
        digest: &Sha256,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, StoreError>;

    /// **Behavior:** `Ok(false)` when there was nothing to delete.
    async fn delete(&self, digest: &Sha256) -> Result<bool, StoreError>;

    /// **Behavior:** every committed blob, in digest order; content being
    /// written is not listed.
    async fn list(&self) -> Result<Vec<BlobEntry>, StoreError>;
}

/// An unfinished blob.
#[async_trait]
pub trait BlobWriter: Send {
    /// Appends a chunk, hashing it on the way.
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError>;

    /// Makes the blob visible under its digest.
    ///
    /// **Behavior:** when a checksum in `expected` differs from that of what
    /// was written, gives `Corrupt` and nothing becomes visible.
    /// Committing content that is already stored succeeds and keeps one copy.
    async fn commit(self: Box<Self>, expected: Expected) -> Result<BlobInfo, StoreError>;
}
