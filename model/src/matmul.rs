//! `Y = X·W` for the model's projections: a register-blocked kernel.
//!
//! Why not [`aether_domain::numerics::axpy`] per input row: an axpy
//! loads and stores the whole output row once per weight row, so a
//! 16 × 128 projection moves `y` through memory 16 times and the 128 × 16
//! output projection 128 times; the projections then cost more than the
//! sparse attention they surround. Here a tile of `MR` frames × `NR`
//! outputs stays in registers for the whole sum and each weight row is
//! loaded once per tile.
//!
//! **Invariant (bit-exactness):** every output is summed exactly as the
//! scalar definition `y[j] = (((0 + x[0]·w[0][j]) + x[1]·w[1][j]) + …)`:
//! from 0.0, in increasing row order, one rounded multiply and one rounded
//! add per weight (Rust never fuses them into an FMA). Tiling only changes
//! which independent sums run side by side, so prefill (many frames),
//! streaming (one frame), the trainer, the reference test and the firmware
//! all get the same bits.
//!
//! The kernel is written once, `#[inline(always)]`, over fixed-size
//! arrays that LLVM turns into vector registers; [`x86`] compiles it again
//! inside `#[target_feature]` functions for AVX2 and AVX-512 and picks the
//! widest copy the CPU runs (the pattern of the attention backends).
//! Everywhere else (the ESP32 stand-ins) the portable copy runs, which
//! there is the plain loop (see [`portable`]).

#[cfg(target_arch = "x86_64")]
mod x86;

/// `y = x·w` for `n` frames: `x` is `n × rows`, `w` is `rows × cols`
/// (row-major), `y` is `n × cols`, every element overwritten.
///
/// # Panics
/// When the slice lengths do not match `n`, `rows` and `cols`; callers
/// pass buffers they sized from the same shape.
pub(crate) fn matmul(x: &[f32], n: usize, w: &[f32], rows: usize, cols: usize, y: &mut [f32]) {
    assert!(
        x.len() == n * rows && w.len() == rows * cols && y.len() == n * cols,
        "matmul operand lengths"
    );
    if rows == 0 {
        // Every output is the empty sum (and `chunks_exact(0)` would
        // panic below).
        y.fill(0.0);
        return;
    }
    if n == 0 || cols == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        x86::matmul(x, n, w, rows, cols, y);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        portable(x, n, w, rows, cols, y);
    }
}

/// The portable copy. On `x86_64` (a CPU without AVX2) that is the kernel
/// with tiles sized for 4-wide SSE2 vectors. Elsewhere it is the plain
/// loop, one output row at a time: the ESP32-class targets have no
/// vector registers for tiles to fill, and the register-blocked copies
/// would cost them flash (measured by `cargo xtask size`: +3.3 KiB of
/// `.text` and +10 % instructions per classification on `riscv32imafc`).
#[cfg(target_arch = "x86_64")]
fn portable(x: &[f32], n: usize, w: &[f32], rows: usize, cols: usize, y: &mut [f32]) {
    kernel::<32, 8, 4>(x, n, w, rows, cols, y);
}

/// See the `x86_64` `portable`.
#[cfg(not(target_arch = "x86_64"))]
fn portable(x: &[f32], _n: usize, w: &[f32], rows: usize, cols: usize, y: &mut [f32]) {
    for (x_row, y_row) in x.chunks_exact(rows).zip(y.chunks_exact_mut(cols)) {
        y_row.fill(0.0);
        for (&a, w_row) in x_row.iter().zip(w.chunks_exact(cols)) {
            for (s, &wj) in y_row.iter_mut().zip(w_row) {
                *s += a * wj;
            }
        }
    }
}

/// The tiling: blocks of [`ROWS`] frames swept by column tiles of `WIDE`
/// and `NARROW` outputs (two and one vector registers' worth of lanes),
/// then single frames swept by tiles of `SINGLE` outputs (eight
/// registers: one frame has the registers to spare, and wide tiles give
/// the out-of-order core independent sums to overlap, since each sum's
/// adds are a dependency chain as long as `rows`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn kernel<const SINGLE: usize, const WIDE: usize, const NARROW: usize>(
    x: &[f32],
    n: usize,
    w: &[f32],
    rows: usize,
    cols: usize,
    y: &mut [f32],
) {
    let mut x_blocks = x.chunks_exact(ROWS * rows);
    let mut y_blocks = y.chunks_exact_mut(ROWS * cols);
    for (xb, yb) in (&mut x_blocks).zip(&mut y_blocks) {
        frames::<ROWS, WIDE, WIDE, NARROW>(xb, w, rows, cols, yb);
    }
    let (x_rest, y_rest) = (x_blocks.remainder(), y_blocks.into_remainder());
    for (xr, yr) in x_rest.chunks_exact(rows).zip(y_rest.chunks_exact_mut(cols)) {
        frames::<1, SINGLE, WIDE, NARROW>(xr, w, rows, cols, yr);
    }
    debug_assert_eq!(x.len() / rows.max(1), n);
}

/// Frames per block: with two-register-wide tiles that is 8 accumulator
/// registers, enough independent sums to hide the add latency while the
/// broadcast and weight loads still fit beside them in 16 registers.
#[cfg(target_arch = "x86_64")]
const ROWS: usize = 4;

