//! Filters that make what users see snapshot-stable: run ids, times, ports and durations change
//! from one test run to the next, so snapshots hold placeholders instead.
//!
//! Use [`insta_settings`] (or [`insta_filters`] with your own settings) around every snapshot
//! of CLI output:
//!
//! ```
//! let _guard = tapedeck_testkit::snapshot::insta_settings().bind_to_scope();
//! insta::assert_snapshot!(
//!     "run 01a1cdbf-9418-7d41-8918-3471b7e5d602 took 1.5s",
//!     @"run [RUN_ID] took [DURATION]"
//! );
//! ```

/// A full UUID (any version, either case) is a run id: `[RUN_ID]`.
///
/// Short ids (8 hex digits) are not filtered: any hex word would match, and the fixtures'
/// short ids are fixed anyway.
const RUN_ID: (&str, &str) = (
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
    "[RUN_ID]",
);

/// An RFC 3339 date-time, `T` or space between date and time, seconds, fraction and offset
/// optional (`2026-11-26T02:54:18.123456Z`, `2026-11-26 02:54`): `[TIME]`.
const TIME: (&str, &str) = (
    r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?",
    "[TIME]",
);

/// A local listening address: `127.0.0.1:41234` becomes `127.0.0.1:[PORT]`.
const PORT: (&str, &str) = (r"\b127\.0\.0\.1:\d+\b", "127.0.0.1:[PORT]");

/// A duration written as a number glued to a unit (`12ms`, `1.5s`, `250µs`, `3m`, `1h`, and
/// compounds such as `1m30s`): `[DURATION]`. The unit must end a word, so `15 calls`, `$10.80`,
/// `max_seconds`, `3 steps`, hex hashes and ids are left alone.
const DURATION: (&str, &str) = (r"\b(?:\d+(?:\.\d+)?(?:ns|µs|us|ms|s|m|h))+\b", "[DURATION]");

/// The regex / replacement pairs for insta's `filters` feature, applied in this order: run ids,
/// times, ports, durations (times first, so their digits are gone before durations are
/// looked for).
pub fn insta_filters() -> Vec<(&'static str, &'static str)> {
    vec![RUN_ID, TIME, PORT, DURATION]
}

/// The current insta settings plus [`insta_filters`]; bind them to a scope around snapshots.
pub fn insta_settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    for (regex, replacement) in insta_filters() {
        settings.add_filter(regex, replacement);
    }
    settings
}
