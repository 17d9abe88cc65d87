//! Distribution: `POST /distribution/{name}/{version}` schedules a tracker,
//! and the engine delivers the signed version to every selected site.
//!
//! Per site, in parallel across sites: **prepare** (the edge verifies the
//! signature and lists the blobs it lacks), **transfer** (only those blobs,
//! a few at a time, verified by the edge as they arrive), **commit** (the
//! edge makes everything visible at once and returns a receipt). A site is
//! Completed only when the receipt verifies. Transient failures (network,
//! 5xx) are retried with exponential backoff, showing the reason meanwhile;
//! refusals (4xx) fail the site with the edge's message. Every status change
//! goes through `SiteProgress::apply`, and unfinished trackers resume when
//! the hub restarts ([`resume`]).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes_stream::blob_body;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use waybill_core::auth::constant_time_eq;
use waybill_core::bundle::ReleaseBundleVersion;
use waybill_core::digest::Sha256;
use waybill_core::name::{BundleName, BundleVersion};
use waybill_core::permissions::Action;
use waybill_core::rules::{DistributionRule, RuleSet};
use waybill_core::site::EdgeSite;
use waybill_core::state::VersionEvent;
use waybill_core::time::format_iso;
use waybill_core::tracker::{SiteEvent, SiteProgress, SiteStatus, Tracker, TrackerId, TrackerKind};

use crate::Caller;
use crate::now_millis;
use crate::{ApiError, AppState, Json, Principal};

/// The engine's control of one running tracker, shared with `abort`.
#[derive(Debug, Default)]
pub struct RunCtl(std::sync::Mutex<CtlState>);

#[derive(Debug, Default)]
struct CtlState {
    /// Sites an abort stopped (an abort stops only the sites its caller
    /// may act on).
    cancelled: std::collections::BTreeSet<String>,
    /// Sites whose commit has been sent: an abort cannot stop those, so it
    /// leaves them to be reported as they really end.
    committing: std::collections::BTreeSet<String>,
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
}

/// The running trackers, shared by the engine and `abort`.
#[derive(Clone, Debug, Default)]
pub struct Running(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<TrackerId, std::sync::Arc<RunCtl>>>>,
);

impl Running {
    fn register(&self, id: TrackerId) -> std::sync::Arc<RunCtl> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id).or_default().clone()
    }

    fn finish(&self, id: TrackerId) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    /// Stops the work for `sites` between steps, and returns those of them
    /// whose commit was already sent (they finish on their own).
    fn cancel(
        &self,
        id: TrackerId,
        sites: &std::collections::BTreeSet<String>,
    ) -> std::collections::BTreeSet<String> {
        let Some(ctl) = self
            .0
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

fn cancelled(ctl: &RunCtl, site: &str) -> Result<(), Attempt> {
    if ctl.lock().cancelled.contains(site) {
        return Err(Attempt::Aborted);
    }
    Ok(())
}

/// Times a blob is sent when the edge finds it corrupt.
const BLOB_TRIES: usize = 3;

/// Blobs sent to one site at the same time.
const PER_SITE_CONCURRENCY: usize = 4;

/// How often a site is retried after transient failures, and how fast.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts per site before it fails.
    pub attempts: u32,
    /// The first wait; each further wait doubles, up to 30 s.
    pub base: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            base: Duration::from_millis(500),
        }
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct RuleDto {
    site_name: Option<String>,
    city_name: Option<String>,
    country_codes: Option<Vec<String>>,
}

#[derive(Deserialize)]
pub(crate) struct DistributeBody {
    #[serde(default)]
    dry_run: bool,
    distribution_rules: Vec<RuleDto>,
    #[serde(default)]
    auto_create_missing_repositories: bool,
}

fn rules_from(dtos: Vec<RuleDto>) -> Vec<DistributionRule> {
    dtos.into_iter()
        .map(|r| DistributionRule {
            site_name: r.site_name,
            city_name: r.city_name,
            country_codes: r.country_codes.unwrap_or_default(),
        })
        .collect()
}

fn site_ref(s: &EdgeSite) -> Value {
    json!({"service_id": s.service_id.as_str(), "name": s.name, "type": EdgeSite::TYPE})
}

