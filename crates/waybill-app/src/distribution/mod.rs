//! Distribution: scheduling a version to the sites that rules select,
//! aborting it, deleting it from edges, and the tracker views; the engine
//! that does the work lives in [`engine`].
//!
//! A tracker is the durable job: created before anything is sent, updated
//! through `SiteProgress::apply` at every step, and resumed from the store
//! when the hub starts.

mod engine;

use std::collections::BTreeSet;
use std::sync::Arc;

use waybill_core::auth::Secret;
use waybill_core::bundle::ReleaseBundleVersion;
use waybill_core::name::{BundleName, BundleVersion};
use waybill_core::permissions::Action;
use waybill_core::rules::{DistributionRule, RuleSet};
use waybill_core::site::EdgeSite;
use waybill_core::state::VersionEvent;
use waybill_core::store::{BlobStore, Store};
use waybill_core::tracker::{SiteEvent, SiteStatus, Tracker, TrackerId, TrackerKind};

pub use engine::{RetryPolicy, Running};

use crate::bundles::Bundles;
use crate::security::Security;
use crate::sites::Sites;
use crate::{Clock, Error, Principal};

/// A distribution as a request states it.
#[derive(Clone, Debug, Default)]
pub struct DistributeRequest {
    /// The rules selecting sites; at least one.
    pub rules: Vec<DistributionRule>,
    /// Only say which sites would be selected.
    pub dry_run: bool,
    /// Whether edges may create target repositories they lack.
    pub auto_create: bool,
}

/// A deletion from edges as a request states it.
#[derive(Clone, Debug, Default)]
pub struct DeleteRequest {
    /// The rules selecting sites; at least one.
    pub rules: Vec<DistributionRule>,
    /// Only say which sites would be selected.
    pub dry_run: bool,
    /// `keep` (the default) or `delete`: also delete the version on the hub
    /// once every selected edge confirmed.
    pub on_success: Option<String>,
}

/// What a distribute or delete request scheduled.
#[derive(Clone, Debug)]
pub struct Scheduled {
    /// The tracker; `None` for a dry run.
    pub tracker: Option<TrackerId>,
    /// The selected sites.
    pub sites: Vec<EdgeSite>,
}

/// A tracker with its per-version ordinal (1, 2, … by id).
#[derive(Clone, Debug)]
pub struct TrackerView {
    /// The tracker.
    pub tracker: Tracker,
    /// Its place among the version's trackers.
    pub friendly_id: usize,
}

/// The distribution use-cases and engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Distribution {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    security: Security,
    bundles: Bundles,
    sites: Sites,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    running: Running,
    /// Sites delivered to at once, across trackers.
    site_slots: Arc<tokio::sync::Semaphore>,
}

/// Trackers with their per-version ordinals, those `shown` only.
fn views(all_of_versions: &[Tracker], shown: impl Fn(&Tracker) -> bool) -> Vec<TrackerView> {
    all_of_versions
        .iter()
        .filter(|t| shown(t))
        .map(|t| TrackerView {
            friendly_id: all_of_versions
                .iter()
                .filter(|o| o.name == t.name && o.version == t.version && o.id <= t.id)
                .count(),
            tracker: t.clone(),
        })
        .collect()
}

