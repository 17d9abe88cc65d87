//! Support bundles (seed SUPPORT, admin only): a zip of what someone helping
//! an operator needs, with no secrets in it.
//!
//! - `configuration.json`: repositories, sites (no pairing tokens), signing
//!   keys (public halves only), users (names, admin flag, groups), and the
//!   settings on an allow-list (permissions, groups, scan policy, service id).
//! - `system.json`: version, service id, platform, and record counts.
//! - `logs.txt`: the server's recent log lines (kept in a bounded ring) whose
//!   dates fall in `[start_date, end_date]`. Logs never hold secrets.
//! - `threads.txt`: each thread's name and state from `/proc/self/task`, the
//!   nearest thing to a JVM thread dump, `count` times `interval` ms apart.
//!
//! The archive is stored like any file, in the read-only repository
//! `support-bundles` at `{id}/jfds/{service id}/support-bundle.zip`, which is
//! where the seed's `bundle_url` points; its metadata is a settings document.
//! An allow-list, not a deny-list, decides what goes in: a new secret setting
//! stays out until someone adds it on purpose.

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use waybill_core::artifact::{Item, ItemKind, ItemPath, RepoKey, Repository};
use waybill_core::bundle::Props;
use waybill_core::site::ServiceId;
use waybill_core::store::{BlobStore, Page, Store};
use waybill_core::time::format_iso;

use crate::source::{SUPPORT_BUNDLES as REPO, Source};
use crate::{Clock, Error, Principal};
const META: &str = "support.bundle.";
const ARCHIVE: &str = "support-bundle.zip";
/// Settings that may leave the server, by prefix.
const SETTINGS_ALLOWED: [&str; 5] = [
    "security.permission.",
    "security.group.",
    "scan.policy",
    "system.call_home_enabled",
    "system.service_id",
];
/// Thread dumps per bundle and the pause between them, at most: a request
/// must not hold a connection for minutes.
const MAX_DUMPS: u32 = 10;
const MAX_INTERVAL_MS: u64 = 10_000;

/// The server's recent log lines, for support bundles: the binary tees its
/// log output here. Bounded, so a busy server keeps only the newest lines.
#[derive(Clone, Debug, Default)]
pub struct LogRing(Arc<Mutex<Ring>>);

#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<String>,
    partial: Vec<u8>,
}

impl LogRing {
    /// Lines kept.
    pub const CAPACITY: usize = 20_000;

    /// Appends log output; complete lines are kept without colour codes.
    pub fn write(&self, bytes: &[u8]) {
        let mut ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        ring.partial.extend_from_slice(bytes);
        while let Some(end) = ring.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = ring.partial.drain(..=end).collect();
            let text = strip_ansi(&String::from_utf8_lossy(&line[..end]));
            if ring.lines.len() == Self::CAPACITY {
                ring.lines.pop_front();
            }
            ring.lines.push_back(text);
        }
    }

    /// Lines whose leading ISO date is within `[start, end]` (`YYYY-MM-DD`).
    fn between(&self, start: &str, end: &str) -> Vec<String> {
        let ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        ring.lines
            .iter()
            .filter(|l| l.get(..10).is_some_and(|day| day >= start && day <= end))
            .cloned()
            .collect()
    }
}

/// Removes terminal colour sequences (`ESC [ … letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A support bundle as a request asks for it (every field optional).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SupportRequest {
    #[serde(default)]
    parameters: Parameters,
    #[serde(default)]
    description: String,
    #[serde(default)]
    name: String,
}

/// What a support bundle holds.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Parameters {
    #[serde(default = "yes")]
    configuration: bool,
    #[serde(default)]
    logs: Logs,
    #[serde(default = "yes")]
    system: bool,
    #[serde(default)]
    thread_dump: ThreadDump,
}

impl Default for Parameters {
    fn default() -> Self {
        Parameters {
            configuration: true,
            logs: Logs::default(),
            system: true,
            thread_dump: ThreadDump::default(),
        }
    }
}

/// Part of [`Parameters`].
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    #[serde(default = "yes")]
    include: bool,
    start_date: Option<String>,
    end_date: Option<String>,
}

impl Default for Logs {
    fn default() -> Self {
        Logs {
            include: true,
            start_date: None,
            end_date: None,
        }
    }
}

