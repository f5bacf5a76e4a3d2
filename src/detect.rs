//! Records -> rule matches, for one object.
//!
//! The [`Detector`] runs the streaming scanner over an object and evaluates every
//! rule on each candidate record. It is synchronous and CPU-bound: the Lambda
//! handler runs it on a blocking thread, `scan` on its worker threads.
//!
//! Detection fails open. A candidate record the strict parser rejects is repaired
//! ([`crate::decode::repair`]) and evaluated again; a match alerts with the repairs
//! listed in `parseWarnings`, and the object reports the record as lenient without
//! failing. Only a record that no parser would accept is an error of the object.

use std::io::Read;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::decode::repair::{self, Repaired};
use crate::decode::{
    scan_records, scan_records_observed, DecodeError, DecodedObserver, Limits, Prefilter, ScanStats,
};
use crate::rule::RuleSet;
use crate::time::parse_event_time;

/// A record that matched a rule.
#[derive(Debug, Clone)]
pub struct Match {
    /// Index of the rule in the detector's rule set.
    pub rule: usize,
    pub record: Value,
    /// The record as it was in the log file, without whitespace between tokens (one
    /// NDJSON line whatever the file's layout); repaired when it had to be.
    pub raw: Box<RawValue>,
    /// What the lenient parse changed to evaluate the record (empty when it parsed
    /// strictly).
    pub parse_warnings: Vec<String>,
    /// `s3://bucket/key` or a local path.
    pub source: String,
    /// Byte offset of the record in the decoded object.
    pub offset: u64,
    /// Parsed `eventTime` (milliseconds since the epoch), when present and valid.
    pub event_time_ms: Option<i64>,
    pub event_id: String,
    /// How the record reached trailwatch.
    pub path: DeliveryPath,
}

/// How a record reached trailwatch: in a CloudTrail log file (delivered to S3, or a
/// local copy of one), or on its own in an EventBridge "AWS API Call via
/// CloudTrail" event, seconds after the call. Alerts carry it (`"path"`), and the
/// alert latency metric is dimensioned by it, so the gain of the real-time path can
/// be read off a dashboard.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryPath {
    #[default]
    S3,
    EventBridge,
}

impl DeliveryPath {
    /// The name alerts and metrics use: `s3` or `eventbridge`.
    pub fn label(self) -> &'static str {
        match self {
            DeliveryPath::S3 => "s3",
            DeliveryPath::EventBridge => "eventbridge",
        }
    }
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
    /// Candidate records that no JSON parser would accept.
    pub invalid_records: u64,
    /// Candidate records evaluated only after a repair (see [`repair`]).
    pub lenient_records: u64,
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
            lenient_records: 0,
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
        self.detect_observed(raw, source, None)
    }

    /// [`Detector::detect`], also handing every decoded byte to `observe` (the
    /// integrity check hashes them; see `crate::integrity`).
    pub fn detect_observed<R: Read>(
        &self,
        raw: R,
        source: &str,
        observe: Option<DecodedObserver<'_>>,
    ) -> ObjectReport {
        let mut matches = Vec::new();
        let mut invalid_records = 0;
        let mut lenient_records = 0;
        let mut first_invalid = None;
        let on_candidate = |offset, bytes: &[u8]| match parse_candidate(bytes, offset) {
            Ok(candidate) => {
                if !candidate.warnings.is_empty() {
                    lenient_records += 1;
                    tracing::warn!(
                        object = source,
                        offset,
                        warnings = ?candidate.warnings,
                        "record evaluated after a lenient parse"
                    );
                }
                self.evaluate(candidate, source, offset, &mut matches);
            }
            Err(e) => {
                invalid_records += 1;
                first_invalid.get_or_insert(DecodeError::Syntax {
                    offset: offset + e.column() as u64,
                    message: format!("invalid record: {e}"),
                });
            }
        };
        let outcome = match observe {
            None => scan_records(raw, &self.prefilter, &self.limits, on_candidate),
            Some(observe) => {
                scan_records_observed(raw, &self.prefilter, &self.limits, observe, on_candidate)
            }
        };
        ObjectReport {
            source: source.to_owned(),
            matches,
            stats: outcome.stats,
            invalid_records,
            lenient_records,
            error: outcome.error.or(first_invalid),
        }
    }

    // ---- one record delivered on its own (EventBridge) ----------------------------

    /// Evaluates one CloudTrail record that arrived on its own (the `detail` of an
    /// EventBridge "AWS API Call via CloudTrail" event) exactly as a record of a log
    /// file: the same candidate parse (strict, then repaired) and the same rules, so
    /// both paths decide alike. `json` is the record's text, kept as the alert's
    /// `event`. Every record is evaluated (the needle prefilter only saves work on
    /// files). A `detail` that is not a JSON object is skipped and counted, as a
    /// non-object element of `Records` is.
    pub fn detect_record(&self, json: &[u8], source: &str) -> ObjectReport {
        let mut report = ObjectReport {
            source: source.to_owned(),
            matches: Vec::new(),
            stats: ScanStats {
                decoded_bytes: json.len() as u64,
                ..ScanStats::default()
            },
            invalid_records: 0,
            lenient_records: 0,
            error: None,
        };
        let first = json.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            report.stats.non_object_records = 1;
            tracing::warn!(source, "record is not a JSON object, skipped");
            return report;
        }
        report.stats.records = 1;
        report.stats.candidates = 1;
        match parse_candidate(json, 0) {
            Ok(candidate) => {
                if !candidate.warnings.is_empty() {
                    report.lenient_records = 1;
                    tracing::warn!(source, warnings = ?candidate.warnings, "record evaluated after a lenient parse");
                }
                self.evaluate(candidate, source, 0, &mut report.matches);
            }
            Err(e) => {
                report.invalid_records = 1;
                report.error = Some(DecodeError::Syntax {
                    offset: e.column() as u64,
                    message: format!("invalid record: {e}"),
                });
            }
        }
        for m in &mut report.matches {
            m.path = DeliveryPath::EventBridge;
        }
        report
    }

    fn evaluate(&self, candidate: Candidate, source: &str, offset: u64, out: &mut Vec<Match>) {
        let record = candidate.record;
        let matching: Vec<usize> = (0..self.rules.rules.len())
            .filter(|&i| self.rules.rules[i].matches(&record))
            .collect();
        if matching.is_empty() {
            return;
        }
        // Only matches are compacted: the text is printed and published, and
        // matches are rare.
        let raw = match repair::compact(candidate.raw.get()) {
            std::borrow::Cow::Borrowed(_) => candidate.raw,
            std::borrow::Cow::Owned(text) => RawValue::from_string(text).unwrap_or(candidate.raw),
        };
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
                parse_warnings: candidate.warnings.clone(),
                source: source.to_owned(),
                offset,
                event_time_ms,
                event_id: event_id.clone(),
                path: DeliveryPath::S3,
            });
        }
    }
}

