//! Release-bundle metadata migration (seed 003, "Import & Export") between
//! separate hub processes: export, import, byte-identical signed bodies,
//! idempotence, and tampered archives that write nothing.

use std::io::{Read, Write};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::Hub;

async fn create(hub: &Hub, name: &str, version: &str, sign: bool) {
    hub.create_bundle(
        &json!({"name": name, "version": version, "sign_immediately": sign,
        "description": format!("{name} {version}"),
        "spec": {"queries": [{"aql": "items.find({\"repo\":\"libs\"})"}]}}),
    )
    .await;
}

async fn sources(hub: &Hub) -> Value {
    let res = hub
        .dist_api(
            Method::POST,
            "system/migration/import_export/source_artifactories",
        )
        .send()
        .await
        .unwrap();
    let (status, body) = hub.json(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn export(hub: &Hub, source: &str) -> (StatusCode, Vec<u8>) {
    let res = hub
        .dist_api(Method::POST, &format!("system/migration/export/{source}"))
        .send()
        .await
        .unwrap();
    let status = res.status();
    if status == StatusCode::OK {
        assert_eq!(res.headers()["content-type"], "application/zip");
    }
    (status, res.bytes().await.unwrap().to_vec())
}

/// `curl -F file=@export.zip`, by hand.
async fn import(hub: &Hub, zip: &[u8]) -> (StatusCode, Value) {
    let boundary = "waybill-test-boundary-7d3f";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"export.zip\"\r\n\
         Content-Type: application/zip\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(zip);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let res = hub
        .dist_api(Method::POST, "system/migration/import")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    hub.json(res).await
}

async fn read(hub: &Hub, path: &str) -> (StatusCode, Vec<u8>) {
    let res = hub
        .dist_api(Method::GET, &format!("release_bundle/{path}"))
        .send()
        .await
        .unwrap();
    (res.status(), res.bytes().await.unwrap().to_vec())
}

/// The entries of a zip, in order.
fn unzip(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(data)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut out = Vec::new();
            f.read_to_end(&mut out).unwrap();
            (f.name().unwrap().to_string(), out)
        })
        .collect()
}

