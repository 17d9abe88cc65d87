//! Release bundles: create, update, sign, read, list, delete and scan
//! versions, whichever wire asks.
//!
//! Signing also references every artifact into the storing repository
//! (default `release-bundles`) under `{name}/{version}/{target path}`: a
//! reference by checksum, so deleting the source file cannot break a
//! signed bundle, and the storing repository refuses ordinary deploys.

use std::sync::Arc;

use waybill_core::Error as CoreError;
use waybill_core::artifact::{Item, ItemKind, ItemPath, RepoKey, Repository};
use waybill_core::auth::Secret;
use waybill_core::bundle::{NotesSyntax, ReleaseBundleVersion, ReleaseNotes, Spec};
use waybill_core::digest::Checksums;
use waybill_core::gather::{check_target, gather, normalise_spec};
use waybill_core::name::{BundleName, BundleVersion, LATEST};
use waybill_core::permissions::Action;
use waybill_core::scan::ScanPolicy;
use waybill_core::signing::{BundleSignature, Signer};
use waybill_core::state::{After, VersionEvent, VersionState};
use waybill_core::store::{BlobStore, Expected, Page, Store};

use crate::epoch::{Change, Epoch};
use crate::keys::Keys;
use crate::security::Security;
use crate::source::Source;
use crate::{Clock, Error, Principal};

/// The setting holding the scan policy (JSON).
pub const SCAN_POLICY: &str = "scan.policy";
/// The package type of repositories Waybill creates to store bundles.
const RELEASE_BUNDLES_TYPE: &str = "releaseBundles";

/// Release notes as a request states them.
#[derive(Clone, Debug, Default)]
pub struct NotesRequest {
    /// `markdown`, `asciidoc` or `plain_text` (the default).
    pub syntax: Option<String>,
    /// The text; empty means no notes.
    pub content: String,
}

/// A version to create, or the new content of one being updated.
#[derive(Clone, Debug, Default)]
pub struct VersionRequest {
    /// The name the body states, if any: an update refuses another one.
    pub body_name: Option<String>,
    /// The version the body states, if any: an update refuses another one.
    pub body_version: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Release notes.
    pub release_notes: Option<NotesRequest>,
    /// Where signed versions are referenced; the default when `None`.
    pub storing_repository: Option<String>,
    /// The queries that gather the artifacts.
    pub spec: Spec,
    /// Sign it in the same call.
    pub sign_immediately: bool,
    /// Compute and answer it, store nothing.
    pub dry_run: bool,
}

/// A version as a create or update left it.
#[derive(Clone, Debug)]
pub struct Drafted {
    /// The version.
    pub version: ReleaseBundleVersion,
    /// Whether it was stored (false for a dry run).
    pub stored: bool,
}

/// Versions of one page, and how many there are in all.
#[derive(Clone, Debug)]
pub struct VersionPage {
    /// The page.
    pub items: Vec<ReleaseBundleVersion>,
    /// Versions in all, as far as the caller may see them.
    pub total: u64,
}

/// The release-bundle use-cases. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Bundles {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    security: Security,
    source: Source,
    keys: Keys,
    clock: Arc<dyn Clock>,
    /// Bumped by every write to a version, anywhere (see [`Bundles::change`]).
    epoch: Epoch,
    /// Held while a distribution is scheduled and while a version is
    /// deleted, so the two never interleave.
    version_guard: Arc<tokio::sync::Mutex<()>>,
}

fn description(raw: Option<String>) -> Result<String, Error> {
    use waybill_core::gather::limits::DESCRIPTION_BYTES;
    let d = raw.unwrap_or_default();
    if d.len() > DESCRIPTION_BYTES {
        return Err(Error::invalid(format!(
            "description is {} bytes; at most {DESCRIPTION_BYTES}",
            d.len()
        )));
    }
    Ok(d)
}

fn notes(raw: Option<NotesRequest>) -> Result<Option<ReleaseNotes>, Error> {
    use waybill_core::gather::limits::RELEASE_NOTES_BYTES;
    if let Some(n) = &raw
        && n.content.len() > RELEASE_NOTES_BYTES
    {
        return Err(Error::invalid(format!(
            "release_notes.content is {} bytes; at most {RELEASE_NOTES_BYTES}",
            n.content.len()
        )));
    }
    match raw {
        Some(n) if !n.content.is_empty() => Ok(Some(ReleaseNotes {
            syntax: NotesSyntax::parse(n.syntax.as_deref().unwrap_or("plain_text"))?,
            content: n.content,
        })),
        _ => Ok(None),
    }
}

