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
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::TryRecvError;
use std::sync::Arc;

use super::Step;
use crate::dispatch::LogSink;
use crate::pipeline::{Pipeline, DEFAULT_CAPACITY};
use crate::sys;

/// Buffers of standard input's reader thread: read, queued, or being processed.
const STDIN_CHUNKS: usize = 4;

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
                while let Ok(mut buf) = empty_rx.recv() {
                    buf.resize(DEFAULT_CAPACITY, 0);
                    let got = loop {
                        // Never start a read once logalarm stopped reading (SIGTERM): what
                        // was read is then all written, nothing read is dropped.
                        match sys::wait_readable_unless(fd, stop_rx.as_raw_fd()) {
                            Ok(true) => {}
                            Ok(false) => return,
                            Err(e) => break Err(e),
                        }
                        match sys::read_fd(fd, &mut buf) {
                            // An inherited non-blocking descriptor: wait again.
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            other => break other,
                        }
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
