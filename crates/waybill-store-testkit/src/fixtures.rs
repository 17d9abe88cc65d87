//! Builders for test records.

use waybill_core::artifact::{
    Build, BuildFile, BuildModule, Item, ItemKind, ItemPath, RepoKey, Repository,
};
use waybill_core::auth::{PasswordHash, TokenRecord, User};
use waybill_core::bundle::*;
use waybill_core::digest::Ingest;
use waybill_core::digest::Sha256;
use waybill_core::keys::SigningKey;
use waybill_core::name::{BundleName, BundleVersion};
use waybill_core::rules::DistributionRule;
use waybill_core::site::{EdgeSite, ServiceId, ServiceKind, ulid_from_parts};
use waybill_core::tracker::*;

/// A validated bundle name.
pub fn name(raw: &str) -> BundleName {
    BundleName::parse(raw).expect("valid name")
}

/// A validated version.
pub fn ver(raw: &str) -> BundleVersion {
    BundleVersion::parse(raw).expect("valid version")
}

/// A version with notes, a spec and two artifacts, so round trips cover every field.
pub fn version(n: &str, v: &str, created: Millis) -> ReleaseBundleVersion {
    let mut rb = ReleaseBundleVersion::new(name(n), ver(v), created, "alice");
    rb.description = format!("{n} {v} — ünïcode");
    rb.release_notes = Some(ReleaseNotes {
        syntax: NotesSyntax::Markdown,
        content: "# Notes\n* fixed".into(),
    });
    rb.spec = Spec {
        queries: vec![SpecQuery {
            aql: r#"items.find({"repo":"libs"})"#.into(),
            query_name: SpecQuery::default_name(0),
            mappings: vec![PathMapping {
                input: "^libs/(.*)$".into(),
                output: "prod/$1".into(),
            }],
            added_props: vec![AddedProp {
                key: "stage".into(),
                values: vec!["ga".into(), "lts".into()],
            }],
        }],
    };
    rb.artifacts = (0..2)
        .map(|i| BundleArtifact {
            checksum: Sha256::of(format!("{n}/{v}/{i}").as_bytes()),
            source_repo_path: format!("libs/{n}/{i}.bin"),
            target_repo_path: format!("prod/{n}/{i}.bin"),
            size: 1000 + i,
            props: [("stage".to_string(), vec!["ga".to_string()])].into(),
            scan: None,
        })
        .collect();
    // Signed bytes must come back verbatim: escapes, non-ASCII, no trailing newline.
    rb.signature = Some(waybill_core::signing::BundleSignature {
        key_id: "0123456789ABCDEF".into(),
        alg: waybill_core::signing::JwsAlg::RS256,
        payload: format!("{{\"name\":\"{n}\",\"note\":\"tab\\t \\u0001 ü \\\"q\\\" 🚀\"}}"),
        jws_header: "eyJhbGciOiJSUzI1NiJ9".into(),
        jws_signature: "c2ln".into(),
        pgp_signature: "-----BEGIN PGP SIGNATURE-----\n\nwsBc\n-----END PGP SIGNATURE-----\n"
            .into(),
        signed: 42,
    });
    rb
}

/// An edge site with a deterministic id derived from `n`.
pub fn site(n: u64, site_name: &str, city: &str, country: &str) -> EdgeSite {
    EdgeSite {
        service_id: ServiceId::new(
            ServiceKind::Edge,
            ulid_from_parts(1_700_000_000_000, n as u128),
        ),
        name: site_name.into(),
        city_name: city.into(),
        country_code: country.into(),
        url: format!("http://127.0.0.1:{}", 9000 + n),
        pairing_token: waybill_core::auth::Secret::new(format!("token-{n}")),
        tags: vec!["fixture".into()],
        position: None,
    }
}

