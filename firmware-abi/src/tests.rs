//! The exported functions called directly, as C would, with good and bad
//! inputs: every NULL, zero dimensions, mismatches, each kind of corrupt
//! blob, NaN/±inf frames, classify before push, count mismatches; failed
//! calls leave the context working; logits equal `aether-model`'s bit for
//! bit (the same code path).

use alloc::vec;
use alloc::vec::Vec;
use core::ptr;

use aether_model::TemporalModel;
use aether_rvne::{DEFAULT_SEED, ElementType, Header, RvneBlob, RvneView};
use aether_sparse::SparseBackend;

use crate::codes::*;
use crate::context::head_config;
use crate::ffi::*;

pub(crate) const D: u32 = 16;
pub(crate) const C: u32 = 4;

fn blob_with(element_type: ElementType) -> Vec<u8> {
    RvneBlob::random(Header::default_aether(element_type), DEFAULT_SEED)
        .expect("default blob")
        .into_bytes()
}

pub(crate) fn blob() -> Vec<u8> {
    blob_with(ElementType::F32)
}

/// Rewrites the CRC after an edit, so the edit reaches the later checks.
fn fix_crc(bytes: &mut [u8]) {
    let end = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..end]);
    bytes[end..].copy_from_slice(&crc.to_le_bytes());
}

pub(crate) fn init(bytes: &[u8], window: u32) -> Result<*mut RuvTemporalCtx, i32> {
    let mut ctx = ptr::null_mut();
    // SAFETY: `bytes` outlives every context the tests make from it (each
    // test destroys its contexts before its blob goes out of scope).
    let code = unsafe { ruv_temporal_init(bytes.as_ptr(), bytes.len(), D, window, C, &mut ctx) };
    if code == RUV_TEMPORAL_OK {
        assert!(!ctx.is_null());
        Ok(ctx)
    } else {
        assert!(ctx.is_null(), "a failed init wrote *out_ctx");
        Err(code)
    }
}

pub(crate) fn push(ctx: *mut RuvTemporalCtx, frame: &[f32]) -> i32 {
    assert_eq!(frame.len(), D as usize);
    // SAFETY: live context; `D` floats.
    unsafe { ruv_temporal_push(ctx, frame.as_ptr()) }
}

/// Classify into a buffer pre-filled with a sentinel; returns the code and
/// the buffer.
pub(crate) fn classify(ctx: *mut RuvTemporalCtx, n: u32) -> (i32, Vec<f32>) {
    let mut logits = vec![-7.5_f32; n as usize];
    // SAFETY: live context; `n` writable floats.
    let code = unsafe { ruv_temporal_classify(ctx, logits.as_mut_ptr(), n) };
    (code, logits)
}

pub(crate) fn destroy(ctx: *mut RuvTemporalCtx) {
    // SAFETY: a live context, not used afterwards.
    unsafe { ruv_temporal_destroy(ctx) };
}

/// Frame `t`: small, distinct values.
fn frame(t: usize) -> Vec<f32> {
    (0..D as usize)
        .map(|i| {
            let x = (t * 31 + i * 7) % 23;
            #[allow(clippy::cast_precision_loss)]
            let x = x as f32;
            x / 23.0 - 0.5
        })
        .collect()
}

/// What `aether-model` computes for `frames`, built as the firmware builds
/// its model.
pub(crate) fn model_logits(bytes: &[u8], frames: &[f32]) -> Vec<f32> {
    let view = RvneView::parse(bytes).expect("blob");
    let backend = SparseBackend::new(head_config(&view)).expect("config");
    let model = TemporalModel::new(view.to_weights().expect("decodes"), backend).expect("model");
    model.classify(frames).expect("classify")
}

const SENTINEL: [f32; 4] = [-7.5; 4];

#[test]
fn logits_equal_the_models_bit_for_bit() {
    for element_type in [ElementType::F32, ElementType::F16] {
        let bytes = blob_with(element_type);
        let ctx = init(&bytes, 8).expect("init");
        let mut pushed = Vec::new();
        // Fewer frames than the window, then exactly full, then wrapped
        // around twice over.
        for t in 0..21 {
            assert_eq!(push(ctx, &frame(t)), RUV_TEMPORAL_OK);
            pushed.push(frame(t));
            let window = &pushed[pushed.len().saturating_sub(8)..];
            let expected = model_logits(&bytes, &window.concat());
            let (code, logits) = classify(ctx, C);
            assert_eq!(code, RUV_TEMPORAL_OK, "after {} frames", t + 1);
            assert_eq!(
                logits.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "after {} frames",
                t + 1
            );
        }
        destroy(ctx);
    }
}

