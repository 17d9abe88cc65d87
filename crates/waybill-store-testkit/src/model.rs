//! Model-based property tests: random operation sequences run against a
//! backend and against `MemoryStore`, compared answer by answer.
//!
//! Names and versions come from tiny pools so that sequences collide often
//! (duplicate creates, deletes of what exists, renames into taken names).
//! `Reopen` closes and re-opens the backend, so durability is checked too.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use waybill_core::Error;
use waybill_core::aql::ItemHint;
use waybill_core::artifact::Item;
use waybill_core::digest::Ingest;
use waybill_core::memory::MemoryStore;
use waybill_core::state::{After, VersionEvent};
use waybill_core::store::{Page, Store};

use crate::fixtures::*;
use crate::{Opener, tempdir};

const NAMES: [&str; 3] = ["a", "b", "c"];
const VERSIONS: [&str; 3] = ["1", "2", "10"];
const REPOS: [&str; 2] = ["r1", "r2"];
const PATHS: [&str; 6] = ["a", "a/b", "a/b/c.txt", "a/d.bin", "ab/x", "top"];
const CONTENTS: [&str; 3] = ["one", "two", "three"];

/// One operation on a store.
#[derive(Clone, Debug)]
pub enum Op {
    /// Create version.
    Create(usize, usize, u8),
    /// Get version.
    Get(usize, usize),
    /// Set the description, then abort or commit.
    Describe(usize, usize, u8, bool),
    /// Apply the Sign event through the state machine.
    Sign(usize, usize),
    /// List versions of one bundle or all.
    List(Option<usize>, u8, u8),
    /// Newest version of a bundle.
    Latest(usize),
    /// Delete one version.
    DeleteVersion(usize, usize),
    /// Delete a bundle.
    DeleteBundle(usize),
    /// Put a site (id, name index).
    PutSite(u8, usize),
    /// Delete a site.
    DeleteSite(u8),
    /// List sites.
    ListSites,
    /// Create a tracker.
    CreateTracker(usize, usize),
    /// Delete the trackers of a version.
    DeleteTrackers(usize, usize),
    /// List trackers of a bundle, or all.
    ListTrackers(Option<usize>),
    /// Put a key, maybe as default.
    PutKey(u8, bool),
    /// The default key.
    DefaultKey,
    /// Create a user.
    CreateUser(usize),
    /// Delete a user.
    DeleteUser(usize),
    /// First-wins setting.
    SettingOrInsert(u8, u8),
    /// Create a repository.
    CreateRepo(usize),
    /// Delete a repository.
    DeleteRepo(usize),
    /// Put a file (repo, path, content, property value).
    PutFile(usize, usize, usize, u8),
    /// Get an item.
    GetItem(usize, usize),
    /// Delete an item and its subtree.
    DeleteItem(usize, usize),
    /// List children (None = root).
    Children(usize, Option<usize>),
    /// Set a property, maybe recursively.
    SetProp(usize, usize, bool, u8),
    /// Find by property value.
    FindByProp(u8),
    /// Find by name.
    FindByName(usize),
    /// Count references to content.
    CountRefs(usize),
    /// Close and re-open the backend.
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let n = || 0..NAMES.len();
    let v = || 0..VERSIONS.len();
    prop_oneof![
        4 => (n(), v(), any::<u8>()).prop_map(|(n, v, d)| Op::Create(n, v, d)),
        2 => (n(), v()).prop_map(|(n, v)| Op::Get(n, v)),
        3 => (n(), v(), any::<u8>(), any::<bool>()).prop_map(|(n, v, d, c)| Op::Describe(n, v, d, c)),
        2 => (n(), v()).prop_map(|(n, v)| Op::Sign(n, v)),
        3 => (proptest::option::of(n()), 0..5u8, 1..5u8).prop_map(|(n, o, l)| Op::List(n, o, l)),
        1 => n().prop_map(Op::Latest),
        2 => (n(), v()).prop_map(|(n, v)| Op::DeleteVersion(n, v)),
        1 => n().prop_map(Op::DeleteBundle),
        2 => (0..3u8, n()).prop_map(|(i, n)| Op::PutSite(i, n)),
        1 => (0..3u8).prop_map(Op::DeleteSite),
        1 => Just(Op::ListSites),
        2 => (n(), v()).prop_map(|(n, v)| Op::CreateTracker(n, v)),
        1 => (n(), v()).prop_map(|(n, v)| Op::DeleteTrackers(n, v)),
        1 => proptest::option::of(n()).prop_map(Op::ListTrackers),
        1 => (0..3u8, any::<bool>()).prop_map(|(i, d)| Op::PutKey(i, d)),
        1 => Just(Op::DefaultKey),
        1 => n().prop_map(Op::CreateUser),
        1 => n().prop_map(Op::DeleteUser),
        1 => (0..2u8, any::<u8>()).prop_map(|(k, v)| Op::SettingOrInsert(k, v)),
        2 => (0..REPOS.len()).prop_map(Op::CreateRepo),
        1 => (0..REPOS.len()).prop_map(Op::DeleteRepo),
        4 => (0..REPOS.len(), 0..PATHS.len(), 0..CONTENTS.len(), 0..3u8).prop_map(|(r, p, c, v)| Op::PutFile(r, p, c, v)),
        1 => (0..REPOS.len(), 0..PATHS.len()).prop_map(|(r, p)| Op::GetItem(r, p)),
        1 => (0..REPOS.len(), 0..PATHS.len()).prop_map(|(r, p)| Op::DeleteItem(r, p)),
        1 => (0..REPOS.len(), proptest::option::of(0..PATHS.len())).prop_map(|(r, p)| Op::Children(r, p)),
        1 => (0..REPOS.len(), 0..PATHS.len(), any::<bool>(), 0..3u8).prop_map(|(r, p, rec, v)| Op::SetProp(r, p, rec, v)),
        1 => (0..3u8).prop_map(Op::FindByProp),
        1 => (0..PATHS.len()).prop_map(Op::FindByName),
        1 => (0..CONTENTS.len()).prop_map(Op::CountRefs),
        1 => Just(Op::Reopen),
    ]
}

