//! End-to-end tests of the raw-CSI commands: `aether synth-csi` writes
//! logs of both serial formats, `aether features` turns them into frames
//! or labelled rows, `aether classify --stream --csi` classifies them as
//! they arrive. The real binary runs; outputs are parsed and compared by
//! value.
//!
//! The promises pinned here: the summary accounts for every line (boot
//! noise skipped and counted, a malformed line reported with its line
//! number and skipped, or fatal with `--strict`); the frame count follows
//! the capture's length and the frame rate; the labelled output reads back
//! through the dataset crate with the frames' exact bits; classifying a log
//! live gives the very logits `classify --frames` gives on the CSV
//! `features` wrote for it; `-` works for both.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// The two serial formats, as `--format` names them, with the start of
/// their header line.
const FORMATS: [(&str, &str); 2] = [("esp-csi", "type,id,"), ("csi-tool", "type,role,")];

/// Writes a generated log of `seconds` to `dir/name` and returns its path.
fn log(scratch: &Scratch, name: &str, format: &str, seconds: &str, extra: &[&str]) -> PathBuf {
    let path = scratch.path(name);
    let mut args = vec![
        "synth-csi",
        "--format",
        format,
        "--seconds",
        seconds,
        "--seed",
        "7",
        "--out",
        s(&path),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    path
}

/// The number after `key` in a `features` summary on stderr.
fn count(summary: &str, key: &str) -> u64 {
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with(key))
        .unwrap_or_else(|| panic!("no `{key}` in the summary: {summary}"));
    line.trim_start()[key.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after `{key}`: {line}"))
}

/// Frames of a frames CSV, comment lines left out.
fn frame_rows(csv: &str) -> Vec<Vec<f32>> {
    csv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(',').map(|v| v.parse().expect("a value")).collect())
        .collect()
}

/// Runs `aether` and asserts success; returns stdout and stderr.
fn run(args: &[&str]) -> (String, String) {
    let output = aether(args);
    assert!(
        output.status.success(),
        "aether {args:?} failed: {}",
        stderr(&output)
    );
    (stdout(&output), stderr(&output))
}

/// Replaces line `number` (1-based) of the file.
fn replace_line(path: &Path, number: usize, edit: impl Fn(&str) -> String) {
    let text = std::fs::read_to_string(path).expect("read log");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[number - 1] = edit(&lines[number - 1]);
    std::fs::write(path, lines.join("\n") + "\n").expect("write log");
}

#[test]
fn features_accounts_for_every_line_of_both_formats() {
    let scratch = Scratch::new("features-counts");
    for (format, header) in FORMATS {
        let path = log(&scratch, &format!("{format}.log"), format, "6", &[]);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[5].starts_with(header), "{format}: {}", lines[5]);
        let packets = lines.iter().filter(|l| l.starts_with("CSI_DATA,")).count() as u64;
        // 2 % drops of 600 packets.
        assert!((570..=600).contains(&packets), "{packets}");
        // Line 40 is a CSI line; cut it in half, as a serial glitch would.
        assert!(lines[39].starts_with("CSI_DATA,"));
        replace_line(&path, 40, |l| l[..l.len() / 2].to_owned());
        let csv = scratch.path(&format!("{format}.csv"));
        let (out, err) = run(&["features", "--csi", s(&path), "--out", s(&csv)]);
        assert_eq!(out, "");
        assert!(
            err.contains(&format!(
                "warning: {}:40: malformed CSI line skipped: ",
                s(&path)
            )),
            "{err}"
        );
        assert_eq!(count(&err, "lines read"), lines.len() as u64);
        assert_eq!(count(&err, "CSI packets"), packets - 1);
        assert_eq!(count(&err, "header lines"), 1);
        // Five boot lines and a driver message every 97 packets.
        assert_eq!(count(&err, "non-CSI lines"), 5 + packets / 97);
        assert_eq!(count(&err, "malformed lines"), 1);
        assert_eq!(count(&err, "rejected packets"), 0);
        assert_eq!(count(&err, "restarts"), 0);
        let expected_format = if format == "esp-csi" {
            "esp-csi (csi_recv)"
        } else {
            "ESP32-CSI-Tool"
        };
        assert!(
            err.contains(&format!("log format        {expected_format}\n")),
            "{err}"
        );
        // 6 s at 50 Hz: floor(span · 50) + 1 frames, the span a jittered
        // 5.99 s (give or take a dropped last packet).
        let frames = frame_rows(&std::fs::read_to_string(&csv).unwrap());
        assert!((297..=301).contains(&frames.len()), "{}", frames.len());
        assert_eq!(count(&err, "frames written"), frames.len() as u64);
        assert!(
            frames
                .iter()
                .all(|f| f.len() == 16 && f.iter().all(|v| v.is_finite()))
        );
        // The running mean starts from the first frame: it is exactly 0.
        assert!(frames[0].iter().all(|&v| v == 0.0));
        assert!(frames[1..].iter().any(|f| f.iter().any(|&v| v != 0.0)));

        // --strict: the same line is fatal, named with its number.
        let error = fails(&["features", "--csi", s(&path), "--strict"], 1);
        assert!(
            error.starts_with(&format!("error: {}:40: malformed CSI line: ", s(&path))),
            "{error}"
        );
    }
}

