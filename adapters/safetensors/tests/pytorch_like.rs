//! A file as a PyTorch user would write it — built by hand with the
//! `safetensors` crate's serializer, tensors inserted in another order,
//! dtypes mixed, metadata of their own and no head counts — imports to the
//! model it describes (`docs/safetensors.md`).

mod common;

use aether_model::{MatrixKind, ModelWeights, WeightMatrix};
use aether_safetensors::{Dtype, from_bytes, to_bytes};
use half::f16;

use common::{GQA, Raw};

/// `W^T` of a row-major `[rows][cols]` matrix: what `nn.Linear.weight`
/// holds for our `[in][out]` matrix.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| values[r * cols + c]))
        .collect()
}

#[test]
fn a_hand_built_file_with_transposed_linear_weights_imports() {
    let weights = ModelWeights::random(GQA, 31).unwrap();
    let mut tensors = Vec::new();
    // The user's model holds nn.Linear layers, whose weight is [out, in]
    // (`linear_weight`); their save script stores its transpose, [in, out].
    let mut push = |name: String, matrix: WeightMatrix, half: bool| {
        let span = weights.span(matrix).unwrap();
        let linear_weight = transpose(weights.matrix(matrix).unwrap(), span.rows, span.cols);
        let ours = transpose(&linear_weight, span.cols, span.rows);
        tensors.push(if half {
            Raw {
                name,
                dtype: safetensors::Dtype::F16,
                shape: vec![span.rows, span.cols],
                data: ours
                    .iter()
                    .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                    .collect(),
            }
        } else {
            Raw::f32(&name, &[span.rows, span.cols], &ours)
        });
    };
    // Classifier first, layers last to first, projections in reverse.
    push("classifier".to_owned(), WeightMatrix::Classifier, false);
    for layer in (0..GQA.n_layers).rev() {
        for kind in MatrixKind::PROJECTIONS.into_iter().rev() {
            let half = layer == 1 && kind == MatrixKind::Key;
            push(
                aether_safetensors::layer_tensor_name(layer, kind),
                WeightMatrix::Layer { layer, kind },
                half,
            );
        }
    }
    let bytes = common::serialize(
        &tensors,
        &[
            ("framework", "pt"),
            ("epoch", "12"),
            ("note", "saved by hand"),
        ],
    );

    let back = from_bytes(&bytes, Some((4, 2))).unwrap();
    assert_eq!(back.shape(), GQA);
    let wk1 = WeightMatrix::Layer {
        layer: 1,
        kind: MatrixKind::Key,
    };
    let half_span = weights.span(wk1).unwrap().range();
    for (index, (&got, &want)) in back.values().iter().zip(weights.values()).enumerate() {
        let want = if half_span.contains(&index) {
            f16::from_f32(want).to_f32()
        } else {
            want
        };
        assert_eq!(got.to_bits(), want.to_bits(), "weight {index}");
    }
}

#[test]
fn our_file_reads_back_through_the_safetensors_crate_alone() {
    // The other direction: what a PyTorch user loading our file sees.
    let weights = ModelWeights::random(GQA, 32).unwrap();
    let bytes = to_bytes(&weights, Dtype::F32).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let wo = file.tensor("layers.2.wo").unwrap();
    assert_eq!(wo.shape(), [12, 8]);
    let values: Vec<f32> = wo
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let matrix = WeightMatrix::Layer {
        layer: 2,
        kind: MatrixKind::Output,
    };
    assert_eq!(values.as_slice(), weights.matrix(matrix).unwrap());
}
