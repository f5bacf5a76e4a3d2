//! Splits a decoded CloudTrail document into records without parsing them: the
//! record splitter's state machine.
//!
//! The scanner tracks JSON structure exactly (strings, escapes, nesting) 64 bytes at
//! a time with bit masks, the technique of simdjson's first stage: one mask for
//! quotes, one for backslashes, one for `{`/`[` and one for `}`/`]`, computed with
//! SIMD compares by a [`kernel`]; escaped quotes are removed with carry arithmetic
//! and a prefix XOR turns quotes into an "inside a string" mask. Brackets outside strings
//! change the depth; only the transitions at the top three levels (root object,
//! `Records` array, record) are looked at one by one, so the cost per byte is a
//! handful of word operations. A block with no bracket outside a string, or whose
//! brackets all stay below the record level, costs no more than its masks. The
//! text between the containers at the top levels (member names, scalar elements)
//! is read by the root-level lexer in module `root`.
//!
//! Meanwhile the [`Prefilter`] searches each decoded buffer for its literal needles
//! (one `memmem` pass per buffer, not per record), and the block loop turns the hits,
//! plus every escaped `u` (and `/` when a needle has one), into "the latest hit so
//! far". A record (an object element of a root-level `Records` array) with a hit
//! between its braces is a candidate and is handed to the caller as its exact byte
//! range, to be parsed in full. Every other record is counted and dropped. The
//! structure is checked (balanced and matching brackets, terminated strings, one
//! root value, root-level members); the tokens inside non-candidate records are not
//! validated, which is the point: that is where the time goes.
//!
//! Needles split across reads: each search overlaps the previous one by a needle's
//! length, and the block loop stays that far behind the decoded end until the
//! stream ends, so every hit is known before the loop reaches its block. Escapes
//! need no such care: the escape state is carried from block to block.
//!
//! The mask computation is the inner loop; [`dispatch`] runs it with the AVX-512 or
//! AVX2 kernel (picked at run time) or the baseline SSE2 / NEON / portable one.
//! They all give the same masks, and the tests check each against the obvious loop.
//!
//! Memory: one read buffer (256 KiB, reused by the next object on the same thread)
//! that only grows when a single record does not fit, up to
//! [`Limits::max_record_bytes`], and the needle positions not yet passed. Nothing
//! is kept per record. An object decoded whole is scanned in its own buffer,
//! without the read buffer (module `feed`).
//!
//! A bad part never costs the records around it. A record larger than the limit is
//! not kept: its first `max_record_bytes` are handed to the sink
//! ([`RecordSink::oversized_head`]), the rest streams past, structure still
//! tracked, and the scan goes on after it; one without a needle is skipped and
//! counted. A scalar element of `Records` or root-level member value that is not
//! valid JSON (`NaN`, a lone surrogate, a raw control character) is skipped and
//! counted. Each is listed in [`ScanOutcome::skipped`]. When the stream fails,
//! the bytes decoded before the failure are still scanned to the end.

mod feed;
mod kernel;
mod root;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::io::Read;

use kernel::Kernel;
use root::syntax;

use super::{DecodeError, DecodedStream, Limits, Prefilter, Skipped};

/// Counts from one object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Bytes after decompression.
    pub decoded_bytes: u64,
    /// Object elements of `Records` arrays.
    pub records: u64,
    /// Records handed on to be parsed (they contain a needle).
    pub candidates: u64,
    /// Elements of `Records` that are not objects (skipped).
    pub non_object_records: u64,
    /// `Records` arrays found (0 means the JSON has no `Records`).
    pub records_arrays: u64,
    /// `Records` members whose value is not an array (skipped).
    pub records_not_array: u64,
    /// Records larger than [`Limits::max_record_bytes`] (included in `records`).
    pub oversized_records: u64,
    /// Scalar elements of `Records` and root-level member values that are not
    /// valid JSON (skipped; the elements are included in `non_object_records`).
    pub invalid_elements: u64,
    /// The gzip object has data after its last member that is not a member.
    pub trailing_data: bool,
}

