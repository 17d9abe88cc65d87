//! Signing release bundle versions: the canonical payload, the `Signer`
//! plug-in trait, and JWS assembly.
//!
//! A version is signed over one exact byte string, its canonical payload
//! (RFC 8785-style JSON: sorted keys, no white space). Those bytes are
//! stored verbatim in the [`BundleSignature`], and both signatures cover
//! them: a JWS (`RS256` for RSA keys, `EdDSA` for Ed25519) and a detached
//! OpenPGP signature, which edges verify. What is stored is what is verified;
//! nothing is re-serialised later.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::bundle::{Millis, ReleaseBundleVersion};
use crate::digest::Sha256;
use crate::time::format_iso;

/// The JWS algorithm a key signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwsAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// Ed25519.
    EdDSA,
}

impl JwsAlg {
    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlg::RS256 => "RS256",
            JwsAlg::EdDSA => "EdDSA",
        }
    }
}

/// A key that can sign, unlocked. Implemented by `waybill-pgp`; CPU-bound,
/// so callers run it off the async runtime.
pub trait Signer: Send + Sync {
    /// The key id put into the JWS `kid` header.
    fn key_id(&self) -> &str;

    /// The JWS algorithm of the key.
    fn jws_alg(&self) -> JwsAlg;

    /// The raw JWS signature over `signing_input` (`header.payload`).
    fn sign_jws(&self, signing_input: &[u8]) -> Result<Vec<u8>, Error>;

    /// An ASCII-armored detached OpenPGP signature over `data`.
    fn sign_openpgp(&self, data: &[u8]) -> Result<String, Error>;
}

/// The signatures of a signed version, with the exact bytes they cover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleSignature {
    /// The signing key's id.
    pub key_id: String,
    /// The JWS algorithm.
    pub alg: JwsAlg,
    /// The canonical payload, verbatim.
    pub payload: String,
    /// Base64url of the JWS protected header.
    pub jws_header: String,
    /// Base64url of the JWS signature.
    pub jws_signature: String,
    /// ASCII-armored detached OpenPGP signature over `payload`.
    pub pgp_signature: String,
    /// When it was signed.
    pub signed: Millis,
}

impl BundleSignature {
    /// Base64url of the payload.
    pub fn payload_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.payload.as_bytes())
    }

    /// The compact JWS: `header.payload.signature`.
    pub fn compact(&self) -> String {
        format!(
            "{}.{}.{}",
            self.jws_header,
            self.payload_b64(),
            self.jws_signature
        )
    }

    /// SHA-256 of the payload: the `X-Checksum-Sha256` of the signed version.
    pub fn sha256(&self) -> Sha256 {
        Sha256::of(self.payload.as_bytes())
    }
}

/// Appends `s` as a JSON string (escaping per RFC 8785).
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The canonical payload of a version: what gets signed and stored.
///
/// Keys are sorted, there is no white space, and artifacts keep their order
/// in the version (which is itself deterministic: by query, then by path).
pub fn canonical_payload(v: &ReleaseBundleVersion) -> String {
    let mut out = String::from("{\"artifacts\":[");
    for (i, a) in v.artifacts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"checksum\":");
        push_str(&mut out, &a.checksum.to_hex());
        out.push_str(",\"props\":[");
        for (j, (k, values)) in a.props.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"key\":");
            push_str(&mut out, k);
            out.push_str(",\"values\":[");
            for (n, val) in values.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                push_str(&mut out, val);
            }
            out.push_str("]}");
        }
        out.push_str("],\"size\":");
        out.push_str(&a.size.to_string());
        out.push_str(",\"source_repo_path\":");
        push_str(&mut out, &a.source_repo_path);
        out.push_str(",\"target_repo_path\":");
        push_str(&mut out, &a.target_repo_path);
        out.push('}');
    }
    out.push_str("],\"created\":");
    push_str(&mut out, &format_iso(v.created));
    out.push_str(",\"description\":");
    push_str(&mut out, &v.description);
    out.push_str(",\"name\":");
    push_str(&mut out, v.name.as_str());
    if let Some(notes) = &v.release_notes {
        out.push_str(",\"release_notes\":{\"content\":");
        push_str(&mut out, &notes.content);
        out.push_str(",\"syntax\":");
        push_str(&mut out, notes.syntax.as_str());
        out.push('}');
    }
    out.push_str(",\"version\":");
    push_str(&mut out, v.version.as_str());
    out.push('}');
    out
}

