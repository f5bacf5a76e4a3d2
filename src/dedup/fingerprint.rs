//! Content fingerprints: a redelivery is the same record, not only the same
//! `eventID`.
//!
//! CloudTrail may deliver a record twice, and the same record reaches trailwatch
//! once as an EventBridge "AWS API Call via CloudTrail" event (`detail` is the
//! record) and minutes later in the S3 log file. Both must be recognised as one
//! record, while two different records that carry the same `eventID` (a forged or
//! reused one) must not: the second would be swallowed as a "redelivery".
//!
//! So the fingerprint covers the fields that are identical in every delivery of a
//! record and that say what happened ([`FINGERPRINT_FIELDS`]: when, which call,
//! where, by whom, from where, with which parameters and result), not the raw
//! bytes (layout, key order and escapes differ between deliveries, and fields such
//! as `eventVersion` or `tlsDetails` may too). It is the SHA-256 of the canonical
//! JSON of an object holding those fields that are present and not `null`:
//! compact, the members of every object in the byte order of their escaped names
//! (a name given twice counts once, with its last value, as in any parse), strings
//! and numbers written as `serde_json` writes them. Containers nested deeper than
//! [`MAX_EVALUATED_DEPTH`] levels (the depth the detector evaluates) are taken as
//! they are written.
//!
//! [`fingerprint`] computes it from a parsed record; [`fingerprint_json`] from the
//! record's JSON text without building it (a record may be megabytes of small
//! values): both give the same fingerprint.

use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::decode::repair::MAX_EVALUATED_DEPTH;

/// The fields a fingerprint covers, in the order they are written.
pub const FINGERPRINT_FIELDS: [&str; 11] = [
    "awsRegion",
    "errorCode",
    "eventName",
    "eventSource",
    "eventTime",
    "recipientAccountId",
    "requestID",
    "requestParameters",
    "responseElements",
    "sourceIPAddress",
    "userIdentity",
];

