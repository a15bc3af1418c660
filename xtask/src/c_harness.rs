//! `cargo xtask c-harness`: builds and runs the C harness (`tests/c/`)
//! against `libruv_temporal.a` on every target we can reach, and supplies
//! the same builds to `cargo xtask ci` and `cargo xtask size`.
//!
//! Targets, each one CI step:
//! - `host`: gcc `-std=c11 -Wall -Wextra -Werror` against the host archive,
//!   run; the harness checks logits against the Rust model's golden values
//!   and every bad input's code, and exits non-zero on any failure.
//! - `valgrind`: the same binary under valgrind, requiring no memory error
//!   and no leak of any kind.
//! - `qemu riscv32imc` / `qemu riscv32imafc`: the archive built for the
//!   ESP32-C3's ISA (soft float) and for RV32 with single-precision
//!   hardware float, linked by the bare-metal gcc with picolibc and run in
//!   `qemu-system-riscv32 -M virt` with semihosting (so the exit status
//!   comes back); its logits must equal the host's within 1e-5 of
//!   `max(1, largest |logit|)`.
//! - `xtensa`: the header and harness compiled (not run: no Xtensa
//!   emulator or Rust archive here) by `xtensa-lx106-elf-gcc -Werror`,
//!   where `int32_t` is `long`.
//!
//! Bare metal has no filesystem, so the model blob, the frames and the
//! golden logits are compiled in: [`write_data_header`] turns
//! `adapters/cli/assets/` and `tests/golden/c_harness_logits.csv` into
//! `harness_data.h` in the build directory (`target/c-harness/`), and
//! the recorded raw-CSI log `tests/data/csi/walking_esp_csi.log` into
//! `harness_csi.h`: its packets, and the frame counts and logits the host
//! crates compute for them (`firmware-abi/examples/csi_parity.rs`, run at
//! generation time, so a new model or extractor needs no re-blessing).

use std::{
    collections::BTreeMap,
    env,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    sync::OnceLock,
};

use crate::{
    Task, install,
    process::{self, cargo},
    step::{self, Outcome, SkipPolicy, Step},
};

/// Registration for `main`'s task table.
pub(crate) const TASK: Task = Task {
    name: "c-harness",
    summary: "Build and run the C harness on the host, valgrind, qemu RISC-V, Xtensa gcc",
    usage,
    run,
};

fn usage() -> String {
    "\
Usage: cargo xtask c-harness [host|valgrind|riscv32imc|riscv32imafc|xtensa]...

Builds libruv_temporal.a (`cargo build -p aether-firmware --profile
firmware`), links tests/c/harness.c against it and runs it; with no
argument, every target (the same steps `cargo xtask ci` runs). Missing
tools are installed with apt-get when running as root.

  host          gcc -std=c11 -Wall -Wextra -Werror, run
  valgrind      the host binary under valgrind: 0 errors, 0 leaks
  riscv32imc    ESP32-C3 ISA, soft float, run in qemu-system-riscv32
  riscv32imafc  RV32 with hardware f32, run in qemu-system-riscv32
  xtensa        xtensa-lx106-elf-gcc -Werror compile of header + harness

Build products go to <target dir>/c-harness/<target>/.
"
    .to_string()
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let mut chosen = Vec::new();
    for arg in args {
        if !TARGETS.contains(&arg.as_str()) {
            return Err(format!("unknown harness target `{arg}`"));
        }
        chosen.push(arg.as_str());
    }
    let selected: Vec<Step> = TARGETS
        .iter()
        .filter(|target| chosen.is_empty() || chosen.contains(target))
        .map(|target| step_for(target))
        .collect();
    Ok(step::run_all("c-harness", &selected, SkipPolicy::Allow))
}

/// The harness targets, in the order CI runs them.
const TARGETS: [&str; 5] = ["host", "valgrind", "riscv32imc", "riscv32imafc", "xtensa"];

/// The harness steps for `cargo xtask ci`.
pub(crate) fn steps() -> Vec<Step> {
    TARGETS.iter().map(|target| step_for(target)).collect()
}

/// The step checking one of [`TARGETS`].
fn step_for(target: &str) -> Step {
    match target {
        "host" => Step::new("c host", || outcome(host_run().map(|_| ()))),
        "valgrind" => Step::new("c valgrind", || outcome(valgrind_run())),
        "xtensa" => Step::new("c xtensa", || outcome(xtensa_compile())),
        isa => {
            let riscv = RISCV
                .into_iter()
                .find(|riscv| riscv.name == isa)
                .expect("TARGETS names only known ISAs");
            Step::new(format!("c qemu {isa}"), move || outcome(qemu_check(riscv)))
        }
    }
}

