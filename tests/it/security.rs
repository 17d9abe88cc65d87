//! Users, access tokens and login throttling, black-box.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{ADMIN_PW, Hub, Launch, client};

fn api(hub: &Hub, method: Method, path: &str) -> reqwest::RequestBuilder {
    hub.http.request(
        method,
        hub.server.url(&format!("/distribution/api/v1/{path}")),
    )
}

async fn token(hub: &Hub, auth: (&str, &str), form: &[(&str, &str)]) -> (StatusCode, Value) {
    let res = api(hub, Method::POST, "security/token")
        .basic_auth(auth.0, Some(auth.1))
        .form(form)
        .send()
        .await
        .unwrap();
    hub.json(res).await
}

fn claims(jwt: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

async fn status_with(hub: &Hub, bearer: &str, path: &str) -> StatusCode {
    api(hub, Method::GET, path)
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn users_tokens_revocation_refresh_and_expiry() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let hub = Hub {
        server: Launch::new(&data).start(),
        http: client(),
        _tmp: tempfile::tempdir().unwrap(),
    };
    let admin = ("admin", ADMIN_PW);

    // Users: created by an admin, never returned with a password.
    let res = api(&hub, Method::PUT, "security/users/dev")
        .basic_auth("admin", Some(ADMIN_PW))
        .json(
            &json!({"email": "dev@example.com", "password": "dev-password-1", "groups": ["devs"]}),
        )
        .send()
        .await
        .unwrap();
    let (status, user) = hub.json(res).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(
        user,
        json!({"name": "dev", "email": "dev@example.com", "admin": false, "groups": ["devs"]})
    );
    let res = api(&hub, Method::PUT, "security/users/dev")
        .basic_auth("admin", Some(ADMIN_PW))
        .json(&json!({"email": "d@x.io"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "updates keep the password");
    let listed = api(&hub, Method::GET, "security/users")
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains("\"dev\"") && !listed.contains("argon2") && !listed.contains("password"),
        "{listed}"
    );
    let res = api(&hub, Method::GET, "security/users")
        .basic_auth("dev", Some("dev-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN, "users are admin only");
    let res = api(&hub, Method::PUT, "security/users/short")
        .basic_auth("admin", Some(ADMIN_PW))
        .json(&json!({"password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // A plain user's token: for itself only, user scope only; works as Bearer.
    let (status, _) = token(&hub, ("dev", "dev-password-1"), &[("username", "admin")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = token(
        &hub,
        ("dev", "dev-password-1"),
        &[("username", "dev"), ("scope", "applied-permissions/admin")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, t) = token(
        &hub,
        ("dev", "dev-password-1"),
        &[("username", "dev"), ("expires_in", "3600")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    assert_eq!(
        (
            t["token_type"].as_str(),
            t["scope"].as_str(),
            t["expires_in"].as_u64()
        ),
        (Some("Bearer"), Some("applied-permissions/user"), Some(3600))
    );
    assert!(t.get("refresh_token").is_none());
    let dev_jwt = t["access_token"].as_str().unwrap().to_string();
    let c = claims(&dev_jwt);
    let info: Value = api(&hub, Method::GET, "system/info")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c["iss"], info["service_id"]);
    assert_eq!(c["aud"], info["service_id"]);
    assert_eq!(
        (c["sub"].as_str(), c["scp"].as_str()),
        (Some("dev"), Some("applied-permissions/user"))
    );
    assert_eq!(
        c["exp"].as_u64().unwrap(),
        c["iat"].as_u64().unwrap() + 3600
    );
    assert_eq!(
        status_with(&hub, &dev_jwt, "release_bundle").await,
        StatusCode::OK
    );
    assert_eq!(
        status_with(&hub, &dev_jwt, "system/settings").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status_with(&hub, &format!("{dev_jwt}x"), "release_bundle").await,
        StatusCode::UNAUTHORIZED,
        "a forged signature"
    );

    // Admin scope needs an admin; an admin's user-scoped token is not admin.
    let (_, t) = token(
        &hub,
        admin,
        &[
            ("username", "admin"),
            ("scope", "applied-permissions/admin"),
        ],
    )
    .await;
    let admin_jwt = t["access_token"].as_str().unwrap().to_string();
    assert!(
        claims(&admin_jwt).get("exp").is_none(),
        "expires_in 0 never expires"
    );
    assert_eq!(
        status_with(&hub, &admin_jwt, "system/settings").await,
        StatusCode::OK
    );
    let (_, t) = token(&hub, admin, &[("username", "admin")]).await;
    assert_eq!(
        status_with(&hub, t["access_token"].as_str().unwrap(), "system/settings").await,
        StatusCode::FORBIDDEN
    );

    // Listing is admin only and shows the seed's fields.
    let res = api(&hub, Method::GET, "security/token")
        .bearer_auth(&admin_jwt)
        .send()
        .await
        .unwrap();
    let (status, list) = hub.json(res).await;
    assert_eq!(status, StatusCode::OK);
    let mine = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["subject"] == "dev")
        .unwrap()
        .clone();
    assert_eq!(mine["token_id"], c["jti"]);
    assert_eq!(mine["issuer"], info["service_id"]);
    assert_eq!(mine["refreshable"], false);
    assert!(mine["issued_at"].is_u64() && mine["expiry"].is_u64());
    assert_eq!(
        status_with(&hub, &dev_jwt, "security/token").await,
        StatusCode::FORBIDDEN
    );

    // Revocation takes effect at once; the form must name exactly one thing.
    let revoke = |form: Vec<(&'static str, String)>| {
        api(&hub, Method::POST, "security/token/revoke")
            .bearer_auth(&admin_jwt)
            .form(&form)
            .send()
    };
    assert_eq!(
        revoke(vec![]).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        revoke(vec![("token", dev_jwt.clone()), ("token_id", "x".into())])
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        revoke(vec![("token_id", "no-such-token".into())])
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    let res = api(&hub, Method::POST, "security/token/revoke")
        .bearer_auth(&dev_jwt)
        .form(&[("token", dev_jwt.clone())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "revoking is admin only"
    );
    assert_eq!(
        revoke(vec![("token", dev_jwt.clone())])
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let res = api(&hub, Method::GET, "release_bundle")
        .bearer_auth(&dev_jwt)
        .send()
        .await
        .unwrap();
    let (status, body) = hub.json(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        crate::support::error_message(&body).contains("revoked"),
        "{body}"
    );

    // Refresh: single use; the old access token dies with it.
    let (_, t) = token(
        &hub,
        ("dev", "dev-password-1"),
        &[("username", "dev"), ("refreshable", "true")],
    )
    .await;
    let (old_access, old_refresh) = (
        t["access_token"].as_str().unwrap().to_string(),
        t["refresh_token"].as_str().unwrap().to_string(),
    );
    let refresh = [
        ("grant_type", "refresh_token"),
        ("access_token", old_access.as_str()),
        ("refresh_token", old_refresh.as_str()),
    ];
    let (status, fresh) = token(&hub, ("dev", "dev-password-1"), &refresh).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    let new_access = fresh["access_token"].as_str().unwrap();
    assert_eq!(
        status_with(&hub, new_access, "release_bundle").await,
        StatusCode::OK
    );
    assert_eq!(
        status_with(&hub, &old_access, "release_bundle").await,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = token(&hub, ("dev", "dev-password-1"), &refresh).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a refresh token works once"
    );

    // Expiry.
    let (_, t) = token(
        &hub,
        ("dev", "dev-password-1"),
        &[("username", "dev"), ("expires_in", "1")],
    )
    .await;
    let short = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        status_with(&hub, &short, "release_bundle").await,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let res = api(&hub, Method::GET, "release_bundle")
        .bearer_auth(&short)
        .send()
        .await
        .unwrap();
    let (status, body) = hub.json(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        crate::support::error_message(&body).contains("expired"),
        "{body}"
    );

    // Tokens outlive a restart; a deleted user's tokens do not outlive the user.
    let Hub { server, .. } = hub;
    assert!(server.terminate().success());
    let hub = Hub {
        server: Launch::new(&data).start(),
        http: client(),
        _tmp: tempfile::tempdir().unwrap(),
    };
    assert_eq!(
        status_with(&hub, &admin_jwt, "system/settings").await,
        StatusCode::OK,
        "the signing key persisted"
    );
    assert_eq!(
        status_with(&hub, new_access, "release_bundle").await,
        StatusCode::OK
    );
    assert_eq!(
        api(&hub, Method::DELETE, "security/users/dev")
            .bearer_auth(&admin_jwt)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status_with(&hub, new_access, "release_bundle").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api(&hub, Method::DELETE, "security/users/admin")
            .bearer_auth(&admin_jwt)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST,
        "no self-deletion"
    );
    let log = hub.server.log();
    assert!(
        !log.contains(&admin_jwt) && !log.contains(&old_refresh),
        "tokens in the log"
    );
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled_and_say_when_to_retry() {
    let hub = Hub::start("sqlite");
    for _ in 0..5 {
        let res = api(&hub, Method::GET, "release_bundle")
            .basic_auth("admin", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right password waits now.
    let res = api(&hub, Method::GET, "release_bundle")
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=31).contains(&retry), "{retry}");
    let (_, body) = hub.json(res).await;
    assert!(
        crate::support::error_message(&body).contains("retry in"),
        "{body}"
    );
    // Other users are not affected.
    let res = api(&hub, Method::GET, "release_bundle")
        .basic_auth("someone", Some("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // A restart does not lift the lockout.
    let Hub { server, _tmp, .. } = hub;
    assert!(server.terminate().success());
    let hub = Hub {
        server: Launch::new(&_tmp.path().join("data")).start(),
        http: client(),
        _tmp,
    };
    let res = api(&hub, Method::GET, "release_bundle")
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "still locked after a restart"
    );
}

#[tokio::test]
async fn api_keys_and_tokens_work_where_the_jfrog_cli_sends_them() {
    let hub = Hub::start("sqlite");
    let res = api(&hub, Method::PUT, "security/users/dev")
        .basic_auth("admin", Some(ADMIN_PW))
        .json(&json!({"password": "dev-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let key_api = |method: Method| {
        hub.http
            .request(method, hub.server.url("/artifactory/api/security/apiKey"))
            .basic_auth("dev", Some("dev-password-1"))
    };
    let (status, body) = hub.json(key_api(Method::POST).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = body["apiKey"].as_str().unwrap().to_string();
    assert!(key.starts_with("AKCp") && key.len() == 73, "{key}");
    assert_eq!(
        key_api(Method::POST).send().await.unwrap().status(),
        StatusCode::CONFLICT,
        "one key per user"
    );
    let (_, got) = hub.json(key_api(Method::GET).send().await.unwrap()).await;
    assert_eq!(got, json!({"exists": true}), "the key is never shown again");

    // Where a request is accepted, and where not.
    let list = hub.server.url("/distribution/api/v1/release_bundle");
    let with_header = |k: &str| hub.http.get(&list).header("X-JFrog-Art-Api", k);
    let with_basic = |user: &str, secret: &str| hub.http.get(&list).basic_auth(user, Some(secret));
    let status = |r: reqwest::RequestBuilder| async move { r.send().await.unwrap().status() };
    assert_eq!(status(with_header(&key)).await, StatusCode::OK);
    assert_eq!(status(with_basic("dev", &key)).await, StatusCode::OK);
    assert_eq!(
        status(with_basic("admin", &key)).await,
        StatusCode::UNAUTHORIZED,
        "a key works only with its own user"
    );
    let forged = format!("AKCp{}", "x".repeat(69));
    assert_eq!(status(with_header(&forged)).await, StatusCode::UNAUTHORIZED);

    // An access token as the Basic password, as the CLI sends AKCp-like tokens.
    let (_, minted) = token(&hub, ("admin", ADMIN_PW), &[("username", "dev")]).await;
    let jwt = minted["access_token"].as_str().unwrap().to_string();
    assert_eq!(status(with_basic("dev", &jwt)).await, StatusCode::OK);
    assert_eq!(
        status(with_basic("admin", &jwt)).await,
        StatusCode::UNAUTHORIZED,
        "a token works only with its own user"
    );

    // Regenerate: the old key stops working at once.
    let (status_put, body) = hub.json(key_api(Method::PUT).send().await.unwrap()).await;
    assert_eq!(status_put, StatusCode::CREATED, "{body}");
    let fresh = body["apiKey"].as_str().unwrap().to_string();
    assert_ne!(fresh, key);
    assert_eq!(status(with_header(&key)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(with_header(&fresh)).await, StatusCode::OK);

    // A deleted user's key dies with them, even if the name comes back.
    let res = api(&hub, Method::DELETE, "security/users/dev")
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = api(&hub, Method::PUT, "security/users/dev")
        .basic_auth("admin", Some(ADMIN_PW))
        .json(&json!({"password": "dev-password-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(status(with_header(&fresh)).await, StatusCode::UNAUTHORIZED);

    // Revoking: once, then 404.
    let key_api2 = |method: Method| {
        hub.http
            .request(method, hub.server.url("/artifactory/api/security/apiKey"))
            .basic_auth("dev", Some("dev-password-2"))
    };
    let (_, body) = hub.json(key_api2(Method::POST).send().await.unwrap()).await;
    let third = body["apiKey"].as_str().unwrap().to_string();
    assert_eq!(
        key_api2(Method::DELETE).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(status(with_header(&third)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        key_api2(Method::DELETE).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

/// Tokens at Artifactory's and Access's paths, as client libraries ask for
/// them; the tokens work like any other.
#[tokio::test]
async fn tokens_at_artifactory_and_access_paths() {
    for store in crate::support::stores() {
        let hub = Hub::start(store);
        let res = hub
            .http
            .post(hub.server.url("/artifactory/api/security/token"))
            .basic_auth("admin", Some(ADMIN_PW))
            .form(&[("username", "admin"), ("expires_in", "60")])
            .send()
            .await
            .unwrap();
        let (status, body) = hub.json(res).await;
        assert_eq!(status, StatusCode::CREATED, "{store}: {body}");
        let form_token = body["access_token"].as_str().unwrap().to_string();
        for path in ["/access/api/v1/tokens", "/artifactory/access/api/v1/tokens"] {
            let res = hub
                .http
                .post(hub.server.url(path))
                .basic_auth("admin", Some(ADMIN_PW))
                .json(&json!({"subject": "admin", "scope": "applied-permissions/admin", "expires_in": 60, "refreshable": true}))
                .send()
                .await
                .unwrap();
            let (status, body) = hub.json(res).await;
            assert_eq!(status, StatusCode::OK, "{store} {path}: {body}");
            assert!(
                body["token_id"].as_str().is_some_and(|t| !t.is_empty()),
                "{body}"
            );
            assert!(body["refresh_token"].is_string(), "{body}");
            let token = body["access_token"].as_str().unwrap();
            assert_eq!(claims(token)["sub"], "admin");
            assert_eq!(
                status_with(&hub, token, "security/users").await,
                StatusCode::OK
            );
        }
        assert_eq!(
            status_with(&hub, &form_token, "release_bundle").await,
            StatusCode::OK
        );
        // Bad input is a 400.
        let res = hub
            .http
            .post(hub.server.url("/access/api/v1/tokens"))
            .basic_auth("admin", Some(ADMIN_PW))
            .json(&json!({"username": ["x"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    }
}

/// A token request is authorized before its options are judged, and a
/// refresh with a bad option changes nothing: the old token and its
/// refresh token still work (they used to be deleted before the options
/// were read, leaving the caller with neither).
#[tokio::test]
async fn token_options_are_judged_after_authorization_and_before_any_change() {
    let hub = Hub::start("sqlite");
    let admin = ("admin", ADMIN_PW);
    let res = api(&hub, Method::PUT, "security/users/dev")
        .basic_auth(admin.0, Some(admin.1))
        .json(&json!({"password": "dev-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let dev = ("dev", "dev-password-1");

    // Another user's token with a malformed option: refused for who asks.
    let (status, body) = token(&hub, dev, &[("username", "admin"), ("expires_in", "soon")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // The caller's own, with the same option: the option is what is wrong.
    let (status, body) = token(&hub, dev, &[("username", "dev"), ("expires_in", "soon")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        crate::support::error_message(&body).contains("expires_in"),
        "{body}"
    );

    let (_, t) = token(&hub, dev, &[("username", "dev"), ("refreshable", "true")]).await;
    let (access, refresh) = (
        t["access_token"].as_str().unwrap().to_string(),
        t["refresh_token"].as_str().unwrap().to_string(),
    );
    let refresh_with = |extra: (&'static str, &'static str)| {
        vec![
            ("grant_type", "refresh_token".to_string()),
            ("access_token", access.clone()),
            ("refresh_token", refresh.clone()),
            (extra.0, extra.1.to_string()),
        ]
    };
    let bad = refresh_with(("refreshable", "maybe"));
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = token(&hub, dev, &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        status_with(&hub, &access, "release_bundle").await,
        StatusCode::OK,
        "the old token survives a refused refresh"
    );
    let good = refresh_with(("refreshable", "true"));
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = token(&hub, dev, &good).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "and so does its refresh token: {body}"
    );
}
