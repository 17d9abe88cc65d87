//! OpenPGP signing keys for Waybill, on rPGP.
//!
//! - [`check_key_pair`] validates an uploaded key pair: both halves parse,
//!   belong together, and the key is RSA of at least 2048 bits or Ed25519.
//! - [`PgpSigner`] unlocks a private key with its passphrase and implements
//!   the core's [`Signer`]: JWS `RS256` (PKCS#1 v1.5 over SHA-256, which is
//!   exactly what OpenPGP RSA signs over a prehashed digest) or `EdDSA`
//!   (Ed25519 over the signing input, through ring), and detached OpenPGP
//!   signatures.
//! - [`verify_detached`] checks a detached signature against a public key;
//!   edges use it before accepting a bundle.
//!
//! Signing always uses the primary key, as JFrog Distribution does.

use std::io::Cursor;

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey, SignedSecretKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::types::{
    KeyDetails, Password, PlainSecretParams, PublicParams, SignatureBytes, SigningKey as _,
};
use rsa::traits::PublicKeyParts;
use waybill_core::signing::{JwsAlg, Signer};

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Why a key or signature was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgpError {
    /// The text is not an armored OpenPGP key of the expected kind.
    #[error("{which} is not a valid ASCII-armored OpenPGP key: {reason}")]
    Malformed {
        /// `public_key` or `private_key`.
        which: &'static str,
        /// What the parser said.
        reason: String,
    },
    /// The public and private keys are not halves of one key.
    #[error("the public key ({public}) and the private key ({private}) do not belong together")]
    Mismatch {
        /// Fingerprint of the public key.
        public: String,
        /// Fingerprint of the private key.
        private: String,
    },
    /// RSA below the minimum size.
    #[error("RSA keys must have at least {MIN_RSA_BITS} bits; this one has {0}")]
    TooWeak(usize),
    /// An algorithm that cannot sign bundles.
    #[error("{0} keys cannot sign release bundles; use RSA (2048 bits or more) or Ed25519")]
    Unsupported(String),
    /// The passphrase does not unlock the private key.
    #[error(
        "the passphrase does not unlock the signing key; send the right one in X-GPG-PASSPHRASE"
    )]
    Passphrase,
    /// A signature did not verify, or could not be read.
    #[error("signature verification failed: {0}")]
    BadSignature(String),
    /// Signing itself failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// What a key is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The 64-bit key id, upper-case hex (the JWS `kid`).
    pub key_id: String,
    /// The full fingerprint, upper-case hex.
    pub fingerprint: String,
    /// The JWS algorithm it signs with.
    pub alg: JwsAlg,
    /// RSA modulus size, for RSA keys.
    pub rsa_bits: Option<usize>,
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn info_of(key: &impl KeyDetails) -> Result<KeyInfo, PgpError> {
    let (alg, rsa_bits) = match key.public_params() {
        PublicParams::RSA(rsa) => {
            let bits = rsa.key.size() * 8;
            if bits < MIN_RSA_BITS {
                return Err(PgpError::TooWeak(bits));
            }
            (JwsAlg::RS256, Some(bits))
        }
        PublicParams::EdDSALegacy(_) | PublicParams::Ed25519(_) => (JwsAlg::EdDSA, None),
        _ => return Err(PgpError::Unsupported(format!("{:?}", key.algorithm()))),
    };
    Ok(KeyInfo {
        key_id: hex_upper(key.legacy_key_id().as_ref()),
        fingerprint: format!("{:X}", key.fingerprint()),
        alg,
        rsa_bits,
    })
}

/// Parses an armored public key.
pub fn parse_public(armored: &str) -> Result<(SignedPublicKey, KeyInfo), PgpError> {
    let (key, _) = SignedPublicKey::from_string(armored).map_err(|e| PgpError::Malformed {
        which: "public_key",
        reason: e.to_string(),
    })?;
    let info = info_of(&key.primary_key)?;
    Ok((key, info))
}

fn parse_secret(armored: &str) -> Result<SignedSecretKey, PgpError> {
    SignedSecretKey::from_string(armored)
        .map(|(k, _)| k)
        .map_err(|e| PgpError::Malformed {
            which: "private_key",
            reason: e.to_string(),
        })
}

/// Checks an uploaded pair (the private half is optional) and describes it.
pub fn check_key_pair(public: &str, private: Option<&str>) -> Result<KeyInfo, PgpError> {
    let (_, info) = parse_public(public)?;
    if let Some(private) = private {
        let secret = parse_secret(private)?;
        let private_fp = format!("{:X}", secret.primary_key.fingerprint());
        if private_fp != info.fingerprint {
            return Err(PgpError::Mismatch {
                public: info.fingerprint,
                private: private_fp,
            });
        }
    }
    Ok(info)
}

/// An unlocked signing key.
pub struct PgpSigner {
    secret: SignedSecretKey,
    password: Password,
    info: KeyInfo,
    /// Ed25519 keys: the ring key pair for JWS, derived once.
    ed25519: Option<ring::signature::Ed25519KeyPair>,
}

impl std::fmt::Debug for PgpSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgpSigner")
            .field("key_id", &self.info.key_id)
            .finish_non_exhaustive()
    }
}

