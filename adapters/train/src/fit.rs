//! The training loop every trainable model here shares (the attention
//! model and the baselines): seeded shuffling, mini-batches, AdamW on the
//! cross-entropy of the logits, a held-out evaluation after each epoch.
//!
//! Why shared: a baseline is only a fair comparison when it sees the same
//! windows in the same order, with the same optimizer, epochs and seed.

use aether_dataset::{Split, Windows};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::metrics::Metrics;
use crate::rng::SplitMix64;

/// Optimisation settings shared by the model and the trained baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Passes over the training windows.
    pub epochs: usize,
    /// Windows per optimizer step.
    pub batch_size: usize,
    /// AdamW step size at the start; it decays along a half cosine to 0
    /// at the last step (large steps to find the basin, small ones to
    /// settle in it, without another knob).
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Seeds the initial weights and the batch order.
    pub seed: u64,
}

impl Schedule {
    fn validate(&self) -> Result<(), TrainError> {
        let setting = |name, reason| Err(TrainError::Setting { name, reason });
        if self.epochs == 0 {
            return setting("epochs", "train for at least one epoch");
        }
        if self.batch_size == 0 {
            return setting("batch_size", "a batch holds at least one window");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return setting("learning_rate", "must be finite and positive");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return setting("weight_decay", "must be finite and not negative");
        }
        Ok(())
    }
}

/// What training reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// One optimizer step finished (for a progress bar).
    Batch {
        /// Epoch (0-based).
        epoch: usize,
        /// Epochs in the run.
        epochs: usize,
        /// Batch within the epoch (0-based).
        batch: usize,
        /// Batches per epoch.
        batches: usize,
        /// The batch's mean cross-entropy.
        loss: f64,
    },
    /// One epoch finished.
    Epoch(EpochReport),
}

/// The summary of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Epochs in the run.
    pub epochs: usize,
    /// Mean cross-entropy over the epoch's training windows (each batch's
    /// loss weighted by its size), measured while the weights changed.
    pub train_loss: f64,
    /// Held-out metrics after the epoch; `None` when the split has no
    /// held-out window.
    pub held_out: Option<Metrics>,
}

/// A model the loop can train: logits from a batch of windows, and the
/// weights to optimise.
pub(crate) trait Classifier {
    /// `[B, C]` logits of `[B, N, D]` windows.
    fn logits(&self, frames: &Tensor) -> Result<Tensor, TrainError>;
    /// The trainable tensors.
    fn vars(&self) -> Vec<Var>;
}

/// Checks the shapes and labels of one side of a split.
pub(crate) fn check_windows(
    side: &'static str,
    windows: &Windows,
    classes: usize,
) -> Result<(), TrainError> {
    let bad = |reason: String| Err(TrainError::BadWindows { side, reason });
    if windows.is_empty() {
        return Ok(());
    }
    if windows.window == 0 || windows.input_dim == 0 {
        return bad(format!(
            "window {} and input_dim {} must both be at least 1",
            windows.window, windows.input_dim
        ));
    }
    let expected = windows.len() * windows.window * windows.input_dim;
    if windows.frames.len() != expected {
        return bad(format!(
            "{} values for {} windows of {} x {}; expected {expected}",
            windows.frames.len(),
            windows.len(),
            windows.window,
            windows.input_dim
        ));
    }
    if let Some(i) = windows.labels.iter().position(|&l| l >= classes) {
        return bad(format!(
            "window {i} has label {}, but there are {classes} classes",
            windows.labels[i]
        ));
    }
    if let Some(i) = windows.frames.iter().position(|v| !v.is_finite()) {
        return bad(format!(
            "value {} of window {} is {}; frames must be finite",
            i % windows.input_dim,
            i / (windows.window * windows.input_dim),
            windows.frames[i]
        ));
    }
    Ok(())
}

/// Checks a split for training: a non-empty training side, at least two
/// classes, and a held-out side of the same frame width.
pub(crate) fn check_split(data: &Split) -> Result<(), TrainError> {
    let classes = data.classes.len();
    if classes < 2 {
        return Err(TrainError::TooFewClasses { classes });
    }
    if data.train.is_empty() {
        return Err(TrainError::EmptyTrainingSet);
    }
    check_windows("train", &data.train, classes)?;
    check_windows("test", &data.test, classes)?;
    if !data.test.is_empty() && data.test.input_dim != data.train.input_dim {
        return Err(TrainError::BadWindows {
            side: "test",
            reason: format!(
                "frames of {} values; the training frames have {}",
                data.test.input_dim, data.train.input_dim
            ),
        });
    }
    Ok(())
}

