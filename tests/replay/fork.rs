//! Forks (`tapedeck replay RUN --from-step K [--agent NEW.yaml]`): steps `1..=K` served from
//! the recording, then the agent — the recorded version or a new one — goes on live, its tools
//! and approvals included.

use serde_json::{Value, json};
use tapedeck_testkit::on_both_stores;

use crate::{Env, PASSWORD, REFUND, data_of, results, short};

/// The password answer of the support bot's script.
const ANSWER: &str = "Open Settings > Security and choose Reset password: we email you a link that works for 30 minutes. (Article: password-reset)";

fn origins(shown: &Value) -> Vec<String> {
    results(shown).into_iter().map(|(o, _)| o).collect()
}

on_both_stores! {
    fn a_fork_serves_steps_up_to_k_then_the_new_version_goes_on(backend) {
        let env = Env::with_fixture_agents_on(backend);
        env.edit(
            "support-bot.script.yaml",
            "v2.script.yaml",
            &[(ANSWER, "v2: Settings > Security > Reset password.")],
        );
        env.edit(
            "support-bot.yaml",
            "v2.yaml",
            &[("support-bot.script.yaml", "v2.script.yaml")],
        );
        let id = env.record("support-bot.yaml", PASSWORD, 0);
        let report = env.replay_json(&[&id, "--from-step", "2", "--agent", "v2.yaml"], 1);
        assert_eq!(report["mode"], "fork@2");
        let run = &report["run"];
        assert_eq!(run["mode"], "fork@2");
        assert_eq!(run["stop_reason"], "ok");
        assert_eq!(run["answer"], "v2: Settings > Security > Reset password.");
        assert_eq!(report["divergence"]["step"], 3);
        assert_eq!(report["divergence"]["kind"], "llm_response");
        let replay = short(&run["id"]);
        let replayed = env.show(&replay);
        assert_eq!(origins(&replayed), ["recorded", "recorded"]);
        let shown = env.stdout(&["show", &replay]);
        assert!(shown.contains(&format!("fork@2 of {id}")), "{shown}");
    }
}

on_both_stores! {
    fn after_k_the_tools_run_live(backend) {
        let env = Env::with_fixture_agents_on(backend);
        env.edit(
            "support-bot.script.yaml",
            "v2.script.yaml",
            &[(
                "arguments: { article: password-reset }",
                "arguments: { article: account-locked }",
            )],
        );
        env.edit(
            "support-bot.yaml",
            "v2.yaml",
            &[("support-bot.script.yaml", "v2.script.yaml")],
        );
        let id = env.record("support-bot.yaml", PASSWORD, 0);
        let report = env.replay_json(&[&id, "--from-step", "1", "--agent", "v2.yaml"], 1);
        assert_eq!(report["run"]["stop_reason"], "ok");
        // The live model asked for kb.read as recorded, with other arguments.
        assert_eq!(report["divergence"]["kind"], "tool_call");
        assert_eq!(report["divergence"]["step"], 2);
        let replayed = env.show(&short(&report["run"]["id"]));
        assert_eq!(origins(&replayed), ["recorded", "live"]);
        let live = data_of(&replayed, "tool_result")[1];
        assert_eq!(live["error"], "404: no such article");
    }
}

on_both_stores! {
    /// Without `--agent` the recorded version goes on: its script and mock tools come from the
    /// recording, so the fork needs none of its files and takes the recorded path again.
    fn a_fork_of_the_recorded_version_takes_the_recorded_path(backend) {
        let env = Env::with_fixture_agents_on(backend);
        let id = env.record("support-bot.yaml", PASSWORD, 0);
        for file in ["support-bot.yaml", "support-bot.script.yaml"] {
            env.remove(file);
        }
        let report = env.replay_json(&[&id, "--from-step", "1"], 0);
        assert_eq!(report["mode"], "fork@1");
        assert_eq!(report["divergence"], Value::Null);
        assert_eq!(report["run"]["answer"], ANSWER);
        let replayed = env.show(&short(&report["run"]["id"]));
        assert_eq!(origins(&replayed), ["recorded", "live"]);
        assert_eq!(
            results(&replayed),
            results(&env.show(&id))
                .into_iter()
                .zip(["recorded", "live"])
                .map(|((_, output), origin)| (origin.to_owned(), output))
                .collect::<Vec<_>>()
        );
    }
}

on_both_stores! {
    /// A write after K runs live, so its approval is the agent's own (its approvals file here),
    /// never the recording's; without an approvals file, nobody approves it.
    fn a_write_after_k_is_approved_by_the_agents_own_approver(backend) {
        let env = Env::with_fixture_agents_on(backend);
        let id = env.record("support-bot.yaml", REFUND, 0);
        let report = env.replay_json(&[&id, "--from-step", "1"], 0);
        let replayed = env.show(&short(&report["run"]["id"]));
        let approved = data_of(&replayed, "policy_decision")
            .into_iter()
            .find(|d| d["decision"] == "approved")
            .expect("the refund was approved");
        assert_eq!(approved["rule"], "approvals_file:1");
        assert_eq!(approved["detail"], "by alice");
        let refund = data_of(&replayed, "tool_result")
            .into_iter()
            .find(|r| r["tool"] == "orders.refund")
            .expect("the refund ran");
        assert_eq!(refund["origin"], "live");

        env.remove("approvals.yaml");
        let report = env.replay_json(&[&id, "--from-step", "1"], 1);
        assert_eq!(
            report["run"]["stop_reason"],
            "approval_denied:orders.refund"
        );
        let replayed = env.show(&short(&report["run"]["id"]));
        let rejected = data_of(&replayed, "policy_decision")
            .into_iter()
            .find(|d| d["decision"] == "rejected")
            .expect("the refund was rejected");
        let rule = rejected["rule"].as_str().expect("a rule");
        assert!(rule.starts_with("replay: no approver ("), "{rule}");
        assert_eq!(
            replayed["run"]["totals"]["tool_calls"],
            json!({"kb.read": 1, "orders.refund": 1})
        );
    }
}
