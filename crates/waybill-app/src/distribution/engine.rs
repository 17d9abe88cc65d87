//! The engine: delivers a tracker's version to each of its sites, in
//! parallel across sites, through the [`EdgeTransport`].
//!
//! Per site: **prepare**, **send** only the missing blobs (a few at a time,
//! again when the edge finds one corrupt), **commit**, and believe only a
//! receipt that verifies. Transient failures are retried with exponential
//! backoff, showing the reason meanwhile; refusals fail the site with the
//! edge's message. Every status change goes through `SiteProgress::apply`,
//! and unfinished trackers resume when the hub starts ([`Distribution::resume`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use waybill_core::auth::constant_time_eq;
use waybill_core::bundle::ReleaseBundleVersion;
use waybill_core::digest::Sha256;
use waybill_core::site::EdgeSite;
use waybill_core::tracker::{SiteEvent, SiteProgress, SiteStatus, TrackerId, TrackerKind};

use super::Distribution;
use crate::Error;
use crate::delivery::{DeliveryError, OutgoingBlob, SignedBundle};

/// Times a blob is sent when the edge finds it corrupt.
const BLOB_TRIES: usize = 3;
/// Blobs sent to one site at the same time.
const PER_SITE_CONCURRENCY: usize = 4;

/// How the engine works a site: how often a site is retried after
/// transient failures and how fast, and how many sites it works at once.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts per site before it fails.
    pub attempts: u32,
    /// The first wait; each further wait doubles, up to 30 s.
    pub base: Duration,
    /// Sites delivered to at once, across all trackers; the rest wait In
    /// queue.
    pub site_concurrency: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            base: Duration::from_millis(500),
            site_concurrency: 64,
        }
    }
}

/// The engine's control of one running tracker, shared with abort.
#[derive(Debug, Default)]
struct RunCtl(Mutex<CtlState>);

#[derive(Debug, Default)]
struct CtlState {
    /// Sites an abort stopped (an abort stops only the sites its caller
    /// may act on).
    cancelled: BTreeSet<String>,
    /// Sites whose commit has been sent: an abort cannot stop those, so it
    /// leaves them to be reported as they really end.
    committing: BTreeSet<String>,
}

impl RunCtl {
    fn lock(&self) -> std::sync::MutexGuard<'_, CtlState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `site` as committing, unless it was aborted first; atomic with
    /// [`Running::cancel`], so each site is either stopped by the abort or
    /// committing, never both or neither.
    fn begin_commit(&self, site: &str) -> Result<(), Attempt> {
        let mut state = self.lock();
        if state.cancelled.contains(site) {
            return Err(Attempt::Aborted);
        }
        state.committing.insert(site.to_string());
        Ok(())
    }

    fn cancelled(&self, site: &str) -> Result<(), Attempt> {
        if self.lock().cancelled.contains(site) {
            return Err(Attempt::Aborted);
        }
        Ok(())
    }
}

/// The running trackers, shared by the engine and abort, and the engine's
/// stop signal.
#[derive(Clone, Debug)]
pub struct Running {
    trackers: Arc<Mutex<HashMap<TrackerId, Arc<RunCtl>>>>,
    /// Set once on shutdown; every site stops at its next step.
    stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// Bumped whenever a tracker stops running, for [`Running::drained`].
    finished: Arc<tokio::sync::Notify>,
}

impl Default for Running {
    fn default() -> Self {
        Running {
            trackers: Arc::default(),
            stop: Arc::new(tokio::sync::watch::channel(false).0),
            finished: Arc::default(),
        }
    }
}

impl Running {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps `d`, or less when the engine stops meanwhile.
    async fn pause(&self, d: Duration) -> Result<(), Attempt> {
        let mut stop = self.stop.subscribe();
        if *stop.borrow_and_update() {
            return Err(Attempt::Interrupted);
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = stop.changed() => Err(Attempt::Interrupted),
        }
    }

