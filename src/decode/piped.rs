//! Streamed gzip decoded on a second thread while the scanner reads the previous
//! buffer.
//!
//! A large object cannot be decoded whole (memory must stay bounded), and the
//! streaming inflater is the slower part of a scan: the record scanner costs about
//! a quarter of the decoding time on top. When a core is idle, the inflater runs on
//! a thread of its own, one buffer ahead of the scanner, so that the scan takes
//! about as long as decoding alone (the CPU time is the same, or a little more).
//!
//! The object's reader stays on the scanning thread (it need not be `Send`: stdin
//! is not): the decoding thread asks for compressed chunks and the scanning thread
//! reads them whenever it asks for decoded bytes, always one chunk ahead of the
//! inflater. Decoded bytes come back in a fixed ring of [`RING`] buffers of
//! [`RING_BUFFER`] bytes, so memory stays bounded whatever the object's size.
//! The decoder is the streaming [`GzipDecoder`] and sees exactly the bytes and read
//! errors it would see on the scanning thread, in the same order, so the decoded
//! bytes and the error (and its kind) are the same; only the sizes of the reads
//! differ, as they do anyway from one inflater call to the next.
//!
//! The second thread is used only when a core is free for it: while fewer scans
//! and decoding threads run than the process may use cores
//! (`std::thread::available_parallelism`, which follows the CPU affinity mask, so a
//! scan pinned to one core never starts one). In Lambda, where the guest sees two
//! vCPUs but gets a share of one below 1,769 MB of memory, the cores counted are the
//! whole vCPUs the memory size buys. `TRAILWATCH_DECODE_THREAD=off` turns it off,
//! to measure the difference.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::OnceLock;
use std::thread::JoinHandle;

use super::gzip::GzipDecoder;

/// Decoded buffers in flight between the two threads: 4 MiB. The scanner is faster
/// than the inflater, so the ring is nearly always empty and a buffer is rewritten
/// right after the other core has read it. With four buffers (1 MiB) the inflater's
/// stores then hit lines still held by the other core's 2 MiB L2, and the piped
/// decode took 40-60% longer than decoding on one thread; with 4 MiB, the lines have
/// left that cache and it takes 6-13% longer (`decode_only` on the large file, 2 cores,
/// `benches/RESULTS.md`). 8 MiB was no better.
pub const RING: usize = 16;
/// Size of each decoded buffer: the scanner's read size.
pub const RING_BUFFER: usize = super::DECODED_BUFFER;
/// Compressed bytes read per chunk.
const CHUNK: usize = 256 << 10;

/// Scans and decoding threads running now, to keep to the cores available.
static BUSY: AtomicUsize = AtomicUsize::new(0);

fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| {
        let off = std::env::var("TRAILWATCH_DECODE_THREAD").is_ok_and(|v| v == "off" || v == "0");
        let lambda = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok();
        cores_for(off, lambda.as_deref(), || {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        })
    })
}

/// Megabytes of Lambda memory that buy one full vCPU (AWS: "at 1,769 MB, a function
/// has the equivalent of one vCPU"); below it the function gets a time slice of one,
/// which a second thread would only share.
const LAMBDA_MB_PER_CORE: usize = 1769;

/// The cores a scan may count on: none when turned off; in Lambda, the whole vCPUs
/// its memory size buys (the guest sees two, whatever its share of them); else what
/// the process may use.
fn cores_for(
    off: bool,
    lambda_memory_mb: Option<&str>,
    available: impl FnOnce() -> usize,
) -> usize {
    if off {
        return 0;
    }
    match lambda_memory_mb.and_then(|mb| mb.trim().parse::<usize>().ok()) {
        Some(mb) => (mb / LAMBDA_MB_PER_CORE).clamp(1, available()),
        None => available(),
    }
}

/// A running scan, counted while it lives (see [`Busy`]).
pub struct Busy(());

impl Busy {
    /// Counts one more scan running.
    pub fn scan() -> Busy {
        BUSY.fetch_add(1, Ordering::Relaxed);
        Busy(())
    }

