//! Release bundles v1, black-box, on every store: the whole lifecycle with
//! the JFrog CLI's exact bodies (wire contract §2.3), signatures checked by
//! independent code (ring for the JWS, rPGP for the OpenPGP signature), and
//! the refusals a user can hit.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::{KeyDetails, PublicParams};
use reqwest::{Method, StatusCode};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use crate::support::{Hub, key_fixture, stores};

const PW: &str = "correct horse battery staple";

fn dist(hub: &Hub, method: Method, path: &str) -> reqwest::RequestBuilder {
    hub.http
        .request(method, hub.server.url(&format!("/distribution/{path}")))
        .basic_auth("admin", Some(crate::support::ADMIN_PW))
}

/// What `jf ds rbc` sends (wire contract §2.3): `dry_run` and
/// `sign_immediately` always present, the CLI's AQL with its include list.
fn cli_create_body(name: &str, version: &str, dry_run: bool, sign: bool) -> Value {
    json!({
        "name": name, "version": version, "dry_run": dry_run, "sign_immediately": sign,
        "description": "first cut",
        "release_notes": {"syntax": "markdown", "content": "# Notes"},
        "spec": {"queries": [{
            // What the CLI builds for the file-spec pattern `libs/org/app/*`.
            "aql": "items.find({\"$or\":[{\"$and\":[{\"repo\":\"libs\",\"path\":{\"$match\":\"org/app\"},\"name\":{\"$match\":\"*\"}}]},{\"$and\":[{\"repo\":\"libs\",\"path\":{\"$match\":\"org/app/*\"},\"name\":{\"$match\":\"*\"}}]}]}).include(\"name\",\"repo\",\"path\",\"actual_md5\",\"actual_sha1\",\"sha256\",\"size\",\"type\",\"modified\",\"created\")",
            "mappings": [{"input": "^libs/org/app/(.*)$", "output": "prod/app/$1"}],
            "added_props": [{"key": "stage", "values": ["ga"]}]
        }]}
    })
}

/// Verifies a compact JWS with ring alone, from the public key's RSA parameters.
fn ring_verifies(public: &str, compact: &str) -> bool {
    let (key, _) = SignedPublicKey::from_string(public).unwrap();
    let PublicParams::RSA(rsa) = key.primary_key.public_params() else {
        panic!("RSA expected")
    };
    let (n, e) = (rsa.key.n().to_bytes_be(), rsa.key.e().to_bytes_be());
    let parts: Vec<&str> = compact.split('.').collect();
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &sig,
        )
        .is_ok()
}

fn pgp_verifies(public: &str, data: &[u8], armored_sig: &str) -> bool {
    let (key, _) = SignedPublicKey::from_string(public).unwrap();
    let (sig, _) =
        DetachedSignature::from_armor_single(std::io::Cursor::new(armored_sig.as_bytes())).unwrap();
    sig.verify(&key, data).is_ok()
}

