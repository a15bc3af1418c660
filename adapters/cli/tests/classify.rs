//! End-to-end tests of `aether classify` as a live tool, and of `-` for
//! every file argument: the real binary, its output parsed and compared
//! by value.
//!
//! The promises pinned here: a streamed frame's result is readable while
//! the input pipe is still open; `--capacity` bounds the cache and the
//! TOML's eviction policy then applies (checked against runs that need no
//! eviction and must agree); a full cache without eviction is one error
//! naming both ways out; text, JSON Lines and CSV carry the same numbers;
//! TOML keys the blob or the backend makes redundant may be left out, and
//! an unknown key anywhere in `eviction` is refused with key and line;
//! dense and reference refuse very long prefills without `--force`.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// How long a streamed result may take to appear. Generous: a loaded
/// 2-core CI machine runs several test binaries at once, and a debug
/// build of the model takes a moment to start; a binary that waited for
/// the end of its input would never answer at all.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// The frames of `frames_csv(n)` as bare CSV rows (no comments).
fn rows(n: usize) -> Vec<String> {
    frames_csv(n)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// A child process killed if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends every stdout line of `child` down a channel, from a thread, so the
/// test can wait for one line with a timeout.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line that is not a `#` comment, or a panic after the timeout.
fn next_result(lines: &Receiver<String>) -> String {
    loop {
        match lines.recv_timeout(ANSWER_TIMEOUT) {
            Ok(line) if line.starts_with('#') => {}
            Ok(line) => return line,
            Err(RecvTimeoutError::Timeout) => {
                panic!("no result within {ANSWER_TIMEOUT:?} while the input pipe is open")
            }
            Err(RecvTimeoutError::Disconnected) => panic!("aether closed its output early"),
        }
    }
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).expect("write test input");
    path.to_path_buf()
}

#[test]
fn streaming_answers_each_frame_while_the_pipe_is_open() {
    let scratch = Scratch::new("live-pipe");
    let model = default_model(&scratch);
    let rows = rows(3);
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_aether"))
            .args([
                "classify",
                "--model",
                s(&model),
                "--frames",
                "-",
                "--stream",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run aether"),
    );
    let mut stdin = child.0.stdin.take().expect("piped stdin");
    let lines = lines_of(&mut child.0);

    // One frame, flushed, and the pipe stays open: the answer must come.
    writeln!(stdin, "{}", rows[0]).unwrap();
    stdin.flush().unwrap();
    let first = next_result(&lines);
    assert!(first.starts_with("frame 0  argmax "), "{first}");
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "aether exited with its input still open"
    );

    // Two more, each answered before the next is sent; then close.
    writeln!(stdin, "# a comment line is skipped\n{}", rows[1]).unwrap();
    stdin.flush().unwrap();
    let second = next_result(&lines);
    assert!(second.starts_with("frame 1  "), "{second}");
    writeln!(stdin, "{}", rows[2]).unwrap();
    drop(stdin);
    let third = next_result(&lines);
    assert!(third.starts_with("frame 2  "), "{third}");
    let rest: Vec<String> = lines.iter().collect();
    assert!(rest.is_empty(), "{rest:?}");
    assert!(child.0.wait().unwrap().success());

    // Each streamed line is the prefill of the frames so far.
    for (n, streamed) in [(1, &first), (3, &third)] {
        let prefix = write(&scratch.path("p.csv"), &rows[..n].join("\n"));
        let prefill = ok(&["classify", "--model", s(&model), "--frames", s(&prefix)]);
        let diff = max_abs_diff(
            &parse_line(results(&prefill)[0]).logits,
            &parse_line(streamed).logits,
        );
        assert!(diff <= PRINTED_TOLERANCE, "frame {}: {diff}", n - 1);
    }
}

/// A sparse head that attends only to the 8 newest frames (itself and 7
/// before): a sliding-window cache of 8 frames keeps every candidate, so a
/// bounded stream must equal an unbounded one.
const LOCAL_8: &str = "backend = \"sparse\"\nwindow = 7\nblock_size = 4\ncausal = true\n\
                       global_tokens = []\nlog_stride = false\nlandmarks = false\n";

