//! A raw-CSI generator: ESP32-like packets and logs from a simulated room.
//!
//! Real captures cannot be shipped with the repository, yet the extractor's
//! claims (AGC steps cancel, drops do not break the frame rate, motion shows)
//! need data with a known truth. This module synthesises it: a multipath
//! channel whose reflections follow a simulated person, sampled on exactly
//! the subcarriers of an Espressif layout, scaled by a stepping AGC gain,
//! quantised to int8 I/Q, sent at a jittered nominal rate with drops — and
//! written as both log formats with boot noise around them. Everything is
//! seeded ([`SplitMix64`]) and uses `libm`, so a seed gives the same bytes on
//! every platform.

use std::fmt::Write as _;
use std::string::String;
use std::vec::Vec;

use crate::extract::CsiPacket;
use crate::layout::{Grid, Layout, LayoutFields};
use crate::log::{CSI_TOOL_HEADER, CsiRecord, ESP_CSI_HEADER, LogFormat};

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, seedable, and good enough
/// for test data; independent streams come from different seeds.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator at `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub const fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// Standard normal (Box–Muller, one of the pair).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(core::f64::consts::TAU * u2)
    }
}

/// What the simulated person does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    /// Nobody in the room: static paths and noise only.
    Empty,
    /// A person standing still: a reflector that only breathes (path ±1.5 mm).
    Still,
    /// A person walking back and forth (path length 3.5–6.5 m, ≈1.5 m/s).
    Walking,
}

/// How to generate one capture.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Seed of every random stream (timing, noise, AGC each derive their own).
    pub seed: u64,
    /// The person's activity.
    pub activity: Activity,
    /// Capture length in seconds.
    pub duration_s: f64,
    /// Nominal packet rate (Hz).
    pub packet_rate_hz: f64,
    /// Timestamp jitter: uniform in ±this many µs around the nominal time.
    pub jitter_us: u32,
    /// Probability that a packet is lost.
    pub drop_probability: f64,
    /// A radio outage: every packet in `[start, start + length)` seconds lost.
    pub outage_s: Option<(f64, f64)>,
    /// Probability that a packet is delivered twice (same timestamp).
    pub duplicate_probability: f64,
    /// Whether the AGC gain steps (every 1–3 s, by ×0.6…×1.6, kept in
    /// 0.5…1.8 of nominal); off keeps the gain at nominal.
    pub agc_steps: bool,
    /// Signal-to-noise ratio of the channel estimate, dB.
    pub snr_db: f64,
    /// The receiver's local clock at the first packet, µs (wraps at 2³²).
    pub start_timestamp_us: u32,
    /// The packet type, which decides the layout.
    pub fields: LayoutFields,
    /// The buffer length (must form a [`Layout`] with `fields`).
    pub len: usize,
}

impl Default for SimConfig {
    /// Ten seconds of HT20 (secondary none, no STBC, 256 bytes) at 100 Hz.
    fn default() -> Self {
        Self {
            seed: 1,
            activity: Activity::Walking,
            duration_s: 10.0,
            packet_rate_hz: 100.0,
            jitter_us: 2_000,
            drop_probability: 0.02,
            outage_s: None,
            duplicate_probability: 0.0,
            agc_steps: true,
            snr_db: 30.0,
            start_timestamp_us: 1_000_000,
            fields: LayoutFields {
                sig_mode: 1,
                cwb: 0,
                secondary: 0,
                stbc: 0,
            },
            len: 256,
        }
    }
}

/// One generated packet.
#[derive(Clone, Debug, PartialEq)]
pub struct SimPacket {
    /// The buffer, (imaginary, real) int8 pairs in the layout's order.
    pub buf: Vec<i8>,
    /// The packet type.
    pub fields: LayoutFields,
    /// Receiver clock, µs, wrapping.
    pub timestamp_us: u32,
    /// Packet counter (esp-csi's `id`).
    pub seq: u32,
    /// A plausible RSSI that follows the AGC gain (the gain is what the
    /// receiver uses to keep the ADC level, so a gain step moves the RSSI).
    pub rssi: i8,
    /// The AGC gain applied (1 = nominal), for tests.
    pub gain: f64,
}

