//! Splits a decoded CloudTrail document into records without parsing them.
//!
//! The scanner tracks JSON structure exactly (strings, escapes, nesting) 64 bytes at
//! a time with bit masks, the technique of simdjson's first stage: one mask for
//! quotes, one for backslashes, one for `{`/`[` and one for `}`/`]`, computed with
//! SIMD compares (module `masks`); escaped quotes are removed with carry arithmetic
//! and a prefix XOR turns quotes into an "inside a string" mask. Brackets outside strings
//! change the depth; only the transitions at the top three levels (root object,
//! `Records` array, record) are looked at one by one, so the cost per byte is a
//! handful of word operations. A block with no bracket outside a string, or whose
//! brackets all stay below the record level, costs no more than its masks.
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
//! The mask computation is the inner loop; module `kernel` compiles it for AVX-512
//! and AVX2 (picked at run time) besides the baseline SSE2 / NEON / portable ones.
//! They all give the same masks, and the tests check each against the obvious loop.
//!
//! Memory: one read buffer (256 KiB, reused by the next object on the same thread)
//! that only grows when a single record does not fit, up to
//! [`Limits::max_record_bytes`], and the needle positions not yet passed. Nothing
//! is kept per record.

use std::cell::RefCell;
use std::io::Read;

use memchr::memchr2;

use super::{DecodeError, DecodedStream, Limits, Prefilter};

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
}