/// `POST /api/v1/distribution/{name}/{version}`.
pub(crate) async fn distribute(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((name, version)): Path<(String, String)>,
    Json(body): Json<DistributeBody>,
) -> Result<Response, ApiError> {
    let (name, version) = (BundleName::parse(name)?, BundleVersion::parse(version)?);
    state
        .security
        .require_bundle(&who, name.as_str(), Action::Distribute)
        .await?;
    if body.distribution_rules.is_empty() {
        return Err(ApiError::bad_request(
            "distribution_rules must hold at least one rule; {} selects every site",
        ));
    }
    // Held until the tracker exists: a hub delete then sees it and refuses.
    let _guard = state.bundles.version_guard().lock().await;
    let v = state.bundles.existing(&name, &version).await?;
    if v.signature.is_none() {
        return Err(ApiError::bad_request(format!(
            "release bundle {} is not signed, and only signed versions can be distributed; \
             sign it first with POST /api/v1/release_bundle/{}/{}/sign (passphrase in X-GPG-PASSPHRASE; \
             `jf ds rbs`), or create it with \"sign_immediately\": true",
            v.label(),
            v.name,
            v.version
        )));
    }
    v.state.apply(VersionEvent::Distribute)?;
    if let Some(reason) = v.blocked() {
        return Err(ApiError::bad_request(format!(
            "release bundle {} is blocked by the scan policy: {reason}",
            v.label()
        )));
    }
    let rules = rules_from(body.distribution_rules);
    let selected = select_sites(&state, &who, &rules, Action::Distribute).await?;
    let refs: Vec<Value> = selected.iter().map(site_ref).collect();
    if body.dry_run {
        return Ok(axum::Json(json!({"id": 0, "sites": refs})).into_response());
    }
    // The hub must hold every blob it is about to send; references keep them.
    state.bundles.reference_artifacts(&v, &who.name).await?;
    let mut tracker = Tracker::new(
        TrackerKind::Distribute,
        &v,
        rules,
        &selected,
        &who.name,
        now_millis(),
    );
    tracker.auto_create = body.auto_create_missing_repositories;
    let tracker = state.store.create_tracker(tracker).await?;
    tracing::info!(bundle = %v.label(), tracker = tracker.id, sites = selected.len(), "distribution scheduled");
    spawn(state.clone(), tracker.id);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"id": tracker.id, "sites": refs})),
    )
        .into_response())
}

/// The registered sites `rules` select and `who` may act on: a 400 when
/// the rules select none, a 403 naming them when none is allowed.
async fn select_sites(
    state: &AppState,
    who: &Principal,
    rules: &[DistributionRule],
    action: Action,
) -> Result<Vec<EdgeSite>, ApiError> {
    let sites = state.sites.get(state.store.as_ref()).await?;
    let selected = sites.select(&RuleSet::new(rules));
    if selected.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the distribution rules match none of the {} registered edge sites",
            sites.sites.len()
        )));
    }
    Ok(state.security.allowed_sites(who, action, selected).await?)
}

/// Starts the engine for a tracker in the background.
pub fn spawn(state: AppState, id: TrackerId) {
    let flag = state.running.register(id);
    tokio::spawn(async move {
        if let Err(e) = run(&state, id, flag).await {
            tracing::error!(tracker = id, error = %e.message(), "distribution stopped");
        }
        state.running.finish(id);
    });
}

/// Resumes every unfinished distribution; called when the hub starts.
pub async fn resume(state: &AppState) -> Result<usize, waybill_core::StoreError> {
    let unfinished: Vec<Tracker> = state
        .store
        .list_trackers(None, None)
        .await?
        .into_iter()
        .filter(|t| t.finished.is_none())
        .collect();
    for t in &unfinished {
        tracing::info!(tracker = t.id, bundle = %format!("{}/{}", t.name, t.version), "resuming distribution");
        spawn(state.clone(), t.id);
    }
    Ok(unfinished.len())
}

