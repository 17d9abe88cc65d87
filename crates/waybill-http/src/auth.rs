//! Authentication: who is calling.
//!
//! `Authorization: Basic` is checked against the user's argon2id hash. A
//! verification costs tens of milliseconds on purpose, and the JFrog CLI sends
//! Basic on every request, so a success is remembered for a few minutes as an
//! HMAC of the password under a per-process random key (the password itself
//! is never kept). A cached entry only counts while the user's stored hash is
//! unchanged, so a password change takes effect at once.
//!
//! Hashing runs on the blocking pool, never on an async worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use ring::hmac;
use waybill_core::auth::{PasswordHash, User};
use waybill_core::store::Store;

use crate::AppState;
use crate::error::ApiError;

/// How long a verified Basic credential is remembered.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Cache entries kept at most; the cache is cleared when full.
const CACHE_MAX: usize = 10_000;

/// The authenticated caller, put into request extensions by [`require_auth`].
#[derive(Clone, Debug)]
pub struct Principal {
    /// User name.
    pub name: String,
    /// Whether the user is an administrator.
    pub admin: bool,
    /// Groups the user belongs to.
    pub groups: Vec<String>,
}

impl Principal {
    /// A user acting with their full rights (password or API key).
    fn of(user: User) -> Principal {
        Principal {
            name: user.name,
            admin: user.admin,
            groups: user.groups,
        }
    }

    /// The caller as the permission model sees it.
    pub fn caller(&self) -> waybill_core::permissions::Caller<'_> {
        waybill_core::permissions::Caller {
            name: &self.name,
            groups: &self.groups,
            admin: self.admin,
        }
    }

    /// 403 unless the caller is an administrator.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "user '{}' is not an administrator; this endpoint is admin only",
                self.name
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("authentication required"))
    }
}

/// (user name, HMAC of the password) -> what was verified, and when.
type CredentialCache = HashMap<(String, Vec<u8>), CacheEntry>;

#[derive(Clone)]
struct CacheEntry {
    phc: String,
    verified: Instant,
}

/// Failed logins tolerated per user within [`FAILURE_WINDOW`].
const MAX_FAILURES: u32 = 5;
/// The window failures are counted in.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a user is refused after too many failures.
const LOCKOUT: Duration = Duration::from_secs(30);
/// Settings key prefix of a lockout's end (wall-clock millis), per user.
const LOCKOUT_SETTING: &str = "security.lockout.";

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
    locked_until: Option<Instant>,
}

/// Verifies credentials against the user store.
#[derive(Clone)]
pub struct Authenticator {
    store: Arc<dyn Store>,
    key: Arc<hmac::Key>,
    cache: Arc<Mutex<CredentialCache>>,
    failures: Arc<Mutex<HashMap<String, Failures>>>,
    /// Access-token minting and checking.
    pub tokens: crate::tokens::Tokens,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator over `store`'s users.
    pub fn new(store: Arc<dyn Store>) -> Authenticator {
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("OS random source");
        Authenticator {
            store,
            key: Arc::new(key),
            cache: Arc::default(),
            failures: Arc::default(),
            tokens: crate::tokens::Tokens::default(),
        }
    }

