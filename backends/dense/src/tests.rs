//! Unit tests of the dense backend: hand-computed values, an f64 oracle
//! over shapes that cross tile and lane boundaries, step == prefill, GQA ==
//! MHA with replicated heads, and every typed error.
//!
//! The cross-backend property suite lives in the workspace `tests/` crate;
//! these tests pin down this crate's own kernel paths (block sizes, tails,
//! the AVX2 and portable copies).

use alloc::vec;
use alloc::vec::Vec;

use aether_domain::error::Operand;
use aether_domain::{
    AttentionBackend, AttentionError, BackendKind, CacheLayout, ConfigError, HeadConfig, KvCache,
    Tensor, TensorView,
};

use crate::{DenseBackend, Isa, IsaUnavailable};

/// f32 kernel vs f64 oracle: scores are sums of up to a few hundred f32
/// products and the softmax is renormalised per tile, so a few ulp of
/// relative error on O(1) outputs; 1e-5 is the bar of `docs/quality.md`.
const TOLERANCE: f32 = 1e-5;

fn config(q_heads: usize, kv_heads: usize, head_dim: usize, causal: bool) -> HeadConfig {
    HeadConfig {
        backend: BackendKind::Dense,
        q_heads,
        kv_heads,
        head_dim,
        causal,
        // Deliberately sparse-looking: dense must ignore all of these.
        window: 1,
        block_size: 3,
        global_tokens: vec![0],
        log_stride: true,
        landmarks: true,
        ..HeadConfig::default_aether()
    }
}

/// Deterministic values in [-2, 2) (a 32-bit LCG; no rand dependency).
fn values(len: usize, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(12_345);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
        })
        .collect()
}

fn tensor(seq: usize, heads: usize, dim: usize, seed: u32) -> Tensor {
    Tensor::new(values(seq * heads * dim, seed), seq, heads, dim).unwrap()
}

