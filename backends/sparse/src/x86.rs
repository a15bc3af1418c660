//! AVX-512 and AVX2+FMA implementations of [`Simd`], and their detection.
//!
//! Why it exists: `x86_64` builds target the SSE2 baseline, which leaves
//! most of a modern core idle: AVX2+FMA doubles the vector width and fuses
//! multiply-add, AVX-512 doubles it again and adds lane masks. Detection
//! reads CPUID and XCR0 through `core::arch` (the crate is `no_std`, so
//! `is_x86_feature_detected!` is not available) and checks both that the
//! CPU has the instructions and that the OS saves the wider registers.
//!
//! **Invariant:** an [`Avx512`] or [`Avx2`] value exists only after its
//! detection succeeded ([`Avx512::detect`], [`Avx2::detect`]); every
//! `unsafe` block below relies on that and on nothing else.

#[allow(
    clippy::wildcard_imports,
    reason = "dozens of intrinsics, all from one module"
)]
use core::arch::x86_64::*;

use crate::simd::Simd;

use self::exp_constants as c;

/// The constants of [`aether_domain::numerics::exp`] (Cephes `expf`), repeated here so the
/// vector ISAs compute the same polynomial lane by lane.
#[allow(
    clippy::excessive_precision,
    reason = "the published Cephes literals, digit for digit as in numerics::exp"
)]
pub(crate) mod exp_constants {
    /// Below this `e^x` underflows to 0.
    pub(crate) const MIN_ARG: f32 = -87.3;
    /// Above this `e^x` saturates.
    pub(crate) const MAX_ARG: f32 = 88.7;
    /// log2(e).
    pub(crate) const LOG2_E: f32 = core::f32::consts::LOG2_E;
    /// ln 2, high part (exact in f32).
    pub(crate) const LN2_HI: f32 = 0.693_359_375;
    /// ln 2, low part.
    pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
    /// 1.5 * 2^23: adding and subtracting it rounds to an integer.
    pub(crate) const ROUND_MAGIC: f32 = 12_582_912.0;
    /// The minimax polynomial, highest degree first.
    pub(crate) const POLY: [f32; 6] = [
        1.987_569_2e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        5.000_000_1e-1,
    ];
}

/// CPUID leaf 1 ECX: FMA.
pub(crate) const FMA: u32 = 1 << 12;
/// CPUID leaf 1 ECX: the OS enabled XSAVE (so XGETBV works).
const OSXSAVE: u32 = 1 << 27;
/// CPUID leaf 1 ECX: AVX.
const AVX: u32 = 1 << 28;
/// CPUID leaf 1 ECX: F16C (half-precision conversions).
pub(crate) const F16C: u32 = 1 << 29;
/// CPUID leaf 7 EBX: AVX2.
pub(crate) const AVX2: u32 = 1 << 5;
/// CPUID leaf 7 EBX: AVX-512 Foundation.
pub(crate) const AVX512F: u32 = 1 << 16;
/// XCR0: XMM and YMM state saved by the OS.
pub(crate) const YMM_STATE: u64 = 0b110;
/// XCR0: additionally opmask, ZMM_Hi256 and Hi16_ZMM state.
pub(crate) const ZMM_STATE: u64 = 0b1110_0110;

/// XCR0 and the leaf-1 ECX / leaf-7 EBX feature words, or `None` when the
/// OS does not support XSAVE (then no AVX state is saved at all).
pub(crate) fn cpu_features() -> Option<(u64, u32, u32)> {
    if __cpuid(0).eax < 7 {
        return None;
    }
    let leaf1 = __cpuid(1).ecx;
    if leaf1 & OSXSAVE == 0 || leaf1 & AVX == 0 {
        return None;
    }
    // SAFETY: XGETBV needs CR4.OSXSAVE, which the OSXSAVE bit checked above
    // reports as set.
    let xcr0 = unsafe { _xgetbv(0) };
    Some((xcr0, leaf1, __cpuid_count(7, 0).ebx))
}

