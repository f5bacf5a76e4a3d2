//! The reference decoder: a full `serde_json` parse of the whole document.
//!
//! Slow and memory-hungry by design (it holds the decoded document), it is the
//! oracle the streaming [`scanner`](super::scanner) is tested against: for every
//! valid document both must yield the same records and counts, and so the same
//! alerts.

use std::fmt;
use std::io::Read;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{open_stream, DecodeError};

/// What a full parse found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FullParse {
    /// Object elements of every root-level `Records` array, in order.
    pub records: Vec<Value>,
    pub non_object_records: u64,
    pub records_arrays: u64,
    pub records_not_array: u64,
}

/// Decodes and parses a whole object.
pub fn parse_all<R: Read>(raw: R) -> Result<FullParse, DecodeError> {
    let mut stream = open_stream(raw)?;
    let mut bytes = Vec::new();
    let mut chunk = vec![0; 64 << 10];
    loop {
        let n = stream.read_decoded(&mut chunk)?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    parse_document(&bytes)
}

/// Parses decoded JSON bytes.
pub fn parse_document(bytes: &[u8]) -> Result<FullParse, DecodeError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(DecodeError::Empty),
        Some(b'{' | b'[') => {}
        Some(&other) => return Err(DecodeError::NotJson(other)),
    }
    let mut out = FullParse::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    RootSeed(&mut out)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| DecodeError::Syntax {
            offset: 0,
            message: e.to_string(),
        })?;
    Ok(out)
}

struct RootSeed<'a>(&'a mut FullParse);

impl<'de> DeserializeSeed<'de> for RootSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RootSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON document")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "Records" {
                map.next_value_seed(RecordsSeed(self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

struct RecordsSeed<'a>(&'a mut FullParse);

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the Records value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.records_arrays += 1;
        while let Some(element) = seq.next_element::<Value>()? {
            if element.is_object() {
                self.0.records.push(element);
            } else {
                self.0.non_object_records += 1;
            }
        }
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.0.records_not_array += 1;
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.0.records_not_array += 1;
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.0.records_not_array += 1;
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.0.records_not_array += 1;
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.0.records_not_array += 1;
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        self.0.records_not_array += 1;
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.records_not_array += 1;
        Ok(())
    }
}
