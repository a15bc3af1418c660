//! The streaming-decode [`Kernel`] for `x86_64` with AVX2, FMA and F16C.
//!
//! Why it exists: a decode step is small (about `W + log T` rows per head),
//! so what it costs is per-row overhead: widening f16 rows one element at
//! a time, one horizontal sum per dot product, a scalar `exp` per weight.
//! Here every row is read in 8-lane vectors (f16 rows through
//! `vcvtph2ps`, F16C, so an f16 cache costs about what an f32 one does),
//! the dot products of eight candidates are reduced together with one
//! transposing `hadd` tree, the softmax runs eight weights per `exp`, and
//! the value pass keeps each head's output columns in registers across all
//! candidates. When the heads of a block share a KV head (MQA, GQA) each
//! row is loaded and widened once for all of them.
//!
//! Why 256-bit and not AVX-512 as well: a step is bound by loads,
//! conversions and shuffles over a few dozen short rows, not by FMA
//! throughput; on the AVX-512 machines measured (AMD Zen 4, whose 512-bit
//! units are double-pumped 256-bit ones) 512-bit vectors would halve the
//! instruction count of the two row loops only, and widen the reduction.
//!
//! Detection reads CPUID and XCR0 once (the crate is `no_std`, so
//! `is_x86_feature_detected!` is not available) and caches the answer in an
//! atomic; CPUID is slow under virtualisation and must not run per step.
//!
//! **Invariant:** an [`Avx2F16c`] value exists only after detection found
//! AVX, AVX2, FMA and F16C with the OS saving YMM state; every `unsafe`
//! block below relies on that, and f16 loads read exactly the 8 elements
//! of a `&[u16; 8]`. The f32 arithmetic is the prefill's AVX2 [`Simd`]
//! implementation (`x86.rs`), reached through `Deref`, so there is one
//! vector vocabulary per ISA.

#[allow(
    clippy::wildcard_imports,
    reason = "dozens of intrinsics, all from one module"
)]
use core::arch::x86_64::*;
use core::sync::atomic::{AtomicU8, Ordering};

use aether_domain::f16_conv;
use aether_domain::{KvCache, Landmark, Row, f16, numerics};

use crate::simd::Simd;
use crate::step::{self, Heads, Kernel, NO_SCORE, Rows, Softmax, StepHead};
use crate::x86;

/// Detection not run yet.
const UNKNOWN: u8 = 0;
/// Neither kernel can run.
const NEITHER: u8 = 1;
/// AVX2, FMA and F16C on YMM registers.
const AVX2_LEVEL: u8 = 2;
/// All of those and AVX-512F on ZMM registers.
const AVX512_LEVEL: u8 = 3;
/// The cached detection result.
static DETECTED: AtomicU8 = AtomicU8::new(UNKNOWN);

/// What this CPU and OS support, as one of the levels above.
fn detect() -> u8 {
    let Some((xcr0, leaf1, leaf7)) = x86::cpu_features() else {
        return NEITHER;
    };
    let avx2 = xcr0 & x86::YMM_STATE == x86::YMM_STATE
        && leaf1 & (x86::FMA | x86::F16C) == x86::FMA | x86::F16C
        && leaf7 & x86::AVX2 != 0;
    if !avx2 {
        NEITHER
    } else if xcr0 & x86::ZMM_STATE == x86::ZMM_STATE && leaf7 & x86::AVX512F != 0 {
        AVX512_LEVEL
    } else {
        AVX2_LEVEL
    }
}

/// The detected level, detecting on the first call.
fn level() -> u8 {
    let mut level = DETECTED.load(Ordering::Relaxed);
    if level == UNKNOWN {
        level = detect();
        // Racing first calls store the same answer.
        DETECTED.store(level, Ordering::Relaxed);
    }
    level
}

/// AVX2 + FMA + F16C, 8 f32 lanes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2F16c(x86::Avx2);

