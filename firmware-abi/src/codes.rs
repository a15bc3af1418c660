//! The one table from Rust errors to the `int32_t` codes C sees.
//!
//! Why one place: every exported function returns a code, and C code
//! branches on them, so the same failure must always give the same code
//! whichever function reports it. The values are ESP-IDF's `esp_err_t`
//! values, so firmware can pass them on as `esp_err_t`; the header names
//! them `RUV_TEMPORAL_*` rather than `ESP_*` so it never redefines
//! ESP-IDF's own macros. Each mapping has its own unit test below.

use aether_csi::CsiError;
use aether_domain::{AttentionError, ConfigError};
use aether_model::ModelError;
use aether_packet::PacketError;
use aether_rvne::RvneError;

/// Success (`ESP_OK`).
pub const RUV_TEMPORAL_OK: i32 = 0;
/// Generic failure (`ESP_FAIL`): the self-test disagreed, or the model's
/// arithmetic left f32 although frames and weights were finite.
pub const RUV_TEMPORAL_FAIL: i32 = -1;
/// Out of memory (`ESP_ERR_NO_MEM`).
pub const RUV_TEMPORAL_ERR_NO_MEM: i32 = 0x101;
/// A bad argument (`ESP_ERR_INVALID_ARG`): NULL pointer, zero dimension,
/// dimension or count mismatch, NaN/±inf frame, bad blob shape.
pub const RUV_TEMPORAL_ERR_INVALID_ARG: i32 = 0x102;
/// Called in the wrong state (`ESP_ERR_INVALID_STATE`): classify before
/// any push; a CSI packet whose grid is not the stream's.
pub const RUV_TEMPORAL_ERR_INVALID_STATE: i32 = 0x103;
/// A size is wrong (`ESP_ERR_INVALID_SIZE`): blob too short or its length
/// fields disagree, an output buffer too small, a ring too large to size.
pub const RUV_TEMPORAL_ERR_INVALID_SIZE: i32 = 0x104;
/// Not supported (`ESP_ERR_NOT_SUPPORTED`): a CSI packet whose
/// receive-control fields and length are no layout of Espressif's table,
/// or CSI pushed into a model whose `input_dim` is not a band count
/// (1..=48).
pub const RUV_TEMPORAL_ERR_NOT_SUPPORTED: i32 = 0x106;
/// The blob's CRC-32 does not match (`ESP_ERR_INVALID_CRC`).
pub const RUV_TEMPORAL_ERR_INVALID_CRC: i32 = 0x109;
/// The blob is of a format version, or uses reserved format fields, this
/// library does not know (`ESP_ERR_INVALID_VERSION`).
pub const RUV_TEMPORAL_ERR_INVALID_VERSION: i32 = 0x10A;

/// Why a call failed, before it becomes a code.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Error {
    /// A pointer argument was NULL.
    NullPointer,
    /// `input_dim`, `window_len` or `n_classes` was 0.
    ZeroDimension,
    /// The blob's `input_dim` is not the caller's.
    InputDimMismatch,
    /// The blob's `n_classes` is not the caller's.
    ClassCountMismatch,
    /// A frame held NaN or ±inf.
    NonFiniteFrame,
    /// Logits handed to `encode_packet` held NaN or ±inf.
    NonFiniteLogits,
    /// `classify` before any frame was pushed.
    NoFrames,
    /// The caller's logits count is not the model's.
    LogitsCount,
    /// An output buffer is too small.
    BufferTooSmall,
    /// `window_len × input_dim` does not fit in memory's address space.
    RingTooLarge,
    /// The ring could not be allocated.
    OutOfMemory,
    /// The known-answer test disagreed.
    SelfTestFailed,
    /// The blob was refused by the `.rvne` parser.
    Blob(RvneError),
    /// The model refused (weights, frames, or its arithmetic).
    Model(ModelError),
    /// The head config built from the blob's shape was refused.
    Config(ConfigError),
    /// Logits cannot make a packet.
    Packet(PacketError),
    /// The CSI extractor refused a packet.
    Csi(CsiError),
    /// The model's `input_dim` is not a CSI band count, so the context has
    /// no extractor.
    CsiUnavailable,
    /// The ring refused a frame the extractor emitted (unreachable: those
    /// frames are finite and `input_dim` long by construction).
    CsiFrame,
}

impl From<RvneError> for Error {
    fn from(error: RvneError) -> Self {
        Self::Blob(error)
    }
}

impl From<ModelError> for Error {
    fn from(error: ModelError) -> Self {
        Self::Model(error)
    }
}

