//! `ruv_temporal_push_csi` called as C would: every refusal's code, the
//! context unchanged by each (a context that saw refused packets classifies
//! bit-identically to a twin that never did), and frames equal to the host
//! extractor's — pushing packets through the ABI gives the logits of
//! pushing the host `aether-csi` frames through `ruv_temporal_push`, bit
//! for bit. Also pins the recorded log the C harness replays
//! (`tests/data/csi/walking_esp_csi.log`) to the generator that wrote it.

use alloc::string::String;
use alloc::vec::Vec;
use core::ptr;

use aether_csi::sim::{self, Activity, SimConfig, SimPacket};
use aether_csi::{CsiPacket, Extractor, LayoutFields, LogFormat};
use aether_rvne::{ElementType, Header, RvneBlob};

use crate::codes::*;
use crate::ffi::*;
use crate::tests::{C, D, blob, classify, destroy, init, model_logits, push};

/// Where the recorded log lives, relative to the workspace root.
const LOG: &str = "tests/data/csi/walking_esp_csi.log";

/// The capture behind the recorded log: 10 s of a person walking, HT20
/// (256 bytes) at 100 packets/s with ±2 ms jitter, AGC gain steps, 3 %
/// random drops, a 300 ms radio outage at 6 s (bridged by interpolated
/// frames: shorter than the 500 ms gap limit), 1 % duplicated packets, and
/// a receiver clock that wraps past 2³² four seconds in.
pub(crate) fn recorded_config() -> SimConfig {
    let config = SimConfig {
        seed: 2024,
        drop_probability: 0.03,
        outage_s: Some((6.0, 0.3)),
        duplicate_probability: 0.01,
        start_timestamp_us: u32::MAX - 4_000_000,
        ..SimConfig::default()
    };
    // The generator's defaults are the rest of the capture described above.
    assert_eq!(
        (config.activity, config.duration_s, config.packet_rate_hz),
        (Activity::Walking, 10.0, 100.0)
    );
    assert_eq!(
        (config.jitter_us, config.agc_steps, config.len),
        (2_000, true, 256)
    );
    assert_eq!(
        config.fields,
        LayoutFields {
            sig_mode: 1,
            cwb: 0,
            secondary: 0,
            stbc: 0
        }
    );
    config
}

fn log_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(LOG)
}

/// The recorded log is exactly what the generator writes for
/// [`recorded_config`] in esp-csi's format, so the note on how it was made
/// cannot go stale. `BLESS=1 cargo test -p aether-firmware
/// recorded_log` rewrites it after a deliberate change.
#[test]
fn the_recorded_log_is_the_generators_output() {
    let log = sim::write_log(&sim::generate(&recorded_config()), LogFormat::EspCsi);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(log_path(), &log).expect("write the recorded log");
    }
    let recorded: String = std::fs::read_to_string(log_path()).expect("the recorded log");
    assert!(recorded == log, "{LOG} is not the generator's output");
}

fn push_csi(ctx: *mut RuvTemporalCtx, packet: &CsiPacket<'_>, out: &mut u32) -> i32 {
    let len = u16::try_from(packet.buf.len()).expect("a CSI buffer fits u16");
    // SAFETY: live context (or NULL, refused first); `len` readable bytes;
    // `out` writable.
    unsafe {
        ruv_temporal_push_csi(
            ctx,
            packet.buf.as_ptr(),
            len,
            packet.sig_mode,
            packet.cwb,
            packet.secondary,
            packet.stbc,
            packet.timestamp_us,
            out,
        )
    }
}