/// Dense attention in f64, written the obvious way.
fn oracle(config: &HeadConfig, q: &Tensor, k: &Tensor, v: &Tensor) -> Vec<f32> {
    let (n, dim) = (q.seq(), config.head_dim);
    let group = config.q_heads / config.kv_heads;
    let scale = 1.0 / (dim as f64).sqrt();
    let mut out = Vec::new();
    for i in 0..n {
        for h in 0..config.q_heads {
            let g = h / group;
            let last = if config.causal { i } else { n - 1 };
            let scores: Vec<f64> = (0..=last)
                .map(|j| {
                    let dot: f64 = q
                        .row(i, h)
                        .iter()
                        .zip(k.row(j, g))
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    dot * scale
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f64 = weights.iter().sum();
            for d in 0..dim {
                let acc: f64 = (0..=last)
                    .map(|j| weights[j] * f64::from(v.row(j, g)[d]))
                    .sum();
                out.push((acc / total) as f32);
            }
        }
    }
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    let diff = max_abs_diff(actual, expected);
    assert!(diff <= TOLERANCE, "{what}: max abs diff {diff}");
}

/// One head, dim 1, three tokens, causal: softmax by hand.
#[test]
fn hand_computed_causal() {
    let backend = DenseBackend::new(config(1, 1, 1, true)).unwrap();
    let q = Tensor::new(vec![0.0, 1.0, 2.0], 3, 1, 1).unwrap();
    let k = Tensor::new(vec![1.0, 2.0, 3.0], 3, 1, 1).unwrap();
    let v = Tensor::new(vec![10.0, 20.0, 30.0], 3, 1, 1).unwrap();
    let out = backend.forward(q.view(), k.view(), v.view()).unwrap();
    // i = 1: scores 1, 2. i = 2: scores 2, 4, 6 (dim 1, so no scaling).
    let (a, b) = (1f64.exp(), 2f64.exp());
    let expected1 = (10.0 * a + 20.0 * b) / (a + b);
    let (a, b, c) = (2f64.exp(), 4f64.exp(), 6f64.exp());
    let expected2 = (10.0 * a + 20.0 * b + 30.0 * c) / (a + b + c);
    let expected = [10.0, expected1 as f32, expected2 as f32];
    assert_close(out.as_slice(), &expected, "causal");
}

/// The same inputs, non-causal: every query sees all three keys.
#[test]
fn hand_computed_non_causal() {
    let backend = DenseBackend::new(config(1, 1, 1, false)).unwrap();
    let q = Tensor::new(vec![0.0, 1.0, 2.0], 3, 1, 1).unwrap();
    let k = Tensor::new(vec![1.0, 2.0, 3.0], 3, 1, 1).unwrap();
    let v = Tensor::new(vec![10.0, 20.0, 30.0], 3, 1, 1).unwrap();
    let out = backend.forward(q.view(), k.view(), v.view()).unwrap();
    let expected: Vec<f32> = [0.0f64, 1.0, 2.0]
        .iter()
        .map(|&qi| {
            let w: Vec<f64> = [1.0, 2.0, 3.0].iter().map(|kj| (qi * kj).exp()).collect();
            let total: f64 = w.iter().sum();
            ((10.0 * w[0] + 20.0 * w[1] + 30.0 * w[2]) / total) as f32
        })
        .collect();
    // Query 0 scores all zero: the plain mean.
    assert!((out.as_slice()[0] - 20.0).abs() < TOLERANCE);
    assert_close(out.as_slice(), &expected, "non-causal");
}

/// MHA with two heads of dim 2, two tokens, causal: each head uses only its
/// own keys and values, and the score is scaled by 1/sqrt(2).
#[test]
fn hand_computed_multi_head() {
    let backend = DenseBackend::new(config(2, 2, 2, true)).unwrap();
    // [token][head][dim]
    let q = Tensor::new(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 0.0], 2, 2, 2).unwrap();
    let k = Tensor::new(vec![1.0, 0.0, 0.0, 2.0, 0.0, 1.0, 1.0, 1.0], 2, 2, 2).unwrap();
    let v = Tensor::new(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], 2, 2, 2).unwrap();
    let out = backend.forward(q.view(), k.view(), v.view()).unwrap();
    let s = 1.0 / 2f64.sqrt();
    let mix = |s0: f64, s1: f64, v0: [f64; 2], v1: [f64; 2]| {
        let (w0, w1) = ((s0 * s).exp(), (s1 * s).exp());
        [
            ((w0 * v0[0] + w1 * v1[0]) / (w0 + w1)) as f32,
            ((w0 * v0[1] + w1 * v1[1]) / (w0 + w1)) as f32,
        ]
    };
    // Token 0: one visible key, output = v[0].
    // Token 1, head 0: q (1,1), keys (1,0) and (0,1): scores 1, 1.
    let h0 = mix(1.0, 1.0, [1.0, 2.0], [5.0, 6.0]);
    // Token 1, head 1: q (2,0), keys (0,2) and (1,1): scores 0, 2.
    let h1 = mix(0.0, 2.0, [3.0, 4.0], [7.0, 8.0]);
    let expected = [1.0, 2.0, 3.0, 4.0, h0[0], h0[1], h1[0], h1[1]];
    assert_close(out.as_slice(), &expected, "multi-head");
}

/// GQA: two query heads share one KV head; both read the same keys.
#[test]
fn hand_computed_grouped_query() {
    let backend = DenseBackend::new(config(2, 1, 1, true)).unwrap();
    // Token 0: q heads (1, -1); token 1: (1, -1).
    let q = Tensor::new(vec![1.0, -1.0, 1.0, -1.0], 2, 2, 1).unwrap();
    let k = Tensor::new(vec![0.0, 1.0], 2, 1, 1).unwrap();
    let v = Tensor::new(vec![2.0, 4.0], 2, 1, 1).unwrap();
    let out = backend.forward(q.view(), k.view(), v.view()).unwrap();
    // Token 1: head 0 scores (0, 1), head 1 scores (0, -1).
    let e = 1f64.exp();
    let h0 = (2.0 + 4.0 * e) / (1.0 + e);
    let h1 = (2.0 + 4.0 / e) / (1.0 + 1.0 / e);
    let expected = [2.0, 2.0, h0 as f32, h1 as f32];
    assert_close(out.as_slice(), &expected, "grouped query");
}

