//! The streaming-decode [`Kernel`] with AVX-512F: 16 lanes, 32 registers.
//!
//! Why a second width: on cores with full-width 512-bit units a step's row
//! loops do half the instructions, and 32 registers let the value pass
//! keep every output column of a block of four heads (up to `head_dim`
//! 64) in registers across all candidates, one pass instead of one per
//! pair of 8-lane columns. Only the loops over rows are widened: scores
//! are still reduced eight candidates at a time by the 8-lane `hadd` tree
//! (a 16-lane product is first folded to 8 lanes) and the softmax is the
//! AVX2 one (a few vectors per head). Head sizes that are not 16, 32 or
//! 64 run the AVX2 kernel unchanged.
//!
//! **Invariant:** an [`Avx512F16c`] value exists only after detection found
//! everything [`Avx2F16c`] needs plus AVX-512F with the OS saving ZMM
//! state; every `unsafe` block below relies on that, and f16 loads read
//! exactly the 16 elements of a `&[u16; 16]`.

#[allow(
    clippy::wildcard_imports,
    reason = "dozens of intrinsics, all from one module"
)]
use core::arch::x86_64::*;

use aether_domain::{KvCache, Row};

use super::{AVX512_LEVEL, Avx2F16c, Element, Slots, Source, Sums, f16_bits, level, store_group};
use crate::simd::Simd;
use crate::step::{self, Heads, Kernel, Rows, Softmax, StepHead};
use crate::x86;

/// AVX-512F with AVX2, FMA and F16C.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx512F16c(x86::Avx512, Avx2F16c);

impl Avx512F16c {
    /// The token, when this CPU has the features (detected on first call,
    /// then cached).
    pub(crate) fn get() -> Option<Self> {
        if level() != AVX512_LEVEL {
            return None;
        }
        // SAFETY: this level means `detect` found AVX-512F with ZMM state
        // saved (as well as everything the AVX2 token needs).
        let wide = unsafe { x86::Avx512::assume_detected() };
        Some(Self(wide, Avx2F16c::get()?))
    }

    /// The AVX2 token.
    #[inline(always)]
    const fn avx2(self) -> Avx2F16c {
        self.1
    }

    /// The two 256-bit halves of `v`, added: 8 lanes with the same total.
    #[inline(always)]
    fn fold_halves(self, v: __m512) -> __m256 {
        // SAFETY: AVX-512F detected; casts are free.
        let low = unsafe { _mm512_castps512_ps256(v) };
        // SAFETY: AVX-512F detected.
        let bits = unsafe { _mm512_castps_pd(v) };
        // SAFETY: AVX-512F detected.
        let high = unsafe { _mm512_extractf64x4_pd::<1>(bits) };
        // SAFETY: AVX detected with AVX-512F; casts are free.
        let high = unsafe { _mm256_castpd_ps(high) };
        // SAFETY: AVX detected with AVX-512F.
        unsafe { _mm256_add_ps(low, high) }
    }
}

/// The arithmetic (`zero`, `load`, `fma`, …) is the prefill's AVX-512
/// [`Simd`] vocabulary; this token adds F16C and the AVX2 one on top.
impl core::ops::Deref for Avx512F16c {
    type Target = x86::Avx512;

    #[inline(always)]
    fn deref(&self) -> &x86::Avx512 {
        &self.0
    }
}

/// A stored element type, 16 at a time.
trait Element16: Element {
    /// The 16 elements of `src`, widened to f32.
    fn load16(s: Avx512F16c, src: &[Self; 16]) -> __m512;
}

impl Element16 for f32 {
    #[inline(always)]
    fn load16(s: Avx512F16c, src: &[f32; 16]) -> __m512 {
        s.load(src)
    }
}

impl Element16 for u16 {
    #[inline(always)]
    fn load16(_: Avx512F16c, src: &[u16; 16]) -> __m512 {
        // SAFETY: AVX detected with AVX-512F; `src` is 32 readable bytes and
        // the load is unaligned.
        let bits = unsafe { _mm256_loadu_si256(src.as_ptr().cast()) };
        // SAFETY: AVX-512F detected (the 512-bit `vcvtph2ps` is part of it).
        unsafe { _mm512_cvtph_ps(bits) }
    }
}

/// `row` (at least `16 * V` elements) as `V` vectors of 16.
///
/// # Panics
/// If `row` is shorter than `16 * V`.
#[inline(always)]
fn fixed<E, const V: usize>(row: &[E]) -> &[[E; 16]; V] {
    let (vectors, _) = row.as_chunks::<16>();
    vectors
        .first_chunk::<V>()
        .unwrap_or_else(|| unreachable!("rows are head_dim = 16 * V long"))
}

/// The `V` vectors of `row`, widened.
#[inline(always)]
fn widen<E: Element16, const V: usize>(s: Avx512F16c, row: &[E]) -> [__m512; V] {
    let row = fixed::<E, V>(row);
    let mut x = [s.zero(); V];
    for (x, v) in x.iter_mut().zip(row) {
        *x = E::load16(s, v);
    }
    x
}

/// Per-lane products of `x` and `q` summed over the `V` vectors, folded to
/// 8 lanes.
#[inline(always)]
fn dot<const V: usize>(s: Avx512F16c, x: &[__m512; V], q: &[__m512; V]) -> __m256 {
    let mut p = s.mul(x[0], q[0]);
    for v in 1..V {
        p = s.fma(x[v], q[v], p);
    }
    s.fold_halves(p)
}

