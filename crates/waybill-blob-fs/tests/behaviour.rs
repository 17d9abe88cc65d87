//! The blob-store suite against the filesystem store (and the in-memory one
//! it must behave like), plus filesystem-only checks.

use std::path::Path;
use std::sync::Arc;

use waybill_blob_fs::FsBlobStore;
use waybill_core::digest::Sha256;
use waybill_core::store::{BlobStore, BlobWriter, Expected};

fn open(dir: &Path) -> Arc<dyn BlobStore> {
    Arc::new(FsBlobStore::open(dir.join("blobs")).expect("open blob store"))
}

waybill_store_testkit::blob_suite!(open);

mod memory {
    use super::*;
    fn open(_: &Path) -> Arc<dyn BlobStore> {
        Arc::new(waybill_core::memory::MemoryBlobStore::new())
    }
    waybill_store_testkit::blob_suite!(open);
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}

#[test]
fn failed_and_abandoned_writes_leave_no_files() {
    waybill_store_testkit::run(async {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let mut w = store.writer().await.unwrap();
        w.write(b"abc").await.unwrap();
        assert!(
            w.commit(Expected::sha256(Sha256::of(b"abd")))
                .await
                .is_err()
        );
        let mut w: Box<dyn BlobWriter> = store.writer().await.unwrap();
        w.write(b"half").await.unwrap();
        drop(w);
        assert_eq!(files_under(dir.path()), Vec::<String>::new());
    });
}

#[test]
fn stale_temp_files_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(FsBlobStore::open(dir.path()).unwrap());
    // What a crash mid-write leaves behind.
    std::fs::write(dir.path().join("tmp").join("123-0.part"), b"partial").unwrap();
    drop(FsBlobStore::open(dir.path()).unwrap());
    assert_eq!(files_under(dir.path()), Vec::<String>::new());
}

#[test]
fn blobs_are_laid_out_by_digest() {
    waybill_store_testkit::run(async {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        let mut w = store.writer().await.unwrap();
        w.write(b"waybill").await.unwrap();
        let info = w.commit(Expected::default()).await.unwrap();
        let path = store.blob_path(&info.digest);
        assert_eq!(std::fs::read(&path).unwrap(), b"waybill");
        let hex = info.digest.to_hex();
        assert!(
            path.ends_with(format!("sha256/{}/{hex}", &hex[..2])),
            "{}",
            path.display()
        );
    });
}
