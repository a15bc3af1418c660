//! Training data for the temporal model (`docs/training-data.md`).
//!
//! Everything a trainer or an evaluation needs arrives here as
//! [`Windows`]: fixed-length windows of feature frames with one class
//! label each, cut from labelled recordings (real ones read from CSV, or
//! synthetic ones from the generator), already split into a training and
//! a held-out side by recording.
//!
//! - [`Recordings`] holds labelled sequences; [`Recordings::windows`],
//!   [`Recordings::split`] and [`split_files`] cut them into windows.
//! - [`csv`] reads and writes the labelled CSV format.
//! - [`synthetic`] generates the synthetic CSI-feature set.

pub mod csv;
mod error;
mod rng;
pub mod synthetic;

use std::collections::HashSet;

pub use error::DatasetError;

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

/// Labelled recordings: whole sequences of frames, one class label per
/// frame, before any windowing.
///
/// Why keep whole sequences: a held-out split must be by recording
/// (windows of one recording overlap and are near-copies of each other),
/// so the recording boundaries must survive until the split.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recordings {
    /// Values per frame (D).
    pub input_dim: usize,
    /// Class names in index order.
    pub classes: Vec<String>,
    /// The recordings.
    pub sequences: Vec<Sequence>,
}

/// One recording.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sequence {
    /// Unique within its [`Recordings`]; the unit of the held-out split.
    pub id: String,
    /// Row-major `[len][input_dim]`, oldest frame first.
    pub frames: Vec<f32>,
    /// The class index of each frame.
    pub labels: Vec<usize>,
}

impl Sequence {
    /// Number of frames.
    #[must_use]
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// No frame.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

impl Recordings {
    /// Windows of `window` frames cut from each sequence every `hop`
    /// frames, each labelled by its last frame (`docs/training-data.md`,
    /// "Windows").
    ///
    /// A sequence shorter than the window gives no window (a data set may
    /// mix lengths); getting no window at all is an error.
    ///
    /// # Errors
    /// [`DatasetError::ZeroWindow`], [`DatasetError::ZeroHop`], the
    /// consistency errors of [`Recordings::validate`], and
    /// [`DatasetError::NoWindows`].
    pub fn windows(&self, window: usize, hop: usize) -> Result<Windows, DatasetError> {
        check_cut(window, hop)?;
        self.validate()?;
        let out = cut(self.input_dim, self.sequences.iter(), window, hop, None);
        if out.is_empty() {
            return Err(self.no_windows(window));
        }
        Ok(out)
    }

    /// A held-out split by sequence (`docs/training-data.md`, "Split"):
    /// the sequences are shuffled with `seed`, the first
    /// `round(test_fraction × n)` (at least 1, at most n − 1) are the test
    /// side, and both sides are then windowed in their original order.
    ///
    /// Why by sequence: windows of one recording overlap, so a split by
    /// window would test on near-copies of training windows.
    ///
    /// # Errors
    /// As [`Recordings::windows`], plus [`DatasetError::BadFraction`],
    /// [`DatasetError::TooFewSequences`] and [`DatasetError::EmptySide`].
    pub fn split(
        &self,
        window: usize,
        hop: usize,
        test_fraction: f64,
        seed: u64,
    ) -> Result<Split, DatasetError> {
        check_cut(window, hop)?;
        if !(test_fraction > 0.0 && test_fraction < 1.0) {
            return Err(DatasetError::BadFraction(test_fraction));
        }
        self.validate()?;
        let n = self.sequences.len();
        if n < 2 {
            return Err(DatasetError::TooFewSequences(n));
        }
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = rng::SplitMix64::new(seed);
        for i in (1..n).rev() {
            order.swap(i, rng.int(0, i));
        }
        // n < 2^53, so the product and the rounding are exact enough; the
        // clamp keeps one sequence on each side.
        let n_test = ((test_fraction * n as f64).round() as usize).clamp(1, n - 1);
        let mut is_test = vec![false; n];
        for &i in &order[..n_test] {
            is_test[i] = true;
        }
        let side = |test: bool| {
            self.sequences
                .iter()
                .zip(&is_test)
                .filter(move |&(_, &t)| t == test)
                .map(|(s, _)| s)
        };
        let train = cut(self.input_dim, side(false), window, hop, None);
        let test = cut(self.input_dim, side(true), window, hop, None);
        nonempty_sides(&train, n - n_test, &test, n_test, window)?;
        Ok(Split {
            classes: self.classes.clone(),
            train,
            test,
        })
    }