    fn is_running(&self, id: TrackerId) -> bool {
        self.trackers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
    }

    /// Waits until no tracker runs, at most `grace`; whether none does.
    async fn drained(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let finished = self.finished.notified();
            if self
                .trackers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                return false;
            }
        }
    }

    fn register(&self, id: TrackerId) -> Arc<RunCtl> {
        let mut map = self.trackers.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id).or_default().clone()
    }

    fn finish(&self, id: TrackerId) {
        self.trackers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.finished.notify_waiters();
    }

    /// Stops the work for `sites` between steps, and returns those of them
    /// whose commit was already sent (they finish on their own).
    pub(super) fn cancel(&self, id: TrackerId, sites: &BTreeSet<String>) -> BTreeSet<String> {
        let Some(ctl) = self
            .trackers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
        else {
            return Default::default();
        };
        let mut state = ctl.lock();
        state.cancelled.extend(sites.iter().cloned());
        state.committing.intersection(sites).cloned().collect()
    }
}

/// Why an attempt on a site did not finish.
enum Attempt {
    /// Worth retrying: the edge was unreachable or failed internally.
    Transient(String),
    /// The edge refused; retrying would not help.
    Refused(String),
    /// A user aborted the distribution; the abort already recorded it.
    Aborted,
    /// The hub is shutting down: the site stays as it is, and the next
    /// start resumes it.
    Interrupted,
}

impl Attempt {
    /// A transport failure of step `what`, named.
    fn of(what: &str, e: DeliveryError) -> Attempt {
        match e {
            DeliveryError::Transient(m) => Attempt::Transient(format!("{what}: {m}")),
            DeliveryError::Refused(m) | DeliveryError::Corrupt(m) => {
                Attempt::Refused(format!("{what}: {m}"))
            }
        }
    }
}

fn signed(v: &ReleaseBundleVersion, auto_create: bool) -> Result<SignedBundle, Attempt> {
    let sig = v
        .signature
        .as_ref()
        .ok_or_else(|| Attempt::Refused("the version has no signature".into()))?;
    Ok(SignedBundle {
        name: v.name.to_string(),
        version: v.version.to_string(),
        payload: sig.payload.clone(),
        pgp_signature: sig.pgp_signature.clone(),
        auto_create_missing_repositories: auto_create,
    })
}

