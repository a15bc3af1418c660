//! Running the tools xtask drives (cargo, rustup) from the workspace root,
//! with their output captured.
//!
//! Capturing is what lets `ci` print one line per step and show a tool's
//! output only when the step fails. Stdout and stderr share one pipe, so the
//! captured text interleaves exactly as it would have on a terminal.

use std::{
    env,
    ffi::OsStr,
    io::{self, Read},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The workspace root: the directory above this crate's manifest.
pub(crate) fn project_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .expect("xtask/ sits directly below the workspace root")
        .to_path_buf()
}

/// A `cargo` command run in the workspace root.
///
/// Uses `$CARGO` (the cargo that started us) when set, so the toolchain that
/// built xtask is the one that checks the workspace. Everything else,
/// `CARGO_TARGET_DIR` included, is inherited from our environment.
pub(crate) fn cargo() -> Command {
    let program = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    command.current_dir(project_root());
    command
}

/// What a finished command left behind.
pub(crate) struct Captured {
    /// Whether it exited with status 0.
    pub(crate) success: bool,
    /// The command line, its interleaved stdout and stderr, and (on failure)
    /// its exit status: everything a reader needs to see why it failed.
    pub(crate) transcript: String,
    /// Stdout and stderr alone, for callers that parse the output.
    pub(crate) output: String,
}

/// Runs `command` to completion with stdin closed and its output captured.
///
/// `Err` only when the command could not be started or read (for example
/// `ErrorKind::NotFound` when the program is not installed); a command that
/// ran and failed is `Ok` with `success == false`.
pub(crate) fn run_captured(mut command: Command) -> io::Result<Captured> {
    let line = render(&command);
    let (mut reader, writer) = io::pipe()?;
    command
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer);
    let mut child = command.spawn()?;
    // The Command still owns our copies of the pipe's write end; drop them,
    // or the read below would wait forever for an end of file.
    drop(command);
    let mut bytes = Vec::new();
    let read = reader.read_to_end(&mut bytes);
    // Reap the child even if reading failed, then report the first error.
    let status = child.wait()?;
    read?;
    let output = String::from_utf8_lossy(&bytes).into_owned();
    let mut transcript = format!("$ {line}\n{output}");
    if !transcript.ends_with('\n') {
        transcript.push('\n');
    }
    if !status.success() {
        transcript += &format!("({status})\n");
    }
    Ok(Captured {
        success: status.success(),
        transcript,
        output,
    })
}

/// `command` as a shell-like line, with the program shown by file name
/// (`cargo`, not `/home/…/toolchains/…/bin/cargo`).
pub(crate) fn render(command: &Command) -> String {
    let program = Path::new(command.get_program());
    let mut line = program
        .file_name()
        .unwrap_or(OsStr::new("?"))
        .to_string_lossy()
        .into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line += &arg.to_string_lossy();
    }
    line
}
