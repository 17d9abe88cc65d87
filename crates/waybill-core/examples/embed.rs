//! Embedding the Waybill core as a library: create a release bundle version,
//! sign it through the state machine, and pick the edge sites a set of
//! distribution rules selects. Run with `cargo run -p waybill-core --example embed`.
//!
//! Any `Store` works here; swap `MemoryStore` for `SqliteStore` or `SledStore`
//! from their crates to make the data durable.

use std::sync::Arc;

use waybill_core::bundle::{BundleArtifact, ReleaseBundleVersion};
use waybill_core::digest::Sha256;
use waybill_core::memory::MemoryStore;
use waybill_core::name::{BundleName, BundleVersion};
use waybill_core::rules::{DistributionRule, RuleSet};
use waybill_core::site::{EdgeSite, ServiceId, ServiceKind, ulid_from_parts};
use waybill_core::state::{After, VersionEvent};
use waybill_core::store::Store;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), waybill_core::Error> {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());

    // Names are validated once, at the edge of the domain.
    let name = BundleName::parse("firmware")?;
    let version = BundleVersion::parse("2.4.0")?;
    let mut rb = ReleaseBundleVersion::new(name.clone(), version.clone(), 1_700_000_000_000, "ci");
    rb.artifacts.push(BundleArtifact {
        checksum: Sha256::of(b"firmware image"),
        source_repo_path: "builds/fw/2.4.0/fw.bin".into(),
        target_repo_path: "releases/fw/fw.bin".into(),
        size: 14,
        props: Default::default(),
        scan: None,
    });
    store.create_version(rb).await?;

    // Distributing an OPEN version is refused by the state machine ...
    let open = store
        .get_version(&name, &version)
        .await?
        .expect("just created");
    println!(
        "distribute while {}: {}",
        open.state,
        open.state.apply(VersionEvent::Distribute).unwrap_err()
    );

    // ... so sign it: the transition runs inside the store's transaction.
    let signed = store
        .update_version(
            &name,
            &version,
            Box::new(|v| {
                if let After::State(next) = v.state.apply(VersionEvent::Sign)? {
                    v.state = next;
                }
                Ok(())
            }),
        )
        .await?;
    println!("{} is now {}", signed.label(), signed.state);

    // Which sites do these rules reach?
    let sites: Vec<EdgeSite> = [
        ("de-fra-1", "Frankfurt", "DE"),
        ("de-muc-1", "München", "DE"),
        ("us-nyc-1", "New York", "US"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (n, city, cc))| EdgeSite {
        service_id: ServiceId::new(ServiceKind::Edge, ulid_from_parts(1, i as u128)),
        name: n.to_string(),
        city_name: city.to_string(),
        country_code: cc.to_string(),
        url: format!("http://edge-{i}.example:8082"),
        pairing_token: waybill_core::auth::Secret::new("not used here"),
        tags: Vec::new(),
        position: None,
    })
    .collect();
    let rules = RuleSet::new(&[DistributionRule {
        site_name: None,
        city_name: Some("m?nchen".into()),
        country_codes: vec!["de".into()],
    }]);
    for site in rules.select(&sites) {
        println!(
            "selected {} ({}, {})",
            site.name, site.city_name, site.country_code
        );
    }
    Ok(())
}
