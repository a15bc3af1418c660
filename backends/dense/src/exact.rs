//! The exact path: one query row computed literally as the non-finite
//! policy defines attention, in f64.
//!
//! Why it exists: the vector kernels are fast because they bend the
//! arithmetic (f32 scores, a select-based max that skips NaN, a clamping
//! `exp`, reassociated sums, masked lanes in shared tiles). For finite
//! inputs of sane magnitude that only changes rounding; for a NaN, an
//! infinity or an f32 overflow the bent arithmetic would decide the result
//! by accident. Such rows come here instead, and get exactly what the
//! reference backend computes: scores `(q . k_c) / sqrt(d)` in f64 from the
//! f32 inputs, `m` = their max ignoring NaN, weights `exp(s_c - m)`
//! (IEEE: `inf - inf` is NaN, `exp(-inf)` is 0), `Z` = their sum, output
//! `sum_c w_c v_c / Z` rounded to f32, every candidate included even when
//! its weight is 0 (so `0 * inf` is NaN, as the definition says).
//!
//! The other half of the policy is deciding cheaply which rows the kernels
//! may keep: [`all_finite`] is the vectorisable test they use.
//!
//! **Invariant:** allocation-free (a streaming step calls it) and generic
//! over where the candidates live (prefill tensors or the cache), so both
//! paths share one definition.

use aether_domain::numerics::LANES;
use aether_domain::{Row, f16_conv};

/// Output dims accumulated per walk over the candidates: f64 accumulators
/// on the stack (256 bytes), so a row of up to 32 dims takes one walk after
/// the max.
const CHUNK: usize = 32;

