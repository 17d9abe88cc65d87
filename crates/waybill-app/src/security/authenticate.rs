//! Authentication: who is calling.
//!
//! Basic passwords are checked against the user's argon2id hash. A
//! verification costs tens of milliseconds on purpose, and the JFrog CLI sends
//! Basic on every request, so a success is remembered for a few minutes as an
//! HMAC of the password under a per-process random key (the password itself
//! is never kept). A cached entry only counts while the user's stored hash is
//! unchanged, so a password change takes effect at once.
//!
//! Hashing runs on the blocking pool, never on an async worker.
//!
//! Above that, every credential that authenticated (password, API key or
//! access token, in whichever header) is remembered as the [`Principal`] it
//! proved, keyed by an HMAC of the credentials, so a repeated request costs
//! no store read and no signature check. Entries are stamped with the
//! security epoch: any write that can change what a credential means (a
//! token revoked, a user changed or deleted, an API key replaced, a group or
//! permission edited, a lockout started) bumps it through
//! [`Security::change`], and every older entry stops counting on the next
//! request. A token's entry also ends at the token's expiry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use ring::hmac;
use waybill_core::auth::{PasswordHash, User};
use waybill_core::permissions::Permission;
use waybill_core::site::ServiceId;
use waybill_core::store::Store;

use crate::{Clock, Error, Principal};

/// The credentials a request carried, as text, before any check.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// An `Authorization` value: `Basic <base64>` or `Bearer <token>`.
    pub authorization: Option<String>,
    /// An Artifactory API key sent on its own (`X-JFrog-Art-Api`).
    pub api_key: Option<String>,
}

/// How long a verified Basic credential is remembered.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Cache entries kept at most; the cache is cleared when full.
const CACHE_MAX: usize = 10_000;
/// How long a proven credential is remembered at most, even with no
/// security write in this process: a backstop for writes made elsewhere.
const PRINCIPAL_TTL: Duration = Duration::from_secs(60);

/// (user name, HMAC of the password) -> what was verified, and when.
type CredentialCache = HashMap<(String, Vec<u8>), CacheEntry>;

#[derive(Clone)]
struct CacheEntry {
    phc: String,
    verified: Instant,
}

/// Every stored permission, as read at a security epoch.
type PermissionsAt = (u64, Arc<Vec<Permission>>);

/// A credential that authenticated, as of security epoch `epoch`.
struct Proven {
    principal: Principal,
    epoch: u64,
    until: Instant,
    /// Proven by a password: lockouts still apply on every use.
    password: bool,
}

/// A successful authentication, and when the credential itself expires.
struct Authenticated {
    principal: Principal,
    /// Expiry of an access token, seconds since the epoch.
    expires: Option<u64>,
    /// Whether a password proved it.
    password: bool,
}

impl From<Principal> for Authenticated {
    fn from(principal: Principal) -> Self {
        Authenticated {
            principal,
            expires: None,
            password: false,
        }
    }
}

/// Failed logins tolerated per user name within [`FAILURE_WINDOW`].
const MAX_FAILURES: u32 = 5;
/// Failed logins tolerated per client address within [`FAILURE_WINDOW`]:
/// enough for a few people behind one NAT, too few to guess passwords.
const MAX_ADDRESS_FAILURES: u32 = 30;
/// The window failures are counted in.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a user name or an address is refused after too many failures.
const LOCKOUT: Duration = Duration::from_secs(30);
/// Names and addresses tracked at most, each; live entries are never
/// evicted to make room, so flooding cannot lift someone's lockout.
const TRACKED_MAX: usize = 10_000;
/// Settings key prefix of a lockout's end (wall-clock millis), per user.
const LOCKOUT_SETTING: &str = "security.lockout.";

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
    locked_until: Option<Instant>,
}

impl Failures {
    fn fresh(now: Instant) -> Failures {
        Failures {
            count: 0,
            since: now,
            locked_until: None,
        }
    }

    /// Whether this entry still means anything at `now`.
    fn live(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|u| u > now)
            || now.duration_since(self.since) <= FAILURE_WINDOW
    }

    fn locked_for(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .map(|u| u.saturating_duration_since(now))
            .filter(|d| !d.is_zero())
    }
}

