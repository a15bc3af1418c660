//! End-to-end checks of the extractor on generated captures: the claims of
//! `docs/csi-features.md` (AGC steps cancel, drops keep the frame rate,
//! streaming equals batch, motion shows, timestamps wrap) asserted on values.

use aether_csi::sim::{Activity, SimConfig, SimPacket, generate};
use aether_csi::{
    AmplitudeScale, CsiError, CsiPacket, Dropped, Extractor, FeatureConfig, FieldChoice, Frame,
    Grid, Layout, LayoutFields, RunningNorm, Stats,
};

/// Every frame of a capture (after `finish`), with the totals.
fn run(config: FeatureConfig, packets: &[SimPacket]) -> (Vec<Vec<f32>>, Stats) {
    let mut extractor = Extractor::new(config).unwrap();
    let mut frames = Vec::new();
    let mut sink = |f: &Frame<'_>| frames.push(f.values.to_vec());
    for p in packets {
        extractor.push(&p.packet(), &mut sink).unwrap();
    }
    extractor.finish(&mut sink);
    (frames, extractor.stats())
}

fn raw_config() -> FeatureConfig {
    FeatureConfig {
        running_norm: RunningNorm::None,
        ..FeatureConfig::default()
    }
}

/// Mean over bands of each band's temporal variance.
fn motion(frames: &[Vec<f32>]) -> f64 {
    let d = frames[0].len();
    let n = frames.len() as f64;
    (0..d)
        .map(|b| {
            let mean = frames.iter().map(|f| f64::from(f[b])).sum::<f64>() / n;
            frames
                .iter()
                .map(|f| (f64::from(f[b]) - mean).powi(2))
                .sum::<f64>()
                / n
        })
        .sum::<f64>()
        / d as f64
}

#[test]
fn agc_gain_steps_do_not_move_the_features() {
    let base = SimConfig {
        drop_probability: 0.0,
        ..SimConfig::default()
    };
    let stepped = generate(&SimConfig {
        agc_steps: true,
        ..base.clone()
    });
    let flat = generate(&SimConfig {
        agc_steps: false,
        ..base
    });
    // The capture really has gain steps, spanning at least a factor 1.5.
    let (lo, hi) = stepped.iter().fold((f64::MAX, 0.0_f64), |(lo, hi), p| {
        (lo.min(p.gain), hi.max(p.gain))
    });
    assert!(hi / lo >= 1.5, "gain range {lo}..{hi}");
    assert!(flat.iter().all(|p| p.gain == 1.0));
    let (a, _) = run(raw_config(), &stepped);
    let (b, _) = run(raw_config(), &flat);
    assert_eq!(a.len(), b.len());
    let diffs: Vec<f32> = a
        .iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .collect();
    let worst = diffs.iter().copied().fold(0.0_f32, f32::max);
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    // Only int8 quantisation differs: at gain 0.5 a faded subcarrier has a
    // few LSB left. Measured: mean 0.009, worst 0.15 (values are ≈ 1).
    assert!(
        mean < 0.02 && worst < 0.25,
        "feature change from AGC steps: mean {mean}, worst {worst}"
    );
    let (ma, mb) = (motion(&a), motion(&b));
    assert!((ma - mb).abs() / mb < 0.05, "motion statistic {ma} vs {mb}");
    // Without the per-packet normalisation the same steps would dominate:
    // the raw RMS amplitude follows the gain.
    let rms = |p: &SimPacket| {
        let s: i32 = p.buf[128..]
            .iter()
            .map(|&v| i32::from(v) * i32::from(v))
            .sum();
        (f64::from(s) / 64.0).sqrt()
    };
    let ratio = stepped.iter().map(rms).fold(0.0_f64, f64::max)
        / stepped.iter().map(rms).fold(f64::MAX, f64::min);
    assert!(ratio > 1.5, "raw amplitude range {ratio}");
}

