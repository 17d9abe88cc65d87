//! Signing keys: the default OpenPGP pair bundles are signed with.

use std::sync::Arc;

use waybill_core::auth::Secret;
use waybill_core::keys::SigningKey;
use waybill_core::store::Store;
use waybill_pgp::{PgpError, PgpSigner};

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
}

impl Keys {
    /// Keys kept in `store`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Keys {
        Keys { store, clock }
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
