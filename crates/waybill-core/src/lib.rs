//! Waybill's domain core: release bundles, their versions and state machine,
//! distribution rules, and the repository traits that storage backends implement.
//!
//! This crate does no IO of its own. Storage is reached only through the
//! traits in [`store`]; the clock and randomness are passed in by callers.
//! It knows nothing about SQLite, sled, HTTP or wire JSON: backends depend on
//! it, never the reverse (a test in `waybill` checks this).
//!
//! The in-memory [`memory::MemoryStore`] is the reference semantics the
//! backends are tested against, and a ready store for embedding.

pub mod aql;
pub mod artifact;
pub mod auth;
pub mod bundle;
pub mod digest;
mod error;
pub mod gather;
pub mod keys;
pub mod memory;
pub mod name;
pub mod permissions;
pub mod rules;
pub mod scan;
pub mod signing;
pub mod site;
pub mod state;
pub mod store;
pub mod time;
pub mod tracker;

/// Re-exported so backends implement the traits with the same macro version.
pub use async_trait::async_trait;

pub use error::{Error, StoreError, StoreErrorKind};

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    /// A backend whose futures are not `Send` would fail to compile here.
    #[test]
    fn trait_objects_are_send_sync() {
        fn is<T: Send + Sync + ?Sized>() {}
        is::<Arc<dyn crate::store::Store>>();
        is::<Arc<dyn crate::store::BlobStore>>();
    }
}
