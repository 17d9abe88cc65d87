//! Release-bundle metadata migration between hubs (seed 003, "Import &
//! Export"), admin only: list the source ids that hold bundles, export one
//! source's v1 versions as a zip, and import such a zip on another hub.
//!
//! A source id names the source repository a version was made from. A
//! version made here belongs to this hub's own source, `jfrt@<the hub's
//! ulid>`; an imported one keeps the id it was exported under, so a hub
//! split in two can be exported again per source.
//!
//! The archive holds `manifest.json`, one `versions/NNNN.json` per version
//! (the stored record: spec, artifacts, state, and the signed bytes with
//! both signatures) and `keys/<key id>.asc`, the public keys that verify
//! them. Private keys never leave the hub.
//!
//! An import checks everything before it writes anything: each signed
//! version's canonical payload must equal its signed bytes, and both its
//! OpenPGP and JWS signatures must verify with the archive's key of that id
//! (itself checked to carry that id). A version already present with the
//! same content is skipped, so an import can run twice; one that differs is
//! a 409. Signed bytes are stored verbatim, so `GET …?format=jws` answers
//! the same bytes on both hubs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use waybill_core::bundle::ReleaseBundleVersion;
use waybill_core::keys::SigningKey;
use waybill_core::signing::canonical_payload;
use waybill_core::site::ServiceId;
use waybill_core::state::VersionState;
use waybill_core::store::{Page, Store};
use waybill_core::time::format_iso;

use crate::bundles::Bundles;
use crate::{Clock, Error, Principal};

/// What an archive says it is.
const FORMAT: &str = "waybill-migration/1";
/// The most an uploaded archive may hold.
pub const IMPORT_LIMIT: usize = 256 << 20;
/// The most one archive entry may expand to.
const ENTRY_LIMIT: u64 = 64 << 20;

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    source_id: String,
    exported_from: String,
    exported_at: String,
    versions: Vec<Entry>,
    keys: Vec<KeyEntry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    version: String,
    file: String,
}

#[derive(Serialize, Deserialize)]
struct KeyEntry {
    key_id: String,
    file: String,
}

/// A source id with what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceCount {
    /// The source id.
    pub source_id: String,
    /// Whether it is this hub's own source.
    pub local: bool,
    /// Bundles with a version from it.
    pub release_bundles: usize,
    /// Versions from it.
    pub versions: usize,
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The archive's source id.
    pub source_id: String,
    /// Versions created.
    pub imported: usize,
    /// Versions this hub held already, with the same content.
    pub already_present: usize,
    /// Public keys added.
    pub keys_added: usize,
}

/// The migration use-cases (admin only). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Migration {
    store: Arc<dyn Store>,
    bundles: Bundles,
    service_id: ServiceId,
    clock: Arc<dyn Clock>,
}

/// Source ids are ours (`jfrt@<ulid>`) or an Artifactory instance id
/// such as `DEV_Art01`: short, and safe in a URL and a file name.
fn check_source_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "source id '{id}' must be 1 to 128 letters, digits, '@', '.', '_' or '-'"
        )))
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec_pretty(v).map_err(|e| Error::internal(e.to_string()))
}

/// What an archive holds, read and checked, before anything is written.
struct Checked {
    source: String,
    versions: Vec<ReleaseBundleVersion>,
    keys: Vec<(String, String)>,
}

fn read_entry(
    zip: &mut zip::ZipArchive<std::io::Cursor<Bytes>>,
    name: &str,
) -> Result<Vec<u8>, Error> {
    let entry = zip
        .by_name(name)
        .map_err(|_| Error::invalid(format!("the archive has no entry '{name}'")))?;
    let mut out = Vec::new();
    entry
        .take(ENTRY_LIMIT + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::invalid(format!("archive entry '{name}' is unreadable: {e}")))?;
    if out.len() as u64 > ENTRY_LIMIT {
        return Err(Error::invalid(format!(
            "archive entry '{name}' is over {ENTRY_LIMIT} bytes"
        )));
    }
    Ok(out)
}

