//! Waybill store on sled 0.34 (pinned: sled's main branch is a 1.0 alpha rewrite).
//!
//! Everything lives in sled's default tree under one-letter key prefixes, so a
//! write that touches several records (a version and its two order indexes)
//! is a single `apply_batch`, which sled makes atomic against crashes and
//! readers. Read-modify-write steps run under one write mutex (the SQLite
//! backend's single writer, copied, so both backends behave alike), and each
//! write is flushed to disk before it returns. Calls run on tokio's blocking
//! pool via `spawn_blocking`.
//!
//! Key layout (`\0` separates parts; names cannot contain control characters):
//! - `m\0{key}` settings
//! - `v\0{name}\0{version}` a version, with its creation sequence
//! - `q\0{seq}` and `n\0{name}\0{seq}` creation-order indexes (seq big-endian)
//! - `c\0{counter}` counters: `seq` for versions, `trk` for tracker ids
//! - `s\0{service_id}` sites, `S\0{name}` the unique-name index
//! - `k\0{id}` signing keys, `t\0{id}` trackers (id big-endian)
//! - `u\0{name}` users, `o\0{token_id}` token records
//! - `r\0{repo}` repositories, `i\0{repo}\0{path}` items, `b\0{name}\0{number}` builds
//! - item indexes, each holding the item's key: `f\0{repo}\0{folder}\0{name}`
//!   (children), `N\0{name}\0{repo}\0{path}`, `h\0{sha256}\0{repo}\0{path}`,
//!   `p\0{key}\0{value}\0{repo}\0{path}` (property values)

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use waybill_core::aql::ItemHint;
use waybill_core::artifact::{Build, Item, ItemKind, ItemPath, RepoKey, Repository, plan_put};
use waybill_core::auth::{TokenRecord, User};
use waybill_core::bundle::ReleaseBundleVersion;
use waybill_core::digest::Sha256;
use waybill_core::keys::SigningKey;
use waybill_core::memory::hint_admits;
use waybill_core::memory::paged;
use waybill_core::name::{BundleName, BundleVersion};
use waybill_core::site::{EdgeSite, ServiceId};
use waybill_core::store::*;
use waybill_core::tracker::{Tracker, TrackerId};
use waybill_core::{Error, StoreError, StoreErrorKind, async_trait};

/// A `Store` in a sled database directory.
#[derive(Debug, Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: sled::Db,
    write_lock: Mutex<()>,
}

#[derive(Serialize, Deserialize)]
struct StoredVersion {
    seq: u64,
    version: ReleaseBundleVersion,
}

fn key(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = vec![prefix];
    for p in parts {
        k.push(0);
        k.extend_from_slice(p);
    }
    k
}

fn prefix_of(prefix: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = key(prefix, parts);
    k.push(0);
    k
}

/// The one place sled errors become store error kinds.
fn map_err(op: &'static str, e: sled::Error) -> StoreError {
    let kind = match e {
        sled::Error::Corruption { .. } => StoreErrorKind::Corrupt,
        _ => StoreErrorKind::Unavailable,
    };
    StoreError::new(kind, op, "sled").with_source(e)
}

fn encode<T: Serialize>(op: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value)
        .map_err(|e| StoreError::new(StoreErrorKind::Corrupt, op, "encode").with_source(e))
}

fn decode<T: DeserializeOwned>(op: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::new(StoreErrorKind::Corrupt, op, "decode").with_source(e))
}

/// The writes of one transaction, applied as one batch at the end.
struct Writes<'a> {
    db: &'a sled::Db,
    op: &'static str,
    batch: sled::Batch,
    // Reads inside the transaction see its own earlier writes.
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Writes<'_> {
    fn get_raw(&self, k: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.overlay.get(k) {
            return Ok(v.clone());
        }
        let v = self.db.get(k).map_err(|e| map_err(self.op, e))?;
        Ok(v.map(|v| v.to_vec()))
    }

    fn get<T: DeserializeOwned>(&self, k: &[u8]) -> Result<Option<T>, StoreError> {
        self.get_raw(k)?.map(|b| decode(self.op, &b)).transpose()
    }

    fn put_raw(&mut self, k: Vec<u8>, v: Vec<u8>) {
        self.batch.insert(k.clone(), v.clone());
        self.overlay.insert(k, Some(v));
    }

    fn put<T: Serialize>(&mut self, k: Vec<u8>, v: &T) -> Result<(), StoreError> {
        let bytes = encode(self.op, v)?;
        self.put_raw(k, bytes);
        Ok(())
    }

    fn remove(&mut self, k: Vec<u8>) {
        self.batch.remove(k.clone());
        self.overlay.insert(k, None);
    }

    /// Increments counter `name` and returns its new value.
    fn next(&mut self, name: &str) -> Result<u64, StoreError> {
        let k = key(b'c', &[name.as_bytes()]);
        let current = match self.get_raw(&k)? {
            Some(b) => u64::from_be_bytes(b.as_slice().try_into().map_err(|_| {
                StoreError::new(StoreErrorKind::Corrupt, self.op, format!("counter {name}"))
            })?),
            None => 0,
        };
        self.put_raw(k, (current + 1).to_be_bytes().to_vec());
        Ok(current + 1)
    }
}

