//! Standard input, read by a thread of its own, or by the reactor while matching is cheap.
//!
//! Role: a pipe on standard input is first read by the reactor itself ([`read_direct`], as a
//! supervised process's pipe), until reading and matching it prove to cost the reactor's
//! thread more than the copy a thread would take off it (`reactor::DIRECT_MAX_NANOS_PER_BYTE`,
//! never while the pipeline's helper thread shares matching: both cores already match);
//! then, and for any other standard input,
//! [`Prefetch`] reads standard input into a few 1 MiB buffers on a thread (128 KiB a
//! read, see [`READ_PIECE`]), so the kernel's copy out of the pipe overlaps matching; the
//! reactor processes each buffer's whole lines in place (`Pipeline::feed_chunk`) and hands the
//! buffer back. The thread wakes the poll through a `mio::Waker` after each buffer.
//! Invariants: buffers come back through a bounded channel of [`STDIN_CHUNKS`]: a slow log path
//! stops the reading (back-pressure), memory stays bounded; buffers arrive in read order; no
//! buffer waits for more bytes than were waiting when its first read returned; the thread ends
//! after end of file or a read error, which it passes on as its last buffer (after the bytes
//! read before it).
//! Rejected alternative: reading standard input in the reactor always — with 10 rules, 1 GiB
//! through `cat |` left both cores idle a third of the time (PERF.md, "reader thread", 2026-11-24);
//! since the many later changes it is the faster way for cheap matching only (PERF.md,
//! "forty-fourth run").

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::TryRecvError;
use std::sync::Arc;

use super::Step;
use crate::dispatch::LogSink;
use crate::pipeline::{Pipeline, DEFAULT_CAPACITY};
use crate::sys;

/// Buffers of standard input's reader thread: read, queued, or being processed.
const STDIN_CHUNKS: usize = 4;

/// The most one read asks for; a buffer is filled by several. PERF: a pipe's reader holds
/// the pipe's lock for its whole copy, and the writer (`cat`) spins on it meanwhile
/// (`mutex_spin_on_owner`: 20 % of a 10-rule run's samples with 1 MiB reads).
const READ_PIECE: usize = 128 * 1024;

/// A buffer read by the thread, what `read` returned, and when it returned (the latency
/// histograms start there).
type Chunk = (Vec<u8>, io::Result<usize>, std::time::Instant);

/// Standard input, read by a thread of its own into [`STDIN_CHUNKS`] buffers that the reactor
/// processes in place and hands back.
pub(crate) struct Prefetch {
    /// Chunks read (the buffer, what `read` returned, and when), in order.
    full: std::sync::mpsc::Receiver<Chunk>,
    /// Buffers handed back.
    empty: std::sync::mpsc::SyncSender<Vec<u8>>,
    /// Kept open here too: a waker dropped by the ending thread would close its descriptor and
    /// take a wake-up not yet polled with it.
    _waker: Arc<mio::Waker>,
    /// Dropped to tell the thread to read nothing more (its read end becomes readable).
    stop: Option<std::io::PipeWriter>,
}

