//! The content of small files, kept in memory for downloads.
//!
//! Content is addressed by its SHA-256 and never changes under a digest, so
//! an entry cannot be stale: a deleted file is refused by its record before
//! any content is looked up, and content deployed again is the same bytes.
//! A hit saves the second blocking call of a download (the first reads the
//! record), which is most of a small download's cost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use waybill_core::digest::Sha256;

/// Files up to this size are kept.
pub(crate) const MAX_FILE: u64 = 64 << 10;
/// Bytes kept at most; the cache is emptied when a new entry would pass it.
const BUDGET: usize = 32 << 20;

#[derive(Default)]
struct Entries {
    map: HashMap<Sha256, Bytes>,
    bytes: usize,
}

/// The cache; cheap to clone, shared by every request.
#[derive(Clone, Default)]
pub struct SmallBlobs(Arc<Mutex<Entries>>);

impl std::fmt::Debug for SmallBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmallBlobs").finish_non_exhaustive()
    }
}

impl SmallBlobs {
    /// The whole content of `digest`, if kept.
    pub(crate) fn get(&self, digest: &Sha256) -> Option<Bytes> {
        let entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        entries.map.get(digest).cloned()
    }

    /// Keeps the whole content of `digest`.
    pub(crate) fn put(&self, digest: Sha256, content: Bytes) {
        if content.len() as u64 > MAX_FILE {
            return;
        }
        let mut entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if entries.bytes + content.len() > BUDGET {
            entries.map.clear();
            entries.bytes = 0;
        }
        entries.bytes += content.len();
        if let Some(old) = entries.map.insert(digest, content) {
            entries.bytes -= old.len();
        }
    }
}
