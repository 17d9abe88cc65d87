//! Generates the OpenPGP key fixtures under `tests/fixtures/keys/` with rPGP:
//! `cargo run --release -p waybill-pgp --example gen_test_keys -- tests/fixtures/keys`.
//! They are real keys, committed so tests do not spend seconds generating RSA.

use pgp::composed::{KeyType, SecretKeyParamsBuilder, SignedPublicKey};

fn generate(dir: &std::path::Path, name: &str, key_type: KeyType, passphrase: Option<&str>) {
    let mut params = SecretKeyParamsBuilder::default();
    params
        .key_type(key_type)
        .can_certify(true)
        .can_sign(true)
        .primary_user_id(format!("Waybill test {name} <{name}@waybill.test>"))
        .passphrase(passphrase.map(str::to_string));
    let secret = params
        .build()
        .expect("key parameters")
        .generate(rand::thread_rng())
        .expect("key generation");
    let public = SignedPublicKey::from(secret.clone());
    std::fs::write(
        dir.join(format!("{name}.sec.asc")),
        secret.to_armored_string(Default::default()).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{name}.pub.asc")),
        public.to_armored_string(Default::default()).unwrap(),
    )
    .unwrap();
    println!("wrote {name}");
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("output directory"));
    std::fs::create_dir_all(&dir).unwrap();
    // Passphrase of the protected keys: "correct horse battery staple".
    let pw = Some("correct horse battery staple");
    generate(&dir, "rsa3072-protected", KeyType::Rsa(3072), pw);
    generate(&dir, "rsa2048-plain", KeyType::Rsa(2048), None);
    generate(&dir, "ed25519-protected", KeyType::Ed25519Legacy, pw);
}
