//! Prefill one query at a time, for cores without vector units.
//!
//! Why it exists: the tile kernel of [`super`] keeps 16 positions in
//! vector lanes and scores the union of their windows, which pays off when
//! a lane costs nothing extra. On a scalar core (the ESP32s: RISC-V
//! `rv32imc`/`imafc`, Xtensa) every lane is an instruction, so scoring a
//! tile's union window (W + 16 keys for each of 16 positions instead of
//! W + 1) and emulating lane masks multiplies the work. Here each query
//! walks exactly its candidates — the window as a run of rows, then
//! [`plan::for_each_extra`] — with plain dot products and a two-pass
//! softmax, so the arithmetic is the edge count times `2 × dim`.
//!
//! Candidate structure and landmark means are the tile kernel's (same
//! `plan`, same [`Workspace`] means), so the two kernels differ only in
//! accumulation order; the conformance and non-finite suites run both.

use alloc::vec::Vec;

use aether_domain::{AttentionError, numerics};

use super::{Problem, Workspace};
use crate::plan::{self, Extra};
use crate::simd;

/// Runs the whole prefill one query row at a time, writing `out`
/// (`[n][q_heads][dim]`, overwritten).
///
/// # Errors
/// [`AttentionError::OutOfMemory`] when the score buffer cannot be
/// reserved.
pub(crate) fn run(
    problem: &Problem<'_>,
    work: &mut Workspace,
    out: &mut [f32],
) -> Result<(), AttentionError> {
    let p = problem;
    if p.n == 0 {
        return Ok(());
    }
    work.landmarks.fill(simd::Portable, p);
    let marks = &work.landmarks;
    // Room for the most candidates any query has: its window (both sides
    // when not causal) plus the plan's bound on the extras.
    let w = p.pattern.window();
    let span = if p.pattern.causal() {
        w.saturating_add(1)
    } else {
        w.saturating_mul(2).saturating_add(1)
    };
    let most = span.min(p.n) + plan::max_extras(p.pattern, p.n);
    let mut scores: Vec<f32> = Vec::new();
    scores
        .try_reserve_exact(most)
        .map_err(|_| AttentionError::OutOfMemory {
            bytes: most.saturating_mul(size_of::<f32>()),
        })?;
    let scale = 1.0 / libm::sqrtf(p.dim as f32);
    let group = p.q_heads / p.kv_heads;
    let mut query = Vec::new();
    query
        .try_reserve_exact(p.dim)
        .map_err(|_| AttentionError::OutOfMemory {
            bytes: p.dim.saturating_mul(size_of::<f32>()),
        })?;
    query.resize(p.dim, 0.0);
    for i in 0..p.n {
        let (lo, hi) = p.pattern.window_bounds(i, p.n);
        for h in 0..p.q_heads {
            let g = h / group;
            let r = i * p.q_heads + h;
            for (s, &x) in query.iter_mut().zip(&p.q[r * p.dim..(r + 1) * p.dim]) {
                *s = x * scale;
            }
            let (mark_keys, mark_values) = marks.head(g);
            let row = Rows {
                problem: p,
                kv_head: g,
                mark_keys,
                mark_values,
            };
            let visit = |each: &mut dyn FnMut(&[f32], &[f32])| {
                for j in lo..=hi {
                    each(row.key(j), row.value(j));
                }
                plan::for_each_extra(p.pattern, i, p.n, |extra| match extra {
                    Extra::Token(j) => each(row.key(j), row.value(j)),
                    Extra::Landmark(b) => each(row.mark_key(b), row.mark_value(b)),
                });
            };
            scores.clear();
            let mut max = f32::NEG_INFINITY;
            visit(&mut |key, _| {
                let s = numerics::dot(&query, key);
                max = max.max(s);
                scores.push(s);
            });
            debug_assert!(scores.len() <= most, "the reserved room is a bound");
            let mut total = 0.0;
            for s in &mut scores {
                *s = numerics::exp(*s - max);
                total += *s;
            }
            let o = &mut out[r * p.dim..(r + 1) * p.dim];
            o.fill(0.0);
            let mut c = 0;
            visit(&mut |_, value| {
                numerics::axpy(o, scores[c], value);
                c += 1;
            });
            numerics::scale(o, 1.0 / total);
        }
    }
    Ok(())
}

/// The rows one query head reads: its KV head's tokens and landmark means.
struct Rows<'a> {
    problem: &'a Problem<'a>,
    kv_head: usize,
    mark_keys: &'a [f32],
    mark_values: &'a [f32],
}

impl<'a> Rows<'a> {
    fn token(&self, data: &'a [f32], j: usize) -> &'a [f32] {
        let p = self.problem;
        let start = (j * p.kv_heads + self.kv_head) * p.dim;
        &data[start..start + p.dim]
    }
    fn key(&self, j: usize) -> &'a [f32] {
        self.token(self.problem.k, j)
    }
    fn value(&self, j: usize) -> &'a [f32] {
        self.token(self.problem.v, j)
    }
    fn mark_key(&self, b: usize) -> &'a [f32] {
        &self.mark_keys[b * self.problem.dim..(b + 1) * self.problem.dim]
    }
    fn mark_value(&self, b: usize) -> &'a [f32] {
        &self.mark_values[b * self.problem.dim..(b + 1) * self.problem.dim]
    }
}