    /// Counts a decoding thread, if a core is free for one.
    fn helper() -> Option<Busy> {
        let cores = cores();
        BUSY.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |busy| {
            (busy < cores).then_some(busy + 1)
        })
        .ok()
        .map(|_| Busy(()))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Compressed input for the decoding thread.
enum Input {
    Bytes(Vec<u8>),
    Failed(io::Error),
    End,
}

/// What the decoding thread sends back.
enum Output {
    /// Please read the next compressed chunk (into this spent one).
    NeedInput(Vec<u8>),
    /// A decoded buffer, its first `usize` bytes valid.
    Data(Vec<u8>, usize),
    /// The end, and where data after the last member that is not a member starts.
    End(Option<u64>),
    Failed(io::Error),
}

/// Streamed gzip, decoded on a second thread.
pub struct PipedDecoder<R> {
    /// The compressed bytes not read yet (the first ones went to the thread).
    rest: BufReader<R>,
    input: Option<Sender<Input>>,
    output: Receiver<Output>,
    /// Decoded buffers given back to the decoding thread.
    free: Option<Sender<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    len: usize,
    /// The decoder ended (cleanly or not): nothing more will come.
    done: bool,
    /// The input ended or failed: no more chunks are read.
    input_done: bool,
    /// See [`GzipDecoder::trailing_data`].
    trailing_at: Option<u64>,
    thread: Option<JoinHandle<()>>,
    _busy: Busy,
}

impl<R: Read> PipedDecoder<R> {
    /// Starts a decoding thread when a core is free for it; otherwise gives the
    /// parts back. `prefix` is the start of the object, already read; `pending` a
    /// read error met right after it.
    #[allow(clippy::type_complexity)]
    pub fn start(
        prefix: Vec<u8>,
        pending: Option<io::Error>,
        rest: BufReader<R>,
    ) -> Result<Self, (Vec<u8>, Option<io::Error>, BufReader<R>)> {
        match Busy::helper() {
            Some(busy) => Self::spawn(prefix, pending, rest, busy),
            None => Err((prefix, pending, rest)),
        }
    }

    /// Starts the decoding thread, counted by `busy`.
    #[allow(clippy::type_complexity)]
    fn spawn(
        prefix: Vec<u8>,
        pending: Option<io::Error>,
        rest: BufReader<R>,
        busy: Busy,
    ) -> Result<Self, (Vec<u8>, Option<io::Error>, BufReader<R>)> {
        let (input_tx, input_rx) = channel();
        let (output_tx, output_rx) = channel();
        let (free_tx, free_rx) = channel();
        let spawned = std::thread::Builder::new()
            .name("gzip-decode".into())
            .spawn(move || decode_thread(input_rx, output_tx, free_rx));
        let thread = match spawned {
            Ok(thread) => thread,
            Err(_) => return Err((prefix, pending, rest)),
        };
        let mut input_done = false;
        // Cannot fail: the thread holds the receiver until it ends.
        let _ = input_tx.send(Input::Bytes(prefix));
        if let Some(e) = pending {
            let _ = input_tx.send(Input::Failed(e));
            input_done = true;
        }
        for _ in 0..RING {
            let _ = free_tx.send(vec![0; RING_BUFFER]);
        }
        Ok(PipedDecoder {
            rest,
            input: Some(input_tx),
            output: output_rx,
            free: Some(free_tx),
            current: Vec::new(),
            pos: 0,
            len: 0,
            done: false,
            input_done,
            trailing_at: None,
            thread: Some(thread),
            _busy: busy,
        })
    }

    /// After the end: see [`GzipDecoder::trailing_data`].
    pub fn trailing_data(&self) -> Option<u64> {
        self.trailing_at
    }

