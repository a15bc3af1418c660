//! Golden logits for the C harness (`tests/c/harness.c`).
//!
//! The harness runs the firmware library from C (host, emulated RISC-V)
//! and must reproduce what `aether-model` computes on the host for the
//! same blob and frames. This test is the Rust side of that contract: it
//! recomputes every logit the harness checks and compares it with the
//! checked-in `golden/c_harness_logits.csv`, so neither the file nor the
//! model can change without a failing test. Update deliberately with
//! `BLESS=1 cargo test -p aether-tests --test c_harness_golden`.
//!
//! The inputs are the CLI's bundled assets (the default random-init model
//! and 192 synthetic CSI-like frames), so the harness runs the same bytes a
//! user gets from `aether demo`. The schedule mirrors `temporal_task.c`: a
//! ring of `STREAM_WINDOW` frames, a classification every `PERIOD` pushed
//! frames, the model run over the ring oldest first; then one
//! classification with a full 256-frame ring (frame `i` is asset frame
//! `i mod 192`), the device budget's measuring point.

use std::path::{Path, PathBuf};

use aether_domain::HeadConfig;
use aether_engine::Backend;
use aether_model::TemporalModel;
use aether_rvne::RvneView;
use aether_tests::max_abs_diff;

/// Frames the firmware ring holds in the streaming run (`window_len`).
const STREAM_WINDOW: usize = 64;
/// Frames pushed between classifications (the Kconfig classify period).
const PERIOD: usize = 16;
/// Ring size of the full-ring run: the device budget's 256 frames.
const FULL_WINDOW: usize = 256;
/// Values per frame in the default model.
const INPUT_DIM: usize = 16;

/// Host SIMD and the device's portable path differ only in summation
/// order (a few ulp of values near 1); the harness uses the same bound.
const TOLERANCE: f32 = 1e-5;

/// One classification the harness performs.
#[derive(Debug, PartialEq)]
struct Row {
    run: String,
    window_len: usize,
    pushed: usize,
    logits: Vec<f32>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits below the workspace root")
        .to_path_buf()
}

fn golden_path() -> PathBuf {
    root().join("tests/golden/c_harness_logits.csv")
}

fn read_frames() -> Vec<f32> {
    let text = std::fs::read_to_string(root().join("adapters/cli/assets/frames.csv"))
        .expect("bundled frames");
    let frames: Vec<f32> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .flat_map(|line| line.split(',').map(|v| v.trim().parse::<f32>().unwrap()))
        .collect();
    assert_eq!(frames.len() % INPUT_DIM, 0);
    frames
}

/// The logits the harness must see, in the order it computes them.
fn expected_rows() -> Vec<Row> {
    let blob = std::fs::read(root().join("adapters/cli/assets/default.rvne")).expect("blob");
    let view = RvneView::parse(&blob).expect("bundled blob parses");
    let backend = Backend::from_config(HeadConfig::default_aether()).expect("default head");
    let model =
        TemporalModel::new(view.to_weights().expect("decodes"), backend).expect("default model");
    let frames = read_frames();
    let n_frames = frames.len() / INPUT_DIM;
    let mut rows = Vec::new();
    for pushed in (PERIOD..=n_frames).step_by(PERIOD) {
        let first = pushed.saturating_sub(STREAM_WINDOW);
        let ring = &frames[first * INPUT_DIM..pushed * INPUT_DIM];
        rows.push(Row {
            run: "stream".into(),
            window_len: STREAM_WINDOW,
            pushed,
            logits: model.classify(ring).expect("finite frames"),
        });
    }
    let full: Vec<f32> = (0..FULL_WINDOW)
        .flat_map(|i| {
            let frame = i % n_frames;
            frames[frame * INPUT_DIM..(frame + 1) * INPUT_DIM]
                .iter()
                .copied()
        })
        .collect();
    rows.push(Row {
        run: "full".into(),
        window_len: FULL_WINDOW,
        pushed: FULL_WINDOW,
        logits: model.classify(&full).expect("finite frames"),
    });
    rows
}

fn parse(text: &str) -> Vec<Row> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            Row {
                run: fields[0].to_string(),
                window_len: fields[1].parse().unwrap(),
                pushed: fields[2].parse().unwrap(),
                logits: fields[3..].iter().map(|v| v.parse().unwrap()).collect(),
            }
        })
        .collect()
}

fn render(rows: &[Row]) -> String {
    let mut text = String::from(
        "# Logits the C harness (tests/c/harness.c) must reproduce within 1e-5.\n\
         # Model adapters/cli/assets/default.rvne (sparse, HeadConfig::default_aether),\n\
         # frames adapters/cli/assets/frames.csv; the ring holds the last window_len of\n\
         # the `pushed` frames, oldest first (run `full`: frame i is asset frame i mod the asset frame count).\n\
         # Written by `BLESS=1 cargo test -p aether-tests --test c_harness_golden`.\n\
         # run,window_len,pushed,logits...\n",
    );
    for row in rows {
        let logits: Vec<String> = row.logits.iter().map(|v| format!("{v:?}")).collect();
        text += &format!(
            "{},{},{},{}\n",
            row.run,
            row.window_len,
            row.pushed,
            logits.join(",")
        );
    }
    text
}

#[test]
fn c_harness_golden_logits_match_the_model() {
    let expected = expected_rows();
    if std::env::var_os("BLESS").is_some_and(|v| v == "1") {
        std::fs::write(golden_path(), render(&expected)).unwrap();
    }
    let text = std::fs::read_to_string(golden_path()).expect("tests/golden/c_harness_logits.csv");
    let golden = parse(&text);
    assert_eq!(golden.len(), expected.len(), "number of classifications");
    for (golden, expected) in golden.iter().zip(&expected) {
        assert_eq!(
            (&golden.run, golden.window_len, golden.pushed),
            (&expected.run, expected.window_len, expected.pushed),
            "schedule"
        );
        let err = max_abs_diff(&golden.logits, &expected.logits);
        assert!(
            err <= TOLERANCE,
            "{} after {} frames: golden {:?}, model {:?} (off by {err})",
            golden.run,
            golden.pushed,
            golden.logits,
            expected.logits
        );
    }
    // The streaming run must reach past the attention window (32) and the
    // ring must wrap, or the harness would not exercise landmarks nor the
    // ring's oldest-first order.
    assert!(expected.iter().any(|row| row.pushed > STREAM_WINDOW));
}
