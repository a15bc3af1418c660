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
//! The bundled model (`assets/default.rvne`, trained by `aether train` on
//! the synthetic set), its model card (`assets/default.json`: class names,
//! window, metrics and baselines) and frames (`assets/frames.csv`: one
//! unseen synthetic recording per class) are compiled in;
//! `assets/README.md` says how they were made. The demo says what the model
//! classifies, classifies each recording with the card's class names next
//! to the truth, and quotes the card's held-out metrics beside the
//! baselines'.

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use aether_dataset::synthetic::{self, FRAME_RATE_HZ};
use aether_domain::{BackendKind, HeadConfig};
use aether_rvne::RvneView;
use clap::Args;

use crate::csv::{Frames, parse_frames};
use crate::error::CliError;
use crate::report::{decision_and_logits, max_abs_diff, thousands};
use crate::runtime::{Model, backend_name, build, describe_config, with_backend};
use crate::scene::{FEATURES, SCENE_FRAMES, Scene};
use crate::sidecar::Sidecar;

/// The bundled model: trained by the command in `assets/README.md`.
const BUNDLED_MODEL: &[u8] = include_bytes!("../assets/default.rvne");

/// The bundled model's card, written by the same `aether train` run.
const BUNDLED_CARD: &str = include_str!("../assets/default.json");

/// The bundled frames: `aether synth --demo-scene --out assets/frames.csv`.
const BUNDLED_FRAMES: &str = include_str!("../assets/frames.csv");

/// Frames per classification window: one recording of the scene, the
/// window the bundled model was trained on.
const DEMO_WINDOW: usize = SCENE_FRAMES;

/// Prefixes up to this length are all compared: the sparse pattern changes
/// shape within the first two windows of the head (window only, then
/// log-strides, then landmarks), and N − 1 ≤ W holds only up to W + 1.
const EVERY_PREFIX_UP_TO: usize = 72;

/// Beyond [`EVERY_PREFIX_UP_TO`], prefixes are compared every this many
/// frames (and at the end).
const PREFIX_STEP: usize = 64;

/// Streaming vs prefill, same backend: the same candidates and arithmetic,
/// but reductions run in another order (a step sees one query; prefill
/// tiles queries), so f32 results differ by rounding only. Differences are
/// compared relative to the logits' scale, `max(1, largest |logit|)`: the
/// trained model's logits reach ~20, and f32 rounding grows with them
/// (measured on the bundled model and scene: at most 2.1e-6 relative,
/// `aether demo`). The numerics bars of `docs/quality.md` are 1e-5 per
/// attention output, so 1e-5 relative leaves a 5x margin while still
/// catching any real divergence (a wrong candidate moves logits by 1e-2
/// or more).
const STREAM_TOLERANCE: f32 = 1e-5;

/// Between backends that must agree (sparse vs reference everywhere,
/// sparse vs dense where N − 1 ≤ W): the kernel bar of `docs/quality.md`,
/// 1e-5 per attention output, relative to the logits' scale as above.
const BACKEND_TOLERANCE: f32 = 1e-5;

/// `max |a − b| / max(1, largest |logit| of either)`: a difference in
/// units of the logits' own scale.
fn scaled_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().chain(b).fold(1.0_f32, |m, &v| m.max(v.abs()));
    max_abs_diff(a, b) / scale
}

/// Every backend, in the order the demo reports them.
const BACKENDS: [BackendKind; 3] = [
    BackendKind::Sparse,
    BackendKind::Dense,
    BackendKind::Reference,
];

/// Timing runs per measurement; the fastest is reported (the least
/// disturbed by other processes).
const REPEATS: usize = 3;

/// Seed of the long synthetic recording.
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
    let card: Sidecar = serde_json::from_str(BUNDLED_CARD)
        .map_err(|e| CliError::Check(format!("the bundled model card does not parse: {e}")))?;
    let frames = parse_frames(
        BUNDLED_FRAMES,
        "bundled frames.csv",
        usize::from(header.input_dim),
    )?;
    let truth = Scene::bundled()?;
    let config = card.head.clone();

    writeln!(
        out,
        "aether demo: a trained model on unseen synthetic CSI recordings, every backend"
    )?;
    writeln!(out)?;
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
        "        {} (docs/model.md)",
        crate::runtime::describe_version(header)
    )?;
    writeln!(
        out,
        "        classifies {}-frame windows ({:.2} s at {FRAME_RATE_HZ} Hz) as: {}",
        card.window,
        card.window as f64 / FRAME_RATE_HZ,
        card.classes.join(", ")
    )?;
    writeln!(out, "        trained on {} (assets/README.md)", card.data)?;
    if let Some(metrics) = &card.held_out {
        let baselines: Vec<String> = card
            .baselines
            .iter()
            .filter_map(|b| {
                let m = b.held_out.as_ref()?;
                Some(format!("{} {:.1} %", b.name, m.accuracy * 100.0))
            })
            .collect();
        writeln!(
            out,
            "        held-out accuracy {:.1} %, macro-F1 {:.3} ({} windows); baselines: {}",
            metrics.accuracy * 100.0,
            metrics.macro_f1,
            metrics.samples,
            baselines.join(", ")
        )?;
    }
    writeln!(
        out,
        "frames  bundled frames.csv: {} frames x {FEATURES} features at {FRAME_RATE_HZ} Hz, one \
         synthetic recording per class, not seen in training (see `aether synth --demo-scene`)",
        frames.len(),
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
        "Classification by the sparse backend, one window of {DEMO_WINDOW} frames per recording:"
    )?;
    let mut correct = 0;
    for (index, logits) in sparse.windows.iter().enumerate() {
        let start = index * DEMO_WINDOW;
        let end = (start + DEMO_WINDOW).min(frames.len()) - 1;
        let actual = truth.class_at(end);
        let argmax = crate::report::Decision::of(logits).argmax;
        let decided = card.classes.get(argmax).map_or("?", String::as_str);
        correct += usize::from(decided == actual);
        writeln!(
            out,
            "  frames {start:>4}-{end:<4}  truth {actual:<8}  decided {decided:<8}  {}",
            decision_and_logits(logits)
        )?;
    }
    writeln!(
        out,
        "  {correct} of {} recordings classified correctly",
        sparse.windows.len()
    )?;
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
        "Checks (max |difference| of logits / max(1, largest |logit|); tolerance \
         {STREAM_TOLERANCE:.0e} streaming, {BACKEND_TOLERANCE:.0e} between backends;"
    )?;
    writeln!(
        out,
        "        prefixes: every N in 1..={}, then every multiple of {PREFIX_STEP} up to {}):",
        EVERY_PREFIX_UP_TO.min(frames.len()),
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
            writeln!(out, "All checks passed.")?;
            Ok(())
        }
    }
}

