//! The fixed part of the wire format: constants, element type and header.
//!
//! Kept apart from the parser so the writer and the parser cannot disagree
//! on a single offset: both encode and decode the 24-byte header through
//! [`Header::encode`] and [`Header::decode_fields`] below, and validate it
//! through [`Header::validate`].

use crate::error::RvneError;
use aether_model::{Layout, ModelOptions, ModelShape, Norm, ShapeError};

/// The magic number at offset 0, a little-endian `u32`
/// (`docs/rvne-format.md`).
///
/// It spells "RVNE" when the `u32` is read most-significant byte first;
/// because the field is little-endian, the four bytes on disk are
/// `45 4E 56 52` (ASCII "ENVR"), exactly as the prototype wrote them.
pub const MAGIC: u32 = 0x5256_4E45;

/// Format version 1: the version-1 model (`docs/model.md`). A model with
/// every option off is always written as version 1, bit for bit.
pub const VERSION: u16 = 1;

/// Format version 2: a version-1 header plus an 8-byte options block
/// (`docs/rvne-format.md`, "Version 2").
pub const VERSION_2: u16 = 2;

/// Bytes of fixed header before the weights in version 1 (and the part of
/// every header that all versions share).
pub const HEADER_LEN: usize = 24;

/// Bytes of the version-2 options block after the shared header.
pub const OPTIONS_LEN: usize = 8;

/// Bytes of header before the weights in version 2.
pub const HEADER_LEN_V2: usize = HEADER_LEN + OPTIONS_LEN;

/// Bytes of CRC after the weights.
pub const FOOTER_LEN: usize = 4;

/// The shortest possible blob: header plus CRC, no weights.
pub const MIN_BLOB_LEN: usize = HEADER_LEN + FOOTER_LEN;

/// The longest possible blob: `weights_len` is a `u32`.
pub const MAX_BLOB_LEN: u64 = MIN_BLOB_LEN as u64 + u32::MAX as u64;

/// Flag bit 0: the weights are little-endian IEEE binary16, else binary32.
pub const FLAG_F16: u8 = 0x01;

/// Flag bits 1–7: reserved for future optional fields; must be zero.
pub const RESERVED_FLAG_BITS: u8 = !FLAG_F16;

/// How each weight is stored in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementType {
    /// Little-endian IEEE 754 binary32 (4 bytes per weight).
    F32,
    /// Little-endian IEEE 754 binary16 (2 bytes per weight); read back as
    /// `f32` exactly (every f16 is an f32).
    F16,
}

impl ElementType {
    /// Bytes per weight.
    #[must_use]
    pub const fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
        }
    }

    /// The element type a (reserved-bit-free) flags byte selects.
    const fn from_flags(flags: u8) -> Self {
        if flags & FLAG_F16 == 0 {
            Self::F32
        } else {
            Self::F16
        }
    }

    /// The flags byte that selects this element type.
    #[cfg(feature = "alloc")]
    const fn flags(self) -> u8 {
        match self {
            Self::F32 => 0,
            Self::F16 => FLAG_F16,
        }
    }
}

/// The model shape and element type a blob declares (`docs/model.md`,
/// `docs/rvne-format.md`).
///
/// Fields are `u16` as on the wire, so no `Header` can hold a value the
/// format cannot carry. A `Header` may be invalid (say, `n_layers == 0`);
/// [`Header::validate`] and everything that writes or parses a blob reject
/// such headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// D: features per input frame.
    pub input_dim: u16,
    /// Hq: query heads.
    pub n_q_heads: u16,
    /// Hkv: key/value heads; divides `n_q_heads`.
    pub n_kv_heads: u16,
    /// d: features per head.
    pub head_dim: u16,
    /// L: attention layers.
    pub n_layers: u16,
    /// C: output classes.
    pub n_classes: u16,
    /// How the weights are stored.
    pub element_type: ElementType,
    /// Model version 2's options; all off ([`ModelOptions::V1`]) means a
    /// version-1 blob.
    pub options: ModelOptions,
}

