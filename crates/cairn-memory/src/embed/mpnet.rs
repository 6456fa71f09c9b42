//! MPNet (all-mpnet-base-v2 and other sentence-transformers MPNet models)
//! on candle. candle-transformers has no MPNet, and the model is BERT with
//! three differences, so it is small enough to keep here: no token types,
//! positions counted from the padding id plus one, and a learned bias per
//! attention head over bucketed relative positions (T5's buckets), shared
//! by every layer.

use candle_core::{DType, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, Module, VarBuilder, embedding, layer_norm, linear};
use serde::Deserialize;

/// The fields of an MPNet `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct MpNetConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_buckets")]
    relative_attention_num_buckets: usize,
    #[serde(default = "default_pad")]
    pub(super) pad_token_id: u32,
}

impl MpNetConfig {
    /// The first `n` layers only.
    pub(super) fn with_layers(mut self, n: usize) -> MpNetConfig {
        self.num_hidden_layers = self.num_hidden_layers.min(n);
        self
    }
}

fn default_eps() -> f64 {
    1e-5
}

fn default_buckets() -> usize {
    32
}

fn default_pad() -> u32 {
    1
}

/// Relative distances beyond this share the last bucket (MPNet's value).
const MAX_DISTANCE: i64 = 128;

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// The MPNet encoder: token ids in, one hidden state per token out.
pub(super) struct MpNetModel {
    words: Embedding,
    positions: Embedding,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    relative_bias: Embedding,
    heads: usize,
    buckets: usize,
    pad: u32,
    max_positions: usize,
}

impl MpNetModel {
    /// Loads the weights named as in Hugging Face's MPNetModel.
    pub(super) fn load(vb: VarBuilder, cfg: &MpNetConfig) -> Result<MpNetModel> {
        let h = cfg.hidden_size;
        let emb = vb.pp("embeddings");
        let words = embedding(cfg.vocab_size, h, emb.pp("word_embeddings"))?;
        let positions = embedding(
            cfg.max_position_embeddings,
            h,
            emb.pp("position_embeddings"),
        )?;
        let embed_norm = layer_norm(h, cfg.layer_norm_eps, emb.pp("LayerNorm"))?;
        let enc = vb.pp("encoder");
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = enc.pp(format!("layer.{i}"));
            let attn = l.pp("attention");
            layers.push(Layer {
                q: linear(h, h, attn.pp("attn.q"))?,
                k: linear(h, h, attn.pp("attn.k"))?,
                v: linear(h, h, attn.pp("attn.v"))?,
                o: linear(h, h, attn.pp("attn.o"))?,
                attention_norm: layer_norm(h, cfg.layer_norm_eps, attn.pp("LayerNorm"))?,
                intermediate: linear(h, cfg.intermediate_size, l.pp("intermediate.dense"))?,
                output: linear(cfg.intermediate_size, h, l.pp("output.dense"))?,
                output_norm: layer_norm(h, cfg.layer_norm_eps, l.pp("output.LayerNorm"))?,
            });
        }
        let relative_bias = embedding(
            cfg.relative_attention_num_buckets,
            cfg.num_attention_heads,
            enc.pp("relative_attention_bias"),
        )?;
        Ok(MpNetModel {
            words,
            positions,
            embed_norm,
            layers,
            relative_bias,
            heads: cfg.num_attention_heads,
            buckets: cfg.relative_attention_num_buckets,
            pad: cfg.pad_token_id,
            max_positions: cfg.max_position_embeddings,
        })
    }

    /// Hidden states `[batch, tokens, hidden]` for `ids` `[batch, tokens]`
    /// (u32) with `mask` (1 for real tokens, 0 for padding).
    pub(super) fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        let positions = self.position_ids(ids)?;
        let x = (self.words.forward(ids)? + self.positions.forward(&positions)?)?;
        let mut x = self.embed_norm.forward(&x)?;
        let bias = self.position_bias(len, ids.device())?;
        // Padding gets a large negative score, so softmax gives it nothing.
        let pad = ((1.0 - mask.to_dtype(DType::F32)?)? * -1e9)?.reshape((batch, 1, 1, len))?;
        let bias = bias.broadcast_add(&pad)?;
        for layer in &self.layers {
            x = self.layer(layer, &x, &bias)?;
        }
        Ok(x)
    }

    /// Real tokens are numbered from `pad + 1`; padding keeps `pad`.
    fn position_ids(&self, ids: &Tensor) -> Result<Tensor> {
        let rows = ids.to_vec2::<u32>()?;
        let (batch, len) = (rows.len(), rows.first().map_or(0, Vec::len));
        let last = (self.max_positions as u32).saturating_sub(1);
        let mut out = Vec::with_capacity(batch * len);
        for row in rows {
            let mut seen = 0u32;
            for id in row {
                if id == self.pad {
                    out.push(self.pad);
                } else {
                    seen += 1;
                    out.push((self.pad + seen).min(last));
                }
            }
        }
        Tensor::from_vec(out, (batch, len), ids.device())
    }

    /// `[1, heads, len, len]`: each head's learned bias for the bucket of
    /// every key's distance from every query.
    fn position_bias(&self, len: usize, device: &candle_core::Device) -> Result<Tensor> {
        let mut buckets = Vec::with_capacity(len * len);
        for q in 0..len as i64 {
            for k in 0..len as i64 {
                buckets.push(relative_bucket(k - q, self.buckets as i64));
            }
        }
        let buckets = Tensor::from_vec(buckets, (len * len,), device)?;
        self.relative_bias
            .forward(&buckets)?
            .reshape((len, len, self.heads))?
            .permute((2, 0, 1))?
            .unsqueeze(0)
    }

    fn layer(&self, l: &Layer, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (batch, len, hidden) = x.dims3()?;
        let head_dim = hidden / self.heads;
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((batch, len, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(l.q.forward(x)?)?;
        let k = split(l.k.forward(x)?)?;
        let v = split(l.v.forward(x)?)?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? / (head_dim as f64).sqrt())?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(bias)?)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((batch, len, hidden))?;
        let attended = l.attention_norm.forward(&(l.o.forward(&context)? + x)?)?;
        let inner = l.intermediate.forward(&attended)?.gelu_erf()?;
        l.output_norm
            .forward(&(l.output.forward(&inner)? + attended)?)
    }
}

