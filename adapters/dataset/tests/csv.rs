//! The labelled CSV format (`docs/training-data.md`, "Labelled CSV"):
//! what it accepts, every refusal with its file, line and column, and
//! two properties: parsing never panics, and write → parse gives the same
//! bits back.

use aether_dataset::csv::{parse_labelled, read_labelled, write_labelled};
use aether_dataset::{DatasetError, Recordings, Sequence};
use proptest::prelude::*;

const GOOD: &str = "label,sequence,f0,f1\nstill,a,1,2\nstill,a,3,4.5\nfall,a,-1e-3,0\nwave,b,7,8\n";

#[test]
fn a_good_file_parses_into_sequences_and_first_appearance_classes() {
    let r = parse_labelled(GOOD, "good.csv").unwrap();
    assert_eq!(r.input_dim, 2);
    assert_eq!(r.classes, ["still", "fall", "wave"]);
    assert_eq!(r.sequences.len(), 2);
    assert_eq!(r.sequences[0].id, "a");
    assert_eq!(r.sequences[0].frames, [1.0, 2.0, 3.0, 4.5, -1e-3, 0.0]);
    assert_eq!(r.sequences[0].labels, [0, 0, 1]);
    assert_eq!(r.sequences[1].labels, [2]);
}

#[test]
fn crlf_blank_lines_spaces_a_bom_and_no_final_newline_are_tolerated() {
    let text = "\u{feff}\r\nlabel, sequence ,f0,f1\r\n\r\n still ,a, 1 ,2\r\n  \nstill,a,3,4.5\r\nfall,a,-1e-3,0\r\nwave,b,7,8";
    assert_eq!(
        parse_labelled(text, "x").unwrap(),
        parse_labelled(GOOD, "y").unwrap()
    );
}

/// The error's place and message, for compact assertions.
fn place(text: &str) -> (usize, usize, String) {
    match parse_labelled(text, "f.csv").unwrap_err() {
        DatasetError::Csv {
            file,
            line,
            column,
            problem,
        } => {
            assert_eq!(file, "f.csv");
            (line, column, problem)
        }
        other => panic!("not a CSV error: {other}"),
    }
}

#[test]
fn every_bad_row_is_named_by_line_and_column() {
    let h = "label,sequence,f0,f1\n";
    let cases: [(String, usize, usize, &str); 12] = [
        (String::new(), 1, 1, "empty file"),
        ("\n\n".into(), 1, 1, "empty file"),
        ("name,sequence,f0\n".into(), 1, 1, "expected `label`"),
        ("label\n".into(), 1, 2, "expected `sequence`"),
        ("label,sequence\n".into(), 1, 3, "no feature columns"),
        ("label,sequence,f0,f2\n".into(), 1, 4, "expected `f1`"),
        (h.to_owned(), 2, 1, "no data rows"),
        (format!("{h}a,s,1\n"), 2, 4, "3 fields, the header has 4"),
        (format!("{h}a,s,1,2,3\n"), 2, 5, "5 fields"),
        (format!("{h}\na,s,1,2\n,s,1,2\n"), 4, 1, "empty label"),
        (format!("{h}a,,1,2\n"), 2, 2, "empty sequence id"),
        (format!("{h}a,s,1,x2\n"), 2, 4, "f1: `x2` is not a number"),
    ];
    for (text, line, column, words) in cases {
        let (l, c, problem) = place(&text);
        assert_eq!((l, c), (line, column), "{text:?}: {problem}");
        assert!(problem.contains(words), "{text:?}: {problem}");
    }
    for bad in ["NaN", "inf", "-inf", "1e39"] {
        let (l, c, problem) = place(&format!("{h}a,s,{bad},2\n"));
        assert_eq!((l, c), (2, 3));
        assert!(problem.contains("not finite"), "{problem}");
    }
}

#[test]
fn a_sequence_id_that_comes_back_is_refused() {
    let text = "label,sequence,f0\na,s,1\na,s,2\na,t,3\na,s,4\n";
    let err = parse_labelled(text, "f.csv").unwrap_err();
    assert_eq!(
        err.to_string(),
        "f.csv, line 5, column 2: sequence `s` reappears after sequence `t` (its rows ended at line 3); a sequence's rows must be consecutive"
    );
}

#[test]
fn read_names_the_file_it_cannot_read() {
    let err = read_labelled("/nonexistent/dir/x.csv").unwrap_err();
    assert!(matches!(&err, DatasetError::Read { path, .. } if path == "/nonexistent/dir/x.csv"));
    assert!(
        err.to_string()
            .starts_with("cannot read /nonexistent/dir/x.csv: ")
    );
}

