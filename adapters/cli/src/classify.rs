//! `aether classify`: run a model over frames from a CSV, or live from a pipe.
//!
//! This is the host-side twin of the firmware's classify call: the same
//! model code, the same backends, driven from files or a pipe, so a user
//! can check a model on recorded frames before flashing it, or watch it
//! decide frame by frame on a live feed.
//!
//! Prefill mode reads every frame, then prints one result per segment (all
//! frames by default; `--segment N` cuts consecutive segments of N frames,
//! hop N, keeping the last partial one; `--chunk N` classifies N segments
//! at a time in parallel and prints exactly what the serial run prints).
//! `--stream` reads one line at a
//! time and feeds each frame through one KV cache per layer, as the
//! firmware does, printing and flushing the result before it reads the
//! next line — so a consumer of a pipe that never closes sees every
//! decision as it is made. The cache holds `--capacity` frames; past that
//! the head TOML's eviction policy decides what is forgotten, and without
//! one a full cache is an error naming both ways out.
//!
//! `--stream --csi LOG` reads a raw ESP32 CSI log instead of frames (a
//! file, `-`, or a serial device such as `/dev/ttyUSB0`): the log is turned
//! into frames line by line by the same reader as `aether features`, with
//! the same `--bands`/`--rate`/`--field` flags, so what the model sees is
//! exactly the frames CSV `aether features` writes for that log. `--every K`
//! prints one line per K frames (every frame still enters the cache).
//!
//! The option that was `--window` is `--segment`: the head config has a
//! `window` too (how far attention looks back), and the two meant
//! different things under the same word.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use aether_domain::{AttentionBackend as _, AttentionError, BackendKind, Eviction};
use aether_model::ModelError;
use clap::{Args, ValueEnum};

use crate::csv::{CsvError, FrameReader, is_stdin, origin_of, read_frames};
use crate::error::CliError;
use crate::features::{CsiFrames, CsiOptions};
use crate::report::{Output, Row};
use crate::runtime::{
    Model, backend_name, build, describe_config, describe_shape, eviction_name, head_config,
    read_blob,
};
use crate::sidecar;

/// KV-cache capacity of a stream when neither `--capacity` nor `--segment`
/// says otherwise: 65,536 frames (about 11 minutes at 100 Hz; 32 MiB of
/// cache for the default model, whose two layers store 256 bytes per frame
/// each).
pub(crate) const DEFAULT_CAPACITY: usize = 65_536;

/// Frames per classification above which the dense and reference backends
/// refuse to run a prefill without `--force`: a prefill prints nothing
/// until it ends, so a long one looks hung. Dense scores every pair of
/// frames, O(N²): about 13 s at this length in a release build on a
/// 2-core machine, four times that per doubling (10^6 frames: half a
/// day). The reference enumerates the pattern in f64, about 0.5 ms per
/// frame (9 s here; 10^6 frames: tens of minutes). The sparse backend
/// does 10^5 frames in about 3 s and has no limit; streaming prints every
/// frame as it goes, so it needs none either.
pub(crate) const LONG_INPUT_LIMIT: usize = 16_384;

