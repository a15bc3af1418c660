//! The handful of vector operations the prefill kernel is written in.
//!
//! Why it exists: the kernel ([`crate::prefill`]) is written once, generic
//! over [`Simd`], and compiled once per instruction set: AVX-512 and
//! AVX2+FMA on `x86_64` ([`crate::x86`]) and [`Portable`] everywhere else
//! (the ESP32 stand-ins included). Keeping the vocabulary this small keeps
//! every implementation short enough to check by eye.
//!
//! Every method is `#[inline(always)]`, so inside an ISA's
//! `#[target_feature]` entry point the whole kernel inlines into one
//! function compiled with that ISA's instructions.
//!
//! **Invariant:** every implementation computes the same function per lane
//! (up to floating-point rounding of fused multiply-add and the order of a
//! horizontal sum); masks select, they never change arithmetic.

use aether_domain::numerics;

/// A vector instruction set, as a zero-sized token whose existence proves
/// the CPU can execute it (only [`crate::Isa`] detection constructs the
/// non-portable ones).
pub(crate) trait Simd: Copy {
    /// f32 lanes per vector.
    const LANES: usize;
    /// Vector accumulators a micro-kernel may keep live (about half the
    /// register file, leaving room for operands).
    const ACCUMULATORS: usize;
    /// A vector of [`LANES`](Self::LANES) f32.
    type V: Copy;
    /// One boolean per lane.
    type M: Copy;

