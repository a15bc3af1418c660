//! `train` and `fine_tune`: the entry points the CLI calls.
//!
//! Training runs in f32 (the kernel's arithmetic); the model's dtype is
//! only a parameter so the gradient check can run the same code in f64.

use aether_dataset::Split;
use aether_domain::HeadConfig;
use aether_model::ModelWeights;
use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::fit::{Classifier, EpochReport, Progress, Schedule, check_split, evaluate, fit};
use crate::metrics::Metrics;
use crate::net::{Architecture, ModelOptions, TemporalNet};

/// What to train: the model's attention and depth, and the schedule. The
/// frame width D and the class count C come from the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The attention head; its `backend` picks the sparse pattern
    /// (`sparse`, `reference`) or plain causal attention (`dense`).
    pub head: HeadConfig,
    /// Attention layers L.
    pub n_layers: usize,
    /// The version-2 options (`docs/model.md`); the default, every option
    /// off, is version 1.
    #[serde(default)]
    pub options: ModelOptions,
    /// Epochs, batch size, learning rate, weight decay, seed.
    pub schedule: Schedule,
}

/// The hidden width of the default model's per-layer MLP.
const DEFAULT_MLP_HIDDEN: usize = 32;
/// The default model's input centring: rate 2^-7 (a mean over about the
/// last 128 frames, 2.6 s at 50 Hz) and gain 2^3.
const DEFAULT_CENTRE_SHIFT: usize = 7;
const DEFAULT_CENTRE_GAIN_LOG2: usize = 3;
/// The default model's pooled readout: rate 2^-6 (about the last 64
/// frames, the shortest span the synthetic set's events need).
const DEFAULT_POOL_SHIFT: usize = 6;

impl Default for TrainConfig {
    /// The default AETHER model of version 2 (`docs/model.md`): the
    /// default shape with a 32-wide MLP per layer, input centring and a
    /// pooled readout, and 30 epochs. Why: `docs/training.md` ("Choosing
    /// the version-2 default", "The hard-set gap") — of the layer
    /// options only the MLP helped on both synthetic sets, 30 epochs
    /// lifted it past 95 % where 20 did not, and centring with pooling
    /// took the hard set from 78 % to the CNN's level.
    fn default() -> Self {
        Self {
            head: HeadConfig::default_aether(),
            n_layers: 2,
            options: ModelOptions {
                mlp_hidden: DEFAULT_MLP_HIDDEN,
                centre_shift: DEFAULT_CENTRE_SHIFT,
                centre_gain_log2: DEFAULT_CENTRE_GAIN_LOG2,
                pool_shift: DEFAULT_POOL_SHIFT,
                ..ModelOptions::default()
            },
            schedule: Schedule {
                epochs: 30,
                batch_size: 16,
                learning_rate: 1e-2,
                weight_decay: 1e-4,
                seed: 1,
            },
        }
    }
}

/// A finished training run.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// The weights, f32 in body order, with their shape: what `.rvne`
    /// export and the kernel model take.
    pub weights: ModelWeights,
    /// One report per epoch.
    pub history: Vec<EpochReport>,
    /// Held-out metrics of the final weights (`None` without held-out
    /// windows).
    pub held_out: Option<Metrics>,
}

impl Classifier for TemporalNet {
    fn logits(&self, frames: &Tensor) -> Result<Tensor, TrainError> {
        Self::logits(self, frames)
    }

    fn vars(&self) -> Vec<Var> {
        Self::vars(self)
    }
}

/// Trains a model with seeded random initial weights on `data.train`,
/// reporting progress to `observer`. The same config and data give the
/// same weights, bit for bit.
///
/// # Errors
/// [`TrainError`]: an invalid config or split, or a non-finite loss.
pub fn train(
    config: &TrainConfig,
    data: &Split,
    observer: &mut dyn FnMut(Progress),
) -> Result<Trained, TrainError> {
    check_split(data)?;
    let architecture = Architecture {
        input_dim: data.train.input_dim,
        n_classes: data.classes.len(),
        n_layers: config.n_layers,
        head: config.head.clone(),
        options: config.options.clone(),
    };
    let net = TemporalNet::new(architecture, config.schedule.seed, DType::F32)?;
    run(&net, config, data, observer)
}

/// Continues training from `initial` (e.g. an imported `.rvne` model).
/// `config.n_layers`, `config.options` and the heads of `config.head`
/// must match the weights; the seed still fixes the batch order.
///
/// # Errors
/// As [`train`], and [`TrainError::Weights`] when `initial` does not fit
/// the config or the data (frame width, class count, options).
pub fn fine_tune(
    config: &TrainConfig,
    initial: &ModelWeights,
    data: &Split,
    observer: &mut dyn FnMut(Progress),
) -> Result<Trained, TrainError> {
    check_split(data)?;
    let net = TemporalNet::from_weights(initial, config.head.clone(), DType::F32)?;
    let a = net.architecture();
    let expected = (config.n_layers, data.train.input_dim, data.classes.len());
    if (a.n_layers, a.input_dim, a.n_classes) != expected {
        return Err(TrainError::Weights(format!(
            "the weights have {} layers, input_dim {}, {} classes; the config and data need \
             {}, {}, {}",
            a.n_layers, a.input_dim, a.n_classes, expected.0, expected.1, expected.2
        )));
    }
    if a.options != config.options {
        return Err(TrainError::Weights(format!(
            "the weights have options {:?}; the config has {:?}",
            a.options, config.options
        )));
    }
    run(&net, config, data, observer)
}

fn run(
    net: &TemporalNet,
    config: &TrainConfig,
    data: &Split,
    observer: &mut dyn FnMut(Progress),
) -> Result<Trained, TrainError> {
    let history = fit(net, data, &config.schedule, DType::F32, observer)?;
    let held_out = match history.last() {
        Some(last) => last.held_out.clone(),
        None => evaluate(net, data, config.schedule.batch_size, DType::F32)?,
    };
    Ok(Trained {
        weights: net.to_weights()?,
        history,
        held_out,
    })
}