/// Everything a scan produced: its counts and, if the object could not be read to
/// the end, why. Candidates before the error were delivered.
#[derive(Debug)]
pub struct ScanOutcome {
    pub stats: ScanStats,
    pub error: Option<DecodeError>,
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
/// record that may match, in document order.
pub fn scan_records<R: Read>(
    raw: R,
    prefilter: &Prefilter,
    limits: &Limits,
    on_candidate: impl FnMut(u64, &[u8]),
) -> ScanOutcome {
    scan_with(
        kernel::Choice::from_env(),
        raw,
        prefilter,
        limits,
        on_candidate,
    )
}

fn scan_with<R: Read>(
    kernel: kernel::Choice,
    raw: R,
    prefilter: &Prefilter,
    limits: &Limits,
    on_candidate: impl FnMut(u64, &[u8]),
) -> ScanOutcome {
    let mut buf = SPARE_BUFFER.with(|spare| std::mem::take(&mut *spare.borrow_mut()));
    if buf.len() != DECODED_BUFFER {
        buf = vec![0; DECODED_BUFFER];
    }
    let mut scanner = Scanner::new(prefilter, limits, on_candidate);
    scanner.kernel = kernel;
    let error = match super::open_stream(raw) {
        Ok(mut stream) => scanner.run(&mut stream, &mut buf).err(),
        Err(e) => Some(e),
    };
    // A buffer that grew for a huge record is dropped, not kept: memory stays bounded
    // by what the current object needs.
    if buf.len() == DECODED_BUFFER {
        SPARE_BUFFER.with(|spare| *spare.borrow_mut() = buf);
    }
    ScanOutcome {
        stats: scanner.stats,
        error,
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
    on_candidate: F,
    stats: ScanStats,

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

impl<'a, F: FnMut(u64, &[u8])> Scanner<'a, F> {
    fn new(prefilter: &'a Prefilter, limits: &'a Limits, on_candidate: F) -> Self {
        Scanner {
            prefilter,
            limits,
            on_candidate,
            stats: ScanStats::default(),
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
        }
    }

    fn end(&self) -> u64 {
        self.base + self.filled as u64
    }

    fn slice<'b>(&self, buf: &'b [u8], from: u64, to: u64) -> &'b [u8] {
        &buf[(from - self.base) as usize..(to - self.base) as usize]
    }

    fn run<R: Read>(
        &mut self,
        stream: &mut DecodedStream<R>,
        buf: &mut Vec<u8>,
    ) -> Result<(), DecodeError> {
        loop {
            if self.filled == buf.len() {
                self.make_room(buf)?;
            }
            let n = stream.read_decoded(&mut buf[self.filled..])?;
            if n == 0 {
                break;
            }
            self.filled += n;
            self.stats.decoded_bytes += n as u64;
            if self.stats.decoded_bytes > self.limits.max_decompressed_bytes {
                return Err(DecodeError::TooLarge {
                    limit: self.limits.max_decompressed_bytes,
                });
            }
            let buf = &buf[..self.filled];
            self.check_start(buf)?;
            self.search_needles(buf);
            self.scan_blocks(buf, false)?;
            self.check_trailing(buf)?;
        }
        if self.stats.decoded_bytes == 0 {
            return Err(DecodeError::Empty);
        }
        let buf = &buf[..self.filled];
        self.check_start(buf)?;
        self.scan_blocks(buf, true)?;
        self.check_trailing(buf)?;
        match self.root {
            Root::NotYet => Err(DecodeError::Empty),
            _ if self.carry.prev_in_string != 0 => Err(DecodeError::Truncated {
                context: "a string",
            }),
            _ if self.carry.depth > 0 => Err(DecodeError::Truncated {
                context: "an object or array",
            }),
            _ => Ok(()),
        }
    }

    /// The first non-whitespace byte decides whether this is JSON at all.
    fn check_start(&self, buf: &[u8]) -> Result<(), DecodeError> {
        if self.root != Root::NotYet {
            return Ok(());
        }
        match self
            .slice(buf, self.carry.scanned, self.end())
            .iter()
            .find(|b| !is_ws(**b))
        {
            Some(b'{' | b'[') | None => Ok(()),
            Some(&other) => Err(DecodeError::NotJson(other)),
        }
    }

    /// After the root value closes only whitespace may follow.
    fn check_trailing(&mut self, buf: &[u8]) -> Result<(), DecodeError> {
        if self.root != Root::Closed {
            return Ok(());
        }
        let from = self.members_from;
        let rest = self.slice(buf, from, self.end());
        if let Some(at) = rest.iter().position(|b| !is_ws(*b)) {
            return Err(syntax(
                from + at as u64,
                "trailing data after the JSON document",
            ));
        }
        self.members_from = self.end();
        Ok(())
    }

    /// The oldest stream offset still needed.
    fn keep_from(&self) -> u64 {
        let needed = match (self.root, self.carry.depth) {
            (Root::Object, 1) => self.members_from,
            (Root::Closed, _) => self.members_from,
            (_, 2) if self.in_records => self.gap_from,
            _ => self.record_from.unwrap_or(self.carry.scanned),
        };
        needed.min(self.carry.scanned)
    }

    /// Drops consumed bytes, or grows the buffer when one record fills it.
    fn make_room(&mut self, buf: &mut Vec<u8>) -> Result<(), DecodeError> {
        let keep = self.keep_from();
        let drop = (keep - self.base) as usize;
        if drop > 0 {
            buf.copy_within(drop..self.filled, 0);
            self.filled -= drop;
            self.base = keep;
        }
        if self.filled == buf.len() {
            let cap = self.limits.max_record_bytes.max(DECODED_BUFFER);
            if buf.len() >= cap {
                return Err(DecodeError::RecordTooLarge {
                    offset: keep,
                    limit: self.limits.max_record_bytes,
                });
            }
            buf.resize((buf.len() * 2).min(cap), 0);
        }
        Ok(())
    }

    /// Searches the bytes decoded since the last search (plus the needle length
    /// before them, for needles split across reads) for the literal needles.
    /// Every hit found is at or after `scanned` (blocks stay `lookahead` bytes
    /// behind the end), so the block loop meets them all in order.
    fn search_needles(&mut self, buf: &[u8]) {
        if self.prefilter.is_everything() {
            return;
        }
        // Forget the hits already passed, so that the list only ever holds those
        // in the buffer.
        self.hits.drain(..self.next_hit);
        self.next_hit = 0;
        let from = self
            .searched
            .saturating_sub(self.lookahead as u64)
            .max(self.base);
        let end = self.end();
        let haystack = self.slice(buf, from, end);
        self.prefilter.find_all(haystack, from, &mut self.hits);
        // Hits of several needles, or of a shorter needle found again in the
        // overlap, must come out in order and once. (Hits already passed are all
        // before the new ones, so sorting the pending ones sorts everything.)
        let pending = &mut self.hits[self.next_hit..];
        if pending.windows(2).any(|w| w[0] >= w[1]) {
            pending.sort_unstable();
            self.hits.dedup();
        }
        self.searched = end;
    }

    fn scan_blocks(&mut self, buf: &[u8], at_eof: bool) -> Result<(), DecodeError> {
        let limit = if at_eof {
            self.filled
        } else {
            self.filled.saturating_sub(self.lookahead)
        };
        kernel::dispatch(self, buf, limit)?;
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
    unsafe fn scan_range<K: kernel::Kernel>(
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
    unsafe fn step<K: kernel::Kernel>(
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
            (self.on_candidate)(from, record);
        }
    }

    /// Parses the root-level text before `at` and returns the name of the member
    /// whose value starts at `at` (if the text ends with `"name":`). A scalar
    /// `Records` member is counted as a `Records` that is not an array.
    fn root_members(&mut self, buf: &[u8], at: u64) -> Result<Option<String>, DecodeError> {
        let from = self.members_from;
        let text = self.slice(buf, from, at);
        let mut i = 0;
        let mut not_array = 0;
        let pending = loop {
            i = skip(text, i, |b| is_ws(b) || b == b',');
            if i == text.len() {
                break None;
            }
            let (key, next) = json_string(text, i, from)?;
            i = skip(text, next, is_ws);
            if text.get(i) != Some(&b':') {
                return Err(syntax(from + i as u64, "expected ':' after a member name"));
            }
            i = skip(text, i + 1, is_ws);
            if i == text.len() {
                break Some(key);
            }
            // The reference parse reads a `Records` value in full and skips others,
            // which accepts more (lone surrogates, for one); do the same.
            let strict = key == "Records";
            i = scalar_end(text, i, from, strict)?;
            if strict {
                not_array += 1;
            }
        };
        self.stats.records_not_array += not_array;
        Ok(pending)
    }

    /// Counts the scalar elements between two container elements of `Records`.
    fn gap_elements(&mut self, buf: &[u8], at: u64) -> Result<u64, DecodeError> {
        let from = self.gap_from;
        let text = self.slice(buf, from, at);
        if text.iter().all(|&b| is_ws(b) || b == b',') {
            return Ok(0);
        }
        let mut i = 0;
        let mut count = 0;
        loop {
            i = skip(text, i, |b| is_ws(b) || b == b',');
            if i == text.len() {
                return Ok(count);
            }
            i = scalar_end(text, i, from, true)?;
            count += 1;
        }
    }
}

fn syntax(offset: u64, message: &str) -> DecodeError {
    DecodeError::Syntax {
        offset,
        message: message.to_owned(),
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip(text: &[u8], mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
    while i < text.len() && pred(text[i]) {
        i += 1;
    }
    i
}

/// The index after the JSON string starting at `text[i]` (a quote).
fn string_end(text: &[u8], i: usize, base: u64) -> Result<usize, DecodeError> {
    if text.get(i) != Some(&b'"') {
        return Err(syntax(base + i as u64, "expected a string"));
    }
    let mut j = i + 1;
    loop {
        match memchr2(b'"', b'\\', text.get(j..).unwrap_or_default()) {
            Some(k) if text[j + k] == b'\\' => j += k + 2,
            Some(k) => return Ok(j + k + 1),
            None => return Err(syntax(base + i as u64, "unterminated string")),
        }
    }
}

/// Decodes the JSON string starting at `text[i]`; returns it and the index after it.
fn json_string(text: &[u8], i: usize, base: u64) -> Result<(String, usize), DecodeError> {
    let end = string_end(text, i, base)?;
    let value = serde_json::from_slice(&text[i..end])
        .map_err(|e| syntax(base + i as u64, &e.to_string()))?;
    Ok((value, end))
}

/// Validates the scalar value starting at `text[i]`; returns the index after it.
/// `strict` reads it as a value (as the reference parse does for `Records` and its
/// elements); otherwise it is only skipped, as the reference skips other members.
fn scalar_end(text: &[u8], i: usize, base: u64, strict: bool) -> Result<usize, DecodeError> {
    let end = if text[i] == b'"' {
        string_end(text, i, base)?
    } else {
        skip(text, i, |b| !is_ws(b) && b != b',')
    };
    let token = &text[i..end];
    let checked = if strict && text[i] == b'"' {
        serde_json::from_slice::<String>(token).map(drop)
    } else {
        serde_json::from_slice::<serde::de::IgnoredAny>(token).map(drop)
    };
    checked.map_err(|e| syntax(base + i as u64, &e.to_string()))?;
    Ok(end)
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

/// Bit i of the result is the XOR of bits 0..=i: 1 from an opening quote up to,
/// not including, its closing quote.
#[inline(always)]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// The block loop compiled for the CPU at hand.
///
/// The mask computation dominates the scan, and the x86_64 baseline (SSE2, no
/// `popcnt`) leaves a lot on the table: AVX2 compares 32 bytes at a time, AVX-512BW
/// produces each 64-bit mask with one compare, `popcnt`/`lzcnt` replace bit-trick
/// sequences and `pclmulqdq` computes the prefix XOR in one multiply. The loop is
/// generic over a [`Kernel`]; [`dispatch`] picks the best one the CPU supports
/// (checked once per buffer; the check is a cached atomic load) and runs the loop
/// inside a function compiled with those features, into which everything is
/// inlined. aarch64 has all it needs in its baseline (NEON).
mod kernel {
    use super::{masks, DecodeError, Scanner, BLOCK};

    /// A way to compute the block masks.
    ///
    /// # Safety
    ///
    /// `classify` and `prefix_xor` may use CPU features beyond the target's
    /// baseline: call them only when [`Choice::available`] says so for the kernel.
    pub trait Kernel {
        /// # Safety
        /// The CPU has the kernel's features.
        unsafe fn classify(block: &[u8; BLOCK]) -> masks::Masks;
        /// # Safety
        /// The CPU has the kernel's features.
        unsafe fn prefix_xor(x: u64) -> u64;
    }

    /// The target's baseline: SSE2 on x86_64, NEON on aarch64, SWAR elsewhere.
    pub struct Baseline;

    impl Kernel for Baseline {
        #[inline(always)]
        unsafe fn classify(block: &[u8; BLOCK]) -> masks::Masks {
            masks::classify(block)
        }
        #[inline(always)]
        unsafe fn prefix_xor(x: u64) -> u64 {
            super::prefix_xor(x)
        }
    }

    /// Which kernel to run.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Choice {
        /// The best the CPU supports.
        Auto,
        Baseline,
        Avx2,
        Avx512,
    }

    impl Choice {
        /// `TRAILWATCH_SCAN_KERNEL` (`baseline`, `avx2`, `avx512`) pins a kernel, so
        /// that a benchmark can show what the CPU-specific code buys; anything else
        /// means the best available. Read once.
        pub fn from_env() -> Choice {
            static CHOICE: std::sync::OnceLock<Choice> = std::sync::OnceLock::new();
            *CHOICE.get_or_init(
                || match std::env::var("TRAILWATCH_SCAN_KERNEL").as_deref() {
                    Ok("baseline") => Choice::Baseline,
                    Ok("avx2") => Choice::Avx2,
                    Ok("avx512") => Choice::Avx512,
                    _ => Choice::Auto,
                },
            )
        }

        /// Can this kernel run on this CPU?
        #[cfg(test)]
        pub fn available(self) -> bool {
            match self {
                Choice::Auto | Choice::Baseline => true,
                #[cfg(target_arch = "x86_64")]
                Choice::Avx2 => x86::has_avx2(),
                #[cfg(target_arch = "x86_64")]
                Choice::Avx512 => x86::has_avx512(),
                #[cfg(not(target_arch = "x86_64"))]
                Choice::Avx2 | Choice::Avx512 => false,
            }
        }
    }

    /// Runs the block loop up to `limit` with the chosen kernel (or the baseline,
    /// when the choice is not available).
    pub fn dispatch<F: FnMut(u64, &[u8])>(
        scanner: &mut Scanner<'_, F>,
        buf: &[u8],
        limit: usize,
    ) -> Result<(), DecodeError> {
        #[cfg(target_arch = "x86_64")]
        {
            let choice = scanner.kernel;
            let avx512 = matches!(choice, Choice::Auto | Choice::Avx512) && x86::has_avx512();
            if avx512 {
                // SAFETY: the CPU has AVX-512F/BW, POPCNT, LZCNT, BMI1 and PCLMULQDQ.
                return unsafe { x86::scan_avx512(scanner, buf, limit) };
            }
            if matches!(choice, Choice::Auto | Choice::Avx2) && x86::has_avx2() {
                // SAFETY: the CPU has AVX2, POPCNT, LZCNT, BMI1 and PCLMULQDQ.
                return unsafe { x86::scan_avx2(scanner, buf, limit) };
            }
        }
        // SAFETY: the baseline kernel needs nothing beyond the target.
        unsafe { scanner.scan_range::<Baseline>(buf, limit) }
    }

    #[cfg(target_arch = "x86_64")]
    pub mod x86 {
        use std::arch::x86_64::{
            __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
            _mm256_set1_epi8, _mm512_cmpeq_epi8_mask, _mm512_loadu_si512, _mm512_or_si512,
            _mm512_set1_epi8, _mm_clmulepi64_si128, _mm_cvtsi128_si64, _mm_set1_epi8,
            _mm_set_epi64x,
        };

        use super::super::{masks::Masks, DecodeError, Scanner, BLOCK};
        use super::Kernel;

        pub fn has_avx2() -> bool {
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("popcnt")
                && is_x86_feature_detected!("lzcnt")
                && is_x86_feature_detected!("bmi1")
                && is_x86_feature_detected!("pclmulqdq")
        }

        pub fn has_avx512() -> bool {
            has_avx2()
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
        }

        /// The masks with two 32-byte compares per class.
        ///
        /// # Safety
        /// The CPU has AVX2.
        #[target_feature(enable = "avx2")]
        #[inline]
        pub unsafe fn classify_avx2(block: &[u8; BLOCK]) -> Masks {
            // SAFETY (loads): 32 bytes at offsets 0 and 32 of a 64-byte array.
            let lo = unsafe { _mm256_loadu_si256(block.as_ptr().cast::<__m256i>()) };
            let hi = unsafe { _mm256_loadu_si256(block.as_ptr().add(32).cast::<__m256i>()) };
            let fold = _mm256_set1_epi8(0x20);
            let (flo, fhi) = (_mm256_or_si256(lo, fold), _mm256_or_si256(hi, fold));
            let bits = |a: __m256i, b: __m256i, byte: u8| {
                let needle = _mm256_set1_epi8(byte as i8);
                let a = _mm256_movemask_epi8(_mm256_cmpeq_epi8(a, needle)) as u32;
                let b = _mm256_movemask_epi8(_mm256_cmpeq_epi8(b, needle)) as u32;
                u64::from(a) | (u64::from(b) << 32)
            };
            Masks {
                quote: bits(lo, hi, b'"'),
                backslash: bits(lo, hi, b'\\'),
                open: bits(flo, fhi, b'{'),
                close: bits(flo, fhi, b'}'),
            }
        }

        /// The masks with one 64-byte compare per class, straight into mask
        /// registers.
        ///
        /// # Safety
        /// The CPU has AVX-512F and AVX-512BW.
        #[target_feature(enable = "avx512f,avx512bw")]
        #[inline]
        pub unsafe fn classify_avx512(block: &[u8; BLOCK]) -> Masks {
            // SAFETY (load): 64 bytes of a 64-byte array.
            let v = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
            let folded = _mm512_or_si512(v, _mm512_set1_epi8(0x20));
            Masks {
                quote: _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'"' as i8)),
                backslash: _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'\\' as i8)),
                open: _mm512_cmpeq_epi8_mask(folded, _mm512_set1_epi8(b'{' as i8)),
                close: _mm512_cmpeq_epi8_mask(folded, _mm512_set1_epi8(b'}' as i8)),
            }
        }

        /// Prefix XOR as a carry-less multiplication by all ones.
        ///
        /// # Safety
        /// The CPU has PCLMULQDQ.
        #[target_feature(enable = "pclmulqdq")]
        #[inline]
        pub unsafe fn clmul_prefix_xor(x: u64) -> u64 {
            let product = _mm_clmulepi64_si128(_mm_set_epi64x(0, x as i64), _mm_set1_epi8(-1), 0);
            _mm_cvtsi128_si64(product) as u64
        }

        pub struct Avx2;

        impl Kernel for Avx2 {
            #[inline(always)]
            unsafe fn classify(block: &[u8; BLOCK]) -> Masks {
                // SAFETY: the caller checked the features (trait contract).
                unsafe { classify_avx2(block) }
            }
            #[inline(always)]
            unsafe fn prefix_xor(x: u64) -> u64 {
                // SAFETY: as above.
                unsafe { clmul_prefix_xor(x) }
            }
        }

        pub struct Avx512;

        impl Kernel for Avx512 {
            #[inline(always)]
            unsafe fn classify(block: &[u8; BLOCK]) -> Masks {
                // SAFETY: the caller checked the features (trait contract).
                unsafe { classify_avx512(block) }
            }
            #[inline(always)]
            unsafe fn prefix_xor(x: u64) -> u64 {
                // SAFETY: as above.
                unsafe { clmul_prefix_xor(x) }
            }
        }

        /// # Safety
        /// The CPU has the features named below ([`has_avx2`]).
        #[target_feature(enable = "avx2,popcnt,lzcnt,bmi1,pclmulqdq")]
        pub unsafe fn scan_avx2<F: FnMut(u64, &[u8])>(
            scanner: &mut Scanner<'_, F>,
            buf: &[u8],
            limit: usize,
        ) -> Result<(), DecodeError> {
            // SAFETY: this function only runs with the kernel's features.
            unsafe { scanner.scan_range::<Avx2>(buf, limit) }
        }

        /// # Safety
        /// The CPU has the features named below ([`has_avx512`]).
        #[target_feature(enable = "avx512f,avx512bw,avx2,popcnt,lzcnt,bmi1,pclmulqdq")]
        pub unsafe fn scan_avx512<F: FnMut(u64, &[u8])>(
            scanner: &mut Scanner<'_, F>,
            buf: &[u8],
            limit: usize,
        ) -> Result<(), DecodeError> {
            // SAFETY: this function only runs with the kernel's features.
            unsafe { scanner.scan_range::<Avx512>(buf, limit) }
        }

        #[cfg(test)]
        mod tests {
            use super::super::super::masks::{classify_naive, tests::blocks};
            use super::*;

            #[test]
            fn the_avx2_classifier_matches_the_definition() {
                if !has_avx2() {
                    return;
                }
                for block in blocks() {
                    // SAFETY: AVX2 was detected.
                    assert_eq!(
                        unsafe { classify_avx2(&block) },
                        classify_naive(&block),
                        "{block:?}"
                    );
                }
            }

            #[test]
            fn the_avx512_classifier_matches_the_definition() {
                if !has_avx512() {
                    return;
                }
                for block in blocks() {
                    // SAFETY: AVX-512F/BW were detected.
                    assert_eq!(
                        unsafe { classify_avx512(&block) },
                        classify_naive(&block),
                        "{block:?}"
                    );
                }
            }

            #[test]
            fn carry_less_prefix_xor_matches_the_shifts() {
                if !has_avx2() {
                    return;
                }
                let mut x = 0x9e37_79b9_7f4a_7c15u64;
                for _ in 0..10_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    for value in [x, x & (x >> 3), 1, 1 << 63, u64::MAX, 0] {
                        // SAFETY: PCLMULQDQ was detected (part of `has_avx2`).
                        assert_eq!(
                            unsafe { clmul_prefix_xor(value) },
                            super::super::super::prefix_xor(value)
                        );
                    }
                }
            }
        }
    }
}