impl From<PacketError> for Error {
    fn from(error: PacketError) -> Self {
        Self::Packet(error)
    }
}

impl From<CsiError> for Error {
    fn from(error: CsiError) -> Self {
        Self::Csi(error)
    }
}

impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}

impl Error {
    /// The code C sees for this error. The whole table.
    pub(crate) const fn code(&self) -> i32 {
        match self {
            Self::NullPointer
            | Self::ZeroDimension
            | Self::InputDimMismatch
            | Self::ClassCountMismatch
            | Self::NonFiniteFrame
            | Self::NonFiniteLogits
            | Self::LogitsCount
            | Self::Config(_) => RUV_TEMPORAL_ERR_INVALID_ARG,
            Self::NoFrames => RUV_TEMPORAL_ERR_INVALID_STATE,
            Self::BufferTooSmall | Self::RingTooLarge => RUV_TEMPORAL_ERR_INVALID_SIZE,
            Self::OutOfMemory => RUV_TEMPORAL_ERR_NO_MEM,
            Self::SelfTestFailed | Self::CsiFrame => RUV_TEMPORAL_FAIL,
            Self::CsiUnavailable => RUV_TEMPORAL_ERR_NOT_SUPPORTED,
            Self::Csi(error) => csi_code(error),
            Self::Blob(error) => blob_code(error),
            Self::Model(error) => model_code(error),
            Self::Packet(error) => packet_code(error),
        }
    }
}

/// `.rvne` parse failures, check by check (`docs/rvne-format.md`):
///
/// | check | error | code |
/// |---|---|---|
/// | 1 | `TooShort` | INVALID_SIZE |
/// | 2 | `BadMagic` | INVALID_ARG (not a `.rvne` blob at all) |
/// | 3 | `UnsupportedVersion` | INVALID_VERSION |
/// | 4a | `ReservedFlagBits` | INVALID_VERSION |
/// | 4b | `ReservedByte` | INVALID_VERSION |
/// | 5 | `LengthMismatch` | INVALID_SIZE |
/// | 6 | `CrcMismatch` | INVALID_CRC |
/// | 7 | `ZeroDimension`, `GroupRatio`, `NoLayers`, `TooFewClasses` | INVALID_ARG |
/// | 8 | `SizeOverflow`, `WeightsLenMismatch` | INVALID_SIZE |
///
/// Why reserved fields are INVALID_VERSION: the format keeps them so a
/// later writer can add optional fields; a non-zero one means "written for
/// a reader newer than this library", which is what the firmware must tell
/// its updater, not "garbage". The shape checks (7) come after the CRC, so
/// a blob failing them was written that way: a bad argument. The
/// writer/accessor variants cannot come out of a parse; should one ever
/// reach here it is an internal failure (FAIL).
const fn blob_code(error: &RvneError) -> i32 {
    match error {
        RvneError::TooShort { .. }
        | RvneError::LengthMismatch { .. }
        | RvneError::SizeOverflow
        | RvneError::WeightsLenMismatch { .. } => RUV_TEMPORAL_ERR_INVALID_SIZE,
        RvneError::UnsupportedVersion { .. }
        | RvneError::ReservedFlagBits { .. }
        | RvneError::ReservedByte { .. }
        | RvneError::BadNorm { .. }
        | RvneError::ReservedOptionBytes => RUV_TEMPORAL_ERR_INVALID_VERSION,
        RvneError::CrcMismatch { .. } => RUV_TEMPORAL_ERR_INVALID_CRC,
        RvneError::BadMagic { .. }
        | RvneError::ZeroDimension { .. }
        | RvneError::GroupRatio { .. }
        | RvneError::NoLayers
        | RvneError::TooFewClasses { .. }
        | RvneError::ConvTaps
        | RvneError::OptionRange { .. } => RUV_TEMPORAL_ERR_INVALID_ARG,
        _ => RUV_TEMPORAL_FAIL,
    }
}

/// Model failures. A non-finite weight or frame is the caller's input
/// (INVALID_ARG); finite inputs whose arithmetic left f32 (`NonFinite`)
/// is a failed computation (FAIL), never NaN logits; a backend that could
/// not reserve memory is NO_MEM; anything else the backend reports (it
/// cannot happen for a model built here) is FAIL.
const fn model_code(error: &ModelError) -> i32 {
    match error {
        ModelError::HeadMismatch { .. }
        | ModelError::NonFiniteWeight { .. }
        | ModelError::FrameLength { .. }
        | ModelError::NonFiniteFrame { .. }
        | ModelError::LogitsLength { .. } => RUV_TEMPORAL_ERR_INVALID_ARG,
        ModelError::NonFinite { .. } | ModelError::ForeignStream { .. } => RUV_TEMPORAL_FAIL,
        ModelError::Attention(AttentionError::OutOfMemory { .. }) => RUV_TEMPORAL_ERR_NO_MEM,
        ModelError::Attention(_) => RUV_TEMPORAL_FAIL,
    }
}

