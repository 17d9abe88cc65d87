//! Request bodies through the real router, as an admin: bundle create and
//! update, distribute, delete from edges, abort, permissions, groups, users,
//! the scan policy, edge registration and AQL. The first byte picks the
//! endpoint, the rest is the body. Whatever it is, the answer is not a 5xx.
#![no_main]

use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::http::{Method, Request};
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use waybill_core::auth::{PasswordHash, User};
use waybill_core::memory::{MemoryBlobStore, MemoryStore};
use waybill_core::site::{ServiceId, ServiceKind, ulid_from_parts};
use waybill_core::store::UserRepo;

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
});

const PASSWORD: &str = "fuzz-admin-password";

static APP: LazyLock<axum::Router> = LazyLock::new(|| {
    let store = Arc::new(MemoryStore::new());
    RT.block_on(async {
        store
            .create_user(User {
                name: "admin".into(),
                password_hash: PasswordHash::create(PASSWORD, [7; 16]).unwrap(),
                admin: true,
                email: None,
                groups: vec![],
                created: 1,
            })
            .await
            .unwrap();
    });
    let id = ServiceId::new(ServiceKind::Distribution, ulid_from_parts(1, 2));
    waybill_http::router(waybill_http::HubState::new(
        store,
        Arc::new(MemoryBlobStore::new()),
        id,
    ))
});

const ENDPOINTS: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/distribution/api/v1/release_bundle",
        "application/json",
    ),
    (
        "PUT",
        "/distribution/api/v1/release_bundle/app/1.0",
        "application/json",
    ),
    (
        "POST",
        "/distribution/api/v1/distribution/app/1.0",
        "application/json",
    ),
    (
        "POST",
        "/distribution/api/v1/distribution/app/1.0/delete",
        "application/json",
    ),
    (
        "PUT",
        "/distribution/api/v1/security/permissions/p",
        "application/json",
    ),
    (
        "PUT",
        "/distribution/api/v1/security/groups/g",
        "application/json",
    ),
    (
        "PUT",
        "/distribution/api/v1/security/users/u",
        "application/json",
    ),
    (
        "PUT",
        "/distribution/api/v1/scan_policy",
        "application/json",
    ),
    (
        "POST",
        "/distribution/api/v1/security/token",
        "application/x-www-form-urlencoded",
    ),
    ("POST", "/artifactory/api/search/aql", "text/plain"),
    (
        "POST",
        "/distribution/api/v1/release_bundle/app/1.0/sign",
        "application/json",
    ),
    (
        "PUT",
        "/artifactory/api/repositories/libs",
        "application/json",
    ),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let (method, path, ctype) = ENDPOINTS[usize::from(pick) % ENDPOINTS.len()];
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{PASSWORD}"));
    let req = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header("authorization", format!("Basic {auth}"))
        .header("content-type", ctype)
        .body(Body::from(body.to_vec()))
        .unwrap();
    let res = RT.block_on(APP.clone().oneshot(req)).unwrap();
    assert!(
        !res.status().is_server_error(),
        "{method} {path}: {} for {:?}",
        res.status(),
        String::from_utf8_lossy(body)
    );
});