#[test]
fn gaps_duplicates_and_restarts_are_counted() {
    let scratch = Scratch::new("features-gaps");
    let path = log(
        &scratch,
        "gappy.log",
        "esp-csi",
        "4",
        &["--duplicate", "0.05", "--outage", "1.5,1", "--drop", "0.3"],
    );
    let (out, err) = run(&["features", "--csi", s(&path), "--bands", "8"]);
    assert!(count(&err, "duplicates") > 0, "{err}");
    assert_eq!(count(&err, "restarts"), 1);
    // At 30 % drops both packets of a 20 ms frame are often lost.
    assert!(count(&err, "gaps") > 0, "{err}");
    let frames = frame_rows(&out);
    assert!(frames.iter().all(|f| f.len() == 8));
    // Two segments of about 1.5 s at 50 Hz around a 1 s outage.
    assert!((140..=152).contains(&frames.len()), "{}", frames.len());
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("# segment 1:"))
            .count(),
        1
    );
}

#[test]
fn labelled_output_reads_back_through_the_dataset_crate() {
    let scratch = Scratch::new("features-labelled");
    let walk = log(&scratch, "walk.log", "csi-tool", "3", &["--agc-steps"]);
    let still = log(
        &scratch,
        "still.log",
        "esp-csi",
        "3",
        &["--activity", "still"],
    );
    let (frames_csv, _) = run(&["features", "--csi", s(&walk)]);
    let frames = frame_rows(&frames_csv);
    let train = scratch.path("train.csv");
    run(&[
        "features",
        "--csi",
        s(&walk),
        "--label",
        "walking",
        "--sequence",
        "walk-01",
        "--out",
        s(&train),
        "--append",
    ]);
    run(&[
        "features",
        "--csi",
        s(&still),
        "--label",
        "still",
        "--sequence",
        "still-01",
        "--out",
        s(&train),
        "--append",
    ]);
    let recordings = aether_dataset::csv::read_labelled(&train).expect("a labelled CSV");
    assert_eq!(recordings.input_dim, 16);
    assert_eq!(recordings.classes, ["walking", "still"]);
    let ids: Vec<&str> = recordings.sequences.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids, ["walk-01", "still-01"]);
    let walking = &recordings.sequences[0];
    assert_eq!(walking.len(), frames.len());
    assert!(walking.labels.iter().all(|&l| l == 0));
    // The same bits as the frames CSV: both are shortest round-trip text.
    let flat: Vec<u32> = frames.iter().flatten().map(|v| v.to_bits()).collect();
    let read: Vec<u32> = walking.frames.iter().map(|v| v.to_bits()).collect();
    assert_eq!(read, flat);
    assert!(recordings.sequences[1].labels.iter().all(|&l| l == 1));

    // Appending frames of another size would break the file: refused.
    let error = fails(
        &[
            "features",
            "--csi",
            s(&still),
            "--bands",
            "8",
            "--label",
            "still",
            "--sequence",
            "still-02",
            "--out",
            s(&train),
            "--append",
        ],
        1,
    );
    assert!(
        error.contains("cannot append: its header is `label,sequence,f0,"),
        "{error}"
    );
    // A name the CSV could not give back is a usage error.
    let error = fails(
        &[
            "features",
            "--csi",
            s(&still),
            "--label",
            "a,b",
            "--sequence",
            "x",
        ],
        2,
    );
    assert!(error.contains("comma"), "{error}");
}

