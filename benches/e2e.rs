//! End-to-end bench: a hub and three edges as separate `waybill` processes on
//! loopback, against `rsync -a` to three local directories, in one run.
//!
//! 1. Writes `WAYBILL_E2E_FILES` files (default 1,000) of mixed sizes totalling
//!    `WAYBILL_E2E_MIB` MiB (default 1,024) and deploys them to the hub.
//! 2. `WAYBILL_E2E_ROUNDS` times (default 3), alternating: `rsync -a` of those
//!    files into three fresh directories at once, then a signed version's
//!    distribution to three fresh edges, from the POST until the tracker says
//!    Completed. Medians are reported: these machines are noisy.
//! 3. A new version with the same content, distributed to the last three
//!    edges, which should move no blob bytes.
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
use serde_json::json;
use support::{Hub, Launch, Server};

const PLACES: [(&str, &str); 3] = [("Frankfurt", "DE"), ("München", "DE"), ("New York", "US")];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// File sizes that sum to exactly `total`: a long tail of small files and a
/// few large ones, like a real release (configs, libraries, images).
fn mixed_sizes(files: usize, total: usize) -> Vec<usize> {
    // Weights 1..=64 in a skewed, repeating pattern.
    let weights: Vec<usize> = (0..files).map(|i| 1 + (i * i * i) % 64).collect();
    let sum: usize = weights.iter().sum();
    let mut sizes: Vec<usize> = weights.iter().map(|w| total * w / sum).collect();
    let short = total - sizes.iter().sum::<usize>();
    sizes[0] += short;
    sizes
}

/// CPU seconds (user + system) a process has used so far, from /proc.
fn cpu_seconds(server: &Server) -> f64 {
    let Some(stat) = server
        .pid()
        .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
    else {
        return 0.0;
    };
    // Fields after the parenthesised command: utime and stime are 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: f64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    ticks / 100.0 // USER_HZ is 100 on Linux.
}

struct Edge {
    server: Server,
    _dir: tempfile::TempDir,
}

/// Starts three fresh, empty edges for `round` and registers them.
async fn edges(hub: &Hub, round: usize) -> Vec<Edge> {
    let mut out = Vec::new();
    for (i, (city, cc)) in PLACES.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let site = format!("r{round}-edge{i}");
        let token = format!("e2e-pairing-{round}-{i}-{}", std::process::id());
        let data = dir.path().join("data");
        let mut launch = Launch::edge(&data, &site, city, cc, &token);
        launch.env.push(("WAYBILL_LOG", "info"));
        let server = launch.start();
        let body = json!({"name": site, "url": server.base, "token": token,
                          "location": {"city_name": city, "country_code": cc}});
        let res = hub.post_jpd(&body).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        out.push(Edge { server, _dir: dir });
    }
    out
}

async fn create_signed(hub: &Hub, version: &str) {
    hub.create_bundle(
        &json!({"name": "e2e", "version": version, "sign_immediately": true,
        "spec": {"queries": [{"aql": "items.find({\"repo\":\"libs\",\"type\":\"file\"})",
                              "mappings": [{"input": "^libs/(.*)$", "output": "prod/$1"}]}]}}),
    )
    .await;
}

struct Run {
    wall: Duration,
    bytes: u64,
    hub_cpu: f64,
    edges_cpu: f64,
}

