//! Safetensors bytes to [`ModelWeights`], with the checks of
//! `docs/safetensors.md` in their documented order.
//!
//! Why this order: cheap, structural problems (a foreign file, a stray or
//! missing tensor, a dtype we cannot read) are reported before anything
//! that depends on them (the shape, which needs `layers.0.wq` and
//! `classifier`; the values, which need the shape), so the first error is
//! the one worth fixing first. Nothing is allocated for weights until every
//! tensor's shape matches the model's, and every name is visited in sorted
//! order so the same bad file always gives the same error.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aether_model::{
    Layout, MatrixKind, ModelShape, ModelWeights, NonFiniteValue, ShapeError, WeightMatrix,
};
use half::{bf16, f16};
use safetensors::SafeTensors;
use safetensors::tensor::TensorView;

use crate::error::SafetensorsError;
use crate::names::{
    CLASSIFIER, FORMAT, KEY_FORMAT, KEY_KV_HEADS, KEY_Q_HEADS, KEY_VERSION, MODEL_VERSION,
    layer_tensor_name, parse_tensor_name, tensor_name,
};

pub(crate) fn from_bytes(
    bytes: &[u8],
    heads: Option<(usize, usize)>,
) -> Result<ModelWeights, SafetensorsError> {
    guard_offsets(bytes)?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|source| SafetensorsError::NotSafetensors { source })?;
    let file = SafeTensors::deserialize(bytes)
        .map_err(|source| SafetensorsError::NotSafetensors { source })?;
    let metadata = header.metadata().clone().unwrap_or_default();

    check_format(&metadata)?;
    let tensors: BTreeMap<String, TensorView<'_>> = file.tensors().into_iter().collect();
    let n_layers = check_names(&tensors)?;
    for (name, view) in &tensors {
        check_dtype(name, view)?;
    }

    let wq_name = layer_tensor_name(0, MatrixKind::Query);
    let [input_dim, q_width] = matrix_shape(&wq_name, tensor(&tensors, &wq_name)?)?;
    let [_, n_classes] = matrix_shape(CLASSIFIER, tensor(&tensors, CLASSIFIER)?)?;
    let (n_q_heads, n_kv_heads) = resolve_heads(&metadata, heads)?;
    if n_q_heads == 0 {
        // Checked here because head_dim divides by it.
        return Err(ShapeError::ZeroDimension { field: KEY_Q_HEADS }.into());
    }
    if q_width % n_q_heads != 0 {
        return Err(SafetensorsError::HeadsDontDivide {
            columns: q_width,
            n_q_heads,
        });
    }
    let shape = ModelShape {
        input_dim,
        n_q_heads,
        n_kv_heads,
        head_dim: q_width / n_q_heads,
        n_layers,
        n_classes,
        options: aether_model::ModelOptions::V1,
    };
    let layout = shape.layout()?;

    for (matrix, span) in matrices(&layout).zip(layout.spans()) {
        let name = tensor_name(matrix);
        let actual = tensor(&tensors, &name)?.shape();
        if actual != [span.rows, span.cols] {
            return Err(SafetensorsError::WrongShape {
                name,
                expected: [span.rows, span.cols],
                actual: actual.to_vec(),
            });
        }
    }

    let mut weights = ModelWeights::zeros(shape)?;
    for (matrix, span) in matrices(&layout).zip(layout.spans()) {
        let name = tensor_name(matrix);
        let view = tensor(&tensors, &name)?;
        let out = &mut weights.values_mut()[span.range()];
        decode(view, out);
        if let Some(index) = out.iter().position(|v| !v.is_finite()) {
            return Err(SafetensorsError::NonFinite {
                index,
                row: index / span.cols,
                col: index % span.cols,
                value: NonFiniteValue::of(out[index]).unwrap_or(NonFiniteValue::NaN),
                name,
            });
        }
    }
    Ok(weights)
}

/// Refuses a header whose data offsets point past the end of the buffer,
/// before the `safetensors` crate sees it.
///
/// Why: `safetensors` 0.8 adds the last tensor's end offset to the header
/// size without checking for overflow, so a header whose offsets sum to
/// nearly `usize::MAX` makes it panic in a build with overflow checks (our
/// tests and debug builds). No valid file has an offset past its own end,
/// so refusing those first costs nothing and keeps [`from_bytes`] panic
/// free. Anything this cannot read is left for the crate to reject.
fn guard_offsets(bytes: &[u8]) -> Result<(), SafetensorsError> {
    let Some((len, rest)) = bytes.split_first_chunk::<8>() else {
        return Ok(());
    };
    let Some(header) = usize::try_from(u64::from_le_bytes(*len))
        .ok()
        .and_then(|n| rest.get(..n))
    else {
        return Ok(());
    };
    let Ok(serde_json::Value::Object(entries)) = serde_json::from_slice(header) else {
        return Ok(());
    };
    let limit = bytes.len() as u64;
    for (name, entry) in &entries {
        let end = entry
            .get("data_offsets")
            .and_then(serde_json::Value::as_array)
            .and_then(|offsets| offsets.get(1))
            .and_then(serde_json::Value::as_u64);
        if end.is_some_and(|end| end > limit) {
            return Err(SafetensorsError::NotSafetensors {
                source: safetensors::SafeTensorError::InvalidOffset(name.clone()),
            });
        }
    }
    Ok(())
}

/// `format` and `version`, when present, must be ours; other keys are
/// ignored (a PyTorch user may record anything there).
fn check_format(metadata: &HashMap<String, String>) -> Result<(), SafetensorsError> {
    if let Some(found) = metadata.get(KEY_FORMAT)
        && found != FORMAT
    {
        return Err(SafetensorsError::WrongFormat {
            found: found.clone(),
        });
    }
    if let Some(found) = metadata.get(KEY_VERSION)
        && found != MODEL_VERSION
    {
        return Err(SafetensorsError::WrongVersion {
            found: found.clone(),
        });
    }
    Ok(())
}