/// Shapes chosen to hit every kernel path, on every instruction set this
/// CPU runs: dims below, at and above a multiple of eight; sequences inside
/// one tile, on a tile edge and across several; groups of 1 (blocks of
/// positions), 2, 4, 8 and 16 (a block per group or two) and 3 (blocks
/// straddling positions); short last blocks.
#[test]
fn matches_f64_oracle() {
    let shapes = [
        (1, 1, 1),
        (2, 2, 3),
        (4, 4, 32),
        (4, 1, 32),
        (4, 2, 8),
        (8, 1, 16),
        (3, 1, 5),
        (6, 2, 33),
        (16, 2, 4),
    ];
    let lengths = [1, 2, 7, 31, 32, 33, 70];
    for (seed, &(q_heads, kv_heads, dim)) in shapes.iter().enumerate() {
        for &n in &lengths {
            for causal in [true, false] {
                let config = config(q_heads, kv_heads, dim, causal);
                let backend = DenseBackend::new(config.clone()).unwrap();
                let seed = seed as u32 * 3;
                let q = tensor(n, q_heads, dim, seed);
                let k = tensor(n, kv_heads, dim, seed + 1);
                let v = tensor(n, kv_heads, dim, seed + 2);
                let expected = oracle(&config, &q, &k, &v);
                for isa in Isa::ALL.into_iter().filter(|isa| isa.is_available()) {
                    let out = backend
                        .clone()
                        .with_isa(isa)
                        .unwrap()
                        .forward(q.view(), k.view(), v.view())
                        .unwrap();
                    assert_eq!(out.shape(), q.shape());
                    let what = alloc::format!(
                        "{isa:?} q{q_heads} kv{kv_heads} d{dim} n{n} causal {causal}"
                    );
                    assert_close(out.as_slice(), &expected, &what);
                }
            }
        }
    }
}

/// Scores far outside exp's range: the running max keeps them finite, and
/// the largest score dominates completely.
#[test]
fn large_scores_are_stable() {
    let backend = DenseBackend::new(config(1, 1, 1, true)).unwrap();
    let n = 40;
    let q = Tensor::new(vec![1000.0; n], n, 1, 1).unwrap();
    let k = Tensor::new((0..n).map(|j| j as f32).collect(), n, 1, 1).unwrap();
    let v = Tensor::new((0..n).map(|j| j as f32 * 2.0).collect(), n, 1, 1).unwrap();
    let out = backend.forward(q.view(), k.view(), v.view()).unwrap();
    let expected: Vec<f32> = (0..n).map(|i| i as f32 * 2.0).collect();
    assert_close(out.as_slice(), &expected, "large scores");
}

#[test]
fn empty_sequence_gives_empty_output() {
    let backend = DenseBackend::new(config(4, 2, 8, true)).unwrap();
    let q = Tensor::zeros(0, 4, 8).unwrap();
    let kv = Tensor::zeros(0, 2, 8).unwrap();
    let out = backend.forward(q.view(), kv.view(), kv.view()).unwrap();
    assert_eq!(out.shape(), q.shape());
}

/// Token `i` of `t` as a one-token tensor.
fn token(t: &Tensor, i: usize) -> TensorView<'_> {
    TensorView::new(t.view().token(i), 1, t.shape().heads, t.shape().dim).unwrap()
}

/// Streaming each token equals prefill at that position, across several
/// tiles, for MHA, GQA (groups 2, 3, 8 and 16: the 8/4/2/1 head chunks) and
/// MQA.
#[test]
fn step_equals_forward_at_every_position() {
    let n = 75;
    for (seed, (q_heads, kv_heads, dim)) in [
        (4, 4, 32),
        (4, 2, 8),
        (3, 1, 5),
        (16, 2, 4),
        (15, 1, 3),
        (4, 1, 32),
    ]
    .into_iter()
    .enumerate()
    {
        let backend = DenseBackend::new(config(q_heads, kv_heads, dim, true)).unwrap();
        let seed = seed as u32 * 5;
        let q = tensor(n, q_heads, dim, seed);
        let k = tensor(n, kv_heads, dim, seed + 1);
        let v = tensor(n, kv_heads, dim, seed + 2);
        let prefill = backend.forward(q.view(), k.view(), v.view()).unwrap();
        let mut cache = backend.make_cache(n).unwrap();
        for i in 0..n {
            let out = backend
                .step(token(&q, i), token(&k, i), token(&v, i), &mut cache)
                .unwrap();
            let what = alloc::format!("q{q_heads} kv{kv_heads} d{dim} position {i}");
            assert_close(out.as_slice(), prefill.view().token(i), &what);
        }
        assert!(cache.is_full());
    }
}

