//! The lists the documentation gives are the code's lists: a new alarm, metric,
//! module, environment variable or stack parameter without its entry fails here,
//! naming it, and so does an entry for one that no longer exists.
//!
//! - `docs/operations.md`: a `### <Alarm>` under *Alarms* for every alarm of
//!   `template.yaml` and `deploy/*.yaml`, a table row under *Metrics* for every
//!   EMF metric the code emits (`events::METRICS`, and the enrichment and response
//!   counters' metrics).
//! - `docs/design.md`: the code map names every module of `src/` (`- `module`: …`),
//!   and every `src/` path the page names exists.
//! - `README.md`: the configuration table lists every `TRAILWATCH_*` variable
//!   `src/` reads.
//! - `docs/deploy.md`: a table row for every parameter of `template.yaml` and
//!   `deploy/member.yaml`.
//! - Every stack setting the pages show (`Name=value` in a code span,
//!   `--parameter-overrides Name=value`, `ParameterKey=Name,ParameterValue=value`)
//!   names a parameter of a template, with a value it allows.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::docs::prose;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The prose lines (fenced blocks left out) under the heading `heading`, up to the
/// next heading of the same or a higher level.
fn section(text: &str, heading: &str) -> Vec<String> {
    let level = heading.chars().take_while(|&c| c == '#').count();
    let mut out = Vec::new();
    let mut inside = false;
    for (_, line) in prose(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        let is_heading = hashes > 0 && line[hashes..].starts_with(' ');
        if is_heading && line.trim_end() == heading {
            inside = true;
            continue;
        }
        if inside && is_heading && hashes <= level {
            break;
        }
        if inside {
            out.push(line);
        }
    }
    assert!(inside, "no heading {heading:?}");
    out
}

/// The first cell of each table row, when it is one code span: `| `X` | ... |`.
fn first_column(lines: &[String]) -> BTreeSet<String> {
    lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("| `"))
        .filter_map(|rest| rest.split_once("` |").map(|(name, _)| name))
        .filter(|name| !name.contains('`'))
        .map(str::to_owned)
        .collect()
}

/// What `documented` lacks of `code`, and holds beyond it, one line naming each.
fn compare(
    what: &str,
    code: &BTreeSet<String>,
    documented: &BTreeSet<String>,
    page: &str,
) -> Vec<String> {
    let mut problems: Vec<String> = code
        .difference(documented)
        .map(|name| format!("{page} has no entry for the {what} {name}"))
        .collect();
    problems.extend(
        documented
            .difference(code)
            .map(|name| format!("{page} documents the {what} {name}, which does not exist")),
    );
    problems
}

