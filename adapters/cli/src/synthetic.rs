//! The demo scene: a deterministic sequence of synthetic CSI-like frames.
//!
//! The demo needs frames with recognisable temporal structure, and a
//! bundled file that anyone can regenerate and check. There are no legally
//! shareable labelled CSI recordings in this repository yet, so the frames
//! are synthetic, made by a small physical caricature of WiFi channel state
//! information, documented here and in `assets/README.md`:
//!
//! - A frame is [`FEATURES`] = 16 values: the normalised amplitude of 16
//!   subcarrier groups, sampled at [`FRAME_RATE_HZ`] = 20 frames/s.
//! - A static room gives every group a fixed multipath amplitude, the
//!   *profile*, which depends on where the person's body is: standing,
//!   seated and lying postures have different profiles (a phase shift of
//!   the same ripple across subcarriers).
//! - Activities add motion on top, each with its own temporal shape:
//!   **still** — profile plus breathing (0.25 Hz, ±0.015);
//!   **walking** — a Doppler-like oscillation whose frequency grows across
//!   subcarriers (0.8–2 Hz), gated by a 1.8 Hz gait envelope;
//!   **gesture** — a 3 Hz burst on groups 4–9 only, rising and falling
//!   over the segment; **sit-down** — a smooth transition from the
//!   current profile to the seated one with moderate motion while it
//!   happens; **fall** — a 0.3 s switch to the lying profile under a large
//!   broadband transient (4 Hz, decaying with a 0.25 s time constant),
//!   then near-stillness.
//! - Every value gets uniform noise and is rounded to 4 decimals.
//!
//! Determinism: noise comes from the `.rvne` crate's xorshift64* and every
//! transcendental function from the pure-Rust `libm`, so the same seed gives
//! the same CSV text on every platform (a test pins the bundled file to
//! this generator).

use std::f64::consts::PI;
use std::fmt::Write as _;

use aether_model::XorShift64Star;

/// Values per frame.
pub(crate) const FEATURES: usize = 16;

/// Frames per second of the synthetic stream.
pub(crate) const FRAME_RATE_HZ: f64 = 20.0;

/// Seed of the bundled sequence's noise.
pub(crate) const BUNDLED_SEED: u64 = 0x5EED_0000_C511_0007;

/// Frames per segment of the bundled sequence (1.6 s): one demo window.
pub(crate) const BUNDLED_SEGMENT: usize = 32;

/// The bundled sequence: a person stands still, walks, gestures, sits down,
/// stays seated, then falls. Six segments of [`BUNDLED_SEGMENT`] frames.
pub(crate) const BUNDLED_SCHEDULE: [Activity; 6] = [
    Activity::Still,
    Activity::Walking,
    Activity::Gesture,
    Activity::SitDown,
    Activity::Still,
    Activity::Fall,
];

/// What the synthetic person is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activity {
    /// Breathing only.
    Still,
    /// Walking through the room.
    Walking,
    /// A hand gesture (a burst on a few subcarrier groups).
    Gesture,
    /// Sitting down.
    SitDown,
    /// Falling to the floor.
    Fall,
}

impl Activity {
    /// Every activity, in the order random schedules index them.
    pub(crate) const ALL: [Self; 5] = [
        Self::Still,
        Self::Walking,
        Self::Gesture,
        Self::SitDown,
        Self::Fall,
    ];

    /// Lowercase name, as printed.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Still => "still",
            Self::Walking => "walking",
            Self::Gesture => "gesture",
            Self::SitDown => "sit-down",
            Self::Fall => "fall",
        }
    }
}

/// Where the body is; selects the static multipath profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Posture {
    Standing,
    Seated,
    Lying,
}

impl Posture {
    /// Phase of the profile's ripple across subcarriers.
    const fn phase(self) -> f64 {
        match self {
            Self::Standing => 0.0,
            Self::Seated => 1.1,
            Self::Lying => 2.3,
        }
    }

    /// Static amplitude of subcarrier group `f` in this posture.
    fn profile(self, f: f64) -> f64 {
        let phase = self.phase();
        1.0 + 0.25 * libm::sin(0.9 * f + phase) + 0.10 * libm::cos(2.3 * f + 0.5 * phase)
    }
}

/// A run of frames of one activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// What happens.
    pub(crate) activity: Activity,
    /// First frame index.
    pub(crate) start: usize,
    /// Frames.
    pub(crate) len: usize,
}

