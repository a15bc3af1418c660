//! `aether classify`: run a model over frames from a CSV.
//!
//! This is the host-side twin of the firmware's classify call: the same
//! model code, the same backends, driven from files, so a user can check a
//! model on recorded frames before flashing it. Prefill mode prints one
//! line per window (all frames by default; `--window N` cuts consecutive
//! windows of N frames, hop N, keeping the last partial one); `--stream`
//! feeds frames one at a time through one KV cache per layer, as the
//! firmware does, and prints the logits after every frame — the line
//! for the last frame of a window equals that window's prefill line.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::csv::read_frames;
use crate::error::CliError;
use crate::report::decision_and_logits;
use crate::runtime::{build, describe_config, describe_shape, head_config, read_blob};

/// Arguments of `aether classify`.
#[derive(Debug, Args)]
pub(crate) struct ClassifyArgs {
    /// The .rvne model.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Frames: one per line, input_dim comma-separated numbers; blank lines
    /// and `#` comments are ignored; `-` reads standard input.
    #[arg(long, value_name = "FILE.csv")]
    frames: PathBuf,
    /// Head config TOML (backend, window, block_size, ...). Default: the
    /// AETHER sparse head with the blob's q_heads, kv_heads and head_dim.
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    /// Classify consecutive windows of N frames (hop N; the last, partial
    /// window included) instead of one window of all frames.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    window: Option<u32>,
    /// Stream: push frames one at a time (one KV cache per layer) and print
    /// the logits after every frame; with --window the stream restarts at
    /// every window.
    #[arg(long)]
    stream: bool,
}

/// Classifies and prints one line per window (or per frame with `--stream`).
pub(crate) fn run(args: &ClassifyArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let blob = read_blob(&args.model)?;
    let view = blob.view();
    let model_name = args.model.display().to_string();
    let (config, origin) = head_config(view.header(), args.config.as_deref())?;
    let head = describe_config(&config);
    let model = build(view, config, &model_name, &origin)?;
    let frames = read_frames(&args.frames, model.input_dim())?;
    let frames_name = if args.frames.as_os_str() == "-" {
        "<stdin>".to_owned()
    } else {
        args.frames.display().to_string()
    };

    let n = frames.len();
    let window = args.window.map_or(n, |w| w as usize).min(n);
    let mode = match (args.stream, args.window.is_some()) {
        (false, false) => "one window of all frames (prefill)".to_owned(),
        (false, true) => format!("windows of {window} frames, hop {window} (prefill)"),
        (true, false) => "streaming, one line per frame".to_owned(),
        (true, true) => {
            format!("streaming, one line per frame, restarting every {window} frames")
        }
    };
    writeln!(
        out,
        "# model {model_name}: {}",
        describe_shape(model.header())
    )?;
    writeln!(out, "# head {head}")?;
    writeln!(
        out,
        "# {n} frames from {frames_name}; {mode}; frames are numbered from 0"
    )?;

    // Errors below concern a particular frame; name its CSV line.
    let at_line = |frame: usize, e| {
        CliError::model(
            format!("{model_name} on {frames_name}:{}", frames.line(frame)),
            e,
        )
    };
    if args.stream {
        let mut stream = model
            .stream(window)
            .map_err(|e| CliError::model(format!("{model_name} with {origin}"), e))?;
        let mut logits = vec![0.0; model.n_classes()];
        for t in 0..n {
            if t % window == 0 {
                stream.clear();
            }
            model
                .push(&mut stream, frames.frame(t), &mut logits)
                .map_err(|e| at_line(t, e))?;
            writeln!(out, "frame {t}  {}", decision_and_logits(&logits))?;
        }
    } else {
        for (index, start) in (0..n).step_by(window).enumerate() {
            let end = (start + window).min(n);
            let logits = model
                .classify(frames.span(start..end))
                .map_err(|e| at_line(start, e))?;
            writeln!(
                out,
                "window {index}  frames {start}-{}  {}",
                end - 1,
                decision_and_logits(&logits)
            )?;
        }
    }
    Ok(())
}
