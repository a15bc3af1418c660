//! The decode benchmark: streaming steps on a cache already holding T
//! tokens, ours (`SparseBackend::step_into`) against ruvllm's
//! `decode_step` / `decode_step_f16`, plus the throughput of many
//! concurrent tracks.
//!
//! Why it exists: `docs/quality.md` asks for decode-step time at T = 16384
//! against T = 256 (a flat line is the `O(log T)` claim), bytes per cached
//! token for f32 and f16, and the comparison with the published crate. Both
//! sides get shape A (4 query heads, dim 32, window 32, block 16, causal,
//! global token 0, log-stride, landmarks) as MHA and MQA, a cache filled
//! with the same random tokens, and the same per-step work: append the new
//! token's k/v, then attend from it.
//!
//! How a step is timed ([`Method`]): a step is about a microsecond, so
//! each repetition times [`STEPS`] consecutive steps (T grows by at most
//! that much) and the median repetition's mean is reported. The headline
//! method is a **streak**: every repetition fills a fresh cache to T
//! (untimed), then times consecutive steps on it, as a real stream runs.
//! The earlier method, a **cloned** copy of one filled cache per
//! repetition, is kept beside it for our kernel, labelled: the copy
//! leaves the whole cache freshly written in the CPU caches, so it hides
//! the misses on the far log-stride rows that a long stream takes, and
//! reported about 1.25x from T = 256 to 16384 where a streak showed
//! 1.5-2.2x.
//!
//! The tracks figure is the realistic host load: 1,000 people followed at
//! once, each with a ~3,000-token cache, one step per track round-robin,
//! so every step starts with that track's cache cold.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use aether_domain::{
    AttentionBackend, CacheDtype, CacheLayout, HeadConfig, KvCache, SparsePattern, Tensor,
};
use aether_engine::Backend;
use aether_engine::tracks::Tracks;
use aether_sparse::SparseBackend;
use ruvllm_sparse_attention::{
    KvCache as RuvllmCache, KvCacheF16 as RuvllmCacheF16, SparseAttentionConfig,
    SubquadraticSparseAttention, Tensor3,
};
use serde_json::{Value, json};

use crate::inputs::random;
use crate::timing::{self, Repetitions};

/// Cache lengths measured.
const LENGTHS: [usize; 4] = [256, 1024, 4096, 16384];
/// Steps timed per repetition.
const STEPS: usize = 256;
/// Distinct q/k/v tokens cycled through (generated before timing).
const POOL: usize = 64;
/// Concurrent tracks in the throughput run.
const TRACKS: usize = 1000;
/// Tokens each track holds when its timed steps start.
const TRACK_TOKENS: usize = 3000;

/// One decode shape: shape A as MHA or MQA.
#[derive(Debug, Clone, Copy)]
struct Shape {
    name: &'static str,
    kv_heads: usize,
}

const SHAPES: [Shape; 2] = [
    Shape {
        name: "A-mha",
        kv_heads: 4,
    },
    Shape {
        name: "A-mqa",
        kv_heads: 1,
    },
];

const Q_HEADS: usize = 4;
const HEAD_DIM: usize = 32;
const WINDOW: usize = 32;
const BLOCK: usize = 16;

impl Shape {
    fn config(self, dtype: CacheDtype) -> HeadConfig {
        HeadConfig {
            q_heads: Q_HEADS,
            kv_heads: self.kv_heads,
            head_dim: HEAD_DIM,
            window: WINDOW,
            block_size: BLOCK,
            causal: true,
            global_tokens: vec![0],
            log_stride: true,
            landmarks: true,
            cache_dtype: dtype,
            ..HeadConfig::default_aether()
        }
    }

    fn ruvllm(self) -> SubquadraticSparseAttention {
        SubquadraticSparseAttention::new(SparseAttentionConfig {
            window: WINDOW,
            block_size: BLOCK,
            global_tokens: vec![0],
            causal: true,
            use_log_stride: true,
            use_landmarks: true,
            sort_candidates: false,
        })
        .expect("valid config")
    }
}

