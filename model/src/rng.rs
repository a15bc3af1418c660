//! The deterministic generator behind [`ModelWeights::random`](crate::ModelWeights::random).
//!
//! Random-init weights are a test fixture and a deployable placeholder; both
//! only make sense if the same seed gives the same bytes on every machine
//! and every run. xorshift64* (Vigna 2016) is tiny, needs no crate, and
//! uses only integer operations, so it is bit-reproducible everywhere; the
//! prototype used it with the same seed ([`DEFAULT_SEED`]).

/// The prototype's seed: the packet magic `0xC5110007` followed by `DEADBEEF`.
pub const DEFAULT_SEED: u64 = 0xC511_0007_DEAD_BEEF;

/// The xorshift64* multiplier (Vigna, "An experimental exploration of
/// Marsaglia's xorshift generators, scrambled", 2016).
const MULTIPLIER: u64 = 0x2545_F491_4F6C_DD1D;

/// xorshift64*: 64 bits of state, period 2^64 − 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XorShift64Star {
    state: u64,
}

impl XorShift64Star {
    /// A generator seeded with `seed`. The all-zero state is a fixed point
    /// of xorshift, so seed 0 is replaced by [`DEFAULT_SEED`].
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self {
            state: if seed == 0 { DEFAULT_SEED } else { seed },
        }
    }

    /// The next 64 random bits.
    pub const fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(MULTIPLIER)
    }

    /// Uniform in `[0, 1)`: the top 24 bits (the best-mixed ones) over
    /// 2^24, which is exact in `f32`.
    pub fn next_unit(&mut self) -> f32 {
        const SCALE: f32 = 1.0 / 16_777_216.0;
        (self.next_u64() >> 40) as f32 * SCALE
    }

    /// Uniform in `[-scale, scale)`. `2u - 1` is exact in `f32`, so the only
    /// rounding is the final multiply, which IEEE 754 fixes bit for bit.
    pub fn next_symmetric(&mut self, scale: f32) -> f32 {
        (2.0 * self.next_unit() - 1.0) * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_seed_is_not_stuck() {
        let mut rng = XorShift64Star::new(0);
        assert_ne!(rng.next_u64(), 0);
        assert_eq!(XorShift64Star::new(0), XorShift64Star::new(DEFAULT_SEED));
    }

    #[test]
    fn first_outputs_are_pinned() {
        // Pin the sequence so a refactor cannot silently change every
        // random-init blob (their bytes are compared across runs).
        let mut rng = XorShift64Star::new(DEFAULT_SEED);
        let first: [u64; 3] = [rng.next_u64(), rng.next_u64(), rng.next_u64()];
        let mut x = DEFAULT_SEED;
        for expected in first {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            assert_eq!(expected, x.wrapping_mul(MULTIPLIER));
        }
    }

    #[test]
    fn symmetric_values_stay_in_range() {
        let mut rng = XorShift64Star::new(7);
        for _ in 0..10_000 {
            let v = rng.next_symmetric(0.25);
            assert!((-0.25..0.25).contains(&v), "{v}");
        }
    }
}
