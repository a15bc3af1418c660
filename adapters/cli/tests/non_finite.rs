//! The `aether` binary on inputs that are finite but overflow f32, and on
//! blobs with non-finite weights: one `error:` line and exit 1 instead of
//! NaN logits with exit 0; `inspect` names the bad weight, warns about
//! weights large enough to overflow, and reads a blob from standard input.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use aether_rvne::{DEFAULT_SEED, ElementType, Header, MatrixKind, RvneBlob};

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "aether-cli-non-finite-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn aether(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aether"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run aether");
    if let Some(bytes) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(bytes)
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait for aether")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts exit 1 and exactly one stderr line, starting `error: `;
/// returns it.
fn fails(output: &Output, what: &str) -> String {
    let err = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{what}: stdout {} stderr {err}",
        text(&output.stdout)
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: {err}");
    assert!(lines[0].starts_with("error: "), "{what}: {err}");
    lines[0].to_owned()
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The weights `aether init` writes (default shape, f32, default seed).
fn init_weights() -> Vec<f32> {
    RvneBlob::random(Header::default_aether(ElementType::F32), DEFAULT_SEED)
        .unwrap()
        .to_f32_weights()
}

/// Writes a blob of `weights` with the format's own writer (valid CRC).
fn write_blob(path: &Path, weights: &[f32]) {
    RvneBlob::from_f32_weights(Header::default_aether(ElementType::F32), weights)
        .unwrap()
        .write_file(path)
        .unwrap();
}

/// Body index of `[row][col]` of layer 0's Wq.
fn wq0(row: usize, col: usize) -> usize {
    let span = Header::default_aether(ElementType::F32)
        .layout()
        .unwrap()
        .matrix(0, MatrixKind::Query)
        .unwrap();
    span.offset + row * span.cols + col
}

/// `n` frames of 16 copies of `value`.
fn constant_csv(path: &Path, value: &str, n: usize) {
    let line = vec![value; 16].join(",");
    std::fs::write(path, format!("{}\n", vec![line; n].join("\n"))).unwrap();
}

/// `aether classify --model M --frames F` plus `extra`.
fn classify(model: &Path, frames: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["classify", "--model", s(model), "--frames", s(frames)];
    args.extend_from_slice(extra);
    aether(&args, None)
}

/// Frames of 3e38 overflow the model itself, whatever the backend: before,
/// `classify` printed `logits [NaN, NaN, NaN, NaN]` and exited 0.
#[test]
fn classify_fails_on_frames_that_overflow() {
    let scratch = Scratch::new("big");
    let model = scratch.path("m.rvne");
    write_blob(&model, &init_weights());
    let frames = scratch.path("big.csv");
    constant_csv(&frames, "3e38", 3);
    for mode in [&[][..], &["--stream"][..]] {
        let output = classify(&model, &frames, mode);
        let line = fails(&output, &format!("{mode:?}"));
        assert!(
            line.contains("frame 0: layer 0 query projection x·Wq is not finite"),
            "{mode:?}: {line}"
        );
        assert!(line.contains("big.csv"), "{line}");
        assert!(!text(&output.stdout).contains("NaN"), "{mode:?}");
    }
}

/// An overflow in the middle of the input names the failing frame once, by
/// its number in the input and its CSV line, whether the frames are
/// classified in segments or streamed (the model numbers frames within
/// the span it was given; the CLI renumbers them).
#[test]
fn an_overflow_names_its_frame_and_line_once() {
    let scratch = Scratch::new("mid");
    let model = scratch.path("m.rvne");
    write_blob(&model, &init_weights());
    let frames = scratch.path("mid.csv");
    let unit = vec!["0.5"; 16].join(",");
    let huge = vec!["3e38"; 16].join(",");
    let text_in = format!(
        "# five unit frames, then an overflowing one\n{unit}\n{unit}\n{unit}\n{unit}\n{unit}\n{huge}\n"
    );
    std::fs::write(&frames, text_in).unwrap();
    for mode in [&["--segment", "2"][..], &["--stream"][..], &[][..]] {
        let line = fails(&classify(&model, &frames, mode), &format!("{mode:?}"));
        assert!(
            line.contains("mid.csv:7: frame 5: layer 0 query projection"),
            "{mode:?}: {line}"
        );
        assert_eq!(line.matches("frame").count(), 1, "{mode:?}: {line}");
    }
}

/// Whatever the frames' scale, `classify` prints finite logits or fails
/// with one line naming the layer — never NaN with exit 0. (Before: 1e18
/// gave NaN logits from the sparse prefill, 3e38 from every backend.)
#[test]
fn classify_never_prints_nan_logits() {
    let scratch = Scratch::new("e18");
    let model = scratch.path("m.rvne");
    write_blob(&model, &init_weights());
    for value in ["1e18", "1e30", "1e38", "3e38"] {
        let frames = scratch.path("big.csv");
        constant_csv(&frames, value, 3);
        for mode in [&[][..], &["--stream"][..]] {
            let output = classify(&model, &frames, mode);
            let out = text(&output.stdout);
            if output.status.success() {
                assert!(
                    !out.contains("NaN") && !out.contains("inf"),
                    "{value} {mode:?}: {out}"
                );
            } else {
                let line = fails(&output, value);
                assert!(line.contains("layer "), "{value} {mode:?}: {line}");
            }
        }
    }
}

/// A blob with a valid CRC and one weight of 3e38: a frame value of 2
/// meets it in the first product.
#[test]
fn classify_fails_on_a_huge_weight() {
    let scratch = Scratch::new("weight");
    let model = scratch.path("huge.rvne");
    let mut weights = init_weights();
    weights[wq0(0, 5)] = 3e38;
    write_blob(&model, &weights);
    let frames = scratch.path("frames.csv");
    std::fs::write(
        &frames,
        "0.5,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.1,0.2,0.3,0.4,0.5,0.6\n\
         2,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.1,0.2,0.3,0.4,0.5,0.6\n",
    )
    .unwrap();
    for mode in [&[][..], &["--stream"][..]] {
        let output = classify(&model, &frames, mode);
        let line = fails(&output, &format!("{mode:?}"));
        assert!(
            line.contains("frame 1: layer 0 query projection x·Wq is not finite"),
            "{mode:?}: {line}"
        );
    }
}

/// The format allows a NaN weight (the CRC is valid); `inspect` reports the
/// file, shows the NaN in its matrix's line, and fails naming the matrix,
/// row, column and body index. Before, it exited 0 and the range line
/// showed the finite weights only.
#[test]
fn inspect_fails_on_a_nan_weight() {
    let scratch = Scratch::new("nan");
    let model = scratch.path("nan.rvne");
    let index = wq0(3, 7);
    let mut bytes = RvneBlob::random(Header::default_aether(ElementType::F32), DEFAULT_SEED)
        .unwrap()
        .into_bytes();
    let at = 24 + index * 4;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let body = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&model, &bytes).unwrap();

    let output = aether(&["inspect", s(&model)], None);
    let line = fails(&output, "inspect");
    assert!(
        line.contains(&format!(
            "weight {index} of the blob (layer 0 Wq row 3, col 7) is NaN"
        )),
        "{line}"
    );
    assert!(line.contains("nan.rvne"), "{line}");
    let report = text(&output.stdout);
    let wq_line = report
        .lines()
        .find(|l| l.trim_start().starts_with("layer 0 Wq"))
        .unwrap_or_else(|| panic!("no layer 0 Wq line in\n{report}"));
    assert!(wq_line.contains("NaN at [3][7]"), "{wq_line}");
    assert!(
        report.contains(&format!(
            "1 NaN or infinite; the first is NaN at layer 0 Wq [3][7] (body index {index})"
        )),
        "{report}"
    );
    // classify refuses the same weight with the same words.
    let frames = scratch.path("frames.csv");
    constant_csv(&frames, "0.5", 2);
    let output = aether(
        &["classify", "--model", s(&model), "--frames", s(&frames)],
        None,
    );
    let line = fails(&output, "classify");
    assert!(line.contains("(layer 0 Wq row 3, col 7) is NaN"), "{line}");
}

