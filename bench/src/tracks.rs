//! Many tracks on many cores: `Tracks::step` one track after another
//! against `Tracks::step_many` on a rayon pool, in one run, plus the
//! memory traffic of one step.
//!
//! Why it exists: a host following many people is throughput-bound, and
//! the tracks share nothing, so steps should scale with cores until memory
//! bandwidth stops them. The ratio of the two figures is what the
//! many-cores target reads, so both are measured here, in alternating
//! rounds on the same caches (the machine is shared; alternating spreads
//! its noise over both). The bytes a step touches say where bandwidth
//! ends that scaling (`docs/performance.md`).

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use aether_domain::{CacheDtype, CacheLayout, HeadConfig, SparsePattern, Tensor};
use aether_engine::Backend;
use aether_engine::tracks::{TrackStep, Tracks};
use serde_json::{Value, json};

use crate::inputs::random;
use crate::timing::{self, Repetitions};

const Q_HEADS: usize = 4;
const KV_HEADS: usize = 1;
const HEAD_DIM: usize = 32;
/// Distinct q/k/v tokens cycled through (generated before timing).
const POOL: usize = 64;
/// Rounds (one step per track) per timed repetition.
const ROUNDS: usize = 3;
/// Untimed rounds each method runs before its timed ones. Why: the
/// methods alternate, and a track's newest rows (its window, read by
/// every step) sit in the caches of the core that last stepped it; on a
/// machine whose cores do not share a last-level cache (a VM's vCPUs on
/// two chiplets, say) the first round after a switch pays for moving
/// them, which a host that keeps one method never does.
const SETTLE: usize = 1;

/// How the section runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// `--quick`: fewer, shorter tracks and fewer repetitions.
    pub(crate) quick: bool,
}

impl Plan {
    /// `(tracks, tokens per track when timing starts)`: the full run is the
    /// decode section's 1,000 people with ~3,000-token caches.
    const fn size(self) -> (usize, usize) {
        if self.quick {
            (500, 2000)
        } else {
            (1000, 3000)
        }
    }

    const fn repetitions(self) -> Repetitions {
        if self.quick {
            Repetitions {
                warm_up: 1,
                measured: 5,
            }
        } else {
            Repetitions {
                warm_up: 1,
                measured: 9,
            }
        }
    }
}

/// Steps per second with `threads` threads (1: the serial `Tracks::step`
/// loop).
#[derive(Debug, Clone)]
struct Throughput {
    threads: usize,
    method: &'static str,
    steps_per_s: f64,
}

/// Everything the tracks section measured.
#[derive(Debug, Default)]
pub(crate) struct Results {
    tracks: usize,
    tokens: usize,
    runs: Vec<Throughput>,
    /// Mean candidates (keys read) per timed step.
    candidates: f64,
    /// Bytes a timed step reads and writes (see [`bytes_per_step`]).
    bytes_per_step: f64,
}

fn config() -> HeadConfig {
    HeadConfig {
        q_heads: Q_HEADS,
        kv_heads: KV_HEADS,
        head_dim: HEAD_DIM,
        window: 32,
        block_size: 16,
        causal: true,
        global_tokens: vec![0],
        log_stride: true,
        landmarks: true,
        cache_dtype: CacheDtype::F32,
        ..HeadConfig::default_aether()
    }
}

/// The token pool: `(q, k, v)` per slot.
fn pool() -> Vec<(Tensor, Tensor, Tensor)> {
    (0..POOL as u64)
        .map(|p| {
            let t = |seed, heads| {
                Tensor::new(random(seed, heads * HEAD_DIM), 1, heads, HEAD_DIM).expect("shape")
            };
            (
                t(3 * p + 1, Q_HEADS),
                t(3 * p + 2, KV_HEADS),
                t(3 * p + 3, KV_HEADS),
            )
        })
        .collect()
}

/// One round: every track steps once, token slot `(id + n) % POOL`.
fn batch<'a>(
    tokens: &'a [(Tensor, Tensor, Tensor)],
    outs: &'a mut [Vec<f32>],
    n: usize,
) -> Vec<TrackStep<'a, usize>> {
    outs.iter_mut()
        .enumerate()
        .map(|(id, out)| {
            let (q, k, v) = &tokens[(id + n) % POOL];
            TrackStep {
                id,
                q: q.view(),
                k: k.view(),
                v: v.view(),
                out,
            }
        })
        .collect()
}

