//! Dependencies between the crate's top-level modules point one way: a module may name
//! (`crate::…`) only modules of a lower layer. This test reads the sources and fails on any
//! import that points up or sideways; the README's architecture section draws the same table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Layer of each top-level module: higher layers may use lower ones, never the reverse.
const LAYERS: &[(&str, u8)] = &[
    // the domain: pure types and rules, no I/O
    ("domain", 0),
    // files and folders
    ("private", 1),
    ("data_dir", 2),
    // storage, signatures
    ("db", 3),
    ("signing", 3),
    // where export files live: a local folder or an S3-compatible bucket
    ("storage", 3),
    // what the service counts (Prometheus metrics), used from the jobs up
    ("metrics", 3),
    // work on the data: export jobs, import, configuration, first-start data
    ("jobs", 4),
    ("import", 4),
    ("config", 4),
    ("bootstrap", 4),
    ("demo", 4),
    // webhook deliveries: their own worker, reading the queue in the database
    ("webhooks", 4),
    // what request handlers share, and what they do past parsing
    ("state", 5),
    ("services", 5),
    // the one error → HTTP mapping
    ("error", 6),
    // the HTTP API (the signed file route included) and the HTTP server plumbing
    ("api", 7),
    ("server", 7),
    // wiring
    ("app", 8),
    // the command line
    ("cli", 9),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`api` for `src/api/files.rs`).
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    rel.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string()
}

/// The top-level modules a source text names through `crate::`, comments left out.
fn crate_imports(text: &str) -> Vec<String> {
    let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let preceded = rest[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        if preceded {
            continue; // e.g. `exports_api_crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the top-level names of the group
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(item.trim().split("::").next().unwrap_or("").to_string());
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            found.push(item.trim().split("::").next().unwrap_or("").to_string());
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            found.push(name);
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

#[test]
fn modules_depend_only_on_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // `#[macro_export]` macros are named `crate::name`: they belong to the module defining them
    let mut macros = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for def in text.split("macro_rules! ").skip(1) {
            let name: String = def.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            macros.insert(name, top_module(&src, file));
        }
    }
    let mut wrong: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = top_module(&src, &file);
        if matches!(top.as_str(), "lib" | "main" | "layers_tests") {
            continue;
        }
        let own = layer(&top).unwrap_or_else(|| panic!("src/{} is in no layer: add `{top}` to LAYERS", rel.display()));
        for used in crate_imports(&std::fs::read_to_string(&file).unwrap()) {
            let used = macros.get(&used).cloned().unwrap_or(used);
            if used == top {
                continue;
            }
            let theirs = layer(&used)
                .unwrap_or_else(|| panic!("src/{} names crate::{used}, which is in no layer", rel.display()));
            if theirs >= own {
                wrong.entry(format!("src/{}", rel.display())).or_default().push(format!("{used} (layer {theirs})"));
            }
        }
    }
    assert!(wrong.is_empty(), "modules that use a module of their own or a higher layer: {wrong:#?}");
}

#[test]
fn every_top_level_module_has_a_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(name) = line.strip_prefix("pub mod ").and_then(|l| l.strip_suffix(';')) {
            assert!(layer(name).is_some(), "`{name}` is in no layer: add it to LAYERS");
        }
    }
}

#[test]
fn imports_are_read_in_every_form() {
    let text = "use crate::db::{self, Pool};\nuse crate::{api::x, state::{A, B}, jobs};\n// crate::cli\nlet _ = crate::signing::Signer::new;";
    assert_eq!(crate_imports(text), ["db", "api", "state", "jobs", "signing"]);
}