/// Everything a scan produced: its counts and, if the object could not be read to
/// the end, why. Candidates before the error were delivered.
#[derive(Debug)]
pub struct ScanOutcome {
    pub stats: ScanStats,
    pub error: Option<DecodeError>,
    /// The parts skipped (at most [`MAX_SKIPPED_LISTED`]; the counts have them all).
    pub skipped: Vec<Skipped>,
}

/// Skipped parts listed per object: enough to find them, bounded whatever the input.
pub const MAX_SKIPPED_LISTED: usize = 16;

/// Where the scanner delivers records. A closure `FnMut(offset, bytes)` is a sink
/// of candidates that ignores records over the size limit.
pub trait RecordSink {
    /// A candidate record (it holds a needle), whole, at `offset` of the decoded object.
    fn candidate(&mut self, offset: u64, record: &[u8]);

    /// The first `head.len()` (the size limit) bytes of a record that is larger
    /// than the limit. Its end follows ([`RecordSink::oversized_end`]) unless the
    /// object ends first.
    fn oversized_head(&mut self, _offset: u64, _head: &[u8]) {}

    /// The end of the record announced by `oversized_head`: its length, and
    /// whether it is a candidate. One that is not is also listed as skipped.
    fn oversized_end(&mut self, _offset: u64, _len: u64, _candidate: bool) {}
}

impl<F: FnMut(u64, &[u8])> RecordSink for F {
    fn candidate(&mut self, offset: u64, record: &[u8]) {
        self(offset, record)
    }
}

/// The read size. Large enough that per-read costs (a decoder call, a `memmem`
/// call, the partial block carried over) vanish, small enough that the freshly
/// decoded bytes are still in the L2 cache when the scanner and the needle search
/// read them.
pub const DECODED_BUFFER: usize = 256 << 10;
const BLOCK: usize = 64;

thread_local! {
    /// The read buffer of the last object scanned on this thread. Reusing it spares
    /// each object the page faults of a fresh allocation, which matter when a scan
    /// reads thousands of small objects.
    static SPARE_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Decodes `raw` (gzip or plain JSON) and calls `on_candidate(offset, bytes)` for each
/// record that may match, in document order (records over the size limit are
/// skipped and listed).
pub fn scan_records<R: Read>(
    raw: R,
    prefilter: &Prefilter,
    limits: &Limits,
    on_candidate: impl FnMut(u64, &[u8]),
) -> ScanOutcome {
    scan_into(raw, prefilter, limits, on_candidate)
}

/// [`scan_records`] with every kind of record delivery (see [`RecordSink`]).
pub fn scan_into<R: Read>(
    raw: R,
    prefilter: &Prefilter,
    limits: &Limits,
    sink: impl RecordSink,
) -> ScanOutcome {
    scan_with(kernel::Choice::from_env(), raw, prefilter, limits, sink)
}

/// Sees the decoded bytes of an object, in order, one read at a time.
pub type DecodedObserver<'a> = &'a mut dyn FnMut(&[u8]);

/// [`scan_into`], also handing every decoded byte, in order, to `observe`
/// (once per read, about 256 KiB): the SHA-256 of a log file's uncompressed content
/// that CloudTrail's digests list. Meaningful only when the outcome has no error.
pub fn scan_records_observed<'a, R: Read>(
    raw: R,
    prefilter: &'a Prefilter,
    limits: &'a Limits,
    observe: DecodedObserver<'a>,
    sink: impl RecordSink,
) -> ScanOutcome {
    let kernel = kernel::Choice::from_env();
    scan_observed(kernel, raw, prefilter, limits, Some(observe), sink)
}

fn scan_with<R: Read>(
    kernel: kernel::Choice,
    raw: R,
    prefilter: &Prefilter,
    limits: &Limits,
    sink: impl RecordSink,
) -> ScanOutcome {
    scan_observed(kernel, raw, prefilter, limits, None, sink)
}