/// Part of [`Parameters`].
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadDump {
    #[serde(default = "one")]
    count: u32,
    #[serde(default)]
    interval: u64,
}

impl Default for ThreadDump {
    fn default() -> Self {
        ThreadDump {
            count: 1,
            interval: 0,
        }
    }
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

/// What is kept about a bundle, as a settings document.
#[derive(Debug, Deserialize, Serialize)]
struct Meta {
    id: String,
    name: String,
    description: String,
    parameters: Parameters,
    created: u64,
}

/// `YYYY-MM-DD`, checked, or a 400 naming the field.
fn day(field: &str, value: &str) -> Result<String, Error> {
    let ok =
        value.len() == 10 && waybill_core::time::parse_iso(&format!("{value}T00:00:00Z")).is_some();
    if ok {
        Ok(value.to_string())
    } else {
        Err(Error::invalid(format!(
            "parameters.logs.{field} must be a date as YYYY-MM-DD, not '{value}'"
        )))
    }
}

/// Fills in the seed's defaults and refuses what cannot be honoured.
fn settle(mut p: Parameters, now: u64) -> Result<Parameters, Error> {
    let end = match &p.logs.end_date {
        Some(e) => day("end_date", e)?,
        None => format_iso(now)[..10].to_string(),
    };
    let start = match &p.logs.start_date {
        Some(s) => day("start_date", s)?,
        None => {
            let end_ms = waybill_core::time::parse_iso(&format!("{end}T00:00:00Z")).unwrap_or(now);
            format_iso(end_ms.saturating_sub(86_400_000))[..10].to_string()
        }
    };
    if start > end {
        return Err(Error::invalid(format!(
            "parameters.logs.start_date ({start}) is after end_date ({end})"
        )));
    }
    if p.thread_dump.count > MAX_DUMPS {
        return Err(Error::invalid(format!(
            "parameters.thread_dump.count may be at most {MAX_DUMPS}"
        )));
    }
    if p.thread_dump.interval > MAX_INTERVAL_MS {
        return Err(Error::invalid(format!(
            "parameters.thread_dump.interval may be at most {MAX_INTERVAL_MS} ms"
        )));
    }
    p.logs.start_date = Some(start);
    p.logs.end_date = Some(end);
    Ok(p)
}

/// A bundle id chosen by a caller: it becomes a path segment and a key.
fn check_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !id.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "support bundle id '{id}' must be 1-64 letters, digits, '-' or '_', not starting with '-'"
        )))
    }
}

fn bundle_url(state: &Support, id: &str) -> String {
    format!(
        "/artifactory/{REPO}/{id}/jfds/{}",
        state.service_id.as_str()
    )
}

fn archive_path(state: &Support, id: &str) -> Result<ItemPath, Error> {
    Ok(ItemPath::parse(&format!(
        "{id}/jfds/{}/{ARCHIVE}",
        state.service_id.as_str()
    ))?)
}

fn repo_key() -> Result<RepoKey, Error> {
    Ok(RepoKey::parse(REPO.to_string())?)
}

async fn build(
    state: &Support,
    id: String,
    body: SupportRequest,
    now: u64,
) -> Result<Created, Error> {
    let parameters = settle(body.parameters, now)?;
    let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
    if parameters.configuration {
        files.push(("configuration.json", pretty(&configuration(state).await?)));
    }
    if parameters.system {
        files.push(("system.json", pretty(&system(state).await?)));
    }
    if parameters.logs.include {
        let (start, end) = (
            parameters.logs.start_date.clone().unwrap_or_default(),
            parameters.logs.end_date.clone().unwrap_or_default(),
        );
        let mut text = state.logs.between(&start, &end).join("\n");
        text.push('\n');
        files.push(("logs.txt", text.into_bytes()));
    }
    if parameters.thread_dump.count > 0 {
        let mut dumps = String::new();
        for n in 0..parameters.thread_dump.count {
            if n > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(
                    parameters.thread_dump.interval,
                ))
                .await;
            }
            dumps += &format!(
                "== dump {} at {}\n",
                n + 1,
                format_iso(state.clock.now_millis())
            );
            dumps += &threads();
        }
        files.push(("threads.txt", dumps.into_bytes()));
    }
    let meta = Meta {
        id: id.clone(),
        name: body.name,
        description: body.description,
        parameters,
        created: now,
    };
    files.push(("bundle.json", pretty(&meta_json(state, &meta))));
    let zip = tokio::task::spawn_blocking(move || zip(&files))
        .await
        .map_err(|_| Error::internal("zipping failed"))?
        .map_err(|e| Error::internal(format!("zipping: {e}")))?;
    store_archive(state, &id, &zip, now).await?;
    let doc = serde_json::to_string(&meta).map_err(|e| Error::internal(e.to_string()))?;
    state
        .store
        .put_setting(&format!("{META}{id}"), &doc)
        .await?;
    tracing::info!(support_bundle = %id, bytes = zip.len(), "support bundle created");
    Ok(Created {
        bundle_url: bundle_url(state, &id),
        id,
    })
}