/// AVX-512F: 16 lanes, 32 registers, lane masks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// 64-bit interleave of the low (`HIGH = false`) or high halves of each
    /// 128-bit granule of `a` and `b` (`vunpck{l,h}pd`).
    #[inline(always)]
    fn interleave64<const HIGH: bool>(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F detected (the token exists); casts are free.
        let a = unsafe { _mm512_castps_pd(a) };
        // SAFETY: as above.
        let b = unsafe { _mm512_castps_pd(b) };
        let mixed = if HIGH {
            // SAFETY: as above.
            unsafe { _mm512_unpackhi_pd(a, b) }
        } else {
            // SAFETY: as above.
            unsafe { _mm512_unpacklo_pd(a, b) }
        };
        // SAFETY: as above.
        unsafe { _mm512_castpd_ps(mixed) }
    }

    /// The token without reading CPUID again, for a caller whose own
    /// (cached) detection found the same features.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and the OS must save ZMM state.
    pub(crate) const unsafe fn assume_detected() -> Self {
        Self(())
    }

    /// The token, when the CPU has AVX-512F and the OS saves ZMM state.
    pub(crate) fn detect() -> Option<Self> {
        let (xcr0, _, leaf7) = cpu_features()?;
        (xcr0 & ZMM_STATE == ZMM_STATE && leaf7 & AVX512F != 0).then_some(Self(()))
    }
}

/// AVX2 with FMA: 8 lanes, 16 registers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// The token without reading CPUID again, for a caller whose own
    /// (cached) detection found the same features.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA and the OS must save YMM state.
    pub(crate) const unsafe fn assume_detected() -> Self {
        Self(())
    }

    /// The token, when the CPU has AVX2 and FMA and the OS saves YMM state.
    pub(crate) fn detect() -> Option<Self> {
        let (xcr0, leaf1, leaf7) = cpu_features()?;
        (xcr0 & YMM_STATE == YMM_STATE && leaf1 & FMA != 0 && leaf7 & AVX2 != 0).then_some(Self(()))
    }
}

// Every `unsafe` block in the two impls below calls one `core::arch`
// intrinsic whose only requirement is that the CPU supports the
// instruction set of the token (`self`), which exists only after
// detection; loads and stores additionally read/write exactly `LANES`
// values of a slice that was sliced to `LANES` just before (so in bounds).

impl Simd for Avx512 {
    const LANES: usize = 16;
    const ACCUMULATORS: usize = 16;
    type V = __m512;
    type M = __mmask16;

