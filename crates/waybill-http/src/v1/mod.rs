//! JFrog Distribution v1 under `/distribution/api/v1`: release bundles,
//! distribution and its trackers, signing keys, security (tokens, users,
//! permissions, groups; the token endpoints are also served at
//! Artifactory's and Access's paths), system, support bundles and migration.
//! Errors answer `{"status_code", "message"}`.

pub(crate) mod authz;
pub(crate) mod bundles;
pub(crate) mod distribute;
pub(crate) mod dto;
pub(crate) mod keys;
pub(crate) mod migration;
pub(crate) mod renders;
pub(crate) mod security;
pub(crate) mod support_bundle;
pub(crate) mod system;
