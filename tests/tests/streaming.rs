//! Streaming conformance beyond step == prefill: f16 caches, and the
//! eviction rules of `aether_domain::cache`, for every backend.
//!
//! Eviction outputs are checked against an oracle written here from the
//! documented rule alone (`docs/streaming.md`): the candidates of position
//! t (`docs/attention.md`), keeping a token iff it is retained and a
//! landmark iff all B of its tokens are retained and it is among the
//! ⌈C/B⌉ + 1 most recent blocks; softmax in f64. Dense attends to every
//! retained token.

use aether_domain::{
    AttentionBackend, AttentionError, BackendKind, CacheDtype, CacheLayout, Eviction, HeadConfig,
    KvCache, SparsePattern, Tensor,
};
use aether_engine::Backend;
use aether_tests::{Rng, max_abs_diff, random_tensor, token};

/// Same bar as prefill (`docs/quality.md`) for f32 caches.
const EXACT: f32 = 1e-5;

/// f16 keeps 11 significant bits: each cached key and value is off by up
/// to 2^-11 relative (4.9e-4). With inputs in [-2, 2) and head_dim 16 a
/// score moves by up to ~1e-3, so outputs of magnitude <= 2 move by a few
/// 1e-3; `f16_step_error_is_bounded` measured a worst case of 1.06e-3 over
/// 24 streams of 50 steps, and this bound leaves ~2.4x headroom over it.
const F16_BOUND: f32 = 2.5e-3;

const ALL: [BackendKind; 3] = [
    BackendKind::Reference,
    BackendKind::Dense,
    BackendKind::Sparse,
];

fn config(kind: BackendKind) -> HeadConfig {
    HeadConfig {
        backend: kind,
        q_heads: 4,
        kv_heads: 2,
        head_dim: 16,
        window: 5,
        block_size: 3,
        global_tokens: vec![0, 2],
        ..HeadConfig::default_aether()
    }
}

struct Stream {
    q: Tensor,
    k: Tensor,
    v: Tensor,
}

fn stream(config: &HeadConfig, n: usize, seed: u64) -> Stream {
    let mut rng = Rng::new(seed);
    Stream {
        q: random_tensor(&mut rng, n, config.q_heads, config.head_dim, 2.0),
        k: random_tensor(&mut rng, n, config.kv_heads, config.head_dim, 2.0),
        v: random_tensor(&mut rng, n, config.kv_heads, config.head_dim, 2.0),
    }
}

fn step(b: &Backend, x: &Stream, t: usize, cache: &mut KvCache) -> Tensor {
    b.step(
        token(&x.q, t).view(),
        token(&x.k, t).view(),
        token(&x.v, t).view(),
        cache,
    )
    .expect("step")
}

/// f64 attention of position `t`'s query heads over the given tokens and
/// landmark blocks (means of their B tokens).
fn oracle(
    config: &HeadConfig,
    x: &Stream,
    t: usize,
    tokens: &[usize],
    blocks: &[usize],
) -> Vec<f32> {
    let (d, group) = (config.head_dim, config.group_size());
    let mut out = Vec::new();
    for h in 0..config.q_heads {
        let g = h / group;
        let mean = |t: &Tensor, b: usize| -> Vec<f64> {
            let rows = b * config.block_size..(b + 1) * config.block_size;
            let mut m = vec![0.0; d];
            for j in rows.clone() {
                for (m, &x) in m.iter_mut().zip(t.row(j, g)) {
                    *m += f64::from(x) / rows.len() as f64;
                }
            }
            m
        };
        let widen = |r: &[f32]| r.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        let mut keys: Vec<Vec<f64>> = tokens.iter().map(|&j| widen(x.k.row(j, g))).collect();
        let mut values: Vec<Vec<f64>> = tokens.iter().map(|&j| widen(x.v.row(j, g))).collect();
        keys.extend(blocks.iter().map(|&b| mean(&x.k, b)));
        values.extend(blocks.iter().map(|&b| mean(&x.v, b)));
        let q = widen(x.q.row(t, h));
        let scores: Vec<f64> = keys
            .iter()
            .map(|k| q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (d as f64).sqrt())
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f64 = weights.iter().sum();
        for e in 0..d {
            let acc: f64 = weights.iter().zip(&values).map(|(w, v)| w * v[e]).sum();
            out.push((acc / total) as f32);
        }
    }
    out
}

/// The oracle's candidate set of `t` given the retained positions.
fn retained_candidates(
    config: &HeadConfig,
    kind: BackendKind,
    t: usize,
    retained: &[usize],
    capacity: usize,
) -> (Vec<usize>, Vec<usize>) {
    if kind == BackendKind::Dense {
        return (retained.to_vec(), Vec::new());
    }
    let pattern = SparsePattern::new(config).unwrap();
    let c = pattern.candidates(t, t + 1);
    let b = config.block_size;
    let ring = capacity.div_ceil(b) + 1;
    let tokens = c
        .tokens
        .into_iter()
        .filter(|j| retained.contains(j))
        .collect();
    let blocks = c
        .landmark_blocks
        .into_iter()
        .filter(|&blk| (blk * b..(blk + 1) * b).all(|j| retained.contains(&j)))
        .filter(|&blk| blk + ring > t / b)
        .collect();
    (tokens, blocks)
}

fn retained_positions(cache: &KvCache) -> Vec<usize> {
    (0..cache.len())
        .filter(|&p| cache.slot(p).is_some())
        .collect()
}

