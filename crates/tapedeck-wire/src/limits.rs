//! The bounds on what a model API may send, checked while a response is read: an index is a
//! position, so a large one is an upstream out of bounds and is refused before anything is
//! allocated for it.

/// The highest tool-call or content-block index a streamed response may use: indexes are
/// positions, so a larger one is an upstream out of bounds, not a longer answer.
pub const MAX_INDEX: u64 = 1023;

/// The most tool calls one response may hold.
pub const MAX_TOOL_CALLS: usize = 256;

/// The largest response read or recorded (32 MiB), whole body or stream.
pub const MAX_RESPONSE_BYTES: usize = 32 << 20;

/// A response that broke one of the bounds on what an upstream sends.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverLimit {
    /// A streamed tool call's `index` is over [`MAX_INDEX`].
    #[error("tool-call index {0} is over the limit of {MAX_INDEX}")]
    ToolCallIndex(u64),
    /// A streamed content block's `index` is over [`MAX_INDEX`].
    #[error("content-block index {0} is over the limit of {MAX_INDEX}")]
    BlockIndex(u64),
    /// The response has more than [`MAX_TOOL_CALLS`] tool calls.
    #[error("the response has more than the limit of {MAX_TOOL_CALLS} tool calls")]
    ToolCalls,
    /// The response is over [`MAX_RESPONSE_BYTES`].
    #[error("the response is over the limit of {MAX_RESPONSE_BYTES} bytes")]
    Size,
}

/// `index` if it is within [`MAX_INDEX`], else the bound `over` names.
pub(crate) fn check_index(index: u64, over: fn(u64) -> OverLimit) -> Result<u64, OverLimit> {
    if index > MAX_INDEX {
        Err(over(index))
    } else {
        Ok(index)
    }
}
