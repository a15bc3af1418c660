//! The demo scene: one synthetic recording of each class, back to back.
//!
//! The demo must run offline on data anyone can regenerate and check, and
//! no legally shareable labelled CSI recordings ship with the repository,
//! so the scene comes from the documented generator
//! (`docs/training-data.md`, the `aether-dataset` crate) with its own seed,
//! which no training run of the bundled model used: the model has not seen
//! these recordings. `assets/frames.csv` is [`Scene::to_csv`]'s text (a
//! test pins it), a plain frames CSV that `aether classify` reads, with a
//! `#` comment naming each recording's class.

use std::fmt::Write as _;

use aether_dataset::synthetic::{self, SynthConfig};
use aether_dataset::{DatasetError, Recordings};

/// Seed of the scene's recordings.
pub(crate) const SCENE_SEED: u64 = 0x5EED_0000_C511_0007;

/// Frames per recording: the bundled model's window (5.12 s at 50 Hz).
pub(crate) const SCENE_FRAMES: usize = 256;

/// Values per frame.
pub(crate) const FEATURES: usize = 16;

/// The scene: recordings in class order, their frames concatenated.
pub(crate) struct Scene {
    recordings: Recordings,
    /// Row-major `[frames][FEATURES]`, every recording in order.
    values: Vec<f32>,
}

impl Scene {
    /// The bundled scene.
    pub(crate) fn bundled() -> Result<Self, DatasetError> {
        Self::generate(SCENE_SEED, SCENE_FRAMES)
    }

    /// One recording of `frames` frames per class, from `seed`.
    pub(crate) fn generate(seed: u64, frames: usize) -> Result<Self, DatasetError> {
        let recordings = synthetic::recordings(&SynthConfig {
            input_dim: FEATURES,
            frames,
            per_class: 1,
            seed,
        })?;
        let values = recordings
            .sequences
            .iter()
            .flat_map(|s| s.frames.iter().copied())
            .collect();
        Ok(Self { recordings, values })
    }

    /// Every frame, row-major.
    pub(crate) fn values(&self) -> &[f32] {
        &self.values
    }

    /// The recordings: `(first frame, frames, class name)` each.
    pub(crate) fn parts(&self) -> impl Iterator<Item = (usize, usize, &str)> {
        self.recordings
            .sequences
            .iter()
            .scan(0, move |start, sequence| {
                let first = *start;
                *start += sequence.len();
                let label = sequence.labels.first().copied().unwrap_or(0);
                Some((first, sequence.len(), self.class(label)))
            })
    }

    /// The class of frame `t`, or `?` past the end.
    pub(crate) fn class_at(&self, t: usize) -> &str {
        self.parts()
            .find(|&(first, len, _)| (first..first + len).contains(&t))
            .map_or("?", |(_, _, class)| class)
    }

    fn class(&self, label: usize) -> &str {
        self.recordings
            .classes
            .get(label)
            .map_or("?", String::as_str)
    }

    /// The CSV text of `assets/frames.csv`: a comment header saying how to
    /// remake it, then each recording's frames under a comment naming its
    /// class. Values are written in Rust's shortest round-trip form, so the
    /// file parses back to the same bits.
    pub(crate) fn to_csv(&self, regenerate: &str) -> String {
        let mut text = format!(
            "# Synthetic CSI-feature frames (docs/training-data.md): one recording per class, \
             {FEATURES} values per frame,\n# {} Hz, seed 0x{SCENE_SEED:016X}. Regenerate with: \
             {regenerate}\n",
            synthetic::FRAME_RATE_HZ
        );
        for (first, len, class) in self.parts() {
            let _ = writeln!(text, "# frames {first}-{}: {class}", first + len - 1);
            for frame in self.values[first * FEATURES..(first + len) * FEATURES].chunks(FEATURES) {
                let row: Vec<String> = frame.iter().map(f32::to_string).collect();
                text += &row.join(",");
                text.push('\n');
            }
        }
        text
    }
}