fn scan_observed<'a, R: Read>(
    kernel: kernel::Choice,
    raw: R,
    prefilter: &'a Prefilter,
    limits: &'a Limits,
    observe: Option<DecodedObserver<'a>>,
    sink: impl RecordSink,
) -> ScanOutcome {
    let _busy = super::piped::Busy::scan();
    let mut scanner = Scanner::new(prefilter, limits, sink);
    scanner.kernel = kernel;
    scanner.observe = observe;
    let mut trailing_at = None;
    let error = match super::open_stream(raw) {
        // Decoded in memory already: scanned where it lies.
        Ok(DecodedStream::Whole(whole)) => {
            trailing_at = whole.trailing_data();
            scanner.run_in_place(whole.bytes()).err()
        }
        Ok(mut stream) => {
            let mut buf = SPARE_BUFFER.with(|spare| std::mem::take(&mut *spare.borrow_mut()));
            if buf.len() != DECODED_BUFFER {
                buf = vec![0; DECODED_BUFFER];
            }
            let error = scanner.run(&mut stream, &mut buf).err();
            trailing_at = stream.trailing_data();
            // A buffer that grew for a huge record is dropped, not kept: memory
            // stays bounded by what the current object needs.
            if buf.len() == DECODED_BUFFER {
                SPARE_BUFFER.with(|spare| *spare.borrow_mut() = buf);
            }
            error
        }
        Err(e) => Some(e),
    };
    if let Some(at) = trailing_at {
        scanner.stats.trailing_data = true;
        scanner.skip(Skipped::TrailingData { at });
    }
    ScanOutcome {
        stats: scanner.stats,
        error,
        skipped: scanner.skipped,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    NotYet,
    Object,
    Array,
    Closed,
}

/// The scan state. The decoded bytes live in a buffer owned by [`Scanner::run`] and
/// passed to the methods as `buf`: `buf[0]` is stream offset `base`, and
/// `buf[..filled]` is valid.
struct Scanner<'a, F> {
    prefilter: &'a Prefilter,
    limits: &'a Limits,
    sink: F,
    /// Sees every decoded byte, when a caller hashes them (off by default).
    observe: Option<DecodedObserver<'a>>,
    stats: ScanStats,
    skipped: Vec<Skipped>,

    base: u64,
    filled: usize,
    /// The state carried from block to block.
    carry: Carry,
    /// The mask kernel (the best available, unless a test asks for one).
    kernel: kernel::Choice,
    /// Stream offset up to which needles have been searched.
    searched: u64,
    /// Literal needle positions (stream offsets, increasing) not yet reached by the
    /// block loop: `hits[next_hit..]`.
    hits: Vec<u64>,
    next_hit: usize,
    /// Escaped bytes that are hits: `u`, and `/` when a needle contains one.
    escaped_slash: bool,
    /// Blocks are not scanned closer than this to the end of the decoded bytes
    /// until the end of the stream, so that every needle starting in a scanned
    /// block has been searched in full.
    lookahead: usize,

    /// Bracket of each of the top three levels (root, `Records`, record), to check
    /// that closers match there; deeper levels are only counted.
    open_brackets: [u8; 3],
    root: Root,
    /// Start of the root-level text not yet parsed (members between containers).
    members_from: u64,
    in_records: bool,
    /// Start of the text between the current and the previous record.
    gap_from: u64,
    /// Start of the record being scanned, when inside one.
    record_from: Option<u64>,
    /// Start of the record being scanned when it is larger than the limit (its
    /// bytes are not kept).
    oversized_from: Option<u64>,
}

/// Depth of the records' contents: brackets at or below it only change the depth.
const RECORD_DEPTH: usize = 3;

/// What the block loop carries from one block to the next. Small and `Copy`, so
/// the loop keeps it in registers.
#[derive(Debug, Clone, Copy, Default)]
struct Carry {
    /// Stream offset up to which the structure has been scanned (block aligned
    /// until the last, padded block).
    scanned: u64,
    /// All ones when the previous block ended inside a string.
    prev_in_string: u64,
    /// 1 when the previous block ended with an escaping backslash.
    prev_escaped: u64,
    /// Nesting depth after the scanned bytes.
    depth: usize,
    /// One past the position of the latest hit (needle or escape) passed so far;
    /// 0 when there was none. A record is a candidate when, at its closing brace,
    /// this is after its opening brace.
    last_hit_end: u64,
}

