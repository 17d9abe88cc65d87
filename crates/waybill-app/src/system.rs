//! The system's own state: whether storage answers, and its settings.

use std::sync::Arc;

use waybill_core::StoreError;
use waybill_core::site::ServiceId;
use waybill_core::store::Store;

use crate::{Error, Principal};

const CALL_HOME: &str = "system.call_home_enabled";

/// The system use-cases. Cheap to clone.
#[derive(Clone, Debug)]
pub struct System {
    store: Arc<dyn Store>,
    service_id: ServiceId,
}

impl System {
    /// The system over `store`, serving as `service_id`.
    pub fn new(store: Arc<dyn Store>, service_id: ServiceId) -> System {
        System { store, service_id }
    }

    /// This node's stable id.
    pub fn service_id(&self) -> &ServiceId {
        &self.service_id
    }

    /// Whether storage answers (anyone may ask: monitors do, anonymously).
    pub async fn health(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    /// Whether the call-home setting is on (admin only).
    pub async fn call_home(&self, who: &Principal) -> Result<bool, Error> {
        who.require_admin()?;
        Ok(self.store.get_setting(CALL_HOME).await?.as_deref() == Some("true"))
    }

    /// Sets the call-home setting (admin only).
    pub async fn set_call_home(&self, who: &Principal, on: bool) -> Result<(), Error> {
        who.require_admin()?;
        let value = if on { "true" } else { "false" };
        self.store.put_setting(CALL_HOME, value).await?;
        Ok(())
    }
}