async fn setup(store: &str) -> Hub {
    let hub = Hub::start(store);
    // D8: the CLI's double-slash path with the flat body.
    let res = dist(&hub, Method::PUT, "/api/v1/keys/pgp")
        .json(&json!({"public_key": key_fixture("rsa3072-protected.pub.asc"), "private_key": key_fixture("rsa3072-protected.sec.asc")}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    hub.create_repo("libs").await;
    for (path, body) in [
        ("libs/org/app/app.jar;q=ga", "jar"),
        ("libs/org/app/docs/readme.md", "doc"),
        ("libs/org/other/x.bin", "x"),
    ] {
        assert_eq!(
            hub.deploy(path, body.as_bytes().to_vec()).await.0,
            StatusCode::CREATED
        );
    }
    hub
}

#[tokio::test]
async fn v1_lifecycle_on_every_store() {
    for store in stores() {
        let hub = setup(store).await;

        // The key is held; the private half never comes back.
        let (status, key) = hub
            .json(
                dist(&hub, Method::GET, "api/v1/keys/gpg")
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(key["private_key"], "****");
        assert!(
            key["public_key"]
                .as_str()
                .unwrap()
                .contains("BEGIN PGP PUBLIC KEY BLOCK")
        );

        // Dry run: 200, the would-be bundle, nothing stored.
        let res = dist(&hub, Method::POST, "api/v1/release_bundle")
            .json(&cli_create_body("app", "1.0", true, false))
            .send()
            .await
            .unwrap();
        let (status, dry) = hub.json(res).await;
        assert_eq!(status, StatusCode::OK, "{dry}");
        assert_eq!(dry["artifacts"].as_array().unwrap().len(), 2);
        let res = dist(&hub, Method::GET, "api/v1/release_bundle/app/1.0")
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "dry run stored nothing"
        );

        // Create: 201, mapped paths, merged properties, default query name.
        let res = dist(&hub, Method::POST, "api/v1/release_bundle")
            .json(&cli_create_body("app", "1.0", false, false))
            .send()
            .await
            .unwrap();
        assert!(
            res.headers().get("x-checksum-sha256").is_none(),
            "not signed yet"
        );
        let (status, created) = hub.json(res).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["state"], "OPEN");
        assert_eq!(
            created["release_notes"],
            json!({"syntax": "markdown", "content": "# Notes"})
        );
        assert_eq!(created["spec"]["queries"][0]["query_name"], "query-0");
        let arts = created["artifacts"].as_array().unwrap();
        let targets: Vec<&str> = arts
            .iter()
            .map(|a| a["target_repo_path"].as_str().unwrap())
            .collect();
        assert_eq!(targets, ["prod/app/app.jar", "prod/app/docs/readme.md"]);
        assert_eq!(arts[0]["source_repo_path"], "libs/org/app/app.jar");
        assert_eq!(
            arts[0]["props"],
            json!([{"key": "q", "values": ["ga"]}, {"key": "stage", "values": ["ga"]}])
        );
        assert_eq!(arts[0]["checksum"], crate::support::sha256_hex(b"jar"));

        // The same name and version again: 409.
        let res = dist(&hub, Method::POST, "api/v1/release_bundle")
            .json(&cli_create_body("app", "1.0", false, false))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CONFLICT);

        // D2 update: the same object without name/version, while OPEN.
        let mut update = cli_create_body("x", "x", false, false);
        let obj = update.as_object_mut().unwrap();
        obj.remove("name");
        obj.remove("version");
        obj.insert("description".into(), json!("second cut"));
        obj["spec"]["queries"][0]["aql"] =
            json!("items.find({\"repo\":\"libs\",\"name\":\"app.jar\"})");
        let (status, updated) = hub
            .json(
                dist(&hub, Method::PUT, "api/v1/release_bundle/app/1.0")
                    .json(&update)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        assert_eq!(updated["description"], "second cut");
        assert_eq!(updated["artifacts"].as_array().unwrap().len(), 1);

        // D3 sign: a wrong passphrase is a 400 that says so; the right one signs.
        let res = dist(&hub, Method::POST, "api/v1/release_bundle/app/1.0/sign")
            .header("X-Gpg-Passphrase", "nope")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let (status, body) = hub.json(res).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            crate::support::error_message(&body).contains("passphrase"),
            "{body}"
        );
        let res = dist(&hub, Method::POST, "api/v1/release_bundle/app/1.0/sign")
            .header("X-Gpg-Passphrase", PW)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let checksum = res
            .headers()
            .get("x-checksum-sha256")
            .map(|v| v.to_str().unwrap().to_string());
        let (status, signed) = hub.json(res).await;
        assert_eq!(status, StatusCode::OK, "{signed}");
        assert_eq!(signed["state"], "SIGNED");
        let checksum = checksum.expect("X-Checksum-Sha256 on sign");

        // Signed is final: sign again and update are 400.
        let res = dist(&hub, Method::POST, "api/v1/release_bundle/app/1.0/sign")
            .header("X-Gpg-Passphrase", PW)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let res = dist(&hub, Method::PUT, "api/v1/release_bundle/app/1.0")
            .json(&update)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);

        // All three formats; the JWS verifies with ring, the payload hashes to the header checksum.
        let (_, as_json) = hub
            .json(
                dist(
                    &hub,
                    Method::GET,
                    "api/v1/release_bundle/app/1.0?format=json",
                )
                .send()
                .await
                .unwrap(),
            )
            .await;
        assert_eq!(as_json["state"], "SIGNED");
        let jws: Value = dist(
            &hub,
            Method::GET,
            "api/v1/release_bundle/app/1.0?format=jws",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let jose = dist(
            &hub,
            Method::GET,
            "api/v1/release_bundle/app/1.0?format=jose",
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        assert_eq!(
            jose,
            format!(
                "{}.{}.{}",
                jws["header"].as_str().unwrap(),
                jws["payload"].as_str().unwrap(),
                jws["signature"].as_str().unwrap()
            )
        );
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jws["header"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"].as_str().unwrap().len(), 16);
        let payload = URL_SAFE_NO_PAD
            .decode(jws["payload"].as_str().unwrap())
            .unwrap();
        assert_eq!(crate::support::sha256_hex(&payload), checksum);
        let public = key_fixture("rsa3072-protected.pub.asc");
        assert!(
            ring_verifies(&public, &jose),
            "{store}: JWS does not verify"
        );

        // The OpenPGP signature sits beside the payload in the storing repository.
        let stored_payload = hub
            .req(Method::GET, "release-bundles/app/1.0/release-bundle.json")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(
            stored_payload.as_ref(),
            payload.as_slice(),
            "stored bytes are the signed bytes"
        );
        let asc = hub
            .req(
                Method::GET,
                "release-bundles/app/1.0/release-bundle.json.asc",
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            pgp_verifies(&public, &payload, &asc),
            "{store}: OpenPGP signature does not verify"
        );
        // One byte altered: both fail.
        let mut tampered = payload.clone();
        tampered[20] ^= 1;
        let parts: Vec<&str> = jose.split('.').collect();
        assert!(!ring_verifies(
            &public,
            &format!(
                "{}.{}.{}",
                parts[0],
                URL_SAFE_NO_PAD.encode(&tampered),
                parts[2]
            )
        ));
        assert!(!pgp_verifies(&public, &tampered, &asc));

        // Artifacts are referenced into the storing repository, which refuses deploys.
        let res = hub
            .req(Method::GET, "release-bundles/app/1.0/prod/app/app.jar")
            .send()
            .await
            .unwrap();
        assert_eq!(res.bytes().await.unwrap().as_ref(), b"jar");
        assert_eq!(
            hub.deploy("release-bundles/app/1.0/evil.txt", b"x".to_vec())
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        // Deleting the source file does not break the signed bundle.
        assert_eq!(
            hub.req(Method::DELETE, "libs/org/app/app.jar")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NO_CONTENT
        );
        let res = hub
            .req(Method::GET, "release-bundles/app/1.0/prod/app/app.jar")
            .send()
            .await
            .unwrap();
        assert_eq!(res.bytes().await.unwrap().as_ref(), b"jar");

        // sign_immediately with the passphrase: created SIGNED, with the checksum header.
        let res = dist(&hub, Method::POST, "api/v1/release_bundle")
            .header("X-Gpg-Passphrase", PW)
            .json(&cli_create_body("app", "2.0", false, true))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        assert!(res.headers().contains_key("x-checksum-sha256"));

        // LATEST is the version created last.
        let (_, latest) = hub
            .json(
                dist(&hub, Method::GET, "api/v1/release_bundle/app/LATEST")
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
        assert_eq!(latest["version"], "2.0");

        // Paging: 12 versions of another bundle, 10 per page, newest first.
        for i in 0..12 {
            let res = dist(&hub, Method::POST, "api/v1/release_bundle")
                .json(&cli_create_body("many", &format!("v{i}"), false, false))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
        }
        let res = dist(&hub, Method::GET, "api/v1/release_bundle/many")
            .send()
            .await
            .unwrap();
        let h = |res: &reqwest::Response, k: &str| res.headers()[k].to_str().unwrap().to_string();
        assert_eq!(
            (
                h(&res, "x-rangelimit-startpos"),
                h(&res, "x-rangelimit-endpos"),
                h(&res, "x-rangelimit-total")
            ),
            ("0".into(), "10".into(), "12".into())
        );
        let page: Vec<Value> = res.json().await.unwrap();
        assert_eq!(page.len(), 10);
        assert_eq!(page[0]["version"], "v11");
        let res = dist(&hub, Method::GET, "api/v1/release_bundle/many?start_pos=10")
            .send()
            .await
            .unwrap();
        assert_eq!(h(&res, "x-rangelimit-endpos"), "12");
        let page: Vec<Value> = res.json().await.unwrap();
        let versions: Vec<&str> = page
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["v1", "v0"]);
        let res = dist(&hub, Method::GET, "api/v1/release_bundle")
            .send()
            .await
            .unwrap();
        assert_eq!(h(&res, "x-rangelimit-total"), "14");
        assert_eq!(
            dist(&hub, Method::GET, "api/v1/release_bundle/nope")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );

        // D7 deletes: 204, then 404; a bundle delete removes every version.
        assert_eq!(
            dist(&hub, Method::DELETE, "api/v1/release_bundle/app/1.0")
                .header("content-type", "application/json")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            dist(&hub, Method::DELETE, "api/v1/release_bundle/app/1.0")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
        let res = hub
            .req(Method::GET, "release-bundles/app/1.0/prod/app/app.jar")
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "references went with the version"
        );
        assert_eq!(
            dist(&hub, Method::DELETE, "api/v1/release_bundle/many")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            dist(&hub, Method::GET, "api/v1/release_bundle/many")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            dist(&hub, Method::DELETE, "api/v1/release_bundle/many")
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn creation_refusals_name_the_problem() {
    let hub = setup("sqlite").await;
    let create = |body: Value| {
        dist(&hub, Method::POST, "api/v1/release_bundle")
            .json(&body)
            .send()
    };
    let with_query = |q: Value| json!({"name": "bad", "version": "1", "dry_run": false, "sign_immediately": false, "spec": {"queries": [q]}});
    let cases = [
        (
            with_query(json!({"aql": "items.find({\"repo\":\"libs\",})"})),
            "expected a quoted key",
        ),
        (
            with_query(
                json!({"aql": "items.find({\"repo\":\"libs\"})", "mappings": [{"input": "^libs/(.*)$", "output": "/etc/$1"}]}),
            ),
            "absolute path",
        ),
        (
            with_query(
                json!({"aql": "items.find({\"repo\":\"libs\"})", "mappings": [{"input": "^libs/(.*)$", "output": "prod/../$1"}]}),
            ),
            "'..'",
        ),
        (
            with_query(
                json!({"aql": "items.find({\"repo\":\"libs\"})", "mappings": [{"input": "^.*$", "output": ""}]}),
            ),
            "empty path",
        ),
        (
            with_query(
                json!({"aql": "items.find({\"repo\":\"libs\"})", "mappings": [{"input": "^.*$", "output": "prod/one"}]}),
            ),
            "both map to 'prod/one'",
        ),
        (
            with_query(
                json!({"aql": "items.find({\"repo\":\"libs\"})", "mappings": [{"input": "(", "output": "x"}]}),
            ),
            "is not a regex",
        ),
        (
            with_query(
                json!({"aql": "items.find({\"repo\":\"libs\"})", "query_name": "mine", "mappings": [{"input": "^libs/.*/(.*)$", "output": "$1"}]}),
            ),
            "query 'mine': artifact 'libs/",
        ),
        (
            json!({"name": "a/b", "version": "1", "spec": {"queries": [{"aql": "items.find()"}]}}),
            "invalid name",
        ),
        (
            json!({"name": "a", "version": "LATEST", "spec": {"queries": [{"aql": "items.find()"}]}}),
            "reserved",
        ),
        (
            json!({"name": "a", "version": "1", "spec": {"queries": null}}),
            "at least one query",
        ),
        (
            json!({"name": "a", "version": "1", "release_notes": {"syntax": "html", "content": "x"}, "spec": {"queries": [{"aql": "items.find()"}]}}),
            "release_notes.syntax",
        ),
    ];
    for (body, fragment) in cases {
        let (status, res) = hub.json(create(body.clone()).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {res}");
        let msg = crate::support::error_message(&res);
        assert!(msg.contains(fragment), "{body}: {msg}");
    }
    let res = dist(&hub, Method::GET, "api/v1/release_bundle")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["x-rangelimit-total"],
        "0",
        "nothing was half-written"
    );
    // Signing with no passphrase for a protected key.
    let ok = with_query(json!({"aql": "items.find({\"repo\":\"libs\",\"name\":\"app.jar\"})"}));
    assert_eq!(create(ok).await.unwrap().status(), StatusCode::CREATED);
    let (status, body) = hub
        .json(
            dist(&hub, Method::POST, "api/v1/release_bundle/bad/1/sign")
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        crate::support::error_message(&body).contains("X-GPG-PASSPHRASE"),
        "{body}"
    );
    let res = dist(&hub, Method::GET, "api/v1/release_bundle/bad/1?format=jws")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "unsigned versions have no JWS"
    );
}

#[tokio::test]
async fn fifty_racing_creates_give_one_201() {
    let hub = setup("sqlite").await;
    let body = json!({"name": "race", "version": "1", "dry_run": false, "sign_immediately": false,
        "spec": {"queries": [{"aql": "items.find({\"repo\":\"libs\"})"}]}});
    let mut tasks = Vec::new();
    for _ in 0..50 {
        tasks.push(
            dist(&hub, Method::POST, "api/v1/release_bundle")
                .json(&body)
                .send(),
        );
    }
    let results = futures_util::future::join_all(tasks).await;
    let mut codes: Vec<u16> = results
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    codes.sort();
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 49, "{codes:?}");
}

#[tokio::test]
async fn keys_upload_forms_and_refusals() {
    let hub = Hub::start("sqlite");
    let res = dist(&hub, Method::GET, "api/v1/keys/gpg")
        .send()
        .await
        .unwrap();
    let (status, body) = hub.json(res).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            StatusCode::NOT_FOUND,
            Some("No public GPG key exists in Distribution")
        )
    );
    let nested = |public: &str, private: &str, propagate: bool| json!({"key": {"public_key": key_fixture(public), "private_key": key_fixture(private)}, "propagate_to_edge_nodes": propagate, "fail_on_propagation_failure": false});
    let (status, body) = hub
        .json(
            dist(&hub, Method::POST, "api/v1/keys/pgp")
                .json(&nested(
                    "rsa2048-plain.pub.asc",
                    "rsa2048-plain.sec.asc",
                    false,
                ))
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["report"]["status"], "PROPAGATION_NOT_REQUESTED");
    let (status, body) = hub
        .json(
            dist(&hub, Method::POST, "api/v1/keys/gpg")
                .json(&nested(
                    "rsa1024-weak.pub.asc",
                    "rsa1024-weak.sec.asc",
                    false,
                ))
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        crate::support::error_message(&body).contains("at least 2048 bits"),
        "{body}"
    );
    let (status, body) = hub
        .json(
            dist(&hub, Method::POST, "api/v1/keys/pgp")
                .json(&nested(
                    "rsa2048-plain.pub.asc",
                    "rsa3072-protected.sec.asc",
                    false,
                ))
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        crate::support::error_message(&body).contains("do not belong together"),
        "{body}"
    );
    // The deprecated flat PUT on the single-slash path works too.
    let res = dist(&hub, Method::PUT, "api/v1/keys/gpg")
        .json(&json!({"public_key": key_fixture("ed25519-protected.pub.asc"), "private_key": key_fixture("ed25519-protected.sec.asc")}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (_, key) = hub
        .json(
            dist(&hub, Method::GET, "api/v1/keys/pgp")
                .send()
                .await
                .unwrap(),
        )
        .await;
    assert!(
        key["public_key"].as_str().unwrap().contains(
            key_fixture("ed25519-protected.pub.asc")
                .lines()
                .nth(2)
                .unwrap()
        )
    );
    // Keys are admin only, and secrets never reach the log.
    let anon = hub
        .http
        .post(hub.server.url("/distribution/api/v1/keys/pgp"))
        .json(&nested(
            "rsa2048-plain.pub.asc",
            "rsa2048-plain.sec.asc",
            false,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    let private_line = key_fixture("rsa2048-plain.sec.asc")
        .lines()
        .nth(3)
        .unwrap()
        .to_string();
    assert!(
        !hub.server.log().contains(&private_line),
        "private key material in the log"
    );
}

#[tokio::test]
async fn scan_hook_blocks_by_property_and_checksum() {
    let hub = setup("sqlite").await;
    assert_eq!(
        hub.deploy("libs/org/app/bad.bin;quality=rejected", b"bad".to_vec())
            .await
            .0,
        StatusCode::CREATED
    );
    let body = json!({"name": "scan", "version": "1", "dry_run": false, "sign_immediately": false,
        "spec": {"queries": [{"aql": "items.find({\"repo\":\"libs\",\"path\":\"org/app\"})"}]}});
    assert_eq!(
        dist(&hub, Method::POST, "api/v1/release_bundle")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    let policy = json!({"blocked_properties": [{"key": "quality", "values": ["rejected"]}], "blocked_checksums": [crate::support::sha256_hex(b"jar")]});
    assert_eq!(
        dist(&hub, Method::PUT, "api/v1/scan_policy")
            .json(&policy)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let (status, scanned) = hub
        .json(
            dist(
                &hub,
                Method::POST,
                "api/v1/release_bundle/scan/1/trigger_xray_scan",
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{scanned}");
    let verdicts: Vec<(String, Value)> = scanned["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["source_repo_path"].as_str().unwrap().to_string(),
                a["xray_scan_info"].clone(),
            )
        })
        .collect();
    let find = |p: &str| {
        verdicts
            .iter()
            .find(|(s, _)| s.ends_with(p))
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(find("bad.bin")["blocked"], true);
    assert!(
        find("bad.bin")["blocked_reason"]
            .as_str()
            .unwrap()
            .contains("quality=rejected")
    );
    assert_eq!(find("app.jar")["blocked"], true);
    assert!(
        find("app.jar")["blocked_reason"]
            .as_str()
            .unwrap()
            .contains("deny-list")
    );
    assert_eq!(find("app.jar")["blocked"], find("app.jar")["blocked"]);
    let bad_policy = json!({"blocked_checksums": ["not-hex"]});
    assert_eq!(
        dist(&hub, Method::PUT, "api/v1/scan_policy")
            .json(&bad_policy)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
}
