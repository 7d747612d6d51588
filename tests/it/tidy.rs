//! The conventions ARCHITECTURE.md states, turned into failures (in the spirit of
//! rust-analyzer's `tidy.rs`). Each check reads the source tree; each has a test of its own
//! that feeds it a small tree breaking the rule and expects it to say so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The repository root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// Every `.rs` file under `dir`, recursively, skipping build output.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The host's crates: `host/<name>` folders with a manifest.
fn host_crates(root: &Path) -> Vec<PathBuf> {
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("host"))
        .map(|entries| {
            entries.flatten().map(|e| e.path()).filter(|p| p.join("Cargo.toml").is_file()).collect()
        })
        .unwrap_or_default();
    crates.sort();
    crates
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

/// Only `angage-http` depends on axum, in its manifest or its code.
fn axum_only_in_http(root: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    for krate in host_crates(root) {
        if krate.file_name().is_some_and(|n| n == "angage-http") {
            continue;
        }
        let manifest = read(&krate.join("Cargo.toml"));
        if manifest.lines().any(|l| l.trim_start().starts_with("axum")) {
            errors.push(format!(
                "{}: depends on axum; only angage-http may",
                relative(root, &krate.join("Cargo.toml"))
            ));
        }
        for file in rust_files(&krate) {
            for (i, line) in read(&file).lines().enumerate() {
                if line.contains("axum::") || line.trim_start().starts_with("use axum") {
                    errors.push(format!(
                        "{}:{}: uses axum; only angage-http may",
                        relative(root, &file),
                        i + 1
                    ));
                }
            }
        }
    }
    errors
}

/// The wall clock is read only where the server is composed (and by benches, which compose
/// their own): everything else takes the injected `Clock`.
fn clock_only_in_composition(root: &Path) -> Vec<String> {
    let allowed = |rel: &str| {
        rel == "host/angage-core/src/clock.rs"
            || rel.starts_with("host/angage/src/")
            || rel.contains("/benches/")
    };
    let mut errors = Vec::new();
    for krate in host_crates(root) {
        for file in rust_files(&krate) {
            let rel = relative(root, &file);
            if allowed(&rel) {
                continue;
            }
            for (i, line) in read(&file).lines().enumerate() {
                if ["SystemClock", "SystemTime::now", "now_utc()"].iter().any(|p| line.contains(p)) {
                    errors.push(format!("{rel}:{}: reads the wall clock; take the injected Clock", i + 1));
                }
            }
        }
    }
    errors
}

/// The calls that sleep, spelled in pieces so this file does not match itself.
const SLEEPS: [&str; 2] = [concat!("thread::", "sleep"), concat!("time::", "sleep(")];

/// Tests never sleep to let time pass: the clock is injected, and the one helper that polls
/// (`tests/it/wait.rs`) is the only place a test waits.
fn tests_never_sleep(root: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    let mut files = rust_files(&root.join("tests"));
    for krate in host_crates(root) {
        files.extend(rust_files(&krate.join("tests")));
    }
    for file in files {
        let rel = relative(root, &file);
        if rel == "tests/it/wait.rs" {
            continue;
        }
        for (i, line) in read(&file).lines().enumerate() {
            if SLEEPS.iter().any(|p| line.contains(p)) {
                errors
                    .push(format!("{rel}:{}: sleeps; wait for something observable with crate::wait", i + 1));
            }
        }
    }
    errors
}

/// Backticked paths in ARCHITECTURE.md's code map, resolved against the crate whose section
/// (`### \`host/...\``) they appear in, or against the root.
fn code_map(root: &Path) -> (Vec<String>, BTreeSet<PathBuf>) {
    let text = read(&root.join("ARCHITECTURE.md"));
    let map = text.split("## Code map").nth(1).and_then(|rest| rest.split("\n## ").next()).unwrap_or("");
    let mut base = root.to_path_buf();
    let mut missing = Vec::new();
    let mut named = BTreeSet::new();
    for line in map.lines() {
        let ticked: Vec<&str> = line.split('`').skip(1).step_by(2).collect();
        if let Some(heading) = line.strip_prefix("### ") {
            base = ticked.first().map_or_else(|| root.to_path_buf(), |first| root.join(first));
            if !base.exists() {
                missing.push(format!("ARCHITECTURE.md names {}, which does not exist", heading.trim()));
            }
            named.insert(base.clone());
            continue;
        }
        for token in ticked {
            let looks_like_path = token.ends_with(".rs") || token.ends_with('/') || token.ends_with(".toml");
            if !looks_like_path || token.contains([' ', '<']) {
                continue;
            }
            let candidates = [base.join(token), base.join("src").join(token), root.join(token)];
            match candidates.iter().find(|c| c.exists()) {
                Some(found) => {
                    named.insert(found.canonicalize().unwrap_or_else(|_| found.clone()));
                }
                None => missing.push(format!(
                    "ARCHITECTURE.md names `{token}` (under {}), which does not exist",
                    relative(root, &base)
                )),
            }
        }
    }
    (missing, named)
}

