//! Edge registration in JFrog Mission Control's JPD shape, under
//! `/mc/api/v1/jpds` (admin only). Registering checks that the edge answers
//! at its URL and accepts the pairing token, takes the edge's own service id
//! as the site id, and sends it the hub's current signing public key.
//! Pairing tokens are stored but never returned.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use waybill_core::auth::Secret;
use waybill_core::rules::{RuleSet, SiteIndex};
use waybill_core::site::{EdgeSite, Position, ServiceId};
use waybill_core::store::Store;

use crate::Caller;
use crate::{ApiError, AppState, Json};

/// The registered sites with their selection index, rebuilt only when the
/// site list changes (registration, deletion) rather than on every
/// distribution: building the index costs several selections.
#[derive(Clone, Debug, Default)]
pub struct SiteCache(Arc<Mutex<CacheState>>);

#[derive(Debug, Default)]
struct CacheState {
    /// Bumped by every change; a build started before a change is not kept.
    generation: u64,
    current: Option<Arc<IndexedSites>>,
}

/// Every registered site and its [`SiteIndex`].
#[derive(Debug)]
pub struct IndexedSites {
    /// The sites, in store order.
    pub sites: Vec<EdgeSite>,
    /// Their index, position for position.
    pub index: SiteIndex,
}

impl IndexedSites {
    /// The sites `rules` select.
    pub fn select(&self, rules: &RuleSet) -> Vec<EdgeSite> {
        rules
            .select_in(&self.index)
            .into_iter()
            .map(|i| self.sites[i].clone())
            .collect()
    }
}

impl SiteCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // The state is two plain fields, consistent at every await-free step.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current sites and index, built from the store when stale.
    pub async fn get(&self, store: &dyn Store) -> Result<Arc<IndexedSites>, ApiError> {
        let generation = {
            let state = self.lock();
            if let Some(current) = &state.current {
                return Ok(current.clone());
            }
            state.generation
        };
        let sites = store.list_sites().await?;
        let built = tokio::task::spawn_blocking(move || {
            let index = SiteIndex::new(&sites);
            Arc::new(IndexedSites { sites, index })
        })
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "indexing the edge sites failed",
            )
        })?;
        let mut state = self.lock();
        if state.generation == generation {
            state.current = Some(built.clone());
        }
        Ok(built)
    }

    /// Forgets the index; call after every change to the site list.
    pub fn invalidate(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.current = None;
    }
}

#[derive(Deserialize)]
pub(crate) struct Location {
    city_name: String,
    country_code: String,
    #[serde(default)]
    latitude: Option<f64>,
    #[serde(default)]
    longitude: Option<f64>,
}

impl Location {
    /// Both coordinates or neither, each in range; a 400 naming the problem.
    fn position(&self) -> Result<Option<Position>, ApiError> {
        match (self.latitude, self.longitude) {
            (None, None) => Ok(None),
            (Some(lat), Some(lon)) => Position::from_degrees(lat, lon).map(Some).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "location.latitude must be within ±90 and location.longitude within ±180, not {lat}, {lon}"
                ))
            }),
            _ => Err(ApiError::bad_request(
                "location.latitude and location.longitude go together; give both or neither",
            )),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct JpdBody {
    name: String,
    url: String,
    token: String,
    location: Location,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
struct EdgeInfo {
    service_id: String,
}

fn jpd_json(s: &EdgeSite, status: &str) -> Value {
    json!({
        "id": s.service_id.as_str(),
        "service_id": s.service_id.as_str(),
        "name": s.name,
        "url": s.url,
        "type": "edge",
        "status": status,
        "location": match s.position {
            Some(p) => json!({"city_name": s.city_name, "country_code": s.country_code,
                              "latitude": p.latitude(), "longitude": p.longitude()}),
            None => json!({"city_name": s.city_name, "country_code": s.country_code}),
        },
        "tags": s.tags,
    })
}

fn validate(body: &JpdBody) -> Result<(), ApiError> {
    let bad = |what: &str| ApiError::bad_request(what.to_string());
    if body.name.trim().is_empty()
        || body.name.chars().count() > 128
        || body.name.chars().any(char::is_control)
    {
        return Err(bad(
            "name must be 1 to 128 characters without control characters",
        ));
    }
    if !(body.url.starts_with("http://") || body.url.starts_with("https://")) {
        return Err(bad("url must start with http:// or https://"));
    }
    if body.token.is_empty() {
        return Err(bad("token is required: the edge's pairing token"));
    }
    let cc = &body.location.country_code;
    if cc.len() != 2 || !cc.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(bad(
            "location.country_code must be a two-letter ISO 3166 code",
        ));
    }
    if body.location.city_name.trim().is_empty() {
        return Err(bad("location.city_name is required"));
    }
    body.location.position()?;
    Ok(())
}