fn outcome(result: Result<(), Outcome>) -> Outcome {
    match result {
        Ok(()) => Outcome::Ok,
        Err(outcome) => outcome,
    }
}

/// One bare-metal RISC-V build of the harness.
#[derive(Clone, Copy)]
pub(crate) struct RiscV {
    /// Short name: the ISA string.
    pub(crate) name: &'static str,
    /// The Rust target the archive is built for.
    pub(crate) rust_target: &'static str,
    /// gcc's `-march`/`-mabi`; the float ABI must be the archive's
    /// (`ilp32` soft float for `imc`, `ilp32f` for `imafc`), or the link
    /// refuses to mix them.
    pub(crate) march: &'static str,
    pub(crate) mabi: &'static str,
}

/// The two RISC-V builds: the ESP32-C3's ISA, and RV32 with the
/// single-precision FPU (the ESP32-S3 has one; its Xtensa ISA cannot be
/// built here).
pub(crate) const RISCV: [RiscV; 2] = [
    RiscV {
        name: "riscv32imc",
        rust_target: "riscv32imc-unknown-none-elf",
        march: "rv32imc",
        mabi: "ilp32",
    },
    RiscV {
        name: "riscv32imafc",
        rust_target: "riscv32imafc-unknown-none-elf",
        march: "rv32imafc",
        mabi: "ilp32f",
    },
];

/// The host and the emulator may differ by summation order only; the
/// difference is taken in units of `max(1, largest |logit|)`, because
/// rounding grows with the logits (a trained model's reach ~30; measured
/// with the bundled model: at most 2e-6 of that scale).
const TOLERANCE: f32 = 1e-5;

/// Longest a harness run may take before it counts as hung (a qemu that
/// never reaches the semihosting exit would otherwise wait forever).
const RUN_TIMEOUT_SECONDS: &str = "600";

/// The emulated machine's memory map for picolibc's link script: code at
/// qemu `virt`'s RAM base (`-bios none` jumps there), data above it, and a
/// 256 KiB stack region the harness paints to measure stack depth.
const RISCV_LAYOUT: &[&str] = &[
    "-Wl,--defsym=__flash=0x80000000",
    "-Wl,--defsym=__flash_size=0x00400000",
    "-Wl,--defsym=__ram=0x80400000",
    "-Wl,--defsym=__ram_size=0x01000000",
    "-Wl,--defsym=__stack_size=0x00040000",
];

/// Allocation functions routed through the harness's counting wrappers
/// (`tests/c/harness_platform.c`) on bare metal.
const WRAPPED: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "free",
    "aligned_alloc",
    "memalign",
    "posix_memalign",
];

/// The harness's warnings, the same on every compiler: C11 and no
/// warning tolerated.
const C_FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror"];

fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                process::project_root().join(dir)
            }
        })
        .unwrap_or_else(|| process::project_root().join("target"))
}

fn build_dir(name: &str) -> Result<PathBuf, Outcome> {
    let dir = target_dir().join("c-harness").join(name);
    fs::create_dir_all(&dir)
        .map_err(|error| Outcome::Failed(format!("cannot create {}: {error}\n", dir.display())))?;
    Ok(dir)
}

fn sources() -> [PathBuf; 2] {
    let c = process::project_root().join("tests/c");
    [c.join("harness.c"), c.join("harness_platform.c")]
}

fn header_dir() -> PathBuf {
    process::project_root().join("firmware-abi/include")
}

/// Runs `command`; `Err(Failed)` with its transcript unless it exits 0.
fn must(command: Command) -> Result<String, Outcome> {
    let line = process::render(&command);
    match process::run_captured(command) {
        Ok(captured) if captured.success => Ok(captured.output),
        Ok(captured) => Err(Outcome::Failed(captured.transcript)),
        Err(error) => Err(Outcome::Failed(format!(
            "could not run `{line}`: {error}\n"
        ))),
    }
}

