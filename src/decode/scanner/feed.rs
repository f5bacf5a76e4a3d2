//! How decoded bytes reach the block loop: a window over the decoded stream that
//! slides past the records already scanned.
//!
//! A streamed object is read into the scanner's own buffer ([`Scanner::run`]),
//! which drops consumed bytes from its front and only grows when one record fills
//! it. An object already decoded in memory ([`Scanner::run_in_place`]) is scanned
//! where it lies: the same window moves over it, reading nothing and copying
//! nothing, but it is as long as the buffer would be at every step, so the reads,
//! the needle searches and the limits (`max_record_bytes`, `max_decompressed_bytes`)
//! behave exactly as they do on the streamed object.
//!
//! When one record fills a window of the record limit, its first bytes go to the
//! sink and the record stops holding the window: the window slides on as
//! anywhere else, and the record's end is reported when the block loop meets it.

use std::io::Read;

use super::{DecodeError, DecodedStream, RecordSink, Root, Scanner, DECODED_BUFFER};

impl<F: RecordSink> Scanner<'_, F> {
    /// Scans a stream, read into `buf` (whose length is the window's).
    pub(super) fn run<R: Read>(
        &mut self,
        stream: &mut DecodedStream<R>,
        buf: &mut Vec<u8>,
    ) -> Result<(), DecodeError> {
        loop {
            if self.filled == buf.len() {
                let (drop, len) = self.make_room(&buf[..self.filled], buf.len())?;
                if drop > 0 {
                    buf.copy_within(drop..drop + self.filled, 0);
                }
                if len != buf.len() {
                    buf.resize(len, 0);
                }
            }
            let n = match stream.read_decoded(&mut buf[self.filled..]) {
                Ok(n) => n,
                Err(e) => {
                    // What was decoded before the failure still counts: records
                    // that end in it are delivered (the failure is reported all the
                    // same, and is the error returned).
                    let _ = self.scan_blocks(&buf[..self.filled], true);
                    return Err(e);
                }
            };
            if n == 0 {
                break;
            }
            self.filled += n;
            self.scan_read(&buf[..self.filled], n)?;
        }
        self.finish(&buf[..self.filled])
    }

    /// Scans a whole decoded object in place, in the steps [`Scanner::run`] would
    /// take over the same bytes.
    pub(super) fn run_in_place(&mut self, decoded: &[u8]) -> Result<(), DecodeError> {
        let mut len = DECODED_BUFFER;
        let window = |scanner: &Self| {
            let from = scanner.base as usize;
            &decoded[from..from + scanner.filled]
        };
        loop {
            if self.filled == len {
                len = self.make_room(window(self), len)?.1;
            }
            let n = (len - self.filled).min(decoded.len() - self.end() as usize);
            if n == 0 {
                break;
            }
            self.filled += n;
            self.scan_read(window(self), n)?;
        }
        self.finish(window(self))
    }

    /// After `n` more bytes arrived at the end of `buf` (the window).
    fn scan_read(&mut self, buf: &[u8], n: usize) -> Result<(), DecodeError> {
        if let Some(observe) = self.observe.as_mut() {
            observe(&buf[buf.len() - n..]);
        }
        self.stats.decoded_bytes += n as u64;
        if self.stats.decoded_bytes > self.limits.max_decompressed_bytes {
            return Err(DecodeError::TooLarge {
                limit: self.limits.max_decompressed_bytes,
            });
        }
        self.check_start(buf)?;
        self.search_needles(buf);
        self.scan_blocks(buf, false)?;
        self.check_trailing(buf)
    }

    /// At the end of the stream: the last bytes and the checks of a complete document.
    fn finish(&mut self, buf: &[u8]) -> Result<(), DecodeError> {
        if self.stats.decoded_bytes == 0 {
            return Err(DecodeError::Empty);
        }
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

    /// Makes room in a full window of `len` bytes (`window`, starting at stream
    /// offset `base`): drops the consumed bytes from its front, or, when one record
    /// fills it, doubles it (up to the record limit). A record that fills a window
    /// of the limit is handed over as oversized and no longer kept. Returns how
    /// many bytes were dropped and the window's new length; the caller moves its
    /// bytes. Only text between records at the root level can fill the window at
    /// the limit: that is an error.
    fn make_room(&mut self, window: &[u8], len: usize) -> Result<(usize, usize), DecodeError> {
        let cap = self.limits.max_record_bytes.max(DECODED_BUFFER);
        let mut keep = self.keep_from();
        if keep == self.base && len >= cap {
            if let Some(from) = self.record_from.take() {
                let head = self.slice(window, from, self.end());
                self.sink.oversized_head(from, head);
                self.oversized_from = Some(from);
                keep = self.keep_from();
            }
        }
        let drop = (keep - self.base) as usize;
        self.filled -= drop;
        self.base = keep;
        if self.filled < len {
            return Ok((drop, len));
        }
        if len >= cap {
            return Err(DecodeError::RecordTooLarge {
                offset: keep,
                limit: self.limits.max_record_bytes,
            });
        }
        Ok((drop, (len * 2).min(cap)))
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
}
