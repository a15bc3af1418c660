//! The model's weights as one in-memory type, whatever carried them.
//!
//! Why: the `.rvne` format, safetensors files and the trainer each hold
//! the same numbers in their own container. They all convert to and from
//! [`ModelWeights`] — a shape plus every weight as `f32` in the body order
//! of `docs/model.md` — and the model is built from this type alone, so
//! the core never depends on a container format and a new one is one more
//! adapter, not a change to the model.

use alloc::vec;
use alloc::vec::Vec;

use crate::layout::{Layout, MatrixKind, MatrixSpan};
use crate::rng::XorShift64Star;
use crate::shape::{ModelShape, ShapeError};
use crate::{NonFiniteValue, WeightMatrix};

/// Why weights could not be assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WeightsError {
    /// The shape is not a valid model.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// The number of weights is not the shape's.
    #[error("{actual} weights given; the shape has {expected}")]
    Count {
        /// Weights the shape has.
        expected: usize,
        /// Weights given.
        actual: usize,
    },
}

/// A valid shape and its weights in body order (`docs/model.md`).
///
/// **Invariant:** `values.len()` is the shape's weight count and the shape
/// is valid, so every matrix accessor is in bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelWeights {
    shape: ModelShape,
    layout: Layout,
    values: Vec<f32>,
}

impl ModelWeights {
    /// Weights `values` (body order) for `shape`.
    ///
    /// # Errors
    /// [`WeightsError::Shape`] for an invalid shape, [`WeightsError::Count`]
    /// when `values` does not hold exactly the shape's weight count.
    pub fn new(shape: ModelShape, values: Vec<f32>) -> Result<Self, WeightsError> {
        let layout = shape.layout()?;
        if values.len() != layout.weight_count() {
            return Err(WeightsError::Count {
                expected: layout.weight_count(),
                actual: values.len(),
            });
        }
        Ok(Self {
            shape,
            layout,
            values,
        })
    }

    /// Deterministic random weights: the same `shape` and `seed` give the
    /// same bits on every run and platform.
    ///
    /// Matrices that map one width to another (Wq, Wk, Wv, Wo, Wc and the
    /// MLP's W1, W2) are drawn in body order from [`XorShift64Star`] seeded
    /// with `seed`, each weight uniform in `[-s, s)` with
    /// `s = 1/sqrt(fan_in)`, where `fan_in` is the matrix's row count (its
    /// input width). That keeps every projection's output at roughly the
    /// scale of its input (the variance of each `y[c]` is
    /// `|x|²/(3·fan_in)`), so a random model's logits are finite and small;
    /// with the default AETHER shape `s` is 0.25 for Wq/Wk/Wv/Wc and about
    /// 0.088 for Wo. The scale is computed in f64 (correctly rounded
    /// `sqrt`) and rounded once to f32. The version-2 parts start neutral
    /// and draw nothing: norm scales 1, shifts and biases 0, the
    /// convolution the identity (tap 0 is 1, older taps 0). So a version-1
    /// shape draws exactly the sequence it always has.
    ///
    /// # Errors
    /// A [`ModelShape::layout`] error.
    pub fn random(shape: ModelShape, seed: u64) -> Result<Self, ShapeError> {
        let layout = shape.layout()?;
        let mut rng = XorShift64Star::new(seed);
        let mut values = Vec::with_capacity(layout.weight_count());
        for (matrix, span) in layout.parts() {
            match matrix {
                WeightMatrix::FinalNormScale
                | WeightMatrix::Layer {
                    kind: MatrixKind::Norm1Scale | MatrixKind::Norm2Scale,
                    ..
                } => values.extend((0..span.len()).map(|_| 1.0)),
                WeightMatrix::Layer {
                    kind: MatrixKind::Conv,
                    ..
                } => values.extend((0..span.len()).map(|i| if i < span.cols { 1.0 } else { 0.0 })),
                WeightMatrix::FinalNormShift
                | WeightMatrix::Layer {
                    kind:
                        MatrixKind::Norm1Shift
                        | MatrixKind::Norm2Shift
                        | MatrixKind::UpBias
                        | MatrixKind::DownBias,
                    ..
                } => values.extend((0..span.len()).map(|_| 0.0)),
                WeightMatrix::Classifier
                | WeightMatrix::Layer {
                    kind:
                        MatrixKind::Query
                        | MatrixKind::Key
                        | MatrixKind::Value
                        | MatrixKind::Output
                        | MatrixKind::Up
                        | MatrixKind::Down,
                    ..
                } => {
                    let scale = (1.0 / libm::sqrt(span.rows as f64)) as f32;
                    values.extend((0..span.len()).map(|_| rng.next_symmetric(scale)));
                }
            }
        }
        Ok(Self {
            shape,
            layout,
            values,
        })
    }

    /// All-zero weights of `shape`, to be filled through
    /// [`values_mut`](Self::values_mut).
    ///
    /// # Errors
    /// A [`ModelShape::layout`] error.
    pub fn zeros(shape: ModelShape) -> Result<Self, ShapeError> {
        let layout = shape.layout()?;
        Ok(Self {
            shape,
            layout,
            values: vec![0.0; layout.weight_count()],
        })
    }

    /// The shape.
    #[must_use]
    pub const fn shape(&self) -> ModelShape {
        self.shape
    }

    /// Where each matrix sits in [`values`](Self::values).
    #[must_use]
    pub const fn layout(&self) -> Layout {
        self.layout
    }

    /// Every weight, in body order.
    #[must_use]
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Every weight, in body order, for writing in place (the length is
    /// fixed, so the invariant holds).
    pub fn values_mut(&mut self) -> &mut [f32] {
        &mut self.values
    }

    /// Gives up the weights, in body order.
    #[must_use]
    pub fn into_values(self) -> Vec<f32> {
        self.values
    }

    /// Where `matrix` sits, or `None` for a layer past the last.
    #[must_use]
    pub const fn span(&self, matrix: WeightMatrix) -> Option<MatrixSpan> {
        match matrix {
            WeightMatrix::Layer { layer, kind } => self.layout.matrix(layer, kind),
            WeightMatrix::FinalNormScale => self.layout.final_norm(false),
            WeightMatrix::FinalNormShift => self.layout.final_norm(true),
            WeightMatrix::Classifier => Some(self.layout.classifier()),
        }
    }

    /// The weights of `matrix`, row-major `[rows][cols]`, or `None` for a
    /// layer past the last.
    #[must_use]
    pub fn matrix(&self, matrix: WeightMatrix) -> Option<&[f32]> {
        self.span(matrix).map(|span| &self.values[span.range()])
    }

    /// The first weight that is NaN or infinite: its body index, matrix,
    /// row, column and what it is.
    #[must_use]
    pub fn first_non_finite(&self) -> Option<(usize, WeightMatrix, usize, usize, NonFiniteValue)> {
        let index = self.values.iter().position(|v| !v.is_finite())?;
        let (matrix, row, col) = WeightMatrix::locate(&self.layout, index)?;
        Some((
            index,
            matrix,
            row,
            col,
            NonFiniteValue::of(self.values[index])?,
        ))
    }
}