#[test]
fn sliding_window_eviction_matches_the_rule() {
    let capacity = 11;
    for kind in ALL {
        let config = HeadConfig {
            eviction: Eviction::SlidingWindow,
            ..config(kind)
        };
        let b = Backend::from_config(config.clone()).unwrap();
        let x = stream(&config, 60, 5);
        let mut cache = b.make_cache(capacity).unwrap();
        for t in 0..60 {
            let out = step(&b, &x, t, &mut cache);
            let retained = retained_positions(&cache);
            let oldest = (t + 1).saturating_sub(capacity);
            assert_eq!(retained, (oldest..=t).collect::<Vec<_>>(), "{kind:?} t {t}");
            let (tokens, blocks) = retained_candidates(&config, kind, t, &retained, capacity);
            let err = max_abs_diff(out.as_slice(), &oracle(&config, &x, t, &tokens, &blocks));
            assert!(err <= EXACT, "{kind:?} t {t}: {err}");
        }
    }
}

#[test]
fn heavy_hitter_eviction_matches_the_rule() {
    let capacity = 12;
    for kind in ALL {
        let config = HeadConfig {
            eviction: Eviction::HeavyHitter { recent: 5 },
            ..config(kind)
        };
        let b = Backend::from_config(config.clone()).unwrap();
        let x = stream(&config, 60, 9);
        let mut cache = b.make_cache(capacity).unwrap();
        for t in 0..60 {
            let out = step(&b, &x, t, &mut cache);
            let retained = retained_positions(&cache);
            assert_eq!(retained.len(), (t + 1).min(capacity), "{kind:?} t {t}");
            let recent = (t + 1).saturating_sub(5)..=t;
            assert!(
                recent.clone().all(|p| retained.contains(&p)),
                "{kind:?} t {t}"
            );
            let (tokens, blocks) = retained_candidates(&config, kind, t, &retained, capacity);
            let err = max_abs_diff(out.as_slice(), &oracle(&config, &x, t, &tokens, &blocks));
            assert!(err <= EXACT, "{kind:?} t {t}: {err}");
        }
    }
}

/// A token every query attends to strongly survives long after it left the
/// recent window; with sliding-window eviction it would be gone.
#[test]
fn heavy_hitters_keep_the_most_attended_token() {
    for kind in ALL {
        let config = HeadConfig {
            q_heads: 1,
            kv_heads: 1,
            head_dim: 4,
            window: 64,
            global_tokens: vec![],
            eviction: Eviction::HeavyHitter { recent: 3 },
            ..config(kind)
        };
        let b = Backend::from_config(config.clone()).unwrap();
        let mut cache = b.make_cache(6).unwrap();
        let q = Tensor::new(vec![1.0, 0.0, 0.0, 0.0], 1, 1, 4).unwrap();
        let v = Tensor::new(vec![0.5; 4], 1, 1, 4).unwrap();
        for t in 0..30 {
            // Token 4's key matches every query: it takes most of the mass.
            let key = if t == 4 {
                [4.0, 0.0, 0.0, 0.0]
            } else {
                [0.0, 1.0, 0.0, 0.0]
            };
            let k = Tensor::new(key.to_vec(), 1, 1, 4).unwrap();
            b.step(q.view(), k.view(), v.view(), &mut cache).unwrap();
        }
        let retained = retained_positions(&cache);
        assert!(retained.contains(&4), "{kind:?}: {retained:?}");
        assert!(retained.ends_with(&[27, 28, 29]), "{kind:?}: {retained:?}");
        assert_eq!(retained.len(), 6);
    }
}

/// Worst f16-cache step error against f32 prefill, over random streams.
fn f16_error(kind: BackendKind, seed: u64) -> f32 {
    let config = HeadConfig {
        cache_dtype: CacheDtype::F16,
        ..config(kind)
    };
    let b = Backend::from_config(config.clone()).unwrap();
    let x = stream(&config, 50, seed);
    let full = b.forward(x.q.view(), x.k.view(), x.v.view()).unwrap();
    let mut cache = b.make_cache(50).unwrap();
    (0..50)
        .map(|t| max_abs_diff(step(&b, &x, t, &mut cache).as_slice(), full.view().token(t)))
        .fold(0.0, f32::max)
}

#[test]
fn f16_step_error_is_bounded() {
    let mut worst = 0.0f32;
    for kind in ALL {
        for seed in 0..8 {
            worst = worst.max(f16_error(kind, seed));
        }
    }
    println!("max-abs error, f16 cache step vs f32 prefill: {worst:.3e} (bound {F16_BOUND:e})");
    assert!(worst <= F16_BOUND, "{worst}");
    assert!(
        worst > 0.0,
        "f16 rounding must show, or the cache is not f16"
    );
}

#[test]
fn caches_of_another_dtype_or_policy_are_rejected() {
    for kind in ALL {
        let b = Backend::from_config(config(kind)).unwrap();
        let x = stream(&config(kind), 1, 1);
        for other in [
            HeadConfig {
                cache_dtype: CacheDtype::F16,
                ..config(kind)
            },
            HeadConfig {
                eviction: Eviction::SlidingWindow,
                ..config(kind)
            },
        ] {
            let mut foreign = Backend::from_config(other.clone())
                .unwrap()
                .make_cache(4)
                .unwrap();
            let err = b
                .step(
                    token(&x.q, 0).view(),
                    token(&x.k, 0).view(),
                    token(&x.v, 0).view(),
                    &mut foreign,
                )
                .unwrap_err();
            assert_eq!(
                err,
                AttentionError::CacheLayoutMismatch {
                    expected: CacheLayout::of(&config(kind)),
                    actual: CacheLayout::of(&other),
                }
            );
            assert!(foreign.is_empty());
        }
    }
}
