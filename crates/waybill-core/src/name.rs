//! Validated names: `BundleName` and `BundleVersion`.
//!
//! Both end up raw inside URL paths (the JFrog CLI concatenates them without
//! escaping) and inside storage keys and target paths, so anything that could
//! change a path's meaning is refused here, once, instead of at every use.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Longest accepted name or version, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// The version path segment that means "the newest version".
pub const LATEST: &str = "LATEST";

/// A release bundle's name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BundleName(String);

/// A release bundle version string (free-form, not necessarily semver).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BundleVersion(String);

impl BundleName {
    /// Parses and validates a bundle name.
    pub fn parse(raw: impl Into<String>) -> Result<Self, Error> {
        let raw = raw.into();
        check_segment("name", &raw)?;
        Ok(Self(raw))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl BundleVersion {
    /// Parses and validates a version; `LATEST` is reserved for lookups.
    pub fn parse(raw: impl Into<String>) -> Result<Self, Error> {
        let raw = raw.into();
        check_segment("version", &raw)?;
        if raw.eq_ignore_ascii_case(LATEST) {
            return Err(Error::invalid(
                "version",
                format!("'{raw}' is reserved: it names the newest version"),
            ));
        }
        Ok(Self(raw))
    }

    /// The version as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_segment(field: &'static str, raw: &str) -> Result<(), Error> {
    if raw.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    let n_chars = raw.chars().count();
    if n_chars > MAX_NAME_CHARS {
        return Err(Error::invalid(
            field,
            format!("is {n_chars} characters long; the limit is {MAX_NAME_CHARS}"),
        ));
    }
    if raw.trim() != raw {
        return Err(Error::invalid(
            field,
            "must not start or end with white space",
        ));
    }
    if raw == "." || raw.contains("..") {
        return Err(Error::invalid(field, "must not be '.' or contain '..'"));
    }
    // `?`, `#` and `%` cannot survive the JFrog CLI's unescaped URL building.
    if let Some(c) = raw
        .chars()
        .find(|c| unsafe_char(*c) || matches!(c, '/' | '\\' | '?' | '#' | '%'))
    {
        return Err(Error::invalid(
            field,
            format!("must not contain {}", describe_char(c)),
        ));
    }
    Ok(())
}

/// Characters no name or path may hold: controls, and the invisible ones
/// that make text display unlike what it is (bidirectional overrides and
/// isolates, direction marks, line and paragraph separators), which would
/// let `evil\u{202E}txt.exe` pass for something else in a listing.
pub fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

pub(crate) fn describe_char(c: char) -> String {
    if c.is_control() {
        format!("control character U+{:04X}", c as u32)
    } else if unsafe_char(c) {
        format!("invisible formatting character U+{:04X}", c as u32)
    } else {
        format!("'{c}'")
    }
}

macro_rules! string_newtype_impls {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $t {
            type Error = Error;
            fn try_from(raw: String) -> Result<Self, Error> {
                Self::parse(raw)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
string_newtype_impls!(BundleName);
string_newtype_impls!(BundleVersion);

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_name(raw: &str, expect_err: Option<&str>) {
        match (BundleName::parse(raw), expect_err) {
            (Ok(_), None) => {}
            (Err(e), Some(fragment)) => {
                let msg = e.to_string();
                assert!(msg.contains("name"), "{msg}");
                assert!(msg.contains(fragment), "{msg:?} lacks {fragment:?}");
            }
            (res, _) => panic!("{raw:?}: unexpected {res:?}"),
        }
    }

    #[test]
    fn names() {
        check_name("app", None);
        check_name("my-app_1.0+build", None);
        check_name("München", None);
        check_name(&"x".repeat(128), None);
        check_name(&"ü".repeat(128), None);
        check_name("", Some("empty"));
        check_name(&"x".repeat(129), Some("129 characters"));
        check_name("a/b", Some("'/'"));
        check_name("a\\b", Some("'\\'"));
        check_name("a\u{0}b", Some("U+0000"));
        check_name("a\nb", Some("U+000A"));
        check_name("..", Some(".."));
        check_name("a..b", Some(".."));
        check_name(".", Some(".."));
        check_name(" a", Some("white space"));
        check_name("a?b", Some("'?'"));
    }

    #[test]
    fn versions_reserve_latest() {
        assert!(BundleVersion::parse("1.0.0").is_ok());
        assert!(BundleVersion::parse("LATEST-1").is_ok());
        for raw in ["LATEST", "latest", "Latest"] {
            let err = BundleVersion::parse(raw).unwrap_err().to_string();
            assert!(err.contains("version") && err.contains("reserved"), "{err}");
        }
        // LATEST is only reserved for versions: a bundle may be called that.
        assert!(BundleName::parse("LATEST").is_ok());
    }

    #[test]
    fn serde_validates() {
        // Stored records are validated again when read, so corruption is caught.
        let ok: Result<BundleName, _> = BundleName::try_from("app".to_string());
        assert_eq!(ok.unwrap().as_str(), "app");
        assert!(BundleName::try_from("a/b".to_string()).is_err());
    }
}
