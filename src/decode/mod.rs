//! Byte stream -> records.
//!
//! A CloudTrail object is gzip (possibly multi-member) or plain JSON, recognised by
//! its magic bytes, never by its name. It is decompressed ([`gzip`]; small objects
//! in one call, [`whole_object`]) into a reused buffer, and [`scanner`] splits the `Records` array into records without building
//! a document: only records that contain one of the rules' literal needles (or any
//! JSON escape that could spell one) are handed on to be parsed. Memory stays
//! bounded by the largest single record, whatever the object's size.

pub mod gzip;
pub mod piped;
pub mod prefilter;
pub mod reference;
pub mod repair;
pub mod scanner;
pub mod whole_object;

use std::io::{BufRead, BufReader, Read};

pub use prefilter::Prefilter;
pub use scanner::{
    scan_into, scan_records, scan_records_observed, DecodedObserver, RecordSink, ScanOutcome,
    ScanStats, DECODED_BUFFER,
};

/// Size limits that protect the process from hostile or broken objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Decompressed bytes allowed per object (gzip bomb guard).
    pub max_decompressed_bytes: u64,
    /// Bytes allowed for one record (and for the root-level text around `Records`).
    pub max_record_bytes: usize,
}

/// 4 GiB: larger than any CloudTrail delivery, small enough to stop a bomb.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: u64 = 4 << 30;
/// CloudTrail events are far below 1 MiB; 16 MiB leaves room and bounds memory.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 16 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

/// How an object was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gzip,
    PlainJson,
}

/// Why an object could not be read to the end. Records delivered before the error
/// have already been processed; the caller names the object.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("gzip stream is corrupt or truncated: {0}")]
    Gzip(std::io::Error),
    #[error("empty object")]
    Empty,
    #[error("not gzip and not JSON (first byte 0x{0:02x})")]
    NotJson(u8),
    #[error(
        "decompressed size exceeds the limit of {limit} bytes (TRAILWATCH_MAX_DECOMPRESSED_BYTES)"
    )]
    TooLarge { limit: u64 },
    #[error("a record at byte {offset} is larger than the limit of {limit} bytes")]
    RecordTooLarge { offset: u64, limit: usize },
    #[error("invalid JSON at byte {offset}: {message}")]
    Syntax { offset: u64, message: String },
    #[error("truncated JSON: the document ends inside {context}")]
    Truncated { context: &'static str },
}

/// A part of an object that was skipped, and why: reported (logged with the object's
/// name, and counted), never fatal, so that it costs no record around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// Data after the last gzip member that is not a member, from compressed byte
    /// `at` (what `gzip -d` reports as "trailing garbage ignored").
    TrailingData { at: u64 },
    /// A record without a needle larger than the record limit.
    OversizedRecord { offset: u64, len: u64, limit: usize },
    /// A scalar element of `Records`, or a root-level member, that is not valid JSON.
    InvalidElement { offset: u64, message: String },
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skipped::TrailingData { at } => write!(
                f,
                "data after the last gzip member (from compressed byte {at}) is not a gzip member: ignored, the members before it were read"
            ),
            Skipped::OversizedRecord { offset, len, limit } => write!(
                f,
                "record at byte {offset} ({len} bytes) is larger than the limit of {limit} bytes and is not a candidate: skipped"
            ),
            Skipped::InvalidElement { offset, message } => {
                write!(f, "byte {offset}: {message}: skipped")
            }
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";
/// Compressed bytes read from the source at a time.
const INPUT_BUFFER: usize = 256 << 10;

