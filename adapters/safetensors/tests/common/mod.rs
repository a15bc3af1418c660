//! Helpers shared by the integration tests: files built with the
//! `safetensors` crate's own serializer, as a PyTorch user's would be.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;

use safetensors::tensor::TensorView;

/// One tensor to put in a hand-built file.
pub struct Raw {
    pub name: String,
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl Raw {
    /// An F32 tensor of `values` with `shape`.
    pub fn f32(name: &str, shape: &[usize], values: &[f32]) -> Self {
        Self {
            name: name.to_owned(),
            dtype: safetensors::Dtype::F32,
            shape: shape.to_vec(),
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// Serializes `tensors` (in the order given) with `metadata`.
pub fn serialize(tensors: &[Raw], metadata: &[(&str, &str)]) -> Vec<u8> {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            let view =
                TensorView::new(t.dtype, t.shape.clone(), &t.data).expect("consistent tensor");
            (t.name.as_str(), view)
        })
        .collect();
    let metadata: Option<HashMap<String, String>> = (!metadata.is_empty()).then(|| {
        metadata
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    });
    safetensors::serialize(views, metadata).expect("serializable")
}

/// A raw safetensors buffer from a header JSON text and a data section,
/// bypassing the serializer (for headers it would never write).
pub fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// The tensors of `weights` in body order, named as `docs/safetensors.md`
/// says, F32 — the starting point for files with one thing wrong.
pub fn tensors_of(weights: &aether_model::ModelWeights) -> Vec<Raw> {
    use aether_model::{MatrixKind, WeightMatrix};
    let layout = weights.layout();
    let mut out = Vec::new();
    for layer in 0..layout.n_layers() {
        for kind in MatrixKind::PROJECTIONS {
            let matrix = WeightMatrix::Layer { layer, kind };
            let span = weights.span(matrix).expect("layer in range");
            out.push(Raw::f32(
                &aether_safetensors::layer_tensor_name(layer, kind),
                &[span.rows, span.cols],
                weights.matrix(matrix).expect("layer in range"),
            ));
        }
    }
    let span = layout.classifier();
    out.push(Raw::f32(
        aether_safetensors::CLASSIFIER,
        &[span.rows, span.cols],
        weights
            .matrix(WeightMatrix::Classifier)
            .expect("classifier"),
    ));
    out
}

/// Our metadata for `shape`.
pub fn our_metadata(shape: aether_model::ModelShape) -> Vec<(&'static str, String)> {
    vec![
        ("format", "aether-temporal".to_owned()),
        ("version", "1".to_owned()),
        ("n_q_heads", shape.n_q_heads.to_string()),
        ("n_kv_heads", shape.n_kv_heads.to_string()),
    ]
}

/// `serialize` with owned metadata values.
pub fn serialize_owned(tensors: &[Raw], metadata: &[(&str, String)]) -> Vec<u8> {
    let borrowed: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
    serialize(tensors, &borrowed)
}

/// A grouped-query shape unlike the default: D 8, Hq 4, Hkv 2, d 3, L 3, C 5.
pub const GQA: aether_model::ModelShape = aether_model::ModelShape {
    input_dim: 8,
    n_q_heads: 4,
    n_kv_heads: 2,
    head_dim: 3,
    n_layers: 3,
    n_classes: 5,
    options: aether_model::ModelOptions::V1,
};

/// A tiny shape, so a valid file is a few hundred bytes: D 2, Hq 2, Hkv 1,
/// d 1, L 2, C 2.
pub const TINY: aether_model::ModelShape = aether_model::ModelShape {
    input_dim: 2,
    n_q_heads: 2,
    n_kv_heads: 1,
    head_dim: 1,
    n_layers: 2,
    n_classes: 2,
    options: aether_model::ModelOptions::V1,
};