/// Every name must be one of ours, layers numbered `0..L` with all four
/// projections each, plus the classifier. Returns `L`.
fn check_names(tensors: &BTreeMap<String, TensorView<'_>>) -> Result<usize, SafetensorsError> {
    let mut layers = BTreeSet::new();
    for name in tensors.keys() {
        match parse_tensor_name(name) {
            Some(WeightMatrix::Layer { layer, .. }) => {
                layers.insert(layer);
            }
            Some(WeightMatrix::Classifier) => {}
            Some(WeightMatrix::FinalNormScale | WeightMatrix::FinalNormShift) | None => {
                return Err(SafetensorsError::UnexpectedTensor { name: name.clone() });
            }
        }
    }
    for (expected, &present) in layers.iter().enumerate() {
        if present != expected {
            return Err(SafetensorsError::LayerGap {
                missing: expected,
                next: present,
            });
        }
    }
    // At least layer 0, so that a file with no layers names the tensor it
    // lacks rather than failing as a shape with zero layers.
    let n_layers = layers.len().max(1);
    for layer in 0..n_layers {
        for kind in MatrixKind::PROJECTIONS {
            let name = layer_tensor_name(layer, kind);
            if !tensors.contains_key(&name) {
                return Err(SafetensorsError::MissingTensor { name });
            }
        }
    }
    if !tensors.contains_key(CLASSIFIER) {
        return Err(SafetensorsError::MissingTensor {
            name: CLASSIFIER.to_owned(),
        });
    }
    Ok(n_layers)
}

/// A tensor `check_names` has already found; looked up without indexing
/// so that even a broken invariant is an error, not a panic.
fn tensor<'a, 'data>(
    tensors: &'a BTreeMap<String, TensorView<'data>>,
    name: &str,
) -> Result<&'a TensorView<'data>, SafetensorsError> {
    tensors
        .get(name)
        .ok_or_else(|| SafetensorsError::MissingTensor {
            name: name.to_owned(),
        })
}

fn check_dtype(name: &str, view: &TensorView<'_>) -> Result<(), SafetensorsError> {
    match view.dtype() {
        safetensors::Dtype::F32 | safetensors::Dtype::F16 | safetensors::Dtype::BF16 => Ok(()),
        dtype => Err(SafetensorsError::WrongDtype {
            name: name.to_owned(),
            dtype,
        }),
    }
}

/// `[rows, cols]` of a tensor that must be 2-D.
fn matrix_shape(name: &str, view: &TensorView<'_>) -> Result<[usize; 2], SafetensorsError> {
    match *view.shape() {
        [rows, cols] => Ok([rows, cols]),
        _ => Err(SafetensorsError::NotMatrix {
            name: name.to_owned(),
            shape: view.shape().to_vec(),
        }),
    }
}

/// Head counts from the metadata, else from `heads`; each key separately,
/// so a file recording only one of them still needs (and is checked
/// against) the supplied pair.
fn resolve_heads(
    metadata: &HashMap<String, String>,
    heads: Option<(usize, usize)>,
) -> Result<(usize, usize), SafetensorsError> {
    let q = resolve_one(metadata, KEY_Q_HEADS, heads.map(|(q, _)| q))?;
    let kv = resolve_one(metadata, KEY_KV_HEADS, heads.map(|(_, kv)| kv))?;
    Ok((q, kv))
}

fn resolve_one(
    metadata: &HashMap<String, String>,
    key: &'static str,
    supplied: Option<usize>,
) -> Result<usize, SafetensorsError> {
    let recorded = metadata
        .get(key)
        .map(|value| positive_integer(key, value))
        .transpose()?;
    match (recorded, supplied) {
        (Some(metadata), Some(supplied)) if metadata != supplied => {
            Err(SafetensorsError::HeadsDisagree {
                key,
                metadata,
                supplied,
            })
        }
        (Some(value), _) | (None, Some(value)) => Ok(value),
        (None, None) => Err(SafetensorsError::HeadsMissing { key }),
    }
}

/// A metadata value of ASCII digits denoting at least 1.
fn positive_integer(key: &'static str, value: &str) -> Result<usize, SafetensorsError> {
    value
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| value.parse::<usize>().ok())
        .flatten()
        .filter(|&n| n > 0)
        .ok_or_else(|| SafetensorsError::BadMetadata {
            key,
            value: value.to_owned(),
        })
}

/// The matrices of `layout` in body order, to zip with its spans.
fn matrices(layout: &Layout) -> impl Iterator<Item = WeightMatrix> + use<> {
    (0..layout.n_layers())
        .flat_map(|layer| {
            MatrixKind::PROJECTIONS
                .into_iter()
                .map(move |kind| WeightMatrix::Layer { layer, kind })
        })
        .chain([WeightMatrix::Classifier])
}

/// Widens a tensor's little-endian elements into `out`. The caller has
/// checked the dtype and that the shape has `out.len()` elements, and the
/// `safetensors` crate that the data is exactly shape × element size, so
/// the chunks and `out` have the same length.
fn decode(view: &TensorView<'_>, out: &mut [f32]) {
    let data = view.data();
    match view.dtype() {
        safetensors::Dtype::F16 => {
            for (o, c) in out.iter_mut().zip(data.chunks_exact(2)) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        safetensors::Dtype::BF16 => {
            for (o, c) in out.iter_mut().zip(data.chunks_exact(2)) {
                *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        _ => {
            for (o, c) in out.iter_mut().zip(data.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
    }
}
