//! Black-box tests of the `waybill` binary: real processes, real stores,
//! real HTTP on 127.0.0.1 with ephemeral ports.
//!
//! - `support`: starting and stopping servers.
//! - `cli`: the offline `sign` and `verify` commands.
//! - `serve`: start-up, bootstrap, ping/info, auth, settings, shutdown.
//! - `authz_matrix`: every endpoint against every kind of caller.
//! - `bundles`: release bundles v1 and signing keys.
//! - `caching`: the read caches never answer stale.
//! - `clients`: real third-party client libraries (dohq-artifactory).
//! - `distribution`: a hub and edges as separate processes.
//! - `security`: users, tokens, throttling.
//! - `hardening`: regressions for what a black-box probe found (issue 11).
//! - `source`: the Artifactory-compatible source repository.
//! - `support_bundles`: support bundles, and that they hold no secrets.
//! - `layering`: the dependency-direction invariant.
//! - `migration`: moving release bundles between hubs.

mod authz_matrix;
mod bundles;
mod caching;
mod cli;
mod clients;
mod distribution;
mod hardening;
mod layering;
mod migration;
mod security;
mod serve;
mod source;
mod support;
mod support_bundles;
