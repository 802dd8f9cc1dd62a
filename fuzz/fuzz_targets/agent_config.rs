//! An agent version's text (`tapedeck_agent::LoadedConfig::from_text`), as YAML and as JSON,
//! and as a scripted model's script (`check_script`). A config that loads has a fingerprint,
//! reads back from the JSON it is recorded as (`AgentConfig::from_recorded`) equal, and that
//! JSON loads again as a config file with the same fingerprint: the range checks refuse nothing
//! they accepted.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tapedeck_agent::config::{AgentConfig, LoadedConfig, Provider, parse_config};
use tapedeck_agent::model::scripted::check_script;

/// A folder that does not exist: a config naming a relative file fails to read it.
const BASE: &str = "/nonexistent-tapedeck-fuzz";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = check_script(text, &Path::new(BASE).join("script.yaml"));
    for name in ["agent.yaml", "agent.json"] {
        let path = Path::new(BASE).join(name);
        let Ok(config) = parse_config(text, &path) else {
            continue;
        };
        // A file the config names would be read, and an absolute one could be any file
        // (`/dev/zero`): only text that names none is loaded whole.
        let scripted = config
            .model
            .as_ref()
            .is_some_and(|m| m.provider == Provider::Scripted && m.script.is_some());
        if config.system_prompt_file.is_some() || scripted {
            continue;
        }
        let Ok(loaded) = LoadedConfig::from_text(text, &path) else {
            continue;
        };
        let fingerprint = loaded.fingerprint();
        assert_eq!(fingerprint.len(), 64, "a sha256 in hex");
        let recorded = loaded.effective();
        let read = AgentConfig::from_recorded(recorded.clone()).expect("a recorded config reads");
        assert_eq!(read, loaded.config);
        let json = serde_json::to_string(&recorded).expect("JSON");
        let again = LoadedConfig::from_text(&json, &Path::new(BASE).join("again.json"))
            .expect("a loaded config, written as JSON, loads");
        assert_eq!(again.config, loaded.config);
        assert_eq!(again.fingerprint(), fingerprint);
    }
});
