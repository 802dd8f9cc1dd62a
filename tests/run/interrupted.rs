//! Runs ended from outside the agent: `model_error` (a malformed response, retries run out, a
//! status that is not retried), and SIGTERM / SIGINT ending the run `cancelled`.

use std::time::Duration;
use tapedeck_testkit::on_both_stores;

use crate::Env;
use crate::stop_reasons::calls_forever;

on_both_stores! {
    fn model_error_on_a_malformed_response(backend) {
        let env = Env::on(backend);
        env.scripted("[{malformed: \"the body is not JSON\"}]", &[]);
        let run = env.run_expecting("hi", 1, "model_error", "error");
        assert_eq!(run.error(), "malformed response: the body is not JSON");
        // A malformed answer is not retried.
        assert!(run.data("llm_retry").is_empty());
        assert_eq!(run.kinds(), ["run_started", "llm_request", "run_finished"]);
    }
}

on_both_stores! {
    fn model_error_after_the_retries_run_out(backend) {
        let env = Env::on(backend);
        env.scripted(
            "[{error: {status: 503, message: overloaded, retry_after_ms: 5}}]",
            &[],
        );
        let run = env.run_expecting("hi", 1, "model_error", "error");
        assert_eq!(run.error(), "HTTP 503: overloaded");
        let retries = run.data("llm_retry");
        assert_eq!(retries.len(), 3, "three retries after the first attempt");
        for (i, retry) in retries.iter().enumerate() {
            assert_eq!(retry["attempt"], i + 1);
            assert_eq!(retry["status"], 503);
            assert_eq!(retry["wait_ms"], 5);
        }
        let show = env.stdout(&["show", &env.last_id()]);
        assert!(show.contains("error      HTTP 503: overloaded"), "{show}");
    }
}

on_both_stores! {
    fn model_error_on_a_status_that_is_not_retried(backend) {
        let env = Env::on(backend);
        env.scripted(
            "[{error: {status: 400, message: \"unknown parameter\"}}]",
            &[],
        );
        let run = env.run_expecting("hi", 1, "model_error", "error");
        assert_eq!(run.error(), "HTTP 400: unknown parameter");
        assert!(run.data("llm_retry").is_empty());
    }
}

/// Runs an agent whose tool says it started (the file `started`) and takes a second, calling it
/// forever; sends `signal` to `tapedeck run` once the tool has started; returns the exit code.
fn run_interrupted(env: &Env, signal: tapedeck_testkit::cli::Interrupt) -> Option<i32> {
    use tapedeck_testkit::cli::{interrupt, process_in, wait_for_file};
    env.write(
        "slow.py",
        r#"
        import time
        open("started", "w").close()
        time.sleep(1)
        print("{}")
        "#,
    );
    env.scripted(
        &calls_forever("slow.read"),
        &[r#"
            tools:
              allow: [slow.read]
              defs:
                - name: slow.read
                  command: [python3, slow.py]
            "#],
    );
    let child = process_in(env.dir.path())
        .arg("--store")
        .arg(env.store_arg())
        .args(["run", "agent.yaml", "--input", "go"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tapedeck run");
    wait_for_file(&env.path("started"), Duration::from_secs(30));
    interrupt(&child, signal);
    let output = child.wait_with_output().expect("tapedeck ends");
    output.status.code()
}

// SIGTERM during `run` left the run `incomplete` (killed, exit 143 from the shell); it now ends
// `cancelled` after the tool call under way, with that call's result recorded.
on_both_stores! {
    fn sigterm_ends_the_run_cancelled(backend) {
        let env = Env::on(backend);
        let code = run_interrupted(&env, tapedeck_testkit::cli::Interrupt::Term);
        assert_eq!(code, Some(143));
        let run = env.last_run();
        run.expect_stop("cancelled", "stopped");
        assert_eq!(
            run.data("tool_result").len(),
            1,
            "the call under way finished"
        );
        assert!(run.kinds().ends_with(&["run_finished"]));
    }
}

// The same for SIGINT (Ctrl-C): exit 130.
on_both_stores! {
    fn sigint_ends_the_run_cancelled(backend) {
        let env = Env::on(backend);
        let code = run_interrupted(&env, tapedeck_testkit::cli::Interrupt::Int);
        assert_eq!(code, Some(130));
        env.last_run().expect_stop("cancelled", "stopped");
    }
}