/// Sniffs the encoding and returns a reader of the decoded JSON bytes.
///
/// gzip errors are reported as [`DecodeError::Gzip`] by the scanner, which knows the
/// reader it gets is a decompressor (see [`DecodedStream`]).
pub fn open_stream<R: Read>(raw: R) -> Result<DecodedStream<R>, DecodeError> {
    let mut raw = BufReader::with_capacity(INPUT_BUFFER, raw);
    let head = loop {
        match raw.fill_buf() {
            Ok(head) => break head,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DecodeError::Io(e)),
        }
    };
    if head.is_empty() {
        return Err(DecodeError::Empty);
    }
    if head.starts_with(&GZIP_MAGIC) || head == &GZIP_MAGIC[..1] {
        return Ok(whole_object::open(raw));
    }
    // A UTF-8 byte-order mark before a plain JSON document (editors and some
    // exporters write one) is not part of the JSON text: RFC 8259 §8.1 lets a
    // parser ignore it. It is looked for in the first buffered read (up to 256 KiB
    // of a file or S3 body; only a pipe trickling fewer than three bytes could hide it).
    if head.starts_with(UTF8_BOM) {
        raw.consume(UTF8_BOM.len());
    }
    Ok(DecodedStream::Plain(raw))
}

/// The decoded byte stream of one object.
pub enum DecodedStream<R: Read> {
    /// Streamed gzip. Boxed: the decoder's state is large, and one allocation per
    /// object is nothing next to decompressing it.
    Gzip(Box<gzip::GzipDecoder<whole_object::Prefixed<R>>>),
    /// Streamed gzip decoded on a second thread ([`piped`]).
    Piped(Box<piped::PipedDecoder<R>>),
    /// A small gzip object, decoded in memory ([`whole_object`]).
    Whole(whole_object::WholeObject),
    Plain(BufReader<R>),
}

impl<R: Read> DecodedStream<R> {
    pub fn encoding(&self) -> Encoding {
        match self {
            DecodedStream::Gzip(_) | DecodedStream::Piped(_) | DecodedStream::Whole(_) => {
                Encoding::Gzip
            }
            DecodedStream::Plain(_) => Encoding::PlainJson,
        }
    }

    /// Once the stream has ended: the offset in the object of data after the last
    /// gzip member that is not a member, which was ignored (see [`gzip`]).
    pub fn trailing_data(&self) -> Option<u64> {
        match self {
            DecodedStream::Gzip(gz) => gz.trailing_data(),
            DecodedStream::Piped(piped) => piped.trailing_data(),
            DecodedStream::Whole(whole) => whole.trailing_data(),
            DecodedStream::Plain(_) => None,
        }
    }

    /// Reads decoded bytes, classifying failures (a gzip reader's `InvalidInput`,
    /// `InvalidData` and `UnexpectedEof` mean a corrupt or truncated stream).
    pub fn read_decoded(&mut self, buf: &mut [u8]) -> Result<usize, DecodeError> {
        loop {
            let result = match self {
                DecodedStream::Gzip(gz) => gz.read(buf),
                DecodedStream::Piped(piped) => piped.read(buf),
                DecodedStream::Whole(whole) => Ok(whole.read(buf)),
                DecodedStream::Plain(plain) => plain.read(buf),
            };
            return match result {
                Ok(n) => Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(self, DecodedStream::Gzip(_) | DecodedStream::Piped(_))
                        && matches!(
                            e.kind(),
                            std::io::ErrorKind::InvalidInput
                                | std::io::ErrorKind::InvalidData
                                | std::io::ErrorKind::UnexpectedEof
                        ) =>
                {
                    Err(DecodeError::Gzip(e))
                }
                Err(e) => Err(DecodeError::Io(e)),
            };
        }
    }
}

/// `Read::read` for a reader whose own buffer is the source of truth: copy what
/// `fill_buf` holds, then consume it.
fn read_through_buffer(reader: &mut impl BufRead, buf: &mut [u8]) -> std::io::Result<usize> {
    let available = reader.fill_buf()?;
    let n = available.len().min(buf.len());
    buf[..n].copy_from_slice(&available[..n]);
    reader.consume(n);
    Ok(n)
}

/// One gzip member of `bytes` (flate2's encoder, fast level), for the decoder tests.
#[cfg(test)]
pub(crate) fn test_gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("writing to a Vec");
    encoder.finish().expect("finishing into a Vec")
}
