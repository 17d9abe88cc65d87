//! In-memory implementations of the repository traits.
//!
//! They define the reference semantics: the property tests in
//! `waybill-store-testkit` run random operations against a backend and this
//! model side by side and demand equal answers. They are also what embedders
//! and unit tests use when nothing needs to survive a restart.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::aql::ItemHint;
use crate::artifact::{Build, Item, ItemKind, ItemPath, RepoKey, Repository, plan_put};
use crate::auth::{TokenRecord, User};
use crate::bundle::ReleaseBundleVersion;
use crate::digest::{Ingest, Sha256};
use crate::keys::SigningKey;
use crate::name::{BundleName, BundleVersion};
use crate::site::{EdgeSite, ServiceId};
use crate::store::*;
use crate::tracker::{Tracker, TrackerId};
use crate::{Error, StoreError, StoreErrorKind};

#[derive(Debug, Default)]
struct Inner {
    settings: BTreeMap<String, String>,
    /// (name, version) -> (creation sequence, version).
    versions: BTreeMap<(BundleName, BundleVersion), (u64, ReleaseBundleVersion)>,
    next_seq: u64,
    sites: BTreeMap<ServiceId, EdgeSite>,
    keys: BTreeMap<String, SigningKey>,
    trackers: BTreeMap<TrackerId, Tracker>,
    last_tracker: TrackerId,
    users: BTreeMap<String, User>,
    tokens: BTreeMap<String, TokenRecord>,
    repos: BTreeMap<RepoKey, Repository>,
    items: ItemMap,
    builds: BTreeMap<(String, String), Build>,
}

/// A `Store` held in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied write:
        // every method mutates only after all checks passed.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn conflict(op: &'static str, what: String) -> StoreError {
    StoreError::new(StoreErrorKind::Conflict, op, what)
}

#[async_trait]
impl SystemRepo for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock().settings.get(key).cloned())
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.lock().settings.insert(key.into(), value.into());
        Ok(())
    }

    async fn list_settings(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .lock()
            .settings
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn delete_setting(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.lock().settings.remove(key).is_some())
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        Ok(self
            .lock()
            .settings
            .entry(key.into())
            .or_insert_with(|| value.into())
            .clone())
    }
}

#[async_trait]
impl BundleRepo for MemoryStore {
    async fn create_version(&self, version: ReleaseBundleVersion) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = (version.name.clone(), version.version.clone());
        if inner.versions.contains_key(&key) {
            return Err(conflict("create_version", version.label()));
        }
        inner.next_seq += 1;
        let seq = inner.next_seq;
        inner.versions.insert(key, (seq, version));
        Ok(())
    }

    async fn get_version(
        &self,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<Option<ReleaseBundleVersion>, StoreError> {
        let key = (name.clone(), version.clone());
        Ok(self.lock().versions.get(&key).map(|(_, v)| v.clone()))
    }

    async fn update_version(
        &self,
        name: &BundleName,
        version: &BundleVersion,
        update: VersionUpdate,
    ) -> Result<ReleaseBundleVersion, Error> {
        let mut inner = self.lock();
        let key = (name.clone(), version.clone());
        let Some((_, current)) = inner.versions.get(&key) else {
            return Err(Error::NotFound {
                what: format!("release bundle version {name}/{version}"),
            });
        };
        let next = apply_version_update(current, update)?;
        if let Some(slot) = inner.versions.get_mut(&key) {
            slot.1 = next.clone();
        }
        Ok(next)
    }

    async fn list_versions(
        &self,
        name: Option<&BundleName>,
        page: Page,
    ) -> Result<Listed<ReleaseBundleVersion>, StoreError> {
        let inner = self.lock();
        let mut all: Vec<&(u64, ReleaseBundleVersion)> = inner
            .versions
            .values()
            .filter(|(_, v)| name.is_none_or(|n| &v.name == n))
            .collect();
        all.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
        Ok(Listed {
            total: all.len() as u64,
            items: paged(all.into_iter().map(|(_, v)| v.clone()), page),
        })
    }

    async fn latest_version(
        &self,
        name: &BundleName,
    ) -> Result<Option<ReleaseBundleVersion>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .versions
            .values()
            .filter(|(_, v)| &v.name == name)
            .max_by_key(|(seq, _)| *seq)
            .map(|(_, v)| v.clone()))
    }

    async fn delete_version(
        &self,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<bool, StoreError> {
        let key = (name.clone(), version.clone());
        Ok(self.lock().versions.remove(&key).is_some())
    }

    async fn delete_bundle(&self, name: &BundleName) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let before = inner.versions.len();
        inner.versions.retain(|(n, _), _| n != name);
        Ok((before - inner.versions.len()) as u64)
    }
}

