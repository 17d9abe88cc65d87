//! A hub and its edges in one process, over memory stores and the
//! in-process transport: distributions run in milliseconds without
//! sockets, faults are injected at each step, and a hub that "crashes" (its
//! runtime dropped mid-delivery) is rebuilt over the same stores and must
//! finish the job without re-sending anything an edge already verified.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use waybill_app::bundles::VersionRequest;
use waybill_app::delivery::{
    Committed, DeliveryError, EdgeTransport, OutgoingBlob, SignedBundle, Unproven,
};
use waybill_app::distribution::{DistributeRequest, RetryPolicy};
use waybill_app::epoch::Epoch;
use waybill_app::security::Security;
use waybill_app::sites::SiteRegistration;
use waybill_app::source::{DeployRequest, NewRepository, Source};
use waybill_app::{Clock, Hub, HubConfig, Principal, SystemClock};
use waybill_core::artifact::{ItemPath, RepoKey};
use waybill_core::auth::Secret;
use waybill_core::bundle::{Spec, SpecQuery};
use waybill_core::digest::Sha256;
use waybill_core::memory::{MemoryBlobStore, MemoryStore};
use waybill_core::name::{BundleName, BundleVersion};
use waybill_core::rules::DistributionRule;
use waybill_core::site::{EdgeSite, ServiceId, ServiceKind, ulid_from_parts};
use waybill_core::store::{BlobStore, ItemRepo, TrackerRepo};
use waybill_core::tracker::{SiteStatus, Tracker};
use waybill_edge::local::LocalTransport;
use waybill_edge::{Edge, EdgeConfig};

const PASSPHRASE: &str = "correct horse battery staple";
const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/keys");

fn admin() -> Principal {
    Principal {
        name: "admin".into(),
        admin: true,
        groups: vec![],
        reduced: false,
    }
}

/// One edge: its stores outlive any hub runtime.
struct EdgeNode {
    url: String,
    token: String,
    store: Arc<MemoryStore>,
    blobs: Arc<MemoryBlobStore>,
}

/// The hub's stores and the edges: what survives a hub crash.
struct World {
    store: Arc<MemoryStore>,
    blobs: Arc<MemoryBlobStore>,
    edges: Vec<EdgeNode>,
    local: LocalTransport,
    /// The contents deployed, by path.
    files: Vec<(String, Vec<u8>)>,
}

impl World {
    /// A hub's stores and `n` edges attached to an in-process transport.
    fn new(n: usize) -> World {
        let local = LocalTransport::default();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let edges = (0..n)
            .map(|i| {
                let store = Arc::new(MemoryStore::new());
                let blobs = Arc::new(MemoryBlobStore::new());
                let service_id =
                    ServiceId::new(ServiceKind::Edge, ulid_from_parts(1, 1000 + i as u128));
                let security = Security::new(store.clone(), service_id.clone(), clock.clone());
                let source = Source::new(store.clone(), blobs.clone(), security, clock.clone());
                let token = format!("pairing-token-{i}");
                let edge = Edge::new(
                    store.clone(),
                    blobs.clone(),
                    source,
                    clock.clone(),
                    Epoch::default(),
                    service_id,
                    EdgeConfig {
                        site_name: format!("edge-{i}"),
                        city: "Berlin".into(),
                        country: "DE".into(),
                        pairing_token: Secret::new(token.clone()),
                    },
                );
                let url = format!("http://edge-{i}.test");
                local.attach(&url, edge);
                EdgeNode {
                    url,
                    token,
                    store,
                    blobs,
                }
            })
            .collect();
        // Five files, two with the same content: four distinct blobs.
        let files = vec![
            ("libs/a.bin".to_string(), vec![1u8; 3000]),
            ("libs/b.bin".to_string(), vec![2u8; 70_000]),
            ("libs/c.bin".to_string(), b"small".to_vec()),
            ("libs/dup/a-again.bin".to_string(), vec![1u8; 3000]),
            ("libs/d.bin".to_string(), vec![4u8; 2 << 20]),
        ];
        World {
            store: Arc::new(MemoryStore::new()),
            blobs: Arc::new(MemoryBlobStore::new()),
            edges,
            local,
            files,
        }
    }