/// A signing key record.
pub fn key(id: &str, default: bool) -> SigningKey {
    SigningKey {
        id: id.into(),
        public_key: format!("-----BEGIN PGP PUBLIC KEY BLOCK-----\n{id}\n"),
        private_key: None,
        created: 5,
        default,
    }
}

/// A distribute tracker for `n/v` with one site.
pub fn tracker(n: &str, v: &str) -> Tracker {
    Tracker {
        id: 0,
        kind: TrackerKind::Distribute,
        name: name(n),
        version: ver(v),
        rules: vec![DistributionRule {
            site_name: Some("us-*".into()),
            city_name: None,
            country_codes: vec!["US".into()],
        }],
        created_by: "alice".into(),
        created: 7,
        finished: None,
        sites: vec![SiteProgress {
            service_id: site(1, "us-east-1", "New York", "US").service_id,
            name: "us-east-1".into(),
            status: SiteStatus::InQueue,
            general_error: String::new(),
            total_files: 2,
            total_bytes: 2001,
            distributed_files: 0,
            distributed_bytes: 0,
            file_errors: vec![],
            files_in_progress: vec![],
            transferred_bytes: 0,
            // Retry state must survive every backend's round trip.
            attempts: 2,
            next_try: Some(99),
        }],
        auto_create: false,
        delete_on_success: false,
    }
}

/// A user. The hash is computed once per test binary: argon2 is slow by design.
pub fn user(user_name: &str, admin: bool) -> User {
    static HASH: std::sync::OnceLock<PasswordHash> = std::sync::OnceLock::new();
    User {
        name: user_name.into(),
        password_hash: HASH
            .get_or_init(|| PasswordHash::create("pw", [3; 16]).expect("hash"))
            .clone(),
        admin,
        email: Some(format!("{user_name}@example.com")),
        groups: vec!["readers".into()],
        created: 11,
    }
}

/// A token record.
pub fn token(id: &str, issued_at: Millis) -> TokenRecord {
    TokenRecord {
        token_id: id.into(),
        subject: "alice".into(),
        scope: "applied-permissions/user".into(),
        issued_at,
        expiry: Some(issued_at + 3_600_000),
        refresh_hash: Some(Sha256::of(id.as_bytes())),
        revoked: false,
    }
}

/// A repository record.
pub fn repository(key: &str) -> Repository {
    Repository {
        key: RepoKey::parse(key).expect("valid key"),
        package_type: "generic".into(),
        description: String::new(),
        created: 1,
        read_only: false,
    }
}

/// A repository key.
pub fn rkey(key: &str) -> RepoKey {
    RepoKey::parse(key).expect("valid key")
}

/// A normalised path.
pub fn ipath(path: &str) -> ItemPath {
    ItemPath::parse(path).expect("valid path")
}

/// A file whose content is `content`, with one property.
pub fn file(repo: &str, path: &str, content: &str, prop: (&str, &str)) -> Item {
    Item {
        repo: rkey(repo),
        path: ipath(path),
        kind: ItemKind::File,
        size: content.len() as u64,
        checksums: Some(Ingest::of(content.as_bytes())),
        created: 100,
        modified: 100,
        created_by: "alice".into(),
        modified_by: "alice".into(),
        props: [(prop.0.to_string(), vec![prop.1.to_string()])].into(),
    }
}

/// A build record with one artifact.
pub fn build(name: &str, number: &str) -> Build {
    Build {
        name: name.into(),
        number: number.into(),
        started: "2024-05-01T10:00:00.000+0000".into(),
        modules: vec![BuildModule {
            id: "org:app:1.0".into(),
            artifacts: vec![BuildFile {
                name: "app.jar".into(),
                file_type: "jar".into(),
                sha256: Some(Ingest::of(b"app").sha256),
                sha1: Some(Ingest::of(b"app").sha1),
                md5: None,
                path: Some("libs/org/app.jar".into()),
            }],
            dependencies: vec![],
        }],
        created: 3,
        created_by: "ci".into(),
    }
}
