//! `aether synth`: write synthetic CSI-feature recordings as a labelled
//! CSV (`label,sequence,f0,…`), the format `aether train` reads.
//!
//! The generator is the `aether-dataset` library's (documented in
//! `docs/training-data.md`), so `aether synth | aether train --data -`
//! style experiments and `aether train --data synthetic` see the same
//! recordings for the same seed. `--demo-scene` writes instead the scene
//! the demo classifies (`assets/frames.csv`: one recording per class, as
//! plain frames; see `assets/README.md`), which keeps that asset
//! reproducible.

use std::io::Write;
use std::path::PathBuf;

use aether_dataset::{csv, synthetic};
use clap::Args;

use crate::error::CliError;
use crate::init::parse_seed;
use crate::runtime::write_text;
use crate::scene::{FEATURES, Scene};

/// Arguments of `aether synth`.
#[derive(Debug, Args)]
pub(crate) struct SynthArgs {
    /// Write the CSV here instead of standard output (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Values per frame.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    input_dim: u32,
    /// Frames per recording (50 frames/s; at least 128).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    frames: u32,
    /// Recordings per class (still, walking, fall, sit-down, wave).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    per_class: u32,
    /// Seed, decimal or 0x-hex.
    #[arg(long, default_value = "1", value_parser = parse_seed)]
    seed: u64,
    /// Write the demo's bundled scene instead: one 256-frame recording per
    /// class, as plain frames (what `aether classify` reads).
    #[arg(long, conflicts_with_all = ["input_dim", "frames", "per_class", "seed"])]
    demo_scene: bool,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    force: bool,
}

/// Generates and writes the CSV.
pub(crate) fn run(args: &SynthArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (text, summary) = if args.demo_scene {
        let scene = Scene::bundled()?;
        let summary = format!(
            "{} frames of {FEATURES} values",
            scene.values().len() / FEATURES
        );
        (scene.to_csv("aether synth --demo-scene"), summary)
    } else {
        let config = synthetic::SynthConfig {
            input_dim: args.input_dim as usize,
            frames: args.frames as usize,
            per_class: args.per_class as usize,
            seed: args.seed,
        };
        let recordings = synthetic::recordings(&config)?;
        let mut text = Vec::new();
        csv::write_labelled(&recordings, &mut text)?;
        let summary = format!(
            "{} recordings of {} frames of {} values, classes {}",
            recordings.sequences.len(),
            config.frames,
            config.input_dim,
            recordings.classes.join(", ")
        );
        (String::from_utf8_lossy(&text).into_owned(), summary)
    };
    if let Some(path) = write_text(out, args.out.as_deref(), args.force, &text)? {
        writeln!(out, "wrote {}: {summary}", path.display())?;
    }
    Ok(())
}
