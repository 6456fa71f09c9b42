//! `cairn-bench router`: the hybrid router's own costs and what it saves.
//!
//! - decision latency: classes, rules and order for a typical call (a
//!   system prompt and a ten-message conversation, ~4 KB), p50/p99, without
//!   and with the complexity classifier (all-MiniLM-L6-v2 in process);
//! - detector throughput: MB/s of mixed text scanned by every built-in
//!   detector;
//! - cost saved on the shipped labelled prompt set: each prompt classified
//!   by the others (leave-one-out); simple ones to the local model (free),
//!   the rest to the cloud model at its list price, against all-cloud;
//! - the peer, in the same run: LiteLLM's complexity router (its rule-based
//!   `heuristic` and its trained `heuristic_v2` classifiers) on the same
//!   prompts, with its latency, agreement and what it would save.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cairn_core::{DataClass, Message, ModelRequest, RouteHints};
use cairn_llm::Router;
use cairn_llm::pricing::PriceTable;
use cairn_llm::router::classify::{
    Classifier, ClassifyError, Complexity, TextEmbedder, read_examples,
};
use cairn_llm::router::detect::Detectors;
use cairn_llm::router::{ProviderEntry, RouterConfig, WireFormat};
use cairn_memory::{Embedder, LocalEmbedder};

/// The cloud model priced for the savings figure.
const CLOUD_MODEL: &str = "claude-sonnet-4-5";
/// Assumed answer lengths (tokens): a label or a line, or a plan.
const SIMPLE_OUT: f64 = 150.0;
const COMPLEX_OUT: f64 = 1_500.0;
/// System prompt and memory each call carries (tokens).
const SYSTEM_TOKENS: f64 = 500.0;

struct Local(Arc<dyn Embedder>);

#[async_trait::async_trait]
impl TextEmbedder for Local {
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ClassifyError> {
        self.0
            .embed(texts)
            .await
            .map_err(|e| ClassifyError::Embed(Box::new(e)))
    }
}

fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/cairn-llm/data/route_prompts.jsonl")
}

fn router() -> Result<Router> {
    let mut providers = BTreeMap::new();
    providers.insert(
        "local".to_string(),
        ProviderEntry {
            kind: WireFormat::Openai,
            base_url: "http://127.0.0.1:9/v1".into(),
            data: vec![
                DataClass::Public,
                DataClass::Internal,
                DataClass::Restricted,
            ],
            ..Default::default()
        },
    );
    providers.insert(
        "claude".to_string(),
        ProviderEntry {
            kind: WireFormat::Anthropic,
            base_url: "http://127.0.0.1:9".into(),
            ..Default::default()
        },
    );
    let cfg = RouterConfig {
        order: vec!["claude".into(), "local".into()],
        ..Default::default()
    };
    Ok(Router::new(
        &providers,
        &cfg,
        PriceTable::default(),
        Duration::from_secs(5),
        &|_| None,
    )?)
}

/// A typical call: a system prompt and a ten-message conversation.
fn typical() -> ModelRequest {
    let turn = "Could you look at the deployment notes from Tuesday and tell me whether the rollback \
                step mentions the database migration, and if so which version it pins? ";
    let messages = (0..10)
        .map(|i| {
            if i % 2 == 0 {
                Message::user_text(turn.repeat(2))
            } else {
                Message {
                    role: cairn_core::Role::Assistant,
                    content: vec![cairn_core::ContentBlock::Text {
                        text: turn.repeat(2),
                    }],
                }
            }
        })
        .collect();
    ModelRequest {
        model: String::new(),
        system: "You are a careful operations assistant. ".repeat(10),
        messages,
        tools: vec![],
        max_tokens: 1024,
        stream: false,
        hints: RouteHints {
            agent: "default".into(),
            ..Default::default()
        },
    }
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

async fn decision_latency(r: &Router, n: usize) -> (f64, f64) {
    let req = typical();
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let x = r.explain(&req).await;
        std::hint::black_box(&x);
        samples.push(t.elapsed());
    }
    percentiles(samples)
}

