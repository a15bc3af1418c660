//! `aether gate`: may a deployment switch from dense to sparse attention?
//!
//! Sparse attention is worth deploying only if it is a drop-in for dense:
//! it must train as well, classify as well, represent the windows the
//! same way, and actually be faster at the window the deployment
//! classifies. The gate measures exactly those four things on the user's
//! own data, with two models that differ in nothing but the backend (same
//! seed, data, split, schedule and head shape), and answers yes (exit 0)
//! or no (exit 1, one `error:` line naming what failed). The definitions
//! and the reasons for the thresholds are in `docs/gate.md`.
//!
//! Outputs: the per-epoch tables of both runs, the criteria table and a
//! one-line verdict on standard output; with `--json`, the same numbers
//! as a JSON report for CI.

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aether_dataset::{Split, Windows};
use aether_domain::{AttentionBackend as _, BackendKind, HeadConfig};
use aether_engine::Backend;
use aether_model::TemporalModel;
use aether_train::{Schedule, TrainConfig, Trained};
use clap::Args;
use serde::Serialize;

use crate::error::CliError;
use crate::runtime::{Model, backend_name, refuse_overwrite, with_backend};
use crate::train::{SetupArgs, head_config, load, percent, with_bar};

/// Largest relative difference of the final training losses, in percent.
const MAX_LOSS_DIFFERENCE_PERCENT: f64 = 1.0;
/// Largest difference of the held-out accuracies, in percentage points.
const MAX_ACCURACY_DIFFERENCE_PP: f64 = 1.0;
/// Smallest mean Spearman correlation of neighbourhood distances.
const MIN_NEIGHBOURHOOD_RHO: f64 = 0.95;
/// Smallest dense/sparse prefill time ratio.
const MIN_PREFILL_SPEEDUP: f64 = 5.0;
/// Nearest neighbours per window in each embedding space.
const NEIGHBOURS: usize = 50;
/// Timed prefills per model; the best counts.
const REPEATS: usize = 5;
/// Identifies the JSON report's layout, so a dashboard can refuse one it
/// does not know.
const FORMAT: &str = "aether-gate-1";

/// Arguments of `aether gate`: `aether train`'s data, head config, depth
/// and schedule options, plus what only the gate needs.
#[derive(Debug, Args)]
pub(crate) struct GateArgs {
    #[command(flatten)]
    setup: SetupArgs,
    /// Frames per timed prefill: the window the deployment classifies.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    latency_window: u32,
    /// Also write the measurements and verdicts to this JSON file.
    #[arg(long, value_name = "FILE.json")]
    json: Option<PathBuf>,
    /// Overwrite the --json file if it exists.
    #[arg(long)]
    force: bool,
}

/// One criterion: what was measured, against what, and the verdict.
#[derive(Debug, Clone, Serialize)]
struct Criterion {
    /// Stable key (`training_loss`, ...), for scripts.
    name: &'static str,
    /// What the table calls it.
    #[serde(skip)]
    label: &'static str,
    /// The measured value, in `unit`.
    measured: f64,
    /// `<=` or `>=`: how `measured` must compare with `threshold`.
    comparison: &'static str,
    /// The bound.
    threshold: f64,
    /// `%`, `pp`, `rho` or `x`.
    unit: &'static str,
    /// Whether it holds (false for a value that could not be measured,
    /// such as a relative difference over a zero loss).
    pass: bool,
    /// The two underlying values, or other context, for the table.
    detail: String,
}

impl Criterion {
    /// A criterion that passes when `measured <= threshold` (`at_most`) or
    /// `measured >= threshold`; NaN never passes.
    fn new(
        name: &'static str,
        label: &'static str,
        measured: f64,
        at_most: bool,
        threshold: f64,
        unit: &'static str,
        detail: String,
    ) -> Self {
        let pass = if at_most {
            measured <= threshold
        } else {
            measured >= threshold
        };
        Self {
            name,
            label,
            measured,
            comparison: if at_most { "<=" } else { ">=" },
            threshold,
            unit,
            pass,
            detail,
        }
    }

    /// `0.41 %`, `0.0 pp`, `0.982`, `6.3x`.
    fn show(&self, value: f64) -> String {
        if !value.is_finite() {
            return "-".to_owned();
        }
        match self.unit {
            "%" => format!("{value:.2} %"),
            "pp" => format!("{value:.1} pp"),
            "x" => format!("{value:.1}x"),
            _ => format!("{value:.3}"),
        }
    }
}