impl Carry {
    /// Notes the latest of `hits` (bits of the block at `scanned`). Hits are rare,
    /// so the branch is all but free.
    #[inline(always)]
    fn pass_hits(&mut self, hits: u64) {
        if hits != 0 {
            self.last_hit_end = self.scanned + 64 - u64::from(hits.leading_zeros());
        }
    }
}

impl<'a, F: RecordSink> Scanner<'a, F> {
    fn new(prefilter: &'a Prefilter, limits: &'a Limits, sink: F) -> Self {
        Scanner {
            prefilter,
            limits,
            sink,
            observe: None,
            stats: ScanStats::default(),
            skipped: Vec::new(),
            base: 0,
            filled: 0,
            carry: Carry::default(),
            kernel: kernel::Choice::Auto,
            searched: 0,
            hits: Vec::new(),
            next_hit: 0,
            escaped_slash: prefilter.escaped_slash(),
            lookahead: prefilter.max_needle_len().saturating_sub(1),
            open_brackets: [0; 3],
            root: Root::NotYet,
            members_from: 0,
            in_records: false,
            gap_from: 0,
            record_from: None,
            oversized_from: None,
        }
    }

    /// Lists a skipped part (the first [`MAX_SKIPPED_LISTED`]).
    #[cold]
    fn skip(&mut self, skipped: Skipped) {
        if self.skipped.len() < MAX_SKIPPED_LISTED {
            self.skipped.push(skipped);
        }
    }

    fn end(&self) -> u64 {
        self.base + self.filled as u64
    }