impl SimPacket {
    /// The packet as the extractor reads it.
    #[must_use]
    pub fn packet(&self) -> CsiPacket<'_> {
        CsiPacket {
            buf: &self.buf,
            sig_mode: self.fields.sig_mode,
            cwb: self.fields.cwb,
            secondary: self.fields.secondary,
            stbc: self.fields.stbc,
            timestamp_us: self.timestamp_us,
        }
    }

    /// The packet as one log line's record.
    #[must_use]
    pub fn record(&self, format: LogFormat) -> CsiRecord<'_> {
        CsiRecord {
            format,
            seq: (format == LogFormat::EspCsi).then_some(self.seq),
            mac: Some([0x1a, 0, 0, 0, 0, 0]),
            rssi: Some(self.rssi),
            noise_floor: Some(-93),
            channel: Some(11),
            sig_mode: self.fields.sig_mode,
            cwb: self.fields.cwb,
            secondary: self.fields.secondary,
            stbc: self.fields.stbc,
            timestamp_us: self.timestamp_us,
            declared_len: self.buf.len() as u16,
            first_word_invalid: (format == LogFormat::EspCsi).then_some(true),
            data: &self.buf,
        }
    }
}

/// Channel 11's centre frequency and the OFDM subcarrier spacing.
const CARRIER_HZ: f64 = 2.462e9;
const SPACING_HZ: f64 = 312_500.0;
const LIGHT_M_PER_S: f64 = 299_792_458.0;
/// int8 units of the channel's RMS at nominal gain: real ESP32 captures sit
/// around 15–30.
const NOMINAL_SCALE: f64 = 28.0;
/// The static room: (path length m, amplitude).
const STATIC_PATHS: [(f64, f64); 4] = [(3.0, 1.0), (4.3, 0.55), (5.6, 0.35), (8.1, 0.2)];

/// The person's reflection at time `t`: (path length m, amplitude).
fn person(activity: Activity, t: f64) -> Option<(f64, f64)> {
    use core::f64::consts::TAU;
    match activity {
        Activity::Empty => None,
        Activity::Still => Some((5.0 + 0.0015 * libm::sin(TAU * 0.25 * t), 0.3)),
        Activity::Walking => {
            let d = 5.0 + 1.5 * libm::sin(TAU * t / 6.0) + 0.05 * libm::sin(TAU * 1.8 * t);
            Some((d, 0.45 * (1.0 + 0.3 * libm::sin(TAU * 0.9 * t))))
        }
    }
}

/// The channel's complex response at subcarrier `sc` (relative to the
/// field's centre) at time `t`.
fn response(activity: Activity, t: f64, sc: i16) -> (f64, f64) {
    let f = CARRIER_HZ + f64::from(sc) * SPACING_HZ;
    let (mut re, mut im) = (0.0, 0.0);
    for (d, g) in STATIC_PATHS.into_iter().chain(person(activity, t)) {
        let phase = -core::f64::consts::TAU * f * d / LIGHT_M_PER_S;
        re += g * libm::cos(phase);
        im += g * libm::sin(phase);
    }
    (re, im)
}

fn quantise(x: f64) -> i8 {
    libm::round(x).clamp(-128.0, 127.0) as i8
}

