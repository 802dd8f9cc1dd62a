//! The HTTP record/replay proxy (being written).