/// Name of a cache element type in tables and JSON.
const fn dtype_name(dtype: CacheDtype) -> &'static str {
    match dtype {
        CacheDtype::F32 => "f32",
        CacheDtype::F16 => "f16",
    }
}

/// How a decode step time was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// Each repetition fills a fresh cache to T (untimed), then times
    /// [`STEPS`] consecutive steps on it: a real stream.
    Streak,
    /// One cache filled to T, cloned per repetition (untimed), then
    /// [`STEPS`] consecutive steps timed on the clone. The copy leaves the
    /// cache freshly written in the CPU caches; kept for comparison.
    Cloned,
}

impl Method {
    /// Name in tables and JSON.
    const fn name(self) -> &'static str {
        match self {
            Self::Streak => "streak",
            Self::Cloned => "cloned",
        }
    }
}

/// One measured (shape, T, implementation, dtype, method).
#[derive(Debug, Clone)]
pub(crate) struct Step {
    shape: &'static str,
    t: usize,
    imp: &'static str,
    dtype: CacheDtype,
    method: Method,
    us_per_step: f64,
}

/// Steps per second over many tracks.
#[derive(Debug, Clone)]
pub(crate) struct TracksRun {
    tracks: usize,
    tokens: usize,
    dtype: CacheDtype,
    steps_per_s: f64,
}

