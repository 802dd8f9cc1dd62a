//! Help: `tapedeck golden` and each of its subcommands carry examples.

use crate::{Env, assert_exit};

#[test]
fn every_golden_subcommand_has_examples() {
    let env = Env::new();
    for command in ["record", "check", "accept", "reject", "review", "add"] {
        for flag in ["--help", "-h"] {
            let result = env.golden(&[command, flag]);
            assert_exit(&result, 0);
            assert!(
                result.1.contains("Examples:\n  tapedeck golden "),
                "`tapedeck golden {command} {flag}` has no examples:\n{}",
                result.1
            );
        }
    }
    let result = env.golden(&["--help"]);
    assert!(result.1.contains("Examples:\n  "), "{}", result.1);
}