/// Generated frames with their ground-truth segments.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sequence {
    /// Row-major `[frames][FEATURES]`.
    pub(crate) values: Vec<f32>,
    /// The segments, in order, covering every frame.
    pub(crate) segments: Vec<Segment>,
    /// The noise seed.
    pub(crate) seed: u64,
}

impl Sequence {
    /// Number of frames.
    pub(crate) fn frames(&self) -> usize {
        self.values.len() / FEATURES
    }

    /// The activity at frame `index`.
    pub(crate) fn activity_at(&self, index: usize) -> Option<Activity> {
        self.segments
            .iter()
            .find(|s| (s.start..s.start + s.len).contains(&index))
            .map(|s| s.activity)
    }

    /// The CSV text `aether synth --demo-scene` writes: a comment header saying how to
    /// regenerate it, a comment before each segment, one frame per line.
    pub(crate) fn to_csv(&self, regenerate: &str) -> String {
        let mut csv = String::new();
        // Writing to a String cannot fail; `let _` keeps clippy quiet.
        let _ = writeln!(
            csv,
            "# Synthetic CSI-like feature frames (aether-cli src/synthetic.rs): {FEATURES} values \
             per frame\n# (normalised amplitude of {FEATURES} subcarrier groups), {FRAME_RATE_HZ} \
             frames/s, {} frames, noise seed 0x{:016X}.\n# Regenerate with: {regenerate}",
            self.frames(),
            self.seed
        );
        for segment in &self.segments {
            let _ = writeln!(
                csv,
                "# frames {}-{}: {}",
                segment.start,
                segment.start + segment.len - 1,
                segment.activity.name()
            );
            for frame in segment.start..segment.start + segment.len {
                let row = &self.values[frame * FEATURES..(frame + 1) * FEATURES];
                for (index, value) in row.iter().enumerate() {
                    let separator = if index == 0 { "" } else { "," };
                    let _ = write!(csv, "{separator}{value:.4}");
                }
                csv.push('\n');
            }
        }
        csv
    }
}

/// The bundled sequence ([`BUNDLED_SCHEDULE`]) with noise seed `seed`.
pub(crate) fn bundled(seed: u64) -> Sequence {
    let mut generator = Generator::new(seed);
    for activity in BUNDLED_SCHEDULE {
        generator.segment(activity, BUNDLED_SEGMENT);
    }
    generator.finish()
}

/// `frames` frames of randomly chosen activities, 24–96 frames each (the
/// last one cut to fit), everything drawn from `seed`.
pub(crate) fn random(frames: usize, seed: u64) -> Sequence {
    let mut generator = Generator::new(seed);
    let mut left = frames;
    while left > 0 {
        let activity = Activity::ALL[generator.draw(Activity::ALL.len())];
        let len = (24 + generator.draw(73)).min(left);
        generator.segment(activity, len);
        left -= len;
    }
    generator.finish()
}

/// The generator's state: time, posture and the noise source.
struct Generator {
    rng: XorShift64Star,
    seed: u64,
    frame: usize,
    posture: Posture,
    values: Vec<f32>,
    segments: Vec<Segment>,
}

impl Generator {
    fn new(seed: u64) -> Self {
        Self {
            rng: XorShift64Star::new(seed),
            seed,
            frame: 0,
            posture: Posture::Standing,
            values: Vec::new(),
            segments: Vec::new(),
        }
    }

    /// A number in `0..n` (`n` small, so the modulo bias is negligible).
    fn draw(&mut self, n: usize) -> usize {
        // n <= 96: the cast cannot truncate and the result is below n.
        (self.rng.next_u64() % n as u64) as usize
    }

    /// Uniform noise in `[-amplitude, amplitude)`.
    fn noise(&mut self, amplitude: f64) -> f64 {
        f64::from(self.rng.next_symmetric(1.0)) * amplitude
    }

