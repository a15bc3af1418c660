//! `cargo xtask size`: the device budget, measured on both RISC-V builds.
//!
//! Why measured this way: the budget is about what the firmware costs on
//! the chip, so every number comes from the real archive linked into a
//! real bare-metal C program (the harness, `tests/c/`) and run in qemu:
//! - Rust `.text` / `.rodata`: summed from the linker map over the input
//!   sections that came from `libruv_temporal.a` (so only what the link
//!   kept, compiler builtins in the archive included, C and picolibc
//!   excluded);
//! - heap: the harness wraps `malloc`/`free` and counts requested bytes;
//!   "resident" is what a context with 256 frames holds between calls
//!   (model, ring, scratch), "peak" the most live at once from init
//!   through one classification of the full ring;
//! - stack: the harness paints the stack region before classify and finds
//!   the deepest overwritten word after it;
//! - instructions: `minstret` read around that classification, exact under
//!   `qemu -icount shift=0`.
//!
//! The archive is built at `opt-level = "s"` whatever the profile says
//! (`CARGO_PROFILE_FIRMWARE_OPT_LEVEL=s`), because that is what the budget
//! is stated for.

use std::{collections::BTreeMap, fs, process::ExitCode};

use crate::{
    Task,
    c_harness::{self, RISCV, RiscV},
    step::Outcome,
};

/// Registration for `main`'s task table.
pub(crate) const TASK: Task = Task {
    name: "size",
    summary: "Device budget on RISC-V: Rust .text/.rodata, heap, stack, instructions per classify",
    usage,
    run,
};

/// How the linker map names a member of the Rust archive.
const ARCHIVE_MEMBER: &str = "libruv_temporal.a(";

/// The budget on `riscv32imafc` (issue "Targets (device budget)").
const TEXT_BUDGET: u64 = 48 * 1024;
const HEAP_BUDGET: u64 = 64 * 1024;
const INSTRUCTION_BUDGET: u64 = 12_000_000;

fn usage() -> String {
    format!(
        "\
Usage: cargo xtask size

Builds libruv_temporal.a for {targets} at opt-level \"s\",
links the C harness (tests/c/harness.c) against each with picolibc, runs it
in qemu-system-riscv32 (-icount shift=0) and prints, per build:
  Rust .text, .rodata   input sections from the archive kept by the link
  heap resident, peak   bytes via wrapped malloc/free, default model,
                        256 frames in the ring (peak: init through classify)
  stack peak            painted-stack depth of one classify
  instructions          minstret around one classify of 256 frames
Budget on riscv32imafc: .text <= {text} KB, heap <= {heap} KB,
<= {instructions} M instructions per classify.
",
        targets = RISCV.map(|riscv| riscv.rust_target).join(" and "),
        text = TEXT_BUDGET / 1024,
        heap = HEAP_BUDGET / 1024,
        instructions = INSTRUCTION_BUDGET / 1_000_000,
    )
}

/// One build's numbers.
#[derive(Debug, Default, PartialEq)]
struct Measured {
    text: u64,
    rodata: u64,
    heap_resident: u64,
    heap_peak: u64,
    stack_peak: u64,
    instructions: u64,
    /// `.text` by crate, largest first.
    text_by_crate: Vec<(String, u64)>,
    /// (frames in the ring, instructions, extra heap) of each measured
    /// classification: how the cost grows with the ring.
    scaling: Vec<(u64, u64, u64)>,
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    if let Some(arg) = args.first() {
        return Err(format!("unexpected argument `{arg}`"));
    }
    let mut rows = Vec::new();
    let mut failed = false;
    for target in RISCV {
        match measure(target) {
            Ok(measured) => rows.push((target, measured)),
            Err(outcome) => {
                failed = true;
                eprintln!("{}: {}", target.name, describe(outcome));
            }
        }
    }
    print!("{}", table(&rows));
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn describe(outcome: Outcome) -> String {
    match outcome {
        Outcome::Ok => "ok".into(),
        Outcome::Failed(text) => format!("FAILED\n{text}"),
        Outcome::Skipped { reason, install } => match install {
            Some(install) => format!("skipped: {reason}; to install: {install}"),
            None => format!("skipped: {reason}"),
        },
    }
}

fn measure(target: RiscV) -> Result<Measured, Outcome> {
    let build = c_harness::riscv_build_with(target, &[("CARGO_PROFILE_FIRMWARE_OPT_LEVEL", "s")])?;
    let output = c_harness::qemu_run(&build.elf)?;
    let mut measured = parse_measure_line(&output)
        .ok_or_else(|| Outcome::Failed(format!("no `measure` line in the output:\n{output}")))?;
    let map = fs::read_to_string(&build.map)
        .map_err(|error| Outcome::Failed(format!("{}: {error}\n", build.map.display())))?;
    (measured.text, measured.rodata) = archive_sections(&map, ARCHIVE_MEMBER);
    measured.text_by_crate = text_by_crate(&map, ARCHIVE_MEMBER);
    Ok(measured)
}

/// `measure frames=256 heap_resident=N heap_peak=N stack_peak=N
/// instructions=N` from the harness.
fn parse_measure_line(output: &str) -> Option<Measured> {
    let line = output.lines().find(|line| line.starts_with("measure "))?;
    let value = |key: &str| field(line, key);
    Some(Measured {
        text: 0,
        rodata: 0,
        heap_resident: value("heap_resident")?,
        heap_peak: value("heap_peak")?,
        stack_peak: value("stack_peak")?,
        instructions: value("instructions")?,
        text_by_crate: Vec::new(),
        scaling: output
            .lines()
            .filter(|line| line.starts_with("measure-scaling "))
            .filter_map(|line| {
                Some((
                    field(line, "frames")?,
                    field(line, "instructions")?,
                    field(line, "classify_heap")?,
                ))
            })
            .collect(),
    })
}

/// The number after `key=` in a `measure` line.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))?
        .parse()
        .ok()
}

