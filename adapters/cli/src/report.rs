//! How results are printed, shared by `classify` and `demo`.
//!
//! One formatter for a classification (argmax, margin, logits) keeps the
//! two commands' output identical, so what a user learns from the demo
//! reads the same in `classify`, and scripts (and the tests) can parse
//! both. Logits are printed with seven decimals: at the magnitudes a
//! temporal model produces that is f32 precision, so a printed streaming
//! result can be compared with a printed prefill result to 1e-6.

use std::fmt::Write as _;

/// The decision a classification makes: the top class and by how much.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Decision {
    /// Index of the largest logit (the lowest index on a tie).
    pub(crate) argmax: usize,
    /// Largest logit minus the second largest (0 on a tie).
    pub(crate) margin: f32,
}

impl Decision {
    /// The decision for `logits` (at least two, as every valid blob has).
    pub(crate) fn of(logits: &[f32]) -> Self {
        let mut argmax = 0;
        for (index, &value) in logits.iter().enumerate() {
            if value > logits[argmax] {
                argmax = index;
            }
        }
        let runner_up = logits
            .iter()
            .enumerate()
            .filter(|&(index, _)| index != argmax)
            .map(|(_, &value)| value)
            .fold(f32::NEG_INFINITY, f32::max);
        let margin = if runner_up.is_finite() {
            logits[argmax] - runner_up
        } else {
            0.0
        };
        Self { argmax, margin }
    }
}

/// `argmax 2  margin 0.0123456  logits [+0.1234567, -0.0123456]`.
pub(crate) fn decision_and_logits(logits: &[f32]) -> String {
    let decision = Decision::of(logits);
    format!(
        "argmax {}  margin {:.7}  logits {}",
        decision.argmax,
        decision.margin,
        logits_list(logits)
    )
}

/// `[+0.1234567, -0.0123456]`.
pub(crate) fn logits_list(logits: &[f32]) -> String {
    let mut out = String::from("[");
    for (index, value) in logits.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{value:+.7}");
    }
    out.push(']');
    out
}

/// `41244` as `41,244`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Largest absolute difference between two equally long slices.
pub(crate) fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_picks_the_first_maximum_and_its_margin() {
        assert_eq!(
            Decision::of(&[0.5, 2.0, -1.0, 1.5]),
            Decision {
                argmax: 1,
                margin: 0.5
            }
        );
        assert_eq!(
            Decision::of(&[1.0, 1.0]),
            Decision {
                argmax: 0,
                margin: 0.0
            }
        );
    }

    #[test]
    fn formats() {
        assert_eq!(logits_list(&[0.25, -1.0]), "[+0.2500000, -1.0000000]");
        assert_eq!(
            decision_and_logits(&[0.25, -1.0]),
            "argmax 0  margin 1.2500000  logits [+0.2500000, -1.0000000]"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(41_244), "41,244");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(max_abs_diff(&[1.0, 2.0], &[1.5, 1.0]), 1.0);
    }
}