/// Packet building: a class count outside 2..=255, a NaN/±inf logit, or
/// finite logits whose margin overflows f32 are the caller's logits
/// (INVALID_ARG); the decode checks cannot come out of encoding (FAIL).
const fn packet_code(error: &PacketError) -> i32 {
    match error {
        PacketError::ClassCount { .. }
        | PacketError::NonFiniteLogit { .. }
        | PacketError::MarginOverflow { .. } => RUV_TEMPORAL_ERR_INVALID_ARG,
        _ => RUV_TEMPORAL_FAIL,
    }
}

/// CSI extractor refusals (`docs/csi-features.md`). A packet of a layout
/// this library cannot read is NOT_SUPPORTED: it is a radio's valid
/// packet, just not one of Espressif's table, and firmware may simply
/// skip such packets. A readable packet of another grid than the
/// stream's (e.g. non-HT in an HT20 stream) is refused because of what
/// came before it, i.e. the stream's state: INVALID_STATE. A packet whose
/// kept subcarriers are all zero carries no measurement: INVALID_ARG. A
/// config error cannot come out of a packet (the context's config is
/// fixed and valid); should one reach here, NOT_SUPPORTED, as for a
/// model whose `input_dim` no config accepts.
const fn csi_code(error: &CsiError) -> i32 {
    match error {
        CsiError::UnsupportedLayout { .. } | CsiError::InvalidConfig { .. } => {
            RUV_TEMPORAL_ERR_NOT_SUPPORTED
        }
        CsiError::GridChanged { .. } => RUV_TEMPORAL_ERR_INVALID_STATE,
        CsiError::SilentPacket => RUV_TEMPORAL_ERR_INVALID_ARG,
    }
}

