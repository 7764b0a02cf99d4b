//! The reactor: one mio `Poll` that reads every log input and watches signals and processes.
//!
//! Role: read standard input and the stdout/stderr pipes of supervised processes, each into a
//! pipeline of its own (which passes every byte to the output and raises alarms), so the merged
//! stream only ever switches inputs between whole lines; react to SIGTERM/SIGINT (stop reading,
//! or forward to supervised processes and wait for them), SIGHUP (reopen `--logto`, forward) and
//! SIGCHLD (reap, report crashes, restart).
//! Invariants: a ready input is read at most [`READS_PER_TURN`] times before the others get a
//! turn, and is remembered as ready (mio is edge-triggered) until a read says `WouldBlock`; reads
//! go straight into the pipeline's roll buffer; lanes are woken once per read, not per alarm;
//! the output is written with blocking writes, so a slow output slows the reading
//! (back-pressure) instead of growing a buffer, and a process writing faster than that is slowed
//! by its full pipe, never dropped. A regular file on stdin (`logalarm < file`) cannot be
//! polled: it is always "ready" until its end.
//! Rejected alternative: a reader thread per input plus channels — more copies and a second
//! place where lines could be reordered.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::dispatch::Dispatcher;
use crate::output::Output;
use crate::pipeline::{Pipeline, Sink, DEFAULT_CAPACITY};
use crate::rules::RuleSet;
use crate::supervise::Supervisor;
use crate::sys::{self, FdKind};

const SIGNAL: Token = Token(0);
/// Input `i` is registered as `Token(FIRST_INPUT + i)`.
const FIRST_INPUT: usize = 1;
/// Reads of one input before the others get a turn.
pub const READS_PER_TURN: usize = 16;
/// Buffer of each supervised process's pipe (stdin gets [`DEFAULT_CAPACITY`]).
const CHILD_CAPACITY: usize = 256 * 1024;

/// Why the reactor stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// All input was read.
    Eof,
    /// SIGTERM or SIGINT.
    Signal,
    /// The `-- CMD` process ended with this status (128 + N when killed by signal N).
    Command(i32),
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
    /// The terminating signal received (SIGTERM or SIGINT), 0 if none.
    term: Arc<AtomicUsize>,
    hup: Arc<AtomicBool>,
    chld: Arc<AtomicBool>,
    wake: mio::net::UnixStream,
    _ids: Vec<signal_hook::SigId>,
}

impl Signals {
    /// Install handlers for SIGTERM, SIGINT, SIGHUP and SIGCHLD.
    pub fn install() -> io::Result<Signals> {
        let term = Arc::new(AtomicUsize::new(0));
        let hup = Arc::new(AtomicBool::new(false));
        let chld = Arc::new(AtomicBool::new(false));
        let (r, w) = StdUnixStream::pair()?;
        r.set_nonblocking(true)?;
        w.set_nonblocking(true)?;
        let mut ids = Vec::new();
        for sig in [libc::SIGTERM, libc::SIGINT] {
            ids.push(signal_hook::flag::register_usize(
                sig,
                term.clone(),
                sig as usize,
            )?);
            ids.push(signal_hook::low_level::pipe::register(sig, w.try_clone()?)?);
        }
        ids.push(signal_hook::flag::register(libc::SIGHUP, hup.clone())?);
        ids.push(signal_hook::low_level::pipe::register(
            libc::SIGHUP,
            w.try_clone()?,
        )?);
        ids.push(signal_hook::flag::register(libc::SIGCHLD, chld.clone())?);
        ids.push(signal_hook::low_level::pipe::register(libc::SIGCHLD, w)?);
        Ok(Signals {
            term,
            hup,
            chld,
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

enum Source {
    /// Standard input (not owned; its blocking mode restored when dropped).
    Stdin { _guard: Option<NonBlockingGuard> },
    /// A pipe of supervised process `slot` (closed when dropped).
    Child { _fd: OwnedFd, slot: usize },
}

struct Input<'r> {
    fd: RawFd,
    source: Source,
    pipeline: Pipeline<'r>,
    pollable: bool,
    ready: bool,
}

impl Input<'_> {
    fn slot(&self) -> Option<usize> {
        match self.source {
            Source::Child { slot, .. } => Some(slot),
            Source::Stdin { .. } => None,
        }
    }
}

/// What the reactor drives.
pub struct Ctx<'a> {
    pub output: &'a Output,
    pub dispatcher: &'a mut Dispatcher,
    pub signals: &'a mut Signals,
    /// Supervised processes (empty when none are configured).
    pub supervisor: &'a mut Supervisor,
    /// Alarm ranks raised when a supervised process crashes.
    pub segfault: &'a [u32],
    /// How long supervised processes get to stop after a forwarded SIGTERM/SIGINT.
    pub grace: Duration,
}

/// Read standard input (`stdin`, unless a `-- CMD` owns it) and every supervised process's
/// output until the end: end of standard input when nothing is supervised, SIGTERM/SIGINT (after
/// supervised processes stopped), or the end of `-- CMD`.
pub fn run(rules: &RuleSet, stdin: Option<RawFd>, cx: Ctx<'_>) -> io::Result<End> {
    let Ctx {
        output,
        dispatcher,
        signals,
        supervisor,
        segfault,
        grace,
    } = cx;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut signals.wake, SIGNAL, Interest::READABLE)?;
    let mut inputs: Vec<Option<Input<'_>>> = Vec::new();
    if let Some(fd) = stdin {
        inputs.push(Some(stdin_input(&poll, rules, fd)?));
    }
    let mut events = Events::with_capacity(64);
    let mut stopping: Option<(i32, Instant)> = None;
    let mut killed = false;
    let mut command_status: Option<i32> = None;
    let mut last_reap = Instant::now();
    let end = loop {
        let now = Instant::now();
        match supervisor.start_due(now) {
            Ok(started) => {
                for (slot, out, err) in started {
                    for fd in [out, err] {
                        add_child_input(&poll, rules, &mut inputs, fd, slot)?;
                    }
                }
            }
            Err(e) => return Err(io::Error::other(e)),
        }
        let any_ready = inputs.iter().flatten().any(|i| i.ready);
        let mut timeout = Duration::from_secs(1);
        if let Some(t) = supervisor.next_due() {
            timeout = timeout.min(t.saturating_duration_since(now));
        }
        if let Some((_, deadline)) = stopping {
            timeout =
                timeout.min(deadline.saturating_duration_since(now) + Duration::from_millis(5));
        }
        if any_ready {
            timeout = Duration::ZERO;
        }
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            if ev.token() == SIGNAL {
                signals.drain();
            } else if let Some(Some(i)) = inputs.get_mut(ev.token().0 - FIRST_INPUT) {
                i.ready = true;
            }
        }

