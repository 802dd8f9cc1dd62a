//! Agent versions compared. [`AgentVersion`] is what a run's `agent_identity` event records of
//! its agent (the models, the system prompts' text, the tools' definitions), and
//! [`diff_agents`] says what changed between two: the models, the system prompts as a line
//! diff, the tools added, removed and redefined ([`AgentDiff`]).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use similar::Algorithm;
use tapedeck_store::Store;
use tapedeck_trace::{AgentIdentity, Run};

use crate::DiffError;
use crate::compare::ALIGN_DEADLINE;

/// A run's agent version, as its `agent_identity` event records it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentVersion {
    /// The agent's name (the run's `agent.name`), if it has one.
    pub name: Option<String>,
    /// The fingerprint over the models, prompts and tools.
    pub fingerprint: String,
    /// The models, in order of first use.
    pub models: Vec<String>,
    /// The system prompts' text, in order of first use.
    pub system_prompts: Vec<String>,
    /// Each tool's definition, by name.
    pub tools: BTreeMap<String, Value>,
}

impl AgentVersion {
    /// The version `identity` records for `run`, its prompts and tools read from `store`.
    pub fn load(store: &Store, run: &Run, identity: &AgentIdentity) -> Result<Self, DiffError> {
        let blobs = store.blobs(
            identity
                .system_prompts
                .iter()
                .chain(identity.tools.values())
                .copied(),
            &run.id,
        )?;
        let take = |hash| blobs.get(hash).cloned().unwrap_or(Value::Null);
        let system_prompts = identity
            .system_prompts
            .iter()
            .map(|hash| match take(hash) {
                Value::String(text) => text,
                // Not written by tapedeck (a hand-made tape): shown as the JSON it is.
                other => other.to_string(),
            })
            .collect();
        let tools = identity
            .tools
            .iter()
            .map(|(name, hash)| (name.clone(), take(hash)))
            .collect();
        Ok(Self {
            name: run.agent.as_ref().map(|a| a.name.clone()),
            fingerprint: identity.fingerprint.clone(),
            models: identity.models.clone(),
            system_prompts,
            tools,
        })
    }
}

/// The name and fingerprint of one side's agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgentRef {
    /// The agent's name, if it has one.
    pub name: Option<String>,
    /// Its fingerprint.
    pub fingerprint: String,
}

/// The models of both sides, when they differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModelChange {
    /// The baseline's models, in order of first use.
    pub baseline: Vec<String>,
    /// The candidate's.
    pub candidate: Vec<String>,
}

/// What changed between two agent versions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgentDiff {
    /// The baseline's agent.
    pub baseline: AgentRef,
    /// The candidate's agent.
    pub candidate: AgentRef,
    /// Whether the fingerprints are equal: the same models, prompts and tools.
    pub same_version: bool,
    /// The models, when they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<ModelChange>,
    /// The system prompts (each side's, one after the other) as a unified line diff, when
    /// they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_prompt_diff: Option<String>,
    /// Tools only the candidate offers.
    pub tools_added: Vec<String>,
    /// Tools only the baseline offers.
    pub tools_removed: Vec<String>,
    /// Tools both offer with different definitions (description or schema).
    pub tools_changed: Vec<String>,
}

/// Compares a candidate's agent version with a baseline's.
pub fn diff_agents(baseline: &AgentVersion, candidate: &AgentVersion) -> AgentDiff {
    let models = (baseline.models != candidate.models).then(|| ModelChange {
        baseline: baseline.models.clone(),
        candidate: candidate.models.clone(),
    });
    let system_prompt_diff = (baseline.system_prompts != candidate.system_prompts)
        .then(|| line_diff(&baseline.system_prompts, &candidate.system_prompts));
    let only = |a: &AgentVersion, b: &AgentVersion| -> Vec<String> {
        a.tools
            .keys()
            .filter(|name| !b.tools.contains_key(*name))
            .cloned()
            .collect()
    };
    let tools_changed = baseline
        .tools
        .iter()
        .filter(|(name, def)| candidate.tools.get(*name).is_some_and(|c| c != *def))
        .map(|(name, _)| name.clone())
        .collect();
    let side = |v: &AgentVersion| AgentRef {
        name: v.name.clone(),
        fingerprint: v.fingerprint.clone(),
    };
    AgentDiff {
        baseline: side(baseline),
        candidate: side(candidate),
        same_version: baseline.fingerprint == candidate.fingerprint,
        models,
        system_prompt_diff,
        tools_added: only(candidate, baseline),
        tools_removed: only(baseline, candidate),
        tools_changed,
    }
}

