//! One function per behaviour bullet of `waybill_core::store`.
//!
//! Each case gets an opener and opens its own store in a fresh temporary
//! directory, so cases are independent and can re-open to test durability.

use std::sync::Arc;

use waybill_core::Error;
use waybill_core::StoreErrorKind;
use waybill_core::state::{After, VersionEvent, VersionState};
use waybill_core::store::{Page, Store};
use waybill_core::tracker::SiteStatus;

use crate::fixtures::*;
use crate::{Opener, tempdir};

#[track_caller]
fn assert_kind<T: std::fmt::Debug>(res: Result<T, waybill_core::StoreError>, kind: StoreErrorKind) {
    match res {
        Err(e) => assert_eq!(e.kind(), kind, "{e}"),
        Ok(v) => panic!("expected {kind:?}, got Ok({v:?})"),
    }
}

fn sign_step() -> waybill_core::store::VersionUpdate {
    Box::new(|v| match v.state.apply(VersionEvent::Sign)? {
        After::State(s) => {
            v.state = s;
            Ok(())
        }
        After::Deleted => unreachable!("signing never deletes"),
    })
}

/// `ping` succeeds on a healthy store.
pub async fn ping_answers(open: &Opener) {
    let dir = tempdir();
    open(dir.path()).ping().await.expect("ping");
}

/// Unknown setting is `None`; `put_setting` replaces.
pub async fn settings_round_trip(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    assert_eq!(s.get_setting("call_home").await.unwrap(), None);
    s.put_setting("call_home", "true").await.unwrap();
    s.put_setting("call_home", "false").await.unwrap();
    assert_eq!(
        s.get_setting("call_home").await.unwrap().as_deref(),
        Some("false")
    );
}

/// `setting_or_insert` keeps the first value, also under a race.
pub async fn setting_or_insert_first_wins(open: &Opener) {
    let dir = tempdir();
    let s: Arc<dyn Store> = open(dir.path());
    let mut handles = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.setting_or_insert("service_id", &format!("id-{i}"))
                .await
                .unwrap()
        }));
    }
    let mut seen = Vec::new();
    for h in handles {
        seen.push(h.await.unwrap());
    }
    seen.dedup();
    assert_eq!(seen.len(), 1, "all racers agree: {seen:?}");
    assert_eq!(
        s.get_setting("service_id").await.unwrap(),
        Some(seen[0].clone())
    );
}

/// Every field of a version survives a store round trip.
pub async fn create_then_get_round_trips(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    let v = version("app", "1.0", 100);
    s.create_version(v.clone()).await.unwrap();
    assert_eq!(
        s.get_version(&name("app"), &ver("1.0")).await.unwrap(),
        Some(v)
    );
}

/// An unknown version is `Ok(None)`.
pub async fn get_unknown_version_is_none(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.create_version(version("app", "1.0", 1)).await.unwrap();
    assert_eq!(
        s.get_version(&name("app"), &ver("2.0")).await.unwrap(),
        None
    );
    assert_eq!(
        s.get_version(&name("other"), &ver("1.0")).await.unwrap(),
        None
    );
}

/// A second create of (name, version) is `Conflict` and changes nothing.
pub async fn create_existing_version_conflicts(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    let first = version("app", "1.0", 1);
    s.create_version(first.clone()).await.unwrap();
    let mut second = version("app", "1.0", 2);
    second.description = "intruder".into();
    assert_kind(s.create_version(second).await, StoreErrorKind::Conflict);
    assert_eq!(
        s.get_version(&name("app"), &ver("1.0")).await.unwrap(),
        Some(first)
    );
    assert_eq!(s.list_versions(None, Page::ALL).await.unwrap().total, 1);
}

