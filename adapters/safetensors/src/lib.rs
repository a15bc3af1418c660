//! safetensors files to and from the model's [`ModelWeights`]
//! (`docs/safetensors.md`).
//!
//! Why this crate: PyTorch users keep weights in safetensors files, and we
//! want them to bring their weights to the model and take ours back
//! without learning the `.rvne` format. The layout of a compatible file —
//! tensor names, `[in, out]` shapes, the `__metadata__` keys — is defined
//! in `docs/safetensors.md`; this crate is the one place that reads and
//! writes it, so the CLI and the tests agree on it by construction.
//!
//! **Invariant:** [`from_bytes`] never panics and never allocates more than
//! a small multiple of its input, whatever the bytes: every tensor's size
//! is checked against the file (by the `safetensors` crate) and against the
//! shape implied by `layers.0.wq`, `classifier` and the metadata's options
//! before a weight buffer is allocated. A file is accepted only when it
//! holds exactly the model's tensors, so nothing is ever silently dropped
//! or invented.
//!
//! ```
//! use aether_model::{ModelShape, ModelWeights};
//! use aether_safetensors::{Dtype, from_bytes, to_bytes};
//!
//! let weights = ModelWeights::random(ModelShape::DEFAULT_AETHER, 7)?;
//! let bytes = to_bytes(&weights, Dtype::F32)?;
//! assert_eq!(from_bytes(&bytes, None)?, weights);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod export;
mod import;
mod names;

use std::path::Path;

use aether_model::ModelWeights;

pub use crate::error::SafetensorsError;
pub use crate::names::{
    CLASSIFIER, FINAL_NORM_SCALE, FINAL_NORM_SHIFT, FORMAT, MODEL_VERSION, MODEL_VERSION_2,
    layer_tensor_name,
};

/// The element type every tensor of an exported file is stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// IEEE binary32: exact, the model's own precision.
    F32,
    /// IEEE binary16, rounded to nearest even: half the size, for sharing
    /// weights whose values fit f16's range (|x| < 65520).
    F16,
}

/// The safetensors bytes of `weights`, every tensor stored as `dtype`, with
/// the `__metadata__` keys of `docs/safetensors.md`: a model without
/// options as a version-1 file, one with any version-2 option as a
/// version-2 file recording the options.
///
/// # Errors
/// [`SafetensorsError::NonFinite`] for a NaN or infinite weight (the file
/// could not be read back), [`SafetensorsError::F16Overflow`] for a finite
/// weight that f16 cannot hold, [`SafetensorsError::Serialize`] if the
/// `safetensors` crate refuses the tensors.
pub fn to_bytes(weights: &ModelWeights, dtype: Dtype) -> Result<Vec<u8>, SafetensorsError> {
    export::to_bytes(weights, dtype)
}

/// Weights from safetensors bytes.
///
/// `heads` supplies `(n_q_heads, n_kv_heads)` when the file's metadata
/// lacks them (a file saved from PyTorch by hand usually does); when both
/// are present they must agree.
///
/// # Errors
/// One [`SafetensorsError`] variant per problem, naming the tensor or the
/// metadata key (`docs/safetensors.md` lists the checks in order).
pub fn from_bytes(
    bytes: &[u8],
    heads: Option<(usize, usize)>,
) -> Result<ModelWeights, SafetensorsError> {
    import::from_bytes(bytes, heads)
}

/// Writes [`to_bytes`] of `weights` to `path`, replacing any file there.
///
/// # Errors
/// As [`to_bytes`], or [`SafetensorsError::Io`] naming `path`.
pub fn write_file(
    path: &Path,
    weights: &ModelWeights,
    dtype: Dtype,
) -> Result<(), SafetensorsError> {
    let bytes = to_bytes(weights, dtype)?;
    std::fs::write(path, bytes).map_err(|source| SafetensorsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads `path` and converts it with [`from_bytes`].
///
/// # Errors
/// [`SafetensorsError::Io`] naming `path`, or any [`from_bytes`] error.
pub fn read_file(
    path: &Path,
    heads: Option<(usize, usize)>,
) -> Result<ModelWeights, SafetensorsError> {
    let bytes = std::fs::read(path).map_err(|source| SafetensorsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    from_bytes(&bytes, heads)
}
