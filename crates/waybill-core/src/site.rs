//! Edge sites and service ids.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Which kind of JFrog-style service an id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// A distribution hub: `jfds@…`.
    Distribution,
    /// An edge node (an Artifactory edge in JFrog's terms): `jfrt@…`.
    Edge,
}

impl ServiceKind {
    fn prefix(self) -> &'static str {
        match self {
            ServiceKind::Distribution => "jfds",
            ServiceKind::Edge => "jfrt",
        }
    }
}

/// A stable service id such as `jfds@01J…` or `jfrt@01J…`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceId(String);

impl ServiceId {
    /// A new id of `kind` from a ULID (time-ordered, so ids sort by creation).
    pub fn new(kind: ServiceKind, ulid: ulid::Ulid) -> ServiceId {
        ServiceId(format!("{}@{}", kind.prefix(), ulid))
    }

    /// Parses `jfds@<ulid>` or `jfrt@<ulid>`.
    pub fn parse(raw: impl Into<String>) -> Result<ServiceId, Error> {
        let raw = raw.into();
        let valid = raw.split_once('@').is_some_and(|(prefix, id)| {
            matches!(prefix, "jfds" | "jfrt") && ulid::Ulid::from_string(id).is_ok()
        });
        if !valid {
            return Err(Error::invalid(
                "service_id",
                format!("'{raw}' is not of the form jfds@<ulid> or jfrt@<ulid>"),
            ));
        }
        Ok(ServiceId(raw))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ServiceId {
    type Error = Error;
    fn try_from(raw: String) -> Result<Self, Error> {
        ServiceId::parse(raw)
    }
}

impl From<ServiceId> for String {
    fn from(v: ServiceId) -> String {
        v.0
    }
}

/// Builds a ULID from a time and 80 bits of randomness supplied by the caller,
/// so the core reads neither the clock nor the OS random source itself.
pub fn ulid_from_parts(now_millis: u64, random: u128) -> ulid::Ulid {
    ulid::Ulid::from_parts(now_millis, random)
}

/// An edge site that bundles can be distributed to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeSite {
    /// The edge's stable id, `jfrt@<ulid>`.
    pub service_id: ServiceId,
    /// Unique site name, matched by `site_name` rules.
    pub name: String,
    /// City, matched by `city_name` rules.
    pub city_name: String,
    /// ISO 3166 country code, matched by `country_codes` rules.
    pub country_code: String,
    /// Base URL where the hub reaches the edge.
    pub url: String,
    /// The secret the hub presents to the edge, and the key of its receipts.
    #[serde(default = "no_token")]
    pub pairing_token: crate::auth::Secret,
    /// Free labels from registration.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Where the site is, when registration said.
    #[serde(default)]
    pub position: Option<Position>,
}

/// A site's latitude and longitude, in millionths of a degree (about 0.1 m),
/// so sites stay comparable with `Eq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Latitude × 10⁶, −90° to 90°.
    pub latitude_e6: i32,
    /// Longitude × 10⁶, −180° to 180°.
    pub longitude_e6: i32,
}

impl Position {
    /// A position from degrees, or `None` when either is out of range or
    /// not a number.
    pub fn from_degrees(latitude: f64, longitude: f64) -> Option<Position> {
        let ok = (-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude);
        ok.then(|| Position {
            latitude_e6: (latitude * 1e6).round() as i32,
            longitude_e6: (longitude * 1e6).round() as i32,
        })
    }

    /// Latitude in degrees.
    pub fn latitude(&self) -> f64 {
        f64::from(self.latitude_e6) / 1e6
    }

    /// Longitude in degrees.
    pub fn longitude(&self) -> f64 {
        f64::from(self.longitude_e6) / 1e6
    }
}

fn no_token() -> crate::auth::Secret {
    crate::auth::Secret::new("")
}

impl EdgeSite {
    /// The JFrog `type` of every site Waybill distributes to.
    pub const TYPE: &'static str = "edge";

    /// A site carrying only what rule matching reads; for tests and benches.
    pub fn for_matching(name: &str, city: &str, country: &str) -> EdgeSite {
        EdgeSite {
            service_id: ServiceId(format!("jfrt@{}", ulid::Ulid::nil())),
            name: name.to_string(),
            city_name: city.to_string(),
            country_code: country.to_string(),
            url: String::new(),
            pairing_token: no_token(),
            tags: Vec::new(),
            position: None,
        }
    }
}

/// The receipt an edge returns for a committed manifest: HMAC-SHA256 under
/// the pairing token, so only the edge holding the token can produce it.
pub fn receipt(
    token: &crate::auth::Secret,
    name: &str,
    version: &str,
    manifest: &crate::digest::Sha256,
) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.expose().as_bytes());
    let tag = ring::hmac::sign(
        &key,
        format!("waybill-receipt\n{name}\n{version}\n{manifest}").as_bytes(),
    );
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_keep_micro_degrees_and_refuse_the_impossible() {
        let p = Position::from_degrees(50.110_922, 8.682_127).unwrap();
        assert_eq!((p.latitude_e6, p.longitude_e6), (50_110_922, 8_682_127));
        assert_eq!((p.latitude(), p.longitude()), (50.110922, 8.682127));
        assert!(Position::from_degrees(-90.0, 180.0).is_some());
        for (lat, lon) in [
            (90.5, 0.0),
            (0.0, -180.5),
            (f64::NAN, 0.0),
            (0.0, f64::INFINITY),
        ] {
            assert!(Position::from_degrees(lat, lon).is_none(), "{lat} {lon}");
        }
    }

    #[test]
    fn service_ids_round_trip() {
        let id = ServiceId::new(
            ServiceKind::Distribution,
            ulid_from_parts(1_700_000_000_000, 42),
        );
        assert!(id.as_str().starts_with("jfds@"));
        assert_eq!(ServiceId::parse(id.to_string()).unwrap(), id);
        let edge = ServiceId::new(ServiceKind::Edge, ulid_from_parts(1, 2));
        assert!(edge.as_str().starts_with("jfrt@"));
        for bad in [
            "",
            "jfds@",
            "jfds@nope",
            "xx@01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        ] {
            assert!(ServiceId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn receipts_bind_token_bundle_and_manifest() {
        use crate::auth::Secret;
        use crate::digest::Sha256;
        let (t, m) = (Secret::new("pairing"), Sha256::of(b"manifest"));
        let r = receipt(&t, "app", "1.0", &m);
        assert_eq!(r.len(), 64);
        assert_eq!(r, receipt(&t, "app", "1.0", &m));
        assert_ne!(r, receipt(&Secret::new("other"), "app", "1.0", &m));
        assert_ne!(r, receipt(&t, "app", "1.1", &m));
        assert_ne!(r, receipt(&t, "app", "1.0", &Sha256::of(b"other")));
    }
}