impl SledStore {
    /// Opens (creating if needed) the database in directory `path`.
    ///
    /// sled locks its directory. A handle dropped a moment ago in this process
    /// releases the lock only once sled's background flusher stops, so a
    /// busy lock is retried for a few seconds before it counts as another
    /// process using the directory.
    pub fn open(path: impl AsRef<Path>) -> Result<SledStore, StoreError> {
        const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
        let started = std::time::Instant::now();
        let db = loop {
            match sled::Config::new().path(path.as_ref()).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.to_string().contains("could not acquire lock") =>
                {
                    if started.elapsed() > LOCK_WAIT {
                        return Err(StoreError::new(
                            StoreErrorKind::Unavailable,
                            "open",
                            format!(
                                "{} is locked by another process using it",
                                path.as_ref().display()
                            ),
                        )
                        .with_source(e));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(map_err("open", e)),
            }
        };
        Ok(SledStore {
            inner: Arc::new(Inner {
                db,
                write_lock: Mutex::new(()),
            }),
        })
    }

    /// Runs `f` on the blocking pool.
    async fn blocking<T, E>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Inner) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        match tokio::task::spawn_blocking(move || f(&inner)).await {
            Ok(res) => res,
            Err(e) => Err(
                StoreError::new(StoreErrorKind::Unavailable, op, "blocking task failed")
                    .with_source(e)
                    .into(),
            ),
        }
    }

    /// Runs `f` as one atomic, durable write; an `Err` from `f` writes nothing.
    async fn write<T, E>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Writes<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.blocking(op, move |inner| {
            let _guard = inner.write_lock.lock().unwrap_or_else(|e| e.into_inner());
            let mut w = Writes {
                db: &inner.db,
                op,
                batch: sled::Batch::default(),
                overlay: BTreeMap::new(),
            };
            let out = f(&mut w)?;
            inner.db.apply_batch(w.batch).map_err(|e| map_err(op, e))?;
            inner.db.flush().map_err(|e| map_err(op, e))?;
            Ok(out)
        })
        .await
    }

    /// Reads one record.
    async fn read_one<T>(&self, op: &'static str, k: Vec<u8>) -> Result<Option<T>, StoreError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.blocking(op, move |inner| {
            let v = inner.db.get(&k).map_err(|e| map_err(op, e))?;
            v.map(|b| decode(op, &b)).transpose()
        })
        .await
    }

    /// Reads every record under a prefix, in key order. Holds the write lock
    /// so a listing never sees half of a concurrent write.
    async fn read_prefix<T>(&self, op: &'static str, prefix: Vec<u8>) -> Result<Vec<T>, StoreError>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.blocking(op, move |inner| {
            let _guard = inner.write_lock.lock().unwrap_or_else(|e| e.into_inner());
            scan(&inner.db, op, &prefix)?
                .into_iter()
                .map(|(_, v)| decode(op, &v))
                .collect()
        })
        .await
    }
}

/// A raw key and value.
type Entry = (Vec<u8>, Vec<u8>);

/// Every entry under `prefix`, in key order.
fn scan(db: &sled::Db, op: &'static str, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
    db.scan_prefix(prefix)
        .map(|kv| {
            kv.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(|e| map_err(op, e))
        })
        .collect()
}

fn conflict(op: &'static str, what: String) -> StoreError {
    StoreError::new(StoreErrorKind::Conflict, op, what)
}

fn version_key(name: &str, version: &str) -> Vec<u8> {
    key(b'v', &[name.as_bytes(), version.as_bytes()])
}

