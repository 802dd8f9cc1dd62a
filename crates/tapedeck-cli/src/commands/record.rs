//! `tapedeck record -- CMD…`: run a client behind the recording HTTP proxy and record its model
//! traffic as one run (source `proxy`); exits with the client's own code.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tapedeck_proxy::command_line;
use tapedeck_proxy::http::{self, Backend, ClientRun, Pricing, Proxy, Upstreams};
use tapedeck_proxy::redact::Redactor;
use tapedeck_trace::{Run, Source, StopReason};

use crate::Exit;
use crate::render::{self, DIM};
use crate::settings::Settings;

/// Run a client command behind a local proxy and record its OpenAI/Anthropic traffic
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The client gets OPENAI_BASE_URL=http://127.0.0.1:PORT/v1 and ANTHROPIC_BASE_URL=http://127.0.0.1:PORT; the proxy forwards to the upstream (by default the client's own OPENAI_BASE_URL / ANTHROPIC_BASE_URL, else the public APIs). API keys (authorization, x-api-key, api-key) are never written to the store.\n\nThe client also gets TAPEDECK_SESSION, its session's address: tools decorated with the client libraries of clients/ (Python, JavaScript) and MCP servers started as `tapedeck mcp -- SERVER…` report their calls there, into the same run (clients/PROTOCOL.md). Replay the run with `tapedeck replay RUN -- CMD`.\n\nThe run's agent is --name (default: the module of `python -m MODULE`, else the script the command runs, `agent` for `python agent.py`, `node agent.mjs` or `uv run agent.py`, else the package of `npx`/`uvx PACKAGE`, else the program's file name) with the fingerprint of the models, system prompts and tools the client sent: `ls --agent NAME` and `stats` find its runs by it, and `diff` says what changed between two versions. The run's input is --input (default: the command line, quoted as a POSIX shell would).\n\nExit codes: the client's own code when it is not 0 (128+N if signal N ended it); 0 when it exits 0 and the run ended `ok`, 1 when it exits 0 but the run stopped for another reason (a failed last model call); 2 bad input (a command that cannot be found), nothing recorded; 130 / 143 when tapedeck is interrupted (SIGTERM is passed on to the client; the run ends `cancelled`).\n\nExamples:\n  tapedeck record -- python agent.py\n  tapedeck record --name support-bot --input 'refund order 42' -- python agent.py 42\n  tapedeck record --task refund --pricing prices.yaml -- node agent.js"
)]
pub struct Args {
    #[command(flatten)]
    recording: RecordingArgs,
    /// The client command
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Where the recording proxy forwards, and what it writes: shared by `record` and `proxy`.
#[derive(Debug, clap::Args)]
pub struct RecordingArgs {
    /// Upstream OpenAI base URL, `/v1` included [default: $OPENAI_BASE_URL, else https://api.openai.com/v1]
    #[arg(long, value_name = "URL")]
    upstream_openai: Option<String>,
    /// Upstream Anthropic base URL [default: $ANTHROPIC_BASE_URL, else https://api.anthropic.com]
    #[arg(long, value_name = "URL")]
    upstream_anthropic: Option<String>,
    /// The task id of the recorded runs
    #[arg(long)]
    task: Option<String>,
    /// A label for the recorded runs (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = super::parse_label)]
    labels: Vec<(String, String)>,
    /// Prices per model (YAML `{model: {input_per_mtok, output_per_mtok}}`); without a price a
    /// call's cost stays unknown
    #[arg(long, value_name = "FILE")]
    pricing: Option<PathBuf>,
    /// Also redact text matching this regular expression (repeatable)
    #[arg(long = "redact", value_name = "REGEX")]
    redact: Vec<String>,
    /// The agent's name, by which `ls --agent` and `stats` find its runs (default: below)
    #[arg(long, value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    name: Option<String>,
    /// The run's input, as `show` and `ls --json` give it (default: below)
    #[arg(long, value_name = "TEXT")]
    input: Option<String>,
}

/// A redactor of `--redact` patterns.
pub fn redactor(patterns: &[String]) -> anyhow::Result<Redactor> {
    Redactor::new(patterns).context("invalid --redact pattern")
}

/// The `--ignore` patterns of a replay, compiled.
pub fn ignore_patterns(patterns: &[String]) -> anyhow::Result<Vec<regex::Regex>> {
    patterns
        .iter()
        .map(|p| regex::Regex::new(p).with_context(|| format!("invalid --ignore pattern `{p}`")))
        .collect()
}

impl RecordingArgs {
    /// The redactor of `--redact`.
    pub fn redactor(&self) -> anyhow::Result<Redactor> {
        redactor(&self.redact)
    }

