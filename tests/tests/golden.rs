//! Golden files: the default `.rvne` blob, a fixed frame sequence and the
//! logits every backend gives for it.
//!
//! zerocopy's habit: checked-in outputs so an accidental change to the
//! format, the random init or the numerics shows up as a failing diff.
//! Update them only deliberately: `BLESS=1 cargo test -p aether-tests
//! --test golden` rewrites the files, and the diff goes through review.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aether_domain::{BackendKind, HeadConfig};
use aether_engine::Backend;
use aether_model::TemporalModel;
use aether_rvne::{DEFAULT_SEED, ElementType, Header, RvneBlob};
use aether_tests::{Rng, max_abs_diff};
use sha2::{Digest, Sha256};

/// SHA-256 of `golden/aether-default.rvne`: the default AETHER shape,
/// f32, random init with the default seed. Changing it is a format or
/// init change that every deployed blob would notice.
const DEFAULT_BLOB_SHA256: &str =
    "eea9b719f2ac9e02f5bfaddbe826e7b3451b8858d926cbac9120709751984643";

/// Logits differ between instruction sets (AVX-512, AVX2, portable) only by
/// summation order: a few ulp of values near 1. A real numeric change
/// (a candidate, a scale, a layer) moves them by far more than this.
const TOLERANCE: f32 = 1e-5;

const FRAMES: usize = 96;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(name)
}

fn blessing() -> bool {
    std::env::var_os("BLESS").is_some_and(|v| v == "1")
}

fn default_blob() -> RvneBlob {
    RvneBlob::random(Header::default_aether(ElementType::F32), DEFAULT_SEED).expect("default blob")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fixed frame sequence: 96 frames of 16 values in [-1, 1).
fn generated_frames() -> Vec<f32> {
    let mut rng = Rng::new(0x00F4_A3E5);
    (0..FRAMES * 16).map(|_| rng.next_f32()).collect()
}

fn read_frames() -> Vec<f32> {
    let text = std::fs::read_to_string(golden("frames.csv")).expect("golden/frames.csv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .flat_map(|l| {
            l.split(',')
                .map(|v| v.trim().parse::<f32>().expect("number"))
        })
        .collect()
}

fn logits_by_backend(blob: &RvneBlob, frames: &[f32]) -> BTreeMap<String, Vec<f32>> {
    let mut out = BTreeMap::new();
    for kind in [
        BackendKind::Sparse,
        BackendKind::Dense,
        BackendKind::Reference,
    ] {
        let config = HeadConfig {
            backend: kind,
            ..HeadConfig::default_aether()
        };
        let model = TemporalModel::new(
            blob.to_weights().unwrap(),
            Backend::from_config(config).unwrap(),
        )
        .unwrap();
        let prefill = model.classify(frames).unwrap();
        let mut stream = model.stream(FRAMES).unwrap();
        let mut streamed = vec![0.0; model.n_classes()];
        for frame in frames.chunks_exact(16) {
            model.push(&mut stream, frame, &mut streamed).unwrap();
        }
        assert!(
            max_abs_diff(&prefill, &streamed) <= TOLERANCE,
            "{kind:?}: streaming {streamed:?} vs prefill {prefill:?}"
        );
        out.insert(format!("{kind:?}").to_lowercase(), prefill);
    }
    out
}

fn bless() {
    std::fs::create_dir_all(golden("")).unwrap();
    let blob = default_blob();
    std::fs::write(golden("aether-default.rvne"), blob.as_bytes()).unwrap();
    let frames = generated_frames();
    let mut csv =
        String::from("# 96 frames x 16 values; written by `BLESS=1` from tests/golden.rs\n");
    for frame in frames.chunks_exact(16) {
        let row: Vec<String> = frame.iter().map(f32::to_string).collect();
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    std::fs::write(golden("frames.csv"), csv).unwrap();
    let logits = logits_by_backend(&blob, &frames);
    let json = serde_json::to_string_pretty(&logits).unwrap();
    std::fs::write(golden("logits.json"), json + "\n").unwrap();
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden.rs");
    let text = std::fs::read_to_string(&source).unwrap();
    let start = text.find("const DEFAULT_BLOB_SHA256: &str = \"").unwrap() + 35;
    let end = start + text[start..].find('"').unwrap();
    let text = format!(
        "{}{}{}",
        &text[..start],
        sha256_hex(blob.as_bytes()),
        &text[end..]
    );
    std::fs::write(&source, text).unwrap();
}

#[test]
fn golden_files_match() {
    if blessing() {
        bless();
    }
    let bytes = std::fs::read(golden("aether-default.rvne")).expect("golden blob");
    assert_eq!(bytes.len(), 41_244);
    if !blessing() {
        // (When blessing, the constant was rewritten in the source but this
        // binary still holds the old one; the next run checks it.)
        assert_eq!(
            sha256_hex(&bytes),
            DEFAULT_BLOB_SHA256,
            "golden blob changed"
        );
    }
    assert_eq!(
        default_blob().as_bytes(),
        bytes.as_slice(),
        "random init no longer reproduces the golden blob"
    );
    let blob = RvneBlob::parse(&bytes).expect("golden blob parses");

    let frames = read_frames();
    assert_eq!(frames, generated_frames(), "frames.csv round-trips exactly");
    let text = std::fs::read_to_string(golden("logits.json")).expect("golden logits");
    let expected: BTreeMap<String, Vec<f32>> = serde_json::from_str(&text).unwrap();
    let actual = logits_by_backend(&blob, &frames);
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>()
    );
    for (backend, logits) in &actual {
        let err = max_abs_diff(logits, &expected[backend]);
        assert!(
            err <= TOLERANCE,
            "{backend}: logits {logits:?} differ from golden {:?} by {err}",
            expected[backend]
        );
    }
    // N 96 > W 32: the sparse pattern is not dense attention, so the golden
    // logits of sparse and dense must differ (else the test proves nothing
    // about the pattern).
    assert!(max_abs_diff(&actual["sparse"], &actual["dense"]) > TOLERANCE);
    assert!(max_abs_diff(&actual["sparse"], &actual["reference"]) <= TOLERANCE);
}