/// A candidate record ready for the rules.
struct Candidate {
    record: Value,
    raw: Box<RawValue>,
    /// Empty when the strict parse succeeded.
    warnings: Vec<String>,
}

/// Strict parse first (the common case, and the text kept byte for byte); when it
/// fails, the repaired text, which every defect another parser tolerates has been
/// turned into valid JSON in. The strict error is returned when the repair does not
/// help: it points at the real defect.
fn parse_candidate(bytes: &[u8], offset: u64) -> Result<Candidate, serde_json::Error> {
    let strict = serde_json::from_slice::<&RawValue>(bytes).and_then(|raw| {
        Ok(Candidate {
            record: serde_json::from_str::<Value>(raw.get())?,
            raw: raw.to_owned(),
            warnings: Vec::new(),
        })
    });
    let strict_error = match strict {
        Ok(candidate) => return Ok(candidate),
        Err(e) => e,
    };
    let Repaired { json, mut warnings } = repair::repair(bytes, offset);
    let Ok((record, skipped)) = repair::parse_value(&json) else {
        return Err(strict_error);
    };
    if skipped {
        warnings.push(format!(
            "containers nested deeper than {} levels were not evaluated",
            repair::MAX_EVALUATED_DEPTH
        ));
    }
    if warnings.is_empty() {
        // Valid JSON the strict parser still refused: say why.
        warnings.push(format!("strict parse failed: {strict_error}"));
    }
    let raw = RawValue::from_string(json).map_err(|_| strict_error)?;
    Ok(Candidate {
        record,
        raw,
        warnings,
    })
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

    /// A successful export whose `userAgent` (caller-controlled) carries `defect`.
    fn with_defect(defect: &str) -> String {
        POSITIVE.replace(
            r#""eventID":"e1""#,
            &format!(r#""eventID":"e1","userAgent":{defect}"#),
        )
    }

    #[test]
    fn records_other_parsers_accept_still_alert_with_warnings() {
        let deep = format!("{}0{}", "[".repeat(300), "]".repeat(300));
        for (defect, warning) in [
            (r#""\udc00x""#, "lone surrogate \\udc00"),
            (r#""\ud800""#, "lone surrogate \\ud800"),
            ("1e400", "number 1e400 is out of range"),
            (deep.as_str(), "nested deeper than"),
        ] {
            let doc = format!(
                r#"{{"Records":[{POSITIVE},{},{POSITIVE}]}}"#,
                with_defect(defect)
            );
            let report = detector().detect(doc.as_bytes(), "t");
            assert!(report.error.is_none(), "{defect}: {:?}", report.error);
            assert_eq!(report.matches.len(), 3, "{defect}");
            assert_eq!(report.lenient_records, 1, "{defect}");
            assert_eq!(report.invalid_records, 0, "{defect}");
            let lenient = &report.matches[1];
            assert!(
                lenient.parse_warnings.iter().any(|w| w.contains(warning)),
                "{defect}: {:?}",
                lenient.parse_warnings
            );
            assert!(report.matches[0].parse_warnings.is_empty());
            // The kept text is valid JSON (the repaired record).
            serde_json::from_str::<&RawValue>(lenient.raw.get()).unwrap();
        }
    }

    #[test]
    fn a_byte_order_mark_before_plain_json_is_ignored() {
        let doc = format!("\u{feff}{{\"Records\":[{POSITIVE}]}}");
        let report = detector().detect(doc.as_bytes(), "t");
        assert!(report.error.is_none(), "{:?}", report.error);
        assert_eq!(report.matches.len(), 1);
    }

    #[test]
    fn pretty_printed_records_are_kept_compact() {
        let value: Value = serde_json::from_str(POSITIVE).unwrap();
        let pretty = serde_json::to_string_pretty(&value)
            .unwrap()
            .replace('\n', "\r\n");
        let doc = format!("{{\r\n  \"Records\": [\r\n{pretty}\r\n  ]\r\n}}\r\n");
        let report = detector().detect(doc.as_bytes(), "t");
        assert!(report.error.is_none(), "{:?}", report.error);
        assert_eq!(report.matches.len(), 1);
        assert_eq!(report.matches[0].raw.get(), POSITIVE);
        assert!(report.matches[0].parse_warnings.is_empty());
    }

    #[test]
    fn a_record_delivered_alone_matches_as_in_a_file() {
        let detector = detector();
        let alone = detector.detect_record(POSITIVE.as_bytes(), "eventbridge:us-east-1:x");
        let in_file = detector.detect(format!(r#"{{"Records":[{POSITIVE}]}}"#).as_bytes(), "t");
        assert!(alone.error.is_none());
        assert_eq!(alone.matches.len(), 1);
        let (a, f) = (&alone.matches[0], &in_file.matches[0]);
        assert_eq!(a.raw.get(), f.raw.get());
        assert_eq!(
            (&a.event_id, a.event_time_ms),
            (&f.event_id, f.event_time_ms)
        );
        assert_eq!(a.path, DeliveryPath::EventBridge);
        assert_eq!(f.path, DeliveryPath::S3);
        assert_eq!(a.source, "eventbridge:us-east-1:x");
        assert_eq!((alone.stats.records, alone.stats.candidates), (1, 1));

        let failed = POSITIVE.replace("\"eventID\"", "\"errorCode\":\"AccessDenied\",\"eventID\"");
        assert!(detector
            .detect_record(failed.as_bytes(), "e")
            .matches
            .is_empty());
        let other = r#"{"eventSource":"rds.amazonaws.com","eventName":"DescribeDBSnapshots"}"#;
        let report = detector.detect_record(other.as_bytes(), "e");
        assert!(report.matches.is_empty() && report.error.is_none());
        assert_eq!(report.stats.records, 1);
    }

    #[test]
    fn a_bad_record_delivered_alone_is_reported_like_one_in_a_file() {
        let detector = detector();
        for not_an_object in ["\"text\"", "[1]", "null", "  "] {
            let report = detector.detect_record(not_an_object.as_bytes(), "e");
            assert_eq!(report.stats.non_object_records, 1, "{not_an_object}");
            assert_eq!(report.stats.records, 0);
            assert!(report.error.is_none() && report.matches.is_empty());
        }
        let invalid = with_defect("tru");
        let report = detector.detect_record(invalid.as_bytes(), "eventbridge:us-east-1:x");
        assert_eq!(report.invalid_records, 1);
        let error = report.error.unwrap().to_string();
        assert!(error.contains("invalid record: expected ident"), "{error}");
        let lenient = detector.detect_record(with_defect(r#""\udc00x""#).as_bytes(), "e");
        assert_eq!((lenient.lenient_records, lenient.matches.len()), (1, 1));
        assert!(!lenient.matches[0].parse_warnings.is_empty());
    }

    #[test]
    fn a_record_no_parser_accepts_is_still_invalid() {
        let doc = format!(r#"{{"Records":[{}]}}"#, with_defect("tru"));
        let report = detector().detect(doc.as_bytes(), "t");
        assert_eq!(report.invalid_records, 1);
        assert_eq!(report.lenient_records, 0);
        assert!(report.matches.is_empty());
        let error = report.error.unwrap().to_string();
        assert!(error.contains("invalid record: expected ident"), "{error}");
    }
}
