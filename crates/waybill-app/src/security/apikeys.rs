//! Artifactory API keys, which the JFrog CLI still sends: as
//! `X-JFrog-Art-Api: <key>`, or as the password of Basic `user:<key>`
//! (wire contract §1.2).
//!
//! Each user has at most one key. Keys look like JFrog's (`AKCp` and 73
//! characters in all, which is how the CLI recognises them) and are stored
//! only as SHA-256 hashes, like refresh tokens: unlike Artifactory, a key
//! cannot be shown again, so a lost key is replaced, not recovered.

use ring::rand::SecureRandom;
use waybill_core::digest::Sha256;
use waybill_core::store::Store;

use super::Security;
use crate::{Error, Principal};

/// Hash of a key → its user.
const BY_HASH: &str = "security.apikey.hash.";
/// User → hash of their key.
const BY_USER: &str = "security.apikey.user.";
/// What every key starts with.
const PREFIX: &str = "AKCp";
const LENGTH: usize = 73;

/// Whether a Basic password is an API key rather than a password.
pub(crate) fn looks_like_key(secret: &str) -> bool {
    secret.len() == LENGTH && secret.starts_with(PREFIX)
}

fn hash(key: &str) -> String {
    Sha256::of(key.as_bytes()).to_hex()
}

/// The user a key belongs to, or `None` for an unknown key.
pub(crate) async fn owner(store: &dyn Store, key: &str) -> Result<Option<String>, Error> {
    if !looks_like_key(key) {
        return Ok(None);
    }
    Ok(store
        .get_setting(&format!("{BY_HASH}{}", hash(key)))
        .await?)
}

fn generate() -> Result<String, Error> {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let rng = ring::rand::SystemRandom::new();
    let mut key = String::from(PREFIX);
    while key.len() < LENGTH {
        let mut buf = [0u8; 64];
        rng.fill(&mut buf)
            .map_err(|_| Error::internal("the OS random source failed"))?;
        // Bytes from 248 up are dropped: 248 = 4 × 62, so no character is likelier.
        for b in buf.into_iter().filter(|b| *b < 248) {
            if key.len() < LENGTH {
                key.push(ALPHABET[usize::from(b % 62)] as char);
            }
        }
    }
    Ok(key)
}

impl Security {
    /// Removes `user`'s key, if any; `Ok(false)` when there was none.
    pub(crate) async fn revoke_key_of(&self, user: &str) -> Result<bool, Error> {
        let Some(h) = self.store.get_setting(&format!("{BY_USER}{user}")).await? else {
            return Ok(false);
        };
        let _changed = self.change();
        self.store.delete_setting(&format!("{BY_HASH}{h}")).await?;
        self.store
            .delete_setting(&format!("{BY_USER}{user}"))
            .await?;
        Ok(true)
    }

    async fn issue_key(&self, user: &str) -> Result<String, Error> {
        let key = generate()?;
        let h = hash(&key);
        let _changed = self.change();
        // The owner record first: a key is usable only once it points at its user.
        self.store
            .put_setting(&format!("{BY_HASH}{h}"), user)
            .await?;
        self.store
            .put_setting(&format!("{BY_USER}{user}"), &h)
            .await?;
        tracing::info!(user, "API key issued");
        Ok(key)
    }

    /// A new key for the caller; a conflict when they have one.
    pub async fn create_api_key(&self, who: &Principal) -> Result<String, Error> {
        who.require_full_rights("creating an API key")?;
        if self.has_api_key(who).await? {
            return Err(Error::conflict(
                "you already have an API key; PUT replaces it, DELETE revokes it",
            ));
        }
        self.issue_key(&who.name).await
    }

    /// A new key replacing the caller's, if any.
    pub async fn replace_api_key(&self, who: &Principal) -> Result<String, Error> {
        who.require_full_rights("replacing an API key")?;
        self.revoke_key_of(&who.name).await?;
        self.issue_key(&who.name).await
    }

    /// Whether the caller has a key (the key itself is not kept).
    pub async fn has_api_key(&self, who: &Principal) -> Result<bool, Error> {
        Ok(self
            .store
            .get_setting(&format!("{BY_USER}{}", who.name))
            .await?
            .is_some())
    }

    /// Revokes the caller's key; not found when they have none.
    pub async fn revoke_api_key(&self, who: &Principal) -> Result<(), Error> {
        who.require_full_rights("revoking an API key")?;
        if self.revoke_key_of(&who.name).await? {
            tracing::info!(user = %who.name, "API key revoked");
            Ok(())
        } else {
            Err(Error::not_found("you have no API key"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_look_like_jfrog_keys_and_differ() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert!(looks_like_key(&a) && looks_like_key(&b), "{a}");
        assert!(a[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert!(!looks_like_key("AKCpshort"));
        assert!(!looks_like_key(&"x".repeat(73)));
    }
}