#[test]
fn endless_streams_evict_as_the_toml_says() {
    let scratch = Scratch::new("live-evict");
    let model = default_model(&scratch);
    let frames = frames_csv(40);
    let stream = |config: &str, extra: &[&str]| -> Vec<Vec<f32>> {
        let path = write(&scratch.path("head.toml"), config);
        let args = [
            &[
                "classify",
                "--model",
                s(&model),
                "--frames",
                "-",
                "--stream",
                "--config",
                s(&path),
            ][..],
            extra,
        ]
        .concat();
        let output = aether_with_stdin(&args, frames.as_bytes());
        assert!(output.status.success(), "{config}: {}", stderr(&output));
        let out = stdout(&output);
        let lines = results(&out);
        assert_eq!(lines.len(), 40, "{out}");
        for (t, line) in lines.iter().enumerate() {
            assert!(line.starts_with(&format!("frame {t}  ")), "{line}");
        }
        lines.iter().map(|l| parse_line(l).logits).collect()
    };
    let sliding = "eviction = { policy = \"sliding_window\" }\n";

    // 40 frames through 8 slots: the bounded stream equals the unbounded.
    let unbounded = stream(LOCAL_8, &[]);
    let bounded = stream(&format!("{LOCAL_8}{sliding}"), &["--capacity", "8"]);
    for (t, (a, b)) in unbounded.iter().zip(&bounded).enumerate() {
        assert!(max_abs_diff(a, b) <= PRINTED_TOLERANCE, "frame {t}");
    }
    // Dense attends to all it holds, which with 8 sliding slots is the
    // same 8 frames (and its TOML needs no window or block_size).
    let dense = stream(
        &format!("backend = \"dense\"\ncausal = true\n{sliding}"),
        &["--capacity", "8"],
    );
    for (t, (a, b)) in unbounded.iter().zip(&dense).enumerate() {
        assert!(max_abs_diff(a, b) <= PRINTED_TOLERANCE, "frame {t}");
    }

    // The default head looks 32 frames back: evicting past 8 changes what
    // it sees, so results agree while nothing is evicted and then differ.
    let head = "backend = \"sparse\"\nwindow = 32\nblock_size = 16\ncausal = true\n";
    let full = stream(head, &[]);
    let evicting = stream(&format!("{head}{sliding}"), &["--capacity", "8"]);
    let heavy = stream(
        &format!("{head}eviction = {{ policy = \"heavy_hitter\", recent = 4 }}\n"),
        &["--capacity", "8"],
    );
    for t in 0..8 {
        assert!(max_abs_diff(&full[t], &evicting[t]) <= PRINTED_TOLERANCE);
        assert!(max_abs_diff(&full[t], &heavy[t]) <= PRINTED_TOLERANCE);
    }
    assert!(max_abs_diff(&full[39], &evicting[39]) > 1e-4);
    assert!(max_abs_diff(&full[39], &heavy[39]) > 1e-4);
}

#[test]
fn a_full_cache_without_eviction_names_the_ways_out() {
    let scratch = Scratch::new("live-full");
    let model = default_model(&scratch);
    let frames = write(&scratch.path("frames.csv"), &frames_csv(8));
    let args = [
        "classify",
        "--model",
        s(&model),
        "--frames",
        s(&frames),
        "--stream",
        "--capacity",
        "5",
    ];
    let output = aether(&args);
    let error = one_error(&output, 1, "full cache");
    // Frame 5 is on line 9 (a header comment, a blank and a comment line
    // precede it).
    assert!(
        error.contains("frames.csv:9: frame 5 does not fit: the KV cache is full (5 frames)"),
        "{error}"
    );
    assert!(error.contains("--capacity"), "{error}");
    assert!(
        error.contains("eviction = { policy = \"sliding_window\" }"),
        "{error}"
    );
    // Everything before the full cache was written.
    let out = stdout(&output);
    let lines = results(&out);
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[4].starts_with("frame 4  "), "{out}");

    // Heavy-hitter eviction must keep fewer recent frames than fit.
    let config = write(
        &scratch.path("head.toml"),
        "backend = \"sparse\"\nwindow = 32\nblock_size = 16\ncausal = true\n\
         eviction = { policy = \"heavy_hitter\", recent = 8 }\n",
    );
    let error = fails(
        &[
            "classify",
            "--model",
            s(&model),
            "--frames",
            s(&frames),
            "--stream",
            "--capacity",
            "8",
            "--config",
            s(&config),
        ],
        1,
    );
    assert!(
        error.contains("(KV cache of 8 frames from --capacity)"),
        "{error}"
    );
    assert!(
        error.contains("keeps 8 recent tokens; the capacity (8) must exceed it"),
        "{error}"
    );
}