async fn run(
    state: &AppState,
    id: TrackerId,
    flag: std::sync::Arc<RunCtl>,
) -> Result<(), ApiError> {
    let tracker = state
        .store
        .get_tracker(id)
        .await?
        .ok_or_else(|| ApiError::not_found("tracker vanished"))?;
    let stored = state
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
            end_unstarted(
                state,
                id,
                "the version was deleted on the hub before it was delivered",
            )
            .await?;
            return Ok(());
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    for site in tracker.sites.iter().filter(|s| !s.status.is_terminal()) {
        let Some(edge) = state.store.get_site(&site.service_id).await? else {
            let event = SiteEvent::Fail("the edge was unregistered".into());
            update_site(state, id, site.service_id.as_str(), event).await;
            continue;
        };
        let (state, version, flag) = (state.clone(), version.clone(), flag.clone());
        let (auto, kind) = (tracker.auto_create, tracker.kind);
        tasks.spawn(async move { deliver(&state, id, &edge, &version, auto, kind, &flag).await });
    }
    while tasks.join_next().await.is_some() {}
    let done = state
        .store
        .update_tracker(
            id,
            Box::new(|t| {
                t.finished.get_or_insert(now_millis());
                Ok(())
            }),
        )
        .await?;
    if done.kind == TrackerKind::DeleteVersion
        && done.status() == SiteStatus::Completed
        && done.delete_on_success
        && let Some(v) = stored
    {
        let _guard = state.bundles.version_guard().lock().await;
        let _changed = state.renders.change();
        state.store.delete_version(&v.name, &v.version).await?;
        state.bundles.unreference(&v).await?;
        tracing::info!(bundle = %v.label(), "deleted on the hub after every edge confirmed");
    }
    Ok(())
}

/// Ends a tracker none of whose unfinished sites can be worked on: each
/// fails with `why`, and the tracker is finished, so it is never resumed.
async fn end_unstarted(state: &AppState, id: TrackerId, why: &str) -> Result<(), ApiError> {
    let why = why.to_string();
    tracing::warn!(tracker = id, %why, "distribution ended");
    state
        .store
        .update_tracker(
            id,
            Box::new(move |t| {
                for s in t.sites.iter_mut().filter(|s| !s.status.is_terminal()) {
                    s.apply(SiteEvent::Fail(why.clone()))?;
                }
                t.finished.get_or_insert(now_millis());
                Ok(())
            }),
        )
        .await?;
    Ok(())
}

/// Applies an event to one site of a tracker; logs instead of failing, since
/// the engine must go on for the other sites.
async fn update_site(state: &AppState, id: TrackerId, service_id: &str, event: SiteEvent) {
    update_progress(state, id, service_id, move |s| s.apply(event)).await;
}

