//! f32 ⇄ f16 conversions that vectorise on any target.
//!
//! Why not `half`'s slice conversions: in a `no_std` build without F16C
//! enabled at compile time they fall back to a branchy per-element routine,
//! and appending one token to an f16 cache of shape A MHA converted 512
//! values that way (k and v narrowed, then widened back for the block sums)
//! — about as long as the whole f32 step. The functions below compute the
//! same bits with integer arithmetic and selects only (the technique of
//! Fabian Giesen's public-domain `float_to_half_fast3_rtne` and
//! `half_to_float_fast5`), so LLVM turns the slice loops into SSE2/AVX code
//! on x86_64 and into straight-line code on the microcontrollers.
//!
//! **Invariant:** every function here returns bit for bit what `half`
//! returns (`f16::from_f32` rounds to nearest, ties to even; `f16::to_f32`
//! quiets NaNs), for every input including NaN payloads, infinities and
//! subnormals; the tests check all 65,536 halves and every rounding
//! boundary between them.

use half::f16;

/// `x` rounded to the nearest f16 (ties to even), as `f16::from_f32` does.
#[inline(always)]
#[must_use]
pub fn narrow(x: f32) -> f16 {
    /// 65,536.0, the smallest magnitude that is certainly infinite in f16
    /// (65,520 up to it round there through the normal path's carry).
    const F16_OVERFLOW: u32 = (127 + 16) << 23;
    /// 2^-14, the smallest normal f16; below it the result is subnormal.
    const F16_MIN_NORMAL: u32 = (127 - 14) << 23;
    /// 0.5: adding it to a value below 2^-14 leaves the f16 subnormal's
    /// mantissa, correctly rounded by the FPU, in the low mantissa bits.
    const SUBNORMAL_MAGIC: u32 = ((127 - 15) + (23 - 10) + 1) << 23;
    /// Rebias the exponent from f32 to f16 and add the rounding constant
    /// one below half an f16 ulp (the tie goes to even through `odd`).
    const REBIAS_ROUND: u32 = ((15u32.wrapping_sub(127)) << 23).wrapping_add(0xFFF);

    let bits = x.to_bits();
    let sign = (bits >> 16) & 0x8000;
    let abs = bits & 0x7FFF_FFFF;
    let odd = (abs >> 13) & 1;
    let normal = abs.wrapping_add(REBIAS_ROUND).wrapping_add(odd) >> 13;
    let subnormal = (f32::from_bits(abs) + f32::from_bits(SUBNORMAL_MAGIC))
        .to_bits()
        .wrapping_sub(SUBNORMAL_MAGIC);
    // NaN keeps the top of its payload and is made quiet.
    let nan = 0x7E00 | ((abs & 0x007F_FFFF) >> 13);
    let magnitude = if abs > 0x7F80_0000 {
        nan
    } else if abs >= F16_OVERFLOW {
        0x7C00
    } else if abs < F16_MIN_NORMAL {
        subnormal
    } else {
        normal
    };
    f16::from_bits((magnitude | sign) as u16)
}

/// The smallest f32 magnitude that [`narrow`] rounds to infinity: 65,520
/// lies halfway between the largest finite f16 (65,504) and 65,536, and
/// the tie goes to the even mantissa, which is the carry into infinity.
pub const F16_OVERFLOW_THRESHOLD: f32 = 65_520.0;

/// True when `x` is finite but [`narrow`] rounds it to ±infinity, i.e.
/// `|x| >= 65520`. Why a separate predicate: an f16 cache must refuse such
/// a value *before* it narrows (possibly through F16C), so the decision is
/// the same on every ISA and nothing is stored on refusal. NaN and ±inf are
/// not overflows (they are stored as such).
#[inline(always)]
#[must_use]
pub const fn rounds_to_infinity(x: f32) -> bool {
    let abs = x.to_bits() & 0x7FFF_FFFF;
    abs >= F16_OVERFLOW_THRESHOLD.to_bits() && abs < f32::INFINITY.to_bits()
}

/// `h` as f32 (exact), as `f16::to_f32` does.
#[inline(always)]
#[must_use]
pub fn widen(h: f16) -> f32 {
    /// The f16 exponent field, moved to where f32 keeps its exponent.
    const EXPONENT: u32 = 0x7C00 << 13;
    /// 2^-14 as f32 bits: a subnormal's mantissa placed under this
    /// exponent, minus 2^-14, is the subnormal's exact value.
    const SUBNORMAL_MAGIC: u32 = 113 << 23;

    let h = u32::from(h.to_bits());
    let sign = (h & 0x8000) << 16;
    let shifted = (h & 0x7FFF) << 13;
    let exponent = shifted & EXPONENT;
    let normal = shifted + ((127 - 15) << 23);
    let quiet = if shifted > EXPONENT { 0x0040_0000 } else { 0 };
    let special = (shifted + ((255 - 31) << 23)) | quiet;
    let subnormal =
        (f32::from_bits(shifted + SUBNORMAL_MAGIC) - f32::from_bits(SUBNORMAL_MAGIC)).to_bits();
    let magnitude = if exponent == EXPONENT {
        special
    } else if exponent == 0 {
        subnormal
    } else {
        normal
    };
    f32::from_bits(magnitude | sign)
}

/// `dst[i] = narrow(src[i])`.
///
/// # Panics
/// If the lengths differ.
#[inline(always)]
pub fn narrow_slice(src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len(), "narrow_slice: lengths differ");
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = narrow(s);
    }
}