#[async_trait]
impl SystemRepo for SledStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.blocking("ping", |inner| {
            inner.db.get(b"c\0ping").map_err(|e| map_err("ping", e))?;
            // Checks that the log can still be written and synced.
            inner.db.flush().map_err(|e| map_err("ping", e))?;
            Ok(())
        })
        .await
    }

    async fn get_setting(&self, k: &str) -> Result<Option<String>, StoreError> {
        self.read_one("get_setting", key(b'm', &[k.as_bytes()]))
            .await
    }

    async fn get_settings(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let keys: Vec<Vec<u8>> = keys.iter().map(|k| key(b'm', &[k.as_bytes()])).collect();
        self.blocking("get_settings", move |inner| {
            keys.iter()
                .map(|k| {
                    let v = inner.db.get(k).map_err(|e| map_err("get_settings", e))?;
                    v.map(|b| decode("get_settings", &b)).transpose()
                })
                .collect()
        })
        .await
    }

    async fn put_setting(&self, k: &str, value: &str) -> Result<(), StoreError> {
        let (k, value) = (key(b'm', &[k.as_bytes()]), value.to_string());
        self.write("put_setting", move |w| w.put(k, &value)).await
    }

    async fn list_settings(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let scan_prefix = [b"m\0".as_slice(), prefix.as_bytes()].concat();
        self.blocking("list_settings", move |inner| {
            scan(&inner.db, "list_settings", &scan_prefix)?
                .into_iter()
                .map(|(k, v)| {
                    Ok((
                        utf8("list_settings", k[2..].to_vec())?,
                        decode("list_settings", &v)?,
                    ))
                })
                .collect()
        })
        .await
    }

    async fn delete_setting(&self, k: &str) -> Result<bool, StoreError> {
        let k = key(b'm', &[k.as_bytes()]);
        self.write("delete_setting", move |w| {
            let existed = w.get_raw(&k)?.is_some();
            w.remove(k);
            Ok(existed)
        })
        .await
    }

    async fn setting_or_insert(&self, k: &str, value: &str) -> Result<String, StoreError> {
        let (k, value) = (key(b'm', &[k.as_bytes()]), value.to_string());
        self.write("setting_or_insert", move |w| {
            if let Some(existing) = w.get::<String>(&k)? {
                return Ok(existing);
            }
            w.put(k, &value)?;
            Ok(value)
        })
        .await
    }
}

#[async_trait]
impl BundleRepo for SledStore {
    async fn create_version(&self, version: ReleaseBundleVersion) -> Result<(), StoreError> {
        self.write("create_version", move |w| {
            let (name, ver) = (version.name.to_string(), version.version.to_string());
            let vk = version_key(&name, &ver);
            if w.get_raw(&vk)?.is_some() {
                return Err(conflict("create_version", version.label()));
            }
            let seq = w.next("seq")?;
            let seq_be = seq.to_be_bytes();
            let pair = [name.as_bytes(), b"\0", ver.as_bytes()].concat();
            w.put_raw(key(b'q', &[&seq_be]), pair);
            w.put_raw(key(b'n', &[name.as_bytes(), &seq_be]), ver.into_bytes());
            w.put(vk, &StoredVersion { seq, version })
        })
        .await
    }

