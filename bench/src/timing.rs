//! Wall-clock medians of repeated runs.
//!
//! Why a median of a few runs: the benchmark machine is shared, so single
//! runs are noisy and means are dragged by outliers; the median of a warm-up
//! plus several repetitions is what the tables and ratios report.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// How many times to run each measurement.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Repetitions {
    /// Unmeasured runs first (caches, page faults, CPU frequency).
    pub(crate) warm_up: usize,
    /// Measured runs; the median is reported.
    pub(crate) measured: usize,
}

/// Median wall-clock milliseconds of `f` over `reps.measured` runs after
/// `reps.warm_up` unmeasured ones. The result of the last run is returned
/// too, so callers can check it.
pub(crate) fn median_ms<R>(reps: Repetitions, mut f: impl FnMut() -> R) -> (f64, R) {
    for _ in 0..reps.warm_up {
        black_box(f());
    }
    let mut times: Vec<Duration> = Vec::with_capacity(reps.measured);
    let mut last = None;
    for _ in 0..reps.measured.max(1) {
        let start = Instant::now();
        let result = black_box(f());
        times.push(start.elapsed());
        last = Some(result);
    }
    times.sort_unstable();
    let mid = times.len() / 2;
    let median = if times.len().is_multiple_of(2) {
        (times[mid - 1] + times[mid]) / 2
    } else {
        times[mid]
    };
    let result = last.unwrap_or_else(|| unreachable!("at least one run"));
    (median.as_secs_f64() * 1e3, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_runs() {
        let mut calls = 0;
        let (ms, last) = median_ms(
            Repetitions {
                warm_up: 2,
                measured: 3,
            },
            || {
                calls += 1;
                calls
            },
        );
        assert_eq!((calls, last), (5, 5));
        assert!(ms >= 0.0);
    }
}
