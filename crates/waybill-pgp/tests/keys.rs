//! Key checks, unlocking, and signatures that independent code verifies:
//! JWS with ring, OpenPGP with rPGP's verifier.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pgp::composed::{Deserializable, SignedPublicKey};
use pgp::types::{KeyDetails, PublicParams};
use rsa::traits::PublicKeyParts;
use waybill_core::bundle::ReleaseBundleVersion;
use waybill_core::name::{BundleName, BundleVersion};
use waybill_core::signing::{JwsAlg, Signer, sign};
use waybill_pgp::{PgpError, PgpSigner, check_key_pair, verify_detached};

const PW: &str = "correct horse battery staple";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../tests/fixtures/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Verifies a compact JWS with ring only, from the public key's raw parameters.
fn ring_verify_jws(public: &str, compact: &str) -> bool {
    let (key, _) = SignedPublicKey::from_string(public).unwrap();
    let parts: Vec<&str> = compact.split('.').collect();
    let signing_input = format!("{}.{}", parts[0], parts[1]);
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    match key.primary_key.public_params() {
        PublicParams::RSA(rsa) => {
            let n = rsa.key.n().to_bytes_be();
            let e = rsa.key.e().to_bytes_be();
            ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
                .verify(
                    &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                    signing_input.as_bytes(),
                    &sig,
                )
                .is_ok()
        }
        PublicParams::EdDSALegacy(pgp::types::EddsaLegacyPublicParams::Ed25519 { key }) => {
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.as_bytes())
                .verify(signing_input.as_bytes(), &sig)
                .is_ok()
        }
        other => panic!("unexpected key {other:?}"),
    }
}

fn version() -> ReleaseBundleVersion {
    let mut v = ReleaseBundleVersion::new(
        BundleName::parse("app").unwrap(),
        BundleVersion::parse("1.0").unwrap(),
        1_700_000_000_000,
        "ci",
    );
    v.description = "signed by a real key".into();
    v
}

#[test]
fn key_pairs_are_checked() {
    let info = check_key_pair(
        &fixture("rsa3072-protected.pub.asc"),
        Some(&fixture("rsa3072-protected.sec.asc")),
    )
    .unwrap();
    assert_eq!((info.alg, info.rsa_bits), (JwsAlg::RS256, Some(3072)));
    assert_eq!(info.key_id.len(), 16);
    assert!(info.fingerprint.ends_with(&info.key_id));
    let ed = check_key_pair(&fixture("ed25519-protected.pub.asc"), None).unwrap();
    assert_eq!(ed.alg, JwsAlg::EdDSA);
    let weak = check_key_pair(
        &fixture("rsa1024-weak.pub.asc"),
        Some(&fixture("rsa1024-weak.sec.asc")),
    )
    .unwrap_err();
    assert!(matches!(weak, PgpError::TooWeak(1024)), "{weak}");
    let mismatch = check_key_pair(
        &fixture("rsa3072-protected.pub.asc"),
        Some(&fixture("rsa2048-plain.sec.asc")),
    )
    .unwrap_err();
    assert!(matches!(mismatch, PgpError::Mismatch { .. }), "{mismatch}");
    let garbage = check_key_pair("-----BEGIN PGP PUBLIC KEY BLOCK-----\nnope\n", None).unwrap_err();
    assert!(
        garbage.to_string().contains("public_key is not a valid"),
        "{garbage}"
    );
    let swapped = check_key_pair(&fixture("rsa2048-plain.sec.asc"), None).unwrap_err();
    assert!(
        matches!(
            swapped,
            PgpError::Malformed {
                which: "public_key",
                ..
            }
        ),
        "{swapped}"
    );
}

#[test]
fn passphrases_unlock_only_the_right_key() {
    let err = PgpSigner::unlock(&fixture("rsa3072-protected.sec.asc"), "wrong").unwrap_err();
    assert!(matches!(err, PgpError::Passphrase), "{err}");
    assert!(matches!(
        PgpSigner::unlock(&fixture("rsa3072-protected.sec.asc"), "").unwrap_err(),
        PgpError::Passphrase
    ));
    assert!(PgpSigner::unlock(&fixture("rsa3072-protected.sec.asc"), PW).is_ok());
    assert!(PgpSigner::unlock(&fixture("rsa2048-plain.sec.asc"), "").is_ok());
    assert!(matches!(
        PgpSigner::unlock(&fixture("ed25519-protected.sec.asc"), "x").unwrap_err(),
        PgpError::Passphrase
    ));
}

