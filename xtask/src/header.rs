//! `cargo xtask header [--check]`: generates the firmware's C header,
//! `firmware-abi/include/ruv_temporal.h`, with cbindgen used as a library.
//!
//! Why checked in and generated: C developers (and the ESP-IDF component)
//! need the header without a Rust toolchain, and a hand-written header
//! drifts from the code. So the header is produced from the crate's
//! exported items by the cbindgen version Cargo.lock pins, configured by
//! `firmware-abi/cbindgen.toml`, and `--check` (a CI step) fails whenever
//! the checked-in file is not exactly what the code produces.

use std::{fs, path::PathBuf, process::ExitCode};

use crate::{
    Task,
    process::project_root,
    step::{Outcome, Step},
};

/// Registration for `main`'s task table.
pub(crate) const TASK: Task = Task {
    name: "header",
    summary: "Regenerate firmware-abi/include/ruv_temporal.h (--check: fail on drift)",
    usage,
    run,
};

/// The header, relative to the workspace root.
pub(crate) const HEADER: &str = "firmware-abi/include/ruv_temporal.h";
/// The crate it is generated from.
const CRATE_DIR: &str = "firmware-abi";
/// What to do about drift; `--check` prints it.
const FIX: &str = "run `cargo xtask header` and commit";

fn usage() -> String {
    format!(
        "\
Usage: cargo xtask header [--check]

Generates {HEADER} from the exported items of {CRATE_DIR}/src
with cbindgen (the version pinned in Cargo.lock), configured by
{CRATE_DIR}/cbindgen.toml.

  --check  write nothing; fail if the checked-in header differs from what
           would be generated (the fix: {FIX})
"
    )
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        [other, ..] => return Err(format!("unexpected argument `{other}`")),
    };
    let outcome = if check { check_outcome() } else { write() };
    Ok(match outcome {
        Outcome::Ok => ExitCode::SUCCESS,
        Outcome::Failed(text) => {
            eprint!("{text}");
            ExitCode::FAILURE
        }
        Outcome::Skipped { reason, .. } => {
            eprintln!("skipped: {reason}");
            ExitCode::FAILURE
        }
    })
}

/// The CI step: `header --check`.
pub(crate) fn step() -> Step {
    Step::new("header --check", check_outcome)
}

fn header_path() -> PathBuf {
    project_root().join(HEADER)
}

/// The header as the code and config produce it now.
pub(crate) fn generate() -> Result<String, String> {
    let crate_dir = project_root().join(CRATE_DIR);
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .map_err(|error| format!("{CRATE_DIR}/cbindgen.toml: {error}"))?;
    // `with_src` parses the crate from lib.rs, following `mod` items, with
    // no `cargo metadata` call (and so no wait on the build lock).
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src").join("lib.rs"))
        .generate()
        .map_err(|error| format!("cbindgen: {error}"))?;
    let mut bytes = Vec::new();
    bindings.write(&mut bytes);
    String::from_utf8(bytes).map_err(|error| format!("cbindgen wrote non-UTF-8: {error}"))
}

fn write() -> Outcome {
    let text = match generate() {
        Ok(text) => text,
        Err(error) => return Outcome::Failed(format!("{error}\n")),
    };
    let path = header_path();
    if fs::read_to_string(&path).is_ok_and(|old| old == text) {
        println!("{HEADER} is up to date");
        return Outcome::Ok;
    }
    if let Some(dir) = path.parent()
        && let Err(error) = fs::create_dir_all(dir)
    {
        return Outcome::Failed(format!("create {}: {error}\n", dir.display()));
    }
    match fs::write(&path, text) {
        Ok(()) => {
            println!("wrote {HEADER}");
            Outcome::Ok
        }
        Err(error) => Outcome::Failed(format!("write {HEADER}: {error}\n")),
    }
}

fn check_outcome() -> Outcome {
    let generated = match generate() {
        Ok(text) => text,
        Err(error) => return Outcome::Failed(format!("{error}\n")),
    };
    let checked_in = fs::read_to_string(header_path()).unwrap_or_default();
    match drift(&checked_in, &generated) {
        None => Outcome::Ok,
        Some(report) => Outcome::Failed(report),
    }
}