        // Signals.
        let sig = signals.term.swap(0, Ordering::Relaxed) as i32;
        if sig != 0 && stopping.is_none() {
            if supervisor.running() == 0 {
                break End::Signal;
            }
            supervisor.stop(sig);
            stopping = Some((sig, Instant::now() + grace));
            // Standard input is not read any more: what was read is finished below.
            close_where(&poll, &mut inputs, output, dispatcher, |i| {
                i.slot().is_none()
            })?;
        }
        if signals.hup.swap(false, Ordering::Relaxed) {
            if let Err(e) = output.reopen() {
                eprintln!("[uwsgi-alarm] cannot reopen the log output: {e}");
            }
            supervisor.signal_all(libc::SIGHUP);
        }

        // Input.
        for k in 0..inputs.len() {
            let Some(input) = inputs[k].as_mut() else {
                continue;
            };
            if !input.ready && input.pollable {
                continue;
            }
            let open = read_turn(input, supervisor, output, dispatcher, READS_PER_TURN)?;
            if !open {
                close(&poll, &mut inputs, k, output, dispatcher)?;
            }
        }

        // Processes.
        let chld = signals.chld.swap(false, Ordering::Relaxed);
        if chld || last_reap.elapsed() >= Duration::from_secs(1) {
            last_reap = Instant::now();
            for (slot, pid, status) in supervisor.exited() {
                // What it left in its pipes comes before the report (its last lines).
                for k in 0..inputs.len() {
                    if let Some(input) = inputs[k].as_mut().filter(|i| i.slot() == Some(slot)) {
                        if !read_turn(input, supervisor, output, dispatcher, usize::MAX)? {
                            close(&poll, &mut inputs, k, output, dispatcher)?;
                        }
                    }
                }
                let exit = supervisor.report(slot, pid, status);
                if let Some(msg) = &exit.crash {
                    eprintln!("[uwsgi-alarm] {}", msg.replace('\n', "\n[uwsgi-alarm] "));
                    for &a in segfault {
                        dispatcher.raise(a, msg.as_bytes());
                    }
                    dispatcher.flush();
                }
                if exit.main {
                    command_status = Some(
                        match (
                            status.code(),
                            std::os::unix::process::ExitStatusExt::signal(&status),
                        ) {
                            (Some(c), _) => c,
                            (None, Some(s)) => 128 + s,
                            _ => 1,
                        },
                    );
                    if stopping.is_none() {
                        supervisor.stop(libc::SIGTERM);
                        stopping = Some((libc::SIGTERM, Instant::now() + grace));
                    }
                }
            }
        }

        // The end.
        if let Some((_, deadline)) = stopping {
            let children_open = inputs.iter().flatten().any(|i| i.slot().is_some());
            if supervisor.running() == 0 && (!children_open || killed) {
                break command_status.map_or(End::Signal, End::Command);
            }
            if Instant::now() >= deadline && !killed {
                if supervisor.running() > 0 {
                    eprintln!(
                        "[uwsgi-alarm] {} supervised process(es) still running after {}s: SIGKILL",
                        supervisor.running(),
                        grace.as_secs()
                    );
                }
                supervisor.signal_all(libc::SIGKILL);
                killed = true;
                stopping = Some((libc::SIGKILL, Instant::now() + Duration::from_secs(2)));
            } else if killed && Instant::now() >= deadline {
                // Pipes still held open by processes outside our groups.
                break command_status.map_or(End::Signal, End::Command);
            }
        } else if supervisor.is_empty() && inputs.iter().all(Option::is_none) {
            break End::Eof;
        }
    };
    for k in 0..inputs.len() {
        if inputs[k].is_some() {
            close(&poll, &mut inputs, k, output, dispatcher)?;
        }
    }
    Ok(end)
}

