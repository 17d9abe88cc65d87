//! What every node runs, hub or edge: security and the source repository.

use std::sync::Arc;

use waybill_core::site::ServiceId;
use waybill_core::store::{BlobStore, Store};

use crate::security::Security;
use crate::source::{Source, SweepPolicy};
use crate::system::System;
use crate::{Clock, Error};

/// The use-cases every node serves. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Node {
    /// This node's stable id.
    pub service_id: ServiceId,
    /// Credentials, permissions, users, groups, tokens and API keys.
    pub security: Security,
    /// The source repository.
    pub source: Source,
    /// Health and system settings.
    pub system: System,
}

impl Node {
    /// A node over `store` and `blobs`.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        service_id: ServiceId,
        clock: Arc<dyn Clock>,
    ) -> Node {
        let security = Security::new(store.clone(), service_id.clone(), clock.clone());
        let system = System::new(store.clone(), service_id.clone());
        let source = Source::new(store, blobs, security.clone(), clock);
        Node {
            service_id,
            security,
            source,
            system,
        }
    }

    /// Restores login lockouts that outlived the last run, then starts the
    /// background work: the orphan sweep and the download-statistics writer.
    pub async fn start(&self, sweep: SweepPolicy) -> Result<(), Error> {
        self.security.restore_lockouts().await?;
        self.source.spawn_sweeper(sweep);
        self.source.spawn_stats_writer();
        Ok(())
    }
}
