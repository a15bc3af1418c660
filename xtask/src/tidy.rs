//! Tidy: project-wide rules checked as plain `#[test]`s (the rust-analyzer
//! convention), so `cargo test --workspace`, and with it `cargo xtask ci`,
//! enforces them without another tool.
//!
//! Each test collects every offence before failing, and its message lists
//! them all, so one run shows everything to fix.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

use crate::{ci::NO_STD_CRATES, process::cargo, process::project_root};

/// Crates allowed to depend on the published `ruvllm_sparse_attention`:
/// the benchmarks and tests that compare against it. Product crates must not
/// ship it.
const MAY_USE_RUVLLM: &[&str] = &["aether-bench", "xtask", "aether-tests"];

/// Crates nothing may depend on: tools, not libraries (ARCHITECTURE.md,
/// "Layers and dependency rules").
const LEAVES: &[&str] = &["xtask", "aether-cli"];

/// The core: what the adapters (formats, trainer, CLI) are built around,
/// so it must not depend on any of them (ARCHITECTURE.md).
const CORE_DIRS: &[&str] = &["domain", "backends", "engine", "model"];

/// This file spells out the forbidden patterns, so it is exempt from them.
const THIS_FILE: &str = "xtask/src/tidy.rs";

#[test]
fn dependency_direction() {
    let violations = dependency_violations(&workspace_members());
    assert!(
        violations.is_empty(),
        "dependency rules (ARCHITECTURE.md) broken:\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn no_std_crates_are_workspace_members() {
    let members: BTreeSet<String> = workspace_members()
        .into_iter()
        .map(|member| member.name)
        .collect();
    let unknown: Vec<&str> = NO_STD_CRATES
        .iter()
        .copied()
        .filter(|name| !members.contains(*name))
        .collect();
    assert!(
        unknown.is_empty(),
        "ci::NO_STD_CRATES names crates that are not workspace members: {}",
        unknown.join(", ")
    );
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let mut offenders = Vec::new();
    for file in rust_files() {
        let text = read(&file);
        let first = text.lines().map(str::trim).find(|line| !line.is_empty());
        if !first.is_some_and(|line| line.starts_with("//!")) {
            offenders.push(relative(&file));
        }
    }
    assert!(
        offenders.is_empty(),
        "these files do not start with a `//!` doc saying why the module exists:\n  {}",
        offenders.join("\n  ")
    );
}

/// Only the firmware crate talks C: one module there owns every raw
/// pointer, and the symbol check can then prove nothing else leaks into
/// the archive's C namespace (ARCHITECTURE.md, "Layers").
#[test]
fn only_the_firmware_crate_has_a_c_boundary() {
    let needles = [concat!("extern ", "\"C\""), concat!("no_", "mangle")];
    let mut offenders = Vec::new();
    for file in rust_files() {
        let path = relative(&file);
        if path.starts_with("firmware-abi/") || path == THIS_FILE {
            continue;
        }
        let text = read(&file);
        for (number, line) in text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle)) {
                offenders.push(format!("{path}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "only firmware-abi/ may declare a C boundary:\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn no_placeholders_or_should_panic() {
    // `todo!`/`unimplemented!` are unfinished work; `#[should_panic]` passes
    // on any panic, including the wrong one. Test a returned error instead.
    const FORBIDDEN: &[&str] = &["todo!(", "unimplemented!(", "#[should_panic"];
    let mut offenders = Vec::new();
    for file in rust_files() {
        let path = relative(&file);
        if path == THIS_FILE {
            continue;
        }
        for (number, line) in read(&file).lines().enumerate() {
            for pattern in FORBIDDEN.iter().filter(|pattern| line.contains(**pattern)) {
                offenders.push(format!("{path}:{}: {pattern}", number + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "forbidden patterns found:\n  {}",
        offenders.join("\n  ")
    );
}

/// Text that cites the team's working spec, which a clone of this
/// repository does not have. Definitions are cited from `docs/` instead.
/// Spelled in pieces so this file does not cite it either; the escaped form
/// is how JSON writers store the section sign.
const TEAM_SPEC_CITATIONS: &[&str] = &[
    concat!("SPEC", ".md"),
    concat!("SPEC ", "\u{a7}"),
    concat!("SPEC ", "\\u00a7"),
    concat!("..", "/shared"),
];

#[test]
fn definitions_are_cited_from_docs() {
    let mut offenders = Vec::new();
    for path in tracked_files() {
        let bytes = fs::read(project_root().join(&path))
            .unwrap_or_else(|error| panic!("read {path}: {error}"));
        offenders.extend(team_spec_citations(&path, &bytes));
    }
    assert!(
        offenders.is_empty(),
        "these lines cite the team's spec, which a clone does not have; cite the \
         matching file in docs/ instead:\n  {}",
        offenders.join("\n  ")
    );
}

/// The citation rule must catch each pattern, and only those.
#[test]
fn team_spec_citations_are_found() {
    let [spec_file, section, escaped, shared] = TEAM_SPEC_CITATIONS else {
        panic!("the test below names each pattern");
    };
    let text = format!(
        "ok\nsee {spec_file}\n{section}3 pattern\n{shared}/vectors\nSPEC section\n\"{escaped}3\"\n"
    );
    assert_eq!(
        team_spec_citations("a.rs", text.as_bytes()),
        [
            format!("a.rs:2: {spec_file}"),
            format!("a.rs:3: {section}"),
            format!("a.rs:4: {shared}"),
            format!("a.rs:6: {escaped}"),
        ]
    );
    assert!(team_spec_citations("b.bin", &[0xFF, 0x00, b'S']).is_empty());
}

/// `path:line: pattern` for every line of `bytes` holding a pattern of
/// [`TEAM_SPEC_CITATIONS`]. Bytes, not text, so binary files are searched
/// too instead of failing to decode.
fn team_spec_citations(path: &str, bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for (number, line) in bytes.split(|&byte| byte == b'\n').enumerate() {
        for pattern in TEAM_SPEC_CITATIONS {
            let pattern = pattern.as_bytes();
            if line.windows(pattern.len()).any(|window| window == pattern) {
                found.push(format!(
                    "{path}:{}: {}",
                    number + 1,
                    String::from_utf8_lossy(pattern)
                ));
            }
        }
    }
    found
}

/// Every file git tracks, relative to the workspace root, `/`-separated.
fn tracked_files() -> Vec<String> {
    let output = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(project_root())
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git ls-files failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
        .stdout
        .split(|&byte| byte == 0)
        .filter(|path| !path.is_empty())
        .map(|path| String::from_utf8_lossy(path).into_owned())
        .collect()
}

/// The rules must catch what they claim to; checked on a made-up workspace.
#[test]
fn dependency_rules_catch_each_violation() {
    let member = |name: &str, dir: &str, dependencies: &[&str]| Member {
        name: name.to_owned(),
        dir: dir.to_owned(),
        dependencies: dependencies.iter().map(|&name| name.to_owned()).collect(),
    };
    let broken = [
        member("aether-domain", "domain", &["aether-sparse", "serde"]),
        member(
            "aether-sparse",
            "backends/sparse",
            &["aether-domain", "aether-engine"],
        ),
        member(
            "aether-engine",
            "engine",
            &["aether-domain", "aether-cli", "ruvllm-sparse-attention"],
        ),
        member("aether-cli", "adapters/cli", &["xtask"]),
        member("aether-rvne", "adapters/rvne", &["aether-model"]),
        member("aether-model", "model", &["aether-domain", "aether-rvne"]),
        member(
            "aether-bench",
            "bench",
            &["aether-engine", "ruvllm_sparse_attention"],
        ),
        member("xtask", "xtask", &[]),
    ];
    let violations = dependency_violations(&broken);
    for expected in [
        "aether-domain (domain) depends on aether-sparse",
        "aether-sparse (backends/sparse) depends on aether-engine",
        "aether-engine (engine) depends on aether-cli",
        "aether-engine (engine) depends on ruvllm-sparse-attention",
        "aether-cli (adapters/cli) depends on xtask",
        "aether-model (model) depends on aether-rvne",
    ] {
        assert!(
            violations
                .iter()
                .any(|violation| violation.starts_with(expected)),
            "missed `{expected}`; found:\n  {}",
            violations.join("\n  ")
        );
    }
    assert_eq!(
        violations.len(),
        6,
        "unexpected extra violations:\n  {}",
        violations.join("\n  ")
    );
}

/// A workspace member as the dependency rules see it.
struct Member {
    name: String,
    /// Package directory relative to the workspace root, `/`-separated.
    dir: String,
    /// Names of its normal (not dev, not build) dependencies.
    dependencies: Vec<String>,
}

/// Every broken dependency rule (ARCHITECTURE.md), one line each.
fn dependency_violations(members: &[Member]) -> Vec<String> {
    let workspace: BTreeSet<&str> = members.iter().map(|member| member.name.as_str()).collect();
    let adapters: BTreeSet<&str> = members
        .iter()
        .filter(|member| member.dir.starts_with("adapters/"))
        .map(|member| member.name.as_str())
        .collect();
    let mut violations = Vec::new();
    for member in members {
        let core = !member.dir.starts_with("adapters/")
            && CORE_DIRS
                .iter()
                .any(|dir| member.dir == *dir || member.dir.starts_with(&format!("{dir}/")));
        for dependency in &member.dependencies {
            let dependency = dependency.as_str();
            let internal = workspace.contains(dependency);
            let broken_rule = if member.name == "aether-domain" && internal {
                Some("aether-domain depends on no workspace crate")
            } else if member.dir.starts_with("backends/")
                && internal
                && dependency != "aether-domain"
            {
                Some("backends depend only on aether-domain")
            } else if core && adapters.contains(dependency) {
                Some("the core (domain, backends, engine, model) depends on no adapter")
            } else if LEAVES.contains(&dependency) {
                Some("nothing depends on xtask or aether-cli")
            } else if dependency.replace('-', "_") == "ruvllm_sparse_attention"
                && !MAY_USE_RUVLLM.contains(&member.name.as_str())
            {
                Some("only aether-bench, aether-tests and xtask may use ruvllm_sparse_attention")
            } else {
                None
            };
            if let Some(rule) = broken_rule {
                violations.push(format!(
                    "{} ({}) depends on {dependency}: {rule}",
                    member.name, member.dir
                ));
            }
        }
    }
    violations
}

/// The workspace members, from `cargo metadata --no-deps`.
fn workspace_members() -> Vec<Member> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo metadata failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let root = Path::new(
        metadata["workspace_root"]
            .as_str()
            .expect("workspace_root is a string"),
    );
    let packages = metadata["packages"]
        .as_array()
        .expect("packages is an array");
    packages
        .iter()
        .map(|package| {
            let manifest = Path::new(
                package["manifest_path"]
                    .as_str()
                    .expect("manifest_path is a string"),
            );
            let dir = manifest.parent().expect("a manifest is in a directory");
            let dir = dir.strip_prefix(root).unwrap_or(dir);
            let dependencies = package["dependencies"]
                .as_array()
                .expect("dependencies is an array");
            Member {
                name: package["name"]
                    .as_str()
                    .expect("name is a string")
                    .to_owned(),
                dir: slashed(dir),
                dependencies: dependencies
                    .iter()
                    // `kind` is null for normal dependencies, "dev" or "build" otherwise.
                    .filter(|dependency| dependency["kind"].is_null())
                    .map(|dependency| {
                        dependency["name"]
                            .as_str()
                            .expect("name is a string")
                            .to_owned()
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Every `.rs` file in the workspace, sorted, outside build output and
/// hidden directories.
fn rust_files() -> Vec<PathBuf> {
    let root = project_root();
    let mut files = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        let entries =
            fs::read_dir(&dir).unwrap_or_else(|error| panic!("read {}: {error}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|error| panic!("read {}: {error}", dir.display()));
            let path = entry.path();
            let kind = entry
                .file_type()
                .unwrap_or_else(|error| panic!("stat {}: {error}", path.display()));
            if kind.is_dir() {
                if !is_skipped_dir(&root, &path) {
                    pending.push(path);
                }
            } else if kind.is_file() && path.extension().is_some_and(|extension| extension == "rs")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Build output (`target*` at the root, `fuzz/target`, or any directory
/// cargo tagged as a cache) and hidden directories (`.git`, `.cargo`, …).
fn is_skipped_dir(root: &Path, dir: &Path) -> bool {
    let name = dir
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    name.starts_with('.')
        || (dir.parent() == Some(root) && name.starts_with("target"))
        || dir == root.join("fuzz").join("target")
        || dir.join("CACHEDIR.TAG").exists()
}

fn read(file: &Path) -> String {
    fs::read_to_string(file).unwrap_or_else(|error| panic!("read {}: {error}", file.display()))
}

/// `file` relative to the workspace root, `/`-separated, for messages.
fn relative(file: &Path) -> String {
    let root = project_root();
    slashed(file.strip_prefix(&root).unwrap_or(file))
}

fn slashed(path: &Path) -> String {
    path.components()
        .map(|component| component.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
