//! The release bundle version state machine.
//!
//! A closed set of states and events and one pure function between them:
//! every rule about what a version allows lives in `VersionState::apply`, so
//! no handler can invent its own. The repository persists the outcome; this
//! module never touches it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Where a version is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VersionState {
    /// Created, still editable, not yet signed.
    Open,
    /// Signed: immutable and distributable.
    Signed,
}

/// Something a caller wants to do to a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VersionEvent {
    /// Change its content or metadata.
    Update,
    /// Sign it.
    Sign,
    /// Send it to edges.
    Distribute,
    /// Record a scan verdict (metadata outside the signed payload).
    Scan,
    /// Remove it.
    Delete,
}

/// The result of a permitted event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// The version exists afterwards, in this state.
    State(VersionState),
    /// The version is gone.
    Deleted,
}

impl VersionState {
    /// All states, for exhaustive tests and listings.
    pub const ALL: [VersionState; 2] = [VersionState::Open, VersionState::Signed];

    /// Applies `event`, or says why the state forbids it.
    pub fn apply(self, event: VersionEvent) -> Result<After, Error> {
        use VersionEvent as E;
        use VersionState as S;
        let next = match (self, event) {
            (S::Open, E::Update) => S::Open,
            (S::Open, E::Sign) => S::Signed,
            (S::Signed, E::Distribute) => S::Signed,
            (state, E::Scan) => state,
            (_, E::Delete) => return Ok(After::Deleted),
            (S::Open, E::Distribute) | (S::Signed, E::Update | E::Sign) => {
                return Err(Error::Transition { state: self, event });
            }
        };
        Ok(After::State(next))
    }

    /// The wire name JFrog Distribution uses.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Open => "OPEN",
            VersionState::Signed => "SIGNED",
        }
    }
}

impl VersionEvent {
    /// All events, for exhaustive tests.
    pub const ALL: [VersionEvent; 5] = [
        VersionEvent::Update,
        VersionEvent::Sign,
        VersionEvent::Distribute,
        VersionEvent::Scan,
        VersionEvent::Delete,
    ];
}

impl fmt::Display for VersionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for VersionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VersionEvent::Update => "updated",
            VersionEvent::Sign => "signed",
            VersionEvent::Distribute => "distributed",
            VersionEvent::Scan => "scanned",
            VersionEvent::Delete => "deleted",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (state, event) pair, rendered as one line each, so a change to the
    /// machine shows up as a diff of this table.
    #[test]
    fn transition_table() {
        let mut table = String::new();
        for state in VersionState::ALL {
            for event in VersionEvent::ALL {
                let outcome = match state.apply(event) {
                    Ok(After::State(s)) => format!("-> {s}"),
                    Ok(After::Deleted) => "-> deleted".to_string(),
                    Err(e) => format!("refused: {e}"),
                };
                table.push_str(&format!("{state} + {event:?}: {outcome}\n"));
            }
        }
        let expected = "\
OPEN + Update: -> OPEN
OPEN + Sign: -> SIGNED
OPEN + Distribute: refused: release bundle version is OPEN; it cannot be distributed
OPEN + Scan: -> OPEN
OPEN + Delete: -> deleted
SIGNED + Update: refused: release bundle version is SIGNED; it cannot be updated
SIGNED + Sign: refused: release bundle version is SIGNED; it cannot be signed
SIGNED + Distribute: -> SIGNED
SIGNED + Scan: -> SIGNED
SIGNED + Delete: -> deleted
";
        assert_eq!(table, expected);
    }
}
