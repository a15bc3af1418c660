//! The arithmetic of model version 2's options (`docs/model.md`, "Version
//! 2: options"): per-frame norms, the causal depthwise convolution, the
//! ReLU MLP, and the running means of input centring and the pooled
//! readout.
//!
//! Why plain loops in f32 with sums from 0 in index order: the trainer
//! computes the same formulas, and the device runs this code; what matters
//! is that prefill and streaming call the same per-frame functions, so
//! they agree bit for bit, not speed (these are O(D·K) and O(D·H) per
//! frame beside the attention's O(Hq·d·(W + log T))).

use crate::Norm;
use crate::linear::Linear;

/// ε of both norms.
pub(crate) const EPSILON: f32 = 1e-5;

/// A norm's weights: `γ` and, for a layer norm, `β`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NormWeights<'w> {
    pub(crate) kind: Norm,
    pub(crate) scale: &'w [f32],
    pub(crate) shift: &'w [f32],
}

impl NormWeights<'_> {
    /// `out = norm(x)` for one frame; `out = x` without a norm.
    pub(crate) fn apply(&self, x: &[f32], out: &mut [f32]) {
        let n = x.len() as f32;
        match self.kind {
            Norm::None => out.copy_from_slice(x),
            Norm::Layer => {
                let mean = x.iter().sum::<f32>() / n;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
                let inv = 1.0 / libm::sqrtf(var + EPSILON);
                for (((o, &v), &g), &b) in out.iter_mut().zip(x).zip(self.scale).zip(self.shift) {
                    *o = (v - mean) * inv * g + b;
                }
            }
            Norm::Rms => {
                let ms = x.iter().map(|v| v * v).sum::<f32>() / n;
                let inv = 1.0 / libm::sqrtf(ms + EPSILON);
                for ((o, &v), &g) in out.iter_mut().zip(x).zip(self.scale) {
                    *o = v * inv * g;
                }
            }
        }
    }
}

/// The causal depthwise convolution's `[K][D]` taps, tap 0 the current
/// frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conv<'w> {
    pub(crate) taps: &'w [f32],
    pub(crate) width: usize,
}

impl Conv<'_> {
    /// Taps `K` (0 when the layer has no convolution).
    pub(crate) const fn len(&self) -> usize {
        match self.taps.len().checked_div(self.width) {
            Some(taps) => taps,
            None => 0,
        }
    }

    /// `out[f] = Σ_j w[j][f] · past(j)[f]`, where `past(0)` is `current`
    /// and `past(j)` for `j ≥ 1` is the frame `j` steps back, `None`
    /// (zeros) before the first frame. Summed from tap 0 up.
    pub(crate) fn apply<'a>(
        &self,
        current: &[f32],
        past: impl Fn(usize) -> Option<&'a [f32]>,
        out: &mut [f32],
    ) {
        for (f, o) in out.iter_mut().enumerate() {
            *o = self.taps[f] * current[f];
        }
        for j in 1..self.len() {
            if let Some(frame) = past(j) {
                let w = &self.taps[j * self.width..(j + 1) * self.width];
                for ((o, &wf), &h) in out.iter_mut().zip(w).zip(frame) {
                    *o += wf * h;
                }
            }
        }
    }
}

/// The MLP branch: `relu(n · W1 + b1) · W2 + b2`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mlp<'w> {
    pub(crate) norm: NormWeights<'w>,
    pub(crate) up: Linear<'w>,
    pub(crate) up_bias: &'w [f32],
    pub(crate) down: Linear<'w>,
    pub(crate) down_bias: &'w [f32],
}

impl Mlp<'_> {
    /// Adds the branch of frame `x` to `x`, using `normed` (`D`) and
    /// `hidden` (`H`) as scratch and `branch` (`D`) for the output.
    pub(crate) fn add_to(
        &self,
        x: &mut [f32],
        normed: &mut [f32],
        hidden: &mut [f32],
        branch: &mut [f32],
    ) {
        self.norm.apply(x, normed);
        self.up.apply(normed, hidden);
        for (h, &b) in hidden.iter_mut().zip(self.up_bias) {
            let v = *h + b;
            // Written so that NaN passes through (`max` would turn it into
            // 0 and hide an overflow from the stage check).
            *h = if v < 0.0 { 0.0 } else { v };
        }
        self.down.apply(hidden, branch);
        for ((v, &o), &b) in x.iter_mut().zip(branch.iter()).zip(self.down_bias) {
            *v += o + b;
        }
    }

    /// [`add_to`](Self::add_to) for each of the `n` frames of `x` (`n × D`),
    /// with scratch `normed` and `branch` of `n × D` and `hidden` of
    /// `n × H`. Why: prefill then runs each projection once over all
    /// frames (the blocked kernel's fast case) instead of once per
    /// frame; every value is computed by the same operations as in
    /// `add_to`, so prefill and streaming still agree bit for bit.
    pub(crate) fn add_to_rows(
        &self,
        x: &mut [f32],
        n: usize,
        normed: &mut [f32],
        hidden: &mut [f32],
        branch: &mut [f32],
    ) {
        let width = self.up_bias.len();
        let input_dim = x.len() / n.max(1);
        for (x_t, h_t) in x
            .chunks_exact(input_dim)
            .zip(normed.chunks_exact_mut(input_dim))
        {
            self.norm.apply(x_t, h_t);
        }
        self.up.apply_many(normed, n, hidden);
        for row in hidden.chunks_exact_mut(width) {
            for (h, &b) in row.iter_mut().zip(self.up_bias) {
                let v = *h + b;
                *h = if v < 0.0 { 0.0 } else { v };
            }
        }
        self.down.apply_many(hidden, n, branch);
        for (x_t, o_t) in x
            .chunks_exact_mut(input_dim)
            .zip(branch.chunks_exact(input_dim))
        {
            for ((v, &o), &b) in x_t.iter_mut().zip(o_t).zip(self.down_bias) {
                *v += o + b;
            }
        }
    }
}