/// T5's bidirectional bucket for a key `relative` positions after the
/// query: half the buckets for keys before it, half for keys after; within
/// each half, exact distances below a quarter of the buckets, then
/// logarithmic steps up to `MAX_DISTANCE`.
fn relative_bucket(relative: i64, buckets: i64) -> u32 {
    let half = buckets / 2;
    let mut bucket = if relative > 0 { half } else { 0 };
    let n = relative.abs();
    let exact = half / 2;
    bucket += if n < exact {
        n
    } else {
        let scaled = (n as f64 / exact as f64).ln() / (MAX_DISTANCE as f64 / exact as f64).ln()
            * (half - exact) as f64;
        (exact + scaled as i64).min(half - 1)
    };
    bucket as u32
}

#[cfg(test)]
mod tests {
    use super::relative_bucket;

    #[test]
    fn buckets_follow_t5_bidirectional_rule() {
        // Exact below 8 on each side; keys after the query in the upper half.
        assert_eq!(relative_bucket(0, 32), 0);
        assert_eq!(relative_bucket(-3, 32), 3);
        assert_eq!(relative_bucket(3, 32), 19);
        assert_eq!(relative_bucket(-7, 32), 7);
        // Logarithmic from 8 to 128: 8 -> 8, 16 -> 10, 32 -> 12, 64 -> 14.
        assert_eq!(relative_bucket(-8, 32), 8);
        assert_eq!(relative_bucket(-16, 32), 10);
        assert_eq!(relative_bucket(-32, 32), 12);
        assert_eq!(relative_bucket(64, 32), 30);
        // Far beyond the maximum distance: the last bucket of the half.
        assert_eq!(relative_bucket(-1000, 32), 15);
        assert_eq!(relative_bucket(1000, 32), 31);
    }
}
