//! Choosing a storage backend at run time among those compiled in.
//!
//! `StoreKind` lists every engine whether or not its feature is on, so naming
//! one that was left out gets "not compiled in" rather than "unknown".

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use waybill_core::store::Store;

/// A storage engine Waybill knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// SQLite, the embedded default (feature `sqlite`).
    Sqlite,
    /// sled 0.34 (feature `sled`).
    Sled,
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The name is no engine Waybill knows.
    #[error("unknown store '{0}'; choose sqlite or sled")]
    Unknown(String),
    /// The engine exists but this binary was built without it.
    #[error("store '{0}' is not compiled into this binary; rebuild with `--features {0}`")]
    NotCompiledIn(StoreKind),
    /// The engine failed to open.
    #[error(transparent)]
    Open(#[from] waybill_core::StoreError),
}

impl StoreKind {
    /// Engines compiled into this binary.
    pub fn compiled_in() -> Vec<StoreKind> {
        let mut kinds = Vec::new();
        if cfg!(feature = "sqlite") {
            kinds.push(StoreKind::Sqlite);
        }
        if cfg!(feature = "sled") {
            kinds.push(StoreKind::Sled);
        }
        kinds
    }

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Sled => "sled",
        }
    }
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StoreKind {
    type Err = BackendError;

    fn from_str(s: &str) -> Result<StoreKind, BackendError> {
        match s.to_ascii_lowercase().as_str() {
            "sqlite" | "sqlite3" => Ok(StoreKind::Sqlite),
            "sled" => Ok(StoreKind::Sled),
            _ => Err(BackendError::Unknown(s.to_string())),
        }
    }
}

/// Opens the store of `kind` under `data_dir` (`waybill.db` for SQLite,
/// `sled/` for sled).
pub fn open_store(kind: StoreKind, data_dir: &Path) -> Result<Arc<dyn Store>, BackendError> {
    let _ = data_dir;
    match kind {
        #[cfg(feature = "sqlite")]
        StoreKind::Sqlite => Ok(Arc::new(waybill_store_sqlite::SqliteStore::open(
            data_dir.join("waybill.db"),
        )?)),
        #[cfg(feature = "sled")]
        StoreKind::Sled => Ok(Arc::new(waybill_store_sled::SledStore::open(
            data_dir.join("sled"),
        )?)),
        #[allow(unreachable_patterns)]
        other => Err(BackendError::NotCompiledIn(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_is_explained() {
        assert_eq!("SQLite".parse::<StoreKind>().unwrap(), StoreKind::Sqlite);
        assert_eq!("sled".parse::<StoreKind>().unwrap(), StoreKind::Sled);
        let err = "postgres".parse::<StoreKind>().unwrap_err().to_string();
        assert!(err.contains("unknown store 'postgres'"), "{err}");
    }

    #[test]
    fn every_compiled_in_engine_opens() {
        for kind in StoreKind::compiled_in() {
            let dir = tempfile::tempdir().unwrap();
            assert!(open_store(kind, dir.path()).is_ok(), "{kind}");
        }
    }

    #[cfg(not(all(feature = "sqlite", feature = "sled")))]
    #[test]
    fn missing_engine_says_not_compiled_in() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [StoreKind::Sqlite, StoreKind::Sled] {
            if !StoreKind::compiled_in().contains(&kind) {
                let err = open_store(kind, dir.path()).err().unwrap().to_string();
                assert!(err.contains("not compiled into this binary"), "{err}");
            }
        }
    }
}
