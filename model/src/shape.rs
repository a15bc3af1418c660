//! The model's shape: the six numbers that fix every matrix's size.
//!
//! Why a type of its own: the `.rvne` header, a safetensors file and a
//! trainer's configuration all declare a shape, and the rules for a valid
//! one (`docs/model.md`) must be checked the same way whichever of them it
//! came from.

use crate::layout::Layout;

/// `D`, `Hq`, `Hkv`, `d`, `L`, `C` of `docs/model.md`.
///
/// A `ModelShape` may be invalid (say, `n_layers == 0`);
/// [`ModelShape::validate`] and everything that builds weights reject
/// such shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModelShape {
    /// D: values per input frame.
    pub input_dim: usize,
    /// Hq: query heads.
    pub n_q_heads: usize,
    /// Hkv: key/value heads; divides `n_q_heads`.
    pub n_kv_heads: usize,
    /// d: values per head.
    pub head_dim: usize,
    /// L: attention layers.
    pub n_layers: usize,
    /// C: output classes.
    pub n_classes: usize,
}

/// Why a shape is not a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// A dimension that must be at least 1 is 0.
    #[error("{field} is 0; it must be at least 1")]
    ZeroDimension {
        /// The field (`input_dim`, `n_q_heads`, `n_kv_heads`, `head_dim`).
        field: &'static str,
    },
    /// `n_q_heads` is not a multiple of `n_kv_heads`.
    #[error("n_q_heads {n_q_heads} is not a multiple of n_kv_heads {n_kv_heads}")]
    GroupRatio {
        /// Query heads.
        n_q_heads: usize,
        /// KV heads.
        n_kv_heads: usize,
    },
    /// `n_layers` is 0.
    #[error("n_layers is 0; a model has at least one layer")]
    NoLayers,
    /// Fewer than two classes.
    #[error("n_classes is {n_classes}; a classifier needs at least 2")]
    TooFewClasses {
        /// Classes declared.
        n_classes: usize,
    },
    /// The weight count does not fit in `usize`.
    #[error("the weight count overflows usize")]
    SizeOverflow,
}

impl ModelShape {
    /// The default AETHER shape (`docs/model.md`): D 16, Hq 4, Hkv 1
    /// (MQA), d 32, L 2, C 4 — 10,304 weights.
    pub const DEFAULT_AETHER: Self = Self {
        input_dim: 16,
        n_q_heads: 4,
        n_kv_heads: 1,
        head_dim: 32,
        n_layers: 2,
        n_classes: 4,
    };

    /// Checks the rules of `docs/model.md`, in this order: non-zero
    /// `input_dim`, `n_q_heads`, `n_kv_heads`, `head_dim`; `n_q_heads %
    /// n_kv_heads == 0`; `n_layers >= 1`; `n_classes >= 2`.
    ///
    /// # Errors
    /// The first rule that fails.
    pub const fn validate(&self) -> Result<(), ShapeError> {
        let dims = [
            ("input_dim", self.input_dim),
            ("n_q_heads", self.n_q_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("head_dim", self.head_dim),
        ];
        let mut i = 0;
        while i < dims.len() {
            if dims[i].1 == 0 {
                return Err(ShapeError::ZeroDimension { field: dims[i].0 });
            }
            i += 1;
        }
        if !self.n_q_heads.is_multiple_of(self.n_kv_heads) {
            return Err(ShapeError::GroupRatio {
                n_q_heads: self.n_q_heads,
                n_kv_heads: self.n_kv_heads,
            });
        }
        if self.n_layers == 0 {
            return Err(ShapeError::NoLayers);
        }
        if self.n_classes < 2 {
            return Err(ShapeError::TooFewClasses {
                n_classes: self.n_classes,
            });
        }
        Ok(())
    }

    /// Validates the shape and computes where each matrix sits in the
    /// body.
    ///
    /// # Errors
    /// A [`ModelShape::validate`] error, or [`ShapeError::SizeOverflow`].
    pub const fn layout(&self) -> Result<Layout, ShapeError> {
        if let Err(e) = self.validate() {
            return Err(e);
        }
        Layout::new(self)
    }

    /// Number of weights of the shape.
    ///
    /// # Errors
    /// As [`ModelShape::layout`].
    pub const fn weight_count(&self) -> Result<usize, ShapeError> {
        match self.layout() {
            Ok(layout) => Ok(layout.weight_count()),
            Err(e) => Err(e),
        }
    }
}
