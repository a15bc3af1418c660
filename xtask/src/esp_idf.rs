//! The `esp-idf` CI steps: compile the ESP-IDF component's
//! `temporal_task.c` with the host gcc and with `xtensa-lx106-elf-gcc`.
//!
//! ESP-IDF cannot be installed here, so the component is compiled against
//! `firmware-abi/esp-idf/test_shims/`, copies of the ESP-IDF declarations it
//! uses, and the real `ruv_temporal.h`. That catches type and format errors
//! (`int32_t` is `long` on Xtensa) and any drift between the C task and the
//! generated header. Each compiler builds the file with the head enabled and
//! disabled in Kconfig, because the two halves of its `#if` are different
//! code. The disabled object must not reference the archive or the embedded
//! model: that is what lets a project carry the component before either
//! exists. A compile check, not a build: nothing is linked against
//! FreeRTOS or run.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    install::{self, Tool},
    process,
    step::{Outcome, Step},
};

/// The component, relative to the workspace root.
const COMPONENT: &str = "firmware-abi/esp-idf";
/// The C file under check, relative to the workspace root.
const SOURCE: &str = "firmware-abi/esp-idf/temporal_task.c";
/// The stand-in ESP-IDF headers (`test_shims/README.md`).
const SHIMS: &str = "firmware-abi/esp-idf/test_shims";
/// Where the generated `ruv_temporal.h` lives.
const HEADER_DIR: &str = "firmware-abi/include";

/// The flags ESP-IDF code must survive. `-O2` because some warnings
/// (uninitialised use) need the optimiser's data flow.
const FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2"];

/// Symbol prefixes only the enabled build may reference: the C ABI and the
/// `EMBED_FILES` model.
const ENABLED_ONLY: &[&str] = &["ruv_temporal_", "_binary_model_rvne_"];

/// One step per compiler, so a missing cross compiler does not hide the
/// host result.
pub(crate) fn steps() -> Vec<Step> {
    [&install::GCC, &install::XTENSA_GCC]
        .into_iter()
        .map(component_step)
        .collect()
}

fn component_step(compiler: &'static Tool) -> Step {
    Step::new(
        format!("esp-idf component {}", compiler.program),
        move || {
            if let Err(not_ready) = install::ensure(&[compiler]) {
                return not_ready;
            }
            compile_both(compiler.program)
        },
    )
}

/// Compiles [`SOURCE`] enabled and disabled, then checks what the disabled
/// object needs from outside.
fn compile_both(cc: &str) -> Outcome {
    let root = process::project_root();
    let header = root.join(HEADER_DIR).join("ruv_temporal.h");
    if !header.is_file() {
        return Outcome::Failed(format!(
            "{} is missing; regenerate it with `cargo xtask header`\n",
            header.display()
        ));
    }
    let out_dir = target_dir(&root).join("xtask").join("esp-idf").join(cc);
    if let Err(error) = std::fs::create_dir_all(&out_dir) {
        return Outcome::Failed(format!("could not create {}: {error}\n", out_dir.display()));
    }
    for enabled in [true, false] {
        let object = out_dir.join(if enabled { "enabled.o" } else { "disabled.o" });
        let mut compile = Command::new(cc);
        compile
            .current_dir(&root)
            .args(FLAGS)
            .arg(format!("-DTEST_SHIM_HEAD_ENABLED={}", u8::from(enabled)))
            .args([
                "-I", SHIMS, "-I", HEADER_DIR, "-I", COMPONENT, "-c", SOURCE, "-o",
            ])
            .arg(&object);
        if let failed @ (Outcome::Failed(_) | Outcome::Skipped { .. }) = Outcome::of(compile) {
            return failed;
        }
        if !enabled && let Err(failed) = check_disabled_symbols(cc, &object) {
            return failed;
        }
    }
    Outcome::Ok
}

/// The disabled object must not need the archive or the model: lists its
/// undefined symbols with the compiler's own `nm` (the Xtensa one reads
/// Xtensa objects) and fails on any from [`ENABLED_ONLY`].
fn check_disabled_symbols(cc: &str, object: &Path) -> Result<(), Outcome> {
    let nm = cc
        .strip_suffix("gcc")
        .map_or_else(|| "nm".to_owned(), |prefix| format!("{prefix}nm"));
    let mut list = Command::new(&nm);
    list.arg("-u").arg(object);
    let listed = match process::run_captured(list) {
        Ok(listed) if listed.success => listed,
        Ok(listed) => return Err(Outcome::Failed(listed.transcript)),
        Err(error) => return Err(Outcome::Failed(format!("could not run `{nm}`: {error}\n"))),
    };
    let leaked: Vec<&str> = listed
        .output
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .filter(|symbol| ENABLED_ONLY.iter().any(|prefix| symbol.starts_with(prefix)))
        .collect();
    if leaked.is_empty() {
        Ok(())
    } else {
        Err(Outcome::Failed(format!(
            "with CONFIG_CSI_TEMPORAL_HEAD_ENABLED off, temporal_task.c still references {}; \
             those must stay inside `#if CONFIG_CSI_TEMPORAL_HEAD_ENABLED`\n{}",
            leaked.join(", "),
            listed.transcript
        )))
    }
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `target/`), where
/// scratch output belongs so `cargo clean` removes it.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| root.join("target"), |dir| root.join(dir))
}
