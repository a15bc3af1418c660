//! Classification metrics on a held-out set: accuracy, macro-F1 and the
//! confusion matrix.
//!
//! Why macro-F1 beside accuracy: with unbalanced classes a model that
//! ignores a rare class keeps a high accuracy; macro-F1 weighs every class
//! equally, so it shows that.

use serde::{Deserialize, Serialize};

/// Counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// `counts[truth][predicted]`, `C × C`.
    pub counts: Vec<Vec<usize>>,
}

impl ConfusionMatrix {
    /// Tallies `truth[i]` against `predicted[i]` over `classes` classes.
    ///
    /// # Panics
    /// When the slices differ in length or a label is `>= classes` (a
    /// caller bug: labels are validated before training).
    #[must_use]
    pub fn new(classes: usize, truth: &[usize], predicted: &[usize]) -> Self {
        assert_eq!(truth.len(), predicted.len(), "one prediction per window");
        let mut counts = vec![vec![0; classes]; classes];
        for (&t, &p) in truth.iter().zip(predicted) {
            counts[t][p] += 1;
        }
        Self { counts }
    }

    /// Windows counted.
    #[must_use]
    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }

    /// Windows whose prediction was right.
    #[must_use]
    pub fn correct(&self) -> usize {
        (0..self.counts.len()).map(|c| self.counts[c][c]).sum()
    }

    /// F1 of class `c`, or `None` when the class neither occurs nor is
    /// predicted (its F1 is 0/0).
    #[must_use]
    pub fn f1(&self, c: usize) -> Option<f64> {
        let tp = self.counts[c][c];
        let actual: usize = self.counts[c].iter().sum();
        let predicted: usize = self.counts.iter().map(|row| row[c]).sum();
        // F1 = 2·tp / (2·tp + fp + fn) = 2·tp / (actual + predicted).
        (actual + predicted > 0).then(|| 2.0 * tp as f64 / (actual + predicted) as f64)
    }
}

/// How well predictions match the truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Windows evaluated.
    pub samples: usize,
    /// Fraction predicted right (0 when there is no window).
    pub accuracy: f64,
    /// Mean F1 over the classes that occur or are predicted (a class
    /// absent from both has no F1 and is left out rather than counted as
    /// 0 or 1).
    pub macro_f1: f64,
    /// The full tally.
    pub confusion: ConfusionMatrix,
}

impl Metrics {
    /// The metrics of `predicted` against `truth`.
    ///
    /// # Panics
    /// As [`ConfusionMatrix::new`].
    #[must_use]
    pub fn new(classes: usize, truth: &[usize], predicted: &[usize]) -> Self {
        let confusion = ConfusionMatrix::new(classes, truth, predicted);
        let samples = confusion.total();
        let accuracy = if samples == 0 {
            0.0
        } else {
            confusion.correct() as f64 / samples as f64
        };
        let f1s: Vec<f64> = (0..classes).filter_map(|c| confusion.f1(c)).collect();
        let macro_f1 = if f1s.is_empty() {
            0.0
        } else {
            f1s.iter().sum::<f64>() / f1s.len() as f64
        };
        Self {
            samples,
            accuracy,
            macro_f1,
            confusion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_example() {
        // truth:     0 0 0 1 1 2
        // predicted: 0 0 1 1 1 1
        let m = Metrics::new(3, &[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 1, 1]);
        assert_eq!(m.samples, 6);
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-15);
        assert_eq!(
            m.confusion.counts,
            vec![vec![2, 1, 0], vec![0, 2, 0], vec![0, 1, 0]]
        );
        // F1: class 0 = 4/5, class 1 = 4/6, class 2 = 0.
        let expected = (0.8 + 4.0 / 6.0 + 0.0) / 3.0;
        assert!((m.macro_f1 - expected).abs() < 1e-15, "{}", m.macro_f1);
    }

    #[test]
    fn absent_class_is_left_out_of_macro_f1() {
        let m = Metrics::new(3, &[0, 1], &[0, 1]);
        assert_eq!(m.confusion.f1(2), None);
        assert_eq!(m.macro_f1, 1.0);
        assert_eq!(m.accuracy, 1.0);
    }

    #[test]
    fn empty_set_has_zero_metrics() {
        let m = Metrics::new(2, &[], &[]);
        assert_eq!((m.samples, m.accuracy, m.macro_f1), (0, 0.0, 0.0));
    }
}