/// Everything the decode section measured.
#[derive(Debug, Default)]
pub(crate) struct Results {
    steps: Vec<Step>,
    tracks: Vec<TracksRun>,
    /// `(shape, dtype, bytes)` from `CacheLayout::bytes_per_token`.
    bytes_per_token: Vec<(&'static str, CacheDtype, usize)>,
    /// `(shape, T, mean candidates per timed step)`.
    candidates: Vec<(&'static str, usize, f64)>,
    notes: Vec<String>,
}

/// How much to run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// `--quick`: fewer repetitions, f32 tracks only.
    pub(crate) quick: bool,
}

impl Plan {
    const fn repetitions(self) -> Repetitions {
        if self.quick {
            Repetitions {
                warm_up: 1,
                measured: 11,
            }
        } else {
            Repetitions {
                warm_up: 2,
                measured: 15,
            }
        }
    }
}

/// A pool of single tokens in both crates' tensor types.
struct Tokens {
    q: Vec<Tensor>,
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    rq: Vec<Tensor3>,
    rk: Vec<Tensor3>,
    rv: Vec<Tensor3>,
}

impl Tokens {
    fn new(kv_heads: usize, seed: u64) -> Self {
        let make = |salt: u64, heads: usize| -> Vec<Vec<f32>> {
            (0..POOL)
                .map(|n| random(seed * 1000 + salt * 100 + n as u64, heads * HEAD_DIM))
                .collect()
        };
        let (q, k, v) = (make(1, Q_HEADS), make(2, kv_heads), make(3, kv_heads));
        let ours = |rows: &[Vec<f32>], heads| -> Vec<Tensor> {
            rows.iter()
                .map(|r| Tensor::new(r.clone(), 1, heads, HEAD_DIM).expect("shape"))
                .collect()
        };
        let theirs = |rows: &[Vec<f32>], heads| -> Vec<Tensor3> {
            rows.iter()
                .map(|r| Tensor3::from_vec(r.clone(), 1, heads, HEAD_DIM).expect("shape"))
                .collect()
        };
        Self {
            q: ours(&q, Q_HEADS),
            k: ours(&k, kv_heads),
            v: ours(&v, kv_heads),
            rq: theirs(&q, Q_HEADS),
            rk: theirs(&k, kv_heads),
            rv: theirs(&v, kv_heads),
        }
    }
}

/// Runs the decode section, printing progress to stderr.
pub(crate) fn run(plan: Plan) -> Results {
    let mut results = Results::default();
    for shape in SHAPES {
        for dtype in [CacheDtype::F32, CacheDtype::F16] {
            let layout = CacheLayout::of(&shape.config(dtype));
            results
                .bytes_per_token
                .push((shape.name, dtype, layout.bytes_per_token()));
        }
    }
    for shape in SHAPES {
        for t in LENGTHS {
            results
                .candidates
                .push((shape.name, t, candidates_per_step(shape, t)));
        }
    }
    if plan.quick {
        results.notes.push(format!(
            "--quick: decode repetitions 11 after 1 warm-up ({STEPS} steps each, streaks on fresh fills); tracks f32 only"
        ));
    }
    for shape in SHAPES {
        for dtype in [CacheDtype::F32, CacheDtype::F16] {
            for t in LENGTHS {
                measure(plan, shape, dtype, t, &mut results);
            }
        }
    }
    let dtypes: &[CacheDtype] = if plan.quick {
        &[CacheDtype::F32]
    } else {
        &[CacheDtype::F32, CacheDtype::F16]
    };
    for &dtype in dtypes {
        results.tracks.push(tracks(dtype));
    }
    results
}

/// Mean candidate count (`docs/attention.md`) of the positions a timed
/// run at `t` steps (`t..t + STEPS`): the work a step does, which grows with `log T` by
/// design, so the flatness target can be read against it.
fn candidates_per_step(shape: Shape, t: usize) -> f64 {
    let pattern = SparsePattern::new(&shape.config(CacheDtype::F32)).expect("valid config");
    let total: usize = (t..t + STEPS)
        .map(|i| pattern.candidate_count(i, i + 1))
        .sum();
    total as f64 / STEPS as f64
}

/// Our step and ruvllm's at one (shape, dtype, T): both as streaks, ours
/// also on cloned caches.
fn measure(plan: Plan, shape: Shape, dtype: CacheDtype, t: usize, results: &mut Results) {
    let tokens = Tokens::new(shape.kv_heads, t as u64);
    let capacity = t + STEPS;
    let reps = plan.repetitions();

    let backend = SparseBackend::new(shape.config(dtype)).expect("valid config");
    let fill = || -> KvCache {
        let mut cache = backend.make_cache(capacity).expect("cache");
        for n in 0..t {
            cache
                .append(tokens.k[n % POOL].as_slice(), tokens.v[n % POOL].as_slice())
                .expect("room");
        }
        cache
    };
    let mut out = vec![0.0f32; Q_HEADS * HEAD_DIM];
    let mut steps = |cache: &mut KvCache| -> f64 {
        let start = Instant::now();
        for n in 0..STEPS {
            let p = n % POOL;
            backend
                .step_into(
                    tokens.q[p].view(),
                    tokens.k[p].view(),
                    tokens.v[p].view(),
                    cache,
                    &mut out,
                )
                .expect("step");
            black_box(&out);
        }
        start.elapsed().as_secs_f64()
    };
    let streak = per_step_us(reps, STEPS, || steps(&mut fill()));
    push(results, shape, t, "sparse", dtype, Method::Streak, streak);
    let filled = fill();
    let cloned = per_step_us(reps, STEPS, || steps(&mut filled.clone()));
    push(results, shape, t, "sparse", dtype, Method::Cloned, cloned);
    drop(filled);

    let attention = shape.ruvllm();
    let theirs = match dtype {
        CacheDtype::F32 => per_step_us(reps, STEPS, || {
            let mut cache = RuvllmCache::new(capacity, shape.kv_heads, HEAD_DIM, BLOCK);
            for n in 0..t {
                cache
                    .try_append(&tokens.rk[n % POOL], &tokens.rv[n % POOL])
                    .expect("room");
            }
            let start = Instant::now();
            for n in 0..STEPS {
                let p = n % POOL;
                cache
                    .try_append(&tokens.rk[p], &tokens.rv[p])
                    .expect("room");
                black_box(attention.decode_step(&tokens.rq[p], &cache).expect("step"));
            }
            start.elapsed().as_secs_f64()
        }),
        CacheDtype::F16 => per_step_us(reps, STEPS, || {
            let mut cache = RuvllmCacheF16::new(capacity, shape.kv_heads, HEAD_DIM, BLOCK);
            for n in 0..t {
                cache
                    .try_append(&tokens.rk[n % POOL], &tokens.rv[n % POOL])
                    .expect("room");
            }
            let start = Instant::now();
            for n in 0..STEPS {
                let p = n % POOL;
                cache
                    .try_append(&tokens.rk[p], &tokens.rv[p])
                    .expect("room");
                black_box(
                    cache
                        .decode_step_f16(&attention, &tokens.rq[p])
                        .expect("step"),
                );
            }
            start.elapsed().as_secs_f64()
        }),
    };
    push(results, shape, t, "ruvllm", dtype, Method::Streak, theirs);
}

fn push(
    results: &mut Results,
    shape: Shape,
    t: usize,
    imp: &'static str,
    dtype: CacheDtype,
    method: Method,
    us_per_step: f64,
) {
    eprintln!(
        "decode  {:>5} T {:>5} {:<6} {} {:<6} {us_per_step:10.3} us/step",
        shape.name,
        t,
        imp,
        dtype_name(dtype),
        method.name()
    );
    results.steps.push(Step {
        shape: shape.name,
        t,
        imp,
        dtype,
        method,
        us_per_step,
    });
}

/// Median over repetitions of the mean µs per step; `timed` runs `steps`
/// steps and returns the seconds they took (set-up excluded).
fn per_step_us(reps: Repetitions, steps: usize, timed: impl FnMut() -> f64) -> f64 {
    timing::median_seconds(reps, timed) * 1e6 / steps as f64
}

/// Steps per second of shape A MQA over [`TRACKS`] tracks of
/// [`TRACK_TOKENS`] tokens, one step per track round-robin.
fn tracks(dtype: CacheDtype) -> TracksRun {
    const ROUNDS: usize = 10;
    let config = SHAPES[1].config(dtype);
    let backend = Backend::from_config(config).expect("valid config");
    let mut tracks: Tracks<Backend, usize> = Tracks::new(backend, TRACK_TOKENS).expect("capacity");
    let tokens = Tokens::new(1, 7);
    let mut out = vec![0.0f32; Q_HEADS * HEAD_DIM];
    let mut step = |tracks: &mut Tracks<Backend, usize>, id: usize, n: usize| {
        let p = (id + n) % POOL;
        tracks
            .step(
                &id,
                tokens.q[p].view(),
                tokens.k[p].view(),
                tokens.v[p].view(),
                &mut out,
            )
            .expect("step");
        black_box(&out);
    };
    let fill = Instant::now();
    for id in 0..TRACKS {
        tracks.open(id).expect("new id");
        for n in 0..TRACK_TOKENS - ROUNDS {
            step(&mut tracks, id, n);
        }
    }
    eprintln!(
        "tracks  {TRACKS} x {} tokens {} filled in {:.1} s",
        TRACK_TOKENS - ROUNDS,
        dtype_name(dtype),
        fill.elapsed().as_secs_f64()
    );
    let start = Instant::now();
    for round in 0..ROUNDS {
        for id in 0..TRACKS {
            step(&mut tracks, id, TRACK_TOKENS - ROUNDS + round);
        }
    }
    let steps_per_s = (ROUNDS * TRACKS) as f64 / start.elapsed().as_secs_f64();
    eprintln!(
        "tracks  {TRACKS} x {TRACK_TOKENS} tokens {}  {steps_per_s:10.0} steps/s",
        dtype_name(dtype)
    );
    TracksRun {
        tracks: TRACKS,
        tokens: TRACK_TOKENS,
        dtype,
        steps_per_s,
    }
}

/// Our (or ruvllm's) µs per step at one point, by `method`.
fn find_by(
    results: &Results,
    shape: &str,
    t: usize,
    imp: &str,
    dtype: CacheDtype,
    method: Method,
) -> Option<f64> {
    results
        .steps
        .iter()
        .find(|s| {
            s.shape == shape && s.t == t && s.imp == imp && s.dtype == dtype && s.method == method
        })
        .map(|s| s.us_per_step)
}

/// µs per step in the headline (streak) method.
fn find(results: &Results, shape: &str, t: usize, imp: &str, dtype: CacheDtype) -> Option<f64> {
    find_by(results, shape, t, imp, dtype, Method::Streak)
}

/// Mean candidates per timed step at `(shape, t)`.
fn candidates(results: &Results, shape: &str, t: usize) -> Option<f64> {
    results
        .candidates
        .iter()
        .find(|(name, at, _)| *name == shape && *at == t)
        .map(|(_, _, c)| *c)
}

/// Our ns per candidate at one point (headline method).
fn ns_per_candidate(results: &Results, shape: &str, t: usize, dtype: CacheDtype) -> Option<f64> {
    Some(find(results, shape, t, "sparse", dtype)? * 1e3 / candidates(results, shape, t)?)
}

/// `a / b` when both were measured.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

fn cell(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{x:.2}x"))
}

/// `x` with `digits` decimals, or `-`.
fn num(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".to_string(), |x| format!("{x:.digits$}"))
}

/// The decode tables and verdicts as text.
pub(crate) fn render(results: &Results) -> String {
    let mut s = String::new();
    let w = &mut s;
    let first = LENGTHS[0];
    let _ = writeln!(
        w,
        "\n== decode step (release, one thread; append + attend; streak = fresh cache filled to T, then {STEPS} consecutive steps timed, median over fills) =="
    );
    let _ = writeln!(
        w,
        "{:<6} {:<5} {:>6}  {:>10} {:>8} {:>8} {:>9} {:>8}  {:>10} {:>8}  {:>10} {:>11}",
        "shape",
        "dtype",
        "T",
        "streak us",
        format!("/T={first}"),
        "cand",
        "ns/cand",
        format!("/T={first}"),
        "cloned us",
        format!("/T={first}"),
        "ruvllm us",
        "ruvllm/ours"
    );
    for shape in SHAPES {
        for dtype in [CacheDtype::F32, CacheDtype::F16] {
            for t in LENGTHS {
                let ours = find(results, shape.name, t, "sparse", dtype);
                let cloned = |t| find_by(results, shape.name, t, "sparse", dtype, Method::Cloned);
                let theirs = find(results, shape.name, t, "ruvllm", dtype);
                let _ = writeln!(
                    w,
                    "{:<6} {:<5} {:>6}  {:>10} {:>8} {:>8} {:>9} {:>8}  {:>10} {:>8}  {:>10} {:>11}",
                    shape.name,
                    dtype_name(dtype),
                    t,
                    num(ours, 3),
                    cell(ratio(
                        ours,
                        find(results, shape.name, first, "sparse", dtype)
                    )),
                    num(candidates(results, shape.name, t), 1),
                    num(ns_per_candidate(results, shape.name, t, dtype), 2),
                    cell(ratio(
                        ns_per_candidate(results, shape.name, t, dtype),
                        ns_per_candidate(results, shape.name, first, dtype)
                    )),
                    num(cloned(t), 3),
                    cell(ratio(cloned(t), cloned(first))),
                    num(theirs, 3),
                    cell(ratio(theirs, ours))
                );
            }
        }
    }
    let _ = writeln!(
        w,
        "(/T={first}: ratio to the same row at T={first}; cand: mean candidates of the timed positions, docs/attention.md; cloned: the earlier method, {STEPS} steps on a copy of one filled cache, ours only)"
    );

    let _ = writeln!(
        w,
        "\n== cache bytes per token (CacheLayout::bytes_per_token) =="
    );
    for (shape, dtype, bytes) in &results.bytes_per_token {
        let _ = writeln!(w, "{shape:<6} {:<4} {bytes:>5} B", dtype_name(*dtype));
    }
    let _ = writeln!(
        w,
        "(plus 2 x kv_heads x head_dim x 4 B of f32 block sums per {BLOCK} tokens)"
    );

    if !results.tracks.is_empty() {
        let _ = writeln!(
            w,
            "\n== many tracks (A-mqa, one step per track round-robin, caches cold) =="
        );
        for r in &results.tracks {
            let _ = writeln!(
                w,
                "{} tracks x {} tokens {}: {:.0} steps/s ({:.2} us/step)",
                r.tracks,
                r.tokens,
                dtype_name(r.dtype),
                r.steps_per_s,
                1e6 / r.steps_per_s
            );
        }
    }

    let _ = writeln!(w, "\n== decode targets (streak method) ==");
    for line in verdicts(results) {
        let _ = writeln!(w, "{line}");
    }
    for note in &results.notes {
        let _ = writeln!(w, "note: {note}");
    }
    s
}

/// One line per decode target of the brief, on the streak method.
fn verdicts(results: &Results) -> Vec<String> {
    let (first, last) = (LENGTHS[0], LENGTHS[LENGTHS.len() - 1]);
    let mut lines = Vec::new();
    let mut line = |label: String, value: Option<f64>, met: &dyn Fn(f64) -> bool, bar: &str| {
        lines.push(match value {
            Some(x) => format!(
                "{} {label}: {x:.2} ({bar})",
                if met(x) { "MET   " } else { "MISSED" }
            ),
            None => format!("-      {label}: not measured in this run"),
        });
    };
    let mqa = "A-mqa";
    let f32 = CacheDtype::F32;
    line(
        format!("A-mqa f32 T={last} us per step"),
        find(results, mqa, last, "sparse", f32),
        &|x| x <= 0.8,
        "target <= 0.8 us",
    );
    line(
        format!("A-mqa f32 T={last} speedup over ruvllm decode_step"),
        ratio(
            find(results, mqa, last, "ruvllm", f32),
            find(results, mqa, last, "sparse", f32),
        ),
        &|x| x >= 6.0,
        "target >= 6x",
    );
    for (shape, bar) in [("A-mqa", 1.3), ("A-mha", 1.5)] {
        line(
            format!("{shape} f32 T={last} / T={first} per step"),
            ratio(
                find(results, shape, last, "sparse", f32),
                find(results, shape, first, "sparse", f32),
            ),
            &|x| x <= bar,
            &format!("target <= {bar}x"),
        );
    }
    for shape in SHAPES {
        line(
            format!("{} f32 T={last} / T={first} per candidate", shape.name),
            ratio(
                ns_per_candidate(results, shape.name, last, f32),
                ns_per_candidate(results, shape.name, first, f32),
            ),
            &|x| x <= 1.15,
            "target <= 1.15x",
        );
    }
    for shape in SHAPES {
        for t in [first, last] {
            line(
                format!("{} T={t} f16 / f32 per step", shape.name),
                ratio(
                    find(results, shape.name, t, "sparse", CacheDtype::F16),
                    find(results, shape.name, t, "sparse", CacheDtype::F32),
                ),
                &|x| x <= 1.3,
                "target <= 1.3x",
            );
        }
    }
    lines
}

/// The decode rows of the `--json` document. `decode` rows are the
/// headline streak method (one per shape, T, implementation, dtype, as
/// before, now with `method`, `candidates_per_step` and
/// `ns_per_candidate`); the cloned-cache rows are `decode_cloned`, so a
/// reader of `decode` rows never sees two measurements of one point.
pub(crate) fn json(results: &Results) -> Vec<Value> {
    let steps = results.steps.iter().map(|s| {
        let mut row = json!({
            "bench": match s.method {
                Method::Streak => "decode",
                Method::Cloned => "decode_cloned",
            },
            "shape": s.shape,
            "t": s.t,
            "impl": s.imp,
            "dtype": dtype_name(s.dtype),
            "method": s.method.name(),
            "us_per_step": s.us_per_step,
        });
        if let Some(c) = candidates(results, s.shape, s.t) {
            row["candidates_per_step"] = json!(c);
            row["ns_per_candidate"] = json!(s.us_per_step * 1e3 / c);
        }
        row
    });
    let tracks = results.tracks.iter().map(|r| {
        json!({
            "bench": "tracks",
            "tracks": r.tracks,
            "tokens": r.tokens,
            "dtype": dtype_name(r.dtype),
            "steps_per_s": r.steps_per_s,
        })
    });
    let work = results.candidates.iter().map(|(shape, t, c)| {
        json!({
            "bench": "decode_candidates",
            "shape": shape,
            "t": t,
            "candidates_per_step": c,
        })
    });
    steps.chain(tracks).chain(work).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let step = |t, imp, dtype, method, us| Step {
            shape: "A-mqa",
            t,
            imp,
            dtype,
            method,
            us_per_step: us,
        };
        let f32 = CacheDtype::F32;
        Results {
            steps: vec![
                step(256, "sparse", f32, Method::Streak, 0.5),
                step(16384, "sparse", f32, Method::Streak, 0.6),
                step(16384, "ruvllm", f32, Method::Streak, 6.0),
                step(256, "sparse", CacheDtype::F16, Method::Streak, 0.6),
                step(16384, "sparse", CacheDtype::F16, Method::Streak, 0.9),
                step(256, "sparse", f32, Method::Cloned, 0.4),
                step(16384, "sparse", f32, Method::Cloned, 0.44),
            ],
            tracks: vec![TracksRun {
                tracks: 1000,
                tokens: 3000,
                dtype: f32,
                steps_per_s: 500_000.0,
            }],
            candidates: vec![("A-mqa", 256, 40.0), ("A-mqa", 16384, 50.0)],
            ..Results::default()
        }
    }

