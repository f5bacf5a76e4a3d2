//! Configuration from the environment (SPEC §6), validated once at cold start.

use serde_json::Value;

use crate::decode::{Limits, DEFAULT_MAX_DECOMPRESSED_BYTES};
use crate::rule::{lookup, parse_rule_list, RuleSet};

/// A bad variable, named, with what is wrong with it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration: {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

/// Known export roles or buckets whose matches are logged and counted, not alerted.
///
/// An entry is compared to the export's role ARN (`requestParameters.iamRoleArn`),
/// its bucket (`requestParameters.s3BucketName`) and the caller's ARN
/// (`userIdentity.arn`, and the issuing role's ARN of an assumed-role session).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<String>,
}

/// The record fields an allow-list entry is compared to.
pub const ALLOW_FIELDS: &[&[&str]] = &[
    &["requestParameters", "iamRoleArn"],
    &["requestParameters", "s3BucketName"],
    &["userIdentity", "arn"],
    &["userIdentity", "sessionContext", "sessionIssuer", "arn"],
];

impl AllowList {
    /// Parses a comma- or whitespace-separated list.
    pub fn parse(text: &str) -> AllowList {
        AllowList {
            entries: text
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry that allows this record, if any.
    pub fn allows(&self, record: &Value) -> Option<&str> {
        if self.entries.is_empty() {
            return None;
        }
        ALLOW_FIELDS.iter().find_map(|path| {
            let value = lookup(record, path)?.as_str()?;
            self.entries
                .iter()
                .find(|e| *e == value)
                .map(String::as_str)
        })
    }
}

/// Everything the function reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `TRAILWATCH_TOPIC_ARN`: where alerts go (required in Lambda mode).
    pub topic_arn: Option<String>,
    /// `TRAILWATCH_DEDUP_TABLE`: DynamoDB table for dedup windows.
    pub dedup_table: Option<String>,
    /// `TRAILWATCH_DEDUP_MINUTES`: overrides the rules' dedup period.
    pub dedup_minutes: Option<u32>,
    /// `TRAILWATCH_ALLOW`.
    pub allow: AllowList,
    /// `TRAILWATCH_MAX_DECOMPRESSED_BYTES`.
    pub limits: Limits,
    /// `TRAILWATCH_CONCURRENCY`: objects of one event read at once (default 4).
    pub concurrency: usize,
    /// `TRAILWATCH_RULES`: comma-separated embedded rule names (`RuleID` or file
    /// name; enables a rule shipped disabled) or rule file paths, run besides the
    /// embedded rules enabled by default.
    pub rule_names: Vec<String>,
    /// The rules to run: loaded and validated once, at cold start.
    pub rules: RuleSet,
    /// `TRAILWATCH_SECURITYHUB=true`: each alert also becomes a Security Hub finding.
    pub securityhub: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            topic_arn: None,
            dedup_table: None,
            dedup_minutes: None,
            allow: AllowList::default(),
            limits: Limits::default(),
            concurrency: 4,
            rule_names: Vec::new(),
            rules: RuleSet::embedded(),
            securityhub: false,
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut config = Config::default();
        if let Some(arn) = get("TRAILWATCH_TOPIC_ARN") {
            if !arn.starts_with("arn:") || arn.split(':').count() != 6 {
                return Err(ConfigError {
                    variable: "TRAILWATCH_TOPIC_ARN",
                    problem: format!(
                        "{arn:?} is not an SNS topic ARN (arn:aws:sns:region:account:name)"
                    ),
                });
            }
            config.topic_arn = Some(arn);
        }
        config.dedup_table = get("TRAILWATCH_DEDUP_TABLE");
        if let Some(minutes) = get("TRAILWATCH_DEDUP_MINUTES") {
            config.dedup_minutes = Some(parse_number(
                "TRAILWATCH_DEDUP_MINUTES",
                &minutes,
                1,
                7 * 24 * 60,
            )?);
        }
        if let Some(allow) = get("TRAILWATCH_ALLOW") {
            config.allow = AllowList::parse(&allow);
        }
        if let Some(bytes) = get("TRAILWATCH_MAX_DECOMPRESSED_BYTES") {
            config.limits.max_decompressed_bytes =
                parse_number("TRAILWATCH_MAX_DECOMPRESSED_BYTES", &bytes, 1024, u64::MAX)?;
        } else {
            config.limits.max_decompressed_bytes = DEFAULT_MAX_DECOMPRESSED_BYTES;
        }
        if let Some(n) = get("TRAILWATCH_CONCURRENCY") {
            config.concurrency = parse_number("TRAILWATCH_CONCURRENCY", &n, 1, 64)?;
        }
        if let Some(flag) = get("TRAILWATCH_SECURITYHUB") {
            config.securityhub = match flag.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(ConfigError {
                        variable: "TRAILWATCH_SECURITYHUB",
                        problem: format!("{flag:?} is neither true nor false"),
                    })
                }
            };
            if config.securityhub && !cfg!(feature = "securityhub") {
                return Err(ConfigError {
                    variable: "TRAILWATCH_SECURITYHUB",
                    problem: "this build has no Security Hub sink (cargo feature securityhub)"
                        .into(),
                });
            }
        }
        if let Some(list) = get("TRAILWATCH_RULES") {
            config.rule_names = parse_rule_list(&list);
            config.rules = RuleSet::load(&config.rule_names).map_err(|e| ConfigError {
                variable: "TRAILWATCH_RULES",
                problem: e.to_string(),
            })?;
        }
        Ok(config)
    }

    /// Where findings are imported when Security Hub is enabled: the default product
    /// of the alert topic's account and region (the stack's own).
    pub fn securityhub_product_arn(&self) -> Option<String> {
        if !self.securityhub {
            return None;
        }
        let topic = self.topic_arn.as_deref()?;
        let parts: Vec<&str> = topic.split(':').collect();
        match parts.as_slice() {
            ["arn", partition, "sns", region, account, _] => Some(format!(
                "arn:{partition}:securityhub:{region}:{account}:product/{account}/default"
            )),
            _ => None,
        }
    }

    /// Lambda mode needs somewhere to send alerts.
    pub fn require_topic(&self) -> Result<&str, ConfigError> {
        self.topic_arn.as_deref().ok_or(ConfigError {
            variable: "TRAILWATCH_TOPIC_ARN",
            problem: "required in Lambda mode (the SNS topic that receives alerts)".into(),
        })
    }
}

