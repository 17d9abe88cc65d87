//! Download statistics (`GET api/storage/{repo}/{path}?stats`).
//!
//! A download must not pay a store write, so counts gather in memory and a
//! background task writes them behind every few seconds, merged into one
//! settings row per file (`stats.download.<repo>/<path>`). Readers see the
//! stored row plus what is still pending, so the answer is current; a crash
//! loses at most the last interval's counts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Source;
use crate::Error;

const PREFIX: &str = "stats.download.";

/// How often pending counts are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// One file's downloads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadStats {
    /// Downloads in all.
    pub count: u64,
    /// When the last one was, in Unix millis (0: never).
    pub last: u64,
    /// Who made it.
    pub last_by: String,
}

impl DownloadStats {
    fn merge(&mut self, newer: &DownloadStats) {
        self.count += newer.count;
        if newer.last >= self.last {
            self.last = newer.last;
            self.last_by = newer.last_by.clone();
        }
    }
}

/// Downloads not yet written, by `repo/path`.
#[derive(Clone, Debug, Default)]
pub struct Downloads(Arc<Mutex<HashMap<String, DownloadStats>>>);

impl Downloads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, DownloadStats>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one download of `repo_path` by `who` at `now`.
    pub fn record(&self, repo_path: &str, who: &str, now: u64) {
        self.lock()
            .entry(repo_path.to_string())
            .or_default()
            .merge(&DownloadStats {
                count: 1,
                last: now,
                last_by: who.to_string(),
            });
    }

    /// Puts counts back that could not be written, so none is lost.
    fn requeue(&self, rest: &[(String, DownloadStats)]) {
        let mut map = self.lock();
        for (k, v) in rest {
            map.entry(k.clone()).or_default().merge(v);
        }
    }

    /// Forgets pending counts of a removed file.
    pub fn forget(&self, repo_path: &str) {
        self.lock().remove(repo_path);
    }
}

impl Source {
    /// A file's statistics: what is stored plus what is pending.
    pub(crate) async fn download_stats(&self, repo_path: &str) -> Result<DownloadStats, Error> {
        let mut stats: DownloadStats = match self
            .store
            .get_setting(&format!("{PREFIX}{repo_path}"))
            .await?
        {
            Some(raw) => serde_json::from_str(&raw).unwrap_or_default(),
            None => DownloadStats::default(),
        };
        if let Some(pending) = self.downloads.lock().get(repo_path) {
            stats.merge(pending);
        }
        Ok(stats)
    }

    /// Removes a file's statistics (it was deleted).
    pub(crate) async fn forget_stats(&self, repo_path: &str) -> Result<(), Error> {
        self.downloads.forget(repo_path);
        self.store
            .delete_setting(&format!("{PREFIX}{repo_path}"))
            .await?;
        Ok(())
    }

    /// Writes pending counts into the store.
    pub async fn flush_stats(&self) -> Result<(), Error> {
        let pending: Vec<(String, DownloadStats)> = self.downloads.lock().drain().collect();
        for (i, (repo_path, delta)) in pending.iter().enumerate() {
            let key = format!("{PREFIX}{repo_path}");
            let mut stored: DownloadStats = match self.store.get_setting(&key).await {
                Ok(raw) => raw
                    .and_then(|r| serde_json::from_str(&r).ok())
                    .unwrap_or_default(),
                Err(e) => {
                    self.downloads.requeue(&pending[i..]);
                    return Err(e.into());
                }
            };
            stored.merge(delta);
            let body = serde_json::to_string(&stored).unwrap_or_default();
            if let Err(e) = self.store.put_setting(&key, &body).await {
                self.downloads.requeue(&pending[i..]);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Flushes statistics every [`FLUSH_EVERY`], in the background.
    pub fn spawn_stats_writer(&self) {
        let source = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_EVERY).await;
                if let Err(e) = source.flush_stats().await {
                    tracing::warn!(error = %e, "download statistics not written; retrying");
                }
            }
        });
    }
}
