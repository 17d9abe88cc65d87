//! The edge node's domain: what an edge does when its hub delivers a signed
//! release bundle, whatever carries the calls (HTTP in production, a direct
//! call in [`local`]).
//!
//! A delivery is three calls:
//! 1. [`Edge::prepare`]: verify the bundle's OpenPGP signature with the
//!    hub's public key and answer which blobs are missing;
//! 2. [`Edge::receive_blob`]: receive a missing blob, verified as it arrives;
//! 3. [`Edge::commit`]: verify the signature and every blob again, make all
//!    the artifacts visible in one store transaction, record the bundle,
//!    and answer with a receipt: an HMAC of the committed manifest's digest
//!    under the pairing token, which the hub checks before it reports the
//!    site Completed.
//!
//! Only the signed payload is trusted: artifact paths, sizes, checksums and
//! properties are read from it, never from the rest of the request.

pub mod local;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use waybill_app::delivery::{Committed, SignedBundle};
use waybill_app::epoch::Epoch;
use waybill_app::source::Source;
use waybill_app::{Clock, Error};
use waybill_core::StoreErrorKind;
use waybill_core::artifact::{Item, ItemKind, ItemPath, RepoKey, Repository};
use waybill_core::auth::{Secret, constant_time_eq};
use waybill_core::bundle::{BundleArtifact, Props, ReleaseBundleVersion};
use waybill_core::digest::{Checksums, Ingest, Md5, Sha1, Sha256};
use waybill_core::gather::check_target;
use waybill_core::name::{BundleName, BundleVersion};
use waybill_core::signing::{BundleSignature, JwsAlg};
use waybill_core::site::ServiceId;
use waybill_core::state::VersionState;
use waybill_core::store::{BlobStore, Expected, Store};

/// Where the hub's public signing key is kept on an edge.
const HUB_KEY: &str = "edge.hub_public_key";
/// Prefix of the settings that remember a received blob's SHA-1 and MD5.
const SUMS: &str = "edge.checksums.";
/// Received content is written in chunks of this size.
const WRITE_CHUNK: usize = 1 << 20;

/// What an edge is.
#[derive(Clone, Debug)]
pub struct EdgeConfig {
    /// Site name, matched by `site_name` rules.
    pub site_name: String,
    /// City, matched by `city_name` rules.
    pub city: String,
    /// ISO country code, matched by `country_codes` rules.
    pub country: String,
    /// The secret the hub must present.
    pub pairing_token: Secret,
}

/// Who an edge says it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeInfo {
    /// Its service id, `jfrt@<ulid>`.
    pub service_id: ServiceId,
    /// Site name.
    pub site_name: String,
    /// City.
    pub city: String,
    /// Country code.
    pub country: String,
}

/// What a prepare found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// Blobs the edge lacks, each once, in payload order.
    pub missing: Vec<Sha256>,
    /// Files in the bundle.
    pub files: usize,
}

/// What a commit did: the receipt, and how many files it made visible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitOutcome {
    /// The receipt the hub checks.
    pub committed: Committed,
    /// Files in the bundle.
    pub files: usize,
}

/// What a removal did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Removed {
    /// Files removed.
    pub removed_files: u64,
    /// Whether the edge held the version at all.
    pub held: bool,
}

/// An edge node. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Edge {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    source: Source,
    clock: Arc<dyn Clock>,
    /// Bumped by every write to a version (read caches stamp with it).
    epoch: Epoch,
    service_id: ServiceId,
    config: Arc<EdgeConfig>,
}

#[derive(Deserialize)]
struct PayloadArtifact {
    checksum: String,
    size: u64,
    source_repo_path: String,
    target_repo_path: String,
    #[serde(default)]
    props: Vec<PayloadProp>,
}

#[derive(Deserialize)]
struct PayloadProp {
    key: String,
    values: Vec<String>,
}

#[derive(Deserialize)]
struct Payload {
    name: String,
    version: String,
    artifacts: Vec<PayloadArtifact>,
}

/// An artifact as the signed payload describes it.
struct Wanted {
    sha256: Sha256,
    size: u64,
    source: String,
    repo: RepoKey,
    path: ItemPath,
    props: Props,
}

