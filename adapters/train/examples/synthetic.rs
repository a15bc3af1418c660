//! Trains the default AETHER model on the synthetic set and runs the
//! baselines on the same split: the measurement behind the defaults and
//! the numbers in `docs/training.md`.
//!
//! `cargo run --release -p aether-train --example synthetic [-- KEY=VALUE ...]`
//! with keys `epochs`, `batch`, `lr`, `wd`, `seed`, `per_class`, the
//! shape (`layers`, `q_heads`, `head_dim`, and the sparse `window`),
//! `data` (default|hard), `backend` (sparse|dense), `model` (0|1),
//! `baselines` (0|1), and the version-2 options of `docs/model.md`:
//! `norm` (none|layer|rms), `conv` (taps K: 0 off, else ≥ 2), `mlp`
//! (hidden width H: 0 off), `centre` (input centring's shift: 0 off),
//! `gain` (the centred input's gain exponent) and `pool` (the pooled
//! readout's shift: 0 reads the last frame).
//!
//! `ablation=1` instead trains, on the one data set and seed, version 1,
//! +norm, +conv, +mlp, +norm+mlp and all three together (same schedule),
//! and prints one table row each; `norm`, `conv` and `mlp` then pick the
//! settings an option has when it is on (default layer, 4, 32). One
//! configuration takes about as long as one plain run of that many
//! epochs (~2.5 min for 20 epochs on an idle 2-core machine).

use std::time::Instant;

use aether_dataset::Split;
use aether_dataset::synthetic::{self, Difficulty, SynthConfig};
use aether_domain::BackendKind;
use aether_train::{ModelOptions, Norm, Progress, TrainConfig, baselines, train};

/// Windows of 256 frames, hop 256 (one per 256-frame sequence), a fifth
/// of the sequences held out, as `aether train` does by default.
const WINDOW: usize = 256;
const TEST_FRACTION: f64 = 0.2;

