//! `cargo xtask ci`: the single test entry point, run unchanged by
//! developers and by `.ci/run`.
//!
//! The checks are an ordered list of [`Step`]s built in [`steps`]; adding a
//! check is one more entry there. Every step runs even after an earlier one
//! fails, so one run shows every problem.

use std::{env, process::ExitCode};

use crate::{
    Task,
    process::{self, cargo},
    step::{self, Outcome, SkipPolicy, Step},
};

/// The crates that must build without `std` (ARCHITECTURE.md, "Layers and
/// dependency rules"). This is the one list:
/// the `no_std` steps build exactly these, and tidy checks each is a
/// workspace member.
pub(crate) const NO_STD_CRATES: &[&str] = &[
    "aether-domain",
    "aether-reference",
    "aether-dense",
    "aether-sparse",
    "aether-engine",
    "aether-rvne",
    "aether-model",
    "aether-packet",
    "aether-csi",
];

/// Bare-metal stand-ins for the real `xtensa-esp32s3-none-elf` target, which
/// needs Espressif's toolchain. One `no_std` step per target.
pub(crate) const NO_STD_TARGETS: &[&str] =
    &["riscv32imc-unknown-none-elf", "thumbv7em-none-eabihf"];

/// Registration for `main`'s task table.
pub(crate) const TASK: Task = Task {
    name: "ci",
    summary: "Run every CI check: fmt, clippy, tests, no_std builds",
    usage,
    run,
};

fn usage() -> String {
    format!(
        "\
Usage: cargo xtask ci

Runs, in order, every check CI runs, one status line each:
  fmt              cargo fmt --all -- --check
  clippy           cargo clippy --workspace --all-targets -- -D warnings
  test             cargo test --workspace
  no_std <target>  cargo build -p <crate>... --no-default-features --target <target>
                   crates:  {crates}
                   targets: {targets}
                   (a missing target is added with `rustup target add`)
  esp-idf component <cc>
                   firmware-abi/esp-idf/temporal_task.c compiled by gcc and
                   xtensa-lx106-elf-gcc (-std=c11 -Wall -Wextra -Werror)
                   against test_shims/, head enabled and disabled
  xtensa-llvm      the no_std crates and aether-firmware built by the
                   nightly's experimental Xtensa backend for a generic core
                   (`cargo xtask xtensa --help`)
  c <target>       the C harness against libruv_temporal.a: host (gcc -Werror),
                   valgrind, qemu riscv32imc and riscv32imafc, xtensa compile
                   (`cargo xtask c-harness --help`; missing tools are
                   installed with apt-get when running as root)

A step's output is shown only when it fails. Every step runs even after a
failure; the exit status is non-zero if any step failed.

Environment:
  CI=true  a step skipped for a missing tool that could have been installed
           counts as a failure
",
        crates = NO_STD_CRATES.join(" "),
        targets = NO_STD_TARGETS.join(" "),
    )
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    if let Some(arg) = args.first() {
        return Err(format!("unexpected argument `{arg}`"));
    }
    let policy = if running_in_ci() {
        SkipPolicy::FailInstallable
    } else {
        SkipPolicy::Allow
    };
    Ok(step::run_all("ci", &steps(), policy))
}

/// Every check, in the order it runs. Cheap checks come first so their
/// failures show up before the long ones.
fn steps() -> Vec<Step> {
    let mut steps = vec![
        cargo_tool("fmt", "fmt", "rustfmt", &["--all", "--", "--check"]),
        cargo_tool(
            "clippy",
            "clippy",
            "clippy",
            &["--workspace", "--all-targets", "--", "-D", "warnings"],
        ),
        Step::command("test", || {
            let mut test = cargo();
            test.args(["test", "--workspace"]);
            test
        }),
    ];
    steps.extend(NO_STD_TARGETS.iter().map(|&target| no_std(target)));
    steps.push(crate::header::step());
    steps.extend(crate::symbols::steps());
    steps.extend(crate::esp_idf::steps());
    steps.push(crate::xtensa::llvm_step());
    steps.extend(crate::c_harness::steps());
    // A new check is one `steps.push(...)`: `Step::command` when a single
    // command decides it, `Step::new` when it must first find or install a
    // tool (returning `Outcome::Skipped` with the install command if it can't).
    steps
}

/// The CI switch: `CI=true` (what GitHub Actions and `.ci/run` set) turns
/// an avoidable skip into a failure.
fn running_in_ci() -> bool {
    env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

/// A step running `cargo <subcommand> <args>` from rustup component
/// `component`; skipped, with the install command, when the component is
/// missing.
fn cargo_tool(
    name: &str,
    subcommand: &'static str,
    component: &'static str,
    args: &'static [&'static str],
) -> Step {
    Step::new(name, move || {
        let mut probe = cargo();
        probe.args([subcommand, "--version"]);
        if !process::run_captured(probe).is_ok_and(|probe| probe.success) {
            return Outcome::Skipped {
                reason: format!("`cargo {subcommand}` is not installed"),
                install: Some(format!("rustup component add {component}")),
            };
        }
        let mut command = cargo();
        command.arg(subcommand).args(args);
        Outcome::of(command)
    })
}

/// Builds every crate in [`NO_STD_CRATES`] for `target`, adding the target
/// first if it is missing.
fn no_std(target: &'static str) -> Step {
    Step::new(format!("no_std {target}"), move || {
        if let Err(not_ready) = crate::install::rust_target(target) {
            return not_ready;
        }
        let mut build = cargo();
        build.arg("build");
        for krate in NO_STD_CRATES {
            build.args(["-p", krate]);
        }
        // Default features may pull in std (rvne's file I/O); the firmware
        // builds every crate bare, so this step does too.
        build.args(["--no-default-features", "--target", target]);
        Outcome::of(build)
    })
}
