//! The AQL parser and evaluator: any text parses or is refused, never a
//! panic; what parses runs over a small repository.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use waybill_core::aql::{self, Query};
use waybill_core::artifact::{Item, ItemKind, ItemPath, RepoKey, Repository};
use waybill_core::digest::Ingest;
use waybill_core::memory::MemoryStore;
use waybill_core::store::ItemRepo;

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
});

static STORE: LazyLock<MemoryStore> = LazyLock::new(|| {
    let store = MemoryStore::new();
    RT.block_on(async {
        for repo in ["libs", "docs"] {
            store
                .create_repository(Repository {
                    key: RepoKey::parse(repo).unwrap(),
                    package_type: "generic".into(),
                    description: String::new(),
                    created: 1,
                    read_only: false,
                })
                .await
                .unwrap();
        }
        for (i, path) in [
            "libs/a/app.jar",
            "libs/a/b/lib.tgz",
            "docs/readme.md",
            "libs/x.txt",
        ]
        .iter()
        .enumerate()
        {
            let (repo, path) = path.split_once('/').unwrap();
            store
                .put_file(Item {
                    repo: RepoKey::parse(repo).unwrap(),
                    path: ItemPath::parse(path).unwrap(),
                    kind: ItemKind::File,
                    size: i as u64 * 100,
                    checksums: Some(Ingest::of(path.as_bytes())),
                    created: 1_000 * i as u64,
                    modified: 2_000 * i as u64,
                    created_by: "fuzz".into(),
                    modified_by: "fuzz".into(),
                    props: [("team".to_string(), vec![format!("t{i}")])].into(),
                })
                .await
                .unwrap();
        }
    });
    store
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(query) = Query::parse_at(text, 1_700_000_000_000) {
        let _ = RT.block_on(aql::run(&*STORE, &query));
    }
});