impl Header {
    /// The default AETHER shape ([`ModelShape::DEFAULT_AETHER`],
    /// `docs/model.md`): D 16, Hq 4, Hkv 1 (MQA), d 32, L 2, C 4 — 10,304
    /// weights, a 41,244-byte blob in f32.
    #[must_use]
    pub const fn default_aether(element_type: ElementType) -> Self {
        // Every field of the default shape is below 2^16 (the casts are
        // exact; `default_aether_is_the_model_default` checks it).
        let shape = ModelShape::DEFAULT_AETHER;
        Self {
            input_dim: shape.input_dim as u16,
            n_q_heads: shape.n_q_heads as u16,
            n_kv_heads: shape.n_kv_heads as u16,
            head_dim: shape.head_dim as u16,
            n_layers: shape.n_layers as u16,
            n_classes: shape.n_classes as u16,
            element_type,
            options: ModelOptions::V1,
        }
    }

    /// The format version this header is written as: 1 when every option
    /// is off, else 2.
    #[must_use]
    pub const fn version(&self) -> u16 {
        if self.options.is_v1() {
            VERSION
        } else {
            VERSION_2
        }
    }

    /// Bytes before the weights: 24 in version 1, 32 in version 2.
    #[must_use]
    pub const fn header_len(&self) -> usize {
        if self.options.is_v1() {
            HEADER_LEN
        } else {
            HEADER_LEN_V2
        }
    }

    /// The model shape the header declares.
    #[must_use]
    pub const fn shape(&self) -> ModelShape {
        ModelShape {
            input_dim: self.input_dim as usize,
            n_q_heads: self.n_q_heads as usize,
            n_kv_heads: self.n_kv_heads as usize,
            head_dim: self.head_dim as usize,
            n_layers: self.n_layers as usize,
            n_classes: self.n_classes as usize,
            options: self.options,
        }
    }

