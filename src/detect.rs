//! Records -> rule matches, for one object.
//!
//! The [`Detector`] runs the streaming scanner over an object and evaluates every
//! rule on each candidate record. It is synchronous and CPU-bound: the Lambda
//! handler runs it on a blocking thread, `scan` on its worker threads.
//! [`Detector::detect_record`] evaluates one record given as JSON (an event that
//! carries a record rather than a log file).
//!
//! A candidate is parsed for the fields the rules and the alert read, and nothing
//! else is built ([`fields`]): memory per record stays bounded whatever its size
//! or shape. A match keeps the record's text for the alert's `event` when an SNS
//! message can carry it ([`MAX_EVENT_BYTES`]), and its content fingerprint
//! ([`crate::dedup::fingerprint`]) when it has an `eventID`.
//!
//! Detection fails open. A candidate record the strict parser rejects is repaired
//! ([`crate::decode::repair`]) and evaluated again; a match alerts with the repairs
//! listed in `parseWarnings`, and the object reports the record as lenient without
//! failing. Only a record that no parser would accept is an error of the object. A
//! record over the size limit is evaluated on its first `max_record_bytes` (with a
//! warning saying so); the parts of an object the scanner skips (trailing data, an
//! oversized record without a needle, an element that is not valid JSON) are
//! logged with the object's name and counted.

mod fields;

use std::io::Read;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

pub use fields::{
    parse_fields, FieldSet, Selected, MAX_EVALUATED_DEPTH, MAX_KEPT_BYTES, MAX_KEPT_VALUES,
};

use crate::decode::repair::{self, Repaired};
use crate::decode::{
    scan_into, scan_records_observed, DecodeError, DecodedObserver, Limits, Prefilter, RecordSink,
    ScanStats, Skipped,
};
use crate::dedup::Fingerprint;
use crate::rule::{FieldPath, RuleSet};
use crate::time::parse_event_time;

/// The largest record text a match keeps for the alert's `event`: a larger one
/// could not be published (SNS's limit, `alert::SNS_PUBLISH_LIMIT`, covers the
/// whole message, and `alert` checks that the two agree), so the alert leaves it
/// out (`eventOmitted`).
pub const MAX_EVENT_BYTES: usize = 262_144;

/// The fields the detector itself reads.
const DETECTOR_FIELDS: &[&[&str]] = &[&["eventTime"], &["eventID"]];

/// A record that matched a rule.
#[derive(Debug, Clone)]
pub struct Match {
    /// Index of the rule in the detector's rule set.
    pub rule: usize,
    /// The record's fields that the rules and the alert read (see [`FieldSet`]).
    pub record: Value,
    /// The record as it was in the log file, without whitespace between tokens (one
    /// NDJSON line whatever the file's layout); repaired when it had to be. `None`
    /// when it is larger than an alert can carry ([`MAX_EVENT_BYTES`]).
    pub raw: Option<Box<RawValue>>,
    /// What the lenient parse changed to evaluate the record, and what it did not
    /// evaluate (empty when it parsed strictly and whole).
    pub parse_warnings: Vec<String>,
    /// `s3://bucket/key` or a local path.
    pub source: String,
    /// Byte offset of the record in the decoded object.
    pub offset: u64,
    /// Parsed `eventTime` (milliseconds since the epoch), when present and valid.
    pub event_time_ms: Option<i64>,
    pub event_id: String,
    /// The record's content fingerprint; `None` when it has no `eventID` (it is then
    /// never taken for a redelivery).
    pub fingerprint: Option<Fingerprint>,
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
    /// Candidate records evaluated only after a repair (see [`repair`]), or over
    /// the size limit.
    pub lenient_records: u64,
    /// The parts of the object that were skipped (the first few; `stats` counts
    /// them all). They are logged, and fail nothing.
    pub skipped: Vec<Skipped>,
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
            skipped: Vec::new(),
            error: Some(error),
        }
    }
}

/// The rules, their prefilter, the fields they read and the size limits.
#[derive(Debug, Clone)]
pub struct Detector {
    pub rules: Arc<RuleSet>,
    prefilter: Prefilter,
    fields: Arc<FieldSet>,
    pub limits: Limits,
}

