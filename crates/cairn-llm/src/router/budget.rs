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

/// Whose spend a budget caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payer<'a> {
    /// An agent's runs.
    Agent(&'a str),
    /// The runs working for one person.
    User(&'a str),
}

impl Payer<'_> {
    fn describe(&self) -> String {
        match self {
            Payer::Agent(a) => format!("agent {a:?}"),
            Payer::User(u) => format!("{u:?}"),
        }
    }

    fn table(&self) -> &'static str {
        match self {
            Payer::Agent(_) => "[router.budgets]",
            Payer::User(_) => "[router.user_budgets]",
        }
    }
}

/// Today's spend could not be read (the store failed); the cause kept.
#[derive(Debug, thiserror::Error)]
#[error("today's spend is unknown: {0}")]
pub struct SpendUnknown(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// What agents and people have spent, from the store.
#[async_trait]
pub trait Spend: Send + Sync {
    /// Dollars `payer`'s runs cost since `since` (ms since the epoch).
    async fn spent_since(&self, payer: Payer<'_>, since: i64) -> Result<f64, SpendUnknown>;
}

/// Midnight UTC before `now` (ms).
pub fn day_start(now: i64) -> i64 {
    now - now.rem_euclid(86_400_000)
}

/// An agent or a person past a budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Exceeded {
    /// The budget.
    pub budget: Budget,
    /// Spent today.
    pub spent: f64,
    /// Who ("agent \"default\"", "\"telegram:42\"") and in which table.
    pub who: String,
    /// `[router.budgets]` or `[router.user_budgets]`.
    pub table: &'static str,
}

impl Exceeded {
    /// Past `budget` with `spent`, for `payer`.
    pub fn new(payer: Payer<'_>, budget: Budget, spent: f64) -> Exceeded {
        Exceeded {
            budget,
            spent,
            who: payer.describe(),
            table: payer.table(),
        }
    }

    /// What the person is told.
    pub fn message(&self) -> String {
        format!(
            "{} has spent ${:.4} today of the ${:.2} daily budget ({}); {}",
            self.who,
            self.spent,
            self.budget.daily_usd,
            self.table,
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
