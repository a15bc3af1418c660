//! `[seq][heads][dim]` f32 tensors, owned and borrowed.
//!
//! Every attention input and output uses this one row-major layout
//! (`docs/attention.md`) so backends can hand rows to each other without
//! reshaping. Constructors validate the length against the shape; after
//! that, indexing by `(token, head)` cannot go out of bounds for in-range
//! arguments.

use alloc::vec::Vec;

use crate::error::ShapeError;

/// The extent of a tensor along each axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Tokens.
    pub seq: usize,
    /// Heads per token.
    pub heads: usize,
    /// Values per head.
    pub dim: usize,
}

impl Shape {
    /// Validates the extents and returns the number of values they span.
    ///
    /// # Errors
    /// [`ShapeError::ZeroExtent`] when `heads` or `dim` is zero (a sequence
    /// of zero tokens is allowed), [`ShapeError::Overflow`] when the product
    /// does not fit in `usize`.
    pub fn checked_len(&self) -> Result<usize, ShapeError> {
        if self.heads == 0 {
            return Err(ShapeError::ZeroExtent { axis: "heads" });
        }
        if self.dim == 0 {
            return Err(ShapeError::ZeroExtent { axis: "dim" });
        }
        self.seq
            .checked_mul(self.heads)
            .and_then(|x| x.checked_mul(self.dim))
            .ok_or(ShapeError::Overflow {
                seq: self.seq,
                heads: self.heads,
                dim: self.dim,
            })
    }

    /// Values in one token (all heads).
    #[must_use]
    pub const fn token_len(&self) -> usize {
        self.heads * self.dim
    }

    fn validate(&self, actual: usize) -> Result<(), ShapeError> {
        let expected = self.checked_len()?;
        if expected == actual {
            Ok(())
        } else {
            Err(ShapeError::LengthMismatch {
                seq: self.seq,
                heads: self.heads,
                dim: self.dim,
                expected,
                actual,
            })
        }
    }
}

/// An owned `[seq][heads][dim]` tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    data: Vec<f32>,
    shape: Shape,
}

impl Tensor {
    /// Wraps `data` as a `seq x heads x dim` tensor.
    ///
    /// # Errors
    /// Any [`ShapeError`]: zero heads/dim, overflow, or a length mismatch.
    pub fn new(data: Vec<f32>, seq: usize, heads: usize, dim: usize) -> Result<Self, ShapeError> {
        let shape = Shape { seq, heads, dim };
        shape.validate(data.len())?;
        Ok(Self { data, shape })
    }

    /// A tensor of zeros.
    ///
    /// # Errors
    /// [`ShapeError::ZeroExtent`] or [`ShapeError::Overflow`].
    pub fn zeros(seq: usize, heads: usize, dim: usize) -> Result<Self, ShapeError> {
        let shape = Shape { seq, heads, dim };
        let len = shape.checked_len()?;
        Ok(Self {
            data: alloc::vec![0.0; len],
            shape,
        })
    }

    /// Borrows this tensor.
    #[must_use]
    pub fn view(&self) -> TensorView<'_> {
        TensorView {
            data: &self.data,
            shape: self.shape,
        }
    }

    /// The tensor's extents.
    #[must_use]
    pub const fn shape(&self) -> Shape {
        self.shape
    }

    /// Tokens.
    #[must_use]
    pub const fn seq(&self) -> usize {
        self.shape.seq
    }

    /// Heads per token.
    #[must_use]
    pub const fn heads(&self) -> usize {
        self.shape.heads
    }

    /// Values per head.
    #[must_use]
    pub const fn dim(&self) -> usize {
        self.shape.dim
    }

    /// All values, row-major.
    #[must_use]
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// All values, row-major, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Gives the values back.
    #[must_use]
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// The `dim` values of `head` at `token`.
    ///
    /// # Panics
    /// If `token >= seq` or `head >= heads`.
    #[must_use]
    pub fn row(&self, token: usize, head: usize) -> &[f32] {
        self.view().row(token, head)
    }

    /// The `dim` values of `head` at `token`, mutable.
    ///
    /// # Panics
    /// If `token >= seq` or `head >= heads`.
    pub fn row_mut(&mut self, token: usize, head: usize) -> &mut [f32] {
        assert!(head < self.shape.heads, "head {head} out of range");
        let start = (token * self.shape.heads + head) * self.shape.dim;
        &mut self.data[start..start + self.shape.dim]
    }

    /// The `heads * dim` values of `token`, mutable.
    ///
    /// # Panics
    /// If `token >= seq`.
    pub fn token_mut(&mut self, token: usize) -> &mut [f32] {
        let len = self.shape.token_len();
        &mut self.data[token * len..(token + 1) * len]
    }
}