/// What one model measured.
#[derive(Debug, Clone, Serialize)]
struct ModelReport {
    /// `train_loss` of the last epoch.
    final_train_loss: f64,
    /// Held-out accuracy of the final weights, as a fraction.
    held_out_accuracy: f64,
    /// Best whole-model prefill time over `latency_window` frames.
    prefill_seconds: f64,
    /// Wall time of training.
    training_seconds: f64,
}

/// Which windows the neighbourhood criterion used.
#[derive(Debug, Clone, Serialize)]
struct NeighbourhoodReport {
    /// `held-out`, or `all` when fewer than `NEIGHBOURS + 1` are held out.
    windows_from: &'static str,
    /// Windows compared.
    windows: usize,
    /// Nearest neighbours per window and space.
    neighbours: usize,
    /// The smallest per-window correlation (the mean is the criterion).
    min_rho: f64,
}

/// The JSON report.
#[derive(Debug, Serialize)]
struct Report<'a> {
    format: &'static str,
    /// All four criteria pass.
    pass: bool,
    /// Names of the criteria that failed.
    failed: Vec<&'static str>,
    criteria: &'a [Criterion],
    sparse: &'a ModelReport,
    dense: &'a ModelReport,
    neighbourhood: &'a NeighbourhoodReport,
    latency_window: usize,
    /// `release`, or `debug` (whose timings mean little).
    build: &'static str,
    data: &'a str,
    train_windows: usize,
    test_windows: usize,
    window: usize,
    n_layers: usize,
    /// The head config both models share, shown with the sparse backend.
    head: &'a HeadConfig,
    schedule: &'a Schedule,
    command: String,
}

