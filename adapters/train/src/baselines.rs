//! Baselines on the same split, to show what the attention model adds
//! (`docs/training.md`, "Baselines").
//!
//! - **majority**: always the most frequent training class; the floor.
//! - **linear**: softmax regression on each window's per-feature mean and
//!   standard deviation over time (standardised with training
//!   statistics); what an order-blind summary of the window achieves.
//! - **causal CNN**: each window referenced to its first frame, then
//!   dilated causal 1D convolutions (kernel 3, dilations 1, 2, 4, 8,
//!   ReLU), mean-pooled over time, then a linear classifier: a temporal
//!   model of about the attention model's size (11,045 parameters at
//!   D 16, C 5).
//!
//! The trained baselines go through the same loop as the model
//! (`fit.rs`): same epochs, batch size, learning rate, weight decay, seed
//! and batch order. Both standardise their inputs with training
//! statistics (the CNN its referenced frames, the probe its window
//! statistics), and the CNN also removes each window's level; steps the
//! kernel model cannot take (it has no bias to fold the centring into;
//! `docs/training.md`), so the comparison favours the baselines if
//! anything.

use aether_dataset::Split;
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::fit::{Classifier, Progress, Schedule, check_split, evaluate, fit, frames_tensor};
use crate::metrics::Metrics;
use crate::rng::SplitMix64;

/// One baseline's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineReport {
    /// `majority`, `linear` or `causal-cnn`.
    pub name: String,
    /// Trainable parameters (0 for the majority guess).
    pub parameters: usize,
    /// Held-out metrics (`None` without held-out windows).
    pub held_out: Option<Metrics>,
}

/// The computations run in f32, like the model's training.
const DTYPE: DType = DType::F32;

/// Predicts the most frequent training class (ties: the lowest index)
/// for every held-out window.
///
/// # Errors
/// An invalid split.
pub fn majority(data: &Split) -> Result<BaselineReport, TrainError> {
    check_split(data)?;
    let classes = data.classes.len();
    let mut counts = vec![0usize; classes];
    for &label in &data.train.labels {
        counts[label] += 1;
    }
    // max_by_key keeps the last maximum; iterate in reverse so ties go to
    // the lowest index.
    let guess = (0..classes).rev().max_by_key(|&c| counts[c]).unwrap_or(0);
    let held_out = (!data.test.is_empty()).then(|| {
        let predicted = vec![guess; data.test.len()];
        Metrics::new(classes, &data.test.labels, &predicted)
    });
    Ok(BaselineReport {
        name: "majority".into(),
        parameters: 0,
        held_out,
    })
}

/// Per-column mean and reciprocal standard deviation of `rows` (`[R, F]`),
/// as `[F]` tensors; a constant column gets scale 1.
fn standardiser(rows: &Tensor) -> Result<(Tensor, Tensor), TrainError> {
    let rows = rows.to_dtype(DType::F64)?;
    let mean = rows.mean_keepdim(0)?;
    let var = rows.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)?;
    let scale: Vec<f64> = var
        .flatten_all()?
        .to_vec1::<f64>()?
        .into_iter()
        .map(|v| if v > 1e-24 { 1.0 / v.sqrt() } else { 1.0 })
        .collect();
    let f = scale.len();
    Ok((
        mean.flatten_all()?.to_dtype(DTYPE)?,
        Tensor::from_vec(scale, f, &Device::Cpu)?.to_dtype(DTYPE)?,
    ))
}

/// All training windows as one `[W, N, D]` tensor.
fn training_frames(data: &Split) -> Result<Tensor, TrainError> {
    let all: Vec<usize> = (0..data.train.len()).collect();
    frames_tensor(&data.train, &all, DTYPE)
}

/// Uniform in `[-gain/√rows, gain/√rows)`.
fn uniform_var(
    rng: &mut SplitMix64,
    rows: usize,
    cols: usize,
    gain: f64,
) -> Result<Var, TrainError> {
    let scale = gain / (rows as f64).sqrt();
    let values: Vec<f64> = (0..rows * cols)
        .map(|_| rng.next_symmetric(scale))
        .collect();
    let t = Tensor::from_vec(values, (rows, cols), &Device::Cpu)?.to_dtype(DTYPE)?;
    Ok(Var::from_tensor(&t)?)
}

fn zero_var(len: usize) -> Result<Var, TrainError> {
    Ok(Var::zeros(len, DTYPE, &Device::Cpu)?)
}

