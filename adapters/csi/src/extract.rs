//! Packets in, fixed-rate feature frames out.
//!
//! A model wants D numbers at a steady rate that move with the room and not
//! with the radio. Raw CSI arrives at an uneven rate (jitter, drops, repeats),
//! with the receiver's automatic gain control (AGC) rescaling whole packets,
//! and with a layout that depends on the packet type. The steps below remove
//! each of those in turn; `docs/csi-features.md` is the definition and every
//! constant here is named there.
//!
//! 1. amplitudes `√(i² + q²)` of the kept data subcarriers, in frequency order
//!    ([`crate::layout`]);
//! 2. divide by the packet's RMS amplitude over those subcarriers (an AGC step
//!    scales every subcarrier alike, so the ratio does not move), optionally
//!    `ln(x + 0.01)`;
//! 3. average into D contiguous bands whose sizes differ by at most one;
//! 4. resample to the frame rate: frame k covers `[t0 + ⌊k·10⁶/rate⌋,
//!    t0 + ⌊(k+1)·10⁶/rate⌋)` µs and is the mean of the packets inside;
//!    empty intervals are linearly interpolated between their neighbours;
//! 5. a running per-band normalisation (exponential mean, optionally
//!    variance) carried across calls.
//!
//! Everything is f32 in a fixed order with `libm`, and the state is plain
//! data, so pushing packets one by one gives the same bits as any other
//! split of the same packets.

use crate::CsiError;
use crate::layout::{FieldChoice, Grid, Layout, LayoutFields, MAX_KEPT, MIN_KEPT};

/// The most bands a frame can have: every grid keeps at least this many
/// subcarriers, so no band is ever empty.
pub const MAX_BANDS: usize = MIN_KEPT;

/// The variance floor of [`RunningNorm::MeanVar`]: a standard deviation of
/// 0.01 in units of the packet RMS, so a perfectly still band does not blow
/// its noise up to unit size.
pub const VAR_FLOOR: f32 = 1e-4;

/// The offset inside [`AmplitudeScale::Log`]: keeps a zero amplitude finite
/// (ln 0.01 ≈ −4.6) while leaving typical values (≈ 1) nearly untouched.
pub const LOG_OFFSET: f32 = 0.01;

/// One raw CSI packet: the buffer exactly as `wifi_csi_info_t.buf` holds it
/// and the receive-control fields that decide its layout. This is the shape
/// of the firmware's `ruv_temporal_push_csi` arguments.
#[derive(Clone, Copy, Debug)]
pub struct CsiPacket<'a> {
    /// (imaginary, real) int8 pairs; its length is `wifi_csi_info_t.len`.
    pub buf: &'a [i8],
    /// `rx_ctrl.sig_mode` (0 non-HT, 1 HT).
    pub sig_mode: u8,
    /// `rx_ctrl.cwb` (0 = 20 MHz, 1 = 40 MHz).
    pub cwb: u8,
    /// `rx_ctrl.secondary_channel` (0 none, 1 above, 2 below).
    pub secondary: u8,
    /// `rx_ctrl.stbc`.
    pub stbc: u8,
    /// `rx_ctrl.timestamp`: microseconds, wrapping at 2³².
    pub timestamp_us: u32,
}

impl CsiPacket<'_> {
    /// The layout-deciding fields.
    #[must_use]
    pub const fn fields(&self) -> LayoutFields {
        LayoutFields {
            sig_mode: self.sig_mode,
            cwb: self.cwb,
            secondary: self.secondary,
            stbc: self.stbc,
        }
    }
}

/// How per-packet normalised amplitudes enter the bands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AmplitudeScale {
    /// `a / rms`.
    #[default]
    Linear,
    /// `ln(a / rms + LOG_OFFSET)`: multiplicative fading becomes additive.
    Log,
}

/// The running per-band normalisation applied to every emitted frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RunningNorm {
    /// Frames leave as resampled.
    None,
    /// Subtract an exponential moving mean with this time constant (s): slow
    /// drift and the static room go, the size of fluctuations (motion) stays.
    Mean {
        /// Time constant τ in seconds; the per-frame weight is `1 − e^(−1/(τ·rate))`.
        time_constant_s: f32,
    },
    /// Subtract the moving mean and divide by the moving standard deviation
    /// (floored at √[`VAR_FLOOR`]). This equalises the scale of every band,
    /// which also removes the still-versus-moving level difference once the
    /// statistics settle; use it when a later stage wants unit scale.
    MeanVar {
        /// Time constant τ in seconds, as for [`RunningNorm::Mean`].
        time_constant_s: f32,
    },
}

