//! Reading an agent version from its file: [`LoadedConfig`] (the config with its prompt and
//! script resolved, and its fingerprint), and the YAML/JSON parsing whose errors name
//! file:line:column and the nearest valid field.

use super::*;

/// A config read from a file, with what its fingerprint covers resolved.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    /// The config as written, defaults filled in.
    pub config: AgentConfig,
    /// The file it came from.
    pub path: PathBuf,
    /// The system prompt (inline or from its file).
    pub system_prompt: Option<String>,
    /// The script of a scripted model, parsed.
    pub script: Option<Value>,
    /// Things that are allowed but probably wrong.
    pub warnings: Vec<String>,
}

impl LoadedConfig {
    /// Reads, checks and resolves a config file.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|source| AgentError::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_text(&text, path)
    }

    /// Checks and resolves a config already read from `path` (YAML, or JSON for a `.json`
    /// path): the prompt file and the script it names are still read relative to `path`, so
    /// text with no such file needs no file system at all.
    pub fn from_text(text: &str, path: &Path) -> Result<Self, AgentError> {
        let config = parse_config(text, path)?;
        Self::resolve(config, path)
    }

    fn resolve(config: AgentConfig, path: &Path) -> Result<Self, AgentError> {
        let invalid = |message: String| AgentError::InvalidConfig {
            path: path.to_path_buf(),
            message,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let system_prompt = match (&config.system_prompt, &config.system_prompt_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "set `system_prompt` or `system_prompt_file`, not both".to_owned(),
                ));
            }
            (Some(prompt), None) => Some(prompt.clone()),
            (None, Some(file)) => {
                let file = base.join(file);
                Some(std::fs::read_to_string(&file).map_err(|e| {
                    invalid(format!(
                        "cannot read system_prompt_file `{}`: {e}",
                        file.display()
                    ))
                })?)
            }
            (None, None) => None,
        };
        let mut warnings = Vec::new();
        let mut names = std::collections::HashSet::new();
        for def in &config.tools.defs {
            if !names.insert(def.name.as_str()) {
                return Err(invalid(format!("tool `{}` is defined twice", def.name)));
            }
            match (&def.command, &def.builtin) {
                (Some(_), Some(_)) => {
                    return Err(invalid(format!(
                        "tool `{}` has both `command` and `builtin`; give one",
                        def.name
                    )));
                }
                (Some(cmd), None) if cmd.is_empty() => {
                    return Err(invalid(format!("tool `{}` has an empty `command`", def.name)));
                }
                (None, None) => warnings.push(format!(
                    "tool `{}` has neither `command` nor `builtin`: only an in-process tool registered under that name can serve it",
                    def.name
                )),
                _ => {}
            }
            if def.builtin == Some(Builtin::Mock) {
                if def.mock.is_empty() {
                    return Err(invalid(format!(
                        "tool `{}` is a mock with no `mock` answers",
                        def.name
                    )));
                }
                for (i, answer) in def.mock.iter().enumerate() {
                    if answer.output.is_some() == answer.error.is_some() {
                        return Err(invalid(format!(
                            "tool `{}`: mock answer {} needs exactly one of `output` and `error`",
                            def.name,
                            i + 1
                        )));
                    }
                }
            } else if !def.mock.is_empty() {
                return Err(invalid(format!(
                    "tool `{}` has `mock` answers but is not `builtin: mock`",
                    def.name
                )));
            }
            for (which, schema) in [
                ("input_schema", Some(&def.input_schema)),
                ("output_schema", def.output_schema.as_ref()),
            ] {
                if let Some(schema) = schema {
                    jsonschema::validator_for(schema).map_err(|e| {
                        invalid(format!(
                            "tool `{}`: {which} is not a valid JSON Schema: {e}",
                            def.name
                        ))
                    })?;
                }
            }
        }
        for tool in &config.tools.allow {
            if !names.contains(tool.as_str()) {
                warnings.push(format!(
                    "tool `{tool}` is allowed but not defined under tools.defs: calls to it will be denied"
                ));
            }
        }
        for track in &config.monitoring.track {
            if !TRACKABLE.contains(&track.as_str()) {
                return Err(invalid(format!(
                    "monitoring.track: unknown figure `{track}` (known: {})",
                    TRACKABLE.join(", ")
                )));
            }
        }
        let script = match &config.model {
            Some(model) if model.provider == Provider::Scripted => {
                let Some(script) = &model.script else {
                    return Err(invalid(
                        "a scripted model needs `model.script`, the file of its responses"
                            .to_owned(),
                    ));
                };
                let file = base.join(script);
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    invalid(format!(
                        "cannot read model.script `{}`: {e}",
                        file.display()
                    ))
                })?;
                Some(crate::model::scripted::check_script(&text, &file)?)
            }
            _ => None,
        };

        if let Some(model) = &config.model
            && model.provider != Provider::Scripted
            && !config.pricing.contains_key(&model.name)
        {
            warnings.push(format!(
                "no price for model `{}` under `pricing`: its cost will be unknown and `max_usd` cannot count it",
                model.name
            ));
        }
        Ok(Self {
            config,
            path: path.to_path_buf(),
            system_prompt,
            script,
            warnings,
        })
    }

    /// The approvals file `writes.approvals_file` names, read and checked (`None` without
    /// one). Not part of the agent version: a replay answers from the recording and needs no
    /// file, so loading a config does not read it; `config check` and `run` do, so that a
    /// missing or malformed file is found before anything runs.
    pub fn approvals(&self) -> Result<Option<crate::approvals::Approvals>, AgentError> {
        self.config
            .writes
            .approvals_file
            .as_ref()
            .map(|file| crate::approvals::Approvals::load(&self.resolve_path(file)))
            .transpose()
    }

    /// The folder relative paths in the config are resolved from.
    pub fn base_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// A path from the config, resolved against its folder.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        self.base_dir().join(path)
    }

    /// The model, or an error saying `run` needs one.
    pub fn model(&self) -> Result<&ModelConfig, AgentError> {
        self.config.model.as_ref().ok_or_else(|| AgentError::InvalidConfig {
            path: self.path.clone(),
            message: "no `model`: a run needs one (provider openai, anthropic or scripted, and a name)".to_owned(),
        })
    }

    /// The definition of a tool.
    pub fn tool(&self, name: &str) -> Option<&ToolDef> {
        self.config.tools.defs.iter().find(|d| d.name == name)
    }

    /// What the fingerprint hashes: the config with the prompt file and the script inlined,
    /// and no path that would make one version look like two.
    pub fn effective(&self) -> Value {
        let mut config = self.config.clone();
        config.system_prompt = self.system_prompt.clone();
        config.system_prompt_file = None;
        let mut value = serde_json::to_value(&config).unwrap_or(Value::Null);
        if let (Some(script), Some(model)) = (&self.script, value.get_mut("model")) {
            model["script"] = script.clone();
        }
        value
    }

    /// The agent version's fingerprint: sha256 of the canonical effective config, in hex.
    pub fn fingerprint(&self) -> String {
        match hash_json(&self.effective()) {
            Ok((hash, _)) => hash.to_string().trim_start_matches("sha256:").to_owned(),
            Err(_) => String::new(),
        }
    }
}

