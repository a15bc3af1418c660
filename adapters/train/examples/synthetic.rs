//! Trains the default AETHER model on the synthetic set and runs the
//! baselines on the same split: the measurement behind the defaults and
//! the numbers in `docs/training.md`.
//!
//! `cargo run --release -p aether-train --example synthetic [-- KEY=VALUE ...]`
//! with keys `epochs`, `batch`, `lr`, `wd`, `seed`, `per_class`,
//! `backend` (sparse|dense), `model` (0|1), `baselines` (0|1).

use std::time::Instant;

use aether_dataset::synthetic::{self, SynthConfig};
use aether_domain::BackendKind;
use aether_train::{Progress, TrainConfig, baselines, train};

/// Windows of 256 frames, hop 256 (one per 256-frame sequence), a fifth
/// of the sequences held out, as `aether train` does by default.
const WINDOW: usize = 256;
const TEST_FRACTION: f64 = 0.2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = TrainConfig::default();
    let mut per_class = 120;
    let mut run_baselines = true;
    let mut run_model = true;
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
            "baselines" => run_baselines = value == "1",
            "model" => run_model = value == "1",
            "backend" => {
                config.head.backend = match value {
                    "dense" => BackendKind::Dense,
                    _ => BackendKind::Sparse,
                }
            }
            _ => return Err(format!("unknown key {key}").into()),
        }
    }
    let start = Instant::now();
    let recordings = synthetic::recordings(&SynthConfig {
        input_dim: 16,
        frames: WINDOW,
        per_class,
        seed: config.schedule.seed,
    })?;
    let split = recordings.split(WINDOW, WINDOW, TEST_FRACTION, config.schedule.seed)?;
    println!(
        "data: {} classes, {} train / {} held-out windows of {WINDOW} frames ({:.1} s)",
        split.classes.len(),
        split.train.len(),
        split.test.len(),
        start.elapsed().as_secs_f64()
    );
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
