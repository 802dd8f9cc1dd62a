//! `golden record` and `golden add`: baselines recorded with an agent version are what a later
//! check without `--agent` compares against.

use crate::{CANDIDATE, Env, assert_exit};
use tapedeck_testkit::on_both_stores;

on_both_stores! {
    fn record_with_agent_points_the_suite_at_it(backend) {
        let env = Env::on(backend);
        let result = env.golden(&["record", "golden/support", "--agent", CANDIDATE]);
        assert_exit(&result, 0);
        let suite = std::fs::read_to_string(env.path("golden/support/suite.yaml")).expect("read");
        assert!(
            suite.contains("agent: ../../candidates/support-bot-drift.yaml"),
            "{suite}"
        );
        assert!(
            suite.starts_with("# The `support` golden suite"),
            "comment kept:\n{suite}"
        );
        let snap = std::fs::read_to_string(env.path("golden/support/snapshots/password-reset.snap"))
            .expect("read the snapshot");
        assert!(
            snap.starts_with(
                "---\nsource: golden/support/suite.yaml\nexpression: password-reset\n---\n"
            )
        );
        assert!(snap.contains("  kb.search: 2\n"), "{snap}");
        // The same version, checked again: no drift.
        assert_exit(&env.golden(&["check", "golden/support"]), 0);
        assert!(env.pending("support").is_empty());
    }
}

on_both_stores! {
    fn add_turns_a_stored_run_into_a_task(backend) {
        let env = Env::on(backend);
        let run = env
            .tapedeck()
            .args([
                "run",
                "golden/support/agent/support-bot.yaml",
                "--input",
                "How long does shipping take to Spain?",
            ])
            .output()
            .expect("tapedeck runs");
        assert!(run.status.success());
        let out = String::from_utf8(run.stdout).expect("UTF-8");
        let short = out
            .lines()
            .find_map(|l| l.strip_prefix("run "))
            .and_then(|l| l.split_whitespace().next())
            .expect("the run id")
            .to_owned();
        let result = env.golden(&[
            "add",
            "golden/support",
            "--from-run",
            &short,
            "--task",
            "shipping-spain",
        ]);
        assert_exit(&result, 0);
        assert!(
            env.path("golden/support/tapes/shipping-spain/1.jsonl")
                .is_file()
        );
        assert!(
            env.path("golden/support/snapshots/shipping-spain.snap")
                .is_file()
        );
        let suite = std::fs::read_to_string(env.path("golden/support/suite.yaml")).expect("read");
        assert!(suite.contains("- id: shipping-spain\n  input: How long does shipping take to Spain?"));
        // The same id again is refused.
        let again = env.golden(&[
            "add",
            "golden/support",
            "--from-run",
            &short,
            "--task",
            "shipping-spain",
        ]);
        crate::assert_input_error(
            &again,
            &["suite.yaml", "already has a task `shipping-spain`"],
        );
        // The new task checks clean with the rest.
        assert_exit(&env.golden(&["check", "golden/support"]), 0);
    }
}
