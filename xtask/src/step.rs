//! Steps and their outcomes: the small abstraction `ci` is built from.
//!
//! A step is a name and a closure returning an [`Outcome`]; the runner prints
//! exactly one status line per step (`<name> ... ok`, `... FAILED`, or
//! `... skipped: <reason>`), shows a step's captured output only when it
//! fails, and ends with a summary and the wall time. Adding a check to CI is
//! one more `Step` in the list, whatever the check does inside.

use std::{
    fmt::Write as _,
    io::{self, Write as _},
    process::{Command, ExitCode},
    time::{Duration, Instant},
};

use crate::process;

/// How one step ended.
pub(crate) enum Outcome {
    /// The check passed.
    Ok,
    /// The check failed; the text says why (usually a command transcript).
    Failed(String),
    /// The check could not run here.
    Skipped {
        /// Why, in a phrase: "xtensa-lx106-elf-gcc not found".
        reason: String,
        /// How to make the step runnable (a command or short instructions),
        /// when that is possible on this machine. `Some` means the skip was avoidable, which `CI=true`
        /// turns into a failure.
        install: Option<String>,
    },
}

impl Outcome {
    /// Runs `command` with its output captured: `Ok` when it exits with
    /// status 0, otherwise `Failed` with the transcript.
    pub(crate) fn of(command: Command) -> Outcome {
        let line = process::render(&command);
        match process::run_captured(command) {
            Ok(captured) if captured.success => Outcome::Ok,
            Ok(captured) => Outcome::Failed(captured.transcript),
            Err(error) => Outcome::Failed(format!("could not run `{line}`: {error}\n")),
        }
    }
}

/// One named check.
pub(crate) struct Step {
    name: String,
    check: Box<dyn Fn() -> Outcome>,
}

impl Step {
    /// A step running arbitrary code.
    pub(crate) fn new(name: impl Into<String>, check: impl Fn() -> Outcome + 'static) -> Step {
        Step {
            name: name.into(),
            check: Box::new(check),
        }
    }

    /// A step that passes when the command `make` builds exits with status 0.
    pub(crate) fn command(name: impl Into<String>, make: impl Fn() -> Command + 'static) -> Step {
        Step::new(name, move || Outcome::of(make()))
    }
}

/// What to make of an avoidable skip.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SkipPolicy {
    /// Developer machine: report it and move on.
    Allow,
    /// `CI=true`: CI could have installed the tool, so it counts as a failure.
    FailInstallable,
}

/// Runs every step in order (a failure does not stop the rest, so one run
/// shows every problem), prints the status lines and the summary, and returns
/// failure if any step failed.
pub(crate) fn run_all(task: &str, steps: &[Step], policy: SkipPolicy) -> ExitCode {
    let start = Instant::now();
    let (mut passed, mut skipped) = (0, 0);
    let mut failed = Vec::new();
    for step in steps {
        // The name goes out before the step runs, so a slow step shows what
        // it is doing; the status finishes the same line.
        print!("{} ... ", step.name);
        // A failed flush only delays the text; the status still follows.
        let _ = io::stdout().flush();
        let step_start = Instant::now();
        let outcome = (step.check)();
        let took = format_duration(step_start.elapsed());
        match outcome {
            Outcome::Ok => {
                passed += 1;
                println!("ok ({took})");
            }
            Outcome::Failed(output) => {
                failed.push(step.name.as_str());
                println!("FAILED ({took})");
                print!("{}", indent(&output));
            }
            Outcome::Skipped {
                reason,
                install: Some(install),
            } if policy == SkipPolicy::FailInstallable => {
                failed.push(step.name.as_str());
                println!(
                    "FAILED: skipped, but CI=true requires installable tools: {reason}; to install: {install}"
                );
            }
            Outcome::Skipped { reason, install } => {
                skipped += 1;
                match install {
                    Some(install) => println!("skipped: {reason}; to install: {install}"),
                    None => println!("skipped: {reason}"),
                }
            }
        }
    }
    let mut summary = format!("\n{task}: {passed} ok, {} failed", failed.len());
    if !failed.is_empty() {
        let _ = write!(summary, " ({})", failed.join(", "));
    }
    let _ = write!(
        summary,
        ", {skipped} skipped in {}",
        format_duration(start.elapsed())
    );
    println!("{summary}");
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Sets a failed step's output off from the status lines around it.
fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}\n")).collect()
}

/// `0.4s`, `12.3s`, `2m 05.1s`.
fn format_duration(duration: Duration) -> String {
    // Round once, to tenths, so 119.96s reads `2m 00.0s` and not `1m 60.0s`.
    let tenths = (duration.as_millis() + 50) / 100;
    let (minutes, tenths) = (tenths / 600, tenths % 600);
    let (seconds, tenth) = (tenths / 10, tenths % 10);
    if minutes == 0 {
        format!("{seconds}.{tenth}s")
    } else {
        format!("{minutes}m {seconds:02}.{tenth}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(Duration::from_millis(400)), "0.4s");
        assert_eq!(format_duration(Duration::from_millis(125_100)), "2m 05.1s");
        assert_eq!(format_duration(Duration::from_millis(119_960)), "2m 00.0s");
    }

    #[test]
    fn failed_output_is_indented_line_by_line() {
        assert_eq!(indent("a\nb\n"), "    a\n    b\n");
    }
}
