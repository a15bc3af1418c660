//! Model version 2 through safetensors (`docs/safetensors.md`, "Version
//! 2"): every option combination round-trips bit for bit, the file holds
//! the documented names, 1-D vectors and option metadata, each refusal
//! names its tensor or key, and a file built by hand the way a PyTorch user
//! would build one imports.

mod common;

use aether_model::{MatrixKind, ModelShape, ModelWeights, Norm, WeightMatrix};
use aether_safetensors::{Dtype, SafetensorsError, from_bytes, to_bytes};
use half::{bf16, f16};
use safetensors::SafeTensors;

use common::{GQA, GQA_V2, Raw, TINY, name_of, our_metadata, serialize_owned, tensors_of};
use common::{is_vector, with_options};

fn bits(weights: &ModelWeights) -> Vec<u32> {
    weights.values().iter().map(|v| v.to_bits()).collect()
}

/// The option combinations the round trips cover: all on, each alone, and
/// the two norms with different partners.
fn combinations() -> Vec<ModelShape> {
    vec![
        GQA_V2,
        with_options(GQA, Norm::Rms, 0, 0),
        with_options(GQA, Norm::Layer, 0, 0),
        with_options(GQA, Norm::None, 4, 0),
        with_options(GQA, Norm::None, 0, 5),
        with_options(TINY, Norm::Rms, 2, 1),
        with_options(ModelShape::DEFAULT_AETHER, Norm::Layer, 4, 64),
    ]
}

fn import(tensors: &[Raw], metadata: &[(&str, String)]) -> SafetensorsError {
    from_bytes(&serialize_owned(tensors, metadata), None).unwrap_err()
}

fn find<'a>(tensors: &'a mut [Raw], name: &str) -> &'a mut Raw {
    tensors.iter_mut().find(|t| t.name == name).unwrap()
}

