//! README.md and docs/*.md cannot rot: their examples run, their commands use
//! flags that exist, their links lead somewhere. `docs/examples.md` is the
//! writers' side of this.
//!
//! - A ```` ```console ```` block is run by trycmd: each `$ trailwatch …` line
//!   runs from the repository's root (stdout and stderr together) and must print
//!   what follows it, `[..]` standing for the rest of a line and `...` for lines.
//!   `TRYCMD=overwrite` rewrites the outputs.
//! - A command in any other block (`sh`, `text`: a synopsis, an example that
//!   needs AWS) must name an existing command and existing flags, and may not be
//!   one that runs offline: that one belongs in a `console` block.
//! - Every relative link resolves to a file, and its `#anchor` to a heading.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and docs/*.md.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    docs.sort();
    docs
}

#[test]
fn console_examples_in_the_readme_and_docs_run_as_shown() {
    let cases = trycmd::TestCases::new();
    cases
        .register_bin("trailwatch", Path::new(env!("CARGO_BIN_EXE_trailwatch")))
        // The output must not depend on who runs it.
        .env("RUST_LOG", "warn")
        .timeout(std::time::Duration::from_secs(120));
    for doc in documents() {
        cases.case(doc);
    }
    cases.run();
}

/// A fenced block of a Markdown file.
#[derive(Debug)]
struct Block {
    /// The info string's first word (`console`, `sh`, ...; empty when none).
    lang: String,
    /// The line of the opening fence, 1-based.
    line: usize,
    lines: Vec<String>,
}

/// A Markdown file's fenced blocks, and its other lines (with their numbers).
fn split_fences(text: &str) -> (Vec<Block>, Vec<(usize, String)>) {
    let mut blocks = Vec::new();
    let mut prose = Vec::new();
    let mut open: Option<(String, Block)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let fence: String = trimmed
            .chars()
            .take_while(|&c| c == '`' || c == '~')
            .collect();
        let is_fence =
            fence.len() >= 3 && fence.chars().all(|c| c == fence.chars().next().unwrap());
        match &mut open {
            Some((marker, block)) => {
                if is_fence
                    && fence.starts_with(marker.as_str())
                    && trimmed[fence.len()..].trim().is_empty()
                {
                    blocks.push(open.take().unwrap().1);
                } else {
                    block.lines.push(line.to_owned());
                }
            }
            None if is_fence => {
                let info = trimmed[fence.len()..].trim();
                let lang = info
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .next()
                    .unwrap_or_default();
                open = Some((
                    fence.clone(),
                    Block {
                        lang: lang.to_owned(),
                        line: i + 1,
                        lines: Vec::new(),
                    },
                ));
            }
            None => prose.push((i + 1, line.to_owned())),
        }
    }
    (blocks, prose)
}

/// A Markdown file's lines outside fenced blocks, with their numbers (1-based).
pub(super) fn prose(text: &str) -> Vec<(usize, String)> {
    split_fences(text).1
}

/// A `trailwatch` or `make` command shown in a block: its words, continuation
/// lines (indented, or after a trailing `\`) joined, a `$ ` prompt and a
/// trailing `# comment` left out.
fn shown_commands(block: &Block) -> Vec<Vec<String>> {
    let mut commands: Vec<Vec<String>> = Vec::new();
    let mut continues = false;
    for line in &block.lines {
        let text = line.split(" #").next().unwrap_or_default();
        let text = text
            .trim_start()
            .strip_prefix("$ ")
            .unwrap_or(text.trim_start());
        let indented = line.starts_with(' ') || line.starts_with('\t');
        let words = text
            .trim_end_matches('\\')
            .split_whitespace()
            .map(str::to_owned);
        if text.starts_with("trailwatch ") || text.starts_with("make ") {
            commands.push(words.collect());
        } else if (continues || indented) && !commands.is_empty() && !text.trim().is_empty() {
            commands.last_mut().unwrap().extend(words);
        }
        continues = text.trim_end().ends_with('\\');
    }
    commands
}

/// The flags `trailwatch <command> --help` lists (`None`: the command does not exist).
fn flags_of(command: &str) -> Option<BTreeSet<String>> {
    let out = Command::new(env!("CARGO_BIN_EXE_trailwatch"))
        .args([command, "--help"])
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let help = String::from_utf8_lossy(&out.stdout);
    Some(
        help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == '=')
            .filter(|w| w.starts_with("--"))
            .map(|w| {
                w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                    .to_owned()
            })
            .collect(),
    )
}