    /// A hub over the world's hub stores, reaching edges through `transport`.
    fn hub(&self, transport: Arc<dyn EdgeTransport>) -> Hub {
        // Retries come at once: tests wait for outcomes, not for backoff.
        let quick = RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        self.hub_with(transport, quick)
    }

    /// The same, with the engine working as `policy` says.
    fn hub_with(&self, transport: Arc<dyn EdgeTransport>, policy: RetryPolicy) -> Hub {
        let mut config = HubConfig::new(
            ServiceId::new(ServiceKind::Distribution, ulid_from_parts(1, 1)),
            transport,
        );
        config.retry = policy;
        Hub::new(self.store.clone(), self.blobs.clone(), config)
    }

    fn distinct_blobs(&self) -> BTreeSet<Sha256> {
        self.files.iter().map(|(_, c)| Sha256::of(c)).collect()
    }
}

/// Deploys the files, stores the signing key, registers every edge and
/// creates a signed version `app/1.0`.
async fn set_up(world: &World, hub: &Hub) {
    let who = admin();
    let public = std::fs::read_to_string(format!("{KEYS}/ed25519-protected.pub.asc")).unwrap();
    let secret = std::fs::read_to_string(format!("{KEYS}/ed25519-protected.sec.asc")).unwrap();
    hub.keys
        .store_pair(&who, Some(public), Some(secret))
        .await
        .unwrap();
    hub.source
        .create_repository(&who, "libs", NewRepository::default())
        .await
        .unwrap();
    for (path, content) in &world.files {
        let (repo, rest) = path.split_once('/').unwrap();
        let body =
            futures_util::stream::iter([Ok::<_, waybill_app::Error>(Bytes::from(content.clone()))]);
        hub.source
            .deploy(
                &who,
                (
                    &RepoKey::parse(repo).unwrap(),
                    &ItemPath::parse(rest).unwrap(),
                ),
                DeployRequest::default(),
                body,
            )
            .await
            .unwrap();
    }
    for (i, e) in world.edges.iter().enumerate() {
        let registered = hub
            .sites
            .register(
                &who,
                SiteRegistration {
                    name: format!("edge-{i}"),
                    url: e.url.clone(),
                    token: e.token.clone(),
                    city_name: "Berlin".into(),
                    country_code: "DE".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(registered.key_sent, "the edge took the signing key");
    }
    let req = VersionRequest {
        spec: Spec {
            queries: vec![SpecQuery {
                aql: r#"items.find({"repo": "libs"})"#.into(),
                query_name: String::new(),
                mappings: vec![],
                added_props: vec![],
            }],
        },
        sign_immediately: true,
        ..Default::default()
    };
    let d = hub
        .bundles
        .create(&who, &name(), &version(), req, &Secret::new(PASSPHRASE))
        .await
        .unwrap();
    assert_eq!(d.version.artifacts.len(), world.files.len());
}

fn name() -> BundleName {
    BundleName::parse("app").unwrap()
}

fn version() -> BundleVersion {
    BundleVersion::parse("1.0").unwrap()
}

async fn distribute(hub: &Hub) -> u64 {
    let req = DistributeRequest {
        rules: vec![DistributionRule::default()],
        auto_create: true,
        ..Default::default()
    };
    hub.distribution
        .distribute(&admin(), &name(), &version(), req)
        .await
        .unwrap()
        .tracker
        .expect("not a dry run")
}

/// The tracker once it finished (a panic after 20 s).
async fn finished(hub: &Hub, id: u64) -> Tracker {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view = hub
            .distribution
            .tracker(&admin(), &name(), &version(), &id.to_string())
            .await
            .unwrap();
        if view.tracker.finished.is_some() {
            return view.tracker;
        }
        assert!(
            Instant::now() < deadline,
            "tracker {id} never finished: {:?}",
            view.tracker
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every file is visible on the edge with its content's checksum, and each
/// blob it holds hashes to its name.
async fn assert_delivered(world: &World, edge: &EdgeNode) {
    for (path, content) in &world.files {
        let (repo, rest) = path.split_once('/').unwrap();
        let item = edge
            .store
            .get_item(
                &RepoKey::parse(repo).unwrap(),
                &ItemPath::parse(rest).unwrap(),
            )
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{path} is not on {}", edge.url));
        assert_eq!(item.sha256(), Some(Sha256::of(content)), "{path}");
        let held = edge
            .blobs
            .read_range(&Sha256::of(content), 0, content.len() as u64 + 1)
            .await
            .unwrap();
        assert_eq!(&held, content, "{path}: the edge holds exactly its bytes");
    }
}

async fn held(edge: &EdgeNode) -> BTreeSet<Sha256> {
    edge.blobs
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.digest)
        .collect()
}

/// One call the hub made, as the transport saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Prepare(String),
    Send(String, Sha256),
    Commit(String),
    Remove(String),
}

/// Where a fault strikes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// The nth blob sent (from 1, across edges) fails transiently once.
    TransientSend(usize),
    /// Every commit is refused.
    RefuseCommit,
    /// The hub dies as it calls prepare.
    CrashAtPrepare,
    /// The hub dies as it sends the nth blob (from 1); earlier ones arrived.
    CrashAtSend(usize),
    /// The hub dies after the edge committed, before it hears the answer.
    CrashAfterCommit,
    /// The hub dies while one edge (the last) is being prepared, after the
    /// others completed.
    CrashAtLastEdge,
    /// Every prepare fails transiently.
    TransientPrepare,
    /// The first blob send waits until the test opens the gate.
    GateSend,
    /// The hub dies as it asks an edge to remove a version.
    CrashAtRemove,
}

/// The in-process transport with a log of calls and one injected fault.
#[derive(Debug)]
struct Faulty {
    inner: LocalTransport,
    fault: Fault,
    sends: AtomicUsize,
    log: Mutex<Vec<Call>>,
    /// Set when the hub reached its crash point (and hangs there), or the gate.
    crashed: Arc<AtomicBool>,
    last_url: String,
    /// When each prepare was called (Unix millis).
    prepared_at: Mutex<Vec<u64>>,
    /// Opened by the test for [`Fault::GateSend`].
    gate: tokio::sync::Semaphore,
    /// Sites between prepare and the end of commit now, and the most at once.
    active: AtomicUsize,
    most_active: AtomicUsize,
}

impl Faulty {
    fn new(world: &World, fault: Fault) -> Arc<Faulty> {
        Arc::new(Faulty {
            inner: world.local.clone(),
            fault,
            sends: AtomicUsize::new(0),
            log: Mutex::new(vec![]),
            crashed: Arc::new(AtomicBool::new(false)),
            last_url: world.edges.last().unwrap().url.clone(),
            prepared_at: Mutex::new(vec![]),
            gate: tokio::sync::Semaphore::new(0),
            active: AtomicUsize::new(0),
            most_active: AtomicUsize::new(0),
        })
    }

    fn log(&self, call: Call) {
        self.log.lock().unwrap().push(call);
    }

    fn calls(&self) -> Vec<Call> {
        self.log.lock().unwrap().clone()
    }

    /// The hub "dies" here: the call never returns, and the test drops
    /// the hub's runtime.
    async fn crash(&self) -> ! {
        self.crashed.store(true, Ordering::SeqCst);
        std::future::pending().await
    }
}

#[async_trait::async_trait]
impl EdgeTransport for Faulty {
    async fn identify(
        &self,
        url: &str,
        token: &Secret,
        timeout: Duration,
    ) -> Result<ServiceId, Unproven> {
        self.inner.identify(url, token, timeout).await
    }

    async fn install_key(&self, site: &EdgeSite, public_key: &str) -> Result<(), String> {
        self.inner.install_key(site, public_key).await
    }

    async fn prepare(
        &self,
        site: &EdgeSite,
        bundle: &SignedBundle,
    ) -> Result<Vec<Sha256>, DeliveryError> {
        self.log(Call::Prepare(site.url.clone()));
        self.prepared_at
            .lock()
            .unwrap()
            .push(SystemClock.now_millis());
        match self.fault {
            Fault::CrashAtPrepare => self.crash().await,
            Fault::CrashAtLastEdge if site.url == self.last_url => self.crash().await,
            Fault::TransientPrepare => {
                return Err(DeliveryError::Transient("edge unreachable: refused".into()));
            }
            _ => {}
        }
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_active.fetch_max(now, Ordering::SeqCst);
        self.inner.prepare(site, bundle).await
    }

    async fn send_blob(&self, site: &EdgeSite, blob: OutgoingBlob) -> Result<(), DeliveryError> {
        let n = self.sends.fetch_add(1, Ordering::SeqCst) + 1;
        match self.fault {
            Fault::TransientSend(k) if k == n => {
                self.log(Call::Send(site.url.clone(), blob.digest));
                return Err(DeliveryError::Transient("connection reset".into()));
            }
            Fault::CrashAtSend(k) if n >= k => self.crash().await,
            Fault::GateSend if n == 1 => {
                self.crashed.store(true, Ordering::SeqCst);
                self.gate.acquire().await.unwrap().forget();
            }
            _ => {}
        }
        self.log(Call::Send(site.url.clone(), blob.digest));
        self.inner.send_blob(site, blob).await
    }

    async fn commit(
        &self,
        site: &EdgeSite,
        bundle: &SignedBundle,
    ) -> Result<Committed, DeliveryError> {
        self.log(Call::Commit(site.url.clone()));
        if self.fault == Fault::RefuseCommit {
            return Err(DeliveryError::Refused(
                "this edge is read-only today".into(),
            ));
        }
        let answer = self.inner.commit(site, bundle).await;
        if self.fault == Fault::CrashAfterCommit {
            self.crash().await
        }
        self.active.fetch_sub(1, Ordering::SeqCst);
        answer
    }

    async fn remove(
        &self,
        site: &EdgeSite,
        name: &str,
        version: &str,
    ) -> Result<(), DeliveryError> {
        self.log(Call::Remove(site.url.clone()));
        if self.fault == Fault::CrashAtRemove {
            self.crash().await
        }
        self.inner.remove(site, name, version).await
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_and_three_edges_distribute_in_process() {
    let world = World::new(3);
    let transport = Faulty::new(&world, Fault::None);
    let hub = world.hub(transport.clone());
    set_up(&world, &hub).await;
    let started = Instant::now();
    let id = distribute(&hub).await;
    let t = finished(&hub, id).await;
    assert_eq!(t.status(), SiteStatus::Completed, "{t:?}");
    for edge in &world.edges {
        assert_delivered(&world, edge).await;
    }
    // Each edge got each distinct blob exactly once.
    let sends: Vec<Call> = transport
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Send(..)))
        .collect();
    assert_eq!(sends.len(), 3 * world.distinct_blobs().len(), "{sends:?}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // Again: every edge holds everything, so nothing is sent.
    let again = distribute(&hub).await;
    assert_eq!(finished(&hub, again).await.status(), SiteStatus::Completed);
    let sends_after = transport
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Send(..)))
        .count();
    assert_eq!(
        sends_after,
        sends.len(),
        "a re-distribution sends no content"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_send_failure_is_retried_without_resending_what_arrived() {
    let world = World::new(1);
    let transport = Faulty::new(&world, Fault::TransientSend(2));
    let hub = world.hub(transport.clone());
    set_up(&world, &hub).await;
    let id = distribute(&hub).await;
    let t = finished(&hub, id).await;
    assert_eq!(t.status(), SiteStatus::Completed, "{t:?}");
    assert_delivered(&world, &world.edges[0]).await;
    let calls = transport.calls();
    let prepares = calls
        .iter()
        .filter(|c| matches!(c, Call::Prepare(_)))
        .count();
    assert_eq!(prepares, 2, "the retry prepared again: {calls:?}");
    // Only the failed blob went twice (once failing, once arriving).
    let mut sent: Vec<Sha256> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Send(_, d) => Some(*d),
            _ => None,
        })
        .collect();
    sent.sort();
    let distinct: BTreeSet<Sha256> = sent.iter().copied().collect();
    assert_eq!(distinct, world.distinct_blobs());
    assert_eq!(sent.len(), distinct.len() + 1, "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_commit_fails_the_site_and_shows_nothing_on_the_edge() {
    let world = World::new(1);
    let transport = Faulty::new(&world, Fault::RefuseCommit);
    let hub = world.hub(transport.clone());
    set_up(&world, &hub).await;
    let id = distribute(&hub).await;
    let t = finished(&hub, id).await;
    assert_eq!(t.status(), SiteStatus::Failed, "{t:?}");
    assert!(
        t.sites[0]
            .general_error
            .contains("commit: this edge is read-only today"),
        "{:?}",
        t.sites[0].general_error
    );
    let items = world.edges[0]
        .store
        .find_items(&Default::default())
        .await
        .unwrap();
    assert!(
        items.is_empty(),
        "nothing visible without a commit: {items:?}"
    );
    // A refusal is not retried.
    let commits = transport
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Commit(_)))
        .count();
    assert_eq!(commits, 1);
}

