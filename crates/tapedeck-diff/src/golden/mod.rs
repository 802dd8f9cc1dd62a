//! Golden suites on disk: a [`Suite`] is a folder with `suite.yaml` (the agent — a YAML agent
//! version, or a [`SuiteCommand`] for an agent written as code —, the tasks and their
//! tolerances), `tapes/<task>/1.jsonl` (the baseline runs) and
//! `snapshots/<task>.snap` (the behaviour summaries, see [`snapshot`]); [`check`] judges a
//! check's runs into task results; [`report`] writes them for CI (JUnit XML, Markdown, HTML).

pub mod check;
pub mod report;
pub mod snapshot;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::distribution::Correction;
use crate::{DiffError, Tolerances};

pub use report::{SnapshotCheck, SnapshotStatus, TaskResult, TaskVerdict};
pub use snapshot::{Behaviour, SnapCall, Snapshot};

/// Removes a suite's file (a pending snapshot, a tape of a repetition no longer recorded); one
/// that is not there is fine.
pub fn remove_if_present(path: &Path) -> Result<(), DiffError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DiffError::Golden {
            path: path.to_path_buf(),
            message: format!("cannot remove it: {e}"),
        }),
    }
}

/// The name of a suite's definition file.
pub const SUITE_FILE: &str = "suite.yaml";

/// The run label of repetition N of a task (`repeat=N`): the agent's `REPEAT_LABEL`, which
/// this crate does not depend on.
const REPEAT_LABEL: &str = "repeat";

/// `suite.yaml` as written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    /// The agent version, relative to the suite's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<PathBuf>,
    /// Instead of `agent`, an agent written as code: the command that runs a task, `{input}`
    /// and `{task}` replaced in each word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// With `command`: variables added to its environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// With `command`: its working folder, relative to the suite's folder (default: the
    /// suite's folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// With `command`: the agent's name (default: the one the command goes by).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Baseline runs per task (default 1); with more, checks compare distributions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
    /// The significance level of repeated checks (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// The multiple-testing correction of repeated checks: `holm` (default) or `bh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correction: Option<Correction>,
    /// Suite-wide tolerances, keyed as [`Tolerances::set`] accepts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tolerances: BTreeMap<String, ToleranceValue>,
    /// The tasks.
    #[serde(default)]
    pub tasks: Vec<TaskDef>,
}

/// One task as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDef {
    /// Its id: also the name of its tape folder and snapshot.
    pub id: String,
    /// The input given to the agent.
    pub input: String,
    /// Labels recorded on its runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Tolerances that override the suite's for this task.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tolerances: BTreeMap<String, ToleranceValue>,
}

/// A tolerance as YAML writes it: `"+20%"`, `0.9`, `equal`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToleranceValue {
    /// A number: a fraction or a ratio.
    Number(f64),
    /// Text: `+20%`, `equal`, `off`.
    Text(String),
}

impl fmt::Display for ToleranceValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(t) => f.write_str(t),
        }
    }
}

/// A task, resolved: its tolerances are the suite's with its own on top.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// Its id.
    pub id: String,
    /// The input given to the agent.
    pub input: String,
    /// Labels recorded on its runs.
    pub labels: BTreeMap<String, String>,
    /// The tolerances that apply.
    pub tolerances: Tolerances,
}

/// The environment variable that also holds a task's input, for a suite's command.
pub const INPUT_VAR: &str = "TAPEDECK_INPUT";

/// The agent of a command suite: the command that runs a task, as `suite.yaml` gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct SuiteCommand {
    /// The words, `{input}` and `{task}` not yet replaced.
    pub argv: Vec<String>,
    /// Variables added to its environment.
    pub env: BTreeMap<String, String>,
    /// Its working folder, resolved against the suite's folder.
    pub cwd: PathBuf,
    /// The agent's name, when `suite.yaml` gives one.
    pub name: Option<String>,
}