/// `None` when the texts are equal; otherwise what differs first and how
/// to fix it.
fn drift(checked_in: &str, generated: &str) -> Option<String> {
    if checked_in == generated {
        return None;
    }
    let mut report = format!("{HEADER} is out of date: {FIX}\n");
    let (mut old, mut new) = (checked_in.lines(), generated.lines());
    for number in 1.. {
        match (old.next(), new.next()) {
            (Some(a), Some(b)) if a == b => {}
            (None, None) => {
                report += "  (the files differ only in line endings or a final newline)\n";
                break;
            }
            (a, b) => {
                report += &format!(
                    "  first difference at line {number}:\n    checked in: {}\n    generated:  {}\n",
                    a.unwrap_or("<end of file>"),
                    b.unwrap_or("<end of file>"),
                );
                break;
            }
        }
    }
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_do_not_drift() {
        assert_eq!(drift("a\nb\n", "a\nb\n"), None);
    }

    #[test]
    fn drift_names_the_fix_and_the_first_differing_line() {
        let report = drift("a\nb\nc\n", "a\nB\nc\n").expect("drift");
        assert!(
            report.contains("run `cargo xtask header` and commit"),
            "{report}"
        );
        assert!(report.contains("line 2"), "{report}");
        assert!(report.contains("checked in: b") && report.contains("generated:  B"));
        let missing = drift("", "a\n").expect("drift");
        assert!(missing.contains("<end of file>"), "{missing}");
    }

    /// The checked-in header is what the code produces (the CI step, as a
    /// test, so `cargo test` catches drift too).
    #[test]
    fn checked_in_header_is_current() {
        let generated = generate().expect("generate");
        let checked_in = fs::read_to_string(header_path()).expect("read the header");
        assert_eq!(drift(&checked_in, &generated), None);
    }

    /// The header alone compiles as strict C11 (included twice, so the
    /// include guard is exercised) with every C compiler this machine has
    /// of gcc and `xtensa-lx106-elf-gcc` (where `int32_t` is `long`). The C
    /// harness steps of `cargo xtask ci` compile it too, with the
    /// harness; this checks the header by itself.
    #[test]
    fn header_compiles_as_strict_c11() {
        let dir = std::env::temp_dir().join(format!("ruv_temporal_header_{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let source = dir.join("include_twice.c");
        fs::write(
            &source,
            "#include \"ruv_temporal.h\"\n#include \"ruv_temporal.h\"\n\
             int32_t check(void);\n\
             int32_t check(void) { return RUV_TEMPORAL_OK + (int32_t)sizeof(ruv_temporal_packet_t); }\n",
        )
        .expect("write source");
        let include = header_path();
        let include = include.parent().expect("include dir");
        let mut compiled = 0;
        for compiler in ["gcc", "xtensa-lx106-elf-gcc"] {
            let output = std::process::Command::new(compiler)
                .args([
                    "-std=c11",
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-pedantic",
                    "-fsyntax-only",
                ])
                .arg("-I")
                .arg(include)
                .arg(&source)
                .output();
            match output {
                Ok(output) => {
                    assert!(
                        output.status.success(),
                        "{compiler} rejects the header:\n{}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                    compiled += 1;
                }
                Err(error) => eprintln!("{compiler} not run: {error}"),
            }
        }
        fs::remove_dir_all(&dir).ok();
        assert!(compiled > 0, "no C compiler found: install gcc");
    }

    /// What C needs from the header is there.
    #[test]
    fn header_declares_the_abi() {
        let text = generate().expect("generate");
        for needle in [
            "typedef struct ruv_temporal_ctx_t ruv_temporal_ctx_t;",
            "int32_t ruv_temporal_init(const uint8_t *weights,",
            "int32_t ruv_temporal_push(struct ruv_temporal_ctx_t *ctx, const float *frame);",
            "int32_t ruv_temporal_classify(struct ruv_temporal_ctx_t *ctx,",
            "void ruv_temporal_destroy(struct ruv_temporal_ctx_t *ctx);",
            "int32_t ruv_temporal_kernel_self_test(void);",
            "int32_t ruv_temporal_encode_packet(const float *logits,",
            "#define RUV_TEMPORAL_ERR_INVALID_VERSION",
            "__attribute__((packed))",
            "_Static_assert(sizeof(ruv_temporal_packet_t) == RUV_TEMPORAL_PACKET_LEN",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
        }
    }
}