async fn update_progress(
    state: &AppState,
    id: TrackerId,
    service_id: &str,
    f: impl FnOnce(&mut SiteProgress) -> Result<(), waybill_core::Error> + Send + 'static,
) {
    let sid = service_id.to_string();
    let res = state
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

/// Why an attempt on a site did not finish.
enum Attempt {
    /// Worth retrying: the edge was unreachable or failed internally.
    Transient(String),
    /// The edge refused; retrying would not help.
    Refused(String),
    /// A user aborted the distribution; the abort already recorded it.
    Aborted,
}

impl Attempt {
    fn message(self) -> String {
        match self {
            Attempt::Transient(m) | Attempt::Refused(m) => m,
            Attempt::Aborted => "aborted".into(),
        }
    }
}

fn classify(
    what: &str,
    res: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, Attempt> {
    match res {
        Err(e) => Err(Attempt::Transient(format!("{what}: edge unreachable: {e}"))),
        Ok(r) if r.status().is_success() => Ok(r),
        Ok(r) if r.status().is_server_error() || r.status() == StatusCode::TOO_MANY_REQUESTS => {
            Err(Attempt::Transient(format!(
                "{what}: edge answered {}",
                r.status()
            )))
        }
        Ok(r) if r.status() == StatusCode::UNAUTHORIZED => Err(Attempt::Refused(format!(
            "{what}: the edge refused this hub's pairing token"
        ))),
        Ok(r) => Err(Attempt::Refused(format!(
            "{what}: edge answered {}",
            r.status()
        ))),
    }
}

/// The edge's error message, when it sent one.
async fn refusal(what: &str, r: reqwest::Response) -> Attempt {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or(text);
    if status.is_server_error() {
        Attempt::Transient(format!("{what}: edge answered {status}: {msg}"))
    } else {
        Attempt::Refused(format!("{what}: {msg}"))
    }
}

async fn call(what: &str, req: reqwest::RequestBuilder) -> Result<reqwest::Response, Attempt> {
    match req.send().await {
        Ok(r) if !r.status().is_success() => Err(refusal(what, r).await),
        other => classify(what, other),
    }
}

/// Delivers the version to (or deletes it from) one site, retrying transient failures.
async fn deliver(
    state: &AppState,
    id: TrackerId,
    edge: &EdgeSite,
    v: &ReleaseBundleVersion,
    auto_create: bool,
    kind: TrackerKind,
    flag: &RunCtl,
) {
    let sid = edge.service_id.as_str();
    if cancelled(flag, sid).is_err() {
        fail_open(state, id, sid, "aborted".into()).await;
        return;
    }
    update_site(state, id, sid, SiteEvent::Start).await;
    let policy = state.retry;
    let mut last = String::new();
    for attempt in 0..policy.attempts {
        if attempt > 0 {
            let wait = policy
                .base
                .saturating_mul(1 << (attempt - 1).min(6))
                .min(Duration::from_secs(30));
            tokio::time::sleep(wait).await;
        }
        let outcome = match kind {
            TrackerKind::Distribute => attempt_once(state, id, edge, v, auto_create, flag).await,
            // One call that cannot be stopped half-way: like a commit.
            TrackerKind::DeleteVersion => match flag.begin_commit(sid) {
                Ok(()) => remove_once(state, edge, v).await,
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok(()) => {
                update_site(state, id, sid, SiteEvent::Complete).await;
                tracing::info!(tracker = id, site = %edge.name, "site completed");
                return;
            }
            // Stopped by an abort. Usually the abort recorded it already;
            // a site it left committing (then retried) is recorded here.
            Err(Attempt::Aborted) => {
                fail_open(state, id, sid, "aborted".into()).await;
                return;
            }
            // Aborted while committing, and the commit did not finish: no retry.
            Err(Attempt::Transient(msg) | Attempt::Refused(msg))
                if cancelled(flag, sid).is_err() =>
            {
                let why = format!("aborted; the commit did not complete: {msg}");
                fail_open(state, id, sid, why).await;
                return;
            }
            Err(Attempt::Refused(msg)) => {
                tracing::warn!(tracker = id, site = %edge.name, %msg, "site failed");
                update_site(state, id, sid, SiteEvent::Fail(msg)).await;
                return;
            }
            Err(Attempt::Transient(msg)) => {
                tracing::info!(tracker = id, site = %edge.name, %msg, attempt, "retrying site");
                update_site(state, id, sid, SiteEvent::Retry(format!("{msg}; retrying"))).await;
                last = msg;
            }
        }
        if cancelled(flag, sid).is_err() {
            fail_open(state, id, sid, "aborted".into()).await;
            return;
        }
    }
    update_site(
        state,
        id,
        sid,
        SiteEvent::Fail(format!(
            "gave up after {} attempts: {last}",
            policy.attempts
        )),
    )
    .await;
}

/// Fails a site with `why` unless it already ended (an abort may have
/// recorded it first; its record stands).
async fn fail_open(state: &AppState, id: TrackerId, sid: &str, why: String) {
    update_progress(state, id, sid, move |s| {
        if s.status.is_terminal() {
            return Ok(());
        }
        s.apply(SiteEvent::Fail(why))
    })
    .await;
}

/// Asks an edge to remove the version (and content nothing else there uses).
async fn remove_once(
    state: &AppState,
    edge: &EdgeSite,
    v: &ReleaseBundleVersion,
) -> Result<(), Attempt> {
    let url = format!("{}/waybill/api/v1/edge/delete", edge.url);
    let body = json!({"name": v.name.as_str(), "version": v.version.as_str()});
    call(
        "delete",
        state
            .http
            .post(url)
            .bearer_auth(edge.pairing_token.expose())
            .json(&body),
    )
    .await?;
    Ok(())
}

fn bundle_body(v: &ReleaseBundleVersion, auto_create: bool) -> Result<Value, Attempt> {
    let sig = v
        .signature
        .as_ref()
        .ok_or_else(|| Attempt::Refused("the version has no signature".into()))?;
    Ok(json!({
        "name": v.name.as_str(),
        "version": v.version.as_str(),
        "payload": sig.payload,
        "pgp_signature": sig.pgp_signature,
        "auto_create_missing_repositories": auto_create,
    }))
}

async fn attempt_once(
    state: &AppState,
    id: TrackerId,
    edge: &EdgeSite,
    v: &ReleaseBundleVersion,
    auto_create: bool,
    flag: &RunCtl,
) -> Result<(), Attempt> {
    let sid = edge.service_id.as_str().to_string();
    cancelled(flag, &sid)?;
    let base = format!("{}/waybill/api/v1/edge", edge.url);
    let token = edge.pairing_token.expose().to_string();
    let body = bundle_body(v, auto_create)?;

    // 1. Prepare: which content is missing?
    let res = call(
        "prepare",
        state
            .http
            .post(format!("{base}/prepare"))
            .bearer_auth(&token)
            .json(&body),
    )
    .await?;
    let prepared: Value = res
        .json()
        .await
        .map_err(|e| Attempt::Transient(format!("prepare: unreadable answer: {e}")))?;
    let missing: Vec<Sha256> = prepared["missing"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().and_then(|d| Sha256::parse_hex(d).ok()))
                .collect()
        })
        .unwrap_or_default();
    let present_files = v
        .artifacts
        .iter()
        .filter(|a| !missing.contains(&a.checksum))
        .count() as u64;
    let present_bytes: u64 = v
        .artifacts
        .iter()
        .filter(|a| !missing.contains(&a.checksum))
        .map(|a| a.size)
        .sum();
    update_progress(state, id, &sid, move |s| {
        s.apply(SiteEvent::Progress)?;
        s.distributed_files = present_files;
        s.distributed_bytes = present_bytes;
        Ok(())
    })
    .await;

    cancelled(flag, &sid)?;
    // 2. Transfer only the missing blobs, a few at a time. Jobs own their
    // inputs: closures that borrow across `.await` defeat Send inference.
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
    let (owned_state, owned_token, owned_sid, owned_base) =
        (state.clone(), token.clone(), sid.clone(), base.clone());
    let sends = jobs.into_iter().map(move |(digest, files)| {
        let (state, token, sid, base) = (
            owned_state.clone(),
            owned_token.clone(),
            owned_sid.clone(),
            owned_base.clone(),
        );
        async move {
            let size = state
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
            let sums = state
                .store
                .find_items(&waybill_core::aql::ItemHint {
                    sha256: Some(digest),
                    ..Default::default()
                })
                .await
                .ok()
                .and_then(|items| items.into_iter().find_map(|i| i.checksums));
            let names: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
            let in_progress = names.clone();
            update_progress(&state, id, &sid, move |s| {
                s.files_in_progress.extend(in_progress);
                Ok(())
            })
            .await;
            // A blob the edge finds corrupt (409) is sent again a few times,
            // then its files are named in `file_errors`.
            let what = format!("transfer of {}", names.join(", "));
            let mut result = Ok(());
            for _ in 0..BLOB_TRIES {
                let mut req = state
                    .http
                    .put(format!("{base}/blobs/{digest}"))
                    .bearer_auth(&token)
                    .header("content-length", size);
                if let Some(c) = sums.filter(|c| c.sha256 == digest) {
                    req = req
                        .header("x-checksum-sha1", c.sha1.to_hex())
                        .header("x-checksum-md5", c.md5.to_hex());
                }
                let req = req.body(reqwest::Body::wrap_stream(blob_body(
                    state.blobs.clone(),
                    digest,
                    size,
                )));
                result = match req.send().await {
                    Ok(r) if r.status() == StatusCode::CONFLICT => {
                        Err(Attempt::Refused(refusal(&what, r).await.message()))
                    }
                    other => {
                        let outcome = match other {
                            Ok(r) if !r.status().is_success() => Err(refusal(&what, r).await),
                            o => classify(&what, o).map(drop),
                        };
                        result = outcome;
                        break;
                    }
                };
            }
            if let Err(Attempt::Refused(msg)) = &result {
                let errors: Vec<String> = names.iter().map(|n| format!("{n}: {msg}")).collect();
                update_progress(&state, id, &sid, move |s| {
                    s.file_errors.extend(errors);
                    Ok(())
                })
                .await;
            }
            let done = names.clone();
            let ok = result.is_ok();
            let (nfiles, nbytes): (u64, u64) =
                (files.len() as u64, files.iter().map(|f| f.1).sum());
            update_progress(&state, id, &sid, move |s| {
                s.files_in_progress.retain(|f| !done.contains(f));
                if ok {
                    s.distributed_files += nfiles;
                    s.distributed_bytes += nbytes;
                    s.transferred_bytes += size;
                }
                Ok(())
            })
            .await;
            result.map(drop)
        }
    });
    let results: Vec<Result<(), Attempt>> = futures_util::stream::iter(sends)
        .buffer_unordered(PER_SITE_CONCURRENCY)
        .collect()
        .await;
    for r in results {
        r?;
    }

    // 3. Commit, and believe only a receipt that verifies. Past this point
    // an abort no longer stops the site: it ends as the edge says.
    flag.begin_commit(&sid)?;
    let res = call(
        "commit",
        state
            .http
            .post(format!("{base}/commit"))
            .bearer_auth(&token)
            .json(&body),
    )
    .await?;
    let answer: Value = res
        .json()
        .await
        .map_err(|e| Attempt::Transient(format!("commit: unreadable answer: {e}")))?;
    let sig = v
        .signature
        .as_ref()
        .ok_or_else(|| Attempt::Refused("the version has no signature".into()))?;
    let manifest = Sha256::of(sig.payload.as_bytes());
    let expected = crate::edge::receipt(
        &edge.pairing_token,
        v.name.as_str(),
        v.version.as_str(),
        &manifest,
    );
    let got = answer["receipt"].as_str().unwrap_or("");
    if answer["manifest_sha256"].as_str() != Some(manifest.to_hex().as_str())
        || !constant_time_eq(got.as_bytes(), expected.as_bytes())
    {
        return Err(Attempt::Refused(
            "commit: the edge's receipt does not verify".into(),
        ));
    }
    Ok(())
}

mod bytes_stream {
    //! A blob as a stream of chunks, for request bodies.
    use std::sync::Arc;

    use axum::body::Bytes;
    use futures_util::Stream;
    use waybill_core::digest::Sha256;
    use waybill_core::store::BlobStore;

    const CHUNK: u64 = 1 << 20;

    pub(super) fn blob_body(
        blobs: Arc<dyn BlobStore>,
        digest: Sha256,
        size: u64,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        futures_util::stream::unfold(0u64, move |at| {
            let blobs = blobs.clone();
            async move {
                if at >= size {
                    return None;
                }
                match blobs.read_range(&digest, at, CHUNK.min(size - at)).await {
                    Ok(b) if b.is_empty() => {
                        Some((Err(std::io::Error::other("blob ended early")), size))
                    }
                    Ok(b) => {
                        let next = at + b.len() as u64;
                        Some((Ok(Bytes::from(b)), next))
                    }
                    Err(e) => Some((Err(std::io::Error::other(e.to_string())), size)),
                }
            }
        })
    }
}

/// `PUT /api/v1/distribution/{name}/{version}/abort` (seed 003): 202 with
/// the edges the stop affected, as a bare array of `{name, service_id,
/// type}`; 204 when the version exists and nothing is in progress; 404 for
/// an unknown bundle or version. Only the sites the caller's destination
/// permissions allow are stopped.
pub(crate) async fn abort(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (name, version) = (BundleName::parse(name)?, BundleVersion::parse(version)?);
    state
        .security
        .require_bundle(&who, name.as_str(), Action::Distribute)
        .await?;
    let trackers = state
        .store
        .list_trackers(Some(&name), Some(&version))
        .await?;
    // A version the hub deleted can still have deletions from edges running.
    if trackers.is_empty() && state.store.get_version(&name, &version).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "release bundle {name}/{version} does not exist"
        )));
    }
    let open: Vec<&Tracker> = trackers
        .iter()
        .filter(|t| t.finished.is_none() && t.sites.iter().any(|s| !s.status.is_terminal()))
        .collect();
    // The in-progress sites, narrowed to those the caller may act on.
    let mut busy: Vec<EdgeSite> = Vec::new();
    let registered = state.sites.get(state.store.as_ref()).await?;
    for t in &open {
        for s in t.sites.iter().filter(|s| !s.status.is_terminal()) {
            if busy.iter().any(|b| b.service_id == s.service_id) {
                continue;
            }
            match registered
                .sites
                .iter()
                .find(|r| r.service_id == s.service_id)
            {
                Some(site) => busy.push(site.clone()),
                // Unregistered since: only an admin may stop it.
                None if who.admin => busy.push(EdgeSite {
                    service_id: s.service_id.clone(),
                    name: s.name.clone(),
                    city_name: String::new(),
                    country_code: String::new(),
                    url: String::new(),
                    pairing_token: waybill_core::auth::Secret::new(String::new()),
                    tags: vec![],
                    position: None,
                }),
                None => {}
            }
        }
    }
    if busy.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let allowed: std::collections::BTreeSet<String> = state
        .security
        .allowed_sites(&who, Action::Distribute, busy)
        .await?
        .into_iter()
        .map(|s| s.service_id.as_str().to_string())
        .collect();
    let mut affected: Vec<Value> = Vec::new();
    for t in open {
        let mine: std::collections::BTreeSet<String> = t
            .sites
            .iter()
            .filter(|s| !s.status.is_terminal() && allowed.contains(s.service_id.as_str()))
            .map(|s| s.service_id.as_str().to_string())
            .collect();
        if mine.is_empty() {
            continue;
        }
        let committing = state.running.cancel(t.id, &mine);
        let stop = mine.clone();
        state
            .store
            .update_tracker(
                t.id,
                Box::new(move |t| {
                    for s in t.sites.iter_mut().filter(|s| {
                        let id = s.service_id.as_str();
                        !s.status.is_terminal() && stop.contains(id) && !committing.contains(id)
                    }) {
                        s.apply(SiteEvent::Abort)?;
                    }
                    // Committing sites, and sites the caller may not stop,
                    // go on; the engine ends the tracker then.
                    if t.sites.iter().all(|s| s.status.is_terminal()) {
                        t.finished = Some(now_millis());
                    }
                    Ok(())
                }),
            )
            .await?;
        for s in t
            .sites
            .iter()
            .filter(|s| mine.contains(s.service_id.as_str()))
        {
            if !affected
                .iter()
                .any(|a| a["service_id"] == s.service_id.as_str())
            {
                affected.push(json!({"name": s.name, "service_id": s.service_id.as_str(), "type": EdgeSite::TYPE}));
            }
        }
    }
    tracing::info!(bundle = %format!("{name}/{version}"), sites = affected.len(), "distribution aborted");
    Ok((StatusCode::ACCEPTED, axum::Json(affected)).into_response())
}

