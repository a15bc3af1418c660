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

use crate::shape::{ModelOptions, ModelShape, Norm, ShapeError};

/// One of a layer's weight matrices (vectors are `[1][n]` matrices), in
/// body order (`docs/model.md`). Version 1 has only the four projections;
/// the others exist only under the version-2 options that need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatrixKind {
    /// γ of the attention branch's pre-norm, `[1][D]` (with a norm).
    Norm1Scale,
    /// β of the attention branch's pre-norm, `[1][D]` (layer norm only).
    Norm1Shift,
    /// The causal depthwise convolution, `[K][D]` (with `conv_taps` ≥ 2).
    Conv,
    /// Wq, `[D][Hq·d]`: frames to queries.
    Query,
    /// Wk, `[D][Hkv·d]`: frames to keys.
    Key,
    /// Wv, `[D][Hkv·d]`: frames to values.
    Value,
    /// Wo, `[Hq·d][D]`: attention output back to the residual stream.
    Output,
    /// γ of the MLP's pre-norm, `[1][D]` (MLP and a norm).
    Norm2Scale,
    /// β of the MLP's pre-norm, `[1][D]` (MLP and layer norm).
    Norm2Shift,
    /// W1, `[D][H]` (with an MLP).
    Up,
    /// b1, `[1][H]` (with an MLP).
    UpBias,
    /// W2, `[H][D]` (with an MLP).
    Down,
    /// b2, `[1][D]` (with an MLP).
    DownBias,
}

impl MatrixKind {
    /// Every kind in body order; a layout skips the ones its options lack.
    pub const BODY_ORDER: [Self; 13] = [
        Self::Norm1Scale,
        Self::Norm1Shift,
        Self::Conv,
        Self::Query,
        Self::Key,
        Self::Value,
        Self::Output,
        Self::Norm2Scale,
        Self::Norm2Shift,
        Self::Up,
        Self::UpBias,
        Self::Down,
        Self::DownBias,
    ];

    /// The four attention projections (Wq, Wk, Wv, Wo): every version has
    /// them.
    pub const PROJECTIONS: [Self; 4] = [Self::Query, Self::Key, Self::Value, Self::Output];

    /// Position in [`MatrixKind::BODY_ORDER`].
    const fn index(self) -> usize {
        self as usize
    }
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
    options: ModelOptions,
    layer_stride: usize,
    weight_count: usize,
    /// Where each kind starts inside a layer, indexed by
    /// [`MatrixKind::index`]. Why stored: a streaming push looks up every
    /// matrix of every layer, and summing the sizes before it each time
    /// cost a tenth of a push (measured with the model bench's stream row).
    kind_offsets: [usize; MatrixKind::BODY_ORDER.len()],
}

/// `(rows, cols)` of `kind` in a layer of this geometry, `(0, 0)` when the
/// options leave it out. Products are unchecked: [`Layout::new`] checks
/// them once before any layout exists.
const fn part_shape(
    kind: MatrixKind,
    d: usize,
    q_width: usize,
    kv_width: usize,
    options: ModelOptions,
) -> (usize, usize) {
    let norm = !matches!(options.norm, Norm::None);
    let shift = matches!(options.norm, Norm::Layer);
    let mlp = options.mlp_hidden > 0;
    let h = options.mlp_hidden;
    let present = match kind {
        MatrixKind::Norm1Scale => norm,
        MatrixKind::Norm1Shift => shift,
        MatrixKind::Conv => options.conv_taps >= 2,
        MatrixKind::Query | MatrixKind::Key | MatrixKind::Value | MatrixKind::Output => true,
        MatrixKind::Norm2Scale => mlp && norm,
        MatrixKind::Norm2Shift => mlp && shift,
        MatrixKind::Up | MatrixKind::UpBias | MatrixKind::Down | MatrixKind::DownBias => mlp,
    };
    if !present {
        return (0, 0);
    }
    match kind {
        MatrixKind::Norm1Scale
        | MatrixKind::Norm1Shift
        | MatrixKind::Norm2Scale
        | MatrixKind::Norm2Shift
        | MatrixKind::DownBias => (1, d),
        MatrixKind::Conv => (options.conv_taps, d),
        MatrixKind::Query => (d, q_width),
        MatrixKind::Key | MatrixKind::Value => (d, kv_width),
        MatrixKind::Output => (q_width, d),
        MatrixKind::Up => (d, h),
        MatrixKind::UpBias => (1, h),
        MatrixKind::Down => (h, d),
    }
}

/// `a · b` then `+ c`, or `None` on overflow (const-fn `?` helper).
const fn mul_add(a: usize, b: usize, c: usize) -> Option<usize> {
    match a.checked_mul(b) {
        Some(p) => p.checked_add(c),
        None => None,
    }
}

