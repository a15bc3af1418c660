//! The version-2 forward pass against a plain-loop f64 transcription of
//! `docs/model.md` ("Version 2: options"), written without candle, so the
//! tensor code (norms over each frame, the causal convolution with zeros
//! before the first frame, the MLP, the final norm, and the last layer
//! computing only the last query while its norm and convolution cover
//! every frame) is checked against the definition itself.

use aether_domain::{BackendKind, HeadConfig};
use aether_train::{Architecture, ModelOptions, Norm, TemporalNet};
use candle_core::{DType, Device, Tensor};

const D: usize = 3;
const N: usize = 6;
const HQ: usize = 2;
const HD: usize = 2;

fn architecture(options: ModelOptions) -> Architecture {
    Architecture {
        input_dim: D,
        n_classes: 3,
        n_layers: 2,
        // Dense: plain causal attention, which the reference below
        // computes directly (the sparse pattern has its own parity tests).
        head: HeadConfig {
            backend: BackendKind::Dense,
            q_heads: HQ,
            kv_heads: 1,
            head_dim: HD,
            ..HeadConfig::default_aether()
        },
        options,
    }
}

type Frames = Vec<Vec<f64>>;

/// `x · W` per frame, `W` `[rows][cols]` row-major.
fn matmul(x: &Frames, w: &[f64], cols: usize) -> Frames {
    x.iter()
        .map(|row| {
            (0..cols)
                .map(|c| {
                    row.iter()
                        .enumerate()
                        .map(|(r, v)| v * w[r * cols + c])
                        .sum()
                })
                .collect()
        })
        .collect()
}

/// Hands out the body's tensors in order.
struct Body<'a>(&'a [f64]);

impl Body<'_> {
    fn take(&mut self, n: usize) -> Vec<f64> {
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head.to_vec()
    }

    fn norm(&mut self, norm: Norm, x: &Frames) -> Frames {
        let (gamma, beta) = match norm {
            Norm::None => return x.clone(),
            Norm::Layer => (self.take(D), self.take(D)),
            Norm::Rms => (self.take(D), vec![0.0; D]),
        };
        x.iter()
            .map(|f| {
                let n = f.len() as f64;
                let mean = if norm == Norm::Layer {
                    f.iter().sum::<f64>() / n
                } else {
                    0.0
                };
                let var = f.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                let scale = 1.0 / (var + 1e-5).sqrt();
                (0..D)
                    .map(|i| (f[i] - mean) * scale * gamma[i] + beta[i])
                    .collect()
            })
            .collect()
    }
}

