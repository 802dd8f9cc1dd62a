//! What a recording proxy is set up with: the upstreams it forwards to ([`Upstreams`]) and the
//! prices it costs calls with ([`Pricing`]).

use super::*;

/// Where a recording proxy forwards to.
#[derive(Clone, Debug)]
pub struct Upstreams {
    /// The OpenAI base URL, `/v1` included.
    pub openai: String,
    /// The Anthropic base URL, without `/v1`.
    pub anthropic: String,
}

impl Upstreams {
    /// The upstreams a client would use on its own: its `OPENAI_BASE_URL` /
    /// `ANTHROPIC_BASE_URL` if set, else the public APIs.
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Self {
            openai: var("OPENAI_BASE_URL", OPENAI_DEFAULT),
            anthropic: var("ANTHROPIC_BASE_URL", ANTHROPIC_DEFAULT),
        }
    }

    /// The upstreams given (a command's `--upstream-openai` / `--upstream-anthropic`), each
    /// else [`Upstreams::from_env`]'s.
    pub fn given_or_env(openai: Option<&str>, anthropic: Option<&str>) -> Self {
        let defaults = Self::from_env();
        Self {
            openai: openai.map_or(defaults.openai, str::to_owned),
            anthropic: anthropic.map_or(defaults.anthropic, str::to_owned),
        }
    }
}

pub use tapedeck_wire::Price;

/// Prices by model name (`--pricing FILE`, YAML `{model: {input_per_mtok, output_per_mtok}}`).
#[derive(Clone, Debug, Default)]
pub struct Pricing(BTreeMap<String, Price>);

impl Pricing {
    /// Reads a pricing file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the pricing file `{}`: {e}", path.display()))?;
        yaml_serde::from_str(&text)
            .map(Self)
            .map_err(|e| format!("the pricing file `{}` is invalid: {e}", path.display()))
    }

    /// The cost of a call, if the model has a price (unknown stays unknown).
    pub fn cost(&self, models: &[&str], usage: Option<Usage>) -> Option<f64> {
        let usage = usage?;
        let price = models.iter().find_map(|m| self.0.get(*m))?;
        Some(price.cost(usage))
    }
}
