//! Prices per million tokens (US dollars), matched by the longest model-name
//! prefix. Unknown models (local ones, new ones) cost 0 and say so; the
//! config's `[pricing]` table adds or overrides entries.

use std::collections::BTreeMap;

/// Input and output price per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Price {
    /// Dollars per million input tokens.
    pub input: f64,
    /// Dollars per million output tokens.
    pub output: f64,
}

/// List prices as published by the providers (November 2026).
const BUILTIN: &[(&str, f64, f64)] = &[
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-3-7-sonnet", 3.0, 15.0),
    ("claude-3-5-sonnet", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("claude-3-5-haiku", 0.8, 4.0),
    ("claude-3-haiku", 0.25, 1.25),
    ("gpt-5-nano", 0.05, 0.4),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5", 1.25, 10.0),
    ("gpt-4.1-nano", 0.1, 0.4),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4o-mini", 0.15, 0.6),
    ("gpt-4o", 2.5, 10.0),
    ("o4-mini", 1.1, 4.4),
    ("o3-mini", 1.1, 4.4),
    ("o3", 2.0, 8.0),
];

/// The pricing table in force.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    overrides: BTreeMap<String, Price>,
}

impl PriceTable {
    /// Built-in prices plus `overrides` (which win).
    pub fn new(overrides: BTreeMap<String, Price>) -> Self {
        PriceTable { overrides }
    }

    /// Price of `model`, if known.
    pub fn price(&self, model: &str) -> Option<Price> {
        let from_overrides = self
            .overrides
            .iter()
            .filter(|(prefix, _)| model.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(p, price)| (p.len(), *price));
        let builtin = BUILTIN
            .iter()
            .filter(|(prefix, _, _)| model.starts_with(prefix))
            .max_by_key(|(prefix, _, _)| prefix.len())
            .map(|(p, i, o)| {
                (
                    p.len(),
                    Price {
                        input: *i,
                        output: *o,
                    },
                )
            });
        match (from_overrides, builtin) {
            (Some((a, pa)), Some((b, _))) if a >= b => Some(pa),
            (Some(_), Some((_, pb))) => Some(pb),
            (Some((_, p)), None) | (None, Some((_, p))) => Some(p),
            (None, None) => None,
        }
    }

    /// Cost of a call in dollars (0 when the model is unknown).
    pub fn cost(&self, model: &str, usage: cairn_core::Usage) -> f64 {
        self.price(model).map_or(0.0, |p| {
            (usage.input_tokens as f64 * p.input + usage.output_tokens as f64 * p.output) / 1e6
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let t = PriceTable::default();
        assert_eq!(t.price("gpt-4o-mini-2024-07-18").unwrap().input, 0.15);
        assert_eq!(t.price("gpt-4o-2024-08-06").unwrap().input, 2.5);
        assert_eq!(t.price("claude-sonnet-4-5-20250929").unwrap().output, 15.0);
        assert!(t.price("llama3.2").is_none());
        let usage = cairn_core::Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
        };
        assert!((t.cost("claude-sonnet-4-5", usage) - 4.5).abs() < 1e-9);
    }

    #[test]
    fn overrides_add_models() {
        let mut o = BTreeMap::new();
        o.insert(
            "llama".to_string(),
            Price {
                input: 0.01,
                output: 0.02,
            },
        );
        let t = PriceTable::new(o);
        assert_eq!(t.price("llama3.2").unwrap().output, 0.02);
    }
}
