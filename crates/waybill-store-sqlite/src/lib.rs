//! Waybill's default store: SQLite through rusqlite, bundled, in WAL mode.
//!
//! One connection behind a mutex serves every call, on tokio's blocking pool
//! (`spawn_blocking`), so SQLite never blocks an async worker. Every write is
//! one SQLite transaction: a domain step that refuses, or a crash, leaves no
//! partial write. The schema is versioned with `PRAGMA user_version` and
//! migrated forward on open (see `MIGRATIONS`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use waybill_core::aql::ItemHint;
use waybill_core::artifact::{Build, Item, ItemKind, ItemPath, RepoKey, Repository, plan_put};
use waybill_core::auth::{TokenRecord, User};
use waybill_core::bundle::ReleaseBundleVersion;
use waybill_core::digest::Sha256;
use waybill_core::keys::SigningKey;
use waybill_core::name::{BundleName, BundleVersion};
use waybill_core::site::{EdgeSite, ServiceId};
use waybill_core::store::*;
use waybill_core::tracker::{Tracker, TrackerId};
use waybill_core::{Error, StoreError, StoreErrorKind, async_trait};

/// Schema migrations, applied in order; entry `i` takes the schema from
/// version `i` to `i + 1`. Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE bundle_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (name, version)
);
CREATE INDEX bundle_versions_by_name ON bundle_versions (name, seq);
CREATE TABLE sites (
    service_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL
);
CREATE TABLE signing_keys (
    id TEXT PRIMARY KEY,
    is_default INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE trackers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX trackers_by_version ON trackers (name, version, id);
CREATE TABLE users (name TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE tokens (
    token_id TEXT PRIMARY KEY,
    issued_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE repositories (key TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    repo TEXT NOT NULL,
    path TEXT NOT NULL,
    folder TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT,
    body TEXT NOT NULL,
    UNIQUE (repo, path)
);
CREATE INDEX items_by_folder ON items (repo, folder, name);
CREATE INDEX items_by_name ON items (name);
CREATE INDEX items_by_sha256 ON items (sha256);
CREATE TABLE item_props (
    item_id INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX item_props_by_value ON item_props (key, value);
CREATE INDEX item_props_by_item ON item_props (item_id);
CREATE TABLE builds (
    name TEXT NOT NULL,
    number TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (name, number)
);
"#,
];

/// A `Store` in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Connections>,
    path: PathBuf,
}

/// One connection writes; reads go to read-only connections, which WAL
/// lets run beside each other and beside the writer, so a slow read (a
/// listing, an AQL scan) never queues the point reads behind it.
#[derive(Debug)]
struct Connections {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next: std::sync::atomic::AtomicUsize,
}

/// Read-only connections kept open: one per core on the machines we target.
const READERS: usize = 2;

impl Connections {
    /// A free reader if there is one, else the next in turn.
    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.readers.len();
        for i in 0..n {
            if let Ok(guard) = self.readers[(start + i) % n].try_lock() {
                return guard;
            }
        }
        self.readers[start % n]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut conn = Connection::open(&path).map_err(|e| map_err("open", e))?;
        // WAL lets readers run beside the writer; NORMAL sync in WAL mode is
        // durable across process crashes (a power cut may drop the last commits,
        // never corrupt the file).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;",
        )
        .map_err(|e| map_err("open", e))?;
        migrate(&mut conn)?;
        // Every statement the store runs is prepared once and kept.
        conn.set_prepared_statement_cache_capacity(128);
        let readers = (0..READERS)
            .map(|_| {
                let r = Connection::open_with_flags(
                    &path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| map_err("open", e))?;
                r.execute_batch("PRAGMA busy_timeout = 5000;")
                    .map_err(|e| map_err("open", e))?;
                r.set_prepared_statement_cache_capacity(128);
                Ok(Mutex::new(r))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(SqliteStore {
            conn: Arc::new(Connections {
                writer: Mutex::new(conn),
                readers,
                next: Default::default(),
            }),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version the file is at.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let conn = self.conn.writer.lock().unwrap_or_else(|e| e.into_inner());
        schema_version(&conn)
    }

    /// Runs `f` in one write transaction on the blocking pool; an `Err` rolls back.
    async fn tx<T, E>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run(op, rusqlite::TransactionBehavior::Immediate, f)
            .await
    }

    /// Runs a read-only `f`: a deferred transaction takes no write lock, so in
    /// WAL mode it neither waits for writers nor blocks them.
    async fn read<T, E>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run(op, rusqlite::TransactionBehavior::Deferred, f)
            .await
    }

    async fn run<T, E>(
        &self,
        op: &'static str,
        behavior: rusqlite::TransactionBehavior,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let conns = self.conn.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut conn = match behavior {
                rusqlite::TransactionBehavior::Deferred => conns.reader(),
                _ => conns.writer.lock().unwrap_or_else(|e| e.into_inner()),
            };
            let tx = conn
                .transaction_with_behavior(behavior)
                .map_err(|e| map_err(op, e))?;
            let out = f(&tx)?;
            tx.commit().map_err(|e| map_err(op, e))?;
            Ok(out)
        })
        .await;
        match joined {
            Ok(res) => res,
            Err(e) => Err(
                StoreError::new(StoreErrorKind::Unavailable, op, "blocking task failed")
                    .with_source(e)
                    .into(),
            ),
        }
    }
}

