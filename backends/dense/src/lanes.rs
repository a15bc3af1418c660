//! Fixed-width `f32` vectors in plain, portable Rust.
//!
//! Why it exists: LLVM's loop vectoriser does not reliably vectorise a
//! `for lane in 0..8` loop nested inside the kernel's row and key loops (it
//! may pick the wrong loop, or leave scalar code). Writing each lane-wise
//! operation out as straight-line expressions hands the SLP vectoriser
//! exactly one vector instruction's worth of work, which it turns into SSE,
//! AVX or AVX-512 instructions, or plain scalar code where there are no
//! vectors (`riscv32imc`).
//!
//! [`Lanes`] (eight lanes: one AVX register) is used everywhere;
//! `Lanes16` (one AVX-512 register) only by the AVX-512 copy of the
//! prefill kernel, which is generic over [`Vector`].
//!
//! **Invariant:** every operation is lane-wise and branch-free (selects,
//! not branches), so it stays vectorisable.

use aether_domain::numerics;

/// A vector of `LANES` `f32` values.
pub(crate) trait Vector: Copy + core::fmt::Debug + PartialEq {
    /// Values per vector.
    const LANES: usize;
    /// All lanes zero.
    const ZERO: Self;
    /// All lanes `-inf` (a masked score).
    const NEG_INFINITY: Self;

    /// Lane `i`.
    fn lane(&self, i: usize) -> f32;
    /// Lane `i`, mutable.
    fn lane_mut(&mut self, i: usize) -> &mut f32;
    /// `self + a * x`.
    fn add_scaled(self, a: f32, x: Self) -> Self;
    /// `self + x`.
    fn add(self, x: Self) -> Self;
    /// `self - x`.
    fn sub(self, x: Self) -> Self;
    /// Lane-wise product.
    fn mul(self, x: Self) -> Self;
    /// Lane-wise max (a select, so no NaN special cases to vectorise).
    fn max(self, x: Self) -> Self;
    /// Lane-wise min (a select, like [`max`](Self::max)).
    fn min(self, x: Self) -> Self;
    /// `e^self` per lane.
    fn exp(self) -> Self;
    /// `e^(self - shift)` per lane.
    fn exp_minus(self, shift: f32) -> Self;
    /// `self`, with `-inf` lanes replaced by zero (so a running max that is
    /// still `-inf` can be subtracted without producing NaN).
    fn finite_or_zero(self) -> Self;
    /// `-inf` in lane `r` when `key > limits[r]`: the lanes are query rows
    /// and `key` is past that row's last visible key. `limits` has `LANES`
    /// entries.
    fn mask_rows_after(self, key: usize, limits: &[usize]) -> Self;
    /// Largest lane.
    fn horizontal_max(self) -> f32;
    /// Smallest lane.
    fn horizontal_min(self) -> f32;
    /// Sum of the lanes.
    fn horizontal_sum(self) -> f32;
}

