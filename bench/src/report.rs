//! Turns [`Results`] into the printed tables, the target verdicts and the
//! JSON file.
//!
//! Why separate from measuring: the numbers are taken once and read three
//! ways (terminal, `--json` for tooling, the plot); keeping the formatting
//! here keeps [`crate::prefill`] about what is measured and how.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::prefill::{Impl, Measurement, Results};

fn find<'a>(results: &'a Results, shape: &str, n: usize, imp: Impl) -> Option<&'a Measurement> {
    results
        .measurements
        .iter()
        .find(|m| m.shape == shape && m.n == n && m.imp == imp)
}

/// `numerator` time over `denominator` time (how many times faster the
/// denominator's implementation is), when both were measured.
fn speedup(results: &Results, shape: &str, n: usize, slow: Impl, fast: Impl) -> Option<f64> {
    Some(find(results, shape, n, slow)?.median_ms / find(results, shape, n, fast)?.median_ms)
}

fn ratio_cell(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{x:.1}x"))
}

/// The (shape, N) pairs measured, in run order.
fn cases(results: &Results) -> Vec<(&'static str, usize)> {
    let mut cases: Vec<(&'static str, usize)> = Vec::new();
    for m in &results.measurements {
        if !cases.contains(&(m.shape, m.n)) {
            cases.push((m.shape, m.n));
        }
    }
    cases
}

/// All tables and verdicts as text.
pub(crate) fn render(results: &Results) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "== prefill (release, one thread; edges = all query heads) =="
    );
    let _ = writeln!(
        w,
        "{:<6} {:>5}  {:<12} {:>11} {:>9} {:>8} {:>12}",
        "shape", "N", "impl", "median ms", "GFLOP/s", "ns/edge", "edges"
    );
    for m in &results.measurements {
        let _ = writeln!(
            w,
            "{:<6} {:>5}  {:<12} {:>11.3} {:>9.2} {:>8.3} {:>12}",
            m.shape,
            m.n,
            m.imp.name(),
            m.median_ms,
            m.gflops(),
            m.ns_per_edge(),
            m.edges
        );
    }

    match results.peak {
        Some(peak) => {
            let _ = writeln!(
                w,
                "this core's peak (measured: {} fused multiply-adds in registers): {:.1} GFLOP/s",
                peak.isa, peak.gflops
            );
        }
        None => {
            let _ = writeln!(
                w,
                "this core's peak: not measured (only x86-64 AVX2/AVX-512 is)"
            );
        }
    }

    let _ = writeln!(w, "\n== speedups (time ratio, same run) ==");
    let _ = writeln!(
        w,
        "{:<6} {:>5}  {:>15} {:>15} {:>21}",
        "shape", "N", "sparse/ruvllm", "sparse/dense", "dense/ruvllm-dense"
    );
    for (shape, n) in cases(results) {
        let _ = writeln!(
            w,
            "{:<6} {:>5}  {:>15} {:>15} {:>21}",
            shape,
            n,
            ratio_cell(speedup(results, shape, n, Impl::Ruvllm, Impl::Sparse)),
            ratio_cell(speedup(results, shape, n, Impl::Dense, Impl::Sparse)),
            ratio_cell(speedup(results, shape, n, Impl::RuvllmDense, Impl::Dense)),
        );
    }

    let _ = writeln!(
        w,
        "\n== sparse edge counts, per query head (ours: SparsePattern::edge_count; \
         ruvllm: estimate_sparse_edges) =="
    );
    let _ = writeln!(
        w,
        "{:<6} {:>5}  {:>12} {:>12}",
        "shape", "N", "ours", "ruvllm"
    );
    for e in &results.edges {
        let _ = writeln!(
            w,
            "{:<6} {:>5}  {:>12} {:>12}",
            e.shape, e.n, e.ours, e.theirs
        );
    }

    let _ = writeln!(
        w,
        "\n== peak extra heap of our sparse prefill (beyond its output) =="
    );
    let _ = writeln!(
        w,
        "{:<6} {:>5}  {:>12} {:>12} {:>8}",
        "shape", "N", "extra bytes", "q+k+v bytes", "% qkv"
    );
    for m in &results.memory {
        let _ = writeln!(
            w,
            "{:<6} {:>5}  {:>12} {:>12} {:>7.2}%",
            m.shape,
            m.n,
            m.extra_bytes,
            m.qkv_bytes,
            100.0 * m.extra_bytes as f64 / m.qkv_bytes as f64
        );
    }

    if !results.agreement.is_empty() {
        let _ = writeln!(
            w,
            "\n== cross-check: our dense vs ruvllm dense_attention =="
        );
        for a in &results.agreement {
            let _ = writeln!(
                w,
                "{:<6} {:>5}  max-abs {:.2e}",
                a.shape, a.n, a.dense_max_abs
            );
        }
    }

    let _ = writeln!(w, "\n== targets ==");
    for line in verdicts(results) {
        let _ = writeln!(w, "{line}");
    }
    for note in &results.notes {
        let _ = writeln!(w, "note: {note}");
    }
    s
}

