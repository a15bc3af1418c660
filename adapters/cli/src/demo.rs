//! `aether demo`: the whole pipeline on bundled data, with no arguments.
//!
//! The demo is the first thing a new user runs, so it must work offline,
//! in seconds, and show the three claims the project rests on with numbers
//! rather than words:
//!
//! 1. **Paths agree.** Every backend's streaming logits (one frame at a
//!    time, one KV cache per layer) equal its prefill logits over the same
//!    frames, at every frame; the fast sparse kernel equals the reference
//!    oracle everywhere; and sparse equals dense wherever the window covers
//!    the whole sequence (N − 1 ≤ W), while beyond that they differ, as
//!    they should. A failed check makes the demo exit non-zero.
//! 2. **Streaming is cheap.** Per-frame latency of each backend.
//! 3. **Sparse is fast at long windows.** Whole-model prefill time of
//!    sparse vs dense over a long synthetic sequence (4096 frames by
//!    default; the reference backend is skipped there, being a slow oracle).
//!
//! The bundled model (`assets/default.rvne`) and frames
//! (`assets/frames.csv`) are compiled in; `assets/README.md` says how they
//! were made. While the bundled model is the random-init blob (checked by
//! comparing its bytes with `RvneBlob::random`), the demo says plainly that
//! its classifications mean nothing.

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use aether_domain::{BackendKind, HeadConfig};
use aether_rvne::{DEFAULT_SEED, RvneBlob, RvneView};
use clap::Args;

use crate::csv::{Frames, parse_frames};
use crate::error::CliError;
use crate::report::{decision_and_logits, max_abs_diff, thousands};
use crate::runtime::{Model, backend_name, build, default_config, describe_config, with_backend};
use crate::synthetic::{self, BUNDLED_SEED, BUNDLED_SEGMENT, FEATURES};

/// The bundled model: `aether init --out assets/default.rvne`.
const BUNDLED_MODEL: &[u8] = include_bytes!("../assets/default.rvne");

/// The bundled frames: `aether synth --demo-scene --out assets/frames.csv`.
const BUNDLED_FRAMES: &str = include_str!("../assets/frames.csv");

/// Frames per classification window: one synthetic segment (1.6 s), which
/// is also at most W + 1 for the default head (W = 32), so on each window
/// sparse attention must equal dense attention.
const DEMO_WINDOW: usize = BUNDLED_SEGMENT;

/// Streaming vs prefill, same backend: the same candidates and arithmetic,
/// but reductions run in another order (a step sees one query; prefill
/// tiles queries), so f32 results differ by rounding only. The numerics
/// bars of `docs/quality.md` bound each attention output by 1e-5; the bundled model's projections (weights
/// below 0.25 in magnitude) do not amplify that, and the measured worst
/// case at the logits is below 5e-7, so 1e-5 leaves a 20x margin while still
/// catching any real divergence (a wrong candidate moves logits by 1e-2).
const STREAM_TOLERANCE: f32 = 1e-5;

/// Between backends that must agree (sparse vs reference everywhere,
/// sparse vs dense where N − 1 ≤ W): the kernel bar of `docs/quality.md`,
/// 1e-5 per attention output, carried through the same projections as above.
const BACKEND_TOLERANCE: f32 = 1e-5;

/// Every backend, in the order the demo reports them.
const BACKENDS: [BackendKind; 3] = [
    BackendKind::Sparse,
    BackendKind::Dense,
    BackendKind::Reference,
];

/// Timing runs per measurement; the fastest is reported (the least
/// disturbed by other processes).
const REPEATS: usize = 3;

/// Seed of the long synthetic sequence.
const LONG_SEED: u64 = 0x10E6_0000_C511_0007;

/// Arguments of `aether demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Frames in the sparse-vs-dense long-window timing (0 skips it).
    #[arg(long, value_name = "N", default_value_t = 4096)]
    long_window: usize,
}