impl Distribution {
    /// Starts the engine for a tracker in the background, unless it runs
    /// here already.
    pub(super) fn spawn(&self, id: TrackerId) {
        if self.running.is_running(id) || self.running.stopping() {
            return;
        }
        let flag = self.running.register(id);
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.run(id, flag).await {
                tracing::error!(tracker = id, error = %e, "distribution stopped");
            }
            this.running.finish(id);
        });
    }

    /// The unfinished trackers this hub should run: every one not running
    /// here already.
    ///
    /// This is the claim step. With one hub per store it needs nothing
    /// more; when several hubs share a store, it becomes a compare-and-swap
    /// on a lease (owner and expiry stored with the tracker), renewed while
    /// the tracker runs, and every engine write is fenced on that owner.
    async fn claim(&self) -> Result<Vec<TrackerId>, Error> {
        Ok(self
            .store
            .list_trackers(None, None)
            .await?
            .into_iter()
            .filter(|t| t.finished.is_none() && !self.running.is_running(t.id))
            .map(|t| t.id)
            .collect())
    }

    /// Claims and runs every unfinished distribution; call when the hub
    /// starts. Each site picks up where the store says it was, attempts and
    /// backoff included.
    pub async fn resume(&self) -> Result<usize, Error> {
        let claimed = self.claim().await?;
        for id in &claimed {
            tracing::info!(tracker = id, "resuming distribution");
            self.spawn(*id);
        }
        Ok(claimed.len())
    }

    /// Whether this hub's engine is working on tracker `id` now.
    pub fn is_running(&self, id: TrackerId) -> bool {
        self.running.is_running(id)
    }

    /// Stops the engine: no tracker starts, every site stops at its next
    /// step (mid-backoff at once) and stays as the store says, to resume at
    /// the next start. Waits at most `grace`; whether everything stopped.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.running.stop.send_replace(true);
        self.running.drained(grace).await
    }

    async fn run(&self, id: TrackerId, flag: Arc<RunCtl>) -> Result<(), Error> {
        let tracker = self
            .store
            .get_tracker(id)
            .await?
            .ok_or_else(|| Error::internal(format!("tracker {id} vanished")))?;
        let stored = self
            .store
            .get_version(&tracker.name, &tracker.version)
            .await?;
        let version = match (&stored, tracker.kind) {
            (Some(v), _) => v.clone(),
            // Deleting from edges needs only the name and version.
            (None, TrackerKind::DeleteVersion) => ReleaseBundleVersion::new(
                tracker.name.clone(),
                tracker.version.clone(),
                tracker.created,
                tracker.created_by.clone(),
            ),
            (None, TrackerKind::Distribute) => {
                self.end_unstarted(
                    id,
                    "the version was deleted on the hub before it was delivered",
                )
                .await?;
                return Ok(());
            }
        };
        let mut tasks = tokio::task::JoinSet::new();
        for site in tracker.sites.iter().filter(|s| !s.status.is_terminal()) {
            let Some(edge) = self.store.get_site(&site.service_id).await? else {
                let event = SiteEvent::Fail("the edge was unregistered".into());
                self.update_site(id, site.service_id.as_str(), event).await;
                continue;
            };
            let (this, version, flag) = (self.clone(), version.clone(), flag.clone());
            let (auto, kind, progress) = (tracker.auto_create, tracker.kind, site.clone());
            tasks.spawn(async move {
                // Sites beyond the bound wait here, In queue.
                let Ok(_permit) = this.site_slots.clone().acquire_owned().await else {
                    return;
                };
                this.deliver(id, &edge, &version, auto, kind, &progress, &flag)
                    .await
            });
        }
        while tasks.join_next().await.is_some() {}
        if self.running.stopping() {
            // Interrupted, not finished: the next start resumes it.
            return Ok(());
        }
        let now = self.clock.now_millis();
        let done = self
            .store
            .update_tracker(
                id,
                Box::new(move |t| {
                    t.finished.get_or_insert(now);
                    Ok(())
                }),
            )
            .await?;
        if done.kind == TrackerKind::DeleteVersion
            && done.status() == SiteStatus::Completed
            && done.delete_on_success
            && let Some(v) = stored
        {
            let _guard = self.bundles.version_guard().lock().await;
            let _changed = self.bundles.change();
            self.store.delete_version(&v.name, &v.version).await?;
            self.bundles.unreference(&v).await?;
            tracing::info!(bundle = %v.label(), "deleted on the hub after every edge confirmed");
        }
        Ok(())
    }

    /// Ends a tracker none of whose unfinished sites can be worked on: each
    /// fails with `why`, and the tracker is finished, so it is never resumed.
    async fn end_unstarted(&self, id: TrackerId, why: &str) -> Result<(), Error> {
        let why = why.to_string();
        tracing::warn!(tracker = id, %why, "distribution ended");
        let now = self.clock.now_millis();
        self.store
            .update_tracker(
                id,
                Box::new(move |t| {
                    for s in t.sites.iter_mut().filter(|s| !s.status.is_terminal()) {
                        s.apply(SiteEvent::Fail(why.clone()))?;
                    }
                    t.finished.get_or_insert(now);
                    Ok(())
                }),
            )
            .await?;
        Ok(())
    }

    /// Applies an event to one site of a tracker; logs instead of failing,
    /// since the engine must go on for the other sites.
    async fn update_site(&self, id: TrackerId, service_id: &str, event: SiteEvent) {
        self.update_progress(id, service_id, move |s| s.apply(event))
            .await;
    }

    async fn update_progress(
        &self,
        id: TrackerId,
        service_id: &str,
        f: impl FnOnce(&mut SiteProgress) -> Result<(), waybill_core::Error> + Send + 'static,
    ) {
        let sid = service_id.to_string();
        let res = self
            .store
            .update_tracker(
                id,
                Box::new(move |t| {
                    let site = t
                        .sites
                        .iter_mut()
                        .find(|s| s.service_id.as_str() == sid)
                        .ok_or_else(|| waybill_core::Error::NotFound {
                            what: format!("site {sid}"),
                        })?;
                    f(site)
                }),
            )
            .await;
        if let Err(e) = res {
            tracing::warn!(tracker = id, site = service_id, error = %e, "tracker update refused");
        }
    }

    /// Fails a site with `why` unless it already ended (an abort may have
    /// recorded it first; its record stands).
    async fn fail_open(&self, id: TrackerId, sid: &str, why: String) {
        self.update_progress(id, sid, move |s| {
            if s.status.is_terminal() {
                return Ok(());
            }
            s.apply(SiteEvent::Fail(why))
        })
        .await;
    }

    /// Whether the site is still open in the store: an abort recorded by
    /// any caller (another hub, or this one before a restart) stops it
    /// between steps.
    async fn still_open(&self, id: TrackerId, sid: &str) -> Result<(), Attempt> {
        if self.running.stopping() {
            return Err(Attempt::Interrupted);
        }
        match self.store.get_tracker(id).await {
            Ok(Some(t))
                if t.sites
                    .iter()
                    .any(|s| s.service_id.as_str() == sid && s.status.is_terminal()) =>
            {
                Err(Attempt::Aborted)
            }
            // A store that does not answer now is the edge's problem no
            // more than ours; the attempt goes on and its writes will tell.
            _ => Ok(()),
        }
    }

    /// The wait before attempt `n + 1` after `n` failed ones.
    fn backoff(&self, n: u32) -> Duration {
        self.retry
            .base
            .saturating_mul(1 << n.saturating_sub(1).min(6))
            .min(Duration::from_secs(30))
    }

    /// Delivers the version to (or deletes it from) one site, retrying
    /// transient failures. `progress` is the site as the store had it: a
    /// resumed site keeps its count of attempts and waits out its backoff.
    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &self,
        id: TrackerId,
        edge: &EdgeSite,
        v: &ReleaseBundleVersion,
        auto_create: bool,
        kind: TrackerKind,
        progress: &SiteProgress,
        flag: &RunCtl,
    ) {
        let sid = edge.service_id.as_str();
        if flag.cancelled(sid).is_err() {
            self.fail_open(id, sid, "aborted".into()).await;
            return;
        }
        if self.running.stopping() {
            return;
        }
        self.update_site(id, sid, SiteEvent::Start).await;
        let policy = self.retry;
        let mut failed = progress.attempts;
        let mut last = progress
            .general_error
            .trim_end_matches("; retrying")
            .to_string();
        if let Some(due) = progress.next_try {
            let wait = Duration::from_millis(due.saturating_sub(self.clock.now_millis()));
            if self.running.pause(wait).await.is_err() {
                return;
            }
        }
        while failed < policy.attempts {
            let outcome = match kind {
                TrackerKind::Distribute => self.attempt_once(id, edge, v, auto_create, flag).await,
                // One call that cannot be stopped half-way: like a commit.
                TrackerKind::DeleteVersion => match self.still_open(id, sid).await {
                    Err(e) => Err(e),
                    Ok(()) => match flag.begin_commit(sid) {
                        Ok(()) => self
                            .sites
                            .transport()
                            .remove(edge, v.name.as_str(), v.version.as_str())
                            .await
                            .map_err(|e| Attempt::of("delete", e)),
                        Err(e) => Err(e),
                    },
                },
            };
            match outcome {
                Ok(()) => {
                    self.update_site(id, sid, SiteEvent::Complete).await;
                    tracing::info!(tracker = id, site = %edge.name, "site completed");
                    return;
                }
                // Shutting down: the site stays as the store says.
                Err(Attempt::Interrupted) => return,
                // Stopped by an abort. Usually the abort recorded it already;
                // a site it left committing (then retried) is recorded here.
                Err(Attempt::Aborted) => {
                    self.fail_open(id, sid, "aborted".into()).await;
                    return;
                }
                // Aborted while committing, and the commit did not finish: no retry.
                Err(Attempt::Transient(msg) | Attempt::Refused(msg))
                    if flag.cancelled(sid).is_err() =>
                {
                    let why = format!("aborted; the commit did not complete: {msg}");
                    self.fail_open(id, sid, why).await;
                    return;
                }
                Err(Attempt::Refused(msg)) => {
                    tracing::warn!(tracker = id, site = %edge.name, %msg, "site failed");
                    self.update_site(id, sid, SiteEvent::Fail(msg)).await;
                    return;
                }
                Err(Attempt::Transient(msg)) => {
                    failed += 1;
                    last = msg.clone();
                    if failed >= policy.attempts {
                        break;
                    }
                    let wait = self.backoff(failed);
                    let due = self.clock.now_millis() + wait.as_millis() as u64;
                    tracing::info!(tracker = id, site = %edge.name, %msg, attempt = failed, "retrying site");
                    // Stored before waiting: a restart meanwhile keeps both.
                    let reason = format!("{msg}; retrying");
                    self.update_progress(id, sid, move |s| s.retry_at(reason, due))
                        .await;
                    if self.running.pause(wait).await.is_err() {
                        return;
                    }
                }
            }
            if flag.cancelled(sid).is_err() {
                self.fail_open(id, sid, "aborted".into()).await;
                return;
            }
        }
        self.update_site(
            id,
            sid,
            SiteEvent::Fail(format!(
                "gave up after {} attempts: {last}",
                policy.attempts
            )),
        )
        .await;
    }

    /// A blob of the hub as a stream of chunks.
    fn blob_content(
        &self,
        digest: Sha256,
        size: u64,
    ) -> futures_util::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>> {
        if size == 0 {
            return futures_util::stream::empty().boxed();
        }
        crate::source::blob_stream(self.blobs.clone(), digest, 0, size - 1).boxed()
    }

    /// Sends one missing blob, again when the edge finds it corrupt, and
    /// records its files' progress.
    async fn send_one(
        &self,
        id: TrackerId,
        edge: &EdgeSite,
        digest: Sha256,
        files: Vec<(String, u64)>,
    ) -> Result<(), Attempt> {
        let sid = edge.service_id.as_str().to_string();
        let size = self
            .blobs
            .stat(&digest)
            .await
            .ok()
            .flatten()
            .ok_or_else(|| {
                Attempt::Refused(format!(
                    "the hub no longer holds {} ({digest})",
                    files.first().map(|f| f.0.as_str()).unwrap_or("?")
                ))
            })?;
        // Its SHA-1 and MD5 travel along, so the edge computes only SHA-256.
        let sums = self
            .store
            .find_items(&waybill_core::aql::ItemHint {
                sha256: Some(digest),
                ..Default::default()
            })
            .await
            .ok()
            .and_then(|items| items.into_iter().find_map(|i| i.checksums))
            .filter(|c| c.sha256 == digest);
        let names: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
        let in_progress = names.clone();
        self.update_progress(id, &sid, move |s| {
            s.files_in_progress.extend(in_progress);
            Ok(())
        })
        .await;
        // A blob the edge finds corrupt is sent again a few times, then its
        // files are named in `file_errors`.
        let what = format!("transfer of {}", names.join(", "));
        let mut result = Ok(());
        for _ in 0..BLOB_TRIES {
            let blob = OutgoingBlob {
                digest,
                size,
                sha1_md5: sums.map(|c| (c.sha1.to_hex(), c.md5.to_hex())),
                content: self.blob_content(digest, size),
            };
            result = self.sites.transport().send_blob(edge, blob).await;
            if !matches!(result, Err(DeliveryError::Corrupt(_))) {
                break;
            }
        }
        let result = result.map_err(|e| Attempt::of(&what, e));
        if let Err(Attempt::Refused(msg)) = &result {
            let errors: Vec<String> = names.iter().map(|n| format!("{n}: {msg}")).collect();
            self.update_progress(id, &sid, move |s| {
                s.file_errors.extend(errors);
                Ok(())
            })
            .await;
        }
        let ok = result.is_ok();
        let (nfiles, nbytes): (u64, u64) = (files.len() as u64, files.iter().map(|f| f.1).sum());
        self.update_progress(id, &sid, move |s| {
            s.files_in_progress.retain(|f| !names.contains(f));
            if ok {
                s.distributed_files += nfiles;
                s.distributed_bytes += nbytes;
                s.transferred_bytes += size;
            }
            Ok(())
        })
        .await;
        result
    }

    async fn attempt_once(
        &self,
        id: TrackerId,
        edge: &EdgeSite,
        v: &ReleaseBundleVersion,
        auto_create: bool,
        flag: &RunCtl,
    ) -> Result<(), Attempt> {
        let sid = edge.service_id.as_str().to_string();
        flag.cancelled(&sid)?;
        self.still_open(id, &sid).await?;
        let bundle = signed(v, auto_create)?;
        let transport = self.sites.transport();

        // 1. Prepare: which content is missing?
        let missing = transport
            .prepare(edge, &bundle)
            .await
            .map_err(|e| Attempt::of("prepare", e))?;
        let present = v
            .artifacts
            .iter()
            .filter(|a| !missing.contains(&a.checksum));
        let (present_files, present_bytes) =
            present.fold((0u64, 0u64), |(n, b), a| (n + 1, b + a.size));
        self.update_progress(id, &sid, move |s| {
            s.apply(SiteEvent::Progress)?;
            s.distributed_files = present_files;
            s.distributed_bytes = present_bytes;
            Ok(())
        })
        .await;

        flag.cancelled(&sid)?;
        self.still_open(id, &sid).await?;
        // 2. Send only the missing blobs, a few at a time. Jobs own their
        // inputs: futures that borrow across `.await` defeat Send inference.
        let jobs: Vec<(Sha256, Vec<(String, u64)>)> = missing
            .iter()
            .map(|d| {
                let files = v
                    .artifacts
                    .iter()
                    .filter(|a| a.checksum == *d)
                    .map(|a| (a.target_repo_path.clone(), a.size))
                    .collect();
                (*d, files)
            })
            .collect();
        let sends = jobs.into_iter().map(|(digest, files)| {
            let (this, edge) = (self.clone(), edge.clone());
            async move { this.send_one(id, &edge, digest, files).await }
        });
        let results: Vec<Result<(), Attempt>> = futures_util::stream::iter(sends)
            .buffer_unordered(PER_SITE_CONCURRENCY)
            .collect()
            .await;
        for r in results {
            r?;
        }

        // 3. Commit, and believe only a receipt that verifies. Past this
        // point an abort no longer stops the site: it ends as the edge says.
        self.still_open(id, &sid).await?;
        flag.begin_commit(&sid)?;
        let answer = transport
            .commit(edge, &bundle)
            .await
            .map_err(|e| Attempt::of("commit", e))?;
        let manifest = Sha256::of(bundle.payload.as_bytes());
        let expected = waybill_core::site::receipt(
            &edge.pairing_token,
            v.name.as_str(),
            v.version.as_str(),
            &manifest,
        );
        if answer.manifest_sha256 != manifest.to_hex()
            || !constant_time_eq(answer.receipt.as_bytes(), expected.as_bytes())
        {
            return Err(Attempt::Refused(
                "commit: the edge's receipt does not verify".into(),
            ));
        }
        Ok(())
    }
}