/// `MR` frames (`x` is `MR × rows`, `y` is `MR × cols`) against every
/// column of `w`: tiles of `A`, `B`, `C` and 4 outputs, widest first.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn frames<const MR: usize, const A: usize, const B: usize, const C: usize>(
    x: &[f32],
    w: &[f32],
    rows: usize,
    cols: usize,
    y: &mut [f32],
) {
    let mut c = 0;
    while c + A <= cols {
        tile::<MR, A>(x, w, rows, cols, c, y);
        c += A;
    }
    while c + B <= cols {
        tile::<MR, B>(x, w, rows, cols, c, y);
        c += B;
    }
    while c + C <= cols {
        tile::<MR, C>(x, w, rows, cols, c, y);
        c += C;
    }
    while c + 4 <= cols {
        tile::<MR, 4>(x, w, rows, cols, c, y);
        c += 4;
    }
    if c < cols && cols >= 4 {
        // The last 1–3 outputs as a 4-wide tile ending at `cols`: its
        // first outputs are computed twice, to the same bits, which is
        // cheaper than running the rest as scalar sums one after another.
        tile::<MR, 4>(x, w, rows, cols, cols - 4, y);
    } else {
        for c in c..cols {
            tile::<MR, 1>(x, w, rows, cols, c, y);
        }
    }
}

/// Outputs `c..c + NR` of `MR` frames, summed in registers over every
/// weight row in order.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn tile<const MR: usize, const NR: usize>(
    x: &[f32],
    w: &[f32],
    rows: usize,
    cols: usize,
    c: usize,
    y: &mut [f32],
) {
    let mut acc = [[0.0f32; NR]; MR];
    for r in 0..rows {
        let wr = &w[r * cols + c..r * cols + c + NR];
        for (i, acc) in acc.iter_mut().enumerate() {
            let a = x[i * rows + r];
            for (s, &wj) in acc.iter_mut().zip(wr) {
                *s += a * wj;
            }
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        y[i * cols + c..i * cols + c + NR].copy_from_slice(acc);
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::XorShift64Star;

    /// The definition: each output summed from 0.0 in row order.
    fn scalar(x: &[f32], n: usize, w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; n * cols];
        for i in 0..n {
            for j in 0..cols {
                let mut s = 0.0f32;
                for r in 0..rows {
                    s += x[i * rows + r] * w[r * cols + j];
                }
                y[i * cols + j] = s;
            }
        }
        y
    }

    fn values(rng: &mut XorShift64Star, len: usize) -> Vec<f32> {
        // Mixed magnitudes, so a changed summation order would show in
        // the low bits.
        (0..len)
            .map(|i| rng.next_symmetric(if i % 3 == 0 { 1e3 } else { 1.0 }))
            .collect()
    }

    /// Every tiling path (wide, narrow, 4-wide, the overlapping last tile,
    /// single columns; blocks of frames and single frames) gives the
    /// definition's bits, with the dispatched and the portable copy alike.
    #[test]
    fn every_shape_sums_like_the_definition() {
        let mut rng = XorShift64Star::new(3);
        for n in [1, 2, 3, 4, 5, 8, 9] {
            for rows in [1, 3, 16, 17, 128] {
                for cols in [
                    1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 100, 128, 129, 200,
                ] {
                    let x = values(&mut rng, n * rows);
                    let w = values(&mut rng, rows * cols);
                    let want = scalar(&x, n, &w, rows, cols);
                    let mut y = vec![f32::NAN; n * cols];
                    matmul(&x, n, &w, rows, cols, &mut y);
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&y), bits(&want), "n {n} rows {rows} cols {cols}");
                    let mut p = vec![f32::NAN; n * cols];
                    portable(&x, n, &w, rows, cols, &mut p);
                    assert_eq!(
                        bits(&p),
                        bits(&want),
                        "portable n {n} rows {rows} cols {cols}"
                    );
                }
            }
        }
    }

    #[test]
    fn empty_operands_write_nothing() {
        let mut y: [f32; 0] = [];
        matmul(&[], 0, &[1.0, 2.0], 1, 2, &mut y);
        let mut y = [7.0f32; 2];
        // No rows: every output is the empty sum.
        matmul(&[], 2, &[], 0, 1, &mut y);
        assert_eq!(y, [0.0, 0.0]);
    }

    /// Prefill's batched MLP computes what streaming's per-frame MLP
    /// does, bit for bit.
    #[test]
    fn the_batched_mlp_is_the_per_frame_mlp() {
        use aether_domain::{BackendKind, HeadConfig};
        use aether_reference::ReferenceBackend;

        use crate::{ModelOptions, ModelShape, ModelWeights, Norm, TemporalModel};
        let shape = ModelShape {
            options: ModelOptions {
                norm: Norm::Layer,
                conv_taps: 0,
                mlp_hidden: 13,
                ..ModelOptions::V1
            },
            ..ModelShape::DEFAULT_AETHER
        };
        let config = HeadConfig {
            backend: BackendKind::Reference,
            ..HeadConfig::default_aether()
        };
        let model = TemporalModel::new(
            ModelWeights::random(shape, 5).unwrap(),
            ReferenceBackend::new(config).unwrap(),
        )
        .unwrap();
        let mlp = model.layer(1).mlp.unwrap();
        let (n, d, h) = (7, 16, 13);
        let mut rng = XorShift64Star::new(9);
        let x = values(&mut rng, n * d);
        let mut batched = x.clone();
        let (mut normed, mut hidden, mut branch) =
            (vec![0.0; n * d], vec![0.0; n * h], vec![0.0; n * d]);
        mlp.add_to_rows(&mut batched, n, &mut normed, &mut hidden, &mut branch);
        let mut framewise = x;
        for row in framewise.chunks_exact_mut(d) {
            mlp.add_to(row, &mut normed[..d], &mut hidden[..h], &mut branch[..d]);
        }
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&batched), bits(&framewise));
    }
}
