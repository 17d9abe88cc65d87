//! Distribution trackers: one per distribute or delete request, with a
//! progress record per target site.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::bundle::Millis;
use crate::name::{BundleName, BundleVersion};
use crate::rules::DistributionRule;
use crate::site::ServiceId;

/// The numeric id the JFrog client polls with.
pub type TrackerId = u64;

/// What a tracker does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrackerKind {
    /// Send a version to sites.
    Distribute,
    /// Remove a version from sites.
    DeleteVersion,
}

/// Per-site status, in JFrog's vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteStatus {
    /// Nothing started yet.
    NotDistributed,
    /// Waiting for a worker.
    InQueue,
    /// Transferring.
    InProgress,
    /// Done and verified.
    Completed,
    /// Gave up; `general_error` says why.
    Failed,
}

/// Progress of one tracker on one site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteProgress {
    /// The site's id.
    pub service_id: ServiceId,
    /// The site's name when the tracker was created.
    pub name: String,
    /// Current status.
    pub status: SiteStatus,
    /// Why it failed or is waiting, if it did or is.
    pub general_error: String,
    /// Files in the version.
    pub total_files: u64,
    /// Bytes in the version.
    pub total_bytes: u64,
    /// Files verified on the site so far.
    pub distributed_files: u64,
    /// Bytes verified on the site so far.
    pub distributed_bytes: u64,
    /// Per-file errors.
    pub file_errors: Vec<String>,
    /// Files being transferred now.
    pub files_in_progress: Vec<String>,
    /// Blob bytes actually sent to the site (content it already held is not sent).
    #[serde(default)]
    pub transferred_bytes: u64,
    /// Attempts that failed and were retried, so a restart keeps counting.
    #[serde(default)]
    pub attempts: u32,
    /// When the next attempt is due, while one is waiting (Unix millis), so
    /// a restart keeps the backoff.
    #[serde(default)]
    pub next_try: Option<Millis>,
}

/// A distribution tracker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracker {
    /// Numeric id; assigned by the store on creation.
    pub id: TrackerId,
    /// Distribute or delete.
    pub kind: TrackerKind,
    /// The bundle.
    pub name: BundleName,
    /// The version.
    pub version: BundleVersion,
    /// Rules as requested.
    pub rules: Vec<DistributionRule>,
    /// Who asked.
    pub created_by: String,
    /// When it was created.
    pub created: Millis,
    /// When it reached a terminal state.
    pub finished: Option<Millis>,
    /// One entry per target site.
    pub sites: Vec<SiteProgress>,
    /// Whether edges may create missing target repositories.
    #[serde(default)]
    pub auto_create: bool,
    /// Delete trackers only: delete the version on the hub once every site confirms.
    #[serde(default)]
    pub delete_on_success: bool,
}

impl SiteStatus {
    /// JFrog's title-case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SiteStatus::NotDistributed => "Not distributed",
            SiteStatus::InQueue => "In queue",
            SiteStatus::InProgress => "In progress",
            SiteStatus::Completed => "Completed",
            SiteStatus::Failed => "Failed",
        }
    }

    /// Whether nothing more will happen to the site.
    pub fn is_terminal(self) -> bool {
        matches!(self, SiteStatus::Completed | SiteStatus::Failed)
    }

    /// All statuses, for exhaustive tests.
    pub const ALL: [SiteStatus; 5] = [
        SiteStatus::NotDistributed,
        SiteStatus::InQueue,
        SiteStatus::InProgress,
        SiteStatus::Completed,
        SiteStatus::Failed,
    ];

    /// The one place site statuses change.
    pub fn apply(self, event: &SiteEvent) -> Result<SiteStatus, Error> {
        use SiteEvent as E;
        use SiteStatus as S;
        let refused = || {
            Error::Conflict(format!(
                "a site that is {} cannot take {}",
                self.as_str(),
                event.name()
            ))
        };
        Ok(match (self, event) {
            (S::NotDistributed | S::InQueue | S::InProgress, E::Start) => S::InProgress,
            (S::InProgress, E::Progress | E::Retry(_)) => S::InProgress,
            (S::InProgress, E::Complete) => S::Completed,
            (S::NotDistributed | S::InQueue | S::InProgress, E::Fail(_) | E::Abort) => S::Failed,
            _ => return Err(refused()),
        })
    }
}