/// `classify --format json` result lines, parsed.
fn json_rows(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn logits(row: &Value) -> Vec<f32> {
    row["logits"]
        .as_array()
        .expect("logits")
        .iter()
        .map(|v| v.as_f64().expect("a logit") as f32)
        .collect()
}

#[test]
fn classify_csi_equals_classify_on_the_features_csv() {
    let scratch = Scratch::new("features-classify");
    let model = default_model(&scratch);
    for (format, _) in FORMATS {
        let path = log(
            &scratch,
            &format!("{format}.log"),
            format,
            "4",
            &["--agc-steps"],
        );
        let csv = scratch.path(&format!("{format}.csv"));
        run(&["features", "--csi", s(&path), "--out", s(&csv)]);
        let n = frame_rows(&std::fs::read_to_string(&csv).unwrap()).len();

        let (live, err) = run(&[
            "classify",
            "--model",
            s(&model),
            "--stream",
            "--csi",
            s(&path),
            "--every",
            "7",
            "--format",
            "json",
        ]);
        assert_eq!(count(&err, "frames classified"), n as u64);
        let live = json_rows(&live);
        assert_eq!(live.len(), n / 7);
        let (all, _) = run(&[
            "classify",
            "--model",
            s(&model),
            "--stream",
            "--frames",
            s(&csv),
            "--format",
            "json",
        ]);
        let all = json_rows(&all);
        assert_eq!(all.len(), n);
        for (k, row) in live.iter().enumerate() {
            let frame = 7 * k + 6;
            assert_eq!(row["last_frame"], frame);
            assert_eq!(logits(row), logits(&all[frame]), "frame {frame}");
        }
        // The last frame's logits are the prefill's over the whole CSV.
        let (prefill, _) = run(&["classify", "--model", s(&model), "--frames", s(&csv)]);
        let prefill = parse_line(results(&prefill)[0]);
        assert!(max_abs_diff(&prefill.logits, &logits(&all[n - 1])) <= PRINTED_TOLERANCE);

        // Standard input gives the same frames and the same decisions.
        let bytes = std::fs::read(&path).unwrap();
        let piped = aether_with_stdin(&["features", "--csi", "-"], &bytes);
        assert!(piped.status.success(), "{}", stderr(&piped));
        assert_eq!(stdout(&piped), std::fs::read_to_string(&csv).unwrap());
        assert!(stderr(&piped).starts_with("summary of <stdin>\n"));
        let piped = aether_with_stdin(
            &[
                "classify",
                "--model",
                s(&model),
                "--stream",
                "--csi",
                "-",
                "--every",
                "7",
                "--format",
                "json",
            ],
            &bytes,
        );
        assert!(piped.status.success(), "{}", stderr(&piped));
        assert_eq!(json_rows(&stdout(&piped)), live);
    }
}

#[test]
fn misuse_is_refused_with_one_line() {
    let scratch = Scratch::new("features-misuse");
    let model = default_model(&scratch);
    let path = log(&scratch, "a.log", "esp-csi", "1", &[]);
    let error = fails(
        &[
            "classify",
            "--model",
            s(&model),
            "--stream",
            "--csi",
            s(&path),
            "--bands",
            "8",
        ],
        1,
    );
    assert!(
        error.contains("reads frames of 16 values but --bands makes 8"),
        "{error}"
    );
    // --csi needs --stream, and takes the place of --frames.
    fails(&["classify", "--model", s(&model), "--csi", s(&path)], 2);
    fails(
        &[
            "classify",
            "--model",
            s(&model),
            "--stream",
            "--csi",
            s(&path),
            "--frames",
            s(&path),
        ],
        2,
    );
    // The extractor's flags only mean something with a CSI log.
    fails(
        &[
            "classify",
            "--model",
            s(&model),
            "--frames",
            s(&path),
            "--rate",
            "10",
        ],
        2,
    );
    // A file without CSI lines is an error after the summary.
    let boot = scratch.path("boot.log");
    std::fs::write(&boot, "ets Jun  8 2016 00:22:57\nI (29) boot: ESP-IDF\n").unwrap();
    let output = aether(&["features", "--csi", s(&boot)]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert_eq!(count(&err, "non-CSI lines"), 2);
    assert!(
        err.lines()
            .last()
            .unwrap()
            .contains("no feature frames from 0 CSI packets in 2 lines"),
        "{err}"
    );
    // synth-csi is deterministic and does not overwrite without --force.
    let again = scratch.path("b.log");
    ok(&[
        "synth-csi",
        "--seconds",
        "1",
        "--seed",
        "7",
        "--out",
        s(&again),
    ]);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&again).unwrap()
    );
    let error = fails(&["synth-csi", "--seconds", "1", "--out", s(&again)], 1);
    assert!(error.contains("already exists"), "{error}");
}