/// Failed logins by user name and by client address, in bounded memory.
#[derive(Default)]
struct Throttle {
    by_name: HashMap<String, Failures>,
    by_address: HashMap<IpAddr, Failures>,
}

/// Counts one failure for `key`; true when it starts a lockout. When the
/// map is full of live entries, a new key is not tracked (the address
/// count still bounds whoever is filling it).
fn count_failure<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Failures>,
    key: K,
    max: u32,
    now: Instant,
) -> bool {
    if map.len() >= TRACKED_MAX && !map.contains_key(&key) {
        map.retain(|_, f| f.live(now));
        if map.len() >= TRACKED_MAX {
            return false;
        }
    }
    let f = map.entry(key).or_insert(Failures::fresh(now));
    if f.locked_for(now).is_some() {
        return false;
    }
    if now.duration_since(f.since) > FAILURE_WINDOW {
        *f = Failures::fresh(now);
    }
    f.count += 1;
    if f.count >= max {
        *f = Failures {
            locked_until: Some(now + LOCKOUT),
            ..Failures::fresh(now)
        };
        return true;
    }
    false
}

/// Security: credentials, permissions, users, groups, tokens and API keys.
/// Cheap to clone; clones share the caches.
#[derive(Clone)]
pub struct Security {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) service_id: ServiceId,
    pub(crate) clock: Arc<dyn Clock>,
    key: Arc<hmac::Key>,
    cache: Arc<Mutex<CredentialCache>>,
    throttle: Arc<Mutex<Throttle>>,
    /// Bumped by every write that can change what a credential proves.
    epoch: crate::epoch::Epoch,
    /// HMAC of the credential headers -> who they proved to be.
    proven: Arc<Mutex<HashMap<Vec<u8>, Proven>>>,
    /// Every stored permission, as of an epoch.
    permissions: Arc<Mutex<Option<PermissionsAt>>>,
    /// Access-token minting and checking.
    pub tokens: super::tokens::Tokens,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security").finish_non_exhaustive()
    }
}

impl Security {
    /// Security over `store`'s users, for the service `service_id`.
    pub fn new(store: Arc<dyn Store>, service_id: ServiceId, clock: Arc<dyn Clock>) -> Security {
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("OS random source");
        Security {
            store,
            service_id,
            clock,
            key: Arc::new(key),
            cache: Arc::default(),
            throttle: Arc::default(),
            epoch: crate::epoch::Epoch::default(),
            proven: Arc::default(),
            permissions: Arc::default(),
            tokens: super::tokens::Tokens::default(),
        }
    }

    /// Forgets every remembered credential and permission when the guard
    /// drops. Take it before any write to users, groups, permissions, tokens
    /// or API keys: it fires after the last write on every path out, early
    /// errors included, and before the answer, so the change holds from the
    /// next request on.
    pub fn change(&self) -> crate::epoch::Change {
        self.epoch.change()
    }

    /// The security epoch, also for caches whose answers depend on permissions.
    pub fn security_epoch(&self) -> u64 {
        self.epoch.now()
    }

    /// Every stored permission, read from the store only after a change.
    pub async fn permissions(&self) -> Result<Arc<Vec<Permission>>, Error> {
        // Read before the store, so a change racing this read makes the
        // entry stale rather than wrong.
        let epoch = self.security_epoch();
        if let Some((at, perms)) = &*self.permissions.lock().unwrap_or_else(|e| e.into_inner())
            && *at == epoch
        {
            return Ok(perms.clone());
        }
        let perms = Arc::new(super::authz::load_from(self.store.as_ref()).await?);
        *self.permissions.lock().unwrap_or_else(|e| e.into_inner()) = Some((epoch, perms.clone()));
        Ok(perms)
    }

    /// The principal `credentials` proved before, if nothing changed since;
    /// a password's lockouts (by name and by address) are checked again.
    fn remembered(&self, tag: &[u8], address: Option<IpAddr>) -> Option<Result<Principal, Error>> {
        let (principal, password) = {
            let proven = self.proven.lock().unwrap_or_else(|e| e.into_inner());
            let hit = proven.get(tag)?;
            if hit.epoch != self.security_epoch() || hit.until <= Instant::now() {
                return None;
            }
            (hit.principal.clone(), hit.password)
        };
        if password && let Err(e) = self.check_lockout(&principal.name, address) {
            return Some(Err(e));
        }
        Some(Ok(principal))
    }