/// Arguments of `aether classify`.
#[derive(Debug, Args)]
pub(crate) struct ClassifyArgs {
    /// The .rvne model; `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Frames: one per line, input_dim comma-separated numbers; blank lines
    /// and `#` comments are ignored; `-` reads standard input.
    #[arg(
        long,
        value_name = "FILE.csv",
        required_unless_present = "csi",
        conflicts_with = "csi"
    )]
    frames: Option<PathBuf>,
    /// A raw ESP32 CSI log (esp-csi or ESP32-CSI-Tool) instead of frames,
    /// turned into frames as it arrives, as `aether features` does (with
    /// --stream); `-` reads standard input, a serial device path such as
    /// /dev/ttyUSB0 works as a file.
    #[arg(long, value_name = "LOG", requires = "stream")]
    csi: Option<PathBuf>,
    #[command(flatten)]
    csi_options: CsiOptions,
    /// Head config TOML (backend, window, block_size, eviction, ...); `-`
    /// reads standard input. q_heads, kv_heads and head_dim default to the
    /// blob's. Without it: the AETHER sparse head with the blob's heads.
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    /// Classify consecutive segments of N frames (hop N; the last, partial
    /// segment included) instead of one segment of all frames. With
    /// --stream the stream restarts at every segment. (Formerly --window.)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    segment: Option<u32>,
    /// Classify up to N segments at once, in parallel over every core
    /// (prefill with --segment). The output is the serial run's, row for
    /// row and bit for bit: each segment is still one prefill, and results
    /// are printed in segment order, up to the first failing segment.
    #[arg(long, value_name = "N", requires = "segment", conflicts_with = "stream",
          value_parser = clap::value_parser!(u32).range(1..))]
    chunk: Option<u32>,
    /// The old name of --segment: recognised only to say so.
    #[arg(
        long = "window",
        value_name = "N",
        hide = true,
        allow_hyphen_values = true
    )]
    old_window: Option<String>,
    /// Stream: read frames as they arrive and write (and flush) one result
    /// per frame, through one KV cache per layer.
    #[arg(long)]
    stream: bool,
    /// KV-cache size in frames (with --stream). When it is full, the head
    /// TOML's `eviction` policy decides which frame to forget; without one,
    /// a full cache is an error. Default: --segment if given, else 65536.
    #[arg(long, value_name = "N", requires = "stream",
          value_parser = clap::value_parser!(u32).range(1..))]
    capacity: Option<u32>,
    /// Print one result every K frames (with --stream): frames K-1, 2K-1,
    /// ... Every frame still enters the cache. Default 1.
    #[arg(long, value_name = "K", requires = "stream",
          value_parser = clap::value_parser!(u32).range(1..))]
    every: Option<u32>,
    /// Output format: `text` (aligned, with `#` comment lines), `json`
    /// (JSON Lines: one object per result) or `csv` (a header row, then
    /// one row per result).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    format: Format,
    /// Class names, in logit order, printed with each decision; as many as
    /// the model has classes. Default: the names in the model's card
    /// (`model.json` beside `model.rvne`, written by `aether train`).
    #[arg(long, value_name = "A,B,C", value_parser = parse_classes)]
    classes: Option<Classes>,
    /// Run the dense or reference backend on more than 16384 frames per
    /// classification (slow: dense grows with the square of the length).
    #[arg(long)]
    force: bool,
}

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned text with `#` comment lines describing the run.
    Text,
    /// JSON Lines: one object per result, nothing else.
    Json,
    /// CSV: a header row, then one row per result.
    Csv,
}

/// Class names from `--classes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Classes(pub(crate) Vec<String>);

/// Parses `--classes`: comma-separated, non-empty, distinct names.
pub(crate) fn parse_classes(text: &str) -> Result<Classes, String> {
    let names: Vec<String> = text.split(',').map(|n| n.trim().to_owned()).collect();
    if let Some(index) = names.iter().position(String::is_empty) {
        return Err(format!("class name {} is empty", index + 1));
    }
    for (index, name) in names.iter().enumerate() {
        if names[..index].contains(name) {
            return Err(format!("class name `{name}` is given twice"));
        }
    }
    Ok(Classes(names))
}

impl ClassifyArgs {
    /// Usage mistakes clap cannot see, as one message: the retired
    /// `--window`, and two file arguments both reading standard input
    /// (there is only one).
    pub(crate) fn usage_error(&self) -> Option<String> {
        if self.old_window.is_some() {
            return Some(
                "--window was renamed --segment (frames per classification); the head's \
                 attention window is the `window` key of the --config TOML"
                    .to_owned(),
            );
        }
        let stdin: Vec<&str> = [
            ("--model", Some(&self.model)),
            ("--frames", self.frames.as_ref()),
            ("--csi", self.csi.as_ref()),
            ("--config", self.config.as_ref()),
        ]
        .into_iter()
        .filter(|(_, path)| path.is_some_and(|p| is_stdin(p)))
        .map(|(name, _)| name)
        .collect();
        (stdin.len() > 1).then(|| {
            let all = if stdin.len() == 2 { "both" } else { "all" };
            format!(
                "{} {all} read standard input (`-`); only one file argument can",
                stdin.join(" and ")
            )
        })
    }
}

