//! The agent loop (being written).

/// Placeholder.
pub struct Agent;

/// Placeholder.
pub struct RunOutcome;