/// Applies a page to an ordered iterator.
pub fn paged<T>(items: impl Iterator<Item = T>, page: Page) -> Vec<T> {
    items
        .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(page.limit).unwrap_or(usize::MAX))
        .collect()
}

#[async_trait]
impl SiteRepo for MemoryStore {
    async fn put_site(&self, site: EdgeSite) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner
            .sites
            .values()
            .any(|s| s.name == site.name && s.service_id != site.service_id)
        {
            return Err(conflict("put_site", format!("site name '{}'", site.name)));
        }
        inner.sites.insert(site.service_id.clone(), site);
        Ok(())
    }

    async fn get_site(&self, id: &ServiceId) -> Result<Option<EdgeSite>, StoreError> {
        Ok(self.lock().sites.get(id).cloned())
    }

    async fn list_sites(&self) -> Result<Vec<EdgeSite>, StoreError> {
        let mut sites: Vec<EdgeSite> = self.lock().sites.values().cloned().collect();
        sites.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(sites)
    }

    async fn delete_site(&self, id: &ServiceId) -> Result<bool, StoreError> {
        Ok(self.lock().sites.remove(id).is_some())
    }
}

#[async_trait]
impl KeyRepo for MemoryStore {
    async fn put_key(&self, key: SigningKey) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if key.default {
            inner.keys.values_mut().for_each(|k| k.default = false);
        }
        inner.keys.insert(key.id.clone(), key);
        Ok(())
    }

    async fn get_key(&self, id: &str) -> Result<Option<SigningKey>, StoreError> {
        Ok(self.lock().keys.get(id).cloned())
    }

    async fn default_key(&self) -> Result<Option<SigningKey>, StoreError> {
        Ok(self.lock().keys.values().find(|k| k.default).cloned())
    }

    async fn list_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        Ok(self.lock().keys.values().cloned().collect())
    }

    async fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().keys.remove(id).is_some())
    }
}

#[async_trait]
impl TrackerRepo for MemoryStore {
    async fn create_tracker(&self, mut tracker: Tracker) -> Result<Tracker, StoreError> {
        let mut inner = self.lock();
        inner.last_tracker += 1;
        tracker.id = inner.last_tracker;
        inner.trackers.insert(tracker.id, tracker.clone());
        Ok(tracker)
    }

    async fn get_tracker(&self, id: TrackerId) -> Result<Option<Tracker>, StoreError> {
        Ok(self.lock().trackers.get(&id).cloned())
    }

    async fn update_tracker(&self, id: TrackerId, update: TrackerUpdate) -> Result<Tracker, Error> {
        let mut inner = self.lock();
        let Some(current) = inner.trackers.get(&id) else {
            return Err(Error::NotFound {
                what: format!("distribution tracker {id}"),
            });
        };
        let next = apply_tracker_update(current, update)?;
        inner.trackers.insert(id, next.clone());
        Ok(next)
    }

    async fn list_trackers(
        &self,
        name: Option<&BundleName>,
        version: Option<&BundleVersion>,
    ) -> Result<Vec<Tracker>, StoreError> {
        Ok(self
            .lock()
            .trackers
            .values()
            .filter(|t| name.is_none_or(|n| &t.name == n))
            .filter(|t| version.is_none_or(|v| &t.version == v))
            .cloned()
            .collect())
    }