/// Reads the archive and verifies every signature in it (CPU-bound).
fn check_archive(bytes: Bytes, own: &str) -> Result<Checked, Error> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| Error::invalid(format!("the body is not a zip archive: {e}")))?;
    let manifest: Manifest = serde_json::from_slice(&read_entry(&mut zip, "manifest.json")?)
        .map_err(|e| Error::invalid(format!("manifest.json: {e}")))?;
    if manifest.format != FORMAT {
        return Err(Error::invalid(format!(
            "the archive's format is '{}'; this hub reads '{FORMAT}'",
            manifest.format
        )));
    }
    check_source_id(&manifest.source_id)?;
    let mut keys = BTreeMap::new();
    for k in &manifest.keys {
        let public = String::from_utf8(read_entry(&mut zip, &k.file)?)
            .map_err(|_| Error::invalid(format!("{} is not text", k.file)))?;
        let (_, info) = waybill_pgp::parse_public(&public)
            .map_err(|e| Error::invalid(format!("{}: {e}", k.file)))?;
        if info.key_id != k.key_id {
            return Err(Error::invalid(format!(
                "{} holds key {}, not {} as the manifest says",
                k.file, info.key_id, k.key_id
            )));
        }
        keys.insert(k.key_id.clone(), public);
    }
    let mut versions = Vec::new();
    let mut seen = BTreeSet::new();
    for e in &manifest.versions {
        let label = format!("{}/{}", e.name, e.version);
        let mut v: ReleaseBundleVersion =
            serde_json::from_slice(&read_entry(&mut zip, &e.file)?)
                .map_err(|err| Error::invalid(format!("{} ({label}): {err}", e.file)))?;
        if v.name.as_str() != e.name || v.version.as_str() != e.version {
            return Err(Error::invalid(format!(
                "{} holds {}, not {label} as the manifest says",
                e.file,
                v.label()
            )));
        }
        if !seen.insert(label.clone()) {
            return Err(Error::invalid(format!("{label} is in the archive twice")));
        }
        check_content(&v).map_err(|why| Error::invalid(format!("{label}: {why}")))?;
        match (&v.signature, v.state) {
            (None, VersionState::Open) => {}
            (None, state) => {
                return Err(Error::invalid(format!(
                    "{label} is {state} but carries no signature"
                )));
            }
            (Some(sig), _) => {
                if canonical_payload(&v) != sig.payload {
                    return Err(Error::invalid(format!(
                        "{label}: the version's content differs from the bytes its signature covers"
                    )));
                }
                let public = keys.get(&sig.key_id).ok_or_else(|| {
                    Error::invalid(format!(
                        "{label} is signed by key {}, which the archive does not hold",
                        sig.key_id
                    ))
                })?;
                waybill_pgp::verify_detached(public, sig.payload.as_bytes(), &sig.pgp_signature)
                    .map_err(|e| Error::invalid(format!("{label}: OpenPGP signature: {e}")))?;
                let jws = base64::Engine::decode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    &sig.jws_signature,
                )
                .map_err(|_| {
                    Error::invalid(format!("{label}: the JWS signature is not base64url"))
                })?;
                let input = format!("{}.{}", sig.jws_header, sig.payload_b64());
                waybill_pgp::verify_jws(public, input.as_bytes(), &jws)
                    .map_err(|e| Error::invalid(format!("{label}: JWS signature: {e}")))?;
                if v.state != VersionState::Signed {
                    return Err(Error::invalid(format!(
                        "{label} carries a signature but is {}",
                        v.state
                    )));
                }
            }
        }
        v.source = (manifest.source_id != own).then(|| manifest.source_id.clone());
        versions.push(v);
    }
    Ok(Checked {
        source: manifest.source_id,
        versions,
        keys: keys.into_iter().collect(),
    })
}

