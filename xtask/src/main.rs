//! `cargo xtask <task>`: project automation as a plain Rust binary of the
//! workspace (the rust-analyzer convention), so CI and developers run the same
//! code and need nothing beyond the Rust toolchain.
//!
//! This file only dispatches. Each task lives in its own module and registers
//! itself with one entry in [`TASKS`]; the help text is generated from that
//! table, so it never lists a task that does not exist.

mod bench;
mod c_harness;
mod ci;
mod esp_idf;
mod header;
mod install;
mod process;
mod size;
mod step;
mod symbols;
#[cfg(test)]
mod tidy;
mod xtensa;

use std::process::ExitCode;

/// One `cargo xtask <name>` task.
struct Task {
    /// What the user types after `cargo xtask`.
    name: &'static str,
    /// One line for `cargo xtask help`.
    summary: &'static str,
    /// The full text for `cargo xtask <name> --help` (a function, so it can
    /// be built from the same constants the task uses and never drift).
    usage: fn() -> String,
    /// Runs the task with the arguments after its name (never containing
    /// `--help`). `Err` is a usage error: main prints it with the usage and
    /// exits with status 2.
    run: fn(&[String]) -> Result<ExitCode, String>,
}

/// Every task, in the order `cargo xtask help` lists them.
const TASKS: &[Task] = &[
    ci::TASK,
    bench::TASK,
    c_harness::TASK,
    size::TASK,
    xtensa::TASK,
    header::TASK,
    symbols::TASK,
];

/// Exit status for a command line we could not understand.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, rest)) = args.split_first() else {
        print!("{}", usage());
        return ExitCode::SUCCESS;
    };
    if matches!(name.as_str(), "help" | "--help" | "-h") {
        return help(rest.first());
    }
    let Some(task) = find(name) else {
        eprint!("error: unknown task `{name}`\n\n{}", usage());
        return ExitCode::from(USAGE_ERROR);
    };
    if rest.iter().any(|arg| arg == "--help" || arg == "-h") {
        print!("{}", (task.usage)());
        return ExitCode::SUCCESS;
    }
    match (task.run)(rest) {
        Ok(status) => status,
        Err(message) => {
            eprint!("error: {message}\n\n{}", (task.usage)());
            ExitCode::from(USAGE_ERROR)
        }
    }
}

/// `cargo xtask help [task]`.
fn help(task: Option<&String>) -> ExitCode {
    match task {
        None => {
            print!("{}", usage());
            ExitCode::SUCCESS
        }
        Some(name) => match find(name) {
            Some(task) => {
                print!("{}", (task.usage)());
                ExitCode::SUCCESS
            }
            None => {
                eprint!("error: unknown task `{name}`\n\n{}", usage());
                ExitCode::from(USAGE_ERROR)
            }
        },
    }
}

fn find(name: &str) -> Option<&'static Task> {
    TASKS.iter().find(|task| task.name == name)
}

/// The top-level usage, listing every registered task.
fn usage() -> String {
    let width = TASKS
        .iter()
        .map(|task| task.name.len())
        .max()
        .unwrap_or(0)
        .max("help".len());
    let mut text = String::from("Usage: cargo xtask <task> [options]\n\nTasks:\n");
    for task in TASKS {
        text += &format!("  {:width$}  {}\n", task.name, task.summary);
    }
    text += &format!(
        "  {:width$}  Print this message, or `help <task>` for one task\n",
        "help"
    );
    text += "\n`cargo xtask <task> --help` prints a task's options.\n";
    text
}
