//! The shared behaviour suite and model tests, run against sled.

use std::path::Path;
use std::sync::Arc;

use waybill_core::store::Store;
use waybill_store_sled::SledStore;

fn open(dir: &Path) -> Arc<dyn Store> {
    Arc::new(SledStore::open(dir.join("sled")).expect("open sled"))
}

waybill_store_testkit::store_suite!(open);

/// Postmortem: the model test re-opened a store while sled's flusher still
/// held the directory lock, failing with "could not acquire lock". Re-opening
/// right after a drop must succeed.
#[test]
fn regression_01_reopen_right_after_drop() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..20 {
        let store = open(dir.path());
        drop(store);
    }
}

#[test]
fn a_directory_held_by_a_live_handle_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _held = SledStore::open(dir.path().join("sled")).unwrap();
    let err = SledStore::open(dir.path().join("sled")).unwrap_err();
    assert!(
        err.to_string().contains("locked by another process"),
        "{err}"
    );
}
