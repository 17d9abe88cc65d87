//! The offline commands: `waybill sign` and `waybill verify`, as
//! `cargo xtask dist` uses them for release archives.

use std::path::Path;
use std::process::{Command, Output};

const PASSPHRASE: &str = "correct horse battery staple";

fn key(name: &str) -> String {
    format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn waybill(args: &[&str], passphrase: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_waybill"));
    cmd.args(args).env_remove("WAYBILL_SIGNING_PASSPHRASE");
    if let Some(p) = passphrase {
        cmd.env("WAYBILL_SIGNING_PASSPHRASE", p);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn sign_then_verify_and_tampering_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("waybill-0.1.0.tar.gz");
    std::fs::write(&file, b"release archive bytes").unwrap();
    let f = file.to_str().unwrap();
    let (sec, public) = (
        key("rsa3072-protected.sec.asc"),
        key("rsa3072-protected.pub.asc"),
    );

    let signed = waybill(&["sign", "--key", &sec, f], Some(PASSPHRASE));
    assert!(signed.status.success(), "{}", stderr(&signed));
    let sig = format!("{f}.asc");
    let armored = std::fs::read_to_string(&sig).unwrap();
    assert!(
        armored.starts_with("-----BEGIN PGP SIGNATURE-----"),
        "{armored}"
    );
    // Checked by rPGP directly too, not only by our own command.
    waybill_pgp::verify_detached(
        &std::fs::read_to_string(&public).unwrap(),
        b"release archive bytes",
        &armored,
    )
    .unwrap();

    let ok = waybill(&["verify", "--key", &public, f], None);
    assert!(ok.status.success(), "{}", stderr(&ok));

    std::fs::write(&file, b"release archive bytez").unwrap();
    let bad = waybill(&["verify", "--key", &public, f], None);
    assert!(!bad.status.success(), "a changed file must not verify");
    assert!(stderr(&bad).contains("does not verify"), "{}", stderr(&bad));

    let other = waybill(
        &["verify", "--key", &key("rsa2048-plain.pub.asc"), f, &sig],
        None,
    );
    assert!(!other.status.success(), "another key must not verify");
}

#[test]
fn a_wrong_passphrase_names_the_variable_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.bin");
    std::fs::write(&file, b"x").unwrap();
    let f = file.to_str().unwrap();
    let sec = key("rsa3072-protected.sec.asc");
    const WRONG: &str = "not-the-passphrase-7731";
    for pass in [None, Some(WRONG)] {
        let out = waybill(&["sign", "--key", &sec, f], pass);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("WAYBILL_SIGNING_PASSPHRASE"), "{err}");
        assert!(!err.contains(WRONG), "secrets stay out of messages: {err}");
        assert!(!Path::new(&format!("{f}.asc")).exists());
    }
    // An unprotected key needs no passphrase.
    let plain = waybill(&["sign", "--key", &key("rsa2048-plain.sec.asc"), f], None);
    assert!(plain.status.success(), "{}", stderr(&plain));
}