/// The four byte-class masks of a 64-byte block: bit i describes `block[i]`.
///
/// Written with SIMD compares for the two targets that matter (SSE2 is part of
/// every x86_64 CPU, NEON of every aarch64 one, so neither needs runtime
/// detection), with a portable SWAR version for the rest. A plain per-byte loop
/// does not vectorise into compare-and-movemask: the compiler widens every byte to
/// 64 bits, several times slower. All versions are tested against the obvious
/// loop.
pub(crate) mod masks {
    use super::BLOCK;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Masks {
        pub quote: u64,
        pub backslash: u64,
        /// `{` and `[` (`b | 0x20 == b'{'` holds for exactly those two bytes).
        pub open: u64,
        /// `}` and `]`.
        pub close: u64,
    }

    #[cfg(target_arch = "x86_64")]
    pub use sse2::classify;

    #[cfg(target_arch = "aarch64")]
    pub use neon::classify;

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub use portable::classify;

    /// The obvious loop: the definition the others are tested against.
    #[cfg(test)]
    pub fn classify_naive(block: &[u8; BLOCK]) -> Masks {
        let mut m = Masks {
            quote: 0,
            backslash: 0,
            open: 0,
            close: 0,
        };
        for (i, &b) in block.iter().enumerate() {
            m.quote |= u64::from(b == b'"') << i;
            m.backslash |= u64::from(b == b'\\') << i;
            m.open |= u64::from(b == b'{' || b == b'[') << i;
            m.close |= u64::from(b == b'}' || b == b']') << i;
        }
        m
    }

