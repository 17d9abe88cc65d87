//! SHA-256 digests: the content address of every blob.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A SHA-256 digest. Displays and parses as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256([u8; 32]);

impl Sha256 {
    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Sha256 {
        Sha256(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 hex digits (either case).
    pub fn parse_hex(hex: &str) -> Result<Sha256, Error> {
        let bad = || Error::invalid("sha256", format!("'{hex}' is not 64 hexadecimal digits"));
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
            let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Ok(Sha256(out))
    }

    /// Digest of a whole buffer.
    pub fn of(data: &[u8]) -> Sha256 {
        let mut h = Sha256Hasher::new();
        h.update(data);
        h.finish()
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.to_hex())
    }
}

impl TryFrom<String> for Sha256 {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Sha256::parse_hex(&s)
    }
}

impl From<Sha256> for String {
    fn from(d: Sha256) -> String {
        d.to_hex()
    }
}

/// Incremental SHA-256 (ring, which uses SHA-NI where the CPU has it).
pub struct Sha256Hasher {
    ctx: ring::digest::Context,
    len: u64,
}

impl Sha256Hasher {
    /// A fresh hasher.
    pub fn new() -> Sha256Hasher {
        Sha256Hasher {
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            len: 0,
        }
    }

    /// Feeds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.ctx.update(chunk);
        self.len += chunk.len() as u64;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Sha256 {
        let d = self.ctx.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Sha256(out)
    }
}

impl Default for Sha256Hasher {
    fn default() -> Self {
        Sha256Hasher::new()
    }
}

impl fmt::Debug for Sha256Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sha256Hasher")
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            Sha256::of(b"").to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut h = Sha256Hasher::new();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.len(), 3);
        assert_eq!(
            h.finish().to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let d = Sha256::of(b"waybill");
        assert_eq!(Sha256::parse_hex(&d.to_hex()).unwrap(), d);
        assert_eq!(Sha256::parse_hex(&d.to_hex().to_uppercase()).unwrap(), d);
        assert!(Sha256::parse_hex("abc").is_err());
        assert!(Sha256::parse_hex(&"g".repeat(64)).is_err());
        assert!(Sha256::parse_hex(&"é".repeat(32)).is_err());
    }
}
