//! Projections `y = x·W` over a matrix of the model's weights.
//!
//! Rows are accumulated in increasing order from 0.0, one multiply and one
//! add per weight, so a trainer (or a test) that sums the same way gets
//! the same bits.

use alloc::vec;

use aether_domain::Tensor;
use aether_domain::numerics::axpy;

use crate::ModelError;
use crate::layout::MatrixSpan;

/// A row-major `[rows][cols]` matrix borrowed from the model's weights.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Linear<'w> {
    weights: &'w [f32],
    cols: usize,
}

impl<'w> Linear<'w> {
    /// The matrix at `span` of the body `all`.
    pub(crate) fn new(all: &'w [f32], span: MatrixSpan) -> Self {
        Self {
            weights: &all[span.range()],
            cols: span.cols,
        }
    }

    /// `y = x·W`; the caller passes `rows` values in `x` and `cols` in `y`.
    pub(crate) fn apply(&self, x: &[f32], y: &mut [f32]) {
        debug_assert_eq!(x.len() * self.cols, self.weights.len());
        y.fill(0.0);
        for (&xr, w) in x.iter().zip(self.weights.chunks_exact(self.cols)) {
            axpy(y, xr, w);
        }
    }

    /// Applies the projection to each of `n` rows of `x` and shapes the
    /// result as an `n x heads x dim` attention operand.
    pub(crate) fn apply_rows(
        &self,
        x: &[f32],
        n: usize,
        heads: usize,
        dim: usize,
    ) -> Result<Tensor, ModelError> {
        let rows = self.weights.len() / self.cols;
        let mut out = vec![0.0; n * self.cols];
        for (x_row, y_row) in x.chunks_exact(rows).zip(out.chunks_exact_mut(self.cols)) {
            self.apply(x_row, y_row);
        }
        Ok(Tensor::new(out, n, heads, dim)?)
    }
}