fn parse_norm(value: &str) -> Result<Norm, String> {
    match value {
        "none" => Ok(Norm::None),
        "layer" => Ok(Norm::Layer),
        "rms" => Ok(Norm::Rms),
        _ => Err(format!("norm is none, layer or rms, not {value}")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = TrainConfig::default();
    let mut per_class = 120;
    let mut run_baselines = true;
    let mut run_model = true;
    let mut ablation = false;
    let mut hard = false;
    // What an option is when on, for the ablation; a plain run uses
    // `config.options` as given (the trainer's default, an MLP of 32,
    // unless a key changes it; `mlp=0` with no other option is version 1).
    let mut on = ModelOptions {
        norm: Norm::Layer,
        conv_taps: 4,
        mlp_hidden: 32,
        ..ModelOptions::default()
    };
    for arg in std::env::args().skip(1) {
        let (key, value) = arg.split_once('=').ok_or("arguments are KEY=VALUE")?;
        let s = &mut config.schedule;
        match key {
            "epochs" => s.epochs = value.parse()?,
            "batch" => s.batch_size = value.parse()?,
            "lr" => s.learning_rate = value.parse()?,
            "wd" => s.weight_decay = value.parse()?,
            "seed" => s.seed = value.parse()?,
            "per_class" => per_class = value.parse()?,
            "layers" => config.n_layers = value.parse()?,
            "q_heads" => config.head.q_heads = value.parse()?,
            "head_dim" => config.head.head_dim = value.parse()?,
            "window" => config.head.window = value.parse()?,
            "baselines" => run_baselines = value == "1",
            "model" => run_model = value == "1",
            "ablation" => ablation = value == "1",
            "data" => hard = value == "hard",
            "backend" => {
                config.head.backend = match value {
                    "dense" => BackendKind::Dense,
                    _ => BackendKind::Sparse,
                }
            }
            "norm" => {
                config.options.norm = parse_norm(value)?;
                if config.options.norm != Norm::None {
                    on.norm = config.options.norm;
                }
            }
            "conv" => {
                config.options.conv_taps = value.parse()?;
                if config.options.conv_taps != 0 {
                    on.conv_taps = config.options.conv_taps;
                }
            }
            "mlp" => {
                config.options.mlp_hidden = value.parse()?;
                if config.options.mlp_hidden != 0 {
                    on.mlp_hidden = config.options.mlp_hidden;
                }
            }
            "centre" => config.options.centre_shift = value.parse()?,
            "gain" => config.options.centre_gain_log2 = value.parse()?,
            "pool" => config.options.pool_shift = value.parse()?,
            _ => return Err(format!("unknown key {key}").into()),
        }
    }
    config.options.validate()?;
    on.validate()?;
    let start = Instant::now();
    let synth = SynthConfig {
        input_dim: 16,
        frames: WINDOW,
        per_class,
        seed: config.schedule.seed,
    };
    let difficulty = if hard {
        Difficulty::hard()
    } else {
        Difficulty::default()
    };
    let recordings = synthetic::recordings_with(&synth, &difficulty)?;
    let split = recordings.split(WINDOW, WINDOW, TEST_FRACTION, config.schedule.seed)?;
    println!(
        "data ({}): {} classes, {} train / {} held-out windows of {WINDOW} frames ({:.1} s)",
        if hard { "hard" } else { "default" },
        split.classes.len(),
        split.train.len(),
        split.test.len(),
        start.elapsed().as_secs_f64()
    );
    if ablation {
        return run_ablation(&config, on, &split);
    }
    println!("config: {config:?}");
    let mut report = |p: Progress| {
        if let Progress::Epoch(e) = p {
            let (acc, f1) = e
                .held_out
                .as_ref()
                .map_or((f64::NAN, f64::NAN), |m| (m.accuracy, m.macro_f1));
            println!(
                "epoch {:>2}/{}: train loss {:.4}, held-out accuracy {:.4}, macro-F1 {:.4} ({:.1} s)",
                e.epoch + 1,
                e.epochs,
                e.train_loss,
                acc,
                f1,
                start.elapsed().as_secs_f64()
            );
        }
    };
    if run_model {
        let trained = train(&config, &split, &mut report)?;
        println!(
            "model: {} weights, trained in {:.1} s wall (data included)",
            trained.weights.values().len(),
            start.elapsed().as_secs_f64()
        );
        if let Some(m) = &trained.held_out {
            println!(
                "confusion (rows truth, columns predicted): {:?}",
                m.confusion.counts
            );
        }
    }
    if run_baselines {
        let start = Instant::now();
        let mut baseline_progress = |p: Progress| {
            if let Progress::Epoch(e) = p {
                println!(
                    "  baseline epoch {}: train loss {:.4}",
                    e.epoch + 1,
                    e.train_loss
                );
            }
        };
        for b in baselines::all(&config.schedule, &split, &mut baseline_progress)? {
            let (acc, f1) = b
                .held_out
                .as_ref()
                .map_or((f64::NAN, f64::NAN), |m| (m.accuracy, m.macro_f1));
            println!(
                "baseline {:<10} {:>6} params: held-out accuracy {acc:.4}, macro-F1 {f1:.4}",
                b.name, b.parameters
            );
        }
        println!("baselines: {:.1} s", start.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Version 1 and five combinations of the options (each at its `on`
/// setting), same data, schedule and seed; one markdown row per model.
fn run_ablation(
    config: &TrainConfig,
    on: ModelOptions,
    split: &Split,
) -> Result<(), Box<dyn std::error::Error>> {
    let off = ModelOptions::default();
    let rows = [
        ("version 1", off.clone()),
        (
            "+norm",
            ModelOptions {
                norm: on.norm,
                ..off.clone()
            },
        ),
        (
            "+conv",
            ModelOptions {
                conv_taps: on.conv_taps,
                ..off.clone()
            },
        ),
        (
            "+mlp",
            ModelOptions {
                mlp_hidden: on.mlp_hidden,
                ..off.clone()
            },
        ),
        (
            "+norm+mlp",
            ModelOptions {
                norm: on.norm,
                mlp_hidden: on.mlp_hidden,
                ..off
            },
        ),
        ("all", on.clone()),
    ];
    println!(
        "ablation: {:?} backend, {} epochs, seed {}; on = {:?}",
        config.head.backend, config.schedule.epochs, config.schedule.seed, on
    );
    println!("| model | norm | conv | mlp | held-out accuracy | macro-F1 | params | seconds |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, options) in rows {
        let run = TrainConfig {
            options: options.clone(),
            ..config.clone()
        };
        let start = Instant::now();
        let trained = train(&run, split, &mut |_| {})?;
        let seconds = start.elapsed().as_secs_f64();
        let (acc, f1) = trained
            .held_out
            .as_ref()
            .map_or((f64::NAN, f64::NAN), |m| (m.accuracy, m.macro_f1));
        println!(
            "| {name} | {:?} | {} | {} | {acc:.4} | {f1:.4} | {} | {seconds:.1} |",
            options.norm,
            options.conv_taps,
            options.mlp_hidden,
            trained.weights.values().len()
        );
    }
    Ok(())
}