/// Bytes of `.text*` and of `.rodata*`/`.srodata*` input sections whose
/// file is a member of the archive named by `archive` in a GNU ld map
/// ("Linker script and memory map" part only: the discarded sections
/// listed before it were not linked).
fn archive_sections(map: &str, archive: &str) -> (u64, u64) {
    let (mut text, mut rodata) = (0, 0);
    for (name, size) in archive_input_sections(map, archive) {
        if name.starts_with(".text") {
            text += size;
        } else if name.starts_with(".rodata") || name.starts_with(".srodata") {
            rodata += size;
        }
    }
    (text, rodata)
}

/// `.text` bytes from the archive by the Rust crate that defines them
/// (from the mangled symbol in the section name), largest first: where
/// the flash goes. Symbols that name no crate (the C ABI functions,
/// compiler builtins with C names) are counted as `(C names)`.
fn text_by_crate(map: &str, archive: &str) -> Vec<(String, u64)> {
    let mut by_crate: BTreeMap<String, u64> = BTreeMap::new();
    for (name, size) in archive_input_sections(map, archive) {
        let Some(symbol) = name.strip_prefix(".text.") else {
            continue;
        };
        let symbol = symbol.strip_prefix("unlikely.").unwrap_or(symbol);
        let krate = crate_of(symbol).unwrap_or_else(|| "(C names)".to_string());
        *by_crate.entry(krate).or_default() += size;
    }
    let mut sorted: Vec<(String, u64)> = by_crate.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted
}

/// The crate a mangled Rust symbol belongs to: the first path component
/// of a legacy `_ZN` name (inside `<...>` for an impl, written `_$LT$`),
/// or the first crate root (`C<hash>_<len><name>`) of a v0 `_R` name.
fn crate_of(symbol: &str) -> Option<String> {
    if let Some(rest) = symbol.strip_prefix("_ZN") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let len: usize = rest[..digits].parse().ok()?;
        let first = rest.get(digits..digits + len)?;
        let first = first.strip_prefix("_$LT$").unwrap_or(first);
        let name = first.split("..").next()?;
        return Some(name.to_string());
    }
    if symbol.starts_with("_R") {
        // A crate root is `C`, an optional disambiguator `s<base62>_`, then
        // `<decimal length><identifier>`.
        let bytes = symbol.as_bytes();
        for (at, _) in symbol.match_indices('C') {
            let mut index = at + 1;
            if bytes.get(index) == Some(&b's') {
                let end = symbol[index..].find('_')?;
                index += end + 1;
            }
            let digits = symbol[index..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            if digits == 0 {
                continue;
            }
            let len: usize = symbol[index..index + digits].parse().ok()?;
            if let Some(name) = symbol.get(index + digits..index + digits + len) {
                return Some(name.to_string());
            }
        }
    }
    None
}