impl Avx2F16c {
    /// The token, when this CPU has the features (detected on first call,
    /// then cached).
    pub(crate) fn get() -> Option<Self> {
        (level() >= AVX2_LEVEL).then(|| {
            // SAFETY: this level means `detect` found AVX2 and FMA with YMM
            // state saved.
            Self(unsafe { x86::Avx2::assume_detected() })
        })
    }

    /// Lane `k` of the result is the sum of the lanes of `v[k]`.
    #[inline(always)]
    fn reduce8(self, v: &[__m256; 8]) -> __m256 {
        // SAFETY: AVX detected.
        let a = unsafe { _mm256_hadd_ps(v[0], v[1]) };
        // SAFETY: AVX detected.
        let b = unsafe { _mm256_hadd_ps(v[2], v[3]) };
        // SAFETY: AVX detected.
        let c = unsafe { _mm256_hadd_ps(v[4], v[5]) };
        // SAFETY: AVX detected.
        let d = unsafe { _mm256_hadd_ps(v[6], v[7]) };
        // Each 128-bit half of `ab` holds partial sums of v0..v3 (one lane
        // each), of `cd` of v4..v7.
        // SAFETY: AVX detected.
        let ab = unsafe { _mm256_hadd_ps(a, b) };
        // SAFETY: AVX detected.
        let cd = unsafe { _mm256_hadd_ps(c, d) };
        // SAFETY: AVX detected.
        let low = unsafe { _mm256_permute2f128_ps::<0x20>(ab, cd) };
        // SAFETY: AVX detected.
        let high = unsafe { _mm256_permute2f128_ps::<0x31>(ab, cd) };
        self.add(low, high)
    }
}

/// The arithmetic (`zero`, `load`, `fma`, `exp`, …) is the prefill's AVX2
/// [`Simd`] vocabulary; this token adds F16C on top.
impl core::ops::Deref for Avx2F16c {
    type Target = x86::Avx2;

    #[inline(always)]
    fn deref(&self) -> &x86::Avx2 {
        &self.0
    }
}

/// A stored element type: f32, or f16 as its bit pattern.
trait Element: Copy + Default {
    /// The 8 elements of `src`, widened to f32.
    fn load(s: Avx2F16c, src: &[Self; 8]) -> __m256;

    /// The up to 8 elements of `src`, widened, zero-padded to 8 lanes.
    #[inline(always)]
    fn load_partial(s: Avx2F16c, src: &[Self]) -> __m256 {
        let mut padded = [Self::default(); 8];
        padded[..src.len()].copy_from_slice(src);
        Self::load(s, &padded)
    }
}

impl Element for f32 {
    #[inline(always)]
    fn load(s: Avx2F16c, src: &[f32; 8]) -> __m256 {
        s.load(src)
    }
}

impl Element for u16 {
    #[inline(always)]
    fn load(_: Avx2F16c, src: &[u16; 8]) -> __m256 {
        // SAFETY: SSE2 is baseline on x86_64; `src` is 16 readable bytes and
        // the load is unaligned.
        let bits = unsafe { _mm_loadu_si128(src.as_ptr().cast()) };
        // SAFETY: F16C detected (the token exists).
        unsafe { _mm256_cvtph_ps(bits) }
    }
}

/// Where candidate rows come from, in element type `E`.
trait Source<E: Element> {
    /// Whether rows carry a factor other than 1 (landmark sums).
    const SCALED: bool;
    /// Candidates.
    fn len(&self) -> usize;
    /// Row of candidate `c` at KV offset `offset`.
    fn row(&self, c: usize, offset: usize, dim: usize) -> &[E];
    /// The factor of candidate `c` (1 unless [`SCALED`](Self::SCALED)).
    fn factor(&self, c: usize) -> f32;
}

/// Cached token rows.
struct Slots<'a, E> {
    storage: &'a [E],
    slots: &'a [usize],
    stride: usize,
}

