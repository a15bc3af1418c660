//! One test per refusal of `docs/safetensors.md`: each asserts the error
//! value and that its message names the tensor or key at fault, because
//! the message is all a user holding a bad file gets.

mod common;

use aether_model::{ModelShape, ModelWeights, NonFiniteValue, ShapeError};
use aether_safetensors::{Dtype, SafetensorsError, from_bytes, to_bytes};

use common::{GQA, Raw, TINY, our_metadata, raw_file, serialize, serialize_owned, tensors_of};

/// A valid GQA file's tensors and metadata, to break one thing at a time.
fn valid() -> (Vec<Raw>, Vec<(&'static str, String)>) {
    let weights = ModelWeights::random(GQA, 21).unwrap();
    (tensors_of(&weights), our_metadata(GQA))
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

#[test]
fn bytes_that_are_not_safetensors_are_refused_with_the_crates_reason() {
    for bytes in [
        &b""[..],
        b"\x01\x00",
        b"PK\x03\x04 not a safetensors file at all",
        b"\x02\x00\x00\x00\x00\x00\x00\x00{]",
        b"\xff\xff\xff\xff\xff\xff\xff\xff{}",
    ] {
        let err = from_bytes(bytes, Some((4, 2))).unwrap_err();
        assert!(
            matches!(err, SafetensorsError::NotSafetensors { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with("not a safetensors file: "),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some());
    }
}

#[test]
fn a_wrongly_named_tensor_is_refused_by_name() {
    // The usual PyTorch spelling of a Linear's weight.
    let (mut tensors, metadata) = valid();
    find(&mut tensors, "layers.1.wk").name = "layers.1.wk.weight".to_owned();
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::UnexpectedTensor { name } if name == "layers.1.wk.weight"),
        "{err:?}"
    );
    assert_message(&err, &["`layers.1.wk.weight`"]);
}

#[test]
fn a_leading_zero_layer_number_is_a_foreign_name() {
    let (mut tensors, metadata) = valid();
    find(&mut tensors, "layers.1.wv").name = "layers.01.wv".to_owned();
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::UnexpectedTensor { name } if name == "layers.01.wv"),
        "{err:?}"
    );
}

#[test]
fn an_extra_tensor_is_refused_rather_than_dropped() {
    let (mut tensors, metadata) = valid();
    tensors.push(Raw::f32("layers.0.bias", &[8], &[0.0; 8]));
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::UnexpectedTensor { name } if name == "layers.0.bias"),
        "{err:?}"
    );
    assert_message(&err, &["unexpected tensor `layers.0.bias`"]);
}

#[test]
fn a_missing_projection_is_named() {
    let (mut tensors, metadata) = valid();
    tensors.retain(|t| t.name != "layers.2.wo");
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::MissingTensor { name } if name == "layers.2.wo"),
        "{err:?}"
    );
    assert_message(&err, &["tensor `layers.2.wo` is missing"]);
}

#[test]
fn a_missing_classifier_is_named() {
    let (mut tensors, metadata) = valid();
    tensors.retain(|t| t.name != "classifier");
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::MissingTensor { name } if name == "classifier"),
        "{err:?}"
    );
}

#[test]
fn a_file_with_only_a_classifier_lacks_layer_0() {
    let (mut tensors, metadata) = valid();
    tensors.retain(|t| t.name == "classifier");
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::MissingTensor { name } if name == "layers.0.wq"),
        "{err:?}"
    );
}

#[test]
fn a_gap_in_the_layer_numbers_is_refused() {
    let (mut tensors, metadata) = valid();
    tensors.retain(|t| !t.name.starts_with("layers.1."));
    let err = import(&tensors, &metadata);
    assert!(
        matches!(
            err,
            SafetensorsError::LayerGap {
                missing: 1,
                next: 2
            }
        ),
        "{err:?}"
    );
    assert_message(&err, &["layer 1 is missing", "layer 2 is present"]);
}

#[test]
fn a_transposed_matrix_is_a_wrong_shape_naming_both_shapes() {
    // PyTorch's Linear.weight is [out, in]; saving it untransposed is the
    // mistake this catches.
    let (mut tensors, metadata) = valid();
    find(&mut tensors, "layers.1.wk").shape = vec![6, 8];
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::WrongShape { name, expected, actual }
            if name == "layers.1.wk" && expected == &[8, 6] && actual == &[6, 8]),
        "{err:?}"
    );
    assert_message(&err, &["`layers.1.wk`", "[6, 8]", "[8, 6]"]);
}

#[test]
fn a_3d_tensor_is_a_wrong_shape() {
    let (mut tensors, metadata) = valid();
    find(&mut tensors, "layers.0.wo").shape = vec![12, 8, 1];
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::WrongShape { name, expected, actual }
            if name == "layers.0.wo" && expected == &[12, 8] && actual == &[12, 8, 1]),
        "{err:?}"
    );
}

