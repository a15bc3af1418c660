//! The synthetic CSI-feature set (`docs/training-data.md`, "Synthetic
//! set"): labelled recordings anyone can regenerate bit for bit, for
//! training and testing the temporal model before real labelled CSI
//! recordings exist.
//!
//! A frame is `input_dim` values, the normalised amplitudes of that many
//! subcarrier groups, at [`FRAME_RATE_HZ`]. Each sequence is one person
//! doing one activity in a room of its own: a random static multipath
//! profile, breathing throughout, and from a random onset frame the
//! activity's motion. The classes are built to differ in *temporal shape*
//! (how fast, how periodic, what comes after), not in level or spread:
//! per-sequence gain, offset and noise, and random profiles, keep a
//! classifier on per-window mean and standard deviation well below
//! perfect.
//!
//! Determinism: all randomness comes from the crate's SplitMix64, every
//! transcendental function from `libm`, and each sequence has its own seed
//! derived from `(seed, class, index)`, so a sequence is the same bits on
//! every platform and does not change when `per_class` does.

use core::f64::consts::{PI, TAU};

use crate::rng::{SplitMix64, mix};
use crate::{DatasetError, Recordings, Sequence};

/// The class names, in label order.
pub const CLASSES: [&str; 5] = ["still", "walking", "fall", "sit-down", "wave"];

/// Frames per second.
pub const FRAME_RATE_HZ: f64 = 50.0;

/// The shortest sequence the generator makes: 2.56 s, twice
/// [`SHAPE_FRAMES`], so there is room for an onset in the second half with
/// the whole activity shape after it.
pub const MIN_FRAMES: usize = 128;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthConfig {
    /// Values per frame (D ≥ 1).
    pub input_dim: usize,
    /// Frames per sequence (at least [`MIN_FRAMES`]).
    pub frames: usize,
    /// Sequences per class (at least 1).
    pub per_class: usize,
    /// The seed every random draw derives from.
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            input_dim: 16,
            frames: 256,
            per_class: 120,
            seed: 1,
        }
    }
}

/// How hard the set is: the ranges the per-sequence draws come from.
/// Every range is `(low, high)`, drawn uniformly unless its field says
/// otherwise; amplitudes are in units of the profile's mean amplitude 1.
///
/// Why a struct: a harder variant (weaker signal, more subject variation,
/// confusable classes) is a different value of this, not another
/// generator.
#[derive(Debug, Clone, PartialEq)]
pub struct Difficulty {
    /// Overall gain, drawn log-uniformly.
    pub gain: (f64, f64),
    /// Offset added to every value: uniform in `[-offset, offset)`.
    pub offset: f64,
    /// Standard deviation of the Gaussian noise on every value.
    pub noise: (f64, f64),
    /// Breathing rate, Hz.
    pub breathing_hz: (f64, f64),
    /// Breathing amplitude.
    pub breathing: (f64, f64),
    /// Walking: Doppler amplitude.
    pub walking: (f64, f64),
    /// Walking: gait (step) rate, Hz.
    pub gait_hz: (f64, f64),
    /// Fall: descent time, seconds.
    pub fall_s: (f64, f64),
    /// Fall: impact transient amplitude.
    pub impact: (f64, f64),
    /// Sit-down: descent time, seconds.
    pub sit_s: (f64, f64),
    /// Sit-down: micro-motion amplitude after sitting.
    pub micro: (f64, f64),
    /// Wave: gesture amplitude at the most affected subcarrier group.
    pub wave: (f64, f64),
    /// Wave: hand rate, Hz.
    pub wave_hz: (f64, f64),
    /// Wave: rise time of the gesture's envelope, seconds; the gesture
    /// then goes on to the end of the recording, so the recording's last
    /// frame (the one that labels a window) is still waving.
    pub wave_rise_s: (f64, f64),
}

