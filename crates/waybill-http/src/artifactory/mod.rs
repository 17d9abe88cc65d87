//! The Artifactory REST API under `/artifactory`, as the JFrog CLI and
//! client libraries call it: the source repository and API keys. Errors
//! answer `{"errors": [{"status", "message"}]}` (see `error::wire_errors`).

pub(crate) mod apikeys;
pub mod source;