    fn slice<'b>(&self, buf: &'b [u8], from: u64, to: u64) -> &'b [u8] {
        &buf[(from - self.base) as usize..(to - self.base) as usize]
    }

    fn scan_blocks(&mut self, buf: &[u8], at_eof: bool) -> Result<(), DecodeError> {
        let limit = if at_eof {
            self.filled
        } else {
            self.filled.saturating_sub(self.lookahead)
        };
        dispatch(self, buf, limit)?;
        let at = (self.carry.scanned - self.base) as usize;
        if at_eof && at < self.filled {
            let mut block = [b' '; BLOCK];
            block[..self.filled - at].copy_from_slice(&buf[at..self.filled]);
            let mut carry = self.carry;
            let mut next_hit = self.next_hit_at();
            // SAFETY: the baseline kernel needs nothing beyond the target.
            unsafe { self.step::<kernel::Baseline>(&mut carry, &mut next_hit, buf, &block)? };
            self.carry.scanned = self.end();
        }
        Ok(())
    }

    /// Stream offset of the next literal hit the block loop will meet.
    fn next_hit_at(&self) -> u64 {
        self.hits.get(self.next_hit).copied().unwrap_or(u64::MAX)
    }

    /// The block loop over `buf[scanned - base..limit]`, whole blocks only. The
    /// carried state lives in locals (registers) and goes back to `self` only
    /// around the rare top-level brackets.
    ///
    /// # Safety
    /// The CPU has the features of the kernel `K`.
    #[inline(always)]
    unsafe fn scan_range<K: Kernel>(
        &mut self,
        buf: &[u8],
        limit: usize,
    ) -> Result<(), DecodeError> {
        let mut carry = self.carry;
        let mut next_hit = self.next_hit_at();
        let at = (carry.scanned - self.base) as usize;
        let blocks = buf.get(at..limit).unwrap_or_default().chunks_exact(BLOCK);
        let mut result = Ok(());
        for block in blocks {
            let Ok(block) = <&[u8; BLOCK]>::try_from(block) else {
                break;
            };
            // SAFETY: passed on from the caller.
            if let Err(e) = unsafe { self.step::<K>(&mut carry, &mut next_hit, buf, block) } {
                result = Err(e);
                break;
            }
        }
        self.carry = carry;
        result
    }

    /// One block: masks, string state, hits, and then (rarely) the brackets at the
    /// top three levels. On return `carry` is the state after the block; on error
    /// the scan stops anyway.
    ///
    /// # Safety
    /// The CPU has the features of the kernel `K`.
    #[inline(always)]
    unsafe fn step<K: Kernel>(
        &mut self,
        carry: &mut Carry,
        next_hit: &mut u64,
        buf: &[u8],
        block: &[u8; BLOCK],
    ) -> Result<(), DecodeError> {
        // SAFETY: passed on from the caller.
        let masks = unsafe { K::classify(block) };
        let escaped = if masks.backslash | carry.prev_escaped == 0 {
            0
        } else {
            find_escaped(masks.backslash, &mut carry.prev_escaped)
        };
        // SAFETY: passed on from the caller.
        let in_string = unsafe { K::prefix_xor(masks.quote & !escaped) } ^ carry.prev_in_string;
        carry.prev_in_string = ((in_string as i64) >> 63) as u64;
        let block_end = carry.scanned + BLOCK as u64;
        let hits = if (escaped != 0 || *next_hit < block_end) && !self.prefilter.is_everything() {
            let hits = self.block_hits(block, carry.scanned, escaped);
            *next_hit = self.next_hit_at();
            hits
        } else {
            0
        };
        let opens = masks.open & !in_string;
        let closes = masks.close & !in_string;
        // Deep inside a record nothing but the depth matters: when even closing
        // every bracket first would stay at or below the record level, count. About
        // half the blocks of a CloudTrail file have brackets, in no predictable
        // pattern, so there is no branch on "any brackets?": the one branch left is
        // taken about twice per record (and for every block outside records, where
        // the slow path has nothing to do but is still right).
        let closing = closes.count_ones() as usize;
        let opening = opens.count_ones() as usize;
        if carry.depth < RECORD_DEPTH + closing {
            self.carry = *carry;
            self.brackets(buf, block, opens, closes, hits)?;
            *carry = self.carry;
        } else {
            carry.depth = carry.depth + opening - closing;
            carry.pass_hits(hits);
        }
        carry.scanned = block_end;
        Ok(())
    }

    /// The hits in the block at `start`: literal needle starts, escaped `u` (and
    /// `/`). Only called when the block has escapes or a literal hit.
    fn block_hits(&mut self, block: &[u8; BLOCK], start: u64, escaped: u64) -> u64 {
        let mut hits = 0;
        let block_end = start + BLOCK as u64;
        while let Some(&hit) = self.hits.get(self.next_hit) {
            if hit >= block_end {
                break;
            }
            // Hits are never behind the block loop (see `search_needles`); were one
            // to be, counting it at the block start could only add a candidate.
            hits |= 1u64 << hit.saturating_sub(start);
            self.next_hit += 1;
        }
        let mut escaped = escaped;
        while escaped != 0 {
            let bit = escaped.trailing_zeros();
            escaped &= escaped - 1;
            let byte = block[bit as usize];
            if byte == b'u' || (byte == b'/' && self.escaped_slash) {
                hits |= 1u64 << bit;
            }
        }
        hits
    }

    /// The brackets of a block that reaches the top three levels, one by one, in
    /// order with the hits before each. Most of them are still inside a record
    /// (a nested object opening and closing next to a record boundary); those only
    /// move the depth, without a branch on opener or closer, which alternate in no
    /// predictable way.
    #[inline(never)]
    fn brackets(
        &mut self,
        buf: &[u8],
        block: &[u8; BLOCK],
        opens: u64,
        closes: u64,
        hits: u64,
    ) -> Result<(), DecodeError> {
        let mut brackets = opens | closes;
        let mut hits = hits;
        while brackets != 0 {
            let bit = brackets.trailing_zeros();
            brackets &= brackets - 1;
            let opener = ((opens >> bit) & 1) as usize;
            // An opener at depth < 3, or a closer at depth <= 3, is a top-level event.
            if self.carry.depth + opener <= RECORD_DEPTH {
                let before = hits & ((1u64 << bit) - 1);
                self.carry.pass_hits(before);
                hits &= !before;
                let at = self.carry.scanned + u64::from(bit);
                let byte = block[bit as usize];
                if opener == 1 {
                    self.open(buf, at, byte)?;
                } else {
                    self.close(buf, at, byte)?;
                }
            } else {
                self.carry.depth = self.carry.depth + 2 * opener - 1;
            }
        }
        self.carry.pass_hits(hits);
        Ok(())
    }

    #[cold]
    fn open(&mut self, buf: &[u8], at: u64, byte: u8) -> Result<(), DecodeError> {
        match (self.carry.depth, self.root) {
            (0, Root::Closed) => {
                return Err(syntax(at, "trailing data after the JSON document"));
            }
            (0, _) => {
                self.root = if byte == b'{' {
                    Root::Object
                } else {
                    Root::Array
                };
                self.members_from = at + 1;
            }
            (1, Root::Object) => {
                let key = self.root_members(buf, at)?;
                match key.as_deref() {
                    Some("Records") if byte == b'[' => {
                        self.in_records = true;
                        self.stats.records_arrays += 1;
                        self.gap_from = at + 1;
                    }
                    Some("Records") => self.stats.records_not_array += 1,
                    Some(_) => {}
                    None => return Err(syntax(at, "expected a member name before a value")),
                }
            }
            (2, _) if self.in_records => {
                self.stats.non_object_records += self.gap_elements(buf, at)?;
                if byte == b'{' {
                    self.record_from = Some(at);
                } else {
                    self.stats.non_object_records += 1;
                }
            }
            _ => {}
        }
        if self.carry.depth < self.open_brackets.len() {
            self.open_brackets[self.carry.depth] = byte;
        }
        self.carry.depth += 1;
        Ok(())
    }

    fn close(&mut self, buf: &[u8], at: u64, byte: u8) -> Result<(), DecodeError> {
        if self.carry.depth == 0 {
            return Err(syntax(at, "unbalanced closing bracket"));
        }
        self.carry.depth -= 1;
        if let Some(&opener) = self.open_brackets.get(self.carry.depth) {
            if opener + 2 != byte {
                return Err(syntax(at, "mismatched closing bracket"));
            }
        }
        match self.carry.depth {
            2 if self.in_records => {
                if let Some(from) = self.record_from.take() {
                    self.finish_record(buf, from, at + 1);
                } else if let Some(from) = self.oversized_from.take() {
                    self.finish_oversized(from, at + 1);
                }
                self.gap_from = at + 1;
            }
            1 => {
                if self.in_records {
                    self.stats.non_object_records += self.gap_elements(buf, at)?;
                    self.in_records = false;
                }
                self.members_from = at + 1;
            }
            0 => {
                if self.root == Root::Object && self.root_members(buf, at)?.is_some() {
                    return Err(syntax(at, "a member name without a value"));
                }
                self.root = Root::Closed;
                self.members_from = at + 1;
            }
            _ => {}
        }
        Ok(())
    }

    fn finish_record(&mut self, buf: &[u8], from: u64, to: u64) {
        self.stats.records += 1;
        if self.prefilter.is_everything() || self.carry.last_hit_end > from {
            self.stats.candidates += 1;
            let record = self.slice(buf, from, to);
            self.sink.candidate(from, record);
        }
    }

    /// The end of a record larger than the limit, whose head was delivered.
    #[cold]
    fn finish_oversized(&mut self, from: u64, to: u64) {
        self.stats.records += 1;
        self.stats.oversized_records += 1;
        let candidate = self.prefilter.is_everything() || self.carry.last_hit_end > from;
        if candidate {
            self.stats.candidates += 1;
        } else {
            self.skip(Skipped::OversizedRecord {
                offset: from,
                len: to - from,
                limit: self.limits.max_record_bytes,
            });
        }
        self.sink.oversized_end(from, to - from, candidate);
    }
}