/// Windows `indices` as a `[B, N, D]` tensor of `dtype`.
pub(crate) fn frames_tensor(
    windows: &Windows,
    indices: &[usize],
    dtype: DType,
) -> Result<Tensor, TrainError> {
    let mut values = Vec::with_capacity(indices.len() * windows.window * windows.input_dim);
    for &i in indices {
        values.extend_from_slice(windows.window_frames(i));
    }
    let shape = (indices.len(), windows.window, windows.input_dim);
    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(dtype)?)
}

/// The labels of windows `indices` as a `[B]` u32 tensor.
fn labels_tensor(windows: &Windows, indices: &[usize]) -> Result<Tensor, TrainError> {
    let labels: Vec<u32> = indices
        .iter()
        .map(|&i| u32::try_from(windows.labels[i]).unwrap_or(u32::MAX))
        .collect();
    Ok(Tensor::from_vec(labels, indices.len(), &Device::Cpu)?)
}

/// The predicted class of every window, `batch` windows at a time.
pub(crate) fn predict(
    model: &impl Classifier,
    windows: &Windows,
    batch: usize,
    dtype: DType,
) -> Result<Vec<usize>, TrainError> {
    let all: Vec<usize> = (0..windows.len()).collect();
    let mut predicted = Vec::with_capacity(windows.len());
    for indices in all.chunks(batch.max(1)) {
        let logits = model
            .logits(&frames_tensor(windows, indices, dtype)?)?
            .detach();
        let best = logits.argmax(1)?.to_vec1::<u32>()?;
        predicted.extend(best.into_iter().map(|c| c as usize));
    }
    Ok(predicted)
}

/// Held-out metrics, or `None` without held-out windows.
pub(crate) fn evaluate(
    model: &impl Classifier,
    data: &Split,
    batch: usize,
    dtype: DType,
) -> Result<Option<Metrics>, TrainError> {
    if data.test.is_empty() {
        return Ok(None);
    }
    let predicted = predict(model, &data.test, batch, dtype)?;
    Ok(Some(Metrics::new(
        data.classes.len(),
        &data.test.labels,
        &predicted,
    )))
}

/// Trains `model` on `data.train` with AdamW; returns one report per
/// epoch. The batch order is a seeded shuffle per epoch.
///
/// # Errors
/// [`TrainError::NonFiniteLoss`] naming the first batch whose loss was
/// not finite (the weights are left as they were before that step);
/// setting and tensor errors.
pub(crate) fn fit(
    model: &impl Classifier,
    data: &Split,
    schedule: &Schedule,
    dtype: DType,
    observer: &mut dyn FnMut(Progress),
) -> Result<Vec<EpochReport>, TrainError> {
    schedule.validate()?;
    check_split(data)?;
    let mut optimizer = AdamW::new(
        model.vars(),
        ParamsAdamW {
            lr: schedule.learning_rate,
            weight_decay: schedule.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let mut rng = SplitMix64::fork(schedule.seed, 2);
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    let batches = order.len().div_ceil(schedule.batch_size);
    let steps = (batches * schedule.epochs) as f64;
    let mut history = Vec::with_capacity(schedule.epochs);
    for epoch in 0..schedule.epochs {
        rng.shuffle(&mut order);
        let mut loss_sum = 0.0;
        for (batch, indices) in order.chunks(schedule.batch_size).enumerate() {
            let step = (epoch * batches + batch) as f64;
            optimizer.set_learning_rate(
                schedule.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * step / steps).cos()),
            );
            let frames = frames_tensor(&data.train, indices, dtype)?;
            let labels = labels_tensor(&data.train, indices)?;
            let logits = model.logits(&frames)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !value.is_finite() {
                return Err(TrainError::NonFiniteLoss { epoch, batch });
            }
            optimizer.backward_step(&loss)?;
            loss_sum += value * indices.len() as f64;
            observer(Progress::Batch {
                epoch,
                epochs: schedule.epochs,
                batch,
                batches,
                loss: value,
            });
        }
        let report = EpochReport {
            epoch,
            epochs: schedule.epochs,
            train_loss: loss_sum / order.len() as f64,
            held_out: evaluate(model, data, schedule.batch_size, dtype)?,
        };
        observer(Progress::Epoch(report.clone()));
        history.push(report);
    }
    Ok(history)
}
