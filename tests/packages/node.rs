//! The `tapedeck` npm packages: the launcher package and this machine's platform package packed
//! from the binary this test build produced (`clients/js/pack.mjs`, no second compile) and
//! installed together with `npm install --offline` into a fresh folder whose PATH has no Rust,
//! then the sample `node --test` suite of `tests/packages/node_suite` (an agent calling the
//! chat completions API, one tool through the client library) recorded, replayed and checked by
//! `tapedeck/testing`'s `withTape` against a fake upstream on 127.0.0.1.

use std::path::PathBuf;
use std::process::{Command, Output};

use tapedeck_testkit::cli::TestDir;
use tapedeck_testkit::fake_http::FakeServer;

use crate::{KEY, answers, asks_weather, asks_weather_as, repo, run, tape_run, text};

/// The packages installed, and the sample suite copied beside them.
struct Installed {
    dir: TestDir,
}

impl Installed {
    fn new() -> Self {
        let dir = TestDir::new();
        let binary = assert_cmd::cargo::cargo_bin("tapedeck");
        let out = run(Command::new("node")
            .arg(repo().join("clients/js/pack.mjs"))
            .arg("--binary")
            .arg(&binary)
            .arg("--out")
            .arg(dir.path("dist")));
        let tarballs: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(tarballs.len(), 2, "pack.mjs printed {tarballs:?}");
        let suite = dir.path("suite");
        std::fs::create_dir_all(&suite).expect("the suite's folder");
        for entry in std::fs::read_dir(repo().join("tests/packages/node_suite")).expect("the suite")
        {
            let entry = entry.expect("a file of the suite");
            std::fs::copy(entry.path(), suite.join(entry.file_name())).expect("copy the suite");
        }
        // Both tarballs at once: the launcher's optional dependency is the platform package
        // given beside it, so nothing is fetched.
        run(Command::new("npm")
            .args([
                "install",
                "--offline",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ])
            .args(&tarballs)
            .current_dir(&suite)
            .env("npm_config_cache", dir.path("npm-cache")));
        Self { dir }
    }

    fn tape(&self, name: &str) -> PathBuf {
        self.dir.path(&format!("suite/tapes/{name}.jsonl"))
    }

    /// `node --test FILES` in the suite's folder, the model's base URL `upstream`, with only
    /// node's and the system's folders on PATH (no cargo, no `tapedeck` but the package's).
    fn node_test(&self, upstream: &str, files: &[&str], vars: &[(&str, &str)]) -> Output {
        let node = which_node();
        Command::new(&node)
            .arg("--test")
            .args(files)
            .current_dir(self.dir.path("suite"))
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{}:/usr/bin:/bin",
                    node.parent().expect("node's folder").display()
                ),
            )
            .env("HOME", self.dir.path(""))
            .env("OPENAI_API_KEY", KEY)
            .env("OPENAI_BASE_URL", format!("{upstream}/v1"))
            .env("NO_COLOR", "1")
            .envs(vars.iter().copied())
            .output()
            .expect("node starts")
    }
}

/// The `node` on PATH, as a full path.
fn which_node() -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", "command -v node"])
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "node is not installed: `apt-get install nodejs` installs it (`.ci/test` does)"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The README's TypeScript workflow with the npm packages: the first run records a tape per
/// test, the second replays them with the upstream gone and `TAPEDECK_MODE=none` (which
/// refuses anything but the loopback); a missing tape fails naming it; and `TAPEDECK_CHECK=1`
/// passes on the same model and fails on a candidate with one more tool call. One test, so the
/// packages are packed and installed once.
#[test]
fn npm_packages_record_replay_and_check() {
    let env = Installed::new();
    let installed = env.dir.path("suite/node_modules/.bin/tapedeck");
    let version = run(Command::new(&installed).arg("--version"));
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("tapedeck "),
        "{}",
        text(&version)
    );

    // Record: no tapes yet, so `once` records through the live (fake) model.
    let upstream = FakeServer::start(vec![
        asks_weather(),
        answers("It is sunny in Paris."),
        answers("Paris."),
    ]);
    let out = env.node_test(&upstream.base, &["agent.test.mjs", "network.test.mjs"], &[]);
    assert!(
        out.status.success(),
        "the recording failed:\n{}",
        text(&out)
    );
    assert_eq!(upstream.requests().len(), 3, "{}", text(&out));
    assert_eq!(tape_run(&env.tape("weather"))["stop_reason"], "ok");
    assert_eq!(tape_run(&env.tape("capital"))["stop_reason"], "ok");
    assert!(env.tape("network").is_file());

    // Replay: the upstream is gone; `none` refuses anything but the loopback.
    drop(upstream);
    let gone = "http://127.0.0.1:9";
    let none = [("TAPEDECK_MODE", "none")];
    let out = env.node_test(gone, &["agent.test.mjs", "network.test.mjs"], &none);
    assert!(out.status.success(), "the replay failed:\n{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("# pass 3"),
        "{}",
        text(&out)
    );

    // A changed question is a miss, naming the tape.
    let out = env.node_test(
        gone,
        &["agent.test.mjs"],
        &[("TAPEDECK_MODE", "none"), ("SAMPLE_COUNTRY", "Spain")],
    );
    assert!(!out.status.success(), "a miss passed:\n{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "tapedeck: the replay of {} missed (replay_miss:llm)",
            env.tape("capital").display()
        )),
        "{}",
        text(&out)
    );

    // `none` with a tape missing fails that test, naming the tape.
    let missing = env.tape("capital");
    std::fs::remove_file(&missing).expect("remove the tape");
    let out = env.node_test(gone, &["agent.test.mjs"], &none);
    assert!(
        !out.status.success(),
        "a missing tape passed:\n{}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("no tape at {}", missing.display())),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("# pass 1") && stdout.contains("# fail 1"),
        "{}",
        text(&out)
    );

    // The check: the model live, the tool from the tape. The same model passes; one more
    // tool call drifts, and the failure is the diff.
    let replies = || vec![asks_weather(), answers("It is sunny in Paris.")];
    let upstream = FakeServer::start(replies());
    let out = env.node_test(&upstream.base, &["check.test.mjs"], &[]);
    assert!(
        out.status.success(),
        "the recording failed:\n{}",
        text(&out)
    );
    let check = [("TAPEDECK_CHECK", "1")];
    let upstream = FakeServer::start(replies());
    let out = env.node_test(&upstream.base, &["check.test.mjs"], &check);
    assert!(
        out.status.success(),
        "the same model drifted:\n{}",
        text(&out)
    );
    assert_eq!(upstream.requests().len(), 2, "the model is live in a check");
    let upstream = FakeServer::start(vec![
        asks_weather(),
        asks_weather_as("call_again"),
        answers("It is sunny in Paris."),
    ]);
    let out = env.node_test(&upstream.base, &["check.test.mjs"], &check);
    assert!(
        !out.status.success(),
        "an extra tool call passed:\n{}",
        text(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "tapedeck: the run drifted from {}",
            env.tape("forecast").display()
        )),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("DRIFT"), "{}", text(&out));
}