/// The JSON Lines field names, in order: a stable interface.
const JSON_FIELDS: [&str; 8] = [
    "segment",
    "first_frame",
    "last_frame",
    "line",
    "argmax",
    "class",
    "margin",
    "logits",
];

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            let mut keys: Vec<&str> = value
                .as_object()
                .expect("an object per line")
                .keys()
                .map(String::as_str)
                .collect();
            keys.sort_unstable();
            let mut expected = JSON_FIELDS;
            expected.sort_unstable();
            assert_eq!(keys, expected, "{line}");
            // serde_json's map sorts keys; the order on the line is the
            // documented one.
            let at: Vec<usize> = JSON_FIELDS
                .iter()
                .map(|key| line.find(&format!("\"{key}\":")).expect("key on the line"))
                .collect();
            assert!(at.is_sorted(), "{line}");
            value
        })
        .collect()
}

fn json_logits(value: &Value) -> Vec<f32> {
    value["logits"]
        .as_array()
        .expect("logits array")
        .iter()
        .map(|v| v.as_f64().expect("number") as f32)
        .collect()
}

#[test]
fn text_json_and_csv_carry_the_same_results() {
    let scratch = Scratch::new("formats");
    let model = default_model(&scratch);
    let frames = write(&scratch.path("frames.csv"), &frames_csv(10));
    let base = [
        "classify",
        "--model",
        s(&model),
        "--frames",
        s(&frames),
        "--segment",
        "4",
    ];
    let text = ok(&base);
    let json = ok(&[&base[..], &["--format", "json"]].concat());
    let csv = ok(&[&base[..], &["--format", "csv"]].concat());

    let text = results(&text);
    let json = json_lines(&json);
    assert_eq!((text.len(), json.len()), (3, 3));
    // Source lines: a comment on line 1, frames 0-2 on lines 2-4, a blank
    // line and a comment, then frame k on line k + 4.
    let expected = [(0, 0, 3, 7), (1, 4, 7, 11), (2, 8, 9, 13)];
    for ((record, text), (segment, first, last, line)) in json.iter().zip(&text).zip(expected) {
        assert_eq!(record["segment"], segment);
        assert_eq!(record["first_frame"], first);
        assert_eq!(record["last_frame"], last);
        assert_eq!(record["line"], line);
        assert_eq!(record["class"], Value::Null);
        let printed = parse_line(text);
        assert_eq!(record["argmax"], printed.argmax);
        let logits = json_logits(record);
        assert!(max_abs_diff(&logits, &printed.logits) <= 1e-6, "{text}");
        let margin = record["margin"].as_f64().unwrap() as f32;
        assert!((margin - printed.margin).abs() <= 1e-6);
    }

    let mut csv = csv.lines();
    assert_eq!(
        csv.next(),
        Some(
            "segment,first_frame,last_frame,line,argmax,class,margin,logit_0,logit_1,logit_2,\
             logit_3"
        )
    );
    let csv: Vec<&str> = csv.collect();
    assert_eq!(csv.len(), 3);
    for (row, record) in csv.iter().zip(&json) {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields.len(), 11, "{row}");
        let whole = |i: usize| fields[i].parse::<u64>().expect("whole number");
        assert_eq!(whole(0), record["segment"].as_u64().unwrap());
        assert_eq!(whole(1), record["first_frame"].as_u64().unwrap());
        assert_eq!(whole(2), record["last_frame"].as_u64().unwrap());
        assert_eq!(whole(3), record["line"].as_u64().unwrap());
        assert_eq!(whole(4), record["argmax"].as_u64().unwrap());
        assert_eq!(fields[5], "");
        // Both formats print the shortest text that reads back as the same
        // f32, so the values are identical.
        let floats: Vec<f32> = fields[6..].iter().map(|f| f.parse().unwrap()).collect();
        assert_eq!(floats[0], record["margin"].as_f64().unwrap() as f32);
        assert_eq!(floats[1..], json_logits(record)[..]);
    }
}