impl Detector {
    pub fn new(rules: RuleSet, limits: Limits) -> Self {
        let prefilter = Prefilter::for_rules(&rules.rules);
        let mut fields = FieldSet::new();
        for rule in &rules.rules {
            for path in rule.field_paths() {
                fields.add(&path);
            }
        }
        let fixed = [
            DETECTOR_FIELDS,
            crate::rule::ALERT_RECORD_FIELDS,
            crate::config::ALLOW_FIELDS,
        ];
        for path in fixed.into_iter().flatten() {
            fields.add(path);
        }
        Detector {
            rules: Arc::new(rules),
            prefilter,
            fields: Arc::new(fields),
            limits,
        }
    }

    /// Same rules, and these record paths kept too (for a step after detection
    /// that reads more of a matched record).
    pub fn with_fields(mut self, paths: &[FieldPath]) -> Self {
        let fields = Arc::make_mut(&mut self.fields);
        for path in paths {
            fields.add(path);
        }
        self
    }

    /// The record fields a match carries.
    pub fn fields(&self) -> &FieldSet {
        &self.fields
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
        let mut reading = Reading {
            detector: self,
            source,
            matches: Vec::new(),
            invalid_records: 0,
            lenient_records: 0,
            first_invalid: None,
            oversized: None,
            oversized_candidates: 0,
        };
        let outcome = match observe {
            None => scan_into(raw, &self.prefilter, &self.limits, &mut reading),
            Some(observe) => {
                scan_records_observed(raw, &self.prefilter, &self.limits, observe, &mut reading)
            }
        };
        for skipped in &outcome.skipped {
            tracing::warn!(object = source, skipped = %skipped, "part of the object skipped");
        }
        let stats = &outcome.stats;
        let counted = stats.invalid_elements
            + u64::from(stats.trailing_data)
            + stats
                .oversized_records
                .saturating_sub(reading.oversized_candidates);
        if counted > outcome.skipped.len() as u64 {
            tracing::warn!(
                object = source,
                more = counted - outcome.skipped.len() as u64,
                "more parts of the object skipped"
            );
        }
        ObjectReport {
            source: source.to_owned(),
            matches: reading.matches,
            stats: outcome.stats,
            invalid_records: reading.invalid_records,
            lenient_records: reading.lenient_records,
            skipped: outcome.skipped,
            error: outcome.error.or(reading.first_invalid),
        }
    }

    // ---- one record delivered on its own (EventBridge) ----------------------------

    /// Evaluates one CloudTrail record that arrived on its own (the `detail` of an
    /// EventBridge "AWS API Call via CloudTrail" event) exactly as a record of a log
    /// file: the same field-selective parse (strict, then repaired), the same rules
    /// and the same fingerprint, so both paths decide alike. `json` is the record's
    /// text (surrounding whitespace allowed), kept as the alert's `event`. Every
    /// record is evaluated (the needle prefilter only saves work on files). A
    /// `detail` that is not a JSON object is skipped and counted, as a non-object
    /// element of `Records` is; one no parser accepts is the report's error.
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
            skipped: Vec::new(),
            error: None,
        };
        let at = json.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let body = json[at..].trim_ascii_end();
        if body.first() != Some(&b'{') {
            report.stats.non_object_records = 1;
            tracing::warn!(source, "record is not a JSON object, skipped");
            return report;
        }
        report.stats.records = 1;
        report.stats.candidates = 1;
        match self.evaluate(body, 0, source) {
            Ok(evaluated) => {
                if evaluated.repaired {
                    report.lenient_records = 1;
                    tracing::warn!(source, warnings = ?evaluated.warnings, "record evaluated after a lenient parse");
                }
                report.matches = evaluated.matches;
            }
            Err(e) => {
                report.invalid_records = 1;
                report.error = Some(DecodeError::Syntax {
                    offset: (at + e.column().saturating_sub(1)) as u64,
                    message: format!("invalid record: {e}"),
                });
            }
        }
        for m in &mut report.matches {
            m.path = DeliveryPath::EventBridge;
        }
        report
    }

    /// The matches of one record (its exact text), and whether it was repaired.
    fn evaluate(
        &self,
        bytes: &[u8],
        offset: u64,
        source: &str,
    ) -> Result<Evaluated, serde_json::Error> {
        let candidate = parse_candidate(bytes, offset, &self.fields)?;
        let matching: Vec<usize> = (0..self.rules.rules.len())
            .filter(|&i| self.rules.rules[i].matches(&candidate.record))
            .collect();
        let mut warnings = candidate.warnings;
        let mut repaired = candidate.repaired.is_some();
        if matching.is_empty() {
            return Ok(Evaluated {
                matches: Vec::new(),
                repaired,
                warnings,
            });
        }
        // Only matches need the record's text (rare: the cost is theirs): valid,
        // compact JSON, for the alert's `event` and the fingerprint. A record too
        // large for an alert that parsed strictly is fingerprinted as it is, without
        // a copy (compacting cannot shrink it below the limit by more than half).
        let text = match candidate.repaired {
            Some(text) => Some(text),
            None if bytes.len() > 2 * MAX_EVENT_BYTES => None,
            None => {
                let Repaired {
                    json,
                    warnings: repairs,
                } = repair::repair(bytes, offset);
                repaired = !repairs.is_empty();
                warnings.splice(0..0, repairs);
                Some(json)
            }
        };
        let record = candidate.record;
        let has_event_id = matches!(
            record.get("eventID"),
            Some(Value::String(_) | Value::Number(_) | Value::Bool(_))
        );
        let fingerprint = has_event_id
            .then(|| {
                let of = |json: &[u8]| crate::dedup::fingerprint_json(json).ok();
                match &text {
                    Some(text) => of(text.as_bytes()),
                    // A defect where the rules did not read: fingerprinted repaired.
                    None => of(bytes).or_else(|| of(repair::repair(bytes, offset).json.as_bytes())),
                }
            })
            .flatten();
        let raw = text
            .filter(|text| text.len() <= MAX_EVENT_BYTES)
            .and_then(|text| RawValue::from_string(text).ok());
        let event_time_ms = record
            .get("eventTime")
            .and_then(Value::as_str)
            .and_then(parse_event_time);
        let event_id = crate::rule::scalar_text(record.get("eventID"));
        let matches = matching
            .into_iter()
            .map(|rule| Match {
                rule,
                record: record.clone(),
                raw: raw.clone(),
                parse_warnings: warnings.clone(),
                source: source.to_owned(),
                offset,
                event_time_ms,
                event_id: event_id.clone(),
                fingerprint: fingerprint.clone(),
                path: DeliveryPath::S3,
            })
            .collect();
        Ok(Evaluated {
            matches,
            repaired,
            warnings,
        })
    }
}