#[test]
fn every_generated_layout_gives_frames() {
    for (layout, grid) in [
        ("lltf", "LLTF, 48 subcarriers"),
        ("ht20", "HT-LTF 20 MHz, 52 subcarriers"),
        ("ht40", "HT-LTF 40 MHz, 108 subcarriers"),
    ] {
        let log = ok(&["synth-csi", "--seconds", "1", "--layout", layout]);
        let output =
            aether_with_stdin(&["features", "--csi", "-", "--bands", "48"], log.as_bytes());
        assert!(output.status.success(), "{}", stderr(&output));
        let err = stderr(&output);
        assert!(
            err.contains(&format!("subcarriers       {grid}\n")),
            "{layout}: {err}"
        );
        let frames = frame_rows(&stdout(&output));
        assert!((48..=51).contains(&frames.len()), "{}", frames.len());
        assert!(frames.iter().all(|f| f.len() == 48));
        // --field lltf reads the LLTF of every layout.
        let output = aether_with_stdin(
            &["features", "--csi", "-", "--field", "lltf"],
            log.as_bytes(),
        );
        assert!(stderr(&output).contains("subcarriers       LLTF, 48 subcarriers\n"));
    }
}

/// `features` and `classify --csi` on a pipe that stays open (a serial
/// port): frames and decisions come out while the writer is still there,
/// not when it closes.
#[test]
fn a_live_log_is_answered_before_it_ends() {
    let log = ok(&["synth-csi", "--seconds", "2"]);
    let scratch = Scratch::new("features-live");
    let model = default_model(&scratch);
    let lines: Vec<&str> = log.lines().collect();
    for (args, wanted) in [
        (vec!["features", "--csi", "-"], "0,0,0"),
        (
            vec![
                "classify",
                "--model",
                s(&model),
                "--stream",
                "--csi",
                "-",
                "--every",
                "10",
            ],
            "frame 9 ",
        ),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aether"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run aether");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdin = child.stdin.take().expect("piped stdin");
        // Half the log; the pipe stays open.
        stdin
            .write_all((lines[..lines.len() / 2].join("\n") + "\n").as_bytes())
            .expect("write half the log");
        stdin.flush().expect("flush");
        let seen = (0..200)
            .map_while(|_| rx.recv_timeout(Duration::from_secs(60)).ok())
            .any(|line| line.starts_with(wanted));
        drop(stdin);
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            seen,
            "{args:?}: no `{wanted}` line while the input was open"
        );
    }
}
