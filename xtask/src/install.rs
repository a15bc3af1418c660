//! Getting the external tools a step needs: a program from a Debian
//! package, or a Rust target's standard library.
//!
//! Why here and not in each step: CI must not skip a step whose tool it
//! could have installed (`CI=true` turns such a skip into a failure), so
//! every step asks the same way, installs the same way (as root,
//! `apt-get install -y`; `rustup target add`), says what it installed,
//! and when it cannot install, returns the skip with the exact command a
//! person can run.

use std::{
    env,
    io::{self, ErrorKind, Write as _},
    path::PathBuf,
    process::Command,
};

use crate::{process, step::Outcome};

/// A program and the Debian packages that provide it (and whatever else
/// the step needs from the same install, e.g. picolibc beside the cross
/// gcc).
pub(crate) struct Tool {
    /// The executable looked up on `PATH`.
    pub(crate) program: &'static str,
    /// What `apt-get install -y` needs for the step that uses it.
    pub(crate) packages: &'static [&'static str],
    /// A file the packages install that the step also needs (a C library's
    /// spec file), checked beside the program; `None` when the program is
    /// enough.
    pub(crate) also_needs: Option<&'static str>,
}

/// The host C compiler the harness is built with.
pub(crate) const GCC: Tool = Tool {
    program: "gcc",
    packages: &["gcc", "libc6-dev"],
    also_needs: None,
};

/// Valgrind, for the leak and memory-error run of the host harness.
pub(crate) const VALGRIND: Tool = Tool {
    program: "valgrind",
    packages: &["valgrind"],
    also_needs: None,
};

/// The bare-metal RISC-V cross compiler with picolibc (the C library the
/// qemu harness links).
pub(crate) const RISCV_GCC: Tool = Tool {
    program: "riscv64-unknown-elf-gcc",
    packages: &["gcc-riscv64-unknown-elf", "picolibc-riscv64-unknown-elf"],
    also_needs: Some("/usr/lib/picolibc/riscv64-unknown-elf/picolibc.specs"),
};

/// The emulator the RISC-V harness runs in.
pub(crate) const QEMU_RISCV32: Tool = Tool {
    program: "qemu-system-riscv32",
    packages: &["qemu-system-misc"],
    also_needs: None,
};

/// picolibc's spec file for Xtensa. Not on the cross gcc's search path
/// (unlike the RISC-V one), so it is passed by path.
pub(crate) const XTENSA_PICOLIBC_SPECS: &str = "/usr/lib/xtensa-lx106-elf/picolibc.specs";

/// The Xtensa (ESP8266 LX106) cross compiler with picolibc: the only
/// Xtensa C toolchain Debian packages, used to compile (not run) the
/// header and the harness.
pub(crate) const XTENSA_GCC: Tool = Tool {
    program: "xtensa-lx106-elf-gcc",
    packages: &["gcc-xtensa-lx106", "picolibc-xtensa-lx106-elf"],
    also_needs: Some(XTENSA_PICOLIBC_SPECS),
};

/// Where `program` is on `PATH`, if anywhere.
fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn present(tool: &Tool) -> bool {
    find_on_path(tool.program).is_some()
        && tool
            .also_needs
            .is_none_or(|file| std::path::Path::new(file).is_file())
}

/// Whether we run as root (so `apt-get` may install). Asked of `id -u`
/// because xtask has no libc binding, on purpose.
fn is_root() -> bool {
    let mut id = Command::new("id");
    id.arg("-u");
    process::run_captured(id).is_ok_and(|id| id.success && id.output.trim() == "0")
}

/// Makes sure every tool in `tools` is installed: returns `Ok` when they
/// are (installing missing ones with `apt-get` when running as root, and
/// saying so on the status line), otherwise the outcome the step should
/// end with: a skip naming the install command (which `CI=true` turns into
/// a failure), or the failed install's transcript.
pub(crate) fn ensure(tools: &[&Tool]) -> Result<(), Outcome> {
    let missing: Vec<&Tool> = tools
        .iter()
        .copied()
        .filter(|tool| !present(tool))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing
        .iter()
        .flat_map(|tool| tool.packages)
        .copied()
        .collect();
    packages.dedup();
    let command = format!("apt-get install -y {}", packages.join(" "));
    let programs: Vec<&str> = missing.iter().map(|tool| tool.program).collect();
    let reason = format!("{} not found", programs.join(", "));
    if !is_root() || find_on_path("apt-get").is_none() {
        return Err(Outcome::Skipped {
            reason,
            install: Some(format!("as root: {command}")),
        });
    }
    // Exactly the command printed: what a person would run.
    let apt_install = || {
        let mut install = Command::new("apt-get");
        install
            .args(["install", "-y"])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive");
        install
    };
    note(&format!("installing: {command}"));
    let mut outcome = Outcome::of(apt_install());
    if let Outcome::Failed(_) = outcome {
        // A fresh container has no package lists yet: fetch them once and
        // try again.
        let mut update = Command::new("apt-get");
        update.arg("update");
        note("apt-get update");
        if let Outcome::Failed(transcript) = Outcome::of(update) {
            return Err(Outcome::Failed(transcript));
        }
        outcome = Outcome::of(apt_install());
    }
    match outcome {
        Outcome::Ok if missing.iter().all(|tool| present(tool)) => Ok(()),
        Outcome::Ok => Err(Outcome::Failed(format!(
            "`{command}` succeeded but {} still not found\n",
            programs.join(", ")
        ))),
        failed => Err(failed),
    }
}

/// Makes sure rustup has the standard library for `target`, adding it
/// (and saying so) when missing.
pub(crate) fn rust_target(target: &str) -> Result<(), Outcome> {
    let mut list = Command::new("rustup");
    list.args(["target", "list", "--installed"]);
    let installed = match process::run_captured(list) {
        Ok(listed) if listed.success => listed,
        Ok(listed) => return Err(Outcome::Failed(listed.transcript)),
        Err(error) if error.kind() == ErrorKind::NotFound => {
            return Err(Outcome::Skipped {
                reason: format!("rustup not found, so target {target} cannot be added"),
                install: Some(format!(
                    "get rustup from https://rustup.rs, then run `rustup target add {target}`"
                )),
            });
        }
        Err(error) => {
            return Err(Outcome::Failed(format!(
                "could not run `rustup`: {error}\n"
            )));
        }
    };
    if installed.output.lines().any(|line| line.trim() == target) {
        return Ok(());
    }
    note(&format!("installing: rustup target add {target}"));
    let mut add = Command::new("rustup");
    add.args(["target", "add", target]);
    match Outcome::of(add) {
        Outcome::Ok => Ok(()),
        failed => Err(failed),
    }
}

/// Says what is being installed on the step's status line (between the
/// step's name and its result), so the line still reads as one step.
fn note(text: &str) {
    print!("[{text}] ");
    // A failed flush only delays the text.
    let _ = io::stdout().flush();
}