/// Builds `libruv_temporal.a` for `rust_target` (the host when `None`)
/// with the firmware profile, `envs` added to cargo's environment, and
/// returns its path.
fn build_archive(rust_target: Option<&str>, envs: &[(&str, &str)]) -> Result<PathBuf, Outcome> {
    let mut build = cargo();
    build.args(["build", "-p", "aether-firmware", "--profile", "firmware"]);
    build.envs(envs.iter().copied());
    let mut dir = target_dir();
    if let Some(target) = rust_target {
        install::rust_target(target)?;
        build.args(["--target", target]);
        dir = dir.join(target);
    }
    must(build)?;
    Ok(dir.join("firmware").join("libruv_temporal.a"))
}

// ------------------------------------------------------------------ data

/// Writes `harness_data.h` and `harness_csi.h` into `dir` (each only when
/// its text changed, so a rebuild that changes nothing recompiles
/// nothing).
fn write_data_header(dir: &Path) -> Result<(), Outcome> {
    let failed = |error: String| Outcome::Failed(format!("{error}\n"));
    write_if_changed(&dir.join("harness_data.h"), &data_header().map_err(failed)?)?;
    let csi = csi_header(csi_expected().map_err(failed)?).map_err(failed)?;
    write_if_changed(&dir.join("harness_csi.h"), &csi)
}

fn write_if_changed(path: &Path, text: &str) -> Result<(), Outcome> {
    if fs::read_to_string(path).ok().as_deref() != Some(text) {
        fs::write(path, text).map_err(|error| {
            Outcome::Failed(format!("cannot write {}: {error}\n", path.display()))
        })?;
    }
    Ok(())
}

/// The recorded raw-CSI log the harness replays through
/// `ruv_temporal_push_csi` (how it was made: `tests/data/csi/README.md`).
const CSI_LOG: &str = "tests/data/csi/walking_esp_csi.log";
/// The ring of the CSI run: 64 frames, 1.28 s at 50 frames/s.
const CSI_WINDOW: u32 = 64;
/// The CSI run classifies after every this many packets (and the last).
const CSI_CLASSIFY_EVERY: u32 = 100;

/// `csi_parity`'s output for [`CSI_LOG`] and the bundled model, computed
/// once per xtask run (every harness target embeds the same data).
fn csi_expected() -> Result<&'static str, String> {
    static OUTPUT: OnceLock<Result<String, String>> = OnceLock::new();
    OUTPUT
        .get_or_init(|| {
            let root = process::project_root();
            let mut example = cargo();
            example
                .args([
                    "run",
                    "-q",
                    "-p",
                    "aether-firmware",
                    "--example",
                    "csi_parity",
                    "--",
                ])
                .arg(root.join(CSI_LOG))
                .arg(root.join("adapters/cli/assets/default.rvne"))
                .arg(CSI_WINDOW.to_string())
                .arg(CSI_CLASSIFY_EVERY.to_string());
            let line = process::render(&example);
            match process::run_captured(example) {
                Ok(captured) if captured.success => Ok(captured.output),
                Ok(captured) => Err(captured.transcript),
                Err(error) => Err(format!("could not run `{line}`: {error}")),
            }
        })
        .as_deref()
        .map_err(Clone::clone)
}

/// One packet of the CSI run: layout fields, timestamp, bytes.
struct CsiPacketRow {
    fields: [u8; 4],
    timestamp_us: u32,
    bytes: Vec<i8>,
}

/// One expected classification of the CSI run.
struct CsiExpectRow {
    packets: u32,
    frames: u32,
    logits: Vec<f32>,
}

/// `csi-packet` and `csi-expect` lines (other output, e.g. cargo's, is
/// ignored).
fn read_csi_lines(output: &str) -> Result<(Vec<CsiPacketRow>, Vec<CsiExpectRow>), String> {
    let (mut packets, mut expects) = (Vec::new(), Vec::new());
    for line in output.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("csi_parity: unreadable line `{line}`");
        match fields.as_slice() {
            ["csi-packet", sig_mode, cwb, secondary, stbc, timestamp, hex] => {
                let byte = |s: &str| s.parse::<u8>().map_err(|_| bad());
                let bytes = (0..hex.len() / 2)
                    .map(|i| {
                        hex.get(2 * i..2 * i + 2)
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                    })
                    .map(|b| b.map(|b| i8::from_le_bytes([b])).ok_or_else(bad))
                    .collect::<Result<Vec<i8>, _>>()?;
                if hex.len() % 2 != 0 || bytes.is_empty() || bytes.len() > usize::from(u16::MAX) {
                    return Err(bad());
                }
                packets.push(CsiPacketRow {
                    fields: [byte(sig_mode)?, byte(cwb)?, byte(secondary)?, byte(stbc)?],
                    timestamp_us: timestamp.parse().map_err(|_| bad())?,
                    bytes,
                });
            }
            ["csi-expect", count, frames, logits @ ..] => expects.push(CsiExpectRow {
                packets: count.parse().map_err(|_| bad())?,
                frames: frames.parse().map_err(|_| bad())?,
                logits: logits
                    .iter()
                    .map(|hex| u32::from_str_radix(hex, 16).map(f32::from_bits))
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad())?,
            }),
            _ => {}
        }
    }
    if packets.is_empty() || expects.is_empty() {
        return Err(format!(
            "csi_parity printed no packets or no expectations:\n{output}"
        ));
    }
    Ok((packets, expects))
}

