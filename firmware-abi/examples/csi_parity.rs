//! The host side of the C harness's CSI parity check: reads a recorded
//! esp-csi / ESP32-CSI-Tool log, runs its packets through the host
//! `aether-csi` extractor (the firmware's config, one band per model
//! input) and `aether-model` (the firmware's head over the blob), and
//! prints the packets and the expected frame counts and logits.
//!
//! Why an example and not xtask code: the expected values must come from
//! the host crates themselves at harness-generation time (so a new model
//! or a change to the extractor re-derives them; no golden file to
//! re-bless), while xtask stays plain std. `cargo xtask c-harness` runs
//! it and turns its output into `harness_csi.h`.
//!
//! ```text
//! cargo run -p aether-firmware --example csi_parity -- LOG BLOB WINDOW EVERY
//! ```
//!
//! prints, in order:
//! - `csi-packet <sig_mode> <cwb> <secondary> <stbc> <timestamp_us> <hex bytes>`
//!   for every CSI line of the log;
//! - `csi-expect <packets> <frames> <logit bits, hex>...` after every
//!   `EVERY`-th packet and after the last one (once any frame exists): the
//!   frames emitted so far and the logits of the model over the last
//!   `WINDOW` of them, oldest first — what a context with a `WINDOW`-frame
//!   ring classifies after `ruv_temporal_push_csi` of those packets.

use std::fmt::Write as _;
use std::process::ExitCode;

use aether_csi::{Extractor, LogParser, MAX_CSI_LEN, Parsed};
use aether_model::TemporalModel;
use aether_rvne::RvneView;
use aether_sparse::SparseBackend;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("csi_parity: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [log, blob, window, every] = args.as_slice() else {
        return Err("usage: csi_parity LOG BLOB WINDOW EVERY".into());
    };
    let window: usize = window.parse().map_err(|_| "WINDOW must be a number")?;
    let every: usize = every.parse().map_err(|_| "EVERY must be a number")?;
    if window == 0 || every == 0 {
        return Err("WINDOW and EVERY must be positive".into());
    }
    let log = std::fs::read(log).map_err(|e| format!("{log}: {e}"))?;
    let blob = std::fs::read(blob).map_err(|e| format!("{blob}: {e}"))?;
    let view = RvneView::parse(&blob).map_err(|e| format!("blob: {e}"))?;
    let backend =
        SparseBackend::new(ruv_temporal::head_config(&view)).map_err(|e| format!("head: {e:?}"))?;
    let weights = view.to_weights().map_err(|e| format!("blob: {e}"))?;
    let model = TemporalModel::new(weights, backend).map_err(|e| format!("model: {e}"))?;
    let dim = model.input_dim();
    let config = ruv_temporal::csi_config(dim)
        .ok_or_else(|| format!("input_dim {dim} is not a CSI band count"))?;
    let mut extractor = Extractor::new(config).map_err(|e| format!("extractor: {e}"))?;

    let mut parser = LogParser::new();
    let mut buf = [0_i8; MAX_CSI_LEN];
    let mut frames: Vec<f32> = Vec::new();
    let mut out = String::new();
    let lines: Vec<&[u8]> = log.split(|&b| b == b'\n').collect();
    let csi_lines = lines
        .iter()
        .filter(|line| line.windows(9).any(|w| w == b"CSI_DATA,"))
        .count();
    let mut packets = 0;
    for (number, line) in lines.iter().enumerate() {
        let record = match parser.parse_line(line, &mut buf) {
            Ok(Parsed::Csi(record)) => record,
            Ok(Parsed::Header(_) | Parsed::NotCsi) => continue,
            Err(e) => return Err(format!("log line {}: {e}", number + 1)),
        };
        let packet = record.packet();
        let _ = write!(
            out,
            "csi-packet {} {} {} {} {}",
            packet.sig_mode, packet.cwb, packet.secondary, packet.stbc, packet.timestamp_us
        );
        out.push(' ');
        for byte in packet.buf {
            let _ = write!(out, "{:02x}", byte.to_le_bytes()[0]);
        }
        out.push('\n');
        extractor
            .push(&packet, &mut |frame| frames.extend_from_slice(frame.values))
            .map_err(|e| format!("log line {}: {e}", number + 1))?;
        packets += 1;
        let held = frames.len() / dim;
        if (packets % every == 0 || packets == csi_lines) && held > 0 {
            let tail = &frames[(held - held.min(window)) * dim..];
            let logits = model.classify(tail).map_err(|e| format!("classify: {e}"))?;
            let _ = write!(out, "csi-expect {packets} {held}");
            for logit in logits {
                let _ = write!(out, " {:08x}", logit.to_bits());
            }
            out.push('\n');
        }
    }
    if packets != csi_lines {
        return Err(format!("{csi_lines} CSI lines, {packets} packets read"));
    }
    print!("{out}");
    Ok(())
}
