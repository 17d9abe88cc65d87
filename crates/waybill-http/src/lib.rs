//! Waybill's HTTP adapter: JFrog Distribution's REST surface on axum.
//!
//! This crate owns the wire: the DTOs in [`dto`], the mapping from core
//! errors to statuses in [`error`], and authentication in [`auth`]. Handlers
//! translate wire JSON to core types by hand, so the core never learns a wire
//! format. Build the hub's router with [`router`] over a [`HubState`], and an
//! edge's with [`edge_router`] over an [`EdgeState`].

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, FromRequest, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use waybill_app::source::Source;
use waybill_app::system::System;
use waybill_app::{Hub, Node};
use waybill_core::site::ServiceId;
use waybill_core::store::{BlobStore, Store};
use waybill_edge::Edge;

pub mod artifactory;
pub mod auth;
pub mod edge;
pub mod error;
mod mc;
pub mod server;
mod v1;

use artifactory::{apikeys, source};
use mc::jpds as sites;
pub(crate) use v1::dto;
use v1::{authz, bundles, distribute, keys, migration, renders, security, support_bundle, system};

pub use waybill_app::support::LogRing;

pub use auth::{Caller, Principal};
pub use error::ApiError;
pub use waybill_app::security::Security;

/// The hub's state: every use-case of the hub, and the wire's read caches.
/// It dereferences to the [`Hub`], so handlers write `state.bundles.sign(…)`;
/// it holds no store, so handlers cannot reach one. One `Arc` inside: axum
/// clones the state for every request, and a `Hub` is many handles deep.
#[derive(Clone, Debug)]
pub struct HubState(Arc<HubInner>);

#[derive(Debug)]
struct HubInner {
    hub: Hub,
    /// Rendered release-bundle reads (see `renders`).
    renders: renders::Renders,
}

impl std::ops::Deref for HubState {
    type Target = Hub;

    fn deref(&self) -> &Hub {
        &self.0.hub
    }
}

impl HubState {
    /// A hub over a store and blob store, reaching edges over HTTP.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        service_id: ServiceId,
    ) -> HubState {
        let transport = Arc::new(edge::client::HttpEdgeTransport::default());
        let config = waybill_app::HubConfig::new(service_id, transport);
        HubState::from(Hub::new(store, blobs, config))
    }

    /// The rendered-read cache.
    pub(crate) fn renders(&self) -> &renders::Renders {
        &self.0.renders
    }
}

impl From<Hub> for HubState {
    fn from(hub: Hub) -> HubState {
        HubState(Arc::new(HubInner {
            renders: renders::Renders::new(hub.bundles.epoch().clone()),
            hub,
        }))
    }
}

impl FromRef<HubState> for Source {
    fn from_ref(s: &HubState) -> Source {
        s.source.clone()
    }
}

impl FromRef<HubState> for Security {
    fn from_ref(s: &HubState) -> Security {
        s.security.clone()
    }
}

impl FromRef<HubState> for System {
    fn from_ref(s: &HubState) -> System {
        s.system.clone()
    }
}

/// An edge's state: what every node serves, and the edge's own domain.
/// It carries none of the hub's fields.
#[derive(Clone, Debug)]
pub struct EdgeState {
    node: Node,
    edge: Edge,
}

impl EdgeState {
    /// An edge over a store and blob store.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        service_id: ServiceId,
        config: edge::EdgeConfig,
    ) -> EdgeState {
        let clock: Arc<dyn waybill_app::Clock> = Arc::new(waybill_app::SystemClock);
        let node = Node::new(
            store.clone(),
            blobs.clone(),
            service_id.clone(),
            clock.clone(),
        );
        // No release-bundle reads are served on edges, so nothing caches them.
        let edge = Edge::new(
            store,
            blobs,
            node.source.clone(),
            clock,
            waybill_app::epoch::Epoch::default(),
            service_id,
            config,
        );
        EdgeState { node, edge }
    }

    /// What this edge shares with every node.
    pub fn node(&self) -> &Node {
        &self.node
    }
}

impl FromRef<EdgeState> for Source {
    fn from_ref(s: &EdgeState) -> Source {
        s.node.source.clone()
    }
}

impl FromRef<EdgeState> for Security {
    fn from_ref(s: &EdgeState) -> Security {
        s.node.security.clone()
    }
}

impl FromRef<EdgeState> for System {
    fn from_ref(s: &EdgeState) -> System {
        s.node.system.clone()
    }
}

