//! What identifies the agent behind a proxy run. [`Identity`] is fed every modelled request of
//! the run and keeps the models it names, its system prompts and the tools it offers; at the
//! end of the run [`Identity::record`] writes them as one `agent_identity` event (prompts and
//! tool definitions as blobs, redacted like everything else the proxy records) and gives the
//! run its agent: the name the run was given and the event's fingerprint.
//!
//! An agent written as code has no config file to fingerprint: what it sends is its version.
//! A new model, a reworded prompt or a tool added, removed or redescribed is a new version.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash as _, Hasher as _};

use serde_json::Value;
use tapedeck_store::{Recorder, StoreError};
use tapedeck_trace::{AgentIdentity, AgentInfo, EventData};

use crate::redact::Redactor;
use tapedeck_wire::{self as wire, Provider};

/// The most distinct models kept.
pub const MAX_MODELS: usize = 64;
/// The most distinct system prompts kept: a prompt that carries the time or a request id is
/// new in every request, and a long run must not keep them all in memory.
pub const MAX_SYSTEM_PROMPTS: usize = 32;
/// The most tools kept (by name).
pub const MAX_TOOLS: usize = 256;

/// The models, system prompts and tools of a run's requests so far, each in order of first use.
#[derive(Debug, Default)]
pub struct Identity {
    name: Option<String>,
    models: Vec<String>,
    prompts: Vec<String>,
    /// Tool name and its definition as first sent.
    tools: Vec<(String, Value)>,
    /// Hashes of the distinct models, prompts and tools past their limits: counted once each.
    omitted: HashSet<u64>,
}

impl Identity {
    /// Names the agent: the run's `agent.name` when the identity is recorded. Without a name
    /// the event is still recorded, and the run has no agent.
    pub fn set_name(&mut self, name: &str) {
        self.name = Some(name.to_owned());
    }

    /// Takes in one modelled request body.
    pub fn observe(&mut self, provider: Provider, body: &Value) {
        if let Some(model) = body.get("model").and_then(Value::as_str)
            && !model.is_empty()
            && !self.models.iter().any(|m| m == model)
        {
            if self.models.len() < MAX_MODELS {
                self.models.push(model.to_owned());
            } else {
                self.omit(("model", model));
            }
        }
        for prompt in system_prompts(provider, body) {
            if self.prompts.contains(&prompt) {
                continue;
            }
            if self.prompts.len() < MAX_SYSTEM_PROMPTS {
                self.prompts.push(prompt);
            } else {
                self.omit(("prompt", &prompt));
            }
        }
        for (name, definition) in tools(body) {
            // The first definition of a name is kept: a tool is identified by its name.
            if self.tools.iter().any(|(n, _)| *n == name) {
                continue;
            }
            if self.tools.len() < MAX_TOOLS {
                self.tools.push((name, definition.clone()));
            } else {
                self.omit(("tool", &name));
            }
        }
    }

    fn omit(&mut self, what: (&str, &str)) {
        let mut hasher = DefaultHasher::new();
        what.hash(&mut hasher);
        self.omitted.insert(hasher.finish());
    }

    /// Records the `agent_identity` event (everything passed through `redactor` first, so the
    /// fingerprint is that of what is stored) and, when the agent has a name, sets the run's
    /// agent to it with the event's fingerprint.
    pub fn record(self, recorder: &mut Recorder, redactor: &Redactor) -> Result<(), StoreError> {
        let mut models: Vec<String> = Vec::with_capacity(self.models.len());
        for model in &self.models {
            let model = redactor.text(model);
            if !models.contains(&model) {
                models.push(model);
            }
        }
        let mut system_prompts = Vec::with_capacity(self.prompts.len());
        for prompt in self.prompts {
            let mut value = Value::String(prompt);
            redactor.value(&mut value);
            let hash = recorder.blob(&value)?;
            // Two prompts that differed only in a secret are one once it is redacted.
            if !system_prompts.contains(&hash) {
                system_prompts.push(hash);
            }
        }
        let mut tools = BTreeMap::new();
        for (name, mut definition) in self.tools {
            redactor.value(&mut definition);
            let hash = recorder.blob(&definition)?;
            tools.entry(redactor.text(&name)).or_insert(hash);
        }
        let identity = AgentIdentity::new(models, system_prompts, tools, self.omitted.len() as u64);
        let fingerprint = identity.fingerprint.clone();
        recorder.append(EventData::AgentIdentity(identity))?;
        if let Some(name) = self.name {
            recorder.set_agent(AgentInfo {
                name: redactor.text(&name),
                fingerprint,
            });
        }
        Ok(())
    }
}

