//! Starting a `waybill serve` process and talking to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
}

impl<'a> Launch<'a> {
    pub fn new(data_dir: &'a Path) -> Launch<'a> {
        Launch {
            data_dir,
            store: "sqlite",
            env: vec![("WAYBILL_ADMIN_PASSWORD", "admin-pw-for-tests")],
        }
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_waybill"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--store", self.store])
            .arg("--data-dir")
            .arg(self.data_dir)
            .env_remove("WAYBILL_ADMIN_PASSWORD")
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