    async fn get_version(
        &self,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<Option<ReleaseBundleVersion>, StoreError> {
        let k = version_key(name.as_str(), version.as_str());
        let stored: Option<StoredVersion> = self.read_one("get_version", k).await?;
        Ok(stored.map(|s| s.version))
    }

    async fn update_version(
        &self,
        name: &BundleName,
        version: &BundleVersion,
        update: VersionUpdate,
    ) -> Result<ReleaseBundleVersion, Error> {
        let (name, version) = (name.clone(), version.clone());
        self.write("update_version", move |w| {
            let k = version_key(name.as_str(), version.as_str());
            let Some(stored) = w.get::<StoredVersion>(&k)? else {
                return Err(Error::NotFound {
                    what: format!("release bundle version {name}/{version}"),
                });
            };
            let next = apply_version_update(&stored.version, update)?;
            w.put(
                k,
                &StoredVersion {
                    seq: stored.seq,
                    version: next.clone(),
                },
            )?;
            Ok(next)
        })
        .await
    }

    async fn list_versions(
        &self,
        name: Option<&BundleName>,
        page: Page,
    ) -> Result<Listed<ReleaseBundleVersion>, StoreError> {
        let name = name.map(|n| n.to_string());
        self.blocking("list_versions", move |inner| {
            const OP: &str = "list_versions";
            let _guard = inner.write_lock.lock().unwrap_or_else(|e| e.into_inner());
            // Index entries in creation order; newest first means reversed.
            let index: Vec<(String, String)> = match &name {
                None => scan(&inner.db, OP, b"q\0")?
                    .into_iter()
                    .map(|(_, pair)| split_pair(OP, &pair))
                    .collect::<Result<_, _>>()?,
                Some(n) => scan(&inner.db, OP, &prefix_of(b'n', &[n.as_bytes()]))?
                    .into_iter()
                    .map(|(_, v)| utf8(OP, v).map(|v| (n.clone(), v)))
                    .collect::<Result<_, _>>()?,
            };
            let total = index.len() as u64;
            let mut items = Vec::new();
            for (n, v) in paged(index.into_iter().rev(), page) {
                let bytes = inner
                    .db
                    .get(version_key(&n, &v))
                    .map_err(|e| map_err(OP, e))?
                    .ok_or_else(|| {
                        StoreError::new(
                            StoreErrorKind::Corrupt,
                            OP,
                            format!("index names missing {n}/{v}"),
                        )
                    })?;
                items.push(decode::<StoredVersion>(OP, &bytes)?.version);
            }
            Ok(Listed { items, total })
        })
        .await
    }

    async fn latest_version(
        &self,
        name: &BundleName,
    ) -> Result<Option<ReleaseBundleVersion>, StoreError> {
        let listed = self
            .list_versions(
                Some(name),
                Page {
                    offset: 0,
                    limit: 1,
                },
            )
            .await?;
        Ok(listed.items.into_iter().next())
    }

    async fn delete_version(
        &self,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<bool, StoreError> {
        let (name, version) = (name.to_string(), version.to_string());
        self.write("delete_version", move |w| {
            remove_version(w, &name, &version)
        })
        .await
    }

    async fn delete_bundle(&self, name: &BundleName) -> Result<u64, StoreError> {
        let name = name.to_string();
        self.write("delete_bundle", move |w| {
            let versions = scan_writes(w, &prefix_of(b'n', &[name.as_bytes()]))?;
            let mut n = 0;
            for (_, v) in versions {
                if remove_version(w, &name, &utf8(w.op, v)?)? {
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }
}

fn scan_writes(w: &Writes<'_>, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
    scan(w.db, w.op, prefix)
}

fn remove_version(w: &mut Writes<'_>, name: &str, version: &str) -> Result<bool, StoreError> {
    let k = version_key(name, version);
    let Some(stored) = w.get::<StoredVersion>(&k)? else {
        return Ok(false);
    };
    let seq_be = stored.seq.to_be_bytes();
    w.remove(key(b'q', &[&seq_be]));
    w.remove(key(b'n', &[name.as_bytes(), &seq_be]));
    w.remove(k);
    Ok(true)
}

fn utf8(op: &'static str, bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes)
        .map_err(|e| StoreError::new(StoreErrorKind::Corrupt, op, "index entry").with_source(e))
}

fn split_pair(op: &'static str, pair: &[u8]) -> Result<(String, String), StoreError> {
    let at = pair.iter().position(|b| *b == 0).ok_or_else(|| {
        StoreError::new(StoreErrorKind::Corrupt, op, "index entry without separator")
    })?;
    Ok((
        utf8(op, pair[..at].to_vec())?,
        utf8(op, pair[at + 1..].to_vec())?,
    ))
}

#[async_trait]
impl SiteRepo for SledStore {
    async fn put_site(&self, site: EdgeSite) -> Result<(), StoreError> {
        self.write("put_site", move |w| {
            let id = site.service_id.as_str().as_bytes().to_vec();
            let name_key = key(b'S', &[site.name.as_bytes()]);
            if let Some(owner) = w.get_raw(&name_key)?
                && owner != id
            {
                return Err(conflict("put_site", format!("site name '{}'", site.name)));
            }
            let site_key = key(b's', &[&id]);
            if let Some(old) = w.get::<EdgeSite>(&site_key)?
                && old.name != site.name
            {
                w.remove(key(b'S', &[old.name.as_bytes()]));
            }
            w.put_raw(name_key, id);
            w.put(site_key, &site)
        })
        .await
    }

    async fn get_site(&self, id: &ServiceId) -> Result<Option<EdgeSite>, StoreError> {
        self.read_one("get_site", key(b's', &[id.as_str().as_bytes()]))
            .await
    }

    async fn list_sites(&self) -> Result<Vec<EdgeSite>, StoreError> {
        let mut sites: Vec<EdgeSite> = self.read_prefix("list_sites", b"s\0".to_vec()).await?;
        sites.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(sites)
    }

    async fn delete_site(&self, id: &ServiceId) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write("delete_site", move |w| {
            let k = key(b's', &[id.as_bytes()]);
            let Some(site) = w.get::<EdgeSite>(&k)? else {
                return Ok(false);
            };
            w.remove(key(b'S', &[site.name.as_bytes()]));
            w.remove(k);
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl KeyRepo for SledStore {
    async fn put_key(&self, signing_key: SigningKey) -> Result<(), StoreError> {
        self.write("put_key", move |w| {
            if signing_key.default {
                for (k, v) in scan_writes(w, b"k\0")? {
                    let mut other: SigningKey = decode(w.op, &v)?;
                    if other.default && other.id != signing_key.id {
                        other.default = false;
                        w.put(k, &other)?;
                    }
                }
            }
            w.put(key(b'k', &[signing_key.id.as_bytes()]), &signing_key)
        })
        .await
    }

    async fn get_key(&self, id: &str) -> Result<Option<SigningKey>, StoreError> {
        self.read_one("get_key", key(b'k', &[id.as_bytes()])).await
    }

    async fn default_key(&self) -> Result<Option<SigningKey>, StoreError> {
        let keys = self.list_keys().await?;
        Ok(keys.into_iter().find(|k| k.default))
    }

    async fn list_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        let mut keys: Vec<SigningKey> = self.read_prefix("list_keys", b"k\0".to_vec()).await?;
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(keys)
    }

    async fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        let k = key(b'k', &[id.as_bytes()]);
        self.write("delete_key", move |w| {
            let existed = w.get_raw(&k)?.is_some();
            w.remove(k);
            Ok(existed)
        })
        .await
    }
}

fn tracker_key(id: TrackerId) -> Vec<u8> {
    key(b't', &[&id.to_be_bytes()])
}

#[async_trait]
impl TrackerRepo for SledStore {
    async fn create_tracker(&self, mut tracker: Tracker) -> Result<Tracker, StoreError> {
        self.write("create_tracker", move |w| {
            tracker.id = w.next("trk")?;
            w.put(tracker_key(tracker.id), &tracker)?;
            Ok(tracker)
        })
        .await
    }

    async fn get_tracker(&self, id: TrackerId) -> Result<Option<Tracker>, StoreError> {
        self.read_one("get_tracker", tracker_key(id)).await
    }

    async fn update_tracker(&self, id: TrackerId, update: TrackerUpdate) -> Result<Tracker, Error> {
        self.write("update_tracker", move |w| {
            let k = tracker_key(id);
            let Some(current) = w.get::<Tracker>(&k)? else {
                return Err(Error::NotFound {
                    what: format!("distribution tracker {id}"),
                });
            };
            let next = apply_tracker_update(&current, update)?;
            w.put(k, &next)?;
            Ok(next)
        })
        .await
    }

    async fn list_trackers(
        &self,
        name: Option<&BundleName>,
        version: Option<&BundleVersion>,
    ) -> Result<Vec<Tracker>, StoreError> {
        let all: Vec<Tracker> = self.read_prefix("list_trackers", b"t\0".to_vec()).await?;
        Ok(all
            .into_iter()
            .filter(|t| name.is_none_or(|n| &t.name == n))
            .filter(|t| version.is_none_or(|v| &t.version == v))
            .collect())
    }

    async fn delete_trackers(
        &self,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<u64, StoreError> {
        let (name, version) = (name.clone(), version.clone());
        self.write("delete_trackers", move |w| {
            let mut n = 0;
            for (k, v) in scan_writes(w, b"t\0")? {
                let t: Tracker = decode(w.op, &v)?;
                if t.name == name && t.version == version {
                    w.remove(k);
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }
}

#[async_trait]
impl UserRepo for SledStore {
    async fn create_user(&self, user: User) -> Result<(), StoreError> {
        self.write("create_user", move |w| {
            let k = key(b'u', &[user.name.as_bytes()]);
            if w.get_raw(&k)?.is_some() {
                return Err(conflict("create_user", format!("user '{}'", user.name)));
            }
            w.put(k, &user)
        })
        .await
    }

    async fn put_user(&self, user: User) -> Result<(), StoreError> {
        self.write("put_user", move |w| {
            w.put(key(b'u', &[user.name.as_bytes()]), &user)
        })
        .await
    }

    async fn get_user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.read_one("get_user", key(b'u', &[name.as_bytes()]))
            .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        // Key order is name order: user names cannot contain the separator.
        self.read_prefix("list_users", b"u\0".to_vec()).await
    }

    async fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        let k = key(b'u', &[name.as_bytes()]);
        self.write("delete_user", move |w| {
            let existed = w.get_raw(&k)?.is_some();
            w.remove(k);
            Ok(existed)
        })
        .await
    }

    async fn put_token(&self, token: TokenRecord) -> Result<(), StoreError> {
        self.write("put_token", move |w| {
            w.put(key(b'o', &[token.token_id.as_bytes()]), &token)
        })
        .await
    }

    async fn get_token(&self, token_id: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.read_one("get_token", key(b'o', &[token_id.as_bytes()]))
            .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let mut tokens: Vec<TokenRecord> = self.read_prefix("list_tokens", b"o\0".to_vec()).await?;
        tokens.sort_by(|a, b| (a.issued_at, &a.token_id).cmp(&(b.issued_at, &b.token_id)));
        Ok(tokens)
    }

    async fn delete_token(&self, token_id: &str) -> Result<bool, StoreError> {
        let k = key(b'o', &[token_id.as_bytes()]);
        self.write("delete_token", move |w| {
            let existed = w.get_raw(&k)?.is_some();
            w.remove(k);
            Ok(existed)
        })
        .await
    }
}

fn item_key(repo: &str, path: &str) -> Vec<u8> {
    key(b'i', &[repo.as_bytes(), path.as_bytes()])
}

/// The index entries that point at `item`.
fn index_keys(item: &Item) -> Vec<Vec<u8>> {
    let (repo, path) = (item.repo.as_str().as_bytes(), item.path.as_str().as_bytes());
    let name = item.path.name().as_bytes();
    let mut keys = vec![
        key(b'f', &[repo, item.path.folder().as_bytes(), name]),
        key(b'N', &[name, repo, path]),
    ];
    if let Some(d) = item.sha256() {
        keys.push(key(b'h', &[d.to_hex().as_bytes(), repo, path]));
    }
    for (k, values) in &item.props {
        for v in values {
            keys.push(key(b'p', &[k.as_bytes(), v.as_bytes(), repo, path]));
        }
    }
    keys
}

fn write_item(w: &mut Writes<'_>, item: &Item) -> Result<(), StoreError> {
    let ik = item_key(item.repo.as_str(), item.path.as_str());
    if let Some(old) = w.get::<Item>(&ik)? {
        for k in index_keys(&old) {
            w.remove(k);
        }
    }
    for k in index_keys(item) {
        w.put_raw(k, ik.clone());
    }
    w.put(ik, item)
}

fn remove_item(w: &mut Writes<'_>, item: &Item) {
    for k in index_keys(item) {
        w.remove(k);
    }
    w.remove(item_key(item.repo.as_str(), item.path.as_str()));
}

/// The item at `path` and everything below it, in path order.
fn subtree(
    db: &sled::Db,
    op: &'static str,
    repo: &RepoKey,
    path: &ItemPath,
) -> Result<Vec<Item>, StoreError> {
    let mut out = Vec::new();
    if path.is_root() {
        for (_, v) in scan(db, op, &prefix_of(b'i', &[repo.as_str().as_bytes()]))? {
            out.push(decode(op, &v)?);
        }
        return Ok(out);
    }
    if let Some(v) = db
        .get(item_key(repo.as_str(), path.as_str()))
        .map_err(|e| map_err(op, e))?
    {
        out.push(decode(op, &v)?);
    }
    let below = [item_key(repo.as_str(), path.as_str()), b"/".to_vec()].concat();
    for (_, v) in scan(db, op, &below)? {
        out.push(decode(op, &v)?);
    }
    Ok(out)
}

/// Follows index entries (whose values are item keys) to the items.
fn follow(db: &sled::Db, op: &'static str, prefix: &[u8]) -> Result<Vec<Item>, StoreError> {
    let mut out = Vec::new();
    for (_, ik) in scan(db, op, prefix)? {
        let bytes = db.get(&ik).map_err(|e| map_err(op, e))?.ok_or_else(|| {
            StoreError::new(
                StoreErrorKind::Corrupt,
                op,
                "index entry names a missing item",
            )
        })?;
        out.push(decode(op, &bytes)?);
    }
    Ok(out)
}

fn put_item(w: &mut Writes<'_>, item: &Item) -> Result<Option<Item>, StoreError> {
    if w.get_raw(&key(b'r', &[item.repo.as_str().as_bytes()]))?
        .is_none()
    {
        return Err(StoreError::new(
            StoreErrorKind::NotFound,
            "put_item",
            format!("repository '{}'", item.repo),
        ));
    }
    let plan = plan_put(item, |p| w.get(&item_key(item.repo.as_str(), p.as_str())))?;
    for folder in &plan.new_folders {
        write_item(w, folder)?;
    }
    if item.kind == ItemKind::Folder && plan.existing.is_some() {
        return Ok(None);
    }
    write_item(w, item)?;
    Ok(plan.existing)
}

#[async_trait]
impl ItemRepo for SledStore {
    async fn create_repository(&self, repo: Repository) -> Result<(), StoreError> {
        self.write("create_repository", move |w| {
            let k = key(b'r', &[repo.key.as_str().as_bytes()]);
            if w.get_raw(&k)?.is_some() {
                return Err(conflict(
                    "create_repository",
                    format!("repository '{}'", repo.key),
                ));
            }
            w.put(k, &repo)
        })
        .await
    }

    async fn get_repository(&self, k: &RepoKey) -> Result<Option<Repository>, StoreError> {
        self.read_one("get_repository", key(b'r', &[k.as_str().as_bytes()]))
            .await
    }

    async fn list_repositories(&self) -> Result<Vec<Repository>, StoreError> {
        self.read_prefix("list_repositories", b"r\0".to_vec()).await
    }

    async fn delete_repository(&self, k: &RepoKey) -> Result<Option<Vec<Item>>, StoreError> {
        let k = k.clone();
        self.write("delete_repository", move |w| {
            let rk = key(b'r', &[k.as_str().as_bytes()]);
            if w.get_raw(&rk)?.is_none() {
                return Ok(None);
            }
            let items = subtree(w.db, w.op, &k, &ItemPath::root())?;
            for item in &items {
                remove_item(w, item);
            }
            w.remove(rk);
            Ok(Some(items))
        })
        .await
    }

    async fn put_file(&self, file: Item) -> Result<Option<Item>, StoreError> {
        self.write("put_file", move |w| put_item(w, &file)).await
    }

    async fn create_folder(&self, folder: Item) -> Result<(), StoreError> {
        self.write("create_folder", move |w| put_item(w, &folder).map(drop))
            .await
    }

    async fn commit_files(&self, files: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        // One batch: the overlay lets later files see folders created by earlier ones.
        self.write("commit_files", move |w| {
            let mut replaced = Vec::new();
            for f in &files {
                replaced.extend(put_item(w, f)?);
            }
            Ok(replaced)
        })
        .await
    }

    async fn remove_files(
        &self,
        files: Vec<(RepoKey, ItemPath, Sha256)>,
    ) -> Result<Vec<Item>, StoreError> {
        // One batch: every removal lands at once.
        self.write("remove_files", move |w| {
            let mut removed = Vec::new();
            for (repo, path, sha) in &files {
                let Some(item) = w.get::<Item>(&item_key(repo.as_str(), path.as_str()))? else {
                    continue;
                };
                if item.sha256() == Some(*sha) {
                    remove_item(w, &item);
                    removed.push(item);
                }
            }
            Ok(removed)
        })
        .await
    }

    async fn get_item(&self, repo: &RepoKey, path: &ItemPath) -> Result<Option<Item>, StoreError> {
        self.read_one("get_item", item_key(repo.as_str(), path.as_str()))
            .await
    }

    async fn list_children(
        &self,
        repo: &RepoKey,
        folder: &ItemPath,
    ) -> Result<Vec<Item>, StoreError> {
        let folder_name = if folder.is_root() {
            ".".to_string()
        } else {
            folder.to_string()
        };
        let prefix = prefix_of(b'f', &[repo.as_str().as_bytes(), folder_name.as_bytes()]);
        self.blocking("list_children", move |inner| {
            let _guard = inner.write_lock.lock().unwrap_or_else(|e| e.into_inner());
            follow(&inner.db, "list_children", &prefix)
        })
        .await
    }

    async fn delete_item(&self, repo: &RepoKey, path: &ItemPath) -> Result<Vec<Item>, StoreError> {
        let (repo, path) = (repo.clone(), path.clone());
        self.write("delete_item", move |w| {
            let items = subtree(w.db, w.op, &repo, &path)?;
            for item in &items {
                remove_item(w, item);
            }
            Ok(items)
        })
        .await
    }

    async fn update_props(
        &self,
        repo: &RepoKey,
        path: &ItemPath,
        recursive: bool,
        update: PropsUpdate,
    ) -> Result<u64, Error> {
        let (repo, path) = (repo.clone(), path.clone());
        self.write("update_props", move |w| {
            let Some(item) = w.get::<Item>(&item_key(repo.as_str(), path.as_str()))? else {
                return Err(Error::NotFound {
                    what: format!("item {repo}/{path}"),
                });
            };
            let targets = if recursive {
                subtree(w.db, w.op, &repo, &path)?
            } else {
                vec![item]
            };
            for mut t in targets.iter().cloned() {
                update(&mut t.props);
                write_item(w, &t)?;
            }
            Ok(targets.len() as u64)
        })
        .await
    }

    async fn find_items(&self, hint: &ItemHint) -> Result<Vec<Item>, StoreError> {
        let hint = hint.clone();
        self.blocking("find_items", move |inner| {
            const OP: &str = "find_items";
            let _guard = inner.write_lock.lock().unwrap_or_else(|e| e.into_inner());
            let db = &inner.db;
            // The most selective index first; the exact filter runs afterwards.
            let candidates = if let Some(d) = hint.sha256 {
                follow(db, OP, &prefix_of(b'h', &[d.to_hex().as_bytes()]))?
            } else if let Some(name) = &hint.name {
                follow(db, OP, &prefix_of(b'N', &[name.as_bytes()]))?
            } else if let Some((k, v)) = &hint.prop {
                follow(db, OP, &prefix_of(b'p', &[k.as_bytes(), v.as_bytes()]))?
            } else if let (Some(repo), Some(folder)) = (&hint.repo, &hint.folder) {
                follow(
                    db,
                    OP,
                    &prefix_of(b'f', &[repo.as_str().as_bytes(), folder.as_bytes()]),
                )?
            } else if let Some(repo) = &hint.repo {
                subtree(db, OP, repo, &ItemPath::root())?
            } else {
                scan(db, OP, b"i\0")?
                    .into_iter()
                    .map(|(_, v)| decode(OP, &v))
                    .collect::<Result<_, _>>()?
            };
            Ok(candidates
                .into_iter()
                .filter(|i| hint_admits(&hint, i))
                .collect())
        })
        .await
    }

    async fn count_content_refs(&self, sha256: &Sha256) -> Result<u64, StoreError> {
        let prefix = prefix_of(b'h', &[sha256.to_hex().as_bytes()]);
        self.blocking("count_content_refs", move |inner| {
            Ok(scan(&inner.db, "count_content_refs", &prefix)?.len() as u64)
        })
        .await
    }

    async fn put_build(&self, build: Build) -> Result<(), StoreError> {
        self.write("put_build", move |w| {
            w.put(
                key(b'b', &[build.name.as_bytes(), build.number.as_bytes()]),
                &build,
            )
        })
        .await
    }

    async fn get_build(&self, name: &str, number: &str) -> Result<Option<Build>, StoreError> {
        self.read_one(
            "get_build",
            key(b'b', &[name.as_bytes(), number.as_bytes()]),
        )
        .await
    }

    async fn list_builds(&self, name: Option<&str>) -> Result<Vec<Build>, StoreError> {
        let prefix = match name {
            Some(n) => prefix_of(b'b', &[n.as_bytes()]),
            None => vec![b'b', 0],
        };
        let mut builds: Vec<Build> = self.read_prefix("list_builds", prefix).await?;
        waybill_core::artifact::sort_builds(&mut builds);
        Ok(builds)
    }
}
