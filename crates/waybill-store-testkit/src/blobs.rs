//! The `BlobStore` behaviour suite.

use waybill_core::StoreErrorKind;
use waybill_core::digest::{Ingest, Sha256};
use waybill_core::store::Expected;

use crate::{BlobOpener, tempdir};

fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// Chunks written are readable whole and by range once committed.
pub async fn blob_write_commit_read(open: &BlobOpener) {
    let dir = tempdir();
    let s = open(dir.path());
    let data = content(300_000);
    let mut w = s.writer().await.unwrap();
    for chunk in data.chunks(65_536) {
        w.write(chunk).await.unwrap();
    }
    let info = w.commit(Expected::sha256(Sha256::of(&data))).await.unwrap();
    assert_eq!(info.digest, Sha256::of(&data));
    assert_eq!(info.size, data.len() as u64);
    assert_eq!(s.stat(&info.digest).await.unwrap(), Some(data.len() as u64));
    assert_eq!(s.read_range(&info.digest, 0, u64::MAX).await.unwrap(), data);
    assert_eq!(
        s.read_range(&info.digest, 1000, 10).await.unwrap(),
        &data[1000..1010]
    );
    assert_eq!(
        s.read_range(&info.digest, 299_990, 100).await.unwrap(),
        &data[299_990..]
    );
    assert!(
        s.read_range(&info.digest, 400_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A digest mismatch is `Corrupt` and the blob is never visible.
pub async fn blob_digest_mismatch_is_never_visible(open: &BlobOpener) {
    let dir = tempdir();
    let s = open(dir.path());
    let data = content(1000);
    let mut w = s.writer().await.unwrap();
    w.write(&data).await.unwrap();
    let claimed = Sha256::of(b"something else");
    let err = w.commit(Expected::sha256(claimed)).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{err}");
    assert_eq!(s.stat(&claimed).await.unwrap(), None);
    assert_eq!(s.stat(&Sha256::of(&data)).await.unwrap(), None);
}

/// A writer with a vouched ingest reports the vouched SHA-1 and MD5, and
/// still refuses content whose SHA-256 differs.
pub async fn blob_vouched_writer_still_verifies_sha256(open: &BlobOpener) {
    let dir = tempdir();
    let s = open(dir.path());
    let data = content(3 << 20);
    let real = waybill_core::digest::Ingest::of(&data);
    let mut w = s
        .writer_with(Ingest::vouched(real.sha1, real.md5))
        .await
        .unwrap();
    w.write(&data).await.unwrap();
    let info = w.commit(Expected::sha256(real.sha256)).await.unwrap();
    assert_eq!(info.checksums, real);
    assert_eq!(s.stat(&real.sha256).await.unwrap(), Some(data.len() as u64));

    let other = content(1000);
    let mut w = s
        .writer_with(Ingest::vouched(real.sha1, real.md5))
        .await
        .unwrap();
    w.write(&other).await.unwrap();
    let err = w.commit(Expected::sha256(real.sha256)).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{err}");
    assert_eq!(s.stat(&Sha256::of(&other)).await.unwrap(), None);
}

/// A writer dropped before commit leaves nothing.
pub async fn blob_dropped_writer_leaves_nothing(open: &BlobOpener) {
    let dir = tempdir();
    let s = open(dir.path());
    let data = content(5000);
    let mut w = s.writer().await.unwrap();
    w.write(&data).await.unwrap();
    drop(w);
    assert_eq!(s.stat(&Sha256::of(&data)).await.unwrap(), None);
}

/// Committing content that is already stored succeeds and keeps it readable.
pub async fn blob_same_content_twice_keeps_one(open: &BlobOpener) {
    let dir = tempdir();
    let s = open(dir.path());
    let data = content(4096);
    for _ in 0..2 {
        let mut w = s.writer().await.unwrap();
        w.write(&data).await.unwrap();
        let info = w.commit(Expected::default()).await.unwrap();
        assert_eq!(info.digest, Sha256::of(&data));
    }
    assert_eq!(
        s.read_range(&Sha256::of(&data), 0, u64::MAX).await.unwrap(),
        data
    );
    assert!(s.delete(&Sha256::of(&data)).await.unwrap());
    assert_eq!(
        s.stat(&Sha256::of(&data)).await.unwrap(),
        None,
        "one copy, now gone"
    );
}

/// Delete reports whether anything was there.
pub async fn blob_delete(open: &BlobOpener) {
    let dir = tempdir();
    let s = open(dir.path());
    let mut w = s.writer().await.unwrap();
    w.write(b"bye").await.unwrap();
    let info = w.commit(Expected::default()).await.unwrap();
    assert!(s.delete(&info.digest).await.unwrap());
    assert!(!s.delete(&info.digest).await.unwrap());
}

/// Reading an unknown blob is `NotFound`; an empty blob is fine.
pub async fn blob_read_unknown_is_not_found(open: &BlobOpener) {
    let dir = tempdir();
    let s = open(dir.path());
    let err = s.read_range(&Sha256::of(b"nope"), 0, 1).await.unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
    let w = s.writer().await.unwrap();
    let info = w.commit(Expected::sha256(Sha256::of(b""))).await.unwrap();
    assert_eq!(s.stat(&info.digest).await.unwrap(), Some(0));
}

/// Every claimed checksum (SHA-1 and MD5 too) must match; the right ones pass.
pub async fn blob_any_claimed_checksum_must_match(open: &BlobOpener) {
    use waybill_core::digest::{Ingest, Md5, Sha1};
    let dir = tempdir();
    let s = open(dir.path());
    let data = content(777);
    let real = Ingest::of(&data);
    let wrong_sha1 = Expected {
        sha1: Some(Sha1::from_bytes([1; 20])),
        ..Expected::sha256(real.sha256)
    };
    let wrong_md5 = Expected {
        md5: Some(Md5::from_bytes([2; 16])),
        ..Expected::default()
    };
    for (label, claim) in [("sha1", wrong_sha1), ("md5", wrong_md5)] {
        let mut w = s.writer().await.unwrap();
        w.write(&data).await.unwrap();
        let err = w.commit(claim).await.unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Corrupt);
        assert!(
            err.to_string().contains(&format!("{label} mismatch")),
            "{err}"
        );
        assert_eq!(
            s.stat(&real.sha256).await.unwrap(),
            None,
            "{label}: nothing visible"
        );
    }
    let mut w = s.writer().await.unwrap();
    w.write(&data).await.unwrap();
    let all = Expected {
        sha256: Some(real.sha256),
        sha1: Some(real.sha1),
        md5: Some(real.md5),
    };
    let info = w.commit(all).await.unwrap();
    assert_eq!(info.checksums, real);
}

/// `list` shows every committed blob with its size, in digest order, and
/// nothing being written or deleted.
pub async fn blob_list_shows_committed_blobs(open: &BlobOpener) {
    let dir = tempdir();
    let s = open(dir.path());
    assert!(s.list().await.unwrap().is_empty());
    let mut digests = Vec::new();
    for n in [10, 3_000_000, 7] {
        let data = content(n);
        let mut w = s.writer().await.unwrap();
        w.write(&data).await.unwrap();
        digests.push((
            w.commit(Expected::default()).await.unwrap().digest,
            n as u64,
        ));
    }
    let mut pending = s.writer().await.unwrap();
    pending.write(b"not committed").await.unwrap();
    assert!(s.delete(&digests[2].0).await.unwrap());
    let mut want: Vec<(Sha256, u64)> = digests[..2].to_vec();
    want.sort_by_key(|(d, _)| d.to_hex());
    let got: Vec<(Sha256, u64)> = s
        .list()
        .await
        .unwrap()
        .iter()
        .map(|e| (e.digest, e.size))
        .collect();
    assert_eq!(got, want);
    drop(pending);
}
