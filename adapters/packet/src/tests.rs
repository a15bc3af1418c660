//! Unit tests: a hand-computed packet pins the byte layout, and each decode
//! check and each `from_logits` refusal is hit once with its exact message.
//! The properties (round trip, every bit flip caught) are in
//! `tests/properties.rs`.

use std::string::ToString as _;

use super::*;

/// The packet of `from_logits(&[0.5, 1.75, 2.5, -1.0], 3, 1_234_567_890_123, 7)`.
fn known() -> Packet {
    Packet {
        n_classes: 4,
        node_id: 3,
        ts_us: 1_234_567_890_123,
        seq: 7,
        argmax: 2,
        top_logit: 2.5,
        top1_minus_top2: 0.75,
    }
}

/// Its bytes, written out by hand from `docs/packet.md`'s table; the CRC was
/// computed by another implementation (Python's `zlib.crc32` over the first
/// 36 bytes), not by the code under test.
const KNOWN_BYTES: [u8; PACKET_LEN] = [
    0x07, 0x00, 0x11, 0xC5, // 0  magic 0xC5110007
    0x01, 0x00, // 4  version 1
    0x04, 0x00, // 6  n_classes 4
    0x03, // 8  node_id 3
    0x00, 0x00, 0x00, // 9  reserved
    0xCB, 0x04, 0xFB, 0x71, 0x1F, 0x01, 0x00,
    0x00, // 12 ts_us 1,234,567,890,123 = 0x11F71FB04CB
    0x07, 0x00, 0x00, 0x00, // 20 seq 7
    0x02, // 24 argmax 2
    0x00, 0x00, 0x00, // 25 reserved
    0x00, 0x00, 0x20, 0x40, // 28 top_logit 2.5 = 0x40200000
    0x00, 0x00, 0x40, 0x3F, // 32 top1_minus_top2 0.75 = 0x3F400000
    0x9E, 0x75, 0x5A, 0x40, // 36 crc32 0x405A759E
];

#[test]
fn known_packet_encodes_to_hand_computed_bytes() {
    assert_eq!(encode(&known()), KNOWN_BYTES);
    assert_eq!(decode(&KNOWN_BYTES), Ok(known()));
    assert_eq!(
        Packet::from_logits(&[0.5, 1.75, 2.5, -1.0], 3, 1_234_567_890_123, 7),
        Ok(known())
    );
}

/// `KNOWN_BYTES` with `edit` applied and, if `fix_crc`, the CRC recomputed
/// so that only the intended check can fail.
fn corrupt(edit: impl FnOnce(&mut [u8; PACKET_LEN]), fix_crc: bool) -> [u8; PACKET_LEN] {
    let mut bytes = KNOWN_BYTES;
    edit(&mut bytes);
    if fix_crc {
        let crc = crc_of(&bytes);
        bytes[offset::CRC..].copy_from_slice(&crc.to_le_bytes());
    }
    bytes
}

fn message(bytes: &[u8]) -> std::string::String {
    decode(bytes).unwrap_err().to_string()
}

#[test]
fn each_check_has_its_error_and_message() {
    assert_eq!(
        message(&KNOWN_BYTES[..39]),
        "packet is 39 bytes; a classification packet is exactly 40"
    );
    let mut long = [0_u8; 41];
    long[..40].copy_from_slice(&KNOWN_BYTES);
    assert_eq!(decode(&long), Err(PacketError::Length { len: 41 }));
    assert_eq!(decode(&[]), Err(PacketError::Length { len: 0 }));

    let bytes = corrupt(|b| b[3] = 0xC6, true);
    assert_eq!(
        message(&bytes),
        "bad magic 0xC6110007; a classification packet starts with 0xC5110007"
    );
    let bytes = corrupt(|b| b[4] = 2, true);
    assert_eq!(
        message(&bytes),
        "unsupported packet version 2; this reader understands version 1 only"
    );
    for offset in RESERVED_OFFSETS {
        let bytes = corrupt(|b| b[offset] = 0x80, true);
        assert_eq!(
            decode(&bytes),
            Err(PacketError::ReservedByte {
                offset,
                value: 0x80
            })
        );
    }
    // The first non-zero reserved byte is named.
    let bytes = corrupt(
        |b| {
            b[26] = 1;
            b[10] = 2;
        },
        true,
    );
    assert_eq!(
        message(&bytes),
        "reserved byte at offset 10 is 0x02; it must be 0"
    );
    // The computed CRC is Python's `zlib.crc32` of the edited 36 bytes.
    let bytes = corrupt(|b| b[offset::SEQ] = 8, false);
    assert_eq!(
        message(&bytes),
        "CRC mismatch: stored 0x405A759E, computed 0xCEB012A4"
    );

    let with = |packet: Packet| decode(&encode(&packet)).unwrap_err().to_string();
    assert_eq!(
        with(Packet {
            n_classes: 1,
            argmax: 0,
            ..known()
        }),
        "n_classes is 1; a classifier has at least 2 classes"
    );
    assert_eq!(
        with(Packet {
            argmax: 4,
            ..known()
        }),
        "argmax 4 is not a class; n_classes is 4"
    );
    assert_eq!(
        with(Packet {
            top_logit: f32::NAN,
            ..known()
        }),
        "top_logit is NaN; it must be finite"
    );
    assert_eq!(
        with(Packet {
            top1_minus_top2: f32::INFINITY,
            ..known()
        }),
        "top1_minus_top2 is inf; it must be finite"
    );
    assert_eq!(
        with(Packet {
            top1_minus_top2: -0.5,
            ..known()
        }),
        "top1_minus_top2 is -0.5; the best logit minus the second best is never negative"
    );
}

