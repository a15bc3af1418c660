//! Xtensa builds of the firmware archive.
//!
//! - `cargo xtask xtensa`: the real thing, `aether-firmware` for the
//!   ESP32-S3 (`xtensa-esp32s3-none-elf`). Upstream LLVM's Xtensa backend
//!   does not know the S3 (no `esp32s3` CPU, its FPU code generation
//!   crashes), so this needs Espressif's Rust fork, installed as the
//!   rustup toolchain `esp` by `espup`. Without it the task fails and
//!   prints the install steps: it cannot fall back to anything that would
//!   be the same archive.
//! - CI step `xtensa-llvm`: what the installed nightly's experimental
//!   upstream Xtensa backend can do without the fork. It builds every
//!   `no_std` crate and `aether-firmware` for a generic Xtensa core
//!   (`firmware-abi/xtensa/xtensa-generic.json`: call0 ABI, soft float, no
//!   atomics) with `-Zbuild-std=core,alloc`, and checks the archive holds
//!   Xtensa ELF objects. It proves the code goes through an Xtensa
//!   backend: no construct our crates use (f16 conversion, f64 exact paths,
//!   integer widths) makes LLVM's instruction selection fail. It does not
//!   prove anything about the S3's ABI (windowed registers, hardware
//!   float), nor that the archive links or runs.

use std::{
    fs,
    io::{self, ErrorKind, Write as _},
    path::Path,
    process::{Command, ExitCode},
};

use crate::{
    Task,
    ci::NO_STD_CRATES,
    esp_idf::target_dir,
    process,
    step::{self, Outcome, SkipPolicy, Step},
};

/// The firmware crate and what its archive is called.
const FIRMWARE_CRATE: &str = "aether-firmware";
const ARCHIVE: &str = "libruv_temporal.a";
/// The cargo profile the archive is built with (the workspace manifest
/// says why: abort on panic, optimised for size).
const PROFILE: &str = "firmware";

/// The ESP32-S3's target in Espressif's toolchain.
const ESP_TARGET: &str = "xtensa-esp32s3-none-elf";
/// The rustup toolchain `espup install` creates.
const ESP_TOOLCHAIN: &str = "esp";

/// The custom target spec for the upstream backend, relative to the root.
const LLVM_SPEC: &str = "firmware-abi/xtensa/xtensa-generic.json";
/// The toolchain whose LLVM has the experimental Xtensa backend.
const LLVM_TOOLCHAIN: &str = "nightly";
/// ELF `e_machine` for Xtensa.
const EM_XTENSA: u16 = 94;

/// Registration for `main`'s task table.
pub(crate) const TASK: Task = Task {
    name: "xtensa",
    summary: "Build libruv_temporal.a for the ESP32-S3 with Espressif's toolchain",
    usage,
    run,
};

fn usage() -> String {
    format!(
        "\
Usage: cargo xtask xtensa [--llvm]

Builds {FIRMWARE_CRATE} for {ESP_TARGET} (ESP32-S3) with Espressif's
Rust toolchain:
  {command}
and prints where the archive is (target/{ESP_TARGET}/{PROFILE}/{ARCHIVE}).
The ESP-IDF component (firmware-abi/esp-idf) links that file.

Needs the rustup toolchain `{ESP_TOOLCHAIN}`; without it, fails and prints
how to install it.

Options:
  --llvm  Instead, run CI's `xtensa-llvm` step: build the no_std crates and
          {FIRMWARE_CRATE} with the nightly's experimental upstream Xtensa
          backend for a generic core ({LLVM_SPEC}). Proves the
          code compiles for Xtensa; not for the S3's ABI, not linked, not run.
",
        command = esp_command_line(),
    )
}

