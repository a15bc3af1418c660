//! Properties of the packet format (`docs/packet.md`): every valid packet
//! survives encode → decode bit for bit, every single-bit corruption of its
//! 40 bytes is refused by the check that owns the flipped byte, packets
//! built from logits always decode, and no input makes `decode` panic.

use aether_packet::{
    MAGIC, PACKET_LEN, Packet, PacketError, RESERVED_OFFSETS, decode, encode, offset,
};
use proptest::prelude::*;

/// Any finite `f32`, of either sign, subnormals and zeros included.
fn finite() -> impl Strategy<Value = f32> {
    use proptest::num::f32::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

/// Any finite `f32` that is not negative.
fn non_negative() -> impl Strategy<Value = f32> {
    use proptest::num::f32::{NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NORMAL | SUBNORMAL | ZERO
}

/// Any packet `decode` must accept.
fn valid_packet() -> impl Strategy<Value = Packet> {
    (2..=u16::MAX)
        .prop_flat_map(|n_classes| {
            let argmax = 0..=u8::try_from(n_classes - 1).unwrap_or(u8::MAX);
            (
                Just(n_classes),
                argmax,
                any::<u8>(),
                any::<u64>(),
                any::<u32>(),
                finite(),
                non_negative(),
            )
        })
        .prop_map(
            |(n_classes, argmax, node_id, ts_us, seq, top_logit, top1_minus_top2)| Packet {
                n_classes,
                node_id,
                ts_us,
                seq,
                argmax,
                top_logit,
                top1_minus_top2,
            },
        )
}

/// Packets compared by bits: `PartialEq` on `f32` would call two NaNs
/// different and `0.0 == -0.0`.
fn bits(p: &Packet) -> (u16, u8, u64, u32, u8, u32, u32) {
    (
        p.n_classes,
        p.node_id,
        p.ts_us,
        p.seq,
        p.argmax,
        p.top_logit.to_bits(),
        p.top1_minus_top2.to_bits(),
    )
}

/// The check that must catch a flip in byte `index` of a valid packet.
fn expected_check(index: usize) -> u8 {
    match index {
        0..4 => 2,
        4..6 => 3,
        i if RESERVED_OFFSETS.contains(&i) => 4,
        _ => 5,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(packet in valid_packet()) {
        prop_assert_eq!(packet.validate(), Ok(()));
        let bytes = encode(&packet);
        let decoded = decode(&bytes);
        prop_assert!(decoded.is_ok(), "{:?}", decoded);
        let decoded = decoded.unwrap();
        prop_assert_eq!(bits(&decoded), bits(&packet));
        prop_assert_eq!(encode(&decoded), bytes);
    }

    #[test]
    fn every_single_bit_flip_is_detected(packet in valid_packet()) {
        let bytes = encode(&packet);
        for bit in 0..PACKET_LEN * 8 {
            let mut flipped = bytes;
            flipped[bit / 8] ^= 1 << (bit % 8);
            let result = decode(&flipped);
            let check = result.as_ref().err().and_then(PacketError::check).map(|(n, _)| n);
            prop_assert_eq!(
                check,
                Some(expected_check(bit / 8)),
                "bit {} (byte {}): {:?}",
                bit,
                bit / 8,
                result
            );
        }
    }

    #[test]
    fn packets_from_logits_decode(
        logits in prop::collection::vec(-1.0e30_f32..1.0e30, 2..=255),
        node_id in any::<u8>(),
        ts_us in any::<u64>(),
        seq in any::<u32>(),
    ) {
        let packet = Packet::from_logits(&logits, node_id, ts_us, seq);
        prop_assert!(packet.is_ok(), "{:?}", packet);
        let packet = packet.unwrap();
        // Oracle: sort indices by (value descending, index ascending).
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        // total_cmp orders -0 below +0 where `>` calls them equal; compare
        // values, and take the first index holding the top value.
        let top1 = logits[order[0]];
        let first = logits.iter().position(|&v| v == top1).unwrap();
        prop_assert_eq!(usize::from(packet.argmax), first);
        prop_assert_eq!(packet.top_logit, top1);
        prop_assert_eq!(packet.top1_minus_top2, top1 - logits[order[1]]);
        prop_assert_eq!(usize::from(packet.n_classes), logits.len());
        prop_assert_eq!(decode(&encode(&packet)).map(|p| bits(&p)), Ok(bits(&packet)));
    }

    #[test]
    fn any_logits_give_a_decodable_packet_or_an_error(
        logits in prop::collection::vec(any::<f32>(), 0..300),
    ) {
        if let Ok(packet) = Packet::from_logits(&logits, 0, 0, 0) {
            prop_assert!(decode(&encode(&packet)).is_ok());
        }
    }

    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..90)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn field_checks_never_panic(bytes in prop::array::uniform32(any::<u8>()), tail in any::<[u8; 4]>()) {
        // Random fields behind a valid header and CRC, so check 6 runs.
        let mut packet = [0_u8; PACKET_LEN];
        packet[..32].copy_from_slice(&bytes);
        packet[32..36].copy_from_slice(&tail);
        packet[..4].copy_from_slice(&MAGIC.to_le_bytes());
        packet[4..6].copy_from_slice(&1_u16.to_le_bytes());
        for offset in RESERVED_OFFSETS {
            packet[offset] = 0;
        }
        let crc = crc32fast::hash(&packet[..offset::CRC]);
        packet[offset::CRC..].copy_from_slice(&crc.to_le_bytes());
        match decode(&packet) {
            Ok(p) => prop_assert_eq!(encode(&p), packet),
            Err(e) => prop_assert_eq!(e.check(), Some((6, "field values"))),
        }
    }
}
