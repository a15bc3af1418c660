//! The training bridge for the AETHER temporal model (`docs/training.md`).
//!
//! The model of `docs/model.md` is rebuilt from candle tensors so autograd
//! can train it, with the attention pattern of `docs/attention.md`
//! expressed as an additive mask plus landmark pseudo-tokens (block means
//! of keys and values). The candidate sets come from
//! `aether_domain::SparsePattern`, the one implementation the kernels use,
//! so trained weights mean the same thing to the kernel: the parity tests
//! (`tests/parity.rs`) check that the trainer's forward pass and the
//! kernel model's agree on exported weights.
//!
//! - [`train`] / [`fine_tune`]: AdamW on the cross-entropy of the
//!   last-frame logits, deterministic for a seed, with [`Progress`]
//!   callbacks for a progress bar and per-epoch metrics.
//! - [`TemporalNet`]: the model itself, version 1 or with the version-2
//!   options of [`ModelOptions`] (pre-norm, causal convolution, MLP);
//!   [`TemporalNet::to_weights`] and [`TemporalNet::from_weights`]
//!   convert to and from the kernel's weights type, options included.
//! - [`Metrics`]: accuracy, macro-F1, confusion matrix.
//! - [`baselines`]: majority class, a linear probe on window statistics,
//!   a causal 1D-CNN, trained the same way.

pub mod baselines;
mod error;
mod fit;
mod interop;
mod mask;
mod metrics;
mod net;
mod rng;
mod train;

pub use error::TrainError;
pub use fit::{EpochReport, Progress, Schedule};
pub use metrics::{ConfusionMatrix, Metrics};
pub use net::{Architecture, ModelOptions, Norm, TemporalNet};
pub use train::{TrainConfig, Trained, fine_tune, train};
