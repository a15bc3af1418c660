//! One test per parse check of `docs/rvne-format.md`, plus the ordering
//! between them.
//!
//! Each check test builds a blob that is valid except for the one thing
//! the check looks at (re-sealing the CRC where the check comes after it),
//! and asserts the exact typed error. The ordering tests then corrupt a
//! blob in several ways at once and assert that the earliest check in the
//! documented order is the one reported.

use aether_rvne::{
    DEFAULT_SEED, ElementType, FOOTER_LEN, Header, MIN_BLOB_LEN, RvneBlob, RvneError, RvneView,
};

/// The default AETHER f32 blob's bytes.
fn valid() -> Vec<u8> {
    RvneBlob::random(Header::default_aether(ElementType::F32), DEFAULT_SEED)
        .expect("default header is valid")
        .into_bytes()
}

/// Rewrites the stored CRC so the blob passes the CRC check.
fn seal(bytes: &mut [u8]) {
    let covered = bytes.len() - FOOTER_LEN;
    let crc = crc32fast::hash(&bytes[..covered]);
    bytes[covered..].copy_from_slice(&crc.to_le_bytes());
}

/// Overwrites the little-endian u16 at `at`.
fn set_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

/// Sets a header field at `at` to `value` and re-seals the CRC.
fn with_field(at: usize, value: u16) -> Vec<u8> {
    let mut bytes = valid();
    set_u16(&mut bytes, at, value);
    seal(&mut bytes);
    bytes
}

const INPUT_DIM: usize = 8;
const N_Q_HEADS: usize = 10;
const N_KV_HEADS: usize = 12;
const HEAD_DIM: usize = 14;
const N_LAYERS: usize = 16;
const N_CLASSES: usize = 18;

#[test]
fn the_valid_fixture_parses() {
    let bytes = valid();
    let view = RvneView::parse(&bytes).expect("valid");
    assert_eq!(view.header(), Header::default_aether(ElementType::F32));
}

#[test]
fn check_1_too_short() {
    let bytes = valid();
    for len in [0, 1, 4, 23, 24, 27] {
        assert_eq!(
            RvneView::parse(&bytes[..len]),
            Err(RvneError::TooShort { len })
        );
    }
    // 28 bytes is long enough for this check (it then fails the length one).
    assert!(matches!(
        RvneView::parse(&bytes[..28]),
        Err(RvneError::LengthMismatch { .. })
    ));
}

#[test]
fn check_2_bad_magic() {
    let mut bytes = valid();
    // The magic is the u32 0x52564E45 in little-endian: the bytes on disk
    // are "ENVR". Writing the ASCII "RVNE" in byte order is a bad magic.
    assert_eq!(&bytes[..4], b"ENVR");
    bytes[..4].copy_from_slice(b"RVNE");
    assert_eq!(
        RvneView::parse(&bytes),
        Err(RvneError::BadMagic { found: 0x454E_5652 })
    );
}

#[test]
fn check_3_unsupported_version() {
    for version in [0, 3, u16::MAX] {
        let mut bytes = valid();
        set_u16(&mut bytes, 4, version);
        assert_eq!(
            RvneView::parse(&bytes),
            Err(RvneError::UnsupportedVersion { found: version })
        );
    }
}

#[test]
fn check_4a_reserved_flag_bits() {
    for flags in [0x02, 0x80, 0xFF] {
        let mut bytes = valid();
        bytes[6] = flags;
        assert_eq!(
            RvneView::parse(&bytes),
            Err(RvneError::ReservedFlagBits { flags })
        );
    }
}

#[test]
fn check_4b_reserved_byte() {
    let mut bytes = valid();
    bytes[7] = 0x01;
    assert_eq!(
        RvneView::parse(&bytes),
        Err(RvneError::ReservedByte { value: 0x01 })
    );
}

#[test]
fn check_5_length_mismatch() {
    let bytes = valid();
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 3]);
    assert_eq!(
        RvneView::parse(&longer),
        Err(RvneError::LengthMismatch {
            declared: 41_244,
            actual: 41_247
        })
    );
    // weights_len = u32::MAX: 28 + u32::MAX must not overflow anything.
    let mut huge = bytes;
    huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        RvneView::parse(&huge),
        Err(RvneError::LengthMismatch {
            declared: 28 + u64::from(u32::MAX),
            actual: 41_244
        })
    );
}