/// `dst[i] = widen(src[i])`.
///
/// # Panics
/// If the lengths differ.
#[inline(always)]
pub fn widen_slice(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "widen_slice: lengths differ");
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = widen(s);
    }
}

/// A way to narrow appended rows into an f16 cache: `dst[i] =
/// narrow(src[i])` and `stored[i] = widen(dst[i])`, bit for bit as
/// [`narrow`] and [`widen`] compute them. [`narrow_widen_slice`] is the
/// portable one; a backend may pass a faster one (F16C) to
/// [`KvCache::append_with`](crate::KvCache::append_with).
///
/// # Panics
/// An implementation may panic if the three lengths differ.
pub type NarrowFn = fn(src: &[f32], dst: &mut [f16], stored: &mut [f32]);

/// The portable [`NarrowFn`].
///
/// # Panics
/// If the lengths differ.
pub fn narrow_widen_slice(src: &[f32], dst: &mut [f16], stored: &mut [f32]) {
    narrow_slice(src, dst);
    widen_slice(dst, stored);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_every_half_matches_half() {
        for bits in 0..=u16::MAX {
            let h = f16::from_bits(bits);
            assert_eq!(widen(h).to_bits(), h.to_f32().to_bits(), "{bits:#06x}");
        }
    }

    /// Every f16 value's f32 neighbourhood and the midpoints to the next
    /// one (where ties are decided), both signs: every rounding boundary.
    #[test]
    fn narrowing_at_every_rounding_boundary_matches_half() {
        let mut checked = 0u32;
        for bits in 0..=0x7C00u16 {
            let low = f16::from_bits(bits).to_f32().to_bits();
            let high = f16::from_bits(bits + 1).to_f32().to_bits();
            let mid = low + (high - low) / 2;
            for x in [low, low + 1, mid - 1, mid, mid + 1, high - 1] {
                for x in [x, x | 0x8000_0000] {
                    let x = f32::from_bits(x);
                    assert_eq!(
                        narrow(x).to_bits(),
                        f16::from_f32(x).to_bits(),
                        "{:#010x}",
                        x.to_bits()
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 380_000);
    }

    /// Infinities, NaN payloads, overflow and the underflow edge.
    #[test]
    fn narrowing_special_values_matches_half() {
        let mut cases = alloc::vec![
            0x7F80_0000u32,
            0x7F80_0001,
            0x7FC0_0000,
            0x7FFF_FFFF,
            0x7FA0_2000,
            0x4780_0000,
            0x477F_F000,
            0x477F_EFFF,
            0x7F7F_FFFF,
            0x0000_0001,
            0x0080_0000,
            0x3300_0000,
            0x3300_0001,
            0x32FF_FFFF,
        ];
        // A spread over all bit patterns.
        cases.extend((0..=u32::MAX).step_by(65_521));
        for bits in cases {
            for x in [bits, bits ^ 0x8000_0000] {
                let f = f32::from_bits(x);
                assert_eq!(narrow(f).to_bits(), f16::from_f32(f).to_bits(), "{x:#010x}");
            }
        }
    }

    /// Every f32 bit pattern (7.5 s in release on the 2-core dev box); run with
    /// `cargo test --release -p aether-domain -- --ignored every_f32`.
    #[test]
    #[ignore = "exhaustive: 2^32 conversions, release only"]
    fn narrowing_every_f32_matches_half() {
        for bits in 0..=u32::MAX {
            let x = f32::from_bits(bits);
            assert_eq!(
                narrow(x).to_bits(),
                f16::from_f32(x).to_bits(),
                "{bits:#010x}"
            );
            assert_eq!(
                rounds_to_infinity(x),
                x.is_finite() && narrow(x).is_infinite(),
                "{bits:#010x}"
            );
        }
    }

    /// The overflow predicate agrees with [`narrow`] around the threshold
    /// and at the specials, both signs.
    #[test]
    fn rounds_to_infinity_is_exactly_where_narrow_overflows() {
        let threshold = F16_OVERFLOW_THRESHOLD.to_bits();
        let mut cases = alloc::vec![0, 1, 0x7F80_0000u32, 0x7FC0_0000, 0x7F7F_FFFF];
        cases.extend(threshold - 4096..threshold + 4096);
        cases.extend((0..=u32::MAX).step_by(65_521));
        for bits in cases {
            for x in [bits, bits ^ 0x8000_0000] {
                let x = f32::from_bits(x);
                assert_eq!(
                    rounds_to_infinity(x),
                    x.is_finite() && narrow(x).is_infinite(),
                    "{:#010x}",
                    x.to_bits()
                );
            }
        }
        assert!(!rounds_to_infinity(65_519.998));
        assert!(rounds_to_infinity(-65_520.0));
        assert!(!rounds_to_infinity(f32::NEG_INFINITY));
        assert!(!rounds_to_infinity(f32::NAN));
    }

    #[test]
    fn slices_convert_elementwise() {
        let src = [1.0f32, -2.5, 65_504.0, 1.0e-6, f32::INFINITY];
        let mut halves = [f16::ZERO; 5];
        narrow_slice(&src, &mut halves);
        let mut back = [0.0f32; 5];
        widen_slice(&halves, &mut back);
        for ((s, h), b) in src.iter().zip(halves).zip(back) {
            assert_eq!(h, f16::from_f32(*s));
            assert_eq!(b, h.to_f32());
        }
    }
}
