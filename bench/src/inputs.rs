//! Deterministic benchmark inputs.
//!
//! Why one generator: prefill and decode feed both crates the same values,
//! and a fixed xorshift keeps every run's inputs identical without pulling
//! in a random-number crate.

/// `len` values in [-1, 1) from `seed` (xorshift64).
pub(crate) fn random(seed: u64, len: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_seeded_and_in_range() {
        let a = random(7, 1000);
        assert_eq!(a, random(7, 1000));
        assert_ne!(a, random(8, 1000));
        assert!(a.iter().all(|x| (-1.0..1.0).contains(x)));
    }
}
