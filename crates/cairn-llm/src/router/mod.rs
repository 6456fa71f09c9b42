//! The hybrid router: several providers side by side, and each model call
//! sent to one by policy. Residency comes first — a call carrying content
//! of a class a provider may not receive never reaches it: it goes to a
//! provider allowed for it, or (as the policy says) leaves with that
//! content redacted and the placeholders restored in the answer, or is
//! refused. Then preference order, with fallback to the next allowed
//! provider when one fails. Every decision rides on the response, so the
//! runtime journals it.

pub mod budget;
pub mod classify;
mod config;
pub mod detect;
pub mod redact;
pub mod scan;
pub mod stats;
mod summarise;

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::{
    ContentBlock, DataClass, ModelRequest, ModelResponse, RouteDecision, StreamEvent,
};

use classify::{Classifier, Complexity};
use config::Routed;
pub use config::{
    Pattern, PolicyError, ProviderEntry, RestrictedPolicy, RouterConfig, Rule, WireFormat,
};
use detect::Detectors;
use redact::{Redactions, StreamRestorer};
use scan::{Analysis, Sources};

use crate::pricing::PriceTable;
use crate::{EventSink, LlmError, Provider};

/// Routes each call to one of several providers.
pub struct Router {
    providers: Vec<Routed>,
    policy: RestrictedPolicy,
    detectors: Detectors,
    sources: Sources,
    prices: PriceTable,
    rules: Vec<Rule>,
    classifier: Option<Routing>,
    budgets: std::collections::BTreeMap<String, budget::Budget>,
    user_budgets: std::collections::BTreeMap<String, budget::Budget>,
    spend: Option<std::sync::Arc<dyn budget::Spend>>,
    stats: stats::RouteStats,
    summariser: summarise::Summariser,
    /// Who writes summaries (an index into `providers`), under `summarise`.
    summarise_with: Option<usize>,
}

/// The classifier and where its labels send calls.
struct Routing {
    classifier: Classifier,
    simple: String,
    complex: String,
}

/// Which provider a call prefers, before residency, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Preference {
    /// The provider to try first (`None`: the configured order).
    pub provider: Option<String>,
    /// Why.
    pub why: String,
}

/// How a provider would get a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// As it is: it may receive every class present.
    AsIs,
    /// With content above its classes redacted.
    Redacted,
    /// Not at all: it may not receive what the call carries.
    NotAllowed,
}

/// What the router would do with a call, and why (`cairn route explain`).
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The classes found and what raised them.
    pub analysis: Analysis,
    /// Which provider the rules or the classifier prefer, and why.
    pub preference: Preference,
    /// Each provider in the order tried, with its verdict.
    pub providers: Vec<(String, String, Verdict)>,
}

