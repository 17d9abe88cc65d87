//! `waybill serve`: start-up, bootstrap, system endpoints, auth and shutdown.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN_PW, Launch, client};

const PING: &str = "/distribution/api/v1/system/ping";
const INFO: &str = "/distribution/api/v1/system/info";
const SETTINGS: &str = "/distribution/api/v1/system/settings";

async fn json_of(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, body)
}

#[tokio::test]
async fn fresh_start_answers_ping_and_info_without_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Launch::new(&data).start();
    let http = client();

    let (status, body) = json_of(http.get(server.url(PING)).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status_code": 200, "message": "ok"}));

    let (status, info) = json_of(http.get(server.url(INFO)).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["status"], "STABLE");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    let service_id = info["service_id"].as_str().unwrap().to_string();
    assert!(
        service_id.starts_with("jfds@") && service_id.len() == 31,
        "{service_id}"
    );
    assert!(data.join("waybill.db").exists());

    // The service id is stable across restarts.
    assert!(server.terminate().success());
    let server = Launch::new(&data).start();
    let (_, again) = json_of(http.get(server.url(INFO)).send().await.unwrap()).await;
    assert_eq!(again["service_id"], service_id.as_str());
}

#[tokio::test]
async fn generated_admin_password_is_private_and_never_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut launch = Launch::new(&data);
    launch.env.clear();
    let server = launch.start();
    let path = data.join("bootstrap.password");
    let password = std::fs::read_to_string(&path).unwrap();
    assert_eq!(password.len(), 24);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
    }
    let http = client();
    let res = http
        .get(server.url(SETTINGS))
        .basic_auth("admin", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let log = server.log();
    assert!(
        log.contains("bootstrap.password"),
        "the log says where: {log}"
    );
    assert!(!log.contains(&password), "password leaked into the log");

    // A restart neither changes the password nor rewrites the file.
    assert!(server.terminate().success());
    let server = launch.start();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), password);
    let res = http
        .get(server.url(SETTINGS))
        .basic_auth("admin", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn admin_password_from_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Launch::new(&data).start();
    assert!(!data.join("bootstrap.password").exists());
    let http = client();
    let ok = http
        .get(server.url(SETTINGS))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    // Every request below is authenticated again: the second one comes from
    // the credential cache and must agree with the first.
    for _ in 0..2 {
        let bad = http
            .get(server.url(SETTINGS))
            .basic_auth("admin", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    }
    assert!(!server.log().contains(ADMIN_PW));
}

#[tokio::test]
async fn missing_or_bad_credentials_get_401_with_challenge_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Launch::new(&tmp.path().join("data")).start();
    let http = client();
    let cases = [
        ("none", http.get(server.url(SETTINGS))),
        (
            "wrong password",
            http.get(server.url(SETTINGS))
                .basic_auth("admin", Some("nope")),
        ),
        (
            "unknown user",
            http.get(server.url(SETTINGS))
                .basic_auth("ghost", Some(ADMIN_PW)),
        ),
        (
            "garbage basic",
            http.get(server.url(SETTINGS))
                .header("Authorization", "Basic !!!"),
        ),
        (
            "bearer",
            http.get(server.url(SETTINGS)).bearer_auth("eyJhbGciOi.x.y"),
        ),
        (
            "unknown path",
            http.get(server.url("/distribution/api/v1/nope")),
        ),
    ];
    for (label, req) in cases {
        let res = req.send().await.unwrap();
        let challenges: Vec<String> = res
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let (status, body) = json_of(res).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}");
        assert!(
            challenges.iter().any(|c| c.starts_with("Basic")),
            "{label}: {challenges:?}"
        );
        assert_eq!(body["status_code"], 401, "{label}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{label}"
        );
    }
    // With credentials, an unknown path is a JSON 404.
    let res = http
        .get(server.url("/distribution/api/v1/nope"))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["status_code"], 404);
}

