//! Waybill: self-hosted release distribution.
//!
//! This facade re-exports the core so embedders depend on one crate, and
//! carries the backend choice behind the `sqlite` and `sled` features.

pub use waybill_core::*;

pub mod backend;
