//! The log-line parser on generated logs of both formats, on hand-written
//! lines (every error variant), and under proptest: no panic on any bytes,
//! and every record written reads back to itself.

use aether_csi::log::{CSI_TOOL_HEADER, ESP_CSI_HEADER, FieldProblem};
use aether_csi::sim::{SimConfig, SimPacket, generate, write_log};
use aether_csi::{
    ColumnMap, CsiRecord, Extractor, FeatureConfig, Frame, LayoutFields, LogError, LogFormat,
    LogParser, MAX_CSI_LEN, Parsed,
};
use proptest::prelude::*;

fn parse(line: &str) -> Result<(LogFormat, u32, Vec<i8>, u16), LogError> {
    let mut buf = [0_i8; MAX_CSI_LEN];
    match LogParser::new().parse_line(line.as_bytes(), &mut buf)? {
        Parsed::Csi(r) => Ok((r.format, r.timestamp_us, r.data.to_vec(), r.declared_len)),
        other => panic!("not CSI: {other:?}"),
    }
}

/// Frames and counts from a log, as `aether features` would compute them.
fn features_from_log(log: &str) -> (Vec<Vec<f32>>, usize, usize) {
    let mut parser = LogParser::new();
    let mut extractor = Extractor::new(FeatureConfig::default()).unwrap();
    let mut buf = [0_i8; MAX_CSI_LEN];
    let (mut frames, mut csi, mut other) = (Vec::new(), 0, 0);
    for line in log.lines() {
        match parser.parse_line(line.as_bytes(), &mut buf).unwrap() {
            Parsed::Csi(record) => {
                csi += 1;
                extractor
                    .push(&record.packet(), &mut |f: &Frame<'_>| {
                        frames.push(f.values.to_vec())
                    })
                    .unwrap();
            }
            Parsed::Header(_) | Parsed::NotCsi => other += 1,
        }
    }
    extractor.finish(&mut |f: &Frame<'_>| frames.push(f.values.to_vec()));
    (frames, csi, other)
}

#[test]
fn generated_logs_of_both_formats_read_back_to_the_packets() {
    let packets = generate(&SimConfig {
        duration_s: 3.0,
        start_timestamp_us: u32::MAX - 1_000_000,
        ..SimConfig::default()
    });
    for format in [LogFormat::EspCsi, LogFormat::CsiTool] {
        let log = write_log(&packets, format);
        let mut parser = LogParser::new();
        let mut buf = [0_i8; MAX_CSI_LEN];
        let mut read: Vec<SimPacket> = Vec::new();
        let (mut headers, mut noise) = (0, 0);
        for line in log.lines() {
            match parser.parse_line(line.as_bytes(), &mut buf).unwrap() {
                Parsed::Csi(r) => {
                    assert_eq!(r.format, format);
                    assert_eq!(r.rssi, Some(packets[read.len()].rssi));
                    assert_eq!(r.mac, Some([0x1a, 0, 0, 0, 0, 0]));
                    assert_eq!(
                        r.seq,
                        (format == LogFormat::EspCsi).then_some(read.len() as u32)
                    );
                    let fields = LayoutFields {
                        sig_mode: r.sig_mode,
                        cwb: r.cwb,
                        secondary: r.secondary,
                        stbc: r.stbc,
                    };
                    let p = &packets[read.len()];
                    read.push(SimPacket {
                        buf: r.data.to_vec(),
                        fields,
                        timestamp_us: r.timestamp_us,
                        ..p.clone()
                    });
                }
                Parsed::Header(f) => {
                    assert_eq!(f, format);
                    headers += 1;
                }
                Parsed::NotCsi => noise += 1,
            }
        }
        assert_eq!(read, packets);
        assert_eq!(headers, 1);
        assert_eq!(noise, 5 + packets.len() / 97);
    }
    // The same capture through either log gives the same frames as the
    // packets themselves.
    let (a, csi_a, _) = features_from_log(&write_log(&packets, LogFormat::EspCsi));
    let (b, csi_b, _) = features_from_log(&write_log(&packets, LogFormat::CsiTool));
    assert_eq!((csi_a, csi_b), (packets.len(), packets.len()));
    assert_eq!(a, b);
    assert_eq!(a.len(), 150);
}