    /// All lanes zero.
    fn zero(self) -> Self::V;
    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::V;
    /// The first `LANES` values of `src`.
    ///
    /// # Panics
    /// If `src` is shorter than `LANES`.
    fn load(self, src: &[f32]) -> Self::V;
    /// Writes `v` to the first `LANES` values of `dst`.
    ///
    /// # Panics
    /// If `dst` is shorter than `LANES`.
    fn store(self, dst: &mut [f32], v: Self::V);
    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a - b`.
    fn sub(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b`.
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c` (fused where the ISA has it).
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// Lane-wise maximum (neither operand is NaN in the kernel).
    fn max(self, a: Self::V, b: Self::V) -> Self::V;
    /// `e^x` per lane with the semantics of [`numerics::exp`].
    fn exp(self, x: Self::V) -> Self::V;
    /// `lo <= x && x <= hi` per lane.
    fn in_range(self, x: Self::V, lo: Self::V, hi: Self::V) -> Self::M;
    /// Lane `i` is set when bit `i` of `bits` is.
    fn mask_from_bits(self, bits: u32) -> Self::M;
    /// `if m { a } else { b }` per lane.
    fn select(self, m: Self::M, a: Self::V, b: Self::V) -> Self::V;
    /// Sum of the lanes.
    fn reduce_add(self, v: Self::V) -> f32;
    /// Maximum of the lanes.
    fn reduce_max(self, v: Self::V) -> f32;

    /// Transposes a `LANES x LANES` block into registers: vector `c` of
    /// `out` holds column `col + c` of rows `src[0..LANES]`.
    ///
    /// # Panics
    /// If `src` has fewer than `LANES` rows, a row is shorter than
    /// `col + LANES`, or `out` has fewer than `LANES` vectors.
    #[inline(always)]
    fn transpose_into(self, src: &[&[f32]], col: usize, out: &mut [Self::V]) {
        let mut column = [0.0f32; 16];
        for (c, out) in out[..Self::LANES].iter_mut().enumerate() {
            for (r, row) in src[..Self::LANES].iter().enumerate() {
                column[r] = row[col + c];
            }
            *out = self.load(&column);
        }
    }

    /// Transposes a `LANES x LANES` block to memory: for `r, c < LANES`,
    /// `dst[c * dst_stride + r] = src[r][col + c]`.
    ///
    /// # Panics
    /// As [`transpose_into`](Self::transpose_into), or if `dst` is too short.
    #[inline(always)]
    fn transpose(self, src: &[&[f32]], col: usize, dst: &mut [f32], dst_stride: usize) {
        let mut columns = [self.zero(); 16];
        self.transpose_into(src, col, &mut columns);
        for (c, &v) in columns[..Self::LANES].iter().enumerate() {
            self.store(&mut dst[c * dst_stride..], v);
        }
    }

    /// Sums of many vectors at once: lane `r` of the result is the sum of
    /// the lanes of `v[r]` (a transpose fused with the additions, so it
    /// costs about half the shuffles of a transpose).
    ///
    /// # Panics
    /// If `v` has fewer than `LANES` vectors.
    #[inline(always)]
    fn transpose_sum(self, v: &[Self::V]) -> Self::V {
        let mut sums = [0.0f32; 16];
        for (sum, &v) in sums.iter_mut().zip(&v[..Self::LANES]) {
            *sum = self.reduce_add(v);
        }
        self.load(&sums)
    }

    /// Dot product of two equally long slices.
    #[inline(always)]
    fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        let len = a.len().min(b.len());
        let (a, b) = (&a[..len], &b[..len]);
        let body = len - len % Self::LANES;
        let mut acc = self.zero();
        let mut at = 0;
        while at < body {
            acc = self.fma(self.load(&a[at..]), self.load(&b[at..]), acc);
            at += Self::LANES;
        }
        let mut sum = self.reduce_add(acc);
        for (x, y) in a[body..].iter().zip(&b[body..]) {
            sum += x * y;
        }
        sum
    }
}

/// `[f(0), f(1), ..]` for the portable lanes. Never give it a closure that
/// calls an ISA intrinsic: closures are not force-inlined, and the
/// intrinsic would stay an out-of-line call.
#[inline(always)]
pub(crate) fn array<T: Copy, const N: usize>(fill: T, mut f: impl FnMut(usize) -> T) -> [T; N] {
    let mut out = [fill; N];
    for (i, x) in out.iter_mut().enumerate() {
        *x = f(i);
    }
    out
}

/// Lanes of the portable vector: one AVX register or two SSE/NEON ones, so
/// LLVM's auto-vectoriser has whole registers to fill where the target has
/// any, and plain scalar loops where it has none.
const PORTABLE_LANES: usize = 8;

/// Plain Rust over fixed-size arrays; what `riscv32imc`, `thumbv7em` and
/// CPUs without AVX2 run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

type Lanes = [f32; PORTABLE_LANES];

#[inline(always)]
fn lanewise(a: Lanes, b: Lanes, f: impl Fn(f32, f32) -> f32) -> Lanes {
    array(0.0, |i| f(a[i], b[i]))
}

impl Simd for Portable {
    const LANES: usize = PORTABLE_LANES;
    const ACCUMULATORS: usize = 8;
    type V = Lanes;
    type M = [bool; PORTABLE_LANES];

    #[inline(always)]
    fn zero(self) -> Lanes {
        [0.0; PORTABLE_LANES]
    }
    #[inline(always)]
    fn splat(self, x: f32) -> Lanes {
        [x; PORTABLE_LANES]
    }
    #[inline(always)]
    fn load(self, src: &[f32]) -> Lanes {
        let mut v = [0.0; PORTABLE_LANES];
        v.copy_from_slice(&src[..PORTABLE_LANES]);
        v
    }
    #[inline(always)]
    fn store(self, dst: &mut [f32], v: Lanes) {
        dst[..PORTABLE_LANES].copy_from_slice(&v);
    }
    #[inline(always)]
    fn add(self, a: Lanes, b: Lanes) -> Lanes {
        lanewise(a, b, |x, y| x + y)
    }
    #[inline(always)]
    fn sub(self, a: Lanes, b: Lanes) -> Lanes {
        lanewise(a, b, |x, y| x - y)
    }
    #[inline(always)]
    fn mul(self, a: Lanes, b: Lanes) -> Lanes {
        lanewise(a, b, |x, y| x * y)
    }
    #[inline(always)]
    fn fma(self, a: Lanes, b: Lanes, c: Lanes) -> Lanes {
        array(0.0, |i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    fn max(self, a: Lanes, b: Lanes) -> Lanes {
        lanewise(a, b, |x, y| if x > y { x } else { y })
    }
    #[inline(always)]
    fn exp(self, x: Lanes) -> Lanes {
        x.map(numerics::exp)
    }
    #[inline(always)]
    fn in_range(self, x: Lanes, lo: Lanes, hi: Lanes) -> [bool; PORTABLE_LANES] {
        array(false, |i| lo[i] <= x[i] && x[i] <= hi[i])
    }
    #[inline(always)]
    fn mask_from_bits(self, bits: u32) -> [bool; PORTABLE_LANES] {
        array(false, |i| bits >> i & 1 != 0)
    }
    #[inline(always)]
    fn select(self, m: [bool; PORTABLE_LANES], a: Lanes, b: Lanes) -> Lanes {
        array(0.0, |i| if m[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    fn reduce_add(self, v: Lanes) -> f32 {
        // Pairwise, like the vector ISAs' shuffle trees.
        let mut v = v;
        let mut width = PORTABLE_LANES / 2;
        while width > 0 {
            for i in 0..width {
                v[i] += v[i + width];
            }
            width /= 2;
        }
        v[0]
    }
    #[inline(always)]
    fn reduce_max(self, v: Lanes) -> f32 {
        v.into_iter().fold(f32::NEG_INFINITY, f32::max)
    }
}

/// Exercises every operation of `s` against scalar arithmetic (shared by
/// the ISA modules' tests).
#[cfg(test)]
pub(crate) fn check_ops<S: Simd>(s: S) {
    let n = S::LANES;
    let a: alloc::vec::Vec<f32> = (0..n).map(|i| i as f32 - 3.5).collect();
    let b: alloc::vec::Vec<f32> = (0..n).map(|i| 0.25 * i as f32 + 1.0).collect();
    let (va, vb) = (s.load(&a), s.load(&b));
    let mut out = alloc::vec![0.0f32; n];
    let mut check = |v: S::V, f: &dyn Fn(usize) -> f32| {
        s.store(&mut out, v);
        for (i, &x) in out.iter().enumerate() {
            let want = f(i);
            assert!(
                (x - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{x} vs {want}"
            );
        }
    };
    check(s.add(va, vb), &|i| a[i] + b[i]);
    check(s.sub(va, vb), &|i| a[i] - b[i]);
    check(s.mul(va, vb), &|i| a[i] * b[i]);
    check(s.fma(va, vb, va), &|i| a[i] * b[i] + a[i]);
    check(s.max(va, vb), &|i| a[i].max(b[i]));
    check(s.exp(va), &|i| numerics::exp(a[i]));
    check(s.splat(2.5), &|_| 2.5);
    check(s.zero(), &|_| 0.0);
    let m = s.in_range(va, s.splat(-1.0), s.splat(1.5));
    check(s.select(m, va, s.splat(9.0)), &|i| {
        if (-1.0..=1.5).contains(&a[i]) {
            a[i]
        } else {
            9.0
        }
    });
    let bits = 0b1011_0110_1001_1101u32;
    check(s.select(s.mask_from_bits(bits), va, vb), &|i| {
        if bits >> i & 1 != 0 { a[i] } else { b[i] }
    });
    let neg = s.exp(s.splat(f32::NEG_INFINITY));
    check(neg, &|_| 0.0);
    assert_eq!(s.reduce_add(va), a.iter().sum::<f32>());
    assert_eq!(s.reduce_max(va), a[n - 1]);
    let block: alloc::vec::Vec<alloc::vec::Vec<f32>> = (0..n)
        .map(|r| (0..n + 2).map(|c| (r * 100 + c) as f32).collect())
        .collect();
    let rows: alloc::vec::Vec<&[f32]> = block.iter().map(|r| r.as_slice()).collect();
    let stride = n + 3;
    let mut transposed = alloc::vec![-1.0f32; n * stride];
    s.transpose(&rows, 2, &mut transposed, stride);
    for r in 0..n {
        for c in 0..n {
            assert_eq!(transposed[c * stride + r], block[r][c + 2], "r {r} c {c}");
        }
    }
    let vectors: alloc::vec::Vec<S::V> = block.iter().map(|row| s.load(row)).collect();
    check(s.transpose_sum(&vectors), &|r| block[r][..n].iter().sum());
    let long: alloc::vec::Vec<f32> = (0..2 * n + 3).map(|i| i as f32 * 0.5).collect();
    let want: f32 = long.iter().map(|x| x * x).sum();
    assert!((s.dot(&long, &long) - want).abs() < 1e-3);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_ops() {
        check_ops(Portable);
    }
}