/// Something that happens to one site of a tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteEvent {
    /// Work on the site starts (or resumes after a hub restart).
    Start,
    /// Bytes or files were verified on the site.
    Progress,
    /// An attempt failed and will be retried; the reason is shown meanwhile.
    Retry(String),
    /// The hub holds the edge's valid receipt.
    Complete,
    /// The site gave up.
    Fail(String),
    /// A user aborted the distribution.
    Abort,
}

impl SiteEvent {
    /// All events (with sample reasons), for exhaustive tests.
    pub fn all() -> [SiteEvent; 6] {
        [
            SiteEvent::Start,
            SiteEvent::Progress,
            SiteEvent::Retry("edge unreachable".into()),
            SiteEvent::Complete,
            SiteEvent::Fail("bad signature".into()),
            SiteEvent::Abort,
        ]
    }

    fn name(&self) -> &'static str {
        match self {
            SiteEvent::Start => "start",
            SiteEvent::Progress => "progress",
            SiteEvent::Retry(_) => "retry",
            SiteEvent::Complete => "complete",
            SiteEvent::Fail(_) => "fail",
            SiteEvent::Abort => "abort",
        }
    }
}

impl SiteProgress {
    /// Records a failed attempt, to be retried at `next_try`: the count and
    /// the due time are kept with the site, so backoff survives a restart.
    pub fn retry_at(&mut self, reason: String, next_try: Millis) -> Result<(), Error> {
        self.apply(SiteEvent::Retry(reason))?;
        self.attempts += 1;
        self.next_try = Some(next_try);
        Ok(())
    }

    /// Applies `event` to the site, keeping `general_error` in step with it.
    pub fn apply(&mut self, event: SiteEvent) -> Result<(), Error> {
        self.status = self.status.apply(&event)?;
        if self.status.is_terminal() {
            self.next_try = None;
        }
        match event {
            SiteEvent::Retry(reason) | SiteEvent::Fail(reason) => self.general_error = reason,
            SiteEvent::Abort => {
                self.general_error = "aborted".into();
                self.files_in_progress.clear();
            }
            SiteEvent::Complete => {
                self.general_error.clear();
                self.files_in_progress.clear();
            }
            SiteEvent::Start | SiteEvent::Progress => {}
        }
        Ok(())
    }
}

impl Tracker {
    /// A new tracker of `kind` for `version` over `sites`, every site in queue
    /// with the version's totals. The store assigns the id.
    pub fn new(
        kind: TrackerKind,
        version: &crate::bundle::ReleaseBundleVersion,
        rules: Vec<DistributionRule>,
        sites: &[crate::site::EdgeSite],
        created_by: &str,
        created: Millis,
    ) -> Tracker {
        Tracker {
            id: 0,
            kind,
            name: version.name.clone(),
            version: version.version.clone(),
            rules,
            created_by: created_by.into(),
            created,
            finished: None,
            sites: sites
                .iter()
                .map(|s| SiteProgress {
                    service_id: s.service_id.clone(),
                    name: s.name.clone(),
                    status: SiteStatus::InQueue,
                    general_error: String::new(),
                    total_files: version.artifacts.len() as u64,
                    total_bytes: version.total_size(),
                    distributed_files: 0,
                    distributed_bytes: 0,
                    file_errors: vec![],
                    files_in_progress: vec![],
                    transferred_bytes: 0,
                    attempts: 0,
                    next_try: None,
                })
                .collect(),
            auto_create: false,
            delete_on_success: false,
        }
    }