impl Default for Difficulty {
    fn default() -> Self {
        Self {
            gain: (0.7, 1.4),
            offset: 0.2,
            noise: (0.01, 0.03),
            breathing_hz: (0.1, 0.5),
            breathing: (0.02, 0.05),
            walking: (0.06, 0.12),
            gait_hz: (1.6, 2.2),
            fall_s: (0.25, 0.4),
            impact: (0.2, 0.4),
            sit_s: (0.8, 1.2),
            micro: (0.03, 0.06),
            wave: (0.15, 0.3),
            wave_hz: (2.0, 3.0),
            wave_rise_s: (0.2, 0.5),
        }
    }
}

impl Difficulty {
    /// The harder variant (`docs/training-data.md`, "The hard variant"):
    /// weaker and noisier signals, more subject variation (gain, offset,
    /// breathing), and confusable classes — falls nearly as slow as the
    /// fastest sit-downs, sways barely above the noise, small waves. Why:
    /// the default set is the trainer's sanity check; this one separates
    /// models that only just pass it.
    #[must_use]
    pub fn hard() -> Self {
        Self {
            gain: (0.5, 2.0),
            offset: 0.5,
            noise: (0.02, 0.05),
            breathing_hz: (0.1, 0.5),
            breathing: (0.02, 0.08),
            walking: (0.03, 0.08),
            gait_hz: (1.4, 2.4),
            fall_s: (0.3, 0.7),
            impact: (0.08, 0.25),
            sit_s: (0.6, 1.2),
            micro: (0.01, 0.04),
            wave: (0.06, 0.15),
            wave_hz: (1.5, 3.0),
            wave_rise_s: (0.2, 0.8),
        }
    }
}

/// The synthetic set with the default [`Difficulty`]: `per_class`
/// sequences of each class in [`CLASSES`] order, ids like `still-007`,
/// each labelled with its class on every frame.
///
/// # Errors
/// [`DatasetError::ZeroInputDim`]; [`DatasetError::BadSynthConfig`] for
/// `frames < MIN_FRAMES` or `per_class == 0`.
pub fn recordings(config: &SynthConfig) -> Result<Recordings, DatasetError> {
    recordings_with(config, &Difficulty::default())
}

/// [`recordings`] with the ranges of `difficulty`.
///
/// # Errors
/// As [`recordings`].
pub fn recordings_with(
    config: &SynthConfig,
    difficulty: &Difficulty,
) -> Result<Recordings, DatasetError> {
    check(config)?;
    let mut sequences = Vec::with_capacity(CLASSES.len() * config.per_class);
    for (class, name) in CLASSES.iter().enumerate() {
        for index in 0..config.per_class {
            sequences.push(Sequence {
                id: format!("{name}-{index:03}"),
                frames: Drawn::new(config, difficulty, class, index).render(config),
                labels: vec![class; config.frames],
            });
        }
    }
    Ok(Recordings {
        input_dim: config.input_dim,
        classes: CLASSES.iter().map(|&c| c.to_owned()).collect(),
        sequences,
    })
}

/// Frames kept after the latest onset: 1.28 s, so the slowest shape (a
/// 1.2 s sit-down) is complete before the last frame, the one whose label
/// a window takes. [`MIN_FRAMES`] is twice this, so the onset range
/// `[frames/2, frames − SHAPE_FRAMES]` is never empty.
pub const SHAPE_FRAMES: usize = 64;

/// The onset frame of sequence `index` of class `class` (an index into
/// [`CLASSES`]), where its activity starts: for checking and plotting.
///
/// # Errors
/// As [`recordings`], and [`DatasetError::BadSynthConfig`] for a class
/// index outside [`CLASSES`].
pub fn onset(
    config: &SynthConfig,
    difficulty: &Difficulty,
    class: usize,
    index: usize,
) -> Result<usize, DatasetError> {
    check(config)?;
    if class >= CLASSES.len() {
        return Err(DatasetError::BadSynthConfig {
            field: "class",
            problem: format!("index {class} is not below {}", CLASSES.len()),
        });
    }
    Ok(Drawn::new(config, difficulty, class, index).onset)
}

