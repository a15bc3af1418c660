//! `cargo xtask symbols`: checks that `libruv_temporal.a` exports exactly
//! the functions its header declares.
//!
//! Why: a C firmware links the archive next to its own code, ESP-IDF and
//! libc. Any unmangled global function the archive defines beyond the
//! header's (a `rust_begin_unwind`, an allocator shim, a `memcpy`) could
//! collide with, or silently replace, one of theirs. The check lists the
//! archive's defined global text symbols with binutils `nm` and compares
//! them with the header's function declarations (esp-hal's
//! `check-global-symbols` idea).
//!
//! What is legitimately exported besides the header's functions:
//! - mangled Rust symbols (`_ZN…`, `_R…`): no C name can collide with them;
//! - in archive members that are not Rust code units (not `*.rcgu.o`),
//!   names starting with `__`: the compiler-rt routines `compiler_builtins`
//!   bundles (`__mulsc3`, `__popcountsi2`, …). They are the compiler
//!   runtime's ABI, the same functions with the same names as the
//!   toolchain's libgcc, in the namespace C reserves for the
//!   implementation; the linker takes one copy of each, whichever archive
//!   comes first, with identical behaviour.
//!
//! Everything else fails: an unmangled Rust symbol (`rust_begin_unwind`,
//! `__rust_alloc`, `rust_eh_personality`), a C-named function from a Rust
//! unit that the header does not declare, or a header function the archive
//! does not define.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use crate::{
    Task,
    header::HEADER,
    process::{self, cargo, project_root},
    step::{self, Outcome, SkipPolicy, Step},
};

/// Registration for `main`'s task table.
pub(crate) const TASK: Task = Task {
    name: "symbols",
    summary: "Check libruv_temporal.a exports exactly the header's functions",
    usage,
    run,
};

/// Where the check runs: the host archive (what gcc and valgrind link) and
/// the ESP32-C3's ISA (bare metal: no std, our runtime).
const TARGETS: &[Option<&str>] = &[None, Some("riscv32imc-unknown-none-elf")];

fn usage() -> String {
    "\
Usage: cargo xtask symbols [<rust target>]

Builds libruv_temporal.a (`cargo build -p aether-firmware --profile
firmware`, for the host and riscv32imc-unknown-none-elf, or for the target
given), lists its defined global text symbols with `nm`, and fails unless
the unmangled ones are exactly the functions firmware-abi/include/
ruv_temporal.h declares (plus compiler-rt's `__` routines; see
xtask/src/symbols.rs for why).
"
    .to_string()
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let steps: Vec<Step> = match args {
        [] => steps(),
        [target] if !target.starts_with('-') => vec![step_for(Some(target.clone()))],
        [other, ..] => return Err(format!("unexpected argument `{other}`")),
    };
    Ok(step::run_all("symbols", &steps, SkipPolicy::Allow))
}

/// The CI steps: one per target in [`TARGETS`].
pub(crate) fn steps() -> Vec<Step> {
    TARGETS
        .iter()
        .map(|target| step_for(target.map(str::to_string)))
        .collect()
}

fn step_for(target: Option<String>) -> Step {
    let name = format!("symbols {}", target.as_deref().unwrap_or("host"));
    Step::new(name, move || match check(target.as_deref()) {
        Ok(()) => Outcome::Ok,
        Err(outcome) => outcome,
    })
}

/// The directory cargo builds into.
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| project_root().join("target"), PathBuf::from)
}

/// Builds the archive for `target` and returns its path.
fn build(target: Option<&str>) -> Result<PathBuf, Outcome> {
    let mut command = cargo();
    command.args(["build", "-p", "aether-firmware", "--profile", "firmware"]);
    let mut dir = target_dir();
    if let Some(target) = target {
        command.args(["--target", target]);
        dir.push(target);
    }
    match Outcome::of(command) {
        Outcome::Ok => Ok(dir.join("firmware").join("libruv_temporal.a")),
        failed => Err(failed),
    }
}

fn check(target: Option<&str>) -> Result<(), Outcome> {
    let archive = build(target)?;
    let header = fs::read_to_string(project_root().join(HEADER))
        .map_err(|error| Outcome::Failed(format!("read {HEADER}: {error}\n")))?;
    let listing = nm(&archive)?;
    let problems = problems(&listing, &header_functions(&header));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Outcome::Failed(format!(
            "{} does not export exactly the header's functions:\n  {}\n",
            archive.display(),
            problems.join("\n  ")
        )))
    }
}

/// `nm -A -g --defined-only` of `archive`.
fn nm(archive: &Path) -> Result<String, Outcome> {
    let mut command = Command::new("nm");
    command.args(["-A", "-g", "--defined-only"]).arg(archive);
    match process::run_captured(command) {
        Ok(listed) if listed.success => Ok(listed.output),
        Ok(listed) => Err(Outcome::Failed(listed.transcript)),
        Err(error) => Err(Outcome::Skipped {
            reason: format!("could not run `nm` (binutils): {error}"),
            install: Some("apt-get install -y binutils".to_string()),
        }),
    }
}

/// The functions the header declares: on each declaration line (not a
/// comment or preprocessor line), the identifier before the first `(`.
fn header_functions(header: &str) -> Vec<String> {
    let mut names: Vec<String> = header
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with(['/', '*', '#']))
        .filter_map(|line| {
            let before = line.split_once('(')?.0;
            let name = before
                .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()?;
            name.starts_with("ruv_temporal_").then(|| name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// One defined global symbol from `nm -A`: the archive member, the type
/// letter, the name.
struct Symbol<'a> {
    member: &'a str,
    kind: char,
    name: &'a str,
}

/// Parses `archive:member:address type name` lines; other lines (blank,
/// `nm`'s "no symbols" notes) are skipped.
fn symbols(listing: &str) -> Vec<Symbol<'_>> {
    listing
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let location = fields.next()?;
            let kind = fields.next()?.chars().next()?;
            let name = fields.next()?;
            // `archive:member:address`; the archive path may hold `:`.
            let mut parts = location.rsplitn(3, ':');
            let (_address, member) = (parts.next()?, parts.next()?);
            Some(Symbol { member, kind, name })
        })
        .collect()
}