/// Bytes one step at cache length `t` moves, from the pattern's real
/// candidate count: each candidate's key and value row (`kv_heads ×
/// head_dim` elements each), the appended key and value, the query read
/// and the output written. The block sums a landmark reads are rows of
/// the same size and are among the candidates.
fn bytes_per_step(candidates: f64) -> f64 {
    let element = 4.0;
    let kv_row = (KV_HEADS * HEAD_DIM) as f64 * element;
    let q_row = (Q_HEADS * HEAD_DIM) as f64 * element;
    candidates * 2.0 * kv_row + 2.0 * kv_row + 2.0 * q_row
}

/// Runs the section.
pub(crate) fn run(plan: Plan) -> Results {
    let (n_tracks, tokens) = plan.size();
    let reps = plan.repetitions();
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let pools: Vec<(usize, rayon::ThreadPool)> = [1, threads]
        .into_iter()
        .map(|n| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .expect("thread pool");
            (n, pool)
        })
        .collect();
    let timed_rounds = (reps.warm_up + reps.measured) * (SETTLE + ROUNDS) * (1 + pools.len());
    let capacity = tokens + timed_rounds;
    let backend = Backend::from_config(config()).expect("valid config");
    let mut tracks: Tracks<Backend, usize> = Tracks::new(backend, capacity).expect("capacity");
    let token_pool = pool();
    let mut outs = vec![vec![0.0f32; Q_HEADS * HEAD_DIM]; n_tracks];
    for id in 0..n_tracks {
        tracks.open(id).expect("new id");
    }
    let fill = Instant::now();
    let (_, widest) = &pools[pools.len() - 1];
    for n in 0..tokens {
        let mut steps = batch(&token_pool, &mut outs, n);
        let results = widest.install(|| tracks.step_many(&mut steps));
        assert!(results.iter().all(Result::is_ok), "fill step");
    }
    eprintln!(
        "tracks_mt  {n_tracks} x {tokens} tokens filled in {:.1} s",
        fill.elapsed().as_secs_f64()
    );
    let mut n = tokens;
    let mut serial = Vec::new();
    let mut parallel: Vec<Vec<f64>> = vec![Vec::new(); pools.len()];
    for rep in 0..reps.warm_up + reps.measured {
        let keep = rep >= reps.warm_up;
        // The serial path: `Tracks::step`, one track after another.
        let serial_round =
            |tracks: &mut Tracks<Backend, usize>, outs: &mut [Vec<f32>], n: usize| {
                for (id, out) in outs.iter_mut().enumerate() {
                    let (q, k, v) = &token_pool[(id + n) % POOL];
                    tracks
                        .step(&id, q.view(), k.view(), v.view(), out)
                        .expect("step");
                }
            };
        for _ in 0..SETTLE {
            serial_round(&mut tracks, &mut outs, n);
            n += 1;
        }
        let start = Instant::now();
        for _ in 0..ROUNDS {
            serial_round(&mut tracks, &mut outs, n);
            n += 1;
        }
        black_box(&outs);
        if keep {
            serial.push(start.elapsed().as_secs_f64());
        }
        for ((_, pool), seconds) in pools.iter().zip(&mut parallel) {
            for _ in 0..SETTLE {
                let mut steps = batch(&token_pool, &mut outs, n);
                let results = pool.install(|| tracks.step_many(&mut steps));
                assert!(results.iter().all(Result::is_ok), "settling step");
                n += 1;
            }
            let start = Instant::now();
            for _ in 0..ROUNDS {
                let mut steps = batch(&token_pool, &mut outs, n);
                let results = pool.install(|| tracks.step_many(&mut steps));
                assert!(results.iter().all(Result::is_ok), "timed step");
                n += 1;
            }
            black_box(&outs);
            if keep {
                seconds.push(start.elapsed().as_secs_f64());
            }
        }
    }
    let steps = (ROUNDS * n_tracks) as f64;
    let mut runs = vec![Throughput {
        threads: 1,
        method: "step",
        steps_per_s: steps / timing::median(serial),
    }];
    for ((threads, _), seconds) in pools.iter().zip(parallel) {
        runs.push(Throughput {
            threads: *threads,
            method: "step_many",
            steps_per_s: steps / timing::median(seconds),
        });
    }
    for r in &runs {
        eprintln!(
            "tracks_mt  {:<9} {} thread(s) {:10.0} steps/s",
            r.method, r.threads, r.steps_per_s
        );
    }
    let pattern = SparsePattern::new(&config()).expect("valid config");
    let positions = tokens..n;
    let candidates = positions
        .clone()
        .map(|i| pattern.candidate_count(i, i + 1))
        .sum::<usize>() as f64
        / positions.len() as f64;
    Results {
        tracks: n_tracks,
        tokens,
        runs,
        candidates,
        bytes_per_step: bytes_per_step(candidates),
    }
}