/// The generated C of the CSI run: the packets (one byte array and a
/// table of offsets and fields), the schedule, and the expected frame
/// counts and logits.
fn csi_header(output: &str) -> Result<String, String> {
    let (packets, expects) = read_csi_lines(output)?;
    let n_classes = expects[0].logits.len();
    if expects.iter().any(|row| row.logits.len() != n_classes) {
        return Err("csi_parity: rows with different logit counts".into());
    }
    let total: usize = packets.iter().map(|p| p.bytes.len()).sum();
    let mut c = String::new();
    let _ = writeln!(
        c,
        "/* Generated by `cargo xtask c-harness` from {CSI_LOG}; the expected"
    );
    c += " * values were computed by the host crates (aether-csi, aether-model) with\n";
    c += " * adapters/cli/assets/default.rvne: firmware-abi/examples/csi_parity.rs.\n";
    c += " * Do not edit: regenerated on every harness build. */\n";
    c += "#ifndef HARNESS_CSI_H\n#define HARNESS_CSI_H\n\n#include <stdint.h>\n\n";
    let _ = writeln!(c, "#define HARNESS_CSI_WINDOW {CSI_WINDOW}u");
    let _ = writeln!(
        c,
        "#define HARNESS_CSI_CLASSIFY_EVERY {CSI_CLASSIFY_EVERY}u"
    );
    let _ = writeln!(c, "#define HARNESS_CSI_PACKET_COUNT {}u", packets.len());
    let _ = writeln!(c, "#define HARNESS_CSI_EXPECT_COUNT {}u", expects.len());
    let _ = writeln!(c, "#define HARNESS_CSI_N_CLASSES {n_classes}u\n");
    c += "typedef struct {\n    uint32_t offset;\n    uint16_t len;\n    uint8_t sig_mode;\n";
    c += "    uint8_t cwb;\n    uint8_t secondary_channel;\n    uint8_t stbc;\n";
    c += "    uint32_t timestamp_us;\n} harness_csi_packet_t;\n\n";
    c += "typedef struct {\n    uint32_t packets;\n    uint32_t frames;\n";
    c += "    float logits[HARNESS_CSI_N_CLASSES];\n} harness_csi_expect_t;\n\n";
    let _ = writeln!(c, "static const int8_t harness_csi_bytes[{total}] = {{");
    for packet in &packets {
        for chunk in packet.bytes.chunks(32) {
            let bytes: Vec<String> = chunk.iter().map(i8::to_string).collect();
            let _ = writeln!(c, "    {},", bytes.join(","));
        }
    }
    c += "};\n\n";
    let _ = writeln!(
        c,
        "static const harness_csi_packet_t harness_csi_packets[{}] = {{",
        packets.len()
    );
    let mut offset = 0;
    for packet in &packets {
        let [sig_mode, cwb, secondary, stbc] = packet.fields;
        let _ = writeln!(
            c,
            "    {{{offset}u, {}u, {sig_mode}u, {cwb}u, {secondary}u, {stbc}u, {}u}},",
            packet.bytes.len(),
            packet.timestamp_us
        );
        offset += packet.bytes.len();
    }
    c += "};\n\n";
    let _ = writeln!(
        c,
        "static const harness_csi_expect_t harness_csi_expect[{}] = {{",
        expects.len()
    );
    for row in &expects {
        let logits: Vec<String> = row.logits.iter().map(|&v| c_float(v)).collect();
        let _ = writeln!(
            c,
            "    {{{}u, {}u, {{{}}}}},",
            row.packets,
            row.frames,
            logits.join(", ")
        );
    }
    c += "};\n\n#endif\n";
    Ok(c)
}