/// Classifies and prints one result per segment (or per frame with `--stream`).
pub(crate) fn run(args: &ClassifyArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let blob = read_blob(&args.model)?;
    let view = blob.view();
    let model_name = origin_of(&args.model);
    let (config, origin) = head_config(view.header(), args.config.as_deref())?;
    let head = describe_config(&config);
    let model = build(view, config, &model_name, &origin)?;
    let classes = match &args.classes {
        Some(Classes(names)) if names.len() != model.n_classes() => {
            return Err(CliError::ClassCount {
                given: names.len(),
                model: model_name,
                classes: model.n_classes(),
            });
        }
        Some(Classes(names)) => Some(names.clone()),
        // A trained model's card names its classes (`aether train`).
        None if !is_stdin(&args.model) => sidecar::class_names(&args.model, model.n_classes())?,
        None => None,
    };
    let classes = classes.as_deref();
    let mut output = Output::new(out, args.format, classes, model.n_classes());
    let run = Run {
        model: &model,
        shape: describe_shape(blob.header()),
        model_name: &model_name,
        config_origin: &origin,
        head: &head,
        segment: args.segment.map(|n| n as usize),
        chunk: args.chunk.map_or(1, |n| n as usize),
    };
    // clap requires one of --frames and --csi, so the fallback never runs.
    let frames = args.frames.as_deref().unwrap_or_else(|| Path::new("-"));
    match &args.csi {
        Some(log) => {
            let bands = usize::from(args.csi_options.bands);
            if bands != model.input_dim() {
                return Err(CliError::BandsMismatch {
                    model: model_name,
                    input_dim: model.input_dim(),
                    bands,
                });
            }
            let mut source = CsiFrames::open(log, &args.csi_options)?;
            run.stream(args, &mut output, &mut source)?;
            let summary = source.summary("classified");
            eprintln!("{summary}");
            summary.no_frames_error()
        }
        None if args.stream => {
            let mut source =
                FrameReader::new(open_lines(frames)?, origin_of(frames), model.input_dim());
            run.stream(args, &mut output, &mut source)
        }
        None => run.prefill(args, frames, &mut output),
    }
}