/// Runs a distribution until the hub "crashes" at `fault`, drops the hub's
/// runtime, then builds a new hub over the same stores, resumes, and checks
/// that the distribution completes without re-sending verified content.
fn crash_then_resume(fault: Fault, edges: usize) {
    let world = World::new(edges);
    let first = Faulty::new(&world, fault);
    let rt = runtime();
    let id = rt.block_on(async {
        let hub = world.hub(first.clone());
        set_up(&world, &hub).await;
        let id = distribute(&hub).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !first.crashed.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "never reached {fault:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if fault == Fault::CrashAtLastEdge {
            // The other edges finish while the last one hangs.
            loop {
                let t = world.store.get_tracker(id).await.unwrap().unwrap();
                let done = t
                    .sites
                    .iter()
                    .filter(|s| s.status == SiteStatus::Completed)
                    .count();
                if done == edges - 1 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the other edges never completed: {t:?}"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        id
    });
    // The crash: every task of the hub stops where it is.
    rt.shutdown_background();

    let mut before = Vec::new();
    let rt = runtime();
    rt.block_on(async {
        for e in &world.edges {
            before.push(held(e).await);
        }
        let t = world.store.get_tracker(id).await.unwrap().unwrap();
        assert!(
            t.finished.is_none(),
            "the crash left the tracker open: {t:?}"
        );
        let completed_before: BTreeSet<String> = t
            .sites
            .iter()
            .filter(|s| s.status == SiteStatus::Completed)
            .map(|s| s.name.clone())
            .collect();
        if fault == Fault::CrashAtLastEdge {
            assert_eq!(completed_before.len(), edges - 1, "{t:?}");
        }

        let second = Faulty::new(&world, Fault::None);
        let hub = world.hub(second.clone());
        assert_eq!(hub.distribution.resume().await.unwrap(), 1);
        let t = finished(&hub, id).await;
        assert_eq!(t.status(), SiteStatus::Completed, "{fault:?}: {t:?}");
        for (i, e) in world.edges.iter().enumerate() {
            assert_delivered(&world, e).await;
            let resent: Vec<Sha256> = second
                .calls()
                .into_iter()
                .filter_map(|c| match c {
                    Call::Send(url, d) if url == e.url && before[i].contains(&d) => Some(d),
                    _ => None,
                })
                .collect();
            assert!(
                resent.is_empty(),
                "{fault:?}: {} got verified blobs again: {resent:?}",
                e.url
            );
            if completed_before.contains(&format!("edge-{i}")) {
                let touched = second.calls().iter().any(|c| match c {
                    Call::Prepare(u) | Call::Commit(u) | Call::Send(u, _) | Call::Remove(u) => {
                        *u == e.url
                    }
                });
                assert!(!touched, "{fault:?}: a completed site was worked on again");
            }
        }
    });
}

#[test]
fn a_hub_that_dies_at_prepare_finishes_after_restart() {
    crash_then_resume(Fault::CrashAtPrepare, 2);
}

#[test]
fn a_hub_that_dies_mid_transfer_sends_only_what_is_missing_after_restart() {
    crash_then_resume(Fault::CrashAtSend(3), 1);
}

#[test]
fn a_hub_that_dies_at_its_first_send_finishes_after_restart() {
    crash_then_resume(Fault::CrashAtSend(1), 1);
}

#[test]
fn a_hub_that_dies_after_the_edge_committed_finishes_without_resending() {
    crash_then_resume(Fault::CrashAfterCommit, 1);
}

#[test]
fn a_hub_that_dies_with_some_sites_completed_leaves_them_alone_after_restart() {
    crash_then_resume(Fault::CrashAtLastEdge, 3);
}

/// Waits (at most 20 s) until the hub reached the fault's point.
async fn reached(t: &Faulty) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !t.crashed.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "never reached {:?}", t.fault);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The site of a one-site tracker as the store has it now.
async fn stored_site(world: &World, id: u64) -> waybill_core::tracker::SiteProgress {
    world.store.get_tracker(id).await.unwrap().unwrap().sites[0].clone()
}