/// What evaluating one record gave.
struct Evaluated {
    matches: Vec<Match>,
    /// The record was repaired to be evaluated (or kept).
    repaired: bool,
    /// What the parse changed or left out.
    warnings: Vec<String>,
}

/// The records of one object as the scanner delivers them.
struct Reading<'a> {
    detector: &'a Detector,
    source: &'a str,
    matches: Vec<Match>,
    invalid_records: u64,
    lenient_records: u64,
    first_invalid: Option<DecodeError>,
    /// A record over the size limit (its offset), evaluated on its head, until its
    /// end says whether it is a candidate.
    oversized: Option<(u64, Result<Evaluated, serde_json::Error>)>,
    /// Records over the limit that were candidates.
    oversized_candidates: u64,
}

impl Reading<'_> {
    fn take(&mut self, offset: u64, evaluated: Result<Evaluated, serde_json::Error>) {
        match evaluated {
            Ok(evaluated) => {
                if evaluated.repaired {
                    self.lenient_records += 1;
                    tracing::warn!(
                        object = self.source,
                        offset,
                        warnings = ?evaluated.warnings,
                        "record evaluated after a lenient parse"
                    );
                } else if !evaluated.matches.is_empty() && !evaluated.warnings.is_empty() {
                    tracing::warn!(
                        object = self.source,
                        offset,
                        warnings = ?evaluated.warnings,
                        "matching record evaluated without all of its fields"
                    );
                }
                self.matches.extend(evaluated.matches);
            }
            Err(e) => {
                self.invalid_records += 1;
                self.first_invalid.get_or_insert(DecodeError::Syntax {
                    offset: offset + e.column() as u64,
                    message: format!("invalid record: {e}"),
                });
            }
        }
    }
}