fn assert_message(err: &SafetensorsError, parts: &[&str]) {
    let message = err.to_string();
    for part in parts {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
}

/// A valid all-options GQA file's tensors and metadata, to break one thing
/// at a time.
fn valid() -> (Vec<Raw>, Vec<(&'static str, String)>) {
    let weights = ModelWeights::random(GQA_V2, 41).unwrap();
    (tensors_of(&weights), our_metadata(GQA_V2))
}

fn set(metadata: &mut Vec<(&'static str, String)>, key: &'static str, value: &str) {
    metadata.retain(|(k, _)| *k != key);
    metadata.push((key, value.to_owned()));
}

#[test]
fn f32_round_trip_is_bit_exact_for_every_option_combination() {
    for (seed, shape) in (1..).zip(combinations()) {
        let weights = ModelWeights::random(shape, seed).unwrap();
        let back = from_bytes(&to_bytes(&weights, Dtype::F32).unwrap(), None).unwrap();
        assert_eq!(back.shape(), shape);
        assert_eq!(bits(&back), bits(&weights), "{shape:?}");
    }
}

#[test]
fn f16_round_trip_equals_rounding_each_weight_through_f16() {
    for (seed, shape) in (20..).zip(combinations()) {
        let weights = ModelWeights::random(shape, seed).unwrap();
        let back = from_bytes(&to_bytes(&weights, Dtype::F16).unwrap(), None).unwrap();
        let expected: Vec<u32> = weights
            .values()
            .iter()
            .map(|&v| f16::from_f32(v).to_f32().to_bits())
            .collect();
        assert_eq!(back.shape(), shape);
        assert_eq!(bits(&back), expected, "{shape:?}");
    }
}

#[test]
fn the_exported_file_has_the_documented_names_shapes_and_metadata() {
    // GQA_V2: D 8, Hq·d 12, Hkv·d 6, L 3, C 5; layer norm, K 3, H 7.
    let weights = ModelWeights::random(GQA_V2, 42).unwrap();
    let bytes = to_bytes(&weights, Dtype::F32).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort_unstable();
    let mut expected: Vec<String> = vec![
        "classifier".to_owned(),
        "final_norm_scale".to_owned(),
        "final_norm_shift".to_owned(),
    ];
    for layer in 0..3 {
        for suffix in [
            "norm1_scale",
            "norm1_shift",
            "conv",
            "wq",
            "wk",
            "wv",
            "wo",
            "norm2_scale",
            "norm2_shift",
            "w1",
            "b1",
            "w2",
            "b2",
        ] {
            expected.push(format!("layers.{layer}.{suffix}"));
        }
    }
    expected.sort_unstable();
    assert_eq!(names, expected);

    for (name, shape) in [
        ("layers.2.norm1_scale", &[8][..]),
        ("layers.2.norm1_shift", &[8]),
        ("layers.2.conv", &[3, 8]),
        ("layers.2.wq", &[8, 12]),
        ("layers.2.wk", &[8, 6]),
        ("layers.2.wo", &[12, 8]),
        ("layers.2.norm2_scale", &[8]),
        ("layers.2.norm2_shift", &[8]),
        ("layers.2.w1", &[8, 7]),
        ("layers.2.b1", &[7]),
        ("layers.2.w2", &[7, 8]),
        ("layers.2.b2", &[8]),
        ("final_norm_scale", &[8]),
        ("final_norm_shift", &[8]),
        ("classifier", &[8, 5]),
    ] {
        assert_eq!(file.tensor(name).unwrap().shape(), shape, "{name}");
    }

    // Every tensor's data is its matrix of the body, row-major.
    for (matrix, _) in weights.layout().parts() {
        let view = file.tensor(&name_of(matrix)).unwrap();
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(values.as_slice(), weights.matrix(matrix).unwrap());
    }

    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata: Vec<_> = header.metadata().clone().unwrap().into_iter().collect();
    metadata.sort_unstable();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    assert_eq!(
        metadata,
        pairs(&[
            ("centre_gain_log2", "2"),
            ("centre_shift", "5"),
            ("conv_taps", "3"),
            ("format", "aether-temporal"),
            ("mlp_hidden", "7"),
            ("n_kv_heads", "2"),
            ("n_q_heads", "4"),
            ("norm", "layer"),
            ("pool_shift", "4"),
            ("version", "2"),
        ])
    );

    // The header is sorted, as for version 1, so exports are reproducible.
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let text = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    assert!(
        text.starts_with(
            r#"{"__metadata__":{"centre_gain_log2":"2","centre_shift":"5","conv_taps":"3","format":"aether-temporal","mlp_hidden":"7","n_kv_heads":"2","n_q_heads":"4","norm":"layer","pool_shift":"4","version":"2"},"classifier":"#
        ),
        "{text}"
    );
    assert_eq!(to_bytes(&weights, Dtype::F32).unwrap(), bytes);
}

#[test]
fn an_option_that_is_off_is_still_recorded_in_a_version_2_file() {
    let shape = with_options(GQA, Norm::Rms, 0, 0);
    let bytes = to_bytes(&ModelWeights::random(shape, 43).unwrap(), Dtype::F16).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().unwrap();
    assert_eq!(metadata["version"], "2");
    assert_eq!(metadata["norm"], "rms");
    assert_eq!(metadata["conv_taps"], "0");
    assert_eq!(metadata["mlp_hidden"], "0");
    // RMS norm has no β, and there is no convolution or MLP.
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = file.names();
    names.sort_unstable();
    assert_eq!(
        names[..6],
        [
            "classifier",
            "final_norm_scale",
            "layers.0.norm1_scale",
            "layers.0.wk",
            "layers.0.wo",
            "layers.0.wq",
        ]
    );
    assert_eq!(names.len(), 2 + 3 * 5);
}

#[test]
fn a_version_2_file_with_every_option_off_is_the_version_1_model() {
    // We never write one, but it is consistent: it declares no options
    // and holds only the version-1 tensors.
    let weights = ModelWeights::random(GQA, 44).unwrap();
    let mut metadata = our_metadata(GQA);
    set(&mut metadata, "version", "2");
    metadata.extend([
        ("norm", "none".to_owned()),
        ("conv_taps", "0".to_owned()),
        ("mlp_hidden", "0".to_owned()),
    ]);
    let bytes = serialize_owned(&tensors_of(&weights), &metadata);
    assert_eq!(from_bytes(&bytes, None).unwrap(), weights);
}

#[test]
fn a_missing_option_key_is_named() {
    for key in ["norm", "conv_taps", "mlp_hidden"] {
        let (tensors, mut metadata) = valid();
        metadata.retain(|(k, _)| *k != key);
        let err = import(&tensors, &metadata);
        assert!(
            matches!(&err, SafetensorsError::OptionMissing { key: k } if *k == key),
            "{key}: {err:?}"
        );
        assert_message(&err, &[&format!("`{key}`"), "version", "\"2\""]);
    }
}

/// The centring and pooling keys came after the first version-2 files:
/// absent, they are 0 (off); out of range, the shape's rule names them.
#[test]
fn centring_and_pooling_keys_are_optional_and_range_checked() {
    let (tensors, mut metadata) = valid();
    metadata.retain(|(k, _)| !["centre_shift", "centre_gain_log2", "pool_shift"].contains(k));
    let weights = from_bytes(&serialize_owned(&tensors, &metadata), None).unwrap();
    let options = weights.shape().options;
    assert_eq!(
        (
            options.centre_shift,
            options.centre_gain_log2,
            options.pool_shift
        ),
        (0, 0, 0)
    );
    assert_eq!(options.mlp_hidden, 7, "the other options are as declared");
    let (tensors, mut metadata) = valid();
    set(&mut metadata, "pool_shift", "25");
    let err = import(&tensors, &metadata);
    assert_message(&err, &["pool_shift", "25"]);
}

#[test]
fn a_bad_option_value_is_named_with_what_is_allowed() {
    for (key, bad, allowed) in [
        ("norm", "Layer", "none, layer or rms"),
        ("norm", "batch", "none, layer or rms"),
        ("norm", "", "none, layer or rms"),
        ("conv_taps", "1", "at least 2"),
        ("conv_taps", "-3", "at least 2"),
        ("conv_taps", "3.0", "at least 2"),
        ("conv_taps", "99999999999999999999999", "at least 2"),
        ("mlp_hidden", "", "whole number"),
        ("mlp_hidden", "+7", "whole number"),
        ("mlp_hidden", "seven", "whole number"),
        ("centre_shift", "x", "whole number"),
        ("centre_gain_log2", "-1", "whole number"),
        ("pool_shift", "6.0", "whole number"),
    ] {
        let (tensors, mut metadata) = valid();
        set(&mut metadata, key, bad);
        let err = import(&tensors, &metadata);
        assert!(
            matches!(&err, SafetensorsError::BadOption { key: k, value, .. }
                if *k == key && value == bad),
            "{key} = {bad:?}: {err:?}"
        );
        assert_message(&err, &[&format!("`{key}`"), &format!("{bad:?}"), allowed]);
    }
}

#[test]
fn version_2_tensors_in_a_version_1_file_are_unexpected() {
    let (tensors, mut metadata) = valid();
    set(&mut metadata, "version", "1");
    let err = import(&tensors, &metadata);
    // Names are visited sorted: `final_norm_scale` is the first foreign one.
    assert!(
        matches!(&err, SafetensorsError::UnexpectedTensor { name } if name == "final_norm_scale"),
        "{err:?}"
    );
    assert_message(&err, &["`final_norm_scale`", "version", "\"2\""]);
    // No `version` at all reads as version 1.
    metadata.retain(|(k, _)| *k != "version");
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::UnexpectedTensor { name } if name == "final_norm_scale"),
        "{err:?}"
    );
}

#[test]
fn a_tensor_the_declared_options_leave_out_is_unexpected() {
    // RMS norm has no β.
    let (tensors, mut metadata) = valid();
    set(&mut metadata, "norm", "rms");
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::UnexpectedTensor { name } if name == "final_norm_shift"),
        "{err:?}"
    );
    // Without an MLP, its weights have no place.
    let (tensors, mut metadata) = valid();
    set(&mut metadata, "mlp_hidden", "0");
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::UnexpectedTensor { name } if name == "layers.0.b1"),
        "{err:?}"
    );
    // Without a convolution, neither does its kernel.
    let (tensors, mut metadata) = valid();
    set(&mut metadata, "conv_taps", "0");
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::UnexpectedTensor { name } if name == "layers.0.conv"),
        "{err:?}"
    );
    // A layer-numbered final norm is not a name at all.
    let (mut tensors, metadata) = valid();
    find(&mut tensors, "final_norm_scale").name = "layers.0.final_norm_scale".to_owned();
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::UnexpectedTensor { name }
            if name == "layers.0.final_norm_scale"),
        "{err:?}"
    );
}

