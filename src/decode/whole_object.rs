//! Decoding a small gzip object in one call, with libdeflate, into a reused buffer.
//!
//! libdeflate decodes a whole DEFLATE stream in memory faster than any streaming
//! inflater (no window to maintain, no resumable state), but it needs all of the
//! input and room for all of the output. Most CloudTrail objects are small, so
//! [`open`] reads up to [`WHOLE_OBJECT_MAX_COMPRESSED`] bytes of the object: if it
//! ends there, the members are decoded at once into a buffer of at most
//! [`WHOLE_OBJECT_MAX_DECODED`] bytes, kept by the thread for its next object, and
//! the scanner reads from that buffer. Anything larger is streamed
//! ([`super::gzip::GzipDecoder`]; on a second thread when a core is free for it,
//! [`super::piped`]), so memory stays bounded whatever the size.
//!
//! Neither the length read nor a trailer's ISIZE is trusted: the output buffer is
//! capped, and an object that does not fit, or that libdeflate or the framing
//! rejects for any reason, is simply streamed from the bytes already read. The
//! streaming decoder then delivers the records before the damage and reports it
//! exactly as it would have without this path: this path only ever succeeds. The
//! framing between members is the streaming decoder's ([`gzip::after_member`]):
//! zero padding skipped, data that is not a member ending the object, at the same
//! offset ([`WholeObject::trailing_data`]).

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read};

use super::gzip::{self, AfterMember, GzipDecoder};
use super::DecodedStream;

/// Compressed bytes read before deciding. CloudTrail logs compress about 8.5
/// times, so an object this size decodes to about [`WHOLE_OBJECT_MAX_DECODED`].
pub const WHOLE_OBJECT_MAX_COMPRESSED: usize = 1 << 20;

/// Largest object decoded in one call. Measured on one core (`benches/RESULTS.md`),
/// with the output buffer reused from object to object: libdeflate takes 13-15%
/// less time than our streaming zlib-rs decoder on objects of 1.5 and 3.7 MB
/// decoded, 4% less at 7.4 MB, and 7% more at 18 MB, once the output no longer
/// stays in the caches while it is written (on a Zen 4 with 32 MiB of L3, objects
/// of 7 to 21 MB took the same time either way). 8 MiB keeps the gain and costs
/// the thread 9 MiB of buffers at most, well inside the 64 MiB budget.
pub const WHOLE_OBJECT_MAX_DECODED: usize = 8 << 20;

thread_local! {
    /// The compressed bytes of the last object on this thread, kept for the next.
    static COMPRESSED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The decoded bytes of the last whole object on this thread, kept for the next.
    static DECODED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static INFLATER: RefCell<Option<Inflater>> = const { RefCell::new(None) };
}

/// Opens a gzip object (its first bytes, the magic, are in `raw`'s buffer).
pub fn open<R: Read>(mut raw: BufReader<R>) -> DecodedStream<R> {
    let mut prefix = COMPRESSED.with(|spare| std::mem::take(&mut *spare.borrow_mut()));
    prefix.clear();
    let mut pending_error = None;
    // One byte past the cut-off tells "larger" from "ends there". The reads go
    // straight into `prefix` (the reader's buffer is bypassed once it is drained),
    // so the compressed bytes are copied once.
    let limit = WHOLE_OBJECT_MAX_COMPRESSED as u64 + 1;
    if let Err(e) = raw.by_ref().take(limit).read_to_end(&mut prefix) {
        // Reported when the stream reaches it, after the bytes before it (which
        // `read_to_end` keeps).
        pending_error = Some(e);
    }
    let ended = pending_error.is_none() && prefix.len() <= WHOLE_OBJECT_MAX_COMPRESSED;
    if ended {
        let mut decoded = DECODED.with(|spare| std::mem::take(&mut *spare.borrow_mut()));
        if let Some(done) = decode_members(&prefix, &mut decoded) {
            COMPRESSED.with(|spare| *spare.borrow_mut() = prefix);
            return DecodedStream::Whole(WholeObject {
                decoded,
                len: done.len,
                pos: 0,
                trailing_at: done.trailing_at,
            });
        }
        DECODED.with(|spare| *spare.borrow_mut() = decoded);
    } else {
        // Too large to decode whole (or its read failed): streamed, on a second
        // thread when a core is free for it. A small object libdeflate refused
        // stays on this thread, where its error is found at once.
        match super::piped::PipedDecoder::start(prefix, pending_error, raw) {
            Ok(piped) => return DecodedStream::Piped(Box::new(piped)),
            Err(parts) => (prefix, pending_error, raw) = parts,
        }
    }
    DecodedStream::Gzip(Box::new(GzipDecoder::new(Prefixed {
        prefix,
        pos: 0,
        pending_error,
        rest: raw,
    })))
}

