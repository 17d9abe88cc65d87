//! Real third-party client libraries against a real hub: their everyday
//! calls must keep working (issue 12). The library is installed from PyPI,
//! at a pinned version, into a virtual environment under the target dir.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::{Method, StatusCode};

use crate::support::{ADMIN_PW, Hub};

/// dohq-artifactory, the most used Python client for Artifactory.
const DOHQ: &str = "dohq-artifactory==1.0.2";

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}; `cargo xtask test` installs python3 with venv"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Python of a virtual environment holding `requirement`, made once.
fn python_with(requirement: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("client-libs")
        .join(requirement.replace("==", "-"));
    let python = venv.join("bin").join("python");
    let marker = venv.join(".installed");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            requirement,
        ]));
        std::fs::write(&marker, requirement).unwrap();
    }
    python
}

#[tokio::test]
async fn dohq_artifactory_everyday_calls() {
    let python = python_with(DOHQ);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/dohq_everyday.py");
    for store in crate::support::stores() {
        let hub = Hub::start(store);
        let out = Command::new(&python)
            .arg(&script)
            .arg(&hub.server.base)
            .arg(ADMIN_PW)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("all dohq-artifactory calls behaved"),
            "{store}: the client library failed:\n{stdout}\n{}\nhub log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            hub.server.log()
        );
        // And it really talked to this hub: what it left is here.
        let res = hub
            .req(Method::GET, "api/storage/py-libs/dir/hello.txt?properties")
            .send()
            .await
            .unwrap();
        let (status, body) = hub.json(res).await;
        assert_eq!(status, StatusCode::OK, "{store}: {body}");
        assert_eq!(body["properties"]["owner"][0], "ops", "{store}: {body}");
        assert!(body["properties"].get("stage").is_none(), "{body}");
    }
}