impl Edge {
    /// An edge over `store` and `blobs`, whose content `source` guards;
    /// `epoch` is bumped by every write to a version.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        source: Source,
        clock: Arc<dyn Clock>,
        epoch: Epoch,
        service_id: ServiceId,
        config: EdgeConfig,
    ) -> Edge {
        Edge {
            store,
            blobs,
            source,
            clock,
            epoch,
            service_id,
            config: Arc::new(config),
        }
    }

    /// The edge's configuration.
    pub fn config(&self) -> &EdgeConfig {
        &self.config
    }

    /// Unauthenticated unless `presented` is this edge's pairing token
    /// (compared in constant time).
    pub fn authorize(&self, presented: &str) -> Result<(), Error> {
        if presented.is_empty()
            || !constant_time_eq(
                presented.as_bytes(),
                self.config.pairing_token.expose().as_bytes(),
            )
        {
            return Err(Error::unauthenticated(
                "only this edge's paired hub may call its distribution API",
            ));
        }
        Ok(())
    }

    /// Who this edge is.
    pub fn info(&self) -> EdgeInfo {
        EdgeInfo {
            service_id: self.service_id.clone(),
            site_name: self.config.site_name.clone(),
            city: self.config.city.clone(),
            country: self.config.country.clone(),
        }
    }

    /// Installs the hub's public signing key; its key id.
    pub async fn install_key(&self, public_key: &str) -> Result<String, Error> {
        let key = public_key.to_string();
        let info =
            tokio::task::spawn_blocking(move || waybill_pgp::parse_public(&key).map(|(_, i)| i))
                .await
                .map_err(|_| Error::internal("key check failed"))??;
        self.store.put_setting(HUB_KEY, public_key).await?;
        tracing::info!(key_id = %info.key_id, "hub signing key installed");
        Ok(info.key_id)
    }

    /// Verifies the signature with the hub's key and reads the signed payload.
    async fn verified(&self, b: &SignedBundle) -> Result<Vec<Wanted>, Error> {
        let key = self.store.get_setting(HUB_KEY).await?.ok_or_else(|| {
            Error::invalid("this edge holds no signing key from its hub; propagate the key to it")
        })?;
        let (payload, sig) = (b.payload.clone(), b.pgp_signature.clone());
        tokio::task::spawn_blocking(move || {
            waybill_pgp::verify_detached(&key, payload.as_bytes(), &sig)
        })
        .await
        .map_err(|_| Error::internal("verification failed"))?
        .map_err(|e| {
            Error::invalid(format!(
                "the bundle's signature does not verify with the hub's key: {e}"
            ))
        })?;
        let p: Payload = serde_json::from_str(&b.payload)
            .map_err(|e| Error::invalid(format!("signed payload: {e}")))?;
        if p.name != b.name || p.version != b.version {
            return Err(Error::invalid(
                "the signed payload names another bundle version",
            ));
        }
        p.artifacts
            .into_iter()
            .map(|a| {
                let (repo, path) = check_target(&a.target_repo_path).map_err(|why| {
                    Error::invalid(format!("artifact '{}' maps to {why}", a.source_repo_path))
                })?;
                Ok(Wanted {
                    sha256: Sha256::parse_hex(&a.checksum)?,
                    size: a.size,
                    source: a.source_repo_path,
                    repo,
                    path,
                    props: a.props.into_iter().map(|p| (p.key, p.values)).collect(),
                })
            })
            .collect()
    }

    /// Verifies a signed bundle and lists the blobs this edge lacks.
    pub async fn prepare(&self, b: &SignedBundle) -> Result<Prepared, Error> {
        let wanted = self.verified(b).await?;
        let held = self.held_blobs(&wanted).await?;
        let mut missing: Vec<Sha256> = Vec::new();
        for w in &wanted {
            if !held.contains_key(&w.sha256) && !missing.contains(&w.sha256) {
                missing.push(w.sha256);
            }
        }
        Ok(Prepared {
            missing,
            files: wanted.len(),
        })
    }

    /// Receives a blob that must hash to `expected`; `vouched` are its SHA-1
    /// and MD5 as the hub knows them (the SHA-256 check proves these are its
    /// bytes, so only SHA-256 is computed; see `Ingest::vouched`). Content
    /// that does not match is a conflict, and is never visible.
    pub async fn receive_blob<S, E>(
        &self,
        expected: Sha256,
        vouched: Option<(Sha1, Md5)>,
        body: S,
    ) -> Result<(Sha256, u64), Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Error>,
    {
        let ingest = match vouched {
            Some((sha1, md5)) => Ingest::vouched(sha1, md5),
            None => Ingest::new(),
        };
        let mut writer = self.blobs.writer_with(ingest).await?;
        let mut body = std::pin::pin!(body);
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk.map_err(Into::into)?);
            if buf.len() >= WRITE_CHUNK {
                writer.write(&buf).await?;
                buf.clear();
            }
        }
        if !buf.is_empty() {
            writer.write(&buf).await?;
        }
        let info = writer
            .commit(Expected::sha256(expected))
            .await
            .map_err(|e| match e.kind() {
                StoreErrorKind::Corrupt => Error::conflict(e.detail().to_string()),
                _ => e.into(),
            })?;
        let sums = format!("{} {}", info.checksums.sha1, info.checksums.md5);
        self.store
            .put_setting(&format!("{SUMS}{}", info.digest), &sums)
            .await?;
        Ok((info.digest, info.size))
    }

    /// The blobs of `wanted` this edge holds whole, with their full checksums.
    ///
    /// A blob counts as held only with its checksums recorded: a receipt cut
    /// short between the two (the hub died mid-request) is sent again. Blobs
    /// are stated a few at a time and their checksums read in one batch
    /// (`get_settings`), so the cost follows the bundle, not everything the
    /// edge holds: a re-distribution of unchanged content is exactly this work.
    async fn held_blobs(&self, wanted: &[Wanted]) -> Result<HashMap<Sha256, Checksums>, Error> {
        let mut unique: Vec<(Sha256, u64)> = wanted.iter().map(|w| (w.sha256, w.size)).collect();
        unique.sort_unstable_by_key(|u| u.0);
        unique.dedup();
        let stats = unique.into_iter().map(|(digest, size)| async move {
            Ok::<_, Error>((self.blobs.stat(&digest).await? == Some(size)).then_some(digest))
        });
        let whole: Vec<Sha256> = futures_util::stream::iter(stats)
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .filter_map(Result::transpose)
            .collect::<Result<_, _>>()?;
        let keys: Vec<String> = whole.iter().map(|d| format!("{SUMS}{d}")).collect();
        let recorded = self.store.get_settings(&keys).await?;
        let mut held = HashMap::new();
        for (digest, raw) in whole.into_iter().zip(recorded) {
            let sums = match raw.as_deref().and_then(|raw| raw.split_once(' ')) {
                Some((sha1, md5)) => Some(Checksums {
                    sha256: digest,
                    sha1: Sha1::parse_hex(sha1)?,
                    md5: Md5::parse_hex(md5)?,
                }),
                None => self.checksums_of(digest).await?,
            };
            if let Some(sums) = sums {
                held.insert(digest, sums);
            }
        }
        Ok(held)
    }

    /// The full checksums of a stored blob, taken from a file that already
    /// holds the content.
    async fn checksums_of(&self, sha256: Sha256) -> Result<Option<Checksums>, Error> {
        let known = self
            .store
            .find_items(&waybill_core::aql::ItemHint {
                sha256: Some(sha256),
                ..Default::default()
            })
            .await?;
        Ok(known.into_iter().find_map(|i| i.checksums))
    }

    /// Verifies the bundle and every blob again, makes all its artifacts
    /// visible in one transaction, records the bundle, and answers with the
    /// receipt.
    pub async fn commit(&self, b: &SignedBundle) -> Result<CommitOutcome, Error> {
        let wanted = self.verified(b).await?;
        let now = self.clock.now_millis();
        // Target repositories: create them when allowed, else refuse by name.
        let mut repos: Vec<RepoKey> = wanted.iter().map(|w| w.repo.clone()).collect();
        repos.sort();
        repos.dedup();
        for repo in &repos {
            if self.store.get_repository(repo).await?.is_some() {
                continue;
            }
            if !b.auto_create_missing_repositories {
                return Err(Error::invalid(format!(
                    "repository '{repo}' does not exist on edge '{}'; create it there or distribute with auto_create_missing_repositories",
                    self.config.site_name
                )));
            }
            let r = Repository {
                key: repo.clone(),
                package_type: "generic".into(),
                description: "created by distribution".into(),
                created: now,
                read_only: false,
            };
            if let Err(e) = self.store.create_repository(r).await
                && e.kind() != StoreErrorKind::Conflict
            {
                return Err(e.into());
            }
        }
        // Every blob again, under the content lock so none is collected meanwhile.
        let content = self.source.content_lock().read().await;
        let held = self.held_blobs(&wanted).await?;
        let mut items = Vec::with_capacity(wanted.len());
        for w in &wanted {
            let sums = *held.get(&w.sha256).ok_or_else(|| {
                Error::conflict(format!(
                    "content of '{}' ({}) has not arrived whole, or its checksums are unknown; send the blob again",
                    w.source, w.sha256
                ))
            })?;
            items.push(Item {
                repo: w.repo.clone(),
                path: w.path.clone(),
                kind: ItemKind::File,
                size: w.size,
                checksums: Some(sums),
                created: now,
                modified: now,
                created_by: "distribution".into(),
                modified_by: "distribution".into(),
                props: w.props.clone(),
            });
        }
        let replaced = self
            .store
            .commit_files(items)
            .await
            .map_err(|e| match e.kind() {
                StoreErrorKind::Conflict => Error::conflict(e.to_string()),
                _ => e.into(),
            })?;
        drop(content);
        let freed: Vec<Sha256> = replaced.iter().filter_map(Item::sha256).collect();
        self.source.collect_garbage(freed).await?;
        self.record_bundle(b, &wanted, now).await?;
        let manifest = Sha256::of(b.payload.as_bytes());
        tracing::info!(bundle = %format!("{}/{}", b.name, b.version), files = wanted.len(), "bundle committed");
        Ok(CommitOutcome {
            committed: Committed {
                manifest_sha256: manifest.to_hex(),
                receipt: waybill_core::site::receipt(
                    &self.config.pairing_token,
                    &b.name,
                    &b.version,
                    &manifest,
                ),
            },
            files: wanted.len(),
        })
    }

    /// Removes a received version: its files, unless another version
    /// received here still lists the same path, and then the blobs nothing
    /// references.
    pub async fn remove(&self, name: &str, version: &str) -> Result<Removed, Error> {
        let (name, version) = (BundleName::parse(name)?, BundleVersion::parse(version)?);
        let Some(v) = self.store.get_version(&name, &version).await? else {
            return Ok(Removed {
                removed_files: 0,
                held: false,
            });
        };
        let others = self
            .store
            .list_versions(None, waybill_core::store::Page::ALL)
            .await?
            .items;
        let still_needed = |target: &str| {
            others
                .iter()
                .filter(|o| !(o.name == v.name && o.version == v.version))
                .any(|o| o.artifacts.iter().any(|a| a.target_repo_path == target))
        };
        // Only what this version put there (newer content at a path stays),
        // all in one transaction: a reader sees the whole version go at once.
        let doomed: Vec<_> = v
            .artifacts
            .iter()
            .filter(|a| !still_needed(&a.target_repo_path))
            .filter_map(|a| {
                check_target(&a.target_repo_path)
                    .ok()
                    .map(|(repo, path)| (repo, path, a.checksum))
            })
            .collect();
        let gone = self.store.remove_files(doomed).await?;
        let removed = gone.len() as u64;
        let freed: Vec<_> = gone.iter().filter_map(Item::sha256).collect();
        let _changed = self.epoch.change();
        self.store.delete_version(&name, &version).await?;
        self.source.collect_garbage(freed).await?;
        tracing::info!(bundle = %v.label(), removed, "bundle removed from this edge");
        Ok(Removed {
            removed_files: removed,
            held: true,
        })
    }

    /// Remembers the received version (signed, as the hub signed it).
    async fn record_bundle(
        &self,
        b: &SignedBundle,
        wanted: &[Wanted],
        now: u64,
    ) -> Result<(), Error> {
        let mut v = ReleaseBundleVersion::new(
            BundleName::parse(b.name.clone())?,
            BundleVersion::parse(b.version.clone())?,
            now,
            "distribution",
        );
        v.state = VersionState::Signed;
        v.artifacts = wanted
            .iter()
            .map(|w| BundleArtifact {
                checksum: w.sha256,
                source_repo_path: w.source.clone(),
                target_repo_path: format!("{}/{}", w.repo, w.path),
                size: w.size,
                props: w.props.clone(),
                scan: None,
            })
            .collect();
        v.signature = Some(BundleSignature {
            key_id: String::new(),
            alg: JwsAlg::RS256,
            payload: b.payload.clone(),
            jws_header: String::new(),
            jws_signature: String::new(),
            pgp_signature: b.pgp_signature.clone(),
            signed: now,
        });
        let _changed = self.epoch.change();
        match self.store.create_version(v).await {
            Ok(()) => Ok(()),
            // Received before: the committed files above already match it.
            Err(e) if e.kind() == StoreErrorKind::Conflict => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
