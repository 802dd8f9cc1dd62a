//! Replays that cannot run: each is an input error — exit 2, one `error:` line on stderr
//! saying what is wrong, nothing on stdout — and records nothing.

use serde_json::json;
use tapedeck_testkit::{TapeBuilder, message};
use tapedeck_trace::{Source, StopReason, Usage};

use crate::{Env, PASSWORD};

/// Checks `args` is an input error that records no run; returns the error line.
fn refused(env: &Env, args: &[&str]) -> String {
    let before = if env.path(crate::STORE).exists() {
        env.ls().len()
    } else {
        0
    };
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    let line = env.exec(&all).expect_input_error().to_owned();
    if env.path(crate::STORE).exists() {
        assert_eq!(
            env.ls().len(),
            before,
            "`{}` recorded a run",
            args.join(" ")
        );
    }
    line
}

#[test]
fn an_unknown_run() {
    let env = Env::with_fixture_agents();
    env.record("support-bot.yaml", PASSWORD, 0);
    let line = refused(&env, &["deadbeef"]);
    assert_eq!(line, "error: no run matches `deadbeef` (see `tapedeck ls`)");
}

#[test]
fn a_store_with_missing_blobs() {
    let env = Env::with_fixture_agents();
    let id = env.record("support-bot.yaml", PASSWORD, 0);
    let conn = rusqlite::Connection::open(env.path(crate::STORE)).expect("open the store");
    let removed = conn
        .execute("DELETE FROM blobs", [])
        .expect("delete the blobs");
    assert!(removed > 0);
    drop(conn);
    let line = refused(&env, &[&id]);
    // The run's full id, which ends with its short one.
    assert!(line.starts_with("error: run "), "{line}");
    assert!(line.contains(&format!("{id}: blob sha256:")), "{line}");
    assert!(line.contains("is missing from the store"), "{line}");
    assert!(line.contains("re-import the run"), "{line}");
}

/// A tape written by a newer tapedeck, in a folder replayed with `--tapes`.
#[test]
fn a_tape_of_a_newer_format_version() {
    let recorded = Env::with_fixture_agents();
    let id = recorded.record("support-bot.yaml", PASSWORD, 0);
    let tape = recorded.stdout(&["export", &id]);
    let (header, events) = tape.split_once('\n').expect("a header line");
    let current = tapedeck_trace::tape::TAPE_VERSION;
    let newer = current + 1;
    let header = header
        .strip_suffix(&format!("\"version\":{current}}}"))
        .expect("the header ends with its version");
    let env = Env::with_fixture_agents();
    env.write(
        "tapes/newer.jsonl",
        &format!("{header}\"version\":{newer}}}\n{events}"),
    );
    let line = refused(&env, &["--tapes", "tapes", "--agent", "support-bot.yaml"]);
    assert!(line.starts_with("error: tapes/newer.jsonl: "), "{line}");
    assert!(line.contains(&format!("version {newer}")), "{line}");
    assert!(line.contains("upgrade tapedeck"), "{line}");
}

#[test]
fn a_folder_without_tapes() {
    let env = Env::with_fixture_agents();
    std::fs::create_dir_all(env.path("tapes")).expect("a folder");
    let line = refused(&env, &["--tapes", "tapes", "--agent", "support-bot.yaml"]);
    assert_eq!(line, "error: no tapes (*.jsonl) under `tapes`");
}

/// A run the HTTP proxy recorded has no agent version to run: its client must run again.
#[test]
fn a_proxy_run_without_a_command() {
    let env = Env::new();
    let mut tape = TapeBuilder::new(
        "01a1f000-0000-7000-8000-0000c0ffee01",
        "2026-11-20T08:00:00Z",
    )
    .source(Source::Proxy)
    .input("ping");
    tape.run_started(None, json!({}), json!({}));
    let usage = Usage {
        input_tokens: 3,
        output_tokens: 1,
    };
    tape.llm_step(
        &[message::user("ping")],
        &message::assistant("pong"),
        usage,
        10,
    );
    env.write("proxy.jsonl", &tape.finish(StopReason::Ok, Some("pong")));
    env.stdout(&["import", "proxy.jsonl"]);
    let line = refused(&env, &["c0ffee01"]);
    assert_eq!(
        line,
        "error: run c0ffee01 cannot be replayed: it was recorded by the HTTP proxy, not the runtime: replay it by running its client again, `tapedeck replay c0ffee01 -- CMD…`"
    );
}

