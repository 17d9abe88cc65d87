//! End-to-end bench: a hub and three edges as separate `waybill` processes on
//! loopback, against `rsync -a` to three local directories, in one run.
//!
//! 1. Writes `WAYBILL_E2E_FILES` files (default 1,000) of mixed sizes totalling
//!    `WAYBILL_E2E_MIB` MiB (default 1,024) and deploys them to the hub.
//! 2. Times `rsync -a` of those files into three directories at once.
//! 3. Times a signed bundle's distribution to all three edges, from the
//!    POST until the tracker says Completed.
//! 4. Times a second version with the same content, which should move no
//!    blob bytes.
//!
//! Prints a markdown table and writes it to `target/bench-e2e.md`.
//! `cargo xtask bench-e2e` installs rsync when it is missing, then runs this.

#[path = "../tests/it/support.rs"]
#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{ADMIN_PW, Hub, Launch, Server};

const PASSPHRASE: &str = "correct horse battery staple";
const EDGES: [(&str, &str, &str); 3] = [
    ("de-fra-1", "Frankfurt", "DE"),
    ("de-muc-1", "München", "DE"),
    ("us-nyc-1", "New York", "US"),
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// File sizes that sum to exactly `total`: a long tail of small files and a
/// few large ones, like a real release (configs, libraries, images).
fn mixed_sizes(files: usize, total: usize) -> Vec<usize> {
    // Weights 1..=64 in a repeating skewed pattern: i^3 spreads them.
    let weights: Vec<usize> = (0..files).map(|i| 1 + (i * i * i) % 64).collect();
    let sum: usize = weights.iter().sum();
    let mut sizes: Vec<usize> = weights.iter().map(|w| total * w / sum).collect();
    let short = total - sizes.iter().sum::<usize>();
    sizes[0] += short;
    sizes
}

fn dist(hub: &Hub, method: Method, path: &str) -> reqwest::RequestBuilder {
    hub.http
        .request(
            method,
            hub.server.url(&format!("/distribution/api/v1/{path}")),
        )
        .basic_auth("admin", Some(ADMIN_PW))
}

fn key_fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct Run {
    wall: Duration,
    bytes: u64,
}

async fn create_signed(hub: &Hub, version: &str) {
    let body = json!({"name": "e2e", "version": version, "sign_immediately": true,
        "spec": {"queries": [{"aql": "items.find({\"repo\":\"libs\",\"type\":\"file\"})",
                              "mappings": [{"input": "^libs/(.*)$", "output": "prod/$1"}]}]}});
    let res = dist(hub, Method::POST, "release_bundle")
        .header("X-Gpg-Passphrase", PASSPHRASE)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "{:?}", res.text().await);
}