/// A CloudFormation template's resources of the given types, and its parameters.
fn template_parts(path: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is YAML: {e}", path.display()));
    let names = |section: &str| -> Vec<(String, serde_yaml_ng::Value)> {
        yaml.get(section)
            .and_then(|v| v.as_mapping())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let alarms = names("Resources")
        .into_iter()
        .filter(|(_, r)| {
            matches!(
                r.get("Type").and_then(|t| t.as_str()),
                Some("AWS::CloudWatch::Alarm" | "AWS::CloudWatch::CompositeAlarm")
            )
        })
        .map(|(name, _)| name)
        .collect();
    let parameters = names("Parameters")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    (alarms, parameters)
}

/// `template.yaml` and `deploy/*.yaml`.
fn templates() -> Vec<PathBuf> {
    let mut out = vec![root().join("template.yaml")];
    for entry in std::fs::read_dir(root().join("deploy")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Every EMF metric the code emits.
fn emitted_metrics() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = trailwatch::events::METRICS
        .iter()
        .map(|m| m.name.to_owned())
        .collect();
    let enrich = trailwatch::enrich::EnrichCounters::default();
    let respond = trailwatch::respond::ResponseCounters::default();
    names.extend(enrich.metrics().iter().map(|(n, _)| (*n).to_owned()));
    names.extend(respond.metrics().iter().map(|(n, _)| (*n).to_owned()));
    names
}

/// Alarm names: the `### Name` headings under `## Alarms`.
fn documented_alarms(operations: &str) -> BTreeSet<String> {
    section(operations, "## Alarms")
        .iter()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|name| name.trim().to_owned())
        .collect()
}

#[test]
fn operations_has_an_entry_for_every_alarm_and_every_metric() {
    let operations = read("docs/operations.md");
    let mut alarms = BTreeSet::new();
    for template in templates() {
        alarms.extend(template_parts(&template).0);
    }
    assert!(alarms.len() >= 10, "the templates' alarms: {alarms:?}");
    let metrics = emitted_metrics();
    assert!(
        metrics.contains("Objects") && metrics.contains("ResponsesTaken"),
        "{metrics:?}"
    );
    let mut problems = compare(
        "alarm",
        &alarms,
        &documented_alarms(&operations),
        "docs/operations.md (## Alarms)",
    );
    problems.extend(compare(
        "metric",
        &metrics,
        &first_column(&section(&operations, "## Metrics")),
        "docs/operations.md (## Metrics)",
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The modules of `src/`: the library's top-level modules and the binary's.
fn modules() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for file in ["src/lib.rs", "src/main.rs"] {
        for line in read(file).lines() {
            let line = line.trim();
            let decl = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "));
            if let Some(name) = decl.and_then(|d| d.strip_suffix(';')) {
                out.insert(name.trim().to_owned());
            }
        }
    }
    out
}

/// The modules the code map names, in order: the lines `- `name`: ...` of
/// `## Code map` (its subsections included).
fn code_map(design: &str) -> Vec<(String, String)> {
    section(design, "## Code map")
        .iter()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|rest| rest.split_once("`:"))
        .map(|(name, line)| (name.to_owned(), line.to_owned()))
        .collect()
}

/// Code spans of a line that name a file or folder (`x.rs`, `x/`, `src/...`).
fn paths_in(line: &str) -> Vec<String> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            !s.contains(' ') && (s.ends_with(".rs") || s.ends_with('/') || s.starts_with("src/"))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_code_map_names_every_module_and_only_modules() {
    let design = read("docs/design.md");
    let modules = modules();
    assert!(
        modules.contains("trigger") && modules.contains("cli"),
        "{modules:?}"
    );
    let map = code_map(&design);
    let named: BTreeSet<String> = map.iter().map(|(n, _)| n.clone()).collect();
    let mut problems = compare("module", &modules, &named, "docs/design.md (## Code map)");
    let mut seen = BTreeSet::new();
    for (name, _) in &map {
        if !seen.insert(name) {
            problems.push(format!("docs/design.md: the code map names {name} twice"));
        }
    }
    // Files a module's line names are in that module's folder (or under src/).
    for (name, line) in &map {
        for path in paths_in(line) {
            let here = root().join("src").join(name).join(&path);
            let top = root().join(&path);
            if !here.exists() && !top.exists() {
                problems.push(format!(
                    "docs/design.md: the code map's {name} names {path}, which is not src/{name}/{path}"
                ));
            }
        }
    }
    // Every `src/...` the page names exists.
    for (number, line) in prose(&design) {
        for path in paths_in(&line)
            .into_iter()
            .filter(|p| p.starts_with("src/"))
        {
            if !root().join(&path).exists() {
                problems.push(format!("docs/design.md:{number}: {path} does not exist"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The `TRAILWATCH_*` variables named anywhere in `src/`.
fn variables_in_src() -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.extend(variables(&text));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&root().join("src"), &mut out);
    out
}

/// The `TRAILWATCH_*` names in a text.
fn variables(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("TRAILWATCH_") {
        let name: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let name = name.trim_end_matches('_');
        if name.len() > "TRAILWATCH_".len() {
            out.insert(name.to_owned());
        }
        rest = &rest[start + "TRAILWATCH_".len()..];
    }
    out
}

#[test]
fn the_readme_configuration_table_lists_every_variable_the_code_reads() {
    let readme = read("README.md");
    let code = variables_in_src();
    assert!(
        code.contains("TRAILWATCH_TOPIC_ARN") && code.len() >= 10,
        "{code:?}"
    );
    let table = first_column(&section(&readme, "## Configuration"));
    let problems = compare("variable", &code, &table, "README.md (## Configuration)");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn deploy_lists_every_parameter_of_the_templates() {
    let deploy = read("docs/deploy.md");
    let rows = first_column(
        &prose(&deploy)
            .into_iter()
            .map(|(_, l)| l)
            .collect::<Vec<_>>(),
    );
    let mut problems = Vec::new();
    for template in templates() {
        let (_, parameters) = template_parts(&template);
        assert!(
            !parameters.is_empty(),
            "{} has parameters",
            template.display()
        );
        let name = template.strip_prefix(root()).unwrap().display().to_string();
        for missing in parameters.difference(&rows) {
            problems.push(format!(
                "docs/deploy.md has no row for {name}'s parameter {missing}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every parameter of the templates, with its `AllowedValues` (empty: any).
fn parameters_with_values() -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let mut out = std::collections::BTreeMap::new();
    for template in templates() {
        let text = std::fs::read_to_string(&template).unwrap();
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let Some(parameters) = yaml.get("Parameters").and_then(|p| p.as_mapping()) else {
            continue;
        };
        for (name, parameter) in parameters {
            let allowed: BTreeSet<String> = parameter
                .get("AllowedValues")
                .and_then(|v| v.as_sequence())
                .map(|values| {
                    values
                        .iter()
                        .filter_map(|v| match v {
                            serde_yaml_ng::Value::String(s) => Some(s.clone()),
                            serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
                            serde_yaml_ng::Value::Bool(b) => Some(b.to_string()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let entry: &mut BTreeSet<String> =
                out.entry(name.as_str().unwrap().to_owned()).or_default();
            entry.extend(allowed);
        }
    }
    out
}

/// `Name=value` when `Name` reads as a stack parameter (`IngestMode=sqs`).
fn setting(word: &str) -> Option<(String, String)> {
    let (name, value) = word.split_once('=')?;
    // `TRYCMD=overwrite` is an environment variable, not a parameter.
    let pascal = name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().any(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    (pascal && !value.is_empty()).then(|| (name.to_owned(), value.to_owned()))
}

/// The stack settings a page shows: code spans of prose that are one setting,
/// and in fenced blocks the words after `--parameter-overrides` (continuation
/// lines joined) and `ParameterKey=X,ParameterValue=Y`.
fn settings_shown(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (_, line) in prose(text) {
        for (i, span) in line.split('`').enumerate() {
            // A span of settings only (`A=x B=y`), not a command that has one.
            let words: Option<Vec<_>> = span.split_whitespace().map(setting).collect();
            if i % 2 == 1 {
                out.extend(words.unwrap_or_default());
            }
        }
    }
    let prose_lines: BTreeSet<usize> = prose(text).into_iter().map(|(n, _)| n).collect();
    let mut command = String::new();
    for (i, line) in text.lines().enumerate() {
        if prose_lines.contains(&(i + 1)) {
            continue;
        }
        command.push_str(line.trim_end().trim_end_matches('\\'));
        command.push(' ');
        if line.trim_end().ends_with('\\') {
            continue;
        }
        let words: Vec<&str> = command.split_whitespace().collect();
        if let Some(at) = words.iter().position(|w| *w == "--parameter-overrides") {
            out.extend(
                words[at + 1..]
                    .iter()
                    .take_while(|w| !w.starts_with("--"))
                    .filter_map(|w| setting(w)),
            );
        }
        for word in &words {
            let mut key = None;
            let mut value = None;
            for part in word.split(',') {
                if let Some(k) = part.strip_prefix("ParameterKey=") {
                    key = Some(k.to_owned());
                }
                if let Some(v) = part.strip_prefix("ParameterValue=") {
                    value = Some(v.to_owned());
                }
            }
            if let (Some(k), Some(v)) = (key, value) {
                out.push((k, v));
            }
        }
        command.clear();
    }
    out
}

/// Names that read as settings in the pages and are not stack parameters.
const NOT_PARAMETERS: &[&str] = &["MessageStructure", "ReturnValuesOnConditionCheckFailure"];

/// What is wrong with the settings shown, one line each.
fn wrong_settings(
    page: &str,
    shown: &[(String, String)],
    parameters: &std::collections::BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let placeholder = |v: &str| v.contains('<') || v.contains("...") || v.contains('$');
    let mut problems = Vec::new();
    for (name, value) in shown {
        if NOT_PARAMETERS.contains(&name.as_str()) {
            continue;
        }
        match parameters.get(name) {
            None => problems.push(format!(
                "{page}: {name}={value}: no template has a parameter {name}"
            )),
            Some(allowed)
                if !allowed.is_empty() && !placeholder(value) && !allowed.contains(value) =>
            {
                problems.push(format!(
                    "{page}: {name}={value}: {name} allows only {allowed:?}"
                ))
            }
            Some(_) => {}
        }
    }
    problems
}

#[test]
fn stack_settings_the_pages_show_exist_with_values_they_allow() {
    let parameters = parameters_with_values();
    let mut pages = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        let shown = settings_shown(&text);
        checked += shown.len();
        let name = page.strip_prefix(root()).unwrap().display().to_string();
        problems.extend(wrong_settings(&name, &shown, &parameters));
    }
    assert!(checked > 10, "the pages show settings ({checked} found)");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_list_checks_find_what_they_look_for() {
    let page = "# P\n## Alarms\n### AAlarm\n```sh\n### NotAHeading\n```\n### BAlarm\n## Metrics\n\
                | metric | what |\n|---|---|\n| `Objects` | files |\n| `A`, `B` | two |\n## Next\n| `C` | no |\n";
    assert_eq!(
        documented_alarms(page),
        ["AAlarm", "BAlarm"].map(String::from).into()
    );
    assert_eq!(
        first_column(&section(page, "## Metrics")),
        ["Objects"].map(String::from).into()
    );
    let code: BTreeSet<String> = ["Objects", "Alerts"].map(String::from).into();
    let documented: BTreeSet<String> = ["Objects", "Gone"].map(String::from).into();
    let problems = compare("metric", &code, &documented, "p.md");
    assert_eq!(
        problems,
        [
            "p.md has no entry for the metric Alerts",
            "p.md documents the metric Gone, which does not exist"
        ]
    );
    assert_eq!(
        variables("get(\"TRAILWATCH_RULES\"); // TRAILWATCH_ and TRAILWATCH_X_MS."),
        ["TRAILWATCH_RULES", "TRAILWATCH_X_MS"]
            .map(String::from)
            .into()
    );
    let map = code_map("## Code map\n- `decode`: the scanner (`scanner/`, `src/x.rs`).\n- not one\n## Next\n- `no`: x\n");
    assert_eq!(map.len(), 1);
    assert_eq!(paths_in(&map[0].1), ["scanner/", "src/x.rs"]);
    let page = "Use `IngestMode=sqs` and `TRAILWATCH_X=1`, `Mode=x`, `aws x Aa=b`, `Aa=1 Bb=2`.\n```sh\n\
                sam deploy --parameter-overrides TrailBucketName=b \\\n  IngestMode=batch --guided\n\
                aws cloudformation create-stack-set --parameters ParameterKey=ResponseMode,ParameterValue=<mode> \\\n  \
                --auto-deployment Enabled=true\n```\n";
    let shown = settings_shown(page);
    let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
    assert_eq!(
        shown,
        [
            pair("IngestMode", "sqs"),
            pair("Mode", "x"),
            pair("Aa", "1"),
            pair("Bb", "2"),
            pair("TrailBucketName", "b"),
            pair("IngestMode", "batch"),
            pair("ResponseMode", "<mode>"),
        ]
    );
    let mut parameters = std::collections::BTreeMap::new();
    parameters.insert(
        "IngestMode".to_owned(),
        ["direct", "sqs"].map(String::from).into(),
    );
    parameters.insert("TrailBucketName".to_owned(), BTreeSet::new());
    parameters.insert(
        "ResponseMode".to_owned(),
        ["off", "report", "cancel"].map(String::from).into(),
    );
    assert_eq!(
        wrong_settings("p.md", &shown, &parameters),
        [
            "p.md: Mode=x: no template has a parameter Mode",
            "p.md: Aa=1: no template has a parameter Aa",
            "p.md: Bb=2: no template has a parameter Bb",
            "p.md: IngestMode=batch: IngestMode allows only {\"direct\", \"sqs\"}"
        ]
    );
}
