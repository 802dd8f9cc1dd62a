//! The snapshot filters: what they replace, and what they must leave alone.

use tapedeck_testkit::snapshot::insta_settings;

#[test]
fn filters_replace_volatile_parts() {
    let _guard = insta_settings().bind_to_scope();
    insta::assert_snapshot!(
        "run 01a1cdbf-9418-7d41-8918-3471b7e5d602 started 2026-11-12T03:14:07.000000Z\n\
         ended 2026-11-12 03:15:06 (+01:00: 2026-11-12T04:15:06+01:00)\n\
         proxy on http://127.0.0.1:41234/v1\n\
         took 12ms, then 1.5s, 250µs, 1m30s and 2h",
        @r"
    run [RUN_ID] started [TIME]
    ended [TIME] (+01:00: [TIME])
    proxy on http://127.0.0.1:[PORT]/v1
    took [DURATION], then [DURATION], [DURATION], [DURATION] and [DURATION]
    "
    );
}

#[test]
fn filters_leave_other_numbers_alone() {
    let _guard = insta_settings().bind_to_scope();
    insta::assert_snapshot!(
        "b7e5d602  research-bot  max_tool_calls  15 calls  $10.80  3 steps  max_seconds 90\n\
         sha256:1a2b3c4d5e6f  v1.5  2026-11-12  4.1-mini  10 ms  HTTP 503  call_16",
        @r"
    b7e5d602  research-bot  max_tool_calls  15 calls  $10.80  3 steps  max_seconds 90
    sha256:1a2b3c4d5e6f  v1.5  2026-11-12  4.1-mini  10 ms  HTTP 503  call_16
    "
    );
}
