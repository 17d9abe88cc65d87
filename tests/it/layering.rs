//! Architecture invariant: the core depends on no storage engine, HTTP stack
//! or wire-JSON crate, directly or through anything it pulls in.

use std::process::Command;

#[test]
fn core_does_not_depend_on_adapters() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "waybill-core",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"ring"),
        "sanity: the tree was read: {crates:?}"
    );
    for forbidden in [
        "rusqlite",
        "sled",
        "axum",
        "hyper",
        "tokio",
        "serde_json",
        "reqwest",
        "waybill-store-sqlite",
        "waybill-store-sled",
        "waybill-http",
        "waybill-blob-fs",
    ] {
        assert!(
            !crates.contains(&forbidden),
            "waybill-core depends on {forbidden}"
        );
    }
}

#[test]
fn backends_depend_on_the_core_and_not_on_each_other() {
    for (krate, other) in [
        ("waybill-store-sqlite", "waybill-store-sled"),
        ("waybill-store-sled", "waybill-store-sqlite"),
    ] {
        let manifest = std::fs::read_to_string(format!(
            "{}/crates/{krate}/Cargo.toml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let deps = manifest
            .split("[dependencies]")
            .nth(1)
            .unwrap()
            .split("\n[")
            .next()
            .unwrap();
        assert!(
            deps.contains("waybill-core"),
            "{krate} must build on the core"
        );
        assert!(!deps.contains(other), "{krate} depends on {other}");
        assert!(
            !deps.contains("waybill-http"),
            "{krate} depends on the HTTP adapter"
        );
    }
}
