//! Criterion benches of the hot paths, each beside a baseline measured in the
//! same run (report ratios, not absolute times: these machines are noisy).
//!
//! - `edge_selection`: `RuleSet::select_in` over a prebuilt `SiteIndex` (what
//!   the hub runs), one-off `RuleSet::select`, and the index build, vs escaped,
//!   anchored regexes, `wildmatch` and `globset`, over 10k, 100k and 1M sites
//!   with 1, 10 and 100 rules.
//! - `checksum`: the core's `Sha256Hasher` and three-digest `Ingest` (the deploy
//!   path) fed a 256 MiB stream in 64 KiB chunks, beside raw ring SHA-256 and
//!   raw MD5.
//! - `checksum_many_files`: 64 files of 4 MiB through `Ingest` on one worker
//!   and on two, with all three digests (deploy) and SHA-256 only (edge).

use std::borrow::Cow;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use waybill::digest::{Ingest, Sha256Hasher};
use waybill::rules::{DistributionRule, RuleSet, SiteIndex, fold};
use waybill::site::EdgeSite;

const COUNTRIES: [&str; 12] = [
    "US", "DE", "FR", "GB", "JP", "BR", "IN", "CA", "AU", "IT", "ES", "NL",
];

fn synthetic_sites(n: usize) -> Vec<EdgeSite> {
    (0..n)
        .map(|i| {
            let cc = COUNTRIES[i % COUNTRIES.len()];
            let city = format!("City{:03}", (i / 7) % 300);
            EdgeSite::for_matching(&format!("{cc}_{}_Art{i:04}", &city[4..6]), &city, cc)
        })
        .collect()
}

fn rules() -> Vec<DistributionRule> {
    let r = |s: Option<&str>, c: Option<&str>, cc: &[&str]| DistributionRule {
        site_name: s.map(Into::into),
        city_name: c.map(Into::into),
        country_codes: cc.iter().map(|c| c.to_string()).collect(),
    };
    vec![
        r(Some("US_*"), None, &[]),
        r(None, Some("City01?"), &["DE", "FR"]),
        r(Some("*_Art0123"), None, &[]),
        r(Some("GB_1?_*9"), None, &["GB"]),
        r(None, None, &["JP"]),
        r(Some("BR_*_Art*5"), Some("City2*"), &["BR"]),
        r(Some("IN_00_Art0001"), None, &[]),
        r(None, Some("*7"), &["C?"]),
        r(Some("*Art9*"), None, &["AU", "IT"]),
        r(Some("ES_??_*"), Some("City1*"), &["ES"]),
    ]
}

/// `n` rules mixing literals, prefixes, suffixes, `?` and `*`.
fn many_rules(n: usize) -> Vec<DistributionRule> {
    let base = rules();
    (0..n)
        .map(|i| {
            let mut r = base[i % base.len()].clone();
            if i >= base.len() {
                // Variations so rules are distinct but realistic.
                r.site_name = Some(format!(
                    "{}_{:02}_Art{:04}",
                    COUNTRIES[i % COUNTRIES.len()],
                    i % 97,
                    i
                ));
            }
            r
        })
        .collect()
}

/// A baseline matcher from another crate, with the same semantics as the
/// core's (case-insensitive, `*` and `?`, empty means `*`).
trait Baseline: Sized {
    fn compile(pattern: &str) -> Self;
    fn is_match(&self, text: &str) -> bool;
    /// The text a site field is matched as; only regex needs it folded.
    fn prepare(text: &str) -> Cow<'_, str> {
        Cow::Borrowed(text)
    }
}