#[test]
fn a_shape_defining_tensor_that_is_not_2d_is_named() {
    let (mut tensors, metadata) = valid();
    find(&mut tensors, "classifier").shape = vec![40];
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::NotMatrix { name, shape }
            if name == "classifier" && shape == &[40]),
        "{err:?}"
    );
    assert_message(&err, &["`classifier`", "[40]", "2-D"]);
}

#[test]
fn an_integer_tensor_is_a_wrong_dtype() {
    let (mut tensors, metadata) = valid();
    find(&mut tensors, "layers.2.wv").dtype = safetensors::Dtype::I32;
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::WrongDtype { name, dtype: safetensors::Dtype::I32 }
            if name == "layers.2.wv"),
        "{err:?}"
    );
    assert_message(&err, &["`layers.2.wv`", "I32"]);
}

#[test]
fn a_non_finite_weight_is_named_with_its_index_row_and_column() {
    let (mut tensors, metadata) = valid();
    // layers.0.wo is [12][8]; index 8·5 + 3 is row 5, column 3.
    let wo = find(&mut tensors, "layers.0.wo");
    let index = 8 * 5 + 3;
    wo.data[index * 4..index * 4 + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::NonFinite {
            name, index: 43, row: 5, col: 3, value: NonFiniteValue::NaN,
        } if name == "layers.0.wo"),
        "{err:?}"
    );
    assert_message(
        &err,
        &["`layers.0.wo`", "value 43", "row 5", "column 3", "NaN"],
    );
}

#[test]
fn an_f16_infinity_is_non_finite() {
    let (mut tensors, metadata) = valid();
    let classifier = find(&mut tensors, "classifier");
    classifier.dtype = safetensors::Dtype::F16;
    classifier.data = (0..8 * 5)
        .flat_map(|i| {
            let v = if i == 7 { f32::NEG_INFINITY } else { 0.5 };
            half::f16::from_f32(v).to_le_bytes()
        })
        .collect();
    let err = import(&tensors, &metadata);
    assert!(
        matches!(&err, SafetensorsError::NonFinite {
            name, index: 7, row: 1, col: 2, value: NonFiniteValue::NegativeInfinity,
        } if name == "classifier"),
        "{err:?}"
    );
}

#[test]
fn missing_head_counts_without_heads_explain_how_to_supply_them() {
    let (tensors, _) = valid();
    let bytes = serialize(&tensors, &[("framework", "pt")]);
    let err = from_bytes(&bytes, None).unwrap_err();
    assert!(
        matches!(err, SafetensorsError::HeadsMissing { key: "n_q_heads" }),
        "{err:?}"
    );
    assert_message(&err, &["n_q_heads", "heads", "__metadata__"]);
    // No metadata at all behaves the same, and `heads` fixes it.
    let bytes = serialize(&tensors, &[]);
    let err = from_bytes(&bytes, None).unwrap_err();
    assert!(
        matches!(err, SafetensorsError::HeadsMissing { key: "n_q_heads" }),
        "{err:?}"
    );
    assert_eq!(from_bytes(&bytes, Some((4, 2))).unwrap().shape(), GQA);
}

#[test]
fn heads_that_disagree_with_the_metadata_are_refused() {
    let (tensors, metadata) = valid();
    let bytes = serialize_owned(&tensors, &metadata);
    let err = from_bytes(&bytes, Some((4, 1))).unwrap_err();
    assert!(
        matches!(
            err,
            SafetensorsError::HeadsDisagree {
                key: "n_kv_heads",
                metadata: 2,
                supplied: 1
            }
        ),
        "{err:?}"
    );
    assert_message(&err, &["n_kv_heads = 2", "1 was supplied"]);
}

#[test]
fn a_head_count_that_is_not_a_positive_integer_is_refused() {
    for bad in [
        "0",
        "-1",
        "4.0",
        " 4",
        "four",
        "",
        "99999999999999999999999",
    ] {
        let (tensors, mut metadata) = valid();
        metadata.retain(|(k, _)| *k != "n_q_heads");
        metadata.push(("n_q_heads", bad.to_owned()));
        let err = import(&tensors, &metadata);
        assert!(
            matches!(&err, SafetensorsError::BadMetadata { key: "n_q_heads", value } if value == bad),
            "{bad:?}: {err:?}"
        );
        assert_message(&err, &["`n_q_heads`", "positive integer"]);
    }
}

#[test]
fn another_format_or_version_is_refused_and_unknown_keys_are_not() {
    let (tensors, metadata) = valid();
    let with = |key: &'static str, value: &str| {
        let mut m: Vec<_> = metadata
            .iter()
            .filter(|(k, _)| *k != key)
            .cloned()
            .collect();
        m.push((key, value.to_owned()));
        m
    };
    let err = import(&tensors, &with("format", "pt"));
    assert!(
        matches!(&err, SafetensorsError::WrongFormat { found } if found == "pt"),
        "{err:?}"
    );
    assert_message(&err, &["`format`", "\"pt\""]);
    for bad in ["3", "2.0", "v2", ""] {
        let err = import(&tensors, &with("version", bad));
        assert!(
            matches!(&err, SafetensorsError::WrongVersion { found } if found == bad),
            "{err:?}"
        );
        assert_message(&err, &["`version`", &format!("{bad:?}"), "\"1\" or \"2\""]);
    }

    let bytes = serialize_owned(&tensors, &with("trained_on", "lab-3"));
    assert_eq!(from_bytes(&bytes, None).unwrap().shape(), GQA);
}