    /// The prices of `--pricing` (none without it).
    pub fn pricing(&self) -> anyhow::Result<Pricing> {
        let Some(path) = &self.pricing else {
            return Ok(Pricing::default());
        };
        // Prices obey the rules of an agent's own `pricing` (finite, not negative); reading
        // the file as those prices first refuses a bad one with its file:line:column.
        if let Ok(text) = std::fs::read_to_string(path) {
            tapedeck_agent::config::parse_document::<tapedeck_agent::config::CheckedPricing>(
                &text, path,
            )?;
        }
        Pricing::load(path).map_err(anyhow::Error::msg)
    }

    /// The upstreams: the flags, else the environment's, else the public APIs.
    pub fn upstreams(&self) -> Upstreams {
        Upstreams::given_or_env(
            self.upstream_openai.as_deref(),
            self.upstream_anthropic.as_deref(),
        )
    }

    /// The agent's name: `--name`, else the one `command` goes by ([`command_line::agent_name`]).
    pub fn agent_name(&self, command: &[String]) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| command_line::agent_name(command))
    }

    /// The run's input: `--input`, else the command line quoted as a shell would, redacted.
    pub fn input(&self, command: &[String], redactor: &Redactor) -> String {
        let input = match &self.input {
            Some(input) => Cow::Borrowed(input.as_str()),
            None => Cow::Owned(command_line::quote(command)),
        };
        redactor.text(&input)
    }

    /// Refuses `--input` (exit 2) where a run has no one input (`tapedeck proxy`).
    pub fn refuse_input(&self, why: &str) -> anyhow::Result<()> {
        match self.input {
            Some(_) => anyhow::bail!("--input does not apply here: {why}"),
            None => Ok(()),
        }
    }

    /// The `--redact` patterns.
    pub fn redact_patterns(&self) -> &[String] {
        &self.redact
    }

    /// The `--name` given, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// A new proxy run with the task and labels.
    pub fn new_run(&self) -> Run {
        let mut run = Run::new(Source::Proxy);
        run.task.clone_from(&self.task);
        run.labels.extend(self.labels.iter().cloned());
        run
    }
}

/// Runs `tapedeck record`.
pub fn run(settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    // Every input is checked before the store is opened: exit 2 leaves nothing behind.
    command_line::check_program(&args.command, "run")?;
    let options = &args.recording;
    let redactor = options.redactor()?;
    let pricing = options.pricing()?;
    let upstreams = options.upstreams();
    let client = http::client().context("cannot set up the HTTP client")?;
    let store = settings.open_store()?;
    let writer = store.writer()?;
    let mut run = options.new_run();
    run.input = Some(options.input(&args.command, &redactor));
    let recorder = writer.start_run(run)?;
    let proxy = Proxy::new(
        Backend::Live { client, upstreams },
        redactor,
        pricing,
        recorder,
    );
    proxy.name_agent(&options.agent_name(&args.command));
    run_client(proxy, &args.command)
}

/// The exit of a client run: the client's own code when it failed (128+N for a signal), 130 /
/// 143 when tapedeck was interrupted, else 0 for a run that ended `ok` and 1 for one that did
/// not.
pub fn exit_of(ended: &ClientRun) -> Exit {
    if let Some(signal) = ended.end.interrupted_by {
        return Exit::Interrupted(signal.number());
    }
    let run_ok = ended
        .run
        .stop_reason
        .as_ref()
        .is_some_and(StopReason::is_ok);
    Exit::of_client(ended.end.code, run_ok)
}

/// Runs the client behind `proxy`, ends the run and prints its summary on stderr; returns the
/// exit ([`exit_of`]).
pub fn run_client(proxy: Arc<Proxy>, command: &[String]) -> anyhow::Result<Exit> {
    Ok(exit_of(&run_client_to_end(
        proxy,
        &http::ClientCommand::new(command),
    )?))
}

/// Runs the client behind `proxy`, ends the run and prints its summary on stderr.
pub fn run_client_to_end(
    proxy: Arc<Proxy>,
    command: &http::ClientCommand,
) -> anyhow::Result<ClientRun> {
    let ended = http::run_client(proxy, command, crate::interrupt::forward)?;
    let run = &ended.run;
    let dim = DIM;
    let stop = run
        .stop_reason
        .as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string);
    for (i, line) in render::run_ending(run, &stop, "model call", run.error.as_deref())
        .iter()
        .enumerate()
    {
        // The client's own output shares the terminal: the first line says whose this is.
        if i == 0 {
            anstream::eprintln!("{dim}tapedeck:{dim:#} {line}");
        } else {
            anstream::eprintln!("{line}");
        }
    }
    Ok(ended)
}
