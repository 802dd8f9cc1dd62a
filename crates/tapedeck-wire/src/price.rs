//! A model's price and the cost of a call: the agent's `pricing` and the proxy's `--pricing`
//! file use the same [`Price`].

use serde::{Deserialize, Serialize};
use tapedeck_trace::Usage;

/// One model's prices, in US dollars per million tokens (`{input_per_mtok, output_per_mtok}`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// US dollars per million input (prompt) tokens.
    pub input_per_mtok: f64,
    /// US dollars per million output (completion) tokens.
    pub output_per_mtok: f64,
}

impl Price {
    /// The cost of one call, in US dollars.
    pub fn cost(&self, usage: Usage) -> f64 {
        (usage.input_tokens as f64 * self.input_per_mtok
            + usage.output_tokens as f64 * self.output_per_mtok)
            / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_per_million_tokens() {
        let price = Price {
            input_per_mtok: 2.0,
            output_per_mtok: 8.0,
        };
        let usage = Usage {
            input_tokens: 1_000,
            output_tokens: 500,
        };
        assert!((price.cost(usage) - 0.006).abs() < 1e-12);
    }
}