    async fn delete_trackers(
        &self,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let before = inner.trackers.len();
        inner
            .trackers
            .retain(|_, t| !(&t.name == name && &t.version == version));
        Ok((before - inner.trackers.len()) as u64)
    }
}

#[async_trait]
impl UserRepo for MemoryStore {
    async fn create_user(&self, user: User) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.users.contains_key(&user.name) {
            return Err(conflict("create_user", format!("user '{}'", user.name)));
        }
        inner.users.insert(user.name.clone(), user);
        Ok(())
    }

    async fn put_user(&self, user: User) -> Result<(), StoreError> {
        self.lock().users.insert(user.name.clone(), user);
        Ok(())
    }

    async fn get_user(&self, name: &str) -> Result<Option<User>, StoreError> {
        Ok(self.lock().users.get(name).cloned())
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        Ok(self.lock().users.values().cloned().collect())
    }

    async fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.lock().users.remove(name).is_some())
    }

    async fn put_token(&self, token: TokenRecord) -> Result<(), StoreError> {
        self.lock().tokens.insert(token.token_id.clone(), token);
        Ok(())
    }

    async fn get_token(&self, token_id: &str) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.lock().tokens.get(token_id).cloned())
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let mut tokens: Vec<TokenRecord> = self.lock().tokens.values().cloned().collect();
        tokens.sort_by(|a, b| (a.issued_at, &a.token_id).cmp(&(b.issued_at, &b.token_id)));
        Ok(tokens)
    }

    async fn delete_token(&self, token_id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().tokens.remove(token_id).is_some())
    }
}

/// A `BlobStore` held in memory.
#[derive(Debug, Default)]
pub struct MemoryBlobStore {
    blobs: std::sync::Arc<Mutex<BTreeMap<Sha256, Vec<u8>>>>,
}

impl MemoryBlobStore {
    /// An empty blob store.
    pub fn new() -> MemoryBlobStore {
        MemoryBlobStore::default()
    }
}

struct MemoryBlobWriter {
    blobs: std::sync::Arc<Mutex<BTreeMap<Sha256, Vec<u8>>>>,
    buf: Vec<u8>,
    ingest: Ingest,
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn writer_with(&self, ingest: Ingest) -> Result<Box<dyn BlobWriter>, StoreError> {
        Ok(Box::new(MemoryBlobWriter {
            blobs: self.blobs.clone(),
            buf: Vec::new(),
            ingest,
        }))
    }

    async fn stat(&self, digest: &Sha256) -> Result<Option<u64>, StoreError> {
        let blobs = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        Ok(blobs.get(digest).map(|b| b.len() as u64))
    }

    async fn read_range(
        &self,
        digest: &Sha256,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let blobs = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        let blob = blobs.get(digest).ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::NotFound,
                "read_range",
                format!("blob {digest}"),
            )
        })?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(blob.len());
        let end = start
            .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
            .min(blob.len());
        Ok(blob[start..end].to_vec())
    }

    async fn delete(&self, digest: &Sha256) -> Result<bool, StoreError> {
        let mut blobs = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        Ok(blobs.remove(digest).is_some())
    }

    async fn list(&self) -> Result<Vec<crate::store::BlobEntry>, StoreError> {
        let blobs = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = blobs
            .iter()
            .map(|(d, b)| crate::store::BlobEntry {
                digest: *d,
                size: b.len() as u64,
                // The core has no clock.
                modified: 0,
            })
            .collect();
        out.sort_by_key(|e| e.digest.to_hex());
        Ok(out)
    }
}