/// Pushes `packet`, asserting OK; returns the frame count.
fn push_ok(ctx: *mut RuvTemporalCtx, packet: &SimPacket) -> u32 {
    let mut frames = u32::MAX;
    assert_eq!(
        push_csi(ctx, &packet.packet(), &mut frames),
        RUV_TEMPORAL_OK
    );
    assert_ne!(frames, u32::MAX, "OK without writing *out_frames");
    frames
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// The recorded capture's packets through `push_csi`, against the host
/// extractor's frames through `ruv_temporal_push` and against
/// `aether-model` over the last `window` host frames: the same frame count
/// after every packet, the same logits bit for bit at every checkpoint.
#[test]
fn push_csi_gives_the_host_extractors_logits_bit_for_bit() {
    let bytes = blob();
    let window = 64;
    let via_csi = init(&bytes, window).expect("init");
    let via_frames = init(&bytes, window).expect("init");
    let config = crate::csi_config(D as usize).expect("16 bands");
    let mut host = Extractor::new(config).expect("host extractor");
    let mut host_frames: Vec<f32> = Vec::new();
    let packets = sim::generate(&recorded_config());
    let mut checked = 0;
    for (k, packet) in packets.iter().enumerate() {
        let before = host_frames.len();
        host.push(&packet.packet(), &mut |frame| {
            host_frames.extend_from_slice(frame.values)
        })
        .expect("the recorded packets are all readable");
        let new_frames = &host_frames[before..];
        for frame in new_frames.chunks(D as usize) {
            assert_eq!(push(via_frames, frame), RUV_TEMPORAL_OK);
        }
        let pushed = push_ok(via_csi, packet);
        assert_eq!(pushed as usize * D as usize, new_frames.len(), "packet {k}");
        if k % 50 == 49 || k + 1 == packets.len() {
            let expected = classify(via_frames, C);
            assert_eq!(expected.0, RUV_TEMPORAL_OK);
            assert_eq!(
                bits(&classify(via_csi, C).1),
                bits(&expected.1),
                "packet {k}"
            );
            let tail = host_frames.len() - host_frames.len().min(window as usize * D as usize);
            let model = model_logits(&bytes, &host_frames[tail..]);
            assert_eq!(bits(&expected.1), bits(&model), "packet {k}");
            checked += 1;
        }
    }
    let stats = host.stats();
    assert!(checked >= 19, "{checked} checkpoints");
    // The capture exercises what it is meant to: duplicates dropped, gaps
    // bridged, no restart (the 2³² wrap is not a jump).
    assert!(
        stats.duplicates > 0 && stats.gaps > 0 && stats.gap_frames >= 10,
        "{stats:?}"
    );
    assert_eq!((stats.restarts, stats.rejected), (0, 0), "{stats:?}");
    assert_eq!(stats.frames as usize * D as usize, host_frames.len());
    destroy(via_csi);
    destroy(via_frames);
}

/// One refused call: its code, `*out_frames` untouched.
fn refuse(ctx: *mut RuvTemporalCtx, what: &str, packet: &CsiPacket<'_>, code: i32) {
    let mut frames = 0xDEAD_u32;
    assert_eq!(push_csi(ctx, packet, &mut frames), code, "{what}");
    assert_eq!(frames, 0xDEAD, "{what}: *out_frames written");
}

/// Every refusal, each with its code, interleaved into a stream; the
/// context that saw them classifies (and keeps classifying) bit-identically
/// to a twin that never did, so neither the ring nor the extractor's
/// stream moved.
#[test]
fn every_refusal_has_its_code_and_changes_nothing() {
    let bytes = blob();
    let ctx = init(&bytes, 32).expect("init");
    let twin = init(&bytes, 32).expect("init");
    let packets = sim::generate(&recorded_config());
    let good = packets[0].packet();

    // Before any packet: nothing to classify, and refusals keep it so.
    let silent = [0_i8; 256];
    refuse(
        ctx,
        "silent first packet",
        &CsiPacket {
            buf: &silent,
            ..good
        },
        RUV_TEMPORAL_ERR_INVALID_ARG,
    );
    assert_eq!(classify(ctx, C).0, RUV_TEMPORAL_ERR_INVALID_STATE);

    for (k, packet) in packets.iter().take(400).enumerate() {
        push_ok(ctx, packet);
        push_ok(twin, packet);
        if k % 37 != 5 {
            continue;
        }
        // Timestamps a little later than the last packet's: were any of
        // these accepted, it would move the stream.
        let later = CsiPacket {
            timestamp_us: packet.timestamp_us.wrapping_add(3_000),
            ..packet.packet()
        };
        refuse(
            ctx,
            "silent packet",
            &CsiPacket {
                buf: &silent,
                ..later
            },
            RUV_TEMPORAL_ERR_INVALID_ARG,
        );
        let short = &packet.buf[..100];
        refuse(
            ctx,
            "100 bytes",
            &CsiPacket {
                buf: short,
                ..later
            },
            RUV_TEMPORAL_ERR_NOT_SUPPORTED,
        );
        refuse(
            ctx,
            "empty",
            &CsiPacket { buf: &[], ..later },
            RUV_TEMPORAL_ERR_NOT_SUPPORTED,
        );
        refuse(
            ctx,
            "sig_mode 3",
            &CsiPacket {
                sig_mode: 3,
                ..later
            },
            RUV_TEMPORAL_ERR_NOT_SUPPORTED,
        );
        refuse(
            ctx,
            "HT40 without a secondary channel",
            &CsiPacket { cwb: 1, ..later },
            RUV_TEMPORAL_ERR_NOT_SUPPORTED,
        );
        refuse(
            ctx,
            "secondary channel 3",
            &CsiPacket {
                secondary: 3,
                ..later
            },
            RUV_TEMPORAL_ERR_NOT_SUPPORTED,
        );
        // A non-HT packet (its LLTF alone) in this HT20 stream: another grid.
        let lltf = &packet.buf[..128];
        refuse(
            ctx,
            "non-HT packet in an HT20 stream",
            &CsiPacket {
                buf: lltf,
                sig_mode: 0,
                ..later
            },
            RUV_TEMPORAL_ERR_INVALID_STATE,
        );
        let mut frames = 0xDEAD_u32;
        // SAFETY: NULL context: refused before anything is read.
        let code = unsafe {
            ruv_temporal_push_csi(
                ptr::null_mut(),
                packet.buf.as_ptr(),
                256,
                1,
                0,
                0,
                0,
                later.timestamp_us,
                &mut frames,
            )
        };
        assert_eq!((code, frames), (RUV_TEMPORAL_ERR_INVALID_ARG, 0xDEAD));
        for len in [256, 0] {
            // SAFETY: NULL buf: refused before any read.
            let code = unsafe {
                ruv_temporal_push_csi(
                    ctx,
                    ptr::null(),
                    len,
                    1,
                    0,
                    0,
                    0,
                    later.timestamp_us,
                    &mut frames,
                )
            };
            assert_eq!(
                (code, frames),
                (RUV_TEMPORAL_ERR_INVALID_ARG, 0xDEAD),
                "NULL buf, len {len}"
            );
        }
        // SAFETY: NULL out_frames: refused before the packet is read.
        let code = unsafe {
            ruv_temporal_push_csi(
                ctx,
                packet.buf.as_ptr(),
                256,
                1,
                0,
                0,
                0,
                later.timestamp_us,
                ptr::null_mut(),
            )
        };
        assert_eq!(code, RUV_TEMPORAL_ERR_INVALID_ARG, "NULL out_frames");
        let here = classify(ctx, C);
        assert_eq!(here.0, RUV_TEMPORAL_OK, "after packet {k}");
        assert_eq!(
            bits(&here.1),
            bits(&classify(twin, C).1),
            "after packet {k}"
        );
    }
    // A duplicate is dropped, not refused: OK, no frame, nothing moves.
    let last = packets[399].packet();
    let mut frames = 0xDEAD_u32;
    assert_eq!(push_csi(ctx, &last, &mut frames), RUV_TEMPORAL_OK);
    assert_eq!(frames, 0);
    // The streams continue identically.
    for packet in &packets[400..] {
        assert_eq!(push_ok(ctx, packet), push_ok(twin, packet));
    }
    assert_eq!(bits(&classify(ctx, C).1), bits(&classify(twin, C).1));
    destroy(ctx);
    destroy(twin);
}

/// A model whose `input_dim` is no band count (more than 48) still works
/// with `ruv_temporal_push`; only CSI is NOT_SUPPORTED.
#[test]
fn csi_needs_an_input_dim_the_extractor_can_cut() {
    let header = Header {
        input_dim: 49,
        ..Header::default_aether(ElementType::F32)
    };
    let bytes = RvneBlob::random(header, 5).expect("blob").into_bytes();
    let mut ctx = ptr::null_mut();
    // SAFETY: valid blob and out pointer.
    let code = unsafe { ruv_temporal_init(bytes.as_ptr(), bytes.len(), 49, 4, C, &mut ctx) };
    assert_eq!(code, RUV_TEMPORAL_OK);
    let packets = sim::generate(&recorded_config());
    refuse(
        ctx,
        "49 inputs",
        &packets[0].packet(),
        RUV_TEMPORAL_ERR_NOT_SUPPORTED,
    );
    let frame = [0.25_f32; 49];
    // SAFETY: live context, 49 floats.
    let code = unsafe { ruv_temporal_push(ctx, frame.as_ptr()) };
    assert_eq!(code, RUV_TEMPORAL_OK);
    assert_eq!(classify(ctx, C).0, RUV_TEMPORAL_OK);
    destroy(ctx);
    assert_eq!(crate::csi_config(48).map(|c| c.bands), Some(48));
    assert_eq!(crate::csi_config(0), None);
}
