//! The scan hook's block policy and its verdict on each artifact: a
//! deny-list of checksums and of property values, stored as one document.

use serde::{Deserialize, Serialize};

use crate::bundle::{BundleArtifact, ScanInfo};

/// What blocks an artifact from distribution.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanPolicy {
    /// Properties that block: an artifact with any listed value is blocked.
    #[serde(default)]
    pub blocked_properties: Vec<BlockedProperty>,
    /// SHA-256 checksums that block (hex, any case).
    #[serde(default)]
    pub blocked_checksums: Vec<String>,
}

/// A property key and the values of it that block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockedProperty {
    /// The property key.
    pub key: String,
    /// Values that block.
    pub values: Vec<String>,
}

impl ScanPolicy {
    /// The verdict on one artifact: the first rule that blocks it, named.
    pub fn verdict(&self, a: &BundleArtifact) -> ScanInfo {
        if self
            .blocked_checksums
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&a.checksum.to_hex()))
        {
            return ScanInfo {
                blocked: true,
                blocked_reason: Some(format!("checksum {} is on the deny-list", a.checksum)),
            };
        }
        for rule in &self.blocked_properties {
            if let Some(v) = a
                .props
                .get(&rule.key)
                .and_then(|vs| vs.iter().find(|v| rule.values.contains(v)))
            {
                return ScanInfo {
                    blocked: true,
                    blocked_reason: Some(format!("property {}={v} is blocked", rule.key)),
                };
            }
        }
        ScanInfo {
            blocked: false,
            blocked_reason: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Sha256;

    fn artifact(props: &[(&str, &str)]) -> BundleArtifact {
        BundleArtifact {
            checksum: Sha256::of(b"content"),
            source_repo_path: "r/a".into(),
            target_repo_path: "r/a".into(),
            size: 7,
            props: props
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                .collect(),
            scan: None,
        }
    }

    #[test]
    fn checksums_and_property_values_block_and_say_why() {
        let a = artifact(&[("license", "GPL"), ("team", "core")]);
        assert!(!ScanPolicy::default().verdict(&a).blocked);
        let by_sum = ScanPolicy {
            blocked_checksums: vec![a.checksum.to_hex().to_uppercase()],
            ..Default::default()
        };
        let v = by_sum.verdict(&a);
        assert!(v.blocked);
        assert!(v.blocked_reason.unwrap().contains("deny-list"));
        let by_prop = ScanPolicy {
            blocked_properties: vec![BlockedProperty {
                key: "license".into(),
                values: vec!["GPL".into(), "AGPL".into()],
            }],
            ..Default::default()
        };
        assert_eq!(
            by_prop.verdict(&a).blocked_reason.as_deref(),
            Some("property license=GPL is blocked")
        );
        let other = artifact(&[("license", "MIT")]);
        assert!(!by_prop.verdict(&other).blocked);
    }
}
