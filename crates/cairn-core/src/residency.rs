//! Data residency: how sensitive content is, and what the router decided
//! for each model call (journaled with the response, shown in `cairn runs
//! show` and the API).

use serde::{Deserialize, Serialize};

/// How sensitive a piece of content is. Each provider is allowed some
/// classes; content of any other class never reaches it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DataClass {
    /// Anyone may see it.
    #[default]
    Public,
    /// Inside the organisation.
    Internal,
    /// May not leave the premises (personal data, secrets, declared sources).
    Restricted,
}

impl DataClass {
    /// As written in config and journals.
    pub fn as_str(self) -> &'static str {
        match self {
            DataClass::Public => "public",
            DataClass::Internal => "internal",
            DataClass::Restricted => "restricted",
        }
    }
}

/// Hints from the run for routing one model call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteHints {
    /// The agent making the call.
    pub agent: String,
    /// The class of everything the agent handles, as declared for it.
    pub class: DataClass,
    /// The person the run works for (`None`: the local owner).
    #[serde(default)]
    pub user: Option<String>,
}

/// What the router decided for one model call.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteDecision {
    /// The provider that answered, as configured (`local`, `claude`).
    pub provider: String,
    /// The model it ran.
    pub model: String,
    /// Why this provider.
    pub reason: String,
    /// The most sensitive class in the request.
    pub class: DataClass,
    /// What raised it: detectors (`email`, `card`) and sources
    /// (`agent:hr`, `tool:crm_lookup`), each once.
    pub labels: Vec<String>,
    /// Spans replaced by placeholders before sending (restored in the answer).
    pub redactions: usize,
    /// Content blocks withheld whole (a restricted source cannot be redacted
    /// span by span).
    pub withheld: usize,
    /// Restricted tool results sent as a summary a model allowed to read
    /// them wrote (`[router] restricted = "summarise"`).
    #[serde(default)]
    pub summarised: usize,
    /// Providers tried first and why they did not answer.
    pub fell_back_from: Vec<String>,
    /// What the call cost at that provider's prices (dollars).
    pub cost_usd: f64,
}