impl RecordSink for &mut Reading<'_> {
    fn candidate(&mut self, offset: u64, record: &[u8]) {
        let evaluated = self.detector.evaluate(record, offset, self.source);
        self.take(offset, evaluated);
    }

    fn oversized_head(&mut self, offset: u64, head: &[u8]) {
        // Evaluated now, on the head made whole: the record's bytes are not kept.
        let closed = repair::close_truncated(head);
        let evaluated = self.detector.evaluate(&closed, offset, self.source);
        self.oversized = Some((offset, evaluated));
    }

    fn oversized_end(&mut self, offset: u64, len: u64, candidate: bool) {
        let Some((_, evaluated)) = self.oversized.take_if(|(at, _)| *at == offset) else {
            return;
        };
        if !candidate {
            // Listed as skipped by the scanner.
            return;
        }
        self.oversized_candidates += 1;
        let limit = self.detector.limits.max_record_bytes;
        let note = format!(
            "the record is {len} bytes, over the limit of {limit}: only its first {limit} bytes were evaluated"
        );
        tracing::warn!(object = self.source, offset, "{note}");
        self.lenient_records += 1;
        let evaluated = evaluated.map(|mut evaluated| {
            evaluated.repaired = false;
            for m in &mut evaluated.matches {
                m.raw = None;
                m.parse_warnings.insert(0, note.clone());
            }
            evaluated
        });
        self.take(offset, evaluated);
    }
}

/// A candidate record ready for the rules.
struct Candidate {
    /// Its fields that the rules and the alert read.
    record: Value,
    /// What the parse repaired or left out.
    warnings: Vec<String>,
    /// The repaired, compact text, when the strict parse failed.
    repaired: Option<String>,
}

