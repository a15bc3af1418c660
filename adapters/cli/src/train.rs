//! `aether train`: train the temporal model on synthetic data or labelled
//! recordings, with the baselines on the same split beside it.
//!
//! Why the baselines are not optional: a held-out accuracy means little
//! alone. The majority guess says what nothing learns, a linear classifier
//! on per-window mean and standard deviation what needs no temporal
//! structure, and a small causal 1D-CNN of similar size what a plain
//! temporal model reaches (`docs/training.md`); the attention model earns
//! its place only ahead of them.
//!
//! Outputs: the `.rvne` blob, its model card (`model.json`, see
//! [`crate::sidecar`]) and, with `--metrics`, the same card as a separate
//! JSON file for a CI dashboard.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use aether_dataset::{Recordings, Split, csv, split_files, synthetic};
use aether_domain::HeadConfig;
use aether_engine::toml_config::{self, HeadShape};
use aether_rvne::{ElementType, RvneBlob};
use aether_train::baselines::{self, BaselineReport};
use aether_train::{Metrics, ModelOptions, Norm, Progress, Schedule, TrainConfig, Trained};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::CliError;
use crate::init::parse_seed;
use crate::runtime::refuse_overwrite;
use crate::sidecar::{self, FORMAT, Sidecar};

/// Arguments of `aether train`.
#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    setup: SetupArgs,
    /// The model file to write; the model card goes beside it (.json).
    #[arg(long, value_name = "FILE.rvne")]
    out: PathBuf,
    /// Store the weights as f16 (half the size; see docs/training.md for
    /// the measured effect on the logits).
    #[arg(long)]
    f16: bool,
    /// Also write the model card to this JSON file.
    #[arg(long, value_name = "FILE.json")]
    metrics: Option<PathBuf>,
    /// Overwrite the output files if they exist.
    #[arg(long)]
    force: bool,
}

/// What decides the trained model: the data, the head config, the depth
/// and the schedule. Why a struct of its own: `aether gate` trains with
/// exactly these options, so they are declared, documented and read once.
#[derive(Debug, Args)]
pub(crate) struct SetupArgs {
    /// `synthetic` (the documented generator, docs/training-data.md) or a
    /// labelled CSV (`label,sequence,f0,…`).
    #[arg(long, value_name = "synthetic|FILE.csv")]
    data: String,
    /// Evaluate on this labelled CSV instead of holding out recordings of
    /// --data.
    #[arg(long, value_name = "FILE.csv")]
    test: Option<PathBuf>,
    /// Head config TOML (backend sparse|dense, window, block size, heads, …);
    /// missing head-shape keys default to the AETHER shape.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Passes over the training windows [default: the trainer's, 30; see
    /// docs/training.md].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    epochs: Option<u32>,
    /// Frames per window.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    window: u32,
    /// Frames between the starts of consecutive windows of a recording
    /// (default: the window, so windows do not overlap).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    hop: Option<u32>,
    /// Seeds the synthetic data, the split, the initial weights and the
    /// batch order (decimal or 0x-hex).
    #[arg(long, default_value = "1", value_parser = parse_seed)]
    seed: u64,
    /// Attention layers.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    layers: u32,
    /// Windows per optimizer step [default: the trainer's, 16].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    batch_size: Option<u32>,
    /// Peak AdamW learning rate, decayed along a half cosine [default: the
    /// trainer's, 0.01].
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Fraction of the recordings held out (without --test).
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Synthetic data: values per frame.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    input_dim: u32,
    /// Synthetic data: recordings per class.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    per_class: u32,
    /// Synthetic data: `default`, or `hard` (weaker signals, more subject
    /// variation, confusable classes; docs/training-data.md).
    #[arg(long, value_enum, default_value = "default")]
    variant: Variant,
    /// Model version 2: the pre-norm (docs/model.md).
    #[arg(long, value_enum, default_value = "none")]
    norm: NormArg,
    /// Model version 2: taps of the causal depthwise convolution (0 = off,
    /// else at least 2).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=255))]
    conv_taps: u32,
    /// Model version 2: hidden width of the per-layer ReLU MLP; 0 turns
    /// it off (with every other option off too that is model version 1)
    /// [default: the trainer's, 32; docs/training.md].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=65_535))]
    mlp_hidden: Option<u32>,
    /// Model version 2: input centring, each frame minus a running mean
    /// with weight 2^-N on the newest frame; 0 turns it off
    /// [default: the trainer's, 7; docs/model.md].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=24))]
    centre_shift: Option<u32>,
    /// Model version 2: the centred input's gain 2^N (0 without centring)
    /// [default: the trainer's, 3].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=15))]
    centre_gain_log2: Option<u32>,
    /// Model version 2: pooled readout, the classifier reads a running
    /// mean of every frame's final row with weight 2^-N on the newest; 0
    /// reads the last frame [default: the trainer's, 6].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=24))]
    pool_shift: Option<u32>,
}