/// Generates the packets of one capture.
///
/// # Panics
/// If `config.fields` and `config.len` are not a [`Layout`] (a test bug).
#[must_use]
pub fn generate(config: &SimConfig) -> Vec<SimPacket> {
    let layout =
        Layout::new(config.fields, config.len).expect("SimConfig must name a supported layout");
    let mut timing = SplitMix64::new(config.seed ^ 0x7469_6d69_6e67);
    let mut noise = SplitMix64::new(config.seed ^ 0x006e_6f69_7365);
    let mut agc = SplitMix64::new(config.seed ^ 0x0061_6763);
    let period_us = 1e6 / config.packet_rate_hz;
    let count = libm::floor(config.duration_s * config.packet_rate_hz) as u64;
    let sigma = libm::pow(10.0, -config.snr_db / 20.0) / core::f64::consts::SQRT_2;
    // The channel's RMS over the static paths sets the nominal scale.
    let rms = libm::sqrt(STATIC_PATHS.iter().map(|(_, g)| g * g).sum::<f64>());
    let mut gain = 1.0;
    let mut next_step_s = 1.0 + 2.0 * agc.uniform();
    let mut out = Vec::new();
    let mut seq = 0_u32;
    for n in 0..count {
        let jitter = (timing.uniform() * 2.0 - 1.0) * f64::from(config.jitter_us);
        let lost = timing.uniform() < config.drop_probability;
        let twice = timing.uniform() < config.duplicate_probability;
        let t_us = n as f64 * period_us + jitter;
        let t = t_us.max(0.0) / 1e6;
        while config.agc_steps && t >= next_step_s {
            let factor = [0.6, 0.8, 1.25, 1.6][(agc.next_u64() % 4) as usize];
            gain = f64::clamp(gain * factor, 0.5, 1.8);
            next_step_s += 1.0 + 2.0 * agc.uniform();
        }
        // Noise is drawn for every packet, lost or not, so the streams stay
        // aligned across configurations that differ only in drops.
        let scale = NOMINAL_SCALE * gain / rms;
        let mut buf = vec![0_i8; layout.len()];
        for entry in 0..layout.len() / 2 {
            let (n_re, n_im) = (noise.normal() * sigma, noise.normal() * sigma);
            let Some((grid, sc)) = layout.entry_subcarrier(entry) else {
                continue;
            };
            if sc == 0
                || sc.unsigned_abs() > grid.edge().unsigned_abs()
                || (grid == Grid::Ht40 && sc.abs() == 1)
            {
                continue;
            }
            let (re, im) = response(config.activity, t, sc);
            buf[2 * entry] = quantise((im + n_im * rms) * scale);
            buf[2 * entry + 1] = quantise((re + n_re * rms) * scale);
        }
        // ESP32's invalid first word (`first_word_invalid`): junk bytes.
        buf[..4].copy_from_slice(&[101, -48, 5, 0]);
        let in_outage = config
            .outage_s
            .is_some_and(|(start, length)| t >= start && t < start + length);
        if lost || in_outage {
            continue;
        }
        let timestamp_us = config
            .start_timestamp_us
            .wrapping_add(libm::round(t_us.max(0.0)) as u32);
        let rssi = libm::round(-60.0 - 20.0 * libm::log10(gain)) as i8;
        let packet = SimPacket {
            buf,
            fields: config.fields,
            timestamp_us,
            seq,
            rssi,
            gain,
        };
        seq = seq.wrapping_add(1);
        if twice {
            out.push(packet.clone());
        }
        out.push(packet);
    }
    out
}

/// Writes packets as a serial log of `format`: boot noise, the format's
/// header, the `CSI_DATA` lines, and a driver message every 97 packets.
#[must_use]
pub fn write_log(packets: &[SimPacket], format: LogFormat) -> String {
    let mut log = String::new();
    for line in [
        "ets Jun  8 2016 00:22:57",
        "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
        "I (29) boot: ESP-IDF v5.1.2 2nd stage bootloader",
        "I (530) wifi:mode : sta (1a:00:00:00:00:00)",
        "I (540) csi_recv: ================ CSI RECV ================",
    ] {
        log.push_str(line);
        log.push('\n');
    }
    log.push_str(match format {
        LogFormat::EspCsi => ESP_CSI_HEADER,
        LogFormat::CsiTool => CSI_TOOL_HEADER,
    });
    log.push('\n');
    for (k, packet) in packets.iter().enumerate() {
        if k % 97 == 96 {
            // Driver chatter lands between packets on a real serial line.
            let _ = writeln!(
                log,
                "W ({}) wifi:<ba-add>idx:0 (ifx:0, 1a:00:00:00:00:00), tid:0",
                1000 + k
            );
        }
        let _ = packet.record(format).write_line(format, &mut log);
        log.push('\n');
    }
    log
}