/// The reference semantics as regexes: fold, escape, anchor.
impl Baseline for regex::Regex {
    fn compile(pattern: &str) -> Self {
        let mut re = String::from("^");
        for c in fold(if pattern.is_empty() { "*" } else { pattern }).chars() {
            match c {
                '*' => re.push_str("(?s:.*)"),
                '?' => re.push_str("(?s:.)"),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        regex::Regex::new(&re).unwrap()
    }

    fn is_match(&self, text: &str) -> bool {
        regex::Regex::is_match(self, text)
    }

    fn prepare(text: &str) -> Cow<'_, str> {
        Cow::Owned(fold(text))
    }
}

impl Baseline for wildmatch::WildMatch {
    fn compile(pattern: &str) -> Self {
        wildmatch::WildMatch::new_case_insensitive(if pattern.is_empty() { "*" } else { pattern })
    }

    fn is_match(&self, text: &str) -> bool {
        self.matches(text)
    }
}

/// `*`/`?` globs, case-insensitive, no separators, brackets escaped.
impl Baseline for globset::GlobMatcher {
    fn compile(pattern: &str) -> Self {
        let escaped: String = pattern
            .chars()
            .map(|c| {
                if "[]{}\\".contains(c) {
                    format!("[{c}]")
                } else {
                    c.to_string()
                }
            })
            .collect();
        globset::GlobBuilder::new(if escaped.is_empty() { "*" } else { &escaped })
            .case_insensitive(true)
            .literal_separator(false)
            .build()
            .unwrap()
            .compile_matcher()
    }

    fn is_match(&self, text: &str) -> bool {
        globset::GlobMatcher::is_match(self, text)
    }
}

/// A rule set compiled with a baseline matcher, selecting site by site.
struct BaselineRules<M>(Vec<(M, M, Vec<M>)>);

impl<M: Baseline> BaselineRules<M> {
    fn new(rules: &[DistributionRule]) -> Self {
        BaselineRules(
            rules
                .iter()
                .map(|r| {
                    (
                        M::compile(r.site_name.as_deref().unwrap_or("*")),
                        M::compile(r.city_name.as_deref().unwrap_or("*")),
                        r.country_codes.iter().map(|c| M::compile(c)).collect(),
                    )
                })
                .collect(),
        )
    }

    fn select<'a>(&self, sites: &'a [EdgeSite]) -> Vec<&'a EdgeSite> {
        sites
            .iter()
            .filter(|s| {
                let (name, city, cc) = (
                    M::prepare(&s.name),
                    M::prepare(&s.city_name),
                    M::prepare(&s.country_code),
                );
                self.0.iter().any(|(n, c, ccs)| {
                    n.is_match(&name)
                        && c.is_match(&city)
                        && (ccs.is_empty() || ccs.iter().any(|p| p.is_match(&cc)))
                })
            })
            .collect()
    }
}

fn edge_selection(c: &mut Criterion) {
    let mut group = c.benchmark_group("edge_selection");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(2));
    group.warm_up_time(std::time::Duration::from_millis(500));
    for n_sites in [10_000usize, 100_000, 1_000_000] {
        let sites = synthetic_sites(n_sites);
        for n_rules in [1usize, 10, 100] {
            let rules = many_rules(n_rules);
            let waybill = RuleSet::new(&rules);
            let index = SiteIndex::new(&sites);
            let regex = BaselineRules::<regex::Regex>::new(&rules);
            let wild = BaselineRules::<wildmatch::WildMatch>::new(&rules);
            let glob = BaselineRules::<globset::GlobMatcher>::new(&rules);
            let expected = waybill.select(&sites).len();
            assert_eq!(waybill.select_in(&index).len(), expected);
            assert_eq!(
                regex.select(&sites).len(),
                expected,
                "regex baseline disagrees"
            );
            assert_eq!(
                wild.select(&sites).len(),
                expected,
                "wildmatch baseline disagrees"
            );
            assert_eq!(
                glob.select(&sites).len(),
                expected,
                "globset baseline disagrees"
            );
            let id = format!("{n_sites}x{n_rules}");
            group.throughput(Throughput::Elements(n_sites as u64));
            // What the hub does: select in the index it keeps between
            // edge registrations.
            group.bench_with_input(BenchmarkId::new("waybill", &id), &index, |b, i| {
                b.iter(|| black_box(waybill.select_in(i)).len())
            });
            // One-off: build the index, then select.
            group.bench_with_input(
                BenchmarkId::new("waybill_unindexed", &id),
                &sites,
                |b, s| b.iter(|| black_box(waybill.select(s)).len()),
            );
            if n_rules == 1 {
                // Paid once per change of the edge list, whatever the rules.
                group.bench_with_input(
                    BenchmarkId::new("waybill_index_build", n_sites),
                    &sites,
                    |b, s| b.iter(|| black_box(SiteIndex::new(s)).len()),
                );
            }
            group.bench_with_input(BenchmarkId::new("wildmatch", &id), &sites, |b, s| {
                b.iter(|| black_box(wild.select(s)).len())
            });
            group.bench_with_input(BenchmarkId::new("regex", &id), &sites, |b, s| {
                b.iter(|| black_box(regex.select(s)).len())
            });
            group.bench_with_input(BenchmarkId::new("globset", &id), &sites, |b, s| {
                b.iter(|| black_box(glob.select(s)).len())
            });
        }
    }
    group.finish();
}