/// The system prompts of a request, as text: its system and developer messages (Anthropic's
/// `system` and the Responses API's `instructions` among them, as [`wire::request_messages`]
/// gives them), in order; empty ones left out.
fn system_prompts(provider: Provider, body: &Value) -> Vec<String> {
    wire::request_messages(provider, body)
        .iter()
        .filter(|m| {
            matches!(
                m.get("role").and_then(Value::as_str),
                Some("system" | "developer")
            )
        })
        .filter_map(|m| content_text(m.get("content")?))
        .filter(|text| !text.is_empty())
        .collect()
}

/// The text of a message's content: a string as it is, or the text of its parts (`text`,
/// `input_text`, Anthropic's text blocks), one per line. Parts that are not text (an image)
/// are not part of the prompt's text.
fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

/// The tools a request offers, each with its name: Chat Completions' `function.name`, the
/// Responses API's and Anthropic's `name`, or for a built-in tool with no name (the Responses
/// API's `web_search_preview`) its `type`.
fn tools(body: &Value) -> Vec<(String, &Value)> {
    let Some(tools) = body.get("tools").and_then(Value::as_array) else {
        return Vec::new();
    };
    tools
        .iter()
        .filter_map(|tool| {
            let name = tool
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| tool.get("name"))
                .or_else(|| tool.get("type"))
                .and_then(Value::as_str)?;
            Some((name.to_owned(), tool))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests fail loudly")]

    use serde_json::json;
    use tapedeck_store::{Ending, Store};
    use tapedeck_trace::{Run, Source, StopReason};

    use super::*;

    #[test]
    fn system_prompts_of_every_api() {
        let chat = json!({"model": "m", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}, {"type": "text", "text": "Cite."}]},
            {"role": "system", "content": ""},
        ]});
        assert_eq!(
            system_prompts(Provider::OpenAi, &chat),
            ["Be brief.", "Use tools.\nCite."]
        );
        let anthropic = json!({"model": "m", "system": [
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Today is Monday."},
        ], "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(
            system_prompts(Provider::Anthropic, &anthropic),
            ["Be brief.\nToday is Monday."]
        );
        let anthropic = json!({"model": "m", "system": "Be brief.", "messages": []});
        assert_eq!(
            system_prompts(Provider::Anthropic, &anthropic),
            ["Be brief."]
        );
        let responses = json!({"model": "m", "instructions": "Be brief.", "input": [
            {"role": "developer", "content": [{"type": "input_text", "text": "Use tools."}]},
            {"role": "user", "content": "hi"},
        ]});
        assert_eq!(
            system_prompts(Provider::Responses, &responses),
            ["Be brief.", "Use tools."]
        );
        let responses = json!({"model": "m", "input": "hi"});
        assert!(system_prompts(Provider::Responses, &responses).is_empty());
    }

    #[test]
    fn tools_are_named_by_each_api_s_field() {
        let body = json!({"tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": {}}},
            {"name": "create_ticket", "input_schema": {"type": "object"}},
            {"type": "function", "name": "lookup", "parameters": {}},
            {"type": "web_search_preview"},
            {"description": "no name at all"},
        ]});
        let names: Vec<String> = tools(&body).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "get_weather",
                "create_ticket",
                "lookup",
                "web_search_preview"
            ]
        );
        assert!(tools(&json!({"tools": "not a list"})).is_empty());
    }

    #[test]
    fn each_model_prompt_and_tool_is_kept_once_in_order_of_first_use() {
        let mut identity = Identity::default();
        let request = |model: &str, system: &str, tools: Value| json!({"model": model, "messages": [{"role": "system", "content": system}], "tools": tools});
        let weather = json!({"type": "function", "function": {"name": "get_weather"}});
        let weather_v2 =
            json!({"type": "function", "function": {"name": "get_weather", "description": "v2"}});
        let ticket = json!({"type": "function", "function": {"name": "create_ticket"}});
        identity.observe(Provider::OpenAi, &request("b", "P1", json!([weather])));
        identity.observe(
            Provider::OpenAi,
            &request("a", "P2", json!([weather_v2, ticket])),
        );
        identity.observe(Provider::OpenAi, &request("b", "P1", json!([])));
        assert_eq!(identity.models, ["b", "a"]);
        assert_eq!(identity.prompts, ["P1", "P2"]);
        assert_eq!(
            identity.tools,
            [
                ("get_weather".to_owned(), weather),
                ("create_ticket".to_owned(), ticket)
            ]
        );
        assert!(identity.omitted.is_empty());
    }

    #[test]
    fn past_the_limit_prompts_are_counted_not_kept() {
        let mut identity = Identity::default();
        for round in 0..2 {
            for i in 0..MAX_SYSTEM_PROMPTS + 5 {
                let body = json!({"model": "m", "messages": [
                    {"role": "system", "content": format!("It is {i} o'clock.")}]});
                identity.observe(Provider::OpenAi, &body);
            }
            assert_eq!(identity.prompts.len(), MAX_SYSTEM_PROMPTS, "round {round}");
            // Sent again, the same prompts are not counted again.
            assert_eq!(identity.omitted.len(), 5, "round {round}");
        }
    }

    /// Through a real store: the event holds redacted prompts and tools as blobs, its
    /// fingerprint is the run's, and a secret in a prompt never reaches the store.
    #[test]
    fn recorded_with_redaction_and_the_run_s_agent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db")).unwrap();
        let writer = store.writer().unwrap();
        let mut recorder = writer.start_run(Run::new(Source::Proxy)).unwrap();
        let id = recorder.id();
        let redactor = Redactor::default();
        redactor.learn("sk-live-SECRET-0123456789");
        let mut identity = Identity::default();
        identity.set_name("weather-bot");
        identity.observe(
            Provider::OpenAi,
            &json!({"model": "gpt-4.1", "messages": [
                {"role": "system", "content": "Key sk-live-SECRET-0123456789. Be brief."}],
                "tools": [{"type": "function", "function": {"name": "get_weather"}}]}),
        );
        identity.record(&mut recorder, &redactor).unwrap();
        let run = recorder
            .end(Ending {
                stop_reason: StopReason::Ok,
                answer: None,
                error: None,
            })
            .unwrap();
        let events = store.events(&id).unwrap();
        let EventData::AgentIdentity(event) = &events[0].data else {
            panic!("not an agent_identity: {events:?}");
        };
        assert_eq!(event.models, ["gpt-4.1"]);
        let agent = run.agent.unwrap();
        assert_eq!(agent.name, "weather-bot");
        assert_eq!(agent.fingerprint, event.fingerprint);
        assert_eq!(event.fingerprint, event.fingerprint_of());
        let prompt = store.blob(&event.system_prompts[0], &id).unwrap();
        let prompt = prompt.as_str().unwrap();
        assert!(!prompt.contains("SECRET"), "{prompt}");
        assert!(prompt.ends_with("Be brief."), "{prompt}");
        let tool = store.blob(&event.tools["get_weather"], &id).unwrap();
        assert_eq!(tool["function"]["name"], "get_weather");
    }
}
