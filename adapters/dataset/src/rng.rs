//! SplitMix64: the generator's only randomness, written here so the
//! synthetic set depends on no other crate's choice of algorithm and gives
//! the same bits on every platform (`docs/training-data.md`).

/// Steele, Lea and Flood's SplitMix64: one add and a finaliser per draw,
/// every seed (0 included) valid.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// Uniform in `[0, 1)`: the top 53 bits, exact in `f64`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in `lo..=hi` (a small range, so the modulo bias is
    /// far below anything the data could show).
    pub(crate) fn int(&mut self, lo: usize, hi: usize) -> usize {
        let span = (hi - lo) as u64 + 1;
        lo + (self.next_u64() % span) as usize
    }

    /// Standard normal by Box–Muller through `libm`, so it is the same on
    /// every platform.
    pub(crate) fn normal(&mut self) -> f64 {
        // 1 - unit() is in (0, 1], so the log is finite.
        let radius = libm::sqrt(-2.0 * libm::log(1.0 - self.unit()));
        radius * libm::cos(core::f64::consts::TAU * self.unit())
    }
}

/// The SplitMix64 finaliser; also how independent seeds are derived from
/// a seed and an index.
pub(crate) const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published SplitMix64 reference outputs for seed 0 (from the
    /// reference C implementation), so the stream is the algorithm and
    /// not a look-alike.
    #[test]
    fn matches_the_reference_stream() {
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn draws_stay_in_range() {
        let mut rng = SplitMix64::new(42);
        for _ in 0..10_000 {
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
            let i = rng.int(3, 7);
            assert!((3..=7).contains(&i));
            assert!(rng.normal().is_finite());
        }
    }
}
