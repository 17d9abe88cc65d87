//! Distribution to edge nodes, black-box: a hub and three edges (two
//! countries, two cities) as separate processes on loopback.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    ADMIN_PW, Hub, Launch, Server, client, content, key_fixture, sha256_hex, stores,
};

const PW: &str = "correct horse battery staple";
const EDGES: [(&str, &str, &str); 3] = [
    ("de-fra-1", "Frankfurt", "DE"),
    ("de-muc-1", "München", "DE"),
    ("us-nyc-1", "New York", "US"),
];

struct Edge {
    server: Server,
    name: &'static str,
    token: String,
    _dir: tempfile::TempDir,
}

fn start_edge(i: usize, store: &str) -> Edge {
    let (name, city, country) = EDGES[i];
    let dir = tempfile::tempdir().unwrap();
    let token = format!("pairing-token-{i}-{}", std::process::id());
    let data = dir.path().join("data");
    let mut launch = Launch::edge(&data, name, city, country, &token);
    launch.store = store;
    let server = launch.start();
    Edge {
        server,
        name,
        token,
        _dir: dir,
    }
}

struct Grid {
    hub: Hub,
    edges: Vec<Edge>,
    files: Vec<(String, Vec<u8>)>,
}

fn dist(hub: &Hub, method: Method, path: &str) -> reqwest::RequestBuilder {
    hub.dist_api(method, path)
}

async fn register(hub: &Hub, edge: &Edge, i: usize) -> (StatusCode, Value) {
    let (_, city, country) = EDGES[i];
    let body = json!({"name": edge.name, "url": edge.server.base, "token": edge.token, "location": {"city_name": city, "country_code": country}, "tags": ["test"]});
    let res = hub.post_jpd(&body).await;
    hub.json(res).await
}

async fn create_signed(hub: &Hub, name: &str, version: &str) {
    let body = json!({"name": name, "version": version, "dry_run": false, "sign_immediately": true,
        "spec": {"queries": [{"aql": "items.find({\"repo\":\"libs\",\"type\":\"file\"})",
                              "mappings": [{"input": "^libs/(.*)$", "output": "prod/$1"}],
                              "added_props": [{"key": "bundle", "values": [name]}]}]}});
    post_signed(hub, &body).await;
}

/// Creates a version from `body`, signed with the fixture key's passphrase.
async fn post_signed(hub: &Hub, body: &Value) {
    let res = dist(hub, Method::POST, "release_bundle")
        .header("X-Gpg-Passphrase", PW)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "{}",
        res.text().await.unwrap()
    );
}