impl Default for RunningNorm {
    fn default() -> Self {
        Self::Mean {
            time_constant_s: 4.0,
        }
    }
}

/// Everything that decides the frames. Two extractors with equal configs fed
/// the same packets emit the same bits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FeatureConfig {
    /// D, values per frame: 1..=[`MAX_BANDS`]. Default 16.
    pub bands: usize,
    /// Output frames per second: 1..=1000. Default 50.
    pub frame_rate_hz: u32,
    /// The longest silence between two accepted packets (µs) that is still
    /// bridged by interpolation; a longer one (forwards, or backwards as
    /// after a reboot) restarts the stream. 1 frame period ..= 60 s. Default
    /// 500 ms.
    pub max_gap_us: u32,
    /// Which training field to read. Default HT-LTF when present.
    pub field: FieldChoice,
    /// Linear or log amplitudes. Default linear.
    pub amplitude: AmplitudeScale,
    /// The running normalisation. Default mean removal, τ = 4 s.
    pub running_norm: RunningNorm,
    /// Pin the stream to one grid; `None` locks to the first accepted
    /// packet's grid.
    pub grid: Option<Grid>,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            bands: 16,
            frame_rate_hz: 50,
            max_gap_us: 500_000,
            field: FieldChoice::default(),
            amplitude: AmplitudeScale::default(),
            running_norm: RunningNorm::default(),
            grid: None,
        }
    }
}

impl FeatureConfig {
    /// Checks every field against its documented range.
    ///
    /// # Errors
    /// [`CsiError::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), CsiError> {
        let bad = |field, rule| Err(CsiError::InvalidConfig { field, rule });
        if self.bands == 0 || self.bands > MAX_BANDS {
            return bad("bands", "must be 1..=48");
        }
        if self.frame_rate_hz == 0 || self.frame_rate_hz > 1000 {
            return bad("frame_rate_hz", "must be 1..=1000");
        }
        if u64::from(self.max_gap_us) * u64::from(self.frame_rate_hz) < 1_000_000
            || self.max_gap_us > 60_000_000
        {
            return bad("max_gap_us", "must be one frame period ..= 60 s");
        }
        if let RunningNorm::Mean { time_constant_s } | RunningNorm::MeanVar { time_constant_s } =
            self.running_norm
        {
            // `!(x > 0)` also refuses NaN.
            if !(time_constant_s > 0.0 && time_constant_s <= 3600.0) {
                return bad("running_norm", "time constant must be in (0, 3600] s");
            }
        }
        Ok(())
    }
}

/// Running totals since the extractor was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets accepted into the resampler.
    pub packets: u64,
    /// Frames emitted, interpolated ones included.
    pub frames: u64,
    /// Runs of empty frame intervals bridged by interpolation.
    pub gaps: u64,
    /// Frames that were interpolated (the total length of those runs).
    pub gap_frames: u64,
    /// Stream restarts: a silence or backward jump longer than `max_gap_us`.
    pub restarts: u64,
    /// Packets dropped because their timestamp equals the previous one.
    pub duplicates: u64,
    /// Packets dropped because their timestamp is before the previous one
    /// (by at most `max_gap_us`).
    pub out_of_order: u64,
    /// Packets refused with an error.
    pub rejected: u64,
}

/// Why an accepted-looking packet was dropped without error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Same timestamp as the previous accepted packet.
    Duplicate,
    /// Earlier than the previous accepted packet, within `max_gap_us`.
    OutOfOrder,
}

/// What one [`Extractor::push`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Frames handed to the sink by this call.
    pub frames: u32,
    /// How many of them were interpolated.
    pub gap_frames: u32,
    /// This packet started a new stream segment after a too-long gap.
    pub restarted: bool,
    /// The packet was dropped (and counted) instead of used.
    pub dropped: Option<Dropped>,
}

/// One output frame, lent to the sink for the duration of the call.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Stream segment (0 for the first; +1 at each restart or after
    /// [`Extractor::finish`]).
    pub segment: u32,
    /// Frame number inside the segment.
    pub index: u64,
    /// Start of the frame's interval, µs after the segment's first packet.
    pub start_us: u64,
    /// No packet fell in this interval; the values are interpolated.
    pub interpolated: bool,
    /// The D band values.
    pub values: &'a [f32],
}