impl Router {
    /// Builds the router from `[providers.*]` and `[router]`; `env` reads
    /// the key variables.
    pub fn new(
        entries: &std::collections::BTreeMap<String, ProviderEntry>,
        cfg: &RouterConfig,
        prices: PriceTable,
        timeout: Duration,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Router, LlmError> {
        let order: Vec<String> = if cfg.order.is_empty() {
            entries.keys().cloned().collect()
        } else {
            cfg.order.clone()
        };
        let mut providers = Vec::new();
        for name in &order {
            let entry = entries.get(name).ok_or_else(|| {
                LlmError::Residency(format!(
                    "[router] order names {name:?}, which is not a [providers.*] entry"
                ))
            })?;
            providers.push(config::build(name, entry, timeout, env)?);
        }
        let reads = |r: &Routed| r.allowed.contains(&DataClass::Restricted);
        let summarise_with = match cfg.summarise_with.as_str() {
            "" => providers.iter().position(reads),
            name => providers.iter().position(|r| r.name == name && reads(r)),
        }
        .filter(|_| cfg.restricted == RestrictedPolicy::Summarise);
        let patterns: Vec<(String, String)> = cfg
            .patterns
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        let detectors = Detectors::new(&cfg.detectors, &patterns)
            .map_err(|e| LlmError::Residency(format!("[router] {e}")))?;
        Ok(Router {
            providers,
            policy: cfg.restricted,
            detectors,
            sources: Sources {
                tools: cfg.tools.clone(),
                agents: cfg.agents.clone(),
            },
            prices,
            rules: cfg.rules.clone(),
            classifier: None,
            budgets: cfg.budgets.clone(),
            user_budgets: cfg.user_budgets.clone(),
            spend: None,
            stats: stats::RouteStats::default(),
            summariser: summarise::Summariser::default(),
            summarise_with,
        })
    }

    /// Where the budgets read what agents spent.
    pub fn with_spend(mut self, spend: std::sync::Arc<dyn budget::Spend>) -> Router {
        self.spend = Some(spend);
        self
    }

    /// A budget the call's agent or person has spent today; a stop wins
    /// over a downgrade.
    async fn exceeded(&self, hints: &cairn_core::RouteHints) -> Option<budget::Exceeded> {
        let agent = budget::Payer::Agent(&hints.agent);
        let mut over = self.over(agent, &self.budgets, &hints.agent).await;
        if let Some(user) = &hints.user {
            let by_user = self
                .over(budget::Payer::User(user), &self.user_budgets, user)
                .await;
            let stops = |o: &Option<budget::Exceeded>| {
                o.as_ref()
                    .is_some_and(|e| e.budget.over == budget::OverBudget::Stop)
            };
            if over.is_none() || (stops(&by_user) && !stops(&over)) {
                over = by_user.or(over);
            }
        }
        over
    }

    async fn over(
        &self,
        payer: budget::Payer<'_>,
        table: &std::collections::BTreeMap<String, budget::Budget>,
        name: &str,
    ) -> Option<budget::Exceeded> {
        let b = table.get(name).or_else(|| table.get("*"))?;
        let spend = self.spend.as_ref()?;
        let since = budget::day_start(cairn_core::now_ms());
        match spend.spent_since(payer, since).await {
            Ok(spent) if spent >= b.daily_usd => {
                Some(budget::Exceeded::new(payer, b.clone(), spent))
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(?payer, error = %e, "could not read today's spend; the budget is not applied to this call");
                None
            }
        }
    }

    /// Adds the complexity classifier: simple work to `simple`, the rest to
    /// `complex` (either may be empty: the configured order).
    pub fn with_classifier(
        mut self,
        classifier: Classifier,
        simple: &str,
        complex: &str,
    ) -> Router {
        self.classifier = Some(Routing {
            classifier,
            simple: simple.to_string(),
            complex: complex.to_string(),
        });
        self
    }

    /// The provider the rules, else the classifier, prefer for `req`.
    pub async fn prefer(&self, req: &ModelRequest) -> Preference {
        let tokens = approx_tokens(req);
        let chain = req.messages.last().is_some_and(|m| {
            m.content
                .iter()
                .any(|b| matches!(b, ContentBlock::ToolResult { .. }))
        });
        for (i, r) in self.rules.iter().enumerate() {
            let agent = r.agent.is_empty() || r.agent == req.hints.agent;
            let tool = r.tool_chain.is_none_or(|t| t == chain);
            if agent && tool && tokens >= r.min_tokens {
                return Preference {
                    provider: Some(r.provider.clone()),
                    why: format!("rule {}", i + 1),
                };
            }
        }
        let Some(routing) = &self.classifier else {
            return Preference {
                provider: None,
                why: "preference order".into(),
            };
        };
        let text = last_user_text(req);
        match routing.classifier.classify(&text).await {
            Ok(v) => {
                let (target, word) = match v.label {
                    Complexity::Simple => (&routing.simple, "simple"),
                    Complexity::Complex => (&routing.complex, "complex"),
                };
                Preference {
                    provider: Some(target.clone()).filter(|t| !t.is_empty()),
                    why: format!(
                        "classified {word} ({:.0}% of neighbours)",
                        v.confidence * 100.0
                    ),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the complexity classifier failed; using the preference order");
                Preference {
                    provider: None,
                    why: format!("classifier failed ({e}); preference order"),
                }
            }
        }
    }

    /// Providers in the order a call tries them: one the request's model
    /// names (`local/llama3`) first, then the preferred one, then the
    /// configured order.
    fn order<'a>(
        &'a self,
        req: &ModelRequest,
        preferred: Option<&str>,
    ) -> Vec<(&'a Routed, String)> {
        let pinned = req
            .model
            .split_once('/')
            .and_then(|(p, m)| self.providers.iter().find(|r| r.name == p).map(|r| (r, m)));
        let mut out: Vec<(&Routed, String)> = Vec::new();
        if let Some((r, m)) = pinned {
            out.push((r, m.to_string()));
        }
        let preferred = preferred.and_then(|p| self.providers.iter().find(|r| r.name == p));
        for r in preferred.into_iter().chain(&self.providers) {
            if !out.iter().any(|(o, _)| o.name == r.name) {
                out.push((r, r.model.clone()));
            }
        }
        out
    }

    fn verdict(&self, r: &Routed, classes: &BTreeSet<DataClass>) -> Verdict {
        if classes.is_subset(&r.allowed) {
            Verdict::AsIs
        } else if self.policy.alters() && r.allowed.contains(&DataClass::Public) {
            Verdict::Redacted
        } else {
            Verdict::NotAllowed
        }
    }

    /// What would happen to `req`, without calling any model.
    pub async fn explain(&self, req: &ModelRequest) -> Explanation {
        let analysis = scan::analyse(req, &self.detectors, &self.sources);
        let preference = self.prefer(req).await;
        let providers = self
            .order(req, preference.provider.as_deref())
            .into_iter()
            .map(|(r, model)| {
                let mut v = self.verdict(r, &analysis.classes);
                if v == Verdict::Redacted
                    && scan::redact_for(
                        req,
                        &r.allowed,
                        &self.detectors,
                        &self.sources,
                        &Default::default(),
                    )
                    .is_none()
                {
                    v = Verdict::NotAllowed;
                }
                (r.name.clone(), model, v)
            })
            .collect();
        Explanation {
            analysis,
            preference,
            providers,
        }
    }

    fn refusal(&self, a: &Analysis) -> LlmError {
        LlmError::Residency(format!(
            "this call carries {} data ({}) and no configured provider may receive it: add \"{}\" to the data of a provider that may (a local model), or set [router] restricted = \"redact\"",
            a.class().as_str(),
            a.labels.join(", "),
            a.class().as_str(),
        ))
    }
}

/// One attempt's request and how to undo its redactions.
struct Attempt {
    request: ModelRequest,
    redactions: Redactions,
    withheld: usize,
    summarised: usize,
    /// What writing its summaries cost (dollars).
    summary_cost: f64,
    /// Who wrote them.
    summarised_by: Option<String>,
}

impl Router {
    /// The request `r` may get, if any: as it is, or altered as the
    /// policy says (summaries written first, where it says so).
    async fn attempt(&self, r: &Routed, req: &ModelRequest, a: &Analysis) -> Option<Attempt> {
        match self.verdict(r, &a.classes) {
            Verdict::NotAllowed => None,
            Verdict::AsIs => Some(Attempt {
                request: req.clone(),
                redactions: Redactions::default(),
                withheld: 0,
                summarised: 0,
                summary_cost: 0.0,
                summarised_by: None,
            }),
            // Nothing may go: no summary is worth writing.
            Verdict::Redacted if !scan::agent_allowed(req, &r.allowed, &self.sources) => None,
            Verdict::Redacted => {
                let writer = self
                    .summarise_with
                    .and_then(|i| self.providers.get(i))
                    .filter(|w| w.name != r.name);
                let mut summaries = summarise::Summaries::default();
                if let Some(w) = writer {
                    let above = scan::sourced_above(req, &r.allowed, &self.sources);
                    if !above.is_empty() {
                        let task = last_user_text(req);
                        let cost = |p: &Routed, resp: &ModelResponse| self.cost(p, resp);
                        summaries = self.summariser.summarise(w, &above, &task, &cost).await;
                    }
                }
                let x = scan::redact_for(
                    req,
                    &r.allowed,
                    &self.detectors,
                    &self.sources,
                    &summaries.by_call,
                )?;
                Some(Attempt {
                    request: x.request,
                    redactions: x.redactions,
                    withheld: x.withheld,
                    summarised: x.summarised,
                    summary_cost: summaries.cost_usd,
                    summarised_by: writer.filter(|_| x.summarised > 0).map(|w| w.name.clone()),
                })
            }
        }
    }

