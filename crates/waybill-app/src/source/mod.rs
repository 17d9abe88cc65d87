//! The source repository: repositories, deploy and download, properties,
//! builds and AQL, for hub and edges alike.
//!
//! Content lifetime: a blob may be deleted only when no file references it.
//! Deploys hold the content lock for reading from blob commit to item write,
//! and garbage collection holds it for writing while it counts references,
//! so a blob can never vanish between "it is stored" and "a file points at it".

mod small_blobs;
mod stats;
mod sweep;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use waybill_core::StoreErrorKind;
use waybill_core::aql::{self, Domain, Query as AqlQuery};
use waybill_core::artifact::{
    Build, Item, ItemKind, ItemPath, RepoKey, Repository, validate_props,
};
use waybill_core::bundle::Props;
use waybill_core::digest::{Checksums, Sha256};
use waybill_core::permissions::Action;
use waybill_core::store::{BlobInfo, BlobStore, Expected, Store};

pub use small_blobs::SmallBlobs;
pub use stats::{DownloadStats, Downloads, FLUSH_EVERY};
pub use sweep::{SweepPolicy, Swept};

use crate::security::Security;
use crate::{Clock, Error, Principal};

/// The repository holding build-info; builds are authorized against it.
pub const BUILD_INFO: &str = "artifactory-build-info";

/// The read-only repository support bundles are kept in.
pub const SUPPORT_BUNDLES: &str = "support-bundles";

/// Repositories only Waybill creates: build-info, support bundles and the
/// default release-bundle repository. Nobody may create one of these names
/// (case-insensitively).
pub const RESERVED_REPOS: [&str; 3] = [
    BUILD_INFO,
    SUPPORT_BUNDLES,
    waybill_core::bundle::ReleaseBundleVersion::DEFAULT_STORING_REPOSITORY,
];

/// Deploys are written to the blob store in chunks of this size.
const WRITE_CHUNK: usize = 256 << 10;
/// Streamed reads go in chunks of this size.
const READ_CHUNK: u64 = 1 << 20;

/// The shared lock that keeps content alive between "stored" and "referenced".
pub type ContentLock = Arc<tokio::sync::RwLock<()>>;

/// The source repository's use-cases. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Source {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) security: Security,
    pub(crate) clock: Arc<dyn Clock>,
    content_lock: ContentLock,
    repos: Repositories,
    small_blobs: SmallBlobs,
    downloads: Downloads,
}

/// A repository to create.
#[derive(Clone, Debug, Default)]
pub struct NewRepository {
    /// The key the body states, if any; it must equal the addressed one.
    pub body_key: Option<String>,
    /// `local` (the only class served) when `None`.
    pub rclass: Option<String>,
    /// `generic` when `None`.
    pub package_type: Option<String>,
    /// Free text.
    pub description: Option<String>,
}

/// What a deploy claims about its content.
#[derive(Clone, Debug, Default)]
pub struct DeployRequest {
    /// Checksums the client stated; the content must match each.
    pub expected: Expected,
    /// Store by checksum only: the content must already be held.
    pub checksum_deploy: bool,
    /// Create a folder (no content).
    pub folder: bool,
    /// Properties to set on the file.
    pub props: Props,
}

/// A deployed file, and the checksums the client stated, if any.
#[derive(Clone, Debug)]
pub struct Deployed {
    /// The stored item.
    pub item: Item,
    /// What the client claimed, when it claimed anything.
    pub original: Option<Expected>,
}

/// An item addressed by a storage read, with its repository.
#[derive(Clone, Debug)]
pub struct StorageTarget {
    /// The repository.
    pub repository: Repository,
    /// The path in it (the root when empty).
    pub path: ItemPath,
    /// The item at the path; `None` for the repository root.
    pub item: Option<Item>,
}

impl StorageTarget {
    /// `repo/path`, or `repo` for the root.
    pub fn repo_path(&self) -> String {
        if self.path.is_root() {
            self.repository.key.to_string()
        } else {
            format!("{}/{}", self.repository.key, self.path)
        }
    }
}

/// A property edit.
#[derive(Clone, Debug, Default)]
pub struct PropsEdit {
    /// Also on everything below the item.
    pub recursive: bool,
    /// Keys set to these values.
    pub set: Props,
    /// Keys removed.
    pub remove: Vec<String>,
}