/// Every path the code map names exists, and every folder of Rust sources is named there.
fn code_map_is_true(root: &Path) -> Vec<String> {
    let (mut errors, named) = code_map(root);
    let named: BTreeSet<PathBuf> = named.into_iter().map(|p| p.canonicalize().unwrap_or(p)).collect();
    let mut folders = BTreeSet::new();
    for top in ["host", "sdk", "plugins", "tests"] {
        for file in rust_files(&root.join(top)) {
            if let Some(dir) = file.parent() {
                folders.insert(dir.to_path_buf());
            }
        }
    }
    for dir in folders {
        let dir = dir.canonicalize().unwrap_or(dir);
        // A crate's `src/` is named by its crate's heading or entry.
        let covered = named.contains(&dir)
            || (dir.file_name().is_some_and(|n| n == "src")
                && dir.parent().is_some_and(|p| named.contains(p)));
        if !covered {
            errors.push(format!("ARCHITECTURE.md's code map does not name {}", relative(root, &dir)));
        }
    }
    errors
}

/// Tenant settings nothing reads yet, each with the issue that makes it real. A reader
/// appearing for one of them fails the check too, so the list only shrinks.
const AWAITING_READER: &[(&str, &str)] = &[];

/// The tenant settings' fields: those of the structs in the core's settings model.
fn setting_fields(settings_rs: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut in_struct = false;
    for line in settings_rs.lines() {
        let t = line.trim();
        if t.starts_with("pub struct ") && t.ends_with('{') {
            in_struct = true;
        } else if in_struct && t == "}" {
            in_struct = false;
        } else if in_struct && let Some(field) = t.strip_prefix("pub ").and_then(|f| f.split(':').next()) {
            fields.push(field.trim().to_owned());
        }
    }
    fields
}

/// Every tenant setting is read somewhere outside the settings modules (its model and its
/// storage): a stored switch that does nothing is a defect.
fn every_setting_has_a_reader(root: &Path, awaiting: &[(&str, &str)]) -> Vec<String> {
    let model = root.join("host/angage-core/src/settings.rs");
    let storage = root.join("host/angage-store/src/tenants/settings.rs");
    let mut sources = String::new();
    for krate in host_crates(root) {
        for file in rust_files(&krate.join("src")) {
            if file != model && file != storage {
                sources.push_str(&read(&file));
                sources.push('\n');
            }
        }
    }
    let mut errors = Vec::new();
    for field in setting_fields(&read(&model)) {
        let read_somewhere = sources.contains(&format!(".{field}"));
        match (read_somewhere, awaiting.iter().find(|(name, _)| *name == field)) {
            (false, None) => errors.push(format!("tenant setting `{field}` is stored but nothing reads it")),
            (true, Some(_)) => {
                errors.push(format!("tenant setting `{field}` has a reader now: take it off AWAITING_READER"))
            }
            _ => {}
        }
    }
    errors
}

/// A module's path within its crate: `src/plugins/pool.rs` is `plugins::pool`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs").to_owned();
        if !matches!(stem.as_str(), "lib" | "main" | "mod") {
            parts.push(stem);
        }
    }
    parts
}

/// The paths a file names through `crate::` or `super::`, outside its test module.
fn paths_named(text: &str) -> Vec<(bool, Vec<String>)> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut out = Vec::new();
    for (prefix, from_crate) in [("crate::", true), ("super::", false)] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            let tail = &rest[at + prefix.len()..];
            rest = tail;
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let end = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '{'))
                .unwrap_or(tail.len());
            let path = &tail[..end];
            // `super::{a, b}` and `crate::x::{y, z}`: each name in the group is a path.
            let (stem, group) = match path.find('{') {
                Some(i) => {
                    let close = tail.find('}').unwrap_or(tail.len());
                    (&path[..i], tail[i + 1..close].to_owned())
                }
                None => (path, String::new()),
            };
            let stem: Vec<String> = stem.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
            if group.is_empty() {
                out.push((from_crate, stem));
            } else {
                for item in group.split(',') {
                    let item = item
                        .trim()
                        .split("::")
                        .next()
                        .unwrap_or("")
                        .split(' ')
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    if !item.is_empty() && item != "self" {
                        let mut p = stem.clone();
                        p.push(item);
                        out.push((from_crate, p));
                    }
                }
                if group.split(',').any(|i| i.trim() == "self") {
                    out.push((from_crate, stem.clone()));
                }
            }
        }
    }
    out
}