/// Trains both models, measures, prints the table, writes the report, and
/// fails with [`CliError::Gate`] when a criterion does.
pub(crate) fn run(args: &GateArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if let Some(path) = &args.json {
        refuse_overwrite(path, args.force)?;
    }
    let setup = &args.setup;
    let head = head_config(setup.config.as_deref())?;
    let (data, source) = load(setup)?;
    if data.test.is_empty() {
        // Criterion 2 compares held-out accuracies; without held-out
        // windows there is nothing to compare, so refuse before training.
        return Err(CliError::Gate(
            "aether gate needs held-out windows (give --test FILE.csv or a --test-fraction \
             that holds out at least one recording)"
                .to_owned(),
        ));
    }
    let sparse_config = setup.train_config(with_backend(&head, BackendKind::Sparse));
    let dense_config = setup.train_config(with_backend(&head, BackendKind::Dense));
    let window = setup.window();
    writeln!(
        out,
        "gate    sparse against dense attention: two models, same data, seed, schedule and head"
    )?;
    writeln!(
        out,
        "data    {source}: {} training / {} held-out windows of {window} frames, {} classes",
        data.train.len(),
        data.test.len(),
        data.classes.len(),
    )?;
    writeln!(
        out,
        "model   D {}, {} layers, q_heads {}, kv_heads {}, head_dim {}, window {}, block {}",
        data.train.input_dim,
        sparse_config.n_layers,
        head.q_heads,
        head.kv_heads,
        head.head_dim,
        head.window,
        head.block_size
    )?;
    crate::train::write_options(out, &sparse_config.options)?;
    let (sparse_trained, sparse_seconds) = train_one(out, &sparse_config, &data)?;
    let (dense_trained, dense_seconds) = train_one(out, &dense_config, &data)?;
    let sparse = build(&sparse_trained, &sparse_config.head)?;
    let dense = build(&dense_trained, &dense_config.head)?;

    let loss = |t: &Trained| t.history.last().map_or(f64::NAN, |e| e.train_loss);
    let accuracy = |t: &Trained| t.held_out.as_ref().map_or(f64::NAN, |m| m.accuracy);
    let (sparse_loss, dense_loss) = (loss(&sparse_trained), loss(&dense_trained));
    let (sparse_accuracy, dense_accuracy) = (accuracy(&sparse_trained), accuracy(&dense_trained));

    let (from, windows) = if data.test.len() > NEIGHBOURS {
        ("held-out", data.test.clone())
    } else {
        ("all", concatenate(&data.train, &data.test))
    };
    if windows.len() < 3 {
        return Err(CliError::Gate(format!(
            "aether gate needs at least 3 windows to compare neighbourhoods; the data has {}",
            windows.len()
        )));
    }
    let neighbours = NEIGHBOURS.min(windows.len() - 1);
    let dense_embeddings = embeddings(&dense, &windows)?;
    let sparse_embeddings = embeddings(&sparse, &windows)?;
    let rhos = neighbourhood_agreement(
        &dense_embeddings,
        &sparse_embeddings,
        data.train.input_dim,
        neighbours,
    );
    let mean_rho = rhos.iter().sum::<f64>() / rhos.len() as f64;
    let min_rho = rhos.iter().copied().fold(f64::INFINITY, f64::min);
    let neighbourhood = NeighbourhoodReport {
        windows_from: from,
        windows: windows.len(),
        neighbours,
        min_rho,
    };
    writeln!(
        out,
        "neighbourhood: {} windows ({}), {neighbours} nearest per window in each embedding space",
        windows.len(),
        if from == "all" {
            format!("all: fewer than {} held out", NEIGHBOURS + 1)
        } else {
            "held out".to_owned()
        }
    )?;

    let latency_window = args.latency_window as usize;
    let frames = latency_frames(&data.train, latency_window);
    let (sparse_time, dense_time) = time_prefill(&sparse, &dense, &frames)?;
    let (sparse_time, dense_time) = (sparse_time.as_secs_f64(), dense_time.as_secs_f64());
    writeln!(
        out,
        "latency: whole-model prefill over {latency_window} frames (the training windows end to \
         end), best of {REPEATS}{}",
        if cfg!(debug_assertions) {
            " (a debug build: build with --release for timings that mean anything)"
        } else {
            ""
        }
    )?;

    let criteria = [
        Criterion::new(
            "training_loss",
            "training loss difference",
            relative_difference_percent(sparse_loss, dense_loss),
            true,
            MAX_LOSS_DIFFERENCE_PERCENT,
            "%",
            format!("sparse {sparse_loss:.4}, dense {dense_loss:.4}"),
        ),
        Criterion::new(
            "held_out_accuracy",
            "held-out accuracy difference",
            (sparse_accuracy - dense_accuracy).abs() * 100.0,
            true,
            MAX_ACCURACY_DIFFERENCE_PP,
            "pp",
            format!(
                "sparse {}, dense {}",
                percent(sparse_accuracy),
                percent(dense_accuracy)
            ),
        ),
        Criterion::new(
            "neighbourhood",
            "neighbourhood agreement (mean rho)",
            mean_rho,
            false,
            MIN_NEIGHBOURHOOD_RHO,
            "rho",
            format!("lowest {min_rho:.3} over {} windows", windows.len()),
        ),
        Criterion::new(
            "prefill_latency",
            "prefill time dense / sparse",
            dense_time / sparse_time.max(f64::MIN_POSITIVE),
            false,
            MIN_PREFILL_SPEEDUP,
            "x",
            format!(
                "sparse {:.2} ms, dense {:.2} ms",
                sparse_time * 1e3,
                dense_time * 1e3
            ),
        ),
    ];
    print_table(out, &criteria)?;
    let failed: Vec<&'static str> = criteria
        .iter()
        .filter(|c| !c.pass)
        .map(|c| c.name)
        .collect();

    if let Some(path) = &args.json {
        let report = Report {
            format: FORMAT,
            pass: failed.is_empty(),
            failed: failed.clone(),
            criteria: &criteria,
            sparse: &ModelReport {
                final_train_loss: sparse_loss,
                held_out_accuracy: sparse_accuracy,
                prefill_seconds: sparse_time,
                training_seconds: sparse_seconds,
            },
            dense: &ModelReport {
                final_train_loss: dense_loss,
                held_out_accuracy: dense_accuracy,
                prefill_seconds: dense_time,
                training_seconds: dense_seconds,
            },
            neighbourhood: &neighbourhood,
            latency_window,
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            data: &source,
            train_windows: data.train.len(),
            test_windows: data.test.len(),
            window,
            n_layers: sparse_config.n_layers,
            head: &sparse_config.head,
            schedule: &sparse_config.schedule,
            command: std::iter::once("aether".to_owned())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" "),
        };
        // serde_json writes non-finite numbers as null, which is what an
        // unmeasurable value should read as.
        let json = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)? + "\n";
        std::fs::write(path, json).map_err(|source| CliError::Write {
            path: path.clone(),
            source,
        })?;
        writeln!(out, "wrote {}", path.display())?;
    }

    if failed.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = criteria
        .iter()
        .filter(|c| !c.pass)
        .map(|c| {
            format!(
                "{} ({}, needs {} {})",
                c.label,
                c.show(c.measured),
                c.comparison,
                c.show(c.threshold)
            )
        })
        .collect();
    Err(CliError::Gate(format!("gate failed: {}", names.join("; "))))
}