impl<E: Element> Source<E> for Slots<'_, E> {
    const SCALED: bool = false;
    #[inline(always)]
    fn len(&self) -> usize {
        self.slots.len()
    }
    #[inline(always)]
    fn row(&self, c: usize, offset: usize, dim: usize) -> &[E] {
        let start = self.slots[c] * self.stride + offset;
        &self.storage[start..start + dim]
    }
    #[inline(always)]
    fn factor(&self, _: usize) -> f32 {
        1.0
    }
}

/// Landmark block sums (f32), scaled by `1 / count`.
struct Sums<'a> {
    marks: &'a [Landmark<'a>],
    keys: bool,
}

impl Source<f32> for Sums<'_> {
    const SCALED: bool = true;
    #[inline(always)]
    fn len(&self) -> usize {
        self.marks.len()
    }
    #[inline(always)]
    fn row(&self, c: usize, offset: usize, dim: usize) -> &[f32] {
        let mark = &self.marks[c];
        let sum = if self.keys {
            mark.key_sum
        } else {
            mark.value_sum
        };
        &sum[offset..offset + dim]
    }
    #[inline(always)]
    fn factor(&self, c: usize) -> f32 {
        1.0 / self.marks[c].count as f32
    }
}

/// The bit patterns of an f16 slice.
#[inline(always)]
fn f16_bits(row: Row<'_>) -> &[u16] {
    match row {
        Row::F16(halves) => {
            // SAFETY: `half::f16` is `#[repr(transparent)]` over `u16`
            // (documented; it is what `half`'s own `reinterpret_cast` relies
            // on), so the slice is `len` initialised, aligned `u16`s,
            // borrowed for as long as `halves`.
            unsafe { core::slice::from_raw_parts(halves.as_ptr().cast::<u16>(), halves.len()) }
        }
        Row::F32(_) => &[],
    }
}

/// Runs `$body` with `$src` bound to the [`Source`] behind `$rows`, for
/// each element type (so the body is compiled once per type).
macro_rules! with_source {
    ($rows:expr, $src:ident => $body:expr) => {
        match *$rows {
            Rows::Tokens {
                storage: Row::F32(storage),
                slots,
                stride,
            } => {
                let $src = Slots {
                    storage,
                    slots,
                    stride,
                };
                $body
            }
            Rows::Tokens {
                storage,
                slots,
                stride,
            } => {
                let $src = Slots {
                    storage: f16_bits(storage),
                    slots,
                    stride,
                };
                $body
            }
            Rows::Sums { marks, keys } => {
                let $src = Sums { marks, keys };
                $body
            }
        }
    };
}

/// Runs `$body` with `$v` bound to `$dim / $lanes` as a constant when that
/// is one of the listed vector counts (rows then fit fixed arrays: no
/// per-vector loop or bounds check), or evaluates `$other` for any other
/// head size. Each ISA lists the counts its registers hold.
macro_rules! with_vectors {
    ($dim:expr, $lanes:expr, [$($n:literal),+], $v:ident => $body:expr, _ => $other:expr) => {
        match ($dim % $lanes, $dim / $lanes) {
            $(
                (0, $n) => {
                    const $v: usize = $n;
                    $body
                }
            )+
            _ => $other,
        }
    };
}

impl Kernel for Avx2F16c {
    #[inline(always)]
    fn scores<const H: usize, const CAP: usize, const SHARED: bool>(
        self,
        rows: &Rows<'_>,
        heads: &Heads<'_, H>,
        first: usize,
        scores: &mut [[f32; CAP]; H],
    ) {
        // The callees are separate `#[target_feature]` functions, not
        // `inline(always)`: an unoptimised build then gives each
        // instantiation its own short-lived frame instead of one frame
        // holding every instantiation's locals at once (megabytes).
        with_source!(rows, src => with_vectors!(heads.dim, 8, [1, 2, 4, 8],
        V => {
            // SAFETY: the token proves AVX2, FMA and F16C.
            unsafe { scores_fixed::<_, _, H, CAP, SHARED, V>(self, &src, heads, first, scores) }
        },
        _ => {
            // SAFETY: the token proves AVX2, FMA and F16C.
            unsafe { scores_any::<_, _, H, CAP, SHARED>(self, &src, heads, first, scores) }
        }));
    }