/// GQA equals MHA whose KV heads are the GQA heads replicated per group.
#[test]
fn grouped_query_equals_multi_head_with_replicated_kv() {
    let (q_heads, kv_heads, dim, n) = (6, 2, 12, 45);
    let group = q_heads / kv_heads;
    for causal in [true, false] {
        let gqa = DenseBackend::new(config(q_heads, kv_heads, dim, causal)).unwrap();
        let mha = DenseBackend::new(config(q_heads, q_heads, dim, causal)).unwrap();
        let q = tensor(n, q_heads, dim, 11);
        let k = tensor(n, kv_heads, dim, 12);
        let v = tensor(n, kv_heads, dim, 13);
        let replicate = |t: &Tensor| {
            let data = (0..n)
                .flat_map(|j| (0..q_heads).flat_map(move |h| t.row(j, h / group).iter().copied()))
                .collect();
            Tensor::new(data, n, q_heads, dim).unwrap()
        };
        let (k_wide, v_wide) = (replicate(&k), replicate(&v));
        let grouped = gqa.forward(q.view(), k.view(), v.view()).unwrap();
        let multi = mha.forward(q.view(), k_wide.view(), v_wide.view()).unwrap();
        assert_close(grouped.as_slice(), multi.as_slice(), "gqa vs mha");
    }
}

/// Every copy of the kernel this CPU can run (portable, AVX2)
/// agrees with the f64 oracle, in prefill and in streaming.
#[test]
fn every_supported_instruction_set_matches_the_oracle() {
    let (q_heads, kv_heads, dim, n) = (4, 2, 20, 67);
    let config = config(q_heads, kv_heads, dim, true);
    let default = DenseBackend::new(config.clone()).unwrap();
    let q = tensor(n, q_heads, dim, 21);
    let k = tensor(n, kv_heads, dim, 22);
    let v = tensor(n, kv_heads, dim, 23);
    let expected = oracle(&config, &q, &k, &v);
    for isa in Isa::ALL.into_iter().filter(|isa| isa.is_available()) {
        let backend = default.clone().with_isa(isa).unwrap();
        let out = backend.forward(q.view(), k.view(), v.view()).unwrap();
        assert_close(
            out.as_slice(),
            &expected,
            &alloc::format!("{isa:?} prefill"),
        );
        let mut cache = backend.make_cache(n).unwrap();
        for i in 0..n {
            let out = backend
                .step(token(&q, i), token(&k, i), token(&v, i), &mut cache)
                .unwrap();
            let row = &expected[i * q_heads * dim..(i + 1) * q_heads * dim];
            assert_close(out.as_slice(), row, &alloc::format!("{isa:?} step {i}"));
        }
    }
}

/// Asking for a copy the CPU cannot run is an error, not a silent
/// fallback (a test asking for AVX-512 must know it did not get it); every
/// available copy computes the same thing.
#[test]
fn unavailable_instruction_set_is_refused() {
    let backend = DenseBackend::new(config(2, 1, 8, true)).unwrap();
    assert_eq!(backend.isa(), Isa::detect());
    assert!(Isa::detect().is_available() && Isa::Portable.is_available());
    let q = tensor(5, 2, 8, 31);
    let kv = tensor(5, 1, 8, 32);
    let expected = backend
        .clone()
        .with_isa(Isa::Portable)
        .unwrap()
        .forward(q.view(), kv.view(), kv.view())
        .unwrap();
    for isa in Isa::ALL {
        match backend.clone().with_isa(isa) {
            Ok(chosen) => {
                assert!(isa.is_available());
                assert_eq!(chosen.isa(), isa);
                let out = chosen.forward(q.view(), kv.view(), kv.view()).unwrap();
                assert_close(
                    out.as_slice(),
                    expected.as_slice(),
                    &alloc::format!("{isa:?}"),
                );
            }
            Err(error) => {
                assert!(!isa.is_available());
                assert_eq!(error, IsaUnavailable(isa));
            }
        }
    }
}

#[test]
fn new_rejects_invalid_config() {
    assert_eq!(
        DenseBackend::new(config(4, 3, 8, true)).unwrap_err(),
        ConfigError::GroupRatio {
            q_heads: 4,
            kv_heads: 3
        }
    );
    assert_eq!(
        DenseBackend::new(config(4, 4, 0, true)).unwrap_err(),
        ConfigError::ZeroHeadDim
    );
    let backend = DenseBackend::new(config(4, 2, 8, false)).unwrap();
    assert_eq!(backend.config(), &config(4, 2, 8, false));
}

