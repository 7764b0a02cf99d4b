//! Standard input, read by a thread of its own.
//!
//! Role: [`Prefetch`] reads standard input into a few 1 MiB buffers on a thread, so the kernel's
//! copy out of the pipe overlaps matching; the reactor processes each buffer's whole lines in
//! place (`Pipeline::feed_chunk`) and hands the buffer back. The thread wakes the poll through a
//! `mio::Waker` after each buffer.
//! Invariants: buffers come back through a bounded channel of [`STDIN_CHUNKS`]: a slow log path
//! stops the reading (back-pressure), memory stays bounded; buffers arrive in read order; the
//! thread ends after end of file or a read error, which it passes on as its last buffer.
//! Rejected alternative: reading standard input in the reactor — with 10 rules, 1 GiB through
//! `cat |` left both cores idle a third of the time (PERF.md, "reader thread").

use std::io;
use std::os::fd::RawFd;
use std::sync::mpsc::TryRecvError;
use std::sync::Arc;

use super::Step;
use crate::dispatch::LogSink;
use crate::pipeline::{Pipeline, DEFAULT_CAPACITY};
use crate::sys;

/// Buffers of standard input's reader thread: read, queued, or being processed.
const STDIN_CHUNKS: usize = 4;

/// Standard input, read by a thread of its own into [`STDIN_CHUNKS`] buffers that the reactor
/// processes in place and hands back.
pub(crate) struct Prefetch {
    /// Chunks read (the buffer and what `read` returned), in order.
    full: std::sync::mpsc::Receiver<(Vec<u8>, io::Result<usize>)>,
    /// Buffers handed back.
    empty: std::sync::mpsc::SyncSender<Vec<u8>>,
    /// Kept open here too: a waker dropped by the ending thread would close its descriptor and
    /// take a wake-up not yet polled with it.
    _waker: Arc<mio::Waker>,
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
        for _ in 0..STDIN_CHUNKS {
            let _ = empty.send(Vec::new());
        }
        std::thread::Builder::new()
            .name("logalarm-stdin".into())
            .spawn(move || {
                // Ends when the reactor drops its end (a blocked read ends with the process).
                while let Ok(mut buf) = empty_rx.recv() {
                    buf.resize(DEFAULT_CAPACITY, 0);
                    let got = loop {
                        match sys::read_fd(fd, &mut buf) {
                            // An inherited non-blocking descriptor: wait for data.
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                if let Err(e) = sys::wait_fd(fd, libc::POLLIN, -1) {
                                    break Err(e);
                                }
                            }
                            other => break other,
                        }
                    };
                    let last = !matches!(got, Ok(n) if n > 0);
                    if full_tx.send((buf, got)).is_err() {
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
        })
    }
}

impl Prefetch {
    /// Process the buffers the thread has read. `Idle` when none waits.
    pub(crate) fn serve(
        &mut self,
        pipeline: &mut Pipeline<'_>,
        sink: &mut LogSink<'_>,
    ) -> io::Result<Step> {
        let (buf, got) = match self.full.try_recv() {
            Ok(chunk) => chunk,
            Err(TryRecvError::Empty) => return Ok(Step::Idle),
            Err(TryRecvError::Disconnected) => return Ok(Step::End),
        };
        let n = match got {
            Ok(0) => return Ok(Step::End),
            Ok(n) => n,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot read log input: {e}"),
                ))
            }
        };
        let res = pipeline.feed_chunk(&buf[..n], sink);
        // Never blocks: the channel holds every buffer.
        let _ = self.empty.try_send(buf);
        sink.flush();
        res.map(|()| Step::More)
    }
}

impl std::fmt::Debug for Prefetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetch").finish_non_exhaustive()
    }
}