/// Softmax regression on window statistics.
struct LinearProbe {
    center: Tensor,
    scale: Tensor,
    weight: Var,
    bias: Var,
}

/// `[B, 2D]`: per-feature mean over time, then per-feature standard
/// deviation over time.
fn window_statistics(frames: &Tensor) -> candle_core::Result<Tensor> {
    let mean = frames.mean_keepdim(1)?;
    let std = frames
        .broadcast_sub(&mean)?
        .sqr()?
        .mean_keepdim(1)?
        .sqrt()?;
    Tensor::cat(&[mean.squeeze(1)?, std.squeeze(1)?], 1)
}

impl LinearProbe {
    fn new(data: &Split, seed: u64) -> Result<Self, TrainError> {
        let stats = window_statistics(&training_frames(data)?)?;
        let (center, scale) = standardiser(&stats)?;
        let mut rng = SplitMix64::fork(seed, 3);
        let features = 2 * data.train.input_dim;
        Ok(Self {
            center,
            scale,
            weight: uniform_var(&mut rng, features, data.classes.len(), 1.0)?,
            bias: zero_var(data.classes.len())?,
        })
    }
}

impl Classifier for LinearProbe {
    fn logits(&self, frames: &Tensor) -> Result<Tensor, TrainError> {
        let features = window_statistics(frames)?
            .broadcast_sub(&self.center)?
            .broadcast_mul(&self.scale)?;
        Ok(features.matmul(&self.weight)?.broadcast_add(&self.bias)?)
    }

    fn vars(&self) -> Vec<Var> {
        vec![self.weight.clone(), self.bias.clone()]
    }
}

/// Channels of every convolution of [`CausalCnn`].
const CNN_CHANNELS: usize = 32;
/// Taps per convolution.
const CNN_TAPS: usize = 3;
/// Dilation of each convolution; the receptive field is
/// `1 + (CNN_TAPS - 1)·Σ dilations = 31` frames.
const CNN_DILATIONS: [usize; 4] = [1, 2, 4, 8];

/// One causal convolution: `y[t] = relu(b + Σ_k x[t - k·dilation]·W_k)`,
/// computed as shifted copies of the input side by side times one matrix
/// (`[taps·in, out]`), which has a backward pass made of ordinary ops.
struct CausalConv {
    weight: Var,
    bias: Var,
    dilation: usize,
}

/// `x` (`[B, N, F]`) delayed by `s` frames, zeros before the start.
fn delayed(x: &Tensor, s: usize) -> candle_core::Result<Tensor> {
    let n = x.dim(1)?;
    if s == 0 {
        Ok(x.clone())
    } else if s >= n {
        x.zeros_like()
    } else {
        x.narrow(1, 0, n - s)?.pad_with_zeros(1, s, 0)
    }
}

impl CausalConv {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, _) = x.dims3()?;
        let taps = (0..CNN_TAPS)
            .map(|k| delayed(x, k * self.dilation))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let stacked = Tensor::cat(&taps, 2)?;
        let width = stacked.dim(2)?;
        let out = self.weight.dim(1)?;
        stacked
            .reshape((b * n, width))?
            .matmul(&self.weight)?
            .broadcast_add(&self.bias)?
            .relu()?
            .reshape((b, n, out))
    }
}

/// `frames` (`[B, N, D]`) minus each window's first frame.
///
/// Why: a recording's level (its static multipath profile times its
/// gain, plus its offset) differs from window to window by far more than
/// the motion inside a window. Standardised with global statistics alone,
/// every ReLU of the CNN was on or off for a whole window according to
/// that level, so the network was close to linear in the motion and the
/// mean over time cancelled it: training loss stayed near ln C and
/// held-out accuracy at chance. Subtracting the first frame removes the
/// level and keeps the convolutions causal (frame `t` is compared with a
/// frame at or before it, never with a window statistic that looks
/// ahead), unlike centring on the window's mean.
fn referenced(frames: &Tensor) -> candle_core::Result<Tensor> {
    frames.broadcast_sub(&frames.narrow(1, 0, 1)?)
}

/// The window referenced to its first frame ([`referenced`]), dilated
/// causal convolutions, mean over time, linear classifier.
struct CausalCnn {
    center: Tensor,
    scale: Tensor,
    convs: Vec<CausalConv>,
    head: Var,
    head_bias: Var,
}

