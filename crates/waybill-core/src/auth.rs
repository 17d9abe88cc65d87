//! Users, password hashes, access-token records and secrets.

use std::fmt;

use argon2::password_hash::{PasswordHash as Phc, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::bundle::Millis;

/// A string that must never be printed: `Debug` and `Display` show `****`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself; call sites that need it are easy to grep for.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An argon2id password hash in PHC string form.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Hashes `password` with argon2id (default parameters) and `salt`, which
    /// the caller draws from a secure random source.
    pub fn create(password: &str, salt: [u8; 16]) -> Result<PasswordHash, Error> {
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| Error::invalid("password", format!("salt: {e}")))?;
        let phc = argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| Error::invalid("password", e.to_string()))?;
        Ok(PasswordHash(phc.to_string()))
    }

    /// Whether `password` matches. argon2 compares digests in constant time.
    pub fn verify(&self, password: &str) -> bool {
        match Phc::new(&self.0) {
            Ok(phc) => argon2::Argon2::default()
                .verify_password(password.as_bytes(), &phc)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Burns the same time as a real verification, for unknown user names,
    /// so response time does not reveal which users exist.
    pub fn verify_dummy(password: &str) {
        static DUMMY: std::sync::OnceLock<Option<PasswordHash>> = std::sync::OnceLock::new();
        if let Some(h) = DUMMY.get_or_init(|| PasswordHash::create("", [7; 16]).ok()) {
            let _ = h.verify(password);
        }
    }

    /// The PHC string, for storage.
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(****)")
    }
}

/// A user account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name, unique.
    pub name: String,
    /// argon2id hash of the password.
    pub password_hash: PasswordHash,
    /// Whether the user is an administrator.
    pub admin: bool,
    /// Contact address, if known.
    pub email: Option<String>,
    /// Names of the groups the user belongs to.
    pub groups: Vec<String>,
    /// Creation time.
    pub created: Millis,
}

impl User {
    /// The name of the user created on first start.
    pub const BOOTSTRAP_ADMIN: &'static str = "admin";

    /// Checks a user name: 1–64 characters, no control characters, `/` or `:`
    /// (`:` would split a Basic credential).
    pub fn validate_name(name: &str) -> Result<(), Error> {
        let n = name.chars().count();
        if n == 0 || n > 64 {
            return Err(Error::invalid("username", "must be 1 to 64 characters"));
        }
        if name.chars().any(|c| c.is_control() || c == '/' || c == ':') {
            return Err(Error::invalid(
                "username",
                "must not contain control characters, '/' or ':'",
            ));
        }
        Ok(())
    }
}

/// An issued access token, as the server remembers it (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token's id (`jti`).
    pub token_id: String,
    /// Who it was issued to.
    pub subject: String,
    /// The granted scope, such as `applied-permissions/user`.
    pub scope: String,
    /// Issue time.
    pub issued_at: Millis,
    /// Expiry time; `None` for non-expiring tokens.
    pub expiry: Option<Millis>,
    /// SHA-256 of the single-use refresh token, if refreshable.
    pub refresh_hash: Option<crate::digest::Sha256>,
    /// Whether it was revoked.
    pub revoked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_verifies_and_hides() {
        let h = PasswordHash::create("s3cret!", [1; 16]).unwrap();
        assert!(h.as_phc().starts_with("$argon2id$"));
        assert!(!h.as_phc().contains("s3cret"));
        assert!(h.verify("s3cret!"));
        assert!(!h.verify("s3cret"));
        assert!(!h.verify(""));
        assert_eq!(format!("{h:?}"), "PasswordHash(****)");
        // Different salts give different hashes for one password.
        assert_ne!(h, PasswordHash::create("s3cret!", [2; 16]).unwrap());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(****)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"token", b"token"));
        assert!(!constant_time_eq(b"token", b"tokem"));
        assert!(!constant_time_eq(b"token", b"token2"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn user_names() {
        assert!(User::validate_name("admin").is_ok());
        assert!(User::validate_name("").is_err());
        assert!(User::validate_name("a:b").is_err());
        assert!(User::validate_name(&"u".repeat(65)).is_err());
    }
}
