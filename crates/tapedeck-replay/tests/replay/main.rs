//! Tests of the replayer's parts through its public API: the first divergence between two
//! trajectories, and what a replay serves — recorded tool outputs (matching by arguments and
//! occurrence, reuse, position, the miss policies), model responses and approvals.

mod divergence;
mod serve;
