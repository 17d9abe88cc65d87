//! Signing keys as stored: armored OpenPGP material and its id.

use serde::{Deserialize, Serialize};

use crate::auth::Secret;
use crate::bundle::Millis;

/// A stored signing key pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    /// Key id (the OpenPGP fingerprint or key id, as hex).
    pub id: String,
    /// ASCII-armored public key.
    pub public_key: String,
    /// ASCII-armored private key; may itself be passphrase-protected.
    pub private_key: Option<Secret>,
    /// Upload time.
    pub created: Millis,
    /// Whether this is the key used when a request names none.
    pub default: bool,
}