/// Why an edge did not prove itself.
enum Unproven {
    /// No answer, or not an answer from a Waybill edge.
    Unreachable(String),
    /// It answered, but refused the pairing token.
    Refused,
}

/// Asks the edge at `url` who it is, presenting the token.
async fn ask(
    state: &AppState,
    url: &str,
    token: &str,
    timeout: Option<Duration>,
) -> Result<ServiceId, Unproven> {
    let mut req = state
        .http
        .get(format!(
            "{}/waybill/api/v1/edge/info",
            url.trim_end_matches('/')
        ))
        .bearer_auth(token);
    if let Some(t) = timeout {
        req = req.timeout(t);
    }
    let res = req
        .send()
        .await
        .map_err(|e| Unproven::Unreachable(format!("the edge does not answer at {url}: {e}")))?;
    match res.status() {
        StatusCode::OK => {}
        StatusCode::UNAUTHORIZED => return Err(Unproven::Refused),
        other => {
            return Err(Unproven::Unreachable(format!(
                "the edge at {url} answered {other}"
            )));
        }
    }
    let info: EdgeInfo = res
        .json()
        .await
        .map_err(|e| Unproven::Unreachable(format!("the edge at {url} sent no edge info: {e}")))?;
    ServiceId::parse(info.service_id)
        .map_err(|e| Unproven::Unreachable(format!("the edge at {url} sent a bad id: {e}")))
}

/// How long registration waits for an edge, in all: an address that
/// accepts and never answers must not hang the request (or shutdown).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the edge who it is, presenting the token; a 400 when it does not
/// prove itself. The reason goes to the log only: the caller learns nothing
/// about how some other service at that address answered.
async fn probe(state: &AppState, url: &str, token: &str) -> Result<ServiceId, ApiError> {
    ask(state, url, token, Some(REGISTER_TIMEOUT))
        .await
        .map_err(|e| {
            let why = match e {
                Unproven::Refused => "it refused the pairing token".to_string(),
                Unproven::Unreachable(why) => why,
            };
            tracing::warn!(%url, %why, "registration: the edge did not prove itself");
            ApiError::bad_request(format!(
                "no Waybill edge accepting this pairing token answered at {url} \
                 (the hub's log says why)"
            ))
        })
}

/// How long a status check waits for an edge: a listing must not hang on
/// one dead site.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// A registered edge's status, checked now: `ONLINE` when it answers as
/// itself to its token, `UNAUTHORIZED` when it refuses the token or answers
/// as another edge, `OFFLINE` otherwise; with the reason when not online.
async fn health(state: &AppState, site: &EdgeSite) -> (&'static str, Option<String>) {
    match ask(
        state,
        &site.url,
        site.pairing_token.expose(),
        Some(HEALTH_TIMEOUT),
    )
    .await
    {
        Ok(id) if id == site.service_id => ("ONLINE", None),
        Ok(other) => (
            "UNAUTHORIZED",
            Some(format!("{} now answers as {other}", site.url)),
        ),
        Err(Unproven::Refused) => (
            "UNAUTHORIZED",
            Some(format!(
                "the edge at {} refused the pairing token",
                site.url
            )),
        ),
        Err(Unproven::Unreachable(why)) => ("OFFLINE", Some(why)),
    }
}

/// A site as JPD JSON, with its status checked now.
async fn checked_json(state: &AppState, site: &EdgeSite) -> Value {
    let (status, why) = health(state, site).await;
    let mut v = jpd_json(site, status);
    if let Some(why) = why {
        v["status_message"] = json!(why);
    }
    v
}

/// Sends the hub's current public signing key to one edge.
pub(crate) async fn push_key(state: &AppState, site: &EdgeSite) -> Result<(), String> {
    let Some(key) = state.store.default_key().await.map_err(|e| e.to_string())? else {
        return Err("the hub has no signing key yet".into());
    };
    push_key_material(state, site, &key.public_key).await
}