    #[test]
    fn json_rows_have_the_documented_fields() {
        let rows = json(&sample());
        assert_eq!(rows.len(), 10);
        assert_eq!(rows[2]["bench"], "decode");
        assert_eq!(rows[2]["shape"], "A-mqa");
        assert_eq!(rows[2]["t"], 16384);
        assert_eq!(rows[2]["impl"], "ruvllm");
        assert_eq!(rows[2]["dtype"], "f32");
        assert_eq!(rows[2]["method"], "streak");
        assert_eq!(rows[2]["us_per_step"], 6.0);
        assert_eq!(rows[2]["candidates_per_step"], 50.0);
        assert_eq!(rows[2]["ns_per_candidate"], 120.0);
        assert_eq!(rows[6]["bench"], "decode_cloned");
        assert_eq!(rows[6]["method"], "cloned");
        assert_eq!(rows[7]["bench"], "tracks");
        assert_eq!(rows[7]["tracks"], 1000);
        assert_eq!(rows[7]["tokens"], 3000);
        assert_eq!(rows[7]["steps_per_s"], 500_000.0);
        assert_eq!(rows[9]["bench"], "decode_candidates");
        assert_eq!(rows[9]["t"], 16384);
        assert_eq!(rows[9]["candidates_per_step"], 50.0);
    }