fn check(config: &SynthConfig) -> Result<(), DatasetError> {
    if config.input_dim == 0 {
        return Err(DatasetError::ZeroInputDim);
    }
    if config.frames < MIN_FRAMES {
        return Err(DatasetError::BadSynthConfig {
            field: "frames",
            problem: format!("must be at least {MIN_FRAMES}, got {}", config.frames),
        });
    }
    if config.per_class == 0 {
        return Err(DatasetError::BadSynthConfig {
            field: "per_class",
            problem: "must be at least 1, got 0".to_owned(),
        });
    }
    Ok(())
}

/// The seed of one sequence: independent of every other sequence's.
fn sequence_seed(seed: u64, class: usize, index: usize) -> u64 {
    mix(mix(seed ^ 0xA37E_5EED_0000_0000).wrapping_add(class as u64) ^ mix(index as u64))
}

/// A static multipath profile: the amplitude of each subcarrier group in
/// an empty room, a ripple across groups with random phases.
fn profile(phases: (f64, f64), group: f64) -> f64 {
    1.0 + 0.25 * libm::sin(0.9 * group + phases.0) + 0.10 * libm::cos(2.3 * group + phases.1)
}

/// 0 before `tau = 0`, a raised-cosine rise to 1 over `duration`, then 1.
fn smoothstep(tau: f64, duration: f64) -> f64 {
    if tau <= 0.0 {
        0.0
    } else if tau >= duration {
        1.0
    } else {
        0.5 - 0.5 * libm::cos(PI * tau / duration)
    }
}

/// One sequence's random draws; the draw order is part of the definition
/// (changing it changes every value).
struct Drawn {
    rng: SplitMix64,
    gain: f64,
    offset: f64,
    noise: f64,
    before: (f64, f64),
    after: (f64, f64),
    breathing_hz: f64,
    breathing: f64,
    breathing_phase: f64,
    breathing_spread: f64,
    onset: usize,
    activity: Activity,
}

impl Drawn {
    fn new(config: &SynthConfig, p: &Difficulty, class: usize, index: usize) -> Self {
        let mut rng = SplitMix64::new(sequence_seed(config.seed, class, index));
        let gain = libm::exp(rng.range(libm::log(p.gain.0), libm::log(p.gain.1)));
        let offset = rng.range(-p.offset, p.offset);
        let noise = rng.range(p.noise.0, p.noise.1);
        let before = (rng.range(0.0, TAU), rng.range(0.0, TAU));
        let after = (rng.range(0.0, TAU), rng.range(0.0, TAU));
        let breathing_hz = rng.range(p.breathing_hz.0, p.breathing_hz.1);
        let breathing = rng.range(p.breathing.0, p.breathing.1);
        let breathing_phase = rng.range(0.0, TAU);
        let breathing_spread = rng.range(0.0, TAU);
        let onset = rng.int(config.frames / 2, config.frames - SHAPE_FRAMES);
        let activity = Activity::draw(class, p, &mut rng);
        Self {
            rng,
            gain,
            offset,
            noise,
            before,
            after,
            breathing_hz,
            breathing,
            breathing_phase,
            breathing_spread,
            onset,
            activity,
        }
    }

    /// The `[frames][input_dim]` values; the noise draws continue the
    /// sequence's stream.
    fn render(mut self, config: &SynthConfig) -> Vec<f32> {
        let dim = config.input_dim;
        let mut frames = Vec::with_capacity(config.frames * dim);
        for n in 0..config.frames {
            let t = n as f64 / FRAME_RATE_HZ;
            let tau = (n as f64 - self.onset as f64) / FRAME_RATE_HZ;
            for group in 0..dim {
                let f = group as f64;
                // Position across the band in (0, 1), whatever D is.
                let u = (f + 0.5) / dim as f64;
                let breath = self.breathing
                    * libm::sin(0.4 * f + self.breathing_spread)
                    * libm::sin(TAU * self.breathing_hz * t + self.breathing_phase);
                let clean = self.activity.value(tau, f, u, self.before, self.after) + breath;
                let value = self.gain * clean + self.offset + self.noise * self.rng.normal();
                frames.push(value as f32);
            }
        }
        frames
    }
}

