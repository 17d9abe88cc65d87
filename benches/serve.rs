//! Load bench: a real hub on loopback, driven at `WAYBILL_LOAD_CONNECTIONS`
//! (default 32) keep-alive connections, one request type at a time.
//!
//! Every request type is reported as req/s, p50 and p99, and as a ratio to
//! `GET system/ping` measured in the same run, right before and after it:
//! absolute figures on these machines move by a third with whatever else
//! runs, ratios much less.
//!
//! The driver is a minimal HTTP/1.1 client over tokio sockets, in this
//! process, so it costs the same for every row, baseline included. Each row
//! runs `WAYBILL_LOAD_SECS` seconds (default 3) after a short warm-up, in
//! `WAYBILL_LOAD_ROUNDS` rounds (default 3), and the medians are reported.
//! `WAYBILL_LOAD_STORE` picks the hub's store (default `sqlite`).
//!
//! Prints a markdown table and writes it to `target/bench-serve.md`.

#[path = "../tests/it/support.rs"]
#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{ADMIN_PW, Hub, Launch};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const ARTIFACTS: usize = 100;

fn env_parse<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One request, as bytes on the wire.
#[derive(Clone)]
struct Probe {
    label: String,
    request: Vec<u8>,
    /// Whether to report bytes per second too.
    throughput: bool,
}

impl Probe {
    fn new(label: &str, method: &str, path: &str, auth: Option<&str>, body: &str) -> Probe {
        let mut r = format!("{method} {path} HTTP/1.1\r\nHost: bench\r\n");
        if let Some(a) = auth {
            r += &format!("Authorization: {a}\r\n");
        }
        if !body.is_empty() || method == "POST" {
            r += &format!(
                "Content-Type: text/plain\r\nContent-Length: {}\r\n",
                body.len()
            );
        }
        r += "\r\n";
        r += body;
        Probe {
            label: label.into(),
            request: r.into_bytes(),
            throughput: false,
        }
    }
}

/// A keep-alive connection that reads whole responses and drops their bodies.
struct Conn {
    io: BufReader<TcpStream>,
    line: String,
}

impl Conn {
    async fn open(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).unwrap();
        Conn {
            io: BufReader::with_capacity(256 << 10, s),
            line: String::new(),
        }
    }

    async fn read_line(&mut self) -> &str {
        self.line.clear();
        let n = self.io.read_line(&mut self.line).await.expect("read");
        assert!(n > 0, "server closed the connection");
        self.line.trim_end()
    }

    /// Sends `request`; returns the status and the body's length.
    async fn send(&mut self, request: &[u8]) -> (u16, u64) {
        self.io.get_mut().write_all(request).await.expect("write");
        let status: u16 = self
            .read_line()
            .await
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let (mut length, mut chunked) = (None, false);
        loop {
            let h = self.read_line().await.to_ascii_lowercase();
            if h.is_empty() {
                break;
            }
            if let Some(v) = h.strip_prefix("content-length:") {
                length = v.trim().parse::<u64>().ok();
            } else if h.starts_with("transfer-encoding:") && h.contains("chunked") {
                chunked = true;
            }
        }
        let mut total = 0;
        if chunked {
            loop {
                let size =
                    u64::from_str_radix(self.read_line().await.split(';').next().unwrap_or(""), 16)
                        .expect("chunk size");
                if size == 0 {
                    while !self.read_line().await.is_empty() {}
                    break;
                }
                total += self.skip(size).await;
                self.read_line().await;
            }
        } else {
            total = self.skip(length.unwrap_or(0)).await;
        }
        (status, total)
    }

    async fn skip(&mut self, n: u64) -> u64 {
        tokio::io::copy(&mut (&mut self.io).take(n), &mut tokio::io::sink())
            .await
            .expect("body")
    }
}

#[derive(Clone)]
struct Row {
    label: String,
    requests: usize,
    bytes: u64,
    secs: f64,
    p50: Duration,
    p99: Duration,
}

impl Row {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.secs
    }
}

