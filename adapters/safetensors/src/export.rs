//! [`ModelWeights`] to safetensors bytes.
//!
//! Why the checks: a file we write must be one we (and PyTorch) can read
//! back to the same model, so a non-finite weight — which the reader
//! refuses — and a finite weight that f16 would turn into infinity are
//! refused here, naming the tensor, instead of producing a file that fails
//! later somewhere else.

use std::borrow::Cow;
use std::collections::HashMap;

use aether_model::{ModelWeights, NonFiniteValue};
use half::f16;
use safetensors::View;

use crate::Dtype;
use crate::error::SafetensorsError;
use crate::names::{
    FORMAT, KEY_CENTRE_GAIN_LOG2, KEY_CENTRE_SHIFT, KEY_CONV_TAPS, KEY_FORMAT, KEY_KV_HEADS,
    KEY_MLP_HIDDEN, KEY_NORM, KEY_POOL_SHIFT, KEY_Q_HEADS, KEY_VERSION, MODEL_VERSION,
    MODEL_VERSION_2, is_vector, norm_name, tensor_name,
};

/// One encoded tensor, owned, in the form the `safetensors` serializer
/// takes.
struct Encoded {
    dtype: safetensors::Dtype,
    /// `[rows, cols]`, or `[cols]` for a vector.
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Encoded {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }

    fn data_len(&self) -> usize {
        self.data.len()
    }
}

pub(crate) fn to_bytes(weights: &ModelWeights, dtype: Dtype) -> Result<Vec<u8>, SafetensorsError> {
    let layout = weights.layout();
    let mut tensors = Vec::with_capacity(layout.spans().count());
    for (matrix, span) in layout.parts() {
        let name = tensor_name(matrix);
        let values = &weights.values()[span.range()];
        let data = encode(&name, values, span.cols, dtype)?;
        let st_dtype = match dtype {
            Dtype::F32 => safetensors::Dtype::F32,
            Dtype::F16 => safetensors::Dtype::F16,
        };
        tensors.push((
            name,
            Encoded {
                dtype: st_dtype,
                shape: if is_vector(matrix) {
                    vec![span.cols]
                } else {
                    vec![span.rows, span.cols]
                },
                data,
            },
        ));
    }

    let shape = weights.shape();
    let options = shape.options;
    let mut metadata = HashMap::from([
        (KEY_FORMAT.to_owned(), FORMAT.to_owned()),
        (KEY_VERSION.to_owned(), MODEL_VERSION.to_owned()),
        (KEY_Q_HEADS.to_owned(), shape.n_q_heads.to_string()),
        (KEY_KV_HEADS.to_owned(), shape.n_kv_heads.to_string()),
    ]);
    // A model without options stays a version-1 file byte for byte, so
    // files written before version 2 existed and new ones of the same
    // weights are the same bytes. With any option on, all three keys are
    // written (even an option that is off), because the reader requires
    // each of them in a version-2 file.
    if !options.is_v1() {
        metadata.extend([
            (KEY_VERSION.to_owned(), MODEL_VERSION_2.to_owned()),
            (KEY_NORM.to_owned(), norm_name(options.norm).to_owned()),
            (KEY_CONV_TAPS.to_owned(), options.conv_taps.to_string()),
            (KEY_MLP_HIDDEN.to_owned(), options.mlp_hidden.to_string()),
        ]);
        // The centring and pooling keys came later and are optional (0
        // when absent), so they are written only when on: a file of a
        // model without them stays the bytes it was before they existed.
        for (key, value) in [
            (KEY_CENTRE_SHIFT, options.centre_shift),
            (KEY_CENTRE_GAIN_LOG2, options.centre_gain_log2),
            (KEY_POOL_SHIFT, options.pool_shift),
        ] {
            if value != 0 {
                metadata.insert(key.to_owned(), value.to_string());
            }
        }
    }
    let bytes = safetensors::serialize(
        tensors.iter().map(|(name, tensor)| (name.as_str(), tensor)),
        Some(metadata),
    )
    .map_err(|source| SafetensorsError::Serialize { source })?;
    Ok(with_sorted_header(bytes))
}

/// The same file with the header's JSON keys sorted.
///
/// Why: the `safetensors` crate takes the metadata as a `HashMap` and
/// writes its keys in the map's (randomly seeded) order, so two exports of
/// the same weights would differ in a few header bytes. Sorting makes an
/// export a pure function of the weights and the dtype, so files can be
/// compared and hashed. The data section is untouched (the tensors' data
/// offsets do not depend on the header), and the header stays padded with
/// spaces to a multiple of 8 bytes as the crate writes it. Should the
/// crate's own output ever fail to parse here, it is returned unchanged:
/// still a valid file, only not canonical.
fn with_sorted_header(bytes: Vec<u8>) -> Vec<u8> {
    let Some((len, rest)) = bytes.split_first_chunk::<8>() else {
        return bytes;
    };
    let Some((header, data)) = usize::try_from(u64::from_le_bytes(*len))
        .ok()
        .and_then(|n| rest.split_at_checked(n))
    else {
        return bytes;
    };
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(header) else {
        return bytes;
    };
    json.sort_all_objects();
    let Ok(mut sorted) = serde_json::to_vec(&json) else {
        return bytes;
    };
    sorted.resize(sorted.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + sorted.len() + data.len());
    out.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
    out.extend_from_slice(&sorted);
    out.extend_from_slice(data);
    out
}

/// Little-endian bytes of one row-major matrix with `cols` columns (a
/// vector is one row, so its index is its column).
fn encode(
    name: &str,
    values: &[f32],
    cols: usize,
    dtype: Dtype,
) -> Result<Vec<u8>, SafetensorsError> {
    let width = match dtype {
        Dtype::F32 => 4,
        Dtype::F16 => 2,
    };
    let mut data = Vec::with_capacity(values.len() * width);
    for (index, &value) in values.iter().enumerate() {
        if let Some(value) = NonFiniteValue::of(value) {
            return Err(SafetensorsError::NonFinite {
                name: name.to_owned(),
                index,
                row: index / cols,
                col: index % cols,
                value,
            });
        }
        match dtype {
            Dtype::F32 => data.extend_from_slice(&value.to_le_bytes()),
            Dtype::F16 => {
                let half = f16::from_f32(value);
                if half.is_infinite() {
                    return Err(SafetensorsError::F16Overflow {
                        name: name.to_owned(),
                        index,
                        row: index / cols,
                        col: index % cols,
                        value,
                    });
                }
                data.extend_from_slice(&half.to_le_bytes());
            }
        }
    }
    Ok(data)
}