#[test]
fn esp_csi_lines_read_by_the_default_map() {
    let mut data = String::new();
    for k in 0..128 {
        data.push_str(&format!("{},", k % 40 - 20));
    }
    data.pop();
    // csi_recv prints the u32 timestamp with %d: -1294967296 is 3 000 000 000.
    let line = format!(
        "CSI_DATA,7,1a:00:00:00:00:00,-41,11,0,0,0,0,1,0,0,0,0,-95,0,11,0,-1294967296,0,72,0,128,1,\"[{data}]\"\r\n"
    );
    let (format, t, values, len) = parse(&line).unwrap();
    assert_eq!((format, t, len), (LogFormat::EspCsi, 3_000_000_000, 128));
    assert_eq!(values.len(), 128);
    assert_eq!((values[0], values[39], values[40]), (-20, 19, -20));
    // A time-stamped serial capture prefix does not hide the line.
    let (_, t2, _, _) = parse(&format!("[12:00:01.250] {line}")).unwrap();
    assert_eq!(t2, t);
}

#[test]
fn csi_tool_lines_with_unsigned_bytes_and_an_lltf_only_list() {
    let mut data = String::new();
    for k in 0..128 {
        // Old ESP32-CSI-Tool versions printed the bytes as uint8.
        data.push_str(&format!("{} ", if k % 2 == 0 { 250 } else { 5 }));
    }
    let line = format!(
        "CSI_DATA,AP,3C:71:BF:6D:2A:78,-73,11,1,0,1,1,1,0,0,0,0,-93,0,1,1,80272146,0,101,0,0,80.363225,384,[{data}]"
    );
    let (format, t, values, len) = parse(&line).unwrap();
    assert_eq!((format, t, len), (LogFormat::CsiTool, 80_272_146, 384));
    assert_eq!(values.len(), 128);
    assert_eq!((values[0], values[1]), (-6, 5));
}

#[test]
fn a_header_line_sets_the_columns_of_its_format() {
    // A reordered header (a fork that moved the timestamp first).
    let header = "type,local_timestamp,sig_mode,bandwidth,secondary_channel,stbc,len,data";
    let map = ColumnMap::from_header(header.as_bytes()).unwrap().unwrap();
    assert_eq!(map.format(), LogFormat::EspCsi);
    let mut parser = LogParser::new();
    let mut buf = [0_i8; MAX_CSI_LEN];
    assert_eq!(
        parser.parse_line(header.as_bytes(), &mut buf),
        Ok(Parsed::Header(LogFormat::EspCsi))
    );
    assert_eq!(parser.columns(LogFormat::EspCsi), &map);
    assert_eq!(parser.columns(LogFormat::CsiTool), &ColumnMap::CSI_TOOL);
    let Ok(Parsed::Csi(r)) = parser.parse_line(b"CSI_DATA,123,0,0,0,0,4,\"[1,2,3,4]\"", &mut buf)
    else {
        panic!("line not read with the header's columns");
    };
    assert_eq!(
        (r.timestamp_us, r.data, r.rssi, r.seq),
        (123, &[1_i8, 2, 3, 4][..], None, None)
    );
    for (header, expected) in [
        (ESP_CSI_HEADER, ColumnMap::ESP_CSI),
        (CSI_TOOL_HEADER, ColumnMap::CSI_TOOL),
    ] {
        assert_eq!(
            ColumnMap::from_header(header.as_bytes()),
            Ok(Some(expected))
        );
    }
    assert_eq!(
        ColumnMap::from_header(b"type,id,mac,rssi,len,data"),
        Err(LogError::HeaderMissingColumn { column: "sig_mode" })
    );
    let long = format!("type,{}data", "x,".repeat(70));
    assert_eq!(
        ColumnMap::from_header(long.as_bytes()),
        Err(LogError::HeaderTooLong)
    );
}

#[test]
fn boot_noise_is_not_csi() {
    let mut buf = [0_i8; MAX_CSI_LEN];
    for line in [
        &b""[..],
        b"I (123) wifi: mode : sta (1a:00:00:00:00:00)",
        b"\x1b[0;32mI (29) boot: ESP-IDF v5.1\x1b[0m",
        b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
        b"type,of,thing",
        b"CSI_DATA",
        b"\xff\xfe\x00garbage",
    ] {
        assert_eq!(
            LogParser::new().parse_line(line, &mut buf),
            Ok(Parsed::NotCsi),
            "{line:?}"
        );
    }
}