/// One backend's results on the bundled frames.
struct Run {
    kind: BackendKind,
    model: Model,
    /// `(len, logits)`: prefill over frames `0..len`, for every `len` of
    /// [`prefix_lengths`].
    prefill: Vec<(usize, Vec<f32>)>,
    /// `streamed[t]`: streaming logits after frame `t`.
    streamed: Vec<Vec<f32>>,
    /// Prefill logits of each demo window.
    windows: Vec<Vec<f32>>,
}

/// A check, printed as one row.
struct Check {
    outcome: Outcome,
    /// What was compared.
    label: String,
    /// The largest difference of logits found.
    diff: f32,
    /// Said after the number (empty for a plain pass or failure).
    note: String,
}

impl Check {
    /// `ok    <label>   4.8e-7`.
    fn row(&self) -> String {
        let tag = match self.outcome {
            Outcome::Passed => "ok  ",
            Outcome::Failed => "FAIL",
            Outcome::Info => "info",
        };
        let row = format!("{tag}  {:<56} {:.1e}", self.label, self.diff);
        if self.note.is_empty() {
            row
        } else {
            format!("{row}  {}", self.note)
        }
    }
}

/// Whether a check held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    /// Reported, not judged.
    Info,
}

impl Outcome {
    const fn of(passed: bool) -> Self {
        if passed { Self::Passed } else { Self::Failed }
    }
}