/// Trains one model under a progress bar, printing its epoch table.
fn train_one(
    out: &mut dyn Write,
    config: &TrainConfig,
    data: &Split,
) -> Result<(Trained, f64), CliError> {
    let name = backend_name(config.head.backend);
    writeln!(out, "{name} attention")?;
    writeln!(out, "epoch  train loss  held-out accuracy  macro-F1")?;
    let started = Instant::now();
    let trained = with_bar(name, &mut *out, true, |observer| {
        aether_train::train(config, data, observer)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    writeln!(out, "trained in {seconds:.1} s")?;
    Ok((trained, seconds))
}

/// The kernel model of trained weights, on the backend `head` names.
fn build(trained: &Trained, head: &HeadConfig) -> Result<Model, CliError> {
    let name = backend_name(head.backend);
    let backend = Backend::from_config(head.clone()).map_err(|source| CliError::Config {
        origin: format!("the {name} head config"),
        source,
    })?;
    TemporalModel::new(trained.weights.clone(), backend)
        .map_err(|e| CliError::model(format!("the trained {name} model"), e))
}

/// `a` then `b`, as one set of windows (same shape).
fn concatenate(a: &Windows, b: &Windows) -> Windows {
    Windows {
        input_dim: a.input_dim,
        window: a.window,
        frames: [a.frames.as_slice(), b.frames.as_slice()].concat(),
        labels: [a.labels.as_slice(), b.labels.as_slice()].concat(),
    }
}

/// Every window's embedding, `len × D` row-major.
fn embeddings(model: &Model, windows: &Windows) -> Result<Vec<f32>, CliError> {
    let d = model.input_dim();
    let mut all = vec![0.0; windows.len() * d];
    for (i, row) in all.chunks_exact_mut(d).enumerate() {
        model
            .embedding_into(windows.window_frames(i), row)
            .map_err(|e| {
                CliError::model(
                    format!(
                        "embedding window {i} with the {} model",
                        backend_name(model.backend().config().backend)
                    ),
                    e,
                )
            })?;
    }
    Ok(all)
}

/// `latency_window` frames for the timed prefill: the training windows
/// laid end to end, from the first again if they hold fewer. Why real
/// frames: they are what the deployment will see; attention's cost does
/// not depend on the values, but the exact path for unusual values does,
/// so made-up frames could time something else.
fn latency_frames(train: &Windows, latency_window: usize) -> Vec<f32> {
    train
        .frames
        .iter()
        .copied()
        .cycle()
        .take(latency_window * train.input_dim)
        .collect()
}

/// The best of [`REPEATS`] whole-model prefills of each model over
/// `frames`. The two alternate, so a load spike from another process on
/// the machine hits both rather than one.
fn time_prefill(
    sparse: &Model,
    dense: &Model,
    frames: &[f32],
) -> Result<(Duration, Duration), CliError> {
    let mut best = [Duration::MAX; 2];
    for _ in 0..REPEATS {
        for (model, best) in [sparse, dense].into_iter().zip(&mut best) {
            let start = Instant::now();
            let logits = model.classify(black_box(frames)).map_err(|e| {
                CliError::model(
                    format!(
                        "timing the {} model's prefill",
                        backend_name(model.backend().config().backend)
                    ),
                    e,
                )
            })?;
            *best = (*best).min(start.elapsed());
            black_box(logits);
        }
    }
    Ok((best[0], best[1]))
}

/// `|a − b| / b` in percent (NaN or infinite when `b` is 0).
fn relative_difference_percent(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs() * 100.0
}

/// Prints the criteria table and the one-line verdict.
fn print_table(out: &mut dyn Write, criteria: &[Criterion]) -> Result<(), CliError> {
    writeln!(out)?;
    writeln!(
        out,
        "criterion                            measured  threshold  result  values"
    )?;
    for c in criteria {
        writeln!(
            out,
            "  {:<34} {:>8}  {:<9}  {:<6}  {}",
            c.label,
            c.show(c.measured),
            format!("{} {}", c.comparison, c.show(c.threshold)),
            if c.pass { "PASS" } else { "FAIL" },
            c.detail
        )?;
    }
    let passed = criteria.iter().filter(|c| c.pass).count();
    writeln!(
        out,
        "gate {}: {passed} of {} criteria pass",
        if passed == criteria.len() {
            "PASS"
        } else {
            "FAIL"
        },
        criteria.len()
    )?;
    Ok(())
}

/// Per window `i` of the `n = len / d` embeddings in each space: the
/// Spearman correlation between its Euclidean distances in the dense and
/// the sparse space to the union of its `k` nearest neighbours in each
/// ([`union_of_neighbours`]). Both slices are `n × d` row-major.
fn neighbourhood_agreement(dense: &[f32], sparse: &[f32], d: usize, k: usize) -> Vec<f64> {
    let n = dense.len() / d;
    (0..n)
        .map(|i| {
            let dense_row = distances(dense, d, i);
            let sparse_row = distances(sparse, d, i);
            let union = union_of_neighbours(&dense_row, &sparse_row, i, k);
            let a: Vec<f64> = union.iter().map(|&j| dense_row[j]).collect();
            let b: Vec<f64> = union.iter().map(|&j| sparse_row[j]).collect();
            spearman(&a, &b)
        })
        .collect()
}

/// Euclidean distances (in f64) from row `i` of `points` (`n × d`) to
/// every row, itself included (0).
fn distances(points: &[f32], d: usize, i: usize) -> Vec<f64> {
    let anchor = &points[i * d..(i + 1) * d];
    points
        .chunks_exact(d)
        .map(|row| {
            row.iter()
                .zip(anchor)
                .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

/// The `k` samples nearest to `i` by `distances` (its distances to every
/// sample), `i` itself excluded, nearest first. Equal distances go to the
/// lower index, so the choice is deterministic.
fn nearest(distances: &[f64], i: usize, k: usize) -> Vec<usize> {
    let mut others: Vec<usize> = (0..distances.len()).filter(|&j| j != i).collect();
    others.sort_by(|&a, &b| distances[a].total_cmp(&distances[b]).then(a.cmp(&b)));
    others.truncate(k);
    others
}

/// The union of `i`'s `k` nearest neighbours in two spaces, in index
/// order. Why the union: a window that is near in only one space is
/// exactly a disagreement, and it must be among the compared samples
/// whichever space it is near in.
fn union_of_neighbours(a: &[f64], b: &[f64], i: usize, k: usize) -> Vec<usize> {
    let mut union = nearest(a, i, k);
    union.extend(nearest(b, i, k));
    union.sort_unstable();
    union.dedup();
    union
}

/// 1-based ranks of `values`; tied values share the mean of the ranks
/// they span (so `[5, 1, 5]` ranks as `[2.5, 1, 2.5]`).
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold equal values: ranks start+1..=end.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &index in &order[start..end] {
            ranks[index] = rank;
        }
        start = end;
    }
    ranks
}

/// Spearman's rank correlation: Pearson's correlation of the average
/// ranks, which stays exact with ties. When one side is constant the
/// correlation is undefined; it counts as 1 when both are (the two
/// orders agree: nothing is distinguished) and 0 when only one is (one
/// space tells apart what the other cannot).
fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let mut covariance = 0.0;
    let (mut va, mut vb) = (0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        covariance += (x - ma) * (y - mb);
        va += (x - ma).powi(2);
        vb += (y - mb).powi(2);
    }
    match (va > 0.0, vb > 0.0) {
        (true, true) => covariance / (va * vb).sqrt(),
        (false, false) => 1.0,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[5.0, 1.0, 5.0]), [2.5, 1.0, 2.5]);
        assert_eq!(ranks(&[3.0, 2.0, 1.0]), [3.0, 2.0, 1.0]);
        assert_eq!(ranks(&[7.0, 7.0, 7.0, 7.0]), [2.5, 2.5, 2.5, 2.5]);
        assert_eq!(ranks(&[1.0, 2.0, 2.0, 2.0, 9.0]), [1.0, 3.0, 3.0, 3.0, 5.0]);
    }

    #[test]
    fn spearman_of_known_rankings() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        // Same order, any monotone transform: 1.
        assert!(close(spearman(&a, &[10.0, 20.0, 30.0, 400.0, 5000.0]), 1.0));
        // Reversed: -1.
        assert!(close(spearman(&a, &[5.0, 4.0, 3.0, 2.0, 1.0]), -1.0));
        // One adjacent swap of five: 1 - 6·2 / (5·24) = 0.9 (no ties, so
        // the textbook formula applies).
        assert!(close(spearman(&a, &[1.0, 2.0, 4.0, 3.0, 5.0]), 0.9));
        // Ranks [1, 2.5, 2.5, 4] against [1, 2, 3, 4]: Pearson of the
        // average ranks, 4.5 / sqrt(4.5 · 5) = 0.9486832980505138.
        let tied = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]);
        assert!(close(tied, 4.5 / (4.5f64 * 5.0).sqrt()), "{tied}");
        // Symmetric.
        assert!(close(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 2.0, 3.0]),
            tied
        ));
    }

    #[test]
    fn spearman_with_a_constant_side() {
        assert!(close(spearman(&[2.0, 2.0, 2.0], &[4.0, 4.0, 4.0]), 1.0));
        assert!(close(spearman(&[2.0, 2.0, 2.0], &[1.0, 2.0, 3.0]), 0.0));
        assert!(close(spearman(&[1.0, 2.0, 3.0], &[0.0, 0.0, 0.0]), 0.0));
    }

    #[test]
    fn nearest_excludes_the_sample_and_breaks_ties_by_index() {
        // Distances from sample 2 to samples 0..6.
        let distances = [4.0, 1.0, 0.0, 1.0, 0.5, 9.0];
        assert_eq!(nearest(&distances, 2, 3), [4, 1, 3]);
        assert_eq!(nearest(&distances, 2, 1), [4]);
        // More than there are: every other sample.
        assert_eq!(nearest(&distances, 2, 50), [4, 1, 3, 0, 5]);
    }

    #[test]
    fn union_of_neighbours_takes_both_spaces() {
        let dense = [0.0, 1.0, 2.0, 3.0, 4.0];
        let sparse = [0.0, 4.0, 3.0, 2.0, 1.0];
        assert_eq!(union_of_neighbours(&dense, &sparse, 0, 2), [1, 2, 3, 4]);
        assert_eq!(union_of_neighbours(&dense, &dense, 0, 2), [1, 2]);
    }

    #[test]
    fn agreement_is_one_for_a_scaled_copy_and_lower_for_a_shuffle() {
        // Eight points on a line (D = 2), and the same points scaled and
        // shifted: every distance ordering is kept.
        let points: Vec<f32> = (0..8).flat_map(|i| [i as f32 * i as f32, 1.0]).collect();
        let scaled: Vec<f32> = points.iter().map(|x| 3.0 * x + 1.0).collect();
        let rhos = neighbourhood_agreement(&points, &scaled, 2, 3);
        assert_eq!(rhos.len(), 8);
        assert!(rhos.iter().all(|&r| close(r, 1.0)), "{rhos:?}");
        // Swap two points' positions in one space: their neighbourhoods
        // disagree.
        let mut swapped = points.clone();
        swapped.swap(0, 14);
        let rhos = neighbourhood_agreement(&points, &swapped, 2, 3);
        assert!(rhos.iter().any(|&r| r < 0.9), "{rhos:?}");
    }

    #[test]
    fn criteria_compare_and_refuse_nan() {
        let at_most = |v| Criterion::new("x", "x", v, true, 1.0, "%", String::new()).pass;
        let at_least = |v| Criterion::new("x", "x", v, false, 5.0, "x", String::new()).pass;
        assert!(at_most(1.0) && at_most(0.2) && !at_most(1.01) && !at_most(f64::NAN));
        assert!(at_least(5.0) && !at_least(4.9) && !at_least(f64::NAN));
        assert!(relative_difference_percent(1.0, 0.0).is_infinite());
        assert!((relative_difference_percent(1.01, 1.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn latency_frames_cycle_the_training_windows() {
        let train = Windows {
            input_dim: 2,
            window: 2,
            frames: vec![1.0, 2.0, 3.0, 4.0],
            labels: vec![0],
        };
        assert_eq!(latency_frames(&train, 3), [1.0, 2.0, 3.0, 4.0, 1.0, 2.0]);
    }
}
