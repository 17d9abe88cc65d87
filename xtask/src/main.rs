//! Project automation in Rust (the matklad/cargo-xtask convention):
//! `cargo xtask <task>`, with the alias in `.cargo/config.toml`.
//!
//! - `test`: the whole test suite, as README.md names it.
//! - `ci`: exactly what CI runs (`.ci/run`).
//! - `dist`: release binaries (`release-lto` profile, stripped) as a tar.gz
//!   plus `SHA256SUMS` in `dist/`.
//!
//! It has no dependencies on purpose: it must build in seconds on a fresh machine.

mod tidy;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("help");
    let result = match task {
        "test" => test(&args[1..]),
        "ci" => run(Command::new("bash").arg(project_root().join(".ci/run"))),
        "dist" => dist(),
        "help" | "--help" | "-h" => {
            println!(
                "usage: cargo xtask <test|ci|dist>\n\n  test  run the whole test suite\n  ci    run what CI runs (.ci/run)\n  dist  build release archives into dist/"
            );
            Ok(())
        }
        other => Err(format!("unknown task '{other}'; try `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(project_root());
    cmd
}

fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs every test of the workspace with all backends compiled in, then the
/// binary's tests again with only the default backend, which is the build
/// that exercises "backend not compiled in".
fn test(extra: &[String]) -> Result<(), String> {
    let nextest = has_nextest();
    let runs: [&[&str]; 2] = [
        &["--workspace", "--all-features"],
        &["--package", "waybill"],
    ];
    for scope in runs {
        let mut cmd = cargo();
        if nextest {
            cmd.args(["nextest", "run", "--no-fail-fast"]);
        } else {
            cmd.args(["test", "--no-fail-fast"]);
        }
        cmd.args(scope).args(extra);
        run(&mut cmd)?;
    }
    Ok(())
}

fn dist() -> Result<(), String> {
    let root = project_root();
    run(cargo().args([
        "build",
        "--profile",
        "release-lto",
        "--all-features",
        "--bin",
        "waybill",
    ]))?;
    let version = env!("CARGO_PKG_VERSION");
    let target = env::consts::ARCH.to_string() + "-" + env::consts::OS;
    let name = format!("waybill-{version}-{target}");
    let dist = root.join("dist");
    let stage = dist.join(&name);
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).map_err(|e| e.to_string())?;
    let bin = root.join("target/release-lto/waybill");
    std::fs::copy(&bin, stage.join("waybill")).map_err(|e| format!("{}: {e}", bin.display()))?;
    for doc in ["README.md", "ARCHITECTURE.md"] {
        std::fs::copy(root.join(doc), stage.join(doc)).map_err(|e| format!("{doc}: {e}"))?;
    }
    let archive = format!("{name}.tar.gz");
    run(Command::new("tar").current_dir(&dist).args([
        "--owner=0",
        "--group=0",
        "-czf",
        &archive,
        &name,
    ]))?;
    std::fs::remove_dir_all(&stage).map_err(|e| e.to_string())?;
    let sums = Command::new("sha256sum")
        .current_dir(&dist)
        .arg(&archive)
        .output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    if !sums.status.success() {
        return Err("sha256sum failed".into());
    }
    std::fs::write(dist.join("SHA256SUMS"), &sums.stdout).map_err(|e| e.to_string())?;
    println!("{}", String::from_utf8_lossy(&sums.stdout).trim());
    println!("wrote dist/{archive} and dist/SHA256SUMS");
    Ok(())
}