    fn remember(&self, tag: Vec<u8>, epoch: u64, done: &Authenticated) {
        let mut until = Instant::now() + PRINCIPAL_TTL;
        if let Some(exp) = done.expires {
            let left = exp.saturating_sub(self.clock.now_millis() / 1000);
            until = until.min(Instant::now() + Duration::from_secs(left));
        }
        let mut proven = self.proven.lock().unwrap_or_else(|e| e.into_inner());
        if proven.len() >= CACHE_MAX {
            proven.clear();
        }
        proven.insert(
            tag,
            Proven {
                principal: done.principal.clone(),
                epoch,
                until,
                password: done.password,
            },
        );
    }

    /// Refuses a password attempt for a locked name or from a locked
    /// address, saying when to retry.
    fn check_lockout(&self, name: &str, address: Option<IpAddr>) -> Result<(), Error> {
        let now = Instant::now();
        let throttle = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(left) = address
            .and_then(|a| throttle.by_address.get(&a))
            .and_then(|f| f.locked_for(now))
        {
            return Err(Error::throttled(
                format!(
                    "too many failed logins from your address; retry in {} seconds",
                    left.as_secs() + 1
                ),
                left.as_secs() + 1,
            ));
        }
        if let Some(left) = throttle.by_name.get(name).and_then(|f| f.locked_for(now)) {
            return Err(Error::throttled(
                format!(
                    "too many failed logins for user '{name}'; retry in {} seconds \
                     (an access token or API key still works, and an admin can unlock the user)",
                    left.as_secs() + 1
                ),
                left.as_secs() + 1,
            ));
        }
        Ok(())
    }

    /// Counts a failed credential against the address and, for passwords
    /// (`name` given), against the user name. `known` says whether the user
    /// exists: only their lockouts are stored, so the store cannot be
    /// filled with made-up names.
    async fn record_failure(&self, name: Option<&str>, address: Option<IpAddr>, known: bool) {
        let now = Instant::now();
        let locked = {
            let mut throttle = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(a) = address
                && count_failure(&mut throttle.by_address, a, MAX_ADDRESS_FAILURES, now)
            {
                tracing::warn!(address = %a, "too many failed logins from one address; refusing its passwords for a while");
            }
            name.is_some_and(|n| {
                count_failure(&mut throttle.by_name, n.to_string(), MAX_FAILURES, now)
            })
        };
        let Some(name) = name.filter(|_| locked) else {
            return;
        };
        tracing::warn!(
            user = name,
            "too many failed logins; refusing the user's password for a while"
        );
        if known {
            // Kept in the store too, so a restart does not lift the lockout.
            let until = self.clock.now_millis() + LOCKOUT.as_millis() as u64;
            if let Err(e) = self.persist_lockout(name, until).await {
                tracing::warn!(user = name, error = %e, "could not persist the lockout");
            }
        }
    }

    /// Stores a lockout's end and drops rows that have expired, so the rows
    /// stay at most one per existing user, and only while they matter.
    async fn persist_lockout(
        &self,
        name: &str,
        until: u64,
    ) -> Result<(), waybill_core::StoreError> {
        let now = self.clock.now_millis();
        for (key, end) in self.store.list_settings(LOCKOUT_SETTING).await? {
            if end.parse::<u64>().is_ok_and(|end| end <= now) {
                self.store.delete_setting(&key).await?;
            }
        }
        self.store
            .put_setting(&format!("{LOCKOUT_SETTING}{name}"), &until.to_string())
            .await
    }

    /// Loads lockouts that outlived the last run, and drops expired ones
    /// and ones of users that no longer exist.
    pub async fn restore_lockouts(&self) -> Result<(), waybill_core::StoreError> {
        let now = self.clock.now_millis();
        for (key, until) in self.store.list_settings(LOCKOUT_SETTING).await? {
            let name = key.trim_start_matches(LOCKOUT_SETTING);
            match until.parse::<u64>() {
                Ok(until) if until > now && self.store.get_user(name).await?.is_some() => {
                    let left = Duration::from_millis(until - now);
                    let at = Instant::now();
                    self.throttle
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .by_name
                        .insert(
                            name.to_string(),
                            Failures {
                                locked_until: Some(at + left),
                                ..Failures::fresh(at)
                            },
                        );
                }
                _ => {
                    self.store.delete_setting(&key).await?;
                }
            }
        }
        Ok(())
    }