/// What an AQL search found.
#[derive(Clone, Debug)]
pub enum Found {
    /// `items.find`: matching items the caller may read.
    Items(Vec<Item>),
    /// `builds.find`: the build and its readable items, if any matched.
    Build(Option<(Build, Vec<Item>)>),
}

/// Repositories read before. A repository never changes once created; it
/// only goes away, and deleting one takes [`Repositories::change`], so no
/// entry outlives it. Downloads, storage reads and deploys all start here.
#[derive(Clone, Debug, Default)]
pub struct Repositories {
    epoch: crate::epoch::Epoch,
    known: Arc<std::sync::Mutex<HashMap<RepoKey, (u64, Repository)>>>,
}

impl Repositories {
    /// Take before deleting a repository.
    pub fn change(&self) -> crate::epoch::Change {
        self.epoch.change()
    }

    async fn get(&self, store: &dyn Store, key: &RepoKey) -> Result<Option<Repository>, Error> {
        let epoch = self.epoch.now();
        if let Some((at, repo)) = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            && *at == epoch
        {
            return Ok(Some(repo.clone()));
        }
        let Some(repo) = store.get_repository(key).await? else {
            return Ok(None);
        };
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= 4096 {
            known.clear();
        }
        known.insert(key.clone(), (epoch, repo.clone()));
        Ok(Some(repo))
    }
}

/// Bytes `start..=end` of a blob in `blobs` as a stream of large chunks: the
/// one reader behind downloads and the engine's sends. A blob shorter than
/// its record ends the stream with an error.
pub(crate) fn blob_stream(
    blobs: Arc<dyn BlobStore>,
    digest: Sha256,
    start: u64,
    end: u64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(start, move |at| {
        let blobs = blobs.clone();
        async move {
            if at > end {
                return None;
            }
            let n = READ_CHUNK.min(end + 1 - at);
            match blobs.read_range(&digest, at, n).await {
                Ok(bytes) if bytes.is_empty() => Some((
                    Err(std::io::Error::other("blob shorter than its record")),
                    end + 1,
                )),
                Ok(bytes) => {
                    let next = at + bytes.len() as u64;
                    Some((Ok(Bytes::from(bytes)), next))
                }
                Err(e) => {
                    tracing::error!(error = %e, %digest, "reading blob");
                    Some((Err(std::io::Error::other(e.to_string())), end + 1))
                }
            }
        }
    })
}

/// A store conflict or absence as the caller's error, anything else as is.
fn store_refusal(e: waybill_core::StoreError) -> Error {
    match e.kind() {
        StoreErrorKind::Conflict => Error::conflict(e.to_string()),
        StoreErrorKind::NotFound => Error::not_found(e.to_string()),
        _ => e.into(),
    }
}

