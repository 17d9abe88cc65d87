//! The orphan sweep: removes blobs no file references.
//!
//! Blobs are freed as their last reference goes ([`Source::collect_garbage`]),
//! but a crash between a blob's rename into place and its item record
//! leaves the blob referenced by nothing, for ever. The sweep finds those.
//!
//! Safe against concurrent writes twice over: it decides and deletes under
//! the exclusive content lock (deploys hold it shared from blob commit until
//! their item is written), and it skips blobs written within the grace
//! period, which covers content an edge has received for a commit still to
//! come (re-committing content marks its blob fresh again).

use std::time::Duration;

use super::Source;
use crate::Error;

/// When and how the sweep runs.
#[derive(Clone, Copy, Debug)]
pub struct SweepPolicy {
    /// Between sweeps (the first runs at start).
    pub interval: Duration,
    /// Blobs younger than this are never swept.
    pub grace: Duration,
}

impl Default for SweepPolicy {
    fn default() -> SweepPolicy {
        SweepPolicy {
            interval: Duration::from_secs(6 * 3600),
            grace: Duration::from_secs(24 * 3600),
        }
    }
}

/// What one sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Blobs removed.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Candidates checked per hold of the exclusive lock, so deploys wait for
/// one batch at most, never for a whole sweep.
const BATCH: usize = 256;

impl Source {
    /// Removes every blob older than `grace` that no file references.
    pub async fn sweep(&self, grace: Duration) -> Result<Swept, Error> {
        let cutoff = self
            .clock
            .now_millis()
            .saturating_sub(grace.as_millis() as u64);
        let old: Vec<_> = self
            .blobs
            .list()
            .await?
            .into_iter()
            .filter(|b| b.modified <= cutoff)
            .collect();
        let mut swept = Swept::default();
        for batch in old.chunks(BATCH) {
            let _exclusive = self.content_lock.write().await;
            for b in batch {
                if self.store.count_content_refs(&b.digest).await? == 0
                    && self.blobs.delete(&b.digest).await?
                {
                    swept.blobs += 1;
                    swept.bytes += b.size;
                }
            }
        }
        Ok(swept)
    }

    /// Runs [`Source::sweep`] now and then every `policy.interval`, in the background.
    pub fn spawn_sweeper(&self, policy: SweepPolicy) {
        let source = self.clone();
        tokio::spawn(async move {
            loop {
                match source.sweep(policy.grace).await {
                    Ok(Swept { blobs: 0, .. }) => {
                        tracing::debug!("orphan sweep: nothing to remove")
                    }
                    Ok(s) => {
                        tracing::info!(
                            blobs = s.blobs,
                            bytes = s.bytes,
                            "orphan sweep removed unreferenced blobs"
                        )
                    }
                    Err(e) => tracing::warn!(error = %e, "orphan sweep failed; next time"),
                }
                tokio::time::sleep(policy.interval).await;
            }
        });
    }
}