    /// Lifts a user's lockout (and forgets their failures); true if they were locked.
    pub async fn unlock(&self, name: &str) -> Result<bool, waybill_core::StoreError> {
        let was = self
            .throttle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_name
            .remove(name)
            .is_some_and(|f| f.locked_for(Instant::now()).is_some());
        self.store
            .delete_setting(&format!("{LOCKOUT_SETTING}{name}"))
            .await?;
        Ok(was)
    }

    /// User names locked out now, sorted.
    pub fn locked_users(&self) -> Vec<String> {
        let now = Instant::now();
        let mut names: Vec<String> = self
            .throttle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_name
            .iter()
            .filter(|(_, f)| f.locked_for(now).is_some())
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    fn record_success(&self, name: &str) {
        self.throttle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_name
            .remove(name);
    }

    /// Checks a user name and password.
    async fn verify_password(&self, name: &str, password: &str) -> Result<PasswordCheck, Error> {
        let user = self.store.get_user(name).await?;
        let tag = hmac::sign(&self.key, password.as_bytes()).as_ref().to_vec();
        let cache_key = (name.to_string(), tag);
        if let Some(user) = &user {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = cache.get(&cache_key)
                && hit.phc == user.password_hash.as_phc()
                && hit.verified.elapsed() < CACHE_TTL
            {
                return Ok(PasswordCheck::Valid(user.clone()));
            }
        }
        let password = password.to_string();
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let ok = tokio::task::spawn_blocking(move || match hash {
            Some(h) => h.verify(&password),
            None => {
                // Same cost for unknown users, so timing does not reveal names.
                PasswordHash::verify_dummy(&password);
                false
            }
        })
        .await
        .map_err(|_| Error::internal("password check failed"))?;
        let user = match user {
            Some(user) if ok => user,
            other => {
                return Ok(PasswordCheck::Wrong {
                    known: other.is_some(),
                });
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(
            cache_key,
            CacheEntry {
                phc: user.password_hash.as_phc().to_string(),
                verified: Instant::now(),
            },
        );
        Ok(PasswordCheck::Valid(user))
    }

    async fn authenticate_header(
        &self,
        header: &str,
        address: Option<IpAddr>,
    ) -> Result<Authenticated, Error> {
        let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| Error::unauthenticated("malformed Basic credentials"))?;
            let (name, password) = decoded
                .split_once(':')
                .ok_or_else(|| Error::unauthenticated("malformed Basic credentials"))?;
            // Bounded before anything else: no store lookup, no hashing and
            // no bookkeeping for a name no user can have.
            if User::validate_name(name).is_err() {
                self.record_failure(None, address, false).await;
                return Err(Error::unauthenticated("bad user name or password"));
            }
            // The JFrog CLI also sends API keys and access tokens as the
            // Basic password (wire contract §1.2). Lockouts guard passwords
            // only: a locked-out user's token or key still works.
            if super::apikeys::looks_like_key(password) {
                return match self.api_key_user(password).await? {
                    Some(user) if user.name == name => Ok(Principal::of(user).into()),
                    _ => {
                        self.record_failure(None, address, false).await;
                        Err(Error::unauthenticated("bad user name or API key"))
                    }
                };
            }
            if looks_like_jwt(password) {
                let p = self.bearer(password).await?;
                if p.principal.name != name {
                    return Err(Error::unauthenticated(
                        "the access token belongs to another user",
                    ));
                }
                return Ok(p);
            }
            self.check_lockout(name, address)?;
            return match self.verify_password(name, password).await? {
                PasswordCheck::Valid(user) => {
                    self.record_success(name);
                    Ok(Authenticated {
                        password: true,
                        ..Principal::of(user).into()
                    })
                }
                PasswordCheck::Wrong { known } => {
                    self.record_failure(Some(name), address, known).await;
                    Err(Error::unauthenticated("bad user name or password"))
                }
            };
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.bearer(value.trim()).await;
        }
        Err(Error::unauthenticated(format!(
            "unsupported authorization scheme '{scheme}'; use Basic or Bearer"
        )))
    }

    /// The user an API key belongs to, if the key is known and they exist.
    async fn api_key_user(&self, key: &str) -> Result<Option<User>, Error> {
        match super::apikeys::owner(self.store.as_ref(), key).await? {
            Some(name) => Ok(self.store.get_user(&name).await?),
            None => Ok(None),
        }
    }

    /// `X-JFrog-Art-Api: <key>`: the key alone names its user.
    async fn authenticate_api_key(
        &self,
        key: &str,
        address: Option<IpAddr>,
    ) -> Result<Authenticated, Error> {
        match self.api_key_user(key.trim()).await? {
            Some(user) => Ok(Principal::of(user).into()),
            None => {
                self.record_failure(None, address, false).await;
                Err(Error::unauthenticated("unknown or revoked API key"))
            }
        }
    }

    async fn bearer(&self, token: &str) -> Result<Authenticated, Error> {
        {
            use super::tokens::TokenError;
            let claims = self
                .tokens
                .verify(self.store.as_ref(), token)
                .await
                .map_err(|e| {
                    Error::unauthenticated(match e {
                        TokenError::Invalid => "the access token is not valid here",
                        TokenError::Expired => "the access token has expired",
                        TokenError::Revoked => "the access token was revoked",
                    })
                })?;
            let user = self.store.get_user(&claims.sub).await?.ok_or_else(|| {
                Error::unauthenticated("the access token's user no longer exists")
            })?;
            // An admin's user-scoped token acts as a plain user.
            let admin = user.admin && claims.scp == super::ADMIN_SCOPE;
            Ok(Authenticated {
                principal: Principal {
                    reduced: user.admin && !admin,
                    admin,
                    name: user.name,
                    groups: user.groups,
                },
                expires: claims.exp,
                password: false,
            })
        }
    }
}

/// Three dot-separated parts starting with an encoded JSON header: a JWT,
/// not a password (a password that looks like one still works by Bearer).
fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.split('.').count() == 3
}

