//! [`ModelWeights`] to safetensors bytes.
//!
//! Why the checks: a file we write must be one we (and PyTorch) can read
//! back to the same model, so a non-finite weight — which the reader
//! refuses — and a finite weight that f16 would turn into infinity are
//! refused here, naming the tensor, instead of producing a file that fails
//! later somewhere else.

use std::borrow::Cow;
use std::collections::HashMap;

use aether_model::{ModelWeights, NonFiniteValue, WeightMatrix};
use half::f16;
use safetensors::View;

use crate::Dtype;
use crate::error::SafetensorsError;
use crate::names::{
    FORMAT, KEY_FORMAT, KEY_KV_HEADS, KEY_Q_HEADS, KEY_VERSION, MODEL_VERSION, tensor_name,
};

/// One encoded tensor, owned, in the form the `safetensors` serializer
/// takes.
struct Encoded {
    dtype: safetensors::Dtype,
    shape: [usize; 2],
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
    let matrices = (0..layout.n_layers())
        .flat_map(|layer| {
            aether_model::MatrixKind::BODY_ORDER
                .into_iter()
                .map(move |kind| WeightMatrix::Layer { layer, kind })
        })
        .chain([WeightMatrix::Classifier]);

    let mut tensors = Vec::with_capacity(layout.spans().len());
    for (matrix, span) in matrices.zip(layout.spans()) {
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
                shape: [span.rows, span.cols],
                data,
            },
        ));
    }

    let shape = weights.shape();
    let metadata = HashMap::from([
        (KEY_FORMAT.to_owned(), FORMAT.to_owned()),
        (KEY_VERSION.to_owned(), MODEL_VERSION.to_owned()),
        (KEY_Q_HEADS.to_owned(), shape.n_q_heads.to_string()),
        (KEY_KV_HEADS.to_owned(), shape.n_kv_heads.to_string()),
    ]);
    safetensors::serialize(
        tensors.iter().map(|(name, tensor)| (name.as_str(), tensor)),
        Some(metadata),
    )
    .map_err(|source| SafetensorsError::Serialize { source })
}

/// Little-endian bytes of one row-major matrix with `cols` columns.
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