/// Signs `v` with `signer`: canonical payload, JWS and OpenPGP signature.
pub fn sign(
    v: &ReleaseBundleVersion,
    signer: &dyn Signer,
    now: Millis,
) -> Result<BundleSignature, Error> {
    let payload = canonical_payload(v);
    let mut header = String::from("{\"alg\":");
    push_str(&mut header, signer.jws_alg().as_str());
    header.push_str(",\"kid\":");
    push_str(&mut header, signer.key_id());
    header.push('}');
    let jws_header = URL_SAFE_NO_PAD.encode(header.as_bytes());
    let signing_input = format!(
        "{jws_header}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes())
    );
    let jws_signature = URL_SAFE_NO_PAD.encode(signer.sign_jws(signing_input.as_bytes())?);
    let pgp_signature = signer.sign_openpgp(payload.as_bytes())?;
    Ok(BundleSignature {
        key_id: signer.key_id().to_string(),
        alg: signer.jws_alg(),
        payload,
        jws_header,
        jws_signature,
        pgp_signature,
        signed: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{BundleArtifact, NotesSyntax, ReleaseNotes};
    use crate::name::{BundleName, BundleVersion};

    struct Fake;
    impl Signer for Fake {
        fn key_id(&self) -> &str {
            "ABCD"
        }
        fn jws_alg(&self) -> JwsAlg {
            JwsAlg::RS256
        }
        fn sign_jws(&self, input: &[u8]) -> Result<Vec<u8>, Error> {
            Ok(Sha256::of(input).as_bytes().to_vec())
        }
        fn sign_openpgp(&self, data: &[u8]) -> Result<String, Error> {
            Ok(format!("sig of {} bytes", data.len()))
        }
    }

    fn version() -> ReleaseBundleVersion {
        let mut v = ReleaseBundleVersion::new(
            BundleName::parse("app").unwrap(),
            BundleVersion::parse("1.0").unwrap(),
            1_700_000_000_000,
            "ci",
        );
        v.description = "Quote \" back\\slash\nnew ü \u{1}".into();
        v.release_notes = Some(ReleaseNotes {
            syntax: NotesSyntax::Markdown,
            content: "# hi".into(),
        });
        v.artifacts.push(BundleArtifact {
            checksum: Sha256::of(b"x"),
            source_repo_path: "libs/a.jar".into(),
            target_repo_path: "prod/a.jar".into(),
            size: 12,
            props: [
                ("b".to_string(), vec!["2".to_string()]),
                ("a".to_string(), vec!["1".to_string(), "0".to_string()]),
            ]
            .into(),
            scan: None,
        });
        v
    }

    #[test]
    fn canonical_payload_is_sorted_compact_and_escaped() {
        let p = canonical_payload(&version());
        let expected = concat!(
            r#"{"artifacts":[{"checksum":"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881","#,
            r#""props":[{"key":"a","values":["1","0"]},{"key":"b","values":["2"]}],"size":12,"#,
            r#""source_repo_path":"libs/a.jar","target_repo_path":"prod/a.jar"}],"#,
            r#""created":"2023-11-14T22:13:20.000Z","description":"Quote \" back\\slash\nnew ü \u0001","#,
            r##""name":"app","release_notes":{"content":"# hi","syntax":"markdown"},"version":"1.0"}"##
        );
        assert_eq!(p, expected);
    }

    #[test]
    fn jws_parts_fit_together() {
        let sig = sign(&version(), &Fake, 5).unwrap();
        let header = URL_SAFE_NO_PAD.decode(&sig.jws_header).unwrap();
        assert_eq!(header, br#"{"alg":"RS256","kid":"ABCD"}"#);
        let compact = sig.compact();
        let parts: Vec<&str> = compact.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(parts[1]).unwrap(),
            sig.payload.as_bytes()
        );
        let signing_input = format!("{}.{}", parts[0], parts[1]);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            Sha256::of(signing_input.as_bytes()).as_bytes()
        );
        assert_eq!(sig.sha256(), Sha256::of(sig.payload.as_bytes()));
        assert_eq!(
            sig.pgp_signature,
            format!("sig of {} bytes", sig.payload.len())
        );
    }
}
