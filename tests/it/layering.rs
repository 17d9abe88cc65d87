//! Architecture invariants: the core depends on no storage engine, HTTP stack
//! or wire-JSON crate, and the application layer on no HTTP stack and no
//! backend, directly or through anything they pull in.

use std::process::Command;

/// Every crate `krate` depends on for building, directly or not.
fn dependency_tree(krate: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            krate,
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
    let crates: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(
        crates.iter().any(|c| c == "waybill-core"),
        "sanity: the tree of {krate} was read: {crates:?}"
    );
    crates
}

fn assert_free_of(krate: &str, forbidden: &[&str]) {
    let crates = dependency_tree(krate);
    for f in forbidden {
        assert!(
            !crates.iter().any(|c| c == f),
            "{krate} depends on {f}, directly or through another crate"
        );
    }
}

/// The HTTP stacks, servers and clients: only the wire crate and the
/// binary may know them.
const HTTP: &[&str] = &[
    "axum",
    "hyper",
    "hyper-util",
    "reqwest",
    "tower",
    "http",
    "waybill-http",
];
/// Storage engines and the crates that adapt them.
const BACKENDS: &[&str] = &[
    "rusqlite",
    "sled",
    "waybill-store-sqlite",
    "waybill-store-sled",
    "waybill-blob-fs",
];

#[test]
fn core_does_not_depend_on_adapters() {
    assert!(dependency_tree("waybill-core").iter().any(|c| c == "ring"));
    assert_free_of("waybill-core", HTTP);
    assert_free_of("waybill-core", BACKENDS);
    assert_free_of("waybill-core", &["tokio", "serde_json", "waybill-app"]);
}

#[test]
fn the_application_layer_knows_no_wire_and_no_backend() {
    assert_free_of("waybill-app", HTTP);
    assert_free_of("waybill-app", BACKENDS);
}

/// The hub reaches edges only through `EdgeTransport`: the application
/// layer never links the edge's domain, and the edge knows no wire.
#[test]
fn the_edge_domain_stands_apart_from_the_hub_and_the_wire() {
    assert_free_of("waybill-app", &["waybill-edge"]);
    assert_free_of("waybill-edge", HTTP);
    assert_free_of("waybill-edge", BACKENDS);
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

/// The wire crate parses, calls a use-case and renders: it reaches no
/// store or blob store itself (its states hold none, and no handler calls
/// one), so every rule about what is stored lives in the application layer.
#[test]
fn the_http_crate_calls_no_store() {
    let field = regex::Regex::new(r"\.(store|blobs)\b").unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/waybill-http/src");
    let mut files = Vec::new();
    crate::support::rust_files(std::path::Path::new(dir), &mut files);
    let mut checked = 0;
    for path in files {
        checked += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            assert!(
                !field.is_match(code),
                "{}:{}: the HTTP crate reaches storage: {line}",
                path.display(),
                n + 1
            );
        }
    }
    assert!(checked > 10, "sanity: the sources were read");
}
