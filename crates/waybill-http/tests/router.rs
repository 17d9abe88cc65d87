//! In-process tests of the router over the in-memory store: authorization
//! outcomes that need users the black-box tests cannot create yet.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use tower::ServiceExt;
use waybill_core::auth::{PasswordHash, User};
use waybill_core::memory::{MemoryBlobStore, MemoryStore};
use waybill_core::site::{ServiceId, ServiceKind, ulid_from_parts};
use waybill_core::store::Store;
use waybill_http::{HubState, router};

fn user(name: &str, password: &str, admin: bool) -> User {
    User {
        name: name.into(),
        password_hash: PasswordHash::create(password, [9; 16]).unwrap(),
        admin,
        email: None,
        groups: vec![],
        created: 0,
    }
}

async fn app() -> (axum::Router, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store
        .create_user(user("admin", "root-pw", true))
        .await
        .unwrap();
    store
        .create_user(user("dev", "dev-pw", false))
        .await
        .unwrap();
    let id = ServiceId::new(ServiceKind::Distribution, ulid_from_parts(1, 1));
    let state = HubState::new(store.clone(), Arc::new(MemoryBlobStore::new()), id);
    (router(state), store)
}

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    auth: Option<String>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&bytes)));
    (status, body)
}

const SETTINGS: &str = "/distribution/api/v1/system/settings";

#[tokio::test]
async fn admin_only_endpoints_refuse_plain_users_with_a_reason() {
    let (app, _) = app().await;
    let (status, body) = call(&app, "GET", SETTINGS, Some(basic("dev", "dev-pw"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["status_code"], 403);
    assert!(
        body["message"].as_str().unwrap().contains("admin only"),
        "{body}"
    );
    let (status, _) = call(&app, "GET", SETTINGS, Some(basic("admin", "root-pw"))).await;
    assert_eq!(status, StatusCode::OK);
}

/// Changes to users go through the API, which tells the credential cache;
/// a write straight to the store is seen within `PRINCIPAL_TTL` only.
#[tokio::test]
async fn a_password_change_takes_effect_at_once_despite_the_cache() {
    let (app, _) = app().await;
    let bundles = "/distribution/api/v1/release_bundle";
    let (status, _) = call(&app, "GET", bundles, Some(basic("dev", "dev-pw"))).await;
    assert_eq!(status, StatusCode::OK, "now cached");
    let change = serde_json::json!({"password": "new-password"});
    let (status, _) = call_with(
        &app,
        "PUT",
        "/distribution/api/v1/security/users/dev",
        basic("admin", "root-pw"),
        Some(change),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&app, "GET", bundles, Some(basic("dev", "dev-pw"))).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "old password must stop working"
    );
    let (status, _) = call(&app, "GET", bundles, Some(basic("dev", "new-password"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call_with(
        &app,
        "DELETE",
        "/distribution/api/v1/security/users/dev",
        basic("admin", "root-pw"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&app, "GET", bundles, Some(basic("dev", "new-password"))).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "deleted users are locked out"
    );
}

async fn call_with(
    app: &axum::Router,
    method: &str,
    path: &str,
    auth: String,
    body: Option<serde_json::Value>,
) -> (StatusCode, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", auth)
        .header("content-type", "application/json");
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let res = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

#[tokio::test]
async fn wrong_method_is_a_json_405() {
    let (app, _) = app().await;
    let (status, body) = call(&app, "DELETE", "/distribution/api/v1/system/ping", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["status_code"], 405);
}

#[tokio::test]
async fn basic_credentials_without_a_colon_are_refused() {
    let (app, _) = app().await;
    let raw = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin")
    );
    let (status, body) = call(&app, "GET", SETTINGS, Some(raw)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"].as_str().unwrap().contains("malformed"),
        "{body}"
    );
}

#[tokio::test]
async fn read_only_mode_mounts_no_writing_route() {
    let (_, store) = app().await;
    let id = ServiceId::new(ServiceKind::Edge, ulid_from_parts(1, 2));
    let state = HubState::new(store, Arc::new(MemoryBlobStore::new()), id);
    let edge = waybill_http::artifactory::source::routes(
        waybill_http::artifactory::source::Mode::ReadOnly,
    )
    .layer(axum::middleware::from_fn_with_state(
        state.clone(),
        waybill_http::auth::require_auth,
    ))
    .with_state(state);
    let admin = Some(basic("admin", "root-pw"));
    for (method, path) in [
        ("PUT", "/artifactory/libs/a.txt"),
        ("DELETE", "/artifactory/libs/a.txt"),
        ("PUT", "/artifactory/api/repositories/libs"),
        ("DELETE", "/artifactory/api/repositories/libs"),
        ("PUT", "/artifactory/api/storage/libs/a.txt?properties=a=b"),
    ] {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", admin.clone().unwrap());
        let res = edge
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
    }
    let (status, _) = call(&edge, "GET", "/artifactory/api/repositories", admin.clone()).await;
    assert_eq!(status, StatusCode::OK, "reads stay available");
}