/// The logits of `docs/model.md`, version 2, for one window.
fn reference(options: &ModelOptions, body: &[f64], frames: &Frames) -> Vec<f64> {
    let mut b = Body(body);
    let mut x = frames.clone();
    if options.centre_shift > 0 {
        // x̃_t = g·(x_t − m_t), m_0 = x_0, m_t = (1 − a)·m_{t−1} + a·x_t.
        let a = 0.5_f64.powi(options.centre_shift as i32);
        let g = 2.0_f64.powi(options.centre_gain_log2 as i32);
        let mut m = frames[0].clone();
        for (t, row) in x.iter_mut().enumerate() {
            for f in 0..D {
                if t > 0 {
                    m[f] = (1.0 - a) * m[f] + a * frames[t][f];
                }
                row[f] = g * (frames[t][f] - m[f]);
            }
        }
    }
    for _ in 0..2 {
        let h = b.norm(options.norm, &x);
        let c: Frames = if options.conv_taps >= 2 {
            let w = b.take(options.conv_taps * D);
            (0..N)
                .map(|t| {
                    (0..D)
                        .map(|f| {
                            (0..options.conv_taps)
                                .filter(|&j| j <= t)
                                .map(|j| w[j * D + f] * h[t - j][f])
                                .sum()
                        })
                        .collect()
                })
                .collect()
        } else {
            h
        };
        let q = matmul(&c, &b.take(D * HQ * HD), HQ * HD);
        let k = matmul(&c, &b.take(D * HD), HD);
        let v = matmul(&c, &b.take(D * HD), HD);
        let wo = b.take(HQ * HD * D);
        let attended: Frames = (0..N)
            .map(|i| {
                let mut out = vec![0.0; HQ * HD];
                for head in 0..HQ {
                    let qh = &q[i][head * HD..(head + 1) * HD];
                    let scores: Vec<f64> = (0..=i)
                        .map(|j| {
                            qh.iter().zip(&k[j]).map(|(a, b)| a * b).sum::<f64>()
                                / (HD as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for (j, ej) in e.iter().enumerate() {
                        for t in 0..HD {
                            out[head * HD + t] += ej / sum * v[j][t];
                        }
                    }
                }
                out
            })
            .collect();
        let delta = matmul(&attended, &wo, D);
        for (row, d) in x.iter_mut().zip(&delta) {
            row.iter_mut().zip(d).for_each(|(a, b)| *a += b);
        }
        if options.mlp_hidden >= 1 {
            let hd = options.mlp_hidden;
            let h = b.norm(options.norm, &x);
            let w1 = b.take(D * hd);
            let b1 = b.take(hd);
            let w2 = b.take(hd * D);
            let b2 = b.take(D);
            let mut hidden = matmul(&h, &w1, hd);
            for row in &mut hidden {
                row.iter_mut()
                    .zip(&b1)
                    .for_each(|(a, b)| *a = (*a + b).max(0.0));
            }
            let out = matmul(&hidden, &w2, D);
            for (row, o) in x.iter_mut().zip(&out) {
                for i in 0..D {
                    row[i] += o[i] + b2[i];
                }
            }
        }
    }
    let rows = b.norm(options.norm, &x);
    let last = if options.pool_shift > 0 {
        // The running mean of every frame's final row.
        let a = 0.5_f64.powi(options.pool_shift as i32);
        let mut p = rows[0].clone();
        for row in &rows[1..] {
            p.iter_mut()
                .zip(row)
                .for_each(|(p, y)| *p = (1.0 - a) * *p + a * y);
        }
        vec![p]
    } else {
        vec![rows[N - 1].clone()]
    };
    let wc = b.take(D * 3);
    assert!(b.0.is_empty(), "the reference read the whole body");
    matmul(&last, &wc, 3).remove(0)
}

fn window() -> Frames {
    (0..N)
        .map(|t| {
            (0..D)
                .map(|f| ((t * D + f) as f64 * 0.91).sin() + 0.3 * f as f64)
                .collect()
        })
        .collect()
}

/// Max |trainer − reference| over the logits, with every weight moved off
/// its initial value (so γ, β, the earlier taps and biases all matter).
fn difference(options: ModelOptions) -> f64 {
    let net = TemporalNet::new(architecture(options.clone()), 4, DType::F64).unwrap();
    for (k, var) in net.vars().into_iter().enumerate() {
        let offsets: Vec<f64> = (0..var.as_tensor().elem_count())
            .map(|i| 0.3 * (1.3 * i as f64 + 0.7 * k as f64).cos())
            .collect();
        let offsets = Tensor::from_vec(offsets, var.shape().clone(), &Device::Cpu).unwrap();
        var.set(&(var.as_tensor() + offsets).unwrap()).unwrap();
    }
    let frames = window();
    let flat: Vec<f64> = frames.iter().flatten().copied().collect();
    let input = Tensor::from_vec(flat, (1, N, D), &Device::Cpu).unwrap();
    let got = net
        .logits(&input)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let expected = reference(&options, &net.body().unwrap(), &frames);
    got.iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn every_combination_of_options_matches_the_definition() {
    for norm in [Norm::None, Norm::Layer, Norm::Rms] {
        for conv_taps in [0, 2, 4] {
            for mlp_hidden in [0, 5] {
                for (centre_shift, centre_gain_log2, pool_shift) in
                    [(0, 0, 0), (2, 3, 0), (0, 0, 1), (3, 1, 2)]
                {
                    let options = ModelOptions {
                        norm,
                        conv_taps,
                        mlp_hidden,
                        centre_shift,
                        centre_gain_log2,
                        pool_shift,
                    };
                    let diff = difference(options.clone());
                    assert!(diff < 1e-12, "{options:?}: max |Δlogit| {diff:e}");
                }
            }
        }
    }
}

#[test]
fn a_fresh_convolution_is_the_identity() {
    // conv_taps draws nothing and starts as tap 0 = 1: the same seed gives
    // version 1's logits, bit for bit.
    let frames: Vec<f32> = window().iter().flatten().map(|&v| v as f32).collect();
    let input = Tensor::from_vec(frames, (1, N, D), &Device::Cpu).unwrap();
    let logits = |options| {
        TemporalNet::new(architecture(options), 9, DType::F32)
            .unwrap()
            .logits(&input)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let v1 = logits(ModelOptions::default());
    let conv = logits(ModelOptions {
        conv_taps: 4,
        ..ModelOptions::default()
    });
    assert_eq!(v1, conv);
}

#[test]
fn one_tap_is_refused_by_name() {
    let err = TemporalNet::new(
        architecture(ModelOptions {
            conv_taps: 1,
            ..ModelOptions::default()
        }),
        1,
        DType::F32,
    )
    .unwrap_err();
    assert!(err.to_string().contains("conv_taps"), "{err}");
}

#[test]
fn options_read_from_lowercase_names_and_default_to_off() {
    let json = r#"{"norm":"rms","conv_taps":3}"#;
    let options: ModelOptions = serde_json::from_str(json).unwrap();
    assert_eq!(
        options,
        ModelOptions {
            norm: Norm::Rms,
            conv_taps: 3,
            ..ModelOptions::default()
        }
    );
    let empty: ModelOptions = serde_json::from_str("{}").unwrap();
    assert!(empty.is_v1());
    assert!(serde_json::from_str::<ModelOptions>(r#"{"norm":"batch"}"#).is_err());
}