type Bands = [f32; MAX_BANDS];

/// The resampler's position inside one stream segment.
#[derive(Clone, Copy, Debug)]
struct Segment {
    /// Time (µs) of the last accepted packet after the segment's first,
    /// unwrapped past 2³².
    last_t: u64,
    /// Its raw (wrapping) timestamp.
    last_raw: u32,
    /// The interval packets are being summed into.
    open: u64,
    sum: Bands,
    count: u32,
    /// The last emitted non-interpolated interval and its (pre-norm) value.
    prev: Option<(u64, Bands)>,
    /// Frames through the running normalisation so far.
    normed: u64,
    mean: Bands,
    var: Bands,
}

/// The streaming extractor: plain data, `Clone`, no allocation. Its state
/// after any sequence of calls depends only on the packets pushed, so a
/// clone carried across calls (or a fresh batch pass) gives the same frames.
#[derive(Clone, Debug)]
pub struct Extractor {
    config: FeatureConfig,
    /// Per-frame weight of the running normalisation.
    alpha: f32,
    grid: Option<Grid>,
    segment: Option<Segment>,
    segment_no: u32,
    stats: Stats,
}

/// The band values of one packet, or why it cannot be used.
fn packet_bands(
    config: &FeatureConfig,
    layout: &Layout,
    buf: &[i8],
    out: &mut Bands,
) -> Result<(), CsiError> {
    let mut energy = [0_i32; MAX_KEPT];
    let mut first_word = [false; MAX_KEPT];
    let mut kept = 0;
    for (slot, (_, entry)) in layout.kept(config.field).enumerate().take(MAX_KEPT) {
        // `Layout::new` matched the buffer length, so these indices are in
        // bounds; `get` keeps that a checked fact rather than an assumption.
        let im = i32::from(buf.get(2 * entry).copied().unwrap_or(0));
        let re = i32::from(buf.get(2 * entry + 1).copied().unwrap_or(0));
        energy[slot] = im * im + re * re;
        // The first four bytes of the buffer may be invalid on ESP32
        // (`first_word_invalid`); the C ABI does not carry that flag, so
        // they are never trusted.
        first_word[slot] = entry < 2;
        kept = slot + 1;
    }
    let energy = &mut energy[..kept];
    for slot in 0..kept {
        if first_word[slot] {
            let neighbour = if slot + 1 < kept {
                slot + 1
            } else {
                slot.saturating_sub(1)
            };
            energy[slot] = energy[neighbour];
        }
    }
    let total: i64 = energy.iter().map(|&e| i64::from(e)).sum();
    if total == 0 {
        return Err(CsiError::SilentPacket);
    }
    // Exact in f32: total ≤ 108 · 2 · 128² < 2²⁴.
    let rms = libm::sqrtf(total as f32 / kept as f32);
    let bands = config.bands;
    for (b, value) in out.iter_mut().enumerate().take(bands) {
        let lo = b * kept / bands;
        let hi = (b + 1) * kept / bands;
        let mut sum = 0.0_f32;
        for &e in &energy[lo..hi] {
            let x = libm::sqrtf(e as f32) / rms;
            sum += match config.amplitude {
                AmplitudeScale::Linear => x,
                AmplitudeScale::Log => libm::logf(x + LOG_OFFSET),
            };
        }
        *value = sum / (hi - lo) as f32;
    }
    Ok(())
}

