//! The reactor: one mio `Poll` that reads log input and watches for signals.
//!
//! Role: read standard input into the pipeline (which passes every byte to the output and
//! raises alarms), react to SIGTERM/SIGINT (stop reading, finish) and SIGHUP (reopen `--logto`).
//! Invariants: every readable source is drained until `WouldBlock` (mio is edge-triggered); reads
//! go straight into the pipeline's roll buffer; lanes are woken once per read, not per alarm;
//! the output is written with blocking writes, so a slow output slows the reading
//! (back-pressure) instead of growing a buffer. A regular file on stdin (`logalarm < file`) cannot
//! be polled: it is read straight through, checking the signal flags between reads.
//! Rejected alternative: a reader thread per input plus channels — more copies and a second
//! place where lines could be reordered.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::dispatch::Dispatcher;
use crate::output::Output;
use crate::pipeline::{Pipeline, Sink};
use crate::sys::{self, FdKind};

const INPUT: Token = Token(0);
const SIGNAL: Token = Token(1);

/// Why the reactor stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// All input was read.
    Eof,
    /// SIGTERM or SIGINT.
    Signal,
}

/// The log path's sink: bytes to the output, alarms to the dispatcher.
pub struct LogSink<'a> {
    pub output: &'a Output,
    pub dispatcher: &'a mut Dispatcher,
}

impl Sink for LogSink<'_> {
    #[inline]
    fn pass(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.output.write(bytes)
    }
    #[inline]
    fn alarm(&mut self, alarm: u32, msg: &[u8]) {
        self.dispatcher.raise(alarm, msg);
    }
}

/// Signal flags plus a self-pipe registered in the poll.
pub struct Signals {
    term: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    wake: mio::net::UnixStream,
    _ids: Vec<signal_hook::SigId>,
}

impl Signals {
    /// Install handlers for SIGTERM, SIGINT and SIGHUP.
    pub fn install() -> io::Result<Signals> {
        let term = Arc::new(AtomicBool::new(false));
        let hup = Arc::new(AtomicBool::new(false));
        let (r, w) = StdUnixStream::pair()?;
        r.set_nonblocking(true)?;
        w.set_nonblocking(true)?;
        let mut ids = Vec::new();
        for sig in [libc::SIGTERM, libc::SIGINT] {
            ids.push(signal_hook::flag::register(sig, term.clone())?);
            ids.push(signal_hook::low_level::pipe::register(sig, w.try_clone()?)?);
        }
        ids.push(signal_hook::flag::register(libc::SIGHUP, hup.clone())?);
        ids.push(signal_hook::low_level::pipe::register(libc::SIGHUP, w)?);
        Ok(Signals {
            term,
            hup,
            wake: mio::net::UnixStream::from_std(r),
            _ids: ids,
        })
    }

    fn drain(&mut self) {
        let mut b = [0u8; 64];
        while matches!(io::Read::read(&mut self.wake, &mut b), Ok(n) if n > 0) {}
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self._ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Restores a descriptor's blocking mode when dropped.
struct NonBlockingGuard {
    fd: RawFd,
    was: bool,
}

impl Drop for NonBlockingGuard {
    fn drop(&mut self) {
        let _ = sys::set_nonblocking(self.fd, self.was);
    }
}

/// Read `fd` until it ends or a terminating signal arrives.
pub fn run(
    fd: RawFd,
    pipeline: &mut Pipeline<'_>,
    output: &Output,
    dispatcher: &mut Dispatcher,
    signals: &mut Signals,
) -> io::Result<End> {
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut signals.wake, SIGNAL, Interest::READABLE)?;
    let ctx =
        |what: &str, e: io::Error| io::Error::new(e.kind(), format!("log input: {what}: {e}"));
    let mut pollable = sys::fd_kind(fd).map_err(|e| ctx("fstat", e))? == FdKind::Pollable;
    // epoll refuses some character devices (`< /dev/null`): those are read like a file.
    if pollable {
        match poll
            .registry()
            .register(&mut SourceFd(&fd), INPUT, Interest::READABLE)
        {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => pollable = false,
            Err(e) => return Err(ctx("cannot poll it", e)),
        }
    }
    let _guard = if pollable {
        let was = sys::set_nonblocking(fd, true).map_err(|e| ctx("fcntl", e))?;
        // PERF: a 1 MiB pipe instead of 64 KiB: 16x fewer wake-ups of the reader and writer.
        let _ = sys::grow_pipe(fd, 1 << 20);
        Some(NonBlockingGuard { fd, was })
    } else {
        None
    };
    let mut events = Events::with_capacity(16);
    let end = loop {
        if pollable {
            match poll.poll(&mut events, Some(Duration::from_secs(1))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if events.iter().any(|e| e.token() == SIGNAL) {
                signals.drain();
            }
        }
        if signals.term.load(Ordering::Relaxed) {
            break End::Signal;
        }
        if signals.hup.swap(false, Ordering::Relaxed) {
            if let Err(e) = output.reopen() {
                eprintln!("[uwsgi-alarm] cannot reopen the log output: {e}");
            }
        }
        // Drain the input (for a regular file: one read per loop, so signals are seen).
        let mut eof = false;
        loop {
            let n = match sys::read_fd(fd, pipeline.spare()) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot read log input: {e}"),
                    ))
                }
            };
            let mut sink = LogSink {
                output,
                dispatcher: &mut *dispatcher,
            };
            let res = pipeline.commit(n, &mut sink);
            dispatcher.flush();
            res?;
            if !pollable || signals.term.load(Ordering::Relaxed) {
                break;
            }
        }
        if eof {
            break End::Eof;
        }
        if !pollable {
            continue;
        }
        dispatcher.flush();
    };
    let mut sink = LogSink {
        output,
        dispatcher: &mut *dispatcher,
    };
    let res = pipeline.finish(&mut sink);
    dispatcher.flush();
    res?;
    Ok(end)
}