fn domain_outcome(e: &Error) -> String {
    match e {
        Error::Store(s) => format!("store {:?}", s.kind()),
        Error::Invalid { field, .. } => format!("invalid {field}"),
        other => format!("{other}"),
    }
}

/// Candidate sets may come in any order; compare them sorted.
fn sorted(mut items: Vec<Item>) -> Vec<Item> {
    items.sort_by(|a, b| (&a.repo, &a.path).cmp(&(&b.repo, &b.path)));
    items
}

/// Applies `op` and renders the answer, so two stores can be compared.
async fn apply(s: &dyn Store, op: &Op, step: u64) -> String {
    let n = |i: usize| name(NAMES[i]);
    let v = |i: usize| ver(VERSIONS[i]);
    macro_rules! show {
        ($e:expr) => {
            match $e {
                Ok(x) => format!("{x:?}"),
                Err(e) => format!("err {:?}", e.kind()),
            }
        };
    }
    match op {
        Op::Create(ni, vi, d) => {
            let mut rb = version(NAMES[*ni], VERSIONS[*vi], step);
            rb.description = format!("d{d}");
            show!(s.create_version(rb).await)
        }
        Op::Get(ni, vi) => show!(s.get_version(&n(*ni), &v(*vi)).await),
        Op::Describe(ni, vi, d, commit) => {
            let (d, commit) = (*d, *commit);
            let res = s
                .update_version(
                    &n(*ni),
                    &v(*vi),
                    Box::new(move |rb| {
                        rb.description = format!("u{d}");
                        if commit {
                            Ok(())
                        } else {
                            Err(Error::NotFound {
                                what: "abort".into(),
                            })
                        }
                    }),
                )
                .await;
            res.map(|x| format!("{x:?}"))
                .unwrap_or_else(|e| domain_outcome(&e))
        }
        Op::Sign(ni, vi) => {
            let res = s
                .update_version(
                    &n(*ni),
                    &v(*vi),
                    Box::new(|rb| {
                        if let After::State(st) = rb.state.apply(VersionEvent::Sign)? {
                            rb.state = st;
                        }
                        Ok(())
                    }),
                )
                .await;
            res.map(|x| format!("{x:?}"))
                .unwrap_or_else(|e| domain_outcome(&e))
        }
        Op::List(ni, offset, limit) => {
            let page = Page {
                offset: *offset as u64,
                limit: *limit as u64,
            };
            show!(s.list_versions(ni.map(n).as_ref(), page).await)
        }
        Op::Latest(ni) => show!(s.latest_version(&n(*ni)).await),
        Op::DeleteVersion(ni, vi) => show!(s.delete_version(&n(*ni), &v(*vi)).await),
        Op::DeleteBundle(ni) => show!(s.delete_bundle(&n(*ni)).await),
        Op::PutSite(id, ni) => show!(s.put_site(site(*id as u64, NAMES[*ni], "City", "DE")).await),
        Op::DeleteSite(id) => show!(
            s.delete_site(&site(*id as u64, "", "", "").service_id)
                .await
        ),
        Op::ListSites => show!(s.list_sites().await),
        Op::CreateTracker(ni, vi) => {
            show!(s.create_tracker(tracker(NAMES[*ni], VERSIONS[*vi])).await)
        }
        Op::DeleteTrackers(ni, vi) => show!(s.delete_trackers(&n(*ni), &v(*vi)).await),
        Op::ListTrackers(ni) => show!(s.list_trackers(ni.map(n).as_ref(), None).await),
        Op::PutKey(id, default) => show!(s.put_key(key(&format!("k{id}"), *default)).await),
        Op::DefaultKey => show!(s.default_key().await),
        Op::CreateUser(ni) => show!(s.create_user(user(NAMES[*ni], false)).await),
        Op::DeleteUser(ni) => show!(s.delete_user(NAMES[*ni]).await),
        Op::SettingOrInsert(k, val) => {
            show!(
                s.setting_or_insert(&format!("s{k}"), &format!("v{val}"))
                    .await
            )
        }
        Op::CreateRepo(r) => show!(s.create_repository(repository(REPOS[*r])).await),
        Op::DeleteRepo(r) => show!(s.delete_repository(&rkey(REPOS[*r])).await),
        Op::PutFile(r, p, c, v) => {
            show!(
                s.put_file(file(
                    REPOS[*r],
                    PATHS[*p],
                    CONTENTS[*c],
                    ("q", &format!("v{v}"))
                ))
                .await
            )
        }
        Op::GetItem(r, p) => show!(s.get_item(&rkey(REPOS[*r]), &ipath(PATHS[*p])).await),
        Op::DeleteItem(r, p) => show!(s.delete_item(&rkey(REPOS[*r]), &ipath(PATHS[*p])).await),
        Op::Children(r, p) => {
            let folder = p.map(|p| ipath(PATHS[p])).unwrap_or_default();
            show!(s.list_children(&rkey(REPOS[*r]), &folder).await)
        }
        Op::SetProp(r, p, recursive, v) => {
            let v = format!("v{v}");
            let res = s
                .update_props(
                    &rkey(REPOS[*r]),
                    &ipath(PATHS[*p]),
                    *recursive,
                    Box::new(move |props| {
                        props.insert("q".into(), vec![v.clone()]);
                    }),
                )
                .await;
            res.map(|x| format!("{x:?}"))
                .unwrap_or_else(|e| domain_outcome(&e))
        }
        Op::FindByProp(v) => {
            let hint = ItemHint {
                prop: Some(("q".into(), format!("v{v}"))),
                ..Default::default()
            };
            show!(s.find_items(&hint).await.map(sorted))
        }
        Op::FindByName(p) => {
            let hint = ItemHint {
                name: Some(ipath(PATHS[*p]).name().to_string()),
                ..Default::default()
            };
            show!(s.find_items(&hint).await.map(sorted))
        }
        Op::CountRefs(c) => show!(
            s.count_content_refs(&Ingest::of(CONTENTS[*c].as_bytes()).sha256)
                .await
        ),
        Op::Reopen => "reopened".into(),
    }
}

/// Runs `cases` random sequences against the backend `open` makes and
/// against `MemoryStore`, failing (with a shrunk sequence) on the first
/// differing answer.
pub fn check(open: &Opener, cases: u32) {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = proptest::collection::vec(op_strategy(), 1..40);
    let result = runner.run(&strategy, |ops| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let dir = tempdir();
            let mut backend: Arc<dyn Store> = open(dir.path());
            let model = MemoryStore::new();
            for (step, op) in ops.iter().enumerate() {
                if let Op::Reopen = op {
                    drop(backend);
                    backend = open(dir.path());
                }
                let got = apply(backend.as_ref(), op, step as u64).await;
                let want = apply(&model, op, step as u64).await;
                if got != want {
                    return Err(TestCaseError::fail(format!(
                        "step {step} {op:?}:\n backend: {got}\n   model: {want}"
                    )));
                }
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("backend diverged from the memory model: {e}");
    }
}