/// A class with its drawn parameters.
enum Activity {
    Still,
    Walking {
        amplitude: f64,
        gait_hz: f64,
        doppler_hz: f64,
        phase: f64,
    },
    Fall {
        descent: f64,
        impact: f64,
        impact_hz: f64,
    },
    SitDown {
        descent: f64,
        micro: f64,
        micro_hz: f64,
        phase: f64,
    },
    Wave {
        amplitude: f64,
        hz: f64,
        rise: f64,
        centre: f64,
    },
}

impl Activity {
    fn draw(class: usize, p: &Difficulty, rng: &mut SplitMix64) -> Self {
        match class {
            1 => Self::Walking {
                amplitude: rng.range(p.walking.0, p.walking.1),
                gait_hz: rng.range(p.gait_hz.0, p.gait_hz.1),
                doppler_hz: rng.range(0.8, 1.2),
                phase: rng.range(0.0, TAU),
            },
            2 => Self::Fall {
                descent: rng.range(p.fall_s.0, p.fall_s.1),
                impact: rng.range(p.impact.0, p.impact.1),
                impact_hz: rng.range(3.0, 5.0),
            },
            3 => Self::SitDown {
                descent: rng.range(p.sit_s.0, p.sit_s.1),
                micro: rng.range(p.micro.0, p.micro.1),
                micro_hz: rng.range(0.6, 1.0),
                phase: rng.range(0.0, TAU),
            },
            4 => Self::Wave {
                amplitude: rng.range(p.wave.0, p.wave.1),
                hz: rng.range(p.wave_hz.0, p.wave_hz.1),
                rise: rng.range(p.wave_rise_s.0, p.wave_rise_s.1),
                centre: rng.range(0.2, 0.8),
            },
            _ => Self::Still,
        }
    }

    /// The noiseless value of group `f` (at band position `u`) `tau`
    /// seconds after the onset, before gain, offset and breathing.
    fn value(&self, tau: f64, f: f64, u: f64, before: (f64, f64), after: (f64, f64)) -> f64 {
        let room = profile(before, f);
        match *self {
            Self::Still => room,
            Self::Walking {
                amplitude,
                gait_hz,
                doppler_hz,
                phase,
            } => {
                // Starts at the onset, ramping up over 0.5 s.
                let ramp = smoothstep(tau, 0.5);
                let gait = 0.75 + 0.25 * libm::sin(TAU * gait_hz * tau);
                let doppler = libm::sin(TAU * (doppler_hz + 0.8 * u) * tau + 0.7 * f + phase);
                room + ramp * amplitude * gait * doppler
            }
            Self::Fall {
                descent,
                impact,
                impact_hz,
            } => {
                let s = smoothstep(tau, descent);
                let transient = if tau >= 0.0 {
                    impact * libm::exp(-tau / 0.2) * libm::sin(TAU * impact_hz * tau + 1.3 * f)
                } else {
                    0.0
                };
                (1.0 - s) * room + s * profile(after, f) + transient
            }
            Self::SitDown {
                descent,
                micro,
                micro_hz,
                phase,
            } => {
                let s = smoothstep(tau, descent);
                let sway = s * micro * libm::sin(TAU * micro_hz * tau + 0.5 * f + phase);
                (1.0 - s) * room + s * profile(after, f) + sway
            }
            Self::Wave {
                amplitude,
                hz,
                rise,
                centre,
            } => {
                let envelope = smoothstep(tau, rise);
                let reach = libm::exp(-((u - centre) / 0.25).powi(2));
                room + amplitude * envelope * reach * libm::sin(TAU * hz * tau + 0.5 * f)
            }
        }
    }
}