#[test]
fn a_tensor_the_declared_options_need_is_missing() {
    for name in [
        "layers.1.norm1_shift",
        "layers.2.conv",
        "layers.0.norm2_scale",
        "layers.1.b1",
        "layers.2.w2",
        "final_norm_scale",
        "final_norm_shift",
    ] {
        let (mut tensors, metadata) = valid();
        tensors.retain(|t| t.name != name);
        let err = import(&tensors, &metadata);
        assert!(
            matches!(&err, SafetensorsError::MissingTensor { name: n } if n == name),
            "{name}: {err:?}"
        );
        assert_message(&err, &[&format!("tensor `{name}` is missing")]);
    }
    // A file with only a classifier lacks the first tensor of the body.
    let (mut tensors, metadata) = valid();
    tensors.retain(|t| t.name == "classifier");
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::MissingTensor { name } if name == "layers.0.norm1_scale"),
        "{err:?}"
    );
}

#[test]
fn option_sizes_that_disagree_with_the_tensors_are_wrong_shapes() {
    // The metadata says 4 taps; the kernels hold 3.
    let (tensors, mut metadata) = valid();
    set(&mut metadata, "conv_taps", "4");
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::WrongShape { name, expected, actual }
            if name == "layers.0.conv" && expected == &[4, 8] && actual == &[3, 8]),
        "{err:?}"
    );
    assert_message(&err, &["`layers.0.conv`", "[4, 8]", "[3, 8]"]);
    // The metadata says H = 6; the MLP is 7 wide.
    let (tensors, mut metadata) = valid();
    set(&mut metadata, "mlp_hidden", "6");
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::WrongShape { name, expected, actual }
            if name == "layers.0.w1" && expected == &[8, 6] && actual == &[8, 7]),
        "{err:?}"
    );
    // One layer's kernel has another width than D.
    let (mut tensors, metadata) = valid();
    let conv = find(&mut tensors, "layers.1.conv");
    conv.shape = vec![3, 4];
    conv.data.truncate(3 * 4 * 4);
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::WrongShape { name, expected, actual }
            if name == "layers.1.conv" && expected == &[3, 8] && actual == &[3, 4]),
        "{err:?}"
    );
}