#[test]
fn check_6_crc_mismatch() {
    let mut bytes = valid();
    let stored = u32::from_le_bytes(bytes[41_240..].try_into().expect("4 bytes"));
    bytes[1000] ^= 0x10;
    let computed = crc32fast::hash(&bytes[..41_240]);
    assert_eq!(
        RvneView::parse(&bytes),
        Err(RvneError::CrcMismatch { stored, computed })
    );
}

#[test]
fn check_7a_zero_dimension_names_the_field() {
    for (at, field) in [
        (INPUT_DIM, "input_dim"),
        (N_Q_HEADS, "n_q_heads"),
        (N_KV_HEADS, "n_kv_heads"),
        (HEAD_DIM, "head_dim"),
    ] {
        assert_eq!(
            RvneView::parse(&with_field(at, 0)),
            Err(RvneError::ZeroDimension { field })
        );
    }
}

#[test]
fn check_7b_group_ratio() {
    assert_eq!(
        RvneView::parse(&with_field(N_KV_HEADS, 3)),
        Err(RvneError::GroupRatio {
            n_q_heads: 4,
            n_kv_heads: 3
        })
    );
}

#[test]
fn check_7c_no_layers() {
    assert_eq!(
        RvneView::parse(&with_field(N_LAYERS, 0)),
        Err(RvneError::NoLayers)
    );
}

#[test]
fn check_7d_too_few_classes() {
    for n_classes in [0, 1] {
        assert_eq!(
            RvneView::parse(&with_field(N_CLASSES, n_classes)),
            Err(RvneError::TooFewClasses { n_classes })
        );
    }
}

#[test]
fn check_8a_size_overflow() {
    // Every dimension at u16::MAX: the weight count exceeds 2^64.
    let mut bytes = valid();
    for at in [
        INPUT_DIM, N_Q_HEADS, N_KV_HEADS, HEAD_DIM, N_LAYERS, N_CLASSES,
    ] {
        set_u16(&mut bytes, at, u16::MAX);
    }
    seal(&mut bytes);
    assert_eq!(RvneView::parse(&bytes), Err(RvneError::SizeOverflow));
    let header = Header {
        input_dim: u16::MAX,
        n_q_heads: u16::MAX,
        n_kv_heads: u16::MAX,
        head_dim: u16::MAX,
        n_layers: u16::MAX,
        n_classes: u16::MAX,
        element_type: ElementType::F32,
        options: aether_model::ModelOptions::V1,
    };
    assert_eq!(header.weight_count(), Err(RvneError::SizeOverflow));
    assert_eq!(
        RvneBlob::random(header, DEFAULT_SEED).err(),
        Some(RvneError::SizeOverflow)
    );
}

#[test]
fn check_8b_weights_len_mismatch() {
    // A consistent length and CRC, but one f32 short of the shape.
    let mut bytes = valid();
    bytes.drain(41_236..41_240);
    bytes[20..24].copy_from_slice(&41_212_u32.to_le_bytes());
    seal(&mut bytes);
    assert_eq!(
        RvneView::parse(&bytes),
        Err(RvneError::WeightsLenMismatch {
            expected: 41_216,
            actual: 41_212
        })
    );
    // An f32 body under the f16 flag: the shape needs half the bytes.
    let mut f16_flag = valid();
    f16_flag[6] = 0x01;
    seal(&mut f16_flag);
    assert_eq!(
        RvneView::parse(&f16_flag),
        Err(RvneError::WeightsLenMismatch {
            expected: 20_608,
            actual: 41_216
        })
    );
}

#[test]
fn zero_kv_heads_is_a_zero_dimension_not_a_division_by_zero() {
    // GroupRatio divides by n_kv_heads, so the zero check must come first.
    assert_eq!(
        RvneView::parse(&with_field(N_KV_HEADS, 0)),
        Err(RvneError::ZeroDimension {
            field: "n_kv_heads"
        })
    );
}

#[test]
fn a_short_blob_with_a_bad_crc_reports_the_length() {
    let mut bytes = valid();
    bytes.truncate(30_000);
    // The last four bytes are now weight bytes, not the CRC.
    assert_eq!(
        RvneView::parse(&bytes),
        Err(RvneError::LengthMismatch {
            declared: 41_244,
            actual: 30_000
        })
    );
}