/// Finite weights large enough that near-unit-scale frames can overflow
/// f32: a warning naming the first matrix where they can, the frame scale
/// that suffices, and the weight responsible; exit 0. The `init` model and
/// one with a merely large weight (1e30: frames would need ~1e8) get none.
#[test]
fn inspect_warns_about_weights_that_can_overflow() {
    let scratch = Scratch::new("warn");
    let model = scratch.path("huge.rvne");
    let layout = Header::default_aether(ElementType::F32).layout().unwrap();
    let wv0 = layout.matrix(0, MatrixKind::Value).unwrap().offset;
    let wc = layout.classifier().offset;
    let cases = [
        // The blob: one weight of 3e38. A frame value of 1.14
        // multiplies it past f32::MAX in x·Wq.
        (
            vec![(wq0(0, 5), 3e38)],
            "warning: layer 0 Wq: frames with values of magnitude 1.13 or more can overflow",
            "largest |weight| in the blob is 3.0e38 at layer 0 Wq [0][5]",
        ),
        (
            vec![(wv0 + 2 * 32 + 4, -3e38)],
            "warning: layer 0 Wv: frames with values of magnitude 1.13 or more",
            "largest |weight| in the blob is -3.0e38 at layer 0 Wv [2][4]",
        ),
        // 1e36 in Wc: x·Wc alone is fine for unit frames, but the residual
        // stream entering it is ~300x the frame scale.
        (
            vec![(wc + 7 * 4 + 2, 1e36)],
            "warning: classifier Wc: frames with values of magnitude ",
            "largest |weight| in the blob is 1.0e36 at classifier Wc [7][2]",
        ),
    ];
    for (patch, start, culprit) in cases {
        let mut weights = init_weights();
        for (index, value) in patch {
            weights[index] = value;
        }
        write_blob(&model, &weights);
        let output = aether(&["inspect", s(&model)], None);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let report = text(&output.stdout);
        let warnings: Vec<&str> = report
            .lines()
            .filter(|l| l.starts_with("warning: "))
            .collect();
        assert_eq!(warnings.len(), 1, "{report}");
        assert!(warnings[0].starts_with(start), "{report}");
        assert!(warnings[0].contains(culprit), "{report}");
        assert!(
            report.contains("status      ok: passes all 8 format checks (1 warning)"),
            "{report}"
        );
    }

    for (name, patch) in [("init", None), ("large", Some((wq0(0, 5), 1e30f32)))] {
        let mut weights = init_weights();
        if let Some((index, value)) = patch {
            weights[index] = value;
        }
        write_blob(&model, &weights);
        let output = aether(&["inspect", s(&model)], None);
        assert!(output.status.success());
        let report = text(&output.stdout);
        assert!(!report.contains("warning"), "{name}: {report}");
        assert!(
            report.contains("status      ok: passes all 8 format checks\n"),
            "{report}"
        );
    }
}

/// `inspect -` reads the blob from standard input, with the same checks.
#[test]
fn inspect_reads_standard_input() {
    let blob = RvneBlob::random(Header::default_aether(ElementType::F32), DEFAULT_SEED).unwrap();
    let output = aether(&["inspect", "-"], Some(blob.as_bytes()));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report = text(&output.stdout);
    assert!(report.contains("file        <stdin>"), "{report}");
    assert!(report.contains("computed 0x11A85B0D: ok"), "{report}");

    let mut corrupt = blob.into_bytes();
    corrupt[1000] ^= 1;
    let output = aether(&["inspect", "-"], Some(&corrupt));
    let line = fails(&output, "corrupt stdin");
    assert!(
        line.contains("<stdin>: not a valid .rvne blob: check 6 of 8 (CRC) failed"),
        "{line}"
    );
}
