//! End-to-end tests of `aether gate` through the real binary, at a size
//! that takes well under a second: the four criteria in the table and in
//! the JSON report, an exit status and `error:` line that agree with the
//! report, and the refusals that come before any training.

mod common;

use common::*;
use serde_json::Value;

/// The criteria, in table and report order.
const CRITERIA: [(&str, &str); 4] = [
    ("training_loss", "training loss difference"),
    ("held_out_accuracy", "held-out accuracy difference"),
    ("neighbourhood", "neighbourhood agreement (mean rho)"),
    ("prefill_latency", "prefill time dense / sparse"),
];

/// The tiny gate: 3 recordings per class, 16-frame windows, one epoch,
/// a 64-frame timed prefill.
fn tiny(json: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "gate",
        "--data",
        "synthetic",
        "--per-class",
        "3",
        "--window",
        "16",
        "--epochs",
        "1",
        "--latency-window",
        "64",
        "--json",
        json,
    ];
    args.extend_from_slice(extra);
    aether(&args)
}

#[test]
fn a_tiny_gate_prints_and_reports_all_four_criteria() {
    let scratch = Scratch::new("gate-tiny");
    let json = scratch.path("gate.json");
    let output = tiny(s(&json), &[]);
    let printed = stdout(&output);
    assert!(printed.contains("sparse attention"), "{printed}");
    assert!(printed.contains("dense attention"), "{printed}");
    assert!(printed.contains("epoch  train loss"), "{printed}");
    assert!(
        printed.contains("neighbourhood: 15 windows (all: fewer than 51 held out), 14 nearest"),
        "{printed}"
    );

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["format"], "aether-gate-1");
    let criteria = report["criteria"].as_array().unwrap();
    assert_eq!(criteria.len(), 4);
    let mut failed = Vec::new();
    for ((name, label), criterion) in CRITERIA.iter().zip(criteria) {
        assert_eq!(criterion["name"], *name);
        let measured = criterion["measured"].as_f64().unwrap();
        let threshold = criterion["threshold"].as_f64().unwrap();
        let pass = criterion["pass"].as_bool().unwrap();
        let holds = match criterion["comparison"].as_str().unwrap() {
            "<=" => measured <= threshold,
            ">=" => measured >= threshold,
            other => panic!("comparison {other}"),
        };
        assert_eq!(pass, holds, "{criterion}");
        let row = printed
            .lines()
            .find(|line| line.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no row {label} in\n{printed}"));
        assert!(
            row.contains(if pass { "PASS" } else { "FAIL" }),
            "{row} / {criterion}"
        );
        if !pass {
            failed.push(*name);
        }
    }
    assert_eq!(
        criteria
            .iter()
            .map(|c| c["threshold"].as_f64().unwrap())
            .collect::<Vec<_>>(),
        [1.0, 1.0, 0.95, 5.0]
    );
    // 16-frame windows fit inside the default head's 32-frame local
    // window: sparse attention sees every frame, so the two models are the
    // same model and the first three criteria hold exactly.
    for criterion in &criteria[..3] {
        assert_eq!(criterion["pass"], true, "{criterion}");
    }
    assert_eq!(criteria[0]["measured"], 0.0);
    assert_eq!(criteria[2]["measured"], 1.0);
    assert_eq!(report["neighbourhood"]["windows"], 15);
    assert_eq!(report["neighbourhood"]["neighbours"], 14);
    assert_eq!(report["latency_window"], 64);
    assert!(report["sparse"]["prefill_seconds"].as_f64().unwrap() > 0.0);
    assert!(report["dense"]["prefill_seconds"].as_f64().unwrap() > 0.0);
    let recorded: Vec<&str> = report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| name.as_str().unwrap())
        .collect();
    assert_eq!(recorded, failed);
    assert_eq!(report["pass"], failed.is_empty());

    // The exit status and the error line say what the report says. (Only
    // the timing can fail here, and whether it does depends on the build
    // and the machine.)
    if failed.is_empty() {
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(
            printed.contains("gate PASS: 4 of 4 criteria pass"),
            "{printed}"
        );
    } else {
        let line = one_error(&output, 1, "gate");
        assert!(line.starts_with("error: gate failed: "), "{line}");
        for (name, label) in CRITERIA {
            assert_eq!(line.contains(label), failed.contains(&name), "{line}");
        }
        assert!(printed.contains("gate FAIL"), "{printed}");
    }
}

#[test]
fn an_existing_report_is_kept_without_force() {
    let scratch = Scratch::new("gate-exists");
    let json = scratch.path("gate.json");
    std::fs::write(&json, "keep me\n").unwrap();
    let line = one_error(&tiny(s(&json), &[]), 1, "gate over an existing report");
    assert!(line.contains("already exists; pass --force"), "{line}");
    assert_eq!(std::fs::read_to_string(&json).unwrap(), "keep me\n");
    // --force replaces it with a report (whatever the verdict).
    tiny(s(&json), &["--force"]);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["criteria"].as_array().unwrap().len(), 4);
}

#[test]
fn gate_takes_train_options_and_refuses_bad_ones_as_usage_errors() {
    let line = fails(&["gate", "--data", "synthetic", "--latency-window", "0"], 2);
    assert!(line.contains("--latency-window"), "{line}");
    let line = fails(&["gate", "--data", "synthetic", "--out", "x.rvne"], 2);
    assert!(line.contains("--out"), "{line}");
    let help = ok(&["gate", "--help"]);
    for option in [
        "--data", "--test", "--config", "--epochs", "--window", "--seed", "--json",
    ] {
        assert!(help.contains(option), "{option} not in\n{help}");
    }
}