impl Prefetch {
    /// Start the reader of `fd`; it wakes the poll through `waker` after each chunk.
    // PERF: reading (the kernel's copy out of the pipe) overlaps matching: 1 GiB through
    // `cat |` with 10 rules, the reactor reading itself left both cores idle a third of the
    // time (see PERF.md "reader thread").
    pub(crate) fn start(fd: RawFd, waker: mio::Waker) -> io::Result<Prefetch> {
        let waker = Arc::new(waker);
        let kept = waker.clone();
        let (full_tx, full) = std::sync::mpsc::sync_channel(STDIN_CHUNKS);
        let (empty, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(STDIN_CHUNKS);
        let (stop_rx, stop) = std::io::pipe()?;
        for _ in 0..STDIN_CHUNKS {
            let _ = empty.send(Vec::new());
        }
        std::thread::Builder::new()
            .name("logalarm-stdin".into())
            .spawn(move || {
                // Ends when the reactor drops its end (a blocked read ends with the process).
                let mut failed = None;
                while let Ok(mut buf) = empty_rx.recv() {
                    let got = match failed.take() {
                        Some(e) => Err(e),
                        None => match fill(fd, stop_rx.as_raw_fd(), &mut buf, DEFAULT_CAPACITY) {
                            Filled::Stop => return,
                            Filled::Got(n, e) => {
                                failed = e;
                                Ok(n)
                            }
                            Filled::Failed(e) => Err(e),
                        },
                    };
                    let last = !matches!(got, Ok(n) if n > 0);
                    if full_tx.send((buf, got, std::time::Instant::now())).is_err() {
                        return;
                    }
                    let _ = waker.wake();
                    if last {
                        return;
                    }
                }
            })?;
        Ok(Prefetch {
            full,
            empty,
            _waker: kept,
            stop: Some(stop),
        })
    }
}

/// Read standard input, a pipe, here (the reactor's thread) into `pipeline` and pass and match
/// its whole lines: what waits now, never waiting for more (`Idle` when nothing does; the poll
/// says when more comes). Standard input is left blocking (a descriptor it shares with other
/// processes keeps its mode): a read asks for no more than `FIONREAD` says is waiting, and with
/// nothing waiting reads only when the pipe is at its end or bytes came since (`poll`, no wait).
/// PERF: while matching is cheap, the reader thread costs more than it overlaps: 10 rules over
/// 256 MiB through `cat |` took 0.103 s with it, 0.080 read here (the newline count 0.074;
/// PERF.md "forty-fourth run").
pub(crate) fn read_direct(
    fd: RawFd,
    pipeline: &mut Pipeline,
    sink: &mut LogSink<'_>,
) -> io::Result<Step> {
    let failed = |e: io::Error| io::Error::new(e.kind(), format!("cannot read log input: {e}"));
    let waiting = sys::queued(fd).map_err(failed)?;
    if waiting == 0 && !sys::wait_fd(fd, libc::POLLIN, 0).map_err(failed)? {
        return Ok(Step::Idle);
    }
    let spare = pipeline.spare();
    let want = match waiting {
        0 => spare.len(),
        n => n.min(spare.len()),
    };
    let n = match sys::read_fd(fd, &mut spare[..want]) {
        Ok(0) => return Ok(Step::End),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Idle),
        Err(e) => return Err(failed(e)),
    };
    let res = pipeline.commit(n, sink);
    sink.flush();
    res.map(|()| Step::More)
}

/// What [`fill`] read.
enum Filled {
    /// Logalarm stopped reading before anything was read.
    Stop,
    /// Bytes read (0: the end), and the error a later read of the same fill met (passed on
    /// after them).
    Got(usize, Option<io::Error>),
    /// The first read failed.
    Failed(io::Error),
}

/// Read into `buf` at most [`READ_PIECE`] bytes at a time while more is waiting: wait for the
/// first read, then go on while the last read was whole and `fd` is readable at once (a
/// short read or nothing waiting hands the buffer over: no byte waits for more to come).
/// Never starts a read once `stop` is readable (SIGTERM: what was read is then all written,
/// nothing read is dropped). `buf` grows a piece at a time up to `capacity` bytes as reads
/// need room, and keeps its length for the next fill.
// PERF: not zeroed whole before the first read: a megabyte of fresh pages was 256 page faults
// (~1 ms on this VM) before the first line of a start could be read.
fn fill(fd: RawFd, stop: RawFd, buf: &mut Vec<u8>, capacity: usize) -> Filled {
    let mut filled = 0;
    loop {
        let wait = if filled == 0 { -1 } else { 0 };
        match sys::readable_unless(fd, stop, wait) {
            Ok(Some(true)) => {}
            Ok(Some(false)) if filled == 0 => return Filled::Stop,
            Ok(_) => return Filled::Got(filled, None),
            Err(e) if filled == 0 => return Filled::Failed(e),
            Err(e) => return Filled::Got(filled, Some(e)),
        }
        let want = READ_PIECE.min(capacity - filled);
        if buf.len() < filled + want {
            buf.resize(filled + want, 0);
        }
        match sys::read_fd(fd, &mut buf[filled..filled + want]) {
            Ok(n) => {
                filled += n;
                if n < want || filled == capacity {
                    return Filled::Got(filled, None);
                }
            }
            // An inherited non-blocking descriptor: wait again (or hand over what was read).
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if filled > 0 {
                    return Filled::Got(filled, None);
                }
            }
            Err(e) if filled == 0 => return Filled::Failed(e),
            Err(e) => return Filled::Got(filled, Some(e)),
        }
    }
}

