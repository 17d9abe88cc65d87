//! The hub-to-edge wire, both ends: the edge's internal API ([`api`], the
//! server), the hub's HTTP [`EdgeTransport`](waybill_app::delivery::EdgeTransport)
//! ([`client`]), and the edge registering itself with its hub ([`register`]).

pub(crate) mod api;
pub mod client;
mod register;

pub use register::register_with;
pub use waybill_edge::EdgeConfig;
