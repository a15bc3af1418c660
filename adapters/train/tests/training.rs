//! Training end to end on a tiny made-up split: determinism for a seed,
//! progress events, the non-finite-loss stop, fine-tuning and the
//! baselines' reports. Tiny shapes, so each test takes well under a second.

use aether_dataset::{Split, Windows};
use aether_domain::HeadConfig;
use aether_train::{Progress, Schedule, TrainConfig, TrainError, baselines, fine_tune, train};

const D: usize = 3;
const N: usize = 12;

/// Two classes a model can tell apart: class 1 windows oscillate, class 0
/// windows are flat; every window has its own level.
fn windows(count: usize, salt: usize) -> Windows {
    let mut frames = Vec::new();
    let mut labels = Vec::new();
    for w in 0..count {
        let label = w % 2;
        let level = 0.5 + 0.1 * ((w + salt) % 5) as f32;
        for t in 0..N {
            for f in 0..D {
                let wave = if label == 1 {
                    ((t * 2 + f) as f32).sin()
                } else {
                    0.0
                };
                frames.push(level + wave + 0.05 * ((w * 7 + t * 3 + f) as f32).cos());
            }
        }
        labels.push(label);
    }
    Windows {
        input_dim: D,
        window: N,
        frames,
        labels,
    }
}

fn split() -> Split {
    Split {
        classes: vec!["flat".into(), "wave".into()],
        train: windows(16, 0),
        test: windows(6, 3),
    }
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        head: HeadConfig {
            q_heads: 2,
            kv_heads: 1,
            head_dim: 4,
            window: 2,
            block_size: 2,
            ..HeadConfig::default_aether()
        },
        n_layers: 2,
        options: Default::default(),
        schedule: Schedule {
            epochs,
            batch_size: 5,
            learning_rate: 1e-2,
            weight_decay: 1e-4,
            seed: 7,
        },
    }
}

#[test]
fn same_seed_gives_identical_weight_bits() {
    let data = split();
    let a = train(&config(3), &data, &mut |_| {}).unwrap();
    let b = train(&config(3), &data, &mut |_| {}).unwrap();
    let bits = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(a.weights.values()), bits(b.weights.values()));
    assert_eq!(a.history, b.history);
    let mut other = config(3);
    other.schedule.seed = 8;
    let c = train(&other, &data, &mut |_| {}).unwrap();
    assert_ne!(bits(a.weights.values()), bits(c.weights.values()));
}

#[test]
fn progress_reports_every_batch_and_epoch() {
    let mut batches = 0;
    let mut epochs = Vec::new();
    let trained = train(&config(2), &split(), &mut |p| match p {
        Progress::Batch {
            batches: total,
            loss,
            ..
        } => {
            assert_eq!(total, 4, "16 windows in batches of 5");
            assert!(loss.is_finite());
            batches += 1;
        }
        Progress::Epoch(report) => epochs.push(report),
    })
    .unwrap();
    assert_eq!(batches, 8);
    assert_eq!(epochs.len(), 2);
    assert_eq!(epochs, trained.history);
    let held_out = trained.held_out.unwrap();
    assert_eq!(held_out.samples, 6);
    assert_eq!(Some(&held_out), epochs[1].held_out.as_ref());
}

#[test]
fn overflowing_scores_stop_with_non_finite_loss() {
    let mut data = split();
    // Finite frames around 1e30: q·k overflows f32 to infinity, and the
    // softmax turns inf - inf into NaN.
    data.train.frames.iter_mut().for_each(|v| *v *= 1e30);
    let err = train(&config(1), &data, &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, TrainError::NonFiniteLoss { epoch: 0, batch: 0 }),
        "{err}"
    );
    // The fields count from 0, the message from 1 (as the CLI's table).
    assert!(err.to_string().contains("epoch 1, batch 1"), "{err}");
}

#[test]
fn fine_tuning_starts_from_the_given_weights() {
    let data = split();
    let first = train(&config(1), &data, &mut |_| {}).unwrap();
    let tuned = fine_tune(&config(1), &first.weights, &data, &mut |_| {}).unwrap();
    assert_eq!(tuned.weights.shape(), first.weights.shape());
    assert_ne!(tuned.weights, first.weights);
    let mut deeper = config(1);
    deeper.n_layers = 3;
    let err = fine_tune(&deeper, &first.weights, &data, &mut |_| {}).unwrap_err();
    assert!(matches!(err, TrainError::Weights(_)), "{err}");
}

#[test]
fn invalid_settings_are_named() {
    let mut c = config(1);
    c.schedule.batch_size = 0;
    let err = train(&c, &split(), &mut |_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::Setting {
                name: "batch_size",
                ..
            }
        ),
        "{err}"
    );
    let mut data = split();
    data.train.labels[0] = 5;
    let err = train(&config(1), &data, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("label 5"), "{err}");
}

#[test]
fn baselines_report_parameters_and_metrics() {
    let reports = baselines::all(&config(2).schedule, &split(), &mut |_| {}).unwrap();
    let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["majority", "linear", "causal-cnn"]);
    assert_eq!(reports[0].parameters, 0);
    assert_eq!(reports[1].parameters, 2 * D * 2 + 2);
    for r in &reports {
        assert_eq!(r.held_out.as_ref().unwrap().samples, 6);
    }
    // Trained longer, the linear probe separates flat from oscillating
    // windows by their standard deviation.
    let mut schedule = config(1).schedule;
    schedule.epochs = 30;
    let linear = baselines::linear(&schedule, &split(), &mut |_| {}).unwrap();
    assert_eq!(linear.held_out.unwrap().accuracy, 1.0);
}
