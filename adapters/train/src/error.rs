//! Why training or evaluation stopped, as one error type for the CLI.
//!
//! Kept apart from the code that raises them so the CLI can match on a
//! stable set of causes without knowing which module found the problem.

use aether_domain::ConfigError;

/// Why a trainer call failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The head configuration is not computable.
    #[error("invalid head configuration: {0}")]
    Config(#[from] ConfigError),
    /// The training side of the split holds no window.
    #[error("the training set is empty")]
    EmptyTrainingSet,
    /// Fewer than two classes: a classifier needs at least two.
    #[error("the data set names {classes} classes; a classifier needs at least 2")]
    TooFewClasses {
        /// Classes named by the split.
        classes: usize,
    },
    /// The windows are malformed (frames length, frame width or a label
    /// that names no class).
    #[error("invalid {side} windows: {reason}")]
    BadWindows {
        /// `train` or `test`.
        side: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A hyper-parameter is out of range (zero epochs, zero batch size,
    /// zero layers, a non-positive learning rate, ...).
    #[error("invalid training setting {name}: {reason}")]
    Setting {
        /// The setting's name as `TrainConfig` spells it.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Imported weights do not fit the configured model.
    #[error("weights do not fit the model: {0}")]
    Weights(String),
    /// The loss of a batch was NaN or infinite; training stopped there
    /// because every later step would only spread it into the weights.
    /// The message counts from 1, as the per-epoch table does.
    #[error(
        "the training loss became non-finite at epoch {}, batch {}; lower the learning rate \
         or check the input scale",
        .epoch + 1,
        .batch + 1
    )]
    NonFiniteLoss {
        /// Epoch (0-based).
        epoch: usize,
        /// Batch within the epoch (0-based).
        batch: usize,
    },
    /// The tensor library refused an operation (a shape bug, not a user
    /// error).
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}
