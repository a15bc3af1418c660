//! `.rvne` version 2 (`docs/rvne-format.md`, "Version 2"): a model with
//! options travels as a 32-byte header (the shared 24 bytes plus the
//! options block) and its version-2 body; every check of the block has its
//! own error; every single-bit flip of a valid version-2 blob is refused;
//! and a model without options is still written as version 1.

use aether_model::{ModelOptions, ModelShape, ModelWeights, Norm};
use aether_rvne::{ElementType, HEADER_LEN_V2, RvneBlob, RvneError, RvneView, VERSION_2};

fn options() -> ModelOptions {
    ModelOptions {
        norm: Norm::Layer,
        conv_taps: 3,
        mlp_hidden: 5,
        centre_shift: 7,
        centre_gain_log2: 3,
        pool_shift: 6,
    }
}

/// A small version-2 model: D 3, Hq 2, Hkv 1, d 2, L 2, C 2.
fn weights(options: ModelOptions) -> ModelWeights {
    let shape = ModelShape {
        input_dim: 3,
        n_q_heads: 2,
        n_kv_heads: 1,
        head_dim: 2,
        n_layers: 2,
        n_classes: 2,
        options,
    };
    ModelWeights::random(shape, 9).unwrap()
}

fn reseal(bytes: &mut [u8]) {
    let body = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn a_model_with_options_round_trips_as_version_2() {
    let original = weights(options());
    for element_type in [ElementType::F32, ElementType::F16] {
        let blob = RvneBlob::from_weights(&original, element_type).unwrap();
        let bytes = blob.as_bytes();
        assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), VERSION_2);
        // The options block: norm code 1 (layer), 3 taps, 5 hidden (u16),
        // centre shift 7, gain 2^3, pool shift 6, reserved 0.
        assert_eq!(&bytes[24..32], &[1, 3, 5, 0, 7, 3, 6, 0]);
        let size = element_type.size();
        assert_eq!(
            bytes.len(),
            HEADER_LEN_V2 + original.values().len() * size + 4
        );
        let view = RvneView::parse(bytes).unwrap();
        assert_eq!(view.header().options, options());
        let back = view.to_weights().unwrap();
        assert_eq!(back.shape(), original.shape());
        if element_type == ElementType::F32 {
            assert_eq!(back.values(), original.values());
        }
    }
}

#[test]
fn a_model_without_options_is_still_version_1() {
    let v1 = weights(ModelOptions::V1);
    let blob = RvneBlob::from_weights(&v1, ElementType::F32).unwrap();
    assert_eq!(&blob.as_bytes()[4..6], &[1, 0]);
    assert_eq!(blob.as_bytes().len(), 24 + v1.values().len() * 4 + 4);
}

/// A named corruption and the error it must cause.
type Case = (&'static str, fn(&mut Vec<u8>), RvneError);

#[test]
fn each_options_check_has_its_own_error() {
    let good = RvneBlob::from_weights(&weights(options()), ElementType::F32)
        .unwrap()
        .into_bytes();
    let range = |field, value| RvneError::OptionRange { field, value };
    let cases: [Case; 8] = [
        ("norm code 3", |b| b[24] = 3, RvneError::BadNorm { code: 3 }),
        (
            "reserved byte 31",
            |b| b[31] = 1,
            RvneError::ReservedOptionBytes,
        ),
        ("one tap", |b| b[25] = 1, RvneError::ConvTaps),
        ("centre shift 25", |b| b[28] = 25, range("centre_shift", 25)),
        ("gain 2^16", |b| b[29] = 16, range("centre_gain_log2", 16)),
        (
            "a gain without centring",
            |b| b[28] = 0,
            range("centre_gain_log2", 3),
        ),
        ("pool shift 255", |b| b[30] = 255, range("pool_shift", 255)),
        (
            "every option off in a version-2 header",
            |b| b[24..31].fill(0),
            RvneError::UnsupportedVersion { found: 2 },
        ),
    ];
    for (name, corrupt, expected) in cases {
        let mut bytes = good.clone();
        corrupt(&mut bytes);
        reseal(&mut bytes);
        assert_eq!(RvneView::parse(&bytes).unwrap_err(), expected, "{name}");
    }
    // Options that change the body size: the length check catches a body
    // written for other options.
    let mut bytes = good.clone();
    bytes[26] = 6;
    reseal(&mut bytes);
    assert!(
        matches!(
            RvneView::parse(&bytes),
            Err(RvneError::WeightsLenMismatch { .. })
        ),
        "{:?}",
        RvneView::parse(&bytes)
    );
    // Dimensions the format cannot hold are refused by the writer.
    let too_wide = ModelOptions {
        conv_taps: 300,
        ..options()
    };
    let shape = ModelShape {
        options: too_wide,
        ..weights(options()).shape()
    };
    let big = ModelWeights::zeros(shape).unwrap();
    assert_eq!(
        RvneBlob::from_weights(&big, ElementType::F32).unwrap_err(),
        RvneError::FieldTooLarge {
            field: "conv_taps",
            value: 300
        }
    );
}

/// Every one of the blob's bits, flipped alone, is refused: the CRC covers
/// the options block like every other byte.
#[test]
fn every_single_bit_flip_of_a_version_2_blob_is_refused() {
    let good = RvneBlob::from_weights(&weights(options()), ElementType::F16)
        .unwrap()
        .into_bytes();
    for i in 0..good.len() {
        for bit in 0..8 {
            let mut bytes = good.clone();
            bytes[i] ^= 1 << bit;
            assert!(
                RvneView::parse(&bytes).is_err(),
                "flip of byte {i} bit {bit} accepted"
            );
        }
    }
}