/// The server version reported by `system/info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The whole HTTP surface.
pub fn router(state: HubState) -> Router {
    let anonymous = Router::new()
        .route("/distribution/api/v1/system/ping", get(system::ping))
        .route("/distribution/api/v1/system/info", get(system::info))
        .merge(source::anonymous_routes());
    // `layer` (not `route_layer`) also guards the fallback, so probing
    // unknown paths without credentials reveals nothing.
    let authenticated = Router::new()
        .route(
            "/distribution/api/v1/system/settings",
            get(system::get_settings).post(system::update_settings),
        )
        .route(
            "/distribution/api/v1/release_bundle",
            get(bundles::list_all).post(bundles::create),
        )
        .route(
            "/distribution/api/v1/release_bundle/{name}",
            get(bundles::list_bundle).delete(bundles::delete_bundle),
        )
        .route(
            "/distribution/api/v1/release_bundle/distribution",
            get(distribute::status_all),
        )
        .route(
            "/distribution/api/v1/release_bundle/{name}/distribution",
            get(distribute::status_bundle),
        )
        .route(
            "/distribution/api/v1/release_bundle/{name}/{version}/distribution",
            get(distribute::status_version),
        )
        .route(
            "/distribution/api/v1/release_bundle/{name}/{version}/distribution/{id}",
            get(distribute::status_tracker),
        )
        .route(
            "/distribution/api/v1/distribution/{name}/{version}",
            post(distribute::distribute),
        )
        .route(
            "/distribution/api/v1/distribution/{name}/{version}/abort",
            put(distribute::abort),
        )
        .route(
            "/distribution/api/v1/distribution/{name}/{version}/delete",
            post(distribute::delete_from_edges),
        )
        .route("/mc/api/v1/jpds", get(sites::list).post(sites::register))
        .route(
            "/distribution/api/v1/security/token",
            get(security::list_tokens).post(security::create_token),
        )
        .route(
            "/distribution/api/v1/security/token/revoke",
            post(security::revoke_token),
        )
        .route(
            "/distribution/api/v1/security/users",
            get(security::list_users),
        )
        .route(
            "/distribution/api/v1/security/users/{name}",
            get(security::get_user)
                .put(security::put_user)
                .delete(security::delete_user),
        )
        .route(
            "/distribution/api/v1/security/permissions",
            get(authz::list_permissions),
        )
        .route(
            "/distribution/api/v1/security/permissions/{name}",
            get(authz::get_permission)
                .put(authz::put_permission)
                .delete(authz::delete_permission),
        )
        .route(
            "/distribution/api/v1/security/groups",
            get(authz::list_groups),
        )
        .route(
            "/distribution/api/v1/security/groups/{name}",
            get(authz::get_group)
                .put(authz::put_group)
                .delete(authz::delete_group),
        )
        .route(
            "/mc/api/v1/jpds/{id}",
            get(sites::get).put(sites::update).delete(sites::remove),
        )
        .route(
            "/distribution/api/v1/release_bundle/{name}/{version}",
            get(bundles::get_version)
                .put(bundles::update)
                .delete(bundles::delete_version),
        )
        .route(
            "/distribution/api/v1/release_bundle/{name}/{version}/sign",
            post(bundles::sign),
        )
        .route(
            "/distribution/api/v1/release_bundle/{name}/{version}/trigger_xray_scan",
            post(bundles::trigger_scan),
        )
        .route(
            "/distribution/api/v1/keys/{proto}",
            get(keys::get).post(keys::upload).put(keys::put_flat),
        )
        .route(
            "/artifactory/api/security/apiKey",
            get(apikeys::get)
                .post(apikeys::create)
                .put(apikeys::regenerate)
                .delete(apikeys::delete),
        )
        .route(
            "/artifactory/api/security/token",
            post(security::create_token),
        )
        .route("/access/api/v1/tokens", post(security::create_access_token))
        .route(
            "/artifactory/access/api/v1/tokens",
            post(security::create_access_token),
        )
        .route(
            "/artifactory/api/security/lockedUsers",
            get(security::locked_users),
        )
        .route(
            "/artifactory/api/security/unlockUsers/{name}",
            post(security::unlock_user),
        )
        .route(
            "/distribution/api/v1/system/support/bundle",
            post(support_bundle::create),
        )
        .route(
            "/distribution/api/v1/system/support/bundle/{id}",
            get(support_bundle::info)
                .put(support_bundle::create_with_id)
                .delete(support_bundle::delete),
        )
        .route(
            "/distribution/api/v1/system/support/bundle/{id}/archive",
            get(support_bundle::archive),
        )
        .route(
            "/distribution/api/v1/system/support/bundles",
            get(support_bundle::list),
        )
        .route(
            "/distribution/api/v1/system/migration/import_export/source_artifactories",
            post(migration::source_artifactories),
        )
        // As seed 003 writes it, without `/api`.
        .route(
            "/distribution/v1/system/migration/import_export/source_artifactories",
            post(migration::source_artifactories),
        )
        .route(
            "/distribution/api/v1/system/migration/export/{source_id}",
            post(migration::export),
        )
        .route(
            IMPORT_PATH,
            post(migration::import).layer(DefaultBodyLimit::max(migration::IMPORT_LIMIT)),
        )
        .route(
            "/distribution/api/v1/keys/{proto}/propagate",
            post(keys::propagate),
        )
        // The JFrog client's double slash, served as is: a redirect would turn PUT into GET.
        .route("/distribution//api/v1/keys/pgp", put(keys::put_flat_pgp))
        .route(
            "/distribution/api/v1/scan_policy",
            get(bundles::get_policy).put(bundles::put_policy),
        )
        .merge(source::routes(source::Mode::ReadWrite))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.security.clone(),
            auth::require_auth,
        ));
    Router::new()
        .merge(anonymous)
        .merge(authenticated)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(refuse_large_bodies))
        .layer(middleware::from_fn(error::wire_errors))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// A body announced over [`BODY_LIMIT`] is refused before any of it is read
