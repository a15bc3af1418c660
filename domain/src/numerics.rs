//! Portable f32 primitives shared by the fast backends.
//!
//! Written branch-free over fixed-width lane arrays so LLVM vectorises them
//! for whatever the target offers (SSE/AVX on x86_64, the M-profile DSP on
//! `thumbv7em`, plain scalar on `riscv32imc`), and `#[inline(always)]` so a
//! backend's `#[target_feature]` wrapper compiles them with wider vectors.
//! `core` has no `exp`; [`exp`] is the Cephes single-precision polynomial,
//! accurate to a few ulp over the range softmax feeds it.

/// Lanes per accumulator block: 8 f32 = one AVX register, two SSE/NEON ones.
pub const LANES: usize = 8;

const LOG2_E: f32 = core::f32::consts::LOG2_E;
/// ln 2 split into a part exact in f32 and the remainder (Cody–Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding and subtracting it rounds an f32 to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `e^x` for f32, relative error below 3e-7 on `[-87, 88]`; arguments below
/// -87.3 (including -inf) give 0, above 88.7 saturate near `f32::MAX`.
#[inline(always)]
#[must_use]
pub fn exp(x: f32) -> f32 {
    let underflow = x < -87.3;
    let x = x.clamp(-87.3, 88.7);
    let t = x * LOG2_E + ROUND_MAGIC;
    let n = t - ROUND_MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_2e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // t's low mantissa bits hold n + 2^22 + 2^23; rebuild 2^n from them.
    let n_int = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let e = y * f32::from_bits(((n_int + 127) as u32) << 23);
    // A select, not a branch, so the loop around it still vectorises.
    if underflow { 0.0 } else { e }
}

/// Dot product with [`LANES`] independent accumulators (reassociated, so
/// not bit-identical to a sequential sum).
#[inline(always)]
#[must_use]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let mut a_blocks = a.chunks_exact(LANES);
    let mut b_blocks = b.chunks_exact(LANES);
    for (x, y) in (&mut a_blocks).zip(&mut b_blocks) {
        for lane in 0..LANES {
            acc[lane] += x[lane] * y[lane];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in a_blocks.remainder().iter().zip(b_blocks.remainder()) {
        tail += x * y;
    }
    let mut sum = tail;
    for lane in acc {
        sum += lane;
    }
    sum
}

/// `y += a * x`.
#[inline(always)]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    debug_assert_eq!(y.len(), x.len());
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `y *= a`.
#[inline(always)]
pub fn scale(y: &mut [f32], a: f32) {
    for y in y.iter_mut() {
        *y *= a;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_over_the_softmax_range() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let want = libm_free_exp(f64::from(x));
            let got = f64::from(exp(x));
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_37;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    }

    /// f64 exp by range reduction and a long Taylor series: a test oracle
    /// accurate far beyond f32.
    fn libm_free_exp(x: f64) -> f64 {
        let n = (x / core::f64::consts::LN_2).round();
        let r = x - n * core::f64::consts::LN_2;
        let (mut term, mut sum) = (1.0f64, 1.0f64);
        for k in 1..30 {
            term *= r / f64::from(k);
            sum += term;
        }
        sum * 2f64.powi(n as i32)
    }

    #[test]
    fn dot_axpy_scale() {
        let a: [f32; 11] = core::array::from_fn(|i| i as f32);
        let b: [f32; 11] = core::array::from_fn(|i| (i as f32) * 0.5 + 1.0);
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot(&a, &b), want);
        let mut y = [1.0f32; 3];
        axpy(&mut y, 2.0, &[1.0, 2.0, 3.0]);
        assert_eq!(y, [3.0, 5.0, 7.0]);
        scale(&mut y, 0.5);
        assert_eq!(y, [1.5, 2.5, 3.5]);
    }
}