/// Every input section (name, size) that came from the archive: an input
/// section line is ` .name 0xADDR 0xSIZE file`; a long name stands alone
/// and the rest follows on the next line.
fn archive_input_sections<'m>(map: &'m str, archive: &str) -> Vec<(&'m str, u64)> {
    let mut found = Vec::new();
    let Some(start) = map.find("Linker script and memory map") else {
        return found;
    };
    let mut pending: Option<&str> = None;
    for line in map[start..].lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (name, rest) = if let Some(name) = pending.take() {
            (name, fields.as_slice())
        } else if line.starts_with(" .") && fields.len() == 1 {
            pending = Some(fields[0]);
            continue;
        } else if line.starts_with(" .") && fields.len() >= 4 {
            (fields[0], &fields[1..])
        } else {
            continue;
        };
        let [address, size, file, ..] = rest else {
            continue;
        };
        if !address.starts_with("0x") || !file.contains(archive) {
            continue;
        }
        let Ok(size) = u64::from_str_radix(size.trim_start_matches("0x"), 16) else {
            continue;
        };
        found.push((name, size));
    }
    found
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn table(rows: &[(RiscV, Measured)]) -> String {
    let mut out = String::from(
        "| build | Rust .text | Rust .rodata | heap resident | heap peak | stack peak | instructions / classify |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (target, m) in rows {
        out += &format!(
            "| {} | {} | {} | {} | {} | {} B | {:.2} M |\n",
            target.name,
            kib(m.text),
            kib(m.rodata),
            kib(m.heap_resident),
            kib(m.heap_peak),
            m.stack_peak,
            m.instructions as f64 / 1e6,
        );
    }
    if let Some((_, m)) = rows
        .iter()
        .find(|(target, _)| target.name == "riscv32imafc")
    {
        let verdict = |ok: bool| if ok { "within" } else { "OVER" };
        out += &format!(
            "\nBudget (riscv32imafc): .text {} {} KiB; heap peak {} {} KiB; {} {} M instructions.\n",
            verdict(m.text <= TEXT_BUDGET),
            TEXT_BUDGET / 1024,
            verdict(m.heap_peak <= HEAP_BUDGET),
            HEAP_BUDGET / 1024,
            verdict(m.instructions <= INSTRUCTION_BUDGET),
            INSTRUCTION_BUDGET / 1_000_000,
        );
    }
    out +=
        "(opt-level \"s\"; default model, 256 frames in the ring; heap counts requested bytes)\n";
    for (target, m) in rows {
        let top: Vec<String> = m
            .text_by_crate
            .iter()
            .take(6)
            .map(|(krate, bytes)| format!("{krate} {}", kib(*bytes)))
            .collect();
        out += &format!("{} Rust .text by crate: {}\n", target.name, top.join(", "));
    }
    for (target, m) in rows {
        let steps: Vec<String> = m
            .scaling
            .iter()
            .map(|(frames, instructions, heap)| {
                format!(
                    "{frames}: {:.1} M / {}",
                    *instructions as f64 / 1e6,
                    kib(*heap)
                )
            })
            .collect();
        out += &format!(
            "{} per classify by frames in the ring (instructions / extra heap): {}\n",
            target.name,
            steps.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measure_line_is_read() {
        let output = "ok x\nmeasure-scaling frames=16 classify_heap=6 instructions=5\nmeasure frames=256 heap_resident=100 heap_peak=200 stack_peak=300 instructions=400\n";
        assert_eq!(
            parse_measure_line(output),
            Some(Measured {
                heap_resident: 100,
                heap_peak: 200,
                stack_peak: 300,
                instructions: 400,
                scaling: vec![(16, 5, 6)],
                ..Measured::default()
            })
        );
        assert_eq!(parse_measure_line("measure frames=256\n"), None);
    }

    #[test]
    fn map_sections_from_the_archive_are_summed() {
        let map = "\
Discarded input sections
 .text.gone     0x00000000       0x99 /t/libruv_temporal.a(a.o)
Linker script and memory map
.text           0x80000000     0x1000
 .text.short    0x80000000       0x10 /t/libruv_temporal.a(a.o)
 .text._ZN4core3fmt5write17h0123456789abcdefE
                0x80000010       0x20 /t/libruv_temporal.a(b.o)
 .text.main     0x80000030       0x40 /tmp/harness.o
 .rodata.x      0x80001000        0x8 /t/libruv_temporal.a(a.o)
 .srodata.y     0x80001008        0x4 /t/libruv_temporal.a(a.o)
 *fill*         0x8000100c        0x4
";
        assert_eq!(archive_sections(map, ARCHIVE_MEMBER), (0x30, 0xc));
        assert_eq!(
            text_by_crate(map, ARCHIVE_MEMBER),
            [("core".to_string(), 0x20), ("(C names)".to_string(), 0x10)]
        );
    }

    #[test]
    fn crates_are_read_from_mangled_names() {
        assert_eq!(
            crate_of("_ZN13aether_sparse7prefill4tile17h0123456789abcdefE").as_deref(),
            Some("aether_sparse")
        );
        assert_eq!(
            crate_of("_ZN51_$LT$aether_dense..DenseBackend$u20$as$u20$x..Y$GT$3foo17habcE")
                .as_deref(),
            Some("aether_dense")
        );
        assert_eq!(
            crate_of("_RNvNtCs5Yj4QhDqv0q_17compiler_builtins3mem6memcpy").as_deref(),
            Some("compiler_builtins")
        );
        assert_eq!(crate_of("ruv_temporal_init"), None);
    }
}