/// A model-version-2 blob (every option on, `.rvne` version 2) runs
/// through the ABI exactly as `aether-model` runs it.
#[test]
fn a_version_2_blob_classifies_like_the_model() {
    let shape = aether_model::ModelShape {
        options: aether_model::ModelOptions {
            norm: aether_model::Norm::Rms,
            conv_taps: 3,
            mlp_hidden: 8,
            centre_shift: 7,
            centre_gain_log2: 3,
            pool_shift: 6,
        },
        ..aether_model::ModelShape::DEFAULT_AETHER
    };
    let weights = aether_model::ModelWeights::random(shape, 11).expect("v2 weights");
    let bytes = RvneBlob::from_weights(&weights, ElementType::F32)
        .expect("v2 blob")
        .into_bytes();
    assert_eq!(&bytes[4..6], &[2, 0], "written as version 2");
    let ctx = init(&bytes, 8).expect("init");
    let mut pushed = Vec::new();
    for t in 0..12 {
        assert_eq!(push(ctx, &frame(t)), RUV_TEMPORAL_OK);
        pushed.push(frame(t));
    }
    let expected = model_logits(&bytes, &pushed[pushed.len() - 8..].concat());
    let (code, logits) = classify(ctx, C);
    assert_eq!(code, RUV_TEMPORAL_OK);
    assert_eq!(
        logits.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    destroy(ctx);
}

#[test]
fn classifying_twice_gives_the_same_logits() {
    let bytes = blob();
    let ctx = init(&bytes, 5).expect("init");
    for t in 0..7 {
        push(ctx, &frame(t));
    }
    let first = classify(ctx, C);
    let second = classify(ctx, C);
    assert_eq!(first.0, RUV_TEMPORAL_OK);
    assert_eq!(first, second);
    destroy(ctx);
}

#[test]
fn init_null_pointers() {
    let bytes = blob();
    let mut ctx = ptr::null_mut();
    // SAFETY: NULL weights with a non-zero length: refused before any read.
    let code = unsafe { ruv_temporal_init(ptr::null(), bytes.len(), D, 8, C, &mut ctx) };
    assert_eq!(code, RUV_TEMPORAL_ERR_INVALID_ARG);
    assert!(ctx.is_null());
    // SAFETY: NULL out_ctx: refused before anything is built.
    let code = unsafe { ruv_temporal_init(bytes.as_ptr(), bytes.len(), D, 8, C, ptr::null_mut()) };
    assert_eq!(code, RUV_TEMPORAL_ERR_INVALID_ARG);
}

#[test]
fn init_zero_dimensions() {
    let bytes = blob();
    for (d, w, c) in [(0, 8, C), (D, 0, C), (D, 8, 0), (0, 0, 0)] {
        let mut ctx = ptr::null_mut();
        // SAFETY: valid blob and out pointer.
        let code = unsafe { ruv_temporal_init(bytes.as_ptr(), bytes.len(), d, w, c, &mut ctx) };
        assert_eq!(code, RUV_TEMPORAL_ERR_INVALID_ARG, "({d}, {w}, {c})");
        assert!(ctx.is_null());
    }
}

#[test]
fn init_dimension_mismatches() {
    let bytes = blob();
    for (d, c) in [
        (D + 1, C),
        (D, C + 1),
        (15, 3),
        (u32::MAX, C),
        (D, u32::MAX),
    ] {
        let mut ctx = ptr::null_mut();
        // SAFETY: valid blob and out pointer.
        let code = unsafe { ruv_temporal_init(bytes.as_ptr(), bytes.len(), d, 8, c, &mut ctx) };
        assert_eq!(code, RUV_TEMPORAL_ERR_INVALID_ARG, "({d}, {c})");
        assert!(ctx.is_null());
    }
}

/// Each kind of corrupt blob, the parse check it fails and the code.
#[test]
fn init_corrupt_blobs() {
    let good = blob();
    type Corrupt = fn(&mut Vec<u8>);
    let cases: &[(&str, Corrupt, i32)] = &[
        ("empty", |b| b.clear(), RUV_TEMPORAL_ERR_INVALID_SIZE),
        (
            "too short",
            |b| b.truncate(27),
            RUV_TEMPORAL_ERR_INVALID_SIZE,
        ),
        ("magic", |b| b[0] ^= 0xFF, RUV_TEMPORAL_ERR_INVALID_ARG),
        ("version 3", |b| b[4] = 3, RUV_TEMPORAL_ERR_INVALID_VERSION),
        // A version-1 body read as version 2: the longer header makes the
        // declared length disagree with the blob's.
        (
            "version 2 on a v1 body",
            |b| b[4] = 2,
            RUV_TEMPORAL_ERR_INVALID_SIZE,
        ),
        (
            "reserved flag bit",
            |b| b[6] |= 0x02,
            RUV_TEMPORAL_ERR_INVALID_VERSION,
        ),
        (
            "reserved byte",
            |b| b[7] = 1,
            RUV_TEMPORAL_ERR_INVALID_VERSION,
        ),
        (
            "truncated body",
            |b| b.truncate(b.len() - 1),
            RUV_TEMPORAL_ERR_INVALID_SIZE,
        ),
        ("extra byte", |b| b.push(0), RUV_TEMPORAL_ERR_INVALID_SIZE),
        (
            "CRC",
            |b| *b.last_mut().expect("crc") ^= 1,
            RUV_TEMPORAL_ERR_INVALID_CRC,
        ),
        (
            "body bit flip",
            |b| b[100] ^= 0x10,
            RUV_TEMPORAL_ERR_INVALID_CRC,
        ),
        (
            "zero head_dim (CRC fixed)",
            |b| {
                b[14..16].copy_from_slice(&0u16.to_le_bytes());
                fix_crc(b);
            },
            RUV_TEMPORAL_ERR_INVALID_ARG,
        ),
        (
            "no layers (CRC fixed)",
            |b| {
                b[16..18].copy_from_slice(&0u16.to_le_bytes());
                fix_crc(b);
            },
            RUV_TEMPORAL_ERR_INVALID_ARG,
        ),
        (
            "weights_len not the shape's (CRC fixed)",
            |b| {
                // Three layers declared, two layers' weights present.
                b[16..18].copy_from_slice(&3u16.to_le_bytes());
                fix_crc(b);
            },
            RUV_TEMPORAL_ERR_INVALID_SIZE,
        ),
        (
            "NaN weight (CRC fixed)",
            |b| {
                b[24..28].copy_from_slice(&f32::NAN.to_le_bytes());
                fix_crc(b);
            },
            RUV_TEMPORAL_ERR_INVALID_ARG,
        ),
        (
            "+inf weight (CRC fixed)",
            |b| {
                let at = b.len() - 8;
                b[at..at + 4].copy_from_slice(&f32::INFINITY.to_le_bytes());
                fix_crc(b);
            },
            RUV_TEMPORAL_ERR_INVALID_ARG,
        ),
    ];
    for (name, corrupt, code) in cases {
        let mut bytes = good.clone();
        corrupt(&mut bytes);
        assert_eq!(init(&bytes, 8).map(destroy), Err(*code), "{name}");
    }
}

#[test]
fn init_wrong_blob_input_dim_and_classes_checked_against_a_valid_other_shape() {
    let mut header = Header::default_aether(ElementType::F32);
    header.input_dim = 8;
    header.n_classes = 3;
    let bytes = RvneBlob::random(header, 1).expect("blob").into_bytes();
    assert_eq!(
        init(&bytes, 4).map(destroy),
        Err(RUV_TEMPORAL_ERR_INVALID_ARG)
    );
    let mut ctx = ptr::null_mut();
    // SAFETY: valid blob and out pointer.
    let code = unsafe { ruv_temporal_init(bytes.as_ptr(), bytes.len(), 8, 4, 3, &mut ctx) };
    assert_eq!(code, RUV_TEMPORAL_OK);
    destroy(ctx);
}

#[test]
fn init_a_ring_too_large_for_memory() {
    // The widest frame a blob can declare (65,535 values, a tiny model
    // otherwise) times u32::MAX frames: 2^50 bytes, beyond any address
    // space, so `malloc` fails whatever the OS's overcommit policy, and
    // init returns NO_MEM instead of aborting.
    let header = Header {
        input_dim: u16::MAX,
        n_q_heads: 1,
        n_kv_heads: 1,
        head_dim: 1,
        n_layers: 1,
        n_classes: 2,
        element_type: ElementType::F16,
        options: aether_model::ModelOptions::V1,
    };
    let bytes = RvneBlob::random(header, 1).expect("blob").into_bytes();
    let mut ctx = ptr::null_mut();
    // SAFETY: valid blob and out pointer.
    let code =
        unsafe { ruv_temporal_init(bytes.as_ptr(), bytes.len(), 65_535, u32::MAX, 2, &mut ctx) };
    assert_eq!(code, RUV_TEMPORAL_ERR_NO_MEM);
    assert!(ctx.is_null());
}

#[test]
fn push_null_pointers() {
    let bytes = blob();
    let ctx = init(&bytes, 4).expect("init");
    // SAFETY: NULL context: refused before any read.
    let code = unsafe { ruv_temporal_push(ptr::null_mut(), frame(0).as_ptr()) };
    assert_eq!(code, RUV_TEMPORAL_ERR_INVALID_ARG);
    // SAFETY: NULL frame: refused before any read.
    let code = unsafe { ruv_temporal_push(ctx, ptr::null()) };
    assert_eq!(code, RUV_TEMPORAL_ERR_INVALID_ARG);
    // Nothing was pushed.
    assert_eq!(classify(ctx, C).0, RUV_TEMPORAL_ERR_INVALID_STATE);
    destroy(ctx);
}

#[test]
fn non_finite_frames_are_refused_and_the_ring_is_unchanged() {
    let bytes = blob();
    let ctx = init(&bytes, 3).expect("init");
    for t in 0..4 {
        push(ctx, &frame(t));
    }
    let before = classify(ctx, C);
    assert_eq!(before.0, RUV_TEMPORAL_OK);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        for column in [0, 7, 15] {
            let mut f = frame(99);
            f[column] = bad;
            assert_eq!(
                push(ctx, &f),
                RUV_TEMPORAL_ERR_INVALID_ARG,
                "{bad} at {column}"
            );
            assert_eq!(classify(ctx, C), before, "{bad} at {column}");
        }
    }
    destroy(ctx);
    // Into an empty ring: still empty afterwards.
    let ctx = init(&bytes, 3).expect("init");
    let mut f = frame(0);
    f[3] = f32::NAN;
    assert_eq!(push(ctx, &f), RUV_TEMPORAL_ERR_INVALID_ARG);
    assert_eq!(classify(ctx, C).0, RUV_TEMPORAL_ERR_INVALID_STATE);
    destroy(ctx);
}