    /// Reads the next compressed chunk into `chunk` and sends it.
    fn feed(&mut self, mut chunk: Vec<u8>) {
        if self.input_done {
            return;
        }
        chunk.resize(CHUNK, 0);
        let message = loop {
            match self.rest.read(&mut chunk) {
                Ok(0) => break Input::End,
                Ok(n) => {
                    chunk.truncate(n);
                    break Input::Bytes(chunk);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Input::Failed(e),
            }
        };
        self.input_done = !matches!(message, Input::Bytes(_));
        if let Some(input) = &self.input {
            let _ = input.send(message);
        }
    }
}

impl<R: Read> Read for PipedDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.len || buf.is_empty() {
                let n = buf.len().min(self.len - self.pos);
                buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            let spent = std::mem::take(&mut self.current);
            if !spent.is_empty() {
                if let Some(free) = &self.free {
                    let _ = free.send(spent);
                }
            }
            match self.output.recv() {
                Ok(Output::NeedInput(chunk)) => self.feed(chunk),
                Ok(Output::Data(buffer, len)) => {
                    self.current = buffer;
                    self.pos = 0;
                    self.len = len;
                }
                Ok(Output::End(trailing_at)) => {
                    self.done = true;
                    self.trailing_at = trailing_at;
                }
                Ok(Output::Failed(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("the gzip decoding thread stopped"));
                }
            }
        }
    }
}