/// The logits of each of `spans` (one prefill each), in order; spread over
/// up to every core when there is more than one. Why scoped threads and
/// not a pool: a segment is a whole prefill (milliseconds), so starting a
/// thread per core per `--chunk` batch costs nothing measurable, and the
/// threads only share the read-only model.
fn classify_all<'f>(
    model: &Model,
    spans: impl Iterator<Item = &'f [f32]>,
) -> Vec<Result<Vec<f32>, ModelError>> {
    let spans: Vec<&[f32]> = spans.collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(spans.len());
    if threads <= 1 {
        return spans.into_iter().map(|span| model.classify(span)).collect();
    }
    // Thread t takes segments t, t + threads, ...: neighbouring segments
    // cost the same, so each thread gets an equal share.
    let mut results: Vec<Option<Result<Vec<f32>, ModelError>>> =
        spans.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let spans = &spans;
                scope.spawn(move || {
                    spans
                        .iter()
                        .enumerate()
                        .skip(t)
                        .step_by(threads)
                        .map(|(i, span)| (i, model.classify(span)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for worker in workers {
            // A worker only panics if the model does; pass that on.
            let done = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            for (i, result) in done {
                results[i] = Some(result);
            }
        }
    });
    results.into_iter().flatten().collect()
}

/// Where a stream's frames come from: a frames CSV or a raw CSI log.
trait FrameSource {
    /// The next frame and its 1-based input line; `None` at the end.
    fn next(&mut self) -> Result<Option<(&[f32], usize)>, CliError>;
    /// The input's name in messages.
    fn origin(&self) -> &str;
    /// The input as the run's description names it.
    fn describe(&self) -> String;
}

impl<R: BufRead> FrameSource for FrameReader<R> {
    fn next(&mut self) -> Result<Option<(&[f32], usize)>, CliError> {
        Ok(self.next_frame()?)
    }

    fn origin(&self) -> &str {
        FrameReader::origin(self)
    }

    fn describe(&self) -> String {
        format!("frames from {}", FrameReader::origin(self))
    }
}

impl FrameSource for CsiFrames {
    fn next(&mut self) -> Result<Option<(&[f32], usize)>, CliError> {
        Ok(self.next_frame()?.map(|frame| (frame.values, frame.line)))
    }

    fn origin(&self) -> &str {
        CsiFrames::origin(self)
    }

    fn describe(&self) -> String {
        format!(
            "frames of {} bands from the CSI log {}",
            self.bands(),
            CsiFrames::origin(self)
        )
    }
}

/// What every mode needs to know about the run.
struct Run<'a> {
    model: &'a Model,
    /// The blob's shape and element type, described.
    shape: String,
    model_name: &'a str,
    config_origin: &'a str,
    /// The head config, described.
    head: &'a str,
    segment: Option<usize>,
    /// Segments classified at once (`--chunk`; 1 is serial).
    chunk: usize,
}

impl Run<'_> {
    /// The `#` lines describing the run (text format), then the CSV header
    /// row (csv format): written once the inputs have been checked, so a
    /// refused run prints nothing on standard output.
    fn preamble(&self, output: &mut Output<'_>, input: &str) -> io::Result<()> {
        output.comment(&format!("model {}: {}", self.model_name, self.shape))?;
        output.comment(&format!("head {} (from {})", self.head, self.config_origin))?;
        output.comment(input)?;
        output.header()
    }

    /// Reads every frame, then classifies each segment with one prefill.
    fn prefill(
        &self,
        args: &ClassifyArgs,
        path: &Path,
        output: &mut Output<'_>,
    ) -> Result<(), CliError> {
        let frames = read_frames(path, self.model.input_dim())?;
        let frames_name = origin_of(path);
        let n = frames.len();
        let segment = self.segment.map_or(n, |s| s.min(n));
        let backend = self.model.backend().config().backend;
        if segment > LONG_INPUT_LIMIT && backend != BackendKind::Sparse && !args.force {
            return Err(CliError::TooLong {
                backend: backend_name(backend),
                why: if backend == BackendKind::Dense {
                    "its cost grows with the square of the length"
                } else {
                    "it is the unoptimised f64 oracle"
                },
                frames: segment,
                limit: LONG_INPUT_LIMIT,
            });
        }
        let mode = if self.segment.is_some() {
            format!("segments of {segment} frames, hop {segment} (prefill)")
        } else {
            "one segment of all frames (prefill)".to_owned()
        };
        self.preamble(
            output,
            &format!("{n} frames from {frames_name}; {mode}; frames are numbered from 0"),
        )?;
        let starts: Vec<usize> = (0..n).step_by(segment).collect();
        let spans = |start: usize| start..(start + segment).min(n);
        for (batch, group) in starts.chunks(self.chunk).enumerate() {
            let mut results =
                classify_all(self.model, group.iter().map(|&s| frames.span(spans(s))));
            for (offset, (&start, logits)) in group.iter().zip(results.drain(..)).enumerate() {
                let index = batch * self.chunk + offset;
                let end = spans(start).end;
                let logits = logits.map_err(|e| {
                    // The model numbers frames within the span it was given.
                    let at = start + e.frame().unwrap_or(0);
                    self.frame_error(&frames_name, frames.line(at), at, e)
                })?;
                output.row(&Row {
                    segment: index,
                    first_frame: start,
                    last_frame: end - 1,
                    line: frames.line(end - 1),
                    logits: &logits,
                    streaming: false,
                })?;
            }
        }
        Ok(())
    }

    /// Reads one frame at a time and writes (and flushes) its result before
    /// reading the next.
    fn stream(
        &self,
        args: &ClassifyArgs,
        output: &mut Output<'_>,
        reader: &mut dyn FrameSource,
    ) -> Result<(), CliError> {
        let (capacity, capacity_from) = match (args.capacity, self.segment) {
            (Some(c), _) => (c as usize, "--capacity"),
            (None, Some(segment)) => (segment, "--segment"),
            (None, None) => (DEFAULT_CAPACITY, "the default"),
        };
        let eviction = self.model.backend().config().eviction;
        let mut stream = self.model.stream(capacity).map_err(|e| {
            CliError::model(
                format!(
                    "{} with {} (KV cache of {capacity} frames from {capacity_from})",
                    self.model_name, self.config_origin
                ),
                e,
            )
        })?;
        let restart = match self.segment {
            Some(s) => format!(", restarting every {s} frames"),
            None => String::new(),
        };
        let every = args.every.map_or(1, |k| k as usize);
        let per = if every == 1 {
            "one line per frame".to_owned()
        } else {
            format!("one line every {every} frames")
        };
        self.preamble(
            output,
            &format!(
                "{} as they arrive; streaming, {per}{restart}; KV cache {capacity} frames per \
                 layer ({capacity_from}), eviction {}; frames are numbered from 0",
                reader.describe(),
                eviction_name(eviction)
            ),
        )?;
        output.flush()?;
        let mut logits = vec![0.0; self.model.n_classes()];
        let mut t = 0;
        let mut segment_start = 0;
        while let Some((frame, line)) = reader.next()? {
            if self.segment.is_some_and(|s| t > 0 && t % s == 0) {
                stream.clear();
                segment_start = t;
            }
            if let Err(e) = self.model.push(&mut stream, frame, &mut logits) {
                let origin = reader.origin().to_owned();
                return Err(match e {
                    ModelError::Attention(AttentionError::CacheFull { capacity })
                        if eviction == Eviction::None =>
                    {
                        CliError::CacheFull {
                            at: format!("{} on {origin}:{line}", self.model_name),
                            frame: t,
                            capacity,
                        }
                    }
                    e => self.frame_error(&origin, line, t, e),
                });
            }
            if (t + 1) % every == 0 {
                output.row(&Row {
                    segment: self.segment.map_or(0, |s| t / s),
                    first_frame: segment_start,
                    last_frame: t,
                    line,
                    logits: &logits,
                    streaming: true,
                })?;
                output.flush()?;
            }
            t += 1;
        }
        Ok(())
    }

    /// A model error about frame `frame` (numbered from the start of the
    /// input) on CSV line `line`. An error that names its frame gets the
    /// input's numbering rather than the segment's or stream's, so the
    /// message names the frame once.
    fn frame_error(&self, origin: &str, line: usize, frame: usize, e: ModelError) -> CliError {
        let at = format!("{} on {origin}:{line}", self.model_name);
        if e.frame().is_some() {
            CliError::model(at, e.with_frame(frame))
        } else {
            CliError::model(format!("{at} (frame {frame})"), e)
        }
    }
}

/// The frames input as lines: standard input for `-`, else the file.
fn open_lines(path: &Path) -> Result<Box<dyn BufRead>, CliError> {
    if is_stdin(path) {
        return Ok(Box::new(io::stdin().lock()));
    }
    let file = File::open(path).map_err(|source| CsvError::Read {
        origin: origin_of(path),
        source,
    })?;
    Ok(Box::new(BufReader::new(file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_are_checked() {
        assert_eq!(
            parse_classes("still, walk ,fall"),
            Ok(Classes(vec!["still".into(), "walk".into(), "fall".into()]))
        );
        assert_eq!(parse_classes("a,,b").unwrap_err(), "class name 2 is empty");
        assert_eq!(
            parse_classes("a,b,a").unwrap_err(),
            "class name `a` is given twice"
        );
    }
}