fn spec(raw: Spec) -> Result<Spec, Error> {
    if raw.queries.is_empty() {
        return Err(Error::invalid("spec.queries must hold at least one query"));
    }
    Ok(normalise_spec(raw))
}

fn storing_path(v: &ReleaseBundleVersion) -> Result<ItemPath, Error> {
    Ok(ItemPath::parse(&format!("{}/{}", v.name, v.version))?)
}

impl Bundles {
    /// Release bundles over `store`, referencing content through `source`.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        security: Security,
        source: Source,
        keys: Keys,
        clock: Arc<dyn Clock>,
    ) -> Bundles {
        Bundles {
            store,
            blobs,
            security,
            source,
            keys,
            clock,
            epoch: Epoch::default(),
            version_guard: Arc::default(),
        }
    }

    /// The bundle epoch, which read caches stamp their entries with.
    pub fn epoch(&self) -> &Epoch {
        &self.epoch
    }

    /// Take before writing a version: read caches drop what they hold once
    /// the guard drops.
    pub fn change(&self) -> Change {
        self.epoch.change()
    }

    /// Held while a distribution is scheduled and while versions are
    /// deleted, so the two never interleave.
    pub fn version_guard(&self) -> &Arc<tokio::sync::Mutex<()>> {
        &self.version_guard
    }

    /// The version, or not found naming it.
    pub async fn existing(
        &self,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<ReleaseBundleVersion, Error> {
        self.store.get_version(name, version).await?.ok_or_else(|| {
            Error::not_found(format!("release bundle {name}/{version} does not exist"))
        })
    }

    /// Invalid unless `key` is absent (it will be created as a
    /// release-bundles repository) or already is one.
    pub async fn check_storing(&self, key: &RepoKey) -> Result<(), Error> {
        let system = crate::source::RESERVED_REPOS
            .iter()
            .filter(|r| **r != ReleaseBundleVersion::DEFAULT_STORING_REPOSITORY)
            .any(|r| r.eq_ignore_ascii_case(key.as_str()));
        let usable = match self.store.get_repository(key).await? {
            _ if system => false,
            Some(repo) => repo.read_only && repo.package_type == RELEASE_BUNDLES_TYPE,
            None => true,
        };
        if usable {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "storing_repository '{key}' is not a release-bundles repository; name '{}' or a repository that does not exist yet (it is created for release bundles)",
                ReleaseBundleVersion::DEFAULT_STORING_REPOSITORY
            )))
        }
    }

    /// The storing repository a request names, checked.
    async fn storing_key(&self, raw: Option<String>) -> Result<Option<RepoKey>, Error> {
        let Some(raw) = raw.filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let key =
            RepoKey::parse(raw).map_err(|e| Error::invalid(format!("storing_repository: {e}")))?;
        self.check_storing(&key).await?;
        Ok(Some(key))
    }

    /// The spec's artifacts, as far as the caller may read them: a file in a
    /// repository they cannot read refuses the spec (forbidden, naming the
    /// repository), as AQL would have hidden it.
    async fn gather_for(
        &self,
        who: &Principal,
        spec: &Spec,
    ) -> Result<Vec<waybill_core::bundle::BundleArtifact>, Error> {
        let may_read = self.security.readable_repositories(who).await?;
        Ok(gather(
            self.store.as_ref(),
            spec,
            self.clock.now_millis(),
            &may_read,
        )
        .await?)
    }

    async fn sign_version(
        &self,
        passphrase: &Secret,
        v: ReleaseBundleVersion,
    ) -> Result<BundleSignature, Error> {
        let signer: Box<dyn Signer> = Box::new(self.keys.unlock_default(passphrase).await?);
        let now = self.clock.now_millis();
        tokio::task::spawn_blocking(move || waybill_core::signing::sign(&v, signer.as_ref(), now))
            .await
            .map_err(|_| Error::internal("signing task failed"))?
            .map_err(Error::from)
    }

    /// `base` with `req`'s content: the spec checked and gathered as far as
    /// the caller may read, description, notes and storing repository, and
    /// a signature when `req` asks to sign at once. The one draft behind
    /// create and update.
    async fn draft(
        &self,
        who: &Principal,
        mut base: ReleaseBundleVersion,
        req: VersionRequest,
        passphrase: &Secret,
    ) -> Result<ReleaseBundleVersion, Error> {
        let spec = spec(req.spec)?;
        base.description = description(req.description)?;
        base.release_notes = notes(req.release_notes)?;
        if let Some(key) = self.storing_key(req.storing_repository).await? {
            base.storing_repository = key.to_string();
        }
        base.artifacts = self.gather_for(who, &spec).await?;
        base.spec = spec;
        if req.sign_immediately {
            base.signature = Some(self.sign_version(passphrase, base.clone()).await?);
        }
        Ok(base)
    }

    /// Creates version `name`/`version` from `req`; signs it too when asked,
    /// with the default key unlocked by `passphrase`.
    pub async fn create(
        &self,
        who: &Principal,
        name: &BundleName,
        version: &BundleVersion,
        req: VersionRequest,
        passphrase: &Secret,
    ) -> Result<Drafted, Error> {
        self.security
            .require_bundle(who, name.as_str(), Action::Write)
            .await?;
        if self.store.get_version(name, version).await?.is_some() {
            return Err(Error::conflict(format!(
                "release bundle {name}/{version} already exists"
            )));
        }
        let fresh = ReleaseBundleVersion::new(
            name.clone(),
            version.clone(),
            self.clock.now_millis(),
            who.name.clone(),
        );
        let dry_run = req.dry_run;
        let mut v = self.draft(who, fresh, req, passphrase).await?;
        if v.signature.is_some() {
            v.state = match v.state.apply(VersionEvent::Sign)? {
                After::State(s) => s,
                After::Deleted => VersionState::Open,
            };
        }
        if dry_run {
            return Ok(Drafted {
                version: v,
                stored: false,
            });
        }
        let _changed = self.change();
        match self.store.create_version(v.clone()).await {
            Ok(()) => {}
            Err(e) if e.kind() == waybill_core::StoreErrorKind::Conflict => {
                return Err(Error::conflict(format!(
                    "release bundle {} already exists",
                    v.label()
                )));
            }
            Err(e) => return Err(e.into()),
        }
        if v.state == VersionState::Signed {
            self.reference_artifacts(&v, &who.name).await?;
        }
        tracing::info!(bundle = %v.label(), artifacts = v.artifacts.len(), state = %v.state, "release bundle version created");
        Ok(Drafted {
            version: v,
            stored: true,
        })
    }

    /// Replaces an OPEN version's content with `req`; refuses if the version
    /// changed meanwhile, so nothing is lost to a concurrent write.
    pub async fn update(
        &self,
        who: &Principal,
        name: &BundleName,
        version: &BundleVersion,
        req: VersionRequest,
        passphrase: &Secret,
    ) -> Result<Drafted, Error> {
        self.security
            .require_bundle(who, name.as_str(), Action::Write)
            .await?;
        if req.body_name.as_deref().is_some_and(|n| n != name.as_str())
            || req
                .body_version
                .as_deref()
                .is_some_and(|n| n != version.as_str())
        {
            return Err(Error::invalid(
                "name and version come from the URL and cannot be changed",
            ));
        }
        let current = self.existing(name, version).await?;
        current.state.apply(VersionEvent::Update)?;
        let dry_run = req.dry_run;
        let next = self.draft(who, current.clone(), req, passphrase).await?;
        if dry_run {
            return Ok(Drafted {
                version: next,
                stored: false,
            });
        }
        let sign_now = next.signature.is_some();
        let _changed = self.change();
        let stored = self
            .store
            .update_version(
                name,
                version,
                Box::new(move |v| {
                    // Refuses if the version was signed in the meantime.
                    v.state.apply(VersionEvent::Update)?;
                    if v != &current {
                        return Err(CoreError::Conflict(
                            "the version changed during the update; retry it".into(),
                        ));
                    }
                    let mut n = next;
                    if sign_now && let After::State(s) = n.state.apply(VersionEvent::Sign)? {
                        n.state = s;
                    }
                    *v = n;
                    Ok(())
                }),
            )
            .await?;
        if stored.state == VersionState::Signed {
            self.reference_artifacts(&stored, &who.name).await?;
        }
        Ok(Drafted {
            version: stored,
            stored: true,
        })
    }

    /// Signs an OPEN version with the default key, in the storing
    /// repository `storing` names once the caller is authorized (the
    /// version's own when `None`); what is signed is what is stored.
    pub async fn sign(
        &self,
        who: &Principal,
        name: &BundleName,
        version: &BundleVersion,
        storing: impl FnOnce() -> Result<Option<String>, Error>,
        passphrase: &Secret,
    ) -> Result<ReleaseBundleVersion, Error> {
        self.security
            .require_bundle(who, name.as_str(), Action::Write)
            .await?;
        let storing = self.storing_key(storing()?).await?;
        let current = self.existing(name, version).await?;
        current.state.apply(VersionEvent::Sign)?;
        let mut to_sign = current.clone();
        if let Some(key) = &storing {
            to_sign.storing_repository = key.to_string();
        }
        for a in &to_sign.artifacts {
            check_target(&a.target_repo_path).map_err(Error::invalid)?;
        }
        let signature = self.sign_version(passphrase, to_sign.clone()).await?;
        let _changed = self.change();
        let stored = self
            .store
            .update_version(
                name,
                version,
                Box::new(move |v| {
                    let After::State(next) = v.state.apply(VersionEvent::Sign)? else {
                        return Ok(());
                    };
                    // What was signed must be what is stored.
                    if waybill_core::signing::canonical_payload(v) != signature.payload {
                        return Err(CoreError::Conflict(
                            "the version changed while it was being signed; sign again".into(),
                        ));
                    }
                    v.state = next;
                    v.storing_repository = to_sign.storing_repository;
                    v.signature = Some(signature);
                    Ok(())
                }),
            )
            .await?;
        self.reference_artifacts(&stored, &who.name).await?;
        tracing::info!(bundle = %stored.label(), "release bundle version signed");
        Ok(stored)
    }

    /// Forbidden unless the caller may read bundle `name`: wires that cache
    /// what they render check this before looking in their cache.
    pub async fn authorize_read(&self, who: &Principal, name: &BundleName) -> Result<(), Error> {
        self.security
            .require_bundle(who, name.as_str(), Action::Read)
            .await
    }

    /// Version `version` of `name` (or the latest, for `LATEST`).
    pub async fn get(
        &self,
        who: &Principal,
        name: &BundleName,
        version: &str,
    ) -> Result<ReleaseBundleVersion, Error> {
        self.authorize_read(who, name).await?;
        let v = if version == LATEST {
            self.store.latest_version(name).await?
        } else {
            self.store
                .get_version(name, &BundleVersion::parse(version)?)
                .await?
        };
        v.ok_or_else(|| Error::not_found(format!("release bundle {name}/{version} does not exist")))
    }

    /// Versions the caller may read, newest first: of bundle `name` (not
    /// found when it has none), or of every bundle.
    pub async fn list(
        &self,
        who: &Principal,
        name: Option<&BundleName>,
        page: Page,
    ) -> Result<VersionPage, Error> {
        if let Some(name) = name {
            self.authorize_read(who, name).await?;
            let page = self.store.list_versions(Some(name), page).await?;
            if page.total == 0 {
                return Err(Error::not_found(format!(
                    "release bundle '{name}' does not exist"
                )));
            }
            return Ok(VersionPage {
                items: page.items,
                total: page.total,
            });
        }
        if who.admin {
            let page = self.store.list_versions(None, page).await?;
            return Ok(VersionPage {
                items: page.items,
                total: page.total,
            });
        }
        // Only what the caller may read, paged after filtering so pages stay full.
        let readable = self.security.readable_bundles(who).await?;
        let all: Vec<ReleaseBundleVersion> = self
            .store
            .list_versions(None, Page::ALL)
            .await?
            .items
            .into_iter()
            .filter(|v| readable(v.name.as_str()))
            .collect();
        let total = all.len() as u64;
        let skip = usize::try_from(page.offset).unwrap_or(usize::MAX);
        let take = usize::try_from(page.limit).unwrap_or(usize::MAX);
        Ok(VersionPage {
            items: all.into_iter().skip(skip).take(take).collect(),
            total,
        })
    }

    /// Conflict naming the unfinished distributions (or deletions from
    /// edges) of `v`: deleting it under them would leave edges holding a
    /// version the hub no longer knows, or fail them half-way.
    async fn refuse_if_in_flight(&self, v: &ReleaseBundleVersion) -> Result<(), Error> {
        let busy: Vec<String> = self
            .store
            .list_trackers(Some(&v.name), Some(&v.version))
            .await?
            .into_iter()
            .filter(|t| t.finished.is_none())
            .map(|t| t.id.to_string())
            .collect();
        if busy.is_empty() {
            return Ok(());
        }
        Err(Error::conflict(format!(
            "release bundle {} has distribution {} in progress; wait for it or abort it \
             (PUT /api/v1/distribution/{}/{}/abort), then delete",
            v.label(),
            busy.join(", "),
            v.name,
            v.version
        )))
    }

    /// Deletes version `name`/`version` from the hub.
    pub async fn delete_version(
        &self,
        who: &Principal,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<(), Error> {
        self.security
            .require_bundle(who, name.as_str(), Action::Delete)
            .await?;
        // Held while checking and deleting: no distribution can start between.
        let _guard = self.version_guard.lock().await;
        let v = self.existing(name, version).await?;
        self.refuse_if_in_flight(&v).await?;
        let _changed = self.change();
        self.store.delete_version(name, version).await?;
        self.unreference(&v).await?;
        tracing::info!(bundle = %v.label(), "release bundle version deleted");
        Ok(())
    }

    /// Deletes every version of bundle `name`, or none when one is busy.
    pub async fn delete_bundle(&self, who: &Principal, name: &BundleName) -> Result<(), Error> {
        self.security
            .require_bundle(who, name.as_str(), Action::Delete)
            .await?;
        let _guard = self.version_guard.lock().await;
        let versions = self.store.list_versions(Some(name), Page::ALL).await?.items;
        if versions.is_empty() {
            return Err(Error::not_found(format!(
                "release bundle '{name}' does not exist"
            )));
        }
        // All or nothing: refuse before deleting any version.
        for v in &versions {
            self.refuse_if_in_flight(v).await?;
        }
        let _changed = self.change();
        for v in &versions {
            self.store.delete_version(&v.name, &v.version).await?;
            self.unreference(v).await?;
        }
        Ok(())
    }

    /// The scan policy (admin only).
    pub async fn scan_policy(&self, who: &Principal) -> Result<ScanPolicy, Error> {
        who.require_admin()?;
        self.load_policy().await
    }

    async fn load_policy(&self) -> Result<ScanPolicy, Error> {
        match self.store.get_setting(SCAN_POLICY).await? {
            None => Ok(ScanPolicy::default()),
            Some(raw) => serde_json::from_str(&raw).map_err(|e| {
                Error::internal(format!(
                    "the stored scan policy is unreadable ({e}); set it again"
                ))
            }),
        }
    }

    /// Replaces the scan policy (admin only).
    pub async fn set_scan_policy(
        &self,
        who: &Principal,
        policy: ScanPolicy,
    ) -> Result<ScanPolicy, Error> {
        who.require_admin()?;
        for c in &policy.blocked_checksums {
            waybill_core::digest::Sha256::parse_hex(c)?;
        }
        let raw = serde_json::to_string(&policy).map_err(|e| Error::invalid(e.to_string()))?;
        self.store.put_setting(SCAN_POLICY, &raw).await?;
        Ok(policy)
    }

    /// Runs the scan policy over every artifact of a version and stores the
    /// verdicts; a blocked version cannot be distributed.
    pub async fn scan(
        &self,
        who: &Principal,
        name: &BundleName,
        version: &BundleVersion,
    ) -> Result<ReleaseBundleVersion, Error> {
        self.security
            .require_bundle(who, name.as_str(), Action::Write)
            .await?;
        let policy = self.load_policy().await?;
        let _changed = self.change();
        let stored = self
            .store
            .update_version(
                name,
                version,
                Box::new(move |v| {
                    v.state.apply(VersionEvent::Scan)?;
                    for a in &mut v.artifacts {
                        a.scan = Some(policy.verdict(a));
                    }
                    Ok(())
                }),
            )
            .await?;
        if let Some(reason) = stored.blocked() {
            tracing::warn!(bundle = %stored.label(), %reason, "scan blocked the release bundle version");
        }
        Ok(stored)
    }

    // ---- the storing repository ------------------------------------------------

    /// Makes sure the storing repository exists and is a read-only
    /// release-bundles repository.
    async fn storing_repository(&self, key: &RepoKey) -> Result<(), Error> {
        self.check_storing(key).await?;
        if self.store.get_repository(key).await?.is_some() {
            return Ok(());
        }
        let repo = Repository {
            key: key.clone(),
            package_type: RELEASE_BUNDLES_TYPE.into(),
            description: "Signed release bundles (managed by Waybill)".into(),
            created: self.clock.now_millis(),
            read_only: true,
        };
        match self.store.create_repository(repo).await {
            Ok(()) => Ok(()),
            // Created concurrently: it must still be a release-bundles repository.
            Err(e) if e.kind() == waybill_core::StoreErrorKind::Conflict => {
                self.check_storing(key).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stores `data` as a blob and returns its checksums.
    async fn put_blob(&self, data: &[u8]) -> Result<Checksums, Error> {
        let mut w = self.blobs.writer().await?;
        w.write(data).await?;
        Ok(w.commit(Expected::default()).await?.checksums)
    }

    /// References every artifact into the storing repository by checksum,
    /// and stores the signed payload with its detached signature beside them
    /// (`release-bundle.json` and `release-bundle.json.asc`), where anyone
    /// can fetch and verify them. Idempotent, so a retry after a crash
    /// completes the set.
    pub async fn reference_artifacts(
        &self,
        v: &ReleaseBundleVersion,
        who: &str,
    ) -> Result<(), Error> {
        let key = RepoKey::parse(v.storing_repository.clone())?;
        self.storing_repository(&key).await?;
        let base = storing_path(v)?;
        // Held shared: no blob can be collected while its reference is written.
        let _content = self.source.content_lock().read().await;
        let now = self.clock.now_millis();
        let item = |path: &str,
                    size: u64,
                    sums: Checksums,
                    props: waybill_core::bundle::Props|
         -> Result<Item, Error> {
            Ok(Item {
                repo: key.clone(),
                path: base.join(path)?,
                kind: ItemKind::File,
                size,
                checksums: Some(sums),
                created: now,
                modified: now,
                created_by: who.to_string(),
                modified_by: who.to_string(),
                props,
            })
        };
        let mut items = Vec::with_capacity(v.artifacts.len() + 2);
        if let Some(sig) = &v.signature {
            for (name, data) in [
                ("release-bundle.json", sig.payload.as_bytes()),
                ("release-bundle.json.asc", sig.pgp_signature.as_bytes()),
            ] {
                let sums = self.put_blob(data).await?;
                items.push(item(name, data.len() as u64, sums, Default::default())?);
            }
        }
        for a in &v.artifacts {
            let known = self
                .store
                .find_items(&waybill_core::aql::ItemHint {
                    sha256: Some(a.checksum),
                    ..Default::default()
                })
                .await?;
            let sums = known.iter().find_map(|i| i.checksums).ok_or_else(|| {
                Error::conflict(format!(
                    "artifact '{}' is no longer in the source repository",
                    a.source_repo_path
                ))
            })?;
            items.push(item(&a.target_repo_path, a.size, sums, a.props.clone())?);
        }
        // One transaction: every reference or none, and one commit instead of
        // one per artifact (this runs on each distribution).
        self.store.commit_files(items).await?;
        Ok(())
    }

    /// Removes a version's references from its storing repository and frees
    /// blobs nothing else references.
    pub async fn unreference(&self, v: &ReleaseBundleVersion) -> Result<(), Error> {
        let Ok(key) = RepoKey::parse(v.storing_repository.clone()) else {
            return Ok(());
        };
        // Never delete from a repository that does not hold bundles (a
        // version stored before storing repositories were checked may name one).
        if self.check_storing(&key).await.is_err() {
            tracing::warn!(bundle = %v.label(), repo = %key, "storing repository is not a release-bundles repository; references left in place");
            return Ok(());
        }
        let removed = self.store.delete_item(&key, &storing_path(v)?).await?;
        self.source
            .collect_garbage(removed.iter().filter_map(Item::sha256))
            .await
    }
}