/// A unified diff (hunks only, three lines of context) of two lists of prompts, each side's
/// prompts one after the other.
fn line_diff(baseline: &[String], candidate: &[String]) -> String {
    // Every line ends with a newline, so no "\ No newline at end of file" marks the last.
    let text = |prompts: &[String]| {
        prompts
            .iter()
            .map(|p| format!("{}\n", p.trim_end_matches('\n')))
            .collect::<String>()
    };
    let (old, new) = (text(baseline), text(candidate));
    let diff = similar::TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .timeout(ALIGN_DEADLINE)
        .diff_lines(&old, &new);
    diff.unified_diff().context_radius(3).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn version(models: &[&str], prompts: &[&str], tools: &[(&str, Value)]) -> AgentVersion {
        AgentVersion {
            name: Some("weather".into()),
            fingerprint: format!("{models:?}{prompts:?}{tools:?}"),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            system_prompts: prompts.iter().map(|p| (*p).to_owned()).collect(),
            tools: tools
                .iter()
                .map(|(n, d)| ((*n).to_owned(), d.clone()))
                .collect(),
        }
    }

    #[test]
    fn the_same_version_has_no_changes() {
        let v = version(&["m"], &["Be brief."], &[("t", json!({"name": "t"}))]);
        let diff = diff_agents(&v, &v);
        assert!(diff.same_version);
        assert_eq!(diff.models, None);
        assert_eq!(diff.system_prompt_diff, None);
        assert!(diff.tools_added.is_empty() && diff.tools_removed.is_empty());
        assert!(diff.tools_changed.is_empty());
    }

    #[test]
    fn models_prompt_lines_and_tools_are_compared() {
        let a = version(
            &["gpt-4.1-mini"],
            &["You are a weather assistant.\nAnswer in one sentence.\nBe kind."],
            &[
                ("get_weather", json!({"name": "get_weather"})),
                ("lookup", json!({"name": "lookup"})),
            ],
        );
        let b = version(
            &["gpt-4.1"],
            &["You are a terse weather assistant.\nAnswer in one sentence.\nBe kind."],
            &[
                (
                    "get_weather",
                    json!({"name": "get_weather", "description": "v2"}),
                ),
                ("create_ticket", json!({"name": "create_ticket"})),
            ],
        );
        let diff = diff_agents(&a, &b);
        assert!(!diff.same_version);
        assert_eq!(
            diff.models,
            Some(ModelChange {
                baseline: vec!["gpt-4.1-mini".into()],
                candidate: vec!["gpt-4.1".into()],
            })
        );
        assert_eq!(
            diff.system_prompt_diff.as_deref(),
            Some(
                "@@ -1,3 +1,3 @@\n-You are a weather assistant.\n+You are a terse weather assistant.\n Answer in one sentence.\n Be kind.\n"
            )
        );
        assert_eq!(diff.tools_added, ["create_ticket"]);
        assert_eq!(diff.tools_removed, ["lookup"]);
        assert_eq!(diff.tools_changed, ["get_weather"]);
    }

    #[test]
    fn a_prompt_added_is_a_diff_of_added_lines() {
        let a = version(&["m"], &[], &[]);
        let b = version(&["m"], &["Be brief."], &[]);
        assert_eq!(
            diff_agents(&a, &b).system_prompt_diff.as_deref(),
            Some("@@ -0,0 +1 @@\n+Be brief.\n")
        );
    }
}
