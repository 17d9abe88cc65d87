//! Edge sites: registration (the edge must prove itself), the site list
//! with its selection index, health checks, and pushing the signing key.
//! Pairing tokens are stored but never returned.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use waybill_core::auth::{Secret, constant_time_eq};
use waybill_core::rules::{RuleSet, SiteIndex};
use waybill_core::site::{EdgeSite, Position, ServiceId};
use waybill_core::store::Store;

use crate::delivery::{EdgeTransport, Unproven};
use crate::{Error, Principal};

/// How long registration waits for an edge, in all: an address that
/// accepts and never answers must not hang the request (or shutdown).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a status check waits for an edge: a listing must not hang on
/// one dead site.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// Edges checked at once in a listing.
const HEALTH_CONCURRENCY: usize = 16;

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

/// The registered sites with their selection index, rebuilt only when the
/// site list changes (registration, deletion) rather than on every
/// distribution: building the index costs several selections.
#[derive(Clone, Debug, Default)]
struct SiteCache(Arc<Mutex<CacheState>>);

#[derive(Debug, Default)]
struct CacheState {
    /// Bumped by every change; a build started before a change is not kept.
    generation: u64,
    current: Option<Arc<IndexedSites>>,
}

impl SiteCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // The state is two plain fields, consistent at every await-free step.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn get(&self, store: &dyn Store) -> Result<Arc<IndexedSites>, Error> {
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
        .map_err(|_| Error::internal("indexing the edge sites failed"))?;
        let mut state = self.lock();
        if state.generation == generation {
            state.current = Some(built.clone());
        }
        Ok(built)
    }

    fn invalidate(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.current = None;
    }
}

/// An edge as a registration states it.
#[derive(Clone, Debug, Default)]
pub struct SiteRegistration {
    /// Display name, unique among sites.
    pub name: String,
    /// Where the edge answers.
    pub url: String,
    /// The edge's pairing token.
    pub token: String,
    /// City.
    pub city_name: String,
    /// Two-letter ISO 3166 country code.
    pub country_code: String,
    /// Degrees north; with `longitude` or not at all.
    pub latitude: Option<f64>,
    /// Degrees east; with `latitude` or not at all.
    pub longitude: Option<f64>,
    /// Free-form tags.
    pub tags: Vec<String>,
}

impl SiteRegistration {
    /// Both coordinates or neither, each in range.
    fn position(&self) -> Result<Option<Position>, Error> {
        match (self.latitude, self.longitude) {
            (None, None) => Ok(None),
            (Some(lat), Some(lon)) => Position::from_degrees(lat, lon).map(Some).ok_or_else(|| {
                Error::invalid(format!(
                    "location.latitude must be within ±90 and location.longitude within ±180, not {lat}, {lon}"
                ))
            }),
            _ => Err(Error::invalid(
                "location.latitude and location.longitude go together; give both or neither",
            )),
        }
    }

    fn validate(&self) -> Result<(), Error> {
        if self.name.trim().is_empty()
            || self.name.chars().count() > 128
            || self.name.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "name must be 1 to 128 characters without control characters",
            ));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(Error::invalid("url must start with http:// or https://"));
        }
        if self.token.is_empty() {
            return Err(Error::invalid(
                "token is required: the edge's pairing token",
            ));
        }
        let cc = &self.country_code;
        if cc.len() != 2 || !cc.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(Error::invalid(
                "location.country_code must be a two-letter ISO 3166 code",
            ));
        }
        if self.city_name.trim().is_empty() {
            return Err(Error::invalid("location.city_name is required"));
        }
        self.position()?;
        Ok(())
    }
}

/// A site as registration left it.
#[derive(Clone, Debug)]
pub struct Registered {
    /// The site.
    pub site: EdgeSite,
    /// Whether it was registered before (the same edge again).
    pub existed: bool,
    /// Whether the hub's signing key reached it.
    pub key_sent: bool,
}

/// An edge's status, checked now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// It answers as itself to its token.
    Online,
    /// It refuses the token, or answers as another edge; why.
    Unauthorized(String),
    /// It does not answer; why.
    Offline(String),
}

/// One edge's part of a key propagation.
#[derive(Clone, Debug)]
pub struct KeyPush {
    /// The edge.
    pub site: EdgeSite,
    /// Why the key did not reach it, if it did not.
    pub error: Option<String>,
}

/// The sites' use-cases. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Sites {
    store: Arc<dyn Store>,
    transport: Arc<dyn EdgeTransport>,
    cache: SiteCache,
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("no edge has id '{id}'"))
}

impl Sites {
    /// The sites in `store`, reached through `transport`.
    pub fn new(store: Arc<dyn Store>, transport: Arc<dyn EdgeTransport>) -> Sites {
        Sites {
            store,
            transport,
            cache: SiteCache::default(),
        }
    }

    /// The transport edges are reached through.
    pub fn transport(&self) -> &Arc<dyn EdgeTransport> {
        &self.transport
    }

    /// The registered sites and their index (cached until the list changes).
    pub async fn indexed(&self) -> Result<Arc<IndexedSites>, Error> {
        self.cache.get(self.store.as_ref()).await
    }

    /// Asks the edge who it is; invalid when it does not prove itself. The
    /// reason goes to the log only: the caller learns nothing about how
    /// some other service at that address answered.
    async fn probe(&self, url: &str, token: &str) -> Result<ServiceId, Error> {
        self.transport
            .identify(url, &Secret::new(token), REGISTER_TIMEOUT)
            .await
            .map_err(|e| {
                let why = match e {
                    Unproven::Refused => "it refused the pairing token".to_string(),
                    Unproven::Unreachable(why) => why,
                };
                tracing::warn!(%url, %why, "registration: the edge did not prove itself");
                Error::invalid(format!(
                    "no Waybill edge accepting this pairing token answered at {url} \
                     (the hub's log says why)"
                ))
            })
    }

