//! Training data for the temporal model (`docs/training-data.md`).
//!
//! Everything a trainer or an evaluation needs arrives here as
//! [`Windows`]: fixed-length windows of feature frames with one class
//! label each, cut from labelled recordings (real ones read from CSV, or
//! synthetic ones from the generator), already split into a training and
//! a held-out side by recording.

/// Labelled windows of `window` frames of `input_dim` values each.
///
/// Why one flat buffer: a trainer turns it into one `[n][window][D]`
/// tensor without copying window by window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Windows {
    /// Values per frame (D).
    pub input_dim: usize,
    /// Frames per window.
    pub window: usize,
    /// Row-major `[len][window][input_dim]`, oldest frame first in each
    /// window.
    pub frames: Vec<f32>,
    /// The class index of each window (an index into the data set's class
    /// names), `len` of them.
    pub labels: Vec<usize>,
}

impl Windows {
    /// Number of windows.
    #[must_use]
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// No window.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The frames of window `i` (`window × input_dim` values).
    ///
    /// # Panics
    /// When `i >= len()`.
    #[must_use]
    pub fn window_frames(&self, i: usize) -> &[f32] {
        let size = self.window * self.input_dim;
        &self.frames[i * size..(i + 1) * size]
    }
}

/// A data set ready for training: class names and both sides of the split.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Split {
    /// Class names in index order (a label `i` means `classes[i]`).
    pub classes: Vec<String>,
    /// Windows to train on.
    pub train: Windows,
    /// Held-out windows, from recordings not in `train`.
    pub test: Windows,
}