#[test]
fn streaming_json_is_one_record_per_frame() {
    let scratch = Scratch::new("stream-json");
    let model = default_model(&scratch);
    let output = aether_with_stdin(
        &[
            "classify",
            "--model",
            s(&model),
            "--frames",
            "-",
            "--stream",
            "--format",
            "json",
            "--segment",
            "4",
            "--classes",
            "still,walk,sit,fall",
        ],
        frames_csv(6).as_bytes(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let records = json_lines(&stdout(&output));
    assert_eq!(records.len(), 6);
    let names = ["still", "walk", "sit", "fall"];
    for (t, record) in records.iter().enumerate() {
        assert_eq!(record["last_frame"], t);
        assert_eq!(record["segment"], t / 4);
        assert_eq!(record["first_frame"], t / 4 * 4);
        let argmax = record["argmax"].as_u64().unwrap() as usize;
        assert_eq!(record["class"], names[argmax]);
        assert_eq!(json_logits(record).len(), 4);
    }
}

#[test]
fn class_names_label_each_decision() {
    let scratch = Scratch::new("classes");
    let model = default_model(&scratch);
    let frames = write(&scratch.path("frames.csv"), &frames_csv(10));
    let base = [
        "classify",
        "--model",
        s(&model),
        "--frames",
        s(&frames),
        "--segment",
        "3",
    ];
    let names = ["still", "walk", "sit", "fall"];
    let out = ok(&[&base[..], &["--classes", "still,walk,sit,fall"]].concat());
    let lines = results(&out);
    assert_eq!(lines.len(), 4);
    for line in &lines {
        let argmax = parse_line(line).argmax;
        assert!(
            line.contains(&format!("argmax {argmax}  class {}  margin", names[argmax])),
            "{line}"
        );
    }
    let csv = ok(&[
        &base[..],
        &["--classes", "still,walk,sit,fall", "--format", "csv"],
    ]
    .concat());
    for row in csv.lines().skip(1) {
        let fields: Vec<&str> = row.split(',').collect();
        let argmax: usize = fields[4].parse().unwrap();
        assert_eq!(fields[5], names[argmax], "{row}");
    }

    let error = fails(&[&base[..], &["--classes", "a,b"]].concat(), 1);
    assert!(
        error.contains("--classes names 2 classes but") && error.contains("model.rvne has 4"),
        "{error}"
    );
    let error = fails(&[&base[..], &["--classes", "a,,b,c"]].concat(), 2);
    assert!(error.contains("class name 2 is empty"), "{error}");
    let error = fails(&[&base[..], &["--classes", "a,b,a,c"]].concat(), 2);
    assert!(error.contains("class name `a` is given twice"), "{error}");
}

#[test]
fn a_dash_is_standard_input_or_output_for_every_file_argument() {
    let scratch = Scratch::new("dash");
    let model = default_model(&scratch);
    let blob = std::fs::read(&model).unwrap();

    // init --out -: the blob on stdout, nothing else, no file named `-`.
    let output = Command::new(env!("CARGO_BIN_EXE_aether"))
        .args(["init", "--out", "-"])
        .current_dir(&scratch.0)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        output.stdout == blob,
        "init --out - differs from init --out FILE"
    );
    assert!(output.stderr.is_empty());
    assert!(!scratch.path("-").exists(), "init --out - made a file `-`");

    // inspect -: the same report as for the file.
    let output = aether_with_stdin(&["inspect", "-"], &blob);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("stored 0x11A85B0D, computed 0x11A85B0D: ok"),
        "{}",
        stdout(&output)
    );

    // synth --out -: standard output, as without --out.
    assert!(ok(&["synth", "--out", "-"]) == ok(&["synth"]));

    // classify: --model -, --config -, --frames - each give the results
    // of the file they replace.
    let frames_text = frames_csv(12);
    let frames = write(&scratch.path("frames.csv"), &frames_text);
    let config_text = "backend = \"sparse\"\nwindow = 8\nblock_size = 4\ncausal = true\n";
    let config = write(&scratch.path("head.toml"), config_text);
    let with_files = ok(&[
        "classify",
        "--model",
        s(&model),
        "--frames",
        s(&frames),
        "--config",
        s(&config),
    ]);
    let expected = results(&with_files);
    assert_eq!(expected.len(), 1);
    for (args, input) in [
        (
            [
                "--model",
                "-",
                "--frames",
                s(&frames),
                "--config",
                s(&config),
            ],
            blob.as_slice(),
        ),
        (
            [
                "--model",
                s(&model),
                "--frames",
                "-",
                "--config",
                s(&config),
            ],
            frames_text.as_bytes(),
        ),
        (
            [
                "--model",
                s(&model),
                "--frames",
                s(&frames),
                "--config",
                "-",
            ],
            config_text.as_bytes(),
        ),
    ] {
        let output = aether_with_stdin(&[&["classify"][..], &args].concat(), input);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        assert_eq!(results(&stdout(&output)), expected, "{args:?}");
        assert!(stdout(&output).contains("<stdin>"), "{args:?}");
    }

    // Errors name <stdin> like a file.
    let output = aether_with_stdin(
        &[
            "classify",
            "--model",
            s(&model),
            "--frames",
            s(&frames),
            "--config",
            "-",
        ],
        b"backend = \"sparse\"\nwindow = 8\nblock_size = 4\ncausal = true\nwindw = 3\n",
    );
    let error = one_error(&output, 1, "--config - with an unknown key");
    assert!(
        error.contains("<stdin>:5:1: key `windw`: unknown field"),
        "{error}"
    );
    let output = aether_with_stdin(
        &["classify", "--model", "-", "--frames", s(&frames)],
        &blob[..100],
    );
    let error = one_error(&output, 1, "--model - truncated");
    assert!(
        error.contains("<stdin>: not a valid .rvne blob: check 5 of 8 (total length)"),
        "{error}"
    );

    // Only one argument can have standard input.
    let error = fails(&["classify", "--model", "-", "--frames", "-"], 2);
    assert!(
        error.contains("--model and --frames both read standard input"),
        "{error}"
    );
    let error = fails(
        &["classify", "--model", "-", "--frames", "-", "--config", "-"],
        2,
    );
    assert!(
        error.contains("--model and --frames and --config all read standard input"),
        "{error}"
    );
    let error = fails(
        &[
            "classify",
            "--model",
            s(&model),
            "--frames",
            "-",
            "--config",
            "-",
        ],
        2,
    );
    assert!(
        error.contains("--frames and --config both read standard input"),
        "{error}"
    );
}