/// Flag-like words of a shown command (`[--format json|text]` gives `--format`).
fn flags_shown(words: &[String]) -> Vec<String> {
    words
        .iter()
        .flat_map(|w| w.split(['[', ']', '|', '=']))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_owned()
        })
        .collect()
}

/// Whether a shown command runs as it is, offline: no placeholder, no AWS.
fn runs_offline(words: &[String]) -> bool {
    let offline_command = matches!(
        words.get(1).map(String::as_str),
        Some("scan" | "invoke" | "test" | "eventbridge-pattern" | "--help" | "--version")
    );
    // `invoke --aws` and `scan --enrich` call AWS whatever their paths.
    let needs_aws = words.iter().any(|w| w == "--aws" || w == "--enrich");
    let placeholder = words.iter().any(|w| {
        w.contains(['[', ']', '|', '<', '>', '…'])
            || w.starts_with("s3://")
            || w.contains("...")
            || (w.len() > 1
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c == '.'))
    });
    offline_command && !placeholder && !needs_aws
}

fn make_targets() -> BTreeSet<String> {
    std::fs::read_to_string(root().join("Makefile"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':').map(|(t, _)| t))
        .filter(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-' || c.is_ascii_digit())
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn commands_outside_console_blocks_use_commands_and_flags_that_exist() {
    let targets = make_targets();
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let name = doc.strip_prefix(root()).unwrap().display().to_string();
        let (blocks, _) = split_fences(&std::fs::read_to_string(&doc).unwrap());
        for block in blocks
            .iter()
            .filter(|b| b.lang != "console" && b.lang != "trycmd")
        {
            for words in shown_commands(block) {
                checked += 1;
                let at = format!("{name}:{} ({})", block.line, words.join(" "));
                if words[0] == "make" {
                    for target in words[1..].iter().filter(|w| !w.contains('=')) {
                        if !targets.contains(target) {
                            problems.push(format!("{at}: no make target {target}"));
                        }
                    }
                    continue;
                }
                if runs_offline(&words) {
                    problems.push(format!(
                        "{at}: runs offline, so show it in a ```console block with its output"
                    ));
                }
                let command = words.get(1).map(String::as_str).unwrap_or_default();
                if command.starts_with('-') {
                    continue;
                }
                match flags_of(command) {
                    None => problems.push(format!("{at}: trailwatch has no command {command}")),
                    Some(flags) => {
                        for flag in flags_shown(&words) {
                            if !flags.contains(&flag) {
                                problems
                                    .push(format!("{at}: `trailwatch {command}` has no {flag}"));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 0, "the documents show commands");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A heading's anchor as GitHub makes it: lower case, punctuation dropped
/// (but `-` and `_`), spaces to `-`; a link's text stands for the link.
fn anchor(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    while let Some(start) = rest.find('[') {
        match rest[start..].find("](").zip(rest[start..].find(')')) {
            Some((mid, end)) if mid < end => {
                text.push_str(&rest[..start]);
                text.push_str(&rest[start + 1..start + mid]);
                rest = &rest[start + end + 1..];
            }
            _ => break,
        }
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (a repeated one gets `-1`, `-2`...).
fn anchors(text: &str) -> BTreeSet<String> {
    let (_, prose) = split_fences(text);
    let mut out = BTreeSet::new();
    for (_, line) in prose {
        let level = line.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&level) && line[level..].starts_with(' ') {
            let base = anchor(line[level..].trim().trim_end_matches('#'));
            let mut candidate = base.clone();
            let mut n = 0;
            while !out.insert(candidate.clone()) {
                n += 1;
                candidate = format!("{base}-{n}");
            }
        }
    }
    out
}

/// A line without its inline code spans.
fn without_code(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let after = &rest[start + ticks..];
        match after.find(&"`".repeat(ticks)) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The link targets of a Markdown file, with their line numbers: inline links
/// and images `[text](target "title")`, and reference definitions `[id]: target`.
fn links(text: &str) -> Vec<(usize, String)> {
    let (_, prose) = split_fences(text);
    let mut out = Vec::new();
    for (number, line) in prose {
        let line = without_code(&line);
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            if let Some((label, target)) = trimmed.split_once("]:") {
                if !label.contains('(') {
                    if let Some(target) = target.split_whitespace().next() {
                        out.push((number, target.trim_matches(['<', '>']).to_owned()));
                    }
                    continue;
                }
            }
        }
        let mut rest = line.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let target = after[..end].split_whitespace().next().unwrap_or_default();
            out.push((number, target.trim_matches(['<', '>']).to_owned()));
            rest = &after[end..];
        }
    }
    out
}

/// What is wrong with a link from `doc` (`None`: it resolves).
fn broken(doc: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, fragment) = match target.split_once('#') {
        Some((path, fragment)) => (path, Some(fragment)),
        None => (target, None),
    };
    let file = if path.is_empty() {
        doc.to_path_buf()
    } else {
        doc.parent().unwrap().join(path)
    };
    if !file.exists() {
        return Some(format!("{} does not exist", file.display()));
    }
    let fragment = fragment?;
    if file.extension().is_none_or(|e| e != "md") {
        return Some(format!("#{fragment}: {} is not Markdown", file.display()));
    }
    let anchors = anchors(&std::fs::read_to_string(&file).unwrap());
    (!anchors.contains(fragment)).then(|| format!("no heading #{fragment} in {}", file.display()))
}

#[test]
fn relative_links_in_the_readme_and_docs_resolve() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let name = doc.strip_prefix(root()).unwrap().display().to_string();
        for (line, target) in links(&std::fs::read_to_string(&doc).unwrap()) {
            checked += 1;
            if let Some(problem) = broken(&doc, &target) {
                problems.push(format!("{name}:{line}: ({target}) {problem}"));
            }
        }
    }
    assert!(checked > 0, "the documents have links");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The README is the front door: what a deploying engineer reads in five
/// minutes. The rest belongs in docs/.
const README_MAX_LINES: usize = 260;

#[test]
fn the_readme_is_short() {
    let lines = std::fs::read_to_string(root().join("README.md"))
        .unwrap()
        .lines()
        .count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, at most {README_MAX_LINES}: move detail into docs/"
    );
}

#[test]
fn the_checks_find_what_they_look_for() {
    // Anchors as GitHub writes them, repeated headings numbered.
    let text = "# trailwatch\n## Integrity: nothing hides in a gap\n```sh\n# not a heading\n```\n\
                ## The `scan` command\n## [Real time](docs/realtime.md)\n## Real time\n";
    assert_eq!(
        anchors(text),
        [
            "trailwatch",
            "integrity-nothing-hides-in-a-gap",
            "the-scan-command",
            "real-time",
            "real-time-1"
        ]
        .map(String::from)
        .into()
    );
    // Links outside code only; titles and angle brackets dropped.
    let text = "See [a](docs/a.md#x \"title\") and `[b](no.md)`.\n```md\n[c](no.md)\n```\n[d]: <e.md>\n![img](f.png)\n";
    assert_eq!(
        links(text),
        vec![
            (1, "docs/a.md#x".to_owned()),
            (5, "e.md".to_owned()),
            (6, "f.png".to_owned())
        ]
    );
    let readme = root().join("README.md");
    assert!(broken(&readme, "docs/realtime.md").is_none());
    assert!(broken(&readme, "docs/no-such-page.md").is_some());
    assert!(broken(&readme, "#the-alert").is_none());
    assert!(broken(&readme, "#no-such-heading").is_some());
    assert!(broken(&readme, "https://example.com/x.md#y").is_none());
    // Commands in blocks: synopses joined across lines, offline ones told apart.
    let (blocks, _) = split_fences(
        "```sh\ntrailwatch scan [--format json|text] PATH...\n                [--jobs N]\nmake run  # the sample\n```\n\
         ```sh\ntrailwatch invoke events/s3-put.json \\\n  --objects events/objects\n```\n",
    );
    let first = shown_commands(&blocks[0]);
    assert_eq!(first.len(), 2, "{first:?}");
    assert_eq!(flags_shown(&first[0]), ["--format", "--jobs"]);
    assert!(!runs_offline(&first[0]), "a synopsis");
    assert_eq!(first[1], ["make", "run"]);
    assert!(!runs_offline(
        &"trailwatch invoke --aws events/eventbridge-api-call.json"
            .split(' ')
            .map(String::from)
            .collect::<Vec<_>>()
    ));
    let second = shown_commands(&blocks[1]);
    assert_eq!(flags_shown(&second[0]), ["--objects"]);
    assert!(runs_offline(&second[0]), "a runnable example: {second:?}");
    let scan = flags_of("scan").unwrap();
    assert!(
        scan.contains("--format") && scan.contains("--no-dedup"),
        "{scan:?}"
    );
    assert!(!scan.contains("--pretty"));
    assert!(flags_of("no-such-command").is_none());
}
