//! The model card written beside a trained `.rvne` (`model.rvne` →
//! `model.json`): what the numbers in the blob mean.
//!
//! Why a sidecar and not more header fields: the blob is what the device
//! needs (shape and weights, checksummed, `docs/rvne-format.md`); class
//! names, the training data, the metrics and the baselines are for people
//! and for the host tools, and change nothing the firmware computes.
//! `classify` and `demo` read the class names from it; everything else is
//! a record of how the model was made (`docs/training.md`).

use std::path::{Path, PathBuf};

use aether_domain::HeadConfig;
use aether_train::baselines::BaselineReport;
use aether_train::{EpochReport, Metrics, ModelOptions, Schedule};
use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// Identifies the file as ours, so a stray `model.json` is not misread.
pub(crate) const FORMAT: &str = "aether-temporal model card";

/// The model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Sidecar {
    /// Always [`FORMAT`].
    pub(crate) format: String,
    /// Class names in index order: logit `i` is `classes[i]`.
    pub(crate) classes: Vec<String>,
    /// Frames per training window (and the window to classify with).
    pub(crate) window: usize,
    /// Hop between training windows.
    pub(crate) hop: usize,
    /// Values per frame.
    pub(crate) input_dim: usize,
    /// Attention layers.
    pub(crate) n_layers: usize,
    /// The head config the model was trained with.
    pub(crate) head: HeadConfig,
    /// Model options beyond version 1.
    pub(crate) options: ModelOptions,
    /// Where the data came from (`synthetic (…)` or the CSV paths).
    pub(crate) data: String,
    /// Windows on each side of the split.
    pub(crate) train_windows: usize,
    /// Held-out windows.
    pub(crate) test_windows: usize,
    /// The optimisation settings, seed included.
    pub(crate) schedule: Schedule,
    /// The element type of the blob (`f32` or `f16`).
    pub(crate) element_type: String,
    /// Wall-clock seconds of the model's training (baselines excluded).
    pub(crate) training_seconds: f64,
    /// Held-out metrics of the final weights, confusion matrix included.
    pub(crate) held_out: Option<Metrics>,
    /// Every epoch's loss and held-out metrics.
    pub(crate) history: Vec<EpochReport>,
    /// The baselines on the same split.
    pub(crate) baselines: Vec<BaselineReport>,
    /// The command that made the model.
    pub(crate) command: String,
}

/// `model.json` for `model.rvne`.
pub(crate) fn path_for(model: &Path) -> PathBuf {
    model.with_extension("json")
}

/// The class names of the sidecar beside `model`, if there is one.
///
/// # Errors
/// A sidecar that exists but is not a model card, or whose class count is
/// not `n_classes`: silently ignoring it would print wrong names.
pub(crate) fn class_names(model: &Path, n_classes: usize) -> Result<Option<Vec<String>>, CliError> {
    let path = path_for(model);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let bad = |why: String| CliError::Sidecar {
        path: path.clone(),
        why,
    };
    let card: ClassesOnly = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if card.format != FORMAT {
        return Err(bad(format!("format is {:?}, not {FORMAT:?}", card.format)));
    }
    if card.classes.len() != n_classes {
        return Err(bad(format!(
            "names {} classes; the model has {n_classes}",
            card.classes.len()
        )));
    }
    Ok(Some(card.classes))
}

/// The part of a card `classify` needs; the rest may come from a newer
/// version of the tool.
#[derive(Deserialize)]
struct ClassesOnly {
    format: String,
    classes: Vec<String>,
}
