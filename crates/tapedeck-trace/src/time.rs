//! [`Timestamp`]: a point in time with microsecond precision, written as RFC 3339 in UTC.

use std::fmt;
use std::str::FromStr;

use crate::TraceError;

/// Microseconds since the Unix epoch. Serialized as `2026-11-26T02:54:18.123456Z`: always six
/// fractional digits, so that a parsed timestamp prints back to the same bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(jiff::Timestamp::now().as_microsecond())
    }

    /// A timestamp from microseconds since the Unix epoch.
    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// Milliseconds from `self` to `later` (0 if `later` is earlier).
    pub fn millis_until(self, later: Timestamp) -> u64 {
        u64::try_from(later.0.saturating_sub(self.0) / 1000).unwrap_or(0)
    }

    /// The same instant as a `jiff` timestamp, for formatting and arithmetic.
    pub fn to_jiff(self) -> jiff::Timestamp {
        jiff::Timestamp::from_microsecond(self.0).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_jiff().strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
    }
}

impl FromStr for Timestamp {
    type Err = TraceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ts: jiff::Timestamp = s.parse().map_err(|_| TraceError::Timestamp(s.to_owned()))?;
        Ok(Self(ts.as_microsecond()))
    }
}

serde_via_str!(Timestamp);