/// What a version made here would have to satisfy: an archive is checked
/// as strictly as a create, signed or not (an admin's own key signs anything).
fn check_content(v: &ReleaseBundleVersion) -> Result<(), String> {
    use waybill_core::gather::limits::{DESCRIPTION_BYTES, RELEASE_NOTES_BYTES};
    waybill_core::gather::check_spec(&v.spec).map_err(|e| e.to_string())?;
    if v.description.len() > DESCRIPTION_BYTES {
        return Err(format!("the description is over {DESCRIPTION_BYTES} bytes"));
    }
    if v.release_notes
        .as_ref()
        .is_some_and(|n| n.content.len() > RELEASE_NOTES_BYTES)
    {
        return Err(format!(
            "the release notes are over {RELEASE_NOTES_BYTES} bytes"
        ));
    }
    for a in &v.artifacts {
        waybill_core::gather::check_target(&a.target_repo_path)
            .map_err(|why| format!("artifact {}: {why}", a.target_repo_path))?;
    }
    Ok(())
}

/// Whether `a` and `b` are the same version as far as an import cares:
/// the same signed bytes and signatures, or the same unsigned content.
fn same(a: &ReleaseBundleVersion, b: &ReleaseBundleVersion) -> bool {
    match (&a.signature, &b.signature) {
        (Some(x), Some(y)) => {
            x.payload == y.payload
                && x.jws_signature == y.jws_signature
                && x.pgp_signature == y.pgp_signature
        }
        (None, None) => canonical_payload(a) == canonical_payload(b),
        _ => false,
    }
}

impl Migration {
    /// Migration for the hub `service_id`.
    pub fn new(
        store: Arc<dyn Store>,
        bundles: Bundles,
        service_id: ServiceId,
        clock: Arc<dyn Clock>,
    ) -> Migration {
        Migration {
            store,
            bundles,
            service_id,
            clock,
        }
    }

    /// This hub's own source id: its source repository, under the hub's ulid.
    fn own_source(&self) -> String {
        let id = self.service_id.as_str();
        format!("jfrt@{}", id.split_once('@').map_or(id, |(_, ulid)| ulid))
    }

    fn source_of(&self, v: &ReleaseBundleVersion) -> String {
        v.source.clone().unwrap_or_else(|| self.own_source())
    }

    /// Every source id with its bundle and version counts; this hub's own
    /// source is always listed.
    pub async fn sources(&self, who: &Principal) -> Result<Vec<SourceCount>, Error> {
        who.require_admin()?;
        let own = self.own_source();
        let mut sources: BTreeMap<String, (BTreeSet<String>, usize)> = BTreeMap::new();
        sources.entry(own.clone()).or_default();
        for v in self.store.list_versions(None, Page::ALL).await?.items {
            let (bundles, versions) = sources.entry(self.source_of(&v)).or_default();
            bundles.insert(v.name.to_string());
            *versions += 1;
        }
        Ok(sources
            .into_iter()
            .map(|(id, (bundles, versions))| SourceCount {
                local: id == own,
                source_id: id,
                release_bundles: bundles.len(),
                versions,
            })
            .collect())
    }