#[derive(Deserialize)]
pub(crate) struct DeleteBody {
    #[serde(default)]
    dry_run: bool,
    distribution_rules: Vec<RuleDto>,
    #[serde(default)]
    on_success: Option<String>,
}

/// `POST /api/v1/distribution/{name}/{version}/delete`: removes the version
/// from the selected edges, tracked as `delete_release_bundle_version`.
pub(crate) async fn delete_from_edges(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((name, version)): Path<(String, String)>,
    Json(body): Json<DeleteBody>,
) -> Result<Response, ApiError> {
    let (name, version) = (BundleName::parse(name)?, BundleVersion::parse(version)?);
    state
        .security
        .require_bundle(&who, name.as_str(), Action::Delete)
        .await?;
    let delete_on_success = match body.on_success.as_deref().unwrap_or("keep") {
        "keep" => false,
        "delete" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "on_success must be keep or delete, not '{other}'"
            )));
        }
    };
    if body.distribution_rules.is_empty() {
        return Err(ApiError::bad_request(
            "distribution_rules must hold at least one rule; {} selects every site",
        ));
    }
    // The hub may have deleted the version already; its trackers still say
    // which edges may hold it, and removing it there needs only its name.
    let v = match state.store.get_version(&name, &version).await? {
        Some(v) => v,
        None if !state
            .store
            .list_trackers(Some(&name), Some(&version))
            .await?
            .is_empty() =>
        {
            ReleaseBundleVersion::new(
                name.clone(),
                version.clone(),
                now_millis(),
                who.name.clone(),
            )
        }
        None => {
            return Err(ApiError::not_found(format!(
                "release bundle {name}/{version} does not exist and was never distributed"
            )));
        }
    };
    let rules = rules_from(body.distribution_rules);
    let selected = select_sites(&state, &who, &rules, Action::Delete).await?;
    let refs: Vec<Value> = selected.iter().map(site_ref).collect();
    if body.dry_run {
        return Ok(axum::Json(json!({"id": 0, "sites": refs})).into_response());
    }
    let mut tracker = Tracker::new(
        TrackerKind::DeleteVersion,
        &v,
        rules,
        &selected,
        &who.name,
        now_millis(),
    );
    tracker.delete_on_success = delete_on_success;
    let tracker = state.store.create_tracker(tracker).await?;
    spawn(state.clone(), tracker.id);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"id": tracker.id, "sites": refs})),
    )
        .into_response())
}

