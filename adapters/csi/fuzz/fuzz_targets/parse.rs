//! libFuzzer target for [`LogParser::parse_line`] and the extractor behind
//! it: no input may panic, overflow or read out of bounds, and every
//! accepted line must write back to a line that reads to the same packet.
//!
//! The input is split at newlines and fed line by line through one parser
//! (so a header line changes the columns of the lines after it) into one
//! extractor (so layouts, grids and timestamps of accepted packets meet the
//! resampler in any order the fuzzer finds).
#![no_main]

use aether_csi::{Extractor, FeatureConfig, Frame, LogParser, MAX_CSI_LEN, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parser = LogParser::new();
    let mut extractor = Extractor::new(FeatureConfig::default()).expect("default config is valid");
    let mut buf = [0_i8; MAX_CSI_LEN];
    let mut again = [0_i8; MAX_CSI_LEN];
    let mut frames = 0_u64;
    for line in data.split(|&b| b == b'\n') {
        let Ok(Parsed::Csi(record)) = parser.parse_line(line, &mut buf) else {
            continue;
        };
        let packet = record.packet();
        let width = extractor.config().bands;
        let _ = extractor.push(&packet, &mut |f: &Frame<'_>| {
            assert_eq!(f.values.len(), width);
            frames += 1;
        });
        // Differential check: the writer's line reads back to the same packet.
        let mut text = String::new();
        record
            .write_line(record.format, &mut text)
            .expect("String never fails");
        let Ok(Parsed::Csi(back)) = LogParser::new().parse_line(text.as_bytes(), &mut again) else {
            panic!("written line does not parse: {text}");
        };
        assert_eq!(
            (
                back.data,
                back.sig_mode,
                back.cwb,
                back.secondary,
                back.stbc,
                back.timestamp_us,
                back.declared_len
            ),
            (
                record.data,
                record.sig_mode,
                record.cwb,
                record.secondary,
                record.stbc,
                record.timestamp_us,
                record.declared_len
            ),
        );
    }
    extractor.finish(&mut |_: &Frame<'_>| frames += 1);
    assert_eq!(extractor.stats().frames, frames);
});
