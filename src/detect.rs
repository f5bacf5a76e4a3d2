//! Records -> rule matches, for one object.
//!
//! The [`Detector`] runs the streaming scanner over an object and evaluates every
//! rule on each candidate record. It is synchronous and CPU-bound: the Lambda
//! handler runs it on a blocking thread, `scan` on its worker threads.

use std::io::Read;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::decode::{scan_records, DecodeError, Limits, Prefilter, ScanStats};
use crate::rule::RuleSet;
use crate::time::parse_event_time;

/// A record that matched a rule.
#[derive(Debug, Clone)]
pub struct Match {
    /// Index of the rule in the detector's rule set.
    pub rule: usize,
    pub record: Value,
    /// The record exactly as it was in the log file.
    pub raw: Box<RawValue>,
    /// `s3://bucket/key` or a local path.
    pub source: String,
    /// Byte offset of the record in the decoded object.
    pub offset: u64,
    /// Parsed `eventTime` (milliseconds since the epoch), when present and valid.
    pub event_time_ms: Option<i64>,
    pub event_id: String,
}

impl Match {
    /// Dedup/output order: event time (missing times last), then `eventID`.
    pub fn sort_key(&self) -> (i64, &str, &str, u64) {
        (
            self.event_time_ms.unwrap_or(i64::MAX),
            &self.event_id,
            &self.source,
            self.offset,
        )
    }
}

/// What reading one object produced.
#[derive(Debug)]
pub struct ObjectReport {
    pub source: String,
    pub matches: Vec<Match>,
    pub stats: ScanStats,
    /// Candidate records that were not valid JSON.
    pub invalid_records: u64,
    /// Why the object could not be fully read (the first problem found).
    pub error: Option<DecodeError>,
}

impl ObjectReport {
    /// An object that could not be read at all.
    pub fn failed(source: &str, error: DecodeError) -> ObjectReport {
        ObjectReport {
            source: source.to_owned(),
            matches: Vec::new(),
            stats: ScanStats::default(),
            invalid_records: 0,
            error: Some(error),
        }
    }
}

/// The rules, their prefilter and the size limits.
#[derive(Debug, Clone)]
pub struct Detector {
    pub rules: Arc<RuleSet>,
    prefilter: Prefilter,
    pub limits: Limits,
}

impl Detector {
    pub fn new(rules: RuleSet, limits: Limits) -> Self {
        let prefilter = Prefilter::for_rules(&rules.rules);
        Detector {
            rules: Arc::new(rules),
            prefilter,
            limits,
        }
    }

    /// Same rules, every record parsed (no literal prefilter): the slow, obviously
    /// correct path, for comparisons.
    pub fn without_prefilter(mut self) -> Self {
        self.prefilter = Prefilter::everything();
        self
    }

    /// Reads one object and returns its matches in document order.
    pub fn detect<R: Read>(&self, raw: R, source: &str) -> ObjectReport {
        let mut matches = Vec::new();
        let mut invalid_records = 0;
        let mut first_invalid = None;
        let outcome = scan_records(raw, &self.prefilter, &self.limits, |offset, bytes| {
            match serde_json::from_slice::<&RawValue>(bytes)
                .and_then(|raw| Ok((serde_json::from_str::<Value>(raw.get())?, raw.to_owned())))
            {
                Ok((record, raw)) => {
                    self.evaluate(record, raw, source, offset, &mut matches);
                }
                Err(e) => {
                    invalid_records += 1;
                    first_invalid.get_or_insert(DecodeError::Syntax {
                        offset: offset + e.column() as u64,
                        message: format!("invalid record: {e}"),
                    });
                }
            }
        });
        ObjectReport {
            source: source.to_owned(),
            matches,
            stats: outcome.stats,
            invalid_records,
            error: outcome.error.or(first_invalid),
        }
    }

