//! The hub: every use-case, wired over one store, one blob store and one
//! transport to the edges. Wires, the CLI and tests build one of these.

use std::sync::Arc;

use waybill_core::site::ServiceId;
use waybill_core::store::{BlobStore, Store};

use crate::Node;
use crate::bundles::Bundles;
use crate::delivery::EdgeTransport;
use crate::distribution::{Distribution, RetryPolicy};
use crate::keys::Keys;
use crate::migration::Migration;
use crate::security::Security;
use crate::sites::Sites;
use crate::source::Source;
use crate::support::{LogRing, Support};
use crate::system::System;
use crate::{Clock, SystemClock};

/// What a hub is built with besides its storage.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// This hub's stable id, `jfds@<ulid>`.
    pub service_id: ServiceId,
    /// How the hub reaches its edges.
    pub transport: Arc<dyn EdgeTransport>,
    /// How distribution retries a site.
    pub retry: RetryPolicy,
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
    /// Recent log lines, for support bundles.
    pub logs: LogRing,
}

impl HubConfig {
    /// A hub `service_id` reaching edges through `transport`, with the
    /// default retries and the system clock.
    pub fn new(service_id: ServiceId, transport: Arc<dyn EdgeTransport>) -> HubConfig {
        HubConfig {
            service_id,
            transport,
            retry: RetryPolicy::default(),
            clock: Arc::new(SystemClock),
            logs: LogRing::default(),
        }
    }
}

/// Every use-case of the hub, grouped by capability. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Hub {
    /// This hub's stable id.
    pub service_id: ServiceId,
    /// Credentials, permissions, users, groups, tokens and API keys.
    pub security: Security,
    /// The source repository.
    pub source: Source,
    /// Signing keys.
    pub keys: Keys,
    /// Release bundles.
    pub bundles: Bundles,
    /// Edge sites.
    pub sites: Sites,
    /// Distribution and its engine.
    pub distribution: Distribution,
    /// Support bundles.
    pub support: Support,
    /// Moving release bundles between hubs.
    pub migration: Migration,
    /// Health and system settings.
    pub system: System,
}

impl Hub {
    /// The node part of this hub: what it shares with edges.
    pub fn node(&self) -> Node {
        Node {
            service_id: self.service_id.clone(),
            security: self.security.clone(),
            source: self.source.clone(),
            system: self.system.clone(),
        }
    }

    /// A hub over `store` and `blobs`.
    pub fn new(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>, config: HubConfig) -> Hub {
        let HubConfig {
            service_id,
            transport,
            retry,
            clock,
            logs,
        } = config;
        let Node {
            security,
            source,
            system,
            ..
        } = Node::new(
            store.clone(),
            blobs.clone(),
            service_id.clone(),
            clock.clone(),
        );
        let sites = Sites::new(store.clone(), transport);
        let keys = Keys::new(store.clone(), clock.clone(), sites.clone());
        let bundles = Bundles::new(
            store.clone(),
            blobs.clone(),
            security.clone(),
            source.clone(),
            keys.clone(),
            clock.clone(),
        );
        let support = Support::new(
            store.clone(),
            blobs.clone(),
            source.clone(),
            service_id.clone(),
            clock.clone(),
            logs,
        );
        let migration = Migration::new(
            store.clone(),
            bundles.clone(),
            service_id.clone(),
            clock.clone(),
        );
        let distribution = Distribution::new(
            store,
            blobs,
            security.clone(),
            bundles.clone(),
            sites.clone(),
            clock,
            retry,
        );
        Hub {
            service_id,
            security,
            source,
            keys,
            bundles,
            sites,
            distribution,
            support,
            migration,
            system,
        }
    }
}