    /// An edge's status, checked now.
    pub async fn health(&self, site: &EdgeSite) -> Health {
        match self
            .transport
            .identify(&site.url, &site.pairing_token, HEALTH_TIMEOUT)
            .await
        {
            Ok(id) if id == site.service_id => Health::Online,
            Ok(other) => Health::Unauthorized(format!("{} now answers as {other}", site.url)),
            Err(Unproven::Refused) => Health::Unauthorized(format!(
                "the edge at {} refused the pairing token",
                site.url
            )),
            Err(Unproven::Unreachable(why)) => Health::Offline(why),
        }
    }

    /// Sends the hub's current public signing key to one edge.
    async fn push_key(&self, site: &EdgeSite) -> Result<(), String> {
        let Some(key) = self.store.default_key().await.map_err(|e| e.to_string())? else {
            return Err("the hub has no signing key yet".into());
        };
        self.transport.install_key(site, &key.public_key).await
    }

    /// Sends `public_key` to every registered edge, reporting per edge.
    pub(crate) async fn push_key_to_all(&self, public_key: &str) -> Result<Vec<KeyPush>, Error> {
        let mut out = Vec::new();
        for site in self.store.list_sites().await? {
            let error = self.transport.install_key(&site, public_key).await.err();
            out.push(KeyPush { site, error });
        }
        Ok(out)
    }

    async fn save(&self, reg: SiteRegistration, id: ServiceId) -> Result<EdgeSite, Error> {
        let position = reg.position()?;
        let site = EdgeSite {
            service_id: id,
            name: reg.name,
            city_name: reg.city_name,
            country_code: reg.country_code.to_ascii_uppercase(),
            url: reg.url.trim_end_matches('/').to_string(),
            pairing_token: Secret::new(reg.token),
            tags: reg.tags,
            position,
        };
        let saved = self.store.put_site(site.clone()).await;
        self.cache.invalidate();
        match saved {
            Ok(()) => Ok(site),
            Err(e) if e.kind() == waybill_core::StoreErrorKind::Conflict => Err(Error::conflict(
                format!("another edge is already registered as '{}'", site.name),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Registers the edge that proves itself at `reg.url` with `reg.token`,
    /// under its own service id, and sends it the signing key (admin only).
    pub async fn register(
        &self,
        who: &Principal,
        reg: SiteRegistration,
    ) -> Result<Registered, Error> {
        who.require_admin()?;
        reg.validate()?;
        let id = self.probe(&reg.url, &reg.token).await?;
        let existing = self.store.get_site(&id).await?;
        // An address answering with a registered edge's id is that edge only
        // if it holds that edge's pairing token; otherwise it would take over
        // the site's record and receive the signing key.
        if let Some(site) = &existing
            && !constant_time_eq(site.pairing_token.expose().as_bytes(), reg.token.as_bytes())
        {
            return Err(Error::conflict(format!(
                "an edge is already registered as {id}; re-registering it needs its own pairing token"
            )));
        }
        let existed = existing.is_some();
        let site = self.save(reg, id).await?;
        let key_sent = match self.push_key(&site).await {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(site = %site.name, %why, "signing key not sent to the new edge");
                false
            }
        };
        tracing::info!(site = %site.name, id = %site.service_id, "edge registered");
        Ok(Registered {
            site,
            existed,
            key_sent,
        })
    }

    /// Every site with its status, checked now, a few at a time (admin only).
    pub async fn list(&self, who: &Principal) -> Result<Vec<(EdgeSite, Health)>, Error> {
        who.require_admin()?;
        let sites = self.store.list_sites().await?;
        // In order: dead edges wait out their timeouts together, not one
        // after another. Owned inputs keep the futures Send.
        let checks = sites.into_iter().map(|site| {
            let this = self.clone();
            async move {
                let health = this.health(&site).await;
                (site, health)
            }
        });
        Ok(futures_util::stream::iter(checks)
            .buffered(HEALTH_CONCURRENCY)
            .collect()
            .await)
    }

    /// Site `id` with its status (admin only).
    pub async fn get(&self, who: &Principal, id: &str) -> Result<(EdgeSite, Health), Error> {
        who.require_admin()?;
        let sid = ServiceId::parse(id).map_err(|_| not_found(id))?;
        let site = self
            .store
            .get_site(&sid)
            .await?
            .ok_or_else(|| not_found(id))?;
        let health = self.health(&site).await;
        Ok((site, health))
    }

    /// Replaces site `id`'s record; the edge at the new address must still
    /// be the same one (admin only).
    pub async fn update(
        &self,
        who: &Principal,
        id: &str,
        reg: SiteRegistration,
    ) -> Result<EdgeSite, Error> {
        who.require_admin()?;
        let sid = ServiceId::parse(id).map_err(|_| not_found(id))?;
        self.store
            .get_site(&sid)
            .await?
            .ok_or_else(|| not_found(id))?;
        reg.validate()?;
        let answered = self.probe(&reg.url, &reg.token).await?;
        if answered != sid {
            return Err(Error::invalid(format!(
                "the edge at {} is {answered}, not {sid}",
                reg.url
            )));
        }
        self.save(reg, sid).await
    }

    /// Unregisters site `id` (admin only).
    pub async fn remove(&self, who: &Principal, id: &str) -> Result<(), Error> {
        who.require_admin()?;
        let sid = ServiceId::parse(id).map_err(|_| not_found(id))?;
        let deleted = self.store.delete_site(&sid).await;
        self.cache.invalidate();
        if !deleted? {
            return Err(not_found(id));
        }
        Ok(())
    }
}