#[test]
fn classify_before_any_push_is_invalid_state() {
    let bytes = blob();
    let ctx = init(&bytes, 4).expect("init");
    assert_eq!(
        classify(ctx, C),
        (RUV_TEMPORAL_ERR_INVALID_STATE, SENTINEL.to_vec())
    );
    destroy(ctx);
}

#[test]
fn classify_count_mismatch_and_nulls_write_nothing() {
    let bytes = blob();
    let ctx = init(&bytes, 4).expect("init");
    push(ctx, &frame(0));
    for n in [0, 1, 3, 5, 255] {
        let (code, logits) = classify(ctx, n);
        assert_eq!(code, RUV_TEMPORAL_ERR_INVALID_ARG, "n_classes {n}");
        assert!(logits.iter().all(|&v| v.to_bits() == (-7.5_f32).to_bits()));
    }
    // SAFETY: NULL logits: refused before any write.
    let code = unsafe { ruv_temporal_classify(ctx, ptr::null_mut(), C) };
    assert_eq!(code, RUV_TEMPORAL_ERR_INVALID_ARG);
    let mut logits = SENTINEL;
    // SAFETY: NULL context: refused before any read.
    let code = unsafe { ruv_temporal_classify(ptr::null_mut(), logits.as_mut_ptr(), C) };
    assert_eq!(code, RUV_TEMPORAL_ERR_INVALID_ARG);
    assert_eq!(logits, SENTINEL);
    // The context still works.
    assert_eq!(classify(ctx, C).0, RUV_TEMPORAL_OK);
    destroy(ctx);
}

