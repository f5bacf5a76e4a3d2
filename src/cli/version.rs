//! What `trailwatch --version` prints: the version and every rule compiled into
//! the binary, by `RuleID`, with a short SHA-256 of its YAML file. An operator
//! can tell what a deployed function runs without its source: the prefix
//! compares with `sha256sum rules/*.yml`, and a rule edited by a single byte has
//! another.

use std::fmt::Write as _;
use std::sync::OnceLock;

use sha2::{Digest as _, Sha256};

use trailwatch::rule::{Rule, EMBEDDED_RULES};

/// Hex digits of the SHA-256 shown: 48 bits tell rule files apart.
const HASH_DIGITS: usize = 12;

/// The version text of this binary (after `trailwatch `), built once.
pub fn text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| describe(env!("CARGO_PKG_VERSION"), EMBEDDED_RULES))
}

/// The version and one line per rule file (`(file name, YAML)`): its `RuleID`,
/// the hash prefix, whether it runs by default, and the file.
pub fn describe(version: &str, rules: &[(&str, &str)]) -> String {
    let mut out = format!(
        "{version}\nembedded rules (RuleID, SHA-256 of the rule file's YAML, first {HASH_DIGITS} hex digits):"
    );
    let lines: Vec<(String, String, &str, &str)> = rules
        .iter()
        .map(|(file, yaml)| {
            let hash: String = Sha256::digest(yaml.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let (id, enabled) = match Rule::from_yaml(file, yaml) {
                Ok(rule) => (rule.id, if rule.enabled { "enabled" } else { "disabled" }),
                // Embedded rules are validated by tests; say so rather than panic.
                Err(_) => ("(does not load)".to_owned(), "-"),
            };
            (id, hash[..HASH_DIGITS].to_owned(), enabled, *file)
        })
        .collect();
    let width = lines.iter().map(|(id, ..)| id.len()).max().unwrap_or(0);
    for (id, hash, enabled, file) in lines {
        let _ = write!(
            out,
            "\n  {id:<width$}  sha256:{hash}  {enabled:<8}  rules/{file}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = include_str!("../../rules/aws_rds_snapshot_export.yml");

    #[test]
    fn every_embedded_rule_is_listed_with_the_hash_of_its_yaml() {
        let text = text();
        assert!(text.starts_with(env!("CARGO_PKG_VERSION")), "{text}");
        for (file, yaml) in EMBEDDED_RULES {
            let rule = Rule::from_yaml(file, yaml).unwrap();
            let hash = Sha256::digest(yaml.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>();
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{}  ", rule.id)))
                .unwrap_or_else(|| panic!("{} is not listed:\n{text}", rule.id));
            assert!(line.contains(&format!("sha256:{}", &hash[..12])), "{line}");
            assert!(line.ends_with(&format!("rules/{file}")), "{line}");
        }
    }

    #[test]
    fn the_hash_changes_when_the_yaml_changes() {
        let before = describe("1.0.0", &[("r.yml", RULE)]);
        let edited = RULE.replacen("Severity: High", "Severity: Medium", 1);
        assert_ne!(edited, RULE, "the edit applies");
        let after = describe("1.0.0", &[("r.yml", &edited)]);
        let line = |text: &str| text.lines().nth(2).unwrap().to_owned();
        assert!(line(&before).contains("AWS.RDS.SnapshotExport  sha256:"));
        assert!(line(&after).contains("AWS.RDS.SnapshotExport  sha256:"));
        assert_ne!(line(&before), line(&after));
        // The rule is the same by id: only the hash tells them apart.
        let hash = |text: &str| line(text).split("sha256:").nth(1).unwrap()[..12].to_owned();
        assert_ne!(hash(&before), hash(&after));
    }

    #[test]
    fn a_disabled_rule_says_so() {
        let shared = include_str!("../../rules/aws_rds_snapshot_shared.yml");
        let text = describe("1.0.0", &[("s.yml", shared)]);
        assert!(
            text.contains("AWS.RDS.SnapshotShared  sha256:")
                && text.lines().nth(2).unwrap().contains("  disabled  "),
            "{text}"
        );
    }
}