/// Import cycles between the modules of each crate under `dir` (a crate is a folder with
/// `src/`). `super::` and `crate::` paths are edges; a path to an item a parent re-exports
/// (`pub use child::Item`) is an edge to that child.
fn import_cycles(dir: &Path) -> Vec<String> {
    let mut crates: Vec<PathBuf> = vec![];
    if dir.join("src").is_dir() {
        crates.push(dir.to_path_buf());
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        crates.extend(entries.flatten().map(|e| e.path()).filter(|p| p.join("src").is_dir()));
    }
    let mut errors = Vec::new();
    for krate in crates {
        let src = krate.join("src");
        let files = rust_files(&src);
        let modules: BTreeMap<Vec<String>, String> =
            files.iter().map(|f| (module_of(&src, f), read(f))).collect();
        let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
        for (module, text) in &modules {
            for (from_crate, path) in paths_named(text) {
                // `super` of `a::b` (a file, or a folder's `mod.rs`) is `a`.
                let mut full =
                    if from_crate { Vec::new() } else { module[..module.len().saturating_sub(1)].to_vec() };
                full.extend(path);
                let Some(target) = resolve(&modules, &full) else { continue };
                if target == *module {
                    continue;
                }
                if !module.starts_with(&target) {
                    edges.entry(module.clone()).or_default().insert(target);
                } else if let Some(child) = reexport_source(&modules, &target, full.get(target.len()))
                    && !module.starts_with(&child)
                {
                    // A path into an ancestor is an edge only to the child it re-exports from.
                    edges.entry(module.clone()).or_default().insert(child);
                }
            }
            // A parent that re-exports from a child depends on it.
            for line in text.lines() {
                let t = line.trim();
                if let Some(rest) = t.strip_prefix("pub use ").or_else(|| t.strip_prefix("pub(crate) use ")) {
                    let first = rest.split("::").next().unwrap_or("");
                    let mut child = module.clone();
                    child.push(first.to_owned());
                    if modules.contains_key(&child) {
                        edges.entry(module.clone()).or_default().insert(child);
                    }
                }
            }
        }
        if let Some(cycle) = find_cycle(&edges) {
            let names: Vec<String> =
                cycle.iter().map(|m| if m.is_empty() { "crate".to_owned() } else { m.join("::") }).collect();
            errors.push(format!("{}: import cycle {}", krate.display(), names.join(" -> ")));
        }
    }
    errors
}

/// The longest prefix of `path` that is a module.
fn resolve(modules: &BTreeMap<Vec<String>, String>, path: &[String]) -> Option<Vec<String>> {
    (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains_key(p))
}

/// The child module `item` comes from, when `module` re-exports it.
fn reexport_source(
    modules: &BTreeMap<Vec<String>, String>,
    module: &[String],
    item: Option<&String>,
) -> Option<Vec<String>> {
    let item = item?;
    let text = modules.get(module)?;
    text.lines().find_map(|line| {
        let t = line.trim();
        let rest = t.strip_prefix("pub use ").or_else(|| t.strip_prefix("pub(crate) use "))?;
        let named = rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).any(|w| w == item);
        if !named {
            return None;
        }
        let mut child = module.to_vec();
        child.push(rest.split("::").next()?.to_owned());
        modules.contains_key(&child).then_some(child)
    })
}

fn find_cycle(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<Vec<String>>> {
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|start| visit(start, edges, &mut Vec::new(), &mut done))
}

/// Every crate takes the workspace's lints (among them `unreachable_pub`).
fn workspace_lints_everywhere(root: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    let workspace = read(&root.join("Cargo.toml"));
    if !workspace.contains("unreachable_pub") {
        errors.push("Cargo.toml: [workspace.lints.rust] must set unreachable_pub".to_owned());
    }
    for krate in host_crates(root) {
        let manifest = read(&krate.join("Cargo.toml"));
        if !manifest.contains("[lints]\nworkspace = true") {
            errors.push(format!("{}: take the workspace lints", relative(root, &krate.join("Cargo.toml"))));
        }
    }
    errors
}

fn assert_clean(check: &str, errors: Vec<String>) {
    assert!(errors.is_empty(), "{check}:\n{}", errors.join("\n"));
}