    /// 0.6 us / 50 = 12 ns per candidate against 0.5 us / 40 = 12.5: 0.96x;
    /// 1.2x per step; cloned 1.10x.
    #[test]
    fn rows_report_ratios_and_per_candidate_cost() {
        let text = render(&sample());
        let row = text
            .lines()
            .find(|l| l.starts_with("A-mqa  f32") && l.contains("16384"))
            .unwrap_or_else(|| panic!("no row in {text}"));
        for cell in [
            "0.600", "1.20x", "50.0", "12.00", "0.96x", "0.440", "1.10x", "6.000", "10.00x",
        ] {
            assert!(row.contains(cell), "{cell} missing from {row}");
        }
    }

    /// Shape A's window (33 tokens) plus a few `log T` extras, growing
    /// with T but far slower than T.
    #[test]
    fn candidates_grow_logarithmically() {
        let small = candidates_per_step(SHAPES[1], 256);
        let large = candidates_per_step(SHAPES[1], 16384);
        assert!(small > 33.0 && large > small, "{small} {large}");
        assert!(large / small < 1.5, "{small} {large}");
    }

    #[test]
    fn verdicts_compare_against_the_bars() {
        let text = render(&sample());
        assert!(
            text.contains("MET    A-mqa f32 T=16384 us per step: 0.60"),
            "{text}"
        );
        assert!(text.contains("MET    A-mqa f32 T=16384 speedup over ruvllm decode_step: 10.00"));
        assert!(text.contains("MET    A-mqa f32 T=16384 / T=256 per step: 1.20"));
        assert!(text.contains("MET    A-mqa f32 T=16384 / T=256 per candidate: 0.96"));
        assert!(text.contains("MISSED A-mqa T=16384 f16 / f32 per step: 1.50"));
        assert!(text.contains("-      A-mha f32 T=16384 / T=256 per step"));
    }
}