fn pretty(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap_or_default()
}

/// A zip of `files`, stored (not deflated): no compression dependency, and
/// what goes in is small text.
pub fn zip<N: AsRef<str>>(files: &[(N, Vec<u8>)]) -> zip::result::ZipResult<Vec<u8>> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in files {
        out.start_file(name.as_ref(), options)?;
        out.write_all(data)?;
    }
    Ok(out.finish()?.into_inner())
}

async fn store_archive(state: &Support, id: &str, zip: &[u8], now: u64) -> Result<(), Error> {
    let key = repo_key()?;
    if state.store.get_repository(&key).await?.is_none() {
        let repo = Repository {
            key: key.clone(),
            package_type: "generic".into(),
            description: "Support bundles (managed by Waybill)".into(),
            created: now,
            read_only: true,
        };
        if let Err(e) = state.store.create_repository(repo).await
            && e.kind() != waybill_core::StoreErrorKind::Conflict
        {
            return Err(e.into());
        }
    }
    let _content = state.source.content_lock().read().await;
    let mut w = state.blobs.writer().await?;
    w.write(zip).await?;
    let info = w.commit(waybill_core::store::Expected::default()).await?;
    state
        .store
        .put_file(Item {
            repo: key,
            path: archive_path(state, id)?,
            kind: ItemKind::File,
            size: zip.len() as u64,
            checksums: Some(info.checksums),
            created: now,
            modified: now,
            created_by: "support".into(),
            modified_by: "support".into(),
            props: Props::default(),
        })
        .await?;
    Ok(())
}

/// Configuration worth reading, and nothing secret: see the module docs.
async fn configuration(state: &Support) -> Result<Value, Error> {
    let mut settings = serde_json::Map::new();
    for prefix in SETTINGS_ALLOWED {
        for (key, value) in state.store.list_settings(prefix).await? {
            // Settings documents are JSON; anything else is kept as text.
            let v = serde_json::from_str(&value).unwrap_or(Value::String(value));
            settings.insert(key, v);
        }
    }
    let repositories: Vec<Value> = state
        .store
        .list_repositories()
        .await?
        .into_iter()
        .map(|r| {
            json!({"key": r.key.as_str(), "package_type": r.package_type,
                   "description": r.description, "read_only": r.read_only})
        })
        .collect();
    let sites: Vec<Value> = state
        .store
        .list_sites()
        .await?
        .into_iter()
        .map(|s| {
            json!({"service_id": s.service_id.as_str(), "name": s.name,
                   "city_name": s.city_name, "country_code": s.country_code,
                   "url": s.url, "tags": s.tags})
        })
        .collect();
    let keys: Vec<Value> = state
        .store
        .list_keys()
        .await?
        .into_iter()
        .map(|k| {
            json!({"id": k.id, "public_key": k.public_key, "default": k.default,
                   "has_private_key": k.private_key.is_some(), "created": format_iso(k.created)})
        })
        .collect();
    let users: Vec<Value> = state
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| json!({"name": u.name, "admin": u.admin, "groups": u.groups}))
        .collect();
    Ok(json!({
        "settings": settings,
        "repositories": repositories,
        "sites": sites,
        "signing_keys": keys,
        "users": users,
    }))
}

