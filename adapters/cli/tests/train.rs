//! End-to-end tests of `aether train`, `export` and `import` through the
//! real binary, at sizes that take seconds: the model card beside the
//! blob, class names in `classify`, determinism for a seed, the baselines,
//! the safetensors round trip and the errors a user meets first.

mod common;

use common::*;
use serde_json::Value;

/// A tiny training run: two recordings per class, 16-frame windows, one
/// layer, two epochs. Returns the model card.
fn train(scratch: &Scratch, name: &str, extra: &[&str]) -> Value {
    let out = scratch.path(&format!("{name}.rvne"));
    let mut args = vec![
        "train",
        "--data",
        "synthetic",
        "--per-class",
        "3",
        "--window",
        "16",
        "--epochs",
        "2",
        "--layers",
        "1",
        "--batch-size",
        "4",
        "--test-fraction",
        "0.4",
        "--out",
        s(&out),
    ];
    args.extend_from_slice(extra);
    let printed = ok(&args);
    assert!(printed.contains("epoch  train loss"), "{printed}");
    assert!(printed.contains("causal 1D-CNN"), "{printed}");
    let card = std::fs::read_to_string(scratch.path(&format!("{name}.json"))).unwrap();
    serde_json::from_str(&card).unwrap()
}

#[test]
fn train_writes_a_model_and_its_card_and_classify_names_the_classes() {
    let scratch = Scratch::new("train-card");
    let metrics = scratch.path("metrics.json");
    let card = train(&scratch, "m", &["--metrics", s(&metrics)]);
    let classes: Vec<&str> = card["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(classes, ["still", "walking", "fall", "sit-down", "wave"]);
    assert_eq!(card["window"], 16);
    assert_eq!(card["history"].as_array().unwrap().len(), 2);
    let baselines: Vec<&str> = card["baselines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(baselines, ["majority", "linear", "causal-cnn"]);
    // Held out by recording: 40 % of 15 recordings, one window each.
    assert_eq!(card["test_windows"], 6);
    assert_eq!(card["train_windows"], 9);
    let confusion = &card["held_out"]["confusion"]["counts"];
    let total: u64 = confusion
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(total, 6);
    assert_eq!(
        std::fs::read_to_string(&metrics).unwrap(),
        std::fs::read_to_string(scratch.path("m.json")).unwrap()
    );

    // The blob is a valid model of the trained shape: 5 classes, 1 layer.
    let inspect = ok(&["inspect", s(&scratch.path("m.rvne"))]);
    assert!(inspect.contains("classes 5"), "{inspect}");

    // classify takes the class names from the card.
    let frames = scratch.path("frames.csv");
    std::fs::write(&frames, frames_csv(20)).unwrap();
    let model = scratch.path("m.rvne");
    let classify = [
        "classify",
        "--model",
        s(&model),
        "--frames",
        s(&frames),
        "--segment",
        "8",
        "--format",
        "json",
    ];
    let printed = ok(&classify);
    let decided: Vec<String> = printed
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            let argmax = record["argmax"].as_u64().unwrap() as usize;
            let name = record["class"].as_str().expect("a class name").to_owned();
            assert_eq!(name, classes[argmax], "{line}");
            name
        })
        .collect();
    assert_eq!(decided.len(), 3, "{printed}");

    // A card naming another number of classes is refused, not ignored.
    let broken = card_with_classes(&card, &["a", "b"]);
    std::fs::write(scratch.path("m.json"), broken).unwrap();
    let err = fails(&classify, 1);
    assert!(err.contains("m.json") && err.contains("2 classes"), "{err}");
}

fn card_with_classes(card: &Value, classes: &[&str]) -> String {
    let mut card = card.clone();
    card["classes"] = classes.iter().map(|&c| Value::from(c)).collect();
    serde_json::to_string(&card).unwrap()
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let scratch = Scratch::new("train-determinism");
    train(&scratch, "a", &["--seed", "7"]);
    train(&scratch, "b", &["--seed", "7"]);
    train(&scratch, "c", &["--seed", "8"]);
    let read = |name: &str| std::fs::read(scratch.path(name)).unwrap();
    assert_eq!(read("a.rvne"), read("b.rvne"));
    assert_ne!(read("a.rvne"), read("c.rvne"));
}