fn parse_number<T>(variable: &'static str, text: &str, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match text.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(ConfigError {
            variable,
            problem: format!("{text:?} is not a whole number between {min} and {max}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_without_variables() {
        let c = config(&[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(
            c.require_topic().unwrap_err().variable,
            "TRAILWATCH_TOPIC_ARN"
        );
    }

    #[test]
    fn reads_every_variable() {
        let c = config(&[
            (
                "TRAILWATCH_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:alerts",
            ),
            ("TRAILWATCH_DEDUP_TABLE", "windows"),
            ("TRAILWATCH_DEDUP_MINUTES", "15"),
            (
                "TRAILWATCH_ALLOW",
                "arn:aws:iam::1:role/etl, analytics-bucket",
            ),
            ("TRAILWATCH_MAX_DECOMPRESSED_BYTES", "1048576"),
        ])
        .unwrap();
        assert_eq!(
            c.require_topic().unwrap(),
            "arn:aws:sns:us-east-1:123456789012:alerts"
        );
        assert_eq!(c.dedup_table.as_deref(), Some("windows"));
        assert_eq!(c.dedup_minutes, Some(15));
        assert_eq!(c.limits.max_decompressed_bytes, 1 << 20);
        let allowed =
            serde_json::json!({"requestParameters": {"s3BucketName": "analytics-bucket"}});
        assert_eq!(c.allow.allows(&allowed), Some("analytics-bucket"));
        assert_eq!(
            c.allow
                .allows(&serde_json::json!({"requestParameters": {"s3BucketName": "x"}})),
            None
        );
    }

    #[test]
    fn rules_are_named_embedded_rules_or_files() {
        let c = config(&[("TRAILWATCH_RULES", " AWS.RDS.SnapshotShared ,")]).unwrap();
        assert_eq!(c.rule_names, vec!["AWS.RDS.SnapshotShared".to_owned()]);
        let ids: Vec<&str> = c.rules.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["AWS.RDS.SnapshotExport", "AWS.RDS.SnapshotShared"]);
        assert!(config(&[])
            .unwrap()
            .rules
            .get("AWS.RDS.SnapshotShared")
            .is_none());
        let err = config(&[("TRAILWATCH_RULES", "missing.yml")]).unwrap_err();
        assert!(err.problem.contains("missing.yml"), "{err}");
    }

    #[test]
    fn security_hub_imports_into_the_topics_account() {
        let c = config(&[
            (
                "TRAILWATCH_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:123456789012:alerts",
            ),
            ("TRAILWATCH_SECURITYHUB", "true"),
        ])
        .unwrap();
        assert!(c.securityhub);
        assert_eq!(
            c.securityhub_product_arn().as_deref(),
            Some("arn:aws:securityhub:eu-west-1:123456789012:product/123456789012/default")
        );
        let off = config(&[("TRAILWATCH_SECURITYHUB", "false")]).unwrap();
        assert_eq!(off.securityhub_product_arn(), None);
        assert_eq!(
            config(&[("TRAILWATCH_SECURITYHUB", "maybe")])
                .unwrap_err()
                .variable,
            "TRAILWATCH_SECURITYHUB"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("TRAILWATCH_DEDUP_MINUTES", "sixty"),
            ("TRAILWATCH_DEDUP_MINUTES", "0"),
            ("TRAILWATCH_MAX_DECOMPRESSED_BYTES", "-1"),
            ("TRAILWATCH_TOPIC_ARN", "alerts"),
            ("TRAILWATCH_RULES", "No.Such.Rule"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var);
            assert!(err.to_string().contains(var));
        }
    }
}
