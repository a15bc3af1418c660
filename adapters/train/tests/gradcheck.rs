//! Finite-difference check of the trainer's gradients (`docs/training.md`,
//! "Gradient check"): autograd through the mask, the landmark averaging
//! and the grouped heads, and through the version-2 norms, causal
//! convolution and ReLU MLP, must equal central differences of the loss.
//!
//! Run with `--nocapture` to see the measured error.

use aether_domain::{BackendKind, HeadConfig, SparsePattern};
use aether_train::{Architecture, ModelOptions, Norm, TemporalNet};
use candle_core::{DType, Device, Tensor};

/// D 3, Hq 2, Hkv 1, d 2, L 2, C 3; window 2, block 2, so that at N = 12
/// the last queries have log-stride tokens, a global and landmark blocks.
fn tiny(backend: BackendKind, options: ModelOptions) -> Architecture {
    Architecture {
        input_dim: 3,
        n_classes: 3,
        n_layers: 2,
        head: HeadConfig {
            backend,
            q_heads: 2,
            kv_heads: 1,
            head_dim: 2,
            window: 2,
            block_size: 2,
            ..HeadConfig::default_aether()
        },
        options,
    }
}

/// Every version-2 option on: `norm`, a 3-tap convolution (so frames 0
/// and 1 read the zeros before the first frame), an MLP of width 4, input
/// centring (rate ½, gain 4) and a pooled readout (rate ½).
///
/// Why gain 4: with gain 2 the dense model's check measured 4.3e-6, with
/// the MLP off 1.3e-7 — one ReLU input then lies within the differences'
/// step of its kink, where the derivative does not exist; gains 1 and 4
/// measured below 1e-6 on both backends.
fn all_options(norm: Norm) -> ModelOptions {
    ModelOptions {
        norm,
        conv_taps: 3,
        mlp_hidden: 4,
        centre_shift: 1,
        centre_gain_log2: 2,
        pool_shift: 1,
    }
}

const N: usize = 12;
const BATCH: usize = 3;

/// Deterministic frames with varied signs and sizes.
fn frames() -> Tensor {
    let values: Vec<f64> = (0..BATCH * N * 3)
        .map(|i| ((i as f64) * 0.731).sin() * 1.5 + ((i * i) as f64 * 0.017).cos() * 0.5)
        .collect();
    Tensor::from_vec(values, (BATCH, N, 3), &Device::Cpu).unwrap()
}

fn loss(net: &TemporalNet, frames: &Tensor, labels: &Tensor) -> Tensor {
    let logits = net.logits(frames).unwrap();
    candle_nn::loss::cross_entropy(&logits, labels).unwrap()
}

/// The largest relative error over every weight:
/// `|autograd − numeric| / max(|autograd|, |numeric|, FLOOR)`, `numeric`
/// the five-point central difference.
fn max_relative_error(backend: BackendKind, options: ModelOptions) -> (f64, usize) {
    // Scale the initial weights up so softmax weights are far from
    // uniform and the attention pattern matters to the gradient. With
    // options, also move every value off its initial constant (γ = 1,
    // β = 0, the identity convolution, zero biases), so no derivative is
    // checked only at a special point.
    let v1 = options == ModelOptions::default();
    let net = TemporalNet::new(tiny(backend, options), 5, DType::F64).unwrap();
    for (k, var) in net.vars().into_iter().enumerate() {
        let mut moved = (var.as_tensor() * 3.0).unwrap();
        if !v1 {
            let count = var.as_tensor().elem_count();
            let offsets: Vec<f64> = (0..count)
                .map(|i| 0.4 * (1.7 * i as f64 + 0.9 * k as f64).sin())
                .collect();
            let offsets = Tensor::from_vec(offsets, var.shape().clone(), &Device::Cpu).unwrap();
            moved = (moved + offsets).unwrap();
        }
        var.set(&moved).unwrap();
    }
    let (frames, labels) = (frames(), Tensor::new(&[0u32, 2, 1], &Device::Cpu).unwrap());
    let grads = loss(&net, &frames, &labels).backward().unwrap();
    // Five points, h = 1e-5: the truncation error is O(h⁴·f⁽⁵⁾), far
    // below anything measurable. The plain central difference's
    // O(h²·f⁽³⁾) reached 3e-5 relative on the version-2 models, whose
    // norms, γ ≈ 3 and MLP make the loss strongly curved along some
    // weights (at h = 1e-6 that error fell 100-fold: truncation, not a
    // wrong derivative). What remains is rounding, O(ε·|f|/h) ≈ 1e-10
    // absolute; FLOOR keeps it from dominating the ratio for the few
    // gradients below 1e-4 (the smallest, 2.7e-5, belongs to a weight a
    // layer norm nearly cancels).
    const H: f64 = 1e-5;
    const FLOOR: f64 = 1e-4;
    let mut worst = 0.0f64;
    let mut count = 0;
    for var in net.vars() {
        let grad = grads
            .get(var.as_tensor())
            .expect("every weight has a gradient")
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let shape = var.shape().clone();
        let base = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for (i, &analytic) in grad.iter().enumerate() {
            let at = |delta: f64| {
                let mut moved = base.clone();
                moved[i] += delta;
                var.set(&Tensor::from_vec(moved, shape.clone(), &Device::Cpu).unwrap())
                    .unwrap();
                loss(&net, &frames, &labels).to_scalar::<f64>().unwrap()
            };
            let numeric = (8.0 * (at(H) - at(-H)) - (at(2.0 * H) - at(-2.0 * H))) / (12.0 * H);
            let scale = analytic.abs().max(numeric.abs()).max(FLOOR);
            worst = worst.max((analytic - numeric).abs() / scale);
            count += 1;
        }
        var.set(&Tensor::from_vec(base, shape, &Device::Cpu).unwrap())
            .unwrap();
    }
    (worst, count)
}