/// `classify --model M --frames F --config C`.
fn with_config<'a>(model: &'a Path, frames: &'a Path, config: &'a Path) -> [&'a str; 7] {
    [
        "classify",
        "--model",
        s(model),
        "--frames",
        s(frames),
        "--config",
        s(config),
    ]
}

#[test]
fn the_toml_may_leave_out_what_the_blob_or_backend_fixes() {
    let scratch = Scratch::new("toml-optional");
    let model = default_model(&scratch);
    let frames = write(&scratch.path("frames.csv"), &frames_csv(40));
    let config = scratch.path("head.toml");
    let run = |text: &str| {
        write(&config, text);
        let out = ok(&[
            "classify",
            "--model",
            s(&model),
            "--frames",
            s(&frames),
            "--config",
            s(&config),
        ]);
        (out.clone(), parse_line(results(&out)[0]).logits)
    };
    let shape = "q_heads = 4\nkv_heads = 1\nhead_dim = 32\n";
    let sparse = "backend = \"sparse\"\nwindow = 32\nblock_size = 16\ncausal = true\n";
    let (out, without) = run(sparse);
    assert!(
        out.contains("# head backend sparse, q_heads 4, kv_heads 1, head_dim 32, window 32"),
        "{out}"
    );
    let (_, with) = run(&format!("{sparse}{shape}"));
    assert_eq!(without, with);

    // Dense ignores window and block_size, so it may omit them.
    let (out, dense) = run("backend = \"dense\"\ncausal = true\n");
    assert!(out.contains("# head backend dense, q_heads 4"), "{out}");
    let (_, dense_full) = run(&format!(
        "backend = \"dense\"\ncausal = true\n{shape}window = 3\nblock_size = 2\n"
    ));
    assert_eq!(dense, dense_full);
    // ...but the backends that use them may not.
    write(&config, "backend = \"reference\"\ncausal = true\n");
    let error = fails(&with_config(&model, &frames, &config), 1);
    assert!(
        error.contains(
            "head.toml: key `window`: missing field `window` (the sparse and \
                        reference backends need it; only dense may leave it out)"
        ),
        "{error}"
    );
}