impl SuiteCommand {
    /// The words that run `task`: `{input}` and `{task}` replaced.
    pub fn argv_for(&self, task: &Task) -> Vec<String> {
        self.argv
            .iter()
            .map(|w| {
                w.replace("{input}", &task.input)
                    .replace("{task}", &task.id)
            })
            .collect()
    }

    /// The environment of `task`'s command: the suite's, and its input in
    /// [`INPUT_VAR`].
    pub fn env_for(&self, task: &Task) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain([(INPUT_VAR.to_owned(), task.input.clone())])
            .collect()
    }
}

/// A golden suite, loaded and checked.
#[derive(Clone, Debug)]
pub struct Suite {
    /// Its folder.
    pub dir: PathBuf,
    /// Its name (the folder's name).
    pub name: String,
    /// `suite.yaml` as written.
    pub file: SuiteFile,
    /// The tasks, resolved, in file order.
    pub tasks: Vec<Task>,
    /// Leading comment lines of `suite.yaml`, kept when it is written back.
    header: String,
}

impl Suite {
    /// Reads `dir/suite.yaml` and checks it: task ids unique and usable as file names,
    /// tolerance keys and values valid.
    pub fn load(dir: &Path) -> Result<Self, DiffError> {
        let path = dir.join(SUITE_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| DiffError::Golden {
            path: path.clone(),
            message: if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "no suite here: a golden suite is a folder with a `{SUITE_FILE}` (agent, tasks, tolerances)"
                )
            } else {
                format!("cannot read it: {e}")
            },
        })?;
        let file: SuiteFile = yaml_serde::from_str(&text).map_err(|e| DiffError::Golden {
            path: path.clone(),
            message: yaml_error(&e, 1, with_suggestion),
        })?;
        let invalid = |message: String| DiffError::Golden {
            path: path.clone(),
            message,
        };
        match (&file.agent, &file.command) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "both `agent` and `command`: a suite checks one kind of agent — a YAML agent version (`agent: AGENT.yaml`) or an agent written as code (`command: [python, agent.py, \"{input}\"]`); keep one".to_owned(),
                ));
            }
            (_, Some(command)) if command.first().is_none_or(|p| p.trim().is_empty()) => {
                return Err(invalid(
                    "command: it needs at least its program, e.g. `command: [python, agent.py, \"{input}\"]`".to_owned(),
                ));
            }
            (_, None) => {
                let only_with_command = [
                    ("env", !file.env.is_empty()),
                    ("cwd", file.cwd.is_some()),
                    ("name", file.name.is_some()),
                ];
                if let Some((key, _)) = only_with_command.iter().find(|(_, given)| *given) {
                    return Err(invalid(format!(
                        "{key}: applies to a suite's `command` (an agent written as code), and this suite has none"
                    )));
                }
            }
            _ => {}
        }
        if file.repeat == Some(0) {
            return Err(invalid(
                "repeat: 0: a task needs at least one baseline run; use `repeat: 1` or more"
                    .to_owned(),
            ));
        }
        if let Some(alpha) = file.alpha
            && !(alpha > 0.0 && alpha < 1.0)
        {
            return Err(invalid(format!(
                "alpha: {alpha}: the significance level must be between 0 and 1, e.g. `alpha: 0.05`"
            )));
        }
        let mut base = Tolerances::default();
        for (key, value) in &file.tolerances {
            base.set(key, &value.to_string())
                .map_err(|e| invalid(format!("tolerances: {e}")))?;
        }
        let mut seen = HashSet::new();
        let mut tasks = Vec::with_capacity(file.tasks.len());
        for (i, def) in file.tasks.iter().enumerate() {
            check_task_id(&def.id)
                .map_err(|m| invalid(format!("tasks[{i}]: task id `{}` {m}", def.id)))?;
            if !seen.insert(def.id.as_str()) {
                return Err(invalid(format!(
                    "tasks[{i}]: duplicate task id `{}`: every task needs its own id (it names its tape and snapshot)",
                    def.id
                )));
            }
            if def.labels.contains_key(REPEAT_LABEL) {
                return Err(invalid(format!(
                    "task `{}`: labels: `{REPEAT_LABEL}` is tapedeck's own: `golden record --repeat` labels run N of a task `{REPEAT_LABEL}=N` (and replays give it that run's seed); name the label otherwise",
                    def.id
                )));
            }
            let mut tolerances = base.clone();
            for (key, value) in &def.tolerances {
                tolerances
                    .set(key, &value.to_string())
                    .map_err(|e| invalid(format!("task `{}`: tolerances: {e}", def.id)))?;
            }
            tasks.push(Task {
                id: def.id.clone(),
                input: def.input.clone(),
                labels: def.labels.clone(),
                tolerances,
            });
        }
        let header: String = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let name = std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "suite".to_owned());
        Ok(Self {
            dir: dir.to_path_buf(),
            name,
            file,
            tasks,
            header,
        })
    }

    /// `suite.yaml`.
    pub fn suite_path(&self) -> PathBuf {
        self.dir.join(SUITE_FILE)
    }

    /// What snapshots name as their source: `golden/<suite>/suite.yaml`.
    pub fn source(&self) -> String {
        format!("golden/{}/{SUITE_FILE}", self.name)
    }

    /// The command `suite.yaml` runs its tasks with, for an agent written as code.
    pub fn command(&self) -> Option<SuiteCommand> {
        let argv = self.file.command.clone()?;
        Some(SuiteCommand {
            argv,
            env: self.file.env.clone(),
            cwd: self
                .file
                .cwd
                .as_ref()
                .map_or_else(|| self.dir.clone(), |c| lexical_join(&self.dir, c)),
            name: self.file.name.clone(),
        })
    }

    /// Points `command:` at `argv` (`golden add` of a command suite's first task).
    pub fn set_command(&mut self, argv: Vec<String>) {
        self.file.command = Some(argv);
    }

    /// The agent version `suite.yaml` names, resolved against the suite's folder.
    pub fn agent_path(&self) -> Option<PathBuf> {
        self.file.agent.as_ref().map(|a| lexical_join(&self.dir, a))
    }

    /// The baseline tape of a task (its first repetition).
    pub fn tape_path(&self, task: &str) -> PathBuf {
        self.repeat_tape_path(task, 1)
    }

    /// The baseline tape of repetition `n` (from 1) of a task: `tapes/<task>/<n>.jsonl`.
    pub fn repeat_tape_path(&self, task: &str, n: usize) -> PathBuf {
        self.dir.join("tapes").join(task).join(format!("{n}.jsonl"))
    }

    /// How many baseline repetitions a task has on disk: `1.jsonl`, `2.jsonl`, … without a gap.
    pub fn recorded_repetitions(&self, task: &str) -> usize {
        (1..)
            .take_while(|n| self.repeat_tape_path(task, *n).is_file())
            .count()
    }

    /// Baseline runs per task: `repeat` in suite.yaml, else 1.
    pub fn repeat(&self) -> usize {
        self.file.repeat.map_or(1, |n| n as usize)
    }

    /// The significance level of repeated checks: `alpha` in suite.yaml, else 0.05.
    pub fn alpha(&self) -> f64 {
        self.file.alpha.unwrap_or(0.05)
    }

    /// The correction of repeated checks: `correction` in suite.yaml, else Holm.
    pub fn correction(&self) -> Correction {
        self.file.correction.unwrap_or_default()
    }

    /// The snapshot of a task.
    pub fn snapshot_path(&self, task: &str) -> PathBuf {
        self.dir.join("snapshots").join(format!("{task}.snap"))
    }

    /// The pending (drifted) snapshot of a task.
    pub fn pending_path(&self, task: &str) -> PathBuf {
        self.dir.join("snapshots").join(format!("{task}.snap.new"))
    }

    /// The tasks with a pending snapshot, in file order.
    pub fn pending(&self) -> Vec<&Task> {
        self.tasks
            .iter()
            .filter(|t| self.pending_path(&t.id).exists())
            .collect()
    }

    /// The task with this id.
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// An error about a task id that is not in the suite, with the closest one.
    pub fn unknown_task(&self, id: &str) -> DiffError {
        let hint = crate::did_you_mean(id, self.tasks.iter().map(|t| t.id.as_str()));
        DiffError::Golden {
            path: self.suite_path(),
            message: format!("no task `{id}` in suite `{}`{hint}", self.name),
        }
    }

    /// Points `agent:` at `agent` (a path from the working directory), written relative to
    /// the suite's folder.
    pub fn set_agent(&mut self, agent: &Path) {
        self.file.agent = Some(relative_to(agent, &self.dir));
    }

    /// Adds a task (its id must be new and usable as a file name).
    pub fn add_task(&mut self, def: TaskDef) -> Result<(), DiffError> {
        let invalid = |message: String| DiffError::Golden {
            path: self.suite_path(),
            message,
        };
        check_task_id(&def.id).map_err(|m| invalid(format!("task id `{}` {m}", def.id)))?;
        if self.task(&def.id).is_some() {
            return Err(invalid(format!(
                "the suite already has a task `{}`: pass another id with --task",
                def.id
            )));
        }
        let mut tolerances = Tolerances::default();
        for (key, value) in self.file.tolerances.iter().chain(&def.tolerances) {
            tolerances
                .set(key, &value.to_string())
                .map_err(|e| invalid(e.to_string()))?;
        }
        self.tasks.push(Task {
            id: def.id.clone(),
            input: def.input.clone(),
            labels: def.labels.clone(),
            tolerances,
        });
        self.file.tasks.push(def);
        Ok(())
    }

    /// Writes `suite.yaml` back (its leading comment kept).
    pub fn save(&self) -> Result<(), DiffError> {
        let path = self.suite_path();
        let body = yaml_serde::to_string(&self.file).map_err(|e| DiffError::Golden {
            path: path.clone(),
            message: format!("cannot write it: {e}"),
        })?;
        std::fs::write(&path, format!("{}{body}", self.header)).map_err(|e| DiffError::Golden {
            path: path.clone(),
            message: format!("cannot write it: {e}"),
        })
    }
}