/// The generated C: blob bytes, frames and golden logits, plus the
/// model's `input_dim` and `n_classes` read from the blob header.
fn data_header() -> Result<String, String> {
    let root = process::project_root();
    let blob_path = root.join("adapters/cli/assets/default.rvne");
    let blob = fs::read(&blob_path).map_err(|e| format!("{}: {e}", blob_path.display()))?;
    if blob.len() < 28 {
        return Err(format!(
            "{}: too short for a .rvne blob",
            blob_path.display()
        ));
    }
    let input_dim = u16::from_le_bytes([blob[8], blob[9]]);
    let n_classes = u16::from_le_bytes([blob[18], blob[19]]);
    let frames = read_csv(&root.join("adapters/cli/assets/frames.csv"))?;
    if frames.iter().any(|row| row.len() != usize::from(input_dim)) {
        return Err(format!(
            "frames.csv: every frame must have {input_dim} values"
        ));
    }
    let golden = read_golden(&root.join("tests/golden/c_harness_logits.csv"))?;
    if golden
        .iter()
        .any(|row| row.logits.len() != usize::from(n_classes))
    {
        return Err(format!(
            "c_harness_logits.csv: every row needs {n_classes} logits"
        ));
    }

    let mut c = String::new();
    c += "/* Generated by `cargo xtask c-harness` from adapters/cli/assets/default.rvne,\n";
    c += " * adapters/cli/assets/frames.csv and tests/golden/c_harness_logits.csv.\n";
    c += " * Do not edit: regenerated on every harness build. */\n";
    c += "#ifndef HARNESS_DATA_H\n#define HARNESS_DATA_H\n\n#include <stdint.h>\n\n";
    let _ = writeln!(c, "#define HARNESS_INPUT_DIM {input_dim}u");
    let _ = writeln!(c, "#define HARNESS_N_CLASSES {n_classes}u");
    let _ = writeln!(c, "#define HARNESS_FRAME_COUNT {}u", frames.len());
    let _ = writeln!(c, "#define HARNESS_GOLDEN_COUNT {}u\n", golden.len());
    c += "/* 4-byte aligned like a blob in flash; the harness also tries an odd address. */\n";
    let _ = writeln!(
        c,
        "static const _Alignas(4) uint8_t harness_blob[{}] = {{",
        blob.len()
    );
    for chunk in blob.chunks(16) {
        let bytes: Vec<String> = chunk.iter().map(|b| format!("0x{b:02x}")).collect();
        let _ = writeln!(c, "    {},", bytes.join(", "));
    }
    c += "};\n\n";
    let _ = writeln!(
        c,
        "static const float harness_frames[{}] = {{",
        frames.len() * usize::from(input_dim)
    );
    for frame in &frames {
        let values: Vec<String> = frame.iter().map(|&v| c_float(v)).collect();
        let _ = writeln!(c, "    {},", values.join(", "));
    }
    c += "};\n\n";
    c += "typedef struct {\n    const char *run;\n    uint32_t window_len;\n    uint32_t pushed;\n";
    c += "    float logits[HARNESS_N_CLASSES];\n} harness_golden_t;\n\n";
    let _ = writeln!(
        c,
        "static const harness_golden_t harness_golden[{}] = {{",
        golden.len()
    );
    for row in &golden {
        let logits: Vec<String> = row.logits.iter().map(|&v| c_float(v)).collect();
        let _ = writeln!(
            c,
            "    {{\"{}\", {}u, {}u, {{{}}}}},",
            row.run,
            row.window_len,
            row.pushed,
            logits.join(", ")
        );
    }
    c += "};\n\n#endif\n";
    Ok(c)
}

/// An `f32` as a C float literal that reads back to the same bits
/// (Rust's shortest round-trip form, which always has a `.` or an `e`).
fn c_float(value: f32) -> String {
    format!("{value:?}f")
}

/// Rows of comma-separated floats; `#` lines and blank lines skipped.
fn read_csv(path: &Path) -> Result<Vec<Vec<f32>>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    data_lines(&text)
        .map(|(number, line)| {
            line.split(',')
                .map(|v| v.trim().parse::<f32>())
                .collect::<Result<Vec<f32>, _>>()
                .map_err(|e| format!("{}:{number}: {e}", path.display()))
        })
        .collect()
}

fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}

