//! The MCP stdio record/replay proxy (being written).
