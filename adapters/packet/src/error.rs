//! Every way a classification packet, or the logits meant for one, can be
//! wrong.
//!
//! One variant per decode check (`docs/packet.md`, "Decode checks, in
//! order"), declared in the order [`decode`](crate::decode) runs them, so a
//! caller (the firmware's `esp_err_t` table, the CLI's messages) can map a
//! failure without parsing text; then the refusals of
//! [`Packet::from_logits`](crate::Packet::from_logits). The error is `Copy`
//! and holds no `f32` (only its bits) so it can be `Eq` and returned as is
//! from `no_std` code.

/// Why bytes were not a valid packet, or why logits cannot make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// Check 1: the input is not exactly 40 bytes.
    #[error("packet is {len} bytes; a classification packet is exactly 40")]
    Length {
        /// Bytes given.
        len: usize,
    },
    /// Check 2: the first four bytes are not the magic `0xC5110007` (LE).
    #[error("bad magic 0x{found:08X}; a classification packet starts with 0xC5110007")]
    BadMagic {
        /// The little-endian `u32` at offset 0.
        found: u32,
    },
    /// Check 3: the version is not 1. A reader never guesses at a layout it
    /// was not written for.
    #[error("unsupported packet version {found}; this reader understands version 1 only")]
    UnsupportedVersion {
        /// The little-endian `u16` at offset 4.
        found: u16,
    },
    /// Check 4: a reserved byte (offsets 9–11 and 25–27) is not zero. A
    /// later version may give them a meaning; version 1 writes zeros.
    #[error("reserved byte at offset {offset} is 0x{value:02X}; it must be 0")]
    ReservedByte {
        /// Offset of the first non-zero reserved byte.
        offset: usize,
        /// The byte found there.
        value: u8,
    },
    /// Check 5: the stored CRC-32/IEEE does not match the first 36 bytes.
    #[error("CRC mismatch: stored 0x{stored:08X}, computed 0x{computed:08X}")]
    CrcMismatch {
        /// The little-endian `u32` at offset 36.
        stored: u32,
        /// CRC-32/IEEE of bytes 0..36.
        computed: u32,
    },
    /// Check 6a: `n_classes` is below 2. With one class there is no
    /// decision and no second-best logit for the margin.
    #[error("n_classes is {n_classes}; a classifier has at least 2 classes")]
    TooFewClasses {
        /// The little-endian `u16` at offset 6.
        n_classes: u16,
    },
    /// Check 6b: `argmax` names no class.
    #[error("argmax {argmax} is not a class; n_classes is {n_classes}")]
    ArgmaxOutOfRange {
        /// The byte at offset 24.
        argmax: u8,
        /// The little-endian `u16` at offset 6.
        n_classes: u16,
    },
    /// Check 6c: `top_logit` or `top1_minus_top2` is NaN or infinite; the
    /// firmware never sends a non-finite logit (`docs/non-finite.md`).
    #[error("{field} is {}; it must be finite", f32::from_bits(*bits))]
    NonFinite {
        /// `top_logit` or `top1_minus_top2`.
        field: &'static str,
        /// The value's bits (`f32::from_bits` gives it back).
        bits: u32,
    },
    /// Check 6d: `top1_minus_top2` is negative: the best logit minus the
    /// second best cannot be.
    #[error("top1_minus_top2 is {}; the best logit minus the second best is never negative", f32::from_bits(*bits))]
    NegativeMargin {
        /// The value's bits.
        bits: u32,
    },
    /// Building: fewer than 2 or more than 255 logits. `argmax` is a `u8`,
    /// so 255 classes (argmax 0–254) is the most a packet can name.
    #[error("a packet needs 2 to 255 logits (argmax is one byte); got {n_classes}")]
    ClassCount {
        /// Logits given.
        n_classes: usize,
    },
    /// Building: a logit is NaN or infinite.
    #[error("logit {index} is {}; logits must be finite", f32::from_bits(*bits))]
    NonFiniteLogit {
        /// Index of the first non-finite logit.
        index: usize,
        /// Its bits.
        bits: u32,
    },
    /// Building: the best logit minus the second best overflows `f32`
    /// (finite logits of opposite sign near `f32::MAX`); the packet could
    /// not carry the margin, and a decoder would refuse an infinite one.
    #[error("top1 - top2 = {} - {} overflows f32", f32::from_bits(*top1_bits), f32::from_bits(*top2_bits))]
    MarginOverflow {
        /// Bits of the best logit.
        top1_bits: u32,
        /// Bits of the second best.
        top2_bits: u32,
    },
}

impl PacketError {
    /// The decode check (`docs/packet.md`) this error comes from, as
    /// `(number, name)` with numbers 1–6 in the order [`decode`](crate::decode)
    /// runs them; `None` for the errors of
    /// [`Packet::from_logits`](crate::Packet::from_logits).
    #[must_use]
    pub const fn check(&self) -> Option<(u8, &'static str)> {
        Some(match self {
            Self::Length { .. } => (1, "length"),
            Self::BadMagic { .. } => (2, "magic"),
            Self::UnsupportedVersion { .. } => (3, "version"),
            Self::ReservedByte { .. } => (4, "reserved bytes"),
            Self::CrcMismatch { .. } => (5, "CRC"),
            Self::TooFewClasses { .. }
            | Self::ArgmaxOutOfRange { .. }
            | Self::NonFinite { .. }
            | Self::NegativeMargin { .. } => (6, "field values"),
            Self::ClassCount { .. } | Self::NonFiniteLogit { .. } | Self::MarginOverflow { .. } => {
                return None;
            }
        })
    }
}
