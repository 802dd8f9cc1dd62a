//! `golden accept`, `reject` and `review`: pending snapshots taken, dropped, or shown.

use crate::{CANDIDATE, Env, assert_exit, assert_input_error};
use tapedeck_testkit::on_both_stores;

fn drift(env: &Env) {
    assert_exit(
        &env.golden(&["check", "golden/support", "--agent", CANDIDATE]),
        1,
    );
}

on_both_stores! {
    fn accept_takes_the_pending_snapshot_and_reject_drops_it(backend) {
        let env = Env::on(backend);
        drift(&env);
        let pending = env.path("golden/support/snapshots/password-reset.snap.new");
        let new = std::fs::read_to_string(&pending).expect("a pending snapshot");
        assert!(new.contains("info:\n  agent: "), "{new}");
        assert!(new.contains("  candidate_run: "), "{new}");

        assert_exit(
            &env.golden(&["accept", "golden/support", "password-reset"]),
            0,
        );
        let snap = std::fs::read_to_string(env.path("golden/support/snapshots/password-reset.snap"))
            .expect("the snapshot");
        assert!(
            !snap.contains("info:"),
            "pending-only metadata is dropped:\n{snap}"
        );
        assert_eq!(
            snap.split_once("\n---\n").map(|(_, b)| b),
            new.split_once("\n---\n").map(|(_, b)| b)
        );
        assert!(!pending.exists());

        assert_exit(
            &env.golden(&["reject", "golden/support", "shipping-times"]),
            0,
        );
        assert_eq!(
            env.pending("support"),
            ["password-forgot", "password-link-expired"]
        );
        assert_exit(&env.golden(&["accept", "golden/support"]), 0);
        assert!(env.pending("support").is_empty());

        // The accepted snapshots now disagree with the suite's own agent, whose runs are within
        // every tolerance of the baselines: changed within tolerance, pending again, and a failure
        // only with --strict-snapshots.
        let result = env.golden(&["check", "golden/support"]);
        assert_exit(&result, 0);
        assert!(
            result.1.contains("3 changed within tolerance"),
            "{}",
            result.1
        );
        assert_eq!(
            env.pending("support"),
            ["password-forgot", "password-link-expired", "password-reset"]
        );
        assert_exit(
            &env.golden(&["check", "golden/support", "--strict-snapshots"]),
            1,
        );
    }
}

on_both_stores! {
    fn accept_of_a_task_with_nothing_pending_is_an_input_error(backend) {
        let env = Env::on(backend);
        let result = env.golden(&["accept", "golden/support", "refund-order"]);
        assert_input_error(&result, &["refund-order.snap.new", "task `refund-order`"]);
        let result = env.golden(&["reject", "golden/support", "refund-ordr"]);
        assert_input_error(
            &result,
            &["no task `refund-ordr`", "did you mean `refund-order`"],
        );
    }
}

on_both_stores! {
    fn review_without_a_terminal_prints_the_diffs_and_decides_nothing(backend) {
        let env = Env::on(backend);
        drift(&env);
        let result = env.golden(&["review", "golden/support"]);
        assert_exit(&result, 0);
        let out = &result.1;
        assert!(
            out.contains("--- snapshots/password-reset.snap\n+++ snapshots/password-reset.snap.new"),
            "{out}"
        );
        assert!(out.contains("+  kb.search: 2"), "{out}");
        assert!(
            out.contains("tapedeck golden accept golden/support"),
            "{out}"
        );
        assert_eq!(env.pending("support").len(), 4);
    }
}

#[test]
fn review_on_a_terminal_asks_for_each_pending_snapshot() {
    // `script` (util-linux) gives the command a terminal.
    let has_script = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok();
    if !tapedeck_testkit::clients::require("`script`", has_script, "apt-get install util-linux") {
        return;
    }
    let env = Env::new();
    drift(&env);
    let command = format!(
        "{} --store t.db golden review golden/support",
        env!("CARGO_BIN_EXE_tapedeck")
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(env.dir.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script runs");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        // accept, reject, an unknown answer (asked again), skip, skip
        stdin
            .write_all(b"a\nr\nx\ns\n\n")
            .expect("write the answers");
    }
    let out = child.wait_with_output().expect("script ends");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.contains("1 accepted, 1 rejected, 2 skipped"), "{out}");
    assert_eq!(
        env.pending("support"),
        ["password-link-expired", "shipping-times"]
    );
}
