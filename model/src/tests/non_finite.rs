//! Finite frames and weights whose values outgrow f32: a typed
//! [`ModelError::NonFinite`] naming the first stage, in prefill and
//! streaming alike, never NaN logits; and a push that fails this way
//! leaves the stream exactly as it was.

use alloc::format;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use crate::{DEFAULT_SEED, MatrixKind, ModelOptions, ModelShape, ModelWeights};
use aether_domain::{
    AttentionBackend, AttentionError, BackendKind, CacheDtype, Eviction, HeadConfig,
};
use aether_reference::ReferenceBackend;
use aether_sparse::SparseBackend;

use super::{aether_config, frames};
use crate::{ModelError, NonFiniteValue, Stage, TemporalModel, WeightMatrix};

const D: usize = 16;

/// The model `aether init` writes: default shape, f32, default seed.
fn init_weights() -> Vec<f32> {
    ModelWeights::random(ModelShape::DEFAULT_AETHER, DEFAULT_SEED)
        .unwrap()
        .into_values()
}

fn blob(weights: &[f32]) -> ModelWeights {
    ModelWeights::new(ModelShape::DEFAULT_AETHER, weights.to_vec()).unwrap()
}

/// Body index of `[row][col]` of a layer's projection.
fn at(layer: usize, kind: MatrixKind, row: usize, col: usize) -> usize {
    let span = ModelShape::DEFAULT_AETHER
        .layout()
        .unwrap()
        .matrix(layer, kind)
        .unwrap();
    span.offset + row * span.cols + col
}

/// Body index of `[row][col]` of the classifier.
fn at_classifier(row: usize, col: usize) -> usize {
    let span = ModelShape::DEFAULT_AETHER.layout().unwrap().classifier();
    span.offset + row * span.cols + col
}

/// [`outcomes`] of the model on `blob` with `backend`.
fn outcomes_of<B: AttentionBackend>(
    blob: &ModelWeights,
    backend: B,
    frames: &[f32],
) -> [Result<Vec<f32>, ModelError>; 2] {
    outcomes(&TemporalModel::new(blob.clone(), backend).unwrap(), frames)
}

/// Each backend's verdict on `frames`: prefill over all of them, and the
/// first failing push of a fresh stream (or the last push's logits).
fn outcomes<B: AttentionBackend>(
    model: &TemporalModel<B>,
    frames: &[f32],
) -> [Result<Vec<f32>, ModelError>; 2] {
    let prefill = model.classify(frames);
    let mut stream = model.stream(frames.len() / D).unwrap();
    let mut logits = vec![0.0; 4];
    let streamed = frames
        .chunks_exact(D)
        .try_for_each(|frame| model.push(&mut stream, frame, &mut logits))
        .map(|()| logits);
    [prefill, streamed]
}

/// The promise of the issue: whatever the backend and whatever finite
/// frames, a forward either gives finite logits or says where it
/// overflowed. Before the check, frames >= 1e18 gave `Ok([NaN; 4])` with
/// the sparse backend (an f32 score overflow inside its kernel), and 3e38
/// frames gave NaN logits with every backend.
#[test]
fn huge_frames_never_give_non_finite_logits() {
    let blob = blob(&init_weights());
    for value in [1e18f32, 1e30, 1e38, 3e38] {
        let x = vec![value; 3 * D];
        for kind in [
            BackendKind::Reference,
            BackendKind::Dense,
            BackendKind::Sparse,
        ] {
            let config = aether_config(kind);
            let all = match kind {
                BackendKind::Reference => {
                    outcomes_of(&blob, ReferenceBackend::new(config).unwrap(), &x)
                }
                BackendKind::Dense => {
                    outcomes_of(&blob, aether_dense::DenseBackend::new(config).unwrap(), &x)
                }
                BackendKind::Sparse => outcomes_of(&blob, SparseBackend::new(config).unwrap(), &x),
            };
            for outcome in all {
                match outcome {
                    Ok(logits) => assert!(
                        logits.iter().all(|l| l.is_finite()),
                        "{kind:?} frames of {value:e}: Ok({logits:?})"
                    ),
                    Err(e) => assert!(
                        matches!(e, ModelError::NonFinite { .. }),
                        "{kind:?} frames of {value:e}: {e:?}"
                    ),
                }
            }
        }
    }
}

