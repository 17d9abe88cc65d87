//! Content-addressed blobs on the local filesystem.
//!
//! A blob lives at `<root>/sha256/<first two hex digits>/<digest>`. Writing
//! goes to a fresh file under `<root>/tmp/`, hashed on the way; `commit`
//! checks the digest, fsyncs the file, renames it into place and fsyncs the
//! directory. A rename is atomic, so a reader sees the whole blob or nothing,
//! and a blob that failed its digest is never visible. Leftover temp files
//! (from a crash mid-write) are removed on open.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use waybill_core::digest::{Ingest, Sha256};
use waybill_core::store::{BlobEntry, BlobInfo, BlobStore, BlobWriter, Expected};
use waybill_core::{StoreError, StoreErrorKind, async_trait};

/// A `BlobStore` in a directory.
#[derive(Debug)]
pub struct FsBlobStore {
    root: PathBuf,
    next_tmp: AtomicU64,
}

fn io_err(op: &'static str, e: std::io::Error) -> StoreError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => StoreErrorKind::NotFound,
        _ => StoreErrorKind::Unavailable,
    };
    StoreError::new(kind, op, "blob file").with_source(e)
}

async fn blocking<T: Send + 'static>(
    op: &'static str,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(res) => res,
        Err(e) => Err(
            StoreError::new(StoreErrorKind::Unavailable, op, "blocking task failed").with_source(e),
        ),
    }
}

impl FsBlobStore {
    /// Opens the store in `root`, creating it, and clears stale temp files.
    pub fn open(root: impl AsRef<Path>) -> Result<FsBlobStore, StoreError> {
        let root = root.as_ref().to_path_buf();
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| io_err("open", e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| io_err("open", e))?;
        fs::create_dir_all(root.join("sha256")).map_err(|e| io_err("open", e))?;
        Ok(FsBlobStore {
            root,
            next_tmp: AtomicU64::new(0),
        })
    }

    /// Where a committed blob lives.
    pub fn blob_path(&self, digest: &Sha256) -> PathBuf {
        let hex = digest.to_hex();
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }
}

/// Bytes a writer holds before it hashes and writes them out. A blob up to
/// this size costs one blocking call in all (at commit) rather than one for
/// the file, one per chunk and one to commit, each a thread hand-off; it also
/// keeps `Ingest::finish` (which may join the MD5 thread) off the runtime.
const SPILL_AT: usize = 2 << 20;

struct FsBlobWriter {
    /// Created on the first spill (or at commit).
    file: Option<File>,
    tmp_path: PathBuf,
    /// `None` once a blocking step failed, or while one runs.
    ingest: Option<Ingest>,
    size: u64,
    final_dir: PathBuf,
    /// Bytes not yet hashed and written. The buffer is reused: a fresh
    /// megabyte per write costs page faults and unmaps (TLB shootdowns
    /// across the runtime's threads).
    pending: Vec<u8>,
}

impl Drop for FsBlobWriter {
    fn drop(&mut self) {
        // Uncommitted (or failed) writes leave nothing behind; after a
        // successful commit the temp path no longer exists.
        let _ = fs::remove_file(&self.tmp_path);
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn writer_with(&self, ingest: Ingest) -> Result<Box<dyn BlobWriter>, StoreError> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp_path = self
            .root
            .join("tmp")
            .join(format!("{}-{n}.part", std::process::id()));
        Ok(Box::new(FsBlobWriter {
            file: None,
            tmp_path,
            ingest: Some(ingest),
            size: 0,
            final_dir: self.root.join("sha256"),
            pending: Vec::new(),
        }))
    }