/// Runs the demo.
pub(crate) fn run(args: &DemoArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let view = RvneView::parse(BUNDLED_MODEL).map_err(|source| CliError::Format {
        what: "bundled model".to_owned(),
        source,
    })?;
    let header = view.header();
    let frames = parse_frames(
        BUNDLED_FRAMES,
        "bundled frames.csv",
        usize::from(header.input_dim),
    )?;
    let truth = synthetic::bundled(BUNDLED_SEED);
    let config = default_config(header);
    let random_weights = is_random_init(view);

    writeln!(
        out,
        "aether demo: the bundled model on bundled synthetic CSI frames, every backend"
    )?;
    writeln!(out)?;
    if random_weights {
        writeln!(
            out,
            "NOTE: the bundled model has RANDOM weights (`aether init`, seed 0x{DEFAULT_SEED:016X}); \
             it has not been trained,\n      so its classifications below MEAN NOTHING yet. The \
             demo shows the machinery: that the\n      backends and the streaming path agree, \
             and how fast each backend is."
        )?;
        writeln!(out)?;
    }
    if cfg!(debug_assertions) {
        writeln!(
            out,
            "note: debug build; timings are not representative (use `cargo run --release`)"
        )?;
        writeln!(out)?;
    }
    writeln!(
        out,
        "model   bundled default.rvne: {} bytes, {} parameters, CRC 0x{:08X}",
        thousands(BUNDLED_MODEL.len()),
        thousands(view.weight_count()),
        view.crc()
    )?;
    writeln!(out, "        {}", crate::runtime::describe_shape(header))?;
    writeln!(
        out,
        "frames  bundled frames.csv: {} frames x {FEATURES} features, {} Hz, synthetic \
         (see `aether synth --demo-scene`)",
        frames.len(),
        synthetic::FRAME_RATE_HZ
    )?;
    writeln!(out, "head    {}", describe_config(&config))?;
    writeln!(out)?;

    let runs = BACKENDS
        .iter()
        .map(|&kind| run_backend(view, &config, kind, &frames))
        .collect::<Result<Vec<_>, _>>()?;
    let sparse = &runs[0];

    writeln!(
        out,
        "Classification by the sparse backend, windows of {DEMO_WINDOW} frames (truth = the \
         synthetic activity{}):",
        if random_weights {
            "; random weights, so argmax is noise"
        } else {
            ""
        }
    )?;
    for (index, logits) in sparse.windows.iter().enumerate() {
        let start = index * DEMO_WINDOW;
        let end = (start + DEMO_WINDOW).min(frames.len()) - 1;
        let activity = truth
            .activity_at(start)
            .map_or("?", synthetic::Activity::name);
        writeln!(
            out,
            "  frames {start:>3}-{end:<3}  {activity:<8}  {}",
            decision_and_logits(logits)
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Whole sequence ({} frames), every backend, prefill and streaming (last frame):",
        frames.len()
    )?;
    for run in &runs {
        if let (Some((_, prefill)), Some(streamed)) = (run.prefill.last(), run.streamed.last()) {
            for (path, logits) in [("prefill", prefill), ("streaming", streamed)] {
                writeln!(
                    out,
                    "  {:<10} {path:<10} {}",
                    backend_name(run.kind),
                    decision_and_logits(logits)
                )?;
            }
        }
    }
    writeln!(
        out,
        "  (dense differs from sparse here: {} frames is longer than the window W + 1 = {})",
        frames.len(),
        config.window + 1
    )?;
    writeln!(out)?;

    let checks = agreement_checks(&runs, &config);
    writeln!(
        out,
        "Checks (max |difference| of logits; tolerance {STREAM_TOLERANCE:.0e} streaming, \
         {BACKEND_TOLERANCE:.0e} between backends;"
    )?;
    writeln!(
        out,
        "        prefixes: every N in 1..={}, then every multiple of {DEMO_WINDOW} up to {}):",
        (2 * DEMO_WINDOW).min(frames.len()),
        frames.len()
    )?;
    for check in &checks {
        writeln!(out, "  {}", check.row())?;
    }
    writeln!(out)?;

    writeln!(
        out,
        "Streaming latency (one frame through both layers, mean over {} frames, best of {REPEATS}):",
        frames.len()
    )?;
    for run in &runs {
        let per_frame = time_streaming(&run.model, &frames)?;
        writeln!(
            out,
            "  {:<10} {:>9.2} µs/frame",
            backend_name(run.kind),
            micros(per_frame)
        )?;
    }
    writeln!(out)?;

    if args.long_window > 0 {
        long_window(out, &runs, args.long_window)?;
    }

    match checks.iter().find(|c| c.outcome == Outcome::Failed) {
        Some(failed) => Err(CliError::Check(format!(
            "{}: logits differ by {:.1e}, beyond the tolerance",
            failed.label, failed.diff
        ))),
        None => {
            writeln!(
                out,
                "All checks passed.{}",
                if random_weights {
                    " (Classifications are from random weights: meaningless until a trained \
                     model replaces assets/default.rvne.)"
                } else {
                    ""
                }
            )?;
            Ok(())
        }
    }
}

/// True when `view` is exactly the default random-init blob for its header.
fn is_random_init(view: RvneView<'_>) -> bool {
    RvneBlob::random(view.header(), DEFAULT_SEED)
        .is_ok_and(|blob| blob.as_bytes() == view.as_bytes())
}

/// Prefix lengths at which prefill is computed and compared: every length
/// up to two windows (where the sparse pattern changes shape: window only,
/// then strides and landmarks beyond it), then every window end and the
/// whole sequence. Every prefix would cost O(n²) frames of prefill, which
/// is seconds in a debug build for no extra coverage.
fn prefix_lengths(n: usize) -> Vec<usize> {
    let mut lengths: Vec<usize> = (1..=n.min(2 * DEMO_WINDOW))
        .chain((DEMO_WINDOW..=n).step_by(DEMO_WINDOW))
        .chain([n])
        .collect();
    lengths.sort_unstable();
    lengths.dedup();
    lengths
}

/// Builds one backend's model and computes prefill at every prefix of
/// [`prefix_lengths`], streaming after every frame, and prefill of every
/// demo window.
fn run_backend(
    view: RvneView<'_>,
    config: &HeadConfig,
    kind: BackendKind,
    frames: &Frames,
) -> Result<Run, CliError> {
    let name = format!("bundled model ({})", backend_name(kind));
    let model = build(
        view,
        with_backend(config, kind),
        &name,
        "the default head config",
    )?;
    let error = |e| CliError::model(name.clone(), e);
    let n = frames.len();
    let prefill = prefix_lengths(n)
        .into_iter()
        .map(|len| Ok((len, model.classify(frames.span(0..len))?)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(error)?;
    let mut stream = model.stream(n).map_err(error)?;
    let mut streamed = Vec::with_capacity(n);
    let mut logits = vec![0.0; model.n_classes()];
    for t in 0..n {
        model
            .push(&mut stream, frames.frame(t), &mut logits)
            .map_err(error)?;
        streamed.push(logits.clone());
    }
    let windows = (0..n)
        .step_by(DEMO_WINDOW)
        .map(|start| model.classify(frames.span(start..(start + DEMO_WINDOW).min(n))))
        .collect::<Result<Vec<_>, _>>()
        .map_err(error)?;
    Ok(Run {
        kind,
        model,
        prefill,
        streamed,
        windows,
    })
}

/// Largest difference of logits between streaming and prefill, at every
/// prefix `run` has prefill for.
fn worst_stream(run: &Run) -> f32 {
    run.prefill
        .iter()
        .map(|(len, logits)| max_abs_diff(logits, &run.streamed[len - 1]))
        .fold(0.0, f32::max)
}

/// Largest difference of prefill logits between two backends over the
/// prefixes whose length passes `keep`.
fn worst_prefill(a: &Run, b: &Run, keep: impl Fn(usize) -> bool) -> f32 {
    a.prefill
        .iter()
        .zip(&b.prefill)
        .filter(|((len, _), _)| keep(*len))
        .map(|((_, x), (_, y))| max_abs_diff(x, y))
        .fold(0.0, f32::max)
}

/// Largest difference of window logits between two backends.
fn worst_windows(a: &Run, b: &Run) -> f32 {
    a.windows
        .iter()
        .zip(&b.windows)
        .map(|(x, y)| max_abs_diff(x, y))
        .fold(0.0, f32::max)
}

/// The agreement checks of the module docs, in order.
fn agreement_checks(runs: &[Run], config: &HeadConfig) -> Vec<Check> {
    let (sparse, dense, reference) = (&runs[0], &runs[1], &runs[2]);
    let prefixes = sparse.prefill.len();
    let mut checks = Vec::new();

    for run in runs {
        let diff = worst_stream(run);
        checks.push(Check {
            outcome: Outcome::of(diff <= STREAM_TOLERANCE),
            label: format!(
                "streaming == prefill, {}, {prefixes} prefixes",
                backend_name(run.kind)
            ),
            diff,
            note: String::new(),
        });
    }

    let diff = worst_prefill(sparse, reference, |_| true).max(worst_windows(sparse, reference));
    checks.push(Check {
        outcome: Outcome::of(diff <= BACKEND_TOLERANCE),
        label: format!("sparse == reference, {prefixes} prefixes and every window"),
        diff,
        note: String::new(),
    });

    // A prefix of N frames equals dense attention while N - 1 <= W.
    let covered = |len: usize| len <= config.window + 1;
    let diff = worst_prefill(sparse, dense, covered).max(worst_windows(sparse, dense));
    checks.push(Check {
        outcome: Outcome::of(diff <= BACKEND_TOLERANCE),
        label: format!(
            "sparse == dense, N-1 <= W={}: prefixes and windows",
            config.window
        ),
        diff,
        note: String::new(),
    });

    if sparse.prefill.iter().any(|&(len, _)| !covered(len)) {
        checks.push(Check {
            // The sparse pattern leaves tokens out here, so a difference is
            // the expected outcome, not a failure.
            outcome: Outcome::Info,
            label: "sparse vs dense, N-1 > W: longer prefixes".to_owned(),
            diff: worst_prefill(sparse, dense, |len| !covered(len)),
            note: "differ, as they should: sparse attends to a subset".to_owned(),
        });
    }
    checks
}

/// Mean time per streamed frame over the bundled frames, best of [`REPEATS`].
fn time_streaming(model: &Model, frames: &Frames) -> Result<Duration, CliError> {
    let n = frames.len();
    let error = |e| CliError::model("streaming timing", e);
    let mut stream = model.stream(n).map_err(error)?;
    let mut logits = vec![0.0; model.n_classes()];
    let mut best = Duration::MAX;
    for _ in 0..REPEATS {
        stream.clear();
        let start = Instant::now();
        for t in 0..n {
            model
                .push(&mut stream, black_box(frames.frame(t)), &mut logits)
                .map_err(error)?;
        }
        black_box(&logits);
        best = best.min(start.elapsed());
    }
    // n >= 1 (the CSV reader refuses an empty file) and fits u32 here.
    Ok(best / u32::try_from(n).unwrap_or(u32::MAX))
}

/// Microseconds, for printing.
fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// Frames at the end of a long stream whose decode steps are timed.
const DECODE_TAIL: usize = 256;

/// Prints, for sparse and dense at `frames` frames: whole-model prefill
/// time and its ratio, then the decode-step latency at the end of a stream
/// that long (O(log T) for sparse, O(T) for dense).
fn long_window(out: &mut dyn Write, runs: &[Run], frames: usize) -> Result<(), CliError> {
    let sequence = synthetic::random(frames, LONG_SEED);
    let contenders: Vec<&Run> = runs
        .iter()
        .filter(|r| r.kind != BackendKind::Reference)
        .collect();
    let error = |e| CliError::model("long-window timing", e);
    writeln!(
        out,
        "Long window: whole-model prefill over {} synthetic frames ({:.1} s at {} Hz), best of \
         {REPEATS}:",
        thousands(frames),
        frames as f64 / synthetic::FRAME_RATE_HZ,
        synthetic::FRAME_RATE_HZ
    )?;
    let mut times = Vec::new();
    for run in &contenders {
        let mut best = Duration::MAX;
        for _ in 0..REPEATS {
            let start = Instant::now();
            let logits = run
                .model
                .classify(black_box(&sequence.values))
                .map_err(error)?;
            best = best.min(start.elapsed());
            black_box(logits);
        }
        writeln!(
            out,
            "  {:<10} {:>10.2} ms",
            backend_name(run.kind),
            best.as_secs_f64() * 1e3
        )?;
        times.push(best.as_secs_f64());
    }
    if let [sparse, dense] = times[..] {
        writeln!(
            out,
            "  speedup    {:>10.1}x  sparse over dense",
            dense / sparse.max(f64::MIN_POSITIVE)
        )?;
    }
    writeln!(
        out,
        "  (reference skipped: it is the slow, obviously-correct oracle, not a contender)"
    )?;

    let tail = DECODE_TAIL.min(frames);
    writeln!(out)?;
    writeln!(
        out,
        "Decode step at the end of a {}-frame stream (mean of the last {tail} frames):",
        thousands(frames)
    )?;
    for run in &contenders {
        let mut stream = run.model.stream(frames).map_err(error)?;
        let mut logits = vec![0.0; run.model.n_classes()];
        let mut push = |t: usize| {
            let frame = &sequence.values[t * FEATURES..(t + 1) * FEATURES];
            run.model
                .push(&mut stream, black_box(frame), &mut logits)
                .map_err(error)
        };
        for t in 0..frames - tail {
            push(t)?;
        }
        let start = Instant::now();
        for t in frames - tail..frames {
            push(t)?;
        }
        let elapsed = start.elapsed();
        black_box(&logits);
        writeln!(
            out,
            "  {:<10} {:>9.2} µs/frame",
            backend_name(run.kind),
            micros(elapsed / u32::try_from(tail).unwrap_or(u32::MAX))
        )?;
    }
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed CSV is exactly what the generator writes, so the truth
    /// labels the demo prints are the CSV's and anyone can remake the file.
    #[test]
    fn bundled_frames_are_the_generator_output() {
        let expected = synthetic::bundled(BUNDLED_SEED).to_csv("aether synth --demo-scene");
        assert!(
            BUNDLED_FRAMES == expected,
            "assets/frames.csv differs from `aether synth --demo-scene`; regenerate it"
        );
    }

    /// The committed blob is `aether init`'s default output (until a trained
    /// model replaces it; then this test and the disclaimer go together).
    #[test]
    fn bundled_model_is_the_default_random_init() {
        let view = RvneView::parse(BUNDLED_MODEL).unwrap();
        assert_eq!(BUNDLED_MODEL.len(), 41_244);
        assert!(is_random_init(view));
    }

    #[test]
    fn windows_fit_the_dense_equality_rule() {
        let config = HeadConfig::default_aether();
        assert!(DEMO_WINDOW - 1 <= config.window);
    }
}