#[test]
fn vectors_must_be_1d_and_matrices_2d() {
    // A `[1, n]` vector, as the body holds it, is not the file's shape.
    let (mut tensors, metadata) = valid();
    find(&mut tensors, "layers.1.b1").shape = vec![1, 7];
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::WrongShape { name, expected, actual }
            if name == "layers.1.b1" && expected == &[7] && actual == &[1, 7]),
        "{err:?}"
    );
    assert_message(&err, &["`layers.1.b1`", "[7]", "[1, 7]", "1-D"]);
    // A flattened convolution kernel is not a matrix.
    let (mut tensors, metadata) = valid();
    find(&mut tensors, "layers.0.conv").shape = vec![24];
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::WrongShape { name, expected, actual }
            if name == "layers.0.conv" && expected == &[3, 8] && actual == &[24]),
        "{err:?}"
    );
}

#[test]
fn an_integer_option_tensor_is_a_wrong_dtype() {
    let (mut tensors, metadata) = valid();
    find(&mut tensors, "final_norm_shift").dtype = safetensors::Dtype::I32;
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::WrongDtype { name, dtype: safetensors::Dtype::I32 }
            if name == "final_norm_shift"),
        "{err:?}"
    );
}

#[test]
fn a_non_finite_weight_in_a_vector_or_kernel_is_located() {
    let (mut tensors, metadata) = valid();
    find(&mut tensors, "layers.2.b1").data[5 * 4..6 * 4]
        .copy_from_slice(&f32::INFINITY.to_le_bytes());
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::NonFinite { name, index: 5, row: 0, col: 5, .. }
            if name == "layers.2.b1"),
        "{err:?}"
    );
    // Kernel [3][8]: index 8 + 6 is tap 1, feature 6.
    let (mut tensors, metadata) = valid();
    find(&mut tensors, "layers.0.conv").data[14 * 4..15 * 4]
        .copy_from_slice(&f32::NAN.to_le_bytes());
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::NonFinite { name, index: 14, row: 1, col: 6, .. }
            if name == "layers.0.conv"),
        "{err:?}"
    );
    assert_message(&err, &["`layers.0.conv`", "row 1", "column 6", "NaN"]);
}