#[test]
fn attempts_and_backoff_survive_a_restart() {
    let world = World::new(1);
    let policy = RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(400),
        ..RetryPolicy::default()
    };
    let first = Faulty::new(&world, Fault::TransientPrepare);
    let rt = runtime();
    let (id, due) = rt.block_on(async {
        let hub = world.hub_with(first.clone(), policy);
        set_up(&world, &hub).await;
        let id = distribute(&hub).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let site = stored_site(&world, id).await;
            if site.attempts == 1 {
                let due = site.next_try.expect("a retry is due");
                assert!(site.general_error.ends_with("; retrying"), "{site:?}");
                break (id, due);
            }
            assert!(Instant::now() < deadline, "no retry recorded: {site:?}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    // The hub dies during the backoff.
    rt.shutdown_background();

    let second = Faulty::new(&world, Fault::TransientPrepare);
    runtime().block_on(async {
        let hub = world.hub_with(second.clone(), policy);
        hub.distribution.resume().await.unwrap();
        let t = finished(&hub, id).await;
        let site = &t.sites[0];
        assert_eq!(site.status, SiteStatus::Failed);
        assert!(
            site.general_error
                .starts_with("gave up after 3 attempts: prepare: edge unreachable"),
            "{site:?}"
        );
        // One attempt was spent before the restart: two are left, not three.
        let after = second.prepared_at.lock().unwrap().clone();
        assert_eq!(after.len(), 2, "attempts after the restart: {after:?}");
        // And the first of them waited for the stored due time.
        assert!(
            after[0] >= due,
            "retried at {} before it was due at {due}",
            after[0]
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_recorded_by_another_hub_stops_the_site_before_its_commit() {
    let world = World::new(1);
    let transport = Faulty::new(&world, Fault::GateSend);
    let running = world.hub(transport.clone());
    set_up(&world, &running).await;
    let id = distribute(&running).await;
    reached(&transport).await;
    // A second hub over the same store: it does not run this tracker, so
    // only the store carries its abort to the engine.
    let other = world.hub(Arc::new(world.local.clone()));
    let stopped = other
        .distribution
        .abort(&admin(), &name(), &version())
        .await
        .unwrap();
    assert_eq!(stopped.len(), 1);
    transport.gate.add_permits(1);
    // The abort finished the tracker already; wait for the engine itself.
    let deadline = Instant::now() + Duration::from_secs(20);
    while running.distribution.is_running(id) {
        assert!(Instant::now() < deadline, "the engine never stopped");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let t = finished(&running, id).await;
    assert_eq!(t.sites[0].status, SiteStatus::Failed);
    assert_eq!(t.sites[0].general_error, "aborted");
    assert!(
        !transport
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Commit(_))),
        "the engine committed an aborted site: {:?}",
        transport.calls()
    );
    let items = world.edges[0]
        .store
        .find_items(&Default::default())
        .await
        .unwrap();
    assert!(
        items.is_empty(),
        "nothing is visible on the edge: {items:?}"
    );
}

#[test]
fn a_shutdown_stops_sites_between_steps_and_the_next_start_finishes_them() {
    let world = World::new(1);
    // The first attempt fails; the backoff is long, and shutdown cuts it short.
    let policy = RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(1500),
        ..RetryPolicy::default()
    };
    let transport = Faulty::new(&world, Fault::TransientPrepare);
    let rt = runtime();
    let id = rt.block_on(async {
        let hub = world.hub_with(transport.clone(), policy);
        set_up(&world, &hub).await;
        let id = distribute(&hub).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while stored_site(&world, id).await.attempts == 0 {
            assert!(Instant::now() < deadline, "no retry recorded");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(
            hub.distribution.shutdown(Duration::from_millis(500)).await,
            "the engine stopped within the grace period"
        );
        let t = world.store.get_tracker(id).await.unwrap().unwrap();
        assert!(
            t.finished.is_none(),
            "a stopped tracker is not finished: {t:?}"
        );
        assert_eq!(t.sites[0].status, SiteStatus::InProgress, "{t:?}");
        assert_eq!(transport.prepared_at.lock().unwrap().len(), 1);
        id
    });
    drop(rt);

    let healthy = Faulty::new(&world, Fault::None);
    runtime().block_on(async {
        let hub = world.hub_with(healthy, policy);
        assert_eq!(hub.distribution.resume().await.unwrap(), 1);
        let t = finished(&hub, id).await;
        assert_eq!(t.status(), SiteStatus::Completed, "{t:?}");
        assert_delivered(&world, &world.edges[0]).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_are_worked_within_the_concurrency_bound() {
    let world = World::new(4);
    let transport = Faulty::new(&world, Fault::None);
    let policy = RetryPolicy {
        site_concurrency: 1,
        ..RetryPolicy::default()
    };
    let hub = world.hub_with(transport.clone(), policy);
    set_up(&world, &hub).await;
    let id = distribute(&hub).await;
    assert_eq!(finished(&hub, id).await.status(), SiteStatus::Completed);
    for e in &world.edges {
        assert_delivered(&world, e).await;
    }
    assert_eq!(
        transport.most_active.load(Ordering::SeqCst),
        1,
        "one site at a time"
    );
}

#[test]
fn a_hub_that_dies_while_deleting_from_edges_finishes_the_deletion_after_restart() {
    use waybill_app::distribution::DeleteRequest;
    use waybill_core::store::BundleRepo;
    let world = World::new(2);
    let first = Faulty::new(&world, Fault::CrashAtRemove);
    let rt = runtime();
    let id = rt.block_on(async {
        let hub = world.hub(first.clone());
        set_up(&world, &hub).await;
        let shipped = distribute(&hub).await;
        assert_eq!(
            finished(&hub, shipped).await.status(),
            SiteStatus::Completed
        );
        let req = DeleteRequest {
            rules: vec![DistributionRule::default()],
            on_success: Some("delete".into()),
            ..Default::default()
        };
        let id = hub
            .distribution
            .delete_from_edges(&admin(), &name(), &version(), req)
            .await
            .unwrap()
            .tracker
            .unwrap();
        reached(&first).await;
        id
    });
    rt.shutdown_background();

    runtime().block_on(async {
        let hub = world.hub(Faulty::new(&world, Fault::None));
        hub.distribution.resume().await.unwrap();
        let t = finished(&hub, id).await;
        assert_eq!(t.status(), SiteStatus::Completed, "{t:?}");
        for e in &world.edges {
            // Files go; folders the commit created stay, as in Artifactory.
            let files: Vec<_> = e
                .store
                .find_items(&Default::default())
                .await
                .unwrap()
                .into_iter()
                .filter(|i| i.kind == waybill_core::artifact::ItemKind::File)
                .collect();
            assert!(files.is_empty(), "{} still holds {files:?}", e.url);
            assert!(held(e).await.is_empty(), "{} still holds content", e.url);
            assert!(
                e.store
                    .get_version(&name(), &version())
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        // `on_success: delete`: the hub deletes its own copy once every edge confirmed.
        assert!(
            world
                .store
                .get_version(&name(), &version())
                .await
                .unwrap()
                .is_none(),
            "the hub's version is gone after the deletion completed"
        );
    });
}