    /// Checks that the parts fit together: `input_dim ≥ 1`, each sequence's
    /// frames are `len × input_dim` values, every label names a class, class
    /// names and sequence ids are unique.
    ///
    /// # Errors
    /// [`DatasetError::ZeroInputDim`], [`DatasetError::BadSequence`],
    /// [`DatasetError::DuplicateClass`], [`DatasetError::DuplicateSequence`].
    pub fn validate(&self) -> Result<(), DatasetError> {
        if self.input_dim == 0 {
            return Err(DatasetError::ZeroInputDim);
        }
        let mut names = HashSet::new();
        if let Some(name) = self.classes.iter().find(|c| !names.insert(c.as_str())) {
            return Err(DatasetError::DuplicateClass(name.clone()));
        }
        let mut ids = HashSet::new();
        for sequence in &self.sequences {
            let bad = |problem: String| DatasetError::BadSequence {
                id: sequence.id.clone(),
                problem,
            };
            if sequence.frames.len() != sequence.labels.len() * self.input_dim {
                return Err(bad(format!(
                    "{} values for {} labels of {} values each (expected {})",
                    sequence.frames.len(),
                    sequence.labels.len(),
                    self.input_dim,
                    sequence.labels.len() * self.input_dim
                )));
            }
            if let Some((frame, &label)) = sequence
                .labels
                .iter()
                .enumerate()
                .find(|&(_, &l)| l >= self.classes.len())
            {
                return Err(bad(format!(
                    "frame {frame} has label {label}, but there are only {} classes",
                    self.classes.len()
                )));
            }
            if !ids.insert(sequence.id.as_str()) {
                return Err(DatasetError::DuplicateSequence(sequence.id.clone()));
            }
        }
        Ok(())
    }

    fn no_windows(&self, window: usize) -> DatasetError {
        let longest = self.sequences.iter().max_by_key(|s| s.len());
        DatasetError::NoWindows {
            window,
            longest_id: longest.map(|s| s.id.clone()).unwrap_or_default(),
            longest: longest.map_or(0, Sequence::len),
        }
    }
}

/// Evaluation on a separate file: train on every window of `train`, test
/// on every window of `test`. The classes are the union, `train`'s in its
/// order first, then those only `test` has, in `test`'s order; `test`'s
/// labels are renumbered to match.
///
/// # Errors
/// [`DatasetError::InputDimMismatch`], [`DatasetError::EmptySide`], and as
/// [`Recordings::windows`] for each file.
pub fn split_files(
    train: &Recordings,
    test: &Recordings,
    window: usize,
    hop: usize,
) -> Result<Split, DatasetError> {
    check_cut(window, hop)?;
    // The mismatch first: it explains any frame-length error that follows.
    if train.input_dim != test.input_dim {
        return Err(DatasetError::InputDimMismatch {
            train: train.input_dim,
            test: test.input_dim,
        });
    }
    train.validate()?;
    test.validate()?;
    let mut classes = train.classes.clone();
    let remap: Vec<usize> = test
        .classes
        .iter()
        .map(|name| {
            classes.iter().position(|c| c == name).unwrap_or_else(|| {
                classes.push(name.clone());
                classes.len() - 1
            })
        })
        .collect();
    let train_windows = cut(train.input_dim, train.sequences.iter(), window, hop, None);
    let test_windows = cut(
        test.input_dim,
        test.sequences.iter(),
        window,
        hop,
        Some(&remap),
    );
    nonempty_sides(
        &train_windows,
        train.sequences.len(),
        &test_windows,
        test.sequences.len(),
        window,
    )?;
    Ok(Split {
        classes,
        train: train_windows,
        test: test_windows,
    })
}

fn check_cut(window: usize, hop: usize) -> Result<(), DatasetError> {
    if window == 0 {
        return Err(DatasetError::ZeroWindow);
    }
    if hop == 0 {
        return Err(DatasetError::ZeroHop);
    }
    Ok(())
}

fn nonempty_sides(
    train: &Windows,
    train_sequences: usize,
    test: &Windows,
    test_sequences: usize,
    window: usize,
) -> Result<(), DatasetError> {
    for (side, windows, sequences) in [
        ("train", train, train_sequences),
        ("test", test, test_sequences),
    ] {
        if windows.is_empty() {
            return Err(DatasetError::EmptySide {
                side,
                window,
                sequences,
            });
        }
    }
    Ok(())
}

/// The windows of validated sequences; `remap` renumbers labels.
fn cut<'a>(
    input_dim: usize,
    sequences: impl Iterator<Item = &'a Sequence>,
    window: usize,
    hop: usize,
    remap: Option<&[usize]>,
) -> Windows {
    let mut out = Windows {
        input_dim,
        window,
        frames: Vec::new(),
        labels: Vec::new(),
    };
    for sequence in sequences {
        let len = sequence.len();
        if len < window {
            continue;
        }
        for start in (0..=len - window).step_by(hop) {
            out.frames.extend_from_slice(
                &sequence.frames[start * input_dim..(start + window) * input_dim],
            );
            let label = sequence.labels[start + window - 1];
            out.labels.push(remap.map_or(label, |r| r[label]));
        }
    }
    out
}

#[cfg(test)]
mod tests;
