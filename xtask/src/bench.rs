//! `cargo xtask bench`: the benchmark tables (`docs/quality.md`).
//!
//! The measurements live in the `aether-bench` binary (the only crate
//! allowed to link the published `ruvllm_sparse_attention`); this task
//! builds it in release mode and forwards the arguments, so the one
//! documented command always measures an optimised build. Relative
//! `--json`/`--plot` paths are resolved against the directory the user ran
//! the command from, not the workspace root.

use std::path::Path;
use std::process::ExitCode;

use crate::Task;
use crate::process::cargo;

pub(crate) const TASK: Task = Task {
    name: "bench",
    summary: "Benchmark our kernels against ruvllm_sparse_attention (release build)",
    usage,
    run,
};

fn usage() -> String {
    "\
Usage: cargo xtask bench [--quick] [--only SECTION] [--json FILE] [--plot FILE.svg]

Builds and runs `aether-bench` in release mode, single-threaded:
  --quick         fewer repetitions (finishes in under 2 minutes)
  --only SECTION  measure one section (the bench binary lists them)
  --json FILE     also write every measurement as JSON
  --plot FILE     also draw prefill time against N (log-log SVG)
"
    .to_string()
}

/// Makes `path` absolute against the caller's working directory.
fn absolute(path: &str) -> Result<String, String> {
    let path = Path::new(path);
    if path.is_absolute() {
        return Ok(path.display().to_string());
    }
    let here =
        std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    Ok(here.join(path).display().to_string())
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let mut forwarded = Vec::with_capacity(args.len());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => forwarded.push(arg.clone()),
            "--only" => {
                let section = args.next().ok_or("--only needs a SECTION")?;
                forwarded.push(arg.clone());
                forwarded.push(section.clone());
            }
            "--json" | "--plot" => {
                let file = args.next().ok_or_else(|| format!("{arg} needs a FILE"))?;
                forwarded.push(arg.clone());
                forwarded.push(absolute(file)?);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let mut command = cargo();
    command
        .args(["run", "--release", "--quiet", "-p", "aether-bench", "--"])
        .args(&forwarded);
    let status = command
        .status()
        .map_err(|e| format!("could not start cargo: {e}"))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
