//! Content digests: SHA-256 (the content address of every blob), plus SHA-1
//! and MD5, which Artifactory clients still send and check.
//!
//! `Ingest` computes all three in one pass over a stream; it is the checksum
//! hot path that deploys go through and that the benches measure.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A digest of `N` bytes. Displays and parses as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HexDigest<const N: usize>([u8; N]);

/// SHA-256, the content address.
pub type Sha256 = HexDigest<32>;
/// SHA-1, for Artifactory compatibility only.
pub type Sha1 = HexDigest<20>;
/// MD5, for Artifactory compatibility only.
pub type Md5 = HexDigest<16>;

impl<const N: usize> HexDigest<N> {
    /// The name of the algorithm, as APIs spell it.
    pub const ALGORITHM: &'static str = match N {
        32 => "sha256",
        20 => "sha1",
        16 => "md5",
        _ => "digest",
    };

    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; N]) -> Self {
        HexDigest(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }

    /// Parses `2 * N` hex digits (either case).
    pub fn parse_hex(hex: &str) -> Result<Self, Error> {
        let bad = || {
            Error::invalid(
                Self::ALGORITHM,
                format!("'{hex}' is not {} hexadecimal digits", 2 * N),
            )
        };
        if hex.len() != 2 * N {
            return Err(bad());
        }
        let mut out = [0u8; N];
        for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
            let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Ok(HexDigest(out))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(2 * N);
        for b in self.0 {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }
}

impl Sha256 {
    /// SHA-256 of a whole buffer.
    pub fn of(data: &[u8]) -> Sha256 {
        let mut h = Sha256Hasher::new();
        h.update(data);
        h.finish()
    }
}

impl<const N: usize> fmt::Display for HexDigest<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl<const N: usize> fmt::Debug for HexDigest<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", Self::ALGORITHM, self.to_hex())
    }
}

impl<const N: usize> TryFrom<String> for HexDigest<N> {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::parse_hex(&s)
    }
}

impl<const N: usize> From<HexDigest<N>> for String {
    fn from(d: HexDigest<N>) -> String {
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
        HexDigest(out)
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

/// The three checksums Artifactory keeps for every file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checksums {
    /// SHA-256: the content address.
    pub sha256: Sha256,
    /// SHA-1.
    pub sha1: Sha1,
    /// MD5.
    pub md5: Md5,
}

/// One pass over a stream computing SHA-256 (ring), SHA-1 (`sha1`, which
/// uses SHA-NI; ring's SHA-1 does not) and MD5 (`md-5`).
///
/// MD5 has no hardware help and costs more than the other two together, so
/// once a stream passes [`Ingest::PARALLEL_AFTER`] bytes it moves to a second
/// thread, fed the same chunks through a bounded channel, while the caller's
/// thread does SHA-256 and SHA-1. Small blobs never pay for a thread.
pub struct Ingest {
    sha256: Sha256Hasher,
    rest: Rest,
}

/// The SHA-1 and MD5 side of an ingest.
enum Rest {
    Computed {
        sha1: sha1::Sha1,
        md5: Md5State,
    },
    /// Vouched for by a trusted peer: see [`Ingest::vouched`].
    Vouched {
        sha1: Sha1,
        md5: Md5,
    },
}

enum Md5State {
    Inline(md5::Md5),
    Helper {
        chunks: std::sync::mpsc::SyncSender<std::sync::Arc<[u8]>>,
        done: std::thread::JoinHandle<[u8; 16]>,
    },
}

impl Md5State {
    fn go_parallel(&mut self) {
        // A few chunks of slack keep both threads busy without unbounded memory.
        let (tx, rx) = std::sync::mpsc::sync_channel::<std::sync::Arc<[u8]>>(8);
        let (state_tx, state_rx) = std::sync::mpsc::channel::<md5::Md5>();
        let spawned = std::thread::Builder::new()
            .name("waybill-md5".into())
            .spawn(move || {
                use sha1::Digest as _;
                let mut m = state_rx.recv().unwrap_or_default();
                for chunk in rx {
                    m.update(&chunk);
                }
                m.finalize().into()
            });
        // No thread to be had: MD5 simply stays on this one.
        let Ok(done) = spawned else { return };
        if let Md5State::Inline(state) =
            std::mem::replace(self, Md5State::Helper { chunks: tx, done })
        {
            let _ = state_tx.send(state);
        }
    }
}

impl Ingest {
    /// Bytes after which MD5 moves to its own thread.
    pub const PARALLEL_AFTER: u64 = 1 << 20;

