//! Project automation in Rust (the matklad/cargo-xtask convention):
//! `cargo xtask <task>`, with the alias in `.cargo/config.toml`.
//!
//! - `test`: the whole test suite, as README.md names it.
//! - `ci`: exactly what CI runs (`.ci/run`).
//! - `dist`: release binaries (`release-lto` profile, stripped) as a tar.gz
//!   plus `SHA256SUMS` in `dist/`, and a detached OpenPGP signature of the
//!   archive when `WAYBILL_DIST_SIGNING_KEY` names an armored private key
//!   (passphrase in `WAYBILL_SIGNING_PASSPHRASE`).
//! - `bench-e2e`: installs rsync if missing, then runs the end-to-end bench.
//! - `bench-report`: runs the criterion benches and writes their medians and
//!   ratios as markdown to `target/bench-report.md`.
//! - `fuzz [seconds] [target…]`: builds the libFuzzer targets in
//!   `tests/fuzz` (the flags cargo-fuzz passes, on stable Rust, without a
//!   sanitizer: the code under test forbids `unsafe`) and runs each for a
//!   bounded time from its committed seeds.
//!
//! It has no dependencies on purpose: it must build in seconds on a fresh machine.

mod report;
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
        "bench-e2e" => bench_e2e(),
        "bench-report" => report::bench_report(&args[1..]),
        "fuzz" => fuzz(&args[1..]),
        "help" | "--help" | "-h" => {
            println!(
                "usage: cargo xtask <task>\n\n\
                 \x20 test          run the whole test suite\n\
                 \x20 ci            run what CI runs (.ci/run)\n\
                 \x20 dist          build a release archive into dist/ (signed if WAYBILL_DIST_SIGNING_KEY is set)\n\
                 \x20 bench-e2e     hub and three edges against rsync (installs rsync if missing)\n\
                 \x20 bench-report  run the criterion benches and write target/bench-report.md\n\
                 \x20 fuzz [--ci] [secs] [target...]  run the fuzz targets (default: 60 s each, every target; --ci: fixed seed and runs)"
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

/// The cargo target directory (`CARGO_TARGET_DIR` or `target/`).
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
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
    // The client-library tests install their libraries into a virtual
    // environment themselves; they need Python with venv and pip.
    ensure_installed(
        "python3 with venv",
        || {
            succeeds("python3", &["-m", "venv", "--help"])
                && succeeds("python3", &["-m", "ensurepip", "--version"])
        },
        &["python3", "python3-venv", "python3-pip"],
    )?;
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

/// The fuzz targets in `tests/fuzz/fuzz_targets`.
const FUZZ_TARGETS: [&str; 3] = ["aql", "wildcard", "bodies"];

/// Builds the fuzz targets with sanitizer coverage and runs each for
/// `seconds` over a scratch copy of its seeds: inputs up to 64 KiB, and any
/// one taking over a second counts as a hang. A crash leaves its input in
/// `target/fuzz/artifacts/<target>/`.
fn fuzz(args: &[String]) -> Result<(), String> {
    // `--ci`: a reproducible run (fixed seed, bounded runs per target, a
    // time limit as a backstop), so CI explores exactly what a developer
    // reproduces with the same command; plain runs explore afresh.
    let ci = args.first().is_some_and(|a| a == "--ci");
    let args = if ci { &args[1..] } else { args };
    let seconds: u64 = match args.first() {
        Some(s) => s
            .parse()
            .map_err(|_| format!("fuzz: '{s}' is not a number of seconds"))?,
        None => 60,
    };
    let chosen: Vec<&str> = if args.len() > 1 {
        args[1..].iter().map(String::as_str).collect()
    } else {
        FUZZ_TARGETS.to_vec()
    };
    let root = project_root();
    let fuzz_dir = root.join("tests/fuzz");
    let target = target_dir().join("fuzz");
    // What cargo-fuzz passes to rustc (minus its nightly-only sanitizer).
    let rustflags = [
        "-Cpasses=sancov-module",
        "-Cllvm-args=-sanitizer-coverage-level=4",
        "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
        "-Cllvm-args=-sanitizer-coverage-pc-table",
        "-Cllvm-args=-sanitizer-coverage-trace-compares",
        "--cfg=fuzzing",
        "-Cdebug-assertions",
        "-Coverflow-checks",
    ]
    .join(" ");
    // An explicit target keeps the flags off build scripts and proc macros,
    // which would not link without libFuzzer.
    let host = host_triple()?;
    run(cargo()
        .current_dir(&fuzz_dir)
        .env("RUSTFLAGS", rustflags)
        .env("CARGO_TARGET_DIR", &target)
        .args([
            "build",
            "--release",
            "--locked",
            "--bins",
            "--target",
            &host,
        ]))?;
    for name in chosen {
        if !FUZZ_TARGETS.contains(&name) {
            return Err(format!(
                "fuzz: no target '{name}' (one of {FUZZ_TARGETS:?})"
            ));
        }
        let corpus = target.join("corpus").join(name);
        let artifacts = target.join("artifacts").join(name);
        for dir in [&corpus, &artifacts] {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mut cmd = Command::new(target.join(&host).join("release").join(name));
        if ci {
            let runs = match name {
                "aql" => 3_000_000,
                "wildcard" => 1_500_000,
                _ => 300_000,
            };
            // A fresh corpus, so earlier runs on this machine change nothing.
            let _ = std::fs::remove_dir_all(&corpus);
            std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
            cmd.arg("-seed=20261201").arg(format!("-runs={runs}"));
        }
        run(cmd
            .arg(&corpus)
            .arg(fuzz_dir.join("seeds").join(name))
            .arg(format!("-max_total_time={seconds}"))
            .arg("-max_len=65536")
            .arg("-timeout=1")
            .arg("-rss_limit_mb=4096")
            .arg(format!("-artifact_prefix={}/", artifacts.display())))?;
    }
    Ok(())
}

/// This machine's target triple, as rustc names it.
fn host_triple() -> Result<String, String> {
    let out = Command::new(env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .map_err(|e| format!("rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .ok_or_else(|| "rustc -vV named no host".into())
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
    let version = workspace_version()?;
    let target = env::consts::ARCH.to_string() + "-" + env::consts::OS;
    let name = format!("waybill-{version}-{target}");
    let dist = root.join("dist");
    let stage = dist.join(&name);
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).map_err(|e| e.to_string())?;
    let bin = target_dir().join("release-lto/waybill");
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
    if let Some(key) = env::var_os("WAYBILL_DIST_SIGNING_KEY") {
        // The binary just built signs its own archive, then checks the result
        // against the public half when one is given.
        let archive_path = dist.join(&archive);
        run(Command::new(&bin)
            .arg("sign")
            .arg("--key")
            .arg(&key)
            .arg(&archive_path))?;
        if let Some(public) = env::var_os("WAYBILL_DIST_PUBLIC_KEY") {
            run(Command::new(&bin)
                .arg("verify")
                .arg("--key")
                .arg(public)
                .arg(&archive_path))?;
        }
        println!("wrote dist/{archive}.asc");
    }
    Ok(())
}

/// `version` under `[workspace.package]` in the root `Cargo.toml`: the
/// release's version (this crate's own is 0.0.0).
fn workspace_version() -> Result<String, String> {
    let manifest = std::fs::read_to_string(project_root().join("Cargo.toml"))
        .map_err(|e| format!("Cargo.toml: {e}"))?;
    manifest
        .split("[workspace.package]")
        .nth(1)
        .and_then(|section| {
            section
                .lines()
                .take_while(|l| !l.starts_with('['))
                .find_map(|l| l.strip_prefix("version = "))
        })
        .map(|v| v.trim().trim_matches('"').to_string())
        .ok_or_else(|| "no version under [workspace.package] in Cargo.toml".into())
}

/// Installs Debian `packages` through apt unless `present` already holds.
fn ensure_installed(
    what: &str,
    present: impl Fn() -> bool,
    packages: &[&str],
) -> Result<(), String> {
    if present() {
        return Ok(());
    }
    eprintln!("xtask: {what} is missing; installing it with apt-get");
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    let install = || apt(&[&["install", "-y", "-q"], packages].concat());
    install()
        .or_else(|_| apt(&["update", "-q"]).and_then(|()| install()))
        .map_err(|e| format!("could not install {what} ({e}); install it and rerun"))
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs rsync when it is missing (it is the e2e baseline), then runs
/// the end-to-end bench.
fn bench_e2e() -> Result<(), String> {
    ensure_installed("rsync", || succeeds("rsync", &["--version"]), &["rsync"])?;
    run(cargo().args(["bench", "--bench", "e2e"]))?;
    println!("report: {}", target_dir().join("bench-e2e.md").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_release_version_is_the_workspace_version() {
        let v = super::workspace_version().unwrap();
        assert_ne!(v, env!("CARGO_PKG_VERSION"), "not xtask's own 0.0.0");
        assert!(
            v.split('.').count() == 3 && v.split('.').all(|p| p.parse::<u32>().is_ok()),
            "{v}"
        );
    }
}
