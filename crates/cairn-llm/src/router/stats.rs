//! Counters of the router's decisions since the process started, rendered
//! in the Prometheus text format for `GET /metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use cairn_core::RouteDecision;

#[derive(Default, Clone, Copy)]
struct Counts {
    calls: u64,
    redactions: u64,
    withheld: u64,
    summarised: u64,
    fallbacks: u64,
    cost_usd: f64,
}

/// A counter series: name, help, and its value in a route's counts.
type Series = (&'static str, &'static str, fn(&Counts) -> f64);

/// What the router decided, counted.
#[derive(Default)]
pub struct RouteStats {
    by_route: Mutex<BTreeMap<(String, &'static str), Counts>>,
    refused: Mutex<BTreeMap<&'static str, u64>>,
}

impl RouteStats {
    /// A call answered as `d` says.
    pub fn answered(&self, d: &RouteDecision) {
        if let Ok(mut m) = self.by_route.lock() {
            let c = m.entry((d.provider.clone(), d.class.as_str())).or_default();
            c.calls += 1;
            c.redactions += d.redactions as u64;
            c.withheld += d.withheld as u64;
            c.summarised += d.summarised as u64;
            c.fallbacks += u64::from(!d.fell_back_from.is_empty());
            c.cost_usd += d.cost_usd;
        }
    }

    /// A call refused (`residency` or `budget`).
    pub fn refused(&self, why: &'static str) {
        if let Ok(mut m) = self.refused.lock() {
            *m.entry(why).or_default() += 1;
        }
    }

    /// The counters as Prometheus text.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let routes = self.by_route.lock().map(|m| m.clone()).unwrap_or_default();
        let series: [Series; 6] = [
            (
                "cairn_model_calls_total",
                "Model calls answered, by provider and data class.",
                |c| c.calls as f64,
            ),
            (
                "cairn_model_redactions_total",
                "Values replaced by placeholders before a call left.",
                |c| c.redactions as f64,
            ),
            (
                "cairn_model_withheld_total",
                "Tool results withheld whole from a provider.",
                |c| c.withheld as f64,
            ),
            (
                "cairn_model_summarised_total",
                "Tool results sent as a summary a model allowed to read them wrote.",
                |c| c.summarised as f64,
            ),
            (
                "cairn_model_fallbacks_total",
                "Calls answered after a preferred provider failed.",
                |c| c.fallbacks as f64,
            ),
            (
                "cairn_model_cost_usd_total",
                "Dollars spent, at each provider's price.",
                |c| c.cost_usd,
            ),
        ];
        for (name, help, value) in series {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for ((provider, class), c) in &routes {
                out.push_str(&format!(
                    "{name}{{provider=\"{}\",class=\"{class}\"}} {}\n",
                    escape(provider),
                    value(c)
                ));
            }
        }
        let refused = self.refused.lock().map(|m| m.clone()).unwrap_or_default();
        out.push_str(
            "# HELP cairn_model_refusals_total Calls refused, by reason.\n# TYPE cairn_model_refusals_total counter\n",
        );
        for why in ["residency", "budget"] {
            let n = refused.get(why).copied().unwrap_or(0);
            out.push_str(&format!(
                "cairn_model_refusals_total{{reason=\"{why}\"}} {n}\n"
            ));
        }
        out
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