/// One line per target of the brief: measured value and MET / MISSED /
/// not measured.
fn verdicts(results: &Results) -> Vec<String> {
    let mut lines = Vec::new();
    let mut ratio = |label: &str, value: Option<f64>, bar: f64| {
        lines.push(match value {
            Some(x) => format!(
                "{} {label}: {x:.1}x (target >= {bar}x)",
                if x >= bar { "MET   " } else { "MISSED" }
            ),
            None => format!("-      {label}: not measured in this run"),
        });
    };
    let n = 4096;
    ratio(
        "A-mha N=4096 sparse vs ruvllm sparse",
        speedup(results, "A-mha", n, Impl::Ruvllm, Impl::Sparse),
        10.0,
    );
    ratio(
        "A-mqa N=4096 sparse vs ruvllm sparse",
        speedup(results, "A-mqa", n, Impl::Ruvllm, Impl::Sparse),
        15.0,
    );
    ratio(
        "B     N=4096 sparse vs ruvllm sparse",
        speedup(results, "B", n, Impl::Ruvllm, Impl::Sparse),
        15.0,
    );
    ratio(
        "A-mha N=4096 our dense vs ruvllm dense_attention",
        speedup(results, "A-mha", n, Impl::RuvllmDense, Impl::Dense),
        10.0,
    );
    match find(results, "A-mha", n, Impl::Sparse) {
        Some(m) => lines.push(format!(
            "{} A-mha N=4096 sparse throughput: {:.1} GFLOP/s (target >= 50){}",
            if m.gflops() >= 50.0 {
                "MET   "
            } else {
                "MISSED"
            },
            m.gflops(),
            of_peak(results, m.gflops())
        )),
        None => lines.push("-      A-mha N=4096 sparse throughput: not measured".to_string()),
    }
    let worst = results
        .memory
        .iter()
        .map(|m| (100.0 * m.extra_bytes as f64 / m.qkv_bytes as f64, m))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let large = results
        .memory
        .iter()
        .filter(|m| m.n >= 4096)
        .map(|m| 100.0 * m.extra_bytes as f64 / m.qkv_bytes as f64)
        .fold(0.0f64, f64::max);
    if let Some((pct, m)) = worst {
        lines.push(format!(
            "{} peak extra heap, N >= 4096: at most {large:.2}% of q+k+v (target <= 5%); \
             worst over all N: {pct:.2}% ({} N={})",
            if large <= 5.0 { "MET   " } else { "MISSED" },
            m.shape,
            m.n
        ));
    }
    lines
}

/// `"; x % of this core's peak"` (with our dense kernel's share beside it
/// when it ran), or nothing when the peak was not measured.
fn of_peak(results: &Results, gflops: f64) -> String {
    let Some(peak) = results.peak else {
        return String::new();
    };
    let dense = find(results, "A-mha", 4096, Impl::Dense)
        .map(|d| format!(", dense {:.0} %", 100.0 * d.gflops() / peak.gflops))
        .unwrap_or_default();
    format!(
        "; {:.0} % of this core's peak {:.0} GFLOP/s{dense}",
        100.0 * gflops / peak.gflops,
        peak.gflops
    )
}

/// The `--json` document: one object per measurement, then the core's
/// peak (`{"bench":"peak","isa":…,"gflops":…}`) when it was measured.
pub(crate) fn json(results: &Results) -> Value {
    Value::Array(
        results
            .measurements
            .iter()
            .map(|m| {
                json!({
                    "bench": "prefill",
                    "shape": m.shape,
                    "n": m.n,
                    "impl": m.imp.name(),
                    "median_ms": m.median_ms,
                    "gflops": m.gflops(),
                    "edges": m.edges,
                })
            })
            .chain(results.peak.map(|peak| {
                json!({
                    "bench": "peak",
                    "isa": peak.isa,
                    "gflops": peak.gflops,
                })
            }))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prefill::Memory;

    fn sample() -> Results {
        let m = |imp, ms| Measurement {
            shape: "A-mha",
            n: 4096,
            imp,
            median_ms: ms,
            edges: 1_000_000,
            head_dim: 32,
        };
        Results {
            measurements: vec![
                m(Impl::Sparse, 2.0),
                m(Impl::Ruvllm, 30.0),
                m(Impl::Dense, 10.0),
            ],
            memory: vec![Memory {
                shape: "A-mha",
                n: 4096,
                extra_bytes: 10,
                qkv_bytes: 1000,
            }],
            peak: Some(crate::peak::Peak {
                isa: "avx512",
                gflops: 256.0,
            }),
            ..Results::default()
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let value = json(&sample());
        let first = &value.as_array().unwrap()[0];
        assert_eq!(first["bench"], "prefill");
        assert_eq!(first["shape"], "A-mha");
        assert_eq!(first["n"], 4096);
        assert_eq!(first["impl"], "sparse");
        assert_eq!(first["median_ms"], 2.0);
        assert_eq!(first["edges"], 1_000_000);
        assert!((first["gflops"].as_f64().unwrap() - 64.0).abs() < 1e-9);
        let last = value.as_array().unwrap().last().unwrap();
        assert_eq!(last["bench"], "peak");
        assert_eq!(last["isa"], "avx512");
        assert_eq!(last["gflops"], 256.0);
    }

    #[test]
    fn verdicts_compare_against_the_bars() {
        let text = render(&sample());
        assert!(text.contains("MET    A-mha N=4096 sparse vs ruvllm sparse: 15.0x"));
        assert!(text.contains("MET    A-mha N=4096 sparse throughput: 64.0 GFLOP/s"));
        // 64 of 256 GFLOP/s; dense 10 ms for the same edges: 12.8 GFLOP/s.
        assert!(text.contains("; 25 % of this core's peak 256 GFLOP/s, dense 5 %"));
        assert!(text.contains("this core's peak (measured: avx512"));
        assert!(text.contains("not measured in this run"));
        assert!(text.contains("1.00% of q+k+v"));
    }
}