// ---- status views ----------------------------------------------------------

fn tracker_json(t: &Tracker, friendly: usize) -> Value {
    let mut j = json!({
        "distribution_id": t.id,
        "distribution_friendly_id": friendly,
        "type": match t.kind { TrackerKind::Distribute => "distribute", TrackerKind::DeleteVersion => "delete_release_bundle_version" },
        "release_bundle_name": t.name.as_str(),
        "release_bundle_version": t.version.as_str(),
        "status": t.status().as_str(),
        "distribution_rules": t.rules.iter().map(|r| json!({
            "site_name": r.site_name.clone().unwrap_or_else(|| "*".into()),
            "city_name": r.city_name.clone().unwrap_or_else(|| "*".into()),
            "country_codes": if r.country_codes.is_empty() { vec!["*".to_string()] } else { r.country_codes.clone() },
        })).collect::<Vec<_>>(),
        "created_by": t.created_by,
        "distributed_by": t.created_by,
        "start_time": format_iso(t.created),
        "sites": t.sites.iter().map(|s| json!({
            "status": s.status.as_str(),
            "general_error": s.general_error,
            "target_artifactory": {"service_id": s.service_id.as_str(), "name": s.name, "type": EdgeSite::TYPE},
            "total_files": s.total_files,
            "total_bytes": s.total_bytes,
            "distributed_files": s.distributed_files,
            "distributed_bytes": s.distributed_bytes,
            "transferred_bytes": s.transferred_bytes,
            "file_errors": s.file_errors,
            "files_in_progress": s.files_in_progress,
        })).collect::<Vec<_>>(),
    });
    if let Some(done) = t.finished {
        j["finish_time"] = format_iso(done).into();
        j["duration"] = json!(done.saturating_sub(t.created));
    }
    j
}