fn esp_build_args() -> Vec<String> {
    let toolchain = format!("+{ESP_TOOLCHAIN}");
    [
        toolchain.as_str(),
        "build",
        "-p",
        FIRMWARE_CRATE,
        "--profile",
        PROFILE,
        "--target",
        ESP_TARGET,
        "-Zbuild-std=core,alloc",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn esp_command_line() -> String {
    format!("cargo {}", esp_build_args().join(" "))
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    match args {
        [] => {}
        [flag] if flag == "--llvm" => {
            return Ok(step::run_all("xtensa", &[llvm_step()], SkipPolicy::Allow));
        }
        [arg, ..] => return Err(format!("unexpected argument `{arg}`")),
    }
    match has_toolchain(ESP_TOOLCHAIN) {
        Ok(true) => {}
        Ok(false) => {
            eprint!("{}", install_steps());
            return Ok(ExitCode::FAILURE);
        }
        Err(error) => {
            eprintln!("error: {error}");
            eprint!("{}", install_steps());
            return Ok(ExitCode::FAILURE);
        }
    }
    let root = process::project_root();
    let mut build = toolchain_cargo(&root);
    build.args(esp_build_args());
    println!("$ {}", process::render(&build));
    let status = build
        .status()
        .map_err(|error| format!("could not run cargo: {error}"))?;
    if !status.success() {
        return Ok(ExitCode::FAILURE);
    }
    let archive = target_dir(&root)
        .join(ESP_TARGET)
        .join(PROFILE)
        .join(ARCHIVE);
    println!("archive: {}", archive.display());
    Ok(ExitCode::SUCCESS)
}

/// What to do when the `esp` toolchain is missing.
fn install_steps() -> String {
    format!(
        "\
error: Espressif's Rust toolchain is not installed (`rustup toolchain list` has no `{ESP_TOOLCHAIN}`).

The ESP32-S3 is an Xtensa LX7 core; upstream Rust/LLVM cannot build for it
(no `esp32s3` CPU, and its FPU code generation crashes). Install Espressif's
fork, then run this task again:

    cargo install espup --locked
    espup install
    . ~/export-esp.sh
    cargo xtask xtensa

`espup install` adds the rustup toolchain `{ESP_TOOLCHAIN}` and writes
~/export-esp.sh (PATH and LIBCLANG_PATH for the Xtensa GCC and clang);
source it in every new shell. The task then runs:

    {command}
",
        command = esp_command_line(),
    )
}

/// Whether `rustup toolchain list` has `name` (as `name` or
/// `name-<host>`, with or without `(default)`).
fn has_toolchain(name: &str) -> Result<bool, String> {
    let mut list = Command::new("rustup");
    list.args(["toolchain", "list"]);
    match process::run_captured(list) {
        Ok(listed) if listed.success => Ok(lists_toolchain(&listed.output, name)),
        Ok(listed) => Err(format!(
            "`rustup toolchain list` failed:\n{}",
            listed.transcript
        )),
        Err(error) if error.kind() == ErrorKind::NotFound => {
            Err("rustup not found (get it from https://rustup.rs)".to_owned())
        }
        Err(error) => Err(format!("could not run rustup: {error}")),
    }
}

/// Whether `rustup toolchain list` output names toolchain `name`.
fn lists_toolchain(output: &str, name: &str) -> bool {
    output.lines().any(|line| {
        let toolchain = line.split_whitespace().next().unwrap_or("");
        toolchain == name || toolchain.starts_with(&format!("{name}-"))
    })
}

/// A `cargo` that honours a `+toolchain` argument: rustup's proxy, not
/// `$CARGO` (which is the running toolchain's binary), and without the
/// variables the running toolchain set, which would pin the child to it.
fn toolchain_cargo(root: &Path) -> Command {
    let mut cargo = Command::new("cargo");
    cargo
        .current_dir(root)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("CARGO");
    cargo
}

/// The CI step `xtensa-llvm` (module docs say what it proves).
pub(crate) fn llvm_step() -> Step {
    Step::new("xtensa-llvm", || {
        match has_toolchain(LLVM_TOOLCHAIN) {
            Ok(true) => {}
            Ok(false) => {
                return Outcome::Skipped {
                    reason: format!("no `{LLVM_TOOLCHAIN}` toolchain"),
                    install: Some(format!(
                        "rustup toolchain install {LLVM_TOOLCHAIN} --component rust-src"
                    )),
                };
            }
            Err(error) => return Outcome::Failed(format!("{error}\n")),
        }
        if let Err(not_ready) = ensure_rust_src() {
            return not_ready;
        }
        let root = process::project_root();
        // Its own target directory: the nightly's artifacts never mix with
        // the stable ones and its lock never blocks another build.
        let target = target_dir(&root).join("xtensa-llvm");
        let spec = root.join(LLVM_SPEC);
        let no_std = llvm_build(&root, &target, &spec, |build| {
            for krate in NO_STD_CRATES {
                build.args(["-p", krate]);
            }
            build.arg("--no-default-features");
        });
        if !matches!(no_std, Outcome::Ok) {
            return no_std;
        }
        // The firmware keeps its default features: they bring the
        // allocator and panic handler a staticlib needs.
        let firmware = llvm_build(&root, &target, &spec, |build| {
            build.args(["-p", FIRMWARE_CRATE]);
        });
        if !matches!(firmware, Outcome::Ok) {
            return firmware;
        }
        let stem = spec
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned());
        let archive = target
            .join(stem.unwrap_or_default())
            .join(PROFILE)
            .join(ARCHIVE);
        let read = fs::read(&archive).map_err(|error| error.to_string());
        match read.and_then(|bytes| elf_machines(&bytes)) {
            Ok(machines) if !machines.is_empty() && machines.iter().all(|&m| m == EM_XTENSA) => {
                Outcome::Ok
            }
            Ok(machines) => Outcome::Failed(format!(
                "{}: expected only Xtensa objects (ELF machine {EM_XTENSA}), found machines {machines:?}\n",
                archive.display()
            )),
            Err(error) => Outcome::Failed(format!("{}: {error}\n", archive.display())),
        }
    })
}

/// One `cargo +nightly build` for the custom Xtensa target.
fn llvm_build(
    root: &Path,
    target_dir: &Path,
    spec: &Path,
    select: impl FnOnce(&mut Command),
) -> Outcome {
    let mut build = toolchain_cargo(root);
    build
        .arg(format!("+{LLVM_TOOLCHAIN}"))
        .arg("build")
        .env("CARGO_TARGET_DIR", target_dir);
    select(&mut build);
    build
        .args([
            "--profile",
            PROFILE,
            "-Zbuild-std=core,alloc",
            "-Zjson-target-spec",
        ])
        .arg("--target")
        .arg(spec);
    Outcome::of(build)
}

/// `-Zbuild-std` compiles core and alloc from source, which rustup ships
/// as the `rust-src` component.
fn ensure_rust_src() -> Result<(), Outcome> {
    let mut list = Command::new("rustup");
    list.arg(format!("+{LLVM_TOOLCHAIN}"))
        .args(["component", "list", "--installed"])
        .env_remove("RUSTUP_TOOLCHAIN");
    match process::run_captured(list) {
        Ok(listed) if !listed.success => return Err(Outcome::Failed(listed.transcript)),
        Ok(listed) if listed.output.lines().any(|line| line.trim() == "rust-src") => {
            return Ok(());
        }
        Ok(_) => {}
        Err(error) => return Err(Outcome::Failed(format!("could not run rustup: {error}\n"))),
    }
    let mut add = Command::new("rustup");
    add.args(["component", "add", "rust-src", "--toolchain"])
        .arg(LLVM_TOOLCHAIN);
    // On the status line, as the other steps' installs are.
    print!("[installing: {}] ", process::render(&add));
    // A failed flush only delays the text.
    let _ = io::stdout().flush();
    match Outcome::of(add) {
        Outcome::Ok => Ok(()),
        failed => Err(failed),
    }
}

/// The ELF machine of every object in an `ar` archive (members that are
/// not ELF, such as the symbol table, are left out). Read directly, since
/// the format is a 60-byte header per member, so the step needs no Xtensa
/// binutils.
fn elf_machines(archive: &[u8]) -> Result<Vec<u16>, String> {
    let mut rest = archive
        .strip_prefix(b"!<arch>\n")
        .ok_or("not an ar archive")?;
    let mut machines = Vec::new();
    while !rest.is_empty() {
        let header = rest.get(..60).ok_or("truncated member header")?;
        let size: usize = std::str::from_utf8(&header[48..58])
            .ok()
            .and_then(|size| size.trim().parse().ok())
            .ok_or("bad member size")?;
        let body = rest.get(60..60 + size).ok_or("truncated member")?;
        if let (Some(b"\x7fELF"), Some(&[low, high])) = (body.get(..4), body.get(18..20)) {
            machines.push(u16::from_le_bytes([low, high]));
        }
        // Members start at even offsets.
        let next = (60 + size + 1) & !1;
        rest = rest.get(next..).unwrap_or_default();
    }
    Ok(machines)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One `ar` member: a 60-byte header then the body, padded to even.
    fn member(name: &str, body: &[u8]) -> Vec<u8> {
        let mut bytes = format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            0,
            0,
            0,
            644,
            body.len()
        )
        .into_bytes();
        assert_eq!(bytes.len(), 60);
        bytes.extend_from_slice(body);
        if body.len() % 2 == 1 {
            bytes.push(b'\n');
        }
        bytes
    }

    fn elf(machine: u16) -> Vec<u8> {
        let mut body = b"\x7fELF".to_vec();
        body.resize(18, 0);
        body.extend_from_slice(&machine.to_le_bytes());
        body.push(0); // odd length: exercises the padding
        body
    }

    #[test]
    fn archive_members_report_their_elf_machine() {
        let mut archive = b"!<arch>\n".to_vec();
        archive.extend(member("/", b"symbol table"));
        archive.extend(member("a.o/", &elf(EM_XTENSA)));
        archive.extend(member("b.o/", &elf(62)));
        assert_eq!(elf_machines(&archive), Ok(vec![EM_XTENSA, 62]));
        assert!(elf_machines(b"not an archive").is_err());
        assert!(elf_machines(&archive[..archive.len() - 5]).is_err());
    }

    #[test]
    fn toolchain_list_is_matched_by_name() {
        let listed =
            "stable-x86_64-unknown-linux-gnu (default)\nesp\nnightly-x86_64-unknown-linux-gnu\n";
        assert!(lists_toolchain(listed, "esp"));
        assert!(lists_toolchain(listed, "nightly"));
        assert!(!lists_toolchain("espressif-custom\n", "esp"));
        assert!(!lists_toolchain("stable-x86_64-unknown-linux-gnu\n", "esp"));
    }
}
