//! Regressions for what a black-box probe of a running hub found (issue 11):
//! each test replays the attack or the fault, on every store.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{ADMIN_PW, Hub, stores};

/// Creates user `name` (password `<name>-password`) as the admin.
async fn user(hub: &Hub, name: &str) {
    let res = hub
        .dist_api(Method::PUT, &format!("security/users/{name}"))
        .json(&json!({"password": format!("{name}-password")}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}

/// Stores permission `body` as the admin.
async fn permission(hub: &Hub, body: Value) {
    let name = body["name"].as_str().unwrap().to_string();
    let res = hub
        .dist_api(Method::PUT, &format!("security/permissions/{name}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
}

/// A request to `/distribution/api/v1/{path}` as `who`.
fn as_user(hub: &Hub, method: Method, path: &str, who: (&str, &str)) -> reqwest::RequestBuilder {
    hub.http
        .request(
            method,
            hub.server.url(&format!("/distribution/api/v1/{path}")),
        )
        .basic_auth(who.0, Some(who.1))
}

/// An access token for `who` (with their password) and `scope`.
async fn token(hub: &Hub, who: (&str, &str), scope: &str) -> String {
    let res = as_user(hub, Method::POST, "security/token", who)
        .form(&[("username", who.0), ("scope", scope)])
        .send()
        .await
        .unwrap();
    let (status, body) = hub.json(res).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// Security 1: an admin's user-scoped token is refused on admin routes, and
/// must not mint a credential that carries the admin's full rights.
#[tokio::test]
async fn a_scope_reduced_token_cannot_mint_an_api_key() {
    for store in stores() {
        let hub = Hub::start(store);
        let reduced = token(&hub, ("admin", ADMIN_PW), "applied-permissions/user").await;
        let users = hub.server.url("/distribution/api/v1/security/users");
        let res = hub
            .http
            .get(&users)
            .bearer_auth(&reduced)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{store}: scope holds");
        let keys = hub.server.url("/artifactory/api/security/apiKey");
        for method in [Method::POST, Method::PUT, Method::DELETE] {
            let res = hub
                .http
                .request(method.clone(), &keys)
                .bearer_auth(&reduced)
                .send()
                .await
                .unwrap();
            let (status, body) = hub.json(res).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{store} {method}: {body}");
            assert!(
                crate::support::error_message(&body).contains("full rights"),
                "{body}"
            );
        }
        // The same token as Basic `admin:<token>` is the same reduced caller.
        let res = hub
            .http
            .put(&keys)
            .basic_auth("admin", Some(&reduced))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{store}: via Basic");
        // A full-scope token or the password still may; the key then acts as the admin.
        let full = token(&hub, ("admin", ADMIN_PW), "applied-permissions/admin").await;
        let res = hub.http.put(&keys).bearer_auth(&full).send().await.unwrap();
        let (status, body) = hub.json(res).await;
        assert_eq!(status, StatusCode::CREATED, "{store}: {body}");
        let key = body["apiKey"].as_str().unwrap();
        let res = hub
            .http
            .get(&users)
            .header("X-JFrog-Art-Api", key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{store}");
    }
}

/// A hub with a `secret` repository holding one file, an `open` one holding
/// another, and `bundler`, who may write any bundle and read only `open`.
async fn hub_with_secret_repo(store: &str) -> Hub {
    let hub = Hub::start(store);
    for repo in ["secret", "open"] {
        hub.create_repo(repo).await;
    }
    let (status, _) = hub
        .deploy("secret/plans/launch.txt", b"classified".to_vec())
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = hub.deploy("open/app/app.txt", b"public".to_vec()).await;
    assert_eq!(status, StatusCode::CREATED);
    user(&hub, "bundler").await;
    permission(
        &hub,
        json!({"name": "b", "resource_type": "release_bundle",
               "release_bundles": {"include_patterns": ["**"]},
               "principals": {"users": {"bundler": ["r", "w", "d"]}}}),
    )
    .await;
    permission(
        &hub,
        json!({"name": "o", "resource_type": "repository",
               "repositories": {"include_patterns": ["open"]},
               "principals": {"users": {"bundler": ["r"]}}}),
    )
    .await;
    hub
}

async fn create_as(hub: &Hub, who: (&str, &str), body: &Value) -> (StatusCode, Value) {
    let res = as_user(hub, Method::POST, "release_bundle", who)
        .json(body)
        .send()
        .await
        .unwrap();
    hub.json(res).await
}

/// Security 2: bundle specs see only what the caller may read; a file in an
/// unreadable repository refuses the spec, naming the repository only.
#[tokio::test]
async fn bundle_specs_respect_repository_read_permissions() {
    for store in stores() {
        let hub = hub_with_secret_repo(store).await;
        let bundler = ("bundler", "bundler-password");
        for aql in [r#"items.find({"repo":"secret"})"#, "items.find()"] {
            let body = json!({"name": "rb", "version": "1", "dry_run": true,
                              "spec": {"queries": [{"aql": aql}]}});
            let (status, err) = create_as(&hub, bundler, &body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{store} {aql}: {err}");
            let text = err.to_string();
            assert!(text.contains("'secret'"), "names the repository: {text}");
            assert!(
                !text.contains("launch")
                    && !text.contains(&crate::support::sha256_hex(b"classified")),
                "leaks nothing of the file: {text}"
            );
        }
        // Not dry: nothing is stored either.
        let body = json!({"name": "rb", "version": "1",
                          "spec": {"queries": [{"aql": "items.find()"}]}});
        assert_eq!(
            create_as(&hub, bundler, &body).await.0,
            StatusCode::FORBIDDEN
        );
        let res = hub
            .dist_api(Method::GET, "release_bundle/rb/1")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{store}");
        // What the caller may read still gathers.
        let body = json!({"name": "rb", "version": "1", "dry_run": true,
                          "spec": {"queries": [{"aql": r#"items.find({"repo":"open"})"#}]}});
        let (status, v) = create_as(&hub, bundler, &body).await;
        assert_eq!(status, StatusCode::OK, "{store}: {v}");
        assert_eq!(v["artifacts"][0]["source_repo_path"], "open/app/app.txt");
        // Updates gather the same way.
        let body = json!({"name": "rb", "version": "2",
                          "spec": {"queries": [{"aql": r#"items.find({"repo":"open"})"#}]}});
        assert_eq!(create_as(&hub, bundler, &body).await.0, StatusCode::CREATED);
        let res = as_user(&hub, Method::PUT, "release_bundle/rb/2", bundler)
            .json(&json!({"spec": {"queries": [{"aql": r#"items.find({"repo":"secret"})"#}]}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{store}: update");
    }
}

/// Security 3: only release-bundle repositories may store bundles; system
/// and ordinary repositories are refused, and reserved names cannot be taken.
#[tokio::test]
async fn storing_repositories_are_release_bundle_repositories_only() {
    for store in stores() {
        let hub = hub_with_secret_repo(store).await;
        let bundler = ("bundler", "bundler-password");
        // An admin's support bundle lives in `support-bundles`.
        let res = hub
            .dist_api(Method::POST, "system/support/bundle")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{store}: {}", res.status());
        for storing in [
            "support-bundles",
            "artifactory-build-info",
            "open",
            "SUPPORT-BUNDLES",
        ] {
            let body = json!({"name": "rb", "version": "1", "storing_repository": storing,
                              "spec": {"queries": [{"aql": r#"items.find({"repo":"open"})"#}]}});
            let (status, err) = create_as(&hub, bundler, &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{store} {storing}: {err}");
            assert!(
                crate::support::error_message(&err).contains("release-bundles"),
                "{err}"
            );
        }
        // A new name becomes a release-bundles repository, and stays usable.
        let body = json!({"name": "rb", "version": "1", "storing_repository": "team-bundles",
                          "spec": {"queries": [{"aql": r#"items.find({"repo":"open"})"#}]}});
        let (status, v) = create_as(&hub, bundler, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{store}: {v}");
        for reserved in [
            "support-bundles",
            "artifactory-build-info",
            "release-bundles",
        ] {
            let res = hub
                .req(Method::PUT, &format!("api/repositories/{reserved}"))
                .json(&json!({"rclass": "local"}))
                .send()
                .await
                .unwrap();
            let (status, err) = hub.json(res).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{store} {reserved}: {err}");
        }
    }
}

/// GETs `path` under `/distribution/api/v1` with Basic `user:secret`.
async fn basic_status(hub: &Hub, path: &str, user: &str, secret: &str) -> StatusCode {
    as_user(hub, Method::GET, path, (user, secret))
        .send()
        .await
        .unwrap()
        .status()
}

async fn locked_users(hub: &Hub, key: &str) -> Value {
    let res = hub
        .http
        .get(hub.server.url("/artifactory/api/security/lockedUsers"))
        .header("X-JFrog-Art-Api", key)
        .send()
        .await
        .unwrap();
    hub.json(res).await.1
}

/// Security 4: failed logins are bounded in memory and store, a lockout
/// guards only the password (tokens and keys still work), only real users'
/// lockouts are stored, an admin can unlock, and one address is throttled
/// as a whole.
#[tokio::test]
async fn login_lockouts_are_bounded_password_only_and_unlockable() {
    for store in stores() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut launch = crate::support::Launch::new(&data);
        launch.store = store;
        let hub = Hub {
            server: launch.start(),
            http: crate::support::client(),
            _tmp: tempfile::tempdir().unwrap(),
        };
        let full = token(&hub, ("admin", ADMIN_PW), "applied-permissions/admin").await;
        let res = hub
            .http
            .put(hub.server.url("/artifactory/api/security/apiKey"))
            .basic_auth("admin", Some(ADMIN_PW))
            .send()
            .await
            .unwrap();
        let key = hub.json(res).await.1["apiKey"]
            .as_str()
            .unwrap()
            .to_string();

        // Over-long names are refused before any bookkeeping.
        for i in 0..20 {
            let name = format!("{i}{}", "n".repeat(60_000));
            assert_eq!(
                basic_status(&hub, "release_bundle", &name, "x").await,
                StatusCode::UNAUTHORIZED
            );
        }
        // Five bad passwords lock `admin`'s password, and an unknown name.
        for name in ["admin", "ghost"] {
            for _ in 0..5 {
                assert_eq!(
                    basic_status(&hub, "release_bundle", name, "wrong").await,
                    StatusCode::UNAUTHORIZED
                );
            }
        }
        assert_eq!(
            basic_status(&hub, "release_bundle", "admin", ADMIN_PW).await,
            StatusCode::TOO_MANY_REQUESTS,
            "{store}"
        );
        assert_eq!(locked_users(&hub, &key).await, json!(["admin", "ghost"]));
        // The lockout guards the password only.
        let users = "security/users";
        let res = hub
            .http
            .get(hub.server.url(&format!("/distribution/api/v1/{users}")))
            .bearer_auth(&full)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{store}: bearer token");
        assert_eq!(
            basic_status(&hub, users, "admin", &full).await,
            StatusCode::OK
        );
        assert_eq!(
            basic_status(&hub, users, "admin", &key).await,
            StatusCode::OK
        );

        // A restart keeps the real user's lockout, and forgets made-up names.
        let Hub { server, .. } = hub;
        assert!(server.terminate().success());
        let hub = Hub {
            server: launch.start(),
            http: crate::support::client(),
            _tmp: tempfile::tempdir().unwrap(),
        };
        assert_eq!(locked_users(&hub, &key).await, json!(["admin"]), "{store}");
        assert_eq!(
            basic_status(&hub, "release_bundle", "admin", ADMIN_PW).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        // An admin unlocks.
        let res = hub
            .http
            .post(
                hub.server
                    .url("/artifactory/api/security/unlockUsers/admin"),
            )
            .header("X-JFrog-Art-Api", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            basic_status(&hub, "release_bundle", "admin", ADMIN_PW).await,
            StatusCode::OK,
            "{store}: unlocked"
        );
        assert_eq!(locked_users(&hub, &key).await, json!([]));

        // One address guessing across many names is throttled as a whole.
        for i in 0..30 {
            basic_status(&hub, "release_bundle", &format!("u{i}"), "guess").await;
        }
        let res = as_user(&hub, Method::GET, "release_bundle", ("admin", ADMIN_PW))
            .send()
            .await
            .unwrap();
        let (status, body) = hub.json(res).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{store}: {body}");
        assert!(
            crate::support::error_message(&body).contains("address"),
            "{body}"
        );
        assert_eq!(
            basic_status(&hub, users, "admin", &key).await,
            StatusCode::OK
        );
    }
}

/// A hub with small connection limits, so tests see them act quickly.
fn limited_hub(
    env: Vec<(&'static str, &'static str)>,
) -> (crate::support::Server, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut launch = crate::support::Launch::new(&data);
    launch.env.extend(env);
    (launch.start(), tmp)
}

fn connect(server: &crate::support::Server) -> std::net::TcpStream {
    let addr = server.base.trim_start_matches("http://");
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    s
}

/// Whether the server has closed `s` (reads end or fail); waits up to the read timeout.
fn closed_by_server(s: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an error response before closing
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// Security 5: headers trickled line by line, idle connections and stalled
/// bodies are cut after their timeouts; connections past the cap are closed
/// at once; a steady slow upload is not cut.
#[tokio::test]
async fn slow_and_idle_connections_are_cut_and_capped() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let (server, _tmp) = limited_hub(vec![
        ("WAYBILL_HEADER_TIMEOUT_SECS", "2"),
        ("WAYBILL_BODY_IDLE_TIMEOUT_SECS", "2"),
        ("WAYBILL_MAX_CONNECTIONS", "8"),
    ]);
    let res = crate::support::client()
        .put(server.url("/artifactory/api/repositories/slow"))
        .basic_auth("admin", Some(ADMIN_PW))
        .json(&json!({"rclass": "local"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    tokio::task::spawn_blocking(move || {
        // A client trickling header lines is cut at the header timeout.
        let mut s = connect(&server);
        let start = Instant::now();
        s.write_all(b"GET /distribution/api/v1/system/ping HTTP/1.1\r\n").unwrap();
        let mut cut = false;
        for i in 0..40 {
            std::thread::sleep(Duration::from_millis(250));
            if s.write_all(format!("X-Slow-{i}: a\r\n").as_bytes()).is_err() {
                cut = true;
                break;
            }
        }
        assert!(cut || closed_by_server(&mut s), "trickle not cut");
        assert!(start.elapsed() < Duration::from_secs(8), "{:?}", start.elapsed());

        // The cap: 8 idle connections fill it; a ninth is closed at once.
        let mut idle: Vec<_> = (0..8).map(|_| connect(&server)).collect();
        std::thread::sleep(Duration::from_millis(300));
        let mut ninth = connect(&server);
        let start = Instant::now();
        assert!(closed_by_server(&mut ninth));
        assert!(start.elapsed() < Duration::from_secs(1), "closed at once");
        // Idle connections close after the header timeout, and ping answers again.
        for s in &mut idle {
            assert!(closed_by_server(s), "idle connection kept");
        }
        let mut ping = connect(&server);
        ping.write_all(b"GET /distribution/api/v1/system/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut ping, &mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        // A body that stalls gets 408 and stores nothing; a steady slow one is kept.
        let auth = format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("admin:{ADMIN_PW}"))
        );
        let put = |path: &str, len: usize| {
            let mut s = connect(&server);
            s.write_all(
                format!("PUT /artifactory/slow/{path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
            )
            .unwrap();
            s
        };
        let mut stalled = put("stalled.bin", 100);
        stalled.write_all(&[1u8; 10]).unwrap();
        let mut answer = String::new();
        let _ = std::io::Read::read_to_string(&mut stalled, &mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"status\":408"), "Artifactory's error shape: {answer}");
        let mut steady = put("steady.bin", 30);
        for _ in 0..6 {
            std::thread::sleep(Duration::from_millis(700));
            steady.write_all(&[2u8; 5]).unwrap();
        }
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut steady, &mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        let get = |path: &str| {
            let mut s = connect(&server);
            s.write_all(format!("HEAD /artifactory/slow/{path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
            let mut answer = String::new();
            std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
            answer
        };
        assert!(get("stalled.bin").starts_with("HTTP/1.1 404"), "nothing stored");
        assert!(get("steady.bin").starts_with("HTTP/1.1 200"));
    })
    .await
    .unwrap();
}

/// Security 5: a half-sent request does not keep SIGTERM from finishing.
#[tokio::test]
async fn shutdown_has_a_deadline() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let (server, _tmp) = limited_hub(vec![
        ("WAYBILL_BODY_IDLE_TIMEOUT_SECS", "600"),
        ("WAYBILL_SHUTDOWN_GRACE_SECS", "1"),
    ]);
    let mut s = connect(&server);
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("admin:{ADMIN_PW}"),
    );
    s.write_all(format!("POST /artifactory/api/search/aql HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Length: 1000\r\n\r\nitems").as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    assert!(server.terminate().success());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

/// A one-thread HTTP server on 127.0.0.1 answering every request with
/// `respond(request head)`; `None` keeps the connection open, silent.
fn fake_http(respond: fn(&str) -> Option<String>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            match respond(&head) {
                Some(answer) => {
                    let _ = s.write_all(answer.as_bytes());
                }
                None => held.push(s),
            }
        }
    });
    format!("http://{addr}")
}

fn jpd(name: &str, url: &str, token: &str) -> Value {
    json!({"name": name, "url": url, "token": token,
           "location": {"city_name": "Frankfurt", "country_code": "DE"}})
}

/// Security 6: registration is bounded in time, follows no redirect, tells
/// the caller nothing of how another service answered, and an address that
/// answers with a registered edge's id cannot take over its record.
#[tokio::test]
async fn edge_registration_cannot_hang_probe_or_hijack() {
    for store in stores() {
        registration_on(store).await;
    }
}

/// What the fake servers answer with; set per store run.
static TARGET: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
static ID: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

async fn registration_on(store: &str) {
    use std::time::{Duration, Instant};
    let hub = Hub::start(store);
    // Accepts, never answers.
    let silent = fake_http(|_| None);
    let start = Instant::now();
    let (status, body) = hub.json(hub.post_jpd(&jpd("s", &silent, "t")).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );

    // A real edge, and a redirect to it: not followed.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("edge");
    let mut launch = crate::support::Launch::edge(&data, "e1", "Frankfurt", "DE", "edge-token");
    launch.store = store;
    let edge = launch.start();
    let edge_url = edge.base.clone();
    *TARGET.lock().unwrap() = edge_url.clone();
    let redirect = fake_http(|_| {
        let to = TARGET.lock().unwrap().clone();
        Some(format!(
            "HTTP/1.1 302 Found\r\nLocation: {to}/waybill/api/v1/edge/info\r\nContent-Length: 0\r\n\r\n"
        ))
    });
    let (status, body) = hub
        .json(hub.post_jpd(&jpd("r", &redirect, "edge-token")).await)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Internal services' answers are not echoed back.
    let teapot = fake_http(|_| {
        Some("HTTP/1.1 418 I'm a teapot\r\nContent-Length: 13\r\n\r\ninternal-only".into())
    });
    let (status, body) = hub.json(hub.post_jpd(&jpd("t", &teapot, "x")).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let msg = crate::support::error_message(&body);
    for leak in ["418", "teapot", "internal-only"] {
        assert!(!msg.contains(leak), "{msg}");
    }
    let (status, body) = hub
        .json(hub.post_jpd(&jpd("r", &redirect, "edge-token")).await)
        .await;
    assert!(
        !crate::support::error_message(&body).contains("302"),
        "{status} {body}"
    );

    // The real edge registers; an impostor answering with its id gets 409.
    let (status, site) = hub
        .json(hub.post_jpd(&jpd("e1", &edge_url, "edge-token")).await)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{site}");
    let id = site["id"].as_str().unwrap().to_string();
    *ID.lock().unwrap() = id.clone();
    let impostor = fake_http(|_| {
        let body = format!(r#"{{"service_id":"{}"}}"#, ID.lock().unwrap());
        Some(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    });
    let (status, body) = hub
        .json(hub.post_jpd(&jpd("e1", &impostor, "mine-now")).await)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let res = hub
        .http
        .get(hub.server.url(&format!("/mc/api/v1/jpds/{id}")))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    let (_, now) = hub.json(res).await;
    assert_eq!(now["url"], json!(edge_url), "the record is unchanged");
    assert_eq!(now["status"], "ONLINE", "{now}");
    // The edge itself, with its own token, may register again.
    let (status, _) = hub
        .json(hub.post_jpd(&jpd("e1", &edge_url, "edge-token")).await)
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// Security 7: specs are bounded (queries, mappings, added properties and
/// their values), added property keys follow the deploy rules, and listings
/// are summaries that stay small whatever one version holds.
#[tokio::test]
async fn specs_are_bounded_and_listings_stay_light() {
    for store in stores() {
        let hub = hub_with_secret_repo(store).await;
        let admin = ("admin", ADMIN_PW);
        let q = |extra: Value| {
            let mut q = json!({"aql": r#"items.find({"repo":"open"})"#});
            for (k, v) in extra.as_object().unwrap() {
                q[k] = v.clone();
            }
            q
        };
        let many_queries: Vec<Value> = (0..10_000).map(|_| q(json!({}))).collect();
        let props = |n: usize, values: usize| -> Value {
            (0..n)
                .map(|i| json!({"key": format!("k{i}"), "values": vec!["v"; values]}))
                .collect()
        };
        let cases = [
            (json!(many_queries), "queries"),
            (
                json!([q(json!({"added_props": props(5_000, 1)}))]),
                "added_props",
            ),
            (
                json!([q(json!({"added_props": props(1, 1_000)}))]),
                "values",
            ),
            (
                json!([q(
                    json!({"mappings": vec![json!({"input": "a", "output": "b"}); 100]})
                )]),
                "mappings",
            ),
            (
                json!([q(json!({"added_props": [{"key": "", "values": ["x"]}]}))]),
                "key",
            ),
            (
                json!([q(
                    json!({"added_props": [{"key": "a\u{0}b", "values": ["x"]}]})
                )]),
                "control",
            ),
            (
                json!([q(
                    json!({"aql": format!("items.find({{\"repo\":\"{}\"}})", "x".repeat(70_000))})
                )]),
                "AQL",
            ),
        ];
        for (queries, what) in cases {
            let body = json!({"name": "big", "version": "1", "spec": {"queries": queries}});
            let start = std::time::Instant::now();
            let (status, err) = create_as(&hub, admin, &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{store} {what}: {err}");
            assert!(
                crate::support::error_message(&err).contains(what),
                "{what}: {err}"
            );
            assert!(
                start.elapsed() < std::time::Duration::from_secs(2),
                "{what}"
            );
        }
        let res = hub
            .dist_api(Method::GET, "release_bundle/big/1")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "nothing stored");

        // The most a version may add, on both files: listings stay summaries.
        let long = "v".repeat(1_000);
        let added: Vec<Value> = (0..64)
            .map(|i| json!({"key": format!("k{i}"), "values": vec![long.clone(); 8]}))
            .collect();
        let body = json!({"name": "heavy", "version": "1", "spec": {"queries": [
            {"aql": r#"items.find({"repo":"open"})"#, "added_props": added}]}});
        let (status, v) = create_as(&hub, admin, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{store}");
        assert_eq!(v["artifacts"][0]["props"].as_array().unwrap().len(), 64);
        for path in ["release_bundle", "release_bundle/heavy"] {
            let res = hub.dist_api(Method::GET, path).send().await.unwrap();
            let text = res.text().await.unwrap();
            assert!(text.len() < 4_096, "{path}: {} bytes", text.len());
            let listed: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(listed[0]["artifacts_count"], 1, "{listed}");
            assert!(listed[0].get("artifacts").is_none());
        }
    }
}

/// Security 8: every rejection has the wire's JSON error body; one body limit
/// answers 413 everywhere; a method a protected route lacks is 401 before 405.
#[tokio::test]
async fn every_rejection_is_json_with_one_body_limit() {
    for store in stores() {
        rejections_on(store).await;
    }
}

async fn rejections_on(store: &str) {
    let hub = Hub::start(store);
    let url = |p: &str| hub.server.url(p);
    let expect = |status: StatusCode, want: StatusCode, text: &str, what: &str| {
        assert_eq!(status, want, "{what}: {text}");
        let body: Value =
            serde_json::from_str(text).unwrap_or_else(|_| panic!("{what}: not JSON: {text:?}"));
        // Each wire its own shape: Artifactory's under /artifactory.
        if what.starts_with("/artifactory") {
            assert_eq!(body["errors"][0]["status"], want.as_u16(), "{what}: {body}");
        } else {
            assert_eq!(body["status_code"], want.as_u16(), "{what}: {body}");
        }
        assert!(!crate::support::error_message(&body).is_empty(), "{what}");
    };
    let send = |req: reqwest::RequestBuilder| async move {
        let res = req.send().await.unwrap();
        let status = res.status();
        (status, res.text().await.unwrap())
    };
    let admin = |m: Method, p: &str| {
        hub.http
            .request(m, url(p))
            .basic_auth("admin", Some(ADMIN_PW))
    };

    // A path that is not UTF-8.
    let (s, t) = send(admin(
        Method::GET,
        "/distribution/api/v1/release_bundle/%FF%FE/1",
    ))
    .await;
    expect(s, StatusCode::BAD_REQUEST, &t, "bad UTF-8 path");
    // A form endpoint sent JSON.
    let (s, t) = send(
        admin(Method::POST, "/distribution/api/v1/security/token")
            .json(&json!({"username": "admin"})),
    )
    .await;
    assert!(s.is_client_error(), "{s}");
    expect(s, s, &t, "wrong form content type");
    // One limit, one answer, on JSON, AQL and form endpoints alike. The
    // client announces the size and waits (`Expect: 100-continue`), so the
    // answer is read before any body is sent.
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("admin:{ADMIN_PW}"),
    );
    for (method, path, ctype) in [
        (
            "POST",
            "/distribution/api/v1/release_bundle",
            "application/json",
        ),
        (
            "PUT",
            "/distribution/api/v1/security/permissions/p",
            "application/json",
        ),
        ("POST", "/artifactory/api/search/aql", "text/plain"),
        (
            "POST",
            "/distribution/api/v1/security/token",
            "application/x-www-form-urlencoded",
        ),
    ] {
        use std::io::{Read, Write};
        let mut tcp = connect(&hub.server);
        write!(
            tcp,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            3 << 20
        )
        .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let status: u16 = head[9..12].parse().unwrap();
        expect(
            StatusCode::from_u16(status).unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            body,
            path,
        );
    }
    // Methods a protected route lacks: 401 to strangers, 405 to users.
    for method in [Method::OPTIONS, Method::PATCH] {
        let (s, t) = send(
            hub.http
                .request(method.clone(), url("/distribution/api/v1/release_bundle")),
        )
        .await;
        expect(
            s,
            StatusCode::UNAUTHORIZED,
            &t,
            &format!("anonymous {method}"),
        );
        let (s, t) = send(admin(method.clone(), "/distribution/api/v1/release_bundle")).await;
        expect(
            s,
            StatusCode::METHOD_NOT_ALLOWED,
            &t,
            &format!("admin {method}"),
        );
    }
    let (s, t) = send(hub.http.patch(url("/distribution/api/v1/system/ping"))).await;
    expect(s, StatusCode::METHOD_NOT_ALLOWED, &t, "anonymous route");
}

/// Security 9: objects must be objects, deployed paths hold no invisible
/// formatting characters, and `downloadUri` never carries a forged `Host`.
#[tokio::test]
async fn input_validation_refuses_the_dangerous_cases() {
    for store in stores() {
        let hub = Hub::start(store);
        let policy = json!({"blocked_properties": [{"key": "quality", "values": ["rejected"]}], "blocked_checksums": []});
        let res = hub
            .dist_api(Method::PUT, "scan_policy")
            .json(&policy)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        for body in [json!([]), json!("x"), json!(null)] {
            let res = hub
                .dist_api(Method::PUT, "scan_policy")
                .json(&body)
                .send()
                .await
                .unwrap();
            let (status, err) = hub.json(res).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{store} {body}: {err}");
        }
        let res = hub
            .dist_api(Method::GET, "scan_policy")
            .send()
            .await
            .unwrap();
        assert_eq!(
            hub.json(res).await.1,
            policy,
            "{store}: the policy was not reset"
        );

        hub.create_repo("libs").await;
        for name in [
            "evil\u{202E}txt.exe",
            "a\u{2028}b.txt",
            "x\u{2066}y",
            "m\u{200F}.bin",
        ] {
            let (status, err) = hub.deploy(&format!("libs/{name}"), b"x".to_vec()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{store} {name:?}: {err}");
            assert!(crate::support::error_message(&err).contains("U+"), "{err}");
        }
        let res = hub
            .req(Method::PUT, "libs/ok.txt")
            .header("host", "evil.example/phish?")
            .body("x")
            .send()
            .await
            .unwrap();
        let (status, body) = hub.json(res).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let uri = body["downloadUri"].as_str().unwrap();
        assert!(!uri.contains("evil"), "{uri}");
        assert!(uri.ends_with("/artifactory/libs/ok.txt"), "{uri}");
    }
}

/// Truthful state 5: a blob no file references (what a crash between its
/// rename and its item record leaves) is swept, at start and periodically,
/// while deploys running meanwhile lose nothing.
#[tokio::test]
async fn orphaned_blobs_are_swept_and_deploys_lose_nothing() {
    for store in stores() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let plant = |content: &[u8]| {
            let hex = crate::support::sha256_hex(content);
            let dir = data.join("blobs").join("sha256").join(&hex[..2]);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(&hex);
            std::fs::write(&path, content).unwrap();
            path
        };
        // Left by a crash before this start.
        let before = plant(b"orphan from the last run");
        let mut launch = crate::support::Launch::new(&data);
        launch.store = store;
        launch.env.extend([
            // Back to back, so sweeps overlap the deploys.
            ("WAYBILL_SWEEP_INTERVAL_SECS", "0.005"),
            ("WAYBILL_SWEEP_GRACE_SECS", "0"),
        ]);
        let hub = Hub {
            server: launch.start(),
            http: crate::support::client(),
            _tmp: tempfile::tempdir().unwrap(),
        };
        hub.create_repo("libs").await;
        // Left by a crash while running.
        let during = plant(b"orphan of this run");
        // Deploys go on while the sweep runs all the time.
        let mut deployed = Vec::new();
        for round in 0..6 {
            let uploads = (0..20).map(|i| {
                let path = format!("libs/r{round}/f{i}.bin");
                let body = crate::support::content(20_000 + i, (round * 100 + i) as u32);
                let hub = &hub;
                async move {
                    let (status, _) = hub.deploy(&path, body.clone()).await;
                    assert_eq!(status, StatusCode::CREATED);
                    (path, body)
                }
            });
            deployed.extend(futures_util::future::join_all(uploads).await);
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while before.exists() || during.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{store}: orphans never swept"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        for (path, body) in &deployed {
            let res = hub.req(Method::GET, path).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{store} {path}");
            assert!(res.bytes().await.unwrap() == body[..], "{store} {path}");
        }
        assert!(hub.server.log().contains("orphan sweep removed"), "{store}");
    }
}