    /// The heads of the block are folded side by side (each loop runs
    /// over the vectors, then the heads), so their chains of `max`, `exp`
    /// and sums overlap instead of running one head after another.
    #[inline(always)]
    fn fold<const H: usize, const CAP: usize>(
        self,
        scores: &mut [[f32; CAP]; H],
        len: usize,
        scale: f32,
        state: &mut Softmax<H>,
        started: bool,
    ) -> ([f32; H], bool) {
        let s = self;
        let count = len.div_ceil(8);
        // Lanes of the last vector that hold candidates.
        let tail = len % 8;
        let last = s.mask_from_bits(if tail == 0 { 0xff } else { (1 << tail) - 1 });
        let factor = s.splat(scale);
        let mut max = [s.splat(NO_SCORE); H];
        let mut magnitude = [s.zero(); H];
        for scores in scores.iter_mut() {
            // Padding lanes weigh exp(NO_SCORE * scale - max) = 0.
            scores[len..count * 8].fill(NO_SCORE);
        }
        for k in 0..count {
            for (h, scores) in scores.iter_mut().enumerate() {
                let (vectors, _) = scores.as_chunks_mut::<8>();
                let x = s.load(&vectors[k]);
                let real = if k + 1 == count {
                    s.select(last, x, s.zero())
                } else {
                    x
                };
                // |x|, NaN for NaN (`max` returns its second operand then).
                magnitude[h] = s.add(magnitude[h], s.max(real, s.sub(s.zero(), real)));
                let y = s.mul(x, factor);
                s.store(&mut vectors[k], y);
                max[h] = s.max(max[h], y);
            }
        }
        let mut correction = [1.0; H];
        let mut shift = [s.zero(); H];
        for h in 0..H {
            let max = s.reduce_max(max[h]).max(state.max[h]);
            if started {
                correction[h] = numerics::exp(state.max[h] - max);
            }
            state.max[h] = max;
            shift[h] = s.splat(max);
        }
        let mut total = [s.zero(); H];
        for k in 0..count {
            for (h, scores) in scores.iter_mut().enumerate() {
                let (vectors, _) = scores.as_chunks_mut::<8>();
                let w = s.exp(s.sub(s.load(&vectors[k]), shift[h]));
                s.store(&mut vectors[k], w);
                total[h] = s.add(total[h], w);
            }
        }
        let mut all = s.zero();
        for h in 0..H {
            let total = s.reduce_add(total[h]);
            state.sum[h] = if started {
                state.sum[h] * correction[h] + total
            } else {
                total
            };
            all = s.add(all, magnitude[h]);
        }
        (correction, s.reduce_add(all) < step::TRUSTED_SCORE)
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
        // Separate functions: see `scores`.
        with_source!(rows, src => with_vectors!(heads.dim, 8, [1, 2, 4, 8],
        V => {
            // SAFETY: the token proves AVX2, FMA and F16C.
            unsafe { accumulate_fixed::<_, _, H, CAP, SHARED, V>(self, &src, heads, first, weights, out) }
        },
        _ => {
            // SAFETY: the token proves AVX2, FMA and F16C.
            unsafe { accumulate_any::<_, _, H, CAP, SHARED>(self, &src, heads, first, weights, out) }
        }));
    }
}

/// `row` (exactly `8 * V` elements) as `V` vectors of 8.
///
/// # Panics
/// If `row` is shorter than `8 * V`.
#[inline(always)]
fn fixed<E, const V: usize>(row: &[E]) -> &[[E; 8]; V] {
    let (vectors, _) = row.as_chunks::<8>();
    vectors
        .first_chunk::<V>()
        .unwrap_or_else(|| unreachable!("rows are head_dim = 8 * V long"))
}