async fn system(state: &Support) -> Result<Value, Error> {
    let versions = state
        .store
        .list_versions(
            None,
            Page {
                offset: 0,
                limit: 1,
            },
        )
        .await?
        .total;
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "service_id": state.service_id.as_str(),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "pid": std::process::id(),
        "time": format_iso(state.clock.now_millis()),
        "counts": {
            "bundle_versions": versions,
            "trackers": state.store.list_trackers(None, None).await?.len(),
            "sites": state.store.list_sites().await?.len(),
            "repositories": state.store.list_repositories().await?.len(),
            "users": state.store.list_users().await?.len(),
        },
    }))
}

/// Each thread's name and state, from `/proc/self/task` (Linux); elsewhere
/// a line saying there is no such source.
fn threads() -> String {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return "thread listing needs /proc (Linux)\n".into();
    };
    let mut lines: Vec<String> = tasks
        .flatten()
        .map(|t| {
            let dir = t.path();
            let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let state = std::fs::read_to_string(dir.join("status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("State:").map(|v| v.trim().to_string()))
                })
                .unwrap_or_default();
            format!(
                "{:>8}  {:<20} {state}",
                t.file_name().to_string_lossy(),
                name.trim()
            )
        })
        .collect();
    lines.sort();
    lines.join("\n") + "\n"
}

fn meta_json(state: &Support, m: &Meta) -> Value {
    json!({
        "id": m.id,
        "parameters": m.parameters,
        "description": m.description,
        "name": m.name,
        "artifactory": {"service_id": state.service_id.as_str(), "bundle_url": bundle_url(state, &m.id)},
        "status": "success",
        "created": format_iso(m.created)[..10],
    })
}

async fn meta(state: &Support, id: &str) -> Result<Meta, Error> {
    let raw = state
        .store
        .get_setting(&format!("{META}{id}"))
        .await?
        .ok_or_else(|| Error::not_found(format!("support bundle '{id}' not found")))?;
    serde_json::from_str(&raw)
        .map_err(|e| Error::internal(format!("support bundle '{id}' metadata is unreadable: {e}")))
}

/// A support bundle just made.
#[derive(Clone, Debug)]
pub struct Created {
    /// Its id.
    pub id: String,
    /// Where its folder is served, as the seed's `bundle_url`.
    pub bundle_url: String,
}

/// A support bundle as listed.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// When it was made, Unix millis.
    pub created: u64,
}

/// The support-bundle use-cases (admin only). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Support {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    source: Source,
    service_id: ServiceId,
    clock: Arc<dyn Clock>,
    logs: LogRing,
}