impl Layout {
    /// Computes the layout of a shape that has passed
    /// [`ModelShape::validate`], with every product overflow-checked.
    pub(crate) const fn new(shape: &ModelShape) -> Result<Self, ShapeError> {
        let d = shape.input_dim;
        let options = shape.options;
        let Some(q_width) = shape.n_q_heads.checked_mul(shape.head_dim) else {
            return Err(ShapeError::SizeOverflow);
        };
        let Some(kv_width) = shape.n_kv_heads.checked_mul(shape.head_dim) else {
            return Err(ShapeError::SizeOverflow);
        };
        // `?` is not available in const fn; each `let Some(..) else` is one
        // checked step of the weight count.
        let mut layer_stride = 0_usize;
        let mut kind_offsets = [0_usize; MatrixKind::BODY_ORDER.len()];
        let mut i = 0;
        while i < MatrixKind::BODY_ORDER.len() {
            kind_offsets[i] = layer_stride;
            let (rows, cols) = part_shape(MatrixKind::BODY_ORDER[i], d, q_width, kv_width, options);
            let Some(sum) = mul_add(rows, cols, layer_stride) else {
                return Err(ShapeError::SizeOverflow);
            };
            layer_stride = sum;
            i += 1;
        }
        let final_norm = match options.norm {
            Norm::None => 0,
            Norm::Rms => d,
            Norm::Layer => 2 * d,
        };
        let Some(all_layers) = layer_stride.checked_mul(shape.n_layers) else {
            return Err(ShapeError::SizeOverflow);
        };
        let Some(tail) = mul_add(d, shape.n_classes, final_norm) else {
            return Err(ShapeError::SizeOverflow);
        };
        let Some(weight_count) = all_layers.checked_add(tail) else {
            return Err(ShapeError::SizeOverflow);
        };
        Ok(Self {
            input_dim: d,
            q_width,
            kv_width,
            n_layers: shape.n_layers,
            n_classes: shape.n_classes,
            options,
            layer_stride,
            weight_count,
            kind_offsets,
        })
    }

    /// Total weights in the body.
    #[must_use]
    pub const fn weight_count(&self) -> usize {
        self.weight_count
    }

    /// Weights per layer (every present kind's size).
    #[must_use]
    pub const fn layer_stride(&self) -> usize {
        self.layer_stride
    }

    /// Layers in the model.
    #[must_use]
    pub const fn n_layers(&self) -> usize {
        self.n_layers
    }

    /// The version-2 options the layout was made for.
    #[must_use]
    pub const fn options(&self) -> ModelOptions {
        self.options
    }

    /// The span of `kind` in `layer`, or `None` past the last layer or when
    /// the options leave the kind out.
    #[must_use]
    pub const fn matrix(&self, layer: usize, kind: MatrixKind) -> Option<MatrixSpan> {
        if layer >= self.n_layers {
            return None;
        }
        let span = self.matrix_in_range(layer, kind);
        if span.rows == 0 { None } else { Some(span) }
    }

    /// The span of `kind` in a layer below `n_layers`; then every offset is
    /// below `weight_count`, so nothing here can overflow. A kind the
    /// options leave out has zero rows. For a layer past the last the span
    /// lies outside the body (or the arithmetic wraps in a release build):
    /// callers that cannot promise the bound use [`Layout::matrix`].
    pub const fn matrix_in_range(&self, layer: usize, kind: MatrixKind) -> MatrixSpan {
        let offset = layer * self.layer_stride + self.kind_offsets[kind.index()];
        let (rows, cols) = self.shape_of(kind);
        MatrixSpan { offset, rows, cols }
    }

    const fn shape_of(&self, kind: MatrixKind) -> (usize, usize) {
        part_shape(
            kind,
            self.input_dim,
            self.q_width,
            self.kv_width,
            self.options,
        )
    }

    /// The final norm's γ (`shift == false`) or β, `[1][D]`, after the last
    /// layer; `None` without a norm (and β without a layer norm).
    #[must_use]
    pub const fn final_norm(&self, shift: bool) -> Option<MatrixSpan> {
        let base = self.n_layers * self.layer_stride;
        let d = self.input_dim;
        match (self.options.norm, shift) {
            (Norm::None, _) | (Norm::Rms, true) => None,
            (_, false) => Some(MatrixSpan {
                offset: base,
                rows: 1,
                cols: d,
            }),
            (Norm::Layer, true) => Some(MatrixSpan {
                offset: base + d,
                rows: 1,
                cols: d,
            }),
        }
    }

    /// The span of the classifier Wc, `[D][C]`, the last matrix.
    #[must_use]
    pub const fn classifier(&self) -> MatrixSpan {
        let rows = self.input_dim;
        MatrixSpan {
            offset: self.weight_count - rows * self.n_classes,
            rows,
            cols: self.n_classes,
        }
    }

    /// Every matrix in body order with its span: each layer's present
    /// kinds, then the final norm (if any), then Wc.
    pub fn parts(&self) -> impl Iterator<Item = (crate::WeightMatrix, MatrixSpan)> + use<> {
        let layout = *self;
        let layers = (0..self.n_layers).flat_map(move |layer| {
            MatrixKind::BODY_ORDER.into_iter().filter_map(move |kind| {
                Some((
                    crate::WeightMatrix::Layer { layer, kind },
                    layout.matrix(layer, kind)?,
                ))
            })
        });
        let final_norm = [false, true].into_iter().filter_map(move |shift| {
            let matrix = if shift {
                crate::WeightMatrix::FinalNormShift
            } else {
                crate::WeightMatrix::FinalNormScale
            };
            Some((matrix, layout.final_norm(shift)?))
        });
        layers
            .chain(final_norm)
            .chain([(crate::WeightMatrix::Classifier, layout.classifier())])
    }

    /// Every matrix span in body order (see [`Layout::parts`]).
    pub fn spans(&self) -> impl Iterator<Item = MatrixSpan> + use<> {
        self.parts().map(|(_, span)| span)
    }
}
