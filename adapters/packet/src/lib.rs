//! The 40-byte classification packet (`docs/packet.md`): what the ESP32
//! sends after each classification, and what the host reads.
//!
//! The crate exists so that both ends share one encoder and one decoder:
//! the firmware's C-ABI crate calls [`Packet::from_logits`] and [`encode`]
//! on bare metal, and the host (`aether packet decode`) calls [`decode`] on
//! bytes that crossed a radio link, so every decode check is explicit and
//! typed. It is `no_std` and never allocates.
//!
//! - [`encode`] writes a [`Packet`] as 40 little-endian bytes with zeroed
//!   reserved bytes and the CRC-32/IEEE of the first 36 bytes.
//! - [`decode`] runs the checks of `docs/packet.md` in order (length, magic,
//!   version, reserved bytes, CRC, field values), each failing with its own
//!   [`PacketError`] variant. Every field is read with `from_le_bytes` on
//!   bytes at a constant offset, never through a pointer cast: the wire
//!   layout is packed (`ts_us` sits at offset 12, not 8-aligned) and the
//!   input may sit at any address.
//!
//! ```
//! use aether_packet::{Packet, decode, encode};
//!
//! let packet = Packet::from_logits(&[0.5, 1.75, 2.5, -1.0], 3, 1_234_567, 7)?;
//! assert_eq!((packet.argmax, packet.top_logit, packet.top1_minus_top2), (2, 2.5, 0.75));
//! let bytes = encode(&packet);
//! assert_eq!(decode(&bytes)?, packet);
//! # Ok::<(), aether_packet::PacketError>(())
//! ```
#![no_std]

// The unit tests format error messages.
#[cfg(test)]
extern crate std;

mod error;

pub use error::PacketError;

/// The packet's first four bytes as a little-endian `u32` (on the wire:
/// `07 00 11 C5`).
pub const MAGIC: u32 = 0xC511_0007;

/// The only layout version this crate writes and reads.
pub const VERSION: u16 = 1;

/// Bytes in a packet, CRC included.
pub const PACKET_LEN: usize = 40;

/// Bytes covered by the CRC: everything before it.
pub const CRC_COVERED_LEN: usize = offset::CRC;

/// Offsets of the reserved bytes, which version 1 writes as zero and
/// [`decode`] requires to be zero.
pub const RESERVED_OFFSETS: [usize; 6] = [9, 10, 11, 25, 26, 27];

/// Fewest classes a packet may carry: with one there is no decision and no
/// second-best logit.
pub const MIN_CLASSES: usize = 2;

/// Most classes [`Packet::from_logits`] accepts: `argmax` is one byte, so
/// with 255 classes every class (0–254) can be named.
pub const MAX_CLASSES: usize = 255;

/// Where each field starts (`docs/packet.md`, "Layout"). Public so tests
/// and tools can corrupt or inspect one field without re-deriving the
/// layout.
pub mod offset {
    /// `magic`, `u32`.
    pub const MAGIC: usize = 0;
    /// `version`, `u16`.
    pub const VERSION: usize = 4;
    /// `n_classes`, `u16`.
    pub const N_CLASSES: usize = 6;
    /// `node_id`, `u8`; three reserved bytes follow.
    pub const NODE_ID: usize = 8;
    /// `ts_us`, `u64` (not 8-aligned: the layout is packed).
    pub const TS_US: usize = 12;
    /// `seq`, `u32`.
    pub const SEQ: usize = 20;
    /// `argmax`, `u8`; three reserved bytes follow.
    pub const ARGMAX: usize = 24;
    /// `top_logit`, `f32`.
    pub const TOP_LOGIT: usize = 28;
    /// `top1_minus_top2`, `f32`.
    pub const TOP1_MINUS_TOP2: usize = 32;
    /// `crc32`, `u32`, over bytes `0..36`.
    pub const CRC: usize = 36;
}

// The layout adds up: each field ends where the next begins (reserved
// bytes included), and the CRC is the last four bytes.
const _: () = {
    assert!(offset::VERSION == offset::MAGIC + 4);
    assert!(offset::N_CLASSES == offset::VERSION + 2);
    assert!(offset::NODE_ID == offset::N_CLASSES + 2);
    assert!(offset::TS_US == offset::NODE_ID + 1 + 3);
    assert!(offset::SEQ == offset::TS_US + 8);
    assert!(offset::ARGMAX == offset::SEQ + 4);
    assert!(offset::TOP_LOGIT == offset::ARGMAX + 1 + 3);
    assert!(offset::TOP1_MINUS_TOP2 == offset::TOP_LOGIT + 4);
    assert!(offset::CRC == offset::TOP1_MINUS_TOP2 + 4);
    assert!(PACKET_LEN == offset::CRC + 4);
    assert!(RESERVED_OFFSETS[0] == offset::NODE_ID + 1);
    assert!(RESERVED_OFFSETS[3] == offset::ARGMAX + 1);
};