impl<R> Drop for PipedDecoder<R> {
    fn drop(&mut self) {
        // Closing both channels ends the thread wherever it waits.
        self.input = None;
        self.free = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The compressed chunks, as the decoding thread reads them; asks for the next
/// chunk as soon as it starts on one.
struct ChunkReader {
    input: Receiver<Input>,
    output: Sender<Output>,
    chunk: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        super::read_through_buffer(self, buf)
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.chunk.len() && !self.ended {
            match self.input.recv() {
                Ok(Input::Bytes(next)) => {
                    let spent = std::mem::replace(&mut self.chunk, next);
                    self.pos = 0;
                    // One chunk ahead: the next is read while this one is decoded.
                    let _ = self.output.send(Output::NeedInput(spent));
                }
                Ok(Input::Failed(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                // The scan stopped (or the object ended): no more input either way.
                Ok(Input::End) | Err(_) => self.ended = true,
            }
        }
        Ok(&self.chunk[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.chunk.len());
    }
}

fn decode_thread(input: Receiver<Input>, output: Sender<Output>, free: Receiver<Vec<u8>>) {
    let reader = ChunkReader {
        input,
        output: output.clone(),
        chunk: Vec::new(),
        pos: 0,
        ended: false,
    };
    let mut gz = GzipDecoder::new(reader);
    loop {
        let Ok(mut buffer) = free.recv() else {
            return;
        };
        let mut filled = 0;
        let mut last = None;
        while filled < buffer.len() {
            match gz.read(&mut buffer[filled..]) {
                Ok(0) => {
                    last = Some(Output::End(gz.trailing_data()));
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    last = Some(Output::Failed(e));
                    break;
                }
            }
        }
        if filled > 0 && output.send(Output::Data(buffer, filled)).is_err() {
            return;
        }
        if let Some(last) = last {
            let _ = output.send(last);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::test_gzip as gzip;

    /// Decodes `object` on a second thread (whatever the cores), `prefix_len`
    /// bytes of it given as already read, in reads of `chunk` bytes.
    fn piped<R: Read>(
        object: &[u8],
        prefix_len: usize,
        rest: R,
        chunk: usize,
    ) -> (Vec<u8>, Option<io::Error>) {
        let prefix = object[..prefix_len].to_vec();
        let Ok(mut decoder) = PipedDecoder::spawn(prefix, None, BufReader::new(rest), Busy::scan())
        else {
            panic!("could not start the decoding thread");
        };
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            match decoder.read(&mut buf) {
                Ok(0) => return (out, None),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    fn text(len: usize) -> Vec<u8> {
        let mut state = 7u64;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                {
                    let table = b"abcdefgh{}[]\\\" \n";
                    table[(state >> 58) as usize % table.len()]
                }
            })
            .collect()
    }

    #[test]
    fn decodes_what_the_streaming_decoder_decodes() {
        let plain = text(3 << 20);
        let mut object = gzip(&plain[..1 << 20]);
        object.extend(gzip(&plain[1 << 20..]));
        for (prefix_len, chunk) in [(0, 1 << 20), (10, 4096), (object.len() / 2, 300_000)] {
            let (out, error) = piped(&object, prefix_len, &object[prefix_len..], chunk);
            assert!(error.is_none(), "{error:?}");
            assert!(out == plain, "prefix {prefix_len}: decoded bytes differ");
        }
    }

    #[test]
    fn trailing_data_is_reported_as_the_streaming_decoder_reports_it() {
        let plain = text(2 << 20);
        let mut object = gzip(&plain);
        let member_end = object.len() as u64;
        object.extend(b"\0\0 not a member");
        let prefix = object[..1000].to_vec();
        let Ok(mut decoder) =
            PipedDecoder::spawn(prefix, None, BufReader::new(&object[1000..]), Busy::scan())
        else {
            panic!("could not start the decoding thread");
        };
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).unwrap();
        assert!(out == plain, "decoded bytes differ");
        assert_eq!(decoder.trailing_data(), Some(member_end));
    }

    #[test]
    fn damage_is_reported_with_the_streaming_decoders_kind_after_the_bytes_before_it() {
        let plain = text(2 << 20);
        let object = gzip(&plain);
        let cut = &object[..object.len() - 100];
        let (out, error) = piped(cut, 1000, &cut[1000..], 65536);
        let mut reference = GzipDecoder::new(cut);
        let mut expected = Vec::new();
        let expected_error = reference.read_to_end(&mut expected).unwrap_err();
        assert_eq!(error.map(|e| e.kind()), Some(expected_error.kind()));
        assert!(out.len() > 1 << 20 && plain.starts_with(&out));
        let mut corrupt = object.clone();
        let n = corrupt.len();
        corrupt[n - 6] ^= 1;
        let (_, error) = piped(&corrupt, 0, &corrupt[..], 65536);
        assert_eq!(error.map(|e| e.kind()), Some(io::ErrorKind::InvalidInput));
    }

    /// Yields its bytes, then a read error.
    struct FailsAfter<'a>(&'a [u8]);

    impl Read for FailsAfter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
            }
            let n = self.0.len().min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_read_error_reaches_the_reader_after_the_bytes_before_it() {
        let plain = text(2 << 20);
        let object = gzip(&plain);
        let half = object.len() / 2;
        let (out, error) = piped(&object, 100, FailsAfter(&object[100..half]), 65536);
        assert_eq!(
            error.map(|e| e.kind()),
            Some(io::ErrorKind::ConnectionReset)
        );
        assert!(!out.is_empty() && plain.starts_with(&out));
    }

    #[test]
    fn lambda_counts_only_the_vcpus_its_memory_buys() {
        assert_eq!(cores_for(true, None, || 8), 0);
        assert_eq!(cores_for(false, None, || 8), 8);
        assert_eq!(cores_for(false, Some("256"), || 2), 1);
        assert_eq!(cores_for(false, Some("3008"), || 2), 1);
        assert_eq!(cores_for(false, Some("3538"), || 2), 2);
        assert_eq!(cores_for(false, Some("10240"), || 6), 5);
        assert_eq!(cores_for(false, Some("junk"), || 2), 2);
    }

    #[test]
    fn dropping_the_reader_early_ends_the_thread() {
        let plain = text(4 << 20);
        let object = gzip(&plain);
        let Ok(mut decoder) =
            PipedDecoder::spawn(Vec::new(), None, BufReader::new(&object[..]), Busy::scan())
        else {
            panic!("could not start the decoding thread");
        };
        let mut buf = vec![0u8; 1000];
        assert!(decoder.read(&mut buf).unwrap() > 0);
        drop(decoder); // joins the thread: a hang here fails the test run
    }
}