#[tokio::test]
async fn settings_persist_and_bad_json_is_a_400_that_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Launch::new(&data).start();
    let http = client();
    let get = |http: &reqwest::Client, url: String| {
        http.get(url).basic_auth("admin", Some(ADMIN_PW)).send()
    };
    let (_, body) = json_of(get(&http, server.url(SETTINGS)).await.unwrap()).await;
    assert_eq!(body, json!({"call_home_enabled": false}));
    let res = http
        .post(server.url(SETTINGS))
        .basic_auth("admin", Some(ADMIN_PW))
        .json(&json!({"call_home_enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    for bad in [
        r#"{"call_home_enabled": "yes"}"#,
        "{",
        r#"{"call_home": true}"#,
    ] {
        let res = http
            .post(server.url(SETTINGS))
            .basic_auth("admin", Some(ADMIN_PW))
            .header("content-type", "application/json")
            .body(bad)
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["status_code"], 400);
        assert!(
            crate::support::error_message(&body).contains("invalid JSON body"),
            "{body}"
        );
    }
    assert!(server.terminate().success());
    let server = Launch::new(&data).start();
    let (_, body) = json_of(get(&http, server.url(SETTINGS)).await.unwrap()).await;
    assert_eq!(
        body,
        json!({"call_home_enabled": true}),
        "kept across restart, untouched by bad input"
    );
}

#[tokio::test]
async fn ping_fails_with_the_seed_message_when_storage_does_not_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Launch::new(&data).start();
    let http = client();
    // Hold SQLite's write lock from another connection: the server's store
    // cannot write, so it is not healthy.
    let db = data.join("waybill.db");
    let blocker = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        std::thread::sleep(std::time::Duration::from_secs(8));
        conn.execute_batch("ROLLBACK").unwrap();
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let res = http.get(server.url(PING)).send().await;
    let res = res.unwrap_or_else(|e| {
        panic!(
            "{e}; exit status {:?}; server log:\n{}",
            server.exit_status(),
            server.log()
        )
    });
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["status_code"], 500);
    assert_eq!(
        body["message"],
        "One or more of the following services are unavailable: distributor, database and/or redis"
    );
    blocker.join().unwrap();
    let (status, _) = json_of(http.get(server.url(PING)).send().await.unwrap()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "healthy again once the lock is gone"
    );
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Launch::new(&tmp.path().join("data")).start();
    let status = client()
        .get(server.url(PING))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    let log_path = server.log.clone();
    let exit = server.terminate();
    assert!(exit.success(), "{exit:?}");
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(log.contains("shutdown requested"), "{log}");
}

#[cfg(feature = "sled")]
#[tokio::test]
async fn sled_store_serves_and_keeps_its_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut launch = Launch::new(&data);
    launch.store = "sled";
    let server = launch.start();
    let http = client();
    let (_, info) = json_of(http.get(server.url(INFO)).send().await.unwrap()).await;
    assert!(data.join("sled").is_dir());
    assert!(!data.join("waybill.db").exists());
    assert!(server.terminate().success());
    let server = launch.start();
    let (_, again) = json_of(http.get(server.url(INFO)).send().await.unwrap()).await;
    assert_eq!(info["service_id"], again["service_id"]);
}

#[cfg(not(feature = "sled"))]
#[test]
fn naming_a_store_that_is_not_compiled_in_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut launch = Launch::new(tmp.path());
    launch.store = "sled";
    let out = launch.command().output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not compiled into this binary"), "{stderr}");
}

#[test]
fn unknown_store_and_help() {
    let tmp = tempfile::tempdir().unwrap();
    let mut launch = Launch::new(tmp.path());
    launch.store = "postgres";
    let out = launch.command().output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown store 'postgres'"));
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_waybill"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--listen",
        "--data-dir",
        "--store",
        "WAYBILL_LISTEN",
        "WAYBILL_DATA_DIR",
        "WAYBILL_STORE",
    ] {
        assert!(text.contains(flag), "help lacks {flag}:\n{text}");
    }
}