/// (streamed deploys excepted), so the client reads a 413 instead of
/// losing it to a connection reset mid-upload. Bodies without a length
/// meet the same limit in the extractors.
async fn refuse_large_bodies(req: Request, next: Next) -> Response {
    // A deploy is `PUT` under the Artifactory prefix, outside its `api`.
    let mut segments = req.uri().path().trim_start_matches('/').split('/');
    let streamed = req.method() == axum::http::Method::PUT
        && segments.next() == Some("artifactory")
        && segments.next().is_some_and(|s| s != "api");
    let limit = if req.uri().path() == IMPORT_PATH {
        migration::IMPORT_LIMIT
    } else {
        BODY_LIMIT
    };
    let announced = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        Some(len) if !streamed && len > limit as u64 => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is {len} bytes; at most {limit} are accepted here"),
        )
        .into_response(),
        _ => next.run(req).await,
    }
}

/// Where a migration archive is imported: its body may be larger.
const IMPORT_PATH: &str = "/distribution/api/v1/system/migration/import";

/// The most any buffered request body (JSON, forms, AQL) may hold; streamed
/// deploys and blobs are not buffered and have no such limit. Over it: 413.
pub const BODY_LIMIT: usize = 2 << 20;

/// An edge node's surface: the read-only source API for its users, and the
/// distribution API for its paired hub.
pub fn edge_router(state: EdgeState) -> Router {
    let anonymous = Router::new()
        .route("/distribution/api/v1/system/ping", get(system::ping))
        .merge(source::anonymous_routes());
    let authenticated = Router::new()
        .merge(source::routes(source::Mode::ReadOnly))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.node.security.clone(),
            auth::require_auth,
        ));
    let public = Router::new()
        .merge(anonymous)
        .merge(authenticated)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(refuse_large_bodies))
        .with_state(state.clone());
    edge::api::routes(state.edge)
        .merge(public)
        .layer(middleware::from_fn(error::wire_errors))
        .layer(middleware::from_fn(log_request))
}

/// 405 for a method a route lacks, but only to a caller who may see the
/// route: on protected paths an unauthenticated caller gets 401 first, as
/// for every other request there (`OPTIONS` included).
async fn method_not_allowed(
    axum::extract::State(security): axum::extract::State<Security>,
    req: Request,
) -> Response {
    let path = req.uri().path().to_string();
    let anonymous = ANONYMOUS_PATHS.contains(&path.as_str());
    let method = req.method().clone();
    let refuse = move |_: Request| async move {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}"),
        )
        .into_response()
    };
    if anonymous {
        return refuse(req).await;
    }
    let (credentials, address) = auth::credentials_of(&req);
    match security.authenticate(credentials, address).await {
        Ok(_) => refuse(req).await,
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The paths served without credentials.
const ANONYMOUS_PATHS: [&str; 3] = [
    "/distribution/api/v1/system/ping",
    "/distribution/api/v1/system/info",
    "/artifactory/api/system/ping",
];

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.uri().path()
    ))
}

/// One line per request; never headers or bodies, which may carry secrets.
async fn log_request(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let start = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16();
    let ms = start.elapsed().as_millis() as u64;
    if res.status().is_server_error() {
        tracing::warn!(%method, %path, status, ms, "request");
    } else {
        tracing::info!(%method, %path, status, ms, "request");
    }
    res
}

/// `axum::Json`, but a body that does not parse becomes a 400 in JFrog's
/// error shape naming what was wrong, instead of axum's plain-text 422.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // Like `axum::Json`, only JSON content types (a cross-site form
        // cannot send one); unlike it, the body must be an object: serde
        // would read `[]` as a struct with every field defaulted.
        let json_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
        if !json_type {
            return Err(ApiError::bad_request(
                "invalid JSON body: expected the content type application/json",
            ));
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            // Too large is 413 here as everywhere (one limit, one answer).
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is over {BODY_LIMIT} bytes"),
                ));
            }
            Err(rejection) => {
                return Err(ApiError::bad_request(format!(
                    "reading the request body failed: {}",
                    rejection.body_text()
                )));
            }
        };
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request(
                "invalid JSON body: expected a JSON object ({...})",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