/// One classification result as it travels: the fields of the wire format
/// except the constant magic and version and the computed CRC.
///
/// The fields are public and unchecked so that any packet, including one a
/// decoder must refuse, can be built and encoded (tests need those);
/// [`Packet::from_logits`] builds only valid ones, and [`Packet::validate`]
/// says whether a packet is one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Packet {
    /// Number of classes of the model (at least 2).
    pub n_classes: u16,
    /// Which sensor node sent it.
    pub node_id: u8,
    /// The node's timestamp in microseconds.
    pub ts_us: u64,
    /// The node's packet counter; a gap means lost packets.
    pub seq: u32,
    /// Index of the first largest logit (less than `n_classes`).
    pub argmax: u8,
    /// The largest logit (finite).
    pub top_logit: f32,
    /// The largest logit minus the second largest (finite, not negative;
    /// 0 when two classes tie). The confidence margin.
    pub top1_minus_top2: f32,
}

impl Packet {
    /// The packet for one classification: `argmax` is the first index of
    /// the largest logit, `top1_minus_top2` the largest logit minus the
    /// largest of the others.
    ///
    /// # Errors
    /// - [`PacketError::ClassCount`] unless 2 ≤ `logits.len()` ≤ 255;
    /// - [`PacketError::NonFiniteLogit`] for the first NaN or infinite
    ///   logit;
    /// - [`PacketError::MarginOverflow`] when the margin is not a finite
    ///   `f32` (finite logits of opposite sign near `f32::MAX`).
    ///
    /// A packet this returns passes [`Packet::validate`], so [`decode`]
    /// accepts its encoding.
    pub fn from_logits(
        logits: &[f32],
        node_id: u8,
        ts_us: u64,
        seq: u32,
    ) -> Result<Self, PacketError> {
        let count_error = PacketError::ClassCount {
            n_classes: logits.len(),
        };
        if !(MIN_CLASSES..=MAX_CLASSES).contains(&logits.len()) {
            return Err(count_error);
        }
        if let Some((index, value)) = logits.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(PacketError::NonFiniteLogit {
                index,
                bits: value.to_bits(),
            });
        }
        // Strictly greater, so the first of equal largest logits wins. All
        // values are finite here (so the first beats -inf, and comparisons
        // are a total order). No indexing: nothing here can panic.
        let (mut best, mut top1) = (0, f32::NEG_INFINITY);
        for (index, &value) in logits.iter().enumerate() {
            if value > top1 {
                (best, top1) = (index, value);
            }
        }
        let mut top2 = f32::NEG_INFINITY;
        for (index, &value) in logits.iter().enumerate() {
            if index != best && value > top2 {
                top2 = value;
            }
        }
        // top1 ≥ top2, so the IEEE difference is ≥ 0 unless it overflows. A
        // tie between -0 and +0 gives -0; it is written as +0 so that a tie
        // always reads as 0.
        let margin = top1 - top2;
        let margin = if margin == 0.0 { 0.0 } else { margin };
        if !margin.is_finite() {
            return Err(PacketError::MarginOverflow {
                top1_bits: top1.to_bits(),
                top2_bits: top2.to_bits(),
            });
        }
        Ok(Self {
            n_classes: u16::try_from(logits.len()).map_err(|_| count_error)?,
            node_id,
            ts_us,
            seq,
            argmax: u8::try_from(best).map_err(|_| count_error)?,
            top_logit: top1,
            top1_minus_top2: margin,
        })
    }

    /// The field-value rules (decode check 6, `docs/packet.md`), in order:
    /// `n_classes` ≥ 2, `argmax` < `n_classes`, `top_logit` and
    /// `top1_minus_top2` finite, `top1_minus_top2` ≥ 0 (−0 included).
    ///
    /// `n_classes` may exceed 255 on the wire; such a packet is valid when
    /// its `argmax` fits in the byte.
    ///
    /// # Errors
    /// [`PacketError::TooFewClasses`], [`PacketError::ArgmaxOutOfRange`],
    /// [`PacketError::NonFinite`] or [`PacketError::NegativeMargin`]: the
    /// first rule broken.
    pub fn validate(&self) -> Result<(), PacketError> {
        if usize::from(self.n_classes) < MIN_CLASSES {
            return Err(PacketError::TooFewClasses {
                n_classes: self.n_classes,
            });
        }
        if u16::from(self.argmax) >= self.n_classes {
            return Err(PacketError::ArgmaxOutOfRange {
                argmax: self.argmax,
                n_classes: self.n_classes,
            });
        }
        for (field, value) in [
            ("top_logit", self.top_logit),
            ("top1_minus_top2", self.top1_minus_top2),
        ] {
            if !value.is_finite() {
                return Err(PacketError::NonFinite {
                    field,
                    bits: value.to_bits(),
                });
            }
        }
        // IEEE comparison: -0.0 >= 0.0 holds, so a negative zero passes.
        if self.top1_minus_top2 < 0.0 {
            return Err(PacketError::NegativeMargin {
                bits: self.top1_minus_top2.to_bits(),
            });
        }
        Ok(())
    }
}

