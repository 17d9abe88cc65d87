//! The core's one error type, and the storage seam's error kinds.
//!
//! `Error` separates what a caller must tell apart: bad input (400), a
//! forbidden state change (400 or 409), a missing record (404), and a storage
//! failure (`Error::Store`, whose kind says whether retrying can help).
//! Domain code that aborts a transaction returns any non-`Store` variant,
//! so "the domain said no" is never confused with "the disk said no".

use std::fmt;

use crate::state::{VersionEvent, VersionState};

/// Errors of the Waybill core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input failed validation; `field` names what was wrong.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field, as the API names it.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The version's state does not allow this event.
    #[error("release bundle version is {state}; it cannot be {event}")]
    Transition {
        /// The state the version is in.
        state: VersionState,
        /// What was attempted.
        event: VersionEvent,
    },
    /// A record the operation needs does not exist.
    #[error("{what} not found")]
    NotFound {
        /// A human description of the missing record.
        what: String,
    },
    /// The operation conflicts with an existing record.
    #[error("{what} already exists")]
    AlreadyExists {
        /// A human description of the existing record.
        what: String,
    },
    /// The caller may not do this; the message names what they lack.
    #[error("{0}")]
    Forbidden(String),
    /// The record changed while the operation worked on it; retrying may succeed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A signing key could not sign (after it was unlocked); not the caller's fault.
    #[error("signing failed: {0}")]
    Signing(String),
    /// The store failed; the domain did not refuse anything.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// What kind of storage failure happened: the part callers branch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The record does not exist.
    NotFound,
    /// A record with that key already exists, or a concurrent write won.
    Conflict,
    /// Stored data failed to decode or failed its digest; never retry.
    Corrupt,
    /// The store cannot answer now (IO error, lock, shut down); may be retried.
    Unavailable,
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreErrorKind::NotFound => "not found",
            StoreErrorKind::Conflict => "conflict",
            StoreErrorKind::Corrupt => "corrupt",
            StoreErrorKind::Unavailable => "unavailable",
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A storage failure: a kind to branch on, the operation, and the cause.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    op: &'static str,
    detail: String,
    source: Option<BoxError>,
}

impl StoreError {
    /// A new error of `kind` raised by operation `op`.
    pub fn new(kind: StoreErrorKind, op: &'static str, detail: impl Into<String>) -> Self {
        StoreError {
            kind,
            op,
            detail: detail.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The kind callers branch on.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The store operation that failed.
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// What happened, without the kind and operation.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store {} in {}: {}", self.kind, self.op, self.detail)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
