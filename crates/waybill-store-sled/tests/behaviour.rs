//! The shared behaviour suite and model tests, run against sled.

use std::path::Path;
use std::sync::Arc;

use waybill_core::store::Store;
use waybill_store_sled::SledStore;

fn open(dir: &Path) -> Arc<dyn Store> {
    Arc::new(SledStore::open(dir.join("sled")).expect("open sled"))
}

waybill_store_testkit::store_suite!(open);