/// One row of `tests/golden/c_harness_logits.csv`.
struct GoldenRow {
    run: String,
    window_len: u32,
    pushed: u32,
    logits: Vec<f32>,
}

fn read_golden(path: &Path) -> Result<Vec<GoldenRow>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    data_lines(&text)
        .map(|(number, line)| {
            let bad = |what: &str| format!("{}:{number}: {what}", path.display());
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let [run, window_len, pushed, logits @ ..] = fields.as_slice() else {
                return Err(bad("expected run,window_len,pushed,logits..."));
            };
            if !run.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad("run must be a plain word"));
            }
            Ok(GoldenRow {
                run: (*run).to_string(),
                window_len: window_len.parse().map_err(|_| bad("window_len"))?,
                pushed: pushed.parse().map_err(|_| bad("pushed"))?,
                logits: logits
                    .iter()
                    .map(|v| v.parse::<f32>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad("logit"))?,
            })
        })
        .collect()
}

// ------------------------------------------------------------------ host

/// Builds the host harness; returns the executable.
fn host_build() -> Result<PathBuf, Outcome> {
    install::ensure(&[&install::GCC])?;
    let archive = build_archive(None, &[])?;
    let dir = build_dir("host")?;
    write_data_header(&dir)?;
    let exe = dir.join("harness");
    let mut gcc = Command::new("gcc");
    gcc.args(C_FLAGS)
        .args(["-O2", "-g"])
        .arg("-I")
        .arg(header_dir())
        .arg("-I")
        .arg(&dir)
        .args(sources())
        .arg(&archive)
        // What a Rust std staticlib needs from the system on Linux.
        .args(["-lpthread", "-ldl", "-lm", "-lgcc_s", "-lc"])
        .arg("-o")
        .arg(&exe);
    must(gcc)?;
    Ok(exe)
}

/// Builds and runs the host harness; returns its output.
fn host_run() -> Result<String, Outcome> {
    let exe = host_build()?;
    must(timed(Command::new(exe)))
}

/// The host harness under valgrind: any error or leaked block fails.
fn valgrind_run() -> Result<(), Outcome> {
    install::ensure(&[&install::VALGRIND])?;
    let exe = host_build()?;
    let mut valgrind = Command::new("valgrind");
    valgrind.args([
        "--error-exitcode=1",
        "--leak-check=full",
        "--show-leak-kinds=all",
        "--errors-for-leak-kinds=all",
    ]);
    valgrind.arg(exe);
    let output = must(timed(valgrind))?;
    // The exit status already covers errors and leaks; the summary line is
    // checked too so a valgrind that silently changed its flags cannot
    // pass.
    if output.contains("ERROR SUMMARY: 0 errors") && output.contains("All heap blocks were freed") {
        Ok(())
    } else {
        Err(Outcome::Failed(format!(
            "valgrind did not report 0 errors and all heap blocks freed:\n{output}"
        )))
    }
}

/// `command` under `timeout`, when the system has it.
fn timed(command: Command) -> Command {
    if which("timeout") {
        let mut timed = Command::new("timeout");
        timed.arg(RUN_TIMEOUT_SECONDS).arg(command.get_program());
        timed.args(command.get_args());
        if let Some(dir) = command.get_current_dir() {
            timed.current_dir(dir);
        }
        timed
    } else {
        command
    }
}