/// Scores of one group of up to 8 candidates `c0..c0 + count`, from
/// `dot(c, h)` = the per-lane products of candidate `c` and head `h`
/// (summed across lanes here, 8 candidates at once), stored as a whole
/// vector at `first + c0` (the chunk's [`step::SLACK`] leaves room).
#[inline(always)]
fn store_group<E: Element, S: Source<E>, const H: usize, const CAP: usize>(
    s: Avx2F16c,
    src: &S,
    partial: &[[__m256; 8]; H],
    c0: usize,
    count: usize,
    first: usize,
    scores: &mut [[f32; CAP]; H],
) {
    let mut factors = [1.0f32; 8];
    if S::SCALED {
        for (k, f) in factors[..count].iter_mut().enumerate() {
            *f = src.factor(c0 + k);
        }
    }
    let at = first + c0;
    for (partial, scores) in partial.iter().zip(scores.iter_mut()) {
        let mut dots = s.reduce8(partial);
        if S::SCALED {
            dots = s.mul(dots, s.load(&factors));
        }
        let Some(lanes) = scores[at..].first_chunk_mut::<8>() else {
            unreachable!("a chunk leaves SLACK score entries after its candidates")
        };
        s.store(lanes, dots);
    }
}

/// The `V` vectors of `row` (at least `8 * V` elements), widened.
#[inline(always)]
fn widen<E: Element, const V: usize>(s: Avx2F16c, row: &[E]) -> [__m256; V] {
    let row = fixed::<E, V>(row);
    let mut x = [s.zero(); V];
    for (x, v) in x.iter_mut().zip(row) {
        *x = E::load(s, v);
    }
    x
}

/// Per-lane products of `x` and `q`, summed over the `V` vectors.
#[inline(always)]
fn dot<const V: usize>(s: Avx2F16c, x: &[__m256; V], q: &[__m256; V]) -> __m256 {
    let mut p = s.mul(x[0], q[0]);
    for v in 1..V {
        p = s.fma(x[v], q[v], p);
    }
    p
}

/// [`Kernel::scores`] for `head_dim = 8 * V`: each row is `V` vectors, the
/// query rows stay in registers (or one stack slot away), and the dot
/// products of 8 candidates are reduced together.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scores_fixed<
    E: Element,
    S: Source<E>,
    const H: usize,
    const CAP: usize,
    const SHARED: bool,
    const V: usize,
>(
    s: Avx2F16c,
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
    let mut partial = [[s.zero(); 8]; H];
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
        store_group(s, src, &partial, c0, count, first, scores);
        c0 += 8;
    }
}

/// [`Kernel::scores`] for any `head_dim`: whole vectors, then the tail
/// zero-padded to 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn scores_any<E: Element, S: Source<E>, const H: usize, const CAP: usize, const SHARED: bool>(
    s: Avx2F16c,
    src: &S,
    heads: &Heads<'_, H>,
    first: usize,
    scores: &mut [[f32; CAP]; H],
) {
    let dim = heads.dim;
    let n = src.len();
    let mut q_vectors: [&[[f32; 8]]; H] = [&[]; H];
    let mut q_tail = [s.zero(); H];
    for (h, (vectors, tail)) in q_vectors.iter_mut().zip(&mut q_tail).enumerate() {
        let (whole, rest) = heads.q[h * dim..][..dim].as_chunks::<8>();
        *vectors = whole;
        *tail = f32::load_partial(s, rest);
    }
    let has_tail = !dim.is_multiple_of(8);
    let mut partial = [[s.zero(); 8]; H];
    let mut c0 = 0;
    while c0 < n {
        let count = (n - c0).min(8);
        for c in c0..c0 + count {
            for (h, partial) in partial.iter_mut().enumerate() {
                let offset = heads.offsets[if SHARED { 0 } else { h }];
                let (vectors, tail) = src.row(c, offset, dim).as_chunks::<8>();
                let mut p = s.zero();
                for (x, qv) in vectors.iter().zip(q_vectors[h]) {
                    p = s.fma(E::load(s, x), s.load(qv), p);
                }
                if has_tail {
                    p = s.fma(E::load_partial(s, tail), q_tail[h], p);
                }
                partial[c - c0] = p;
            }
        }
        store_group(s, src, &partial, c0, count, first, scores);
        c0 += 8;
    }
}

