//! The streaming step against an oracle read straight from the cache.
//!
//! Why here and not only in `tests/`: the chunked walk has const-generic
//! chunk sizes, and only a unit test can instantiate tiny ones (8
//! candidates, 2 landmarks) to drive the multi-chunk online softmax and the
//! cursor through every boundary that the production sizes reach only for
//! huge windows. The oracle takes the domain's candidate set of the newest
//! position, keeps what the cache retains (`slot`, `landmark`), widens the
//! stored rows and computes the softmax in f64, so it checks the kernels,
//! the run/ring slot arithmetic and every eviction policy at once.

use super::*;
use aether_domain::{CacheDtype, CacheLayout, HeadConfig};
use alloc::vec;
use alloc::vec::Vec;

/// f32 rounding of `O(W + log T)`-term sums against an f64 oracle over the
/// very rows the cache holds (f16 rows are widened exactly, so the same bar
/// holds for both dtypes).
const TOLERANCE: f32 = 1e-5;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
    }

    fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.next()).collect()
    }
}

/// f64 attention of the newest position over the retained candidates.
fn oracle(config: &HeadConfig, pattern: &SparsePattern, q: &[f32], cache: &KvCache) -> Vec<f32> {
    let i = cache.len() - 1;
    let dim = config.head_dim;
    let group = config.q_heads / config.kv_heads;
    let candidates = pattern.candidates(i, i + 1);
    let widen = |row: Row<'_>| {
        let mut wide = vec![0.0f32; row.len()];
        row.to_f32(&mut wide);
        wide.into_iter().map(f64::from).collect::<Vec<f64>>()
    };
    let mut out = Vec::new();
    for h in 0..config.q_heads {
        let kv = h / group;
        let mut keys = Vec::new();
        let mut values = Vec::new();
        for &j in &candidates.tokens {
            if let Some(slot) = cache.slot(j) {
                keys.push(widen(cache.key(slot, kv)));
                values.push(widen(cache.value(slot, kv)));
            }
        }
        for &b in &candidates.landmark_blocks {
            if let Some(mark) = cache.landmark(b) {
                let mean = |sum: &[f32]| {
                    sum[kv * dim..(kv + 1) * dim]
                        .iter()
                        .map(|&x| f64::from(x) / mark.count as f64)
                        .collect::<Vec<f64>>()
                };
                keys.push(mean(mark.key_sum));
                values.push(mean(mark.value_sum));
            }
        }
        let query = &q[h * dim..(h + 1) * dim];
        let scores: Vec<f64> = keys
            .iter()
            .map(|k| {
                k.iter()
                    .zip(query)
                    .map(|(a, &b)| a * f64::from(b))
                    .sum::<f64>()
                    / (dim as f64).sqrt()
            })
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scores.iter().map(|s| libm::exp(s - max)).collect();
        let total: f64 = weights.iter().sum();
        for e in 0..dim {
            let acc: f64 = weights.iter().zip(&values).map(|(w, v)| w * v[e]).sum();
            out.push((acc / total) as f32);
        }
    }
    out
}