/// The outcome of a password check.
enum PasswordCheck {
    Valid(User),
    /// Wrong password, or no such user (`known` tells which, for bookkeeping only).
    Wrong {
        known: bool,
    },
}

impl Security {
    /// Who `credentials` prove the caller to be; `address` is the client's,
    /// when known, for lockouts by address.
    pub async fn authenticate(
        &self,
        credentials: Credentials,
        address: Option<IpAddr>,
    ) -> Result<Principal, Error> {
        let mut tagged = hmac::Context::with_key(&self.key);
        match &credentials {
            Credentials {
                authorization: Some(authorization),
                ..
            } => tagged.update(authorization.as_bytes()),
            Credentials {
                api_key: Some(key), ..
            } => {
                tagged.update(b"\0api-key\0");
                tagged.update(key.as_bytes());
            }
            _ => return Err(Error::unauthenticated("authentication required")),
        }
        let tag = tagged.sign().as_ref().to_vec();
        if let Some(known) = self.remembered(&tag, address) {
            return known;
        }
        let epoch = self.security_epoch();
        let done = match credentials {
            Credentials {
                authorization: Some(authorization),
                ..
            } => self.authenticate_header(&authorization, address).await?,
            Credentials {
                api_key: Some(key), ..
            } => self.authenticate_api_key(&key, address).await?,
            _ => unreachable!("refused above"),
        };
        self.remember(tag, epoch, &done);
        Ok(done.principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_failure_map_keeps_live_lockouts_and_tracks_no_newcomer() {
        let now = Instant::now();
        let mut map = HashMap::new();
        for _ in 0..MAX_FAILURES {
            count_failure(&mut map, "victim".to_string(), MAX_FAILURES, now);
        }
        assert!(map["victim"].locked_for(now).is_some());
        for i in 0..TRACKED_MAX * 2 {
            count_failure(&mut map, format!("flood-{i}"), MAX_FAILURES, now);
        }
        assert_eq!(map.len(), TRACKED_MAX, "bounded");
        assert!(map["victim"].locked_for(now).is_some(), "not evicted");
        // Once the window has passed, stale entries make room again.
        let later = now + FAILURE_WINDOW + LOCKOUT + Duration::from_secs(1);
        count_failure(&mut map, "newcomer".to_string(), MAX_FAILURES, later);
        assert_eq!(map.len(), 1);
        assert_eq!(map["newcomer"].count, 1);
    }
}
