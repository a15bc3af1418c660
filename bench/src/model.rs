//! The whole-model benchmark: `TemporalModel::classify` (prefill) and
//! `TemporalModel::push` (streaming) of the default AETHER model with the
//! sparse and the dense backend.
//!
//! Why it exists: the attention section measures the kernels alone, but a
//! user runs the model — projections (x·Wq, x·Wk, x·Wv, ·Wo, the
//! classifier) around two attention layers. If the projections are slow
//! they cap the whole-model sparse/dense ratio far below the attention
//! ratio and dominate the per-frame streaming cost; these rows show both.
//! The model is the bundled `adapters/cli/assets/default.rvne`, compiled
//! in, so the rows follow whatever shape (version-2 options included) the
//! CLI ships.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use aether_domain::{BackendKind, HeadConfig};
use aether_engine::Backend;
use aether_model::{ModelShape, ModelWeights, TemporalModel};
use aether_rvne::RvneBlob;
use serde_json::{Value, json};

use crate::inputs::random;
use crate::timing::{self, Repetitions};

/// Window lengths of the prefill rows.
const LENGTHS: [usize; 3] = [256, 1024, 4096];
/// Frames pushed in a streaming run (the stream's capacity too).
const STREAM_FRAMES: usize = 4096;

/// The model the CLI ships.
const DEFAULT_RVNE: &[u8] = include_bytes!("../../adapters/cli/assets/default.rvne");

/// The bundled model's weights.
fn weights() -> ModelWeights {
    RvneBlob::parse(DEFAULT_RVNE)
        .and_then(|blob| blob.to_weights())
        .expect("the bundled default.rvne is valid")
}

/// How the section runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// `--quick`: fewer repetitions.
    pub(crate) quick: bool,
}

/// One prefill measurement.
#[derive(Debug, Clone)]
struct Prefill {
    n: usize,
    imp: &'static str,
    ms: f64,
}

/// One streaming measurement.
#[derive(Debug, Clone)]
struct Stream {
    imp: &'static str,
    frames: usize,
    us_per_frame: f64,
}

/// Everything the model section measured.
#[derive(Debug, Default)]
pub(crate) struct Results {
    /// The measured model's shape.
    shape: Option<ModelShape>,
    prefill: Vec<Prefill>,
    stream: Vec<Stream>,
}

/// The default model over `kind`'s backend.
fn model(kind: BackendKind) -> TemporalModel<Backend> {
    let weights = weights();
    let backend = Backend::from_config(HeadConfig {
        backend: kind,
        ..HeadConfig::default_aether()
    })
    .expect("valid config");
    TemporalModel::new(weights, backend).expect("matching heads")
}

const IMPLS: [(&str, BackendKind); 2] = [
    ("sparse", BackendKind::Sparse),
    ("dense", BackendKind::Dense),
];

/// Runs the section.
pub(crate) fn run(plan: Plan) -> Results {
    let shape = weights().shape();
    let mut results = Results {
        shape: Some(shape),
        ..Results::default()
    };
    // Values around 1 like the synthetic frames the model was trained on.
    let frames: Vec<f32> = random(11, STREAM_FRAMES * shape.input_dim)
        .into_iter()
        .map(|v| 1.0 + 0.5 * v)
        .collect();
    for (imp, kind) in IMPLS {
        let model = model(kind);
        for n in LENGTHS {
            let reps = match (plan.quick, n) {
                (true, 4096) => Repetitions {
                    warm_up: 1,
                    measured: 3,
                },
                (true, _) => Repetitions {
                    warm_up: 1,
                    measured: 5,
                },
                (false, _) => Repetitions {
                    warm_up: 2,
                    measured: 11,
                },
            };
            let window = &frames[..n * shape.input_dim];
            let (ms, _) =
                timing::median_ms(reps, || model.classify(black_box(window)).expect("finite"));
            eprintln!("model  prefill n={n:>5} {imp:<6} {ms:9.3} ms");
            results.prefill.push(Prefill { n, imp, ms });
        }
        let reps = if plan.quick {
            Repetitions {
                warm_up: 1,
                measured: 3,
            }
        } else {
            Repetitions {
                warm_up: 1,
                measured: 7,
            }
        };
        let mut logits = vec![0.0f32; shape.n_classes];
        let mut stream = model.stream(STREAM_FRAMES).expect("capacity");
        let seconds = timing::median_seconds(reps, || {
            stream.clear();
            let start = Instant::now();
            for frame in frames.chunks_exact(shape.input_dim) {
                model.push(&mut stream, frame, &mut logits).expect("finite");
            }
            black_box(&logits);
            start.elapsed().as_secs_f64()
        });
        let us_per_frame = seconds * 1e6 / STREAM_FRAMES as f64;
        eprintln!("model  stream {STREAM_FRAMES} frames {imp:<6} {us_per_frame:7.3} us/frame");
        results.stream.push(Stream {
            imp,
            frames: STREAM_FRAMES,
            us_per_frame,
        });
    }
    results
}

