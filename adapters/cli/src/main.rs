//! `aether`: make, inspect and run AETHER temporal models from the shell.
//!
//! This file only declares the command line and dispatches; each command
//! lives in its own module (`init`, `inspect`, `classify`, `synth`,
//! `demo`), frames are read by `csv`, and every failure becomes one line on
//! stderr in `error` (exit 1 for runtime errors, 2 for usage errors).

mod classify;
mod csv;
mod demo;
mod error;
mod init;
mod inspect;
mod report;
mod runtime;
mod synth;
mod synthetic;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Make, inspect and run AETHER temporal models (.rvne) over WiFi-CSI
/// feature frames.
#[derive(Debug, Parser)]
#[command(name = "aether", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a deterministic random-init .rvne model.
    Init(init::InitArgs),
    /// Show what a .rvne file holds, or the first format check it fails.
    Inspect(inspect::InspectArgs),
    /// Classify frames from a CSV with a .rvne model.
    Classify(classify::ClassifyArgs),
    /// Write synthetic CSI-like feature frames as CSV.
    Synth(synth::SynthArgs),
    /// Run the bundled model on bundled frames through every backend:
    /// classifications, agreement checks and timings.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return error::usage(&e),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match &cli.command {
        Command::Init(args) => init::run(args, &mut out),
        Command::Inspect(args) => inspect::run(args, &mut out),
        Command::Classify(args) => classify::run(args, &mut out),
        Command::Synth(args) => synth::run(args, &mut out),
        Command::Demo(args) => demo::run(args, &mut out),
    }
    .and_then(|()| out.flush().map_err(error::CliError::Output));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => error::report(&e),
    }
}