    /// Refuses a user locked out after repeated failures, saying when to retry.
    fn check_lockout(&self, name: &str) -> Result<(), ApiError> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = failures.get(name).and_then(|f| f.locked_until) {
            let left = until.saturating_duration_since(Instant::now());
            if !left.is_zero() {
                return Err(ApiError::throttled(
                    format!(
                        "too many failed logins for user '{name}'; retry in {} seconds",
                        left.as_secs() + 1
                    ),
                    left.as_secs() + 1,
                ));
            }
        }
        Ok(())
    }

    async fn record_failure(&self, name: &str) {
        let locked = self.count_failure(name);
        if locked {
            // Kept in the store too, so a restart does not lift the lockout.
            let until = crate::now_millis() + LOCKOUT.as_millis() as u64;
            let key = format!("{LOCKOUT_SETTING}{name}");
            if let Err(e) = self.store.put_setting(&key, &until.to_string()).await {
                tracing::warn!(user = name, error = %e, "could not persist the lockout");
            }
        }
    }

    /// Loads lockouts that outlived the last run, and drops expired ones.
    pub async fn restore_lockouts(&self) -> Result<(), waybill_core::StoreError> {
        let now = crate::now_millis();
        for (key, until) in self.store.list_settings(LOCKOUT_SETTING).await? {
            let name = key.trim_start_matches(LOCKOUT_SETTING);
            match until.parse::<u64>() {
                Ok(until) if until > now => {
                    let left = Duration::from_millis(until - now);
                    self.failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(
                            name.to_string(),
                            Failures {
                                count: 0,
                                since: Instant::now(),
                                locked_until: Some(Instant::now() + left),
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

    /// Counts a failure; true when it starts a lockout.
    fn count_failure(&self, name: &str) -> bool {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() > CACHE_MAX {
            failures.clear();
        }
        let now = Instant::now();
        let f = failures.entry(name.to_string()).or_insert(Failures {
            count: 0,
            since: now,
            locked_until: None,
        });
        if now.duration_since(f.since) > FAILURE_WINDOW {
            *f = Failures {
                count: 0,
                since: now,
                locked_until: None,
            };
        }
        f.count += 1;
        if f.count >= MAX_FAILURES {
            tracing::warn!(
                user = name,
                "too many failed logins; refusing the user for a while"
            );
            *f = Failures {
                count: 0,
                since: now,
                locked_until: Some(now + LOCKOUT),
            };
            return true;
        }
        false
    }

    fn record_success(&self, name: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// Checks a user name and password; `Ok(None)` means wrong or unknown.
    pub async fn verify_password(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<User>, ApiError> {
        let user = self.store.get_user(name).await?;
        let tag = hmac::sign(&self.key, password.as_bytes()).as_ref().to_vec();
        let cache_key = (name.to_string(), tag);
        if let Some(user) = &user {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = cache.get(&cache_key)
                && hit.phc == user.password_hash.as_phc()
                && hit.verified.elapsed() < CACHE_TTL
            {
                return Ok(Some(user.clone()));
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
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "password check failed",
            )
        })?;
        if !ok {
            return Ok(None);
        }
        let Some(user) = user else { return Ok(None) };
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
        Ok(Some(user))
    }

    async fn authenticate(&self, header: &str) -> Result<Principal, ApiError> {
        let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
            let (name, password) = decoded
                .split_once(':')
                .ok_or_else(|| ApiError::unauthorized("malformed Basic credentials"))?;
            self.check_lockout(name)?;
            // The JFrog CLI also sends API keys and access tokens as the
            // Basic password (wire contract §1.2).
            if crate::apikeys::looks_like_key(password) {
                return match self.api_key_user(password).await? {
                    Some(user) if user.name == name => {
                        self.record_success(name);
                        Ok(Principal::of(user))
                    }
                    _ => {
                        self.record_failure(name).await;
                        Err(ApiError::unauthorized("bad user name or API key"))
                    }
                };
            }
            if looks_like_jwt(password) {
                let p = self.bearer(password).await?;
                if p.name != name {
                    return Err(ApiError::unauthorized(
                        "the access token belongs to another user",
                    ));
                }
                return Ok(p);
            }
            return match self.verify_password(name, password).await? {
                Some(user) => {
                    self.record_success(name);
                    Ok(Principal::of(user))
                }
                None => {
                    self.record_failure(name).await;
                    Err(ApiError::unauthorized("bad user name or password"))
                }
            };
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.bearer(value.trim()).await;
        }
        Err(ApiError::unauthorized(format!(
            "unsupported authorization scheme '{scheme}'; use Basic or Bearer"
        )))
    }

    /// The user an API key belongs to, if the key is known and they exist.
    async fn api_key_user(&self, key: &str) -> Result<Option<User>, ApiError> {
        match crate::apikeys::owner(self.store.as_ref(), key).await? {
            Some(name) => Ok(self.store.get_user(&name).await?),
            None => Ok(None),
        }
    }

    /// `X-JFrog-Art-Api: <key>`: the key alone names its user.
    async fn authenticate_api_key(&self, key: &str) -> Result<Principal, ApiError> {
        self.api_key_user(key.trim())
            .await?
            .map(Principal::of)
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked API key"))
    }

    async fn bearer(&self, token: &str) -> Result<Principal, ApiError> {
        {
            use crate::tokens::TokenError;
            let claims = self
                .tokens
                .verify(self.store.as_ref(), token)
                .await
                .map_err(|e| {
                    ApiError::unauthorized(match e {
                        TokenError::Invalid => "the access token is not valid here",
                        TokenError::Expired => "the access token has expired",
                        TokenError::Revoked => "the access token was revoked",
                    })
                })?;
            let user = self.store.get_user(&claims.sub).await?.ok_or_else(|| {
                ApiError::unauthorized("the access token's user no longer exists")
            })?;
            // An admin's user-scoped token acts as a plain user.
            Ok(Principal {
                admin: user.admin && claims.scp == crate::tokens::ADMIN_SCOPE,
                name: user.name,
                groups: user.groups,
            })
        }
    }
}

/// Three dot-separated parts starting with an encoded JSON header: a JWT,
/// not a password (a password that looks like one still works by Bearer).
fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.split('.').count() == 3
}

/// Middleware for every route but the anonymous ones: no valid credential, no entry.
pub async fn require_auth(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = req.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
    };
    let credentials = (header(AUTHORIZATION.as_str()), header("x-jfrog-art-api"));
    let principal = match credentials {
        (Some(authorization), _) => state.auth.authenticate(&authorization).await?,
        (None, Some(key)) => state.auth.authenticate_api_key(&key).await?,
        (None, None) => return Err(ApiError::unauthorized("authentication required")),
    };
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}
