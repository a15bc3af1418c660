//! `aether synth-csi`: write a generated raw ESP32 CSI log, boot noise and
//! all, in either serial format.
//!
//! `aether features` and `classify --csi` read what a board prints; without
//! a board (or to test those commands on captures with a known truth) a
//! user needs such a log. The generator is `aether-csi`'s `sim`
//! (`docs/csi-features.md`, "The generator"): a multipath room with a
//! simulated person, AGC steps, int8 quantisation, jittered timing with
//! drops, written exactly as esp-csi's `csi_recv` or ESP32-CSI-Tool print
//! it. It is a separate command rather than a mode of `aether synth`
//! because its output is a different kind of thing (a raw log, not feature
//! frames) with its own options.

use std::io::Write;
use std::path::PathBuf;

use aether_csi::LayoutFields;
use aether_csi::LogFormat;
use aether_csi::sim::{Activity, SimConfig, generate, write_log};
use clap::{Args, ValueEnum};

use crate::error::CliError;
use crate::init::parse_seed;
use crate::runtime::write_text;

/// The longest capture written. The generator builds the whole log in
/// memory (about 1 MB per second of HT20 at 100 Hz), so an hour would
/// need gigabytes; ten minutes is plenty for a test or a demo.
const MAX_SECONDS: f64 = 600.0;

/// Arguments of `aether synth-csi`.
#[derive(Debug, Args)]
pub(crate) struct SynthCsiArgs {
    /// Write the log here instead of standard output (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The serial format: `esp-csi` (Espressif's csi_recv example) or
    /// `csi-tool` (ESP32-CSI-Tool).
    #[arg(long, value_name = "FORMAT", default_value = "esp-csi")]
    format: Format,
    /// What the simulated person does.
    #[arg(long, value_name = "ACTIVITY", default_value = "walking")]
    activity: SimActivity,
    /// The packet type, which decides the buffer layout: `ht20` (LLTF and
    /// HT-LTF, 256 bytes), `lltf` (non-HT, 128 bytes) or `ht40` (secondary
    /// channel below, 384 bytes).
    #[arg(long, value_name = "LAYOUT", default_value = "ht20")]
    layout: SimLayout,
    /// Capture length in seconds (at most 600).
    #[arg(long, value_name = "S", default_value_t = 10.0, value_parser = parse_seconds)]
    seconds: f64,
    /// Nominal packets per second (jittered by ±2 ms).
    #[arg(long, value_name = "HZ", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    packet_rate: u32,
    /// Seed, decimal or 0x-hex.
    #[arg(long, default_value = "1", value_parser = parse_seed)]
    seed: u64,
    /// Let the receiver's AGC gain step every 1-3 s (by x0.6 to x1.6), as
    /// a real receiver's does; without it the gain stays nominal.
    #[arg(long)]
    agc_steps: bool,
    /// Probability that a packet is lost (0 to 1).
    #[arg(long, value_name = "P", default_value_t = 0.02, value_parser = parse_probability)]
    drop: f64,
    /// Probability that a packet is delivered twice (0 to 1).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability)]
    duplicate: f64,
    /// A radio outage: every packet from START s for LEN s is lost
    /// (`START,LEN`, e.g. `4,1.5`).
    #[arg(long, value_name = "START,LEN", value_parser = parse_outage)]
    outage: Option<(f64, f64)>,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    force: bool,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Espressif esp-csi `csi_recv`: a quoted, comma-separated data list.
    EspCsi,
    /// ESP32-CSI-Tool: a bare, space-separated data list.
    CsiTool,
}

/// `--activity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SimActivity {
    /// Nobody in the room.
    Empty,
    /// A person standing, breathing.
    Still,
    /// A person walking back and forth.
    Walking,
}

/// `--layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SimLayout {
    /// HT20, no secondary channel: LLTF and HT-LTF, 256 bytes.
    Ht20,
    /// Non-HT (legacy): the LLTF alone, 128 bytes.
    Lltf,
    /// HT40, secondary channel below: LLTF and HT-LTF, 384 bytes.
    Ht40,
}

impl SimLayout {
    /// The receive-control fields and buffer length of the layout.
    const fn fields(self) -> (LayoutFields, usize) {
        let (sig_mode, cwb, secondary, len) = match self {
            Self::Ht20 => (1, 0, 0, 256),
            Self::Lltf => (0, 0, 0, 128),
            Self::Ht40 => (1, 1, 2, 384),
        };
        (
            LayoutFields {
                sig_mode,
                cwb,
                secondary,
                stbc: 0,
            },
            len,
        )
    }
}

/// Parses `--seconds`: finite, above 0, at most [`MAX_SECONDS`].
fn parse_seconds(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if value > 0.0 && value <= MAX_SECONDS {
        Ok(value)
    } else {
        Err(format!("must be above 0 and at most {MAX_SECONDS}"))
    }
}

/// Parses a probability in [0, 1].
fn parse_probability(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err("must be between 0 and 1".to_owned())
    }
}

/// Parses `--outage START,LEN` (seconds, both finite and not negative).
fn parse_outage(text: &str) -> Result<(f64, f64), String> {
    let (start, length) = text
        .split_once(',')
        .ok_or_else(|| format!("`{text}` is not START,LEN"))?;
    let number = |t: &str| {
        t.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("`{}` is not a number of seconds", t.trim()))
    };
    Ok((number(start)?, number(length)?))
}

/// Generates the capture and writes its log.
pub(crate) fn run(args: &SynthCsiArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (fields, len) = args.layout.fields();
    let config = SimConfig {
        seed: args.seed,
        activity: match args.activity {
            SimActivity::Empty => Activity::Empty,
            SimActivity::Still => Activity::Still,
            SimActivity::Walking => Activity::Walking,
        },
        duration_s: args.seconds,
        packet_rate_hz: f64::from(args.packet_rate),
        drop_probability: args.drop,
        duplicate_probability: args.duplicate,
        outage_s: args.outage,
        agc_steps: args.agc_steps,
        fields,
        len,
        ..SimConfig::default()
    };
    let format = match args.format {
        Format::EspCsi => LogFormat::EspCsi,
        Format::CsiTool => LogFormat::CsiTool,
    };
    let packets = generate(&config);
    let log = write_log(&packets, format);
    if let Some(path) = write_text(out, args.out.as_deref(), args.force, &log)? {
        writeln!(
            out,
            "wrote {}: {} packets over {} s, {} lines",
            path.display(),
            packets.len(),
            args.seconds,
            log.lines().count()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked() {
        assert_eq!(parse_seconds("2.5"), Ok(2.5));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("601").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert_eq!(parse_probability("0.1"), Ok(0.1));
        assert!(parse_probability("1.5").is_err());
        assert!(parse_probability("nan").is_err());
        assert_eq!(parse_outage("4, 1.5"), Ok((4.0, 1.5)));
        assert!(parse_outage("4").is_err());
        assert!(parse_outage("-1,2").is_err());
    }

    #[test]
    fn every_layout_is_one_the_generator_accepts() {
        for layout in [SimLayout::Ht20, SimLayout::Lltf, SimLayout::Ht40] {
            let (fields, len) = layout.fields();
            assert!(aether_csi::Layout::new(fields, len).is_ok(), "{layout:?}");
        }
    }
}
