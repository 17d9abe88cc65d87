//! Storage bench: create, paged list and get of bundle versions in a bundle
//! that already holds 10k versions, on every backend compiled in, beside the
//! in-memory store as the same-run baseline (report ratios, not times).
//!
//! `cargo bench --bench storage --all-features` covers sqlite and sled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use waybill::backend::{StoreKind, open_store};
use waybill::memory::MemoryStore;
use waybill::store::{Page, Store};
use waybill_store_testkit::fixtures::{name, ver, version};

const VERSIONS: u64 = 10_000;
const BUNDLE: &str = "bench-app";

fn filled(rt: &tokio::runtime::Runtime, store: &Arc<dyn Store>) {
    rt.block_on(async {
        for i in 0..VERSIONS {
            store
                .create_version(version(BUNDLE, &format!("1.0.{i}"), i))
                .await
                .expect("create");
        }
    });
}

fn storage(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut stores: Vec<(String, Arc<dyn Store>, Option<tempfile::TempDir>)> =
        vec![("memory".into(), Arc::new(MemoryStore::new()), None)];
    for kind in StoreKind::compiled_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(kind, dir.path()).expect("open store");
        stores.push((kind.to_string(), store, Some(dir)));
    }
    for (_, store, _) in &stores {
        filled(&rt, store);
    }

    let mut group = c.benchmark_group("storage_10k_versions");
    group.sample_size(20);
    group.measurement_time(std::time::Duration::from_secs(3));
    let bundle = name(BUNDLE);
    for (label, store, _) in &stores {
        group.bench_with_input(BenchmarkId::new("list_page_100", label), store, |b, s| {
            b.iter(|| {
                let page = Page {
                    offset: 5_000,
                    limit: 100,
                };
                let listed = rt
                    .block_on(s.list_versions(Some(&bundle), page))
                    .expect("list");
                assert_eq!(listed.items.len(), 100);
                black_box(listed.total)
            })
        });
        let probe = AtomicU64::new(0);
        group.bench_with_input(BenchmarkId::new("get", label), store, |b, s| {
            b.iter(|| {
                // A stride through the first 10k, so no single row stays hot.
                let i = probe.fetch_add(7_919, Ordering::Relaxed) % VERSIONS;
                let v = ver(&format!("1.0.{i}"));
                let got = rt.block_on(s.get_version(&bundle, &v)).expect("get");
                black_box(got.expect("present"))
            })
        });
        // Last: creating grows the bundle past 10k versions.
        let next = AtomicU64::new(VERSIONS);
        group.bench_with_input(BenchmarkId::new("create", label), store, |b, s| {
            b.iter(|| {
                let i = next.fetch_add(1, Ordering::Relaxed);
                rt.block_on(s.create_version(version(BUNDLE, &format!("1.0.{i}"), i)))
                    .expect("create")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, storage);
criterion_main!(benches);