/// Frames of 3e38 overflow the model's own f32 arithmetic (whatever the
/// backend): the first projection of layer 0, on frame 0, in prefill and
/// streaming alike.
#[test]
fn frames_of_3e38_fail_at_the_first_projection() {
    let blob = blob(&init_weights());
    let model = TemporalModel::new(
        blob.clone(),
        ReferenceBackend::new(aether_config(BackendKind::Reference)).unwrap(),
    )
    .unwrap();
    let x = vec![3e38f32; 3 * D];
    let expected = ModelError::NonFinite {
        stage: Stage::Query { layer: 0 },
        frame: 0,
    };
    let [prefill, streamed] = outcomes(&model, &x);
    assert_eq!(prefill.unwrap_err(), expected);
    assert_eq!(streamed.unwrap_err(), expected);
    assert_eq!(
        expected.to_string(),
        "frame 0: layer 0 query projection x·Wq is not finite although its inputs are \
         (f32 overflow)"
    );
}

/// A blob the writer accepts (valid CRC) with one weight of 3e38: a
/// frame value of 2 multiplies it past f32::MAX in the first product.
#[test]
fn a_huge_finite_weight_is_a_typed_error() {
    let mut weights = init_weights();
    weights[at(0, MatrixKind::Query, 0, 5)] = 3e38;
    let blob = blob(&weights);
    let model = TemporalModel::new(
        blob.clone(),
        ReferenceBackend::new(aether_config(BackendKind::Reference)).unwrap(),
    )
    .unwrap();
    let mut x = frames(4, D, 7);
    x[2 * D] = 2.0;
    let expected = ModelError::NonFinite {
        stage: Stage::Query { layer: 0 },
        frame: 2,
    };
    let [prefill, streamed] = outcomes(&model, &x);
    assert_eq!(prefill.unwrap_err(), expected);
    assert_eq!(streamed.unwrap_err(), expected);
    // Frames before the bad one are fine.
    assert!(model.classify(&x[..2 * D]).is_ok());

    // The same weight in the classifier: the layers are fine, the logits
    // are not; prefill reports the last frame, the classifier's only one.
    let mut weights = init_weights();
    weights[at_classifier(3, 1)] = 3e38;
    let blob = self::blob(&weights);
    let model = TemporalModel::new(
        blob.clone(),
        ReferenceBackend::new(aether_config(BackendKind::Reference)).unwrap(),
    )
    .unwrap();
    let mut x = frames(3, D, 7);
    let mut logits = [0.0; 4];
    model.classify_into(&x[..2 * D], &mut logits).unwrap();
    x[2 * D + 3] = 100.0;
    let before = logits;
    assert_eq!(
        model.classify_into(&x, &mut logits).unwrap_err(),
        ModelError::NonFinite {
            stage: Stage::Classifier,
            frame: 2
        }
    );
    assert_eq!(logits, before, "a failed classify leaves the logits");
}