/// Every way this build can run a step, with a name for failures.
type Variant = (
    &'static str,
    fn(&StepHead<'_>, &[f32], &KvCache, &mut [f32]),
);

fn variants() -> Vec<Variant> {
    let mut list: Vec<Variant> = vec![
        ("portable 56/16", |h, q, c, o| {
            assert!(run::<Portable, 56, 16>(Portable, h, q, c, o));
        }),
        ("portable 16/2", |h, q, c, o| {
            assert!(run::<Portable, 16, 2>(Portable, h, q, c, o));
        }),
        ("dispatched", |h, q, c, o| {
            assert!(attend(h, Isa::detect(), q, c, o));
        }),
    ];
    #[cfg(target_arch = "x86_64")]
    if crate::step_x86::Avx2F16c::get().is_some() {
        list.push(("avx2 72/24", |h, q, c, o| {
            let token = crate::step_x86::Avx2F16c::get().unwrap();
            // SAFETY: the token proves AVX2, FMA and F16C.
            assert!(unsafe { crate::step_x86::attend(token, h, q, c, o) });
        }));
        list.push(("avx2 16/2", |h, q, c, o| {
            let token = crate::step_x86::Avx2F16c::get().unwrap();
            // SAFETY: the token proves AVX2, FMA and F16C.
            unsafe { avx2_small(token, h, q, c, o) };
        }));
    }
    #[cfg(target_arch = "x86_64")]
    if crate::step_x86::Avx512F16c::get().is_some() {
        list.push(("avx512 72/24", |h, q, c, o| {
            let token = crate::step_x86::Avx512F16c::get().unwrap();
            // SAFETY: the token proves AVX-512F, AVX2, FMA and F16C.
            unsafe { crate::step_x86::avx512::attend(token, h, q, c, o) };
        }));
        list.push(("avx512 16/2", |h, q, c, o| {
            let token = crate::step_x86::Avx512F16c::get().unwrap();
            // SAFETY: the token proves AVX-512F, AVX2, FMA and F16C.
            unsafe { avx512_small(token, h, q, c, o) };
        }));
    }
    list
}

/// The AVX-512 kernel with the smallest chunks it allows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn avx512_small(
    token: crate::step_x86::Avx512F16c,
    head: &StepHead<'_>,
    q: &[f32],
    cache: &KvCache,
    out: &mut [f32],
) {
    run::<crate::step_x86::Avx512F16c, 16, 2>(token, head, q, cache, out);
}

/// The x86 kernel with the smallest chunks it allows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn avx2_small(
    token: crate::step_x86::Avx2F16c,
    head: &StepHead<'_>,
    q: &[f32],
    cache: &KvCache,
    out: &mut [f32],
) {
    run::<crate::step_x86::Avx2F16c, 16, 2>(token, head, q, cache, out);
}

/// Streams `steps` random tokens into a cache of `capacity` and checks every
/// variant against the oracle after each append.
fn check(config: &HeadConfig, capacity: usize, steps: usize, seed: u64) -> f32 {
    let pattern = SparsePattern::new(config).unwrap();
    let head = StepHead {
        pattern: &pattern,
        q_heads: config.q_heads,
        kv_heads: config.kv_heads,
        dim: config.head_dim,
    };
    let mut cache = KvCache::new(capacity, CacheLayout::of(config)).unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let token_len = config.kv_heads * config.head_dim;
    let mut out = vec![0.0f32; config.q_heads * config.head_dim];
    let mut worst = 0.0f32;
    for t in 0..steps {
        let q = rng.vec(config.q_heads * config.head_dim);
        cache
            .append(&rng.vec(token_len), &rng.vec(token_len))
            .unwrap();
        let want = oracle(config, &pattern, &q, &cache);
        for (name, variant) in variants() {
            out.fill(f32::NAN);
            variant(&head, &q, &cache, &mut out);
            let err = out
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(
                    0.0f32,
                    |m, e| if e.is_nan() { f32::INFINITY } else { m.max(e) },
                );
            assert!(
                err <= TOLERANCE,
                "{name}: step {t}, error {err:e}, config {config:?} capacity {capacity}"
            );
            worst = worst.max(err);
        }
        if cache.tracks_attention() {
            record_attention(&head, &q, &mut cache);
        }
    }
    worst
}

fn config(
    q_heads: usize,
    kv_heads: usize,
    head_dim: usize,
    window: usize,
    block: usize,
) -> HeadConfig {
    HeadConfig {
        q_heads,
        kv_heads,
        head_dim,
        window,
        block_size: block,
        global_tokens: vec![0, 3],
        ..HeadConfig::default_aether()
    }
}

