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
    /// Enrichment at alert time (see the block at the end of this file).
    pub enrich: EnrichSettings,
    /// Containment (see the block at the end of this file).
    pub response: ResponseSettings,
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
            enrich: EnrichSettings::default(),
            response: ResponseSettings::default(),
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
        config.enrich = EnrichSettings::from_lookup(&get)?;
        config.response = ResponseSettings::from_lookup(&get)?;
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

// ---- Enrichment and containment ---------------------------------------------
//
// TRAILWATCH_ENRICH, TRAILWATCH_ENRICH_TIMEOUT_MS, TRAILWATCH_TRUSTED_BUCKETS,
// TRAILWATCH_TRUSTED_ACCOUNTS, TRAILWATCH_MEMBER_ROLE_NAME (src/enrich, docs/enrichment.md);
// TRAILWATCH_RESPONSE, TRAILWATCH_RESPONSE_MAX_PER_HOUR (src/respond, docs/response.md).

/// The enrichment budget when `TRAILWATCH_ENRICH_TIMEOUT_MS` is not set.
pub const DEFAULT_ENRICH_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);
/// At most this many trusted accounts: each is one more HeadBucket per alert.
pub const MAX_TRUSTED_ACCOUNTS: usize = 20;

/// Lookups at alert time (`src/enrich`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrichSettings {
    /// `TRAILWATCH_ENRICH` (default `true`).
    pub enabled: bool,
    /// `TRAILWATCH_ENRICH_TIMEOUT_MS`: one budget for all of an alert's lookups.
    pub budget: std::time::Duration,
    /// `TRAILWATCH_TRUSTED_BUCKETS`: bucket names exports may go to.
    pub trusted_buckets: Vec<String>,
    /// `TRAILWATCH_TRUSTED_ACCOUNTS`: accounts whose buckets exports may go to.
    pub trusted_accounts: Vec<String>,
    /// `TRAILWATCH_MEMBER_ROLE_NAME`: the role assumed in the account of an event
    /// that is not the function's own (enrichment and containment).
    pub member_role_name: Option<String>,
}

impl Default for EnrichSettings {
    fn default() -> Self {
        EnrichSettings {
            enabled: true,
            budget: DEFAULT_ENRICH_BUDGET,
            trusted_buckets: Vec::new(),
            trusted_accounts: Vec::new(),
            member_role_name: None,
        }
    }
}

/// What containment does (`TRAILWATCH_RESPONSE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseMode {
    /// No response is decided or reported.
    Off,
    /// Decides exactly as `cancel` would and says so; calls nothing.
    #[default]
    Report,
    /// Decides, then calls AWS.
    Cancel,
}

impl ResponseMode {
    pub fn label(self) -> &'static str {
        match self {
            ResponseMode::Off => "off",
            ResponseMode::Report => "report",
            ResponseMode::Cancel => "cancel",
        }
    }
}

/// Containment (`src/respond`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseSettings {
    /// `TRAILWATCH_RESPONSE`: `off`, `report` (default) or `cancel`.
    pub mode: ResponseMode,
    /// `TRAILWATCH_RESPONSE_MAX_PER_HOUR`: cancels per account in any hour (default 3).
    pub max_per_hour: u32,
}

