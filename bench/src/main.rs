//! `aether-bench`: our sparse and dense backends against the published
//! `ruvllm_sparse_attention` 0.1.1, in one release run on one thread.
//!
//! Usage: `aether-bench [--quick] [--only SECTION] [--json FILE] [--plot FILE.svg]`
//! (`cargo xtask bench` forwards its arguments here). Prints the tables and
//! the target verdicts of `docs/quality.md`; `--json` writes every
//! measurement (and, with the prefill section, this core's measured
//! multiply-add peak: `src/peak.rs`), `--plot` a log-log figure of time
//! against N.
//!
//! Why a binary and not criterion: the comparison is a handful of long
//! runs whose *ratios* matter, taken in one process so the machine state is
//! shared, plus a heap measurement that needs a global allocator.

mod alloc_counter;
mod decode;
mod inputs;
mod model;
mod peak;
mod plot;
mod prefill;
mod report;
mod timing;
mod tracks;

use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: alloc_counter::CountingAllocator = alloc_counter::CountingAllocator;

/// Parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    quick: bool,
    /// Run only this section (`prefill`, `decode`, `model`, `tracks`): a kernel change
    /// needs its own section re-measured, not the whole suite.
    only: Option<String>,
    json: Option<PathBuf>,
    plot: Option<PathBuf>,
}

const USAGE: &str =
    "usage: aether-bench [--quick] [--only SECTION] [--json FILE] [--plot FILE.svg]";

/// The sections `--only` accepts, in the order a full run measures them.
const SECTIONS: &[&str] = &["prefill", "decode", "model", "tracks"];

fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => parsed.quick = true,
            "--only" => {
                let section = args.next().ok_or("--only needs a SECTION")?;
                if !SECTIONS.contains(&section.as_str()) {
                    return Err(format!(
                        "unknown section `{section}`; sections: {}",
                        SECTIONS.join(", ")
                    ));
                }
                parsed.only = Some(section);
            }
            "--json" => parsed.json = Some(args.next().ok_or("--json needs a FILE")?.into()),
            "--plot" => parsed.plot = Some(args.next().ok_or("--plot needs a FILE.svg")?.into()),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let isa = aether_sparse::Isa::detect();
    println!(
        "aether-bench{}: sparse kernel ISA {isa:?}; ruvllm_sparse_attention 0.1.1 (default features, serial)",
        if args.quick { " --quick" } else { "" }
    );
    let wanted = |section: &str| args.only.as_deref().is_none_or(|only| only == section);
    let results = if wanted("prefill") {
        let results = prefill::run(prefill::Plan { quick: args.quick });
        print!("{}", report::render(&results));
        results
    } else {
        prefill::Results::default()
    };
    let decoded = if wanted("decode") {
        let decoded = decode::run(decode::Plan { quick: args.quick });
        print!("{}", decode::render(&decoded));
        decoded
    } else {
        decode::Results::default()
    };
    let modelled = if wanted("model") {
        let modelled = model::run(model::Plan { quick: args.quick });
        print!("{}", model::render(&modelled));
        modelled
    } else {
        model::Results::default()
    };
    let threaded = if wanted("tracks") {
        let threaded = tracks::run(tracks::Plan { quick: args.quick });
        print!("{}", tracks::render(&threaded));
        threaded
    } else {
        tracks::Results::default()
    };
    if let Some(path) = &args.json {
        let mut rows = report::json(&results);
        if let serde_json::Value::Array(rows) = &mut rows {
            rows.extend(decode::json(&decoded));
            rows.extend(model::json(&modelled));
            rows.extend(tracks::json(&threaded));
        }
        let text = serde_json::to_string_pretty(&rows).expect("serialisable");
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        if let Err(e) = plot::write(&results, &["A-mha", "A-mqa", "B"], path) {
            eprintln!("cannot plot to {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_the_documented_flags() {
        assert_eq!(args(&[]), Ok(Args::default()));
        assert_eq!(
            args(&["--quick", "--json", "a.json", "--plot", "p.svg"]),
            Ok(Args {
                quick: true,
                only: None,
                json: Some("a.json".into()),
                plot: Some("p.svg".into()),
            })
        );
    }

    #[test]
    fn rejects_unknown_and_incomplete_flags() {
        assert!(args(&["--fast"]).unwrap_err().contains("unknown argument"));
        assert!(args(&["--json"]).unwrap_err().contains("needs a FILE"));
        assert!(
            args(&["--only", "everything"])
                .unwrap_err()
                .contains("unknown section")
        );
        assert_eq!(
            args(&["--only", "decode"]).map(|a| a.only),
            Ok(Some("decode".into()))
        );
    }
}
