//! A change counter for in-process caches: every cache entry records the
//! epoch it was built at and counts only while the epoch is unchanged.
//!
//! Writers take a [`Change`] guard before writing; it bumps the epoch when
//! dropped, after the last write on every path out (early errors included)
//! and before the answer, so a change holds from the next request on.
//! Readers read the epoch *before* reading the store, so a write racing a
//! read leaves a stale entry, never a wrong one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The counter; cheap to clone, shared by every request.
#[derive(Clone, Debug, Default)]
pub struct Epoch(Arc<AtomicU64>);

/// Bumps its [`Epoch`] when dropped.
#[must_use = "the change is recorded when the guard drops"]
pub struct Change(Arc<AtomicU64>);

impl Drop for Change {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Epoch {
    /// The current value.
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Take before writing what the caches hold.
    pub fn change(&self) -> Change {
        Change(self.0.clone())
    }
}