#[test]
fn read_and_write_through_a_file() {
    let r = parse_labelled(GOOD, "good.csv").unwrap();
    let path = std::env::temp_dir().join(format!("aether-dataset-{}.csv", std::process::id()));
    write_labelled(&r, std::fs::File::create(&path).unwrap()).unwrap();
    let back = read_labelled(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(back.unwrap(), r);
}

#[test]
fn names_the_format_cannot_carry_are_refused_on_write() {
    let base = parse_labelled(GOOD, "good.csv").unwrap();
    for (class, reason) in [
        ("a,b", "it contains a comma"),
        ("", "it is empty"),
        (" x", "it has surrounding whitespace"),
        ("x\ny", "it contains a line break"),
    ] {
        let mut r = base.clone();
        r.classes[0] = class.to_owned();
        let err = write_labelled(&r, Vec::new()).unwrap_err();
        assert!(
            matches!(&err, DatasetError::BadName { kind: "class name", reason: got, .. } if *got == reason),
            "{err}"
        );
    }
    let mut r = base.clone();
    r.sequences[1].id = "b,c".into();
    assert!(matches!(
        write_labelled(&r, Vec::new()),
        Err(DatasetError::BadName {
            kind: "sequence id",
            ..
        })
    ));
    let mut r = base;
    r.sequences[1].frames.clear();
    r.sequences[1].labels.clear();
    assert!(matches!(
        write_labelled(&r, Vec::new()),
        Err(DatasetError::BadSequence { id, .. }) if id == "b"
    ));
}

#[test]
fn write_emits_the_documented_text() {
    let r = Recordings {
        input_dim: 2,
        classes: vec!["still".into(), "fall".into()],
        sequences: vec![Sequence {
            id: "s1".into(),
            frames: vec![0.1, -2.0, 1e-7, 3.5],
            labels: vec![1, 0],
        }],
    };
    let mut out = Vec::new();
    write_labelled(&r, &mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "label,sequence,f0,f1\nfall,s1,0.1,-2\nstill,s1,0.0000001,3.5\n"
    );
}

/// Recordings the CSV can carry: names without commas, line breaks or
/// surrounding whitespace; unique ids; at least one frame per sequence;
/// finite values of any magnitude.
fn writable() -> impl Strategy<Value = Recordings> {
    let name = "[a-z][a-z0-9 _-]{0,6}[a-z0-9]|[a-z]";
    let classes = prop::collection::btree_set(name, 1..4)
        .prop_map(|set| set.into_iter().rev().collect::<Vec<String>>());
    (1usize..4, classes)
        .prop_flat_map(move |(dim, classes)| {
            let n_classes = classes.len();
            let sequence = (1usize..6).prop_flat_map(move |len| {
                (
                    prop::collection::vec(
                        prop::num::f32::NORMAL | prop::num::f32::SUBNORMAL | prop::num::f32::ZERO,
                        len * dim,
                    ),
                    prop::collection::vec(0..n_classes, len),
                )
            });
            (
                Just(dim),
                Just(classes),
                prop::collection::vec(sequence, 1..4),
            )
        })
        .prop_map(|(input_dim, classes, parts)| Recordings {
            input_dim,
            classes,
            sequences: parts
                .into_iter()
                .enumerate()
                .map(|(k, (frames, labels))| Sequence {
                    id: format!("seq{k}"),
                    frames,
                    labels,
                })
                .collect(),
        })
}

/// What the reader gives back: classes renumbered in order of first use,
/// unused ones dropped.
fn as_read(r: &Recordings) -> Recordings {
    let mut classes: Vec<String> = Vec::new();
    let mut out = r.clone();
    for sequence in &mut out.sequences {
        for label in &mut sequence.labels {
            let name = &r.classes[*label];
            *label = classes.iter().position(|c| c == name).unwrap_or_else(|| {
                classes.push(name.clone());
                classes.len() - 1
            });
        }
    }
    out.classes = classes;
    out
}

fn bits(r: &Recordings) -> Vec<Vec<u32>> {
    r.sequences
        .iter()
        .map(|s| s.frames.iter().map(|v| v.to_bits()).collect())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn parsing_never_panics(text in "(?s).{0,200}") {
        let _ = parse_labelled(&text, "fuzz");
    }

    #[test]
    fn parsing_csv_like_text_never_panics(
        text in "(label,sequence(,f[0-3])*\n)?([a-z,0-9.eE+-]{0,12}\r?\n){0,6}"
    ) {
        let _ = parse_labelled(&text, "fuzz");
    }

    #[test]
    fn write_then_parse_round_trips_exactly(r in writable()) {
        let mut out = Vec::new();
        write_labelled(&r, &mut out).unwrap();
        let back = parse_labelled(std::str::from_utf8(&out).unwrap(), "rt").unwrap();
        let expected = as_read(&r);
        prop_assert_eq!(bits(&back), bits(&expected));
        prop_assert_eq!(back, expected);
    }
}