#[test]
fn dropped_packets_keep_the_frame_rate_and_are_counted_as_gaps() {
    let config = SimConfig {
        drop_probability: 0.1,
        outage_s: Some((4.0, 0.3)),
        ..SimConfig::default()
    };
    let packets = generate(&config);
    assert!(packets.len() < 920, "{} packets", packets.len());
    let (frames, stats) = run(FeatureConfig::default(), &packets);
    let span = u64::from(packets.last().unwrap().timestamp_us - packets[0].timestamp_us);
    let expected = span * 50 / 1_000_000 + 1;
    assert_eq!(frames.len() as u64, expected);
    assert!(
        (498..=501).contains(&expected),
        "{expected} frames for 10 s at 50 Hz"
    );
    assert_eq!(stats.frames, expected);
    assert_eq!(stats.packets, packets.len() as u64);
    // The 0.3 s outage alone leaves ≥ 13 empty 20 ms intervals in one gap.
    assert!(stats.gaps >= 1 && stats.gap_frames >= 13, "{stats:?}");
    assert_eq!(stats.restarts, 0);
    assert!(frames.iter().flatten().all(|v| v.is_finite()));
}

#[test]
fn an_outage_longer_than_max_gap_restarts_the_stream() {
    let config = SimConfig {
        drop_probability: 0.0,
        outage_s: Some((4.0, 1.0)),
        ..SimConfig::default()
    };
    let packets = generate(&config);
    let mut extractor = Extractor::new(FeatureConfig::default()).unwrap();
    let mut segments = Vec::new();
    let mut restarted = 0;
    for p in &packets {
        let report = extractor
            .push(&p.packet(), &mut |f: &Frame<'_>| {
                segments.push((f.segment, f.index))
            })
            .unwrap();
        restarted += usize::from(report.restarted);
    }
    extractor.finish(&mut |f: &Frame<'_>| segments.push((f.segment, f.index)));
    assert_eq!(restarted, 1);
    assert_eq!(extractor.stats().restarts, 1);
    // Segment 0 covers ~4 s (200 frames), segment 1 ~5 s, both from index 0.
    let first = segments.iter().filter(|s| s.0 == 0).count();
    let second = segments.iter().filter(|s| s.0 == 1).count();
    assert!(
        (199..=201).contains(&first) && (248..=251).contains(&second),
        "{first} + {second}"
    );
    assert_eq!(segments.iter().find(|s| s.0 == 1).unwrap().1, 0);
}