#[test]
fn the_tree_keeps_its_conventions() {
    let root = root();
    assert_clean("axum outside the HTTP crate", axum_only_in_http(&root));
    assert_clean("the wall clock outside composition", clock_only_in_composition(&root));
    assert_clean("sleeps in tests", tests_never_sleep(&root));
    assert_clean("the code map", code_map_is_true(&root));
    assert_clean("tenant settings without a reader", every_setting_has_a_reader(&root, AWAITING_READER));
    assert_clean("import cycles", import_cycles(&root.join("host")));
    assert_clean("workspace lints", workspace_lints_everywhere(&root));
}

/// A copy of the parts of the tree a check reads, to break on purpose.
fn scratch_tree() -> tempfile::TempDir {
    let root = root();
    let dir = tempfile::tempdir().expect("tempdir");
    copy(&root.join("host"), &dir.path().join("host"));
    std::fs::copy(root.join("Cargo.toml"), dir.path().join("Cargo.toml")).expect("copy");
    dir
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != "assets" {
                copy(&path, &to.join(name));
            }
        } else if path.extension().is_some_and(|e| e == "rs" || e == "toml") {
            std::fs::copy(&path, to.join(name)).expect("copy");
        }
    }
}

fn append(path: &Path, text: &str) {
    let mut body = read(path);
    body.push_str(text);
    std::fs::write(path, body).expect("write");
}

#[test]
fn tidy_fails_on_axum_in_the_store() {
    let tree = scratch_tree();
    assert!(axum_only_in_http(tree.path()).is_empty(), "the copy starts clean");
    append(&tree.path().join("host/angage-store/src/lib.rs"), "\nuse axum::Router;\n");
    let errors = axum_only_in_http(tree.path());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("host/angage-store/src/lib.rs:"), "{}", errors[0]);
}

#[test]
fn tidy_fails_on_a_setting_nothing_reads() {
    let tree = scratch_tree();
    assert!(every_setting_has_a_reader(tree.path(), AWAITING_READER).is_empty(), "the copy starts clean");
    let model = tree.path().join("host/angage-core/src/settings.rs");
    let text = read(&model).replace(
        "    pub require_https: bool,\n",
        "    pub require_https: bool,\n    pub block_weekends: bool,\n",
    );
    std::fs::write(&model, text).expect("write");
    assert_eq!(
        every_setting_has_a_reader(tree.path(), AWAITING_READER),
        ["tenant setting `block_weekends` is stored but nothing reads it"]
    );
    // A switch awaiting its reader that gets one must leave the list.
    let awaiting = [("require_https", "test")];
    let errors = every_setting_has_a_reader(tree.path(), &awaiting);
    assert!(errors.iter().any(|e| e.contains("`require_https` has a reader now")), "{errors:?}");
}

#[test]
fn tidy_fails_on_an_import_cycle_and_a_sleep() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("demo/src");
    std::fs::create_dir_all(src.join("shapes")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "mod shapes;\nmod paint;\n").expect("write");
    std::fs::write(src.join("shapes/mod.rs"), "mod circle;\npub(crate) use circle::Circle;\n")
        .expect("write");
    std::fs::write(src.join("shapes/circle.rs"), "pub(crate) struct Circle;\n").expect("write");
    std::fs::write(src.join("paint.rs"), "use crate::shapes::Circle;\n").expect("write");
    assert!(import_cycles(dir.path()).is_empty(), "one way: paint -> shapes -> circle");
    std::fs::write(src.join("shapes/circle.rs"), "use crate::paint;\npub(crate) struct Circle;\n")
        .expect("write");
    let errors = import_cycles(dir.path());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("paint -> shapes -> shapes::circle -> paint"), "{}", errors[0]);

    // The real policy crate: one way today, a cycle with one import from its bottom layer.
    let tree = scratch_tree();
    let host = tree.path().join("host");
    assert!(import_cycles(&host).is_empty());
    append(&host.join("angage-policy/src/plugins/handles.rs"), "\nuse crate::engine::PolicyEngine;\n");
    let errors = import_cycles(&host);
    assert!(
        errors.iter().any(|e| e.contains("angage-policy") && e.contains("plugins::handles")),
        "{errors:?}"
    );

    let tests = dir.path().join("tests/it");
    std::fs::create_dir_all(&tests).expect("mkdir");
    let sleeping = format!("fn f() {{ std::{}(D); }}\n", SLEEPS[0]);
    std::fs::write(tests.join("slow.rs"), &sleeping).expect("write");
    std::fs::write(tests.join("wait.rs"), &sleeping).expect("write");
    assert_eq!(
        tests_never_sleep(dir.path()),
        ["tests/it/slow.rs:1: sleeps; wait for something observable with crate::wait"]
    );
}