/// [`Kernel::accumulate`] for `head_dim = 8 * V`: two output vectors of
/// every head stay in registers while all candidates stream past.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn accumulate_fixed<
    E: Element,
    S: Source<E>,
    const H: usize,
    const CAP: usize,
    const SHARED: bool,
    const V: usize,
>(
    s: Avx2F16c,
    src: &S,
    heads: &Heads<'_, H>,
    first: usize,
    weights: &[[f32; CAP]; H],
    out: &mut [f32],
) {
    let n = src.len();
    if n == 0 {
        return;
    }
    let mut j = 0;
    while j + 2 <= V {
        columns::<E, S, H, CAP, SHARED, V, 2>(s, src, heads, first, weights, out, j);
        j += 2;
    }
    if j < V {
        columns::<E, S, H, CAP, SHARED, V, 1>(s, src, heads, first, weights, out, j);
    }
}

/// Output vectors `j..j + W` of every head of the block, for rows of `V`
/// vectors.
#[inline(always)]
#[allow(
    clippy::too_many_arguments,
    reason = "the inner loop of accumulate_fixed, split out once per width"
)]
fn columns<
    E: Element,
    S: Source<E>,
    const H: usize,
    const CAP: usize,
    const SHARED: bool,
    const V: usize,
    const W: usize,
>(
    s: Avx2F16c,
    src: &S,
    heads: &Heads<'_, H>,
    first: usize,
    weights: &[[f32; CAP]; H],
    out: &mut [f32],
    j: usize,
) {
    let dim = heads.dim;
    let mut acc = [[s.zero(); W]; H];
    for (h, acc) in acc.iter_mut().enumerate() {
        let row = fixed::<f32, V>(&out[h * dim..]);
        for (w, acc) in acc.iter_mut().enumerate() {
            *acc = s.load(&row[j + w]);
        }
    }
    for c in 0..src.len() {
        let factor = src.factor(c);
        let mut weight = [s.zero(); H];
        for (weight, weights) in weight.iter_mut().zip(weights) {
            let w = weights[first + c];
            *weight = s.splat(if S::SCALED { w * factor } else { w });
        }
        if SHARED {
            let row = fixed::<E, V>(src.row(c, heads.offsets[0], dim));
            let mut x = [s.zero(); W];
            for (w, x) in x.iter_mut().enumerate() {
                *x = E::load(s, &row[j + w]);
            }
            for (acc, weight) in acc.iter_mut().zip(weight) {
                for (acc, x) in acc.iter_mut().zip(x) {
                    *acc = s.fma(weight, x, *acc);
                }
            }
        } else {
            for (h, (acc, weight)) in acc.iter_mut().zip(weight).enumerate() {
                let row = fixed::<E, V>(src.row(c, heads.offsets[h], dim));
                for (w, acc) in acc.iter_mut().enumerate() {
                    *acc = s.fma(weight, E::load(s, &row[j + w]), *acc);
                }
            }
        }
    }
    for (h, acc) in acc.into_iter().enumerate() {
        let (vectors, _) = out[h * dim..][..dim].as_chunks_mut::<8>();
        for (w, acc) in acc.into_iter().enumerate() {
            s.store(&mut vectors[j + w], acc);
        }
    }
}