#[test]
fn a_header_prefix_without_room_for_the_crc_is_too_short() {
    let bytes = valid();
    assert_eq!(
        RvneView::parse(&bytes[..26]),
        Err(RvneError::TooShort { len: 26 })
    );
}

/// Breaks one check of a blob in place.
type Corruption = fn(&mut Vec<u8>);

/// One corruption per check, in check order. Each breaks exactly its own
/// check and leaves the earlier ones passing, so applying any set of them
/// (latest first, so an earlier one wins where two touch the same field)
/// must report the earliest.
const CORRUPTIONS: [(&str, Corruption); 13] = [
    ("TooShort", |b| b.truncate(27)),
    ("BadMagic", |b| b[0] ^= 0xFF),
    ("UnsupportedVersion", |b| b[4] = 3),
    ("ReservedFlagBits", |b| b[6] |= 0x80),
    ("ReservedByte", |b| b[7] = 1),
    ("LengthMismatch", |b| b.push(0)),
    ("CrcMismatch", |b| {
        let last = b.len() - 1;
        b[last] ^= 0x01;
    }),
    ("ZeroDimension", |b| {
        set_u16(b, INPUT_DIM, 0);
        seal(b);
    }),
    ("GroupRatio", |b| {
        // 7 divides neither 4 nor 65535 (the SizeOverflow corruption's Hq).
        set_u16(b, N_KV_HEADS, 7);
        seal(b);
    }),
    ("NoLayers", |b| {
        set_u16(b, N_LAYERS, 0);
        seal(b);
    }),
    ("TooFewClasses", |b| {
        set_u16(b, N_CLASSES, 1);
        seal(b);
    }),
    ("SizeOverflow", |b| {
        for at in [INPUT_DIM, N_Q_HEADS, HEAD_DIM, N_LAYERS] {
            set_u16(b, at, u16::MAX);
        }
        seal(b);
    }),
    ("WeightsLenMismatch", |b| {
        let end = b.len() - FOOTER_LEN;
        b.drain(end - 4..end);
        let weights_len = u32::try_from(b.len() - MIN_BLOB_LEN).expect("fits");
        b[20..24].copy_from_slice(&weights_len.to_le_bytes());
        seal(b);
    }),
];

/// The position in check order of the check `error` reports.
fn check_index(error: RvneError) -> usize {
    match error {
        RvneError::TooShort { .. } => 0,
        RvneError::BadMagic { .. } => 1,
        RvneError::UnsupportedVersion { .. } => 2,
        RvneError::ReservedFlagBits { .. } => 3,
        RvneError::ReservedByte { .. } => 4,
        RvneError::LengthMismatch { .. } => 5,
        RvneError::CrcMismatch { .. } => 6,
        RvneError::ZeroDimension { .. } => 7,
        RvneError::GroupRatio { .. } => 8,
        RvneError::NoLayers => 9,
        RvneError::TooFewClasses { .. } => 10,
        RvneError::SizeOverflow => 11,
        RvneError::WeightsLenMismatch { .. } => 12,
        other => panic!("not a parse error: {other:?}"),
    }
}

#[test]
fn each_corruption_alone_trips_its_own_check() {
    for (index, (name, corrupt)) in CORRUPTIONS.iter().enumerate() {
        let mut bytes = valid();
        corrupt(&mut bytes);
        let error = RvneView::parse(&bytes).expect_err(name);
        assert_eq!(check_index(error), index, "{name}: {error:?}");
    }
}

#[test]
fn every_combination_of_corruptions_reports_the_earliest_check() {
    let base = valid();
    // All 2^13 - 1 non-empty subsets.
    for mask in 1_u32..(1 << CORRUPTIONS.len()) {
        let mut bytes = base.clone();
        for (index, (_, corrupt)) in CORRUPTIONS.iter().enumerate().rev() {
            if mask & (1 << index) != 0 {
                corrupt(&mut bytes);
            }
        }
        let earliest = mask.trailing_zeros() as usize;
        let error = RvneView::parse(&bytes).expect_err("corrupted");
        assert_eq!(
            check_index(error),
            earliest,
            "mask {mask:#015b}: expected {}, got {error:?}",
            CORRUPTIONS[earliest].0
        );
    }
}