impl Source {
    /// The source repository over `store` and `blobs`.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        security: Security,
        clock: Arc<dyn Clock>,
    ) -> Source {
        Source {
            store,
            blobs,
            security,
            clock,
            content_lock: ContentLock::default(),
            repos: Repositories::default(),
            small_blobs: SmallBlobs::default(),
            downloads: Downloads::default(),
        }
    }

    /// The content lock: held shared by anything that makes a stored blob
    /// referenced (deploys, signing, edge commits), exclusive by GC.
    pub fn content_lock(&self) -> &ContentLock {
        &self.content_lock
    }

    /// The repository cache; take its change guard before deleting one.
    pub fn repositories(&self) -> &Repositories {
        &self.repos
    }

    /// Deletes blobs whose last referencing file is gone.
    pub async fn collect_garbage(
        &self,
        digests: impl IntoIterator<Item = Sha256>,
    ) -> Result<(), Error> {
        let _exclusive = self.content_lock.write().await;
        for d in digests {
            if self.store.count_content_refs(&d).await? == 0 {
                self.blobs.delete(&d).await?;
            }
        }
        Ok(())
    }

    async fn existing(&self, key: &RepoKey) -> Result<Repository, Error> {
        self.repos
            .get(self.store.as_ref(), key)
            .await?
            .ok_or_else(|| Error::not_found(format!("repository '{key}' does not exist")))
    }

    /// The checks every content-changing request makes: a target below the
    /// root of an existing, writable repository, and a caller allowed to act.
    async fn writable(
        &self,
        who: &Principal,
        key: &RepoKey,
        path: &ItemPath,
        action: Action,
        root_refusal: &str,
    ) -> Result<(), Error> {
        self.security
            .require_repository(who, key.as_str(), action)
            .await?;
        if self.existing(key).await?.read_only {
            return Err(Error::forbidden(format!("repository '{key}' is read-only")));
        }
        if path.is_root() {
            return Err(Error::invalid(root_refusal.to_string()));
        }
        Ok(())
    }

    // ---- repositories ------------------------------------------------------

    /// Creates local repository `key` (admin only).
    pub async fn create_repository(
        &self,
        who: &Principal,
        key: &str,
        req: NewRepository,
    ) -> Result<RepoKey, Error> {
        who.require_admin()?;
        let key = RepoKey::parse(key)?;
        if RESERVED_REPOS
            .iter()
            .any(|r| r.eq_ignore_ascii_case(key.as_str()))
        {
            return Err(Error::invalid(format!(
                "repository key '{key}' is reserved for Waybill's own use"
            )));
        }
        if let Some(body_key) = &req.body_key
            && body_key != key.as_str()
        {
            return Err(Error::invalid(format!(
                "body key '{body_key}' differs from the URL key '{key}'"
            )));
        }
        match req.rclass.as_deref().unwrap_or("local") {
            "local" => {}
            other => {
                return Err(Error::invalid(format!(
                    "rclass '{other}' is not supported; only local repositories are"
                )));
            }
        }
        let repo = Repository {
            key: key.clone(),
            package_type: req.package_type.unwrap_or_else(|| "generic".into()),
            description: req.description.unwrap_or_default(),
            created: self.clock.now_millis(),
            read_only: false,
        };
        match self.store.create_repository(repo).await {
            Ok(()) => Ok(key),
            Err(e) if e.kind() == StoreErrorKind::Conflict => {
                Err(Error::invalid(format!("repository '{key}' already exists")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Repository `key`, for a caller who may read it.
    pub async fn repository(&self, who: &Principal, key: &str) -> Result<Repository, Error> {
        let key = RepoKey::parse(key)?;
        self.security
            .require_repository(who, key.as_str(), Action::Read)
            .await?;
        self.existing(&key).await
    }

    /// The repositories the caller may read.
    pub async fn list_repositories(&self, who: &Principal) -> Result<Vec<Repository>, Error> {
        let readable = self.security.readable_repositories(who).await?;
        Ok(self
            .store
            .list_repositories()
            .await?
            .into_iter()
            .filter(|r| readable(r.key.as_str()))
            .collect())
    }

    /// Deletes repository `key` and all its content (admin only).
    pub async fn delete_repository(&self, who: &Principal, key: &str) -> Result<RepoKey, Error> {
        who.require_admin()?;
        let key = RepoKey::parse(key)?;
        let _changed = self.repos.change();
        let removed = self
            .store
            .delete_repository(&key)
            .await?
            .ok_or_else(|| Error::not_found(format!("repository '{key}' does not exist")))?;
        self.collect_garbage(removed.iter().filter_map(Item::sha256))
            .await?;
        Ok(key)
    }

    // ---- deploy, download, delete -------------------------------------------

    /// Deploys `body` at `key/path`: the three checksums are computed in one
    /// pass, and claimed ones are checked before anything is visible.
    pub async fn deploy<S, E>(
        &self,
        who: &Principal,
        (key, path): (&RepoKey, &ItemPath),
        req: DeployRequest,
        body: S,
    ) -> Result<Deployed, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Error>,
    {
        self.writable(
            who,
            key,
            path,
            Action::Write,
            "a deploy needs a path below the repository",
        )
        .await?;
        let DeployRequest {
            expected,
            checksum_deploy,
            folder,
            props,
        } = req;
        let now = self.clock.now_millis();
        // A trailing slash and no body creates a folder.
        if folder && !checksum_deploy {
            let folder = Item::folder(key.clone(), path.clone(), now, &who.name);
            self.store
                .create_folder(folder)
                .await
                .map_err(store_refusal)?;
            let item = self
                .store
                .get_item(key, path)
                .await?
                .ok_or_else(|| Error::not_found("folder vanished"))?;
            return Ok(Deployed {
                item,
                original: None,
            });
        }

        let shared = self.content_lock.clone();
        let (info, guard) = if checksum_deploy {
            let sha = expected.sha256.ok_or_else(|| {
                Error::invalid("X-Checksum-Deploy needs an X-Checksum-Sha256 header")
            })?;
            let guard = shared.read_owned().await;
            let known = self
                .store
                .find_items(&aql::ItemHint {
                    sha256: Some(sha),
                    ..Default::default()
                })
                .await?;
            let checksums = known
                .iter()
                .find_map(|i| i.checksums)
                .filter(|c| c.sha256 == sha);
            let size = self.blobs.stat(&sha).await?;
            match (checksums, size) {
                (Some(c), Some(size)) => {
                    expected.check(&c).map_err(|e| {
                        Error::conflict(format!("nothing was stored: {}", e.detail()))
                    })?;
                    (
                        BlobInfo {
                            digest: sha,
                            checksums: c,
                            size,
                        },
                        guard,
                    )
                }
                _ => {
                    return Err(Error::not_found(format!(
                        "checksum deploy: no content with sha256 {sha} is stored"
                    )));
                }
            }
        } else {
            let mut writer = self.blobs.writer().await?;
            let mut body = std::pin::pin!(body);
            let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(Into::into)?;
                buf.extend_from_slice(&chunk);
                if buf.len() >= WRITE_CHUNK {
                    writer.write(&buf).await?;
                    buf.clear();
                }
            }
            if !buf.is_empty() {
                writer.write(&buf).await?;
            }
            let guard = shared.read_owned().await;
            let info = writer.commit(expected).await.map_err(|e| match e.kind() {
                StoreErrorKind::Corrupt => {
                    Error::conflict(format!("nothing was stored: {}", e.detail()))
                }
                _ => e.into(),
            })?;
            (info, guard)
        };

        let item = Item {
            repo: key.clone(),
            path: path.clone(),
            kind: ItemKind::File,
            size: info.size,
            checksums: Some(info.checksums),
            created: now,
            modified: now,
            created_by: who.name.clone(),
            modified_by: who.name.clone(),
            props,
        };
        let replaced = match self.store.put_file(item.clone()).await {
            Ok(r) => r,
            Err(e) => {
                drop(guard);
                self.collect_garbage([info.digest]).await?;
                return Err(store_refusal(e));
            }
        };
        drop(guard);
        if let Some(old) = replaced
            .and_then(|r| r.sha256())
            .filter(|d| *d != info.digest)
        {
            self.collect_garbage([old]).await?;
        }
        let original = (expected != Expected::default()).then_some(expected);
        Ok(Deployed { item, original })
    }

    /// The file at `key/path` and its checksums, for a caller who may read it.
    pub async fn file(
        &self,
        who: &Principal,
        (key, path): (&RepoKey, &ItemPath),
    ) -> Result<(Item, Checksums), Error> {
        self.security
            .require_repository(who, key.as_str(), Action::Read)
            .await?;
        let item = self
            .store
            .get_item(key, path)
            .await?
            .ok_or_else(|| Error::not_found(format!("Unable to find item: {key}/{path}")))?;
        let Some(sums) = item.checksums else {
            return Err(Error::invalid(format!(
                "{key}/{path} is a folder; list it with GET /artifactory/api/storage/{key}/{path}"
            )));
        };
        Ok((item, sums))
    }

    /// Counts a download of `item` by `who`.
    pub fn record_download(&self, item: &Item, who: &Principal) {
        self.downloads.record(
            &format!("{}/{}", item.repo, item.path),
            &who.name,
            self.clock.now_millis(),
        );
    }

    /// Whether content of `size` bytes is served whole from memory.
    pub fn is_small(size: u64) -> bool {
        size <= small_blobs::MAX_FILE
    }

    /// The whole content of a small blob of `size` bytes, from memory when
    /// it was read before.
    pub async fn small_content(&self, digest: &Sha256, size: u64) -> Result<Bytes, Error> {
        if let Some(hit) = self.small_blobs.get(digest) {
            return Ok(hit);
        }
        let read = self.read_whole(digest, 0, size).await?;
        self.small_blobs.put(*digest, read.clone());
        Ok(read)
    }

    /// `len` bytes of a blob from `start`, all of them or an internal error.
    pub async fn read_whole(&self, digest: &Sha256, start: u64, len: u64) -> Result<Bytes, Error> {
        let bytes = self
            .blobs
            .read_range(digest, start, len)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, %digest, "reading blob");
                Error::internal("the content could not be read")
            })?;
        if bytes.len() as u64 != len {
            tracing::error!(%digest, "blob shorter than its record");
            return Err(Error::internal(
                "the stored content is shorter than its record",
            ));
        }
        Ok(Bytes::from(bytes))
    }

    /// Bytes `start..=end` of a blob as a stream of large chunks; a blob
    /// shorter than its record ends the stream with an error.
    pub fn stream(
        &self,
        digest: Sha256,
        start: u64,
        end: u64,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        blob_stream(self.blobs.clone(), digest, start, end)
    }

    /// Deletes the item at `key/path` and everything below it.
    pub async fn delete(
        &self,
        who: &Principal,
        (key, path): (&RepoKey, &ItemPath),
    ) -> Result<(), Error> {
        self.writable(
            who,
            key,
            path,
            Action::Delete,
            "delete the repository itself with DELETE /artifactory/api/repositories/{key}",
        )
        .await?;
        let removed = self.store.delete_item(key, path).await?;
        if removed.is_empty() {
            return Err(Error::not_found(format!(
                "Unable to find item: {key}/{path}"
            )));
        }
        // A file deployed again at the path starts its counts afresh.
        for f in removed.iter().filter(|i| i.kind == ItemKind::File) {
            self.forget_stats(&format!("{}/{}", f.repo, f.path)).await?;
        }
        self.collect_garbage(removed.iter().filter_map(Item::sha256))
            .await
    }

    // ---- storage views --------------------------------------------------------

    /// The repository and item a storage read addresses. `check` judges
    /// the rest of the request once the caller is authorized.
    pub async fn storage(
        &self,
        who: &Principal,
        (key, path): (&RepoKey, &ItemPath),
        check: impl FnOnce() -> Result<(), Error>,
    ) -> Result<StorageTarget, Error> {
        self.security
            .require_repository(who, key.as_str(), Action::Read)
            .await?;
        let repository = self.existing(key).await?;
        check()?;
        let item =
            if path.is_root() {
                None
            } else {
                Some(self.store.get_item(key, path).await?.ok_or_else(|| {
                    Error::not_found(format!("Unable to find item: {key}/{path}"))
                })?)
            };
        Ok(StorageTarget {
            repository,
            path: path.clone(),
            item,
        })
    }

    /// The direct children of a storage target.
    pub async fn children(&self, target: &StorageTarget) -> Result<Vec<Item>, Error> {
        Ok(self
            .store
            .list_children(&target.repository.key, &target.path)
            .await?)
    }

    /// The download statistics of a file.
    pub async fn stats(&self, target: &StorageTarget) -> Result<DownloadStats, Error> {
        let Some(file) = target.item.as_ref().filter(|i| i.kind == ItemKind::File) else {
            return Err(Error::invalid(format!(
                "{} is not a file; ?stats counts a file's downloads",
                target.repo_path()
            )));
        };
        self.download_stats(&format!("{}/{}", file.repo, file.path))
            .await
    }

    /// What is below a folder, with paths relative to it, sorted: direct
    /// children, or with `deep` everything down to `depth` levels; folders
    /// only with `folders`.
    pub async fn below(
        &self,
        target: &StorageTarget,
        deep: bool,
        depth: Option<u64>,
        folders: bool,
    ) -> Result<Vec<(String, Item)>, Error> {
        if target
            .item
            .as_ref()
            .is_some_and(|i| i.kind == ItemKind::File)
        {
            return Err(Error::invalid(format!(
                "{} is a file; ?list lists folders",
                target.repo_path()
            )));
        }
        let path = &target.path;
        let below = |i: &Item| -> Option<String> {
            if path.is_root() {
                Some(i.path.to_string())
            } else {
                i.path
                    .as_str()
                    .strip_prefix(path.as_str())
                    .and_then(|r| r.strip_prefix('/'))
                    .map(str::to_string)
            }
        };
        let all = self
            .store
            .find_items(&aql::ItemHint {
                repo: Some(target.repository.key.clone()),
                ..Default::default()
            })
            .await?;
        let mut files: Vec<(String, Item)> = Vec::new();
        for i in all {
            let Some(rel) = below(&i) else { continue };
            let level = rel.split('/').count() as u64;
            let within = if deep {
                depth.is_none_or(|d| level <= d)
            } else {
                level == 1
            };
            if within && (folders || i.kind == ItemKind::File) {
                files.push((rel, i));
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    }

    /// Sets and removes properties on an item (and everything below it when
    /// the edit is recursive), in one store transaction: the one property
    /// edit behind every wire's property calls. `edit` parses the request
    /// once the caller is authorized.
    pub async fn edit_props(
        &self,
        who: &Principal,
        (key, path): (&RepoKey, &ItemPath),
        edit: impl FnOnce() -> Result<PropsEdit, Error>,
    ) -> Result<(), Error> {
        self.security
            .require_repository(who, key.as_str(), Action::Write)
            .await?;
        let PropsEdit {
            recursive,
            set,
            remove,
        } = edit()?;
        validate_props(&set)?;
        self.store
            .update_props(
                key,
                path,
                recursive,
                Box::new(move |p| {
                    for (k, v) in &set {
                        p.insert(k.clone(), v.clone());
                    }
                    for k in &remove {
                        p.remove(k);
                    }
                }),
            )
            .await?;
        Ok(())
    }

    // ---- builds ----------------------------------------------------------------

    /// Stores a build run that `parse` reads from the request once the
    /// caller is authorized; `created` and `created_by` are set here.
    pub async fn put_build(
        &self,
        who: &Principal,
        parse: impl FnOnce() -> Result<Build, Error>,
    ) -> Result<(), Error> {
        self.security
            .require_repository(who, BUILD_INFO, Action::Write)
            .await?;
        let mut build = parse()?;
        for (field, v) in [("name", &build.name), ("number", &build.number)] {
            if v.is_empty() || v.chars().any(|c| c.is_control() || c == '/') {
                return Err(Error::invalid(format!(
                    "build {field} must be non-empty, without '/' or control characters"
                )));
            }
        }
        build.created = self.clock.now_millis();
        build.created_by = who.name.clone();
        self.store.put_build(build).await?;
        Ok(())
    }

    /// Build run `name`/`number`.
    pub async fn build(&self, who: &Principal, name: &str, number: &str) -> Result<Build, Error> {
        self.security
            .require_repository(who, BUILD_INFO, Action::Read)
            .await?;
        self.store
            .get_build(name, number)
            .await?
            .ok_or_else(|| Error::not_found(format!("build {name}/{number} does not exist")))
    }

    /// Every build name with the start of its latest run.
    pub async fn builds(&self, who: &Principal) -> Result<BTreeMap<String, String>, Error> {
        self.security
            .require_repository(who, BUILD_INFO, Action::Read)
            .await?;
        let mut latest = BTreeMap::new();
        for b in self.store.list_builds(None).await? {
            // Oldest first per name: the last seen is the latest run.
            latest.insert(b.name, b.started);
        }
        Ok(latest)
    }

    /// The runs of build `name`; not found when there are none.
    pub async fn build_runs(&self, who: &Principal, name: &str) -> Result<Vec<Build>, Error> {
        self.security
            .require_repository(who, BUILD_INFO, Action::Read)
            .await?;
        let runs = self.store.list_builds(Some(name)).await?;
        if runs.is_empty() {
            return Err(Error::not_found(format!(
                "No build was found for build name: {name}"
            )));
        }
        Ok(runs)
    }

    // ---- AQL --------------------------------------------------------------------

    /// Runs an AQL query, with results only from repositories the caller
    /// may read (filtered before paging).
    pub async fn search(
        &self,
        who: &Principal,
        aql_text: &str,
    ) -> Result<(AqlQuery, Found), Error> {
        let query = AqlQuery::parse_at(aql_text, self.clock.now_millis())?;
        let readable = self.security.readable_repositories(who).await?;
        let found = match query.domain {
            Domain::Items => Found::Items(
                aql::run_items_filtered(self.store.as_ref(), &query, |i| readable(i.repo.as_str()))
                    .await?,
            ),
            Domain::Builds => Found::Build(aql::run_build(self.store.as_ref(), &query).await?.map(
                |(build, items)| {
                    let items = items
                        .into_iter()
                        .filter(|i| readable(i.repo.as_str()))
                        .collect();
                    (build, items)
                },
            )),
        };
        Ok((query, found))
    }
}