    /// A zip of every version of source `source_id`; not found for a
    /// source that holds none.
    pub async fn export(&self, who: &Principal, source_id: &str) -> Result<Vec<u8>, Error> {
        who.require_admin()?;
        check_source_id(source_id)?;
        let mut versions: Vec<ReleaseBundleVersion> = self
            .store
            .list_versions(None, Page::ALL)
            .await?
            .items
            .into_iter()
            .filter(|v| self.source_of(v) == source_id)
            .collect();
        if versions.is_empty() && source_id != self.own_source() {
            return Err(Error::not_found(format!(
                "no release bundle comes from source '{source_id}'; list them with POST \
                 /api/v1/system/migration/import_export/source_artifactories"
            )));
        }
        // Oldest first, so an import recreates them in their order.
        versions.reverse();
        let mut keys = BTreeMap::new();
        for sig in versions.iter().filter_map(|v| v.signature.as_ref()) {
            if keys.contains_key(&sig.key_id) {
                continue;
            }
            let key = self.store.get_key(&sig.key_id).await?.ok_or_else(|| {
                Error::conflict(format!(
                    "signing key {} is no longer on this hub, so the versions it signed \
                     cannot be verified elsewhere; upload its public key again first",
                    sig.key_id
                ))
            })?;
            keys.insert(sig.key_id.clone(), key.public_key);
        }
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut entries = Vec::new();
        for (i, v) in versions.iter().enumerate() {
            let file = format!("versions/{:06}.json", i + 1);
            let mut record = v.clone();
            record.source = None; // The manifest names the source.
            files.push((file.clone(), to_json(&record)?));
            entries.push(Entry {
                name: v.name.to_string(),
                version: v.version.to_string(),
                file,
            });
        }
        let mut key_entries = Vec::new();
        for (id, public) in keys {
            let file = format!("keys/{id}.asc");
            files.push((file.clone(), public.into_bytes()));
            key_entries.push(KeyEntry { key_id: id, file });
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            source_id: source_id.to_string(),
            exported_from: self.service_id.to_string(),
            exported_at: format_iso(self.clock.now_millis()),
            versions: entries,
            keys: key_entries,
        };
        files.insert(0, ("manifest.json".into(), to_json(&manifest)?));
        let zip = crate::support::zip(&files)
            .map_err(|e| Error::internal(format!("writing the export archive: {e}")))?;
        tracing::info!(source = %source_id, versions = versions.len(), "release bundles exported");
        Ok(zip)
    }

    /// Recreates an export's versions; `archive` reads the archive once the
    /// caller is authorized. Everything is checked before anything is written.
    pub async fn import(
        &self,
        who: &Principal,
        archive: impl std::future::Future<Output = Result<Bytes, Error>>,
    ) -> Result<Imported, Error> {
        who.require_admin()?;
        let bytes = archive.await?;
        let own = self.own_source();
        let checked = tokio::task::spawn_blocking(move || check_archive(bytes, &own))
            .await
            .map_err(|_| Error::internal("the archive check failed"))??;

        // Conflicts are found before anything is written.
        let mut new_keys = Vec::new();
        for (id, public) in &checked.keys {
            match self.store.get_key(id).await? {
                Some(k)
                    if waybill_pgp::parse_public(&k.public_key)
                        .ok()
                        .map(|(_, i)| i.fingerprint)
                        != waybill_pgp::parse_public(public)
                            .ok()
                            .map(|(_, i)| i.fingerprint) =>
                {
                    return Err(Error::conflict(format!(
                        "this hub holds another key with id {id}; nothing was imported"
                    )));
                }
                Some(_) => {}
                None => new_keys.push((id.clone(), public.clone())),
            }
        }
        let mut fresh = Vec::new();
        let mut present = 0;
        for v in &checked.versions {
            let storing = waybill_core::artifact::RepoKey::parse(v.storing_repository.clone())
                .map_err(|e| Error::invalid(format!("{}: storing_repository: {e}", v.label())))?;
            self.bundles.check_storing(&storing).await?;
            match self.store.get_version(&v.name, &v.version).await? {
                Some(existing) if same(&existing, v) => present += 1,
                Some(_) => {
                    return Err(Error::conflict(format!(
                        "{} exists on this hub with other content; nothing was imported \
                         (delete it here first to take the archive's)",
                        v.label()
                    )));
                }
                None => fresh.push(v.clone()),
            }
        }

        // Public halves only, never the default: they verify, they do not sign.
        for (id, public) in &new_keys {
            self.store
                .put_key(SigningKey {
                    id: id.clone(),
                    public_key: public.clone(),
                    private_key: None,
                    created: self.clock.now_millis(),
                    default: false,
                })
                .await?;
        }
        let _changed = self.bundles.change();
        let mut imported = 0;
        for v in fresh {
            match self.store.create_version(v).await {
                Ok(()) => imported += 1,
                // Another import raced this one to it.
                Err(e) if e.kind() == waybill_core::StoreErrorKind::Conflict => present += 1,
                Err(e) => return Err(e.into()),
            }
        }
        tracing::info!(source = %checked.source, imported, present, "release bundles imported");
        Ok(Imported {
            source_id: checked.source,
            imported,
            already_present: present,
            keys_added: new_keys.len(),
        })
    }
}