/// The indented `version 2: …` line under a `model` line, naming every
/// option (nothing for version 1), so a training log says which model it
/// trained.
pub(crate) fn write_options(out: &mut dyn Write, o: &ModelOptions) -> std::io::Result<()> {
    if o.is_v1() {
        return Ok(());
    }
    writeln!(
        out,
        "        version 2: norm {}, conv_taps {}, mlp_hidden {}, centre_shift {}, \
         centre_gain_log2 {}, pool_shift {}",
        match o.norm {
            Norm::None => "none",
            Norm::Layer => "layer",
            Norm::Rms => "rms",
        },
        o.conv_taps,
        o.mlp_hidden,
        o.centre_shift,
        o.centre_gain_log2,
        o.pool_shift
    )
}

/// `--variant`: which synthetic set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Variant {
    /// `Difficulty::default()`.
    Default,
    /// `Difficulty::hard()`.
    Hard,
}

/// `--norm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum NormArg {
    /// No norm (version 1 when the other options are off too).
    None,
    /// Layer norm.
    Layer,
    /// RMS norm.
    Rms,
}

/// Trains, evaluates, compares and writes.
pub(crate) fn run(args: &TrainArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let card_path = sidecar::path_for(&args.out);
    for path in [Some(&args.out), Some(&card_path), args.metrics.as_ref()]
        .into_iter()
        .flatten()
    {
        refuse_overwrite(path, args.force)?;
    }
    let setup = &args.setup;
    let head = head_config(setup.config.as_deref())?;
    let window = setup.window();
    let (data, source) = load(setup)?;
    let config = setup.train_config(head);
    writeln!(
        out,
        "data    {source}: {} training / {} held-out windows of {window} frames, {} classes ({})",
        data.train.len(),
        data.test.len(),
        data.classes.len(),
        data.classes.join(", ")
    )?;
    writeln!(
        out,
        "model   D {}, {} layers, head {} (q_heads {}, kv_heads {}, head_dim {}, window {}, \
         block {})",
        data.train.input_dim,
        config.n_layers,
        crate::runtime::backend_name(config.head.backend),
        config.head.q_heads,
        config.head.kv_heads,
        config.head.head_dim,
        config.head.window,
        config.head.block_size
    )?;
    write_options(out, &config.options)?;
    writeln!(out, "epoch  train loss  held-out accuracy  macro-F1")?;

    let started = Instant::now();
    let trained = with_bar("model", &mut *out, true, |observer| {
        aether_train::train(&config, &data, observer)
    })?;
    let training_seconds = started.elapsed().as_secs_f64();
    writeln!(out, "trained in {training_seconds:.1} s")?;

    let baselines = with_bar("baselines", &mut *out, false, |observer| {
        baselines::all(&config.schedule, &data, observer)
    })?;
    summary(out, &trained, &baselines, &data)?;

    let element_type = if args.f16 {
        ElementType::F16
    } else {
        ElementType::F32
    };
    let blob = RvneBlob::from_weights(&trained.weights, element_type).map_err(|source| {
        CliError::Format {
            what: "writing the trained weights".to_owned(),
            source,
        }
    })?;
    let card = Sidecar {
        format: FORMAT.to_owned(),
        classes: data.classes.clone(),
        window,
        hop: setup.hop(),
        input_dim: data.train.input_dim,
        n_layers: config.n_layers,
        head: config.head.clone(),
        options: config.options.clone(),
        data: source,
        train_windows: data.train.len(),
        test_windows: data.test.len(),
        schedule: config.schedule.clone(),
        element_type: if args.f16 { "f16" } else { "f32" }.to_owned(),
        training_seconds,
        held_out: trained.held_out.clone(),
        history: trained.history.clone(),
        baselines,
        // `aether` rather than the path the binary was started by, so a card
        // reads the same whoever made it.
        command: std::iter::once("aether".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let json = serde_json::to_string_pretty(&card).map_err(std::io::Error::other)? + "\n";
    write_file(&args.out, blob.as_bytes())?;
    write_file(&card_path, json.as_bytes())?;
    if let Some(metrics) = &args.metrics {
        write_file(metrics, json.as_bytes())?;
    }
    writeln!(
        out,
        "wrote {} ({}, {} bytes) and {}",
        args.out.display(),
        card.element_type,
        blob.as_bytes().len(),
        card_path.display()
    )?;
    Ok(())
}

impl SetupArgs {
    /// `--window`.
    pub(crate) fn window(&self) -> usize {
        self.window as usize
    }

    /// `--hop`, defaulting to the window.
    fn hop(&self) -> usize {
        self.hop.map_or(self.window(), |hop| hop as usize)
    }

    /// The trainer's config for `head`: these layers and this schedule,
    /// the trainer's defaults for what was not given.
    pub(crate) fn train_config(&self, head: HeadConfig) -> TrainConfig {
        let TrainConfig {
            schedule: defaults,
            options: default_options,
            ..
        } = TrainConfig::default();
        TrainConfig {
            head,
            n_layers: self.layers as usize,
            options: ModelOptions {
                norm: match self.norm {
                    NormArg::None => Norm::None,
                    NormArg::Layer => Norm::Layer,
                    NormArg::Rms => Norm::Rms,
                },
                conv_taps: self.conv_taps as usize,
                mlp_hidden: self
                    .mlp_hidden
                    .map_or(default_options.mlp_hidden, |h| h as usize),
                centre_shift: self
                    .centre_shift
                    .map_or(default_options.centre_shift, |n| n as usize),
                // Turning centring off turns its gain off with it, unless
                // a gain is given (which the trainer then refuses by name).
                centre_gain_log2: self.centre_gain_log2.map_or(
                    if self.centre_shift == Some(0) {
                        0
                    } else {
                        default_options.centre_gain_log2
                    },
                    |n| n as usize,
                ),
                pool_shift: self
                    .pool_shift
                    .map_or(default_options.pool_shift, |n| n as usize),
            },
            schedule: Schedule {
                epochs: self.epochs.map_or(defaults.epochs, |n| n as usize),
                batch_size: self.batch_size.map_or(defaults.batch_size, |n| n as usize),
                learning_rate: self.learning_rate.unwrap_or(defaults.learning_rate),
                weight_decay: defaults.weight_decay,
                seed: self.seed,
            },
        }
    }
}

/// The head config: the TOML's, with head-shape keys it leaves out taken
/// from the AETHER default; or the default itself.
pub(crate) fn head_config(path: Option<&Path>) -> Result<HeadConfig, CliError> {
    let default = HeadConfig::default_aether();
    let Some(path) = path else {
        return Ok(default);
    };
    let shape = HeadShape {
        q_heads: default.q_heads,
        kv_heads: default.kv_heads,
        head_dim: default.head_dim,
    };
    Ok(toml_config::from_toml_file_with(path, Some(shape))?)
}

/// The split to train on, and a description of where it came from.
pub(crate) fn load(args: &SetupArgs) -> Result<(Split, String), CliError> {
    let window = args.window();
    let hop = args.hop();
    if args.data == "synthetic" {
        // One window per recording: a synthetic recording's label holds for
        // all of it, and its event can start anywhere up to the middle
        // (docs/training-data.md), so a window is the whole recording.
        let config = synthetic::SynthConfig {
            input_dim: args.input_dim as usize,
            frames: window.max(synthetic::MIN_FRAMES),
            per_class: args.per_class as usize,
            seed: args.seed,
        };
        let (difficulty, variant) = match args.variant {
            Variant::Default => (synthetic::Difficulty::default(), ""),
            Variant::Hard => (synthetic::Difficulty::hard(), ", hard variant"),
        };
        let recordings = synthetic::recordings_with(&config, &difficulty)?;
        let source = format!(
            "synthetic (D {}, {} recordings per class of {} frames, seed {}{variant})",
            config.input_dim, config.per_class, config.frames, config.seed
        );
        let split = match &args.test {
            Some(test) => split_files(
                &recordings,
                &csv::read_labelled(test)?,
                window,
                config.frames,
            )?,
            None => recordings.split(window, config.frames, args.test_fraction, args.seed)?,
        };
        return Ok((split, source));
    }
    let train: Recordings = csv::read_labelled(&args.data)?;
    match &args.test {
        Some(test) => Ok((
            split_files(&train, &csv::read_labelled(test)?, window, hop)?,
            format!("{} (held out: {})", args.data, test.display()),
        )),
        None => Ok((
            train.split(window, hop, args.test_fraction, args.seed)?,
            format!(
                "{} ({:.0} % of recordings held out, seed {})",
                args.data,
                args.test_fraction * 100.0,
                args.seed
            ),
        )),
    }
}

/// Runs `work` under a progress bar over its optimizer steps, printing
/// one table row per epoch when `epochs` is set.
pub(crate) fn with_bar<T>(
    what: &str,
    out: &mut dyn Write,
    epochs: bool,
    work: impl FnOnce(&mut dyn FnMut(Progress)) -> Result<T, aether_train::TrainError>,
) -> Result<T, CliError> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} steps {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_owned());
    let mut write_error = None;
    let result = work(&mut |progress| match progress {
        Progress::Batch {
            epoch,
            epochs: total,
            batch,
            batches,
            loss,
        } => {
            let steps = (total * batches) as u64;
            if bar.length() != Some(steps) {
                bar.set_length(steps);
                bar.set_position(0);
            }
            bar.set_position((epoch * batches + batch + 1) as u64);
            bar.set_message(format!("loss {loss:.4}"));
        }
        Progress::Epoch(report) if epochs => {
            let (accuracy, f1) = report
                .held_out
                .as_ref()
                .map_or((f64::NAN, f64::NAN), |m| (m.accuracy, m.macro_f1));
            let row = format!(
                "{:>5}  {:>10.4}  {:>17}  {:>8.3}",
                report.epoch + 1,
                report.train_loss,
                percent(accuracy),
                f1
            );
            if let Err(e) = bar.suspend(|| writeln!(out, "{row}")) {
                write_error.get_or_insert(e);
            }
        }
        Progress::Epoch(_) => {}
    });
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e.into());
    }
    Ok(result?)
}

