//! Projections `y = x·W` over a matrix of the model's weights.
//!
//! Rows are accumulated in increasing order from 0.0, one multiply and one
//! add per weight, so a trainer (or a test) that sums the same way gets
//! the same bits. The arithmetic is [`crate::matmul`]'s register-blocked
//! kernel; one frame ([`Linear::apply`], streaming) and many
//! ([`Linear::apply_rows`], prefill) run the same per-output sums.

use alloc::vec;

use aether_domain::Tensor;

use crate::ModelError;
use crate::layout::MatrixSpan;
use crate::matmul::matmul;

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
        matmul(x, 1, self.weights, x.len(), self.cols, y);
    }

    /// `y = x·W` for each of `n` rows of `x` (`n × rows` in, `n × cols`
    /// out), every output overwritten.
    pub(crate) fn apply_many(&self, x: &[f32], n: usize, y: &mut [f32]) {
        matmul(
            x,
            n,
            self.weights,
            self.weights.len() / self.cols,
            self.cols,
            y,
        );
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
        let mut out = vec![0.0; n * self.cols];
        self.apply_many(x, n, &mut out);
        Ok(Tensor::new(out, n, heads, dim)?)
    }
}
