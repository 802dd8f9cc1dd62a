//! [`RunId`]: a run's UUIDv7 and the short id people type.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::TraceError;

/// A run's id: a UUIDv7, so ids sort by creation time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct RunId(Uuid);

/// How many hex digits a short id has.
pub const SHORT_ID_LEN: usize = 8;

impl RunId {
    /// A fresh id for a run starting now.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The id `ls` shows and commands accept: the last eight hex digits of the UUID.
    ///
    /// A UUIDv7 begins with a millisecond timestamp, so its prefix is shared by every run of
    /// the same moment; its last 62 bits are random, so a short id taken from them is not.
    pub fn short(&self) -> String {
        let simple = self.0.simple().to_string();
        simple[simple.len() - SHORT_ID_LEN..].to_owned()
    }
}

impl RunId {
    /// The last twelve hex digits of the UUID: what `ls` shows when two runs of a store share
    /// a short id, and what commands accept as well.
    pub fn tail(&self) -> String {
        let simple = self.0.simple().to_string();
        simple[simple.len() - TAIL_LEN..].to_owned()
    }
}

/// How many hex digits a run id's tail ([`RunId::tail`]) has.
pub const TAIL_LEN: usize = 12;

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for RunId {
    type Err = TraceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| TraceError::RunId(s.to_owned()))
    }
}

serde_via_str!(RunId);
