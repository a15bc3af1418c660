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
    Layout, MatrixKind, MatrixSpan, ModelOptions, ModelShape, ModelWeights, NonFiniteValue,
    ShapeError, WeightMatrix,
};
use half::{bf16, f16};
use safetensors::SafeTensors;
use safetensors::tensor::TensorView;

use crate::error::SafetensorsError;
use crate::names::{
    CLASSIFIER, FORMAT, KEY_CENTRE_GAIN_LOG2, KEY_CENTRE_SHIFT, KEY_CONV_TAPS, KEY_FORMAT,
    KEY_KV_HEADS, KEY_MLP_HIDDEN, KEY_NORM, KEY_POOL_SHIFT, KEY_Q_HEADS, KEY_VERSION,
    MODEL_VERSION, MODEL_VERSION_2, is_vector, layer_tensor_name, parse_norm, parse_tensor_name,
    tensor_name,
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

    let options = check_format(&metadata)?;
    let template = template(options)?;
    let tensors: BTreeMap<String, TensorView<'_>> = file.tensors().into_iter().collect();
    let n_layers = check_names(&tensors, &template)?;
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
        options,
    };
    let layout = shape.layout()?;

    // The option sizes (H, K) come from the metadata; checking every
    // tensor against the layout they give is what cross-checks them.
    for (matrix, span) in layout.parts() {
        let name = tensor_name(matrix);
        let actual = tensor(&tensors, &name)?.shape();
        let expected = tensor_shape(matrix, span);
        if actual != expected.as_slice() {
            return Err(SafetensorsError::WrongShape {
                name,
                expected,
                actual: actual.to_vec(),
            });
        }
    }

    let mut weights = ModelWeights::zeros(shape)?;
    for (matrix, span) in layout.parts() {
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

/// The shape a file stores `matrix` as: 1-D `[n]` for a vector, else the
/// layout's `[rows, cols]`.
fn tensor_shape(matrix: WeightMatrix, span: MatrixSpan) -> Vec<usize> {
    if is_vector(matrix) {
        vec![span.cols]
    } else {
        vec![span.rows, span.cols]
    }
}

/// A one-layer layout of the smallest valid geometry with `options`: which
/// kinds a layer has and whether there is a final norm, before the file's
/// real dimensions are known.
///
/// Why ask the model rather than list the kinds here: the model's
/// [`Layout`] is the one definition of which matrices each option adds, so
/// the reader cannot drift from it.
fn template(options: ModelOptions) -> Result<Layout, SafetensorsError> {
    let shape = ModelShape {
        input_dim: 1,
        n_q_heads: 1,
        n_kv_heads: 1,
        head_dim: 1,
        n_layers: 1,
        n_classes: 2,
        options,
    };
    Ok(shape.layout()?)
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
/// ignored (a PyTorch user may record anything there). Returns the
/// model's options: none for version 1 (or no `version`, as a hand-written
/// file may have), those of the option keys for version 2.
fn check_format(metadata: &HashMap<String, String>) -> Result<ModelOptions, SafetensorsError> {
    if let Some(found) = metadata.get(KEY_FORMAT)
        && found != FORMAT
    {
        return Err(SafetensorsError::WrongFormat {
            found: found.clone(),
        });
    }
    match metadata.get(KEY_VERSION).map(String::as_str) {
        None | Some(MODEL_VERSION) => Ok(ModelOptions::V1),
        Some(MODEL_VERSION_2) => read_options(metadata),
        Some(found) => Err(SafetensorsError::WrongVersion {
            found: found.to_owned(),
        }),
    }
}

/// The three option keys of a version-2 file, each required, in the order
/// `norm`, `conv_taps`, `mlp_hidden`.
fn read_options(metadata: &HashMap<String, String>) -> Result<ModelOptions, SafetensorsError> {
    let get = |key: &'static str| {
        metadata
            .get(key)
            .ok_or(SafetensorsError::OptionMissing { key })
    };
    let bad = |key: &'static str, value: &str, allowed: &'static str| SafetensorsError::BadOption {
        key,
        value: value.to_owned(),
        allowed,
    };

    let value = get(KEY_NORM)?;
    let norm = parse_norm(value).ok_or_else(|| bad(KEY_NORM, value, "none, layer or rms"))?;
    let value = get(KEY_CONV_TAPS)?;
    let conv_taps = whole_number(value).filter(|&k| k != 1).ok_or_else(|| {
        bad(
            KEY_CONV_TAPS,
            value,
            "0 (off) or a whole number of at least 2",
        )
    })?;
    let value = get(KEY_MLP_HIDDEN)?;
    let mlp_hidden = whole_number(value)
        .ok_or_else(|| bad(KEY_MLP_HIDDEN, value, "a whole number (0 is off)"))?;
    // Optional, 0 when absent; their ranges are the shape's rules.
    let optional = |key: &'static str| {
        metadata.get(key).map_or(Ok(0), |value| {
            whole_number(value).ok_or_else(|| bad(key, value, "a whole number (0 is off)"))
        })
    };
    Ok(ModelOptions {
        norm,
        conv_taps,
        mlp_hidden,
        centre_shift: optional(KEY_CENTRE_SHIFT)?,
        centre_gain_log2: optional(KEY_CENTRE_GAIN_LOG2)?,
        pool_shift: optional(KEY_POOL_SHIFT)?,
    })
}

/// ASCII digits in range of `usize`: no sign, space or point, so each
/// value has one meaning (leading zeros are harmless here, unlike in a
/// tensor name, where they would give a matrix two names).
fn whole_number(value: &str) -> Option<usize> {
    (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
        .then(|| value.parse().ok())
        .flatten()
}

/// Every name must be one of the tensors `template` (the declared
/// options) has, layers numbered `0..L` with all of a layer's kinds each,
/// plus the final norm when there is one and the classifier. Returns `L`.
fn check_names(
    tensors: &BTreeMap<String, TensorView<'_>>,
    template: &Layout,
) -> Result<usize, SafetensorsError> {
    let mut layers = BTreeSet::new();
    for name in tensors.keys() {
        let expected = match parse_tensor_name(name) {
            Some(WeightMatrix::Layer { layer, kind }) => {
                layers.insert(layer);
                template.matrix(0, kind).is_some()
            }
            Some(WeightMatrix::FinalNormScale) => template.final_norm(false).is_some(),
            Some(WeightMatrix::FinalNormShift) => template.final_norm(true).is_some(),
            Some(WeightMatrix::Classifier) => true,
            None => false,
        };
        if !expected {
            return Err(SafetensorsError::UnexpectedTensor { name: name.clone() });
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
    let per_layer: Vec<MatrixKind> = MatrixKind::BODY_ORDER
        .into_iter()
        .filter(|&kind| template.matrix(0, kind).is_some())
        .collect();
    let layer_names = (0..n_layers).flat_map(|layer| {
        per_layer
            .iter()
            .map(move |&kind| layer_tensor_name(layer, kind))
    });
    let final_names = template
        .parts()
        .filter(|(matrix, _)| !matches!(matrix, WeightMatrix::Layer { .. }))
        .map(|(matrix, _)| tensor_name(matrix));
    // Body order, so the first missing tensor reported is the first the
    // model would read.
    for name in layer_names.chain(final_names) {
        if !tensors.contains_key(&name) {
            return Err(SafetensorsError::MissingTensor { name });
        }
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
