//! The core's peak multiply-add rate, measured, so the prefill GFLOP/s
//! figures read as a fraction of what this machine can do.
//!
//! Why it exists: a GFLOP/s bar set on one machine means little on
//! another (the development machines have been an AMD EPYC with AVX2 and a
//! Xeon with AVX-512, with twice the vector width). The ceiling that
//! matters is the multiply-add rate one core sustains at the sparse
//! kernel's vector width, so the bench measures it in the same run:
//! [`CHAINS`] independent chains of fused multiply-adds in registers, no
//! memory traffic, one thread, best of [`TRIES`].

use std::hint::black_box;
use std::time::Instant;

/// Independent accumulators: more than latency × issue ports (4 × 2 on
/// current x86 cores), so the chains never wait on each other.
const CHAINS: usize = 16;
/// Timed runs; the best one counts (the machine is shared).
const TRIES: usize = 5;
/// Multiply-add rounds per run (each round is [`CHAINS`] vector FMAs).
const ROUNDS: u64 = 2_000_000;

/// One core's measured peak.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peak {
    /// The vector width it was measured at (`avx512` or `avx2`).
    pub(crate) isa: &'static str,
    /// f32 floating-point operations per second (an FMA counts 2 per lane).
    pub(crate) gflops: f64,
}

/// Measures the peak at the widest width this CPU runs, or `None` where no
/// vector FMA is available (non-x86 hosts).
pub(crate) fn measure() -> Option<Peak> {
    measure_rounds(ROUNDS)
}

/// [`measure`] with `rounds` rounds per run.
fn measure_rounds(rounds: u64) -> Option<Peak> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected on this CPU just above, the
            // only requirement of the target-feature function.
            return Some(best("avx512", 16, rounds, || unsafe {
                x86::chains_avx512(rounds)
            }));
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: AVX2 and FMA were detected on this CPU just above.
            return Some(best("avx2", 8, rounds, || unsafe {
                x86::chains_avx2(rounds)
            }));
        }
    }
    None
}

/// The best of [`TRIES`] timed runs of `run` (`rounds` rounds each), as
/// GFLOP/s at `lanes` f32 lanes per vector.
fn best(isa: &'static str, lanes: usize, rounds: u64, run: impl Fn() -> f32) -> Peak {
    black_box(run());
    let mut seconds = f64::INFINITY;
    for _ in 0..TRIES {
        let start = Instant::now();
        black_box(run());
        seconds = seconds.min(start.elapsed().as_secs_f64());
    }
    let flops = rounds as f64 * CHAINS as f64 * lanes as f64 * 2.0;
    Peak {
        isa,
        gflops: flops / seconds / 1e9,
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;
    use std::hint::black_box;

    use super::CHAINS;

    /// `rounds` rounds of [`CHAINS`] dependent-per-chain 512-bit FMAs.
    #[target_feature(enable = "avx512f")]
    pub(super) fn chains_avx512(rounds: u64) -> f32 {
        // A factor just below 1 and a small addend keep every value finite
        // and normal however long it runs; `black_box` keeps the compiler
        // from folding the rounds.
        let factor = _mm512_set1_ps(black_box(0.999_999));
        let addend = _mm512_set1_ps(black_box(1.0e-7));
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..rounds {
            for a in &mut acc {
                *a = _mm512_fmadd_ps(*a, factor, addend);
            }
        }
        let sum = acc
            .iter()
            .fold(_mm512_setzero_ps(), |s, &a| _mm512_add_ps(s, a));
        _mm512_reduce_add_ps(sum)
    }

    /// `rounds` rounds of [`CHAINS`] dependent-per-chain 256-bit FMAs.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn chains_avx2(rounds: u64) -> f32 {
        let factor = _mm256_set1_ps(black_box(0.999_999));
        let addend = _mm256_set1_ps(black_box(1.0e-7));
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        for _ in 0..rounds {
            for a in &mut acc {
                *a = _mm256_fmadd_ps(*a, factor, addend);
            }
        }
        let sum = acc
            .iter()
            .fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a));
        _mm256_cvtss_f32(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measured_peak_is_positive_and_finite() {
        // Where there is a vector FMA the rate is a real, positive number
        // (a folded loop would show up as an absurd one: over 10 TFLOP/s
        // for a single core).
        // Few rounds: tests run unoptimised.
        if let Some(peak) = measure_rounds(20_000) {
            assert!(peak.gflops.is_finite() && peak.gflops > 0.1, "{peak:?}");
            assert!(peak.gflops < 10_000.0, "{peak:?}");
        }
    }
}
