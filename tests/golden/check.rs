//! `golden check`: the shipped suites pass against their own agents, the drift candidate
//! drifts on exactly the tasks it changes, shards split the tasks, and the reports parse.

use std::collections::BTreeSet;
use tapedeck_testkit::on_both_stores;

use crate::{CANDIDATE, DRIFTING, Env, assert_exit, task_results};

/// Drops what changes from one run to the next: latency rows and candidate short ids.
pub fn stable(text: &str) -> String {
    text.lines()
        .filter(|l| !l.contains("latency_p"))
        .map(|l| format!("{l}\n"))
        .collect()
}

pub fn settings() -> insta::Settings {
    let mut settings = tapedeck_testkit::snapshot::insta_settings();
    settings.add_filter(
        r"`[0-9a-f]{8}` → `[0-9a-f]{8}`",
        "`[BASELINE]` → `[CANDIDATE]`",
    );
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots");
    settings
}

on_both_stores! {
    fn shipped_suites_pass_against_their_own_agents(backend) {
        let env = Env::on(backend);
        for suite in ["support", "research"] {
            let result = env.golden(&["check", &format!("golden/{suite}"), "-j", "2"]);
            assert_exit(&result, 0);
            assert!(result.1.contains("no drift:"), "{}", result.1);
            assert!(
                env.pending(suite).is_empty(),
                "no .snap.new after a clean check"
            );
        }
    }
}

on_both_stores! {
    fn drift_candidate_drifts_on_the_tasks_it_changes(backend) {
        let env = Env::on(backend);
        let result = env.golden(&[
            "check",
            "golden/support",
            "--agent",
            CANDIDATE,
            "--markdown",
            "comment.md",
        ]);
        assert_exit(&result, 1);
        let mut drifting = DRIFTING.map(str::to_owned).to_vec();
        drifting.sort();
        assert_eq!(env.pending("support"), drifting);
        let _guard = settings().bind_to_scope();
        insta::assert_snapshot!("check_drift_text", result.1);
        let markdown = std::fs::read_to_string(env.path("comment.md")).expect("the Markdown report");
        insta::assert_snapshot!("check_drift_markdown", stable(&markdown));

        // A clean check afterwards removes the stale pending snapshots.
        assert_exit(&env.golden(&["check", "golden/support"]), 0);
        assert!(env.pending("support").is_empty());
    }
}

on_both_stores! {
    fn shards_cover_every_task_exactly_once(backend) {
        let env = Env::on(backend);
        let mut seen = Vec::new();
        for shard in ["1/2", "2/2"] {
            let json = format!("shard-{}.json", &shard[..1]);
            let result = env.golden(&["check", "golden/support", "--shard", shard, "--json", &json]);
            assert_exit(&result, 0);
            let text = std::fs::read_to_string(env.path(&json)).expect("the JSON report");
            let results = task_results(&text);
            seen.extend(
                results
                    .iter()
                    .map(|r| r["task"].as_str().expect("a task id").to_owned()),
            );
        }
        let all = env.task_ids("support");
        assert_eq!(seen.len(), all.len(), "{seen:?}");
        assert_eq!(
            seen.iter().collect::<BTreeSet<_>>(),
            all.iter().collect::<BTreeSet<_>>()
        );
    }
}

on_both_stores! {
    fn junit_report_parses_with_one_failure_per_drifting_task(backend) {
        let env = Env::on(backend);
        let result = env.golden(&[
            "check",
            "golden/support",
            "--agent",
            CANDIDATE,
            "--junit",
            "junit.xml",
            "--json",
            "results.json",
            "--html",
            "report.html",
        ]);
        assert_exit(&result, 1);
        let script = "import sys, xml.etree.ElementTree as ET\n\
    root = ET.parse(sys.argv[1]).getroot()\n\
    cases = root.findall('.//testcase')\n\
    failed = sorted(c.get('name') for c in cases if c.find('failure') is not None)\n\
    print(root.tag, root.get('tests'), root.get('failures'), len(cases), ','.join(failed))\n\
    print(cases[0].find('failure').get('message'))";
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(env.path("junit.xml"))
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = String::from_utf8(out.stdout).expect("UTF-8");
        let mut lines = out.lines();
        let mut drifting = DRIFTING.to_vec();
        drifting.sort_unstable();
        assert_eq!(
            lines.next(),
            Some(format!("testsuites 12 4 12 {}", drifting.join(",")).as_str())
        );
        let message = lines.next().expect("the first failure's message");
        assert!(
            message.contains("tool_calls: 2 → 3 (+50%, tolerance +20%)"),
            "{message}"
        );

        let results =
            task_results(&std::fs::read_to_string(env.path("results.json")).expect("the JSON report"));
        assert_eq!(results.len(), 12);
        let first = &results[0];
        assert_eq!(first["task"], "password-reset");
        assert_eq!(first["verdict"], "drift");
        assert_eq!(first["diff"]["drift"], true);
        assert_eq!(first["snapshot"]["status"], "differs");

        let html = std::fs::read_to_string(env.path("report.html")).expect("the HTML report");
        assert!(html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"));
        assert_eq!(html.matches("<section id=\"task-").count(), 12);
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    }
}

on_both_stores! {
    /// Four CI runners, each checking a shard of the suite at once, record into one store; a
    /// check of the whole suite and `stats` read every run back.
    fn four_concurrent_shards_share_one_store(backend) {
        let env = Env::on(backend);
        let shards: Vec<_> = (1..=4)
            .map(|i| {
                tapedeck_testkit::cli::process_in(env.dir.path())
                    .arg("--store")
                    .arg(env.store_arg())
                    .args(["golden", "check", "golden/support", "--shard"])
                    .arg(format!("{i}/4"))
                    .arg("--json")
                    .arg(format!("shard-{i}.json"))
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("start a shard")
            })
            .collect();
        let mut seen = Vec::new();
        for (i, shard) in shards.into_iter().enumerate() {
            let output = shard.wait_with_output().expect("the shard ends");
            assert_eq!(
                output.status.code(),
                Some(0),
                "shard {}: {}",
                i + 1,
                String::from_utf8_lossy(&output.stderr)
            );
            let text = std::fs::read_to_string(env.path(&format!("shard-{}.json", i + 1)))
                .expect("the JSON report");
            seen.extend(
                task_results(&text)
                    .iter()
                    .map(|r| r["task"].as_str().expect("a task id").to_owned()),
            );
        }
        let mut all = env.task_ids("support");
        all.sort();
        seen.sort();
        assert_eq!(seen, all);

        // Every task's baseline (imported once, however many shards read it) and candidate.
        let listed = env.ls();
        assert_eq!(listed.len(), 2 * all.len(), "{listed:#?}");
        let stats = env
            .tapedeck()
            .args(["stats", "--all", "--json"])
            .output()
            .expect("tapedeck runs");
        let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("JSON");
        let runs: u64 = stats["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .map(|agent| agent["runs"].as_u64().expect("a count"))
            .sum();
        assert_eq!(runs, listed.len() as u64, "{stats:#}");
        assert_exit(&env.golden(&["check", "golden/support"]), 0);
    }
}
