//! Every way a `.rvne` blob, or a request against one, can be wrong.
//!
//! One variant per parse check (`docs/rvne-format.md`), declared in the
//! order the parser runs the checks, so a caller (the firmware's
//! `esp_err_t` table, the CLI's exit codes) can map each failure without
//! parsing a message. The error is `Copy` and allocation-free so the
//! `no_std` firmware can return it as is.

/// Why a blob was refused, or why a request against a valid blob failed.
///
/// The first thirteen variants are the parse checks, in the order
/// [`RvneView::parse`](crate::RvneView::parse) runs them; the rest come from
/// the writer and the accessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RvneError {
    /// Check 1: the blob is shorter than the 28 bytes of header plus CRC.
    #[error("blob is {len} bytes; a .rvne blob is at least 28 (24 header + 4 CRC)")]
    TooShort {
        /// Length of the input.
        len: usize,
    },
    /// Check 2: the first four bytes are not the magic `0x52564E45` (LE).
    #[error("bad magic 0x{found:08X}; a .rvne blob starts with 0x52564E45 (\"RVNE\")")]
    BadMagic {
        /// The little-endian `u32` found at offset 0.
        found: u32,
    },
    /// Check 3: the version is not 1 or 2 (or is 2 with every option off).
    /// Versions are a hard break: a reader
    /// never guesses at a layout it was not written for.
    #[error(
        "unsupported .rvne version {found}; this reader understands versions 1 and 2 (a \
         version-2 blob with every option off is written as version 1)"
    )]
    UnsupportedVersion {
        /// The version found at offset 4.
        found: u16,
    },
    /// Check 4a: a reserved flag bit (1–7) is set. Future optional fields
    /// hide behind these bits, so a reader that does not know one refuses.
    #[error("reserved flag bits set in flags 0b{flags:08b}; only bit 0 (f16) is defined")]
    ReservedFlagBits {
        /// The whole flags byte at offset 6.
        flags: u8,
    },
    /// Check 4b: the reserved byte at offset 7 is not zero.
    #[error("reserved byte at offset 7 is 0x{value:02X}; it must be 0")]
    ReservedByte {
        /// The byte found at offset 7.
        value: u8,
    },
    /// Check 5: the blob length is not `28 + weights_len` (version 1) or
    /// `36 + weights_len` (version 2).
    #[error(
        "header declares a {declared}-byte blob (header, weights_len and CRC) but it is {actual} \
         bytes"
    )]
    LengthMismatch {
        /// Header length + `weights_len` + 4, the total the header implies.
        declared: u64,
        /// Length of the input.
        actual: usize,
    },
    /// Check 6: the stored CRC-32/IEEE does not match the bytes before it.
    #[error("CRC mismatch: stored 0x{stored:08X}, computed 0x{computed:08X}")]
    CrcMismatch {
        /// The little-endian `u32` in the last four bytes.
        stored: u32,
        /// CRC-32/IEEE over every byte before it.
        computed: u32,
    },
    /// Check 7a: a dimension (`input_dim`, `n_q_heads`, `n_kv_heads`,
    /// `head_dim`) is zero.
    #[error("header field `{field}` is 0; every dimension must be at least 1")]
    ZeroDimension {
        /// The header field, as named in `docs/rvne-format.md`.
        field: &'static str,
    },
    /// Check 7b: `n_kv_heads` does not divide `n_q_heads`, so query heads
    /// cannot be grouped over key/value heads.
    #[error("`n_kv_heads` ({n_kv_heads}) must divide `n_q_heads` ({n_q_heads})")]
    GroupRatio {
        /// Query heads in the header.
        n_q_heads: u16,
        /// Key/value heads in the header.
        n_kv_heads: u16,
    },
    /// Check 7c: `n_layers` is zero.
    #[error("`n_layers` is 0; a model has at least one layer")]
    NoLayers,
    /// Check 7d: `n_classes` is below 2.
    #[error("`n_classes` is {n_classes}; a classifier needs at least 2 classes")]
    TooFewClasses {
        /// Classes in the header.
        n_classes: u16,
    },
    /// Check 8a: the weight count or byte size the header's shape implies
    /// does not fit in `usize` (or, when writing, the byte size does not fit
    /// the `u32` `weights_len` field). Such a blob cannot exist in memory.
    #[error("the header's shape implies more weight bytes than this platform can address")]
    SizeOverflow,
    /// Check 7 (version 2): the options block's norm code is not 0 (none),
    /// 1 (layer) or 2 (RMS).
    #[error("options block: norm code {code} is not 0 (none), 1 (layer) or 2 (rms)")]
    BadNorm {
        /// The byte at offset 24.
        code: u8,
    },
    /// Check 7 (version 2): the options block's reserved byte 31 is not
    /// zero.
    #[error("options block: reserved byte 31 must be 0")]
    ReservedOptionBytes,
    /// Check 7 (version 2): a convolution of one tap (0 is off, at least 2
    /// is a convolution).
    #[error("options block: conv_taps is 1; it must be 0 (off) or at least 2")]
    ConvTaps,
    /// Check 7 (version 2): a centring or pooling byte out of range
    /// (`centre_shift` or `pool_shift` above 24, `centre_gain_log2` above
    /// 15 or set without centring).
    #[error(
        "options block: {field} is {value}; shifts are 0 (off) to 24, gains 0 to 15 and need centring"
    )]
    OptionRange {
        /// The option (`centre_shift`, `centre_gain_log2`, `pool_shift`).
        field: &'static str,
        /// Its value (a byte when read from a blob).
        value: usize,
    },
    /// Check 8b: `weights_len` is not the shape's weight count times the
    /// element size.
    #[error("weights_len is {actual} bytes but the header's shape needs {expected}")]
    WeightsLenMismatch {
        /// Weight count (`docs/model.md`) × element size.
        expected: usize,
        /// `weights_len` from the header.
        actual: usize,
    },
    /// Writer: the number of weights supplied is not the shape's count.
    #[error("{actual} weights supplied but the header's shape has {expected}")]
    WeightCountMismatch {
        /// Weight count of the header's shape (`docs/model.md`).
        expected: usize,
        /// Weights supplied.
        actual: usize,
    },
    /// Writer: a weight is NaN or infinite, or (for f16 blobs) too large in
    /// magnitude to be stored as a finite f16.
    #[error("weight {index} is not finite in the blob's element type")]
    UnrepresentableWeight {
        /// Index of the weight in body order.
        index: usize,
    },
    /// Writer: a dimension of the model does not fit the format's `u16`
    /// header field.
    #[error("{field} is {value}; the .rvne header holds at most 65535")]
    FieldTooLarge {
        /// The header field.
        field: &'static str,
        /// The model's value.
        value: usize,
    },
    /// Accessor: a layer index at or past `n_layers`.
    #[error("layer {layer} does not exist; the model has {n_layers} layers")]
    LayerOutOfRange {
        /// Requested layer.
        layer: usize,
        /// Layers in the model.
        n_layers: usize,
    },
    /// Accessor: a row index at or past the matrix's row count.
    #[error("row {row} does not exist; the matrix has {rows} rows")]
    RowOutOfRange {
        /// Requested row.
        row: usize,
        /// Rows in the matrix.
        rows: usize,
    },
    /// Accessor: an output or input buffer of the wrong length.
    #[error("buffer holds {actual} values but {expected} are needed")]
    BufferLength {
        /// Values needed.
        expected: usize,
        /// Values the buffer holds.
        actual: usize,
    },
}

impl RvneError {
    /// True for the failures that [`RvneView::parse`](crate::RvneView::parse)
    /// can report, false for writer and accessor errors.
    #[must_use]
    pub const fn is_format_error(&self) -> bool {
        matches!(
            self,
            Self::TooShort { .. }
                | Self::BadMagic { .. }
                | Self::UnsupportedVersion { .. }
                | Self::ReservedFlagBits { .. }
                | Self::ReservedByte { .. }
                | Self::LengthMismatch { .. }
                | Self::CrcMismatch { .. }
                | Self::ZeroDimension { .. }
                | Self::GroupRatio { .. }
                | Self::NoLayers
                | Self::TooFewClasses { .. }
                | Self::BadNorm { .. }
                | Self::ReservedOptionBytes
                | Self::ConvTaps
                | Self::OptionRange { .. }
                | Self::SizeOverflow
                | Self::WeightsLenMismatch { .. }
        )
    }
}