    /// The tracker's status, derived from its sites: in queue until work
    /// starts, in progress while any site is unfinished, then Failed if any
    /// site failed, else Completed.
    pub fn status(&self) -> SiteStatus {
        let all = |f: fn(SiteStatus) -> bool| self.sites.iter().all(|s| f(s.status));
        if self.sites.is_empty() || all(|s| s == SiteStatus::NotDistributed) {
            SiteStatus::NotDistributed
        } else if all(|s| matches!(s, SiteStatus::InQueue | SiteStatus::NotDistributed)) {
            SiteStatus::InQueue
        } else if !all(SiteStatus::is_terminal) {
            SiteStatus::InProgress
        } else if self.sites.iter().any(|s| s.status == SiteStatus::Failed) {
            SiteStatus::Failed
        } else {
            SiteStatus::Completed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_transition_table() {
        let mut table = String::new();
        for status in SiteStatus::ALL {
            for event in SiteEvent::all() {
                let outcome = match status.apply(&event) {
                    Ok(s) => s.as_str().to_string(),
                    Err(_) => "refused".into(),
                };
                table.push_str(&format!(
                    "{} + {}: {outcome}\n",
                    status.as_str(),
                    event.name()
                ));
            }
        }
        let expected = "\
Not distributed + start: In progress
Not distributed + progress: refused
Not distributed + retry: refused
Not distributed + complete: refused
Not distributed + fail: Failed
Not distributed + abort: Failed
In queue + start: In progress
In queue + progress: refused
In queue + retry: refused
In queue + complete: refused
In queue + fail: Failed
In queue + abort: Failed
In progress + start: In progress
In progress + progress: In progress
In progress + retry: In progress
In progress + complete: Completed
In progress + fail: Failed
In progress + abort: Failed
Completed + start: refused
Completed + progress: refused
Completed + retry: refused
Completed + complete: refused
Completed + fail: refused
Completed + abort: refused
Failed + start: refused
Failed + progress: refused
Failed + retry: refused
Failed + complete: refused
Failed + fail: refused
Failed + abort: refused
";
        assert_eq!(table, expected);
    }

    fn tracker(statuses: &[SiteStatus]) -> Tracker {
        let site = |s: SiteStatus| SiteProgress {
            service_id: ServiceId::parse("jfrt@01ARZ3NDEKTSV4RRFFQ69G5FAV").unwrap(),
            name: "e".into(),
            status: s,
            general_error: String::new(),
            total_files: 0,
            total_bytes: 0,
            distributed_files: 0,
            distributed_bytes: 0,
            file_errors: vec![],
            files_in_progress: vec![],
            transferred_bytes: 0,
            attempts: 0,
            next_try: None,
        };
        Tracker {
            id: 1,
            kind: TrackerKind::Distribute,
            name: BundleName::parse("a").unwrap(),
            version: BundleVersion::parse("1").unwrap(),
            rules: vec![],
            created_by: "x".into(),
            created: 0,
            finished: None,
            sites: statuses.iter().copied().map(site).collect(),
            auto_create: false,
            delete_on_success: false,
        }
    }

    #[test]
    fn tracker_status_is_derived_from_sites() {
        use SiteStatus::*;
        for (sites, expected) in [
            (vec![], NotDistributed),
            (vec![InQueue, InQueue], InQueue),
            (vec![InQueue, InProgress], InProgress),
            (vec![Completed, InQueue], InProgress),
            (vec![Completed, Completed], Completed),
            (vec![Completed, Failed], Failed),
            (vec![Failed, InProgress], InProgress),
        ] {
            assert_eq!(tracker(&sites).status(), expected, "{sites:?}");
        }
    }

    #[test]
    fn abort_and_failures_explain_themselves() {
        let mut t = tracker(&[SiteStatus::InProgress]);
        t.sites[0].files_in_progress.push("a.jar".into());
        t.sites[0]
            .apply(SiteEvent::Retry("edge unreachable".into()))
            .unwrap();
        assert_eq!(t.sites[0].general_error, "edge unreachable");
        t.sites[0].apply(SiteEvent::Abort).unwrap();
        assert_eq!(
            (t.sites[0].status, t.sites[0].general_error.as_str()),
            (SiteStatus::Failed, "aborted")
        );
        assert!(t.sites[0].files_in_progress.is_empty());
        assert!(
            t.sites[0].apply(SiteEvent::Complete).is_err(),
            "a failed site stays failed"
        );
    }

    #[test]
    fn retries_are_counted_with_their_due_time_until_the_site_ends() {
        let mut t = tracker(&[SiteStatus::InQueue]);
        let site = &mut t.sites[0];
        site.apply(SiteEvent::Start).unwrap();
        site.retry_at("edge unreachable; retrying".into(), 5_000)
            .unwrap();
        site.retry_at("edge unreachable; retrying".into(), 9_000)
            .unwrap();
        assert_eq!((site.attempts, site.next_try), (2, Some(9_000)));
        assert_eq!(site.general_error, "edge unreachable; retrying");
        site.apply(SiteEvent::Complete).unwrap();
        assert_eq!(site.next_try, None, "nothing is due for an ended site");
        assert!(
            site.retry_at("late".into(), 1).is_err(),
            "an ended site takes no retry"
        );
    }
}