/// An update is written and the version keeps its place in creation order.
pub async fn update_applies_and_keeps_creation_order(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.create_version(version("app", "1", 1)).await.unwrap();
    s.create_version(version("app", "2", 2)).await.unwrap();
    let updated = s
        .update_version(&name("app"), &ver("1"), sign_step())
        .await
        .unwrap();
    assert_eq!(updated.state, VersionState::Signed);
    let got = s
        .get_version(&name("app"), &ver("1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, updated);
    let latest = s.latest_version(&name("app")).await.unwrap().unwrap();
    assert_eq!(
        latest.version,
        ver("2"),
        "an update does not make a version newer"
    );
}

/// A domain step that returns `Err` gets its error back and writes nothing,
/// even though it had already changed the record it was given.
pub async fn update_aborted_by_domain_writes_nothing(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.create_version(version("app", "1", 1)).await.unwrap();
    s.update_version(&name("app"), &ver("1"), sign_step())
        .await
        .unwrap();
    let before = s.get_version(&name("app"), &ver("1")).await.unwrap();
    let err = s
        .update_version(
            &name("app"),
            &ver("1"),
            Box::new(|v| {
                v.description = "half-written".into();
                v.artifacts.clear();
                v.state.apply(VersionEvent::Update).map(drop)
            }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transition {
                state: VersionState::Signed,
                event: VersionEvent::Update
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        s.get_version(&name("app"), &ver("1")).await.unwrap(),
        before
    );
}

/// Renaming through an update is refused.
pub async fn update_refuses_rename(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.create_version(version("app", "1", 1)).await.unwrap();
    let err = s
        .update_version(
            &name("app"),
            &ver("1"),
            Box::new(|v| {
                v.version = ver("2");
                Ok(())
            }),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert!(
        s.get_version(&name("app"), &ver("2"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.get_version(&name("app"), &ver("1"))
            .await
            .unwrap()
            .is_some()
    );
}

/// Updating an unknown version is `Error::NotFound`.
pub async fn update_unknown_version_is_not_found(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    let err = s
        .update_version(&name("app"), &ver("1"), Box::new(|_| Ok(())))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

/// Listings are newest first, paged, with the total of the whole listing.
pub async fn list_versions_newest_first_and_paged(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    for i in 0..25u64 {
        let bundle = if i % 2 == 0 { "even" } else { "odd" };
        s.create_version(version(bundle, &format!("v{i}"), i))
            .await
            .unwrap();
    }
    let labels = |items: Vec<waybill_core::bundle::ReleaseBundleVersion>| -> Vec<String> {
        items.into_iter().map(|v| v.version.to_string()).collect()
    };
    let first = s
        .list_versions(
            None,
            Page {
                offset: 0,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(first.total, 25);
    assert_eq!(
        labels(first.items),
        (15..25).rev().map(|i| format!("v{i}")).collect::<Vec<_>>()
    );
    let last = s
        .list_versions(
            None,
            Page {
                offset: 20,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(labels(last.items), ["v4", "v3", "v2", "v1", "v0"]);
    let past = s
        .list_versions(
            None,
            Page {
                offset: 30,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!((past.items.len(), past.total), (0, 25));
    let odd = s
        .list_versions(
            Some(&name("odd")),
            Page {
                offset: 1,
                limit: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(odd.total, 12);
    assert_eq!(labels(odd.items), ["v21", "v19", "v17"]);
    let none = s
        .list_versions(Some(&name("nope")), Page::ALL)
        .await
        .unwrap();
    assert_eq!((none.items.len(), none.total), (0, 0));
}

/// LATEST is the version created last, not the greatest version string.
pub async fn latest_version_is_created_last(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    assert_eq!(s.latest_version(&name("app")).await.unwrap(), None);
    for v in ["2.0", "10.0", "1.5"] {
        s.create_version(version("app", v, 1)).await.unwrap();
    }
    s.create_version(version("other", "9", 1)).await.unwrap();
    let latest = |s: Arc<dyn Store>| async move {
        s.latest_version(&name("app"))
            .await
            .unwrap()
            .map(|v| v.version.to_string())
    };
    assert_eq!(latest(s.clone()).await.as_deref(), Some("1.5"));
    s.delete_version(&name("app"), &ver("1.5")).await.unwrap();
    assert_eq!(latest(s.clone()).await.as_deref(), Some("10.0"));
}

/// Deleting reports whether anything was there; bundle delete counts versions.
pub async fn delete_version_and_bundle(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    for v in ["1", "2", "3"] {
        s.create_version(version("app", v, 1)).await.unwrap();
    }
    s.create_version(version("keep", "1", 1)).await.unwrap();
    assert!(s.delete_version(&name("app"), &ver("2")).await.unwrap());
    assert!(!s.delete_version(&name("app"), &ver("2")).await.unwrap());
    assert_eq!(s.delete_bundle(&name("app")).await.unwrap(), 2);
    assert_eq!(s.delete_bundle(&name("app")).await.unwrap(), 0);
    let left = s.list_versions(None, Page::ALL).await.unwrap();
    assert_eq!(left.total, 1);
    assert_eq!(left.items[0].name, name("keep"));
    // A deleted version can be created again.
    s.create_version(version("app", "2", 9)).await.unwrap();
}

/// 50 racing creates of one version: exactly one wins, the rest conflict.
pub async fn concurrent_creates_have_one_winner(open: &Opener) {
    let dir = tempdir();
    let s: Arc<dyn Store> = open(dir.path());
    let mut handles = Vec::new();
    for i in 0..50u64 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut v = version("race", "1", i);
            v.description = format!("racer {i}");
            s.create_version(v).await.map_err(|e| e.kind())
        }));
    }
    let (mut ok, mut conflicts) = (0, 0);
    for h in handles {
        match h.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreErrorKind::Conflict) => conflicts += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, conflicts), (1, 49));
    assert_eq!(s.list_versions(None, Page::ALL).await.unwrap().total, 1);
}

/// Concurrent read-modify-write steps are serialised: no update is lost.
pub async fn concurrent_updates_lose_nothing(open: &Opener) {
    let dir = tempdir();
    let s: Arc<dyn Store> = open(dir.path());
    s.create_version(version("app", "1", 1)).await.unwrap();
    let mut handles = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            s.update_version(
                &name("app"),
                &ver("1"),
                Box::new(|v| {
                    v.description.push('+');
                    Ok(())
                }),
            )
            .await
            .unwrap();
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let v = s
        .get_version(&name("app"), &ver("1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.description.matches('+').count(), 20);
}

/// Sites: insert, replace by id (renaming frees the old name), list by name, delete.
pub async fn sites_put_replace_list_delete(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    let a = site(1, "zeta", "Berlin", "DE");
    let b = site(2, "alpha", "New York", "US");
    s.put_site(a.clone()).await.unwrap();
    s.put_site(b.clone()).await.unwrap();
    let names =
        |v: Vec<waybill_core::site::EdgeSite>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
    assert_eq!(names(s.list_sites().await.unwrap()), ["alpha", "zeta"]);
    let mut renamed = a.clone();
    renamed.name = "beta".into();
    s.put_site(renamed.clone()).await.unwrap();
    assert_eq!(s.get_site(&a.service_id).await.unwrap(), Some(renamed));
    // "zeta" is free again.
    s.put_site(site(3, "zeta", "Paris", "FR")).await.unwrap();
    assert_eq!(
        names(s.list_sites().await.unwrap()),
        ["alpha", "beta", "zeta"]
    );
    assert!(s.delete_site(&b.service_id).await.unwrap());
    assert!(!s.delete_site(&b.service_id).await.unwrap());
    assert_eq!(s.get_site(&b.service_id).await.unwrap(), None);
    s.put_site(site(4, "alpha", "Rome", "IT")).await.unwrap();
}

/// A name held by another site is `Conflict`, writing nothing.
pub async fn site_name_clash_conflicts(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    let a = site(1, "edge-1", "Berlin", "DE");
    s.put_site(a.clone()).await.unwrap();
    assert_kind(
        s.put_site(site(2, "edge-1", "Paris", "FR")).await,
        StoreErrorKind::Conflict,
    );
    assert_eq!(s.list_sites().await.unwrap(), vec![a]);
}

/// Storing a default key clears the flag on the others.
pub async fn default_key_is_exclusive(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    assert_eq!(s.default_key().await.unwrap(), None);
    s.put_key(key("k1", true)).await.unwrap();
    s.put_key(key("k2", false)).await.unwrap();
    assert_eq!(
        s.default_key().await.unwrap().map(|k| k.id).as_deref(),
        Some("k1")
    );
    s.put_key(key("k3", true)).await.unwrap();
    let keys = s.list_keys().await.unwrap();
    let flags: Vec<(String, bool)> = keys.into_iter().map(|k| (k.id, k.default)).collect();
    assert_eq!(
        flags,
        [
            ("k1".into(), false),
            ("k2".into(), false),
            ("k3".into(), true)
        ]
    );
    assert!(s.delete_key("k3").await.unwrap());
    assert!(!s.delete_key("k3").await.unwrap());
    assert_eq!(s.default_key().await.unwrap(), None);
    assert_eq!(s.get_key("k2").await.unwrap(), Some(key("k2", false)));
}

/// Tracker ids increase and are never reused, even after deletes and re-opens.
pub async fn tracker_ids_increase_and_are_never_reused(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    let t1 = s.create_tracker(tracker("app", "1")).await.unwrap();
    let t2 = s.create_tracker(tracker("app", "1")).await.unwrap();
    assert!(t1.id >= 1 && t2.id > t1.id, "{} {}", t1.id, t2.id);
    assert_eq!(s.get_tracker(t2.id).await.unwrap(), Some(t2.clone()));
    assert_eq!(s.delete_trackers(&name("app"), &ver("1")).await.unwrap(), 2);
    drop(s);
    let s = open(dir.path());
    let t3 = s.create_tracker(tracker("app", "1")).await.unwrap();
    assert!(t3.id > t2.id, "id {} reused after {}", t3.id, t2.id);
    assert_eq!(s.get_tracker(t1.id).await.unwrap(), None);
}

/// A tracker step that returns `Err` writes nothing.
pub async fn tracker_update_aborted_writes_nothing(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    let t = s.create_tracker(tracker("app", "1")).await.unwrap();
    let updated = s
        .update_tracker(
            t.id,
            Box::new(|t| {
                t.sites[0].status = SiteStatus::InProgress;
                t.sites[0].distributed_bytes = 1000;
                Ok(())
            }),
        )
        .await
        .unwrap();
    let err = s
        .update_tracker(
            t.id,
            Box::new(|t| {
                t.sites[0].status = SiteStatus::Completed;
                Err(Error::AlreadyExists {
                    what: "a reason to refuse".into(),
                })
            }),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert_eq!(s.get_tracker(t.id).await.unwrap(), Some(updated));
    let missing = s
        .update_tracker(t.id + 100, Box::new(|_| Ok(())))
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }), "{missing:?}");
}

/// Tracker listings filter by bundle and version, ascending by id.
pub async fn trackers_filter_by_bundle_and_version(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    for (n, v) in [("a", "1"), ("b", "1"), ("a", "2"), ("a", "1")] {
        s.create_tracker(tracker(n, v)).await.unwrap();
    }
    let ids = |ts: Vec<waybill_core::tracker::Tracker>| -> Vec<String> {
        ts.into_iter()
            .map(|t| format!("{}/{}", t.name, t.version))
            .collect()
    };
    assert_eq!(
        ids(s.list_trackers(None, None).await.unwrap()),
        ["a/1", "b/1", "a/2", "a/1"]
    );
    assert_eq!(
        ids(s.list_trackers(Some(&name("a")), None).await.unwrap()),
        ["a/1", "a/2", "a/1"]
    );
    assert_eq!(
        ids(s
            .list_trackers(Some(&name("a")), Some(&ver("1")))
            .await
            .unwrap()),
        ["a/1", "a/1"]
    );
    let all = s.list_trackers(None, None).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
}

/// Users: create conflicts on an existing name, put replaces, list by name, delete.
pub async fn users_create_put_list_delete(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.create_user(user("bob", false)).await.unwrap();
    s.create_user(user("admin", true)).await.unwrap();
    assert_kind(
        s.create_user(user("bob", true)).await,
        StoreErrorKind::Conflict,
    );
    assert!(
        !s.get_user("bob").await.unwrap().unwrap().admin,
        "conflict wrote nothing"
    );
    s.put_user(user("bob", true)).await.unwrap();
    assert!(s.get_user("bob").await.unwrap().unwrap().admin);
    let names: Vec<String> = s
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["admin", "bob"]);
    assert!(s.delete_user("bob").await.unwrap());
    assert!(!s.delete_user("bob").await.unwrap());
    assert_eq!(s.get_user("bob").await.unwrap(), None);
}

/// Token records round-trip and list by (issued_at, token_id).
pub async fn tokens_round_trip_in_order(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.put_token(token("b", 10)).await.unwrap();
    s.put_token(token("a", 20)).await.unwrap();
    s.put_token(token("c", 10)).await.unwrap();
    let mut revoked = token("a", 20);
    revoked.revoked = true;
    s.put_token(revoked.clone()).await.unwrap();
    assert_eq!(s.get_token("a").await.unwrap(), Some(revoked));
    let ids: Vec<String> = s
        .list_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.token_id)
        .collect();
    assert_eq!(ids, ["b", "c", "a"]);
    assert!(s.delete_token("b").await.unwrap());
    assert!(!s.delete_token("b").await.unwrap());
    assert_eq!(s.get_token("zzz").await.unwrap(), None);
}

/// Everything written is there after the store is closed and opened again,
/// and counters carry on where they stopped.
pub async fn everything_survives_reopen(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.put_setting("service_id", "jfds@x").await.unwrap();
    s.create_version(version("app", "1", 1)).await.unwrap();
    s.create_version(version("app", "2", 2)).await.unwrap();
    s.update_version(&name("app"), &ver("1"), sign_step())
        .await
        .unwrap();
    s.put_site(site(1, "edge", "Berlin", "DE")).await.unwrap();
    s.put_key(key("k", true)).await.unwrap();
    let t = s.create_tracker(tracker("app", "1")).await.unwrap();
    s.create_user(user("bob", false)).await.unwrap();
    s.put_token(token("t", 1)).await.unwrap();
    let versions = s.list_versions(None, Page::ALL).await.unwrap();
    drop(s);

    let s = open(dir.path());
    assert_eq!(
        s.get_setting("service_id").await.unwrap().as_deref(),
        Some("jfds@x")
    );
    assert_eq!(s.list_versions(None, Page::ALL).await.unwrap(), versions);
    assert_eq!(
        s.get_version(&name("app"), &ver("1"))
            .await
            .unwrap()
            .unwrap()
            .state,
        VersionState::Signed
    );
    assert_eq!(s.list_sites().await.unwrap().len(), 1);
    assert_eq!(
        s.default_key().await.unwrap().map(|k| k.id).as_deref(),
        Some("k")
    );
    assert_eq!(s.get_tracker(t.id).await.unwrap(), Some(t.clone()));
    assert!(s.get_user("bob").await.unwrap().is_some());
    assert!(s.get_token("t").await.unwrap().is_some());
    s.create_version(version("app", "3", 3)).await.unwrap();
    let latest = s.latest_version(&name("app")).await.unwrap().unwrap();
    assert_eq!(
        latest.version,
        ver("3"),
        "creation order continues after re-open"
    );
    assert!(s.create_tracker(tracker("app", "1")).await.unwrap().id > t.id);
}

fn paths(items: &[waybill_core::artifact::Item]) -> Vec<String> {
    items.iter().map(|i| i.repo_path()).collect()
}

/// Repositories: create conflicts on an existing key, list by key, delete returns the items.
pub async fn repositories_create_list_delete(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.create_repository(repository("zeta")).await.unwrap();
    s.create_repository(repository("alpha")).await.unwrap();
    let mut dup = repository("alpha");
    dup.package_type = "maven".into();
    assert_kind(s.create_repository(dup).await, StoreErrorKind::Conflict);
    assert_eq!(
        s.get_repository(&rkey("alpha")).await.unwrap(),
        Some(repository("alpha"))
    );
    let keys: Vec<String> = s
        .list_repositories()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key.to_string())
        .collect();
    assert_eq!(keys, ["alpha", "zeta"]);
    s.put_file(file("alpha", "a/b.txt", "x", ("k", "v")))
        .await
        .unwrap();
    s.put_file(file("zeta", "keep.txt", "y", ("k", "v")))
        .await
        .unwrap();
    let removed = s.delete_repository(&rkey("alpha")).await.unwrap().unwrap();
    assert_eq!(paths(&removed), ["alpha/a", "alpha/a/b.txt"]);
    assert_eq!(s.delete_repository(&rkey("alpha")).await.unwrap(), None);
    assert_eq!(
        s.get_item(&rkey("alpha"), &ipath("a/b.txt")).await.unwrap(),
        None
    );
    assert!(
        s.get_item(&rkey("zeta"), &ipath("keep.txt"))
            .await
            .unwrap()
            .is_some()
    );
}

/// Parents appear as folders; a second put replaces and returns the old file.
pub async fn put_file_creates_parents_and_replaces(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.create_repository(repository("libs")).await.unwrap();
    let first = file("libs", "org/acme/app.jar", "v1", ("q", "a"));
    assert_eq!(s.put_file(first.clone()).await.unwrap(), None);
    for folder in ["org", "org/acme"] {
        let f = s
            .get_item(&rkey("libs"), &ipath(folder))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(f.kind, waybill_core::artifact::ItemKind::Folder, "{folder}");
        assert_eq!(f.created_by, "alice");
    }
    let second = file("libs", "org/acme/app.jar", "v2", ("q", "b"));
    assert_eq!(s.put_file(second.clone()).await.unwrap(), Some(first));
    assert_eq!(
        s.get_item(&rkey("libs"), &ipath("org/acme/app.jar"))
            .await
            .unwrap(),
        Some(second)
    );
    // A folder that exists already is left alone.
    let mut folder = waybill_core::artifact::Item::folder(rkey("libs"), ipath("org"), 999, "bob");
    folder.props.insert("x".into(), vec!["y".into()]);
    s.create_folder(folder).await.unwrap();
    let org = s
        .get_item(&rkey("libs"), &ipath("org"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((org.created_by.as_str(), org.props.len()), ("alice", 0));
}

/// Items cannot go into a repository that does not exist.
pub async fn put_file_into_unknown_repository_is_not_found(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    assert_kind(
        s.put_file(file("nope", "a.txt", "x", ("k", "v"))).await,
        StoreErrorKind::NotFound,
    );
    assert_eq!(
        s.get_item(&rkey("nope"), &ipath("a.txt")).await.unwrap(),
        None
    );
}

/// A file over a folder, or under a file, is `Conflict` and writes nothing.
pub async fn put_file_conflicts_write_nothing(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.create_repository(repository("libs")).await.unwrap();
    s.put_file(file("libs", "a/b", "file", ("k", "v")))
        .await
        .unwrap();
    assert_kind(
        s.put_file(file("libs", "a", "x", ("k", "v"))).await,
        StoreErrorKind::Conflict,
    );
    assert_kind(
        s.put_file(file("libs", "a/b/c/d.txt", "x", ("k", "v")))
            .await,
        StoreErrorKind::Conflict,
    );
    assert_eq!(
        s.get_item(&rkey("libs"), &ipath("a/b/c")).await.unwrap(),
        None,
        "no folder was left behind"
    );
    assert_kind(
        s.create_folder(waybill_core::artifact::Item::folder(
            rkey("libs"),
            ipath("a/b"),
            1,
            "x",
        ))
        .await,
        StoreErrorKind::Conflict,
    );
    let all = s.find_items(&Default::default()).await.unwrap();
    assert_eq!(paths(&all), ["libs/a", "libs/a/b"]);
}

/// Children are direct only, in path order; `a` does not list `ab`'s items.
pub async fn children_are_direct_and_ordered(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.create_repository(repository("r")).await.unwrap();
    for p in ["a/z.txt", "a/b/deep.txt", "a/c.txt", "ab/x.txt", "top.txt"] {
        s.put_file(file("r", p, p, ("k", "v"))).await.unwrap();
    }
    let kids = s.list_children(&rkey("r"), &ipath("a")).await.unwrap();
    assert_eq!(paths(&kids), ["r/a/b", "r/a/c.txt", "r/a/z.txt"]);
    let root = s.list_children(&rkey("r"), &ipath("")).await.unwrap();
    assert_eq!(paths(&root), ["r/a", "r/ab", "r/top.txt"]);
    assert!(
        s.list_children(&rkey("r"), &ipath("top.txt"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.list_children(&rkey("r"), &ipath("missing"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Deleting `a` removes `a` and below, never a sibling such as `ab`.
pub async fn delete_item_removes_exactly_its_subtree(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.create_repository(repository("r")).await.unwrap();
    for p in ["a/b/c.txt", "a/d.txt", "ab/x.txt", "a0.txt"] {
        s.put_file(file("r", p, p, ("k", "v"))).await.unwrap();
    }
    let removed = s.delete_item(&rkey("r"), &ipath("a")).await.unwrap();
    assert_eq!(
        paths(&removed),
        ["r/a", "r/a/b", "r/a/b/c.txt", "r/a/d.txt"]
    );
    let left = s.find_items(&Default::default()).await.unwrap();
    assert_eq!(paths(&left), ["r/a0.txt", "r/ab", "r/ab/x.txt"]);
    assert!(
        s.delete_item(&rkey("r"), &ipath("a"))
            .await
            .unwrap()
            .is_empty()
    );
    // The emptied indexes answer nothing for the removed items.
    let by_name = s
        .find_items(&waybill_core::aql::ItemHint {
            name: Some("c.txt".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(by_name.is_empty());
}

/// Property updates apply recursively in one step, and the property index follows.
pub async fn property_updates_move_the_index(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.create_repository(repository("r")).await.unwrap();
    s.put_file(file("r", "a/1.txt", "1", ("stage", "dev")))
        .await
        .unwrap();
    s.put_file(file("r", "a/2.txt", "2", ("stage", "dev")))
        .await
        .unwrap();
    s.put_file(file("r", "b.txt", "3", ("stage", "dev")))
        .await
        .unwrap();
    let n = s
        .update_props(
            &rkey("r"),
            &ipath("a"),
            true,
            Box::new(|p| {
                p.insert("stage".into(), vec!["qa".into(), "prod".into()]);
            }),
        )
        .await
        .unwrap();
    assert_eq!(n, 3, "the folder and its two files");
    let hint = |v: &str| waybill_core::aql::ItemHint {
        prop: Some(("stage".into(), v.into())),
        ..Default::default()
    };
    assert_eq!(
        paths(&s.find_items(&hint("dev")).await.unwrap()),
        ["r/b.txt"]
    );
    assert_eq!(
        paths(&s.find_items(&hint("prod")).await.unwrap()),
        ["r/a", "r/a/1.txt", "r/a/2.txt"]
    );
    let one = s
        .update_props(
            &rkey("r"),
            &ipath("b.txt"),
            false,
            Box::new(|p| {
                p.remove("stage");
            }),
        )
        .await
        .unwrap();
    assert_eq!(one, 1);
    assert!(s.find_items(&hint("dev")).await.unwrap().is_empty());
    let err = s
        .update_props(&rkey("r"), &ipath("nope"), false, Box::new(|_| {}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

/// Every hint returns at least the items that satisfy it.
pub async fn find_items_honours_every_hint(open: &Opener) {
    use waybill_core::aql::ItemHint;
    let dir = tempdir();
    let s = open(dir.path());
    for r in ["r1", "r2"] {
        s.create_repository(repository(r)).await.unwrap();
    }
    s.put_file(file("r1", "x/app.jar", "A", ("q", "ga")))
        .await
        .unwrap();
    s.put_file(file("r2", "x/app.jar", "A", ("q", "rc")))
        .await
        .unwrap();
    s.put_file(file("r2", "y/lib.jar", "B", ("q", "ga")))
        .await
        .unwrap();
    let sha_a = waybill_core::digest::Ingest::of(b"A").sha256;
    let cases: Vec<(ItemHint, Vec<&str>)> = vec![
        (
            ItemHint {
                repo: Some(rkey("r2")),
                ..Default::default()
            },
            vec!["r2/x", "r2/x/app.jar", "r2/y", "r2/y/lib.jar"],
        ),
        (
            ItemHint {
                repo: Some(rkey("r2")),
                folder: Some("x".into()),
                ..Default::default()
            },
            vec!["r2/x/app.jar"],
        ),
        (
            ItemHint {
                folder: Some(".".into()),
                ..Default::default()
            },
            vec!["r1/x", "r2/x", "r2/y"],
        ),
        (
            ItemHint {
                name: Some("app.jar".into()),
                ..Default::default()
            },
            vec!["r1/x/app.jar", "r2/x/app.jar"],
        ),
        (
            ItemHint {
                name_prefix: Some("ap".into()),
                ..Default::default()
            },
            vec!["r1/x/app.jar", "r2/x/app.jar"],
        ),
        (
            ItemHint {
                repo: Some(rkey("r2")),
                name_prefix: Some("lib.jar".into()),
                ..Default::default()
            },
            vec!["r2/y/lib.jar"],
        ),
        // Case-sensitive, like `$match`, and not a substring match.
        (
            ItemHint {
                name_prefix: Some("App".into()),
                ..Default::default()
            },
            vec![],
        ),
        (
            ItemHint {
                name_prefix: Some("jar".into()),
                ..Default::default()
            },
            vec![],
        ),
        (
            ItemHint {
                sha256: Some(sha_a),
                repo: Some(rkey("r1")),
                ..Default::default()
            },
            vec!["r1/x/app.jar"],
        ),
        (
            ItemHint {
                prop: Some(("q".into(), "ga".into())),
                ..Default::default()
            },
            vec!["r1/x/app.jar", "r2/y/lib.jar"],
        ),
        (
            ItemHint {
                name: Some("app.jar".into()),
                prop: Some(("q".into(), "rc".into())),
                ..Default::default()
            },
            vec!["r2/x/app.jar"],
        ),
    ];
    for (hint, expected) in cases {
        let mut got = paths(&s.find_items(&hint).await.unwrap());
        got.sort();
        assert_eq!(got, expected, "{hint:?}");
    }
}

/// Content reference counts follow replacement and deletion.
pub async fn content_refs_follow_replacements_and_deletes(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.create_repository(repository("r")).await.unwrap();
    let sha = |c: &str| waybill_core::digest::Ingest::of(c.as_bytes()).sha256;
    s.put_file(file("r", "a.txt", "same", ("k", "v")))
        .await
        .unwrap();
    s.put_file(file("r", "b.txt", "same", ("k", "v")))
        .await
        .unwrap();
    assert_eq!(s.count_content_refs(&sha("same")).await.unwrap(), 2);
    s.put_file(file("r", "a.txt", "other", ("k", "v")))
        .await
        .unwrap();
    assert_eq!(s.count_content_refs(&sha("same")).await.unwrap(), 1);
    assert_eq!(s.count_content_refs(&sha("other")).await.unwrap(), 1);
    s.delete_item(&rkey("r"), &ipath("b.txt")).await.unwrap();
    assert_eq!(s.count_content_refs(&sha("same")).await.unwrap(), 0);
}

/// Builds round-trip and are replaced by (name, number).
pub async fn builds_round_trip(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    assert_eq!(s.get_build("app", "1").await.unwrap(), None);
    s.put_build(build("app", "1")).await.unwrap();
    let mut again = build("app", "1");
    again.started = "later".into();
    s.put_build(again.clone()).await.unwrap();
    s.put_build(build("app", "2")).await.unwrap();
    assert_eq!(s.get_build("app", "1").await.unwrap(), Some(again));
    assert_eq!(
        s.get_build("app", "2").await.unwrap(),
        Some(build("app", "2"))
    );
}

/// Builds list by name, oldest run first; a name's prefix is not the name.
pub async fn builds_list_by_name_in_order(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    assert!(s.list_builds(None).await.unwrap().is_empty());
    for (name, number, created) in [
        ("app", "10", 5),
        ("app", "9", 1),
        ("app-x", "1", 2),
        ("web", "1", 0),
    ] {
        let mut b = build(name, number);
        b.created = created;
        s.put_build(b).await.unwrap();
    }
    let ids = |bs: Vec<waybill_core::artifact::Build>| -> Vec<String> {
        bs.iter()
            .map(|b| format!("{}#{}", b.name, b.number))
            .collect()
    };
    assert_eq!(
        ids(s.list_builds(None).await.unwrap()),
        ["app#9", "app#10", "app-x#1", "web#1"]
    );
    assert_eq!(
        ids(s.list_builds(Some("app")).await.unwrap()),
        ["app#9", "app#10"]
    );
    assert!(s.list_builds(Some("ap")).await.unwrap().is_empty());
}

/// `commit_files` makes every file visible at once, or none of them.
pub async fn commit_files_is_all_or_nothing(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.create_repository(repository("r")).await.unwrap();
    s.put_file(file("r", "a/taken", "x", ("k", "v")))
        .await
        .unwrap();
    // The third file needs `a/taken` to be a folder: the whole commit is refused.
    let batch = vec![
        file("r", "new/1.txt", "1", ("k", "v")),
        file("r", "new/2.txt", "2", ("k", "v")),
        file("r", "a/taken/3.txt", "3", ("k", "v")),
    ];
    assert_kind(s.commit_files(batch).await, StoreErrorKind::Conflict);
    assert_eq!(
        s.get_item(&rkey("r"), &ipath("new")).await.unwrap(),
        None,
        "nothing of the batch is visible"
    );
    assert_eq!(
        s.count_content_refs(&waybill_core::digest::Ingest::of(b"1").sha256)
            .await
            .unwrap(),
        0
    );
    // A good batch lands whole, folders included, and reports what it replaced.
    let replaced = s
        .commit_files(vec![
            file("r", "new/1.txt", "1", ("k", "v")),
            file("r", "new/deep/2.txt", "2", ("k", "v")),
            file("r", "a/taken", "y", ("k", "v")),
        ])
        .await
        .unwrap();
    assert_eq!(paths(&replaced), ["r/a/taken"]);
    let all = s.find_items(&Default::default()).await.unwrap();
    assert_eq!(
        paths(&all),
        [
            "r/a",
            "r/a/taken",
            "r/new",
            "r/new/1.txt",
            "r/new/deep",
            "r/new/deep/2.txt"
        ]
    );
}

/// `remove_files` removes at once exactly the files that still hold the
/// expected content, and their property index entries with them.
pub async fn remove_files_removes_matching_content_only(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    s.create_repository(repository("r")).await.unwrap();
    s.commit_files(vec![
        file("r", "v/1.txt", "1", ("k", "a")),
        file("r", "v/2.txt", "2", ("k", "b")),
        file("r", "v/newer.txt", "newer", ("k", "c")),
    ])
    .await
    .unwrap();
    let sha = |c: &str| waybill_core::digest::Ingest::of(c.as_bytes()).sha256;
    let removed = s
        .remove_files(vec![
            (rkey("r"), ipath("v/1.txt"), sha("1")),
            (rkey("r"), ipath("v/2.txt"), sha("2")),
            // Replaced since: it stays.
            (rkey("r"), ipath("v/newer.txt"), sha("older")),
            // Nothing there, and a folder: both left alone.
            (rkey("r"), ipath("v/gone.txt"), sha("x")),
            (rkey("r"), ipath("v"), sha("x")),
        ])
        .await
        .unwrap();
    assert_eq!(paths(&removed), ["r/v/1.txt", "r/v/2.txt"]);
    let all = s.find_items(&Default::default()).await.unwrap();
    assert_eq!(paths(&all), ["r/v", "r/v/newer.txt"]);
    let by_prop = s
        .find_items(&waybill_core::aql::ItemHint {
            prop: Some(("k".into(), "a".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(by_prop.is_empty(), "index entries go with the file");
    assert_eq!(s.count_content_refs(&sha("1")).await.unwrap(), 0);
}

/// Settings list by prefix in key order, and delete.
pub async fn settings_list_by_prefix_and_delete(open: &Opener) {
    let dir = tempdir();
    let s = open(dir.path());
    for (k, v) in [
        ("perm.b", "2"),
        ("perm.a", "1"),
        ("permx", "no"),
        ("per", "no"),
        ("perm.ü", "3"),
    ] {
        s.put_setting(k, v).await.unwrap();
    }
    let listed = s.list_settings("perm.").await.unwrap();
    let expected: Vec<(String, String)> = [("perm.a", "1"), ("perm.b", "2"), ("perm.ü", "3")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(listed, expected);
    assert!(s.delete_setting("perm.a").await.unwrap());
    assert!(!s.delete_setting("perm.a").await.unwrap());
    assert_eq!(s.list_settings("perm.").await.unwrap().len(), 2);
    assert!(s.list_settings("zzz").await.unwrap().is_empty());
    let keys: Vec<String> = ["perm.b", "perm.a", "perm.ü", "missing"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        s.get_settings(&keys).await.unwrap(),
        [Some("2".to_string()), None, Some("3".to_string()), None],
        "in order, deleted and unknown keys as None"
    );
    assert!(s.get_settings(&[]).await.unwrap().is_empty());
}