#[test]
fn query_columns_that_do_not_split_into_heads_are_refused() {
    let (tensors, mut metadata) = valid();
    metadata.retain(|(k, _)| *k != "n_q_heads");
    metadata.push(("n_q_heads", "5".to_owned()));
    let err = import(&tensors, &metadata);
    assert!(
        matches!(
            err,
            SafetensorsError::HeadsDontDivide {
                columns: 12,
                n_q_heads: 5
            }
        ),
        "{err:?}"
    );
    assert_message(&err, &["`layers.0.wq`", "12 columns", "n_q_heads 5"]);
}

#[test]
fn an_invalid_model_shape_is_a_shape_error() {
    let (tensors, _) = valid();
    let bytes = serialize(&tensors, &[]);
    let err = from_bytes(&bytes, Some((4, 3))).unwrap_err();
    assert!(
        matches!(
            err,
            SafetensorsError::Shape(ShapeError::GroupRatio {
                n_q_heads: 4,
                n_kv_heads: 3
            })
        ),
        "{err:?}"
    );
    assert_message(
        &err,
        &["invalid model shape", "n_q_heads 4", "n_kv_heads 3"],
    );
    let err = from_bytes(&bytes, Some((0, 1))).unwrap_err();
    assert!(
        matches!(
            err,
            SafetensorsError::Shape(ShapeError::ZeroDimension { field: "n_q_heads" })
        ),
        "{err:?}"
    );

    // One class: the classifier fixes C.
    let weights = ModelWeights::random(TINY, 22).unwrap();
    let mut tensors = tensors_of(&weights);
    let classifier = find(&mut tensors, "classifier");
    classifier.shape = vec![2, 1];
    classifier.data.truncate(2 * 4);
    let err = import(&tensors, &our_metadata(TINY));
    assert!(
        matches!(
            err,
            SafetensorsError::Shape(ShapeError::TooFewClasses { n_classes: 1 })
        ),
        "{err:?}"
    );
}

#[test]
fn offsets_past_the_end_of_the_file_are_refused_before_they_can_overflow() {
    // Nine U8 tensors whose sizes add up to usize::MAX: the safetensors
    // crate would overflow adding the header size to the last offset.
    let big = (1u64 << 61) - 1;
    let mut entries = Vec::new();
    let mut start = 0u64;
    for i in 0..9 {
        let size = if i < 8 { big } else { 7 };
        entries.push(format!(
            "\"t{i}\":{{\"dtype\":\"U8\",\"shape\":[{size}],\"data_offsets\":[{start},{}]}}",
            start + size
        ));
        start += size;
    }
    let bytes = raw_file(&format!("{{{}}}", entries.join(",")), &[]);
    let err = from_bytes(&bytes, Some((1, 1))).unwrap_err();
    assert!(
        matches!(&err, SafetensorsError::NotSafetensors {
            source: safetensors::SafeTensorError::InvalidOffset(name),
        } if name.starts_with('t')),
        "{err:?}"
    );
}

#[test]
fn export_refuses_non_finite_weights_and_f16_overflow_by_tensor() {
    let mut weights = ModelWeights::random(ModelShape::DEFAULT_AETHER, 23).unwrap();
    let span = weights
        .layout()
        .matrix(1, aether_model::MatrixKind::Value)
        .unwrap();
    // Row 2, column 7 of layer 1's Wv ([16][32]).
    weights.values_mut()[span.offset + 2 * 32 + 7] = 70_000.0;
    assert!(to_bytes(&weights, Dtype::F32).is_ok());
    let err = to_bytes(&weights, Dtype::F16).unwrap_err();
    assert!(
        matches!(&err, SafetensorsError::F16Overflow { name, index: 71, row: 2, col: 7, value }
            if name == "layers.1.wv" && *value == 70_000.0),
        "{err:?}"
    );
    assert_message(
        &err,
        &["`layers.1.wv`", "row 2", "column 7", "70000", "F32"],
    );

    weights.values_mut()[span.offset + 2 * 32 + 7] = f32::INFINITY;
    for dtype in [Dtype::F32, Dtype::F16] {
        let err = to_bytes(&weights, dtype).unwrap_err();
        assert!(
            matches!(&err, SafetensorsError::NonFinite {
                name, index: 71, row: 2, col: 7, value: NonFiniteValue::PositiveInfinity,
            } if name == "layers.1.wv"),
            "{err:?}"
        );
    }
}
