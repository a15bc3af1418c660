//! Model tests: a hand-computed one-layer case, prefill against streaming
//! for every frame, and each typed error.

use alloc::vec;
use alloc::vec::Vec;

use crate::{DEFAULT_SEED, MatrixKind, ModelShape, ModelWeights};
use aether_dense::DenseBackend;
use aether_domain::{AttentionError, BackendKind, HeadConfig};
use aether_reference::ReferenceBackend;

use super::*;

/// f32 model outputs after two layers of projections (~100 multiply-adds
/// per value) and attention: a few ulp of 1, far below 1e-5.
const TOLERANCE: f32 = 1e-5;

fn aether_config(backend: BackendKind) -> HeadConfig {
    HeadConfig {
        backend,
        ..HeadConfig::default_aether()
    }
}

fn frames(n: usize, input_dim: usize, seed: u32) -> Vec<f32> {
    (0..n * input_dim)
        .map(|i| {
            let x = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
            (x as f32 / (1u32 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// D 2, one head of dim 1, one layer, 2 classes, two frames: every number
/// written out.
#[test]
fn one_layer_by_hand() {
    let shape = ModelShape {
        input_dim: 2,
        n_q_heads: 1,
        n_kv_heads: 1,
        head_dim: 1,
        n_layers: 1,
        n_classes: 2,
        options: crate::ModelOptions::V1,
    };
    // Wq [2][1], Wk [2][1], Wv [2][1], Wo [1][2], Wc [2][2].
    let weights = vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5, -0.5, 1.0, 2.0, 3.0, 4.0];
    let weights = ModelWeights::new(shape, weights).unwrap();
    let config = HeadConfig {
        q_heads: 1,
        kv_heads: 1,
        head_dim: 1,
        window: 4,
        ..HeadConfig::default_aether()
    };
    let model = TemporalModel::new(weights, ReferenceBackend::new(config).unwrap()).unwrap();
    let x = [1.0f32, 2.0, 3.0, 5.0];
    // Frame 1: q = 3, keys (frame 0: 2, frame 1: 5), values (3, 8); scale 1.
    let (w0, w1) = (libm::exp(6.0f64), libm::exp(15.0f64));
    let attended = (3.0 * w0 + 8.0 * w1) / (w0 + w1);
    let x1 = [3.0 + 0.5 * attended, 5.0 - 0.5 * attended];
    let expected = [x1[0] + 3.0 * x1[1], 2.0 * x1[0] + 4.0 * x1[1]];
    let logits = model.classify(&x).unwrap();
    for (got, want) in logits.iter().zip(expected) {
        assert!(
            (f64::from(*got) - want).abs() < 1e-4,
            "{logits:?} vs {expected:?}"
        );
    }
}

#[test]
fn streaming_equals_prefill_at_every_frame() {
    // f16-stored weights are covered where blobs are decoded (the `.rvne`
    // crate and the integration tests); here the arithmetic is the point.
    for scale in [1.0_f32, 0.5] {
        let mut weights = default_weights(DEFAULT_SEED);
        weights.values_mut().iter_mut().for_each(|w| *w *= scale);
        let x = frames(70, 16, 3);
        let reference = ReferenceBackend::new(aether_config(BackendKind::Reference)).unwrap();
        let dense = DenseBackend::new(aether_config(BackendKind::Dense)).unwrap();
        let by_reference = TemporalModel::new(weights.clone(), reference).unwrap();
        let by_dense = TemporalModel::new(weights, dense).unwrap();
        let mut stream = by_reference.stream(70).unwrap();
        let mut streamed = vec![0.0; 4];
        for t in 0..70 {
            by_reference
                .push(&mut stream, &x[t * 16..(t + 1) * 16], &mut streamed)
                .unwrap();
            let prefill = by_reference.classify(&x[..(t + 1) * 16]).unwrap();
            let err = max_abs_diff(&streamed, &prefill);
            assert!(err <= TOLERANCE, "scale {scale} frame {t}: {err}");
            assert!(streamed.iter().all(|l| l.is_finite()));
        }
        assert_eq!(stream.len(), 70);
        // With W 32 >= N-1 for the first 33 frames, sparse-pattern logits equal dense.
        let short = &x[..33 * 16];
        let err = max_abs_diff(
            &by_reference.classify(short).unwrap(),
            &by_dense.classify(short).unwrap(),
        );
        assert!(err <= TOLERANCE, "scale {scale} reference vs dense: {err}");
        // Beyond the window the pattern differs from dense, so must the logits.
        let long_gap = max_abs_diff(
            &by_reference.classify(&x).unwrap(),
            &by_dense.classify(&x).unwrap(),
        );
        assert!(long_gap > TOLERANCE, "sparse pattern should matter at N 70");
    }
}

#[test]
fn blob_heads_must_match_the_config() {
    let blob = default_weights(1);
    let config = HeadConfig {
        kv_heads: 2,
        ..aether_config(BackendKind::Reference)
    };
    let err = TemporalModel::new(blob, ReferenceBackend::new(config).unwrap()).unwrap_err();
    assert_eq!(
        err,
        ModelError::HeadMismatch {
            blob_q: 4,
            blob_kv: 1,
            blob_dim: 32,
            config_q: 4,
            config_kv: 2,
            config_dim: 32
        }
    );
}

#[test]
fn non_finite_weights_are_refused() {
    // A hostile or buggy importer could hand over a NaN.
    let mut view = default_weights(1);
    view.values_mut()[123] = f32::NAN;
    let backend = ReferenceBackend::new(aether_config(BackendKind::Reference)).unwrap();
    assert_eq!(
        TemporalModel::new(view, backend).unwrap_err(),
        ModelError::NonFiniteWeight {
            index: 123,
            matrix: WeightMatrix::Layer {
                layer: 0,
                kind: MatrixKind::Query
            },
            row: 0,
            col: 123,
            value: NonFiniteValue::NaN,
        }
    );
}

#[test]
fn bad_frames_and_buffers_are_typed_errors_and_leave_the_stream() {
    let blob = default_weights(1);
    let backend = ReferenceBackend::new(aether_config(BackendKind::Reference)).unwrap();
    let model = TemporalModel::new(blob, backend).unwrap();
    assert_eq!(
        model.classify(&[0.0; 17]).unwrap_err(),
        ModelError::FrameLength {
            len: 17,
            input_dim: 16
        }
    );
    assert_eq!(
        model.classify(&[]).unwrap_err(),
        ModelError::FrameLength {
            len: 0,
            input_dim: 16
        }
    );
    let mut bad = frames(2, 16, 1);
    bad[20] = f32::INFINITY;
    assert_eq!(
        model.classify(&bad).unwrap_err(),
        ModelError::NonFiniteFrame {
            frame: 1,
            column: 4,
            value: NonFiniteValue::PositiveInfinity
        }
    );
    let mut logits = [0.0; 3];
    assert_eq!(
        model
            .classify_into(&frames(1, 16, 1), &mut logits)
            .unwrap_err(),
        ModelError::LogitsLength {
            expected: 4,
            actual: 3
        }
    );

    let mut stream = model.stream(2).unwrap();
    let mut logits = [0.0; 4];
    let frame = frames(1, 16, 9);
    model.push(&mut stream, &frame, &mut logits).unwrap();
    model.push(&mut stream, &frame, &mut logits).unwrap();
    let before = logits;
    assert_eq!(
        model.push(&mut stream, &frame, &mut logits).unwrap_err(),
        ModelError::Attention(AttentionError::CacheFull { capacity: 2 })
    );
    assert_eq!(
        stream.len(),
        2,
        "a refused push appends nothing to any layer"
    );
    assert_eq!(logits, before);
    let mut nan_frame = frame.clone();
    nan_frame[0] = f32::NAN;
    stream.clear();
    assert_eq!(
        model
            .push(&mut stream, &nan_frame, &mut logits)
            .unwrap_err(),
        ModelError::NonFiniteFrame {
            frame: 0,
            column: 0,
            value: NonFiniteValue::NaN
        }
    );
    assert!(stream.is_empty());

    let one_layer = ModelShape {
        n_layers: 1,
        ..ModelShape::DEFAULT_AETHER
    };
    let other_blob = ModelWeights::random(one_layer, 1).unwrap();
    let other = TemporalModel::new(
        other_blob,
        ReferenceBackend::new(aether_config(BackendKind::Reference)).unwrap(),
    )
    .unwrap();
    let mut foreign = other.stream(4).unwrap();
    assert_eq!(
        model.push(&mut foreign, &frame, &mut logits).unwrap_err(),
        ModelError::ForeignStream {
            expected: 2,
            actual: 1
        }
    );
}

#[test]
fn non_causal_heads_cannot_stream() {
    let blob = default_weights(1);
    let config = HeadConfig {
        causal: false,
        ..aether_config(BackendKind::Reference)
    };
    let model = TemporalModel::new(blob, ReferenceBackend::new(config).unwrap()).unwrap();
    assert_eq!(
        model.stream(8).unwrap_err(),
        ModelError::Attention(AttentionError::StepNotCausal)
    );
    assert_eq!(model.classify(&frames(3, 16, 2)).unwrap().len(), 4);
}

/// The embedding is what the classifier reads: times Wc it gives the
/// logits, bit for bit (the same row-vector product).
#[test]
fn the_embedding_times_the_classifier_is_the_logits() {
    let weights = default_weights(5);
    let wc = weights.matrix(WeightMatrix::Classifier).unwrap().to_vec();
    let model = TemporalModel::new(
        weights,
        ReferenceBackend::new(aether_config(BackendKind::Reference)).unwrap(),
    )
    .unwrap();
    let x = frames(40, 16, 9);
    let mut embedding = [0.0_f32; 16];
    model.embedding_into(&x, &mut embedding).unwrap();
    let mut logits = [0.0_f32; 4];
    for (r, &e) in embedding.iter().enumerate() {
        for (c, l) in logits.iter_mut().enumerate() {
            *l += e * wc[r * 4 + c];
        }
    }
    assert_eq!(logits.to_vec(), model.classify(&x).unwrap());
    assert_eq!(
        model.embedding_into(&x, &mut [0.0; 4]).unwrap_err(),
        ModelError::LogitsLength {
            expected: 16,
            actual: 4
        }
    );
}

/// Random weights of the default AETHER shape.
fn default_weights(seed: u64) -> ModelWeights {
    ModelWeights::random(ModelShape::DEFAULT_AETHER, seed).unwrap()
}

mod non_finite;

/// Version 2's body (`docs/model.md`, "Body order, version 2"): the
/// weight count is the sum of every present part, parts sit in body
/// order, neutral parts start neutral, and a v1 shape is unchanged.
#[test]
fn version_2_layout_follows_the_documented_body_order() {
    use crate::{ModelOptions, Norm};
    let (d, h, k) = (16, 24, 3);
    let shape = ModelShape {
        options: ModelOptions {
            norm: Norm::Layer,
            conv_taps: k,
            mlp_hidden: h,
            ..ModelOptions::V1
        },
        ..ModelShape::DEFAULT_AETHER
    };
    let v1 = ModelShape::DEFAULT_AETHER.weight_count().unwrap();
    let per_layer_extra = 2 * d + k * d + 2 * d + d * h + h + h * d + d;
    assert_eq!(
        shape.weight_count().unwrap(),
        v1 + 2 * per_layer_extra + 2 * d
    );
    let layout = shape.layout().unwrap();
    let names: Vec<&str> = layout.parts().map(|(m, _)| m.short_name()).collect();
    let layer = [
        "γ1", "β1", "Wconv", "Wq", "Wk", "Wv", "Wo", "γ2", "β2", "W1", "b1", "W2", "b2",
    ];
    let expected: Vec<&str> = layer
        .iter()
        .chain(&layer)
        .chain(&["γf", "βf", "Wc"])
        .copied()
        .collect();
    assert_eq!(names, expected);
    // Spans tile the body without gaps.
    let mut next = 0;
    for span in layout.spans() {
        assert_eq!(span.offset, next);
        next += span.len();
    }
    assert_eq!(next, layout.weight_count());

    let weights = ModelWeights::random(shape, 3).unwrap();
    let conv = weights
        .matrix(WeightMatrix::Layer {
            layer: 1,
            kind: MatrixKind::Conv,
        })
        .unwrap();
    assert!(conv[..d].iter().all(|&w| w == 1.0) && conv[d..].iter().all(|&w| w == 0.0));
    assert!(
        weights
            .matrix(WeightMatrix::FinalNormScale)
            .unwrap()
            .iter()
            .all(|&w| w == 1.0)
    );
    assert!(
        weights
            .matrix(WeightMatrix::FinalNormShift)
            .unwrap()
            .iter()
            .all(|&w| w == 0.0)
    );
    // Index → matrix agrees with the spans for a v2 part.
    let b1 = layout.matrix(0, MatrixKind::UpBias).unwrap();
    assert_eq!(
        WeightMatrix::locate(&layout, b1.offset + 5),
        Some((
            WeightMatrix::Layer {
                layer: 0,
                kind: MatrixKind::UpBias
            },
            0,
            5
        ))
    );
    // RMS norms have no shift; a 1-tap convolution is refused.
    let rms = ModelShape {
        options: ModelOptions {
            norm: Norm::Rms,
            ..ModelOptions::V1
        },
        ..ModelShape::DEFAULT_AETHER
    };
    assert_eq!(rms.weight_count().unwrap(), v1 + 2 * d + d);
    let one_tap = ModelShape {
        options: ModelOptions {
            conv_taps: 1,
            ..ModelOptions::V1
        },
        ..ModelShape::DEFAULT_AETHER
    };
    assert_eq!(one_tap.layout(), Err(crate::ShapeError::ConvTaps));
    // (The version-1 init bits are pinned by `aether init`'s CRC and the
    // golden blob.)
}

/// Random version-2 weights with every part perturbed, so no option is an
/// identity: norms, convolution taps and MLP biases all matter.
fn v2_weights(options: crate::ModelOptions, seed: u64) -> ModelWeights {
    let shape = ModelShape {
        options,
        ..ModelShape::DEFAULT_AETHER
    };
    let mut weights = ModelWeights::random(shape, seed).unwrap();
    let mut rng = crate::XorShift64Star::new(seed ^ 0x5A5A);
    for w in weights.values_mut() {
        *w += rng.next_symmetric(0.2);
    }
    weights
}

/// Every option, alone and together: streaming equals prefill at every
/// frame (with the convolution's ring wrapping many times), and with
/// N − 1 ≤ W the sparse pattern equals dense attention.
#[test]
fn version_2_streams_like_its_prefill() {
    use crate::{ModelOptions, Norm};
    let all = [
        ModelOptions {
            norm: Norm::Layer,
            ..ModelOptions::V1
        },
        ModelOptions {
            norm: Norm::Rms,
            ..ModelOptions::V1
        },
        ModelOptions {
            conv_taps: 4,
            ..ModelOptions::V1
        },
        ModelOptions {
            mlp_hidden: 8,
            ..ModelOptions::V1
        },
        ModelOptions {
            norm: Norm::Layer,
            conv_taps: 3,
            mlp_hidden: 8,
            ..ModelOptions::V1
        },
        ModelOptions {
            norm: Norm::Rms,
            conv_taps: 2,
            mlp_hidden: 5,
            ..ModelOptions::V1
        },
        ModelOptions {
            centre_shift: 3,
            centre_gain_log2: 2,
            ..ModelOptions::V1
        },
        ModelOptions {
            pool_shift: 2,
            ..ModelOptions::V1
        },
        ModelOptions {
            mlp_hidden: 8,
            centre_shift: 7,
            centre_gain_log2: 3,
            pool_shift: 6,
            ..ModelOptions::V1
        },
        ModelOptions {
            norm: Norm::Layer,
            conv_taps: 3,
            mlp_hidden: 8,
            centre_shift: 1,
            centre_gain_log2: 0,
            pool_shift: 1,
        },
    ];
    let x = frames(48, 16, 4);
    for options in all {
        let weights = v2_weights(options, 21);
        let reference = TemporalModel::new(
            weights.clone(),
            ReferenceBackend::new(aether_config(BackendKind::Reference)).unwrap(),
        )
        .unwrap();
        let dense = TemporalModel::new(
            weights,
            DenseBackend::new(aether_config(BackendKind::Dense)).unwrap(),
        )
        .unwrap();
        let mut stream = reference.stream(48).unwrap();
        let mut streamed = vec![0.0; 4];
        for t in 0..48 {
            reference
                .push(&mut stream, &x[t * 16..(t + 1) * 16], &mut streamed)
                .unwrap();
            let prefill = reference.classify(&x[..(t + 1) * 16]).unwrap();
            let err = max_abs_diff(&streamed, &prefill);
            assert!(err <= TOLERANCE, "{options:?} frame {t}: {err}");
        }
        let short = &x[..33 * 16];
        let err = max_abs_diff(
            &reference.classify(short).unwrap(),
            &dense.classify(short).unwrap(),
        );
        assert!(err <= TOLERANCE, "{options:?} reference vs dense: {err}");
        // The option changes the logits: it is not silently ignored.
        let v1 = TemporalModel::new(
            v2_weights(ModelOptions::V1, 21),
            ReferenceBackend::new(aether_config(BackendKind::Reference)).unwrap(),
        )
        .unwrap();
        assert!(max_abs_diff(&v1.classify(&x).unwrap(), &reference.classify(&x).unwrap()) > 1e-3);
    }
}

/// The running mean starts at the first frame and then moves by exactly
/// `2^−shift` of the way to each new frame; centring subtracts it (the
/// newest frame included) and applies the gain.
#[test]
fn running_means_follow_their_definition() {
    let mean = crate::v2::RunningMean::new(2).unwrap();
    assert!(crate::v2::RunningMean::new(0).is_none());
    let mut m = [0.0_f32; 2];
    mean.advance(true, &mut m, &[4.0, -8.0]);
    assert_eq!(m, [4.0, -8.0]);
    mean.advance(false, &mut m, &[8.0, 0.0]);
    assert_eq!(m, [0.75 * 4.0 + 0.25 * 8.0, 0.75 * -8.0]);
    let mut next = [0.0_f32; 2];
    mean.next(Some(&[4.0, -8.0]), &[8.0, 0.0], &mut next);
    assert_eq!(next, m, "the streaming form is the prefill form");
    // The largest shift still moves the mean; a finite mean of huge
    // frames stays finite.
    let slow = crate::v2::RunningMean::new(24).unwrap();
    let mut m = [1.0_f32];
    slow.advance(false, &mut m, &[3.0]);
    assert!(m[0] > 1.0);
    let mut m = [f32::MAX];
    mean.advance(false, &mut m, &[f32::MAX]);
    assert_eq!(m, [f32::MAX]);

    let centring = crate::v2::Centring::new(1, 3).unwrap();
    let mut x = [2.0_f32, 10.0, 6.0];
    let mut scratch = [0.0_f32];
    centring.apply_rows(&mut x, &mut scratch);
    // Means 2, 6, 6: the first frame centres to 0, the gain is 8.
    assert_eq!(x, [0.0, 8.0 * 4.0, 0.0]);
}

/// Options outside their ranges are typed errors naming the option.
#[test]
fn centring_and_pooling_ranges_are_checked() {
    use crate::{ModelOptions, ShapeError};
    let with = |options| ModelShape {
        options,
        ..ModelShape::DEFAULT_AETHER
    };
    let field = |options| match with(options).validate() {
        Err(ShapeError::OptionRange { field, .. }) => field,
        other => panic!("{options:?}: {other:?}"),
    };
    let v1 = ModelOptions::V1;
    assert_eq!(
        field(ModelOptions {
            centre_shift: 25,
            ..v1
        }),
        "centre_shift"
    );
    assert_eq!(
        field(ModelOptions {
            centre_shift: 1,
            centre_gain_log2: 16,
            ..v1
        }),
        "centre_gain_log2"
    );
    assert_eq!(
        field(ModelOptions {
            centre_gain_log2: 1,
            ..v1
        }),
        "centre_gain_log2"
    );
    assert_eq!(
        field(ModelOptions {
            pool_shift: 25,
            ..v1
        }),
        "pool_shift"
    );
    for ok in [
        ModelOptions {
            centre_shift: 24,
            centre_gain_log2: 15,
            pool_shift: 24,
            ..v1
        },
        ModelOptions {
            pool_shift: 1,
            ..v1
        },
    ] {
        assert_eq!(with(ok).validate(), Ok(()));
        assert!(!ok.is_v1());
    }
}

/// The convolution is causal and reads exactly K frames: tap 0 the
/// current one, tap j the frame j steps back, zeros before the start.
#[test]
fn the_convolution_reads_only_the_last_k_frames() {
    let taps = [1.0_f32, 2.0, 3.0, 10.0, 20.0, 30.0];
    let conv = crate::v2::Conv {
        taps: &taps,
        width: 3,
    };
    let history = [[1.0_f32, 1.0, 1.0], [2.0, 2.0, 2.0]];
    let mut out = [0.0_f32; 3];
    conv.apply(
        &[0.5, 0.5, 0.5],
        |j| history.get(j - 1).map(|f| &f[..]),
        &mut out,
    );
    // Tap 0 on the current frame, tap 1 on the frame one back; the frame
    // two back is beyond K = 2 and never read.
    assert_eq!(out, [0.5 + 10.0, 1.0 + 20.0, 1.5 + 30.0]);
    conv.apply(&[0.5, 0.5, 0.5], |_| None, &mut out);
    assert_eq!(out, [0.5, 1.0, 1.5]);
}

#[test]
fn first_non_finite_finds_the_first_bad_value_in_any_chunk() {
    let mut values = vec![1.5_f32; 200];
    assert_eq!(first_non_finite(&values), None);
    // Subnormals, zeros and the largest finite value are finite.
    values[3] = f32::MIN_POSITIVE / 2.0;
    values[4] = -0.0;
    values[5] = f32::MAX;
    assert_eq!(first_non_finite(&values), None);
    for (index, bad) in [
        (0, f32::NAN),
        (63, f32::INFINITY),
        (64, f32::NEG_INFINITY),
        (199, f32::NAN),
    ] {
        let mut v = values.clone();
        v[index] = bad;
        // A later bad value never hides an earlier one.
        v[199.min(index + 70)] = f32::NAN;
        assert_eq!(first_non_finite(&v), Some(index), "{bad} at {index}");
    }
}