#[async_trait]
impl BlobWriter for MemoryBlobWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.ingest.update(chunk);
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    async fn commit(self: Box<Self>, expected: Expected) -> Result<BlobInfo, StoreError> {
        let checksums = self.ingest.finish();
        expected.check(&checksums)?;
        let size = self.buf.len() as u64;
        let mut blobs = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        blobs.entry(checksums.sha256).or_insert(self.buf);
        Ok(BlobInfo {
            digest: checksums.sha256,
            checksums,
            size,
        })
    }
}

/// Items of the in-memory store, keyed by (repo, path).
type ItemMap = BTreeMap<(RepoKey, ItemPath), Item>;

fn items_below<'a>(items: &'a ItemMap, repo: &RepoKey, path: &ItemPath) -> Vec<&'a Item> {
    items
        .range((repo.clone(), ItemPath::root())..)
        .take_while(|((r, _), _)| r == repo)
        .filter(|((_, p), _)| path.contains(p) && !p.is_root())
        .map(|(_, i)| i)
        .collect()
}

/// Whether an item satisfies every constraint of a hint.
pub fn hint_admits(hint: &ItemHint, item: &Item) -> bool {
    hint.repo.as_ref().is_none_or(|r| &item.repo == r)
        && hint
            .folder
            .as_deref()
            .is_none_or(|f| item.path.folder() == f)
        && hint.name.as_deref().is_none_or(|n| item.path.name() == n)
        && hint
            .name_prefix
            .as_deref()
            .is_none_or(|p| item.path.name().starts_with(p))
        && hint.sha256.is_none_or(|d| item.sha256() == Some(d))
        && hint
            .prop
            .as_ref()
            .is_none_or(|(k, v)| item.props.get(k).is_some_and(|vs| vs.contains(v)))
}