/// The held-out comparison table.
fn summary(
    out: &mut dyn Write,
    trained: &Trained,
    baselines: &[BaselineReport],
    data: &Split,
) -> Result<(), CliError> {
    writeln!(
        out,
        "held-out ({} windows)        accuracy  macro-F1  parameters",
        data.test.len()
    )?;
    let row = |out: &mut dyn Write, name: &str, metrics: Option<&Metrics>, parameters: usize| {
        let (accuracy, f1) = metrics.map_or((f64::NAN, f64::NAN), |m| (m.accuracy, m.macro_f1));
        writeln!(
            out,
            "  {name:<26} {:>8}  {f1:>8.3}  {parameters:>10}",
            percent(accuracy)
        )
    };
    for baseline in baselines {
        let name = match baseline.name.as_str() {
            "majority" => "majority guess",
            "linear" => "linear on mean + std",
            "causal-cnn" => "causal 1D-CNN",
            other => other,
        };
        row(out, name, baseline.held_out.as_ref(), baseline.parameters)?;
    }
    row(
        out,
        "this model",
        trained.held_out.as_ref(),
        trained.weights.values().len(),
    )?;
    Ok(())
}

/// `97.5 %`, or `-` without held-out data.
pub(crate) fn percent(fraction: f64) -> String {
    if fraction.is_finite() {
        format!("{:.1} %", fraction * 100.0)
    } else {
        "-".to_owned()
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes).map_err(|source| CliError::Write {
        path: path.to_path_buf(),
        source,
    })
}