    #[inline(always)]
    fn zero(self) -> __m512 {
        // SAFETY: AVX-512F detected (see the comment above this impl).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        // SAFETY: AVX-512F detected.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, src: &[f32]) -> __m512 {
        let src = &src[..16];
        // SAFETY: AVX-512F detected; `src` has 16 readable values.
        unsafe { _mm512_loadu_ps(src.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32], v: __m512) {
        let dst = &mut dst[..16];
        // SAFETY: AVX-512F detected; `dst` has 16 writable values.
        unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F detected.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F detected.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F detected.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: AVX-512F detected (512-bit FMA is part of AVX-512F).
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F detected.
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn exp(self, x: __m512) -> __m512 {
        // SAFETY: AVX-512F detected.
        let keep = unsafe { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(self.splat(c::MIN_ARG), x) };
        let x = self.max(x, self.splat(c::MIN_ARG));
        // SAFETY: AVX-512F detected.
        let x = unsafe { _mm512_min_ps(x, self.splat(c::MAX_ARG)) };
        let t = self.fma(x, self.splat(c::LOG2_E), self.splat(c::ROUND_MAGIC));
        let n = self.sub(t, self.splat(c::ROUND_MAGIC));
        // SAFETY: AVX-512F detected.
        let r = unsafe { _mm512_fnmadd_ps(n, self.splat(c::LN2_HI), x) };
        // SAFETY: AVX-512F detected.
        let r = unsafe { _mm512_fnmadd_ps(n, self.splat(c::LN2_LO), r) };
        let mut p = self.splat(c::POLY[0]);
        for coefficient in &c::POLY[1..] {
            p = self.fma(p, r, self.splat(*coefficient));
        }
        let y = self.fma(self.mul(p, r), r, self.add(r, self.splat(1.0)));
        // SAFETY: AVX-512F detected.
        let t_bits = unsafe { _mm512_castps_si512(t) };
        // SAFETY: AVX-512F detected.
        let magic = unsafe { _mm512_set1_epi32(c::ROUND_MAGIC.to_bits() as i32 - 127) };
        // SAFETY: AVX-512F detected.
        let biased = unsafe { _mm512_sub_epi32(t_bits, magic) };
        // SAFETY: AVX-512F detected.
        let bits = unsafe { _mm512_slli_epi32::<23>(biased) };
        // SAFETY: AVX-512F detected.
        let scale = unsafe { _mm512_castsi512_ps(bits) };
        // SAFETY: AVX-512F detected.
        unsafe { _mm512_maskz_mov_ps(keep, self.mul(y, scale)) }
    }
    #[inline(always)]
    fn in_range(self, x: __m512, lo: __m512, hi: __m512) -> __mmask16 {
        // SAFETY: AVX-512F detected.
        let above = unsafe { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(lo, x) };
        // SAFETY: AVX-512F detected.
        let below = unsafe { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(x, hi) };
        above & below
    }
    #[inline(always)]
    fn mask_from_bits(self, bits: u32) -> __mmask16 {
        bits as __mmask16
    }
    #[inline(always)]
    fn select(self, m: __mmask16, a: __m512, b: __m512) -> __m512 {
        // SAFETY: AVX-512F detected.
        unsafe { _mm512_mask_mov_ps(b, m, a) }
    }
    #[inline(always)]
    fn transpose_into(self, src: &[&[f32]], col: usize, out: &mut [__m512]) {
        // Rows, then 32-bit and 64-bit interleaves within 128-bit lanes
        // (giving 4x4 blocks), then 128-bit lane shuffles: 64 shuffles for
        // 256 values instead of 256 scalar moves.
        let mut r = [self.zero(); 16];
        for (row, r) in src.iter().zip(r.iter_mut()) {
            *r = self.load(&row[col..]);
        }
        let mut t = [self.zero(); 16];
        for k in 0..8 {
            // SAFETY: AVX-512F detected.
            t[2 * k] = unsafe { _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]) };
            // SAFETY: AVX-512F detected.
            t[2 * k + 1] = unsafe { _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]) };
        }
        let mut u = [self.zero(); 16];
        for m in 0..4 {
            let pairs = [
                (t[4 * m], t[4 * m + 2]),
                (t[4 * m], t[4 * m + 2]),
                (t[4 * m + 1], t[4 * m + 3]),
                (t[4 * m + 1], t[4 * m + 3]),
            ];
            for (k, (a, b)) in pairs.into_iter().enumerate() {
                u[4 * m + k] = if k % 2 == 0 {
                    self.interleave64::<false>(a, b)
                } else {
                    self.interleave64::<true>(a, b)
                };
            }
        }
        // u[4m + k], 128-bit lane L: column 4L + k, rows 4m..4m + 4.
        for k in 0..4 {
            let (a, b, c, d) = (u[k], u[4 + k], u[8 + k], u[12 + k]);
            // SAFETY: AVX-512F detected.
            let ab_low = unsafe { _mm512_shuffle_f32x4::<0x44>(a, b) };
            // SAFETY: AVX-512F detected.
            let ab_high = unsafe { _mm512_shuffle_f32x4::<0xEE>(a, b) };
            // SAFETY: AVX-512F detected.
            let cd_low = unsafe { _mm512_shuffle_f32x4::<0x44>(c, d) };
            // SAFETY: AVX-512F detected.
            let cd_high = unsafe { _mm512_shuffle_f32x4::<0xEE>(c, d) };
            // SAFETY: AVX-512F detected.
            let col0 = unsafe { _mm512_shuffle_f32x4::<0x88>(ab_low, cd_low) };
            // SAFETY: AVX-512F detected.
            let col1 = unsafe { _mm512_shuffle_f32x4::<0xDD>(ab_low, cd_low) };
            // SAFETY: AVX-512F detected.
            let col2 = unsafe { _mm512_shuffle_f32x4::<0x88>(ab_high, cd_high) };
            // SAFETY: AVX-512F detected.
            let col3 = unsafe { _mm512_shuffle_f32x4::<0xDD>(ab_high, cd_high) };
            for (lane, v) in [col0, col1, col2, col3].into_iter().enumerate() {
                out[4 * lane + k] = v;
            }
        }
    }
    #[inline(always)]
    fn transpose_sum(self, v: &[__m512]) -> __m512 {
        // Pairwise 32-bit interleaves with adds (sums of lanes 0+2, 1+3 of
        // each 128-bit granule), then 64-bit interleaves with adds (granule
        // sums of four vectors), then 128-bit shuffles with adds across
        // granules: 30 shuffles and 15 adds for 16 horizontal sums.
        let v = &v[..16];
        let mut t = [self.zero(); 8];
        for (k, t) in t.iter_mut().enumerate() {
            let (a, b) = (v[2 * k], v[2 * k + 1]);
            // SAFETY: AVX-512F detected.
            let low = unsafe { _mm512_unpacklo_ps(a, b) };
            // SAFETY: AVX-512F detected.
            let high = unsafe { _mm512_unpackhi_ps(a, b) };
            // Per granule: a0+a2, b0+b2, a1+a3, b1+b3.
            *t = self.add(low, high);
        }
        let mut u = [self.zero(); 4];
        for (m, u) in u.iter_mut().enumerate() {
            let (a, b) = (t[2 * m], t[2 * m + 1]);
            let low = self.interleave64::<false>(a, b);
            let high = self.interleave64::<true>(a, b);
            // Granule g: the granule-g sums of vectors 4m..4m + 4.
            *u = self.add(low, high);
        }
        let mut y = [self.zero(); 2];
        for (h, y) in y.iter_mut().enumerate() {
            let (a, b) = (u[2 * h], u[2 * h + 1]);
            // SAFETY: AVX-512F detected.
            let low = unsafe { _mm512_shuffle_f32x4::<0x44>(a, b) };
            // SAFETY: AVX-512F detected.
            let high = unsafe { _mm512_shuffle_f32x4::<0xEE>(a, b) };
            // Granules: a's g0+g2, a's g1+g3, b's g0+g2, b's g1+g3.
            *y = self.add(low, high);
        }
        // SAFETY: AVX-512F detected.
        let even = unsafe { _mm512_shuffle_f32x4::<0x88>(y[0], y[1]) };
        // SAFETY: AVX-512F detected.
        let odd = unsafe { _mm512_shuffle_f32x4::<0xDD>(y[0], y[1]) };
        self.add(even, odd)
    }
    #[inline(always)]
    fn reduce_add(self, v: __m512) -> f32 {
        // SAFETY: AVX-512F detected.
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[inline(always)]
    fn reduce_max(self, v: __m512) -> f32 {
        // SAFETY: AVX-512F detected.
        unsafe { _mm512_reduce_max_ps(v) }
    }
}