impl Prefetch {
    /// Process the next buffer the thread has read. `Idle` when none waits.
    pub(crate) fn serve(
        &mut self,
        pipeline: &mut Pipeline,
        sink: &mut LogSink<'_>,
    ) -> io::Result<Step> {
        let chunk = match self.full.try_recv() {
            Ok(chunk) => chunk,
            Err(TryRecvError::Empty) => return Ok(Step::Idle),
            Err(TryRecvError::Disconnected) => return Ok(Step::End),
        };
        if matches!(chunk.1, Ok(0)) {
            return Ok(Step::End);
        }
        self.process(chunk, pipeline, sink).map(|()| Step::More)
    }

    /// Stop reading and process every buffer the thread already read (logalarm is stopping:
    /// every byte read from standard input is written before it exits).
    pub(crate) fn finish(
        &mut self,
        pipeline: &mut Pipeline,
        sink: &mut LogSink<'_>,
    ) -> io::Result<()> {
        drop(self.stop.take());
        // The thread ends at its next wait: at most the read in progress comes after this.
        while let Ok(chunk) = self.full.recv() {
            if matches!(chunk.1, Ok(0)) {
                break;
            }
            self.process(chunk, pipeline, sink)?;
        }
        Ok(())
    }

    /// Feed one buffer's whole lines in place and hand the buffer back (never blocks: the
    /// channel holds every buffer).
    fn process(
        &mut self,
        (buf, got, read_at): Chunk,
        pipeline: &mut Pipeline,
        sink: &mut LogSink<'_>,
    ) -> io::Result<()> {
        let n = match got {
            Ok(n) => n,
            Err(e) => {
                let why = format!("cannot read log input: {e}");
                return Err(io::Error::new(e.kind(), why));
            }
        };
        sink.dispatcher.read_at = Some(read_at);
        let res = pipeline.feed_chunk(&buf[..n], sink);
        let _ = self.empty.try_send(buf);
        sink.flush();
        res
    }
}

impl std::fmt::Debug for Prefetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetch").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn got(f: Filled) -> usize {
        match f {
            Filled::Got(n, None) => n,
            Filled::Got(n, Some(e)) => panic!("{n} bytes, then {e}"),
            Filled::Stop => panic!("stopped"),
            Filled::Failed(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_buffer_is_filled_by_pieces_while_bytes_wait_and_handed_over_when_none_do() {
        let (r, mut w) = std::io::pipe().unwrap();
        let (stop_r, stop_w) = std::io::pipe().unwrap();
        let (fd, stop) = (r.as_raw_fd(), stop_r.as_raw_fd());
        let room = sys::grow_pipe(w.as_raw_fd(), 1 << 20).unwrap();
        let waiting = (2 * READ_PIECE + READ_PIECE / 3).min(room);
        let bytes: Vec<u8> = (0..waiting).map(|i| (i % 251) as u8).collect();
        // A few bytes are handed over at once: nothing waits for more; a fresh buffer grows
        // by one piece for them, not to its whole capacity.
        let mut buf = Vec::new();
        w.write_all(b"tail\n").unwrap();
        assert_eq!(got(fill(fd, stop, &mut buf, DEFAULT_CAPACITY)), 5);
        assert_eq!((&buf[..5], buf.len()), (&b"tail\n"[..], READ_PIECE));
        // Everything waiting comes in one buffer, read a piece at a time.
        w.write_all(&bytes).unwrap();
        assert_eq!(got(fill(fd, stop, &mut buf, DEFAULT_CAPACITY)), waiting);
        assert_eq!(&buf[..waiting], &bytes[..]);
        // A full buffer is handed over even when more waits.
        let mut small = Vec::new();
        w.write_all(&bytes[..READ_PIECE]).unwrap();
        assert_eq!(
            got(fill(fd, stop, &mut small, READ_PIECE / 2)),
            READ_PIECE / 2
        );
        assert_eq!(
            got(fill(fd, stop, &mut small, READ_PIECE / 2)),
            READ_PIECE / 2
        );
        assert_eq!(small.len(), READ_PIECE / 2);
        // The end.
        drop(w);
        assert_eq!(got(fill(fd, stop, &mut buf, DEFAULT_CAPACITY)), 0);
        // Once asked to stop, nothing is read.
        let (r2, mut w2) = std::io::pipe().unwrap();
        w2.write_all(b"never read\n").unwrap();
        drop(stop_w);
        assert!(matches!(
            fill(r2.as_raw_fd(), stop, &mut buf, DEFAULT_CAPACITY),
            Filled::Stop
        ));
    }
}