#[test]
fn an_unknown_key_in_any_eviction_variant_is_refused_with_key_and_line() {
    let scratch = Scratch::new("eviction-keys");
    let model = default_model(&scratch);
    let frames = write(&scratch.path("frames.csv"), &frames_csv(5));
    let config = scratch.path("head.toml");
    let head = "backend = \"sparse\"\nwindow = 32\nblock_size = 16\ncausal = true\n";
    for policy in [
        "policy = \"none\"",
        "policy = \"sliding_window\"",
        "policy = \"heavy_hitter\", recent = 4",
    ] {
        let line = format!("eviction = {{ {policy}, recnet = 4 }}");
        write(&config, &format!("{head}{line}\n"));
        let error = fails(&with_config(&model, &frames, &config), 1);
        let column = line.find("recnet").unwrap() + 1;
        assert!(
            error.contains(&format!(
                "head.toml:5:{column}: key `eviction.recnet`: unknown field `recnet`"
            )),
            "{policy}: {error}"
        );
    }
    // The table form, too.
    write(
        &config,
        &format!("{head}[eviction]\npolicy = \"sliding_window\"\nrecent = 4\n"),
    );
    let error = fails(&with_config(&model, &frames, &config), 1);
    assert!(
        error.contains("head.toml:7:1: key `eviction.recent`: unknown field `recent`"),
        "{error}"
    );
}

#[test]
fn dense_and_reference_refuse_long_prefills_without_force() {
    let scratch = Scratch::new("long");
    // The smallest model, so that the one run allowed to go long is quick.
    let model = scratch.path("tiny.rvne");
    ok(&["init", "--out", s(&model), "--shape", "1,1,1,1,1,2"]);
    let frames: String = (0..16_385)
        .map(|t| format!("{:.3}\n", (t as f32 * 0.1).sin()))
        .collect();
    let frames = write(&scratch.path("long.csv"), &frames);
    let config = scratch.path("head.toml");
    // A local pattern only: the reference costs O(window) per frame here.
    let local = "window = 4\nblock_size = 4\ncausal = true\nlog_stride = false\n\
                 landmarks = false\n";
    let args = [
        "classify",
        "--model",
        s(&model),
        "--frames",
        s(&frames),
        "--config",
        s(&config),
    ];
    for backend in ["dense", "reference"] {
        write(&config, &format!("backend = \"{backend}\"\n{local}"));
        let output = aether(&args);
        let error = one_error(&output, 1, backend);
        assert!(
            error.contains(&format!(
                "the {backend} backend over 16385 frames per classification"
            )),
            "{error}"
        );
        assert!(
            error.contains("above 16384 frames it runs only with --force"),
            "{error}"
        );
        assert!(output.stdout.is_empty(), "a refused run printed results");
    }
    // With --force it runs, and agrees with the sparse backend.
    let forced = ok(&[&args[..], &["--force"]].concat());
    let forced = parse_line(results(&forced)[0]);
    write(&config, &format!("backend = \"sparse\"\n{local}"));
    let sparse = ok(&args);
    let sparse = parse_line(results(&sparse)[0]);
    assert!(max_abs_diff(&forced.logits, &sparse.logits) <= PRINTED_TOLERANCE);
}

#[test]
fn help_lists_exit_codes_and_old_options_say_their_new_names() {
    for args in [
        &["--help"][..],
        &["classify", "--help"],
        &["init", "--help"],
    ] {
        let help = ok(args);
        for expected in [
            "Exit status:",
            "  0  success",
            "  1  runtime error",
            "  2  usage error",
        ] {
            assert!(
                help.contains(expected),
                "{args:?}: {expected:?} not in\n{help}"
            );
        }
    }
    let help = ok(&["classify", "--help"]);
    for option in [
        "--segment <N>",
        "--stream",
        "--capacity <N>",
        "--format <FORMAT>",
        "--classes <A,B,C>",
        "--force",
    ] {
        assert!(help.contains(option), "{option} not in\n{help}");
    }
    assert!(!help.contains("--window <"), "{help}");

    let error = fails(
        &["classify", "--model", "m", "--frames", "f", "--window", "4"],
        2,
    );
    assert!(
        error.contains("--window was renamed --segment (frames per classification)"),
        "{error}"
    );
    let error = fails(
        &[
            "classify",
            "--model",
            "m",
            "--frames",
            "f",
            "--capacity",
            "4",
        ],
        2,
    );
    assert!(error.contains("--stream"), "{error}");
    let error = fails(
        &[
            "classify", "--model", "m", "--frames", "f", "--format", "xml",
        ],
        2,
    );
    assert!(error.contains("xml") && error.contains("json"), "{error}");
}
