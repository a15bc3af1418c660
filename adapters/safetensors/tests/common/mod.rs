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

/// The tensors of `weights` in body order, named and shaped as
/// `docs/safetensors.md` says (vectors 1-D), F32 — the starting point for
/// files with one thing wrong.
pub fn tensors_of(weights: &aether_model::ModelWeights) -> Vec<Raw> {
    weights
        .layout()
        .parts()
        .map(|(matrix, span)| {
            let shape = if is_vector(matrix) {
                vec![span.cols]
            } else {
                vec![span.rows, span.cols]
            };
            Raw::f32(
                &name_of(matrix),
                &shape,
                weights.matrix(matrix).expect("a part of the layout"),
            )
        })
        .collect()
}

/// The documented name of `matrix`, spelled out here independently of the
/// crate's own table so the tests check it.
pub fn name_of(matrix: aether_model::WeightMatrix) -> String {
    use aether_model::{MatrixKind, WeightMatrix};
    match matrix {
        WeightMatrix::Layer { layer, kind } => {
            let suffix = match kind {
                MatrixKind::Query => "wq",
                MatrixKind::Key => "wk",
                MatrixKind::Value => "wv",
                MatrixKind::Output => "wo",
                MatrixKind::Norm1Scale => "norm1_scale",
                MatrixKind::Norm1Shift => "norm1_shift",
                MatrixKind::Conv => "conv",
                MatrixKind::Norm2Scale => "norm2_scale",
                MatrixKind::Norm2Shift => "norm2_shift",
                MatrixKind::Up => "w1",
                MatrixKind::UpBias => "b1",
                MatrixKind::Down => "w2",
                MatrixKind::DownBias => "b2",
            };
            format!("layers.{layer}.{suffix}")
        }
        WeightMatrix::FinalNormScale => "final_norm_scale".to_owned(),
        WeightMatrix::FinalNormShift => "final_norm_shift".to_owned(),
        WeightMatrix::Classifier => "classifier".to_owned(),
    }
}

/// Whether the file stores `matrix` as a 1-D vector: the scales, shifts
/// and biases.
pub fn is_vector(matrix: aether_model::WeightMatrix) -> bool {
    use aether_model::{MatrixKind, WeightMatrix};
    match matrix {
        WeightMatrix::Layer { kind, .. } => !matches!(
            kind,
            MatrixKind::Query
                | MatrixKind::Key
                | MatrixKind::Value
                | MatrixKind::Output
                | MatrixKind::Conv
                | MatrixKind::Up
                | MatrixKind::Down
        ),
        WeightMatrix::FinalNormScale | WeightMatrix::FinalNormShift => true,
        WeightMatrix::Classifier => false,
    }
}

/// Our metadata for `shape`: version 1 without options, version 2 with
/// the three option keys otherwise.
pub fn our_metadata(shape: aether_model::ModelShape) -> Vec<(&'static str, String)> {
    let options = shape.options;
    let mut metadata = vec![
        ("format", "aether-temporal".to_owned()),
        ("n_q_heads", shape.n_q_heads.to_string()),
        ("n_kv_heads", shape.n_kv_heads.to_string()),
    ];
    if options.is_v1() {
        metadata.push(("version", "1".to_owned()));
    } else {
        let norm = match options.norm {
            aether_model::Norm::None => "none",
            aether_model::Norm::Layer => "layer",
            aether_model::Norm::Rms => "rms",
        };
        metadata.extend([
            ("version", "2".to_owned()),
            ("norm", norm.to_owned()),
            ("conv_taps", options.conv_taps.to_string()),
            ("mlp_hidden", options.mlp_hidden.to_string()),
        ]);
    }
    metadata
}

/// `shape` with `options`.
pub const fn with_options(
    shape: aether_model::ModelShape,
    norm: aether_model::Norm,
    conv_taps: usize,
    mlp_hidden: usize,
) -> aether_model::ModelShape {
    aether_model::ModelShape {
        options: aether_model::ModelOptions {
            norm,
            conv_taps,
            mlp_hidden,
            ..aether_model::ModelOptions::V1
        },
        ..shape
    }
}

/// GQA with every option on: layer norm, 3 taps, MLP width 7, input
/// centring (rate 2^-5, gain 4) and a pooled readout (rate 2^-4).
pub const GQA_V2: aether_model::ModelShape = {
    let shape = with_options(GQA, aether_model::Norm::Layer, 3, 7);
    aether_model::ModelShape {
        options: aether_model::ModelOptions {
            centre_shift: 5,
            centre_gain_log2: 2,
            pool_shift: 4,
            ..shape.options
        },
        ..shape
    }
};

/// TINY with every option on: layer norm, 2 taps, MLP width 3.
pub const TINY_V2: aether_model::ModelShape = with_options(TINY, aether_model::Norm::Layer, 2, 3);

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
