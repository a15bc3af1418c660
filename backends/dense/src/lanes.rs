//! An eight-lane `f32` vector in plain, portable Rust.
//!
//! Why it exists: LLVM's loop vectoriser does not reliably vectorise a
//! `for lane in 0..8` loop nested inside the kernel's row and key loops (it
//! may pick the wrong loop, or leave scalar code). Writing each lane-wise
//! operation out as eight straight-line expressions hands the SLP
//! vectoriser exactly one vector instruction's worth of work, which it turns
//! into one SSE pair or one AVX instruction on any target, and into plain
//! scalar code where there are no vectors (`riscv32imc`). The 32-byte
//! alignment lets those loads and stores be aligned.
//!
//! **Invariant:** every operation is lane-wise and branch-free (selects,
//! not branches), so it stays vectorisable.

use aether_domain::numerics::{self, LANES};

const _: () = assert!(LANES == 8, "Lanes is written out for eight lanes");

/// Eight `f32` lanes.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(32))]
pub(crate) struct Lanes(pub(crate) [f32; LANES]);

/// `Lanes([f(0), f(1), ..., f(7)])`, written out.
macro_rules! lanes {
    ($i:ident => $e:expr) => {
        Lanes([
            {
                let $i = 0;
                $e
            },
            {
                let $i = 1;
                $e
            },
            {
                let $i = 2;
                $e
            },
            {
                let $i = 3;
                $e
            },
            {
                let $i = 4;
                $e
            },
            {
                let $i = 5;
                $e
            },
            {
                let $i = 6;
                $e
            },
            {
                let $i = 7;
                $e
            },
        ])
    };
}

impl Lanes {
    /// All lanes zero.
    pub(crate) const ZERO: Self = Self([0.0; LANES]);
    /// All lanes `-inf` (a masked score).
    pub(crate) const NEG_INFINITY: Self = Self([f32::NEG_INFINITY; LANES]);

    /// `self + a * x`.
    #[inline(always)]
    pub(crate) fn add_scaled(self, a: f32, x: Self) -> Self {
        lanes!(i => self.0[i] + a * x.0[i])
    }

    /// `self + x`.
    #[inline(always)]
    pub(crate) fn add(self, x: Self) -> Self {
        lanes!(i => self.0[i] + x.0[i])
    }

    /// Lane-wise max (a select, so no NaN special cases to vectorise).
    #[inline(always)]
    pub(crate) fn max(self, x: Self) -> Self {
        lanes!(i => if x.0[i] > self.0[i] { x.0[i] } else { self.0[i] })
    }

    /// `self - x`.
    #[inline(always)]
    pub(crate) fn sub(self, x: Self) -> Self {
        lanes!(i => self.0[i] - x.0[i])
    }

    /// Lane-wise product.
    #[inline(always)]
    pub(crate) fn mul(self, x: Self) -> Self {
        lanes!(i => self.0[i] * x.0[i])
    }

    /// `e^self` per lane.
    #[inline(always)]
    pub(crate) fn exp(self) -> Self {
        lanes!(i => numerics::exp(self.0[i]))
    }

    /// `self`, with `-inf` lanes replaced by zero (so a running max that is
    /// still `-inf` can be subtracted without producing NaN).
    #[inline(always)]
    pub(crate) fn finite_or_zero(self) -> Self {
        lanes!(i => if self.0[i] == f32::NEG_INFINITY { 0.0 } else { self.0[i] })
    }

    /// `-inf` in lane `r` when `key > limits[r]`: the lanes are query rows
    /// and `key` is past that row's last visible key.
    #[inline(always)]
    pub(crate) fn mask_rows_after(self, key: usize, limits: &[usize; LANES]) -> Self {
        lanes!(i => if key > limits[i] { f32::NEG_INFINITY } else { self.0[i] })
    }

    /// `e^(self - shift)` per lane.
    #[inline(always)]
    pub(crate) fn exp_minus(self, shift: f32) -> Self {
        lanes!(i => numerics::exp(self.0[i] - shift))
    }

    /// Largest lane.
    #[inline(always)]
    pub(crate) fn horizontal_max(self) -> f32 {
        let [a, b, c, d, e, f, g, h] = self.0;
        let pick = |x: f32, y: f32| if y > x { y } else { x };
        pick(pick(pick(a, e), pick(b, f)), pick(pick(c, g), pick(d, h)))
    }

    /// Sum of the lanes.
    #[inline(always)]
    pub(crate) fn horizontal_sum(self) -> f32 {
        let [a, b, c, d, e, f, g, h] = self.0;
        ((a + e) + (b + f)) + ((c + g) + (d + h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_operations() {
        let a = Lanes([1.0, -2.0, 3.0, 4.0, 0.5, 6.0, -7.0, 8.0]);
        let b = Lanes([2.0; LANES]);
        assert_eq!(a.add_scaled(0.5, b).0[1], -1.0);
        assert_eq!(a.sub(b).0[0], -1.0);
        assert_eq!(a.mul(b).0[7], 16.0);
        assert_eq!(a.horizontal_max(), 8.0);
        assert_eq!(a.horizontal_sum(), 13.5);
        assert_eq!(a.max(b).0, [2.0, 2.0, 3.0, 4.0, 2.0, 6.0, 2.0, 8.0]);
        assert_eq!(Lanes::ZERO.exp().0, [1.0; LANES]);
        assert_eq!(Lanes::NEG_INFINITY.exp().0, [0.0; LANES]);
        assert_eq!(b.exp_minus(2.0).0, [1.0; LANES]);
        assert_eq!(Lanes::NEG_INFINITY.finite_or_zero().0, [0.0; LANES]);
        assert_eq!(a.finite_or_zero(), a);
    }

    #[test]
    fn mask_rows_after_masks_rows_that_cannot_see_the_key() {
        let limits = [0, 1, 2, 3, 4, 5, 6, 7];
        let masked = Lanes([1.0; LANES]).mask_rows_after(4, &limits);
        let expected = [f32::NEG_INFINITY; 4].into_iter().chain([1.0; 4]);
        assert!(masked.0.iter().copied().eq(expected));
    }
}