    /// A fresh ingest.
    pub fn new() -> Ingest {
        use sha1::Digest as _;
        Ingest {
            sha256: Sha256Hasher::new(),
            rest: Rest::Computed {
                sha1: sha1::Sha1::new(),
                md5: Md5State::Inline(md5::Md5::new()),
            },
        }
    }

    /// An ingest that computes only SHA-256 and reports `sha1` and `md5` as
    /// given.
    ///
    /// For content whose SHA-256 is pinned by a signed manifest and whose
    /// other checksums come from the peer that computed them on deploy (an
    /// edge receiving from its hub): if the SHA-256 matches, the bytes are the
    /// peer's bytes, so its SHA-1 and MD5 are theirs too. Skipping them is
    /// most of the CPU an edge spends per byte.
    pub fn vouched(sha1: Sha1, md5: Md5) -> Ingest {
        Ingest {
            sha256: Sha256Hasher::new(),
            rest: Rest::Vouched { sha1, md5 },
        }
    }

    /// Feeds the next chunk to all three digests.
    pub fn update(&mut self, chunk: &[u8]) {
        use sha1::Digest as _;
        if chunk.is_empty() {
            return;
        }
        if let Rest::Computed { sha1, md5 } = &mut self.rest {
            if self.sha256.len() >= Self::PARALLEL_AFTER
                && let Md5State::Inline(_) = md5
            {
                md5.go_parallel();
            }
            match md5 {
                Md5State::Inline(m) => m.update(chunk),
                Md5State::Helper { chunks, .. } => {
                    // The copy costs far less than the MD5 it lets run beside us.
                    // A send fails only if the thread died; `finish` reports that.
                    let _ = chunks.send(std::sync::Arc::from(chunk));
                }
            }
            sha1.update(chunk);
        }
        self.sha256.update(chunk);
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.sha256.len()
    }

    /// Whether nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.sha256.is_empty()
    }

    /// The three digests of everything fed.
    pub fn finish(self) -> Checksums {
        use sha1::Digest as _;
        let (sha1, md5) = match self.rest {
            Rest::Computed { sha1, md5 } => {
                let md5: [u8; 16] = match md5 {
                    Md5State::Inline(m) => m.finalize().into(),
                    Md5State::Helper { chunks, done } => {
                        drop(chunks);
                        done.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
                    }
                };
                (HexDigest(sha1.finalize().into()), HexDigest(md5))
            }
            Rest::Vouched { sha1, md5 } => (sha1, md5),
        };
        Checksums {
            sha256: self.sha256.finish(),
            sha1,
            md5,
        }
    }

    /// All three checksums of a whole buffer.
    pub fn of(data: &[u8]) -> Checksums {
        let mut i = Ingest::new();
        i.update(data);
        i.finish()
    }
}

impl Default for Ingest {
    fn default() -> Self {
        Ingest::new()
    }
}

impl fmt::Debug for Ingest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ingest").field("len", &self.len()).finish()
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
        let mut i = Ingest::new();
        i.update(b"a");
        i.update(b"bc");
        let c = i.finish();
        assert_eq!(
            c.sha256.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(c.sha1.to_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(c.md5.to_hex(), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn a_vouched_ingest_hashes_sha256_and_reports_what_it_was_given() {
        let given = Ingest::of(b"something else");
        let mut i = Ingest::vouched(given.sha1, given.md5);
        i.update(b"abc");
        let c = i.finish();
        assert_eq!(c.sha256, Sha256::of(b"abc"));
        assert_eq!((c.sha1, c.md5), (given.sha1, given.md5));
    }

    #[test]
    fn parallel_md5_gives_the_same_digests() {
        // Past the threshold MD5 runs on its own thread; the result must not change.
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let mut chunked = Ingest::new();
        for c in data.chunks(65_536) {
            chunked.update(c);
        }
        let parallel = chunked.finish();
        use sha1::Digest as _;
        let md5: [u8; 16] = md5::Md5::digest(&data).into();
        let sha1: [u8; 20] = sha1::Sha1::digest(&data).into();
        assert_eq!(parallel.md5.as_bytes(), &md5);
        assert_eq!(parallel.sha1.as_bytes(), &sha1);
        assert_eq!(parallel.sha256, Sha256::of(&data));
        assert_eq!(
            Ingest::of(&data),
            parallel,
            "one big chunk agrees with many small ones"
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
        let err = Sha1::parse_hex("xyz").unwrap_err().to_string();
        assert!(err.contains("sha1") && err.contains("40"), "{err}");
        let md5 = Md5::parse_hex("900150983cd24fb0d6963f7d28e17f72").unwrap();
        assert_eq!(format!("{md5:?}"), "md5(900150983cd24fb0d6963f7d28e17f72)");
    }
}