#[test]
fn non_finite_weights_and_frames_are_named() {
    let mut weights = init_weights();
    let index = at(1, MatrixKind::Output, 70, 9);
    weights[index] = f32::NEG_INFINITY;
    let view = blob(&weights);
    let err = TemporalModel::new(
        view,
        ReferenceBackend::new(aether_config(BackendKind::Reference)).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ModelError::NonFiniteWeight {
            index,
            matrix: WeightMatrix::Layer {
                layer: 1,
                kind: MatrixKind::Output
            },
            row: 70,
            col: 9,
            value: NonFiniteValue::NegativeInfinity,
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "weight {index} of the blob (layer 1 Wo row 70, col 9) is -inf; the model refuses \
             non-finite weights"
        )
    );
    let layout = ModelShape::DEFAULT_AETHER.layout().unwrap();
    assert_eq!(
        WeightMatrix::locate(&layout, at_classifier(15, 3)),
        Some((WeightMatrix::Classifier, 15, 3))
    );
    assert_eq!(WeightMatrix::locate(&layout, layout.weight_count()), None);
    assert_eq!(
        WeightMatrix::locate(&layout, at(0, MatrixKind::Value, 15, 31)),
        Some((
            WeightMatrix::Layer {
                layer: 0,
                kind: MatrixKind::Value
            },
            15,
            31
        ))
    );

    let model = TemporalModel::new(
        blob(&init_weights()),
        ReferenceBackend::new(aether_config(BackendKind::Reference)).unwrap(),
    )
    .unwrap();
    let mut stream = model.stream(4).unwrap();
    let mut logits = [0.0; 4];
    let x = frames(2, D, 1);
    model.push(&mut stream, &x[..D], &mut logits).unwrap();
    let mut bad = x[D..].to_vec();
    bad[6] = f32::NAN;
    let err = model.push(&mut stream, &bad, &mut logits).unwrap_err();
    assert_eq!(
        err,
        ModelError::NonFiniteFrame {
            frame: 1,
            column: 6,
            value: NonFiniteValue::NaN
        }
    );
    assert_eq!(
        err.to_string(),
        "value 6 of frame 1 is NaN; frames must be finite"
    );
}

#[test]
fn stage_names() {
    let names: Vec<_> = [
        Stage::Query { layer: 1 },
        Stage::Key { layer: 0 },
        Stage::Value { layer: 0 },
        Stage::Attention { layer: 1 },
        Stage::Output { layer: 0 },
        Stage::Classifier,
    ]
    .iter()
    .map(|s| {
        format!(
            "{s} / {:?} / {:?}",
            s.layer(),
            s.matrix().map(|m| m.to_string())
        )
    })
    .collect();
    assert_eq!(
        names,
        [
            "layer 1 query projection x·Wq / Some(1) / Some(\"layer 1 Wq\")",
            "layer 0 key projection x·Wk / Some(0) / Some(\"layer 0 Wk\")",
            "layer 0 value projection x·Wv / Some(0) / Some(\"layer 0 Wv\")",
            "layer 1 attention output / Some(1) / None",
            "layer 0 output projection and residual x + attention·Wo / Some(0) / \
             Some(\"layer 0 Wo\")",
            "classifier logits x·Wc / None / Some(\"classifier Wc\")",
        ]
    );
}

/// Where a crafted blob overflows on the bad frame.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// Layer 0's queries: nothing appended yet.
    Query0,
    /// Layer 1's queries: layer 0 has appended.
    Query1,
    /// Layer 1's residual: both layers have appended.
    Output1,
    /// The logits: both layers have appended.
    Classifier,
}

/// The column that only the bad frame sets: `x[15]`.
const TRIGGER: usize = 15;
/// Its value in the bad frame (good frames have 0 there).
const TRIGGER_VALUE: f32 = 100.0;