/// Finite frames large enough that the projections leave f32: FAIL, no
/// logits written, and the context recovers once they leave the ring.
#[test]
fn overflowing_frames_fail_without_logits_and_the_context_recovers() {
    let bytes = blob();
    let ctx = init(&bytes, 2).expect("init");
    assert_eq!(push(ctx, &[3.0e38; 16]), RUV_TEMPORAL_OK);
    assert_eq!(classify(ctx, C), (RUV_TEMPORAL_FAIL, SENTINEL.to_vec()));
    push(ctx, &frame(1));
    assert_eq!(classify(ctx, C).0, RUV_TEMPORAL_FAIL);
    push(ctx, &frame(2));
    let (code, logits) = classify(ctx, C);
    assert_eq!(code, RUV_TEMPORAL_OK);
    assert_eq!(logits, model_logits(&bytes, &[frame(1), frame(2)].concat()));
    destroy(ctx);
}

#[test]
fn a_context_whose_calls_failed_still_works() {
    let bytes = blob();
    let ctx = init(&bytes, 4).expect("init");
    assert_eq!(classify(ctx, C).0, RUV_TEMPORAL_ERR_INVALID_STATE);
    // SAFETY: NULL frame: refused.
    let code = unsafe { ruv_temporal_push(ctx, ptr::null()) };
    assert_eq!(code, RUV_TEMPORAL_ERR_INVALID_ARG);
    assert_eq!(push(ctx, &[f32::NAN; 16]), RUV_TEMPORAL_ERR_INVALID_ARG);
    assert_eq!(classify(ctx, 3).0, RUV_TEMPORAL_ERR_INVALID_ARG);
    for t in 0..6 {
        assert_eq!(push(ctx, &frame(t)), RUV_TEMPORAL_OK);
        assert_eq!(classify(ctx, 2).0, RUV_TEMPORAL_ERR_INVALID_ARG);
    }
    let (code, logits) = classify(ctx, C);
    assert_eq!(code, RUV_TEMPORAL_OK);
    let frames: Vec<f32> = (2..6).flat_map(frame).collect();
    assert_eq!(logits, model_logits(&bytes, &frames));
    destroy(ctx);
}