    /// The header for `shape` with weights stored as `element_type`.
    ///
    /// # Errors
    /// [`RvneError::FieldTooLarge`] naming the first dimension above the
    /// format's fields (`conv_taps` is a `u8`, the others `u16`).
    pub fn from_shape(shape: ModelShape, element_type: ElementType) -> Result<Self, RvneError> {
        let field = |name: &'static str, value: usize| {
            u16::try_from(value).map_err(|_| RvneError::FieldTooLarge { field: name, value })
        };
        Ok(Self {
            input_dim: field("input_dim", shape.input_dim)?,
            n_q_heads: field("n_q_heads", shape.n_q_heads)?,
            n_kv_heads: field("n_kv_heads", shape.n_kv_heads)?,
            head_dim: field("head_dim", shape.head_dim)?,
            n_layers: field("n_layers", shape.n_layers)?,
            n_classes: field("n_classes", shape.n_classes)?,
            element_type,
            options: {
                if u8::try_from(shape.options.conv_taps).is_err() {
                    return Err(RvneError::FieldTooLarge {
                        field: "conv_taps",
                        value: shape.options.conv_taps,
                    });
                }
                field("mlp_hidden", shape.options.mlp_hidden)?;
                for (name, value) in [
                    ("centre_shift", shape.options.centre_shift),
                    ("centre_gain_log2", shape.options.centre_gain_log2),
                    ("pool_shift", shape.options.pool_shift),
                ] {
                    if u8::try_from(value).is_err() {
                        return Err(RvneError::FieldTooLarge { field: name, value });
                    }
                }
                shape.options
            },
        })
    }

    /// Checks the header rules (check 7 of `docs/rvne-format.md`): the
    /// model shape's own rules ([`ModelShape::validate`]), in its order:
    /// non-zero dimensions (`input_dim`, `n_q_heads`, `n_kv_heads`,
    /// `head_dim`, in that order), `n_q_heads % n_kv_heads == 0`,
    /// `n_layers >= 1`, `n_classes >= 2`.
    ///
    /// # Errors
    ///
    /// [`RvneError::ZeroDimension`] naming the first zero field,
    /// [`RvneError::GroupRatio`], [`RvneError::NoLayers`] or
    /// [`RvneError::TooFewClasses`], whichever rule fails first.
    pub const fn validate(&self) -> Result<(), RvneError> {
        match self.shape().validate() {
            Ok(()) => Ok(()),
            Err(e) => Err(shape_error(e, self)),
        }
    }

    /// Validates the header and computes where each matrix sits in the body.
    ///
    /// # Errors
    ///
    /// Any [`Header::validate`] error, or [`RvneError::SizeOverflow`] when
    /// the weight count does not fit in `usize`.
    pub const fn layout(&self) -> Result<Layout, RvneError> {
        match self.shape().layout() {
            Ok(layout) => Ok(layout),
            Err(e) => Err(shape_error(e, self)),
        }
    }

    /// Number of weights the shape has (`docs/model.md`).
    ///
    /// # Errors
    ///
    /// As [`Header::layout`].
    pub const fn weight_count(&self) -> Result<usize, RvneError> {
        match self.layout() {
            Ok(layout) => Ok(layout.weight_count()),
            Err(e) => Err(e),
        }
    }

    /// Bytes of weights the shape has in this element type: the value
    /// `weights_len` must hold.
    ///
    /// # Errors
    ///
    /// As [`Header::layout`]; [`RvneError::SizeOverflow`] also when the byte
    /// count does not fit in `usize`.
    pub const fn weights_len(&self) -> Result<usize, RvneError> {
        match self.weight_count() {
            Ok(count) => match count.checked_mul(self.element_type.size()) {
                Some(bytes) => Ok(bytes),
                None => Err(RvneError::SizeOverflow),
            },
            Err(e) => Err(e),
        }
    }

    /// Total blob length for this header: 28 + `weights_len`.
    ///
    /// # Errors
    ///
    /// As [`Header::weights_len`]; [`RvneError::SizeOverflow`] also when
    /// `weights_len` does not fit the `u32` wire field or the total does not
    /// fit in `usize`.
    pub const fn blob_len(&self) -> Result<usize, RvneError> {
        match self.weights_len() {
            Ok(bytes) => {
                if bytes > u32::MAX as usize {
                    return Err(RvneError::SizeOverflow);
                }
                match bytes.checked_add(self.header_len() + FOOTER_LEN) {
                    Some(total) => Ok(total),
                    None => Err(RvneError::SizeOverflow),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The header bytes for this header and a `weights_len`: the first
    /// [`Header::header_len`] bytes of the result (24 in version 1, 32 in
    /// version 2, whose options block follows the shared 24 bytes).
    #[cfg(feature = "alloc")]
    pub(crate) fn encode(&self, weights_len: u32) -> [u8; HEADER_LEN_V2] {
        let mut out = [0_u8; HEADER_LEN_V2];
        out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[4..6].copy_from_slice(&self.version().to_le_bytes());
        out[6] = self.element_type.flags();
        out[7] = 0;
        out[8..10].copy_from_slice(&self.input_dim.to_le_bytes());
        out[10..12].copy_from_slice(&self.n_q_heads.to_le_bytes());
        out[12..14].copy_from_slice(&self.n_kv_heads.to_le_bytes());
        out[14..16].copy_from_slice(&self.head_dim.to_le_bytes());
        out[16..18].copy_from_slice(&self.n_layers.to_le_bytes());
        out[18..20].copy_from_slice(&self.n_classes.to_le_bytes());
        out[20..24].copy_from_slice(&weights_len.to_le_bytes());
        if !self.options.is_v1() {
            out[24] = norm_code(self.options.norm);
            // `from_shape` and `validate` keep both within their fields.
            out[25] = u8::try_from(self.options.conv_taps).unwrap_or(u8::MAX);
            out[26..28].copy_from_slice(
                &u16::try_from(self.options.mlp_hidden)
                    .unwrap_or(u16::MAX)
                    .to_le_bytes(),
            );
            // `from_shape` keeps these within a byte too.
            out[28] = u8::try_from(self.options.centre_shift).unwrap_or(u8::MAX);
            out[29] = u8::try_from(self.options.centre_gain_log2).unwrap_or(u8::MAX);
            out[30] = u8::try_from(self.options.pool_shift).unwrap_or(u8::MAX);
        }
        out
    }

    /// Reads the version-2 options block (8 bytes after the shared header)
    /// of a blob whose length has been checked.
    ///
    /// # Errors
    /// [`RvneError::BadNorm`] for a norm code other than 0, 1, 2;
    /// [`RvneError::ReservedOptionBytes`] when byte 31 is not zero. The
    /// ranges of bytes 25–30 are the shape's rules, checked after.
    pub(crate) const fn decode_options(
        block: &[u8; OPTIONS_LEN],
    ) -> Result<ModelOptions, RvneError> {
        let norm = match block[0] {
            0 => Norm::None,
            1 => Norm::Layer,
            2 => Norm::Rms,
            code => return Err(RvneError::BadNorm { code }),
        };
        if block[7] != 0 {
            return Err(RvneError::ReservedOptionBytes);
        }
        Ok(ModelOptions {
            norm,
            conv_taps: block[1] as usize,
            mlp_hidden: u16::from_le_bytes([block[2], block[3]]) as usize,
            centre_shift: block[4] as usize,
            centre_gain_log2: block[5] as usize,
            pool_shift: block[6] as usize,
        })
    }

    /// Reads the shape fields of a header whose magic, version and
    /// reserved bits have already been checked. Does not validate.
    pub(crate) const fn decode_fields(bytes: &[u8; HEADER_LEN]) -> Self {
        Self {
            input_dim: read_u16(bytes, 8),
            n_q_heads: read_u16(bytes, 10),
            n_kv_heads: read_u16(bytes, 12),
            head_dim: read_u16(bytes, 14),
            n_layers: read_u16(bytes, 16),
            n_classes: read_u16(bytes, 18),
            element_type: ElementType::from_flags(bytes[6]),
            options: ModelOptions::V1,
        }
    }
}

/// The options block's norm code: 0 none, 1 layer norm, 2 RMS norm.
#[cfg(feature = "alloc")]
const fn norm_code(norm: Norm) -> u8 {
    match norm {
        Norm::None => 0,
        Norm::Layer => 1,
        Norm::Rms => 2,
    }
}

/// The format's error for a shape rule `header` breaks. The shape's
/// fields are the header's widened, so the header's own `u16` values are
/// the ones to report.
const fn shape_error(error: ShapeError, header: &Header) -> RvneError {
    match error {
        ShapeError::ZeroDimension { field } => RvneError::ZeroDimension { field },
        ShapeError::GroupRatio { .. } => RvneError::GroupRatio {
            n_q_heads: header.n_q_heads,
            n_kv_heads: header.n_kv_heads,
        },
        ShapeError::NoLayers => RvneError::NoLayers,
        ShapeError::TooFewClasses { .. } => RvneError::TooFewClasses {
            n_classes: header.n_classes,
        },
        ShapeError::ConvTaps => RvneError::ConvTaps,
        ShapeError::OptionRange { field, value, .. } => RvneError::OptionRange { field, value },
        ShapeError::SizeOverflow => RvneError::SizeOverflow,
    }
}

/// Little-endian `u16` at `at` in the fixed-size header.
pub(crate) const fn read_u16(bytes: &[u8; HEADER_LEN], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// Little-endian `u32` at `at` in the fixed-size header.
pub(crate) const fn read_u32(bytes: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}
