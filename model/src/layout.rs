//! Where each matrix of the model (`docs/model.md`) sits in the flat
//! weight body.
//!
//! The body order is the contract between everything that writes weights
//! (the trainer, the `.rvne` and safetensors adapters, random init) and the
//! model that reads them, so it is computed in exactly one place:
//! [`Layout`]. [`ModelWeights`](crate::ModelWeights), the `.rvne` reader
//! and writers and the trainer all take offsets from here.
//!
//! **Invariant:** a `Layout` exists only for a valid shape whose weight
//! count fits in `usize` (all products are `checked_*`), so every offset it
//! hands out is at most that count and cannot overflow.

use crate::shape::{ModelShape, ShapeError};

/// One of the four projection matrices of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatrixKind {
    /// Wq, `[D][Hq·d]`: frames to queries.
    Query,
    /// Wk, `[D][Hkv·d]`: frames to keys.
    Key,
    /// Wv, `[D][Hkv·d]`: frames to values.
    Value,
    /// Wo, `[Hq·d][D]`: attention output back to the residual stream.
    Output,
}

impl MatrixKind {
    /// The four kinds in body order (Wq, Wk, Wv, Wo).
    pub const BODY_ORDER: [Self; 4] = [Self::Query, Self::Key, Self::Value, Self::Output];
}

/// A row-major `[rows][cols]` matrix at `offset` weights into the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatrixSpan {
    /// Index of element `[0][0]` in the body, counted in weights.
    pub offset: usize,
    /// Rows (the input width: y = x·W).
    pub rows: usize,
    /// Columns (the output width).
    pub cols: usize,
}

impl MatrixSpan {
    /// Weights in the matrix (`rows × cols`).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Always false for spans of a valid layout (every dimension is >= 1);
    /// provided for API completeness next to [`MatrixSpan::len`].
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body index range of this matrix, in weights.
    #[must_use]
    pub const fn range(&self) -> core::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// Offsets and shapes of every matrix in the body of a valid shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    input_dim: usize,
    q_width: usize,
    kv_width: usize,
    n_layers: usize,
    n_classes: usize,
    layer_stride: usize,
    weight_count: usize,
}

impl Layout {
    /// Computes the layout of a shape that has passed
    /// [`ModelShape::validate`], with every product overflow-checked.
    pub(crate) const fn new(shape: &ModelShape) -> Result<Self, ShapeError> {
        let input_dim = shape.input_dim;
        let head_dim = shape.head_dim;
        let n_layers = shape.n_layers;
        let n_classes = shape.n_classes;
        // `?` is not available in const fn; each `let Some(..) else` is one
        // checked step of the weight count.
        let Some(q_width) = shape.n_q_heads.checked_mul(head_dim) else {
            return Err(ShapeError::SizeOverflow);
        };
        let Some(kv_width) = shape.n_kv_heads.checked_mul(head_dim) else {
            return Err(ShapeError::SizeOverflow);
        };
        // Wq and Wo have the same size, as do Wk and Wv.
        let Some(q_size) = input_dim.checked_mul(q_width) else {
            return Err(ShapeError::SizeOverflow);
        };
        let Some(kv_size) = input_dim.checked_mul(kv_width) else {
            return Err(ShapeError::SizeOverflow);
        };
        let Some(q_pair) = q_size.checked_mul(2) else {
            return Err(ShapeError::SizeOverflow);
        };
        let Some(kv_pair) = kv_size.checked_mul(2) else {
            return Err(ShapeError::SizeOverflow);
        };
        let Some(layer_stride) = q_pair.checked_add(kv_pair) else {
            return Err(ShapeError::SizeOverflow);
        };
        let Some(all_layers) = layer_stride.checked_mul(n_layers) else {
            return Err(ShapeError::SizeOverflow);
        };
        let Some(classifier) = input_dim.checked_mul(n_classes) else {
            return Err(ShapeError::SizeOverflow);
        };
        let Some(weight_count) = all_layers.checked_add(classifier) else {
            return Err(ShapeError::SizeOverflow);
        };
        Ok(Self {
            input_dim,
            q_width,
            kv_width,
            n_layers,
            n_classes,
            layer_stride,
            weight_count,
        })
    }

    /// Total weights in the body.
    #[must_use]
    pub const fn weight_count(&self) -> usize {
        self.weight_count
    }

    /// Weights per layer (`|Wq| + |Wk| + |Wv| + |Wo|`).
    #[must_use]
    pub const fn layer_stride(&self) -> usize {
        self.layer_stride
    }

    /// Layers in the model.
    #[must_use]
    pub const fn n_layers(&self) -> usize {
        self.n_layers
    }

    /// The span of one projection of `layer`, or `None` past the last layer.
    #[must_use]
    pub const fn matrix(&self, layer: usize, kind: MatrixKind) -> Option<MatrixSpan> {
        if layer >= self.n_layers {
            return None;
        }
        Some(self.matrix_in_range(layer, kind))
    }

    /// The span of one projection of a layer below `n_layers`; then every
    /// offset is below `weight_count`, so nothing here can overflow. For a
    /// layer past the last the span lies outside the body (or the
    /// arithmetic wraps in a release build): callers that cannot promise
    /// the bound use [`Layout::matrix`].
    pub const fn matrix_in_range(&self, layer: usize, kind: MatrixKind) -> MatrixSpan {
        let d = self.input_dim;
        let q = d * self.q_width;
        let kv = d * self.kv_width;
        let base = layer * self.layer_stride;
        let (offset, rows, cols) = match kind {
            MatrixKind::Query => (base, d, self.q_width),
            MatrixKind::Key => (base + q, d, self.kv_width),
            MatrixKind::Value => (base + q + kv, d, self.kv_width),
            MatrixKind::Output => (base + q + 2 * kv, self.q_width, d),
        };
        MatrixSpan { offset, rows, cols }
    }

    /// The span of the classifier Wc, `[D][C]`, after the last layer.
    #[must_use]
    pub const fn classifier(&self) -> MatrixSpan {
        MatrixSpan {
            offset: self.n_layers * self.layer_stride,
            rows: self.input_dim,
            cols: self.n_classes,
        }
    }

    /// Every matrix span in body order: each layer's Wq, Wk, Wv, Wo, then Wc.
    pub fn spans(&self) -> impl ExactSizeIterator<Item = MatrixSpan> + use<> {
        let layout = *self;
        (0..self.n_layers * 4 + 1).map(move |i| {
            let layer = i / 4;
            if layer < layout.n_layers {
                layout.matrix_in_range(layer, MatrixKind::BODY_ORDER[i % 4])
            } else {
                layout.classifier()
            }
        })
    }
}
