//! Signing keys: the default OpenPGP pair bundles are signed with.

use std::sync::Arc;

use waybill_core::auth::Secret;
use waybill_core::keys::SigningKey;
use waybill_core::store::Store;
use waybill_pgp::{PgpError, PgpSigner};

use crate::sites::{KeyPush, Sites};
use crate::{Clock, Error, Principal};

/// What `GET` of the key answers when none is stored, as the seed words it.
pub const NO_KEY: &str = "No public GPG key exists in Distribution";

impl From<PgpError> for Error {
    fn from(e: PgpError) -> Error {
        match e {
            PgpError::Signing(_) => Error::internal(format!("signing failed: {e}")),
            other => Error::invalid(other.to_string()),
        }
    }
}

/// The signing keys' use-cases. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Keys {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    sites: Sites,
}

/// What pushing the public key to the edges did.
#[derive(Clone, Debug)]
pub enum Propagation {
    /// There is no key to push.
    NoKey,
    /// Key `key_id` went to each registered edge, or did not.
    Pushed {
        /// The key's id.
        key_id: String,
        /// One entry per registered edge.
        pushes: Vec<KeyPush>,
    },
}

impl Propagation {
    /// Whether every registered edge got the key (true with no edges).
    pub fn all_ok(&self) -> bool {
        match self {
            Propagation::NoKey => false,
            Propagation::Pushed { pushes, .. } => pushes.iter().all(|p| p.error.is_none()),
        }
    }
}

impl Keys {
    /// Keys kept in `store`, propagated to `sites`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, sites: Sites) -> Keys {
        Keys {
            store,
            clock,
            sites,
        }
    }

    /// Stores a checked pair as the default key and, when asked, pushes its
    /// public half to every edge (admin only). The key is stored even when
    /// some edge does not take it.
    pub async fn upload(
        &self,
        who: &Principal,
        public: Option<String>,
        private: Option<String>,
        propagate: bool,
    ) -> Result<(SigningKey, Option<Propagation>), Error> {
        let key = self.store_pair(who, public, private).await?;
        if !propagate {
            return Ok((key, None));
        }
        let pushes = self.sites.push_key_to_all(&key.public_key).await?;
        let id = key.id.clone();
        Ok((key, Some(Propagation::Pushed { key_id: id, pushes })))
    }

    /// Pushes the default key's public half to every edge (admin only).
    pub async fn propagate(&self, who: &Principal) -> Result<Propagation, Error> {
        who.require_admin()?;
        let Some(key) = self.store.default_key().await? else {
            return Ok(Propagation::NoKey);
        };
        let pushes = self.sites.push_key_to_all(&key.public_key).await?;
        Ok(Propagation::Pushed {
            key_id: key.id,
            pushes,
        })
    }

    /// Checks a pair and stores it as the default signing key (admin only).
    pub async fn store_pair(
        &self,
        who: &Principal,
        public: Option<String>,
        private: Option<String>,
    ) -> Result<SigningKey, Error> {
        who.require_admin()?;
        let public = public
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| Error::invalid("public_key is required"))?;
        let private = private.filter(|k| !k.trim().is_empty());
        let (public_c, private_c) = (public.clone(), private.clone());
        let info = tokio::task::spawn_blocking(move || {
            waybill_pgp::check_key_pair(&public_c, private_c.as_deref())
        })
        .await
        .map_err(|_| Error::internal("key check failed"))??;
        let key = SigningKey {
            id: info.key_id,
            public_key: public,
            private_key: private.map(Secret::new),
            created: self.clock.now_millis(),
            default: true,
        };
        self.store.put_key(key.clone()).await?;
        tracing::info!(key_id = %key.id, "signing key stored as the default");
        Ok(key)
    }

    /// The default key, if any; any authenticated caller may read it (its
    /// private half never leaves the store).
    pub async fn default_key(&self, _who: &Principal) -> Result<Option<SigningKey>, Error> {
        Ok(self.store.default_key().await?)
    }

    /// Unlocks the default signing key with `passphrase`.
    pub async fn unlock_default(&self, passphrase: &Secret) -> Result<PgpSigner, Error> {
        let key = self.store.default_key().await?.ok_or_else(|| {
            Error::invalid("no signing key is configured; upload one with POST /api/v1/keys/pgp")
        })?;
        let private = key.private_key.ok_or_else(|| {
            Error::invalid(format!(
                "signing key {} has no private key; upload the pair",
                key.id
            ))
        })?;
        let passphrase = passphrase.clone();
        let signer = tokio::task::spawn_blocking(move || {
            PgpSigner::unlock(private.expose(), passphrase.expose())
        })
        .await
        .map_err(|_| Error::internal("key unlock failed"))??;
        Ok(signer)
    }
}