/// Sends a public key to one edge.
pub(crate) async fn push_key_material(
    state: &AppState,
    site: &EdgeSite,
    public_key: &str,
) -> Result<(), String> {
    let res = state
        .http
        .put(format!(
            "{}/waybill/api/v1/edge/key",
            site.url.trim_end_matches('/')
        ))
        .timeout(REGISTER_TIMEOUT)
        .bearer_auth(site.pairing_token.expose())
        .json(&json!({"public_key": public_key}))
        .send()
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    if res.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", res.status()))
    }
}

async fn save(state: &AppState, body: JpdBody, id: ServiceId) -> Result<EdgeSite, ApiError> {
    let position = body.location.position()?;
    let site = EdgeSite {
        service_id: id,
        name: body.name,
        city_name: body.location.city_name,
        country_code: body.location.country_code.to_ascii_uppercase(),
        url: body.url.trim_end_matches('/').to_string(),
        pairing_token: Secret::new(body.token),
        tags: body.tags,
        position,
    };
    let saved = state.store.put_site(site.clone()).await;
    state.sites.invalidate();
    match saved {
        Ok(()) => Ok(site),
        Err(e) if e.kind() == waybill_core::StoreErrorKind::Conflict => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("another edge is already registered as '{}'", site.name),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `POST /mc/api/v1/jpds`: 201 for a new edge, 200 when the same edge registers again.
pub(crate) async fn register(
    State(state): State<AppState>,
    Caller(who): Caller,
    Json(body): Json<JpdBody>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    validate(&body)?;
    let id = probe(&state, &body.url, &body.token).await?;
    let existing = state.store.get_site(&id).await?;
    // An address answering with a registered edge's id is that edge only
    // if it holds that edge's pairing token; otherwise it would take over
    // the site's record and receive the signing key.
    if let Some(site) = &existing
        && !waybill_core::auth::constant_time_eq(
            site.pairing_token.expose().as_bytes(),
            body.token.as_bytes(),
        )
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "an edge is already registered as {id}; re-registering it needs its own pairing token"
            ),
        ));
    }
    let existed = existing.is_some();
    let site = save(&state, body, id).await?;
    let status = match push_key(&state, &site).await {
        Ok(()) => "ONLINE",
        Err(why) => {
            tracing::warn!(site = %site.name, %why, "signing key not sent to the new edge");
            "ONLINE_WITHOUT_KEY"
        }
    };
    tracing::info!(site = %site.name, id = %site.service_id, "edge registered");
    let code = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((code, axum::Json(jpd_json(&site, status))).into_response())
}

/// `GET /mc/api/v1/jpds`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let sites = state.store.list_sites().await?;
    // Checked a few at a time, in order: dead edges wait out their timeouts
    // together, not one after another. Owned inputs: futures that borrow
    // across `.await` defeat Send inference.
    let checks = sites.into_iter().map(|site| {
        let state = state.clone();
        async move { checked_json(&state, &site).await }
    });
    let listed: Vec<Value> = futures_util::stream::iter(checks)
        .buffered(16)
        .collect()
        .await;
    Ok(axum::Json(listed).into_response())
}

fn parse_id(raw: &str) -> Result<ServiceId, ApiError> {
    ServiceId::parse(raw).map_err(|_| ApiError::not_found(format!("no edge has id '{raw}'")))
}

/// `GET /mc/api/v1/jpds/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let site = state
        .store
        .get_site(&parse_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no edge has id '{id}'")))?;
    Ok(axum::Json(checked_json(&state, &site).await).into_response())
}

/// `PUT /mc/api/v1/jpds/{id}`: re-checks the edge, which must still be the same one.
pub(crate) async fn update(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    Json(body): Json<JpdBody>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let id = parse_id(&id)?;
    state
        .store
        .get_site(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no edge has id '{id}'")))?;
    validate(&body)?;
    let answered = probe(&state, &body.url, &body.token).await?;
    if answered != id {
        return Err(ApiError::bad_request(format!(
            "the edge at {} is {answered}, not {id}",
            body.url
        )));
    }
    let site = save(&state, body, id).await?;
    Ok(axum::Json(jpd_json(&site, "ONLINE")).into_response())
}

/// `DELETE /mc/api/v1/jpds/{id}`.
pub(crate) async fn remove(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let deleted = state.store.delete_site(&parse_id(&id)?).await;
    state.sites.invalidate();
    if !deleted? {
        return Err(ApiError::not_found(format!("no edge has id '{id}'")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
