//! Support bundles: create, read, download, list, delete; admin only; and
//! no secret in the archive, however many the server holds.

use std::io::Read as _;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{ADMIN_PW, Hub, Launch};

const USER_PW: &str = "user-password-8f3b";
const PAIRING: &str = "pairing-token-secret-77a1";

fn entries(zip: &[u8]) -> Vec<(String, String)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip archive");
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).unwrap();
            let mut text = String::new();
            f.read_to_string(&mut text).unwrap();
            (f.name().unwrap().to_string(), text)
        })
        .collect()
}

#[tokio::test]
async fn bundles_describe_the_server_and_hold_no_secrets() {
    let hub = Hub::start("sqlite");
    // Secrets of every kind: a user's password, an edge's pairing token, a
    // private signing key, and (already) the token-signing key and admin hash.
    let res = hub
        .dist_api(Method::PUT, "security/users/dev")
        .json(&json!({"password": USER_PW, "email": "dev@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = hub
        .dist_api(Method::PUT, "security/permissions/de")
        .json(&json!({"name": "de", "resource_type": "destination", "principals": {"users": {"dev": ["x"]}},
                      "distribution_destinations": [{"site_name": "de-*", "city_name": "*", "country_codes": ["DE"]}]}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    hub.upload_key().await;
    let res = hub
        .http
        .post(hub.server.url("/artifactory/api/security/apiKey"))
        .basic_auth("dev", Some(USER_PW))
        .send()
        .await
        .unwrap();
    let (status, body) = hub.json(res).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let api_key = body["apiKey"].as_str().unwrap().to_string();
    // Minting a token creates the token-signing key, and the token is a secret too.
    let res = hub
        .dist_api(Method::POST, "security/token")
        .form(&[("username", "admin")])
        .send()
        .await
        .unwrap();
    let (status, minted) = hub.json(res).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    let access_token = minted["access_token"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let edge = Launch::edge(&data, "de-fra-1", "Frankfurt", "DE", PAIRING).start();
    let jpd = json!({"name": "de-fra-1", "url": edge.base, "token": PAIRING,
                     "location": {"city_name": "Frankfurt", "country_code": "DE"}});
    assert_eq!(hub.post_jpd(&jpd).await.status(), StatusCode::CREATED);

    // A plain user may not; the admin may, with no body at all.
    let res = hub
        .http
        .post(hub.server.url("/distribution/api/v1/system/support/bundle"))
        .basic_auth("dev", Some(USER_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = hub
        .dist_api(Method::POST, "system/support/bundle")
        .send()
        .await
        .unwrap();
    let (status, created) = hub.json(res).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let url = created["artifactory"]["bundle_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("/artifactory/support-bundles/{id}/jfds/jfds@")),
        "{url}"
    );

    let info: Value = hub
        .dist_api(Method::GET, &format!("system/support/bundle/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["status"], "success");
    assert_eq!(info["parameters"]["configuration"], true);
    assert_eq!(info["parameters"]["thread_dump"]["count"], 1);
    assert!(info["parameters"]["logs"]["end_date"].is_string(), "{info}");

    let res = hub
        .dist_api(Method::GET, &format!("system/support/bundle/{id}/archive"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let zip = res.bytes().await.unwrap();
    let files = entries(&zip);
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "configuration.json",
            "system.json",
            "logs.txt",
            "threads.txt",
            "bundle.json"
        ]
    );
    let text = |name: &str| files.iter().find(|f| f.0 == name).unwrap().1.clone();
    let config: Value = serde_json::from_str(&text("configuration.json")).unwrap();
    assert_eq!(config["sites"][0]["name"], "de-fra-1");
    assert!(
        config["settings"]["security.permission.de"].is_object(),
        "{config}"
    );
    assert_eq!(config["signing_keys"][0]["has_private_key"], true);
    let system: Value = serde_json::from_str(&text("system.json")).unwrap();
    assert_eq!(system["counts"]["sites"], 1);
    assert!(
        text("logs.txt").contains("edge registered site=de-fra-1"),
        "the logs of this run: {}",
        text("logs.txt")
    );
    assert!(
        text("threads.txt").contains("tokio-rt-worker"),
        "{}",
        text("threads.txt")
    );
    let everything: String = files.iter().map(|f| f.1.as_str()).collect();
    for secret in [
        USER_PW,
        ADMIN_PW,
        PAIRING,
        "PRIVATE KEY BLOCK",
        "$argon2",
        "jwt_signing_key",
        &access_token,
        &api_key,
        // Its stored hash is a credential too (it names the key's owner).
        &waybill::digest::Sha256::of(api_key.as_bytes()).to_hex(),
        "dev@example.com",
    ] {
        assert!(!everything.contains(secret), "the bundle leaks {secret:?}");
    }
    // The bundle URL serves the same archive through the source API.
    let res = hub
        .req(
            Method::GET,
            &format!(
                "{}/support-bundle.zip",
                url.trim_start_matches("/artifactory/")
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap(), zip);

    // A chosen id, once; bad input is a 400 naming the field, and writes nothing.
    let put = |id: &str, body: Value| {
        hub.dist_api(Method::PUT, &format!("system/support/bundle/{id}"))
            .json(&body)
            .send()
    };
    let only_config = json!({"name": "n", "description": "d", "parameters": {"logs": {"include": false}, "system": false, "thread_dump": {"count": 0}}});
    assert_eq!(
        put("mine_1", only_config.clone()).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        put("mine_1", only_config).await.unwrap().status(),
        StatusCode::CONFLICT
    );
    let res = put(
        "mine_2",
        json!({"parameters": {"logs": {"start_date": "yesterday"}}}),
    )
    .await
    .unwrap();
    let (status, body) = hub.json(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        crate::support::error_message(&body).contains("start_date"),
        "{body}"
    );
    let res = put(
        "mine_2",
        json!({"parameters": {"thread_dump": {"count": 1000}}}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let listed: Value = hub
        .dist_api(Method::GET, "system/support/bundles")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["count"], 2, "{listed}");
    let mine = hub
        .dist_api(Method::GET, "system/support/bundle/mine_1/archive")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let names: Vec<String> = entries(&mine).into_iter().map(|f| f.0).collect();
    assert_eq!(
        names,
        ["configuration.json", "bundle.json"],
        "only what was asked"
    );

    // Delete: gone from the API and from the repository.
    let res = hub
        .dist_api(Method::DELETE, &format!("system/support/bundle/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for path in [
        format!("system/support/bundle/{id}"),
        format!("system/support/bundle/{id}/archive"),
    ] {
        let res = hub.dist_api(Method::GET, &path).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let res = hub
        .dist_api(Method::DELETE, &format!("system/support/bundle/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = hub
        .req(
            Method::GET,
            &format!(
                "{}/support-bundle.zip",
                url.trim_start_matches("/artifactory/")
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
