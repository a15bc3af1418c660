//! Value tests of the sparse backend against the reference oracle, on every
//! instruction set this CPU supports.
//!
//! Why here and not only in the workspace conformance suite: these pin the
//! kernel's own corner cases (tile edges, chunked wide windows, padding
//! lanes, partial trailing blocks, each ISA's copy), so a regression points
//! at this crate directly.

use alloc::vec;
use alloc::vec::Vec;

use aether_domain::{AttentionBackend, AttentionError, ConfigError, HeadConfig, Tensor};
use aether_reference::ReferenceBackend;

use crate::{Isa, IsaUnavailable, SparseBackend};

/// docs/attention.md: fast sparse must equal the reference to 1e-5 max-abs (f32
/// accumulation against an f64 oracle on O(1) inputs).
pub(crate) const TOLERANCE: f32 = 1e-5;

/// Deterministic inputs in [-1, 1) (xorshift), so failures reproduce.
pub(crate) fn tensor(seed: u64, seq: usize, heads: usize, dim: usize) -> Tensor {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data = (0..seq * heads * dim)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::new(data, seq, heads, dim).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub(crate) fn available_isas() -> Vec<Isa> {
    Isa::ALL
        .into_iter()
        .filter(|isa| isa.is_available())
        .collect()
}

/// Sparse (every ISA) vs reference on one config and length; `scale`
/// stretches the inputs so softmaxes are peaked, not flat.
fn check_against_reference(config: &HeadConfig, n: usize, scale: f32) {
    let seed = (n as u64) << 8 ^ config.window as u64;
    let mut q = tensor(seed, n, config.q_heads, config.head_dim);
    let k = tensor(seed + 1, n, config.kv_heads, config.head_dim);
    let v = tensor(seed + 2, n, config.kv_heads, config.head_dim);
    for x in q.as_mut_slice() {
        *x *= scale;
    }
    let reference = ReferenceBackend::new(config.clone()).unwrap();
    let want = reference.forward(q.view(), k.view(), v.view()).unwrap();
    for isa in available_isas() {
        let sparse = SparseBackend::new(config.clone())
            .unwrap()
            .with_isa(isa)
            .unwrap();
        let got = sparse.forward(q.view(), k.view(), v.view()).unwrap();
        let diff = max_abs_diff(got.as_slice(), want.as_slice());
        assert!(
            diff <= TOLERANCE,
            "{isa:?} n {n}: max-abs {diff} for {config:?}"
        );
    }
}

fn config(q_heads: usize, kv_heads: usize, head_dim: usize, window: usize) -> HeadConfig {
    HeadConfig {
        q_heads,
        kv_heads,
        head_dim,
        window,
        ..HeadConfig::default_aether()
    }
}

#[test]
fn default_aether_mqa_matches_reference() {
    for n in [1, 2, 15, 16, 17, 100, 300] {
        check_against_reference(&HeadConfig::default_aether(), n, 1.0);
    }
}

#[test]
fn mha_gqa_mqa_shapes_match_reference() {
    for (q_heads, kv_heads) in [(1, 1), (4, 4), (4, 2), (6, 2), (8, 1), (3, 3), (6, 3)] {
        for head_dim in [1, 3, 8, 16, 20, 32, 33, 64] {
            check_against_reference(&config(q_heads, kv_heads, head_dim, 7), 70, 2.0);
        }
    }
}

#[test]
fn causal_and_noncausal_window_sizes_match_reference() {
    for causal in [true, false] {
        for window in [0, 1, 2, 5, 16, 31, 32, 33, 100, 300] {
            for n in [1, 5, 40, 129, 260] {
                let config = HeadConfig {
                    causal,
                    block_size: 8,
                    ..config(2, 1, 16, window)
                };
                check_against_reference(&config, n, 3.0);
            }
        }
    }
}

#[test]
fn pattern_switches_and_globals_match_reference() {
    for causal in [true, false] {
        for (log_stride, landmarks) in [(false, false), (true, false), (false, true), (true, true)]
        {
            for globals in [vec![], vec![0], vec![0, 3, 50, 50, 199, 1000]] {
                for block_size in [1, 3, 16, 64] {
                    let config = HeadConfig {
                        causal,
                        log_stride,
                        landmarks,
                        global_tokens: globals.clone(),
                        block_size,
                        ..config(4, 2, 8, 4)
                    };
                    check_against_reference(&config, 203, 2.0);
                }
            }
        }
    }
}

/// Windows wider than the kernel's key chunk stream through several chunks
/// (online softmax across chunks), with peaked scores.
#[test]
fn wide_windows_stream_through_chunks() {
    for causal in [true, false] {
        let config = HeadConfig {
            causal,
            block_size: 32,
            ..config(2, 2, 8, 300)
        };
        check_against_reference(&config, 700, 6.0);
    }
}

/// With `W >= N - 1` every token is in the window: exact dense attention.
#[test]
fn full_window_equals_dense_softmax() {
    let n = 50;
    for causal in [true, false] {
        let config = HeadConfig {
            causal,
            ..config(2, 1, 4, n - 1)
        };
        let q = tensor(7, n, 2, 4);
        let k = tensor(8, n, 1, 4);
        let v = tensor(9, n, 1, 4);
        let got = SparseBackend::new(config)
            .unwrap()
            .forward(q.view(), k.view(), v.view())
            .unwrap();
        for i in 0..n {
            for h in 0..2 {
                let last = if causal { i } else { n - 1 };
                let scores: Vec<f64> = (0..=last)
                    .map(|j| {
                        let dot: f64 = q
                            .row(i, h)
                            .iter()
                            .zip(k.row(j, 0))
                            .map(|(&a, &b)| f64::from(a) * f64::from(b))
                            .sum();
                        dot / 2.0
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for d in 0..4 {
                    let want: f64 = weights
                        .iter()
                        .enumerate()
                        .map(|(j, w)| w * f64::from(v.row(j, 0)[d]))
                        .sum::<f64>()
                        / total;
                    let diff = (f64::from(got.row(i, h)[d]) - want).abs();
                    assert!(diff < 1e-5, "causal {causal} i {i} h {h} d {d}: {diff}");
                }
            }
        }
    }
}

/// Token `i` of `t` as a one-token view.
pub(crate) fn token(t: &Tensor, i: usize) -> aether_domain::TensorView<'_> {
    let len = t.heads() * t.dim();
    aether_domain::TensorView::new(&t.as_slice()[i * len..(i + 1) * len], 1, t.heads(), t.dim())
        .unwrap()
}

/// Streaming each token through `step` equals prefill at every position.
#[test]
fn step_equals_forward_at_every_position() {
    let configs = [
        HeadConfig::default_aether(),
        config(4, 4, 32, 32),
        HeadConfig {
            global_tokens: vec![0, 7, 40],
            block_size: 5,
            ..config(6, 2, 12, 3)
        },
        HeadConfig {
            landmarks: false,
            log_stride: false,
            global_tokens: vec![],
            ..config(2, 1, 8, 0)
        },
        HeadConfig {
            block_size: 1,
            ..config(16, 1, 4, 1)
        },
        config(2, 2, 8, 200),
    ];
    let n = 150;
    for config in configs {
        let backend = SparseBackend::new(config.clone()).unwrap();
        let q = tensor(11, n, config.q_heads, config.head_dim);
        let k = tensor(12, n, config.kv_heads, config.head_dim);
        let v = tensor(13, n, config.kv_heads, config.head_dim);
        let prefill = backend.forward(q.view(), k.view(), v.view()).unwrap();
        let mut cache = backend.make_cache(n).unwrap();
        let (qh, dim) = (config.q_heads, config.head_dim);
        let mut out = vec![0.0; qh * dim];
        for i in 0..n {
            backend
                .step_into(
                    token(&q, i),
                    token(&k, i),
                    token(&v, i),
                    &mut cache,
                    &mut out,
                )
                .unwrap();
            let want = &prefill.as_slice()[i * qh * dim..(i + 1) * qh * dim];
            let diff = max_abs_diff(&out, want);
            assert!(diff <= TOLERANCE, "position {i}: {diff} for {config:?}");
        }
    }
}

#[test]
fn edge_count_equals_the_pattern() {
    for causal in [true, false] {
        for window in [0, 3, 32, 128] {
            let config = HeadConfig {
                causal,
                global_tokens: vec![0, 9],
                ..config(4, 1, 32, window)
            };
            let backend = SparseBackend::new(config).unwrap();
            for n in [0, 1, 100, 1000] {
                assert_eq!(backend.edge_count(n), backend.pattern().edge_count(n));
            }
        }
    }
}

#[test]
fn invalid_config_is_a_typed_error() {
    assert_eq!(
        SparseBackend::new(config(4, 3, 8, 2)).unwrap_err(),
        ConfigError::GroupRatio {
            q_heads: 4,
            kv_heads: 3
        }
    );
    let zero_block = HeadConfig {
        block_size: 0,
        ..HeadConfig::default_aether()
    };
    assert_eq!(
        SparseBackend::new(zero_block).unwrap_err(),
        ConfigError::ZeroBlockSize
    );
}

#[test]
fn bad_inputs_are_typed_errors() {
    let backend = SparseBackend::new(HeadConfig::default_aether()).unwrap();
    let q = tensor(1, 10, 4, 32);
    let k = tensor(2, 10, 1, 32);
    let short = tensor(3, 9, 1, 32);
    let wide = tensor(4, 10, 2, 32);
    assert!(matches!(
        backend.forward(q.view(), k.view(), short.view()),
        Err(AttentionError::SequenceMismatch { q: 10, k: 10, v: 9 })
    ));
    assert!(matches!(
        backend.forward(q.view(), wide.view(), k.view()),
        Err(AttentionError::HeadCount {
            expected: 1,
            actual: 2,
            ..
        })
    ));
    // A step with more than one token leaves the cache untouched.
    let mut cache = backend.make_cache(4).unwrap();
    let mut out = vec![0.0; 4 * 32];
    assert!(matches!(
        backend.step_into(q.view(), k.view(), k.view(), &mut cache, &mut out),
        Err(AttentionError::StepNotOneToken { .. })
    ));
    assert!(cache.is_empty());
    // Non-causal configs cannot stream.
    let noncausal = SparseBackend::new(HeadConfig {
        causal: false,
        ..HeadConfig::default_aether()
    })
    .unwrap();
    let one_q = tensor(5, 1, 4, 32);
    let one_k = tensor(6, 1, 1, 32);
    assert_eq!(
        noncausal.step_into(
            one_q.view(),
            one_k.view(),
            one_k.view(),
            &mut cache,
            &mut out
        ),
        Err(AttentionError::StepNotCausal)
    );
    // Full cache: typed error, cache unchanged.
    let mut tiny = backend.make_cache(1).unwrap();
    backend
        .step_into(
            one_q.view(),
            one_k.view(),
            one_k.view(),
            &mut tiny,
            &mut out,
        )
        .unwrap();
    let before = tiny.clone();
    assert_eq!(
        backend.step_into(
            one_q.view(),
            one_k.view(),
            one_k.view(),
            &mut tiny,
            &mut out
        ),
        Err(AttentionError::CacheFull { capacity: 1 })
    );
    assert_eq!(tiny, before);
}

#[test]
fn empty_sequence_gives_empty_output() {
    let backend = SparseBackend::new(HeadConfig::default_aether()).unwrap();
    let q = Tensor::zeros(0, 4, 32).unwrap();
    let kv = Tensor::zeros(0, 1, 32).unwrap();
    let out = backend.forward(q.view(), kv.view(), kv.view()).unwrap();
    assert_eq!(out.seq(), 0);
}

#[test]
fn isa_selection() {
    let backend = SparseBackend::new(HeadConfig::default_aether()).unwrap();
    assert_eq!(backend.isa(), Isa::detect());
    assert!(Isa::Portable.is_available());
    for isa in Isa::ALL {
        let chosen = backend.clone().with_isa(isa);
        if isa.is_available() {
            assert_eq!(chosen.unwrap().isa(), isa);
        } else {
            assert_eq!(chosen.unwrap_err(), IsaUnavailable(isa));
        }
    }
}

/// Many random configs and lengths (seeded, so reproducible) against the
/// reference, on every ISA: the kernel has several paths (shared or
/// per-position landmarks, diagonals at sequence edges, partial tiles,
/// chunked windows) and this walks through their combinations.
#[test]
fn random_configs_match_reference() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    for _ in 0..120 {
        let kv_heads = 1 + next(3);
        let q_heads = kv_heads * (1 + next(4));
        let globals = (0..next(4)).map(|_| next(90)).collect();
        let config = HeadConfig {
            q_heads,
            kv_heads,
            head_dim: 1 + next(40),
            window: next(70),
            block_size: 1 + next(24),
            causal: next(2) == 0,
            global_tokens: globals,
            log_stride: next(4) != 0,
            landmarks: next(4) != 0,
            ..HeadConfig::default_aether()
        };
        let n = 1 + next(180);
        check_against_reference(&config, n, 1.0 + next(4) as f32);
    }
}
