//! Finite-difference check of the trainer's gradients (`docs/training.md`,
//! "Gradient check"): autograd through the mask, the landmark averaging
//! and the grouped heads must equal central differences of the loss.
//!
//! Run with `--nocapture` to see the measured error.

use aether_domain::{BackendKind, HeadConfig, SparsePattern};
use aether_train::{Architecture, ModelOptions, TemporalNet};
use candle_core::{DType, Device, Tensor};

/// D 3, Hq 2, Hkv 1, d 2, L 2, C 3; window 2, block 2, so that at N = 12
/// the last queries have log-stride tokens, a global and landmark blocks.
fn tiny(backend: BackendKind) -> Architecture {
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
        options: ModelOptions::default(),
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
/// `|autograd − central| / max(|autograd|, |central|, FLOOR)`.
fn max_relative_error(backend: BackendKind) -> (f64, usize) {
    // Scale the initial weights up so softmax weights are far from
    // uniform and the attention pattern matters to the gradient.
    let net = TemporalNet::new(tiny(backend), 5, DType::F64).unwrap();
    for var in net.vars() {
        var.set(&(var.as_tensor() * 3.0).unwrap()).unwrap();
    }
    let (frames, labels) = (frames(), Tensor::new(&[0u32, 2, 1], &Device::Cpu).unwrap());
    let grads = loss(&net, &frames, &labels).backward().unwrap();
    // h = 1e-5: the truncation error of a central difference is
    // O(h²·f''') ≈ 1e-10 and the rounding error O(ε·|f|/h) ≈ 1e-11, both
    // far below the gradients' size.
    const H: f64 = 1e-5;
    const FLOOR: f64 = 1e-6;
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
            let numeric = (at(H) - at(-H)) / (2.0 * H);
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
    let pattern = SparsePattern::new(&tiny(BackendKind::Sparse).head).unwrap();
    let c = pattern.candidates(N - 1, N);
    // Window 9..=11, strides 7 and 3 outside it, global 0; landmark
    // blocks p = (11 - 2) / 2 - 1 = 3 and 3 - 1, 3 - 2.
    assert_eq!(c.tokens, vec![0, 3, 7, 9, 10, 11]);
    assert_eq!(c.landmark_blocks, vec![1, 2, 3]);
}

#[test]
fn sparse_gradients_match_central_differences() {
    let (error, count) = max_relative_error(BackendKind::Sparse);
    println!("sparse gradient check: {count} weights, max relative error {error:.3e}");
    assert_eq!(count, 2 * (2 * 3 * 4 + 2 * 3 * 2) + 3 * 3);
    assert!(error < 1e-6, "max relative error {error:e}");
}

#[test]
fn dense_gradients_match_central_differences() {
    let (error, count) = max_relative_error(BackendKind::Dense);
    println!("dense gradient check: {count} weights, max relative error {error:.3e}");
    assert!(error < 1e-6, "max relative error {error:e}");
}