/// The packet's 40 bytes: fields little-endian at their offsets, reserved
/// bytes zero, CRC-32/IEEE of bytes `0..36` at offset 36.
///
/// Writes whatever `packet` holds, valid or not (a packet failing
/// [`Packet::validate`] encodes to bytes [`decode`] refuses at check 6);
/// packets from [`Packet::from_logits`] are always valid.
#[must_use]
pub fn encode(packet: &Packet) -> [u8; PACKET_LEN] {
    let mut bytes = [0_u8; PACKET_LEN];
    put::<{ offset::MAGIC }, 4>(&mut bytes, MAGIC.to_le_bytes());
    put::<{ offset::VERSION }, 2>(&mut bytes, VERSION.to_le_bytes());
    put::<{ offset::N_CLASSES }, 2>(&mut bytes, packet.n_classes.to_le_bytes());
    put::<{ offset::NODE_ID }, 1>(&mut bytes, [packet.node_id]);
    put::<{ offset::TS_US }, 8>(&mut bytes, packet.ts_us.to_le_bytes());
    put::<{ offset::SEQ }, 4>(&mut bytes, packet.seq.to_le_bytes());
    put::<{ offset::ARGMAX }, 1>(&mut bytes, [packet.argmax]);
    put::<{ offset::TOP_LOGIT }, 4>(&mut bytes, packet.top_logit.to_le_bytes());
    put::<{ offset::TOP1_MINUS_TOP2 }, 4>(&mut bytes, packet.top1_minus_top2.to_le_bytes());
    let crc = crc_of(&bytes);
    put::<{ offset::CRC }, 4>(&mut bytes, crc.to_le_bytes());
    bytes
}

/// Reads one packet, running the checks of `docs/packet.md` in order:
///
/// 1. length is exactly 40 ([`PacketError::Length`]);
/// 2. magic ([`PacketError::BadMagic`]);
/// 3. version is 1 ([`PacketError::UnsupportedVersion`]);
/// 4. reserved bytes are zero ([`PacketError::ReservedByte`], the first
///    non-zero one);
/// 5. CRC ([`PacketError::CrcMismatch`]);
/// 6. field values ([`Packet::validate`]).
///
/// The header checks come before the CRC so that bytes which are not a
/// packet at all (a wrong stream, a wrong version) say so instead of
/// reporting a CRC mismatch.
///
/// # Errors
/// The first failing check's [`PacketError`].
pub fn decode(bytes: &[u8]) -> Result<Packet, PacketError> {
    let bytes: &[u8; PACKET_LEN] = bytes
        .try_into()
        .map_err(|_| PacketError::Length { len: bytes.len() })?;
    let magic = u32::from_le_bytes(get::<{ offset::MAGIC }, 4>(bytes));
    if magic != MAGIC {
        return Err(PacketError::BadMagic { found: magic });
    }
    let version = u16::from_le_bytes(get::<{ offset::VERSION }, 2>(bytes));
    if version != VERSION {
        return Err(PacketError::UnsupportedVersion { found: version });
    }
    for offset in RESERVED_OFFSETS {
        if let Some(&value) = bytes.get(offset).filter(|&&value| value != 0) {
            return Err(PacketError::ReservedByte { offset, value });
        }
    }
    let stored = u32::from_le_bytes(get::<{ offset::CRC }, 4>(bytes));
    let computed = crc_of(bytes);
    if stored != computed {
        return Err(PacketError::CrcMismatch { stored, computed });
    }
    let packet = Packet {
        n_classes: u16::from_le_bytes(get::<{ offset::N_CLASSES }, 2>(bytes)),
        node_id: get::<{ offset::NODE_ID }, 1>(bytes)[0],
        ts_us: u64::from_le_bytes(get::<{ offset::TS_US }, 8>(bytes)),
        seq: u32::from_le_bytes(get::<{ offset::SEQ }, 4>(bytes)),
        argmax: get::<{ offset::ARGMAX }, 1>(bytes)[0],
        top_logit: f32::from_le_bytes(get::<{ offset::TOP_LOGIT }, 4>(bytes)),
        top1_minus_top2: f32::from_le_bytes(get::<{ offset::TOP1_MINUS_TOP2 }, 4>(bytes)),
    };
    packet.validate()?;
    Ok(packet)
}

/// CRC-32/IEEE of the bytes the CRC covers.
fn crc_of(bytes: &[u8; PACKET_LEN]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(bytes.split_at(CRC_COVERED_LEN).0);
    hasher.finalize()
}

/// The `N` bytes at constant offset `AT`. Offset and width are constants
/// checked at compile time, so the indexing is provably in bounds and the
/// firmware build carries no panic path for it.
fn get<const AT: usize, const N: usize>(bytes: &[u8; PACKET_LEN]) -> [u8; N] {
    const { assert!(AT + N <= PACKET_LEN) };
    let mut out = [0_u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[AT + i];
        i += 1;
    }
    out
}

/// Writes `value` at constant offset `AT` (see [`get`]).
fn put<const AT: usize, const N: usize>(bytes: &mut [u8; PACKET_LEN], value: [u8; N]) {
    const { assert!(AT + N <= PACKET_LEN) };
    let mut i = 0;
    while i < N {
        bytes[AT + i] = value[i];
        i += 1;
    }
}

#[cfg(test)]
mod tests;