/// What a `Result` becomes at the boundary.
pub(crate) const fn code_of(result: &Result<(), Error>) -> i32 {
    match result {
        Ok(()) => RUV_TEMPORAL_OK,
        Err(error) => error.code(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use aether_model::{NonFiniteValue, Stage, WeightMatrix};

    use super::*;

    fn code(error: Error) -> i32 {
        error.code()
    }

    /// Every code the ABI returns.
    pub(crate) const EVERY_CODE: [i32; 9] = [
        RUV_TEMPORAL_OK,
        RUV_TEMPORAL_FAIL,
        RUV_TEMPORAL_ERR_NO_MEM,
        RUV_TEMPORAL_ERR_INVALID_ARG,
        RUV_TEMPORAL_ERR_INVALID_STATE,
        RUV_TEMPORAL_ERR_INVALID_SIZE,
        RUV_TEMPORAL_ERR_NOT_SUPPORTED,
        RUV_TEMPORAL_ERR_INVALID_CRC,
        RUV_TEMPORAL_ERR_INVALID_VERSION,
    ];

    #[test]
    fn values_are_esp_err_t() {
        assert_eq!(
            EVERY_CODE,
            [0, -1, 0x101, 0x102, 0x103, 0x104, 0x106, 0x109, 0x10A]
        );
    }

    #[test]
    fn ok_is_zero() {
        assert_eq!(code_of(&Ok(())), RUV_TEMPORAL_OK);
        assert_eq!(
            code_of(&Err(Error::NoFrames)),
            RUV_TEMPORAL_ERR_INVALID_STATE
        );
    }

    #[test]
    fn null_pointer() {
        assert_eq!(code(Error::NullPointer), RUV_TEMPORAL_ERR_INVALID_ARG);
    }

    #[test]
    fn zero_dimension() {
        assert_eq!(code(Error::ZeroDimension), RUV_TEMPORAL_ERR_INVALID_ARG);
    }

    #[test]
    fn input_dim_mismatch() {
        assert_eq!(code(Error::InputDimMismatch), RUV_TEMPORAL_ERR_INVALID_ARG);
    }

    #[test]
    fn class_count_mismatch() {
        assert_eq!(
            code(Error::ClassCountMismatch),
            RUV_TEMPORAL_ERR_INVALID_ARG
        );
    }

    #[test]
    fn non_finite_frame() {
        assert_eq!(code(Error::NonFiniteFrame), RUV_TEMPORAL_ERR_INVALID_ARG);
    }

    #[test]
    fn non_finite_logits() {
        assert_eq!(code(Error::NonFiniteLogits), RUV_TEMPORAL_ERR_INVALID_ARG);
    }

    #[test]
    fn no_frames() {
        assert_eq!(code(Error::NoFrames), RUV_TEMPORAL_ERR_INVALID_STATE);
    }

    #[test]
    fn logits_count() {
        assert_eq!(code(Error::LogitsCount), RUV_TEMPORAL_ERR_INVALID_ARG);
    }

    #[test]
    fn buffer_too_small() {
        assert_eq!(code(Error::BufferTooSmall), RUV_TEMPORAL_ERR_INVALID_SIZE);
    }

    #[test]
    fn ring_too_large() {
        assert_eq!(code(Error::RingTooLarge), RUV_TEMPORAL_ERR_INVALID_SIZE);
    }

    #[test]
    fn out_of_memory() {
        assert_eq!(code(Error::OutOfMemory), RUV_TEMPORAL_ERR_NO_MEM);
    }

    #[test]
    fn self_test_failed() {
        assert_eq!(code(Error::SelfTestFailed), RUV_TEMPORAL_FAIL);
    }

    #[test]
    fn csi_unsupported_layout() {
        let error = CsiError::UnsupportedLayout {
            sig_mode: 1,
            bandwidth: 0,
            secondary: 0,
            stbc: 0,
            len: 100,
        };
        assert_eq!(code(error.into()), RUV_TEMPORAL_ERR_NOT_SUPPORTED);
    }

    #[test]
    fn csi_grid_changed() {
        let error = CsiError::GridChanged {
            expected: aether_csi::Grid::Ht20,
            found: aether_csi::Grid::Legacy20,
        };
        assert_eq!(code(error.into()), RUV_TEMPORAL_ERR_INVALID_STATE);
    }

    #[test]
    fn csi_silent_packet() {
        assert_eq!(
            code(CsiError::SilentPacket.into()),
            RUV_TEMPORAL_ERR_INVALID_ARG
        );
    }

    #[test]
    fn csi_invalid_config() {
        let error = CsiError::InvalidConfig {
            field: "bands",
            rule: "must be 1..=48",
        };
        assert_eq!(code(error.into()), RUV_TEMPORAL_ERR_NOT_SUPPORTED);
    }

    #[test]
    fn csi_unavailable() {
        assert_eq!(code(Error::CsiUnavailable), RUV_TEMPORAL_ERR_NOT_SUPPORTED);
    }

    #[test]
    fn csi_frame_refused() {
        assert_eq!(code(Error::CsiFrame), RUV_TEMPORAL_FAIL);
    }

    #[test]
    fn config() {
        assert_eq!(
            code(Error::Config(ConfigError::ZeroHeadDim)),
            RUV_TEMPORAL_ERR_INVALID_ARG
        );
    }

    #[test]
    fn blob_too_short() {
        assert_eq!(
            code(RvneError::TooShort { len: 3 }.into()),
            RUV_TEMPORAL_ERR_INVALID_SIZE
        );
    }

    #[test]
    fn blob_bad_magic() {
        assert_eq!(
            code(RvneError::BadMagic { found: 1 }.into()),
            RUV_TEMPORAL_ERR_INVALID_ARG
        );
    }

    #[test]
    fn blob_version() {
        assert_eq!(
            code(RvneError::UnsupportedVersion { found: 2 }.into()),
            RUV_TEMPORAL_ERR_INVALID_VERSION
        );
    }

    #[test]
    fn blob_reserved_flags() {
        assert_eq!(
            code(RvneError::ReservedFlagBits { flags: 2 }.into()),
            RUV_TEMPORAL_ERR_INVALID_VERSION
        );
    }

    #[test]
    fn blob_reserved_byte() {
        assert_eq!(
            code(RvneError::ReservedByte { value: 1 }.into()),
            RUV_TEMPORAL_ERR_INVALID_VERSION
        );
    }

    #[test]
    fn blob_length_mismatch() {
        assert_eq!(
            code(
                RvneError::LengthMismatch {
                    declared: 40,
                    actual: 41
                }
                .into()
            ),
            RUV_TEMPORAL_ERR_INVALID_SIZE
        );
    }

    #[test]
    fn blob_crc() {
        assert_eq!(
            code(
                RvneError::CrcMismatch {
                    stored: 1,
                    computed: 2
                }
                .into()
            ),
            RUV_TEMPORAL_ERR_INVALID_CRC
        );
    }

    #[test]
    fn blob_shape_rules() {
        for error in [
            RvneError::ZeroDimension { field: "head_dim" },
            RvneError::GroupRatio {
                n_q_heads: 3,
                n_kv_heads: 2,
            },
            RvneError::NoLayers,
            RvneError::TooFewClasses { n_classes: 1 },
        ] {
            assert_eq!(
                code(error.into()),
                RUV_TEMPORAL_ERR_INVALID_ARG,
                "{error:?}"
            );
        }
    }

    #[test]
    fn blob_size_overflow() {
        assert_eq!(
            code(RvneError::SizeOverflow.into()),
            RUV_TEMPORAL_ERR_INVALID_SIZE
        );
    }

    #[test]
    fn blob_weights_len() {
        assert_eq!(
            code(
                RvneError::WeightsLenMismatch {
                    expected: 8,
                    actual: 4
                }
                .into()
            ),
            RUV_TEMPORAL_ERR_INVALID_SIZE
        );
    }

    #[test]
    fn blob_writer_and_accessor_errors_are_internal() {
        for error in [
            RvneError::WeightCountMismatch {
                expected: 1,
                actual: 2,
            },
            RvneError::UnrepresentableWeight { index: 0 },
            RvneError::LayerOutOfRange {
                layer: 3,
                n_layers: 2,
            },
            RvneError::RowOutOfRange { row: 9, rows: 1 },
            RvneError::BufferLength {
                expected: 1,
                actual: 2,
            },
        ] {
            assert!(!error.is_format_error());
            assert_eq!(code(error.into()), RUV_TEMPORAL_FAIL, "{error:?}");
        }
    }

    #[test]
    fn model_input_errors() {
        for error in [
            ModelError::HeadMismatch {
                blob_q: 1,
                blob_kv: 1,
                blob_dim: 1,
                config_q: 2,
                config_kv: 1,
                config_dim: 1,
            },
            ModelError::NonFiniteWeight {
                index: 0,
                matrix: WeightMatrix::Classifier,
                row: 0,
                col: 0,
                value: NonFiniteValue::NaN,
            },
            ModelError::FrameLength {
                len: 3,
                input_dim: 2,
            },
            ModelError::NonFiniteFrame {
                frame: 0,
                column: 0,
                value: NonFiniteValue::PositiveInfinity,
            },
            ModelError::LogitsLength {
                expected: 4,
                actual: 3,
            },
        ] {
            assert_eq!(
                code(error.clone().into()),
                RUV_TEMPORAL_ERR_INVALID_ARG,
                "{error:?}"
            );
        }
    }

    #[test]
    fn model_non_finite_computation() {
        assert_eq!(
            code(
                ModelError::NonFinite {
                    stage: Stage::Classifier,
                    frame: 3
                }
                .into()
            ),
            RUV_TEMPORAL_FAIL
        );
    }

    #[test]
    fn model_foreign_stream() {
        assert_eq!(
            code(
                ModelError::ForeignStream {
                    expected: 2,
                    actual: 1
                }
                .into()
            ),
            RUV_TEMPORAL_FAIL
        );
    }

    #[test]
    fn model_out_of_memory() {
        assert_eq!(
            code(ModelError::Attention(AttentionError::OutOfMemory { bytes: 9 }).into()),
            RUV_TEMPORAL_ERR_NO_MEM
        );
    }

    #[test]
    fn model_other_attention_errors() {
        assert_eq!(
            code(ModelError::Attention(AttentionError::StepNotCausal).into()),
            RUV_TEMPORAL_FAIL
        );
    }

    #[test]
    fn packet_from_logits_errors() {
        for error in [
            PacketError::ClassCount { n_classes: 1 },
            PacketError::NonFiniteLogit { index: 0, bits: 0 },
            PacketError::MarginOverflow {
                top1_bits: 0,
                top2_bits: 0,
            },
        ] {
            assert_eq!(
                code(error.into()),
                RUV_TEMPORAL_ERR_INVALID_ARG,
                "{error:?}"
            );
        }
    }

    #[test]
    fn packet_decode_errors_are_internal() {
        for error in [
            PacketError::Length { len: 3 },
            PacketError::BadMagic { found: 0 },
            PacketError::CrcMismatch {
                stored: 0,
                computed: 1,
            },
        ] {
            assert_eq!(code(error.into()), RUV_TEMPORAL_FAIL, "{error:?}");
        }
    }
}