/// Defines a vector type of `$lanes` lanes, each operation written out once
/// per lane index.
macro_rules! vector {
    ($(#[$meta:meta])* $name:ident, $lanes:literal, $align:literal, [$($i:literal)*]) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq)]
        #[repr(C, align($align))]
        pub(crate) struct $name(pub(crate) [f32; $lanes]);

        impl Vector for $name {
            const LANES: usize = $lanes;
            const ZERO: Self = Self([0.0; $lanes]);
            const NEG_INFINITY: Self = Self([f32::NEG_INFINITY; $lanes]);

            #[inline(always)]
            fn lane(&self, i: usize) -> f32 {
                self.0[i]
            }

            #[inline(always)]
            fn lane_mut(&mut self, i: usize) -> &mut f32 {
                &mut self.0[i]
            }

            #[inline(always)]
            fn add_scaled(self, a: f32, x: Self) -> Self {
                Self([$(self.0[$i] + a * x.0[$i]),*])
            }

            #[inline(always)]
            fn add(self, x: Self) -> Self {
                Self([$(self.0[$i] + x.0[$i]),*])
            }

            #[inline(always)]
            fn sub(self, x: Self) -> Self {
                Self([$(self.0[$i] - x.0[$i]),*])
            }

            #[inline(always)]
            fn mul(self, x: Self) -> Self {
                Self([$(self.0[$i] * x.0[$i]),*])
            }

            #[inline(always)]
            fn max(self, x: Self) -> Self {
                Self([$(if x.0[$i] > self.0[$i] { x.0[$i] } else { self.0[$i] }),*])
            }

            #[inline(always)]
            fn min(self, x: Self) -> Self {
                Self([$(if x.0[$i] < self.0[$i] { x.0[$i] } else { self.0[$i] }),*])
            }

            #[inline(always)]
            fn exp(self) -> Self {
                Self([$(numerics::exp(self.0[$i])),*])
            }

            #[inline(always)]
            fn exp_minus(self, shift: f32) -> Self {
                Self([$(numerics::exp(self.0[$i] - shift)),*])
            }

            #[inline(always)]
            fn finite_or_zero(self) -> Self {
                Self([$(
                    if self.0[$i] == f32::NEG_INFINITY { 0.0 } else { self.0[$i] }
                ),*])
            }

            #[inline(always)]
            fn mask_rows_after(self, key: usize, limits: &[usize]) -> Self {
                let limits: &[usize; $lanes] = limits
                    .try_into()
                    .unwrap_or_else(|_| panic!("limits must have {} entries", $lanes));
                Self([$(
                    if key > limits[$i] { f32::NEG_INFINITY } else { self.0[$i] }
                ),*])
            }

            #[inline(always)]
            fn horizontal_max(self) -> f32 {
                let mut v = self.0;
                let mut width = $lanes;
                while width > 1 {
                    width /= 2;
                    for i in 0..width {
                        v[i] = if v[i + width] > v[i] { v[i + width] } else { v[i] };
                    }
                }
                v[0]
            }

            #[inline(always)]
            fn horizontal_min(self) -> f32 {
                let mut v = self.0;
                let mut width = $lanes;
                while width > 1 {
                    width /= 2;
                    for i in 0..width {
                        v[i] = if v[i + width] < v[i] { v[i + width] } else { v[i] };
                    }
                }
                v[0]
            }

            #[inline(always)]
            fn horizontal_sum(self) -> f32 {
                let mut v = self.0;
                let mut width = $lanes;
                while width > 1 {
                    width /= 2;
                    for i in 0..width {
                        v[i] += v[i + width];
                    }
                }
                v[0]
            }
        }
    };
}

vector!(
    /// Eight lanes: one AVX register, two SSE or NEON ones.
    Lanes, 8, 32, [0 1 2 3 4 5 6 7]
);

#[cfg(target_arch = "x86_64")]
vector!(
    /// Sixteen lanes: one AVX-512 register.
    Lanes16, 16, 64, [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_operations() {
        let a = Lanes([1.0, -2.0, 3.0, 4.0, 0.5, 6.0, -7.0, 8.0]);
        let b = Lanes([2.0; 8]);
        assert_eq!(a.add_scaled(0.5, b).0[1], -1.0);
        assert_eq!(a.sub(b).0[0], -1.0);
        assert_eq!(a.mul(b).0[7], 16.0);
        assert_eq!(a.horizontal_max(), 8.0);
        assert_eq!(a.horizontal_min(), -7.0);
        assert_eq!(a.min(b).0, [1.0, -2.0, 2.0, 2.0, 0.5, 2.0, -7.0, 2.0]);
        assert_eq!(a.horizontal_sum(), 13.5);
        assert_eq!(a.max(b).0, [2.0, 2.0, 3.0, 4.0, 2.0, 6.0, 2.0, 8.0]);
        assert_eq!(Lanes::ZERO.exp().0, [1.0; 8]);
        assert_eq!(Lanes::NEG_INFINITY.exp().0, [0.0; 8]);
        assert_eq!(b.exp_minus(2.0).0, [1.0; 8]);
        assert_eq!(Lanes::NEG_INFINITY.finite_or_zero().0, [0.0; 8]);
        assert_eq!(a.finite_or_zero(), a);
    }

    #[test]
    fn mask_rows_after_masks_rows_that_cannot_see_the_key() {
        let limits = [0, 1, 2, 3, 4, 5, 6, 7];
        let masked = Lanes([1.0; 8]).mask_rows_after(4, &limits);
        let expected = [f32::NEG_INFINITY; 4].into_iter().chain([1.0; 4]);
        assert!(masked.0.iter().copied().eq(expected));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sixteen_lanes_reduce_every_lane() {
        let a = Lanes16(core::array::from_fn(|i| i as f32));
        assert_eq!(a.horizontal_max(), 15.0);
        assert_eq!(a.horizontal_min(), 0.0);
        assert_eq!(a.horizontal_sum(), 120.0);
        let limits: [usize; 16] = core::array::from_fn(|i| i);
        assert_eq!(a.mask_rows_after(15, &limits).0[15], 15.0);
        assert_eq!(a.mask_rows_after(15, &limits).0[14], f32::NEG_INFINITY);
    }
}