/// An independent, allocation-happy batch pass: all packet band vectors
/// first, then the interval means, gap filling and running norm.
fn batch(config: &FeatureConfig, packets: &[CsiPacket<'_>]) -> Vec<Vec<f32>> {
    let d = config.bands;
    let rate = u64::from(config.frame_rate_hz);
    let mut t = 0_u64;
    let mut last = packets[0].timestamp_us;
    let mut bucketed: Vec<(u64, Vec<f32>)> = Vec::new();
    for (k, p) in packets.iter().enumerate() {
        if k > 0 {
            let delta = p.timestamp_us.wrapping_sub(last) as i32;
            assert!(
                delta > 0 && delta.unsigned_abs() <= config.max_gap_us,
                "test capture must be clean"
            );
            t += u64::from(delta.unsigned_abs());
            last = p.timestamp_us;
        }
        let layout = Layout::new(p.fields(), p.buf.len()).unwrap();
        let kept: Vec<usize> = layout.kept(config.field).map(|(_, e)| e).collect();
        let mut energy: Vec<i32> = kept
            .iter()
            .map(|&e| i32::from(p.buf[2 * e]).pow(2) + i32::from(p.buf[2 * e + 1]).pow(2))
            .collect();
        for s in 0..kept.len() {
            if kept[s] < 2 {
                energy[s] = energy[s + 1];
            }
        }
        let total: i64 = energy.iter().map(|&e| i64::from(e)).sum();
        let rms = libm::sqrtf(total as f32 / kept.len() as f32);
        let bands: Vec<f32> = (0..d)
            .map(|b| {
                let (lo, hi) = (b * kept.len() / d, (b + 1) * kept.len() / d);
                let sum = energy[lo..hi]
                    .iter()
                    .fold(0.0_f32, |s, &e| s + libm::sqrtf(e as f32) / rms);
                sum / (hi - lo) as f32
            })
            .collect();
        bucketed.push((t * rate / 1_000_000, bands));
    }
    let mut means: Vec<(u64, Vec<f32>)> = Vec::new();
    let mut k = 0;
    while k < bucketed.len() {
        let index = bucketed[k].0;
        let group: Vec<&Vec<f32>> = bucketed[k..]
            .iter()
            .take_while(|(i, _)| *i == index)
            .map(|(_, b)| b)
            .collect();
        let mut sum = vec![0.0_f32; d];
        for bands in &group {
            for (s, v) in sum.iter_mut().zip(bands.iter()) {
                *s += v;
            }
        }
        means.push((index, sum.iter().map(|s| s / group.len() as f32).collect()));
        k += group.len();
    }
    let mut frames: Vec<Vec<f32>> = Vec::new();
    for (n, (index, value)) in means.iter().enumerate() {
        if n > 0 {
            let (prev_index, prev) = &means[n - 1];
            let span = index - prev_index;
            for j in prev_index + 1..*index {
                let w = (j - prev_index) as f32 / span as f32;
                frames.push(
                    prev.iter()
                        .zip(value)
                        .map(|(p, v)| p + (v - p) * w)
                        .collect(),
                );
            }
        }
        frames.push(value.clone());
    }
    let RunningNorm::Mean { time_constant_s } = config.running_norm else {
        panic!("batch reference does Mean")
    };
    let alpha = 1.0 - libm::expf(-1.0 / (time_constant_s * config.frame_rate_hz as f32));
    let mut mean = vec![0.0_f32; d];
    for (n, frame) in frames.iter_mut().enumerate() {
        let a = alpha.max(1.0 / (n as f32 + 1.0));
        for (x, m) in frame.iter_mut().zip(mean.iter_mut()) {
            *m += a * (*x - *m);
            *x -= *m;
        }
    }
    frames
}

#[test]
fn streaming_packet_by_packet_equals_a_batch_pass_bit_for_bit() {
    let packets = generate(&SimConfig {
        drop_probability: 0.15,
        ..SimConfig::default()
    });
    let config = FeatureConfig::default();
    let views: Vec<CsiPacket<'_>> = packets.iter().map(SimPacket::packet).collect();
    let expected = batch(&config, &views);
    let (streamed, _) = run(config, &packets);
    assert_eq!(streamed.len(), expected.len());
    for (n, (s, e)) in streamed.iter().zip(&expected).enumerate() {
        let (s, e): (Vec<u32>, Vec<u32>) = (
            s.iter().map(|v| v.to_bits()).collect(),
            e.iter().map(|v| v.to_bits()).collect(),
        );
        assert_eq!(s, e, "frame {n}");
    }
    // Carrying the state across calls: a clone taken mid-stream continues
    // exactly as the original would have.
    let mut first = Extractor::new(config).unwrap();
    let mut frames = Vec::new();
    let half = packets.len() / 2;
    for p in &packets[..half] {
        first
            .push(&p.packet(), &mut |f: &Frame<'_>| {
                frames.push(f.values.to_vec())
            })
            .unwrap();
    }
    // Only the clone goes on; `first` is not used again.
    let mut carried = first.clone();
    for p in &packets[half..] {
        carried
            .push(&p.packet(), &mut |f: &Frame<'_>| {
                frames.push(f.values.to_vec())
            })
            .unwrap();
    }
    carried.finish(&mut |f: &Frame<'_>| frames.push(f.values.to_vec()));
    assert_eq!(frames, streamed);
}

#[test]
fn walking_is_separable_from_standing_still() {
    let mut still = Vec::new();
    let mut walking = Vec::new();
    for seed in 1..=3 {
        for (activity, into) in [
            (Activity::Still, &mut still),
            (Activity::Walking, &mut walking),
        ] {
            let packets = generate(&SimConfig {
                seed,
                activity,
                ..SimConfig::default()
            });
            let (frames, _) = run(FeatureConfig::default(), &packets);
            into.push(motion(&frames[100..]));
        }
    }
    let still_max = still.iter().copied().fold(0.0, f64::max);
    let walking_min = walking.iter().copied().fold(f64::MAX, f64::min);
    // Measured: still ≈ 1e-3 (breathing, noise, quantisation), walking
    // ≈ 1.3e-2; a threshold at 3e-3 separates every capture.
    assert!(still_max < 2e-3, "still {still:?}");
    assert!(walking_min > 6e-3, "walking {walking:?}");
    assert!(
        walking_min > 5.0 * still_max,
        "still {still:?} walking {walking:?}"
    );
}