/// Drives `probe` from `connections` connections for `secs` seconds.
async fn drive(addr: &str, probe: &Probe, connections: usize, secs: f64) -> Row {
    let warm_up = Duration::from_millis(500);
    let run = Duration::from_secs_f64(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (addr, request) = (addr.to_string(), probe.request.clone());
            tokio::spawn(async move {
                let mut conn = Conn::open(&addr).await;
                let (mut latencies, mut bytes) = (Vec::new(), 0u64);
                loop {
                    let t = Instant::now();
                    let (status, len) = conn.send(&request).await;
                    assert!(
                        (200..300).contains(&status),
                        "status {status} for {}",
                        String::from_utf8_lossy(&request)
                    );
                    let done = t.elapsed();
                    let since = started.elapsed();
                    if since > warm_up + run {
                        break;
                    }
                    if since > warm_up {
                        latencies.push(done);
                        bytes += len;
                    }
                }
                (latencies, bytes)
            })
        })
        .collect();
    let (mut all, mut bytes) = (Vec::new(), 0);
    for t in tasks {
        let (l, b) = t.await.expect("driver task");
        all.extend(l);
        bytes += b;
    }
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Row {
        label: probe.label.clone(),
        requests: all.len(),
        bytes,
        secs,
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// Deploys the content, signs versions and mints a token; returns the probes.
async fn prepare(hub: &Hub) -> Vec<Probe> {
    hub.upload_key().await;
    hub.create_repo("libs").await;
    for i in 0..ARTIFACTS {
        let (status, body) = hub
            .deploy(
                &format!("libs/app/lib{i:03}.bin"),
                support::content(4096, i as u32 + 1),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let small = support::content(1024, 7001);
    assert_eq!(
        hub.deploy("libs/files/small.bin", small).await.0,
        StatusCode::CREATED
    );
    let large = support::content(10 << 20, 7002);
    assert_eq!(
        hub.deploy("libs/files/large.bin", large).await.0,
        StatusCode::CREATED
    );
    // Twelve versions, so the first page of the listing is full.
    for v in 1..=12 {
        hub.create_bundle(
            &json!({"name": "app", "version": format!("1.0.{v}"), "sign_immediately": true,
            "spec": {"queries": [{"aql": "items.find({\"repo\":\"libs\",\"path\":\"app\"})"}]}}),
        )
        .await;
    }
    let res = hub
        .dist_api(Method::POST, "security/token")
        .form(&[
            ("username", "admin"),
            ("scope", "applied-permissions/admin"),
        ])
        .send()
        .await
        .unwrap();
    let (status, t) = hub.json(res).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let bearer = format!("Bearer {}", t["access_token"].as_str().unwrap());
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PW}"))
    );
    let (b, basic) = (Some(bearer.as_str()), Some(basic.as_str()));
    let version = "/distribution/api/v1/release_bundle/app/1.0.12";
    let aql = r#"items.find({"repo":"libs","name":{"$match":"lib01*"}})"#;
    let mut large = Probe::new(
        "GET /artifactory/libs/files/large.bin (10 MiB)",
        "GET",
        "/artifactory/libs/files/large.bin",
        b,
        "",
    );
    large.throughput = true;
    vec![
        Probe::new(
            "GET system/ping (baseline)",
            "GET",
            "/distribution/api/v1/system/ping",
            None,
            "",
        ),
        Probe::new(
            "GET release_bundle/{n}/{v}, 100 artifacts, json, Bearer",
            "GET",
            version,
            b,
            "",
        ),
        Probe::new("the same, Basic", "GET", version, basic, ""),
        Probe::new(
            "GET release_bundle/{n}/{v}?format=jws, Bearer",
            "GET",
            &format!("{version}?format=jws"),
            b,
            "",
        ),
        Probe::new(
            "GET release_bundle (first page of 10)",
            "GET",
            "/distribution/api/v1/release_bundle",
            b,
            "",
        ),
        Probe::new(
            "GET /artifactory/api/storage/libs/app/lib050.bin",
            "GET",
            "/artifactory/api/storage/libs/app/lib050.bin",
            b,
            "",
        ),
        Probe::new(
            "POST /artifactory/api/search/aql (10 of 100 items)",
            "POST",
            "/artifactory/api/search/aql",
            b,
            aql,
        ),
        Probe::new(
            "GET /artifactory/libs/files/small.bin (1 KiB)",
            "GET",
            "/artifactory/libs/files/small.bin",
            b,
            "",
        ),
        large,
    ]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks rows by label.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let connections = env_parse("WAYBILL_LOAD_CONNECTIONS", 32usize);
    let secs = env_parse("WAYBILL_LOAD_SECS", 3.0f64);
    let rounds = env_parse("WAYBILL_LOAD_ROUNDS", 3usize).max(1);
    let store = std::env::var("WAYBILL_LOAD_STORE").unwrap_or_else(|_| "sqlite".into());

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut launch = Launch::new(&data);
    launch.store = &store;
    launch.env.push(("WAYBILL_LOG", "warn"));
    let hub = Hub {
        server: launch.start(),
        http: support::client(),
        _tmp: dir,
    };
    let probes = prepare(&hub).await;
    let addr = hub
        .server
        .base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();

    // Ping runs before the first row and after every row, and each row is
    // compared with the pings either side of it: on a machine whose speed
    // drifts during the run, a baseline measured once, at the start, would
    // skew every later ratio. The whole sequence runs `rounds` times and
    // every figure reported is the median over the rounds.
    let ping = &probes[0];
    let chosen: Vec<&Probe> = probes
        .iter()
        .skip(1)
        .filter(|p| filter.as_deref().is_none_or(|f| p.label.contains(f)))
        .collect();
    let mut ping_rows: Vec<Row> = Vec::new();
    let mut results: Vec<Vec<(Row, f64)>> = vec![Vec::new(); chosen.len()];
    for round in 0..rounds {
        let mut last = drive(&addr, ping, connections, secs).await;
        for (i, probe) in chosen.iter().enumerate() {
            let row = drive(&addr, probe, connections, secs).await;
            let next = drive(&addr, ping, connections, secs).await;
            let ratio = row.rate() / ((last.rate() + next.rate()) / 2.0);
            eprintln!(
                "serve: round {round}: {}: {:.0} req/s ({ratio:.2}× ping), p50 {}, p99 {}",
                row.label,
                row.rate(),
                ms(row.p50),
                ms(row.p99)
            );
            results[i].push((row, ratio));
            ping_rows.push(std::mem::replace(&mut last, next));
        }
        ping_rows.push(last);
    }
    let median = |mut xs: Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    let mut report = format!(
        "Load: one hub ({store}) on loopback, {connections} keep-alive connections, \
         {secs} s per row after a 0.5 s warm-up; the driver runs in the bench process. \
         {rounds} rounds; in each, ping ran before the first row and after every row, \
         and a row's ratio is to the mean of the pings either side of it. \
         Every figure is the median over the rounds.\n\n\
         | request | req/s | ratio to ping | p50 | p99 | throughput |\n\
         |---|---|---|---|---|---|\n"
    );
    let ms_of = |d: f64| format!("{d:.2} ms");
    report += &format!(
        "| {} | {:.0} | 1.00× | {} | {} | - |\n",
        ping.label,
        median(ping_rows.iter().map(Row::rate).collect()),
        ms_of(median(
            ping_rows
                .iter()
                .map(|r| r.p50.as_secs_f64() * 1e3)
                .collect()
        )),
        ms_of(median(
            ping_rows
                .iter()
                .map(|r| r.p99.as_secs_f64() * 1e3)
                .collect()
        )),
    );
    for (probe, runs) in chosen.iter().zip(&results) {
        let of = |f: &dyn Fn(&(Row, f64)) -> f64| median(runs.iter().map(f).collect());
        report += &format!(
            "| {} | {:.0} | {:.2}× | {} | {} | {} |\n",
            probe.label,
            of(&|(r, _)| r.rate()),
            of(&|(_, ratio)| *ratio),
            ms_of(of(&|(r, _)| r.p50.as_secs_f64() * 1e3)),
            ms_of(of(&|(r, _)| r.p99.as_secs_f64() * 1e3)),
            if probe.throughput {
                format!("{:.2} GB/s", of(&|(r, _)| r.bytes as f64 / r.secs / 1e9))
            } else {
                "-".into()
            }
        );
    }
    println!("{report}");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    if let Err(e) = std::fs::write(target.join("bench-serve.md"), &report) {
        eprintln!("could not write the report: {e}");
    }
}