const EVEN_BITS: u64 = 0x5555_5555_5555_5555;

/// The characters escaped by a backslash (simdjson's branchless odd-run detection):
/// in a run of backslashes every second one escapes the next byte. `prev_escaped`
/// carries "the first byte of the next block is escaped".
#[inline(always)]
fn find_escaped(backslash: u64, prev_escaped: &mut u64) -> u64 {
    let backslash = backslash & !*prev_escaped;
    let follows_escape = (backslash << 1) | *prev_escaped;
    let odd_sequence_starts = backslash & !EVEN_BITS & !follows_escape;
    let (sequences_starting_on_even_bits, overflow) =
        odd_sequence_starts.overflowing_add(backslash);
    *prev_escaped = overflow as u64;
    let invert_mask = sequences_starting_on_even_bits << 1;
    (EVEN_BITS ^ invert_mask) & follows_escape
}

/// The block loop compiled for the CPU at hand.
///
/// The mask computation dominates the scan, and the x86_64 baseline (SSE2, no
/// `popcnt`) leaves a lot on the table: AVX2 compares 32 bytes at a time, AVX-512BW
/// produces each 64-bit mask with one compare, `popcnt`/`lzcnt` replace bit-trick
/// sequences and `pclmulqdq` computes the prefix XOR in one multiply. The loop is
/// generic over a [`Kernel`]; this picks the best one the CPU supports (checked
/// once per buffer; the check is a cached atomic load) and runs the loop inside a
/// function compiled with those features, into which everything is inlined. aarch64
/// has all it needs in its baseline (NEON). A pinned kernel the CPU lacks falls
/// back to the baseline.
fn dispatch<F: RecordSink>(
    scanner: &mut Scanner<'_, F>,
    buf: &[u8],
    limit: usize,
) -> Result<(), DecodeError> {
    #[cfg(target_arch = "x86_64")]
    {
        use kernel::{avx2::Avx2, avx512::Avx512, Choice};
        let choice = scanner.kernel;
        if matches!(choice, Choice::Auto | Choice::Avx512) && Avx512::available() {
            // SAFETY: the CPU has AVX-512F/BW, POPCNT, LZCNT, BMI1 and PCLMULQDQ.
            return unsafe { x86::scan_avx512(scanner, buf, limit) };
        }
        if matches!(choice, Choice::Auto | Choice::Avx2) && Avx2::available() {
            // SAFETY: the CPU has AVX2, POPCNT, LZCNT, BMI1 and PCLMULQDQ.
            return unsafe { x86::scan_avx2(scanner, buf, limit) };
        }
    }
    // SAFETY: the baseline kernel needs nothing beyond the target.
    unsafe { scanner.scan_range::<kernel::Baseline>(buf, limit) }
}

