//! A linear model over hashed features: its binary format and how it scores a text.

use std::fmt;

use super::features::{FeatureSet, FeatureSink, extract};

/// The first bytes of a model file.
const MAGIC: &[u8; 8] = b"AGPIC\x00\x00\x01";
/// Magic, bits, feature set, two reserved bytes, window, bias, scale.
const HEADER_LEN: usize = 8 + 1 + 1 + 2 + 4 + 4 + 4;

/// A prompt-injection model: `2^bits` weights over hashed [features](super::features) and a
/// bias; the score of a text is the logistic of the best window's mean-normalized sum.
///
/// A text is read in windows of [`window`](Self::window) tokens that overlap by half; each
/// window's logit is `bias + Σ w[feature] / √(number of features)`, and the text scores the
/// highest window. A short prompt is one window; an instruction hidden in a long document
/// still scores as high as it would alone, in a window of its own surroundings.
///
/// The weights are stored as `i16` with one scale, little-endian:
///
/// ```text
/// "AGPIC\0\0\x01" | bits: u8 | features: u8 | 0u16 | window: u32 | bias: f32 | scale: f32 | weights: [i16; 2^bits]
/// ```
#[derive(Clone, PartialEq)]
pub struct Model {
    bits: u8,
    features: FeatureSet,
    window: u32,
    bias: f32,
    scale: f32,
    weights: Box<[i16]>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("bits", &self.bits)
            .field("features", &self.features)
            .field("window", &self.window)
            .field("bias", &self.bias)
            .finish_non_exhaustive()
    }
}

/// Why bytes are not a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid classifier model: {0}")]
pub struct ModelError(&'static str);

impl Model {
    /// A model from trained `f32` weights (one per hash bucket, `2^bits` of them), quantized
    /// to `i16`.
    ///
    /// # Panics
    ///
    /// If `weights.len()` is not `2^bits`, `bits` is not in `8..=24`, or `window < 2`.
    pub fn from_weights(
        bits: u8,
        features: FeatureSet,
        window: u32,
        bias: f32,
        weights: &[f32],
    ) -> Model {
        assert!((8..=24).contains(&bits), "bits must be in 8..=24");
        assert_eq!(weights.len(), 1 << bits, "one weight per bucket");
        assert!(window >= 2, "a window has at least two tokens");
        let max = weights.iter().fold(0f32, |m, w| m.max(w.abs()));
        let scale = if max > 0.0 {
            max / f32::from(i16::MAX)
        } else {
            1.0
        };
        let weights = weights.iter().map(|w| (w / scale).round() as i16).collect();
        Model {
            bits,
            features,
            window,
            bias,
            scale,
            weights,
        }
    }

    /// Reads a model in the format above.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, ModelError> {
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
            return Err(ModelError("not an agentgw classifier model"));
        }
        let bits = bytes[8];
        if !(8..=24).contains(&bits) {
            return Err(ModelError("hash bits out of range 8..=24"));
        }
        let features = FeatureSet::from_bits(bytes[9]).ok_or(ModelError("unknown features"))?;
        let u32_at = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let window = u32_at(12);
        if window < 2 {
            return Err(ModelError("window shorter than two tokens"));
        }
        let bias = f32::from_bits(u32_at(16));
        let scale = f32::from_bits(u32_at(20));
        if !bias.is_finite() || !scale.is_finite() || scale <= 0.0 {
            return Err(ModelError("bias or scale not a finite number"));
        }
        let body = &bytes[HEADER_LEN..];
        if body.len() != 2 << bits {
            return Err(ModelError("weight table length does not match its bits"));
        }
        let weights = body
            .chunks_exact(2)
            .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        Ok(Model {
            bits,
            features,
            window,
            bias,
            scale,
            weights,
        })
    }

    /// The model in the format above ([`from_bytes`](Self::from_bytes) reads it back).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 2 * self.weights.len());
        out.extend_from_slice(MAGIC);
        out.push(self.bits);
        out.push(self.features.bits());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.window.to_le_bytes());
        out.extend_from_slice(&self.bias.to_bits().to_le_bytes());
        out.extend_from_slice(&self.scale.to_bits().to_le_bytes());
        for w in &self.weights {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// The number of hash bits (the model has `2^bits` weights).
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The feature families the model reads.
    pub fn features(&self) -> FeatureSet {
        self.features
    }

    /// The window length in tokens.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// The bias (the logit of a text without features).
    pub fn bias(&self) -> f32 {
        self.bias
    }

    /// The same model with another bias: shifting it moves every score's logit alike, which
    /// is how training calibrates the default threshold.
    #[must_use]
    pub fn with_bias(mut self, bias: f32) -> Model {
        self.bias = bias;
        self
    }

    /// The bucket of a feature hash: its top `bits` bits.
    pub fn bucket(bits: u8, hash: u64) -> usize {
        (hash >> (64 - u32::from(bits))) as usize
    }

    /// The probability, from 0 to 1, that `text` is a prompt injection: the logistic of its
    /// best window's logit.
    pub fn score(&self, text: &str) -> f32 {
        sigmoid(self.logit(text))
    }

    /// The logit of the best window of `text` (the score before the logistic).
    pub fn logit(&self, text: &str) -> f32 {
        let mut windows = Windows {
            model: self,
            half: (self.window / 2).max(1),
            block: Block::default(),
            prev: None,
            best: f32::NEG_INFINITY,
        };
        extract(text, self.features, &mut windows);
        windows.finish()
    }
}