impl CausalCnn {
    fn new(data: &Split, seed: u64) -> Result<Self, TrainError> {
        let frames = referenced(&training_frames(data)?)?;
        let (w, n, dim) = frames.dims3()?;
        let (center, scale) = standardiser(&frames.reshape((w * n, dim))?)?;
        let mut rng = SplitMix64::fork(seed, 4);
        let mut convs = Vec::with_capacity(CNN_DILATIONS.len());
        let mut width = dim;
        for dilation in CNN_DILATIONS {
            convs.push(CausalConv {
                // He init (variance 2/fan_in): keeps the signal's scale
                // through the ReLUs; with ±1/√fan_in it shrinks ~2.4× per
                // layer and the pooled features barely differ.
                weight: uniform_var(&mut rng, CNN_TAPS * width, CNN_CHANNELS, 6f64.sqrt())?,
                bias: zero_var(CNN_CHANNELS)?,
                dilation,
            });
            width = CNN_CHANNELS;
        }
        Ok(Self {
            center,
            scale,
            convs,
            head: uniform_var(&mut rng, CNN_CHANNELS, data.classes.len(), 1.0)?,
            head_bias: zero_var(data.classes.len())?,
        })
    }
}

impl CausalCnn {
    /// `[B, N, CNN_CHANNELS]`: the last convolution's output, frame `t`
    /// computed from frames `0..=t` only.
    fn features(&self, frames: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = referenced(frames)?
            .broadcast_sub(&self.center)?
            .broadcast_mul(&self.scale)?;
        for conv in &self.convs {
            x = conv.forward(&x)?;
        }
        Ok(x)
    }
}

impl Classifier for CausalCnn {
    fn logits(&self, frames: &Tensor) -> Result<Tensor, TrainError> {
        let pooled = self.features(frames)?.mean(1)?;
        Ok(pooled.matmul(&self.head)?.broadcast_add(&self.head_bias)?)
    }

    fn vars(&self) -> Vec<Var> {
        let mut vars: Vec<Var> = self
            .convs
            .iter()
            .flat_map(|c| [c.weight.clone(), c.bias.clone()])
            .collect();
        vars.extend([self.head.clone(), self.head_bias.clone()]);
        vars
    }
}

fn parameters(model: &impl Classifier) -> usize {
    model.vars().iter().map(|v| v.elem_count()).sum()
}

fn trained(
    name: &str,
    model: &impl Classifier,
    schedule: &Schedule,
    data: &Split,
    observer: &mut dyn FnMut(Progress),
) -> Result<BaselineReport, TrainError> {
    let history = fit(model, data, schedule, DTYPE, observer)?;
    let held_out = match history.last() {
        Some(last) => last.held_out.clone(),
        None => evaluate(model, data, schedule.batch_size, DTYPE)?,
    };
    Ok(BaselineReport {
        name: name.into(),
        parameters: parameters(model),
        held_out,
    })
}

/// The linear probe, trained with `schedule`.
///
/// # Errors
/// An invalid split or schedule, a non-finite loss.
pub fn linear(
    schedule: &Schedule,
    data: &Split,
    observer: &mut dyn FnMut(Progress),
) -> Result<BaselineReport, TrainError> {
    check_split(data)?;
    let model = LinearProbe::new(data, schedule.seed)?;
    trained("linear", &model, schedule, data, observer)
}

/// The causal CNN, trained with `schedule`.
///
/// # Errors
/// An invalid split or schedule, a non-finite loss.
pub fn causal_cnn(
    schedule: &Schedule,
    data: &Split,
    observer: &mut dyn FnMut(Progress),
) -> Result<BaselineReport, TrainError> {
    check_split(data)?;
    let model = CausalCnn::new(data, schedule.seed)?;
    trained("causal-cnn", &model, schedule, data, observer)
}