#[test]
fn timestamps_wrapping_at_2_pow_32_give_the_same_frames() {
    let base = SimConfig {
        drop_probability: 0.05,
        ..SimConfig::default()
    };
    let wrapped = SimConfig {
        start_timestamp_us: u32::MAX - 3_000_000,
        ..base.clone()
    };
    let (a, sa) = run(FeatureConfig::default(), &generate(&base));
    let packets = generate(&wrapped);
    assert!(
        packets.first().unwrap().timestamp_us > packets.last().unwrap().timestamp_us,
        "capture must wrap"
    );
    let (b, sb) = run(FeatureConfig::default(), &packets);
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    assert_eq!(sb.restarts + sb.out_of_order, 0);
}

#[test]
fn duplicates_and_out_of_order_packets_are_dropped_and_counted() {
    let mut packets = generate(&SimConfig {
        duplicate_probability: 0.05,
        ..SimConfig::default()
    });
    let dupes = packets
        .windows(2)
        .filter(|w| w[0].timestamp_us == w[1].timestamp_us)
        .count();
    assert!(dupes > 10, "{dupes}");
    packets.swap(300, 301);
    let mut extractor = Extractor::new(FeatureConfig::default()).unwrap();
    let mut dropped = Vec::new();
    for p in &packets {
        if let Some(d) = extractor
            .push(&p.packet(), &mut |_: &Frame<'_>| {})
            .unwrap()
            .dropped
        {
            dropped.push(d);
        }
    }
    let stats = extractor.stats();
    assert_eq!(stats.duplicates as usize, dupes);
    assert_eq!(stats.out_of_order, 1);
    assert_eq!(
        dropped
            .iter()
            .filter(|d| **d == Dropped::OutOfOrder)
            .count(),
        1
    );
    assert_eq!(stats.packets as usize, packets.len() - dupes - 1);
}

#[test]
fn every_layout_keeps_its_documented_subcarriers_in_frequency_order() {
    // (sig_mode, cwb, secondary, stbc, len, field grid, first and last kept (sc, entry))
    type Kept = (i16, usize);
    type Row = (u8, u8, u8, u8, usize, Grid, Kept, Kept);
    let table: [Row; 13] = [
        (0, 0, 0, 0, 128, Grid::Legacy20, (-26, 38), (26, 26)),
        (1, 0, 0, 0, 256, Grid::Ht20, (-28, 64 + 36), (28, 64 + 28)),
        (1, 0, 0, 1, 384, Grid::Ht20, (-28, 64 + 36), (28, 64 + 28)),
        (0, 0, 2, 0, 128, Grid::Legacy20, (-26, 6), (26, 58)),
        (1, 0, 2, 0, 256, Grid::Ht20, (-28, 64 + 4), (28, 64 + 60)),
        (1, 0, 2, 1, 380, Grid::Ht20, (-28, 64 + 4), (28, 64 + 60)),
        (1, 1, 2, 0, 384, Grid::Ht40, (-58, 64 + 70), (58, 64 + 58)),
        (1, 1, 2, 1, 612, Grid::Ht40, (-58, 64 + 63), (58, 64 + 58)),
        (0, 0, 1, 0, 128, Grid::Legacy20, (-26, 6), (26, 58)),
        (1, 0, 1, 0, 256, Grid::Ht20, (-28, 64 + 4), (28, 64 + 60)),
        (1, 0, 1, 1, 376, Grid::Ht20, (-28, 64 + 2), (28, 64 + 58)),
        (1, 1, 1, 0, 384, Grid::Ht40, (-58, 64 + 70), (58, 64 + 58)),
        (1, 1, 1, 1, 612, Grid::Ht40, (-58, 64 + 63), (58, 64 + 58)),
    ];
    for (sig_mode, cwb, secondary, stbc, len, grid, first, last) in table {
        let fields = LayoutFields {
            sig_mode,
            cwb,
            secondary,
            stbc,
        };
        let layout = Layout::new(fields, len).unwrap();
        assert_eq!(layout.len(), len);
        assert_eq!(layout.has_ht_ltf(), sig_mode == 1);
        assert_eq!(layout.has_stbc_ht_ltf(), stbc == 1);
        assert_eq!(layout.grid(FieldChoice::HtLtfWhenPresent), grid);
        let kept: Vec<(i16, usize)> = layout.kept(FieldChoice::HtLtfWhenPresent).collect();
        assert_eq!(kept.len(), grid.kept(), "{fields:?}");
        assert_eq!((kept[0], kept[kept.len() - 1]), (first, last), "{fields:?}");
        assert!(
            kept.windows(2).all(|w| w[0].0 < w[1].0),
            "ascending frequency"
        );
        assert!(
            kept.iter()
                .all(|&(sc, e)| layout.entry_subcarrier(e).map(|x| x.1) == Some(sc))
        );
        assert!(kept.iter().all(|&(_, e)| 2 * e + 1 < len));
        // The LLTF is always readable, always 48 legacy subcarriers, and a
        // 128-byte prefix of any layout is accepted as LLTF only.
        assert_eq!(layout.kept(FieldChoice::Lltf).count(), 48);
        let lltf_only = Layout::new(fields, 128).unwrap();
        assert!(!lltf_only.has_ht_ltf());
        assert_eq!(
            lltf_only.grid(FieldChoice::HtLtfWhenPresent),
            Grid::Legacy20
        );
        // No pilot, DC or guard entry is kept.
        let sc: Vec<i16> = kept.iter().map(|k| k.0).collect();
        for pilot in match grid {
            Grid::Ht40 => &[-53, -25, -11, -1, 0, 1, 11, 25, 53][..],
            _ => &[-21, -7, 0, 7, 21][..],
        } {
            assert!(!sc.contains(pilot), "{fields:?} keeps {pilot}");
        }
    }
}

#[test]
fn every_extractor_error_is_typed_and_leaves_the_state_unchanged() {
    let packets = generate(&SimConfig::default());
    let mut extractor = Extractor::new(FeatureConfig::default()).unwrap();
    for p in &packets[..50] {
        extractor
            .push(&p.packet(), &mut |_: &Frame<'_>| {})
            .unwrap();
    }
    let before = format!("{:?}", extractor.clone());
    let buf = packets[50].buf.clone();
    let timestamp_us = packets[50].timestamp_us;
    fn with(
        sig_mode: u8,
        cwb: u8,
        secondary: u8,
        stbc: u8,
        buf: &[i8],
        timestamp_us: u32,
    ) -> CsiPacket<'_> {
        CsiPacket {
            buf,
            sig_mode,
            cwb,
            secondary,
            stbc,
            timestamp_us,
        }
    }
    let legacy = vec![7_i8; 128];
    let cases: [(CsiPacket<'_>, CsiError); 6] = [
        (
            with(3, 0, 0, 0, &buf, timestamp_us),
            CsiError::UnsupportedLayout {
                sig_mode: 3,
                bandwidth: 0,
                secondary: 0,
                stbc: 0,
                len: 256,
            },
        ),
        (
            with(0, 1, 1, 0, &legacy, timestamp_us),
            CsiError::UnsupportedLayout {
                sig_mode: 0,
                bandwidth: 1,
                secondary: 1,
                stbc: 0,
                len: 128,
            },
        ),
        (
            with(1, 1, 0, 0, &buf, timestamp_us),
            CsiError::UnsupportedLayout {
                sig_mode: 1,
                bandwidth: 1,
                secondary: 0,
                stbc: 0,
                len: 256,
            },
        ),
        (
            with(1, 0, 0, 0, &buf[..130], timestamp_us),
            CsiError::UnsupportedLayout {
                sig_mode: 1,
                bandwidth: 0,
                secondary: 0,
                stbc: 0,
                len: 130,
            },
        ),
        (
            with(0, 0, 0, 0, &legacy, timestamp_us),
            CsiError::GridChanged {
                expected: Grid::Ht20,
                found: Grid::Legacy20,
            },
        ),
        (
            with(1, 0, 0, 0, &[0; 256], timestamp_us),
            CsiError::SilentPacket,
        ),
    ];
    for (n, (packet, error)) in cases.iter().enumerate() {
        let got = extractor.push(packet, &mut |_: &Frame<'_>| panic!("no frame on error"));
        assert_eq!(got, Err(*error));
        assert_eq!(extractor.stats().rejected, n as u64 + 1);
        assert!(!error.to_string().is_empty());
    }
    let after = format!("{:?}", extractor).replace("rejected: 6", "rejected: 0");
    assert_eq!(after, before);
    // The stream goes on from where it was.
    let report = extractor
        .push(&packets[50].packet(), &mut |_: &Frame<'_>| {})
        .unwrap();
    assert_eq!(report.dropped, None);

    let bad = |config: FeatureConfig, field: &'static str| {
        let Err(CsiError::InvalidConfig { field: got, .. }) = Extractor::new(config) else {
            panic!("{config:?} accepted");
        };
        assert_eq!(got, field);
    };
    let ok = FeatureConfig::default();
    bad(FeatureConfig { bands: 0, ..ok }, "bands");
    bad(FeatureConfig { bands: 49, ..ok }, "bands");
    bad(
        FeatureConfig {
            frame_rate_hz: 0,
            ..ok
        },
        "frame_rate_hz",
    );
    bad(
        FeatureConfig {
            frame_rate_hz: 1001,
            ..ok
        },
        "frame_rate_hz",
    );
    bad(
        FeatureConfig {
            max_gap_us: 19_999,
            ..ok
        },
        "max_gap_us",
    );
    bad(
        FeatureConfig {
            max_gap_us: 60_000_001,
            ..ok
        },
        "max_gap_us",
    );
    bad(
        FeatureConfig {
            running_norm: RunningNorm::Mean {
                time_constant_s: f32::NAN,
            },
            ..ok
        },
        "running_norm",
    );
    bad(
        FeatureConfig {
            running_norm: RunningNorm::MeanVar {
                time_constant_s: 0.0,
            },
            ..ok
        },
        "running_norm",
    );
    assert!(
        Extractor::new(FeatureConfig {
            bands: 48,
            max_gap_us: 20_000,
            ..ok
        })
        .is_ok()
    );
}

#[test]
fn every_option_yields_finite_frames_of_the_configured_width() {
    let packets = generate(&SimConfig {
        duration_s: 3.0,
        ..SimConfig::default()
    });
    for (bands, field, amplitude, running_norm, rate) in [
        (
            1,
            FieldChoice::Lltf,
            AmplitudeScale::Log,
            RunningNorm::MeanVar {
                time_constant_s: 1.0,
            },
            10,
        ),
        (
            48,
            FieldChoice::HtLtfWhenPresent,
            AmplitudeScale::Linear,
            RunningNorm::None,
            100,
        ),
        (
            7,
            FieldChoice::Lltf,
            AmplitudeScale::Linear,
            RunningNorm::Mean {
                time_constant_s: 0.5,
            },
            33,
        ),
    ] {
        let config = FeatureConfig {
            bands,
            field,
            amplitude,
            running_norm,
            frame_rate_hz: rate,
            ..FeatureConfig::default()
        };
        let (frames, stats) = run(config, &packets);
        let span = u64::from(packets.last().unwrap().timestamp_us - packets[0].timestamp_us);
        assert_eq!(
            frames.len() as u64,
            span * u64::from(rate) / 1_000_000 + 1,
            "{config:?}"
        );
        assert!(
            frames
                .iter()
                .all(|f| f.len() == bands && f.iter().all(|v| v.is_finite()))
        );
        assert_eq!(stats.rejected, 0);
    }
    // The first frame of a running-normalised stream is exactly zero (the
    // mean starts at the first value), and MeanVar keeps values bounded.
    let (frames, _) = run(
        FeatureConfig {
            running_norm: RunningNorm::MeanVar {
                time_constant_s: 2.0,
            },
            ..FeatureConfig::default()
        },
        &packets,
    );
    assert!(frames[0].iter().all(|&v| v == 0.0));
    assert!(frames.iter().flatten().all(|v| v.abs() < 50.0));
}