    #[cfg(target_arch = "x86_64")]
    pub mod sse2 {
        use super::{Masks, BLOCK};
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };

        #[inline(always)]
        pub fn classify(block: &[u8; BLOCK]) -> Masks {
            let mut m = Masks {
                quote: 0,
                backslash: 0,
                open: 0,
                close: 0,
            };
            // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics are
            // always available; each unaligned load reads 16 bytes at offset 0, 16,
            // 32 or 48 of a 64-byte array.
            unsafe {
                let quote = _mm_set1_epi8(b'"' as i8);
                let backslash = _mm_set1_epi8(b'\\' as i8);
                let open = _mm_set1_epi8(b'{' as i8);
                let close = _mm_set1_epi8(b'}' as i8);
                let fold = _mm_set1_epi8(0x20);
                for lane in 0..BLOCK / 16 {
                    let v = _mm_loadu_si128(block.as_ptr().add(16 * lane).cast::<__m128i>());
                    let folded = _mm_or_si128(v, fold);
                    let shift = 16 * lane;
                    let bits = |x: __m128i| u64::from(_mm_movemask_epi8(x) as u16) << shift;
                    m.quote |= bits(_mm_cmpeq_epi8(v, quote));
                    m.backslash |= bits(_mm_cmpeq_epi8(v, backslash));
                    m.open |= bits(_mm_cmpeq_epi8(folded, open));
                    m.close |= bits(_mm_cmpeq_epi8(folded, close));
                }
            }
            m
        }
    }

    #[cfg(target_arch = "aarch64")]
    pub mod neon {
        use super::{Masks, BLOCK};
        use std::arch::aarch64::{
            uint8x16_t, vandq_u8, vceqq_u8, vdupq_n_u8, vgetq_lane_u64, vld1q_u8, vorrq_u8,
            vpaddq_u8, vreinterpretq_u64_u8,
        };

        /// Bit i of each byte lane, to turn four compare results into 64 bits.
        const WEIGHTS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];

        /// simdjson's NEON movemask: weight each lane's byte with its bit, then three
        /// rounds of pairwise addition pack 4 x 16 bytes into 64 bits.
        #[inline(always)]
        unsafe fn bits(c: [uint8x16_t; 4], weights: uint8x16_t) -> u64 {
            let a = vpaddq_u8(vandq_u8(c[0], weights), vandq_u8(c[1], weights));
            let b = vpaddq_u8(vandq_u8(c[2], weights), vandq_u8(c[3], weights));
            let ab = vpaddq_u8(a, b);
            let ab = vpaddq_u8(ab, ab);
            vgetq_lane_u64::<0>(vreinterpretq_u64_u8(ab))
        }

        #[inline(always)]
        pub fn classify(block: &[u8; BLOCK]) -> Masks {
            // SAFETY: NEON is part of the aarch64 baseline, so these intrinsics are
            // always available; each load reads 16 bytes at offset 0, 16, 32 or 48
            // of a 64-byte array, and `WEIGHTS` is 16 bytes.
            unsafe {
                let weights = vld1q_u8(WEIGHTS.as_ptr());
                let v = [0, 1, 2, 3].map(|lane| vld1q_u8(block.as_ptr().add(16 * lane)));
                let folded = v.map(|x| vorrq_u8(x, vdupq_n_u8(0x20)));
                let eq = |x: [uint8x16_t; 4], byte: u8| x.map(|x| vceqq_u8(x, vdupq_n_u8(byte)));
                Masks {
                    quote: bits(eq(v, b'"'), weights),
                    backslash: bits(eq(v, b'\\'), weights),
                    open: bits(eq(folded, b'{'), weights),
                    close: bits(eq(folded, b'}'), weights),
                }
            }
        }
    }

    /// Eight bytes at a time in a `u64` (SWAR), for targets without the above.
    #[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), allow(dead_code))]
    pub mod portable {
        use super::{Masks, BLOCK};

        const ONES: u64 = 0x0101_0101_0101_0101;
        const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        const HIGH: u64 = 0x8080_8080_8080_8080;

        /// One bit per byte of `word` that equals `byte` (bit i for byte i).
        #[inline(always)]
        fn eq_bits(word: u64, byte: u8) -> u64 {
            let x = word ^ (ONES * u64::from(byte));
            // High bit of each byte: set iff that byte of x is non-zero (no carry
            // crosses bytes: (b & 0x7f) + 0x7f <= 0xfe).
            let nonzero = ((x & LOW7) + LOW7) | x;
            let zero = !nonzero & HIGH;
            // Gather the eight high bits: every product term lands on a distinct bit,
            // bit i of the top byte coming from byte i.
            (zero >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
        }

        #[inline(always)]
        pub fn classify(block: &[u8; BLOCK]) -> Masks {
            let mut m = Masks {
                quote: 0,
                backslash: 0,
                open: 0,
                close: 0,
            };
            for (n, chunk) in block.chunks_exact(8).enumerate() {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(chunk);
                let word = u64::from_le_bytes(bytes);
                let folded = word | (ONES * 0x20);
                let shift = 8 * n;
                m.quote |= eq_bits(word, b'"') << shift;
                m.backslash |= eq_bits(word, b'\\') << shift;
                m.open |= eq_bits(folded, b'{') << shift;
                m.close |= eq_bits(folded, b'}') << shift;
            }
            m
        }
    }

    #[cfg(test)]
    pub(crate) mod tests {
        use super::*;

        /// Blocks with every byte value at every position, and random mixes of the
        /// interesting bytes.
        pub(crate) fn blocks() -> Vec<[u8; BLOCK]> {
            let mut out = Vec::new();
            for value in 0..=255u8 {
                for at in 0..BLOCK {
                    let mut block = [b'a'; BLOCK];
                    block[at] = value;
                    block[(at * 7 + 3) % BLOCK] = value ^ 0x20;
                    out.push(block);
                }
            }
            let mut state = 0x1234_5678_9abc_def0u64;
            for _ in 0..2000 {
                let mut block = [0u8; BLOCK];
                for b in &mut block {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let table = b"\"\\{}[]{;}[]\x00\xff x[{";
                    *b =
                        table[(state % table.len() as u64) as usize] ^ ((state >> 40) as u8 & 0x80);
                }
                out.push(block);
            }
            out
        }

        #[test]
        fn the_active_classifier_matches_the_definition() {
            for block in blocks() {
                assert_eq!(classify(&block), classify_naive(&block), "{block:?}");
            }
        }

        #[test]
        fn the_portable_classifier_matches_the_definition() {
            for block in blocks() {
                assert_eq!(
                    portable::classify(&block),
                    classify_naive(&block),
                    "{block:?}"
                );
            }
        }

        #[cfg(target_arch = "x86_64")]
        #[test]
        fn the_sse2_classifier_matches_the_definition() {
            for block in blocks() {
                assert_eq!(sse2::classify(&block), classify_naive(&block), "{block:?}");
            }
        }

        #[cfg(target_arch = "aarch64")]
        #[test]
        fn the_neon_classifier_matches_the_definition() {
            for block in blocks() {
                assert_eq!(neon::classify(&block), classify_naive(&block), "{block:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(input: &[u8], prefilter: &Prefilter) -> (Vec<String>, ScanOutcome) {
        let mut out = Vec::new();
        let outcome = scan_records(input, prefilter, &Limits::default(), |_, rec| {
            out.push(String::from_utf8_lossy(rec).into_owned())
        });
        (out, outcome)
    }

    #[test]
    fn splits_records_exactly_through_strings_and_escapes() {
        let doc = br#"{"Records":[{"a":"}{]["},{"b":"\"}\\"},{"c":{"d":[1,{"e":"\\\""}]}}]}"#;
        let (recs, outcome) = candidates(doc, &Prefilter::everything());
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        assert_eq!(
            recs,
            vec![
                r#"{"a":"}{]["}"#,
                r#"{"b":"\"}\\"}"#,
                r#"{"c":{"d":[1,{"e":"\\\""}]}}"#
            ]
        );
        assert_eq!(outcome.stats.records, 3);
        assert_eq!(outcome.stats.records_arrays, 1);
    }

    #[test]
    fn escape_runs_across_block_boundaries() {
        for pad in 0..70 {
            let filler = "x".repeat(pad);
            let doc = format!(r#"{{"Records":[{{"a":"{filler}\\\\"}},{{"b":"{filler}\\\"}}"}}]}}"#);
            let (recs, outcome) = candidates(doc.as_bytes(), &Prefilter::everything());
            assert!(outcome.error.is_none(), "pad {pad}: {:?}", outcome.error);
            assert_eq!(recs.len(), 2, "pad {pad}");
            for rec in &recs {
                serde_json::from_str::<serde_json::Value>(rec).unwrap();
            }
        }
    }

    #[test]
    fn counts_shapes_that_are_not_records() {
        let doc = br#"{"x":1,"Other":[{"a":1}],"Records":[1,"s",{"a":2},[{"z":1}],null,{"b":3}],"Records":{"c":1}}"#;
        let (recs, outcome) = candidates(doc, &Prefilter::everything());
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        assert_eq!(recs, vec![r#"{"a":2}"#, r#"{"b":3}"#]);
        assert_eq!(outcome.stats.non_object_records, 4);
        assert_eq!(outcome.stats.records_not_array, 1);
        let (_, scalar) = candidates(br#"{"Records":5}"#, &Prefilter::everything());
        assert_eq!(scalar.stats.records_not_array, 1);
        assert_eq!(scalar.stats.records_arrays, 0);
        let (_, none) = candidates(br#"{"foo":[{"a":1}]}"#, &Prefilter::everything());
        assert!(none.error.is_none());
        assert_eq!(none.stats.records_arrays, 0);
        assert_eq!(none.stats.records, 0);
    }

    #[test]
    fn escaped_member_names_are_decoded() {
        let (recs, outcome) =
            candidates(br#"{"R\u0065cords":[{"a":1}]}"#, &Prefilter::everything());
        assert!(outcome.error.is_none());
        assert_eq!(recs.len(), 1);
    }

    #[test]
    fn structural_errors_are_reported() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"   ", "empty"),
            (b"hello", "not gzip and not JSON"),
            (br#"{"Records":[{"a":1}"#, "truncated"),
            (br#"{"Records":[{"a":"1}]}"#, "truncated"),
            (br#"{"Records":[{"a":1]]}"#, "mismatched"),
            (br#"{"Records":[]}}"#, "unbalanced"),
            (br#"{"Records":[]} x"#, "trailing data"),
            (br#"{"Records":[]}{}"#, "trailing data"),
            (br#"{"Records" [{"a":1}]}"#, "expected ':'"),
        ];
        for (input, expected) in cases {
            let (_, outcome) = candidates(input, &Prefilter::everything());
            let message = outcome.error.map(|e| e.to_string()).unwrap_or_default();
            assert!(
                message.contains(expected),
                "{:?}: {message}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn good_records_before_an_error_are_delivered() {
        let doc = br#"{"Records":[{"a":1},{"b":2},{"c":"#;
        let (recs, outcome) = candidates(doc, &Prefilter::everything());
        assert_eq!(recs.len(), 2);
        assert!(outcome.error.is_some());
    }

    #[test]
    fn record_size_is_capped() {
        let big = format!(r#"{{"Records":[{{"a":"{}"}}]}}"#, "x".repeat(2 << 20));
        let limits = Limits {
            max_record_bytes: 1 << 20,
            ..Limits::default()
        };
        let outcome = scan_records(big.as_bytes(), &Prefilter::everything(), &limits, |_, _| {});
        assert!(
            matches!(outcome.error, Some(DecodeError::RecordTooLarge { .. })),
            "{:?}",
            outcome.error
        );
    }

    #[test]
    fn needles_split_across_reads_are_found() {
        // A reader that returns one byte at a time splits every needle.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let rules = crate::rule::RuleSet::embedded();
        let prefilter = Prefilter::for_rules(&rules.rules);
        let doc = br#"{"Records":[{"eventName":"Other"},{"eventName":"StartExportTask"},{"x":"\u0041"}]}"#;
        let mut found = Vec::new();
        let outcome = scan_records(Trickle(doc), &prefilter, &Limits::default(), |_, r| {
            found.push(String::from_utf8_lossy(r).into_owned())
        });
        assert!(outcome.error.is_none());
        assert_eq!(
            found,
            vec![r#"{"eventName":"StartExportTask"}"#, r#"{"x":"\u0041"}"#]
        );
        assert_eq!(outcome.stats.records, 3);
    }

    /// Documents with strings, escapes, backslash runs and brackets at every
    /// offset of a block, read whole and a few bytes at a time.
    fn tricky_documents() -> Vec<Vec<u8>> {
        let mut docs = Vec::new();
        for pad in 0..70 {
            let filler = "x".repeat(pad);
            for run in 0..6 {
                let slashes = "\\".repeat(run);
                let tail = if run % 2 == 1 { "\"" } else { "" };
                docs.push(
                    format!(
                        r#"{{"a":"{filler}","Records":[{{"k":"{filler}{slashes}{tail}]}}[","eventName":"StartExportTask"}},7,{{"{filler}":[{{"z":"\u0041{slashes}{tail}"}}],"q":"{slashes}{tail}"}},"s{filler}",{{"x":"{{[\/"}}],"b":[{{"c":1}}]}}"#
                    )
                    .into_bytes(),
                );
            }
        }
        docs
    }

    struct Chunks<'a>(&'a [u8], usize);
    impl Read for Chunks<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn every_kernel_finds_the_same_records() {
        use super::kernel::Choice;
        let rules = crate::rule::RuleSet::embedded();
        let prefilters = [Prefilter::everything(), Prefilter::for_rules(&rules.rules)];
        let kernels = [Choice::Baseline, Choice::Avx2, Choice::Avx512];
        for doc in tricky_documents() {
            for prefilter in &prefilters {
                for chunk in [3, 1 << 20] {
                    let run = |kernel: Choice| {
                        let mut recs = Vec::new();
                        let outcome = scan_with(
                            kernel,
                            Chunks(&doc, chunk),
                            prefilter,
                            &Limits::default(),
                            |at, r| recs.push((at, r.to_vec())),
                        );
                        (recs, outcome.stats, outcome.error.map(|e| e.to_string()))
                    };
                    let expected = run(Choice::Baseline);
                    assert!(
                        expected.2.is_none(),
                        "{:?}: {}",
                        expected.2,
                        String::from_utf8_lossy(&doc)
                    );
                    assert_eq!(expected.1.records, 3);
                    for kernel in kernels.into_iter().filter(|k| k.available()) {
                        assert_eq!(
                            run(kernel),
                            expected,
                            "{kernel:?}: {}",
                            String::from_utf8_lossy(&doc)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn decompressed_size_is_capped() {
        let doc = format!(r#"{{"Records":[{}]}}"#, vec![r#"{"a":1}"#; 1000].join(","));
        let limits = Limits {
            max_decompressed_bytes: 100,
            ..Limits::default()
        };
        let outcome = scan_records(doc.as_bytes(), &Prefilter::everything(), &limits, |_, _| {});
        assert!(matches!(
            outcome.error,
            Some(DecodeError::TooLarge { limit: 100 })
        ));
    }
}