/// Every baseline, in the order majority, linear, causal CNN.
///
/// # Errors
/// The first baseline's error.
pub fn all(
    schedule: &Schedule,
    data: &Split,
    observer: &mut dyn FnMut(Progress),
) -> Result<Vec<BaselineReport>, TrainError> {
    Ok(vec![
        majority(data)?,
        linear(schedule, data, observer)?,
        causal_cnn(schedule, data, observer)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cnn_parameter_count_at_the_default_shape() {
        // 3·16·32 + 32, then three of 3·32·32 + 32, then 32·4 + 4.
        let expected = (3 * 16 * 32 + 32) + 3 * (3 * 32 * 32 + 32) + (32 * 4 + 4);
        assert_eq!(expected, 11_012);
        let split = Split {
            classes: (0..4).map(|c| c.to_string()).collect(),
            train: aether_dataset::Windows {
                input_dim: 16,
                window: 4,
                frames: (0..2 * 4 * 16).map(|i| (i % 7) as f32).collect(),
                labels: vec![0, 1],
            },
            test: aether_dataset::Windows::default(),
        };
        assert_eq!(parameters(&CausalCnn::new(&split, 1).unwrap()), expected);
        assert_eq!(
            parameters(&LinearProbe::new(&split, 1).unwrap()),
            2 * 16 * 4 + 4
        );
    }

    /// Two windows of 40 frames of 3 values, not constant in time.
    fn wavy_split() -> Split {
        let frames: Vec<f32> = (0..2 * 40 * 3)
            .map(|i| ((i * 37 % 23) as f32 * 0.1).sin())
            .collect();
        Split {
            classes: vec!["a".into(), "b".into()],
            train: aether_dataset::Windows {
                input_dim: 3,
                window: 40,
                frames,
                labels: vec![0, 1],
            },
            test: aether_dataset::Windows::default(),
        }
    }

    #[test]
    fn cnn_features_depend_only_on_past_frames() {
        let split = wavy_split();
        let model = CausalCnn::new(&split, 5).unwrap();
        let frames = frames_tensor(&split.train, &[0, 1], DTYPE).unwrap();
        let before = model.features(&frames).unwrap();
        // Change every frame from 25 on.
        let later = (frames.narrow(1, 25, 15).unwrap() * 3.0).unwrap();
        let changed = Tensor::cat(&[frames.narrow(1, 0, 25).unwrap(), later], 1).unwrap();
        let after = model.features(&changed).unwrap();
        let head = |t: &Tensor| t.narrow(1, 0, 25).unwrap().flatten_all().unwrap();
        assert_eq!(
            head(&before).to_vec1::<f32>().unwrap(),
            head(&after).to_vec1::<f32>().unwrap()
        );
        let tail = |t: &Tensor| t.narrow(1, 25, 15).unwrap().flatten_all().unwrap();
        assert_ne!(
            tail(&before).to_vec1::<f32>().unwrap(),
            tail(&after).to_vec1::<f32>().unwrap()
        );
    }

    #[test]
    fn cnn_ignores_a_window_level() {
        let split = wavy_split();
        let model = CausalCnn::new(&split, 5).unwrap();
        let frames = frames_tensor(&split.train, &[0, 1], DTYPE).unwrap();
        let level = Tensor::new(&[0.5f32, -0.25, 2.0], &Device::Cpu).unwrap();
        let shifted = frames.broadcast_add(&level).unwrap();
        let a = model.logits(&frames).unwrap().flatten_all().unwrap();
        let b = model.logits(&shifted).unwrap().flatten_all().unwrap();
        let gap = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(gap < 1e-4, "{gap}");
    }

    #[test]
    fn delayed_shifts_in_zeros() {
        let x = Tensor::arange(1f32, 5., &Device::Cpu)
            .unwrap()
            .reshape((1, 4, 1))
            .unwrap();
        let d = delayed(&x, 2).unwrap().flatten_all().unwrap();
        assert_eq!(d.to_vec1::<f32>().unwrap(), vec![0., 0., 1., 2.]);
        let d = delayed(&x, 9).unwrap().flatten_all().unwrap();
        assert_eq!(d.to_vec1::<f32>().unwrap(), vec![0.; 4]);
    }

    #[test]
    fn majority_ties_go_to_the_lowest_class() {
        let windows = |labels: Vec<usize>| aether_dataset::Windows {
            input_dim: 1,
            window: 1,
            frames: vec![0.0; labels.len()],
            labels,
        };
        let split = Split {
            classes: vec!["a".into(), "b".into(), "c".into()],
            train: windows(vec![2, 1, 1, 2, 0]),
            test: windows(vec![1, 2, 2]),
        };
        let report = majority(&split).unwrap();
        let m = report.held_out.unwrap();
        assert_eq!(m.confusion.counts[1][1] + m.confusion.counts[2][1], 3);
        assert!((m.accuracy - 1.0 / 3.0).abs() < 1e-15);
    }
}