/// [`Kernel::accumulate`] for any `head_dim`, one candidate and head at a
/// time (whole vectors, then the zero-padded tail).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn accumulate_any<
    E: Element,
    S: Source<E>,
    const H: usize,
    const CAP: usize,
    const SHARED: bool,
>(
    s: Avx2F16c,
    src: &S,
    heads: &Heads<'_, H>,
    first: usize,
    weights: &[[f32; CAP]; H],
    out: &mut [f32],
) {
    let dim = heads.dim;
    let tail = dim / 8 * 8..dim;
    for c in 0..src.len() {
        let factor = src.factor(c);
        for (h, out) in out.chunks_exact_mut(dim).enumerate() {
            let weight = s.splat(weights[h][first + c] * factor);
            let row = src.row(c, heads.offsets[if SHARED { 0 } else { h }], dim);
            let (vectors, row_tail) = row.as_chunks::<8>();
            let (outs, _) = out.as_chunks_mut::<8>();
            for (o, x) in outs.iter_mut().zip(vectors) {
                let sum = s.fma(weight, E::load(s, x), s.load(o));
                s.store(o, sum);
            }
            if !tail.is_empty() {
                let sum = s.fma(
                    weight,
                    E::load_partial(s, row_tail),
                    f32::load_partial(s, &out[tail.clone()]),
                );
                let mut lanes = [0.0f32; 8];
                s.store(&mut lanes, sum);
                out[tail.clone()].copy_from_slice(&lanes[..tail.len()]);
            }
        }
    }
}

pub(crate) mod avx512;
pub(crate) use avx512::Avx512F16c;

/// [`NarrowFn`](aether_domain::f16_conv::NarrowFn) through F16C's `vcvtps2ph` / `vcvtph2ps`, falling back to
/// the portable conversion when the CPU lacks it (so it is safe to call
/// anywhere). Why: appending shape A MHA to an f16 cache converts 512
/// values (k and v narrowed, then widened back for the block sums), which
/// the portable code does at about half a nanosecond each.
///
/// # Panics
/// If the lengths differ.
pub(crate) fn narrow_f16c(src: &[f32], dst: &mut [f16], stored: &mut [f32]) {
    assert!(
        src.len() == dst.len() && src.len() == stored.len(),
        "narrow_f16c: lengths differ"
    );
    match Avx2F16c::get() {
        // SAFETY: the token proves AVX and F16C, the callee's features.
        Some(token) => unsafe { narrow_f16c_unchecked(token, src, dst, stored) },
        None => f16_conv::narrow_widen_slice(src, dst, stored),
    }
}

/// F16C narrowing, 8 values at a time; the tail goes through the portable
/// conversion, which rounds identically (ties to even, NaNs quieted).
#[target_feature(enable = "avx,f16c")]
fn narrow_f16c_unchecked(s: Avx2F16c, src: &[f32], dst: &mut [f16], stored: &mut [f32]) {
    let (src8, src_tail) = src.as_chunks::<8>();
    let (dst8, dst_tail) = dst.as_chunks_mut::<8>();
    let (stored8, stored_tail) = stored.as_chunks_mut::<8>();
    for ((x, d), w) in src8.iter().zip(dst8).zip(stored8) {
        let halves = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(s.load(x));
        // SAFETY: `d` is 8 `f16`s, `#[repr(transparent)]` over `u16`: 16
        // writable bytes; the store is unaligned.
        unsafe { _mm_storeu_si128(d.as_mut_ptr().cast(), halves) };
        s.store(w, _mm256_cvtph_ps(halves));
    }
    f16_conv::narrow_widen_slice(src_tail, dst_tail, stored_tail);
}

/// [`step::run`] compiled with AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn attend(
    token: Avx2F16c,
    head: &StepHead<'_>,
    q: &[f32],
    cache: &KvCache,
    out: &mut [f32],
) -> bool {
    step::run::<Avx2F16c, 72, 24>(token, head, q, cache, out)
}
