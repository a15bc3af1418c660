//! Export then import gives the same model (`docs/safetensors.md`): bit for
//! bit in F32, each weight rounded once through f16 in F16, and the file
//! carries the names, shapes and metadata the document promises.

mod common;

use aether_model::{ModelShape, ModelWeights};
use aether_safetensors::{Dtype, SafetensorsError, from_bytes, read_file, to_bytes, write_file};
use half::f16;
use safetensors::SafeTensors;

use common::{GQA, Raw, TINY, our_metadata, serialize_owned, tensors_of};

fn bits(weights: &ModelWeights) -> Vec<u32> {
    weights.values().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn f32_round_trip_is_bit_exact_for_the_default_and_a_gqa_shape() {
    for (shape, seed) in [(ModelShape::DEFAULT_AETHER, 1), (GQA, 2), (TINY, 3)] {
        let weights = ModelWeights::random(shape, seed).unwrap();
        let back = from_bytes(&to_bytes(&weights, Dtype::F32).unwrap(), None).unwrap();
        assert_eq!(back.shape(), shape);
        assert_eq!(bits(&back), bits(&weights));
    }
}

#[test]
fn f16_round_trip_equals_rounding_each_weight_through_f16() {
    for (shape, seed) in [(ModelShape::DEFAULT_AETHER, 4), (GQA, 5)] {
        let weights = ModelWeights::random(shape, seed).unwrap();
        let back = from_bytes(&to_bytes(&weights, Dtype::F16).unwrap(), None).unwrap();
        let expected: Vec<u32> = weights
            .values()
            .iter()
            .map(|&v| f16::from_f32(v).to_f32().to_bits())
            .collect();
        assert_eq!(back.shape(), shape);
        assert_eq!(bits(&back), expected);
        // Rounding did change something, so the test compares real work.
        assert_ne!(bits(&back), bits(&weights));
    }
}

#[test]
fn f16_export_rounds_to_nearest_even_and_keeps_the_largest_finite_values() {
    let mut weights = ModelWeights::zeros(TINY).unwrap();
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even 1.
    // 1 + 3·2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9: even is the latter.
    // 65519 is the largest f32 that rounds to f16's finite maximum 65504.
    let inputs = [
        1.0 + 2f32.powi(-11),
        1.0 + 3.0 * 2f32.powi(-11),
        65519.0,
        -65519.0,
    ];
    weights.values_mut()[..4].copy_from_slice(&inputs);
    let back = from_bytes(&to_bytes(&weights, Dtype::F16).unwrap(), None).unwrap();
    assert_eq!(
        &back.values()[..4],
        &[1.0, 1.0 + 2f32.powi(-9), 65504.0, -65504.0]
    );
}

#[test]
fn the_exported_file_has_the_documented_names_shapes_dtypes_and_metadata() {
    let weights = ModelWeights::random(ModelShape::DEFAULT_AETHER, 6).unwrap();
    for (dtype, st_dtype, width) in [
        (Dtype::F32, safetensors::Dtype::F32, 4),
        (Dtype::F16, safetensors::Dtype::F16, 2),
    ] {
        let bytes = to_bytes(&weights, dtype).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let mut names = file.names();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "classifier",
                "layers.0.wk",
                "layers.0.wo",
                "layers.0.wq",
                "layers.0.wv",
                "layers.1.wk",
                "layers.1.wo",
                "layers.1.wq",
                "layers.1.wv",
            ]
        );
        for (name, shape) in [
            ("layers.1.wq", [16, 128]),
            ("layers.1.wk", [16, 32]),
            ("layers.1.wv", [16, 32]),
            ("layers.1.wo", [128, 16]),
            ("classifier", [16, 4]),
        ] {
            let view = file.tensor(name).unwrap();
            assert_eq!(view.shape(), shape, "{name}");
            assert_eq!(view.dtype(), st_dtype, "{name}");
            assert_eq!(view.data().len(), shape[0] * shape[1] * width, "{name}");
        }
        // Row-major [in][out]: element [3][5] of layer 1's Wq.
        let wq = file.tensor("layers.1.wq").unwrap();
        let at = (3 * 128 + 5) * width;
        let stored = match dtype {
            Dtype::F32 => f32::from_le_bytes(wq.data()[at..at + 4].try_into().unwrap()),
            Dtype::F16 => f16::from_le_bytes(wq.data()[at..at + 2].try_into().unwrap()).to_f32(),
        };
        let layout = weights.layout();
        let span = layout.matrix(1, aether_model::MatrixKind::Query).unwrap();
        let expected = weights.values()[span.offset + 3 * 128 + 5];
        assert_eq!(stored, f16_if(dtype, expected));

        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let mut metadata: Vec<_> = header.metadata().clone().unwrap().into_iter().collect();
        metadata.sort_unstable();
        assert_eq!(
            metadata,
            [
                ("format".to_owned(), "aether-temporal".to_owned()),
                ("n_kv_heads".to_owned(), "1".to_owned()),
                ("n_q_heads".to_owned(), "4".to_owned()),
                ("version".to_owned(), "1".to_owned()),
            ]
        );
    }
}

