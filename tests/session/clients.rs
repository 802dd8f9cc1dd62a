//! The client libraries' own test suites (Python `unittest`, `node --test`), run as part of
//! the repository's tests so the README's test command covers them.

use crate::repo;

fn suite(program: &str, args: &[&str]) {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}:\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_client_suite() {
    suite(
        "python3",
        &[
            "-m",
            "unittest",
            "discover",
            "-s",
            "clients/python/tests",
            "-t",
            "clients/python",
        ],
    );
}

#[test]
fn javascript_client_suite() {
    if !crate::require_node() {
        return;
    }
    suite("node", &["--test", "clients/js/test/"]);
}