async fn grid(store: &str, register_edges: bool) -> Grid {
    let hub = Hub::start(store);
    let edges: Vec<Edge> = (0..3).map(|i| start_edge(i, store)).collect();
    hub.upload_key().await;
    if register_edges {
        for (i, e) in edges.iter().enumerate() {
            let (status, body) = register(&hub, e, i).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            assert_eq!(body["status"], "ONLINE", "the key reached the edge: {body}");
            assert!(body.get("token").is_none(), "tokens are never returned");
        }
    }
    hub.create_repo("libs").await;
    let files = vec![
        ("app/app-1.0.jar".to_string(), content(2 << 20, 1)),
        ("app/lib/dep.tgz".to_string(), content(150_000, 2)),
        ("app/README.md".to_string(), b"hello edges".to_vec()),
    ];
    for (path, data) in &files {
        let (status, body) = hub
            .deploy(&format!("libs/{path};team=core"), data.clone())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    Grid { hub, edges, files }
}

/// The `name`s of a distribution answer's `sites`, sorted.
fn site_names(body: &Value) -> Vec<String> {
    let mut names: Vec<String> = body["sites"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Polls a tracker the way the JFrog CLI does (first poll at once, then at
/// an interval) until it is terminal, and returns it.
async fn wait_for(hub: &Hub, name: &str, version: &str, id: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let res = dist(
            hub,
            Method::GET,
            &format!("release_bundle/{name}/{version}/distribution/{id}"),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let text = res.text().await.unwrap();
        assert!(
            text.starts_with('{') || text.starts_with('['),
            "no leading white space: {text:?}"
        );
        let t: Value = serde_json::from_str(&text).unwrap();
        let status = t["status"].as_str().unwrap().to_string();
        assert!(
            [
                "Not distributed",
                "In queue",
                "In progress",
                "Completed",
                "Failed"
            ]
            .contains(&status.as_str()),
            "{status}"
        );
        if status == "Completed" || status == "Failed" {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "tracker {id} did not finish: {t}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn distribute(
    hub: &Hub,
    name: &str,
    version: &str,
    rules: Value,
    auto_create: bool,
) -> (StatusCode, Value) {
    let mut body = json!({"dry_run": false, "distribution_rules": rules});
    if auto_create {
        body["auto_create_missing_repositories"] = json!(true);
    }
    let res = dist(hub, Method::POST, &format!("distribution/{name}/{version}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    hub.json(res).await
}

async fn edge_get(edge: &Edge, path: &str) -> reqwest::Response {
    client()
        .get(edge.server.url(&format!("/artifactory/{path}")))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap()
}

async fn assert_edge_holds(grid: &Grid, i: usize) {
    for (path, data) in &grid.files {
        let res = edge_get(&grid.edges[i], &format!("prod/{path}")).await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{} lacks {path}",
            grid.edges[i].name
        );
        assert_eq!(
            res.headers()["x-checksum-sha256"],
            sha256_hex(data).as_str()
        );
        assert_eq!(
            res.bytes().await.unwrap().as_ref(),
            data.as_slice(),
            "{}: {path}",
            grid.edges[i].name
        );
    }
}

async fn assert_edge_empty(grid: &Grid, i: usize) {
    for (path, _) in &grid.files {
        let res = edge_get(&grid.edges[i], &format!("prod/{path}")).await;
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "{} holds {path} but was not selected",
            grid.edges[i].name
        );
    }
}

fn sites_by_name(t: &Value) -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = t["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["target_artifactory"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                s.clone(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test]
async fn distribution_by_rules_delivers_verified_bytes_only_where_selected() {
    for store in stores() {
        let grid = grid(store, true).await;
        let hub = &grid.hub;
        create_signed(hub, "app", "1.0").await;

        // Dry runs show which sites each kind of rule selects.
        let dry = |rules: Value| async move {
            let res = dist(hub, Method::POST, "distribution/app/1.0")
                .json(&json!({"dry_run": true, "distribution_rules": rules}))
                .send()
                .await
                .unwrap();
            let (status, body) = hub.json(res).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["id"], 0);
            site_names(&body)
        };
        assert_eq!(dry(json!([{}])).await, ["de-fra-1", "de-muc-1", "us-nyc-1"]);
        assert_eq!(
            dry(json!([{"site_name": "*"}])).await,
            ["de-fra-1", "de-muc-1", "us-nyc-1"]
        );
        assert_eq!(dry(json!([{"site_name": "de-m*"}])).await, ["de-muc-1"]);
        assert_eq!(
            dry(json!([{"city_name": "m?nchen"}, {"country_codes": ["u?"]}])).await,
            ["de-muc-1", "us-nyc-1"]
        );
        let res = dist(hub, Method::GET, "release_bundle/app/1.0/distribution")
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "dry runs schedule nothing"
        );

        // By country: both German edges, never the American one.
        let (status, body) =
            distribute(hub, "app", "1.0", json!([{"country_codes": ["DE"]}]), true).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let id = body["id"].as_u64().expect("numeric tracker id");
        assert_eq!(body["sites"].as_array().unwrap().len(), 2);
        let t = wait_for(hub, "app", "1.0", id).await;
        assert_eq!(t["status"], "Completed", "{store}: {t}");
        assert_eq!(t["type"], "distribute");
        assert_eq!(t["distribution_friendly_id"], 1);
        assert!(t["duration"].is_u64() && t["finish_time"].is_string());
        let total: u64 = grid.files.iter().map(|f| f.1.len() as u64).sum();
        for (name, site) in sites_by_name(&t) {
            assert_eq!(site["status"], "Completed", "{name}");
            assert_eq!(site["total_files"], 3);
            assert_eq!(site["distributed_files"], 3);
            assert_eq!(site["total_bytes"], total);
            assert_eq!(site["distributed_bytes"], total);
            assert_eq!(
                site["transferred_bytes"], total,
                "{name}: everything was new"
            );
            assert_eq!(site["file_errors"], json!([]));
            assert_eq!(site["target_artifactory"]["type"], "edge");
        }
        assert_edge_holds(&grid, 0).await;
        assert_edge_holds(&grid, 1).await;
        assert_edge_empty(&grid, 2).await;

        // Properties travelled, and each edge answers AQL over its own content.
        let res = client()
            .post(grid.edges[1].server.url("/artifactory/api/search/aql"))
            .basic_auth("admin", Some(ADMIN_PW))
            .body(r#"items.find({"repo":"prod","@bundle":"app"}).include("name","property")"#)
            .send()
            .await
            .unwrap();
        let found: Value = res.json().await.unwrap();
        assert_eq!(found["results"].as_array().unwrap().len(), 3, "{found}");
        assert!(
            found["results"][0]["properties"]
                .as_array()
                .unwrap()
                .contains(&json!({"key": "team", "value": "core"}))
        );

        // By city, case-insensitively: now the American edge too.
        let (status, body) =
            distribute(hub, "app", "1.0", json!([{"city_name": "new york"}]), true).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let t = wait_for(hub, "app", "1.0", body["id"].as_u64().unwrap()).await;
        assert_eq!(t["status"], "Completed", "{t}");
        assert_eq!(t["distribution_friendly_id"], 2);
        assert_edge_holds(&grid, 2).await;

        // The same content in a new version moves no blob bytes at all.
        create_signed(hub, "app", "2.0").await;
        let (status, body) = distribute(hub, "app", "2.0", json!([{"site_name": "*"}]), true).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let t = wait_for(hub, "app", "2.0", body["id"].as_u64().unwrap()).await;
        assert_eq!(t["status"], "Completed", "{t}");
        for (name, site) in sites_by_name(&t) {
            assert_eq!(
                site["transferred_bytes"], 0,
                "{name} was sent content it already held"
            );
            assert_eq!(site["distributed_bytes"], total, "{name}");
        }

        // Views: all, by bundle, by version.
        let all: Vec<Value> = dist(hub, Method::GET, "release_bundle/distribution")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(all.len(), 3);
        let by_name: Vec<Value> = dist(hub, Method::GET, "release_bundle/app/distribution")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(by_name.len(), 3);
        let by_version: Vec<Value> = dist(hub, Method::GET, "release_bundle/app/2.0/distribution")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(by_version.len(), 1);
        assert!(by_version[0]["distribution_id"].is_u64());
        let res = dist(hub, Method::GET, "release_bundle/app/9.9/distribution")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn refusals_are_400s_with_reasons() {
    for store in stores() {
        refusals_on(store).await;
    }
}

async fn refusals_on(store: &str) {
    let grid = grid(store, true).await;
    let hub = &grid.hub;
    // Not signed.
    let body = json!({"name": "open", "version": "1", "dry_run": false, "sign_immediately": false,
        "spec": {"queries": [{"aql": "items.find({\"repo\":\"libs\"})"}]}});
    assert_eq!(
        dist(hub, Method::POST, "release_bundle")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    let (status, res) = distribute(hub, "open", "1", json!([{}]), true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let msg = crate::support::error_message(&res);
    assert!(
        msg.contains("not signed")
            && msg.contains("/api/v1/release_bundle/open/1/sign")
            && msg.contains("sign_immediately"),
        "says what to do: {res}"
    );
    // No site matches.
    create_signed(hub, "app", "1.0").await;
    let (status, res) =
        distribute(hub, "app", "1.0", json!([{"country_codes": ["JP"]}]), true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        crate::support::error_message(&res).contains("match none"),
        "{res}"
    );
    // No rules at all.
    let (status, _) = distribute(hub, "app", "1.0", json!([]), true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Blocked by the scan hook.
    let policy = json!({"blocked_properties": [{"key": "team", "values": ["core"]}]});
    assert_eq!(
        dist(hub, Method::PUT, "scan_policy")
            .json(&policy)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        dist(
            hub,
            Method::POST,
            "release_bundle/app/1.0/trigger_xray_scan"
        )
        .send()
        .await
        .unwrap()
        .status(),
        StatusCode::OK
    );
    let (status, res) = distribute(hub, "app", "1.0", json!([{}]), true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        crate::support::error_message(&res).contains("blocked"),
        "{res}"
    );
    // Unknown version.
    let (status, _) = distribute(hub, "nope", "1", json!([{}]), true).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        dist(hub, Method::GET, "release_bundle/distribution")
            .send()
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
            .is_empty(),
        "no tracker was created"
    );
}

#[tokio::test]
async fn sites_fail_with_the_edges_reason() {
    let grid = grid("sqlite", true).await;
    let hub = &grid.hub;
    // Edge 0 is told to trust another key, so the hub's signature cannot verify there.
    let e0 = &grid.edges[0];
    let res = client()
        .put(e0.server.url("/waybill/api/v1/edge/key"))
        .bearer_auth(&e0.token)
        .json(&json!({"public_key": key_fixture("rsa2048-plain.pub.asc")}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    create_signed(hub, "app", "1.0").await;
    // Edge 0: wrong key. Edge 1: no auto-create, and it has no `prod` repository.
    let (status, body) =
        distribute(hub, "app", "1.0", json!([{"country_codes": ["DE"]}]), false).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let t = wait_for(hub, "app", "1.0", body["id"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "Failed", "{t}");
    let sites = sites_by_name(&t);
    assert_eq!(sites[0].1["status"], "Failed");
    assert!(
        sites[0].1["general_error"]
            .as_str()
            .unwrap()
            .contains("does not verify with the hub's key"),
        "{t}"
    );
    assert_eq!(sites[1].1["status"], "Failed");
    assert!(
        sites[1].1["general_error"]
            .as_str()
            .unwrap()
            .contains("repository 'prod' does not exist"),
        "{t}"
    );
    assert_edge_empty(&grid, 0).await;
    assert_edge_empty(&grid, 1).await;

    // An edge registered while its hub had no key holds none: that site fails and says why.
    let keyless = Hub::start("sqlite");
    let fresh = start_edge(2, "sqlite");
    let (status, body) = register(&keyless, &fresh, 2).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["status"], "ONLINE_WITHOUT_KEY", "{body}");
    keyless.upload_key().await;
    keyless.create_repo("libs").await;
    assert_eq!(
        keyless.deploy("libs/x.bin", b"x".to_vec()).await.0,
        StatusCode::CREATED
    );
    create_signed(&keyless, "app", "1.0").await;
    let (_, body) = distribute(&keyless, "app", "1.0", json!([{}]), true).await;
    let t = wait_for(&keyless, "app", "1.0", body["id"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "Failed", "{t}");
    assert!(
        t["sites"][0]["general_error"]
            .as_str()
            .unwrap()
            .contains("holds no signing key"),
        "{t}"
    );
}

#[tokio::test]
async fn unreachable_edges_are_retried_then_fail_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut launch = Launch::new(&data);
    launch.env.extend([
        ("WAYBILL_RETRY_ATTEMPTS", "3"),
        ("WAYBILL_RETRY_BASE_MS", "100"),
    ]);
    let server = launch.start();
    let hub = Hub {
        server,
        http: client(),
        _tmp: tempfile::tempdir().unwrap(),
    };
    hub.upload_key().await;
    let edge = start_edge(2, "sqlite");
    assert_eq!(register(&hub, &edge, 2).await.0, StatusCode::CREATED);
    hub.create_repo("libs").await;
    assert_eq!(
        hub.deploy("libs/app/a.bin", content(1000, 3)).await.0,
        StatusCode::CREATED
    );
    create_signed(&hub, "app", "1.0").await;
    drop(edge); // The edge goes down.
    let (status, body) = distribute(&hub, "app", "1.0", json!([{}]), true).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let t = wait_for(&hub, "app", "1.0", body["id"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "Failed", "{t}");
    let err = t["sites"][0]["general_error"].as_str().unwrap();
    assert!(
        err.contains("gave up after 3 attempts") && err.contains("unreachable"),
        "{err}"
    );
    assert!(
        hub.server.log().contains("retrying site"),
        "retries were logged"
    );
}

#[tokio::test]
async fn edges_refuse_strangers_and_register_themselves_idempotently() {
    let hub = Hub::start("sqlite");
    let edge = start_edge(0, "sqlite");
    for token in [None, Some("wrong")] {
        let mut req = client()
            .post(edge.server.url("/waybill/api/v1/edge/prepare"))
            .json(&json!({}));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // The hub checks the token before it registers anything.
    let mut bad = json!({"name": "x", "url": edge.server.base, "token": "wrong", "location": {"city_name": "Frankfurt", "country_code": "DE"}});
    let res = hub.post_jpd(&bad).await;
    let (status, body) = hub.json(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        crate::support::error_message(&body).contains("accepting this pairing token"),
        "{body}"
    );
    bad["url"] = json!("http://127.0.0.1:1");
    bad["token"] = json!(edge.token);
    let res = hub.post_jpd(&bad).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "unreachable URL");
    let res = hub
        .http
        .get(hub.server.url("/mc/api/v1/jpds"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    drop(edge);

    // `waybill edge --register-with` registers on start, and again harmlessly on restart.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hub_url = hub.server.base.clone();
    let start = || {
        let mut l = Launch::edge(&data, "self-reg", "Paris", "fr", "");
        l.subcommand.truncate(l.subcommand.len() - 2); // no --pairing-token: generate one
        l.subcommand
            .extend(["--register-with".to_string(), hub_url.clone()]);
        l.env.push(("WAYBILL_HUB_PASSWORD", ADMIN_PW));
        l.start()
    };
    let edge = start();
    let token_file = data.join("pairing.token");
    let listed = || async {
        let res = hub
            .http
            .get(hub.server.url("/mc/api/v1/jpds"))
            .basic_auth("admin", Some(ADMIN_PW))
            .send()
            .await
            .unwrap();
        res.json::<Vec<Value>>().await.unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while listed().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the edge never registered: {}",
            edge.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = listed().await;
    assert_eq!(first[0]["name"], "self-reg");
    assert_eq!(first[0]["location"]["country_code"], "FR");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(!edge.log().contains(&token), "the pairing token was logged");
    assert!(edge.terminate().success());
    let edge = start();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let again = listed().await;
    assert_eq!(again.len(), 1, "re-registration did not duplicate the edge");
    assert_eq!(again[0]["id"], first[0]["id"]);
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        token,
        "the token survives restarts"
    );
    drop(edge);
}

#[tokio::test]
async fn keys_propagate_to_every_edge_with_a_report() {
    let mut grid = grid("sqlite", true).await;
    let body = |fail: bool| {
        json!({"key": {"public_key": key_fixture("rsa2048-plain.pub.asc"), "private_key": key_fixture("rsa2048-plain.sec.asc")},
               "propagate_to_edge_nodes": true, "fail_on_propagation_failure": fail})
    };
    let res = dist(&grid.hub, Method::POST, "keys/pgp")
        .json(&body(false))
        .send()
        .await
        .unwrap();
    let (status, report) = grid.hub.json(res).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["report"]["status"], "SUCCESS");
    let details = report["report"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 3);
    assert!(details.iter().all(|d| d["status"] == "SUCCESS" && d["jpd_id"].as_str().unwrap().starts_with("jfrt@")));
    // Edges now verify with the new key: a bundle signed by it reaches them.
    create_signed(&grid.hub, "app", "1.0").await;
    let (_, started) = distribute(
        &grid.hub,
        "app",
        "1.0",
        json!([{"site_name": "de-fra-1"}]),
        true,
    )
    .await;
    let t = wait_for(&grid.hub, "app", "1.0", started["id"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "Completed", "{t}");
    // One edge down: a partial success; asked to fail on it, a 400 carrying the report.
    drop(grid.edges.remove(2));
    let res = dist(&grid.hub, Method::POST, "keys/pgp")
        .json(&body(false))
        .send()
        .await
        .unwrap();
    let (status, report) = grid.hub.json(res).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["report"]["status"], "PARTIAL_SUCCESS", "{report}");
    assert!(
        report["report"]["message"]
            .as_str()
            .unwrap()
            .contains("us-nyc-1"),
        "{report}"
    );
    let res = dist(&grid.hub, Method::POST, "keys/pgp/propagate")
        .send()
        .await
        .unwrap();
    let (status, report) = grid.hub.json(res).await;
    assert_eq!(
        (status, report["report"]["status"].as_str()),
        (StatusCode::OK, Some("PARTIAL_SUCCESS"))
    );
    let res = dist(&grid.hub, Method::POST, "keys/gpg")
        .json(&body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn abort_stops_unfinished_sites_and_reports_them() {
    for store in stores() {
        abort_on(store).await;
    }
}

async fn abort_on(store: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut launch = Launch::new(&data);
    launch.store = store;
    // Slow retries keep the site in progress long enough to abort it.
    launch.env.extend([
        ("WAYBILL_RETRY_ATTEMPTS", "50"),
        ("WAYBILL_RETRY_BASE_MS", "2000"),
    ]);
    let hub = Hub {
        server: launch.start(),
        http: client(),
        _tmp: tempfile::tempdir().unwrap(),
    };
    hub.upload_key().await;
    let edges: Vec<Edge> = (0..2).map(|i| start_edge(i, store)).collect();
    for (i, e) in edges.iter().enumerate() {
        assert_eq!(register(&hub, e, i).await.0, StatusCode::CREATED);
    }
    // `us_only` may distribute `app`, but only to US sites.
    let res = dist(&hub, Method::PUT, "security/users/us_only")
        .json(&json!({"password": "user-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    for p in [
        json!({"name": "us-b", "resource_type": "release_bundle", "release_bundles": {"include_patterns": ["app"]}, "principals": {"users": {"us_only": ["r", "x"]}}}),
        json!({"name": "us-d", "resource_type": "destination", "distribution_destinations": [{"country_codes": ["US"]}], "principals": {"users": {"us_only": ["x"]}}}),
    ] {
        let path = format!("security/permissions/{}", p["name"].as_str().unwrap());
        let res = dist(&hub, Method::PUT, &path)
            .json(&p)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    hub.create_repo("libs").await;
    assert_eq!(
        hub.deploy("libs/a.bin", content(1000, 9)).await.0,
        StatusCode::CREATED
    );
    create_signed(&hub, "app", "1.0").await;
    let abort = |path: &str| dist(&hub, Method::PUT, &format!("distribution/{path}/abort")).send();
    // Unknown bundle or version: 404; nothing in progress: 204.
    for unknown in ["nope/1.0", "app/9.9"] {
        let (status, body) = hub.json(abort(unknown).await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{store} {unknown}: {body}");
    }
    assert_eq!(
        abort("app/1.0").await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let mut edges = edges;
    drop(edges.remove(1)); // de-muc-1 is down, so its site keeps retrying
    let (_, started) = distribute(&hub, "app", "1.0", json!([{}]), true).await;
    let id = started["id"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = hub.tracker("app", "1.0", id).await;
        let sites = sites_by_name(&t);
        if sites[0].1["status"] == "Completed"
            && sites[1].1["general_error"]
                .as_str()
                .unwrap()
                .contains("retrying")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The edges are filtered by the caller's destinations: none is US.
    let res = as_user(&hub, "us_only", Method::PUT, "distribution/app/1.0/abort")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "{store}");
    assert_eq!(
        hub.tracker("app", "1.0", id).await["status"],
        "In progress",
        "nothing was stopped"
    );
    let (status, body) = hub.json(abort("app/1.0").await.unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let t = hub.tracker("app", "1.0", id).await;
    let muc = &sites_by_name(&t)[1].1;
    assert_eq!(
        body,
        json!([{"name": "de-muc-1", "service_id": muc["target_artifactory"]["service_id"], "type": "edge"}]),
        "seed 003's shape: only the unfinished site"
    );
    let t = wait_for(&hub, "app", "1.0", id).await;
    assert_eq!(t["status"], "Failed");
    let sites = sites_by_name(&t);
    assert_eq!(
        sites[0].1["status"], "Completed",
        "finished sites keep their result"
    );
    assert_eq!(
        (
            sites[1].1["status"].as_str(),
            sites[1].1["general_error"].as_str()
        ),
        (Some("Failed"), Some("aborted"))
    );
    assert_eq!(
        abort("app/1.0").await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn delete_from_edges_removes_content_and_then_answers_404() {
    for store in stores() {
        let grid = grid(store, true).await;
        let hub = &grid.hub;
        create_signed(hub, "app", "1.0").await;
        let (_, started) = distribute(hub, "app", "1.0", json!([{}]), true).await;
        assert_eq!(
            wait_for(hub, "app", "1.0", started["id"].as_u64().unwrap()).await["status"],
            "Completed"
        );
        // Dry run: the sites, nothing scheduled.
        let dry = json!({"dry_run": true, "distribution_rules": [{"country_codes": ["DE"]}], "on_success": "keep"});
        let (status, body) = hub
            .json(
                dist(hub, Method::POST, "distribution/app/1.0/delete")
                    .json(&dry)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
        assert_eq!((status, body["id"].as_u64()), (StatusCode::OK, Some(0)));
        assert_eq!(body["sites"].as_array().unwrap().len(), 2);
        // D6 as the CLI sends it; then poll like `jf ds rbdel --sync`: 200 while going, 404 when done.
        let del = json!({"dry_run": false, "distribution_rules": [{}], "on_success": "delete"});
        let (status, body) = hub
            .json(
                dist(hub, Method::POST, "distribution/app/1.0/delete")
                    .json(&del)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert!(body["id"].as_u64().unwrap() > 0);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let res = dist(hub, Method::GET, "release_bundle/app/1.0/distribution")
                .send()
                .await
                .unwrap();
            match res.status() {
                StatusCode::NOT_FOUND => break,
                StatusCode::OK => {
                    let trackers: Vec<Value> = res.json().await.unwrap();
                    assert!(
                        trackers
                            .iter()
                            .any(|t| t["type"] == "delete_release_bundle_version"),
                        "{trackers:?}"
                    );
                }
                other => panic!("unexpected {other}"),
            }
            assert!(Instant::now() < deadline, "deletion never finished");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        for i in 0..3 {
            assert_edge_empty(&grid, i).await;
        }
        // on_success: delete removed the version from the hub too.
        assert_eq!(
            dist(hub, Method::GET, "release_bundle/app/1.0")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );

        // With two versions sharing paths, removing one keeps what the other still needs.
        create_signed(hub, "app", "2.0").await;
        create_signed(hub, "app", "3.0").await;
        for v in ["2.0", "3.0"] {
            let (_, s) = distribute(hub, "app", v, json!([{"site_name": "de-fra-1"}]), true).await;
            assert_eq!(
                wait_for(hub, "app", v, s["id"].as_u64().unwrap()).await["status"],
                "Completed"
            );
        }
        let keep = json!({"dry_run": false, "distribution_rules": [{"site_name": "de-fra-1"}], "on_success": "keep"});
        assert_eq!(
            dist(hub, Method::POST, "distribution/app/2.0/delete")
                .json(&keep)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::ACCEPTED
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let res = dist(hub, Method::GET, "release_bundle/app/2.0/distribution")
                .send()
                .await
                .unwrap();
            if res.status() == StatusCode::NOT_FOUND {
                break;
            }
            let seen = res.text().await.unwrap();
            assert!(
                Instant::now() < deadline,
                "deletion of 2.0 never finished: {seen}"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert_edge_holds(&grid, 0).await;
        assert_eq!(
            dist(hub, Method::GET, "release_bundle/app/2.0")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK,
            "on_success: keep"
        );
        let bad = json!({"dry_run": false, "distribution_rules": [{}], "on_success": "maybe"});
        assert_eq!(
            dist(hub, Method::POST, "distribution/app/3.0/delete")
                .json(&bad)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::BAD_REQUEST
        );
    }
}

/// Polls until the tracker's single site has moved some bytes, and returns
/// the tracker then; panics if it finished first.
async fn wait_for_progress(hub: &Hub, name: &str, version: &str, id: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = hub.tracker(name, version, id).await;
        assert_ne!(
            t["status"], "Completed",
            "the transfer finished before the crash could happen; use more data"
        );
        if t["sites"][0]["transferred_bytes"].as_u64().unwrap_or(0) > 0 {
            return t;
        }
        assert!(Instant::now() < deadline, "no progress: {t}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn edge_and_hub_crashes_mid_transfer_recover_and_complete() {
    let hub_dir = tempfile::tempdir().unwrap();
    let hub_data = hub_dir.path().join("data");
    let hub_env = [
        ("WAYBILL_RETRY_ATTEMPTS", "60"),
        ("WAYBILL_RETRY_BASE_MS", "200"),
    ];
    let mut launch = Launch::new(&hub_data);
    launch.env.extend(hub_env);
    let hub = Hub {
        server: launch.start(),
        http: client(),
        _tmp: tempfile::tempdir().unwrap(),
    };
    hub.upload_key().await;

    let edge_dir = tempfile::tempdir().unwrap();
    let edge_data = edge_dir.path().join("data");
    let token = "crash-test-token";
    let mut edge_launch = Launch::edge(&edge_data, "de-fra-1", "Frankfurt", "DE", token);
    let edge = edge_launch.start();
    edge_launch.listen = edge.base.trim_start_matches("http://").to_string();
    let body = json!({"name": "de-fra-1", "url": edge.base, "token": token, "location": {"city_name": "Frankfurt", "country_code": "DE"}});
    let res = hub.post_jpd(&body).await;
    assert_eq!(res.status(), StatusCode::CREATED);

    hub.create_repo("libs").await;
    let files: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| (format!("big/part-{i:02}.bin"), content(12 << 20, 100 + i)))
        .collect();
    for (path, data) in &files {
        assert_eq!(
            hub.deploy(&format!("libs/{path}"), data.clone()).await.0,
            StatusCode::CREATED
        );
    }
    let total: u64 = files.iter().map(|f| f.1.len() as u64).sum();
    create_signed(&hub, "app", "1.0").await;

    // 1. The edge crashes mid-transfer and comes back on the same address.
    let (_, started) = distribute(&hub, "app", "1.0", json!([{}]), true).await;
    let id = started["id"].as_u64().unwrap();
    wait_for_progress(&hub, "app", "1.0", id).await;
    edge.crash();
    let edge = edge_launch.start();
    let t = wait_for(&hub, "app", "1.0", id).await;
    assert_eq!(t["status"], "Completed", "{t}");
    let site = &t["sites"][0];
    assert_eq!(site["distributed_bytes"], total);
    assert!(
        site["transferred_bytes"].as_u64().unwrap() <= total,
        "verified blobs were sent again: {t}"
    );
    let holds = |edge: &Server, files: &[(String, Vec<u8>)]| {
        let (base, files) = (edge.base.clone(), files.to_vec());
        async move {
            for (path, data) in files {
                let res = client()
                    .get(format!("{base}/artifactory/prod/{path}"))
                    .basic_auth("admin", Some(ADMIN_PW))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), StatusCode::OK, "{path}");
                assert_eq!(
                    res.headers()["x-checksum-sha256"],
                    sha256_hex(&data).as_str()
                );
                let got = res.bytes().await.unwrap();
                assert!(got.as_ref() == data.as_slice(), "{path}: bytes differ");
            }
        }
    };
    holds(&edge, &files).await;

    // 2. The hub is killed mid-distribution; on restart it resumes and finishes.
    let more: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| (format!("big2/part-{i:02}.bin"), content(12 << 20, 200 + i)))
        .collect();
    for (path, data) in &more {
        assert_eq!(
            hub.deploy(&format!("libs/{path}"), data.clone()).await.0,
            StatusCode::CREATED
        );
    }
    let body = json!({"name": "app", "version": "2.0", "dry_run": false, "sign_immediately": true,
        "spec": {"queries": [{"aql": "items.find({\"repo\":\"libs\",\"path\":{\"$match\":\"big2*\"}})",
                              "mappings": [{"input": "^libs/(.*)$", "output": "prod/$1"}]}]}});
    let res = dist(&hub, Method::POST, "release_bundle")
        .header("X-Gpg-Passphrase", PW)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let (_, started) = distribute(&hub, "app", "2.0", json!([{}]), true).await;
    let id = started["id"].as_u64().unwrap();
    wait_for_progress(&hub, "app", "2.0", id).await;
    let Hub { server, .. } = hub;
    server.crash();
    let mut relaunch = Launch::new(&hub_data);
    relaunch.env.extend(hub_env);
    let hub = Hub {
        server: relaunch.start(),
        http: client(),
        _tmp: tempfile::tempdir().unwrap(),
    };
    let t = wait_for(&hub, "app", "2.0", id).await;
    assert_eq!(t["status"], "Completed", "{t}");
    assert!(
        hub.server.log().contains("resuming distribution"),
        "the hub resumed the tracker"
    );
    let more_total: u64 = more.iter().map(|f| f.1.len() as u64).sum();
    assert_eq!(t["sites"][0]["distributed_bytes"], more_total);
    assert!(
        t["sites"][0]["transferred_bytes"].as_u64().unwrap() <= more_total,
        "{t}"
    );
    holds(&edge, &more).await;
}

#[tokio::test]
async fn a_blob_that_arrives_corrupt_is_retried_then_named_in_file_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let hub = Hub {
        server: Launch::new(&data).start(),
        http: client(),
        _tmp: tempfile::tempdir().unwrap(),
    };
    hub.upload_key().await;
    let edge = start_edge(0, "sqlite");
    assert_eq!(register(&hub, &edge, 0).await.0, StatusCode::CREATED);
    hub.create_repo("libs").await;
    let good = content(5000, 1);
    let bad = content(7000, 2);
    assert_eq!(
        hub.deploy("libs/good.bin", good.clone()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        hub.deploy("libs/bad.bin", bad.clone()).await.0,
        StatusCode::CREATED
    );
    create_signed(&hub, "app", "1.0").await;
    // Flip one byte of the hub's copy: it will never match its checksum.
    let hex = sha256_hex(&bad);
    let path = data.join("blobs/sha256").join(&hex[..2]).join(&hex);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let (_, started) = distribute(&hub, "app", "1.0", json!([{}]), true).await;
    let t = wait_for(&hub, "app", "1.0", started["id"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "Failed", "{t}");
    let site = &t["sites"][0];
    let errors = site["file_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{t}");
    assert!(
        errors[0].as_str().unwrap().starts_with("prod/bad.bin: ")
            && errors[0].as_str().unwrap().contains("mismatch"),
        "{t}"
    );
    assert!(
        site["general_error"].as_str().unwrap().contains("mismatch"),
        "{t}"
    );
    // Nothing half-committed: not even the good file is visible on the edge.
    let res = client()
        .get(edge.server.url("/artifactory/prod/good.bin"))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let sends = edge
        .server
        .log()
        .matches(&format!("/waybill/api/v1/edge/blobs/{hex}"))
        .count();
    assert_eq!(sends, 3, "the corrupt blob is sent exactly three times");
}

async fn admin_put(hub: &Hub, path: &str, body: Value) -> StatusCode {
    dist(hub, Method::PUT, path)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

fn as_user(hub: &Hub, user: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    hub.http
        .request(
            method,
            hub.server.url(&format!("/distribution/api/v1/{path}")),
        )
        .basic_auth(user, Some("user-password-1"))
}

#[tokio::test]
async fn permissions_decide_bundles_repositories_and_destinations() {
    let grid = grid("sqlite", true).await;
    let hub = &grid.hub;
    for (name, groups) in [
        ("dev", json!(["devs"])),
        ("ops", json!([])),
        ("de_only", json!([])),
        ("nobody", json!([])),
    ] {
        let s = admin_put(
            hub,
            &format!("security/users/{name}"),
            json!({"password": "user-password-1", "groups": groups}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{name}");
    }
    // Groups: membership set from the group's side shows on the user.
    let s = admin_put(
        hub,
        "security/groups/auditors",
        json!({"description": "read all", "users": ["nobody"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, g) = hub
        .json(
            dist(hub, Method::GET, "security/groups/auditors")
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(g["users"], json!(["nobody"]));
    let (_, u) = hub
        .json(
            dist(hub, Method::GET, "security/users/nobody")
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(u["groups"], json!(["auditors"]));

    let perms = [
        json!({"name": "apps", "resource_type": "release_bundle", "release_bundles": {"include_patterns": ["app*"], "exclude_patterns": ["app-secret"]},
               "principals": {"users": {"ops": ["r", "x", "d"], "de_only": ["r", "x"]}, "groups": {"devs": ["r", "w"]}}}),
        json!({"name": "libs-rw", "resource_type": "repository", "repositories": {"include_patterns": ["libs"]},
               "principals": {"users": {"dev": ["r", "w"]}}}),
        json!({"name": "everywhere", "resource_type": "destination", "distribution_destinations": [{"site_name": "*"}],
               "principals": {"users": {"ops": ["x", "d"]}}}),
        json!({"name": "de", "resource_type": "destination", "distribution_destinations": [{"country_codes": ["DE"]}],
               "principals": {"users": {"de_only": ["x"]}}}),
    ];
    for p in &perms {
        let name = p["name"].as_str().unwrap();
        let res = dist(hub, Method::PUT, &format!("security/permissions/{name}"))
            .json(p)
            .send()
            .await
            .unwrap();
        let (status, body) = hub.json(res).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["name"], name);
    }
    let (_, de) = hub
        .json(
            dist(hub, Method::GET, "security/permissions/de")
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(
        de["distribution_destinations"],
        json!([{"site_name": "*", "city_name": "*", "country_codes": ["DE"]}]),
        "seed shape"
    );
    assert_eq!(
        de["principals"],
        json!({"users": {"de_only": ["x"]}, "groups": {}})
    );
    let bad = json!({"name": "bad", "resource_type": "destination", "distribution_destinations": [{}], "principals": {"users": {"x": ["w"]}}});
    assert_eq!(
        dist(hub, Method::PUT, "security/permissions/bad")
            .json(&bad)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );

    // dev: writes app* bundles (through the devs group) and deploys to libs, nothing else.
    assert_eq!(
        hub.http
            .put(hub.server.url("/artifactory/libs/dev/x.bin"))
            .basic_auth("dev", Some("user-password-1"))
            .body("x")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    hub.create_repo("docker").await;
    let res = hub
        .http
        .put(hub.server.url("/artifactory/docker/x"))
        .basic_auth("dev", Some("user-password-1"))
        .body("x")
        .send()
        .await
        .unwrap();
    let (status, body) = hub.json(res).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        crate::support::error_message(&body)
            .contains("needs 'w' (write) permission on repository 'docker'"),
        "{body}"
    );
    let create = |name: &str| {
        json!({"name": name, "version": "1", "dry_run": false, "sign_immediately": false,
        "spec": {"queries": [{"aql": "items.find({\"repo\":\"libs\",\"name\":\"app-1.0.jar\"})", "mappings": [{"input": "^libs/(.*)$", "output": "prod/$1"}]}]}})
    };
    assert_eq!(
        as_user(hub, "dev", Method::POST, "release_bundle")
            .json(&create("app"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    for denied in ["app-secret", "other"] {
        let res = as_user(hub, "dev", Method::POST, "release_bundle")
            .json(&create(denied))
            .send()
            .await
            .unwrap();
        let (status, body) = hub.json(res).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{denied}");
        assert!(
            crate::support::error_message(&body).contains(&format!(
                "needs 'w' (write) permission on release bundle '{denied}'"
            )),
            "{body}"
        );
    }
    assert_eq!(
        dist(hub, Method::POST, "release_bundle")
            .json(&create("other"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    let res = as_user(hub, "dev", Method::POST, "release_bundle/app/1/sign")
        .header("X-Gpg-Passphrase", PW)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "w covers signing");
    // Lists show only what the caller may read.
    let listed: Vec<Value> = as_user(hub, "dev", Method::GET, "release_bundle")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["app"]);
    assert_eq!(
        as_user(hub, "dev", Method::GET, "release_bundle/other/1")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        as_user(hub, "nobody", Method::GET, "release_bundle")
            .send()
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
            .len(),
        0
    );

    // Distribution needs x on the bundle and on the destination.
    let rules = |r: Value| json!({"dry_run": true, "distribution_rules": r});
    let res = as_user(hub, "dev", Method::POST, "distribution/app/1")
        .json(&rules(json!([{}])))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "dev has no x");
    let dry = |r: Value| async move {
        let res = as_user(hub, "de_only", Method::POST, "distribution/app/1")
            .json(&rules(r))
            .send()
            .await
            .unwrap();
        let (status, body) = hub.json(res).await;
        let names = site_names(&body);
        (status, names, body)
    };
    let (status, names, _) = dry(json!([{}])).await;
    assert_eq!(
        (status, names),
        (
            StatusCode::OK,
            vec!["de-fra-1".to_string(), "de-muc-1".to_string()]
        ),
        "filtered to DE"
    );
    let (status, _, body) = dry(json!([{"country_codes": ["US"]}])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        crate::support::error_message(&body)
            .contains("needs 'x' (distribute) on a destination permission")
            && crate::support::error_message(&body).contains("us-nyc-1"),
        "{body}"
    );
    let (status, names, _) =
        dry(json!([{"country_codes": ["US"]}, {"site_name": "de-fra-1"}])).await;
    assert_eq!(
        (status, names),
        (StatusCode::OK, vec!["de-fra-1".to_string()]),
        "a mixed rule set is narrowed"
    );
    let res = as_user(hub, "de_only", Method::POST, "distribution/app/1").json(&json!({"dry_run": false, "distribution_rules": [{}], "auto_create_missing_repositories": true})).send().await.unwrap();
    let (status, body) = hub.json(res).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let t = wait_for(hub, "app", "1", body["id"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "Completed");
    assert_eq!(t["sites"].as_array().unwrap().len(), 2);
    // Tracker views follow read permission.
    let seen: Vec<Value> = as_user(hub, "ops", Method::GET, "release_bundle/distribution")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        as_user(
            hub,
            "nobody",
            Method::GET,
            "release_bundle/app/1/distribution"
        )
        .send()
        .await
        .unwrap()
        .status(),
        StatusCode::FORBIDDEN
    );
    // ops may delete from edges; de_only may not.
    let del = json!({"dry_run": true, "distribution_rules": [{}], "on_success": "keep"});
    assert_eq!(
        as_user(hub, "de_only", Method::POST, "distribution/app/1/delete")
            .json(&del)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        as_user(hub, "ops", Method::POST, "distribution/app/1/delete")
            .json(&del)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // Admin-only endpoints refuse a plain user; anonymous gets 401 everywhere but ping and info.
    for (method, path) in [
        (Method::GET, "system/settings"),
        (Method::GET, "security/permissions"),
        (Method::GET, "security/users"),
        (Method::GET, "security/groups"),
        (Method::GET, "security/token"),
        (Method::POST, "keys/pgp/propagate"),
    ] {
        assert_eq!(
            as_user(hub, "ops", method.clone(), path)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
        let anon = hub
            .http
            .request(
                method,
                hub.server.url(&format!("/distribution/api/v1/{path}")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(anon.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let jpds = hub
        .http
        .get(hub.server.url("/mc/api/v1/jpds"))
        .basic_auth("ops", Some("user-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(jpds.status(), StatusCode::FORBIDDEN);
    for path in ["system/ping", "system/info"] {
        assert_eq!(
            hub.http
                .get(hub.server.url(&format!("/distribution/api/v1/{path}")))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
    // Deleting a permission takes its grants away at once.
    assert_eq!(
        dist(hub, Method::DELETE, "security/permissions/apps")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        as_user(hub, "dev", Method::GET, "release_bundle/app/1")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        dist(hub, Method::DELETE, "security/permissions/apps")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}

/// Postmortem: the hub was killed while an edge was receiving a blob. The
/// edge's handler was cancelled after the blob became visible but before its
/// SHA-1 and MD5 were recorded; prepare then called the blob present and
/// commit failed for good ("checksums … are unknown"). Such a blob must be
/// sent again.
#[tokio::test]
async fn regression_blob_without_recorded_checksums_is_sent_again() {
    let hub = Hub::start("sqlite");
    hub.upload_key().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let edge = Launch::edge(&data, "de-fra-1", "Frankfurt", "DE", "tok").start();
    let body = json!({"name": "de-fra-1", "url": edge.base, "token": "tok", "location": {"city_name": "Frankfurt", "country_code": "DE"}});
    assert_eq!(hub.post_jpd(&body).await.status(), StatusCode::CREATED);
    hub.create_repo("libs").await;
    let file = content(300_000, 77);
    assert_eq!(
        hub.deploy("libs/x.bin", file.clone()).await.0,
        StatusCode::CREATED
    );
    create_signed(&hub, "app", "1.0").await;
    // What the cancelled request left behind: the blob, and nothing else.
    let hex = sha256_hex(&file);
    let blob = data.join("blobs/sha256").join(&hex[..2]).join(&hex);
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, &file).unwrap();
    let (_, started) = distribute(&hub, "app", "1.0", json!([{}]), true).await;
    let t = wait_for(&hub, "app", "1.0", started["id"].as_u64().unwrap()).await;
    assert_eq!(t["status"], "Completed", "{t}");
    assert_eq!(
        t["sites"][0]["transferred_bytes"],
        file.len(),
        "the blob was sent again"
    );
    let res = client()
        .get(edge.url("/artifactory/prod/x.bin"))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["x-checksum-sha1"],
        waybill::digest::Ingest::of(&file).sha1.to_hex().as_str()
    );
}

#[tokio::test]
async fn selection_follows_registrations_and_deletions_at_once() {
    // The hub keeps its site index between distributions; every change to
    // the edge list must reach the next selection.
    let grid = grid("sqlite", false).await;
    let hub = &grid.hub;
    create_signed(hub, "app", "1.0").await;
    let dry = || async {
        let res = dist(hub, Method::POST, "distribution/app/1.0")
            .json(&json!({"dry_run": true, "distribution_rules": [{"site_name": "*"}]}))
            .send()
            .await
            .unwrap();
        let (status, body) = hub.json(res).await;
        let names = site_names(&body);
        (status, names)
    };
    assert_eq!(dry().await.0, StatusCode::BAD_REQUEST, "no edges yet");
    let (status, first) = register(hub, &grid.edges[0], 0).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(dry().await, (StatusCode::OK, vec!["de-fra-1".to_string()]));
    assert_eq!(
        register(hub, &grid.edges[2], 2).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        dry().await,
        (StatusCode::OK, vec!["de-fra-1".into(), "us-nyc-1".into()])
    );
    let id = first["id"].as_str().expect("the JPD id");
    let res = hub
        .http
        .delete(hub.server.url(&format!("/mc/api/v1/jpds/{id}")))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(dry().await, (StatusCode::OK, vec!["us-nyc-1".to_string()]));
}

#[tokio::test]
async fn edge_status_is_checked_not_assumed() {
    let grid = grid("sqlite", true).await;
    let hub = &grid.hub;
    let statuses = || async {
        let res = hub
            .http
            .get(hub.server.url("/mc/api/v1/jpds"))
            .basic_auth("admin", Some(ADMIN_PW))
            .send()
            .await
            .unwrap();
        let (status, body) = hub.json(res).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut v: Vec<(String, String)> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|j| {
                (
                    j["name"].as_str().unwrap().to_string(),
                    j["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        v.sort();
        (v, body)
    };
    let (now, _) = statuses().await;
    assert!(now.iter().all(|(_, s)| s == "ONLINE"), "{now:?}");

    // An edge that died is OFFLINE, with the reason; the others stay ONLINE.
    let mut edges = grid.edges;
    let dead = edges.remove(1);
    let dead_id = {
        let (_, body) = statuses().await;
        body.as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == dead.name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    dead.server.crash();
    let (now, body) = statuses().await;
    assert_eq!(
        now,
        [
            ("de-fra-1".to_string(), "ONLINE".to_string()),
            ("de-muc-1".to_string(), "OFFLINE".to_string()),
            ("us-nyc-1".to_string(), "ONLINE".to_string()),
        ],
        "{body}"
    );
    let one: Value = hub
        .http
        .get(hub.server.url(&format!("/mc/api/v1/jpds/{dead_id}")))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["status"], "OFFLINE");
    assert!(
        one["status_message"]
            .as_str()
            .unwrap()
            .contains("does not answer"),
        "{one}"
    );
    assert!(one.get("token").is_none(), "tokens are never returned");

    // A live edge's position is kept when given, and checked.
    let live = &edges[0];
    let (_, body) = statuses().await;
    let live_id = body
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == live.name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let put = |location: Value| {
        hub.http
            .put(hub.server.url(&format!("/mc/api/v1/jpds/{live_id}")))
            .basic_auth("admin", Some(ADMIN_PW))
            .json(&json!({"name": live.name, "url": live.server.base, "token": live.token, "location": location}))
            .send()
    };
    let res = put(json!({"city_name": "Frankfurt", "country_code": "DE", "latitude": 50.110922, "longitude": 8.682127}))
        .await
        .unwrap();
    let (status, body) = hub.json(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["location"]["latitude"], 50.110922);
    assert_eq!(body["location"]["longitude"], 8.682127);
    for (location, fragment) in [
        (
            json!({"city_name": "Frankfurt", "country_code": "DE", "latitude": 50.1}),
            "give both or neither",
        ),
        (
            json!({"city_name": "Frankfurt", "country_code": "DE", "latitude": 91.0, "longitude": 8.0}),
            "within ±90",
        ),
    ] {
        let (status, body) = hub.json(put(location).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            crate::support::error_message(&body).contains(fragment),
            "{body}"
        );
    }
    let kept: Value = hub
        .http
        .get(hub.server.url(&format!("/mc/api/v1/jpds/{live_id}")))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        kept["location"]["latitude"], 50.110922,
        "refusals wrote nothing"
    );
    assert_eq!(kept["status"], "ONLINE");
}

/// Creates a signed version whose files land under `prod/{version}/`, so
/// versions never share paths on an edge.
async fn create_signed_apart(hub: &Hub, name: &str, version: &str) {
    let body = json!({"name": name, "version": version, "sign_immediately": true,
        "spec": {"queries": [{"aql": "items.find({\"repo\":\"libs\",\"type\":\"file\"})",
                              "mappings": [{"input": "^libs/(.*)$", "output": format!("prod/{version}/$1")}]}]}});
    post_signed(hub, &body).await;
}

/// Whether edge `i` serves every file of `version` (all or none: an edge
/// never shows part of a version).
async fn edge_serves(grid: &Grid, i: usize, version: &str) -> bool {
    let mut held = Vec::new();
    for (path, _) in &grid.files {
        held.push(
            edge_get(&grid.edges[i], &format!("prod/{version}/{path}"))
                .await
                .status()
                == StatusCode::OK,
        );
    }
    assert!(
        held.iter().all(|h| *h) || held.iter().all(|h| !*h),
        "{version}: part of a version: {held:?}"
    );
    held[0]
}

async fn delete_from_all_edges(hub: &Hub, name: &str, version: &str) -> (StatusCode, Value) {
    let body = json!({"dry_run": false, "distribution_rules": [{}], "on_success": "keep"});
    let res = dist(
        hub,
        Method::POST,
        &format!("distribution/{name}/{version}/delete"),
    )
    .json(&body)
    .send()
    .await
    .unwrap();
    hub.json(res).await
}

/// Truthful state 1 and 3: a distribute and a hub delete sent together
/// never leave edges holding a version nobody can remove; no tracker is
/// left unfinished; deletions from edges stay in the history views, and
/// only the version's own view answers 404 once they are done.
#[tokio::test]
async fn distribute_racing_a_hub_delete_strands_nothing() {
    for store in stores() {
        let grid = grid(store, true).await;
        let hub = &grid.hub;
        let mut kept = 0;
        for round in 0..12 {
            let version = format!("r{round}");
            create_signed_apart(hub, "race", &version).await;
            let del_path = format!("release_bundle/race/{version}");
            let (dist_res, del_res) = tokio::join!(
                distribute(hub, "race", &version, json!([{}]), true),
                async {
                    dist(hub, Method::DELETE, &del_path)
                        .send()
                        .await
                        .unwrap()
                        .status()
                }
            );
            match (dist_res.0, del_res) {
                // The delete came first: nothing was sent.
                (StatusCode::NOT_FOUND, StatusCode::NO_CONTENT) => {
                    for i in 0..3 {
                        assert!(!edge_serves(&grid, i, &version).await, "{store} {version}");
                    }
                }
                // The distribution came first: the delete is refused until it ends.
                (StatusCode::ACCEPTED, StatusCode::CONFLICT) => {
                    kept += 1;
                    let id = dist_res.1["id"].as_u64().unwrap();
                    assert_eq!(
                        wait_for(hub, "race", &version, id).await["status"],
                        "Completed"
                    );
                    for i in 0..3 {
                        assert!(edge_serves(&grid, i, &version).await, "{store} {version}");
                    }
                    let res = dist(hub, Method::DELETE, &del_path).send().await.unwrap();
                    assert_eq!(
                        res.status(),
                        StatusCode::NO_CONTENT,
                        "{}",
                        res.text().await.unwrap()
                    );
                    // The hub no longer has it; the trackers still let the edges drop it.
                    let (status, body) = delete_from_all_edges(hub, "race", &version).await;
                    assert_eq!(status, StatusCode::ACCEPTED, "{store} {version}: {body}");
                    let id = body["id"].as_u64().unwrap();
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while dist(
                        hub,
                        Method::GET,
                        &format!("release_bundle/race/{version}/distribution"),
                    )
                    .send()
                    .await
                    .unwrap()
                    .status()
                        != StatusCode::NOT_FOUND
                    {
                        assert!(Instant::now() < deadline, "deletion {id} never finished");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    for i in 0..3 {
                        assert!(!edge_serves(&grid, i, &version).await, "{store} {version}");
                    }
                }
                other => panic!("{store} {version}: distribute and delete answered {other:?}"),
            }
        }
        // No tracker is left unfinished, and the deletions are in the history.
        for path in [
            "release_bundle/distribution",
            "release_bundle/race/distribution",
        ] {
            let res = dist(hub, Method::GET, path).send().await.unwrap();
            let all: Vec<Value> = res.json().await.unwrap();
            assert!(
                all.iter()
                    .all(|t| t["status"] == "Completed" || t["status"] == "Failed"),
                "{store} {path}: {all:?}"
            );
            let deletions = all
                .iter()
                .filter(|t| {
                    t["type"] == "delete_release_bundle_version" && t["status"] == "Completed"
                })
                .count();
            assert_eq!(deletions, kept, "{store} {path}");
            assert!(
                all.iter().all(|t| t.get("finish_time").is_some()),
                "{all:?}"
            );
        }
        // A version never distributed, and not on the hub, is a 404.
        let (status, _) = delete_from_all_edges(hub, "race", "never").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

/// Truthful state 2: aborting at many points of a distribution, every
/// site's final report matches what its edge serves: Completed exactly when
/// the edge holds the whole version, Failed exactly when it holds none.
#[tokio::test]
async fn aborts_at_any_point_report_what_the_edges_hold() {
    for store in stores() {
        let grid = grid(store, true).await;
        let hub = &grid.hub;
        // A large file makes each edge's commit (which re-verifies every
        // blob) long enough for aborts to land inside it; after the first
        // round the content is held, so a round is mostly commit.
        let (status, _) = hub.deploy("libs/big/blob.bin", content(48 << 20, 9)).await;
        assert_eq!(status, StatusCode::CREATED);
        let mut seen = std::collections::BTreeSet::new();
        for round in 0..16u64 {
            let version = format!("a{round}");
            create_signed_apart(hub, "abort", &version).await;
            let (status, body) = distribute(hub, "abort", &version, json!([{}]), true).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            let id = body["id"].as_u64().unwrap();
            tokio::time::sleep(Duration::from_millis(round * 25)).await;
            let res = dist(
                hub,
                Method::PUT,
                &format!("distribution/abort/{version}/abort"),
            )
            .send()
            .await
            .unwrap();
            assert!(res.status().is_success(), "{}", res.status());
            // Committing sites end on their own: wait for every site to end.
            let deadline = Instant::now() + Duration::from_secs(60);
            let t = loop {
                let t = hub.tracker("abort", &version, id).await;
                let sites = t["sites"].as_array().unwrap();
                if t.get("finish_time").is_some()
                    && sites
                        .iter()
                        .all(|s| s["status"] == "Completed" || s["status"] == "Failed")
                {
                    break t;
                }
                assert!(Instant::now() < deadline, "tracker {id} never ended: {t}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            for site in t["sites"].as_array().unwrap() {
                let name = site["target_artifactory"]["name"].as_str().unwrap();
                let i = grid.edges.iter().position(|e| e.name == name).unwrap();
                let holds = edge_serves(&grid, i, &version).await;
                let status = site["status"].as_str().unwrap();
                seen.insert(status.to_string());
                assert_eq!(
                    status == "Completed",
                    holds,
                    "{store} {version} after {} ms: {name} reports {status} but {} the version: {site}",
                    round * 25,
                    if holds { "holds" } else { "lacks" }
                );
            }
        }
        assert!(
            seen.contains("Failed"),
            "some aborts landed before the end: {seen:?}"
        );
    }
}

/// Truthful state 4: removing a version from an edge is one transaction: a
/// reader polling the edge during the removal sees all of it or none.
#[tokio::test]
async fn an_edge_drops_a_version_all_at_once() {
    for store in stores() {
        let grid = grid(store, true).await;
        let hub = &grid.hub;
        for i in 0..150 {
            let (status, _) = hub
                .deploy(
                    &format!("libs/many/f{i}.txt"),
                    format!("file {i}").into_bytes(),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let all = grid.files.len() + 150;
        create_signed_apart(hub, "whole", "1").await;
        let (_, body) =
            distribute(hub, "whole", "1", json!([{"site_name": "de-fra-1"}]), true).await;
        let id = body["id"].as_u64().unwrap();
        assert_eq!(wait_for(hub, "whole", "1", id).await["status"], "Completed");
        let edge = &grid.edges[0];
        let count = || async {
            let res = client()
                .post(edge.server.url("/artifactory/api/search/aql"))
                .basic_auth("admin", Some(ADMIN_PW))
                .body(r#"items.find({"repo":"prod","type":"file"})"#)
                .send()
                .await
                .unwrap();
            let v: Value = res.json().await.unwrap();
            v["results"].as_array().unwrap().len()
        };
        assert_eq!(count().await, all);
        let (status, body) = delete_from_all_edges(hub, "whole", "1").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let mut seen = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let n = count().await;
            seen.insert(n);
            assert!(
                n == all || n == 0,
                "{store}: a reader saw {n} of {all} files"
            );
            if n == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "never removed");
        }
    }
}
