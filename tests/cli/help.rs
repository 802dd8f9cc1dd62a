//! Help: the top-level help and every subcommand's carry examples; the exit codes are
//! documented; `--version` works.

use tapedeck_testkit::snapshot::insta_settings;

use crate::stdout;

/// Every subcommand users see.
const SUBCOMMANDS: [&str; 15] = [
    "demo", "run", "replay", "diff", "config", "ls", "show", "stats", "export", "import", "merge",
    "rm", "gc", "store", "bench",
];

fn help(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("a temporary folder");
    stdout(crate::tapedeck_in(dir.path()).args(args))
}

#[test]
fn top_level_help() {
    let out = help(&["--help"]);
    insta_settings().bind(|| insta::assert_snapshot!("help", out));
    assert!(out.contains("Examples:"), "{out}");
    for command in SUBCOMMANDS {
        assert!(
            out.contains(&format!("\n  {command} ")),
            "`{command}` is not listed"
        );
    }
}

#[test]
fn exit_codes_are_documented() {
    let out = help(&["--help"]);
    assert!(
        out.contains(
            "Exit codes: 0 ok / no drift; 1 a run stopped for another reason, or drift was found; 2 usage or"
        ),
        "{out}"
    );
    assert!(out.contains("input error."), "{out}");
}

#[test]
fn every_subcommand_has_examples() {
    for command in SUBCOMMANDS {
        for flag in ["--help", "-h"] {
            let out = help(&[command, flag]);
            assert!(
                out.contains("Examples:\n  "),
                "`tapedeck {command} {flag}` has no examples:\n{out}"
            );
            assert!(out.contains(&format!("Usage: tapedeck {command}")), "{out}");
        }
        let out = help(&["help", command]);
        assert!(out.contains("Examples:"), "`tapedeck help {command}`");
    }
}

#[test]
fn short_help_is_a_summary() {
    let short = help(&["-h"]);
    let long = help(&["--help"]);
    assert!(short.len() < long.len());
    assert!(short.contains("Examples:"));
}

#[test]
fn version() {
    let out = help(&["--version"]);
    assert_eq!(out, format!("tapedeck {}\n", env!("CARGO_PKG_VERSION")));
    // `propagate_version`: subcommands answer too, in clap's `<bin>-<command>` form.
    assert_eq!(
        help(&["ls", "--version"]),
        format!("tapedeck-ls {}\n", env!("CARGO_PKG_VERSION"))
    );
}