/// The logistic function.
pub fn sigmoid(logit: f32) -> f32 {
    1.0 / (1.0 + (-logit).exp())
}

/// The weight sum and feature count of half a window.
#[derive(Debug, Default, Clone, Copy)]
struct Block {
    sum: i64,
    features: u32,
    tokens: u32,
}

/// Scores windows of `window` tokens overlapping by half, as blocks of half a window: each
/// window is two consecutive blocks.
struct Windows<'m> {
    model: &'m Model,
    half: u32,
    block: Block,
    prev: Option<Block>,
    best: f32,
}

impl Windows<'_> {
    fn window_logit(&self, a: Block, b: Block) -> f32 {
        let features = a.features + b.features;
        if features == 0 {
            return self.model.bias;
        }
        let sum = (a.sum + b.sum) as f32 * self.model.scale;
        self.model.bias + sum / (features as f32).sqrt()
    }

    fn finish(mut self) -> f32 {
        match self.prev {
            // One block: the whole text is one window.
            None => self.window_logit(self.block, Block::default()),
            Some(prev) => {
                // The last, partial block; or the only block, which ended the text exactly.
                if self.block.tokens > 0 || self.best == f32::NEG_INFINITY {
                    let logit = self.window_logit(prev, self.block);
                    self.best = self.best.max(logit);
                }
                self.best
            }
        }
    }
}

impl FeatureSink for Windows<'_> {
    #[inline]
    fn feature(&mut self, hash: u64) {
        let w = self.model.weights[Model::bucket(self.model.bits, hash)];
        self.block.sum += i64::from(w);
        self.block.features += 1;
    }

    fn token_end(&mut self) {
        self.block.tokens += 1;
        if self.block.tokens < self.half {
            return;
        }
        let block = std::mem::take(&mut self.block);
        if let Some(prev) = self.prev {
            let logit = self.window_logit(prev, block);
            self.best = self.best.max(logit);
        }
        self.prev = Some(block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_with(weight: impl Fn(usize) -> f32) -> Model {
        let weights: Vec<f32> = (0..1 << 10).map(weight).collect();
        Model::from_weights(10, FeatureSet::ALL, 8, -1.0, &weights)
    }

    #[test]
    fn bytes_round_trip_and_bad_bytes_are_errors() {
        let model = model_with(|i| (i as f32 - 512.0) / 100.0);
        let bytes = model.to_bytes();
        assert_eq!(bytes.len(), HEADER_LEN + 2048);
        assert_eq!(Model::from_bytes(&bytes).unwrap(), model);
        assert!(Model::from_bytes(&bytes[..100]).is_err());
        assert!(Model::from_bytes(b"not a model at all, not at all").is_err());
        let mut bad_bits = bytes.clone();
        bad_bits[8] = 30;
        assert!(Model::from_bytes(&bad_bits).is_err());
    }

    #[test]
    fn windows_take_the_best_and_a_short_text_is_one_window() {
        // Every feature weighs 1: the logit of a window is bias + √(features).
        let model = model_with(|_| 1.0);
        let short = model.logit("one two");
        assert!(short > -1.0);
        assert!((model.score("") - sigmoid(-1.0)).abs() < 1e-6);
        // A long text scores its best window, not the sum of all its features (windows differ
        // only by the bigram the first word lacks).
        let long = "word ".repeat(1000);
        let one_window = "word ".repeat(8);
        assert!((model.logit(&long) - model.logit(&one_window)).abs() < 0.1);
        assert!(model.logit(&long) < 2.0 * model.logit(&one_window));
        // A text of exactly half a window is one window too.
        assert!((model.logit("a b c d") - model.logit("a b c d e")).abs() < 1.0);
    }
}