impl Simd for Avx2 {
    const LANES: usize = 8;
    const ACCUMULATORS: usize = 8;
    type V = __m256;
    type M = __m256;

    #[inline(always)]
    fn zero(self) -> __m256 {
        // SAFETY: AVX2 detected (see the comment above the AVX-512 impl).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        // SAFETY: AVX2 detected.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, src: &[f32]) -> __m256 {
        let src = &src[..8];
        // SAFETY: AVX2 detected; `src` has 8 readable values.
        unsafe { _mm256_loadu_ps(src.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32], v: __m256) {
        let dst = &mut dst[..8];
        // SAFETY: AVX2 detected; `dst` has 8 writable values.
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX2 detected.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX2 detected.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX2 detected.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: FMA detected together with AVX2.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX2 detected.
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn exp(self, x: __m256) -> __m256 {
        // SAFETY: AVX2 detected.
        let underflow = unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(x, self.splat(c::MIN_ARG)) };
        let x = self.max(x, self.splat(c::MIN_ARG));
        // SAFETY: AVX2 detected.
        let x = unsafe { _mm256_min_ps(x, self.splat(c::MAX_ARG)) };
        let t = self.fma(x, self.splat(c::LOG2_E), self.splat(c::ROUND_MAGIC));
        let n = self.sub(t, self.splat(c::ROUND_MAGIC));
        // SAFETY: FMA detected.
        let r = unsafe { _mm256_fnmadd_ps(n, self.splat(c::LN2_HI), x) };
        // SAFETY: FMA detected.
        let r = unsafe { _mm256_fnmadd_ps(n, self.splat(c::LN2_LO), r) };
        let mut p = self.splat(c::POLY[0]);
        for coefficient in &c::POLY[1..] {
            p = self.fma(p, r, self.splat(*coefficient));
        }
        let y = self.fma(self.mul(p, r), r, self.add(r, self.splat(1.0)));
        // SAFETY: AVX2 detected.
        let t_bits = unsafe { _mm256_castps_si256(t) };
        // SAFETY: AVX2 detected.
        let magic = unsafe { _mm256_set1_epi32(c::ROUND_MAGIC.to_bits() as i32 - 127) };
        // SAFETY: AVX2 detected.
        let biased = unsafe { _mm256_sub_epi32(t_bits, magic) };
        // SAFETY: AVX2 detected.
        let bits = unsafe { _mm256_slli_epi32::<23>(biased) };
        // SAFETY: AVX2 detected.
        let scale = unsafe { _mm256_castsi256_ps(bits) };
        // SAFETY: AVX2 detected.
        unsafe { _mm256_andnot_ps(underflow, self.mul(y, scale)) }
    }
    #[inline(always)]
    fn in_range(self, x: __m256, lo: __m256, hi: __m256) -> __m256 {
        // SAFETY: AVX2 detected.
        let above = unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(lo, x) };
        // SAFETY: AVX2 detected.
        let below = unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(x, hi) };
        // SAFETY: AVX2 detected.
        unsafe { _mm256_and_ps(above, below) }
    }
    #[inline(always)]
    fn mask_from_bits(self, bits: u32) -> __m256 {
        // SAFETY: AVX2 detected.
        let lane_bits = unsafe { _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128) };
        // SAFETY: AVX2 detected.
        let broadcast = unsafe { _mm256_set1_epi32(bits as i32) };
        // SAFETY: AVX2 detected.
        let own = unsafe { _mm256_and_si256(broadcast, lane_bits) };
        // SAFETY: AVX2 detected.
        let set = unsafe { _mm256_cmpeq_epi32(own, lane_bits) };
        // SAFETY: AVX2 detected.
        unsafe { _mm256_castsi256_ps(set) }
    }
    #[inline(always)]
    fn select(self, m: __m256, a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX2 detected.
        unsafe { _mm256_blendv_ps(b, a, m) }
    }
    #[inline(always)]
    fn transpose_into(self, src: &[&[f32]], col: usize, out: &mut [__m256]) {
        // The classic 8x8: 32-bit interleaves, 64-bit shuffles within
        // 128-bit lanes, then 128-bit lane swaps (24 shuffles).
        let mut r = [self.zero(); 8];
        for (row, r) in src.iter().zip(r.iter_mut()) {
            *r = self.load(&row[col..]);
        }
        let mut t = [self.zero(); 8];
        for k in 0..4 {
            // SAFETY: AVX2 detected.
            t[2 * k] = unsafe { _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]) };
            // SAFETY: AVX2 detected.
            t[2 * k + 1] = unsafe { _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]) };
        }
        let mut u = [self.zero(); 8];
        for m in 0..2 {
            let (t0, t1, t2, t3) = (t[4 * m], t[4 * m + 1], t[4 * m + 2], t[4 * m + 3]);
            // SAFETY: AVX2 detected.
            u[4 * m] = unsafe { _mm256_shuffle_ps::<0x44>(t0, t2) };
            // SAFETY: AVX2 detected.
            u[4 * m + 1] = unsafe { _mm256_shuffle_ps::<0xEE>(t0, t2) };
            // SAFETY: AVX2 detected.
            u[4 * m + 2] = unsafe { _mm256_shuffle_ps::<0x44>(t1, t3) };
            // SAFETY: AVX2 detected.
            u[4 * m + 3] = unsafe { _mm256_shuffle_ps::<0xEE>(t1, t3) };
        }
        // u[4m + k], 128-bit lane L: column 4L + k, rows 4m..4m + 4.
        for k in 0..4 {
            // SAFETY: AVX2 detected.
            let low = unsafe { _mm256_permute2f128_ps::<0x20>(u[k], u[4 + k]) };
            // SAFETY: AVX2 detected.
            let high = unsafe { _mm256_permute2f128_ps::<0x31>(u[k], u[4 + k]) };
            out[k] = low;
            out[4 + k] = high;
        }
    }
    #[inline(always)]
    fn transpose_sum(self, v: &[__m256]) -> __m256 {
        // Three rounds of horizontal adds, then the two 128-bit halves.
        let v = &v[..8];
        // SAFETY: AVX2 detected.
        let ab = unsafe { _mm256_hadd_ps(v[0], v[1]) };
        // SAFETY: AVX2 detected.
        let cd = unsafe { _mm256_hadd_ps(v[2], v[3]) };
        // SAFETY: AVX2 detected.
        let ef = unsafe { _mm256_hadd_ps(v[4], v[5]) };
        // SAFETY: AVX2 detected.
        let gh = unsafe { _mm256_hadd_ps(v[6], v[7]) };
        // SAFETY: AVX2 detected.
        let abcd = unsafe { _mm256_hadd_ps(ab, cd) };
        // SAFETY: AVX2 detected.
        let efgh = unsafe { _mm256_hadd_ps(ef, gh) };
        // SAFETY: AVX2 detected.
        let low = unsafe { _mm256_permute2f128_ps::<0x20>(abcd, efgh) };
        // SAFETY: AVX2 detected.
        let high = unsafe { _mm256_permute2f128_ps::<0x31>(abcd, efgh) };
        self.add(low, high)
    }
    #[inline(always)]
    fn reduce_add(self, v: __m256) -> f32 {
        // SAFETY: AVX2 detected.
        let high = unsafe { _mm256_extractf128_ps::<1>(v) };
        // SAFETY: AVX2 detected.
        let low = unsafe { _mm256_castps256_ps128(v) };
        // SAFETY: SSE is part of the x86_64 baseline (and of AVX2).
        let quad = unsafe { _mm_add_ps(low, high) };
        // SAFETY: SSE baseline.
        let upper = unsafe { _mm_movehl_ps(quad, quad) };
        // SAFETY: SSE baseline.
        let pair = unsafe { _mm_add_ps(quad, upper) };
        // SAFETY: SSE baseline.
        let second = unsafe { _mm_shuffle_ps::<0b01>(pair, pair) };
        // SAFETY: SSE baseline.
        let single = unsafe { _mm_add_ss(pair, second) };
        // SAFETY: SSE baseline.
        unsafe { _mm_cvtss_f32(single) }
    }
    #[inline(always)]
    fn reduce_max(self, v: __m256) -> f32 {
        // SAFETY: AVX2 detected.
        let high = unsafe { _mm256_extractf128_ps::<1>(v) };
        // SAFETY: AVX2 detected.
        let low = unsafe { _mm256_castps256_ps128(v) };
        // SAFETY: SSE baseline.
        let quad = unsafe { _mm_max_ps(low, high) };
        // SAFETY: SSE baseline.
        let upper = unsafe { _mm_movehl_ps(quad, quad) };
        // SAFETY: SSE baseline.
        let pair = unsafe { _mm_max_ps(quad, upper) };
        // SAFETY: SSE baseline.
        let second = unsafe { _mm_shuffle_ps::<0b01>(pair, pair) };
        // SAFETY: SSE baseline.
        let single = unsafe { _mm_max_ss(pair, second) };
        // SAFETY: SSE baseline.
        unsafe { _mm_cvtss_f32(single) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::check_ops;

    #[test]
    fn avx512_ops() {
        if let Some(s) = Avx512::detect() {
            check_ops(s);
        }
    }

    #[test]
    fn avx2_ops() {
        if let Some(s) = Avx2::detect() {
            check_ops(s);
        }
    }
}