/// Decisions for calls whose user message was never classified before:
/// the typical call with each shipped prompt as its last message. With
/// `recall`, the message is embedded first, as memory recall does before a
/// turn's first model call (not timed: it is memory's work).
async fn first_calls(
    r: &Router,
    examples: &[cairn_llm::router::classify::Example],
    recall: Option<&Arc<dyn Embedder>>,
) -> (f64, f64) {
    let mut samples = Vec::new();
    let round = if recall.is_some() {
        "recalled"
    } else {
        "fresh"
    };
    for (i, e) in examples.iter().enumerate() {
        let text = format!("{} ({round} case {i})", e.text);
        if let Some(m) = recall
            && let Err(e) = m.embed(std::slice::from_ref(&text)).await
        {
            eprintln!("embedding failed: {e}");
        }
        let mut req = typical();
        req.messages.push(Message::user_text(text));
        let t = Instant::now();
        std::hint::black_box(r.explain(&req).await);
        samples.push(t.elapsed());
    }
    percentiles(samples)
}

fn detector_throughput() -> Result<f64> {
    let d = Detectors::new(&[], &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let para = "Meeting notes: the rollout moved to 14 March; contact ops at ops-team@example.org or \
                +44 20 7946 0958. Invoice 2026-118 totals 1,240.50 EUR. Build 4.2.1 passed 312 tests. ";
    let text = para.repeat(10 * 1024 * 1024 / para.len());
    let t = Instant::now();
    let found = d.scan(&text).len();
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(found);
    Ok(text.len() as f64 / 1e6 / secs)
}

/// `cairn-bench router` (needs BENCH_MODEL_DIR: all-MiniLM-L6-v2).
pub async fn run(model_dir: Option<PathBuf>) -> Result<()> {
    println!("router (decisions without calling any model)");
    let plain = router()?;
    let (p50, p99) = decision_latency(&plain, 20_000).await;
    println!("  decision, no classifier: p50 {p50:.1} µs, p99 {p99:.1} µs   target p50 < 50 µs");
    println!(
        "  detectors: {:.0} MB/s of mixed text (all six built-ins)",
        detector_throughput()?
    );
    let Some(dir) = model_dir else {
        println!(
            "  classifier: not measured (set BENCH_MODEL_DIR to the all-MiniLM-L6-v2 directory; bench/run.sh does)"
        );
        return Ok(());
    };
    let examples = read_examples(&shipped())?;
    // The default: the model's first layer, its own cache.
    let (predicted, ours_p50) = cut_model(&dir, &examples, 1).await?;
    for layers in [2, 3] {
        cut_model(&dir, &examples, layers).await?;
    }
    whole_model(&dir, &examples).await?;
    let ours = savings(&examples, &predicted)?;
    litellm(&examples, &ours, ours_p50)
}

/// A router whose classifier runs on `model`, and how that classifier
/// judges the shipped set (leave-one-out).
struct Judged {
    with: Router,
    predicted: Vec<Complexity>,
    agreement: f64,
    local_share: f64,
}

async fn judged(
    model: &Arc<dyn Embedder>,
    examples: &[cairn_llm::router::classify::Example],
) -> Result<Judged> {
    let classifier = Classifier::new(Arc::new(Local(model.clone())), examples.to_vec(), 5)?;
    let predicted = classifier.leave_one_out().await?;
    let labels: Vec<Complexity> = examples.iter().map(|e| e.label).collect();
    let (agreement, local_share) = cairn_llm::router::classify::agreement(&labels, &predicted);
    Ok(Judged {
        with: router()?.with_classifier(classifier, "local", "claude"),
        predicted,
        agreement,
        local_share,
    })
}

/// `layers = 0`: the whole model, one cached embedder for memory and
/// router as `cairn serve` wires it, so a message recall embedded is not
/// embedded again.
async fn whole_model(
    dir: &std::path::Path,
    examples: &[cairn_llm::router::classify::Example],
) -> Result<()> {
    let model: Arc<dyn Embedder> = Arc::new(cairn_memory::CachedEmbedder::new(Arc::new(
        LocalEmbedder::load(dir).context("loading the embedding model")?,
    )));
    let Judged {
        with,
        agreement,
        local_share,
        ..
    } = judged(&model, examples).await?;
    let (fresh, fresh99) = first_calls(&with, examples, None).await;
    let (recalled, recalled99) = first_calls(&with, examples, Some(&model)).await;
    println!(
        "  classifier on the whole model (layers = 0, shared with memory): a first call p50 {:.2} ms (p99 {:.2}), \
         one whose message memory recall embedded p50 {:.1} µs (p99 {:.1}); {:.1}% agree, {:.1}% local",
        fresh / 1e3,
        fresh99 / 1e3,
        recalled,
        recalled99,
        agreement * 100.0,
        local_share * 100.0
    );
    Ok(())
}

/// The classifier on the model's first `layers` layers: its own vectors
/// (not shared with memory), so every first call embeds. Its predictions,
/// leave-one-out, and its decision p50s.
async fn cut_model(
    dir: &std::path::Path,
    examples: &[cairn_llm::router::classify::Example],
    layers: usize,
) -> Result<(Vec<Complexity>, Latency)> {
    let model: Arc<dyn Embedder> = Arc::new(cairn_memory::CachedEmbedder::new(Arc::new(
        LocalEmbedder::load(dir)
            .context("loading the embedding model")?
            .with_layers(layers),
    )));
    let Judged {
        with,
        predicted,
        agreement,
        local_share,
    } = judged(&model, examples).await?;
    decision_latency(&with, 20).await; // loads the model
    let (p50, p99) = first_calls(&with, examples, None).await;
    let mut p50s = Latency {
        first_us: p50,
        later_us: 0.0,
    };
    let default = if layers == 1 { " (the default)" } else { "" };
    println!(
        "  classifier on the model's first {layers} layer(s){default}: a turn's first call p50 {:.2} ms, p99 {:.2} ms   target p50 < 5 ms; {:.1}% agree with the labels (leave-one-out), {:.1}% local",
        p50 / 1e3,
        p99 / 1e3,
        agreement * 100.0,
        local_share * 100.0
    );
    if layers == 1 {
        let (p50, p99) = decision_latency(&with, 300).await;
        p50s.later_us = p50;
        println!(
            "  classifier (the default), a later step of a turn (message seen): p50 {p50:.1} µs, p99 {p99:.1} µs   target p50 < 5 ms"
        );
    }
    Ok((predicted, p50s))
}

/// Decision p50s with the classifier, µs.
struct Latency {
    /// A turn's first call: its message embedded.
    first_us: f64,
    /// A later step of the turn: the message's class known.
    later_us: f64,
}

/// What a classifier's choices on the shipped set mean.
struct Outcome {
    agreement: f64,
    local_share: f64,
    /// Demanding prompts it sent to the local model.
    misrouted: usize,
    all_cloud: f64,
    hybrid: f64,
}

impl Outcome {
    fn saved(&self) -> f64 {
        (1.0 - self.hybrid / self.all_cloud) * 100.0
    }
}

fn outcome(
    examples: &[cairn_llm::router::classify::Example],
    predicted: &[Complexity],
) -> Result<Outcome> {
    let labels: Vec<Complexity> = examples.iter().map(|e| e.label).collect();
    let (agreement, local_share) = cairn_llm::router::classify::agreement(&labels, predicted);
    let prices = PriceTable::default();
    let price = prices
        .price(CLOUD_MODEL)
        .context("the cloud model's price")?;
    let (mut all_cloud, mut hybrid, mut misrouted) = (0.0, 0.0, 0);
    for (e, got) in examples.iter().zip(predicted) {
        let out = match e.label {
            Complexity::Simple => SIMPLE_OUT,
            Complexity::Complex => COMPLEX_OUT,
        };
        let input = SYSTEM_TOKENS + e.text.len() as f64 / 4.0;
        let cost = (input * price.input + out * price.output) / 1e6;
        all_cloud += cost;
        // Where the classifier sends it.
        if *got == Complexity::Complex {
            hybrid += cost;
        } else if e.label == Complexity::Complex {
            misrouted += 1;
        }
    }
    Ok(Outcome {
        agreement,
        local_share,
        misrouted,
        all_cloud,
        hybrid,
    })
}

fn savings(
    examples: &[cairn_llm::router::classify::Example],
    predicted: &[Complexity],
) -> Result<Outcome> {
    let o = outcome(examples, predicted)?;
    let price = PriceTable::default()
        .price(CLOUD_MODEL)
        .context("the cloud model's price")?;
    println!(
        "  shipped prompt set ({} prompts): {:.1}% agree with their labels (leave-one-out), {:.1}% sent local, {} demanding prompts sent local",
        examples.len(),
        o.agreement * 100.0,
        o.local_share * 100.0,
        o.misrouted
    );
    println!(
        "  cost, all cloud ({CLOUD_MODEL} at ${}/${} per Mtok in/out): ${:.4}; hybrid (local free): ${:.4}; saved {:.1}%",
        price.input,
        price.output,
        o.all_cloud,
        o.hybrid,
        o.saved()
    );
    println!(
        "  (assumed per call: {SYSTEM_TOKENS} system tokens + the prompt; answers of {SIMPLE_OUT} tokens for simple work, {COMPLEX_OUT} for complex)"
    );
    Ok(o)
}

/// One LiteLLM classifier's run, as bench/peers/litellm_router.py prints it.
#[derive(serde::Deserialize)]
struct PeerRun {
    classifier: String,
    p50_us: f64,
    p99_us: f64,
    tiers: Vec<String>,
}

/// LiteLLM's complexity router on the same prompts, when
/// BENCH_LITELLM_PYTHON names a Python with litellm (bench/run.sh).
fn litellm(
    examples: &[cairn_llm::router::classify::Example],
    ours: &Outcome,
    ours_p50: Latency,
) -> Result<()> {
    let Ok(python) = std::env::var("BENCH_LITELLM_PYTHON") else {
        println!(
            "  peer: not measured (set BENCH_LITELLM_PYTHON to a Python with litellm; bench/run.sh does)"
        );
        return Ok(());
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/litellm_router.py");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(shipped())
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "the LiteLLM peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let run: PeerRun = serde_json::from_str(line).context("the LiteLLM peer's output")?;
        anyhow::ensure!(
            run.tiers.len() == examples.len(),
            "the peer skipped prompts"
        );
        println!(
            "  peer: LiteLLM complexity router ({}): a decision p50 {:.0} µs, p99 {:.0} µs (every call); cairn's first decision of a turn {:.1}x that, a later step's {:.2}x",
            run.classifier,
            run.p50_us,
            run.p99_us,
            ours_p50.first_us / run.p50_us,
            ours_p50.later_us / run.p50_us
        );
        // As its quickstart maps the tiers, and stricter.
        for (mapping, local) in [
            ("SIMPLE and MEDIUM local", &["SIMPLE", "MEDIUM"][..]),
            ("only SIMPLE local", &["SIMPLE"][..]),
        ] {
            let predicted: Vec<Complexity> = run
                .tiers
                .iter()
                .map(|t| {
                    if local.contains(&t.as_str()) {
                        Complexity::Simple
                    } else {
                        Complexity::Complex
                    }
                })
                .collect();
            let o = outcome(examples, &predicted)?;
            println!(
                "    {mapping}: {:.1}% agree, {:.1}% local, {} demanding prompts sent local (cairn: {:.1}%, {}); saved {:.1}%",
                o.agreement * 100.0,
                o.local_share * 100.0,
                o.misrouted,
                ours.agreement * 100.0,
                ours.misrouted,
                o.saved()
            );
        }
    }
    Ok(())
}