impl Distribution {
    /// Distribution over `store`, delivering through `sites`' transport.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        security: Security,
        bundles: Bundles,
        sites: Sites,
        clock: Arc<dyn Clock>,
        retry: RetryPolicy,
    ) -> Distribution {
        Distribution {
            store,
            blobs,
            security,
            bundles,
            sites,
            clock,
            retry,
            running: Running::default(),
            site_slots: Arc::new(tokio::sync::Semaphore::new(retry.site_concurrency.max(1))),
        }
    }

    /// The registered sites `rules` select and `who` may act on: invalid
    /// when the rules select none, forbidden naming them when none is allowed.
    async fn select_sites(
        &self,
        who: &Principal,
        rules: &[DistributionRule],
        action: Action,
    ) -> Result<Vec<EdgeSite>, Error> {
        let sites = self.sites.indexed().await?;
        let selected = sites.select(&RuleSet::new(rules));
        if selected.is_empty() {
            return Err(Error::invalid(format!(
                "the distribution rules match none of the {} registered edge sites",
                sites.sites.len()
            )));
        }
        self.security.allowed_sites(who, action, selected).await
    }

    /// Distributes a signed version to the sites `req.rules` select.
    pub async fn distribute(
        &self,
        who: &Principal,
        name: &BundleName,
        version: &BundleVersion,
        req: DistributeRequest,
    ) -> Result<Scheduled, Error> {
        self.security
            .require_bundle(who, name.as_str(), Action::Distribute)
            .await?;
        if req.rules.is_empty() {
            return Err(Error::invalid(
                "distribution_rules must hold at least one rule; {} selects every site",
            ));
        }
        // Held until the tracker exists: a hub delete then sees it and refuses.
        let _guard = self.bundles.version_guard().lock().await;
        let v = self.bundles.existing(name, version).await?;
        if v.signature.is_none() {
            return Err(Error::invalid(format!(
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
            return Err(Error::invalid(format!(
                "release bundle {} is blocked by the scan policy: {reason}",
                v.label()
            )));
        }
        let selected = self
            .select_sites(who, &req.rules, Action::Distribute)
            .await?;
        if req.dry_run {
            return Ok(Scheduled {
                tracker: None,
                sites: selected,
            });
        }
        // The hub must hold every blob it is about to send; references keep them.
        self.bundles.reference_artifacts(&v, &who.name).await?;
        let mut tracker = Tracker::new(
            TrackerKind::Distribute,
            &v,
            req.rules,
            &selected,
            &who.name,
            self.clock.now_millis(),
        );
        tracker.auto_create = req.auto_create;
        let tracker = self.store.create_tracker(tracker).await?;
        tracing::info!(bundle = %v.label(), tracker = tracker.id, sites = selected.len(), "distribution scheduled");
        self.spawn(tracker.id);
        Ok(Scheduled {
            tracker: Some(tracker.id),
            sites: selected,
        })
    }

    /// Removes a version from the sites `req.rules` select, tracked as a
    /// deletion; the hub may have deleted the version already.
    pub async fn delete_from_edges(
        &self,
        who: &Principal,
        name: &BundleName,
        version: &BundleVersion,
        req: DeleteRequest,
    ) -> Result<Scheduled, Error> {
        self.security
            .require_bundle(who, name.as_str(), Action::Delete)
            .await?;
        let delete_on_success = match req.on_success.as_deref().unwrap_or("keep") {
            "keep" => false,
            "delete" => true,
            other => {
                return Err(Error::invalid(format!(
                    "on_success must be keep or delete, not '{other}'"
                )));
            }
        };
        if req.rules.is_empty() {
            return Err(Error::invalid(
                "distribution_rules must hold at least one rule; {} selects every site",
            ));
        }
        // The hub may have deleted the version already; its trackers still say
        // which edges may hold it, and removing it there needs only its name.
        let v = match self.store.get_version(name, version).await? {
            Some(v) => v,
            None if !self
                .store
                .list_trackers(Some(name), Some(version))
                .await?
                .is_empty() =>
            {
                ReleaseBundleVersion::new(
                    name.clone(),
                    version.clone(),
                    self.clock.now_millis(),
                    who.name.clone(),
                )
            }
            None => {
                return Err(Error::not_found(format!(
                    "release bundle {name}/{version} does not exist and was never distributed"
                )));
            }
        };
        let selected = self.select_sites(who, &req.rules, Action::Delete).await?;
        if req.dry_run {
            return Ok(Scheduled {
                tracker: None,
                sites: selected,
            });
        }
        let mut tracker = Tracker::new(
            TrackerKind::DeleteVersion,
            &v,
            req.rules,
            &selected,
            &who.name,
            self.clock.now_millis(),
        );
        tracker.delete_on_success = delete_on_success;
        let tracker = self.store.create_tracker(tracker).await?;
        self.spawn(tracker.id);
        Ok(Scheduled {
            tracker: Some(tracker.id),
            sites: selected,
        })
    }

    /// Stops the unfinished distributions of a version on the sites the
    /// caller may act on; the sites it affected (none: nothing was running).
    /// Sites whose commit was already sent end as their edge says.
    pub async fn abort(
        &self,
        who: &Principal,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<Vec<EdgeSite>, Error> {
        self.security
            .require_bundle(who, name.as_str(), Action::Distribute)
            .await?;
        let trackers = self.store.list_trackers(Some(name), Some(version)).await?;
        // A version the hub deleted can still have deletions from edges running.
        if trackers.is_empty() && self.store.get_version(name, version).await?.is_none() {
            return Err(Error::not_found(format!(
                "release bundle {name}/{version} does not exist"
            )));
        }
        let open: Vec<&Tracker> = trackers
            .iter()
            .filter(|t| t.finished.is_none() && t.sites.iter().any(|s| !s.status.is_terminal()))
            .collect();
        // The in-progress sites, narrowed to those the caller may act on.
        let mut busy: Vec<EdgeSite> = Vec::new();
        let registered = self.sites.indexed().await?;
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
                        pairing_token: Secret::new(String::new()),
                        tags: vec![],
                        position: None,
                    }),
                    None => {}
                }
            }
        }
        if busy.is_empty() {
            return Ok(Vec::new());
        }
        let allowed: BTreeSet<String> = self
            .security
            .allowed_sites(who, Action::Distribute, busy.clone())
            .await?
            .into_iter()
            .map(|s| s.service_id.as_str().to_string())
            .collect();
        let mut affected: Vec<EdgeSite> = Vec::new();
        for t in open {
            let mine: BTreeSet<String> = t
                .sites
                .iter()
                .filter(|s| !s.status.is_terminal() && allowed.contains(s.service_id.as_str()))
                .map(|s| s.service_id.as_str().to_string())
                .collect();
            if mine.is_empty() {
                continue;
            }
            let committing = self.running.cancel(t.id, &mine);
            let stop = mine.clone();
            let now = self.clock.now_millis();
            self.store
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
                            t.finished = Some(now);
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
                if !affected.iter().any(|a| a.service_id == s.service_id)
                    && let Some(site) = busy.iter().find(|b| b.service_id == s.service_id)
                {
                    let mut site = site.clone();
                    // As the tracker knows it, whatever the registration says now.
                    site.name = s.name.clone();
                    affected.push(site);
                }
            }
        }
        tracing::info!(bundle = %format!("{name}/{version}"), sites = affected.len(), "distribution aborted");
        Ok(affected)
    }

    /// Every tracker of the bundles the caller may read.
    pub async fn trackers(&self, who: &Principal) -> Result<Vec<TrackerView>, Error> {
        let all = self.store.list_trackers(None, None).await?;
        let readable = self.security.readable_bundles(who).await?;
        Ok(views(&all, |t| readable(t.name.as_str())))
    }

    /// Every tracker of bundle `name`.
    pub async fn bundle_trackers(
        &self,
        who: &Principal,
        name: &BundleName,
    ) -> Result<Vec<TrackerView>, Error> {
        self.security
            .require_bundle(who, name.as_str(), Action::Read)
            .await?;
        let all = self.store.list_trackers(Some(name), None).await?;
        Ok(views(&all, |_| true))
    }

    /// The trackers of a version since its last completed deletion from the
    /// edges; not found when there are none (the JFrog CLI's synchronous
    /// delete waits for exactly that).
    pub async fn version_trackers(
        &self,
        who: &Principal,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<Vec<TrackerView>, Error> {
        self.security
            .require_bundle(who, name.as_str(), Action::Read)
            .await?;
        let all = self.store.list_trackers(Some(name), Some(version)).await?;
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
            return Err(Error::not_found(format!(
                "release bundle {name}/{version} has no distributions"
            )));
        }
        Ok(views(&all, current))
    }

    /// Tracker `id` of a version; `id` is parsed once the caller is authorized.
    pub async fn tracker(
        &self,
        who: &Principal,
        name: &BundleName,
        version: &BundleVersion,
        id: &str,
    ) -> Result<TrackerView, Error> {
        self.security
            .require_bundle(who, name.as_str(), Action::Read)
            .await?;
        let id: TrackerId = id
            .parse()
            .map_err(|_| Error::invalid(format!("tracker id must be a number, not '{id}'")))?;
        let all = self.store.list_trackers(Some(name), Some(version)).await?;
        views(&all, |t| t.id == id)
            .into_iter()
            .next()
            .ok_or_else(|| Error::not_found(format!("no distribution {id} of {name}/{version}")))
    }
}