/// The `aether init` weights rewired so that `x[15]` reaches nothing but
/// the trigger's matrix, where it meets a huge (finite) weight. No layer
/// writes column 15 of the residual stream (Wo column 15 is zero) and no
/// projection reads it (row 15 of Wq, Wk, Wv and Wc is zero), so a good
/// frame (x[15] = 0) runs the unmodified arithmetic on every other
/// column, and the bad frame (x[15] = 100) overflows exactly at the
/// trigger: `100 * 1e37` is infinite, and adding it to a finite partial
/// sum keeps it infinite.
fn trigger_blob(trigger: Trigger) -> ModelWeights {
    let mut w = init_weights();
    for layer in 0..2 {
        for kind in [MatrixKind::Query, MatrixKind::Key, MatrixKind::Value] {
            let cols = if kind == MatrixKind::Query { 128 } else { 32 };
            for col in 0..cols {
                w[at(layer, kind, TRIGGER, col)] = 0.0;
            }
        }
        for row in 0..128 {
            w[at(layer, MatrixKind::Output, row, TRIGGER)] = 0.0;
        }
    }
    for col in 0..4 {
        w[at_classifier(TRIGGER, col)] = 0.0;
    }
    match trigger {
        Trigger::Query0 | Trigger::Query1 => {
            let layer = usize::from(matches!(trigger, Trigger::Query1));
            for col in 0..128 {
                w[at(layer, MatrixKind::Query, TRIGGER, col)] = 1e37;
            }
        }
        Trigger::Output1 => {
            // v[0] is 0 for a good frame and 1e32 for the bad one; Wo row 0
            // turns any positive share of it into infinity, and a share of 0
            // (every good frame) into 0.
            for row in 0..D {
                w[at(1, MatrixKind::Value, row, 0)] = 0.0;
            }
            w[at(1, MatrixKind::Value, TRIGGER, 0)] = 1e30;
            for col in 0..D - 1 {
                w[at(1, MatrixKind::Output, 0, col)] = 1e20;
            }
        }
        Trigger::Classifier => {
            for col in 0..4 {
                w[at_classifier(TRIGGER, col)] = 1e37;
            }
        }
    }
    blob(&w)
}

fn good_frames(n: usize) -> Vec<f32> {
    let mut x = frames(n, D, 11);
    x.chunks_exact_mut(D).for_each(|f| f[TRIGGER] = 0.0);
    x
}

