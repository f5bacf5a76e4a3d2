//! Which rules run: the embedded rules enabled by default, plus those named by
//! `TRAILWATCH_RULES` or `--rules` (an embedded rule's `RuleID` or file name, or
//! the path of a rule file).

use std::path::Path;

use super::{Rule, RuleError, RuleSet};

/// The enabled rules of `embedded`, plus each of `named`.
pub(super) fn select(
    embedded: Vec<Rule>,
    named: &[impl AsRef<Path>],
) -> Result<Vec<Rule>, RuleError> {
    let mut wanted: Vec<bool> = embedded.iter().map(|r| r.enabled).collect();
    let mut files = Vec::new();
    for name in named {
        let path = name.as_ref();
        let text = path.to_string_lossy();
        let embedded_at = embedded.iter().position(|r| {
            r.id == text || r.origin == text || r.origin.strip_suffix(".yml") == Some(&text)
        });
        match embedded_at {
            // An embedded rule's name wins over a file of the same name in the
            // working directory: `./aws_rds_snapshot_shared.yml` names the file.
            Some(at) => wanted[at] = true,
            None => files.push(Rule::from_file(path)?),
        }
    }
    let mut rules: Vec<Rule> = embedded
        .into_iter()
        .zip(wanted)
        .filter_map(|(rule, wanted)| wanted.then_some(rule))
        .collect();
    rules.extend(files);
    Ok(rules)
}

/// Splits `TRAILWATCH_RULES`: comma-separated names or paths.
pub fn parse_rule_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl PartialEq for RuleSet {
    /// The same rules, from the same origins, in the same order.
    fn eq(&self, other: &RuleSet) -> bool {
        self.rules.len() == other.rules.len()
            && self
                .rules
                .iter()
                .zip(&other.rules)
                .all(|(a, b)| a.id == b.id && a.origin == b.origin)
    }
}

impl Eq for RuleSet {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_enable_embedded_rules_and_paths_load_files() {
        let none: [&str; 0] = [];
        let default = RuleSet::load(&none).unwrap();
        assert!(default.rules.iter().all(|r| r.enabled));
        let err = RuleSet::load(&["no/such/rule.yml"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no/such/rule.yml"), "{err}");
        assert_eq!(
            parse_rule_list(" a.yml, ,B.Rule,"),
            vec!["a.yml".to_owned(), "B.Rule".to_owned()]
        );
    }
}