/// A running mean over frames with weight `a = 2^−shift` on the newest:
/// `m_0 = x_0`, `m_t = (1 − a)·m_{t−1} + a·x_t`. Input centring and the
/// pooled readout both use it (`docs/model.md`, "Centring and pooling").
///
/// Why this form: `1 − a` and `a` are exact in f32 for a shift up to 24,
/// and a sum of two products of finite values with weights summing to 1
/// stays within the inputs' range, so the mean of finite frames never
/// overflows (`m + a·(x − m)` would: `x − m` can). Why powers of two: a
/// device without an FPU multiplies by them exactly too.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunningMean {
    rate: f32,
    keep: f32,
}

impl RunningMean {
    /// The mean of rate `2^−shift`; `None` for shift 0 (the option is
    /// off). Callers pass a validated shift (at most 24).
    pub(crate) fn new(shift: usize) -> Option<Self> {
        (shift > 0).then(|| {
            let rate = 1.0 / (1_u32 << shift) as f32;
            Self {
                rate,
                keep: 1.0 - rate,
            }
        })
    }

    /// `out = m_t` from `previous = m_{t−1}` (`None` at the first frame)
    /// and the frame `x`.
    pub(crate) fn next(&self, previous: Option<&[f32]>, x: &[f32], out: &mut [f32]) {
        match previous {
            None => out.copy_from_slice(x),
            Some(previous) => {
                out.copy_from_slice(previous);
                self.blend(out, x);
            }
        }
    }

    /// [`next`](Self::next) in place: `mean` holds `m_{t−1}` (ignored at
    /// the first frame) and becomes `m_t`.
    pub(crate) fn advance(&self, first: bool, mean: &mut [f32], x: &[f32]) {
        if first {
            mean.copy_from_slice(x);
        } else {
            self.blend(mean, x);
        }
    }

    /// `m = (1 − a)·m + a·x`: the one place the recurrence is written.
    fn blend(&self, mean: &mut [f32], x: &[f32]) {
        for (m, &v) in mean.iter_mut().zip(x) {
            *m = self.keep * *m + self.rate * v;
        }
    }
}

/// Input centring: `x̃_t = g·(x_t − m_t)`, `m` the input's
/// [`RunningMean`], `g = 2^gain_log2`.
///
/// Why: a recording's level (room, gain, offset) is far larger than the
/// motion the classes differ by; subtracting a causal running mean takes
/// it out without looking ahead, and the gain brings the motion to the
/// scale the weights start at. See `docs/training.md`, "The hard-set gap".
#[derive(Debug, Clone, Copy)]
pub(crate) struct Centring {
    pub(crate) mean: RunningMean,
    pub(crate) gain: f32,
}

impl Centring {
    /// The centring of a model's options; `None` when it is off.
    pub(crate) fn new(shift: usize, gain_log2: usize) -> Option<Self> {
        RunningMean::new(shift).map(|mean| Self {
            mean,
            gain: (1_u32 << gain_log2) as f32,
        })
    }

    /// Replaces frame `x` by `g·(x − mean)`, `mean` already `m_t`.
    pub(crate) fn apply(&self, mean: &[f32], x: &mut [f32]) {
        for (v, &m) in x.iter_mut().zip(mean) {
            *v = self.gain * (*v - m);
        }
    }

    /// Centres every frame of `x` (`n × D`, oldest first) in place, as
    /// pushing them one by one would; `mean` (`D`) is scratch.
    pub(crate) fn apply_rows(&self, x: &mut [f32], mean: &mut [f32]) {
        let dim = mean.len();
        for (t, frame) in x.chunks_exact_mut(dim).enumerate() {
            self.mean.advance(t == 0, mean, frame);
            self.apply(mean, frame);
        }
    }
}
