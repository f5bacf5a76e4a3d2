//! `trailwatch --help` and every command's help say what the command does in one
//! line, its arguments, an example that works and its exit codes; `--version`
//! names every rule compiled in with a hash of its YAML.

use std::path::Path;
use std::process::{Command, Output};

use sha2::{Digest, Sha256};
use trailwatch::rule::Rule;

fn trailwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("TRAILWATCH_RULES")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The commands `trailwatch --help` lists (but `help`).
fn commands() -> Vec<String> {
    let help = stdout(&trailwatch(&["--help"]));
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// The help of a command (`None`: the top level).
fn help(command: Option<&str>) -> String {
    let mut args: Vec<&str> = command.into_iter().collect();
    args.push("--help");
    let out = trailwatch(&args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    stdout(&out)
}

/// The command lines of a help's examples: the lines under `Example(s):`, with
/// `\` continuations joined, environment assignments and a feeding pipe left out.
fn examples(help: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut lines = help
        .lines()
        .skip_while(|l| !l.starts_with("Example"))
        .skip(1)
        .take_while(|l| !l.is_empty());
    while let Some(line) = lines.next() {
        let mut line = line.trim().to_owned();
        while line.ends_with('\\') {
            line.pop();
            line.push(' ');
            line.push_str(lines.next().unwrap_or_default().trim());
        }
        let command = line.rsplit("| ").next().unwrap_or_default();
        let words: Vec<String> = command
            .split_whitespace()
            .skip_while(|w| w.contains('=') && !w.starts_with('-'))
            .map(str::to_owned)
            .collect();
        out.push(words);
    }
    out
}

#[test]
fn every_command_says_what_it_does_with_an_example_and_exit_codes() {
    let commands = commands();
    for expected in [
        "scan",
        "invoke",
        "eventbridge-pattern",
        "backfill",
        "verify",
        "test",
        "lambda",
    ] {
        assert!(commands.iter().any(|c| c == expected), "{commands:?}");
    }
    let mut all = vec![None];
    all.extend(commands.iter().map(|c| Some(c.as_str())));
    for command in all {
        let text = help(command);
        let name = command.unwrap_or("trailwatch");
        let summary = text.lines().next().unwrap_or_default();
        assert!(
            !summary.is_empty() && summary.len() <= 100 && !summary.starts_with("Usage"),
            "{name}: the first line says what it does: {summary:?}"
        );
        let usage = format!(
            "Usage: trailwatch{}",
            command.map(|c| format!(" {c}")).unwrap_or_default()
        );
        assert!(text.contains(&usage), "{name}: no {usage:?} in\n{text}");
        assert!(!examples(&text).is_empty(), "{name}: no example in\n{text}");
        assert!(
            examples(&text)
                .iter()
                .all(|e| e.first().map(String::as_str) == Some("trailwatch")),
            "{name}: every example runs trailwatch: {:?}",
            examples(&text)
        );
        let codes: Vec<&str> = text
            .lines()
            .skip_while(|l| *l != "Exit codes:")
            .skip(1)
            .filter(|l| {
                l.starts_with("  ")
                    && l.trim_start()
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_digit())
            })
            .collect();
        assert!(
            codes.iter().any(|l| l.trim_start().starts_with("0  ")) && codes.len() >= 2,
            "{name}: exit codes 0 and at least one failure, each explained: {codes:?}\n{text}"
        );
    }
}

/// Examples that need nothing but the repository (no AWS, no stdin) run as
/// shown and succeed; every other one at least parses: the arguments with
/// `--help` after them print the help (an unknown flag or a bad value exits 2).
#[test]
fn every_help_example_runs_or_parses() {
    let mut ran = 0;
    let mut all = vec![None];
    let commands = commands();
    all.extend(commands.iter().map(|c| Some(c.as_str())));
    for command in all {
        let text = help(command);
        for example in examples(&text) {
            let args: Vec<&str> = example[1..].iter().map(String::as_str).collect();
            let mut parse = args.clone();
            parse.push("--help");
            let out = trailwatch(&parse);
            assert!(
                out.status.success(),
                "{example:?} does not parse: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let offline = matches!(
                args.first(),
                Some(&("scan" | "invoke" | "test" | "eventbridge-pattern"))
            ) && !args.iter().any(|a| a.starts_with("s3://") || *a == "-");
            if offline {
                let out = trailwatch(&args);
                assert!(
                    out.status.success(),
                    "{example:?} fails: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                ran += 1;
            }
        }
    }
    assert!(ran >= 5, "the offline examples ran: {ran}");
}

#[test]
fn version_lists_every_rule_file_with_the_hash_of_its_yaml() {
    let out = trailwatch(&["--version"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("trailwatch {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut files = 0;
    for entry in std::fs::read_dir(&rules).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        files += 1;
        let yaml = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let rule = Rule::from_yaml(&file, &yaml).unwrap();
        let hash = Sha256::digest(yaml.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        let line = text
            .lines()
            .find(|l| l.ends_with(&format!("rules/{file}")))
            .unwrap_or_else(|| panic!("rules/{file} is not listed:\n{text}"));
        assert!(
            line.trim_start().starts_with(&format!("{} ", rule.id)),
            "{line}"
        );
        assert!(line.contains(&format!("sha256:{} ", &hash[..12])), "{line}");
    }
    assert!(files >= 2);
    assert_eq!(
        text.lines().filter(|l| l.contains("sha256:")).count(),
        files
    );
}