/// Task ids name files: letters, digits, `-`, `_` and `.`, not starting with `.`.
fn check_task_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("is empty");
    }
    if id.starts_with('.')
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(
            "cannot name a file: use letters, digits, `-`, `_` and `.` (not first), e.g. `password-reset`",
        );
    }
    Ok(())
}

/// A YAML error as `line N: message`, N counted from the file's line `first_line` (where the
/// YAML that failed begins), the error's own " at line …" cut; `tidy` rewrites the message.
pub(crate) fn yaml_error(
    e: &yaml_serde::Error,
    first_line: usize,
    tidy: impl FnOnce(&str) -> String,
) -> String {
    let text = e.to_string();
    let message = tidy(
        text.rsplit_once(" at line ")
            .map_or(text.as_str(), |(m, _)| m),
    );
    match e.location() {
        Some(l) => format!("line {}: {message}", l.line() + first_line - 1),
        None => message,
    }
}

/// Adds "did you mean `x`?" to serde's "unknown field `y`, expected one of `a`, `b`".
fn with_suggestion(message: &str) -> String {
    let Some(rest) = message.split("unknown field `").nth(1) else {
        return message.to_owned();
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let hint = crate::did_you_mean(field, expected.split('`').skip(1).step_by(2));
    format!("{message}{hint}")
}

/// `base/path` with `x/..` pairs dropped where `x` is a plain folder name (no file system
/// access), so `golden/support/../../agents/a.yaml` prints as `agents/a.yaml`.
fn lexical_join(base: &Path, path: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in base.components().chain(path.components()) {
        match (c, out.last()) {
            (Component::CurDir, _) => {}
            (Component::ParentDir, Some(Component::Normal(_))) => {
                out.pop();
            }
            _ => out.push(c),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().map(|c| c.as_os_str()).collect()
}

/// `path` relative to `base` (both as seen from the working directory).
pub fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let absolute = |p: &Path| {
        std::fs::canonicalize(p).unwrap_or_else(|_| {
            std::env::current_dir()
                .map(|d| d.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        })
    };
    let (path, base) = (absolute(path), absolute(base));
    let p: Vec<Component<'_>> = path.components().collect();
    let b: Vec<Component<'_>> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c.as_os_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite(text: &str) -> Result<Suite, DiffError> {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(SUITE_FILE), text).expect("write");
        Suite::load(dir.path())
    }

    #[test]
    fn task_tolerances_override_the_suite() {
        let s = suite(
            "agent: a.yaml\ntolerances: {tool_calls: \"+50%\", answer_similarity: 0.8}\ntasks:\n  - {id: a, input: x}\n  - {id: b, input: y, tolerances: {tool_calls: \"+10%\"}}\n",
        )
        .expect("loads");
        assert!((s.tasks[0].tolerances.tool_calls - 0.5).abs() < 1e-9);
        assert!((s.tasks[1].tolerances.tool_calls - 0.1).abs() < 1e-9);
        assert!((s.tasks[1].tolerances.answer_similarity - 0.8).abs() < 1e-9);
    }

    #[test]
    fn repeat_alpha_and_correction_are_read() {
        let s = suite("repeat: 5\nalpha: 0.1\ncorrection: bh\ntasks:\n  - {id: a, input: x}\n")
            .expect("loads");
        assert_eq!(s.repeat(), 5);
        assert!((s.alpha() - 0.1).abs() < 1e-12);
        assert_eq!(s.correction(), Correction::BenjaminiHochberg);
        let d = suite("tasks:\n  - {id: a, input: x}\n").expect("loads");
        assert_eq!((d.repeat(), d.correction()), (1, Correction::Holm));
        let err = suite("repeat: 0\ntasks: []\n")
            .expect_err("zero")
            .to_string();
        assert!(err.contains("repeat: 0"), "{err}");
        let err = suite("alpha: 1.5\ntasks: []\n")
            .expect_err("alpha")
            .to_string();
        assert!(err.contains("between 0 and 1"), "{err}");
        let err = suite("correction: bonferroni\ntasks: []\n")
            .expect_err("correction")
            .to_string();
        assert!(err.contains("correction"), "{err}");
    }

    #[test]
    fn duplicate_ids_are_named() {
        let err = suite("tasks:\n  - {id: a, input: x}\n  - {id: a, input: y}\n")
            .expect_err("duplicate")
            .to_string();
        assert!(
            err.contains("suite.yaml") && err.contains("duplicate task id `a`"),
            "{err}"
        );
    }

    #[test]
    fn misspelled_tolerance_gets_a_suggestion() {
        let err = suite("tasks:\n  - {id: a, input: x, tolerances: {tool_cals: \"+5%\"}}\n")
            .expect_err("misspelled")
            .to_string();
        assert!(
            err.contains("task `a`") && err.contains("did you mean `tool_calls`"),
            "{err}"
        );
    }

    #[test]
    fn misspelled_field_gets_a_suggestion() {
        let err = suite("taks: []\n").expect_err("unknown").to_string();
        assert!(err.contains("did you mean `tasks`"), "{err}");
    }

    #[test]
    fn agent_paths_are_joined_lexically() {
        assert_eq!(
            lexical_join(
                Path::new("golden/support"),
                Path::new("../../agents/a.yaml")
            ),
            PathBuf::from("agents/a.yaml")
        );
        assert_eq!(
            lexical_join(Path::new("golden/support"), Path::new("agent/a.yaml")),
            PathBuf::from("golden/support/agent/a.yaml")
        );
        assert_eq!(
            lexical_join(Path::new("s"), Path::new("../../a.yaml")),
            PathBuf::from("../a.yaml")
        );
    }

    #[test]
    fn relative_paths_climb_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("golden/support");
        let b = dir.path().join("fixtures/agents");
        std::fs::create_dir_all(&a).expect("mkdir");
        std::fs::create_dir_all(&b).expect("mkdir");
        assert_eq!(
            relative_to(&b.join("x.yaml"), &a),
            PathBuf::from("../../fixtures/agents/x.yaml")
        );
    }
}
