//! Shared helpers for the cross-crate integration tests in `tests/`.
//!
//! Deterministic inputs (so a failing proptest case reproduces from its
//! seed alone) and the error measure every equality test reports.

use aether_domain::{BackendKind, HeadConfig, Tensor};
use proptest::prelude::*;

/// A deterministic xorshift64* stream; tests derive all inputs from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A stream from `seed` (0 is remapped: xorshift has no zero state).
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next value, uniform in `[-1, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        (bits as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// A `seq x heads x dim` tensor of values uniform in `[-scale, scale)`.
///
/// # Panics
/// If the shape is invalid (zero heads or dim).
#[must_use]
pub fn random_tensor(rng: &mut Rng, seq: usize, heads: usize, dim: usize, scale: f32) -> Tensor {
    let data = (0..seq * heads * dim)
        .map(|_| rng.next_f32() * scale)
        .collect();
    Tensor::new(data, seq, heads, dim).expect("valid test shape")
}

/// Largest absolute elementwise difference; infinite on a length mismatch
/// so a shape bug can never pass as "close".
#[must_use]
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Token `token` of `t` as its own one-token tensor (for streaming steps).
///
/// # Panics
/// If `token >= t.seq()`.
#[must_use]
pub fn token(t: &Tensor, token: usize) -> Tensor {
    Tensor::new(t.view().token(token).to_vec(), 1, t.heads(), t.dim()).expect("one token")
}

/// A random valid head for the property suites: GQA group and KV heads
/// chosen independently so MHA, GQA and MQA all occur; small dims so tails
/// of vector loops occur; the window from `window` (suites that must cross
/// the kernels' chunk sizes pass wide ones). `causal: None` draws it too.
pub fn arb_head(
    window: impl Strategy<Value = usize>,
    causal: Option<bool>,
) -> impl Strategy<Value = HeadConfig> {
    (
        1usize..=3,
        1usize..=3,
        1usize..=12,
        window,
        1usize..=6,
        any::<bool>(),
        proptest::collection::vec(0usize..8, 0..3),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            move |(kv_heads, group, head_dim, window, block_size, c, globals, stride, marks)| {
                HeadConfig {
                    backend: BackendKind::Reference,
                    q_heads: kv_heads * group,
                    kv_heads,
                    head_dim,
                    window,
                    block_size,
                    causal: causal.unwrap_or(c),
                    global_tokens: globals,
                    log_stride: stride,
                    landmarks: marks,
                    ..HeadConfig::default_aether()
                }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let x = a.next_f32();
            assert_eq!(x, b.next_f32());
            assert!((-1.0..1.0).contains(&x));
        }
    }

    #[test]
    fn max_abs_diff_flags_length_mismatch() {
        assert_eq!(max_abs_diff(&[1.0, 2.0], &[1.5, 2.0]), 0.5);
        assert_eq!(max_abs_diff(&[1.0], &[1.0, 2.0]), f32::INFINITY);
    }
}