/// Strict parse first (the common case); when it fails, the repaired text, which
/// every defect another parser tolerates has been turned into valid JSON in. The
/// strict error is returned when the repair does not help: it points at the real
/// defect.
fn parse_candidate(
    bytes: &[u8],
    offset: u64,
    fields: &FieldSet,
) -> Result<Candidate, serde_json::Error> {
    let strict_error = match parse_fields(bytes, fields) {
        Ok(Selected { record, notes }) => {
            return Ok(Candidate {
                record,
                warnings: notes,
                repaired: None,
            })
        }
        Err(e) => e,
    };
    let Repaired { json, mut warnings } = repair::repair(bytes, offset);
    let Ok(Selected { record, notes }) = parse_fields(json.as_bytes(), fields) else {
        return Err(strict_error);
    };
    if warnings.is_empty() {
        // Valid JSON the strict parser still refused: say why.
        warnings.push(format!("strict parse failed: {strict_error}"));
    }
    warnings.extend(notes);
    Ok(Candidate {
        record,
        warnings,
        repaired: Some(json),
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
            report.matches[0].raw.as_ref().unwrap().get(),
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
            serde_json::from_str::<&RawValue>(lenient.raw.as_ref().unwrap().get()).unwrap();
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
        assert_eq!(report.matches[0].raw.as_ref().unwrap().get(), POSITIVE);
        assert!(report.matches[0].parse_warnings.is_empty());
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

    #[test]
    fn a_huge_list_is_not_built_and_the_event_is_left_out() {
        let zeros = vec!["0"; 300_000].join(",");
        let huge = POSITIVE.replace(
            r#""eventID":"e1""#,
            &format!(r#""eventID":"e1","requestParameters":{{"exportOnly":[{zeros}],"s3BucketName":"b"}}"#),
        );
        let doc = format!(r#"{{"Records":[{huge},{POSITIVE}]}}"#);
        let report = detector().detect(doc.as_bytes(), "t");
        assert!(report.error.is_none(), "{:?}", report.error);
        assert_eq!(report.matches.len(), 2);
        let m = &report.matches[0];
        let kept = m.record["requestParameters"]["exportOnly"]
            .as_array()
            .unwrap();
        assert_eq!(kept.len(), MAX_KEPT_VALUES);
        assert_eq!(m.record["requestParameters"]["s3BucketName"], "b");
        assert!(m.raw.is_none(), "too large for an alert's event");
        assert!(
            m.parse_warnings[0].starts_with("requestParameters.exportOnly: 299000 more values"),
            "{:?}",
            m.parse_warnings
        );
        assert!(m.fingerprint.is_some());
        assert_ne!(m.fingerprint, report.matches[1].fingerprint);
        assert!(report.matches[1].raw.is_some());
        assert_eq!(report.lenient_records, 0, "nothing was repaired");
    }

    #[test]
    fn fields_no_rule_reads_are_not_kept() {
        let doc = format!(
            r#"{{"Records":[{}]}}"#,
            POSITIVE.replace(
                r#""eventID":"e1""#,
                r#""eventID":"e1","responseElements":{"big":[1,2,3]},"tlsDetails":{"x":1}"#
            )
        );
        let report = detector().detect(doc.as_bytes(), "t");
        let record = report.matches[0].record.as_object().unwrap();
        assert!(record.get("tlsDetails").is_none());
        assert_eq!(record["responseElements"], serde_json::json!({}));
        let event: Value =
            serde_json::from_str(report.matches[0].raw.as_ref().unwrap().get()).unwrap();
        assert_eq!(event["tlsDetails"]["x"], 1, "the event is whole");
    }

    #[test]
    fn non_finite_numbers_in_a_candidate_are_repaired() {
        for defect in ["NaN", "Infinity", "-Infinity"] {
            let record = with_defect(defect);
            let doc = format!(r#"{{"Records":[{record},{POSITIVE}]}}"#);
            let report = detector().detect(doc.as_bytes(), "t");
            assert!(report.error.is_none(), "{defect}: {:?}", report.error);
            assert_eq!(report.matches.len(), 2, "{defect}");
            assert_eq!(report.lenient_records, 1);
            let m = &report.matches[0];
            assert_eq!(m.record["userAgent"], defect, "kept as its text");
            assert!(
                m.parse_warnings[0].contains(&format!("non-standard number {defect}")),
                "{:?}",
                m.parse_warnings
            );
        }
    }

    #[test]
    fn a_record_over_the_limit_alerts_on_what_its_first_bytes_hold() {
        let limits = Limits {
            max_record_bytes: 1 << 20,
            ..Limits::default()
        };
        let detector = Detector::new(RuleSet::embedded(), limits);
        let big = POSITIVE.replace(
            r#""eventID":"e1""#,
            &format!(r#""eventID":"big","userAgent":"{}""#, "x".repeat(2 << 20)),
        );
        let doc = format!(r#"{{"Records":[{big},{POSITIVE}]}}"#);
        let report = detector.detect(doc.as_bytes(), "t");
        assert!(report.error.is_none(), "{:?}", report.error);
        let ids: Vec<&str> = report.matches.iter().map(|m| m.event_id.as_str()).collect();
        assert_eq!(ids, ["big", "e1"]);
        let m = &report.matches[0];
        assert!(m.raw.is_none());
        assert!(
            m.parse_warnings[0]
                .contains("over the limit of 1048576: only its first 1048576 bytes were evaluated"),
            "{:?}",
            m.parse_warnings
        );
        assert_eq!(report.stats.oversized_records, 1);
        assert!(report.skipped.is_empty(), "a candidate is not skipped");
        assert_eq!(report.lenient_records, 1);
    }

    #[test]
    fn one_record_is_evaluated_as_in_a_log_file() {
        let detector = detector();
        let alone = detector.detect_record(format!(" \n{POSITIVE}\n").as_bytes(), "event");
        assert!(alone.error.is_none(), "{:?}", alone.error);
        let matches = alone.matches;
        assert_eq!(matches.len(), 1);
        let in_file = detector
            .detect(format!(r#"{{"Records":[{POSITIVE}]}}"#).as_bytes(), "t")
            .matches;
        assert_eq!(matches[0].fingerprint, in_file[0].fingerprint);
        assert_eq!(matches[0].record, in_file[0].record);
        assert_eq!(matches[0].source, "event");
        assert!(detector
            .detect_record(br#"{"eventName":"GetObject"}"#, "event")
            .matches
            .is_empty());
        let error = detector
            .detect_record(with_defect("tru").as_bytes(), "event")
            .error
            .unwrap();
        assert!(error.to_string().contains("invalid record"), "{error}");
        // A record without eventID has no fingerprint: it is never a redelivery.
        let anonymous = detector.detect_record(
            POSITIVE.replace(r#","eventID":"e1""#, "").as_bytes(),
            "event",
        );
        assert_eq!(anonymous.matches[0].fingerprint, None);
    }

    #[test]
    fn a_record_delivered_alone_matches_as_in_a_file() {
        let detector = detector();
        let alone = detector.detect_record(POSITIVE.as_bytes(), "eventbridge:us-east-1:x");
        let in_file = detector.detect(format!(r#"{{"Records":[{POSITIVE}]}}"#).as_bytes(), "t");
        assert!(alone.error.is_none());
        assert_eq!(alone.matches.len(), 1);
        let (a, f) = (&alone.matches[0], &in_file.matches[0]);
        assert_eq!(
            a.raw.as_ref().map(|r| r.get()),
            f.raw.as_ref().map(|r| r.get())
        );
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
}