fn rezip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in entries {
        w.start_file(name.as_str(), opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A copy of `archive` with `edit` applied to the JSON of entry `name`.
fn tampered(archive: &[u8], name: &str, edit: impl Fn(&mut Value)) -> Vec<u8> {
    let mut entries = unzip(archive);
    let entry = entries.iter_mut().find(|(n, _)| n == name).unwrap();
    let mut v: Value = serde_json::from_slice(&entry.1).unwrap();
    edit(&mut v);
    entry.1 = serde_json::to_vec(&v).unwrap();
    rezip(&entries)
}

async fn version_count(hub: &Hub) -> usize {
    let res = hub
        .dist_api(Method::GET, "release_bundle")
        .send()
        .await
        .unwrap();
    let (status, body) = hub.json(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().len()
}

#[tokio::test]
async fn bundles_move_between_hubs_with_the_same_signed_bytes() {
    let origin = Hub::start("sqlite");
    origin.upload_key().await;
    origin.create_repo("libs").await;
    origin.deploy("libs/a.bin", b"alpha".to_vec()).await;
    origin.deploy("libs/b.bin", b"beta".to_vec()).await;
    create(&origin, "app", "1", true).await;
    create(&origin, "app", "2", true).await;
    create(&origin, "tool", "0.1", false).await;

    let listed = sources(&origin).await;
    let list = listed.as_array().unwrap();
    assert_eq!(list.len(), 1, "{listed}");
    assert_eq!(list[0]["local"], true);
    assert_eq!(list[0]["versions"], 3);
    assert_eq!(list[0]["release_bundles"], 2);
    let source = list[0]["source_id"].as_str().unwrap().to_string();
    assert!(source.starts_with("jfrt@"), "{source}");

    let (status, body) = export(&origin, "DEV_Art01").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body:?}");
    let (status, archive) = export(&origin, &source).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<String> = unzip(&archive).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"manifest.json".to_string()), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("keys/")), "{names:?}");
    let text = String::from_utf8_lossy(&archive).to_string();
    assert!(
        !text.contains("PRIVATE KEY"),
        "private keys never leave the hub"
    );

    for store in crate::support::stores() {
        let target = Hub::start(store);
        // Tampered archives are refused, and write nothing.
        let described = tampered(&archive, "versions/000001.json", |v| {
            v["description"] = json!("not what was signed")
        });
        let jws = tampered(&archive, "versions/000002.json", |v| {
            let sig = v["signature"]["jws_signature"].as_str().unwrap();
            let flipped = if sig.starts_with('A') { "B" } else { "A" };
            v["signature"]["jws_signature"] = json!(format!("{flipped}{}", &sig[1..]));
        });
        let unsigned_but_signed_state = tampered(&archive, "versions/000003.json", |v| {
            v["state"] = json!("Signed")
        });
        let mut wrong_key = unzip(&archive);
        let key = wrong_key
            .iter_mut()
            .find(|(n, _)| n.starts_with("keys/"))
            .unwrap();
        key.1 = crate::support::key_fixture("rsa2048-plain.pub.asc").into_bytes();
        let wrong_key = rezip(&wrong_key);
        // Outside the signed bytes, but checked as a create would check them.
        let system_storing = tampered(&archive, "versions/000001.json", |v| {
            v["storing_repository"] = json!("support-bundles")
        });
        let escaping_target = tampered(&archive, "versions/000003.json", |v| {
            v["artifacts"][0]["target_repo_path"] = json!("../escape.bin")
        });
        for (what, bad) in [
            ("a system storing repository", system_storing),
            ("a target outside any repository", escaping_target),
            ("content changed", described),
            ("JWS signature changed", jws),
            ("state without signature", unsigned_but_signed_state),
            ("another key", wrong_key),
            ("not a zip", b"PK not really".to_vec()),
        ] {
            let (status, body) = import(&target, &bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{store}: {what}: {body}");
            assert!(body["message"].as_str().is_some(), "{body}");
            assert_eq!(version_count(&target).await, 0, "{store}: {what}");
        }
        let (status, body) = import(&target, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

        // The real archive: every version, exactly.
        let (status, body) = import(&target, &archive).await;
        assert_eq!(status, StatusCode::OK, "{store}: {body}");
        assert_eq!(body["imported"], 3, "{body}");
        assert_eq!(body["keys_added"], 1, "{body}");
        for path in [
            "app/1?format=jws",
            "app/2?format=jws",
            "app/1?format=jose",
            "app/1",
            "app/2",
            "tool/0.1",
        ] {
            let (a, b) = (read(&origin, path).await, read(&target, path).await);
            assert_eq!(a.0, StatusCode::OK, "{path}");
            assert_eq!(a, b, "{store}: {path} differs between the hubs");
        }
        // Twice is the same as once.
        let (status, body) = import(&target, &archive).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["imported"], 0, "{body}");
        assert_eq!(body["already_present"], 3, "{body}");

        // The target lists where they came from, and exports them again
        // under that id, for a third hub.
        let listed = sources(&target).await;
        let from = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["source_id"] == source.as_str())
            .unwrap_or_else(|| panic!("{listed}"));
        assert_eq!(from["local"], false);
        assert_eq!(from["versions"], 3);
        let (status, again) = export(&target, &source).await;
        assert_eq!(status, StatusCode::OK);
        let third = Hub::start(store);
        let (status, body) = import(&third, &again).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            read(&origin, "app/2?format=jws").await,
            read(&third, "app/2?format=jws").await
        );

        // A version of the same name made here, with other content: 409,
        // and nothing else from the archive is written.
        let fourth = Hub::start(store);
        fourth.upload_key().await;
        fourth.create_repo("libs").await;
        fourth.deploy("libs/c.bin", b"gamma".to_vec()).await;
        create(&fourth, "app", "2", true).await;
        let (status, body) = import(&fourth, &archive).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("app/2"),
            "{body}"
        );
        assert_eq!(version_count(&fourth).await, 1);
    }
}