/// Bytes that do not compress or repeat in any way a digest could exploit.
fn stream(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn checksum(c: &mut Criterion) {
    // The workload: a 256 MiB stream arriving in 64 KiB chunks.
    let data = stream(256 << 20);
    let mut group = c.benchmark_group("checksum");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    group.bench_function("sha256_ingest_64k_chunks", |b| {
        b.iter(|| {
            let mut h = Sha256Hasher::new();
            for chunk in data.chunks(64 << 10) {
                h.update(chunk);
            }
            black_box(h.finish())
        })
    });
    group.bench_function("raw_ring_sha256_baseline", |b| {
        b.iter(|| black_box(ring::digest::digest(&ring::digest::SHA256, &data)))
    });
    group.bench_function("ingest_sha256_sha1_md5_64k_chunks", |b| {
        b.iter(|| {
            let mut i = Ingest::new();
            for chunk in data.chunks(64 << 10) {
                i.update(chunk);
            }
            black_box(i.finish())
        })
    });
    group.bench_function("raw_md5_baseline", |b| {
        b.iter(|| {
            use md5::Digest;
            black_box(md5::Md5::digest(&data))
        })
    });
    group.finish();
}

/// Ingests `files` one after another in 64 KiB chunks.
fn ingest_all(files: &[&[u8]], new: impl Fn() -> Ingest) -> usize {
    files
        .iter()
        .map(|f| {
            let mut i = new();
            for chunk in f.chunks(64 << 10) {
                i.update(chunk);
            }
            black_box(i.finish());
        })
        .count()
}

/// Many files through the core's `Ingest`, as concurrent deploys (or an
/// edge receiving several blobs) run it: one worker, then two.
fn checksum_many_files(c: &mut Criterion) {
    let data = stream(256 << 20);
    let files: Vec<&[u8]> = data.chunks(4 << 20).collect();
    let vouched = Ingest::of(b"");
    let mut group = c.benchmark_group("checksum_many_files");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    let kinds: [(&str, &(dyn Fn() -> Ingest + Sync)); 2] = [
        ("all_three", &Ingest::new),
        // What an edge runs: SHA-256 only, the rest vouched for by the hub.
        ("sha256_vouched", &|| {
            Ingest::vouched(vouched.sha1, vouched.md5)
        }),
    ];
    for (kind, new) in kinds {
        group.bench_function(BenchmarkId::new(kind, "one_worker"), |b| {
            b.iter(|| ingest_all(&files, new))
        });
        group.bench_function(BenchmarkId::new(kind, "two_workers"), |b| {
            b.iter(|| {
                let (left, right) = files.split_at(files.len() / 2);
                std::thread::scope(|s| {
                    let other = s.spawn(|| ingest_all(right, new));
                    ingest_all(left, new) + other.join().unwrap()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, edge_selection, checksum, checksum_many_files);
criterion_main!(benches);