#[test]
fn forward_rejects_wrong_heads_dims_and_lengths() {
    let backend = DenseBackend::new(config(4, 2, 8, true)).unwrap();
    let q = tensor(3, 4, 8, 1);
    let kv = tensor(3, 2, 8, 2);
    let q_wrong_heads = tensor(3, 2, 8, 3);
    let kv_wrong_heads = tensor(3, 4, 8, 4);
    let kv_wrong_dim = tensor(3, 2, 4, 5);
    let kv_short = tensor(2, 2, 8, 6);
    assert_eq!(
        backend.forward(q_wrong_heads.view(), kv.view(), kv.view()),
        Err(AttentionError::HeadCount {
            operand: Operand::Query,
            expected: 4,
            actual: 2
        })
    );
    assert_eq!(
        backend.forward(q.view(), kv_wrong_heads.view(), kv.view()),
        Err(AttentionError::HeadCount {
            operand: Operand::Key,
            expected: 2,
            actual: 4
        })
    );
    assert_eq!(
        backend.forward(q.view(), kv.view(), kv_wrong_dim.view()),
        Err(AttentionError::HeadDim {
            operand: Operand::Value,
            expected: 8,
            actual: 4
        })
    );
    assert_eq!(
        backend.forward(q.view(), kv_short.view(), kv.view()),
        Err(AttentionError::SequenceMismatch { q: 3, k: 2, v: 3 })
    );
}

/// Every step error leaves the cache exactly as it was.
#[test]
fn step_errors_are_typed_and_leave_the_cache_unchanged() {
    let backend = DenseBackend::new(config(4, 2, 8, true)).unwrap();
    let q = tensor(1, 4, 8, 1);
    let kv = tensor(1, 2, 8, 2);
    let mut cache = backend.make_cache(2).unwrap();
    backend
        .step(q.view(), kv.view(), kv.view(), &mut cache)
        .unwrap();
    let before = cache.clone();

    let two_queries = tensor(2, 4, 8, 3);
    assert_eq!(
        backend.step(two_queries.view(), kv.view(), kv.view(), &mut cache),
        Err(AttentionError::StepNotOneToken {
            operand: Operand::Query,
            seq: 2
        })
    );
    let two_keys = tensor(2, 2, 8, 4);
    assert_eq!(
        backend.step(q.view(), two_keys.view(), kv.view(), &mut cache),
        Err(AttentionError::StepNotOneToken {
            operand: Operand::Key,
            seq: 2
        })
    );
    let wrong_heads = tensor(1, 3, 8, 5);
    assert!(matches!(
        backend.step(wrong_heads.view(), kv.view(), kv.view(), &mut cache),
        Err(AttentionError::HeadCount {
            operand: Operand::Query,
            ..
        })
    ));

    let mut short_out = vec![0.0; 4 * 8 - 1];
    assert_eq!(
        backend.step_into(q.view(), kv.view(), kv.view(), &mut cache, &mut short_out),
        Err(AttentionError::OutputLength {
            expected: 32,
            actual: 31
        })
    );

    let non_causal = DenseBackend::new(config(4, 2, 8, false)).unwrap();
    assert_eq!(
        non_causal.step(q.view(), kv.view(), kv.view(), &mut cache),
        Err(AttentionError::StepNotCausal)
    );
    assert_eq!(cache, before);

    let other_layout = CacheLayout {
        head_dim: 4,
        ..cache.layout()
    };
    let mut foreign = KvCache::new(4, other_layout).unwrap();
    let foreign_before = foreign.clone();
    assert_eq!(
        backend.step(q.view(), kv.view(), kv.view(), &mut foreign),
        Err(AttentionError::CacheLayoutMismatch {
            expected: cache.layout(),
            actual: other_layout
        })
    );
    assert_eq!(foreign, foreign_before);

    backend
        .step(q.view(), kv.view(), kv.view(), &mut cache)
        .unwrap();
    let full = cache.clone();
    let mut out = vec![7.0; 32];
    assert_eq!(
        backend.step_into(q.view(), kv.view(), kv.view(), &mut cache, &mut out),
        Err(AttentionError::CacheFull { capacity: 2 })
    );
    assert_eq!(cache, full);
    assert_eq!(out, vec![7.0; 32], "a failed step leaves `out` alone too");
}