impl Extractor {
    /// An extractor with no packets seen.
    ///
    /// # Errors
    /// [`CsiError::InvalidConfig`] when [`FeatureConfig::validate`] fails.
    pub fn new(config: FeatureConfig) -> Result<Self, CsiError> {
        config.validate()?;
        let alpha = match config.running_norm {
            RunningNorm::None => 0.0,
            RunningNorm::Mean { time_constant_s } | RunningNorm::MeanVar { time_constant_s } => {
                1.0 - libm::expf(-1.0 / (time_constant_s * config.frame_rate_hz as f32))
            }
        };
        Ok(Self {
            config,
            alpha,
            grid: config.grid,
            segment: None,
            segment_no: 0,
            stats: Stats::default(),
        })
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &FeatureConfig {
        &self.config
    }

    /// The totals so far.
    #[must_use]
    pub const fn stats(&self) -> Stats {
        self.stats
    }

    /// The grid the stream is locked (or pinned) to, once known.
    #[must_use]
    pub const fn grid(&self) -> Option<Grid> {
        self.grid
    }

    /// Feeds one packet; every frame whose interval this packet closes goes
    /// to `sink` in time order.
    ///
    /// # Errors
    /// [`CsiError::UnsupportedLayout`], [`CsiError::GridChanged`] or
    /// [`CsiError::SilentPacket`]; the signal state is then unchanged and
    /// only `stats().rejected` is incremented.
    pub fn push<F: FnMut(&Frame<'_>)>(
        &mut self,
        packet: &CsiPacket<'_>,
        sink: &mut F,
    ) -> Result<PushReport, CsiError> {
        let mut bands = [0.0_f32; MAX_BANDS];
        let checked = Layout::new(packet.fields(), packet.buf.len()).and_then(|layout| {
            let grid = layout.grid(self.config.field);
            match self.grid {
                Some(expected) if expected != grid => Err(CsiError::GridChanged {
                    expected,
                    found: grid,
                }),
                _ => packet_bands(&self.config, &layout, packet.buf, &mut bands).map(|()| grid),
            }
        });
        let grid = match checked {
            Ok(grid) => grid,
            Err(error) => {
                self.stats.rejected += 1;
                return Err(error);
            }
        };
        self.grid = Some(grid);
        let mut report = PushReport::default();
        let raw = packet.timestamp_us;
        let Some(seg) = self.segment.as_mut() else {
            self.start_segment(raw, &bands);
            return Ok(report);
        };
        // Serial-number arithmetic: the signed distance on the 2³² circle.
        let delta = raw.wrapping_sub(seg.last_raw) as i32;
        if delta.unsigned_abs() > self.config.max_gap_us {
            self.close_open(sink, &mut report);
            self.segment_no += 1;
            self.stats.restarts += 1;
            report.restarted = true;
            self.start_segment(raw, &bands);
            return Ok(report);
        }
        if delta == 0 {
            self.stats.duplicates += 1;
            report.dropped = Some(Dropped::Duplicate);
            return Ok(report);
        }
        if delta < 0 {
            self.stats.out_of_order += 1;
            report.dropped = Some(Dropped::OutOfOrder);
            return Ok(report);
        }
        let t = seg.last_t + u64::from(delta.unsigned_abs());
        seg.last_t = t;
        seg.last_raw = raw;
        let interval = t * u64::from(self.config.frame_rate_hz) / 1_000_000;
        if interval != seg.open {
            self.close_open(sink, &mut report);
        }
        self.stats.packets += 1;
        let d = self.config.bands;
        if let Some(seg) = self.segment.as_mut() {
            if interval != seg.open {
                seg.open = interval;
                seg.sum = [0.0; MAX_BANDS];
                seg.count = 0;
            }
            for (s, &b) in seg.sum[..d].iter_mut().zip(&bands[..d]) {
                *s += b;
            }
            seg.count += 1;
        }
        Ok(report)
    }

    /// Ends the stream: emits the last (partial) interval and forgets the
    /// segment, so the next packet starts segment `n + 1` at its own time.
    /// The grid lock and the totals stay.
    pub fn finish<F: FnMut(&Frame<'_>)>(&mut self, sink: &mut F) -> PushReport {
        let mut report = PushReport::default();
        if self.segment.is_some() {
            self.close_open(sink, &mut report);
            self.segment = None;
            self.segment_no += 1;
        }
        report
    }

    /// Opens a segment whose clock starts at this packet (segment times are
    /// relative, so the unwrapped timeline starts at 0).
    fn start_segment(&mut self, raw: u32, bands: &Bands) {
        let mut sum = [0.0; MAX_BANDS];
        sum[..self.config.bands].copy_from_slice(&bands[..self.config.bands]);
        self.segment = Some(Segment {
            last_t: 0,
            last_raw: raw,
            open: 0,
            sum,
            count: 1,
            prev: None,
            normed: 0,
            mean: [0.0; MAX_BANDS],
            var: [0.0; MAX_BANDS],
        });
        self.stats.packets += 1;
    }

    /// Emits the open interval, preceded by the interpolated empty intervals
    /// since the previous emitted one.
    fn close_open<F: FnMut(&Frame<'_>)>(&mut self, sink: &mut F, report: &mut PushReport) {
        let d = self.config.bands;
        let Some(seg) = self.segment.as_mut() else {
            return;
        };
        let mut value = [0.0_f32; MAX_BANDS];
        let count = seg.count as f32;
        for (v, &s) in value[..d].iter_mut().zip(&seg.sum[..d]) {
            *v = s / count;
        }
        if let Some((prev_index, prev)) = seg.prev {
            let span = seg.open - prev_index;
            if span > 1 {
                self.stats.gaps += 1;
                for j in prev_index + 1..seg.open {
                    let w = (j - prev_index) as f32 / span as f32;
                    let mut filled = [0.0_f32; MAX_BANDS];
                    for ((f, &p), &n) in filled[..d].iter_mut().zip(&prev[..d]).zip(&value[..d]) {
                        *f = p + (n - p) * w;
                    }
                    Self::emit(
                        &self.config,
                        self.alpha,
                        seg,
                        self.segment_no,
                        j,
                        true,
                        &mut filled,
                        sink,
                    );
                    self.stats.frames += 1;
                    self.stats.gap_frames += 1;
                    report.frames += 1;
                    report.gap_frames += 1;
                }
            }
        }
        seg.prev = Some((seg.open, value));
        let open = seg.open;
        Self::emit(
            &self.config,
            self.alpha,
            seg,
            self.segment_no,
            open,
            false,
            &mut value,
            sink,
        );
        self.stats.frames += 1;
        report.frames += 1;
    }

    /// Runs the running normalisation over `values` in place and hands the
    /// frame to the sink.
    #[allow(clippy::too_many_arguments)]
    fn emit<F: FnMut(&Frame<'_>)>(
        config: &FeatureConfig,
        alpha: f32,
        seg: &mut Segment,
        segment: u32,
        index: u64,
        interpolated: bool,
        values: &mut Bands,
        sink: &mut F,
    ) {
        let d = config.bands;
        let with_var = matches!(config.running_norm, RunningNorm::MeanVar { .. });
        if !matches!(config.running_norm, RunningNorm::None) {
            // A cumulative mean at first (weight 1/(n+1)), the exponential
            // one once that weight falls below alpha: no start-up bias.
            let a = alpha.max(1.0 / (seg.normed as f32 + 1.0));
            for ((x, m), v) in values[..d]
                .iter_mut()
                .zip(&mut seg.mean[..d])
                .zip(&mut seg.var[..d])
            {
                let diff = *x - *m;
                *m += a * diff;
                let centred = *x - *m;
                if with_var {
                    *v = (1.0 - a) * (*v + a * diff * diff);
                    *x = centred / libm::sqrtf(v.max(VAR_FLOOR));
                } else {
                    *x = centred;
                }
            }
            seg.normed += 1;
        }
        let start_us = index * 1_000_000 / u64::from(config.frame_rate_hz);
        sink(&Frame {
            segment,
            index,
            start_us,
            interpolated,
            values: &values[..d],
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(buf: &[i8], t: u32) -> CsiPacket<'_> {
        CsiPacket {
            buf,
            sig_mode: 0,
            cwb: 0,
            secondary: 0,
            stbc: 0,
            timestamp_us: t,
        }
    }

    #[test]
    fn agc_scale_cancels_in_the_bands() {
        let config = FeatureConfig::default();
        let layout = Layout::new(packet(&[0; 128], 0).fields(), 128).unwrap();
        let a: Vec<i8> = (0..128).map(|k| ((k * 7) % 23) as i8 - 11).collect();
        let b: Vec<i8> = a.iter().map(|&x| x * 4).collect();
        let (mut fa, mut fb) = ([0.0; MAX_BANDS], [0.0; MAX_BANDS]);
        packet_bands(&config, &layout, &a, &mut fa).unwrap();
        packet_bands(&config, &layout, &b, &mut fb).unwrap();
        for (x, y) in fa.iter().zip(&fb) {
            assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        }
    }

    #[test]
    fn bands_differ_in_size_by_at_most_one() {
        for kept in [48_usize, 52, 108] {
            for d in 1..=MAX_BANDS {
                let sizes: Vec<usize> = (0..d).map(|b| (b + 1) * kept / d - b * kept / d).collect();
                assert_eq!(sizes.iter().sum::<usize>(), kept);
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1 && *lo >= 1, "kept {kept} d {d}: {sizes:?}");
            }
        }
    }
}