fn stdin_input<'r>(poll: &Poll, rules: &'r RuleSet, fd: RawFd) -> io::Result<Input<'r>> {
    let ctx =
        |what: &str, e: io::Error| io::Error::new(e.kind(), format!("log input: {what}: {e}"));
    let mut pollable = sys::fd_kind(fd).map_err(|e| ctx("fstat", e))? == FdKind::Pollable;
    // epoll refuses some character devices (`< /dev/null`): those are read like a file.
    if pollable {
        match poll
            .registry()
            .register(&mut SourceFd(&fd), Token(FIRST_INPUT), Interest::READABLE)
        {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => pollable = false,
            Err(e) => return Err(ctx("cannot poll it", e)),
        }
    }
    let guard = if pollable {
        let was = sys::set_nonblocking(fd, true).map_err(|e| ctx("fcntl", e))?;
        // PERF: a 1 MiB pipe instead of 64 KiB: 16x fewer wake-ups of the reader and writer.
        let _ = sys::grow_pipe(fd, 1 << 20);
        Some(NonBlockingGuard { fd, was })
    } else {
        None
    };
    Ok(Input {
        fd,
        source: Source::Stdin { _guard: guard },
        pipeline: Pipeline::new(rules.matcher(), DEFAULT_CAPACITY),
        pollable,
        // Data may already wait: read before the first poll says so.
        ready: true,
    })
}

fn add_child_input<'r>(
    poll: &Poll,
    rules: &'r RuleSet,
    inputs: &mut Vec<Option<Input<'r>>>,
    fd: OwnedFd,
    slot: usize,
) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    sys::set_nonblocking(raw, true)?;
    let k = match inputs.iter().position(Option::is_none) {
        Some(k) => k,
        None => {
            inputs.push(None);
            inputs.len() - 1
        }
    };
    poll.registry().register(
        &mut SourceFd(&raw),
        Token(FIRST_INPUT + k),
        Interest::READABLE,
    )?;
    inputs[k] = Some(Input {
        fd: raw,
        source: Source::Child { _fd: fd, slot },
        pipeline: Pipeline::new(rules.matcher(), CHILD_CAPACITY),
        pollable: true,
        ready: true,
    });
    Ok(())
}

/// Read `input` up to `max` times. Returns false at its end (EOF, or a read error of a child's
/// pipe, which is reported). A read error of standard input and any output error are errors.
fn read_turn(
    input: &mut Input<'_>,
    supervisor: &mut Supervisor,
    output: &Output,
    dispatcher: &mut Dispatcher,
    max: usize,
) -> io::Result<bool> {
    let slot = input.slot();
    for _ in 0..max {
        let n = match sys::read_fd(input.fd, input.pipeline.spare()) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                input.ready = false;
                return Ok(true);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if slot.is_some() {
                    eprintln!("[uwsgi-alarm] cannot read a supervised process's output: {e}");
                    return Ok(false);
                }
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot read log input: {e}"),
                ));
            }
        };
        if let Some(slot) = slot {
            supervisor.note_output(slot, input.pipeline.just_read(n));
        }
        let mut sink = LogSink {
            output,
            dispatcher: &mut *dispatcher,
        };
        let res = input.pipeline.commit(n, &mut sink);
        dispatcher.flush();
        res?;
    }
    Ok(true)
}

/// Finish input `k` (its last line without `\n` is a line too) and forget it.
fn close(
    poll: &Poll,
    inputs: &mut [Option<Input<'_>>],
    k: usize,
    output: &Output,
    dispatcher: &mut Dispatcher,
) -> io::Result<()> {
    let Some(mut input) = inputs[k].take() else {
        return Ok(());
    };
    if input.pollable {
        let _ = poll.registry().deregister(&mut SourceFd(&input.fd));
    }
    let mut sink = LogSink {
        output,
        dispatcher: &mut *dispatcher,
    };
    let res = input.pipeline.finish(&mut sink);
    dispatcher.flush();
    res
}

fn close_where(
    poll: &Poll,
    inputs: &mut [Option<Input<'_>>],
    output: &Output,
    dispatcher: &mut Dispatcher,
    pred: impl Fn(&Input<'_>) -> bool,
) -> io::Result<()> {
    for k in 0..inputs.len() {
        if inputs[k].as_ref().is_some_and(&pred) {
            close(poll, inputs, k, output, dispatcher)?;
        }
    }
    Ok(())
}
