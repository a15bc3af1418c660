//! Exhaustive corruption of the default blob: every single-bit flip and
//! every truncation must be rejected, with the error of the first check
//! (`docs/rvne-format.md`) the corruption breaks.
//!
//! 329,952 full parses of a 41 KB blob would spend ~14 s computing CRCs in
//! a debug build (measured: ~42 µs per parse). CRC-32 is linear, so the
//! CRC of the blob with bit `b` of byte `i` flipped is the original CRC
//! XOR a delta that depends only on `(i, b)` and the length; walking the
//! bytes from last to first, each delta advances by one zero byte of the
//! table-driven CRC. The test feeds that CRC to the parser's crate-private
//! `parse_with_crc` hook, so every flip still runs every check of the real
//! parser, and cross-checks against a full [`RvneView::parse`] (crc32fast)
//! for every flip in the header and footer and a 1-in-61 sample of the
//! body, asserting both give the identical result (including the computed
//! CRC inside `CrcMismatch`).

use std::time::Instant;

use crate::{FOOTER_LEN, HEADER_LEN, MIN_BLOB_LEN, RvneError, RvneView};

use super::default_blob;

/// The reflected CRC-32/IEEE table (polynomial 0xEDB88320).
fn crc_table() -> [u32; 256] {
    core::array::from_fn(|k| {
        let mut c = k as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        c
    })
}

/// The check a single-bit flip of byte `i`, bit `bit` of the default f32
/// blob must trip, given the check order of `docs/rvne-format.md`.
fn expected_error(i: usize, bit: u8, flipped: &[u8], len: usize) -> RvneError {
    let stored = u32::from_le_bytes([
        flipped[len - 4],
        flipped[len - 3],
        flipped[len - 2],
        flipped[len - 1],
    ]);
    let computed = crc32fast::hash(&flipped[..len - FOOTER_LEN]);
    match i {
        0..4 => RvneError::BadMagic {
            found: u32::from_le_bytes([flipped[0], flipped[1], flipped[2], flipped[3]]),
        },
        4..6 => RvneError::UnsupportedVersion {
            found: u16::from_le_bytes([flipped[4], flipped[5]]),
        },
        6 if bit > 0 => RvneError::ReservedFlagBits { flags: flipped[6] },
        7 => RvneError::ReservedByte { value: flipped[7] },
        20..24 => RvneError::LengthMismatch {
            declared: MIN_BLOB_LEN as u64
                + u64::from(u32::from_le_bytes([
                    flipped[20],
                    flipped[21],
                    flipped[22],
                    flipped[23],
                ])),
            actual: len,
        },
        // Flag bit 0 (f16), the shape fields, the weights and the CRC
        // itself: all covered by the CRC, which is checked before the
        // header rules and the body size.
        _ => RvneError::CrcMismatch { stored, computed },
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let blob = default_blob();
    let mut bytes = blob.as_bytes().to_vec();
    let len = bytes.len();
    assert_eq!(len, 41_244);
    let covered = len - FOOTER_LEN;
    let base_crc = crc32fast::hash(&bytes[..covered]);
    let table = crc_table();
    let started = Instant::now();

    // delta[b]: CRC change from flipping bit b of byte i, for the current i.
    // For the last covered byte that is one table step of the byte 1 << b.
    let mut delta: [u32; 8] = core::array::from_fn(|b| table[1 << b]);
    let mut flips = 0_usize;
    let mut cross_checked = 0_usize;
    for i in (0..covered).rev() {
        for bit in 0..8_u8 {
            bytes[i] ^= 1 << bit;
            let fast = RvneView::parse_with_crc(&bytes, |c| {
                assert_eq!(c.len(), covered);
                base_crc ^ delta[usize::from(bit)]
            });
            assert!(fast.is_err(), "flip of bit {bit} in byte {i} was accepted");
            if i < HEADER_LEN || (i * 8 + usize::from(bit)) % 61 == 0 {
                assert_eq!(RvneView::parse(&bytes), fast, "byte {i} bit {bit}");
                assert_eq!(
                    fast,
                    Err(expected_error(i, bit, &bytes, len)),
                    "byte {i} bit {bit}"
                );
                cross_checked += 1;
            } else {
                // Body flips all die at the CRC check; compare the
                // variant without recomputing the CRC.
                assert!(
                    matches!(fast, Err(RvneError::CrcMismatch { stored, .. }) if stored
                        == u32::from_le_bytes([bytes[len - 4], bytes[len - 3], bytes[len - 2], bytes[len - 1]])),
                    "byte {i} bit {bit}: {fast:?}"
                );
            }
            bytes[i] ^= 1 << bit;
            flips += 1;
        }
        for d in &mut delta {
            *d = (*d >> 8) ^ table[(*d & 0xFF) as usize];
        }
    }
    // The CRC bytes themselves: not covered, so the full parser runs.
    for i in covered..len {
        for bit in 0..8_u8 {
            bytes[i] ^= 1 << bit;
            let result = RvneView::parse(&bytes);
            assert_eq!(result, Err(expected_error(i, bit, &bytes, len)));
            bytes[i] ^= 1 << bit;
            flips += 1;
            cross_checked += 1;
        }
    }
    assert_eq!(bytes, blob.as_bytes(), "every flip was undone");
    assert_eq!(flips, 41_244 * 8);
    assert!(cross_checked > 5_000, "{cross_checked}");
    std::eprintln!(
        "{flips} single-bit flips rejected ({cross_checked} cross-checked with a full parse) in {:?}",
        started.elapsed()
    );
}

#[test]
fn every_truncation_and_one_byte_extension_is_rejected() {
    let blob = default_blob();
    let bytes = blob.as_bytes();
    let started = Instant::now();
    for cut in 0..bytes.len() {
        let result = RvneView::parse(&bytes[..cut]);
        let expected = if cut < MIN_BLOB_LEN {
            RvneError::TooShort { len: cut }
        } else {
            RvneError::LengthMismatch {
                declared: bytes.len() as u64,
                actual: cut,
            }
        };
        assert_eq!(result, Err(expected), "truncated to {cut} bytes");
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert_eq!(
        RvneView::parse(&longer),
        Err(RvneError::LengthMismatch {
            declared: bytes.len() as u64,
            actual: bytes.len() + 1,
        })
    );
    std::eprintln!(
        "{} truncations rejected in {:?}",
        bytes.len(),
        started.elapsed()
    );
}
