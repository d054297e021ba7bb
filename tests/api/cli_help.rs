//! `--help` names every environment variable the binary reads (secrets without their values)
//! and the forms the duration and size flags take, and those forms are the ones taken.

use std::path::Path;

use crate::helpers::{bin, text};

fn help(args: &[&str]) -> String {
    let out = bin().args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{args:?} --help: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Every `EXPORTS_*` name written as a string literal in `src/`.
fn env_names_in_sources() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let src = std::fs::read_to_string(&p).unwrap();
                for piece in src.split("\"EXPORTS_").skip(1) {
                    let name: String = piece.chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect();
                    if piece[name.len()..].starts_with('"') {
                        out.push(format!("EXPORTS_{name}"));
                    }
                }
            }
        }
    }
    let mut names = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut names);
    names.sort();
    names.dedup();
    names
}

#[test]
fn help_names_every_environment_variable_and_hides_the_secrets() {
    let names = env_names_in_sources();
    for must in ["EXPORTS_DATA_DIR", "EXPORTS_LISTEN", "EXPORTS_SIGNING_KEY", "EXPORTS_API_KEY", "EXPORTS_URL_TTL"] {
        assert!(names.iter().any(|n| n == must), "{must} in {names:?}");
    }
    let signing = "signing-value-that-must-not-show-0123456789";
    let api_key = "api-key-value-that-must-not-show";
    let mut cmd = bin();
    cmd.args(["serve", "--help"]).env("EXPORTS_SIGNING_KEY", signing).env("EXPORTS_API_KEY", api_key);
    let serve = text(&cmd.output().unwrap().stdout);
    let all = [help(&[]), serve.clone(), help(&["healthcheck"]), help(&["export"])].concat();
    for name in &names {
        assert!(all.contains(&format!("[env: {name}")), "--help does not name {name}");
    }
    assert!(serve.contains("[env: EXPORTS_SIGNING_KEY]") && serve.contains("[env: EXPORTS_API_KEY]"), "{serve}");
    assert!(!serve.contains(signing) && !serve.contains(api_key), "a secret's value is printed by --help:\n{serve}");
    assert!(serve.contains("RUST_LOG"), "{serve}");
    assert!(help(&[]).contains("foreground") && help(&["serve"]).contains("foreground"));
}

/// The forms `serve --help` gives for DURATION (`DURATION: 3600 (seconds), 90s, 30m, 12h or 7d.`).
fn duration_forms(help: &str) -> Vec<String> {
    let line = help.split("DURATION: ").nth(1).expect("serve --help explains DURATION");
    let list = line.split('.').next().unwrap();
    list.split([',', ' ']).filter(|w| !w.is_empty() && *w != "or" && !w.starts_with('(')).map(str::to_string).collect()
}

#[test]
fn every_duration_form_the_help_names_is_taken_by_every_duration_flag() {
    let serve = help(&["serve"]);
    let forms = duration_forms(&serve);
    assert!(forms.len() >= 4, "{forms:?}");
    let flags: Vec<String> =
        serve.lines().filter_map(|l| l.trim().strip_suffix(" <DURATION>").map(str::to_string)).collect();
    assert!(flags.len() >= 6, "the duration flags say <DURATION>: {flags:?}");
    // a data folder that cannot be made: serve stops right after its flags are taken
    let tmp = tempfile::tempdir().unwrap();
    let not_a_folder = tmp.path().join("file");
    std::fs::write(&not_a_folder, "").unwrap();
    for form in &forms {
        let mut cmd = bin();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&not_a_folder);
        for flag in &flags {
            cmd.args([flag.as_str(), form]);
        }
        let err = text(&cmd.output().unwrap().stderr);
        assert!(err.contains("cannot create the data folder"), "{form} was not taken: {err}");
    }
    // and a form it does not name is refused, naming the flag and the forms
    let out = bin().args(["serve", "--listen", "127.0.0.1:0", "--url-ttl", "5w"]).output().unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success() && err.contains("--url-ttl / EXPORTS_URL_TTL"), "{err}");
}
