//! An experiment, evaluation only (`--hidden N`): a fastText-style network (hashed features -> embedding of `dim` summed with the
//! same `1/√n` normalization as the linear model -> ReLU hidden layer -> logistic), optionally
//! next to the linear term ("wide and deep"). Trained by AdaGrad SGD, single-threaded, in a
//! fixed order from a fixed seed; scored, like the linear model, as the best of a text's windows.
//! Measured no better than the linear model on leave-one-source-out (see the agentgw-guard
//! README), so the guard ships the linear model and this stays in the trainer to repeat the
//! comparison.

use crate::{Options, Row, Sparse, XorShift, row_weights};

/// A trained network in `f32`.
#[derive(Debug, Clone)]
pub struct Mlp {
    dim: usize,
    embed: Vec<f32>,
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: f32,
    linear: Option<Vec<f32>>,
}

struct Forward {
    e: Vec<f32>,
    z: Vec<f32>,
    logit: f32,
}

impl Mlp {
    fn forward(&self, x: &Sparse) -> Forward {
        let mut e = vec![0f32; self.dim];
        let mut lin = 0f32;
        for &(b, v) in &x.0 {
            let row = &self.embed[b as usize * self.dim..][..self.dim];
            for (acc, w) in e.iter_mut().zip(row) {
                *acc += v * w;
            }
            if let Some(linear) = &self.linear {
                lin += v * linear[b as usize];
            }
        }
        let mut z = self.b1.clone();
        for (j, zj) in z.iter_mut().enumerate() {
            let w = &self.w1[j * self.dim..][..self.dim];
            *zj += w.iter().zip(&e).map(|(a, b)| a * b).sum::<f32>();
        }
        let logit = self.b2
            + lin
            + z.iter()
                .zip(&self.w2)
                .map(|(z, w)| z.max(0.0) * w)
                .sum::<f32>();
        Forward { e, z, logit }
    }

    /// The logit of the best window.
    pub fn logit_windows(&self, windows: &[Sparse]) -> f32 {
        windows
            .iter()
            .map(|w| self.forward(w).logit)
            .fold(f32::NEG_INFINITY, f32::max)
    }
}

struct AdaGrad {
    squares: Vec<f32>,
}

impl AdaGrad {
    fn new(n: usize) -> Self {
        AdaGrad {
            squares: vec![0.0; n],
        }
    }

    #[inline]
    fn step(&mut self, params: &mut [f32], i: usize, grad: f32, lr: f32) {
        self.squares[i] += grad * grad;
        params[i] -= lr * grad / (self.squares[i] + 1e-6).sqrt();
    }
}

fn uniform(rng: &mut XorShift, scale: f32) -> f32 {
    ((rng.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
}

/// Fits a network to `rows`, each with one example vector (its whole text).
pub fn train_mlp(rows: &[&Row], vectors: &[&Sparse], options: &Options) -> Mlp {
    let (dim, hidden) = (options.dim, options.hidden);
    let size = 1usize << options.bits;
    let mut rng = XorShift(options.seed ^ 0x6d6c_7000_0000_0001);
    let mut net = Mlp {
        dim,
        embed: (0..size * dim)
            .map(|_| uniform(&mut rng, options.embed_init))
            .collect(),
        w1: (0..hidden * dim)
            .map(|_| uniform(&mut rng, (6.0 / (dim + hidden) as f32).sqrt()))
            .collect(),
        b1: vec![0.0; hidden],
        w2: (0..hidden)
            .map(|_| uniform(&mut rng, (6.0 / (hidden + 1) as f32).sqrt()))
            .collect(),
        b2: 0.0,
        linear: options.wide.then(|| vec![0.0; size]),
    };
    let mut g_embed = AdaGrad::new(size * dim);
    let mut g_w1 = AdaGrad::new(hidden * dim);
    let mut g_b1 = AdaGrad::new(hidden);
    let mut g_w2 = AdaGrad::new(hidden);
    let mut g_b2 = AdaGrad::new(1);
    let mut g_lin = AdaGrad::new(if options.wide { size } else { 0 });
    let sample_weights = row_weights(rows, options.source_balance, options.hard_negative_weight);
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut shuffle = XorShift(options.seed | 1);
    let lr = options.learning_rate;
    let lr_deep = options.deep_learning_rate;
    let mut de = vec![0f32; dim];
    for _ in 0..options.epochs {
        for i in (1..order.len()).rev() {
            let j = (shuffle.next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        for &i in &order {
            let x = vectors[i];
            let f = net.forward(x);
            let p = agentgw_guard::classifier::sigmoid(f.logit);
            let y = if rows[i].is_attack() { 1.0 } else { 0.0 };
            let g = (p - y) * sample_weights[i];
            // Hidden layer.
            de.iter_mut().for_each(|d| *d = 0.0);
            for (j, &z) in f.z.iter().enumerate() {
                let dz = g * net.w2[j];
                g_w2.step(&mut net.w2, j, g * z.max(0.0), lr_deep);
                if z > 0.0 {
                    let w = &net.w1[j * dim..][..dim];
                    for (d, w) in de.iter_mut().zip(w) {
                        *d += dz * w;
                    }
                    for (k, e) in f.e.iter().enumerate() {
                        g_w1.step(&mut net.w1, j * dim + k, dz * e, lr_deep);
                    }
                    g_b1.step(&mut net.b1, j, dz, lr_deep);
                }
            }
            let mut b2 = [net.b2];
            g_b2.step(&mut b2, 0, g, lr_deep);
            net.b2 = b2[0];
            for &(b, v) in &x.0 {
                let b = b as usize;
                for (k, d) in de.iter().enumerate() {
                    let at = b * dim + k;
                    let grad = v * d + options.l2 * net.embed[at];
                    g_embed.step(&mut net.embed, at, grad, lr_deep);
                }
                if let Some(linear) = &mut net.linear {
                    let grad = g * v + options.l2 * linear[b];
                    g_lin.step(linear, b, grad, lr);
                }
            }
        }
    }
    net
}
