//! End-to-end tests of the `aether` binary: the real executable, run as a
//! user would, with its stdout, stderr and exit status checked.
//!
//! These pin the promises a user relies on: `init` is byte-reproducible,
//! `inspect` names the first failing format check, `classify` prints one
//! line per segment or frame with argmax consistent with the logits and
//! streaming equal to prefill, every error is one line on stderr with a
//! non-zero status, and `demo` runs and says what its trained model
//! classifies.

mod common;

use std::path::Path;

use common::*;

#[test]
fn init_is_byte_identical_and_inspect_reads_it() {
    let scratch = Scratch::new("init");
    let (a, b) = (scratch.path("a.rvne"), scratch.path("b.rvne"));
    let report = ok(&["init", "--out", s(&a)]);
    ok(&["init", "--out", s(&b)]);
    let (bytes_a, bytes_b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(bytes_a.len(), DEFAULT_BLOB_LEN);
    assert!(bytes_a == bytes_b, "two runs of init differ");
    for expected in ["41,244", "10,304", "0xC5110007DEADBEEF", "0x11A85B0D"] {
        assert!(report.contains(expected), "{expected} not in {report}");
    }
    let inspect = ok(&["inspect", s(&a)]);
    for expected in [
        "input_dim 16, q_heads 4, kv_heads 1, head_dim 32, layers 2, classes 4",
        "weights f32",
        "MQA",
        "parameters  10,304",
        "layer 1 Wo       [128][16]",
        "classifier Wc    [16][4]",
        "41,244 total = 24 header + 41,216 weights",
        "stored 0x11A85B0D, computed 0x11A85B0D: ok",
        "status      ok",
    ] {
        assert!(inspect.contains(expected), "{expected:?} not in\n{inspect}");
    }
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let scratch = Scratch::new("overwrite");
    let path = default_model(&scratch);
    let error = fails(&["init", "--out", s(&path)], 1);
    assert!(error.contains("already exists; pass --force"), "{error}");
    ok(&["init", "--out", s(&path), "--force", "--seed", "7"]);
    assert_eq!(std::fs::read(&path).unwrap().len(), DEFAULT_BLOB_LEN);
}

#[test]
fn init_with_shape_f16_and_seed() {
    let scratch = Scratch::new("shape");
    let (a, b) = (scratch.path("a.rvne"), scratch.path("b.rvne"));
    let args = |p: &Path| {
        ok(&[
            "init",
            "--out",
            s(p),
            "--shape",
            "8,2,2,16,1,3",
            "--f16",
            "--seed",
            "42",
        ])
    };
    args(&a);
    args(&b);
    let bytes = std::fs::read(&a).unwrap();
    // Wq, Wk, Wv, Wo: 8x32 each; Wc 8x3: 1,048 weights x 2 bytes + 28.
    assert_eq!(bytes.len(), 1_048 * 2 + 28);
    assert!(bytes == std::fs::read(&b).unwrap());
    let inspect = ok(&["inspect", s(&a)]);
    assert!(inspect.contains("weights f16"), "{inspect}");
    assert!(inspect.contains("MHA"), "{inspect}");
    assert!(inspect.contains("parameters  1,048"), "{inspect}");
}

#[test]
fn bad_shapes_are_usage_errors() {
    let scratch = Scratch::new("bad-shape");
    let out = scratch.path("m.rvne");
    for (shape, reason) in [
        ("16,4,1,32,2", "expected 6 comma-separated numbers"),
        ("16,4,x,32,2,4", "kv_heads `x` is not a whole number"),
        ("16,4,3,32,2,4", "must divide"),
        ("0,4,1,32,2,4", "`input_dim` is 0"),
        ("16,4,1,32,0,4", "`n_layers` is 0"),
        ("16,4,1,32,2,1", "at least 2 classes"),
        ("16,4,1,32,2,99999", "not a whole number from 0 to 65535"),
    ] {
        let error = fails(&["init", "--out", s(&out), "--shape", shape], 2);
        assert!(error.contains("--shape"), "{error}");
        assert!(error.contains(reason), "{shape}: {error}");
    }
    assert!(!out.exists());
}

#[test]
fn inspect_names_the_first_failing_check() {
    let scratch = Scratch::new("corrupt");
    let good = std::fs::read(default_model(&scratch)).unwrap();
    let cases: [(&str, Vec<u8>, &str); 6] = [
        (
            "flipped body byte",
            {
                let mut b = good.clone();
                b[1000] ^= 0x01;
                b
            },
            "check 6 of 8 (CRC) failed: CRC mismatch: stored 0x11A85B0D",
        ),
        (
            "truncated",
            good[..good.len() - 10].to_vec(),
            "check 5 of 8 (total length) failed",
        ),
        (
            "bad magic",
            {
                let mut b = good.clone();
                b[0..4].copy_from_slice(b"RVNE");
                b
            },
            "check 2 of 8 (magic) failed: bad magic",
        ),
        (
            "too short",
            good[..10].to_vec(),
            "check 1 of 8 (minimum length)",
        ),
        (
            "version 3",
            {
                let mut b = good.clone();
                b[4] = 3;
                b
            },
            "check 3 of 8 (version) failed: unsupported .rvne version 3",
        ),
        (
            "reserved flag bit",
            {
                let mut b = good.clone();
                b[6] = 0x80;
                b
            },
            "check 4 of 8 (reserved bits)",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = scratch.path("bad.rvne");
        std::fs::write(&path, bytes).unwrap();
        let output = aether(&["inspect", s(&path)]);
        assert!(output.stdout.is_empty(), "{name}: printed a report");
        let error = fails(&["inspect", s(&path)], 1);
        assert!(error.contains(expected), "{name}: {error}");
        assert!(
            error.contains("bad.rvne: not a valid .rvne blob"),
            "{error}"
        );
    }
    let missing = fails(&["inspect", s(&scratch.path("missing.rvne"))], 1);
    assert!(missing.contains("cannot read"), "{missing}");
}

#[test]
fn classify_prints_one_line_per_segment_with_consistent_argmax() {
    let scratch = Scratch::new("classify");
    let model = default_model(&scratch);
    let frames = scratch.path("frames.csv");
    std::fs::write(&frames, frames_csv(10)).unwrap();

    let whole = ok(&["classify", "--model", s(&model), "--frames", s(&frames)]);
    let lines = results(&whole);
    assert_eq!(lines.len(), 1, "{whole}");
    assert!(lines[0].starts_with("segment 0  frames 0-9  "), "{whole}");

    let segmented = ok(&[
        "classify",
        "--model",
        s(&model),
        "--frames",
        s(&frames),
        "--segment",
        "4",
    ]);
    let lines = results(&segmented);
    assert_eq!(lines.len(), 3, "{segmented}");
    for (line, range) in lines
        .iter()
        .zip(["frames 0-3 ", "frames 4-7 ", "frames 8-9 "])
    {
        assert!(line.contains(range), "{line}");
        let parsed = parse_line(line);
        assert_eq!(parsed.logits.len(), 4);
        let top = parsed.logits[parsed.argmax];
        assert!(parsed.logits.iter().all(|&l| l <= top), "{line}");
        let mut sorted = parsed.logits.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        assert!(
            (parsed.margin - (sorted[0] - sorted[1])).abs() <= 2e-7,
            "{line}"
        );
    }
    // The last segment is a prefill of frames 8-9 only: not the whole-run line.
    assert_ne!(
        parse_line(lines[2]).logits,
        parse_line(results(&whole)[0]).logits
    );
}

#[test]
fn streaming_matches_prefill() {
    let scratch = Scratch::new("stream");
    let model = default_model(&scratch);
    let frames = scratch.path("frames.csv");
    // Past the sparse window (32) and a landmark block, so every candidate
    // kind takes part.
    std::fs::write(&frames, frames_csv(70)).unwrap();
    let base = ["classify", "--model", s(&model), "--frames", s(&frames)];

    let prefill = ok(&base);
    let streamed = ok(&[&base[..], &["--stream"]].concat());
    let streamed = results(&streamed);
    assert_eq!(streamed.len(), 70);
    assert!(streamed[69].starts_with("frame 69  "));
    let last = parse_line(streamed[69]);
    let whole = parse_line(results(&prefill)[0]);
    assert!(max_abs_diff(&last.logits, &whole.logits) <= PRINTED_TOLERANCE);
    assert_eq!(last.argmax, whole.argmax);

    // With --segment the stream restarts each segment: the last frame of
    // each segment prints that segment's prefill logits.
    let segments = ok(&[&base[..], &["--segment", "25"]].concat());
    let segments = results(&segments);
    let streamed = ok(&[&base[..], &["--segment", "25", "--stream"]].concat());
    let streamed = results(&streamed);
    assert_eq!((segments.len(), streamed.len()), (3, 70));
    for (segment, frame) in segments.iter().zip([24, 49, 69]) {
        let a = parse_line(segment).logits;
        let b = parse_line(streamed[frame]).logits;
        assert!(max_abs_diff(&a, &b) <= PRINTED_TOLERANCE, "frame {frame}");
    }
}

#[test]
fn every_backend_runs_from_a_config_file() {
    let scratch = Scratch::new("config");
    let model = default_model(&scratch);
    let frames = scratch.path("frames.csv");
    std::fs::write(&frames, frames_csv(20)).unwrap();
    let mut logits = Vec::new();
    for backend in ["sparse", "dense", "reference"] {
        let config = scratch.path(&format!("{backend}.toml"));
        std::fs::write(
            &config,
            format!(
                "backend = \"{backend}\"\nq_heads = 4\nkv_heads = 1\nhead_dim = 32\nwindow = 32\n\
                 block_size = 16\ncausal = true\n"
            ),
        )
        .unwrap();
        let out = ok(&[
            "classify",
            "--model",
            s(&model),
            "--frames",
            s(&frames),
            "--config",
            s(&config),
        ]);
        assert!(out.contains(&format!("# head backend {backend}")), "{out}");
        logits.push(parse_line(results(&out)[0]).logits);
    }
    // 20 frames <= W + 1: sparse, dense and reference all agree.
    assert!(max_abs_diff(&logits[0], &logits[1]) <= PRINTED_TOLERANCE);
    assert!(max_abs_diff(&logits[0], &logits[2]) <= PRINTED_TOLERANCE);
}

#[test]
fn config_errors_are_one_line() {
    let scratch = Scratch::new("config-errors");
    let model = default_model(&scratch);
    let frames = scratch.path("frames.csv");
    std::fs::write(&frames, frames_csv(5)).unwrap();
    let config = scratch.path("head.toml");
    let run = |text: &str| {
        std::fs::write(&config, text).unwrap();
        fails(
            &[
                "classify",
                "--model",
                s(&model),
                "--frames",
                s(&frames),
                "--config",
                s(&config),
            ],
            1,
        )
    };
    let valid = "backend = \"sparse\"\nq_heads = 4\nkv_heads = 1\nhead_dim = 32\nwindow = 32\n\
                 block_size = 16\ncausal = true\n";
    let mismatch = run(&valid.replace("q_heads = 4", "q_heads = 8"));
    assert!(mismatch.contains("head.toml"), "{mismatch}");
    assert!(
        mismatch.contains("the blob's heads (q_heads 4, kv_heads 1, head_dim 32) differ"),
        "{mismatch}"
    );
    let unknown = run(&format!("{valid}windw = 3\n"));
    assert!(unknown.contains("head.toml:8:1: key `windw`"), "{unknown}");
    // Prefill works without causality; streaming cannot.
    std::fs::write(&config, valid.replace("causal = true", "causal = false")).unwrap();
    let base = [
        "classify",
        "--model",
        s(&model),
        "--frames",
        s(&frames),
        "--config",
        s(&config),
    ];
    ok(&base);
    let error = fails(&[&base[..], &["--stream"]].concat(), 1);
    assert!(error.contains("causal"), "{error}");
}

#[test]
fn csv_errors_name_the_line() {
    let scratch = Scratch::new("csv");
    let model = default_model(&scratch);
    let frames = scratch.path("frames.csv");
    let good = frames_csv(3);
    let good_row = good.lines().nth(1).unwrap().to_owned();
    let fields: Vec<&str> = good_row.split(',').collect();
    let cases = [
        (
            format!("{good_row}\n# note\n{}\n", fields[..15].join(",")),
            "frames.csv:3: expected 16 values, found 15".to_owned(),
        ),
        (
            format!("{good_row}\n{good_row},0.5\n"),
            "frames.csv:2: expected 16 values, found 17".to_owned(),
        ),
        (
            format!("{good_row}\n\n{},abc\n", fields[..15].join(",")),
            format!(
                "frames.csv:3:{}: field 16: `abc` is not a number",
                fields[..15].join(",").len() + 2
            ),
        ),
        (
            format!("{},nan\n", fields[..15].join(",")),
            "field 16: `nan` is not a finite f32".to_owned(),
        ),
        ("# nothing\n".to_owned(), "no frames".to_owned()),
    ];
    for (text, expected) in cases {
        std::fs::write(&frames, &text).unwrap();
        let error = fails(
            &["classify", "--model", s(&model), "--frames", s(&frames)],
            1,
        );
        assert!(error.contains(&expected), "{text:?}: {error}");
        assert!(error.contains("frames.csv"), "{error}");
    }
    std::fs::write(&frames, format!("{good_row}\n1,2,x3,4\n")).unwrap();
    let error = fails(
        &["classify", "--model", s(&model), "--frames", s(&frames)],
        1,
    );
    assert!(
        error.ends_with("frames.csv:2: expected 16 values, found 4"),
        "{error}"
    );
    std::fs::write(
        &frames,
        format!("{good_row}\n{},  x3\n", fields[..15].join(",")),
    )
    .unwrap();
    let error = fails(
        &["classify", "--model", s(&model), "--frames", s(&frames)],
        1,
    );
    let column = fields[..15].join(",").len() + 4;
    assert!(
        error.ends_with(&format!(
            "frames.csv:2:{column}: field 16: `x3` is not a number"
        )),
        "{error}"
    );
}

#[test]
fn usage_errors_are_one_line_with_status_2() {
    let missing = fails(&["classify", "--frames", "x.csv"], 2);
    assert!(missing.contains("--model"), "{missing}");
    let unknown = fails(&["inspect", "a.rvne", "--bogus"], 2);
    assert!(unknown.contains("--bogus"), "{unknown}");
    let segment = fails(
        &[
            "classify",
            "--model",
            "m",
            "--frames",
            "f",
            "--segment",
            "0",
        ],
        2,
    );
    assert!(segment.contains("--segment"), "{segment}");
    let help = aether(&["--help"]);
    assert!(help.status.success());
    assert!(stdout(&help).contains("classify"));
}

#[test]
fn synth_reproduces_the_bundled_frames() {
    let bundled =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/frames.csv"))
            .unwrap();
    assert!(
        ok(&["synth", "--demo-scene"]) == bundled,
        "`aether synth --demo-scene` differs from assets/frames.csv"
    );
    // The labelled training format: a header, then one row per frame of
    // every recording, D values after label and sequence.
    let labelled = ok(&[
        "synth",
        "--frames",
        "128",
        "--per-class",
        "2",
        "--input-dim",
        "3",
        "--seed",
        "9",
    ]);
    let mut lines = labelled.lines();
    assert_eq!(lines.next(), Some("label,sequence,f0,f1,f2"));
    let rows: Vec<&str> = lines.filter(|line| !line.is_empty()).collect();
    assert_eq!(rows.len(), 5 * 2 * 128);
    assert!(rows.iter().all(|row| row.split(',').count() == 5));
    let labels: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|row| row.split(',').next().unwrap())
        .collect();
    assert_eq!(
        labels.into_iter().collect::<Vec<_>>(),
        ["fall", "sit-down", "still", "walking", "wave"]
    );
}

#[test]
fn demo_runs_and_says_what_its_trained_model_classifies() {
    let out = ok(&["demo", "--long-window", "48"]);
    for expected in [
        "as: still, walking, fall, sit-down, wave",
        "held-out accuracy",
        "truth still     decided ",
        "recordings classified correctly",
        "ok    streaming == prefill, sparse",
        "ok    streaming == prefill, dense",
        "ok    streaming == prefill, reference",
        "ok    sparse == reference",
        "ok    sparse == dense",
        "µs/frame",
        "speedup",
        "All checks passed.",
    ] {
        assert!(out.contains(expected), "{expected:?} not in\n{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
}