#[test]
fn every_malformed_line_gets_its_typed_error() {
    let good = "CSI_DATA,0,1a:00:00:00:00:00,-41,11,0,0,0,0,1,0,0,0,0,-95,0,11,0,1000,0,72,0,4,0,\"[1,2,3,4]\"";
    assert!(parse(good).is_ok());
    let field = |column, problem| LogError::Field { column, problem };
    let cases: Vec<(String, LogError)> = vec![
        (
            good.replace("\"[1,2,3,4]\"", "1 2 3 4"),
            LogError::MissingData,
        ),
        (
            good.replace(",-41,", ","),
            LogError::ColumnCount {
                expected: 24,
                found: 23,
            },
        ),
        (
            good.replace(",-41,", ",x,"),
            field("rssi", FieldProblem::NotANumber),
        ),
        (
            good.replace(",-41,", ",-200,"),
            field("rssi", FieldProblem::OutOfRange),
        ),
        (
            good.replace("1a:00:00:00:00:00", "1a:00:00"),
            field("mac", FieldProblem::NotANumber),
        ),
        (
            good.replace(",1000,", ",4294967296,"),
            field("local_timestamp", FieldProblem::OutOfRange),
        ),
        (
            good.replace(",4,0,\"", ",4,2,\""),
            field("first_word", FieldProblem::OutOfRange),
        ),
        (
            good.replace("[1,2,3,4]", "[1,2,x,4]"),
            LogError::Data {
                index: 2,
                problem: FieldProblem::NotANumber,
            },
        ),
        (
            good.replace("[1,2,3,4]", "[1,2,128,4]"),
            LogError::Data {
                index: 2,
                problem: FieldProblem::OutOfRange,
            },
        ),
        (
            good.replace("[1,2,3,4]", "[1,,3,4]"),
            LogError::Data {
                index: 1,
                problem: FieldProblem::NotANumber,
            },
        ),
        (good.replace("3,4]\"", "3,"), LogError::DataUnterminated),
        (good.replace("4]\"", "4]"), LogError::DataUnterminated),
        (format!("{good},1"), LogError::TrailingBytes),
        (
            good.replace("[1,2,3,4]", "[1,2,3]"),
            LogError::LengthMismatch {
                declared: 4,
                found: 3,
            },
        ),
    ];
    for (line, error) in cases {
        assert_eq!(parse(&line), Err(error), "{line}");
        assert!(!error.to_string().is_empty());
    }
    let mut small = [0_i8; 2];
    assert_eq!(
        LogParser::new().parse_line(good.as_bytes(), &mut small),
        Err(LogError::TooManyValues { capacity: 2 })
    );
    assert_eq!(
        LogParser::new().parse_line(b"type,id,len,data", &mut small),
        Err(LogError::HeaderMissingColumn { column: "sig_mode" })
    );
}

type Header = (LogFormat, [u8; 6], i8, i8, u8);
type Fields = (u8, u8, u8, u8);
type Body = (u32, u32, bool, Vec<i8>);

fn any_record() -> impl Strategy<Value = (Header, Fields, Body)> {
    (
        (
            prop_oneof![Just(LogFormat::EspCsi), Just(LogFormat::CsiTool)],
            any::<[u8; 6]>(),
            any::<i8>(),
            any::<i8>(),
            any::<u8>(),
        ),
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()),
        (
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
            proptest::collection::vec(any::<i8>(), 0..=MAX_CSI_LEN),
        ),
    )
}

proptest! {
    #[test]
    fn no_bytes_make_the_parser_panic(line in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut buf = [0_i8; MAX_CSI_LEN];
        let _ = LogParser::new().parse_line(&line, &mut buf);
    }

    #[test]
    fn no_csi_looking_bytes_make_the_parser_panic(
        body in "[-0-9,\\[\\]\" :a-fx]{0,300}",
    ) {
        let mut buf = [0_i8; 16];
        let line = format!("CSI_DATA,{body}");
        let _ = LogParser::new().parse_line(line.as_bytes(), &mut buf);
        let header = format!("type,{body}");
        let _ = LogParser::new().parse_line(header.as_bytes(), &mut buf);
    }

    #[test]
    fn every_record_reads_back_to_itself(
        ((format, mac, rssi, noise_floor, channel), (sig_mode, cwb, secondary, stbc), (timestamp_us, seq, first_word, data))
            in any_record(),
    ) {
        let record = CsiRecord {
            format,
            seq: (format == LogFormat::EspCsi).then_some(seq),
            mac: Some(mac),
            rssi: Some(rssi),
            noise_floor: Some(noise_floor),
            channel: Some(channel),
            sig_mode,
            cwb,
            secondary,
            stbc,
            timestamp_us,
            declared_len: data.len() as u16,
            first_word_invalid: (format == LogFormat::EspCsi).then_some(first_word),
            data: &data,
        };
        let mut line = String::new();
        record.write_line(format, &mut line).unwrap();
        let mut buf = [0_i8; MAX_CSI_LEN];
        let parsed = LogParser::new().parse_line(line.as_bytes(), &mut buf);
        prop_assert_eq!(parsed, Ok(Parsed::Csi(record)));
    }
}