    async fn stat(&self, digest: &Sha256) -> Result<Option<u64>, StoreError> {
        let path = self.blob_path(digest);
        blocking("stat", move || match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("stat", e)),
        })
        .await
    }

    async fn read_range(
        &self,
        digest: &Sha256,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        blocking("read_range", move || {
            let mut file = File::open(&path).map_err(|e| io_err("read_range", e))?;
            let size = file.metadata().map_err(|e| io_err("read_range", e))?.len();
            let start = offset.min(size);
            let n = len.min(size - start);
            file.seek(SeekFrom::Start(start))
                .map_err(|e| io_err("read_range", e))?;
            let mut buf = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
            file.take(n)
                .read_to_end(&mut buf)
                .map_err(|e| io_err("read_range", e))?;
            Ok(buf)
        })
        .await
    }

    async fn delete(&self, digest: &Sha256) -> Result<bool, StoreError> {
        let path = self.blob_path(digest);
        blocking("delete", move || match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("delete", e)),
        })
        .await
    }

    async fn list(&self) -> Result<Vec<BlobEntry>, StoreError> {
        let root = self.root.join("sha256");
        blocking("list", move || {
            let mut out = Vec::new();
            for dir in fs::read_dir(&root).map_err(|e| io_err("list", e))? {
                let dir = dir.map_err(|e| io_err("list", e))?;
                if !dir.file_type().map_err(|e| io_err("list", e))?.is_dir() {
                    continue;
                }
                for f in fs::read_dir(dir.path()).map_err(|e| io_err("list", e))? {
                    let f = f.map_err(|e| io_err("list", e))?;
                    // Anything not named by a digest is not a blob of ours.
                    let Some(digest) = f
                        .file_name()
                        .to_str()
                        .and_then(|n| Sha256::parse_hex(n).ok())
                    else {
                        continue;
                    };
                    let meta = match f.metadata() {
                        Ok(m) => m,
                        // Deleted meanwhile.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io_err("list", e)),
                    };
                    let modified = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_millis() as u64);
                    out.push(BlobEntry {
                        digest,
                        size: meta.len(),
                        modified,
                    });
                }
            }
            out.sort_by_key(|e| e.digest.to_hex());
            Ok(out)
        })
        .await
    }
}

/// Hashes and appends `buf` to the temp file, creating it first if needed.
fn append(
    file: Option<File>,
    path: &Path,
    ingest: &mut Ingest,
    buf: &[u8],
) -> Result<File, StoreError> {
    let mut file = match file {
        Some(f) => f,
        None => File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| io_err("write", e))?,
    };
    // Hashing here keeps a second pass over the file off the commit path.
    ingest.update(buf);
    file.write_all(buf).map_err(|e| io_err("write", e))?;
    Ok(file)
}

fn earlier_failure(op: &'static str) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, op, "an earlier write failed")
}

#[async_trait]
impl BlobWriter for FsBlobWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        if self.ingest.is_none() {
            return Err(earlier_failure("write"));
        }
        self.pending.extend_from_slice(chunk);
        self.size += chunk.len() as u64;
        if self.pending.len() < SPILL_AT {
            return Ok(());
        }
        let (file, ingest) = (self.file.take(), self.ingest.take());
        let buf = std::mem::take(&mut self.pending);
        let path = self.tmp_path.clone();
        let (file, ingest, mut buf) = blocking("write", move || {
            let mut i = ingest.ok_or_else(|| earlier_failure("write"))?;
            let file = append(file, &path, &mut i, &buf)?;
            Ok((file, i, buf))
        })
        .await?;
        buf.clear();
        self.pending = buf;
        self.file = Some(file);
        self.ingest = Some(ingest);
        Ok(())
    }

    async fn commit(mut self: Box<Self>, expected: Expected) -> Result<BlobInfo, StoreError> {
        let mut ingest = self
            .ingest
            .take()
            .ok_or_else(|| earlier_failure("commit"))?;
        let (file, path) = (self.file.take(), self.tmp_path.clone());
        let pending = std::mem::take(&mut self.pending);
        let size = self.size;
        let final_dir = self.final_dir.clone();
        // One blocking call: the rest of the bytes, the digest check, then
        // durability (fsync, rename, fsync of the directory).
        let checksums = blocking("commit", move || {
            let file = append(file, &path, &mut ingest, &pending)?;
            let checksums = ingest.finish();
            expected.check(&checksums)?;
            file.sync_all().map_err(|e| io_err("commit", e))?;
            drop(file);
            let hex = checksums.sha256.to_hex();
            let dir = final_dir.join(&hex[..2]);
            fs::create_dir_all(&dir).map_err(|e| io_err("commit", e))?;
            let dest = dir.join(hex);
            // Same content already stored: keep the existing copy, but mark
            // it fresh, so the orphan sweep's grace period counts from now.
            if dest.exists() {
                let _ = File::options()
                    .write(true)
                    .open(&dest)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            } else {
                fs::rename(&path, &dest).map_err(|e| io_err("commit", e))?;
                // The rename is durable only once its directory is synced.
                File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io_err("commit", e))?;
            }
            Ok(checksums)
        })
        .await?;
        Ok(BlobInfo {
            digest: checksums.sha256,
            checksums,
            size,
        })
    }
}