/// MHA, GQA, MQA and head counts that leave blocks of 2 and 1; dims with
/// and without an 8-lane tail; both dtypes; windows far beyond a chunk.
#[test]
fn every_shape_and_dtype_matches_the_oracle() {
    let shapes = [
        (4, 4, 32, 32, 16),
        (4, 1, 32, 32, 16),
        (8, 2, 16, 5, 3),
        (3, 1, 5, 7, 2),
        (6, 3, 12, 40, 1),
        (7, 7, 40, 3, 4),
        (2, 1, 8, 100, 8),
    ];
    for (seed, &(q_heads, kv_heads, dim, window, block)) in shapes.iter().enumerate() {
        for dtype in [CacheDtype::F32, CacheDtype::F16] {
            let config = HeadConfig {
                cache_dtype: dtype,
                ..config(q_heads, kv_heads, dim, window, block)
            };
            check(&config, 160, 160, seed as u64);
        }
    }
}

/// Sliding windows (the window's slots wrap around the ring) and H2O
/// (slots in any order, summaries dropped) for both dtypes.
#[test]
fn every_eviction_policy_matches_the_oracle() {
    for (seed, eviction) in [
        Eviction::SlidingWindow,
        Eviction::HeavyHitter { recent: 4 },
        Eviction::HeavyHitter { recent: 20 },
    ]
    .into_iter()
    .enumerate()
    {
        for dtype in [CacheDtype::F32, CacheDtype::F16] {
            for (q_heads, kv_heads, dim, window, block) in [(4, 1, 16, 12, 4), (4, 2, 9, 30, 2)] {
                let config = HeadConfig {
                    cache_dtype: dtype,
                    eviction,
                    ..config(q_heads, kv_heads, dim, window, block)
                };
                check(&config, 25, 120, seed as u64 + 10);
            }
        }
    }
}

/// Without log-strides, landmarks or globals the window is everything.
#[test]
fn window_only_patterns_match_the_oracle() {
    let config = HeadConfig {
        log_stride: false,
        landmarks: false,
        global_tokens: vec![],
        ..config(4, 2, 24, 10, 4)
    };
    check(&config, 64, 64, 99);
}

/// F16C narrowing (what a vector-ISA backend appends with) gives the
/// portable conversion's bits on every f16 rounding boundary, NaN payloads
/// and infinities, over a length that leaves a tail. (On a CPU without
/// F16C `narrow_f16c` is the portable code and this checks nothing new.)
#[cfg(target_arch = "x86_64")]
#[test]
fn f16c_narrowing_matches_the_portable_conversion() {
    let mut src = Vec::new();
    for bits in 0..=0x7C00u16 {
        let low = aether_domain::f16::from_bits(bits).to_f32().to_bits();
        let high = aether_domain::f16::from_bits(bits + 1).to_f32().to_bits();
        let mid = low + (high - low) / 2;
        for x in [low, mid - 1, mid, mid + 1] {
            src.push(f32::from_bits(x));
            src.push(f32::from_bits(x | 0x8000_0000));
        }
    }
    for bits in [
        0x7F80_0001u32,
        0x7FC0_0000,
        0x7FFF_FFFF,
        0x7FA0_2000,
        0x7F7F_FFFF,
    ] {
        src.push(f32::from_bits(bits));
        src.push(f32::from_bits(bits | 0x8000_0000));
    }
    src.push(1.0);
    assert!(!src.len().is_multiple_of(8));
    let run = |narrow: NarrowFn| {
        let mut dst = vec![aether_domain::f16::ZERO; src.len()];
        let mut stored = vec![0.0f32; src.len()];
        narrow(&src, &mut dst, &mut stored);
        let stored: Vec<u32> = stored.iter().map(|x| x.to_bits()).collect();
        let dst: Vec<u16> = dst.iter().map(|h| h.to_bits()).collect();
        (dst, stored)
    };
    let want = run(f16_conv::narrow_widen_slice);
    let got = run(crate::step_x86::narrow_f16c);
    for (i, (g, w)) in got.0.iter().zip(&want.0).enumerate() {
        assert_eq!(g, w, "input {:#010x}", src[i].to_bits());
    }
    assert_eq!(got.1, want.1, "widened back");
}