impl PgpSigner {
    /// Unlocks an armored private key; the passphrase is empty for
    /// unprotected keys.
    pub fn unlock(private: &str, passphrase: &str) -> Result<PgpSigner, PgpError> {
        let secret = parse_secret(private)?;
        let info = info_of(&secret.primary_key)?;
        let password = Password::from(passphrase);
        let seed = secret
            .primary_key
            .unlock(&password, |_, plain| {
                Ok(match plain {
                    PlainSecretParams::Ed25519(k) => Some(*k.as_bytes()),
                    PlainSecretParams::EdDSALegacy(
                        pgp::crypto::eddsa_legacy::SecretKey::Ed25519(k),
                    ) => Some(*k.as_bytes()),
                    _ => None,
                })
            })
            .map_err(|_| PgpError::Passphrase)?
            .map_err(|e| PgpError::Malformed {
                which: "private_key",
                reason: e.to_string(),
            })?;
        let ed25519 = match (info.alg, seed) {
            (JwsAlg::EdDSA, Some(seed)) => Some(
                ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|e| {
                    PgpError::Malformed {
                        which: "private_key",
                        reason: e.to_string(),
                    }
                })?,
            ),
            (JwsAlg::EdDSA, None) => return Err(PgpError::Unsupported("this EdDSA curve".into())),
            _ => None,
        };
        Ok(PgpSigner {
            secret,
            password,
            info,
            ed25519,
        })
    }

    /// What key this is.
    pub fn info(&self) -> &KeyInfo {
        &self.info
    }

    fn rsa_jws(&self, input: &[u8]) -> Result<Vec<u8>, PgpError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, input);
        let sig = self
            .secret
            .primary_key
            .sign(&self.password, HashAlgorithm::Sha256, digest.as_ref())
            .map_err(|e| PgpError::Signing(e.to_string()))?;
        let SignatureBytes::Mpis(mpis) = sig else {
            return Err(PgpError::Signing("unexpected signature encoding".into()));
        };
        let raw = mpis
            .first()
            .map(|m| m.as_ref().to_vec())
            .unwrap_or_default();
        // OpenPGP strips leading zeros; JWS wants exactly the modulus length.
        let len = self.info.rsa_bits.unwrap_or(0) / 8;
        let mut out = vec![0u8; len.saturating_sub(raw.len())];
        out.extend_from_slice(&raw);
        Ok(out)
    }
}

impl Signer for PgpSigner {
    fn key_id(&self) -> &str {
        &self.info.key_id
    }

    fn jws_alg(&self) -> JwsAlg {
        self.info.alg
    }

    fn sign_jws(&self, signing_input: &[u8]) -> Result<Vec<u8>, waybill_core::Error> {
        match &self.ed25519 {
            Some(pair) => Ok(pair.sign(signing_input).as_ref().to_vec()),
            None => self
                .rsa_jws(signing_input)
                .map_err(|e| waybill_core::Error::Signing(e.to_string())),
        }
    }

    fn sign_openpgp(&self, data: &[u8]) -> Result<String, waybill_core::Error> {
        let sig = DetachedSignature::sign_binary_data(
            rand::rngs::OsRng,
            &self.secret.primary_key,
            &self.password,
            HashAlgorithm::Sha256,
            data,
        )
        .map_err(|e| waybill_core::Error::Signing(e.to_string()))?;
        sig.to_armored_string(Default::default())
            .map_err(|e| waybill_core::Error::Signing(e.to_string()))
    }
}

/// Verifies a JWS signature (`RS256` or `EdDSA`, whichever the key signs
/// with) over `signing_input` (`header.payload`) with an armored public key.
pub fn verify_jws(public: &str, signing_input: &[u8], signature: &[u8]) -> Result<(), PgpError> {
    use ring::signature::{ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
    let (key, _) = parse_public(public)?;
    let bad = |_| PgpError::BadSignature("the JWS signature does not verify".into());
    match key.primary_key.public_params() {
        PublicParams::RSA(rsa) => RsaPublicKeyComponents {
            n: rsa.key.n().to_bytes_be(),
            e: rsa.key.e().to_bytes_be(),
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, signing_input, signature)
        .map_err(bad),
        PublicParams::Ed25519(ed) => {
            ring::signature::UnparsedPublicKey::new(&ED25519, ed.key.as_bytes())
                .verify(signing_input, signature)
                .map_err(bad)
        }
        PublicParams::EdDSALegacy(pgp::types::EddsaLegacyPublicParams::Ed25519 { key }) => {
            ring::signature::UnparsedPublicKey::new(&ED25519, key.as_bytes())
                .verify(signing_input, signature)
                .map_err(bad)
        }
        _ => Err(PgpError::Unsupported(format!(
            "{:?}",
            key.primary_key.algorithm()
        ))),
    }
}

/// Verifies an armored detached signature over `data` with an armored public key.
pub fn verify_detached(public: &str, data: &[u8], signature: &str) -> Result<(), PgpError> {
    let (key, _) = parse_public(public)?;
    let (sig, _) = DetachedSignature::from_armor_single(Cursor::new(signature.as_bytes()))
        .map_err(|e| PgpError::BadSignature(format!("unreadable signature: {e}")))?;
    sig.verify(&key, data)
        .map_err(|e| PgpError::BadSignature(e.to_string()))
}
