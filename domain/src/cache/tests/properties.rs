//! Randomised properties of the cache over every eviction policy and
//! dtype: the O(1) non-finite count equals a brute-force count over the
//! retained slots after every operation.
//!
//! A seeded xorshift drives the cases (the domain has no proptest
//! dependency); a failure message names the seed and the operation, so a
//! case replays with `case(seed)`.

use super::*;

/// xorshift64: small, deterministic, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// A value in [-4, 4) on a 1/64 grid, so f16 rounding is exercised
    /// only through the injected specials and overflows.
    fn value(&mut self) -> f32 {
        (self.below(512) as f32 - 256.0) / 64.0
    }
}

/// A random layout: every policy and dtype, small shapes so evictions,
/// ring wrap-around and partial blocks all happen within a few dozen
/// appends.
fn layout_and_capacity(rng: &mut Rng) -> (CacheLayout, usize) {
    let capacity = 1 + rng.below(7);
    let eviction = match rng.below(3) {
        0 => Eviction::None,
        1 => Eviction::SlidingWindow,
        _ if capacity >= 2 => Eviction::HeavyHitter {
            recent: 1 + rng.below(capacity - 1),
        },
        _ => Eviction::SlidingWindow,
    };
    let layout = CacheLayout {
        kv_heads: 1 + rng.below(2),
        head_dim: 1 + rng.below(3),
        block_size: 1 + rng.below(4),
        dtype: if rng.chance(50) {
            CacheDtype::F32
        } else {
            CacheDtype::F16
        },
        eviction,
    };
    (layout, capacity)
}

/// One token's keys and values, sometimes with a NaN, ±inf or a finite
/// value beyond the f16 range in one element of k or v.
fn token(rng: &mut Rng, token_len: usize) -> (Vec<f32>, Vec<f32>) {
    let mut k: Vec<f32> = (0..token_len).map(|_| rng.value()).collect();
    let mut v: Vec<f32> = (0..token_len).map(|_| rng.value()).collect();
    if rng.chance(25) {
        let special = match rng.below(6) {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => -f32::NAN,
            4 => 70_000.0,
            _ => -f32::MAX,
        };
        let target = if rng.chance(50) { &mut k } else { &mut v };
        let at = rng.below(token_len);
        target[at] = special;
    }
    (k, v)
}

/// Retained slots with a non-finite element in a stored key or value row,
/// counted the slow way.
fn brute_non_finite_rows(c: &KvCache) -> usize {
    let heads = c.layout().kv_heads;
    (0..c.retained())
        .filter(|&slot| {
            (0..heads).any(|h| {
                row(c.key(slot, h))
                    .iter()
                    .chain(&row(c.value(slot, h)))
                    .any(|x| !x.is_finite())
            })
        })
        .count()
}

/// What a case exercised, so the test can check every policy and dtype
/// met a non-finite token that was later evicted or cleared.
#[derive(Default, Clone, Copy)]
struct Seen {
    non_finite_dropped: bool,
}

/// Index of a layout's (policy, dtype) pair in `0..6`.
fn kind(layout: &CacheLayout) -> usize {
    let policy = match layout.eviction {
        Eviction::None => 0,
        Eviction::SlidingWindow => 1,
        Eviction::HeavyHitter { .. } => 2,
    };
    policy * 2 + usize::from(layout.dtype == CacheDtype::F16)
}

fn case(seed: u64) -> (usize, Seen) {
    let mut rng = Rng(seed);
    let (layout, capacity) = layout_and_capacity(&mut rng);
    let mut c = KvCache::new(capacity, layout).unwrap();
    let token_len = layout.token_len();
    let mut seen = Seen::default();
    for op in 0..60 {
        let non_finite_before = c.non_finite_rows();
        let what = rng.below(100);
        let context = alloc::format!("seed {seed} op {op} {layout:?} capacity {capacity}");
        if what < 70 {
            let (k, v) = token(&mut rng, token_len);
            let overflow = k.iter().chain(&v).any(|&x| f16_conv::rounds_to_infinity(x));
            let before = c.clone();
            match c.append(&k, &v) {
                Ok(_) => assert!(
                    !(overflow && layout.dtype == CacheDtype::F16),
                    "{context}: f16 overflow accepted"
                ),
                Err(AttentionError::F16Overflow { .. }) => {
                    assert!(overflow && layout.dtype == CacheDtype::F16, "{context}");
                    assert_eq!(c, before, "{context}");
                }
                Err(AttentionError::CacheFull { .. }) => {
                    assert_eq!(layout.eviction, Eviction::None, "{context}");
                }
                Err(e) => panic!("{context}: {e}"),
            }
        } else if what < 97 {
            let slot = rng.below(capacity + 1);
            c.record_attention(slot, rng.value().abs());
        } else {
            c.clear();
        }
        assert_eq!(c.non_finite_rows(), brute_non_finite_rows(&c), "{context}");
        seen.non_finite_dropped |= c.non_finite_rows() < non_finite_before;
    }
    (kind(&layout), seen)
}

#[test]
fn non_finite_rows_counts_retained_non_finite_tokens() {
    let mut dropped = [0usize; 6];
    for seed in 1..=1_500 {
        let (kind, seen) = case(seed);
        dropped[kind] += usize::from(seen.non_finite_dropped);
    }
    // Every (policy, dtype) pair saw a non-finite token leave the cache
    // (by eviction, or by clear for `none`) in dozens of cases.
    assert!(dropped.iter().all(|&n| n >= 20), "{dropped:?}");
}
