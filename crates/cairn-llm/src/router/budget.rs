//! Daily spend limits per agent: past its budget an agent's calls go to a
//! cheaper provider (`downgrade`) or are refused (`stop`), with what was
//! spent and when it resets.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What happens once an agent has spent its day's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverBudget {
    /// Its calls go to `downgrade_to` only.
    #[default]
    Downgrade,
    /// Its calls are refused until the next day (UTC).
    Stop,
}

/// `[router.budgets.<agent>]`; `"*"` covers agents without their own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    /// Dollars the agent's runs may cost per day (UTC).
    pub daily_usd: f64,
    /// What happens past it.
    pub over: OverBudget,
    /// With `downgrade`: the provider its calls go to instead.
    pub downgrade_to: String,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            daily_usd: 1.0,
            over: OverBudget::Downgrade,
            downgrade_to: String::new(),
        }
    }
}

/// What an agent has spent, from the store.
#[async_trait]
pub trait Spend: Send + Sync {
    /// Dollars `agent`'s runs cost since `since` (ms since the epoch).
    async fn spent_since(&self, agent: &str, since: i64) -> Result<f64, String>;
}

/// Midnight UTC before `now` (ms).
pub fn day_start(now: i64) -> i64 {
    now - now.rem_euclid(86_400_000)
}

/// An agent past its budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Exceeded {
    /// The budget.
    pub budget: Budget,
    /// Spent today.
    pub spent: f64,
}

impl Exceeded {
    /// What the person is told.
    pub fn message(&self, agent: &str) -> String {
        format!(
            "agent {agent:?} has spent ${:.4} today of its ${:.2} daily budget ([router.budgets]); {}",
            self.spent,
            self.budget.daily_usd,
            match self.budget.over {
                OverBudget::Stop => "its calls are refused until midnight UTC".to_string(),
                OverBudget::Downgrade => format!(
                    "its calls go to {} until midnight UTC",
                    self.budget.downgrade_to
                ),
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_start_at_midnight_utc() {
        // 2026-12-02T15:30:00Z
        let now = 1_796_225_400_000;
        assert_eq!(day_start(now), 1_796_169_600_000);
        assert_eq!(day_start(day_start(now)), day_start(now));
    }
}