fn schema_version(conn: &Connection) -> Result<u32, StoreError> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| map_err("schema_version", e))
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current = schema_version(conn)? as usize;
    if current > MIGRATIONS.len() {
        return Err(StoreError::new(
            StoreErrorKind::Corrupt,
            "migrate",
            format!(
                "database schema is version {current}, newer than this build's {}",
                MIGRATIONS.len()
            ),
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction().map_err(|e| map_err("migrate", e))?;
        tx.execute_batch(sql).map_err(|e| map_err("migrate", e))?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)
            .map_err(|e| map_err("migrate", e))?;
        tx.commit().map_err(|e| map_err("migrate", e))?;
    }
    Ok(())
}

/// The one place rusqlite errors become store error kinds.
fn map_err(op: &'static str, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    let kind = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::ConstraintViolation => StoreErrorKind::Conflict,
            C::DatabaseCorrupt | C::NotADatabase => StoreErrorKind::Corrupt,
            _ => StoreErrorKind::Unavailable,
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => StoreErrorKind::Corrupt,
        _ => StoreErrorKind::Unavailable,
    };
    StoreError::new(kind, op, "sqlite").with_source(e)
}

fn encode<T: Serialize>(op: &'static str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::new(StoreErrorKind::Corrupt, op, "encode").with_source(e))
}

fn decode<T: DeserializeOwned>(op: &'static str, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body)
        .map_err(|e| StoreError::new(StoreErrorKind::Corrupt, op, "decode").with_source(e))
}

/// One JSON body by a single-key query, decoded.
fn query_one<T: DeserializeOwned>(
    tx: &Transaction<'_>,
    op: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<T>, StoreError> {
    // Cached: point reads are the hot path, and parsing costs as much as the read.
    let body: Option<String> = tx
        .prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row(params, |r| r.get(0)).optional())
        .map_err(|e| map_err(op, e))?;
    body.map(|b| decode(op, &b)).transpose()
}

/// All JSON bodies of a query, decoded in order.
fn query_all<T: DeserializeOwned>(
    tx: &Transaction<'_>,
    op: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = tx.prepare_cached(sql).map_err(|e| map_err(op, e))?;
    let rows = stmt
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(|e| map_err(op, e))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(decode(op, &row.map_err(|e| map_err(op, e))?)?);
    }
    Ok(out)
}

fn execute(
    tx: &Transaction<'_>,
    op: &'static str,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<usize, StoreError> {
    tx.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute(params))
        .map_err(|e| map_err(op, e))
}

/// The least string above every string that starts with `prefix`, in
/// SQLite's byte order (which is code point order for UTF-8); `None` when
/// the last character has no successor.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    let last = chars.pop()?;
    let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32)?;
    chars.push(next);
    Some(chars.into_iter().collect())
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl SystemRepo for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        // `tx` opens an IMMEDIATE transaction, which takes the write lock:
        // success proves the file is readable and writable, and changes nothing.
        self.tx("ping", |tx| {
            tx.query_row("SELECT count(*) FROM settings", [], |r| r.get::<_, i64>(0))
                .map_err(|e| map_err("ping", e))?;
            Ok::<_, StoreError>(())
        })
        .await
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_string();
        self.read("get_setting", move |tx| {
            tx.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| map_err("get_setting", e))
        })
        .await
    }

    async fn get_settings(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let keys = keys.to_vec();
        self.read("get_settings", move |tx| {
            let mut stmt = tx
                .prepare_cached("SELECT value FROM settings WHERE key = ?1")
                .map_err(|e| map_err("get_settings", e))?;
            keys.iter()
                .map(|k| {
                    stmt.query_row([k], |r| r.get(0))
                        .optional()
                        .map_err(|e| map_err("get_settings", e))
                })
                .collect()
        })
        .await
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.tx("put_setting", move |tx| {
            execute(
                tx,
                "put_setting",
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(drop)
        })
        .await
    }

    async fn list_settings(&self, prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        // A range on the primary key instead of LIKE: no escaping, and it uses the index.
        let (lo, hi) = (prefix.to_string(), format!("{prefix}\u{10FFFF}"));
        self.read("list_settings", move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT key, value FROM settings WHERE key >= ?1 AND key < ?2 ORDER BY key",
                )
                .map_err(|e| map_err("list_settings", e))?;
            let rows = stmt
                .query_map([&lo, &hi], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(|e| map_err("list_settings", e))?;
            rows.map(|r| r.map_err(|e| map_err("list_settings", e)))
                .collect()
        })
        .await
    }

    async fn delete_setting(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.tx("delete_setting", move |tx| {
            Ok(execute(
                tx,
                "delete_setting",
                "DELETE FROM settings WHERE key = ?1",
                [key],
            )? > 0)
        })
        .await
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.tx("setting_or_insert", move |tx| {
            execute(
                tx,
                "setting_or_insert",
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                [&key, &value],
            )?;
            tx.query_row("SELECT value FROM settings WHERE key = ?1", [&key], |r| {
                r.get(0)
            })
            .map_err(|e| map_err("setting_or_insert", e))
        })
        .await
    }
}

