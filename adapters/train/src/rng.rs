//! The trainer's seeded generator: initial weights and batch order.
//!
//! Why our own: training must be bit-reproducible for a seed (the same
//! seed gives the same weights), so the stream of random numbers must not
//! depend on a crate's version or the platform. splitmix64 (Steele, Lea,
//! Flood 2014) is a few integer operations and passes BigCrush.

/// splitmix64: 64 bits of state, every seed (0 included) is usable.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for a separate purpose (init, shuffling, a baseline),
    /// so adding draws to one does not shift the others.
    pub(crate) fn fork(seed: u64, stream: u64) -> Self {
        let mut mixer = Self::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Self::new(mixer.next_u64())
    }

    pub(crate) const fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits (exact in f64).
    pub(crate) fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[-scale, scale)`.
    pub(crate) fn next_symmetric(&mut self, scale: f64) -> f64 {
        (2.0 * self.next_unit() - 1.0) * scale
    }

    /// Uniform in `0..bound` (`bound > 0`); Lemire's multiply-shift, whose
    /// bias (below 2^-40 for our sizes) does not matter for shuffling.
    pub(crate) fn below(&mut self, bound: usize) -> usize {
        ((u128::from(self.next_u64()) * bound as u128) >> 64) as usize
    }

    /// Fisher–Yates shuffle.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_output_matches_the_published_sequence() {
        // splitmix64 seeded with 0: the reference implementation's first
        // output, so a refactor cannot change every trained model silently.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn shuffle_is_a_permutation_and_seeded() {
        let mut a: Vec<usize> = (0..50).collect();
        let mut b = a.clone();
        SplitMix64::new(9).shuffle(&mut a);
        SplitMix64::new(9).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..50).collect::<Vec<_>>());
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn symmetric_stays_in_range() {
        let mut rng = SplitMix64::new(3);
        for _ in 0..10_000 {
            let v = rng.next_symmetric(0.5);
            assert!((-0.5..0.5).contains(&v), "{v}");
        }
    }
}