/// A record's content fingerprint: 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A stored fingerprint, checked to be one.
    pub fn from_hex(text: &str) -> Option<Fingerprint> {
        (text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Fingerprint(text.to_owned()))
    }

    fn of_canonical(canonical: &[u8]) -> Fingerprint {
        let digest = Sha256::digest(canonical);
        Fingerprint(digest.iter().fold(String::with_capacity(64), |mut s, b| {
            use fmt::Write;
            let _ = write!(s, "{b:02x}");
            s
        }))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The fingerprint of a parsed record (an EventBridge event's `detail`, say).
pub fn fingerprint(record: &Value) -> Fingerprint {
    let fields = FINGERPRINT_FIELDS.map(|name| {
        record.get(name).filter(|v| !v.is_null()).map(|value| {
            let mut out = Vec::new();
            write_value(value, &mut out, 0);
            out
        })
    });
    Fingerprint::of_canonical(&assemble(&fields))
}

/// The fingerprint of a record given as JSON text, without building the record;
/// the same as [`fingerprint`] of its parse. Fails where `serde_json` fails.
pub fn fingerprint_json(json: &[u8]) -> Result<Fingerprint, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let fields = serde::Deserializer::deserialize_map(&mut deserializer, TopLevel)?;
    deserializer.end()?;
    Ok(Fingerprint::of_canonical(&assemble(&fields)))
}

/// `{"name":value,...}` of the fields present.
fn assemble(fields: &[Option<Vec<u8>>; 11]) -> Vec<u8> {
    let mut out = vec![b'{'];
    for (name, value) in FINGERPRINT_FIELDS.iter().zip(fields) {
        if let Some(value) = value {
            if out.len() > 1 {
                out.push(b',');
            }
            write_string(name, &mut out);
            out.push(b':');
            out.extend_from_slice(value);
        }
    }
    out.push(b'}');
    out
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn write_scalar<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(&mut *out, value);
}

/// The canonical text of a parsed value.
fn write_value(value: &Value, out: &mut Vec<u8>, depth: usize) {
    if depth >= MAX_EVALUATED_DEPTH {
        write_scalar(value, out);
        return;
    }
    match value {
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out, depth + 1);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            let mut entries: Vec<(Vec<u8>, &Value)> = members
                .iter()
                .map(|(name, value)| {
                    let mut escaped = Vec::with_capacity(name.len() + 2);
                    write_string(name, &mut escaped);
                    (escaped, value)
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(b'{');
            for (i, (name, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(name);
                out.push(b':');
                write_value(value, out, depth + 1);
            }
            out.push(b'}');
        }
        scalar => write_scalar(scalar, out),
    }
}

/// The record's members: the fingerprint fields' canonical texts, the rest skipped.
struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = [Option<Vec<u8>>; 11];

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: [Option<Vec<u8>>; 11] = Default::default();
        while let Some(field) = map.next_key_seed(FieldName)? {
            match field {
                Some(at) => {
                    let mut out = Vec::new();
                    map.next_value_seed(Canonical {
                        out: &mut out,
                        depth: 0,
                    })?;
                    // The last occurrence wins; `null` is absent.
                    fields[at] = (out != b"null").then_some(out);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
    }
}

/// A member name of the record: which fingerprint field it is, if one.
struct FieldName;

impl<'de> DeserializeSeed<'de> for FieldName {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldName {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
        Ok(FINGERPRINT_FIELDS.iter().position(|f| *f == name))
    }
}

/// A member name, written escaped where the canonical text is being written.
struct EscapedName<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for EscapedName<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for EscapedName<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, name: &str) -> Result<(), E> {
        write_string(name, self.0);
        Ok(())
    }
}

/// Writes the canonical text of the value it reads.
struct Canonical<'a> {
    out: &'a mut Vec<u8>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Canonical<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.depth >= MAX_EVALUATED_DEPTH {
            // As written (the detector passes compact text), never built: it may
            // be large.
            let raw = <&RawValue>::deserialize(deserializer)?;
            self.out.extend_from_slice(raw.get().as_bytes());
            return Ok(());
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Canonical<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        write_scalar(&v, self.out);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        write_scalar(&v, self.out);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        write_scalar(&v, self.out);
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        // As a parsed `Value` holds it (a non-finite one would be null).
        write_scalar(&Value::from(v), self.out);
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        write_string(v, self.out);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        let mut first = true;
        loop {
            let at = self.out.len();
            if !first {
                self.out.push(b',');
            }
            let more = seq.next_element_seed(Canonical {
                out: &mut *self.out,
                depth: self.depth + 1,
            })?;
            if more.is_none() {
                self.out.truncate(at);
                break;
            }
            first = false;
        }
        self.out.push(b']');
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Members are written as they come, then put in order when they were not:
        // the spans of their text (name, whole member) are all that is kept.
        let start = self.out.len() + 1;
        self.out.push(b'{');
        let mut members: Vec<Span> = Vec::new();
        loop {
            let comma = self.out.len();
            if !members.is_empty() {
                self.out.push(b',');
            }
            let member = self.out.len();
            if map.next_key_seed(EscapedName(self.out))?.is_none() {
                self.out.truncate(comma);
                break;
            }
            let name_end = self.out.len();
            self.out.push(b':');
            map.next_value_seed(Canonical {
                out: &mut *self.out,
                depth: self.depth + 1,
            })?;
            members.push(
                Span::new(member, name_end, self.out.len()).map_err(serde::de::Error::custom)?,
            );
        }
        let in_order = members
            .windows(2)
            .all(|w| w[0].name(self.out) < w[1].name(self.out));
        if !in_order {
            let text = self.out[start..].to_vec();
            let name = |span: &Span| span.in_text(&text, start).1;
            // Stable: of equal names the last stays last, and is the one kept.
            members.sort_by(|a, b| name(a).cmp(name(b)));
            self.out.truncate(start);
            for (i, span) in members.iter().enumerate() {
                if members
                    .get(i + 1)
                    .is_some_and(|next| name(next) == name(span))
                {
                    continue;
                }
                if self.out.len() > start {
                    self.out.push(b',');
                }
                self.out.extend_from_slice(span.in_text(&text, start).0);
            }
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// Where one member's text is in the output (offsets kept small: an object may
/// have a million members).
#[derive(Clone, Copy)]
struct Span {
    from: u32,
    name_end: u32,
    to: u32,
}

impl Span {
    fn new(from: usize, name_end: usize, to: usize) -> Result<Span, &'static str> {
        let small = |at: usize| u32::try_from(at).map_err(|_| "record too large to fingerprint");
        Ok(Span {
            from: small(from)?,
            name_end: small(name_end)?,
            to: small(to)?,
        })
    }

    fn name<'a>(&self, out: &'a [u8]) -> &'a [u8] {
        &out[self.from as usize..self.name_end as usize]
    }

    /// The member's text, and its name's, in `text` (which starts at `start`).
    fn in_text<'a>(&self, text: &'a [u8], start: usize) -> (&'a [u8], &'a [u8]) {
        let (from, name_end, to) = (
            self.from as usize - start,
            self.name_end as usize - start,
            self.to as usize - start,
        );
        (&text[from..to], &text[from..name_end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn record() -> Value {
        json!({
            "eventVersion": "1.08", "eventTime": "2024-03-15T10:00:00Z", "eventSource": "rds.amazonaws.com",
            "eventName": "StartExportTask", "awsRegion": "us-east-1", "recipientAccountId": "1",
            "requestID": "r", "eventID": "e", "sourceIPAddress": "1.2.3.4",
            "userIdentity": {"type": "Root", "arn": "arn:aws:iam::1:root"},
            "requestParameters": {"s3BucketName": "b", "exportOnly": ["t1", "t2"], "n": 1.5, "k": -3},
            "responseElements": null, "tlsDetails": {"x": 1}
        })
    }

    #[test]
    fn the_same_record_laid_out_differently_has_the_same_fingerprint() {
        let record = record();
        let compact = record.to_string();
        let pretty = serde_json::to_string_pretty(&record).unwrap();
        // Keys reordered and escaped, another event version, TLS details and eventID.
        let relaid = r#"{"tlsDetails":{"y":2},"requestParameters":{"k":-3,"n":1.5,"exportOnly":["t1","t2"],"s3Bucket\u004eame":"b"},
            "userIdentity":{"arn":"arn:aws:iam::1:root","type":"Root"},"sourceIPAddress":"1.2.3.4","eventID":"other",
            "requestID":"r","recipientAccountId":"1","awsRegion":"us-east-1","eventName":"StartExportTask",
            "eventSource":"rds.amazonaws.com","eventTime":"2024-03-15T10:00:00Z","eventVersion":"1.09"}"#;
        let expected = fingerprint(&record);
        for text in [compact.as_str(), pretty.as_str(), relaid] {
            assert_eq!(
                fingerprint_json(text.as_bytes()).unwrap(),
                expected,
                "{text}"
            );
        }
        assert_eq!(expected.as_str().len(), 64);
        assert_eq!(Fingerprint::from_hex(expected.as_str()), Some(expected));
        assert_eq!(Fingerprint::from_hex("xyz"), None);
    }

    #[test]
    fn a_different_content_has_a_different_fingerprint() {
        let base = fingerprint(&record());
        for (path, value) in [
            ("/requestParameters/exportOnly/1", json!("t3")),
            ("/userIdentity/type", json!("IAMUser")),
            ("/eventTime", json!("2024-03-15T10:00:01Z")),
            ("/responseElements", json!({})),
        ] {
            let mut changed = record();
            *changed.pointer_mut(path).unwrap() = value;
            assert_ne!(fingerprint(&changed), base, "{path}");
        }
        let mut absent = record();
        absent.as_object_mut().unwrap().remove("responseElements");
        assert_eq!(fingerprint(&absent), base, "null reads as absent");
    }

    #[test]
    fn a_name_given_twice_counts_with_its_last_value() {
        let text = r#"{"eventName":"A","requestParameters":{"b":1,"a":2,"b":3},"eventName":"B"}"#;
        let parsed: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            fingerprint_json(text.as_bytes()).unwrap(),
            fingerprint(&parsed)
        );
        assert_eq!(
            fingerprint(&parsed),
            fingerprint(&json!({"eventName": "B", "requestParameters": {"a": 2, "b": 3}}))
        );
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e300f64..1e300).prop_map(Value::from),
            "[a-c\"\\\\\u{1}é]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(("[a-c\"\\\\\u{1}é]{0,3}", inner), 0..5)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Text and parsed record agree, whatever the values, names and layout
        /// (the parse of the same text: both deliveries of a record are text).
        #[test]
        fn text_and_parse_agree(fields in prop::collection::vec((prop::sample::select(FINGERPRINT_FIELDS.to_vec()), value()), 0..6)) {
            let record = Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
            let text = record.to_string();
            let parsed: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(fingerprint_json(text.as_bytes()).unwrap(), fingerprint(&parsed));
            let pretty = serde_json::to_string_pretty(&record).unwrap();
            prop_assert_eq!(fingerprint_json(pretty.as_bytes()).unwrap(), fingerprint(&parsed));
        }
    }
}