/// A push that fails after some layers appended takes those appends back:
/// the caches equal their state before the push, and continuing the
/// stream gives, bit for bit, the logits of a stream that never saw the
/// bad frame — for every eviction policy and cache dtype, failing on the
/// first frame, mid-stream, repeatedly, and once the cache is evicting.
#[test]
fn a_failed_push_leaves_the_stream_unchanged() {
    let good = good_frames(30);
    let mut bad = good[..D].to_vec();
    bad[TRIGGER] = TRIGGER_VALUE;
    // Bad frames are offered before good frame i for each i here (twice at 5).
    let bad_before = [0, 5, 5, 20, 29];
    // Version 1, and input centring with a pooled readout (no weights of
    // their own, so the same trigger weights): their running means must
    // not take in the refused frame either.
    let centred_pooled = ModelOptions {
        centre_shift: 2,
        centre_gain_log2: 1,
        pool_shift: 3,
        ..ModelOptions::V1
    };
    for (options, trigger) in [ModelOptions::V1, centred_pooled]
        .into_iter()
        .flat_map(|o| {
            [
                Trigger::Query0,
                Trigger::Query1,
                Trigger::Output1,
                Trigger::Classifier,
            ]
            .map(|t| (o, t))
        })
    {
        let shape = ModelShape {
            options,
            ..ModelShape::DEFAULT_AETHER
        };
        let blob = ModelWeights::new(shape, trigger_blob(trigger).into_values()).unwrap();
        // A centred first frame is all zeros, so it cannot trigger; and
        // centring and pooling shrink x[15] (to 2·¾·x, then ⅛ of that in
        // the pool), so the bad value grows to keep `x·1e37` infinite.
        let (bad_before, bad) = if options.centre_shift > 0 {
            let mut bigger = bad.clone();
            bigger[TRIGGER] = 10.0 * TRIGGER_VALUE;
            (&bad_before[1..], bigger)
        } else {
            (&bad_before[..], bad.clone())
        };
        for dtype in [CacheDtype::F32, CacheDtype::F16] {
            for (eviction, capacity) in [
                (Eviction::None, 30),
                (Eviction::SlidingWindow, 8),
                (Eviction::HeavyHitter { recent: 3 }, 8),
            ] {
                let config = HeadConfig {
                    cache_dtype: dtype,
                    eviction,
                    ..aether_config(BackendKind::Reference)
                };
                let what = format!("{options:?} {trigger:?} {dtype:?} {eviction:?}");
                let by_reference = TemporalModel::new(
                    blob.clone(),
                    ReferenceBackend::new(config.clone()).unwrap(),
                )
                .unwrap();
                let by_sparse = TemporalModel::new(
                    blob.clone(),
                    SparseBackend::new(HeadConfig {
                        backend: BackendKind::Sparse,
                        ..config
                    })
                    .unwrap(),
                )
                .unwrap();
                check_undo(
                    &by_reference,
                    trigger,
                    dtype,
                    capacity,
                    &good,
                    &bad,
                    bad_before,
                    &what,
                );
                check_undo(
                    &by_sparse, trigger, dtype, capacity, &good, &bad, bad_before, &what,
                );
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_undo<B: AttentionBackend>(
    model: &TemporalModel<B>,
    trigger: Trigger,
    dtype: CacheDtype,
    capacity: usize,
    good: &[f32],
    bad: &[f32],
    bad_before: &[usize],
    what: &str,
) {
    let mut clean = model.stream(capacity).unwrap();
    let mut tried = model.stream(capacity).unwrap();
    let (mut want, mut got) = ([0.0f32; 4], [0.0f32; 4]);
    for (i, frame) in good.chunks_exact(D).enumerate() {
        for _ in bad_before.iter().filter(|&&b| b == i) {
            let before = tried.clone();
            let logits_before = got;
            let err = model.push(&mut tried, bad, &mut got).expect_err(what);
            let stage = match trigger {
                Trigger::Query0 => Stage::Query { layer: 0 },
                Trigger::Query1 => Stage::Query { layer: 1 },
                Trigger::Output1 => Stage::Output { layer: 1 },
                Trigger::Classifier => Stage::Classifier,
            };
            if matches!((trigger, dtype), (Trigger::Output1, CacheDtype::F16)) {
                // v = 1e32 does not fit an f16 cache: layer 1's append
                // refuses it, after layer 0's append.
                assert!(
                    matches!(
                        err,
                        ModelError::Attention(AttentionError::F16Overflow { position, .. })
                            if position == i
                    ),
                    "{what} at {i}: {err:?}"
                );
            } else {
                assert_eq!(
                    err,
                    ModelError::NonFinite { stage, frame: i },
                    "{what} at {i}"
                );
            }
            // `assert!`, not `assert_eq!`: a cache's Debug is kilobytes.
            assert!(
                tried.caches == before.caches,
                "{what}: caches after the bad push at {i}"
            );
            assert_eq!(tried.len(), i, "{what}");
            assert_eq!(
                got.map(f32::to_bits),
                logits_before.map(f32::to_bits),
                "{what}: logits buffer at {i}"
            );
        }
        model.push(&mut clean, frame, &mut want).unwrap();
        model.push(&mut tried, frame, &mut got).unwrap();
        assert_eq!(
            got.map(f32::to_bits),
            want.map(f32::to_bits),
            "{what}: frame {i} after bad pushes"
        );
        assert!(want.iter().all(|l| l.is_finite()), "{what}: {want:?}");
    }
    assert!(tried.caches == clean.caches, "{what}: final caches");
    assert_eq!(tried.centre, clean.centre, "{what}: centring mean");
    assert_eq!(tried.pool, clean.pool, "{what}: pooled readout");
}

/// `with_frame` renumbers exactly the variants that name a frame.
#[test]
fn with_frame_renumbers_only_errors_that_name_a_frame() {
    let overflow = ModelError::NonFinite {
        stage: Stage::Classifier,
        frame: 1,
    }
    .with_frame(7);
    assert_eq!(overflow.frame(), Some(7));
    assert_eq!(
        overflow,
        ModelError::NonFinite {
            stage: Stage::Classifier,
            frame: 7
        }
    );
    let other = ModelError::Attention(AttentionError::StepNotCausal);
    assert_eq!(other.clone().with_frame(7), other);
}
