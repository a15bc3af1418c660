//! Helpers shared by the end-to-end tests: run the real `aether` binary,
//! check its exit status and its one-line errors, make models and frames,
//! and parse the text output.
// Each test file uses its own subset of these.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Bytes of the default AETHER f32 blob (`docs/model.md`, "The default shape").
pub(crate) const DEFAULT_BLOB_LEN: usize = 41_244;

/// Printed logits carry 7 decimals; streaming and prefill agree to 1e-5 in
/// the model (`docs/quality.md`), so printed values agree to that plus rounding.
pub(crate) const PRINTED_TOLERANCE: f32 = 1e-5;

/// A scratch directory for one test, removed when dropped.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("aether-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn aether(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aether"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run aether")
}

/// Runs `aether` with `input` on its standard input (written whole, then
/// closed).
pub(crate) fn aether_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aether"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run aether");
    let mut stdin = child.stdin.take().expect("piped stdin");
    // The child may exit before reading everything (a usage error): a
    // broken pipe here is its answer, not a test failure.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().expect("wait for aether")
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `aether`, asserts success, returns stdout.
pub(crate) fn ok(args: &[&str]) -> String {
    let output = aether(args);
    assert!(
        output.status.success(),
        "aether {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// Runs `aether`, asserts it fails with `code` and exactly one stderr line
/// starting with `error: `; returns that line.
pub(crate) fn fails(args: &[&str], code: i32) -> String {
    one_error(&aether(args), code, &format!("{args:?}"))
}

/// Asserts that `output` is a failure with `code` and exactly one stderr
/// line starting with `error: `; returns that line. `what` names the run.
pub(crate) fn one_error(output: &Output, code: i32, what: &str) -> String {
    assert_eq!(
        output.status.code(),
        Some(code),
        "aether {what}: stdout {} stderr {}",
        stdout(output),
        stderr(output)
    );
    let err = stderr(output);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    lines[0].to_owned()
}

pub(crate) fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// Writes the default blob to `dir/model.rvne`.
pub(crate) fn default_model(scratch: &Scratch) -> PathBuf {
    let path = scratch.path("model.rvne");
    ok(&["init", "--out", s(&path)]);
    path
}

/// `n` frames of 16 values, distinct and finite.
pub(crate) fn frames_csv(n: usize) -> String {
    let mut csv = String::from("# test frames\n");
    for t in 0..n {
        let row: Vec<String> = (0..16)
            .map(|f| format!("{:.3}", ((t * 16 + f) as f32 * 0.37).sin()))
            .collect();
        csv.push_str(&row.join(","));
        csv.push('\n');
        if t == 2 {
            csv.push_str("\n# a comment between frames\n");
        }
    }
    csv
}

/// A parsed output line: `argmax`, `margin` and `logits`.
pub(crate) struct Line {
    pub(crate) argmax: usize,
    pub(crate) margin: f32,
    pub(crate) logits: Vec<f32>,
}

/// Parses `... argmax A  margin M  logits [l0, l1, ...]`.
pub(crate) fn parse_line(line: &str) -> Line {
    let after = |key: &str| {
        let start = line
            .find(key)
            .unwrap_or_else(|| panic!("no {key} in {line}"))
            + key.len();
        line[start..].trim_start()
    };
    let word = |key: &str| {
        after(key)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned()
    };
    let logits = after("logits")
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|v| v.trim().parse().expect("logit"))
        .collect();
    Line {
        argmax: word("argmax").parse().expect("argmax"),
        margin: word("margin").parse().expect("margin"),
        logits,
    }
}

/// Output lines that are results, not `#` comments.
pub(crate) fn results(out: &str) -> Vec<&str> {
    out.lines().filter(|l| !l.starts_with('#')).collect()
}

pub(crate) fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