fn decode_members(input: &[u8], out: &mut Vec<u8>) -> Option<Decoded> {
    decode_in_memory(input, out, WHOLE_OBJECT_MAX_DECODED)
}

/// What [`decode_in_memory`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Decoded bytes, at the start of the output buffer.
    pub len: usize,
    /// Offset of the data after the last member that is not a member (ignored).
    pub trailing_at: Option<u64>,
}

/// Decodes every member of `input` into `out` (grown as needed, up to `max`
/// bytes), or `None` when the object must be streamed instead. Public for the
/// decode-only benchmark, which measures libdeflate uncapped.
pub fn decode_in_memory(input: &[u8], out: &mut Vec<u8>, max: usize) -> Option<Decoded> {
    // A single member's ISIZE is its decoded length (mod 4 GiB): the first guess
    // for the buffer. A lie costs a retry with the largest buffer, no more.
    let last_isize = input
        .len()
        .checked_sub(4)
        .map(|at| u32::from_le_bytes([input[at], input[at + 1], input[at + 2], input[at + 3]]));
    let last_isize = last_isize? as usize;
    if last_isize > max {
        // Most likely true (one member): not worth a try that would run out of room.
        return None;
    }
    let guess = last_isize.max(1);
    if out.len() < guess {
        out.resize(guess, 0);
    }
    INFLATER.with(|cell| {
        let mut cell = cell.borrow_mut();
        let inflater = match cell.as_mut() {
            Some(inflater) => inflater,
            None => cell.insert(Inflater::new()?),
        };
        let mut rest = input;
        let mut produced = 0;
        let mut magic_read = 0;
        loop {
            gzip::read_header(&mut rest, magic_read).ok()?;
            let (used, written) = loop {
                match inflater.inflate(rest, &mut out[produced..]) {
                    Inflated::Done { used, written } => break (used, written),
                    Inflated::NoRoom if out.len() < max => {
                        let grown = out.len().saturating_mul(2).clamp(guess, max);
                        out.resize(grown, 0);
                    }
                    Inflated::NoRoom | Inflated::Bad => return None,
                }
            };
            rest = &rest[used..];
            let trailer: [u8; 8] = rest.get(..8)?.try_into().ok()?;
            rest = &rest[8..];
            let crc = crc32fast::hash(&out[produced..produced + written]);
            gzip::check_trailer(trailer, crc, written as u64).ok()?;
            produced += written;
            let member_end = (input.len() - rest.len()) as u64;
            match gzip::after_member(&mut rest).ok()? {
                AfterMember::Member { magic_read: read } => magic_read = read,
                AfterMember::End => {
                    return Some(Decoded {
                        len: produced,
                        trailing_at: None,
                    })
                }
                AfterMember::Trailing => {
                    return Some(Decoded {
                        len: produced,
                        trailing_at: Some(member_end),
                    })
                }
            }
        }
    })
}

/// A gzip object decoded in memory; the buffer goes back to the thread when the
/// object is done with.
pub struct WholeObject {
    decoded: Vec<u8>,
    len: usize,
    pos: usize,
    trailing_at: Option<u64>,
}

impl WholeObject {
    /// Offset in the object of the data after the last member that is not a
    /// member (ignored), if any.
    pub fn trailing_data(&self) -> Option<u64> {
        self.trailing_at
    }

    /// The decoded bytes, all of them.
    pub fn bytes(&self) -> &[u8] {
        &self.decoded[..self.len]
    }

    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.len - self.pos);
        buf[..n].copy_from_slice(&self.decoded[self.pos..self.pos + n]);
        self.pos += n;
        n
    }
}

impl Drop for WholeObject {
    fn drop(&mut self) {
        let decoded = std::mem::take(&mut self.decoded);
        DECODED.with(|spare| *spare.borrow_mut() = decoded);
    }
}

/// The compressed bytes already read, then the rest of the object: what the
/// streaming decoder reads when the whole-object path does not apply.
pub struct Prefixed<R> {
    prefix: Vec<u8>,
    pos: usize,
    /// A read error met while reading the prefix, returned once the prefix is used.
    pending_error: Option<io::Error>,
    rest: BufReader<R>,
}

impl<R: Read> Read for Prefixed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        super::read_through_buffer(self, buf)
    }
}

impl<R: Read> BufRead for Prefixed<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos < self.prefix.len() {
            return Ok(&self.prefix[self.pos..]);
        }
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        self.rest.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if self.pos < self.prefix.len() {
            self.pos = (self.pos + amount).min(self.prefix.len());
        } else {
            self.rest.consume(amount);
        }
    }
}