fn which(program: &str) -> bool {
    env::var_os("PATH")
        .is_some_and(|path| env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

// ---------------------------------------------------------------- RISC-V

/// What one RISC-V build left behind.
pub(crate) struct RiscVBuild {
    /// The linked harness.
    pub(crate) elf: PathBuf,
    /// The linker map (which archive members and sections were linked).
    pub(crate) map: PathBuf,
}

/// Builds the archive for `target` and links the harness with picolibc
/// for qemu's `virt` machine.
fn riscv_build(target: RiscV) -> Result<RiscVBuild, Outcome> {
    riscv_build_with(target, &[])
}

/// [`riscv_build`] with `envs` set for the archive's cargo build (the
/// size task pins the optimisation level this way).
pub(crate) fn riscv_build_with(
    target: RiscV,
    envs: &[(&str, &str)],
) -> Result<RiscVBuild, Outcome> {
    install::ensure(&[&install::RISCV_GCC, &install::QEMU_RISCV32])?;
    let archive = build_archive(Some(target.rust_target), envs)?;
    let dir = build_dir(target.name)?;
    write_data_header(&dir)?;
    let elf = dir.join("harness.elf");
    let map = dir.join("harness.map");
    let mut gcc = Command::new("riscv64-unknown-elf-gcc");
    gcc.arg(format!("-march={}", target.march))
        .arg(format!("-mabi={}", target.mabi))
        .args(C_FLAGS)
        .args(["-Os", "-g", "-DHARNESS_QEMU"])
        // picolibc with semihosting I/O, and the crt0 whose exit() is a
        // semihosting exit: without it qemu never returns.
        .args([
            "--specs=picolibc.specs",
            "--oslib=semihost",
            "--crt0=semihost",
        ])
        // printf("%g") of the logits needs the double-capable printf.
        .arg("-DPICOLIBC_DOUBLE_PRINTF_SCANF")
        .arg("-I")
        .arg(header_dir())
        .arg("-I")
        .arg(&dir)
        .args(sources())
        .arg(&archive)
        .args(RISCV_LAYOUT)
        .arg(format!("-Wl,-Map={}", map.display()))
        .args(WRAPPED.iter().map(|f| format!("-Wl,--wrap={f}")))
        .arg("-lm")
        .arg("-o")
        .arg(&elf);
    must(gcc)?;
    Ok(RiscVBuild { elf, map })
}

/// Runs a RISC-V harness in qemu; returns its output (a non-zero exit is
/// a failure). `-icount shift=0` makes `minstret` count instructions.
pub(crate) fn qemu_run(elf: &Path) -> Result<String, Outcome> {
    let mut qemu = Command::new("qemu-system-riscv32");
    qemu.args(["-M", "virt", "-bios", "none", "-nographic", "-semihosting"])
        .args(["-icount", "shift=0"])
        .arg("-kernel")
        .arg(elf);
    must(timed(qemu))
}

/// The CI check for one RISC-V build: it runs, passes its own checks, and
/// its logits equal the host harness's within 1e-5 of the logits' scale.
fn qemu_check(target: RiscV) -> Result<(), Outcome> {
    let build = riscv_build(target)?;
    let emulated = qemu_run(&build.elf)?;
    let host = host_run()?;
    compare_logits(&host, &emulated).map_err(|why| {
        Outcome::Failed(format!("{why}\n--- {} output ---\n{emulated}", target.name))
    })
}

/// `logits <run> <pushed> bits <hex>... values ...` lines, by (run, pushed).
fn logits_lines(output: &str) -> Result<BTreeMap<(String, u32), Vec<f32>>, String> {
    let mut found = BTreeMap::new();
    for line in output.lines().filter(|line| line.starts_with("logits ")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("unreadable line `{line}`");
        let (Some(run), Some(pushed), Some(&"bits")) =
            (fields.get(1), fields.get(2), fields.get(3))
        else {
            return Err(bad());
        };
        let logits = fields[4..]
            .iter()
            .take_while(|field| **field != "values")
            .map(|hex| u32::from_str_radix(hex, 16).map(f32::from_bits))
            .collect::<Result<Vec<f32>, _>>()
            .map_err(|_| bad())?;
        found.insert(
            ((*run).to_string(), pushed.parse().map_err(|_| bad())?),
            logits,
        );
    }
    Ok(found)
}

/// The emulated run printed the same classifications as the host, each
/// within [`TOLERANCE`].
fn compare_logits(host: &str, emulated: &str) -> Result<(), String> {
    let host = logits_lines(host)?;
    let emulated = logits_lines(emulated)?;
    if host.is_empty() {
        return Err("the host harness printed no logits".into());
    }
    if host.keys().ne(emulated.keys()) {
        return Err(format!(
            "classifications differ: host {:?}, emulated {:?}",
            host.keys().collect::<Vec<_>>(),
            emulated.keys().collect::<Vec<_>>()
        ));
    }
    for (key, expected) in &host {
        let got = &emulated[key];
        let scale = expected
            .iter()
            .chain(got)
            .fold(1.0_f32, |scale, v| scale.max(v.abs()));
        // A NaN difference sticks, so it can only fail.
        let worst = expected
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b).abs() / scale)
            .fold(0.0_f32, |worst, diff| {
                if diff.is_nan() || diff > worst {
                    diff
                } else {
                    worst
                }
            });
        if got.len() != expected.len() || worst.is_nan() || worst > TOLERANCE {
            return Err(format!(
                "{} after {} frames: host {expected:?}, emulated {got:?}",
                key.0, key.1
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- Xtensa

/// Compiles the header and the harness for Xtensa (LX106, picolibc).
/// Compile only: there is no Xtensa Rust archive to link nor an emulator
/// to run; what this proves is that the generated header and C that uses
/// it are clean C11 where `int32_t` is `long` and `size_t` is 32 bits.
fn xtensa_compile() -> Result<(), Outcome> {
    install::ensure(&[&install::XTENSA_GCC])?;
    let dir = build_dir("xtensa")?;
    write_data_header(&dir)?;
    for source in sources() {
        let stem = source
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut gcc = Command::new("xtensa-lx106-elf-gcc");
        gcc.arg(format!("--specs={}", install::XTENSA_PICOLIBC_SPECS))
            .args(C_FLAGS)
            .args(["-Os", "-c"])
            .arg("-I")
            .arg(header_dir())
            .arg("-I")
            .arg(&dir)
            .arg(&source)
            .arg("-o")
            .arg(dir.join(format!("{stem}.o")));
        must(gcc)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_floats_read_back_exactly() {
        for value in [
            1.0_f32,
            -0.0,
            6.297_231e-5,
            0.1,
            -1.394_124,
            f32::MIN_POSITIVE,
        ] {
            let literal = c_float(value);
            assert!(literal.contains('.') || literal.contains('e'), "{literal}");
            let parsed: f32 = literal.trim_end_matches('f').parse().unwrap();
            assert_eq!(parsed.to_bits(), value.to_bits());
        }
    }

    #[test]
    fn logits_lines_are_compared_bit_for_bit_within_tolerance() {
        let host = "x\nlogits stream 16 bits 3f800000 bf800000 values 1 -1\n";
        let same = "logits stream 16 bits 3f800000 bf800000 values 1 -1\n";
        let near = "logits stream 16 bits 3f800001 bf800000 values 1 -1\n";
        let far = "logits stream 16 bits 3f810000 bf800000 values 1.01 -1\n";
        let other = "logits stream 32 bits 3f800000 bf800000 values 1 -1\n";
        assert_eq!(compare_logits(host, same), Ok(()));
        assert_eq!(compare_logits(host, near), Ok(()));
        assert!(compare_logits(host, far).is_err());
        assert!(compare_logits(host, other).is_err());
        assert!(compare_logits("", same).is_err());
    }

    #[test]
    fn csi_lines_become_packets_and_expectations() {
        let output = "warning: x\n\
            csi-packet 1 0 0 0 4294967295 7f80ff00\n\
            csi-packet 1 0 0 0 9 0102\n\
            csi-expect 2 1 3f800000 bf800000\n";
        let c = csi_header(output).unwrap();
        assert!(c.contains("#define HARNESS_CSI_PACKET_COUNT 2u"));
        assert!(c.contains("#define HARNESS_CSI_N_CLASSES 2u"));
        assert!(c.contains("harness_csi_bytes[6] = {\n    127,-128,-1,0,\n    1,2,\n};"));
        assert!(
            c.contains("{0u, 4u, 1u, 0u, 0u, 0u, 4294967295u},\n    {4u, 2u, 1u, 0u, 0u, 0u, 9u},")
        );
        assert!(c.contains("{2u, 1u, {1.0f, -1.0f}},"));
        for broken in [
            "csi-packet 1 0 0 0 9 0\ncsi-expect 1 1 0\n",
            "csi-packet 1 0 0 0 9 zz\ncsi-expect 1 1 0\n",
            "csi-packet 1 0 0 0 9 00\n",
            "csi-expect 1 1 0\n",
        ] {
            assert!(csi_header(broken).is_err(), "{broken}");
        }
    }

    #[test]
    fn the_data_header_holds_every_golden_row() {
        let header = data_header().unwrap();
        let rows = read_golden(&process::project_root().join("tests/golden/c_harness_logits.csv"))
            .unwrap();
        assert!(header.contains(&format!("#define HARNESS_GOLDEN_COUNT {}u", rows.len())));
        assert!(header.contains("#define HARNESS_INPUT_DIM 16u"));
        let blob = std::fs::read(process::project_root().join("adapters/cli/assets/default.rvne"))
            .unwrap();
        assert!(header.contains(&format!("harness_blob[{}]", blob.len())));
        assert!(header.contains(&format!(
            "#define HARNESS_N_CLASSES {}u",
            u16::from_le_bytes([blob[18], blob[19]])
        )));
    }
}