fn f16_if(dtype: Dtype, value: f32) -> f32 {
    match dtype {
        Dtype::F32 => value,
        Dtype::F16 => f16::from_f32(value).to_f32(),
    }
}

#[test]
fn the_default_model_files_have_the_expected_sizes() {
    // 10,304 weights; the header is small next to the data.
    let weights = ModelWeights::random(ModelShape::DEFAULT_AETHER, 7).unwrap();
    let f32_len = to_bytes(&weights, Dtype::F32).unwrap().len();
    let f16_len = to_bytes(&weights, Dtype::F16).unwrap().len();
    assert!((41_216..41_216 + 1_024).contains(&f32_len), "{f32_len}");
    assert!((20_608..20_608 + 1_024).contains(&f16_len), "{f16_len}");
}

#[test]
fn supplied_heads_that_agree_with_the_metadata_are_accepted() {
    let weights = ModelWeights::random(GQA, 8).unwrap();
    let bytes = to_bytes(&weights, Dtype::F32).unwrap();
    assert_eq!(from_bytes(&bytes, Some((4, 2))).unwrap(), weights);
}

#[test]
fn heads_recorded_for_only_one_key_take_the_other_from_the_argument() {
    let weights = ModelWeights::random(GQA, 9).unwrap();
    let bytes = serialize_owned(&tensors_of(&weights), &[("n_q_heads", "4".to_owned())]);
    assert_eq!(from_bytes(&bytes, Some((4, 2))).unwrap(), weights);
    let err = from_bytes(&bytes, None).unwrap_err();
    assert!(
        matches!(err, SafetensorsError::HeadsMissing { key: "n_kv_heads" }),
        "{err:?}"
    );
}

#[test]
fn bf16_tensors_are_widened_exactly() {
    let weights = ModelWeights::random(TINY, 10).unwrap();
    let mut tensors = tensors_of(&weights);
    let classifier = tensors.pop().unwrap();
    let values: Vec<f32> = classifier
        .data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    tensors.push(Raw {
        name: classifier.name,
        dtype: safetensors::Dtype::BF16,
        shape: classifier.shape,
        data: values
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
    });
    let back = from_bytes(&serialize_owned(&tensors, &our_metadata(TINY)), None).unwrap();
    let span = back.layout().classifier();
    let expected: Vec<f32> = values
        .iter()
        .map(|&v| half::bf16::from_f32(v).to_f32())
        .collect();
    assert_eq!(&back.values()[span.range()], expected.as_slice());
    assert_eq!(
        &back.values()[..span.offset],
        &weights.values()[..span.offset]
    );
}

#[test]
fn files_round_trip_and_io_errors_name_the_path() {
    let dir = std::env::temp_dir().join(format!("aether-safetensors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    let weights = ModelWeights::random(GQA, 11).unwrap();
    write_file(&path, &weights, Dtype::F32).unwrap();
    assert_eq!(read_file(&path, None).unwrap(), weights);
    std::fs::remove_dir_all(&dir).unwrap();

    let err = read_file(&path, None).unwrap_err();
    assert!(
        matches!(&err, SafetensorsError::Io { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    let err = write_file(&path, &weights, Dtype::F32).unwrap_err();
    assert!(
        matches!(&err, SafetensorsError::Io { path: p, .. } if *p == path),
        "{err:?}"
    );
}

#[test]
fn an_export_is_a_pure_function_of_the_weights_and_dtype() {
    // The safetensors crate writes metadata keys in HashMap order; our
    // export sorts the header so repeated exports are byte-identical.
    let weights = ModelWeights::random(GQA, 12).unwrap();
    for dtype in [Dtype::F32, Dtype::F16] {
        let first = to_bytes(&weights, dtype).unwrap();
        for _ in 0..8 {
            assert_eq!(to_bytes(&weights, dtype).unwrap(), first);
        }
        let header_len = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
        assert_eq!(header_len % 8, 0);
        let header = std::str::from_utf8(&first[8..8 + header_len]).unwrap();
        assert!(
            header.starts_with(
                r#"{"__metadata__":{"format":"aether-temporal","n_kv_heads":"2","n_q_heads":"4","version":"1"},"classifier":"#
            ),
            "{header}"
        );
    }
}