#[test]
fn export_import_round_trips_the_blob() {
    let scratch = Scratch::new("export-import");
    let model = default_model(&scratch);
    let tensors = scratch.path("m.safetensors");
    let printed = ok(&["export", "--model", s(&model), "--out", s(&tensors)]);
    assert!(printed.contains("9 tensors"), "{printed}");
    let back = scratch.path("back.rvne");
    ok(&["import", "--weights", s(&tensors), "--out", s(&back)]);
    assert_eq!(
        std::fs::read(&model).unwrap(),
        std::fs::read(&back).unwrap()
    );

    // f16 export, then import to f16: the same bytes as an f16 init.
    let half = scratch.path("half.safetensors");
    ok(&["export", "--model", s(&model), "--out", s(&half), "--f16"]);
    let half_back = scratch.path("half.rvne");
    ok(&[
        "import",
        "--weights",
        s(&half),
        "--out",
        s(&half_back),
        "--f16",
    ]);
    let f16_init = scratch.path("f16.rvne");
    ok(&["init", "--f16", "--out", s(&f16_init)]);
    assert_eq!(
        std::fs::read(&f16_init).unwrap(),
        std::fs::read(&half_back).unwrap()
    );

    // Existing outputs are kept without --force; a non-safetensors file
    // is an error naming it.
    let err = fails(&["import", "--weights", s(&tensors), "--out", s(&back)], 1);
    assert!(err.contains("--force"), "{err}");
    let other = scratch.path("x.rvne");
    let err = fails(&["import", "--weights", s(&model), "--out", s(&other)], 1);
    assert!(err.contains("safetensors"), "{err}");
}

#[test]
fn a_bad_training_csv_names_file_line_and_column() {
    let scratch = Scratch::new("train-bad-csv");
    let data = scratch.path("data.csv");
    std::fs::write(
        &data,
        "label,sequence,f0,f1\nstill,a,0.5,0.25\nstill,a,0.5,oops\n",
    )
    .unwrap();
    let err = fails(
        &[
            "train",
            "--data",
            s(&data),
            "--window",
            "2",
            "--out",
            s(&scratch.path("m.rvne")),
        ],
        1,
    );
    assert!(err.contains("data.csv"), "{err}");
    assert!(
        err.contains('3') && err.contains('4'),
        "line 3, column 4: {err}"
    );
    assert!(!scratch.path("m.rvne").exists());
}

/// Version-2 options and the hard synthetic variant from the command line:
/// the blob is version 2 with the options in its header, the card records
/// them, and `classify` runs it.
#[test]
fn a_version_2_model_trains_writes_and_classifies() {
    let scratch = Scratch::new("train-v2");
    let card = train(
        &scratch,
        "v2",
        &[
            "--norm",
            "rms",
            "--conv-taps",
            "3",
            "--mlp-hidden",
            "8",
            "--centre-shift",
            "5",
            "--centre-gain-log2",
            "1",
            "--pool-shift",
            "4",
            "--variant",
            "hard",
        ],
    );
    assert_eq!(card["options"]["norm"], "rms");
    assert_eq!(card["options"]["conv_taps"], 3);
    assert_eq!(card["options"]["mlp_hidden"], 8);
    assert_eq!(card["options"]["centre_shift"], 5);
    assert_eq!(card["options"]["centre_gain_log2"], 1);
    assert_eq!(card["options"]["pool_shift"], 4);
    assert!(card["data"].as_str().unwrap().contains("hard variant"));
    let model = scratch.path("v2.rvne");
    let inspect = ok(&["inspect", s(&model)]);
    assert!(inspect.contains(".rvne version 2"), "{inspect}");
    assert!(
        inspect.contains(
            "options     model version 2: norm rms, conv_taps 3, mlp_hidden 8, centring 2^-5 \
             (gain 2^1), pooled readout 2^-4"
        ),
        "{inspect}"
    );
    assert!(inspect.contains("layer 0 Wconv"), "{inspect}");
    let frames = scratch.path("frames.csv");
    std::fs::write(&frames, frames_csv(20)).unwrap();
    let printed = ok(&[
        "classify",
        "--model",
        s(&model),
        "--frames",
        s(&frames),
        "--stream",
        "--format",
        "json",
    ]);
    assert_eq!(printed.lines().count(), 20, "{printed}");
    let err = fails(
        &[
            "train",
            "--data",
            "synthetic",
            "--conv-taps",
            "1",
            "--out",
            s(&scratch.path("x.rvne")),
        ],
        1,
    );
    assert!(err.contains("conv_taps"), "{err}");
}