/// A borrowed `[seq][heads][dim]` tensor; cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorView<'a> {
    data: &'a [f32],
    shape: Shape,
}

impl<'a> TensorView<'a> {
    /// Views `data` as a `seq x heads x dim` tensor.
    ///
    /// # Errors
    /// Any [`ShapeError`]: zero heads/dim, overflow, or a length mismatch.
    pub fn new(data: &'a [f32], seq: usize, heads: usize, dim: usize) -> Result<Self, ShapeError> {
        let shape = Shape { seq, heads, dim };
        shape.validate(data.len())?;
        Ok(Self { data, shape })
    }

    /// The tensor's extents.
    #[must_use]
    pub const fn shape(&self) -> Shape {
        self.shape
    }

    /// Tokens.
    #[must_use]
    pub const fn seq(&self) -> usize {
        self.shape.seq
    }

    /// Heads per token.
    #[must_use]
    pub const fn heads(&self) -> usize {
        self.shape.heads
    }

    /// Values per head.
    #[must_use]
    pub const fn dim(&self) -> usize {
        self.shape.dim
    }

    /// All values, row-major.
    #[must_use]
    pub const fn as_slice(&self) -> &'a [f32] {
        self.data
    }

    /// The `dim` values of `head` at `token`.
    ///
    /// # Panics
    /// If `token >= seq` or `head >= heads`.
    #[must_use]
    pub fn row(&self, token: usize, head: usize) -> &'a [f32] {
        assert!(head < self.shape.heads, "head {head} out of range");
        let start = (token * self.shape.heads + head) * self.shape.dim;
        &self.data[start..start + self.shape.dim]
    }

    /// The `heads * dim` values of `token`.
    ///
    /// # Panics
    /// If `token >= seq`.
    #[must_use]
    pub fn token(&self, token: usize) -> &'a [f32] {
        let len = self.shape.token_len();
        &self.data[token * len..(token + 1) * len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn constructor_rejects_length_mismatch() {
        assert_eq!(
            Tensor::new(vec![0.0; 5], 1, 2, 3),
            Err(ShapeError::LengthMismatch {
                seq: 1,
                heads: 2,
                dim: 3,
                expected: 6,
                actual: 5
            })
        );
    }

    #[test]
    fn constructor_rejects_zero_heads_and_dim() {
        assert_eq!(
            Tensor::new(vec![], 1, 0, 3),
            Err(ShapeError::ZeroExtent { axis: "heads" })
        );
        assert_eq!(
            TensorView::new(&[], 1, 3, 0),
            Err(ShapeError::ZeroExtent { axis: "dim" })
        );
    }

    #[test]
    fn constructor_rejects_overflow() {
        assert_eq!(
            Tensor::zeros(usize::MAX, 2, 2),
            Err(ShapeError::Overflow {
                seq: usize::MAX,
                heads: 2,
                dim: 2
            })
        );
    }

    #[test]
    fn rows_index_token_major_then_head() {
        let t = Tensor::new((0..12).map(|x| x as f32).collect(), 2, 3, 2).unwrap();
        assert_eq!(t.row(0, 0), &[0.0, 1.0]);
        assert_eq!(t.row(1, 2), &[10.0, 11.0]);
        assert_eq!(t.view().token(1), &[6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
    }
}