#[async_trait]
impl ItemRepo for MemoryStore {
    async fn create_repository(&self, repo: Repository) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.repos.contains_key(&repo.key) {
            return Err(conflict(
                "create_repository",
                format!("repository '{}'", repo.key),
            ));
        }
        inner.repos.insert(repo.key.clone(), repo);
        Ok(())
    }

    async fn get_repository(&self, key: &RepoKey) -> Result<Option<Repository>, StoreError> {
        Ok(self.lock().repos.get(key).cloned())
    }

    async fn list_repositories(&self) -> Result<Vec<Repository>, StoreError> {
        Ok(self.lock().repos.values().cloned().collect())
    }

    async fn delete_repository(&self, key: &RepoKey) -> Result<Option<Vec<Item>>, StoreError> {
        let mut inner = self.lock();
        if inner.repos.remove(key).is_none() {
            return Ok(None);
        }
        let removed: Vec<Item> = items_below(&inner.items, key, &ItemPath::root())
            .into_iter()
            .cloned()
            .collect();
        inner.items.retain(|(r, _), _| r != key);
        Ok(Some(removed))
    }

    async fn put_file(&self, file: Item) -> Result<Option<Item>, StoreError> {
        let mut inner = self.lock();
        put_item(&mut inner, file)
    }

    async fn create_folder(&self, folder: Item) -> Result<(), StoreError> {
        let mut inner = self.lock();
        put_item(&mut inner, folder).map(drop)
    }

    async fn commit_files(&self, files: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut inner = self.lock();
        // Work on a copy so a refusal part-way leaves the store untouched.
        let (mut items, repos) = (inner.items.clone(), inner.repos.clone());
        let mut scratch = Inner {
            items: std::mem::take(&mut items),
            repos,
            ..Default::default()
        };
        let mut replaced = Vec::new();
        for f in files {
            replaced.extend(put_item(&mut scratch, f)?);
        }
        inner.items = scratch.items;
        Ok(replaced)
    }

    async fn remove_files(
        &self,
        files: Vec<(RepoKey, ItemPath, Sha256)>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut inner = self.lock();
        let mut removed = Vec::new();
        for (repo, path, sha) in files {
            let key = (repo, path);
            if inner.items.get(&key).and_then(Item::sha256) == Some(sha) {
                removed.extend(inner.items.remove(&key));
            }
        }
        Ok(removed)
    }

    async fn get_item(&self, repo: &RepoKey, path: &ItemPath) -> Result<Option<Item>, StoreError> {
        Ok(self
            .lock()
            .items
            .get(&(repo.clone(), path.clone()))
            .cloned())
    }

    async fn list_children(
        &self,
        repo: &RepoKey,
        folder: &ItemPath,
    ) -> Result<Vec<Item>, StoreError> {
        let inner = self.lock();
        Ok(items_below(&inner.items, repo, folder)
            .into_iter()
            .filter(|i| i.path.parent().as_ref() == Some(folder))
            .cloned()
            .collect())
    }

    async fn delete_item(&self, repo: &RepoKey, path: &ItemPath) -> Result<Vec<Item>, StoreError> {
        let mut inner = self.lock();
        let removed: Vec<Item> = items_below(&inner.items, repo, path)
            .into_iter()
            .cloned()
            .collect();
        for i in &removed {
            inner.items.remove(&(i.repo.clone(), i.path.clone()));
        }
        Ok(removed)
    }

    async fn update_props(
        &self,
        repo: &RepoKey,
        path: &ItemPath,
        recursive: bool,
        update: PropsUpdate,
    ) -> Result<u64, Error> {
        let mut inner = self.lock();
        let Some(item) = inner.items.get(&(repo.clone(), path.clone())) else {
            return Err(Error::NotFound {
                what: format!("item {repo}/{path}"),
            });
        };
        let targets: Vec<ItemPath> = if recursive {
            items_below(&inner.items, repo, path)
                .into_iter()
                .map(|i| i.path.clone())
                .collect()
        } else {
            vec![item.path.clone()]
        };
        for p in &targets {
            if let Some(i) = inner.items.get_mut(&(repo.clone(), p.clone())) {
                update(&mut i.props);
            }
        }
        Ok(targets.len() as u64)
    }

    async fn find_items(&self, hint: &ItemHint) -> Result<Vec<Item>, StoreError> {
        Ok(self
            .lock()
            .items
            .values()
            .filter(|i| hint_admits(hint, i))
            .cloned()
            .collect())
    }

    async fn count_content_refs(&self, sha256: &Sha256) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .items
            .values()
            .filter(|i| i.sha256() == Some(*sha256))
            .count() as u64)
    }

    async fn put_build(&self, build: Build) -> Result<(), StoreError> {
        self.lock()
            .builds
            .insert((build.name.clone(), build.number.clone()), build);
        Ok(())
    }

    async fn get_build(&self, name: &str, number: &str) -> Result<Option<Build>, StoreError> {
        Ok(self
            .lock()
            .builds
            .get(&(name.to_string(), number.to_string()))
            .cloned())
    }

    async fn list_builds(&self, name: Option<&str>) -> Result<Vec<Build>, StoreError> {
        let mut out: Vec<Build> = self
            .lock()
            .builds
            .values()
            .filter(|b| name.is_none_or(|n| b.name == n))
            .cloned()
            .collect();
        crate::artifact::sort_builds(&mut out);
        Ok(out)
    }
}

fn put_item(inner: &mut Inner, item: Item) -> Result<Option<Item>, StoreError> {
    if !inner.repos.contains_key(&item.repo) {
        return Err(StoreError::new(
            StoreErrorKind::NotFound,
            "put_item",
            format!("repository '{}'", item.repo),
        ));
    }
    let plan = plan_put(&item, |p| {
        Ok(inner.items.get(&(item.repo.clone(), p.clone())).cloned())
    })?;
    for f in plan.new_folders {
        inner.items.insert((f.repo.clone(), f.path.clone()), f);
    }
    if item.kind == ItemKind::Folder && plan.existing.is_some() {
        return Ok(None);
    }
    inner
        .items
        .insert((item.repo.clone(), item.path.clone()), item);
    Ok(plan.existing)
}