/// Regression: replaying an MCP run said to use `-- CMD`, and with `-- CMD` that it was not
/// available; the command that replays it is `tapedeck mcp replay RUN`.
#[test]
fn an_mcp_run_names_mcp_replay() {
    let env = Env::new();
    let mut tape = TapeBuilder::new(
        "01a1f000-0000-7000-8000-0000c0ffee02",
        "2026-11-20T08:00:00Z",
    )
    .source(Source::Mcp);
    tape.run_started(None, json!({}), json!({}));
    env.write("mcp.jsonl", &tape.finish(StopReason::Ok, None));
    env.stdout(&["import", "mcp.jsonl"]);
    assert_eq!(
        refused(&env, &["c0ffee02"]),
        "error: run c0ffee02 cannot be replayed: it was recorded by the MCP proxy, not the runtime: replay it with `tapedeck mcp replay c0ffee02` as the client's server command"
    );
    assert_eq!(
        refused(&env, &["c0ffee02", "--", "python3", "client.py"]),
        "error: run c0ffee02 was recorded by the MCP proxy: replay it with `tapedeck mcp replay c0ffee02` as the client's server command"
    );
}

#[test]
fn a_runtime_run_with_a_command() {
    let env = Env::with_fixture_agents();
    let id = env.record("support-bot.yaml", PASSWORD, 0);
    let line = refused(&env, &[&id, "--", "python3", "client.py"]);
    assert_eq!(
        line,
        format!(
            "error: run {id} was recorded by the runtime, not a proxy: replay it without `-- CMD`"
        )
    );
}

/// A run recorded without the runtime's agent config (here an imported fixture tape) has no
/// version to replay.
#[test]
fn a_run_without_a_runtime_agent_config() {
    let env = Env::new();
    let tape = tapedeck_testkit::fixtures_dir().join("tapes/clean.jsonl");
    env.stdout(&["import", tape.to_str().expect("a UTF-8 path")]);
    let line = refused(&env, &["5a1c3e01"]);
    assert!(
        line.starts_with(
            "error: run 5a1c3e01 cannot be replayed: its recorded agent config does not load"
        ),
        "{line}"
    );
}

#[test]
fn contradicting_or_impossible_options() {
    let env = Env::with_fixture_agents();
    let id = env.record("support-bot.yaml", PASSWORD, 0);
    assert_eq!(
        refused(&env, &[&id, "--from-step", "0"]),
        "error: --from-step counts from 1"
    );
    assert_eq!(
        refused(&env, &[&id, "--live-allow", "kb.read"]),
        "error: --live-allow needs --on-miss live"
    );
    let line = refused(
        &env,
        &[
            &id,
            "--agent",
            "support-bot.yaml",
            "--on-miss",
            "live",
            "--live-allow",
            "web.search",
        ],
    );
    assert_eq!(
        line,
        "error: --live-allow web.search: the agent version defines no tool `web.search`"
    );
    let line = refused(&env, &[&id, "--agent", "missing.yaml"]);
    assert!(line.contains("missing.yaml"), "{line}");
}

#[test]
fn usage_errors() {
    let env = Env::with_fixture_agents();
    for args in [
        vec!["replay"],
        vec!["replay", "--tapes", "tapes"],
        vec![
            "replay",
            "abc",
            "--tapes",
            "tapes",
            "--agent",
            "support-bot.yaml",
        ],
        vec!["replay", "abc", "--on-miss", "sometimes"],
    ] {
        let out = env.exec(&args);
        out.expect_code(2);
        assert_eq!(out.stdout, "");
        assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    }
}