/// Distributes `version` to the edges of `round` and waits until it completes.
async fn distribute(hub: &Hub, edges: &[Edge], version: &str, round: usize) -> Run {
    let cpu = |edges: &[Edge]| edges.iter().map(|e| cpu_seconds(&e.server)).sum::<f64>();
    let (hub_before, edges_before) = (cpu_seconds(&hub.server), cpu(edges));
    let started = Instant::now();
    let rules = json!([{"site_name": format!("r{round}-*")}]);
    let res = hub
        .dist_api(Method::POST, &format!("distribution/e2e/{version}"))
        .json(&json!({"distribution_rules": rules, "auto_create_missing_repositories": true}))
        .send()
        .await
        .unwrap();
    let (status, body) = hub.json(res).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_u64().unwrap();
    loop {
        let t = hub.tracker("e2e", version, id).await;
        match t["status"].as_str() {
            Some("Completed") => {
                let wall = started.elapsed();
                let sites = t["sites"].as_array().unwrap();
                assert_eq!(sites.len(), edges.len(), "{t}");
                let bytes = sites
                    .iter()
                    .map(|s| s["transferred_bytes"].as_u64().unwrap())
                    .sum();
                return Run {
                    wall,
                    bytes,
                    hub_cpu: cpu_seconds(&hub.server) - hub_before,
                    edges_cpu: cpu(edges) - edges_before,
                };
            }
            Some("Failed") => panic!("distribution failed: {t}"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// `rsync -a` from `src` into three fresh directories at once, the way a
/// script would fan out; `None` when rsync is not installed.
fn rsync(src: &Path, work: &Path, round: usize) -> Option<Duration> {
    if Command::new("rsync").arg("--version").output().is_err() {
        return None;
    }
    let started = Instant::now();
    let children: Vec<_> = (0..PLACES.len())
        .map(|i| {
            Command::new("rsync")
                .arg("-a")
                .arg(format!("{}/", src.display()))
                .arg(work.join(format!("rsync-{round}-{i}")))
                .spawn()
                .expect("spawn rsync")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "rsync failed");
    }
    Some(started.elapsed())
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn mb_per_s(bytes: u64, wall: Duration) -> f64 {
    bytes as f64 / 1e6 / wall.as_secs_f64()
}

fn secs(ds: &[Duration]) -> String {
    ds.iter()
        .map(|d| format!("{:.2}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::main]
async fn main() {
    let files = env_usize("WAYBILL_E2E_FILES", 1000);
    let total = env_usize("WAYBILL_E2E_MIB", 1024) << 20;
    let rounds = env_usize("WAYBILL_E2E_ROUNDS", 3).max(1);
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
    hub.upload_key().await;

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
    eprintln!("e2e: deployed {files} files in {deploy:.2?}");

    let wanted = total as u64 * PLACES.len() as u64;
    let (mut rsync_walls, mut firsts) = (Vec::new(), Vec::new());
    let mut last_edges = Vec::new();
    for round in 0..rounds {
        if let Some(d) = rsync(&src, work.path(), round) {
            rsync_walls.push(d);
        }
        let edges = edges(&hub, round).await;
        let version = format!("{}", round + 1);
        create_signed(&hub, &version).await;
        let run = distribute(&hub, &edges, &version, round).await;
        assert_eq!(
            run.bytes, wanted,
            "a first distribution sends every byte to every edge"
        );
        eprintln!(
            "e2e: round {round}: rsync {:?}, waybill {:.2?} (CPU: hub {:.2}s, edges {:.2}s)",
            rsync_walls.last(),
            run.wall,
            run.hub_cpu,
            run.edges_cpu
        );
        firsts.push(run);
        last_edges = edges;
    }
    let again_version = format!("{}", rounds + 1);
    create_signed(&hub, &again_version).await;
    let again = distribute(&hub, &last_edges, &again_version, rounds - 1).await;

    let first_walls: Vec<Duration> = firsts.iter().map(|r| r.wall).collect();
    let first = median(first_walls.clone());
    let cpu_of_median = firsts.iter().find(|r| r.wall == first).unwrap();
    let n = PLACES.len();
    let mib = total >> 20;
    let mut report = format!(
        "End to end: {files} files, {mib} MiB, one hub and {n} edges on loopback; \
         median of {rounds} alternating rounds (deploying to the hub took \
         {deploy:.2?}, not counted).\n\n\
         | run | wall time (median) | rounds (s) | bytes sent | MB/s | ratio |\n\
         |---|---|---|---|---|---|\n",
    );
    let base = (!rsync_walls.is_empty()).then(|| median(rsync_walls.clone()));
    if let Some(r) = base {
        report += &format!(
            "| rsync -a to {n} directories at once (baseline) | {r:.2?} | {} | {wanted} | {:.0} | 1.00× |\n",
            secs(&rsync_walls),
            mb_per_s(wanted, r),
        );
    }
    report += &format!(
        "| Waybill first distribution to {n} empty edges | {first:.2?} | {} | {wanted} | {:.0} | {} |\n",
        secs(&first_walls),
        mb_per_s(wanted, first),
        base.map_or("n/a".into(), |b| format!(
            "{:.2}× rsync",
            first.as_secs_f64() / b.as_secs_f64()
        )),
    );
    report += &format!(
        "| Waybill same content, new version | {:.2?} | {:.2} | {} | - | {:.3}× the first |\n",
        again.wall,
        again.wall.as_secs_f64(),
        again.bytes,
        again.wall.as_secs_f64() / first.as_secs_f64(),
    );
    report += &format!(
        "\nCPU time in the median first distribution: hub {:.2} s, edges {:.2} s together.\n",
        cpu_of_median.hub_cpu, cpu_of_median.edges_cpu
    );
    if base.is_none() {
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
}
