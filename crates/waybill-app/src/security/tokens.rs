//! Access tokens: JWTs signed with the server's own Ed25519 key (through
//! ring), with opaque single-use refresh tokens stored only as SHA-256.
//!
//! Claims follow seed 003: `sub`, `scp`, `aud` and `iss` (the service id),
//! `iat`, `exp` (absent for tokens that never expire) and `jti` (the token
//! id). A token is accepted only while its record exists and is not revoked,
//! so a revocation takes effect on the next request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use waybill_core::auth::{TokenRecord, constant_time_eq};
use waybill_core::digest::Sha256;
use waybill_core::store::Store;

/// Where the signing key lives (PKCS#8, base64).
const KEY_SETTING: &str = "security.jwt_signing_key";

/// The JWT claims.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// User name.
    pub sub: String,
    /// Scope.
    pub scp: String,
    /// Audience: this service.
    pub aud: String,
    /// Issuer: this service.
    pub iss: String,
    /// Issued at, seconds.
    pub iat: u64,
    /// Expiry, seconds; absent for tokens that never expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// The token id.
    pub jti: String,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWT signed by this server.
    Invalid,
    /// Past its expiry.
    Expired,
    /// Revoked or unknown.
    Revoked,
}

/// Mints and checks tokens.
#[derive(Clone)]
pub struct Tokens {
    key: std::sync::Arc<OnceCell<Ed25519KeyPair>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens {
            key: std::sync::Arc::new(OnceCell::new()),
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Tokens {
    /// The server key, created on first use and kept in the store, so tokens
    /// survive restarts and racing first uses agree on one key.
    async fn key(&self, store: &dyn Store) -> Result<&Ed25519KeyPair, waybill_core::StoreError> {
        self.key
            .get_or_try_init(|| async {
                let rng = ring::rand::SystemRandom::new();
                let fresh = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map(|d| URL_SAFE_NO_PAD.encode(d.as_ref()))
                    .unwrap_or_default();
                let stored = store.setting_or_insert(KEY_SETTING, &fresh).await?;
                let der = URL_SAFE_NO_PAD.decode(stored).unwrap_or_default();
                Ed25519KeyPair::from_pkcs8(&der).map_err(|_| {
                    waybill_core::StoreError::new(
                        waybill_core::StoreErrorKind::Corrupt,
                        "token key",
                        "the stored JWT key does not parse",
                    )
                })
            })
            .await
    }

    fn kid(pair: &Ed25519KeyPair) -> String {
        Sha256::of(pair.public_key().as_ref()).to_hex()[..16].to_string()
    }

    /// Signs claims into a compact JWT.
    pub async fn mint(
        &self,
        store: &dyn Store,
        claims: &Claims,
    ) -> Result<String, waybill_core::StoreError> {
        let pair = self.key(store).await?;
        let header = serde_json::json!({"typ": "JWT", "alg": "EdDSA", "kid": Self::kid(pair)});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default())
        );
        let sig = pair.sign(input.as_bytes());
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }

    /// Checks the signature and returns the claims, expired or not.
    pub async fn decode(&self, store: &dyn Store, token: &str) -> Result<Claims, TokenError> {
        let pair = self.key(store).await.map_err(|_| TokenError::Invalid)?;
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Invalid)?;
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ED25519,
            pair.public_key().as_ref(),
        )
        .verify(format!("{h}.{p}").as_bytes(), &sig)
        .map_err(|_| TokenError::Invalid)?;
        let body = URL_SAFE_NO_PAD.decode(p).map_err(|_| TokenError::Invalid)?;
        serde_json::from_slice(&body).map_err(|_| TokenError::Invalid)
    }

    /// Checks a token for use: signature, expiry, and a live record.
    pub async fn verify(&self, store: &dyn Store, token: &str) -> Result<Claims, TokenError> {
        let claims = self.decode(store, token).await?;
        if claims.exp.is_some_and(|exp| exp <= now_secs()) {
            return Err(TokenError::Expired);
        }
        match store.get_token(&claims.jti).await {
            Ok(Some(record)) if !record.revoked && record.subject == claims.sub => Ok(claims),
            _ => Err(TokenError::Revoked),
        }
    }

    /// Issues a token for `user` (and a refresh token when asked), recording it.
    pub async fn issue(
        &self,
        store: &dyn Store,
        service_id: &str,
        user: &str,
        scope: &str,
        expires_in: u64,
        refreshable: bool,
    ) -> Result<(String, Option<String>, TokenRecord), waybill_core::StoreError> {
        let rng = ring::rand::SystemRandom::new();
        let mut random = [0u8; 16];
        ring::rand::SecureRandom::fill(&rng, &mut random).map_err(|_| {
            waybill_core::StoreError::new(
                waybill_core::StoreErrorKind::Unavailable,
                "token",
                "the OS random source failed",
            )
        })?;
        let now = now_secs();
        let jti = ulid::Ulid::from_parts(now * 1000, u128::from_be_bytes(random))
            .to_string()
            .to_lowercase();
        let claims = Claims {
            sub: user.into(),
            scp: scope.into(),
            aud: service_id.into(),
            iss: service_id.into(),
            iat: now,
            exp: (expires_in > 0).then(|| now + expires_in),
            jti: jti.clone(),
        };
        let access = self.mint(store, &claims).await?;
        let refresh = if refreshable {
            let mut r = [0u8; 32];
            ring::rand::SecureRandom::fill(&rng, &mut r).map_err(|_| {
                waybill_core::StoreError::new(
                    waybill_core::StoreErrorKind::Unavailable,
                    "token",
                    "the OS random source failed",
                )
            })?;
            Some(r.iter().map(|b| format!("{b:02x}")).collect::<String>())
        } else {
            None
        };
        let record = TokenRecord {
            token_id: jti,
            subject: user.into(),
            scope: scope.into(),
            issued_at: now * 1000,
            expiry: claims.exp.map(|e| e * 1000),
            refresh_hash: refresh.as_ref().map(|r| Sha256::of(r.as_bytes())),
            revoked: false,
        };
        store.put_token(record.clone()).await?;
        Ok((access, refresh, record))
    }

    /// Whether `refresh` is the refresh token of `record`.
    pub fn refresh_matches(record: &TokenRecord, refresh: &str) -> bool {
        record.refresh_hash.is_some_and(|h| {
            constant_time_eq(h.as_bytes(), Sha256::of(refresh.as_bytes()).as_bytes())
        })
    }
}