/// The section's table and target verdict.
pub(crate) fn render(results: &Results) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "\n== many tracks, many cores (A-mqa f32, {} tracks x ~{} tokens, one step per track per round) ==",
        results.tracks, results.tokens
    );
    for r in &results.runs {
        let _ = writeln!(
            w,
            "{:<9} {:>2} thread(s): {:>10.0} steps/s ({:.2} us/step)",
            r.method,
            r.threads,
            r.steps_per_s,
            1e6 / r.steps_per_s
        );
    }
    let per_token = CacheLayout::of(&config()).bytes_per_token();
    let _ = writeln!(
        w,
        "bytes per step: {:.0} candidates x 2 rows x {} B + q/out/append = {:.0} B ({per_token} B cached per token)",
        results.candidates,
        KV_HEADS * HEAD_DIM * 4,
        results.bytes_per_step
    );
    let serial = results.runs.iter().find(|r| r.method == "step");
    let widest = results
        .runs
        .iter()
        .filter(|r| r.method == "step_many")
        .max_by_key(|r| r.threads);
    if let (Some(serial), Some(widest)) = (serial, widest) {
        let ratio = widest.steps_per_s / serial.steps_per_s;
        let bar = if widest.threads >= 2 { 1.8 } else { 1.0 };
        let verdict = if ratio >= bar { "MET" } else { "MISSED" };
        let _ = writeln!(
            w,
            "\n== tracks targets ==\n{verdict} step_many {} threads / serial step: {ratio:.2}x (target >= {bar}x); {:.2} GB/s of cache reads at that rate",
            widest.threads,
            widest.steps_per_s * results.bytes_per_step / 1e9
        );
    }
    s
}

/// The tracks rows of the `--json` document.
pub(crate) fn json(results: &Results) -> Vec<Value> {
    let runs = results.runs.iter().map(|r| {
        json!({
            "bench": "tracks_mt",
            "threads": r.threads,
            "method": r.method,
            "tracks": results.tracks,
            "tokens": results.tokens,
            "steps_per_s": r.steps_per_s,
        })
    });
    let bytes = (!results.runs.is_empty()).then(|| {
        json!({
            "bench": "tracks_bytes",
            "candidates_per_step": results.candidates,
            "bytes_per_step": results.bytes_per_step,
        })
    });
    runs.chain(bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_verdict() {
        let results = Results {
            tracks: 10,
            tokens: 100,
            runs: vec![
                Throughput {
                    threads: 1,
                    method: "step",
                    steps_per_s: 1e6,
                },
                Throughput {
                    threads: 2,
                    method: "step_many",
                    steps_per_s: 1.9e6,
                },
            ],
            candidates: 80.0,
            bytes_per_step: bytes_per_step(80.0),
        };
        let rows = json(&results);
        assert_eq!(rows[1]["bench"], "tracks_mt");
        assert_eq!(rows[1]["threads"], 2);
        assert_eq!(rows[2]["bytes_per_step"], 80.0 * 256.0 + 256.0 + 1024.0);
        assert!(render(&results).contains("MET step_many 2 threads"));
    }
}
