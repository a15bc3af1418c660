//! The 40-byte classification packet as C sees it.
//!
//! Why a Rust struct: the header is generated from this crate, so the C
//! declaration of the packet (`ruv_temporal_packet_t`, packed, with a
//! static assertion on its size) comes from the same source as the code
//! that fills it, and a test pins its field offsets to the wire format
//! (`docs/packet.md`, little-endian on every target we build for).

use aether_packet::{MAX_CLASSES, MIN_CLASSES, PACKET_LEN, Packet, PacketError};

use crate::codes::Error;

/// Bytes in a packet.
pub const RUV_TEMPORAL_PACKET_LEN: usize = 40;

const _: () = assert!(RUV_TEMPORAL_PACKET_LEN == PACKET_LEN);

/// Checks a C class count before any slice is made from it: a count
/// outside 2..=255 is refused without reading the logits (a slice claiming
/// more floats than C passed would be undefined behaviour even unread).
pub(crate) fn class_count(n_classes: u32) -> Result<usize, Error> {
    usize::try_from(n_classes)
        .ok()
        .filter(|n| (MIN_CLASSES..=MAX_CLASSES).contains(n))
        .ok_or(Error::Packet(PacketError::ClassCount {
            n_classes: usize::try_from(n_classes).unwrap_or(usize::MAX),
        }))
}

/// The packet for `logits`, encoded (`aether-packet` does both, so the
/// host's decoder reads exactly what this writes), into the first 40 bytes
/// of `out`.
///
/// # Errors
/// [`Error::BufferTooSmall`] when `out` holds fewer than 40 bytes (checked
/// first, so nothing is written); the packet's refusal of the logits.
pub(crate) fn encode_into(
    logits: &[f32],
    node_id: u8,
    ts_us: u64,
    seq: u32,
    out: &mut [u8],
) -> Result<(), Error> {
    let Some(out) = out.get_mut(..PACKET_LEN) else {
        return Err(Error::BufferTooSmall);
    };
    let packet = Packet::from_logits(logits, node_id, ts_us, seq)?;
    out.copy_from_slice(&aether_packet::encode(&packet));
    Ok(())
}

/// One classification packet, field for field as on the wire (magic
/// `0xC5110007`, version 1, little-endian, CRC-32/IEEE of the first 36
/// bytes). Packed so that C's `sizeof` is 40 with no padding.
#[repr(C, packed)]
#[derive(Debug, Clone, Copy)]
pub struct RuvTemporalPacket {
    /// `0xC5110007`.
    pub magic: u32,
    /// 1.
    pub version: u16,
    /// Classes of the model.
    pub n_classes: u16,
    /// The sending node.
    pub node_id: u8,
    /// Zero.
    pub reserved0: [u8; 3],
    /// The node's timestamp, microseconds.
    pub ts_us: u64,
    /// The node's packet counter.
    pub seq: u32,
    /// Index of the first largest logit.
    pub argmax: u8,
    /// Zero.
    pub reserved1: [u8; 3],
    /// The largest logit.
    pub top_logit: f32,
    /// Largest minus second largest logit (≥ 0).
    pub top1_minus_top2: f32,
    /// CRC-32/IEEE of bytes 0..36.
    pub crc32: u32,
}

const _: () = assert!(core::mem::size_of::<RuvTemporalPacket>() == RUV_TEMPORAL_PACKET_LEN);

#[cfg(test)]
mod tests {
    use core::mem::offset_of;

    use super::*;

    #[test]
    fn offsets_are_the_wire_format() {
        assert_eq!(offset_of!(RuvTemporalPacket, magic), 0);
        assert_eq!(offset_of!(RuvTemporalPacket, version), 4);
        assert_eq!(offset_of!(RuvTemporalPacket, n_classes), 6);
        assert_eq!(offset_of!(RuvTemporalPacket, node_id), 8);
        assert_eq!(offset_of!(RuvTemporalPacket, reserved0), 9);
        assert_eq!(offset_of!(RuvTemporalPacket, ts_us), 12);
        assert_eq!(offset_of!(RuvTemporalPacket, seq), 20);
        assert_eq!(offset_of!(RuvTemporalPacket, argmax), 24);
        assert_eq!(offset_of!(RuvTemporalPacket, reserved1), 25);
        assert_eq!(offset_of!(RuvTemporalPacket, top_logit), 28);
        assert_eq!(offset_of!(RuvTemporalPacket, top1_minus_top2), 32);
        assert_eq!(offset_of!(RuvTemporalPacket, crc32), 36);
        assert_eq!(core::mem::align_of::<RuvTemporalPacket>(), 1);
    }
}