impl Support {
    /// Support bundles of the service `service_id`, with log lines from `logs`.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        source: Source,
        service_id: ServiceId,
        clock: Arc<dyn Clock>,
        logs: LogRing,
    ) -> Support {
        Support {
            store,
            blobs,
            source,
            service_id,
            clock,
            logs,
        }
    }

    /// Makes a support bundle with a fresh id; `parse` reads the request
    /// once the caller is authorized.
    pub async fn create(
        &self,
        who: &Principal,
        parse: impl FnOnce() -> Result<SupportRequest, Error>,
    ) -> Result<Created, Error> {
        who.require_admin()?;
        let body = parse()?;
        let now = self.clock.now_millis();
        let random = ring::rand::SystemRandom::new();
        let mut bytes = [0u8; 4];
        ring::rand::SecureRandom::fill(&random, &mut bytes)
            .map_err(|_| Error::internal("the OS random source failed"))?;
        // The seed's shape: a timestamp, then a random part.
        let stamp: String = format_iso(now)
            .chars()
            .filter(char::is_ascii_digit)
            .take(17)
            .collect();
        let id = format!("{stamp}-{:08}", u32::from_be_bytes(bytes) % 100_000_000);
        build(self, id, body, now).await
    }

    /// Makes a support bundle with the caller's `id`; a conflict if it exists.
    pub async fn create_with_id(
        &self,
        who: &Principal,
        id: &str,
        parse: impl FnOnce() -> Result<SupportRequest, Error>,
    ) -> Result<Created, Error> {
        who.require_admin()?;
        check_id(id)?;
        let body = parse()?;
        if self
            .store
            .get_setting(&format!("{META}{id}"))
            .await?
            .is_some()
        {
            return Err(Error::conflict(format!(
                "support bundle '{id}' already exists; delete it first"
            )));
        }
        build(self, id.to_string(), body, self.clock.now_millis()).await
    }

    /// A support bundle's description (the archive's `bundle.json`).
    pub async fn info(&self, who: &Principal, id: &str) -> Result<Value, Error> {
        who.require_admin()?;
        let m = meta(self, id).await?;
        Ok(meta_json(self, &m))
    }

    /// A support bundle's zip.
    pub async fn archive(&self, who: &Principal, id: &str) -> Result<Vec<u8>, Error> {
        who.require_admin()?;
        meta(self, id).await?;
        let item = self
            .store
            .get_item(&repo_key()?, &archive_path(self, id)?)
            .await?
            .ok_or_else(|| Error::not_found(format!("support bundle '{id}' has no archive")))?;
        let digest = item
            .sha256()
            .ok_or_else(|| Error::not_found(format!("support bundle '{id}' has no archive")))?;
        Ok(self.blobs.read_range(&digest, 0, item.size).await?)
    }

    /// Deletes a support bundle and its archive.
    pub async fn delete(&self, who: &Principal, id: &str) -> Result<(), Error> {
        who.require_admin()?;
        meta(self, id).await?;
        let folder = ItemPath::parse(id)?;
        let removed = self.store.delete_item(&repo_key()?, &folder).await?;
        self.source
            .collect_garbage(removed.iter().filter_map(Item::sha256))
            .await?;
        self.store.delete_setting(&format!("{META}{id}")).await?;
        Ok(())
    }

    /// Every support bundle.
    pub async fn list(&self, who: &Principal) -> Result<Vec<Summary>, Error> {
        who.require_admin()?;
        let mut out = Vec::new();
        for (_, raw) in self.store.list_settings(META).await? {
            if let Ok(m) = serde_json::from_str::<Meta>(&raw) {
                out.push(Summary {
                    id: m.id,
                    name: m.name,
                    description: m.description,
                    created: m.created,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_whole_lines_without_colour_and_only_the_newest() {
        let ring = LogRing::default();
        ring.write(b"\x1b[2m2026-11-21T10:00:00Z\x1b[0m  INFO first\n2026-11-22T");
        ring.write(b"10:00:00Z  INFO second\n2026-11-23T00:00:00Z  INFO third\n");
        assert_eq!(
            ring.between("2026-11-21", "2026-11-22"),
            [
                "2026-11-21T10:00:00Z  INFO first",
                "2026-11-22T10:00:00Z  INFO second"
            ]
        );
        for i in 0..LogRing::CAPACITY {
            ring.write(format!("2026-11-24T00:00:00Z {i}\n").as_bytes());
        }
        assert!(ring.between("2026-11-21", "2026-11-23").is_empty());
        assert_eq!(
            ring.between("2026-11-24", "2026-11-24").len(),
            LogRing::CAPACITY
        );
    }

    #[test]
    fn parameters_get_the_seed_defaults_and_bad_ones_are_named() {
        let now = waybill_core::time::parse_iso("2026-11-22T12:00:00Z").unwrap();
        let p = settle(Parameters::default(), now).unwrap();
        assert_eq!(p.logs.end_date.as_deref(), Some("2026-11-22"));
        assert_eq!(p.logs.start_date.as_deref(), Some("2026-11-21"));
        let mut bad = Parameters::default();
        bad.logs.start_date = Some("22-11-2026".into());
        let msg = settle(bad, now).unwrap_err().message().to_string();
        assert!(msg.contains("start_date"), "{msg}");
        let mut reversed = Parameters::default();
        reversed.logs.start_date = Some("2026-11-23".into());
        reversed.logs.end_date = Some("2026-11-20".into());
        assert!(settle(reversed, now).is_err());
        let mut many = Parameters::default();
        many.thread_dump.count = MAX_DUMPS + 1;
        assert!(settle(many, now).is_err());
    }

    #[test]
    fn ids_from_callers_are_single_safe_segments() {
        for ok in ["20181230145474-53666747", "mine_1"] {
            assert!(check_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a/b", "-x", "a b", &"x".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }
}
