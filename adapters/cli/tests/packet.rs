//! End-to-end tests of `aether packet` (`docs/packet.md`): the real binary
//! encodes packets, decodes them back from files and standard input, binary
//! and hex, answers each packet while its input pipe is still open, and
//! names each kind of bad packet with its check, position and exit status 1.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use aether_packet::{PACKET_LEN, Packet, encode, offset};
use common::*;

/// The packet of docs/packet.md's "Known packet" section.
const KNOWN_ARGS: &[&str] = &[
    "packet",
    "encode",
    "--logits",
    "0.5,1.75,2.5,-1.0",
    "--node",
    "3",
    "--seq",
    "7",
    "--ts-us",
    "1234567890123",
];

const KNOWN_HEX: &str =
    "070011c50100040003000000cb04fb711f0100000700000002000000000020400000403f9e755a40";

const KNOWN_TEXT: &str =
    "seq 7  node 3  ts_us 1234567890123  argmax 2 of 4  top_logit 2.5  margin 0.75";

/// `aether packet encode --logits LOGITS --seq SEQ` as binary.
fn encoded(logits: &str, seq: u32) -> Vec<u8> {
    let seq = seq.to_string();
    let output = aether(&["packet", "encode", "--logits", logits, "--seq", &seq]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(output.stdout.len(), PACKET_LEN);
    output.stdout
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn encode_writes_the_documented_bytes() {
    let binary = aether(KNOWN_ARGS);
    assert!(binary.status.success());
    assert_eq!(hex(&binary.stdout), KNOWN_HEX);
    let mut args = KNOWN_ARGS.to_vec();
    args.push("--hex");
    assert_eq!(ok(&args), format!("{KNOWN_HEX}\n"));
    // Negative first logit without `=`.
    let negative = ok(&["packet", "encode", "--logits", "-3,-1.5", "--hex"]);
    let decoded = ok_stdin(&["packet", "decode"], negative.as_bytes());
    assert_eq!(
        decoded,
        "seq 0  node 0  ts_us 0  argmax 1 of 2  top_logit -1.5  margin 1.5\n"
    );
}

/// Runs with `input` on standard input, asserts success, returns stdout.
fn ok_stdin(args: &[&str], input: &[u8]) -> String {
    let output = aether_with_stdin(args, input);
    assert!(
        output.status.success(),
        "aether {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

#[test]
fn round_trip_binary_and_hex_files_and_stdin() {
    let scratch = Scratch::new("packet-round-trip");
    let known = aether(KNOWN_ARGS).stdout;
    let mut stream = known.clone();
    stream.extend(encoded("1,2,3,4,5", 8));
    stream.extend(encoded("9,-9", 9));
    let expected = format!(
        "{KNOWN_TEXT}\n\
         seq 8  node 0  ts_us 0  argmax 4 of 5  top_logit 5.0  margin 1.0\n\
         seq 9  node 0  ts_us 0  argmax 0 of 2  top_logit 9.0  margin 18.0\n"
    );
    let binary = scratch.path("packets.bin");
    std::fs::write(&binary, &stream).unwrap();
    assert_eq!(ok(&["packet", "decode", s(&binary)]), expected);
    assert_eq!(ok(&["packet", "decode", "--binary", s(&binary)]), expected);
    assert_eq!(ok_stdin(&["packet", "decode"], &stream), expected);
    assert_eq!(ok_stdin(&["packet", "decode", "-"], &stream), expected);

    // Hex: comments, blank lines, spaces and upper case are fine.
    let text = format!(
        "# three packets\n\n{}  # the known one\n{}\n\r\n  {}\n",
        hex(&stream[..40]),
        hex(&stream[40..80]).to_uppercase(),
        hex(&stream[80..])
            .as_bytes()
            .chunks(8)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let hex_file = scratch.path("packets.hex");
    std::fs::write(&hex_file, &text).unwrap();
    assert_eq!(ok(&["packet", "decode", s(&hex_file)]), expected);
    assert_eq!(ok(&["packet", "decode", "--hex", s(&hex_file)]), expected);
    assert_eq!(
        ok_stdin(&["packet", "decode", "-"], text.as_bytes()),
        expected
    );
}

#[test]
fn json_lines_have_stable_fields() {
    let out = ok_stdin(
        &["packet", "decode", "--format", "json"],
        &aether(KNOWN_ARGS).stdout,
    );
    assert_eq!(
        out,
        "{\"index\":0,\"node_id\":3,\"seq\":7,\"ts_us\":1234567890123,\"n_classes\":4,\
         \"argmax\":2,\"top_logit\":2.5,\"margin\":0.75}\n"
    );
}

#[test]
fn empty_input_is_no_packets() {
    assert_eq!(ok_stdin(&["packet", "decode"], b""), "");
    assert_eq!(
        ok_stdin(&["packet", "decode", "--hex"], b"# nothing\n\n"),
        ""
    );
}

/// The known packet's bytes with `edit` applied and the CRC recomputed
/// (with `crc32fast`, not the crate under test), so that only the edited
/// field is wrong.
fn corrupted(edit: impl FnOnce(&mut [u8]), fix_crc: bool) -> Vec<u8> {
    let mut bytes = aether(KNOWN_ARGS).stdout;
    edit(&mut bytes);
    if fix_crc {
        let crc = crc32fast::hash(&bytes[..offset::CRC]);
        bytes[offset::CRC..].copy_from_slice(&crc.to_le_bytes());
    }
    bytes
}

/// A packet whose CRC is right but whose fields are not (the library
/// encodes what it is given).
fn with_fields(edit: impl FnOnce(&mut Packet)) -> Vec<u8> {
    let mut packet = Packet::from_logits(&[0.5, 1.75, 2.5, -1.0], 3, 1_234_567_890_123, 7)
        .expect("valid logits");
    edit(&mut packet);
    encode(&packet).to_vec()
}

/// Decodes two good packets followed by `bad`, as binary on standard input
/// and as hex from standard input; both must print the good ones, then
/// fail with exit 1 and one line naming packet 2. Returns the binary
/// run's message after `packet 2 at byte 80: ` and checks the hex run says
/// the same after `<stdin>:4: packet 2: `.
fn third_packet_fails(bad: &[u8]) -> String {
    let good = aether(KNOWN_ARGS).stdout;
    let mut stream = good.clone();
    stream.extend(&good);
    stream.extend(bad);
    let output = aether_with_stdin(&["packet", "decode"], &stream);
    let line = one_error(&output, 1, "decode (binary)");
    assert_eq!(stdout(&output), format!("{KNOWN_TEXT}\n{KNOWN_TEXT}\n"));
    let binary = line
        .strip_prefix("error: <stdin>: packet 2 at byte 80: ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();

    let text = format!("# header\n{}\n{}\n{}\n", hex(&good), hex(&good), hex(bad));
    let output = aether_with_stdin(&["packet", "decode"], text.as_bytes());
    let line = one_error(&output, 1, "decode (hex)");
    assert_eq!(stdout(&output), format!("{KNOWN_TEXT}\n{KNOWN_TEXT}\n"));
    assert_eq!(line, format!("error: <stdin>:4: packet 2: {binary}"));
    binary
}

#[test]
fn each_bad_field_is_named_with_its_check() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            corrupted(|b| b[3] = 0xC6, true),
            "check 2 of 6 (magic) failed: bad magic 0xC6110007; a classification packet \
             starts with 0xC5110007",
        ),
        (
            corrupted(|b| b[offset::VERSION] = 2, true),
            "check 3 of 6 (version) failed: unsupported packet version 2; this reader \
             understands version 1 only",
        ),
        (
            corrupted(|b| b[10] = 0x5A, true),
            "check 4 of 6 (reserved bytes) failed: reserved byte at offset 10 is 0x5A; it \
             must be 0",
        ),
        (
            corrupted(|b| b[27] = 1, true),
            "check 4 of 6 (reserved bytes) failed: reserved byte at offset 27 is 0x01; it \
             must be 0",
        ),
        (
            corrupted(|b| b[offset::SEQ] = 8, false),
            "check 5 of 6 (CRC) failed: CRC mismatch: stored 0x405A759E, computed 0xCEB012A4",
        ),
        (
            corrupted(|b| b[offset::CRC] ^= 0x80, false),
            "check 5 of 6 (CRC) failed: CRC mismatch: stored 0x405A751E, computed 0x405A759E",
        ),
        (
            with_fields(|p| {
                p.n_classes = 1;
                p.argmax = 0;
            }),
            "check 6 of 6 (field values) failed: n_classes is 1; a classifier has at least 2 \
             classes",
        ),
        (
            with_fields(|p| p.argmax = 4),
            "check 6 of 6 (field values) failed: argmax 4 is not a class; n_classes is 4",
        ),
        (
            with_fields(|p| p.top_logit = f32::NAN),
            "check 6 of 6 (field values) failed: top_logit is NaN; it must be finite",
        ),
        (
            with_fields(|p| p.top1_minus_top2 = f32::NEG_INFINITY),
            "check 6 of 6 (field values) failed: top1_minus_top2 is -inf; it must be finite",
        ),
        (
            with_fields(|p| p.top1_minus_top2 = -0.25),
            "check 6 of 6 (field values) failed: top1_minus_top2 is -0.25; the best logit \
             minus the second best is never negative",
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(third_packet_fails(&bytes), expected);
    }
}

#[test]
fn length_errors() {
    // Binary: a trailing partial packet names its length.
    let mut stream = aether(KNOWN_ARGS).stdout;
    stream.extend(&stream.clone()[..17]);
    let output = aether_with_stdin(&["packet", "decode"], &stream);
    assert_eq!(
        one_error(&output, 1, "partial"),
        "error: <stdin>: packet 1 at byte 40: the input ends after 17 of its 40 bytes (a \
         trailing partial packet)"
    );
    assert_eq!(stdout(&output), format!("{KNOWN_TEXT}\n"));

    // Hex: a short or long line is check 1.
    let scratch = Scratch::new("packet-length");
    let file = scratch.path("short.hex");
    std::fs::write(&file, format!("{}\n", &KNOWN_HEX[..78])).unwrap();
    assert_eq!(
        fails(&["packet", "decode", s(&file)], 1),
        format!(
            "error: {}:1: packet 0: check 1 of 6 (length) failed: packet is 39 bytes; a \
             classification packet is exactly 40",
            s(&file)
        )
    );
    let output = aether_with_stdin(&["packet", "decode"], format!("{KNOWN_HEX}00\n").as_bytes());
    assert_eq!(
        one_error(&output, 1, "long line"),
        "error: <stdin>:1: packet 0: check 1 of 6 (length) failed: packet is 41 bytes; a \
         classification packet is exactly 40"
    );
}

#[test]
fn hex_syntax_errors_name_line_and_column() {
    let text = format!("{KNOWN_HEX}\n# next is bad\n{}g0\n", &KNOWN_HEX[..10]);
    let output = aether_with_stdin(&["packet", "decode"], text.as_bytes());
    assert_eq!(
        one_error(&output, 1, "bad digit"),
        "error: <stdin>:3:11: `g` is not a hex digit (read as hex because the input does not \
         start with byte 0x07; pass --binary for binary packets)"
    );
    assert_eq!(stdout(&output), format!("{KNOWN_TEXT}\n"));
    // With --hex the format was not guessed, so no hint.
    let output = aether_with_stdin(&["packet", "decode", "--hex"], b"abc\n");
    assert_eq!(
        one_error(&output, 1, "odd"),
        "error: <stdin>:1: 3 hex digits, an odd number; each byte is two digits"
    );
    // Binary bytes forced through --hex.
    let output = aether_with_stdin(&["packet", "decode", "--hex"], &aether(KNOWN_ARGS).stdout);
    assert_eq!(
        one_error(&output, 1, "binary as hex"),
        "error: <stdin>:1:1: byte 0x07 is not a hex digit"
    );
    // Hex text forced through --binary: its first 40 characters are a
    // packet with a bad magic.
    let output = aether_with_stdin(&["packet", "decode", "--binary"], KNOWN_HEX.as_bytes());
    assert_eq!(
        one_error(&output, 1, "hex as binary"),
        "error: <stdin>: packet 0 at byte 0: check 2 of 6 (magic) failed: bad magic \
         0x30303730; a classification packet starts with 0xC5110007"
    );
}

#[test]
fn a_corrupted_first_byte_is_still_read_as_binary_unless_it_looks_like_text() {
    let mut bytes = aether(KNOWN_ARGS).stdout;
    bytes[0] = 0x99;
    let output = aether_with_stdin(&["packet", "decode"], &bytes);
    assert_eq!(
        one_error(&output, 1, "first byte 0x99"),
        "error: <stdin>: packet 0 at byte 0: check 2 of 6 (magic) failed: bad magic \
         0xC5110099; a classification packet starts with 0xC5110007"
    );
    // A first byte of `a` looks like hex; the message says how to insist.
    bytes[0] = b'a';
    let output = aether_with_stdin(&["packet", "decode"], &bytes);
    let line = one_error(&output, 1, "first byte a");
    assert!(line.contains("pass --binary for binary packets"), "{line}");
    let output = aether_with_stdin(&["packet", "decode", "--binary"], &bytes);
    assert!(one_error(&output, 1, "forced").contains("bad magic 0xC5110061"));
}

#[test]
fn unreadable_file_is_a_runtime_error() {
    let scratch = Scratch::new("packet-missing");
    let missing = scratch.path("missing.bin");
    let line = fails(&["packet", "decode", s(&missing)], 1);
    assert!(
        line.starts_with(&format!("error: cannot read {}: ", s(&missing))),
        "{line}"
    );
}

#[test]
fn usage_errors_exit_2() {
    for (args, expected) in [
        (
            &["packet", "encode", "--logits", "1,nan"][..],
            "error: invalid value '1,nan' for '--logits <L,...>': logit 1 is NaN; logits must \
             be finite (see --help)",
        ),
        (
            &["packet", "encode", "--logits", "1,inf"][..],
            "error: invalid value '1,inf' for '--logits <L,...>': logit 1 is inf; logits must \
             be finite (see --help)",
        ),
        (
            &["packet", "encode", "--logits", "5"][..],
            "error: invalid value '5' for '--logits <L,...>': a packet needs 2 to 255 logits \
             (argmax is one byte); got 1 (see --help)",
        ),
        (
            &["packet", "encode", "--logits", "1,,2"][..],
            "error: invalid value '1,,2' for '--logits <L,...>': logit 1 `` is not a number \
             (see --help)",
        ),
        (
            &["packet", "encode", "--logits", "3e38,-3e38"][..],
            "error: invalid value '3e38,-3e38' for '--logits <L,...>': top1 - top2 = \
             300000000000000000000000000000000000000 - -300000000000000000000000000000000000000 \
             overflows f32 (see --help)",
        ),
        (
            &["packet", "encode", "--logits", "1,2", "--node", "256"][..],
            "error: invalid value '256' for '--node <N>': 256 is not in 0..=255 (see --help)",
        ),
        (
            &["packet", "decode", "--hex", "--binary"][..],
            "error: the argument '--hex' cannot be used with '--binary' (see --help)",
        ),
        (
            &["packet", "decode", "--format", "csv"][..],
            "error: invalid value 'csv' for '--format <FORMAT>' [possible values: text, json] \
             (see --help)",
        ),
    ] {
        assert_eq!(fails(args, 2), expected, "{args:?}");
    }
    let missing = fails(&["packet", "encode"], 2);
    assert!(missing.contains("--logits"), "{missing}");
    let many = vec!["0"; 256].join(",");
    let too_many = fails(&["packet", "encode", "--logits", &many], 2);
    assert!(too_many.contains("got 256"), "{too_many}");
}

/// A child process killed if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How long a decoded line may take to appear; generous for a loaded
/// machine. A decoder that waited for the end of its input never answers.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Feeds packets one at a time through an open pipe (in `--hex` or binary
/// form) and requires each decoded line before the next packet is sent.
fn answers_while_the_pipe_is_open(hex_input: bool) {
    let mut args = vec!["packet", "decode"];
    if hex_input {
        args.push("--hex");
    }
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_aether"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run aether"),
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.0.stdin.take().expect("piped stdin");
    for seq in 0..3 {
        let packet = encoded("0.25,-4,1", seq);
        if hex_input {
            writeln!(stdin, "{}", hex(&packet)).unwrap();
        } else {
            // Split across two writes, as a pipe may deliver it.
            stdin.write_all(&packet[..13]).unwrap();
            stdin.flush().unwrap();
            stdin.write_all(&packet[13..]).unwrap();
        }
        stdin.flush().unwrap();
        let line = rx
            .recv_timeout(ANSWER_TIMEOUT)
            .unwrap_or_else(|e| panic!("no line for packet {seq} with the pipe open: {e}"));
        assert_eq!(
            line,
            format!("seq {seq}  node 0  ts_us 0  argmax 2 of 3  top_logit 1.0  margin 0.75")
        );
    }
    drop(stdin);
    let status = child.0.wait().expect("wait for aether");
    assert!(status.success());
}

#[test]
fn binary_packets_are_answered_while_the_pipe_is_open() {
    answers_while_the_pipe_is_open(false);
}

#[test]
fn hex_packets_are_answered_while_the_pipe_is_open() {
    answers_while_the_pipe_is_open(true);
}
