//! The one error type of the crate, so a trainer or a CLI can report any
//! data problem the same way (`docs/training-data.md` lists the rules
//! each variant enforces).

use std::io;

/// Everything that can be wrong with training data or with a request for
/// windows. Every message names the offending value, sequence or place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// A window must hold at least one frame.
    #[error("window must be at least 1 frame, got 0")]
    ZeroWindow,
    /// Windows must advance, or there would be infinitely many.
    #[error("hop must be at least 1 frame, got 0")]
    ZeroHop,
    /// A frame must hold at least one value.
    #[error("input_dim must be at least 1, got 0")]
    ZeroInputDim,
    /// Every sequence was shorter than the window, so there is nothing to
    /// train or test on.
    #[error(
        "no window of {window} frames: every sequence is shorter (the longest, `{longest_id}`, has {longest} frames)"
    )]
    NoWindows {
        /// The requested window.
        window: usize,
        /// The longest sequence's id (empty when there is no sequence).
        longest_id: String,
        /// Its length in frames.
        longest: usize,
    },
    /// One side of a split has sequences but none is as long as the window.
    #[error(
        "the {side} side of the split has no window of {window} frames: its {sequences} sequence(s) are all shorter"
    )]
    EmptySide {
        /// `"train"` or `"test"`.
        side: &'static str,
        /// The requested window.
        window: usize,
        /// How many sequences that side holds.
        sequences: usize,
    },
    /// A split by sequence needs one sequence on each side.
    #[error("a split needs at least 2 sequences, got {0}")]
    TooFewSequences(usize),
    /// `test_fraction` outside `(0, 1)` (or NaN).
    #[error("test_fraction must be strictly between 0 and 1, got {0}")]
    BadFraction(f64),
    /// Two files with different frame widths cannot share a model.
    #[error(
        "input_dim mismatch: the training data has {train} values per frame, the test data {test}"
    )]
    InputDimMismatch {
        /// The training recordings' `input_dim`.
        train: usize,
        /// The test recordings' `input_dim`.
        test: usize,
    },
    /// Recordings built in code whose parts do not fit together.
    #[error("sequence `{id}`: {problem}")]
    BadSequence {
        /// The sequence's id.
        id: String,
        /// What is wrong.
        problem: String,
    },
    /// Two sequences with one id: a split by id would be ambiguous.
    #[error("sequence id `{0}` is used by more than one sequence")]
    DuplicateSequence(String),
    /// Two classes with one name: labels naming either would be ambiguous.
    #[error("class name `{0}` is listed more than once")]
    DuplicateClass(String),
    /// A class name or sequence id the CSV cannot carry unchanged.
    #[error("{kind} `{name}` cannot be written as CSV: {reason}")]
    BadName {
        /// `"class name"` or `"sequence id"`.
        kind: &'static str,
        /// The name, as given.
        name: String,
        /// Why not.
        reason: &'static str,
    },
    /// A labelled CSV text that breaks the format.
    #[error("{file}, line {line}, column {column}: {problem}")]
    Csv {
        /// The file name (or the name the caller gave the text).
        file: String,
        /// 1-based line number.
        line: usize,
        /// 1-based field number (`label` is column 1).
        column: usize,
        /// What is wrong.
        problem: String,
    },
    /// The CSV file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path as given.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The CSV could not be written.
    #[error("cannot write the labelled CSV: {0}")]
    Write(#[source] io::Error),
    /// A synthetic-set configuration the generator cannot honour.
    #[error("synthetic config: {field} {problem}")]
    BadSynthConfig {
        /// The `SynthConfig` field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}