#[test]
fn rsa_signatures_verify_independently_and_break_on_one_byte() {
    let public = fixture("rsa3072-protected.pub.asc");
    let signer = PgpSigner::unlock(&fixture("rsa3072-protected.sec.asc"), PW).unwrap();
    let sig = sign(&version(), &signer, 1).unwrap();
    assert_eq!(sig.alg, JwsAlg::RS256);
    let header = String::from_utf8(URL_SAFE_NO_PAD.decode(&sig.jws_header).unwrap()).unwrap();
    assert_eq!(
        header,
        format!(r#"{{"alg":"RS256","kid":"{}"}}"#, signer.key_id())
    );
    assert!(ring_verify_jws(&public, &sig.compact()));
    verify_detached(&public, sig.payload.as_bytes(), &sig.pgp_signature).unwrap();

    // One byte of the payload altered: both signatures fail.
    let mut tampered = sig.payload.clone().into_bytes();
    tampered[10] ^= 1;
    let forged = format!(
        "{}.{}.{}",
        sig.jws_header,
        URL_SAFE_NO_PAD.encode(&tampered),
        sig.jws_signature
    );
    assert!(!ring_verify_jws(&public, &forged));
    let err = verify_detached(&public, &tampered, &sig.pgp_signature).unwrap_err();
    assert!(matches!(err, PgpError::BadSignature(_)), "{err}");
    // And another key's public half does not verify it.
    assert!(
        verify_detached(
            &fixture("rsa2048-plain.pub.asc"),
            sig.payload.as_bytes(),
            &sig.pgp_signature
        )
        .is_err()
    );
    assert!(!ring_verify_jws(
        &fixture("rsa2048-plain.pub.asc"),
        &sig.compact()
    ));
}

#[test]
fn ed25519_signatures_verify_independently() {
    let public = fixture("ed25519-protected.pub.asc");
    let signer = PgpSigner::unlock(&fixture("ed25519-protected.sec.asc"), PW).unwrap();
    let sig = sign(&version(), &signer, 1).unwrap();
    assert_eq!(sig.alg, JwsAlg::EdDSA);
    assert!(ring_verify_jws(&public, &sig.compact()));
    verify_detached(&public, sig.payload.as_bytes(), &sig.pgp_signature).unwrap();
    let mut tampered = sig.payload.clone().into_bytes();
    tampered[3] ^= 0x20;
    assert!(verify_detached(&public, &tampered, &sig.pgp_signature).is_err());
    let (key, _) = SignedPublicKey::from_string(&public).unwrap();
    assert_eq!(format!("{:X}", key.primary_key.fingerprint()).len(), 40);
}

#[test]
fn verify_jws_accepts_what_ring_accepts_and_nothing_else() {
    for (public, secret) in [
        ("rsa3072-protected.pub.asc", "rsa3072-protected.sec.asc"),
        ("ed25519-protected.pub.asc", "ed25519-protected.sec.asc"),
    ] {
        let public = fixture(public);
        let signer = PgpSigner::unlock(&fixture(secret), PW).unwrap();
        let sig = sign(&version(), &signer, 1).unwrap();
        let input = format!("{}.{}", sig.jws_header, sig.payload_b64());
        let raw = URL_SAFE_NO_PAD.decode(&sig.jws_signature).unwrap();
        assert!(ring_verify_jws(&public, &sig.compact()));
        waybill_pgp::verify_jws(&public, input.as_bytes(), &raw).unwrap();
        let mut tampered = input.clone().into_bytes();
        tampered[5] ^= 1;
        assert!(waybill_pgp::verify_jws(&public, &tampered, &raw).is_err());
        let other = fixture("rsa2048-plain.pub.asc");
        assert!(waybill_pgp::verify_jws(&other, input.as_bytes(), &raw).is_err());
    }
}
