//! Waybill's application layer: every use-case of the hub and of the node.
//!
//! Wires (HTTP v1, Artifactory, Mission Control, later Lifecycle v2, the CLI
//! and the dashboard) parse a request, call one use-case here, and render
//! what it returns. A use-case takes the caller first, authorizes, and
//! returns core types or outcome structs, never a status code: errors are an
//! [`Error`] whose [`ErrorKind`] each wire maps to its own status.
//!
//! This crate knows no HTTP stack, no HTTP client and no storage backend; it
//! reaches the store through the core's repository traits.

pub mod bundles;
mod clock;
pub mod delivery;
pub mod distribution;
pub mod epoch;
mod error;
mod hub;
pub mod keys;
pub mod migration;
mod node;
pub mod security;
pub mod sites;
pub mod source;
pub mod support;
pub mod system;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, ErrorKind, Result};
pub use hub::{Hub, HubConfig};
pub use node::Node;
pub use security::Principal;