#[test]
fn destroy_null_is_a_no_op() {
    destroy(ptr::null_mut());
}

#[test]
fn window_of_one_keeps_only_the_newest_frame() {
    let bytes = blob();
    let ctx = init(&bytes, 1).expect("init");
    for t in 0..3 {
        push(ctx, &frame(t));
    }
    assert_eq!(classify(ctx, C).1, model_logits(&bytes, &frame(2)));
    destroy(ctx);
}

#[test]
fn kernel_self_test_passes() {
    assert_eq!(ruv_temporal_kernel_self_test(), RUV_TEMPORAL_OK);
}

fn encode(logits: *const f32, n: u32, out: *mut u8, out_len: usize) -> i32 {
    // SAFETY: the tests pass NULL or buffers of the stated lengths.
    unsafe { ruv_temporal_encode_packet(logits, n, 9, 1_234_567, 42, out, out_len) }
}

#[test]
fn encode_packet_matches_aether_packet_and_decodes() {
    let logits = [0.5_f32, 1.75, 2.5, -1.0];
    let mut out = [0xEE_u8; 48];
    assert_eq!(
        encode(logits.as_ptr(), 4, out.as_mut_ptr(), 48),
        RUV_TEMPORAL_OK
    );
    let packet = aether_packet::Packet::from_logits(&logits, 9, 1_234_567, 42).expect("packet");
    assert_eq!(out[..40], aether_packet::encode(&packet));
    assert_eq!(out[40..], [0xEE; 8], "only 40 bytes are written");
    let decoded = aether_packet::decode(&out[..40]).expect("decodes");
    assert_eq!((decoded.argmax, decoded.top1_minus_top2), (2, 0.75));
    // The C struct reads the same fields.
    // SAFETY: 40 initialised bytes; the struct is packed (align 1) and
    // every bit pattern is a valid value of each field.
    let view = unsafe { out.as_ptr().cast::<crate::RuvTemporalPacket>().read() };
    assert_eq!({ view.magic }, aether_packet::MAGIC);
    assert_eq!({ view.seq }, 42);
    assert_eq!({ view.ts_us }, 1_234_567);
    assert_eq!({ view.top_logit }, 2.5);
    assert_eq!({ view.crc32 }, crc32fast::hash(&out[..36]));
}