/// Distributes `version` to every edge and waits until it completes.
async fn distribute(hub: &Hub, version: &str) -> Run {
    let started = Instant::now();
    let res = dist(hub, Method::POST, &format!("distribution/e2e/{version}"))
        .json(&json!({"distribution_rules": [{"site_name": "*"}], "auto_create_missing_repositories": true}))
        .send()
        .await
        .unwrap();
    let (status, body) = hub.json(res).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_u64().unwrap();
    loop {
        let t: Value = dist(
            hub,
            Method::GET,
            &format!("release_bundle/e2e/{version}/distribution/{id}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        match t["status"].as_str() {
            Some("Completed") => {
                let wall = started.elapsed();
                let sites = t["sites"].as_array().unwrap();
                assert_eq!(sites.len(), EDGES.len(), "{t}");
                let bytes = sites
                    .iter()
                    .map(|s| s["transferred_bytes"].as_u64().unwrap())
                    .sum();
                return Run { wall, bytes };
            }
            Some("Failed") => panic!("distribution failed: {t}"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// `rsync -a` from `src` into three fresh directories at once, the way a
/// script would fan out; `None` when rsync is not installed.
fn rsync(src: &Path, work: &Path) -> Option<Duration> {
    if Command::new("rsync").arg("--version").output().is_err() {
        return None;
    }
    let started = Instant::now();
    let children: Vec<_> = (0..EDGES.len())
        .map(|i| {
            let dst = work.join(format!("rsync-{i}"));
            Command::new("rsync")
                .arg("-a")
                .arg(format!("{}/", src.display()))
                .arg(&dst)
                .spawn()
                .expect("spawn rsync")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "rsync failed");
    }
    Some(started.elapsed())
}

fn mb_per_s(bytes: u64, wall: Duration) -> f64 {
    bytes as f64 / 1e6 / wall.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let files = env_usize("WAYBILL_E2E_FILES", 1000);
    let total = env_usize("WAYBILL_E2E_MIB", 1024) << 20;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();

    let hub_dir = tempfile::tempdir().unwrap();
    let hub_data = hub_dir.path().join("data");
    let mut launch = Launch::new(&hub_data);
    launch.env.push(("WAYBILL_LOG", "info"));
    let hub = Hub {
        server: launch.start(),
        http: support::client(),
        _tmp: hub_dir,
    };
    let edges: Vec<(Server, String, tempfile::TempDir)> = EDGES
        .iter()
        .enumerate()
        .map(|(i, (site, city, cc))| {
            let dir = tempfile::tempdir().unwrap();
            let token = format!("e2e-pairing-{i}-{}", std::process::id());
            let data = dir.path().join("data");
            let mut launch = Launch::edge(&data, site, city, cc, &token);
            launch.env.push(("WAYBILL_LOG", "info"));
            (launch.start(), token, dir)
        })
        .collect();
    let res = hub
        .http
        .put(hub.server.url("/distribution/api/v1/keys/pgp"))
        .basic_auth("admin", Some(ADMIN_PW))
        .json(&json!({"public_key": key_fixture("rsa3072-protected.pub.asc"),
                      "private_key": key_fixture("rsa3072-protected.sec.asc")}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    for ((server, token, _), (site, city, cc)) in edges.iter().zip(EDGES) {
        let body = json!({"name": site, "url": server.base, "token": token,
                          "location": {"city_name": city, "country_code": cc}});
        let res = hub
            .http
            .post(hub.server.url("/mc/api/v1/jpds"))
            .basic_auth("admin", Some(ADMIN_PW))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }

    hub.create_repo("libs").await;
    let deploy_started = Instant::now();
    for (i, size) in mixed_sizes(files, total).into_iter().enumerate() {
        let rel = format!("d{:02}/f{i:04}.bin", i % 37);
        let data = support::content(size, i as u32 + 1);
        let path: PathBuf = src.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &data).unwrap();
        let (status, body) = hub.deploy(&format!("libs/{rel}"), data).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let deploy = deploy_started.elapsed();

    let rsync_wall = rsync(&src, work.path());
    create_signed(&hub, "1").await;
    let first = distribute(&hub, "1").await;
    create_signed(&hub, "2").await;
    let again = distribute(&hub, "2").await;
    let wanted = total as u64 * EDGES.len() as u64;
    assert_eq!(first.bytes, wanted, "the first run sends every byte to every edge");

    let mib = total >> 20;
    let mut report = format!(
        "End to end: {files} files, {mib} MiB, one hub and {n} edges on loopback \
         (deploy to the hub took {deploy:.2?}, not counted).\n\n\
         | run | wall time | bytes sent | MB/s | ratio |\n|---|---|---|---|---|\n",
        n = EDGES.len(),
    );
    let base = rsync_wall.map(|d| d.as_secs_f64());
    let ratio = |d: Duration, of: Option<f64>| {
        of.map_or("n/a".to_string(), |b| {
            format!("{:.2}×", d.as_secs_f64() / b)
        })
    };
    if let Some(r) = rsync_wall {
        report += &format!(
            "| rsync -a to {n} directories (baseline) | {r:.2?} | {wanted} | {:.0} | 1.00× |\n",
            mb_per_s(wanted, r),
            n = EDGES.len(),
        );
    }
    report += &format!(
        "| Waybill first distribution | {:.2?} | {} | {:.0} | {} of rsync |\n",
        first.wall,
        first.bytes,
        mb_per_s(first.bytes, first.wall),
        ratio(first.wall, base),
    );
    report += &format!(
        "| Waybill same content, new version | {:.2?} | {} | - | {} of the first |\n",
        again.wall,
        again.bytes,
        ratio(again.wall, Some(first.wall.as_secs_f64())),
    );
    if rsync_wall.is_none() {
        report += "\nrsync is not installed, so there is no baseline; \
                   `cargo xtask bench-e2e` installs it.\n";
    }
    println!("{report}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let out = target.join("bench-e2e.md");
    if let Err(e) = std::fs::write(&out, &report) {
        eprintln!("could not write {}: {e}", out.display());
    }
    drop(edges);
}