/// Prefix lengths at which prefill is computed and compared: every length
/// up to [`EVERY_PREFIX_UP_TO`] (where the sparse pattern changes shape:
/// window only, then strides and landmarks), then every
/// [`PREFIX_STEP`] frames and the whole sequence. Every prefix would cost
/// O(n²) frames of prefill, which is seconds in a debug build for no extra
/// coverage.
fn prefix_lengths(n: usize) -> Vec<usize> {
    let mut lengths: Vec<usize> = (1..=n.min(EVERY_PREFIX_UP_TO))
        .chain((PREFIX_STEP..=n).step_by(PREFIX_STEP))
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
        .map(|(len, logits)| scaled_diff(logits, &run.streamed[len - 1]))
        .fold(0.0, f32::max)
}

/// Largest difference of prefill logits between two backends over the
/// prefixes whose length passes `keep`.
fn worst_prefill(a: &Run, b: &Run, keep: impl Fn(usize) -> bool) -> f32 {
    a.prefill
        .iter()
        .zip(&b.prefill)
        .filter(|((len, _), _)| keep(*len))
        .map(|((_, x), (_, y))| scaled_diff(x, y))
        .fold(0.0, f32::max)
}

/// Largest difference of window logits between two backends.
fn worst_windows(a: &Run, b: &Run) -> f32 {
    a.windows
        .iter()
        .zip(&b.windows)
        .map(|(x, y)| scaled_diff(x, y))
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
    let diff = worst_prefill(sparse, dense, covered);
    checks.push(Check {
        outcome: Outcome::of(diff <= BACKEND_TOLERANCE),
        label: format!("sparse == dense, N-1 <= W={}: prefixes", config.window),
        diff,
        note: String::new(),
    });

    if sparse.prefill.iter().any(|&(len, _)| !covered(len)) {
        checks.push(Check {
            // The sparse pattern leaves tokens out here, so a difference is
            // the expected outcome, not a failure.
            outcome: Outcome::Info,
            label: "sparse vs dense, N-1 > W: longer prefixes and windows".to_owned(),
            diff: worst_prefill(sparse, dense, |len| !covered(len))
                .max(worst_windows(sparse, dense)),
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
    // The generator makes recordings of at least MIN_FRAMES; a shorter
    // long window takes the start of one.
    let sequence = Scene::generate(LONG_SEED, frames.max(synthetic::MIN_FRAMES))?;
    let sequence = &sequence.values()[..frames * FEATURES];
    let contenders: Vec<&Run> = runs
        .iter()
        .filter(|r| r.kind != BackendKind::Reference)
        .collect();
    let error = |e| CliError::model("long-window timing", e);
    writeln!(
        out,
        "Long window: whole-model prefill over {} synthetic frames ({:.1} s at {FRAME_RATE_HZ} \
         Hz), best of {REPEATS}:",
        thousands(frames),
        frames as f64 / FRAME_RATE_HZ,
    )?;
    let mut times = Vec::new();
    for run in &contenders {
        let mut best = Duration::MAX;
        for _ in 0..REPEATS {
            let start = Instant::now();
            let logits = run.model.classify(black_box(sequence)).map_err(error)?;
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
            let frame = &sequence[t * FEATURES..(t + 1) * FEATURES];
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
        let expected = Scene::bundled()
            .unwrap()
            .to_csv("aether synth --demo-scene");
        assert!(
            BUNDLED_FRAMES == expected,
            "assets/frames.csv differs from `aether synth --demo-scene`; regenerate it"
        );
    }

    /// The card belongs to the blob: same class count, input width and
    /// layers, and a window the scene's recordings fill.
    #[test]
    fn bundled_card_describes_the_bundled_model() {
        let header = RvneView::parse(BUNDLED_MODEL).unwrap().header();
        let card: Sidecar = serde_json::from_str(BUNDLED_CARD).unwrap();
        assert_eq!(card.classes.len(), usize::from(header.n_classes));
        assert_eq!(card.input_dim, usize::from(header.input_dim));
        assert_eq!(card.n_layers, usize::from(header.n_layers));
        assert_eq!(card.window, DEMO_WINDOW);
        assert_eq!(card.head.q_heads, usize::from(header.n_q_heads));
        assert_eq!(
            card.classes,
            aether_dataset::synthetic::CLASSES.map(str::to_owned)
        );
    }
}