impl<R> Drop for Prefixed<R> {
    fn drop(&mut self) {
        let prefix = std::mem::take(&mut self.prefix);
        COMPRESSED.with(|spare| *spare.borrow_mut() = prefix);
    }
}

enum Inflated {
    Done { used: usize, written: usize },
    NoRoom,
    Bad,
}

/// A libdeflate decompressor. The `libdeflater` wrapper does not expose
/// `libdeflate_deflate_decompress_ex`, which reports the input consumed: without
/// it a member's end, and so a multi-member object, cannot be found.
struct Inflater(std::ptr::NonNull<libdeflate_sys::libdeflate_decompressor>);

impl Inflater {
    fn new() -> Option<Inflater> {
        // SAFETY: no preconditions; a null result (out of memory) is handled.
        let raw = unsafe { libdeflate_sys::libdeflate_alloc_decompressor() };
        std::ptr::NonNull::new(raw).map(Inflater)
    }

    /// Decodes the raw DEFLATE stream at the start of `input` into `out`.
    fn inflate(&mut self, input: &[u8], out: &mut [u8]) -> Inflated {
        let (mut used, mut written) = (0usize, 0usize);
        // SAFETY: the pointers and lengths describe live slices that libdeflate
        // only reads (`input`) or writes within bounds (`out`), and the
        // decompressor is ours alone (`&mut self`).
        let result = unsafe {
            libdeflate_sys::libdeflate_deflate_decompress_ex(
                self.0.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out.as_mut_ptr().cast(),
                out.len(),
                &mut used,
                &mut written,
            )
        };
        match result {
            libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS => {
                Inflated::Done { used, written }
            }
            libdeflate_sys::libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => Inflated::NoRoom,
            _ => Inflated::Bad,
        }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: allocated by libdeflate_alloc_decompressor, freed once.
        unsafe { libdeflate_sys::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::test_gzip as gzip;

    fn read_all<R: Read>(stream: &mut DecodedStream<R>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 1000];
        loop {
            match stream.read_decoded(&mut buf).unwrap() {
                0 => return out,
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// The bytes a stream delivers before it fails, and the failure; a stream that
    /// ends cleanly fails the test.
    fn read_to_error<R: Read>(
        stream: &mut DecodedStream<R>,
    ) -> (Vec<u8>, super::super::DecodeError) {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 4096];
        loop {
            match stream.read_decoded(&mut buf) {
                Ok(0) => panic!("the stream must fail, not end"),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (out, e),
            }
        }
    }

    fn open_slice(bytes: &[u8]) -> DecodedStream<&[u8]> {
        open(BufReader::new(bytes))
    }

    #[test]
    fn small_objects_are_decoded_whole_and_multi_member_ones_too() {
        let one = b"{\"Records\":[{\"eventName\":\"StartExportTask\"}]}".repeat(50);
        let mut object = gzip(&one);
        let mut stream = open_slice(&object);
        assert!(matches!(stream, DecodedStream::Whole(_)));
        assert_eq!(read_all(&mut stream), one);
        drop(stream);
        object.extend(gzip(b"second"));
        object.extend([0u8; 16]);
        let mut stream = open_slice(&object);
        assert!(matches!(stream, DecodedStream::Whole(_)));
        let mut expected = one.clone();
        expected.extend(b"second");
        assert_eq!(read_all(&mut stream), expected);
        assert_eq!(stream.trailing_data(), None);
    }

    #[test]
    fn both_paths_skip_padding_and_report_trailing_data_at_the_same_offset() {
        let one = b"{\"Records\":[{\"eventName\":\"StartExportTask\"}]}".repeat(50);
        let first = gzip(&one);
        let mut object = first.clone();
        object.extend([0u8; 5]);
        object.extend(gzip(b"second"));
        let member_end = object.len() as u64;
        // (Small last bytes: the whole-object path guesses its buffer from them.)
        object.extend(b"\x00\x00not a member\x00\x00\x00\x00");
        let mut expected = one.clone();
        expected.extend(b"second");
        let mut whole = open_slice(&object);
        assert!(matches!(whole, DecodedStream::Whole(_)));
        assert_eq!(read_all(&mut whole), expected);
        assert_eq!(whole.trailing_data(), Some(member_end));
        let mut streamed: DecodedStream<&[u8]> =
            DecodedStream::Gzip(Box::new(GzipDecoder::new(Prefixed {
                prefix: Vec::new(),
                pos: 0,
                pending_error: None,
                rest: BufReader::new(&object[..]),
            })));
        assert_eq!(read_all(&mut streamed), expected);
        assert_eq!(streamed.trailing_data(), Some(member_end));
    }

    #[test]
    fn a_lying_isize_falls_back_to_a_bigger_buffer() {
        let text = b"0123456789".repeat(10_000);
        let mut object = gzip(&text);
        let n = object.len();
        // A tiny ISIZE first guess: the member does not fit, the retry does; the
        // trailer is then wrong, so the object is streamed and reported corrupt.
        object[n - 4..].copy_from_slice(&3u32.to_le_bytes());
        let mut decoded = Vec::new();
        assert_eq!(decode_members(&object, &mut decoded), None);
        assert!(decoded.len() >= text.len(), "the buffer grew for the retry");
        let mut stream = open_slice(&object);
        assert!(matches!(stream, DecodedStream::Gzip(_)));
        let mut buf = vec![0u8; 1 << 20];
        let mut failed = false;
        for _ in 0..10 {
            match stream.read_decoded(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    assert!(e.to_string().starts_with("gzip stream is corrupt"), "{e}");
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed);
    }

    #[test]
    fn an_isize_above_the_cap_is_streamed_without_a_try() {
        let mut object = gzip(b"{}");
        let n = object.len();
        object[n - 4..].copy_from_slice(&((WHOLE_OBJECT_MAX_DECODED as u32) + 1).to_le_bytes());
        let mut decoded = Vec::new();
        assert_eq!(decode_members(&object, &mut decoded), None);
        assert!(decoded.is_empty(), "no buffer was allocated for it");
        assert!(matches!(open_slice(&object), DecodedStream::Gzip(_)));
    }

    #[test]
    fn an_object_above_the_cap_streams() {
        // Incompressible bytes, more of them than the compressed cap.
        let mut state = 1u64;
        let text: Vec<u8> = (0..WHOLE_OBJECT_MAX_COMPRESSED + 4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let object = gzip(&text);
        assert!(object.len() > WHOLE_OBJECT_MAX_COMPRESSED);
        let mut stream = open_slice(&object);
        // Streamed: on this thread, or on a second one when a core is free.
        assert!(matches!(
            stream,
            DecodedStream::Gzip(_) | DecodedStream::Piped(_)
        ));
        assert_eq!(read_all(&mut stream), text);
    }

    #[test]
    fn damaged_small_objects_stream_and_keep_the_bytes_before_the_damage() {
        let text = b"{\"eventName\":\"GetObject\"},".repeat(4000);
        let whole = gzip(&text);
        let truncated = &whole[..whole.len() * 3 / 4];
        let mut stream = open_slice(truncated);
        assert!(matches!(stream, DecodedStream::Gzip(_)));
        let (out, error) = read_to_error(&mut stream);
        assert!(!out.is_empty(), "bytes before the cut are delivered");
        assert!(error
            .to_string()
            .starts_with("gzip stream is corrupt or truncated"));
    }

    /// Yields its bytes at most 1000 at a time, `Interrupted` on the second read,
    /// then ends, or fails with a reset connection.
    struct Trickle<'a> {
        bytes: &'a [u8],
        reads: usize,
        fails: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            if self.reads == 2 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            if self.bytes.is_empty() && self.fails {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
            }
            let n = self.bytes.len().min(buf.len()).min(1000);
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    fn an_interrupted_read_still_decodes_a_small_object_whole() {
        let text = b"{\"eventName\":\"GetObject\"},".repeat(4000);
        let object = gzip(&text);
        let reader = Trickle {
            bytes: &object,
            reads: 0,
            fails: false,
        };
        let mut stream = open(BufReader::with_capacity(64, reader));
        assert!(matches!(stream, DecodedStream::Whole(_)));
        assert_eq!(read_all(&mut stream), text);
    }

    #[test]
    fn a_read_error_in_a_small_object_comes_after_the_bytes_before_it() {
        let text = b"{\"eventName\":\"GetObject\"},".repeat(4000);
        let object = gzip(&text);
        let reader = Trickle {
            bytes: &object[..object.len() / 2],
            reads: 0,
            fails: true,
        };
        let mut stream = open(BufReader::with_capacity(64, reader));
        assert!(matches!(
            stream,
            DecodedStream::Gzip(_) | DecodedStream::Piped(_)
        ));
        let (out, error) = read_to_error(&mut stream);
        assert!(!out.is_empty() && text.starts_with(&out));
        assert!(
            matches!(&error, super::super::DecodeError::Io(e) if e.kind() == io::ErrorKind::ConnectionReset),
            "{error}"
        );
    }
}
