//! The trainer's forward pass against the kernel model's
//! (`docs/training.md`, "Parity"): exported weights must give the same
//! logits in `aether_model::TemporalModel` over the sparse and dense
//! backends, so what the trainer optimised is what the device runs.
//!
//! Every use of the kernel crates' API in the trainer's tests is in this
//! file.

use aether_dense::DenseBackend;
use aether_domain::{AttentionBackend, BackendKind, HeadConfig};
use aether_model::{ModelWeights, TemporalModel};
use aether_rvne::{ElementType, RvneBlob};
use aether_sparse::SparseBackend;
use aether_train::{Architecture, ModelOptions, Norm, TemporalNet};
use candle_core::{DType, Device, Tensor};

/// The default AETHER shape with 5 classes (the synthetic set's).
fn default_shape(backend: BackendKind) -> Architecture {
    with_options(backend, ModelOptions::default())
}

fn with_options(backend: BackendKind, options: ModelOptions) -> Architecture {
    Architecture {
        input_dim: 16,
        n_classes: 5,
        n_layers: 2,
        head: HeadConfig {
            backend,
            ..HeadConfig::default_aether()
        },
        options,
    }
}

/// `count` windows of `n` frames, values like the synthetic set's (around
/// 1, spread about 0.5).
fn windows(count: usize, n: usize) -> Vec<f32> {
    (0..count * n * 16)
        .map(|i| 1.0 + 0.5 * ((i as f32) * 0.377).sin() + 0.1 * ((i as f32) * 2.1).cos())
        .collect()
}

fn trainer_logits(net: &TemporalNet, frames: &[f32], count: usize, n: usize) -> Vec<f32> {
    let t = Tensor::from_slice(frames, (count, n, 16), &Device::Cpu).unwrap();
    net.logits(&t)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

fn kernel_logits<B: AttentionBackend>(
    weights: ModelWeights,
    backend: B,
    frames: &[f32],
    count: usize,
) -> Vec<f32> {
    let model = TemporalModel::new(weights, backend).unwrap();
    let size = frames.len() / count;
    frames
        .chunks_exact(size)
        .flat_map(|w| model.classify(w).unwrap())
        .collect()
}

fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Trainer and kernel logits for one backend, with weights `scale`×
/// the initial ones (trained weights are larger than initial ones).
fn compare(backend: BackendKind, n: usize, element: ElementType) -> (f32, f32) {
    compare_model(default_shape(backend), n, Some(element))
}

/// As [`compare`] for any architecture; `element: None` hands the
/// weights to the kernel directly instead of through a `.rvne` blob.
fn compare_model(architecture: Architecture, n: usize, element: Option<ElementType>) -> (f32, f32) {
    let backend = architecture.head.backend;
    let head = architecture.head.clone();
    let v1 = architecture.options.is_v1();
    let net = TemporalNet::new(architecture, 3, DType::F32).unwrap();
    for (k, var) in net.vars().into_iter().enumerate() {
        let mut moved = (var.as_tensor() * 2.0).unwrap();
        if !v1 {
            // Move γ, β, the earlier taps and the biases off their
            // initial constants, so every version-2 weight matters.
            let offsets: Vec<f32> = (0..var.as_tensor().elem_count())
                .map(|i| 0.2 * (1.3 * i as f32 + 0.7 * k as f32).sin())
                .collect();
            let offsets = Tensor::from_vec(offsets, var.shape().clone(), &Device::Cpu).unwrap();
            moved = (moved + offsets).unwrap();
        }
        var.set(&moved).unwrap();
    }
    let count = 3;
    let frames = windows(count, n);
    let expected = trainer_logits(&net, &frames, count, n);
    let weights = net.to_weights().unwrap();
    let weights = match element {
        Some(element) => RvneBlob::from_weights(&weights, element)
            .unwrap()
            .to_weights()
            .unwrap(),
        None => weights,
    };
    let got = match backend {
        BackendKind::Dense => {
            kernel_logits(weights, DenseBackend::new(head).unwrap(), &frames, count)
        }
        _ => kernel_logits(weights, SparseBackend::new(head).unwrap(), &frames, count),
    };
    let magnitude = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    (max_abs_difference(&expected, &got), magnitude)
}

#[test]
fn sparse_kernel_matches_the_trainer_in_f32() {
    // N = 256 with window 32, block 16: log-strides, the global token and
    // up to 13 landmark blocks are in play for the late queries.
    let (diff, magnitude) = compare(BackendKind::Sparse, 256, ElementType::F32);
    println!("sparse f32 parity, N 256: max |Δlogit| {diff:.3e} (logits up to {magnitude:.2})");
    assert!(diff < 1e-4, "{diff:e}");
}

#[test]
fn dense_kernel_matches_the_trainer_in_f32() {
    let (diff, magnitude) = compare(BackendKind::Dense, 256, ElementType::F32);
    println!("dense f32 parity, N 256: max |Δlogit| {diff:.3e} (logits up to {magnitude:.2})");
    assert!(diff < 1e-4, "{diff:e}");
}

#[test]
fn f16_export_stays_within_its_measured_bound() {
    let (diff, magnitude) = compare(BackendKind::Sparse, 256, ElementType::F16);
    println!("sparse f16 export, N 256: max |Δlogit| {diff:.3e} (logits up to {magnitude:.2})");
    // Measured 1.78e-3 (weights ×2 of the initial scale, logits up to
    // 6.3): f16 keeps 11 significant bits, a relative 2.4e-4 per weight.
    assert!(diff < 5e-3, "{diff:e}");
}

/// Every version-2 option on, at the sizes the ablation uses, with the
/// default model's centring (rate 2^-7, gain 8) and pooling (rate 2^-6).
fn all_options(norm: Norm) -> ModelOptions {
    ModelOptions {
        norm,
        conv_taps: 4,
        mlp_hidden: 32,
        centre_shift: 7,
        centre_gain_log2: 3,
        pool_shift: 6,
    }
}

#[test]
fn version_2_sparse_kernel_matches_the_trainer() {
    for norm in [Norm::Layer, Norm::Rms] {
        let architecture = with_options(BackendKind::Sparse, all_options(norm));
        let (diff, magnitude) = compare_model(architecture, 256, None);
        println!(
            "sparse f32 parity, {norm:?} norm, conv 4, mlp 32, N 256: max |Δlogit| {diff:.3e} \
             (logits up to {magnitude:.2})"
        );
        assert!(diff < 1e-4, "{diff:e}");
    }
}

#[test]
fn version_2_dense_kernel_matches_the_trainer() {
    let architecture = with_options(BackendKind::Dense, all_options(Norm::Layer));
    let (diff, magnitude) = compare_model(architecture, 256, None);
    println!(
        "dense f32 parity, layer norm, conv 4, mlp 32, N 256: max |Δlogit| {diff:.3e} (logits \
         up to {magnitude:.2})"
    );
    assert!(diff < 1e-4, "{diff:e}");
}