impl Kernel for Avx512F16c {
    #[inline(always)]
    fn scores<const H: usize, const CAP: usize, const SHARED: bool>(
        self,
        rows: &Rows<'_>,
        heads: &Heads<'_, H>,
        first: usize,
        scores: &mut [[f32; CAP]; H],
    ) {
        // `scores_fixed` is a separate function so that an unoptimised
        // build does not merge every instantiation's frame into one.
        with_vectors!(heads.dim, 16, [1, 2, 4],
            V => with_source!(rows, src => {
                // SAFETY: the token proves AVX-512F, AVX2, FMA and F16C.
                unsafe { scores_fixed::<_, _, H, CAP, SHARED, V>(self, &src, heads, first, scores) }
            }),
            _ => self.avx2().scores::<H, CAP, SHARED>(rows, heads, first, scores));
    }

    #[inline(always)]
    fn fold<const H: usize, const CAP: usize>(
        self,
        scores: &mut [[f32; CAP]; H],
        len: usize,
        scale: f32,
        state: &mut Softmax<H>,
        started: bool,
    ) -> ([f32; H], bool) {
        self.avx2().fold(scores, len, scale, state, started)
    }

    #[inline(always)]
    fn accumulate<const H: usize, const CAP: usize, const SHARED: bool>(
        self,
        rows: &Rows<'_>,
        heads: &Heads<'_, H>,
        first: usize,
        weights: &[[f32; CAP]; H],
        out: &mut [f32],
    ) {
        // Separate function: see `scores`.
        with_vectors!(heads.dim, 16, [1, 2, 4],
            V => with_source!(rows, src => {
                // SAFETY: the token proves AVX-512F, AVX2, FMA and F16C.
                unsafe { accumulate_fixed::<_, _, H, CAP, SHARED, V>(self, &src, heads, first, weights, out) }
            }),
            _ => self.avx2().accumulate::<H, CAP, SHARED>(rows, heads, first, weights, out));
    }
}

/// [`Kernel::scores`] for `head_dim = 16 * V`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn scores_fixed<
    E: Element16,
    S: Source<E>,
    const H: usize,
    const CAP: usize,
    const SHARED: bool,
    const V: usize,
>(
    s: Avx512F16c,
    src: &S,
    heads: &Heads<'_, H>,
    first: usize,
    scores: &mut [[f32; CAP]; H],
) {
    let dim = heads.dim;
    let n = src.len();
    let mut q = [[s.zero(); V]; H];
    for (h, q) in q.iter_mut().enumerate() {
        *q = widen::<f32, V>(s, &heads.q[h * dim..]);
    }
    // Lanes past a group's count keep stale values; their scores land in
    // the slack and are ignored.
    let mut partial = [[s.avx2().zero(); 8]; H];
    let mut c0 = 0;
    while c0 < n {
        let count = (n - c0).min(8);
        for c in c0..c0 + count {
            if SHARED {
                // Loaded (and widened) once for all heads.
                let x = widen::<E, V>(s, src.row(c, heads.offsets[0], dim));
                for (partial, q) in partial.iter_mut().zip(&q) {
                    partial[c - c0] = dot(s, &x, q);
                }
            } else {
                for ((partial, q), &offset) in partial.iter_mut().zip(&q).zip(&heads.offsets) {
                    let x = widen::<E, V>(s, src.row(c, offset, dim));
                    partial[c - c0] = dot(s, &x, q);
                }
            }
        }
        store_group(s.avx2(), src, &partial, c0, count, first, scores);
        c0 += 8;
    }
}

/// [`Kernel::accumulate`] for `head_dim = 16 * V`: every output column of
/// the block stays in registers while all candidates stream past.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
fn accumulate_fixed<
    E: Element16,
    S: Source<E>,
    const H: usize,
    const CAP: usize,
    const SHARED: bool,
    const V: usize,
>(
    s: Avx512F16c,
    src: &S,
    heads: &Heads<'_, H>,
    first: usize,
    weights: &[[f32; CAP]; H],
    out: &mut [f32],
) {
    let dim = heads.dim;
    let n = src.len();
    if n == 0 {
        return;
    }
    let mut acc = [[s.zero(); V]; H];
    for (h, acc) in acc.iter_mut().enumerate() {
        *acc = widen::<f32, V>(s, &out[h * dim..]);
    }
    for c in 0..n {
        let factor = src.factor(c);
        let mut weight = [s.zero(); H];
        for (weight, weights) in weight.iter_mut().zip(weights) {
            let w = weights[first + c];
            *weight = s.splat(if S::SCALED { w * factor } else { w });
        }
        if SHARED {
            let x = widen::<E, V>(s, src.row(c, heads.offsets[0], dim));
            for (acc, weight) in acc.iter_mut().zip(weight) {
                for (acc, x) in acc.iter_mut().zip(x) {
                    *acc = s.fma(weight, x, *acc);
                }
            }
        } else {
            for ((acc, weight), &offset) in acc.iter_mut().zip(weight).zip(&heads.offsets) {
                let x = widen::<E, V>(s, src.row(c, offset, dim));
                for (acc, x) in acc.iter_mut().zip(x) {
                    *acc = s.fma(weight, x, *acc);
                }
            }
        }
    }
    for (h, acc) in acc.into_iter().enumerate() {
        let (vectors, _) = out[h * dim..][..dim].as_chunks_mut::<16>();
        for (v, acc) in vectors.iter_mut().zip(acc) {
            s.store(v, acc);
        }
    }
}

/// [`step::run`] compiled with AVX-512F, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
pub(crate) fn attend(
    token: Avx512F16c,
    head: &StepHead<'_>,
    q: &[f32],
    cache: &KvCache,
    out: &mut [f32],
) -> bool {
    step::run::<Avx512F16c, 72, 24>(token, head, q, cache, out)
}
