//! `tapedeck config check FILE`: validate an agent version and print its effective config and
//! fingerprint.

use std::path::PathBuf;

use clap::Subcommand;
use serde::Serialize;
use tapedeck_agent::{AgentConfig, LoadedConfig};

use crate::Exit;
use crate::json_output;
use crate::render::{self, DIM, HEADING};
use crate::settings::Settings;

/// Check agent versions
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  tapedeck config check agents/support.yaml\n  tapedeck config check agents/support.yaml --json | jq .fingerprint"
)]
pub struct Args {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate an agent version; print its effective config (every default filled in) and
    /// its fingerprint
    #[command(
        after_help = "Warnings (a tool allowed but not defined, a model with no price) go to stderr; errors name file:line:column.\n\nExamples:\n  tapedeck config check agents/support.yaml\n  tapedeck config check agents/support.yaml --json"
    )]
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The agent version (YAML or JSON)
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print the effective config as JSON (with the fingerprint and warnings)
    #[arg(long)]
    json: bool,
}

/// `config check --json`'s content.
#[derive(Serialize)]
struct JsonCheck<'a> {
    fingerprint: &'a str,
    warnings: &'a [String],
    /// The effective config, every default filled in.
    config: &'a AgentConfig,
}

/// Runs `tapedeck config`.
pub fn run(_settings: &Settings, args: Args) -> anyhow::Result<Exit> {
    let ConfigCommand::Check(args) = args.command;
    let config = LoadedConfig::load(&args.file)?;
    // What `run` would read besides the version itself.
    config.approvals()?;
    let fingerprint = config.fingerprint();
    if args.json {
        json_output::CONFIG.print(&JsonCheck {
            fingerprint: &fingerprint,
            warnings: &config.warnings,
            config: &config.config,
        })?;
        return Ok(Exit::Ok);
    }
    for warning in &config.warnings {
        render::warning(&format!("{}: {warning}", args.file.display()));
    }
    let h = HEADING;
    let dim = DIM;
    anstream::println!("{dim}# effective config of {}{dim:#}", args.file.display());
    anstream::print!("{}", yaml_serde::to_string(&config.config)?);
    anstream::println!("{dim}#{dim:#} {h}fingerprint{h:#} {fingerprint}");
    if config.config.model.is_none() {
        anstream::println!("{dim}# no model: valid to check, but `tapedeck run` needs one{dim:#}");
    }
    Ok(Exit::Ok)
}
