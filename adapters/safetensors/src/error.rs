//! Why a safetensors file could not become weights, or weights a file.
//!
//! Each variant names the tensor or metadata key at fault, because the
//! person reading the message is usually holding a file saved from PyTorch
//! and needs to know which tensor to fix (`docs/safetensors.md`).

use std::path::PathBuf;

use aether_model::{NonFiniteValue, ShapeError};

/// Why a conversion between [`ModelWeights`](aether_model::ModelWeights)
/// and safetensors failed.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    /// The bytes are not a well-formed safetensors file.
    #[error("not a safetensors file: {source}")]
    NotSafetensors {
        /// The `safetensors` crate's parse error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// A tensor the model needs is absent.
    #[error("tensor `{name}` is missing")]
    MissingTensor {
        /// Its name.
        name: String,
    },
    /// A tensor that is not one of the model's (refused rather than
    /// dropped, so a misnamed tensor is never silently ignored).
    /// A version-2 tensor in a version-1 file, or one the declared options
    /// leave out (`layers.0.norm1_shift` under `norm = rms`), is one too.
    #[error(
        "unexpected tensor `{name}`; it is not one of the model's tensors for the file's \
         version and options (docs/safetensors.md lists them; version-2 tensors need \
         `version` \"2\" and the option keys in __metadata__)"
    )]
    UnexpectedTensor {
        /// Its name.
        name: String,
    },
    /// Layers are not numbered `0, 1, …, L-1`.
    #[error(
        "layer {missing} is missing but layer {next} is present; layers must be numbered 0..L-1"
    )]
    LayerGap {
        /// The first absent layer number.
        missing: usize,
        /// The next layer number present after it.
        next: usize,
    },
    /// A tensor stored as an element type other than F32, F16 or BF16.
    #[error("tensor `{name}` has dtype {dtype}; only F32, F16 and BF16 are accepted")]
    WrongDtype {
        /// Its name.
        name: String,
        /// Its element type.
        dtype: safetensors::Dtype,
    },
    /// `layers.0.wq` or `classifier`, which fix the model's shape, is not
    /// 2-D.
    #[error("tensor `{name}` has shape {shape:?}; it must be a 2-D [in, out] matrix")]
    NotMatrix {
        /// Its name.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A tensor's shape is not the one the model's shape implies.
    #[error(
        "tensor `{name}` has shape {actual:?}; expected {expected:?} (a matrix is [in, out], \
         a vector 1-D)"
    )]
    WrongShape {
        /// Its name.
        name: String,
        /// The shape the model needs: `[rows, cols]` for a matrix, `[n]`
        /// for a vector (`docs/safetensors.md`).
        expected: Vec<usize>,
        /// The shape in the file.
        actual: Vec<usize>,
    },
    /// A weight is NaN or infinite (on import, or on export: such a file
    /// could not be read back).
    #[error(
        "tensor `{name}` value {index} (row {row}, column {col}) is {value}; weights must be finite"
    )]
    NonFinite {
        /// The tensor.
        name: String,
        /// Flat row-major index within the tensor.
        index: usize,
        /// Row (input index).
        row: usize,
        /// Column (output index).
        col: usize,
        /// What it is.
        value: NonFiniteValue,
    },
    /// A finite weight too large for f16 (it would be stored as infinity).
    #[error(
        "tensor `{name}` value {index} (row {row}, column {col}) is {value}, outside f16's range \
         (|x| < 65520); export as F32"
    )]
    F16Overflow {
        /// The tensor.
        name: String,
        /// Flat row-major index within the tensor.
        index: usize,
        /// Row (input index).
        row: usize,
        /// Column (output index).
        col: usize,
        /// The weight.
        value: f32,
    },
    /// The head counts are neither in the metadata nor supplied.
    #[error(
        "the file's metadata has no `{key}` and no head counts were supplied; pass \
         (n_q_heads, n_kv_heads) as `heads`, or add `n_q_heads` and `n_kv_heads` to the \
         file's __metadata__"
    )]
    HeadsMissing {
        /// The absent metadata key.
        key: &'static str,
    },
    /// The metadata and the supplied head counts disagree.
    #[error("the file's metadata says {key} = {metadata}, but {supplied} was supplied")]
    HeadsDisagree {
        /// The metadata key.
        key: &'static str,
        /// Its value in the file.
        metadata: usize,
        /// The value supplied.
        supplied: usize,
    },
    /// `layers.0.wq`'s columns are not `n_q_heads × head_dim`.
    #[error("tensor `layers.0.wq` has {columns} columns, not a multiple of n_q_heads {n_q_heads}")]
    HeadsDontDivide {
        /// Columns of `layers.0.wq`.
        columns: usize,
        /// Query heads.
        n_q_heads: usize,
    },
    /// A metadata value that must be a positive integer is not.
    #[error("metadata `{key}` is {value:?}; it must be a positive integer")]
    BadMetadata {
        /// The key.
        key: &'static str,
        /// Its value.
        value: String,
    },
    /// The `format` metadata names another format.
    #[error("metadata `format` is {found:?}; this reader takes \"aether-temporal\" files")]
    WrongFormat {
        /// The value found.
        found: String,
    },
    /// The `version` metadata names a model version this code does not run.
    #[error("metadata `version` is {found:?}; this reader takes model version \"1\" or \"2\"")]
    WrongVersion {
        /// The value found.
        found: String,
    },
    /// A version-2 file without one of the option keys. Refused rather
    /// than defaulted, because an option read as off would make the file's
    /// own tensors look unexpected and hide the real omission.
    #[error(
        "metadata `version` is \"2\" but `{key}` is absent; a version-2 file records norm, \
         conv_taps and mlp_hidden"
    )]
    OptionMissing {
        /// The absent key.
        key: &'static str,
    },
    /// A version-2 option key whose value is not one the model allows.
    #[error("metadata `{key}` is {value:?}; it must be {allowed}")]
    BadOption {
        /// The key.
        key: &'static str,
        /// Its value.
        value: String,
        /// What the key accepts, in words.
        allowed: &'static str,
    },
    /// The shape the tensors imply is not a valid model.
    #[error("the tensors imply an invalid model shape: {0}")]
    Shape(#[from] ShapeError),
    /// The `safetensors` crate refused to serialize the tensors.
    #[error("could not serialize the tensors: {source}")]
    Serialize {
        /// The crate's error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