#[test]
fn the_tiny_shape_exercises_strides_globals_and_landmarks() {
    let pattern =
        SparsePattern::new(&tiny(BackendKind::Sparse, ModelOptions::default()).head).unwrap();
    let c = pattern.candidates(N - 1, N);
    // Window 9..=11, strides 7 and 3 outside it, global 0; landmark
    // blocks p = (11 - 2) / 2 - 1 = 3 and 3 - 1, 3 - 2.
    assert_eq!(c.tokens, vec![0, 3, 7, 9, 10, 11]);
    assert_eq!(c.landmark_blocks, vec![1, 2, 3]);
}

#[test]
fn sparse_gradients_match_central_differences() {
    let (error, count) = max_relative_error(BackendKind::Sparse, ModelOptions::default());
    println!("sparse gradient check: {count} weights, max relative error {error:.3e}");
    assert_eq!(count, 2 * (2 * 3 * 4 + 2 * 3 * 2) + 3 * 3);
    assert!(error < 1e-6, "max relative error {error:e}");
}

#[test]
fn dense_gradients_match_central_differences() {
    let (error, count) = max_relative_error(BackendKind::Dense, ModelOptions::default());
    println!("dense gradient check: {count} weights, max relative error {error:.3e}");
    assert!(error < 1e-6, "max relative error {error:e}");
}

#[test]
fn layer_norm_conv_mlp_gradients_match_central_differences() {
    let (error, count) = max_relative_error(BackendKind::Sparse, all_options(Norm::Layer));
    println!(
        "sparse, layer norm, conv 3, mlp 4 gradient check: {count} weights, max relative error \
         {error:.3e}"
    );
    // Per layer γ1 β1 3+3, Wconv 9, Wq Wk Wv Wo 36, γ2 β2 3+3, W1 12,
    // b1 4, W2 12, b2 3 (88); then γf βf 3+3 and Wc 9.
    assert_eq!(count, 2 * 88 + 6 + 9);
    assert!(error < 1e-6, "max relative error {error:e}");
}

#[test]
fn rms_norm_conv_mlp_gradients_match_central_differences() {
    let (error, count) = max_relative_error(BackendKind::Sparse, all_options(Norm::Rms));
    println!(
        "sparse, rms norm, conv 3, mlp 4 gradient check: {count} weights, max relative error \
         {error:.3e}"
    );
    // As layer norm without the three β vectors.
    assert_eq!(count, 2 * 82 + 3 + 9);
    assert!(error < 1e-6, "max relative error {error:e}");
}

#[test]
fn dense_all_options_gradients_match_central_differences() {
    let (error, count) = max_relative_error(BackendKind::Dense, all_options(Norm::Layer));
    println!(
        "dense, layer norm, conv 3, mlp 4 gradient check: {count} weights, max relative error \
         {error:.3e}"
    );
    assert!(error < 1e-6, "max relative error {error:e}");
}
