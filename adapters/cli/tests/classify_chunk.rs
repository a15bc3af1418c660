//! `aether classify --segment S --chunk N`: segments classified in
//! parallel print exactly what the serial run prints, in every format, for
//! chunk sizes that divide the segment count and ones that do not, and the
//! flag is refused where it means nothing.

mod common;

use common::*;

#[test]
fn parallel_segments_print_the_serial_output() {
    let scratch = Scratch::new("classify-chunk");
    let model = default_model(&scratch);
    let frames = scratch.path("frames.csv");
    // 23 segments of 40 frames, the last one partial (920 + 7 frames).
    std::fs::write(&frames, frames_csv(927)).unwrap();
    for format in ["text", "json", "csv"] {
        let base = [
            "classify",
            "--model",
            s(&model),
            "--frames",
            s(&frames),
            "--segment",
            "40",
            "--format",
            format,
        ];
        let serial = ok(&base);
        if format == "text" {
            assert_eq!(results(&serial).len(), 24, "{serial}");
        }
        for chunk in ["1", "2", "5", "24", "100"] {
            let mut args = base.to_vec();
            args.extend(["--chunk", chunk]);
            assert_eq!(ok(&args), serial, "{format} --chunk {chunk}");
        }
    }
}

#[test]
fn chunk_needs_segments_and_prefill() {
    let scratch = Scratch::new("classify-chunk-usage");
    let model = default_model(&scratch);
    let frames = scratch.path("frames.csv");
    std::fs::write(&frames, frames_csv(10)).unwrap();
    let base = ["classify", "--model", s(&model), "--frames", s(&frames)];
    let mut without_segment = base.to_vec();
    without_segment.extend(["--chunk", "4"]);
    assert!(fails(&without_segment, 2).contains("--segment"));
    let mut streaming = base.to_vec();
    streaming.extend(["--segment", "4", "--stream", "--chunk", "4"]);
    assert!(fails(&streaming, 2).contains("--chunk"));
    let mut zero = base.to_vec();
    zero.extend(["--segment", "4", "--chunk", "0"]);
    fails(&zero, 2);
}
