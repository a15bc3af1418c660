//! `aether synth`: write synthetic CSI-like frames as a CSV.
//!
//! This is how `assets/frames.csv` was made, and how anyone can remake it
//! (or longer sequences) to check it: the generator is documented in
//! [`crate::synthetic`], and the output is a CSV that `aether classify`
//! reads as is, with `#` comments naming each segment's activity.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::csv::is_stdin;
use crate::error::CliError;
use crate::init::parse_seed;
use crate::synthetic::{self, BUNDLED_SEED};

/// Arguments of `aether synth`.
#[derive(Debug, Args)]
pub(crate) struct SynthArgs {
    /// Write the CSV here instead of standard output (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Frames of randomly scheduled activities; without it, the bundled
    /// sequence (still, walking, gesture, sit-down, still, fall; 32 frames each).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    frames: Option<u32>,
    /// Noise (and schedule) seed, decimal or 0x-hex.
    #[arg(long, value_name = "N", default_value = "0x5EED0000C5110007", value_parser = parse_seed)]
    seed: u64,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    force: bool,
}

/// Generates and writes the CSV.
pub(crate) fn run(args: &SynthArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let seed_arg = if args.seed == BUNDLED_SEED {
        String::new()
    } else {
        format!(" --seed 0x{:X}", args.seed)
    };
    let (sequence, command) = match args.frames {
        None => (
            synthetic::bundled(args.seed),
            format!("aether synth{seed_arg}"),
        ),
        Some(frames) => (
            synthetic::random(frames as usize, args.seed),
            format!("aether synth --frames {frames}{seed_arg}"),
        ),
    };
    let csv = sequence.to_csv(&command);
    match args.out.as_deref().filter(|path| !is_stdin(path)) {
        None => out.write_all(csv.as_bytes())?,
        Some(path) => {
            if path.exists() && !args.force {
                return Err(CliError::Exists {
                    path: path.to_path_buf(),
                });
            }
            std::fs::write(path, &csv).map_err(|source| CliError::Write {
                path: path.to_path_buf(),
                source,
            })?;
            writeln!(
                out,
                "wrote {}: {} frames of {} values",
                path.display(),
                sequence.frames(),
                synthetic::FEATURES
            )?;
        }
    }
    Ok(())
}
