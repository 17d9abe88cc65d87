//! The shared behaviour suite and model tests, run against SQLite, plus
//! SQLite-only checks (WAL mode, schema versions).

use std::path::Path;
use std::sync::Arc;

use waybill_core::StoreErrorKind;
use waybill_core::store::Store;
use waybill_store_sqlite::SqliteStore;

fn open(dir: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(dir.join("waybill.db")).expect("open sqlite"))
}

waybill_store_testkit::store_suite!(open);

#[test]
fn opens_in_wal_mode_at_the_latest_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let store = SqliteStore::open(&path).unwrap();
    let version = store.schema_version().unwrap();
    assert!(version >= 1);
    drop(store);
    let conn = rusqlite_free_check(&path);
    assert_eq!(conn, "wal");
    // Re-opening does not re-run migrations.
    assert_eq!(
        SqliteStore::open(&path).unwrap().schema_version().unwrap(),
        version
    );
}

/// Reads the journal mode straight from the file header: WAL files have
/// read/write version bytes 2 at offsets 18 and 19.
fn rusqlite_free_check(path: &Path) -> &'static str {
    let header = std::fs::read(path).unwrap();
    if header.len() > 19 && header[18] == 2 && header[19] == 2 {
        "wal"
    } else {
        "rollback"
    }
}

#[test]
fn a_schema_newer_than_the_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let store = SqliteStore::open(&path).unwrap();
    let future = store.schema_version().unwrap() + 1;
    drop(store);
    set_user_version(&path, future);
    let err = SqliteStore::open(&path).unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt);
    assert!(err.to_string().contains("newer than this build"), "{err}");
}

/// Writes `PRAGMA user_version` through the file header (offset 60, big-endian),
/// so the test needs no SQL access of its own.
fn set_user_version(path: &Path, v: u32) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[60..64].copy_from_slice(&v.to_be_bytes());
    std::fs::write(path, bytes).unwrap();
}