/// Renders trackers with their per-version friendly ids (1, 2, … by id).
fn render(all_of_versions: &[Tracker], shown: impl Fn(&Tracker) -> bool) -> Vec<Value> {
    let mut out = Vec::new();
    for t in all_of_versions.iter().filter(|t| shown(t)) {
        let friendly = all_of_versions
            .iter()
            .filter(|o| o.name == t.name && o.version == t.version && o.id <= t.id)
            .count();
        out.push(tracker_json(t, friendly));
    }
    out
}

/// `GET /api/v1/release_bundle/distribution`.
pub(crate) async fn status_all(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    let all = state.store.list_trackers(None, None).await?;
    let readable = state.security.readable_bundles(&who).await?;
    Ok(axum::Json(render(&all, |t| readable(t.name.as_str()))).into_response())
}

/// `GET /api/v1/release_bundle/{name}/distribution`.
pub(crate) async fn status_bundle(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let name = BundleName::parse(name)?;
    state
        .security
        .require_bundle(&who, name.as_str(), Action::Read)
        .await?;
    let all = state.store.list_trackers(Some(&name), None).await?;
    Ok(axum::Json(render(&all, |_| true)).into_response())
}

/// `GET /api/v1/release_bundle/{name}/{version}/distribution`: 404 when the
/// version has no distributions, as after a completed delete from edges
/// (the JFrog CLI's sync delete waits for exactly that).
pub(crate) async fn status_version(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (name, version) = (BundleName::parse(name)?, BundleVersion::parse(version)?);
    state
        .security
        .require_bundle(&who, name.as_str(), Action::Read)
        .await?;
    let all = state
        .store
        .list_trackers(Some(&name), Some(&version))
        .await?;
    // History before a completed deletion from the edges is over for this
    // view (the bundle-wide views keep it).
    let since = all
        .iter()
        .filter(|t| {
            t.kind == TrackerKind::DeleteVersion
                && t.finished.is_some()
                && t.status() == SiteStatus::Completed
        })
        .map(|t| t.id)
        .max();
    let current = |t: &Tracker| since.is_none_or(|d| t.id > d);
    if !all.iter().any(current) {
        return Err(ApiError::not_found(format!(
            "release bundle {name}/{version} has no distributions"
        )));
    }
    Ok(axum::Json(render(&all, current)).into_response())
}

/// `GET /api/v1/release_bundle/{name}/{version}/distribution/{id}`: one object.
pub(crate) async fn status_tracker(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((name, version, id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (name, version) = (BundleName::parse(name)?, BundleVersion::parse(version)?);
    state
        .security
        .require_bundle(&who, name.as_str(), Action::Read)
        .await?;
    let id: TrackerId = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("tracker id must be a number, not '{id}'")))?;
    let all = state
        .store
        .list_trackers(Some(&name), Some(&version))
        .await?;
    let rendered = render(&all, |t| t.id == id);
    let one = rendered
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("no distribution {id} of {name}/{version}")))?;
    Ok(axum::Json(one).into_response())
}
