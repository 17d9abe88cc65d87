//! Starting a `waybill serve` process and talking to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

/// A running server; killed on drop.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub log: PathBuf,
}

/// How to start a server.
pub struct Launch<'a> {
    pub data_dir: &'a Path,
    pub store: &'a str,
    pub env: Vec<(&'a str, &'a str)>,
    /// `serve` for a hub; `edge` plus its flags for an edge.
    pub subcommand: Vec<String>,
    /// Where to listen; port 0 picks a free one.
    pub listen: String,
}

impl<'a> Launch<'a> {
    pub fn new(data_dir: &'a Path) -> Launch<'a> {
        Launch {
            data_dir,
            store: "sqlite",
            env: vec![("WAYBILL_ADMIN_PASSWORD", "admin-pw-for-tests")],
            subcommand: vec!["serve".into()],
            listen: "127.0.0.1:0".into(),
        }
    }

    /// An edge at `site`, `city`, `country`, paired with `token`.
    pub fn edge(
        data_dir: &'a Path,
        site: &str,
        city: &str,
        country: &str,
        token: &str,
    ) -> Launch<'a> {
        let mut l = Launch::new(data_dir);
        l.subcommand = [
            "edge",
            "--site-name",
            site,
            "--city",
            city,
            "--country",
            country,
            "--pairing-token",
            token,
        ]
        .map(str::to_string)
        .to_vec();
        l
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_waybill"));
        cmd.args(&self.subcommand)
            .args(["--listen", &self.listen, "--store", self.store])
            .arg("--data-dir")
            .arg(self.data_dir)
            .env_remove("WAYBILL_ADMIN_PASSWORD")
            .env_remove("WAYBILL_PAIRING_TOKEN")
            .env("WAYBILL_LOG", "debug");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts the server and waits until it listens.
    pub fn start(&self) -> Server {
        let log = self
            .data_dir
            .with_extension(format!("{}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("spawn waybill");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("waybill listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; log:\n{}",
                    std::fs::read_to_string(&log).unwrap()
                )
            })
            .to_string();
        Server {
            child: Some(child),
            base,
            log,
        }
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn crash(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The process id, while it runs.
    #[allow(dead_code)] // For benches/e2e.rs, which includes this file.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status, if the process has ended (for diagnosing failures).
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub const ADMIN_PW: &str = "admin-pw-for-tests";

/// The passphrase of the protected key fixtures.
pub const FIXTURE_PASSPHRASE: &str = "correct horse battery staple";

pub fn stores() -> Vec<&'static str> {
    let mut s = vec!["sqlite"];
    if cfg!(feature = "sled") {
        s.push("sled");
    }
    s
}

pub struct Hub {
    pub server: Server,
    pub http: reqwest::Client,
    pub _tmp: tempfile::TempDir,
}

impl Hub {
    pub fn start(store: &str) -> Hub {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut launch = Launch::new(&data);
        launch.store = store;
        let server = launch.start();
        Hub {
            server,
            http: client(),
            _tmp: tmp,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(&format!("/artifactory/{path}"))
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .basic_auth("admin", Some(ADMIN_PW))
    }

    pub async fn json(&self, res: reqwest::Response) -> (StatusCode, Value) {
        let status = res.status();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}")),
        )
    }

    /// A request to `/distribution/api/v1/{path}` as the admin.
    pub fn dist_api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(
                method,
                self.server.url(&format!("/distribution/api/v1/{path}")),
            )
            .basic_auth("admin", Some(ADMIN_PW))
    }

    /// One distribution tracker, as JSON.
    pub async fn tracker(&self, name: &str, version: &str, id: u64) -> Value {
        let path = format!("release_bundle/{name}/{version}/distribution/{id}");
        let res = self
            .dist_api(reqwest::Method::GET, &path)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        res.json().await.unwrap()
    }

    /// Uploads the RSA-3072 fixture pair (passphrase "correct horse battery
    /// staple") as the default signing key, the way the JFrog CLI does.
    pub async fn upload_key(&self) {
        let res = self
            .http
            .put(self.server.url("/distribution//api/v1/keys/pgp"))
            .basic_auth("admin", Some(ADMIN_PW))
            .json(
                &json!({"public_key": key_fixture("rsa3072-protected.pub.asc"),
                          "private_key": key_fixture("rsa3072-protected.sec.asc")}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    /// Creates a release bundle version as the admin, unlocking the
    /// fixture key with its passphrase; panics unless it answers 201.
    pub async fn create_bundle(&self, body: &Value) {
        let res = self
            .dist_api(reqwest::Method::POST, "release_bundle")
            .header("X-Gpg-Passphrase", FIXTURE_PASSPHRASE)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "{:?}", res.text().await);
    }

    /// `POST /mc/api/v1/jpds` as the admin: registers an edge.
    pub async fn post_jpd(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(self.server.url("/mc/api/v1/jpds"))
            .basic_auth("admin", Some(ADMIN_PW))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn create_repo(&self, key: &str) {
        let res = self
            .req(reqwest::Method::PUT, &format!("api/repositories/{key}"))
            .json(&json!({"rclass": "local", "packageType": "generic"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{}",
            res.text().await.unwrap()
        );
    }

    pub async fn deploy(&self, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let res = self
            .req(reqwest::Method::PUT, path)
            .body(body)
            .send()
            .await
            .unwrap();
        self.json(res).await
    }

    pub async fn aql(&self, query: &str) -> (StatusCode, Value) {
        let res = self
            .req(reqwest::Method::POST, "api/search/aql")
            .header("content-type", "text/plain")
            .body(query.to_string())
            .send()
            .await
            .unwrap();
        self.json(res).await
    }
}

/// A key from `tests/fixtures/keys/` (see the README there).
pub fn key_fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn sha256_hex(data: &[u8]) -> String {
    waybill::digest::Sha256::of(data).to_hex()
}

/// Deterministic, incompressible-looking content.
pub fn content(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The message of an error body, in either wire's shape: Artifactory's
/// `{"errors":[{"status","message"}]}` under `/artifactory`, or
/// Distribution's `{"status_code","message"}`.
#[allow(dead_code)] // For benches/e2e.rs, which includes this file.
pub fn error_message(v: &Value) -> &str {
    v["message"]
        .as_str()
        .or_else(|| v["errors"][0]["message"].as_str())
        .unwrap_or_else(|| panic!("not an error body: {v}"))
}

/// Every `.rs` file below `dir`, for tests that read the sources.
pub fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