    /// What `resp` cost at `r`'s prices.
    fn cost(&self, r: &Routed, resp: &ModelResponse) -> f64 {
        match r.price {
            Some(p) => {
                (resp.usage.input_tokens as f64 * p.input
                    + resp.usage.output_tokens as f64 * p.output)
                    / 1e6
            }
            None => self.prices.cost(&resp.model, resp.usage),
        }
    }
}

#[async_trait]
impl Provider for Router {
    fn name(&self) -> &str {
        "router"
    }

    fn default_model(&self) -> &str {
        // Each provider uses its own unless a call names one.
        "auto"
    }

    fn metrics(&self) -> String {
        self.stats.prometheus()
    }

    async fn complete(
        &self,
        req: &ModelRequest,
        on_event: EventSink<'_>,
    ) -> Result<ModelResponse, LlmError> {
        let analysis = scan::analyse(req, &self.detectors, &self.sources);
        let mut preference = self.prefer(req).await;
        let mut only = None;
        if let Some(over) = self.exceeded(&req.hints).await {
            let message = over.message();
            if over.budget.over == budget::OverBudget::Stop {
                self.stats.refused("budget");
                return Err(LlmError::Budget(message));
            }
            preference = Preference {
                provider: Some(over.budget.downgrade_to.clone()),
                why: message,
            };
            only = Some(over.budget.downgrade_to);
        }
        let mut tried: Vec<String> = Vec::new();
        let mut last_error = None;
        for (r, model) in self.order(req, preference.provider.as_deref()) {
            // Past its budget, an agent's calls go nowhere dearer.
            if only.as_ref().is_some_and(|o| *o != r.name) {
                continue;
            }
            let Some(mut attempt) = self.attempt(r, req, &analysis).await else {
                continue;
            };
            attempt.request.model = model.clone();
            match call(r, &attempt.request, &attempt.redactions, on_event).await {
                Ok(mut resp) => {
                    restore(&mut resp, &attempt.redactions);
                    let cost_usd = self.cost(r, &resp) + attempt.summary_cost;
                    let reason = format!(
                        "{}; {}",
                        preference.why,
                        reason_for(&analysis, &tried, &attempt)
                    );
                    resp.route = Some(Box::new(RouteDecision {
                        provider: r.name.clone(),
                        model: resp.model.clone(),
                        reason,
                        class: analysis.class(),
                        labels: analysis.labels.clone(),
                        redactions: attempt.redactions.len(),
                        withheld: attempt.withheld,
                        summarised: attempt.summarised,
                        fell_back_from: tried,
                        cost_usd,
                    }));
                    if let Some(d) = &resp.route {
                        self.stats.answered(d);
                    }
                    return Ok(resp);
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(provider = %r.name, error = %e, "provider failed; trying the next one this call's data may go to");
                    tried.push(format!("{}: {e}", r.name));
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        match last_error {
            // Every allowed provider failed transiently: the caller's retry
            // and cooldown logic takes over, with the last one's error.
            Some(e) => Err(e),
            None => {
                self.stats.refused("residency");
                Err(self.refusal(&analysis))
            }
        }
    }
}

fn reason_for(a: &Analysis, tried: &[String], at: &Attempt) -> String {
    let mut why = if a.class() == DataClass::Public {
        "public data".to_string()
    } else if at.redactions.is_empty() && at.withheld == 0 && at.summarised == 0 {
        format!("allowed {} data", a.class().as_str())
    } else {
        format!(
            "{} data redacted ({} values, {} results withheld)",
            a.class().as_str(),
            at.redactions.len(),
            at.withheld
        )
    };
    if let Some(by) = &at.summarised_by {
        why.push_str(&format!("; {} results summarised by {by}", at.summarised));
    }
    if !tried.is_empty() {
        why.push_str(&format!("; fell back after {} failed", tried.len()));
    }
    why
}

/// The conversation's size in tokens, roughly (4 bytes each).
fn approx_tokens(req: &ModelRequest) -> u64 {
    let mut bytes = req.system.len();
    for b in req.messages.iter().flat_map(|m| &m.content) {
        bytes += match b {
            ContentBlock::Text { text } => text.len(),
            ContentBlock::ToolUse { input, .. } => input.to_string().len(),
            ContentBlock::ToolResult { content, .. } => content.len(),
        };
    }
    (bytes / 4) as u64
}

/// The latest text a person wrote in the conversation.
fn last_user_text(req: &ModelRequest) -> String {
    req.messages
        .iter()
        .rev()
        .filter(|m| m.role == cairn_core::Role::User)
        .flat_map(|m| m.content.iter().rev())
        .find_map(|b| match b {
            ContentBlock::Text { text } if !text.trim().is_empty() => Some(text.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Calls `r`, restoring placeholders in what streams out.
async fn call(
    r: &Routed,
    request: &ModelRequest,
    red: &Redactions,
    on_event: EventSink<'_>,
) -> Result<ModelResponse, LlmError> {
    if red.is_empty() {
        return r.provider.complete(request, on_event).await;
    }
    let restorer = std::sync::Mutex::new(StreamRestorer::default());
    let sink = |e: StreamEvent| match e {
        StreamEvent::TextDelta { text } => {
            let shown = restorer
                .lock()
                .map(|mut s| s.push(red, &text))
                .unwrap_or(text);
            if !shown.is_empty() {
                on_event(StreamEvent::TextDelta { text: shown });
            }
        }
        other => on_event(other),
    };
    let out = r.provider.complete(request, &sink).await;
    let rest = restorer
        .lock()
        .map(|mut s| s.finish(red))
        .unwrap_or_default();
    if !rest.is_empty() {
        on_event(StreamEvent::TextDelta { text: rest });
    }
    out
}

/// The answer with placeholders put back, in its text and tool arguments.
fn restore(resp: &mut ModelResponse, red: &Redactions) {
    if red.is_empty() {
        return;
    }
    for block in &mut resp.content {
        match block {
            ContentBlock::Text { text } => *text = red.restore(text),
            ContentBlock::ToolUse { input, .. } => *input = red.restore_json(input),
            ContentBlock::ToolResult { content, .. } => *content = red.restore(content),
        }
    }
}
