//! The read caches (issue 12) never answer with something stale: each test
//! warms a cache first, changes what it holds through the API, and expects
//! the very next request to see the change. On both stores.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{ADMIN_PW, Hub};

/// GET `/distribution/api/v1/{path}` with `auth` applied; the status.
async fn get_as(
    hub: &Hub,
    path: &str,
    auth: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> StatusCode {
    auth(
        hub.http
            .get(hub.server.url(&format!("/distribution/api/v1/{path}"))),
    )
    .send()
    .await
    .unwrap()
    .status()
}

async fn admin_put(hub: &Hub, path: &str, body: Value) -> StatusCode {
    hub.dist_api(Method::PUT, path)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

async fn admin_delete(hub: &Hub, path: &str) -> StatusCode {
    hub.dist_api(Method::DELETE, path)
        .send()
        .await
        .unwrap()
        .status()
}

/// The access token a token request answers with (201).
async fn mint(hub: &Hub, req: reqwest::RequestBuilder) -> String {
    let (status, t) = hub.json(req.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    t["access_token"].as_str().unwrap().to_string()
}

/// `GET release_bundle` as the user `dev`.
async fn dev_listing(hub: &Hub) -> Value {
    let res = hub
        .http
        .get(hub.server.url("/distribution/api/v1/release_bundle"))
        .basic_auth("dev", Some("dev-password-2"))
        .send()
        .await
        .unwrap();
    hub.json(res).await.1
}

#[tokio::test]
async fn remembered_credentials_and_permissions_follow_every_security_write() {
    for store in crate::support::stores() {
        let hub = Hub::start(store);
        let user =
            json!({"password": "dev-password-1", "email": "d@example.com", "groups": ["devs"]});
        assert_eq!(
            admin_put(&hub, "security/users/dev", user).await,
            StatusCode::CREATED
        );
        let basic =
            |pw: &'static str| move |r: reqwest::RequestBuilder| r.basic_auth("dev", Some(pw));
        let listing = "release_bundle";

        // A password, remembered, then changed: the old one fails at once.
        assert_eq!(
            get_as(&hub, listing, basic("dev-password-1")).await,
            StatusCode::OK
        );
        assert_eq!(
            get_as(&hub, listing, basic("dev-password-1")).await,
            StatusCode::OK
        );
        let changed = json!({"password": "dev-password-2"});
        assert_eq!(
            admin_put(&hub, "security/users/dev", changed).await,
            StatusCode::OK
        );
        assert_eq!(
            get_as(&hub, listing, basic("dev-password-1")).await,
            StatusCode::UNAUTHORIZED,
            "{store}: a changed password"
        );

        // A token, remembered, then revoked.
        let jwt = mint(
            &hub,
            hub.dist_api(Method::POST, "security/token")
                .basic_auth("dev", Some("dev-password-2"))
                .form(&[("username", "dev")]),
        )
        .await;
        let bearer = |r: reqwest::RequestBuilder| r.bearer_auth(&jwt);
        assert_eq!(get_as(&hub, listing, bearer).await, StatusCode::OK);
        let res = hub
            .dist_api(Method::POST, "security/token/revoke")
            .form(&[("token", jwt.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
        assert_eq!(
            get_as(&hub, listing, bearer).await,
            StatusCode::UNAUTHORIZED,
            "{store}: a revoked token"
        );

        // An API key, remembered, then revoked.
        let res = hub
            .http
            .post(hub.server.url("/artifactory/api/security/apiKey"))
            .basic_auth("dev", Some("dev-password-2"))
            .send()
            .await
            .unwrap();
        let (status, k) = hub.json(res).await;
        assert_eq!(status, StatusCode::CREATED, "{k}");
        let key = k["apiKey"].as_str().unwrap().to_string();
        let by_key = |r: reqwest::RequestBuilder| r.header("X-JFrog-Art-Api", &key);
        assert_eq!(get_as(&hub, listing, by_key).await, StatusCode::OK);
        let res = hub
            .http
            .delete(hub.server.url("/artifactory/api/security/apiKey"))
            .basic_auth("dev", Some("dev-password-2"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            get_as(&hub, listing, by_key).await,
            StatusCode::UNAUTHORIZED,
            "{store}: a revoked API key"
        );

        // A permission through a group: granted, remembered, then the group
        // loses the user, then the permission goes.
        hub.upload_key().await;
        hub.create_repo("libs").await;
        hub.deploy("libs/a.bin", b"cached".to_vec()).await;
        create(&hub, "1", "", true).await;
        let grant = json!({"name": "read-app", "resource_type": "release_bundle",
            "release_bundles": {"include_patterns": ["app"]},
            "principals": {"groups": {"devs": ["r"]}}});
        assert_eq!(
            admin_put(&hub, "security/permissions/read-app", grant).await,
            StatusCode::OK
        );
        let dev = basic("dev-password-2");
        assert_eq!(
            get_as(&hub, "release_bundle/app/1", dev).await,
            StatusCode::OK
        );
        assert_eq!(
            get_as(&hub, "release_bundle/app/1", dev).await,
            StatusCode::OK
        );
        // The group record is created here (201); the user's own record
        // named it before, and loses it now.
        assert_eq!(
            admin_put(&hub, "security/groups/devs", json!({"users": []})).await,
            StatusCode::CREATED
        );
        assert_eq!(
            get_as(&hub, "release_bundle/app/1", dev).await,
            StatusCode::FORBIDDEN,
            "{store}: the user left the group"
        );
        let direct = json!({"name": "read-app", "resource_type": "release_bundle",
            "release_bundles": {"include_patterns": ["app"]},
            "principals": {"users": {"dev": ["r"]}}});
        assert_eq!(
            admin_put(&hub, "security/permissions/read-app", direct).await,
            StatusCode::OK
        );
        assert_eq!(
            get_as(&hub, "release_bundle/app/1", dev).await,
            StatusCode::OK
        );
        // The non-admin listing is permission-dependent too.
        let list = dev_listing(&hub).await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{store}: {list}");
        assert_eq!(
            admin_delete(&hub, "security/permissions/read-app").await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            get_as(&hub, "release_bundle/app/1", dev).await,
            StatusCode::FORBIDDEN,
            "{store}: the permission was deleted"
        );
        let list = dev_listing(&hub).await;
        assert_eq!(list, json!([]), "{store}: the listing lost it too");

        // A lockout starts while the password is remembered: it holds.
        assert_eq!(get_as(&hub, listing, dev).await, StatusCode::OK);
        for _ in 0..5 {
            let wrong = get_as(&hub, listing, basic("not-the-password")).await;
            assert_eq!(wrong, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(
            get_as(&hub, listing, dev).await,
            StatusCode::TOO_MANY_REQUESTS,
            "{store}: locked out"
        );

        // A user, remembered, then deleted.
        let jwt = mint(
            &hub,
            hub.dist_api(Method::POST, "security/token")
                .form(&[("username", "dev"), ("scope", "applied-permissions/user")]),
        )
        .await;
        let bearer = |r: reqwest::RequestBuilder| r.bearer_auth(&jwt);
        assert_eq!(get_as(&hub, listing, bearer).await, StatusCode::OK);
        assert_eq!(
            admin_delete(&hub, "security/users/dev").await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            get_as(&hub, listing, bearer).await,
            StatusCode::UNAUTHORIZED,
            "{store}: a deleted user's token"
        );
    }
}

/// Version `version` of bundle `app`, gathering repository `libs`.
async fn create(hub: &Hub, version: &str, description: &str, sign: bool) {
    hub.create_bundle(
        &json!({"name": "app", "version": version, "sign_immediately": sign,
        "description": description,
        "spec": {"queries": [{"aql": "items.find({\"repo\":\"libs\"})"}]}}),
    )
    .await;
}

async fn read(hub: &Hub, path: &str) -> (StatusCode, String) {
    let res = hub.dist_api(Method::GET, path).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

#[tokio::test]
async fn rendered_versions_and_listings_follow_every_version_write() {
    for store in crate::support::stores() {
        let hub = Hub::start(store);
        hub.upload_key().await;
        hub.create_repo("libs").await;
        hub.deploy("libs/a.bin", b"one".to_vec()).await;
        create(&hub, "1", "first", true).await;
        let (status, json1) = read(&hub, "release_bundle/app/1").await;
        assert_eq!(status, StatusCode::OK);
        let (_, jws1) = read(&hub, "release_bundle/app/1?format=jws").await;
        let (_, list1) = read(&hub, "release_bundle/app").await;
        assert_eq!(read(&hub, "release_bundle/app/1").await.1, json1, "a hit");

        // Deleted: 404 at once, and gone from the listings.
        assert_eq!(
            admin_delete(&hub, "release_bundle/app/1").await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            read(&hub, "release_bundle/app/1").await.0,
            StatusCode::NOT_FOUND,
            "{store}"
        );
        assert_eq!(
            read(&hub, "release_bundle/app/1?format=jws").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            read(&hub, "release_bundle/app").await.0,
            StatusCode::NOT_FOUND
        );

        // Recreated with other content: the new body, never the old.
        hub.deploy("libs/b.bin", b"two".to_vec()).await;
        create(&hub, "1", "second", true).await;
        let (_, json2) = read(&hub, "release_bundle/app/1").await;
        assert_ne!(json1, json2);
        assert!(
            json2.contains("second") && json2.contains("b.bin"),
            "{json2}"
        );
        assert_ne!(read(&hub, "release_bundle/app/1?format=jws").await.1, jws1);
        assert_ne!(read(&hub, "release_bundle/app").await.1, list1);

        // An unsigned version: read, updated, read again; then signed.
        create(&hub, "2", "draft", false).await;
        let (_, latest) = read(&hub, "release_bundle/app/LATEST").await;
        assert!(latest.contains("draft"), "{latest}");
        assert_eq!(
            read(&hub, "release_bundle/app/2?format=jws").await.0,
            StatusCode::BAD_REQUEST
        );
        let res = hub
            .dist_api(Method::PUT, "release_bundle/app/2")
            .json(&json!({"description": "edited",
                "spec": {"queries": [{"aql": "items.find({\"repo\":\"libs\"})"}]}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
        let (_, edited) = read(&hub, "release_bundle/app/2").await;
        assert!(edited.contains("edited"), "{store}: {edited}");
        let (_, all) = read(&hub, "release_bundle").await;
        assert!(all.contains("edited"), "{store}: {all}");
        let res = hub
            .dist_api(Method::POST, "release_bundle/app/2/sign")
            .header("X-Gpg-Passphrase", crate::support::FIXTURE_PASSPHRASE)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
        let (status, _) = read(&hub, "release_bundle/app/2?format=jws").await;
        assert_eq!(status, StatusCode::OK, "{store}: signed since");
        let (_, signed) = read(&hub, "release_bundle/app/2").await;
        assert!(signed.contains("\"SIGNED\""), "{store}: {signed}");
    }
}

#[tokio::test]
async fn a_deleted_repository_is_not_remembered() {
    for store in crate::support::stores() {
        let hub = Hub::start(store);
        hub.create_repo("libs").await;
        hub.deploy("libs/a.bin", b"x".to_vec()).await;
        let info = |hub: &Hub| {
            hub.req(Method::GET, "api/storage/libs/a.bin")
                .basic_auth("admin", Some(ADMIN_PW))
                .send()
        };
        assert_eq!(info(&hub).await.unwrap().status(), StatusCode::OK);
        let res = hub
            .req(Method::DELETE, "api/repositories/libs")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = hub
            .req(Method::PUT, "libs/b.bin")
            .body("y")
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::NOT_FOUND,
            "{store}: no deploy into it"
        );
        assert_eq!(info(&hub).await.unwrap().status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn small_files_from_memory_answer_exactly_what_the_disk_holds() {
    for store in crate::support::stores() {
        let hub = Hub::start(store);
        hub.create_repo("libs").await;
        let data = crate::support::content(1000, 42);
        hub.deploy("libs/s.bin", data.clone()).await;
        // Twice each: the first read fills the cache, the second hits it.
        for _ in 0..2 {
            let res = hub.req(Method::GET, "libs/s.bin").send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());
            for (range, from, to) in [
                ("bytes=0-0", 0usize, 1usize),
                ("bytes=990-", 990, 1000),
                ("bytes=-7", 993, 1000),
                ("bytes=100-199", 100, 200),
            ] {
                let res = hub
                    .req(Method::GET, "libs/s.bin")
                    .header("Range", range)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{range}");
                assert_eq!(
                    res.bytes().await.unwrap().as_ref(),
                    &data[from..to],
                    "{store} {range}"
                );
            }
        }
        // Replaced at the same path: the new content; deleted: 404.
        let other = crate::support::content(1000, 43);
        hub.deploy("libs/s.bin", other.clone()).await;
        let res = hub.req(Method::GET, "libs/s.bin").send().await.unwrap();
        assert_eq!(res.bytes().await.unwrap().as_ref(), other.as_slice());
        let res = hub.req(Method::DELETE, "libs/s.bin").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let res = hub.req(Method::GET, "libs/s.bin").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{store}");
    }
}