/// Text symbols: `T` (global function), `W` (weak, not an object), `i`
/// (indirect function).
const fn is_text(kind: char) -> bool {
    matches!(kind, 'T' | 'W' | 'i')
}

fn is_mangled(name: &str) -> bool {
    name.starts_with("_ZN") || name.starts_with("_R")
}

/// Every way the listing breaks the rule in the module doc; empty when the
/// archive is right.
fn problems(listing: &str, declared: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut defined = Vec::new();
    for symbol in symbols(listing) {
        if !is_text(symbol.kind) || is_mangled(symbol.name) {
            continue;
        }
        let rust_unit = symbol.member.ends_with(".rcgu.o");
        if rust_unit && declared.iter().any(|name| name == symbol.name) {
            defined.push(symbol.name);
        } else if rust_unit {
            problems.push(format!(
                "{} ({}) is exported unmangled by Rust code but not declared in the header",
                symbol.name, symbol.member
            ));
        } else if !symbol.name.starts_with("__") {
            problems.push(format!(
                "{} ({}) is exported by a bundled C object outside the compiler runtime's `__` namespace",
                symbol.name, symbol.member
            ));
        }
    }
    for name in declared {
        match defined.iter().filter(|defined| *defined == name).count() {
            1 => {}
            0 => problems.push(format!("{name} is declared in the header but not exported")),
            n => problems.push(format!("{name} is defined {n} times")),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER_TEXT: &str = "\
/* ruv_temporal_destroy(ctx) in a comment */
 * ruv_temporal_push(...) in a doc line
#define RUV_TEMPORAL_OK 0
int32_t ruv_temporal_init(const uint8_t *weights,
                          size_t weights_len);
void ruv_temporal_destroy(ruv_temporal_ctx_t *ctx);
int32_t ruv_temporal_kernel_self_test(void);
";

    fn declared() -> Vec<String> {
        header_functions(HEADER_TEXT)
    }

    const GOOD: &str = "\
/t/libruv_temporal.a:ruv_temporal-1.ruv_temporal.2-cgu.0.rcgu.o:00000000 T ruv_temporal_init
/t/libruv_temporal.a:ruv_temporal-1.ruv_temporal.2-cgu.0.rcgu.o:00000010 T ruv_temporal_destroy
/t/libruv_temporal.a:ruv_temporal-1.ruv_temporal.2-cgu.0.rcgu.o:00000020 T ruv_temporal_kernel_self_test
/t/libruv_temporal.a:core-3.core.4-cgu.0.rcgu.o:00000000 T _ZN4core3fmt5write17h0123456789abcdefE
/t/libruv_temporal.a:alloc-5.alloc.6-cgu.0.rcgu.o:00000000 T _RNvCs123_7___rustc12___rust_alloc
/t/libruv_temporal.a:core-3.core.4-cgu.0.rcgu.o:00000000 R anon.0123.0.llvm.42
/t/libruv_temporal.a:45c91108d938afe8-mulsc3.o:00000000 T __mulsc3
/t/libruv_temporal.a:45c91108d938afe8-int_util.o:00000000 W __compilerrt_abort_impl
";

    #[test]
    fn header_functions_are_the_declarations_only() {
        assert_eq!(
            declared(),
            [
                "ruv_temporal_destroy",
                "ruv_temporal_init",
                "ruv_temporal_kernel_self_test"
            ]
        );
    }

    #[test]
    fn a_clean_archive_passes() {
        assert_eq!(problems(GOOD, &declared()), Vec::<String>::new());
    }

    #[test]
    fn unmangled_rust_runtime_symbols_fail() {
        for leak in [
            "rust_begin_unwind",
            "__rust_alloc",
            "rust_eh_personality",
            "memcpy",
        ] {
            let listing =
                format!("{GOOD}/t/libruv_temporal.a:std-7.std.8-cgu.0.rcgu.o:00000000 T {leak}\n");
            let found = problems(&listing, &declared());
            assert_eq!(found.len(), 1, "{leak}: {found:?}");
            assert!(found[0].starts_with(leak), "{found:?}");
        }
    }

    #[test]
    fn a_bundled_c_object_outside_the_runtime_namespace_fails() {
        let listing = format!("{GOOD}/t/libruv_temporal.a:45c9-string.o:00000000 T memset\n");
        assert_eq!(problems(&listing, &declared()).len(), 1);
    }

    #[test]
    fn a_missing_or_duplicated_header_function_fails() {
        let missing: String = GOOD
            .lines()
            .filter(|line| !line.ends_with("ruv_temporal_destroy"))
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(
            problems(&missing, &declared()),
            ["ruv_temporal_destroy is declared in the header but not exported"]
        );
        let twice = format!(
            "{GOOD}/t/libruv_temporal.a:ruv_temporal-1.ruv_temporal.2-cgu.1.rcgu.o:00000000 T ruv_temporal_init\n"
        );
        assert_eq!(
            problems(&twice, &declared()),
            ["ruv_temporal_init is defined 2 times"]
        );
    }

    #[test]
    fn data_symbols_are_not_functions() {
        let listing =
            format!("{GOOD}/t/libruv_temporal.a:x-1.x.2-cgu.0.rcgu.o:00000000 D some_table\n");
        assert_eq!(problems(&listing, &declared()), Vec::<String>::new());
    }
}