#[test]
fn export_refuses_non_finite_and_f16_overflow_in_version_2_parts() {
    let mut weights = ModelWeights::random(GQA_V2, 45).unwrap();
    let span = weights.span(WeightMatrix::FinalNormShift).unwrap();
    weights.values_mut()[span.offset + 3] = -1.0e6;
    assert!(to_bytes(&weights, Dtype::F32).is_ok());
    let err = to_bytes(&weights, Dtype::F16).unwrap_err();
    assert!(
        matches!(&err, SafetensorsError::F16Overflow { name, index: 3, row: 0, col: 3, .. }
            if name == "final_norm_shift"),
        "{err:?}"
    );
    let conv = WeightMatrix::Layer {
        layer: 1,
        kind: MatrixKind::Conv,
    };
    let span = weights.span(conv).unwrap();
    weights.values_mut()[span.offset + 2 * 8 + 1] = f32::NAN;
    let err = to_bytes(&weights, Dtype::F32).unwrap_err();
    assert!(
        matches!(&err, SafetensorsError::NonFinite { name, index: 17, row: 2, col: 1, .. }
            if name == "layers.1.conv"),
        "{err:?}"
    );
}

/// `W^T` of a row-major `[rows][cols]` matrix.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| values[r * cols + c]))
        .collect()
}

#[test]
fn a_hand_built_pytorch_style_version_2_file_imports() {
    // What the snippet of docs/safetensors.md writes: nn.Linear weights
    // ([out, in]) transposed, LayerNorm γ/β and Linear biases as 1-D
    // tensors, the depthwise Conv1d kernel ([D, 1, K], taps oldest first)
    // flipped and transposed to [K, D] with tap 0 the current frame; the
    // dtypes mixed, the tensors in reverse order, metadata of its own and
    // the head counts passed as an argument.
    let shape = with_options(GQA, Norm::Layer, 3, 7);
    let weights = ModelWeights::random(shape, 46).unwrap();
    let (d, k) = (8, 3);
    let parts: Vec<_> = weights.layout().parts().collect();
    let mut tensors = Vec::new();
    let mut rounded = weights.clone();
    for (i, &(matrix, span)) in parts.iter().enumerate().rev() {
        let ours = weights.matrix(matrix).unwrap();
        let values: Vec<f32> = match matrix {
            WeightMatrix::Layer {
                kind: MatrixKind::Conv,
                ..
            } => {
                // torch's Conv1d(D, D, K, groups=D).weight[f][0][t]
                // multiplies frame now − (K − 1 − t).
                let torch: Vec<f32> = (0..d)
                    .flat_map(|f| (0..k).map(move |t| (f, t)))
                    .map(|(f, t)| ours[(k - 1 - t) * d + f])
                    .collect();
                // The snippet's `w[:, 0, :].flip(1).T`.
                (0..k)
                    .flat_map(|j| (0..d).map(move |f| (j, f)))
                    .map(|(j, f)| torch[f * k + (k - 1 - j)])
                    .collect()
            }
            _ if is_vector(matrix) => ours.to_vec(),
            _ => {
                let linear_weight = transpose(ours, span.rows, span.cols);
                transpose(&linear_weight, span.cols, span.rows)
            }
        };
        let shape = if is_vector(matrix) {
            vec![span.cols]
        } else {
            vec![span.rows, span.cols]
        };
        let name = name_of(matrix);
        let out = &mut rounded.values_mut()[span.range()];
        tensors.push(match i % 3 {
            0 => Raw::f32(&name, &shape, &values),
            1 => {
                for (o, &v) in out.iter_mut().zip(&values) {
                    *o = f16::from_f32(v).to_f32();
                }
                Raw {
                    name,
                    dtype: safetensors::Dtype::F16,
                    shape,
                    data: values
                        .iter()
                        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                        .collect(),
                }
            }
            _ => {
                for (o, &v) in out.iter_mut().zip(&values) {
                    *o = bf16::from_f32(v).to_f32();
                }
                Raw {
                    name,
                    dtype: safetensors::Dtype::BF16,
                    shape,
                    data: values
                        .iter()
                        .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
                        .collect(),
                }
            }
        });
    }
    let bytes = common::serialize(
        &tensors,
        &[
            ("format", "aether-temporal"),
            ("version", "2"),
            ("norm", "layer"),
            ("conv_taps", "3"),
            ("mlp_hidden", "7"),
            ("framework", "pt"),
        ],
    );
    let back = from_bytes(&bytes, Some((4, 2))).unwrap();
    assert_eq!(back.shape(), shape);
    assert_eq!(bits(&back), bits(&rounded));
}
