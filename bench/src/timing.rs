//! Wall-clock medians of repeated runs.
//!
//! Why a median of a few runs: the benchmark machine is shared, so single
//! runs are noisy and means are dragged by outliers; the median of a warm-up
//! plus several repetitions is what the tables and ratios report.

use std::hint::black_box;
use std::time::Instant;

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
    let mut last = None;
    let seconds = median_seconds(reps, || {
        let start = Instant::now();
        let result = black_box(f());
        let elapsed = start.elapsed().as_secs_f64();
        last = Some(result);
        elapsed
    });
    let result = last.unwrap_or_else(|| unreachable!("at least one run"));
    (seconds * 1e3, result)
}

/// Median of the seconds `timed` reports over `reps.measured` runs after
/// `reps.warm_up` unmeasured ones. For runs that time only part of their
/// work (set-up such as copying a cache excluded).
pub(crate) fn median_seconds(reps: Repetitions, mut timed: impl FnMut() -> f64) -> f64 {
    for _ in 0..reps.warm_up {
        black_box(timed());
    }
    median((0..reps.measured.max(1)).map(|_| timed()).collect())
}

/// The median of `values` (the mean of the middle two for an even
/// count): for measurements taken interleaved, where each series is
/// collected first and summarised after.
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
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

    #[test]
    fn median_of_reported_seconds_skips_warm_ups() {
        let mut runs = [9.0, 3.0, 1.0, 2.0, 7.0].into_iter();
        let reps = Repetitions {
            warm_up: 1,
            measured: 4,
        };
        // 9.0 is the warm-up; the median of 3, 1, 2, 7 is (2 + 3) / 2.
        assert_eq!(median_seconds(reps, || runs.next().unwrap()), 2.5);
        let mut runs = [1.0, 5.0, 4.0].into_iter();
        let odd = Repetitions {
            warm_up: 0,
            measured: 3,
        };
        assert_eq!(median_seconds(odd, || runs.next().unwrap()), 4.0);
    }
}
