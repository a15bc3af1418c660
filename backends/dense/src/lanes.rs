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

    /// `self * a`.
    #[inline(always)]
    pub(crate) fn scale(self, a: f32) -> Self {
        lanes!(i => self.0[i] * a)
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

    /// `e^(self - shift)` per lane.
    #[inline(always)]
    pub(crate) fn exp_minus(self, shift: f32) -> Self {
        lanes!(i => numerics::exp(self.0[i] - shift))
    }

    /// `-inf` in the lanes whose key index (`first_key + lane`) is past
    /// `limit`.
    #[inline(always)]
    pub(crate) fn mask_after(self, first_key: usize, limit: usize) -> Self {
        lanes!(i => if first_key + i > limit { f32::NEG_INFINITY } else { self.0[i] })
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