#[test]
fn encode_packet_bad_inputs_write_nothing() {
    let good = [0.5_f32, 1.75, 2.5, -1.0];
    let mut out = [0xEE_u8; 40];
    let cases: &[(&str, *const f32, u32, bool, usize, i32)] = &[
        (
            "logits NULL",
            ptr::null(),
            4,
            true,
            40,
            RUV_TEMPORAL_ERR_INVALID_ARG,
        ),
        (
            "out NULL",
            good.as_ptr(),
            4,
            false,
            40,
            RUV_TEMPORAL_ERR_INVALID_ARG,
        ),
        (
            "n_classes 0",
            good.as_ptr(),
            0,
            true,
            40,
            RUV_TEMPORAL_ERR_INVALID_ARG,
        ),
        (
            "n_classes 1",
            good.as_ptr(),
            1,
            true,
            40,
            RUV_TEMPORAL_ERR_INVALID_ARG,
        ),
        (
            "n_classes 256",
            good.as_ptr(),
            256,
            true,
            40,
            RUV_TEMPORAL_ERR_INVALID_ARG,
        ),
        (
            "n_classes u32::MAX",
            good.as_ptr(),
            u32::MAX,
            true,
            40,
            RUV_TEMPORAL_ERR_INVALID_ARG,
        ),
        (
            "out_len 39",
            good.as_ptr(),
            4,
            true,
            39,
            RUV_TEMPORAL_ERR_INVALID_SIZE,
        ),
        (
            "out_len 0",
            good.as_ptr(),
            4,
            true,
            0,
            RUV_TEMPORAL_ERR_INVALID_SIZE,
        ),
    ];
    for &(name, logits, n, with_out, out_len, code) in cases {
        let target = if with_out {
            out.as_mut_ptr()
        } else {
            ptr::null_mut()
        };
        assert_eq!(encode(logits, n, target, out_len), code, "{name}");
        assert_eq!(out, [0xEE; 40], "{name}");
    }
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let logits = [0.5, bad, 2.5, -1.0];
        assert_eq!(
            encode(logits.as_ptr(), 4, out.as_mut_ptr(), 40),
            RUV_TEMPORAL_ERR_INVALID_ARG,
            "{bad}"
        );
        assert_eq!(out, [0xEE; 40]);
    }
    let overflow = [f32::MAX, -f32::MAX];
    assert_eq!(
        encode(overflow.as_ptr(), 2, out.as_mut_ptr(), 40),
        RUV_TEMPORAL_ERR_INVALID_ARG
    );
    assert_eq!(out, [0xEE; 40]);
}

/// No blob reaches a panic: every header byte set to boundary values (as
/// is, and with the CRC fixed so the later checks run) and every short
/// length end in a code.
#[test]
fn init_answers_every_mutated_blob_with_a_code() {
    let good = blob();
    for offset in 0..28 {
        for value in [0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0xFE, 0xFF] {
            for fix in [false, true] {
                let mut bytes = good.clone();
                bytes[offset] = value;
                if fix {
                    fix_crc(&mut bytes);
                }
                match init(&bytes, 4) {
                    Ok(ctx) => destroy(ctx),
                    Err(code) => assert!(
                        crate::codes::tests::EVERY_CODE.contains(&code),
                        "{offset} {value} {code}"
                    ),
                }
            }
        }
    }
    for len in 0..64 {
        assert_eq!(
            init(&good[..len], 4).map(destroy),
            Err(RUV_TEMPORAL_ERR_INVALID_SIZE),
            "{len}"
        );
    }
}

/// Frames of every magnitude, from subnormal to near `f32::MAX`, either
/// classify to finite logits or fail with FAIL (arithmetic left f32):
/// never a panic, never a non-finite logit, never a partial write.
#[test]
fn frames_of_every_magnitude_give_finite_logits_or_fail() {
    let bytes = blob();
    let ctx = init(&bytes, 6).expect("init");
    let mut state = 0x9E37_79B9_u32;
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..120 {
        let frame: Vec<f32> = (0..D)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // A random sign, exponent and mantissa, finite by
                // construction (exponent field below 255).
                let exponent = (state >> 24) % 255;
                f32::from_bits((state & 0x8000_0000) | (exponent << 23) | (state & 0x7F_FFFF))
            })
            .collect();
        assert_eq!(push(ctx, &frame), RUV_TEMPORAL_OK);
        let (code, logits) = classify(ctx, C);
        if code == RUV_TEMPORAL_OK {
            ok += 1;
            assert!(logits.iter().all(|v| v.is_finite()));
        } else {
            failed += 1;
            assert_eq!(code, RUV_TEMPORAL_FAIL);
            assert_eq!(logits, SENTINEL);
        }
    }
    assert!(failed > 0, "some frames must overflow ({ok} ok)");
    destroy(ctx);
}
