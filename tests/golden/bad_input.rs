//! Bad input to `golden check` is an input error (exit 2) naming the file and the task, found
//! before anything runs.

use crate::{Env, assert_input_error};

fn edit(env: &Env, file: &str, from: &str, to: &str) {
    let path = env.path(file);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains(from), "`{from}` is not in {file}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
}

#[test]
fn missing_tape_names_the_file_and_the_task() {
    let env = Env::new();
    std::fs::remove_file(env.path("golden/support/tapes/refund-order/1.jsonl")).expect("rm");
    let result = env.golden(&["check", "golden/support"]);
    assert_input_error(
        &result,
        &[
            "golden/support/tapes/refund-order/1.jsonl",
            "task `refund-order`",
        ],
    );
    assert!(env.pending("support").is_empty());
}

#[test]
fn duplicate_task_ids_name_the_file_and_the_id() {
    let env = Env::new();
    edit(
        &env,
        "golden/support/suite.yaml",
        "- id: password-forgot",
        "- id: password-reset",
    );
    let result = env.golden(&["check", "golden/support"]);
    assert_input_error(
        &result,
        &[
            "golden/support/suite.yaml",
            "duplicate task id `password-reset`",
        ],
    );
}

#[test]
fn misspelled_tolerance_key_gets_a_suggestion() {
    let env = Env::new();
    edit(
        &env,
        "golden/support/suite.yaml",
        "    answer_similarity: 0.95",
        "    answer_similarty: 0.95",
    );
    let result = env.golden(&["check", "golden/support"]);
    assert_input_error(
        &result,
        &[
            "golden/support/suite.yaml",
            "task `refund-policy`",
            "unknown tolerance `answer_similarty`",
            "did you mean `answer_similarity`",
        ],
    );
}

#[test]
fn hand_edited_snapshot_names_the_file_and_the_task() {
    let env = Env::new();
    edit(
        &env,
        "golden/support/snapshots/shipping-times.snap",
        "stop_reason: ok",
        "stop_reason: ok\nextra_field: 1",
    );
    let result = env.golden(&["check", "golden/support"]);
    assert_input_error(
        &result,
        &[
            "golden/support/snapshots/shipping-times.snap",
            "task `shipping-times`",
            "not a valid snapshot",
        ],
    );
}

#[test]
fn suite_without_agent_asks_for_one() {
    let env = Env::new();
    edit(
        &env,
        "golden/research/suite.yaml",
        "agent: agent/research-bot.yaml\n",
        "",
    );
    let result = env.golden(&["check", "golden/research"]);
    assert_input_error(&result, &["golden/research/suite.yaml", "--agent"]);
}