fn find_prefill(results: &Results, n: usize, imp: &str) -> Option<f64> {
    results
        .prefill
        .iter()
        .find(|p| p.n == n && p.imp == imp)
        .map(|p| p.ms)
}

/// The section's table and target verdicts.
pub(crate) fn render(results: &Results) -> String {
    let mut s = String::new();
    let w = &mut s;
    let shape = results.shape.map_or_else(String::new, |s| {
        format!(
            "D{} Hq{} Hkv{} d{} L{} C{} {:?}",
            s.input_dim, s.n_q_heads, s.n_kv_heads, s.head_dim, s.n_layers, s.n_classes, s.options
        )
    });
    let _ = writeln!(w, "\n== whole model (bundled default.rvne: {shape}) ==");
    let _ = writeln!(
        w,
        "{:>6} {:>12} {:>12} {:>8}",
        "n", "sparse ms", "dense ms", "ratio"
    );
    for n in LENGTHS {
        let (s, d) = (
            find_prefill(results, n, "sparse"),
            find_prefill(results, n, "dense"),
        );
        let cell = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |x| format!("{x:.3}"));
        let ratio = s
            .zip(d)
            .map_or_else(|| "-".to_string(), |(s, d)| format!("{:.1}x", d / s));
        let _ = writeln!(w, "{n:>6} {:>12} {:>12} {ratio:>8}", cell(s), cell(d));
    }
    for r in &results.stream {
        let _ = writeln!(
            w,
            "stream {} frames {:<6} {:.3} us/frame",
            r.frames, r.imp, r.us_per_frame
        );
    }
    let _ = writeln!(w, "\n== model targets ==");
    let last = LENGTHS[LENGTHS.len() - 1];
    if let Some((s, d)) =
        find_prefill(results, last, "sparse").zip(find_prefill(results, last, "dense"))
    {
        let ratio = d / s;
        let verdict = if ratio >= 10.0 { "MET" } else { "MISSED" };
        let _ = writeln!(
            w,
            "{verdict} prefill n={last} dense / sparse: {ratio:.1}x (target >= 10x)"
        );
    }
    if let Some(r) = results.stream.iter().find(|r| r.imp == "sparse") {
        let verdict = if r.us_per_frame <= 1.2 {
            "MET"
        } else {
            "MISSED"
        };
        let _ = writeln!(
            w,
            "{verdict} sparse streaming: {:.3} us/frame (target <= 1.2)",
            r.us_per_frame
        );
    }
    s
}

/// The model rows of the `--json` document.
pub(crate) fn json(results: &Results) -> Vec<Value> {
    let prefill = results
        .prefill
        .iter()
        .map(|p| json!({"bench": "model", "mode": "prefill", "n": p.n, "impl": p.imp, "ms": p.ms}));
    let stream = results.stream.iter().map(|r| {
        json!({"bench": "model", "mode": "stream", "impl": r.imp, "frames": r.frames, "us_per_frame": r.us_per_frame})
    });
    prefill.chain(stream).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rows_have_the_documented_fields() {
        let results = Results {
            shape: None,
            prefill: vec![Prefill {
                n: 4096,
                imp: "sparse",
                ms: 1.5,
            }],
            stream: vec![Stream {
                imp: "sparse",
                frames: 4096,
                us_per_frame: 0.9,
            }],
        };
        let rows = json(&results);
        assert_eq!(rows[0]["mode"], "prefill");
        assert_eq!(rows[0]["n"], 4096);
        assert_eq!(rows[1]["mode"], "stream");
        assert_eq!(rows[1]["us_per_frame"], 0.9);
        assert!(render(&results).contains("us/frame"));
    }
}
