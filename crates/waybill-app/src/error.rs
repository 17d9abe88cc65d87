//! `Error`: how a use-case fails, as a kind callers branch on and a message
//! a person can act on. It carries no HTTP: each wire maps kinds to its own
//! statuses and bodies, in one table.

use waybill_core::{StoreError, StoreErrorKind};

/// What went wrong, as callers branch on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is wrong; the message says how.
    Invalid,
    /// No valid credential came with it.
    Unauthenticated,
    /// The caller is known but not allowed.
    Forbidden,
    /// What it names does not exist (or the caller may not know it does).
    NotFound,
    /// It clashes with what is stored: exists already, changed meanwhile,
    /// or not in a state that allows it.
    Conflict,
    /// A body or an archive over its limit.
    TooLarge,
    /// The client paused too long while sending; nothing was stored.
    Stalled,
    /// Too many failed logins: retry after [`Error::retry_after`] seconds.
    /// Only the authenticator uses it; bad input never does.
    Throttled,
    /// A dependency is down for now; retrying may help.
    Unavailable,
    /// A fault of ours. The message is for the log, never for clients.
    Internal,
}

/// A failed use-case.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    retry_after: Option<u64>,
}

impl Error {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// [`ErrorKind::Invalid`].
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Invalid, message)
    }

    /// [`ErrorKind::Unauthenticated`].
    pub fn unauthenticated(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unauthenticated, message)
    }

    /// [`ErrorKind::Forbidden`].
    pub fn forbidden(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Forbidden, message)
    }

    /// [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }

    /// [`ErrorKind::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Conflict, message)
    }

    /// [`ErrorKind::TooLarge`].
    pub fn too_large(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::TooLarge, message)
    }

    /// [`ErrorKind::Internal`]; `detail` goes to the log only.
    pub fn internal(detail: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, detail)
    }

    /// [`ErrorKind::Throttled`], retry after `seconds`.
    pub fn throttled(message: impl Into<String>, seconds: u64) -> Error {
        Error {
            retry_after: Some(seconds),
            ..Error::new(ErrorKind::Throttled, message)
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message: for clients, except of [`ErrorKind::Internal`] and
    /// [`ErrorKind::Unavailable`] errors, which only the log may see.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Seconds to wait before retrying, for [`ErrorKind::Throttled`].
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        let kind = match e.kind() {
            StoreErrorKind::NotFound => ErrorKind::NotFound,
            StoreErrorKind::Conflict => ErrorKind::Conflict,
            StoreErrorKind::Unavailable => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<waybill_core::Error> for Error {
    fn from(e: waybill_core::Error) -> Error {
        use waybill_core::Error as Core;
        let e = match e {
            Core::Store(e) => return e.into(),
            e => e,
        };
        let kind = match &e {
            Core::Invalid { .. } | Core::Transition { .. } => ErrorKind::Invalid,
            Core::NotFound { .. } => ErrorKind::NotFound,
            Core::Forbidden(_) => ErrorKind::Forbidden,
            Core::AlreadyExists { .. } | Core::Conflict(_) => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, e.to_string())
    }
}

/// A use-case's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_store_errors_keep_their_kind_and_message() {
        let e: Error = waybill_core::Error::Invalid {
            field: "name",
            reason: "too long".into(),
        }
        .into();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.message().contains("too long"), "{}", e.message());
        let e: Error = StoreError::new(StoreErrorKind::Conflict, "put", "changed meanwhile").into();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let e: Error = waybill_core::Error::Store(StoreError::new(
            StoreErrorKind::Unavailable,
            "get",
            "locked",
        ))
        .into();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let e: Error = StoreError::new(StoreErrorKind::Corrupt, "get", "bad row").into();
        assert_eq!(e.kind(), ErrorKind::Internal);
    }
}
