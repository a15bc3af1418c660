//! The model's shape: the six numbers that fix every matrix's size.
//!
//! Why a type of its own: the `.rvne` header, a safetensors file and a
//! trainer's configuration all declare a shape, and the rules for a valid
//! one (`docs/model.md`) must be checked the same way whichever of them it
//! came from.

use crate::layout::Layout;

/// The per-layer normalisation of model version 2 (`docs/model.md`,
/// "Version 2: options").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Norm {
    /// No normalisation (version 1).
    #[default]
    None,
    /// LayerNorm: centre, scale to unit variance, then `γ`, `β`.
    Layer,
    /// RMSNorm: scale to unit root mean square, then `γ`.
    Rms,
}

/// The options of model version 2; all off is version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ModelOptions {
    /// Pre-norms before each branch and the classifier.
    pub norm: Norm,
    /// Taps of the causal depthwise convolution on the attention branch's
    /// input; 0 is off, otherwise at least 2.
    pub conv_taps: usize,
    /// Hidden width of the per-layer ReLU MLP; 0 is off.
    pub mlp_hidden: usize,
    /// Input centring's rate: each frame minus a running mean of the
    /// frames so far with weight `2^−centre_shift` on the newest; 0 is
    /// off, otherwise at most [`ModelOptions::MAX_SHIFT`].
    pub centre_shift: usize,
    /// The centred input's gain, `2^centre_gain_log2`; 0 (gain 1) when
    /// centring is off, at most [`ModelOptions::MAX_GAIN_LOG2`].
    pub centre_gain_log2: usize,
    /// Pooled readout's rate: the classifier reads a running mean of
    /// every frame's final row with weight `2^−pool_shift` on the newest;
    /// 0 reads the last frame's row alone (version 1), otherwise at most
    /// [`ModelOptions::MAX_SHIFT`].
    pub pool_shift: usize,
}

impl ModelOptions {
    /// Every option off: the version-1 model.
    pub const V1: Self = Self {
        norm: Norm::None,
        conv_taps: 0,
        mlp_hidden: 0,
        centre_shift: 0,
        centre_gain_log2: 0,
        pool_shift: 0,
    };

    /// The largest rate shift: `1 − 2^−24` is the last weight below 1
    /// that an f32 holds, so a larger shift would freeze the mean.
    pub const MAX_SHIFT: usize = 24;

    /// The largest gain exponent (a gain of 32,768).
    pub const MAX_GAIN_LOG2: usize = 15;

    /// Whether every option is off (the model is version 1).
    #[must_use]
    pub const fn is_v1(&self) -> bool {
        matches!(self.norm, Norm::None)
            && self.conv_taps == 0
            && self.mlp_hidden == 0
            && self.centre_shift == 0
            && self.centre_gain_log2 == 0
            && self.pool_shift == 0
    }

    /// The options' rules of [`ModelShape::validate`], in order:
    /// `conv_taps != 1`; `centre_shift <= 24`; `centre_gain_log2 <= 15`,
    /// and 0 when `centre_shift` is; `pool_shift <= 24`. Why public: a
    /// trainer's configuration checks its options by these same rules
    /// before it has a whole shape.
    ///
    /// # Errors
    /// [`ShapeError::ConvTaps`] or [`ShapeError::OptionRange`] naming the
    /// first option that breaks its rule.
    pub const fn validate(&self) -> Result<(), ShapeError> {
        if self.conv_taps == 1 {
            return Err(ShapeError::ConvTaps);
        }
        if self.centre_shift > Self::MAX_SHIFT {
            return Err(ShapeError::OptionRange {
                field: "centre_shift",
                value: self.centre_shift,
                rule: "0 turns centring off; otherwise 1 to 24",
            });
        }
        if self.centre_gain_log2 > Self::MAX_GAIN_LOG2 {
            return Err(ShapeError::OptionRange {
                field: "centre_gain_log2",
                value: self.centre_gain_log2,
                rule: "the gain is 2^0 to 2^15",
            });
        }
        if self.centre_shift == 0 && self.centre_gain_log2 != 0 {
            return Err(ShapeError::OptionRange {
                field: "centre_gain_log2",
                value: self.centre_gain_log2,
                rule: "a gain needs centring (centre_shift 0 is off)",
            });
        }
        if self.pool_shift > Self::MAX_SHIFT {
            return Err(ShapeError::OptionRange {
                field: "pool_shift",
                value: self.pool_shift,
                rule: "0 reads the last frame; otherwise 1 to 24",
            });
        }
        Ok(())
    }
}

/// `D`, `Hq`, `Hkv`, `d`, `L`, `C` of `docs/model.md`, and the version-2
/// options.
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
    /// Version-2 options ([`ModelOptions::V1`]: none).
    pub options: ModelOptions,
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
    /// A convolution of one tap: it would be a per-feature scale, not a
    /// view of past frames; 0 means off.
    #[error("conv_taps is 1; use 0 (off) or at least 2")]
    ConvTaps,
    /// A centring or pooling option outside its range: a shift above 24,
    /// a gain exponent above 15, or a gain without centring.
    #[error("{field} is {value}; {rule}")]
    OptionRange {
        /// The option (`centre_shift`, `centre_gain_log2`, `pool_shift`).
        field: &'static str,
        /// Its value.
        value: usize,
        /// What it must be.
        rule: &'static str,
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
        options: ModelOptions::V1,
    };

    /// Checks the rules of `docs/model.md`, in this order: non-zero
    /// `input_dim`, `n_q_heads`, `n_kv_heads`, `head_dim`; `n_q_heads %
    /// n_kv_heads == 0`; `n_layers >= 1`; `n_classes >= 2`; `conv_taps !=
    /// 1`; `centre_shift <= 24`; `centre_gain_log2 <= 15`, and 0 when
    /// `centre_shift` is; `pool_shift <= 24`.
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
        self.options.validate()
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