    /// Appends `len` frames of `activity`.
    fn segment(&mut self, activity: Activity, len: usize) {
        let from = self.posture;
        let to = match activity {
            Activity::Walking => Posture::Standing,
            Activity::SitDown => Posture::Seated,
            Activity::Fall => Posture::Lying,
            Activity::Still | Activity::Gesture => from,
        };
        self.segments.push(Segment {
            activity,
            start: self.frame,
            len,
        });
        for i in 0..len {
            // Progress through the segment in [0, 1), seconds since it
            // started, and the global time.
            let progress = i as f64 / len as f64;
            let since = i as f64 / FRAME_RATE_HZ;
            let t = self.frame as f64 / FRAME_RATE_HZ;
            for group in 0..FEATURES {
                let f = group as f64;
                let breathing = 0.015 * wave(0.25, t, 0.4 * f);
                let (clean, noise) = match activity {
                    Activity::Still => (from.profile(f) + breathing, 0.01),
                    Activity::Walking => {
                        let gait = 0.75 + 0.25 * wave(1.8, t, 0.0);
                        let doppler = wave(0.8 + 0.08 * f, t, 0.7 * f);
                        (to.profile(f) + 0.25 * gait * doppler, 0.04)
                    }
                    Activity::Gesture => {
                        let envelope = libm::sin(PI * progress).powi(2);
                        let burst = if (4..10).contains(&group) {
                            0.3 * envelope * wave(3.0, t, f)
                        } else {
                            0.0
                        };
                        (from.profile(f) + breathing + burst, 0.015)
                    }
                    Activity::SitDown => {
                        let s = 0.5 - 0.5 * libm::cos(PI * progress);
                        let motion = 0.12 * libm::sin(PI * progress) * wave(1.2, t, 0.5 * f);
                        let profile = (1.0 - s) * from.profile(f) + s * to.profile(f);
                        (profile + motion, 0.02)
                    }
                    Activity::Fall => {
                        let s = (since / 0.3).min(1.0);
                        let s = 0.5 - 0.5 * libm::cos(PI * s);
                        let impact = 0.6 * libm::exp(-since / 0.25) * wave(4.0, t, 1.3 * f);
                        let profile = (1.0 - s) * from.profile(f) + s * to.profile(f);
                        (profile + impact + 0.7 * breathing, 0.02)
                    }
                };
                let value = clean + self.noise(noise);
                // Four decimals: plenty for a normalised amplitude, and the
                // CSV then prints (and re-reads) every value exactly.
                self.values.push((libm::round(value * 1e4) / 1e4) as f32);
            }
            self.frame += 1;
        }
        self.posture = to;
    }

    fn finish(self) -> Sequence {
        Sequence {
            values: self.values,
            segments: self.segments,
            seed: self.seed,
        }
    }
}

/// `sin(2π·hz·t + phase)`.
fn wave(hz: f64, t: f64, phase: f64) -> f64 {
    libm::sin(2.0 * PI * hz * t + phase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_has_six_segments_of_32_frames() {
        let sequence = bundled(BUNDLED_SEED);
        assert_eq!(sequence.frames(), 6 * BUNDLED_SEGMENT);
        assert_eq!(sequence.segments.len(), 6);
        assert_eq!(sequence.activity_at(0), Some(Activity::Still));
        assert_eq!(sequence.activity_at(40), Some(Activity::Walking));
        assert_eq!(sequence.activity_at(191), Some(Activity::Fall));
        assert_eq!(sequence.activity_at(192), None);
        assert!(sequence.values.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn same_seed_same_frames_other_seed_other_noise() {
        assert_eq!(bundled(7), bundled(7));
        assert_ne!(bundled(7).values, bundled(8).values);
        assert_eq!(random(500, 3), random(500, 3));
    }

    #[test]
    fn random_sequences_have_exactly_the_requested_frames() {
        for frames in [1, 23, 24, 97, 4096] {
            let sequence = random(frames, 11);
            assert_eq!(sequence.frames(), frames);
            let covered: usize = sequence.segments.iter().map(|s| s.len).sum();
            assert_eq!(covered, frames);
        }
    }

    /// Motion shows up as frame-to-frame change: walking and a fall move
    /// far more than standing still. (A cheap check that the classes have
    /// the distinct temporal shapes the module promises.)
    #[test]
    fn activities_differ_in_motion_energy() {
        let sequence = bundled(BUNDLED_SEED);
        let energy = |segment: usize| {
            let start = segment * BUNDLED_SEGMENT;
            let mut sum = 0.0;
            for frame in start + 1..start + BUNDLED_SEGMENT {
                for f in 0..FEATURES {
                    let d = sequence.values[frame * FEATURES + f]
                        - sequence.values[(frame - 1) * FEATURES + f];
                    sum += d * d;
                }
            }
            sum
        };
        let (still, walking, fall) = (energy(0), energy(1), energy(5));
        assert!(walking > 10.0 * still, "walking {walking} still {still}");
        assert!(fall > 3.0 * still, "fall {fall} still {still}");
    }
}