/// The block loop instantiated inside functions compiled with the x86 kernels'
/// features, so that the kernel and the bit arithmetic around it inline together.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::kernel::{avx2::Avx2, avx512::Avx512};
    use super::{DecodeError, RecordSink, Scanner};

    /// # Safety
    /// The CPU has the features named below ([`Avx2`]'s `available`).
    #[target_feature(enable = "avx2,popcnt,lzcnt,bmi1,pclmulqdq")]
    pub unsafe fn scan_avx2<F: RecordSink>(
        scanner: &mut Scanner<'_, F>,
        buf: &[u8],
        limit: usize,
    ) -> Result<(), DecodeError> {
        // SAFETY: this function only runs with the kernel's features.
        unsafe { scanner.scan_range::<Avx2>(buf, limit) }
    }

    /// # Safety
    /// The CPU has the features named below ([`Avx512`]'s `available`).
    #[target_feature(enable = "avx512f,avx512bw,avx2,popcnt,lzcnt,bmi1,pclmulqdq")]
    pub unsafe fn scan_avx512<F: RecordSink>(
        scanner: &mut Scanner<'_, F>,
        buf: &[u8],
        limit: usize,
    ) -> Result<(), DecodeError> {
        // SAFETY: this function only runs with the kernel's features.
        unsafe { scanner.scan_range::<Avx512>(buf, limit) }
    }
}