/// Parses a config from text (YAML, or JSON for a `.json` file).
pub fn parse_config(text: &str, path: &Path) -> Result<AgentConfig, AgentError> {
    parse_document(text, path)
}

/// Parses YAML or JSON (by extension) into `T`, with file:line:column and a suggestion for a
/// misspelled field in the error.
pub fn parse_document<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, AgentError> {
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let (message, line, column) = if is_json {
        match serde_json::from_str(text) {
            Ok(v) => return Ok(v),
            Err(e) => (
                without_location(&e.to_string(), e.line(), e.column()),
                e.line(),
                e.column(),
            ),
        }
    } else {
        match yaml_serde::from_str(text) {
            Ok(v) => return Ok(v),
            Err(e) => {
                let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
                (without_location(&e.to_string(), line, column), line, column)
            }
        }
    };
    Err(AgentError::ParseConfig {
        path: path.to_path_buf(),
        line,
        column,
        message: with_suggestion(&with_path(&message)),
    })
}

/// A YAML error's message as tapedeck shows it: without the parser's own location, with the
/// field path joined to a range refusal, and with a suggestion for a misspelled field.
pub(crate) fn yaml_message(e: &yaml_serde::Error) -> String {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    with_suggestion(&with_path(&without_location(&e.to_string(), line, column)))
}

/// Joins the path yaml_serde puts first to the field a range refusal names:
/// "budgets.max_seconds: max_seconds must be …" becomes "budgets.max_seconds must be …".
fn with_path(message: &str) -> String {
    if let Some((path, rest)) = message.split_once(": ")
        && let Some((field, _)) = rest.split_once(" must be ")
        && (path == field || path.ends_with(&format!(".{field}")))
    {
        return format!("{path}{}", &rest[field.len()..]);
    }
    message.to_owned()
}

/// The parser's message without its own " at line L column C" (the error already starts with
/// file:line:column). Only that location goes: another one, such as where the flow mapping an
/// error is inside of was opened, is what points at the real mistake and stays.
fn without_location(message: &str, line: usize, column: usize) -> String {
    let own = format!(" at line {line} column {column}");
    match message.find(&own) {
        Some(at) => format!("{}{}", &message[..at], &message[at + own.len()..]),
        None => message.to_owned(),
    }
}

/// Adds "did you mean `x`?" to serde's "unknown field `y`, expected one of …".
pub(super) fn with_suggestion(message: &str) -> String {
    // yaml_serde puts the path first: "budgets: unknown field `x`, expected …".
    let Some((path, rest)) = message.split_once("unknown field `") else {
        return message.to_owned();
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let best = candidates
        .iter()
        .map(|c| (strsim::levenshtein(field, c), *c))
        .min();
    match best {
        Some((d, c)) if d <= field.len().max(3) / 2 + 1 => {
            format!(
                "{path}unknown field `{field}`: did you mean `{c}`? (valid here: {})",
                candidates.join(", ")
            )
        }
        _ => format!(
            "{path}unknown field `{field}` (valid here: {})",
            candidates.join(", ")
        ),
    }
}
