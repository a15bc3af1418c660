//! `aether`: make, inspect and run AETHER temporal models from the shell.
//!
//! This file only declares the command line and dispatches; each command
//! lives in its own module (`init`, `inspect`, `classify`, `synth`,
//! `train`, `convert` for export/import, `demo`, `packet`, `features` and
//! `synth_csi` for raw ESP32 CSI logs), frames are
//! read by `csv`, model cards by `sidecar`, and every failure becomes
//! one line on stderr in `error` (exit 1 for runtime errors, 2 for usage
//! errors).
//! Every file argument may be `-` (standard input, or output for `--out`);
//! clap passes it through as a path and the readers and writers decide.

mod classify;
mod convert;
mod csv;
mod demo;
mod error;
mod features;
mod gate;
mod init;
mod inspect;
mod packet;
mod report;
mod runtime;
mod scene;
mod sidecar;
mod synth;
mod synth_csi;
mod train;

use std::io::Write as _;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory as _, Parser, Subcommand};

/// The exit statuses, shown under every `--help`: scripts branch on them,
/// so they belong where a user looks, not only in the docs.
const EXIT_STATUS: &str = "\
Exit status:
  0  success (also when the reader of standard output quits early, e.g. `| head`)
  1  runtime error: a bad file or input line, a full KV cache, a failed demo check
  2  usage error: an unknown, missing or malformed option, or two file arguments
     both reading standard input

File arguments may be `-`: standard input (standard output for --out).";

/// Make, inspect and run AETHER temporal models (.rvne) over WiFi-CSI
/// feature frames.
#[derive(Debug, Parser)]
#[command(name = "aether", version, after_help = EXIT_STATUS)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a deterministic random-init .rvne model.
    #[command(after_help = EXIT_STATUS)]
    Init(init::InitArgs),
    /// Show what a .rvne file holds, or the first format check it fails.
    #[command(after_help = EXIT_STATUS)]
    Inspect(inspect::InspectArgs),
    /// Classify frames from a CSV (or live from a pipe, or from a raw CSI
    /// log with --csi) with a .rvne model.
    #[command(after_help = EXIT_STATUS)]
    Classify(classify::ClassifyArgs),
    /// Write synthetic CSI-feature recordings as a labelled CSV (the
    /// training format).
    #[command(after_help = EXIT_STATUS)]
    Synth(synth::SynthArgs),
    /// Turn a raw ESP32 CSI log (esp-csi or ESP32-CSI-Tool) into feature
    /// frames, or into labelled training rows; a summary goes to stderr.
    #[command(after_help = EXIT_STATUS)]
    Features(features::FeaturesArgs),
    /// Write a generated raw ESP32 CSI log (either serial format), for
    /// trying `features` and `classify --csi` without a board.
    #[command(after_help = EXIT_STATUS)]
    SynthCsi(synth_csi::SynthCsiArgs),
    /// Train a model on synthetic data or labelled recordings; prints
    /// per-epoch held-out metrics and three baselines on the same split.
    #[command(after_help = EXIT_STATUS)]
    Train(train::TrainArgs),
    /// Train a sparse and a dense model alike in all else and say whether
    /// sparse may replace dense: loss, accuracy, neighbourhoods, latency.
    #[command(after_help = EXIT_STATUS)]
    Gate(gate::GateArgs),
    /// Write a .rvne model's weights as safetensors.
    #[command(after_help = EXIT_STATUS)]
    Export(convert::ExportArgs),
    /// Write safetensors weights (e.g. from PyTorch) as a .rvne model.
    #[command(after_help = EXIT_STATUS)]
    Import(convert::ImportArgs),
    /// Run the bundled model on bundled frames through every backend:
    /// classifications, agreement checks and timings.
    #[command(after_help = EXIT_STATUS)]
    Demo(demo::DemoArgs),
    /// Decode the firmware's 40-byte classification packets (binary or hex,
    /// from a file or a pipe), or encode one from logits.
    #[command(after_help = EXIT_STATUS)]
    Packet(packet::PacketArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return error::usage(&e),
    };
    if let Command::Classify(args) = &cli.command
        && let Some(message) = args.usage_error()
    {
        return error::usage(&Cli::command().error(ErrorKind::ArgumentConflict, message));
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match &cli.command {
        Command::Init(args) => init::run(args, &mut out),
        Command::Inspect(args) => inspect::run(args, &mut out),
        Command::Classify(args) => classify::run(args, &mut out),
        Command::Synth(args) => synth::run(args, &mut out),
        Command::Features(args) => features::run(args, &mut out),
        Command::SynthCsi(args) => synth_csi::run(args, &mut out),
        Command::Train(args) => train::run(args, &mut out),
        Command::Gate(args) => gate::run(args, &mut out),
        Command::Export(args) => convert::export(args, &mut out),
        Command::Import(args) => convert::import(args, &mut out),
        Command::Demo(args) => demo::run(args, &mut out),
        Command::Packet(args) => packet::run(args, &mut out),
    }
    .and_then(|()| out.flush().map_err(error::CliError::Output));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => error::report(&e),
    }
}