#[async_trait]
impl BundleRepo for SqliteStore {
    async fn create_version(&self, version: ReleaseBundleVersion) -> Result<(), StoreError> {
        let body = encode("create_version", &version)?;
        self.tx("create_version", move |tx| {
            let inserted = execute(
                tx,
                "create_version",
                "INSERT INTO bundle_versions (name, version, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name, version) DO NOTHING",
                params![version.name.as_str(), version.version.as_str(), body],
            )?;
            if inserted == 0 {
                return Err(StoreError::new(
                    StoreErrorKind::Conflict,
                    "create_version",
                    version.label(),
                ));
            }
            Ok(())
        })
        .await
    }

    async fn get_version(
        &self,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<Option<ReleaseBundleVersion>, StoreError> {
        let (name, version) = (name.to_string(), version.to_string());
        self.read("get_version", move |tx| {
            query_one(
                tx,
                "get_version",
                "SELECT body FROM bundle_versions WHERE name = ?1 AND version = ?2",
                [name, version],
            )
        })
        .await
    }

    async fn update_version(
        &self,
        name: &BundleName,
        version: &BundleVersion,
        update: VersionUpdate,
    ) -> Result<ReleaseBundleVersion, Error> {
        let (name, version) = (name.clone(), version.clone());
        self.tx("update_version", move |tx| {
            let current: ReleaseBundleVersion = query_one(
                tx,
                "update_version",
                "SELECT body FROM bundle_versions WHERE name = ?1 AND version = ?2",
                [name.as_str(), version.as_str()],
            )?
            .ok_or_else(|| Error::NotFound {
                what: format!("release bundle version {name}/{version}"),
            })?;
            let next = apply_version_update(&current, update)?;
            execute(
                tx,
                "update_version",
                "UPDATE bundle_versions SET body = ?3 WHERE name = ?1 AND version = ?2",
                params![
                    name.as_str(),
                    version.as_str(),
                    encode("update_version", &next)?
                ],
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
        self.read("list_versions", move |tx| {
            const OP: &str = "list_versions";
            // Two statements, not `?1 IS NULL OR name = ?1`: that form hides
            // the name from the planner, which then scans every bundle.
            let filter = if name.is_some() {
                "WHERE name = ?1"
            } else {
                "WHERE ?1 IS NULL"
            };
            let total: i64 = tx
                .query_row(
                    &format!("SELECT count(*) FROM bundle_versions {filter}"),
                    [&name],
                    |r| r.get(0),
                )
                .map_err(|e| map_err(OP, e))?;
            let items = query_all(
                tx,
                OP,
                &format!(
                    "SELECT body FROM bundle_versions {filter}
                     ORDER BY seq DESC LIMIT ?2 OFFSET ?3"
                ),
                params![name, clamp(page.limit), clamp(page.offset)],
            )?;
            Ok(Listed {
                items,
                total: total as u64,
            })
        })
        .await
    }

    async fn latest_version(
        &self,
        name: &BundleName,
    ) -> Result<Option<ReleaseBundleVersion>, StoreError> {
        let name = name.to_string();
        self.read("latest_version", move |tx| {
            query_one(
                tx,
                "latest_version",
                "SELECT body FROM bundle_versions WHERE name = ?1 ORDER BY seq DESC LIMIT 1",
                [name],
            )
        })
        .await
    }

    async fn delete_version(
        &self,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<bool, StoreError> {
        let (name, version) = (name.to_string(), version.to_string());
        self.tx("delete_version", move |tx| {
            let n = execute(
                tx,
                "delete_version",
                "DELETE FROM bundle_versions WHERE name = ?1 AND version = ?2",
                [name, version],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_bundle(&self, name: &BundleName) -> Result<u64, StoreError> {
        let name = name.to_string();
        self.tx("delete_bundle", move |tx| {
            let n = execute(
                tx,
                "delete_bundle",
                "DELETE FROM bundle_versions WHERE name = ?1",
                [name],
            )?;
            Ok(n as u64)
        })
        .await
    }
}

#[async_trait]
impl SiteRepo for SqliteStore {
    async fn put_site(&self, site: EdgeSite) -> Result<(), StoreError> {
        let body = encode("put_site", &site)?;
        self.tx("put_site", move |tx| {
            // The UNIQUE(name) constraint turns a name clash into Conflict.
            execute(
                tx,
                "put_site",
                "INSERT INTO sites (service_id, name, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (service_id) DO UPDATE SET name = excluded.name, body = excluded.body",
                params![site.service_id.as_str(), site.name, body],
            )
            .map(drop)
        })
        .await
    }

    async fn get_site(&self, id: &ServiceId) -> Result<Option<EdgeSite>, StoreError> {
        let id = id.to_string();
        self.read("get_site", move |tx| {
            query_one(
                tx,
                "get_site",
                "SELECT body FROM sites WHERE service_id = ?1",
                [id],
            )
        })
        .await
    }

    async fn list_sites(&self) -> Result<Vec<EdgeSite>, StoreError> {
        self.read("list_sites", |tx| {
            query_all(tx, "list_sites", "SELECT body FROM sites ORDER BY name", [])
        })
        .await
    }

    async fn delete_site(&self, id: &ServiceId) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.tx("delete_site", move |tx| {
            Ok(execute(
                tx,
                "delete_site",
                "DELETE FROM sites WHERE service_id = ?1",
                [id],
            )? > 0)
        })
        .await
    }
}

#[async_trait]
impl KeyRepo for SqliteStore {
    async fn put_key(&self, key: SigningKey) -> Result<(), StoreError> {
        self.tx("put_key", move |tx| {
            const OP: &str = "put_key";
            if key.default {
                let others: Vec<SigningKey> = query_all(
                    tx,
                    OP,
                    "SELECT body FROM signing_keys WHERE is_default = 1 AND id <> ?1",
                    [&key.id],
                )?;
                for mut other in others {
                    other.default = false;
                    execute(
                        tx,
                        OP,
                        "UPDATE signing_keys SET is_default = 0, body = ?2 WHERE id = ?1",
                        params![other.id, encode(OP, &other)?],
                    )?;
                }
            }
            execute(
                tx,
                OP,
                "INSERT INTO signing_keys (id, is_default, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET is_default = excluded.is_default, body = excluded.body",
                params![key.id, key.default, encode(OP, &key)?],
            )
            .map(drop)
        })
        .await
    }

    async fn get_key(&self, id: &str) -> Result<Option<SigningKey>, StoreError> {
        let id = id.to_string();
        self.read("get_key", move |tx| {
            query_one(
                tx,
                "get_key",
                "SELECT body FROM signing_keys WHERE id = ?1",
                [id],
            )
        })
        .await
    }

    async fn default_key(&self) -> Result<Option<SigningKey>, StoreError> {
        self.read("default_key", |tx| {
            query_one(
                tx,
                "default_key",
                "SELECT body FROM signing_keys WHERE is_default = 1",
                [],
            )
        })
        .await
    }

    async fn list_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        self.read("list_keys", |tx| {
            query_all(
                tx,
                "list_keys",
                "SELECT body FROM signing_keys ORDER BY id",
                [],
            )
        })
        .await
    }

    async fn delete_key(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.tx("delete_key", move |tx| {
            Ok(execute(
                tx,
                "delete_key",
                "DELETE FROM signing_keys WHERE id = ?1",
                [id],
            )? > 0)
        })
        .await
    }
}

#[async_trait]
impl TrackerRepo for SqliteStore {
    async fn create_tracker(&self, mut tracker: Tracker) -> Result<Tracker, StoreError> {
        self.tx("create_tracker", move |tx| {
            const OP: &str = "create_tracker";
            // AUTOINCREMENT never reuses an id, even after deletes.
            execute(
                tx,
                OP,
                "INSERT INTO trackers (name, version, body) VALUES (?1, ?2, '')",
                [tracker.name.as_str(), tracker.version.as_str()],
            )?;
            tracker.id = tx.last_insert_rowid() as TrackerId;
            execute(
                tx,
                OP,
                "UPDATE trackers SET body = ?2 WHERE id = ?1",
                params![clamp(tracker.id), encode(OP, &tracker)?],
            )?;
            Ok(tracker)
        })
        .await
    }

    async fn get_tracker(&self, id: TrackerId) -> Result<Option<Tracker>, StoreError> {
        self.read("get_tracker", move |tx| {
            query_one(
                tx,
                "get_tracker",
                "SELECT body FROM trackers WHERE id = ?1",
                [clamp(id)],
            )
        })
        .await
    }

    async fn update_tracker(&self, id: TrackerId, update: TrackerUpdate) -> Result<Tracker, Error> {
        self.tx("update_tracker", move |tx| {
            const OP: &str = "update_tracker";
            let current: Tracker = query_one(
                tx,
                OP,
                "SELECT body FROM trackers WHERE id = ?1",
                [clamp(id)],
            )?
            .ok_or_else(|| Error::NotFound {
                what: format!("distribution tracker {id}"),
            })?;
            let next = apply_tracker_update(&current, update)?;
            execute(
                tx,
                OP,
                "UPDATE trackers SET body = ?2 WHERE id = ?1",
                params![clamp(id), encode(OP, &next)?],
            )?;
            Ok(next)
        })
        .await
    }

    async fn list_trackers(
        &self,
        name: Option<&BundleName>,
        version: Option<&BundleVersion>,
    ) -> Result<Vec<Tracker>, StoreError> {
        let name = name.map(|n| n.to_string());
        let version = version.map(|v| v.to_string());
        self.read("list_trackers", move |tx| {
            // Spelled out per case so the planner sees the index (see find_items).
            let filter = match (&name, &version) {
                (Some(_), Some(_)) => "name = ?1 AND version = ?2",
                (Some(_), None) => "name = ?1 AND ?2 IS NULL",
                (None, Some(_)) => "?1 IS NULL AND version = ?2",
                (None, None) => "?1 IS NULL AND ?2 IS NULL",
            };
            query_all(
                tx,
                "list_trackers",
                &format!("SELECT body FROM trackers WHERE {filter} ORDER BY id"),
                params![name, version],
            )
        })
        .await
    }

    async fn delete_trackers(
        &self,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<u64, StoreError> {
        let (name, version) = (name.to_string(), version.to_string());
        self.tx("delete_trackers", move |tx| {
            let n = execute(
                tx,
                "delete_trackers",
                "DELETE FROM trackers WHERE name = ?1 AND version = ?2",
                [name, version],
            )?;
            Ok(n as u64)
        })
        .await
    }
}

#[async_trait]
impl UserRepo for SqliteStore {
    async fn create_user(&self, user: User) -> Result<(), StoreError> {
        let body = encode("create_user", &user)?;
        self.tx("create_user", move |tx| {
            let n = execute(
                tx,
                "create_user",
                "INSERT INTO users (name, body) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                [&user.name, &body],
            )?;
            if n == 0 {
                return Err(StoreError::new(
                    StoreErrorKind::Conflict,
                    "create_user",
                    format!("user '{}'", user.name),
                ));
            }
            Ok(())
        })
        .await
    }

    async fn put_user(&self, user: User) -> Result<(), StoreError> {
        let body = encode("put_user", &user)?;
        self.tx("put_user", move |tx| {
            execute(
                tx,
                "put_user",
                "INSERT INTO users (name, body) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET body = excluded.body",
                [&user.name, &body],
            )
            .map(drop)
        })
        .await
    }

    async fn get_user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let name = name.to_string();
        self.read("get_user", move |tx| {
            query_one(
                tx,
                "get_user",
                "SELECT body FROM users WHERE name = ?1",
                [name],
            )
        })
        .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.read("list_users", |tx| {
            query_all(tx, "list_users", "SELECT body FROM users ORDER BY name", [])
        })
        .await
    }

    async fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.tx("delete_user", move |tx| {
            Ok(execute(
                tx,
                "delete_user",
                "DELETE FROM users WHERE name = ?1",
                [name],
            )? > 0)
        })
        .await
    }

    async fn put_token(&self, token: TokenRecord) -> Result<(), StoreError> {
        let body = encode("put_token", &token)?;
        self.tx("put_token", move |tx| {
            execute(
                tx,
                "put_token",
                "INSERT INTO tokens (token_id, issued_at, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (token_id) DO UPDATE SET issued_at = excluded.issued_at, body = excluded.body",
                params![token.token_id, clamp(token.issued_at), body],
            )
            .map(drop)
        })
        .await
    }

    async fn get_token(&self, token_id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let id = token_id.to_string();
        self.read("get_token", move |tx| {
            query_one(
                tx,
                "get_token",
                "SELECT body FROM tokens WHERE token_id = ?1",
                [id],
            )
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.read("list_tokens", |tx| {
            query_all(
                tx,
                "list_tokens",
                "SELECT body FROM tokens ORDER BY issued_at, token_id",
                [],
            )
        })
        .await
    }

    async fn delete_token(&self, token_id: &str) -> Result<bool, StoreError> {
        let id = token_id.to_string();
        self.tx("delete_token", move |tx| {
            Ok(execute(
                tx,
                "delete_token",
                "DELETE FROM tokens WHERE token_id = ?1",
                [id],
            )? > 0)
        })
        .await
    }
}

/// Upper bound of the paths strictly below `path`: `a/` ≤ p < `a0` (`0` follows `/`).
fn subtree_bounds(path: &ItemPath) -> (String, String) {
    if path.is_root() {
        return (String::new(), "\u{10FFFF}".into());
    }
    (format!("{path}/"), format!("{path}0"))
}

fn load_item(
    tx: &Transaction<'_>,
    op: &'static str,
    repo: &str,
    path: &str,
) -> Result<Option<Item>, StoreError> {
    query_one(
        tx,
        op,
        "SELECT body FROM items WHERE repo = ?1 AND path = ?2",
        [repo, path],
    )
}

/// Writes an item row and its property index rows.
fn write_item(tx: &Transaction<'_>, op: &'static str, item: &Item) -> Result<(), StoreError> {
    execute(
        tx,
        op,
        "INSERT INTO items (repo, path, folder, name, sha256, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (repo, path) DO UPDATE SET sha256 = excluded.sha256, body = excluded.body",
        params![
            item.repo.as_str(),
            item.path.as_str(),
            item.path.folder(),
            item.path.name(),
            item.sha256().map(|d| d.to_hex()),
            encode(op, item)?
        ],
    )?;
    let id: i64 = tx
        .query_row(
            "SELECT id FROM items WHERE repo = ?1 AND path = ?2",
            [item.repo.as_str(), item.path.as_str()],
            |r| r.get(0),
        )
        .map_err(|e| map_err(op, e))?;
    execute(tx, op, "DELETE FROM item_props WHERE item_id = ?1", [id])?;
    let mut stmt = tx
        .prepare_cached("INSERT INTO item_props (item_id, key, value) VALUES (?1, ?2, ?3)")
        .map_err(|e| map_err(op, e))?;
    for (k, values) in &item.props {
        for v in values {
            stmt.execute(params![id, k, v])
                .map_err(|e| map_err(op, e))?;
        }
    }
    Ok(())
}

fn subtree(
    tx: &Transaction<'_>,
    op: &'static str,
    repo: &RepoKey,
    path: &ItemPath,
) -> Result<Vec<Item>, StoreError> {
    let (lo, hi) = subtree_bounds(path);
    query_all(
        tx,
        op,
        "SELECT body FROM items WHERE repo = ?1 AND (path = ?2 OR (path >= ?3 AND path < ?4)) ORDER BY path",
        params![repo.as_str(), path.as_str(), lo, hi],
    )
}

fn put_item(tx: &Transaction<'_>, item: &Item) -> Result<Option<Item>, StoreError> {
    const OP: &str = "put_item";
    let known: Option<String> = tx
        .query_row(
            "SELECT key FROM repositories WHERE key = ?1",
            [item.repo.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| map_err(OP, e))?;
    if known.is_none() {
        return Err(StoreError::new(
            StoreErrorKind::NotFound,
            OP,
            format!("repository '{}'", item.repo),
        ));
    }
    let plan = plan_put(item, |p| load_item(tx, OP, item.repo.as_str(), p.as_str()))?;
    for folder in &plan.new_folders {
        write_item(tx, OP, folder)?;
    }
    if item.kind == ItemKind::Folder && plan.existing.is_some() {
        return Ok(None);
    }
    write_item(tx, OP, item)?;
    Ok(plan.existing)
}

#[async_trait]
impl ItemRepo for SqliteStore {
    async fn create_repository(&self, repo: Repository) -> Result<(), StoreError> {
        let body = encode("create_repository", &repo)?;
        self.tx("create_repository", move |tx| {
            let n = execute(
                tx,
                "create_repository",
                "INSERT INTO repositories (key, body) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![repo.key.as_str(), body],
            )?;
            if n == 0 {
                return Err(StoreError::new(
                    StoreErrorKind::Conflict,
                    "create_repository",
                    format!("repository '{}'", repo.key),
                ));
            }
            Ok(())
        })
        .await
    }

    async fn get_repository(&self, key: &RepoKey) -> Result<Option<Repository>, StoreError> {
        let key = key.to_string();
        self.read("get_repository", move |tx| {
            query_one(
                tx,
                "get_repository",
                "SELECT body FROM repositories WHERE key = ?1",
                [key],
            )
        })
        .await
    }

    async fn list_repositories(&self) -> Result<Vec<Repository>, StoreError> {
        self.read("list_repositories", |tx| {
            query_all(
                tx,
                "list_repositories",
                "SELECT body FROM repositories ORDER BY key",
                [],
            )
        })
        .await
    }

    async fn delete_repository(&self, key: &RepoKey) -> Result<Option<Vec<Item>>, StoreError> {
        let key = key.clone();
        self.tx("delete_repository", move |tx| {
            const OP: &str = "delete_repository";
            let items = subtree(tx, OP, &key, &ItemPath::root())?;
            execute(tx, OP, "DELETE FROM items WHERE repo = ?1", [key.as_str()])?;
            let n = execute(
                tx,
                OP,
                "DELETE FROM repositories WHERE key = ?1",
                [key.as_str()],
            )?;
            Ok((n > 0).then_some(items))
        })
        .await
    }

    async fn put_file(&self, file: Item) -> Result<Option<Item>, StoreError> {
        self.tx("put_file", move |tx| put_item(tx, &file)).await
    }

    async fn create_folder(&self, folder: Item) -> Result<(), StoreError> {
        self.tx("create_folder", move |tx| put_item(tx, &folder).map(drop))
            .await
    }

    async fn commit_files(&self, files: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        self.tx("commit_files", move |tx| {
            let mut replaced = Vec::new();
            for f in &files {
                replaced.extend(put_item(tx, f)?);
            }
            Ok(replaced)
        })
        .await
    }

    async fn remove_files(
        &self,
        files: Vec<(RepoKey, ItemPath, Sha256)>,
    ) -> Result<Vec<Item>, StoreError> {
        self.tx("remove_files", move |tx| {
            const OP: &str = "remove_files";
            let mut removed = Vec::new();
            for (repo, path, sha) in &files {
                let Some(item) = load_item(tx, OP, repo.as_str(), path.as_str())? else {
                    continue;
                };
                if item.sha256() != Some(*sha) {
                    continue;
                }
                execute(
                    tx,
                    OP,
                    "DELETE FROM items WHERE repo = ?1 AND path = ?2",
                    params![repo.as_str(), path.as_str()],
                )?;
                removed.push(item);
            }
            Ok(removed)
        })
        .await
    }

    async fn get_item(&self, repo: &RepoKey, path: &ItemPath) -> Result<Option<Item>, StoreError> {
        let (repo, path) = (repo.to_string(), path.to_string());
        self.read("get_item", move |tx| {
            load_item(tx, "get_item", &repo, &path)
        })
        .await
    }

    async fn list_children(
        &self,
        repo: &RepoKey,
        folder: &ItemPath,
    ) -> Result<Vec<Item>, StoreError> {
        let repo = repo.to_string();
        let folder = if folder.is_root() {
            ".".to_string()
        } else {
            folder.to_string()
        };
        self.read("list_children", move |tx| {
            query_all(
                tx,
                "list_children",
                // `+path`: sort the folder's rows, rather than let the
                // ordering pick the (repo, path) key and read the whole repository.
                "SELECT body FROM items WHERE repo = ?1 AND folder = ?2 ORDER BY +path",
                [repo, folder],
            )
        })
        .await
    }

    async fn delete_item(&self, repo: &RepoKey, path: &ItemPath) -> Result<Vec<Item>, StoreError> {
        let (repo, path) = (repo.clone(), path.clone());
        self.tx("delete_item", move |tx| {
            const OP: &str = "delete_item";
            let items = subtree(tx, OP, &repo, &path)?;
            let (lo, hi) = subtree_bounds(&path);
            execute(
                tx,
                OP,
                "DELETE FROM items WHERE repo = ?1 AND (path = ?2 OR (path >= ?3 AND path < ?4))",
                params![repo.as_str(), path.as_str(), lo, hi],
            )?;
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
        self.tx("update_props", move |tx| {
            const OP: &str = "update_props";
            if load_item(tx, OP, repo.as_str(), path.as_str())?.is_none() {
                return Err(Error::NotFound {
                    what: format!("item {repo}/{path}"),
                });
            }
            let targets = if recursive {
                subtree(tx, OP, &repo, &path)?
            } else {
                load_item(tx, OP, repo.as_str(), path.as_str())?
                    .into_iter()
                    .collect()
            };
            for mut item in targets.iter().cloned() {
                update(&mut item.props);
                write_item(tx, OP, &item)?;
            }
            Ok(targets.len() as u64)
        })
        .await
    }

    async fn find_items(&self, hint: &ItemHint) -> Result<Vec<Item>, StoreError> {
        let hint = hint.clone();
        self.read("find_items", move |tx| {
            const OP: &str = "find_items";
            // Only the constraints present go into the SQL: `?1 IS NULL OR
            // col = ?1` looks the same but makes SQLite scan the whole table,
            // since the plan is chosen before the parameters are known.
            let mut sql = String::from("SELECT i.body FROM items i WHERE 1");
            let mut args: Vec<String> = Vec::new();
            // The planner has no statistics, and left alone it serves the
            // ORDER BY from the (repo, path) key, reading a whole repository
            // to return a few rows. With a selective constraint, a unary `+`
            // keeps the ordering (and the repository, unless a folder pairs
            // with it in an index) from choosing the index; the few
            // candidates are sorted instead.
            let selective = hint.name.is_some()
                || hint.name_prefix.is_some()
                || hint.sha256.is_some()
                || hint.prop.is_some();
            let repo_column = if selective && hint.folder.is_none() {
                "+i.repo"
            } else {
                "i.repo"
            };
            let equal = [
                (repo_column, hint.repo.as_ref().map(|r| r.to_string())),
                ("i.folder", hint.folder.clone()),
                ("i.name", hint.name.clone()),
                ("i.sha256", hint.sha256.map(|d| d.to_hex())),
            ];
            for (column, value) in equal {
                if let Some(v) = value {
                    args.push(v);
                    sql += &format!(" AND {column} = ?{}", args.len());
                }
            }
            // A prefix as a range, which the name index serves: every name
            // starting with `p` sorts in [p, p with its last character + 1).
            if let Some(p) = &hint.name_prefix
                && let Some(end) = prefix_end(p)
            {
                args.extend([p.clone(), end]);
                sql += &format!(
                    " AND i.name >= ?{} AND i.name < ?{}",
                    args.len() - 1,
                    args.len()
                );
            }
            if let Some((key, value)) = &hint.prop {
                args.extend([key.clone(), value.clone()]);
                sql += &format!(
                    " AND i.id IN (SELECT item_id FROM item_props WHERE key = ?{} AND value = ?{})",
                    args.len() - 1,
                    args.len()
                );
            }
            sql += if selective || hint.folder.is_some() {
                " ORDER BY +i.repo, +i.path"
            } else {
                " ORDER BY i.repo, i.path"
            };
            query_all(tx, OP, &sql, rusqlite::params_from_iter(args))
        })
        .await
    }

    async fn count_content_refs(&self, sha256: &Sha256) -> Result<u64, StoreError> {
        let hex = sha256.to_hex();
        self.read("count_content_refs", move |tx| {
            tx.query_row("SELECT count(*) FROM items WHERE sha256 = ?1", [hex], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(|e| map_err("count_content_refs", e))
        })
        .await
    }

    async fn put_build(&self, build: Build) -> Result<(), StoreError> {
        let body = encode("put_build", &build)?;
        self.tx("put_build", move |tx| {
            execute(
                tx,
                "put_build",
                "INSERT INTO builds (name, number, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name, number) DO UPDATE SET body = excluded.body",
                params![build.name, build.number, body],
            )
            .map(drop)
        })
        .await
    }

    async fn get_build(&self, name: &str, number: &str) -> Result<Option<Build>, StoreError> {
        let (name, number) = (name.to_string(), number.to_string());
        self.read("get_build", move |tx| {
            query_one(
                tx,
                "get_build",
                "SELECT body FROM builds WHERE name = ?1 AND number = ?2",
                [name, number],
            )
        })
        .await
    }

    async fn list_builds(&self, name: Option<&str>) -> Result<Vec<Build>, StoreError> {
        let name = name.map(str::to_string);
        let mut builds: Vec<Build> = self
            .read("list_builds", move |tx| match name {
                Some(n) => query_all(
                    tx,
                    "list_builds",
                    "SELECT body FROM builds WHERE name = ?1",
                    [n],
                ),
                None => query_all(tx, "list_builds", "SELECT body FROM builds", []),
            })
            .await?;
        waybill_core::artifact::sort_builds(&mut builds);
        Ok(builds)
    }
}

#[cfg(test)]
mod prefix_tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends_bound_exactly_the_names_that_start_with_the_prefix() {
        assert_eq!(prefix_end("lib0").as_deref(), Some("lib1"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("x\u{10FFFF}"), None);
        assert_eq!(prefix_end(""), None);
        let end = prefix_end("lib0").unwrap();
        for name in ["lib0", "lib0.jar", "lib0\u{10FFFF}"] {
            assert!(name >= "lib0" && name < end.as_str(), "{name}");
        }
        for name in ["lib", "lib1", "lia"] {
            assert!(!(name >= "lib0" && name < end.as_str()), "{name}");
        }
    }
}
