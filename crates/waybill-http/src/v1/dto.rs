//! Wire types: the JSON shapes JFrog clients send and expect.
//!
//! Field names and types follow the seed pages and the wire contract exactly;
//! the core's types are converted to and from these by hand.

use serde::{Deserialize, Serialize};

/// `GET system/ping` and error bodies share this shape.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct StatusMessage {
    /// The HTTP status, repeated in the body.
    pub status_code: u16,
    /// Human text.
    pub message: String,
}

/// `GET system/info`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct SystemInfo {
    /// `STABLE`, or `UNSTABLE` when storage does not answer.
    pub status: String,
    /// Details, including the error when unstable.
    pub message: String,
    /// Server version.
    pub version: String,
    /// This server's `jfds@…` id.
    pub service_id: String,
}

/// `GET`/`POST system/settings`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct SystemSettings {
    /// Stored as given; Waybill never sends usage statistics anywhere.
    #[serde(default)]
    pub call_home_enabled: bool,
}