#[test]
fn checks_run_in_documented_order() {
    // Every later check also fails; the earliest must be reported.
    let all_wrong = corrupt(
        |b| {
            b[0] = 0;
            b[4] = 9;
            b[9] = 1;
            b[36] ^= 1;
            b[offset::ARGMAX] = 200;
        },
        false,
    );
    assert_eq!(decode(&all_wrong).unwrap_err().check(), Some((2, "magic")));
    let mut bytes = all_wrong;
    bytes[..4].copy_from_slice(&MAGIC.to_le_bytes());
    assert_eq!(decode(&bytes).unwrap_err().check(), Some((3, "version")));
    bytes[4] = 1;
    assert_eq!(
        decode(&bytes).unwrap_err().check(),
        Some((4, "reserved bytes"))
    );
    bytes[9] = 0;
    assert_eq!(decode(&bytes).unwrap_err().check(), Some((5, "CRC")));
    let crc = crc_of(&bytes);
    bytes[offset::CRC..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        decode(&bytes),
        Err(PacketError::ArgmaxOutOfRange {
            argmax: 200,
            n_classes: 4
        })
    );
}

#[test]
fn field_rules_run_in_documented_order() {
    let bad = Packet {
        n_classes: 0,
        argmax: 9,
        top_logit: f32::NEG_INFINITY,
        top1_minus_top2: f32::NAN,
        ..known()
    };
    assert_eq!(
        bad.validate(),
        Err(PacketError::TooFewClasses { n_classes: 0 })
    );
    let bad = Packet {
        n_classes: 2,
        ..bad
    };
    assert!(matches!(
        bad.validate(),
        Err(PacketError::ArgmaxOutOfRange { .. })
    ));
    let bad = Packet { argmax: 1, ..bad };
    assert!(matches!(
        bad.validate(),
        Err(PacketError::NonFinite {
            field: "top_logit",
            ..
        })
    ));
    let bad = Packet {
        top_logit: 1.0,
        ..bad
    };
    assert!(matches!(
        bad.validate(),
        Err(PacketError::NonFinite {
            field: "top1_minus_top2",
            ..
        })
    ));
    // Negative zero is not negative; the wire allows more than 255 classes.
    let fine = Packet {
        top1_minus_top2: -0.0,
        n_classes: 1000,
        argmax: 255,
        ..known()
    };
    assert_eq!(fine.validate(), Ok(()));
    assert_eq!(decode(&encode(&fine)).map(|p| p.n_classes), Ok(1000));
}

#[test]
fn from_logits_picks_first_largest_and_margin() {
    let tie = Packet::from_logits(&[1.0, 3.0, 3.0, 2.0], 0, 0, 0).unwrap();
    assert_eq!((tie.argmax, tie.top_logit), (1, 3.0));
    assert_eq!(tie.top1_minus_top2.to_bits(), 0.0_f32.to_bits());
    let negative = Packet::from_logits(&[-5.0, -2.0], 1, 2, 3).unwrap();
    assert_eq!(
        (
            negative.argmax,
            negative.top_logit,
            negative.top1_minus_top2
        ),
        (1, -2.0, 3.0)
    );
    // +0 and -0 are equal: the first wins.
    let zeros = Packet::from_logits(&[-0.0, 0.0], 0, 0, 0).unwrap();
    assert_eq!(zeros.argmax, 0);
    assert_eq!(zeros.top1_minus_top2.to_bits(), 0.0_f32.to_bits());
    let mut many = [0.0_f32; 255];
    many[254] = 1.0;
    let last = Packet::from_logits(&many, 0, 0, 0).unwrap();
    assert_eq!((last.argmax, last.n_classes), (254, 255));
    assert_eq!(decode(&encode(&last)), Ok(last));
}

#[test]
fn from_logits_refusals() {
    let err = |logits: &[f32]| Packet::from_logits(logits, 0, 0, 0).unwrap_err();
    assert_eq!(
        err(&[1.0]).to_string(),
        "a packet needs 2 to 255 logits (argmax is one byte); got 1"
    );
    assert_eq!(err(&[]), PacketError::ClassCount { n_classes: 0 });
    assert_eq!(err(&[0.0; 256]), PacketError::ClassCount { n_classes: 256 });
    assert_eq!(
        err(&[1.0, f32::NAN, f32::INFINITY]).to_string(),
        "logit 1 is NaN; logits must be finite"
    );
    assert_eq!(
        err(&[1.0, f32::NEG_INFINITY]).to_string(),
        "logit 1 is -inf; logits must be finite"
    );
    let overflow = err(&[f32::MAX, -f32::MAX]);
    assert_eq!(
        overflow,
        PacketError::MarginOverflow {
            top1_bits: f32::MAX.to_bits(),
            top2_bits: (-f32::MAX).to_bits()
        }
    );
    assert_eq!(
        overflow.to_string(),
        "top1 - top2 = 340282350000000000000000000000000000000 - \
         -340282350000000000000000000000000000000 overflows f32"
    );
    assert_eq!(overflow.check(), None);
}
