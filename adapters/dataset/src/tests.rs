//! Unit tests of windowing and the splits (`docs/training-data.md`,
//! "Windows" and "Split").

use super::*;

/// A sequence of `len` one-value frames `base, base+1, …` with labels
/// given by `label(frame)`.
fn seq(id: &str, len: usize, base: f32, label: impl Fn(usize) -> usize) -> Sequence {
    Sequence {
        id: id.to_owned(),
        frames: (0..len).map(|i| base + i as f32).collect(),
        labels: (0..len).map(label).collect(),
    }
}

fn recs(sequences: Vec<Sequence>) -> Recordings {
    Recordings {
        input_dim: 1,
        classes: vec!["a".into(), "b".into()],
        sequences,
    }
}

#[test]
fn windows_are_cut_every_hop_and_labelled_by_their_last_frame() {
    let data = recs(vec![
        seq("x", 7, 0.0, |i| usize::from(i >= 4)),
        seq("short", 2, 100.0, |_| 0),
        seq("y", 3, 10.0, |_| 1),
    ]);
    let w = data.windows(3, 2).unwrap();
    assert_eq!((w.input_dim, w.window, w.len()), (1, 3, 4));
    // x: starts 0, 2, 4 (start 6 would run past the end); y: start 0.
    assert_eq!(
        w.frames,
        [
            0.0, 1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 5.0, 6.0, 10.0, 11.0, 12.0
        ]
    );
    assert_eq!(w.labels, [0, 1, 1, 1]);
    assert_eq!(w.window_frames(1), [2.0, 3.0, 4.0]);
}

#[test]
fn windows_of_wider_frames_keep_frame_order() {
    let data = Recordings {
        input_dim: 2,
        classes: vec!["a".into()],
        sequences: vec![Sequence {
            id: "s".into(),
            frames: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            labels: vec![0; 3],
        }],
    };
    let w = data.windows(2, 1).unwrap();
    assert_eq!(w.frames, [1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(w.labels, [0, 0]);
}

#[test]
fn bad_window_requests_are_refused_with_their_reason() {
    let data = recs(vec![seq("x", 4, 0.0, |_| 0), seq("long", 5, 0.0, |_| 0)]);
    assert!(matches!(data.windows(0, 1), Err(DatasetError::ZeroWindow)));
    assert!(matches!(data.windows(1, 0), Err(DatasetError::ZeroHop)));
    let err = data.windows(6, 1).unwrap_err();
    assert!(matches!(
        &err,
        DatasetError::NoWindows { window: 6, longest_id, longest: 5 } if longest_id == "long"
    ));
    assert_eq!(
        err.to_string(),
        "no window of 6 frames: every sequence is shorter (the longest, `long`, has 5 frames)"
    );
}

#[test]
fn inconsistent_recordings_are_refused() {
    let mut data = recs(vec![seq("x", 4, 0.0, |_| 0)]);
    data.sequences[0].frames.pop();
    assert!(matches!(data.windows(1, 1), Err(DatasetError::BadSequence { id, .. }) if id == "x"));
    let data = recs(vec![seq("x", 4, 0.0, |i| i)]);
    let err = data.windows(1, 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sequence `x`: frame 2 has label 2, but there are only 2 classes"
    );
    let mut data = recs(vec![seq("x", 4, 0.0, |_| 0)]);
    data.classes[1] = "a".into();
    assert!(matches!(data.windows(1, 1), Err(DatasetError::DuplicateClass(c)) if c == "a"));
    let data = recs(vec![seq("x", 4, 0.0, |_| 0), seq("x", 4, 0.0, |_| 0)]);
    assert!(matches!(data.windows(1, 1), Err(DatasetError::DuplicateSequence(id)) if id == "x"));
    let data = Recordings {
        input_dim: 0,
        ..recs(Vec::new())
    };
    assert!(matches!(
        data.windows(1, 1),
        Err(DatasetError::ZeroInputDim)
    ));
}

/// Which sequence each window came from, by its distinct first value.
fn origins(w: &Windows) -> Vec<f32> {
    (0..w.len()).map(|i| w.window_frames(i)[0]).collect()
}

#[test]
fn split_is_by_sequence_seeded_and_keeps_one_on_each_side() {
    let data = recs(
        (0..10)
            .map(|k| seq(&format!("s{k}"), 4, 100.0 * k as f32, |_| k % 2))
            .collect(),
    );
    let split = data.split(4, 1, 0.3, 9).unwrap();
    assert_eq!(split.classes, ["a", "b"]);
    assert_eq!((split.train.len(), split.test.len()), (7, 3));
    let (train, test) = (origins(&split.train), origins(&split.test));
    assert!(train.iter().all(|v| !test.contains(v)));
    // Each side keeps the original order of its sequences.
    assert!(train.is_sorted() && test.is_sorted());
    assert_eq!(data.split(4, 1, 0.3, 9).unwrap(), split);
    let others: Vec<Vec<f32>> = (0..20)
        .map(|seed| origins(&data.split(4, 1, 0.3, seed).unwrap().test))
        .collect();
    assert!(others.iter().any(|t| *t != test));
    // Tiny and huge fractions still leave one sequence on each side.
    assert_eq!(data.split(4, 1, 0.001, 1).unwrap().test.len(), 1);
    assert_eq!(data.split(4, 1, 0.999, 1).unwrap().train.len(), 1);
}

#[test]
fn split_errors_name_the_problem() {
    let one = recs(vec![seq("x", 4, 0.0, |_| 0)]);
    assert!(matches!(
        one.split(2, 1, 0.5, 1),
        Err(DatasetError::TooFewSequences(1))
    ));
    for fraction in [0.0, 1.0, -0.5, f64::NAN] {
        assert!(matches!(
            one.split(2, 1, fraction, 1),
            Err(DatasetError::BadFraction(_))
        ));
    }
    // One long and one short sequence: whichever side gets the short one
    // has no window.
    let data = recs(vec![
        seq("long", 8, 0.0, |_| 0),
        seq("short", 2, 0.0, |_| 0),
    ]);
    let err = data.split(4, 1, 0.5, 1).unwrap_err();
    assert!(matches!(
        err,
        DatasetError::EmptySide {
            window: 4,
            sequences: 1,
            ..
        }
    ));
}

#[test]
fn split_files_unions_the_classes_and_renumbers_the_test_labels() {
    let train = recs(vec![seq("t", 3, 0.0, |i| usize::from(i == 2))]);
    let test = Recordings {
        input_dim: 1,
        classes: vec!["c".into(), "a".into()],
        sequences: vec![seq("u", 3, 50.0, |i| usize::from(i != 2))],
    };
    let split = split_files(&train, &test, 2, 1).unwrap();
    assert_eq!(split.classes, ["a", "b", "c"]);
    assert_eq!(split.train.labels, [0, 1]);
    // test labels 1 ("a") then 0 ("c") → 0 and 2.
    assert_eq!(split.test.labels, [0, 2]);
    assert_eq!(origins(&split.test), [50.0, 51.0]);

    let wide = Recordings {
        input_dim: 2,
        ..test.clone()
    };
    let err = split_files(&train, &wide, 2, 1).unwrap_err();
    assert!(matches!(
        err,
        DatasetError::InputDimMismatch { train: 1, test: 2 }
    ));
    let err = split_files(&train, &test, 4, 1).unwrap_err();
    assert!(matches!(err, DatasetError::EmptySide { side: "train", .. }));
}
