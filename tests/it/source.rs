//! The Artifactory-compatible source repository, black-box, on every store
//! compiled in: deploy (streamed, checksummed, by checksum), ranged download,
//! properties, builds and AQL.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN_PW, Hub, Launch, client, content, sha256_hex, stores};

#[tokio::test]
async fn deploy_download_and_metadata_on_every_store() {
    for store in stores() {
        let hub = Hub::start(store);
        hub.create_repo("libs").await;

        // Deploy with matrix properties and all three claimed checksums.
        let data = content(300_000, 1);
        let sums = waybill::digest::Ingest::of(&data);
        let res = hub
            .req(
                reqwest::Method::PUT,
                "libs/org/acme/app-1.0.jar;build.name=app;quality=ga,lts",
            )
            .header("X-Checksum-Sha256", sums.sha256.to_hex())
            .header("X-Checksum-Sha1", sums.sha1.to_hex())
            .header("X-Checksum-Md5", sums.md5.to_hex())
            .body(data.clone())
            .send()
            .await
            .unwrap();
        let (status, info) = hub.json(res).await;
        assert_eq!(status, StatusCode::CREATED, "{store}: {info}");
        assert_eq!(info["repo"], "libs");
        assert_eq!(info["path"], "/org/acme/app-1.0.jar");
        assert_eq!(info["size"], "300000");
        assert_eq!(info["createdBy"], "admin");
        assert_eq!(info["mimeType"], "application/java-archive");
        assert_eq!(info["checksums"]["sha256"], sums.sha256.to_hex());
        assert_eq!(info["checksums"]["sha1"], sums.sha1.to_hex());
        assert_eq!(info["checksums"]["md5"], sums.md5.to_hex());
        assert_eq!(info["originalChecksums"]["sha1"], sums.sha1.to_hex());
        assert!(
            info["downloadUri"]
                .as_str()
                .unwrap()
                .ends_with("/artifactory/libs/org/acme/app-1.0.jar")
        );
        assert!(
            info["uri"]
                .as_str()
                .unwrap()
                .ends_with("/artifactory/api/storage/libs/org/acme/app-1.0.jar")
        );

        // Whole and ranged downloads return the right bytes and headers.
        let res = hub
            .req(reqwest::Method::GET, "libs/org/acme/app-1.0.jar")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()["x-checksum-sha256"],
            sums.sha256.to_hex().as_str()
        );
        assert_eq!(
            res.headers()["x-checksum-sha1"],
            sums.sha1.to_hex().as_str()
        );
        assert_eq!(res.headers()["x-checksum-md5"], sums.md5.to_hex().as_str());
        assert_eq!(res.headers()["content-length"], "300000");
        assert!(res.headers().contains_key("last-modified"));
        assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());
        for (range, from, to) in [
            ("bytes=0-9", 0usize, 10usize),
            ("bytes=299990-", 299_990, 300_000),
            ("bytes=-5", 299_995, 300_000),
            ("bytes=1000-1999", 1000, 2000),
        ] {
            let res = hub
                .req(reqwest::Method::GET, "libs/org/acme/app-1.0.jar")
                .header("Range", range)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(
                res.headers()["content-range"].to_str().unwrap(),
                format!("bytes {from}-{}/300000", to - 1),
                "{range}"
            );
            assert_eq!(
                res.bytes().await.unwrap().as_ref(),
                &data[from..to],
                "{store} {range}"
            );
        }
        let res = hub
            .req(reqwest::Method::GET, "libs/org/acme/app-1.0.jar")
            .header("Range", "bytes=400000-")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        let res = hub
            .req(reqwest::Method::HEAD, "libs/org/acme/app-1.0.jar")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-length"], "300000");
        assert!(res.bytes().await.unwrap().is_empty());

        // A wrong claimed checksum stores nothing.
        let res = hub
            .req(reqwest::Method::PUT, "libs/bad.bin")
            .header("X-Checksum-Md5", "00000000000000000000000000000000")
            .body(b"payload".to_vec())
            .send()
            .await
            .unwrap();
        let (status, body) = hub.json(res).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            crate::support::error_message(&body).contains("md5 mismatch"),
            "{body}"
        );
        let res = hub
            .req(reqwest::Method::GET, "libs/bad.bin")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);

        // Checksum deploy: known content needs no body; unknown content is 404.
        let res = hub
            .req(reqwest::Method::PUT, "libs/copies/app.jar")
            .header("X-Checksum-Deploy", "true")
            .header("X-Checksum-Sha256", sums.sha256.to_hex())
            .send()
            .await
            .unwrap();
        let (status, body) = hub.json(res).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["size"], "300000");
        let copy = hub
            .req(reqwest::Method::GET, "libs/copies/app.jar")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(copy.as_ref(), data.as_slice());
        let res = hub
            .req(reqwest::Method::PUT, "libs/copies/ghost.jar")
            .header("X-Checksum-Deploy", "true")
            .header("X-Checksum-Sha256", sha256_hex(b"never stored"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);

        // Storage info: file, folder children, properties.
        let (status, folder) = hub
            .json(
                hub.req(reqwest::Method::GET, "api/storage/libs/org/acme")
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            folder["children"],
            json!([{"uri": "/app-1.0.jar", "folder": false}])
        );
        let (_, root) = hub
            .json(
                hub.req(reqwest::Method::GET, "api/storage/libs")
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
        let kids: Vec<&str> = root["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["uri"].as_str().unwrap())
            .collect();
        assert_eq!(kids, ["/copies", "/org"]);
        let (_, props) = hub
            .json(
                hub.req(
                    reqwest::Method::GET,
                    "api/storage/libs/org/acme/app-1.0.jar?properties",
                )
                .send()
                .await
                .unwrap(),
            )
            .await;
        assert_eq!(
            props["properties"],
            json!({"build.name": ["app"], "quality": ["ga", "lts"]})
        );

        // Set properties recursively on a folder, then delete one key.
        let res = hub
            .req(
                reqwest::Method::PUT,
                "api/storage/libs/org?properties=stage=qa;owner=team-a,team-b&recursive=1",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let (_, props) = hub
            .json(
                hub.req(
                    reqwest::Method::GET,
                    "api/storage/libs/org/acme/app-1.0.jar?properties=stage,owner",
                )
                .send()
                .await
                .unwrap(),
            )
            .await;
        assert_eq!(
            props["properties"],
            json!({"owner": ["team-a", "team-b"], "stage": ["qa"]})
        );
        let res = hub
            .req(
                reqwest::Method::DELETE,
                "api/storage/libs/org?properties=owner&recursive=1",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let res = hub
            .req(
                reqwest::Method::GET,
                "api/storage/libs/org/acme/app-1.0.jar?properties=owner",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);

        // Deleting a folder removes what is below it.
        let res = hub
            .req(reqwest::Method::DELETE, "libs/copies")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let res = hub
            .req(reqwest::Method::GET, "libs/copies/app.jar")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        // The original still downloads: its blob was shared, not deleted.
        let again = hub
            .req(reqwest::Method::GET, "libs/org/acme/app-1.0.jar")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(again.as_ref(), data.as_slice(), "{store}");
    }
}

#[tokio::test]
async fn large_file_streams_in_and_out() {
    for store in stores() {
        let hub = Hub::start(store);
        hub.create_repo("big").await;
        let data = content(100 << 20, 7);
        let want = sha256_hex(&data);
        let res = hub
            .req(reqwest::Method::PUT, "big/images/disk.img")
            .header("X-Checksum-Sha256", &want)
            .body(data)
            .send()
            .await
            .unwrap();
        let (status, info) = hub.json(res).await;
        assert_eq!(status, StatusCode::CREATED, "{store}: {info}");
        assert_eq!(info["size"], (100u64 << 20).to_string());
        let mut res = hub
            .req(reqwest::Method::GET, "big/images/disk.img")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let mut hasher = waybill::digest::Sha256Hasher::new();
        while let Some(chunk) = res.chunk().await.unwrap() {
            hasher.update(&chunk);
        }
        assert_eq!(hasher.len(), 100 << 20);
        assert_eq!(
            hasher.finish().to_hex(),
            want,
            "{store}: downloaded bytes differ"
        );
    }
}

#[tokio::test]
async fn builds_and_aql_on_every_store() {
    for store in stores() {
        let hub = Hub::start(store);
        for repo in ["libs", "docker"] {
            hub.create_repo(repo).await;
        }
        let files: [(&str, usize); 5] = [
            ("libs/org/acme/app-1.0.jar;build.name=app;quality=ga", 100),
            ("libs/org/acme/app-1.0-sources.jar;build.name=app", 40),
            ("libs/org/acme/lib.tgz;quality=rejected", 7),
            ("docker/img/manifest.json;rank=10", 2),
            ("docker/readme.md;rank=9", 9),
        ];
        for (i, (path, size)) in files.iter().enumerate() {
            let (status, body) = hub.deploy(path, content(*size, i as u32)).await;
            assert_eq!(status, StatusCode::CREATED, "{path}: {body}");
        }

        let names = |v: &Value| -> Vec<String> {
            v["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    format!(
                        "{}/{}",
                        r["repo"].as_str().unwrap_or("?"),
                        r["name"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        };
        let cases: Vec<(&str, Vec<&str>)> = vec![
            // Files only unless the query names a type, as in Artifactory;
            // folders (`docker/img`, `libs/org`, …) are present throughout.
            (
                r#"items.find({"repo":"docker"})"#,
                vec!["docker/manifest.json", "docker/readme.md"],
            ),
            (
                r#"items.find({"repo":"docker","type":"any"})"#,
                vec!["docker/img", "docker/manifest.json", "docker/readme.md"],
            ),
            (
                r#"items.find({"repo":"docker","type":"folder"})"#,
                vec!["docker/img"],
            ),
            (
                r#"items.find({"name":{"$ne":"readme.md"}}).sort({"$asc":["name"]})"#,
                vec![
                    "libs/app-1.0-sources.jar",
                    "libs/app-1.0.jar",
                    "libs/lib.tgz",
                    "docker/manifest.json",
                ],
            ),
            (
                r#"items.find({"size":{"$lt":10}}).sort({"$asc":["size"]})"#,
                vec!["docker/manifest.json", "libs/lib.tgz", "docker/readme.md"],
            ),
            (
                r#"items.find({"name":{"$nmatch":"*.jar"}}).sort({"$desc":["name"]}).limit(2)"#,
                vec!["docker/readme.md", "docker/manifest.json"],
            ),
            (
                r#"items.find({"$or":[{"repo":"docker"},{"name":"lib.tgz"}]}).sort({"$asc":["name"]}).offset(1)"#,
                vec!["docker/manifest.json", "docker/readme.md"],
            ),
            (r#"items.find({"@quality":"ga"})"#, vec!["libs/app-1.0.jar"]),
            (
                r#"items.find({"type":"file","$or":[{"@quality":"rejected"},{"@rank":{"$gt":"9"}}]})"#,
                vec!["docker/manifest.json", "libs/lib.tgz"],
            ),
            (
                r#"items.find({"repo":"libs","name":{"$match":"app-*.jar","$nmatch":"*sources*"}})"#,
                vec!["libs/app-1.0.jar"],
            ),
            (
                r#"items.find({"type":"file","$or":[{"name":"lib.tgz","name":"readme.md"}]})"#,
                vec!["docker/readme.md", "libs/lib.tgz"],
            ),
            (
                r#"items.find({"type":"file"}).sort({"$desc":["size"]}).limit(2)"#,
                vec!["libs/app-1.0.jar", "libs/app-1.0-sources.jar"],
            ),
            (
                r#"items.find({"type":"file"}).sort({"$asc":["size","name"]}).offset(1).limit(2)"#,
                vec!["libs/lib.tgz", "docker/readme.md"],
            ),
            (
                r#"items.find({"path":{"$match":"org/*"},"size":{"$lt":50}})"#,
                vec!["libs/app-1.0-sources.jar", "libs/lib.tgz"],
            ),
            // Relative time, from the server's clock: all deployed just now.
            (
                r#"items.find({"repo":"docker","type":"file","created":{"$last":"1d"}})"#,
                vec!["docker/manifest.json", "docker/readme.md"],
            ),
            (r#"items.find({"modified":{"$before":"1d"}})"#, vec![]),
        ];
        for (query, expected) in cases {
            let (status, body) = hub.aql(query).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            assert_eq!(names(&body), expected, "{store}: {query}");
            let n = expected.len();
            assert_eq!(body["range"]["total"], n, "{query}");
        }
        let (_, paged) = hub
            .aql(r#"items.find({"type":"file"}).sort({"$asc":["name"]}).offset(1).limit(2)"#)
            .await;
        assert_eq!(
            paged["range"],
            json!({"start_pos": 1, "end_pos": 3, "total": 2, "limit": 2})
        );

        // The JFrog CLI's include list, with properties.
        let (_, body) = hub
            .aql(r#"items.find({"repo":"libs","name":"app-1.0.jar"}).include("name","repo","path","actual_md5","actual_sha1","sha256","size","type","modified","created","property")"#)
            .await;
        let r = &body["results"][0];
        let data = content(100, 0);
        let sums = waybill::digest::Ingest::of(&data);
        assert_eq!(r["path"], "org/acme");
        assert_eq!(r["size"], 100);
        assert_eq!(r["type"], "file");
        assert_eq!(r["sha256"], sums.sha256.to_hex());
        assert_eq!(r["actual_sha1"], sums.sha1.to_hex());
        assert_eq!(r["actual_md5"], sums.md5.to_hex());
        assert!(r["created"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            r["properties"],
            json!([{"key": "build.name", "value": "app"}, {"key": "quality", "value": "ga"}])
        );

        // A build record, read back and resolved by AQL to its items.
        let build = json!({
            "version": "1.0.1", "name": "app", "number": "42", "started": "2024-05-01T10:00:00.000+0000",
            "modules": [{"id": "org.acme:app:1.0", "artifacts": [
                {"type": "jar", "name": "app-1.0.jar", "sha256": sums.sha256.to_hex(), "sha1": sums.sha1.to_hex(), "md5": sums.md5.to_hex()}
            ], "dependencies": [
                {"id": "readme.md", "type": "md", "sha1": waybill::digest::Ingest::of(&content(9, 4)).sha1.to_hex()}
            ]}]
        });
        let res = hub
            .req(reqwest::Method::PUT, "api/build")
            .json(&build)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::NO_CONTENT,
            "{}",
            res.text().await.unwrap()
        );
        let (status, got) = hub
            .json(
                hub.req(reqwest::Method::GET, "api/build/app/42")
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            got["buildInfo"]["modules"][0]["artifacts"][0]["sha256"],
            sums.sha256.to_hex()
        );
        let (status, found) = hub
            .aql(r#"builds.find({"name":"app","number":"42"}).include("module.artifact.item")"#)
            .await;
        assert_eq!(status, StatusCode::OK, "{found}");
        let items: Vec<&str> = found["results"][0]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert_eq!(items, ["app-1.0.jar"], "{store}: artifacts only");
        let (_, deps) = hub
            .aql(r#"builds.find({"name":"app","number":"42"}).include("module.dependency.item")"#)
            .await;
        let deps: Vec<&str> = deps["results"][0]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            deps,
            ["readme.md"],
            "{store}: dependencies, found by name and SHA-1"
        );
        let res = hub
            .req(reqwest::Method::GET, "api/build/app/43")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn bad_input_is_a_4xx_that_names_the_problem() {
    let hub = Hub::start("sqlite");
    hub.create_repo("libs").await;
    let malformed = [
        ("items.find({\"repo\":\"libs\",})", "expected a quoted key"),
        (
            "items.find({\"colour\":\"red\"})",
            "unknown item field 'colour'",
        ),
        (
            "items.find({\"name\":{\"$like\":\"a\"}})",
            "unknown operator '$like'",
        ),
        (
            "items.find({\"size\":{\"$gt\":\"big\"}})",
            "not a whole number",
        ),
        (
            "items.find({}).sort({\"$up\":[\"name\"]})",
            "expected $asc or $desc",
        ),
        ("items.find({}).limit(x)", "expected a value"),
        ("items.find(", "expected a value"),
        ("", "expected a domain"),
        ("builds.find({\"name\":\"app\"})", "needs both"),
    ];
    for (query, fragment) in malformed {
        let (status, body) = hub.aql(query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(
            body["errors"][0]["status"], 400,
            "Artifactory's error shape"
        );
        let msg = crate::support::error_message(&body);
        assert!(msg.contains(fragment), "{query}: {msg}");
    }
    // HTTP clients normalise `..` away, so these go over a raw socket, as an attacker would send them.
    let bad_paths = [
        ("/artifactory/libs/a/../b", "'..'"),
        ("/artifactory/libs/a/%2e%2e/b", "'..'"),
        ("/artifactory/libs/..", "'..'"),
        ("/artifactory/libs//etc/passwd", "absolute"),
        ("/artifactory/libs/a%00b", "U+0000"),
        ("/artifactory/libs/a%5Cb", r"must not contain '\\'"),
    ];
    for (path, fragment) in bad_paths {
        let (status, body) = raw_put(&hub.server.base, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(fragment), "{path}: {body}");
    }
    let (status, body) = hub
        .json(
            hub.req(reqwest::Method::GET, "api/storage/libs")
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(
        (status, &body["children"]),
        (StatusCode::OK, &json!([])),
        "nothing was written"
    );
    let (status, body) = hub.deploy("nope/a.txt", b"x".to_vec()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = hub.deploy("bad key!/a.txt", b"x".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        crate::support::error_message(&body).contains("repository key"),
        "{body}"
    );
    // A file where a folder is needed, and the reverse.
    assert_eq!(
        hub.deploy("libs/a/file", b"x".to_vec()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        hub.deploy("libs/a/file/below", b"x".to_vec()).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        hub.deploy("libs/a", b"x".to_vec()).await.0,
        StatusCode::CONFLICT
    );
    let res = hub
        .req(
            reqwest::Method::PUT,
            "api/storage/libs/a/file?properties=novalue",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = hub
        .req(reqwest::Method::PUT, "api/repositories/libs")
        .json(&json!({"rclass": "local"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "duplicate repository"
    );
    let res = hub
        .req(reqwest::Method::PUT, "api/repositories/remote1")
        .json(&json!({"rclass": "remote"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "remote repositories are not supported"
    );
    let res = hub
        .req(reqwest::Method::PUT, "api/build")
        .json(&json!({"name": "a/b", "number": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn system_endpoints_and_auth() {
    let hub = Hub::start("sqlite");
    let ping = hub
        .http
        .get(hub.url("api/system/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), StatusCode::OK);
    assert_eq!(ping.text().await.unwrap(), "OK");
    let anon = hub
        .http
        .get(hub.url("api/system/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    let (status, v) = hub
        .json(
            hub.req(reqwest::Method::GET, "api/system/version")
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let version: Vec<u32> = v["version"]
        .as_str()
        .unwrap()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(version >= vec![7, 136, 0], "{v}");
    assert_eq!(v["addons"], json!([]));
    let anon_deploy = hub
        .http
        .put(hub.url("libs/a.txt"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(anon_deploy.status(), StatusCode::UNAUTHORIZED);
}

/// Sends `PUT <path>` with a one-byte body exactly as written, returning the status and body.
async fn raw_put(base: &str, path: &str) -> (u16, String) {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PW}"));
    let req = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[tokio::test]
async fn blobs_live_exactly_as_long_as_a_file_references_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let server = Launch::new(&data_dir).start();
    let hub = Hub {
        server,
        http: client(),
        _tmp: tempfile::tempdir().unwrap(),
    };
    hub.create_repo("r").await;
    let a = content(5000, 11);
    let b = content(6000, 12);
    let blob_file = |data: &[u8]| {
        let hex = sha256_hex(data);
        data_dir.join("blobs/sha256").join(&hex[..2]).join(hex)
    };
    assert_eq!(hub.deploy("r/p1", a.clone()).await.0, StatusCode::CREATED);
    assert_eq!(hub.deploy("r/p2", a.clone()).await.0, StatusCode::CREATED);
    assert!(blob_file(&a).exists());
    // Overwriting p1 keeps A: p2 still references it.
    assert_eq!(hub.deploy("r/p1", b.clone()).await.0, StatusCode::CREATED);
    assert!(blob_file(&a).exists());
    let got = hub
        .req(reqwest::Method::GET, "r/p2")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.as_ref(), a.as_slice());
    // Overwriting p2 drops the last reference to A.
    assert_eq!(hub.deploy("r/p2", b.clone()).await.0, StatusCode::CREATED);
    assert!(!blob_file(&a).exists(), "unreferenced blob was kept");
    assert!(blob_file(&b).exists());
    // A failed deploy leaves no orphan either.
    let c = content(100, 13);
    assert_eq!(
        hub.deploy("r/p1/below", c.clone()).await.0,
        StatusCode::CONFLICT
    );
    assert!(
        !blob_file(&c).exists(),
        "a refused deploy left its blob behind"
    );
    // Deleting the repository frees everything.
    let res = hub
        .req(reqwest::Method::DELETE, "api/repositories/r")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!blob_file(&b).exists());
}

/// Errors under `/artifactory` have Artifactory's shape and wording, which
/// client libraries (dohq-artifactory's `exists()`, `deploy_file`) match on;
/// `/distribution` keeps its own.
#[tokio::test]
async fn artifactory_errors_have_artifactorys_shape() {
    for store in crate::support::stores() {
        let hub = Hub::start(store);
        hub.create_repo("libs").await;
        let (status, _) = hub.deploy("libs/a.txt", b"a".to_vec()).await;
        assert_eq!(status, StatusCode::CREATED);
        for (path, words) in [
            ("api/storage/libs/missing.txt", "Unable to find item"),
            ("libs/missing.txt", "Unable to find item"),
            (
                "api/storage/libs/a.txt?properties",
                "No properties could be found",
            ),
        ] {
            let res = hub.req(reqwest::Method::GET, path).send().await.unwrap();
            let (status, body) = hub.json(res).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{store} {path}");
            assert_eq!(body["errors"][0]["status"], 404, "{path}: {body}");
            let msg = body["errors"][0]["message"].as_str().unwrap();
            assert!(msg.starts_with(words), "{path}: {msg}");
            assert!(body.get("status_code").is_none(), "{body}");
        }
        let res = crate::support::client()
            .get(hub.url("libs/a.txt"))
            .send()
            .await
            .unwrap();
        let (status, body) = hub.json(res).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["errors"][0]["status"], 401, "{body}");
        let res = hub
            .dist_api(reqwest::Method::GET, "release_bundle/none")
            .send()
            .await
            .unwrap();
        let (status, body) = hub.json(res).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body["status_code"], 404,
            "Distribution keeps its shape: {body}"
        );
    }
}

/// `PATCH /api/metadata` sets and removes properties as dohq-artifactory
/// sends them: a string, an array of strings, or null to remove.
#[tokio::test]
async fn metadata_patch_sets_and_removes_properties() {
    for store in crate::support::stores() {
        let hub = Hub::start(store);
        hub.create_repo("libs").await;
        for f in ["dir/a.txt;a=1;b=2", "dir/sub/b.txt;a=1"] {
            assert_eq!(
                hub.deploy(&format!("libs/{f}"), b"x".to_vec()).await.0,
                StatusCode::CREATED
            );
        }
        let hub = &hub;
        let props = |path: &'static str| async move {
            let res = hub
                .req(
                    reqwest::Method::GET,
                    &format!("api/storage/libs/{path}?properties"),
                )
                .send()
                .await
                .unwrap();
            hub.json(res).await.1["properties"].clone()
        };
        let patch = |path: &str, q: &str, body: Value| {
            hub.req(
                reqwest::Method::PATCH,
                &format!("api/metadata/libs/{path}{q}"),
            )
            .json(&body)
            .send()
        };
        let res = patch(
            "dir/a.txt",
            "",
            json!({"props": {"c": "3", "d": ["x", "y"], "a": null}}),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "{store}");
        assert_eq!(
            props("dir/a.txt").await,
            json!({"b": ["2"], "c": ["3"], "d": ["x", "y"]})
        );
        assert_eq!(
            props("dir/sub/b.txt").await,
            json!({"a": ["1"]}),
            "not recursive by default"
        );
        let res = patch(
            "dir",
            "?recursiveProperties=1",
            json!({"props": {"team": "core"}}),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            props("dir/sub/b.txt").await,
            json!({"a": ["1"], "team": ["core"]})
        );
        for bad in [
            json!({"props": {"k": 5}}),
            json!({"props": {"": "v"}}),
            json!({"nope": {}}),
        ] {
            let res = patch("dir/a.txt", "", bad.clone()).await.unwrap();
            let (status, body) = hub.json(res).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert_eq!(body["errors"][0]["status"], 400);
        }
        let res = patch("missing.txt", "", json!({"props": {"k": "v"}}))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}

/// Build listings as client libraries read them, and build-info bodies with
/// `null` lists, as some build tools write them.
#[tokio::test]
async fn builds_list_and_accept_null_lists() {
    for store in crate::support::stores() {
        let hub = Hub::start(store);
        for (name, number, body) in [
            (
                "app",
                "1",
                json!({"name": "app", "number": "1", "started": "2026-01-01T00:00:00.000+0000", "modules": null}),
            ),
            (
                "app",
                "2",
                json!({"name": "app", "number": "2", "started": "2026-01-02T00:00:00.000+0000",
                                "modules": [{"id": "m", "artifacts": null, "dependencies": null}]}),
            ),
            (
                "web",
                "7",
                json!({"name": "web", "number": "7", "started": "2026-01-03T00:00:00.000+0000"}),
            ),
        ] {
            let res = hub
                .req(reqwest::Method::PUT, "api/build")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                StatusCode::NO_CONTENT,
                "{store} {name}#{number}: {}",
                res.text().await.unwrap()
            );
        }
        let get = |path: &'static str| {
            let hub = &hub;
            async move {
                hub.json(hub.req(reqwest::Method::GET, path).send().await.unwrap())
                    .await
            }
        };
        let (status, all) = get("api/build").await;
        assert_eq!(status, StatusCode::OK, "{all}");
        assert_eq!(
            all["builds"],
            json!([{"uri": "/app", "lastStarted": "2026-01-02T00:00:00.000+0000"},
                   {"uri": "/web", "lastStarted": "2026-01-03T00:00:00.000+0000"}])
        );
        let (status, runs) = get("api/build/app").await;
        assert_eq!(status, StatusCode::OK, "{runs}");
        assert_eq!(
            runs["buildsNumbers"],
            json!([{"uri": "/1", "started": "2026-01-01T00:00:00.000+0000"},
                   {"uri": "/2", "started": "2026-01-02T00:00:00.000+0000"}])
        );
        let (status, one) = get("api/build/app/2").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(one["buildInfo"]["modules"][0]["artifacts"], json!([]));
        let (status, body) = get("api/build/none").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body["errors"][0]["status"], 404,
            "a build, not a repository named api: {body}"
        );
    }
}

/// Storage views: the repository root has its dates, `?list` is
/// Artifactory's File List, and an unknown mode is refused rather than
/// answered with the plain info document.
#[tokio::test]
async fn storage_views_list_and_refuse_unknown_modes() {
    for store in crate::support::stores() {
        let hub = Hub::start(store);
        hub.create_repo("libs").await;
        for f in ["top.txt", "d/a.txt", "d/e/deep.txt"] {
            assert_eq!(
                hub.deploy(&format!("libs/{f}"), f.as_bytes().to_vec())
                    .await
                    .0,
                StatusCode::CREATED
            );
        }
        let get = |path: String| {
            let hub = &hub;
            async move {
                hub.json(hub.req(reqwest::Method::GET, &path).send().await.unwrap())
                    .await
            }
        };
        let (status, root) = get("api/storage/libs".into()).await;
        assert_eq!(status, StatusCode::OK);
        for k in ["created", "lastModified", "lastUpdated"] {
            assert!(
                root[k].as_str().is_some_and(|d| d.ends_with('Z')),
                "{store} {k}: {root}"
            );
        }
        let uris = |v: &Value| -> Vec<String> {
            v["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["uri"].as_str().unwrap().to_string())
                .collect()
        };
        let (_, flat) = get("api/storage/libs?list".into()).await;
        assert_eq!(uris(&flat), ["/top.txt"]);
        let (_, deep) = get("api/storage/libs?list&deep=1".into()).await;
        assert_eq!(uris(&deep), ["/d/a.txt", "/d/e/deep.txt", "/top.txt"]);
        let (_, folders) = get("api/storage/libs/d?list&deep=1&listFolders=1".into()).await;
        assert_eq!(uris(&folders), ["/a.txt", "/e", "/e/deep.txt"]);
        assert_eq!(folders["files"][1]["folder"], true);
        assert_eq!(
            folders["files"][0]["sha2"],
            crate::support::sha256_hex(b"d/a.txt")
        );
        let (_, shallow) = get("api/storage/libs?list&deep=1&depth=2".into()).await;
        assert_eq!(uris(&shallow), ["/d/a.txt", "/top.txt"]);
        for mode in ["bogus", "statistics"] {
            let (status, body) = get(format!("api/storage/libs/top.txt?{mode}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{store} ?{mode}: {body}");
            assert!(
                crate::support::error_message(&body).contains(mode),
                "{body}"
            );
        }
    }
}

/// `?stats`: downloads are counted (not HEADs), with the last one and who
/// made it, and the counts outlive a restart once written behind.
#[tokio::test]
async fn download_statistics_are_counted_and_kept() {
    for store in crate::support::stores() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut launch = crate::support::Launch::new(&data);
        launch.store = store;
        let hub = Hub {
            server: launch.start(),
            http: crate::support::client(),
            _tmp: tempfile::tempdir().unwrap(),
        };
        hub.create_repo("libs").await;
        assert_eq!(
            hub.deploy("libs/a.txt", b"abc".to_vec()).await.0,
            StatusCode::CREATED
        );
        let stats = |hub: &Hub| {
            let req = hub.req(reqwest::Method::GET, "api/storage/libs/a.txt?stats");
            async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
        };
        assert_eq!(stats(&hub).await["downloadCount"], 0);
        for _ in 0..2 {
            let res = hub
                .req(reqwest::Method::GET, "libs/a.txt")
                .send()
                .await
                .unwrap();
            assert_eq!(res.bytes().await.unwrap().as_ref(), b"abc");
        }
        let res = hub
            .req(reqwest::Method::HEAD, "libs/a.txt")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let s = stats(&hub).await;
        assert_eq!(
            s["downloadCount"], 2,
            "{store}: HEAD is not a download: {s}"
        );
        assert_eq!(s["lastDownloadedBy"], "admin");
        assert!(s["lastDownloaded"].as_u64().unwrap() > 0);
        // Written behind within seconds; a restart keeps what was written.
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
        let Hub { server, .. } = hub;
        assert!(server.terminate().success());
        let hub = Hub {
            server: launch.start(),
            http: crate::support::client(),
            _tmp: tempfile::tempdir().unwrap(),
        };
        assert_eq!(stats(&hub).await["downloadCount"], 2, "{store}: kept");
        // A file deleted and deployed again starts afresh.
        let res = hub
            .req(reqwest::Method::DELETE, "libs/a.txt")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            hub.deploy("libs/a.txt", b"new".to_vec()).await.0,
            StatusCode::CREATED
        );
        assert_eq!(stats(&hub).await["downloadCount"], 0);
    }
}