    fn evaluate(
        &self,
        record: Value,
        raw: Box<RawValue>,
        source: &str,
        offset: u64,
        out: &mut Vec<Match>,
    ) {
        let matching: Vec<usize> = (0..self.rules.rules.len())
            .filter(|&i| self.rules.rules[i].matches(&record))
            .collect();
        if matching.is_empty() {
            return;
        }
        let event_time_ms = record
            .get("eventTime")
            .and_then(Value::as_str)
            .and_then(parse_event_time);
        let event_id = crate::rule::scalar_text(record.get("eventID"));
        for rule in matching {
            out.push(Match {
                rule,
                record: record.clone(),
                raw: raw.clone(),
                source: source.to_owned(),
                offset,
                event_time_ms,
                event_id: event_id.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector() -> Detector {
        Detector::new(RuleSet::embedded(), Limits::default())
    }

    const POSITIVE: &str = r#"{"eventSource":"rds.amazonaws.com","eventName":"StartExportTask","eventTime":"2024-01-15T10:30:00Z","eventID":"e1","awsRegion":"us-east-1","recipientAccountId":"1"}"#;

    #[test]
    fn escaped_values_match_like_plain_ones() {
        let escaped = POSITIVE
            .replace("StartExportTask", r"\u0053tartExport\u0054ask")
            .replace("rds.amazonaws.com", r"rds\u002eamazonaws.com");
        let doc = format!(r#"{{"Records":[{escaped}]}}"#);
        let report = detector().detect(doc.as_bytes(), "t");
        assert!(report.error.is_none());
        assert_eq!(report.matches.len(), 1);
        assert_eq!(
            report.matches[0].raw.get(),
            escaped,
            "the event is kept as it was"
        );
    }

    #[test]
    fn policy_documents_and_other_fields_mentioning_the_action_do_not_match() {
        let doc = r#"{"Records":[
          {"eventSource":"iam.amazonaws.com","eventName":"PutRolePolicy","requestParameters":{"policyDocument":"{\"Action\":\"rds:StartExportTask\",\"eventSource\":\"rds.amazonaws.com\",\"eventName\":\"StartExportTask\"}"}},
          {"eventSource":"cloudtrail.amazonaws.com","eventName":"LookupEvents","requestParameters":{"lookupAttributes":[{"attributeKey":"EventName","attributeValue":"StartExportTask"}]}},
          {"eventSource":"rds.amazonaws.com","eventName":"DescribeExportTasks","requestParameters":{"eventName":"StartExportTask"}},
          {"eventSource":"discovery.amazonaws.com","eventName":"StartExportTask"},
          {"eventSource":"neptune-graph.amazonaws.com","eventName":"StartExportTask"}
        ]}"#;
        let report = detector().detect(doc.as_bytes(), "t");
        assert!(report.error.is_none(), "{:?}", report.error);
        assert_eq!(report.stats.records, 5);
        assert_eq!(report.stats.candidates, 5, "all mention the needle");
        assert!(report.matches.is_empty());
    }

    #[test]
    fn error_code_semantics_in_files() {
        let with = |error: &str| {
            format!(
                r#"{{"Records":[{}]}}"#,
                POSITIVE.replace("\"eventID\"", &format!("{error},\"eventID\""))
            )
        };
        assert_eq!(
            detector()
                .detect(with(r#""errorCode":null"#).as_bytes(), "t")
                .matches
                .len(),
            1
        );
        assert_eq!(
            detector()
                .detect(with(r#""errorCode":"""#).as_bytes(), "t")
                .matches
                .len(),
            0
        );
        assert_eq!(
            detector()
                .detect(with(r#""errorCode":"AccessDenied""#).as_bytes(), "t")
                .matches
                .len(),
            0
        );
    }

    #[test]
    fn an_invalid_candidate_fails_the_object_but_not_its_neighbours() {
        let doc = format!(
            r#"{{"Records":[{POSITIVE},{{"eventName":"StartExportTask","x":tru}},{POSITIVE}]}}"#
        );
        let report = detector().detect(doc.as_bytes(), "t");
        assert_eq!(report.matches.len(), 2);
        assert_eq!(report.invalid_records, 1);
        assert!(report.error.unwrap().to_string().contains("invalid record"));
    }

    #[test]
    fn missing_optional_fields_still_match() {
        let doc =
            r#"{"Records":[{"eventSource":"rds.amazonaws.com","eventName":"StartExportTask"}]}"#;
        let report = detector().detect(doc.as_bytes(), "t");
        assert_eq!(report.matches.len(), 1);
        assert_eq!(report.matches[0].event_time_ms, None);
        assert_eq!(report.matches[0].event_id, "unknown");
    }
}
