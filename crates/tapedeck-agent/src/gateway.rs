//! The tool gateway (being written).