/// Whether every element of `x` is finite, without a branch per element:
/// `x * 0` is `±0` for finite `x` and NaN for NaN or ±Inf, and NaN survives
/// the sum. Written over [`LANES`] accumulators so it vectorises.
#[inline(always)]
pub(crate) fn all_finite(x: &[f32]) -> bool {
    let mut acc = [0.0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for chunk in &mut chunks {
        for lane in 0..LANES {
            acc[lane] += chunk[lane] * 0.0;
        }
    }
    let tail = chunks.remainder().iter().fold(0.0f32, |s, &v| s + v * 0.0);
    acc.iter().fold(tail, |s, &a| s + a) == 0.0
}

/// Whether every element of a stored row is finite (f16 rows: the exponent
/// field is not all ones).
pub(crate) fn row_is_finite(row: Row<'_>) -> bool {
    match row {
        Row::F32(r) => all_finite(r),
        Row::F16(r) => r.iter().all(|h| h.to_bits() & 0x7C00 != 0x7C00),
    }
}

/// `(query . key) * scale` in f64, summed in dim order as the reference
/// does.
pub(crate) fn score(query: &[f32], key: Row<'_>, scale: f64) -> f64 {
    let dot: f64 = match key {
        Row::F32(k) => query
            .iter()
            .zip(k)
            .map(|(&q, &k)| f64::from(q) * f64::from(k))
            .sum(),
        Row::F16(k) => query
            .iter()
            .zip(k)
            .map(|(&q, &k)| f64::from(q) * f64::from(f16_conv::widen(k)))
            .sum(),
    };
    dot * scale
}

/// `acc[i] += weight * value[first + i]` in f64.
fn add_scaled(acc: &mut [f64], weight: f64, value: Row<'_>, first: usize) {
    match value {
        Row::F32(v) => {
            for (a, &x) in acc.iter_mut().zip(&v[first..]) {
                *a += weight * f64::from(x);
            }
        }
        Row::F16(v) => {
            for (a, &x) in acc.iter_mut().zip(&v[first..]) {
                *a += weight * f64::from(f16_conv::widen(x));
            }
        }
    }
}

/// Attention of `query` over candidates `0..count` (`key(c)`, `value(c)`)
/// into `out`, exactly as the module docs define it. `scale` is
/// `1 / sqrt(dim)` in f64. Costs two score passes per [`CHUNK`] dims
/// (one for the max, one for the weights), which is fine for the rare rows
/// that come here.
#[inline(never)]
pub(crate) fn attend<'a>(
    query: &[f32],
    scale: f64,
    count: usize,
    key: impl Fn(usize) -> Row<'a>,
    value: impl Fn(usize) -> Row<'a>,
    out: &mut [f32],
) {
    // f64::max returns the other operand for NaN: the max ignores NaN.
    let max = (0..count)
        .map(|c| score(query, key(c), scale))
        .fold(f64::NEG_INFINITY, f64::max);
    for (chunk_index, out_chunk) in out.chunks_mut(CHUNK).enumerate() {
        let first = chunk_index * CHUNK;
        // -0.0 is the additive identity `Sum` starts from, so even a sum of
        // negative zeros keeps the reference's sign.
        let mut acc = [-0.0f64; CHUNK];
        let acc = &mut acc[..out_chunk.len()];
        let mut total = -0.0f64;
        for c in 0..count {
            let weight = libm::exp(score(query, key(c), scale) - max);
            total += weight;
            add_scaled(acc, weight, value(c), first);
        }
        for (o, &a) in out_chunk.iter_mut().zip(acc.iter()) {
            *o = (a / total) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aether_domain::f16;

    #[test]
    fn all_finite_spots_every_non_finite_position() {
        for len in [0, 1, 7, 8, 9, 33] {
            let mut x: alloc::vec::Vec<f32> = (0..len).map(|i| i as f32 - 4.0).collect();
            assert!(all_finite(&x));
            for i in 0..len {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let keep = x[i];
                    x[i] = bad;
                    assert!(!all_finite(&x), "len {len} index {i} {bad}");
                    x[i] = keep;
                }
            }
            x.iter_mut().for_each(|v| *v = f32::MAX);
            assert!(all_finite(&x), "large finite values are finite");
        }
    }

    #[test]
    fn f16_rows_are_checked_by_exponent() {
        let finite = [f16::from_f32(65504.0), f16::from_f32(-1.0)];
        assert!(row_is_finite(Row::F16(&finite)));
        for bad in [f16::INFINITY, f16::NEG_INFINITY, f16::NAN] {
            assert!(!row_is_finite(Row::F16(&[f16::ONE, bad])));
        }
    }

    /// The policy's consequences, one candidate set each.
    #[test]
    fn follows_ieee_through_the_definition() {
        let run = |keys: &[[f32; 2]], values: &[[f32; 2]], query: [f32; 2]| {
            let mut out = [0.0f32; 2];
            attend(
                &query,
                1.0,
                keys.len(),
                |c| Row::F32(&keys[c]),
                |c| Row::F32(&values[c]),
                &mut out,
            );
            out
        };
        let values = [[1.0, 2.0], [3.0, 4.0]];
        // Finite: a plain softmax.
        let w = 1f64.exp();
        let mix = |a: f64, b: f64| ((a + b * w) / (1.0 + w)) as f32;
        assert_eq!(
            run(&[[0.0, 0.0], [1.0, 0.0]], &values, [1.0, 0.0]),
            [mix(1.0, 3.0), mix(2.0, 4.0)]
        );
        // A -inf score drops its candidate exactly.
        let out = run(&[[0.0, 0.0], [f32::NEG_INFINITY, 0.0]], &values, [1.0, 0.0]);
        assert_eq!(out, [1.0, 2.0]);
        // ... but its non-finite value still poisons that element (0 * inf).
        let out = run(
            &[[0.0, 0.0], [f32::NEG_INFINITY, 0.0]],
            &[[1.0, 2.0], [f32::INFINITY, 4.0]],
            [1.0, 0.0],
        );
        assert!(out[0].is_nan() && out[1] == 2.0);
        // +inf score: inf - inf, the whole row is NaN.
        let out = run(&[[0.0, 0.0], [f32::INFINITY, 0.0]], &values, [1.0, 0.0]);
        assert!(out.iter().all(|x| x.is_nan()));
        // inf * 0 in the dot: a NaN score, the whole row is NaN.
        let out = run(&[[0.0, 0.0], [f32::INFINITY, 0.0]], &values, [0.0, 1.0]);
        assert!(out.iter().all(|x| x.is_nan()));
        // Every candidate at -inf: 0 / 0.
        let out = run(&[[f32::NEG_INFINITY, 0.0]], &values[..1], [1.0, 0.0]);
        assert!(out.iter().all(|x| x.is_nan()));
        // A NaN query: NaN everywhere.
        let out = run(&[[0.0, 0.0]], &values[..1], [f32::NAN, 0.0]);
        assert!(out.iter().all(|x| x.is_nan()));
    }

    /// Rows wider than one chunk take several walks and still agree.
    #[test]
    fn wide_rows_take_several_chunks() {
        let dim = 2 * CHUNK + 3;
        let keys: alloc::vec::Vec<f32> = (0..3 * dim).map(|i| (i % 7) as f32 * 0.1).collect();
        let values: alloc::vec::Vec<f32> = (0..3 * dim).map(|i| i as f32).collect();
        let query: alloc::vec::Vec<f32> = (0..dim).map(|i| (i % 3) as f32 * 0.2).collect();
        let mut out = alloc::vec![0.0f32; dim];
        let key = |c: usize| Row::F32(&keys[c * dim..(c + 1) * dim]);
        let value = |c: usize| Row::F32(&values[c * dim..(c + 1) * dim]);
        attend(&query, 0.5, 3, key, value, &mut out);
        let scores: alloc::vec::Vec<f64> = (0..3).map(|c| score(&query, key(c), 0.5)).collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: alloc::vec::Vec<f64> = scores.iter().map(|s| libm::exp(s - max)).collect();
        let total: f64 = weights.iter().sum();
        for d in 0..dim {
            let acc: f64 = (0..3)
                .map(|c| weights[c] * f64::from(values[c * dim + d]))
                .sum();
            assert_eq!(out[d], (acc / total) as f32, "dim {d}");
        }
    }
}