impl Default for ResponseSettings {
    fn default() -> Self {
        ResponseSettings {
            mode: ResponseMode::Report,
            max_per_hour: 3,
        }
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`).
fn parse_flag(variable: &'static str, text: &str) -> Result<bool, ConfigError> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError {
            variable,
            problem: format!("{text:?} is neither true nor false"),
        }),
    }
}

fn list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl EnrichSettings {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<EnrichSettings, ConfigError> {
        let mut settings = EnrichSettings::default();
        if let Some(flag) = get("TRAILWATCH_ENRICH") {
            settings.enabled = parse_flag("TRAILWATCH_ENRICH", &flag)?;
        }
        if let Some(ms) = get("TRAILWATCH_ENRICH_TIMEOUT_MS") {
            let ms: u64 = parse_number("TRAILWATCH_ENRICH_TIMEOUT_MS", &ms, 100, 60_000)?;
            settings.budget = std::time::Duration::from_millis(ms);
        }
        if let Some(buckets) = get("TRAILWATCH_TRUSTED_BUCKETS") {
            settings.trusted_buckets = list(&buckets);
        }
        if let Some(accounts) = get("TRAILWATCH_TRUSTED_ACCOUNTS") {
            let accounts = list(&accounts);
            if let Some(bad) = accounts
                .iter()
                .find(|a| a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(ConfigError {
                    variable: "TRAILWATCH_TRUSTED_ACCOUNTS",
                    problem: format!("{bad:?} is not a 12-digit AWS account id"),
                });
            }
            if accounts.len() > MAX_TRUSTED_ACCOUNTS {
                return Err(ConfigError {
                    variable: "TRAILWATCH_TRUSTED_ACCOUNTS",
                    problem: format!(
                        "{} accounts; at most {MAX_TRUSTED_ACCOUNTS} (each is one more HeadBucket per alert)",
                        accounts.len()
                    ),
                });
            }
            settings.trusted_accounts = accounts;
        }
        // Empty (the stack's MemberRoleName left empty): no member role.
        if let Some(name) = get("TRAILWATCH_MEMBER_ROLE_NAME").filter(|n| !n.is_empty()) {
            let valid = name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
            if !valid {
                return Err(ConfigError {
                    variable: "TRAILWATCH_MEMBER_ROLE_NAME",
                    problem: format!("{name:?} is not an IAM role name (no path, at most 64 of A-Z a-z 0-9 +=,.@_-)"),
                });
            }
            settings.member_role_name = Some(name);
        }
        Ok(settings)
    }
}

impl ResponseSettings {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<ResponseSettings, ConfigError> {
        let mut settings = ResponseSettings::default();
        if let Some(mode) = get("TRAILWATCH_RESPONSE") {
            settings.mode = match mode.to_ascii_lowercase().as_str() {
                "off" => ResponseMode::Off,
                "report" => ResponseMode::Report,
                "cancel" => ResponseMode::Cancel,
                _ => {
                    return Err(ConfigError {
                        variable: "TRAILWATCH_RESPONSE",
                        problem: format!("{mode:?} is not one of off, report, cancel"),
                    })
                }
            };
        }
        if let Some(n) = get("TRAILWATCH_RESPONSE_MAX_PER_HOUR") {
            settings.max_per_hour = parse_number("TRAILWATCH_RESPONSE_MAX_PER_HOUR", &n, 0, 100)?;
        }
        Ok(settings)
    }
}

impl AllowList {
    /// Is this exact value an entry (a role, bucket or caller ARN)?
    pub fn lists(&self, value: &str) -> bool {
        self.entries.iter().any(|e| e == value)
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
    fn enrichment_and_response_variables() {
        let c = config(&[]).unwrap();
        assert!(c.enrich.enabled);
        assert_eq!(c.enrich.budget, DEFAULT_ENRICH_BUDGET);
        assert_eq!(c.response.mode, ResponseMode::Report);
        assert_eq!(c.response.max_per_hour, 3);
        let c = config(&[
            ("TRAILWATCH_ENRICH", "false"),
            ("TRAILWATCH_ENRICH_TIMEOUT_MS", "1500"),
            ("TRAILWATCH_TRUSTED_BUCKETS", "lake-exports, archive"),
            ("TRAILWATCH_TRUSTED_ACCOUNTS", "111122223333"),
            ("TRAILWATCH_MEMBER_ROLE_NAME", "TrailwatchMember"),
            ("TRAILWATCH_RESPONSE", "Cancel"),
            ("TRAILWATCH_RESPONSE_MAX_PER_HOUR", "1"),
        ])
        .unwrap();
        assert!(!c.enrich.enabled);
        assert_eq!(c.enrich.budget, std::time::Duration::from_millis(1500));
        assert_eq!(c.enrich.trusted_buckets, ["lake-exports", "archive"]);
        assert_eq!(c.enrich.trusted_accounts, ["111122223333"]);
        assert_eq!(
            c.enrich.member_role_name.as_deref(),
            Some("TrailwatchMember")
        );
        assert_eq!(c.response.mode, ResponseMode::Cancel);
        assert_eq!(c.response.max_per_hour, 1);
        for (var, value) in [
            ("TRAILWATCH_ENRICH", "sometimes"),
            ("TRAILWATCH_ENRICH_TIMEOUT_MS", "50"),
            ("TRAILWATCH_TRUSTED_ACCOUNTS", "12345"),
            ("TRAILWATCH_MEMBER_ROLE_NAME", "path/Role"),
            ("TRAILWATCH_RESPONSE", "delete"),
            ("TRAILWATCH_RESPONSE_MAX_PER_HOUR", "-1"),
        ] {
            assert_eq!(config(&[(var, value)]).unwrap_err().variable, var);
        }
        let empty = config(&[
            ("TRAILWATCH_MEMBER_ROLE_NAME", ""),
            ("TRAILWATCH_TRUSTED_BUCKETS", ""),
            ("TRAILWATCH_TRUSTED_ACCOUNTS", ""),
        ])
        .unwrap();
        assert_eq!(
            empty.enrich,
            EnrichSettings::default(),
            "empty stack parameters mean none"
        );
        let allow = AllowList::parse("arn:aws:iam::1:role/etl bucket");
        assert!(allow.lists("bucket") && !allow.lists("buck"));
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
